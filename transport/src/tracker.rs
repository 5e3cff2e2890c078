//! [`ConnectionTracker`]: how many native connections are open, the limit,
//! and the drain at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Which face a connection came in on (a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceKind {
    /// WebSocket over plain TCP (loopback or behind a proxy).
    Ws,
    /// WebSocket over TLS.
    Wss,
    /// QUIC.
    Quic,
}

impl FaceKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Wss => "wss",
            Self::Quic => "quic",
        }
    }
}

/// Frames and bytes in and out, for one kind of connection. Registered
/// once per kind and shared: a handle per connection would cost every idle
/// connection four allocations.
pub struct TrafficCounters {
    /// Frames received.
    pub frames_in: metrics::Counter,
    /// Bytes received.
    pub bytes_in: metrics::Counter,
    /// Frames sent.
    pub frames_out: metrics::Counter,
    /// Bytes sent.
    pub bytes_out: metrics::Counter,
}

impl TrafficCounters {
    fn register(kind: FaceKind) -> Self {
        let transport = kind.as_str();
        Self {
            frames_in: metrics::counter!("axon_frames_in_total", "transport" => transport),
            bytes_in: metrics::counter!("axon_bytes_in_total", "transport" => transport),
            frames_out: metrics::counter!("axon_frames_out_total", "transport" => transport),
            bytes_out: metrics::counter!("axon_bytes_out_total", "transport" => transport),
        }
    }
}

impl std::fmt::Debug for TrafficCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrafficCounters")
    }
}

/// Shared by every face of a server.
#[derive(Debug)]
pub struct ConnectionTracker {
    open: AtomicUsize,
    max: usize,
    drained: Notify,
    shutdown: watch::Sender<bool>,
    /// Indexed by [`FaceKind`] in declaration order.
    traffic: [TrafficCounters; 3],
}

/// Held by one open connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    tracker: Arc<ConnectionTracker>,
    kind: FaceKind,
}

impl ConnectionTracker {
    /// A tracker allowing `max` concurrent connections.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
            drained: Notify::new(),
            shutdown: watch::channel(false).0,
            traffic: [FaceKind::Ws, FaceKind::Wss, FaceKind::Quic].map(TrafficCounters::register),
        })
    }

    /// Takes a slot, or `None` when the limit is reached or the server is
    /// shutting down.
    pub fn admit(self: &Arc<Self>, kind: FaceKind) -> Option<ConnectionSlot> {
        if *self.shutdown.borrow() {
            return None;
        }
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            metrics::counter!("axon_connections_refused_total", "transport" => kind.as_str(), "reason" => "limit")
                .increment(1);
            return None;
        }
        metrics::gauge!("axon_connections", "transport" => kind.as_str()).increment(1.0);
        metrics::counter!("axon_connections_total", "transport" => kind.as_str()).increment(1);
        Some(ConnectionSlot {
            tracker: Arc::clone(self),
            kind,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A receiver that turns `true` when the server shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every connection to close (resumably) and refuses new ones.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Waits until every connection has closed.
    pub async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        metrics::gauge!("axon_connections", "transport" => self.kind.as_str()).decrement(1.0);
        if self.tracker.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.drained.notify_waiters();
        }
    }
}

impl ConnectionSlot {
    /// Which face the connection uses.
    pub fn kind(&self) -> FaceKind {
        self.kind
    }

    /// The traffic counters of this kind of connection.
    pub fn traffic(&self) -> &TrafficCounters {
        &self.tracker.traffic[self.kind as usize]
    }
}
