//! `xl-agent doctor`: checks what breaks on site, one line per check with a fix: the config,
//! ONNX Runtime and the model (and its checksum), the GStreamer plugins, each camera, the broker
//! with this box's credentials, the clock against the center's, and the disk for the outbox.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;

use crate::config::AgentConfig;
use crate::delivery::PushedConfigs;
use crate::delivery::mqtt_options;
use crate::detect::{Detector, DetectorError, DetectorOptions, ort_library};
use crate::tools::probe::probe;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Broken: the agent will not work until it is fixed.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked, e.g. `camera gate`.
    pub name: String,
    /// How it came out.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warnings and failures).
    pub hint: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { name: name.into(), outcome: Outcome::Ok, detail: detail.into(), hint: None }
    }

    fn bad(
        outcome: Outcome,
        name: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self { name: name.into(), outcome, detail: detail.into(), hint: Some(hint.into()) }
    }

    /// The check as printed: `ok    name  detail`, and the hint below.
    pub fn line(&self) -> String {
        let label = match self.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        };
        let mut line = format!("{label}  {:<16} {}", self.name, self.detail);
        if let Some(hint) = &self.hint {
            line.push_str(&format!("\n      fix: {hint}"));
        }
        line
    }
}

/// Elements the agent's pipelines need, and the Debian package of each.
const ELEMENTS: [(&str, &str); 10] = [
    ("uridecodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("rtspsrc", "gstreamer1.0-plugins-good"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("rtph265depay", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("h265parse", "gstreamer1.0-plugins-bad"),
    ("avdec_h264", "gstreamer1.0-libav"),
    ("avdec_h265", "gstreamer1.0-libav"),
];

/// Runs every check on the config in force (the box's file, with the config the center pushed,
/// if there is one); cameras are watched for `camera_time` each.
pub async fn run(local: &AgentConfig, camera_time: Duration) -> Vec<Check> {
    let mut checks = Vec::new();
    let (in_force, version) = PushedConfigs::in_force(local);
    let config = &in_force;
    let from = version
        .map_or(String::new(), |v| format!(" (the file with the center's config version {v})"));
    let problems = config.problems();
    checks.push(if problems.is_empty() {
        Check::ok(
            "config",
            format!("{} cameras, {} rules{from}", config.cameras.len(), config.rules.len()),
        )
    } else {
        Check::bad(
            Outcome::Fail,
            "config",
            problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            "run `xl-agent check-config` on the file for places and hints",
        )
    });
    checks.extend(model_checks(config));
    let plugins = plugin_check();
    let plugins_ok = plugins.outcome == Outcome::Ok;
    checks.push(plugins);
    for camera in &config.cameras {
        let name = format!("camera {}", camera.id);
        if !plugins_ok {
            checks.push(Check::bad(
                Outcome::Fail,
                name,
                "not tried: GStreamer plugins are missing",
                "install the plugins above first",
            ));
            continue;
        }
        // Without its record stream the camera still detects: its clips wait (a warning).
        let streams = [
            (format!("{name} detect stream"), Some(camera.detect_url.clone()), Outcome::Fail),
            (format!("{name} record stream"), camera.record_url.clone(), Outcome::Warn),
        ];
        for (name, url, outcome) in streams {
            let Some(url) = url else { continue };
            let (transport, decoder) = (camera.transport, camera.decoder);
            let probed =
                tokio::task::spawn_blocking(move || probe(&url, transport, decoder, camera_time))
                    .await;
            checks.push(match probed {
                Ok(Ok(r)) => Check::ok(name, format!("{} {}x{} at {:.1} fps, decoded by {} into {}, first frame after {} ms", r.codec, r.width, r.height, r.measured_fps, r.decoder, r.frame.format(), r.first_frame.as_millis())),
                Ok(Err(e)) => Check::bad(outcome, name, e.to_string(), "check the camera's power and cable, its URL (path, user, password) and transport; `xl-agent probe-camera URL` shows what it sends"),
                Err(e) => Check::bad(Outcome::Fail, name, e.to_string(), "report this"),
            });
        }
    }
    checks.push(broker_check(config).await);
    checks.push(clock_check(config).await);
    checks.push(disk_check(config));
    if let Some(check) = outbox_check(config) {
        checks.push(check);
    }
    checks
}

/// ONNX Runtime loads, the model loads and runs, and its checksum matches the installed one.
fn model_checks(config: &AgentConfig) -> Vec<Check> {
    let library = ort_library(config.model.onnxruntime.as_deref());
    let options = DetectorOptions { threads: 1, ..DetectorOptions::of(&config.model, 1) };
    let mut checks = Vec::new();
    match Detector::open(&config.model.path, config.model.card.as_deref(), &options) {
        Ok(d) => {
            checks.push(Check::ok("onnxruntime", format!("loaded {}", library.display())));
            checks.push(Check::ok(
                "model",
                format!(
                    "{} {} loads and runs on {} ({} classes)",
                    d.card().name,
                    d.card().version,
                    config.model.provider.name(),
                    d.card().classes.len()
                ),
            ));
        }
        Err(e @ DetectorError::Runtime { .. }) => {
            checks.push(Check::bad(
                Outcome::Fail,
                "onnxruntime",
                e.to_string(),
                "reinstall with deploy/agent/install.sh, or set model.onnxruntime / ORT_DYLIB_PATH",
            ));
        }
        Err(e) => {
            checks.push(Check::ok("onnxruntime", format!("loaded {}", library.display())));
            checks.push(Check::bad(
                Outcome::Fail,
                "model",
                e.to_string(),
                "reinstall the model with deploy/agent/install.sh, or fix model.path",
            ));
        }
    }
    checks.push(checksum_check(&config.model.path));
    checks
}

/// The model against `MODEL.sha256` beside it (`sha256sum` format, written at install).
fn checksum_check(model: &Path) -> Check {
    let sums = model.with_file_name(format!(
        "{}.sha256",
        model.file_name().map_or_else(Default::default, |n| n.to_string_lossy().into_owned())
    ));
    let Ok(expected) = std::fs::read_to_string(&sums) else {
        return Check::bad(
            Outcome::Warn,
            "model sha256",
            format!("no {} to check against", sums.display()),
            "deploy/agent/install.sh writes it beside the model",
        );
    };
    let expected = expected.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
    match std::fs::read(model) {
        Ok(bytes) => {
            let actual: String = xueliang_proto::signing::sha256(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if actual == expected {
                Check::ok("model sha256", format!("{}… matches", &actual[..16]))
            } else {
                Check::bad(
                    Outcome::Fail,
                    "model sha256",
                    format!(
                        "{}… but {} says {}…",
                        &actual[..16],
                        sums.display(),
                        expected.get(..16).unwrap_or(&expected)
                    ),
                    "the model file is damaged or not the installed one: reinstall it",
                )
            }
        }
        Err(e) => Check::bad(
            Outcome::Fail,
            "model sha256",
            format!("{}: {e}", model.display()),
            "reinstall the model",
        ),
    }
}

/// Every element the pipelines use is registered.
fn plugin_check() -> Check {
    if let Err(e) = gst::init() {
        return Check::bad(
            Outcome::Fail,
            "gstreamer",
            e.to_string(),
            "apt install gstreamer1.0-tools gstreamer1.0-plugins-base",
        );
    }
    let missing: Vec<(&str, &str)> =
        ELEMENTS.iter().copied().filter(|(e, _)| gst::ElementFactory::find(e).is_none()).collect();
    if missing.is_empty() {
        return Check::ok(
            "gstreamer",
            format!("{}, all {} elements present", gst::version_string(), ELEMENTS.len()),
        );
    }
    let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    packages.dedup();
    Check::bad(
        Outcome::Fail,
        "gstreamer",
        format!(
            "missing elements: {}",
            missing.iter().map(|(e, _)| *e).collect::<Vec<_>>().join(", ")
        ),
        format!("apt install {}", packages.join(" ")),
    )
}

/// Logs in to the broker with this box's password (as its doctor's login and client id, so a
/// running agent is not thrown off).
async fn broker_check(config: &AgentConfig) -> Check {
    let name = "broker";
    let url = config.mqtt.url.clone();
    let opts = match mqtt_options(&config.mqtt, &config.agent_id, true) {
        Ok(o) => o,
        Err(e) => {
            return Check::bad(
                Outcome::Fail,
                name,
                e,
                "fix [mqtt] in the config (`xl-agent check-config`)",
            );
        }
    };
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 8);
    let login = async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => return Ok(ack.code),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(15), login).await;
    let _ = client.disconnect().await;
    let who = if config.mqtt.password.is_some() {
        "with this box's password"
    } else {
        "without a password"
    };
    match result {
        Ok(Ok(rumqttc::ConnectReturnCode::Success)) => {
            Check::ok(name, format!("{url}: logged in {who}"))
        }
        Ok(Ok(code)) => Check::bad(
            Outcome::Fail,
            name,
            format!("{url}: login refused ({code:?})"),
            "the broker password is wrong or unknown there: enrol again, or fix mqtt.password",
        ),
        Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => Check::bad(
            Outcome::Fail,
            name,
            format!("{url}: login refused ({code:?})"),
            "the broker password is wrong or unknown there: enrol again, or fix mqtt.password",
        ),
        Ok(Err(rumqttc::ConnectionError::Io(e)))
            if e.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            Check::bad(
                Outcome::Fail,
                name,
                format!("{url}: connection refused"),
                "nothing listens there: check mqtt.url and that the center (or its broker) runs",
            )
        }
        Ok(Err(e)) if config.mqtt.password.is_some() && is_closed(&e) => Check::bad(
            Outcome::Fail,
            name,
            format!("{url}: the broker closed the connection at login ({e})"),
            "the embedded broker closes it on a wrong password: enrol again, or fix mqtt.password",
        ),
        Ok(Err(e)) => Check::bad(
            Outcome::Fail,
            name,
            format!("{url}: {e}"),
            "check mqtt.url, the network to the county, and TLS settings",
        ),
        Err(_) => Check::bad(
            Outcome::Fail,
            name,
            format!("{url}: no answer in 15 s"),
            "a firewall may drop the traffic: check the route to the county network",
        ),
    }
}

/// Whether the broker hung up (what rumqttd does to a wrong password).
fn is_closed(e: &rumqttc::ConnectionError) -> bool {
    match e {
        rumqttc::ConnectionError::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
        ),
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
        ),
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted) => true,
        _ => false,
    }
}

/// The box's clock against the center's (its HTTP `Date`): schedules and alarm times depend on it.
async fn clock_check(config: &AgentConfig) -> Check {
    let name = "clock";
    let Some(center) = &config.center_url else {
        return Check::bad(
            Outcome::Warn,
            name,
            "not compared: no center_url in the config",
            "`xl-agent enroll` writes it; or add center_url = \"http://…\"",
        );
    };
    let url = format!("{}/healthz", center.trim_end_matches('/'));
    let sent = std::time::SystemTime::now();
    // The county CA signs the center's HTTPS certificate as it does the broker's.
    let client = match crate::tools::enroll::county_client(config.mqtt.tls_ca.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            return Check::bad(Outcome::Fail, name, format!("mqtt.tls_ca: {e}"), "fix mqtt.tls_ca");
        }
    };
    let response = client.get(&url).timeout(Duration::from_secs(10)).send().await;
    let received = std::time::SystemTime::now();
    let date = match &response {
        Ok(r) => {
            r.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok()).and_then(httpdate)
        }
        Err(e) => {
            return Check::bad(
                Outcome::Fail,
                name,
                format!("cannot reach {url}: {}", crate::tools::enroll::error_chain(e)),
                "check center_url and the network to the county",
            );
        }
    };
    let Some(center_time) = date else {
        return Check::bad(
            Outcome::Warn,
            name,
            format!("{url} sent no Date header"),
            "is center_url the county center?",
        );
    };
    // The center's second is somewhere in the round trip: compare with its middle.
    let round_trip = received.duration_since(sent).unwrap_or_default();
    let local = sent + round_trip / 2;
    let skew = match local.duration_since(center_time) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    };
    // The Date header has whole seconds.
    if skew.abs() <= 2.0 {
        Check::ok(name, format!("within {:.0} s of the center's", skew.abs().ceil()))
    } else {
        Check::bad(
            Outcome::Fail,
            name,
            format!("{skew:+.0} s against the center's"),
            "turn on time sync: `timedatectl set-ntp true` (or chrony, pointed at the county's NTP server)",
        )
    }
}

/// An HTTP date (`Sun, 22 Nov 2026 21:30:00 GMT`).
fn httpdate(text: &str) -> Option<std::time::SystemTime> {
    let t = jiff::fmt::rfc2822::parse(text).ok()?;
    Some(
        std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp().as_second()).ok()?),
    )
}

/// Free space where the outbox lives, against its configured bound.
fn disk_check(config: &AgentConfig) -> Check {
    let name = "disk";
    let dir = &config.data_dir;
    let probe_file = dir.join(".doctor-write-test");
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&probe_file, b"ok")) {
        return Check::bad(
            Outcome::Fail,
            name,
            format!("cannot write in {}: {e}", dir.display()),
            "the service user must own the data directory (deploy/agent/install.sh sets it up)",
        );
    }
    let _ = std::fs::remove_file(&probe_file);
    let Some(free) = free_bytes(dir) else {
        return Check::bad(
            Outcome::Warn,
            name,
            format!("cannot read the free space of {}", dir.display()),
            "check the file system",
        );
    };
    let need = config.outbox.max_mib.saturating_mul(1 << 20);
    let free_mib = free >> 20;
    if free >= need {
        Check::ok(
            name,
            format!(
                "{free_mib} MiB free in {} (the outbox may use {} MiB)",
                dir.display(),
                config.outbox.max_mib
            ),
        )
    } else {
        Check::bad(
            Outcome::Warn,
            name,
            format!(
                "{free_mib} MiB free in {}, less than outbox.max_mib = {}",
                dir.display(),
                config.outbox.max_mib
            ),
            "free space, or lower outbox.max_mib: alarms beyond it are dropped (low severity first) while the link is down",
        )
    }
}

/// A warning while an outbox found corrupt lies moved aside (its alarms were never sent).
fn outbox_check(config: &AgentConfig) -> Option<Check> {
    let aside = crate::delivery::moved_aside(&config.data_dir.join("outbox"));
    let newest = aside.last()?;
    Some(Check::bad(
        Outcome::Warn,
        "outbox",
        format!(
            "{} corrupt outbox(es) moved aside, the newest {}: what waited in it was not sent",
            aside.len(),
            newest.display()
        ),
        "tell the county (the alarms in it are lost to them), then delete the folder",
    ))
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}
