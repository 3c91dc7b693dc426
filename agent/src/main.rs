//! `xl-agent`: the edge agent's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use xueliang_agent::agent::Agent;
use xueliang_agent::bench::BenchOptions;
use xueliang_agent::config::AgentConfig;
use xueliang_agent::detector::{Detector, DetectorOptions, default_threads, ort_library};
use xueliang_agent::eval::EvalOptions;
use xueliang_agent::identity::Sealer;
use xueliang_agent::mot::GroundTruth;

#[derive(Parser)]
#[command(name = "xl-agent", version, about = "xueliang edge agent: cameras → detection → alarms over MQTT")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until interrupted.
    Run {
        /// The agent's TOML config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print this box's public key (made on first use, in the data directory), for the center's
    /// registry of agent keys.
    Key {
        /// The agent's TOML config (its agent_id and data_dir).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and report every problem; exits non-zero if there is one.
    CheckConfig {
        /// The TOML config to check.
        file: PathBuf,
    },
    /// Measure detection accuracy on a labelled clip: AP50, recall and precision.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// The recording (any format GStreamer decodes).
        #[arg(long)]
        clip: PathBuf,
        /// MOTChallenge ground truth (frame,id,x,y,w,h,flag,…) lined up with the clip.
        #[arg(long)]
        gt: PathBuf,
        /// The class the labels are of (a class name of the model card).
        #[arg(long, default_value = "person")]
        class: String,
        /// Evaluate every Nth frame (1, 1+N, 1+2N, …).
        #[arg(long, default_value_t = 5)]
        every: usize,
        /// Alarm threshold at which recall and precision are reported.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure the inference loop on a clip: per-stage time, frames/s, CPU per frame, and the
    /// ratio to bare session.run on the same model and threads.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// The recording every camera plays (looped).
        #[arg(long)]
        clip: PathBuf,
        /// Simultaneous cameras playing the clip.
        #[arg(long, default_value_t = 1)]
        cameras: usize,
        /// Frames through the loop.
        #[arg(long, default_value_t = 300)]
        frames: u64,
        /// Bare session.run calls for the baseline.
        #[arg(long, default_value_t = 150)]
        bare_runs: usize,
        /// Also run with the motion gate and report the CPU it saves.
        #[arg(long)]
        motion: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which model to load and how.
#[derive(clap::Args)]
struct ModelArgs {
    /// The `.onnx` model.
    #[arg(long)]
    model: PathBuf,
    /// Its model card (default: NAME.card.toml beside the model).
    #[arg(long)]
    card: Option<PathBuf>,
    /// ONNX Runtime intra-op threads (default as the agent's: every core but one, at least 1).
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
}

impl ModelArgs {
    fn load(&self, max_batch: usize) -> anyhow::Result<Detector> {
        let options = DetectorOptions {
            library: ort_library(None),
            threads: self.threads,
            max_batch,
        };
        Ok(Detector::open(&self.model, self.card.as_deref(), &options)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::CheckConfig { file } => AgentConfig::load(&file).map(|c| {
            println!(
                "{}: ok ({} cameras, {} zones, {} rules)",
                file.display(),
                c.cameras.len(),
                c.zones.len(),
                c.rules.len()
            );
        }).map_err(|e| (2, anyhow::Error::from(e))),
        Command::Run { config } => run(&config),
        Command::Key { config } => AgentConfig::load(&config).map_err(|e| (2, e.into())).and_then(|c| {
            let sealer = Sealer::open(&c.data_dir).map_err(|e| (1, e.into()))?;
            // The line to paste into the center's agent-keys.toml.
            println!("{} = \"{}\"", c.agent_id, sealer.public_key());
            Ok(())
        }),
        Command::Eval { model, clip, gt, class, every, threshold, json } => {
            eval(&model, clip, &gt, &class, every, threshold, json).map_err(|e| (1, e))
        }
        Command::Bench { model, clip, cameras, frames, bare_runs, motion, json } => {
            let options = BenchOptions { clip, cameras: cameras.max(1), frames, bare_runs, motion };
            bench(&model, &options, json).map_err(|e| (1, e))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn run(config: &std::path::Path) -> Result<(), (u8, anyhow::Error)> {
    let config = AgentConfig::load(config).map_err(|e| (2, e.into()))?;
    let agent = Agent::build(config).map_err(|e| (1, e.into()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|e| (1, e))?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            on_signal.cancel();
        });
        agent.run(shutdown).await
    })
    .map_err(|e| (1, e.into()))
}

fn eval(
    model: &ModelArgs,
    clip: PathBuf,
    gt: &std::path::Path,
    class: &str,
    every: usize,
    threshold: f32,
    json: bool,
) -> anyhow::Result<()> {
    let gt = GroundTruth::load(gt).map_err(anyhow::Error::msg)?;
    let mut detector = model.load(1)?;
    let class_index = detector.card().class_index(class).with_context(|| {
        format!("class {class:?} is not a class of model {}", detector.card().name)
    })?;
    // A low candidate threshold shows the whole precision-recall curve.
    detector.score_threshold = 0.05;
    let options = EvalOptions { clip, gt, class: class_index, every, threshold };
    let report = options.run(&mut detector)?.report(threshold);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "eval: model {} on {}: {} frames, {} {class} labels",
            detector.card().name,
            options.clip.display(),
            report.frames,
            report.labels
        );
        println!("  AP50       {:.3}", report.ap50);
        println!("  recall     {:.3} at score ≥ {threshold}", report.recall);
        println!("  precision  {:.3} at score ≥ {threshold}", report.precision);
    }
    Ok(())
}

fn bench(model: &ModelArgs, options: &BenchOptions, json: bool) -> anyhow::Result<()> {
    gstreamer::init().context("GStreamer")?;
    let detector = model.load(options.cameras)?;
    let report = options.run(detector, model.threads)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
