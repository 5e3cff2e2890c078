//! [`CreateRoom`]: `createRoom` with a preset, initial state, invites, an
//! alias and a place in the public directory.

use bytes::Bytes;

use super::{Rooms, RoomsError};
use crate::event::types;
use crate::ids::{RoomId, UserId};
use crate::room::{Preset, RoomCreation, RoomVersion};
use crate::store::{AliasRecord, StoreError};

/// A request to create a room.
#[derive(Clone, Debug)]
pub struct CreateRoom {
    /// Who creates it.
    pub creator: UserId,
    /// The preset; `None` picks one from `publish`.
    pub preset: Option<Preset>,
    /// Publish the room in the public directory.
    pub publish: bool,
    /// `m.room.name`.
    pub name: Option<String>,
    /// `m.room.topic`.
    pub topic: Option<String>,
    /// Users to invite.
    pub invites: Vec<UserId>,
    /// More state events `(type, state key, content)`.
    pub initial_state: Vec<(String, String, Bytes)>,
    /// Keys laid over the generated power levels.
    pub power_levels_override: Option<serde_json::Map<String, serde_json::Value>>,
    /// The local part of an alias to create, `#{this}:server`.
    pub alias_localpart: Option<String>,
    /// Mark the invites as direct chats.
    pub is_direct: bool,
    /// The room version; `None` is the default (11).
    pub room_version: Option<String>,
}

impl CreateRoom {
    /// A private room of `creator` with nothing else set.
    pub fn new(creator: UserId) -> Self {
        Self {
            creator,
            preset: None,
            publish: false,
            name: None,
            topic: None,
            invites: Vec::new(),
            initial_state: Vec::new(),
            power_levels_override: None,
            alias_localpart: None,
            is_direct: false,
            room_version: None,
        }
    }
}

impl Rooms {
    /// Creates a room: every initial event is appended atomically (the room
    /// exists with its whole initial state or not at all); the alias and
    /// the directory entry follow.
    pub async fn create(&self, req: CreateRoom) -> Result<RoomId, RoomsError> {
        let version = match &req.room_version {
            None => RoomVersion::default(),
            Some(v) => RoomVersion::parse(v)
                .ok_or_else(|| RoomsError::UnsupportedRoomVersion(v.clone()))?,
        };
        for (event_type, _, _) in &req.initial_state {
            // The create and member events are the server's to write.
            if event_type == types::CREATE || event_type == types::MEMBER {
                return Err(RoomsError::BadRequest(format!(
                    "initial_state may not contain {event_type}"
                )));
            }
        }
        let alias = match &req.alias_localpart {
            Some(local) => {
                let alias = format!("#{local}:{}", self.server_name());
                self.check_alias(&alias)?;
                if self.store.alias(&alias).await?.is_some() {
                    return Err(RoomsError::AliasInUse);
                }
                Some(alias)
            }
            None => None,
        };
        let mut invites: Vec<UserId> = Vec::new();
        for user in req.invites {
            if user != req.creator && !invites.contains(&user) {
                invites.push(user);
            }
        }
        let preset = req.preset.unwrap_or(Preset::default_for(req.publish));
        let room_id = RoomId::random(self.server_name());
        let mut creation = RoomCreation::new(room_id.clone(), req.creator.clone());
        creation.version = version;
        creation.join_rule = preset.join_rule();
        creation.history_visibility = Some(preset.history_visibility().into());
        creation.guest_access = Some(preset.guest_access().into());
        creation.power_levels = Some(preset.power_levels(&req.creator, &invites));
        creation.power_levels_override = req.power_levels_override;
        creation.canonical_alias = alias.clone();
        creation.initial_state = req.initial_state;
        creation.name = req.name;
        creation.topic = req.topic;
        creation.creator_profile = self.profile(&req.creator).await?;
        for user in &invites {
            creation.invite_profiles.push(self.profile(user).await?);
        }
        creation.invites = invites;
        creation.is_direct = req.is_direct;
        self.sequencer.append_all(creation.events()).await?;

        if let Some(alias) = alias {
            let record = AliasRecord {
                alias,
                room_id: room_id.clone(),
                creator: req.creator,
            };
            match self.store.create_alias(&record).await {
                Ok(()) => {}
                // Taken between the check and now: the room stays, without it.
                Err(StoreError::Conflict(_)) => return Err(RoomsError::AliasInUse),
                Err(e) => return Err(e.into()),
            }
        }
        if req.publish {
            self.store.set_published(&room_id, true).await?;
        }
        Ok(room_id)
    }
}
