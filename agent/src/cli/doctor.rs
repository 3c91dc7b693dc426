//! `xl-agent doctor`: every check of what breaks on site, one line each; exit 1 if one failed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::tools::doctor;

use super::{Failure, failed};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The agent's TOML config.
    #[arg(long, short, default_value = "/etc/xueliang/agent.toml")]
    config: PathBuf,
    /// Seconds to watch each camera.
    #[arg(long, default_value_t = 3.0)]
    camera_seconds: f32,
}

pub(super) fn run(args: Args) -> Result<(), Failure> {
    // Unchecked: a broken config is one failed check among the others, not the end.
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))
        .map_err(|e| (2, e))?;
    let config = AgentConfig::parse_unchecked(&text, &args.config).map_err(|e| (2, e.into()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(failed)?;
    let watch = Duration::from_secs_f32(args.camera_seconds.max(0.5));
    let checks = runtime.block_on(doctor::run(&config, watch));
    for c in &checks {
        println!("{}", c.line());
    }
    let failed = checks.iter().filter(|c| c.outcome == doctor::Outcome::Fail).count();
    if failed == 0 {
        println!("all {} checks passed", checks.len());
        Ok(())
    } else {
        Err((1, anyhow::anyhow!("{failed} of {} checks failed", checks.len())))
    }
}
