//! The admin listener (`listen.admin`): `/metrics` for Prometheus, `/health`
//! for liveness and `/ready` for readiness. It starts first and stops last,
//! so an orchestrator sees the server go from "starting" to "ready" to
//! "draining".

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::http::{Body, respond};
use crate::shutdown::Shutdown;

/// How often histogram summaries are maintained between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Where the server is in its life, as `/ready` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Opening the store, starting the sequencers.
    Starting = 0,
    /// Serving.
    Ready = 1,
    /// Shutting down.
    Draining = 2,
}

/// The server's phase, shared by the wiring (writer) and `/ready` (reader).
#[derive(Debug)]
pub struct Readiness(AtomicU8);

impl Default for Readiness {
    fn default() -> Self {
        Self(AtomicU8::new(Phase::Starting as u8))
    }
}

impl Readiness {
    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
        metrics::gauge!("axon_ready").set(if phase == Phase::Ready { 1.0 } else { 0.0 });
    }

    /// The current phase.
    pub fn get(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }
}

/// The admin routes.
#[derive(Clone)]
pub struct AdminRoutes {
    readiness: Arc<Readiness>,
    metrics: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
    started: Instant,
}

impl AdminRoutes {
    /// Routes reporting `readiness` and rendering `metrics`.
    pub fn new(readiness: Arc<Readiness>, metrics: PrometheusHandle) -> Self {
        let process = metrics_process::Collector::default();
        process.describe();
        Self {
            readiness,
            metrics,
            process: Arc::new(process),
            started: Instant::now(),
        }
    }

    /// Answers one request.
    pub fn route<B>(&self, req: &Request<B>) -> Response<Body> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed\n",
            );
        }
        match req.uri().path() {
            "/metrics" => {
                metrics::gauge!("axon_uptime_seconds").set(self.started.elapsed().as_secs_f64());
                // process_cpu_seconds_total, process_resident_memory_bytes,
                // process_open_fds, ...: read from /proc at each scrape.
                self.process.collect();
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.metrics.render(),
                )
            }
            "/health" => respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
            "/ready" => match self.readiness.get() {
                Phase::Ready => respond(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
                Phase::Starting => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "starting\n",
                ),
                Phase::Draining => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    "draining\n",
                ),
            },
            _ => respond(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found; try /metrics, /health or /ready\n",
            ),
        }
    }

    /// Keeps the recorder's summaries bounded until `shutdown` fires.
    pub async fn run_upkeep(self, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => self.metrics.run_upkeep(),
                _ = shutdown.recv() => break,
            }
        }
    }
}

impl Service<Request<Incoming>> for AdminRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(self.route(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_follows_the_phase() {
        let readiness = Arc::new(Readiness::default());
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let routes = AdminRoutes::new(Arc::clone(&readiness), handle);
        let get = |path: &str| routes.route(&Request::get(path).body(()).unwrap()).status();
        assert_eq!(get("/health"), StatusCode::OK);
        assert_eq!(get("/ready"), StatusCode::SERVICE_UNAVAILABLE);
        readiness.set(Phase::Ready);
        assert_eq!(get("/ready"), StatusCode::OK);
        readiness.set(Phase::Draining);
        assert_eq!(get("/ready"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get("/health"), StatusCode::OK);
        assert_eq!(get("/nope"), StatusCode::NOT_FOUND);
    }
}
