//! Authorization rules (DESIGN invariant 6): scenario tests and property
//! tests over random membership transitions.

use axon_core::event::types;
use axon_core::room::{
    AuthError, JoinRule, Membership, PowerLevels, RoomState, authorize, can_read,
};
use axon_core::{Event, EventId, NewEvent, RoomCreation, RoomId, UserId};
use bytes::Bytes;
use proptest::prelude::*;

fn user(name: &str) -> UserId {
    UserId::parse(&format!("@{name}:x")).unwrap()
}

fn room() -> RoomId {
    RoomId::parse("!room:x").unwrap()
}

/// A room as the sequencer keeps it: authorize, then apply with the next seq.
struct Room {
    state: Option<RoomState>,
}

impl Room {
    fn created_by(creator: &UserId, join_rule: JoinRule) -> Self {
        let mut r = Room { state: None };
        let mut creation = RoomCreation::new(room(), creator.clone());
        creation.join_rule = join_rule;
        for e in creation.events() {
            r.send(e).unwrap();
        }
        r
    }

    fn send(&mut self, new: NewEvent) -> Result<(), AuthError> {
        authorize(self.state.as_ref(), &new)?;
        let seq = self.state.as_ref().map_or(0, RoomState::head_seq) + 1;
        let event = Event {
            event_id: EventId::generate(),
            room_id: new.room_id.clone(),
            sender: new.sender.clone(),
            event_type: new.event_type,
            state_key: new.state_key,
            content: new.content,
            origin_server_ts: 0,
            seq,
            pos: seq,
        };
        self.state
            .get_or_insert_with(|| RoomState::new(room(), new.sender.clone()))
            .apply(&event);
        Ok(())
    }

    fn member(&mut self, sender: &UserId, target: &UserId, m: Membership) -> Result<(), AuthError> {
        self.send(NewEvent::membership(&room(), sender, target, m))
    }

    fn message(&mut self, sender: &UserId) -> Result<(), AuthError> {
        self.send(NewEvent {
            room_id: room(),
            sender: sender.clone(),
            event_type: types::MESSAGE.into(),
            state_key: None,
            content: Bytes::from_static(br#"{"body":"hi"}"#),
            txn: None,
        })
    }

    fn state(&self) -> &RoomState {
        self.state.as_ref().unwrap()
    }
}

fn state_event(sender: &UserId, event_type: &str, key: &str, content: Bytes) -> NewEvent {
    NewEvent {
        room_id: room(),
        sender: sender.clone(),
        event_type: event_type.into(),
        state_key: Some(key.into()),
        content,
        txn: None,
    }
}

#[test]
fn a_non_member_cannot_send_or_read() {
    let (alice, eve) = (user("alice"), user("eve"));
    let mut r = Room::created_by(&alice, JoinRule::Public);
    assert_eq!(r.message(&eve), Err(AuthError::NotJoined(eve.clone())));
    assert!(!can_read(r.state(), &eve));
    assert!(can_read(r.state(), &alice));
    r.member(&eve, &eve, Membership::Join).unwrap();
    assert!(can_read(r.state(), &eve));
    r.message(&eve).unwrap();
    r.member(&eve, &eve, Membership::Leave).unwrap();
    assert!(!can_read(r.state(), &eve));
    assert!(r.message(&eve).is_err());
}

#[test]
fn a_banned_user_cannot_rejoin_until_unbanned() {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut r = Room::created_by(&alice, JoinRule::Public);
    r.member(&bob, &bob, Membership::Join).unwrap();
    r.member(&alice, &bob, Membership::Ban).unwrap();
    assert_eq!(
        r.member(&bob, &bob, Membership::Join),
        Err(AuthError::Banned(bob.clone()))
    );
    assert_eq!(
        r.member(&alice, &bob, Membership::Invite),
        Err(AuthError::Banned(bob.clone()))
    );
    assert!(r.message(&bob).is_err());
    r.member(&alice, &bob, Membership::Leave).unwrap(); // unban
    r.member(&bob, &bob, Membership::Join).unwrap();
}

#[test]
fn an_invite_only_room_needs_an_invite() {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut r = Room::created_by(&alice, JoinRule::Invite);
    assert_eq!(
        r.member(&bob, &bob, Membership::Join),
        Err(AuthError::InviteRequired)
    );
    r.member(&alice, &bob, Membership::Invite).unwrap();
    r.member(&bob, &bob, Membership::Join).unwrap();
    r.member(&bob, &bob, Membership::Leave).unwrap();
    assert_eq!(
        r.member(&bob, &bob, Membership::Join),
        Err(AuthError::InviteRequired)
    );
}

#[test]
fn knocking_needs_a_knock_room_and_an_invite_to_enter() {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut r = Room::created_by(&alice, JoinRule::Invite);
    assert!(r.member(&bob, &bob, Membership::Knock).is_err());
    let mut r = Room::created_by(&alice, JoinRule::Knock);
    r.member(&bob, &bob, Membership::Knock).unwrap();
    assert_eq!(
        r.member(&bob, &bob, Membership::Join),
        Err(AuthError::InviteRequired)
    );
    r.member(&alice, &bob, Membership::Invite).unwrap();
    r.member(&bob, &bob, Membership::Join).unwrap();
}

#[test]
fn power_levels_gate_kicks_bans_and_state() {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut r = Room::created_by(&alice, JoinRule::Public);
    r.member(&bob, &bob, Membership::Join).unwrap();
    r.member(&carol, &carol, Membership::Join).unwrap();
    assert!(matches!(
        r.member(&bob, &carol, Membership::Leave),
        Err(AuthError::InsufficientPower { action: "kick", .. })
    ));
    assert!(matches!(
        r.member(&bob, &carol, Membership::Ban),
        Err(AuthError::InsufficientPower { action: "ban", .. })
    ));
    assert!(matches!(
        r.send(state_event(
            &bob,
            types::NAME,
            "",
            Bytes::from_static(br#"{"name":"x"}"#)
        )),
        Err(AuthError::InsufficientPower { .. })
    ));
    // Bob cannot promote himself.
    let mut pl = PowerLevels::for_new_room(&alice);
    pl.users.insert(bob.clone(), 100);
    assert!(
        r.send(state_event(&bob, types::POWER_LEVELS, "", pl.to_content()))
            .is_err()
    );
    // Alice promotes Bob to moderator; Bob can kick Carol but not Alice.
    pl.users.insert(bob.clone(), 50);
    r.send(state_event(
        &alice,
        types::POWER_LEVELS,
        "",
        pl.to_content(),
    ))
    .unwrap();
    r.member(&bob, &carol, Membership::Leave).unwrap();
    assert!(r.member(&bob, &alice, Membership::Leave).is_err());
    // Bob cannot demote Alice, who outranks him.
    let mut demote = pl.clone();
    demote.users.insert(alice.clone(), 0);
    assert!(
        r.send(state_event(
            &bob,
            types::POWER_LEVELS,
            "",
            demote.to_content()
        ))
        .is_err()
    );
}

#[test]
fn nobody_joins_for_someone_else_and_a_room_is_created_once() {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut r = Room::created_by(&alice, JoinRule::Public);
    assert!(r.member(&alice, &bob, Membership::Join).is_err());
    let again = state_event(&alice, types::CREATE, "", Bytes::from_static(b"{}"));
    assert_eq!(r.send(again), Err(AuthError::RoomExists));
    let mut missing = Room { state: None };
    assert_eq!(missing.message(&alice), Err(AuthError::RoomNotFound));
    assert!(
        r.send(state_event(
            &alice,
            types::MEMBER,
            "not-a-user",
            Membership::Join.content()
        ))
        .is_err()
    );
    assert!(
        r.send(state_event(
            &bob,
            "m.custom",
            alice.as_str(),
            Bytes::from_static(b"{}")
        ))
        .is_err()
    );
}

/// One random action: `actor` does `membership` to `target`, or sends a message.
#[derive(Clone, Debug)]
enum Action {
    Member {
        actor: usize,
        target: usize,
        membership: Membership,
    },
    Message {
        actor: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let membership = prop_oneof![
        Just(Membership::Join),
        Just(Membership::Invite),
        Just(Membership::Leave),
        Just(Membership::Ban),
        Just(Membership::Knock),
    ];
    prop_oneof![
        4 => (0..4usize, 0..4usize, membership)
            .prop_map(|(actor, target, membership)| Action::Member { actor, target, membership }),
        1 => (0..4usize).prop_map(|actor| Action::Message { actor }),
    ]
}

fn join_rule() -> impl Strategy<Value = JoinRule> {
    prop_oneof![
        Just(JoinRule::Public),
        Just(JoinRule::Invite),
        Just(JoinRule::Knock)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happens, every accepted transition is one the rules allow,
    /// judged against the state before it; refused ones change nothing.
    #[test]
    fn every_accepted_transition_is_allowed(rule in join_rule(), actions in prop::collection::vec(action(), 1..60)) {
        let users: Vec<UserId> = ["u0", "u1", "u2", "u3"].iter().map(|n| user(n)).collect();
        // u0 creates the room (level 100); the others are at level 0.
        let mut r = Room::created_by(&users[0], rule);
        for a in actions {
            let before = r.state().clone();
            let m = |u: &UserId| before.membership(u);
            let level = |u: &UserId| before.power_levels().user_level(u);
            match a {
                Action::Message { actor } => {
                    let ok = r.message(&users[actor]).is_ok();
                    prop_assert_eq!(ok, m(&users[actor]) == Some(Membership::Join));
                }
                Action::Member { actor, target, membership } => {
                    let (s, t) = (&users[actor], &users[target]);
                    let ok = r.member(s, t, membership).is_ok();
                    if !ok {
                        prop_assert_eq!(r.state(), &before, "a refused event changed the state");
                        continue;
                    }
                    prop_assert_eq!(r.state().membership(t), Some(membership));
                    match membership {
                        Membership::Join => {
                            prop_assert_eq!(s, t);
                            prop_assert_ne!(m(t), Some(Membership::Ban));
                            prop_assert!(
                                rule == JoinRule::Public
                                    || matches!(m(t), Some(Membership::Invite | Membership::Join)),
                                "joined {:?} room from {:?}", rule, m(t)
                            );
                        }
                        Membership::Invite => {
                            prop_assert_eq!(m(s), Some(Membership::Join));
                            prop_assert!(!matches!(m(t), Some(Membership::Ban | Membership::Join)));
                        }
                        Membership::Ban => {
                            prop_assert_eq!(m(s), Some(Membership::Join));
                            prop_assert!(level(s) >= 50 && level(s) > level(t));
                        }
                        Membership::Knock => {
                            prop_assert_eq!(s, t);
                            prop_assert_eq!(rule, JoinRule::Knock);
                            prop_assert!(!matches!(m(t), Some(Membership::Ban | Membership::Join)));
                        }
                        Membership::Leave if s == t => {
                            prop_assert!(matches!(
                                m(t),
                                Some(Membership::Join | Membership::Invite | Membership::Knock)
                            ));
                        }
                        Membership::Leave => {
                            prop_assert_eq!(m(s), Some(Membership::Join));
                            prop_assert!(level(s) >= 50 && level(s) > level(t));
                            prop_assert!(m(t).is_some() && m(t) != Some(Membership::Leave));
                        }
                    }
                }
            }
        }
    }
}
