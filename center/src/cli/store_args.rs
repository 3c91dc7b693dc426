//! Where the commands that read a center's records find them: the data directory and the
//! store (`--store`, as `xl-center serve` takes it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use xueliang_center::store::{Backend, Store, StoreError};

/// The data directory and the store of a center.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Directory of the center's files: the embedded store, its key, the clips.
    #[arg(long, alias = "data", default_value = "/var/lib/xueliang-center")]
    pub data_dir: PathBuf,
    /// Where the records are: `sled` (embedded in the data directory) or a PostgreSQL
    /// database, `postgres://user:password@host:port/database` (best given in the environment,
    /// where `ps` does not show the password).
    #[arg(long, env = "XL_STORE", hide_env_values = true, default_value = "sled")]
    pub store: Backend,
}

impl StoreArgs {
    /// Opens the store. An embedded one must not be held by a running center (sled lets one
    /// process open it); one that is stopping is waited for up to 3 s. A PostgreSQL one may be
    /// read while centers run.
    pub fn open(&self) -> anyhow::Result<Store> {
        let dir = &self.data_dir;
        if self.store == Backend::Embedded && !dir.join("db").exists() {
            bail!(
                "{} holds no alarm store (give --data-dir, or --store for PostgreSQL)",
                dir.display()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match Store::open_with(&self.store, dir) {
                Err(StoreError::Sled(sled::Error::Io(io))) if is_locked(&io) => {
                    if Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    bail!(
                        "the store in {} is locked by a running xl-center (sled lets one process open it): stop the center first, or use GET /api/export as an admin",
                        dir.display()
                    );
                }
                r => return Ok(r?),
            }
        }
    }
}

/// Whether opening the store failed because a running center holds it.
fn is_locked(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}
