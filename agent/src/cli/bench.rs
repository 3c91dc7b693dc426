//! `xl-agent bench`: the inference loop on a clip, per stage, against bare `session.run`.

use std::path::PathBuf;

use anyhow::Context;
use xueliang_agent::tools::bench::BenchOptions;

use super::{Failure, ModelArgs, failed};

#[derive(clap::Args)]
pub(super) struct Args {
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
    /// Frames per camera through the loop before it is measured.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Bare session.run calls for the baseline.
    #[arg(long, default_value_t = 150)]
    bare_runs: usize,
    /// Also run with the motion gate and report the CPU it saves.
    #[arg(long)]
    motion: bool,
    /// Times the loop and the bare runs are measured, for their spread.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(a: Args) -> Result<(), Failure> {
    let Args { model, clip, cameras, frames, warmup, bare_runs, motion, repeats, json } = a;
    let options =
        BenchOptions { clip, cameras: cameras.max(1), frames, warmup, bare_runs, motion, repeats };
    bench(&model, &options, json).map_err(failed)
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
