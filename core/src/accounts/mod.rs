//! Accounts: password hashing, access tokens, and [`Accounts`], the service
//! every face uses to create users, log in and authenticate a token.
//!
//! - [`password`] — Argon2id hashing and verification.
//! - [`token`] — random token secrets and the SHA-256 hash that is stored.
//! - [`service`] — [`Accounts`], on top of an [`AccountStore`](crate::store::AccountStore).

pub mod password;
pub mod service;
pub mod token;

pub use service::{Accounts, AccountsError, DEFAULT_REFRESHABLE_TTL, Identity, LoginResult};
pub use token::{TokenHash, TokenSecret};
