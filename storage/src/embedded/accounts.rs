//! [`AccountStore`] for the embedded store: users, devices and tokens.
//!
//! Tokens are keyed by the hash of their secret; `device_tokens`
//! (user, device, hash) → () lets a device's or a user's tokens be found and
//! deleted with them. Every cascade is one atomic write.

use std::ops::Bound;

use async_trait::async_trait;
use axon_core::StoreError;
use axon_core::accounts::TokenHash;
use axon_core::ids::{DeviceId, UserId};
use axon_core::store::{AccountStore, DeviceRecord, TokenRecord, UserRecord};
use fjall::{OwnedWriteBatch, Readable, Snapshot};

use super::{EmbeddedStore, Inner, codec, keys, kv, read};

fn device_key(user: &UserId, device: &DeviceId) -> Vec<u8> {
    keys::KeyBuf::new()
        .id(user.as_str())
        .id(device.as_str())
        .build()
}

fn device_token_key(user: &UserId, device: &DeviceId, hash: &TokenHash) -> Vec<u8> {
    keys::KeyBuf::new()
        .id(user.as_str())
        .id(device.as_str())
        .raw(&hash.0)
        .build()
}

impl Inner {
    fn put_user(&self, user: &UserRecord, must_exist: bool) -> Result<(), StoreError> {
        let ticket = {
            let commit = self.sync.start_commit();
            let _guard = self.account_lock.lock();
            let exists = read(&self.latest(), &self.ks.users, user.user_id.as_str())?.is_some();
            match (exists, must_exist) {
                (true, false) => {
                    return Err(StoreError::Conflict(format!("user {}", user.user_id)));
                }
                (false, true) => {
                    return Err(StoreError::NotFound(format!("user {}", user.user_id)));
                }
                _ => {}
            }
            let mut wb = self.db.batch();
            wb.insert(&self.ks.users, user.user_id.as_str(), codec::encode(user)?);
            self.commit(commit, wb)?
        };
        self.make_durable(ticket)
    }

    fn users(&self, after: Option<&UserId>, limit: usize) -> Result<Vec<UserRecord>, StoreError> {
        let start = match after {
            Some(u) => Bound::Excluded(u.as_str().as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.view()
            .range::<Vec<u8>, _>(&self.ks.users, (start, Bound::Unbounded))
            .take(limit)
            .map(|g| kv(g).and_then(|(_, v)| codec::decode("user", &v)))
            .collect()
    }

    fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.view()
            .prefix(&self.ks.devices, keys::user(user))
            .map(|g| kv(g).and_then(|(_, v)| codec::decode("device", &v)))
            .collect()
    }

    /// Adds deletes of every token under `prefix` of `device_tokens` to `wb`.
    fn delete_tokens_under(
        &self,
        latest: &Snapshot,
        wb: &mut OwnedWriteBatch,
        prefix: &[u8],
    ) -> Result<(), StoreError> {
        for g in latest.prefix(&self.ks.device_tokens, prefix) {
            let (k, _) = kv(g)?;
            let hash = k
                .len()
                .checked_sub(32)
                .map(|at| &k[at..])
                .ok_or_else(|| StoreError::Corrupt("device token key too short".into()))?;
            wb.remove(&self.ks.tokens, hash.to_vec());
            wb.remove(&self.ks.device_tokens, k);
        }
        Ok(())
    }

    fn delete_device(&self, user: &UserId, device: &DeviceId) -> Result<(), StoreError> {
        let ticket = {
            let commit = self.sync.start_commit();
            let _guard = self.account_lock.lock();
            let mut wb = self.db.batch();
            self.delete_tokens_under(&self.latest(), &mut wb, &device_key(user, device))?;
            wb.remove(&self.ks.devices, device_key(user, device));
            self.commit(commit, wb)?
        };
        let durable = self.make_durable(ticket);
        // Readable (or failed for good): no token read before may stay.
        self.tokens.changed_all();
        durable
    }

    fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let ticket = {
            let commit = self.sync.start_commit();
            let _guard = self.account_lock.lock();
            let mut wb = self.db.batch();
            // A token re-stored under another device must leave no stale index entry.
            if let Some(old) = read(&self.latest(), &self.ks.tokens, token.hash.0)? {
                let old: TokenRecord = codec::decode("token", &old)?;
                wb.remove(
                    &self.ks.device_tokens,
                    device_token_key(&old.user_id, &old.device_id, &old.hash),
                );
            }
            wb.insert(
                &self.ks.tokens,
                token.hash.0.to_vec(),
                codec::encode(token)?,
            );
            wb.insert(
                &self.ks.device_tokens,
                device_token_key(&token.user_id, &token.device_id, &token.hash),
                Vec::new(),
            );
            self.commit(commit, wb)?
        };
        let durable = self.make_durable(ticket);
        // Readable (or failed for good): no token read before may stay.
        self.tokens.changed_all();
        durable
    }

    fn delete_token(&self, hash: &TokenHash) -> Result<(), StoreError> {
        let ticket = {
            let commit = self.sync.start_commit();
            let _guard = self.account_lock.lock();
            let Some(old) = read(&self.latest(), &self.ks.tokens, hash.0)? else {
                return Ok(());
            };
            let old: TokenRecord = codec::decode("token", &old)?;
            let mut wb = self.db.batch();
            wb.remove(&self.ks.tokens, hash.0.to_vec());
            wb.remove(
                &self.ks.device_tokens,
                device_token_key(&old.user_id, &old.device_id, hash),
            );
            self.commit(commit, wb)?
        };
        let durable = self.make_durable(ticket);
        // Readable (or failed for good): no token read before may stay.
        self.tokens.changed_all();
        durable
    }

    fn delete_user_tokens(&self, user: &UserId) -> Result<(), StoreError> {
        let ticket = {
            let commit = self.sync.start_commit();
            let _guard = self.account_lock.lock();
            let mut wb = self.db.batch();
            self.delete_tokens_under(&self.latest(), &mut wb, &keys::user(user))?;
            self.commit(commit, wb)?
        };
        let durable = self.make_durable(ticket);
        // Readable (or failed for good): no token read before may stay.
        self.tokens.changed_all();
        durable
    }
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let user = user.clone();
        self.blocking(move |inner| inner.put_user(&user, false))
            .await
    }

    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let user = user.clone();
        self.blocking(move |inner| inner.put_user(&user, true))
            .await
    }

    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let inner = &self.inner;
        read(&inner.view(), &inner.ks.users, id.as_str())?
            .map(|v| codec::decode("user", &v))
            .transpose()
    }

    async fn users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let after = after.cloned();
        self.blocking(move |inner| inner.users(after.as_ref(), limit))
            .await
    }

    async fn put_device(&self, device: &DeviceRecord) -> Result<(), StoreError> {
        let key = device_key(&device.user_id, &device.device_id);
        let value = codec::encode(device)?;
        self.blocking(move |inner| {
            let mut wb = inner.db.batch();
            wb.insert(&inner.ks.devices, key, value);
            inner.write(wb)
        })
        .await
    }

    async fn device(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let inner = &self.inner;
        read(&inner.view(), &inner.ks.devices, device_key(user, device))?
            .map(|v| codec::decode("device", &v))
            .transpose()
    }

    async fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        let user = user.clone();
        self.inline(move |inner| inner.devices(&user))
    }

    async fn delete_device(&self, user: &UserId, device: &DeviceId) -> Result<(), StoreError> {
        let (user, device) = (user.clone(), device.clone());
        self.blocking(move |inner| inner.delete_device(&user, &device))
            .await
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.blocking(move |inner| inner.put_token(&token)).await
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let inner = &self.inner;
        if let Some(known) = inner.tokens.get(&hash.0) {
            return Ok(Some(known.as_ref().clone()));
        }
        // The generation is taken before the view, see `recent::ReadThrough`.
        // Unknown tokens are not kept: guessing must not fill the table.
        let generation = inner.tokens.generation();
        let record: Option<TokenRecord> = read(&inner.view(), &inner.ks.tokens, hash.0)?
            .map(|v| codec::decode("token", &v))
            .transpose()?;
        if let Some(record) = &record {
            inner.tokens.keep(&hash.0, generation, record.clone());
        }
        Ok(record)
    }

    async fn delete_token(&self, hash: &TokenHash) -> Result<(), StoreError> {
        let hash = *hash;
        self.blocking(move |inner| inner.delete_token(&hash)).await
    }

    async fn delete_user_tokens(&self, user: &UserId) -> Result<(), StoreError> {
        let user = user.clone();
        self.blocking(move |inner| inner.delete_user_tokens(&user))
            .await
    }
}
