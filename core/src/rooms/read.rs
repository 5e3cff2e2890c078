//! Reads that check membership first (invariant 6): current state, single
//! events, pages of the timeline, an event's context and the member list.
//! Redacted events are served with their content stripped by the room
//! version's algorithm ([`redact_content`]).
//!
//! Positions: a page boundary is a `seq` *between* events — position `p`
//! lies after the event with `seq` `p` (position 0 is before the first).
//! Walking backward from `p` yields `seq` `p, p-1, ...`; forward from `p`
//! yields `p+1, p+2, ...`. Faces turn positions into their own tokens.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{EventFilter, Rooms, RoomsError};
use crate::event::{Event, TxnId, types};
use crate::ids::{EventId, RoomId, UserId};
use crate::room::{Membership, RoomState, redact_content};
use crate::store::Direction;

/// An event as a client is shown it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedEvent {
    /// The event; its content stripped if it was redacted.
    pub event: Event,
    /// The redaction that stripped it.
    pub redacted_because: Option<Event>,
    /// The device and transaction id it was sent with, if any; looked up
    /// only when the viewer is the sender (a face shows the transaction id
    /// to the sending device only).
    pub txn: Option<TxnId>,
}

/// One page of a room's timeline.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// The events, in the order walked.
    pub events: Vec<ServedEvent>,
    /// Where the page started.
    pub start: u64,
    /// Where the next page starts; `None` at the end of the timeline (or of
    /// the requested range).
    pub end: Option<u64>,
    /// The member events of the page's senders, if the filter asked.
    pub members: Vec<ServedEvent>,
}

/// Which part of the timeline a page covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    /// Start position; `None` is the latest event going backward, the
    /// first going forward.
    pub from: Option<u64>,
    /// The position the page must not pass.
    pub to: Option<u64>,
    /// Which way to walk.
    pub dir: Direction,
    /// Most events on the page.
    pub limit: usize,
}

/// Events read from the store per step while filling a filtered page.
const SCAN_STEP: usize = 100;
/// Most events a single page request reads before it stops.
const MAX_SCAN: usize = 2_000;

impl Rooms {
    /// The room's current state events, for a member.
    pub async fn state_events(
        &self,
        user: &UserId,
        room: &RoomId,
    ) -> Result<Vec<ServedEvent>, RoomsError> {
        let state = self.readable(user, room).await?;
        let mut events = self.store.state_events(room).await?;
        events.sort_by_key(|e| e.seq);
        self.serve_all(&state, user, events).await
    }

    /// One current state event, for a member.
    pub async fn state_event(
        &self,
        user: &UserId,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<ServedEvent, RoomsError> {
        let state = self.readable(user, room).await?;
        let event = self
            .store
            .state_event(room, event_type, state_key)
            .await?
            .ok_or(RoomsError::EventNotFound)?;
        self.serve(&state, user, event).await
    }

    /// One event of the room, for a member.
    pub async fn event(
        &self,
        user: &UserId,
        room: &RoomId,
        id: &EventId,
    ) -> Result<ServedEvent, RoomsError> {
        let state = self.readable(user, room).await?;
        let event = self
            .store
            .event(id)
            .await?
            .filter(|e| e.room_id == *room)
            .ok_or(RoomsError::EventNotFound)?;
        self.serve(&state, user, event).await
    }

    /// A page of the timeline: at most `range.limit` events that pass
    /// `filter`, from `range.from` toward `range.to`.
    pub async fn page(
        &self,
        user: &UserId,
        room: &RoomId,
        range: PageRange,
        filter: &EventFilter,
    ) -> Result<Page, RoomsError> {
        let state = self.readable(user, room).await?;
        // The shared state's head moves only with state changes; the store's
        // with every event.
        let head = self.store.room_head(room).await?.unwrap_or(0);
        self.page_upto(&state, user, head, range, filter).await
    }

    /// [`page`](Self::page) without the membership check, never past
    /// `head` (the latest event, or for a user who left, their leave).
    pub(super) async fn page_upto(
        &self,
        state: &Arc<RoomState>,
        viewer: &UserId,
        head: u64,
        range: PageRange,
        filter: &EventFilter,
    ) -> Result<Page, RoomsError> {
        let PageRange {
            from,
            to,
            dir,
            limit,
        } = range;
        let room = state.room_id();
        let start = match (from, dir) {
            (Some(p), _) => p.min(head),
            (None, Direction::Backward) => head,
            (None, Direction::Forward) => 0,
        };
        let mut kept = Vec::new();
        let mut at = start;
        let mut scanned = 0;
        // The lowest (backward) or highest (forward) seq the page may reach.
        let (low, high) = match dir {
            Direction::Backward => (to.map_or(1, |t| t + 1), head),
            Direction::Forward => (1, to.map_or(head, |t| t.min(head))),
        };
        let exhausted = loop {
            let (lo, hi) = match dir {
                Direction::Backward if at >= low => (low, at),
                Direction::Forward if at < high => (at + 1, high),
                _ => break true,
            };
            if kept.len() >= limit || scanned >= MAX_SCAN {
                break false;
            }
            let want = SCAN_STEP.min(limit - kept.len()).max(1);
            let batch = self.store.events(room, lo, hi, dir, want).await?;
            if batch.is_empty() {
                break true;
            }
            scanned += batch.len();
            for event in batch {
                at = match dir {
                    Direction::Backward => event.seq - 1,
                    Direction::Forward => event.seq,
                };
                if filter.matches(&event) {
                    kept.push(event);
                }
            }
        };
        let members = if filter.lazy_load_members {
            let senders: BTreeSet<&UserId> = kept.iter().map(|e| &e.sender).collect();
            let mut members = Vec::new();
            for sender in senders {
                if let Some(e) = self
                    .store
                    .state_event(room, types::MEMBER, sender.as_str())
                    .await?
                {
                    members.push(e);
                }
            }
            self.serve_all(state, viewer, members).await?
        } else {
            Vec::new()
        };
        Ok(Page {
            events: self.serve_all(state, viewer, kept).await?,
            start,
            end: (!exhausted).then_some(at),
            members,
        })
    }

    /// An event with up to `limit` events around it (half before, half
    /// after), and the room's current state.
    pub async fn context(
        &self,
        user: &UserId,
        room: &RoomId,
        id: &EventId,
        limit: usize,
    ) -> Result<(Page, ServedEvent, Page), RoomsError> {
        let event = self.event(user, room, id).await?;
        let seq = event.event.seq;
        let before_limit = limit / 2;
        let after_limit = limit - before_limit;
        let all = EventFilter::default();
        let before = self
            .page(
                user,
                room,
                PageRange {
                    from: Some(seq - 1),
                    to: None,
                    dir: Direction::Backward,
                    limit: before_limit,
                },
                &all,
            )
            .await?;
        let after = self
            .page(
                user,
                room,
                PageRange {
                    from: Some(seq),
                    to: None,
                    dir: Direction::Forward,
                    limit: after_limit,
                },
                &all,
            )
            .await?;
        Ok((before, event, after))
    }

    /// The room's member events, for a member: only `membership` when
    /// given, never `not_membership`; as of position `at` when given (the
    /// member events up to it, found by walking the timeline from the
    /// start, so the cost grows with the room's history).
    pub async fn members(
        &self,
        user: &UserId,
        room: &RoomId,
        at: Option<u64>,
        membership: Option<Membership>,
        not_membership: Option<Membership>,
    ) -> Result<Vec<ServedEvent>, RoomsError> {
        let state = self.readable(user, room).await?;
        let head = self.store.room_head(room).await?.unwrap_or(0);
        let current = match at {
            Some(at) if at < head => self.member_events_at(room, at).await?,
            _ => self.store.state_events(room).await?,
        };
        let mut events: Vec<Event> = current
            .into_iter()
            .filter(|e| {
                let Some((_, m)) = e.membership_change() else {
                    return false;
                };
                membership.is_none_or(|want| m == want) && not_membership != Some(m)
            })
            .collect();
        events.sort_by_key(|e| e.seq);
        self.serve_all(&state, user, events).await
    }

    /// The latest member event of each user with `seq` up to `at`.
    async fn member_events_at(&self, room: &RoomId, at: u64) -> Result<Vec<Event>, RoomsError> {
        let mut latest: std::collections::HashMap<String, Event> = Default::default();
        let mut next = 1;
        while next <= at {
            let batch = self
                .store
                .events(room, next, at, Direction::Forward, SCAN_STEP * 10)
                .await?;
            let Some(last) = batch.last().map(|e| e.seq) else {
                break;
            };
            next = last + 1;
            for e in batch {
                if e.event_type == types::MEMBER
                    && let Some(key) = &e.state_key
                {
                    latest.insert(key.clone(), e);
                }
            }
        }
        Ok(latest.into_values().collect())
    }

    pub(super) async fn serve_all(
        &self,
        state: &Arc<RoomState>,
        viewer: &UserId,
        events: Vec<Event>,
    ) -> Result<Vec<ServedEvent>, RoomsError> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(self.serve(state, viewer, e).await?);
        }
        Ok(out)
    }

    /// Applies a redaction if one takes effect: it must be of the same room
    /// and by the event's sender or by someone with the `redact` level (a
    /// redaction that came in over a face that did not check is ignored).
    async fn serve(
        &self,
        state: &RoomState,
        viewer: &UserId,
        mut event: Event,
    ) -> Result<ServedEvent, RoomsError> {
        // Only the sender's own devices are shown the transaction id.
        let txn = if event.sender == *viewer {
            self.store.event_txn(&event.event_id).await?
        } else {
            None
        };
        let Some(redaction) = self.store.redaction_of(&event.event_id).await? else {
            return Ok(ServedEvent {
                event,
                redacted_because: None,
                txn,
            });
        };
        let pl = state.power_levels();
        let effective = redaction.room_id == event.room_id
            && (redaction.sender == event.sender || pl.user_level(&redaction.sender) >= pl.redact);
        if !effective {
            return Ok(ServedEvent {
                event,
                redacted_because: None,
                txn,
            });
        }
        // The version decides what redaction keeps; read only when needed.
        let version = self.version(&event.room_id).await?;
        let content = serde_json::from_slice(&event.content).unwrap_or(serde_json::Value::Null);
        let redacted = redact_content(&event.event_type, &content, version);
        event.content = bytes::Bytes::from(redacted.to_string());
        Ok(ServedEvent {
            event,
            redacted_because: Some(redaction),
            txn,
        })
    }
}
