//! The audit log: who viewed which snapshot, who took which step on an alarm, who logged in,
//! pushed a config or exported the store. Append-only: entries are keyed by an increasing
//! sequence number and nothing in the center deletes them. A second tree indexes entries by
//! their target (an alarm id, an agent id) so an alarm's trail is read without a scan.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, index_prefix};

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
}

/// The audit trees of the center's database.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Store,
    entries: sled::Tree,
    by_target: sled::Tree,
}

impl AuditLog {
    /// Opens the log kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            entries: store.open_tree("audit")?,
            by_target: store.open_tree("audit_by_target")?,
        })
    }

    /// Appends an entry (durable with the store's next flush).
    pub fn record(
        &self,
        time_ms: i64,
        user: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, StoreError> {
        let seq = self.store.next_id()?;
        let entry = AuditEntry {
            seq,
            time_ms,
            user: user.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        };
        // Plain fields: serializing cannot fail.
        let json = serde_json::to_vec(&entry).expect("an AuditEntry serializes");
        self.entries.insert(seq.to_be_bytes(), json)?;
        if !target.is_empty() {
            let mut k = index_prefix(&[target]);
            k.extend_from_slice(&seq.to_be_bytes());
            self.by_target.insert(k, &[])?;
        }
        Ok(entry)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_listed_newest_first_by_target_and_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
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
}
