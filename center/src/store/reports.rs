//! New events queued for the GB/T 28181 platforms above. A center that reports there marks each
//! new event in the transaction that stores it; its reporter moves the marks, in their order,
//! to one queue per platform the event goes to, and a platform's link takes its queue's head,
//! sends it until the platform answers, then forgets it. Each event is queued once per
//! platform, so it is sent once; a restart sends what was not answered.

use super::engine::{Tree, write};
use super::upward::Marks;
use super::{Store, StoreError};
use crate::domain::AlarmRecord;

/// The tree of new events not yet queued.
const NEW: &str = "gb28181_new";

impl Store {
    /// From now on, marks every new event for the GB/T 28181 platforms above ([`Reports`]).
    pub fn reporting_national(mut self) -> Result<Self, StoreError> {
        self.reporting = Marks(Some(self.db.open_tree(NEW)?));
        Ok(self)
    }
}

/// A platform's queue key: its code, a zero byte, the number, the event's id.
fn queue_key(platform: &str, seq: u64, id: &str) -> Vec<u8> {
    let mut key = platform.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// One event at the head of a platform's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its number among all queued (the document's SN).
    pub seq: u64,
    /// The event's id.
    pub id: String,
}

/// The queues of new events for the platforms above.
#[derive(Debug, Clone)]
pub struct Reports {
    store: Store,
    new: Tree,
    queues: Tree,
    meta: Tree,
}

impl Reports {
    /// The queues of `store` (which marks new events: [`Store::reporting_national`]).
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            new: store.db.open_tree(NEW)?,
            queues: store.db.open_tree("gb28181_queues")?,
            meta: store.db.open_tree("gb28181_meta")?,
        })
    }

    /// Moves up to `limit` new events, in their order, to the queues of the platforms
    /// `platforms` names for each (none: it is not reported); how many were moved. Durable
    /// once it returns. An event whose record is gone (deleted meanwhile) is dropped.
    pub async fn distribute(
        &self,
        limit: usize,
        platforms: impl Fn(&AlarmRecord) -> Vec<String>,
    ) -> Result<usize, StoreError> {
        let keys: Vec<_> = self.new.iter().keys().take(limit).collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Ok(0);
        }
        let mut moves = Vec::with_capacity(keys.len());
        for key in &keys {
            let id = String::from_utf8_lossy(&key[12..]).into_owned();
            let to = self.store.get(&id)?.map(|r| platforms(&r)).unwrap_or_default();
            moves.push((key, id, to));
        }
        write(&[&self.new, &self.queues, &self.meta], |t| {
            let seq = t[2].get(b"seq")?.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok());
            let mut next = u64::from_be_bytes(seq.unwrap_or_default());
            for (key, id, to) in &moves {
                t[0].remove(key)?;
                for platform in to {
                    next += 1;
                    t[1].insert(queue_key(platform, next, id), &[])?;
                }
            }
            t[2].insert(b"seq", next.to_be_bytes().to_vec())?;
            Ok(())
        })?;
        self.store.flush().await?;
        Ok(keys.len())
    }

    /// The oldest event queued for `platform`, if any.
    pub fn head(&self, platform: &str) -> Result<Option<Queued>, StoreError> {
        let prefix = queue_key(platform, 0, "");
        let prefix = &prefix[..prefix.len() - 8];
        let Some(key) = self.queues.scan_prefix(prefix).keys().next().transpose()? else {
            return Ok(None);
        };
        let rest = &key[prefix.len()..];
        let Ok(seq) = <[u8; 8]>::try_from(&rest[..8.min(rest.len())]) else {
            let id = format!("gb28181 queue key {key:?}");
            return Err(StoreError::Corrupt { id, message: "too short".into() });
        };
        let id = String::from_utf8_lossy(&rest[8..]).into_owned();
        Ok(Some(Queued { seq: u64::from_be_bytes(seq), id }))
    }

    /// `platform` answered for `queued`: forgotten, durably.
    pub async fn sent(&self, platform: &str, queued: &Queued) -> Result<(), StoreError> {
        self.queues.remove(queue_key(platform, queued.seq, &queued.id))?;
        self.store.flush().await
    }

    /// How many events wait for `platform`.
    pub fn waiting(&self, platform: &str) -> usize {
        let prefix = queue_key(platform, 0, "");
        self.queues.count_prefix(&prefix[..prefix.len() - 8])
    }
}
