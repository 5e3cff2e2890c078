//! The scenarios against a server started in-process on loopback, small:
//! `connections` in this process and over two worker processes (the built
//! `axon-loadtest` binary), `churn` with its delivery check, `fanout` over
//! each face, and `matrix`.

use std::path::Path;

use axon_loadtest::cli::{ChurnArgs, Common, ConnectionsArgs, FanoutArgs, MatrixArgs};
use axon_loadtest::report::Report;
use axon_loadtest::scenario::{Run, churn, connections, fanout, matrix};
use axon_server::{Config, Server};
use serde_json::Value;

async fn server(dir: &Path) -> Server {
    let mut config = Config::ephemeral(dir);
    config.sequencer.shards = 4;
    config.matrix.user_requests_per_second = 0;
    config.matrix.ip_requests_per_second = 0;
    config.native.sends_per_second = 1_000_000;
    config.native.send_burst = 1_000_000;
    Server::start(config).await.unwrap()
}

fn common(server: &Server, out: &Path) -> Common {
    Common {
        duration_secs: 3,
        http: format!("http://{}", server.addrs().http),
        server_metrics: Some(format!("http://{}/metrics", server.addrs().admin)),
        registration_token: None,
        sources: 3,
        out: out.to_owned(),
        ca_file: Some(server.certificate().cert_path.clone()),
    }
}

fn figure<'a>(report: &'a Report, name: &str) -> &'a Value {
    &report
        .figures
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no figure {name:?} in {:?}", report.figures))
        .1
}

fn connections_args(server: &Server, transport: &str, processes: usize) -> ConnectionsArgs {
    let addr = match transport {
        "ws" => server.addrs().http,
        "wss" => server.addrs().https,
        _ => server.addrs().quic,
    };
    ConnectionsArgs {
        transport: transport.into(),
        addr: Some(addr.to_string()),
        count: 40,
        rate: 400,
        hold_secs: 1,
        processes,
        users: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opens_holds_and_measures() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    for (transport, processes) in [("ws", 1), ("quic", 1), ("wss", 2)] {
        let run = Run::start(common(&s, dir.path())).await.unwrap();
        let args = connections_args(&s, transport, processes);
        let exe = Path::new(env!("CARGO_BIN_EXE_axon-loadtest"));
        let report = connections::run_with(run, args, exe).await.unwrap();
        assert_eq!(figure(&report, "connections opened"), 40, "{transport}");
        assert_eq!(
            figure(&report, "connections held (to the end of the hold)"),
            40,
            "{transport}"
        );
        assert_eq!(report.handshake.as_ref().unwrap().count, 40, "{transport}");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(
            figure(&report, "server connections at hold")
                .as_f64()
                .unwrap()
                >= 40.0,
            "{transport}"
        );
        figure(&report, "server memory per connection (bytes)");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_resumes_every_client_without_gaps() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    for transport in ["ws", "quic"] {
        let run = Run::start(common(&s, dir.path())).await.unwrap();
        let addr = if transport == "ws" {
            s.addrs().http
        } else {
            s.addrs().quic
        };
        let args = ChurnArgs {
            transport: transport.into(),
            addr: Some(addr.to_string()),
            clients: 30,
            rooms: 3,
            cycles: 2,
            rate: 300,
            users: 6,
        };
        let report = churn::run(run, args).await.unwrap();
        assert!(report.sent > 100, "{transport}: sent {}", report.sent);
        assert_eq!((report.lost, report.duplicated), (0, 0), "{transport}");
        assert_eq!(report.delivered, report.sent * 10, "{transport}");
        assert_eq!(figure(&report, "reconnects observed"), 60, "{transport}");
        assert_eq!(figure(&report, "seq jumps (gaps) seen by clients"), 0);
        assert_eq!(
            figure(&report, "clients not back within the resume timeout"),
            0
        );
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_event_to_every_subscriber() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    for (transport, rate) in [("ws", 0), ("mix", 400)] {
        let run = Run::start(common(&s, dir.path())).await.unwrap();
        let args = FanoutArgs {
            transport: transport.into(),
            ws_addr: s.addrs().http.to_string(),
            wss_addr: s.addrs().https.to_string(),
            quic_addr: s.addrs().quic.to_string(),
            connections: 30,
            rooms: 3,
            rooms_per_connection: 2,
            publishers: 2,
            rate,
            window: 16,
            payload: 200,
            users: 5,
            drain_secs: 30,
        };
        let report = fanout::run(run, args).await.unwrap();
        assert!(report.sent > 50, "{transport}: sent {}", report.sent);
        assert_eq!((report.lost, report.duplicated), (0, 0), "{transport}");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        // Round-robin over 3 rooms, each subscribed by 20 of the 30.
        assert!(
            report.delivered >= report.sent * 20 - 40,
            "{transport}: {} delivered of {} sent",
            report.delivered,
            report.sent
        );
        assert_eq!(report.latency.count, report.delivered);
        let server = report.server.as_ref().expect("server figures");
        assert!(server.deliveries >= report.delivered as f64);
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_users_see_every_message_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let run = Run::start(common(&s, dir.path())).await.unwrap();
    let args = MatrixArgs {
        users: 6,
        rooms: 2,
        senders: 3,
        rate: 0,
        payload: 200,
        drain_secs: 30,
    };
    let report = matrix::run(run, args).await.unwrap();
    assert!(report.sent > 20, "sent {}", report.sent);
    assert_eq!((report.lost, report.duplicated), (0, 0));
    // Each room has 3 of the users.
    assert_eq!(report.delivered, report.sent * 3);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.latency.count, report.delivered);
    s.shutdown().await.unwrap();
}
