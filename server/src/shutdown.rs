//! Graceful shutdown, as in mini-redis: a signal tells every task to stop,
//! and a channel that closes when the last task has dropped its sender tells
//! the coordinator that they all did. The signal is a `watch` rather than
//! mini-redis' `broadcast` so that a listener made after the signal fired
//! (a connection accepted in the same instant) still sees it.
//!
//! - [`Trigger`] — held by the coordinator: fires the signal and waits for
//!   the drain, for a bounded time.
//! - [`Shutdown`] — held by each task: resolves once the signal fired.
//! - [`DrainGuard`] — held by each task for as long as it has work in flight.
//! - [`Signals`] — SIGINT and SIGTERM.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// The coordinator's side: fires the signal, then waits for the tasks.
#[derive(Debug)]
pub struct Trigger {
    notify: watch::Sender<bool>,
    drain_tx: Option<mpsc::Sender<()>>,
    drain_rx: mpsc::Receiver<()>,
}

impl Default for Trigger {
    fn default() -> Self {
        Self::new()
    }
}

impl Trigger {
    /// A trigger that has not fired.
    pub fn new() -> Self {
        let (notify, _) = watch::channel(false);
        let (drain_tx, drain_rx) = mpsc::channel(1);
        Self {
            notify,
            drain_tx: Some(drain_tx),
            drain_rx,
        }
    }

    /// A listener for a new task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.notify.subscribe(),
        }
    }

    /// A guard for a new task; the drain completes when every guard is gone.
    pub fn guard(&self) -> DrainGuard {
        let tx = self
            .drain_tx
            .as_ref()
            .expect("guards are only handed out before the trigger fires");
        DrainGuard { _tx: tx.clone() }
    }

    /// Fires the signal and waits up to `timeout` for every guard to drop.
    /// Returns `false` if some tasks were still busy at the deadline.
    pub async fn fire_and_drain(mut self, timeout: Duration) -> bool {
        self.notify.send_replace(true);
        drop(self.drain_tx.take());
        tokio::time::timeout(timeout, self.drain_rx.recv())
            .await
            .is_ok()
    }
}

/// A task's view of the shutdown signal; clone it for sub-tasks.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether the signal has fired.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits for the signal (returns at once if it already fired).
    pub async fn recv(&mut self) {
        // A dropped trigger also means the coordinator is done.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

/// Keeps the drain open while a task has work in flight.
#[derive(Debug, Clone)]
pub struct DrainGuard {
    _tx: mpsc::Sender<()>,
}

/// The stop signals: SIGINT and SIGTERM (Ctrl-C where there are no Unix
/// signals). Handlers are installed when this is created.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers: from now on these signals no longer kill the
    /// process but wake [`Signals::recv`].
    pub fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for the next signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_every_guard() {
        let trigger = Trigger::new();
        let mut shutdown = trigger.subscribe();
        let guard = trigger.guard();
        let task = tokio::spawn(async move {
            shutdown.recv().await;
            assert!(shutdown.is_shutdown());
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
        });
        assert!(trigger.fire_and_drain(Duration::from_secs(5)).await);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_listener_made_after_the_signal_still_sees_it() {
        let trigger = Trigger::new();
        let early = trigger.subscribe();
        trigger.fire_and_drain(Duration::from_millis(1)).await;
        let mut late = early.clone();
        late.recv().await;
        assert!(late.is_shutdown());
    }

    #[tokio::test]
    async fn drain_gives_up_at_the_deadline() {
        let trigger = Trigger::new();
        let _stuck = trigger.guard();
        assert!(!trigger.fire_and_drain(Duration::from_millis(20)).await);
    }
}
