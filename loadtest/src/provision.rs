//! Users and rooms for a run, made through the Matrix client-server API
//! (registration must be open, or `--registration-token` given), so a run
//! needs nothing but a running server. Names carry a random run tag, so
//! runs against one data directory do not collide.
//!
//! The work is spread over a few keep-alive connections; an
//! `M_LIMIT_EXCEEDED` answer is waited out (`retry_after_ms`) and retried.

use std::time::Duration;

use anyhow::{Context as _, bail};
use http::Method;
use rand::Rng as _;
use serde_json::{Value, json};

use crate::http::{BaseUrl, HttpConn, Reply};

/// Matrix client-server API prefix.
pub const V3: &str = "/_matrix/client/v3";
/// Connections the set-up work is spread over.
const SETUP_CONNECTIONS: usize = 16;
/// Retries of one rate-limited request.
const RATE_LIMIT_RETRIES: u32 = 50;

/// A registered user and its access token (also good for the native faces).
#[derive(Debug, Clone)]
pub struct User {
    /// `@lt…u3:localhost`.
    pub user_id: String,
    /// Access token.
    pub token: String,
}

/// Makes users and rooms on one server.
#[derive(Debug, Clone)]
pub struct Provisioner {
    base: BaseUrl,
    tag: String,
    registration_token: Option<String>,
}

impl Provisioner {
    /// A provisioner for the server at `base`, with a fresh run tag.
    pub fn new(base: BaseUrl, registration_token: Option<String>) -> Self {
        let mut rng = rand::rng();
        let tag: String = (0..6)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
            .collect();
        Self {
            base,
            tag,
            registration_token,
        }
    }

    /// Registers `count` users (`lt<tag>u0`, `lt<tag>u1`, ...).
    pub async fn users(&self, count: usize) -> anyhow::Result<Vec<User>> {
        let work: Vec<usize> = (0..count).collect();
        let mut users = self
            .spread(work, |this, conn, i| {
                Box::pin(async move { this.register(conn, i).await.map(|u| (i, u)) })
            })
            .await?;
        users.sort_by_key(|(i, _)| *i);
        Ok(users.into_iter().map(|(_, u)| u).collect())
    }

    async fn register(&self, conn: &mut HttpConn, i: usize) -> anyhow::Result<User> {
        let auth = match &self.registration_token {
            Some(token) => json!({"type": "m.login.registration_token", "token": token}),
            None => json!({"type": "m.login.dummy"}),
        };
        let mut body = json!({
            "username": format!("lt{}u{i}", self.tag),
            "auth": auth,
            "initial_device_display_name": "axon-loadtest",
        });
        let path = format!("{V3}/register");
        let mut reply = retrying(conn, Method::POST, &path, None, Some(&body)).await?;
        // Load users have no password, which spares the server a password
        // hash each; a server that insists (Synapse, when measured for
        // comparison) gets one.
        if reply.error_code() == "M_MISSING_PARAM" {
            body["password"] = json!(format!("lt-{}-{i}-password", self.tag));
            reply = retrying(conn, Method::POST, &path, None, Some(&body)).await?;
        }
        if !reply.status.is_success() {
            bail!(
                "registering a load user: {} {} (is registration open? see --registration-token)",
                reply.status,
                reply.json
            );
        }
        Ok(User {
            user_id: str_field(&reply.json, "user_id")?,
            token: str_field(&reply.json, "access_token")?,
        })
    }

    /// Creates `count` public rooms owned by `creator`; returns their ids.
    pub async fn rooms(&self, creator: &User, count: usize) -> anyhow::Result<Vec<String>> {
        let work: Vec<usize> = (0..count).collect();
        let creator = creator.clone();
        let mut rooms = self
            .spread(work, move |this, conn, i| {
                let creator = creator.clone();
                Box::pin(async move {
                    let body = json!({
                        "preset": "public_chat",
                        "name": format!("load {} #{i}", this.tag),
                    });
                    let reply = retrying(
                        conn,
                        Method::POST,
                        &format!("{V3}/createRoom"),
                        Some(&creator.token),
                        Some(&body),
                    )
                    .await?;
                    if !reply.status.is_success() {
                        bail!("createRoom: {} {}", reply.status, reply.json);
                    }
                    Ok((i, str_field(&reply.json, "room_id")?))
                })
            })
            .await?;
        rooms.sort_by_key(|(i, _)| *i);
        Ok(rooms.into_iter().map(|(_, r)| r).collect())
    }

    /// Joins each (user, room) pair.
    pub async fn join(&self, pairs: Vec<(User, String)>) -> anyhow::Result<()> {
        self.spread(pairs, |_, conn, (user, room)| {
            Box::pin(async move {
                let path = format!("{V3}/join/{}", encode_path(&room));
                let reply = retrying(
                    conn,
                    Method::POST,
                    &path,
                    Some(&user.token),
                    Some(&json!({})),
                )
                .await?;
                if !reply.status.is_success() {
                    bail!(
                        "{} joining {room}: {} {}",
                        user.user_id,
                        reply.status,
                        reply.json
                    );
                }
                Ok(())
            })
        })
        .await?;
        Ok(())
    }

    /// Runs `work` over [`SETUP_CONNECTIONS`] connections, each taking
    /// items in turn.
    async fn spread<T, R, F>(&self, work: Vec<T>, f: F) -> anyhow::Result<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: for<'a> Fn(
                &'a Provisioner,
                &'a mut HttpConn,
                T,
            ) -> futures::future::BoxFuture<'a, anyhow::Result<R>>
            + Send
            + Sync
            + Clone
            + 'static,
    {
        let queue = std::sync::Arc::new(parking_lot::Mutex::new(work.into_iter()));
        let mut tasks = Vec::new();
        for _ in 0..SETUP_CONNECTIONS {
            let queue = std::sync::Arc::clone(&queue);
            let this = self.clone();
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = HttpConn::connect(&this.base, None).await?;
                let mut out = Vec::new();
                loop {
                    let Some(item) = queue.lock().next() else {
                        break;
                    };
                    out.push(f(&this, &mut conn, item).await?);
                }
                anyhow::Ok(out)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.context("set-up task")??);
        }
        Ok(all)
    }
}

/// A request retried while the server answers `M_LIMIT_EXCEEDED`.
pub async fn retrying(
    conn: &mut HttpConn,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Reply> {
    for _ in 0..RATE_LIMIT_RETRIES {
        let reply = conn.json(method.clone(), path, token, body).await?;
        if reply.json.get("errcode").and_then(Value::as_str) != Some("M_LIMIT_EXCEEDED") {
            return Ok(reply);
        }
        let wait = reply
            .json
            .get("retry_after_ms")
            .and_then(Value::as_u64)
            .unwrap_or(500);
        tokio::time::sleep(Duration::from_millis(wait.clamp(10, 10_000))).await;
    }
    bail!(
        "{path}: still rate limited after {RATE_LIMIT_RETRIES} tries (raise the server's [matrix] rate limits for load tests)"
    )
}

fn str_field(v: &Value, name: &str) -> anyhow::Result<String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {name:?} in {v}"))
}

/// Percent-encodes a path segment (room ids hold `!` and `:`).
pub fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_room_ids_for_paths() {
        assert_eq!(encode_path("!abc:localhost"), "%21abc%3Alocalhost");
        assert_eq!(encode_path("m.room.message"), "m.room.message");
    }
}
