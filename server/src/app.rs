//! Wiring: [`Server::start`] opens the data directory and the store, starts
//! the router, sequencers and accounts, binds the listeners and logs where
//! everything is; [`Server::shutdown`] undoes it in order, flushing the store.
//!
//! Startup order: lock the data directory and check its layout → bind every
//! listener (a taken port fails in milliseconds, before the slow parts) →
//! serve the admin listener (`/ready` says 503 "starting") → certificate →
//! store → router, sequencers, accounts → serve the public listeners → ready.
//!
//! Shutdown order: `/ready` says 503 "draining" → the public listeners stop
//! accepting and their connections finish the request in hand (bounded by
//! `shutdown.drain_timeout_secs`) → the sequencers finish their batches →
//! the store is flushed → the admin listener stops → the data directory is
//! unlocked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axon_core::store::{AccountStore, TimelineStore};
use axon_core::{Accounts, Ephemeral, RoomRouter, Sequencer, Services, Store};
use axon_matrix::MatrixApi;
use axon_transport::quic::QuicFace;
use axon_transport::ws::WsFace;
use axon_transport::{ConnectionTracker, FaceKind, Timeouts};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin::{AdminRoutes, Phase, Readiness};
use crate::config::{Config, RouterSettings};
use crate::data_dir::DataDir;
use crate::http::{HttpListener, PublicRoutes};
use crate::shutdown::{self, Trigger};
use crate::storage::{self, StoreInfo};
use crate::telemetry;
use crate::tls::{self, CertificateFiles};

/// How long the admin listener may take to close after everything else.
const ADMIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The engine the faces are built on.
pub struct Core {
    /// The store: timelines, accounts, receipts, account data.
    pub store: Arc<dyn Store>,
    /// Room → local subscribers.
    pub router: Arc<RoomRouter>,
    /// One writer per shard.
    pub sequencer: Sequencer,
    /// Users, logins, tokens.
    pub accounts: Accounts,
    /// Typing, presence and receipt fan-out.
    pub ephemeral: Arc<Ephemeral>,
    /// Per-connection queue capacity and lag policy, for the faces.
    pub router_settings: RouterSettings,
}

/// Where the listeners are bound (port 0 in the config becomes a real port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundAddrs {
    /// Plain HTTP.
    pub http: SocketAddr,
    /// HTTPS.
    pub https: SocketAddr,
    /// Admin: metrics, health, readiness.
    pub admin: SocketAddr,
    /// QUIC (UDP).
    pub quic: SocketAddr,
}

/// A running server.
pub struct Server {
    addrs: BoundAddrs,
    core: Core,
    native: Arc<ConnectionTracker>,
    quic: QuicFace,
    certificate: CertificateFiles,
    readiness: Arc<Readiness>,
    public: Trigger,
    admin: Trigger,
    tasks: Vec<JoinHandle<()>>,
    /// The public HTTP and HTTPS accept loops; shutdown waits for them so
    /// their sockets are closed when it returns.
    public_listeners: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
    // Dropped last: unlocks the data directory.
    data_dir: DataDir,
}

/// Connections that may wait for `accept` on a listener (the kernel caps it
/// at `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 128: a
/// burst of a few hundred connects overflowed that, the kernel dropped the
/// SYNs, and those clients retried a second later (handshake p90 1.02 s
/// with 2,000 connections opened 200 at a time, docs/benchmarks.md).
const LISTEN_BACKLOG: u32 = 4096;

fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen()
        .with_context(|| format!("cannot listen on {addr} ({key}); is another process using it?"))
}

impl Server {
    /// Starts everything `config` describes and returns once the server is
    /// ready.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        tls::install_crypto_provider();
        let metrics = telemetry::install_recorder()?;
        let readiness = Arc::new(Readiness::default());
        readiness.set(Phase::Starting);

        let data_dir = DataDir::open(&config.data_dir)?;
        data_dir.check_shards(config.sequencer.shards)?;

        let admin_listener = bind("listen.admin", config.listen.admin)?;
        let http_listener = bind("listen.http", config.listen.http)?;
        let https_listener = bind("listen.https", config.listen.https)?;
        let addrs = BoundAddrs {
            http: http_listener.local_addr()?,
            https: https_listener.local_addr()?,
            admin: admin_listener.local_addr()?,
            quic: config.listen.quic,
        };

        let admin = Trigger::new();
        let admin_routes = AdminRoutes::new(Arc::clone(&readiness), metrics);
        let mut tasks = vec![
            tokio::spawn(admin_routes.clone().run_upkeep(admin.subscribe())),
            tokio::spawn(
                HttpListener {
                    name: "admin",
                    listener: admin_listener,
                    tls: None,
                    service: admin_routes,
                }
                .serve(admin.subscribe(), admin.guard()),
            ),
        ];

        let certificate = tls::certificate_files(
            &config.tls,
            &data_dir.tls_dir(),
            config.server_name.as_str(),
        )?;
        let tls_config = tls::server_config(&certificate)?;

        let (store, store_info) = storage::open(&config.storage, &data_dir).await?;
        let router = Arc::new(RoomRouter::new());
        let timeline: Arc<dyn TimelineStore> = store.clone();
        let sequencer = Sequencer::start(timeline, Arc::clone(&router), config.sequencer_config())
            .await
            .context("starting the sequencers (recovering shard positions from the store)")?;
        let account_store: Arc<dyn AccountStore> = store.clone();
        let matrix_config = config.matrix_config();
        let accounts = Accounts::new(account_store, config.server_name.clone(), None)
            .with_refreshable_ttl(matrix_config.refreshable_token_lifetime);
        let ephemeral = Ephemeral::start(Arc::clone(&router), store.clone());
        let core = Core {
            store,
            router,
            sequencer,
            accounts,
            ephemeral,
            router_settings: config.router.clone(),
        };
        let services = Services {
            sequencer: core.sequencer.clone(),
            store: core.store.clone(),
            accounts: core.accounts.clone(),
            router: Arc::clone(&core.router),
            ephemeral: Arc::clone(&core.ephemeral),
        };
        let native = ConnectionTracker::new(config.native.max_connections);
        let session_config = Arc::new(config.session_config());
        let timeouts = Timeouts {
            handshake: Duration::from_secs(config.native.handshake_timeout_secs),
            idle: Duration::from_secs(config.native.idle_timeout_secs),
        };
        let quic = QuicFace::bind(
            config.listen.quic,
            (*tls_config).clone(),
            services.clone(),
            Arc::clone(&session_config),
            Arc::clone(&native),
            timeouts,
        )
        .with_context(|| format!("cannot serve QUIC on {} (listen.quic)", config.listen.quic))?;
        let addrs = BoundAddrs {
            quic: quic.local_addr().context("reading the QUIC address")?,
            ..addrs
        };
        tasks.push(tokio::spawn(quic.clone().serve()));
        let matrix = MatrixApi::new(services.clone(), matrix_config);
        let ws = WsFace::new(services, session_config, Arc::clone(&native), timeouts);
        let public_routes = PublicRoutes::new().with_matrix(matrix);
        let plain_routes = if config.plain_ws_enabled() {
            public_routes
                .clone()
                .with_websocket(ws.clone(), FaceKind::Ws)
        } else {
            public_routes.clone()
        };

        let public = Trigger::new();
        let public_listeners = vec![
            tokio::spawn(
                HttpListener {
                    name: "http",
                    listener: http_listener,
                    tls: None,
                    service: plain_routes,
                }
                .serve(public.subscribe(), public.guard()),
            ),
            tokio::spawn(
                HttpListener {
                    name: "https",
                    listener: https_listener,
                    tls: Some(TlsAcceptor::from(tls_config)),
                    service: public_routes.with_websocket(ws, FaceKind::Wss),
                }
                .serve(public.subscribe(), public.guard()),
            ),
        ];

        readiness.set(Phase::Ready);
        log_startup(&config, &data_dir, &store_info, &certificate, &addrs);
        Ok(Self {
            addrs,
            core,
            native,
            quic,
            certificate,
            readiness,
            public,
            admin,
            tasks,
            public_listeners,
            drain_timeout: Duration::from_secs(config.shutdown.drain_timeout_secs),
            data_dir,
        })
    }

    /// The bound listener addresses.
    pub fn addrs(&self) -> &BoundAddrs {
        &self.addrs
    }

    /// The engine: store, router, sequencers, accounts.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The certificate the HTTPS listener serves.
    pub fn certificate(&self) -> &CertificateFiles {
        &self.certificate
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Stops accepting, drains connections, stops the sequencers, flushes
    /// the store and unlocks the data directory.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Self {
            core,
            native,
            quic,
            readiness,
            public,
            admin,
            tasks,
            public_listeners,
            drain_timeout,
            data_dir,
            ..
        } = self;
        readiness.set(Phase::Draining);
        tracing::info!("shutting down: no new connections; letting requests in flight finish");
        if !public.fire_and_drain(drain_timeout).await {
            tracing::warn!(
                timeout_secs = drain_timeout.as_secs(),
                "some connections were still busy at the drain deadline; closing them"
            );
        }
        // The accept loops end as soon as the signal fires; waiting for them
        // means their sockets are closed, whatever the drain's outcome.
        for listener in public_listeners {
            if let Err(e) = listener.await {
                tracing::warn!(error = %e, "a public listener task failed");
            }
        }
        // Native connections get a resumable ShuttingDown close; they drain
        // before the sequencers stop, so no send in flight is cut off.
        native.begin_shutdown();
        if tokio::time::timeout(drain_timeout, native.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                open = native.open(),
                "native connections still open at the drain deadline"
            );
        }
        quic.close().await;
        core.sequencer.shutdown().await;
        tracing::info!("sequencers stopped; flushing the store");
        let flushed = core.store.flush().await.context("flushing the store");
        admin.fire_and_drain(ADMIN_DRAIN_TIMEOUT).await;
        for task in tasks {
            task.abort();
        }
        // Every handle on the store goes before the data directory's lock.
        drop(core);
        drop(data_dir);
        flushed?;
        tracing::info!("flushed, bye");
        Ok(())
    }
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully.
/// A second signal during shutdown exits at once (acknowledged events are
/// already durable with `fsync` durability).
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Handlers first, so a signal during startup is not the default "die now".
    let mut signals = shutdown::Signals::new().context("installing signal handlers")?;
    let server = Server::start(config).await?;
    let name = signals.recv().await;
    tracing::info!(signal = name, "stop signal received");
    tokio::select! {
        result = server.shutdown() => result,
        name = signals.recv() => {
            anyhow::bail!("second stop signal ({name}) during shutdown; exiting without waiting")
        }
    }
}

fn log_startup(
    config: &Config,
    data_dir: &DataDir,
    store: &StoreInfo,
    certificate: &CertificateFiles,
    addrs: &BoundAddrs,
) {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), server_name = %config.server_name, "axon is ready");
    tracing::info!(path = %data_dir.path().display(), "data directory");
    tracing::info!(store = %store.description, shards = config.sequencer.shards, writers = config.sequencer.writers, "store");
    let origin = match (certificate.self_signed, certificate.generated_now) {
        (false, _) => "configured",
        (true, true) => "self-signed, generated now",
        (true, false) => "self-signed, reused",
    };
    tracing::info!(
        cert = %certificate.cert_path.display(),
        key = %certificate.key_path.display(),
        origin,
        "TLS certificate"
    );
    if certificate.self_signed {
        tracing::warn!(
            "the TLS certificate is a SELF-SIGNED DEVELOPMENT certificate that clients will not trust; \
             set tls.cert_path and tls.key_path for anything but development"
        );
    }
    if config.plain_ws_enabled() {
        tracing::info!(url = %format_args!("http://{}", addrs.http), websocket = %format_args!("ws://{}/_axon/v1/ws", addrs.http), "http listener");
    } else {
        tracing::info!(url = %format_args!("http://{}", addrs.http), websocket = "off (native.plain_ws)", "http listener");
    }
    tracing::info!(url = %format_args!("https://{}", addrs.https), websocket = %format_args!("wss://{}/_axon/v1/ws", addrs.https), "https listener");
    tracing::info!(addr = %format_args!("{}/udp", addrs.quic), alpn = "axon/1", "quic listener");
    let registration = match config.matrix_config().registration {
        axon_matrix::Registration::Open => "open",
        axon_matrix::Registration::Token(_) => "token",
        axon_matrix::Registration::Disabled => "disabled",
    };
    tracing::info!(client_api = %format_args!("http://{}/_matrix/client", addrs.http), registration, "matrix api");
    tracing::info!(
        metrics = %format_args!("http://{}/metrics", addrs.admin),
        health = %format_args!("http://{}/health", addrs.admin),
        ready = %format_args!("http://{}/ready", addrs.admin),
        "admin listener"
    );
}
