//! `xl-center audit verify`: walks the audit log's hash chain and its signed checkpoints in a
//! stopped center's store, and says whether they are intact or which entry is broken and how.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Subcommand;
use xueliang_center::access::AuditLog;
use xueliang_center::running::key_path;
use xueliang_center::store::{Store, StoreError};
use xueliang_proto::signing::{SigningKey, VerifyingKey};

use super::export::{is_locked, open_when_free};

/// The `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no audit entry was edited, removed or moved: walk the hash chain and verify
    /// its checkpoints against the center's key. Exits non-zero on a break. The center must be
    /// stopped.
    Verify {
        /// Directory of the alarm store.
        #[arg(long, alias = "data", default_value = "/var/lib/xueliang-center")]
        data_dir: PathBuf,
    },
}

/// Runs an `audit` subcommand.
pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => {
            let store = open_stopped(&data_dir)?;
            let key = center_key(&data_dir)?;
            let report = AuditLog::open(&store)?.verify(&key)?;
            println!("OK: {report}");
            Ok(())
        }
    }
}

/// The store in `data_dir`, which a running center must not hold.
pub(super) fn open_stopped(data_dir: &Path) -> anyhow::Result<Store> {
    if !data_dir.join("db").exists() {
        bail!("{} holds no alarm store (give --data-dir)", data_dir.display());
    }
    open_when_free(data_dir).map_err(|e| match e {
        StoreError::Sled(sled::Error::Io(io)) if is_locked(&io) => anyhow::anyhow!(
            "the store in {} is locked by a running xl-center (sled lets one process open it): stop the center first",
            data_dir.display()
        ),
        e => e.into(),
    })
}

/// The public half of the center's key in `data_dir`, which signs the audit checkpoints.
fn center_key(data_dir: &Path) -> anyhow::Result<VerifyingKey> {
    let path = key_path(data_dir);
    if !path.exists() {
        bail!("{} is missing: the center's key signs the audit checkpoints", path.display());
    }
    let key = SigningKey::load_or_create(&path)?;
    key.public_key().parse().with_context(|| format!("the key in {}", path.display()))
}
