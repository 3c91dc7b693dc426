//! `xl-capacity`: how many cameras of each kind this box sustains at 5 detections/s, the whole
//! agent running (see `xueliang_testkit::capacity`).
//!
//! Without arguments, the sizing table: for each kind of camera (720p and 1080p, H.264 and
//! H.265, and 720p detected with a 1080p record stream kept), 1, 2, 3, … cameras until one is
//! not sustained, each count in a fresh process. `--profile P` searches one kind,
//! `--cameras N` runs once, and `--burst` measures what a burst of events on one camera does
//! to the others.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use xueliang_testkit::capacity::{self, CapacityRun, Profile, RunOptions, Scrape};
use xueliang_testkit::scenario;

#[derive(Parser)]
#[command(
    name = "xl-capacity",
    about = "Measure how many cameras at 5 detections/s this box sustains, the whole agent running"
)]
struct Args {
    /// One kind of camera: 720p-h264, 720p-h265, 1080p-h264, 1080p-h265, or one of these with
    /// +record (its 1080p H.264 main stream kept for clips). Default: every kind of the table.
    #[arg(long, value_parser = Profile::parse)]
    profile: Option<Profile>,
    /// Run this many cameras once (default: search upwards from 1).
    #[arg(long)]
    cameras: Option<usize>,
    /// Stop a search here.
    #[arg(long, default_value_t = 12)]
    max: usize,
    /// Seconds measured per run (after the cameras are online and 5 s of warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// ONNX Runtime intra-op threads (the agent's default on a 2-core box is 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The model (default: the set-up's NanoDet).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print the runs as JSON lines.
    #[arg(long)]
    json: bool,
    /// A burst of 20 events at once on one camera, at every person crossing its line, while
    /// three others run: their detections per second in the seconds of a burst and in the
    /// others. Give it a load the box sustains (`make bench` uses the INT8 model), or what it
    /// measures is the box falling behind.
    #[arg(long)]
    burst: bool,
    /// (internal) Serve CAMERAS cameras of PROFILE (`PROFILE:CAMERAS`), print the port, run
    /// until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<String>,
}

/// Serves the cameras from a child process, so its CPU and memory are not counted.
struct Server(std::process::Child, u16);

impl Server {
    fn start(profile: Profile, cameras: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", &format!("{}:{cameras}", profile.key())])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let port = line.trim().parse().with_context(|| format!("camera server said {line:?}"))?;
        Ok(Self(child, port))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(serve) = &args.serve {
        let (profile, n) = serve.split_once(':').context("--serve PROFILE:CAMERAS")?;
        let profile = Profile::parse(profile).map_err(anyhow::Error::msg)?;
        // Made here, before the port is printed, so the first run's clock starts on ready files.
        let server = capacity::serve(profile, n.parse()?)?;
        println!("{}", server.port());
        // Until the parent closes our stdin (or dies).
        std::io::stdin().read_line(&mut String::new())?;
        return Ok(());
    }
    xueliang_service::logging::init("warn");
    // Absolute: the agent's config, written elsewhere, names it.
    let model = args.model.clone().unwrap_or_else(scenario::model);
    let model =
        std::fs::canonicalize(&model).with_context(|| format!("model {}", model.display()))?;
    if args.burst {
        return burst(&args, &model);
    }
    if let (Some(profile), Some(n)) = (args.profile, args.cameras) {
        // One run, in this process.
        let run = one_run(&args, &model, profile, n, String::new(), |_| {})?;
        return report(&run, args.json);
    }
    let profiles = args.profile.map_or(Profile::TABLE.to_vec(), |p| vec![p]);
    let mut table = Vec::new();
    for profile in profiles {
        let mut best = None;
        for n in 1..=args.max {
            // Each count in a fresh process, so memory left over from a smaller run is not
            // counted.
            let run = run_child(&args, &model, profile, n)?;
            report(&run, args.json)?;
            if !run.sustained {
                break;
            }
            best = Some(run);
        }
        table.push((profile, best));
    }
    if !args.json {
        println!(
            "\ncapacity of this box at {} detections/s per camera, {} inference thread(s):",
            capacity::DETECT_FPS,
            args.threads
        );
        for (profile, best) in table {
            match best {
                Some(r) => println!(
                    "  {:<58} {:>2} cameras  (CPU {:.2} cores, RSS {:.0} MiB, frame age p50 {:.0} ms / p95 {:.0} ms)",
                    profile.describe(),
                    r.cameras,
                    r.cpu_cores,
                    r.rss_mib,
                    r.frame_age_p50_ms,
                    r.frame_age_p95_ms
                ),
                None => println!("  {:<58} not even one camera", profile.describe()),
            }
        }
    }
    Ok(())
}

/// One run of `n` cameras of `profile` in this process.
fn one_run(
    args: &Args,
    model: &Path,
    profile: Profile,
    n: usize,
    camera0_rules: String,
    each_second: impl FnMut(&Scrape),
) -> anyhow::Result<CapacityRun> {
    let server = Server::start(profile, n)?;
    let options = RunOptions {
        profile,
        cameras: n,
        camera_port: server.1,
        period: Duration::from_secs(args.seconds),
        threads: args.threads,
        model: model.to_owned(),
        camera0_rules,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let run = runtime.block_on(capacity::run(&options, each_second));
    drop(server);
    run
}

/// One run of `n` cameras of `profile` in a fresh process.
fn run_child(args: &Args, model: &Path, profile: Profile, n: usize) -> anyhow::Result<CapacityRun> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--profile", &profile.key(), "--cameras", &n.to_string(), "--json"])
        .args(["--seconds", &args.seconds.to_string(), "--threads", &args.threads.to_string()])
        .arg("--model")
        .arg(model)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        anyhow::bail!("the run with {n} cameras of {} failed", profile.key());
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!("run with {n} cameras printed {:?}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Rules that each raise an alarm at every crossing of camera 0's line.
const BURST_RULES: usize = 20;

/// `--burst`: four 720p H.264 cameras; camera 0 has [`BURST_RULES`] more rules on its line, so
/// every person crossing it raises that many alarms in one frame (each with its picture, seal
/// and outbox write). The other cameras' detections per second are compared between the
/// seconds of a burst (the second it is raised and the next) and the rest.
fn burst(args: &Args, model: &Path) -> anyhow::Result<()> {
    let rules: String = (1..=BURST_RULES)
        .map(|k| {
            format!(
                "\n[[rules]]\nid = \"burst-{k:02}\"\nkind = \"line_crossing\"\nline = \"cam0-crossing\"\nseverity = \"low\"\n"
            )
        })
        .collect();
    let others = ["cam1", "cam2", "cam3"];
    let mut previous: Option<Scrape> = None;
    // Per second: the others' detections per second, and whether camera 0 burst.
    let mut seconds: Vec<(f64, bool)> = Vec::new();
    let (mut queue_max, mut full) = (0.0f64, 0.0f64);
    let run = one_run(args, model, Profile::TABLE[0], 4, rules, |now| {
        if let Some(before) = &previous {
            let delta = |map: &std::collections::BTreeMap<String, f64>,
                         then: &std::collections::BTreeMap<String, f64>,
                         key: &str| {
                map.get(key).copied().unwrap_or(0.0) - then.get(key).copied().unwrap_or(0.0)
            };
            let rate =
                others.iter().map(|c| delta(&now.inferred, &before.inferred, c)).sum::<f64>()
                    / others.len() as f64;
            // Counted as the evidence thread stores them: a burst spans a second or two.
            let burst_alarms: f64 = (1..=BURST_RULES)
                .map(|k| delta(&now.raised, &before.raised, &format!("burst-{k:02}")))
                .sum();
            seconds.push((rate, burst_alarms > 0.0));
        }
        queue_max = queue_max.max(now.evidence_queue);
        full = now.evidence_full;
        previous = Some(now.clone());
    })?;
    report(&run, args.json)?;
    // The seconds a burst's alarms were stored in, and the one after, count as the burst's.
    let in_burst: Vec<bool> =
        (0..seconds.len()).map(|i| seconds[i].1 || (i > 0 && seconds[i - 1].1)).collect();
    // Consecutive seconds of one kind make a window; each window's rate is its mean, which
    // evens out the page being written a little more or less often than once a second.
    let mut windows: Vec<(bool, f64, usize)> = Vec::new();
    for (&(rate, _), &busy) in seconds.iter().zip(&in_burst) {
        match windows.last_mut() {
            Some((kind, sum, n)) if *kind == busy => (*sum, *n) = (*sum + rate, *n + 1),
            _ => windows.push((busy, rate, 1)),
        }
    }
    let stats = |busy: bool| {
        let w: Vec<(f64, usize)> =
            windows.iter().filter(|w| w.0 == busy).map(|w| (w.1 / w.2 as f64, w.2)).collect();
        let seconds: usize = w.iter().map(|w| w.1).sum();
        let mean = w.iter().map(|w| w.0 * w.1 as f64).sum::<f64>() / seconds.max(1) as f64;
        let min = w.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
        let max = w.iter().map(|w| w.0).fold(f64::NEG_INFINITY, f64::max);
        (mean, min, max, seconds, w.len())
    };
    let bursts =
        (0..seconds.len()).filter(|&i| seconds[i].1 && (i == 0 || !seconds[i - 1].1)).count();
    let ((b, bmin, bmax, bs, bw), (q, qmin, qmax, qs, qw)) = (stats(true), stats(false));
    println!(
        "burst: {bursts} bursts of {BURST_RULES} alarms on cam0 in {} s; the other 3 cameras \
         inferred {b:.2}/s each in the {bs} seconds of a burst ({bw} windows: min {bmin:.2}, \
         max {bmax:.2}) and {q:.2}/s in the {qs} others ({qw} windows: min {qmin:.2}, max \
         {qmax:.2}): ratio {:.3}; evidence queue at most {queue_max:.0} waiting, the detector \
         waited for room {full:.0} times. Counts from the agent's metrics page, read once a \
         second.",
        seconds.len(),
        b / q.max(f64::EPSILON),
    );
    if bursts == 0 {
        anyhow::bail!("no burst happened: nobody crossed camera 0's line in {} s", args.seconds);
    }
    Ok(())
}

/// Prints one run, as a line of text or of JSON.
fn report(run: &CapacityRun, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(&run)?);
        return Ok(());
    }
    let latency = match (run.alarm_latency_p50_ms, run.alarm_latency_p95_ms) {
        (Some(p50), Some(p95)) => format!("alarm to store p50 {p50} ms, p95 {p95} ms"),
        _ => "no alarm stored".into(),
    };
    println!(
        "{:>2} cameras of {}: slowest {:.2} det/s (target {}), mean {:.2}; frame age p50 {:.0} ms, p95 {:.0} ms; CPU {:.2} cores; RSS {:.0} MiB; {} alarms, {latency}; {}",
        run.cameras,
        run.profile.describe(),
        run.min_fps,
        run.target_fps,
        run.mean_fps,
        run.frame_age_p50_ms,
        run.frame_age_p95_ms,
        run.cpu_cores,
        run.rss_mib,
        run.alarms,
        if run.sustained { "sustained" } else { "falls behind" }
    );
    Ok(())
}
