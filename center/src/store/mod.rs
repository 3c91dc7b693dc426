//! The alarm store: one record per alarm id, snapshots kept apart, and indexes by event time,
//! camera, agent, workflow status and responder unit, kept in step with the records by
//! transactions. The other parts of the center keep their own trees in the same database
//! ([`Store::open_tree`]), made durable by the same flush. The trees are the engine's
//! (`engine/`): sled embedded in the data directory, or PostgreSQL ([`Backend`]).
//!
//! Inserting is idempotent: a redelivered alarm (same id) leaves the first record untouched.
//! Writes are grouped by the caller and made durable with one [`Store::flush`] per batch (on
//! PostgreSQL each transaction is durable once committed).
//! The indexes' keys are in `index.rs`, querying in `query.rs`, retention's sweep in
//! `retention.rs`; dead letters keep their own trees (`dead_letters.rs`); events' video clips
//! are files in a directory of their own, recorded in trees of this database (`clips.rs`); what
//! the agents signed is kept beside the records and deleted with them (`proofs.rs`); leases
//! give one of several processes sharing the store a duty at a time (`lease.rs`); what changed
//! is marked for the tier above, and what the tier below forwarded is stored (`upward.rs`);
//! new events are queued for the GB/T 28181 platforms above (`reports.rs`).

mod clips;
mod dead_letters;
pub mod engine;
mod health;
mod index;
mod lease;
mod proofs;
mod query;
mod reports;
mod retention;
mod upward;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use xueliang_proto::signing::{hex, sha256};

use crate::domain::{AlarmRecord, Status, Updated};
use index::{
    ALARMS, BY_STATUS, BY_TIME, ESCALATION, INDEX_VERSION, SNAPSHOTS, TREE_NAMES, index_entries,
    move_entries, time_key,
};
use xueliang_proto::EventUpdate;

pub use clips::{ClipEntry, Clips, ClipsSwept, Completed, Put};
pub use dead_letters::{DeadLetter, DeadLetters};
pub use engine::{Copied, Db, Interrupted, Iter, Tree, TxError, View, transaction, write};
pub use health::{DiskHealth, watch as watch_disk};
pub(crate) use index::index_prefix;
pub use lease::Leases;
pub use proofs::{Mismatch, Proof, ProofError, Proofs, Proved};
pub use query::{AlarmFilter, CountyCounts, Cursor, ExportError, Page, parse_time};
pub use reports::Reports;
pub(crate) use retention::{DAY_MS, MAX_EVENT_AGE_MS};
pub use retention::{Retention, Swept};
use upward::Marks;
pub use upward::{CountyBoxes, FromBelow, Incoming, Received, Upward};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open or write the database.
    #[error("alarm store: {0}")]
    Sled(#[from] sled::Error),
    /// PostgreSQL could not be reached, or refused a statement.
    #[error("alarm store: {0}")]
    Postgres(String),
    /// Copying a store into another did not complete, or did not compare equal.
    #[error("copying the store: {0}")]
    Copy(String),
    /// A stored record does not parse (written by an incompatible version?).
    #[error("alarm store: record {id} is corrupt: {message}")]
    Corrupt {
        /// The id concerned.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// sled found the database itself damaged when opening it (it reported `Corruption`, or
    /// panicked while recovering its log): the center must not run on it.
    #[error("the alarm store in {dir} is corrupt: {detail}")]
    CorruptDatabase {
        /// The data directory holding the database.
        dir: PathBuf,
        /// What sled said.
        detail: String,
    },
    /// A clip's file or directory could not be read or written.
    #[error("clip store: {path}: {error}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new record.
    New,
    /// The same agent's alarm with this id is stored; nothing changed.
    Duplicate,
    /// The same agent's alarm with this id was stored and retention deleted it: refused, not
    /// stored again as new.
    Deleted,
    /// Another agent's alarm has this id: refused, nothing changed.
    Taken,
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

/// What applying an agent's update of its event did.
#[derive(Debug, Clone, PartialEq)]
pub enum EventUpdated {
    /// The record changed: here it is now.
    Changed(Box<AlarmRecord>),
    /// It was applied before (or a newer one was).
    Duplicate,
    /// The event's opening alarm is not stored (yet): the agent sends the update again later.
    NoEvent,
    /// The event belongs to another agent.
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

/// Position of the proofs' tree in [`Store::with_proofs`], after the store's trees.
const PROOFS_AT: usize = TREE_NAMES.len();
/// Position of the deleted ids' tree in [`Store::with_proofs`], after the proofs'.
const DELETED_AT: usize = PROOFS_AT + 1;
/// Position of the tree of changes to forward in [`Store::with_proofs`], after the deleted
/// ids' (there only when this center forwards to the tier above).
const PENDING_AT: usize = DELETED_AT + 1;

/// Where the center keeps its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// sled, embedded in the data directory (the default).
    Embedded,
    /// A PostgreSQL database, by its address (`postgres://user:password@host:port/database`).
    Postgres(String),
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sled" => Ok(Backend::Embedded),
            _ if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Ok(Backend::Postgres(s.to_owned()))
            }
            _ => Err(format!(
                "{}: write sled (embedded in the data directory) or \
                 postgres://user:password@host:port/database",
                engine::redact(s)
            )),
        }
    }
}

impl Backend {
    /// PostgreSQL at `url` if there is one, else the embedded store.
    pub fn postgres_or_embedded(url: Option<String>) -> Self {
        url.map_or(Backend::Embedded, Backend::Postgres)
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Embedded => f.write_str("sled"),
            Backend::Postgres(url) => f.write_str(&engine::redact(url)),
        }
    }
}

/// Who an alarm id belongs to, as a stored record or a deleted id says.
#[derive(serde::Deserialize, serde::Serialize)]
struct Owner {
    agent_id: String,
    /// The alarm's event time (kept for deleted ids: they are forgotten once no box may send
    /// the alarm again).
    #[serde(default)]
    event_time_ms: i64,
}

/// The center's alarm database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// alarms, snapshots and the indexes, in the order of the constants of `index.rs`.
    trees: [Tree; 7],
    /// What the agents signed (`proofs.rs`), written and deleted with the records.
    proofs: Tree,
    /// Ids of alarms retention deleted, with their agent and event time, so that one sent
    /// again is not stored again as new.
    deleted: Tree,
    /// Events changed and not yet numbered for the tier above (`upward.rs`), when this center
    /// forwards there.
    pending: Marks,
    /// New events not yet queued for the GB/T 28181 platforms above (`reports.rs`), when this
    /// center reports there.
    reporting: Marks,
    /// Ids of the alarm records found unreadable since start, each logged once.
    unreadable: Arc<Mutex<HashSet<String>>>,
    /// Whether it writes, and its disk's room.
    health: DiskHealth,
}

fn to_json(r: &AlarmRecord) -> Vec<u8> {
    // Plain fields and strings: serializing cannot fail.
    serde_json::to_vec(r).expect("an AlarmRecord serializes")
}

impl Store {
    /// Opens (or creates) the store in `dir`, re-indexing a store written by an older version.
    /// A database sled finds damaged is [`StoreError::CorruptDatabase`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // sled 0.34 panics on some damage it meets while recovering its log (a page it cannot
        // place): that is a corrupt database too, not a bug of the caller.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::open_db(dir)));
        let corrupt = |detail: String| StoreError::CorruptDatabase { dir: dir.to_owned(), detail };
        match opened {
            Ok(Err(StoreError::Sled(sled::Error::Corruption { at, .. }))) => {
                Err(corrupt(match at {
                    Some(at) => format!("sled read damaged data ({at:?})"),
                    None => "sled read damaged data".to_owned(),
                }))
            }
            Ok(r) => r,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(corrupt(format!("sled failed while recovering its log: {message}")))
            }
        }
    }

    fn open_db(dir: &Path) -> Result<Self, StoreError> {
        Self::on(Db::Sled(sled::Config::new().path(dir).open()?), dir)
    }

    /// Opens the store `backend` names: sled in `dir`, or a PostgreSQL database (migrated to
    /// this version's schema first). Video clips are files in `dir` either way.
    pub fn open_with(backend: &Backend, dir: &Path) -> Result<Self, StoreError> {
        match backend {
            Backend::Embedded => Self::open(dir),
            Backend::Postgres(_) => Self::on(Self::open_database(backend, dir)?, dir),
        }
    }

    /// Only the database `backend` names, as it is (for copying a store whole).
    pub fn open_database(backend: &Backend, dir: &Path) -> Result<Db, StoreError> {
        Ok(match backend {
            Backend::Embedded => Db::Sled(sled::Config::new().path(dir).open()?),
            Backend::Postgres(url) => Db::Postgres(Arc::new(engine::Postgres::open(url)?)),
        })
    }

    fn on(db: Db, dir: &Path) -> Result<Self, StoreError> {
        let [a, b, c, d, e, f, g] = TREE_NAMES.map(|name| db.open_tree(name));
        let store = Self {
            trees: [a?, b?, c?, d?, e?, f?, g?],
            proofs: db.open_tree(proofs::PROOFS)?,
            deleted: db.open_tree("deleted_ids")?,
            pending: Marks::default(),
            reporting: Marks::default(),
            db,
            unreadable: Arc::default(),
            health: DiskHealth::new(dir),
        };
        let meta = store.db.open_tree("meta")?;
        if meta.get("index_version")?.as_deref() != Some(INDEX_VERSION) {
            store.reindex()?;
            meta.insert("index_version", INDEX_VERSION)?;
            store.db.flush_blocking()?;
        }
        Ok(store)
    }

    /// The database under the store.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Rebuilds every index from the records.
    fn reindex(&self) -> Result<(), StoreError> {
        for t in &self.trees[BY_TIME..] {
            t.clear()?;
        }
        for entry in self.trees[ALARMS].iter() {
            let (id, bytes) = entry?;
            // Left out of the indexes: no list or sweep trips over it.
            let Ok(r) = self.parse(&String::from_utf8_lossy(&id), &bytes) else { continue };
            for (tree, key) in index_entries(&r) {
                self.trees[tree].insert(key, &[])?;
            }
        }
        tracing::info!("alarm indexes rebuilt for {} alarms", self.trees[ALARMS].len());
        Ok(())
    }

    /// Another tree of the same database (made durable by the same [`Store::flush`]).
    pub fn open_tree(&self, name: &str) -> Result<Tree, StoreError> {
        self.db.open_tree(name)
    }

    /// A fresh id from the database, increasing (for append-only logs).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.db.generate_id()
    }

    /// The store's trees, then the proofs' tree (at [`PROOFS_AT`]), the deleted ids' (at
    /// [`DELETED_AT`]), the changes to forward (at [`PENDING_AT`], if kept) and the new events
    /// to report (after them, if kept), for a transaction over all of them.
    fn with_proofs(&self) -> Vec<&Tree> {
        self.trees
            .iter()
            .chain([&self.proofs, &self.deleted])
            .chain(&self.pending.0)
            .chain(&self.reporting.0)
            .collect()
    }

    /// Stores `record` and its snapshot unless its id is already stored ([`Inserted::Duplicate`])
    /// or was deleted by retention ([`Inserted::Deleted`]); alarms are keyed by agent and id:
    /// another agent's id is [`Inserted::Taken`].
    /// Not durable until [`Store::flush`].
    pub fn insert(&self, record: &AlarmRecord, snapshot: &[u8]) -> Result<Inserted, StoreError> {
        Ok(self.insert_batch(&[(record, snapshot, None)])?[0])
    }

    /// [`Store::insert`] for many alarms in one transaction (a sled commit costs far more than
    /// its writes), each with the message its agent signed, if given, kept beside it; an id
    /// twice in the batch is stored once. Not durable until [`Store::flush`].
    pub fn insert_batch(
        &self,
        batch: &[(&AlarmRecord, &[u8], Option<&Proof>)],
    ) -> Result<Vec<Inserted>, StoreError> {
        // Outside the transaction, which sled may run more than once.
        let jsons: Vec<Vec<u8>> = batch.iter().map(|(r, ..)| to_json(r)).collect();
        let entries: Vec<_> = batch.iter().map(|(r, ..)| index_entries(r)).collect();
        let proofs: Vec<_> =
            batch.iter().map(|(r, _, p)| p.map(|p| proofs::alarm_entry(&r.id, p))).collect();
        let rows = batch.iter().zip(&jsons).zip(&entries).zip(&proofs);
        let ids: Vec<&[u8]> = batch.iter().map(|(r, ..)| r.id.as_bytes()).collect();
        let order = self.pending.order(&self.db)?;
        let report_order = self.reporting.order(&self.db)?;
        let reporting_at = PENDING_AT + usize::from(self.pending.0.is_some());
        write(&self.with_proofs(), |t| {
            // One round trip for the batch's ids, not one per id, where that matters.
            t[ALARMS].prefetch(&ids)?;
            t[DELETED_AT].prefetch(&ids)?;
            let mut out = Vec::with_capacity(batch.len());
            for ((((record, snapshot, _), json), entries), proof) in rows.clone() {
                let id = record.id.as_bytes();
                // Reads in a transaction see its own writes: a repeat within the batch too.
                let before = match t[ALARMS].get(id)? {
                    Some(stored) => Some((stored, Inserted::Duplicate)),
                    None => t[DELETED_AT].get(id)?.map(|d| (d, Inserted::Deleted)),
                };
                if let Some((before, same)) = before {
                    // A record that cannot be read is nobody else's: left as it is.
                    let mine = serde_json::from_slice::<Owner>(&before)
                        .map_or(true, |o| o.agent_id == record.agent_id);
                    out.push(if mine { same } else { Inserted::Taken });
                    continue;
                }
                t[ALARMS].insert(id, json.as_slice())?;
                if !snapshot.is_empty() {
                    t[SNAPSHOTS].insert(id, *snapshot)?;
                }
                if let Some((k, v)) = proof {
                    t[PROOFS_AT].insert(k.as_slice(), v.as_slice())?;
                }
                for (tree, key) in entries {
                    t[*tree].insert(key.as_slice(), &[])?;
                }
                self.pending.mark(t.get(PENDING_AT), order, out.len(), &record.id)?;
                self.reporting.mark(t.get(reporting_at), report_order, out.len(), &record.id)?;
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
        let (record, out, ()) = self.update_and(id, &[], change, |_, _| Ok(()))?;
        Ok((record, out))
    }

    /// [`Store::update`], writing in the same transaction what `also` makes of the changed
    /// record to the `extra` trees (its views, in their order), such as the step's audit entry:
    /// both are written or neither.
    pub fn update_and<T, E, A>(
        &self,
        id: &str,
        extra: &[&Tree],
        change: impl Fn(&mut AlarmRecord) -> Result<T, E>,
        also: impl Fn(&AlarmRecord, &[View<'_>]) -> Result<A, Interrupted>,
    ) -> Result<(AlarmRecord, T, A), UpdateError<E>> {
        let key = id.as_bytes();
        let trees: Vec<&Tree> =
            self.trees.iter().chain(extra.iter().copied()).chain(&self.pending.0).collect();
        let views = self.trees.len()..self.trees.len() + extra.len();
        let order = self.pending.order(&self.db)?;
        transaction(&trees, |t| {
            let Some(bytes) = t[ALARMS].get(key)? else {
                return Err(TxError::Abort(UpdateError::NotFound(id.to_owned())));
            };
            let mut record =
                self.parse(id, &bytes).map_err(|e| TxError::Abort(UpdateError::Store(e)))?;
            let before = index_entries(&record);
            let out = change(&mut record).map_err(|e| TxError::Abort(UpdateError::Refused(e)))?;
            let after = index_entries(&record);
            move_entries(t, &before, &after)?;
            t[ALARMS].insert(key, to_json(&record))?;
            self.pending.mark(t.get(views.end), order, 0, id)?;
            let also = also(&record, &t[views.clone()])?;
            Ok((record, out, also))
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
        let order = self.pending.order(&self.db)?;
        write(&self.with_proofs(), |t| {
            let Some(bytes) = t[ALARMS].get(key)? else { return Ok(Attached::NoAlarm) };
            let Ok(mut record) = self.parse(id, &bytes) else {
                return Ok(Attached::NoAlarm);
            };
            // A better view sent with an update replaced the picture this one was to be.
            if record.agent_id == agent && record.update_seq > 0 && record.snapshot_sha256 != hash {
                return Ok(Attached::Duplicate);
            }
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
            self.pending.mark(t.get(PENDING_AT), order, 0, id)?;
            Ok(Attached::New)
        })
    }

    /// Applies `agent`'s update of its event to the event's record, its better picture (if any)
    /// replacing the one stored, and keeps the message it signed, if given, in one transaction.
    pub fn apply_update(
        &self,
        agent: &str,
        u: &EventUpdate,
        proof: Option<&Proof>,
    ) -> Result<EventUpdated, StoreError> {
        let key = u.event_id.as_bytes();
        let proof = proof.map(|p| proofs::update_entry(&u.event_id, u.seq, p));
        let order = self.pending.order(&self.db)?;
        write(&self.with_proofs(), |t| {
            let Some(bytes) = t[ALARMS].get(key)? else { return Ok(EventUpdated::NoEvent) };
            let Ok(mut record) = self.parse(&u.event_id, &bytes) else {
                return Ok(EventUpdated::NoEvent);
            };
            if record.agent_id != agent {
                return Ok(EventUpdated::Mismatch);
            }
            if record.apply_update(u) == Updated::Duplicate {
                return Ok(EventUpdated::Duplicate);
            }
            if !u.snapshot_jpeg.is_empty() && !record.snapshot_expired {
                t[SNAPSHOTS].insert(key, u.snapshot_jpeg.as_ref())?;
            }
            if let Some((k, v)) = &proof {
                t[PROOFS_AT].insert(k.as_slice(), v.as_slice())?;
            }
            t[ALARMS].insert(key, to_json(&record))?;
            self.pending.mark(t.get(PENDING_AT), order, 0, &u.event_id)?;
            Ok(EventUpdated::Changed(Box::new(record)))
        })
    }

    /// Removes alarm `id`, its snapshot, its index entries and what its agent signed
    /// (retention), remembering whose id it was.
    fn remove(&self, id: &str) -> Result<(), StoreError> {
        let key = id.as_bytes();
        // A transaction cannot scan: its updates' keys are read first (no update arrives for an
        // alarm old enough for retention).
        let updates: Vec<sled::IVec> =
            self.proofs.scan_prefix(proofs::update_prefix(id)).keys().collect::<Result<_, _>>()?;
        write(&self.with_proofs(), |t| {
            if let Some(bytes) = t[ALARMS].get(key)? {
                if let Ok(record) = self.parse(id, &bytes) {
                    for (tree, k) in index_entries(&record) {
                        t[tree].remove(k)?;
                    }
                }
                t[ALARMS].remove(key)?;
                t[SNAPSHOTS].remove(key)?;
                if let Ok(owner) = serde_json::from_slice::<Owner>(&bytes) {
                    // Plain fields: serializing cannot fail.
                    let remembered = serde_json::to_vec(&owner).unwrap_or_default();
                    t[DELETED_AT].insert(key, remembered)?;
                }
            }
            t[PROOFS_AT].remove(key)?;
            for k in &updates {
                t[PROOFS_AT].remove(k)?;
            }
            Ok(())
        })
    }

    /// Deletes alarm `id`'s snapshot, marking the record (retention).
    fn expire_snapshot(&self, id: &str) -> Result<(), StoreError> {
        let key = id.as_bytes();
        write(&self.trees, |t| {
            if let Some(bytes) = t[ALARMS].get(key)? {
                if let Ok(mut record) = self.parse(id, &bytes) {
                    record.snapshot_expired = true;
                    t[ALARMS].insert(key, to_json(&record))?;
                }
                t[SNAPSHOTS].remove(key)?;
            }
            Ok(())
        })
    }

    /// Makes every write so far durable.
    /// A write that fails is noted in [`Store::health`].
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().await.inspect_err(|e| self.health.failed(e))
    }

    /// Writes and flushes a marker, so that a store that no longer writes is noticed even when
    /// nothing arrives.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let written = self.db.open_tree("meta").and_then(|meta| {
            meta.insert("alive_ms", &xueliang_proto::endpoint::now_ms().to_be_bytes())
        });
        if let Err(e) = written {
            // sled fails every write after one failed, until reopened; PostgreSQL's failures
            // pass (a server restarting), and the next write tells.
            if matches!(self.db, Db::Sled(_)) {
                self.health.failed(&e);
            }
            return Err(e);
        }
        self.flush().await
    }

    /// Whether the store writes, and its disk's room.
    pub fn health(&self) -> &DiskHealth {
        &self.health
    }

    /// One alarm by id.
    pub fn get(&self, id: &str) -> Result<Option<AlarmRecord>, StoreError> {
        self.trees[ALARMS].get(id.as_bytes())?.map(|v| self.parse(id, &v)).transpose()
    }

    /// The JPEG snapshot of an alarm, if it has one.
    pub fn snapshot(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        self.trees[SNAPSHOTS].get(id.as_bytes())
    }

    /// Up to `limit` alarms still new and never escalated that arrived at or before
    /// `received_by_ms`, the earliest first.
    pub fn escalation_due(
        &self,
        received_by_ms: i64,
        limit: usize,
    ) -> Result<Vec<AlarmRecord>, StoreError> {
        let prefix = index_prefix(&[ESCALATION]);
        let mut end = prefix.clone();
        end.extend_from_slice(&time_key(received_by_ms.saturating_add(1), ""));
        let mut due = Vec::new();
        for key in self.trees[BY_STATUS].range(prefix.clone()..end).keys() {
            let key = key?;
            let id = String::from_utf8_lossy(key.get(prefix.len() + 8..).unwrap_or_default());
            // An unreadable record is left out (logged and counted once), as lists leave it.
            if let Some(bytes) = self.trees[ALARMS].get(id.as_bytes())?
                && let Ok(r) = self.parse(&id, &bytes)
            {
                due.push(r);
            }
            if due.len() == limit {
                break;
            }
        }
        Ok(due)
    }

    /// Number of stored alarms with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.trees[BY_STATUS].count_prefix(index_prefix(&[status.as_str()]))
    }

    /// Number of stored alarms.
    pub fn len(&self) -> usize {
        self.trees[ALARMS].len()
    }

    /// Whether no alarm is stored.
    pub fn is_empty(&self) -> bool {
        self.trees[ALARMS].is_empty()
    }

    /// Alarm records found unreadable since start, each counted once.
    pub fn unreadable_records(&self) -> u64 {
        self.unreadable.lock().unwrap_or_else(PoisonError::into_inner).len() as u64
    }

    /// The record stored under `id`, or why it does not parse. One that does not (written by
    /// an older version with a number JSON cannot hold, or damaged) is logged the first time
    /// and counted; lists, escalation and the export then go on without it.
    fn parse(&self, id: &str, bytes: &[u8]) -> Result<AlarmRecord, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let message = e.to_string();
            let mut unreadable = self.unreadable.lock().unwrap_or_else(PoisonError::into_inner);
            if unreadable.insert(id.to_owned()) {
                tracing::warn!(key = %id, "alarm record cannot be read ({message}): left out of lists, escalation and the export");
            }
            StoreError::Corrupt { id: id.to_owned(), message }
        })
    }
}

#[cfg(test)]
impl Store {
    /// The store unit tests use: sled in `dir`, or with `XL_TEST_STORE=postgres` a database on
    /// the test process's own PostgreSQL server (the same one for the same `dir`).
    pub(crate) fn for_test(dir: &Path) -> Result<Self, StoreError> {
        let backend = Backend::postgres_or_embedded(xueliang_pgtest::store_asked(dir));
        Self::open_with(&backend, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Action, Request, apply, test_alarm as alarm};
    use xueliang_proto::Alarm;

    fn insert(s: &Store, a: &Alarm, received: i64) -> Inserted {
        s.insert(&AlarmRecord::from_alarm(a, received), &a.snapshot_jpeg).unwrap()
    }

    #[test]
    fn escalation_reads_the_new_alarms_not_escalated_that_arrived_by_then_earliest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        // Event times in another order than arrivals: a box that was offline sends late.
        for (id, event, received) in [("a", 50, 100), ("b", 10, 300), ("c", 5, 200), ("d", 1, 400)]
        {
            insert(&s, &alarm(id, event), received);
        }
        let due = |by, limit| -> Vec<String> {
            s.escalation_due(by, limit).unwrap().into_iter().map(|r| r.id).collect()
        };
        assert_eq!(due(300, 10), ["a", "c", "b"], "arrived by 300, earliest first");
        assert_eq!(due(300, 2), ["a", "c"]);
        s.update("a", |r| {
            r.escalated = true;
            Ok::<_, ()>(())
        })
        .unwrap();
        s.update("c", |r| {
            r.status = Status::Acknowledged;
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(due(1000, 10), ["b", "d"], "escalated or acknowledged: no longer waiting");
        s.update("c", |r| {
            r.status = Status::New;
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(due(1000, 10), ["c", "b", "d"]);
    }

    #[tokio::test]
    async fn a_redelivered_alarm_is_stored_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::for_test(dir.path()).unwrap();
            assert_eq!(insert(&s, &alarm("x", 5), 1), Inserted::New);
            let mut again = alarm("x", 5);
            again.camera_id = "changed".into();
            assert_eq!(insert(&s, &again, 2), Inserted::Duplicate);
            s.flush().await.unwrap();
        }
        let s = Store::for_test(dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        let r = s.get("x").unwrap().unwrap();
        assert_eq!(
            (r.camera_id.as_str(), r.kind.as_str(), r.severity.as_str()),
            ("c", "zone_intrusion", "high")
        );
        assert_eq!(s.snapshot("x").unwrap().unwrap().as_ref(), &[0xff, 0xd8, 0xff, 0xd9]);
    }

    #[tokio::test]
    async fn a_database_sled_finds_damaged_at_open_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            insert(&s, &alarm("x", 5), 1);
            s.flush().await.unwrap();
        }
        // sled lets go of its file lock when its flusher thread ends, a moment after the drop.
        let reopen = || loop {
            match Store::open(dir.path()) {
                Err(StoreError::Sled(sled::Error::Io(e))) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        // sled writes its snapshot file when it opens a log that grew.
        drop(reopen().unwrap());
        let snap = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("snap."))
            .expect("a snapshot file");
        let mut bytes = std::fs::read(&snap).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&snap, bytes).unwrap();
        match reopen() {
            Err(StoreError::CorruptDatabase { dir: d, .. }) => assert_eq!(d, dir.path()),
            other => panic!("not refused as corrupt: {other:?}"),
        }
    }

    #[test]
    fn a_following_snapshot_is_kept_only_if_it_is_the_signed_picture() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
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
        let s = Store::for_test(dir.path()).unwrap();
        insert(&s, &alarm("old", 1), 0);
        let records: Vec<AlarmRecord> = ["a", "old", "b", "a"]
            .iter()
            .map(|id| AlarmRecord::from_alarm(&alarm(id, 2), 0))
            .collect();
        let batch: Vec<(&AlarmRecord, &[u8], Option<&Proof>)> =
            records.iter().map(|r| (r, &b"jpeg"[..], None)).collect();
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
        let s = Store::for_test(dir.path()).unwrap();
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
        let s = Store::for_test(dir.path()).unwrap();
        insert(&s, &alarm("x", 5), 1);
        let step = |action, units: &[String]| {
            s.update("x", |r| {
                apply(r, &Request { action, by: "zhang", at_ms: 9, note: "", units, late: None })
            })
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
        let s = Store::for_test(dir.path()).unwrap();
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

    #[test]
    fn an_unreadable_record_is_left_out_of_lists_and_the_export_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::for_test(dir.path()).unwrap();
        insert(&s, &alarm("good", 2), 0);
        insert(&s, &alarm("garbage", 1), 0);
        s.trees[ALARMS].insert("garbage", &b"\xff\x00 not JSON"[..]).unwrap();
        // What an older center stored for a NaN score: JSON writes it as null, which reads
        // back as no number.
        let mut nan = alarm("nan", 3);
        nan.detections = vec![xueliang_proto::Detection { score: f32::NAN, ..Default::default() }];
        insert(&s, &nan, 0);
        let listed = |s: &Store, filter: AlarmFilter| -> Vec<String> {
            s.query(&filter, None, 10).unwrap().alarms.into_iter().map(|r| r.id).collect()
        };
        for _ in 0..2 {
            assert_eq!(listed(&s, AlarmFilter::default()), ["good"]);
            let new = AlarmFilter { status: Some(Status::New), ..Default::default() };
            assert_eq!(listed(&s, new), ["good"]);
            let due: Vec<String> =
                s.escalation_due(10, 10).unwrap().into_iter().map(|r| r.id).collect();
            assert_eq!(due, ["good"], "escalation's read");
        }
        let mut exported = Vec::new();
        s.for_each(&AlarmFilter::default(), |r| {
            exported.push(r.id);
            Ok(())
        })
        .unwrap();
        assert_eq!(exported, ["good"]);
        assert!(matches!(s.get("nan"), Err(StoreError::Corrupt { id, .. }) if id == "nan"));
        assert_eq!(s.unreadable_records(), 2, "each counted once, however often read");
        // Re-indexing leaves them out rather than refusing to open the store.
        s.open_tree("meta").unwrap().remove("index_version").unwrap();
        drop(s);
        let s = Store::for_test(dir.path()).unwrap();
        assert_eq!(listed(&s, AlarmFilter::default()), ["good"]);
        assert_eq!((s.len(), s.unreadable_records()), (3, 2), "kept as they are");
    }
}
