//! Discovery: `GET /_matrix/client/versions`, `GET /.well-known/matrix/client`
//! and `GET /capabilities`.

use axon_core::room::RoomVersion;
use axum::extract::State;
use ruma::RoomVersionId;
use ruma::api::client::discovery::discover_homeserver::{self, HomeserverInfo};
// m.set_displayname and m.set_avatar_url are deprecated in v1.16 but are
// what v1.11 clients read.
#[allow(deprecated)]
use ruma::api::client::discovery::get_capabilities::v3::{
    Capabilities, ChangePasswordCapability, GetLoginTokenCapability, RoomVersionStability,
    RoomVersionsCapability, SetAvatarUrlCapability, SetDisplayNameCapability,
    ThirdPartyIdChangesCapability,
};
use ruma::api::client::discovery::{get_capabilities, get_supported_versions};

use crate::auth::{NoAuth, User};
use crate::error::MatrixError;
use crate::state::Matrix;

/// The spec versions clients may assume: the client-server API as of
/// v1.11 (and the r0 paths older clients still use). What is implemented
/// of it is listed in docs/matrix.md.
const VERSIONS: &[&str] = &[
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
    "v1.11",
];

/// `GET /_matrix/client/versions`. A token is not looked at: a client whose
/// token just expired must still learn what the server speaks.
pub async fn versions(
    _: State<Matrix>,
    _: NoAuth,
    _: get_supported_versions::Request,
) -> Result<get_supported_versions::Response, MatrixError> {
    Ok(get_supported_versions::Response::new(
        VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
    ))
}

/// `GET /.well-known/matrix/client`: the configured public base URL, or
/// 404 when there is none (as Synapse answers without `public_baseurl`).
pub async fn well_known(
    State(matrix): State<Matrix>,
    _: NoAuth,
    _: discover_homeserver::Request,
) -> Result<discover_homeserver::Response, MatrixError> {
    let base_url = matrix.config().public_base_url.clone().ok_or_else(|| {
        MatrixError::NotFound("no public base URL is configured (matrix.public_base_url)".into())
    })?;
    Ok(discover_homeserver::Response::new(HomeserverInfo::new(
        base_url,
    )))
}

/// `GET /capabilities`.
#[allow(deprecated)]
pub async fn capabilities(
    _: State<Matrix>,
    _: User,
    _: get_capabilities::v3::Request,
) -> Result<get_capabilities::v3::Response, MatrixError> {
    let mut caps = Capabilities::new();
    caps.change_password = ChangePasswordCapability::new(true);
    caps.set_displayname = SetDisplayNameCapability::new(true);
    caps.set_avatar_url = SetAvatarUrlCapability::new(true);
    caps.thirdparty_id_changes = ThirdPartyIdChangesCapability::new(false);
    caps.get_login_token = GetLoginTokenCapability::new(false);
    caps.room_versions = room_versions();
    Ok(get_capabilities::v3::Response::new(caps))
}

/// The versions `createRoom` accepts, and the default (see
/// [`axon_core::room::RoomVersion`]).
fn room_versions() -> RoomVersionsCapability {
    let available = RoomVersion::SUPPORTED
        .iter()
        .filter_map(|v| {
            Some((
                RoomVersionId::try_from(*v).ok()?,
                RoomVersionStability::Stable,
            ))
        })
        .collect();
    RoomVersionsCapability::new(
        RoomVersionId::try_from(RoomVersion::default().as_str()).unwrap_or(RoomVersionId::V11),
        available,
    )
}
