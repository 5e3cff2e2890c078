//! [`SyncFilter`]: the parts of the spec's filter that `/sync` applies,
//! from an inline definition or a stored filter id.
//!
//! Stored filters are account data of the user under the private type
//! `io.axon.filter.{id}` (see [`crate::routes::filter`]); `/sync` never
//! shows those types as account data.

use std::collections::HashMap;
use std::sync::Arc;

use axon_core::rooms::EventFilter;
use axon_core::{RoomId, UserId};
use parking_lot::Mutex;
use ruma::api::client::filter::{self, FilterDefinition, LazyLoadOptions, RoomEventFilter};
use ruma::api::client::sync::sync_events::v3::Filter;

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::{core_room, core_user};
use crate::routes::filter::stored_filter;
use crate::state::Matrix;

/// Timeline events per room when the filter gives no limit.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// Most timeline events per room, whatever the filter asks.
const MAX_TIMELINE_LIMIT: usize = 100;

/// What a `/sync` keeps.
#[derive(Clone, Debug)]
pub struct SyncFilter {
    /// Timeline events kept.
    pub timeline: EventFilter,
    /// Most timeline events per room.
    pub timeline_limit: usize,
    /// Only members that timeline events need, in `state`.
    pub lazy_load_members: bool,
    /// With lazy loading, members the device was already sent too.
    pub include_redundant_members: bool,
    /// Only these rooms; `None` is all.
    pub rooms: Option<Vec<RoomId>>,
    /// Never these rooms.
    pub not_rooms: Vec<RoomId>,
    /// Rooms left long ago on an initial sync too.
    pub include_leave: bool,
    /// Presence events kept (by type).
    pub presence: EventFilter,
    /// Global account data kept (by type).
    pub account_data: EventFilter,
    /// Room account data kept (by type).
    pub room_account_data: EventFilter,
    /// Ephemeral room events kept (by type).
    pub ephemeral: EventFilter,
}

/// Most stored filters kept decoded; past it the table starts over.
const MAX_FILTERS_CACHED: usize = 100_000;

/// Stored filters, decoded, by (user, filter id). A stored filter never
/// changes (a new one gets a new id, and the account data API refuses its
/// type), so a client that names the same filter on every `/sync` has it
/// read and decoded once.
#[derive(Default)]
pub struct StoredFilters {
    decoded: Mutex<HashMap<(UserId, String), Arc<SyncFilter>>>,
}

impl SyncFilter {
    /// The filter a request names, or everything.
    pub async fn resolve(
        matrix: &Matrix,
        user: &User,
        filter: Option<&Filter>,
    ) -> Result<Arc<Self>, MatrixError> {
        let definition = match filter {
            None => FilterDefinition::default(),
            Some(Filter::FilterDefinition(d)) => d.clone(),
            Some(Filter::FilterId(id)) => {
                let key = (user.user_id.clone(), id.clone());
                let cache = &matrix.stored_filters().decoded;
                if let Some(known) = cache.lock().get(&key) {
                    return Ok(Arc::clone(known));
                }
                let definition = stored_filter(matrix, &user.user_id, id)
                    .await?
                    .ok_or_else(|| MatrixError::InvalidParam(format!("unknown filter {id:?}")))?;
                let decoded = Arc::new(Self::of(&definition)?);
                let mut cache = cache.lock();
                if cache.len() >= MAX_FILTERS_CACHED {
                    cache.clear();
                }
                cache.insert(key, Arc::clone(&decoded));
                return Ok(decoded);
            }
            Some(_) => return Err(MatrixError::InvalidParam("unknown filter form".into())),
        };
        Self::of(&definition).map(Arc::new)
    }

    /// The filter of a definition.
    pub fn of(d: &FilterDefinition) -> Result<Self, MatrixError> {
        let rooms = |list: &[ruma::OwnedRoomId]| -> Result<Vec<RoomId>, MatrixError> {
            list.iter().map(|r| core_room(r)).collect()
        };
        let timeline = &d.room.timeline;
        let limit = timeline
            .limit
            .map_or(DEFAULT_TIMELINE_LIMIT, |l| {
                usize::try_from(u64::from(l)).unwrap_or(MAX_TIMELINE_LIMIT)
            })
            .clamp(1, MAX_TIMELINE_LIMIT);
        Ok(Self {
            timeline: room_event_filter(timeline)?,
            timeline_limit: limit,
            lazy_load_members: !d.room.state.lazy_load_options.is_disabled()
                || !timeline.lazy_load_options.is_disabled(),
            include_redundant_members: [&d.room.state, timeline].iter().any(|f| {
                matches!(
                    f.lazy_load_options,
                    LazyLoadOptions::Enabled {
                        include_redundant_members: true
                    }
                )
            }),
            rooms: d.room.rooms.as_deref().map(rooms).transpose()?,
            not_rooms: rooms(&d.room.not_rooms)?,
            include_leave: d.room.include_leave,
            presence: types_filter(&d.presence),
            account_data: types_filter(&d.account_data),
            room_account_data: room_event_filter(&d.room.account_data)?,
            ephemeral: room_event_filter(&d.room.ephemeral)?,
        })
    }

    /// Whether `room` is wanted at all.
    pub fn wants_room(&self, room: &RoomId) -> bool {
        !self.not_rooms.contains(room) && self.rooms.as_ref().is_none_or(|r| r.contains(room))
    }
}

/// The spec's `RoomEventFilter` as core's.
fn room_event_filter(f: &RoomEventFilter) -> Result<EventFilter, MatrixError> {
    let users = |list: &[ruma::OwnedUserId]| -> Result<Vec<_>, MatrixError> {
        list.iter().map(|u| core_user(u)).collect()
    };
    let mut out = EventFilter {
        types: f.types.clone(),
        not_types: f.not_types.clone(),
        senders: f.senders.as_deref().map(users).transpose()?,
        not_senders: users(&f.not_senders)?,
        lazy_load_members: !f.lazy_load_options.is_disabled(),
    };
    // `limit: 0` keeps nothing of an ephemeral or account data section.
    if f.limit.is_some_and(|l| u64::from(l) == 0) {
        out.types = Some(Vec::new());
    }
    Ok(out)
}

/// The spec's plain `Filter` (presence, account data): types only; senders
/// are ignored.
fn types_filter(f: &filter::Filter) -> EventFilter {
    EventFilter {
        types: if f.limit.is_some_and(|l| u64::from(l) == 0) {
            Some(Vec::new())
        } else {
            f.types.clone()
        },
        not_types: f.not_types.clone(),
        ..EventFilter::default()
    }
}
