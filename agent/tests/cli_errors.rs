//! Bad input through the real `xl-agent` binary: each fault gives one clear error line naming
//! the problem. Faults in the config or the model stop the agent; an unreachable camera or
//! broker is retried for as long as it runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_xl-agent");

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/nanodet_g416_coco.onnx")
}

fn shipped_card() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/nanodet_g416_coco.card.toml")
}

fn config(model: &Path, camera_url: &str, mqtt_url: &str) -> String {
    format!(
        r#"agent_id = "cli-test"
data_dir = "data"
[mqtt]
url = "{mqtt_url}"
# A test box without a center.
insecure = true
[model]
path = "{}"
card = "{}"
[[cameras]]
id = "gate"
url = "{camera_url}"
[[zones]]
id = "yard"
camera = "gate"
points = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
[[rules]]
id = "yard-intrusion"
kind = "zone_intrusion"
zone = "yard"
"#,
        model.display(),
        shipped_card().display()
    )
}

/// Runs `xl-agent run` on `toml` and returns (exit code, stderr); the agent must exit by itself.
fn run_to_exit(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(BIN).args(["run", "--config"]).arg(&path).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Checks the exit code and that stderr has exactly one `error:` line, containing `needle`.
fn assert_one_error(code: i32, stderr: &str, expected_code: i32, needle: &str) {
    assert_eq!(code, expected_code, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} missing in {stderr}");
}

#[test]
fn a_missing_model_is_named_and_stops_the_agent() {
    let (code, err) = run_to_exit(&config(
        Path::new("/nonexistent/m.onnx"),
        "rtsp://127.0.0.1:1/x",
        "mqtt://127.0.0.1:1",
    ));
    assert_one_error(code, &err, 1, "model file /nonexistent/m.onnx not found");
}

#[test]
fn a_corrupt_model_is_named_and_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("corrupt.onnx");
    std::fs::write(&bad, b"this is not an ONNX protobuf at all").unwrap();
    let (code, err) = run_to_exit(&config(&bad, "rtsp://127.0.0.1:1/x", "mqtt://127.0.0.1:1"));
    assert_one_error(code, &err, 1, "corrupt.onnx is not a usable ONNX model");
}

#[test]
fn a_missing_model_card_is_named_and_stops_the_agent() {
    let toml = config(&model(), "rtsp://127.0.0.1:1/x", "mqtt://127.0.0.1:1")
        .replace(&shipped_card().display().to_string(), "/nonexistent/m.card.toml");
    let (code, err) = run_to_exit(&toml);
    assert_one_error(code, &err, 1, "model card /nonexistent/m.card.toml: No such file");
    assert!(err.contains("every model needs a card"), "{err}");
}

#[test]
fn a_malformed_config_names_file_line_and_key() {
    let (code, err) = run_to_exit("agent_id = \"a\"\n[model\npath = 1\n");
    assert_one_error(code, &err, 2, "agent.toml");
    assert!(err.contains("line 2"), "{err}");

    let (code, err) = run_to_exit(
        &config(&model(), "http://camera", "mqtt://127.0.0.1:1")
            .replace("zone = \"yard\"", "zone = \"pond\""),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cameras[0].detect_url: \"http://camera\" must start with rtsp://"),
        "{err}"
    );
    assert!(err.contains("rules[0].zone: no zone with id \"pond\""), "{err}");
}

#[test]
fn an_unreachable_camera_and_broker_are_named_and_retried() {
    assert!(model().is_file(), "run `make setup` first: {} is missing", model().display());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    // Nothing listens on port 1 of loopback: both connections are refused.
    std::fs::write(&path, config(&model(), "rtsp://127.0.0.1:1/nothing", "mqtt://127.0.0.1:1"))
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Long enough for several retries of each (backoff starts at 0.5 s).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        assert!(child.try_wait().unwrap().is_none(), "the agent exited instead of retrying");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let log = reader.join().unwrap();
    let camera_retries =
        log.lines().filter(|l| l.contains("camera gate:") && l.contains("retrying in")).count();
    let broker_retries = log
        .lines()
        .filter(|l| l.contains("MQTT broker 127.0.0.1:1 unreachable") && l.contains("retrying in"))
        .count();
    assert!(camera_retries >= 2, "camera retries {camera_retries}:\n{log}");
    assert!(broker_retries >= 2, "broker retries {broker_retries}:\n{log}");
    let first_camera = log.lines().find(|l| l.contains("camera gate:")).unwrap();
    assert!(
        first_camera.contains("rtsp://127.0.0.1:1/nothing"),
        "the line names the URL: {first_camera}"
    );
}
