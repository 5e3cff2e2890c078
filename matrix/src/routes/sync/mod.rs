//! `GET /sync` (spec v1.11): the user's joined, invited and left rooms,
//! presence of users sharing a room with them, and their account data —
//! everything since a token, or everything on an initial sync.
//!
//! - [`token`] — [`SyncToken`]: a position per shard plus the ephemeral
//!   stream positions (DESIGN invariant 7).
//! - [`filter`] — [`SyncFilter`]: inline or stored filters.
//! - [`collect`] — new events from the shards' streams after the token.
//! - [`rooms`] — each room's section.
//! - [`wait`] — [`Waiter`]: the long-poll, woken by the router.

pub mod collect;
pub mod filter;
pub mod members;
pub mod rooms;
pub mod token;
pub mod wait;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axon_core::event::types;
use axon_core::{Membership, RoomId, RoomState, ShardId, UserId};
use axum::extract::State;
use ruma::api::client::sync::sync_events::v3::{Request, Response};

use crate::auth::User;
use crate::error::MatrixError;
use crate::events::raw;
use crate::routes::filter::FILTER_TYPE_PREFIX;
use crate::routes::presence::{core_state, presence_event};
use crate::state::Matrix;
pub use filter::SyncFilter;
pub use token::SyncToken;
pub use wait::Waiter;

/// Longest a `/sync` waits, whatever the client asks.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// `GET /sync`.
pub async fn sync(
    State(matrix): State<Matrix>,
    user: User,
    req: Request,
) -> Result<Response, MatrixError> {
    let filter = SyncFilter::resolve(&matrix, &user, req.filter.as_ref()).await?;
    let shards = matrix.services().sequencer.shard_count();
    let since = req
        .since
        .as_deref()
        .map(|s| SyncToken::parse(s, shards))
        .transpose()?;
    set_presence(&matrix, &user, &req.set_presence).await?;
    if since.is_none() || req.full_state {
        // The client starts over: lazy-loaded members are all sent again.
        matrix
            .sent_members()
            .forget_device(&user.user_id, &user.device_id);
    }
    let Some(since) = since else {
        return Ok(build(&matrix, &user, &filter, None, true).await?.0);
    };
    let timeout = req.timeout.unwrap_or_default().min(MAX_TIMEOUT);
    let deadline = tokio::time::Instant::now() + timeout;
    // `seen`: positions up to which a look found nothing for the user. A
    // look is made only when a stream moved past them (or the client
    // asks for the full state), so a client that is up to date goes
    // straight to waiting.
    let mut seen = since.clone();
    let mut empty = None;
    if req.full_state || moved(&matrix, &user, &seen).await? {
        let (response, next) = build(&matrix, &user, &filter, Some(&since), req.full_state).await?;
        if !is_empty(&response) || timeout.is_zero() {
            return Ok(response);
        }
        (seen, empty) = (next, Some(response));
    }
    if !timeout.is_zero() {
        // Subscribe, then look again if anything moved: whatever came
        // after the last look and before the subscription is found then.
        let joined = joined_rooms(&matrix, &user).await?;
        let mut waiter = Waiter::new(&matrix.services().router, &user.user_id, joined);
        let mut look = moved(&matrix, &user, &seen).await?;
        loop {
            if look {
                let (response, _) = build(&matrix, &user, &filter, Some(&since), false).await?;
                if !is_empty(&response) {
                    return Ok(response);
                }
                empty = Some(response);
            }
            if tokio::time::timeout_at(deadline, waiter.woken())
                .await
                .is_err()
            {
                break;
            }
            // A wake-up is for something in the user's rooms or about
            // them: always looked at.
            look = true;
        }
    }
    // Nothing new: the last empty look, or (without one) the positions
    // the client sent, which nothing moved past.
    Ok(empty.unwrap_or_else(|| Response::new(seen.encode())))
}

/// Whether any stream a `/sync` reads moved past `token` where it
/// concerns the user: an ephemeral stream, or the shard of a room the
/// user has any membership in (a room they were just invited to is
/// among those). When it did not, a look after `token` finds nothing,
/// since [`build`] reads the same heads.
async fn moved(matrix: &Matrix, user: &User, token: &SyncToken) -> Result<bool, MatrixError> {
    let services = matrix.services();
    let streams = &services.ephemeral.streams;
    if streams.typing.head() != token.typing
        || streams.receipts.head() != token.receipts
        || streams.presence.head() != token.presence
        || streams.account_data.head() != token.account_data
    {
        return Ok(true);
    }
    let sequencer = &services.sequencer;
    let shards = sequencer.shard_count();
    let rooms = services.store.rooms_of_user(&user.user_id).await?;
    Ok(rooms.iter().any(|(room, _)| {
        let shard = ShardId::of(room, shards);
        token
            .shards
            .get(usize::from(shard.0))
            .is_none_or(|&at| sequencer.shard_head(shard) > at)
    }))
}

/// Marks the user online (or what `set_presence` says) unless it is
/// `offline`; only a change is announced, so syncing does not wake everyone
/// who shares a room with the user on every request.
async fn set_presence(
    matrix: &Matrix,
    user: &User,
    wanted: &ruma::presence::PresenceState,
) -> Result<(), MatrixError> {
    if *wanted == ruma::presence::PresenceState::Offline {
        return Ok(());
    }
    let eph = &matrix.services().ephemeral;
    let state = core_state(wanted);
    let current = eph.presence.get(&user.user_id);
    if current.state != state {
        eph.set_presence(&user.user_id, state, current.status_msg)
            .await?;
    }
    Ok(())
}

async fn joined_rooms(matrix: &Matrix, user: &User) -> Result<Vec<RoomId>, MatrixError> {
    Ok(matrix
        .services()
        .store
        .rooms_of_user(&user.user_id)
        .await?
        .into_iter()
        .filter(|(_, m)| *m == Membership::Join)
        .map(|(r, _)| r)
        .collect())
}

/// Whether the user was joined to `room` at the start of the window whose
/// events in the room are `events`: yes when none of them is about the
/// user (their membership did not change), else what it was before the
/// first one that is.
async fn was_joined(
    matrix: &Matrix,
    user: &User,
    room: &RoomId,
    events: Option<&[axon_core::Event]>,
) -> Result<bool, MatrixError> {
    let first = events.unwrap_or_default().iter().find(|e| {
        e.event_type == types::MEMBER && e.state_key.as_deref() == Some(user.user_id.as_str())
    });
    let Some(first) = first else {
        return Ok(true);
    };
    let before = matrix
        .rooms()
        .membership_before(room, &user.user_id, first.seq)
        .await?;
    Ok(before == Some(Membership::Join))
}

/// Nothing for the client: a long-poll keeps waiting.
fn is_empty(r: &Response) -> bool {
    r.rooms.join.is_empty()
        && r.rooms.invite.is_empty()
        && r.rooms.leave.is_empty()
        && r.presence.events.is_empty()
        && r.account_data.events.is_empty()
}

/// One response: everything after `since` (everything, without one),
/// with the positions it reaches (its `next_batch`).
async fn build(
    matrix: &Matrix,
    user: &User,
    filter: &SyncFilter,
    since: Option<&SyncToken>,
    full_state: bool,
) -> Result<(Response, SyncToken), MatrixError> {
    let services = matrix.services();
    let store = services.store.as_ref();
    let eph = &services.ephemeral;
    // Ephemeral heads first: a change after this read is sent (again) next
    // time rather than lost.
    let mut next = SyncToken {
        shards: Vec::new(),
        typing: eph.streams.typing.head(),
        receipts: eph.streams.receipts.head(),
        presence: eph.streams.presence.head(),
        account_data: eph.streams.account_data.head(),
    };
    // The rooms the user is in (in any way) before the window is read.
    let before = store.rooms_of_user(&user.user_id).await?;
    let known: HashSet<RoomId> = before.iter().map(|(room, _)| room.clone()).collect();
    let mut window = match since {
        Some(since) => {
            collect::window(
                store,
                &services.sequencer,
                &user.user_id,
                &since.shards,
                known,
            )
            .await?
        }
        None => {
            let mut w = collect::Window::default();
            for shard in 0..services.sequencer.shard_count() {
                w.positions.push(store.shard_head(ShardId(shard)).await?);
            }
            w
        }
    };
    next.shards = std::mem::take(&mut window.positions);
    // Read again after the window when it changed the user's memberships,
    // so that every change the window shows is in it; without such a
    // change the first read agrees with the window.
    let memberships = if since.is_none() || !window.touched.is_empty() {
        store.rooms_of_user(&user.user_id).await?
    } else {
        before
    };
    let ctx = rooms::Ctx {
        matrix,
        user,
        filter,
        since,
        next: &next,
        account_data: tokio::sync::OnceCell::new(),
    };
    let mut response = Response::new(next.encode());
    // The joined rooms' states: whose presence the user sees.
    let mut joined_states = Vec::new();
    for (room, membership) in memberships {
        if !filter.wants_room(&room) {
            continue;
        }
        let new_events = window.events.remove(&room);
        let touched = window.touched.contains(&room);
        let ruma_room = crate::ids::ruma_room(&room)?;
        match membership {
            Membership::Join => {
                joined_states.push(matrix.rooms().state(&room).await?);
                let whole = since.is_none()
                    || full_state
                    || !was_joined(matrix, user, &room, new_events.as_deref()).await?;
                if let Some(joined) = rooms::joined(&ctx, &room, new_events, whole).await? {
                    response.rooms.join.insert(ruma_room, joined);
                }
            }
            Membership::Invite if since.is_none() || touched => {
                let invited = rooms::invited(&ctx, &room).await?;
                response.rooms.invite.insert(ruma_room, invited);
            }
            Membership::Leave | Membership::Ban if touched => {
                let was_joined = was_joined(matrix, user, &room, new_events.as_deref()).await?;
                let events = new_events.unwrap_or_default();
                let left = rooms::left(&ctx, &room, events, was_joined).await?;
                response.rooms.leave.insert(ruma_room, left);
            }
            Membership::Leave | Membership::Ban if since.is_none() && filter.include_leave => {
                let leave = store
                    .state_event(&room, types::MEMBER, user.user_id.as_str())
                    .await?;
                let left = rooms::left(&ctx, &room, leave.into_iter().collect(), false).await?;
                response.rooms.leave.insert(ruma_room, left);
            }
            _ => {}
        }
    }
    // Presence of everyone sharing a joined room, the user included.
    if filter.presence.matches_type("m.presence") {
        let changed: Vec<_> = match since {
            None => sharing(&user.user_id, &joined_states).into_iter().collect(),
            Some(s) => visible_presence(
                &user.user_id,
                &joined_states,
                eph.streams.presence.changes_since(s.presence),
            ),
        };
        for u in &changed {
            let view = eph.presence.get(u);
            if since.is_none() && view.last_active_ms == 0 {
                continue;
            }
            response
                .presence
                .events
                .push(raw(&presence_event(u, &view))?);
        }
    }
    let global_changed = since.is_none_or(|s| {
        eph.streams
            .account_data
            .changed_since(&(user.user_id.clone(), None), s.account_data)
    });
    if global_changed {
        for record in ctx.account_data().await?.iter().filter(|r| {
            r.room_id.is_none()
                && !r.data_type.starts_with(FILTER_TYPE_PREFIX)
                && filter.account_data.matches_type(&r.data_type)
        }) {
            response
                .account_data
                .events
                .push(raw(&rooms::account_data_event(record))?);
        }
    }
    Ok((response, next))
}

/// `user` and every member joined to one of the rooms `joined`.
fn sharing(user: &UserId, joined: &[Arc<RoomState>]) -> HashSet<UserId> {
    let mut all: HashSet<_> = joined
        .iter()
        .flat_map(|state| state.members_with(Membership::Join).cloned())
        .collect();
    all.insert(user.clone());
    all
}

/// Of the users whose presence `changed`, those `user` sees: themself and
/// whoever is joined to one of the rooms `joined`. Each changed user is
/// looked up in the rooms' member tables (an incremental sync often has
/// none or a few), unless that takes more lookups than collecting every
/// member of the rooms once.
fn visible_presence(
    user: &UserId,
    joined: &[Arc<RoomState>],
    mut changed: Vec<UserId>,
) -> Vec<UserId> {
    let lookups = changed.len().saturating_mul(joined.len());
    let members: usize = joined.iter().map(|state| state.member_count()).sum();
    if lookups > members {
        let all = sharing(user, joined);
        changed.retain(|u| all.contains(u));
    } else {
        changed.retain(|u| u == user || joined.iter().any(|state| state.is_joined(u)));
    }
    changed
}

#[cfg(test)]
mod tests {
    use axon_core::EventId;
    use axon_core::event::Event;
    use bytes::Bytes;

    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(&format!("@{name}:x")).unwrap()
    }

    fn state_event(event_type: &str, key: &str, content: &'static str, seq: u64) -> Event {
        Event {
            event_id: EventId::generate(),
            room_id: RoomId::parse("!r:x").unwrap(),
            sender: user("alice"),
            event_type: event_type.into(),
            state_key: Some(key.into()),
            content: Bytes::from_static(content.as_bytes()),
            origin_server_ts: 0,
            seq,
            pos: seq,
        }
    }

    #[test]
    fn presence_of_room_mates_only_either_way() {
        let events = [
            state_event(types::CREATE, "", "{}", 1),
            state_event(types::MEMBER, "@alice:x", r#"{"membership":"join"}"#, 2),
            state_event(types::MEMBER, "@bob:x", r#"{"membership":"join"}"#, 3),
            state_event(types::MEMBER, "@carol:x", r#"{"membership":"leave"}"#, 4),
        ];
        let room =
            RoomState::from_state_events(&RoomId::parse("!r:x").unwrap(), &events, 4).unwrap();
        let joined = [Arc::new(room)];
        let alice = user("alice");
        // Two changes against three members: looked up one by one.
        assert_eq!(
            visible_presence(&alice, &joined, vec![user("bob"), user("dave")]),
            vec![user("bob")]
        );
        // Four against three: through the set of everyone sharing a room.
        assert_eq!(
            visible_presence(
                &alice,
                &joined,
                vec![user("bob"), user("carol"), user("dave"), alice.clone()]
            ),
            vec![user("bob"), alice.clone()]
        );
        assert_eq!(
            visible_presence(&alice, &[], vec![user("bob"), alice.clone()]),
            vec![alice.clone()]
        );
    }
}
