//! [`Matrix`]: the state every handler gets — the core services, the
//! adapter's configuration and its rate limits. Cheap to clone.

use std::sync::Arc;

use axon_core::{Accounts, Rooms, Services, UserId};

use crate::config::MatrixConfig;
use crate::error::MatrixError;
use crate::rate_limit::RateLimits;

/// Shared state of the Matrix adapter.
#[derive(Clone)]
pub struct Matrix(Arc<Inner>);

/// What [`Matrix`] holds.
pub struct Inner {
    /// The core: store, sequencers, accounts, router.
    pub services: Services,
    /// The adapter's settings.
    pub config: MatrixConfig,
    /// Per-user and per-IP limits.
    pub limits: RateLimits,
    /// Room operations, every rule decided in core.
    pub rooms: Rooms,
    /// Member events each device was sent (lazy-loaded members).
    pub sent_members: crate::routes::sync::members::SentMembers,
    /// Stored filters, decoded.
    pub stored_filters: crate::routes::sync::filter::StoredFilters,
}

impl Matrix {
    /// State over the core `services`.
    pub fn new(services: Services, config: MatrixConfig) -> Self {
        let limits = RateLimits::new(config.per_user, config.per_ip);
        let rooms = Rooms::new(&services);
        Self(Arc::new(Inner {
            rooms,
            services,
            config,
            limits,
            sent_members: Default::default(),
            stored_filters: Default::default(),
        }))
    }

    /// Member events each device was sent (lazy-loaded members).
    pub fn sent_members(&self) -> &crate::routes::sync::members::SentMembers {
        &self.0.sent_members
    }

    /// Stored filters, decoded (`/sync` with a filter id).
    pub fn stored_filters(&self) -> &crate::routes::sync::filter::StoredFilters {
        &self.0.stored_filters
    }

    /// Users, logins, tokens and profiles.
    pub fn accounts(&self) -> &Accounts {
        &self.0.services.accounts
    }

    /// Rooms: creation, membership, directory, reads and writes.
    pub fn rooms(&self) -> &Rooms {
        &self.0.rooms
    }

    /// The core services.
    pub fn services(&self) -> &Services {
        &self.0.services
    }

    /// The adapter's settings.
    pub fn config(&self) -> &MatrixConfig {
        &self.0.config
    }

    /// The rate limits.
    pub fn limits(&self) -> &RateLimits {
        &self.0.limits
    }

    /// `@localpart:server_name` for a user this server hosts: from a full
    /// user id or a bare localpart (login identifiers may be either).
    pub fn local_user(&self, user: &str) -> Result<UserId, MatrixError> {
        let server = self.accounts().server_name();
        let id = if user.starts_with('@') {
            UserId::parse(user).map_err(|e| MatrixError::InvalidUsername(e.to_string()))?
        } else {
            UserId::parse(&format!("@{}:{server}", user.to_lowercase()))
                .map_err(|e| MatrixError::InvalidUsername(e.to_string()))?
        };
        if id.server_name() != server.as_str() {
            return Err(MatrixError::Forbidden(format!(
                "{id} is not a user of this server"
            )));
        }
        Ok(id)
    }
}
