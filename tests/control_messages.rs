//! What agents act on is the center's own word, on the demo's set-up (the embedded broker, no
//! passwords): a stranger publishing the two bytes of an "offline" center status with
//! `mosquitto_pub`, retained or not, and an old status the center really signed published again
//! change nothing. The agent ignores them (and says so), the center announces itself again, and
//! every alarm is stored meanwhile.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use xueliang_center::running::{key_path, start};
use xueliang_proto::signing::{CENTER_STATUS_SIGNATURE_FIELD, SigningKey, VerifyingKey};
use xueliang_proto::{CenterStatus, Message, decode_limited};
use xueliang_testkit::scenario;

/// Publishes `payload` on `topic` with `mosquitto_pub`, retained or not.
fn mosquitto_pub(port: u16, topic: &str, payload: &[u8], retain: bool, dir: &Path) {
    let file = dir.join("payload.bin");
    std::fs::write(&file, payload).unwrap();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", "stranger", "-q", "1"]);
    cmd.args(["-t", topic, "-f", file.to_str().unwrap()]);
    if retain {
        cmd.arg("-r");
    }
    let out = cmd.output().expect("mosquitto_pub runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The retained message on `topic`, read with `mosquitto_sub`.
fn retained(port: u16, topic: &str) -> Vec<u8> {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "5", "-N", "--retained-only"])
        .output()
        .expect("mosquitto_sub runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_replayed_center_status_stops_no_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    let agent = "village-c";
    let center_key = scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    let shutdown = CancellationToken::new();
    let broker = common::embedded_broker();
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let port: u16 = center.mqtt_addr.rsplit(':').next().unwrap().parse().unwrap();
    let topic = "xl/v1/center/status";
    common::connect_when_ingesting(&center.mqtt_addr, "watcher").await;
    let genuine = retained(port, topic);
    let key: VerifyingKey = center_key.parse().unwrap();
    key.verify(&genuine, CENTER_STATUS_SIGNATURE_FIELD, &[], "the center").unwrap();
    let run = decode_limited::<CenterStatus>(&genuine).unwrap().run;
    assert!(run > 0, "a numbered run");

    // 300 alarms over 15 s while the attacks go on.
    let count = 300;
    let mqtt_url = format!("mqtt://{}", center.mqtt_addr);
    let mut scripted =
        common::start_scripted_agent(dir.path(), agent, &mqtt_url, &center_key, "", count);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // What anyone on the broker could publish: `CenterStatus { schema_version: 1 }`, offline.
    mosquitto_pub(port, topic, &[0x08, 0x01], true, dir.path());
    tokio::time::sleep(Duration::from_secs(3)).await;
    mosquitto_pub(port, topic, &[0x08, 0x01], false, dir.path());
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An offline status the center signed in an earlier run (its last will then), again.
    let center_signer = SigningKey::load_or_create(&key_path(&center_dir)).unwrap();
    let old = CenterStatus { schema_version: 1, online: false, run: run - 1, ..Default::default() };
    let old = center_signer.sign(old.encode_to_vec(), CENTER_STATUS_SIGNATURE_FIELD, &[]).unwrap();
    mosquitto_pub(port, topic, &old, true, dir.path());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The center has its own status back on the topic, and the agent went on delivering.
    let now = retained(port, topic);
    key.verify(&now, CENTER_STATUS_SIGNATURE_FIELD, &[], "the center").unwrap();
    let status = decode_limited::<CenterStatus>(&now).unwrap();
    assert!(status.online && status.run == run, "{status:?}");
    common::wait_delivered(dir.path(), &mut scripted, agent).await;
    let api = common::Api::admin(center.http_addr).await;
    let stats = api.json("/api/stats").await;
    assert_eq!(stats["stored"], count, "{stats}");
    let log = std::fs::read_to_string(dir.path().join(format!("{agent}.log"))).unwrap();
    assert!(log.contains("ignoring a center status: the message is not signed"), "{log}");
    assert!(log.contains("ignoring a center status: it is from an earlier run"), "{log}");
    assert!(!log.contains("the center is offline"), "{log}");
    shutdown.cancel();
    center.join().await;
}
