//! Native clients (axon-client) as the `connections` and `churn`
//! scenarios open them: the face and its URL, one TLS configuration for
//! the whole process, source addresses for TCP, shared endpoints for QUIC,
//! and errors reduced to stable codes for the report.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axon_client::{Auth, ClientConfig, ClientError, ReconnectPolicy, SharedQuicEndpoint};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};

use crate::net::{SourceAddrs, require_loopback};

/// QUIC connections per shared client endpoint (UDP socket).
pub const CONNECTIONS_PER_QUIC_ENDPOINT: usize = 10_000;
/// Longest a connect (transport, TLS, `Hello` → `Welcome`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The native face a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Face {
    /// `ws://`.
    Ws,
    /// `wss://`.
    Wss,
    /// `quic://`.
    Quic,
}

impl Face {
    /// `ws`, `wss` or `quic`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "ws" => Face::Ws,
            "wss" => Face::Wss,
            "quic" => Face::Quic,
            other => bail!("--transport {other:?}: use ws, wss or quic"),
        })
    }

    /// The listener of the face in `deploy/loadtest.toml` (and the
    /// server's defaults).
    pub fn default_addr(self) -> &'static str {
        match self {
            Face::Ws => "127.0.0.1:8008",
            Face::Wss => "127.0.0.1:8448",
            Face::Quic => "127.0.0.1:8443",
        }
    }

    /// The client URL of the listener at `addr`.
    pub fn url(self, addr: SocketAddr) -> String {
        match self {
            Face::Ws => format!("ws://{addr}/_axon/v1/ws"),
            Face::Wss => format!("wss://{addr}/_axon/v1/ws"),
            Face::Quic => format!("quic://{addr}"),
        }
    }

    /// Whether it needs `--ca-file`.
    pub fn needs_tls(self) -> bool {
        self != Face::Ws
    }

    /// Open files one connection costs this process (QUIC connections
    /// share their endpoints' sockets).
    pub fn files_per_connection(self) -> u64 {
        u64::from(self != Face::Quic)
    }
}

/// The listener address: `--addr`, or the face's default; loopback only.
pub async fn target(face: Face, addr: Option<&str>) -> anyhow::Result<SocketAddr> {
    let addr = addr.unwrap_or(face.default_addr());
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("--addr {addr:?}: expected host:port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--addr {addr:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    crate::net::resolve_loopback(host, port, "--addr").await
}

/// Where and how one process opens its native clients.
pub struct Dialer {
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    sources: Vec<IpAddr>,
    quic: Vec<SharedQuicEndpoint>,
}

impl Dialer {
    /// A dialer for `face` at `target`: WebSocket connections rotate over
    /// `sources` loopback source addresses; QUIC connections over
    /// `quic_endpoints` shared endpoints (each bound on its own source
    /// address). Must be called within a Tokio runtime.
    pub fn new(
        face: Face,
        target: SocketAddr,
        ca_file: Option<&Path>,
        sources: usize,
        quic_endpoints: usize,
    ) -> anyhow::Result<Self> {
        require_loopback(&target, "the server")?;
        let tls = if face.needs_tls() {
            let ca = ca_file.context(
                "wss and quic need --ca-file (the server's <data_dir>/tls/dev-cert.pem)",
            )?;
            Some(client_tls(ca)?)
        } else {
            None
        };
        let sources = SourceAddrs::new(&target, sources).all().to_vec();
        let mut quic = Vec::new();
        if face == Face::Quic {
            let mut template = ClientConfig::new(face.url(target), Auth::Token(String::new()));
            template.webpki_roots = false;
            template.tls_config = tls.clone();
            for i in 0..quic_endpoints.max(1) {
                let local = SocketAddr::new(sources[i % sources.len()], 0);
                quic.push(
                    SharedQuicEndpoint::bind(local, &template)
                        .with_context(|| format!("binding a QUIC endpoint at {local}"))?,
                );
            }
        }
        Ok(Self {
            url: face.url(target),
            tls,
            sources,
            quic,
        })
    }

    /// The configuration of connection `i` (which picks its source
    /// address or endpoint), as `token`, with `reconnect`.
    pub fn config(&self, i: usize, token: &str, reconnect: ReconnectPolicy) -> ClientConfig {
        let mut config = ClientConfig::new(self.url.clone(), Auth::Token(token.to_owned()))
            .reconnect(reconnect)
            .request_timeout(CONNECT_TIMEOUT);
        config.client_name = "axon-loadtest".into();
        config.webpki_roots = false;
        config.event_buffer = 256;
        config.tls_config = self.tls.clone();
        if self.quic.is_empty() {
            config.local_addr = Some(self.sources[i % self.sources.len()]);
        } else {
            config.quic_endpoint = Some(self.quic[i % self.quic.len()].clone());
        }
        config
    }
}

/// Shared endpoints for `connections` QUIC connections.
pub fn quic_endpoints_for(connections: usize) -> usize {
    connections.div_ceil(CONNECTIONS_PER_QUIC_ENDPOINT).max(1)
}

/// One TLS configuration for every client of the process, trusting the
/// CA certificates in `ca`. Session resumption is off: every connection
/// is a full handshake, as a new device's would be, and one shared cache
/// would otherwise hand one client's sessions to the next.
pub fn client_tls(ca: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading --ca-file {}", ca.display()))?
    {
        let cert = cert.with_context(|| format!("parsing {}", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("certificate in {}", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("--ca-file {} holds no certificate", ca.display());
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(tls))
}

/// A stable code for a client error, for the report's error table (no
/// addresses or ports in it).
pub fn error_code(e: &ClientError) -> String {
    if is_out_of_files(e) {
        return "connect: out of open files (EMFILE)".into();
    }
    match e {
        ClientError::Connection { message, source } => {
            // "TCP connect to 127.0.0.1:8008" → "TCP connect"; "closed
            // during the handshake (None: reason)" → "closed during the
            // handshake".
            let what = [" to ", " with ", " ("]
                .iter()
                .fold(message.as_str(), |m, cut| m.split(cut).next().unwrap_or(m));
            match source {
                Some(_) => format!("connect: {what}: {}", root_cause(e)),
                None => format!("connect: {what}"),
            }
        }
        ClientError::Timeout => "connect: timed out".into(),
        other => match other.code() {
            Some(code) => format!("server: {code:?}"),
            None => format!("{other}"),
        },
    }
}

/// Whether `e` comes from running out of file descriptors.
pub fn is_out_of_files(e: &ClientError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && crate::net::is_out_of_files(io)
        {
            return true;
        }
        source = err.source();
    }
    false
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_parse_and_make_urls() {
        let addr: SocketAddr = "127.0.0.1:8448".parse().unwrap();
        assert_eq!(
            Face::parse("wss").unwrap().url(addr),
            "wss://127.0.0.1:8448/_axon/v1/ws"
        );
        assert_eq!(
            Face::parse("quic").unwrap().url(addr),
            "quic://127.0.0.1:8448"
        );
        assert!(Face::parse("tcp").is_err());
        assert_eq!(quic_endpoints_for(1), 1);
        assert_eq!(quic_endpoints_for(100_000), 10);
        assert_eq!(quic_endpoints_for(100_001), 11);
    }

    #[test]
    fn errors_become_stable_codes() {
        let emfile = ClientError::Connection {
            message: "TCP connect to 127.0.0.1:8008".into(),
            source: Some(Box::new(std::io::Error::from_raw_os_error(24))),
        };
        assert!(is_out_of_files(&emfile));
        assert_eq!(error_code(&emfile), "connect: out of open files (EMFILE)");
        let refused = ClientError::Connection {
            message: "TCP connect to 127.0.0.1:8008".into(),
            source: Some(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        };
        assert!(!is_out_of_files(&refused));
        assert_eq!(
            error_code(&refused),
            "connect: TCP connect: connection refused"
        );
        assert_eq!(error_code(&ClientError::Timeout), "connect: timed out");
        let closed = ClientError::Connection {
            message: "closed during the handshake (None: aborted by peer: long story)".into(),
            source: None,
        };
        assert_eq!(error_code(&closed), "connect: closed during the handshake");
    }
}
