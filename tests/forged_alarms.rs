//! The embedded broker has no topic ACLs, so signatures keep agents honest: agent A's alarm
//! published as agent B is dead-lettered, as are unsigned alarms, alarms from an agent nobody
//! registered, and garbage, and so is A's own alarm with the id of B's (alarms are kept by
//! agent and id); B's genuine alarm is stored, and ingest goes on. An oversized
//! payload, which a broker may pass on, is dead-lettered too instead of breaking ingest.

mod common;

use std::time::Duration;

use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::running::{BrokerChoice, start};
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, Message};
use xueliang_testkit::scenario;

fn alarm(id: &str, agent: &str) -> Alarm {
    Alarm {
        id: id.into(),
        agent_id: agent.into(),
        camera_id: "gate".into(),
        event_time_ms: now_ms(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_cannot_speak_for_another_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let center_dir = dir.path().join("center");
    for agent in ["village-a", "village-b"] {
        scenario::prepare_keys(&center_dir, agent, &dir.path().join(agent)).unwrap();
    }
    let a = Sealer::open(&dir.path().join("village-a")).unwrap();
    let b = Sealer::open(&dir.path().join("village-b")).unwrap();
    let unregistered = Sealer::open(&dir.path().join("village-x")).unwrap();
    let shutdown = CancellationToken::new();
    let broker = common::embedded_broker();
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();

    let client = common::connect_when_ingesting(&center.mqtt_addr, "intruder").await.0;
    let sends: [(&str, Vec<u8>); 5] = [
        ("village-b", a.seal(alarm("forged-by-a", "village-b"), usize::MAX).unwrap().message),
        ("village-b", alarm("unsigned", "village-b").encode_to_vec()),
        (
            "village-x",
            unregistered.seal(alarm("from-nobody", "village-x"), usize::MAX).unwrap().message,
        ),
        ("village-a", b"\xff\x00 not protobuf".to_vec()),
        ("village-b", b.seal(alarm("genuine-from-b", "village-b"), usize::MAX).unwrap().message),
    ];
    for (agent, payload) in sends {
        client
            .publish(format!("xl/v1/{agent}/alarm"), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    let stored = common::wait_for_alarm(center.http_addr, Duration::from_secs(10)).await;
    assert_eq!(stored.expect("the genuine alarm").id, "genuine-from-b");
    // Alarms are kept by agent and id: A's own alarm with B's id does not pass for B's.
    let same_id = a.seal(alarm("genuine-from-b", "village-a"), usize::MAX).unwrap().message;
    client.publish("xl/v1/village-a/alarm", QoS::AtLeastOnce, false, same_id).await.unwrap();
    let admin = common::Api::admin(center.http_addr).await;
    let t0 = std::time::Instant::now();
    let body = loop {
        let body = admin.json("/api/dead-letters").await;
        if body["dead_letters"].as_array().unwrap().len() == 5 {
            break body;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "5 dead letters: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut reasons: Vec<(String, String)> = body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (d["topic"].as_str().unwrap().to_owned(), d["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    reasons.sort();
    let keys = center_dir.join("agent-keys.toml");
    assert_eq!(
        reasons,
        [
            (
                "xl/v1/village-a/alarm".to_owned(),
                "alarm genuine-from-b of village-a: another agent's alarm has this id (alarms are \
                 kept by agent and id)"
                    .to_owned()
            ),
            (
                "xl/v1/village-a/alarm".to_owned(),
                "malformed protobuf: unsupported wire type".to_owned()
            ),
            ("xl/v1/village-b/alarm".to_owned(), "the message is not signed".to_owned()),
            (
                "xl/v1/village-b/alarm".to_owned(),
                "the signature does not verify against the key registered for \"village-b\""
                    .to_owned()
            ),
            (
                "xl/v1/village-x/alarm".to_owned(),
                format!(
                    "no key registered for agent \"village-x\": add its line (`xl-agent key` on the box prints it) to {}",
                    keys.display()
                )
            ),
        ]
    );
    assert_eq!(center.store.len(), 1, "only the genuine alarm is stored");
    shutdown.cancel();
    center.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_payload_through_mosquitto_is_dead_lettered_and_ingest_goes_on() {
    use xueliang_center::ingest::BrokerConnection;
    let dir = tempfile::tempdir().unwrap();
    let (_mosquitto, port) = common::start_mosquitto(dir.path(), 0);
    scenario::prepare_keys(&dir.path().join("center"), "village-b", &dir.path().join("village-b"))
        .unwrap();
    let b = Sealer::open(&dir.path().join("village-b")).unwrap();
    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::External(BrokerConnection {
        host: "127.0.0.1".into(),
        port,
        credentials: None,
        tls: None,
    });
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();

    let client = common::connect_when_ingesting(&center.mqtt_addr, "intruder").await.0;
    let big = vec![0u8; xueliang_proto::MAX_MESSAGE_BYTES + 30_000];
    client.publish("xl/v1/village-b/alarm", QoS::AtLeastOnce, false, big).await.unwrap();
    let genuine = b.seal(alarm("after-the-big-one", "village-b"), usize::MAX).unwrap().message;
    client.publish("xl/v1/village-b/alarm", QoS::AtLeastOnce, false, genuine).await.unwrap();

    let stored = common::wait_for_alarm(center.http_addr, Duration::from_secs(10)).await;
    assert_eq!(stored.expect("ingest went on").id, "after-the-big-one");
    let body = common::Api::admin(center.http_addr).await.json("/api/dead-letters").await;
    assert_eq!(
        body["dead_letters"][0]["reason"],
        format!(
            "payload of {} bytes exceeds the limit of {} bytes",
            xueliang_proto::MAX_MESSAGE_BYTES + 30_000,
            xueliang_proto::MAX_MESSAGE_BYTES
        )
    );
    shutdown.cancel();
    center.join().await;
}
