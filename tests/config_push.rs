//! Configuration push, end to end on the embedded broker. The center checks a config as the box
//! will and refuses a bad one (422, every problem at its line and column, as `xl-agent
//! check-config` prints it), an empty one, and one for a box it does not know (404); one that
//! would take a privacy mask away or leave the box no camera needs `?confirm=` (409 names each
//! camera and mask). Every version is kept with who pushed it, and the audit log holds its diff.
//! What passes is published signed and versioned: the running agent adds a camera and a rule
//! without a restart and answers "applied"; a config only the box can find wrong (a class its
//! model lacks) is refused by the box with its reason, and the version before keeps running.

mod common;

use std::time::{Duration, Instant};

use common::Scenario;
use serde_json::Value;
use xueliang_center::fleet::ConfigRecord;
use xueliang_testkit::scenario::VTEST_WALKWAY;

const AGENT: &str = "push-village";

/// The second camera's privacy mask: the top of the picture, above the walkway.
const TOP_STRIP: &str = "[[0.0, 0.0], [1.0, 0.0], [1.0, 0.3], [0.0, 0.3]]";

/// Cameras, zones and rules: the walkway camera as before, plus a second camera on the same
/// stream with its own rule and `second_masks` as its privacy masks; `extra` is appended.
fn pushed(camera_url: &str, second_masks: &[&str], extra: &str) -> String {
    let zone: Vec<String> = VTEST_WALKWAY.iter().map(|[x, y]| format!("[{x}, {y}]")).collect();
    let zone = zone.join(", ");
    let mut toml = String::new();
    for (camera, rule) in
        [("campus-walkway", "walkway-intrusion"), ("walkway-second", "second-intrusion")]
    {
        toml.push_str(&format!(
            "[[cameras]]\nid = \"{camera}\"\nurl = \"{camera_url}\"\ntransport = \"tcp\"\n"
        ));
        if camera == "walkway-second" && !second_masks.is_empty() {
            toml.push_str(&format!("privacy_masks = [{}]\n", second_masks.join(", ")));
        }
        toml.push_str(&format!(
            "\n[[zones]]\nid = \"{camera}-zone\"\ncamera = \"{camera}\"\npoints = [{zone}]\n\n\
             [[rules]]\nid = \"{rule}\"\nkind = \"zone_intrusion\"\nzone = \"{camera}-zone\"\n\
             min_frames = 3\ncooldown_s = 10\nseverity = \"high\"\n\n"
        ));
    }
    toml + extra
}

/// `PUT` of `toml` to `agent`'s config with `query`: the status and the JSON body.
async fn put(http: std::net::SocketAddr, agent: &str, query: &str, toml: &str) -> (u16, Value) {
    let resp = common::Api::admin(http)
        .await
        .put(&format!("/api/agents/{agent}/config{query}"))
        .body(toml.to_owned())
        .send()
        .await
        .expect("push request");
    (resp.status().as_u16(), resp.json().await.expect("a JSON body"))
}

async fn push(http: std::net::SocketAddr, query: &str, toml: &str) -> ConfigRecord {
    let (status, body) = put(http, AGENT, query, toml).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("config record")
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

/// Line and column (from 1) where `needle` starts in `text`.
fn place(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap_or_else(|| panic!("{needle} not in {text}"));
    let line = text[..at].matches('\n').count() + 1;
    (line, at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_config_is_checked_confirmed_kept_and_applied_live() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker();
    let s = Scenario::start(dir.path(), AGENT, broker).await;
    let (http, mqtt) = (s.center.http_addr, s.center.mqtt_addr.clone());
    assert_eq!(wait_for_cameras(&mqtt, 1).await, ["campus-walkway"]);
    assert_eq!(announced_version(&mqtt).await, 0, "running the local file");
    let url = s.camera_url();

    // What the box would refuse, the center refuses first, with the box's messages at their
    // line and column: nothing is stored, no version is used up.
    let lake = "[[rules]]\nid = \"lake-watch\"\nkind = \"zone_intrusion\"\nzone = \"lake\"\n";
    let bad = pushed(&url, &[], lake);
    let (status, body) = put(http, AGENT, "", &bad).await;
    assert_eq!(status, 422, "{body}");
    let (line, column) = place(&bad, "\"lake\"");
    assert_eq!(
        body["error"],
        format!(
            "{AGENT}.toml:{line}:{column}: rules[2].zone: no zone with id \"lake\"\n    \
             hint: zones: campus-walkway-zone, walkway-second-zone"
        )
    );
    assert_eq!(body["problems"][0]["line"], line);
    assert_eq!(body["problems"][0]["column"], column);
    // Not TOML at all: the parser's message at its place.
    let (status, body) = put(http, AGENT, "", "[[cameras]\n").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with(&format!("{AGENT}.toml:1:")), "{body}");
    // Empty, or only blanks: a push replaces every camera, so this is no way to clear them.
    for empty in ["", " \n\t\n"] {
        let (status, body) = put(http, AGENT, "", empty).await;
        assert_eq!(status, 422, "{empty:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{AGENT}.toml:1:1: the config is empty")),
            "{body}"
        );
    }
    // A camera password would be read by anyone who may read the topic: refused, with where to
    // put it instead, and not repeated back.
    let secret = "[[cameras]]\nid = \"gate\"\nurl = \"rtsp://admin:s3cret@10.0.0.5/101\"\n";
    let (status, body) = put(http, AGENT, "", secret).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{AGENT}.toml:3:7: cameras[0].url: carries a camera password")),
        "{body}"
    );
    assert!(error.contains("[camera_logins]") && !error.contains("s3cret"), "{body}");
    // A box the center does not know.
    let (status, body) = put(http, "nowhere-village", "", &pushed(&url, &[], "")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("\"nowhere-village\""), "{body}");
    let record = common::Api::admin(http).await.get(&format!("/api/agents/{AGENT}/config"));
    assert_eq!(record.send().await.unwrap().status(), 404, "no version stored");

    // Version 1 adds a camera (with a privacy mask) and its rule: applied without a restart.
    let v1 = push(http, "", &pushed(&url, &[TOP_STRIP], "")).await;
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

    // Taking the mask away, or shrinking it, needs saying so; the refusal names camera and mask.
    let without_mask = pushed(&url, &[], "");
    let (status, body) = put(http, AGENT, "", &without_mask).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "this config would remove or shrink privacy masks: camera \"walkway-second\": \
         privacy_masks[0] would be removed. If that is meant, push it again with \
         ?confirm=remove-privacy-mask"
    );
    assert_eq!(body["confirm"], "remove-privacy-mask");
    assert_eq!(body["affected"][0]["camera"], "walkway-second");
    let half = "[[0.0, 0.0], [0.5, 0.0], [0.5, 0.3], [0.0, 0.3]]";
    let (status, body) = put(http, AGENT, "", &pushed(&url, &[half], "")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("privacy_masks[0] would shrink"), "{body}");
    // Leaving the box without a camera names every camera it has.
    let (status, body) = put(http, AGENT, "", "timezone = \"Asia/Shanghai\"\n").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["confirm"], "no-camera");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("\"campus-walkway\" would stop")
            && error.contains("\"walkway-second\" would stop"),
        "{body}"
    );
    // Confirmed: version 2, and the box runs it.
    let v2 = push(http, "?confirm=remove-privacy-mask", &without_mask).await;
    assert_eq!(v2.version, 2);
    assert!(answer(http, 2).await.ack.unwrap().applied);

    // Version 3 watches a class the box's model does not have: only the box can tell. It is
    // refused there with its reason, and version 2 keeps running.
    let unicorn = "[[rules]]\nid = \"unicorns\"\nkind = \"zone_intrusion\"\n\
                   zone = \"campus-walkway-zone\"\nclasses = [\"unicorn\"]\n";
    assert_eq!(push(http, "", &pushed(&url, &[], unicorn)).await.version, 3);
    let ack = answer(http, 3).await.ack.unwrap();
    assert!(!ack.applied);
    assert_eq!(
        ack.reason,
        "config: rules[2].classes: \"unicorn\" is not a class of model nanodet-g-416-coco"
    );
    assert_eq!(announced_version(&mqtt).await, 2);
    assert_eq!(wait_for_cameras(&mqtt, 2).await, ["campus-walkway", "walkway-second"]);

    // Every version is kept, with who pushed it and what it changed; the audit log says so too.
    let api = common::Api::admin(http).await;
    let history = api.json(&format!("/api/agents/{AGENT}/config/history")).await;
    let versions = history["versions"].as_array().unwrap();
    let numbers: Vec<u64> = versions.iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert!(versions.iter().all(|v| v["pushed_by"] == common::TEST_ADMIN.0), "{history}");
    let removed_line = format!("\n-privacy_masks = [{TOP_STRIP}]\n");
    assert!(versions[1]["diff"].as_str().unwrap().contains(&removed_line), "{history}");
    let audit = api.json(&format!("/api/audit?target={AGENT}")).await;
    let pushes: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "push_config")
        .collect();
    assert_eq!(pushes.len(), 3, "one entry per version, none for a refusal: {audit}");
    let v2_entry = pushes[1];
    assert_eq!(v2_entry["user"], common::TEST_ADMIN.0);
    let detail = v2_entry["detail"].as_str().unwrap();
    assert!(detail.starts_with("version 2\n--- version 1\n+++ version 2\n"), "{detail}");
    assert!(detail.contains(&removed_line), "{detail}");
    s.stop().await;
}
