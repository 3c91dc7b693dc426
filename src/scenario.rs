//! The walkway scenario shared by the demo and the end-to-end tests: where `make setup` leaves
//! the model, the ONNX Runtime library and `vtest.avi`, and an agent config watching the clip.

use std::path::{Path, PathBuf};

use xueliang_agent::evidence::Sealer;
use xueliang_proto::signing::SigningKey;

/// The repository root (this package's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default detector model.
pub fn model() -> PathBuf {
    repo_root().join(".cache/models/nanodet_g416_coco.onnx")
}

/// The ONNX Runtime library.
pub fn onnxruntime() -> PathBuf {
    repo_root().join(".cache/onnxruntime/libonnxruntime.so.1.31.1")
}

/// `vtest.avi` (PETS2009 S2.L1, 768×576, 10 fps): a campus walkway seen from above.
pub fn vtest() -> PathBuf {
    repo_root().join(".cache/footage/vtest.avi")
}

/// The workspace binary `name`, built beside the one running (`xl-center` beside `xl-demo`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.is_file() {
        anyhow::bail!(
            "{} not found next to {} (build the workspace: cargo build --release --workspace)",
            path.display(),
            exe.display()
        );
    }
    Ok(path)
}

/// A free TCP port on loopback, for a server a tool starts.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A zone over the walkway of `vtest.avi`, where pedestrians pass all the time.
pub const VTEST_WALKWAY: [[f32; 2]; 4] = [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98], [0.05, 0.98]];

/// Adds an agent's line (`agent = "key"`, as `xl-agent key` prints it) to the center's key
/// registry `keys_file`.
pub fn register_agent(keys_file: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if !keys_file.exists() {
        if let Some(dir) = keys_file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(keys_file, "[agents]\n")?;
    }
    writeln!(std::fs::OpenOptions::new().append(true).open(keys_file)?, "{line}")
}

/// Keys for a center storing in `center_dir` and agent `agent_id` keeping its state in
/// `agent_data_dir`: the center's key is made (the center uses it when it starts) and the
/// agent's is registered with it. Returns the center's public key, for the agent's config.
pub fn prepare_keys(
    center_dir: &Path,
    agent_id: &str,
    agent_data_dir: &Path,
) -> anyhow::Result<String> {
    let center = SigningKey::load_or_create(&xueliang_center::running::key_path(center_dir))?;
    let agent = Sealer::open(agent_data_dir)?;
    register_agent(
        &center_dir.join("agent-keys.toml"),
        &format!("{agent_id} = \"{}\"", agent.public_key()),
    )?;
    Ok(center.public_key())
}

/// `toml` (an [`agent_toml`]) with its camera's record stream at `record_url`, beside the
/// detect stream it has.
pub fn with_record_stream(toml: &str, record_url: &str) -> String {
    toml.replacen("\ntransport = ", &format!("\nrecord_url = \"{record_url}\"\ntransport = "), 1)
}

/// An agent config (TOML) with one camera at `camera_url` and a person-intrusion rule on the
/// walkway, publishing to the broker at `mqtt_url` and trusting the center key `center_key`.
pub fn agent_toml(agent_id: &str, camera_url: &str, mqtt_url: &str, center_key: &str) -> String {
    let zone: Vec<String> = VTEST_WALKWAY.iter().map(|[x, y]| format!("[{x}, {y}]")).collect();
    format!(
        r#"agent_id = "{agent_id}"
# Beside this file: the outbox of alarms awaiting the center's receipt.
data_dir = "agent-data"

[mqtt]
url = "{mqtt_url}"
center_key = "{center_key}"
health_interval_s = 5

[model]
path = "{model}"

[[cameras]]
id = "campus-walkway"
detect_url = "{camera_url}"
transport = "tcp"
detect_fps = 5

[[zones]]
id = "walkway"
camera = "campus-walkway"
points = [{zone}]

[[rules]]
id = "walkway-intrusion"
kind = "zone_intrusion"
zone = "walkway"
classes = ["person"]
min_score = 0.5
min_frames = 3
cooldown_s = 10
severity = "high"
"#,
        model = model().display(),
        zone = zone.join(", "),
    )
}

/// A real H.264 fragmented MP4 as an agent cuts one, which a browser plays: GStreamer's test
/// picture of `size`, 10 frames a second for `ms`, a keyframe every 2 s, written to `path`.
pub fn h264_clip(path: &Path, size: (u32, u32), ms: u64) -> Result<Vec<u8>, String> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().map_err(|e| e.to_string())?;
    let ((w, h), frames) = (size, ms / 100);
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,width={w},height={h},framerate=10/1 ! \
         x264enc key-int-max=20 ! video/x-h264,profile=baseline ! h264parse ! \
         mp4mux fragment-duration=1000 ! filesink location=\"{}\"",
        path.display()
    ))
    .map_err(|e| format!("the clip's pipeline (x264enc is in gstreamer1.0-plugins-ugly): {e}"))?;
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("a pipeline without a bus")?;
    let outcome = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(30)) else {
            break Err("it did not end within 30 s".to_owned());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(format!("{} ({:?})", e.error(), e.debug())),
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome.map_err(|why| format!("making the clip {}: {why}", path.display()))?;
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
