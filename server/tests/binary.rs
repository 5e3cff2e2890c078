//! The built `axon` binary: operator commands, configuration errors and
//! layering, and graceful shutdown on SIGTERM.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const AXON: &str = env!("CARGO_BIN_EXE_axon");
/// Generous: a debug build on a busy 2-core machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `axon` with a clean configuration environment and loopback port-0 listeners.
fn axon(data_dir: &Path) -> Command {
    let mut cmd = Command::new(AXON);
    for (key, _) in std::env::vars() {
        if key.starts_with("AXON_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("AXON_LISTEN__HTTP", "127.0.0.1:0")
        .env("AXON_LISTEN__HTTPS", "127.0.0.1:0")
        .env("AXON_LISTEN__ADMIN", "127.0.0.1:0")
        .env("AXON_LISTEN__QUIC", "127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir);
    cmd
}

fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn user_create_list_token() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        axon(tmp.path()).args(["user", "create", "alice", "--password-stdin", "--admin"]),
        "s3cret\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("created @alice:localhost (admin)"),
        "{}",
        text(&out.stdout)
    );

    let out = run(axon(tmp.path()).args(["user", "create", "bob"]), "");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(axon(tmp.path()).args(["user", "create", "alice"]), "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );

    let out = run(axon(tmp.path()).args(["user", "list"]), "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let alice = listing
        .lines()
        .find(|l| l.starts_with("@alice:localhost"))
        .expect(&listing);
    assert!(
        alice.contains("yes") && alice.contains("active"),
        "{listing}"
    );
    assert!(
        listing.lines().any(|l| l.starts_with("@bob:localhost")),
        "{listing}"
    );

    let out = run(
        axon(tmp.path()).args(["user", "token", "alice", "--device", "CLI"]),
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    assert!(token.trim().starts_with("axat_"), "{token}");
    assert_eq!(token.lines().count(), 1, "stdout holds the token alone");

    let out = run(
        axon(tmp.path()).args(["user", "deactivate", "@bob:localhost"]),
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(axon(tmp.path()).args(["user", "token", "bob"]), "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("deactivated"),
        "{}",
        text(&out.stderr)
    );

    let out = run(axon(tmp.path()).args(["user", "token", "nobody"]), "");
    assert!(
        text(&out.stderr).contains("no such user"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn room_create_joins_the_members() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["alice", "bob"] {
        let out = run(axon(tmp.path()).args(["user", "create", name]), "");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = run(
        axon(tmp.path()).args([
            "room",
            "create",
            "--creator",
            "alice",
            "--member",
            "@bob:localhost",
            "--name",
            "Lobby",
        ]),
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let room = text(&out.stdout).trim().to_owned();
    assert!(axon_core::RoomId::parse(&room).is_ok(), "{room:?}");
    assert!(
        text(&out.stderr).contains("1 member(s) joined"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        axon(tmp.path()).args(["room", "create", "--creator", "nobody"]),
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such active user: @nobody:localhost"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn invalid_configuration_exits_2_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        axon(tmp.path())
            .env("AXON_LISTEN__HTTP", "nowhere")
            .args(["config", "show"]),
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("listen.http") && err.contains("AXON_LISTEN__HTTP"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let file = tmp.path().join("axon.toml");
    std::fs::write(&file, "[sequencer]\nshards = 0\n").unwrap();
    let out = run(axon(tmp.path()).arg("--config").arg(&file), "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("sequencer.shards"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_show_applies_file_then_env_then_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("axon.toml");
    std::fs::write(
        &file,
        "server_name = \"file.example\"\n[router]\nqueue_capacity = 7\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let out = run(
        axon(tmp.path())
            .env("AXON_ROUTER__QUEUE_CAPACITY", "9")
            .env("AXON_SERVER_NAME", "env.example")
            .args([
                "--server-name",
                "flag.example",
                "--log-format",
                "text",
                "config",
                "show",
            ])
            .arg("--config")
            .arg(&file),
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: toml::Value = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(shown["server_name"].as_str(), Some("flag.example"));
    assert_eq!(shown["router"]["queue_capacity"].as_integer(), Some(9));
    assert_eq!(shown["log"]["format"].as_str(), Some("text"));
    assert_eq!(shown["listen"]["quic"].as_str(), Some("127.0.0.1:0"));
}

/// Lines of a child's stderr, as they arrive.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {needle:?} in the log:\n{}", seen.join("\n"));
}

#[test]
fn sigterm_drains_flushes_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = axon(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut server);
    let mut log = Vec::new();
    wait_for(&lines, "admin listener", &mut log);
    let startup = log.join("\n");
    let data_dir = std::fs::canonicalize(tmp.path()).unwrap();
    assert!(
        startup.contains(&data_dir.display().to_string()),
        "the absolute data dir is logged:\n{startup}"
    );
    assert!(startup.contains("SELF-SIGNED DEVELOPMENT"), "{startup}");
    assert!(
        startup.contains("quic listener") && startup.contains("axon/1"),
        "{startup}"
    );

    // While it runs, the operator commands refuse the data directory.
    let out = run(axon(tmp.path()).args(["user", "list"]), "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use by a running axon; stop it first")
            || text(&out.stderr)
                .contains(&format!("in use by a running axon (pid {})", server.id())),
        "{}",
        text(&out.stderr)
    );

    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = server.wait().unwrap();
    let rest: Vec<String> = lines.iter().collect();
    log.extend(rest);
    let all = log.join("\n");
    assert_eq!(status.code(), Some(0), "{all}");
    assert!(all.contains("SIGTERM"), "{all}");
    assert!(all.contains("flushed, bye"), "{all}");

    // The shard count is now fixed for this data directory.
    let out = run(axon(tmp.path()).env("AXON_SEQUENCER__SHARDS", "3"), "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("sequencer.shards is 3"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn json_logs_by_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = axon(tmp.path())
        .arg("--log-format")
        .arg("json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut server);
    let mut log = Vec::new();
    wait_for(&lines, "admin listener", &mut log);
    for line in &log {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(server.wait().unwrap().code(), Some(0));
}
