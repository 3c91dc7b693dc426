//! The agent's TOML configuration: parsing, defaults and validation before the first frame.
//!
//! Every problem is reported at start-up with the option it concerns, never at the first event.
//! Syntax and type errors carry the file's line and column (from the TOML parser).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use xueliang_proto::endpoint::BrokerUrl;
use xueliang_proto::signing::VerifyingKey;
use xueliang_proto::tls::TlsFiles;
use xueliang_proto::topics::{is_valid_agent_id, is_valid_id};

use crate::geometry::Polygon;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema.
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// The values are inconsistent or out of range.
    #[error("config {path}: {}", problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
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
    /// Rules that turn detections in zones into alarms.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Evidence pictures.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Bounds of the outbox of alarms awaiting the center's receipt.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// The directory of the local config file: relative paths, pushed ones too, start here.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// What the center may push (see [`AgentConfig::with_pushed`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushedConfig {
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    data_dir: Option<toml::Value>,
    #[serde(default)]
    mqtt: Option<toml::Value>,
    #[serde(default)]
    model: Option<ModelConfig>,
    #[serde(default)]
    cameras: Vec<CameraConfig>,
    #[serde(default)]
    zones: Vec<ZoneConfig>,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    snapshot: Option<SnapshotConfig>,
    #[serde(default)]
    outbox: Option<OutboxConfig>,
}

/// Bounds of the outbox. When full, it gives up low-severity snapshots first, then
/// low-severity alarms, then other snapshots, and high-severity alarms last; every drop is
/// logged and counted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Largest size of the waiting alarms, MiB.
    #[serde(default = "default_outbox_mib")]
    pub max_mib: u64,
    /// Alarms older than this many days are dropped unsent.
    #[serde(default = "default_outbox_days")]
    pub max_age_days: f32,
}

fn default_outbox_mib() -> u64 {
    512
}
fn default_outbox_days() -> f32 {
    7.0
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self { max_mib: default_outbox_mib(), max_age_days: default_outbox_days() }
    }
}

impl OutboxConfig {
    /// The limits in the outbox's units.
    pub fn limits(&self) -> crate::outbox::Limits {
        crate::outbox::Limits {
            max_bytes: self.max_mib.saturating_mul(1 << 20),
            max_age_ms: (self.max_age_days as f64 * 86_400_000.0) as i64,
        }
    }
}

/// How the agent reaches the MQTT broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port`, or `mqtts://host:port` over TLS.
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// With `mqtts://`: the CA certificate (PEM) that signed the broker's certificate.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// With `mqtts://`, for a broker that requires client certificates: this box's (PEM).
    #[serde(default)]
    pub tls_client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_client_key: Option<PathBuf>,
    /// Username (the agent id when empty and a password is set).
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// Topic prefix.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Keep-alive interval in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Seconds between two Health reports.
    #[serde(default = "default_health_interval")]
    pub health_interval_s: u64,
    /// Ask the broker to keep this agent's session across disconnects, so receipts sent while
    /// the link was down are not missed and the alarms they name are not sent again. Worth it
    /// with Mosquitto or EMQX on a weak link; leave it off with the center's embedded broker
    /// (rumqttd 0.20), which does not answer a resumed session's subscriptions. Nothing is lost
    /// either way: an alarm without a receipt is published again and the center stores it once.
    #[serde(default)]
    pub persistent_session: bool,
    /// The center's public key (`xl-center` prints it at start). With it, receipts and pushed
    /// configs must carry the center's signature; without it, receipts are trusted as they come
    /// and pushed configs are refused.
    #[serde(default)]
    pub center_key: Option<String>,
}

fn default_health_interval() -> u64 {
    30
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/xueliang")
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}
fn default_prefix() -> String {
    xueliang_proto::topics::DEFAULT_PREFIX.into()
}
fn default_keep_alive() -> u64 {
    30
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: default_mqtt_url(),
            tls_ca: None,
            tls_client_cert: None,
            tls_client_key: None,
            username: None,
            password: None,
            topic_prefix: default_prefix(),
            keep_alive_s: default_keep_alive(),
            health_interval_s: default_health_interval(),
            persistent_session: false,
            center_key: None,
        }
    }
}

impl MqttConfig {
    /// The broker `url` names.
    pub fn broker(&self) -> Result<BrokerUrl, String> {
        xueliang_proto::endpoint::parse_mqtt_url(&self.url).map_err(|e| format!("mqtt.url: {e}"))
    }

    /// The center's key, if set (`Err` says why it is not a key).
    pub fn center_key(&self) -> Result<Option<VerifyingKey>, String> {
        self.center_key
            .as_deref()
            .map(str::parse::<VerifyingKey>)
            .transpose()
            .map_err(|e| format!("mqtt.center_key: {e}"))
    }

    /// The TLS files, when `url` is `mqtts://`.
    pub fn tls(&self) -> Result<Option<TlsFiles>, String> {
        let tls = self.broker()?.tls;
        let client = match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => return Err("mqtt.tls_client_cert and mqtt.tls_client_key go together: set both or neither".into()),
        };
        match (&self.tls_ca, tls) {
            (Some(ca), true) => Ok(Some(TlsFiles { ca: ca.clone(), client })),
            (None, true) => Err("mqtt.url is mqtts://: set mqtt.tls_ca to the CA certificate that signed the broker's".into()),
            (None, false) if client.is_none() => Ok(None),
            _ => Err("mqtt.tls_* are set but mqtt.url is mqtt://: use mqtts:// for TLS".into()),
        }
    }

    /// Makes relative paths relative to `base`.
    fn resolve(&mut self, base: &Path) {
        for p in [&mut self.tls_ca, &mut self.tls_client_cert, &mut self.tls_client_key] {
            *p = p.take().map(|p| base.join(p));
        }
    }
}

/// The detector model and how to run it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Path of the `.onnx` file.
    pub path: PathBuf,
    /// Its model card (head, preprocessing, classes); defaults to `NAME.card.toml` beside it.
    #[serde(default)]
    pub card: Option<PathBuf>,
    /// ONNX Runtime intra-op threads; by default one per core but one, which is left to video
    /// decoding (1 on a 2-core box).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// The ONNX Runtime library; defaults to `$ORT_DYLIB_PATH`, then the installed location.
    #[serde(default)]
    pub onnxruntime: Option<PathBuf>,
}


fn default_threads() -> usize {
    crate::detector::default_threads()
}

impl ModelConfig {
    /// Makes relative paths relative to `base`.
    fn resolve(&mut self, base: &Path) {
        self.path = base.join(&self.path);
        self.onnxruntime = self.onnxruntime.take().map(|p| base.join(p));
        self.card = self.card.take().map(|p| base.join(p));
    }
}

/// How RTSP data travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// UDP first, then TCP (rtspsrc's default).
    #[default]
    Auto,
    /// Interleaved in the RTSP TCP connection (for NAT and lossy links).
    Tcp,
    /// RTP over UDP.
    Udp,
}

/// One camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Camera id: one MQTT topic level.
    pub id: String,
    /// `rtsp://…` (or `file://…` to replay a recording at its own pace).
    pub url: String,
    /// RTSP transport.
    #[serde(default)]
    pub transport: Transport,
    /// Detections per second on this camera.
    #[serde(default = "default_detect_fps")]
    pub detect_fps: f32,
    /// Seconds without a frame before the camera counts as lost.
    #[serde(default = "default_frame_timeout")]
    pub frame_timeout_s: f32,
    /// The motion gate: still scenes are not inferred again.
    #[serde(default)]
    pub motion: MotionConfig,
    /// Decode keyframes only (one frame per group of pictures, a small fraction of the CPU), for
    /// very weak boxes; `frame_timeout_s` must exceed the camera's keyframe interval.
    #[serde(default)]
    pub keyframes_only: bool,
    /// Decoder threads (0: one per core). One suits a box with several cameras: they decode in
    /// parallel anyway, and every extra thread holds frames in memory.
    #[serde(default = "default_decode_threads")]
    pub decode_threads: u32,
}

fn default_decode_threads() -> u32 {
    1
}

/// Motion gate settings of one camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Whether frames of a still scene skip inference.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mean luma change (0..255) of a grid cell that counts as a change.
    #[serde(default = "default_cell_delta")]
    pub cell_delta: u8,
    /// Fraction (0..1) of the unmasked grid cells that must change to infer a frame.
    #[serde(default = "default_min_changed")]
    pub min_changed: f32,
    /// Infer at least every this many seconds, even in a still scene.
    #[serde(default = "default_refresh")]
    pub refresh_s: f32,
    /// Polygons (normalized) whose changes the gate ignores: trees, water, a busy road.
    #[serde(default)]
    pub masks: Vec<Vec<[f32; 2]>>,
}

fn default_true() -> bool {
    true
}
fn default_cell_delta() -> u8 {
    10
}
fn default_min_changed() -> f32 {
    0.001
}
fn default_refresh() -> f32 {
    2.0
}

impl MotionConfig {
    /// The motion gate these settings describe, or `None` when it is disabled.
    pub fn gate(&self) -> Result<Option<crate::motion::MotionGate>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let masks = self
            .masks
            .iter()
            .map(|m| Polygon::new(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("motion mask: {e}"))?;
        Ok(Some(crate::motion::MotionGate::new(crate::motion::MotionSettings {
            cell_delta: self.cell_delta,
            min_changed: self.min_changed,
            refresh: Duration::from_secs_f32(self.refresh_s),
            masks,
        })))
    }
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cell_delta: default_cell_delta(),
            min_changed: default_min_changed(),
            refresh_s: default_refresh(),
            masks: Vec::new(),
        }
    }
}

fn default_detect_fps() -> f32 {
    5.0
}
fn default_frame_timeout() -> f32 {
    5.0
}

impl CameraConfig {
    /// A camera at `url` with every other setting at its default.
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            url: url.into(),
            transport: Transport::default(),
            detect_fps: default_detect_fps(),
            frame_timeout_s: default_frame_timeout(),
            motion: MotionConfig::default(),
            keyframes_only: false,
            decode_threads: default_decode_threads(),
        }
    }

    /// Time between two inferences on this camera.
    pub fn detect_interval(&self) -> Duration {
        Duration::from_secs_f32(1.0 / self.detect_fps)
    }
}

/// A named polygon on one camera's image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone id.
    pub id: String,
    /// The camera whose image the points refer to.
    pub camera: String,
    /// Vertices `[x, y]`, normalized: 0..1 from the image's left and top edges.
    pub points: Vec<[f32; 2]>,
}

/// The kinds of rule this agent evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKindConfig {
    /// An object of a watched class stands in the zone (its box's bottom-centre is inside).
    ZoneIntrusion,
}

/// Alarm urgency, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityConfig {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule id, reported in alarms.
    pub id: String,
    /// What the rule looks for.
    pub kind: RuleKindConfig,
    /// The zone it watches.
    pub zone: String,
    /// Classes that count (model class names).
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    /// Minimum detection score (0..1).
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Consecutive inferred frames the condition must hold before an alarm.
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
    /// Seconds after an alarm during which the rule stays quiet.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f32,
    /// Urgency of the alarm.
    #[serde(default)]
    pub severity: SeverityConfig,
}

fn default_classes() -> Vec<String> {
    vec!["person".into()]
}
fn default_min_score() -> f32 {
    0.5
}
fn default_min_frames() -> u32 {
    2
}
fn default_cooldown() -> f32 {
    30.0
}

/// Evidence pictures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// JPEG quality 1..100 of the first attempt.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Largest JPEG kept as evidence, in bytes; bigger pictures are re-encoded smaller.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// A JPEG larger than this travels after its alarm, once the alarm is receipted, so a slow
    /// link never holds an alarm back behind its picture.
    #[serde(default = "default_send_after")]
    pub send_after_bytes: usize,
}

fn default_send_after() -> usize {
    128 * 1024
}

fn default_quality() -> u8 {
    80
}
fn default_max_bytes() -> usize {
    512 * 1024
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            quality: default_quality(),
            max_bytes: default_max_bytes(),
            send_after_bytes: default_send_after(),
        }
    }
}

impl AgentConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: AgentConfig = from_toml(text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.base_dir = base.to_owned();
        config.model.resolve(base);
        config.mqtt.resolve(base);
        config.data_dir = base.join(&config.data_dir);
        config.checked(path)
    }

    /// This config with what the center pushed: the sections `text` sets (model, cameras,
    /// zones, rules, snapshot, outbox) replace the local ones. The box's identity, data
    /// directory and broker settings stay local: they hold secrets, and a wrong broker pushed
    /// would cut the box off for good. `origin` names the push in errors.
    pub fn with_pushed(&self, text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let pushed: PushedConfig = from_toml(text, origin)?;
        let mut refused = Vec::new();
        if pushed.agent_id.as_ref().is_some_and(|id| *id != self.agent_id) {
            refused.push(format!("agent_id {:?} is not this agent ({:?})", pushed.agent_id.unwrap_or_default(), self.agent_id));
        }
        for (key, set) in [("data_dir", pushed.data_dir.is_some()), ("mqtt", pushed.mqtt.is_some())] {
            if set {
                refused.push(format!("{key} is set in the box's local file only; remove it from the pushed config"));
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
        config.zones = pushed.zones;
        config.rules = pushed.rules;
        config.snapshot = pushed.snapshot.unwrap_or_default();
        config.outbox = pushed.outbox.unwrap_or_default();
        config.checked(origin)
    }

    fn checked(self, path: &Path) -> Result<Self, ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Every inconsistency in the config, each naming the option.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !is_valid_agent_id(&self.agent_id) {
            p.push(format!(
                "agent_id {:?} must be 1-64 letters, digits, '-' or '_', and not {}",
                self.agent_id,
                xueliang_proto::topics::RESERVED_IDS.join(" or ")
            ));
        }
        if let Err(e) = self.mqtt.tls() {
            p.push(e);
        }
        if let Err(e) = self.mqtt.center_key() {
            p.push(e);
        }
        if self.outbox.max_mib == 0 {
            p.push("outbox.max_mib must be at least 1".into());
        }
        if !(self.outbox.max_age_days > 0.0) {
            p.push("outbox.max_age_days must be positive".into());
        }
        if self.model.threads == 0 {
            p.push("model.threads must be at least 1".into());
        }
        if self.cameras.is_empty() {
            p.push("no [[cameras]]: add at least one camera with an id and a url".into());
        }
        check_unique("cameras", self.cameras.iter().map(|c| c.id.as_str()), &mut p);
        for (i, c) in self.cameras.iter().enumerate() {
            if !is_valid_id(&c.id) {
                p.push(format!(
                    "cameras[{i}].id {:?} must be 1-64 letters, digits, '-' or '_'",
                    c.id
                ));
            }
            if !(c.url.starts_with("rtsp://")
                || c.url.starts_with("rtsps://")
                || c.url.starts_with("file://"))
            {
                p.push(format!(
                    "cameras[{i}].url {:?} must start with rtsp://, rtsps:// or file://",
                    c.url
                ));
            }
            if !(c.detect_fps > 0.0 && c.detect_fps <= 60.0) {
                p.push(format!("cameras[{i}].detect_fps must be in (0, 60]"));
            }
            if !(c.frame_timeout_s >= 1.0) {
                p.push(format!("cameras[{i}].frame_timeout_s must be at least 1"));
            }
            let m = &c.motion;
            if !(m.min_changed >= 0.0 && m.min_changed <= 1.0) {
                p.push(format!("cameras[{i}].motion.min_changed must be in [0, 1]"));
            }
            if !(m.refresh_s > 0.0) {
                p.push(format!("cameras[{i}].motion.refresh_s must be positive"));
            }
            for (k, mask) in m.masks.iter().enumerate() {
                if let Err(e) = Polygon::new(mask) {
                    p.push(format!("cameras[{i}].motion.masks[{k}]: {e}"));
                }
            }
        }
        check_unique("zones", self.zones.iter().map(|z| z.id.as_str()), &mut p);
        for (i, z) in self.zones.iter().enumerate() {
            if !self.cameras.iter().any(|c| c.id == z.camera) {
                p.push(format!("zones[{i}] ({}): no camera with id {:?}", z.id, z.camera));
            }
            if let Err(e) = Polygon::new(&z.points) {
                p.push(format!("zones[{i}] ({}): {e}", z.id));
            }
        }
        check_unique("rules", self.rules.iter().map(|r| r.id.as_str()), &mut p);
        for (i, r) in self.rules.iter().enumerate() {
            if !self.zones.iter().any(|z| z.id == r.zone) {
                p.push(format!("rules[{i}] ({}): no zone with id {:?}", r.id, r.zone));
            }
            if r.classes.is_empty() {
                p.push(format!("rules[{i}] ({}): classes is empty", r.id));
            }
            if !(0.0..=1.0).contains(&r.min_score) {
                p.push(format!("rules[{i}] ({}): min_score must be in 0..1", r.id));
            }
            if r.min_frames == 0 {
                p.push(format!("rules[{i}] ({}): min_frames must be at least 1", r.id));
            }
            if !(r.cooldown_s >= 0.0) {
                p.push(format!("rules[{i}] ({}): cooldown_s must not be negative", r.id));
            }
        }
        if self.snapshot.send_after_bytes < 1024 {
            p.push("snapshot.send_after_bytes must be at least 1024".into());
        }
        if !(1..=100).contains(&self.snapshot.quality) {
            p.push("snapshot.quality must be in 1..100".into());
        }
        if self.snapshot.max_bytes < 16 * 1024
            || self.snapshot.max_bytes > xueliang_proto::MAX_MESSAGE_BYTES / 2
        {
            p.push(format!(
                "snapshot.max_bytes must be between 16384 and {}",
                xueliang_proto::MAX_MESSAGE_BYTES / 2
            ));
        }
        p
    }
}

/// Parses TOML into `T`, with line and column in the error.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

fn check_unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>, problems: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            problems.push(format!("{what}: id {id:?} is used twice"));
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.mqtt.broker().unwrap(), BrokerUrl { host: "127.0.0.1".into(), port: 1883, tls: false });
        assert_eq!(c.cameras[0].detect_fps, 5.0);
        assert_eq!(c.rules[0].classes, ["person"]);
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
        let msg = AgentConfig::parse(&bad, Path::new("a.toml"))
            .expect_err("invalid")
            .to_string();
        for needle in [
            "no camera with id \"nowhere\"",
            "no zone with id \"lake\"",
            "cameras[0].url",
        ] {
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
        assert!(c.rules.is_empty() && c.zones.is_empty(), "sections the push leaves out are emptied");
        assert_eq!(c.model.path, Path::new("/etc/xl/model.onnx"), "the local model stays");
        assert_eq!(c.agent_id, "village-7");

        let with_model = format!("{pushed}[model]\npath = \"m2.onnx\"\n");
        assert_eq!(local.with_pushed(&with_model, origin).unwrap().model.path, Path::new("/etc/xl/m2.onnx"));

        let hostile = format!("agent_id = \"village-8\"\n{pushed}[mqtt]\nurl = \"mqtt://evil:1883\"\n");
        let msg = local.with_pushed(&hostile, origin).unwrap_err().to_string();
        assert_eq!(
            msg,
            "config pushed config v2: agent_id \"village-8\" is not this agent (\"village-7\"); \
             mqtt is set in the box's local file only; remove it from the pushed config"
        );
        let bad_rule = format!("{pushed}[[rules]]\nid = \"r\"\nkind = \"zone_intrusion\"\nzone = \"lake\"\n");
        let msg = local.with_pushed(&bad_rule, origin).unwrap_err().to_string();
        assert!(msg.contains("rules[0] (r): no zone with id \"lake\""), "{msg}");
    }

    #[test]
    fn tls_settings_must_fit_the_url() {
        let with = |mqtt: &str| AgentConfig::parse(&GOOD.replace("[model]", &format!("[mqtt]\n{mqtt}\n[model]")), Path::new("/etc/xl/a.toml"));
        let c = with("url = \"mqtts://broker.county\"\ntls_ca = \"ca.pem\"").unwrap();
        assert_eq!(c.mqtt.tls().unwrap().unwrap().ca, Path::new("/etc/xl/ca.pem"));
        assert_eq!(c.mqtt.broker().unwrap().port, 8883);
        for (mqtt, problem) in [
            ("url = \"mqtts://broker.county\"", "set mqtt.tls_ca"),
            ("tls_ca = \"ca.pem\"", "use mqtts:// for TLS"),
            ("url = \"mqtts://b\"\ntls_ca = \"ca.pem\"\ntls_client_cert = \"a.pem\"", "set both or neither"),
        ] {
            let err = with(mqtt).unwrap_err().to_string();
            assert!(err.contains(problem), "{mqtt}: {err}");
        }
    }

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../deploy/agent.example.toml");
        let c = AgentConfig::parse(text, Path::new("/etc/xueliang/agent.toml")).expect("valid");
        assert_eq!((c.cameras.len(), c.zones.len(), c.rules.len()), (2, 2, 2));
        assert_eq!(c.cameras[0].transport, Transport::Tcp);
    }
}
