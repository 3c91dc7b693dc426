//! The county center's API over real HTTP, fed by signed alarms over its real MQTT broker:
//! filters and cursor pagination; routing to the right units (police stations first); the case
//! workflow with its refusals; a dispatch on the unit's MQTT topic and to its webhook, retried
//! until a local server that fails twice accepts it; escalation of an alarm left new; who may
//! see what (a station sees only its own dispatches, an installer no pictures, nobody anything
//! without logging in); the audit trail; the fleet; the JSON Lines export; and an event's video
//! clip sent as signed chunks, out of order and twice, receipted and served by byte range.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use common::Api;
use reqwest::StatusCode;
use rumqttc::QoS;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::access::{Role, add_user};
use xueliang_center::dispatch::RetryPolicy;
use xueliang_center::running::{RunningCenter, start};
use xueliang_proto::signing::{
    CLIP_CHUNK_FIELDS, CLIP_SIGNATURE_FIELD, DISPATCH_SIGNATURE_FIELD, RECEIPT_SIGNATURE_FIELD,
    SigningKey, VerifyingKey,
};
use xueliang_proto::v1::agent_status::State;
use xueliang_proto::{
    AgentStatus, Alarm, CameraHealth, ClipChunk, Detection, Dispatch, EventUpdate, Health, Message,
    Receipt, RuleKind, Severity,
};
use xueliang_testkit::scenario;

const PASSWORD: &str = "a-long-test-password";
/// Shanghai's time zone (UTC+8 all year).
fn shanghai() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::fixed(jiff::tz::offset(8))
}

/// Yesterday 12:00 in Shanghai: in the past, and recent, as the center refuses event times
/// older than a box's outbox keeps anything.
static T0: LazyLock<i64> = LazyLock::new(|| {
    let yesterday = jiff::Timestamp::now().to_zoned(shanghai()).date().yesterday().unwrap();
    yesterday.at(12, 0, 0, 0).to_zoned(shanghai()).unwrap().timestamp().as_millisecond()
});
const ESCALATE_AFTER_S: i64 = 3;

fn routing(webhook: &str) -> String {
    format!(
        r#"
[[unit]]
id = "pcs-a"
name = "A镇派出所"
type = "police_station"
webhook = "{webhook}"
webhook_secret = "shared-secret"

[[unit]]
id = "patrol-a"
name = "A村网格员"
type = "village_patrol"

[[unit]]
id = "pcs-b"
name = "B镇派出所"
type = "police_station"

[[unit]]
id = "township"
name = "镇综治办"
type = "township_office"

[[group]]
id = "area-a"
name = "A村水库"
cameras = ["village-a/*"]

[[group]]
id = "area-b"
name = "B村路口"
cameras = ["village-b/*"]

[[route]]
id = "a"
groups = ["area-a"]
units = ["patrol-a", "pcs-a"]

[[route]]
id = "b"
groups = ["area-b"]
units = ["pcs-b"]

[escalation]
after_s = {ESCALATE_AFTER_S}
units = ["township"]
"#
    )
}

/// Requests a webhook receiver saw: idempotency key, signature, body.
type Requests = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A local webhook receiver that answers 503 to the first two requests.
struct Webhook {
    url: String,
    requests: Requests,
}

async fn webhook_server() -> Webhook {
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let header = |name: &str| {
                    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
                };
                let mut seen = seen.lock().unwrap();
                seen.push((
                    header("idempotency-key"),
                    header("x-xueliang-signature"),
                    body.to_vec(),
                ));
                if seen.len() <= 2 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Webhook { url, requests }
}

/// The alarms published: (agent, camera, kind, index).
fn alarms() -> Vec<(&'static str, &'static str, RuleKind, usize)> {
    let mut out = Vec::new();
    for i in 0..30 {
        let camera = if i % 3 == 0 { "pond" } else { "gate" };
        let kind = if i % 2 == 0 { RuleKind::ZoneIntrusion } else { RuleKind::Loitering };
        out.push(("village-a", camera, kind, i));
    }
    for i in 30..35 {
        out.push(("village-b", "crossing", RuleKind::VehicleStopped, i));
    }
    out
}

fn alarm_id(agent: &str, i: usize) -> String {
    format!("{agent}-{i:03}")
}

struct Rig {
    center: RunningCenter,
    shutdown: CancellationToken,
    dir: tempfile::TempDir,
    webhook: Webhook,
    mqtt: rumqttc::AsyncClient,
    dispatches: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
    /// When the last alarm was published.
    published: Instant,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    for agent in ["village-a", "village-b"] {
        scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    }
    let webhook = webhook_server().await;
    std::fs::write(center_dir.join("routing.toml"), routing(&webhook.url)).unwrap();
    let users = center_dir.join("users.toml");
    for (login, role, unit) in [
        ("duty", Role::DutyOfficer, None),
        ("police-a", Role::Police, Some("pcs-a")),
        ("police-b", Role::Police, Some("pcs-b")),
        ("installer", Role::Installer, None),
    ] {
        add_user(&users, login, None, role, unit, PASSWORD).unwrap();
    }
    let shutdown = CancellationToken::new();
    let broker = common::embedded_broker();
    let mut config = common::center_config(dir.path(), broker);
    config.webhook_retry =
        RetryPolicy { first: Duration::from_millis(100), ..RetryPolicy::default() };
    config.escalation_check = Duration::from_millis(200);
    let center = start(config, shutdown.clone()).await.unwrap();

    let (mqtt, dispatches) =
        common::connect_when_ingesting(&center.mqtt_addr, "pcs-a-console").await;
    mqtt.subscribe("xl/v1/dispatch/pcs-a", QoS::AtLeastOnce).await.unwrap();
    let sealers = [
        ("village-a", Sealer::open(&dir.path().join("village-a")).unwrap()),
        ("village-b", Sealer::open(&dir.path().join("village-b")).unwrap()),
    ];
    for (agent, camera, kind, i) in alarms() {
        let sealer = &sealers.iter().find(|(a, _)| *a == agent).unwrap().1;
        let alarm = Alarm {
            id: alarm_id(agent, i),
            agent_id: agent.into(),
            camera_id: camera.into(),
            rule_id: format!("{camera}-rule"),
            kind: kind as i32,
            severity: Severity::High as i32,
            event_time_ms: *T0 + i as i64 * 60_000,
            detections: vec![Detection {
                class_name: "person".into(),
                score: 0.9,
                ..Default::default()
            }],
            snapshot_jpeg: format!("picture of {i}").into_bytes().into(),
            // Village B's stopped vehicles are events: updates follow (see escalation).
            opens_event: agent == "village-b",
            ..Default::default()
        };
        let sealed = sealer.seal(alarm, usize::MAX).unwrap();
        mqtt.publish(format!("xl/v1/{agent}/alarm"), QoS::AtLeastOnce, false, sealed.message)
            .await
            .unwrap();
    }
    let published = Instant::now();
    let t0 = Instant::now();
    while center.store.len() < 35 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "35 alarms stored, {} are",
            center.store.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Rig { center, shutdown, dir, webhook, mqtt, dispatches, published }
}

async fn login(rig: &Rig, user: &str) -> Api {
    Api::login(rig.center.http_addr, user, PASSWORD).await
}

fn ids(list: &Value) -> Vec<String> {
    list["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Posts a workflow step; returns the status code and the body.
async fn step(api: &Api, id: &str, action: &str, body: Value) -> (StatusCode, Value) {
    let resp = api.post(&format!("/api/alarms/{id}/{action}")).json(&body).send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duty_officers_route_dispatch_and_close_cases_and_stations_see_only_their_own() {
    let mut rig = rig().await;
    let duty = login(&rig, "duty").await;

    // Every alarm once, newest first, across pages of 7.
    let mut seen = Vec::new();
    let mut path = "/api/alarms?limit=7".to_owned();
    loop {
        let page = duty.json(&path).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/alarms?limit=7&cursor={c}"),
            None => break,
        }
    }
    let mut expected: Vec<String> =
        alarms().iter().map(|(agent, _, _, i)| alarm_id(agent, *i)).collect();
    expected.reverse();
    assert_eq!(seen, expected);

    // Filters, alone and together, on indexes and not.
    let count = |v: &Value| v["alarms"].as_array().unwrap().len();
    assert_eq!(count(&duty.json("/api/alarms?agent=village-b").await), 5);
    assert_eq!(count(&duty.json("/api/alarms?agent=village-a&camera=pond").await), 10);
    assert_eq!(count(&duty.json("/api/alarms?kind=loitering").await), 15);
    assert_eq!(count(&duty.json("/api/alarms?kind=loitering&camera=pond").await), 5);
    let window = format!("/api/alarms?from={}&to={}", *T0 + 10 * 60_000, *T0 + 20 * 60_000);
    assert_eq!(ids(&duty.json(&window).await).last().map(String::as_str), Some("village-a-010"));
    assert_eq!(count(&duty.json(&window).await), 10);
    let day = jiff::Timestamp::from_millisecond(*T0).unwrap().to_zoned(shanghai()).date();
    let rfc3339 =
        duty.json(&format!("/api/alarms?from={day}T12:20:00%2B08:00&agent=village-a")).await;
    assert_eq!(
        ids(&rfc3339).last().map(String::as_str),
        Some("village-a-020"),
        "T0 is 12:00 in Shanghai"
    );
    for (query, message) in [
        (
            "status=open",
            "no status \"open\" (statuses: new, acknowledged, dispatched, resolved, false_alarm)",
        ),
        ("cursor=xyz", "cursor \"xyz\" is not one this API handed out (use next_cursor as it is)"),
        ("limit=0", "limit must be between 1 and 500, got 0"),
        (
            "from=yesterday",
            "from=\"yesterday\" is neither UTC milliseconds nor RFC 3339 (2026-07-01T18:00:00+08:00)",
        ),
    ] {
        let resp = duty.get(&format!("/api/alarms?{query}")).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], message, "{query}");
    }

    // Routing: police stations first, with the camera's place.
    let id = "village-a-029";
    let detail = duty.json(&format!("/api/alarms/{id}")).await;
    assert_eq!(detail["routed_to"], json!(["pcs-a", "patrol-a"]));
    assert_eq!(detail["location"], "A村水库");
    assert_eq!(duty.json("/api/alarms/village-b-034").await["routed_to"], json!(["pcs-b"]));

    // The workflow, with its refusals.
    let (code, body) = step(&duty, id, "resolve", json!({})).await;
    assert_eq!(
        (code, body["error"].as_str().unwrap()),
        (
            StatusCode::CONFLICT,
            "alarm village-a-029 is new: it cannot be resolved; acknowledge it first"
        )
    );
    let (code, body) = step(&duty, id, "acknowledge", json!({ "note": "看到了" })).await;
    assert_eq!((code, body["status"].as_str().unwrap()), (StatusCode::OK, "acknowledged"));
    let (code, body) = step(&duty, id, "acknowledge", json!({})).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let (code, body) = step(&duty, id, "dispatch", json!({ "units": ["pcs-x"] })).await;
    assert_eq!(
        (code, body["error"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "no unit \"pcs-x\" (units: pcs-a, patrol-a, pcs-b, township)")
    );
    // Station A's console listens for what concerns it.
    let police_a = login(&rig, "police-a").await;
    let mut live = police_a.get("/api/events").send().await.unwrap();
    assert_eq!(live.status(), 200);
    let (code, body) = step(&duty, id, "dispatch", json!({ "note": "请出警" })).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["dispatched_to"], json!(["pcs-a", "patrol-a"]), "routing's suggestion");
    let (code, _) = step(&duty, id, "fly", json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // The station's console hears the dispatch on its topic.
    let dispatch = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let p = rig.dispatches.recv().await.unwrap();
            if p.topic == "xl/v1/dispatch/pcs-a" {
                // A station acts only on what the county's center signed.
                let center_key: VerifyingKey = rig.center.center_key.parse().unwrap();
                center_key.verify(&p.payload, DISPATCH_SIGNATURE_FIELD, &[], "the center").unwrap();
                return Dispatch::decode(p.payload).unwrap();
            }
        }
    })
    .await
    .expect("a dispatch on xl/v1/dispatch/pcs-a");
    assert_eq!(
        (dispatch.station_id.as_str(), dispatch.dispatched_by.as_str(), dispatch.note.as_str()),
        ("pcs-a", "duty", "请出警")
    );
    assert_eq!(
        (dispatch.alarm.as_ref().unwrap().id.as_str(), dispatch.location.as_str()),
        (id, "A村水库")
    );

    // ... and its open console got it live, as an update of an alarm it may now see.
    let event = tokio::time::timeout(Duration::from_secs(5), async {
        let mut text = String::new();
        while let Some(chunk) = live.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(line) = text.lines().find(|l| l.starts_with("data: ")) {
                return serde_json::from_str::<Value>(&line["data: ".len()..]).unwrap();
            }
        }
        panic!("the event stream ended");
    })
    .await
    .expect("an event within 5 s");
    assert_eq!(
        (event["change"].as_str(), event["alarm"]["id"].as_str()),
        (Some("updated"), Some(id))
    );
    assert_eq!(event["alarm"]["status"], "dispatched");
    drop(live);

    // Its webhook failed twice and got it the third time, the same signed bytes each time.
    let t0 = Instant::now();
    let delivered = loop {
        let d = duty.json(&format!("/api/alarms/{id}")).await;
        if d["webhooks"][0]["state"] == "delivered" {
            break d;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "webhook delivered: {}", d["webhooks"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(delivered["webhooks"][0]["attempts"], 3);
    assert_eq!(delivered["webhooks"][0]["unit_id"], "pcs-a");
    let requests = rig.webhook.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r == &requests[0]), "retries repeat the same request");
    let (key, signature, body) = &requests[0];
    assert_eq!(key, &format!("{id}~pcs-a"));
    let mac =
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"shared-secret"), body);
    assert_eq!(signature, &format!("sha256={}", xueliang_proto::signing::hex(mac.as_ref())));
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (body["alarm"]["id"].as_str(), body["unit"]["name"].as_str()),
        (Some(id), Some("A镇派出所"))
    );

    // Who sees what.
    let anonymous = reqwest::Client::new();
    for path in ["/api/alarms", &format!("/api/alarms/{id}/snapshot"), "/api/fleet", "/api/stats"] {
        let resp =
            anonymous.get(format!("http://{}{path}", rig.center.http_addr)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "log in first: POST /api/login");
    }
    let wrong = anonymous
        .post(format!("http://{}/api/login", rig.center.http_addr))
        .json(&json!({ "login": "duty", "password": "guess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "wrong login or password");
    assert_eq!(
        ids(&police_a.json("/api/alarms").await),
        [id],
        "station A sees only what was dispatched to it"
    );
    assert_eq!(
        police_a
            .get(&format!("/api/alarms/{id}/snapshot"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"picture of 29"
    );
    let police_b = login(&rig, "police-b").await;
    assert!(ids(&police_b.json("/api/alarms").await).is_empty());
    for path in [format!("/api/alarms/{id}"), format!("/api/alarms/{id}/snapshot")] {
        let resp = police_b.get(&path).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            format!("alarm {id} was not dispatched to your unit")
        );
    }
    assert_eq!(police_b.get("/api/alarms?unit=pcs-a").send().await.unwrap().status(), 403);
    assert_eq!(step(&police_a, id, "resolve", json!({})).await.0, StatusCode::FORBIDDEN);
    let installer = login(&rig, "installer").await;
    let resp = installer.get(&format!("/api/alarms/{id}/snapshot")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "role installer may not read alarms or their pictures"
    );
    assert_eq!(installer.get("/api/alarms").send().await.unwrap().status(), 403);
    assert_eq!(installer.get("/api/fleet").send().await.unwrap().status(), 200);
    assert_eq!(duty.get("/api/audit").send().await.unwrap().status(), 403);

    // The station reports back: received, on scene, closed with its feedback, in that order.
    let (code, body) = step(&police_a, id, "close", json!({})).await;
    assert_eq!(
        (code, body["error"].as_str().unwrap()),
        (
            StatusCode::CONFLICT,
            "pcs-a not received it yet: it cannot mark alarm village-a-029 closed"
        )
    );
    for (action, note) in [("receive", "收到"), ("on-scene", ""), ("close", "已劝离，无人落水")]
    {
        let (code, body) = step(&police_a, id, action, json!({ "note": note })).await;
        assert_eq!(code, StatusCode::OK, "{action}: {body}");
        assert_eq!(
            body["status"], "dispatched",
            "the unit's steps leave the case to the duty officer"
        );
    }
    assert_eq!(step(&police_b, id, "receive", json!({})).await.0, StatusCode::FORBIDDEN);
    let (code, body) = step(&duty, id, "receive", json!({})).await;
    assert_eq!(
        (code, body["error"].as_str().unwrap()),
        (
            StatusCode::FORBIDDEN,
            "role duty_officer may not report on a dispatch (only a unit's user does)"
        )
    );

    // Closed, with every step on the alarm's timeline and in the audit log.
    let (code, body) = step(&duty, id, "resolve", json!({ "note": "已处置" })).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let steps: Vec<(String, String, String)> = body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap().into(),
                s["by"].as_str().unwrap().into(),
                s["note"].as_str().unwrap().into(),
            )
        })
        .collect();
    let step_of = |a: &str, by: &str, n: &str| (a.to_owned(), by.to_owned(), n.to_owned());
    assert_eq!(
        steps,
        [
            step_of("acknowledge", "duty", "看到了"),
            step_of("dispatch", "duty", "请出警"),
            step_of("receive", "police-a", "收到"),
            step_of("on-scene", "police-a", ""),
            step_of("close", "police-a", "已劝离，无人落水"),
            step_of("resolve", "duty", "已处置"),
        ]
    );
    let admin = Api::admin(rig.center.http_addr).await;
    let audit = admin.json(&format!("/api/audit?target={id}")).await;
    let trail: HashSet<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user"].as_str().unwrap().into(), e["action"].as_str().unwrap().into()))
        .collect();
    for (user, action) in [
        ("duty", "acknowledge"),
        ("duty", "dispatch"),
        ("duty", "resolve"),
        ("police-a", "view_snapshot"),
        ("duty", "view_alarm"),
    ] {
        assert!(
            trail.contains(&(user.to_owned(), action.to_owned())),
            "{user} {action} audited: {trail:?}"
        );
    }
    assert_eq!(
        duty.json(&format!("/api/alarms/{id}/audit")).await.as_array().unwrap().len(),
        audit["entries"].as_array().unwrap().len()
    );
    let failed = admin.json("/api/audit?target=duty").await;
    assert!(
        failed["entries"].as_array().unwrap().iter().any(|e| e["action"] == "login_failed"),
        "{failed}"
    );

    // Escalation: alarms left new are raised and sent to the second route, not before time.
    let escalated = loop {
        let page = duty.json("/api/alarms?agent=village-b").await;
        if page["alarms"].as_array().unwrap().iter().all(|a| a["escalated"] == true) {
            break page;
        }
        assert!(
            rig.published.elapsed() < Duration::from_secs(ESCALATE_AFTER_S as u64 + 10),
            "escalated: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for a in escalated["alarms"].as_array().unwrap() {
        assert_eq!(
            (a["status"].as_str(), a["severity"].as_str()),
            (Some("new"), Some("critical")),
            "{a}"
        );
        assert_eq!(a["dispatched_to"], json!(["township"]));
        let step = &a["timeline"][0];
        assert_eq!(
            (step["action"].as_str(), step["by"].as_str()),
            (Some("escalate"), Some("system"))
        );
        let waited = step["at_ms"].as_i64().unwrap() - a["received_time_ms"].as_i64().unwrap();
        assert!(
            (ESCALATE_AFTER_S * 1000..ESCALATE_AFTER_S * 1000 + 2000).contains(&waited),
            "escalated after {waited} ms"
        );
    }
    let resolved = duty.json(&format!("/api/alarms/{id}")).await;
    assert_eq!(
        (resolved["escalated"].as_bool(), resolved["severity"].as_str()),
        (Some(false), Some("high")),
        "acknowledged in time"
    );
    // The escalated events go on (a bigger peak, then their end): still one record each,
    // escalated once, however long past the escalation time they last.
    let sealer = Sealer::open(&rig.dir.path().join("village-b")).unwrap();
    for a in escalated["alarms"].as_array().unwrap() {
        for seq in 1..=2 {
            let update = EventUpdate {
                id: format!("{}-u{seq}", a["id"].as_str().unwrap()),
                agent_id: "village-b".into(),
                event_id: a["id"].as_str().unwrap().into(),
                seq,
                ended: seq == 2,
                end_time_ms: *T0 + 600_000,
                duration_ms: u64::from(seq) * 60_000,
                peak_count: 2,
                ..Default::default()
            };
            let sealed = sealer.seal_update(update).unwrap();
            rig.mqtt
                .publish("xl/v1/village-b/event", QoS::AtLeastOnce, false, sealed.message)
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(ESCALATE_AFTER_S as u64 + 1)).await;
    let after = duty.json("/api/alarms?agent=village-b").await;
    let after = after["alarms"].as_array().unwrap();
    assert_eq!(after.len(), 5, "no new rows for updates");
    for a in after {
        let escalations =
            a["timeline"].as_array().unwrap().iter().filter(|s| s["action"] == "escalate").count();
        assert_eq!(
            (escalations, a["severity"].as_str(), a["state"].as_str(), a["peak_count"].as_u64()),
            (1, Some("critical"), Some("ended"), Some(2)),
            "{a}"
        );
    }

    // Prometheus reads the counts without logging in.
    let metrics = common::metrics(rig.center.http_addr).await;
    for line in [
        "xl_center_alarms_stored_total 35",
        "xl_center_alarms 35",
        "xl_center_alarms_unacknowledged 34",
        "xl_center_agents{state=\"unknown\"} 2",
        "# TYPE xl_center_dead_letters_total counter",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} in\n{metrics}");
    }

    // The export holds every alarm once.
    let export = admin.get("/api/export").send().await.unwrap().text().await.unwrap();
    let exported: HashSet<String> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(exported.len(), 35);
    assert_eq!(export.lines().count(), 35);

    rig.shutdown.cancel();
    rig.center.join().await;
    drop(rig.mqtt);
    drop(rig.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_shows_agents_online_offline_and_never_heard_from() {
    let rig = rig().await;
    let publish = |topic: &str, payload: Vec<u8>, retain: bool| {
        let mqtt = rig.mqtt.clone();
        let topic = topic.to_owned();
        async move { mqtt.publish(topic, QoS::AtLeastOnce, retain, payload).await.unwrap() }
    };
    let status = |agent: &str, state: State| {
        AgentStatus {
            agent_id: agent.into(),
            state: state as i32,
            version: "0.1.0".into(),
            config_version: 4,
            ..Default::default()
        }
        .encode_to_vec()
    };
    publish("xl/v1/village-a/status", status("village-a", State::Online), true).await;
    let health = Health {
        agent_id: "village-a".into(),
        outbox_depth: 2,
        cameras: vec![CameraHealth {
            camera_id: "pond".into(),
            online: true,
            decode_fps: 25.0,
            infer_fps: 5.0,
            ..Default::default()
        }],
        ..Default::default()
    };
    publish("xl/v1/village-a/health", health.encode_to_vec(), false).await;
    publish("xl/v1/village-b/status", status("village-b", State::Online), true).await;
    publish("xl/v1/village-b/status", status("village-b", State::Offline), true).await;
    let installer = login(&rig, "installer").await;
    let t0 = Instant::now();
    let agents = loop {
        let fleet = installer.json("/api/fleet").await;
        let agents = fleet["agents"].as_array().unwrap().clone();
        if agents.iter().any(|a| a["health"]["outbox_depth"] == 2)
            && agents.iter().any(|a| a["online"] == false)
        {
            break agents;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "fleet: {fleet}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let summary: Vec<(&str, Value)> =
        agents.iter().map(|a| (a["agent_id"].as_str().unwrap(), a["online"].clone())).collect();
    assert_eq!(summary, [("village-b", json!(false)), ("village-a", json!(true))], "offline first");
    assert_eq!(agents[1]["config_version"], 4);
    assert_eq!(agents[1]["health"]["cameras"][0]["camera_id"], "pond");
    assert!(agents.iter().all(|a| a["registered"] == true));
    assert!(agents[0]["since_ms"].as_i64().is_some());
    rig.shutdown.cancel();
    rig.center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_clip_arrives_in_signed_chunks_in_any_order_and_is_served_as_it_was_sent() {
    let mut rig = rig().await;
    rig.mqtt.subscribe("xl/v1/village-a/receipt", QoS::AtLeastOnce).await.unwrap();
    let event = "village-a-003";
    let clip_id = "019a8f2e-7c1b-7d3e-9a4b-0c5d6e7f80a0";
    let video: Vec<u8> = (0..2_500_000u32).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    let agent_dir = |agent: &str| rig.dir.path().join(agent);
    let key =
        SigningKey::load_or_create(&xueliang_agent::evidence::key_path(&agent_dir("village-a")))
            .unwrap();
    let chunk = |key: &SigningKey, id: &str, offset: usize, len: usize| {
        let c = ClipChunk {
            schema_version: xueliang_proto::SCHEMA_VERSION as i32,
            clip_id: id.into(),
            agent_id: "village-a".into(),
            camera_id: "pond".into(),
            event_id: event.into(),
            start_time_ms: *T0 + 3 * 60_000 - 5_000,
            duration_ms: 21_000,
            size: video.len() as u64,
            sha256: xueliang_proto::signing::sha256(&video).into(),
            width: 1920,
            height: 1080,
            stream: "record".into(),
            masked: false,
            offset: offset as u64,
            data: video[offset..offset + len].to_vec().into(),
            signature: Default::default(),
        };
        key.sign(c.encode_to_vec(), CLIP_SIGNATURE_FIELD, &CLIP_CHUNK_FIELDS).unwrap()
    };
    // The last chunk first, the first twice, the middle one last; and a forged one.
    let forger =
        SigningKey::load_or_create(&xueliang_agent::evidence::key_path(&agent_dir("village-b")))
            .unwrap();
    for payload in [
        chunk(&key, clip_id, 2_000_000, 500_000),
        chunk(&key, clip_id, 0, 1_000_000),
        chunk(&key, clip_id, 0, 1_000_000),
        chunk(&forger, "forged-clip", 0, 1_000),
        chunk(&key, clip_id, 1_000_000, 1_000_000),
    ] {
        rig.mqtt.publish("xl/v1/village-a/clip", QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    // Every chunk is receipted, in receipts the center signed; the forged one is not.
    let center_key: VerifyingKey = rig.center.center_key.parse().unwrap();
    let wanted: HashSet<String> = [0, 1_000_000, 2_000_000]
        .iter()
        .map(|&offset| xueliang_proto::clip_chunk_id(clip_id, offset))
        .collect();
    let mut receipted = HashSet::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while receipted != wanted {
            let p = rig.dispatches.recv().await.unwrap();
            if p.topic == "xl/v1/village-a/receipt" {
                center_key.verify(&p.payload, RECEIPT_SIGNATURE_FIELD, &[], "the center").unwrap();
                receipted.extend(Receipt::decode(p.payload).unwrap().clip_chunks);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("every chunk receipted: {receipted:?}"));

    // The event's record lists the clip; the clip is the bytes sent, whole and by range.
    let duty = login(&rig, "duty").await;
    let detail = duty.json(&format!("/api/alarms/{event}")).await;
    assert_eq!(detail["clips"].as_array().unwrap().len(), 1, "{}", detail["clips"]);
    assert_eq!(
        (detail["clips"][0]["clip_id"].as_str(), detail["clips"][0]["size"].as_u64()),
        (Some(clip_id), Some(2_500_000))
    );
    let path = format!("/api/clips/{clip_id}");
    let whole = duty.get(&path).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert!(whole.bytes().await.unwrap().as_ref() == video.as_slice(), "the clip as sent");
    let part = duty.get(&path).header("range", "bytes=999990-1000009").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 999990-1000009/2500000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &video[999_990..1_000_010]);
    let beyond = duty.get(&path).header("range", "bytes=2500000-").send().await.unwrap();
    assert_eq!(beyond.status(), 416);

    // Written once each; the forged chunk dead-lettered.
    let metrics = common::metrics(rig.center.http_addr).await;
    for line in [
        "xl_center_clip_chunks_stored_total 3",
        "xl_center_clips_completed_total 1",
        "xl_center_clip_chunks_refused_total 1",
        "xl_center_clips_failed_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} in\n{metrics}");
    }
    let admin = Api::admin(rig.center.http_addr).await;
    let dead = admin.json("/api/dead-letters").await;
    assert!(
        dead["dead_letters"].as_array().unwrap().iter().any(|d| d["topic"] == "xl/v1/village-a/clip"
            && d["reason"] == "the signature does not verify against the key registered for \"village-a\""),
        "{dead}"
    );
    // An admin purges them, audited; nobody else may.
    let installer = login(&rig, "installer").await;
    let refused = installer.delete("/api/dead-letters").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let purged: Value =
        admin.delete("/api/dead-letters").send().await.unwrap().json().await.unwrap();
    assert_eq!(purged["purged"].as_u64(), dead["dead_letters"].as_array().map(|d| d.len() as u64));
    assert_eq!(admin.json("/api/dead-letters").await["dead_letters"], json!([]));
    let audit = admin.json("/api/audit").await;
    assert!(audit.to_string().contains("purge_dead_letters"), "{audit}");
    rig.shutdown.cancel();
    rig.center.join().await;
}
