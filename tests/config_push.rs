//! Configuration push, end to end on the embedded broker: the center publishes a signed,
//! versioned config; the running agent adds a camera and a rule without a restart and answers
//! "applied"; a config with an invalid rule is refused with its reason, and the agent keeps
//! running the config before it.

mod common;

use std::time::{Duration, Instant};

use common::Scenario;
use xueliang_center::fleet::ConfigRecord;
use xueliang_center::running::BrokerChoice;
use xueliang_testkit::scenario::VTEST_WALKWAY;

const AGENT: &str = "push-village";

/// Cameras, zones and rules: the walkway camera as before, plus a second camera on the same
/// stream with its own rule; `extra` is appended.
fn pushed(camera_url: &str, extra: &str) -> String {
    let zone: Vec<String> = VTEST_WALKWAY.iter().map(|[x, y]| format!("[{x}, {y}]")).collect();
    let zone = zone.join(", ");
    let mut toml = String::new();
    for (camera, rule) in
        [("campus-walkway", "walkway-intrusion"), ("walkway-second", "second-intrusion")]
    {
        toml.push_str(&format!(
            "[[cameras]]\nid = \"{camera}\"\nurl = \"{camera_url}\"\ntransport = \"tcp\"\n\n\
             [[zones]]\nid = \"{camera}-zone\"\ncamera = \"{camera}\"\npoints = [{zone}]\n\n\
             [[rules]]\nid = \"{rule}\"\nkind = \"zone_intrusion\"\nzone = \"{camera}-zone\"\n\
             min_frames = 3\ncooldown_s = 10\nseverity = \"high\"\n\n"
        ));
    }
    toml + extra
}

async fn push(http: std::net::SocketAddr, toml: String) -> ConfigRecord {
    let resp = common::Api::admin(http)
        .await
        .put(&format!("/api/agents/{AGENT}/config"))
        .body(toml)
        .send()
        .await
        .expect("push request");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    resp.json().await.expect("config record")
}

/// Polls the center until the agent has answered version `version`.
async fn answer(http: std::net::SocketAddr, version: u64) -> ConfigRecord {
    let t0 = Instant::now();
    let api = common::Api::admin(http).await;
    loop {
        let record: ConfigRecord =
            serde_json::from_value(api.json(&format!("/api/agents/{AGENT}/config")).await).unwrap();
        if record.ack.as_ref().is_some_and(|a| a.version == version) {
            return record;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no answer to version {version}: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agent's retained status: the config version it announces.
async fn announced_version(mqtt: &str) -> u64 {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let addr: std::net::SocketAddr = mqtt.parse().unwrap();
    let (client, mut events) =
        AsyncClient::new(MqttOptions::new("status-watch", addr.ip().to_string(), addr.port()), 10);
    client.subscribe(format!("xl/v1/{AGENT}/status"), QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                let status: xueliang_proto::AgentStatus =
                    xueliang_proto::decode_limited(&p.payload).unwrap();
                return status.config_version;
            }
        }
    })
    .await
    .expect("a retained status")
}

/// Health reports until one lists `cameras` cameras, all decoding and inferred.
async fn wait_for_cameras(mqtt: &str, cameras: usize) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let h = common::next_health(mqtt, AGENT, Duration::from_secs(15)).await;
        if h.cameras.len() == cameras
            && h.cameras.iter().all(|c| c.online && c.decode_fps > 0.0 && c.infer_fps > 0.0)
        {
            return h.cameras.into_iter().map(|c| c.camera_id).collect();
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{cameras} cameras running: {h:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_config_applies_live_and_an_invalid_one_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        passwords: false,
    };
    let s = Scenario::start(dir.path(), AGENT, broker).await;
    let (http, mqtt) = (s.center.http_addr, s.center.mqtt_addr.clone());
    assert_eq!(wait_for_cameras(&mqtt, 1).await, ["campus-walkway"]);
    assert_eq!(announced_version(&mqtt).await, 0, "running the local file");

    // Version 1 adds a camera and its rule: applied without a restart.
    let v1 = push(http, pushed(&s.camera_url(), "")).await;
    assert_eq!(v1.version, 1);
    let ack = answer(http, 1).await.ack.unwrap();
    assert!(ack.applied, "{ack:?}");
    assert_eq!(wait_for_cameras(&mqtt, 2).await, ["campus-walkway", "walkway-second"]);
    assert_eq!(announced_version(&mqtt).await, 1);
    let from_new_rule = common::wait_for_alarm_where(http, Duration::from_secs(60), |a| {
        a.rule_id == "second-intrusion"
    })
    .await;
    assert_eq!(from_new_rule.expect("an alarm from the pushed rule").camera_id, "walkway-second");

    // Version 2 has a rule on a zone that does not exist: refused, version 1 keeps running.
    let bad_rule = "[[rules]]\nid = \"lake-watch\"\nkind = \"zone_intrusion\"\nzone = \"lake\"\n";
    assert_eq!(push(http, pushed(&s.camera_url(), bad_rule)).await.version, 2);
    let ack = answer(http, 2).await.ack.unwrap();
    assert!(!ack.applied);
    assert_eq!(ack.reason, "rules[2].zone: no zone with id \"lake\"");
    // Still version 1: both cameras decoded and inferred.
    assert_eq!(announced_version(&mqtt).await, 1);
    assert_eq!(wait_for_cameras(&mqtt, 2).await, ["campus-walkway", "walkway-second"]);
    // Not TOML at all: the center refuses it before any agent sees it.
    let resp = common::Api::admin(http)
        .await
        .put(&format!("/api/agents/{AGENT}/config"))
        .body("[[cameras]\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the config is not valid TOML: TOML parse error at line 1"),
        "{body}"
    );
    // A camera password in a pushed config would be read by anyone who may read the topic:
    // refused, with where to put it instead.
    let resp = common::Api::admin(http)
        .await
        .put(&format!("/api/agents/{AGENT}/config"))
        .body("[[cameras]]\nid = \"gate\"\nurl = \"rtsp://admin:s3cret@10.0.0.5/101\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("cameras[0].url carries a camera password"), "{body}");
    assert!(error.contains("[camera_logins]") && !error.contains("s3cret"), "{body}");
    s.stop().await;
}
