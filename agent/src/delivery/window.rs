//! What the publisher may send next, free of I/O: alarms go out only while connected and while
//! the center says it ingests, at most [`WINDOW`] at a time awaiting their receipts; an alarm not
//! receipted within [`RECEIPT_TIMEOUT`] may go again. The publisher tells the window what
//! happened and asks it how much room there is; the outbox stays the source of truth.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An alarm published but not receipted within this long is published again.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Alarms published and awaiting receipts at once: an outbox drains at the center's pace.
pub const WINDOW: usize = 32;

/// The publishing window of one connection to the broker.
#[derive(Debug, Default)]
pub struct Window {
    connected: bool,
    /// Whether the center's retained status says it ingests: alarms published while it does
    /// not would go to a broker with no one subscribed.
    center_online: bool,
    /// Published since the last connect and not yet receipted: id → when.
    in_flight: HashMap<String, Instant>,
}

impl Window {
    /// The broker accepted the connection: whatever was in flight may be lost with the old one.
    pub fn connected(&mut self) {
        self.connected = true;
        self.in_flight.clear();
    }

    /// The connection is gone; the center's status is learnt again after the reconnect.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.center_online = false;
    }

    /// The center's status; returns whether it changed. Whatever was in flight may not have
    /// reached it.
    pub fn center(&mut self, online: bool) -> bool {
        let changed = online != self.center_online;
        self.center_online = online;
        self.in_flight.clear();
        changed
    }

    /// A receipt named `id`.
    pub fn receipted(&mut self, id: &str) {
        self.in_flight.remove(id);
    }

    /// Forgets what has waited for its receipt longer than [`RECEIPT_TIMEOUT`] at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.in_flight.retain(|_, sent| now.duration_since(*sent) < RECEIPT_TIMEOUT);
    }

    /// How many more may be published now.
    pub fn room(&self) -> usize {
        if self.connected && self.center_online {
            WINDOW.saturating_sub(self.in_flight.len())
        } else {
            0
        }
    }

    /// Whether `id` is published and awaiting its receipt.
    pub fn in_flight(&self, id: &str) -> bool {
        self.in_flight.contains_key(id)
    }

    /// How many in flight `which` says are of a kind.
    pub fn count_in_flight(&self, which: impl Fn(&str) -> bool) -> usize {
        self.in_flight.keys().filter(|id| which(id)).count()
    }

    /// `id` was published at `now`.
    pub fn sent(&mut self, id: String, now: Instant) {
        self.in_flight.insert(id, now);
    }

    /// Whether a report (Health) can go now: it needs only the connection.
    pub fn is_connected(&self) -> bool {
        self.connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_goes_out_until_connected_and_the_center_ingests() {
        let mut w = Window::default();
        assert_eq!(w.room(), 0);
        w.connected();
        assert_eq!(w.room(), 0, "the center has not said it ingests");
        assert!(w.center(true));
        assert_eq!(w.room(), WINDOW);
        w.disconnected();
        assert_eq!(w.room(), 0, "after a reconnect the center's status is learnt again");
    }

    #[test]
    fn the_window_fills_and_empties_with_receipts_and_timeouts() {
        let mut w = Window::default();
        w.connected();
        w.center(true);
        let t0 = Instant::now();
        for i in 0..WINDOW {
            w.sent(format!("a{i}"), t0);
        }
        assert_eq!(w.room(), 0);
        assert!(w.in_flight("a3"));
        w.receipted("a3");
        assert!(!w.in_flight("a3"));
        assert_eq!(w.room(), 1);
        w.expire(t0 + RECEIPT_TIMEOUT - Duration::from_millis(1));
        assert_eq!(w.room(), 1);
        w.expire(t0 + RECEIPT_TIMEOUT);
        assert_eq!(w.room(), WINDOW, "unreceipted alarms may go again");
    }

    #[test]
    fn a_change_of_connection_or_center_forgets_what_was_in_flight() {
        let mut w = Window::default();
        w.connected();
        w.center(true);
        w.sent("a".into(), Instant::now());
        assert!(!w.center(true), "no change");
        assert!(!w.in_flight("a"), "the retained status came again: the center may have restarted");
        w.sent("b".into(), Instant::now());
        w.connected();
        assert!(!w.in_flight("b"));
    }
}
