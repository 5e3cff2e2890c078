//! [`AccountDataStore`] for the embedded store: per-user account data keyed
//! (user, global-or-room, type), so a user's data is one range.

use async_trait::async_trait;
use axon_core::StoreError;
use axon_core::ids::{RoomId, UserId};
use axon_core::store::{AccountDataRecord, AccountDataStore};
use bytes::Bytes;

use fjall::Readable;

use super::{EmbeddedStore, codec, keys, kv, read};

/// `user\0 scope type`, the scope `0x00` for global or `0x01 room\0`.
fn data_key(user: &UserId, room: Option<&RoomId>, data_type: &str) -> Vec<u8> {
    let key = keys::KeyBuf::new().id(user.as_str());
    match room {
        None => key.byte(0),
        Some(room) => key.byte(1).id(room.as_str()),
    }
    .text(data_type)
    .build()
}

#[async_trait]
impl AccountDataStore for EmbeddedStore {
    async fn put_account_data(
        &self,
        user: &UserId,
        record: &AccountDataRecord,
    ) -> Result<(), StoreError> {
        let key = data_key(user, record.room_id.as_ref(), &record.data_type);
        let value = codec::encode(record)?;
        self.blocking(move |inner| {
            let mut wb = inner.db.batch();
            wb.insert(&inner.ks.account_data, key, value);
            inner.write(wb)
        })
        .await
    }

    async fn account_data(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
        data_type: &str,
    ) -> Result<Option<Bytes>, StoreError> {
        let inner = &self.inner;
        let Some(v) = read(
            &inner.view(),
            &inner.ks.account_data,
            data_key(user, room, data_type),
        )?
        else {
            return Ok(None);
        };
        let record: AccountDataRecord = codec::decode("account data", &v)?;
        Ok(Some(record.content))
    }

    async fn all_account_data(&self, user: &UserId) -> Result<Vec<AccountDataRecord>, StoreError> {
        let prefix = keys::user(user);
        self.inline(move |inner| {
            inner
                .view()
                .prefix(&inner.ks.account_data, prefix)
                .map(|g| kv(g).and_then(|(_, v)| codec::decode("account data", &v)))
                .collect()
        })
    }
}
