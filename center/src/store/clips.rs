//! Events' video clips: files in a directory of their own, recorded in trees of the store.
//!
//! A clip arrives in chunks, in any order, some twice, some after a restart. While it is put
//! together it is `partial/{agent}/{clip}.part`, each chunk written at its offset and synced,
//! beside `{clip}.ranges` (JSON, replaced whole by a rename): the byte ranges arrived and the
//! first chunk as signed, without its offset and data. So a chunk is on disk before it is
//! receipted, and a restart loses nothing. Once every byte is there the clip is hashed: if the
//! SHA-256 is the one its agent signed it becomes `{clip}.mp4`, recorded under its id with
//! indexes by event and by completion time, and added to its event's record (at once, or when
//! the event's alarm arrives); if not, it is discarded. One agent has at most
//! [`PARTIALS_PER_AGENT`] clips in progress. Retention deletes clips past their days, the clips
//! of the alarms it deletes, and partial clips untouched for a day.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use xueliang_proto::signing::hex;
use xueliang_proto::{ClipChunk, Message};

use super::index::{ALARMS, index_prefix, time_key};
use super::retention::{DAY_MS, Retention, ids_before};
use super::{Store, StoreError, Tree, UpdateError, to_json, write};
use crate::domain::{AlarmRecord, ClipRecord};

/// Clips one agent may have in progress at once, so that a box cannot fill the disk with
/// partial clips. A chunk that starts one more makes room by deleting the agent's partial clip
/// untouched longest: an agent sends its chunks in order, a few at a time, so that is one it gave
/// up (its outbox full), which would otherwise block its clips until retention.
const PARTIALS_PER_AGENT: usize = 8;
/// A partial clip untouched this long is deleted by retention: longer than a box keeps what
/// waits in its outbox (`outbox.max_age_days`, 7 by default), so a clip whose link was cut for
/// days still completes when it comes back.
const PARTIAL_IDLE_MS: i64 = 8 * DAY_MS;
/// The subdirectory of partial clips.
const PARTIAL: &str = "partial";

/// A complete clip as kept: the event it shows, whose agent made it, and its description as
/// the agent signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipEntry {
    /// The agent that sent it.
    pub agent_id: String,
    /// The id of the alarm that opened its event.
    pub event_id: String,
    /// When the center completed it, UTC ms (retention counts from then).
    pub received_ms: i64,
    /// A chunk of it as encoded without its offset and data (base64): the description with
    /// the agent's signature, which proves with the agent's key where the clip came from, and
    /// with the SHA-256 it names that these are its bytes.
    pub signed: String,
    /// The clip as served.
    pub clip: ClipRecord,
}

/// What became of a chunk.
#[derive(Debug, Clone, PartialEq)]
pub enum Put {
    /// Written now, and synced.
    Stored,
    /// Held before (the chunk, or the whole clip): receipt it again.
    Duplicate,
    /// It completed its clip, which hashed to the signed SHA-256 and is kept.
    Completed(Box<Completed>),
    /// Refused, for this reason (another clip or another agent's event under its ids, or a
    /// description other than its first chunk's).
    Refused(String),
    /// It completed its clip, whose bytes do not hash to the signed SHA-256: the clip is
    /// discarded, for this reason.
    Mismatch(String),
}

/// A clip completed by a chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// The clip.
    pub clip: ClipRecord,
    /// Its event's record with the clip added, if the event is stored.
    pub event: Option<AlarmRecord>,
}

/// What a clip sweep deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClipsSwept {
    /// Complete clips.
    pub clips: usize,
    /// Partial clips.
    pub partials: usize,
}

/// The center's clips: their directory and their trees in the store's database.
#[derive(Debug, Clone)]
pub struct Clips {
    store: Store,
    dir: PathBuf,
    max_bytes: u64,
    /// Clip id → [`ClipEntry`] (JSON).
    entries: Tree,
    /// Event id, NUL, clip id.
    by_event: Tree,
    /// Completion time and clip id (retention).
    by_time: Tree,
    /// Ingest's chunks and retention's deletions touch the same files: one at a time.
    files: Arc<Mutex<()>>,
    /// The same between processes sharing the directory (a county served by several): a file
    /// locked while the mutex is held.
    lock_file: Arc<File>,
}

/// The clips' files locked by one thread of one process; unlocked when dropped.
struct Locked<'a> {
    _held: MutexGuard<'a, ()>,
    file: &'a File,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Closing the file would unlock it too; it stays open for the next lock.
        let _ = self.file.unlock();
    }
}

/// The error of I/O on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_owned(), error }
}

/// The bytes of an event's index entry for one of its clips.
fn event_key(event_id: &str, clip_id: &str) -> Vec<u8> {
    let mut k = index_prefix(&[event_id]);
    k.extend_from_slice(clip_id.as_bytes());
    k
}

/// A chunk's description of its clip: the chunk without its offset, data and signature.
fn description(c: &ClipChunk) -> ClipChunk {
    ClipChunk { offset: 0, data: Default::default(), signature: Default::default(), ..c.clone() }
}

/// A partial clip's sidecar.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    /// The first chunk as signed, without its offset and data (base64).
    signed: String,
    /// The byte ranges arrived, `[start, end)`, sorted and merged.
    ranges: Vec<(u64, u64)>,
}

impl Sidecar {
    fn covers(&self, r: &Range<u64>) -> bool {
        self.ranges.iter().any(|&(start, end)| start <= r.start && r.end <= end)
    }

    fn add(&mut self, r: Range<u64>) {
        self.ranges.push((r.start, r.end));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(start, end) in &self.ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        self.ranges = merged;
    }

    fn complete(&self, size: u64) -> bool {
        self.ranges == [(0, size)]
    }
}

/// Makes `dir` and its parents, readable by the center only (clips show people).
fn private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))
}

/// Makes the entries of `dir` (a file made or renamed there) durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Deletes `path` if it is there.
fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// Writes `data` at `offset` of `path` (made if absent) and syncs it.
fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<(), StoreError> {
    // Not truncated: the chunks written before stay.
    let file = OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path);
    file.and_then(|f| f.write_all_at(data, offset).and_then(|()| f.sync_data())).map_err(io(path))
}

/// The sidecar at `path` and the description it holds; none if there is none, or it does not
/// read (the partial then starts again).
fn read_sidecar(path: &Path) -> Result<Option<(Sidecar, ClipChunk)>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let read = serde_json::from_slice::<Sidecar>(&bytes).ok().and_then(|s| {
        let signed = B64.decode(&s.signed).ok()?;
        let chunk = ClipChunk::decode(signed.as_slice()).ok()?;
        Some((s, chunk))
    });
    if read.is_none() {
        tracing::warn!(path = %path.display(), "a partial clip's sidecar does not read; the clip starts again");
    }
    Ok(read)
}

/// Replaces the sidecar at `path` (write, sync, rename, sync the directory).
fn write_sidecar(path: &Path, sidecar: &Sidecar) -> Result<(), StoreError> {
    let tmp = path.with_extension("ranges.tmp");
    // Strings and numbers: serializing cannot fail.
    let json = serde_json::to_vec(sidecar).expect("a Sidecar serializes");
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json).and_then(|()| f.sync_all()))
        .map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    path.parent().map_or(Ok(()), sync_dir)
}

/// SHA-256 of the first `size` bytes of `file`.
fn sha256_of(file: &File, size: u64) -> std::io::Result<Vec<u8>> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut reader = file.take(size);
    let mut buf = vec![0; 1 << 20];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(context.finish().as_ref().to_vec()),
            n => context.update(&buf[..n]),
        }
    }
}

/// When `path` was last changed, UTC ms.
fn modified_ms(path: &Path) -> Result<i64, StoreError> {
    let modified = fs::metadata(path).and_then(|m| m.modified()).map_err(io(path))?;
    Ok(modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
}

impl Clips {
    /// The clips kept in `dir` (made if absent) and recorded in `store`'s database, taking
    /// clips of at most `max_bytes`.
    pub fn open(store: &Store, dir: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        private_dir(&dir.join(PARTIAL))?;
        let lock_path = dir.join(PARTIAL).join(".lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        Ok(Self {
            lock_file: Arc::new(lock_file),
            store: store.clone(),
            dir: dir.to_owned(),
            max_bytes,
            entries: store.open_tree("clips")?,
            by_event: store.open_tree("clips_by_event")?,
            by_time: store.open_tree("clips_by_time")?,
            files: Arc::default(),
        })
    }

    /// The largest clip taken, bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where complete clip `clip_id` is (an id valid as a file name).
    pub fn path(&self, clip_id: &str) -> PathBuf {
        self.dir.join(format!("{clip_id}.mp4"))
    }

    /// The complete clip `clip_id`, if there is one.
    pub fn get(&self, clip_id: &str) -> Result<Option<ClipEntry>, StoreError> {
        let Some(bytes) = self.entries.get(clip_id.as_bytes())? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupt {
            id: format!("clip {clip_id}"),
            message: e.to_string(),
        })
    }

    fn lock(&self) -> Locked<'_> {
        let held = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.lock_file.lock() {
            tracing::warn!("cannot lock the clips' directory against other processes: {e}");
        }
        Locked { _held: held, file: &self.lock_file }
    }

    fn partial_dir(&self, agent: &str) -> PathBuf {
        self.dir.join(PARTIAL).join(agent)
    }

    fn part_path(&self, agent: &str, clip_id: &str) -> PathBuf {
        self.partial_dir(agent).join(format!("{clip_id}.part"))
    }

    fn ranges_path(&self, agent: &str, clip_id: &str) -> PathBuf {
        self.partial_dir(agent).join(format!("{clip_id}.ranges"))
    }

    /// The clips `agent` has in progress: when each was last touched (UTC ms), and its id.
    fn partials_of(&self, agent: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let dir = self.partial_dir(agent);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut partials = Vec::new();
        for entry in entries {
            let path = entry.map_err(io(&dir))?.path();
            if path.extension().is_some_and(|e| e == "ranges")
                && let Some(id) = path.file_stem().and_then(|s| s.to_str())
            {
                partials.push((modified_ms(&path)?, id.to_owned()));
            }
        }
        Ok(partials)
    }

    /// Deletes `agent`'s partial clips untouched longest until it has room for one more.
    fn make_room(&self, agent: &str) -> Result<(), StoreError> {
        let mut partials = self.partials_of(agent)?;
        partials.sort_unstable();
        let excess = (partials.len() + 1).saturating_sub(PARTIALS_PER_AGENT);
        for (_, clip_id) in partials.into_iter().take(excess) {
            tracing::info!(agent, clip = %clip_id, "{PARTIALS_PER_AGENT} clips in progress: the one untouched longest is deleted");
            self.remove_partial(agent, &clip_id)?;
        }
        Ok(())
    }

    /// Deletes `agent`'s partial clip `clip_id`, sidecar first (so no sidecar ever names ranges
    /// of a file that is gone).
    fn remove_partial(&self, agent: &str, clip_id: &str) -> Result<(), StoreError> {
        remove(&self.ranges_path(agent, clip_id))?;
        remove(&self.part_path(agent, clip_id))
    }

    /// Takes a chunk `agent` sent (validated: signed by its key, its ids valid, its bytes within
    /// the clip's size, the size within [`Clips::max_bytes`]), with `signed`, the chunk as
    /// encoded without its offset and data. What is written is synced before this returns; a
    /// completed clip's record is durable too. `now_ms` dates a completed clip.
    pub fn put(
        &self,
        agent: &str,
        chunk: &ClipChunk,
        signed: &[u8],
        now_ms: i64,
    ) -> Result<Put, StoreError> {
        let _files = self.lock();
        let id = chunk.clip_id.as_str();
        let clip = ClipRecord::from_chunk(chunk);
        if let Some(kept) = self.get(id)? {
            if kept.agent_id != agent || kept.event_id != chunk.event_id || kept.clip != clip {
                return Ok(Put::Refused(format!("clip {id}: another clip of this id is stored")));
            }
            // A completion cut short after its record was written leaves the partial behind.
            self.remove_partial(agent, id)?;
            return Ok(Put::Duplicate);
        }
        let event = match self.store.get(&chunk.event_id) {
            // Unreadable (logged and counted): the clip waits as for an event not stored yet.
            Err(StoreError::Corrupt { .. }) => None,
            event => event?,
        };
        if let Some(event) = event
            && event.agent_id != agent
        {
            return Ok(Put::Refused(format!(
                "clip {id} of event {:?}: not an event of this agent",
                chunk.event_id
            )));
        }
        let ranges = self.ranges_path(agent, id);
        let mut sidecar = match read_sidecar(&ranges)? {
            Some((sidecar, first)) => {
                if description(&first) != description(chunk) {
                    return Ok(Put::Refused(format!(
                        "clip {id}: this chunk describes the clip otherwise than its first chunk did"
                    )));
                }
                sidecar
            }
            None => {
                self.make_room(agent)?;
                private_dir(&self.partial_dir(agent))?;
                Sidecar { signed: B64.encode(signed), ranges: Vec::new() }
            }
        };
        // Validation keeps the end within the size, so within u64.
        let range = chunk.offset..chunk.offset + chunk.data.len() as u64;
        let new = !sidecar.covers(&range);
        if new {
            // The bytes first: the sidecar names only what is on disk.
            write_at(&self.part_path(agent, id), chunk.offset, &chunk.data)?;
            sidecar.add(range);
            write_sidecar(&ranges, &sidecar)?;
        }
        if !sidecar.complete(chunk.size) {
            return Ok(if new { Put::Stored } else { Put::Duplicate });
        }
        self.complete(agent, chunk, clip, sidecar.signed, now_ms)
    }

    /// Checks the complete partial clip `chunk` belongs to against its signed SHA-256, and
    /// keeps it (renamed, recorded, added to its event) or discards it.
    fn complete(
        &self,
        agent: &str,
        chunk: &ClipChunk,
        clip: ClipRecord,
        signed: String,
        now_ms: i64,
    ) -> Result<Put, StoreError> {
        let id = chunk.clip_id.as_str();
        let part = self.part_path(agent, id);
        let done = self.path(id);
        // A completion cut short after the rename left the clip in its place.
        let renamed = !part.exists() && done.exists();
        if !renamed && !part.exists() {
            // Deleted behind the center's back: nothing to put together any more.
            self.remove_partial(agent, id)?;
            return Ok(Put::Refused(format!("clip {id}: its partial file is gone")));
        }
        let at = if renamed { &done } else { &part };
        let file = OpenOptions::new().read(true).write(true).open(at).map_err(io(at))?;
        let hash = (|| {
            // Bytes beyond the size, left by an earlier attempt, are not the clip's.
            if !renamed && file.metadata()?.len() > chunk.size {
                file.set_len(chunk.size)?;
            }
            sha256_of(&file, chunk.size)
        })()
        .map_err(io(at))?;
        if hash != chunk.sha256 {
            self.remove_partial(agent, id)?;
            if renamed {
                remove(&done)?;
            }
            return Ok(Put::Mismatch(format!(
                "clip {id}: its {} bytes hash to {}, not to the SHA-256 its agent signed ({})",
                chunk.size,
                hex(&hash),
                clip.sha256
            )));
        }
        if !renamed {
            file.sync_all().map_err(io(at))?;
            fs::rename(&part, &done).map_err(io(&done))?;
            sync_dir(&self.dir)?;
        }
        let entry = ClipEntry {
            agent_id: agent.to_owned(),
            event_id: chunk.event_id.clone(),
            received_ms: now_ms,
            signed,
            clip,
        };
        let event = self.record(&entry)?;
        // Durable before the sidecar goes: without both, a restart would not know the clip.
        self.store.db.flush_blocking()?;
        self.remove_partial(agent, id)?;
        Ok(Put::Completed(Box::new(Completed { clip: entry.clip, event })))
    }

    /// The trees a clip's arrival or deletion writes: the alarms, the clips' records and their
    /// two indexes, and the changes to forward upward (if kept), in that order.
    fn trees(&self) -> Vec<&Tree> {
        [&self.store.trees[ALARMS], &self.entries, &self.by_event, &self.by_time]
            .into_iter()
            .chain(&self.store.pending.0)
            .collect()
    }

    /// Records a complete clip and adds it to its event's record if that is stored and its
    /// agent's; returns the record so changed.
    fn record(&self, entry: &ClipEntry) -> Result<Option<AlarmRecord>, StoreError> {
        let clip_id = entry.clip.clip_id.as_str();
        // Strings and numbers: serializing cannot fail.
        let json = serde_json::to_vec(entry).expect("a ClipEntry serializes");
        let by_event = event_key(&entry.event_id, clip_id);
        let by_time = time_key(entry.received_ms, clip_id);
        let event = entry.event_id.as_bytes();
        let order = self.store.pending.order(&self.store.db)?;
        write(&self.trees(), |t| {
            t[1].insert(clip_id.as_bytes(), json.as_slice())?;
            t[2].insert(by_event.as_slice(), &[])?;
            t[3].insert(by_time.as_slice(), &[])?;
            let Some(bytes) = t[0].get(event)? else { return Ok(None) };
            let Ok(mut record) = self.store.parse(&entry.event_id, &bytes) else {
                return Ok(None);
            };
            if record.agent_id != entry.agent_id || !record.add_clip(&entry.clip) {
                return Ok(None);
            }
            t[0].insert(event, to_json(&record))?;
            self.store.pending.mark(t.get(4), order, 0, &entry.event_id)?;
            Ok(Some(record))
        })
    }

    /// The ids of the complete clips naming event `event_id` (of any agent).
    fn of_event(&self, event_id: &str) -> Result<Vec<String>, StoreError> {
        let prefix = index_prefix(&[event_id]);
        self.by_event
            .scan_prefix(&prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[prefix.len()..]).into_owned()))
            .collect()
    }

    /// Adds to the record of `event`, just stored, the clips of it that were complete before
    /// it arrived; returns the record so changed. Not durable until [`Store::flush`].
    pub fn attach_waiting(&self, event: &AlarmRecord) -> Result<Option<AlarmRecord>, StoreError> {
        let mut waiting = Vec::new();
        for clip_id in self.of_event(&event.id)? {
            if let Some(e) = self.get(&clip_id)?
                && e.agent_id == event.agent_id
                && !event.clips.iter().any(|c| c.clip_id == e.clip.clip_id)
            {
                waiting.push(e.clip);
            }
        }
        if waiting.is_empty() {
            return Ok(None);
        }
        let added = self.store.update(&event.id, |r| {
            for clip in &waiting {
                r.add_clip(clip);
            }
            Ok::<_, std::convert::Infallible>(())
        });
        match added {
            Ok((record, ())) => Ok(Some(record)),
            Err(UpdateError::NotFound(_)) => Ok(None),
            Err(UpdateError::Store(e)) => Err(e),
            Err(UpdateError::Refused(never)) => match never {},
        }
    }

    /// Deletes complete clip `clip_id`: its file, then its record and its place in its event's
    /// record, which is marked `clips_expired` (retention). Not durable until [`Store::flush`].
    fn delete(&self, clip_id: &str) -> Result<bool, StoreError> {
        let Some(entry) = self.get(clip_id)? else { return Ok(false) };
        remove(&self.path(clip_id))?;
        let by_event = event_key(&entry.event_id, clip_id);
        let by_time = time_key(entry.received_ms, clip_id);
        let event = entry.event_id.as_bytes();
        let order = self.store.pending.order(&self.store.db)?;
        write(&self.trees(), |t| {
            t[1].remove(clip_id.as_bytes())?;
            t[2].remove(by_event.as_slice())?;
            t[3].remove(by_time.as_slice())?;
            if let Some(bytes) = t[0].get(event)?
                && let Ok(mut record) = self.store.parse(&entry.event_id, &bytes)
                && record.clips.iter().any(|c| c.clip_id == clip_id)
            {
                record.clips.retain(|c| c.clip_id != clip_id);
                record.clips_expired = true;
                t[0].insert(event, to_json(&record))?;
                self.store.pending.mark(t.get(4), order, 0, &entry.event_id)?;
            }
            Ok(())
        })?;
        Ok(true)
    }

    /// Deletes what `retention` no longer keeps at `now_ms`: partial clips untouched for a day,
    /// clips completed more than `clip_days` ago (at most `alarm_days`), and the clips of the
    /// alarms the store's sweep deletes next ([`Store::sweep`], run after this). Not durable
    /// until [`Store::flush`].
    pub fn sweep(&self, retention: Retention, now_ms: i64) -> Result<ClipsSwept, StoreError> {
        let _files = self.lock();
        let mut swept = ClipsSwept { partials: self.sweep_partials(now_ms)?, clips: 0 };
        let days = retention.clip_days.min(retention.alarm_days);
        let mut doomed: Vec<String> = self
            .by_time
            .range(..time_key(now_ms - i64::from(days) * DAY_MS, ""))
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?[8..]).into_owned()))
            .collect::<Result<_, StoreError>>()?;
        let alarms_before = now_ms - i64::from(retention.alarm_days) * DAY_MS;
        for event in ids_before(&self.store, alarms_before)? {
            doomed.extend(self.of_event(&event)?);
        }
        for clip_id in doomed {
            swept.clips += usize::from(self.delete(&clip_id)?);
        }
        Ok(swept)
    }

    /// Deletes the partial clips untouched since a day before `now_ms`; returns how many.
    fn sweep_partials(&self, now_ms: i64) -> Result<usize, StoreError> {
        let root = self.dir.join(PARTIAL);
        let cutoff = now_ms - PARTIAL_IDLE_MS;
        let mut removed = 0;
        for agent in fs::read_dir(&root).map_err(io(&root))? {
            let agent = agent.map_err(io(&root))?.path();
            if !agent.is_dir() {
                continue;
            }
            for file in fs::read_dir(&agent).map_err(io(&agent))? {
                let path = file.map_err(io(&agent))?.path();
                if modified_ms(&path)? >= cutoff {
                    continue;
                }
                // The sidecar is written after its chunk: it says when the clip was last touched.
                match path.extension().and_then(|e| e.to_str()) {
                    Some("ranges") => {
                        remove(&path)?;
                        remove(&path.with_extension("part"))?;
                        removed += 1;
                        // A completion cut short after the rename, before the record.
                        let clip_id = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                        if !clip_id.is_empty() && self.get(clip_id)?.is_none() {
                            remove(&self.path(clip_id))?;
                        }
                    }
                    Some("part") if path.with_extension("ranges").exists() => {}
                    // A part without its sidecar, or a sidecar's temporary file, left by a crash.
                    _ => remove(&path)?,
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_record as record;
    use xueliang_proto::signing::sha256;

    const NOW: i64 = 100 * DAY_MS;
    /// Clips kept 30 days.
    const RETENTION: Retention = Retention {
        alarm_days: 365,
        snapshot_days: 90,
        clip_days: 30,
        dead_letter_days: 30,
        audit_days: 1095,
    };

    fn open(dir: &Path) -> (Store, Clips) {
        let store = Store::for_test(&dir.join("db")).unwrap();
        let clips = Clips::open(&store, &dir.join("clips"), 1 << 20).unwrap();
        (store, clips)
    }

    /// Some clip bytes.
    fn video(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Clip `id` of event `event`, starting at `start_ms`, as agent "a" sends `bytes`: chunks
    /// of `n` bytes.
    fn chunks(id: &str, event: &str, start_ms: i64, bytes: &[u8], n: usize) -> Vec<ClipChunk> {
        let sha = sha256(bytes);
        bytes
            .chunks(n)
            .enumerate()
            .map(|(i, data)| ClipChunk {
                clip_id: id.into(),
                agent_id: "a".into(),
                camera_id: "c".into(),
                event_id: event.into(),
                start_time_ms: start_ms,
                duration_ms: 20_000,
                size: bytes.len() as u64,
                sha256: sha.clone().into(),
                width: 1280,
                height: 720,
                stream: "record".into(),
                offset: (i * n) as u64,
                data: data.to_vec().into(),
                signature: vec![7; 64].into(),
                ..Default::default()
            })
            .collect()
    }

    /// Puts `c` from `agent` at `now`, its description standing in for the signed bytes.
    fn put_by(clips: &Clips, agent: &str, c: &ClipChunk, now: i64) -> Put {
        let signed = ClipChunk { offset: 0, data: Default::default(), ..c.clone() };
        clips.put(agent, c, &signed.encode_to_vec(), now).unwrap()
    }

    fn put(clips: &Clips, c: &ClipChunk) -> Put {
        put_by(clips, "a", c, NOW)
    }

    fn partial_files(clips: &Clips) -> usize {
        fs::read_dir(clips.partial_dir("a")).map_or(0, |d| d.count())
    }

    #[tokio::test]
    async fn chunks_in_any_order_and_twice_make_one_clip_of_its_event_kept_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = video(2500);
        {
            let (store, clips) = open(dir.path());
            store.insert(&record("e1"), b"jpeg").unwrap();
            let c = chunks("k1", "e1", 5, &bytes, 1000);
            assert_eq!(put(&clips, &c[2]), Put::Stored);
            assert_eq!(put(&clips, &c[0]), Put::Stored);
            assert_eq!(put(&clips, &c[2]), Put::Duplicate, "received again: not written again");
            assert_eq!(partial_files(&clips), 2, "the part and its sidecar");
            assert!(
                clips.get("k1").unwrap().is_none()
                    && store.get("e1").unwrap().unwrap().clips.is_empty()
            );
            let Put::Completed(done) = put(&clips, &c[1]) else {
                panic!("the last chunk completes it")
            };
            assert_eq!(done.clip, ClipRecord::from_chunk(&c[0]));
            assert_eq!(done.clip.sha256, hex(&sha256(&bytes)));
            assert_eq!(
                done.event.unwrap().clips,
                std::slice::from_ref(&done.clip),
                "its event's record names it"
            );
            assert_eq!(fs::read(clips.path("k1")).unwrap(), bytes);
            assert_eq!(partial_files(&clips), 0);
            for chunk in &c {
                assert_eq!(put(&clips, chunk), Put::Duplicate, "a chunk of a complete clip");
            }
            // A second clip of the event, which started later: newest last.
            for chunk in chunks("k2", "e1", 9, &video(10), 4) {
                put(&clips, &chunk);
            }
            store.flush().await.unwrap();
        }
        let (store, clips) = open(dir.path());
        let ids: Vec<String> =
            store.get("e1").unwrap().unwrap().clips.into_iter().map(|c| c.clip_id).collect();
        assert_eq!(ids, ["k1", "k2"]);
        let kept = clips.get("k1").unwrap().unwrap();
        assert_eq!(
            (kept.agent_id.as_str(), kept.event_id.as_str(), kept.received_ms),
            ("a", "e1", NOW)
        );
        let signed = ClipChunk::decode(B64.decode(&kept.signed).unwrap().as_slice()).unwrap();
        assert_eq!((signed.size, signed.data.len(), signed.signature.len()), (2500, 0, 64));
    }

    #[test]
    fn a_clip_whose_bytes_miss_the_signed_hash_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, clips) = open(dir.path());
        let mut c = chunks("k1", "e1", 5, &video(300), 100);
        for chunk in &mut c {
            chunk.sha256 = sha256(b"another clip").into();
        }
        assert_eq!(put(&clips, &c[0]), Put::Stored);
        assert_eq!(put(&clips, &c[1]), Put::Stored);
        let Put::Mismatch(reason) = put(&clips, &c[2]) else { panic!("refused") };
        assert!(reason.starts_with("clip k1: its 300 bytes hash to "), "{reason}");
        assert!(!clips.path("k1").exists() && clips.get("k1").unwrap().is_none());
        assert_eq!(partial_files(&clips), 0);
    }

    #[test]
    fn chunks_that_do_not_fit_are_refused_and_an_agent_has_few_clips_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clips) = open(dir.path());
        let mut theirs = record("b-event");
        theirs.agent_id = "b".into();
        store.insert(&theirs, b"").unwrap();
        let c = chunks("k1", "b-event", 5, &video(300), 100);
        let Put::Refused(reason) = put(&clips, &c[0]) else { panic!("another agent's event") };
        assert_eq!(reason, "clip k1 of event \"b-event\": not an event of this agent");

        let c = chunks("k2", "e1", 5, &video(300), 100);
        assert_eq!(put(&clips, &c[0]), Put::Stored);
        let mut longer = c[1].clone();
        longer.size = 400;
        let Put::Refused(reason) = put(&clips, &longer) else { panic!("another description") };
        assert!(reason.contains("otherwise than its first chunk"), "{reason}");
        for chunk in &c[1..] {
            put(&clips, chunk);
        }
        let Put::Refused(reason) =
            put_by(&clips, "b", &chunks("k2", "e2", 5, &video(3), 3)[0], NOW)
        else {
            panic!("another agent's clip of that id")
        };
        assert_eq!(reason, "clip k2: another clip of this id is stored");

        // The first partial clip, untouched longest, makes room for a ninth.
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for i in 0..PARTIALS_PER_AGENT {
            let chunk = &chunks(&format!("p{i}"), "e1", 5, &video(20), 10)[0];
            assert_eq!(put(&clips, chunk), Put::Stored);
            if i == 0 {
                let sidecar = clips.ranges_path("a", "p0");
                File::options().write(true).open(sidecar).unwrap().set_modified(hour_ago).unwrap();
            }
        }
        assert_eq!(put(&clips, &chunks("p8", "e1", 5, &video(20), 10)[0]), Put::Stored);
        assert_eq!(clips.partials_of("a").unwrap().len(), PARTIALS_PER_AGENT);
        assert!(!clips.ranges_path("a", "p0").exists() && !clips.part_path("a", "p0").exists());
        let theirs = &chunks("q", "e3", 5, &video(20), 10)[0];
        assert_eq!(put_by(&clips, "b", theirs, NOW), Put::Stored, "another agent's are its own");
        assert_eq!(clips.partials_of("a").unwrap().len(), PARTIALS_PER_AGENT);
    }

    #[test]
    fn a_clip_complete_before_its_alarm_joins_the_record_when_it_comes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clips) = open(dir.path());
        for chunk in chunks("k1", "e1", 5, &video(30), 10) {
            if let Put::Completed(done) = put(&clips, &chunk) {
                assert_eq!(done.event, None, "no event stored yet");
            }
        }
        store.insert(&record("e1"), b"").unwrap();
        let event = store.get("e1").unwrap().unwrap();
        let with = clips.attach_waiting(&event).unwrap().expect("the clip joins");
        assert_eq!(with.clips.len(), 1);
        assert_eq!(store.get("e1").unwrap().unwrap().clips, with.clips);
        assert_eq!(clips.attach_waiting(&with).unwrap(), None, "once");
        let mut theirs = record("e2");
        theirs.agent_id = "b".into();
        for chunk in chunks("k2", "e2", 5, &video(30), 10) {
            put(&clips, &chunk);
        }
        store.insert(&theirs, b"").unwrap();
        assert_eq!(clips.attach_waiting(&theirs).unwrap(), None, "another agent's event");
    }

    #[test]
    fn a_completion_cut_short_after_the_rename_is_finished_by_a_chunk_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clips) = open(dir.path());
        store.insert(&record("e1"), b"").unwrap();
        let bytes = video(30);
        let c = chunks("k1", "e1", 5, &bytes, 10);
        for chunk in &c {
            put(&clips, chunk);
        }
        // As if the center died between the rename and the record.
        clips.entries.remove("k1").unwrap();
        let signed = B64.encode(
            ClipChunk { offset: 0, data: Default::default(), ..c[0].clone() }.encode_to_vec(),
        );
        write_sidecar(&clips.ranges_path("a", "k1"), &Sidecar { signed, ranges: vec![(0, 30)] })
            .unwrap();
        assert!(matches!(put(&clips, &c[2]), Put::Completed(_)));
        assert_eq!(fs::read(clips.path("k1")).unwrap(), bytes);
        assert!(clips.get("k1").unwrap().is_some());
        assert_eq!(partial_files(&clips), 0);
    }

    #[test]
    fn retention_deletes_old_clips_the_clips_of_deleted_alarms_and_stale_partials() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clips) = open(dir.path());
        // Real time: partial clips age by their files' times.
        let now = xueliang_proto::endpoint::now_ms();
        let mut old_event = record("old-event");
        old_event.event_time_ms = now - 400 * DAY_MS;
        store.insert(&old_event, b"").unwrap();
        let mut e1 = record("e1");
        e1.event_time_ms = now - DAY_MS;
        store.insert(&e1, b"").unwrap();
        for (clip, event, age_days) in
            [("month", "e1", 40), ("fresh", "e1", 1), ("year", "old-event", 1)]
        {
            for chunk in chunks(clip, event, 5, &video(30), 10) {
                put_by(&clips, "a", &chunk, now - age_days * DAY_MS);
            }
        }
        let stale = chunks("stale", "e1", 5, &video(30), 10);
        put(&clips, &stale[0]);
        put(&clips, &chunks("busy", "e1", 5, &video(30), 10)[0]);
        let nine_days_ago =
            std::time::SystemTime::now() - std::time::Duration::from_secs(9 * 86_400);
        for ext in ["part", "ranges"] {
            let path = clips.partial_dir("a").join(format!("stale.{ext}"));
            File::options().write(true).open(path).unwrap().set_modified(nine_days_ago).unwrap();
        }
        assert_eq!(clips.sweep(RETENTION, now).unwrap(), ClipsSwept { clips: 2, partials: 1 });
        for gone in ["month", "year"] {
            assert!(clips.get(gone).unwrap().is_none() && !clips.path(gone).exists(), "{gone}");
        }
        assert!(clips.path("fresh").exists());
        let e1 = store.get("e1").unwrap().unwrap();
        assert_eq!(
            (e1.clips.len(), e1.clips[0].clip_id.as_str(), e1.clips_expired),
            (1, "fresh", true)
        );
        assert_eq!(partial_files(&clips), 2, "the busy partial stays");
        assert!(!clips.partial_dir("a").join("stale.part").exists());
        assert!(clips.by_event.iter().count() == 1 && clips.by_time.iter().count() == 1);
        assert_eq!(clips.sweep(RETENTION, now).unwrap(), ClipsSwept::default());
        // The stale clip's chunk sent again starts it anew.
        assert_eq!(put(&clips, &stale[0]), Put::Stored);
    }

    #[tokio::test]
    async fn a_clip_arriving_or_deleted_changes_its_event_for_the_tier_above() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(&dir.path().join("db")).unwrap().forwarding_upward().unwrap();
        let clips = Clips::open(&store, &dir.path().join("clips"), 1 << 20).unwrap();
        let upward = crate::store::Upward::open(&store).unwrap();
        let now = xueliang_proto::endpoint::now_ms();
        let mut e1 = record("e1");
        e1.event_time_ms = now - DAY_MS;
        store.insert(&e1, b"").unwrap();
        assert_eq!(upward.number(10).await.unwrap(), 1, "stored");
        for chunk in chunks("k1", "e1", 5, &video(30), 10) {
            put_by(&clips, "a", &chunk, now - 40 * DAY_MS);
        }
        assert_eq!(upward.number(10).await.unwrap(), 2, "its clip arrived");
        assert_eq!(upward.id_at(2).unwrap().as_deref(), Some("e1"));
        assert_eq!(clips.sweep(RETENTION, now).unwrap().clips, 1);
        assert_eq!(upward.number(10).await.unwrap(), 3, "its clip deleted");
        assert_eq!(upward.id_at(3).unwrap().as_deref(), Some("e1"));
    }
}
