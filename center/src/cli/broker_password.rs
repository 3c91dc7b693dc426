//! `xl-center broker-password AGENT`: a new password for an agent at the embedded broker, as
//! the two lines to paste: the agent's config, and the key registry's hash of it.

use xueliang_center::fleet::PasswordHash;

/// The arguments of `xl-center broker-password`.
#[derive(clap::Args)]
pub struct BrokerPasswordArgs {
    /// The agent id (its username at the broker).
    agent: String,
}

/// Prints the password's two lines.
pub fn run(args: BrokerPasswordArgs) -> anyhow::Result<()> {
    let mut secret = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| anyhow::anyhow!("no randomness for a password"))?;
    let password =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    println!("# in the agent's config, under [mqtt]:\npassword = \"{password}\"");
    println!(
        "# in the center's agent-keys.toml, under [passwords]:\n{} = \"{}\"",
        args.agent,
        PasswordHash::new(&password)
    );
    Ok(())
}
