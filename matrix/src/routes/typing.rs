//! `PUT /rooms/{roomId}/typing/{userId}`, through core's
//! [`Ephemeral::set_typing`](axon_core::Ephemeral::set_typing): native
//! clients in the room see Matrix typing notices and the other way round.

use axum::extract::State;
use ruma::api::client::typing::create_typing_event::v3::{Request, Response, Typing};

use crate::auth::User;
use crate::error::MatrixError;
use crate::ids::core_room;
use crate::routes::filter::own;
use crate::state::Matrix;

/// `PUT /rooms/{roomId}/typing/{userId}`.
pub async fn typing(
    State(matrix): State<Matrix>,
    user: User,
    req: Request,
) -> Result<Response, MatrixError> {
    own(&user, &req.user_id)?;
    let room = core_room(&req.room_id)?;
    matrix.rooms().readable(&user.user_id, &room).await?;
    let (typing, timeout) = match req.state {
        Typing::Yes(info) => (true, info.timeout),
        Typing::No => (false, std::time::Duration::ZERO),
    };
    matrix
        .services()
        .ephemeral
        .set_typing(&room, &user.user_id, typing, timeout);
    Ok(Response::new())
}
