//! A registered agent, signing with its real key, sends alarms whose numbers, sizes or times
//! make no sense (a NaN score, infinite boxes, a score of 7, a 100 KB camera id, 10,000
//! detections, an event in 1970 or in 2100) and an update ending its event in 2100: each is
//! dead-lettered with a reason naming the problem, and its one good alarm is stored, listed and
//! escalated. A record an older center stored unreadable (a NaN score written as JSON null)
//! lies in the same store: the list, escalation and the export go on without it, and the
//! metrics count it. An alarm sent again after retention deleted it is dead-lettered too, not
//! stored again as new.

mod common;

use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::domain::AlarmRecord;
use xueliang_center::running::start;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::{RECEIPT_SIGNATURE_FIELD, VerifyingKey};
use xueliang_proto::{Alarm, Detection, EventUpdate, Message, Receipt, RuleKind, Severity};
use xueliang_testkit::scenario;

const AGENT: &str = "village-a";

/// One unit, and escalation to it after a second.
const ROUTING: &str = r#"
[[unit]]
id = "township"
name = "镇综治办"
type = "township_office"

[escalation]
after_s = 1
units = ["township"]
"#;

/// A person, well inside the picture.
fn person() -> Detection {
    Detection {
        class_name: "person".into(),
        score: 0.9,
        r#box: Some(xueliang_proto::Box { x1: 0.2, y1: 0.3, x2: 0.4, y2: 0.9 }),
        ..Default::default()
    }
}

/// Alarm `id` of one person at the gate, now.
fn alarm(id: &str) -> Alarm {
    Alarm {
        id: id.into(),
        agent_id: AGENT.into(),
        camera_id: "gate".into(),
        rule_id: "gate-intrusion".into(),
        zone_id: "gate".into(),
        kind: RuleKind::ZoneIntrusion as i32,
        severity: Severity::High as i32,
        event_time_ms: now_ms(),
        detections: vec![person()],
        frame_width: 768,
        frame_height: 576,
        ..Default::default()
    }
}

/// [`alarm`] with its one detection's box set to these corners.
fn boxed(id: &str, x1: f32, y1: f32, x2: f32, y2: f32) -> Alarm {
    let mut a = alarm(id);
    a.detections[0].r#box = Some(xueliang_proto::Box { x1, y1, x2, y2 });
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_with_bad_numbers_sizes_or_times_are_dead_lettered_and_the_good_one_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    scenario::prepare_keys(&center_dir, AGENT, &dir.path().join(AGENT)).unwrap();
    std::fs::write(center_dir.join("routing.toml"), ROUTING).unwrap();
    let sealer = Sealer::open(&dir.path().join(AGENT)).unwrap();
    let shutdown = CancellationToken::new();
    let broker = common::embedded_broker();
    let mut config = common::center_config(dir.path(), broker);
    config.escalation_check = Duration::from_millis(200);
    let center = start(config, shutdown.clone()).await.unwrap();

    // What a center that took NaN stored: JSON writes it as null, which reads back as nothing.
    let mut stored_nan = alarm("stored-before");
    stored_nan.detections[0].score = f32::NAN;
    center.store.insert(&AlarmRecord::from_alarm(&stored_nan, now_ms()), b"").unwrap();

    let mut crowd = alarm("bad-crowd");
    crowd.detections = vec![person(); 10_000];
    let bad: Vec<(Alarm, &str)> = vec![
        (
            Alarm {
                detections: vec![Detection { score: f32::NAN, ..person() }],
                ..alarm("bad-nan")
            },
            "detection 0's score NaN is not a number from 0 to 1",
        ),
        (
            boxed("bad-inf", 0.2, 0.3, f32::INFINITY, 0.9),
            "detection 0's box x2 inf lies outside the picture (its coordinates run from 0 to 1)",
        ),
        (
            boxed("bad-neg-inf", 0.2, f32::NEG_INFINITY, 0.4, 0.9),
            "detection 0's box y1 -inf lies outside the picture",
        ),
        (
            Alarm { detections: vec![Detection { score: 7.0, ..person() }], ..alarm("bad-score") },
            "detection 0's score 7 is not a number from 0 to 1",
        ),
        (
            Alarm { camera_id: "c".repeat(100_000), ..alarm("bad-camera") },
            "camera_id is 100000 bytes; at most 128 are taken",
        ),
        (crowd, "10000 detections; at most 256 are taken"),
        (
            Alarm { event_time_ms: 0, ..alarm("bad-1970") },
            "event time 1970-01-01 08:00:00 +08:00 is more than 30 days and 10 minutes before the center's clock",
        ),
        (
            Alarm { event_time_ms: 4_102_444_800_000, ..alarm("bad-2100") },
            "event time 2100-01-01 08:00:00 +08:00 is more than 10 minutes after the center's clock",
        ),
    ];
    let (client, mut received) =
        common::connect_when_ingesting(&center.mqtt_addr, "village-a-raw").await;
    let receipt_topic = format!("xl/v1/{AGENT}/receipt");
    client.subscribe(&receipt_topic, QoS::AtLeastOnce).await.unwrap();
    let topic = format!("xl/v1/{AGENT}/alarm");
    let mut refused_ids = std::collections::BTreeSet::from(["good-u1".to_string()]);
    let mut expected = Vec::new();
    for (a, reason) in bad {
        expected.push((topic.clone(), format!("alarm {}: {reason}", a.id)));
        refused_ids.insert(a.id.clone());
        let sealed = sealer.seal(a, usize::MAX).unwrap();
        client.publish(&topic, QoS::AtLeastOnce, false, sealed.message).await.unwrap();
    }
    let good = Alarm { opens_event: true, ..alarm("good") };
    let sealed = sealer.seal(good, usize::MAX).unwrap();
    client.publish(&topic, QoS::AtLeastOnce, false, sealed.message).await.unwrap();
    let end_in_2100 = EventUpdate {
        id: "good-u1".into(),
        agent_id: AGENT.into(),
        event_id: "good".into(),
        seq: 1,
        time_ms: now_ms(),
        ended: true,
        end_time_ms: 4_102_444_800_000,
        ..Default::default()
    };
    let event_topic = format!("xl/v1/{AGENT}/event");
    expected.push((
        event_topic.clone(),
        "update good-u1: end time 2100-01-01 08:00:00 +08:00 is more than 10 minutes after".into(),
    ));
    let sealed = sealer.seal_update(end_in_2100).unwrap();
    client.publish(&event_topic, QoS::AtLeastOnce, false, sealed.message).await.unwrap();

    // The agent is told, in receipts the center signed, to give each refused message up (it
    // would send it again for ever otherwise), and that the good alarm is stored.
    let center_key: VerifyingKey = center.center_key.parse().unwrap();
    let (mut named, mut stored_ids) = (std::collections::BTreeSet::new(), Vec::new());
    tokio::time::timeout(Duration::from_secs(10), async {
        while named != refused_ids || stored_ids.is_empty() {
            let p = received.recv().await.unwrap();
            if p.topic == receipt_topic {
                center_key.verify(&p.payload, RECEIPT_SIGNATURE_FIELD, &[], "the center").unwrap();
                let receipt = Receipt::decode(p.payload).unwrap();
                named.extend(receipt.refused_ids);
                stored_ids.extend(receipt.alarm_ids);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("refused {named:?} of {refused_ids:?}, stored {stored_ids:?}"));
    assert_eq!(stored_ids, ["good"]);

    // The good alarm is stored and listed; every list page on the way answered 200.
    let stored = common::wait_for_alarm(center.http_addr, Duration::from_secs(10)).await;
    assert_eq!(stored.expect("the good alarm is listed").id, "good");
    let admin = common::Api::admin(center.http_addr).await;
    let t0 = Instant::now();
    let dead = loop {
        let body = admin.json("/api/dead-letters").await;
        let dead = body["dead_letters"].as_array().unwrap().clone();
        if dead.len() >= expected.len() || t0.elapsed() > Duration::from_secs(10) {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), expected.len(), "{dead:#?}");
    for (topic, reason) in &expected {
        assert!(
            dead.iter().any(|d| d["topic"] == topic.as_str()
                && d["reason"].as_str().unwrap().starts_with(reason.as_str())),
            "a dead letter on {topic} saying {reason:?} in {dead:#?}"
        );
    }
    let list = admin.json("/api/alarms").await;
    let ids: Vec<&str> =
        list["alarms"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["good"], "the unreadable record is left out");
    assert_eq!(list["alarms"][0]["state"], "ongoing", "the update ending it in 2100 was refused");

    // Escalation goes on past the unreadable record, which is new and due as well.
    let t0 = Instant::now();
    let escalated = loop {
        let a = admin.json("/api/alarms/good").await;
        if a["escalated"] == true || t0.elapsed() > Duration::from_secs(10) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (escalated["escalated"].as_bool(), escalated["dispatched_to"].clone()),
        (Some(true), serde_json::json!(["township"])),
        "{escalated}"
    );

    // The export too.
    let export = admin.get("/api/export").send().await.unwrap();
    assert_eq!(export.status(), 200);
    let lines: Vec<Value> =
        export.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), ["good"]);

    let metrics = common::metrics(center.http_addr).await;
    for line in [
        "xl_center_unreadable_records_total 1",
        &format!("xl_center_dead_letters_total {}", expected.len()),
        "xl_center_alarms_stored_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} in\n{metrics}");
    }
    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_sent_again_after_retention_deleted_it_is_dead_lettered_not_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    scenario::prepare_keys(&center_dir, AGENT, &dir.path().join(AGENT)).unwrap();
    let sealer = Sealer::open(&dir.path().join(AGENT)).unwrap();
    let shutdown = CancellationToken::new();
    let config = common::center_config(dir.path(), common::embedded_broker());
    let center = start(config, shutdown.clone()).await.unwrap();
    let (client, _) = common::connect_when_ingesting(&center.mqtt_addr, "village-a-raw").await;
    let topic = format!("xl/v1/{AGENT}/alarm");

    // Two days old: within the month a box may keep it, past a one-day retention.
    let old = Alarm { event_time_ms: now_ms() - 2 * 24 * 3600 * 1000, ..alarm("old-1") };
    let sealed = sealer.seal(old, usize::MAX).unwrap().message;
    client.publish(&topic, QoS::AtLeastOnce, false, sealed.clone()).await.unwrap();
    let t0 = Instant::now();
    while center.store.get("old-1").unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "stored within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let one_day = xueliang_center::store::Retention {
        alarm_days: 1,
        snapshot_days: 1,
        clip_days: 1,
        dead_letter_days: 30,
        audit_days: 1095,
    };
    assert_eq!(center.store.sweep(one_day, now_ms()).unwrap().alarms, 1);

    // Replayed (a box restored from an old disk image, say): refused with its reason.
    client.publish(&topic, QoS::AtLeastOnce, false, sealed).await.unwrap();
    let admin = common::Api::admin(center.http_addr).await;
    let t0 = Instant::now();
    let dead = loop {
        let body = admin.json("/api/dead-letters").await;
        if let Some(d) = body["dead_letters"].as_array().and_then(|d| d.first()).cloned() {
            break d;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "dead-lettered within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        dead["reason"],
        "alarm old-1 of village-a: it was stored before and retention deleted it: not stored again"
    );
    assert!(center.store.get("old-1").unwrap().is_none(), "not stored again as new");
    assert_eq!(admin.json("/api/alarms").await["alarms"].as_array().unwrap().len(), 0);
    shutdown.cancel();
    center.join().await;
}
