//! `xl-center`: the county center's command line. Each subcommand is a file of `cli/` (its
//! arguments and what it does); this file parses the command line, sets up logging and
//! dispatches.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xueliang_center::store::StoreError;

#[derive(Parser)]
#[command(
    name = "xl-center",
    version,
    about = "xueliang county center: alarm ingest, store and API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per process: the size of `serve`'s arguments does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Print the center's public key (made on first use, in the data directory) as the line
    /// for agents' configs, under [mqtt].
    Key(cli::key::KeyArgs),
    /// Make a password for an agent at the embedded broker: prints the line for the agent's
    /// config ([mqtt] password) and the line for the key registry's [passwords].
    BrokerPassword(cli::broker_password::BrokerPasswordArgs),
    /// Run the center until interrupted.
    Serve(cli::serve::ServeArgs),
    /// Manage the users who log in to the API and console (users.toml in the data directory).
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// Write every alarm record as JSON Lines, oldest first (for backups and statistics). On
    /// the embedded store the center must be stopped; while it runs, use `GET /api/export` as an
    /// admin.
    Export(cli::export::ExportArgs),
    /// Copy the records from one store into another, empty one (from the embedded store to
    /// PostgreSQL, or back), then compare both tree by tree (the center must be stopped).
    CopyStore(cli::copy_store::CopyStoreArgs),
    /// Check the audit log's hash chain and signed checkpoints (on the embedded store, the center
    /// must be stopped).
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Prove a stored alarm: its agent's signature over the message kept beside it, checked
    /// against the agent's registered key, and the stored record against what was signed (on
    /// the embedded store the center must be stopped; while it runs, use
    /// GET /api/alarms/{id}/proof).
    Verify(cli::verify::VerifyArgs),
    /// Save the alarm records that can still be read from a corrupt store (one sled refuses
    /// to open), as JSON Lines like `export`; the store is only read (the center must be
    /// stopped).
    Salvage(cli::salvage::SalvageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // rumqttd logs every connection at info: a county's boxes would drown the center's own log.
    xueliang_service::logging::init("info,rumqttd=warn");
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A corrupt store gets its own exit code, which the unit does not restart on, and
            // what to do about it.
            let corrupt = e.chain().find_map(|cause| match cause.downcast_ref::<StoreError>() {
                Some(StoreError::CorruptDatabase { dir, .. }) => Some(dir.clone()),
                _ => None,
            });
            match corrupt {
                Some(dir) => {
                    eprintln!("{}", cli::salvage::advice(&dir));
                    ExitCode::from(cli::salvage::CORRUPT_STORE_EXIT)
                }
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Key(args) => cli::key::run(args),
        Command::BrokerPassword(args) => cli::broker_password::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::User(command) => cli::user::run(command),
        Command::Export(args) => cli::export::run(args),
        Command::CopyStore(args) => cli::copy_store::run(args),
        Command::Audit(command) => cli::audit::run(command),
        Command::Verify(args) => cli::verify::run(args),
        Command::Salvage(args) => cli::salvage::run(args),
    }
}
