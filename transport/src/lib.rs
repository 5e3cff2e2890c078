//! Axon's native faces: the WebSocket face (tokio-tungstenite over
//! connections that hyper upgraded) and, next, the QUIC face (quinn). Both
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
//! - [`tracker`] — [`ConnectionTracker`]: live connections per face, the
//!   connection limit, and waiting for connections to drain at shutdown.
//!
//! Not built yet: the QUIC face (`quic`), arriving with the rest of the
//! native-faces milestone.

pub mod connection;
pub mod tracker;
pub mod ws;

pub use connection::{FrameIo, IoError, Timeouts, drive};
pub use tracker::{ConnectionTracker, FaceKind};
