//! A county served by two center processes: `xl-center serve --cluster` twice, on one
//! PostgreSQL database (a server of the test's own) and one data directory, behind Mosquitto,
//! which shares the boxes' messages between them (MQTT shared subscriptions). Five boxes
//! (`xl-scripted-agent`, the agent's real outbox and publisher) raise 10,000 alarms; half-way,
//! the process doing the county's duties is killed with SIGKILL. The other takes the duties
//! over and speaks for the center with a new run; the boxes send again what the killed one had
//! not receipted. In the end every alarm is stored exactly once (its record and its index
//! entries), every box has every receipt, every alarm escalated exactly once (its timeline and
//! the audit log, whose one chain both processes appended to and which verifies) and its
//! escalation's dispatch reached the unit; and the survivor's console heard of the alarms the
//! other stored. `cargo test --test scale_out -- --nocapture` prints the figures.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Reaper};
use xueliang_center::access::AuditLog;
use xueliang_center::domain::Action;
use xueliang_center::store::{Backend, Store};
use xueliang_testkit::scenario;

const BOXES: [&str; 5] = ["box-a", "box-b", "box-c", "box-d", "box-e"];
const PER_BOX: u32 = 2000;
/// Each box's alarms per second: within the center's default quota of 100.
const RATE: f64 = 80.0;
const ALARMS: usize = BOXES.len() * PER_BOX as usize;
/// Seconds an alarm waits, unacknowledged, before it escalates: escalations run while alarms
/// still come, and when the duties' holder is killed.
const ESCALATE_AFTER_S: u64 = 4;
const UNIT: &str = "township-scale";
/// Seconds until a dispatch the unit has not marked received is sent again: what the killed
/// process had stored but not yet sent goes out then.
const RESEND_S: u64 = 20;

fn routing() -> String {
    format!(
        "[[unit]]\nid = \"{UNIT}\"\nname = \"测试镇综治办\"\ntype = \"township_office\"\n\n\
         [escalation]\nafter_s = {ESCALATE_AFTER_S}\nunits = [\"{UNIT}\"]\n\n\
         [supervision]\nresend_dispatch_s = {RESEND_S}\n"
    )
}

/// `xl-center serve --cluster county` as process `node`, on `store` and `broker`.
fn serve(data: &Path, log: &Path, node: &str, store: &str, broker: &str) -> (Reaper, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(common::workspace_binary("xl-center"))
        .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--broker-url", broker])
        .args(["--cluster", "county", "--node", node, "--store", store])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let reaper = Reaper(child);
    common::wait_listening(port);
    (reaper, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_serve_one_county_and_one_killed_loses_nothing_and_repeats_nothing() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("center");
    common::add_test_admin(&data);
    std::fs::write(data.join("routing.toml"), routing()).unwrap();
    let mut center_key = String::new();
    for b in BOXES {
        center_key = scenario::prepare_keys(&data, b, &dir.path().join(b)).unwrap();
    }
    let pg = xueliang_pgtest::shared().expect("PostgreSQL is installed (make setup)");
    let url = pg.database().unwrap();
    let (_mosquitto, mqtt_port) = common::start_mosquitto(dir.path(), 0);
    let broker = format!("mqtt://127.0.0.1:{mqtt_port}");
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let logs_tail = || logs.iter().map(|l| common::log_tail(l)).collect::<String>();
    let mut centers = [
        Some(serve(&data, &logs[0], "a", &url, &broker)),
        Some(serve(&data, &logs[1], "b", &url, &broker)),
    ];

    // The unit's dispatches, as its client hears them.
    let (dispatch_client, mut dispatches) =
        common::connect_when_ingesting(&format!("127.0.0.1:{mqtt_port}"), "unit-client").await;
    dispatch_client
        .subscribe(format!("xl/v1/dispatch/{UNIT}"), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();

    // Which process speaks for the center: the one whose log says it took the duties.
    let holds = |i: usize| {
        std::fs::read_to_string(&logs[i]).unwrap_or_default().contains("holds the county's duties")
    };
    let t0 = Instant::now();
    let first = loop {
        if let Some(i) = (0..2).find(|&i| holds(i)) {
            break i;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "a process took the duties:\n{}",
            logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let survivor = 1 - first;
    let survivor_http: std::net::SocketAddr =
        ([127, 0, 0, 1], centers[survivor].as_ref().unwrap().1).into();

    // The survivor's console: the new alarms it hears of, whichever process stored them.
    let admin = Api::admin(survivor_http).await;
    let mut live = admin.get("/api/events").send().await.unwrap();
    assert_eq!(live.status(), 200);
    let heard = Arc::new(Mutex::new(HashSet::new()));
    let listening = {
        let heard = heard.clone();
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = live.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                        continue;
                    };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                        continue;
                    };
                    if v["change"] == "new" {
                        let id = v["alarm"]["id"].as_str().unwrap_or_default().to_owned();
                        heard.lock().unwrap().insert(id);
                    }
                }
            }
        })
    };

    let mut boxes: Vec<(&str, Reaper)> = BOXES
        .iter()
        .map(|b| {
            let agent = common::start_scripted_agent_at(
                dir.path(),
                b,
                &broker,
                &center_key,
                PER_BOX,
                RATE,
                &[],
            );
            (*b, agent)
        })
        .collect();

    // Half-way, the duties' holder is killed.
    let store = Store::open_with(&Backend::Postgres(url.clone()), &data).unwrap();
    let t0 = Instant::now();
    while store.len() < ALARMS / 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "half stored within 90 s:\n{}",
            logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored_at_kill = store.len();
    let (mut killed, _) = centers[first].take().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let killed_at = Instant::now();

    // The survivor takes the duties over once the lease lapses.
    while !holds(survivor) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the survivor took the duties within 30 s:\n{}",
            logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took_over = killed_at.elapsed();

    // Every box ends once every alarm of its is receipted.
    while !boxes.is_empty() {
        boxes.retain_mut(|(name, agent)| match agent.0.try_wait().unwrap() {
            None => true,
            Some(status) => {
                assert!(
                    status.success(),
                    "{name} failed:\n{}",
                    common::log_tail(&dir.path().join(format!("{name}.log")))
                );
                false
            }
        });
        assert!(
            began.elapsed() < Duration::from_secs(240),
            "every box had every receipt within 240 s:\n{}",
            logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = began.elapsed();

    // Every alarm escalates, once: wait for the last.
    let t0 = Instant::now();
    let records = loop {
        let records = store.query(&Default::default(), None, 100_000).unwrap().alarms;
        if records.iter().all(|r| r.escalated) {
            break records;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "every alarm escalated within 120 s ({} of {}):\n{}",
            records.iter().filter(|r| r.escalated).count(),
            records.len(),
            logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let escalated_in = t0.elapsed();

    // Nothing lost, nothing twice: the index lists each alarm of each box once.
    let expected: HashSet<String> = BOXES
        .iter()
        .flat_map(|b| (0..PER_BOX).map(move |i| format!("{b}-cam-{}-{i:05}", i % 2)))
        .collect();
    let held: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(records.len(), ALARMS, "each alarm listed once");
    assert_eq!(held, expected, "exactly the boxes' alarms");
    assert_eq!(store.len(), ALARMS);

    // Each escalated once: one step in its timeline, one entry in the audit log.
    let twice: Vec<&str> = records
        .iter()
        .filter(|r| r.timeline.iter().filter(|s| s.action == Action::Escalate).count() != 1)
        .map(|r| r.id.as_str())
        .collect();
    assert!(
        twice.is_empty(),
        "{} alarms escalated other than once: {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    let audit = AuditLog::open(&store).unwrap();
    let mut audited: HashMap<String, usize> = HashMap::new();
    for e in audit.list(None, None, 1_000_000).unwrap() {
        if e.action == Action::Escalate.as_str() {
            *audited.entry(e.target).or_default() += 1;
        }
    }
    assert_eq!(audited.len(), ALARMS, "every escalation audited");
    assert!(audited.values().all(|n| *n == 1), "each escalation audited once");
    // Both processes appended to one chain, which verifies.
    let key: xueliang_proto::signing::VerifyingKey = center_key.parse().unwrap();
    let verified = audit.verify(&key).expect("the audit chain verifies");
    assert!(verified.chained as usize >= ALARMS, "{verified}");

    // Every escalation's dispatch reached the unit (sent again while not received, never for a
    // second escalation: one dispatch id per alarm), those the killed process stored and did not
    // send too.
    let mut dispatched: BTreeMap<String, usize> = BTreeMap::new();
    let t0 = Instant::now();
    while dispatched.len() < ALARMS && t0.elapsed() < Duration::from_secs(RESEND_S * 3) {
        match tokio::time::timeout(Duration::from_secs(1), dispatches.recv()).await {
            Ok(Some(p)) if p.topic.starts_with("xl/v1/dispatch/") => {
                let d: xueliang_proto::Dispatch =
                    xueliang_proto::decode_limited(&p.payload).unwrap();
                *dispatched.entry(d.dispatch_id).or_default() += 1;
            }
            _ => {}
        }
    }
    assert_eq!(dispatched.len(), ALARMS, "each escalated alarm's dispatch reached the unit");
    let sent_again = dispatched.values().filter(|n| **n > 1).count();

    // The survivor's console heard of the alarms the killed process stored before it died,
    // and of the survivor's own.
    let metrics = common::metrics(survivor_http).await;
    assert_eq!(
        common::counter(&metrics, "xl_center_duties_held"),
        1,
        "the survivor says it holds them"
    );
    let stored_here = common::counter(&metrics, "xl_center_alarms_stored_total");
    listening.abort();
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard.len() as u64 > stored_here,
        "the survivor's console heard of {} new alarms, more than the {stored_here} it stored",
        heard.len()
    );

    eprintln!(
        "{ALARMS} alarms from {} boxes through 2 center processes: {stored_at_kill} stored when \
         the duties' holder was killed; the survivor took the duties over {:.1} s later; every \
         receipt in {:.1} s; the last escalation {:.1} s after that; the survivor stored \
         {stored_here} itself and its console heard of {} new alarms; {sent_again} dispatches \
         sent again while not received",
        BOXES.len(),
        took_over.as_secs_f64(),
        delivered.as_secs_f64(),
        escalated_in.as_secs_f64(),
        heard.len()
    );
}
