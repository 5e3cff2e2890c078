//! Reads for Matrix `/sync` that the plain reads do not cover, each with
//! its own membership rule (invariant 6): events of a room the user is in
//! *or has left* (up to their leave), the stripped state an invitee may
//! see, and the count of unread messages.

use std::sync::Arc;

use super::{EventFilter, Page, PageRange, Rooms, RoomsError, ServedEvent};
use crate::event::{Event, types};
use crate::ids::{RoomId, UserId};
use crate::room::{AuthError, Membership, RoomState};
use crate::store::Direction;

/// State event types an invitee is shown (the spec's recommended stripped
/// state), besides their own member event.
const STRIPPED_STATE: &[&str] = &[
    types::CREATE,
    types::NAME,
    types::JOIN_RULES,
    types::CANONICAL_ALIAS,
    types::AVATAR,
    types::TOPIC,
];

/// Most events read to count unread messages in one room.
const MAX_UNREAD_SCAN: u64 = 1_000;
/// Most (user, room) unread counts remembered; past it the cache starts
/// over (a forgotten count is recounted, at most [`MAX_UNREAD_SCAN`]
/// events).
const MAX_UNREAD_CACHED: usize = 200_000;

/// A user's unread count in a room as of `counted_to`, valid while their
/// read receipt stays at `read_upto`.
#[derive(Clone, Copy, Debug)]
struct UnreadMark {
    read_upto: u64,
    /// The room's receipts stream position `read_upto` was read at.
    receipts_at: u64,
    counted_to: u64,
    count: u64,
}

/// Unread counts by (user, room): a `/sync` after new events counts only
/// those instead of everything after the read receipt.
#[derive(Default)]
pub(super) struct UnreadCache {
    marks: papaya::HashMap<(UserId, RoomId), UnreadMark>,
}
/// Most events walked back to find a user's earlier membership; a user
/// whose last member event is further back has been in the room a long
/// time, and is taken to be joined.
const MAX_MEMBERSHIP_SCAN: usize = 10_000;
/// Events read per step of that walk.
const MEMBERSHIP_STEP: usize = 500;

impl Rooms {
    /// How far `user` may read `room`: to the latest event while joined, to
    /// their leave (or ban) event after leaving; refused otherwise.
    async fn readable_upto(
        &self,
        user: &UserId,
        room: &RoomId,
    ) -> Result<(Arc<RoomState>, u64), RoomsError> {
        let state = self.state(room).await?;
        match state.membership(user) {
            Some(Membership::Join) => {
                let head = self.store.room_head(room).await?.unwrap_or(0);
                Ok((state, head))
            }
            Some(Membership::Leave | Membership::Ban) => {
                let left = self
                    .store
                    .state_event(room, types::MEMBER, user.as_str())
                    .await?
                    .map_or(0, |e| e.seq);
                Ok((state, left))
            }
            _ => Err(RoomsError::Forbidden(AuthError::NotJoined(user.clone()))),
        }
    }

    /// Events of `room` as `user` is shown them, dropping any past what
    /// they may read (events after they left).
    pub async fn serve_events(
        &self,
        user: &UserId,
        room: &RoomId,
        events: Vec<Event>,
    ) -> Result<Vec<ServedEvent>, RoomsError> {
        let (state, upto) = self.readable_upto(user, room).await?;
        let events = events.into_iter().filter(|e| e.seq <= upto).collect();
        self.serve_all(&state, user, events).await
    }

    /// The latest `limit` events passing `filter` that `user` may read:
    /// up to now while joined, up to their leave after leaving.
    pub async fn latest_page(
        &self,
        user: &UserId,
        room: &RoomId,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Page, RoomsError> {
        let (state, upto) = self.readable_upto(user, room).await?;
        let range = PageRange {
            from: Some(upto),
            to: None,
            dir: Direction::Backward,
            limit,
        };
        self.page_upto(&state, user, upto, range, filter).await
    }

    /// What an invitee sees of a room before joining: the stripped state
    /// events and their own invite; refused for anyone not invited.
    pub async fn invite_state(
        &self,
        user: &UserId,
        room: &RoomId,
    ) -> Result<Vec<Event>, RoomsError> {
        let state = self.state(room).await?;
        if state.membership(user) != Some(Membership::Invite) {
            return Err(RoomsError::Forbidden(AuthError::NotJoined(user.clone())));
        }
        let mut out = Vec::new();
        for t in STRIPPED_STATE {
            if let Some(e) = self.store.state_event(room, t, "").await? {
                out.push(e);
            }
        }
        if let Some(e) = self
            .store
            .state_event(room, types::MEMBER, user.as_str())
            .await?
        {
            out.push(e);
        }
        Ok(out)
    }

    /// Messages in `room` after `user`'s `m.read` receipt that others sent,
    /// for a member. The first count looks at most [`MAX_UNREAD_SCAN`]
    /// events; later ones (while the receipt stays put) add only the
    /// events since the previous count. `known` are events of the room the
    /// caller already holds (ascending, consecutive `seq`s, such as a
    /// `/sync` window's): those are counted without reading them again.
    pub async fn unread_count(
        &self,
        user: &UserId,
        room: &RoomId,
        known: &[Event],
    ) -> Result<u64, RoomsError> {
        self.readable(user, room).await?;
        let head = self.store.room_head(room).await?.unwrap_or(0);
        let key = (user.clone(), room.clone());
        let cached = self.unread.marks.pin().get(&key).copied();
        // The receipt is read again only when the room's receipts changed
        // since the last count (the stream position is taken first, so a
        // receipt stored meanwhile is read next time).
        let receipts = &self.ephemeral.streams.receipts;
        let receipts_at = receipts.head();
        let read_upto = match cached {
            Some(m) if !receipts.changed_since(room, m.receipts_at) => m.read_upto,
            _ => self.read_upto(user, room).await?,
        };
        let (from, base) = match cached {
            Some(m)
                if m.read_upto == read_upto
                    && m.counted_to <= head
                    && head - m.counted_to <= MAX_UNREAD_SCAN =>
            {
                (m.counted_to + 1, m.count)
            }
            _ => (
                (read_upto + 1).max(head.saturating_sub(MAX_UNREAD_SCAN) + 1),
                0,
            ),
        };
        let counts = |e: &Event| e.sender != *user && e.event_type == types::MESSAGE;
        let mut count = base;
        // `from..=head` is counted from `known` where it covers it, and
        // from the store before and after that.
        let usable = known.iter().all(|e| e.room_id == *room)
            && known.windows(2).all(|w| w[1].seq == w[0].seq + 1);
        let known = if usable { known } else { &[] };
        count += known
            .iter()
            .filter(|e| e.seq >= from && e.seq <= head && counts(e))
            .count() as u64;
        let gaps = match (known.first(), known.last()) {
            (Some(first), Some(last)) => [
                (from, head.min(first.seq.saturating_sub(1))),
                (from.max(last.seq + 1), head),
            ],
            _ => [(from, head), (1, 0)],
        };
        for (lo, hi) in gaps {
            if lo > hi {
                continue;
            }
            let events = self
                .store
                .events(room, lo, hi, Direction::Forward, MAX_UNREAD_SCAN as usize)
                .await?;
            count += events.iter().filter(|e| counts(e)).count() as u64;
        }
        let marks = self.unread.marks.pin();
        if marks.len() >= MAX_UNREAD_CACHED {
            marks.clear();
        }
        marks.insert(
            key,
            UnreadMark {
                read_upto,
                receipts_at,
                counted_to: head,
                count,
            },
        );
        Ok(count)
    }

    /// The `seq` of the event `user`'s `m.read` receipt in `room` is on
    /// (0 without one).
    async fn read_upto(&self, user: &UserId, room: &RoomId) -> Result<u64, RoomsError> {
        let mut read_upto = 0;
        for r in self.store.receipts(room).await? {
            if r.user_id == *user
                && r.receipt_type == "m.read"
                && let Some(e) = self.store.event(&r.event_id).await?
            {
                read_upto = read_upto.max(e.seq);
            }
        }
        Ok(read_upto)
    }

    /// `user`'s own membership in `room` just before the event with `seq`
    /// (`None`: never a member), found by walking back from it (at most
    /// [`MAX_MEMBERSHIP_SCAN`] events; further back counts as joined). The
    /// store keeps no `prev_content`, and `/sync` must know whether a
    /// member event in its window is a first join or a leave of a member.
    pub async fn membership_before(
        &self,
        room: &RoomId,
        user: &UserId,
        seq: u64,
    ) -> Result<Option<Membership>, RoomsError> {
        let mut hi = seq.saturating_sub(1);
        let mut walked = 0;
        while hi >= 1 {
            let batch = self
                .store
                .events(room, 1, hi, Direction::Backward, MEMBERSHIP_STEP)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(None);
            };
            hi = last.seq.saturating_sub(1);
            walked += batch.len();
            for e in &batch {
                if let Some((who, m)) = e.membership_change()
                    && who == *user
                {
                    return Ok(Some(m));
                }
            }
            if walked >= MAX_MEMBERSHIP_SCAN {
                return Ok(Some(Membership::Join));
            }
        }
        Ok(None)
    }
}
