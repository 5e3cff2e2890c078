//! Axon's native faces: the QUIC (quinn) and WebSocket (tokio-tungstenite)
//! listeners, TLS by rustls, framing, the per-connection writer, the handshake
//! and resume.
//!
//! Not built yet: this crate arrives with the "native faces" issue. The plan
//! (see `DESIGN.md`, "Native protocol"):
//!
//! - `tls` — rustls server configuration (ring provider) for both faces.
//! - `ws` — WebSocket upgrade on the HTTP listeners at `/_axon/v1/ws`,
//!   subprotocol `axon.v1`, one binary message per frame.
//! - `quic` — quinn endpoint, ALPN `axon/1`, a control stream plus one stream
//!   per room lane, typing and presence as datagrams.
//! - `writer` — the per-connection writer that drains a router queue and
//!   batches frames into few socket writes.
//! - `connection` — drives `axon_core`'s session state machine with the bytes
//!   of one connection.
