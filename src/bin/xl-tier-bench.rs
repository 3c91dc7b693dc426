//! `xl-tier-bench`: a city center taking in the events many counties forward to it.
//!
//! Starts PostgreSQL (fsync on), Mosquitto and the city center (`xl-center serve`, beside this
//! binary) as child processes of its own, the city's `below.toml` naming `--counties` counties,
//! each with a key of its own. The counties are simulated here: each sends its events as a
//! county center's forwarder does (a `TierEvent`: the record as JSON and a thumbnail, numbered,
//! signed with its key) on its own topic, paced evenly, never more than 1,000 ahead of the
//! city's receipts. The offered rate steps up through `--rates` (events/s, all counties
//! together), each for `--seconds`, and the city catches up before the next step. Every message
//! is signed before its step starts, so the counties cost the 2 cores little while it runs.
//!
//! An event counts when a receipt from the city covers its number; the city receipts only what
//! it has stored and committed, so the latency is "a county sends it → stored at the city,
//! visible in its API". Left out: the county's own side (storing the event, then its forwarder
//! sends within 100 ms) and the bridge between two brokers (one Mosquitto here).
//!
//! Prints, per step, the events stored per second, their latency percentiles, and the CPU of
//! the city, PostgreSQL, Mosquitto and this process; at the end the city's memory; exits
//! non-zero unless the city stored each event exactly once (its counters), refusing none.
//!
//! ```sh
//! target/release/xl-tier-bench                       # 100 counties, 250 → 10,000 events/s
//! target/release/xl-tier-bench --rates 500 --seconds 30 --thumbnail-bytes 0
//! ```

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{Semaphore, watch};
use xueliang_center::domain::AlarmRecord;
use xueliang_center::tier::signed_event;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::signing::SigningKey;
use xueliang_proto::topics::Topics;
use xueliang_proto::{TierReceipt, decode_limited};
use xueliang_testkit::bench::{Mosquitto, alarm, cpu_of, memory_kib, noise, quantile, rusage};

/// Events a county sends ahead of the city's last receipt, at most (as a county's forwarder).
const WINDOW: usize = 1000;

#[derive(Parser)]
#[command(
    name = "xl-tier-bench",
    about = "Measure a city center taking in the events of many counties"
)]
struct Args {
    /// Counties forwarding to the city, each with its own key and connection.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=9999))]
    counties: u32,
    /// Offered rates, events/s of all counties together, one step each, in this order.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,5000,10000")]
    rates: Vec<u32>,
    /// Seconds each step offers its rate for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of each event's thumbnail (a 320-pixel JPEG is some 10 to 20 KB).
    #[arg(long, default_value_t = 12 * 1024)]
    thumbnail_bytes: usize,
}

/// One simulated county.
struct County {
    /// Its name at the city (in `below.toml`).
    name: String,
    /// The numbers it sent and not yet receipted, with when each went.
    sent: Mutex<VecDeque<(u64, Instant)>>,
    /// Latencies of its events receipted in this step, ms.
    latencies: Mutex<Vec<f64>>,
    /// Room in its window.
    window: Semaphore,
}

/// What the city has receipted so far, all counties together.
#[derive(Default, Clone, Copy)]
struct Progress {
    /// Events receipted.
    receipted: u64,
    /// When the last was.
    last: Option<Instant>,
    /// Receipts that said an event went missing.
    missing: u64,
}

impl County {
    /// Takes a receipt from the city: the latencies of the numbers it covers, room in the
    /// window.
    fn receipted(&self, payload: &[u8], progress: &watch::Sender<Progress>) {
        let receipt = match decode_limited::<TierReceipt>(payload) {
            Ok(r) => r,
            Err(e) => return tracing::warn!("{}: undecodable receipt: {e}", self.name),
        };
        let now = Instant::now();
        let mut fresh = 0;
        {
            let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
            let mut latencies = self.latencies.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some(&(seq, at)) = sent.front() {
                if seq > receipt.up_to {
                    break;
                }
                sent.pop_front();
                latencies.push((now - at).as_secs_f64() * 1000.0);
                fresh += 1;
            }
        }
        self.window.add_permits(fresh);
        progress.send_modify(|p| {
            p.receipted += fresh as u64;
            p.missing += u64::from(receipt.missing);
            if fresh > 0 {
                p.last = Some(now);
            }
        });
    }

    /// Sends `messages` (numbered from `first`) on `topic`, one every `every`, starting at
    /// `start`, each only while the window has room.
    async fn send(
        self: Arc<Self>,
        client: AsyncClient,
        topic: String,
        messages: Vec<Bytes>,
        first: u64,
        (start, every): (tokio::time::Instant, Duration),
    ) -> anyhow::Result<()> {
        for (k, message) in messages.into_iter().enumerate() {
            tokio::time::sleep_until(start + every * k as u32).await;
            self.window.acquire().await?.forget();
            let seq = first + k as u64;
            self.sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back((seq, Instant::now()));
            client.publish_bytes(topic.clone(), QoS::AtLeastOnce, false, message).await?;
        }
        Ok(())
    }
}

/// Polls `county`'s connection, subscribing to its receipts on each, until the connection ends.
async fn listen(
    county: Arc<County>,
    client: AsyncClient,
    mut events: EventLoop,
    receipts: String,
    progress: Arc<watch::Sender<Progress>>,
) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.subscribe(receipts.clone(), QoS::AtLeastOnce).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => county.receipted(&p.payload, &progress),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("{}: MQTT connection: {e}; reconnecting", county.name);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the city center in `data` on PostgreSQL `store` and the broker on `mqtt`, its API on
/// a free loopback port; returns it and the port.
fn start_city(data: &Path, store: &str, mqtt: u16) -> anyhow::Result<(Child, u16)> {
    let bin = std::env::current_exe()?.with_file_name("xl-center");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(data.join("center.log"))?;
    let child = std::process::Command::new(&bin)
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .args(["--broker-url", &format!("mqtt://127.0.0.1:{mqtt}")])
        .arg("--data-dir")
        .arg(data)
        .args(["--store", store])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {} (make build builds it)", bin.display()))?;
    let city = Child(child);
    xueliang_testkit::bench::wait_listening(port, "the city center")?;
    Ok((city, port))
}

/// The value of counter `name` in the city's `/metrics`.
async fn counter(http: &reqwest::Client, port: u16, name: &str) -> anyhow::Result<u64> {
    let text = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("the city's /metrics has no {name}"))
}

/// County `name`'s events numbered `seqs`, signed with `key`.
fn messages(
    key: &SigningKey,
    name: &str,
    seqs: std::ops::Range<u64>,
    thumbnail: &[u8],
) -> Vec<Bytes> {
    let now = now_ms();
    seqs.map(|seq| {
        let raised = alarm(&format!("{name}-box"), seq as usize, 0, now);
        let record = AlarmRecord::from_alarm(&raised, now);
        Bytes::from(signed_event(key, name, seq, Some(&record), thumbnail.to_vec(), now))
    })
    .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if args.rates.is_empty() || args.rates.contains(&0) || args.seconds == 0 {
        bail!("need at least one rate, none of them 0, and a step of at least a second");
    }
    let dir = tempfile::tempdir()?;
    let run = bench(&args, dir.path()).await;
    if run.is_err() {
        eprintln!("the bench's files, the city's log among them: {}", dir.keep().display());
    }
    run
}

/// Runs the bench with its files in `dir`.
async fn bench(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let city_dir = dir.join("city");
    std::fs::create_dir_all(&city_dir)?;
    let names: Vec<String> = (0..args.counties).map(|c| format!("33{c:04}")).collect();
    let mut keys = Vec::new();
    let mut below = String::from("[centers]\n");
    for name in &names {
        let key = SigningKey::load_or_create(&dir.join(format!("{name}.key")))?;
        below.push_str(&format!("{name} = \"{}\"\n", key.public_key()));
        keys.push(key);
    }
    std::fs::write(city_dir.join("below.toml"), below)?;

    let postgres = xueliang_pgtest::Server::start(true)?;
    let mosquitto = Mosquitto::start(dir)?;
    let (city, api) = start_city(&city_dir, &postgres.database()?, mosquitto.port)?;
    let topics = Topics::default();
    let progress = Arc::new(watch::Sender::new(Progress::default()));
    let mut counties = Vec::new();
    let mut listeners = Vec::new();
    for name in &names {
        let county = Arc::new(County {
            name: name.clone(),
            sent: Mutex::default(),
            latencies: Mutex::default(),
            window: Semaphore::new(WINDOW),
        });
        let mut opts = MqttOptions::new(format!("bench-{name}"), "127.0.0.1", mosquitto.port);
        opts.set_max_packet_size(4 << 20, 4 << 20).set_inflight(WINDOW as u16);
        let (client, events) = AsyncClient::new(opts, WINDOW);
        let receipts = topics.tier_receipt(name);
        let listener = listen(county.clone(), client.clone(), events, receipts, progress.clone());
        listeners.push(tokio::spawn(listener));
        counties.push((county, client));
    }

    // Each county's first event, sent again until the city receipts it: then the city is
    // subscribed to every county.
    let thumbnail = noise(7, args.thumbnail_bytes);
    let t0 = Instant::now();
    let firsts: Vec<Bytes> =
        keys.iter().zip(&names).map(|(k, n)| messages(k, n, 1..2, &thumbnail).remove(0)).collect();
    for (county, _) in &counties {
        county.window.acquire().await?.forget();
        county.sent.lock().unwrap_or_else(PoisonError::into_inner).push_back((1, Instant::now()));
    }
    let mut rx = progress.subscribe();
    loop {
        for ((county, client), first) in counties.iter().zip(&firsts) {
            if county.sent.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
                continue;
            }
            let topic = topics.tier_event(&county.name);
            client.publish_bytes(topic, QoS::AtLeastOnce, false, first.clone()).await?;
        }
        let all = u64::from(args.counties);
        let wait = rx.wait_for(|p| p.receipted >= all);
        if tokio::time::timeout(Duration::from_secs(2), wait).await.is_ok() {
            break;
        } else if t0.elapsed() > Duration::from_secs(60) {
            bail!("the city did not receipt every county's first event within a minute");
        }
    }
    let mut next_seq = vec![2u64; names.len()];
    let mut total = u64::from(args.counties);
    let http = reqwest::Client::new();

    println!(
        "tier-bench: {} counties → one city center (PostgreSQL, fsync on; Mosquitto), \
         {}-byte thumbnails, {} s a step, each county at most {WINDOW} events ahead of the city",
        args.counties, args.thumbnail_bytes, args.seconds
    );
    for &rate in &args.rates {
        let per_county = (u64::from(rate) * args.seconds).div_ceil(u64::from(args.counties));
        let every = Duration::from_secs_f64(f64::from(args.counties) / f64::from(rate));
        let signed: Vec<Vec<Bytes>> = keys
            .iter()
            .zip(&names)
            .zip(&next_seq)
            .map(|((k, n), &s)| messages(k, n, s..s + per_county, &thumbnail))
            .collect();
        for (county, _) in &counties {
            county.latencies.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
        let before = *progress.borrow();
        let (city0, pg0, mq0, me0) =
            (cpu_of(city.0.id()), cpu_of(postgres.pid()), cpu_of(mosquitto.pid()), rusage().0);
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let t0 = Instant::now() + Duration::from_millis(100);
        let mut senders = Vec::new();
        for (c, ((county, client), messages)) in counties.iter().zip(signed).enumerate() {
            let offset = every * c as u32 / args.counties;
            let topic = topics.tier_event(&county.name);
            let pace = (start + offset, every);
            senders.push(tokio::spawn(county.clone().send(
                client.clone(),
                topic,
                messages,
                next_seq[c],
                pace,
            )));
        }
        for s in &mut next_seq {
            *s += per_county;
        }
        let step = per_county * u64::from(args.counties);
        total += step;
        let limit = Duration::from_secs(120 + step / 500);
        let done =
            tokio::time::timeout(limit, rx.wait_for(|p| p.receipted >= before.receipted + step))
                .await;
        let p = *progress.borrow();
        let (city1, pg1, mq1, me1) =
            (cpu_of(city.0.id()), cpu_of(postgres.pid()), cpu_of(mosquitto.pid()), rusage().0);
        for s in senders.into_iter().filter(|s| s.is_finished()) {
            s.await?.context("sending")?;
        }
        if done.is_err() {
            let (got, missing) = (p.receipted - before.receipted, p.missing);
            let stalled = counties
                .iter()
                .filter(|(c, _)| !c.sent.lock().unwrap_or_else(PoisonError::into_inner).is_empty())
                .count();
            bail!(
                "at {rate}/s: after {limit:?} the city receipted {got} of {step} events; \
                 {stalled} counties wait for receipts; the city said {missing} times that one \
                 went missing"
            );
        }
        let secs = p.last.map_or(0.0, |l| (l - t0).as_secs_f64()).max(1e-3);
        let mut lat: Vec<f64> = counties
            .iter()
            .flat_map(|(c, _)| c.latencies.lock().map(|l| l.clone()).unwrap_or_default())
            .collect();
        lat.sort_by(f64::total_cmp);
        let cores = |a: Duration, b: Duration| (b.saturating_sub(a)).as_secs_f64() / secs;
        println!(
            "  offered {rate:>6}/s: stored {:>6.0}/s ({step} events in {secs:.1} s); \
             sent → stored at the city p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
             CPU: city {:.2}, PostgreSQL {:.2}, Mosquitto {:.2}, counties {:.2} cores",
            step as f64 / secs,
            quantile(&lat, 0.5),
            quantile(&lat, 0.9),
            quantile(&lat, 0.99),
            quantile(&lat, 1.0),
            cores(city0, city1),
            cores(pg0, pg1),
            cores(mq0, mq1),
            cores(me0, me1),
        );
    }

    let stored = counter(&http, api, "xl_center_tier_received_total").await?;
    let refused = counter(&http, api, "xl_center_tier_refused_total").await?;
    let missing = progress.borrow().missing;
    let (rss, peak) = memory_kib(city.0.id());
    println!(
        "  the city stored {stored} of {total} events, refused {refused}; its memory {:.0} MiB, \
         at most {:.0} MiB; this process at most {:.0} MiB (the signed messages of a step)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rusage().1
    );
    drop(city);
    // Before Mosquitto stops, so that the counties do not try to connect again.
    listeners.iter().for_each(tokio::task::JoinHandle::abort);
    if stored != total || refused != 0 || missing != 0 {
        bail!(
            "the city stored {stored} of {total} events, refused {refused}, and said {missing} \
             times that one went missing"
        );
    }
    Ok(())
}
