//! Conformance of [`DirectoryStore`](axon_core::store::DirectoryStore), and
//! of the redaction index of [`TimelineStore`](axon_core::store::TimelineStore).

use axon_core::StoreError;
use axon_core::event::types;
use axon_core::store::{AliasRecord, DirectoryStore, TimelineStore};

use super::{StoreFactory, append, batch, message, ok, open, room, state, user};

fn alias(name: &str, n: u32) -> AliasRecord {
    AliasRecord {
        alias: format!("#{name}:conformance.test"),
        room_id: room(n),
        creator: user(n),
    }
}

/// Aliases: created once, found, listed per room, deleted once.
pub async fn aliases_create_conflict_list_delete<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let (a, b, c) = (alias("a", 1), alias("b", 1), alias("c", 2));
    for r in [&a, &b, &c] {
        ok("create_alias", store.create_alias(r).await);
    }
    let taken = AliasRecord {
        room_id: room(3),
        ..a.clone()
    };
    assert!(
        matches!(
            store.create_alias(&taken).await,
            Err(StoreError::Conflict(_))
        ),
        "a taken alias is a conflict"
    );
    assert_eq!(
        ok("alias", store.alias(&a.alias).await),
        Some(a.clone()),
        "the first creator keeps the alias"
    );
    assert_eq!(
        ok("room_aliases", store.room_aliases(&room(1)).await),
        [a.clone(), b.clone()]
    );
    ok("delete_alias", store.delete_alias(&a.alias).await);
    assert_eq!(ok("alias", store.alias(&a.alias).await), None);
    assert_eq!(ok("room_aliases", store.room_aliases(&room(1)).await), [b]);
    assert!(
        matches!(
            store.delete_alias(&a.alias).await,
            Err(StoreError::NotFound(_))
        ),
        "deleting a missing alias is NotFound"
    );
    ok("create_alias again", store.create_alias(&taken).await);
    assert_eq!(
        ok("room_aliases", store.room_aliases(&room(3)).await),
        [taken]
    );
    drop(store);
    let store = open(f).await;
    assert_eq!(
        ok("alias after reopen", store.alias(&c.alias).await),
        Some(c),
        "aliases survive a reopen"
    );
}

/// Published rooms: set and cleared, paged in room id order.
pub async fn published_rooms_page_in_id_order<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    for n in [3, 1, 2, 4] {
        ok("set_published", store.set_published(&room(n), true).await);
    }
    ok("set_published", store.set_published(&room(4), false).await);
    assert!(ok("is_published", store.is_published(&room(1)).await));
    assert!(!ok("is_published", store.is_published(&room(4)).await));
    let first = ok("published_rooms", store.published_rooms(None, 2).await);
    assert_eq!(first, [room(1), room(2)]);
    let rest = ok(
        "published_rooms",
        store.published_rooms(first.last(), 10).await,
    );
    assert_eq!(rest, [room(3)], "a page starts after the given room");
}

/// A redaction is indexed by the event it redacts, in the same write.
pub async fn redactions_are_indexed_by_target<F: StoreFactory>(f: &F) {
    let store = open(f).await;
    let r = room(1);
    let target = message(&r, 1, 1);
    let mut redaction = state(&r, 2, 2, types::REDACTION, "", "{}");
    redaction.state_key = None;
    redaction.content = format!(r#"{{"redacts":"{}"}}"#, target.event_id).into();
    let unrelated = message(&r, 3, 3);
    append(
        &store,
        batch(
            0,
            vec![target.clone(), redaction.clone(), unrelated.clone()],
        ),
    )
    .await;
    assert_eq!(
        ok("redaction_of", store.redaction_of(&target.event_id).await),
        Some(redaction)
    );
    assert_eq!(
        ok(
            "redaction_of",
            store.redaction_of(&unrelated.event_id).await
        ),
        None
    );
}
