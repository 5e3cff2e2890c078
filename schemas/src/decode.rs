//! The one way to read an inbound buffer: size check, identifier check,
//! FlatBuffers verification, then field reads into the borrowed model.

use flatbuffers::{ForwardsUOffset, Vector};

use crate::envelope::has_envelope_identifier;
use crate::error::FrameError;
use crate::generated::v1 as fb;
use crate::limits::DecodeLimits;
use crate::model::{
    ClientFrame, Direction, ErrorFrame, EventBatch, EventView, Frame, Hello, HistoryPage,
    HistoryRequest, Login, Ping, Pong, Presence, PresenceState, PresenceUpdate, Receipt,
    ReceiptUpdate, ResumePosition, SendAck, SendEvent, ServerFrame, Subscribe, Subscribed, Typing,
    TypingUpdate, Unsubscribe, Welcome,
};

/// Decodes one frame from `buf`, borrowing strings and content from it.
///
/// In order, and each step only if the previous passed: reject buffers over
/// `limits.max_frame_bytes` without reading them; require the `AXN1` file
/// identifier; run the FlatBuffers verifier bounded by `limits`; read the
/// fields. Never panics, whatever the input.
pub fn decode<'a>(buf: &'a [u8], limits: &DecodeLimits) -> Result<Frame<'a>, FrameError> {
    if buf.len() > limits.max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: buf.len(),
            max: limits.max_frame_bytes,
        });
    }
    if !has_envelope_identifier(buf) {
        return Err(FrameError::NotAnEnvelope);
    }
    let envelope = flatbuffers::root_with_opts::<fb::Envelope>(&limits.verifier_options(), buf)?;
    read_frame(&envelope)
}

/// Reads the union member named by `frame_type`. After verification the
/// `frame_as_*` accessors cannot return `None` for the matching type; the
/// `ok_or` keeps that an error rather than a panic should it ever happen.
macro_rules! member {
    ($envelope:expr, $accessor:ident) => {
        $envelope
            .$accessor()
            .ok_or(FrameError::UnknownFrame($envelope.frame_type().0))?
    };
}

fn read_frame<'a>(envelope: &fb::Envelope<'a>) -> Result<Frame<'a>, FrameError> {
    let client = |frame| Ok(Frame::Client(frame));
    let server = |frame| Ok(Frame::Server(frame));
    match envelope.frame_type() {
        fb::Frame::Hello => client(read_hello(member!(envelope, frame_as_hello))),
        fb::Frame::Login => client(read_login(member!(envelope, frame_as_login))),
        fb::Frame::Subscribe => client(read_subscribe(member!(envelope, frame_as_subscribe))),
        fb::Frame::Unsubscribe => client(read_unsubscribe(member!(envelope, frame_as_unsubscribe))),
        fb::Frame::Send => client(read_send(member!(envelope, frame_as_send))),
        fb::Frame::HistoryRequest => client(read_history_request(member!(
            envelope,
            frame_as_history_request
        ))?),
        fb::Frame::Typing => client(read_typing(member!(envelope, frame_as_typing))),
        fb::Frame::Receipt => client(read_receipt(member!(envelope, frame_as_receipt))),
        fb::Frame::Presence => client(read_presence(member!(envelope, frame_as_presence))?),
        fb::Frame::Ping => client(ClientFrame::Ping(Ping {
            nonce: member!(envelope, frame_as_ping).nonce(),
        })),
        fb::Frame::Welcome => server(read_welcome(member!(envelope, frame_as_welcome))),
        fb::Frame::Event => server(ServerFrame::Event(read_event(member!(
            envelope,
            frame_as_event
        )))),
        fb::Frame::EventBatch => server(ServerFrame::EventBatch(EventBatch {
            events: read_events(member!(envelope, frame_as_event_batch).events()),
        })),
        fb::Frame::SendAck => server(read_send_ack(member!(envelope, frame_as_send_ack))),
        fb::Frame::HistoryPage => {
            server(read_history_page(member!(envelope, frame_as_history_page)))
        }
        fb::Frame::TypingUpdate => server(read_typing_update(member!(
            envelope,
            frame_as_typing_update
        ))),
        fb::Frame::ReceiptUpdate => server(read_receipt_update(member!(
            envelope,
            frame_as_receipt_update
        ))),
        fb::Frame::PresenceUpdate => server(read_presence_update(member!(
            envelope,
            frame_as_presence_update
        ))?),
        fb::Frame::Error => server(read_error(member!(envelope, frame_as_error))),
        fb::Frame::Subscribed => {
            let s = member!(envelope, frame_as_subscribed);
            server(ServerFrame::Subscribed(Subscribed {
                request_id: s.request_id(),
                room_id: s.room_id(),
                head: s.head(),
            }))
        }
        fb::Frame::Pong => server(ServerFrame::Pong(Pong {
            nonce: member!(envelope, frame_as_pong).nonce(),
        })),
        // Numbers from newer schema versions, and NONE written explicitly
        // next to a value by a hand-crafted buffer.
        other => Err(FrameError::UnknownFrame(other.0)),
    }
}

fn read_strings<'a>(list: Option<Vector<'a, ForwardsUOffset<&'a str>>>) -> Vec<&'a str> {
    list.map(|list| list.iter().collect()).unwrap_or_default()
}

fn read_resume<'a>(
    list: Option<Vector<'a, ForwardsUOffset<fb::ResumePosition<'a>>>>,
) -> Vec<ResumePosition<'a>> {
    list.map(|list| {
        list.iter()
            .map(|position| ResumePosition {
                room_id: position.room_id(),
                seq: position.seq(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn read_bytes<'a>(bytes: Option<Vector<'a, u8>>) -> &'a [u8] {
    bytes.map(|bytes| bytes.bytes()).unwrap_or_default()
}

fn read_direction(direction: fb::Direction) -> Result<Direction, FrameError> {
    match direction {
        fb::Direction::Backward => Ok(Direction::Backward),
        fb::Direction::Forward => Ok(Direction::Forward),
        other => Err(FrameError::UnknownEnumValue {
            field: "direction",
            value: u16::from(other.0),
        }),
    }
}

fn read_presence_state(state: fb::PresenceState) -> Result<PresenceState, FrameError> {
    match state {
        fb::PresenceState::Online => Ok(PresenceState::Online),
        fb::PresenceState::Unavailable => Ok(PresenceState::Unavailable),
        fb::PresenceState::Offline => Ok(PresenceState::Offline),
        other => Err(FrameError::UnknownEnumValue {
            field: "state",
            value: u16::from(other.0),
        }),
    }
}

fn read_hello<'a>(hello: fb::Hello<'a>) -> ClientFrame<'a> {
    ClientFrame::Hello(Hello {
        access_token: hello.access_token(),
        device_id: hello.device_id(),
        client_name: hello.client_name(),
        client_version: hello.client_version(),
        resume: read_resume(hello.resume()),
    })
}

fn read_login<'a>(login: fb::Login<'a>) -> ClientFrame<'a> {
    ClientFrame::Login(Login {
        user: login.user(),
        password: login.password(),
        device_id: login.device_id(),
        client_name: login.client_name(),
        client_version: login.client_version(),
        resume: read_resume(login.resume()),
    })
}

fn read_subscribe<'a>(subscribe: fb::Subscribe<'a>) -> ClientFrame<'a> {
    ClientFrame::Subscribe(Subscribe {
        request_id: subscribe.request_id(),
        room_ids: read_strings(subscribe.room_ids()),
        since: read_resume(subscribe.since()),
    })
}

fn read_unsubscribe<'a>(unsubscribe: fb::Unsubscribe<'a>) -> ClientFrame<'a> {
    ClientFrame::Unsubscribe(Unsubscribe {
        request_id: unsubscribe.request_id(),
        room_ids: read_strings(unsubscribe.room_ids()),
    })
}

fn read_send<'a>(send: fb::Send<'a>) -> ClientFrame<'a> {
    ClientFrame::Send(SendEvent {
        request_id: send.request_id(),
        room_id: send.room_id(),
        txn_id: send.txn_id(),
        event_type: send.event_type(),
        state_key: send.state_key(),
        content: read_bytes(send.content()),
    })
}

fn read_history_request<'a>(
    request: fb::HistoryRequest<'a>,
) -> Result<ClientFrame<'a>, FrameError> {
    Ok(ClientFrame::HistoryRequest(HistoryRequest {
        request_id: request.request_id(),
        room_id: request.room_id(),
        from_seq: request.from_seq(),
        direction: read_direction(request.direction())?,
        limit: request.limit(),
    }))
}

fn read_typing<'a>(typing: fb::Typing<'a>) -> ClientFrame<'a> {
    ClientFrame::Typing(Typing {
        room_id: typing.room_id(),
        typing: typing.typing(),
        timeout_ms: typing.timeout_ms(),
    })
}

fn read_receipt<'a>(receipt: fb::Receipt<'a>) -> ClientFrame<'a> {
    ClientFrame::Receipt(Receipt {
        room_id: receipt.room_id(),
        event_id: receipt.event_id(),
        receipt_type: receipt.receipt_type(),
        thread_id: receipt.thread_id(),
    })
}

fn read_presence<'a>(presence: fb::Presence<'a>) -> Result<ClientFrame<'a>, FrameError> {
    Ok(ClientFrame::Presence(Presence {
        state: read_presence_state(presence.state())?,
        status_msg: presence.status_msg(),
    }))
}

fn read_welcome<'a>(welcome: fb::Welcome<'a>) -> ServerFrame<'a> {
    ServerFrame::Welcome(Welcome {
        user_id: welcome.user_id(),
        device_id: welcome.device_id(),
        access_token: welcome.access_token(),
        session_id: welcome.session_id(),
        server_time_ms: welcome.server_time_ms(),
        heartbeat_interval_ms: welcome.heartbeat_interval_ms(),
        max_frame_bytes: welcome.max_frame_bytes(),
    })
}

fn read_event<'a>(event: fb::Event<'a>) -> EventView<'a> {
    EventView {
        event_id: event.event_id(),
        room_id: event.room_id(),
        sender: event.sender(),
        event_type: event.event_type(),
        state_key: event.state_key(),
        content: read_bytes(event.content()),
        origin_server_ts: event.origin_server_ts(),
        seq: event.seq(),
        pos: event.pos(),
    }
}

fn read_events<'a>(
    events: Option<Vector<'a, ForwardsUOffset<fb::Event<'a>>>>,
) -> Vec<EventView<'a>> {
    events
        .map(|events| events.iter().map(read_event).collect())
        .unwrap_or_default()
}

fn read_send_ack<'a>(ack: fb::SendAck<'a>) -> ServerFrame<'a> {
    ServerFrame::SendAck(SendAck {
        request_id: ack.request_id(),
        event_id: ack.event_id(),
        room_id: ack.room_id(),
        seq: ack.seq(),
        pos: ack.pos(),
    })
}

fn read_history_page<'a>(page: fb::HistoryPage<'a>) -> ServerFrame<'a> {
    ServerFrame::HistoryPage(HistoryPage {
        request_id: page.request_id(),
        room_id: page.room_id(),
        events: read_events(page.events()),
        next_from_seq: page.next_from_seq(),
        end: page.end(),
    })
}

fn read_typing_update<'a>(update: fb::TypingUpdate<'a>) -> ServerFrame<'a> {
    ServerFrame::TypingUpdate(TypingUpdate {
        room_id: update.room_id(),
        user_ids: read_strings(update.user_ids()),
    })
}

fn read_receipt_update<'a>(update: fb::ReceiptUpdate<'a>) -> ServerFrame<'a> {
    ServerFrame::ReceiptUpdate(ReceiptUpdate {
        room_id: update.room_id(),
        user_id: update.user_id(),
        event_id: update.event_id(),
        receipt_type: update.receipt_type(),
        ts: update.ts(),
        thread_id: update.thread_id(),
    })
}

fn read_presence_update<'a>(update: fb::PresenceUpdate<'a>) -> Result<ServerFrame<'a>, FrameError> {
    Ok(ServerFrame::PresenceUpdate(PresenceUpdate {
        user_id: update.user_id(),
        state: read_presence_state(update.state())?,
        status_msg: update.status_msg(),
        last_active_ago_ms: update.last_active_ago_ms(),
        currently_active: update.currently_active(),
    }))
}

fn read_error<'a>(error: fb::Error<'a>) -> ServerFrame<'a> {
    ServerFrame::Error(ErrorFrame {
        request_id: error.request_id(),
        code: crate::code::ErrorCode::from_wire(error.code()),
        message: error.message().unwrap_or_default(),
        retry_after_ms: error.retry_after_ms(),
        close: error.close(),
        resumable: error.resumable(),
    })
}

#[cfg(test)]
mod tests {
    use flatbuffers::FlatBufferBuilder;

    use super::*;
    use crate::code::ErrorCode;
    use crate::encode::{FrameEncoder, encode_client, encode_server};

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    /// Finishes an envelope around a hand-built union member, bypassing the
    /// safe encoder so tests can produce frames it would never emit.
    fn envelope(
        fbb: &mut FlatBufferBuilder<'static>,
        frame_type: fb::Frame,
        frame: flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
    ) -> Vec<u8> {
        let args = fb::EnvelopeArgs {
            frame_type,
            frame: Some(frame),
        };
        let root = fb::Envelope::create(fbb, &args);
        fb::finish_envelope_buffer(fbb, root);
        fbb.finished_data().to_vec()
    }

    fn hello_bytes() -> bytes::Bytes {
        encode_client(&ClientFrame::Hello(Hello {
            access_token: "secret-token",
            device_id: Some("DEVICE"),
            client_name: None,
            client_version: Some("1.0"),
            resume: vec![ResumePosition {
                room_id: "!a:x",
                seq: 42,
            }],
        }))
    }

    #[test]
    fn decodes_what_it_encodes() {
        let bytes = hello_bytes();
        let frame = decode(&bytes, &limits()).unwrap().into_client().unwrap();
        let ClientFrame::Hello(hello) = frame else {
            panic!("expected Hello, got {frame:?}");
        };
        assert_eq!(hello.access_token, "secret-token");
        assert_eq!(hello.client_name, None);
        assert_eq!(hello.resume[0].seq, 42);
    }

    #[test]
    fn oversized_frame_is_rejected_before_reading() {
        let limits = DecodeLimits::with_max_frame_bytes(16);
        // Garbage of 17 bytes: the size check must win over any parsing.
        let err = decode(&[0xAA; 17], &limits).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len: 17, max: 16 }));
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    }

    #[test]
    fn frame_exactly_at_the_limit_is_accepted() {
        let bytes = hello_bytes();
        let limits = DecodeLimits::with_max_frame_bytes(bytes.len());
        assert!(decode(&bytes, &limits).is_ok());
        let limits = DecodeLimits::with_max_frame_bytes(bytes.len() - 1);
        assert_eq!(
            decode(&bytes, &limits).unwrap_err().code(),
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn garbage_is_not_an_envelope() {
        for garbage in [&b""[..], b"\x00", b"hello world, not a frame", &[0xFF; 64]] {
            let err = decode(garbage, &limits()).unwrap_err();
            assert!(matches!(err, FrameError::NotAnEnvelope), "{err:?}");
            assert_eq!(err.code(), ErrorCode::BadFrame);
        }
    }

    #[test]
    fn garbage_with_the_identifier_fails_verification() {
        let mut garbage = vec![0xFF; 64];
        garbage[4..8].copy_from_slice(b"AXN1");
        let err = decode(&garbage, &limits()).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn wrong_identifier_is_rejected() {
        let mut bytes = hello_bytes().to_vec();
        bytes[4..8].copy_from_slice(b"AXN2");
        assert!(matches!(
            decode(&bytes, &limits()),
            Err(FrameError::NotAnEnvelope)
        ));
    }

    #[test]
    fn truncated_frame_is_a_bad_frame() {
        let bytes = hello_bytes();
        // Cut in the middle: the union member's offset now points past the end.
        let err = decode(&bytes[..bytes.len() / 2], &limits()).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadFrame);
        // No prefix may panic, whatever it decodes to.
        for len in 0..bytes.len() {
            let _ = decode(&bytes[..len], &limits());
        }
    }

    #[test]
    fn unknown_frame_type_is_unexpected() {
        let mut fbb = FlatBufferBuilder::new();
        let ping = fb::Ping::create(&mut fbb, &fb::PingArgs { nonce: 1 });
        let bytes = envelope(&mut fbb, fb::Frame(200), ping.as_union_value());
        let err = decode(&bytes, &limits()).unwrap_err();
        assert!(matches!(err, FrameError::UnknownFrame(200)), "{err:?}");
        assert_eq!(err.code(), ErrorCode::UnexpectedFrame);
    }

    #[test]
    fn frame_type_none_with_a_value_is_malformed() {
        // NONE is the default, so the type field is left out of the table:
        // a value without a type is an inconsistent union.
        let mut fbb = FlatBufferBuilder::new();
        let ping = fb::Ping::create(&mut fbb, &fb::PingArgs { nonce: 1 });
        let bytes = envelope(&mut fbb, fb::Frame::NONE, ping.as_union_value());
        let err = decode(&bytes, &limits()).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn missing_required_field_is_named() {
        let mut fbb = FlatBufferBuilder::new();
        // A Hello table with no fields at all: no access_token.
        let start = fbb.start_table();
        let hello = fbb.end_table(start);
        let bytes = envelope(&mut fbb, fb::Frame::Hello, hello.as_union_value());
        let err = decode(&bytes, &limits()).unwrap_err();
        assert!(
            matches!(&err, FrameError::MissingField { field } if field == "access_token"),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn envelope_without_frame_is_rejected() {
        let mut fbb = FlatBufferBuilder::new();
        let start = fbb.start_table();
        let root = fbb.end_table(start);
        fbb.finish(root, Some(crate::FILE_IDENTIFIER));
        let err = decode(fbb.finished_data(), &limits()).unwrap_err();
        assert!(
            matches!(&err, FrameError::MissingField { field } if field == "frame"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_enum_value_is_an_invalid_argument() {
        let mut fbb = FlatBufferBuilder::new();
        let args = fb::PresenceArgs {
            state: fb::PresenceState(9),
            status_msg: None,
        };
        let presence = fb::Presence::create(&mut fbb, &args);
        let bytes = envelope(&mut fbb, fb::Frame::Presence, presence.as_union_value());
        let err = decode(&bytes, &limits()).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::UnknownEnumValue {
                    field: "state",
                    value: 9
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let frame = ClientFrame::Typing(Typing {
            room_id: "!room-zzzz:x",
            typing: true,
            timeout_ms: 1,
        });
        let mut bytes = encode_client(&frame).to_vec();
        let at = bytes
            .windows(4)
            .position(|w| w == b"zzzz")
            .expect("room id is in the buffer");
        bytes[at] = 0xFF;
        let err = decode(&bytes, &limits()).unwrap_err();
        assert!(matches!(err, FrameError::InvalidUtf8), "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn too_many_tables_is_too_complex() {
        let since: Vec<_> = (0..10)
            .map(|seq| ResumePosition {
                room_id: "!r:x",
                seq,
            })
            .collect();
        let bytes = encode_client(&ClientFrame::Subscribe(Subscribe {
            request_id: 1,
            room_ids: vec![],
            since,
        }));
        let tight = DecodeLimits {
            max_tables: 5,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode(&bytes, &tight),
            Err(FrameError::TooComplex(_))
        ));
        assert!(decode(&bytes, &limits()).is_ok());
    }

    #[test]
    fn full_size_event_batch_passes_default_limits() {
        // Many small events up to the size limit: the apparent-size and table
        // limits must not reject a legitimate frame that fits in the bytes.
        let event = EventView {
            event_id: "$e",
            room_id: "!r:x",
            sender: "@u:x",
            event_type: "m.room.message",
            state_key: None,
            content: b"{}",
            origin_server_ts: 1,
            seq: 1,
            pos: 1,
        };
        let mut encoder = FrameEncoder::new();
        let mut events = vec![event];
        let mut bytes = encoder.encode_event_batch(&events);
        loop {
            events.push(event);
            let bigger = encoder.encode_event_batch(&events);
            if bigger.len() > crate::DEFAULT_MAX_FRAME_BYTES {
                break;
            }
            bytes = bigger;
        }
        let frame = decode(&bytes, &limits()).unwrap().into_server().unwrap();
        let ServerFrame::EventBatch(batch) = frame else {
            panic!("expected EventBatch");
        };
        assert_eq!(batch.events.len(), events.len() - 1);
    }

    #[test]
    fn direction_is_checked_by_into_client_and_into_server() {
        let pong = encode_server(&ServerFrame::Pong(Pong { nonce: 3 }));
        let err = decode(&pong, &limits()).unwrap().into_client().unwrap_err();
        assert!(matches!(
            err,
            FrameError::UnexpectedDirection {
                expected: "client",
                got: "Pong"
            }
        ));
        assert_eq!(err.code(), ErrorCode::UnexpectedFrame);

        let ping = encode_client(&ClientFrame::Ping(Ping { nonce: 3 }));
        assert!(decode(&ping, &limits()).unwrap().into_server().is_err());
    }

    #[test]
    fn unknown_error_code_decodes_as_unknown() {
        let mut fbb = FlatBufferBuilder::new();
        let args = fb::ErrorArgs {
            code: fb::ErrorCode(999),
            ..Default::default()
        };
        let error = fb::Error::create(&mut fbb, &args);
        let bytes = envelope(&mut fbb, fb::Frame::Error, error.as_union_value());
        let frame = decode(&bytes, &limits()).unwrap().into_server().unwrap();
        let ServerFrame::Error(error) = frame else {
            panic!("expected Error");
        };
        assert_eq!(error.code, ErrorCode::Unknown);
        assert_eq!(error.message, "");
    }
}
