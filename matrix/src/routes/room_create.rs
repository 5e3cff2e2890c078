//! `POST /createRoom`: presets, name, topic, invites, `initial_state`,
//! `power_level_content_override`, an alias, `is_direct`, the directory
//! and the room version — translated into core's [`CreateRoom`].

use axon_core::room::Preset;
use axon_core::rooms::CreateRoom;
use axum::extract::State;
use bytes::Bytes;
use ruma::api::client::room::{Visibility, create_room};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::{core_user, ruma_room};
use crate::state::Matrix;

/// One `initial_state` entry.
#[derive(Deserialize)]
struct InitialState {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    state_key: String,
    content: Map<String, Value>,
}

/// `POST /createRoom`.
pub async fn create_room(
    State(matrix): State<Matrix>,
    user: User,
    req: create_room::v3::Request,
) -> Result<create_room::v3::Response, MatrixError> {
    let mut create = CreateRoom::new(user.user_id.clone());
    create.publish = req.visibility == Visibility::Public;
    create.preset = match req.preset {
        None => None,
        Some(create_room::v3::RoomPreset::PrivateChat) => Some(Preset::PrivateChat),
        Some(create_room::v3::RoomPreset::PublicChat) => Some(Preset::PublicChat),
        Some(create_room::v3::RoomPreset::TrustedPrivateChat) => Some(Preset::TrustedPrivateChat),
        Some(other) => {
            return Err(MatrixError::BadJson(format!(
                "unknown preset {}",
                other.as_str()
            )));
        }
    };
    create.name = req.name;
    create.topic = req.topic;
    create.invites = req
        .invite
        .iter()
        .map(|u| core_user(u))
        .collect::<Result<_, _>>()?;
    for raw in &req.initial_state {
        let s: InitialState = serde_json::from_str(raw.json().get())
            .map_err(|e| MatrixError::BadJson(format!("initial_state: {e}")))?;
        let content = Bytes::from(Value::Object(s.content).to_string());
        create
            .initial_state
            .push((s.event_type, s.state_key, content));
    }
    if let Some(over) = &req.power_level_content_override {
        let over: Map<String, Value> = serde_json::from_str(over.json().get())
            .map_err(|e| MatrixError::BadJson(format!("power_level_content_override: {e}")))?;
        create.power_levels_override = Some(over);
    }
    create.alias_localpart = req.room_alias_name;
    create.is_direct = req.is_direct;
    create.room_version = req.room_version.map(|v| v.as_str().to_owned());
    let room = matrix.rooms().create(create).await?;
    Ok(create_room::v3::Response::new(ruma_room(&room)?))
}
