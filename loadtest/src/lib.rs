//! `axon-loadtest`, the load generator operators use to measure Axon.
//!
//! Not built yet: this crate arrives with the load-generation issue. Planned
//! scenarios: `fanout`, `connections`, `churn` and `matrix`, each bounded in
//! count and time, on loopback addresses only, reporting delivered events per
//! second, latency percentiles from an HDR histogram, lost and duplicated
//! events by `seq`, and server CPU and memory per connection.
