//! The durable outbox: every alarm is written here (and flushed) before it is published, and
//! leaves only when the center's receipt names it. A broker's PUBACK is not enough: brokers and
//! rumqttc lose what they hold across restarts; the center's receipt means "stored".
//!
//! Two sled trees: `queue` (sequence number, big-endian → encoded alarm) keeps publishing order
//! across restarts; `index` (alarm id → sequence number) finds an alarm named by a receipt.

use std::path::{Path, PathBuf};

use sled::Transactional;
use xueliang_proto::{Alarm, Message, decode_limited};

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened (disk, permissions, another agent using it).
    #[error("cannot open the outbox in {dir}: {error} (is another agent running with this data_dir?)")]
    Open { dir: PathBuf, error: sled::Error },
    /// A write or flush failed (a full disk, say): the alarm is not stored.
    #[error("outbox write failed: {0}")]
    Write(String),
}

/// One alarm waiting for its receipt.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Position in publishing order.
    pub seq: u64,
    /// The alarm's id.
    pub id: String,
    /// The encoded alarm, as published.
    pub payload: Vec<u8>,
}

/// The agent's outbox.
#[derive(Debug, Clone)]
pub struct Outbox {
    db: sled::Db,
    queue: sled::Tree,
    index: sled::Tree,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`.
    pub fn open(dir: &Path) -> Result<Self, OutboxError> {
        let open_err = |error| OutboxError::Open { dir: dir.to_owned(), error };
        let db = sled::open(dir).map_err(open_err)?;
        let queue = db.open_tree("queue").map_err(open_err)?;
        let index = db.open_tree("index").map_err(open_err)?;
        Ok(Self { db, queue, index })
    }

    /// Stores `alarm` durably (flushed to disk) at the end of the queue.
    pub fn push(&self, alarm: &Alarm) -> Result<u64, OutboxError> {
        let write = |e: String| OutboxError::Write(e);
        let seq = self.db.generate_id().map_err(|e| write(e.to_string()))?;
        let payload = alarm.encode_to_vec();
        (&self.queue, &self.index)
            .transaction(|(queue, index)| {
                queue.insert(&seq.to_be_bytes(), payload.as_slice())?;
                index.insert(alarm.id.as_bytes(), &seq.to_be_bytes())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| write(format!("{e:?}")))?;
        self.db.flush().map_err(|e| write(e.to_string()))?;
        Ok(seq)
    }

    /// Up to `limit` alarms in publishing order, skipping those `skip` says to.
    pub fn oldest(&self, limit: usize, skip: impl Fn(&str) -> bool) -> Vec<Pending> {
        let mut out = Vec::new();
        for (key, value) in self.queue.iter().flatten() {
            if out.len() >= limit {
                break;
            }
            let Ok(seq) = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes) else {
                continue;
            };
            // Only this agent writes the queue, so every value decodes; skip one that does not.
            let Ok(alarm) = decode_limited::<Alarm>(&value) else { continue };
            if !skip(&alarm.id) {
                out.push(Pending { seq, id: alarm.id, payload: value.to_vec() });
            }
        }
        out
    }

    /// Forgets the alarm `id` (its receipt came); false if it was not here.
    pub fn remove(&self, id: &str) -> Result<bool, OutboxError> {
        let write = |e: String| OutboxError::Write(e);
        (&self.queue, &self.index)
            .transaction(|(queue, index)| {
                let Some(seq) = index.remove(id.as_bytes())? else {
                    return Ok(false);
                };
                queue.remove(seq)?;
                Ok(true)
            })
            .map_err(|e: sled::transaction::TransactionError<()>| write(format!("{e:?}")))
    }

    /// Alarms waiting for a receipt.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(id: &str) -> Alarm {
        Alarm { id: id.into(), agent_id: "a".into(), ..Default::default() }
    }

    #[test]
    fn alarms_wait_in_order_across_a_restart_until_receipted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Outbox::open(dir.path()).unwrap();
            for id in ["a1", "a2", "a3"] {
                o.push(&alarm(id)).unwrap();
            }
            assert!(o.remove("a2").unwrap());
            assert!(!o.remove("a2").unwrap(), "a second receipt is harmless");
        }
        let o = Outbox::open(dir.path()).unwrap();
        let ids: Vec<String> = o.oldest(10, |_| false).into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["a1", "a3"]);
        let unsent: Vec<String> = o.oldest(10, |id| id == "a1").into_iter().map(|p| p.id).collect();
        assert_eq!(unsent, ["a3"]);
        assert_eq!(o.len(), 2);
    }
}
