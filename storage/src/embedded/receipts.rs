//! [`ReceiptStore`] for the embedded store: the latest receipt per
//! (room, user, type, thread), keyed so a room's receipts are one range.

use async_trait::async_trait;
use axon_core::StoreError;
use axon_core::ids::RoomId;
use axon_core::store::{Receipt, ReceiptStore};

use fjall::Readable;

use super::{EmbeddedStore, codec, keys, kv};

/// `room\0 user\0 type thread`, the thread as `0x00` (none) or `0x01 text`.
fn receipt_key(r: &Receipt) -> Vec<u8> {
    let key = keys::KeyBuf::new()
        .id(r.room_id.as_str())
        .id(r.user_id.as_str())
        .text(&r.receipt_type);
    match &r.thread_id {
        None => key.byte(0),
        Some(thread) => key.byte(1).text(thread),
    }
    .build()
}

#[async_trait]
impl ReceiptStore for EmbeddedStore {
    async fn put_receipt(&self, receipt: &Receipt) -> Result<(), StoreError> {
        let key = receipt_key(receipt);
        let value = codec::encode(receipt)?;
        self.blocking(move |inner| {
            let mut wb = inner.db.batch();
            wb.insert(&inner.ks.receipts, key, value);
            inner.write(wb)
        })
        .await
    }

    async fn receipts(&self, room: &RoomId) -> Result<Vec<Receipt>, StoreError> {
        let prefix = keys::room(room);
        self.inline(move |inner| {
            inner
                .view()
                .prefix(&inner.ks.receipts, prefix)
                .map(|g| kv(g).and_then(|(_, v)| codec::decode("receipt", &v)))
                .collect()
        })
    }
}
