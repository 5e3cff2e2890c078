//! The `axon` binary: configuration, command line, wiring of the store,
//! router, sequencers and accounts, the HTTP and admin listeners, and
//! graceful shutdown. The library exists so that integration tests (and
//! later the faces) can start a real server in-process with [`Server::start`].
//!
//! # Layout
//!
//! - [`cli`] — the command line (clap): global flags and subcommands.
//! - [`commands`] — the entry point ([`commands::main`]) and what each
//!   subcommand does; [`commands::user`] holds the operator's user commands.
//! - [`config`] — [`Config`], its defaults, and the layers: TOML file <
//!   `AXON_*` environment < flags; validation with errors that name the key.
//! - [`app`] — [`Server`]: startup and shutdown order, and the startup log
//!   that says where everything is.
//! - [`data_dir`] — the data directory: its lock, its layout file (the fixed
//!   shard count), where the store and certificate go.
//! - [`storage`] — opens the configured store backend.
//! - [`tls`] — the certificate (configured, or a generated development one)
//!   and the rustls server configuration.
//! - [`http`] — the HTTP accept loop shared by every listener, and the
//!   public routes (`GET /` banner, Matrix `404 M_UNRECOGNIZED` otherwise).
//! - [`admin`] — `/metrics`, `/health`, `/ready`.
//! - [`telemetry`] — the Prometheus recorder, the metric catalogue, logging.
//! - [`shutdown`] — stop signal and drain, as in mini-redis.

pub mod admin;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data_dir;
pub mod http;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod tls;

pub use app::{BoundAddrs, Core, Server};
pub use config::Config;
