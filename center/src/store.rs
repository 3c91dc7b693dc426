//! The alarm store (sled): one record per alarm id, snapshots kept apart, and indexes by event
//! time, camera, agent, workflow status and responder unit, kept in step with the records by
//! transactions.
//!
//! Inserting is idempotent: a redelivered alarm (same id) leaves the first record untouched.
//! Writes are grouped by the caller and made durable with one [`Store::flush`] per batch.
//! Querying is in `query.rs`, retention in `retention.rs`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use xueliang_proto::signing::{hex, sha256};
use xueliang_proto::{Alarm, RuleKind, Severity};

use crate::workflow::Status;
use crate::workflow::Step;

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
    pub status: Status,
    /// Units routing suggests (police stations first).
    #[serde(default)]
    pub routed_to: Vec<String>,
    /// Units it was dispatched to (by a duty officer, or by escalation).
    #[serde(default)]
    pub dispatched_to: Vec<String>,
    /// Where the camera is (its routing group's name), if routing knows.
    #[serde(default)]
    pub location: String,
    /// Whether it escalated (its severity was raised).
    #[serde(default)]
    pub escalated: bool,
    /// The snapshot was deleted by retention (the record stays longer).
    #[serde(default)]
    pub snapshot_expired: bool,
    /// Every workflow step, oldest first.
    #[serde(default)]
    pub timeline: Vec<Step>,
}

/// Rule kinds as records name them.
pub const KINDS: [&str; 9] = [
    "zone_intrusion",
    "line_crossing",
    "loitering",
    "crowding",
    "vehicle_stopped",
    "fire_smoke",
    "camera_offline",
    "camera_tamper",
    "camera_back",
];

/// Severities as records name them, lowest first.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

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
            status: Status::New,
            routed_to: Vec::new(),
            dispatched_to: Vec::new(),
            location: String::new(),
            escalated: false,
            snapshot_expired: false,
            timeline: Vec::new(),
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

/// Why an update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    /// No alarm has this id.
    #[error("no alarm {0}")]
    NotFound(String),
    /// The change refused itself.
    #[error(transparent)]
    Refused(E),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Positions of the trees in [`Store::trees`].
pub(crate) const ALARMS: usize = 0;
const SNAPSHOTS: usize = 1;
pub(crate) const BY_TIME: usize = 2;
pub(crate) const BY_CAMERA: usize = 3;
pub(crate) const BY_AGENT: usize = 4;
pub(crate) const BY_STATUS: usize = 5;
pub(crate) const BY_UNIT: usize = 6;
const TREE_NAMES: [&str; 7] = [
    "alarms",
    "snapshots",
    "alarms_by_time",
    "alarms_by_camera",
    "alarms_by_agent",
    "alarms_by_status",
    "alarms_by_unit",
];

/// Version of the index layout; a store written with an older one is re-indexed at open.
const INDEX_VERSION: &[u8] = b"2";

/// The center's alarm database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// alarms, snapshots and the indexes, in the order of the constants above.
    pub(crate) trees: [sled::Tree; 7],
}

/// Time-index key: event time (big-endian, offset so negatives sort first), then the id.
pub(crate) fn time_key(event_time_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&((event_time_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The prefix of an index's entries for one value: its parts, each ended by a NUL (ids never
/// hold one).
pub(crate) fn index_prefix(parts: &[&str]) -> Vec<u8> {
    let mut k = Vec::new();
    for p in parts {
        k.extend_from_slice(p.as_bytes());
        k.push(0);
    }
    k
}

/// Every index entry of `r`: (tree, key).
fn index_entries(r: &AlarmRecord) -> Vec<(usize, Vec<u8>)> {
    let t = time_key(r.event_time_ms, &r.id);
    let with = |parts: &[&str]| {
        let mut k = index_prefix(parts);
        k.extend_from_slice(&t);
        k
    };
    let mut out = vec![
        (BY_TIME, t.clone()),
        (BY_CAMERA, with(&[&r.agent_id, &r.camera_id])),
        (BY_AGENT, with(&[&r.agent_id])),
        (BY_STATUS, with(&[r.status.as_str()])),
    ];
    out.extend(r.dispatched_to.iter().map(|u| (BY_UNIT, with(&[u]))));
    out
}

fn to_json(r: &AlarmRecord) -> Vec<u8> {
    // Plain fields and strings: serializing cannot fail.
    serde_json::to_vec(r).expect("an AlarmRecord serializes")
}

/// Runs a transaction over `trees` (a slice or a tuple of trees), mapping sled's error types.
pub(crate) fn transact<Trees, T, E>(
    trees: &Trees,
    f: impl Fn(&Trees::View) -> Result<T, ConflictableTransactionError<E>>,
) -> Result<Result<T, E>, StoreError>
where
    Trees: sled::Transactional<E> + ?Sized,
{
    match trees.transaction(f) {
        Ok(r) => Ok(Ok(r)),
        Err(TransactionError::Abort(e)) => Ok(Err(e)),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}

/// [`transact`] for changes that cannot refuse themselves.
pub(crate) fn write<Trees, T>(
    trees: &Trees,
    f: impl Fn(&Trees::View) -> Result<T, ConflictableTransactionError<std::convert::Infallible>>,
) -> Result<T, StoreError>
where
    Trees: sled::Transactional<std::convert::Infallible> + ?Sized,
{
    transact(trees, f).map(|r| r.unwrap_or_else(|never| match never {}))
}

impl Store {
    /// Opens (or creates) the store in `dir`, re-indexing a store written by an older version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).open()?;
        let trees = TREE_NAMES.map(|name| db.open_tree(name));
        let [a, b, c, d, e, f, g] = trees;
        let store = Self { trees: [a?, b?, c?, d?, e?, f?, g?], db };
        let meta = store.db.open_tree("meta")?;
        if meta.get("index_version")?.as_deref() != Some(INDEX_VERSION) {
            store.reindex()?;
            meta.insert("index_version", INDEX_VERSION)?;
            store.db.flush()?;
        }
        Ok(store)
    }

    /// Rebuilds every index from the records.
    fn reindex(&self) -> Result<(), StoreError> {
        for t in &self.trees[BY_TIME..] {
            t.clear()?;
        }
        for entry in self.trees[ALARMS].iter() {
            let (id, bytes) = entry?;
            let r = parse(&String::from_utf8_lossy(&id), &bytes)?;
            for (tree, key) in index_entries(&r) {
                self.trees[tree].insert(key, &[])?;
            }
        }
        tracing::info!("alarm indexes rebuilt for {} alarms", self.trees[ALARMS].len());
        Ok(())
    }

    /// Another tree of the same database (made durable by the same [`Store::flush`]).
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// A fresh id from the database, increasing (for append-only logs).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Stores `record` and its snapshot unless its id is already stored. Not durable until
    /// [`Store::flush`].
    pub fn insert(&self, record: &AlarmRecord, snapshot: &[u8]) -> Result<Inserted, StoreError> {
        Ok(self.insert_batch(&[(record, snapshot)])?[0])
    }

    /// [`Store::insert`] for many alarms in one transaction (a sled commit costs far more than
    /// its writes); an id twice in the batch is stored once. Not durable until [`Store::flush`].
    pub fn insert_batch(
        &self,
        batch: &[(&AlarmRecord, &[u8])],
    ) -> Result<Vec<Inserted>, StoreError> {
        // Outside the transaction, which sled may run more than once.
        let jsons: Vec<Vec<u8>> = batch.iter().map(|(r, _)| to_json(r)).collect();
        let entries: Vec<_> = batch.iter().map(|(r, _)| index_entries(r)).collect();
        write(&self.trees[..], |t| {
            let mut out = Vec::with_capacity(batch.len());
            for (((record, snapshot), json), entries) in batch.iter().zip(&jsons).zip(&entries) {
                let id = record.id.as_bytes();
                // Reads in a transaction see its own writes: a repeat within the batch too.
                if t[ALARMS].get(id)?.is_some() {
                    out.push(Inserted::Duplicate);
                    continue;
                }
                t[ALARMS].insert(id, json.as_slice())?;
                if !snapshot.is_empty() {
                    t[SNAPSHOTS].insert(id, *snapshot)?;
                }
                for (tree, key) in entries {
                    t[*tree].insert(key.as_slice(), &[])?;
                }
                out.push(Inserted::New);
            }
            Ok(out)
        })
    }

    /// Changes alarm `id` with `change` (which may run more than once, so it must depend only
    /// on the record) and keeps the indexes in step. Not durable until [`Store::flush`].
    pub fn update<T, E>(
        &self,
        id: &str,
        change: impl Fn(&mut AlarmRecord) -> Result<T, E>,
    ) -> Result<(AlarmRecord, T), UpdateError<E>> {
        let key = id.as_bytes();
        transact(&self.trees[..], |t| {
            let Some(bytes) = t[ALARMS].get(key)? else {
                return Err(ConflictableTransactionError::Abort(UpdateError::NotFound(
                    id.to_owned(),
                )));
            };
            let mut record = parse(id, &bytes)
                .map_err(|e| ConflictableTransactionError::Abort(UpdateError::Store(e)))?;
            let before = index_entries(&record);
            let out = change(&mut record)
                .map_err(|e| ConflictableTransactionError::Abort(UpdateError::Refused(e)))?;
            let after = index_entries(&record);
            for (tree, k) in before.iter().filter(|e| !after.contains(e)) {
                t[*tree].remove(k.as_slice())?;
            }
            for (tree, k) in after.iter().filter(|e| !before.contains(e)) {
                t[*tree].insert(k.as_slice(), &[])?;
            }
            t[ALARMS].insert(key, to_json(&record))?;
            Ok((record, out))
        })?
    }

    /// Attaches the snapshot that followed alarm `id` from `agent`, if it is the picture the
    /// alarm's signed hash names. Not durable until [`Store::flush`].
    pub fn attach_snapshot(
        &self,
        agent: &str,
        id: &str,
        jpeg: &[u8],
    ) -> Result<Attached, StoreError> {
        let hash = hex(&sha256(jpeg));
        let key = id.as_bytes();
        write(&self.trees[..], |t| {
            let Some(bytes) = t[ALARMS].get(key)? else { return Ok(Attached::NoAlarm) };
            let Ok(mut record) = serde_json::from_slice::<AlarmRecord>(&bytes) else {
                return Ok(Attached::NoAlarm);
            };
            if record.agent_id != agent
                || !record.snapshot_follows
                || record.snapshot_sha256 != hash
            {
                return Ok(Attached::Mismatch);
            }
            if t[SNAPSHOTS].get(key)?.is_some() || record.snapshot_expired {
                return Ok(Attached::Duplicate);
            }
            t[SNAPSHOTS].insert(key, jpeg)?;
            record.snapshot_bytes = jpeg.len();
            t[ALARMS].insert(key, to_json(&record))?;
            Ok(Attached::New)
        })
    }

    /// Removes alarm `id`, its snapshot and its index entries (retention).
    pub(crate) fn remove(&self, id: &str) -> Result<(), StoreError> {
        let key = id.as_bytes();
        write(&self.trees[..], |t| {
            if let Some(bytes) = t[ALARMS].get(key)? {
                if let Ok(record) = serde_json::from_slice::<AlarmRecord>(&bytes) {
                    for (tree, k) in index_entries(&record) {
                        t[tree].remove(k)?;
                    }
                }
                t[ALARMS].remove(key)?;
                t[SNAPSHOTS].remove(key)?;
            }
            Ok(())
        })
    }

    /// Deletes alarm `id`'s snapshot, marking the record (retention).
    pub(crate) fn expire_snapshot(&self, id: &str) -> Result<(), StoreError> {
        let key = id.as_bytes();
        write(&self.trees[..], |t| {
            if let Some(bytes) = t[ALARMS].get(key)? {
                if let Ok(mut record) = serde_json::from_slice::<AlarmRecord>(&bytes) {
                    record.snapshot_expired = true;
                    t[ALARMS].insert(key, to_json(&record))?;
                }
                t[SNAPSHOTS].remove(key)?;
            }
            Ok(())
        })
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// One alarm by id.
    pub fn get(&self, id: &str) -> Result<Option<AlarmRecord>, StoreError> {
        self.trees[ALARMS].get(id.as_bytes())?.map(|v| parse(id, &v)).transpose()
    }

    /// The JPEG snapshot of an alarm, if it has one.
    pub fn snapshot(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.trees[SNAPSHOTS].get(id.as_bytes())?)
    }

    /// Number of stored alarms with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.trees[BY_STATUS].scan_prefix(index_prefix(&[status.as_str()])).count()
    }

    /// Number of stored alarms.
    pub fn len(&self) -> usize {
        self.trees[ALARMS].len()
    }

    /// Whether no alarm is stored.
    pub fn is_empty(&self) -> bool {
        self.trees[ALARMS].is_empty()
    }
}

pub(crate) fn parse(id: &str, bytes: &[u8]) -> Result<AlarmRecord, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { id: id.to_owned(), message: e.to_string() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::query::AlarmFilter;
    use crate::workflow::{Action, Request, apply};

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

    /// A stored-alarm record for tests.
    pub(crate) fn record(id: &str) -> AlarmRecord {
        AlarmRecord::from_alarm(&alarm(id, 1), 2)
    }

    fn insert(s: &Store, a: &Alarm, received: i64) -> Inserted {
        s.insert(&AlarmRecord::from_alarm(a, received), &a.snapshot_jpeg).unwrap()
    }

    #[test]
    fn the_names_of_kinds_and_severities_are_those_of_the_contract() {
        let kinds: Vec<String> = (1..)
            .map_while(|k| RuleKind::try_from(k).ok())
            .map(|k| enum_name(k.as_str_name(), "RULE_KIND_"))
            .collect();
        assert_eq!(kinds, KINDS);
        let severities: Vec<String> = (1..)
            .map_while(|s| Severity::try_from(s).ok())
            .map(|s| enum_name(s.as_str_name(), "SEVERITY_"))
            .collect();
        assert_eq!(severities, SEVERITIES);
    }

    #[tokio::test]
    async fn a_redelivered_alarm_is_stored_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(insert(&s, &alarm("x", 5), 1), Inserted::New);
            let mut again = alarm("x", 5);
            again.camera_id = "changed".into();
            assert_eq!(insert(&s, &again, 2), Inserted::Duplicate);
            s.flush().await.unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        let r = s.get("x").unwrap().unwrap();
        assert_eq!(
            (r.camera_id.as_str(), r.kind.as_str(), r.severity.as_str()),
            ("c", "zone_intrusion", "high")
        );
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
        insert(&s, &a, 2);
        assert_eq!(s.get("late").unwrap().unwrap().snapshot_bytes, 0);
        assert_eq!(s.attach_snapshot("a", "late", b"another picture").unwrap(), Attached::Mismatch);
        assert_eq!(
            s.attach_snapshot("b", "late", &picture).unwrap(),
            Attached::Mismatch,
            "another agent's"
        );
        assert_eq!(s.attach_snapshot("a", "late", &picture).unwrap(), Attached::New);
        assert_eq!(s.attach_snapshot("a", "late", &picture).unwrap(), Attached::Duplicate);
        assert_eq!(s.get("late").unwrap().unwrap().snapshot_bytes, picture.len());
        assert_eq!(s.snapshot("late").unwrap().unwrap().as_ref(), picture.as_slice());
    }

    #[test]
    fn a_batch_stores_each_id_once_even_when_it_repeats_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        insert(&s, &alarm("old", 1), 0);
        let records: Vec<AlarmRecord> = ["a", "old", "b", "a"]
            .iter()
            .map(|id| AlarmRecord::from_alarm(&alarm(id, 2), 0))
            .collect();
        let batch: Vec<(&AlarmRecord, &[u8])> = records.iter().map(|r| (r, &b"jpeg"[..])).collect();
        use Inserted::*;
        assert_eq!(s.insert_batch(&batch).unwrap(), [New, Duplicate, New, Duplicate]);
        assert_eq!(
            (s.len(), s.query(&AlarmFilter::default(), None, 10).unwrap().alarms.len()),
            (3, 3)
        );
    }

    #[test]
    fn time_order_includes_negative_times() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (id, t) in [("b", 20), ("a", 10), ("c", 30), ("old", -5)] {
            insert(&s, &alarm(id, t), 0);
        }
        let ids: Vec<String> = s
            .query(&AlarmFilter::default(), None, 10)
            .unwrap()
            .alarms
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["c", "b", "a", "old"]);
    }

    #[test]
    fn updates_move_index_entries_and_a_refused_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        insert(&s, &alarm("x", 5), 1);
        let step = |action, units: &[String]| {
            s.update("x", |r| apply(r, &Request { action, by: "zhang", at_ms: 9, note: "", units }))
        };
        step(Action::Acknowledge, &[]).unwrap();
        let (r, ()) = step(Action::Dispatch, &["pcs-1".to_string()]).unwrap();
        assert_eq!(r.status, Status::Dispatched);
        assert!(matches!(step(Action::Acknowledge, &[]), Err(UpdateError::Refused(_))));
        assert!(matches!(s.update("nope", |_| Ok::<_, ()>(())), Err(UpdateError::NotFound(_))));
        let count = |f: AlarmFilter| s.query(&f, None, 10).unwrap().alarms.len();
        assert_eq!(count(AlarmFilter { status: Some(Status::New), ..Default::default() }), 0);
        assert_eq!(
            count(AlarmFilter { status: Some(Status::Dispatched), ..Default::default() }),
            1
        );
        assert_eq!(count(AlarmFilter { unit: Some("pcs-1".into()), ..Default::default() }), 1);
        assert_eq!(s.get("x").unwrap().unwrap().timeline.len(), 2);
        // Indexes written by an older version are rebuilt at open.
        s.trees[BY_STATUS].clear().unwrap();
        s.open_tree("meta").unwrap().remove("index_version").unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.query(
                &AlarmFilter { status: Some(Status::Dispatched), ..Default::default() },
                None,
                10
            )
            .unwrap()
            .alarms
            .len(),
            1
        );
    }
}
