//! The broker restarts in the middle of a drain: an agent's outbox of 600 alarms reaches the
//! center's store exactly once each, and every one is receipted out of the outbox.

mod common;

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use xueliang_agent::config::{MqttConfig, OutboxConfig};
use xueliang_agent::outbox::Outbox;
use xueliang_agent::publisher::Publisher;
use xueliang_center::center::{BrokerChoice, CenterConfig, start};
use xueliang_center::ingest::BrokerConnection;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, SCHEMA_VERSION};

const ALARMS: usize = 600;

async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_drain_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (mosquitto, port) = common::start_mosquitto(dir.path(), 0);
    let shutdown = CancellationToken::new();
    let center = start(
        CenterConfig {
            data_dir: dir.path().join("center"),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            broker: BrokerChoice::External(BrokerConnection { host: "127.0.0.1".into(), port, credentials: None }),
            topic_prefix: "xl/v1".into(),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();

    // An agent back from a long outage: its outbox holds 600 alarms.
    let outbox = Outbox::open(&dir.path().join("outbox"), OutboxConfig::default().limits()).unwrap();
    for i in 0..ALARMS {
        let alarm = Alarm {
            schema_version: SCHEMA_VERSION as i32,
            id: format!("burst-{i:04}"),
            agent_id: "burst-village".into(),
            camera_id: "gate".into(),
            event_time_ms: now_ms(),
            ..Default::default()
        };
        outbox.push(&alarm).unwrap();
    }
    let mqtt = MqttConfig { url: format!("mqtt://127.0.0.1:{port}"), ..MqttConfig::default() };
    let publisher = Publisher::new(&mqtt, "burst-village").unwrap();
    let (_wake, wake_rx) = mpsc::channel(1);
    let (_health, health_rx) = mpsc::channel(1);
    let agent = tokio::spawn(publisher.run(outbox.clone(), wake_rx, health_rx, shutdown.clone()));

    // Part way through, the broker dies (it keeps nothing) and comes back on the same port.
    let store = center.store.clone();
    wait_until("the first alarms stored", Duration::from_secs(30), || store.len() >= 50).await;
    drop(mosquitto);
    let stored_at_crash = store.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_mosquitto, _) = common::start_mosquitto(dir.path(), port);

    wait_until("all 600 stored", Duration::from_secs(90), || store.len() >= ALARMS).await;
    wait_until("the outbox emptied by receipts", Duration::from_secs(60), || outbox.is_empty()).await;
    assert!(stored_at_crash < ALARMS, "the broker died mid-drain ({stored_at_crash} stored)");
    assert_eq!(store.len(), ALARMS, "each alarm stored exactly once");
    let newest = store.newest(1000).unwrap();
    for i in 0..ALARMS {
        let id = format!("burst-{i:04}");
        assert!(newest.iter().any(|r| r.id == id), "{id} missing");
    }
    shutdown.cancel();
    agent.await.unwrap();
    center.join().await;
}
