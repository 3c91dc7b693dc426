//! `[snapshot]`: the evidence pictures' quality, size cap, and when one travels apart.

use serde::Deserialize;

use super::Problem;

/// Evidence pictures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// JPEG quality 1..100 of the first attempt.
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Largest JPEG kept as evidence, in bytes; bigger pictures are re-encoded smaller.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// A JPEG larger than this travels after its alarm, once the alarm is receipted, so a slow
    /// link never holds an alarm back behind its picture.
    #[serde(default = "default_send_after")]
    pub send_after_bytes: usize,
}

fn default_send_after() -> usize {
    128 * 1024
}

fn default_quality() -> u8 {
    80
}

fn default_max_bytes() -> usize {
    512 * 1024
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            quality: default_quality(),
            max_bytes: default_max_bytes(),
            send_after_bytes: default_send_after(),
        }
    }
}

impl SnapshotConfig {
    pub(super) fn problems(&self, p: &mut Vec<Problem>) {
        if self.send_after_bytes < 1024 {
            p.push(Problem::new("snapshot.send_after_bytes", "must be at least 1024"));
        }
        if !(1..=100).contains(&self.quality) {
            p.push(Problem::new("snapshot.quality", "must be in 1..100"));
        }
        if self.max_bytes < 16 * 1024 || self.max_bytes > xueliang_proto::MAX_MESSAGE_BYTES / 2 {
            p.push(Problem::new(
                "snapshot.max_bytes",
                format!("must be between 16384 and {}", xueliang_proto::MAX_MESSAGE_BYTES / 2),
            ));
        }
    }
}
