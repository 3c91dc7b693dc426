//! End to end on embedded defaults: `vtest.avi` served by a real RTSP server, a real agent
//! (GStreamer, ONNX Runtime, NanoDet), the center with its embedded broker and a sled store;
//! a person-intrusion alarm with a decodable JPEG must come out of the HTTP API.

mod common;

use std::time::Duration;

use common::Scenario;
use xueliang_center::center::BrokerChoice;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_on_the_walkway_becomes_a_stored_alarm_with_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let run = Scenario::start(dir.path(), "e2e-village", embedded).await;
    let center = &run.center;

    let alarm = common::wait_for_alarm(center.http_addr, Duration::from_secs(60))
        .await
        .expect("an alarm within 60 s");
    common::assert_walkway_intrusion(&alarm, "e2e-village");
    common::assert_snapshot_decodes(center.http_addr, &alarm).await;
    // The record also reads back by id, and an unknown id is a JSON 404.
    let by_id: serde_json::Value =
        reqwest::get(format!("http://{}/api/alarms/{}", center.http_addr, alarm.id))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(by_id["id"], alarm.id.as_str());
    let missing = reqwest::get(format!("http://{}/api/alarms/nope/snapshot", center.http_addr))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("no snapshot"));

    run.stop().await;
}
