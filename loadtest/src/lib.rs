//! `axon-loadtest`, the load generator operators (and we) use to measure
//! Axon.
//!
//! Scenarios ([`scenario`]):
//!
//! - `fanout`: C connections (ws, wss, quic or a mix) in R rooms, P
//!   publishers at a fixed or the maximum rate; delivered events per
//!   second, end-to-end latency, lost and duplicated events.
//! - `connections`: ramp to N idle connections, hold, and report the
//!   connect rate, handshake latency and server memory per connection.
//! - `churn`: clients that drop and resume in cycles while events flow,
//!   checked for gaps and duplicates.
//! - `matrix`: Matrix users sending over HTTP and long-polling `/sync`.
//!
//! Every run is bounded in count and time, contacts loopback addresses
//! only ([`net`]), and ends with a summary table, a JSON result and a
//! self-contained HTML report ([`report`]).
//!
//! # Layout
//!
//! - [`cli`]: the command line.
//! - [`scenario`]: [`Run`](scenario::Run) (bounds, progress, the server
//!   probe) and one module per scenario; `native` opens axon-client
//!   connections for them (URLs, one TLS configuration, source addresses,
//!   shared QUIC endpoints), `worker` spreads a run over processes.
//! - [`record`]: latency histograms (HDR) per second and in total,
//!   counters, lost/duplicate tracking by `seq`.
//! - [`payload`]: the send timestamp carried in each event's content.
//! - [`server`]: reading the server's `/metrics` (CPU, memory, deliveries).
//! - [`http`]: a small keep-alive HTTP/1.1 client for the Matrix API.
//! - [`provision`]: users and rooms, made through the Matrix API.
//! - [`net`]: loopback source addresses and the open-file limit.
//! - [`report`]: the summary table, the JSON file, the HTML report.

pub mod cli;
pub mod http;
pub mod net;
pub mod payload;
pub mod provision;
pub mod record;
pub mod report;
pub mod scenario;
pub mod server;
