//! [`DataDir`]: the data directory, its layout, and the lock that keeps two
//! processes (a running server and an `axon user` command, say) from opening
//! the same store.
//!
//! ```text
//! <data_dir>/
//!   axon.lock       exclusive lock while a process uses the directory; holds its pid
//!   layout.toml     settings fixed for the life of the directory (sequencer.shards)
//!   store/          the embedded store
//!   tls/            the generated development certificate and key
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const LOCK_FILE: &str = "axon.lock";
const LAYOUT_FILE: &str = "layout.toml";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error(
        "the data directory {} is in use by a running axon{}; stop it first",
        .path.display(),
        .pid.as_deref().map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The pid recorded by the holder, if readable.
        pid: Option<String>,
    },
    /// The shard count differs from the one the directory was created with.
    #[error(
        "sequencer.shards is {configured} but the data directory {} was created with {recorded} shards; \
         the shard count is fixed for the life of a data directory (set sequencer.shards = {recorded}, \
         or start with a new data directory)",
        .path.display()
    )]
    ShardsMismatch {
        /// The directory.
        path: PathBuf,
        /// What the directory was created with.
        recorded: u16,
        /// What the configuration asks for.
        configured: u16,
    },
    /// `layout.toml` cannot be parsed.
    #[error("{}: damaged layout file: {message}", .path.display())]
    BadLayout {
        /// The layout file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Settings recorded in the data directory on first start.
#[derive(Debug, Serialize, Deserialize)]
struct Layout {
    /// `sequencer.shards` the directory was created with.
    shards: u16,
}

/// An open, locked data directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    // Held for the lock; never read.
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed, makes its path absolute and takes
    /// the lock.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        std::fs::create_dir_all(path).map_err(io_err(path))?;
        let path = std::fs::canonicalize(path).map_err(io_err(path))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let pid = lock
                    .read_to_string(&mut pid)
                    .ok()
                    .map(|_| pid.trim().to_owned());
                return Err(DataDirError::InUse {
                    path,
                    pid: pid.filter(|p| !p.is_empty()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        // Best effort: the pid only makes the "in use" message friendlier.
        let _ = lock
            .set_len(0)
            .and_then(|()| write!(lock, "{}", std::process::id()));
        Ok(Self { path, _lock: lock })
    }

    /// The absolute path of the directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the embedded store lives.
    pub fn store_dir(&self) -> PathBuf {
        self.path.join("store")
    }

    /// Where the development certificate is generated.
    pub fn tls_dir(&self) -> PathBuf {
        self.path.join("tls")
    }

    /// Records `shards` on first start; afterwards refuses any other value.
    pub fn check_shards(&self, shards: u16) -> Result<(), DataDirError> {
        let file = self.path.join(LAYOUT_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let layout: Layout =
                    toml::from_str(&text).map_err(|e| DataDirError::BadLayout {
                        path: file.clone(),
                        message: e.to_string(),
                    })?;
                if layout.shards != shards {
                    return Err(DataDirError::ShardsMismatch {
                        path: self.path.clone(),
                        recorded: layout.shards,
                        configured: shards,
                    });
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = format!(
                    "# Written by axon on first start. Do not edit: these settings are fixed\n\
                     # for the life of this data directory.\nshards = {shards}\n"
                );
                write_synced(&file, text.as_bytes()).map_err(io_err(&file))
            }
            Err(e) => Err(io_err(&file)(e)),
        }
    }
}

/// Writes a small file durably: temp file, fsync, rename.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_while_the_first_is_held() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDir::open(tmp.path()).unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(err, DataDirError::InUse { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("in use by a running axon"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(first);
        DataDir::open(tmp.path()).unwrap();
    }

    #[test]
    fn shards_are_fixed_after_first_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.check_shards(16).unwrap();
        dir.check_shards(16).unwrap();
        let err = dir.check_shards(8).unwrap_err();
        assert!(
            matches!(
                err,
                DataDirError::ShardsMismatch {
                    recorded: 16,
                    configured: 8,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("sequencer.shards"));
    }
}
