//! `xl-agent run`: the agent until Ctrl-C or SIGTERM (systemd's stop).

use std::path::PathBuf;

use anyhow::Context;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::runtime::Agent;
use xueliang_service::shutdown;

use super::{Failure, failed};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The agent's TOML config.
    #[arg(long, short)]
    config: PathBuf,
}

pub(super) fn run(args: Args) -> Result<(), Failure> {
    let config = AgentConfig::load(&args.config).map_err(|e| (2, e.into()))?;
    let agent = Agent::build(config).map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(failed)?;
    runtime.block_on(async { agent.run(shutdown::on_signal()).await }).map_err(failed)
}
