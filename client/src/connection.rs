//! The background task that owns the socket: it writes requests, matches
//! answers to them by `request_id`, orders events through the
//! [`ResumeCursor`], sends heartbeats, and when the connection is lost
//! reconnects with backoff, resumes every room from its last `seq` and
//! writes again every request still unanswered (a send keeps its
//! transaction id, so the server stores it once).
//!
//! The application talks to it through [`Command`]s; it answers each
//! request on the request's oneshot channel and publishes
//! [`ConnectionState`] on a watch channel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axon_schemas::{
    ClientFrame, DecodeLimits, Direction, ErrorCode, Frame, Ping, ServerFrame, Unsubscribe,
};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{Auth, ClientConfig};
use crate::cursor::{Fill, ResumeCursor};
use crate::error::{ClientError, ServerError};
use crate::event::{Event, HistoryPage, SendAck, SubscribeAck};
use crate::handshake::{Greeting, Welcomed, handshake};
use crate::request::{Failure, Outcome, Pending, Reply, Request, Waiter};
use crate::transport::{Dial, Endpoint, Inbound, Transport};

/// Largest frame the client accepts from a server. Larger than the
/// server's own inbound limit: history pages and batches may be bigger
/// than anything a client sends.
pub(crate) const MAX_INBOUND_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Authenticated; requests flow.
    Connected,
    /// The connection was lost; reconnect attempt `attempt` (from 1) is
    /// waiting or under way. Requests made now are sent once connected.
    Reconnecting {
        /// Attempt number since the loss, from 1.
        attempt: u32,
    },
    /// Closed for good: by [`Client::close`](crate::Client::close), by a
    /// refusal that reconnecting cannot cure, or after the last attempt.
    Closed,
}

/// What the application asks of the task.
pub(crate) enum Command {
    /// A request that gets an answer.
    Request {
        request: Request,
        reply: oneshot::Sender<Outcome>,
    },
    /// Stop receiving a room (the protocol has no answer to this).
    Unsubscribe { room_id: String },
    /// A frame the protocol does not answer (typing, receipt, presence):
    /// written on the current connection, dropped while disconnected.
    Notify { frame: bytes::Bytes },
    /// Close the connection and stop.
    Close { done: oneshot::Sender<()> },
    /// Test hook: drop the socket without a close, as a network failure would.
    KillConnection,
    /// Test hook: ignore the next `SendAck` and drop the socket, as if the
    /// connection died after the server stored the event.
    DropNextSendAck,
}

/// Ephemeral updates kept for a slow [`Client::ephemeral`](crate::Client::ephemeral)
/// receiver before it misses some (it is told how many).
const EPHEMERAL_BUFFER: usize = 256;

/// State shared with every [`Client`](crate::Client) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: watch::Sender<ConnectionState>,
    pub reconnects: AtomicU64,
    pub ephemeral: tokio::sync::broadcast::Sender<crate::Ephemeral>,
}

/// How one connection ended.
enum Ended {
    /// The application closed the client (or dropped every handle).
    Shutdown,
    /// Lost; reconnecting may cure it.
    Lost(String),
    /// The socket was dropped on purpose, as a network failure would
    /// (test hook): no close handshake.
    Killed,
    /// Over for good.
    Fatal(ClientError),
}

/// The task's state; lives as long as the client.
pub(crate) struct Connection {
    config: ClientConfig,
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    limits: DecodeLimits,
    /// The token every reconnect authenticates with (the configured one, or
    /// the one a password login returned).
    token: String,
    device_id: String,
    heartbeat: Duration,
    cursor: ResumeCursor,
    pending: BTreeMap<u64, Pending>,
    next_request_id: u64,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    /// Events of the frame being handled, in the order they are handed out.
    ready: Vec<Event>,
    shared: Arc<Shared>,
    drop_next_send_ack: bool,
    on_closed: Vec<oneshot::Sender<()>>,
}

/// What [`Connection::open`] hands the client.
pub(crate) struct Opened {
    pub welcome: Welcomed,
    pub access_token: String,
    pub commands: mpsc::Sender<Command>,
    pub events: mpsc::Receiver<Event>,
    pub shared: Arc<Shared>,
}

impl Connection {
    /// Connects and authenticates with `config`, then spawns the task.
    /// Fails without retrying: the caller sees a wrong URL or token at once.
    pub async fn open(config: ClientConfig) -> Result<Opened, ClientError> {
        let endpoint = Endpoint::parse(&config.url)?;
        let tls = if !endpoint.needs_tls(config.quic_endpoint.is_some()) {
            None
        } else if let Some(tls) = &config.tls_config {
            Some(Arc::clone(tls))
        } else {
            Some(crate::transport::tls::client_config(&config)?)
        };
        let limits = DecodeLimits::with_max_frame_bytes(MAX_INBOUND_FRAME_BYTES);
        let greeting = Greeting {
            auth: &config.auth,
            device_id: config.device_id.as_deref(),
            client_name: &config.client_name,
            resume: &[],
        };
        let (transport, welcome) = connect(
            &endpoint,
            &dial(&config, tls.as_ref(), &limits),
            &greeting,
            &limits,
            config.request_timeout,
        )
        .await?;
        let token = match (&config.auth, &welcome.access_token) {
            (_, Some(token)) => token.clone(),
            (Auth::Token(token), None) => token.clone(),
            (Auth::Password { .. }, None) => {
                return Err(ClientError::Protocol(
                    "Welcome after Login carried no access token".into(),
                ));
            }
        };
        tracing::info!(
            user_id = %welcome.user_id,
            device_id = %welcome.device_id,
            session_id = %welcome.session_id,
            url = %config.url,
            "connected"
        );
        let (command_tx, command_rx) = mpsc::channel(1024);
        let (event_tx, event_rx) = mpsc::channel(config.event_buffer.max(1));
        let shared = Arc::new(Shared {
            state: watch::Sender::new(ConnectionState::Connected),
            reconnects: AtomicU64::new(0),
            ephemeral: tokio::sync::broadcast::Sender::new(EPHEMERAL_BUFFER),
        });
        let task = Connection {
            endpoint,
            tls,
            limits,
            token: token.clone(),
            device_id: welcome.device_id.clone(),
            heartbeat: welcome.heartbeat,
            cursor: ResumeCursor::default(),
            pending: BTreeMap::new(),
            next_request_id: 1,
            commands: command_rx,
            events: event_tx,
            ready: Vec::new(),
            shared: Arc::clone(&shared),
            drop_next_send_ack: false,
            on_closed: Vec::new(),
            config,
        };
        tokio::spawn(task.run(transport));
        Ok(Opened {
            welcome,
            access_token: token,
            commands: command_tx,
            events: event_rx,
            shared,
        })
    }

    async fn run(mut self, mut transport: Transport) {
        let ended = loop {
            self.shared.state.send_replace(ConnectionState::Connected);
            match self.serve(&mut transport).await {
                Ended::Lost(reason) => {
                    tracing::warn!(%reason, "connection lost; reconnecting");
                    // Finish the old connection's close handshake (the
                    // server waits for it) without delaying the reconnect.
                    tokio::spawn(async move { transport.close().await });
                }
                Ended::Killed => {
                    tracing::info!("socket dropped (test hook); reconnecting");
                    drop(transport);
                }
                ended => {
                    transport.close().await;
                    break ended;
                }
            }
            match self.reconnect().await {
                Ok(next) => {
                    transport = next;
                    self.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                Err(ended) => break ended,
            }
        };
        match ended {
            Ended::Fatal(e) => tracing::warn!(error = %e, "client closed"),
            _ => tracing::debug!("client closed"),
        }
        for (_, pending) in std::mem::take(&mut self.pending) {
            pending.answer(Err(Failure::Closed));
        }
        self.shared.state.send_replace(ConnectionState::Closed);
        for done in self.on_closed.drain(..) {
            let _ = done.send(());
        }
        // Later commands find the channel closed and fail with `Closed`.
    }

    /// Runs one connection until it ends.
    async fn serve(&mut self, transport: &mut Transport) -> Ended {
        if let Err(e) = self.resend_pending(transport).await {
            return Ended::Lost(e.to_string());
        }
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + self.heartbeat, self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let silence_limit = self.heartbeat * 2 + self.config.request_timeout;
        let mut last_heard = Instant::now();
        let mut nonce = 0u64;
        loop {
            let step = tokio::select! {
                inbound = transport.recv() => match inbound {
                    Ok(Inbound::Frame(bytes)) => {
                        last_heard = Instant::now();
                        self.on_frame(&bytes, transport).await
                    }
                    Ok(Inbound::Closed { code, reason }) => {
                        Err(Ended::Lost(format!("closed by the server ({code:?}: {reason})")))
                    }
                    Err(e) => Err(Ended::Lost(e.to_string())),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command, transport).await,
                    None => Err(Ended::Shutdown),
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > silence_limit {
                        Err(Ended::Lost("the server stopped answering heartbeats".into()))
                    } else {
                        nonce += 1;
                        let ping = axon_schemas::encode_client(&ClientFrame::Ping(Ping { nonce }));
                        write(transport, ping).await
                    }
                }
            };
            if let Err(ended) = step {
                return ended;
            }
        }
    }

    /// Writes every unanswered request on a fresh connection, in the order
    /// they were made; forgets the abandoned ones and the gap fills (the
    /// resume replays those events anyway).
    async fn resend_pending(&mut self, transport: &mut Transport) -> Result<(), ClientError> {
        self.cursor.reset_fills();
        self.pending
            .retain(|_, p| !p.abandoned() && !matches!(p.waiter, Waiter::Fill));
        for (&id, pending) in &self.pending {
            let position = self.position_for(&pending.request);
            transport.send(pending.request.encode(id, position)).await?;
        }
        Ok(())
    }

    /// The position a subscription request resumes from.
    fn position_for(&self, request: &Request) -> Option<u64> {
        match request {
            Request::Subscribe { room_id, .. } => self.cursor.last(room_id),
            _ => None,
        }
    }

    async fn on_command(
        &mut self,
        command: Command,
        transport: &mut Transport,
    ) -> Result<(), Ended> {
        match command {
            Command::Request { request, reply } => {
                let id = self.register(request, Waiter::Caller(reply));
                if let Some(pending) = self.pending.get(&id) {
                    let frame = pending
                        .request
                        .encode(id, self.position_for(&pending.request));
                    write(transport, frame).await?;
                }
                Ok(())
            }
            Command::Unsubscribe { room_id } => {
                self.cursor.forget(&room_id);
                let frame = axon_schemas::encode_client(&ClientFrame::Unsubscribe(Unsubscribe {
                    request_id: 0,
                    room_ids: vec![&room_id],
                }));
                write(transport, frame).await
            }
            Command::Notify { frame } => write(transport, frame).await,
            Command::Close { done } => {
                self.on_closed.push(done);
                Err(Ended::Shutdown)
            }
            Command::KillConnection => Err(Ended::Killed),
            Command::DropNextSendAck => {
                self.drop_next_send_ack = true;
                Ok(())
            }
        }
    }

    /// Handles a command while disconnected: requests wait for the next
    /// connection. `Some` = stop reconnecting.
    fn on_command_offline(&mut self, command: Option<Command>) -> Option<Ended> {
        match command? {
            Command::Request { request, reply } => {
                self.register(request, Waiter::Caller(reply));
                None
            }
            Command::Unsubscribe { room_id } => {
                // The next connection resumes only tracked rooms.
                self.cursor.forget(&room_id);
                None
            }
            // Typing or presence from before a reconnect is stale by the
            // time it could be written.
            Command::Notify { .. } => None,
            Command::Close { done } => {
                self.on_closed.push(done);
                Some(Ended::Shutdown)
            }
            Command::KillConnection => None,
            Command::DropNextSendAck => {
                self.drop_next_send_ack = true;
                None
            }
        }
    }

    /// Files a request under a new id (and tracks a subscribed room).
    fn register(&mut self, request: Request, waiter: Waiter) -> u64 {
        if let Request::Subscribe { room_id, since } = &request {
            self.cursor.track(room_id, *since);
        }
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.pending.insert(id, Pending { request, waiter });
        id
    }

    async fn on_frame(&mut self, bytes: &Bytes, transport: &mut Transport) -> Result<(), Ended> {
        let frame = match axon_schemas::decode(bytes, &self.limits).and_then(Frame::into_server) {
            Ok(frame) => frame,
            Err(e) => {
                // One bad frame is not a reason to drop a good connection.
                tracing::warn!(error = %e, "ignoring an undecodable frame from the server");
                return Ok(());
            }
        };
        // Reused from frame to frame: most frames carry events.
        let mut ready = std::mem::take(&mut self.ready);
        let mut fills = Vec::new();
        match frame {
            ServerFrame::Event(view) => {
                fills.extend(self.cursor.offer(Event::shared(&view, bytes), &mut ready));
            }
            ServerFrame::EventBatch(batch) => {
                for view in &batch.events {
                    fills.extend(self.cursor.offer(Event::shared(view, bytes), &mut ready));
                }
            }
            ServerFrame::SendAck(ack) => {
                if std::mem::take(&mut self.drop_next_send_ack) {
                    tracing::info!("dropping a send ack and the socket (test hook)");
                    return Err(Ended::Killed);
                }
                self.answer(
                    ack.request_id,
                    Ok(Reply::Sent(SendAck {
                        event_id: ack.event_id.to_owned(),
                        room_id: ack.room_id.to_owned(),
                        seq: ack.seq,
                        pos: ack.pos,
                    })),
                );
            }
            ServerFrame::Subscribed(sub) => {
                fills.extend(self.cursor.subscribed(sub.room_id, sub.head, &mut ready));
                if sub.request_id != 0 {
                    self.answer(
                        sub.request_id,
                        Ok(Reply::Subscribed(SubscribeAck { head: sub.head })),
                    );
                }
            }
            ServerFrame::HistoryPage(page) => {
                let events: Vec<Event> = page
                    .events
                    .iter()
                    .map(|view| Event::shared(view, bytes))
                    .collect();
                match self.pending.remove(&page.request_id) {
                    Some(Pending {
                        waiter: Waiter::Fill,
                        ..
                    }) => fills.extend(self.cursor.filled(page.room_id, Some(events), &mut ready)),
                    Some(pending) => pending.answer(Ok(Reply::History(HistoryPage {
                        room_id: page.room_id.to_owned(),
                        events,
                        next_from_seq: page.next_from_seq,
                        end: page.end,
                    }))),
                    None => tracing::debug!(request_id = page.request_id, "unmatched history page"),
                }
            }
            ServerFrame::Error(e) => {
                let error = ServerError {
                    code: e.code,
                    message: e.message.to_owned(),
                    retry_after_ms: e.retry_after_ms,
                };
                if e.request_id != 0 {
                    fills.extend(self.fail(e.request_id, error.clone(), &mut ready));
                }
                if e.close {
                    let reason = format!("{}: {}", error.code, error.message);
                    return Err(if e.resumable || error.code == ErrorCode::Internal {
                        Ended::Lost(reason)
                    } else {
                        Ended::Fatal(error.into())
                    });
                }
                if e.request_id == 0 {
                    tracing::warn!(code = %error.code, message = %error.message, "server error");
                }
            }
            ServerFrame::Pong(_) => {}
            other => match crate::Ephemeral::from_frame(&other) {
                // Nobody listening is fine: ephemeral updates are optional.
                Some(update) => drop(self.shared.ephemeral.send(update)),
                None => tracing::trace!(frame = other.name(), "ignoring frame"),
            },
        }
        self.deliver(&mut ready).await;
        self.ready = ready;
        for fill in fills {
            self.request_fill(fill, transport).await?;
        }
        Ok(())
    }

    /// Answers the request `id`.
    fn answer(&mut self, id: u64, outcome: Outcome) {
        match self.pending.remove(&id) {
            Some(pending) => pending.answer(outcome),
            None => tracing::debug!(request_id = id, "answer to no pending request"),
        }
    }

    /// The request `id` failed with `error`.
    fn fail(&mut self, id: u64, error: ServerError, ready: &mut Vec<Event>) -> Option<Fill> {
        let pending = self.pending.remove(&id)?;
        match (&pending.waiter, &pending.request) {
            (Waiter::Fill, request) => {
                tracing::warn!(code = %error.code, "history request for a gap failed");
                let room = request.room_id().to_owned();
                return self.cursor.filled(&room, None, ready);
            }
            (Waiter::Caller(_), Request::Subscribe { room_id, .. }) => {
                self.cursor.forget(room_id);
            }
            _ => {}
        }
        pending.answer(Err(Failure::Server(error)));
        None
    }

    /// Hands events to the application (and empties `ready`). Waits while
    /// its buffer is full: that is the client's backpressure. Room for all
    /// of them is taken at once where the buffer allows, rather than an
    /// event at a time.
    async fn deliver(&mut self, ready: &mut Vec<Event>) {
        while !ready.is_empty() {
            let n = ready.len().min(self.events.max_capacity());
            let Ok(permits) = self.events.reserve_many(n).await else {
                // Nobody reads events any more; requests may still flow.
                ready.clear();
                return;
            };
            for (permit, event) in permits.zip(ready.drain(..n)) {
                permit.send(event);
            }
        }
    }

    async fn request_fill(&mut self, fill: Fill, transport: &mut Transport) -> Result<(), Ended> {
        tracing::info!(room_id = %fill.room_id, after = fill.after, limit = fill.limit, "fetching a gap");
        let request = Request::History {
            room_id: fill.room_id,
            from_seq: fill.after,
            direction: Direction::Forward,
            limit: fill.limit,
        };
        let id = self.register(request, Waiter::Fill);
        if let Some(pending) = self.pending.get(&id) {
            write(transport, pending.request.encode(id, None)).await?;
        }
        Ok(())
    }

    /// Reconnects with backoff, serving commands while it waits.
    async fn reconnect(&mut self) -> Result<Transport, Ended> {
        let policy = self.config.reconnect.clone();
        let mut attempt: u32 = 0;
        loop {
            if policy.max_attempts.is_some_and(|max| attempt >= max) {
                return Err(Ended::Fatal(ClientError::Closed));
            }
            attempt += 1;
            self.shared
                .state
                .send_replace(ConnectionState::Reconnecting { attempt });
            let wake = Instant::now() + policy.delay(attempt - 1);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    command = self.commands.recv() => {
                        if let Some(ended) = self.on_command_offline(command) {
                            return Err(ended);
                        }
                    }
                }
            }
            let resume = self.cursor.positions();
            let auth = Auth::Token(self.token.clone());
            let greeting = Greeting {
                auth: &auth,
                device_id: Some(&self.device_id),
                client_name: &self.config.client_name,
                resume: &resume,
            };
            match connect(
                &self.endpoint,
                &dial(&self.config, self.tls.as_ref(), &self.limits),
                &greeting,
                &self.limits,
                self.config.request_timeout,
            )
            .await
            {
                Ok((transport, welcome)) => {
                    tracing::info!(
                        attempt,
                        session_id = %welcome.session_id,
                        rooms = resume.len(),
                        "reconnected and resuming"
                    );
                    self.heartbeat = welcome.heartbeat;
                    return Ok(transport);
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(attempt, error = %e, "reconnect attempt failed");
                }
                Err(e) => return Err(Ended::Fatal(e)),
            }
        }
    }
}

/// How to open a transport for `config`.
fn dial<'a>(
    config: &'a ClientConfig,
    tls: Option<&'a Arc<rustls::ClientConfig>>,
    limits: &DecodeLimits,
) -> Dial<'a> {
    Dial {
        tls,
        local_addr: config.local_addr,
        quic: config.quic_endpoint.as_ref(),
        max_frame_bytes: limits.max_frame_bytes,
    }
}

/// Opens a transport and runs the handshake on it, both within `timeout`.
async fn connect(
    endpoint: &Endpoint,
    dial: &Dial<'_>,
    greeting: &Greeting<'_>,
    limits: &DecodeLimits,
    timeout: Duration,
) -> Result<(Transport, Welcomed), ClientError> {
    let mut transport = tokio::time::timeout(timeout, Transport::connect(endpoint, dial))
        .await
        .map_err(|_| ClientError::Timeout)??;
    match handshake(&mut transport, greeting, limits, timeout).await {
        Ok(welcome) => Ok((transport, welcome)),
        Err(e) => {
            transport.close().await;
            Err(e)
        }
    }
}

/// Writes a frame; a failed write loses the connection.
async fn write(transport: &mut Transport, frame: bytes::Bytes) -> Result<(), Ended> {
    transport
        .send(frame)
        .await
        .map_err(|e| Ended::Lost(e.to_string()))
}
