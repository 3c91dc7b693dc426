//! `xl-agent`: the edge agent's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use xueliang_agent::agent::Agent;
use xueliang_agent::alarm::kind_name;
use xueliang_agent::bench::BenchOptions;
use xueliang_agent::config::{AgentConfig, ConfigError, Problem, Transport};
use xueliang_agent::config_locate::locate;
use xueliang_agent::detector::{Detector, DetectorOptions, default_threads, ort_library};
use xueliang_agent::doctor;
use xueliang_agent::enroll::EnrollOptions;
use xueliang_agent::eval::EvalOptions;
use xueliang_agent::evidence::Rgb;
use xueliang_agent::geometry::{Line, Polygon};
use xueliang_agent::identity::Sealer;
use xueliang_agent::model_card::ModelCard;
use xueliang_agent::mot::GroundTruth;
use xueliang_agent::probe::probe;
use xueliang_agent::remote_config::RemoteConfig;
use xueliang_agent::replay::ReplayOptions;
use xueliang_agent::rules::Shape;

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
    /// Register this box with the county center using a one-time token from its administrator;
    /// writes the broker settings, the center's key and the box's config into the config file.
    Enroll {
        /// The center's HTTP address, e.g. http://10.20.0.2:8080.
        #[arg(long)]
        center: String,
        /// The enrolment token (XXXXX-XXXXX-XXXXX-XXXXX).
        #[arg(long)]
        token: String,
        /// The config file to write (edited if it exists).
        #[arg(long, short, default_value = "/etc/xueliang/agent.toml")]
        config: PathBuf,
        /// The data directory holding this box's key (default: the config's, else /var/lib/xueliang).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check what breaks on site: ONNX Runtime and the model, GStreamer plugins, each camera, the
    /// broker with this box's credentials, the clock against the center's, free disk; one line
    /// per check with a fix. Exits non-zero if one fails.
    Doctor {
        /// The agent's TOML config.
        #[arg(long, short, default_value = "/etc/xueliang/agent.toml")]
        config: PathBuf,
        /// Seconds to watch each camera.
        #[arg(long, default_value_t = 3.0)]
        camera_seconds: f32,
    },
    /// Check a config file and report every problem (file:line:column, and a hint); exits
    /// non-zero if there is one.
    CheckConfig {
        /// The TOML config to check.
        file: PathBuf,
    },
    /// Connect to a camera as the agent would: print its codec, resolution, frame rate and
    /// latency, and save a picture with the configured zones, lines and privacy masks drawn.
    ProbeCamera {
        /// The camera's URL (rtsp://user:password@host:554/path, or file:// for a recording).
        url: String,
        /// An agent config whose geometry to draw on the picture.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The camera of that config (default: the one with this URL).
        #[arg(long)]
        camera: Option<String>,
        /// RTSP transport: auto, tcp or udp (default: the camera's in the config, else auto).
        #[arg(long)]
        transport: Option<String>,
        /// Seconds to measure the frame rate over.
        #[arg(long, default_value_t = 5.0)]
        seconds: f32,
        /// Where to save the picture (default: probe-CAMERA.jpg).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a recorded clip through the detector and one camera's rules, every frame in order,
    /// and print the events and line counts: to tune rules on footage from the site.
    Replay {
        /// The agent's TOML config (its rules, zones, lines and masks; the model).
        #[arg(long, short)]
        config: PathBuf,
        /// The recording (any format GStreamer decodes).
        #[arg(long)]
        clip: PathBuf,
        /// The camera whose rules apply (default: the first).
        #[arg(long)]
        camera: Option<String>,
        /// Local time of the clip's first frame, for schedules: RFC 3339 (2026-07-01T19:30:00+08:00)
        /// or civil time in the config's time zone (2026-07-01T19:30). Default: now.
        #[arg(long)]
        start: Option<String>,
        /// Infer every Nth frame (2 = 5/s for a 10 fps clip, as detect_fps = 5 would).
        #[arg(long, default_value_t = 2)]
        every: usize,
        /// Write each event's JPEG into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
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
        let options =
            DetectorOptions { library: ort_library(None), threads: self.threads, max_batch };
        Ok(Detector::open(&self.model, self.card.as_deref(), &options)?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Doctor { config, camera_seconds } => doctor(&config, camera_seconds),
        Command::Enroll { center, token, config, data_dir } => {
            enroll(EnrollOptions { center, token, config, data_dir }).map_err(|e| (1, e))
        }
        Command::ProbeCamera { url, config, camera, transport, seconds, out } => {
            probe_camera(&url, config.as_deref(), camera, transport.as_deref(), seconds, out)
                .map_err(|e| (1, e))
        }
        Command::Replay { config, clip, camera, start, every, out } => {
            replay(&config, clip, camera, start.as_deref(), every, out.as_deref())
                .map_err(|e| (1, e))
        }
        Command::Run { config } => run(&config),
        Command::Key { config } => {
            AgentConfig::load(&config).map_err(|e| (2, e.into())).and_then(|c| {
                let sealer = Sealer::open(&c.data_dir).map_err(|e| (1, e.into()))?;
                // The line to paste into the center's agent-keys.toml.
                println!("{} = \"{}\"", c.agent_id, sealer.public_key());
                Ok(())
            })
        }
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

/// `check-config`: every problem with its place and a hint; exit 2 if there is one.
fn check_config(file: &Path) -> Result<(), (u8, anyhow::Error)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(|e| (2, e))?;
    let config = match AgentConfig::parse_unchecked(&text, file) {
        Ok(c) => c,
        Err(ConfigError::Syntax { at, short, .. }) => {
            let (line, col) = at.unwrap_or((1, 1));
            println!("{}:{line}:{col}: {short}", file.display());
            return Err((2, anyhow::anyhow!("1 problem in {}", file.display())));
        }
        Err(e) => return Err((2, e.into())),
    };
    let mut problems = config.problems();
    let card =
        config.model.card.clone().unwrap_or_else(|| ModelCard::default_path(&config.model.path));
    if !config.model.path.is_file() {
        problems.push(
            Problem::new("model.path", format!("no model file at {}", config.model.path.display()))
                .hint("install the model (deploy/agent/install.sh, or `make setup` in a checkout) or fix the path"),
        );
    }
    match ModelCard::load(&card) {
        Ok(card) => problems.extend(config.class_problems(&card)),
        Err(e) => problems.push(Problem::new("model.card", e.to_string()).hint(
            "the card lists the model's classes; it lies beside the model as NAME.card.toml",
        )),
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} cameras, {} zones, {} lines, {} rules)",
            file.display(),
            config.cameras.len(),
            config.zones.len(),
            config.lines.len(),
            config.rules.len()
        );
        return Ok(());
    }
    let mut placed: Vec<((usize, usize), &Problem)> =
        problems.iter().map(|p| (locate(&text, &p.at).unwrap_or((1, 1)), p)).collect();
    // In file order, as an installer fixes them.
    placed.sort_by_key(|(at, _)| *at);
    for ((line, col), p) in placed {
        println!("{}:{line}:{col}: {p}", file.display());
        if let Some(hint) = &p.hint {
            println!("    hint: {hint}");
        }
    }
    let n = problems.len();
    Err((2, anyhow::anyhow!("{n} problem{} in {}", if n == 1 { "" } else { "s" }, file.display())))
}

/// `doctor`: every check, one line each; exit 1 if one failed.
fn doctor(config: &Path, camera_seconds: f32) -> Result<(), (u8, anyhow::Error)> {
    // Unchecked: a broken config is one failed check among the others, not the end.
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))
        .map_err(|e| (2, e))?;
    let config = AgentConfig::parse_unchecked(&text, config).map_err(|e| (2, e.into()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(|e| (1, e))?;
    let checks =
        runtime.block_on(doctor::run(&config, Duration::from_secs_f32(camera_seconds.max(0.5))));
    for c in &checks {
        println!("{}", c.line());
    }
    let failed = checks.iter().filter(|c| c.outcome == doctor::Outcome::Fail).count();
    if failed == 0 {
        println!("all {} checks passed", checks.len());
        Ok(())
    } else {
        Err((1, anyhow::anyhow!("{failed} of {} checks failed", checks.len())))
    }
}

/// `enroll`: the token redeemed, the config written.
fn enroll(options: EnrollOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let enrolled = runtime.block_on(options.run())?;
    println!("enrolled as {} with the center at {}", enrolled.agent_id, options.center);
    println!(
        "broker            {}{}",
        enrolled.mqtt_url,
        if enrolled.mqtt_password.is_some() { " (with this box's own password)" } else { "" }
    );
    println!("config            {} (mode 0640)", options.config.display());
    if enrolled.config_message.is_none() {
        println!("cameras           none yet: add them to the config, or the county pushes them");
    } else {
        println!(
            "cameras and rules as the county configured them (its config version {})",
            enrolled.config_version
        );
    }
    println!(
        "next              xl-agent check-config {0} && systemctl restart xl-agent",
        options.config.display()
    );
    Ok(())
}

/// `probe-camera`: what the camera sends, and a picture of the geometry on its view.
fn probe_camera(
    url: &str,
    config: Option<&Path>,
    camera: Option<String>,
    transport: Option<&str>,
    seconds: f32,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    gstreamer::init().context("GStreamer")?;
    // What the agent runs: the file, with the config the center pushed if it kept one.
    let config = config.map(AgentConfig::load).transpose()?.map(|c| RemoteConfig::in_force(&c).0);
    let camera = match (&config, camera) {
        (None, c) => c.map(|id| (id, None)),
        (Some(cfg), id) => {
            let found = match &id {
                Some(id) => cfg.cameras.iter().find(|c| c.id == *id),
                None => cfg.cameras.iter().find(|c| c.url == url),
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
    let transport = match transport {
        Some(t) => serde_json::from_value::<Transport>(serde_json::Value::String(t.to_owned()))
            .map_err(|_| anyhow::anyhow!("--transport {t:?}: write auto, tcp or udp"))?,
        None => {
            camera.as_ref().and_then(|(_, c)| c.as_ref()).map_or(Transport::Auto, |c| c.transport)
        }
    };
    let report = probe(url, transport, Duration::from_secs_f32(seconds.max(0.5)))?;
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
    Ok(())
}

/// `replay`: a clip through one camera's rules, events and counts printed.
fn replay(
    config: &Path,
    clip: PathBuf,
    camera: Option<String>,
    start: Option<&str>,
    every: usize,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let (config, _) = RemoteConfig::in_force(&AgentConfig::load(config)?);
    gstreamer::init().context("GStreamer")?;
    let camera = match camera {
        Some(c) => c,
        None => config.cameras.first().map(|c| c.id.clone()).context("the config has no camera")?,
    };
    let tz = xueliang_agent::schedule::time_zone(&config.timezone).map_err(anyhow::Error::msg)?;
    let start_ms = match start {
        None => xueliang_proto::endpoint::now_ms(),
        Some(s) => parse_start(s, &tz)?,
    };
    let options = DetectorOptions {
        library: ort_library(config.model.onnxruntime.as_deref()),
        threads: config.model.threads,
        max_batch: 1,
    };
    let mut detector = Detector::open(&config.model.path, config.model.card.as_deref(), &options)?;
    let replay = ReplayOptions { clip, camera, start_ms, every, snapshots: out.is_some() };
    let report = replay.run(&config, &mut detector)?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let class_name =
        |c: u16| detector.card().classes.get(c as usize).map_or("?", String::as_str).to_owned();
    for (k, e) in report.events.iter().enumerate() {
        let local = jiff::Timestamp::from_millisecond(e.time_ms)
            .map(|t| t.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string())
            .unwrap_or_default();
        let objects: Vec<String> = e
            .hits
            .iter()
            .map(|h| match h.track {
                0 => class_name(h.detection.class),
                id => format!("{} #{id}", class_name(h.detection.class)),
            })
            .collect();
        println!(
            "frame {:>5}  {local}  {:<20} {}: {} [{}]",
            e.frame,
            e.rule_id,
            kind_name(e.kind),
            e.detail,
            objects.join(", ")
        );
        if let Some(dir) = out {
            let path = dir.join(format!("{:03}-{}-frame{}.jpg", k + 1, e.rule_id, e.frame));
            std::fs::write(&path, &e.jpeg)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    for (rule, c) in &report.counts {
        println!("line {rule}: A→B {}, B→A {}", c.a_to_b, c.b_to_a);
    }
    println!(
        "{} frames, {} inferred, {} events",
        report.frames,
        report.detections.len(),
        report.events.len()
    );
    Ok(())
}

/// A start time: RFC 3339, or civil time in `tz`.
fn parse_start(s: &str, tz: &jiff::tz::TimeZone) -> anyhow::Result<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let civil: jiff::civil::DateTime = s.parse().with_context(|| {
        format!("--start {s:?}: write 2026-07-01T19:30 (local) or 2026-07-01T19:30:00+08:00")
    })?;
    Ok(civil.to_zoned(tz.clone())?.timestamp().as_millisecond())
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
    runtime
        .block_on(async {
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
