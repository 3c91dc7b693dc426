//! `xl-agent eval`: detection accuracy on a labelled clip (AP50, recall and precision).

use std::path::PathBuf;

use anyhow::Context;
use xueliang_agent::tools::eval::{EvalOptions, GroundTruth};

use super::{Failure, ModelArgs, failed};

#[derive(clap::Args)]
pub(super) struct Args {
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
}

pub(super) fn run(a: Args) -> Result<(), Failure> {
    eval(&a.model, a.clip, &a.gt, &a.class, a.every, a.threshold, a.json).map_err(failed)
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
