//! Reading the timeline: `GET /rooms/{roomId}/messages` (pages with `dir`,
//! `from`, `to`, `limit` and a `RoomEventFilter`), `GET
//! /rooms/{roomId}/event/{eventId}` and `GET
//! /rooms/{roomId}/context/{eventId}`. Tokens are described in
//! [`crate::events`].

use axon_core::UserId;
use axon_core::rooms::{EventFilter, PageRange};
use axon_core::store::Direction;
use axum::extract::State;
use ruma::api::client::context::get_context;
use ruma::api::client::filter::RoomEventFilter;
use ruma::api::client::message::get_message_events;
use ruma::api::client::room::get_room_event;

use crate::auth::User;
use crate::error::MatrixError;
use crate::events::{client_event, position, raw, raw_events, token};
use crate::ids::{core_event, core_room, core_user};
use crate::state::Matrix;

/// Most events on one page.
const MAX_LIMIT: usize = 1000;

/// `GET /rooms/{roomId}/messages`.
pub async fn messages(
    State(matrix): State<Matrix>,
    user: User,
    req: get_message_events::v3::Request,
) -> Result<get_message_events::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let dir = match req.dir {
        ruma::api::Direction::Forward => Direction::Forward,
        ruma::api::Direction::Backward => Direction::Backward,
    };
    let range = PageRange {
        from: req.from.as_deref().map(position).transpose()?,
        to: req.to.as_deref().map(position).transpose()?,
        dir,
        limit: limit_of(req.limit),
    };
    let filter = filter(&req.filter)?;
    let page = matrix
        .rooms()
        .page(&user.user_id, &room, range, &filter)
        .await?;
    let mut response = get_message_events::v3::Response::new();
    response.start = token(page.start);
    response.end = page.end.map(token);
    response.chunk = raw_events(&page.events, &user)?;
    response.state = raw_events(&page.members, &user)?;
    Ok(response)
}

/// `GET /rooms/{roomId}/event/{eventId}`.
pub async fn event(
    State(matrix): State<Matrix>,
    user: User,
    req: get_room_event::v3::Request,
) -> Result<get_room_event::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let id = core_event(&req.event_id)?;
    let served = matrix.rooms().event(&user.user_id, &room, &id).await?;
    Ok(get_room_event::v3::Response::new(raw(&client_event(
        &served, &user,
    ))?))
}

/// `GET /rooms/{roomId}/context/{eventId}`: the event, `limit` events
/// around it, and the room's current state.
pub async fn context(
    State(matrix): State<Matrix>,
    user: User,
    req: get_context::v3::Request,
) -> Result<get_context::v3::Response, MatrixError> {
    let room = core_room(&req.room_id)?;
    let id = core_event(&req.event_id)?;
    let limit = limit_of(req.limit);
    let (before, served, after) = matrix
        .rooms()
        .context(&user.user_id, &room, &id, limit)
        .await?;
    let state = matrix.rooms().state_events(&user.user_id, &room).await?;
    let mut response = get_context::v3::Response::new();
    response.start = Some(token(before.end.unwrap_or(0)));
    response.end = Some(token(
        after.end.unwrap_or(
            served
                .event
                .seq
                .max(after.events.last().map_or(0, |e| e.event.seq)),
        ),
    ));
    response.events_before = raw_events(&before.events, &user)?;
    response.event = Some(raw(&client_event(&served, &user))?);
    response.events_after = raw_events(&after.events, &user)?;
    response.state = raw_events(&state, &user)?;
    Ok(response)
}

fn limit_of(limit: ruma::UInt) -> usize {
    usize::try_from(u64::from(limit))
        .unwrap_or(MAX_LIMIT)
        .min(MAX_LIMIT)
}

/// The spec's `RoomEventFilter` as core's.
fn filter(f: &RoomEventFilter) -> Result<EventFilter, MatrixError> {
    let users = |list: &[ruma::OwnedUserId]| -> Result<Vec<UserId>, MatrixError> {
        list.iter().map(|u| core_user(u)).collect()
    };
    Ok(EventFilter {
        types: f.types.clone(),
        not_types: f.not_types.clone(),
        senders: f.senders.as_deref().map(users).transpose()?,
        not_senders: users(&f.not_senders)?,
        lazy_load_members: !f.lazy_load_options.is_disabled(),
    })
}
