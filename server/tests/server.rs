//! The real server, started in-process on loopback port 0 and a temporary
//! data directory: admin endpoints, the public listeners over HTTP and TLS,
//! and what a restart keeps or refuses.

mod common;

use axon_server::data_dir::{DataDir, DataDirError};
use axon_server::{Config, Server};
use common::{get, get_tls, loopback_config};

const UNRECOGNIZED: &str = r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_admin_and_public_endpoints_then_shuts_down() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(loopback_config(tmp.path())).await.unwrap();
    let addrs = *server.addrs();
    assert_ne!(addrs.http.port(), 0, "the bound port is exposed");

    let health = get(addrs.admin, "/health").await;
    assert_eq!(health.status, 200);
    let ready = get(addrs.admin, "/ready").await;
    assert_eq!(ready.status, 200, "{ready:?}");

    let metrics = get(addrs.admin, "/metrics").await;
    assert_eq!(metrics.status, 200);
    for name in ["axon_build_info", "axon_uptime_seconds", "axon_ready"] {
        assert!(
            metrics.body.contains(name),
            "{name} missing from:\n{}",
            metrics.body
        );
    }
    assert!(
        metrics.body.contains("# HELP axon_uptime_seconds"),
        "described:\n{}",
        metrics.body
    );

    let banner = get(addrs.http, "/").await;
    assert_eq!(banner.status, 200);
    assert!(
        banner.body.contains(env!("CARGO_PKG_VERSION")),
        "{banner:?}"
    );

    let versions = get(addrs.http, "/_matrix/client/versions").await;
    assert_eq!(versions.status, 200, "{versions:?}");
    assert!(versions.body.contains("v1.11"), "{versions:?}");
    let unknown = get(addrs.http, "/_matrix/client/v3/nope").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body, UNRECOGNIZED);
    assert!(
        unknown
            .headers
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );

    let cert = server.certificate().clone();
    assert!(cert.self_signed);
    assert!(
        cert.cert_path.starts_with(server.data_dir()),
        "the dev cert lives in the data dir"
    );
    let tls_banner = get_tls(addrs.https, &cert.cert_path, "/").await;
    assert_eq!(tls_banner.status, 200);
    assert!(tls_banner.body.contains("Axon"));
    let tls_unknown = get_tls(addrs.https, &cert.cert_path, "/nope").await;
    assert_eq!(tls_unknown.status, 404);
    assert_eq!(tls_unknown.body, UNRECOGNIZED);

    let metrics = get(addrs.admin, "/metrics").await;
    assert!(
        metrics.body.contains("axon_http_requests_total"),
        "{}",
        metrics.body
    );

    // The operator commands cannot open the directory while it is served.
    let busy = DataDir::open(tmp.path()).unwrap_err();
    assert!(matches!(busy, DataDirError::InUse { .. }), "{busy}");

    server.shutdown().await.unwrap();
    if let Ok(stream) = tokio::net::TcpStream::connect(addrs.http).await {
        // TCP lets a connect to a closed loopback port pick that very port as
        // its source and "connect" to itself; anything else is a listener.
        assert_eq!(
            stream.local_addr().unwrap(),
            stream.peer_addr().unwrap(),
            "stopped accepting"
        );
    }
    DataDir::open(tmp.path()).expect("shutdown unlocks the data directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_certificate_and_keeps_the_shard_count() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start(loopback_config(tmp.path())).await.unwrap();
    let cert = first.certificate().clone();
    assert!(cert.generated_now);
    let pem = std::fs::read(&cert.cert_path).unwrap();
    first.shutdown().await.unwrap();

    let second = Server::start(loopback_config(tmp.path())).await.unwrap();
    assert!(!second.certificate().generated_now);
    assert_eq!(std::fs::read(&second.certificate().cert_path).unwrap(), pem);
    second.shutdown().await.unwrap();

    let mut other_shards: Config = loopback_config(tmp.path());
    other_shards.sequencer.shards = 8;
    let err = match Server::start(other_shards).await {
        Ok(_) => panic!("a different shard count must be refused"),
        Err(e) => e,
    };
    let mismatch = err.downcast_ref::<DataDirError>();
    assert!(
        matches!(
            mismatch,
            Some(DataDirError::ShardsMismatch {
                recorded: 4,
                configured: 8,
                ..
            })
        ),
        "{err:#}"
    );
    assert!(err.to_string().contains("sequencer.shards"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = loopback_config(tmp.path());
    config.listen.https = taken.local_addr().unwrap();
    let err = match Server::start(config).await {
        Ok(_) => panic!("the port is taken"),
        Err(e) => e,
    };
    assert!(format!("{err:#}").contains("listen.https"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_hold_the_drain() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tmp = tempfile::tempdir().unwrap();
    let mut config = loopback_config(tmp.path());
    config.shutdown.drain_timeout_secs = 120;
    let server = Server::start(config).await.unwrap();
    let addrs = *server.addrs();

    // A keep-alive connection that has been answered and now sits idle.
    let mut idle = tokio::net::TcpStream::connect(addrs.http).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut status = [0u8; 12];
    idle.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");

    // Far below the 120 s drain deadline: the server closes idle
    // connections instead of waiting for them.
    tokio::time::timeout(std::time::Duration::from_secs(60), server.shutdown())
        .await
        .expect("shutdown does not wait for idle connections")
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        idle.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "the server closed the idle connection");
}
