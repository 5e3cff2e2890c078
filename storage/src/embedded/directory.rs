//! [`DirectoryStore`] for the embedded store: `aliases` alias → record,
//! `room_aliases` (room, alias) so a room's aliases are one range, and
//! `published` room ids in id order for paging the public directory.

use std::ops::Bound;

use async_trait::async_trait;
use axon_core::StoreError;
use axon_core::ids::RoomId;
use axon_core::store::{AliasRecord, DirectoryStore};

use fjall::Readable;

use super::{EmbeddedStore, codec, keys, kv, read};

fn room_alias_key(room: &RoomId, alias: &str) -> Vec<u8> {
    keys::KeyBuf::new().id(room.as_str()).text(alias).build()
}

#[async_trait]
impl DirectoryStore for EmbeddedStore {
    async fn create_alias(&self, record: &AliasRecord) -> Result<(), StoreError> {
        let record = record.clone();
        let value = codec::encode(&record)?;
        self.blocking(move |inner| {
            let commit = inner.sync.start_commit();
            let ticket = {
                // Check and insert under one lock: two creators of the same
                // alias must not both succeed.
                let _guard = inner.account_lock.lock();
                if read(&inner.latest(), &inner.ks.aliases, &record.alias)?.is_some() {
                    return Err(StoreError::Conflict(format!("alias {}", record.alias)));
                }
                let mut wb = inner.db.batch();
                wb.insert(&inner.ks.aliases, record.alias.as_str(), value);
                wb.insert(
                    &inner.ks.room_aliases,
                    room_alias_key(&record.room_id, &record.alias),
                    Vec::new(),
                );
                inner.commit(commit, wb)?
            };
            inner.make_durable(ticket)
        })
        .await
    }

    async fn alias(&self, alias: &str) -> Result<Option<AliasRecord>, StoreError> {
        let inner = &self.inner;
        read(&inner.view(), &inner.ks.aliases, alias)?
            .map(|v| codec::decode("alias", &v))
            .transpose()
    }

    async fn delete_alias(&self, alias: &str) -> Result<(), StoreError> {
        let alias = alias.to_owned();
        self.blocking(move |inner| {
            let commit = inner.sync.start_commit();
            let ticket = {
                let _guard = inner.account_lock.lock();
                let Some(v) = read(&inner.latest(), &inner.ks.aliases, &alias)? else {
                    return Err(StoreError::NotFound(format!("alias {alias}")));
                };
                let record: AliasRecord = codec::decode("alias", &v)?;
                let mut wb = inner.db.batch();
                wb.remove(&inner.ks.aliases, alias.as_str());
                wb.remove(
                    &inner.ks.room_aliases,
                    room_alias_key(&record.room_id, &alias),
                );
                inner.commit(commit, wb)?
            };
            inner.make_durable(ticket)
        })
        .await
    }

    async fn room_aliases(&self, room: &RoomId) -> Result<Vec<AliasRecord>, StoreError> {
        let prefix = keys::room(room);
        self.inline(move |inner| {
            let view = inner.view();
            let mut out = Vec::new();
            for g in view.prefix(&inner.ks.room_aliases, &prefix) {
                let (k, _) = kv(g)?;
                let alias = decode_text(&k[prefix.len()..])?;
                if let Some(v) = read(&view, &inner.ks.aliases, &alias)? {
                    out.push(codec::decode("alias", &v)?);
                }
            }
            Ok(out)
        })
    }

    async fn set_published(&self, room: &RoomId, published: bool) -> Result<(), StoreError> {
        let key = keys::room(room);
        self.blocking(move |inner| {
            let mut wb = inner.db.batch();
            if published {
                wb.insert(&inner.ks.published, key, Vec::new());
            } else {
                wb.remove(&inner.ks.published, key);
            }
            inner.write(wb)
        })
        .await
    }

    async fn is_published(&self, room: &RoomId) -> Result<bool, StoreError> {
        let inner = &self.inner;
        Ok(read(&inner.view(), &inner.ks.published, keys::room(room))?.is_some())
    }

    async fn published_rooms(
        &self,
        after: Option<&RoomId>,
        limit: usize,
    ) -> Result<Vec<RoomId>, StoreError> {
        let after = after.map(keys::room);
        self.blocking(move |inner| {
            let view = inner.view();
            let decode = |g| -> Result<RoomId, StoreError> {
                let (k, _) = kv(g)?;
                let (room, _) = keys::split_id(&k)?;
                RoomId::parse(room).map_err(|e| StoreError::Corrupt(format!("published key: {e}")))
            };
            let range = match &after {
                Some(after) => view.range::<&[u8], _>(
                    &inner.ks.published,
                    (Bound::Excluded(after.as_slice()), Bound::Unbounded),
                ),
                None => view.range::<&[u8], _>(&inner.ks.published, ..),
            };
            range.take(limit).map(decode).collect()
        })
        .await
    }
}

/// The inverse of `KeyBuf::text` for a key that ends with one text part.
fn decode_text(bytes: &[u8]) -> Result<String, StoreError> {
    let body = bytes
        .strip_suffix(&[0, 1])
        .ok_or_else(|| StoreError::Corrupt("text key part is not terminated".into()))?;
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.iter();
    while let Some(&b) = it.next() {
        out.push(b);
        if b == 0 && it.next() != Some(&0xFF) {
            return Err(StoreError::Corrupt("bad escape in a text key part".into()));
        }
    }
    String::from_utf8(out).map_err(|_| StoreError::Corrupt("text key part is not UTF-8".into()))
}
