//! Sealed messages on their way into the outbox: written at once (flushed), or, while the
//! outbox's disk is nearly full, kept in memory in order, up to a bound, and written once
//! there is room again (tried every few seconds, oldest first). The room is checked before
//! writing, because sled keeps a failed write's error and fails every later write until the
//! agent restarts: a write that fails all the same (another program took the last bytes)
//! leaves the messages in memory and the error in Health until then.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use xueliang_service::disk::free_bytes;

use super::outbox::Outbox;
use crate::evidence::Sealed;

/// Bytes of sealed messages kept in memory at most while the outbox cannot write; past it a
/// message is lost (counted and logged).
const KEPT_BYTES: usize = 64 << 20;

/// Free bytes the outbox leaves on its disk: sled needs room to grow its log.
const RESERVE: u64 = 8 << 20;

/// How often messages kept in memory are tried again.
pub const RETRY: Duration = Duration::from_secs(2);

/// What the writer counts, shared with the metrics and Health.
#[derive(Debug, Default)]
pub struct WriteCounts {
    /// Messages kept in memory now because the outbox could not write them.
    pub kept: AtomicU64,
    /// Outbox writes that failed, since start.
    pub failures: AtomicU64,
    /// Messages lost: more than memory may keep, or still kept when the agent stopped.
    pub lost: AtomicU64,
}

/// Writes sealed messages into the outbox, in order, keeping them while it cannot.
#[derive(Debug)]
pub struct OutboxWriter {
    outbox: Outbox,
    /// Sealed messages not written yet, in order, with what each is.
    kept: VecDeque<(Sealed, &'static str)>,
    kept_bytes: usize,
    /// When the kept messages were last tried.
    tried: Instant,
    /// What it counted.
    pub counts: Arc<WriteCounts>,
}

impl OutboxWriter {
    /// A writer into `outbox`.
    pub fn new(outbox: Outbox) -> Self {
        Self {
            outbox,
            kept: VecDeque::new(),
            kept_bytes: 0,
            tried: Instant::now(),
            counts: Arc::default(),
        }
    }

    /// Writes `sealed` (`what` it is, for the log) after any kept before it, or keeps it.
    /// True if something was written (the publisher has work).
    pub fn write(&mut self, sealed: Sealed, what: &'static str) -> bool {
        let written = self.retry();
        if self.kept.is_empty() {
            match self.put(&sealed) {
                Ok(()) => return true,
                Err(e) => {
                    self.counts.failures.fetch_add(1, Ordering::Relaxed);
                    error!(id = %sealed.id, "{what} not stored: {e}; kept in memory until the outbox writes again");
                    self.tried = Instant::now();
                }
            }
        }
        let size = sealed.bytes();
        if self.kept_bytes + size > KEPT_BYTES {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            error!(id = %sealed.id, "{what} lost: the outbox cannot write and {} MiB already wait in memory", self.kept_bytes >> 20);
            return written;
        }
        self.kept_bytes += size;
        self.kept.push_back((sealed, what));
        self.counts.kept.store(self.kept.len() as u64, Ordering::Relaxed);
        written
    }

    /// Writes the messages kept, in order, if they were last tried at least about [`RETRY`]
    /// ago. True if something was written.
    pub fn retry(&mut self) -> bool {
        if self.kept.is_empty() || self.tried.elapsed() < RETRY / 2 {
            return false;
        }
        self.try_kept()
    }

    /// Writes the messages kept, in order, reopening the outbox first if a write failed.
    fn try_kept(&mut self) -> bool {
        if self.kept.is_empty() {
            return false;
        }
        self.tried = Instant::now();
        let waiting = self.kept.len();
        while let Some((sealed, _)) = self.kept.front() {
            if let Err(e) = self.put(sealed) {
                self.counts.failures.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "the outbox still cannot write: {e}; {} messages kept in memory",
                    self.kept.len()
                );
                break;
            }
            if let Some((sealed, _)) = self.kept.pop_front() {
                self.kept_bytes -= sealed.bytes();
            }
        }
        self.counts.kept.store(self.kept.len() as u64, Ordering::Relaxed);
        if self.kept.is_empty() {
            info!("the outbox writes again: the {waiting} messages kept in memory are stored");
        }
        waiting > self.kept.len()
    }

    /// Writes `sealed` into the outbox if its disk has room for it and the reserve.
    fn put(&self, sealed: &Sealed) -> Result<(), String> {
        let dir = self.outbox.dir();
        let free = free_bytes(dir).map_err(|e| format!("cannot read the free space: {e}"))?;
        if free < RESERVE + sealed.bytes() as u64 {
            return Err(format!("the outbox's disk is full ({} KiB free)", free >> 10));
        }
        self.outbox.push(sealed).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Messages kept in memory now.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// At shutdown: tries once more; what the outbox still does not take is lost, counted
    /// and logged.
    pub fn finish(mut self) {
        self.try_kept();
        for (sealed, what) in self.kept.drain(..) {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            error!(id = %sealed.id, "{what} lost: the agent stops and the outbox could not write it");
        }
        self.counts.kept.store(0, Ordering::Relaxed);
    }
}
