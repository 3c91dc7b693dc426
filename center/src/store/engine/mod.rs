//! The engine under the store: ordered trees of byte keys and values, with transactions over
//! several trees, kept either in sled (embedded, the default) or in PostgreSQL (one table of
//! `(tree, key, value)` rows; see `postgres.rs`). Everything above this module — the records,
//! the indexes, queries, workflow, audit, retention — is written once against these trees, so
//! both engines hold the same bytes under the same keys and behave alike.
//!
//! The interface is sled's, cut to what the center uses: values are [`sled::IVec`] whichever
//! engine holds them.

mod postgres;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use sled::transaction::{
    ConflictableTransactionError, TransactionError, UnabortableTransactionError,
};
use sled::{IVec, Transactional as _};

use super::StoreError;
use postgres::{PgIter, PgView};
pub use postgres::{Postgres, redact};

/// A database: sled's or PostgreSQL's.
#[derive(Debug, Clone)]
pub enum Db {
    /// Embedded, in the data directory.
    Sled(sled::Db),
    /// A PostgreSQL database, shared with any other center process of the county.
    Postgres(Arc<Postgres>),
}

/// One ordered tree of a [`Db`].
#[derive(Debug, Clone)]
pub struct Tree(Inner);

#[derive(Debug, Clone)]
enum Inner {
    Sled(sled::Tree),
    Postgres(Arc<Postgres>, Arc<str>),
}

impl Db {
    /// Opens (or creates) tree `name`.
    pub fn open_tree(&self, name: &str) -> Result<Tree, StoreError> {
        Ok(Tree(match self {
            Db::Sled(db) => Inner::Sled(db.open_tree(name)?),
            Db::Postgres(pg) => Inner::Postgres(pg.clone(), name.into()),
        }))
    }

    /// The names of the trees holding anything (sled lists its own default tree too).
    pub fn tree_names(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Db::Sled(db) => Ok(db
                .tree_names()
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect()),
            Db::Postgres(pg) => pg.tree_names(),
        }
    }

    /// A fresh id, increasing, unique across every process sharing the database.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        match self {
            Db::Sled(db) => Ok(db.generate_id()?),
            Db::Postgres(pg) => pg.generate_id(),
        }
    }

    /// Makes every write so far durable (PostgreSQL's are, once committed).
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Db::Sled(db) => db.flush_async().await.map(drop).map_err(StoreError::from),
            Db::Postgres(_) => Ok(()),
        }
    }

    /// [`Db::flush`] for callers that cannot wait asynchronously.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        match self {
            Db::Sled(db) => db.flush().map(drop).map_err(StoreError::from),
            Db::Postgres(_) => Ok(()),
        }
    }
}

impl AsRef<Tree> for Tree {
    fn as_ref(&self) -> &Tree {
        self
    }
}

/// What [`Db::copy_to`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Trees copied.
    pub trees: usize,
    /// Entries copied, all trees together.
    pub entries: u64,
}

/// Entries written per transaction when copying.
const COPY_BATCH: usize = 1000;

impl Db {
    /// Copies every tree into `to`, which must hold none, then reads both back and compares
    /// them tree by tree (count and SHA-256 of every key and value in order). Ids `to` gives
    /// afterwards are above every id this database gave.
    pub fn copy_to(&self, to: &Db) -> Result<Copied, StoreError> {
        let names: Vec<String> = self
            .tree_names()?
            .into_iter()
            .filter(|n| !self.open_tree(n).is_ok_and(|t| t.is_empty()))
            .collect();
        if let Some(held) =
            to.tree_names()?.into_iter().find(|n| to.open_tree(n).is_ok_and(|t| !t.is_empty()))
        {
            return Err(StoreError::Copy(format!(
                "the target already holds records (tree {held}): copy into an empty database"
            )));
        }
        let mut copied = Copied { trees: 0, entries: 0 };
        for name in &names {
            let (from, into) = (self.open_tree(name)?, to.open_tree(name)?);
            let mut batch = Vec::with_capacity(COPY_BATCH);
            let mut entries = from.iter();
            loop {
                let next = entries.next().transpose()?;
                let end = next.is_none();
                batch.extend(next);
                if batch.len() == COPY_BATCH || (end && !batch.is_empty()) {
                    write(&[&into], |t| {
                        for (k, v) in &batch {
                            t[0].insert(k, v.clone())?;
                        }
                        Ok(())
                    })?;
                    copied.entries += batch.len() as u64;
                    batch.clear();
                }
                if end {
                    break;
                }
            }
            copied.trees += 1;
        }
        // Ids number the audit log's entries: the copy must never give one again.
        let last = self.generate_id()?;
        match to {
            Db::Postgres(pg) => pg.ids_after(last)?,
            // sled's counter only counts up; it keeps its place every million ids.
            Db::Sled(db) => while db.generate_id()? <= last {},
        }
        to.flush_blocking()?;
        for name in &names {
            let (a, b) = (digest(&self.open_tree(name)?)?, digest(&to.open_tree(name)?)?);
            if a != b {
                return Err(StoreError::Copy(format!(
                    "tree {name} differs after copying ({} entries read back, {} copied)",
                    b.0, a.0
                )));
            }
        }
        Ok(copied)
    }
}

/// A tree's entry count and the SHA-256 of its keys and values in order (each length-prefixed).
fn digest(t: &Tree) -> Result<(u64, Vec<u8>), StoreError> {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut n = 0;
    for entry in t.iter() {
        let (k, v) = entry?;
        for part in [&k, &v] {
            h.update(&(part.len() as u64).to_be_bytes());
            h.update(part);
        }
        n += 1;
    }
    Ok((n, h.finish().as_ref().to_vec()))
}

impl Tree {
    fn sled(&self) -> Option<&sled::Tree> {
        match &self.0 {
            Inner::Sled(t) => Some(t),
            Inner::Postgres(..) => None,
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, StoreError> {
        match &self.0 {
            Inner::Sled(t) => Ok(t.get(key)?),
            Inner::Postgres(pg, name) => pg.get(name, key.as_ref()),
        }
    }

    /// The values under `keys`, in their order; one round trip in PostgreSQL.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<IVec>>, StoreError> {
        match &self.0 {
            Inner::Sled(t) => Ok(keys.iter().map(|k| t.get(k)).collect::<Result<_, _>>()?),
            Inner::Postgres(pg, name) => pg.get_many(name, keys),
        }
    }

    /// Whether `key` holds a value.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }

    /// Sets `key` to `value`.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<IVec>) -> Result<(), StoreError> {
        match &self.0 {
            Inner::Sled(t) => t.insert(key.as_ref(), value).map(drop).map_err(StoreError::from),
            Inner::Postgres(pg, name) => pg.put(name, key.as_ref(), &value.into()),
        }
    }

    /// Removes `key`, returning what it held.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, StoreError> {
        match &self.0 {
            Inner::Sled(t) => Ok(t.remove(key)?),
            Inner::Postgres(pg, name) => pg.remove(name, key.as_ref()),
        }
    }

    /// Sets `key` to `new` if it holds `old` (`None`: absent; a `new` of `None` removes it);
    /// otherwise tells what it holds.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl Into<IVec>>,
    ) -> Result<Result<(), Option<IVec>>, StoreError> {
        let (key, old, new) = (key.as_ref(), old.as_ref().map(AsRef::as_ref), new.map(Into::into));
        match &self.0 {
            Inner::Sled(t) => Ok(t.compare_and_swap(key, old, new)?.map_err(|e| e.current)),
            Inner::Postgres(pg, name) => pg.compare_and_swap(name, key, old, new.as_deref()),
        }
    }

    /// Changes `key`'s value with `f` (which may run more than once) and returns the new one.
    pub fn update_and_fetch(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<IVec>, StoreError> {
        Ok(self.swap_with(key.as_ref(), f)?.1)
    }

    /// Changes `key`'s value with `f` (which may run more than once) and returns the old one.
    pub fn fetch_and_update(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<IVec>, StoreError> {
        Ok(self.swap_with(key.as_ref(), f)?.0)
    }

    /// Sets `key` to what `f` makes of its value, again while another writer changes it first;
    /// returns the value before and after.
    fn swap_with(
        &self,
        key: &[u8],
        mut f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<(Option<IVec>, Option<IVec>), StoreError> {
        let mut current = self.get(key)?;
        loop {
            let new = f(current.as_deref()).map(IVec::from);
            match self.compare_and_swap(key, current.as_ref(), new.clone())? {
                Ok(()) => return Ok((current, new)),
                Err(now) => current = now,
            }
        }
    }

    /// Makes every write so far to this tree's database durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.0 {
            Inner::Sled(t) => t.flush_async().await.map(drop).map_err(StoreError::from),
            Inner::Postgres(..) => Ok(()),
        }
    }

    /// [`Tree::flush`] for callers that cannot wait asynchronously.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        match &self.0 {
            Inner::Sled(t) => t.flush().map(drop).map_err(StoreError::from),
            Inner::Postgres(..) => Ok(()),
        }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Iter {
        self.range::<&[u8], _>(..)
    }

    /// The entries whose keys fall in `range`, in key order.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        let owned = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (lo, hi) = (owned(range.start_bound()), owned(range.end_bound()));
        Iter(match &self.0 {
            Inner::Sled(t) => IterInner::Sled(t.range::<Vec<u8>, _>((lo, hi))),
            Inner::Postgres(pg, name) => IterInner::Postgres(PgIter::new(pg, name, lo, hi)),
        })
    }

    /// The entries whose keys start with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref().to_vec();
        match successor_of_prefix(&prefix) {
            Some(end) => self.range(prefix..end),
            None => self.range(prefix..),
        }
    }

    /// The last entry.
    pub fn last(&self) -> Result<Option<(IVec, IVec)>, StoreError> {
        self.iter().next_back().transpose()
    }

    /// The first entry.
    pub fn first(&self) -> Result<Option<(IVec, IVec)>, StoreError> {
        self.iter().next().transpose()
    }

    /// Number of entries (it walks them all: for counts, not hot paths). A store that cannot be
    /// read counts 0; the failure shows wherever the records are read.
    pub fn len(&self) -> usize {
        match &self.0 {
            Inner::Sled(t) => t.len(),
            Inner::Postgres(pg, name) => pg.len(name).unwrap_or(0),
        }
    }

    /// Number of entries whose keys start with `prefix`, counted where they are kept (for
    /// PostgreSQL, by the server instead of walking them page by page). 0 if it cannot be read.
    pub fn count_prefix(&self, prefix: impl AsRef<[u8]>) -> usize {
        let prefix = prefix.as_ref();
        match &self.0 {
            Inner::Sled(t) => t.scan_prefix(prefix).count(),
            Inner::Postgres(pg, name) => {
                pg.count_range(name, prefix, successor_of_prefix(prefix).as_deref()).unwrap_or(0)
            }
        }
    }

    /// Whether the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), StoreError> {
        match &self.0 {
            Inner::Sled(t) => Ok(t.clear()?),
            Inner::Postgres(pg, name) => pg.clear(name),
        }
    }
}

/// The smallest key greater than every key starting with `prefix`; none if there is none.
fn successor_of_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Entries of a tree in key order, from either end.
pub struct Iter(IterInner);

enum IterInner {
    Sled(sled::Iter),
    Postgres(PgIter),
}

impl Iter {
    /// Only the keys.
    pub fn keys(self) -> impl DoubleEndedIterator<Item = Result<IVec, StoreError>> {
        self.map(|r| r.map(|(k, _)| k))
    }

    /// Only the values.
    pub fn values(self) -> impl DoubleEndedIterator<Item = Result<IVec, StoreError>> {
        self.map(|r| r.map(|(_, v)| v))
    }
}

impl Iterator for Iter {
    type Item = Result<(IVec, IVec), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Sled(i) => i.next().map(|r| r.map_err(StoreError::from)),
            IterInner::Postgres(i) => i.next(),
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Sled(i) => i.next_back().map(|r| r.map_err(StoreError::from)),
            IterInner::Postgres(i) => i.next_back(),
        }
    }
}

/// A tree as a transaction sees it: its own writes, and what was committed before it.
pub enum View<'a> {
    /// In a sled transaction.
    Sled(&'a sled::transaction::TransactionalTree),
    /// In a PostgreSQL transaction.
    Postgres(PgView<'a>),
}

/// Why a transaction's read or write could not go on: the engine retries the transaction or
/// reports the failure; the closure only passes it on with `?`.
#[derive(Debug)]
pub struct Interrupted(Interruption);

#[derive(Debug)]
enum Interruption {
    Sled(UnabortableTransactionError),
    Postgres(postgres::TxFailure),
}

/// How a transaction's closure ends early.
#[derive(Debug)]
pub enum TxError<E> {
    /// It refused: nothing is written and the transaction returns `Ok(Err(e))`.
    Abort(E),
    /// The engine interrupted it.
    Interrupted(Interrupted),
}

impl<E> From<Interrupted> for TxError<E> {
    fn from(i: Interrupted) -> Self {
        TxError::Interrupted(i)
    }
}

impl View<'_> {
    /// The value under `key`, the transaction's own writes included.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, Interrupted> {
        match self {
            View::Sled(t) => t.get(key).map_err(|e| Interrupted(Interruption::Sled(e))),
            View::Postgres(v) => v.get(key.as_ref()),
        }
    }

    /// Reads `keys` ahead, in one round trip where the engine has them (PostgreSQL), for the
    /// [`View::get`]s that follow.
    pub fn prefetch(&self, keys: &[&[u8]]) -> Result<(), Interrupted> {
        match self {
            View::Sled(_) => Ok(()),
            View::Postgres(v) => v.prefetch(keys),
        }
    }

    /// Sets `key` to `value` when the transaction commits.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<IVec>) -> Result<(), Interrupted> {
        match self {
            View::Sled(t) => t
                .insert(key.as_ref(), value)
                .map(drop)
                .map_err(|e| Interrupted(Interruption::Sled(e))),
            View::Postgres(v) => {
                v.set(key.as_ref(), Some(value.into()));
                Ok(())
            }
        }
    }

    /// Removes `key` when the transaction commits.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<(), Interrupted> {
        match self {
            View::Sled(t) => {
                t.remove(key.as_ref()).map(drop).map_err(|e| Interrupted(Interruption::Sled(e)))
            }
            View::Postgres(v) => {
                v.set(key.as_ref(), None);
                Ok(())
            }
        }
    }
}

/// Runs `f` as one transaction over `trees` (all of one [`Db`]): all its writes or none. `f`
/// may run more than once (when a concurrent writer conflicts), so it must depend only on what
/// it reads. Returns `Ok(Err(e))` when `f` aborted with `e`.
pub fn transaction<T, E>(
    trees: &[impl AsRef<Tree>],
    f: impl Fn(&[View<'_>]) -> Result<T, TxError<E>>,
) -> Result<Result<T, E>, StoreError> {
    transaction_at(Isolation::Serializable, trees, f)
}

/// How far a PostgreSQL transaction is kept apart from concurrent ones (sled's are always
/// serializable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// As if run one after another: also a transaction that read a key another then wrote
    /// conflicts (PostgreSQL's predicate locks, which conflict on neighbouring keys too).
    Serializable,
    /// Concurrent transactions conflict only when both write one key: for a transaction that
    /// writes every key whose value it acts on (PostgreSQL's REPEATABLE READ).
    Snapshot,
}

/// [`transaction`] at `isolation`.
fn transaction_at<T, E>(
    isolation: Isolation,
    trees: &[impl AsRef<Tree>],
    f: impl Fn(&[View<'_>]) -> Result<T, TxError<E>>,
) -> Result<Result<T, E>, StoreError> {
    let trees: Vec<&Tree> = trees.iter().map(AsRef::as_ref).collect();
    if let Some(sled_trees) = trees.iter().map(|t| t.sled()).collect::<Option<Vec<_>>>() {
        let run = sled_trees[..].transaction(|views| {
            let views: Vec<View<'_>> = views.iter().map(View::Sled).collect();
            f(&views).map_err(|e| match e {
                TxError::Abort(e) => ConflictableTransactionError::Abort(e),
                TxError::Interrupted(Interrupted(Interruption::Sled(u))) => u.into(),
                TxError::Interrupted(Interrupted(Interruption::Postgres(_))) => {
                    unreachable!("a sled transaction holds only sled trees")
                }
            })
        });
        return match run {
            Ok(r) => Ok(Ok(r)),
            Err(TransactionError::Abort(e)) => Ok(Err(e)),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        };
    }
    // Not all sled's, so (as trees of one database) all PostgreSQL's.
    let mut names = Vec::with_capacity(trees.len());
    let mut pg = None;
    for t in &trees {
        if let Inner::Postgres(p, name) = &t.0 {
            pg = Some(p);
            names.push(name.clone());
        }
    }
    match (pg, names.len() == trees.len()) {
        (Some(pg), true) => pg.transaction(isolation, &names, &f),
        _ => Err(StoreError::Postgres("one transaction over trees of two databases".into())),
    }
}

/// [`transaction`] for changes that cannot refuse themselves.
pub fn write<T>(
    trees: &[impl AsRef<Tree>],
    f: impl Fn(&[View<'_>]) -> Result<T, TxError<std::convert::Infallible>>,
) -> Result<T, StoreError> {
    write_at(Isolation::Serializable, trees, f)
}

/// [`write`] at `isolation`.
pub fn write_at<T>(
    isolation: Isolation,
    trees: &[impl AsRef<Tree>],
    f: impl Fn(&[View<'_>]) -> Result<T, TxError<std::convert::Infallible>>,
) -> Result<T, StoreError> {
    transaction_at(isolation, trees, f).map(|r| r.unwrap_or_else(|never| match never {}))
}

#[cfg(test)]
mod tests;
