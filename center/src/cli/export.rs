//! `xl-center export`: every alarm record as JSON Lines, oldest first, from a stopped center's
//! store (for backups and statistics).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use xueliang_center::store::{AlarmFilter, Store, StoreError, parse_time};

/// The arguments of `xl-center export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Directory of the alarm store.
    #[arg(long, default_value = "/var/lib/xueliang-center")]
    data_dir: PathBuf,
    /// Only alarms at or after this time (UTC ms or RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Runs the export.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    export(&args.data_dir, args.from.as_deref(), args.output.as_deref())
}

/// Whether opening the store failed because a running center holds it.
pub(super) fn is_locked(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}

/// Opens the store, waiting up to 3 s for a center that is stopping to let go of it.
pub(super) fn open_when_free(data_dir: &Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match Store::open(data_dir) {
            Err(StoreError::Sled(sled::Error::Io(io)))
                if is_locked(&io) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

fn export(data_dir: &Path, from: Option<&str>, output: Option<&Path>) -> anyhow::Result<()> {
    let from_ms = from
        .map(|t| parse_time(t).ok_or_else(|| anyhow::anyhow!("--from {t:?} is neither UTC milliseconds nor RFC 3339 (2026-07-01T18:00:00+08:00)")))
        .transpose()?;
    if !data_dir.join("db").exists() {
        bail!("{} holds no alarm store (give --data-dir)", data_dir.display());
    }
    let store = open_when_free(data_dir).map_err(|e| match e {
        StoreError::Sled(sled::Error::Io(io)) if is_locked(&io) => anyhow::anyhow!(
            "the store in {} is in use by a running xl-center: stop it first, or use GET /api/export as an admin",
            data_dir.display()
        ),
        e => e.into(),
    })?;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let filter = AlarmFilter { from_ms, ..Default::default() };
    let mut count = 0u64;
    store.for_each(&filter, |r| {
        serde_json::to_writer(&mut out, &r)?;
        count += 1;
        out.write_all(b"\n")
    })?;
    out.flush()?;
    eprintln!("exported {count} alarms");
    Ok(())
}
