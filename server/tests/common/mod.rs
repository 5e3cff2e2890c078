//! Helpers shared by the integration tests: a loopback configuration on a
//! temporary data directory, and a minimal HTTP/1.1 client.

#![allow(dead_code)]

pub mod matrix;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axon_server::Config;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Every listener on 127.0.0.1 port 0, the data in `dir`.
pub fn loopback_config(dir: &Path) -> Config {
    let mut config = Config::ephemeral(dir);
    config.sequencer.shards = 4;
    config
}

/// A response: status code, and body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// Sends `GET path` with `Connection: close` and reads the whole reply.
pub async fn get_over<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A peer that closes without TLS close_notify still sent the full reply.
    if let Err(e) = stream.read_to_end(&mut raw).await {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

/// `GET path` over plain TCP.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    get_over(TcpStream::connect(addr).await.unwrap(), path).await
}

/// `GET path` over TLS, trusting only the certificate in `cert_pem`.
pub async fn get_tls(addr: SocketAddr, cert_pem: &Path, path: &str) -> Reply {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    get_over(tls, path).await
}
