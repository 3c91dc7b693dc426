//! The durable outbox: every alarm is written here (and flushed) before it is published, and
//! leaves only when the center's receipt names it. A broker's PUBACK is not enough: brokers and
//! rumqttc lose what they hold across restarts; the center's receipt means "stored".
//!
//! Five sled trees: `queue` (sequence number, big-endian → encoded alarm) and `updates`
//! (sequence number → encoded EventUpdate) keep publishing order across restarts, an event's
//! updates after its opening alarm; `following` (sequence number and alarm id → encoded
//! Snapshot) holds pictures too big to travel with their alarm, sent once the alarm is
//! receipted; `clips` (sequence number, event id, '/', chunk id → encoded ClipChunk) holds the
//! chunks of event clips, sent once their event's alarm is receipted, each receipted on its own;
//! `index` (id → key in its tree) finds what a receipt names: an alarm or an update by its id, a
//! following snapshot by [`snapshot_id`]`(alarm id)`, a clip chunk by its
//! `{clip_id}@{offset}`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::Transactional;
use tracing::warn;
use xueliang_proto::endpoint::now_ms;
use xueliang_proto::{Alarm, EventUpdate, Message, Severity, decode_limited};

use crate::config::OutboxConfig;
use crate::evidence::{MessageKind, Sealed};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened (disk, permissions, another agent using it).
    #[error(
        "cannot open the outbox in {dir}: {error} (is another agent running with this data_dir?)"
    )]
    Open {
        /// The directory concerned.
        dir: PathBuf,
        /// What went wrong.
        error: sled::Error,
    },
    /// A write or flush failed (a full disk, say): the alarm is not stored.
    #[error("outbox write failed: {0}")]
    Write(String),
}

/// What follows an outbox folder's name once it was found corrupt and moved aside.
const CORRUPT_SUFFIX: &str = ".corrupt-";

/// Where the corrupt outbox in `dir` is moved: beside it, named with the time (UTC ms).
fn moved_aside_name(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{CORRUPT_SUFFIX}{}", now_ms()));
    dir.with_file_name(name)
}

/// The outbox folders beside `dir` that were found corrupt and moved aside.
pub fn moved_aside(dir: &Path) -> Vec<PathBuf> {
    let mut prefix = dir.file_name().unwrap_or_default().to_os_string();
    prefix.push(CORRUPT_SUFFIX);
    let prefix = prefix.to_string_lossy().into_owned();
    let Some(Ok(entries)) = dir.parent().map(std::fs::read_dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        .collect();
    found.sort();
    found
}

/// What ends the outbox id of a snapshot that follows its alarm (ids have no '/').
const SNAPSHOT_SUFFIX: &str = "/snapshot";

/// Whether outbox id `id` is a following snapshot's.
pub fn is_snapshot_id(id: &str) -> bool {
    id.ends_with(SNAPSHOT_SUFFIX)
}

/// Whether outbox id `id` is a clip chunk's (`{clip_id}@{offset}`).
pub fn is_clip_chunk_id(id: &str) -> bool {
    id.contains('@')
}

/// The outbox id of the snapshot that follows alarm `alarm_id`.
pub fn snapshot_id(alarm_id: &str) -> String {
    format!("{alarm_id}{SNAPSHOT_SUFFIX}")
}

/// What a waiting message is, for the topic it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// An `Alarm`.
    Alarm,
    /// An `EventUpdate`.
    Update,
    /// A `Snapshot` that follows its receipted alarm.
    Snapshot,
    /// A `ClipChunk` of an event whose alarm is receipted.
    Clip,
}

/// One message waiting for its receipt.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Position in publishing order.
    pub seq: u64,
    /// The message's outbox id.
    pub id: String,
    /// What it is.
    pub kind: PendingKind,
    /// The encoded message, as published.
    pub payload: Vec<u8>,
}

/// How much the outbox may hold before it gives things up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of encoded alarms (snapshots included).
    pub max_bytes: u64,
    /// Age of an alarm (from its event time), milliseconds.
    pub max_age_ms: i64,
    /// Memory the database keeps as cache, bytes.
    pub cache_bytes: u64,
}

impl From<&OutboxConfig> for Limits {
    fn from(c: &OutboxConfig) -> Self {
        Self {
            max_bytes: c.max_mib.saturating_mul(1 << 20),
            max_age_ms: (c.max_age_days as f64 * 86_400_000.0) as i64,
            cache_bytes: c.cache_mib.saturating_mul(1 << 20),
        }
    }
}

/// What the outbox gave up, since it was opened (for Health).
#[derive(Debug, Default)]
pub struct Drops {
    /// Snapshots removed from waiting alarms (the alarm itself still waits).
    pub snapshots: AtomicU64,
    /// Whole alarms removed because the outbox was full.
    pub alarms: AtomicU64,
    /// Alarms removed because they were older than the age limit.
    pub expired: AtomicU64,
    /// Event updates removed (their pictures, or the updates of a dropped alarm).
    pub updates: AtomicU64,
    /// Event clips removed unsent (the outbox was full, or their alarm was given up).
    pub clips: AtomicU64,
}

/// The database and its trees.
#[derive(Debug)]
struct Trees {
    db: sled::Db,
    queue: sled::Tree,
    following: sled::Tree,
    updates: sled::Tree,
    clips: sled::Tree,
    index: sled::Tree,
}

/// The agent's outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    trees: Arc<Trees>,
    /// The write error sled keeps (it fails every later write until the agent restarts).
    write_error: Arc<Mutex<Option<String>>>,
    limits: Limits,
    bytes: Arc<AtomicU64>,
    /// How many of each wait, kept as they change: sled counts a tree by reading all of it.
    waiting: Arc<Waiting>,
    /// What was given up to stay within the limits.
    pub drops: Arc<Drops>,
}

/// Counts of what waits.
#[derive(Debug, Default)]
struct Waiting {
    /// Alarms, event updates and following snapshots.
    messages: AtomicU64,
    /// Clip chunks.
    chunks: AtomicU64,
}

/// What the full-outbox policy gives up, one at a time.
enum Relief {
    StripSnapshot,
    Drop,
    /// Drop the oldest snapshot waiting to follow its alarm (whatever `pick` says).
    DropFollowing,
}

/// Which alarms a relief step applies to, and what it does to them.
type ReliefStep<'a> = (&'a dyn Fn(&Alarm) -> bool, Relief);

/// How long opening waits for the outbox's lock: sled's flusher thread may hold it for a
/// moment after the outbox that had it open is dropped (an outbox reopened in one process).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether sled could not open a database because something holds its lock (sled says so only
/// in its message).
fn locked(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"))
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`. An outbox sled finds corrupt (after a power
    /// loss, say) is moved aside to `dir` + [`CORRUPT_SUFFIX`] + the time, for inspection or
    /// salvage, and a new one is started: a box that cannot start sends nothing at all. A
    /// locked outbox is waited for up to [`LOCK_WAIT`].
    pub fn open(dir: &Path, limits: Limits) -> Result<Self, OutboxError> {
        let started = std::time::Instant::now();
        let opened = loop {
            match Self::open_at(dir, limits) {
                Err(OutboxError::Open { error, .. })
                    if locked(&error) && started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                opened => break opened,
            }
        };
        match opened {
            Err(OutboxError::Open { error: error @ sled::Error::Corruption { .. }, .. }) => {
                let aside = moved_aside_name(dir);
                std::fs::rename(dir, &aside).map_err(|e| OutboxError::Open {
                    dir: dir.to_owned(),
                    error: sled::Error::Io(e),
                })?;
                tracing::error!(
                    "the outbox in {} is corrupt ({error}): moved aside to {} and a new one \
                     started; what waited in it is not sent (keep that folder for inspection)",
                    dir.display(),
                    aside.display()
                );
                Self::open_at(dir, limits)
            }
            opened => opened,
        }
    }

    fn open_at(dir: &Path, limits: Limits) -> Result<Self, OutboxError> {
        let (trees, bytes, waiting) = Trees::open(dir, limits.cache_bytes)?;
        Ok(Self {
            dir: dir.to_owned(),
            trees: Arc::new(trees),
            write_error: Arc::default(),
            limits,
            bytes: Arc::new(AtomicU64::new(bytes)),
            waiting: Arc::new(waiting),
            drops: Arc::default(),
        })
    }

    /// The database.
    fn t(&self) -> &Trees {
        &self.trees
    }

    /// Notes a failed write: sled fails every later one too, until the agent restarts.
    fn failed(&self, e: impl std::fmt::Display) -> OutboxError {
        let message = e.to_string();
        let mut slot = self.write_error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| message.clone());
        OutboxError::Write(message)
    }

    /// The folder it is kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The write error since the outbox was opened, if one happened.
    pub fn write_error(&self) -> Option<String> {
        self.write_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Bytes of the waiting alarms.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Applies the limits. Expired alarms go first (with their events' updates and clips);
    /// then, while over the byte limit, the policy gives up the least important thing left, in
    /// this order: the oldest event clip (all of it), the picture of the oldest event update that
    /// has one, the snapshot of the oldest alarm
    /// below high severity, such an alarm itself, the oldest snapshot waiting to follow its
    /// alarm, the snapshot of the oldest alarm of any severity, and last the oldest alarm. An
    /// alarm given up takes its event's updates along. Every step is logged and counted.
    fn enforce(&self) -> Result<(), OutboxError> {
        let oldest_allowed = now_ms() - self.limits.max_age_ms;
        let t = self.t();
        for (_, alarm) in t.scan() {
            if alarm.event_time_ms >= oldest_allowed {
                break;
            }
            warn!(alarm = %alarm.id, camera = %alarm.camera_id, "outbox: alarm older than the age limit dropped unsent");
            self.forget(&alarm.id)?;
            self.drops.expired.fetch_add(1, Ordering::Relaxed);
        }
        while self.bytes() > self.limits.max_bytes && self.drop_oldest_clip()? {}
        while self.bytes() > self.limits.max_bytes && self.strip_update_picture()? {}
        let low = |a: &Alarm| a.severity < Severity::High as i32;
        let any = |_: &Alarm| true;
        let steps: [ReliefStep; 5] = [
            (&|a| low(a) && !a.snapshot_jpeg.is_empty(), Relief::StripSnapshot),
            (&low, Relief::Drop),
            (&any, Relief::DropFollowing),
            (&|a| !a.snapshot_jpeg.is_empty(), Relief::StripSnapshot),
            (&any, Relief::Drop),
        ];
        for (pick, relief) in steps {
            while self.bytes() > self.limits.max_bytes && self.relieve(&relief, pick)? {}
        }
        Ok(())
    }

    /// Gives up one thing by `relief` (to the oldest alarm `pick` accepts); false if there was
    /// nothing to give up.
    fn relieve(&self, relief: &Relief, pick: &dyn Fn(&Alarm) -> bool) -> Result<bool, OutboxError> {
        if let Relief::DropFollowing = relief {
            let Some((_, alarm_id)) = self.t().waiting_snapshots().next() else {
                return Ok(false);
            };
            warn!(alarm = %alarm_id, "outbox full: a snapshot waiting to follow its alarm dropped");
            self.remove(&snapshot_id(&alarm_id))?;
            self.drops.snapshots.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        let t = self.t();
        let Some((seq, alarm)) = t.scan().find(|(_, a)| pick(a)) else { return Ok(false) };
        if let Relief::StripSnapshot = relief {
            warn!(alarm = %alarm.id, bytes = alarm.snapshot_jpeg.len(), "outbox full: snapshot dropped, the alarm still waits");
            let stripped = Alarm { snapshot_jpeg: Default::default(), ..alarm };
            let payload = stripped.encode_to_vec();
            let old = t
                .queue
                .insert(seq.to_be_bytes(), payload.as_slice())
                .map_err(|e| self.failed(e))?;
            let old_len = old.map_or(0, |v| v.len() as u64);
            self.bytes.fetch_sub(old_len.saturating_sub(payload.len() as u64), Ordering::Relaxed);
            self.drops.snapshots.fetch_add(1, Ordering::Relaxed);
        } else {
            warn!(alarm = %alarm.id, camera = %alarm.camera_id, severity = alarm.severity, "outbox full: alarm dropped unsent");
            self.forget(&alarm.id)?;
            self.drops.alarms.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// Removes alarm `id`, the snapshot that would follow it, and its event's updates and clips.
    fn forget(&self, id: &str) -> Result<(), OutboxError> {
        self.remove(id)?;
        self.remove(&snapshot_id(id))?;
        let t = self.t();
        let clips: std::collections::BTreeSet<String> = t
            .waiting_chunks()
            .filter(|c| c.event_id == id)
            .map(|c| clip_of(&c.chunk_id).to_owned())
            .collect();
        for clip in clips {
            self.drop_clip(&clip)?;
        }
        let orphans: Vec<String> = t
            .waiting_updates()
            .filter(|(_, u, _)| u.event_id == id)
            .map(|(_, u, _)| u.id)
            .collect();
        for update in orphans {
            self.remove(&update)?;
            self.drops.updates.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Gives up the oldest waiting clip, every chunk of it; false if none waits.
    fn drop_oldest_clip(&self) -> Result<bool, OutboxError> {
        let Some(oldest) = self.t().waiting_chunks().next() else { return Ok(false) };
        let clip = clip_of(&oldest.chunk_id).to_owned();
        warn!(clip = %clip, event = %oldest.event_id, "outbox full: an event clip dropped unsent");
        self.drop_clip(&clip)?;
        Ok(true)
    }

    /// The center will never store alarm or update `id` (what it says is out of bounds): it is
    /// given up, an alarm with its snapshot and its event's updates and clips, and logged.
    pub fn give_up(&self, id: &str) -> Result<(), OutboxError> {
        if self.t().index.contains_key(id.as_bytes()).map_err(|e| self.failed(e))? {
            warn!(id = %id, "the center refuses this message for good (its dead letters say why); given up");
        }
        self.forget(id)
    }

    /// The center will never store clip chunk `chunk_id` (it refused it, or takes no clips):
    /// every waiting chunk of its clip is given up, logged and counted.
    pub fn give_up_clip(&self, chunk_id: &str) -> Result<(), OutboxError> {
        let clip = clip_of(chunk_id);
        if !self.t().waiting_chunks().any(|c| clip_of(&c.chunk_id) == clip) {
            return Ok(());
        }
        warn!(clip = %clip, "the center takes no such clip (its dead letters say why); given up");
        self.drop_clip(clip)
    }

    /// Removes every waiting chunk of clip `clip` and counts the clip as dropped.
    fn drop_clip(&self, clip: &str) -> Result<(), OutboxError> {
        let chunks: Vec<String> = self
            .t()
            .waiting_chunks()
            .filter(|c| clip_of(&c.chunk_id) == clip)
            .map(|c| c.chunk_id)
            .collect();
        for chunk in chunks {
            self.remove(&chunk)?;
        }
        self.drops.clips.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stores the chunks of one clip of event `event_id` (`(chunk id, encoded ClipChunk)`, in
    /// order) durably, flushed, at the end of the queue. Chunks already waiting are not stored
    /// twice.
    pub fn push_clip(
        &self,
        event_id: &str,
        chunks: &[(String, Vec<u8>)],
    ) -> Result<(), OutboxError> {
        let t = self.t();
        let mut keys = Vec::with_capacity(chunks.len());
        for (chunk_id, _) in chunks {
            let seq = t.db.generate_id().map_err(|e| self.failed(e))?;
            let mut key = seq.to_be_bytes().to_vec();
            key.extend_from_slice(format!("{event_id}/{chunk_id}").as_bytes());
            keys.push(key);
        }
        let added = (&t.clips, &t.index)
            .transaction(|(clips, index)| {
                let (mut added, mut count) = (0u64, 0u64);
                for ((chunk_id, payload), key) in chunks.iter().zip(&keys) {
                    if index.get(chunk_id.as_bytes())?.is_some() {
                        continue;
                    }
                    clips.insert(key.as_slice(), payload.as_slice())?;
                    index.insert(chunk_id.as_bytes(), key.as_slice())?;
                    added += payload.len() as u64;
                    count += 1;
                }
                Ok((added, count))
            })
            .map_err(|e: sled::transaction::TransactionError<()>| self.failed(format!("{e:?}")))?;
        let (added, count) = added;
        self.bytes.fetch_add(added, Ordering::Relaxed);
        self.waiting.chunks.fetch_add(count, Ordering::Relaxed);
        self.enforce()?;
        t.db.flush().map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Up to `limit` clip chunks whose event's alarm is receipted, in order, skipping those
    /// `skip` says to.
    pub fn clip_chunks(&self, limit: usize, skip: impl Fn(&str) -> bool) -> Vec<Pending> {
        let t = self.t();
        t.waiting_chunks()
            .filter(|c| !t.index.contains_key(c.event_id.as_bytes()).unwrap_or(true))
            .filter(|c| !skip(&c.chunk_id))
            .take(limit)
            .filter_map(|c| {
                let key = t.index.get(c.chunk_id.as_bytes()).ok()??;
                let payload = t.clips.get(key).ok()??.to_vec();
                Some(Pending { seq: c.seq, id: c.chunk_id, kind: PendingKind::Clip, payload })
            })
            .collect()
    }

    /// Strips the picture of the oldest waiting update that has one; false if none has.
    fn strip_update_picture(&self) -> Result<bool, OutboxError> {
        let t = self.t();
        let Some((seq, update, _)) =
            t.waiting_updates().find(|(_, u, _)| !u.snapshot_jpeg.is_empty())
        else {
            return Ok(false);
        };
        warn!(update = %update.id, event = %update.event_id, "outbox full: an event update's picture dropped");
        // The signature does not cover the picture: stripping it keeps the seal intact.
        let stripped = EventUpdate { snapshot_jpeg: Default::default(), ..update };
        let payload = stripped.encode_to_vec();
        let old =
            t.updates.insert(seq.to_be_bytes(), payload.as_slice()).map_err(|e| self.failed(e))?;
        let old_len = old.map_or(0, |v| v.len() as u64);
        self.bytes.fetch_sub(old_len.saturating_sub(payload.len() as u64), Ordering::Relaxed);
        self.drops.updates.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Event time of the oldest waiting alarm, UTC milliseconds.
    pub fn oldest_event_time_ms(&self) -> Option<i64> {
        self.t().scan().next().map(|(_, a)| a.event_time_ms)
    }

    /// Stores a sealed alarm (and the snapshot that follows it, if any) or event update durably,
    /// flushed to disk, at the end of the queue. An id already waiting is not stored twice.
    pub fn push(&self, sealed: &Sealed) -> Result<u64, OutboxError> {
        let t = self.t();
        let seq = t.db.generate_id().map_err(|e| self.failed(e))?;
        // The alarm id in the key tells whose picture it is without decoding the picture.
        let mut after = t.db.generate_id().map_err(|e| self.failed(e))?.to_be_bytes().to_vec();
        after.extend_from_slice(sealed.id.as_bytes());
        let follow_id = snapshot_id(&sealed.id);
        let stored = (&t.queue, &t.following, &t.updates, &t.index)
            .transaction(|(queue, following, updates, index)| {
                if let Some(existing) = index.get(sealed.id.as_bytes())? {
                    return Ok(existing.as_ref().try_into().map(u64::from_be_bytes).ok());
                }
                let tree = match sealed.kind {
                    MessageKind::Alarm => queue,
                    MessageKind::Update => updates,
                };
                tree.insert(&seq.to_be_bytes(), sealed.message.as_slice())?;
                index.insert(sealed.id.as_bytes(), &seq.to_be_bytes())?;
                if let Some(snapshot) = &sealed.snapshot {
                    following.insert(after.as_slice(), snapshot.as_slice())?;
                    index.insert(follow_id.as_bytes(), after.as_slice())?;
                }
                Ok(None)
            })
            .map_err(|e: sled::transaction::TransactionError<()>| self.failed(format!("{e:?}")))?;
        if let Some(existing) = stored {
            return Ok(existing);
        }
        self.bytes.fetch_add(sealed.bytes() as u64, Ordering::Relaxed);
        let stored = 1 + u64::from(sealed.snapshot.is_some());
        self.waiting.messages.fetch_add(stored, Ordering::Relaxed);
        self.enforce()?;
        t.db.flush().map_err(|e| self.failed(e))?;
        Ok(seq)
    }

    /// Up to `limit` snapshots whose alarms are receipted, in order, skipping those `skip`
    /// says to.
    pub fn following(&self, limit: usize, skip: impl Fn(&str) -> bool) -> Vec<Pending> {
        let t = self.t();
        t.waiting_snapshots()
            .filter(|(_, alarm)| !t.index.contains_key(alarm.as_bytes()).unwrap_or(true))
            .map(|(seq, alarm)| (seq, snapshot_id(&alarm)))
            .filter(|(_, id)| !skip(id))
            .take(limit)
            .filter_map(|(seq, id)| {
                let key = t.index.get(id.as_bytes()).ok()??;
                let payload = t.following.get(key).ok()??.to_vec();
                Some(Pending { seq, id, kind: PendingKind::Snapshot, payload })
            })
            .collect()
    }

    /// Up to `limit` alarms and event updates in publishing order, skipping those `skip` says to.
    pub fn oldest(&self, limit: usize, skip: impl Fn(&str) -> bool) -> Vec<Pending> {
        let t = self.t();
        let alarms = t.entries().map(|(seq, alarm, value)| Pending {
            seq,
            id: alarm.id,
            kind: PendingKind::Alarm,
            payload: value.to_vec(),
        });
        let updates = t.waiting_updates().map(|(seq, update, value)| Pending {
            seq,
            id: update.id,
            kind: PendingKind::Update,
            payload: value.to_vec(),
        });
        merge_by_seq(alarms, updates).filter(|p| !skip(&p.id)).take(limit).collect()
    }

    /// Writes every change so far to disk. [`Outbox::remove`] and the give-ups do not flush
    /// one by one: the publisher flushes once per receipt (without blocking its runtime).
    pub async fn flush(&self) -> Result<(), OutboxError> {
        self.t().db.flush_async().await.map(|_| ()).map_err(|e| self.failed(e))
    }

    /// Forgets the alarm, update, following snapshot or clip chunk `id` (its receipt came);
    /// false if it was not here. Not flushed: see [`Outbox::flush`].
    pub fn remove(&self, id: &str) -> Result<bool, OutboxError> {
        let t = self.t();
        let removed = (&t.queue, &t.updates, &t.following, &t.clips, &t.index)
            .transaction(|(queue, updates, following, clips, index)| {
                let Some(key) = index.remove(id.as_bytes())? else {
                    return Ok(None);
                };
                let value = if is_snapshot_id(id) {
                    following.remove(key)?
                } else if is_clip_chunk_id(id) {
                    clips.remove(key)?
                } else {
                    match queue.remove(key.clone())? {
                        Some(v) => Some(v),
                        None => updates.remove(key)?,
                    }
                };
                Ok(value.map(|v| v.len() as u64))
            })
            .map_err(|e: sled::transaction::TransactionError<()>| self.failed(format!("{e:?}")))?;
        if let Some(len) = removed {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            let count =
                if is_clip_chunk_id(id) { &self.waiting.chunks } else { &self.waiting.messages };
            count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed.is_some())
    }

    /// Alarms, event updates, following snapshots and clip chunks waiting for a receipt.
    pub fn len(&self) -> usize {
        self.messages() + self.clip_chunks_waiting()
    }

    /// Alarms, event updates and following snapshots waiting for a receipt (clip chunks, many
    /// per clip, apart).
    pub fn messages(&self) -> usize {
        self.waiting.messages.load(Ordering::Relaxed) as usize
    }

    /// Clip chunks waiting for a receipt.
    pub fn clip_chunks_waiting(&self) -> usize {
        self.waiting.chunks.load(Ordering::Relaxed) as usize
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        let t = self.t();
        t.queue.is_empty() && t.updates.is_empty() && t.following.is_empty() && t.clips.is_empty()
    }
}

impl Trees {
    /// Opens the database in `dir` with a cache of `cache_bytes`, with the bytes and counts it
    /// holds waiting.
    fn open(dir: &Path, cache_bytes: u64) -> Result<(Self, u64, Waiting), OutboxError> {
        let open_err = |error| OutboxError::Open { dir: dir.to_owned(), error };
        let db =
            sled::Config::new().path(dir).cache_capacity(cache_bytes).open().map_err(open_err)?;
        let queue = db.open_tree("queue").map_err(open_err)?;
        let following = db.open_tree("following").map_err(open_err)?;
        let updates = db.open_tree("updates").map_err(open_err)?;
        let clips = db.open_tree("clips").map_err(open_err)?;
        let index = db.open_tree("index").map_err(open_err)?;
        let (mut bytes, waiting) = (0u64, Waiting::default());
        for (tree, count) in [
            (&queue, &waiting.messages),
            (&following, &waiting.messages),
            (&updates, &waiting.messages),
            (&clips, &waiting.chunks),
        ] {
            for value in tree.iter().values().flatten() {
                bytes += value.len() as u64;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok((Self { db, queue, following, updates, clips, index }, bytes, waiting))
    }
    /// Waiting clip chunks, oldest first, read from their keys.
    fn waiting_chunks(&self) -> impl Iterator<Item = WaitingChunk> + '_ {
        self.clips.iter().keys().flatten().filter_map(|k| {
            let seq = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
            let rest = std::str::from_utf8(k.get(8..)?).ok()?;
            let (event_id, chunk_id) = rest.split_once('/')?;
            Some(WaitingChunk { seq, event_id: event_id.to_owned(), chunk_id: chunk_id.to_owned() })
        })
    }

    /// Waiting event updates, oldest first, with their encoded form.
    fn waiting_updates(&self) -> impl Iterator<Item = (u64, EventUpdate, sled::IVec)> + '_ {
        self.updates.iter().flatten().filter_map(|(k, v)| {
            let seq = <[u8; 8]>::try_from(k.as_ref()).ok().map(u64::from_be_bytes)?;
            let update = decode_limited::<EventUpdate>(&v).ok()?;
            Some((seq, update, v))
        })
    }

    /// Waiting alarms, oldest first.
    fn scan(&self) -> impl Iterator<Item = (u64, Alarm)> + '_ {
        self.entries().map(|(seq, alarm, _)| (seq, alarm))
    }

    /// Waiting alarms, oldest first, with their encoded form. Only this agent writes the
    /// queue, so every value decodes; one that does not is skipped.
    fn entries(&self) -> impl Iterator<Item = (u64, Alarm, sled::IVec)> + '_ {
        self.queue.iter().flatten().filter_map(|(k, v)| {
            let seq = <[u8; 8]>::try_from(k.as_ref()).ok().map(u64::from_be_bytes)?;
            let alarm = decode_limited::<Alarm>(&v).ok()?;
            Some((seq, alarm, v))
        })
    }

    /// Sequence number and alarm id of each snapshot waiting to follow its alarm, oldest first.
    fn waiting_snapshots(&self) -> impl Iterator<Item = (u64, String)> + '_ {
        self.following.iter().keys().flatten().filter_map(|k| {
            let seq = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
            Some((seq, String::from_utf8(k[8..].to_vec()).ok()?))
        })
    }
}

/// A clip chunk waiting in the outbox, as its key names it.
struct WaitingChunk {
    seq: u64,
    event_id: String,
    chunk_id: String,
}

/// The clip id of chunk id `{clip_id}@{offset}`.
fn clip_of(chunk_id: &str) -> &str {
    chunk_id.split_once('@').map_or(chunk_id, |(clip, _)| clip)
}

/// Two iterators in ascending `seq` merged into one.
fn merge_by_seq(
    a: impl Iterator<Item = Pending>,
    b: impl Iterator<Item = Pending>,
) -> impl Iterator<Item = Pending> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.seq < x.seq => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xueliang_proto::Snapshot;

    const ROOMY: Limits =
        Limits { max_bytes: 1 << 30, max_age_ms: i64::MAX / 2, cache_bytes: 1 << 24 };

    #[test]
    fn a_corrupt_outbox_is_moved_aside_and_a_new_one_started() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("outbox");
        {
            let o = Outbox::open(&dir, ROOMY).unwrap();
            o.t().queue.insert(b"waiting", vec![7u8; 2000]).unwrap();
            o.t().db.flush().unwrap();
        }
        // What sled finds after a torn write of its configuration.
        std::fs::write(dir.join("conf"), b"garbage\x00\x01").unwrap();
        let o = Outbox::open(&dir, ROOMY).expect("a new outbox");
        assert_eq!(o.len(), 0);
        let aside = moved_aside(&dir);
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(aside[0].join("conf")).unwrap(), b"garbage\x00\x01");
        // A locked outbox (another agent on it) is no corruption: nothing is moved.
        let again = Outbox::open(&dir, ROOMY);
        assert!(matches!(again, Err(OutboxError::Open { .. })));
        assert_eq!(moved_aside(&dir).len(), 1);
    }

    fn alarm(id: &str) -> Alarm {
        Alarm { id: id.into(), agent_id: "a".into(), event_time_ms: now_ms(), ..Default::default() }
    }

    fn with(id: &str, severity: Severity, snapshot: usize) -> Alarm {
        Alarm { severity: severity as i32, snapshot_jpeg: vec![7; snapshot].into(), ..alarm(id) }
    }

    fn push(o: &Outbox, a: &Alarm) {
        let message = a.encode_to_vec();
        o.push(&Sealed { id: a.id.clone(), kind: MessageKind::Alarm, message, snapshot: None })
            .unwrap();
    }

    fn waiting(o: &Outbox) -> Vec<(String, usize)> {
        o.t().scan().map(|(_, a)| (a.id, a.snapshot_jpeg.len())).collect()
    }

    #[test]
    fn a_full_outbox_gives_up_low_severity_evidence_first_and_high_alarms_last() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), Limits { max_bytes: 25_000, ..ROOMY }).unwrap();
        push(&o, &with("low-old", Severity::Low, 10_000));
        push(&o, &with("high-old", Severity::High, 10_000));
        push(&o, &with("low-new", Severity::Low, 0));
        assert_eq!(o.drops.snapshots.load(Ordering::Relaxed), 0);
        // Over the limit: the low alarm's picture goes, the alarm stays.
        push(&o, &with("high-new", Severity::High, 10_000));
        assert_eq!(
            waiting(&o),
            [
                ("low-old".into(), 0),
                ("high-old".into(), 10_000),
                ("low-new".into(), 0),
                ("high-new".into(), 10_000)
            ]
        );
        // Further over: low alarms go, then high alarms lose their pictures, oldest first.
        push(&o, &with("critical", Severity::Critical, 10_000));
        let ids: Vec<(String, usize)> = waiting(&o);
        assert!(!ids.iter().any(|(id, _)| id.starts_with("low")), "{ids:?}");
        assert_eq!(
            ids.last().unwrap(),
            &("critical".to_string(), 10_000),
            "the newest keeps its picture"
        );
        assert!(o.bytes() <= 25_000, "{}", o.bytes());
        assert_eq!(o.drops.alarms.load(Ordering::Relaxed), 2);
        assert!(o.drops.snapshots.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn a_snapshot_that_follows_is_due_once_its_alarm_is_receipted() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), ROOMY).unwrap();
        let a = alarm("big");
        let snapshot =
            Snapshot { alarm_id: "big".into(), jpeg: vec![7; 5000].into(), ..Default::default() };
        o.push(&Sealed {
            id: "big".into(),
            kind: MessageKind::Alarm,
            message: a.encode_to_vec(),
            snapshot: Some(snapshot.encode_to_vec()),
        })
        .unwrap();
        assert_eq!(o.len(), 2);
        assert!(o.following(10, |_| false).is_empty(), "not before its alarm is stored");
        assert!(o.remove("big").unwrap());
        let due: Vec<String> = o.following(10, |_| false).into_iter().map(|p| p.id).collect();
        assert_eq!(due, ["big/snapshot"]);
        assert!(o.remove("big/snapshot").unwrap());
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn alarms_past_the_age_limit_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), Limits { max_age_ms: 60_000, ..ROOMY }).unwrap();
        push(&o, &Alarm { event_time_ms: now_ms() - 120_000, ..alarm("stale") });
        push(&o, &alarm("fresh"));
        assert_eq!(waiting(&o), [("fresh".to_string(), 0)]);
        assert_eq!(o.drops.expired.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn alarms_wait_in_order_across_a_restart_until_receipted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Outbox::open(dir.path(), ROOMY).unwrap();
            // a1 pushed again (re-raised after a crash) waits once.
            for id in ["a1", "a2", "a3", "a1"] {
                push(&o, &alarm(id));
            }
            assert!(o.remove("a2").unwrap());
            assert!(!o.remove("a2").unwrap(), "a second receipt is harmless");
            // Counted as they change, not by reading the trees.
            assert_eq!((o.messages(), o.len()), (2, 2));
        }
        let o = Outbox::open(dir.path(), ROOMY).unwrap();
        assert_eq!(o.bytes(), 2 * alarm("a1").encode_to_vec().len() as u64);
        let ids: Vec<String> = o.oldest(10, |_| false).into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["a1", "a3"]);
        let unsent: Vec<String> = o.oldest(10, |id| id == "a1").into_iter().map(|p| p.id).collect();
        assert_eq!(unsent, ["a3"]);
        assert_eq!(o.len(), 2);
    }

    fn clip(o: &Outbox, event: &str, clip: &str, chunks: usize, size: usize) {
        let chunks: Vec<(String, Vec<u8>)> = (0..chunks)
            .map(|i| (xueliang_proto::clip_chunk_id(clip, (i * size) as u64), vec![1; size]))
            .collect();
        o.push_clip(event, &chunks).unwrap();
    }

    fn due_chunks(o: &Outbox) -> Vec<String> {
        o.clip_chunks(100, |_| false).into_iter().map(|p| p.id).collect()
    }

    #[test]
    fn a_clips_chunks_are_due_after_its_alarm_and_each_leaves_with_its_own_receipt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Outbox::open(dir.path(), ROOMY).unwrap();
            push(&o, &alarm("e1"));
            clip(&o, "e1", "c1", 3, 1000);
            assert!(due_chunks(&o).is_empty(), "not before the event's alarm is stored");
            assert!(o.remove("e1").unwrap());
            assert_eq!(due_chunks(&o), ["c1@0", "c1@1000", "c1@2000"]);
            // A link cut after the first chunk's receipt: only the rest go again.
            assert!(o.remove("c1@0").unwrap());
            assert_eq!((o.messages(), o.clip_chunks_waiting()), (0, 2));
        }
        let o = Outbox::open(dir.path(), ROOMY).unwrap();
        assert_eq!((o.messages(), o.clip_chunks_waiting()), (0, 2));
        assert_eq!(due_chunks(&o), ["c1@1000", "c1@2000"]);
        assert_eq!(o.bytes(), 2000);
        let unsent: Vec<String> =
            o.clip_chunks(10, |id| id == "c1@1000").into_iter().map(|p| p.id).collect();
        assert_eq!(unsent, ["c1@2000"]);
        // The center refuses one chunk for good: the whole clip is given up, once.
        o.give_up_clip("c1@2000").unwrap();
        o.give_up_clip("c1@1000").unwrap();
        assert!(o.is_empty() && o.bytes() == 0);
        assert_eq!(o.drops.clips.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_outbox_gives_up_clips_before_pictures_and_pictures_before_alarms() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), Limits { max_bytes: 65_000, ..ROOMY }).unwrap();
        push(&o, &with("a1", Severity::Low, 10_000));
        clip(&o, "a1", "old", 2, 10_000);
        push(&o, &with("a2", Severity::Low, 10_000));
        clip(&o, "a2", "new", 2, 10_000);
        assert_eq!(o.drops.clips.load(Ordering::Relaxed), 0);
        // Over the limit: the oldest clip goes whole, the pictures stay.
        push(&o, &with("a3", Severity::Low, 10_000));
        assert_eq!(o.drops.clips.load(Ordering::Relaxed), 1);
        assert_eq!(o.drops.snapshots.load(Ordering::Relaxed), 0);
        assert!(
            o.t().index.get("old@0").unwrap().is_none()
                && o.t().index.get("old@10000").unwrap().is_none()
        );
        // Further over: the other clip, and only then the pictures; no alarm is lost.
        push(&o, &with("a4", Severity::Low, 10_000));
        push(&o, &with("a5", Severity::Low, 10_000));
        assert_eq!(o.drops.clips.load(Ordering::Relaxed), 2);
        assert_eq!(o.drops.snapshots.load(Ordering::Relaxed), 0);
        push(&o, &with("a6", Severity::Low, 10_000));
        push(&o, &with("a7", Severity::Low, 10_000));
        assert!(o.drops.snapshots.load(Ordering::Relaxed) >= 1);
        assert_eq!(o.drops.alarms.load(Ordering::Relaxed), 0);
        assert_eq!(waiting(&o).len(), 7);
        assert!(o.bytes() <= 65_000);
    }

    #[test]
    fn an_alarm_given_up_takes_its_clip_along() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), Limits { max_age_ms: 60_000, ..ROOMY }).unwrap();
        push(&o, &Alarm { event_time_ms: now_ms() - 30_000, ..alarm("stale") });
        clip(&o, "stale", "c", 2, 100);
        assert_eq!(o.len(), 3);
        std::thread::sleep(std::time::Duration::from_millis(10));
        // Another push applies the age limit, now with the alarm well over it.
        let o = Outbox { limits: Limits { max_age_ms: 1_000, ..ROOMY }, ..o };
        push(&o, &alarm("fresh"));
        assert_eq!(waiting(&o), [("fresh".to_string(), 0)]);
        assert_eq!(o.len(), 1);
        assert_eq!(o.drops.clips.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_alarm_the_center_refuses_for_good_is_given_up_with_its_clip() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path(), ROOMY).unwrap();
        push(&o, &alarm("refused"));
        clip(&o, "refused", "c", 2, 100);
        push(&o, &alarm("kept"));
        assert_eq!(o.len(), 4);
        o.give_up("refused").unwrap();
        assert_eq!(waiting(&o), [("kept".to_string(), 0)]);
        assert_eq!(o.len(), 1);
        // Named again in a later receipt: nothing left to give up.
        o.give_up("refused").unwrap();
        assert_eq!(o.len(), 1);
    }
}
