//! `[outbox]`: how much may wait on the box for the center's receipt.

use serde::Deserialize;

use super::Problem;

/// Bounds of the outbox. When full, it gives up event clips first, then low-severity
/// snapshots, then low-severity alarms, then other snapshots, and high-severity alarms last;
/// every drop is logged and counted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Largest size of the waiting alarms, MiB.
    #[serde(default = "default_outbox_mib")]
    pub max_mib: u64,
    /// Alarms older than this many days are dropped unsent.
    #[serde(default = "default_outbox_days")]
    pub max_age_days: f32,
    /// Memory the outbox's database may keep as cache, MiB: what waits is on disk either way.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
}

fn default_cache_mib() -> u64 {
    16
}

fn default_outbox_mib() -> u64 {
    512
}

fn default_outbox_days() -> f32 {
    7.0
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_mib: default_outbox_mib(),
            max_age_days: default_outbox_days(),
            cache_mib: default_cache_mib(),
        }
    }
}

impl OutboxConfig {
    pub(super) fn problems(&self, p: &mut Vec<Problem>) {
        if self.max_mib == 0 {
            p.push(Problem::new("outbox.max_mib", "must be at least 1"));
        }
        if self.cache_mib == 0 {
            p.push(Problem::new("outbox.cache_mib", "must be at least 1"));
        }
        if !(self.max_age_days > 0.0) {
            p.push(Problem::new("outbox.max_age_days", "must be positive"));
        }
    }
}
