//! A terminal chat on Axon's native protocol: type a line, everyone in the
//! room sees it; incoming messages print as `[seq] sender: body`. On start
//! it shows the room's last 20 messages; it reconnects (and resumes) by
//! itself when the connection drops. It says it is online, and prints
//! `* bob is online` (or offline, or typing) as the others' presence and
//! typing notices arrive.
//!
//! # Run it, from a fresh checkout
//!
//! The `axon room` and `axon user` commands open the data directory
//! directly, so run them while the server is stopped (they use `./data`,
//! like the server; pass the same `--data-dir` to all of them otherwise).
//!
//! 1. Create two users (give them passwords to log in with `--user`):
//!
//!    ```sh
//!    cargo run -p axon-server --bin axon -- user create alice --password alicepw
//!    cargo run -p axon-server --bin axon -- user create bob --password bobpw
//!    ```
//!
//! 2. Create a room with both of them in it; it prints the room id
//!    (`!...:localhost`):
//!
//!    ```sh
//!    cargo run -p axon-server --bin axon -- room create --creator alice --member bob --name lobby
//!    ```
//!
//! 3. Optionally issue access tokens (printed on standard output), to log
//!    in with `--token` instead of a password:
//!
//!    ```sh
//!    cargo run -p axon-server --bin axon -- user token alice
//!    cargo run -p axon-server --bin axon -- user token bob
//!    ```
//!
//! 4. Start the server (plain WebSocket on 127.0.0.1:8008, TLS on 8448,
//!    QUIC on UDP 8443):
//!
//!    ```sh
//!    cargo run -p axon-server --bin axon
//!    ```
//!
//! 5. In two more terminals:
//!
//!    ```sh
//!    cargo run -p axon-client --example chat -- \
//!        --url ws://127.0.0.1:8008/_axon/v1/ws --user alice --password alicepw --room '!ROOM:localhost'
//!    cargo run -p axon-client --example chat -- \
//!        --url ws://127.0.0.1:8008/_axon/v1/ws --token TOKEN_OF_BOB --room '!ROOM:localhost'
//!    ```
//!
//!    Over TLS with the development certificate:
//!    `--url wss://localhost:8448/_axon/v1/ws --ca-file data/tls/dev-cert.pem`.
//!    Over QUIC, with the same certificate:
//!    `--url quic://127.0.0.1:8443 --ca-file data/tls/dev-cert.pem`.
//!
//! Stop the server while chatting and start it again: both chats reconnect
//! and print what they missed, once each. End a chat with Ctrl-D or Ctrl-C.
//! `RUST_LOG=axon_client=debug` shows the connection's life.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use axon_client::{
    Auth, Client, ClientConfig, ConnectionState, Direction, Ephemeral, Event, PresenceState,
};
use clap::Parser;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// A terminal chat for one Axon room.
#[derive(Debug, Parser)]
struct Args {
    /// Server URL: ws://, wss:// or quic://HOST:PORT.
    #[arg(long, default_value = "ws://127.0.0.1:8008/_axon/v1/ws")]
    url: String,
    /// Access token (`axon user token NAME`).
    #[arg(long, env = "AXON_TOKEN", conflicts_with_all = ["user", "password"])]
    token: Option<String>,
    /// User id or localpart, to log in with --password.
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Password of --user.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Room id (`axon room create` prints one).
    #[arg(long)]
    room: String,
    /// Extra trusted CA certificate (PEM) for wss:// or quic://, e.g.
    /// data/tls/dev-cert.pem.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// Messages of history shown on start.
const HISTORY: u32 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "axon_client=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let auth = match (args.token, args.user, args.password) {
        (Some(token), _, _) => Auth::Token(token),
        (None, Some(user), Some(password)) => Auth::Password { user, password },
        _ => bail!("give --token, or --user and --password"),
    };
    let mut config = ClientConfig::new(&args.url, auth);
    if let Some(ca) = args.ca_file {
        config = config.add_root_pem(ca);
    }
    let client = Client::connect(config)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    eprintln!(
        "connected as {} (device {}); type a message and press Enter",
        client.user_id(),
        client.device_id()
    );

    // History first, then live from where it ends: no gap, no repeat.
    let page = client
        .history(&args.room, u64::MAX, Direction::Backward, HISTORY)
        .await
        .context("reading the room's history")?;
    let last = page.events.first().map_or(0, |e| e.seq);
    for event in page.events.iter().rev() {
        print_event(event);
    }
    client
        .subscribe_since(&args.room, last)
        .await
        .context("subscribing to the room")?;

    tokio::spawn(print_incoming(client.clone()));
    tokio::spawn(print_ephemeral(client.clone()));
    tokio::spawn(report_state(client.clone()));
    announce_online(&client).await;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(line) = line else { break };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let content = serde_json::json!({ "msgtype": "m.text", "body": text }).to_string();
        if let Err(e) = client.send(&args.room, "m.room.message", content).await {
            eprintln!("! not sent: {e}");
        }
    }
    client.close().await;
    Ok(())
}

async fn print_incoming(client: Client) {
    while let Some(event) = client.next_event().await {
        print_event(&event);
    }
}

async fn report_state(client: Client) {
    let mut state = client.watch_state();
    while state.changed().await.is_ok() {
        let now = *state.borrow_and_update();
        match now {
            ConnectionState::Connected => {
                eprintln!("* connected again");
                // Presence is not resumed: say it again.
                announce_online(&client).await;
            }
            ConnectionState::Reconnecting { attempt: 1 } => {
                eprintln!("* connection lost; reconnecting...");
            }
            ConnectionState::Reconnecting { .. } => {}
            ConnectionState::Closed => break,
        }
    }
}

async fn announce_online(client: &Client) {
    if let Err(e) = client.set_presence(PresenceState::Online, None).await {
        eprintln!("! presence not set: {e}");
    }
}

/// Others' presence and typing, one line each (our own are left out).
async fn print_ephemeral(client: Client) {
    let me = client.user_id().to_owned();
    let mut updates = client.ephemeral();
    loop {
        match updates.recv().await {
            Ok(Ephemeral::Presence { user_id, state, .. }) if user_id != me => {
                let state = match state {
                    PresenceState::Online => "online",
                    PresenceState::Unavailable => "away",
                    _ => "offline",
                };
                eprintln!("* {user_id} is {state}");
            }
            Ok(Ephemeral::Typing { user_ids, .. }) => {
                let others: Vec<&String> = user_ids.iter().filter(|u| **u != me).collect();
                if !others.is_empty() {
                    let names: Vec<&str> = others.iter().map(|u| u.as_str()).collect();
                    eprintln!("* {} typing...", names.join(", "));
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
}

/// `[seq] sender: body` for messages; other events in brief.
fn print_event(event: &Event) {
    let content: serde_json::Value = serde_json::from_slice(&event.content).unwrap_or_default();
    match (&*event.event_type, content["body"].as_str()) {
        ("m.room.message", Some(body)) => println!("[{}] {}: {}", event.seq, event.sender, body),
        (kind, _) => println!("[{}] {} ({kind})", event.seq, event.sender),
    }
}
