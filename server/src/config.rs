//! [`Config`]: every setting of the server, its default, and how the layers
//! combine.
//!
//! Layers, later ones winning: built-in defaults < the TOML file given with
//! `--config` (or `AXON_CONFIG`) < `RUST_LOG` (for `log.level` only) <
//! `AXON_` environment variables < command-line flags.
//!
//! Environment variables name a key by its path in upper case, sections
//! separated by a double underscore: `listen.http` is `AXON_LISTEN__HTTP`,
//! `sequencer.shards` is `AXON_SEQUENCER__SHARDS`, and top-level keys keep
//! their single underscores (`data_dir` is `AXON_DATA_DIR`). Unknown keys are
//! an error in every layer, so a typo does not silently fall back to a
//! default. `docs/configuration.md` lists every key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axon_core::ServerName;
pub use axon_core::router::LagPolicy;
use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

mod matrix;
pub use matrix::{MatrixSettings, RegistrationSetting};

/// Prefix of every environment variable the server reads as configuration.
pub const ENV_PREFIX: &str = "AXON_";

/// The whole configuration, as the server uses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The server name: the part after `:` in user and room ids. Changing it
    /// later orphans every existing user id.
    pub server_name: ServerName,
    /// Where the store, the development certificate and the layout file live.
    /// A relative path is relative to the working directory.
    pub data_dir: PathBuf,
    /// Listener addresses.
    pub listen: ListenConfig,
    /// Certificate and key for the TLS listeners.
    pub tls: TlsConfig,
    /// The store.
    pub storage: StorageConfig,
    /// The sequencers.
    pub sequencer: SequencerSettings,
    /// The router and its per-connection queues.
    pub router: RouterSettings,
    /// Logging.
    pub log: LogConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// The native faces (WebSocket; QUIC next) and their per-connection limits.
    pub native: NativeConfig,
    /// The Matrix client-server API.
    pub matrix: MatrixSettings,
}

/// When the WebSocket endpoint is served on the plain HTTP listener (`ws://`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlainWs {
    /// Only when `listen.http` is a loopback address (development, or a TLS
    /// proxy on the same machine).
    #[default]
    Loopback,
    /// Always (behind a TLS-terminating proxy on another machine).
    Always,
    /// Never: WebSocket only over TLS (`wss://`).
    Never,
}

/// The native faces and the limits of each connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NativeConfig {
    /// `ws://` on the plain HTTP listener: `loopback`, `always` or `never`.
    pub plain_ws: PlainWs,
    /// Most native connections at once; more are refused with 503.
    pub max_connections: usize,
    /// Largest inbound frame in bytes.
    pub max_frame_bytes: usize,
    /// Most rooms one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Sends per second per connection, sustained.
    pub sends_per_second: u32,
    /// Sends per connection allowed in a burst.
    pub send_burst: u32,
    /// Seconds from connect to a successful hello.
    pub handshake_timeout_secs: u64,
    /// Seconds without any inbound frame before a connection is closed.
    pub idle_timeout_secs: u64,
}

impl Default for NativeConfig {
    fn default() -> Self {
        let session = axon_core::SessionConfig::default();
        Self {
            plain_ws: PlainWs::Loopback,
            max_connections: 19_000,
            max_frame_bytes: session.max_frame_bytes,
            max_subscriptions: session.max_subscriptions,
            sends_per_second: session.sends_per_second.get(),
            send_burst: session.send_burst.get(),
            handshake_timeout_secs: 10,
            idle_timeout_secs: 90,
        }
    }
}

impl Config {
    /// Defaults with every listener on 127.0.0.1 port 0 (the OS picks free
    /// ports; `Server::addrs` tells which) and the data in `data_dir`: for
    /// tests and for embedding a server in another program.
    pub fn ephemeral(data_dir: &std::path::Path) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: data_dir.to_owned(),
            listen: ListenConfig {
                http: any,
                https: any,
                quic: any,
                admin: any,
            },
            ..Self::default()
        }
    }

    /// Whether `ws://` is served on the plain HTTP listener.
    pub fn plain_ws_enabled(&self) -> bool {
        match self.native.plain_ws {
            PlainWs::Loopback => self.listen.http.ip().is_loopback(),
            PlainWs::Always => true,
            PlainWs::Never => false,
        }
    }

    /// The session limits the native faces apply to each connection.
    pub fn session_config(&self) -> axon_core::SessionConfig {
        let one = std::num::NonZeroU32::MIN;
        axon_core::SessionConfig {
            max_frame_bytes: self.native.max_frame_bytes,
            max_subscriptions: self.native.max_subscriptions,
            sends_per_second: std::num::NonZeroU32::new(self.native.sends_per_second)
                .unwrap_or(one),
            send_burst: std::num::NonZeroU32::new(self.native.send_burst).unwrap_or(one),
            queue_capacity: self.router.queue_capacity,
            lag_policy: self.router.lag_policy,
            ..axon_core::SessionConfig::default()
        }
    }
}

/// Listener addresses; port 0 picks a free port (the bound address is logged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// Plain HTTP: the Matrix API and the WebSocket upgrade.
    pub http: SocketAddr,
    /// The same over TLS.
    pub https: SocketAddr,
    /// QUIC (UDP). Not served yet: the QUIC face arrives with the transport.
    pub quic: SocketAddr,
    /// Admin: `/metrics`, `/health`, `/ready`. Keep it private.
    pub admin: SocketAddr,
}

/// TLS certificate and key; both unset means a generated development
/// certificate in `<data_dir>/tls/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_path: Option<PathBuf>,
}

/// Which storage backend holds timelines and accounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// The embedded store in `<data_dir>/store`: nothing to install.
    #[default]
    Embedded,
}

/// When a write counts as durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// Every group commit is fsynced before it is acknowledged.
    #[default]
    Fsync,
    /// Commits are written to the OS and fsynced every `flush_interval_ms`:
    /// a machine crash can lose that window of acknowledged events.
    Buffered,
}

/// Storage settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The backend; only `embedded` exists so far.
    pub backend: StorageBackend,
    /// `fsync` (default) or `buffered`.
    pub durability: DurabilityMode,
    /// With `buffered` durability, how often the store is fsynced.
    pub flush_interval_ms: u64,
}

/// Sequencer settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequencerSettings {
    /// Number of shards. Fixed for the life of a data directory: it is
    /// recorded there on first start and the server refuses a different value.
    pub shards: u16,
    /// Sequencer tasks; each serves every `writers`-th shard and commits
    /// all its shards' batches in one write. At most `shards`.
    pub writers: u16,
    /// Most events in one group commit.
    pub max_batch_events: usize,
    /// Appends that may wait per writer before senders wait for room.
    pub queue_depth: usize,
}

/// Router settings, applied by the faces to each connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSettings {
    /// Deliveries queued per connection before it counts as lagging.
    pub queue_capacity: usize,
    /// What a lagging connection does: `catch_up` or `close`.
    pub lag_policy: LagPolicy,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter: a level (`info`) or directives
    /// (`info,axon_core=debug`), as `RUST_LOG` takes them.
    pub level: String,
}

/// Graceful shutdown settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take to finish after a stop signal.
    pub drain_timeout_secs: u64,
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .expect("built-in default listener addresses are valid")
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: ServerName::parse("localhost")
                .expect("\"localhost\" is a valid server name"),
            data_dir: PathBuf::from("./data"),
            listen: ListenConfig::default(),
            tls: TlsConfig::default(),
            storage: StorageConfig::default(),
            sequencer: SequencerSettings::default(),
            router: RouterSettings::default(),
            log: LogConfig::default(),
            shutdown: ShutdownConfig::default(),
            native: NativeConfig::default(),
            matrix: MatrixSettings::default(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            http: addr("127.0.0.1:8008"),
            https: addr("127.0.0.1:8448"),
            quic: addr("127.0.0.1:8443"),
            admin: addr("127.0.0.1:9108"),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Embedded,
            durability: DurabilityMode::Fsync,
            flush_interval_ms: 100,
        }
    }
}

impl Default for SequencerSettings {
    fn default() -> Self {
        let core = axon_core::SequencerConfig::default();
        Self {
            shards: core.shards,
            writers: core.writers,
            max_batch_events: core.max_batch_events,
            queue_depth: core.queue_depth,
        }
    }
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            lag_policy: LagPolicy::CatchUp,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 10,
        }
    }
}

/// Settings given on the command line: the top layer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagOverrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--server-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// `--log-format` and `--log-level`.
    #[serde(skip_serializing_if = "LogFlags::is_empty")]
    pub log: LogFlags,
}

/// The logging flags.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogFlags {
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

impl LogFlags {
    fn is_empty(&self) -> bool {
        self.format.is_none() && self.level.is_none()
    }
}

impl Provider for FlagOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flags")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

/// An environment layer whose errors name the variable that set the value
/// (figment's own `Env` names it in its internal dotted form).
struct EnvLayer {
    env: Env,
    metadata: Metadata,
}

impl EnvLayer {
    /// `AXON_SECTION__KEY` → `section.key`. `AXON_CONFIG` names the file and
    /// is not a key.
    fn axon() -> Self {
        let metadata = Metadata::named("environment").interpolater(|_: &Profile, path: &[&str]| {
            let names: Vec<String> = path.iter().map(|k| k.to_ascii_uppercase()).collect();
            format!("{ENV_PREFIX}{}", names.join("__"))
        });
        Self {
            env: Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]),
            metadata,
        }
    }

    /// `RUST_LOG` → `log.level`.
    fn rust_log() -> Self {
        let metadata = Metadata::named("environment")
            .interpolater(|_: &Profile, _: &[&str]| "RUST_LOG".to_owned());
        Self {
            env: Env::raw().only(&["rust_log"]).map(|_| "log.level".into()),
            metadata,
        }
    }
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.env.data()
    }
}

/// Why the configuration is unusable. Names the key and where its value
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The key, e.g. `listen.http`; empty when the problem is the file itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// Which layer set the value (a file, an environment variable, a flag).
    pub origin: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key.is_empty(), &self.origin) {
            (true, None) => write!(f, "invalid configuration: {}", self.message),
            (true, Some(origin)) => {
                write!(f, "invalid configuration in {origin}: {}", self.message)
            }
            (false, None) => write!(f, "invalid configuration: `{}`: {}", self.key, self.message),
            (false, Some(origin)) => write!(
                f,
                "invalid configuration: `{}`: {} (set by {origin})",
                self.key, self.message
            ),
        }
    }
}

impl ConfigError {
    fn key(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }

    fn from_figment(err: figment::Error) -> Self {
        let mut path = err.path.clone();
        if let figment::error::Kind::UnknownField(field, _) = &err.kind
            && path.last() != Some(field)
        {
            path.push(field.clone());
        }
        let profile = err.profile.clone().unwrap_or_default();
        let origin = err
            .metadata
            .as_ref()
            .map(|md| origin_of(md, &profile, &err.path));
        Self {
            key: path.join("."),
            message: err.kind.to_string(),
            origin,
        }
    }
}

/// Names the layer that set a value: a file, an environment variable, flags.
fn origin_of(md: &Metadata, profile: &Profile, path: &[String]) -> String {
    match &md.source {
        Some(source) => format!("{} {source}", md.name),
        None if md.name == "environment" && !path.is_empty() => {
            format!("environment variable {}", md.interpolate(profile, path))
        }
        None => md.name.to_string(),
    }
}

impl Config {
    /// The layered configuration: defaults, then `file` if given, then
    /// `RUST_LOG`, then `AXON_*` variables, then `flags`.
    pub fn figment(file: Option<&Path>, flags: &FlagOverrides) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(EnvLayer::rust_log())
            .merge(EnvLayer::axon())
            .merge(flags.clone())
    }

    /// Loads and validates the configuration from every layer.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, ConfigError> {
        if let Some(file) = file {
            // figment treats a missing file as empty; a file the operator
            // named must exist.
            if let Err(e) = std::fs::metadata(file) {
                return Err(ConfigError {
                    key: String::new(),
                    message: format!("cannot read config file {}: {e}", file.display()),
                    origin: Some("--config".into()),
                });
            }
        }
        let figment = Self::figment(file, flags);
        let config: Config = figment.extract().map_err(ConfigError::from_figment)?;
        config.validate().map_err(|mut e| {
            if let Some(md) = figment.find_metadata(&e.key) {
                let path: Vec<String> = e.key.split('.').map(str::to_owned).collect();
                e.origin = Some(origin_of(md, &figment.profile().clone(), &path));
            }
            e
        })?;
        Ok(config)
    }

    /// Checks what serde cannot: ranges and combinations of keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::key("data_dir", "must not be empty"));
        }
        if self.sequencer.shards == 0 {
            return Err(ConfigError::key("sequencer.shards", "must be at least 1"));
        }
        if self.sequencer.writers == 0 {
            return Err(ConfigError::key("sequencer.writers", "must be at least 1"));
        }
        if self.sequencer.writers > self.sequencer.shards {
            return Err(ConfigError::key(
                "sequencer.writers",
                format!(
                    "must not exceed sequencer.shards ({})",
                    self.sequencer.shards
                ),
            ));
        }
        if self.sequencer.max_batch_events == 0 {
            return Err(ConfigError::key(
                "sequencer.max_batch_events",
                "must be at least 1",
            ));
        }
        if self.sequencer.queue_depth == 0 {
            return Err(ConfigError::key(
                "sequencer.queue_depth",
                "must be at least 1",
            ));
        }
        for (key, value) in [
            ("native.max_connections", self.native.max_connections as u64),
            ("native.max_frame_bytes", self.native.max_frame_bytes as u64),
            (
                "native.sends_per_second",
                u64::from(self.native.sends_per_second),
            ),
            ("native.send_burst", u64::from(self.native.send_burst)),
            (
                "native.handshake_timeout_secs",
                self.native.handshake_timeout_secs,
            ),
            ("native.idle_timeout_secs", self.native.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        if self.native.max_frame_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::key(
                "native.max_frame_bytes",
                "must be at most 16 MiB",
            ));
        }
        if self.router.queue_capacity == 0 {
            return Err(ConfigError::key(
                "router.queue_capacity",
                "must be at least 1",
            ));
        }
        if self.storage.durability == DurabilityMode::Buffered
            && self.storage.flush_interval_ms == 0
        {
            return Err(ConfigError::key(
                "storage.flush_interval_ms",
                "must be at least 1 with buffered durability",
            ));
        }
        match (&self.tls.cert_path, &self.tls.key_path) {
            (Some(_), None) => {
                return Err(ConfigError::key(
                    "tls.key_path",
                    "must be set when tls.cert_path is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::key(
                    "tls.cert_path",
                    "must be set when tls.key_path is set",
                ));
            }
            _ => {}
        }
        self.matrix.validate()?;
        if let Err(e) = crate::telemetry::log_filter(&self.log.level) {
            return Err(ConfigError::key(
                "log.level",
                format!("not a valid log filter: {}", e.root_cause()),
            ));
        }
        let listeners = [
            ("listen.http", self.listen.http),
            ("listen.https", self.listen.https),
            ("listen.admin", self.listen.admin),
        ];
        for (i, (key_a, a)) in listeners.iter().enumerate() {
            for (key_b, b) in &listeners[i + 1..] {
                if a == b && a.port() != 0 {
                    return Err(ConfigError::key(
                        key_b,
                        format!("{b} is already used by {key_a}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The core sequencer settings.
    pub fn sequencer_config(&self) -> axon_core::SequencerConfig {
        axon_core::SequencerConfig {
            shards: self.sequencer.shards,
            writers: self.sequencer.writers,
            max_batch_events: self.sequencer.max_batch_events,
            queue_depth: self.sequencer.queue_depth,
        }
    }

    /// The effective configuration as TOML (what `axon config show` prints).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

// `Jail` closures must return `figment::Error`, whatever its size.
#[allow(clippy::result_large_err)]
#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    /// Loads in the jail's working directory and environment.
    fn load(file: Option<&str>, flags: &FlagOverrides) -> Result<Config, ConfigError> {
        Config::load(file.map(Path::new), flags)
    }

    #[test]
    fn defaults_without_any_layer() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let c = load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c, Config::default());
            assert_eq!(c.listen.http.to_string(), "127.0.0.1:8008");
            assert_eq!(c.listen.https.to_string(), "127.0.0.1:8448");
            assert_eq!(c.listen.quic.to_string(), "127.0.0.1:8443");
            assert_eq!(c.listen.admin.to_string(), "127.0.0.1:9108");
            assert_eq!(c.sequencer.shards, 16);
            assert_eq!(c.sequencer.writers, 1);
            assert_eq!(c.sequencer.max_batch_events, 4096);
            assert_eq!(c.router.queue_capacity, 4096);
            assert_eq!(c.data_dir, PathBuf::from("./data"));
            assert_eq!(c.server_name.as_str(), "localhost");
            Ok(())
        });
    }

    #[test]
    fn file_then_env_then_flags() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                "axon.toml",
                r#"
                server_name = "file.example"
                data_dir = "/from/file"
                [listen]
                http = "127.0.0.1:1001"
                https = "127.0.0.1:1002"
                [sequencer]
                shards = 8
                [log]
                format = "json"
                level = "debug"
                "#,
            )?;
            jail.set_env("AXON_LISTEN__HTTPS", "127.0.0.1:2002");
            jail.set_env("AXON_DATA_DIR", "/from/env");
            jail.set_env("AXON_ROUTER__LAG_POLICY", "close");
            jail.set_env("AXON_LOG__LEVEL", "warn");
            jail.set_env("RUST_LOG", "error");
            let flags = FlagOverrides {
                data_dir: Some("/from/flag".into()),
                log: LogFlags {
                    format: Some(LogFormat::Text),
                    level: None,
                },
                ..Default::default()
            };
            let c = load(Some("axon.toml"), &flags).map_err(|e| e.to_string())?;
            assert_eq!(c.server_name.as_str(), "file.example", "file only");
            assert_eq!(c.listen.http.to_string(), "127.0.0.1:1001", "file only");
            assert_eq!(
                c.listen.https.to_string(),
                "127.0.0.1:2002",
                "env beats file"
            );
            assert_eq!(c.listen.admin.to_string(), "127.0.0.1:9108", "default");
            assert_eq!(c.sequencer.shards, 8);
            assert_eq!(c.router.lag_policy, LagPolicy::Close, "env only");
            assert_eq!(
                c.data_dir,
                PathBuf::from("/from/flag"),
                "flag beats env and file"
            );
            assert_eq!(c.log.format, LogFormat::Text, "flag beats file");
            assert_eq!(c.log.level, "warn", "AXON_LOG__LEVEL beats RUST_LOG");
            Ok(())
        });
    }

    #[test]
    fn rust_log_beats_the_file_level() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("axon.toml", "[log]\nlevel = \"debug\"\n")?;
            jail.set_env("RUST_LOG", "info,axon_core=trace");
            let c =
                load(Some("axon.toml"), &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.log.level, "info,axon_core=trace");
            jail.set_env("AXON_LOG__LEVEL", "warn,axon_server=debug");
            let c =
                load(Some("axon.toml"), &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                c.log.level, "warn,axon_server=debug",
                "directives survive env parsing"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key_and_the_layer() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("AXON_LISTEN__HTTP", "not-an-address");
            let e = load(None, &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "listen.http");
            assert!(e.to_string().contains("AXON_LISTEN__HTTP"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("axon.toml", "[sequencer]\nshards = \"many\"\n")?;
            let e = load(Some("axon.toml"), &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "sequencer.shards");
            assert!(e.to_string().contains("axon.toml"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("axon.toml", "[listen]\nhtttp = \"127.0.0.1:1\"\n")?;
            let e = load(Some("axon.toml"), &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "listen.htttp", "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("AXON_STORAGE__DURABILITY", "sometimes");
            let e = load(None, &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "storage.durability", "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.clear_env();
            let flags = FlagOverrides {
                server_name: Some("bad name!".into()),
                ..Default::default()
            };
            let e = load(None, &flags).unwrap_err();
            assert_eq!(e.key, "server_name", "{e}");
            assert!(e.to_string().contains("command-line flags"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn validation_names_the_key() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("AXON_SEQUENCER__SHARDS", "0");
            assert_eq!(
                load(None, &FlagOverrides::default()).unwrap_err().key,
                "sequencer.shards"
            );
            jail.set_env("AXON_SEQUENCER__SHARDS", "4");
            jail.set_env("AXON_SEQUENCER__WRITERS", "5");
            let e = load(None, &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "sequencer.writers");
            assert!(e.to_string().contains("must not exceed"), "{e}");
            jail.set_env("AXON_SEQUENCER__WRITERS", "4");
            jail.set_env("AXON_TLS__CERT_PATH", "/etc/axon/cert.pem");
            assert_eq!(
                load(None, &FlagOverrides::default()).unwrap_err().key,
                "tls.key_path"
            );
            jail.set_env("AXON_TLS__KEY_PATH", "/etc/axon/key.pem");
            jail.set_env("AXON_LISTEN__ADMIN", "127.0.0.1:8008");
            assert_eq!(
                load(None, &FlagOverrides::default()).unwrap_err().key,
                "listen.admin"
            );
            jail.set_env("AXON_LISTEN__ADMIN", "127.0.0.1:9108");
            jail.set_env("RUST_LOG", "info,=[");
            let e = load(None, &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "log.level");
            assert!(e.to_string().contains("RUST_LOG"), "{e}");
            jail.set_env("AXON_SEQUENCER__SHARDS", "0");
            let e = load(None, &FlagOverrides::default()).unwrap_err();
            assert!(
                e.to_string()
                    .contains("environment variable AXON_SEQUENCER__SHARDS"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_syntax_error_names_the_file() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("axon.toml", "[listen\nhttp = 1\n")?;
            let e = load(Some("axon.toml"), &FlagOverrides::default()).unwrap_err();
            assert!(e.to_string().contains("axon.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_named_config_file_must_exist() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let e = load(Some("missing.toml"), &FlagOverrides::default()).unwrap_err();
            assert!(e.message.contains("missing.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_environment_keys_are_rejected() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("AXON_CONFIG", "ignored-here.toml");
            load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            jail.set_env("AXON_SEQUENCER__SHARDZ", "4");
            let e = load(None, &FlagOverrides::default()).unwrap_err();
            assert_eq!(e.key, "sequencer.shardz", "{e}");
            Ok(())
        });
    }

    /// Every key path of the configuration, e.g. `listen.http`.
    fn every_key() -> Vec<String> {
        let config = Config {
            tls: TlsConfig {
                cert_path: Some("c".into()),
                key_path: Some("k".into()),
            },
            ..Config::default()
        };
        let value = toml::Value::try_from(&config).unwrap();
        let mut keys = Vec::new();
        for (name, v) in value.as_table().unwrap() {
            match v.as_table() {
                Some(section) => keys.extend(section.keys().map(|k| format!("{name}.{k}"))),
                None => keys.push(name.clone()),
            }
        }
        keys
    }

    #[test]
    fn the_example_file_shows_every_key_with_its_default() {
        let example = include_str!("../../deploy/axon.example.toml");
        // Uncomment `# key = value` lines: the result must be the defaults.
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut parsed: Config = toml::from_str(&uncommented).unwrap();
        assert!(parsed.tls.cert_path.is_some() && parsed.tls.key_path.is_some());
        parsed.tls = TlsConfig::default();
        assert_eq!(parsed, Config::default());
        for key in every_key() {
            let name = key.rsplit('.').next().unwrap();
            assert!(
                example.contains(&format!("# {name} = ")),
                "{key} missing from deploy/axon.example.toml"
            );
        }
    }

    #[test]
    fn the_load_test_configuration_is_valid() {
        let text = include_str!("../../deploy/loadtest.toml");
        let parsed: Config = toml::from_str(text).unwrap();
        parsed.validate().unwrap();
        assert_eq!(parsed.matrix.user_requests_per_second, 0);
        assert_eq!(parsed.matrix.ip_requests_per_second, 0);
        assert!(parsed.native.sends_per_second >= 1_000_000);
    }

    #[test]
    fn the_configuration_doc_lists_every_key_and_variable() {
        let doc = include_str!("../../docs/configuration.md");
        for key in every_key() {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "{key} missing from docs/configuration.md"
            );
            let var = format!(
                "{ENV_PREFIX}{}",
                key.to_ascii_uppercase().replace('.', "__")
            );
            assert!(
                doc.contains(&format!("`{var}`")),
                "{var} missing from docs/configuration.md"
            );
        }
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        let c = Config::default();
        let text = c.to_toml().unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
