//! The command line: options every scenario shares ([`Common`]) and one
//! argument set per scenario.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Longest measured phase a run may ask for.
pub const MAX_DURATION_SECS: u64 = 3_600;

/// `axon-loadtest`: measures an Axon server on this machine.
#[derive(Debug, Parser)]
#[command(name = "axon-loadtest", version, about)]
pub struct Cli {
    /// Options of every scenario.
    #[command(flatten)]
    pub common: Common,
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options of every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Length of the measured phase, seconds (at most 3600).
    #[arg(long, global = true, default_value_t = 20)]
    pub duration_secs: u64,
    /// The server's plain HTTP listener: users and rooms are made through
    /// its Matrix API, and the `matrix` scenario loads it.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8008")]
    pub http: String,
    /// The server's `/metrics` (admin listener), for server CPU, memory and
    /// deliveries in the report, e.g. http://127.0.0.1:9108/metrics.
    #[arg(long, global = true)]
    pub server_metrics: Option<String>,
    /// Registration token, when the server's registration is `token`.
    #[arg(long, global = true, env = "AXON_LOADTEST_REGISTRATION_TOKEN")]
    pub registration_token: Option<String>,
    /// Loopback source addresses to spread connections over (127.0.0.1 to
    /// 127.0.0.N; each has its own ephemeral ports).
    #[arg(long, global = true, default_value_t = 8)]
    pub sources: usize,
    /// Directory for the JSON result and the HTML report.
    #[arg(long, global = true, default_value = "loadtest-results")]
    pub out: PathBuf,
    /// CA certificate (PEM) to trust for wss:// and quic://, e.g. the
    /// server's development certificate `<data_dir>/tls/dev-cert.pem`.
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Publishers send into rooms; every subscribed connection receives.
    Fanout(FanoutArgs),
    /// Ramp to many idle connections, hold them, report what they cost.
    Connections(ConnectionsArgs),
    /// Clients drop and resume in cycles while events flow; no gap allowed.
    Churn(ChurnArgs),
    /// Matrix users send over HTTP and long-poll /sync.
    Matrix(MatrixArgs),
    /// Internal: one worker process of a multi-process run.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// `fanout`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Transport of the subscribers: ws, wss, quic, or mix (a third each).
    #[arg(long, default_value = "ws")]
    pub transport: String,
    /// WebSocket URL (ws:// or wss:// is chosen by --transport).
    #[arg(long, default_value = "127.0.0.1:8008")]
    pub ws_addr: String,
    /// TLS listener for wss://.
    #[arg(long, default_value = "127.0.0.1:8448")]
    pub wss_addr: String,
    /// QUIC listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub quic_addr: String,
    /// Subscribing connections.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Rooms each connection subscribes to.
    #[arg(long, default_value_t = 1)]
    pub rooms_per_connection: usize,
    /// Publishing connections (separate from the subscribers).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Total events per second over all publishers; 0 = as fast as the
    /// server acknowledges.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Sends each publisher keeps in flight.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Event content size, bytes.
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// Users the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// After the publishers stop, how long receivers may take to drain.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
}

/// `connections`.
#[derive(Debug, Clone, Args)]
pub struct ConnectionsArgs {
    /// ws, wss or quic.
    #[arg(long, default_value = "ws")]
    pub transport: String,
    /// Listener address (host:port) of that transport; default
    /// 127.0.0.1:8008 (ws), :8448 (wss) or :8443 (quic).
    #[arg(long)]
    pub addr: Option<String>,
    /// Connections to hold.
    #[arg(long, default_value_t = 1_000)]
    pub count: usize,
    /// New connections per second while ramping.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 60)]
    pub hold_secs: u64,
    /// Processes to spread the connections over (each may open at most
    /// 20,000 files here).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Users the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
}

/// `churn`.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// ws, wss or quic.
    #[arg(long, default_value = "ws")]
    pub transport: String,
    /// Listener address (host:port) of that transport; default
    /// 127.0.0.1:8008 (ws), :8448 (wss) or :8443 (quic).
    #[arg(long)]
    pub addr: Option<String>,
    /// Clients.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Reconnect cycles per client.
    #[arg(long, default_value_t = 3)]
    pub cycles: usize,
    /// Events per second the publishers send while clients churn.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Users the clients are spread over.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
}

/// `matrix`.
#[derive(Debug, Clone, Args)]
pub struct MatrixArgs {
    /// Users; each long-polls /sync on its own connection.
    #[arg(long, default_value_t = 20)]
    pub users: usize,
    /// Rooms; user i is in room i mod rooms.
    #[arg(long, default_value_t = 2)]
    pub rooms: usize,
    /// Concurrent senders (each its own connection, sending as the users
    /// in turn); 0 = one per user.
    #[arg(long, default_value_t = 0)]
    pub senders: usize,
    /// Total sends per second; 0 = as fast as the server answers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Event content size, bytes.
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// After the senders stop, how long /sync may take to deliver the rest.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
}

/// `worker` (internal): a share of a multi-process run, reporting JSON on
/// stdout.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The job, as JSON.
    #[arg(long)]
    pub job: String,
}
