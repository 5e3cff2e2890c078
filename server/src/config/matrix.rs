//! The `matrix` section: [`MatrixSettings`], their defaults and checks, and
//! the [`MatrixConfig`] the adapter gets from them.

use std::time::Duration;

use axon_matrix::{MatrixConfig, RateLimit, Registration};
use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// Who may register: `auto` decides from the listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationSetting {
    /// `open` when every public listener is on loopback (development),
    /// `disabled` otherwise.
    #[default]
    Auto,
    /// Anyone may register.
    Open,
    /// Registration needs `matrix.registration_token`.
    Token,
    /// Nobody may register; the operator creates users (`axon user create`).
    Disabled,
}

/// The Matrix client-server API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixSettings {
    /// `auto`, `open`, `token` or `disabled`.
    pub registration: RegistrationSetting,
    /// The token `registration = "token"` asks for.
    pub registration_token: String,
    /// The URL clients should use, served at `/.well-known/matrix/client`;
    /// empty answers that 404.
    pub public_base_url: String,
    /// Largest request body in bytes (`M_TOO_LARGE` beyond).
    pub max_body_bytes: usize,
    /// Lifetime of access tokens that come with a refresh token.
    pub refreshable_token_lifetime_secs: u64,
    /// Rate-limited requests per second per user; 0 turns the limit off.
    pub user_requests_per_second: u32,
    /// Burst above that, per user.
    pub user_burst: u32,
    /// Rate-limited requests without a token per second per client IP; 0
    /// turns the limit off.
    pub ip_requests_per_second: u32,
    /// Burst above that, per client IP.
    pub ip_burst: u32,
}

impl Default for MatrixSettings {
    fn default() -> Self {
        let core = MatrixConfig::default();
        Self {
            registration: RegistrationSetting::Auto,
            registration_token: String::new(),
            public_base_url: String::new(),
            max_body_bytes: core.max_body_bytes,
            refreshable_token_lifetime_secs: core.refreshable_token_lifetime.as_secs(),
            user_requests_per_second: core.per_user.per_second,
            user_burst: core.per_user.burst,
            ip_requests_per_second: core.per_ip.per_second,
            ip_burst: core.per_ip.burst,
        }
    }
}

impl MatrixSettings {
    /// Checks the section.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.registration == RegistrationSetting::Token && self.registration_token.is_empty() {
            return Err(ConfigError::key(
                "matrix.registration_token",
                "must be set when matrix.registration is \"token\"",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::key(
                "matrix.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.refreshable_token_lifetime_secs == 0 {
            return Err(ConfigError::key(
                "matrix.refreshable_token_lifetime_secs",
                "must be at least 1",
            ));
        }
        let url = &self.public_base_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::key(
                "matrix.public_base_url",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// What the Matrix adapter gets: `auto` registration resolved against
    /// the public listeners.
    pub fn matrix_config(&self) -> MatrixConfig {
        let m = &self.matrix;
        let registration = match m.registration {
            RegistrationSetting::Auto
                if self.listen.http.ip().is_loopback() && self.listen.https.ip().is_loopback() =>
            {
                Registration::Open
            }
            RegistrationSetting::Auto | RegistrationSetting::Disabled => Registration::Disabled,
            RegistrationSetting::Open => Registration::Open,
            RegistrationSetting::Token => Registration::Token(m.registration_token.clone()),
        };
        MatrixConfig {
            registration,
            public_base_url: Some(m.public_base_url.clone()).filter(|u| !u.is_empty()),
            max_body_bytes: m.max_body_bytes,
            refreshable_token_lifetime: Duration::from_secs(m.refreshable_token_lifetime_secs),
            per_user: RateLimit {
                per_second: m.user_requests_per_second,
                burst: m.user_burst,
            },
            per_ip: RateLimit {
                per_second: m.ip_requests_per_second,
                burst: m.ip_burst,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_registration_is_open_on_loopback_only() {
        let mut config = Config::default();
        assert_eq!(config.matrix_config().registration, Registration::Open);
        config.listen.https = "0.0.0.0:8448".parse().unwrap();
        assert_eq!(config.matrix_config().registration, Registration::Disabled);
        config.matrix.registration = RegistrationSetting::Open;
        assert_eq!(config.matrix_config().registration, Registration::Open);
        config.matrix.registration = RegistrationSetting::Token;
        assert_eq!(
            config.validate().unwrap_err().key,
            "matrix.registration_token"
        );
        config.matrix.registration_token = "s3cret".into();
        assert!(config.validate().is_ok());
        assert_eq!(
            config.matrix_config().registration,
            Registration::Token("s3cret".into())
        );
    }
}
