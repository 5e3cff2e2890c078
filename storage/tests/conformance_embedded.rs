//! The conformance suite on the embedded store, each behaviour in a fresh
//! temporary directory; reopening opens the same directory again.

use async_trait::async_trait;
use axon_core::StoreError;
use axon_storage::conformance::StoreFactory;
use axon_storage::{EmbeddedOptions, EmbeddedStore};

struct TempStore(tempfile::TempDir);

#[async_trait]
impl StoreFactory for TempStore {
    type Store = EmbeddedStore;

    async fn open(&self) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open(self.0.path(), EmbeddedOptions::default())
    }
}

fn fresh() -> TempStore {
    TempStore(tempfile::tempdir().expect("a temporary directory"))
}

axon_storage::conformance_tests!(fresh);
