//! `xl-agent doctor` on a box enrolled with a live center (embedded broker checking passwords),
//! a real RTSP camera and the installed model with its checksum: every check passes. Then the
//! faults installers meet, each named on its own line with a fix: a wrong broker password, a
//! camera that is not there, GStreamer plugins missing, a damaged model.

mod common;

use std::path::Path;
use std::process::Command;

use tokio_util::sync::CancellationToken;
use xueliang_center::running::{BrokerChoice, start};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// Runs the doctor on `config` with extra environment; returns exit code and stdout.
fn doctor(config: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(common::workspace_binary("xl-agent"))
        .args(["doctor", "--camera-seconds", "2", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The line of check `name`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} line in\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_box_passes_every_check_and_each_fault_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        passwords: true,
    };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let api = common::Api::admin(center.http_addr).await;
    let camera = RtspServer::serve_file(&scenario::vtest(), "gate").expect("RTSP server");
    let pushed = format!(
        "[[cameras]]\nid = \"gate\"\nurl = \"{}\"\ntransport = \"tcp\"\n",
        camera.url("gate")
    );
    // The center takes configs for boxes it knows: registered, or awaiting enrolment.
    let created = api.enrolment("doctor-village").await;
    assert_eq!(
        api.put("/api/agents/doctor-village/config").body(pushed).send().await.unwrap().status(),
        200
    );

    // The installed model: links to the fetched one, with the checksum the installer writes.
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let model = models.join("nanodet_g416_coco.onnx");
    std::os::unix::fs::symlink(scenario::model(), &model).unwrap();
    std::os::unix::fs::symlink(
        scenario::model().with_extension("card.toml"),
        models.join("nanodet_g416_coco.card.toml"),
    )
    .unwrap();
    let sum = Command::new("sha256sum").arg(scenario::model()).output().unwrap();
    let hex = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_owned();
    std::fs::write(
        models.join("nanodet_g416_coco.onnx.sha256"),
        format!("{hex}  nanodet_g416_coco.onnx\n"),
    )
    .unwrap();

    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n[model]\npath = \"{}\"\n", model.display()),
    )
    .unwrap();
    let enrolled = Command::new(common::workspace_binary("xl-agent"))
        .args([
            "enroll",
            "--center",
            &format!("http://{}", center.http_addr),
            "--token",
            created["token"].as_str().unwrap(),
            // The fingerprint the county's command carries: its last word.
            "--center-key-fingerprint",
            created["command"].as_str().unwrap().rsplit(' ').next().unwrap(),
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));

    let (code, out) = doctor(&config, &[]);
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all 9 checks passed"), "{out}");
    assert!(!out.contains("WARN") && !out.contains("FAIL"), "{out}");
    assert!(line(&out, "camera gate").contains("H.264 (constrained-baseline) 768x576"), "{out}");
    assert!(line(&out, "broker").contains("logged in with this box's password"), "{out}");
    assert!(line(&out, "model sha256").contains("matches"), "{out}");
    assert!(line(&out, "clock").starts_with("ok"), "{out}");

    // An outbox found corrupt at a start lies moved aside: a warning until it is dealt with.
    let aside = config.parent().unwrap().join("data").join("outbox.corrupt-1796000000000");
    std::fs::create_dir_all(&aside).unwrap();
    let (code, out) = doctor(&config, &[]);
    assert_eq!(code, 0, "a warning: {out}");
    let outbox = line(&out, "outbox");
    assert!(
        outbox.starts_with("WARN") && outbox.contains("1 corrupt outbox(es) moved aside"),
        "{out}"
    );
    std::fs::remove_dir_all(&aside).unwrap();

    // A wrong broker password.
    let text = std::fs::read_to_string(&config).unwrap();
    let start_pw = text.find("password = \"").unwrap() + "password = \"".len();
    let end_pw = start_pw + text[start_pw..].find('"').unwrap();
    let wrong = dir.path().join("wrong-password.toml");
    std::fs::write(&wrong, format!("{}not-the-password{}", &text[..start_pw], &text[end_pw..]))
        .unwrap();
    let (code, out) = doctor(&wrong, &[]);
    assert_eq!(code, 1);
    let broker = line(&out, "broker");
    assert!(
        broker.starts_with("FAIL")
            && out.contains("fix: the embedded broker closes it on a wrong password"),
        "{out}"
    );
    assert!(line(&out, "camera gate").starts_with("ok"), "only the broker is named: {out}");

    // A camera that is not there.
    let gone = dir.path().join("camera-gone.toml");
    // In the box's own file this time, with a data directory holding no pushed config.
    let local_camera = "\n[[cameras]]\nid = \"gate\"\nurl = \"rtsp://127.0.0.1:1/gate\"\n";
    std::fs::write(
        &gone,
        text.replace("data_dir = \"data\"", "data_dir = \"gone-data\"") + local_camera,
    )
    .unwrap();
    let (code, out) = doctor(&gone, &[]);
    assert_eq!(code, 1);
    let camera_line = line(&out, "camera gate");
    assert!(
        camera_line.starts_with("FAIL")
            && camera_line.contains("rtsp://127.0.0.1:1/gate: Could not open resource"),
        "{out}"
    );
    assert!(line(&out, "broker").starts_with("ok"), "{out}");

    // GStreamer with none of its plugins (an empty plugin path and a fresh registry).
    let empty = dir.path().join("no-plugins");
    std::fs::create_dir_all(&empty).unwrap();
    let registry = dir.path().join("registry.bin");
    let (code, out) = doctor(
        &config,
        &[
            ("GST_PLUGIN_SYSTEM_PATH_1_0", empty.to_str().unwrap()),
            ("GST_PLUGIN_PATH_1_0", empty.to_str().unwrap()),
            ("GST_REGISTRY_1_0", registry.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 1);
    let gst_line = line(&out, "gstreamer");
    assert!(
        gst_line.starts_with("FAIL")
            && gst_line.contains("missing elements: uridecodebin, videoconvert, appsink, rtspsrc"),
        "{out}"
    );
    assert!(out.contains("fix: apt install gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav"), "{out}");

    // A damaged model.
    let damaged = dir.path().join("damaged-model.toml");
    std::fs::write(models.join("other.onnx.sha256"), format!("{}  other.onnx\n", "0".repeat(64)))
        .unwrap();
    std::os::unix::fs::symlink(scenario::model(), models.join("other.onnx")).unwrap();
    std::os::unix::fs::symlink(
        scenario::model().with_extension("card.toml"),
        models.join("other.card.toml"),
    )
    .unwrap();
    std::fs::write(&damaged, text.replace("nanodet_g416_coco.onnx", "other.onnx")).unwrap();
    let (code, out) = doctor(&damaged, &[]);
    assert_eq!(code, 1);
    assert!(line(&out, "model sha256").starts_with("FAIL"), "{out}");
    shutdown.cancel();
    center.join().await;
}
