//! The alarm store (sled): one record per alarm id, snapshots kept apart, a time index.
//!
//! Inserting is idempotent: a redelivered alarm (same id) leaves the first record untouched.
//! Writes are grouped by the caller and made durable with one [`Store::flush`] per batch.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use xueliang_proto::signing::{hex, sha256};
use xueliang_proto::{Alarm, RuleKind, Severity};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open or write the database.
    #[error("alarm store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not parse (written by an incompatible version?).
    #[error("alarm store: record {id} is corrupt: {message}")]
    Corrupt { id: String, message: String },
}

/// A detected object as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    /// Class name.
    pub class: String,
    /// Confidence 0..1.
    pub score: f32,
    /// `[x1, y1, x2, y2]`, normalized.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Track id on its camera (0 = untracked).
    pub track_id: u64,
}

/// An alarm as stored and served by the API (without its snapshot bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// The agent-made id.
    pub id: String,
    /// Agent that raised it.
    pub agent_id: String,
    /// Camera.
    pub camera_id: String,
    /// Rule.
    pub rule_id: String,
    /// Rule kind, e.g. `zone_intrusion`.
    pub kind: String,
    /// Severity, e.g. `high`.
    pub severity: String,
    /// Capture time, UTC ms.
    pub event_time_ms: i64,
    /// When the center stored it, UTC ms.
    pub received_time_ms: i64,
    /// Zone or line id.
    pub zone_id: String,
    /// What was detected.
    pub detections: Vec<DetectionRecord>,
    /// Size of the JPEG snapshot in bytes (0 = none, or not arrived yet).
    pub snapshot_bytes: usize,
    /// SHA-256 (hex) of the snapshot the agent signed for (empty = none).
    #[serde(default)]
    pub snapshot_sha256: String,
    /// The snapshot travels after the alarm (it may not have arrived yet).
    #[serde(default)]
    pub snapshot_follows: bool,
    /// Frame size the boxes refer to.
    pub frame_width: u32,
    /// Frame height.
    pub frame_height: u32,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// Workflow state: `new` on arrival.
    pub status: String,
}

/// `RULE_KIND_ZONE_INTRUSION` → `zone_intrusion`.
fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_ascii_lowercase()
}

impl AlarmRecord {
    /// The record of a received alarm.
    pub fn from_alarm(a: &Alarm, received_time_ms: i64) -> Self {
        let kind = RuleKind::try_from(a.kind).unwrap_or(RuleKind::Unspecified);
        let severity = Severity::try_from(a.severity).unwrap_or(Severity::Unspecified);
        Self {
            id: a.id.clone(),
            agent_id: a.agent_id.clone(),
            camera_id: a.camera_id.clone(),
            rule_id: a.rule_id.clone(),
            kind: enum_name(kind.as_str_name(), "RULE_KIND_"),
            severity: enum_name(severity.as_str_name(), "SEVERITY_"),
            event_time_ms: a.event_time_ms,
            received_time_ms,
            zone_id: a.zone_id.clone(),
            detections: a
                .detections
                .iter()
                .map(|d| {
                    let b = d.r#box.unwrap_or_default();
                    DetectionRecord {
                        class: d.class_name.clone(),
                        score: d.score,
                        bbox: [b.x1, b.y1, b.x2, b.y2],
                        track_id: d.track_id,
                    }
                })
                .collect(),
            snapshot_bytes: a.snapshot_jpeg.len(),
            snapshot_sha256: hex(&a.snapshot_sha256),
            snapshot_follows: a.snapshot_follows,
            frame_width: a.frame_width,
            frame_height: a.frame_height,
            model_id: a.model_id.clone(),
            model_version: a.model_version.clone(),
            status: "new".into(),
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new record.
    New,
    /// The id was already stored; nothing changed.
    Duplicate,
}

/// What attaching a snapshot that followed its alarm did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// Stored now.
    New,
    /// It was stored before.
    Duplicate,
    /// No such alarm is stored (yet): the agent sends it again later.
    NoAlarm,
    /// The picture is not the one the alarm's signature covers.
    Mismatch,
}

/// The center's alarm database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    alarms: sled::Tree,
    snapshots: sled::Tree,
    by_time: sled::Tree,
}

/// Time-index key: event time (big-endian, offset so negatives sort first), then the id.
fn time_key(event_time_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&((event_time_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(Self {
            alarms: db.open_tree("alarms")?,
            snapshots: db.open_tree("snapshots")?,
            by_time: db.open_tree("alarms_by_time")?,
            db,
        })
    }

    /// Another tree of the same database (made durable by the same [`Store::flush`]).
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Stores an alarm unless its id is already stored. Not durable until [`Store::flush`].
    pub fn insert(&self, alarm: &Alarm, received_time_ms: i64) -> Result<Inserted, StoreError> {
        let record = AlarmRecord::from_alarm(alarm, received_time_ms);
        let json = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt {
            id: alarm.id.clone(),
            message: e.to_string(),
        })?;
        let id = alarm.id.as_bytes();
        let tkey = time_key(alarm.event_time_ms, &alarm.id);
        let result = (&self.alarms, &self.snapshots, &self.by_time).transaction(
            |(alarms, snapshots, by_time)| {
                if alarms.get(id)?.is_some() {
                    return Ok(Inserted::Duplicate);
                }
                alarms.insert(id, json.as_slice())?;
                if !alarm.snapshot_jpeg.is_empty() {
                    snapshots.insert(id, alarm.snapshot_jpeg.as_ref())?;
                }
                by_time.insert(tkey.as_slice(), &[])?;
                Ok::<_, ConflictableTransactionError<std::convert::Infallible>>(Inserted::New)
            },
        );
        match result {
            Ok(r) => Ok(r),
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(never)) => match never {},
        }
    }

    /// Attaches the snapshot that followed alarm `id` from `agent`, if it is the picture the
    /// alarm's signed hash names. Not durable until [`Store::flush`].
    pub fn attach_snapshot(&self, agent: &str, id: &str, jpeg: &[u8]) -> Result<Attached, StoreError> {
        let hash = hex(&sha256(jpeg));
        let key = id.as_bytes();
        let result = (&self.alarms, &self.snapshots).transaction(|(alarms, snapshots)| {
            let Some(bytes) = alarms.get(key)? else { return Ok(Attached::NoAlarm) };
            let Ok(mut record) = serde_json::from_slice::<AlarmRecord>(&bytes) else { return Ok(Attached::NoAlarm) };
            if record.agent_id != agent || !record.snapshot_follows || record.snapshot_sha256 != hash {
                return Ok(Attached::Mismatch);
            }
            if snapshots.get(key)?.is_some() {
                return Ok(Attached::Duplicate);
            }
            snapshots.insert(key, jpeg)?;
            record.snapshot_bytes = jpeg.len();
            // Plain fields and strings: serializing cannot fail.
            let json = serde_json::to_vec(&record).expect("an AlarmRecord serializes");
            alarms.insert(key, json)?;
            Ok::<_, ConflictableTransactionError<std::convert::Infallible>>(Attached::New)
        });
        match result {
            Ok(r) => Ok(r),
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(never)) => match never {},
        }
    }

    /// Makes every insert so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// One alarm by id.
    pub fn get(&self, id: &str) -> Result<Option<AlarmRecord>, StoreError> {
        self.alarms
            .get(id.as_bytes())?
            .map(|v| parse(id, &v))
            .transpose()
    }

    /// The JPEG snapshot of an alarm, if it has one.
    pub fn snapshot(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.snapshots.get(id.as_bytes())?)
    }

    /// Up to `limit` alarms, newest event first.
    pub fn newest(&self, limit: usize) -> Result<Vec<AlarmRecord>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in self.by_time.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[8..]).into_owned();
            if let Some(r) = self.get(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Number of stored alarms.
    pub fn len(&self) -> usize {
        self.alarms.len()
    }

    /// Whether no alarm is stored.
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
    }
}

fn parse(id: &str, bytes: &[u8]) -> Result<AlarmRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(id: &str, t: i64) -> Alarm {
        Alarm {
            id: id.into(),
            agent_id: "a".into(),
            camera_id: "c".into(),
            kind: RuleKind::ZoneIntrusion as i32,
            severity: Severity::High as i32,
            event_time_ms: t,
            snapshot_jpeg: vec![0xff, 0xd8, 0xff, 0xd9].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_redelivered_alarm_is_stored_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.insert(&alarm("x", 5), 1).unwrap(), Inserted::New);
            let mut again = alarm("x", 5);
            again.camera_id = "changed".into();
            assert_eq!(s.insert(&again, 2).unwrap(), Inserted::Duplicate);
            s.flush().await.unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        let r = s.get("x").unwrap().unwrap();
        assert_eq!((r.camera_id.as_str(), r.kind.as_str(), r.severity.as_str()), ("c", "zone_intrusion", "high"));
        assert_eq!(s.snapshot("x").unwrap().unwrap().as_ref(), &[0xff, 0xd8, 0xff, 0xd9]);
    }

    #[test]
    fn a_following_snapshot_is_kept_only_if_it_is_the_signed_picture() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let picture = b"the picture".to_vec();
        assert_eq!(s.attach_snapshot("a", "late", &picture).unwrap(), Attached::NoAlarm);
        let mut a = alarm("late", 1);
        a.snapshot_jpeg = Default::default();
        a.snapshot_follows = true;
        a.snapshot_sha256 = xueliang_proto::signing::sha256(&picture).into();
        s.insert(&a, 2).unwrap();
        assert_eq!(s.get("late").unwrap().unwrap().snapshot_bytes, 0);
        assert_eq!(s.attach_snapshot("a", "late", b"another picture").unwrap(), Attached::Mismatch);
        assert_eq!(s.attach_snapshot("b", "late", &picture).unwrap(), Attached::Mismatch, "another agent's");
        assert_eq!(s.attach_snapshot("a", "late", &picture).unwrap(), Attached::New);
        assert_eq!(s.attach_snapshot("a", "late", &picture).unwrap(), Attached::Duplicate);
        assert_eq!(s.get("late").unwrap().unwrap().snapshot_bytes, picture.len());
        assert_eq!(s.snapshot("late").unwrap().unwrap().as_ref(), picture.as_slice());
    }

    #[tokio::test]
    async fn newest_orders_by_event_time_including_negative_times() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (id, t) in [("b", 20), ("a", 10), ("c", 30), ("old", -5)] {
            s.insert(&alarm(id, t), 0).unwrap();
        }
        let ids: Vec<String> = s.newest(10).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["c", "b", "a", "old"]);
        assert_eq!(s.newest(2).unwrap().len(), 2);
    }
}
