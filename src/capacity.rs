//! Capacity of one box: how many 720p H.264 25 fps cameras at 5 detections/s it sustains.
//!
//! Synthetic cameras are served by the in-process RTSP server from one 720p25 H.264 file made
//! from real footage (vtest.avi, scaled; test patterns decode too cheaply to measure). Serving
//! passes the H.264 through untouched, so the box's CPU goes to the agent's work: RTSP, decode
//! of every frame, the inference loop. The server runs in a child process so the figures
//! (CPU, memory) are the agent's alone. A camera count is sustained when every camera gets at
//! least 95 % of its detections per second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::{Deserialize, Serialize};
use xueliang_agent::config::{CameraConfig, Transport};
use xueliang_agent::detect::{CameraSlot, InferenceLoop, Tiling};
use xueliang_agent::detect::{Detector, DetectorOptions};
use xueliang_agent::source::{
    CameraOutputs, CameraSource, FrameHub, Pace, RecordSource, StreamRing,
};
use xueliang_agent::tools::measure::{cpu_time, rss_mib};
use xueliang_proto::endpoint::now_ms;

use crate::rtsp_server::RtspServer;
use crate::scenario;

/// Detections per second each camera asks for.
pub const DETECT_FPS: f32 = 5.0;

/// The 720p25 clip, made once from vtest.avi (40 s, H.264 main profile, 3 Mbit/s).
pub fn clip_720p() -> anyhow::Result<PathBuf> {
    let path = scenario::repo_root().join(".cache/footage/vtest_720p25.mp4");
    if path.is_file() {
        return Ok(path);
    }
    gst::init()?;
    let tmp = path.with_extension("mp4.partial");
    let src = gst::glib::filename_to_uri(std::fs::canonicalize(scenario::vtest())?, None)?;
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri=\"{src}\" ! videoconvert ! videoscale ! videorate ! \
         video/x-raw,width=1280,height=720,framerate=25/1,format=I420 ! identity eos-after=1000 ! \
         x264enc speed-preset=veryfast key-int-max=50 bitrate=3000 ! video/x-h264,profile=main ! \
         h264parse ! mp4mux ! filesink location=\"{}\"",
        tmp.display()
    ))?;
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().context("pipeline has no bus")?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(300)) else {
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

/// What one run with a given number of cameras achieved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityRun {
    /// Cameras.
    pub cameras: usize,
    /// Detections per second asked of each camera.
    pub target_fps: f32,
    /// The slowest camera's detections per second.
    pub min_fps: f32,
    /// Mean over cameras.
    pub mean_fps: f32,
    /// Age of frames when inferred (received → inference starts), median and 95th percentile.
    pub frame_age_p50_ms: i64,
    /// 95th percentile of the frame age.
    pub frame_age_p95_ms: i64,
    /// Process CPU, in cores (2.0 = both cores of a 2-core box busy).
    pub cpu_cores: f32,
    /// Resident memory at the end, MiB.
    pub rss_mib: f32,
    /// Every camera got ≥ 95 % of its detections.
    pub sustained: bool,
    /// Each camera's stream was also received as a record stream and kept for clips.
    pub record_streams: bool,
}

/// Serves `cameras` synthetic cameras (mounts `cam0`, `cam1`, …) until dropped.
pub fn serve(cameras: usize) -> anyhow::Result<RtspServer> {
    let mounts: Vec<String> = (0..cameras).map(|i| format!("cam{i}")).collect();
    Ok(RtspServer::serve_h264_mp4(&clip_720p()?, &mounts)?)
}

/// Runs the cameras at `urls` through the inference loop for `period` after a warm-up; with
/// `record_streams`, each camera's stream is received a second time as its record stream and
/// kept compressed for clips (10 s), as a camera with `record_url` is, never decoded.
pub fn run(
    model: &Path,
    threads: usize,
    urls: &[String],
    period: Duration,
    record_streams: bool,
) -> anyhow::Result<CapacityRun> {
    let cameras = urls.len();
    let options = DetectorOptions::cpu(scenario::onnxruntime(), threads, cameras);
    let detector = Detector::open(model, None, &options)?;

    let hub = Arc::new(FrameHub::new(cameras));
    let stop = Arc::new(AtomicBool::new(false));
    let (events, _events_rx) = std::sync::mpsc::channel();
    let mut sources = Vec::new();
    let mut records = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let config = CameraConfig {
            transport: Transport::Tcp,
            detect_fps: DETECT_FPS,
            record_url: Some(url.clone()).filter(|_| record_streams),
            ..CameraConfig::new(format!("cam{i}"), url.clone())
        };
        if record_streams {
            let ring = Arc::new(StreamRing::new(10_000, 32 << 20));
            records.push(RecordSource::spawn(config.clone(), ring, stop.clone())?);
        }
        sources.push(CameraSource::spawn(
            i,
            config,
            CameraOutputs {
                hub: hub.clone(),
                events: events.clone(),
                counters: Arc::default(),
                ring: None,
            },
            stop.clone(),
            Pace::Live,
        )?);
    }
    // The motion gate is off: every scheduled frame is inferred, the worst case.
    let slots = (0..cameras)
        .map(|_| CameraSlot {
            interval: Duration::from_secs_f32(1.0 / DETECT_FPS),
            gate: None,
            on_demand: false,
            tiling: Tiling::whole(),
        })
        .collect();
    let mut inference = InferenceLoop::new(detector, hub, slots);

    let warm_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < warm_until {
        inference.step(Duration::from_millis(50))?;
    }
    let mut per_camera = vec![0u32; cameras];
    let mut ages = Vec::new();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    while t0.elapsed() < period {
        if !inference.step(Duration::from_millis(50))? {
            continue;
        }
        for f in &inference.frames {
            per_camera[f.camera] += 1;
            ages.push(now_ms() - f.captured_ms);
        }
    }
    let wall = t0.elapsed().as_secs_f32();
    let cpu = (cpu_time() - cpu0).as_secs_f32();
    let rss = rss_mib() as f32;
    stop.store(true, Ordering::Relaxed);
    for s in sources {
        s.join();
    }
    for r in records {
        r.join();
    }
    if ages.is_empty() {
        bail!("no frame arrived from the synthetic cameras");
    }
    ages.sort_unstable();
    let rates: Vec<f32> = per_camera.iter().map(|&n| n as f32 / wall).collect();
    let min_fps = rates.iter().copied().fold(f32::INFINITY, f32::min);
    Ok(CapacityRun {
        cameras,
        target_fps: DETECT_FPS,
        min_fps,
        mean_fps: rates.iter().sum::<f32>() / cameras as f32,
        frame_age_p50_ms: ages[ages.len() / 2],
        frame_age_p95_ms: ages[ages.len() * 95 / 100],
        cpu_cores: cpu / wall,
        rss_mib: rss,
        sustained: min_fps >= 0.95 * DETECT_FPS,
        record_streams,
    })
}
