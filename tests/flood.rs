//! A flood at the county center, with real processes: `xl-center serve` (the default quota of
//! 100 messages/s per box, 1,000 at once), one box (`xl-scripted-agent`) raising 3,000 alarms as
//! fast as it can, three genuine boxes raising 4 a second each, and 10,000 failed log-ins within
//! the same minute; through the center's embedded broker and through Mosquitto. In the end every
//! alarm of every box, the flooder's included, is stored exactly once (what the quota held back
//! waited on its box and was sent again); the quota bit (`xl_center_over_quota_total`, the
//! flooder held to its rate); the genuine boxes' alarms were stored within 2 s of being raised
//! (p99); the center's peak memory stayed under 384 MiB and its audit log grew by a handful of
//! entries. `cargo test --test flood -- --nocapture` prints the figures.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Api, Reaper};
use xueliang_center::access::AuditLog;

use xueliang_testkit::bench::memory_kib;
use xueliang_testkit::scenario;

/// The box over its quota.
const FLOODER: &str = "flood-village";
/// Three times its burst: two thousand must wait for the quota to refill.
const FLOOD_ALARMS: u32 = 3000;
/// Its alarms raised per second: as fast as it seals and writes them.
const FLOOD_RATE: f64 = 5000.0;
/// The boxes the flood must not slow down.
const GENUINE: [&str; 3] = ["village-a", "village-b", "village-c"];
/// Each genuine box's alarms, 4 a second: 45 s, as long as the flood lasts.
const GENUINE_ALARMS: u32 = 180;
const GENUINE_RATE: f64 = 4.0;
/// Failed log-ins, started evenly over [`LOG_IN_SPREAD`].
const LOG_INS: usize = 10_000;
const LOG_IN_SPREAD: Duration = Duration::from_secs(40);
/// The default quota (center/src/ingest/quota.rs).
const QUOTA_BURST: u32 = 1000;
const QUOTA_PER_S: u32 = 100;

/// Bounds generous enough for a loaded 2-core machine, tight enough to catch what grows
/// without bound: a genuine alarm's latency at p99, the center's peak memory, new audit entries.
const P99_BOUND: Duration = Duration::from_secs(2);
const PEAK_RSS_BOUND_MIB: u64 = 384;
const AUDIT_GROWTH_BOUND: usize = 10;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The last lines of `dir/{name}`, for a failure message.
fn tail(dir: &std::path::Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("--- {name}\n{}\n", lines[lines.len().saturating_sub(15)..].join("\n"))
}

/// The value of the counter `name` on a Prometheus page.
fn counter(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} on /metrics:\n{page}"))
}

/// The `p`-th percentile of `sorted` (nearest rank).
fn percentile(sorted: &[i64], p: usize) -> i64 {
    sorted[(sorted.len() * p).div_ceil(100).max(1) - 1]
}

/// Where the boxes and the center meet.
#[derive(Clone, Copy, Debug)]
enum Broker {
    /// The center's own (rumqttd).
    Embedded,
    /// A Mosquitto the test starts.
    Mosquitto,
}

/// One flood at a time: two at once on a 2-core machine would measure each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_through_the_embedded_broker_loses_nothing_and_slows_no_other_box() {
    flood(Broker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_through_mosquitto_loses_nothing_and_slows_no_other_box() {
    flood(Broker::Mosquitto).await;
}

async fn flood(broker: Broker) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("center");
    common::add_test_admin(&data);
    let mut center_key = String::new();
    for agent in GENUINE.iter().chain([&FLOODER]) {
        center_key = scenario::prepare_keys(&data, agent, &dir.path().join(agent)).unwrap();
    }
    let (_mosquitto, mqtt_port, broker_args) = match broker {
        Broker::Embedded => {
            let port = free_port();
            (None, port, ["--mqtt-listen".to_owned(), format!("127.0.0.1:{port}")])
        }
        Broker::Mosquitto => {
            let (mosquitto, port) = common::start_mosquitto(dir.path(), 0);
            (Some(mosquitto), port, ["--broker-url".to_owned(), format!("mqtt://127.0.0.1:{port}")])
        }
    };
    let broker_args: Vec<&str> = broker_args.iter().map(String::as_str).collect();
    let (mut center, http) =
        common::serve_center(&data, &dir.path().join("center.log"), &broker_args);
    let pid = center.0.id();
    common::wait_listening(mqtt_port);
    // Logged in before the flood, which locks this address out of log-ins, not out of sessions.
    let admin = Api::admin(http).await;
    let audit_before =
        admin.json("/api/audit?limit=500").await["entries"].as_array().unwrap().len();
    let (rss_before, _) = memory_kib(pid);

    // The center's resident memory, sampled while the flood lasts.
    let rss_max = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let rss_max = rss_max.clone();
        tokio::spawn(async move {
            // Until the center is gone (a failed test kills it).
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                rss_max.fetch_max(memory_kib(pid).0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let url = format!("mqtt://127.0.0.1:{mqtt_port}");
    let start = |agent: &str, count: u32, rate: f64| {
        common::start_scripted_agent_at(dir.path(), agent, &url, &center_key, count, rate, &[])
    };
    let mut running: Vec<(&str, Reaper)> =
        GENUINE.iter().map(|a| (*a, start(a, GENUINE_ALARMS, GENUINE_RATE))).collect();
    running.push((FLOODER, start(FLOODER, FLOOD_ALARMS, FLOOD_RATE)));
    let log_ins = tokio::spawn(async move {
        let t0 = Instant::now();
        (common::failed_log_ins(http, LOG_INS, LOG_IN_SPREAD).await, t0.elapsed())
    });

    // Each box exits once its last alarm is receipted.
    let mut delivered: BTreeMap<&str, Duration> = BTreeMap::new();
    while !running.is_empty() {
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].1.0.try_wait().unwrap() {
                let (agent, _) = running.remove(i);
                let logs =
                    tail(dir.path(), &format!("{agent}.log")) + &tail(dir.path(), "center.log");
                assert!(status.success(), "{agent} failed:\n{logs}");
                delivered.insert(agent, began.elapsed());
            } else {
                i += 1;
            }
        }
        if let Some((agent, _)) = running.first() {
            let logs = tail(dir.path(), &format!("{agent}.log")) + &tail(dir.path(), "center.log");
            assert!(
                began.elapsed() < Duration::from_secs(110),
                "every box delivered within 110 s:\n{logs}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answers, log_ins_took) = log_ins.await.unwrap();
    sampler.abort();
    let (rss_end, rss_peak) = memory_kib(pid);
    let rss_sampled = rss_max.load(Ordering::Relaxed);
    let metrics = common::metrics(http).await;
    let over_quota = counter(&metrics, "xl_center_over_quota_total");
    let stats = admin.json("/api/stats").await;
    let duplicates = stats["duplicates"].as_u64().unwrap_or(0);

    // Stopped cleanly, the center writes what it counted (the log-ins' window among it).
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let stopping = Instant::now();
    while center.0.try_wait().unwrap().is_none() {
        assert!(stopping.elapsed() < Duration::from_secs(30), "the center stops on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = common::open_store(&data);
    let records = store.query(&Default::default(), None, 100_000).unwrap().alarms;
    let audit = AuditLog::open(&store).unwrap().list(None, None, 100_000).unwrap();
    let run_time = began.elapsed();

    // Nothing lost, nothing twice: exactly each box's sequence.
    let expected: HashSet<String> = GENUINE
        .iter()
        .map(|a| (*a, GENUINE_ALARMS))
        .chain([(FLOODER, FLOOD_ALARMS)])
        .flat_map(|(a, n)| (0..n).map(move |i| format!("{a}-cam-{}-{i:05}", i % 2)))
        .collect();
    let held: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
    let lost = expected.difference(&held).count();
    let foreign = held.difference(&expected).count();
    let twice = records.len() - held.len();
    let mut per_agent: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *per_agent.entry(r.agent_id.as_str()).or_default() += 1;
    }

    // Latency of the genuine boxes' alarms: raised (event time) to received, one machine's clock.
    let mut latency: Vec<i64> = records
        .iter()
        .filter(|r| GENUINE.contains(&r.agent_id.as_str()))
        .map(|r| r.received_time_ms - r.event_time_ms)
        .collect();
    latency.sort_unstable();
    let (p50, p99, max) = if latency.is_empty() {
        (0, 0, 0)
    } else {
        (percentile(&latency, 50), percentile(&latency, 99), *latency.last().unwrap())
    };

    // The flooder, as the center received it: the burst, then at most its rate.
    let flood_times: Vec<i64> =
        records.iter().filter(|r| r.agent_id == FLOODER).map(|r| r.received_time_ms).collect();
    let flood_span_ms =
        flood_times.iter().max().unwrap_or(&0) - flood_times.iter().min().unwrap_or(&0);
    // Stored before an earlier alarm of the same camera.
    let mut out_of_order: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_camera: BTreeMap<(&str, &str), Vec<(&str, i64)>> = BTreeMap::new();
    for r in &records {
        by_camera
            .entry((r.agent_id.as_str(), r.camera_id.as_str()))
            .or_default()
            .push((r.id.as_str(), r.received_time_ms));
    }
    for ((agent, _), mut alarms) in by_camera {
        alarms.sort();
        *out_of_order.entry(agent).or_default() +=
            alarms.windows(2).filter(|w| w[0].1 > w[1].1).count();
    }

    let audit_growth = audit.len().saturating_sub(audit_before);
    let mut audit_actions: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &audit[..audit_growth.min(audit.len())] {
        *audit_actions.entry(e.action.as_str()).or_default() += 1;
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "flood ({broker:?}): stored per box {per_agent:?} (lost {lost}, foreign {foreign}, twice {twice}, \
         redeliveries deduplicated {duplicates}); delivered (box exited) after {:?} s",
        delivered.iter().map(|(a, d)| (*a, d.as_secs())).collect::<BTreeMap<_, _>>()
    );
    eprintln!(
        "flood ({broker:?}): over quota {over_quota} publishes; the flooder's {FLOOD_ALARMS} alarms received \
         over {:.1} s ({:.0}/s); stored before an earlier alarm of its camera: {out_of_order:?}",
        flood_span_ms as f64 / 1000.0,
        f64::from(FLOOD_ALARMS) / (flood_span_ms.max(1) as f64 / 1000.0)
    );
    eprintln!(
        "flood ({broker:?}): genuine boxes' alarm latency over {} alarms: p50 {p50} ms, p99 {p99} ms, max {max} ms",
        latency.len()
    );
    eprintln!(
        "flood ({broker:?}): {LOG_INS} failed log-ins within {:.1} s, answers {answers:?}",
        log_ins_took.as_secs_f64()
    );
    eprintln!(
        "flood ({broker:?}): center RSS {:.0} MiB before, {:.0} MiB highest sampled, {:.0} MiB at the end, \
         peak (VmHWM) {:.0} MiB; audit log +{audit_growth} entries {audit_actions:?}; run {:.0} s",
        mib(rss_before),
        mib(rss_sampled),
        mib(rss_end),
        mib(rss_peak),
        run_time.as_secs_f64()
    );

    assert_eq!((lost, foreign, twice), (0, 0, 0), "every alarm of every box stored, each once");
    assert_eq!(store.len(), expected.len(), "and nothing else");
    assert!(over_quota > 0, "the quota bit: {metrics}");
    // A token bucket admits at most its burst plus its rate over any span.
    let least_span_ms = i64::from((FLOOD_ALARMS - QUOTA_BURST) * 1000 / QUOTA_PER_S);
    assert!(
        flood_span_ms >= least_span_ms * 95 / 100,
        "the flooder held to its quota: {FLOOD_ALARMS} received over {flood_span_ms} ms"
    );
    assert_eq!(latency.len(), GENUINE.len() * GENUINE_ALARMS as usize);
    assert!(
        p99 < P99_BOUND.as_millis() as i64,
        "the genuine boxes' alarms kept their latency: p99 {p99} ms"
    );
    assert_eq!(answers.values().sum::<usize>(), LOG_INS);
    assert!(log_ins_took < Duration::from_secs(60), "{LOG_INS} log-ins within a minute");
    assert!(answers.keys().all(|s| [401, 429, 503].contains(s)), "{answers:?}");
    assert!(
        mib(rss_peak) < PEAK_RSS_BOUND_MIB as f64,
        "the center's memory stayed bounded: peak {:.0} MiB",
        mib(rss_peak)
    );
    assert!(
        audit_growth <= AUDIT_GROWTH_BOUND,
        "the audit log grew by a bounded amount: {:#?}",
        &audit[..audit_growth.min(audit.len())]
    );
}
