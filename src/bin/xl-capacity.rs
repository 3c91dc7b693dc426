//! `xl-capacity`: how many 720p H.264 25 fps cameras at 5 detections/s this box sustains.
//!
//! Serves synthetic cameras (real footage, see `xueliang_testkit::capacity`) from an in-process RTSP
//! server and runs them through the agent's inference loop: with `--cameras N` one run, otherwise
//! 1, 2, 3, … cameras until one is not sustained. Prints one line per run and the capacity.

use std::path::PathBuf;
use std::time::Duration;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::Context;
use clap::Parser;
use xueliang_testkit::{capacity, scenario};

#[derive(Parser)]
#[command(
    name = "xl-capacity",
    about = "Measure how many 720p25 cameras at 5 detections/s this box sustains"
)]
struct Args {
    /// Run this many cameras once (default: search upwards from 1).
    #[arg(long)]
    cameras: Option<usize>,
    /// Stop the search here.
    #[arg(long, default_value_t = 12)]
    max: usize,
    /// Seconds measured per run (after a 6 s warm-up).
    #[arg(long, default_value_t = 25)]
    seconds: u64,
    /// ONNX Runtime intra-op threads (the agent's default is 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The model (default: the set-up's NanoDet).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print the runs as JSON lines.
    #[arg(long)]
    json: bool,
    /// Also receive each camera's stream as its record stream, kept compressed for clips.
    #[arg(long)]
    record_streams: bool,
    /// Measure what keeping record streams costs: runs of `--cameras` (default 1) without and
    /// with them, alternated `--pairs` times; prints the CPU ratio's min / median / max.
    #[arg(long)]
    clips_overhead: bool,
    /// Pairs of runs for `--clips-overhead`.
    #[arg(long, default_value_t = 3)]
    pairs: usize,
    /// (internal) Serve this many synthetic cameras, print the port, run until stdin closes.
    #[arg(long, hide = true)]
    serve: Option<usize>,
}

/// Serves the cameras from a child process, so its CPU and memory are not counted.
struct Server(std::process::Child, u16);

impl Server {
    fn start(cameras: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", &cameras.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        let port = line.trim().parse().with_context(|| format!("camera server said {line:?}"))?;
        Ok(Self(child, port))
    }

    fn urls(&self, cameras: usize) -> Vec<String> {
        (0..cameras).map(|i| format!("rtsp://127.0.0.1:{}/cam{i}", self.1)).collect()
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
    if let Some(n) = args.serve {
        let server = capacity::serve(n)?;
        println!("{}", server.port());
        // Until the parent closes our stdin (or dies).
        std::io::stdin().read_line(&mut String::new())?;
        return Ok(());
    }
    let model = args.model.clone().unwrap_or_else(scenario::model);
    let period = Duration::from_secs(args.seconds);
    if args.clips_overhead {
        return clips_overhead(&args, &model);
    }
    if let Some(n) = args.cameras {
        // One run, in this process.
        let server = Server::start(n)?;
        let run =
            capacity::run(&model, args.threads, &server.urls(n), period, args.record_streams)?;
        drop(server);
        return report(&run, args.json);
    }
    let mut best = None;
    for n in 1..=args.max {
        // Each count in a fresh process, so memory left over from a smaller run is not counted.
        let run = run_child(&args, &model, n, args.record_streams)?;
        report(&run, args.json)?;
        if !run.sustained {
            break;
        }
        best = Some(n);
    }
    if !args.json {
        match best {
            Some(n) => println!(
                "capacity: {n} cameras (720p H.264 25 fps, {} detections/s each, {} inference thread(s))",
                capacity::DETECT_FPS,
                args.threads
            ),
            None => println!("capacity: not even one camera is sustained"),
        }
    }
    Ok(())
}

/// One run of `n` cameras in a fresh process (so what a run leaves behind is not counted).
fn run_child(
    args: &Args,
    model: &std::path::Path,
    n: usize,
    record: bool,
) -> anyhow::Result<capacity::CapacityRun> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--cameras", &n.to_string(), "--json"])
        .args(["--seconds", &args.seconds.to_string(), "--threads", &args.threads.to_string()])
        .args(record.then_some("--record-streams"))
        .arg("--model")
        .arg(model)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        anyhow::bail!("the run with {n} cameras failed");
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!("run with {n} cameras printed {:?}", String::from_utf8_lossy(&out.stdout))
    })
}

/// `--clips-overhead`: CPU with record streams kept over CPU without, from alternated runs.
fn clips_overhead(args: &Args, model: &std::path::Path) -> anyhow::Result<()> {
    let n = args.cameras.unwrap_or(1);
    let mut ratios = Vec::new();
    for _ in 0..args.pairs.max(1) {
        let without = run_child(args, model, n, false)?;
        let with = run_child(args, model, n, true)?;
        report(&without, args.json)?;
        report(&with, args.json)?;
        ratios.push(with.cpu_cores / without.cpu_cores.max(f32::EPSILON));
    }
    ratios.sort_by(f32::total_cmp);
    println!(
        "record streams kept for clips: CPU ×{:.3} median (min {:.3}, max {:.3}) over {} pairs of \
         {n}-camera runs; measures the agent process (RTSP, decode, inference, the kept \
         record stream), not the camera server; no clip is cut or sent",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        ratios.len()
    );
    Ok(())
}

/// Prints one run, as a line of text or of JSON.
fn report(run: &capacity::CapacityRun, json: bool) -> anyhow::Result<()> {
    {
        if json {
            println!("{}", serde_json::to_string(&run)?);
        } else {
            println!(
                "{:>2} cameras{}: slowest {:.2} det/s (target {}), mean {:.2}; frame age p50 {} ms, p95 {} ms; CPU {:.2} cores; RSS {:.0} MiB; {}",
                run.cameras,
                if run.record_streams { " + record streams" } else { "" },
                run.min_fps,
                run.target_fps,
                run.mean_fps,
                run.frame_age_p50_ms,
                run.frame_age_p95_ms,
                run.cpu_cores,
                run.rss_mib,
                if run.sustained { "sustained" } else { "falls behind" }
            );
        }
    }
    Ok(())
}
