//! The engine's trees in PostgreSQL: one table, `xl_kv (tree, key, value)`, its primary key the
//! B-tree that orders each tree's keys (bytea compares byte by byte, as sled does), and a
//! sequence for ids. Putting an ordered key-value interface on a SQL database is the approach of
//! k3s's kine (etcd's interface on PostgreSQL): one code path above it, both engines holding the
//! same bytes under the same keys.
//!
//! The driver is tokio-postgres on a small runtime of its own; callers block on its futures
//! (as they block on sled's disk), so the store keeps one synchronous interface. Transactions
//! are SERIALIZABLE: two center processes that read the same absent key and both write it
//! cannot both commit, and the loser runs its closure again, as sled runs a conflicting one.
//! One that writes every key it acts on may ask for REPEATABLE READ instead
//! ([`Isolation::Snapshot`]): two such writing one key still conflict, but its reads take no
//! predicate locks, which conflict with writers of neighbouring keys too.
//! Writes are kept in the transaction and sent at commit in one statement per tree.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sled::IVec;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::{Interrupted, Interruption, Isolation, TxError, View};
use crate::store::StoreError;

/// The schema, one step per version; a step never changes once released. A database at a
/// higher version than this list was written by a newer center, which this one refuses.
const MIGRATIONS: &[&str] = &["CREATE TABLE xl_kv (
        tree text COLLATE \"C\" NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (tree, key)
     );
     CREATE SEQUENCE xl_ids;"];

/// Held while migrating, so that center processes starting together migrate once ("xl" in hex).
const MIGRATION_LOCK: i64 = 0x786c_0001;

/// Rows fetched at a time when walking a tree.
const PAGE: i64 = 256;

/// Idle connections kept for the next caller.
const MAX_IDLE: usize = 16;

/// Times a transaction is tried when concurrent writers keep conflicting with it.
const MAX_ATTEMPTS: u32 = 64;

/// A PostgreSQL database holding the center's trees.
pub struct Postgres {
    /// Drives the connections; shut down without waiting when the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    config: tokio_postgres::Config,
    /// Where it is, for messages: host, port and database, never the password.
    place: String,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("place", &self.place).finish_non_exhaustive()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// One connection and its prepared statements.
struct Conn {
    client: Client,
    s: Statements,
}

struct Statements {
    get: Statement,
    get_many: Statement,
    put: Statement,
    put_many: Statement,
    remove: Statement,
    remove_many: Statement,
    insert_absent: Statement,
    replace_if: Statement,
    remove_if: Statement,
    up_to: Statement,
    up: Statement,
    down_to: Statement,
    down: Statement,
    count: Statement,
    count_up_to: Statement,
    count_up: Statement,
    clear: Statement,
    next_id: Statement,
}

impl Statements {
    async fn prepare(c: &Client) -> Result<Self, tokio_postgres::Error> {
        let page = |order: &str, bounded: bool| {
            let hi = if bounded { " AND key < $3" } else { "" };
            let limit = if bounded { "$4" } else { "$3" };
            format!(
                "SELECT key, value FROM xl_kv WHERE tree = $1 AND key >= $2{hi} \
                 ORDER BY key {order} LIMIT {limit}"
            )
        };
        Ok(Self {
            get: c.prepare("SELECT value FROM xl_kv WHERE tree = $1 AND key = $2").await?,
            // One index probe per key, whatever the planner thinks of the tree's size: with
            // `key = ANY($2)` it scanned a whole tree it took for small (its statistics behind
            // a fast-growing table), slower with every row added.
            get_many: c
                .prepare(
                    "SELECT (SELECT value FROM xl_kv WHERE tree = $1 AND key = k) \
                     FROM unnest($2::bytea[]) WITH ORDINALITY AS u(k, n) ORDER BY n",
                )
                .await?,
            put: c
                .prepare(
                    "INSERT INTO xl_kv (tree, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?,
            put_many: c
                .prepare(
                    "INSERT INTO xl_kv (tree, key, value) \
                     SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
                     ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?,
            remove: c
                .prepare("DELETE FROM xl_kv WHERE tree = $1 AND key = $2 RETURNING value")
                .await?,
            // Found as `get_many` finds them (one probe per key), removed by where they are.
            remove_many: c
                .prepare(
                    "DELETE FROM xl_kv WHERE tree = $1 AND ctid = ANY(ARRAY( \
                     SELECT (SELECT ctid FROM xl_kv WHERE tree = $1 AND key = k) \
                     FROM unnest($2::bytea[]) AS u(k)))",
                )
                .await?,
            insert_absent: c
                .prepare(
                    "INSERT INTO xl_kv (tree, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (tree, key) DO NOTHING",
                )
                .await?,
            replace_if: c
                .prepare("UPDATE xl_kv SET value = $4 WHERE tree = $1 AND key = $2 AND value = $3")
                .await?,
            remove_if: c
                .prepare("DELETE FROM xl_kv WHERE tree = $1 AND key = $2 AND value = $3")
                .await?,
            up_to: c.prepare(&page("ASC", true)).await?,
            up: c.prepare(&page("ASC", false)).await?,
            down_to: c.prepare(&page("DESC", true)).await?,
            down: c.prepare(&page("DESC", false)).await?,
            count: c.prepare("SELECT count(*) FROM xl_kv WHERE tree = $1").await?,
            count_up_to: c
                .prepare("SELECT count(*) FROM xl_kv WHERE tree = $1 AND key >= $2 AND key < $3")
                .await?,
            count_up: c.prepare("SELECT count(*) FROM xl_kv WHERE tree = $1 AND key >= $2").await?,
            clear: c.prepare("DELETE FROM xl_kv WHERE tree = $1").await?,
            next_id: c.prepare("SELECT nextval('xl_ids')").await?,
        })
    }
}

/// A connection lent out; back to the idle list when dropped, unless it broke.
struct Lent<'a> {
    pg: &'a Postgres,
    conn: Option<Conn>,
    broken: bool,
}

impl std::ops::Deref for Lent<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Present until dropped.
        self.conn.as_ref().expect("a lent connection is present")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.broken
            && !conn.client.is_closed()
        {
            let mut idle = self.pg.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// What PostgreSQL said, for a person: the server's own message when it sent one.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    }
}

/// Waits for `f` on the calling thread; the connections' I/O runs on the engine's runtime.
fn block<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or the key=value
    /// form) and brings its schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Postgres(format!(
                "--store {}: not a PostgreSQL address ({e}); write postgres://user:password@host:port/database",
                redact(url)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("xl-center");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("xl-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Postgres(format!("cannot start its runtime: {e}")))?;
        let place = place_of(&config);
        let pg = Self { runtime: Some(runtime), config, place, idle: Mutex::default() };
        pg.migrate()?;
        Ok(pg)
    }

    fn error(&self, e: &tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(format!("{}: {}", self.place, describe(e)))
    }

    fn connect(&self) -> Result<Conn, StoreError> {
        let client = self.connect_client()?;
        let s = block(Statements::prepare(&client)).map_err(|e| self.error(&e))?;
        Ok(Conn { client, s })
    }

    /// A new connection with no statements prepared (the migrations run on one).
    fn connect_client(&self) -> Result<Client, StoreError> {
        let config = self.config.clone();
        let rt = self.runtime.as_ref().expect("the runtime lives as long as the store");
        let connected = block(rt.spawn(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!("PostgreSQL connection closed: {}", describe(&e));
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        }))
        .map_err(|e| StoreError::Postgres(format!("{}: connecting failed: {e}", self.place)))?;
        connected.map_err(|e| {
            StoreError::Postgres(format!("cannot connect to {}: {}", self.place, describe(&e)))
        })
    }

    /// A connection: an idle one, or a new one.
    fn lend(&self) -> Result<Lent<'_>, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect()?,
        };
        Ok(Lent { pg: self, conn: Some(conn), broken: false })
    }

    /// Runs the migrations this database lacks, under a lock so that one process does it.
    fn migrate(&self) -> Result<(), StoreError> {
        let client = self.connect_client()?;
        let c = &client;
        let run = async {
            c.batch_execute("BEGIN").await?;
            c.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            c.batch_execute("CREATE TABLE IF NOT EXISTS xl_schema (version integer PRIMARY KEY)")
                .await?;
            let row = c.query_one("SELECT coalesce(max(version), 0) FROM xl_schema", &[]).await?;
            let at: i32 = row.get(0);
            let known = MIGRATIONS.len() as i32;
            if at > known {
                c.batch_execute("ROLLBACK").await?;
                return Ok(Err((at, known)));
            }
            for (version, step) in (1..).zip(MIGRATIONS).skip(at as usize) {
                c.batch_execute(step).await?;
                c.execute("INSERT INTO xl_schema (version) VALUES ($1)", &[&version]).await?;
                tracing::info!("{}: the store's schema migrated to version {version}", self.place);
            }
            c.batch_execute("COMMIT").await?;
            Ok(Ok(()))
        };
        match block(run) {
            Ok(Ok(())) => Ok(()),
            Ok(Err((at, known))) => Err(StoreError::Postgres(format!(
                "{}: the schema is at version {at}, written by a newer xl-center; this one knows \
                 up to {known}: run the newer xl-center",
                self.place
            ))),
            Err(e) => Err(self.error(&e)),
        }
    }

    /// Names of the trees holding anything.
    pub(super) fn tree_names(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lend()?;
        let rows = block(conn.client.query("SELECT DISTINCT tree FROM xl_kv ORDER BY tree", &[]))
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) fn generate_id(&self) -> Result<u64, StoreError> {
        let conn = self.lend()?;
        let row = block(conn.client.query_one(&conn.s.next_id, &[])).map_err(|e| self.error(&e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Sets the id sequence so that the next id is above `id` (moving a county from sled).
    pub fn ids_after(&self, id: u64) -> Result<(), StoreError> {
        let conn = self.lend()?;
        let id = i64::try_from(id).unwrap_or(i64::MAX).max(1);
        block(conn.client.execute(
            "SELECT setval('xl_ids', greatest($1, (SELECT last_value FROM xl_ids)))",
            &[&id],
        ))
        .map_err(|e| self.error(&e))?;
        Ok(())
    }

    pub(super) fn get(&self, tree: &str, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        self.value_of(|s| &s.get, tree, key)
    }

    pub(super) fn get_many(
        &self,
        tree: &str,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<IVec>>, StoreError> {
        let conn = self.lend()?;
        let rows = block(conn.client.query(&conn.s.get_many, &[&tree, &keys]))
            .map_err(|e| self.error(&e))?;
        Ok(rows.iter().map(|r| r.get::<_, Option<&[u8]>>(0).map(IVec::from)).collect())
    }

    /// The value the statement `pick` chooses returns for `key` of `tree`, if any.
    fn value_of(
        &self,
        pick: fn(&Statements) -> &Statement,
        tree: &str,
        key: &[u8],
    ) -> Result<Option<IVec>, StoreError> {
        let conn = self.lend()?;
        let row = block(conn.client.query_opt(pick(&conn.s), &[&tree, &key]))
            .map_err(|e| self.error(&e))?;
        Ok(row.map(|r| IVec::from(r.get::<_, &[u8]>(0))))
    }

    pub(super) fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let conn = self.lend()?;
        block(conn.client.execute(&conn.s.put, &[&tree, &key, &value]))
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    pub(super) fn remove(&self, tree: &str, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        self.value_of(|s| &s.remove, tree, key)
    }

    pub(super) fn compare_and_swap(
        &self,
        tree: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<IVec>>, StoreError> {
        let conn = self.lend()?;
        let s = &conn.s;
        let changed = match (old, new) {
            (None, Some(new)) => block(conn.client.execute(&s.insert_absent, &[&tree, &key, &new])),
            (Some(old), Some(new)) => {
                block(conn.client.execute(&s.replace_if, &[&tree, &key, &old, &new]))
            }
            (Some(old), None) => block(conn.client.execute(&s.remove_if, &[&tree, &key, &old])),
            (None, None) => Ok(0),
        }
        .map_err(|e| self.error(&e))?;
        if changed == 1 {
            return Ok(Ok(()));
        }
        drop(conn);
        let current = self.get(tree, key)?;
        // (None, None) asks only that the key be absent; so does a change that found it gone.
        if current.is_none() && old.is_none() {
            return Ok(Ok(()));
        }
        Ok(Err(current))
    }

    pub(super) fn len(&self, tree: &str) -> Result<usize, StoreError> {
        let conn = self.lend()?;
        let row =
            block(conn.client.query_one(&conn.s.count, &[&tree])).map_err(|e| self.error(&e))?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    /// Entries of `tree` from `lo` (inclusive) to `hi` (exclusive; none: the end).
    pub(super) fn count_range(
        &self,
        tree: &str,
        lo: &[u8],
        hi: Option<&[u8]>,
    ) -> Result<usize, StoreError> {
        let conn = self.lend()?;
        let row = match hi {
            Some(hi) => block(conn.client.query_one(&conn.s.count_up_to, &[&tree, &lo, &hi])),
            None => block(conn.client.query_one(&conn.s.count_up, &[&tree, &lo])),
        }
        .map_err(|e| self.error(&e))?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    pub(super) fn clear(&self, tree: &str) -> Result<(), StoreError> {
        let conn = self.lend()?;
        block(conn.client.execute(&conn.s.clear, &[&tree])).map_err(|e| self.error(&e))?;
        Ok(())
    }

    /// One page of `tree` between `lo` (inclusive) and `hi` (exclusive, or none), from the
    /// low end or the high end.
    fn page(
        &self,
        tree: &str,
        lo: &[u8],
        hi: Option<&[u8]>,
        down: bool,
    ) -> Result<Vec<(IVec, IVec)>, StoreError> {
        let conn = self.lend()?;
        let s = &conn.s;
        let rows = match (hi, down) {
            (Some(hi), false) => block(conn.client.query(&s.up_to, &[&tree, &lo, &hi, &PAGE])),
            (None, false) => block(conn.client.query(&s.up, &[&tree, &lo, &PAGE])),
            (Some(hi), true) => block(conn.client.query(&s.down_to, &[&tree, &lo, &hi, &PAGE])),
            (None, true) => block(conn.client.query(&s.down, &[&tree, &lo, &PAGE])),
        }
        .map_err(|e| self.error(&e))?;
        Ok(rows
            .iter()
            .map(|r| (IVec::from(r.get::<_, &[u8]>(0)), IVec::from(r.get::<_, &[u8]>(1))))
            .collect())
    }

    /// Runs `f` in a transaction at `isolation` over the trees `names`, again while concurrent
    /// writers conflict with it.
    pub(super) fn transaction<T, E>(
        &self,
        isolation: Isolation,
        names: &[Arc<str>],
        f: &impl Fn(&[View<'_>]) -> Result<T, TxError<E>>,
    ) -> Result<Result<T, E>, StoreError> {
        let mut last = None;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Apart from the writer it met, briefly and at random.
                std::thread::sleep(Duration::from_micros(fastrand::u64(
                    100..2_000 << attempt.min(4),
                )));
            }
            let mut conn = self.lend()?;
            let open = std::cell::Cell::new(false);
            let outcome = self.attempt(&conn, isolation, names, f, &open);
            // A COMMIT that failed ended the transaction already.
            if open.get()
                && (outcome.is_err()
                    || matches!(outcome, Ok(Attempt::Retry(_)) | Ok(Attempt::Aborted(_))))
                && block(conn.client.batch_execute("ROLLBACK")).is_err()
            {
                conn.broken = true;
            }
            match outcome? {
                Attempt::Done(t) => return Ok(Ok(t)),
                Attempt::Aborted(e) => return Ok(Err(e)),
                Attempt::Retry(e) => last = Some(e),
            }
        }
        let why = last.map(|e| describe(&e)).unwrap_or_default();
        Err(StoreError::Postgres(format!(
            "{}: a transaction conflicted {MAX_ATTEMPTS} times in a row: {why}",
            self.place
        )))
    }

    fn attempt<T, E>(
        &self,
        conn: &Conn,
        isolation: Isolation,
        names: &[Arc<str>],
        f: &impl Fn(&[View<'_>]) -> Result<T, TxError<E>>,
        open: &std::cell::Cell<bool>,
    ) -> Result<Attempt<T, E>, StoreError> {
        let c = &conn.client;
        let fail = |e: tokio_postgres::Error| match retryable(&e) {
            true => Ok(Attempt::Retry(e)),
            false => Err(self.error(&e)),
        };
        let begin = match isolation {
            Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            Isolation::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ",
        };
        if let Err(e) = block(c.batch_execute(begin)) {
            return fail(e);
        }
        open.set(true);
        let views: Vec<View<'_>> = names
            .iter()
            .map(|tree| {
                View::Postgres(PgView {
                    conn,
                    tree,
                    writes: RefCell::default(),
                    read: RefCell::default(),
                })
            })
            .collect();
        let value = match f(&views) {
            Ok(value) => value,
            Err(TxError::Abort(e)) => return Ok(Attempt::Aborted(e)),
            Err(TxError::Interrupted(Interrupted(Interruption::Postgres(TxFailure(e))))) => {
                return fail(e);
            }
            Err(TxError::Interrupted(Interrupted(Interruption::Sled(e)))) => {
                return Err(StoreError::Postgres(format!(
                    "a sled error in a PostgreSQL transaction: {e:?}"
                )));
            }
        };
        // Each tree's writes, taken out of the views: its keys set with their values, and its
        // keys removed.
        let writes: Vec<(&str, Writes)> = views
            .iter()
            .filter_map(|v| match v {
                View::Postgres(v) => Some((v.tree, v.writes.take())),
                View::Sled(_) => None,
            })
            .collect();
        // Every tree's statements at once: tokio-postgres pipelines them on the connection, so
        // the commit costs one round trip (and PostgreSQL's flush), not one per tree.
        let mut parts = Vec::new();
        for (tree, writes) in &writes {
            let (mut keys, mut values, mut gone) = (Vec::new(), Vec::new(), Vec::new());
            for (k, w) in writes {
                match w {
                    Some(value) => {
                        keys.push(k.as_slice());
                        values.push(value.as_ref());
                    }
                    None => gone.push(k.as_slice()),
                }
            }
            parts.push((tree, keys, values, gone));
        }
        type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);
        let mut statements: Vec<(&Statement, Vec<Param<'_>>)> = Vec::new();
        for (tree, keys, values, gone) in &parts {
            if !gone.is_empty() {
                statements.push((&conn.s.remove_many, vec![*tree, gone]));
            }
            if !keys.is_empty() {
                statements.push((&conn.s.put_many, vec![*tree, keys, values]));
            }
        }
        let commit = async {
            let runs = statements.iter().map(|(statement, params)| c.execute(*statement, params));
            // After one fails, the rest fail as "transaction aborted": the first in order is
            // the cause (a conflict, which is run again; or not).
            let done = futures_util::future::join_all(runs).await;
            if let Some(cause) = done.into_iter().find_map(Result::err) {
                return Err(cause);
            }
            open.set(false);
            c.batch_execute("COMMIT").await
        };
        match block(commit) {
            Ok(()) => Ok(Attempt::Done(value)),
            Err(e) => fail(e),
        }
    }
}

enum Attempt<T, E> {
    Done(T),
    Aborted(E),
    Retry(tokio_postgres::Error),
}

/// A conflict with a concurrent transaction: running it again may succeed.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A read in a transaction that failed.
#[derive(Debug)]
pub(crate) struct TxFailure(tokio_postgres::Error);

/// A transaction's writes to one tree: each key's new value, or `None` for removed.
type Writes = BTreeMap<Vec<u8>, Option<IVec>>;

/// A tree in a PostgreSQL transaction: its writes are kept here until commit.
pub struct PgView<'a> {
    conn: &'a Conn,
    tree: &'a str,
    writes: RefCell<Writes>,
    /// What [`PgView::prefetch`] read, absent keys as `None`.
    read: RefCell<std::collections::HashMap<Vec<u8>, Option<IVec>>>,
}

impl PgView<'_> {
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<IVec>, Interrupted> {
        if let Some(w) = self.writes.borrow().get(key) {
            return Ok(w.clone());
        }
        if let Some(r) = self.read.borrow().get(key) {
            return Ok(r.clone());
        }
        let row = block(self.conn.client.query_opt(&self.conn.s.get, &[&self.tree, &key]))
            .map_err(|e| Interrupted(Interruption::Postgres(TxFailure(e))))?;
        Ok(row.map(|r| IVec::from(r.get::<_, &[u8]>(0))))
    }

    /// Reads `keys` in one statement, for the [`PgView::get`]s that follow.
    pub(super) fn prefetch(&self, keys: &[&[u8]]) -> Result<(), Interrupted> {
        let rows = block(self.conn.client.query(&self.conn.s.get_many, &[&self.tree, &keys]))
            .map_err(|e| Interrupted(Interruption::Postgres(TxFailure(e))))?;
        let mut read = self.read.borrow_mut();
        for (k, r) in keys.iter().zip(&rows) {
            read.insert(k.to_vec(), r.get::<_, Option<&[u8]>>(0).map(IVec::from));
        }
        Ok(())
    }

    pub(super) fn set(&self, key: &[u8], value: Option<IVec>) {
        self.writes.borrow_mut().insert(key.to_vec(), value);
    }
}

/// Walks a tree a page at a time, from either end; the two ends meet without repeating.
pub(crate) struct PgIter {
    pg: Arc<Postgres>,
    tree: Arc<str>,
    /// Keys not yet fetched: from `lo` (inclusive) to `hi` (exclusive; none: the end).
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
    front: VecDeque<(IVec, IVec)>,
    back: VecDeque<(IVec, IVec)>,
    /// Nothing is left between `lo` and `hi`.
    drained: bool,
}

impl PgIter {
    pub(super) fn new(
        pg: &Arc<Postgres>,
        tree: &Arc<str>,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
    ) -> Self {
        let lo = match lo {
            Bound::Included(k) => k,
            // The smallest key after k is k followed by a zero byte.
            Bound::Excluded(mut k) => {
                k.push(0);
                k
            }
            Bound::Unbounded => Vec::new(),
        };
        let hi = match hi {
            Bound::Included(mut k) => {
                k.push(0);
                Some(k)
            }
            Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        };
        let drained = hi.as_ref().is_some_and(|hi| *hi <= lo);
        Self {
            pg: pg.clone(),
            tree: tree.clone(),
            lo,
            hi,
            front: VecDeque::new(),
            back: VecDeque::new(),
            drained,
        }
    }

    /// Fetches the next page from one end; false once nothing is left between the ends.
    fn fetch(&mut self, down: bool) -> Result<bool, StoreError> {
        if self.drained {
            return Ok(false);
        }
        let page = self.pg.page(&self.tree, &self.lo, self.hi.as_deref(), down)?;
        if (page.len() as i64) < PAGE {
            self.drained = true;
        }
        match (down, page.last()) {
            (false, Some((k, _))) => {
                self.lo = k.to_vec();
                self.lo.push(0);
            }
            (true, Some((k, _))) => self.hi = Some(k.to_vec()),
            (_, None) => return Ok(false),
        }
        if down {
            self.back.extend(page);
        } else {
            self.front.extend(page);
        }
        Ok(true)
    }

    pub(super) fn next(&mut self) -> Option<Result<(IVec, IVec), StoreError>> {
        if self.front.is_empty()
            && let Err(e) = self.fetch(false)
        {
            self.drained = true;
            return Some(Err(e));
        }
        // Once the middle is fetched, what is left is the other end's, lowest last.
        self.front.pop_front().or_else(|| self.back.pop_back()).map(Ok)
    }

    pub(super) fn next_back(&mut self) -> Option<Result<(IVec, IVec), StoreError>> {
        if self.back.is_empty()
            && let Err(e) = self.fetch(true)
        {
            self.drained = true;
            return Some(Err(e));
        }
        self.back.pop_front().or_else(|| self.front.pop_back()).map(Ok)
    }
}

/// Host, port and database of `config`, for messages.
fn place_of(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("PostgreSQL {host}:{port}/{db}")
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
