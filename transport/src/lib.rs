//! Axon's native faces: the WebSocket face (tokio-tungstenite over
//! connections that hyper upgraded) and the QUIC face (quinn). Both
//! drive the same [`axon_core::Session`] with the bytes of one connection.
//!
//! # Layout
//!
//! - [`connection`] — [`FrameIo`], what a face provides (receive one frame,
//!   send a batch of frames, close with a reason), and [`drive`], the one
//!   connection loop: handshake timeout, inbound frames into the session,
//!   live events out, batched writes, shutdown with a resumable close.
//! - [`ws`] — the WebSocket face: [`ws::WsFace::upgrade`] answers the HTTP
//!   upgrade at `/_axon/v1/ws` (subprotocol `axon.v1`) and runs the
//!   connection on the upgraded socket.
//! - [`quic`] — the QUIC face: [`quic::QuicFace`] on one UDP socket, ALPN
//!   `axon/1`, a control stream plus one stream per lane of rooms.
//! - [`tracker`] — [`ConnectionTracker`]: live connections per face, the
//!   connection limit, and waiting for connections to drain at shutdown.

pub mod connection;
pub mod quic;
pub mod tracker;
pub mod ws;

pub use connection::{FrameIo, IoError, Timeouts, drive};
pub use tracker::{ConnectionTracker, FaceKind};
