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

use crate::geometry::{Line, Polygon};
use crate::model_card::ModelCard;
use crate::schedule::{Schedule, ScheduleConfig};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// The TOML does not parse or does not match the schema.
    #[error("config {path}: {message}")]
    Syntax {
        path: PathBuf,
        message: String,
        /// Line and column (from 1) of the error, when the parser knows.
        at: Option<(usize, usize)>,
        /// The parser's message alone, without the excerpt of the file.
        short: String,
    },
    /// The values are inconsistent or out of range.
    #[error("config {path}: {}", problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// One problem in a config: the option it concerns, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The option's key path, e.g. `rules[2].zone` (`crate::config_locate` finds its line).
    pub at: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when that is not obvious from the message.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem at `at`.
    pub fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        Self { at: at.into(), message: message.into(), hint: None }
    }

    /// The same problem with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
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
    center_url: Option<toml::Value>,
    #[serde(default)]
    metrics_listen: Option<toml::Value>,
    #[serde(default)]
    mqtt: Option<toml::Value>,
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

fn default_timezone() -> String {
    "Asia/Shanghai".into()
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
        let client =
            match (&self.tls_client_cert, &self.tls_client_key) {
                (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                (None, None) => None,
                _ => return Err(
                    "mqtt.tls_client_cert and mqtt.tls_client_key go together: set both or neither"
                        .into(),
                ),
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
    /// Polygons (normalized) that must never be seen: windows and yards of homes. They are
    /// blacked out of every picture before it is encoded, and detections inside are dropped.
    #[serde(default)]
    pub privacy_masks: Vec<Vec<[f32; 2]>>,
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
            privacy_masks: Vec::new(),
        }
    }

    /// Time between two inferences on this camera.
    pub fn detect_interval(&self) -> Duration {
        Duration::from_secs_f32(1.0 / self.detect_fps)
    }
}

/// `url` with the password of its user part hidden (`rtsp://admin:***@host/…`): camera URLs
/// go into logs and printed reports, their passwords must not.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}:***@{host}{}", &rest[host_start..])
        }
        None => url.to_owned(),
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

/// A counting line on one camera's image.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Line id.
    pub id: String,
    /// The camera whose image the points refer to.
    pub camera: String,
    /// Its two ends `[x, y]`, normalized. Side A is on the left of someone walking from the
    /// first point to the second, reading the picture as a map (top = north).
    pub points: Vec<[f32; 2]>,
}

/// The kinds of rule this agent evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKindConfig {
    /// A tracked object stands in the zone (its box's bottom-centre is inside).
    ZoneIntrusion,
    /// A tracked object crosses the line in the watched direction.
    LineCrossing,
    /// A tracked object stays in the zone longer than `dwell_s`.
    Loitering,
    /// At least `min_count` objects are in the zone for `dwell_s`.
    Crowding,
    /// A vehicle stands still in the zone longer than `dwell_s`.
    VehicleStopped,
    /// Fire or smoke, with a model whose card has such classes.
    FireSmoke,
    /// The camera is covered, blurred or sprayed, or turned away.
    CameraTamper,
}

impl RuleKindConfig {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::ZoneIntrusion => "zone_intrusion",
            Self::LineCrossing => "line_crossing",
            Self::Loitering => "loitering",
            Self::Crowding => "crowding",
            Self::VehicleStopped => "vehicle_stopped",
            Self::FireSmoke => "fire_smoke",
            Self::CameraTamper => "camera_tamper",
        }
    }

    /// What the rule is drawn on: a zone, a line, or the whole camera.
    pub fn needs(self) -> Needs {
        match self {
            Self::LineCrossing => Needs::Line,
            Self::CameraTamper => Needs::Camera,
            Self::FireSmoke => Needs::ZoneOrCamera,
            _ => Needs::Zone,
        }
    }

    /// The classes watched when the rule names none.
    fn default_classes(self) -> &'static [&'static str] {
        match self {
            Self::VehicleStopped => &["car", "truck", "bus", "motorcycle"],
            Self::FireSmoke => &["fire", "smoke"],
            Self::CameraTamper => &[],
            _ => &["person"],
        }
    }

    /// How long the condition must last when the rule does not say, seconds.
    fn default_dwell_s(self) -> f32 {
        match self {
            Self::Loitering => 60.0,
            Self::VehicleStopped => 120.0,
            Self::Crowding => 10.0,
            _ => 0.0,
        }
    }
}

/// What a rule kind is drawn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// `zone = "…"`.
    Zone,
    /// `line = "…"`.
    Line,
    /// `camera = "…"`.
    Camera,
    /// `zone = "…"`, or `camera = "…"` for the whole picture.
    ZoneOrCamera,
}

/// Which crossings of a line raise alarms (all are counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectionConfig {
    /// From side A to side B.
    AToB,
    /// From side B to side A.
    BToA,
    /// Either way.
    #[default]
    Both,
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
    /// The zone it watches (zone rules).
    #[serde(default)]
    pub zone: Option<String>,
    /// The line it watches (`line_crossing`).
    #[serde(default)]
    pub line: Option<String>,
    /// The camera it watches (`camera_tamper`, or `fire_smoke` on the whole picture).
    #[serde(default)]
    pub camera: Option<String>,
    /// Classes that count (model class names); each kind has a default.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Minimum detection score (0..1).
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Smallest box `[width, height]` that counts, as fractions of the picture.
    #[serde(default)]
    pub min_size: [f32; 2],
    /// Largest box `[width, height]` that counts, as fractions of the picture.
    #[serde(default = "default_max_size")]
    pub max_size: [f32; 2],
    /// Consecutive inferred frames the condition must hold before an alarm.
    #[serde(default = "default_min_frames")]
    pub min_frames: u32,
    /// Seconds: dwell for `loitering`, stillness for `vehicle_stopped`, duration for `crowding`.
    #[serde(default)]
    pub dwell_s: Option<f32>,
    /// Objects in the zone that make a crowd (`crowding`).
    #[serde(default = "default_min_count")]
    pub min_count: u32,
    /// Which crossings raise alarms (`line_crossing`).
    #[serde(default)]
    pub direction: DirectionConfig,
    /// Seconds after an alarm during which the same object (or, for rules about the whole
    /// zone or camera, the rule) raises no other.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f32,
    /// Urgency of the alarm.
    #[serde(default)]
    pub severity: SeverityConfig,
    /// When the rule is armed; always when absent.
    #[serde(default)]
    pub schedule: ScheduleConfig,
}

impl RuleConfig {
    /// The class names the rule watches.
    pub fn class_names(&self) -> Vec<String> {
        match &self.classes {
            Some(c) => c.clone(),
            None => self.kind.default_classes().iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Dwell, stillness or crowd duration, seconds.
    pub fn dwell_s(&self) -> f32 {
        self.dwell_s.unwrap_or(self.kind.default_dwell_s())
    }
}

fn default_min_score() -> f32 {
    0.5
}
fn default_max_size() -> [f32; 2] {
    [1.0, 1.0]
}
fn default_min_frames() -> u32 {
    2
}
fn default_min_count() -> u32 {
    5
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
        Ok(config)
    }

    /// This config with what the center pushed: the sections `text` sets (model, cameras,
    /// zones, rules, snapshot, outbox) replace the local ones. The box's identity, data
    /// directory and broker settings stay local: they hold secrets, and a wrong broker pushed
    /// would cut the box off for good. `origin` names the push in errors.
    pub fn with_pushed(&self, text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let pushed: PushedConfig = from_toml(text, origin)?;
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
        config.zones = pushed.zones;
        config.lines = pushed.lines;
        config.rules = pushed.rules;
        config.timezone = pushed.timezone.unwrap_or_else(default_timezone);
        config.snapshot = pushed.snapshot.unwrap_or_default();
        config.outbox = pushed.outbox.unwrap_or_default();
        config.checked(origin)
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
        if let Err(e) = self.mqtt.tls() {
            p.push(Problem::new("mqtt", e));
        }
        if let Err(e) = self.mqtt.center_key() {
            p.push(Problem::new("mqtt.center_key", e));
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
        if let Err(e) = crate::schedule::time_zone(&self.timezone) {
            p.push(Problem::new("timezone", e).hint("all of China is \"Asia/Shanghai\""));
        }
        if self.outbox.max_mib == 0 {
            p.push(Problem::new("outbox.max_mib", "must be at least 1"));
        }
        if !(self.outbox.max_age_days > 0.0) {
            p.push(Problem::new("outbox.max_age_days", "must be positive"));
        }
        if self.model.threads == 0 {
            p.push(Problem::new("model.threads", "must be at least 1"));
        }
        check_unique("cameras", self.cameras.iter().map(|c| c.id.as_str()), &mut p);
        for (i, c) in self.cameras.iter().enumerate() {
            let at = |key: &str| format!("cameras[{i}].{key}");
            if !is_valid_id(&c.id) {
                p.push(Problem::new(
                    at("id"),
                    format!("{:?} must be 1-64 letters, digits, '-' or '_'", c.id),
                ));
            }
            if !(c.url.starts_with("rtsp://")
                || c.url.starts_with("rtsps://")
                || c.url.starts_with("file://"))
            {
                p.push(Problem::new(
                    at("url"),
                    format!("{:?} must start with rtsp://, rtsps:// or file://", c.url),
                ));
            }
            if !(c.detect_fps > 0.0 && c.detect_fps <= 60.0) {
                p.push(Problem::new(at("detect_fps"), "must be in (0, 60]"));
            }
            if !(c.frame_timeout_s >= 1.0) {
                p.push(Problem::new(at("frame_timeout_s"), "must be at least 1"));
            }
            let m = &c.motion;
            if !(m.min_changed >= 0.0 && m.min_changed <= 1.0) {
                p.push(Problem::new(at("motion.min_changed"), "must be in [0, 1]"));
            }
            if !(m.refresh_s > 0.0) {
                p.push(Problem::new(at("motion.refresh_s"), "must be positive"));
            }
            for (k, mask) in m.masks.iter().enumerate() {
                check_polygon(&at(&format!("motion.masks[{k}]")), mask, &mut p);
            }
            for (k, mask) in c.privacy_masks.iter().enumerate() {
                check_polygon(&at(&format!("privacy_masks[{k}]")), mask, &mut p);
            }
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
        check_unique("zones", self.zones.iter().map(|z| z.id.as_str()), &mut p);
        for (i, z) in self.zones.iter().enumerate() {
            check_camera(format!("zones[{i}].camera"), &z.camera, &mut p);
            check_polygon(&format!("zones[{i}].points"), &z.points, &mut p);
        }
        check_unique("lines", self.lines.iter().map(|l| l.id.as_str()), &mut p);
        for (i, l) in self.lines.iter().enumerate() {
            check_camera(format!("lines[{i}].camera"), &l.camera, &mut p);
            if let Err(e) = Line::new(&l.points) {
                p.push(Problem::new(format!("lines[{i}].points"), e));
            }
        }
        check_unique("rules", self.rules.iter().map(|r| r.id.as_str()), &mut p);
        for (i, r) in self.rules.iter().enumerate() {
            self.rule_problems(i, r, &mut p);
        }
        if self.snapshot.send_after_bytes < 1024 {
            p.push(Problem::new("snapshot.send_after_bytes", "must be at least 1024"));
        }
        if !(1..=100).contains(&self.snapshot.quality) {
            p.push(Problem::new("snapshot.quality", "must be in 1..100"));
        }
        if self.snapshot.max_bytes < 16 * 1024
            || self.snapshot.max_bytes > xueliang_proto::MAX_MESSAGE_BYTES / 2
        {
            p.push(Problem::new(
                "snapshot.max_bytes",
                format!("must be between 16384 and {}", xueliang_proto::MAX_MESSAGE_BYTES / 2),
            ));
        }
        p
    }

    fn rule_problems(&self, i: usize, r: &RuleConfig, p: &mut Vec<Problem>) {
        let at = |key: &str| format!("rules[{i}].{key}");
        let kind = r.kind.name();
        let needs = r.kind.needs();
        let zone_ok = matches!(needs, Needs::Zone | Needs::ZoneOrCamera);
        match (&r.zone, zone_ok) {
            (Some(z), true) if !self.zones.iter().any(|zone| zone.id == *z) => {
                let ids = ids(self.zones.iter().map(|z| z.id.as_str()));
                p.push(
                    Problem::new(at("zone"), format!("no zone with id {z:?}"))
                        .hint(format!("zones: {}", ids.join(", "))),
                );
            }
            (Some(_), false) => p.push(
                Problem::new(at("zone"), format!("a {kind} rule has no zone"))
                    .hint(hint_for(needs)),
            ),
            (None, true) if needs == Needs::Zone => p.push(
                Problem::new(format!("rules[{i}]"), format!("a {kind} rule needs a zone"))
                    .hint(hint_for(needs)),
            ),
            _ => {}
        }
        match (&r.line, needs == Needs::Line) {
            (Some(l), true) if !self.lines.iter().any(|line| line.id == *l) => {
                let ids = ids(self.lines.iter().map(|l| l.id.as_str()));
                p.push(
                    Problem::new(at("line"), format!("no line with id {l:?}"))
                        .hint(format!("lines: {}", ids.join(", "))),
                );
            }
            (Some(_), false) => p.push(
                Problem::new(at("line"), format!("a {kind} rule has no line"))
                    .hint(hint_for(needs)),
            ),
            (None, true) => p.push(
                Problem::new(format!("rules[{i}]"), format!("a {kind} rule needs a line"))
                    .hint(hint_for(needs)),
            ),
            _ => {}
        }
        let camera_ok = matches!(needs, Needs::Camera | Needs::ZoneOrCamera);
        match (&r.camera, camera_ok) {
            (Some(c), true) => {
                if !self.cameras.iter().any(|cam| cam.id == *c) {
                    let ids = ids(self.cameras.iter().map(|c| c.id.as_str()));
                    p.push(
                        Problem::new(at("camera"), format!("no camera with id {c:?}"))
                            .hint(format!("cameras: {}", ids.join(", "))),
                    );
                }
                if r.zone.is_some() {
                    p.push(
                        Problem::new(at("camera"), "set zone or camera, not both")
                            .hint("the zone already names its camera"),
                    );
                }
            }
            (Some(_), false) => p.push(Problem::new(
                at("camera"),
                format!(
                    "a {kind} rule takes its camera from its {}",
                    if needs == Needs::Line { "line" } else { "zone" }
                ),
            )),
            (None, true) if needs == Needs::Camera || r.zone.is_none() => p.push(
                Problem::new(format!("rules[{i}]"), format!("a {kind} rule needs a camera"))
                    .hint(hint_for(needs)),
            ),
            _ => {}
        }
        if r.classes.as_ref().is_some_and(Vec::is_empty) {
            p.push(
                Problem::new(at("classes"), "is empty")
                    .hint("leave it out for the kind's default classes"),
            );
        }
        if !(0.0..=1.0).contains(&r.min_score) {
            p.push(Problem::new(at("min_score"), "must be in 0..1"));
        }
        for (key, [w, h]) in [("min_size", r.min_size), ("max_size", r.max_size)] {
            if !((0.0..=1.0).contains(&w) && (0.0..=1.0).contains(&h)) {
                p.push(Problem::new(
                    at(key),
                    "width and height are fractions of the picture, 0..1",
                ));
            }
        }
        if r.min_size[0] > r.max_size[0] || r.min_size[1] > r.max_size[1] {
            p.push(Problem::new(at("max_size"), "is smaller than min_size: no object can match"));
        }
        if r.min_frames == 0 {
            p.push(Problem::new(at("min_frames"), "must be at least 1"));
        }
        if let Some(d) = r.dwell_s {
            if !(d >= 0.0) {
                p.push(Problem::new(at("dwell_s"), "must not be negative"));
            }
            if !matches!(
                r.kind,
                RuleKindConfig::Loitering
                    | RuleKindConfig::VehicleStopped
                    | RuleKindConfig::Crowding
            ) {
                p.push(
                    Problem::new(at("dwell_s"), format!("a {kind} rule has no dwell time"))
                        .hint("dwell_s is for loitering, vehicle_stopped and crowding"),
                );
            }
        }
        if r.kind == RuleKindConfig::Crowding && r.min_count < 2 {
            p.push(Problem::new(at("min_count"), "a crowd is at least 2 objects"));
        }
        if !(r.cooldown_s >= 0.0) {
            p.push(Problem::new(at("cooldown_s"), "must not be negative"));
        }
        if let Err(problems) = Schedule::new(&r.schedule) {
            p.extend(problems.into_iter().map(|s| Problem {
                at: at(&format!("schedule.{}", s.at)),
                message: s.message,
                hint: s.hint,
            }));
        }
    }

    /// Problems only the model can reveal: classes it does not know.
    pub fn class_problems(&self, card: &ModelCard) -> Vec<Problem> {
        let mut p = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let unknown: Vec<String> =
                r.class_names().into_iter().filter(|c| card.class_index(c).is_none()).collect();
            if unknown.is_empty() {
                continue;
            }
            let at = if r.classes.is_some() {
                format!("rules[{i}].classes")
            } else {
                format!("rules[{i}].kind")
            };
            let listed = card.classes.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
                + if card.classes.len() > 12 { ", …" } else { "" };
            let message = if r.kind == RuleKindConfig::FireSmoke && r.classes.is_none() {
                format!("model {} has no fire or smoke class", card.name)
            } else {
                format!(
                    "{} not a class of model {}",
                    unknown.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                        + if unknown.len() == 1 { " is" } else { " are" },
                    card.name
                )
            };
            let hint = if r.kind == RuleKindConfig::FireSmoke {
                "fire_smoke needs a model trained on fire and smoke (see models/README.md)"
                    .to_string()
            } else {
                format!("its classes: {listed}")
            };
            p.push(Problem::new(at, message).hint(hint));
        }
        p
    }
}

/// Parses TOML into `T`, with line and column in the error.
fn from_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
        at: e.span().map(|s| crate::config_locate::line_col(text, s.start)),
        short: e.message().trim_end().to_owned(),
    })
}

/// Ids as a hint lists them: in order, each once.
fn ids<'a>(all: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for id in all {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Duplicate ids in the `what` array, reported at the second use.
fn check_unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>, problems: &mut Vec<Problem>) {
    let mut seen = std::collections::HashMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, i) {
            problems.push(
                Problem::new(
                    format!("{what}[{i}].id"),
                    format!("{id:?} is already the id of {what}[{first}]"),
                )
                .hint("ids must be unique: rename one"),
            );
        }
    }
}

/// A polygon's points: at least 3, on the picture, edges not crossing.
fn check_polygon(at: &str, points: &[[f32; 2]], problems: &mut Vec<Problem>) {
    match Polygon::new(points) {
        Err(e) if points.iter().flatten().any(|c| *c > 1.0) => problems.push(
            Problem::new(at, e).hint("divide pixels by the picture's width and height (probe-camera prints them): x 120 of 768 is 0.156"),
        ),
        Err(e) => problems.push(Problem::new(at, e)),
        Ok(poly) => {
            if let Some((i, j)) = poly.self_intersection() {
                problems.push(
                    Problem::new(at, format!("the polygon crosses itself (edge {i} crosses edge {j})"))
                        .hint("list the points in order around the area, clockwise or anticlockwise"),
                );
            }
        }
    }
}

fn hint_for(needs: Needs) -> &'static str {
    match needs {
        Needs::Zone => "set zone = \"<id of a [[zones]] entry>\"",
        Needs::Line => "set line = \"<id of a [[lines]] entry>\"",
        Needs::Camera => "set camera = \"<id of a [[cameras]] entry>\"",
        Needs::ZoneOrCamera => {
            "set zone = \"…\" for part of the picture, or camera = \"…\" for all of it"
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
        assert_eq!(
            c.mqtt.broker().unwrap(),
            BrokerUrl { host: "127.0.0.1".into(), port: 1883, tls: false }
        );
        assert_eq!(c.cameras[0].detect_fps, 5.0);
        assert_eq!(c.rules[0].class_names(), ["person"]);
        assert_eq!(c.rules[0].min_score, 0.5);
    }

    #[test]
    fn camera_passwords_are_hidden() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@10.0.0.5:554/Streaming/101"),
            "rtsp://admin:***@10.0.0.5:554/Streaming/101"
        );
        assert_eq!(redact_url("rtsp://10.0.0.5/a@b"), "rtsp://10.0.0.5/a@b");
        assert_eq!(redact_url("file:///tmp/x.avi"), "file:///tmp/x.avi");
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
            ["no camera with id \"nowhere\"", "no zone with id \"lake\"", "cameras[0].url"]
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
