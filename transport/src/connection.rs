//! [`drive`]: the one connection loop behind every face, and [`FrameIo`],
//! what a face must provide.
//!
//! The loop waits on three things at once: an inbound frame, live events
//! ready in the session's feed, and the server's shutdown. Whatever the
//! session answers is collected and written as one batch, so a burst of
//! events becomes few socket writes. While a write is blocked (a slow
//! reader) nothing else is read; live events pile up in the connection's
//! bounded queue, which lags and is caught up from storage (or closes, by
//! policy) — the router never waits on the connection.

use std::time::Duration;

use axon_core::router::Delivery;
use axon_core::{CloseReason, Session};
use axon_schemas::ErrorCode;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::tracker::TrafficCounters;

/// Why a face could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// One inbound message was refused (e.g. a text WebSocket message); the
    /// connection goes on.
    #[error("{message}")]
    Refused {
        /// The code sent back.
        code: ErrorCode,
        /// Detail.
        message: &'static str,
    },
    /// The transport can no longer be trusted (an oversized message, a
    /// protocol violation): close with this code.
    #[error("{message}")]
    Fatal {
        /// The code sent back.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// The peer is gone.
    #[error("connection lost: {0}")]
    Lost(String),
}

/// The bytes side of one connection, as a face provides it.
pub trait FrameIo: Send {
    /// The next inbound frame; `None` when the peer closed. Must be
    /// cancel-safe: the loop selects on it.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Bytes>, IoError>> + Send;

    /// Writes every frame in `out` (and empties it) with as few socket writes
    /// as the transport allows.
    fn send(&mut self, out: &mut Vec<Bytes>) -> impl Future<Output = Result<(), IoError>> + Send;

    /// Writes live events (and empties `events`). By default their shared
    /// frames go the same way as every other frame; QUIC overrides this to
    /// put each room on its own lane stream.
    fn send_events(
        &mut self,
        events: &mut Vec<Delivery>,
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        let mut frames: Vec<Bytes> = events.drain(..).map(|d| d.frame.clone()).collect();
        async move { self.send(&mut frames).await }
    }

    /// Writes ephemeral frames (typing, receipts, presence; and empties
    /// `frames`). By default they go like every other frame; QUIC sends
    /// each as a datagram where it fits, as losing one costs nothing a
    /// later one does not repair.
    fn send_ephemeral(
        &mut self,
        frames: &mut Vec<Bytes>,
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        self.send(frames)
    }

    /// Closes the connection, with a reason or normally.
    fn close(&mut self, reason: Option<&CloseReason>) -> impl Future<Output = ()> + Send;
}

/// Timeouts of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Time allowed from connect to a successful hello.
    pub handshake: Duration,
    /// A connection that sends nothing (not even a ping) this long is closed.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(90),
        }
    }
}

/// Resolves once the server shuts down (never, if the signal is dropped
/// without shutting down).
pub(crate) async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The deadline that applies now, and whether it is the handshake's.
fn current_deadline(session: &Session, handshake: Instant, idle: Instant) -> (Instant, bool) {
    if !session.is_open() && handshake < idle {
        (handshake, true)
    } else {
        (idle, false)
    }
}

/// Runs one connection until it ends.
///
/// Not an `async fn`: rustc stores an async fn's arguments twice in its
/// future (as captured values and as locals), which made every idle
/// connection's task hold two copies of its session. An `async move` block
/// uses what it captures in place.
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn drive<'a, I: FrameIo + 'a>(
    mut session: Session,
    mut io: I,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
    traffic: &'a TrafficCounters,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        let mut out: Vec<Bytes> = Vec::new();
        let mut events: Vec<Delivery> = Vec::new();
        let mut ephemeral: Vec<Bytes> = Vec::new();
        // Locals live across an await are stored in every connection's
        // task, so what is needed only between awaits is kept in blocks:
        // a task 32 bytes larger crossed one of the allocator's size
        // classes and cost 550 bytes per idle connection.
        let (handshake_deadline, mut idle_deadline) = {
            let started = Instant::now();
            (started + timeouts.handshake, started + timeouts.idle)
        };
        // One timer for both deadlines: every timer in the select is state
        // that each idle connection's task carries. It is made once and
        // never set later than the deadline it stands for; an inbound frame
        // only moves `idle_deadline`, and a timer that fires early is set
        // again, so an active connection's timer fires once per idle
        // timeout. (A timer made per wake-up was 2.7 % of the server's CPU.)
        // It is set again at once when the handshake ends: left at the
        // handshake deadline, the timers of connections opened together
        // fired together, a burst of wake-ups in the middle of the traffic.
        let mut timed_handshake = current_deadline(&session, handshake_deadline, idle_deadline).1;
        let timer = tokio::time::sleep_until(handshake_deadline.min(idle_deadline));
        tokio::pin!(timer);
        loop {
            {
                let (deadline, handshaking) =
                    current_deadline(&session, handshake_deadline, idle_deadline);
                if deadline < timer.deadline() || (timed_handshake && !handshaking) {
                    timer.as_mut().reset(deadline);
                    timed_handshake = handshaking;
                }
            }
            let step: Result<(), CloseReason> = tokio::select! {
                biased;
                () = shutting_down(&mut shutdown) => Err(session.farewell(
                    &mut out,
                    CloseReason::resumable(ErrorCode::ShuttingDown, "the server is shutting down; resume elsewhere or later"),
                )),
                () = &mut timer => match current_deadline(&session, handshake_deadline, idle_deadline) {
                    (deadline, _) if timer.deadline() < deadline => {
                        timer.as_mut().reset(deadline);
                        Ok(())
                    }
                    (_, true) => {
                        metrics::counter!("axon_handshake_failures_total", "reason" => "timeout").increment(1);
                        Err(session.farewell(&mut out, CloseReason::fatal(ErrorCode::HandshakeTimeout, "no Hello in time")))
                    }
                    (_, false) => Err(session.farewell(
                        &mut out,
                        CloseReason::resumable(ErrorCode::Unknown, "idle timeout: send Ping at the heartbeat interval"),
                    )),
                },
                inbound = io.recv() => match inbound {
                    Ok(Some(frame)) => {
                        traffic.frames_in.increment(1);
                        traffic.bytes_in.increment(frame.len() as u64);
                        idle_deadline = Instant::now() + timeouts.idle;
                        // Boxed: handling a frame awaits deep call chains (login,
                        // replay, history); kept inline, their state would be
                        // part of every idle connection's task.
                        Box::pin(session.on_frame(&frame, &mut out)).await
                    }
                    Ok(None) => break,
                    Err(IoError::Refused { code, message }) => session.refuse(&mut out, code, message),
                    Err(IoError::Fatal { code, message }) => Err(session.farewell(&mut out, CloseReason::fatal(code, message))),
                    Err(IoError::Lost(_)) => break,
                },
                // Sends are acknowledged once durable, while the loop goes
                // on reading: a client may keep many sends in flight.
                settled = session.sends_settled(), if session.has_pending_sends() => {
                    session.answer_sends(settled, &mut out)
                }
                _ = session.events_ready(), if session.is_open() => {
                    // Boxed: one allocation per wake-up buys 144 bytes off
                    // every idle connection (the replay path's state). The
                    // writes below stay inline: boxed, they would cost an
                    // allocation per write and save nothing on WebSocket
                    // (their state fits in the select's) and 72 bytes on QUIC.
                    let pumped = Box::pin(session.pump_deliveries(&mut events, &mut out)).await;
                    session.pump_ephemeral(&mut ephemeral);
                    pumped
                }
            };
            if !events.is_empty() {
                traffic.frames_out.increment(events.len() as u64);
                traffic
                    .bytes_out
                    .increment(events.iter().map(|d| d.frame.len() as u64).sum());
                if io.send_events(&mut events).await.is_err() {
                    break;
                }
            }
            if !ephemeral.is_empty() {
                traffic.frames_out.increment(ephemeral.len() as u64);
                traffic
                    .bytes_out
                    .increment(ephemeral.iter().map(|f| f.len() as u64).sum());
                if io.send_ephemeral(&mut ephemeral).await.is_err() {
                    break;
                }
            }
            if !out.is_empty() {
                traffic.frames_out.increment(out.len() as u64);
                traffic
                    .bytes_out
                    .increment(out.iter().map(|f| f.len() as u64).sum());
                if io.send(&mut out).await.is_err() {
                    break;
                }
            }
            if let Err(reason) = step {
                Box::pin(io.close(Some(&reason))).await;
                return;
            }
        }
        Box::pin(io.close(None)).await;
    }
}
