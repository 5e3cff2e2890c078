//! Every endpoint of the adapter, one module per API group. Each handler is
//! `async fn(State<Matrix>, Auth, Request) -> Result<Response, MatrixError>`
//! and is registered by its ruma request type ([`crate::router`]).

pub mod account;
pub mod discovery;
pub mod login;
pub mod profile;
pub mod register;

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
}
