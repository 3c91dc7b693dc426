//! The per-object cooldown of line crossings: after its alarm, the same object stays quiet for a
//! while, so one person dithering across a line is one alarm. (Rules about a zone or the
//! camera have events instead; their cooldown is the episode's.)

use std::collections::HashMap;

/// Per-object cooldown: when each track last raised an alarm.
#[derive(Debug, Clone, Default)]
pub struct PerTrack {
    cooldown_ms: i64,
    fired: HashMap<u64, i64>,
}

impl PerTrack {
    /// Tracks stay quiet `cooldown_ms` after their alarm.
    pub fn new(cooldown_ms: i64) -> Self {
        Self { cooldown_ms, fired: HashMap::new() }
    }

    /// Whether track `id` may raise an alarm at `t_ms`.
    pub fn ready(&self, id: u64, t_ms: i64) -> bool {
        self.fired.get(&id).is_none_or(|at| t_ms - at >= self.cooldown_ms)
    }

    /// Track `id` raised an alarm at `t_ms`.
    pub fn fire(&mut self, id: u64, t_ms: i64) {
        self.fired.insert(id, t_ms);
    }

    /// Forgets tracks that are gone.
    pub fn retain(&mut self, alive: impl Fn(u64) -> bool) {
        self.fired.retain(|id, _| alive(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_track_cools_down_on_its_own() {
        let mut c = PerTrack::new(1000);
        c.fire(1, 0);
        assert!(!c.ready(1, 999));
        assert!(c.ready(1, 1000));
        assert!(c.ready(2, 10), "another object");
        c.retain(|id| id != 1);
        assert!(c.ready(1, 10), "forgotten once gone");
    }
}
