//! Axon's stores: implementations of the storage traits of `axon-core`
//! ([`TimelineStore`](axon_core::store::TimelineStore),
//! [`AccountStore`](axon_core::store::AccountStore),
//! [`ReceiptStore`](axon_core::store::ReceiptStore),
//! [`AccountDataStore`](axon_core::store::AccountDataStore)).
//!
//! # Layout
//!
//! - [`embedded`] — [`EmbeddedStore`]: the default store, one directory on
//!   local disk, nothing to install. Built on fjall (an LSM tree with a
//!   write-ahead journal); why fjall and not redb is measured in
//!   `docs/storage.md`. Appends are atomic batches, made durable by an
//!   fsync that concurrent shard writers share.
//! - [`conformance`] (feature `conformance`) — the behaviour every store
//!   must show, one async function per behaviour, run against each store by
//!   [`conformance_tests!`]. The embedded store runs it in
//!   `tests/conformance_embedded.rs`.
//!
//! To come: `scylla` (timelines and everything durable across machines) and
//! `redis` (presence, typing, the cross-node bus and shard leases), each
//! passing the same conformance suite.

pub mod embedded;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use embedded::{Durability, EmbeddedOptions, EmbeddedStore};
