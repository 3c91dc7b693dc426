//! The audit log: who viewed which snapshot, who took which step on an alarm, who logged in,
//! pushed a config or exported the store. Append-only: entries are keyed by an increasing
//! sequence number and only retention deletes them, oldest first, on its own (longer) setting.
//! A second tree indexes entries by their target (an alarm id, an agent id) so an alarm's trail
//! is read without a scan.
//!
//! The log is hash-chained, so that an entry edited, removed or moved in the database shows:
//! each entry holds its own sequence number and the SHA-256 of the stored bytes of the entry
//! before it (all zeros for the very first). Entries written before the chain (by an older
//! center) hold no link: the chain starts after them, and they are counted but not covered.
//! The center signs a checkpoint naming the chain's head (its sequence number and hash) with
//! its own key (the one that signs receipts) every [`CHECKPOINT_EVERY`] entries, every few
//! minutes while entries come, and at a clean shutdown ([`AuditLog::keep_checkpoints`]), so
//! that the newest entries cannot be rewritten with their links either. [`AuditLog::verify`]
//! walks the chain and the checkpoints (`xl-center audit verify`).
//!
//! The chain's head (sequence number and hash) is kept in the store too and moved in the same
//! transaction as each entry, so that several center processes sharing one store append to one
//! chain.
//!
//! Retention ([`AuditLog::sweep`]) deletes whole runs up to a signed checkpoint and keeps that
//! checkpoint: it names the hash the first entry left links to, so the chain still verifies
//! from there, and entries removed after it still show.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use xueliang_proto::signing::{SigningKey, VerifyingKey, hex, sha256};
use xueliang_proto::{Message, decode_limited};

use crate::store::{Interrupted, Store, StoreError, Tree, View, index_prefix, write};

/// A checkpoint is signed at least every this many entries.
const CHECKPOINT_EVERY: u64 = 1000;
/// The field of a checkpoint's signature: its body is field 1 (a protobuf string).
const CHECKPOINT_SIGNATURE_FIELD: u32 = 2;
/// The link of the very first entry.
const GENESIS: [u8; 32] = [0; 32];
/// The key of the chain's head in its tree: the sequence number (8 bytes, big-endian) and
/// the hash (32 bytes) of the newest entry.
const HEAD: &[u8] = b"head";

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number (increasing).
    pub seq: u64,
    /// When, UTC ms.
    pub time_ms: i64,
    /// Login of who did it (`system` for the center itself, `-` if nobody logged in).
    pub user: String,
    /// What: `view_snapshot`, `acknowledge`, `login_failed`, `push_config`, ...
    pub action: String,
    /// What it was done to: an alarm id, an agent id, a login (may be empty).
    pub target: String,
    /// More, e.g. the note or the units.
    pub detail: String,
    /// SHA-256 (hex) of the stored bytes of the entry before; empty in entries written before
    /// the log was chained.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev: String,
}

/// What a checkpoint says, signed: the chain's head when it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    /// The head's sequence number.
    seq: u64,
    /// SHA-256 (hex) of the head's stored bytes.
    sha256: String,
    /// When it was signed, UTC ms.
    time_ms: i64,
}

/// The chain's newest entry, as the writer knows it.
#[derive(Debug)]
struct Head {
    seq: u64,
    hash: [u8; 32],
    /// Entries appended since the last checkpoint.
    unsigned: u64,
}

/// The audit trees of the center's database.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Store,
    entries: crate::store::Tree,
    by_target: crate::store::Tree,
    checkpoints: crate::store::Tree,
    /// The chain's head as stored, which every append moves.
    stored_head: crate::store::Tree,
    /// The head this process last wrote, for its checkpoints; serializes its appends.
    head: Arc<Mutex<Head>>,
    /// Signs checkpoints (none: none are made).
    key: Option<Arc<SigningKey>>,
}

/// What [`AuditLog::verify`] found intact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainReport {
    /// Entries written before the log was chained (not covered).
    pub unchained: u64,
    /// Chained entries, every link intact.
    pub chained: u64,
    /// The last chained entry: (sequence number, time).
    pub head: Option<(u64, i64)>,
    /// Signed checkpoints, each verified.
    pub checkpoints: u64,
    /// The last checkpoint: (sequence number of its head, when signed, the head's hash).
    pub last_checkpoint: Option<(u64, i64, String)>,
    /// Chained entries after the last checkpoint (not signed yet).
    pub unsigned: u64,
    /// Where the log begins after retention deleted older entries: the checkpoint the first
    /// entry left links to (sequence number of its head, when it was signed).
    pub begins_after: Option<(u64, i64)>,
}

/// Where the chain breaks.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// An entry is broken.
    #[error("audit entry {seq} ({}): {problem}", time(*.time_ms))]
    Entry {
        /// Its sequence number (its key's).
        seq: u64,
        /// When it says it was written, if it is readable.
        time_ms: Option<i64>,
        /// How.
        problem: String,
    },
    /// A checkpoint is broken.
    #[error("audit checkpoint at entry {seq}: {problem}")]
    Checkpoint {
        /// The sequence number of the head it names.
        seq: u64,
        /// How.
        problem: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `time_ms` as RFC 3339 (UTC), or that it is unknown.
fn time(time_ms: Option<i64>) -> String {
    match time_ms.map(jiff::Timestamp::from_millisecond) {
        Some(Ok(t)) => t.to_string(),
        Some(Err(_)) => format!("{} ms", time_ms.unwrap_or_default()),
        None => "time unreadable".into(),
    }
}

impl std::fmt::Display for ChainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} audit entries chained", self.chained)?;
        if let Some((seq, t)) = self.head {
            write!(f, " (the last: entry {seq}, {})", time(Some(t)))?;
        }
        match &self.last_checkpoint {
            Some((seq, t, hash)) => write!(
                f,
                "; checkpoints signed: {}, the last at entry {seq} ({}, SHA-256 {hash})",
                self.checkpoints,
                time(Some(*t))
            )?,
            None => write!(f, "; no signed checkpoint yet")?,
        }
        if self.unsigned > 0 {
            write!(f, "; {} entries after the last checkpoint are not signed yet", self.unsigned)?;
        }
        if let Some((seq, t)) = self.begins_after {
            write!(
                f,
                "; entries up to {seq} were deleted by retention (the log goes on from the \
                 checkpoint signed at {})",
                time(Some(t))
            )?;
        }
        if self.unchained > 0 {
            write!(
                f,
                "; {} entries written before the log was chained are not covered",
                self.unchained
            )?;
        }
        Ok(())
    }
}

/// The sequence number in an entry's or a checkpoint's key.
fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map_or(0, u64::from_be_bytes)
}

impl AuditLog {
    /// Opens the log kept in `store`'s database; new entries link to its newest.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let entries = store.open_tree("audit")?;
        let checkpoints = store.open_tree("audit_checkpoints")?;
        let head = match entries.last()? {
            // Unsigned if the last run stopped without signing it: the next checkpoint does.
            Some((k, v)) => Head {
                seq: seq_of(&k),
                hash: digest(&v),
                unsigned: u64::from(!checkpoints.contains_key(&k)?),
            },
            None => Head { seq: 0, hash: GENESIS, unsigned: 0 },
        };
        let stored_head = store.open_tree("audit_head")?;
        // A log kept before its head was stored (or written since by an older center): the
        // head is its last entry. Another process may store it first, the same.
        let stored = stored_head.get(HEAD)?;
        if stored.as_deref().and_then(parse_head).is_none_or(|(seq, _)| seq < head.seq) {
            let _ = stored_head.compare_and_swap(
                HEAD,
                stored,
                Some(head_bytes(head.seq, &head.hash)),
            )?;
        }
        Ok(Self {
            store: store.clone(),
            entries,
            by_target: store.open_tree("audit_by_target")?,
            checkpoints,
            stored_head,
            head: Arc::new(Mutex::new(head)),
            key: None,
        })
    }

    /// This log, signing checkpoints with the center's `key`.
    pub fn signed_by(mut self, key: Arc<SigningKey>) -> Self {
        self.key = Some(key);
        self
    }

    /// Appends an entry linked to the one before (durable with the store's next flush).
    pub fn record(
        &self,
        time_ms: i64,
        user: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, StoreError> {
        let append = self.begin()?;
        let entry =
            write(
                &append.trees(),
                |t| Ok(append.write(t, time_ms, user, action, target, detail)?),
            )?;
        append.done(&entry);
        Ok(entry)
    }

    /// Begins an append made in a transaction of the caller's (with a workflow step, say) over
    /// [`Append::trees`]; this process's other appends wait until it is done or dropped.
    pub fn begin(&self) -> Result<Append<'_>, StoreError> {
        let head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
        // Taken under the lock: a sequence number above every id given so far.
        let id = self.store.next_id()?;
        Ok(Append { log: self, head, id })
    }

    /// Signs a checkpoint naming `head`, if entries came since the last one and there is a key.
    fn checkpoint(&self, head: &mut Head, now_ms: i64) -> Result<(), StoreError> {
        let Some(key) = &self.key else { return Ok(()) };
        if head.unsigned == 0 {
            return Ok(());
        }
        let body = Checkpoint { seq: head.seq, sha256: hex(&head.hash), time_ms: now_ms };
        // Plain fields: serializing cannot fail.
        let body = serde_json::to_string(&body).expect("a Checkpoint serializes");
        match key.sign(body.encode_to_vec(), CHECKPOINT_SIGNATURE_FIELD, &[]) {
            Ok(signed) => {
                self.checkpoints.insert(head.seq.to_be_bytes(), signed)?;
                head.unsigned = 0;
            }
            // Our own encoding: this cannot happen, and the next checkpoint covers these.
            Err(e) => warn!("cannot sign an audit checkpoint: {e}"),
        }
        Ok(())
    }

    /// Signs a checkpoint every `every` while entries come and once `shutdown` is cancelled,
    /// each made durable at once.
    pub async fn keep_checkpoints(self, every: Duration, shutdown: CancellationToken) {
        loop {
            let stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tokio::time::sleep(every) => false,
            };
            let now = xueliang_proto::endpoint::now_ms();
            let signed = {
                let mut head = self.head.lock().unwrap_or_else(PoisonError::into_inner);
                self.checkpoint(&mut head, now)
            };
            if let Err(e) = signed {
                warn!("cannot keep an audit checkpoint: {e}");
            } else if let Err(e) = self.store.flush().await {
                warn!("cannot flush an audit checkpoint: {e}");
            }
            if stop {
                return;
            }
        }
    }

    /// Up to `limit` entries before sequence number `before` (all if none), newest first; only
    /// those about `target` if given.
    pub fn list(
        &self,
        target: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let end = before.unwrap_or(u64::MAX).to_be_bytes();
        let seqs: Vec<[u8; 8]> = match target {
            Some(t) => {
                let prefix = index_prefix(&[t]);
                let (mut from, mut to) = (prefix.clone(), prefix.clone());
                from.extend_from_slice(&[0; 8]);
                to.extend_from_slice(&end);
                self.by_target
                    .range(from..to)
                    .rev()
                    .take(limit)
                    .map(|e| e.map(|(k, _)| k[prefix.len()..].try_into().unwrap_or([0; 8])))
                    .collect::<Result<_, _>>()?
            }
            None => self
                .entries
                .range(..end)
                .rev()
                .take(limit)
                .map(|e| e.map(|(k, _)| k.as_ref().try_into().unwrap_or([0; 8])))
                .collect::<Result<_, _>>()?,
        };
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(bytes) = self.entries.get(seq)? {
                out.push(serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    id: format!("audit entry {}", u64::from_be_bytes(seq)),
                    message: e.to_string(),
                })?);
            }
        }
        Ok(out)
    }

    /// Deletes the entries older than `before_ms`, in whole runs up to the newest checkpoint
    /// they reach (kept as the anchor the chain goes on from) and the older checkpoints;
    /// returns how many entries. Durable with the store's next flush.
    pub fn sweep(&self, before_ms: i64) -> Result<usize, StoreError> {
        // Newest checkpoint whose head is older than the limit.
        let mut anchor = None;
        for k in self.checkpoints.iter().keys() {
            let seq = seq_of(&k?);
            let old = match self.entries.get(seq.to_be_bytes())? {
                Some(bytes) => serde_json::from_slice::<AuditEntry>(&bytes)
                    .is_ok_and(|e| e.time_ms < before_ms),
                // Its entry is gone already: it is the anchor of an earlier sweep.
                None => true,
            };
            if !old {
                break;
            }
            anchor = Some(seq);
        }
        let Some(anchor) = anchor else { return Ok(0) };
        let mut deleted = 0;
        for item in self.entries.range(..=anchor.to_be_bytes()) {
            let (k, v) = item?;
            if let Ok(e) = serde_json::from_slice::<AuditEntry>(&v)
                && !e.target.is_empty()
            {
                let mut index = index_prefix(&[&e.target]);
                index.extend_from_slice(&k);
                self.by_target.remove(index)?;
            }
            self.entries.remove(k)?;
            deleted += 1;
        }
        for k in self.checkpoints.range(..anchor.to_be_bytes()).keys() {
            self.checkpoints.remove(k?)?;
        }
        Ok(deleted)
    }

    /// The checkpoints, each verified with the center's public `key`: by the sequence number
    /// of the head each names.
    fn checkpoints(&self, key: &VerifyingKey) -> Result<BTreeMap<u64, Checkpoint>, ChainError> {
        let mut out = BTreeMap::new();
        for entry in self.checkpoints.iter() {
            let (k, v) = entry?;
            let seq = seq_of(&k);
            let broken = |problem: String| ChainError::Checkpoint { seq, problem };
            key.verify(&v, CHECKPOINT_SIGNATURE_FIELD, &[], "the center").map_err(|e| {
                broken(format!("{e}: it was not signed by this center, or it was edited"))
            })?;
            let body: String = decode_limited(&v).map_err(|e| broken(e.to_string()))?;
            let c: Checkpoint = serde_json::from_str(&body).map_err(|e| broken(e.to_string()))?;
            if c.seq != seq {
                return Err(broken(format!("it names entry {}: it was moved", c.seq)));
            }
            out.insert(seq, c);
        }
        Ok(out)
    }

    /// Walks the whole chain and every checkpoint (verified with the center's public `key`):
    /// what is intact, or the first break found, naming the entry and how it is broken.
    pub fn verify(&self, key: &VerifyingKey) -> Result<ChainReport, ChainError> {
        let mut checkpoints = self.checkpoints(key)?;
        let mut report =
            ChainReport { checkpoints: checkpoints.len() as u64, ..Default::default() };
        if let Some((seq, c)) = checkpoints.last_key_value() {
            report.last_checkpoint = Some((*seq, c.time_ms, c.sha256.clone()));
        }
        let last_checkpoint = report.last_checkpoint.as_ref().map(|c| c.0);
        let mut walk = self.entries.iter().map(read).peekable();
        // The entry before: its sequence number, time and the hash of its stored bytes.
        let mut before: Option<(u64, i64, [u8; 32])> = None;
        while let Some(step) = walk.next() {
            let (entry, hash) = step?;
            let broken = |problem: String| ChainError::Entry {
                seq: entry.seq,
                time_ms: Some(entry.time_ms),
                problem,
            };
            if entry.prev.is_empty() {
                if report.chained > 0 {
                    return Err(broken(
                        "it holds no link to the entry before it, though the chain began earlier: \
                         its link was removed"
                            .into(),
                    ));
                }
                report.unchained += 1;
            } else {
                let mut expected = before.map_or(hex(&GENESIS), |b| hex(&b.2));
                // The first entry left by retention links to the checkpoint kept before it.
                if before.is_none()
                    && entry.prev != expected
                    && let Some((&seq, c)) = checkpoints.range(..entry.seq).next_back()
                {
                    expected = c.sha256.clone();
                    report.begins_after = Some((seq, c.time_ms));
                    checkpoints.remove(&seq);
                }
                if entry.prev != expected {
                    // Whether this entry is as written: the next one, or else a checkpoint,
                    // recorded its hash.
                    let intact = match walk.peek() {
                        Some(Ok((next, _))) => Some(next.prev == hex(&hash)),
                        _ => checkpoints.get(&entry.seq).map(|c| c.sha256 == hex(&hash)),
                    };
                    return Err(link_broken(&entry, before, intact));
                }
                report.chained += 1;
                report.head = Some((entry.seq, entry.time_ms));
                if last_checkpoint.is_none_or(|c| entry.seq > c) {
                    report.unsigned += 1;
                }
            }
            if let Some(c) = checkpoints.remove(&entry.seq)
                && c.sha256 != hex(&hash)
            {
                return Err(broken(format!(
                    "its stored bytes do not hash to what the checkpoint signed at {} recorded: \
                     it was edited",
                    time(Some(c.time_ms))
                )));
            }
            before = Some((entry.seq, entry.time_ms, hash));
        }
        if let Some((seq, c)) = checkpoints.into_iter().next() {
            return Err(ChainError::Checkpoint {
                seq,
                problem: format!(
                    "the checkpoint signed at {} names entry {seq}, which is missing: entries \
                     were removed",
                    time(Some(c.time_ms))
                ),
            });
        }
        Ok(report)
    }
}

/// SHA-256 of an entry's stored bytes.
/// An entry being appended: see [`AuditLog::begin`].
pub struct Append<'a> {
    log: &'a AuditLog,
    head: MutexGuard<'a, Head>,
    id: u64,
}

impl Append<'_> {
    /// The trees the entry is written to, in the order [`Append::write`] takes their views.
    pub fn trees(&self) -> Vec<&Tree> {
        vec![&self.log.stored_head, &self.log.entries, &self.log.by_target]
    }

    /// Writes the entry, linked to the stored head (which another process may have moved), in
    /// the transaction's views of [`Append::trees`].
    pub fn write(
        &self,
        t: &[View<'_>],
        time_ms: i64,
        user: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, Interrupted> {
        let (prev_seq, prev_hash) =
            t[0].get(HEAD)?.as_deref().and_then(parse_head).unwrap_or((0, GENESIS));
        let entry = AuditEntry {
            seq: self.id.max(prev_seq + 1),
            time_ms,
            user: user.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
            prev: hex(&prev_hash),
        };
        let json = entry_bytes(&entry);
        t[1].insert(entry.seq.to_be_bytes(), json.as_slice())?;
        t[0].insert(HEAD, head_bytes(entry.seq, &digest(&json)))?;
        if !target.is_empty() {
            let mut k = index_prefix(&[target]);
            k.extend_from_slice(&entry.seq.to_be_bytes());
            t[2].insert(k, &[])?;
        }
        Ok(entry)
    }

    /// The transaction that wrote `entry` committed: it is this process's head now, signed
    /// with the next checkpoint.
    pub fn done(mut self, entry: &AuditEntry) {
        let unsigned = self.head.unsigned + 1;
        *self.head = Head { seq: entry.seq, hash: digest(&entry_bytes(entry)), unsigned };
        // The entry is in: a checkpoint that fails is logged, and the next one covers it.
        if self.head.unsigned >= CHECKPOINT_EVERY
            && let Err(e) = self.log.checkpoint(&mut self.head, entry.time_ms)
        {
            warn!("cannot keep an audit checkpoint: {e}");
        }
    }
}

/// An entry's stored bytes.
fn entry_bytes(entry: &AuditEntry) -> Vec<u8> {
    // Plain fields: serializing cannot fail.
    serde_json::to_vec(entry).expect("an AuditEntry serializes")
}

/// The stored form of the chain's head: its sequence number and hash.
fn head_bytes(seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    [&seq.to_be_bytes()[..], hash].concat()
}

/// The chain's head from its stored form, if it is one.
fn parse_head(bytes: &[u8]) -> Option<(u64, [u8; 32])> {
    let (seq, hash) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*seq), hash.try_into().ok()?))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    sha256(bytes).try_into().unwrap_or(GENESIS)
}

/// One stored entry, read for [`AuditLog::verify`]: the entry and the hash of its bytes.
fn read(
    stored: Result<(sled::IVec, sled::IVec), StoreError>,
) -> Result<(AuditEntry, [u8; 32]), ChainError> {
    let (k, v) = stored?;
    let seq = seq_of(&k);
    let entry: AuditEntry = serde_json::from_slice(&v).map_err(|e| ChainError::Entry {
        seq,
        time_ms: None,
        problem: format!("its stored bytes are not an entry ({e}): they were edited"),
    })?;
    if entry.seq != seq {
        return Err(ChainError::Entry {
            seq,
            time_ms: Some(entry.time_ms),
            problem: format!("it says it is entry {}: it was moved", entry.seq),
        });
    }
    Ok((entry, digest(&v)))
}

/// The break found at `entry`, whose link is not the hash of the entry `before` it: which one
/// was changed, told by whether `entry` is `intact` (its hash as recorded after it; none if
/// nothing recorded it).
fn link_broken(
    entry: &AuditEntry,
    before: Option<(u64, i64, [u8; 32])>,
    intact: Option<bool>,
) -> ChainError {
    match (before, intact) {
        // This entry's bytes are as recorded: the one before changed.
        (Some((seq, time_ms, _)), Some(true)) => ChainError::Entry {
            seq,
            time_ms: Some(time_ms),
            problem: format!(
                "its stored bytes do not hash to what the next entry ({}, {}) links to: it was \
                 edited, or entries after it were removed",
                entry.seq,
                time(Some(entry.time_ms))
            ),
        },
        (None, Some(true)) => ChainError::Entry {
            seq: entry.seq,
            time_ms: Some(entry.time_ms),
            problem: "it is the first entry but links to one before it: entries before it were \
                      removed"
                .into(),
        },
        (_, Some(false)) => ChainError::Entry {
            seq: entry.seq,
            time_ms: Some(entry.time_ms),
            problem: "neither its link to the entry before nor its own hash (as recorded after \
                      it) match: it was edited"
                .into(),
        },
        (_, None) => ChainError::Entry {
            seq: entry.seq,
            time_ms: Some(entry.time_ms),
            problem: format!(
                "its link does not match the entry before it{}: one of the two was edited, or \
                 entries between them were removed",
                before.map(|b| format!(" ({})", b.0)).unwrap_or_default()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Store, AuditLog, VerifyingKey) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(&dir.path().join("db")).unwrap();
        let key = Arc::new(SigningKey::load_or_create(&dir.path().join("center.key")).unwrap());
        let public = key.public_key().parse().unwrap();
        let log = AuditLog::open(&store).unwrap().signed_by(key);
        (dir, store, log, public)
    }

    #[test]
    fn entries_are_listed_newest_first_by_target_and_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let log = AuditLog::open(&store).unwrap();
        log.record(1, "zhang", "view_snapshot", "a1", "").unwrap();
        log.record(2, "li", "acknowledge", "a2", "on it").unwrap();
        let third = log.record(3, "zhang", "resolve", "a1", "done").unwrap();
        let actions = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.action).collect::<Vec<_>>();
        assert_eq!(
            actions(log.list(None, None, 10).unwrap()),
            ["resolve", "acknowledge", "view_snapshot"]
        );
        assert_eq!(actions(log.list(Some("a1"), None, 10).unwrap()), ["resolve", "view_snapshot"]);
        assert_eq!(actions(log.list(Some("a1"), Some(third.seq), 10).unwrap()), ["view_snapshot"]);
        assert_eq!(actions(log.list(None, None, 1).unwrap()), ["resolve"]);
        assert!(
            log.list(Some("a"), None, 10).unwrap().is_empty(),
            "a prefix of a target is another target"
        );
    }

    /// The stored bytes of entry `seq`, changed by `edit`.
    fn edit(log: &AuditLog, seq: u64, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = log.entries.get(seq.to_be_bytes()).unwrap().unwrap().to_vec();
        edit(&mut bytes);
        log.entries.insert(seq.to_be_bytes(), bytes).unwrap();
    }

    fn replace(bytes: &mut Vec<u8>, from: &str, to: &str) {
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(from));
        *bytes = text.replacen(from, to, 1).into_bytes();
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_checkpoints() {
        let (_dir, _store, log, key) = setup();
        assert_eq!(log.verify(&key).unwrap(), ChainReport::default());
        let seqs: Vec<u64> =
            (0..3).map(|i| log.record(i, "zhang", "view_alarm", "a", "").unwrap().seq).collect();
        let report = log.verify(&key).unwrap();
        assert_eq!((report.chained, report.checkpoints, report.unsigned), (3, 0, 3));
        log.checkpoint(&mut log.head.lock().unwrap(), 10).unwrap();
        log.record(11, "li", "resolve", "a", "").unwrap();
        let report = log.verify(&key).unwrap();
        assert_eq!((report.chained, report.checkpoints, report.unsigned), (4, 1, 1));
        assert_eq!(report.last_checkpoint.as_ref().map(|c| (c.0, c.1)), Some((seqs[2], 10)));
        assert!(report.to_string().starts_with("4 audit entries chained (the last: entry"));
        // A log reopened links on from its newest entry.
        let reopened = AuditLog::open(&log.store).unwrap();
        reopened.record(12, "li", "view_alarm", "a", "").unwrap();
        assert_eq!(log.verify(&key).unwrap().chained, 5);
    }

    #[test]
    fn a_head_left_unsigned_by_the_last_run_is_signed_by_the_next() {
        let (dir, store, log, key) = setup();
        let last = log.record(1, "zhang", "view_alarm", "a", "").unwrap().seq;
        drop(log);
        let center = SigningKey::load_or_create(&dir.path().join("center.key")).unwrap();
        let log = AuditLog::open(&store).unwrap().signed_by(Arc::new(center));
        log.checkpoint(&mut log.head.lock().unwrap(), 5).unwrap();
        let report = log.verify(&key).unwrap();
        assert_eq!((report.unsigned, report.last_checkpoint.map(|c| c.0)), (0, Some(last)));
        // Nothing new since: no second checkpoint.
        let again = AuditLog::open(&store).unwrap().signed_by(log.key.clone().unwrap());
        again.checkpoint(&mut again.head.lock().unwrap(), 6).unwrap();
        assert_eq!(log.verify(&key).unwrap().checkpoints, 1);
    }

    #[test]
    fn an_edited_entry_is_named_whichever_byte_changed() {
        let (_dir, _store, log, key) = setup();
        let seqs: Vec<u64> =
            (0..4).map(|i| log.record(i, "zhang", "view_alarm", "a", "").unwrap().seq).collect();
        // A field of the second entry: found at the third's link, blamed on the second.
        edit(&log, seqs[1], |b| replace(b, "zhang", "zhanG"));
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("audit entry {} (1970-01-01T00:00:00.001Z): its stored bytes do not hash to what the next entry ({}", seqs[1], seqs[2])),
            "{err}"
        );
        edit(&log, seqs[1], |b| replace(b, "zhanG", "zhang"));
        assert!(log.verify(&key).is_ok(), "restored");
        // Its link: blamed on it, since the next entry's link is wrong for it as well.
        edit(&log, seqs[1], |b| {
            let at = b.len() - 3;
            b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        });
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(err.starts_with(&format!("audit entry {} (", seqs[1])), "{err}");
        assert!(err.contains("it was edited"), "{err}");
        // Bytes that are no entry.
        edit(&log, seqs[1], |b| b[0] = b'#');
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(err.starts_with(&format!("audit entry {} (time unreadable)", seqs[1])), "{err}");
    }

    #[test]
    fn retention_deletes_up_to_a_checkpoint_and_the_chain_verifies_from_it() {
        let (_dir, _store, log, key) = setup();
        let mut seqs = Vec::new();
        for t in 0..6 {
            seqs.push(log.record(t, "zhang", "view_alarm", "a", "").unwrap().seq);
            if t == 2 || t == 5 {
                log.checkpoint(&mut log.head.lock().unwrap(), 10 + t).unwrap();
            }
        }
        assert_eq!(log.sweep(1).unwrap(), 0, "no checkpoint is that old: nothing goes");
        assert_eq!(log.sweep(4).unwrap(), 3, "the run up to the checkpoint at the third");
        assert_eq!(log.sweep(4).unwrap(), 0);
        let report = log.verify(&key).unwrap();
        assert_eq!((report.chained, report.begins_after), (3, Some((seqs[2], 12))));
        assert!(report.to_string().contains(&format!("entries up to {} were deleted", seqs[2])));
        assert_eq!(log.list(Some("a"), None, 10).unwrap().len(), 3, "the index follows");
        // One more removed by hand still shows.
        log.entries.remove(seqs[3].to_be_bytes()).unwrap();
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(err.contains("removed"), "{err}");
    }

    #[test]
    fn removed_moved_and_rewritten_entries_break_the_chain_or_a_checkpoint() {
        let (dir, _store, log, key) = setup();
        let seqs: Vec<u64> =
            (0..4).map(|i| log.record(i, "zhang", "view_alarm", "a", "").unwrap().seq).collect();
        log.checkpoint(&mut log.head.lock().unwrap(), 10).unwrap();
        // Removed: the next entry's link names it.
        let second = log.entries.remove(seqs[1].to_be_bytes()).unwrap().unwrap();
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(err.contains("entries after it were removed"), "{err}");
        // Swapped with the next.
        let third = log.entries.get(seqs[2].to_be_bytes()).unwrap().unwrap();
        log.entries.insert(seqs[2].to_be_bytes(), second.clone()).unwrap();
        log.entries.insert(seqs[1].to_be_bytes(), third.clone()).unwrap();
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("audit entry {} (", seqs[1]))
                && err.ends_with(&format!("it says it is entry {}: it was moved", seqs[2])),
            "{err}"
        );
        log.entries.insert(seqs[1].to_be_bytes(), second).unwrap();
        log.entries.insert(seqs[2].to_be_bytes(), third).unwrap();
        assert!(log.verify(&key).is_ok());
        // The newest entry rewritten: only the signed checkpoint shows it.
        edit(&log, seqs[3], |b| replace(b, "zhang", "zhanG"));
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("audit entry {} (", seqs[3]))
                && err.contains("what the checkpoint signed at 1970-01-01T00:00:00.01Z recorded"),
            "{err}"
        );
        edit(&log, seqs[3], |b| replace(b, "zhanG", "zhang"));
        // The tail removed, checkpoint and all but for its key: the checkpoint names it.
        let last = log.entries.remove(seqs[3].to_be_bytes()).unwrap().unwrap();
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(err.contains("which is missing: entries were removed"), "{err}");
        log.entries.insert(seqs[3].to_be_bytes(), last).unwrap();
        // A checkpoint signed by another key.
        let other = SigningKey::load_or_create(&dir.path().join("other.key")).unwrap();
        let forged = other.sign("{}".to_owned().encode_to_vec(), CHECKPOINT_SIGNATURE_FIELD, &[]);
        log.checkpoints.insert(seqs[3].to_be_bytes(), forged.unwrap()).unwrap();
        let err = log.verify(&key).unwrap_err().to_string();
        assert!(err.contains("it was not signed by this center, or it was edited"), "{err}");
    }

    #[test]
    fn entries_written_before_the_chain_are_counted_and_the_chain_starts_after_them() {
        let (_dir, store, _log, key) = setup();
        let entries = store.open_tree("audit").unwrap();
        let mut last = 0;
        for _ in 0..2 {
            let seq = store.next_id().unwrap();
            last = seq;
            let old = format!(
                r#"{{"seq":{seq},"time_ms":{seq},"user":"zhang","action":"login","target":"zhang","detail":"admin"}}"#
            );
            entries.insert(seq.to_be_bytes(), old.as_bytes()).unwrap();
        }
        // Opened after them, as a center of this version starts on an older one's data.
        let log = AuditLog::open(&store).unwrap();
        log.record(3, "zhang", "view_alarm", "a", "").unwrap();
        let report = log.verify(&key).unwrap();
        assert_eq!((report.unchained, report.chained), (2, 1));
        assert!(report.to_string().contains("2 entries written before the log was chained"));
        assert_eq!(log.list(None, None, 10).unwrap().len(), 3, "all still listed");
        // An old entry edited changes the first link: found.
        edit(&log, last, |b| replace(b, "login", "logout"));
        assert!(log.verify(&key).is_err());
    }
}
