//! The storage traits the rest of Axon implements (`axon-storage` holds the
//! embedded and ScyllaDB implementations).
//!
//! - [`TimelineStore`] — durable, atomic batch appends of sequenced events,
//!   reads by `seq` range and by event id, the shard stream, transaction ids,
//!   and the current state of each room, which a store keeps up to date in the
//!   same atomic write as the events.
//! - [`AccountStore`] — users, devices and hashed access tokens.
//! - [`ReceiptStore`] — read receipts.
//! - [`AccountDataStore`] — per-user global and per-room account data.
//! - [`DirectoryStore`] — room aliases and the public room directory.
//!
//! [`Store`] is all of them together, which is what the server wires up.
//!
//! Every method is `async` so that network-backed stores fit; embedded
//! implementations may answer point reads inline and move durable writes to a
//! blocking thread.

mod accounts;
mod directory;
mod error;
mod timeline;

pub use accounts::{
    AccountDataRecord, AccountDataStore, AccountStore, DeviceRecord, Receipt, ReceiptStore,
    TokenKind, TokenRecord, UserRecord,
};
pub use directory::{AliasRecord, DirectoryStore};
pub use error::StoreError;
pub use timeline::{CommitBatch, Direction, ShardRead, TimelineStore, TxnKey, TxnRecord};

/// Every storage trait at once: what a server needs of its store.
pub trait Store:
    TimelineStore + AccountStore + ReceiptStore + AccountDataStore + DirectoryStore
{
}

impl<T: TimelineStore + AccountStore + ReceiptStore + AccountDataStore + DirectoryStore> Store
    for T
{
}
