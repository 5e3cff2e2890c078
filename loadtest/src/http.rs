//! A small HTTP/1.1 client for the Matrix API and `/metrics`: one
//! keep-alive connection per [`HttpConn`], requests one at a time, as a
//! Matrix client holds one connection for `/sync` and one for sends.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::net;

/// A plain-HTTP base URL on a loopback address.
#[derive(Debug, Clone)]
pub struct BaseUrl {
    /// The address to connect to.
    pub addr: SocketAddr,
    /// `host[:port]` for the Host header.
    pub authority: String,
    /// Path prefix without a trailing `/` (usually empty).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `http://HOST:PORT[/prefix]` and resolves it to a loopback
    /// address.
    pub async fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!(
                "{url:?}: only http:// URLs are supported here (the server's plain listener on loopback)"
            );
        }
        let host = uri.host().context("URL without a host")?;
        let port = uri.port_u16().unwrap_or(80);
        let addr = net::resolve_loopback(host.trim_matches(['[', ']']), port, "server").await?;
        Ok(Self {
            addr,
            authority: uri
                .authority()
                .map_or_else(|| host.to_owned(), |a| a.to_string()),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// One keep-alive connection.
pub struct HttpConn {
    sender: http1::SendRequest<Full<Bytes>>,
    base: BaseUrl,
}

/// A response: status and parsed JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// The body as JSON.
    pub json: Value,
}

impl Reply {
    /// An answer's status and body (`null` when the body is not JSON).
    pub fn of(status: StatusCode, body: &[u8]) -> Self {
        Self {
            status,
            json: serde_json::from_slice(body).unwrap_or(Value::Null),
        }
    }

    /// The Matrix `errcode`, or the status when there is none.
    pub fn error_code(&self) -> String {
        match self.json.get("errcode").and_then(Value::as_str) {
            Some(code) => code.to_owned(),
            None => format!("http {}", self.status.as_u16()),
        }
    }
}

impl HttpConn {
    /// Connects to `base` from `source`.
    pub async fn connect(base: &BaseUrl, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let source = source.unwrap_or(if base.addr.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        });
        let tcp = net::connect_tcp(source, base.addr)
            .await
            .with_context(|| format!("connecting to {} from {source}", base.addr))?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            base: base.clone(),
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base.prefix))
            .header(http::header::HOST, &self.base.authority);
        if let Some(token) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building a request")?;
        self.sender.ready().await.context("connection closed")?;
        let response = self
            .sender
            .send_request(req)
            .await
            .context("sending a request")?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading a response")?
            .to_bytes();
        Ok((status, body))
    }

    /// A request with a JSON body (or none), answered with JSON.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let body = body.map(|b| b.to_string().into_bytes());
        let (status, bytes) = self.request(method, path, token, body).await?;
        Ok(Reply::of(status, &bytes))
    }
}

/// GET `url` (http://, loopback) on a fresh connection: for `/metrics`.
pub async fn get_text(url: &str) -> anyhow::Result<String> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    let base = BaseUrl::parse(&format!(
        "http://{}",
        uri.authority().context("URL without a host")?
    ))
    .await?;
    let mut conn = HttpConn::connect(&base, None).await?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let (status, body) = conn.request(Method::GET, path, None, None).await?;
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    String::from_utf8(body.to_vec()).context("the answer is not UTF-8")
}
