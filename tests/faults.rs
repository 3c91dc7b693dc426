//! Delivery under faults, with real processes: `xl-scripted-agent` (an agent process using the agent's
//! sealer, durable outbox and publisher) raises 1,000 alarms, and `xl-center` must end up
//! holding exactly those 1,000 ids, each once, in order per camera, while the agent, the broker
//! or the center is killed, the link misbehaves, or every alarm is delivered twice. Each test
//! prints its figures: sent, stored, lost, stored twice, redeliveries, and the time to drain
//! after recovery (`cargo test --test faults -- --nocapture`).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Reaper;
use common::chaos_proxy::ChaosProxy;
use xueliang_agent::config::OutboxConfig;
use xueliang_agent::delivery::Outbox;
use xueliang_center::store::Store;
use xueliang_testkit::scenario;

const ALARMS: u32 = 1000;
const AGENT: &str = "fault-village";
/// Alarms raised per second: 20 s of raising, so faults strike mid-stream.
const RATE: &str = "50";
/// Stored alarms after which a fault strikes.
const STRIKE_AT: u64 = 250;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Broker {
    Mosquitto,
    Embedded,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A center, a broker and a replaying agent, each a real process.
struct Rig {
    dir: tempfile::TempDir,
    broker: Broker,
    broker_port: u16,
    http_port: u16,
    center_key: String,
    mosquitto: Option<Reaper>,
    center: Option<Reaper>,
    agent: Option<Reaper>,
    /// Redeliveries the center counted, summed over its restarts.
    redeliveries: u64,
    /// Logged in once: the session is kept in the store across the center's restarts.
    api: tokio::sync::OnceCell<common::Api>,
}

impl Rig {
    async fn new(broker: Broker) -> Self {
        Self::new_in(broker, tempfile::tempdir().unwrap()).await
    }

    /// A rig in `dir`, where the center's and the agent's data folders may be mounted already.
    async fn new_in(broker: Broker, dir: tempfile::TempDir) -> Self {
        let center_key = scenario::prepare_keys(
            &dir.path().join("center"),
            AGENT,
            &dir.path().join("agent-data"),
        )
        .unwrap();
        let mut rig = Self {
            broker,
            broker_port: free_port(),
            http_port: free_port(),
            center_key,
            mosquitto: None,
            center: None,
            agent: None,
            redeliveries: 0,
            api: tokio::sync::OnceCell::new(),
            dir,
        };
        common::add_test_admin(&rig.path("center"));
        rig.agent_via(rig.broker_port);
        if broker == Broker::Mosquitto {
            rig.start_mosquitto();
        }
        rig.start_center().await;
        rig
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> Stdio {
        let f =
            std::fs::OpenOptions::new().create(true).append(true).open(self.path(name)).unwrap();
        Stdio::from(f)
    }

    /// Writes the agent's config, connecting to loopback `port` (the broker, or a proxy).
    fn agent_via(&self, port: u16) {
        let mut toml = scenario::agent_toml(
            AGENT,
            "rtsp://127.0.0.1:9/unused",
            &format!("mqtt://127.0.0.1:{port}"),
            &self.center_key,
        );
        if self.broker == Broker::Mosquitto {
            // Mosquitto resumes sessions: receipts missed during a drop still arrive.
            toml = toml.replace("[mqtt]\n", "[mqtt]\npersistent_session = true\n");
        }
        std::fs::write(self.path("agent.toml"), toml).unwrap();
    }

    fn start_mosquitto(&mut self) {
        self.mosquitto = Some(common::start_mosquitto(self.dir.path(), self.broker_port).0);
    }

    async fn start_center(&mut self) {
        let data = self.path("center").display().to_string();
        let http = format!("127.0.0.1:{}", self.http_port);
        let mut args = vec!["serve".to_string(), "--data-dir".into(), data, "--http".into(), http];
        match self.broker {
            Broker::Embedded => {
                args.extend(["--mqtt-listen".into(), format!("127.0.0.1:{}", self.broker_port)])
            }
            Broker::Mosquitto => args
                .extend(["--broker-url".into(), format!("mqtt://127.0.0.1:{}", self.broker_port)]),
        }
        let child = Command::new(common::workspace_binary("xl-center"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(self.log("center.log"))
            .spawn()
            .expect("xl-center starts");
        self.center = Some(Reaper(child));
        common::wait_listening(self.http_port);
    }

    /// kill -9 the center (and with it the embedded broker and all it held).
    async fn kill_center(&mut self) {
        self.redeliveries += self.stat("duplicates").await.unwrap_or(0);
        self.center = None;
    }

    fn start_agent(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_xl-scripted-agent"))
            .args([
                "--config",
                self.path("agent.toml").to_str().unwrap(),
                "--count",
                &ALARMS.to_string(),
            ])
            .args(["--per-second", RATE, "--exit-when-delivered"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(self.log("agent.log"))
            .spawn()
            .expect("xl-scripted-agent starts");
        self.agent = Some(Reaper(child));
    }

    /// The last lines of the processes' logs, for a failure message.
    fn logs(&self) -> String {
        ["center.log", "agent.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.path(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("--- {name}\n{}", lines[lines.len().saturating_sub(15)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn stat(&self, name: &str) -> Option<u64> {
        let http = ([127, 0, 0, 1], self.http_port).into();
        let api = self.api.get_or_init(|| common::Api::admin(http)).await;
        let stats: serde_json::Value =
            api.get("/api/stats").send().await.ok()?.json().await.ok()?;
        stats[name].as_u64()
    }

    /// Waits until the center holds at least `n` alarms.
    async fn wait_stored(&self, n: u64, limit: Duration) {
        let t0 = Instant::now();
        while self.stat("alarms").await.unwrap_or(0) < n {
            assert!(t0.elapsed() < limit, "{n} alarms stored within {limit:?}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for every alarm to be stored and receipted (the agent exits once its outbox is
    /// empty), then checks what the center holds and prints the figures of `fault`.
    async fn verify(mut self, fault: &str, recovered: Instant) {
        // Drained: every alarm stored. Caught up: since the last one was raised (the replay's
        // progress file says when), how long until it too was stored.
        let progress = self.path("agent-data/replay-next");
        let mut raised_all: Option<Instant> = None;
        let t0 = Instant::now();
        while self.stat("alarms").await.unwrap_or(0) < ALARMS as u64 {
            assert!(
                t0.elapsed() < Duration::from_secs(180),
                "all {ALARMS} stored within 180 s\n{}",
                self.logs()
            );
            if raised_all.is_none()
                && std::fs::read_to_string(&progress).is_ok_and(|p| p.trim() == ALARMS.to_string())
            {
                raised_all = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let drain = recovered.elapsed();
        let caught_up = raised_all.map_or(Duration::ZERO, |t| t.elapsed());
        let t0 = Instant::now();
        let status = loop {
            if let Some(status) = self.agent.as_mut().expect("the agent runs").0.try_wait().unwrap()
            {
                break status;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "every alarm receipted within 90 s of being stored\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(status.success(), "xl-scripted-agent failed\n{}", self.logs());
        let redeliveries = self.redeliveries + self.stat("duplicates").await.unwrap_or(0);
        // Stop the center politely, then read what it stored.
        if let Some(center) = self.center.take() {
            unsafe { libc::kill(center.0.id() as i32, libc::SIGTERM) };
            let mut center = center;
            let _ = center.0.wait();
        }
        let store = Store::open(&self.path("center")).unwrap();
        let (own, records): (Vec<_>, Vec<_>) = store
            .query(&Default::default(), None, ALARMS as usize * 2)
            .unwrap()
            .alarms
            .into_iter()
            .partition(|r| r.rule_id == "supervision");
        // The center's own events: its disk running low, once, is the only one a fault raises.
        let own: Vec<String> = own.into_iter().map(|r| r.kind).collect();
        let raised: &[&str] =
            if fault.contains("the center's disk full") { &["center_disk_low"] } else { &[] };
        assert_eq!(own, raised, "the center's own events");
        let expected: HashSet<String> =
            (0..ALARMS).map(|i| format!("{AGENT}-cam-{}-{i:05}", i % 2)).collect();
        let held: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let lost = expected.difference(&held).count();
        let foreign = held.difference(&expected).count();
        let twice = records.len() - held.len();
        eprintln!(
            "fault {fault} ({:?}): sent {ALARMS}, stored {}, lost {lost}, stored twice {twice}, \
             redeliveries deduplicated {redeliveries}; all stored {:.1} s after recovery, {:.1} s after the last was raised",
            self.broker,
            held.len(),
            drain.as_secs_f32(),
            caught_up.as_secs_f32()
        );
        assert_eq!((lost, foreign, twice), (0, 0, 0), "exactly the {ALARMS} alarms, each once");
        assert_eq!(store.len(), ALARMS as usize + own.len());
        // In order per camera: a later alarm of a camera is never stored before an earlier one.
        let mut by_camera: BTreeMap<&str, Vec<(u32, i64)>> = BTreeMap::new();
        for r in &records {
            let seq: u32 = r.id.rsplit('-').next().unwrap().parse().unwrap();
            by_camera.entry(r.camera_id.as_str()).or_default().push((seq, r.received_time_ms));
        }
        for (camera, mut alarms) in by_camera {
            alarms.sort();
            for w in alarms.windows(2) {
                assert!(
                    w[0].1 <= w[1].1,
                    "{camera}: alarm {} stored after alarm {}",
                    w[0].0,
                    w[1].0
                );
            }
        }
        let outbox =
            Outbox::open(&self.path("agent-data/outbox"), (&OutboxConfig::default()).into())
                .unwrap();
        assert!(outbox.is_empty(), "receipts emptied the outbox");
    }
}

async fn kill_the_agent_mid_stream(broker: Broker) {
    let mut rig = Rig::new(broker).await;
    rig.start_agent();
    rig.wait_stored(STRIKE_AT, Duration::from_secs(60)).await;
    rig.agent = None;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.start_agent();
    rig.verify("1: agent killed", Instant::now()).await;
}

async fn kill_the_center_during_ingest(broker: Broker) {
    let mut rig = Rig::new(broker).await;
    rig.start_agent();
    rig.wait_stored(STRIKE_AT, Duration::from_secs(60)).await;
    rig.kill_center().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.start_center().await;
    rig.verify("3: center killed", Instant::now()).await;
}

/// Every alarm crosses the broker twice: a client republishes each one it sees once more.
async fn deliver_every_alarm_twice(broker: Broker) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut rig = Rig::new(broker).await;
    let mut opts = MqttOptions::new("echo", "127.0.0.1", rig.broker_port);
    opts.set_max_packet_size(2 << 20, 2 << 20);
    let (client, mut events) = AsyncClient::new(opts, 100);
    client.subscribe("xl/v1/+/alarm", QoS::AtLeastOnce).await.unwrap();
    let echo = tokio::spawn(async move {
        let mut seen = HashSet::new();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if seen.insert(p.payload.clone()) {
                        client.publish(p.topic, QoS::AtLeastOnce, false, p.payload).await.unwrap();
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    rig.start_agent();
    rig.verify("5: every alarm delivered twice", Instant::now()).await;
    echo.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_stream_via_mosquitto() {
    kill_the_agent_mid_stream(Broker::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_stream_via_the_embedded_broker() {
    kill_the_agent_mid_stream(Broker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_down_for_a_minute() {
    let mut rig = Rig::new(Broker::Mosquitto).await;
    rig.start_agent();
    rig.wait_stored(STRIKE_AT, Duration::from_secs(60)).await;
    // Mosquitto here keeps nothing on disk: what it held is gone.
    rig.mosquitto = None;
    tokio::time::sleep(Duration::from_secs(60)).await;
    rig.start_mosquitto();
    rig.verify("2: broker down 60 s", Instant::now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_killed_during_ingest_via_mosquitto() {
    kill_the_center_during_ingest(Broker::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn center_killed_during_ingest_with_the_embedded_broker() {
    kill_the_center_during_ingest(Broker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_drops_and_stalls_at_random() {
    let mut rig = Rig::new(Broker::Mosquitto).await;
    let seed = std::env::var("XL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let proxy = ChaosProxy::start(rig.broker_port, Duration::from_secs(25), seed).await;
    rig.agent_via(proxy.port);
    rig.start_agent();
    let mut calm = proxy.calm.clone();
    let recovered = *calm.wait_for(Option::is_some).await.unwrap();
    let m = &proxy.mischief;
    let (cuts, stalls) = (
        m.cuts.load(std::sync::atomic::Ordering::Relaxed),
        m.stalls.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!("chaos proxy: {cuts} cuts and {stalls} stalls in 25 s");
    assert!(cuts + stalls >= 5, "the link misbehaved");
    rig.verify("4: flaky link", recovered.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alarm_delivered_twice_via_mosquitto() {
    deliver_every_alarm_twice(Broker::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alarm_delivered_twice_via_the_embedded_broker() {
    deliver_every_alarm_twice(Broker::Embedded).await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts `mib` MiB at `at`; None (and why, printed) where this machine cannot mount.
    fn mount(at: &std::path::Path, mib: u32) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self(at.to_owned())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a small filesystem to fill (needs root or CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount to make a small filesystem to fill: {e}");
                None
            }
        }
    }

    /// Writes a file until the disk is full; returns it (delete it to free the space).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        // The last bytes a partial block leaves.
        while f.write_all(&[0u8]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The center's `/healthz`: its status code and body.
async fn healthz(port: u16) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

/// The center's disk fills mid-stream and is freed again: the center says it is failing, the
/// boxes keep what it cannot store, and it reopens its store by itself once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centers_disk_full_mid_stream_then_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("center"), 48) else { return };
    let mut rig = Rig::new_in(Broker::Embedded, dir).await;
    rig.start_agent();
    rig.wait_stored(STRIKE_AT, Duration::from_secs(60)).await;
    let filler = disk.fill();
    let t0 = Instant::now();
    let failing = loop {
        if let Some((503, body)) = healthz(rig.http_port).await {
            break body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "/healthz fails once the disk is full\n{}",
            rig.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("while full, /healthz answered 503:\n{failing}");
    // Ingest finds no room (or, if another write took the last bytes, the store failed).
    assert!(
        failing.contains("store: disk full") || failing.contains("store: cannot write"),
        "{failing}"
    );
    let stored_while_full = rig.stat("alarms").await.unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    // The same process reopens its store: nobody restarts it.
    let pid = rig.center.as_ref().unwrap().0.id();
    let t0 = Instant::now();
    loop {
        if let Some((200, _)) = healthz(rig.http_port).await {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "healthy again once freed\n{}", rig.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "center disk full: {stored_while_full} stored when it filled; healthy again {:.1} s after it was freed",
        freed.elapsed().as_secs_f32()
    );
    assert_eq!(rig.center.as_ref().unwrap().0.id(), pid, "the same process");
    rig.verify("6: the center's disk full, then freed", freed).await;
}

/// The box's disk fills mid-stream while its uplink is cut (its outbox grows), and is freed
/// again: it keeps its alarms in memory meanwhile and writes them to its outbox, in order,
/// once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boxs_disk_full_mid_stream_then_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("agent-data"), 16) else { return };
    let mut rig = Rig::new_in(Broker::Embedded, dir).await;
    rig.start_agent();
    rig.wait_stored(STRIKE_AT, Duration::from_secs(60)).await;
    // No receipts: what is raised stays in the outbox, which must grow.
    rig.kill_center().await;
    let filler = disk.fill();
    let t0 = Instant::now();
    while !std::fs::read_to_string(rig.path("agent.log")).unwrap().contains("kept in memory") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the box keeps alarms in memory once its disk is full\n{}",
            rig.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::fs::remove_file(&filler).unwrap();
    rig.start_center().await;
    rig.verify("7: the box's disk full (uplink cut), then freed", Instant::now()).await;
}
