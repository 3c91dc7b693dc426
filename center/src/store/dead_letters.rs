//! Dead letters: payloads ingest refused (undecodable, unsigned or forged, on the wrong topic),
//! kept for inspection instead of being lost or crashing anything. The same payload refused
//! again (an agent retrying) is one entry with a count. Bounded in entries and in payload
//! bytes (past the byte cap a refusal keeps its record, not its payload), swept by retention
//! after `dead_letter_days`, and purged whole by an admin.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use xueliang_proto::signing::sha256;

use super::{Store, StoreError};

/// Entries kept at most; beyond, refusals are only counted and logged.
const MAX_ENTRIES: usize = 10_000;

/// Bytes of refused payloads kept at most.
const MAX_PAYLOAD_BYTES: u64 = 256 << 20;

/// One refused payload, as listed by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The MQTT topic it came on.
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
    /// Its size in bytes.
    pub bytes: usize,
    /// When it was first and last refused, UTC ms.
    pub first_ms: i64,
    /// Last time.
    pub last_ms: i64,
    /// How often.
    pub count: u64,
    /// Whether its payload is kept (not past the byte cap).
    #[serde(default = "kept")]
    pub payload_kept: bool,
}

/// Records written before the byte cap kept every payload.
fn kept() -> bool {
    true
}

/// The dead-letter trees of the center's database.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    records: crate::store::Tree,
    payloads: crate::store::Tree,
    /// Bytes of the payloads kept.
    payload_bytes: Arc<AtomicU64>,
}

impl DeadLetters {
    /// Opens the dead letters kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let payloads = store.open_tree("dead_letter_payloads")?;
        let bytes = payloads.iter().values().flatten().map(|v| v.len() as u64).sum();
        Ok(Self {
            records: store.open_tree("dead_letters")?,
            payloads,
            payload_bytes: Arc::new(AtomicU64::new(bytes)),
        })
    }

    /// Keeps `payload` refused on `topic` for `reason` (durable with the next flush).
    pub fn add(
        &self,
        topic: &str,
        payload: &[u8],
        reason: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut key = sha256(topic.as_bytes());
        key.extend_from_slice(&sha256(payload));
        let key = &sha256(&key)[..16];
        let record = match self.records.get(key)? {
            Some(old) => {
                let mut r: DeadLetter = serde_json::from_slice(&old).map_err(|e| {
                    StoreError::Corrupt { id: "dead letter".into(), message: e.to_string() }
                })?;
                r.last_ms = now_ms;
                r.count += 1;
                r
            }
            None if self.records.len() >= MAX_ENTRIES => return Ok(()),
            None => {
                let len = payload.len() as u64;
                let payload_kept =
                    self.payload_bytes.load(Ordering::Relaxed) + len <= MAX_PAYLOAD_BYTES;
                if payload_kept {
                    self.payloads.insert(key, payload)?;
                    self.payload_bytes.fetch_add(len, Ordering::Relaxed);
                }
                DeadLetter {
                    topic: topic.to_owned(),
                    reason: reason.to_owned(),
                    bytes: payload.len(),
                    first_ms: now_ms,
                    last_ms: now_ms,
                    count: 1,
                    payload_kept,
                }
            }
        };
        let json = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt {
            id: "dead letter".into(),
            message: e.to_string(),
        })?;
        self.records.insert(key, json)?;
        Ok(())
    }

    /// Deletes the entries last refused before `before_ms` (and those that do not parse);
    /// how many.
    pub fn sweep(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for entry in self.records.iter() {
            let (key, v) = entry?;
            let stale =
                serde_json::from_slice::<DeadLetter>(&v).ok().is_none_or(|r| r.last_ms < before_ms);
            if stale {
                self.delete(&key)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Deletes every entry; how many there were.
    pub fn purge(&self) -> Result<usize, StoreError> {
        let n = self.records.len();
        self.records.clear()?;
        self.payloads.clear()?;
        self.payload_bytes.store(0, Ordering::Relaxed);
        Ok(n)
    }

    /// Deletes the entry under `key`, with its payload.
    fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.records.remove(key)?;
        if let Some(old) = self.payloads.remove(key)? {
            self.payload_bytes.fetch_sub(old.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Up to `limit` entries, most recently refused first.
    pub fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let mut all = Vec::new();
        for entry in self.records.iter() {
            let (_, v) = entry?;
            if let Ok(r) = serde_json::from_slice::<DeadLetter>(&v) {
                all.push(r);
            }
        }
        all.sort_by_key(|r| std::cmp::Reverse(r.last_ms));
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_refused_twice_is_one_entry_counted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let d = DeadLetters::open(&store).unwrap();
        d.add("xl/v1/a/alarm", b"junk", "not a valid Alarm", 1).unwrap();
        d.add("xl/v1/a/alarm", b"junk", "not a valid Alarm", 2).unwrap();
        d.add("xl/v1/b/alarm", b"junk", "no key registered", 3).unwrap();
        let list = d.list(10).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].topic.as_str(), list[0].count), ("xl/v1/b/alarm", 1));
        assert_eq!((list[1].count, list[1].first_ms, list[1].last_ms), (2, 1, 2));
    }

    #[test]
    fn old_entries_are_swept_payloads_past_the_cap_are_not_kept_and_a_purge_empties_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let d = DeadLetters::open(&store).unwrap();
        d.add("xl/v1/a/alarm", b"old", "refused", 1_000).unwrap();
        d.add("xl/v1/a/alarm", b"new", "refused", 5_000).unwrap();
        // Seen again later: kept by its last refusal.
        d.add("xl/v1/a/alarm", b"old", "refused", 6_000).unwrap();
        d.add("xl/v1/b/alarm", b"stale", "refused", 2_000).unwrap();
        assert_eq!(d.sweep(3_000).unwrap(), 1);
        assert_eq!(d.list(10).unwrap().len(), 2);
        assert_eq!(d.payloads.len(), 2);
        d.payload_bytes.store(MAX_PAYLOAD_BYTES, Ordering::Relaxed);
        d.add("xl/v1/c/alarm", b"over the cap", "refused", 7_000).unwrap();
        let newest = &d.list(1).unwrap()[0];
        assert_eq!((newest.topic.as_str(), newest.payload_kept), ("xl/v1/c/alarm", false));
        assert_eq!(d.payloads.len(), 2, "its payload is not kept");
        assert_eq!(d.purge().unwrap(), 3);
        assert!(d.list(10).unwrap().is_empty());
        assert_eq!((d.payloads.len(), d.payload_bytes.load(Ordering::Relaxed)), (0, 0));
    }
}
