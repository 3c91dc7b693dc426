//! `xl-scripted-agent`: an agent process that raises a scripted sequence of alarms through the
//! agent's real delivery path (sealer, durable outbox, MQTT publisher, receipts), for the fault
//! tests.
//! Alarm `i` is always the same (id `{agent}-{camera}-{i:05}`, cameras in turn), so a test
//! knows exactly what the center must end up holding, however often this process is killed:
//! after a restart it goes on from the first alarm not yet in the outbox.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::delivery::Outbox;
use xueliang_agent::delivery::{Links, Publisher};
use xueliang_agent::evidence::Sealer;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, RuleKind, SCHEMA_VERSION, Severity};

#[derive(Parser)]
#[command(
    name = "xl-scripted-agent",
    about = "Replay a fixed sequence of alarms through the agent's outbox and publisher"
)]
struct Args {
    /// The agent config (agent id, data directory, broker).
    #[arg(long)]
    config: PathBuf,
    /// Alarms in the sequence.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Alarms raised per second.
    #[arg(long, default_value_t = 100.0)]
    per_second: f64,
    /// Cameras the alarms take turns on.
    #[arg(long, default_value_t = 2)]
    cameras: u32,
    /// Bytes of each alarm's snapshot.
    #[arg(long, default_value_t = 20_000)]
    snapshot_bytes: usize,
    /// Exit once every alarm is raised and receipted (the outbox is empty).
    #[arg(long)]
    exit_when_delivered: bool,
}

/// Alarm `i` of `agent`'s sequence.
fn alarm(agent: &str, i: u32, cameras: u32, snapshot_bytes: usize) -> Alarm {
    let camera = format!("cam-{}", i % cameras);
    Alarm {
        schema_version: SCHEMA_VERSION as i32,
        id: format!("{agent}-{camera}-{i:05}"),
        agent_id: agent.to_owned(),
        rule_id: "replay".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: now_ms(),
        snapshot_jpeg: (0..snapshot_bytes)
            .map(|b| (b as u32 ^ i) as u8)
            .collect::<Vec<u8>>()
            .into(),
        camera_id: camera,
        ..Default::default()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = AgentConfig::load(&args.config)?;
    let outbox = Outbox::open(&config.data_dir.join("outbox"), (&config.outbox).into())?;
    let sealer = Sealer::open(&config.data_dir)?;
    let publisher = Publisher::new(&config.mqtt, &config.agent_id).map_err(anyhow::Error::msg)?;
    // The next alarm to raise; written after the alarm is in the outbox (an alarm raised again
    // after a kill between the two is the same alarm: the outbox and the center keep it once).
    let progress = config.data_dir.join("replay-next");
    let first: u32 =
        std::fs::read_to_string(&progress).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let (wake_tx, wake) = mpsc::channel(1);
        let (_health_tx, health) = mpsc::channel(1);
        let (configs, _configs_rx) = mpsc::channel(1);
        let (_acks_tx, acks) = mpsc::channel(1);
        let (_version_tx, config_version) = watch::channel(0);
        let links = Links { wake, health, configs, acks, config_version };
        let publishing = tokio::spawn(publisher.run(outbox.clone(), links, shutdown.clone()));
        let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / args.per_second));
        for i in first..args.count {
            pace.tick().await;
            let a = alarm(&config.agent_id, i, args.cameras, args.snapshot_bytes);
            outbox.push(&sealer.seal(a, config.snapshot.send_after_bytes)?)?;
            std::fs::write(&progress, (i + 1).to_string()).context("cannot record progress")?;
            let _ = wake_tx.try_send(());
        }
        eprintln!("xl-scripted-agent: all {} alarms raised", args.count);
        if args.exit_when_delivered {
            while !outbox.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            eprintln!("xl-scripted-agent: every alarm receipted");
        } else {
            tokio::signal::ctrl_c().await?;
        }
        shutdown.cancel();
        let _ = publishing.await;
        anyhow::Ok(())
    })
}
