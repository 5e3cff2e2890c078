//! Accounts, devices, tokens, receipts and account data.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::accounts::TokenHash;
use crate::ids::{DeviceId, EventId, RoomId, UserId};

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's id.
    pub user_id: UserId,
    /// Argon2id hash in PHC string form; `None` for accounts without a
    /// password (e.g. created for a bot with a token only).
    pub password_hash: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar URL (`mxc://`).
    pub avatar_url: Option<String>,
    /// Server administrator.
    pub admin: bool,
    /// Deactivated accounts cannot log in; their id is never reused.
    pub deactivated: bool,
    /// Milliseconds since the Unix epoch.
    pub created_ts: u64,
}

/// A device: every token belongs to one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Owner.
    pub user_id: UserId,
    /// Device id, unique per user.
    pub device_id: DeviceId,
    /// Human-readable name.
    pub display_name: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ts: u64,
}

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// Authenticates requests on every face.
    Access,
    /// Exchanged for a new access token.
    Refresh,
}

/// A token, stored by the hash of its secret: the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// SHA-256 of the secret.
    pub hash: TokenHash,
    /// Access or refresh.
    pub kind: TokenKind,
    /// Owner.
    pub user_id: UserId,
    /// Device it belongs to.
    pub device_id: DeviceId,
    /// Milliseconds since the Unix epoch.
    pub created_ts: u64,
    /// Expiry in milliseconds since the Unix epoch; `None` never expires.
    pub expires_ts: Option<u64>,
}

/// Users, devices and tokens.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates a user; [`StoreError::Conflict`] if the id is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Replaces an existing user; [`StoreError::NotFound`] if there is none.
    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// One user.
    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Up to `limit` users with ids after `after`, in id order.
    async fn users(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError>;

    /// Creates or replaces a device.
    async fn put_device(&self, device: &DeviceRecord) -> Result<(), StoreError>;
    /// One device.
    async fn device(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// All devices of a user.
    async fn devices(&self, user: &UserId) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Deletes a device and every token of it.
    async fn delete_device(&self, user: &UserId, device: &DeviceId) -> Result<(), StoreError>;

    /// Stores a token.
    async fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// Looks a token up by the hash of its secret.
    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;
    /// Deletes one token.
    async fn delete_token(&self, hash: &TokenHash) -> Result<(), StoreError>;
    /// Deletes every token of a user (logout everywhere, deactivation).
    async fn delete_user_tokens(&self, user: &UserId) -> Result<(), StoreError>;
}

/// A read receipt or private read marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Room.
    pub room_id: RoomId,
    /// Reader.
    pub user_id: UserId,
    /// `m.read`, `m.read.private`, ...
    pub receipt_type: String,
    /// Thread, `None` for unthreaded.
    pub thread_id: Option<String>,
    /// The event read up to.
    pub event_id: EventId,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
}

/// Read receipts: the latest one per (room, user, type, thread).
#[async_trait]
pub trait ReceiptStore: Send + Sync + 'static {
    /// Stores a receipt, replacing the previous one for the same key.
    async fn put_receipt(&self, receipt: &Receipt) -> Result<(), StoreError>;
    /// Every receipt in a room.
    async fn receipts(&self, room: &RoomId) -> Result<Vec<Receipt>, StoreError>;
}

/// One piece of account data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDataRecord {
    /// `None` for global account data.
    pub room_id: Option<RoomId>,
    /// Event type, e.g. `m.direct`.
    pub data_type: String,
    /// JSON object, as bytes.
    pub content: Bytes,
}

/// Per-user account data, global and per room.
#[async_trait]
pub trait AccountDataStore: Send + Sync + 'static {
    /// Stores account data, replacing earlier content of the same type.
    async fn put_account_data(
        &self,
        user: &UserId,
        record: &AccountDataRecord,
    ) -> Result<(), StoreError>;
    /// One piece of account data.
    async fn account_data(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
        data_type: &str,
    ) -> Result<Option<Bytes>, StoreError>;
    /// All account data of a user.
    async fn all_account_data(&self, user: &UserId) -> Result<Vec<AccountDataRecord>, StoreError>;
}
