//! [`MatrixConfig`]: what the server's `matrix` configuration section
//! resolves to (the server owns the file format and the defaults).

use std::time::Duration;

/// Who may create an account with `POST /register`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Anyone, after the `m.login.dummy` stage.
    Open,
    /// Whoever presents this token in the `m.login.registration_token` stage.
    Token(String),
    /// Nobody: accounts are made by the operator (`axon user create`).
    Disabled,
}

/// A token bucket: `per_second` sustained, `burst` at once. `per_second`
/// 0 turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
}

/// The Matrix adapter's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixConfig {
    /// Who may register.
    pub registration: Registration,
    /// `m.homeserver.base_url` of `/.well-known/matrix/client`; `None`
    /// answers it 404, as Synapse does when it has no public base URL.
    pub public_base_url: Option<String>,
    /// Largest request body, in bytes; more is `M_TOO_LARGE`.
    pub max_body_bytes: usize,
    /// Lifetime of access tokens issued with a refresh token.
    pub refreshable_token_lifetime: Duration,
    /// Rate-limited endpoints (as the spec marks them), per user.
    pub per_user: RateLimit,
    /// Rate-limited endpoints called without an access token, per client IP.
    pub per_ip: RateLimit,
}

impl Default for MatrixConfig {
    fn default() -> Self {
        Self {
            registration: Registration::Open,
            public_base_url: None,
            max_body_bytes: 1024 * 1024,
            refreshable_token_lifetime: axon_core::accounts::DEFAULT_REFRESHABLE_TTL,
            per_user: RateLimit {
                per_second: 20,
                burst: 100,
            },
            per_ip: RateLimit {
                per_second: 5,
                burst: 20,
            },
        }
    }
}
