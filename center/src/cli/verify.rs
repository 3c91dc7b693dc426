//! `xl-center verify ALARM_ID`: proves a stored alarm with the message its agent signed, kept
//! beside it, against the key registered for the agent, in a stopped center's store.

use std::path::PathBuf;

use anyhow::bail;
use xueliang_center::fleet::AgentKeys;

use super::store_args::StoreArgs;

/// The arguments of `xl-center verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The alarm's id.
    alarm_id: String,
    #[command(flatten)]
    at: StoreArgs,
    /// The registry of agents' public keys (default: agent-keys.toml in the data directory).
    #[arg(long)]
    agent_keys: Option<PathBuf>,
}

/// Prints `verified: signed by agent X key K at T`, or fails saying what does not match.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let keys_path = args.agent_keys.unwrap_or_else(|| args.at.data_dir.join("agent-keys.toml"));
    if !keys_path.exists() {
        bail!("{} is missing: it holds the agents' public keys", keys_path.display());
    }
    let store = args.at.open()?;
    let keys = AgentKeys::open(&keys_path)?;
    let agent = store.get(&args.alarm_id)?.map(|r| r.agent_id);
    let key = agent.and_then(|a| keys.get(&a));
    let proved = store.prove(&args.alarm_id, key.as_ref())?;
    println!("verified: {proved}");
    Ok(())
}
