//! `xl-center audit verify`: walks the audit log's hash chain and its signed checkpoints in a
//! stopped center's store, and says whether they are intact or which entry is broken and how.

use std::path::Path;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use xueliang_center::access::AuditLog;
use xueliang_center::running::key_path;
use xueliang_proto::signing::{SigningKey, VerifyingKey};

use super::store_args::StoreArgs;

/// The `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no audit entry was edited, removed or moved: walk the hash chain and verify
    /// its checkpoints against the center's key. Exits non-zero on a break. The center must be
    /// stopped.
    Verify {
        #[command(flatten)]
        at: StoreArgs,
    },
}

/// Runs an `audit` subcommand.
pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { at } => {
            let store = at.open()?;
            let key = center_key(&at.data_dir)?;
            let report = AuditLog::open(&store)?.verify(&key)?;
            println!("OK: {report}");
            Ok(())
        }
    }
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
