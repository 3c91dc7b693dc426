//! Whether the store can write, and how much room its disk has. Ingest checks the room before
//! each batch ([`DiskHealth::room`]): on a full disk it acknowledges what it cannot store
//! without receipting it (the boxes keep it and send it again) and `/healthz` says so, until
//! there is room. The check keeps sled from failing a write, which it would remember: sled
//! keeps the first write error it meets and fails every later write until the database is
//! reopened. If a write fails all the same (another writer took the last bytes), the store is
//! failed for the rest of the run, and once a probe file can be written again [`watch`] asks
//! the center to restart itself, which reopens the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use xueliang_service::disk::free_bytes;

use super::Store;

/// What the center knows of its store's disk.
#[derive(Debug, Clone)]
pub struct DiskHealth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    write_error: Mutex<Option<String>>,
    free_bytes: AtomicU64,
    low: AtomicBool,
    /// Ingest's last batch found no room for itself.
    full: AtomicBool,
}

/// Bytes the probe writes and syncs: room for it means room for a batch of alarms.
const PROBE_BYTES: usize = 1 << 20;

/// Free bytes ingest leaves on the store's disk: sled needs room to grow its log, and the
/// center's other writes (sessions, the audit log) room to go on.
const RESERVE: u64 = 16 << 20;

impl DiskHealth {
    /// The health of the store in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                write_error: Mutex::default(),
                free_bytes: AtomicU64::new(free_bytes(dir).unwrap_or(u64::MAX)),
                low: AtomicBool::new(false),
                full: AtomicBool::new(false),
            }),
        }
    }

    /// Notes a failed write (the first one is kept: sled fails the rest the same way).
    pub fn failed(&self, e: &dyn std::fmt::Display) {
        let mut slot = self.inner.write_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            error!(
                "the alarm store in {} cannot write: {e}; alarms are left with their boxes \
                 until it can (free space on that disk)",
                self.inner.dir.display()
            );
            *slot = Some(e.to_string());
        }
    }

    /// The store's write error in this run, if it met one.
    pub fn write_error(&self) -> Option<String> {
        self.inner.write_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Free bytes on the store's disk when last sampled.
    pub fn free_bytes(&self) -> u64 {
        self.inner.free_bytes.load(Ordering::Relaxed)
    }

    /// Whether the disk has room for `bytes` more and the reserve; a change is logged, and
    /// no room shows in `/healthz`.
    pub fn room(&self, bytes: u64) -> Result<(), String> {
        let free = free_bytes(&self.inner.dir).unwrap_or(u64::MAX);
        self.inner.free_bytes.store(free, Ordering::Relaxed);
        let full = free < RESERVE + bytes;
        if self.inner.full.swap(full, Ordering::Relaxed) != full {
            match full {
                true => error!(
                    "the disk of the alarm store in {} is full ({} KiB free): alarms are left \
                     with their boxes until there is room",
                    self.inner.dir.display(),
                    free >> 10
                ),
                false => info!("the alarm store's disk has room again: storing"),
            }
        }
        match full {
            true => Err(format!("disk full ({} KiB free)", free >> 10)),
            false => Ok(()),
        }
    }

    /// Whether ingest's last batch found the disk full.
    pub fn full(&self) -> bool {
        self.inner.full.load(Ordering::Relaxed)
    }

    /// Whether free space was below the limit when last sampled.
    pub fn low(&self) -> bool {
        self.inner.low.load(Ordering::Relaxed)
    }

    /// Samples the free space; logs when it falls below `min_free` bytes, and when it is back.
    fn sample(&self, min_free: u64) {
        let Ok(free) = free_bytes(&self.inner.dir) else { return };
        self.inner.free_bytes.store(free, Ordering::Relaxed);
        let low = free < min_free;
        if self.inner.low.swap(low, Ordering::Relaxed) != low {
            match low {
                true => error!(
                    "only {} MiB free on the disk of {} (below {} MiB): free space before the \
                     store stops writing",
                    free >> 20,
                    self.inner.dir.display(),
                    min_free >> 20
                ),
                false => info!(
                    "{} MiB free again on the disk of {}",
                    free >> 20,
                    self.inner.dir.display()
                ),
            }
        }
    }

    /// Whether a probe file can be written and synced beside the store now.
    fn room_again(&self) -> bool {
        let path = self.inner.dir.join(".room-probe");
        let written = std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&vec![0u8; PROBE_BYTES]).and_then(|()| f.sync_all()));
        let _ = std::fs::remove_file(&path);
        written.is_ok()
    }
}

/// Every `every` until `shutdown`: samples free space (below `min_free` bytes is logged and
/// shown), checks that the store writes, and once it has failed, waits for room on the disk
/// and then cancels `reopen`, on which the center stops and starts again with its store
/// reopened.
pub async fn watch(
    store: Store,
    min_free: u64,
    every: Duration,
    reopen: CancellationToken,
    shutdown: CancellationToken,
) {
    let health = store.health().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        health.sample(min_free);
        if health.write_error().is_none() {
            // A failure anywhere since shows here too (sled keeps it).
            if let Err(e) = store.check_writable().await {
                warn!("the alarm store's check failed: {e}");
            }
            continue;
        }
        if health.room_again() {
            warn!("the disk has room again: the center restarts to reopen its store");
            reopen.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_write_error_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let health = DiskHealth::new(dir.path());
        assert_eq!(health.write_error(), None);
        health.failed(&"No space left on device");
        health.failed(&"something later");
        assert_eq!(health.write_error().as_deref(), Some("No space left on device"));
        assert!(health.room_again());
    }
}
