//! [`Client`]: the application's handle. Each call becomes a [`Command`] to
//! the connection task and waits for its answer; sends are retried here
//! (rate limits, timeouts) with the transaction id they were given once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axon_schemas::{ClientFrame, ErrorCode, Presence, PresenceState, Receipt, Typing};
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};

use crate::config::ClientConfig;
use crate::connection::{Command, Connection, ConnectionState, Shared};
use crate::ephemeral::Ephemeral;
use crate::error::ClientError;
use crate::event::{Direction, Event, HistoryPage, SendAck, SubscribeAck};
use crate::request::{Failure, Outcome, OutgoingEvent, Reply, Request};

/// Attempts of one send that time out or fail with `Internal` before the
/// error is returned. Rate-limit waits do not count.
const SEND_ATTEMPTS: u32 = 4;
/// Rate-limit waits of one send before `RateLimited` is returned.
const RATE_LIMIT_WAITS: u32 = 50;
/// Wait after `RateLimited` when the server gives no hint.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_millis(100);
/// Events [`Client::next_event`] takes from the connection task at once.
const INBOX_BATCH: usize = 64;

/// A connection to an Axon server, kept alive in the background.
///
/// Cloning is cheap; every clone drives the same connection, and the
/// connection closes when [`Client::close`] is called or the last clone is
/// dropped. Events are read with [`Client::next_event`] or
/// [`Client::events`]; read them steadily (see
/// [`ClientConfig::event_buffer`]).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    events: Mutex<Inbox>,
    shared: Arc<Shared>,
    user_id: String,
    device_id: String,
    access_token: String,
    request_timeout: Duration,
}

/// The events the connection task handed over: a reader takes up to
/// [`INBOX_BATCH`] at a time from the channel (one wake-up and one lock
/// per batch instead of per event) and reads them from `taken`.
struct Inbox {
    channel: mpsc::Receiver<Event>,
    /// Taken from the channel, not yet read; the next one last.
    taken: Vec<Event>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("user_id", &self.inner.user_id)
            .field("device_id", &self.inner.device_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects, authenticates, and returns once the server's `Welcome`
    /// arrived. A refused token or password is
    /// [`ClientError::Unauthenticated`]; connection failures are not
    /// retried here (reconnects start only after a first success).
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let request_timeout = config.request_timeout;
        let opened = Connection::open(config).await?;
        Ok(Client {
            inner: Arc::new(Inner {
                commands: opened.commands,
                events: Mutex::new(Inbox {
                    channel: opened.events,
                    taken: Vec::with_capacity(INBOX_BATCH),
                }),
                shared: opened.shared,
                user_id: opened.welcome.user_id,
                device_id: opened.welcome.device_id,
                access_token: opened.access_token,
                request_timeout,
            }),
        })
    }

    /// The authenticated user, e.g. `@alice:example.org`.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// The device of this connection.
    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    /// The access token in use: the configured one, or the one a password
    /// login returned (keep it to connect with [`Auth::Token`](crate::Auth::Token) next time).
    pub fn access_token(&self) -> &str {
        &self.inner.access_token
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.inner.shared.state.borrow()
    }

    /// A receiver of connection state changes.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.shared.state.subscribe()
    }

    /// How many times the client has reconnected.
    pub fn reconnects(&self) -> u64 {
        self.inner.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Subscribes to a room: its live events from now on (or, if the room
    /// was subscribed before on this client, from the last event seen).
    pub async fn subscribe(&self, room_id: &str) -> Result<SubscribeAck, ClientError> {
        self.subscribe_request(room_id, None).await
    }

    /// Subscribes to a room, replaying its events after `seq` first.
    pub async fn subscribe_since(
        &self,
        room_id: &str,
        seq: u64,
    ) -> Result<SubscribeAck, ClientError> {
        self.subscribe_request(room_id, Some(seq)).await
    }

    async fn subscribe_request(
        &self,
        room_id: &str,
        since: Option<u64>,
    ) -> Result<SubscribeAck, ClientError> {
        let request = Request::Subscribe {
            room_id: room_id.to_owned(),
            since,
        };
        match settle(self.call(request).await?)? {
            Reply::Subscribed(ack) => Ok(ack),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops receiving a room. The protocol does not acknowledge this;
    /// events of the room already on their way are dropped.
    pub async fn unsubscribe(&self, room_id: &str) -> Result<(), ClientError> {
        self.command(Command::Unsubscribe {
            room_id: room_id.to_owned(),
        })
        .await
    }

    /// Tells the room that this user started (`typing`) or stopped typing;
    /// the notice lasts `timeout` unless renewed (the server caps it).
    /// Nothing is answered; while disconnected, nothing is sent.
    pub async fn typing(
        &self,
        room_id: &str,
        typing: bool,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let frame = axon_schemas::encode_client(&ClientFrame::Typing(Typing {
            room_id,
            typing,
            timeout_ms: timeout.as_millis().min(u128::from(u32::MAX)) as u32,
        }));
        self.command(Command::Notify { frame }).await
    }

    /// Sets this user's presence; the rooms they joined hear of it. The
    /// server takes the user offline when their last connection closes.
    pub async fn set_presence(
        &self,
        state: PresenceState,
        status_msg: Option<&str>,
    ) -> Result<(), ClientError> {
        let frame =
            axon_schemas::encode_client(&ClientFrame::Presence(Presence { state, status_msg }));
        self.command(Command::Notify { frame }).await
    }

    /// Marks `event_id` (and everything before it) read, with
    /// `receipt_type` `m.read` (others see it) or `m.read.private`.
    pub async fn receipt(
        &self,
        room_id: &str,
        event_id: &str,
        receipt_type: &str,
    ) -> Result<(), ClientError> {
        let frame = axon_schemas::encode_client(&ClientFrame::Receipt(Receipt {
            room_id,
            event_id,
            receipt_type,
            thread_id: None,
        }));
        self.command(Command::Notify { frame }).await
    }

    /// A receiver of the typing, receipt and presence updates of the
    /// subscribed rooms, from now on. A receiver that falls more than a
    /// few hundred updates behind is told how many it missed.
    pub fn ephemeral(&self) -> broadcast::Receiver<Ephemeral> {
        self.inner.shared.ephemeral.subscribe()
    }

    /// Sends a (non-state) event whose content is a JSON object, and waits
    /// until the server stored it.
    ///
    /// The send gets a transaction id once; every retry (after a reconnect,
    /// a timeout, a rate limit) reuses it, so the event is stored at most
    /// once. `Forbidden`, `NotFound` and `InvalidArgument` come back as
    /// typed errors.
    pub async fn send(
        &self,
        room_id: &str,
        event_type: &str,
        content: impl Into<Bytes>,
    ) -> Result<SendAck, ClientError> {
        self.send_event(room_id, event_type, None, content.into())
            .await
    }

    /// Sends a state event (`state_key` may be `""`), as [`Client::send`].
    pub async fn send_state(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: &str,
        content: impl Into<Bytes>,
    ) -> Result<SendAck, ClientError> {
        self.send_event(room_id, event_type, Some(state_key), content.into())
            .await
    }

    async fn send_event(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Bytes,
    ) -> Result<SendAck, ClientError> {
        let event = OutgoingEvent {
            room_id: room_id.to_owned(),
            txn_id: new_txn_id(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(str::to_owned),
            content,
        };
        let mut attempts = 0;
        let mut waits = 0;
        loop {
            attempts += 1;
            let outcome = match self.call(Request::Send(event.clone())).await {
                Err(ClientError::Timeout) if attempts < SEND_ATTEMPTS => {
                    tracing::debug!(txn_id = %event.txn_id, "send timed out; retrying");
                    continue;
                }
                other => other?,
            };
            match outcome {
                Ok(Reply::Sent(ack)) => return Ok(ack),
                Ok(other) => return Err(unexpected(&other)),
                Err(Failure::Server(e))
                    if e.code == ErrorCode::RateLimited && waits < RATE_LIMIT_WAITS =>
                {
                    waits += 1;
                    attempts -= 1;
                    let wait = match e.retry_after_ms {
                        0 => DEFAULT_RETRY_AFTER,
                        ms => Duration::from_millis(u64::from(ms)),
                    };
                    tracing::debug!(txn_id = %event.txn_id, ?wait, "rate limited; waiting");
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Server(e))
                    if e.code == ErrorCode::Internal && attempts < SEND_ATTEMPTS =>
                {
                    tracing::debug!(txn_id = %event.txn_id, message = %e.message, "server error; retrying");
                    tokio::time::sleep(DEFAULT_RETRY_AFTER).await;
                }
                Err(failure) => return Err(failure.into()),
            }
        }
    }

    /// Reads a page of a room's timeline. `from` is exclusive:
    /// [`Direction::Backward`] reads `seq < from` newest first (`u64::MAX`
    /// = from the newest), [`Direction::Forward`] reads `seq > from` (0 =
    /// from the first). The server may return fewer than `limit` events.
    pub async fn history(
        &self,
        room_id: &str,
        from: u64,
        direction: Direction,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        let request = Request::History {
            room_id: room_id.to_owned(),
            from_seq: from,
            direction,
            limit,
        };
        match settle(self.call(request).await?)? {
            Reply::History(page) => Ok(page),
            other => Err(unexpected(&other)),
        }
    }

    /// The next event of any subscribed room: per room in `seq` order,
    /// with no gap and no duplicate, across reconnects. `None` once the
    /// client is closed and every received event was read.
    pub async fn next_event(&self) -> Option<Event> {
        let mut inbox = self.inner.events.lock().await;
        if inbox.taken.is_empty() {
            let Inbox { channel, taken } = &mut *inbox;
            channel.recv_many(taken, INBOX_BATCH).await;
            taken.reverse();
        }
        inbox.taken.pop()
    }

    /// Waits for events and moves up to `max` of them (at least one) into
    /// `out`, in the order [`next_event`](Self::next_event) would return
    /// them; returns how many. 0 once the client is closed and every
    /// received event was read. For readers that handle events in batches:
    /// one lock and one wake-up per batch.
    pub async fn next_events(&self, out: &mut Vec<Event>, max: usize) -> usize {
        let max = max.max(1);
        let mut inbox = self.inner.events.lock().await;
        let Inbox { channel, taken } = &mut *inbox;
        if taken.is_empty() {
            return channel.recv_many(out, max).await;
        }
        // `taken` holds the next one last.
        let n = taken.len().min(max);
        out.extend(taken.drain(taken.len() - n..).rev());
        n
    }

    /// The events of [`Client::next_event`] as a stream.
    pub fn events(&self) -> impl Stream<Item = Event> + Send + 'static {
        futures::stream::unfold(self.clone(), |client| async move {
            let event = client.next_event().await?;
            Some((event, client))
        })
    }

    /// Closes the connection (a normal WebSocket or QUIC close) and stops
    /// reconnecting. Requests still waiting fail with [`ClientError::Closed`].
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.command(Command::Close { done }).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Test hook: drops the current socket as a network failure would; the
    /// client reconnects and resumes by itself.
    #[doc(hidden)]
    pub async fn kill_connection(&self) {
        let _ = self.command(Command::KillConnection).await;
    }

    /// Test hook: the next `SendAck` is discarded and the socket dropped, as
    /// if the connection died after the server stored the event.
    #[doc(hidden)]
    pub async fn drop_next_send_ack(&self) {
        let _ = self.command(Command::DropNextSendAck).await;
    }

    async fn command(&self, command: Command) -> Result<(), ClientError> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// One request, one answer, within the request timeout.
    async fn call(&self, request: Request) -> Result<Outcome, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Request { request, reply }).await?;
        match tokio::time::timeout(self.inner.request_timeout, answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

/// A request's outcome as the caller's result.
fn settle(outcome: Outcome) -> Result<Reply, ClientError> {
    outcome.map_err(ClientError::from)
}

fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {reply:?}"))
}

/// A fresh transaction id: 128 random bits, unique per device in practice.
fn new_txn_id() -> String {
    format!("axc{:032x}", rand::random::<u128>())
}
