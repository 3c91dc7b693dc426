//! Power loss of the box, with real processes: `xl-scripted-agent` (the agent's sealer, sled
//! outbox and publisher in a process of its own) raises alarms into its outbox in a tight loop,
//! publishing and taking receipts meanwhile, and is killed with SIGKILL 50 times, at random
//! moments, each time started again on the same outbox; a real `xl-center` (embedded broker)
//! stores what arrives. Every start must succeed without moving the outbox aside, every alarm
//! sealed must be stored exactly once, and no alarm the agent took a receipt for may be sent
//! again. Prints its figures (`cargo test --test power_loss -- --nocapture`); set
//! `XL_POWER_LOSS_SEED` to replay the kill moments of a run.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Reaper;
use xueliang_agent::config::OutboxConfig;
use xueliang_agent::delivery::{Outbox, moved_aside};
use xueliang_testkit::scenario;

const AGENT: &str = "power-village";
/// SIGKILLs; the agent is started once more than that.
const KILLS: usize = 50;
/// Alarms raised per second: one outbox write (flushed) every 8 ms. Over the whole test this
/// stays within the center's quota for one box (a burst of 1,000, then 100/s): past it the
/// center leaves publishes with the box, and the run would measure the quota instead.
const RATE: &str = "120";
/// Bytes of each alarm's snapshot, as in the fault tests: every write is a sizeable one.
const SNAPSHOT_BYTES: &str = "20000";
/// Alarms the last run raises before it waits for the outbox to drain.
const LAST_RUN_ALARMS: u32 = 20;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Alarm `i` of the sequence, as `xl-scripted-agent` names it (two cameras in turn).
fn alarm_id(i: u32) -> String {
    format!("{AGENT}-cam-{}-{i:05}", i % 2)
}

/// `xl-center serve` storing in `dir/center`, its embedded broker on loopback `mqtt`, HTTP on
/// `http`; returns once it answers HTTP.
fn start_center(dir: &Path, http: u16, mqtt: u16) -> Reaper {
    let log = std::fs::File::create(dir.join("center.log")).expect("center log");
    let child = Command::new(common::workspace_binary("xl-center"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("center"))
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("xl-center starts");
    let center = Reaper(child);
    common::wait_listening(http);
    center
}

/// `xl-scripted-agent` on `config`, raising alarms up to number `count` (from where the last
/// run left off), logging to `log`: what it publishes, and each receipt it has taken.
fn start_agent(config: &Path, log: &Path, count: u32, exit_when_delivered: bool) -> Reaper {
    let log = std::fs::File::create(log).expect("agent log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xl-scripted-agent"));
    cmd.arg("--config")
        .arg(config)
        .args(["--count", &count.to_string(), "--per-second", RATE])
        .args(["--snapshot-bytes", SNAPSHOT_BYTES])
        // "published" lines at info, "receipted; left the outbox" at debug.
        .env("RUST_LOG", "info,xueliang_agent::delivery::publisher=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log);
    if exit_when_delivered {
        cmd.arg("--exit-when-delivered");
    }
    Reaper(cmd.spawn().expect("xl-scripted-agent starts"))
}

/// The steps the agent has raised and written to its outbox (its progress file).
fn raised(progress: &Path) -> u32 {
    std::fs::read_to_string(progress).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `text` without ANSI colour codes, should the log have them.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Up to and including the letter that ends the escape sequence.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of field `name` on a log line (`name=value`).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// What an agent's log says it did, in order.
enum Step {
    /// It published (queued for the broker) outbox entry `seq`, alarm `id`.
    Published { id: String, seq: u64 },
    /// It took the receipt of alarm `id`: it left the outbox, on disk.
    Receipted { id: String },
}

/// The steps in the log of one run of the agent.
fn steps(log: &Path) -> Vec<Step> {
    let text = plain(&std::fs::read_to_string(log).unwrap_or_default());
    text.lines()
        .filter_map(|line| {
            let id = || field(line, "id").map(str::to_owned);
            if line.contains(": published") {
                let seq = field(line, "seq")?.parse().ok()?;
                Some(Step::Published { id: id()?, seq })
            } else if line.contains("receipted; left the outbox") {
                Some(Step::Receipted { id: field(line, "alarm")?.to_owned() })
            } else {
                None
            }
        })
        .collect()
}

/// The last lines of a log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("--- {}\n{}", log.display(), lines[lines.len().saturating_sub(20)..].join("\n"))
}

/// Waits until the agent says it started (its outbox open); fails if it exits first, takes
/// longer than 15 s, or found its outbox corrupt (it moves it aside, losing what waited).
async fn wait_started(agent: &mut Reaper, log: &Path, start: usize, outbox: &Path) {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            !text.contains("is corrupt") && moved_aside(outbox).is_empty(),
            "start {start}: the outbox was found corrupt and moved aside; what waited in it \
             would never be sent\n{}",
            tail(log)
        );
        if text.contains("xl-scripted-agent: started:") {
            return;
        }
        if let Some(status) = agent.0.try_wait().expect("the agent's status") {
            panic!("start {start}: the agent exited ({status}) instead of starting\n{}", tail(log));
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "start {start} within 15 s\n{}", tail(log));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every alarm id the center lists for this test's agent, page by page.
async fn stored_ids(api: &common::Api) -> Vec<String> {
    let mut ids = Vec::new();
    let mut path = format!("/api/alarms?agent={AGENT}&limit=500");
    loop {
        let page = api.json(&path).await;
        let alarms = page["alarms"].as_array().expect("a list of alarms");
        ids.extend(alarms.iter().filter_map(|a| a["id"].as_str().map(str::to_owned)));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/alarms?agent={AGENT}&limit=500&cursor={c}"),
            None => return ids,
        }
    }
}

/// A counter on the center's Prometheus page.
async fn counter(http: u16, name: &str) -> u64 {
    let page = common::metrics(([127, 0, 0, 1], http).into()).await;
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} on /metrics:\n{page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_50_times_mid_write_always_starts_and_stores_each_alarm_once() {
    let t0 = Instant::now();
    let seed = std::env::var("XL_POWER_LOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let center_key =
        scenario::prepare_keys(&dir.path().join("center"), AGENT, &dir.path().join("agent-data"))
            .expect("keys");
    common::add_test_admin(&dir.path().join("center"));
    let (http, mqtt) = (free_port(), free_port());
    let _center = start_center(dir.path(), http, mqtt);
    let config = dir.path().join("agent.toml");
    let toml = scenario::agent_toml(
        AGENT,
        "rtsp://127.0.0.1:9/unused",
        &format!("mqtt://127.0.0.1:{mqtt}"),
        &center_key,
    );
    std::fs::write(&config, toml).expect("agent config");
    let outbox_dir = dir.path().join("agent-data/outbox");
    let progress = dir.path().join("agent-data/replay-next");

    let mut logs: Vec<PathBuf> = Vec::new();
    let mut delays: Vec<u64> = Vec::new();
    for start in 0..=KILLS {
        let last = start == KILLS;
        let log = dir.path().join(format!("agent-{start:02}.log"));
        // Until the last run the sequence never ends; the last raises a few more and drains.
        let count = if last { raised(&progress) + LAST_RUN_ALARMS } else { 1_000_000 };
        let mut agent = start_agent(&config, &log, count, last);
        wait_started(&mut agent, &log, start, &outbox_dir).await;
        logs.push(log.clone());
        if last {
            let t = Instant::now();
            let status = loop {
                if let Some(status) = agent.0.try_wait().expect("the agent's status") {
                    break status;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the outbox drained within 60 s of the last start\n{}",
                    tail(&log)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert!(status.success(), "the last run ended with {status}\n{}", tail(&log));
            break;
        }
        // Mostly while it writes and publishes; one kill in ten right after the start, while
        // it sends what waited and takes the receipts.
        let delay = if start % 10 == 5 { rng.u64(0..50) } else { rng.u64(50..=400) };
        delays.push(delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        agent.0.kill().expect("SIGKILL");
        let status = agent.0.wait().expect("the killed agent's status");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "start {start} died of the kill, not by itself\n{}",
            tail(&log)
        );
    }
    let sealed = raised(&progress);

    // What a duty officer sees: every alarm sealed, each once, nothing else.
    let api = common::Api::admin(([127, 0, 0, 1], http).into()).await;
    let ids = stored_ids(&api).await;
    let held: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let expected: HashSet<String> = (0..sealed).map(alarm_id).collect();
    let lost: Vec<&String> = expected.iter().filter(|id| !held.contains(id.as_str())).collect();
    let foreign: Vec<&&str> = held.iter().filter(|id| !expected.contains(**id)).collect();
    let twice = ids.len() - held.len();
    let duplicates = counter(http, "xl_center_alarms_duplicate_total").await;

    // Sent again after its receipt was taken: an outbox entry (its sequence number) published
    // after the receipt of its alarm took it out. A receipt names an alarm id: it takes the
    // entry of that id published last. The script raises the alarm a kill cut short again
    // (its progress not yet written), which may come after its receipt: a new entry.
    let mut last_sent: HashMap<String, u64> = HashMap::new();
    let mut receipted: HashMap<u64, usize> = HashMap::new();
    let (mut resent, mut raised_again) = (Vec::new(), HashSet::new());
    let (mut published, mut receipts, mut unreceipted_again) = (0, 0, 0);
    let mut sent: HashSet<u64> = HashSet::new();
    for (run, log) in logs.iter().enumerate() {
        for step in steps(log) {
            match step {
                Step::Published { id, seq } => {
                    published += 1;
                    if let Some(by) = receipted.get(&seq) {
                        resent.push(format!("{id} (receipted in run {by}, sent in run {run})"));
                    } else if last_sent.get(&id).is_some_and(|s| receipted.contains_key(s)) {
                        raised_again.insert(seq);
                    }
                    // Sent before, its receipt not taken before a kill: at least once.
                    if !sent.insert(seq) && !receipted.contains_key(&seq) {
                        unreceipted_again += 1;
                    }
                    last_sent.insert(id, seq);
                }
                Step::Receipted { id } => {
                    receipts += 1;
                    if let Some(&seq) = last_sent.get(&id) {
                        receipted.insert(seq, run);
                    }
                }
            }
        }
    }
    let outbox = Outbox::open(&outbox_dir, (&OutboxConfig::default()).into()).expect("outbox");
    delays.sort_unstable();
    eprintln!(
        "power loss (seed {seed}): {KILLS} SIGKILLs ({}–{} ms after the start, median {} ms), \
         {} starts, none refused, no outbox moved aside; {sealed} alarms sealed, {} stored, \
         lost {}, stored twice {twice}; {published} publishes, {receipts} receipts taken, \
         {unreceipted_again} sent again as a kill came before their receipt was taken, \
         {duplicates} redeliveries deduplicated by the center (xl_center_alarms_duplicate_total), \
         {} sent again after their receipt was taken, {} raised again by the script; \
         {:.1} s",
        delays[0],
        delays[delays.len() - 1],
        delays[delays.len() / 2],
        logs.len(),
        held.len(),
        lost.len(),
        resent.len(),
        raised_again.len(),
        t0.elapsed().as_secs_f32()
    );
    if !(lost.is_empty() && foreign.is_empty() && twice == 0 && resent.is_empty()) {
        eprintln!("the logs and data are kept in {}", dir.keep().display());
    }
    assert_eq!(logs.len(), KILLS + 1, "every start succeeded");
    assert!(lost.is_empty(), "alarms sealed but never stored: {lost:?}");
    assert!(foreign.is_empty(), "alarms stored that were never sealed: {foreign:?}");
    assert_eq!(twice, 0, "an alarm listed twice");
    assert!(resent.is_empty(), "alarms sent again after their receipt: {resent:?}");
    assert!(outbox.is_empty(), "receipts emptied the outbox");
    assert!(moved_aside(&outbox_dir).is_empty(), "no outbox moved aside");
}
