//! The Matrix client-server API over real HTTP, for the integration tests:
//! a server with rate limits off, and requests written by hand so that
//! every status, errcode and header is what a client would see.

use std::net::SocketAddr;

use axon_server::{Config, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::loopback_config;

pub const V3: &str = "/_matrix/client/v3";

/// A response: status, lower-cased head, and the body as JSON (`Null` when
/// it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub json: Value,
}

impl Reply {
    pub fn errcode(&self) -> &str {
        self.json["errcode"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::trim))
    }
}

/// One request with `Connection: close`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    if let Some(body) = body {
        // The server may answer (413) and close before it has read it all.
        let _ = stream.write_all(body).await;
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a complete HTTP response");
    Reply {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_ascii_lowercase(),
        json: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    send(addr, "GET", path, token, None).await
}

pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: Value) -> Reply {
    send(addr, "POST", path, token, Some(body.to_string().as_bytes())).await
}

pub async fn put(addr: SocketAddr, path: &str, token: Option<&str>, body: Value) -> Reply {
    send(addr, "PUT", path, token, Some(body.to_string().as_bytes())).await
}

/// A test server; rate limits off unless a test sets them.
pub async fn start(dir: &std::path::Path, tune: impl FnOnce(&mut Config)) -> Server {
    let mut config = loopback_config(dir);
    config.matrix.user_requests_per_second = 0;
    config.matrix.ip_requests_per_second = 0;
    tune(&mut config);
    Server::start(config).await.unwrap()
}

/// Registers `name` through the dummy stage; returns (access token, device id).
pub async fn register(addr: SocketAddr, name: &str, password: &str) -> (String, String) {
    let r = post(
        addr,
        &format!("{V3}/register"),
        None,
        json!({"username": name, "password": password, "auth": {"type": "m.login.dummy"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["user_id"], format!("@{name}:localhost"));
    (
        r.json["access_token"].as_str().unwrap().to_owned(),
        r.json["device_id"].as_str().unwrap().to_owned(),
    )
}

pub async fn login(addr: SocketAddr, name: &str, password: &str) -> Reply {
    post(
        addr,
        &format!("{V3}/login"),
        None,
        json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": password}),
    )
    .await
}

pub async fn delete(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    send(addr, "DELETE", path, token, None).await
}

/// Creates a room with the createRoom `body`; returns its id.
pub async fn create(addr: SocketAddr, token: &str, body: Value) -> String {
    let r = post(addr, &format!("{V3}/createRoom"), Some(token), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["room_id"].as_str().unwrap().to_owned()
}

/// Sends an `m.room.message` with transaction id `txn`; returns the event id.
pub async fn say(addr: SocketAddr, token: &str, room: &str, txn: &str, body: &str) -> String {
    let r = put(
        addr,
        &format!("{V3}/rooms/{room}/send/m.room.message/{txn}"),
        Some(token),
        json!({"msgtype": "m.text", "body": body}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json["event_id"].as_str().unwrap().to_owned()
}

/// Sets the user's public `m.read` receipt on `event`.
pub async fn read_receipt(addr: SocketAddr, token: &str, room: &str, event: &str) {
    let r = post(
        addr,
        &format!("{V3}/rooms/{room}/receipt/m.read/{event}"),
        Some(token),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}
