//! [`ClientConfig`]: where to connect, how to authenticate, which TLS roots
//! to trust, and how hard to try again.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::transport::quic::SharedQuicEndpoint;

/// How the client authenticates.
#[derive(Clone)]
pub enum Auth {
    /// An access token (`axon user token`, or one a password login returned).
    Token(String),
    /// A user id (or localpart) and password. The server answers with a new
    /// access token, which the client uses for every reconnect. Send
    /// passwords over `wss://` or `quic://` only, except on loopback.
    Password {
        /// `@alice:example.org` or `alice`.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// When and how often to reconnect after a connection is lost.
///
/// The delay before attempt `n` (from 0) is drawn uniformly from
/// `[d/2, d]` with `d = min(max_delay, initial_delay * 2^n)` ("equal
/// jitter"), so that clients dropped together by a restart do not come back
/// together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Delay scale of the first attempt.
    pub initial_delay: Duration,
    /// Largest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts after one loss before giving up; `None` = never give up.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Never reconnect: a lost connection closes the client.
    pub fn never() -> Self {
        Self {
            max_attempts: Some(0),
            ..Self::default()
        }
    }

    /// The delay before reconnect attempt `attempt` (counted from 0).
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        let ceiling = self
            .initial_delay
            .saturating_mul(factor)
            .min(self.max_delay);
        let floor = ceiling / 2;
        if ceiling <= floor {
            return ceiling;
        }
        rand::random_range(floor..=ceiling)
    }
}

/// Everything [`Client::connect`](crate::Client::connect) needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://HOST:PORT/_axon/v1/ws`, `wss://HOST:PORT/_axon/v1/ws` or
    /// `quic://HOST:PORT` (the port defaults to 8443).
    pub url: String,
    /// Token or password.
    pub auth: Auth,
    /// Device to connect as. With a token, the token's device (optional);
    /// with a password, `None` creates a new device.
    pub device_id: Option<String>,
    /// Sent to the server for its logs (`Hello.client_name`).
    pub client_name: String,
    /// Reconnect behaviour after a lost connection.
    pub reconnect: ReconnectPolicy,
    /// Longest wait for one answer (and for connecting). A send that times
    /// out is retried with the same transaction id.
    pub request_timeout: Duration,
    /// Received events buffered for [`Client::next_event`](crate::Client::next_event)
    /// (beside up to 64 that a reader has already taken in one go).
    /// When the buffer is full the client stops reading the socket until
    /// the application catches up (the server may then close the
    /// connection as lagged, and the client resumes).
    pub event_buffer: usize,
    /// Trust the Mozilla root certificates (webpki-roots) for `wss://` and
    /// `quic://`.
    pub webpki_roots: bool,
    /// Extra PEM files of trusted CA certificates (e.g. Axon's development
    /// certificate, `<data_dir>/tls/dev-cert.pem`).
    pub root_pems: Vec<PathBuf>,
    /// A ready TLS configuration to use instead of building one from
    /// `webpki_roots` and `root_pems` (see [`ClientConfig::tls_config`]).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Source address of the connection's socket (see
    /// [`ClientConfig::local_addr`]); `None` lets the system choose.
    pub local_addr: Option<IpAddr>,
    /// A QUIC endpoint shared with other clients (see
    /// [`ClientConfig::quic_endpoint`]); `None` = one of its own.
    pub quic_endpoint: Option<SharedQuicEndpoint>,
}

impl ClientConfig {
    /// A configuration with defaults for everything but the URL and auth.
    pub fn new(url: impl Into<String>, auth: Auth) -> Self {
        Self {
            url: url.into(),
            auth,
            device_id: None,
            client_name: concat!("axon-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            reconnect: ReconnectPolicy::default(),
            request_timeout: Duration::from_secs(15),
            event_buffer: 4096,
            webpki_roots: true,
            root_pems: Vec::new(),
            tls_config: None,
            local_addr: None,
            quic_endpoint: None,
        }
    }

    /// Also trusts the CA certificates in the PEM file at `path`, read when
    /// connecting.
    pub fn add_root_pem(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_pems.push(path.into());
        self
    }

    /// Connects as `device_id`.
    pub fn device_id(mut self, device_id: impl Into<String>) -> Self {
        self.device_id = Some(device_id.into());
        self
    }

    /// Uses `policy` after a lost connection.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Waits at most `timeout` for each answer.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Uses `tls` for `wss://` and `quic://` instead of building a
    /// configuration from the roots. Many clients can share one: each
    /// built configuration holds its own TLS session cache (tens of KiB),
    /// which adds up over thousands of clients. The ALPN protocols of
    /// `tls` are ignored (`quic://` sets `axon/1`).
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(tls);
        self
    }

    /// Binds the connection's socket to `addr` before connecting: the TCP
    /// socket of `ws://` and `wss://`, and the UDP socket of `quic://`
    /// when the client has its own endpoint. A load generator spreads its
    /// connections over `127.0.0.x` this way, since each source address
    /// has its own ephemeral ports (about 28,000 on Linux). The address
    /// must be of the server's family (IPv4 or IPv6).
    pub fn local_addr(mut self, addr: IpAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Connects `quic://` through `endpoint`, a UDP socket shared with
    /// other clients, instead of binding a socket of its own: one process
    /// can then hold far more QUIC connections than it may open files.
    /// The endpoint's TLS configuration is used (the client's roots and
    /// [`ClientConfig::tls_config`] are not), and closing this client
    /// closes its connection only, never the shared endpoint. Ignored for
    /// `ws://` and `wss://`.
    pub fn quic_endpoint(mut self, endpoint: SharedQuicEndpoint) -> Self {
        self.quic_endpoint = Some(endpoint);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: None,
        };
        for _ in 0..100 {
            let first = policy.delay(0);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = policy.delay(2);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            let late = policy.delay(40);
            assert!((Duration::from_millis(500)..=Duration::from_secs(1)).contains(&late));
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let auth = Auth::Password {
            user: "alice".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Token("axat_secret".into())).contains("secret"));
    }
}
