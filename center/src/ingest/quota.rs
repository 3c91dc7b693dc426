//! Per-agent quotas at ingest: token buckets for messages and bytes, so that one box, broken or
//! hostile, cannot take the center's ingest from the others. A message over its box's quota is
//! acknowledged but not receipted: it waits on the box, which sends it again later.

use std::collections::HashMap;
use std::time::Instant;

/// How much one agent may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaLimits {
    /// Messages per second, sustained.
    pub messages_per_s: f64,
    /// Messages at once, after a quiet spell.
    pub message_burst: f64,
    /// Bytes per second, sustained.
    pub bytes_per_s: f64,
    /// Bytes at once, after a quiet spell.
    pub byte_burst: f64,
}

impl QuotaLimits {
    /// No limit worth the name (for benchmarks of ingest itself).
    pub const UNLIMITED: Self =
        Self { messages_per_s: 1e12, message_burst: 1e12, bytes_per_s: 1e18, byte_burst: 1e18 };
}

impl Default for QuotaLimits {
    /// 100 messages/s (1,000 at once) and 16 MiB/s (128 MiB at once): far above what a box's
    /// cameras raise, and above what a box drains after a day's outage would need.
    fn default() -> Self {
        Self {
            messages_per_s: 100.0,
            message_burst: 1000.0,
            bytes_per_s: (16 << 20) as f64,
            byte_burst: (128 << 20) as f64,
        }
    }
}

/// Agents' buckets at most; past it those idle longest are forgotten (they start full again).
const MAX_AGENTS: usize = 10_000;

/// One agent's buckets.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    messages: f64,
    bytes: f64,
    at: Instant,
}

/// Every agent's buckets.
#[derive(Debug)]
pub struct Quotas {
    limits: QuotaLimits,
    agents: HashMap<String, Bucket>,
}

impl Quotas {
    /// Buckets for `limits`, each agent's full at first.
    pub fn new(limits: QuotaLimits) -> Self {
        Self { limits, agents: HashMap::new() }
    }

    /// Whether `agent` may send one more message of `bytes` at `now` (taken from its buckets if
    /// so).
    pub fn admit(&mut self, agent: &str, bytes: usize, now: Instant) -> bool {
        let l = self.limits;
        if !self.agents.contains_key(agent) && self.agents.len() >= MAX_AGENTS {
            let mut idle: Vec<(Instant, String)> =
                self.agents.iter().map(|(a, b)| (b.at, a.clone())).collect();
            idle.sort();
            for (_, a) in idle.into_iter().take(MAX_AGENTS / 10) {
                self.agents.remove(&a);
            }
        }
        let b = self.agents.entry(agent.to_owned()).or_insert(Bucket {
            messages: l.message_burst,
            bytes: l.byte_burst,
            at: now,
        });
        let secs = now.saturating_duration_since(b.at).as_secs_f64();
        b.messages = (b.messages + secs * l.messages_per_s).min(l.message_burst);
        b.bytes = (b.bytes + secs * l.bytes_per_s).min(l.byte_burst);
        b.at = now;
        let size = bytes as f64;
        if b.messages < 1.0 || b.bytes < size {
            return false;
        }
        b.messages -= 1.0;
        b.bytes -= size;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SMALL: QuotaLimits = QuotaLimits {
        messages_per_s: 10.0,
        message_burst: 20.0,
        bytes_per_s: 1000.0,
        byte_burst: 5000.0,
    };

    #[test]
    fn one_agent_over_its_quota_waits_and_the_others_go_on() {
        let mut q = Quotas::new(SMALL);
        let t0 = Instant::now();
        let admitted = (0..100).filter(|_| q.admit("flooder", 10, t0)).count();
        assert_eq!(admitted, 20, "the burst, then nothing");
        assert!(q.admit("neighbour", 10, t0), "another agent is not held back");
        // A second later: ten more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| q.admit("flooder", 10, t1)).count(), 10);
    }

    #[test]
    fn bytes_are_limited_too() {
        let mut q = Quotas::new(SMALL);
        let t0 = Instant::now();
        assert!(q.admit("a", 4000, t0));
        assert!(!q.admit("a", 4000, t0), "over the byte burst");
        assert!(q.admit("a", 4000, t0 + Duration::from_secs(3)));
    }
}
