//! systemd's notify protocol (`Type=notify`): `READY=1` once the process serves, then
//! `WATCHDOG=1` while what proves it alive (the agent's detector loop, the center's runtime
//! and store) goes round, so systemd restarts a process that hangs, not only one that exits.
//! Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sends `state` (e.g. `READY=1`) to the socket at `socket`: a path, or `@name` for an abstract
/// socket.
pub fn notify_to(socket: &str, state: &str) -> std::io::Result<()> {
    let addr = match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        }
        None => SocketAddr::from_pathname(Path::new(socket))?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

/// Sends `state` to systemd, if it started this process.
pub fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET")
        && let Err(e) = notify_to(&socket.to_string_lossy(), state)
    {
        tracing::warn!("cannot notify systemd ({state}): {e}");
    }
}

/// How often to send `WATCHDOG=1`: half of systemd's `WatchdogSec`, if it set one for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Now, in UTC milliseconds: the clock [`watchdog`]'s stamp is read against.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Tells systemd the process lives while `alive` (stamped with [`now_ms`] by `what`, e.g. "the
/// detector loop") is fresh; a loop stuck for longer than the watchdog's period (a hung decoder,
/// a blocked runtime) stops the pings, and systemd restarts the process.
pub async fn watchdog(
    alive: Arc<AtomicI64>,
    every: Duration,
    what: &'static str,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let stale_ms = now_ms() - alive.load(Ordering::Relaxed);
        if stale_ms < every.as_millis() as i64 * 2 {
            notify("WATCHDOG=1");
        } else {
            tracing::warn!("{what} has not gone round for {} s: no watchdog ping", stale_ms / 1000);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(notify_to(dir.path().join("absent").to_str().unwrap(), "READY=1").is_err());
    }
}
