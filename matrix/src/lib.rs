//! Axon's Matrix client-server API adapter (axum + ruma), on `axon-core` only.
//!
//! Not built yet: this crate arrives with the Matrix issue. The plan (see
//! `DESIGN.md`): routes derived from ruma request types, handlers of the form
//! `async fn(State, Auth, Request) -> Result<Response>`, errors that read like
//! the spec's error codes, and `/sync` long-polls woken by the core router.
//!
//! Planned modules: `routes` (the router built from ruma metadata), `auth`
//! (access-token extractor), `error` (Matrix errcodes), one module per API
//! group (`account`, `profile`, `rooms`, `sync`, `ephemeral`, `account_data`).
