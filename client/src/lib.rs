//! A Rust client for Axon's native protocol (`axon.v1`), over WebSocket
//! (`ws://`, `wss://`) or QUIC (`quic://HOST:PORT`); the URL's scheme picks
//! the transport, and everything else is the same on both.
//!
//! [`Client::connect`] opens a connection, authenticates with a token or a
//! password, and hands the socket to a background task that keeps it
//! alive: heartbeats, request/answer matching, and, when the connection is
//! lost, reconnects with backoff that resume every subscribed room from
//! the last `seq` seen. Events come out of [`Client::next_event`] (or
//! [`Client::events`], or in batches from [`Client::next_events`]) per room
//! in `seq` order, without gaps or duplicates, across reconnects. Sends
//! carry a transaction id chosen once, so a send retried after a reconnect
//! or a timeout is stored once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), axon_client::ClientError> {
//! use axon_client::{Auth, Client, ClientConfig};
//!
//! let config = ClientConfig::new("ws://127.0.0.1:8008/_axon/v1/ws", Auth::Token("axat_...".into()));
//! let client = Client::connect(config).await?;
//! client.subscribe("!room:localhost").await?;
//! client
//!     .send("!room:localhost", "m.room.message", r#"{"msgtype":"m.text","body":"hi"}"#)
//!     .await?;
//! while let Some(event) = client.next_event().await {
//!     println!("[{}] {}: {}", event.seq, event.sender, String::from_utf8_lossy(&event.content));
//! }
//! # Ok(()) }
//! ```
//!
//! Over QUIC, trusting the server's development certificate:
//!
//! ```no_run
//! # use axon_client::{Auth, ClientConfig};
//! let config = ClientConfig::new("quic://127.0.0.1:8443", Auth::Token("axat_...".into()))
//!     .add_root_pem("data/tls/dev-cert.pem");
//! ```
//!
//! # Layout
//!
//! - [`client`](Client): the public handle; turns calls into commands,
//!   retries sends.
//! - `connection`: the background task owning the socket (requests,
//!   answers, heartbeats, reconnect and resume); [`ConnectionState`].
//! - `handshake`: `Hello`/`Login` → `Welcome`.
//! - `cursor`: per-room last `seq`; drops duplicates, holds and fetches
//!   gaps (sans-IO, unit-tested).
//! - `request`: requests kept owned until answered, re-sent after a
//!   reconnect.
//! - `transport`: one enum over the protocols (`ws`; `quic`, which reads
//!   the control stream and every lane stream concurrently and merges them)
//!   and the rustls setup (`tls`, shared by `wss://` and `quic://`).
//! - [`config`](ClientConfig), [`error`](ClientError), [`event`](Event):
//!   what the application passes in and gets back.
//!
//! # Decisions
//!
//! - The first connect is not retried: a wrong URL, certificate or token
//!   fails at once. Reconnects start after a first success and follow
//!   [`ReconnectPolicy`]; a refusal a reconnect cannot cure
//!   (`Unauthenticated`) closes the client.
//! - The event buffer is bounded ([`ClientConfig::event_buffer`]); while
//!   it is full the task stops reading the socket, which is the server's
//!   signal to catch the connection up or close it as lagged, after which
//!   the client resumes. Over QUIC the same holds: the stream readers stop
//!   and QUIC flow control passes the pressure on.
//! - QUIC: the TLS server name is the URL's host, as for `wss://` (the
//!   development certificate names `localhost`, `127.0.0.1` and `::1`); ALPN
//!   `axon/1`; the port defaults to 8443. Live events on lane streams may
//!   overtake a room's replay and `Subscribed` on the control stream; the
//!   cursor holds a joining room's out-of-order events until its
//!   `Subscribed` and fetches no gap before it, so delivery stays exactly
//!   once and in order.

mod client;
mod config;
mod connection;
mod cursor;
mod ephemeral;
mod error;
mod event;
mod handshake;
mod request;
mod transport;

pub use axon_schemas::ErrorCode;
pub use client::Client;
pub use config::{Auth, ClientConfig, ReconnectPolicy};
pub use connection::ConnectionState;
pub use ephemeral::{Ephemeral, PresenceState};
pub use error::ClientError;
pub use event::{Direction, Event, HistoryPage, SendAck, SubscribeAck};
pub use transport::quic::SharedQuicEndpoint;
