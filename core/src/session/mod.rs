//! The native session: one state machine behind both faces (WebSocket and
//! QUIC), driven by decoded frames in and encoded frames out. It opens no
//! socket; a face reads bytes, hands them to [`Session::on_frame`], waits on
//! [`Session::events_ready`] for live events, and writes what the session
//! put in its output.
//!
//! - [`config`] — [`SessionConfig`], the limits of one connection.
//! - [`close`] — [`CloseReason`], why the server ends a connection.
//!
//! The phases: a connection starts *awaiting hello*; only `Hello` (access
//! token), `Login` (user and password) and `Ping` are accepted. After a
//! successful hello the session is *open*: subscribe, unsubscribe, send,
//! history, receipts, typing, presence and ping. Typing, receipt and
//! presence updates of the subscribed rooms come out beside the events
//! ([`Session::pump_ephemeral`]). Membership is checked in core for every read
//! and write (invariant 6); a subscription ends when the user's membership
//! in the room does.

pub mod close;
pub mod config;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axon_schemas::{
    ClientFrame, DecodeLimits, ErrorCode, ErrorFrame, EventView, Frame, FrameError, ServerFrame,
    Subscribed, Welcome,
};
use bytes::Bytes;
use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub use close::CloseReason;
pub use config::SessionConfig;

use crate::accounts::{Accounts, AccountsError, Identity};
use crate::clock::now_ms;
use crate::encoder::with_encoder;
use crate::ephemeral::{Ephemeral, PresenceState};
use crate::event::{NewEvent, TxnId};
use crate::ids::{DeviceId, RoomId, UserId};
use crate::room::{AuthError, Membership, can_read};
use crate::router::{Delivery, Feed, FeedError, RoomRouter};
use crate::sequencer::{AppendError, PendingAppend, Sequencer};
use crate::store::{Direction, Receipt, Store};

/// What a session needs of the engine; cloned into every connection.
#[derive(Clone)]
pub struct Services {
    /// One writer per shard.
    pub sequencer: Sequencer,
    /// Timelines, accounts, receipts.
    pub store: Arc<dyn Store>,
    /// Token and password authentication.
    pub accounts: Accounts,
    /// Live fan-out.
    pub router: Arc<RoomRouter>,
    /// Typing, presence and receipt fan-out.
    pub ephemeral: Arc<Ephemeral>,
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Longest presence status message accepted.
const MAX_STATUS_MSG_BYTES: usize = 1024;

/// Events in a history page when the request leaves `limit` at 0 (still
/// capped by [`SessionConfig::max_history_page`]).
const DEFAULT_HISTORY_PAGE: usize = 50;

enum Phase {
    AwaitingHello,
    Open(Identity),
}

/// One native connection's protocol state.
pub struct Session {
    services: Services,
    config: Arc<SessionConfig>,
    limits: DecodeLimits,
    phase: Phase,
    feed: Feed,
    sends: DefaultDirectRateLimiter,
    bad_frames: u32,
    id: u64,
    deliveries: Vec<Delivery>,
    /// Sends handed to the sequencer and not yet acknowledged, oldest
    /// first (see [`Session::settle_sends`]).
    pending: parking_lot::Mutex<VecDeque<PendingSend>>,
}

/// Sends whose write finished ([`Session::sends_settled`]), to answer with
/// [`Session::answer_sends`].
pub struct SettledSends(Vec<(u64, RoomId, Result<crate::sequencer::Appended, AppendError>)>);

/// Most sends one connection may have waiting for the durable write; a
/// further send waits for the oldest.
pub const MAX_PENDING_SENDS: usize = 256;

/// A send waiting for its durable write.
struct PendingSend {
    request_id: u64,
    room_id: RoomId,
    append: PendingAppend,
}

fn encode(frame: &ServerFrame<'_>) -> Bytes {
    with_encoder(|e| e.encode_server(frame))
}

/// The code and message of an append failure.
fn append_error(e: &AppendError) -> (ErrorCode, String) {
    let code = match e {
        AppendError::Invalid(_) | AppendError::MixedRooms => ErrorCode::InvalidArgument,
        AppendError::Forbidden(AuthError::RoomNotFound) => ErrorCode::NotFound,
        AppendError::Forbidden(_) => ErrorCode::Forbidden,
        AppendError::Unavailable(_) => ErrorCode::Internal,
        AppendError::ShuttingDown => ErrorCode::ShuttingDown,
    };
    (code, e.to_string())
}

/// The clock of every session's send limiter. Made once: making a
/// governor clock calibrates it (`cpuid` and a timing loop), which was a
/// third of the server's CPU while 10,000 connections opened.
fn send_clock() -> DefaultClock {
    static CLOCK: std::sync::LazyLock<DefaultClock> =
        std::sync::LazyLock::new(DefaultClock::default);
    CLOCK.clone()
}

impl Session {
    /// A new session awaiting its hello.
    pub fn new(services: Services, config: Arc<SessionConfig>) -> Self {
        let feed = Feed::new(
            Arc::clone(&services.router),
            services.store.clone(),
            config.queue_capacity,
            config.lag_policy,
        );
        feed.accept_ephemeral();
        let quota = Quota::per_second(config.sends_per_second).allow_burst(config.send_burst);
        Self {
            limits: DecodeLimits::with_max_frame_bytes(config.max_frame_bytes),
            services,
            config,
            phase: Phase::AwaitingHello,
            feed,
            sends: RateLimiter::direct_with_clock(quota, send_clock()),
            bad_frames: 0,
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            deliveries: Vec::new(),
            pending: parking_lot::Mutex::new(VecDeque::new()),
        }
    }

    /// Whether sends are waiting for their durable write.
    pub fn has_pending_sends(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Waits until at least one pending send is stored (or refused) and
    /// takes every one that is; answer them with
    /// [`Session::answer_sends`]. Cancel-safe: a send leaves the list only
    /// in the step that returns it. A connection's sends are sequenced in
    /// the order it sent them; their answers may come in another order when
    /// they went to rooms of different shards.
    pub async fn sends_settled(&self) -> SettledSends {
        std::future::poll_fn(|cx| {
            let mut pending = self.pending.lock();
            let mut settled = Vec::new();
            let mut i = 0;
            while i < pending.len() {
                match std::pin::Pin::new(&mut pending[i].append).poll(cx) {
                    std::task::Poll::Ready(result) => {
                        if let Some(p) = pending.remove(i) {
                            settled.push((p.request_id, p.room_id, result));
                        }
                    }
                    std::task::Poll::Pending => i += 1,
                }
            }
            if settled.is_empty() {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(SettledSends(settled))
            }
        })
        .await
    }

    /// Queues the `SendAck` or `Error` of each settled send.
    pub fn answer_sends(
        &self,
        settled: SettledSends,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let mut outcome = Ok(());
        for (request_id, room_id, result) in settled.0 {
            if let Err(reason) = self.answer_send(request_id, &room_id, result, out) {
                outcome = Err(reason);
            }
        }
        outcome
    }

    fn answer_send(
        &self,
        request_id: u64,
        room_id: &RoomId,
        result: Result<crate::sequencer::Appended, AppendError>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        match result {
            Ok(ack) => {
                out.push(encode(&ServerFrame::SendAck(axon_schemas::SendAck {
                    request_id,
                    event_id: ack.event_id.as_str(),
                    room_id: room_id.as_str(),
                    seq: ack.seq,
                    pos: ack.pos,
                })));
                Ok(())
            }
            Err(AppendError::ShuttingDown) => self.close(
                out,
                CloseReason::resumable(ErrorCode::ShuttingDown, "the server is shutting down"),
            ),
            Err(e) => {
                let (code, message) = append_error(&e);
                self.error(out, request_id, code, &message);
                Ok(())
            }
        }
    }

    /// Whether the hello has succeeded.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// Who is connected, once open.
    pub fn identity(&self) -> Option<&Identity> {
        match &self.phase {
            Phase::Open(id) => Some(id),
            Phase::AwaitingHello => None,
        }
    }

    /// How many rooms are subscribed.
    pub fn subscriptions(&self) -> usize {
        self.feed.cursor().positions().count()
    }

    fn error(&self, out: &mut Vec<Bytes>, request_id: u64, code: ErrorCode, message: &str) {
        metrics::counter!("axon_session_errors_total", "code" => code.name()).increment(1);
        out.push(encode(&ServerFrame::Error(ErrorFrame {
            request_id,
            code,
            message,
            retry_after_ms: 0,
            close: false,
            resumable: false,
        })));
    }

    /// Queues the final error frame and returns the reason to close.
    fn close(&self, out: &mut Vec<Bytes>, reason: CloseReason) -> Result<(), CloseReason> {
        Err(self.farewell(out, reason))
    }

    /// Queues the final `Error` frame for a close the face decided on
    /// (shutdown, handshake or idle timeout, a transport-level violation)
    /// and returns the reason to close with.
    pub fn farewell(&self, out: &mut Vec<Bytes>, reason: CloseReason) -> CloseReason {
        metrics::counter!("axon_session_closes_total", "code" => reason.code.name()).increment(1);
        out.push(encode(&ServerFrame::Error(ErrorFrame {
            request_id: 0,
            code: reason.code,
            message: &reason.message,
            retry_after_ms: 0,
            close: true,
            resumable: reason.resumable,
        })));
        reason
    }

    /// Queues an `Error` frame that does not close the connection (a
    /// transport-level refusal of one frame, such as a text WebSocket message).
    pub fn refuse(
        &mut self,
        out: &mut Vec<Bytes>,
        code: ErrorCode,
        message: &str,
    ) -> Result<(), CloseReason> {
        self.bad_frames += 1;
        if self.bad_frames > self.config.max_bad_frames {
            return self.close(
                out,
                CloseReason::fatal(code, format!("too many bad frames; last: {message}")),
            );
        }
        self.error(out, 0, code, message);
        Ok(())
    }

    /// Handles one inbound frame; answers go to `out`. `Err` means: send
    /// `out`, then close the connection with that reason.
    pub async fn on_frame(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let frame = match axon_schemas::decode(bytes, &self.limits).and_then(Frame::into_client) {
            Ok(frame) => frame,
            Err(e) => return self.bad_frame(out, &e),
        };
        match (&self.phase, frame) {
            (_, ClientFrame::Ping(p)) => {
                out.push(encode(&ServerFrame::Pong(axon_schemas::Pong {
                    nonce: p.nonce,
                })));
                Ok(())
            }
            (Phase::AwaitingHello, ClientFrame::Hello(hello)) => {
                match self
                    .services
                    .accounts
                    .authenticate(hello.access_token)
                    .await
                {
                    Ok(identity) => {
                        let resume: Vec<(String, u64)> = hello
                            .resume
                            .iter()
                            .map(|r| (r.room_id.to_owned(), r.seq))
                            .collect();
                        self.open(identity, None, out);
                        self.resume(resume, out).await
                    }
                    Err(e) => self.refuse_hello(out, &e),
                }
            }
            (Phase::AwaitingHello, ClientFrame::Login(login)) => {
                let user = match self.parse_login_user(login.user) {
                    Some(u) => u,
                    None => {
                        return self.close(
                            out,
                            CloseReason::fatal(
                                ErrorCode::Unauthenticated,
                                "invalid user name or password",
                            ),
                        );
                    }
                };
                let device = match login.device_id.map(DeviceId::parse).transpose() {
                    Ok(d) => d,
                    Err(e) => {
                        return self.close(
                            out,
                            CloseReason::fatal(ErrorCode::InvalidArgument, e.to_string()),
                        );
                    }
                };
                let name = login.client_name.map(str::to_owned);
                match self
                    .services
                    .accounts
                    .login_password(&user, login.password, device, name)
                    .await
                {
                    Ok(result) => {
                        let resume: Vec<(String, u64)> = login
                            .resume
                            .iter()
                            .map(|r| (r.room_id.to_owned(), r.seq))
                            .collect();
                        self.open(result.identity, Some(result.access_token.expose()), out);
                        self.resume(resume, out).await
                    }
                    Err(e) => self.refuse_hello(out, &e),
                }
            }
            (Phase::AwaitingHello, other) => {
                let message = format!("{} before Hello", other.name());
                self.close(out, CloseReason::fatal(ErrorCode::UnexpectedFrame, message))
            }
            (Phase::Open(_), ClientFrame::Hello(_) | ClientFrame::Login(_)) => {
                self.error(out, 0, ErrorCode::UnexpectedFrame, "already authenticated");
                Ok(())
            }
            (Phase::Open(_), ClientFrame::Subscribe(sub)) => {
                let mut rooms: Vec<(String, Option<u64>)> = sub
                    .room_ids
                    .iter()
                    .map(|r| ((*r).to_owned(), None))
                    .collect();
                for pos in &sub.since {
                    match rooms.iter_mut().find(|(r, _)| r == pos.room_id) {
                        Some(entry) => entry.1 = Some(pos.seq),
                        None => rooms.push((pos.room_id.to_owned(), Some(pos.seq))),
                    }
                }
                for (room, since) in rooms {
                    self.subscribe(sub.request_id, &room, since, out).await?;
                }
                Ok(())
            }
            (Phase::Open(_), ClientFrame::Unsubscribe(unsub)) => {
                for room in &unsub.room_ids {
                    if let Ok(room) = RoomId::parse(room) {
                        self.feed.leave(&room);
                    }
                }
                Ok(())
            }
            (Phase::Open(identity), ClientFrame::Send(send)) => {
                let identity = identity.clone();
                self.send(&identity, send, out).await
            }
            (Phase::Open(identity), ClientFrame::HistoryRequest(req)) => {
                let user = identity.user_id.clone();
                self.history(&user, req, out).await
            }
            (Phase::Open(identity), ClientFrame::Receipt(receipt)) => {
                let user = identity.user_id.clone();
                self.receipt(&user, receipt, out).await
            }
            (Phase::Open(identity), ClientFrame::Typing(typing)) => {
                let user = identity.user_id.clone();
                self.typing(&user, typing, out).await;
                Ok(())
            }
            (Phase::Open(identity), ClientFrame::Presence(presence)) => {
                let user = identity.user_id.clone();
                self.presence(&user, presence, out).await;
                Ok(())
            }
        }
    }

    /// Whether the send rate limit lets one more request through; if not,
    /// queues the `RateLimited` error with the time to wait.
    fn within_rate(&self, request_id: u64, out: &mut Vec<Bytes>) -> bool {
        let Err(not_until) = self.sends.check() else {
            return true;
        };
        let wait = not_until.wait_time_from(governor::clock::Clock::now(self.sends.clock()));
        metrics::counter!("axon_session_errors_total", "code" => ErrorCode::RateLimited.name())
            .increment(1);
        out.push(encode(&ServerFrame::Error(ErrorFrame {
            request_id,
            code: ErrorCode::RateLimited,
            message: "too many requests; slow down",
            retry_after_ms: wait.as_millis().clamp(1, u128::from(u32::MAX)) as u32,
            close: false,
            resumable: false,
        })));
        false
    }

    async fn typing(
        &mut self,
        user: &UserId,
        typing: axon_schemas::Typing<'_>,
        out: &mut Vec<Bytes>,
    ) {
        if !self.within_rate(0, out) {
            return;
        }
        let Ok(room) = RoomId::parse(typing.room_id) else {
            self.error(out, 0, ErrorCode::InvalidArgument, "invalid room id");
            return;
        };
        if !self.may_read(0, &room, user, out).await {
            return;
        }
        let timeout = std::time::Duration::from_millis(u64::from(typing.timeout_ms));
        self.services
            .ephemeral
            .set_typing(&room, user, typing.typing, timeout);
    }

    async fn presence(
        &mut self,
        user: &UserId,
        presence: axon_schemas::Presence<'_>,
        out: &mut Vec<Bytes>,
    ) {
        if !self.within_rate(0, out) {
            return;
        }
        if presence
            .status_msg
            .is_some_and(|m| m.len() > MAX_STATUS_MSG_BYTES)
        {
            self.error(
                out,
                0,
                ErrorCode::InvalidArgument,
                "status message too long",
            );
            return;
        }
        let state = match presence.state {
            axon_schemas::PresenceState::Online => PresenceState::Online,
            axon_schemas::PresenceState::Unavailable => PresenceState::Unavailable,
            axon_schemas::PresenceState::Offline => PresenceState::Offline,
        };
        let status = presence.status_msg.map(str::to_owned);
        if let Err(e) = self
            .services
            .ephemeral
            .set_presence(user, state, status)
            .await
        {
            self.error(out, 0, ErrorCode::Internal, &e.to_string());
        }
    }

    fn bad_frame(&mut self, out: &mut Vec<Bytes>, e: &FrameError) -> Result<(), CloseReason> {
        self.bad_frames += 1;
        if self.bad_frames > self.config.max_bad_frames {
            return self.close(
                out,
                CloseReason::fatal(e.code(), format!("too many bad frames; last: {e}")),
            );
        }
        self.error(out, 0, e.code(), &e.to_string());
        Ok(())
    }

    fn parse_login_user(&self, user: &str) -> Option<UserId> {
        if user.starts_with('@') {
            UserId::parse(user).ok()
        } else {
            UserId::parse(&format!("@{user}:{}", self.services.accounts.server_name())).ok()
        }
    }

    fn refuse_hello(&self, out: &mut Vec<Bytes>, e: &AccountsError) -> Result<(), CloseReason> {
        metrics::counter!("axon_handshake_failures_total", "reason" => match e {
            AccountsError::UnknownToken { .. } => "unknown_token",
            AccountsError::BadCredentials => "bad_credentials",
            AccountsError::Deactivated => "deactivated",
            _ => "other",
        })
        .increment(1);
        let reason = match e {
            AccountsError::Store(_) => {
                CloseReason::resumable(ErrorCode::Internal, "authentication is unavailable")
            }
            _ => CloseReason::fatal(ErrorCode::Unauthenticated, e.to_string()),
        };
        self.close(out, reason)
    }

    fn open(&mut self, identity: Identity, access_token: Option<&str>, out: &mut Vec<Bytes>) {
        out.push(encode(&ServerFrame::Welcome(Welcome {
            user_id: identity.user_id.as_str(),
            device_id: identity.device_id.as_str(),
            access_token,
            session_id: &self.id.to_string(),
            server_time_ms: now_ms(),
            heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u32,
            max_frame_bytes: self.config.max_frame_bytes as u32,
        })));
        self.services.ephemeral.connected(&identity.user_id);
        self.phase = Phase::Open(identity);
    }

    async fn resume(
        &mut self,
        positions: Vec<(String, u64)>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        if !positions.is_empty() {
            metrics::counter!("axon_resumes_total").increment(1);
        }
        for (room, seq) in positions {
            self.subscribe(0, &room, Some(seq), out).await?;
        }
        Ok(())
    }

    fn user(&self) -> Option<&UserId> {
        self.identity().map(|i| &i.user_id)
    }

    /// Whether `user` may read `room`; if not, queues the error that says
    /// why (NotFound, Forbidden, or the sequencer's failure).
    async fn may_read(
        &self,
        request_id: u64,
        room: &RoomId,
        user: &UserId,
        out: &mut Vec<Bytes>,
    ) -> bool {
        let (code, message) = match self.services.sequencer.room_state(room).await {
            Ok(Some(state)) if can_read(&state, user) => return true,
            Ok(Some(_)) => (ErrorCode::Forbidden, "not a member of this room".to_owned()),
            Ok(None) => (ErrorCode::NotFound, "no such room".to_owned()),
            Err(e) => append_error(&e),
        };
        self.error(out, request_id, code, &message);
        false
    }

    /// Subscribes to one room: checks membership, replays after `since`,
    /// then confirms with `Subscribed`.
    async fn subscribe(
        &mut self,
        request_id: u64,
        room: &str,
        since: Option<u64>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let Ok(room) = RoomId::parse(room) else {
            self.error(
                out,
                request_id,
                ErrorCode::InvalidArgument,
                "invalid room id",
            );
            return Ok(());
        };
        let Some(user) = self.user().cloned() else {
            return Ok(());
        };
        let already = self.feed.cursor().last(&room).is_some();
        if !already && self.subscriptions() >= self.config.max_subscriptions {
            self.error(
                out,
                request_id,
                ErrorCode::TooManySubscriptions,
                "subscription limit reached",
            );
            return Ok(());
        }
        if !self.may_read(request_id, &room, &user, out).await {
            return Ok(());
        }
        let replay = match self.feed.join(&room, since).await {
            Ok(replay) => replay,
            Err(e) => return self.feed_failed(out, e),
        };
        // The membership may have ended between the check above and the
        // join. A change at or before the live point the feed started from
        // would never pass through `deliver`, so look again now that the
        // feed is subscribed: storage holds every event up to that point.
        match self.joined_in_storage(&room, &user).await {
            Ok(true) => {}
            Ok(false) => {
                self.feed.leave(&room);
                self.error(
                    out,
                    request_id,
                    ErrorCode::Forbidden,
                    "not a member of this room",
                );
                return Ok(());
            }
            Err(e) => {
                self.feed.leave(&room);
                self.error(out, request_id, ErrorCode::Internal, &e.to_string());
                return Ok(());
            }
        }
        if since.is_some() && !replay.is_empty() {
            metrics::counter!("axon_catch_up_events_total").increment(replay.len() as u64);
        }
        let mut kept = Vec::with_capacity(replay.len());
        self.deliver(replay, &mut kept).await;
        out.extend(kept.iter().map(|d| d.frame.clone()));
        let head = self.feed.cursor().last(&room).unwrap_or(0);
        out.push(encode(&ServerFrame::Subscribed(Subscribed {
            request_id,
            room_id: room.as_str(),
            head,
        })));
        // Typing and presence are not replayed like events; the room's
        // current state stands in for what was missed.
        if let Ok(Some(state)) = self.services.sequencer.room_state(&room).await {
            self.services
                .ephemeral
                .snapshot(&room, state.members_with(Membership::Join), out);
        }
        Ok(())
    }

    /// Whether `user`'s membership of `room`, as storage has it now, is join.
    async fn joined_in_storage(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<bool, crate::store::StoreError> {
        let member = self
            .services
            .store
            .state_event(room, crate::event::types::MEMBER, user.as_str())
            .await?;
        Ok(member.is_some_and(|e| {
            crate::room::state::parse_membership(&e.content) == Some(Membership::Join)
        }))
    }

    async fn send(
        &mut self,
        identity: &Identity,
        send: axon_schemas::SendEvent<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        if !self.within_rate(send.request_id, out) {
            return Ok(());
        }
        let Ok(room_id) = RoomId::parse(send.room_id) else {
            self.error(
                out,
                send.request_id,
                ErrorCode::InvalidArgument,
                "invalid room id",
            );
            return Ok(());
        };
        if send.event_type == crate::event::types::CREATE {
            // Rooms are created whole (create, join, power levels, join
            // rules) by `axon room create` and, later, Matrix createRoom;
            // never one bare event at a time over the native protocol.
            self.error(
                out,
                send.request_id,
                ErrorCode::InvalidArgument,
                "rooms cannot be created with Send",
            );
            return Ok(());
        }
        let event = NewEvent {
            room_id,
            sender: identity.user_id.clone(),
            event_type: send.event_type.to_owned(),
            state_key: send.state_key.map(str::to_owned),
            content: Bytes::copy_from_slice(send.content),
            txn: Some(TxnId {
                device_id: identity.device_id.clone(),
                txn_id: send.txn_id.to_owned(),
            }),
        };
        // The oldest send first, when this connection has too many waiting.
        while self.pending.lock().len() >= MAX_PENDING_SENDS {
            let settled = self.sends_settled().await;
            self.answer_sends(settled, out)?;
        }
        let room_id = event.room_id.clone();
        match self.services.sequencer.submit(event).await {
            Ok(append) => {
                self.pending.lock().push_back(PendingSend {
                    request_id: send.request_id,
                    room_id,
                    append,
                });
                Ok(())
            }
            Err(e) => self.answer_send(send.request_id, &room_id, Err(e), out),
        }
    }

    async fn history(
        &mut self,
        user: &UserId,
        req: axon_schemas::HistoryRequest<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let Ok(room) = RoomId::parse(req.room_id) else {
            self.error(
                out,
                req.request_id,
                ErrorCode::InvalidArgument,
                "invalid room id",
            );
            return Ok(());
        };
        if !self.may_read(req.request_id, &room, user, out).await {
            return Ok(());
        }
        let limit = match req.limit as usize {
            0 => DEFAULT_HISTORY_PAGE.min(self.config.max_history_page),
            n => n.min(self.config.max_history_page),
        };
        // `from_seq` is exclusive: Backward reads seq < from_seq, Forward seq > from_seq.
        let (from, to, dir) = match req.direction {
            axon_schemas::Direction::Backward => {
                (1, req.from_seq.saturating_sub(1), Direction::Backward)
            }
            axon_schemas::Direction::Forward => {
                (req.from_seq.saturating_add(1), u64::MAX, Direction::Forward)
            }
        };
        let events = match self
            .services
            .store
            .events(&room, from, to, dir, limit)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                self.error(out, req.request_id, ErrorCode::Internal, &e.to_string());
                return Ok(());
            }
        };
        // Keep the page within the client's frame limit: stop adding events
        // once their content would take more than half of it.
        let budget = self.config.max_frame_bytes / 2;
        let mut used = 0;
        let mut views: Vec<EventView<'_>> = Vec::with_capacity(events.len());
        for e in &events {
            used += e.content.len() + e.event_id.as_str().len() + e.sender.as_str().len() + 64;
            if used > budget && !views.is_empty() {
                break;
            }
            views.push(e.wire_view());
        }
        let truncated = views.len() < events.len();
        let next = views.last().map_or(req.from_seq, |v| v.seq);
        let end = !truncated && (events.len() < limit || (dir == Direction::Backward && next <= 1));
        let page = with_encoder(|e| {
            e.encode_history_page(req.request_id, room.as_str(), &views, next, end)
        });
        out.push(page);
        Ok(())
    }

    async fn receipt(
        &mut self,
        user: &UserId,
        receipt: axon_schemas::Receipt<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let (Ok(room), Ok(event_id)) = (
            RoomId::parse(receipt.room_id),
            crate::ids::EventId::parse(receipt.event_id),
        ) else {
            self.error(
                out,
                0,
                ErrorCode::InvalidArgument,
                "invalid room or event id",
            );
            return Ok(());
        };
        if !self.may_read(0, &room, user, out).await {
            return Ok(());
        }
        let record = Receipt {
            room_id: room,
            user_id: user.clone(),
            receipt_type: receipt.receipt_type.to_owned(),
            thread_id: receipt.thread_id.map(str::to_owned),
            event_id,
            ts: now_ms(),
        };
        match self.services.store.put_receipt(&record).await {
            Ok(()) => self.services.ephemeral.announce_receipt(&record),
            Err(e) => self.error(out, 0, ErrorCode::Internal, &e.to_string()),
        }
        Ok(())
    }

    /// Moves the ephemeral frames (typing, receipts, presence) of the
    /// subscribed rooms that are ready into `out`. Call it whenever
    /// [`events_ready`](Self::events_ready) fires, beside
    /// [`pump_deliveries`](Self::pump_deliveries).
    pub fn pump_ephemeral(&mut self, out: &mut Vec<Bytes>) {
        self.feed.take_ephemeral(out);
    }

    /// Waits until live events are ready for [`Session::pump_events`].
    /// Cancel-safe, so a face can select on it and on its socket.
    pub async fn events_ready(&self) {
        self.feed.ready().await;
    }

    /// Moves ready live events into `out` (each one's frame, encoded once
    /// for every subscriber), in `seq` order without gaps or duplicates.
    pub async fn pump_events(&mut self, out: &mut Vec<Bytes>) -> Result<(), CloseReason> {
        let mut events = Vec::new();
        self.pump_deliveries(&mut events, out).await?;
        out.extend(events.iter().map(|d| d.frame.clone()));
        self.pump_ephemeral(out);
        Ok(())
    }

    /// Like [`pump_events`](Self::pump_events), but hands the live events
    /// over as deliveries (frame and event), for faces that route them by
    /// room — QUIC puts each room on its lane stream. Control frames (a
    /// closing error) go to `out`.
    pub async fn pump_deliveries(
        &mut self,
        events: &mut Vec<Delivery>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        let mut ready = std::mem::take(&mut self.deliveries);
        let result = self.feed.try_next(&mut ready).await;
        match result {
            Ok(()) => {
                self.deliver(ready.drain(..), events).await;
                self.deliveries = ready;
                Ok(())
            }
            Err(e) => self.feed_failed(out, e),
        }
    }

    fn feed_failed(&self, out: &mut Vec<Bytes>, e: FeedError) -> Result<(), CloseReason> {
        let reason = match e {
            FeedError::Lagged => {
                metrics::counter!("axon_lag_closes_total").increment(1);
                CloseReason::resumable(
                    ErrorCode::Lagged,
                    "the connection fell behind; resume from your last seq",
                )
            }
            FeedError::Closed => {
                CloseReason::resumable(ErrorCode::ShuttingDown, "the connection is closing")
            }
            FeedError::Store(e) => CloseReason::resumable(ErrorCode::Internal, e.to_string()),
        };
        self.close(out, reason)
    }

    /// Hands deliveries to the output. When one of them changes this user's
    /// membership to anything but join, the room's current state decides
    /// whether the subscription goes on (the event may be an old one in a
    /// replay, and the user may have joined again since); if it ends, later
    /// events of that room are not handed out.
    async fn deliver(
        &mut self,
        deliveries: impl IntoIterator<Item = Delivery>,
        kept: &mut Vec<Delivery>,
    ) {
        let Some(user) = self.user().cloned() else {
            return;
        };
        let mut ended: Vec<RoomId> = Vec::new();
        for d in deliveries {
            if ended.contains(&d.event.room_id) {
                continue;
            }
            // Only this user's own membership changes need a second look;
            // every other delivery is handed on as it is (one move, no clone).
            let may_end = match d.event.membership_change() {
                Some((target, m)) if target == user && m != Membership::Join => {
                    Some(d.event.room_id.clone())
                }
                _ => None,
            };
            kept.push(d);
            let Some(room) = may_end else { continue };
            let readable = matches!(
                self.services.sequencer.room_state(&room).await,
                Ok(Some(state)) if can_read(&state, &user)
            );
            if !readable {
                self.feed.leave(&room);
                ended.push(room);
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Phase::Open(identity) = &self.phase {
            self.services.ephemeral.disconnected(&identity.user_id);
        }
    }
}
