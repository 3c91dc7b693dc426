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
    /// Distant people: place each frame, shrunk by `--distant-scale`, in a picture this large
    /// (e.g. 2560x1440), and compare the whole picture stretched to the model's input with
    /// zone-aware inference on the zone that covers the frame.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    distant: Option<(usize, usize)>,
    /// The frames' scale in the `--distant` picture.
    #[arg(long, default_value_t = 0.4)]
    distant_scale: f32,
    /// Most tiles the zone may take (a camera's `detect_tiles`).
    #[arg(long, default_value_t = 4)]
    tiles: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `WxH` as (width, height).
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT, e.g. 2560x1440")?;
    let n =
        |v: &str| v.parse::<usize>().ok().filter(|&v| v > 0).ok_or(format!("{v:?} is not a size"));
    Ok((n(w)?, n(h)?))
}

pub(super) fn run(a: Args) -> Result<(), Failure> {
    eval(a).map_err(failed)
}

fn eval(a: Args) -> anyhow::Result<()> {
    let Args { model, clip, gt, class, every, threshold, json, .. } = &a;
    let (class, every, threshold, json) = (class.as_str(), *every, *threshold, *json);
    let gt = GroundTruth::load(gt).map_err(anyhow::Error::msg)?;
    let mut detector = model.load(a.tiles.max(1))?;
    let class_index = detector.card().class_index(class).with_context(|| {
        format!("class {class:?} is not a class of model {}", detector.card().name)
    })?;
    // A low candidate threshold shows the whole precision-recall curve.
    detector.score_threshold = 0.05;
    let options = EvalOptions { clip: clip.clone(), gt, class: class_index, every, threshold };
    if let Some(canvas) = a.distant {
        return distant(&options, &mut detector, canvas, &a);
    }
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

/// `--distant`: the stretched whole picture against zone-aware tiles.
fn distant(
    options: &EvalOptions,
    detector: &mut xueliang_agent::detect::Detector,
    canvas: (usize, usize),
    a: &Args,
) -> anyhow::Result<()> {
    let r = options.run_distant(detector, canvas, a.distant_scale, a.tiles, a.threshold)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let [p10, p50, p90] = r.person_px;
    println!(
        "eval distant: model {} on {} placed at {:.0} % in a {}x{} picture: {} frames, {} {} labels {p10:.0}/{p50:.0}/{p90:.0} px tall (p10/median/p90)",
        detector.card().name,
        options.clip.display(),
        r.scale * 100.0,
        r.canvas.0,
        r.canvas.1,
        r.stretch.frames,
        r.stretch.labels,
        a.class,
    );
    for (what, e) in [("whole picture stretched", &r.stretch), ("zone-aware", &r.zones)] {
        let tiles =
            if what == "zone-aware" { format!(" ({} tiles)", r.tiles) } else { String::new() };
        println!(
            "  {what}{tiles}: AP50 {:.3}, recall {:.3} and precision {:.3} at score ≥ {}",
            e.ap50, e.recall, e.precision, e.threshold
        );
    }
    Ok(())
}
