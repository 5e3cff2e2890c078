//! One room's part of a `/sync` response: `rooms.join` (timeline, state,
//! ephemeral, account data, unread counts), `rooms.invite` (stripped
//! state) and `rooms.leave` (timeline up to the leave).
//!
//! A room the user joined since the token (or every room, on an initial or
//! `full_state` sync) gets the latest timeline page and the current state;
//! otherwise the timeline is the room's new events and `state` the latest
//! state events among them that the timeline does not show (fell before
//! its window, or were filtered out).

use std::collections::{BTreeMap, HashSet};

use axon_core::event::types;
use axon_core::rooms::ServedEvent;
use axon_core::store::{AccountDataRecord, Receipt};
use axon_core::{Event, EventId, RoomId, UserId};
use ruma::UInt;
use ruma::api::client::sync::sync_events::UnreadNotificationsCount;
use ruma::api::client::sync::sync_events::v3::{
    Ephemeral, InviteState, InvitedRoom, JoinedRoom, LeftRoom, RoomAccountData, State, StateEvents,
    Timeline,
};
use serde_json::{Value, json};

use super::filter::SyncFilter;
use super::token::SyncToken;
use crate::auth::User;
use crate::error::MatrixError;
use crate::events::{raw, raw_events, token};
use crate::state::Matrix;

/// What the room sections are built from.
pub struct Ctx<'a> {
    /// The adapter.
    pub matrix: &'a Matrix,
    /// Who syncs.
    pub user: &'a User,
    /// What they keep.
    pub filter: &'a SyncFilter,
    /// The token synced from; `None` on an initial sync.
    pub since: Option<&'a SyncToken>,
    /// The positions this response reaches (the next token).
    pub next: &'a SyncToken,
    /// The user's account data (room data is picked from it), read when
    /// first needed: most syncs have no account data change to show.
    pub account_data: tokio::sync::OnceCell<Vec<AccountDataRecord>>,
}

impl Ctx<'_> {
    /// The user's account data, read once per response.
    pub async fn account_data(&self) -> Result<&[AccountDataRecord], MatrixError> {
        let store = &self.matrix.services().store;
        let records = self
            .account_data
            .get_or_try_init(|| store.all_account_data(&self.user.user_id))
            .await?;
        Ok(records)
    }
}

/// A joined room's section; `None` when nothing in it is new.
pub async fn joined(
    ctx: &Ctx<'_>,
    room: &RoomId,
    new_events: Option<Vec<Event>>,
    whole: bool,
) -> Result<Option<JoinedRoom>, MatrixError> {
    let rooms = ctx.matrix.rooms();
    let user = &ctx.user.user_id;
    // Counted before the events go into the timeline, so that they are not
    // read again for it; a quiet room is not counted at all.
    let unread = match &new_events {
        Some(events) => Some(rooms.unread_count(user, room, events).await?),
        None => None,
    };
    let (timeline, state) = match new_events {
        _ if whole => whole_room(ctx, room).await?,
        Some(events) => incremental(ctx, room, events).await?,
        None => (Timeline::new(), Vec::new()),
    };
    let mut out = JoinedRoom::new();
    out.ephemeral = ephemeral(ctx, room).await?;
    out.account_data = room_account_data(ctx, room).await?;
    let quiet = !whole
        && timeline.events.is_empty()
        && state.is_empty()
        && out.ephemeral.events.is_empty()
        && out.account_data.events.is_empty();
    if quiet {
        return Ok(None);
    }
    out.timeline = timeline;
    out.state = State::Before(StateEvents::with_events(raw_events(&state, ctx.user)?));
    let unread = match unread {
        Some(n) => n,
        None => rooms.unread_count(user, room, &[]).await?,
    };
    let mut counts = UnreadNotificationsCount::new();
    counts.notification_count = Some(UInt::try_from(unread).unwrap_or(UInt::MAX));
    counts.highlight_count = Some(UInt::MIN);
    out.unread_notifications = counts;
    Ok(Some(out))
}

/// The latest timeline page and the current state, minus the timeline's
/// events. Events past this response's shard position are left to the
/// next sync, so none is sent twice.
async fn whole_room(
    ctx: &Ctx<'_>,
    room: &RoomId,
) -> Result<(Timeline, Vec<ServedEvent>), MatrixError> {
    let rooms = ctx.matrix.rooms();
    let user = &ctx.user.user_id;
    let page = rooms
        .latest_page(user, room, ctx.filter.timeline_limit, &ctx.filter.timeline)
        .await?;
    let upto = shard_position(ctx, room);
    let mut events: Vec<ServedEvent> = page
        .events
        .into_iter()
        .filter(|e| e.event.pos <= upto)
        .collect();
    events.reverse();
    let mut timeline = Timeline::new();
    timeline.limited = page.end.is_some_and(|end| end > 0);
    timeline.prev_batch = Some(token(
        events
            .first()
            .map_or(page.start, |e| e.event.seq.saturating_sub(1)),
    ));
    let in_timeline: HashSet<_> = events.iter().map(|e| e.event.event_id.clone()).collect();
    let senders: HashSet<_> = events.iter().map(|e| e.event.sender.clone()).collect();
    let state: Vec<ServedEvent> = rooms
        .state_events(user, room)
        .await?
        .into_iter()
        .filter(|e| !in_timeline.contains(&e.event.event_id) && e.event.pos <= upto)
        .filter(|e| {
            !ctx.filter.lazy_load_members
                || e.event.event_type != types::MEMBER
                || e.event
                    .state_key
                    .as_deref()
                    .is_some_and(|k| k == user.as_str() || senders.iter().any(|s| s.as_str() == k))
        })
        .collect();
    timeline.events = raw_events(&events, ctx.user)?;
    if ctx.filter.lazy_load_members {
        record_members(ctx, room, state.iter().chain(events.iter()));
    }
    Ok((timeline, state))
}

/// Notes the member events among `events` as sent to the device.
fn record_members<'a>(ctx: &Ctx<'_>, room: &RoomId, events: impl Iterator<Item = &'a ServedEvent>) {
    let members: Vec<(UserId, &EventId)> = events
        .filter(|e| e.event.event_type == types::MEMBER)
        .filter_map(|e| {
            let who = UserId::parse(e.event.state_key.as_deref()?).ok()?;
            Some((who, &e.event.event_id))
        })
        .collect();
    ctx.matrix.sent_members().record(
        &ctx.user.user_id,
        &ctx.user.device_id,
        room,
        members.iter().map(|(u, e)| (u, *e)),
    );
}

/// The room's new events: the last `limit` that pass the filter as the
/// timeline, the other state events among them as `state`.
async fn incremental(
    ctx: &Ctx<'_>,
    room: &RoomId,
    events: Vec<Event>,
) -> Result<(Timeline, Vec<ServedEvent>), MatrixError> {
    let rooms = ctx.matrix.rooms();
    let user = &ctx.user.user_id;
    let served = rooms.serve_events(user, room, events).await?;
    let kept: Vec<&ServedEvent> = served
        .iter()
        .filter(|e| ctx.filter.timeline.matches(&e.event))
        .collect();
    let limited = kept.len() > ctx.filter.timeline_limit;
    let kept = &kept[kept.len().saturating_sub(ctx.filter.timeline_limit)..];
    let first_seq = kept.first().map(|e| e.event.seq);
    // The latest state event per (type, key) that the timeline does not
    // show: those before its window, and those the filter left out (which
    // the client would otherwise never learn of). A key the timeline sets
    // later is left to the timeline.
    let mut latest: BTreeMap<(&str, &str), &ServedEvent> = BTreeMap::new();
    for e in &served {
        if let Some(key) = &e.event.state_key {
            latest.insert((&e.event.event_type, key), e);
        }
    }
    let shown: HashSet<_> = kept.iter().map(|e| &e.event.event_id).collect();
    let mut state: Vec<ServedEvent> = latest
        .into_values()
        .filter(|e| !shown.contains(&e.event.event_id))
        .cloned()
        .collect();
    if ctx.filter.lazy_load_members {
        let known: HashSet<&str> = state
            .iter()
            .chain(kept.iter().copied())
            .filter(|e| e.event.event_type == types::MEMBER)
            .filter_map(|e| e.event.state_key.as_deref())
            .collect();
        let senders: HashSet<&axon_core::UserId> = kept
            .iter()
            .map(|e| &e.event.sender)
            .filter(|s| !known.contains(s.as_str()))
            .collect();
        let current = rooms.state(room).await?;
        let sent = ctx.matrix.sent_members();
        let device = &ctx.user.device_id;
        // A member event this device already has is left out, as the spec
        // allows, unless the filter asks for redundant members.
        let missing: Vec<axon_core::UserId> = senders
            .into_iter()
            .filter(|sender| {
                ctx.filter.include_redundant_members
                    || !current
                        .state_event_id(types::MEMBER, sender.as_str())
                        .is_some_and(|id| sent.has(user, device, room, sender, id))
            })
            .cloned()
            .collect();
        for sender in missing {
            match rooms
                .state_event(user, room, types::MEMBER, sender.as_str())
                .await
            {
                Ok(member) => state.push(member),
                Err(axon_core::RoomsError::EventNotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        record_members(ctx, room, state.iter().chain(kept.iter().copied()));
    }
    let mut timeline = Timeline::new();
    timeline.limited = limited;
    timeline.prev_batch = first_seq.map(|s| token(s - 1));
    let kept: Vec<ServedEvent> = kept.iter().map(|e| (*e).clone()).collect();
    timeline.events = raw_events(&kept, ctx.user)?;
    Ok((timeline, state))
}

/// `m.typing` and `m.receipt`, when they changed since the token (or
/// exist, on an initial sync).
async fn ephemeral(ctx: &Ctx<'_>, room: &RoomId) -> Result<Ephemeral, MatrixError> {
    let eph = &ctx.matrix.services().ephemeral;
    let wants = |t: &str| ctx.filter.ephemeral.matches_type(t);
    let mut out = Ephemeral::new();
    if wants("m.typing") {
        let changed = ctx
            .since
            .is_none_or(|s| eph.streams.typing.changed_since(room, s.typing));
        let users = eph.typing.typing_in(room);
        if changed && (ctx.since.is_some() || !users.is_empty()) {
            out.events.push(raw(
                &json!({"type": "m.typing", "content": {"user_ids": users}}),
            )?);
        }
    }
    let changed = ctx
        .since
        .is_none_or(|s| eph.streams.receipts.changed_since(room, s.receipts));
    if wants("m.receipt") && changed {
        let receipts = ctx.matrix.services().store.receipts(room).await?;
        if let Some(content) = receipt_content(&receipts, ctx.user) {
            out.events
                .push(raw(&json!({"type": "m.receipt", "content": content}))?);
        }
    }
    Ok(out)
}

/// The spec's `m.receipt` content: event id → type → user → `{ts}`.
/// Private receipts only of the viewer.
fn receipt_content(receipts: &[Receipt], viewer: &User) -> Option<Value> {
    let mut content = serde_json::Map::new();
    for r in receipts {
        if r.receipt_type == "m.read.private" && r.user_id != viewer.user_id {
            continue;
        }
        let mut receipt = json!({"ts": r.ts});
        if let Some(thread) = &r.thread_id {
            receipt["thread_id"] = thread.as_str().into();
        }
        content
            .entry(r.event_id.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|types| {
                types
                    .entry(r.receipt_type.clone())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|users| users.insert(r.user_id.to_string(), receipt))
            });
    }
    (!content.is_empty()).then_some(Value::Object(content))
}

/// The room's account data, when it changed since the token.
async fn room_account_data(ctx: &Ctx<'_>, room: &RoomId) -> Result<RoomAccountData, MatrixError> {
    let eph = &ctx.matrix.services().ephemeral;
    let changed = ctx.since.is_none_or(|s| {
        eph.streams.account_data.changed_since(
            &(ctx.user.user_id.clone(), Some(room.clone())),
            s.account_data,
        )
    });
    let mut out = RoomAccountData::new();
    if changed {
        for record in ctx.account_data().await? {
            if record.room_id.as_ref() == Some(room)
                && ctx.filter.room_account_data.matches_type(&record.data_type)
            {
                out.events.push(raw(&account_data_event(record))?);
            }
        }
    }
    Ok(out)
}

/// Account data as the event `/sync` shows.
pub fn account_data_event(record: &AccountDataRecord) -> Value {
    let content: Value = serde_json::from_slice(&record.content).unwrap_or_else(|_| json!({}));
    json!({"type": record.data_type, "content": content})
}

/// An invited room's stripped state.
pub async fn invited(ctx: &Ctx<'_>, room: &RoomId) -> Result<InvitedRoom, MatrixError> {
    let events = ctx
        .matrix
        .rooms()
        .invite_state(&ctx.user.user_id, room)
        .await?;
    let stripped = events
        .iter()
        .map(|e| {
            let content: Value = serde_json::from_slice(&e.content).unwrap_or_else(|_| json!({}));
            raw(&json!({
                "type": e.event_type,
                "state_key": e.state_key,
                "sender": e.sender,
                "content": content,
            }))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InvitedRoom::from(InviteState::from(stripped)))
}

/// A room the user left: its new events up to the leave, when they were
/// joined before it; otherwise (a refused or withdrawn invite) the leave
/// event alone, so that nothing from before they belonged is shown.
pub async fn left(
    ctx: &Ctx<'_>,
    room: &RoomId,
    new_events: Vec<Event>,
    was_joined: bool,
) -> Result<LeftRoom, MatrixError> {
    let user = &ctx.user.user_id;
    let events: Vec<Event> = if was_joined {
        new_events
    } else {
        new_events
            .into_iter()
            .filter(|e| e.state_key.as_deref() == Some(user.as_str()))
            .filter(|e| e.event_type == types::MEMBER)
            .collect()
    };
    let served = ctx.matrix.rooms().serve_events(user, room, events).await?;
    let kept = &served[served.len().saturating_sub(ctx.filter.timeline_limit)..];
    let mut timeline = Timeline::new();
    timeline.limited = kept.len() < served.len();
    timeline.prev_batch = kept.first().map(|e| token(e.event.seq - 1));
    timeline.events = raw_events(kept, ctx.user)?;
    let mut out = LeftRoom::new();
    out.timeline = timeline;
    Ok(out)
}

/// This response's position in the room's shard.
fn shard_position(ctx: &Ctx<'_>, room: &RoomId) -> u64 {
    let shards = u16::try_from(ctx.next.shards.len()).unwrap_or(u16::MAX);
    let shard = axon_core::ShardId::of(room, shards);
    ctx.next
        .shards
        .get(usize::from(shard.0))
        .copied()
        .unwrap_or(u64::MAX)
}
