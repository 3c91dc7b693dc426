//! Accountability: a center keeps each alarm's message as its agent signed it, and its audit
//! log hash-chained with signed checkpoints. On a stopped center, `xl-center audit verify` says
//! the log is intact, and names the entry whose bytes were edited in the database;
//! `xl-center verify ALARM` proves a stored alarm (and its event's update) with the agent's key,
//! and refuses one whose stored record or kept signed bytes were edited. The API serves the
//! same proof to whoever may view the alarm.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::running::start;
use xueliang_center::store::Backend;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, EventUpdate, Message};
use xueliang_testkit::scenario;

const AGENT: &str = "village-a";

/// `xl-center ARGS` on the store of the center in `center_dir`, run to its end.
fn xl_center(center_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(common::workspace_binary("xl-center"))
        .args(args)
        .arg("--data-dir")
        .arg(center_dir)
        .args(["--store", &common::test_store(center_dir).to_string()])
        .output()
        .expect("xl-center runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Changes one byte of the value under `key` in tree `tree` of the stopped center's store in
/// `dir`, where `from` first occurs in it, to `to`.
fn edit_byte(dir: &Path, tree: &str, key: &[u8], from: &[u8], to: u8) {
    let store = common::open_store(dir);
    let tree = store.open_tree(tree).unwrap();
    let mut value = tree.get(key).unwrap().expect("the value to edit").to_vec();
    let at = value.windows(from.len()).position(|w| w == from).expect("the bytes to edit");
    value[at] = to;
    tree.insert(key, value).unwrap();
    tree.flush_blocking().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_centers_audit_log_and_alarms_are_proved_and_edits_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    scenario::prepare_keys(&center_dir, AGENT, &dir.path().join(AGENT)).unwrap();
    let sealer = Sealer::open(&dir.path().join(AGENT)).unwrap();
    let shutdown = CancellationToken::new();
    let broker = common::embedded_broker();
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let client = common::connect_when_ingesting(&center.mqtt_addr, "test-agent").await.0;
    let topic = |kind: &str| format!("xl/v1/{AGENT}/{kind}");
    for id in ["kept-1", "kept-2"] {
        let alarm = Alarm {
            id: id.into(),
            agent_id: AGENT.into(),
            camera_id: "gate".into(),
            rule_id: "night-gate".into(),
            event_time_ms: now_ms(),
            opens_event: true,
            snapshot_jpeg: b"\xff\xd8 the picture \xff\xd9".to_vec().into(),
            ..Default::default()
        };
        let sealed = sealer.seal(alarm, usize::MAX).unwrap().message;
        client.publish(topic("alarm"), QoS::AtLeastOnce, false, sealed).await.unwrap();
    }
    let wait = |pred: fn(&xueliang_center::domain::AlarmRecord) -> bool| {
        common::wait_for_alarm_where(center.http_addr, Duration::from_secs(10), pred)
    };
    wait(|r| r.id == "kept-1").await.expect("kept-1 stored");
    let update = EventUpdate {
        id: "kept-1-u1".into(),
        event_id: "kept-1".into(),
        agent_id: AGENT.into(),
        seq: 1,
        time_ms: now_ms(),
        peak_count: 3,
        duration_ms: 4000,
        ..Default::default()
    };
    let sealed = sealer.seal_update(update).unwrap().message;
    client.publish(topic("event"), QoS::AtLeastOnce, false, sealed).await.unwrap();
    wait(|r| r.id == "kept-1" && r.update_seq == 1).await.expect("the update applied");
    wait(|r| r.id == "kept-2").await.expect("kept-2 stored");

    // The proof over the API, for whoever may view the alarm; the view is audited.
    let api = common::Api::admin(center.http_addr).await;
    let proof = api.json("/api/alarms/kept-1/proof").await;
    let key = sealer.public_key();
    assert_eq!(proof["verified"], true, "{proof}");
    let result = proof["result"].as_str().unwrap();
    assert!(result.starts_with(&format!("signed by agent {AGENT} key {key} at ")), "{result}");
    assert!(result.ends_with(", with 1 update of its event"), "{result}");
    assert_eq!(proof["key"], key.as_str());
    let signed = B64.decode(proof["signed"].as_str().unwrap()).unwrap();
    let kept = Alarm::decode(signed.as_slice()).unwrap();
    assert_eq!((kept.id.as_str(), kept.signature.len()), ("kept-1", 64));
    assert!(kept.snapshot_jpeg.is_empty(), "the picture is not kept twice");
    assert_eq!(proof["updates"].as_array().unwrap().len(), 1);
    let trail = api.json("/api/alarms/kept-1/audit").await;
    assert_eq!(trail[0]["action"], "view_proof");
    api.json("/api/alarms/kept-2").await;
    api.json("/api/alarms/kept-1").await;
    drop(api);
    // A running center holds an embedded store: the commands say so (PostgreSQL serves both).
    if common::test_store(&center_dir) == Backend::Embedded {
        let out = xl_center(&center_dir, &["audit", "verify"]);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("is locked by a running xl-center"),
            "{}",
            text(&out.stderr)
        );
    }
    shutdown.cancel();
    center.join().await;

    // Stopped: the log is intact, its head signed at shutdown; both alarms prove.
    let out = xl_center(&center_dir, &["audit", "verify"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("OK: "), "{stdout}");
    assert!(stdout.contains("checkpoints signed: 1, the last at entry"), "{stdout}");
    for id in ["kept-1", "kept-2"] {
        let out = xl_center(&center_dir, &["verify", id]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{id}: {stdout}{}", text(&out.stderr));
        assert!(
            stdout.starts_with(&format!("verified: signed by agent {AGENT} key {key} at ")),
            "{stdout}"
        );
    }

    // One byte of the entry of the view of kept-2 edited: that entry is named.
    let (seq, entry_time) = {
        let store = common::open_store(&center_dir);
        let entries = store.open_tree("audit").unwrap();
        let viewed = entries
            .iter()
            .map(Result::unwrap)
            .map(|(_, v)| serde_json::from_slice::<serde_json::Value>(&v).unwrap())
            .find(|e| e["action"] == "view_alarm" && e["target"] == "kept-2")
            .expect("the view of kept-2 audited");
        (viewed["seq"].as_u64().unwrap(), viewed["time_ms"].as_i64().unwrap())
    };
    edit_byte(&center_dir, "audit", &seq.to_be_bytes(), b"kept-2", b'K');
    let out = xl_center(&center_dir, &["audit", "verify"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "an edited log fails: {}", text(&out.stdout));
    let at = jiff::Timestamp::from_millisecond(entry_time).unwrap();
    assert!(
        stderr.contains(&format!("audit entry {seq} ({at}): its stored bytes do not hash")),
        "{stderr}"
    );

    // The stored record of kept-2 edited: the field named.
    edit_byte(&center_dir, "alarms", b"kept-2", b"gate", b'G');
    let out = xl_center(&center_dir, &["verify", "kept-2"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        stderr.contains("the stored record is not what the agent signed: camera_id is \"Gate\" but was signed as \"gate\""),
        "{stderr}"
    );

    // One byte of kept-1's signed message edited: its signature no longer verifies.
    let store = common::open_store(&center_dir);
    let proofs = store.open_tree("proofs").unwrap();
    let mut kept: serde_json::Value =
        serde_json::from_slice(&proofs.get("kept-1").unwrap().unwrap()).unwrap();
    let mut signed = B64.decode(kept["signed"].as_str().unwrap()).unwrap();
    let at = signed.windows(4).position(|w| w == b"gate").unwrap();
    signed[at] = b'G';
    kept["signed"] = B64.encode(&signed).into();
    proofs.insert("kept-1", serde_json::to_vec(&kept).unwrap()).unwrap();
    proofs.flush_blocking().unwrap();
    drop((proofs, store));
    let out = xl_center(&center_dir, &["verify", "kept-1"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        stderr.contains(&format!(
            "the alarm: the signature does not verify against the key registered for \"{AGENT}\""
        )),
        "{stderr}"
    );
    let out = xl_center(&center_dir, &["verify", "no-such-alarm"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no alarm no-such-alarm is stored"));
}
