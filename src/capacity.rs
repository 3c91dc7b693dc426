//! Capacity of one box, measured on the whole agent: how many cameras of a kind it sustains at
//! 5 detections/s each.
//!
//! The cameras are real footage at its true frame rate: `vtest.avi` (PETS09 S2.L1, 10 fps,
//! people walking across the whole view) scaled to 720p or 1080p and encoded once with H.264
//! or H.265, then served as it is (no frame duplicated, no re-encoding) by an RTSP server in a
//! child process, so its CPU is not counted. The whole agent runs in this process: RTSP,
//! decoding, the motion gate, zone-aware inference, the tracker, the rules, pictures, signing,
//! the outbox and MQTT, to a real center (`xl-center serve` with its embedded broker) in
//! another child process. Each camera counts the people crossing a line over its walkway, one
//! alarm per crossing: the events of a busy place. A run measures each camera's detections per
//! second, the age of inferred frames from the arrival of their first RTSP packet to their
//! detections (the agent's own histogram), the agent's CPU and memory, and the latency from an
//! event's frame to its record in the center's store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::runtime::Agent;
use xueliang_agent::tools::measure::{cpu_time, rss_mib};
use xueliang_center::access::{Role, add_user};

use crate::rtsp_server::{Codec, RtspServer};
use crate::{center_client, scenario};

/// Detections per second each camera asks for.
pub const DETECT_FPS: f32 = 5.0;

/// The box's id at the center.
const AGENT_ID: &str = "capacity-box";

/// The center's user the run reads the alarms as.
const READER: (&str, &str) = ("capacity-reader", "capacity-reader-password");

/// What each camera sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The detect stream's height: 720 or 1080 (16:9).
    pub height: u32,
    /// Its codec.
    pub codec: Codec,
    /// Whether the camera's 1080p H.264 main stream is received too, kept compressed for clips
    /// and pictures and never decoded (a camera with `record_url`).
    pub record: bool,
}

impl Profile {
    /// The profiles the sizing table is made of.
    pub const TABLE: [Profile; 5] = [
        Profile { height: 720, codec: Codec::H264, record: false },
        Profile { height: 720, codec: Codec::H265, record: false },
        Profile { height: 1080, codec: Codec::H264, record: false },
        Profile { height: 1080, codec: Codec::H265, record: false },
        Profile { height: 720, codec: Codec::H264, record: true },
    ];

    /// As written on the command line: `720p-h264`, `1080p-h265`, `720p-h264+record`, …
    pub fn parse(s: &str) -> Result<Self, String> {
        let (stream, record) = match s.strip_suffix("+record") {
            Some(stream) => (stream, true),
            None => (s, false),
        };
        let (height, codec) =
            stream.split_once("p-").ok_or(format!("{s:?}: write e.g. 720p-h264"))?;
        let height = match height {
            "720" => 720,
            "1080" => 1080,
            other => return Err(format!("{other}p: 720p or 1080p")),
        };
        let codec = match codec {
            "h264" => Codec::H264,
            "h265" => Codec::H265,
            other => return Err(format!("{other}: h264 or h265")),
        };
        Ok(Self { height, codec, record })
    }

    /// The command-line form.
    pub fn key(&self) -> String {
        let codec = match self.codec {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        };
        format!("{}p-{codec}{}", self.height, if self.record { "+record" } else { "" })
    }

    /// For people: `720p H.264 (sub-stream detected) + 1080p H.264 record stream kept`.
    pub fn describe(&self) -> String {
        let codec = match self.codec {
            Codec::H264 => "H.264",
            Codec::H265 => "H.265",
        };
        let record = if self.record { " + 1080p H.264 record stream kept" } else { "" };
        format!("{}p {codec} 10 fps detected{record}", self.height)
    }
}

/// The footage at `height` (16:9) in `codec`, made once from vtest.avi at its own 10 fps.
pub fn footage(height: u32, codec: Codec) -> anyhow::Result<PathBuf> {
    let (name, encode) = match (height, codec) {
        (720, Codec::H264) => (
            "720p_h264",
            "x264enc speed-preset=veryfast key-int-max=20 bitrate=1500 ! video/x-h264,profile=main ! h264parse",
        ),
        (1080, Codec::H264) => (
            "1080p_h264",
            "x264enc speed-preset=veryfast key-int-max=20 bitrate=3000 ! video/x-h264,profile=main ! h264parse",
        ),
        (720, Codec::H265) => {
            ("720p_h265", "x265enc speed-preset=veryfast key-int-max=20 bitrate=800 ! h265parse")
        }
        (1080, Codec::H265) => {
            ("1080p_h265", "x265enc speed-preset=veryfast key-int-max=20 bitrate=1500 ! h265parse")
        }
        _ => bail!("no footage at {height}p"),
    };
    let path = scenario::repo_root().join(format!(".cache/footage/vtest_{name}.mp4"));
    if path.is_file() {
        return Ok(path);
    }
    gst::init()?;
    let tmp = path.with_extension("mp4.partial");
    let src = gst::glib::filename_to_uri(std::fs::canonicalize(scenario::vtest())?, None)?;
    let width = height * 16 / 9;
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri=\"{src}\" ! videoconvert ! videoscale ! \
         video/x-raw,width={width},height={height},format=I420 ! {encode} ! mp4mux ! \
         filesink location=\"{}\"",
        tmp.display()
    ))?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("pipeline has no bus")?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(600)) else {
            break Err(anyhow::anyhow!("making {} timed out", path.display()));
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(anyhow::anyhow!("making {}: {}", path.display(), e.error()));
            }
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Serves `cameras` cameras of `profile`: `cam0`, `cam1`, … and, with a record stream,
/// `cam0-record`, … until dropped.
pub fn serve(profile: Profile, cameras: usize) -> anyhow::Result<RtspServer> {
    let detect = footage(profile.height, profile.codec)?;
    let record = profile.record.then(|| footage(1080, Codec::H264)).transpose()?;
    let mut streams = Vec::new();
    for i in 0..cameras {
        streams.push((format!("cam{i}"), detect.clone(), profile.codec));
        if let Some(record) = &record {
            streams.push((format!("cam{i}-record"), record.clone(), Codec::H264));
        }
    }
    Ok(RtspServer::serve_mp4s(&streams)?)
}

/// What one run achieved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityRun {
    /// The cameras' kind.
    pub profile: Profile,
    /// Cameras.
    pub cameras: usize,
    /// Detections per second asked of each camera.
    pub target_fps: f32,
    /// The slowest camera's detections per second.
    pub min_fps: f32,
    /// Mean over cameras.
    pub mean_fps: f32,
    /// Age of inferred frames, from their first packet's arrival to their detections: median.
    pub frame_age_p50_ms: f64,
    /// 95th percentile of the frame age.
    pub frame_age_p95_ms: f64,
    /// The agent's CPU, in cores (2.0 = both cores of a 2-core box busy).
    pub cpu_cores: f32,
    /// The agent's resident memory at the end, MiB.
    pub rss_mib: f32,
    /// Alarms the center stored from the measured period.
    pub alarms: usize,
    /// From an alarm's frame to its record in the center's store: median.
    pub alarm_latency_p50_ms: Option<i64>,
    /// 95th percentile of the alarm latency.
    pub alarm_latency_p95_ms: Option<i64>,
    /// Every camera got ≥ 95 % of its detections.
    pub sustained: bool,
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The cameras' kind.
    pub profile: Profile,
    /// How many.
    pub cameras: usize,
    /// The RTSP server's port (see [`serve`]).
    pub camera_port: u16,
    /// How long it is measured, after the warm-up.
    pub period: Duration,
    /// ONNX Runtime threads.
    pub threads: usize,
    /// The model.
    pub model: PathBuf,
    /// Extra TOML for camera 0 (the burst's rules).
    pub camera0_rules: String,
}

/// The center, running as a child process until dropped.
struct Center {
    child: Child,
    api: String,
    mqtt: String,
    log: PathBuf,
}

impl Drop for Center {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Center {
    /// Starts `xl-center serve` storing in `dir`, with the reader's account, and waits for it.
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        add_user(&dir.join("users.toml"), READER.0, None, Role::Admin, None, READER.1)?;
        let (http, mqtt) = (scenario::free_port()?, scenario::free_port()?);
        let log = dir.join("center.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(scenario::sibling_binary("xl-center")?)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("start xl-center")?;
        let center = Self {
            child,
            api: format!("http://127.0.0.1:{http}"),
            mqtt: format!("mqtt://127.0.0.1:{mqtt}"),
            log,
        };
        let started = Instant::now();
        while reqwest::get(format!("{}/healthz", center.api)).await.is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("xl-center did not answer in 30 s (log {})", center.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(center)
    }
}

/// The agent's config: `cameras` cameras on the server at `port`, each counting the people
/// crossing the middle of its walkway.
fn agent_toml(o: &RunOptions, mqtt: &str, center_key: &str, metrics: u16) -> String {
    let mut toml = format!(
        "agent_id = \"{AGENT_ID}\"\ndata_dir = \"agent-data\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\n\
         [mqtt]\nurl = \"{mqtt}\"\ncenter_key = \"{center_key}\"\n\n\
         [model]\npath = \"{}\"\nthreads = {}\n",
        o.model.display(),
        o.threads
    );
    let url = |mount: String| format!("rtsp://127.0.0.1:{}/{mount}", o.camera_port);
    for i in 0..o.cameras {
        toml += &format!(
            "\n[[cameras]]\nid = \"cam{i}\"\ndetect_url = \"{}\"\ntransport = \"tcp\"\ndetect_fps = {DETECT_FPS}\n",
            url(format!("cam{i}"))
        );
        if o.profile.record {
            toml += &format!("record_url = \"{}\"\n", url(format!("cam{i}-record")));
        }
        toml += &format!(
            "\n[[lines]]\nid = \"cam{i}-crossing\"\ncamera = \"cam{i}\"\npoints = [[0.5, 0.3], [0.5, 0.98]]\n\n\
             [[rules]]\nid = \"cam{i}-crossing\"\nkind = \"line_crossing\"\nline = \"cam{i}-crossing\"\nseverity = \"medium\"\n"
        );
    }
    toml + &o.camera0_rules
}

/// One sample of the agent's metrics page.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Frames inferred, per camera id.
    pub inferred: BTreeMap<String, f64>,
    /// Alarms raised, per rule id.
    pub raised: BTreeMap<String, f64>,
    /// Cameras online.
    pub online: usize,
    /// The frame age histogram: (upper bound in seconds, cumulative count).
    pub frame_age: Vec<(f64, f64)>,
    /// Event messages waiting for the evidence thread.
    pub evidence_queue: f64,
    /// Times the detector waited for room in that queue.
    pub evidence_full: f64,
}

/// The value of `key`'s label in a `{a="b",…}` label set.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    labels[start..].split('"').next()
}

impl Scrape {
    /// Reads the agent's metrics at `url`.
    pub async fn take(url: &str) -> anyhow::Result<Self> {
        let page = reqwest::get(url).await?.text().await?;
        let mut s = Self::default();
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = key.split_once('{').unwrap_or((key, ""));
            match name {
                "xl_agent_frames_inferred_total" => {
                    s.inferred.insert(label(labels, "camera").unwrap_or("").into(), value);
                }
                "xl_agent_alarms_raised_total" => {
                    s.raised.insert(label(labels, "rule").unwrap_or("").into(), value);
                }
                "xl_agent_camera_online" if value > 0.0 => s.online += 1,
                "xl_agent_frame_age_seconds_bucket" => {
                    let le = label(labels, "le").unwrap_or("+Inf");
                    s.frame_age.push((le.parse().unwrap_or(f64::INFINITY), value));
                }
                "xl_agent_evidence_queue" => s.evidence_queue = value,
                "xl_agent_evidence_queue_full_total" => s.evidence_full = value,
                _ => {}
            }
        }
        Ok(s)
    }

    /// The `q` quantile (0..1) of the frame ages observed between `before` and this sample,
    /// ms, interpolated within its bucket as Prometheus does.
    pub fn frame_age_quantile(&self, before: &Scrape, q: f64) -> f64 {
        let counts: Vec<(f64, f64)> = self
            .frame_age
            .iter()
            .zip(before.frame_age.iter().map(|b| b.1).chain(std::iter::repeat(0.0)))
            .map(|(&(le, now), then)| (le, now - then))
            .collect();
        let total = counts.last().map_or(0.0, |c| c.1);
        if total <= 0.0 {
            return 0.0;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, cumulative) in &counts {
            if cumulative >= rank {
                if !le.is_finite() {
                    return lower.0 * 1000.0;
                }
                let share = (rank - lower.1) / (cumulative - lower.1).max(f64::EPSILON);
                return (lower.0 + (le - lower.0) * share) * 1000.0;
            }
            lower = (le, cumulative);
        }
        lower.0 * 1000.0
    }
}

/// The whole agent measured: see the module documentation. `each_second` is called with every
/// second's metrics during the measured period (for the burst).
pub async fn run(
    o: &RunOptions,
    mut each_second: impl FnMut(&Scrape),
) -> anyhow::Result<CapacityRun> {
    let dir = tempfile::tempdir()?;
    let center_dir = dir.path().join("center");
    let center_key = scenario::prepare_keys(&center_dir, AGENT_ID, &dir.path().join("agent-data"))?;
    let center = Center::start(&center_dir).await?;
    let metrics_port = scenario::free_port()?;
    let toml = agent_toml(o, &center.mqtt, &center_key, metrics_port);
    let config = AgentConfig::parse(&toml, &dir.path().join("agent.toml"))?;
    let agent = Agent::build(config)?;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(agent.run(shutdown.clone()));
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");

    // Warm-up: every camera online, then a few seconds for the tracker and the outbox.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if Scrape::take(&metrics).await.is_ok_and(|s| s.online == o.cameras) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("not every camera came online within 60 s");
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    let first = Scrape::take(&metrics).await?;
    let (cpu0, t0, wall0) = (cpu_time(), Instant::now(), xueliang_proto::endpoint::now_ms());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while t0.elapsed() < o.period {
        tick.tick().await;
        each_second(&Scrape::take(&metrics).await?);
    }
    let last = Scrape::take(&metrics).await?;
    let wall = t0.elapsed().as_secs_f32();
    let cpu = (cpu_time() - cpu0).as_secs_f32();
    let wall1 = xueliang_proto::endpoint::now_ms();
    let rss = rss_mib() as f32;
    shutdown.cancel();
    running.await??;

    // The alarms of the measured period, as the center stored them (delivery included: the
    // agent sends what waited before it stops).
    let client = center_client::login(&center.api, READER.0, READER.1, None).await?;
    // The newest 500 (the API's page), far more than a run raises.
    let body: serde_json::Value = client
        .get(format!("{}/api/alarms?limit=500", center.api))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut latencies: Vec<i64> = body["alarms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["event_time_ms"].as_i64()?, a["received_time_ms"].as_i64()?)))
        .filter(|(event, _)| (wall0..wall1).contains(event))
        .map(|(event, received)| received - event)
        .collect();
    latencies.sort_unstable();
    let pct = |p: usize| latencies.get((latencies.len().max(1) - 1) * p / 100).copied();
    drop(center);

    let rates: Vec<f32> = (0..o.cameras)
        .map(|i| {
            let id = format!("cam{i}");
            let n = last.inferred.get(&id).copied().unwrap_or(0.0)
                - first.inferred.get(&id).copied().unwrap_or(0.0);
            n as f32 / wall
        })
        .collect();
    let min_fps = rates.iter().copied().fold(f32::INFINITY, f32::min);
    Ok(CapacityRun {
        profile: o.profile,
        cameras: o.cameras,
        target_fps: DETECT_FPS,
        min_fps,
        mean_fps: rates.iter().sum::<f32>() / o.cameras as f32,
        frame_age_p50_ms: last.frame_age_quantile(&first, 0.5),
        frame_age_p95_ms: last.frame_age_quantile(&first, 0.95),
        cpu_cores: cpu / wall,
        rss_mib: rss,
        alarms: latencies.len(),
        alarm_latency_p50_ms: pct(50),
        alarm_latency_p95_ms: pct(95),
        sustained: min_fps >= 0.95 * DETECT_FPS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_as_written() {
        for p in Profile::TABLE {
            assert_eq!(Profile::parse(&p.key()), Ok(p));
        }
        assert!(Profile::parse("4k-h264").is_err());
    }

    #[test]
    fn frame_age_quantiles_interpolate_within_buckets() {
        let page = |counts: [f64; 3]| Scrape {
            frame_age: vec![(0.1, counts[0]), (0.2, counts[1]), (f64::INFINITY, counts[2])],
            ..Scrape::default()
        };
        // 10 frames since: 0 below 100 ms, all 10 within 100-200 ms.
        let (before, after) = (page([5.0, 5.0, 5.0]), page([5.0, 15.0, 15.0]));
        assert!((after.frame_age_quantile(&before, 0.5) - 150.0).abs() < 1e-6);
    }
}
