//! `xl-agent enroll`: the one-time token redeemed at the center, the config written.

use std::path::PathBuf;

use anyhow::Context;
use xueliang_agent::tools::enroll::EnrollOptions;

use super::{Failure, failed};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The center's HTTP address, e.g. http://10.20.0.2:8080.
    #[arg(long)]
    center: String,
    /// The enrolment token (XXXXX-XXXXX-XXXXX-XXXXX).
    #[arg(long)]
    token: String,
    /// The fingerprint of the center's key, from the command the county gives
    /// (xxxx-xxxx-xxxx-xxxx): a center whose key does not match is refused before anything is
    /// written.
    #[arg(long, required_unless_present = "insecure")]
    center_key_fingerprint: Option<String>,
    /// For a lab: enrol with whichever center answers, without checking its key.
    #[arg(long)]
    insecure: bool,
    /// The county CA (PEM) that signed the center's HTTPS certificate, e.g.
    /// /etc/xueliang/ca.pem; also set as mqtt.tls_ca when the broker is mqtts://.
    #[arg(long)]
    center_ca: Option<PathBuf>,
    /// The config file to write (edited if it exists).
    #[arg(long, short, default_value = "/etc/xueliang/agent.toml")]
    config: PathBuf,
    /// The data directory holding this box's key (default: the config's, else
    /// /var/lib/xueliang).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub(super) fn run(args: Args) -> Result<(), Failure> {
    let Args { center, token, center_key_fingerprint, insecure, center_ca, config, data_dir } =
        args;
    if insecure {
        eprintln!("warning: --insecure: this box trusts whichever center answers at {center}");
    }
    let options =
        EnrollOptions { center, token, center_key_fingerprint, center_ca, config, data_dir };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(failed)?;
    let enrolled = runtime.block_on(options.run()).map_err(failed)?;
    println!("enrolled as {} with the center at {}", enrolled.agent_id, options.center);
    println!(
        "broker            {}{}",
        enrolled.mqtt_url,
        if enrolled.mqtt_password.is_some() { " (with this box's own password)" } else { "" }
    );
    println!("config            {} (mode 0640)", options.config.display());
    if enrolled.config_message.is_none() {
        println!("cameras           none yet: add them to the config, or the county pushes them");
    } else {
        println!(
            "cameras and rules as the county configured them (its config version {})",
            enrolled.config_version
        );
    }
    println!(
        "next              xl-agent check-config {0} && systemctl restart xl-agent",
        options.config.display()
    );
    Ok(())
}
