//! Delivery that loses nothing: alarms raised while the county broker is unreachable wait in the
//! agent's durable outbox, survive an agent restart, and reach the center once it is up; each
//! leaves the outbox only when the center's receipt names it.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use xueliang_agent::config::OutboxConfig;
use xueliang_agent::delivery::{Outbox, PendingKind};
use xueliang_center::running::{BrokerChoice, start};
use xueliang_testkit::rtsp_server::RtspServer;
use xueliang_testkit::scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_raised_while_the_broker_is_down_survive_a_restart_and_are_receipted() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mqtt = format!("mqtt://127.0.0.1:{port}");
    let camera = RtspServer::serve_file(&scenario::vtest(), "campus-walkway").unwrap();
    let url = camera.url("campus-walkway");
    let outbox_dir = dir.path().join("agent-data/outbox");

    // The agent runs with nothing listening on the broker's port: people on the walkway raise
    // alarms, which can only wait. Then the box loses power (the agent stops).
    let center_key = common::prepare_keys(dir.path(), "outage-village");
    let shutdown = CancellationToken::new();
    let agent = common::start_agent(
        "outage-village",
        &url,
        &mqtt,
        &center_key,
        "",
        dir.path(),
        shutdown.clone(),
    );
    // People cross the walkway all the time: 15 s are plenty for several alarms.
    tokio::time::sleep(Duration::from_secs(15)).await;
    shutdown.cancel();
    agent.await.unwrap();
    let waiting = Outbox::open(&outbox_dir, (&OutboxConfig::default()).into())
        .unwrap()
        .oldest(1000, |_| false);
    // Opening alarms (and their events' updates, which change the same records).
    let pending: Vec<String> =
        waiting.iter().filter(|p| p.kind == PendingKind::Alarm).map(|p| p.id.clone()).collect();
    assert!(!pending.is_empty(), "alarms wait in the outbox while the broker is down");

    // The county center comes up on that port; the agent restarts and drains its outbox.
    let shutdown = CancellationToken::new();
    let broker = BrokerChoice::Embedded {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        tls: None,
        passwords: false,
    };
    let center = start(common::center_config(dir.path(), broker), shutdown.clone()).await.unwrap();
    let agent = common::start_agent(
        "outage-village",
        &url,
        &mqtt,
        &center_key,
        "",
        dir.path(),
        shutdown.clone(),
    );
    let api = common::Api::admin(center.http_addr).await;
    for id in &pending {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let r = api.get(&format!("/api/alarms/{id}")).send().await;
                if r.is_ok_and(|r| r.status() == 200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await;
        assert!(found.is_ok(), "alarm {id} from before the restart reached the center");
    }
    // Receipts take them out of the outbox.
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown.cancel();
    agent.await.unwrap();
    center.join().await;
    let outbox = Outbox::open(&outbox_dir, (&OutboxConfig::default()).into()).unwrap();
    let left: Vec<String> = outbox.oldest(1000, |_| false).into_iter().map(|p| p.id).collect();
    for p in &waiting {
        assert!(
            !left.contains(&p.id),
            "{} was stored yet still waits in the outbox: {left:?}",
            p.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_over_the_limit_follows_its_alarm_and_is_verified_against_its_signed_hash() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::embedded_broker();
    // D1 snapshots are ~90 KB: with a 16 KiB limit every picture travels on its own.
    let s = common::Scenario::start_with(
        dir.path(),
        "slow-link",
        broker,
        "[snapshot]\nsend_after_bytes = 16384\n",
    )
    .await;
    let http = s.center.http_addr;
    let alarm =
        common::wait_for_alarm_where(http, Duration::from_secs(60), |a| a.kind == "zone_intrusion")
            .await
            .expect("an intrusion alarm");
    assert!(alarm.snapshot_follows, "{alarm:?}");
    assert_eq!(alarm.snapshot_sha256.len(), 64);
    // The picture arrives after its alarm and is kept only if it is the one the agent signed for.
    let with_picture = common::wait_for_alarm_where(http, Duration::from_secs(30), |a| {
        a.id == alarm.id && a.snapshot_bytes > 16384
    })
    .await
    .expect("the snapshot followed");
    common::assert_snapshot_decodes(http, &with_picture).await;
    let api = common::Api::admin(http).await;
    let jpeg = api
        .get(&format!("/api/alarms/{}/snapshot", alarm.id))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        xueliang_proto::signing::hex(&xueliang_proto::signing::sha256(&jpeg)),
        alarm.snapshot_sha256
    );
    s.stop().await;
}
