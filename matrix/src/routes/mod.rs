//! Every endpoint of the adapter, one module per API group. Each handler is
//! `async fn(State<Matrix>, Auth, Request) -> Result<Response, MatrixError>`
//! and is registered by its ruma request type ([`crate::router`]).

pub mod account;
pub mod account_data;
pub mod directory;
pub mod discovery;
pub mod filter;
pub mod login;
pub mod membership;
pub mod messages;
pub mod presence;
pub mod profile;
pub mod receipts;
pub mod register;
pub mod room_create;
pub mod send;
pub mod state;
pub mod sync;
pub mod typing;

use axum::Router;

use crate::router::RumaRoutes as _;
use crate::state::Matrix;

/// The routes of every implemented endpoint.
pub fn all() -> Router<Matrix> {
    Router::new()
        .ruma(discovery::versions)
        .ruma(discovery::well_known)
        .ruma(discovery::capabilities)
        .ruma(register::register)
        .ruma(register::username_available)
        .ruma(register::registration_token_validity)
        .ruma(login::login_types)
        .ruma(login::login)
        .ruma(login::refresh)
        .ruma(login::logout)
        .ruma(login::logout_all)
        .ruma(account::whoami)
        .ruma(account::change_password)
        .ruma(account::deactivate)
        .ruma(profile::profile)
        .ruma(profile::display_name)
        .ruma(profile::set_display_name)
        .ruma(profile::avatar_url)
        .ruma(profile::set_avatar_url)
        .ruma(room_create::create_room)
        .ruma(membership::join_by_id)
        .ruma(membership::join_by_id_or_alias)
        .ruma(membership::knock)
        .ruma(membership::invite)
        .ruma(membership::leave)
        .ruma(membership::kick)
        .ruma(membership::ban)
        .ruma(membership::unban)
        .ruma(membership::forget)
        .ruma(membership::joined)
        .ruma(membership::members)
        .ruma(membership::joined_members_of)
        .ruma(directory::put_alias)
        .ruma(directory::get_alias)
        .ruma(directory::delete_alias)
        .ruma(directory::room_aliases)
        .ruma(directory::visibility)
        .ruma(directory::set_visibility)
        .ruma(directory::public_rooms)
        .ruma(directory::public_rooms_filtered)
        .ruma(state::all)
        .ruma(state::one)
        .ruma(state::put)
        .ruma(send::message)
        .ruma(send::redact)
        .ruma(messages::messages)
        .ruma(messages::event)
        .ruma(messages::context)
        .ruma(sync::sync)
        .ruma(typing::typing)
        .ruma(receipts::receipt)
        .ruma(receipts::read_markers)
        .ruma(presence::get)
        .ruma(presence::set)
        .ruma(account_data::get_global)
        .ruma(account_data::set_global)
        .ruma(account_data::get_room)
        .ruma(account_data::set_room)
        .ruma(filter::create)
        .ruma(filter::get)
}
