//! The first exchange on a new connection: `Hello` (token) or `Login`
//! (password) with the resume positions, answered by `Welcome` or by a
//! closing `Error`.

use std::time::Duration;

use axon_schemas::{ClientFrame, DecodeLimits, Frame, Hello, Login, ResumePosition, ServerFrame};

use crate::config::Auth;
use crate::error::{ClientError, ServerError};
use crate::transport::{Inbound, Transport};

/// Heartbeat used when the server sends 0.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// What the client sends to authenticate.
pub(crate) struct Greeting<'a> {
    pub auth: &'a Auth,
    pub device_id: Option<&'a str>,
    pub client_name: &'a str,
    /// `(room_id, last seq)` to replay after.
    pub resume: &'a [(String, u64)],
}

/// The accepted handshake, owned.
#[derive(Debug, Clone)]
pub(crate) struct Welcomed {
    pub user_id: String,
    pub device_id: String,
    /// Set in answer to a password login.
    pub access_token: Option<String>,
    pub session_id: String,
    pub heartbeat: Duration,
}

/// Sends the greeting and waits (at most `timeout`) for the answer.
pub(crate) async fn handshake(
    transport: &mut Transport,
    greeting: &Greeting<'_>,
    limits: &DecodeLimits,
    timeout: Duration,
) -> Result<Welcomed, ClientError> {
    let resume: Vec<ResumePosition<'_>> = greeting
        .resume
        .iter()
        .map(|(room_id, seq)| ResumePosition { room_id, seq: *seq })
        .collect();
    let client_version = Some(env!("CARGO_PKG_VERSION"));
    let frame = match greeting.auth {
        Auth::Token(token) => ClientFrame::Hello(Hello {
            access_token: token,
            device_id: greeting.device_id,
            client_name: Some(greeting.client_name),
            client_version,
            resume,
        }),
        Auth::Password { user, password } => ClientFrame::Login(Login {
            user,
            password,
            device_id: greeting.device_id,
            client_name: Some(greeting.client_name),
            client_version,
            resume,
        }),
    };
    transport.send(axon_schemas::encode_client(&frame)).await?;
    let inbound = tokio::time::timeout(timeout, transport.recv())
        .await
        .map_err(|_| ClientError::Timeout)??;
    let bytes = match inbound {
        Inbound::Frame(bytes) => bytes,
        Inbound::Closed { code, reason } => {
            return Err(ClientError::Connection {
                message: format!("closed during the handshake ({code:?}: {reason})"),
                source: None,
            });
        }
    };
    let frame = axon_schemas::decode(&bytes, limits)
        .and_then(Frame::into_server)
        .map_err(|e| ClientError::Protocol(format!("undecodable handshake answer: {e}")))?;
    match frame {
        ServerFrame::Welcome(w) => Ok(Welcomed {
            user_id: w.user_id.to_owned(),
            device_id: w.device_id.to_owned(),
            access_token: w.access_token.map(str::to_owned),
            session_id: w.session_id.to_owned(),
            heartbeat: match w.heartbeat_interval_ms {
                0 => DEFAULT_HEARTBEAT,
                ms => Duration::from_millis(u64::from(ms)),
            },
        }),
        ServerFrame::Error(e) => Err(ClientError::from(ServerError {
            code: e.code,
            message: e.message.to_owned(),
            retry_after_ms: e.retry_after_ms,
        })),
        other => Err(ClientError::Protocol(format!(
            "{} before Welcome",
            other.name()
        ))),
    }
}
