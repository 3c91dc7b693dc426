//! A config pushed by the center, merged onto the box's own file: the sections it sets replace
//! the local ones; the box's identity, data directory and broker settings stay local.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::camera::CameraConfig;
use super::clips::ClipsConfig;
use super::model::{ModelConfig, Provider, default_threads};
use super::mqtt::MqttConfig;
use super::outbox::OutboxConfig;
use super::places::{LineConfig, ZoneConfig};
use super::rules::RuleConfig;
use super::snapshot::SnapshotConfig;
use super::{AgentConfig, ConfigError, Problem, default_data_dir, default_timezone, from_toml};

/// What a pushed document may hold: every section, so that the local-only ones can be named
/// in the refusal rather than reported as unknown keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushedSections {
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    data_dir: Option<toml::Value>,
    #[serde(default)]
    center_url: Option<toml::Value>,
    #[serde(default)]
    metrics_listen: Option<toml::Value>,
    #[serde(default)]
    mqtt: Option<toml::Value>,
    #[serde(default)]
    camera_logins: Option<toml::Value>,
    #[serde(default)]
    model: Option<ModelConfig>,
    #[serde(default)]
    cameras: Vec<CameraConfig>,
    #[serde(default)]
    zones: Vec<ZoneConfig>,
    #[serde(default)]
    lines: Vec<LineConfig>,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    snapshot: Option<SnapshotConfig>,
    #[serde(default)]
    outbox: Option<OutboxConfig>,
    #[serde(default)]
    clips: Option<ClipsConfig>,
}

impl AgentConfig {
    /// This config with what the center pushed: the sections `text` sets (model, cameras,
    /// zones, rules, snapshot, clips, outbox) replace the local ones. The box's identity, data
    /// directory and broker settings stay local: they hold secrets, and a wrong broker pushed
    /// would cut the box off for good. `origin` names the push in errors.
    pub fn with_pushed(&self, text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let pushed: PushedSections = from_toml(text, origin)?;
        let mut refused = Vec::new();
        if pushed.agent_id.as_ref().is_some_and(|id| *id != self.agent_id) {
            let id = pushed.agent_id.unwrap_or_default();
            refused.push(Problem::new(
                "agent_id",
                format!("{id:?} is not this agent ({:?})", self.agent_id),
            ));
        }
        for (key, set) in [
            ("data_dir", pushed.data_dir.is_some()),
            ("center_url", pushed.center_url.is_some()),
            ("metrics_listen", pushed.metrics_listen.is_some()),
            ("mqtt", pushed.mqtt.is_some()),
            ("camera_logins", pushed.camera_logins.is_some()),
        ] {
            if set {
                refused.push(Problem::new(
                    key,
                    "is set in the box's local file only; remove it from the pushed config",
                ));
            }
        }
        if !refused.is_empty() {
            return Err(ConfigError::Invalid { path: origin.to_owned(), problems: refused });
        }
        let mut config = self.clone();
        if let Some(mut model) = pushed.model {
            model.resolve(&self.base_dir);
            config.model = model;
        }
        config.cameras = pushed.cameras;
        config.log_in_cameras();
        config.zones = pushed.zones;
        config.lines = pushed.lines;
        config.rules = pushed.rules;
        config.timezone = pushed.timezone.unwrap_or_else(default_timezone);
        config.snapshot = pushed.snapshot.unwrap_or_default();
        config.outbox = pushed.outbox.unwrap_or_default();
        config.clips = pushed.clips.unwrap_or_default();
        config.checked(origin)
    }

    /// `text` checked as box `agent_id` checks it when pushed, by one who has not the box's own
    /// file (the center): merged onto a box whose file sets nothing but its id and a model, so
    /// every problem found is the push's own, with the box's messages. What only the box can
    /// tell (its model's classes, its camera logins) is left to it.
    pub fn check_pushed(agent_id: &str, text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let stand_in = AgentConfig {
            agent_id: agent_id.to_owned(),
            data_dir: default_data_dir(),
            center_url: None,
            metrics_listen: None,
            mqtt: MqttConfig::default(),
            model: ModelConfig {
                path: PathBuf::from("model.onnx"),
                card: None,
                threads: default_threads(),
                onnxruntime: None,
                provider: Provider::Cpu,
                openvino_device: "CPU".into(),
            },
            cameras: Vec::new(),
            zones: Vec::new(),
            lines: Vec::new(),
            rules: Vec::new(),
            timezone: default_timezone(),
            snapshot: SnapshotConfig::default(),
            clips: ClipsConfig::default(),
            outbox: OutboxConfig::default(),
            camera_logins: BTreeMap::new(),
            base_dir: PathBuf::new(),
        };
        stand_in.with_pushed(text, origin)
    }
}
