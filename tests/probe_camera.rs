//! `xl-agent probe-camera` against a real RTSP server serving real footage: what the installer
//! reads (codec, resolution, frame rate, latency) and the picture with the configured geometry,
//! and a clear failure for a camera that is not there.

mod common;

use std::process::Command;

use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

#[test]
fn probe_reports_the_stream_and_draws_the_geometry() {
    let server = RtspServer::serve_file(&scenario::vtest(), "walkway").expect("RTSP server");
    let url = server.url("walkway");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"agent_id = "probe-test"
[model]
path = "{model}"
[[cameras]]
id = "walkway"
url = "{url}"
transport = "tcp"
privacy_masks = [[[0.70, 0.05], [0.95, 0.05], [0.95, 0.30], [0.70, 0.30]]]
[[zones]]
id = "lawn"
camera = "walkway"
points = [[0.05, 0.60], [0.40, 0.60], [0.40, 0.95], [0.05, 0.95]]
[[lines]]
id = "middle"
camera = "walkway"
points = [[0.5, 0.3], [0.5, 1.0]]
"#,
            model = scenario::model().display()
        ),
    )
    .unwrap();
    let picture = dir.path().join("probe.jpg");
    let out = Command::new(common::workspace_binary("xl-agent"))
        .arg("probe-camera")
        .arg(&url)
        .arg("--config")
        .arg(&config)
        .args(["--seconds", "3", "--out"])
        .arg(&picture)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    eprint!("{stdout}");
    assert!(stdout.contains("codec             H.264"), "{stdout}");
    // No GPU here: FFmpeg's decoder, its I420 read as it is.
    assert!(stdout.contains("decoder           avdec_h264 (software), frames in I420"), "{stdout}");
    assert!(stdout.contains("resolution        768x576"), "{stdout}");
    let fps: f32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("frame rate        "))
        .and_then(|l| l.split(' ').next())
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((7.0..=13.0).contains(&fps), "vtest plays at 10 fps: {fps}");
    assert!(stdout.contains("first frame after"), "{stdout}");
    assert!(stdout.contains("buffering         200 ms"), "{stdout}");

    let img = image::open(&picture).expect("the picture").to_rgb8();
    assert_eq!(img.dimensions(), (768, 576));
    // Inside the privacy mask: black.
    assert_eq!(img.get_pixel((0.82 * 768.0) as u32, (0.17 * 576.0) as u32).0, [0, 0, 0]);
    // The zone's left edge, in the zone colour (JPEG-rounded).
    let [r, g, b] = img.get_pixel((0.05 * 767.0) as u32, (0.8 * 575.0) as u32).0;
    assert!(r > 200 && g > 160 && b < 90, "zone outline: {r} {g} {b}");
    // The line.
    let [r, g, b] = img.get_pixel((0.5 * 767.0) as u32, (0.7 * 575.0) as u32).0;
    assert!(r > 200 && g > 160 && b < 90, "line: {r} {g} {b}");
}

#[test]
fn probing_a_camera_that_is_not_there_says_so() {
    let out = Command::new(common::workspace_binary("xl-agent"))
        .args(["probe-camera", "rtsp://127.0.0.1:1/nothing", "--transport", "tcp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rtsp://127.0.0.1:1/nothing"), "{err}");
    assert!(
        err.contains("Could not open resource")
            || err.contains("refused")
            || err.contains("no frame"),
        "{err}"
    );
}
