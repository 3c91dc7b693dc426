//! Supervision over real MQTT and HTTP: a dispatch is published again until its unit receives
//! it, a unit that never marks it received makes the alarm overdue once (raised and sent to the
//! second route); a webhook that fails for good shows on the alarm and is raised as its own
//! event; a box that goes silent (its last will, its connection cut) is one `agent_offline`
//! event and one `agent_back` when it returns; a box whose outbox dropped alarms, a box whose
//! clock is five minutes ahead and the center's own low disk are one event each. Every timer
//! is waited out more than once over, so a repeat would show.

mod common;

use std::time::{Duration, Instant};

use common::Api;
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::access::{Role, add_user};
use xueliang_center::dispatch::RetryPolicy;
use xueliang_center::domain::{Action, AlarmRecord, Status, Step};
use xueliang_center::running::start;
use xueliang_center::store::{FromBelow, Incoming, Received};
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{
    AgentStatus, Alarm, Detection, Dispatch, Health, Message, RuleKind, Severity,
};
use xueliang_testkit::scenario;

const PASSWORD: &str = "a-long-test-password";
/// Seconds of silence, and to receive a dispatch, before supervision says so.
const LIMIT_S: u64 = 3;

fn routing(webhook: &str) -> String {
    format!(
        r#"
[[unit]]
id = "pcs-a"
name = "A镇派出所"
type = "police_station"
webhook = "{webhook}"

[[unit]]
id = "township"
name = "镇综治办"
type = "township_office"

[[route]]
id = "everything"
units = ["pcs-a"]

[escalation]
after_s = 3600
units = ["township"]

[supervision]
agent_silent_after_s = {LIMIT_S}
receive_within_s = {LIMIT_S}
resend_dispatch_s = 1
clock_skew_s = 60
"#
    )
}

fn status(agent: &str, state: State) -> Vec<u8> {
    AgentStatus {
        agent_id: agent.into(),
        state: state as i32,
        version: "0.1.0".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Says `agent` is online, retained, as a box does when it connects.
async fn online(client: &AsyncClient, agent: &str) {
    let topic = format!("xl/v1/{agent}/status");
    client.publish(topic, QoS::AtLeastOnce, true, status(agent, State::Online)).await.unwrap();
}

/// An MQTT client of the center's broker named `id`, with `will` as its last will, and the
/// task driving it (aborting it cuts the connection without a goodbye, as a power cut does).
async fn client(
    addr: &str,
    id: &str,
    will: Option<LastWill>,
) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut options = MqttOptions::new(id, host, port.parse().unwrap());
    options.set_keep_alive(Duration::from_secs(5));
    if let Some(will) = will {
        options.set_last_will(will);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let task = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    (client, task)
}

/// The supervision events of `kind` about `agent` the duty officer sees.
async fn events(duty: &Api, kind: &str, agent: &str) -> Vec<Value> {
    let list = duty.json(&format!("/api/alarms?kind={kind}&agent={agent}")).await;
    list["alarms"].as_array().unwrap().clone()
}

/// Waits (up to 20 s) until there is an event of `kind` about `agent`; returns the events.
async fn wait_event(duty: &Api, kind: &str, agent: &str) -> Vec<Value> {
    let t0 = Instant::now();
    loop {
        let found = events(duty, kind, agent).await;
        if !found.is_empty() {
            return found;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "an {kind} event of {agent} within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_goes_wrong_with_boxes_dispatches_and_the_disk_is_raised_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    // Only registered boxes are watched.
    for agent in ["village-a", "village-b", "village-c"] {
        scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    }
    // Nothing listens there: every webhook attempt is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    std::fs::write(center_dir.join("routing.toml"), routing(&format!("http://{closed}/hook")))
        .unwrap();
    let users = center_dir.join("users.toml");
    add_user(&users, "duty", None, Role::DutyOfficer, None, PASSWORD).unwrap();
    add_user(&users, "police-a", None, Role::Police, Some("pcs-a"), PASSWORD).unwrap();
    let shutdown = CancellationToken::new();
    let mut config = common::center_config(dir.path(), common::embedded_broker());
    config.webhook_retry = RetryPolicy {
        first: Duration::from_millis(100),
        max: Duration::from_millis(200),
        attempts: 3,
        timeout: Duration::from_secs(1),
    };
    config.escalation_check = Duration::from_millis(200);
    // More than any disk has: the center's disk is low from the start.
    config.min_free_bytes = u64::MAX / 4;
    let center = start(config, shutdown.clone()).await.unwrap();
    let http = center.http_addr;
    let duty = Api::login(http, "duty", PASSWORD).await;

    // One alarm, acknowledged and dispatched to a station that never marks it received.
    let (mqtt, mut dispatches) =
        common::connect_when_ingesting(&center.mqtt_addr, "pcs-a-console").await;
    mqtt.subscribe("xl/v1/dispatch/pcs-a", QoS::AtLeastOnce).await.unwrap();
    let sealer = Sealer::open(&dir.path().join("village-a")).unwrap();
    let alarm = Alarm {
        id: "village-a-1".into(),
        agent_id: "village-a".into(),
        camera_id: "pond".into(),
        rule_id: "pond-rule".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: xueliang_proto::endpoint::now_ms() - 1000,
        detections: vec![Detection {
            class_name: "person".into(),
            score: 0.9,
            ..Default::default()
        }],
        snapshot_jpeg: b"a picture".to_vec().into(),
        ..Default::default()
    };
    let sealed = sealer.seal(alarm.clone(), usize::MAX).unwrap();
    mqtt.publish("xl/v1/village-a/alarm", QoS::AtLeastOnce, false, sealed.message).await.unwrap();
    common::wait_for_alarm(http, Duration::from_secs(10)).await.expect("the alarm is stored");
    for (action, body) in [("acknowledge", json!({})), ("dispatch", json!({"units": ["pcs-a"]}))] {
        let resp = duty.post(&format!("/api/alarms/village-a-1/{action}")).json(&body);
        assert!(resp.send().await.unwrap().status().is_success(), "{action}");
    }
    // And an event a county below forwarded, dispatched there to a unit of the same name and
    // never received: the county watches it; here it is neither overdue nor sent again.
    let mut forwarded = AlarmRecord::from_alarm(
        &Alarm { id: "county-b-1".into(), agent_id: "county-b-box".into(), ..alarm },
        xueliang_proto::endpoint::now_ms(),
    );
    forwarded.status = Status::Dispatched;
    forwarded.dispatched_to = vec!["pcs-a".into()];
    forwarded.timeline.push(Step {
        action: Action::Dispatch,
        status: Status::Dispatched,
        by: "county-duty".into(),
        at_ms: xueliang_proto::endpoint::now_ms() - 60_000,
        note: String::new(),
        units: vec!["pcs-a".into()],
    });
    let incoming = Incoming { origin: "330102", seq: 1, record: Some(&forwarded), thumbnail: b"" };
    let stored = FromBelow::open(&center.store).unwrap().receive(&[incoming], 1).unwrap();
    assert!(matches!(stored[0], Received::Stored(_)), "{stored:?}");
    center.store.flush().await.unwrap();

    // The box village-b: online, then its connection cut; its last will says offline.
    let will = LastWill::new(
        "xl/v1/village-b/status",
        status("village-b", State::Offline),
        QoS::AtLeastOnce,
        true,
    );
    let (box_b, driver) = client(&center.mqtt_addr, "village-b", Some(will)).await;
    online(&box_b, "village-b").await;
    // village-c: its outbox dropped 2 alarms, and its clock is five minutes ahead.
    let now = xueliang_proto::endpoint::now_ms();
    for i in 0..3 {
        let health = Health {
            agent_id: "village-c".into(),
            time_ms: now + 300_000 + i * 1000,
            outbox_dropped: 2,
            ..Default::default()
        };
        mqtt.publish("xl/v1/village-c/health", QoS::AtLeastOnce, false, health.encode_to_vec())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    driver.abort();

    let offline = wait_event(&duty, "agent_offline", "village-b").await;
    assert_eq!(offline[0]["routed_to"], json!(["pcs-a"]), "routed like any alarm");
    assert_eq!(offline[0]["status"], "new");
    assert!(offline[0]["detail"].as_str().unwrap().contains("not been heard from"), "{offline:?}");
    let dropped = wait_event(&duty, "agent_dropped_alarms", "village-c").await;
    assert!(dropped[0]["detail"].as_str().unwrap().contains("dropped 2 alarm"), "{dropped:?}");
    let clock = wait_event(&duty, "agent_clock_off", "village-c").await;
    assert!(clock[0]["detail"].as_str().unwrap().contains("s ahead of the center"), "{clock:?}");
    wait_event(&duty, "center_disk_low", "center").await;
    let failed = wait_event(&duty, "dispatch_failed", "village-a").await;
    let says = failed[0]["detail"].as_str().unwrap();
    assert!(says.contains("pcs-a") && says.contains("village-a-1"), "{says}");
    let detail = duty.json("/api/alarms/village-a-1").await;
    assert_eq!(detail["webhooks"][0]["state"], "failed", "shown on the alarm: {detail}");
    assert_eq!(detail["webhooks"][0]["attempts"], 3);

    // Overdue once the station has not received it in time: raised, sent to the second route.
    let t0 = Instant::now();
    let overdue = loop {
        let a = duty.json("/api/alarms/village-a-1").await;
        if a["overdue"] == json!(["pcs-a"]) {
            break a;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "overdue within 20 s: {a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(overdue["severity"], "critical", "raised from high");
    assert_eq!(overdue["dispatched_to"], json!(["pcs-a", "township"]));
    let timeline = overdue["timeline"].as_array().unwrap();
    let last = timeline.last().unwrap().clone();
    let waited = last["at_ms"].as_i64().unwrap() - timeline[1]["at_ms"].as_i64().unwrap();
    assert!(waited >= LIMIT_S as i64 * 1000, "not before its time: {waited} ms");
    assert_eq!((last["action"].as_str(), last["by"].as_str()), (Some("overdue"), Some("system")));
    assert_eq!(last["units"], json!(["pcs-a", "township"]));

    // The box comes back, and reports its Health every second as a box does.
    let (box_b, _driver) = client(&center.mqtt_addr, "village-b", None).await;
    online(&box_b, "village-b").await;
    let reporting = tokio::spawn(async move {
        loop {
            let health = Health {
                agent_id: "village-b".into(),
                time_ms: xueliang_proto::endpoint::now_ms(),
                ..Default::default()
            };
            let payload = health.encode_to_vec();
            let _ = box_b.publish("xl/v1/village-b/health", QoS::AtLeastOnce, false, payload).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    wait_event(&duty, "agent_back", "village-b").await;

    // Waited out three times over: nothing is raised twice.
    tokio::time::sleep(Duration::from_secs(3 * LIMIT_S)).await;
    for (kind, agent) in [
        ("agent_offline", "village-b"),
        ("agent_back", "village-b"),
        // village-c fell silent too, after its three reports.
        ("agent_offline", "village-c"),
        ("agent_dropped_alarms", "village-c"),
        ("agent_clock_off", "village-c"),
        ("center_disk_low", "center"),
        ("dispatch_failed", "village-a"),
    ] {
        assert_eq!(events(&duty, kind, agent).await.len(), 1, "one {kind} event of {agent}");
    }
    let a = duty.json("/api/alarms/village-a-1").await;
    let steps: Vec<&str> =
        a["timeline"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(steps, ["acknowledge", "dispatch", "overdue"], "overdue once");
    let theirs = duty.json("/api/alarms/county-b-1").await;
    assert_eq!(theirs["timeline"].as_array().unwrap().len(), 1, "not overdue here: {theirs}");

    // The dispatch went out again and again, the same one; once received, no more.
    let mut copies = Vec::new();
    while let Ok(p) = dispatches.try_recv() {
        copies.push(Dispatch::decode(p.payload).unwrap().dispatch_id);
    }
    assert!(copies.len() >= 3, "published again until received: {copies:?}");
    assert!(copies.iter().all(|id| id == "village-a-1~pcs-a"), "{copies:?}");
    let police = Api::login(http, "police-a", PASSWORD).await;
    let resp = police.post("/api/alarms/village-a-1/receive").json(&json!({})).send().await;
    assert!(resp.unwrap().status().is_success());
    tokio::time::sleep(Duration::from_secs(1)).await;
    while dispatches.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(dispatches.try_recv().is_err(), "nothing sent again after it was received");
    eprintln!(
        "supervision: overdue {:.1} s after the dispatch; {} copies of it published before it \
         was received",
        waited as f64 / 1000.0,
        copies.len(),
    );
    reporting.abort();
    shutdown.cancel();
    center.join().await;
}
