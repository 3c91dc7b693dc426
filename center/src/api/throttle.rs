//! Log-in attempts kept within bounds: at most a few argon2 verifications at once (each takes
//! tens of milliseconds of CPU and 19 MiB), a back-off per login and per client address after
//! failed attempts (answered 429 without hashing), and failures written to the audit log
//! aggregated per address, so a flood of attempts grows neither memory nor the log without
//! bound.
//!
//! [`Throttle`] decides and returns what to write; [`LoginThrottle`] holds it behind a lock with
//! the verification slots and the threads that verify, and its
//! [`run_audit`](LoginThrottle::run_audit) task writes the aggregated entries as their windows
//! close.
//!
//! Verifications run on threads of their own, one per slot, not on tokio's blocking pool: each
//! thread keeps the memory of its last verification for the next (the allocator's arena), so
//! the center's resident memory grows by at most a verification's 19 MiB per slot, where the
//! pool's many threads, each with an arena of its own, kept hundreds of MiB after a flood.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use xueliang_proto::endpoint::now_ms;

use crate::access::AuditLog;
use crate::store::Store;

/// How log-in attempts are limited (`CenterConfig::login_limits`).
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// argon2 verifications at once (one per core of a 2-core box).
    pub verifications: usize,
    /// How long an attempt waits for a verification slot before it is answered 503.
    pub queue_wait: Duration,
    /// Failed attempts on one login before its back-off starts.
    pub free_per_login: u32,
    /// Failed attempts from one address (on any logins) before its back-off starts.
    pub free_per_address: u32,
    /// The first lock-out; each further failure doubles it.
    pub first_lockout: Duration,
    /// The longest lock-out of a login.
    pub max_lockout_login: Duration,
    /// The longest lock-out of an address: short, as a county's NAT or a reverse proxy puts many
    /// genuine users behind one address.
    pub max_lockout_address: Duration,
    /// A login or address without a failure for this long starts again from nothing.
    pub forget_after: Duration,
    /// Logins and addresses tracked each; beyond, the one quiet longest is forgotten.
    pub tracked: usize,
    /// The audit log gets at most the first failure from an address at once, and one entry
    /// with the count of the rest per window of this length.
    pub audit_window: Duration,
    /// Addresses named in the audit log per window; the rest are counted together.
    pub audit_addresses: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            verifications: 2,
            queue_wait: Duration::from_secs(1),
            free_per_login: 5,
            free_per_address: 20,
            first_lockout: Duration::from_secs(1),
            max_lockout_login: Duration::from_secs(15 * 60),
            max_lockout_address: Duration::from_secs(30),
            forget_after: Duration::from_secs(15 * 60),
            tracked: 4096,
            audit_window: Duration::from_secs(60),
            audit_addresses: 64,
        }
    }
}

/// An audit entry to write: (user, action, target, detail).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    /// Who (the login tried, or `-`).
    pub user: String,
    /// `login_failed` or `login_failed_repeated`.
    pub action: &'static str,
    /// The login tried, or the address.
    pub target: String,
    /// From where, how many.
    pub detail: String,
}

/// Failures of one login or address.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
}

/// The back-off of each login or address, at most `cap` of them.
#[derive(Debug)]
struct Backoffs<K> {
    map: HashMap<K, Backoff>,
    free: u32,
    max: Duration,
}

impl<K: Eq + Hash + Clone> Backoffs<K> {
    fn new(free: u32, max: Duration) -> Self {
        Self { map: HashMap::new(), free, max }
    }

    /// How long `key` is still locked out at `now`.
    fn locked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.map.get(key)?.until?;
        (until > now).then(|| until - now)
    }

    fn failed(&mut self, key: &K, now: Instant, l: &LoginLimits) {
        if !self.map.contains_key(key) && self.map.len() >= l.tracked {
            self.map.retain(|_, b| now.duration_since(b.last) < l.forget_after);
            if self.map.len() >= l.tracked
                && let Some(oldest) =
                    self.map.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let b =
            self.map.entry(key.clone()).or_insert(Backoff { failures: 0, last: now, until: None });
        if now.duration_since(b.last) >= l.forget_after {
            b.failures = 0;
        }
        b.failures = b.failures.saturating_add(1);
        b.last = now;
        if b.failures > self.free {
            let doublings = (b.failures - self.free - 1).min(20);
            b.until = Some(now + (l.first_lockout * (1 << doublings)).min(self.max));
        }
    }
}

/// What one address did within an audit window.
#[derive(Debug)]
struct Tally {
    since_ms: i64,
    opened: Instant,
    failures: u64,
    refused: u64,
    /// Whether its first failure was written at once.
    written: bool,
    /// A few of the logins tried, for the entry.
    logins: BTreeSet<String>,
}

/// Logins named in an aggregated entry.
const SAMPLE: usize = 5;

impl Tally {
    fn new(now: Instant) -> Self {
        Self {
            since_ms: now_ms(),
            opened: now,
            failures: 0,
            refused: 0,
            written: false,
            logins: BTreeSet::new(),
        }
    }

    fn note(self, target: String, from: &str) -> Option<AuditNote> {
        if self.failures == 0 && self.refused == 0 {
            return None;
        }
        let since = jiff::Timestamp::from_millisecond(self.since_ms)
            .map(|t| t.strftime("%H:%M:%S UTC").to_string())
            .unwrap_or_default();
        let logins = self.logins.into_iter().collect::<Vec<_>>().join(", ");
        Some(AuditNote {
            user: "-".into(),
            action: "login_failed_repeated",
            target,
            detail: format!(
                "{} more wrong passwords and {} attempts refused (locked out or busy) from {from} since {since}; logins tried include {logins}",
                self.failures, self.refused
            ),
        })
    }
}

/// The decisions on log-in attempts, free of I/O: who is locked out, and what the audit log
/// gets.
#[derive(Debug)]
pub struct Throttle {
    limits: LoginLimits,
    logins: Backoffs<String>,
    addresses: Backoffs<IpAddr>,
    windows: HashMap<IpAddr, Tally>,
    /// Addresses beyond `audit_addresses` in a window, counted together.
    others: Option<(Tally, usize)>,
}

/// The network an address stands for in the back-off: itself, or for IPv6 its /64 (one
/// machine is usually given a whole /64).
fn network(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// A login, as it may be written to the audit log: printable ASCII, at most 64 characters
/// (the API refuses other logins before this, so this only guards the log).
fn sanitized(login: &str) -> String {
    login.chars().take(64).map(|c| if c.is_ascii_graphic() { c } else { '?' }).collect()
}

impl Throttle {
    /// Nothing tracked yet.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            logins: Backoffs::new(limits.free_per_login, limits.max_lockout_login),
            addresses: Backoffs::new(limits.free_per_address, limits.max_lockout_address),
            windows: HashMap::new(),
            others: None,
            limits,
        }
    }

    /// How long an attempt on `login` from `addr` must wait, if it is locked out.
    pub fn locked(&self, addr: IpAddr, login: &str, now: Instant) -> Option<Duration> {
        let by_login = self.logins.locked(&login.to_owned(), now);
        let by_address = self.addresses.locked(&network(addr), now);
        by_login.max(by_address)
    }

    /// The audit window of `addr`, if it has or can get one.
    fn tally(&mut self, addr: IpAddr, now: Instant) -> &mut Tally {
        if !self.windows.contains_key(&addr) && self.windows.len() >= self.limits.audit_addresses {
            let (tally, _) = self.others.get_or_insert_with(|| (Tally::new(now), 0));
            return tally;
        }
        self.windows.entry(addr).or_insert_with(|| Tally::new(now))
    }

    /// An attempt refused unverified (locked out, or no verification slot in time).
    pub fn refused(&mut self, addr: IpAddr, login: &str, now: Instant) {
        let tally = self.tally(addr, now);
        tally.refused += 1;
        if tally.logins.len() < SAMPLE {
            tally.logins.insert(sanitized(login));
        }
    }

    /// A wrong password (or an unknown or disabled login): the back-offs grow, and the entry to
    /// write now if this is the address's first failure of its window.
    pub fn failed(&mut self, addr: IpAddr, login: &str, now: Instant) -> Option<AuditNote> {
        let limits = self.limits.clone();
        self.logins.failed(&login.to_owned(), now, &limits);
        self.addresses.failed(&network(addr), now, &limits);
        let login = sanitized(login);
        let tally = self.tally(addr, now);
        if !tally.written {
            tally.written = true;
            return Some(AuditNote {
                user: login.clone(),
                action: "login_failed",
                target: login,
                detail: format!("from {addr}"),
            });
        }
        tally.failures += 1;
        if tally.logins.len() < SAMPLE {
            tally.logins.insert(login);
        }
        None
    }

    /// A successful log-in: the login's failures are forgotten (not the address's).
    pub fn succeeded(&mut self, login: &str) {
        self.logins.map.remove(login);
    }

    /// The aggregated entries of the windows closed at `now` (all of them with `all`).
    pub fn closed(&mut self, now: Instant, all: bool) -> Vec<AuditNote> {
        let window = self.limits.audit_window;
        let due = |t: &Tally| all || now.duration_since(t.opened) >= window;
        let addrs: Vec<IpAddr> =
            self.windows.iter().filter(|(_, t)| due(t)).map(|(a, _)| *a).collect();
        let mut notes: Vec<AuditNote> = addrs
            .into_iter()
            .filter_map(|a| self.windows.remove(&a)?.note(a.to_string(), &a.to_string()))
            .collect();
        if self.others.as_ref().is_some_and(|(t, _)| due(t))
            && let Some((tally, _)) = self.others.take()
        {
            notes.extend(tally.note(String::new(), "other addresses"));
        }
        notes
    }
}

/// A verification, run on a verifier thread.
type Job = Box<dyn FnOnce() + Send>;

/// The log-in throttle the API shares: the decisions, the verification slots and the threads
/// that verify.
pub struct LoginThrottle {
    throttle: Mutex<Throttle>,
    slots: Semaphore,
    queue_wait: Duration,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").field("slots", &self.slots).finish_non_exhaustive()
    }
}

/// Why an attempt is not verified now, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// Too many failures: locked out this long (429).
    LockedOut(Duration),
    /// Every verification slot stayed busy (503).
    Busy,
}

impl LoginThrottle {
    /// A throttle with `limits`, and its verifier threads (they end with it).
    pub fn new(limits: LoginLimits) -> Self {
        let slots = limits.verifications.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..slots {
            let queue = queue.clone();
            let worker = move || {
                loop {
                    // The lock is held only while waiting for the next job, not while verifying.
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    job();
                }
            };
            if let Err(e) = std::thread::Builder::new().name(format!("xl-verify-{i}")).spawn(worker)
            {
                tracing::error!("cannot start a password verifier thread: {e}");
            }
        }
        Self {
            slots: Semaphore::new(slots),
            queue_wait: limits.queue_wait,
            throttle: Mutex::new(Throttle::new(limits)),
            jobs,
        }
    }

    /// Runs `verify` on a verifier thread (hold a slot from [`LoginThrottle::admit`] meanwhile,
    /// so none waits); `None` if no verifier thread runs.
    pub async fn verify<T: Send + 'static>(
        &self,
        verify: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(verify());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Throttle) -> T) -> T {
        f(&mut self.throttle.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Refused (and counted) if `login` or `addr` is locked out.
    fn check(&self, addr: IpAddr, login: &str) -> Result<(), Wait> {
        self.with(|t| {
            let now = Instant::now();
            let wait = t.locked(addr, login, now);
            if wait.is_some() {
                t.refused(addr, login, now);
            }
            wait.map_or(Ok(()), |w| Err(Wait::LockedOut(w)))
        })
    }

    /// A verification slot for an attempt on `login` from `addr`, unless either is locked out
    /// (checked again once the slot is had, as failures may have come meanwhile) or no slot
    /// frees up in time.
    pub async fn admit(&self, addr: IpAddr, login: &str) -> Result<SemaphorePermit<'_>, Wait> {
        self.check(addr, login)?;
        let Ok(Ok(permit)) = tokio::time::timeout(self.queue_wait, self.slots.acquire()).await
        else {
            self.with(|t| t.refused(addr, login, Instant::now()));
            return Err(Wait::Busy);
        };
        self.check(addr, login)?;
        Ok(permit)
    }

    /// A wrong password: the entry to write now, if any.
    pub fn failed(&self, addr: IpAddr, login: &str) -> Option<AuditNote> {
        self.with(|t| t.failed(addr, login, Instant::now()))
    }

    /// A successful log-in.
    pub fn succeeded(&self, login: &str) {
        self.with(|t| t.succeeded(login));
    }

    /// Writes the aggregated entries as their windows close, every second, and the rest at
    /// `shutdown` (then flushes the store).
    pub async fn run_audit(
        self: Arc<Self>,
        audit: AuditLog,
        store: Store,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let all = tokio::select! {
                _ = tick.tick() => false,
                _ = shutdown.cancelled() => true,
            };
            for note in self.with(|t| t.closed(Instant::now(), all)) {
                if let Err(e) =
                    audit.record(now_ms(), &note.user, note.action, &note.target, &note.detail)
                {
                    tracing::error!("audit log: {e}");
                }
            }
            if all {
                if let Err(e) = store.flush().await {
                    tracing::error!("flushing the audit log at shutdown: {e}");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits { audit_addresses: 2, tracked: 3, ..LoginLimits::default() }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    fn addr(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, n))
    }

    #[test]
    fn a_login_is_locked_out_after_five_failures_doubling_and_forgotten_on_success() {
        let mut t = Throttle::new(limits());
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(t.locked(addr(i), "zhang", t0), None);
            t.failed(addr(i), "zhang", t0);
        }
        assert_eq!(t.locked(addr(9), "zhang", t0), None, "five are free");
        t.failed(addr(9), "zhang", t0);
        assert_eq!(t.locked(addr(9), "zhang", t0), Some(Duration::from_secs(1)));
        assert_eq!(t.locked(addr(9), "li", t0), None, "other logins are not locked");
        let t1 = t0 + Duration::from_secs(1);
        t.failed(addr(9), "zhang", t1);
        assert_eq!(t.locked(addr(9), "zhang", t1), Some(Duration::from_secs(2)));
        for _ in 0..30 {
            t.failed(addr(9), "zhang", t1);
        }
        assert_eq!(t.locked(addr(9), "zhang", t1), Some(Duration::from_secs(15 * 60)), "capped");
        t.succeeded("zhang");
        assert_eq!(t.locked(addr(8), "zhang", t1), None);
        // An address is locked out after twenty failures on any logins, for at most 30 s.
        for i in 0..40 {
            t.failed(A, &format!("user-{i}"), t1);
        }
        assert_eq!(t.locked(A, "zhang", t1), Some(Duration::from_secs(30)));
        assert_eq!(t.locked(addr(1), "zhang", t1), None);
        assert_eq!(t.locked(A, "zhang", t1 + Duration::from_secs(30)), None);
    }

    #[test]
    fn what_is_tracked_stays_bounded_and_the_quietest_is_forgotten() {
        let mut t = Throttle::new(limits());
        let t0 = Instant::now();
        for i in 0..100u8 {
            t.failed(addr(i), &format!("user-{i}"), t0 + Duration::from_millis(i.into()));
        }
        assert_eq!((t.logins.map.len(), t.addresses.map.len()), (3, 3));
        assert!(t.logins.map.contains_key("user-99") && !t.logins.map.contains_key("user-0"));
        assert!(t.windows.len() <= 2, "audit windows are bounded too");
    }

    #[test]
    fn a_flood_from_one_address_writes_its_first_failure_then_one_count_per_window() {
        let mut t = Throttle::new(limits());
        let t0 = Instant::now();
        let first = t.failed(A, "bad\nlogin\u{7}", t0).unwrap();
        assert_eq!(
            (first.user.as_str(), first.action, first.target.as_str(), first.detail.as_str()),
            ("bad?login?", "login_failed", "bad?login?", "from 10.0.0.1")
        );
        for i in 0..10_000 {
            assert_eq!(t.failed(A, &format!("user-{i}"), t0), None);
            t.refused(A, "user-x", t0);
        }
        assert!(t.closed(t0 + Duration::from_secs(59), false).is_empty());
        let notes = t.closed(t0 + Duration::from_secs(60), false);
        assert_eq!(notes.len(), 1);
        assert_eq!(
            (notes[0].action, notes[0].target.as_str()),
            ("login_failed_repeated", "10.0.0.1")
        );
        assert!(
            notes[0].detail.starts_with("10000 more wrong passwords and 10000 attempts refused"),
            "{}",
            notes[0].detail
        );
        assert!(t.closed(t0 + Duration::from_secs(120), false).is_empty(), "nothing more");
        // Many addresses: two named, the rest counted together.
        for i in 0..50 {
            t.failed(addr(i), "x", t0);
            t.failed(addr(i), "y", t0);
        }
        let notes = t.closed(t0, true);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes.iter().any(|n| n.detail.contains("from other addresses")));
    }
}
