//! A Rust client library for Axon's native protocol over QUIC and WebSocket.
//!
//! Not built yet: this crate arrives with the "native faces" issue. The plan:
//! `connect` (either face), authenticate with an access token or password,
//! subscribe, `send` with retries that keep the transaction id, a stream of
//! received events, and automatic reconnect that resumes from the last `seq`
//! per room. The frames are those of `axon-schemas`.
