//! Configuration push: the center checks a config as the box will (the agent's own checks and
//! messages, from `xueliang-config`, at their line and column), asks for a confirmation before
//! one that would leave the box without a camera or take a privacy mask away, keeps every
//! version with who pushed it and its diff, publishes it retained and signed on
//! `{prefix}/{agent}/config` (again after every reconnect, since a broker restart may lose
//! retained messages), and records the agent's ConfigAck.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rumqttc::{AsyncClient, QoS};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use xueliang_config::geometry::{Point, Polygon};
use xueliang_config::{AgentConfig as BoxConfig, CameraConfig, ConfigError, Placed, Problem};
use xueliang_proto::endpoint::{has_password, now_ms, redact_url};
use xueliang_proto::signing::{CONFIG_SIGNATURE_FIELD, SigningKey};
use xueliang_proto::topics::{Topics, is_valid_agent_id};
use xueliang_proto::v1::agent_status;
use xueliang_proto::{AgentConfig, AgentStatus, ConfigAck, Message, SCHEMA_VERSION};

use super::status::AgentView;
use crate::store::{Store, StoreError};

/// Largest config document accepted.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// What a push may need confirmed, as written in `?confirm=` (comma-separated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confirm {
    /// The box would be left with no camera.
    NoCamera,
    /// A privacy mask would be removed or shrunk.
    RemovePrivacyMask,
}

impl Confirm {
    /// The word of `?confirm=`.
    pub fn word(self) -> &'static str {
        match self {
            Confirm::NoCamera => "no-camera",
            Confirm::RemovePrivacyMask => "remove-privacy-mask",
        }
    }

    /// The confirmations a comma-separated `?confirm=` names; `Err` names a word it does not know.
    pub fn parse_list(list: &str) -> Result<Vec<Confirm>, String> {
        let all = [Confirm::NoCamera, Confirm::RemovePrivacyMask];
        list.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|w| {
                all.into_iter().find(|c| c.word() == w).ok_or_else(|| {
                    format!("confirm={w:?} is not a confirmation: no-camera or remove-privacy-mask")
                })
            })
            .collect()
    }
}

/// How a push would change what the box has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The camera would no longer run: the config has no camera left.
    Stopped,
    /// The privacy mask would be gone.
    Removed,
    /// The privacy mask would cover less of the picture.
    Shrunk,
}

/// Something a push would take from the box that needs a confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Loss {
    /// What confirms it.
    pub confirm: Confirm,
    /// The camera concerned (none when the center knows no camera of the box).
    pub camera: Option<String>,
    /// The mask, by its place in the camera's `privacy_masks` before the push.
    pub mask: Option<usize>,
    /// What would happen to it.
    pub change: Change,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.camera, self.mask, self.change) {
            (None, _, _) => write!(f, "the box would run no camera"),
            (Some(camera), None, _) => write!(f, "camera {camera:?} would stop"),
            (Some(camera), Some(k), Change::Shrunk) => {
                write!(f, "camera {camera:?}: privacy_masks[{k}] would shrink")
            }
            (Some(camera), Some(k), _) => {
                write!(f, "camera {camera:?}: privacy_masks[{k}] would be removed")
            }
        }
    }
}

/// Why a push was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The agent id is not a valid topic level.
    #[error(
        "{0:?} is not a valid agent id (1-64 letters, digits, '-' or '_'; not center or dispatch)"
    )]
    AgentId(String),
    /// The document is over [`MAX_CONFIG_BYTES`].
    #[error("the config is {0} bytes, over the limit of {MAX_CONFIG_BYTES}")]
    TooBig(usize),
    /// The document fails the box's checks (or is empty, or carries a camera password): every
    /// problem at its line and column, as `xl-agent check-config` prints them.
    #[error("{}", problems.iter().map(|p| p.report(file)).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The name the problems give the document: `{agent}.toml`.
        file: String,
        /// Every problem, in file order.
        problems: Vec<Placed>,
    },
    /// The document would take a camera or privacy mask away, and that was not confirmed.
    #[error("{}", unconfirmed(.0))]
    Unconfirmed(Vec<Loss>),
    /// Another process serving the county stored this version for the agent meanwhile.
    #[error(
        "version {0} of this box's config was pushed at the same moment by someone else: look at its history and push again"
    )]
    Raced(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signature could not be made.
    #[error("cannot sign the config: {0}")]
    Sign(String),
    /// The broker client is gone (the center is stopping).
    #[error("cannot publish the config: {0}")]
    Publish(String),
}

/// The refusal of a push that takes `losses` away without their confirmation.
fn unconfirmed(losses: &[Loss]) -> String {
    let mut words: Vec<Confirm> = losses.iter().map(|l| l.confirm).collect();
    words.sort();
    words.dedup();
    let what = words
        .iter()
        .map(|c| match c {
            Confirm::NoCamera => "leave the box with no camera",
            Confirm::RemovePrivacyMask => "remove or shrink privacy masks",
        })
        .collect::<Vec<_>>()
        .join(" and ");
    let each = losses.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let confirm = words.iter().map(|c| c.word()).collect::<Vec<_>>().join(",");
    format!(
        "this config would {what}: {each}. If that is meant, push it again with ?confirm={confirm}"
    )
}

/// The agent's answer to a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    /// The version answered.
    pub version: u64,
    /// Whether the agent runs it.
    pub applied: bool,
    /// Why not, if it does not.
    pub reason: String,
    /// When the agent answered, UTC ms.
    pub time_ms: i64,
}

/// One agent's pushed config, as served by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// The agent.
    pub agent_id: String,
    /// Increases with every push.
    pub version: u64,
    /// The TOML document.
    pub config_toml: String,
    /// When it was pushed, UTC ms.
    pub issued_time_ms: i64,
    /// The agent's last answer (to this or an earlier version).
    pub ack: Option<AckRecord>,
}

/// One version of an agent's config, as kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// The agent.
    pub agent_id: String,
    /// The version.
    pub version: u64,
    /// The TOML document, camera passwords of versions older than their refusal shown `***`.
    pub config_toml: String,
    /// When it was pushed, UTC ms.
    pub issued_time_ms: i64,
    /// Login of who pushed it.
    pub pushed_by: String,
    /// Unified line diff against the version before (or against nothing, for the first).
    pub diff: String,
}

/// Pushes configs to agents.
#[derive(Debug, Clone)]
pub struct ConfigPush {
    configs: crate::store::Tree,
    history: crate::store::Tree,
    store: Store,
    client: AsyncClient,
    topics: Topics,
    key: Arc<SigningKey>,
    /// One push at a time: a version, its diff and its checks against the one before must see
    /// the same "before".
    pushing: Arc<Mutex<()>>,
}

fn parse(bytes: &[u8]) -> Result<ConfigRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { id: "agent config".into(), message: e.to_string() })
}

/// Key of `agent`'s `version` in the history: ids hold no `/`, so `{agent}/` is its prefix.
fn history_key(agent: &str, version: u64) -> Vec<u8> {
    let mut key = format!("{agent}/").into_bytes();
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// `toml` with the password of every URL in a string shown as `***` (versions pushed before
/// camera passwords were refused may hold one).
pub fn redacted(toml: &str) -> String {
    toml.split('"')
        .map(|part| if part.contains("://") { redact_url(part) } else { part.to_owned() })
        .collect::<Vec<_>>()
        .join("\"")
}

/// Camera URLs in `text` that carry a password, which everyone who may read the config topic
/// would see.
fn camera_passwords(text: &str) -> Vec<Problem> {
    let Ok(table) = toml::from_str::<toml::Table>(text) else { return Vec::new() };
    let cameras = table.get("cameras").and_then(toml::Value::as_array);
    let mut problems = Vec::new();
    for (i, camera) in cameras.into_iter().flatten().enumerate() {
        for key in ["url", "detect_url", "record_url"] {
            if camera.get(key).and_then(toml::Value::as_str).is_some_and(has_password) {
                problems.push(
                    Problem::new(
                        format!("cameras[{i}].{key}"),
                        "carries a camera password, which would travel over the broker",
                    )
                    .hint(
                        "push the URL without it and put `CAMERA_ID = \"user:password\"` under \
                         [camera_logins] in the box's own config file",
                    ),
                );
            }
        }
    }
    problems
}

/// `text` checked as box `agent` will check it: `Ok` with the config the box would run (as far
/// as the center can tell without the box's own file).
fn check(agent: &str, text: &str) -> Result<BoxConfig, PushError> {
    let file = format!("{agent}.toml");
    if text.trim().is_empty() {
        let hint = "a pushed config replaces the box's cameras, zones and rules: push it whole";
        let placed = Placed {
            line: 1,
            column: 1,
            message: "the config is empty".to_owned(),
            hint: Some(hint.to_owned()),
        };
        return Err(PushError::Invalid { file, problems: vec![placed] });
    }
    let mut problems = camera_passwords(text);
    let checked = BoxConfig::check_pushed(agent, text, Path::new(&file));
    let placed = match checked {
        Ok(config) if problems.is_empty() => return Ok(config),
        Ok(_) => Placed::all(text, &problems),
        Err(ConfigError::Invalid { problems: found, .. }) => {
            problems.extend(found);
            Placed::all(text, &problems)
        }
        Err(e) => e.placed(text),
    };
    Err(PushError::Invalid { file, problems: placed })
}

/// How much of a privacy mask the new ones still cover.
#[derive(Debug, PartialEq)]
enum Coverage {
    All,
    Part,
    None,
}

/// How much of `old` the polygons `new` cover, sampled on a 32×32 grid over its bounding box
/// (its vertices too, so that a sliver between grid points is not missed).
fn coverage(old: &Polygon, new: &[Polygon]) -> Coverage {
    const STEPS: usize = 32;
    let points = old.points();
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        (x0, y0, x1, y1) = (x0.min(p.x), y0.min(p.y), x1.max(p.x), y1.max(p.y));
    }
    let grid = (0..STEPS * STEPS).map(|n| Point {
        x: x0 + (x1 - x0) * ((n % STEPS) as f32 + 0.5) / STEPS as f32,
        y: y0 + (y1 - y0) * ((n / STEPS) as f32 + 0.5) / STEPS as f32,
    });
    let samples: Vec<Point> =
        grid.filter(|&p| old.contains(p)).chain(points.iter().copied()).collect();
    // A vertex lies on the old mask's edge: covered if on or inside a new one, within a hair.
    let covered = |p: &Point| {
        new.iter().any(|m| {
            m.contains(*p)
                || m.points().iter().any(|q| (q.x - p.x).abs() + (q.y - p.y).abs() < 1e-6)
        })
    };
    match samples.iter().filter(|p| covered(p)).count() {
        n if n == samples.len() => Coverage::All,
        0 => Coverage::None,
        _ => Coverage::Part,
    }
}

/// The privacy masks of `before`'s cameras that `after` removes or shrinks. A camera is matched
/// by id, or by its detection stream when renamed; one that is gone shows nothing any more.
fn mask_losses(before: &[CameraConfig], after: &[CameraConfig]) -> Vec<Loss> {
    let mut losses = Vec::new();
    for old in before.iter().filter(|c| !c.privacy_masks.is_empty()) {
        let Some(new) = after
            .iter()
            .find(|c| c.id == old.id)
            .or_else(|| after.iter().find(|c| c.detect_url == old.detect_url))
        else {
            continue;
        };
        let masks: Vec<Polygon> =
            new.privacy_masks.iter().filter_map(|m| Polygon::new(m).ok()).collect();
        for (k, mask) in old.privacy_masks.iter().enumerate() {
            let Ok(mask) = Polygon::new(mask) else { continue };
            let change = match coverage(&mask, &masks) {
                Coverage::All => continue,
                Coverage::Part => Change::Shrunk,
                Coverage::None => Change::Removed,
            };
            losses.push(Loss {
                confirm: Confirm::RemovePrivacyMask,
                camera: Some(old.id.clone()),
                mask: Some(k),
                change,
            });
        }
    }
    losses
}

impl ConfigPush {
    /// Configs kept in `store`, published through `client`, signed with `key`.
    pub fn new(
        store: &Store,
        client: AsyncClient,
        topics: Topics,
        key: Arc<SigningKey>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            configs: store.open_tree("agent_configs")?,
            history: store.open_tree("agent_config_history")?,
            store: store.clone(),
            client,
            topics,
            key,
            pushing: Arc::new(Mutex::new(())),
        })
    }

    /// Checks `config_toml` (see [`check`]) and, unless it takes a camera or privacy mask away
    /// that `confirmed` does not cover, stores it as the agent's next version, pushed by
    /// `pushed_by`, and publishes it. What it takes away is judged against the latest version
    /// and, when `reported` (the fleet's view of the box) says it runs another one the center
    /// kept, that one too; the cameras the box reports count as its cameras.
    pub async fn push(
        &self,
        agent: &str,
        config_toml: String,
        pushed_by: &str,
        confirmed: &[Confirm],
        reported: Option<&AgentView>,
    ) -> Result<(ConfigRecord, ConfigVersion), PushError> {
        if !is_valid_agent_id(agent) {
            return Err(PushError::AgentId(agent.to_owned()));
        }
        if config_toml.len() > MAX_CONFIG_BYTES {
            return Err(PushError::TooBig(config_toml.len()));
        }
        let config = check(agent, &config_toml)?;
        let (record, version) = self.store_version(agent, config_toml, pushed_by, |before| {
            let losses = self.losses(agent, before, &config, confirmed, reported)?;
            if losses.is_empty() { Ok(()) } else { Err(PushError::Unconfirmed(losses)) }
        })?;
        self.store.flush().await?;
        self.publish(&record).await?;
        info!(agent, version = record.version, pushed_by, "config pushed");
        Ok((record, version))
    }

    /// What `config` takes away, and `confirmed` does not cover, from the box's configs the
    /// center knows: `latest` and the one `reported` says it runs.
    fn losses(
        &self,
        agent: &str,
        latest: Option<&ConfigRecord>,
        config: &BoxConfig,
        confirmed: &[Confirm],
        reported: Option<&AgentView>,
    ) -> Result<Vec<Loss>, PushError> {
        let mut before: Vec<(u64, String)> =
            latest.map(|r| (r.version, r.config_toml.clone())).into_iter().collect();
        let running = reported.map_or(0, |v| v.config_version);
        if running != 0
            && latest.is_none_or(|r| r.version != running)
            && let Some(kept) = self.version(agent, running)?
        {
            before.push((kept.version, kept.config_toml));
        }
        let mut cameras: Vec<String> = Vec::new();
        let mut losses: Vec<Loss> = Vec::new();
        for (version, text) in before {
            let old = match BoxConfig::check_pushed(agent, &text, Path::new("kept")) {
                Ok(old) => old,
                Err(e) => {
                    // Pushed before the center checked configs: nothing to compare with.
                    warn!(agent, version, "the kept config does not pass the checks: {e}");
                    continue;
                }
            };
            cameras.extend(old.cameras.iter().map(|c| c.id.clone()));
            for loss in mask_losses(&old.cameras, &config.cameras) {
                if !losses.contains(&loss) {
                    losses.push(loss);
                }
            }
        }
        if config.cameras.is_empty() {
            let health = reported.and_then(|v| v.health.as_ref());
            cameras.extend(
                health.into_iter().flat_map(|h| h.cameras.iter()).map(|c| c.camera_id.clone()),
            );
            cameras.sort();
            cameras.dedup();
            let stopped = |camera| Loss {
                confirm: Confirm::NoCamera,
                camera,
                mask: None,
                change: Change::Stopped,
            };
            if cameras.is_empty() {
                losses.push(stopped(None));
            }
            losses.extend(cameras.into_iter().map(|c| stopped(Some(c))));
        }
        losses.retain(|l| !confirmed.contains(&l.confirm));
        Ok(losses)
    }

    /// Stores `config_toml` as `agent`'s next version and in its history, with its diff against
    /// the latest, once `allowed` (given the latest) says so.
    fn store_version(
        &self,
        agent: &str,
        config_toml: String,
        pushed_by: &str,
        allowed: impl FnOnce(Option<&ConfigRecord>) -> Result<(), PushError>,
    ) -> Result<(ConfigRecord, ConfigVersion), PushError> {
        let _one_at_a_time = self.pushing.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = self.get(agent)?;
        allowed(latest.as_ref())?;
        let number = latest.as_ref().map_or(1, |r| r.version + 1);
        let (before, label) = match &latest {
            Some(r) => (redacted(&r.config_toml), format!("version {}", r.version)),
            None => (String::new(), "no version".to_owned()),
        };
        let shown = redacted(&config_toml);
        let diff = similar::TextDiff::from_lines(&before, &shown)
            .unified_diff()
            .context_radius(2)
            .header(&label, &format!("version {number}"))
            .to_string();
        let record = ConfigRecord {
            agent_id: agent.to_owned(),
            version: number,
            config_toml,
            issued_time_ms: now_ms(),
            ack: None,
        };
        let version = ConfigVersion {
            agent_id: agent.to_owned(),
            version: number,
            config_toml: shown,
            issued_time_ms: record.issued_time_ms,
            pushed_by: pushed_by.to_owned(),
            diff,
        };
        let json = |v: &ConfigVersion| {
            serde_json::to_vec(v).map_err(|e| StoreError::Corrupt {
                id: "agent config version".into(),
                message: e.to_string(),
            })
        };
        // Of several processes, the one whose push takes the number first has it.
        let key = history_key(agent, number);
        if self.history.compare_and_swap(key, None::<&[u8]>, Some(json(&version)?))?.is_err() {
            return Err(PushError::Raced(number));
        }
        // The agent's last answer stays with the record (it may answer while this is stored).
        let updated = self.configs.update_and_fetch(agent.as_bytes(), |old| {
            let ack = old.and_then(|b| parse(b).ok()).and_then(|r| r.ack);
            serde_json::to_vec(&ConfigRecord { ack, ..record.clone() }).ok()
        })?;
        let record = updated.as_deref().map(parse).transpose()?.ok_or_else(|| {
            PushError::Store(StoreError::Corrupt {
                id: "agent config".into(),
                message: "not written".into(),
            })
        })?;
        Ok((record, version))
    }

    /// The signed `AgentConfig` message of `record`, as published (enrolment hands it to a new
    /// box, which keeps it as the config in force).
    pub fn signed(&self, record: &ConfigRecord) -> Result<Vec<u8>, PushError> {
        let message = AgentConfig {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: record.agent_id.clone(),
            version: record.version,
            config_toml: record.config_toml.clone(),
            issued_time_ms: record.issued_time_ms,
            signature: Default::default(),
        };
        self.key
            .sign(message.encode_to_vec(), CONFIG_SIGNATURE_FIELD, &[])
            .map_err(|e| PushError::Sign(e.to_string()))
    }

    async fn publish(&self, record: &ConfigRecord) -> Result<(), PushError> {
        let payload = self.signed(record)?;
        self.client
            .publish(self.topics.config(&record.agent_id), QoS::AtLeastOnce, true, payload)
            .await
            .map_err(|e| PushError::Publish(e.to_string()))
    }

    /// Says on removed box `agent`'s status topic what its last will would have: offline
    /// (retained). A broker closes a deleted login's connection without its will, and the
    /// retained "online" would stay, on the fleet page too, after every restart of the center.
    pub async fn retire(&self, agent: &str) -> Result<(), PushError> {
        let offline = AgentStatus {
            schema_version: SCHEMA_VERSION as i32,
            agent_id: agent.to_owned(),
            state: agent_status::State::Offline as i32,
            time_ms: now_ms(),
            ..Default::default()
        };
        self.client
            .publish(self.topics.status(agent), QoS::AtLeastOnce, true, offline.encode_to_vec())
            .await
            .map_err(|e| PushError::Publish(e.to_string()))
    }

    /// Publishes every stored config again (after a (re)connect to the broker).
    pub async fn republish_all(&self) {
        for entry in self.configs.iter().values() {
            match entry.and_then(|v| parse(&v)) {
                Ok(record) => {
                    if let Err(e) = self.publish(&record).await {
                        warn!(agent = %record.agent_id, "{e}");
                    }
                }
                Err(e) => warn!("{e}"),
            }
        }
    }

    /// The agent's current config record.
    pub fn get(&self, agent: &str) -> Result<Option<ConfigRecord>, StoreError> {
        self.configs.get(agent.as_bytes())?.as_deref().map(parse).transpose()
    }

    /// Version `version` of the agent's config, if the history keeps it.
    fn version(&self, agent: &str, version: u64) -> Result<Option<ConfigVersion>, StoreError> {
        let Some(bytes) = self.history.get(history_key(agent, version))? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            id: format!("config version {version} of {agent}"),
            message: e.to_string(),
        })
    }

    /// Every version of the agent's config pushed since the center keeps them, newest first.
    pub fn history(&self, agent: &str) -> Result<Vec<ConfigVersion>, StoreError> {
        let mut out = Vec::new();
        for entry in self.history.scan_prefix(format!("{agent}/")).values().rev() {
            let bytes = entry?;
            out.push(serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                id: format!("a config version of {agent}"),
                message: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// Records an agent's answer.
    pub fn record_ack(&self, ack: &ConfigAck) -> Result<(), StoreError> {
        let answer = AckRecord {
            version: ack.version,
            applied: ack.applied,
            reason: ack.reason.clone(),
            time_ms: ack.time_ms,
        };
        if ack.applied {
            info!(agent = %ack.agent_id, version = ack.version, "config applied by the agent");
        } else {
            warn!(agent = %ack.agent_id, version = ack.version, "config refused by the agent: {}", ack.reason);
        }
        self.configs.update_and_fetch(ack.agent_id.as_bytes(), |old| {
            let mut record = old.and_then(|b| parse(b).ok())?;
            record.ack = Some(answer.clone());
            serde_json::to_vec(&record).ok()
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(id: &str, masks: &[&[[f32; 2]]]) -> CameraConfig {
        let mut c = CameraConfig::new(id, format!("rtsp://10.0.0.5/{id}"));
        c.privacy_masks = masks.iter().map(|m| m.to_vec()).collect();
        c
    }

    const SQUARE: [[f32; 2]; 4] = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]];
    const BIGGER: [[f32; 2]; 4] = [[0.1, 0.1], [0.7, 0.1], [0.7, 0.7], [0.1, 0.7]];
    const SMALLER: [[f32; 2]; 4] = [[0.3, 0.3], [0.6, 0.3], [0.6, 0.6], [0.3, 0.6]];
    const LEFT: [[f32; 2]; 4] = [[0.2, 0.2], [0.4, 0.2], [0.4, 0.6], [0.2, 0.6]];
    const RIGHT: [[f32; 2]; 4] = [[0.4, 0.2], [0.6, 0.2], [0.6, 0.6], [0.4, 0.6]];

    #[test]
    fn a_mask_kept_grown_or_split_needs_no_confirmation_one_removed_or_shrunk_does() {
        let before = [camera("gate", &[&SQUARE]), camera("yard", &[&SQUARE])];
        let changes = |after: &[CameraConfig]| -> Vec<(Option<String>, Option<usize>, Change)> {
            mask_losses(&before, after).into_iter().map(|l| (l.camera, l.mask, l.change)).collect()
        };
        assert_eq!(changes(&before), []);
        assert_eq!(changes(&[camera("gate", &[&BIGGER]), camera("yard", &[&LEFT, &RIGHT])]), []);
        assert_eq!(
            changes(&[camera("gate", &[]), camera("yard", &[&SMALLER])]),
            [
                (Some("gate".into()), Some(0), Change::Removed),
                (Some("yard".into()), Some(0), Change::Shrunk)
            ]
        );
        let mut renamed = camera("gate-1", &[]);
        renamed.detect_url = before[0].detect_url.clone();
        assert_eq!(changes(&[renamed]), [(Some("gate".into()), Some(0), Change::Removed)]);
        assert_eq!(changes(&[]), [], "a camera no longer watched shows nothing");
    }

    #[test]
    fn confirmations_are_words_and_refusals_name_what_to_send() {
        assert_eq!(
            Confirm::parse_list("remove-privacy-mask, no-camera"),
            Ok(vec![Confirm::RemovePrivacyMask, Confirm::NoCamera])
        );
        assert_eq!(Confirm::parse_list(""), Ok(vec![]));
        assert!(Confirm::parse_list("yes").unwrap_err().contains("\"yes\""));
        let losses = [
            Loss {
                confirm: Confirm::RemovePrivacyMask,
                camera: Some("gate".into()),
                mask: Some(1),
                change: Change::Shrunk,
            },
            Loss { confirm: Confirm::NoCamera, camera: None, mask: None, change: Change::Stopped },
        ];
        assert_eq!(
            PushError::Unconfirmed(losses.to_vec()).to_string(),
            "this config would leave the box with no camera and remove or shrink privacy masks: \
             camera \"gate\": privacy_masks[1] would shrink; the box would run no camera. If that \
             is meant, push it again with ?confirm=no-camera,remove-privacy-mask"
        );
    }

    #[test]
    fn a_push_is_refused_with_the_boxs_messages_at_their_places() {
        let err = check("village-7", " \n\t").unwrap_err().to_string();
        assert!(err.starts_with("village-7.toml:1:1: the config is empty\n    hint: "), "{err}");
        let text = "[[cameras]]\nid = \"gate\"\nurl = \"rtsp://admin:s3cret@10.0.0.5/101\"\n\
                    detect_fps = 0\n";
        assert_eq!(
            check("village-7", text).unwrap_err().to_string(),
            "village-7.toml:3:7: cameras[0].url: carries a camera password, which would travel \
             over the broker\n    hint: push the URL without it and put `CAMERA_ID = \
             \"user:password\"` under [camera_logins] in the box's own config file\n\
             village-7.toml:4:14: cameras[0].detect_fps: must be in (0, 60]"
        );
        assert_eq!(
            redacted("url = \"rtsp://admin:s3cret@10.0.0.5/101\""),
            "url = \"rtsp://admin:***@10.0.0.5/101\""
        );
    }
}
