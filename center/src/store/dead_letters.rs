//! Dead letters: payloads ingest refused (undecodable, unsigned or forged, on the wrong topic),
//! kept for inspection instead of being lost or crashing anything. The same payload refused
//! again (an agent retrying) is one entry with a count.

use serde::{Deserialize, Serialize};
use xueliang_proto::signing::sha256;

use super::{Store, StoreError};

/// Entries kept at most; beyond, refusals are only counted and logged.
const MAX_ENTRIES: usize = 10_000;

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
}

/// The dead-letter trees of the center's database.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    records: sled::Tree,
    payloads: sled::Tree,
}

impl DeadLetters {
    /// Opens the dead letters kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            records: store.open_tree("dead_letters")?,
            payloads: store.open_tree("dead_letter_payloads")?,
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
                self.payloads.insert(key, payload)?;
                DeadLetter {
                    topic: topic.to_owned(),
                    reason: reason.to_owned(),
                    bytes: payload.len(),
                    first_ms: now_ms,
                    last_ms: now_ms,
                    count: 1,
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
        let store = Store::open(dir.path()).unwrap();
        let d = DeadLetters::open(&store).unwrap();
        d.add("xl/v1/a/alarm", b"junk", "not a valid Alarm", 1).unwrap();
        d.add("xl/v1/a/alarm", b"junk", "not a valid Alarm", 2).unwrap();
        d.add("xl/v1/b/alarm", b"junk", "no key registered", 3).unwrap();
        let list = d.list(10).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].topic.as_str(), list[0].count), ("xl/v1/b/alarm", 1));
        assert_eq!((list[1].count, list[1].first_ms, list[1].last_ms), (2, 1, 2));
    }
}
