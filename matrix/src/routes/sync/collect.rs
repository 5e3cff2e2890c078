//! New events since a token: read from each shard's event stream after the
//! token's position, never by scanning rooms.
//!
//! Shards with nothing committed after the token are skipped without a
//! store read (the sequencer's in-memory heads), and of the others only
//! the events of the user's rooms are loaded
//! (`TimelineStore::shard_events_of`). A room the user came into during
//! the window (an invite, a join) is read on its own, up to the window's
//! end.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axon_core::event::types;
use axon_core::sequencer::Sequencer;
use axon_core::store::{Direction, Store};
use axon_core::{Event, RoomId, ShardId, UserId};

use crate::error::MatrixError;

/// Stream entries looked at per store call.
const SHARD_PAGE: usize = 500;
/// Most stream entries looked at in one shard per `/sync`; the rest comes
/// next time (the token then names where this one stopped).
const MAX_PER_SHARD: usize = 5_000;
/// Events read per step when reading a room the user just came into.
const ROOM_STEP: usize = 100;

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
    sequencer: &Sequencer,
    user: &UserId,
    since: &[u64],
    known: HashSet<RoomId>,
) -> Result<Window, MatrixError> {
    let mut out = Window::default();
    let known = Arc::new(known);
    for (shard, &from) in since.iter().enumerate() {
        let shard = ShardId(u16::try_from(shard).unwrap_or(u16::MAX));
        let mut at = from;
        if sequencer.shard_head(shard) <= from || known.is_empty() {
            // Nothing new in this shard, or none of it can be the user's
            // but a room they come into, which is read below.
            out.positions.push(if known.is_empty() {
                sequencer.shard_head(shard).max(from)
            } else {
                from
            });
            continue;
        }
        let mut scanned = 0;
        loop {
            let read = store
                .shard_events_of(shard, at, SHARD_PAGE, Arc::clone(&known))
                .await?;
            let Some(last) = read.last_pos else { break };
            at = last;
            scanned += read.scanned;
            for event in read.events {
                if is_about(&event, user) {
                    out.touched.insert(event.room_id.clone());
                }
                out.events
                    .entry(event.room_id.clone())
                    .or_default()
                    .push(event);
            }
            if read.scanned < SHARD_PAGE || scanned >= MAX_PER_SHARD {
                break;
            }
        }
        out.positions.push(at);
    }
    // Rooms the user came into during the window: their events after the
    // token and up to the window's end, read newest first.
    for (room, _) in store.rooms_of_user(user).await? {
        if known.contains(&room) {
            continue;
        }
        let shard = ShardId::of(&room, sequencer.shard_count());
        let (Some(&from), Some(&upto)) = (
            since.get(usize::from(shard.0)),
            out.positions.get(usize::from(shard.0)),
        ) else {
            continue;
        };
        let mut events = room_events_between(store, &room, from, upto).await?;
        // Kept from the first member event about the user on.
        let Some(first) = events.iter().position(|e| is_about(e, user)) else {
            continue;
        };
        events.drain(..first);
        out.touched.insert(room.clone());
        out.events.insert(room, events);
    }
    Ok(out)
}

fn is_about(event: &Event, user: &UserId) -> bool {
    event.event_type == types::MEMBER && event.state_key.as_deref() == Some(user.as_str())
}

/// `room`'s events with `from < pos <= upto`, ascending.
async fn room_events_between(
    store: &dyn Store,
    room: &RoomId,
    from: u64,
    upto: u64,
) -> Result<Vec<Event>, MatrixError> {
    let mut out = Vec::new();
    let Some(mut hi) = store.room_head(room).await? else {
        return Ok(out);
    };
    'read: while hi >= 1 {
        let batch = store
            .events(room, 1, hi, Direction::Backward, ROOM_STEP)
            .await?;
        let Some(oldest) = batch.last() else { break };
        hi = oldest.seq.saturating_sub(1);
        for event in batch {
            if event.pos <= from {
                break 'read;
            }
            if event.pos <= upto {
                out.push(event);
            }
        }
    }
    out.reverse();
    Ok(out)
}
