//! Opens the configured store: the one place that knows which backends exist.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axon_core::Store;
use axon_storage::{Durability, EmbeddedOptions, EmbeddedStore};

use crate::config::{DurabilityMode, StorageBackend, StorageConfig};
use crate::data_dir::DataDir;

/// What [`open`] opened, for the startup log.
#[derive(Clone, Debug)]
pub struct StoreInfo {
    /// e.g. `embedded (fjall) at /var/lib/axon/store, fsync`.
    pub description: String,
}

/// Opens the store of `config` in `data_dir` (on a blocking thread: opening
/// replays the journal).
pub async fn open(
    config: &StorageConfig,
    data_dir: &DataDir,
) -> anyhow::Result<(Arc<dyn Store>, StoreInfo)> {
    match config.backend {
        StorageBackend::Embedded => {
            let dir = data_dir.store_dir();
            let durability = match config.durability {
                DurabilityMode::Fsync => Durability::Fsync,
                DurabilityMode::Buffered => Durability::Buffered {
                    flush_interval: Duration::from_millis(config.flush_interval_ms),
                },
            };
            let options = EmbeddedOptions {
                durability,
                ..EmbeddedOptions::default()
            };
            let open_dir = dir.clone();
            let store =
                tokio::task::spawn_blocking(move || EmbeddedStore::open(&open_dir, options))
                    .await
                    .context("the store-opening task failed")?
                    .with_context(|| format!("opening the embedded store in {}", dir.display()))?;
            let mode = match config.durability {
                DurabilityMode::Fsync => "fsync on every commit".to_owned(),
                DurabilityMode::Buffered => {
                    format!("buffered, fsync every {} ms", config.flush_interval_ms)
                }
            };
            let description = format!("embedded at {} ({mode})", dir.display());
            Ok((Arc::new(store), StoreInfo { description }))
        }
    }
}
