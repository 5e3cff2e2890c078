//! Building frames: the reusable [`FrameEncoder`] for hot paths and two
//! one-shot helpers.
//!
//! Every method returns an exact-size `Bytes` copied out of the builder. The
//! copy is deliberate: the builder's buffer is reused for the next frame (no
//! allocation growth per frame), and a frame queued to thousands of
//! subscribers pins only its own bytes, not a builder-sized allocation.

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};

use crate::generated::v1 as fb;
use crate::model::{
    ClientFrame, Direction, ErrorFrame, EventView, Frame, Hello, HistoryRequest, Login, Presence,
    PresenceState, PresenceUpdate, Receipt, ReceiptUpdate, ResumePosition, SendAck, SendEvent,
    ServerFrame, Subscribe, Typing, TypingUpdate, Welcome,
};

/// Initial builder capacity: one typical event with its envelope fits
/// without regrowing.
const INITIAL_CAPACITY: usize = 1024;

/// Encodes frames with one reusable `FlatBufferBuilder`.
///
/// Keep one per task that encodes many frames (a shard's router, a
/// connection writer task pool), not one per idle connection: the builder
/// keeps the capacity of the largest frame it has built.
///
/// Encoding panics only if a frame exceeds the FlatBuffers format limit of
/// 2 GiB, which inputs bounded by the protocol limits never reach.
pub struct FrameEncoder {
    fbb: FlatBufferBuilder<'static>,
    /// Scratch lists reused across frames so that batches do not allocate.
    strings: Vec<WIPOffset<&'static str>>,
    events: Vec<WIPOffset<fb::Event<'static>>>,
    positions: Vec<WIPOffset<fb::ResumePosition<'static>>>,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder").finish_non_exhaustive()
    }
}

impl FrameEncoder {
    /// An encoder with a small initial buffer.
    pub fn new() -> Self {
        Self::with_capacity(INITIAL_CAPACITY)
    }

    /// An encoder whose builder starts with `bytes` of capacity.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            fbb: FlatBufferBuilder::with_capacity(bytes),
            strings: Vec::new(),
            events: Vec::new(),
            positions: Vec::new(),
        }
    }

    /// Encodes any frame.
    pub fn encode(&mut self, frame: &Frame<'_>) -> Bytes {
        match frame {
            Frame::Client(frame) => self.encode_client(frame),
            Frame::Server(frame) => self.encode_server(frame),
        }
    }

    /// Encodes a client frame.
    pub fn encode_client(&mut self, frame: &ClientFrame<'_>) -> Bytes {
        self.fbb.reset();
        let (frame_type, offset) = match frame {
            ClientFrame::Hello(hello) => (fb::Frame::Hello, self.hello(hello)),
            ClientFrame::Login(login) => (fb::Frame::Login, self.login(login)),
            ClientFrame::Subscribe(subscribe) => (fb::Frame::Subscribe, self.subscribe(subscribe)),
            ClientFrame::Unsubscribe(unsubscribe) => {
                let room_ids = self.string_list(&unsubscribe.room_ids);
                let args = fb::UnsubscribeArgs {
                    request_id: unsubscribe.request_id,
                    room_ids: Some(room_ids),
                };
                let offset = fb::Unsubscribe::create(&mut self.fbb, &args);
                (fb::Frame::Unsubscribe, offset.as_union_value())
            }
            ClientFrame::Send(send) => (fb::Frame::Send, self.send(send)),
            ClientFrame::HistoryRequest(request) => {
                (fb::Frame::HistoryRequest, self.history_request(request))
            }
            ClientFrame::Typing(typing) => (fb::Frame::Typing, self.typing(typing)),
            ClientFrame::Receipt(receipt) => (fb::Frame::Receipt, self.receipt(receipt)),
            ClientFrame::Presence(presence) => (fb::Frame::Presence, self.presence(presence)),
            ClientFrame::Ping(ping) => {
                let args = fb::PingArgs { nonce: ping.nonce };
                let offset = fb::Ping::create(&mut self.fbb, &args);
                (fb::Frame::Ping, offset.as_union_value())
            }
        };
        self.finish(frame_type, offset)
    }

    /// Encodes a server frame.
    pub fn encode_server(&mut self, frame: &ServerFrame<'_>) -> Bytes {
        self.fbb.reset();
        let (frame_type, offset) = match frame {
            // Frames made of events have dedicated entry points (they are the
            // hot path); delegate so there is one way to build each.
            ServerFrame::Event(event) => return self.encode_event(event),
            ServerFrame::EventBatch(batch) => return self.encode_event_batch(&batch.events),
            ServerFrame::HistoryPage(page) => {
                return self.encode_history_page(
                    page.request_id,
                    page.room_id,
                    &page.events,
                    page.next_from_seq,
                    page.end,
                );
            }
            ServerFrame::Welcome(welcome) => (fb::Frame::Welcome, self.welcome(welcome)),
            ServerFrame::SendAck(ack) => (fb::Frame::SendAck, self.send_ack(ack)),
            ServerFrame::TypingUpdate(update) => {
                (fb::Frame::TypingUpdate, self.typing_update(update))
            }
            ServerFrame::ReceiptUpdate(update) => {
                (fb::Frame::ReceiptUpdate, self.receipt_update(update))
            }
            ServerFrame::PresenceUpdate(update) => {
                (fb::Frame::PresenceUpdate, self.presence_update(update))
            }
            ServerFrame::Error(error) => (fb::Frame::Error, self.error(error)),
            ServerFrame::Subscribed(s) => {
                let room_id = self.fbb.create_string(s.room_id);
                let args = fb::SubscribedArgs {
                    request_id: s.request_id,
                    room_id: Some(room_id),
                    head: s.head,
                };
                let offset = fb::Subscribed::create(&mut self.fbb, &args);
                (fb::Frame::Subscribed, offset.as_union_value())
            }
            ServerFrame::Pong(pong) => {
                let args = fb::PongArgs { nonce: pong.nonce };
                let offset = fb::Pong::create(&mut self.fbb, &args);
                (fb::Frame::Pong, offset.as_union_value())
            }
        };
        self.finish(frame_type, offset)
    }

    /// Encodes one `Event` frame: the router's hot path, done once per event
    /// and the result shared by every subscriber.
    pub fn encode_event(&mut self, event: &EventView<'_>) -> Bytes {
        self.fbb.reset();
        let offset = self.event(event);
        self.finish(fb::Frame::Event, offset.as_union_value())
    }

    /// Encodes an `EventBatch` frame of `events`, in the given order.
    pub fn encode_event_batch(&mut self, events: &[EventView<'_>]) -> Bytes {
        self.fbb.reset();
        let events = self.event_list(events);
        let args = fb::EventBatchArgs {
            events: Some(events),
        };
        let offset = fb::EventBatch::create(&mut self.fbb, &args);
        self.finish(fb::Frame::EventBatch, offset.as_union_value())
    }

    /// Encodes a `HistoryPage` frame answering `request_id` with `events`.
    pub fn encode_history_page(
        &mut self,
        request_id: u64,
        room_id: &str,
        events: &[EventView<'_>],
        next_from_seq: u64,
        end: bool,
    ) -> Bytes {
        self.fbb.reset();
        let room_id = self.fbb.create_string(room_id);
        let events = self.event_list(events);
        let args = fb::HistoryPageArgs {
            request_id,
            room_id: Some(room_id),
            events: Some(events),
            next_from_seq,
            end,
        };
        let offset = fb::HistoryPage::create(&mut self.fbb, &args);
        self.finish(fb::Frame::HistoryPage, offset.as_union_value())
    }

    /// Wraps the frame in an `Envelope`, finishes the buffer with the file
    /// identifier and copies it out.
    fn finish(&mut self, frame_type: fb::Frame, frame: WIPOffset<UnionWIPOffset>) -> Bytes {
        let args = fb::EnvelopeArgs {
            frame_type,
            frame: Some(frame),
        };
        let envelope = fb::Envelope::create(&mut self.fbb, &args);
        fb::finish_envelope_buffer(&mut self.fbb, envelope);
        Bytes::copy_from_slice(self.fbb.finished_data())
    }

    fn opt_string(&mut self, value: Option<&str>) -> Option<WIPOffset<&'static str>> {
        value.map(|value| self.fbb.create_string(value))
    }

    fn string_list(
        &mut self,
        values: &[&str],
    ) -> WIPOffset<flatbuffers::Vector<'static, flatbuffers::ForwardsUOffset<&'static str>>> {
        let mut offsets = std::mem::take(&mut self.strings);
        offsets.clear();
        offsets.extend(values.iter().map(|value| self.fbb.create_string(value)));
        let list = self.fbb.create_vector(&offsets);
        self.strings = offsets;
        list
    }

    fn resume_list(
        &mut self,
        positions: &[ResumePosition<'_>],
    ) -> WIPOffset<
        flatbuffers::Vector<'static, flatbuffers::ForwardsUOffset<fb::ResumePosition<'static>>>,
    > {
        let mut offsets = std::mem::take(&mut self.positions);
        offsets.clear();
        for position in positions {
            let room_id = self.fbb.create_string(position.room_id);
            let args = fb::ResumePositionArgs {
                room_id: Some(room_id),
                seq: position.seq,
            };
            offsets.push(fb::ResumePosition::create(&mut self.fbb, &args));
        }
        let list = self.fbb.create_vector(&offsets);
        self.positions = offsets;
        list
    }

    fn event(&mut self, event: &EventView<'_>) -> WIPOffset<fb::Event<'static>> {
        let event_id = self.fbb.create_string(event.event_id);
        let room_id = self.fbb.create_string(event.room_id);
        let sender = self.fbb.create_string(event.sender);
        let event_type = self.fbb.create_string(event.event_type);
        let state_key = self.opt_string(event.state_key);
        let content = self.fbb.create_vector(event.content);
        let args = fb::EventArgs {
            event_id: Some(event_id),
            room_id: Some(room_id),
            sender: Some(sender),
            event_type: Some(event_type),
            state_key,
            content: Some(content),
            origin_server_ts: event.origin_server_ts,
            seq: event.seq,
            pos: event.pos,
        };
        fb::Event::create(&mut self.fbb, &args)
    }

    fn event_list(
        &mut self,
        events: &[EventView<'_>],
    ) -> WIPOffset<flatbuffers::Vector<'static, flatbuffers::ForwardsUOffset<fb::Event<'static>>>>
    {
        let mut offsets = std::mem::take(&mut self.events);
        offsets.clear();
        for event in events {
            offsets.push(self.event(event));
        }
        let list = self.fbb.create_vector(&offsets);
        self.events = offsets;
        list
    }

    fn hello(&mut self, hello: &Hello<'_>) -> WIPOffset<UnionWIPOffset> {
        let access_token = self.fbb.create_string(hello.access_token);
        let device_id = self.opt_string(hello.device_id);
        let client_name = self.opt_string(hello.client_name);
        let client_version = self.opt_string(hello.client_version);
        let resume = self.resume_list(&hello.resume);
        let args = fb::HelloArgs {
            access_token: Some(access_token),
            device_id,
            client_name,
            client_version,
            resume: Some(resume),
        };
        fb::Hello::create(&mut self.fbb, &args).as_union_value()
    }

    fn login(&mut self, login: &Login<'_>) -> WIPOffset<UnionWIPOffset> {
        let user = self.fbb.create_string(login.user);
        let password = self.fbb.create_string(login.password);
        let device_id = self.opt_string(login.device_id);
        let client_name = self.opt_string(login.client_name);
        let client_version = self.opt_string(login.client_version);
        let resume = self.resume_list(&login.resume);
        let args = fb::LoginArgs {
            user: Some(user),
            password: Some(password),
            device_id,
            client_name,
            client_version,
            resume: Some(resume),
        };
        fb::Login::create(&mut self.fbb, &args).as_union_value()
    }

    fn subscribe(&mut self, subscribe: &Subscribe<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_ids = self.string_list(&subscribe.room_ids);
        let since = self.resume_list(&subscribe.since);
        let args = fb::SubscribeArgs {
            request_id: subscribe.request_id,
            room_ids: Some(room_ids),
            since: Some(since),
        };
        fb::Subscribe::create(&mut self.fbb, &args).as_union_value()
    }

    fn send(&mut self, send: &SendEvent<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_id = self.fbb.create_string(send.room_id);
        let txn_id = self.fbb.create_string(send.txn_id);
        let event_type = self.fbb.create_string(send.event_type);
        let state_key = self.opt_string(send.state_key);
        let content = self.fbb.create_vector(send.content);
        let args = fb::SendArgs {
            request_id: send.request_id,
            room_id: Some(room_id),
            txn_id: Some(txn_id),
            event_type: Some(event_type),
            state_key,
            content: Some(content),
        };
        fb::Send::create(&mut self.fbb, &args).as_union_value()
    }

    fn history_request(&mut self, request: &HistoryRequest<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_id = self.fbb.create_string(request.room_id);
        let args = fb::HistoryRequestArgs {
            request_id: request.request_id,
            room_id: Some(room_id),
            from_seq: request.from_seq,
            direction: direction_to_wire(request.direction),
            limit: request.limit,
        };
        fb::HistoryRequest::create(&mut self.fbb, &args).as_union_value()
    }

    fn typing(&mut self, typing: &Typing<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_id = self.fbb.create_string(typing.room_id);
        let args = fb::TypingArgs {
            room_id: Some(room_id),
            typing: typing.typing,
            timeout_ms: typing.timeout_ms,
        };
        fb::Typing::create(&mut self.fbb, &args).as_union_value()
    }

    fn receipt(&mut self, receipt: &Receipt<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_id = self.fbb.create_string(receipt.room_id);
        let event_id = self.fbb.create_string(receipt.event_id);
        let receipt_type = self.fbb.create_string(receipt.receipt_type);
        let thread_id = self.opt_string(receipt.thread_id);
        let args = fb::ReceiptArgs {
            room_id: Some(room_id),
            event_id: Some(event_id),
            receipt_type: Some(receipt_type),
            thread_id,
        };
        fb::Receipt::create(&mut self.fbb, &args).as_union_value()
    }

    fn presence(&mut self, presence: &Presence<'_>) -> WIPOffset<UnionWIPOffset> {
        let status_msg = self.opt_string(presence.status_msg);
        let args = fb::PresenceArgs {
            state: presence_to_wire(presence.state),
            status_msg,
        };
        fb::Presence::create(&mut self.fbb, &args).as_union_value()
    }

    fn welcome(&mut self, welcome: &Welcome<'_>) -> WIPOffset<UnionWIPOffset> {
        let user_id = self.fbb.create_string(welcome.user_id);
        let device_id = self.fbb.create_string(welcome.device_id);
        let access_token = self.opt_string(welcome.access_token);
        let session_id = self.fbb.create_string(welcome.session_id);
        let args = fb::WelcomeArgs {
            user_id: Some(user_id),
            device_id: Some(device_id),
            access_token,
            session_id: Some(session_id),
            server_time_ms: welcome.server_time_ms,
            heartbeat_interval_ms: welcome.heartbeat_interval_ms,
            max_frame_bytes: welcome.max_frame_bytes,
        };
        fb::Welcome::create(&mut self.fbb, &args).as_union_value()
    }

    fn send_ack(&mut self, ack: &SendAck<'_>) -> WIPOffset<UnionWIPOffset> {
        let event_id = self.fbb.create_string(ack.event_id);
        let room_id = self.fbb.create_string(ack.room_id);
        let args = fb::SendAckArgs {
            request_id: ack.request_id,
            event_id: Some(event_id),
            room_id: Some(room_id),
            seq: ack.seq,
            pos: ack.pos,
        };
        fb::SendAck::create(&mut self.fbb, &args).as_union_value()
    }

    fn typing_update(&mut self, update: &TypingUpdate<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_id = self.fbb.create_string(update.room_id);
        let user_ids = self.string_list(&update.user_ids);
        let args = fb::TypingUpdateArgs {
            room_id: Some(room_id),
            user_ids: Some(user_ids),
        };
        fb::TypingUpdate::create(&mut self.fbb, &args).as_union_value()
    }

    fn receipt_update(&mut self, update: &ReceiptUpdate<'_>) -> WIPOffset<UnionWIPOffset> {
        let room_id = self.fbb.create_string(update.room_id);
        let user_id = self.fbb.create_string(update.user_id);
        let event_id = self.fbb.create_string(update.event_id);
        let receipt_type = self.fbb.create_string(update.receipt_type);
        let thread_id = self.opt_string(update.thread_id);
        let args = fb::ReceiptUpdateArgs {
            room_id: Some(room_id),
            user_id: Some(user_id),
            event_id: Some(event_id),
            receipt_type: Some(receipt_type),
            ts: update.ts,
            thread_id,
        };
        fb::ReceiptUpdate::create(&mut self.fbb, &args).as_union_value()
    }

    fn presence_update(&mut self, update: &PresenceUpdate<'_>) -> WIPOffset<UnionWIPOffset> {
        let user_id = self.fbb.create_string(update.user_id);
        let status_msg = self.opt_string(update.status_msg);
        let args = fb::PresenceUpdateArgs {
            user_id: Some(user_id),
            state: presence_to_wire(update.state),
            status_msg,
            last_active_ago_ms: update.last_active_ago_ms,
            currently_active: update.currently_active,
        };
        fb::PresenceUpdate::create(&mut self.fbb, &args).as_union_value()
    }

    fn error(&mut self, error: &ErrorFrame<'_>) -> WIPOffset<UnionWIPOffset> {
        // An empty message is sent as absent: it decodes to "" either way.
        let message = (!error.message.is_empty()).then(|| self.fbb.create_string(error.message));
        let args = fb::ErrorArgs {
            request_id: error.request_id,
            code: error.code.to_wire(),
            message,
            retry_after_ms: error.retry_after_ms,
            close: error.close,
            resumable: error.resumable,
        };
        fb::Error::create(&mut self.fbb, &args).as_union_value()
    }
}

fn direction_to_wire(direction: Direction) -> fb::Direction {
    match direction {
        Direction::Backward => fb::Direction::Backward,
        Direction::Forward => fb::Direction::Forward,
    }
}

fn presence_to_wire(state: PresenceState) -> fb::PresenceState {
    match state {
        PresenceState::Online => fb::PresenceState::Online,
        PresenceState::Unavailable => fb::PresenceState::Unavailable,
        PresenceState::Offline => fb::PresenceState::Offline,
    }
}

/// Encodes one client frame with a fresh builder (use [`FrameEncoder`] on
/// hot paths).
pub fn encode_client(frame: &ClientFrame<'_>) -> Bytes {
    FrameEncoder::new().encode_client(frame)
}

/// Encodes one server frame with a fresh builder (use [`FrameEncoder`] on
/// hot paths).
pub fn encode_server(frame: &ServerFrame<'_>) -> Bytes {
    FrameEncoder::new().encode_server(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::has_envelope_identifier;
    use crate::model::{Ping, Pong};

    fn event(seq: u64) -> EventView<'static> {
        EventView {
            event_id: "$event",
            room_id: "!room:example.org",
            sender: "@alice:example.org",
            event_type: "m.room.message",
            state_key: None,
            content: br#"{"body":"hi"}"#,
            origin_server_ts: 1_700_000_000_000,
            seq,
            pos: seq * 10,
        }
    }

    #[test]
    fn frames_carry_the_identifier() {
        assert!(has_envelope_identifier(&encode_client(&ClientFrame::Ping(
            Ping { nonce: 1 }
        ))));
        assert!(has_envelope_identifier(&encode_server(&ServerFrame::Pong(
            Pong { nonce: 1 }
        ))));
    }

    #[test]
    fn reused_encoder_matches_fresh_encoders() {
        // Reset must leave nothing of the previous frame behind: a long frame
        // followed by a short one must encode exactly as a fresh builder does.
        let mut encoder = FrameEncoder::with_capacity(16);
        let frames = [
            ServerFrame::EventBatch(crate::model::EventBatch {
                events: (1..50).map(event).collect(),
            }),
            ServerFrame::Pong(Pong { nonce: 9 }),
            ServerFrame::Event(event(3)),
            ServerFrame::TypingUpdate(TypingUpdate {
                room_id: "!r:x",
                user_ids: vec!["@a:x", "@b:x"],
            }),
        ];
        for frame in &frames {
            assert_eq!(encoder.encode_server(frame), encode_server(frame));
        }
    }

    #[test]
    fn dedicated_event_paths_match_the_generic_one() {
        let mut encoder = FrameEncoder::new();
        let single = event(1);
        assert_eq!(
            encoder.encode_event(&single),
            encode_server(&ServerFrame::Event(single))
        );
        let events = [event(1), event(2)];
        let page = crate::model::HistoryPage {
            request_id: 5,
            room_id: "!room:example.org",
            events: events.to_vec(),
            next_from_seq: 0,
            end: true,
        };
        assert_eq!(
            encoder.encode_history_page(5, "!room:example.org", &events, 0, true),
            encode_server(&ServerFrame::HistoryPage(page))
        );
    }

    #[test]
    fn encoder_can_move_between_tasks() {
        fn assert_send<T: Send>() {}
        assert_send::<FrameEncoder>();
    }

    #[test]
    fn output_is_exactly_the_frame() {
        // The returned Bytes must not drag the builder's spare capacity along.
        let mut encoder = FrameEncoder::with_capacity(64 * 1024);
        let bytes = encoder.encode_client(&ClientFrame::Ping(Ping { nonce: 1 }));
        assert!(bytes.len() < 64, "ping is {} bytes", bytes.len());
    }
}
