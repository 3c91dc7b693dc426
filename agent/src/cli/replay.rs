//! `xl-agent replay`: a recording through the detector and one camera's rules on the
//! recording's own clock, the events and line counts printed, to tune rules on site footage.

use std::path::{Path, PathBuf};

use anyhow::Context;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::config::schedule::time_zone;
use xueliang_agent::delivery::PushedConfigs;
use xueliang_agent::detect::{Detector, DetectorOptions};
use xueliang_agent::evidence::Outgoing;
use xueliang_agent::tools::replay::ReplayOptions;
use xueliang_proto::RuleKind;

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
    /// Write each message's picture into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> Result<(), Failure> {
    replay(&a.config, a.clip, a.camera, a.start.as_deref(), a.out.as_deref()).map_err(failed)
}

/// `replay`: a clip through one camera's rules, events and counts printed.
fn replay(
    config: &Path,
    clip: PathBuf,
    camera: Option<String>,
    start: Option<&str>,
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
    let options = DetectorOptions::of(&config.model, 1);
    let detector = Detector::open(&config.model.path, config.model.card.as_deref(), &options)?;
    let (report, _) = ReplayOptions { clip, camera, start_ms }.run(&config, detector)?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let local = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let objects = |d: &[xueliang_proto::Detection]| {
        let names: Vec<String> = d
            .iter()
            .map(|d| match d.track_id {
                0 => d.class_name.clone(),
                id => format!("{} #{id}", d.class_name),
            })
            .collect();
        names.join(", ")
    };
    // Updates name their event; the opening alarm says whose it is.
    let mut rule_of = std::collections::HashMap::new();
    let (mut events, mut instant) = (0, 0);
    for (k, m) in report.messages.iter().enumerate() {
        let (rule, line, jpeg) = match &m.message {
            Outgoing::Alarm { alarm, detail, .. } => {
                let kind = RuleKind::of(alarm.kind).name();
                rule_of.insert(alarm.id.clone(), alarm.rule_id.clone());
                events += 1;
                let what = if alarm.opens_event {
                    format!("{kind} began: {detail}")
                } else {
                    instant += 1;
                    format!("{kind}: {detail}")
                };
                let line = format!(
                    "{} {what} [{}]",
                    local(alarm.event_time_ms),
                    objects(&alarm.detections)
                );
                (alarm.rule_id.clone(), line, &alarm.snapshot_jpeg)
            }
            Outgoing::Update { update: u, .. } => {
                let rule = rule_of.get(&u.event_id).cloned().unwrap_or_default();
                let what = if u.ended {
                    format!(
                        "{} ended after {} s (peak {})",
                        local(u.end_time_ms),
                        u.duration_ms / 1000,
                        u.peak_count
                    )
                } else if u.reminder {
                    format!("{} still going after {} s", local(u.time_ms), u.duration_ms / 1000)
                } else {
                    format!(
                        "{} update: peak {}, {} s",
                        local(u.time_ms),
                        u.peak_count,
                        u.duration_ms / 1000
                    )
                };
                (rule, what, &u.snapshot_jpeg)
            }
        };
        println!("frame {:>5}  {rule:<20} {line}", m.frame);
        if let Some(dir) = out.filter(|_| !jpeg.is_empty()) {
            let path = dir.join(format!("{:03}-{rule}-frame{}.jpg", k + 1, m.frame));
            std::fs::write(&path, jpeg)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    for (rule, c) in &report.counts {
        println!("line {rule}: A→B {}, B→A {}", c.a_to_b, c.b_to_a);
    }
    println!(
        "{} frames, {} inferred, {events} events ({instant} instant)",
        report.frames, report.inferred
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
