//! Interop with a real Mosquitto started by the test on a free loopback port: the agent
//! publishes through it, the center ingests through it, and `mosquitto_sub` (a client nobody
//! here wrote) sees the alarm on its topic.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Reaper, Scenario, start_mosquitto};
use xueliang_center::ingest::BrokerConnection;
use xueliang_center::running::BrokerChoice;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_travel_through_mosquitto_and_a_foreign_client_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_mosquitto, port) = start_mosquitto(dir.path(), 0);
    // A client nobody here wrote: prints the topic of the first alarm it sees, then exits.
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "xl/v1/+/alarm", "-C", "1", "-F", "%t %l"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (make setup)");
    let sub = Reaper(sub);

    let external = BrokerChoice::External(BrokerConnection {
        host: "127.0.0.1".into(),
        port,
        credentials: None,
        tls: None,
    });
    let run = Scenario::start(dir.path(), "mosq-village", external).await;
    let center = &run.center;

    let alarm = common::wait_for_alarm(center.http_addr, Duration::from_secs(60))
        .await
        .expect("an alarm through Mosquitto within 60 s");
    common::assert_walkway_intrusion(&alarm, "mosq-village");
    common::assert_snapshot_decodes(center.http_addr, &alarm).await;

    // mosquitto_sub saw the same alarm topic; its payload length matches an alarm with snapshot.
    let mut sub = sub;
    let output = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        loop {
            match sub.0.try_wait().unwrap() {
                Some(_) => break,
                None if start.elapsed() > Duration::from_secs(10) => break,
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let mut out = String::new();
        if let Some(mut stdout) = sub.0.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        out
    })
    .await
    .unwrap();
    let mut parts = output.split_whitespace();
    assert_eq!(parts.next(), Some("xl/v1/mosq-village/alarm"), "mosquitto_sub printed {output:?}");
    let len: usize = parts.next().and_then(|l| l.parse().ok()).expect("payload length");
    assert!(
        len > alarm.snapshot_bytes,
        "payload {len} B holds the {} B snapshot",
        alarm.snapshot_bytes
    );

    run.stop().await;
}
