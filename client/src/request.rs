//! Requests the application makes, as the connection task keeps them until
//! they are answered: owned, so that they can be written again on a new
//! connection after a reconnect (a send keeps its transaction id).

use axon_schemas::{ClientFrame, Direction, HistoryRequest, ResumePosition, SendEvent, Subscribe};
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{ClientError, ServerError};
use crate::event::{HistoryPage, SendAck, SubscribeAck};

/// A request that gets an answer.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// Subscribe to a room; `since` = replay after this `seq`.
    Subscribe { room_id: String, since: Option<u64> },
    /// Send an event.
    Send(OutgoingEvent),
    /// Read a timeline page.
    History {
        room_id: String,
        from_seq: u64,
        direction: Direction,
        limit: u32,
    },
}

/// An event to send, with the transaction id that makes retries safe.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingEvent {
    pub room_id: String,
    pub txn_id: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Bytes,
}

impl Request {
    /// The room the request is about.
    pub fn room_id(&self) -> &str {
        match self {
            Request::Subscribe { room_id, .. } | Request::History { room_id, .. } => room_id,
            Request::Send(send) => &send.room_id,
        }
    }

    /// The frame for this request on the current connection. A subscription
    /// resumes from `position` when the room's position is known.
    pub fn encode(&self, request_id: u64, position: Option<u64>) -> Bytes {
        let frame = match self {
            Request::Subscribe { room_id, .. } => ClientFrame::Subscribe(match position {
                Some(seq) => Subscribe {
                    request_id,
                    room_ids: vec![],
                    since: vec![ResumePosition { room_id, seq }],
                },
                None => Subscribe {
                    request_id,
                    room_ids: vec![room_id],
                    since: vec![],
                },
            }),
            Request::Send(send) => ClientFrame::Send(SendEvent {
                request_id,
                room_id: &send.room_id,
                txn_id: &send.txn_id,
                event_type: &send.event_type,
                state_key: send.state_key.as_deref(),
                content: &send.content,
            }),
            Request::History {
                room_id,
                from_seq,
                direction,
                limit,
            } => ClientFrame::HistoryRequest(HistoryRequest {
                request_id,
                room_id,
                from_seq: *from_seq,
                direction: *direction,
                limit: *limit,
            }),
        };
        axon_schemas::encode_client(&frame)
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Subscribed(SubscribeAck),
    Sent(SendAck),
    History(HistoryPage),
}

/// Why a request got no successful answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an `Error` frame.
    Server(ServerError),
    /// The client closed (or gave up reconnecting) first.
    Closed,
}

impl From<Failure> for ClientError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Server(e) => e.into(),
            Failure::Closed => ClientError::Closed,
        }
    }
}

/// What the connection task answers a request with.
pub(crate) type Outcome = Result<Reply, Failure>;

/// Where an answer goes.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// An application call waiting on the answer.
    Caller(oneshot::Sender<Outcome>),
    /// The task's own history request filling a gap of the cursor.
    Fill,
}

/// A request sent (or to send) and not answered yet.
#[derive(Debug)]
pub(crate) struct Pending {
    pub request: Request,
    pub waiter: Waiter,
}

impl Pending {
    /// Whether nobody waits any more (the caller timed out or was dropped):
    /// such a request is not written again after a reconnect.
    pub fn abandoned(&self) -> bool {
        match &self.waiter {
            Waiter::Caller(tx) => tx.is_closed(),
            Waiter::Fill => false,
        }
    }

    /// Answers the caller, if any.
    pub fn answer(self, outcome: Outcome) {
        if let Waiter::Caller(tx) = self.waiter {
            // The caller may have given up; nothing to do then.
            let _ = tx.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon_schemas::{DecodeLimits, Frame};

    #[test]
    fn a_subscription_resumes_from_a_known_position() {
        let request = Request::Subscribe {
            room_id: "!r:x".into(),
            since: None,
        };
        let fresh = request.encode(7, None);
        let Ok(Frame::Client(ClientFrame::Subscribe(sub))) =
            axon_schemas::decode(&fresh, &DecodeLimits::default())
        else {
            panic!("a Subscribe frame");
        };
        assert_eq!(
            (sub.request_id, sub.room_ids, sub.since),
            (7, vec!["!r:x"], vec![])
        );
        let resumed = request.encode(8, Some(41));
        let Ok(Frame::Client(ClientFrame::Subscribe(sub))) =
            axon_schemas::decode(&resumed, &DecodeLimits::default())
        else {
            panic!("a Subscribe frame");
        };
        assert!(sub.room_ids.is_empty());
        assert_eq!(
            sub.since,
            vec![ResumePosition {
                room_id: "!r:x",
                seq: 41
            }]
        );
    }

    #[test]
    fn a_send_keeps_its_transaction_id_across_encodings() {
        let request = Request::Send(OutgoingEvent {
            room_id: "!r:x".into(),
            txn_id: "t1".into(),
            event_type: "m.room.message".into(),
            state_key: None,
            content: Bytes::from_static(b"{}"),
        });
        for id in [1, 2] {
            let bytes = request.encode(id, None);
            let Ok(Frame::Client(ClientFrame::Send(send))) =
                axon_schemas::decode(&bytes, &DecodeLimits::default())
            else {
                panic!("a Send frame");
            };
            assert_eq!((send.request_id, send.txn_id), (id, "t1"));
        }
    }
}
