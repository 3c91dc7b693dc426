//! Enrolment end to end: an administrator creates a one-time token; `xl-agent enroll` on the box
//! redeems it against a live center (embedded broker with passwords), which registers the box's
//! key and broker password and hands over the config it has for it; the box then runs and its
//! alarms are stored. A used, an expired and an unknown token, and an unreachable center, are
//! refused with messages that say what to do.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use xueliang_center::running::{BrokerChoice, key_path, start};
use xueliang_proto::enrolment::key_fingerprint;
use xueliang_proto::signing::SigningKey;
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

/// Runs `xl-agent enroll` and returns its exit code, stdout and stderr.
fn enroll(
    center: &str,
    token: &str,
    fingerprint: &str,
    config: &std::path::Path,
) -> (i32, String, String) {
    let out = Command::new(common::workspace_binary("xl-agent"))
        .args(["enroll", "--center", center, "--token", token])
        .args(["--center-key-fingerprint", fingerprint, "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_enrols_with_its_token_and_delivers_and_tokens_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        passwords: true,
    };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let api = common::Api::admin(center.http_addr).await;
    let base = format!("http://{}", center.http_addr);
    let center_key =
        SigningKey::load_or_create(&key_path(&dir.path().join("center"))).unwrap().public_key();

    // The county configures the box before it exists (once its token is made): a camera and a
    // rule.
    let camera = RtspServer::serve_file(&scenario::vtest(), "gate").expect("RTSP server");
    let pushed = format!(
        "[[cameras]]\nid = \"gate\"\nurl = \"{}\"\ntransport = \"tcp\"\n\
         [[zones]]\nid = \"walkway\"\ncamera = \"gate\"\npoints = [[0.05, 0.35], [0.95, 0.35], [0.95, 0.98], [0.05, 0.98]]\n\
         [[rules]]\nid = \"walkway-intrusion\"\nkind = \"zone_intrusion\"\nzone = \"walkway\"\nseverity = \"high\"\n",
        camera.url("gate")
    );
    let create = |agent: &str, hours: f64| {
        let api = api.clone();
        let body = serde_json::json!({ "agent_id": agent, "valid_hours": hours });
        async move {
            let resp = api.post("/api/enrolments").json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 201);
            resp.json::<serde_json::Value>().await.unwrap()
        }
    };
    let created = create("east-village", 24.0).await;
    // The center takes configs for boxes it knows: registered, or awaiting enrolment.
    assert_eq!(
        api.put("/api/agents/east-village/config").body(pushed).send().await.unwrap().status(),
        200
    );
    let token = created["token"].as_str().unwrap().to_owned();
    let fingerprint = key_fingerprint(&center_key);
    assert_eq!(
        created["command"],
        format!(
            "xl-agent enroll --center {base} --token {token} --center-key-fingerprint {fingerprint}"
        )
    );
    let bad = api
        .post("/api/enrolments")
        .json(&serde_json::json!({ "agent_id": "east/village" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let anonymous = reqwest::Client::new()
        .post(format!("{base}/api/enrolments"))
        .json(&serde_json::json!({ "agent_id": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // On the box: the installer's starting config (as install.sh writes it), then enrol.
    let box_dir = dir.path().join("box");
    std::fs::create_dir_all(&box_dir).unwrap();
    let config = box_dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "# written by the installer\ndata_dir = \"data\"\n\n[model]\npath = \"{}\"\n",
            scenario::model().display()
        ),
    )
    .unwrap();
    // A center whose key is not the one the command names is refused, and nothing is written.
    let other = create("west-village", 1.0).await;
    let elsewhere = box_dir.join("elsewhere.toml");
    let (code, _, err) =
        enroll(&base, other["token"].as_str().unwrap(), "0000-0000-0000-0000", &elsewhere);
    assert_ne!(code, 0);
    assert!(
        err.contains("not 0000-0000-0000-0000") && err.contains("nothing was written"),
        "{err}"
    );
    assert!(!elsewhere.exists(), "no config written for a center that is not the county's");

    let (code, out, err) = enroll(&base, &token.to_lowercase(), &fingerprint, &config);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("enrolled as east-village"), "{out}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o640);
    assert!(
        text.starts_with("# written by the installer\n"),
        "the installer's file is edited, not replaced:\n{text}"
    );
    for needle in [
        "agent_id = \"east-village\"",
        "username = \"east-village\"",
        "password = \"",
        "center_key = \"",
        "center_url = \"",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(
        text.contains(&format!(
            "url = \"mqtt://127.0.0.1:{}\"",
            center.mqtt_addr.rsplit(':').next().unwrap()
        )),
        "{text}"
    );
    // The county's config is kept as the pushed config in force (signed), not merged into the file.
    assert!(
        box_dir.join("data/pushed-config.pb").is_file(),
        "the county's config is kept for the first start"
    );
    assert!(out.contains("its config version 1"), "{out}");
    let check = Command::new(common::workspace_binary("xl-agent"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // The box runs as enrolled: its alarms get through the password-checking broker and verify.
    let log = box_dir.join("agent.log");
    let mut agent = common::Reaper(
        Command::new(common::workspace_binary("xl-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    let alarm = common::wait_for_alarm_where(center.http_addr, Duration::from_secs(90), |a| {
        a.agent_id == "east-village"
    })
    .await;
    let alarm = alarm.expect("an alarm from the enrolled box");
    assert_eq!((alarm.camera_id.as_str(), alarm.rule_id.as_str()), ("gate", "walkway-intrusion"));
    // Connected, it receives the retained version 1: already in force, not applied again (which
    // would restart the camera and raise the same people's alarm twice).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = agent.0.kill();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("running config version 1 pushed by the center"), "{log}");
    assert!(!log.contains("pushed config applied"), "{log}");

    // A token works once.
    let (code, _, err) = enroll(&base, &token, &fingerprint, &box_dir.join("again.toml"));
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "the center refused the enrolment: this enrolment token was already used, at "
        ) && err.contains("to enrol east-village: a token works once"),
        "{err}"
    );
    // An expired one.
    let late = create("west-village", 0.0003).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, _, err) =
        enroll(&base, late["token"].as_str().unwrap(), &fingerprint, &box_dir.join("late.toml"));
    assert_eq!(code, 1);
    assert!(err.contains("this enrolment token for west-village expired at "), "{err}");
    assert!(!box_dir.join("late.toml").exists(), "nothing written when refused");
    // A mistyped one, and a center that is not there.
    let (code, _, err) =
        enroll(&base, "AAAAA-BBBBB-CCCCC-DDDDD", &fingerprint, &box_dir.join("typo.toml"));
    assert_eq!(code, 1);
    assert!(err.contains("this is not an enrolment token of this center"), "{err}");
    let (code, _, err) =
        enroll("http://127.0.0.1:1", &token, &fingerprint, &box_dir.join("nowhere.toml"));
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the center at http://127.0.0.1:1"), "{err}");

    // The administrator sees who used what, and the audit log has the enrolment.
    let list = api.json("/api/enrolments").await;
    let used: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["used_ms"].is_null())
        .map(|e| e["agent_id"].clone())
        .collect();
    // West village's token was spent by the box that then refused its center's fingerprint.
    assert_eq!(used, [serde_json::json!("west-village"), serde_json::json!("east-village")]);
    let audit = api.json("/api/audit?target=east-village").await.to_string();
    assert!(audit.contains("\"enrol\"") && audit.contains("create_enrolment"), "{audit}");
    shutdown.cancel();
    center.join().await;
}
