//! Moving a county from the embedded store to PostgreSQL: a real center stores alarms an agent
//! signed (one with its event's update) and audits views of them; stopped, its records are
//! exported, copied with `xl-center copy-store` into a PostgreSQL database on a server of the
//! test's own, and exported again from there: the two exports are the same, byte for byte. The
//! audit log and the agents' signatures verify in PostgreSQL; a second copy into the same
//! database is refused; a center started on PostgreSQL serves the same alarms, and stores new
//! ones after them. Copied back into an embedded store, the export is the same again, the audit
//! log verifies, and no id is given twice.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::running::start;
use xueliang_center::store::Backend;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, EventUpdate};
use xueliang_testkit::scenario;

const AGENT: &str = "village-pg";
const ALARMS: usize = 120;
const NEWEST: &str = "a119";

fn xl_center(args: &[&str]) -> Output {
    std::process::Command::new(common::workspace_binary("xl-center"))
        .args(args)
        .output()
        .expect("xl-center runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `xl-center export` of the center in `data` on `store`: the JSON Lines.
fn export(data: &Path, store: &str) -> String {
    let out = xl_center(&["export", "--data-dir", data.to_str().unwrap(), "--store", store]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Alarm `id` of the agent, raised at `t`.
fn alarm(id: &str, t: i64) -> Alarm {
    Alarm {
        id: id.into(),
        agent_id: AGENT.into(),
        camera_id: "reservoir".into(),
        rule_id: "bank-at-dusk".into(),
        event_time_ms: t,
        opens_event: true,
        snapshot_jpeg: format!("\u{ff}\u{d8} picture of {id}").into_bytes().into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_county_moved_from_sled_to_postgres_exports_the_same_records_and_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("center");
    scenario::prepare_keys(&data, AGENT, &dir.path().join(AGENT)).unwrap();
    let sealer = Sealer::open(&dir.path().join(AGENT)).unwrap();

    // A center on the embedded store, whatever XL_TEST_STORE says: it is the one moved.
    let mut config = common::center_config(dir.path(), common::embedded_broker());
    config.store = Backend::Embedded;
    let shutdown = CancellationToken::new();
    let center = start(config, shutdown.clone()).await.unwrap();
    let client = common::connect_when_ingesting(&center.mqtt_addr, "test-agent").await.0;
    let start_ms = now_ms() - 60_000;
    for i in 0..ALARMS {
        let sealed = sealer.seal(alarm(&format!("a{i:03}"), start_ms + i as i64), usize::MAX);
        let topic = format!("xl/v1/{AGENT}/alarm");
        client.publish(topic, QoS::AtLeastOnce, false, sealed.unwrap().message).await.unwrap();
    }
    // The newest, on the first page of the list.
    common::wait_for_alarm_where(center.http_addr, Duration::from_secs(20), |r| r.id == NEWEST)
        .await
        .expect("every alarm stored");
    let update = EventUpdate {
        id: "a119-u1".into(),
        event_id: NEWEST.into(),
        agent_id: AGENT.into(),
        seq: 1,
        time_ms: now_ms(),
        peak_count: 4,
        duration_ms: 9000,
        ..Default::default()
    };
    let sealed = sealer.seal_update(update).unwrap().message;
    client.publish(format!("xl/v1/{AGENT}/event"), QoS::AtLeastOnce, false, sealed).await.unwrap();
    common::wait_for_alarm_where(center.http_addr, Duration::from_secs(10), |r| {
        r.id == NEWEST && r.update_seq == 1
    })
    .await
    .expect("the update applied");
    let api = common::Api::admin(center.http_addr).await;
    api.json("/api/alarms/a007").await;
    drop(api);
    shutdown.cancel();
    center.join().await;

    let before = export(&data, "sled");
    assert_eq!(before.lines().count(), ALARMS, "{before}");

    let server = xueliang_pgtest::Server::start(false).unwrap();
    let url = server.database().unwrap();
    let d = data.to_str().unwrap();
    let out = xl_center(&["copy-store", "--data-dir", d, "--to", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("read back, every tree is equal"), "{}", text(&out));

    let after = export(&data, &url);
    assert!(before == after, "the exports differ:\n{before}\n---\n{after}");
    let db = url.rsplit('/').next().unwrap();
    assert_eq!(server.psql(db, "SELECT max(version) FROM xl_schema").unwrap().trim(), "1");

    // What was signed and audited still proves in PostgreSQL.
    let out = xl_center(&["audit", "verify", "--data-dir", d, "--store", &url]);
    assert!(out.status.success() && text(&out).starts_with("OK: "), "{}", text(&out));
    let out = xl_center(&["verify", NEWEST, "--data-dir", d, "--store", &url]);
    assert!(text(&out).contains("with 1 update of its event"), "{}", text(&out));

    // Copied once: a second copy would mix two counties' records.
    let out = xl_center(&["copy-store", "--data-dir", d, "--to", &url]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already holds records"), "{}", text(&out));

    // A center on PostgreSQL serves the same alarms and stores new ones.
    let mut config = common::center_config(dir.path(), common::embedded_broker());
    config.store = Backend::Postgres(url.clone());
    let shutdown = CancellationToken::new();
    let center = start(config, shutdown.clone()).await.unwrap();
    let api = common::Api::admin(center.http_addr).await;
    let listed = api.json("/api/alarms?limit=500").await;
    assert_eq!(listed["alarms"].as_array().unwrap().len(), ALARMS, "{listed}");
    let client = common::connect_when_ingesting(&center.mqtt_addr, "test-agent-2").await.0;
    let sealed = sealer.seal(alarm("new-1", now_ms()), usize::MAX).unwrap().message;
    client.publish(format!("xl/v1/{AGENT}/alarm"), QoS::AtLeastOnce, false, sealed).await.unwrap();
    common::wait_for_alarm_where(center.http_addr, Duration::from_secs(10), |r| r.id == "new-1")
        .await
        .expect("a new alarm stored in PostgreSQL");
    let trail = api.json("/api/alarms/a007/audit").await;
    assert!(trail.as_array().unwrap().iter().any(|e| e["action"] == "view_alarm"), "{trail}");
    shutdown.cancel();
    center.join().await;
    let moved = export(&data, &url);
    assert_eq!(moved.lines().count(), ALARMS + 1);

    // And back into an embedded store in another directory: the same export, the audit log
    // intact, and the ids it gives next above every audit entry's.
    let back = dir.path().join("back");
    let out = xl_center(&["copy-store", "--data-dir", d, "--store", &url, "--to", "sled"]);
    assert!(!out.status.success(), "the data directory already holds a store");
    std::fs::create_dir_all(&back).unwrap();
    std::fs::copy(data.join("center.key"), back.join("center.key")).unwrap();
    let b = back.to_str().unwrap();
    let out = xl_center(&["copy-store", "--data-dir", b, "--store", &url, "--to", "sled"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(export(&back, "sled") == moved, "the export differs after copying back");
    let out = xl_center(&["audit", "verify", "--data-dir", b]);
    assert!(out.status.success(), "{}", text(&out));
    let store = xueliang_center::store::Store::open(&back).unwrap();
    let last_seq = store.open_tree("audit").unwrap().last().unwrap().unwrap().0;
    let last_seq = u64::from_be_bytes(last_seq.as_ref().try_into().unwrap());
    assert!(store.next_id().unwrap() > last_seq, "an id already given is given again");
}
