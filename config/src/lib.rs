//! The xueliang agent's TOML configuration, one file per section with its defaults and checks
//! beside its fields: parsed and checked whole before anything starts, every problem reported
//! with the option it concerns and, placed in the text ([`Placed`]), its line and column. This
//! is what the user wrote; the agent's stages build their running state from it.
//!
//! A crate of its own, free of video and inference, so that the county center checks a config
//! it pushes with the very checks and messages of the box (`xl-agent check-config`). It also
//! holds [`geometry`], the normalized points, polygons and lines the checks and the agent's
//! stages share.

// The services never unwrap what a user or the network can influence (tests may).
#![warn(clippy::unwrap_used)]

mod camera;
mod clips;
pub mod geometry;
pub mod locate;
mod model;
mod mqtt;
mod outbox;
mod places;
mod problem;
mod pushed;
mod rules;
pub mod schedule;
mod snapshot;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use xueliang_proto::topics::is_valid_agent_id;

pub use camera::{CameraConfig, ClipStream, Decoder, DetectArea, MotionConfig, Transport};
pub use clips::ClipsConfig;
pub use locate::Placed;
pub use model::{ModelConfig, Provider, default_threads};
pub use mqtt::MqttConfig;
pub use outbox::OutboxConfig;
pub use places::{LineConfig, ZoneConfig};
pub use problem::Problem;
use problem::{check_unique, ids};
pub use rules::{DirectionConfig, Needs, RuleConfig, RuleKindConfig, SeverityConfig};
pub use snapshot::SnapshotConfig;
pub use xueliang_proto::endpoint::redact_url;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema.
    #[error("config {path}: {message}")]
    Syntax {
        /// The file concerned.
        path: PathBuf,
        /// The parser's message, with the excerpt of the file.
        message: String,
        /// Line and column (from 1) of the error, when the parser knows.
        at: Option<(usize, usize)>,
        /// The parser's message alone, without the excerpt of the file.
        short: String,
    },
    /// The values are inconsistent or out of range.
    #[error("config {path}: {}", problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file concerned.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This box's id: one MQTT topic level, e.g. `village-7`.
    pub agent_id: String,
    /// Where the agent keeps its state (the outbox of alarms awaiting the center's receipt).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The county center's HTTP address (written by `xl-agent enroll`; `doctor` checks the
    /// clock against it).
    #[serde(default)]
    pub center_url: Option<String>,
    /// Where to serve Prometheus metrics (`GET /metrics`), e.g. `127.0.0.1:9464`; off when absent.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// The broker connection.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// The detector model.
    pub model: ModelConfig,
    /// The cameras this box watches.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Polygons on camera images, in normalized coordinates.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Counting lines on camera images, in normalized coordinates.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Rules that turn tracked objects in zones, across lines, or camera tampering into alarms.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// The time zone rule schedules are written in (IANA name).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Evidence pictures.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Event clips: how much before and after, how long at most, how they travel.
    #[serde(default)]
    pub clips: ClipsConfig,
    /// Bounds of the outbox of alarms awaiting the center's receipt.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Camera id → `user:password`, added to that camera's URL when it names no user: camera
    /// passwords stay in the box's own file, out of configs the county pushes over the broker.
    #[serde(default)]
    pub camera_logins: std::collections::BTreeMap<String, String>,
    /// The directory of the local config file: relative paths, pushed ones too, start here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_timezone() -> String {
    "Asia/Shanghai".into()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/xueliang")
}

impl AgentConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_unchecked(text, path)?.checked(path)
    }

    /// Parses config text without checking its values (see [`Self::problems`]), for
    /// `check-config`, which reports every problem with its place.
    pub fn parse_unchecked(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: AgentConfig = from_toml(text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.base_dir = base.to_owned();
        config.model.resolve(base);
        config.mqtt.resolve(base);
        config.data_dir = base.join(&config.data_dir);
        config.log_in_cameras();
        Ok(config)
    }

    /// Adds each camera's login from `camera_logins` to its URLs (when a URL names no user).
    fn log_in_cameras(&mut self) {
        use xueliang_proto::endpoint::with_login;
        for camera in &mut self.cameras {
            if let Some(login) = self.camera_logins.get(&camera.id) {
                camera.detect_url = with_login(&camera.detect_url, login);
                camera.record_url = camera.record_url.as_deref().map(|url| with_login(url, login));
            }
        }
    }

    fn checked(self, path: &Path) -> Result<Self, ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid { path: path.to_owned(), problems })
        }
    }

    /// Every inconsistency in the config, each naming its option.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if !is_valid_agent_id(&self.agent_id) {
            p.push(Problem::new(
                "agent_id",
                format!(
                    "{:?} must be 1-64 letters, digits, '-' or '_', and not {}",
                    self.agent_id,
                    xueliang_proto::topics::RESERVED_IDS.join(" or ")
                ),
            ));
        }
        self.mqtt.problems(&mut p);
        for (camera, login) in &self.camera_logins {
            if !login.contains(':') {
                p.push(Problem::new(
                    format!("camera_logins.{camera}"),
                    "must be \"user:password\"",
                ));
            }
        }
        if let Some(url) = &self.center_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            p.push(
                Problem::new("center_url", format!("{url:?} must start with http:// or https://"))
                    .hint("the center's console address, e.g. \"http://10.20.0.2:8080\""),
            );
        }
        if let Some(listen) = &self.metrics_listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            p.push(
                Problem::new("metrics_listen", format!("{listen:?} is not an address and port"))
                    .hint(
                        "e.g. \"127.0.0.1:9464\", or \"0.0.0.0:9464\" for the county's Prometheus",
                    ),
            );
        }
        if let Err(e) = schedule::time_zone(&self.timezone) {
            p.push(Problem::new("timezone", e).hint("all of China is \"Asia/Shanghai\""));
        }
        self.outbox.problems(&mut p);
        self.model.problems(&mut p);
        check_unique("cameras", self.cameras.iter().map(|c| c.id.as_str()), &mut p);
        for (i, c) in self.cameras.iter().enumerate() {
            c.problems(i, &mut p);
        }
        let camera_ids = ids(self.cameras.iter().map(|c| c.id.as_str()));
        let check_camera = |at: String, camera: &str, p: &mut Vec<Problem>| {
            if !camera_ids.contains(&camera) {
                p.push(
                    Problem::new(at, format!("no camera with id {camera:?}"))
                        .hint(format!("cameras: {}", camera_ids.join(", "))),
                );
            }
        };
        places::problems(&self.zones, &self.lines, check_camera, &mut p);
        check_unique("rules", self.rules.iter().map(|r| r.id.as_str()), &mut p);
        for (i, r) in self.rules.iter().enumerate() {
            r.problems(i, self, &mut p);
        }
        self.snapshot.problems(&mut p);
        self.clips.problems(&mut p);
        p
    }
}

/// Parses TOML into `T`, with line and column in the error.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
        at: e.span().map(|s| locate::line_col(text, s.start)),
        short: e.message().trim_end().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use xueliang_proto::endpoint::BrokerUrl;

    use super::*;

    const GOOD: &str = r#"
agent_id = "village-7"
[model]
path = "model.onnx"
[[cameras]]
id = "gate"
url = "rtsp://10.0.0.5/stream1"
[[zones]]
id = "walkway"
camera = "gate"
points = [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]
[[rules]]
id = "walkway-intrusion"
kind = "zone_intrusion"
zone = "walkway"
"#;

    #[test]
    fn a_minimal_config_gets_sensible_defaults() {
        let c = AgentConfig::parse(GOOD, Path::new("/etc/xl/agent.toml")).expect("valid");
        assert_eq!(c.model.path, Path::new("/etc/xl/model.onnx"));
        assert_eq!(
            c.mqtt.broker().unwrap(),
            BrokerUrl { host: "127.0.0.1".into(), port: 1883, tls: false }
        );
        assert_eq!(c.cameras[0].detect_fps, 5.0);
        assert_eq!(c.rules[0].class_names(), ["person"]);
        assert_eq!(c.rules[0].min_score, 0.5);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = AgentConfig::parse("agent_id = \"a\"\n[model\n", Path::new("a.toml"))
            .expect_err("broken");
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        let err = AgentConfig::parse(&format!("{GOOD}\nbogus = 1\n"), Path::new("a.toml"))
            .expect_err("unknown key");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn inconsistencies_are_all_reported_with_their_option() {
        let bad = GOOD
            .replace("camera = \"gate\"", "camera = \"nowhere\"")
            .replace("zone = \"walkway\"", "zone = \"lake\"")
            .replace("rtsp://10.0.0.5/stream1", "http://x");
        let msg = AgentConfig::parse(&bad, Path::new("a.toml")).expect_err("invalid").to_string();
        for needle in
            ["no camera with id \"nowhere\"", "no zone with id \"lake\"", "cameras[0].detect_url"]
        {
            assert!(msg.contains(needle), "{needle} missing in {msg}");
        }
    }

    #[test]
    fn a_push_replaces_cameras_and_rules_but_never_the_broker_or_identity() {
        let local = AgentConfig::parse(GOOD, Path::new("/etc/xl/agent.toml")).unwrap();
        let origin = Path::new("pushed config v2");
        let pushed = r#"
[[cameras]]
id = "pond"
url = "rtsp://10.0.0.6/stream1"
"#;
        let c = local.with_pushed(pushed, origin).expect("valid push");
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(c.cameras[0].id, "pond");
        assert!(
            c.rules.is_empty() && c.zones.is_empty(),
            "sections the push leaves out are emptied"
        );
        assert_eq!(c.model.path, Path::new("/etc/xl/model.onnx"), "the local model stays");
        assert_eq!(c.agent_id, "village-7");

        let with_model = format!("{pushed}[model]\npath = \"m2.onnx\"\n");
        assert_eq!(
            local.with_pushed(&with_model, origin).unwrap().model.path,
            Path::new("/etc/xl/m2.onnx")
        );

        let hostile =
            format!("agent_id = \"village-8\"\n{pushed}[mqtt]\nurl = \"mqtt://evil:1883\"\n");
        let msg = local.with_pushed(&hostile, origin).unwrap_err().to_string();
        assert_eq!(
            msg,
            "config pushed config v2: agent_id: \"village-8\" is not this agent (\"village-7\"); \
             mqtt: is set in the box's local file only; remove it from the pushed config"
        );
        let bad_rule =
            format!("{pushed}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"lake\"\n");
        let msg = local.with_pushed(&bad_rule, origin).unwrap_err().to_string();
        assert!(msg.contains("rules[0].zone: no zone with id \"lake\""), "{msg}");
    }

    #[test]
    fn the_center_checks_a_push_as_the_box_would_with_places() {
        let origin = Path::new("village-7.toml");
        let ok = "[[cameras]]\nid = \"pond\"\nurl = \"rtsp://10.0.0.6/stream1\"\n";
        let c = AgentConfig::check_pushed("village-7", ok, origin).expect("valid push");
        assert_eq!((c.agent_id.as_str(), c.cameras.len()), ("village-7", 1));

        let bad =
            format!("{ok}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"lake\"\n");
        let err = AgentConfig::check_pushed("village-7", &bad, origin).unwrap_err();
        let local = AgentConfig::parse(GOOD, Path::new("/etc/xl/agent.toml")).unwrap();
        let on_box = local.with_pushed(&bad, origin).unwrap_err();
        assert_eq!(err.to_string(), on_box.to_string(), "the box's own message");
        let report: Vec<String> =
            err.placed(&bad).iter().map(|p| p.report(origin.display())).collect();
        assert_eq!(
            report,
            ["village-7.toml:7:8: rules[0].zone: no zone with id \"lake\"\n    hint: zones: "]
        );

        let broken = "[[cameras]\nid = 1\n";
        let err = AgentConfig::check_pushed("village-7", broken, origin).unwrap_err();
        let placed = err.placed(broken);
        assert_eq!(
            placed[0].report("v.toml"),
            "v.toml:1:11: unclosed array table, expected `]`",
            "{placed:?}"
        );

        let foreign = "agent_id = \"village-8\"\n";
        let err = AgentConfig::check_pushed("village-7", foreign, origin).unwrap_err();
        assert_eq!(
            err.placed(foreign)[0].report("v.toml"),
            "v.toml:1:12: agent_id: \"village-8\" is not this agent (\"village-7\")"
        );
    }

    #[test]
    fn camera_passwords_come_from_the_box_not_from_a_push() {
        let local = format!("{GOOD}\n[camera_logins]\npond = \"admin:s3cret\"\n");
        let local = AgentConfig::parse(&local, Path::new("/etc/xl/agent.toml")).unwrap();
        let origin = Path::new("pushed config v3");
        let pushed = "[[cameras]]\nid = \"pond\"\nurl = \"rtsp://10.0.0.6/stream1\"\n";
        let c = local.with_pushed(pushed, origin).expect("valid push");
        assert_eq!(c.cameras[0].detect_url, "rtsp://admin:s3cret@10.0.0.6/stream1");
        let smuggled = format!("{pushed}[camera_logins]\npond = \"x:y\"\n");
        let msg = local.with_pushed(&smuggled, origin).unwrap_err().to_string();
        assert!(msg.contains("camera_logins: is set in the box's local file only"), "{msg}");
        let bad = format!("{GOOD}\n[camera_logins]\ngate = \"no-colon\"\n");
        let msg = AgentConfig::parse(&bad, Path::new("a.toml")).unwrap_err().to_string();
        assert!(msg.contains("camera_logins.gate: must be \"user:password\""), "{msg}");
    }

    #[test]
    fn tls_settings_must_fit_the_url() {
        let with = |mqtt: &str| {
            AgentConfig::parse(
                &GOOD.replace("[model]", &format!("[mqtt]\n{mqtt}\n[model]")),
                Path::new("/etc/xl/a.toml"),
            )
        };
        let c = with("url = \"mqtts://broker.county\"\ntls_ca = \"ca.pem\"").unwrap();
        assert_eq!(c.mqtt.tls().unwrap().unwrap().ca, Path::new("/etc/xl/ca.pem"));
        assert_eq!(c.mqtt.broker().unwrap().port, 8883);
        for (mqtt, problem) in [
            ("url = \"mqtts://broker.county\"", "set mqtt.tls_ca"),
            ("tls_ca = \"ca.pem\"", "use mqtts:// for TLS"),
            (
                "url = \"mqtts://b\"\ntls_ca = \"ca.pem\"\ntls_client_cert = \"a.pem\"",
                "set both or neither",
            ),
        ] {
            let err = with(mqtt).unwrap_err().to_string();
            assert!(err.contains(problem), "{mqtt}: {err}");
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../deploy/agent.example.toml");
        let c = AgentConfig::parse(text, Path::new("/etc/xueliang/agent.toml")).expect("valid");
        assert_eq!((c.cameras.len(), c.zones.len(), c.lines.len(), c.rules.len()), (2, 2, 1, 6));
        assert_eq!(c.cameras[0].transport, Transport::Tcp);
    }
}
