//! `xl-agent replay`: a recording through the detector and one camera's rules on the
//! recording's own clock, the events and line counts printed, to tune rules on site footage.

use std::path::{Path, PathBuf};

use anyhow::Context;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::config::schedule::time_zone;
use xueliang_agent::delivery::PushedConfigs;
use xueliang_agent::detect::{Detector, DetectorOptions, ort_library};
use xueliang_agent::tools::replay::ReplayOptions;

use super::{Failure, failed};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The agent's TOML config (its rules, zones, lines and masks; the model).
    #[arg(long, short)]
    config: PathBuf,
    /// The recording (any format GStreamer decodes).
    #[arg(long)]
    clip: PathBuf,
    /// The camera whose rules apply (default: the first).
    #[arg(long)]
    camera: Option<String>,
    /// Local time of the clip's first frame, for schedules: RFC 3339
    /// (2026-07-01T19:30:00+08:00) or civil time in the config's time zone (2026-07-01T19:30).
    /// Default: now.
    #[arg(long)]
    start: Option<String>,
    /// Infer every Nth frame (2 = 5/s for a 10 fps clip, as detect_fps = 5 would).
    #[arg(long, default_value_t = 2)]
    every: usize,
    /// Write each event's JPEG into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> Result<(), Failure> {
    replay(&a.config, a.clip, a.camera, a.start.as_deref(), a.every, a.out.as_deref())
        .map_err(failed)
}

/// `replay`: a clip through one camera's rules, events and counts printed.
fn replay(
    config: &Path,
    clip: PathBuf,
    camera: Option<String>,
    start: Option<&str>,
    every: usize,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let (config, _) = PushedConfigs::in_force(&AgentConfig::load(config)?);
    gstreamer::init().context("GStreamer")?;
    let camera = match camera {
        Some(c) => c,
        None => config.cameras.first().map(|c| c.id.clone()).context("the config has no camera")?,
    };
    let tz = time_zone(&config.timezone).map_err(anyhow::Error::msg)?;
    let start_ms = match start {
        None => xueliang_proto::endpoint::now_ms(),
        Some(s) => parse_start(s, &tz)?,
    };
    let options = DetectorOptions {
        library: ort_library(config.model.onnxruntime.as_deref()),
        threads: config.model.threads,
        max_batch: 1,
    };
    let mut detector = Detector::open(&config.model.path, config.model.card.as_deref(), &options)?;
    let replay = ReplayOptions { clip, camera, start_ms, every, snapshots: out.is_some() };
    let report = replay.run(&config, &mut detector)?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let class_name =
        |c: u16| detector.card().classes.get(c as usize).map_or("?", String::as_str).to_owned();
    for (k, e) in report.events.iter().enumerate() {
        let local = jiff::Timestamp::from_millisecond(e.time_ms)
            .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string())
            .unwrap_or_default();
        let objects: Vec<String> = e
            .hits
            .iter()
            .map(|h| match h.track {
                0 => class_name(h.detection.class),
                id => format!("{} #{id}", class_name(h.detection.class)),
            })
            .collect();
        println!(
            "frame {:>5}  {local}  {:<20} {}: {} [{}]",
            e.frame,
            e.rule_id,
            e.kind.name(),
            e.detail,
            objects.join(", ")
        );
        if let Some(dir) = out {
            let path = dir.join(format!("{:03}-{}-frame{}.jpg", k + 1, e.rule_id, e.frame));
            std::fs::write(&path, &e.jpeg)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    for (rule, c) in &report.counts {
        println!("line {rule}: A→B {}, B→A {}", c.a_to_b, c.b_to_a);
    }
    println!(
        "{} frames, {} inferred, {} events",
        report.frames,
        report.detections.len(),
        report.events.len()
    );
    Ok(())
}

/// A start time: RFC 3339, or civil time in `tz`.
fn parse_start(s: &str, tz: &jiff::tz::TimeZone) -> anyhow::Result<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let civil: jiff::civil::DateTime = s.parse().with_context(|| {
        format!("--start {s:?}: write 2026-07-01T19:30 (local) or 2026-07-01T19:30:00+08:00")
    })?;
    Ok(civil.to_zoned(tz.clone())?.timestamp().as_millisecond())
}
