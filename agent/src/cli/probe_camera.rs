//! `xl-agent probe-camera`: what a camera sends, and a picture of the config's geometry on its
//! view, so zones and lines can be checked on site.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use xueliang_agent::config::{AgentConfig, Decoder, Transport};
use xueliang_agent::delivery::PushedConfigs;
use xueliang_agent::evidence::Rgb;
use xueliang_agent::geometry::{Line, Polygon};
use xueliang_agent::rules::Shape;
use xueliang_agent::tools::probe::probe;

use super::{Failure, config_value, failed};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The camera's URL (rtsp://user:password@host:554/path, or file:// for a recording).
    url: String,
    /// An agent config whose geometry to draw on the picture.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The camera of that config (default: the one with this URL).
    #[arg(long)]
    camera: Option<String>,
    /// RTSP transport: auto, tcp or udp (default: the camera's in the config, else auto).
    #[arg(long, value_parser = config_value::<Transport>)]
    transport: Option<Transport>,
    /// Decoders to use: auto, software or va (default: the camera's in the config, else auto).
    #[arg(long, value_parser = config_value::<Decoder>)]
    decoder: Option<Decoder>,
    /// Seconds to measure the frame rate over.
    #[arg(long, default_value_t = 5.0)]
    seconds: f32,
    /// Where to save the picture (default: probe-CAMERA.jpg).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> Result<(), Failure> {
    probe_camera(a).map_err(failed)
}

/// `probe-camera`: what the camera sends, and a picture of the geometry on its view.
fn probe_camera(a: Args) -> anyhow::Result<()> {
    let Args { url, config, camera, transport, decoder, seconds, out } = a;
    let (url, config) = (url.as_str(), config.as_deref());
    gstreamer::init().context("GStreamer")?;
    // What the agent runs: the file, with the config the center pushed if it kept one.
    let config = config.map(AgentConfig::load).transpose()?.map(|c| PushedConfigs::in_force(&c).0);
    let camera = match (&config, camera) {
        (None, c) => c.map(|id| (id, None)),
        (Some(cfg), id) => {
            let found = match &id {
                Some(id) => cfg.cameras.iter().find(|c| c.id == *id),
                None => cfg
                    .cameras
                    .iter()
                    .find(|c| c.detect_url == url || c.record_url.as_deref() == Some(url)),
            };
            let ids: Vec<&str> = cfg.cameras.iter().map(|c| c.id.as_str()).collect();
            let cam = found.with_context(|| match id {
                Some(id) => format!("no camera {id:?} in the config (cameras: {})", ids.join(", ")),
                None => format!(
                    "no camera with this URL in the config: name one with --camera (cameras: {})",
                    ids.join(", ")
                ),
            })?;
            Some((cam.id.clone(), Some(cam.clone())))
        }
    };
    let configured = camera.as_ref().and_then(|(_, c)| c.as_ref());
    let transport = transport.unwrap_or(configured.map_or(Transport::Auto, |c| c.transport));
    let decoder = decoder.unwrap_or(configured.map_or(Decoder::Auto, |c| c.decoder));
    let report = probe(url, transport, decoder, Duration::from_secs_f32(seconds.max(0.5)))?;
    print!("{}", report.text());
    let name = camera.as_ref().map_or("camera", |(id, _)| id.as_str());
    let out = out.unwrap_or_else(|| PathBuf::from(format!("probe-{name}.jpg")));
    let jpeg = report.frame.with_yuv(|yuv| {
        let mut rgb = Rgb::from_yuv(yuv);
        if let (Some(cfg), Some((id, _))) = (&config, &camera) {
            let masks = cfg.cameras.iter().find(|c| c.id == *id).map_or(Vec::new(), |c| {
                c.privacy_masks.iter().filter_map(|m| Polygon::new(m).ok()).collect()
            });
            rgb.black_out(&masks);
            for m in &masks {
                rgb.draw_mask(m);
            }
            for z in cfg.zones.iter().filter(|z| z.camera == *id) {
                if let Ok(p) = Polygon::new(&z.points) {
                    rgb.draw_shape(&Shape::Zone(p));
                }
            }
            for l in cfg.lines.iter().filter(|l| l.camera == *id) {
                if let Ok(line) = Line::new(&l.points) {
                    rgb.draw_shape(&Shape::Line(line));
                }
            }
        }
        rgb.to_jpeg(90, 8 << 20, &[])
    })??;
    std::fs::write(&out, jpeg).with_context(|| format!("cannot write {}", out.display()))?;
    println!("picture           {}", out.display());
    // The camera's other stream, so an installer sees both: detect (decoded every frame, the
    // sub-stream) and record (clips and pictures, the main stream).
    let streams = camera.as_ref().and_then(|(_, c)| c.as_ref()).map(|c| {
        [("detect stream", Some(c.detect_url.clone())), ("record stream", c.record_url.clone())]
    });
    for (role, other) in streams.into_iter().flatten() {
        let Some(other) = other.filter(|o| o != url) else { continue };
        println!("\n{role}");
        match probe(&other, transport, decoder, Duration::from_secs_f32(seconds.max(0.5))) {
            Ok(r) => print!("{}", r.text()),
            Err(e) => println!("  not received: {e}"),
        }
    }
    Ok(())
}
