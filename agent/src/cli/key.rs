//! `xl-agent key`: this box's public key, as the line for the center's `agent-keys.toml`.

use std::path::PathBuf;

use xueliang_agent::config::AgentConfig;
use xueliang_agent::evidence::Sealer;

use super::{Failure, failed};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The agent's TOML config (its agent_id and data_dir).
    #[arg(long, short)]
    config: PathBuf,
}

pub(super) fn run(args: Args) -> Result<(), Failure> {
    let c = AgentConfig::load(&args.config).map_err(|e| (2, e.into()))?;
    let sealer = Sealer::open(&c.data_dir).map_err(failed)?;
    println!("{} = \"{}\"", c.agent_id, sealer.public_key());
    Ok(())
}
