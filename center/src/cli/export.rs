//! `xl-center export`: every alarm record as JSON Lines, oldest first, from a stopped center's
//! store (for backups and statistics).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use xueliang_center::store::{AlarmFilter, parse_time};

use super::store_args::StoreArgs;

/// The arguments of `xl-center export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    at: StoreArgs,
    /// Only alarms at or after this time (UTC ms or RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Runs the export.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    export(&args.at, args.from.as_deref(), args.output.as_deref())
}

fn export(at: &StoreArgs, from: Option<&str>, output: Option<&Path>) -> anyhow::Result<()> {
    let from_ms = from
        .map(|t| parse_time(t).ok_or_else(|| anyhow::anyhow!("--from {t:?} is neither UTC milliseconds nor RFC 3339 (2026-07-01T18:00:00+08:00)")))
        .transpose()?;
    let store = at.open()?;
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
