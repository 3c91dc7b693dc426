//! The tiers above and below. A center that forwards to the tier above marks each event it
//! stores or changes as pending, in the transaction that changes it; its one forwarder numbers
//! the pending changes 1, 2, 3, … in a log ([`Upward`]), sends them in that order and forgets
//! them once the tier above receipts them. A center of the tier above stores what each center
//! below forwards strictly in that center's order, each number once, each event in one record
//! ([`FromBelow`]).

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use super::engine::{Db, Interrupted, Isolation, Tree, View, write, write_at};
use super::index::{ALARMS, SNAPSHOTS, index_entries, move_entries};
use super::{DELETED_AT, PENDING_AT, Store, StoreError, to_json};
use crate::domain::{AlarmRecord, Forwarded};

/// The tree of changes not yet numbered.
const PENDING: &str = "upward_pending";
/// In the log's meta tree: the last number given.
const LAST: &[u8] = b"last";
/// In the log's meta tree: the last number the tier above receipted.
const ACKED: &[u8] = b"acked";

/// A pending change's key: the order of its transaction among all, its place in the
/// transaction, then the event's id.
fn pending_key(order: u64, pos: usize, id: &str) -> Vec<u8> {
    let mut key = order.to_be_bytes().to_vec();
    key.extend_from_slice(&(pos as u32).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// A number as stored (big-endian, so that keys sort by it); 0 when absent or malformed.
fn number(bytes: Option<impl AsRef<[u8]>>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map_or(0, u64::from_be_bytes)
}

/// A tree some transactions leave marks in, in their order (the events changed for the tier
/// above; the new events for the GB/T 28181 platforms, `reports.rs`): there only when this
/// center uses it.
#[derive(Debug, Clone, Default)]
pub(super) struct Marks(pub(super) Option<Tree>);

impl Marks {
    /// The order of one transaction's marks among all (0 when the tree is not kept).
    pub(super) fn order(&self, db: &Db) -> Result<u64, StoreError> {
        match self.0 {
            Some(_) => db.generate_id(),
            None => Ok(0),
        }
    }

    /// Marks event `id`, the `pos`th of transaction `order`, in `view` (the transaction's view
    /// of this tree).
    pub(super) fn mark(
        &self,
        view: Option<&View<'_>>,
        order: u64,
        pos: usize,
        id: &str,
    ) -> Result<(), Interrupted> {
        match view {
            Some(t) if self.0.is_some() => t.insert(pending_key(order, pos, id), &[]),
            _ => Ok(()),
        }
    }
}

impl Store {
    /// From now on, marks every event stored or changed for the tier above ([`Upward`]).
    pub fn forwarding_upward(mut self) -> Result<Self, StoreError> {
        self.pending = Marks(Some(self.db.open_tree(PENDING)?));
        Ok(self)
    }
}

/// The log of changes numbered for the tier above, and how far its receipts have come.
#[derive(Debug, Clone)]
pub struct Upward {
    store: Store,
    pending: Tree,
    log: Tree,
    meta: Tree,
}

impl Upward {
    /// The log of `store` (which marks changes: [`Store::forwarding_upward`]).
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            pending: store.db.open_tree(PENDING)?,
            log: store.db.open_tree("upward_log")?,
            meta: store.db.open_tree("upward_meta")?,
        })
    }

    /// Numbers up to `limit` pending changes, in their order, after the last number given;
    /// the last number given now. Durable once it returns.
    pub async fn number(&self, limit: usize) -> Result<u64, StoreError> {
        let keys: Vec<_> = self.pending.iter().keys().take(limit).collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return self.last();
        }
        let last = write(&[&self.pending, &self.log, &self.meta], |t| {
            let mut last = number(t[2].get(LAST)?);
            for key in &keys {
                t[0].remove(key)?;
                last += 1;
                t[1].insert(last.to_be_bytes(), &key[12..])?;
            }
            t[2].insert(LAST, last.to_be_bytes().to_vec())?;
            Ok(last)
        })?;
        self.store.flush().await?;
        Ok(last)
    }

    /// The last number given.
    pub fn last(&self) -> Result<u64, StoreError> {
        Ok(number(self.meta.get(LAST)?))
    }

    /// The last number the tier above receipted.
    pub fn acked(&self) -> Result<u64, StoreError> {
        Ok(number(self.meta.get(ACKED)?))
    }

    /// The id of the event numbered `seq`, while it is not receipted.
    pub fn id_at(&self, seq: u64) -> Result<Option<String>, StoreError> {
        Ok(self.log.get(seq.to_be_bytes())?.map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// The tier above stored every change up to `up_to`: forgets them. Whether that was news
    /// (a receipt for numbers not given yet, or older than the last, changes nothing).
    pub async fn receipted(&self, up_to: u64) -> Result<bool, StoreError> {
        let acked = self.acked()?;
        if up_to <= acked || up_to > self.last()? {
            return Ok(false);
        }
        let range = (Bound::Excluded(acked.to_be_bytes()), Bound::Included(up_to.to_be_bytes()));
        let keys: Vec<_> = self.log.range(range).keys().collect::<Result<_, _>>()?;
        write(&[&self.log, &self.meta], |t| {
            for key in &keys {
                t[0].remove(key)?;
            }
            t[1].insert(ACKED, up_to.to_be_bytes().to_vec())?;
            Ok(())
        })?;
        self.store.flush().await?;
        Ok(true)
    }
}

/// What became of a change a center below forwarded.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Stored: the event's record here now.
    Stored(Box<AlarmRecord>),
    /// Its number was stored before: nothing changed.
    Duplicate,
    /// A number before it is missing: not stored (the center below sends from `expected`).
    Ahead {
        /// The number expected next.
        expected: u64,
    },
    /// Its number is passed, its event not stored, for this reason.
    Refused(String),
    /// Its number is passed: the center below no longer had the event (retention).
    Passed,
}

/// One county's boxes as its center last reported them up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountyBoxes {
    /// The county (its center's name at the city).
    pub county: String,
    /// Boxes connected.
    pub online: u32,
    /// Boxes registered.
    pub total: u32,
    /// When its center counted them, UTC ms.
    pub as_of_ms: i64,
}

impl From<&xueliang_proto::CountyBoxes> for CountyBoxes {
    fn from(c: &xueliang_proto::CountyBoxes) -> Self {
        Self { county: c.county.clone(), online: c.online, total: c.total, as_of_ms: c.as_of_ms }
    }
}

impl From<CountyBoxes> for xueliang_proto::CountyBoxes {
    fn from(c: CountyBoxes) -> Self {
        Self { county: c.county, online: c.online, total: c.total, as_of_ms: c.as_of_ms }
    }
}

/// What the centers of the tier below forwarded here, and how far each has come.
#[derive(Debug, Clone)]
pub struct FromBelow {
    store: Store,
    /// Each center below's name → the last number stored from it.
    applied: Tree,
    /// Each county's name → its boxes as last reported ([`CountyBoxes`], JSON).
    boxes: Tree,
}

impl FromBelow {
    /// Opens the record of what came from below in `store`.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            store: store.clone(),
            applied: store.db.open_tree("tier_applied")?,
            boxes: store.db.open_tree("tier_boxes")?,
        })
    }

    /// Keeps each county's boxes of `report` unless what is kept was counted later.
    pub fn keep_boxes(&self, report: &[CountyBoxes]) -> Result<(), StoreError> {
        for b in report {
            let kept = self.boxes.get(&b.county)?;
            let newer = kept
                .and_then(|k| serde_json::from_slice::<CountyBoxes>(&k).ok())
                .is_some_and(|k| k.as_of_ms > b.as_of_ms);
            if !newer {
                // Strings and numbers: serializing cannot fail.
                let json = serde_json::to_vec(b).expect("a CountyBoxes serializes");
                self.boxes.insert(&b.county, json)?;
            }
        }
        Ok(())
    }

    /// Every county's boxes as last reported, by county.
    pub fn boxes(&self) -> Result<Vec<CountyBoxes>, StoreError> {
        let mut all = Vec::new();
        for entry in self.boxes.iter() {
            let (_, v) = entry?;
            // One that does not parse was written by no build of this center: left out.
            all.extend(serde_json::from_slice::<CountyBoxes>(&v).ok());
        }
        Ok(all)
    }

    /// The last number stored from each center of `origins`, read at once.
    pub fn applied_many(&self, origins: &[&str]) -> Result<Vec<u64>, StoreError> {
        let keys: Vec<&[u8]> = origins.iter().map(|o| o.as_bytes()).collect();
        Ok(self.applied.get_many(&keys)?.into_iter().map(number).collect())
    }

    /// Stores each change of `batch` that is the next one of its center, in one transaction:
    /// its record (none: the event was deleted there) with its thumbnail in place of the
    /// event's record and picture, kept as forwarded by that center and marked for the tier
    /// above if this center forwards too; an event's first number and arrival (`now_ms`)
    /// stay. An event another center forwarded, or that retention deleted here, is not
    /// stored. What became of each, in the batch's order. Not durable until [`Store::flush`].
    pub fn receive(
        &self,
        batch: &[Incoming<'_>],
        now_ms: i64,
    ) -> Result<Vec<Received>, StoreError> {
        let store = &self.store;
        let order = store.pending.order(&store.db)?;
        let mut trees = store.with_proofs();
        let at = trees.len();
        trees.push(&self.applied);
        let origins: Vec<&[u8]> = batch.iter().map(|c| c.origin.as_bytes()).collect();
        let ids: Vec<&[u8]> =
            batch.iter().filter_map(|c| c.record.map(|r| r.id.as_bytes())).collect();
        // Every key whose value decides what happens here is written when it does (the
        // center's number; the event, whatever retention or this center's own dispatch did to
        // it), so concurrent writers of it conflict without the predicate locks that make the
        // receiver's concurrent batches (other centers' events, next to these) conflict.
        write_at(Isolation::Snapshot, &trees, |t| {
            // One round trip for each tree's keys, not one per change, where that matters.
            t[at].prefetch(&origins)?;
            t[ALARMS].prefetch(&ids)?;
            t[DELETED_AT].prefetch(&ids)?;
            let mut out = Vec::with_capacity(batch.len());
            for (pos, change) in batch.iter().enumerate() {
                out.push(self.take(t, at, change, order, pos, now_ms)?);
            }
            Ok(out)
        })
    }

    /// [`FromBelow::receive`] for one change, the `pos`th of transaction `order`, `at` the
    /// place of the applied numbers among the views `t`.
    fn take(
        &self,
        t: &[View<'_>],
        at: usize,
        change: &Incoming<'_>,
        order: u64,
        pos: usize,
        now_ms: i64,
    ) -> Result<Received, Interrupted> {
        let Incoming { origin, seq, record, thumbnail } = *change;
        // Reads in a transaction see its own writes: a center's earlier change in the batch.
        let done = number(t[at].get(origin)?);
        if seq <= done {
            return Ok(Received::Duplicate);
        }
        if seq > done + 1 {
            return Ok(Received::Ahead { expected: done + 1 });
        }
        t[at].insert(origin, seq.to_be_bytes().to_vec())?;
        let Some(record) = record else { return Ok(Received::Passed) };
        let key = record.id.as_bytes();
        // A record that cannot be read is replaced.
        let before = t[ALARMS].get(key)?.and_then(|b| self.store.parse(&record.id, &b).ok());
        let (first, at_ms) = match &before {
            None if t[DELETED_AT].get(key)?.is_some() => {
                return Ok(Received::Refused("deleted here by retention".into()));
            }
            None => (seq, now_ms),
            Some(AlarmRecord { forwarded: Some(f), .. }) if f.by == origin => (f.seq, f.at_ms),
            Some(_) => {
                let why = format!("event {} is not one {origin} forwarded", record.id);
                return Ok(Received::Refused(why));
            }
        };
        let mut record = record.clone();
        let county = record.forwarded.take().map_or_else(|| origin.to_owned(), |f| f.county);
        record.forwarded = Some(Forwarded { county, by: origin.to_owned(), seq: first, at_ms });
        // What this center did itself stays (what a center between did is its own).
        record.own = before.as_ref().map(|b| b.own.clone()).unwrap_or_default();
        record.snapshot_bytes = thumbnail.len();
        let old = before.as_ref().map(index_entries).unwrap_or_default();
        let new = index_entries(&record);
        move_entries(t, &old, &new)?;
        t[ALARMS].insert(key, to_json(&record))?;
        match thumbnail.is_empty() {
            true => t[SNAPSHOTS].remove(key)?,
            false => t[SNAPSHOTS].insert(key, thumbnail)?,
        };
        self.store.pending.mark(t.get(PENDING_AT), order, pos, &record.id)?;
        Ok(Received::Stored(Box::new(record)))
    }
}

/// One change a center below forwarded, checked as theirs.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The center below that sent it.
    pub origin: &'a str,
    /// Its number in that center's order.
    pub seq: u64,
    /// The event as it is there now; none: deleted there.
    pub record: Option<&'a AlarmRecord>,
    /// Its thumbnail (empty: none).
    pub thumbnail: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::test_record as record;
    use crate::domain::{Request, Status};

    /// What became of one change `receive`d alone.
    fn one(
        below: &FromBelow,
        origin: &str,
        seq: u64,
        record: Option<&AlarmRecord>,
        thumbnail: &[u8],
        now_ms: i64,
    ) -> Received {
        let change = Incoming { origin, seq, record, thumbnail };
        below.receive(&[change], now_ms).unwrap().remove(0)
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn changes_are_numbered_in_their_order_and_forgotten_once_receipted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap().forwarding_upward().unwrap();
        let upward = Upward::open(&store).unwrap();
        let batch = [record("a"), record("b")];
        let rows: Vec<_> = batch.iter().map(|r| (r, &[][..], None)).collect();
        store.insert_batch(&rows).unwrap();
        store.insert(&record("c"), b"").unwrap();
        store.insert(&record("a"), b"").unwrap();
        let acknowledge = |r: &mut AlarmRecord| {
            r.status = Status::Acknowledged;
            Ok::<_, ()>(())
        };
        store.update("b", acknowledge).unwrap();
        assert_eq!(block(upward.number(3)).unwrap(), 3, "three at a time");
        assert_eq!(block(upward.number(10)).unwrap(), 4);
        let ids: Vec<_> = (1..=4).map(|n| upward.id_at(n).unwrap().unwrap()).collect();
        assert_eq!(ids, ["a", "b", "c", "b"], "in the order stored and changed; a repeat not");
        assert!(!block(upward.receipted(5)).unwrap(), "a number not given yet");
        assert!(block(upward.receipted(2)).unwrap());
        assert!(!block(upward.receipted(1)).unwrap(), "an older receipt");
        assert_eq!((upward.acked().unwrap(), upward.last().unwrap()), (2, 4));
        assert_eq!(upward.id_at(2).unwrap(), None, "receipted: forgotten");
        assert_eq!(upward.id_at(3).unwrap().as_deref(), Some("c"));
    }

    #[test]
    fn what_comes_from_below_is_stored_in_order_once_and_never_escalated_or_acted_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let below = FromBelow::open(&store).unwrap();
        let a = AlarmRecord { status: Status::New, ..record("a") };
        assert_eq!(one(&below, "330102", 2, Some(&a), b"", 10), Received::Ahead { expected: 1 });
        let Received::Stored(stored) = one(&below, "330102", 1, Some(&a), b"jpg", 10) else {
            panic!("stored")
        };
        let f = stored.forwarded.clone().unwrap();
        assert_eq!((f.county.as_str(), f.by.as_str(), f.seq, f.at_ms), ("330102", "330102", 1, 10));
        assert_eq!(stored.snapshot_bytes, 3);
        assert_eq!(one(&below, "330102", 1, Some(&a), b"", 11), Received::Duplicate);
        // A later change replaces the record; where it came from stays.
        let ended = AlarmRecord { peak_count: 4, ..a.clone() };
        let Received::Stored(again) = one(&below, "330102", 2, Some(&ended), b"", 12) else {
            panic!("stored")
        };
        assert_eq!((again.peak_count, again.forwarded), (4, Some(f)));
        // Another county's center cannot replace it; its number is passed all the same.
        assert!(matches!(one(&below, "330103", 1, Some(&a), b"", 13), Received::Refused(_)));
        assert_eq!(below.applied_many(&["330103"]).unwrap(), [1]);
        assert_eq!(one(&below, "330102", 3, None, b"", 14), Received::Passed);
        assert_eq!(store.len(), 1);
        assert!(store.escalation_due(i64::MAX, 10).unwrap().is_empty(), "the county's to act on");
        let req = Request {
            action: crate::domain::Action::Acknowledge,
            by: "city-officer",
            note: "",
            units: &[],
            at_ms: 20,
            late: None,
        };
        let e = store.update("a", |r| crate::domain::apply(r, &req)).unwrap_err();
        assert!(e.to_string().contains("county 330102's"), "{e}");
    }

    #[test]
    fn this_centers_own_dispatch_stays_when_the_county_changes_its_event() {
        use crate::domain::{Action, Step};
        use crate::store::AlarmFilter;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let below = FromBelow::open(&store).unwrap();
        let mut a = AlarmRecord { status: Status::Dispatched, ..record("a") };
        a.dispatched_to = vec!["county-pcs".into()];
        // What the city between did is the city's: not kept here.
        a.own.dispatched_to = vec!["city-swat".into()];
        assert!(matches!(one(&below, "330102", 1, Some(&a), b"", 10), Received::Stored(_)));
        let units = ["province-swat".to_owned()];
        let req = |action, units| Request {
            action,
            by: "officer",
            note: "",
            units,
            at_ms: 20,
            late: None,
        };
        let (sent, ()) =
            store.update("a", |r| crate::domain::apply(r, &req(Action::Dispatch, &units))).unwrap();
        assert_eq!((sent.status, sent.units_here()), (Status::Dispatched, &units[..]));
        let unit = |u: &str| AlarmFilter { unit: Some(u.into()), ..Default::default() };
        let listed = |u| store.query(&unit(u), None, 10).unwrap().alarms.len();
        assert_eq!((listed("province-swat"), listed("county-pcs"), listed("city-swat")), (1, 0, 0));
        // The county resolves it: its status and steps change, this center's dispatch stays.
        let resolved = AlarmRecord { status: Status::Resolved, ..a.clone() };
        let Received::Stored(now) = one(&below, "330102", 2, Some(&resolved), b"", 30) else {
            panic!("stored")
        };
        assert_eq!(now.status, Status::Resolved);
        assert_eq!(now.own.dispatched_to, units);
        assert!(matches!(now.own.timeline[..], [Step { action: Action::Dispatch, .. }]));
        assert_eq!(listed("province-swat"), 1);
        // Its unit receives it here.
        let receive = store.update("a", |r| crate::domain::apply(r, &req(Action::Receive, &units)));
        assert_eq!(receive.unwrap().0.own.timeline.len(), 2);
    }

    #[test]
    fn a_batch_from_several_centers_is_taken_in_its_order_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap().forwarding_upward().unwrap();
        let below = FromBelow::open(&store).unwrap();
        let (a, b) = (record("a"), record("b"));
        let a2 = AlarmRecord { peak_count: 7, ..a.clone() };
        let change = |origin, seq, record| Incoming { origin, seq, record, thumbnail: b"" };
        let batch = [
            change("330102", 1, Some(&a)),
            change("330103", 1, Some(&b)),
            change("330102", 2, Some(&a2)),
            change("330102", 4, Some(&a)),
            change("330103", 1, Some(&b)),
        ];
        let got = below.receive(&batch, 10).unwrap();
        assert!(
            matches!(&got[..3], [Received::Stored(_), Received::Stored(_), Received::Stored(r)]
            if r.peak_count == 7 && r.forwarded.as_ref().is_some_and(|f| f.seq == 1))
        );
        assert_eq!(got[3..], [Received::Ahead { expected: 3 }, Received::Duplicate]);
        assert_eq!(below.applied_many(&["330102", "330103"]).unwrap(), [2, 1]);
        // Forwarded on in the batch's order, each change its own.
        let upward = Upward::open(&store).unwrap();
        assert_eq!(block(upward.number(10)).unwrap(), 3);
        let ids: Vec<_> = (1..=3).map(|n| upward.id_at(n).unwrap().unwrap()).collect();
        assert_eq!(ids, ["a", "b", "a"]);
    }

    #[test]
    fn a_city_forwards_on_what_it_stored_keeping_the_county() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap().forwarding_upward().unwrap();
        let below = FromBelow::open(&store).unwrap();
        one(&below, "330102", 1, Some(&record("a")), b"", 10);
        let upward = Upward::open(&store).unwrap();
        assert_eq!(block(upward.number(10)).unwrap(), 1);
        let sent = store.get("a").unwrap().unwrap();
        // At the province, from the city.
        let dir = tempfile::tempdir().unwrap();
        let province = FromBelow::open(&Store::for_test(dir.path()).unwrap()).unwrap();
        let Received::Stored(r) = one(&province, "3301", 1, Some(&sent), b"", 20) else {
            panic!("stored")
        };
        let f = r.forwarded.unwrap();
        assert_eq!((f.county.as_str(), f.by.as_str(), f.at_ms), ("330102", "3301", 20));
    }

    #[test]
    fn a_countys_boxes_are_kept_as_last_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::for_test(dir.path()).unwrap();
        let below = FromBelow::open(&store).unwrap();
        let boxes = |county: &str, online, as_of_ms| CountyBoxes {
            county: county.into(),
            online,
            total: 5,
            as_of_ms,
        };
        below.keep_boxes(&[boxes("330102", 4, 100), boxes("330103", 5, 100)]).unwrap();
        below.keep_boxes(&[boxes("330102", 3, 200)]).unwrap();
        // Passed on by another way, counted before: not kept.
        below.keep_boxes(&[boxes("330102", 5, 150)]).unwrap();
        assert_eq!(below.boxes().unwrap(), [boxes("330102", 3, 200), boxes("330103", 5, 100)]);
    }
}
