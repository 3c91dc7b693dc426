//! `xl-center key`: the center's public key (made on first use) as the line for agents' configs.

use std::path::PathBuf;

use xueliang_center::running::key_path;
use xueliang_proto::signing::SigningKey;

/// The arguments of `xl-center key`.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// Directory of the alarm store.
    #[arg(long, default_value = "/var/lib/xueliang-center")]
    data_dir: PathBuf,
}

/// Prints `center_key = "..."`.
pub fn run(args: KeyArgs) -> anyhow::Result<()> {
    let key = SigningKey::load_or_create(&key_path(&args.data_dir))?;
    println!("center_key = \"{}\"", key.public_key());
    Ok(())
}
