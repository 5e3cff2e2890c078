//! The alias directory and the public room list. Who may change what:
//! an alias is created by a member of its room and deleted by its creator
//! or by whoever may set the room's `m.room.canonical_alias`; a room is
//! published or hidden by whoever may set that event too (as Synapse has it).

use super::{Rooms, RoomsError};
use crate::event::types;
use crate::ids::{RoomId, UserId};
use crate::room::can_read;
use crate::store::{AliasRecord, StoreError};

/// What the public room list shows of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicRoom {
    /// The room.
    pub room_id: RoomId,
    /// `m.room.name`.
    pub name: Option<String>,
    /// `m.room.topic`.
    pub topic: Option<String>,
    /// `m.room.canonical_alias`.
    pub canonical_alias: Option<String>,
    /// `m.room.avatar`'s URL.
    pub avatar_url: Option<String>,
    /// How many users are joined.
    pub joined_members: u64,
    /// The join rule, as the spec names it.
    pub join_rule: String,
    /// Whether guests may join.
    pub guest_can_join: bool,
    /// Whether anyone may read the history without joining.
    pub world_readable: bool,
}

/// One page of the public room list.
#[derive(Clone, Debug, Default)]
pub struct PublicRoomsPage {
    /// The rooms, in room id order.
    pub rooms: Vec<PublicRoom>,
    /// The last room id of the page, when more may follow.
    pub next_after: Option<RoomId>,
    /// How many rooms are published (an estimate: the whole list).
    pub total: u64,
}

/// Most rooms the directory scans for one search page.
const MAX_SCAN: usize = 10_000;

impl Rooms {
    /// Checks an alias's grammar (`#localpart:server`) and that it belongs
    /// to this server.
    pub fn check_alias(&self, alias: &str) -> Result<(), RoomsError> {
        let bad = |why: &str| RoomsError::InvalidAlias(format!("invalid alias {alias:?}: {why}"));
        let rest = alias
            .strip_prefix('#')
            .ok_or_else(|| bad("must start with '#'"))?;
        let (local, server) = rest
            .split_once(':')
            .ok_or_else(|| bad("must be #localpart:server"))?;
        if local.is_empty() || alias.len() > 255 {
            return Err(bad("the local part must be 1 to 255 bytes"));
        }
        if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace is not allowed"));
        }
        if server != self.server_name().as_str() {
            return Err(bad("it is not an alias of this server"));
        }
        Ok(())
    }

    /// The room an alias points to.
    pub async fn resolve_alias(&self, alias: &str) -> Result<AliasRecord, RoomsError> {
        self.store
            .alias(alias)
            .await?
            .ok_or(RoomsError::AliasNotFound)
    }

    /// `user` creates `alias` for `room`; they must be joined to it.
    pub async fn create_alias(
        &self,
        user: &UserId,
        alias: &str,
        room: &RoomId,
    ) -> Result<(), RoomsError> {
        self.check_alias(alias)?;
        self.readable(user, room).await?;
        let record = AliasRecord {
            alias: alias.to_owned(),
            room_id: room.clone(),
            creator: user.clone(),
        };
        match self.store.create_alias(&record).await {
            Err(StoreError::Conflict(_)) => Err(RoomsError::AliasInUse),
            other => Ok(other?),
        }
    }

    /// `user` deletes `alias`.
    pub async fn delete_alias(&self, user: &UserId, alias: &str) -> Result<(), RoomsError> {
        let record = self.resolve_alias(alias).await?;
        if record.creator != *user {
            self.may_manage_directory(user, &record.room_id).await?;
        }
        match self.store.delete_alias(alias).await {
            Err(StoreError::NotFound(_)) => Err(RoomsError::AliasNotFound),
            other => Ok(other?),
        }
    }

    /// The aliases of `room`, for a member.
    pub async fn aliases(&self, user: &UserId, room: &RoomId) -> Result<Vec<String>, RoomsError> {
        self.readable(user, room).await?;
        Ok(self
            .store
            .room_aliases(room)
            .await?
            .into_iter()
            .map(|r| r.alias)
            .collect())
    }

    /// Whether `room` is in the public directory.
    pub async fn is_published(&self, room: &RoomId) -> Result<bool, RoomsError> {
        self.state(room).await?;
        Ok(self.store.is_published(room).await?)
    }

    /// `user` publishes `room` or takes it out of the directory.
    pub async fn set_published(
        &self,
        user: &UserId,
        room: &RoomId,
        published: bool,
    ) -> Result<(), RoomsError> {
        self.may_manage_directory(user, room).await?;
        Ok(self.store.set_published(room, published).await?)
    }

    /// Joined, and enough power to set `m.room.canonical_alias`.
    async fn may_manage_directory(&self, user: &UserId, room: &RoomId) -> Result<(), RoomsError> {
        let state = self.state(room).await?;
        let pl = state.power_levels();
        let required = pl.required_for(types::CANONICAL_ALIAS, true);
        if can_read(&state, user) && pl.user_level(user) >= required {
            Ok(())
        } else {
            Err(RoomsError::NotAllowed(format!(
                "you need power level {required} in the room to change its directory entries"
            )))
        }
    }

    /// A page of the public room list: rooms after `after`, at most `limit`,
    /// those whose name, topic or alias contains `search` (case-insensitive)
    /// when one is given.
    pub async fn public_rooms(
        &self,
        after: Option<&RoomId>,
        limit: usize,
        search: Option<&str>,
    ) -> Result<PublicRoomsPage, RoomsError> {
        let all = self.store.published_rooms(None, MAX_SCAN).await?;
        let total = all.len() as u64;
        let needle = search.map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut rooms = Vec::new();
        let mut more = false;
        for room in all
            .into_iter()
            .filter(|r| after.is_none_or(|a| r.as_str() > a.as_str()))
        {
            let entry = match self.public_room(&room).await {
                Ok(entry) => entry,
                // Published, then gone: nothing to show.
                Err(RoomsError::RoomNotFound) => continue,
                Err(e) => return Err(e),
            };
            if let Some(needle) = &needle {
                let hit = [&entry.name, &entry.topic, &entry.canonical_alias]
                    .iter()
                    .any(|f| {
                        f.as_deref()
                            .is_some_and(|f| f.to_lowercase().contains(needle))
                    });
                if !hit {
                    continue;
                }
            }
            if rooms.len() == limit {
                more = true;
                break;
            }
            rooms.push(entry);
        }
        let next_after = more
            .then(|| rooms.last().map(|r| r.room_id.clone()))
            .flatten();
        Ok(PublicRoomsPage {
            rooms,
            next_after,
            total,
        })
    }

    async fn public_room(&self, room: &RoomId) -> Result<PublicRoom, RoomsError> {
        let state = self.state(room).await?;
        let field = |event_type: &'static str, key: &'static str| {
            let store = &self.store;
            async move {
                let event = store.state_event(room, event_type, "").await?;
                Ok::<_, RoomsError>(event.and_then(|e| {
                    serde_json::from_slice::<serde_json::Value>(&e.content)
                        .ok()?
                        .get(key)?
                        .as_str()
                        .map(str::to_owned)
                }))
            }
        };
        Ok(PublicRoom {
            room_id: room.clone(),
            name: field(types::NAME, "name").await?,
            topic: field(types::TOPIC, "topic").await?,
            canonical_alias: field(types::CANONICAL_ALIAS, "alias").await?,
            avatar_url: field(types::AVATAR, "url").await?,
            joined_members: state.members_with(crate::room::Membership::Join).count() as u64,
            join_rule: state.join_rule().as_str().to_owned(),
            guest_can_join: field(types::GUEST_ACCESS, "guest_access").await?.as_deref()
                == Some("can_join"),
            world_readable: field(types::HISTORY_VISIBILITY, "history_visibility")
                .await?
                .as_deref()
                == Some("world_readable"),
        })
    }
}
