//! Interoperability: matrix-nio, a third-party Python Matrix client library
//! (unmodified, pinned, installed from PyPI by `scripts/install-matrix-nio.sh`),
//! drives a running server through `tests/interop/nio_scenario.py`: register,
//! login, create a room, invite, join, send, sync, paginate, typing,
//! receipts, presence, redact and leave.
//!
//! `scripts/test.sh` sets `AXON_NIO_PYTHON` to the venv's python and
//! `AXON_REQUIRE_NIO=1`; run alone without them, the test says it is skipped.

mod common;

use std::process::Command;
use std::time::Duration;

use axon_server::Server;
use common::loopback_config;

/// Longest the scenario may run (a hang guard).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_nio_scenario_passes_against_axon() {
    let Ok(python) = std::env::var("AXON_NIO_PYTHON") else {
        assert!(
            std::env::var("AXON_REQUIRE_NIO").as_deref() != Ok("1"),
            "AXON_REQUIRE_NIO=1 but AXON_NIO_PYTHON is not set"
        );
        eprintln!("skipped: set AXON_NIO_PYTHON (scripts/install-matrix-nio.sh prints it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(loopback_config(dir.path())).await.unwrap();
    let homeserver = format!("http://{}", server.addrs().http);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/nio_scenario.py");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(homeserver).output()
    });
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, run)
        .await
        .expect("the scenario finished in time")
        .unwrap()
        .expect("python ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success() && stdout.contains("PASS matrix-nio scenario"),
        "the matrix-nio scenario failed:\n{stdout}\n{stderr}"
    );
    server.shutdown().await.unwrap();
}
