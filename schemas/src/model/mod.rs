//! Rust view of every frame of the native protocol.
//!
//! Decoded frames borrow from the received buffer (`&'a str`, `&'a [u8]`), so
//! reading a frame copies no strings or content; only lists become `Vec`s.
//! The same types are the input of the encoder. Field meanings are documented
//! once, in `schemas/axon.fbs` and `docs/protocol-schema.md`.

mod client;
mod server;

pub use client::{
    ClientFrame, Hello, HistoryRequest, Login, Ping, Presence, Receipt, SendEvent, Subscribe,
    Typing, Unsubscribe,
};
pub use server::{
    ErrorFrame, EventBatch, EventView, HistoryPage, Pong, PresenceUpdate, ReceiptUpdate, SendAck,
    ServerFrame, Subscribed, TypingUpdate, Welcome,
};

use crate::error::FrameError;

/// Any frame: the direction is part of the type, so session code cannot mix
/// up what a client may send with what a server may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Sent by clients.
    Client(ClientFrame<'a>),
    /// Sent by servers.
    Server(ServerFrame<'a>),
}

impl<'a> Frame<'a> {
    /// Schema name of the frame type, e.g. `"Hello"`.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Client(frame) => frame.name(),
            Frame::Server(frame) => frame.name(),
        }
    }

    /// The client frame, or `UnexpectedFrame` if a server frame arrived where
    /// only client frames may (the server's read side).
    pub fn into_client(self) -> Result<ClientFrame<'a>, FrameError> {
        match self {
            Frame::Client(frame) => Ok(frame),
            Frame::Server(frame) => Err(FrameError::UnexpectedDirection {
                expected: "client",
                got: frame.name(),
            }),
        }
    }

    /// The server frame, or `UnexpectedFrame` if a client frame arrived where
    /// only server frames may (the client's read side).
    pub fn into_server(self) -> Result<ServerFrame<'a>, FrameError> {
        match self {
            Frame::Server(frame) => Ok(frame),
            Frame::Client(frame) => Err(FrameError::UnexpectedDirection {
                expected: "server",
                got: frame.name(),
            }),
        }
    }
}

impl<'a> From<ClientFrame<'a>> for Frame<'a> {
    fn from(frame: ClientFrame<'a>) -> Self {
        Frame::Client(frame)
    }
}

impl<'a> From<ServerFrame<'a>> for Frame<'a> {
    fn from(frame: ServerFrame<'a>) -> Self {
        Frame::Server(frame)
    }
}

/// The last `seq` a client saw in one room, to resume without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResumePosition<'a> {
    /// Room id.
    pub room_id: &'a str,
    /// Highest `seq` seen in that room (0 = none yet).
    pub seq: u64,
}

/// Direction of a history read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards older events (decreasing `seq`).
    Backward,
    /// Towards newer events (increasing `seq`).
    Forward,
}

/// Presence state of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceState {
    /// Connected and active.
    Online,
    /// Connected but idle or away.
    Unavailable,
    /// Not connected, or hiding.
    Offline,
}

/// Stands in for secrets (tokens, passwords) in `Debug` output, so frames can
/// be logged without leaking credentials.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
