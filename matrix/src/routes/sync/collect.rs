//! New events since a token: read from each shard's event stream after the
//! token's position (`TimelineStore::shard_events`), never by scanning
//! rooms, and kept only for rooms the user is in (or was, or has just been
//! invited to).

use std::collections::{HashMap, HashSet};

use axon_core::event::types;
use axon_core::store::Store;
use axon_core::{Event, RoomId, ShardId, UserId};

use crate::error::MatrixError;

/// Events read from a shard per store call.
const SHARD_PAGE: usize = 500;
/// Most events read from one shard per `/sync`; the rest comes next time
/// (the token then names where this one stopped).
const MAX_PER_SHARD: usize = 5_000;

/// What happened since a token, in the user's rooms.
#[derive(Debug, Default)]
pub struct Window {
    /// The last `pos` read per shard: the next token's shard positions.
    pub positions: Vec<u64>,
    /// Per room, its new events in `seq` order.
    pub events: HashMap<RoomId, Vec<Event>>,
    /// Rooms with a new member event about the user (invites, joins,
    /// leaves, kicks, bans).
    pub touched: HashSet<RoomId>,
}

/// Reads every shard after `since`. `known` are the rooms the user had
/// a membership in before the read; a room outside it is kept from the
/// first member event about the user on, since that is where the user
/// comes into it.
pub async fn window(
    store: &dyn Store,
    user: &UserId,
    since: &[u64],
    known: &HashSet<RoomId>,
) -> Result<Window, MatrixError> {
    let mut out = Window::default();
    for (shard, &from) in since.iter().enumerate() {
        let shard = ShardId(u16::try_from(shard).unwrap_or(u16::MAX));
        let mut at = from;
        let mut read = 0;
        loop {
            let batch = store.shard_events(shard, at, SHARD_PAGE).await?;
            let Some(last) = batch.last() else { break };
            at = last.pos;
            read += batch.len();
            let full = batch.len() == SHARD_PAGE;
            for event in batch {
                let about_user = event.event_type == types::MEMBER
                    && event.state_key.as_deref() == Some(user.as_str());
                if about_user {
                    out.touched.insert(event.room_id.clone());
                }
                if about_user
                    || known.contains(&event.room_id)
                    || out.touched.contains(&event.room_id)
                {
                    out.events
                        .entry(event.room_id.clone())
                        .or_default()
                        .push(event);
                }
            }
            if !full || read >= MAX_PER_SHARD {
                break;
            }
        }
        out.positions.push(at);
    }
    Ok(out)
}
