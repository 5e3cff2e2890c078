//! [`DirectoryStore`]: room aliases and the public room directory.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::ids::{RoomId, UserId};

/// One alias (`#name:server`) and the room it points to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The full alias, `#localpart:server_name`.
    pub alias: String,
    /// The room it names.
    pub room_id: RoomId,
    /// Who created it (may delete it regardless of power levels).
    pub creator: UserId,
}

/// Aliases and which rooms are published in the public directory.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Creates an alias; [`StoreError::Conflict`] if it is taken.
    async fn create_alias(&self, record: &AliasRecord) -> Result<(), StoreError>;
    /// One alias.
    async fn alias(&self, alias: &str) -> Result<Option<AliasRecord>, StoreError>;
    /// Deletes an alias; [`StoreError::NotFound`] if there is none.
    async fn delete_alias(&self, alias: &str) -> Result<(), StoreError>;
    /// Every alias of a room, in alias order.
    async fn room_aliases(&self, room: &RoomId) -> Result<Vec<AliasRecord>, StoreError>;
    /// Publishes a room in the directory, or takes it out.
    async fn set_published(&self, room: &RoomId, published: bool) -> Result<(), StoreError>;
    /// Whether a room is published.
    async fn is_published(&self, room: &RoomId) -> Result<bool, StoreError>;
    /// Up to `limit` published rooms with ids after `after`, in id order.
    async fn published_rooms(
        &self,
        after: Option<&RoomId>,
        limit: usize,
    ) -> Result<Vec<RoomId>, StoreError>;
}
