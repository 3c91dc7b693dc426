//! The `xl-agent` command line: one file per subcommand, each with its arguments and its body.

mod bench;
mod check_config;
mod doctor;
mod enroll;
mod eval;
mod key;
mod probe_camera;
mod replay;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xueliang_agent::config::{ModelConfig, Provider, default_threads};
use xueliang_agent::detect::{Detector, DetectorOptions};

#[derive(Parser)]
#[command(
    name = "xl-agent",
    version,
    about = "xueliang edge agent: cameras → detection → alarms over MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until interrupted.
    Run(run::Args),
    /// Print this box's public key (made on first use, in the data directory), for the center's
    /// registry of agent keys.
    Key(key::Args),
    /// Register this box with the county center using a one-time token from its administrator;
    /// writes the broker settings, the center's key and the box's config into the config file.
    Enroll(enroll::Args),
    /// Check what breaks on site: ONNX Runtime and the model, GStreamer plugins, each camera, the
    /// broker with this box's credentials, the clock against the center's, free disk; one line
    /// per check with a fix. Exits non-zero if one fails.
    Doctor(doctor::Args),
    /// Check a config file and report every problem (file:line:column, and a hint); exits
    /// non-zero if there is one.
    CheckConfig(check_config::Args),
    /// Connect to a camera as the agent would: print its codec, resolution, frame rate and
    /// latency, and save a picture with the configured zones, lines and privacy masks drawn.
    ProbeCamera(probe_camera::Args),
    /// Run a recorded clip through the detector and one camera's rules, every frame in order,
    /// and print the events and line counts: to tune rules on footage from the site.
    Replay(replay::Args),
    /// Measure detection accuracy on a labelled clip: AP50, recall and precision.
    Eval(eval::Args),
    /// Measure the inference loop on a clip: per-stage time, frames/s, CPU per frame, and the
    /// ratio to bare session.run on the same model and threads.
    Bench(bench::Args),
}

/// A subcommand's failure: the exit code (1 a failure, 2 a bad config or usage) and the error.
type Failure = (u8, anyhow::Error);

/// Any error as a failure with exit code 1.
fn failed(e: impl Into<anyhow::Error>) -> Failure {
    (1, e.into())
}

/// Which model to load and how (for `eval` and `bench`).
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
    /// The ONNX Runtime library (default: $ORT_DYLIB_PATH, then the installed one).
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
    /// Where the model runs: cpu, openvino, cuda or tensorrt (as the config's model.provider;
    /// all but cpu need a build of ONNX Runtime with that provider).
    #[arg(long, default_value = "cpu", value_parser = config_value::<Provider>)]
    provider: Provider,
}

impl ModelArgs {
    fn load(&self, max_batch: usize) -> anyhow::Result<Detector> {
        let model = ModelConfig {
            path: self.model.clone(),
            card: self.card.clone(),
            threads: self.threads,
            onnxruntime: self.onnxruntime.clone(),
            provider: self.provider,
            openvino_device: "CPU".into(),
        };
        let options = DetectorOptions::of(&model, max_batch);
        Ok(Detector::open(&self.model, self.card.as_deref(), &options)?)
    }
}

/// A flag's value read as the config's value of the same setting (`tcp`, `va`, `openvino`…).
fn config_value<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|e| format!("{value:?}: {e}"))
}

/// Parses the command line, runs the subcommand, and turns its failure into `error: …` and the
/// exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    xueliang_service::logging::init("info");
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Key(args) => key::run(args),
        Command::Enroll(args) => enroll::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::ProbeCamera(args) => probe_camera::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}
