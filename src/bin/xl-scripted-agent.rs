//! `xl-scripted-agent`: an agent process that raises a scripted sequence of alarms through the
//! agent's real delivery path (sealer, durable outbox, MQTT publisher, receipts), for the fault
//! tests.
//! Alarm `i` is always the same (id `{agent}-{camera}-{i:05}`, cameras in turn), so a test
//! knows exactly what the center must end up holding, however often this process is killed:
//! after a restart it goes on from the first message not yet in the outbox (`replay-next` in
//! the data directory counts the messages raised: without events, the alarms).
//!
//! With `--event-updates N` every alarm opens an event instead, and `N` signed `EventUpdate`s
//! follow it, `--update-interval-ms` apart, through the same outbox (sent on the event topic,
//! kept until a receipt names them in `update_ids`): update `j` (id `{alarm}-u{j}`, seq `j`)
//! has `j + 1` people at its peak and lasted `j` intervals; update 1 brings a better picture;
//! update `N` ends the event. With `--clip-seconds S` the first alarm's event has a clip of S
//! seconds.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::delivery::{Links, Publisher};
use xueliang_agent::delivery::{Outbox, OutboxWriter};
use xueliang_agent::evidence::Sealer;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{
    Alarm, ClipChunk, Detection, EventUpdate, RuleKind, SCHEMA_VERSION, Severity,
};
use xueliang_testkit::scenario::h264_clip;

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
    /// A JPEG file sent as each alarm's snapshot instead of --snapshot-bytes of filler (events'
    /// updates then carry no picture).
    #[arg(long)]
    picture: Option<PathBuf>,
    /// Exit once every alarm is raised and receipted (the outbox is empty).
    #[arg(long)]
    exit_when_delivered: bool,
    /// Updates of each alarm's event, the last one its end; 0: alarms open no event.
    #[arg(long, default_value_t = 0)]
    event_updates: u32,
    /// Milliseconds from an event's alarm to its first update, and between its updates.
    #[arg(long, default_value_t = 1000)]
    update_interval_ms: u64,
    /// Seconds of a clip sent of the first alarm's event (id `{alarm}-clip`; H.264 of
    /// GStreamer's test picture, made here), through the outbox as a real agent sends one;
    /// 0: no clip.
    #[arg(long, default_value_t = 0)]
    clip_seconds: u64,
}

/// The frame size of the clip `--clip-seconds` makes.
const CLIP_SIZE: (u32, u32) = (320, 240);
/// The bytes of each of its chunks.
const CLIP_CHUNK_BYTES: usize = 64 * 1024;

/// The clip of alarm `a`'s event, `mp4` of `ms`, sealed in chunks.
fn clip(sealer: &Sealer, a: &Alarm, mp4: &[u8], ms: u64) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let description = ClipChunk {
        schema_version: SCHEMA_VERSION as i32,
        clip_id: format!("{}-clip", a.id),
        agent_id: a.agent_id.clone(),
        camera_id: a.camera_id.clone(),
        event_id: a.id.clone(),
        start_time_ms: a.event_time_ms - ms as i64 / 2,
        duration_ms: ms,
        width: CLIP_SIZE.0,
        height: CLIP_SIZE.1,
        stream: "record".into(),
        ..Default::default()
    };
    Ok(sealer.seal_clip(description, mp4, CLIP_CHUNK_BYTES)?)
}

/// What the sequence raises next: alarm `i`, or update `j` (1-based) of alarm `i`'s event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Alarm(u32),
    Update(u32, u32),
}

/// The whole sequence in the order it is raised, each step with its time (ms from the start):
/// alarm `i` at `i / per_second`, its updates each `interval_ms` after the one before. The same
/// arguments always give the same sequence, so a restarted process goes on where it stopped.
fn schedule(args: &Args) -> Vec<(u64, Step)> {
    let mut steps = Vec::new();
    for i in 0..args.count {
        let at = (f64::from(i) * 1000.0 / args.per_second) as u64;
        steps.push((at, Step::Alarm(i)));
        for j in 1..=args.event_updates {
            steps.push((at + u64::from(j) * args.update_interval_ms, Step::Update(i, j)));
        }
    }
    steps.sort();
    steps
}

/// Person `n` of an event, side by side with the others.
fn person(n: u32) -> Detection {
    let x = 0.1 + 0.15 * (n % 5) as f32;
    Detection {
        class_name: "person".into(),
        score: 0.9,
        r#box: Some(xueliang_proto::Box { x1: x, y1: 0.3, x2: x + 0.1, y2: 0.7 }),
        ..Default::default()
    }
}

/// The id of alarm `i` of `agent`'s sequence.
fn alarm_id(agent: &str, i: u32, cameras: u32) -> String {
    format!("{agent}-cam-{}-{i:05}", i % cameras)
}

/// Update `j` of the event alarm `i` opened, of `args.event_updates`: the last one ends it.
fn update(agent: &str, i: u32, j: u32, args: &Args) -> EventUpdate {
    let alarm_id = alarm_id(agent, i, args.cameras);
    let now = now_ms();
    let ended = j == args.event_updates;
    EventUpdate {
        schema_version: SCHEMA_VERSION as i32,
        id: format!("{alarm_id}-u{j}"),
        agent_id: agent.to_owned(),
        event_id: alarm_id,
        seq: j,
        time_ms: now,
        ended,
        end_time_ms: if ended { now } else { 0 },
        duration_ms: u64::from(j) * args.update_interval_ms,
        peak_count: j + 1,
        detections: (0..=j).map(person).collect(),
        snapshot_jpeg: if j == 1 && args.picture.is_none() {
            (0..args.snapshot_bytes)
                .map(|b| (b as u32 ^ i ^ 0x5a) as u8)
                .collect::<Vec<u8>>()
                .into()
        } else {
            Default::default()
        },
        ..Default::default()
    }
}

/// Alarm `i` of `agent`'s sequence, with `picture` (none: filler of `snapshot_bytes`); with
/// `opens_event`, seeing one person.
fn alarm(
    agent: &str,
    i: u32,
    cameras: u32,
    (picture, snapshot_bytes): (Option<&[u8]>, usize),
    opens_event: bool,
) -> Alarm {
    let camera = format!("cam-{}", i % cameras);
    Alarm {
        opens_event,
        detections: if opens_event { vec![person(0)] } else { Vec::new() },
        schema_version: SCHEMA_VERSION as i32,
        id: alarm_id(agent, i, cameras),
        agent_id: agent.to_owned(),
        rule_id: "replay".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: now_ms(),
        snapshot_jpeg: match picture {
            Some(jpeg) => jpeg.to_vec().into(),
            None => (0..snapshot_bytes).map(|b| (b as u32 ^ i) as u8).collect::<Vec<u8>>().into(),
        },
        camera_id: camera,
        ..Default::default()
    }
}

/// Writes `next` to the progress file `path` through a rename, so a kill mid-write never leaves
/// it empty (which would raise the whole sequence again, receipted alarms included).
fn record_progress(path: &std::path::Path, next: usize) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, next.to_string())?;
    std::fs::rename(&tmp, path)
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
    // The next step of the sequence to raise (without events: the next alarm); written after
    // the step is in the outbox (one raised again after a kill between the two is the same
    // message: the outbox and the center keep it once).
    let progress = config.data_dir.join("replay-next");
    let first: u32 =
        std::fs::read_to_string(&progress).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    // Tests that kill this process wait for this line: the outbox opened and it is running.
    eprintln!(
        "xl-scripted-agent: started: {} messages wait in the outbox; raising from step {first}",
        outbox.len()
    );

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
        // As the agent's evidence thread does: kept in memory while the outbox cannot write.
        let mut writer = OutboxWriter::new(outbox.clone());
        let steps = schedule(&args);
        let picture = match &args.picture {
            Some(path) => {
                Some(std::fs::read(path).with_context(|| format!("--picture {}", path.display()))?)
            }
            None => None,
        };
        let clip_ms = args.clip_seconds * 1000;
        let mp4 = match clip_ms {
            0 => Vec::new(),
            ms => h264_clip(&config.data_dir.join("clip.mp4"), CLIP_SIZE, ms)
                .map_err(anyhow::Error::msg)?,
        };
        let first = (first as usize).min(steps.len());
        let (offset, started) =
            (steps.get(first).map_or(0, |(at, _)| *at), tokio::time::Instant::now());
        for (n, (at, step)) in steps.iter().enumerate().skip(first) {
            tokio::time::sleep_until(started + Duration::from_millis(at - offset)).await;
            let (sealed, clip_of) = match *step {
                Step::Alarm(i) => {
                    let opens = args.event_updates > 0;
                    let snapshot = (picture.as_deref(), args.snapshot_bytes);
                    let a = alarm(&config.agent_id, i, args.cameras, snapshot, opens);
                    let chunks = match (i, clip_ms) {
                        (0, ms) if ms > 0 => Some((a.id.clone(), clip(&sealer, &a, &mp4, ms)?)),
                        _ => None,
                    };
                    (sealer.seal(a, config.snapshot.send_after_bytes)?, chunks)
                }
                Step::Update(i, j) => {
                    (sealer.seal_update(update(&config.agent_id, i, j, &args))?, None)
                }
            };
            let what = if matches!(step, Step::Alarm(_)) { "alarm" } else { "event update" };
            if writer.write(sealed, what) {
                let _ = wake_tx.try_send(());
            }
            // After its alarm: the outbox sends a clip once its event's alarm is receipted.
            if let Some((event_id, chunks)) = clip_of {
                outbox.push_clip(&event_id, &chunks)?;
            }
            // Progress only once written: one kept in memory is raised again after a kill.
            if writer.kept() == 0
                && let Err(e) = record_progress(&progress, n + 1)
            {
                eprintln!("xl-scripted-agent: cannot record progress: {e}");
            }
        }
        eprintln!(
            "xl-scripted-agent: all {} alarms raised ({} updates each)",
            args.count, args.event_updates
        );
        if args.exit_when_delivered {
            while writer.kept() > 0 || !outbox.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if writer.retry() {
                    let _ = wake_tx.try_send(());
                }
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
