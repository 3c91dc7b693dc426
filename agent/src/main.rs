//! `xl-agent`: the edge agent's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use xueliang_agent::agent::Agent;
use xueliang_agent::config::AgentConfig;

#[derive(Parser)]
#[command(name = "xl-agent", version, about = "xueliang edge agent: cameras → detection → alarms over MQTT")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until interrupted.
    Run {
        /// The agent's TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and report every problem; exits non-zero if there is one.
    CheckConfig {
        /// The TOML config to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::CheckConfig { file } => AgentConfig::load(&file).map(|c| {
            println!(
                "{}: ok ({} cameras, {} zones, {} rules)",
                file.display(),
                c.cameras.len(),
                c.zones.len(),
                c.rules.len()
            );
        }).map_err(|e| (2, anyhow::Error::from(e))),
        Command::Run { config } => run(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn run(config: &std::path::Path) -> Result<(), (u8, anyhow::Error)> {
    let config = AgentConfig::load(config).map_err(|e| (2, e.into()))?;
    let agent = Agent::build(config).map_err(|e| (1, e.into()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|e| (1, e))?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        agent.run(shutdown).await
    })
    .map_err(|e| (1, e.into()))
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
