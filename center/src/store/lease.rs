//! Leases: of several center processes sharing one store, one at a time holds a named duty
//! (escalation, supervision, retention, webhook deliveries, the center's status) and renews it;
//! another takes it over once it lapses. A lease is one key changed by compare-and-swap, so the
//! store decides (PostgreSQL serializes it), not the processes' memories; each new holder gets a
//! higher epoch.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, Tree};

/// Who holds a lease, since which epoch, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    holder: String,
    epoch: u64,
    /// UTC ms; a lease released by its holder says 0.
    until_ms: i64,
}

impl Held {
    /// Its stored form.
    fn bytes(&self) -> Vec<u8> {
        // Plain fields: serializing cannot fail.
        serde_json::to_vec(self).expect("a lease serializes")
    }
}

/// The leases of a store.
#[derive(Debug, Clone)]
pub struct Leases {
    tree: Tree,
}

impl Leases {
    /// The leases kept in `store`'s database.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self { tree: store.open_tree("leases")? })
    }

    /// Holds lease `name` for `holder` until `now_ms + ttl_ms` if it is free, lapsed, or
    /// already `holder`'s; returns the epoch held (the same while renewed), or `None` while
    /// another holder's lease runs.
    pub fn hold(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        loop {
            let old = self.tree.get(name)?;
            // An unreadable lease (written by a newer center?) is taken over like a lapsed one.
            let current: Option<Held> = old.as_ref().and_then(|v| serde_json::from_slice(v).ok());
            let epoch = match &current {
                Some(h) if h.holder == holder && h.until_ms > 0 => h.epoch,
                Some(h) if h.until_ms > now_ms => return Ok(None),
                Some(h) => h.epoch + 1,
                None => 1,
            };
            let held = Held { holder: holder.to_owned(), epoch, until_ms: now_ms + ttl_ms };
            if self.tree.compare_and_swap(name, old, Some(held.bytes()))?.is_ok() {
                return Ok(Some(epoch));
            }
        }
    }

    /// Gives lease `name` up if `holder` holds it, so another process takes it at once.
    pub fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let Some(old) = self.tree.get(name)? else { return Ok(()) };
        let Ok(mut held) = serde_json::from_slice::<Held>(&old) else { return Ok(()) };
        if held.holder != holder {
            return Ok(());
        }
        held.until_ms = 0;
        // Taken over meanwhile: nothing to give up.
        let _ = self.tree.compare_and_swap(name, Some(old), Some(held.bytes()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_renewed_until_it_lapses_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let leases = Leases::open(&store).unwrap();
        assert_eq!(leases.hold("duties", "a", 1_000, 100).unwrap(), Some(1));
        assert_eq!(leases.hold("duties", "b", 1_050, 100).unwrap(), None, "a's runs");
        assert_eq!(leases.hold("duties", "a", 1_090, 100).unwrap(), Some(1), "renewed");
        assert_eq!(leases.hold("duties", "b", 1_150, 100).unwrap(), None, "renewed to 1190");
        assert_eq!(leases.hold("duties", "b", 1_191, 100).unwrap(), Some(2), "lapsed");
        assert_eq!(leases.hold("duties", "a", 1_200, 100).unwrap(), None, "a lost it");
        leases.release("duties", "a").unwrap();
        assert_eq!(leases.hold("duties", "a", 1_200, 100).unwrap(), None, "not a's to give");
        leases.release("duties", "b").unwrap();
        assert_eq!(leases.hold("duties", "b", 1_210, 100).unwrap(), Some(3), "released");
        leases.release("duties", "b").unwrap();
        assert_eq!(leases.hold("duties", "a", 1_220, 100).unwrap(), Some(4));
        assert_eq!(leases.hold("other", "b", 1_220, 100).unwrap(), Some(1), "leases are apart");
    }
}
