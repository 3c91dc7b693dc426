//! The walkway scenario shared by the demo and the end-to-end tests: where `make setup` leaves
//! the model, the ONNX Runtime library and `vtest.avi`, and an agent config watching the clip.

use std::path::PathBuf;

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

/// A zone over the walkway of `vtest.avi`, where pedestrians pass all the time.
pub const VTEST_WALKWAY: [[f32; 2]; 4] = [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98], [0.05, 0.98]];

/// An agent config (TOML) with one camera at `camera_url` and a person-intrusion rule on the
/// walkway, publishing to the broker at `mqtt_url`.
pub fn agent_toml(agent_id: &str, camera_url: &str, mqtt_url: &str) -> String {
    let zone: Vec<String> = VTEST_WALKWAY
        .iter()
        .map(|[x, y]| format!("[{x}, {y}]"))
        .collect();
    format!(
        r#"agent_id = "{agent_id}"
# Beside this file: the outbox of alarms awaiting the center's receipt.
data_dir = "agent-data"

[mqtt]
url = "{mqtt_url}"
health_interval_s = 5

[model]
path = "{model}"

[[cameras]]
id = "campus-walkway"
url = "{camera_url}"
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
