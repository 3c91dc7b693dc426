//! End to end on embedded defaults: `vtest.avi` served by a real RTSP server, a real agent
//! (GStreamer, ONNX Runtime, NanoDet), the center with its embedded broker and a sled store;
//! a person-intrusion alarm with a decodable JPEG must come out of the HTTP API, and a camera
//! that goes dark and comes back must be reported both times.

mod common;

use std::time::Duration;

use common::Scenario;
use xueliang_center::domain::{AlarmRecord, EventState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_on_the_walkway_becomes_a_stored_alarm_with_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = common::embedded_broker();
    let run = Scenario::start(dir.path(), "e2e-village", embedded).await;
    let center = &run.center;

    let alarm = common::wait_for_alarm(center.http_addr, Duration::from_secs(60))
        .await
        .expect("an alarm within 60 s");
    common::assert_walkway_intrusion(&alarm, "e2e-village");
    common::assert_snapshot_decodes(center.http_addr, &alarm).await;
    // The record also reads back by id, and an unknown id is a JSON 404.
    let api = common::Api::admin(center.http_addr).await;
    let by_id = api.json(&format!("/api/alarms/{}", alarm.id)).await;
    assert_eq!(by_id["id"], alarm.id.as_str());
    let missing = api.get("/api/alarms/nope/snapshot").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "no alarm nope");

    // The agent reports its health every 5 s: the camera decoding and inferring, the outbox.
    let health =
        common::next_health(&run.center.mqtt_addr, "e2e-village", Duration::from_secs(20)).await;
    let cam = &health.cameras[0];
    assert_eq!(cam.camera_id, "campus-walkway");
    assert!(cam.online, "{health:?}");
    assert!(cam.decode_fps > 5.0 && cam.infer_fps > 1.0, "{health:?}");
    assert!(cam.inference_ms > 1.0, "{health:?}");
    assert!(
        health.outbox_depth <= 2 && health.outbox_dropped == 0,
        "receipted alarms leave: {health:?}"
    );

    // The center's fleet page shows the same: the agent online, its camera inferring.
    let t0 = std::time::Instant::now();
    let agent = loop {
        let fleet = api.json("/api/fleet").await;
        let agent = fleet["agents"][0].clone();
        if agent["health"]["cameras"][0]["infer_fps"].as_f64().unwrap_or(0.0) > 1.0 {
            break agent;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{fleet}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        (agent["agent_id"].as_str(), agent["online"].as_bool(), agent["registered"].as_bool()),
        (Some("e2e-village"), Some(true), Some(true))
    );
    assert_eq!(agent["health"]["cameras"][0]["camera_id"], "campus-walkway");

    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_goes_dark_and_returns_is_one_offline_event_that_ends() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = common::embedded_broker();
    // Offline after 3 s of loss rather than the default minute, to keep the test short.
    let mut run = Scenario::start_tuned(dir.path(), "dark-village", embedded, "", |c| {
        c.cameras[0].offline_after_s = 3.0;
    })
    .await;
    let http = run.center.http_addr;
    common::wait_for_alarm(http, Duration::from_secs(60)).await.expect("the camera works first");

    run.cut_camera();
    let offline =
        common::wait_for_alarm_where(http, Duration::from_secs(30), |a| a.kind == "camera_offline")
            .await
            .expect("a camera_offline event within 30 s");
    assert_eq!(
        (offline.camera_id.as_str(), offline.rule_id.as_str()),
        ("campus-walkway", "camera-offline")
    );
    assert_eq!((offline.severity.as_str(), offline.state), ("high", EventState::Ongoing));

    // Its return ends the offline event: one record, ended, not a second alarm.
    run.restore_camera();
    let api = common::Api::admin(http).await;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let r: AlarmRecord =
                serde_json::from_value(api.json(&format!("/api/alarms/{}", offline.id)).await)
                    .unwrap();
            if r.state == EventState::Ended {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("the offline event ends within 30 s of the camera's return");
    assert!(ended.ended_ms.is_some_and(|t| t >= offline.event_time_ms), "{ended:?}");
    let list = api.json("/api/alarms?kind=camera_offline").await;
    assert_eq!(list["alarms"].as_array().map(Vec::len), Some(1), "{list}");
    run.stop().await;
}
