//! `xl-ingest-bench`: durable, deduplicated ingest through a real MQTT broker on loopback.
//!
//! Starts a real center in-process (sled store in a temporary directory, or PostgreSQL: a
//! server of its own, fsync on, as a child process; the embedded broker, or Mosquitto as a
//! child process), registers `--agents` agents, seals every alarm before timing
//! (sealing is the agent's cost), then publishes them QoS 1 as fast as each agent's window of
//! unreceipted alarms allows, one connection per agent, `--duplicates` % of them a second time
//! shortly after the first. An alarm counts when the center's Receipt names it; the center sends
//! it only after the batch is flushed to disk, so the latency is "publish → durably stored and
//! confirmed". Prints distinct alarms/s, messages/s (duplicates included), latency percentiles,
//! CPU (this process's, and the broker's and PostgreSQL's when they are children) and peak RSS,
//! and exits non-zero unless the center ends with exactly the alarms sent,
//! each receipted.
//!
//! ```sh
//! target/release/xl-ingest-bench                                   # 20,000 alarms, no snapshots
//! target/release/xl-ingest-bench --snapshot-bytes 102400 --alarms 3000
//! target/release/xl-ingest-bench --broker mosquitto                # /usr/sbin/mosquitto
//! target/release/xl-ingest-bench --store postgres                  # /usr/lib/postgresql/*/bin
//! target/release/xl-ingest-bench --store postgres --broker mosquitto --centers 2
//! ```
//!
//! With `--centers 2` two centers share the county (`--cluster`: one PostgreSQL database,
//! Mosquitto's shared subscription), both in this process, so its CPU is theirs together.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_util::sync::CancellationToken;
use xueliang_agent::evidence::Sealer;
use xueliang_center::ingest::{BrokerConnection, Cluster, QuotaLimits};
use xueliang_center::running::{BrokerChoice, CenterConfig, start};
use xueliang_center::store::Backend;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{CenterStatus, Receipt, decode_limited};
use xueliang_testkit::bench::{Mosquitto, alarm, cpu_of, quantile, rusage};
use xueliang_testkit::scenario::register_agent;

/// The center's retained status topic (default prefix).
const STATUS_TOPIC: &str = "xl/v1/center/status";
/// A duplicate goes out this many alarms after its first copy.
const DUPLICATE_LAG: usize = 8;

#[derive(Parser)]
#[command(
    name = "xl-ingest-bench",
    about = "Measure durable, deduplicated alarm ingest through a real MQTT broker"
)]
struct Args {
    /// The broker: the center's embedded rumqttd, or Mosquitto (/usr/sbin/mosquitto) as a child.
    #[arg(long, value_enum, default_value_t = Broker::Embedded)]
    broker: Broker,
    /// Distinct alarms, spread over the agents.
    #[arg(long, default_value_t = 20_000)]
    alarms: usize,
    /// Bytes of each alarm's snapshot (sent inside the alarm); 0: none.
    #[arg(long, default_value_t = 0)]
    snapshot_bytes: usize,
    /// Agents, each with its own key and MQTT connection.
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Percentage of alarms published a second time.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    duplicates: u8,
    /// Alarms per agent published and not yet receipted, at most.
    #[arg(long, default_value_t = 250)]
    in_flight: usize,
    /// The center's store: embedded sled, or PostgreSQL (a server of the bench's own).
    #[arg(long, value_enum, default_value_t = StoreChoice::Sled)]
    store: StoreChoice,
    /// Centers sharing the county (more than one: PostgreSQL and Mosquitto).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    centers: u8,
}

/// Where the center keeps the alarms.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreChoice {
    Sled,
    Postgres,
}

/// Which broker carries the alarms.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Broker {
    Embedded,
    Mosquitto,
}

/// One agent: its sealed alarms, the order it publishes them in, and what came back.
struct Agent {
    /// Agent id (also the MQTT client id).
    id: String,
    /// Sealed alarm `i`, ready to publish on the agent's alarm topic.
    alarms: Vec<Publish>,
    /// Publish order: (alarm index, is a duplicate).
    order: Vec<(usize, bool)>,
    /// Per alarm, when it was first published, until its first receipt; then the latency.
    track: Mutex<Vec<Timing>>,
    /// Room in the agent's window of unreceipted alarms.
    window: Semaphore,
}

/// Where one alarm is.
#[derive(Clone, Copy)]
enum Timing {
    Unsent,
    Sent(Instant),
    Receipted(Duration),
}

/// What all agents have had receipted so far.
#[derive(Default, Clone, Copy)]
struct Progress {
    /// Distinct alarms receipted.
    distinct: usize,
    /// Receipt entries (an alarm and its duplicate are two).
    entries: usize,
    /// Receipts heard (one per agent per batch the center commits).
    receipts: usize,
    /// When an alarm was last receipted the first time.
    last_fresh: Option<Instant>,
}

/// Publish order of `n` alarms: each in turn, `pct` % of them again `DUPLICATE_LAG` later.
fn publish_order(n: usize, pct: usize) -> Vec<(usize, bool)> {
    let duplicated = |i: usize| (i + 1) * pct / 100 > i * pct / 100;
    let mut order = Vec::with_capacity(n + n * pct / 100);
    for i in 0..n + DUPLICATE_LAG {
        if i < n {
            order.push((i, false));
        }
        if let Some(d) = i.checked_sub(DUPLICATE_LAG).filter(|&d| d < n && duplicated(d)) {
            order.push((d, true));
        }
    }
    order
}

/// Polls `agent`'s connection: says when it may publish (both subscriptions confirmed and the
/// center online), and records receipts.
async fn listen(
    agent: Arc<Agent>,
    mut events: EventLoop,
    ready: oneshot::Sender<()>,
    progress: Arc<watch::Sender<Progress>>,
) {
    let (mut ready, mut subscribed, mut online) = (Some(ready), 0, false);
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => subscribed += 1,
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == STATUS_TOPIC => {
                online = decode_limited::<CenterStatus>(&p.payload).is_ok_and(|s| s.online);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => on_receipt(&agent, &p.payload, &progress),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{}: MQTT connection: {e}; reconnecting", agent.id);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if subscribed == 2
            && online
            && let Some(tx) = ready.take()
        {
            let _ = tx.send(());
        }
    }
}

/// Records a receipt: latencies of alarms receipted the first time, room in the window.
fn on_receipt(agent: &Agent, payload: &[u8], progress: &watch::Sender<Progress>) {
    let receipt = match decode_limited::<Receipt>(payload) {
        Ok(r) => r,
        Err(e) => return tracing::warn!("{}: undecodable receipt: {e}", agent.id),
    };
    let now = Instant::now();
    let (mut fresh, mut entries) = (0, 0);
    if let Ok(mut track) = agent.track.lock() {
        for id in &receipt.alarm_ids {
            let index = id.rsplit_once('-').and_then(|(_, n)| n.parse::<usize>().ok());
            let Some(timing) = index.and_then(|i| track.get_mut(i)) else { continue };
            entries += 1;
            if let Timing::Sent(at) = *timing {
                *timing = Timing::Receipted(now - at);
                fresh += 1;
            }
        }
    }
    agent.window.add_permits(fresh);
    progress.send_modify(|p| {
        (p.distinct, p.entries, p.receipts) =
            (p.distinct + fresh, p.entries + entries, p.receipts + 1);
        if fresh > 0 {
            p.last_fresh = Some(now);
        }
    });
}

/// Publishes `agent`'s alarms in order, first copies only while its window has room.
async fn publish(agent: Arc<Agent>, client: AsyncClient) -> anyhow::Result<()> {
    for &(i, duplicate) in &agent.order {
        if !duplicate {
            agent.window.acquire().await?.forget();
            if let Ok(mut track) = agent.track.lock() {
                track[i] = Timing::Sent(Instant::now());
            }
        }
        let p = &agent.alarms[i];
        client.publish_bytes(p.topic.clone(), QoS::AtLeastOnce, false, p.payload.clone()).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Quiet by default: the center warns that it has no users, and the embedded broker logs
    // every clean disconnect as an error. The counts checked at the end say what went wrong.
    let quiet = "warn,xueliang_center::running=error,rumqttd=off";
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| quiet.into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if args.agents == 0 || args.alarms < args.agents || args.in_flight == 0 {
        bail!("need at least one agent, one alarm per agent and an in-flight window of at least 1");
    } else if args.centers > 1
        && (args.store != StoreChoice::Postgres || args.broker != Broker::Mosquitto)
    {
        bail!(
            "several centers share a county through PostgreSQL and Mosquitto: add --store postgres --broker mosquitto"
        );
    } else if args.snapshot_bytes + 4096 > xueliang_proto::MAX_MESSAGE_BYTES {
        bail!("a snapshot of {} bytes does not fit in a message", args.snapshot_bytes);
    }
    let dir = tempfile::tempdir()?;
    let (center_dir, time0) = (dir.path().join("center"), now_ms());
    let mut agents = Vec::new();
    for a in 0..args.agents {
        let id = format!("bench-{a}");
        let sealer = Sealer::open(&dir.path().join(&id))?;
        register_agent(
            &center_dir.join("agent-keys.toml"),
            &format!("{id} = \"{}\"", sealer.public_key()),
        )?;
        let n = args.alarms / args.agents + usize::from(a < args.alarms % args.agents);
        let topic = format!("xl/v1/{id}/alarm");
        let alarms = (0..n)
            .map(|i| {
                let raised =
                    alarm(&id, i, args.snapshot_bytes, time0 + (i * args.agents + a) as i64);
                Ok(Publish::new(&topic, QoS::AtLeastOnce, sealer.seal(raised, usize::MAX)?.message))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (order, window) =
            (publish_order(n, args.duplicates as usize), Semaphore::new(args.in_flight));
        agents.push(Arc::new(Agent {
            id,
            alarms,
            order,
            track: Mutex::new(vec![Timing::Unsent; n]),
            window,
        }));
    }
    let duplicates: usize = agents.iter().map(|a| a.order.len() - a.alarms.len()).sum();

    let (mosquitto, broker) = match args.broker {
        Broker::Embedded => (
            None,
            BrokerChoice::Embedded { listen: "127.0.0.1:0".parse()?, tls: None, passwords: false },
        ),
        Broker::Mosquitto => {
            let m = Mosquitto::start(dir.path())?;
            let conn = BrokerConnection {
                host: "127.0.0.1".into(),
                port: m.port,
                credentials: None,
                tls: None,
            };
            (Some(m), BrokerChoice::External(conn))
        }
    };
    let shutdown = CancellationToken::new();
    // Durable as a county's would be: fsync on.
    let postgres = match args.store {
        StoreChoice::Sled => None,
        StoreChoice::Postgres => Some(xueliang_pgtest::Server::start(true)?),
    };
    let database = postgres.as_ref().map(|pg| pg.database()).transpose()?;
    let mut centers = Vec::new();
    for c in 0..args.centers {
        let mut config =
            CenterConfig::new(center_dir.clone(), "127.0.0.1:0".parse()?, broker.clone());
        // Ingest itself is measured: a few agents here send what hundreds of boxes would.
        config.quota = QuotaLimits::UNLIMITED;
        if let Some(url) = &database {
            config.store = Backend::Postgres(url.clone());
        }
        if args.centers > 1 {
            config.cluster = Some(Cluster { group: "bench".into(), node: format!("center-{c}") });
        }
        centers.push(start(config, shutdown.clone()).await?);
    }
    let center = &centers[0];
    let addr: std::net::SocketAddr = center.mqtt_addr.parse()?;
    let progress = Arc::new(watch::Sender::new(Progress::default()));
    let (mut clients, mut listeners) = (Vec::new(), Vec::new());
    for agent in &agents {
        let mut opts = MqttOptions::new(agent.id.clone(), addr.ip().to_string(), addr.port());
        let inflight = args.in_flight.min(u16::MAX as usize) as u16;
        opts.set_max_packet_size(4 << 20, 4 << 20)
            .set_inflight(inflight)
            .set_keep_alive(Duration::from_secs(30));
        let (client, events) = AsyncClient::new(opts, 10_000);
        client.subscribe(STATUS_TOPIC, QoS::AtLeastOnce).await?;
        client.subscribe(format!("xl/v1/{}/receipt", agent.id), QoS::AtLeastOnce).await?;
        let (tx, rx) = oneshot::channel();
        listeners.push(tokio::spawn(listen(agent.clone(), events, tx, progress.clone())));
        clients.push((client, rx));
    }
    let mut ready = Vec::new();
    for (client, rx) in clients {
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("the center never said it ingests")??;
        ready.push(client);
    }

    let (cpu0, mosquitto_cpu0) = (rusage().0, mosquitto.as_ref().map(|m| cpu_of(m.pid())));
    let postgres_cpu0 = postgres.as_ref().map(|pg| cpu_of(pg.pid()));
    let t0 = Instant::now();
    let publishers: Vec<_> =
        agents.iter().zip(ready).map(|(a, c)| tokio::spawn(publish(a.clone(), c))).collect();
    let (total, limit) =
        (args.alarms + duplicates, Duration::from_secs(120 + args.alarms as u64 / 1000));
    let mut rx = progress.subscribe();
    let waited = tokio::time::timeout(
        limit,
        rx.wait_for(|p| p.distinct >= args.alarms && p.entries >= total),
    )
    .await;
    let (elapsed, (cpu1, peak_rss)) = (t0.elapsed(), rusage());
    let mosquitto_cpu =
        mosquitto.as_ref().zip(mosquitto_cpu0).map(|(m, c0)| cpu_of(m.pid()).saturating_sub(c0));
    let postgres_cpu =
        postgres.as_ref().zip(postgres_cpu0).map(|(pg, c0)| cpu_of(pg.pid()).saturating_sub(c0));
    let p = *progress.borrow();
    for task in publishers.into_iter().filter(|t| t.is_finished()) {
        task.await?.context("publishing")?;
    }
    let stored = center.store.len();
    if waited.is_err() {
        let (d, e, n) = (p.distinct, p.entries, args.alarms);
        bail!(
            "after {limit:?} only {d} of {n} alarms receipted ({e} of {total} receipt entries); {stored} stored"
        );
    }
    let sum = |count: fn(&xueliang_center::ingest::IngestStats) -> u64| {
        centers.iter().map(|c| count(&c.stats)).sum::<u64>()
    };
    let (dups_seen, dead) =
        (sum(|s| s.duplicates.load(Relaxed)) as usize, sum(|s| s.dead_lettered.load(Relaxed)));
    for listener in listeners {
        listener.abort();
        let _ = listener.await;
    }
    shutdown.cancel();
    for center in centers {
        let _ = tokio::time::timeout(Duration::from_secs(10), center.join()).await;
    }
    drop(mosquitto);
    if stored != args.alarms || dups_seen != duplicates || dead != 0 {
        let n = args.alarms;
        bail!(
            "the center stored {stored} of {n} alarms, saw {dups_seen} of {duplicates} duplicates, dead-lettered {dead}"
        );
    }

    // Distinct alarms/s: until the last alarm's first receipt; messages/s: until every receipt.
    let distinct_time = p.last_fresh.map_or(elapsed, |at| at - t0).as_secs_f64();
    let tracks = agents.iter().flat_map(|a| a.track.lock().map(|t| t.clone()).unwrap_or_default());
    let mut lat: Vec<f64> = tracks
        .filter_map(|t| {
            if let Timing::Receipted(d) = t { Some(d.as_secs_f64() * 1000.0) } else { None }
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let pick = |q: f64| quantile(&lat, q);
    let (cpu, secs) = ((cpu1 - cpu0).as_secs_f64(), elapsed.as_secs_f64());
    let broker = if args.broker == Broker::Embedded { "embedded broker" } else { "Mosquitto" };
    let mosquitto_cores = mosquitto_cpu
        .map_or(String::new(), |c| format!(" + Mosquitto {:.2} cores", c.as_secs_f64() / secs));
    let postgres_cores = postgres_cpu
        .map_or(String::new(), |c| format!(" + PostgreSQL {:.2} cores", c.as_secs_f64() / secs));
    let store = match (postgres.is_some(), args.centers) {
        (false, _) => "sled".to_owned(),
        (true, 1) => "PostgreSQL (fsync on)".to_owned(),
        (true, n) => format!("PostgreSQL (fsync on), {n} centers sharing the county"),
    };
    let sealed_mib = agents.iter().flat_map(|a| &a.alarms).map(|p| p.payload.len()).sum::<usize>()
        as f64
        / (1 << 20) as f64;
    let (n, snapshot, agents, window) =
        (args.alarms, args.snapshot_bytes, args.agents, args.in_flight);
    println!(
        "ingest-bench: {broker}, {store}, {n} alarms (+{duplicates} duplicates), {snapshot}-byte snapshots, {agents} agents, {window} in flight each\n  \
         stored        {stored} (exactly once; {dups_seen} duplicates receipted again; {} receipts, {:.1} ids each)\n  \
         throughput    {:.0} alarms/s ({:.0} messages/s) over {distinct_time:.2} s\n  \
         publish → stored and receipted: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n  \
         CPU           {:.2} cores{mosquitto_cores}{postgres_cores} ({:.0} µs per alarm in this process), peak RSS {peak_rss:.0} MiB \
         (the pre-sealed alarms: {sealed_mib:.0} MiB)",
        p.receipts,
        p.entries as f64 / p.receipts.max(1) as f64,
        n as f64 / distinct_time,
        total as f64 / secs,
        pick(0.5),
        pick(0.9),
        pick(0.99),
        pick(1.0),
        cpu / secs,
        cpu * 1e6 / n as f64
    );
    Ok(())
}
