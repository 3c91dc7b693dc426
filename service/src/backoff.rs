//! Retry delays that double up to a cap, with jitter so that things that failed together (the
//! cameras of one box, the webhooks of one station) do not all retry in the same instant.

use std::time::Duration;

/// How the delay after a failure grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Spread: the delay is scaled by a random factor in `[1 - low, 1 + high]`.
    pub jitter: (f64, f64),
}

impl Backoff {
    /// Doubling from `first` to `max`, without jitter.
    pub const fn doubling(first: Duration, max: Duration) -> Self {
        Self { first, max, jitter: (0.0, 0.0) }
    }

    /// The same, scaled by a random factor in `[1 - low, 1 + high]`.
    pub const fn with_jitter(self, low: f64, high: f64) -> Self {
        Self { jitter: (low, high), ..self }
    }

    /// The delay after failure `attempt` (0 for the first): `first · 2^attempt`, at most `max`,
    /// then jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        let base = self.first.saturating_mul(factor).min(self.max);
        let (low, high) = self.jitter;
        if low == 0.0 && high == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - low + (low + high) * fastrand::f64())
    }

    /// A counter of consecutive failures with these delays.
    pub fn retries(self) -> Retries {
        Retries { backoff: self, attempt: 0 }
    }
}

/// Consecutive failures counted against a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Retries {
    backoff: Backoff,
    attempt: u32,
}

impl Retries {
    /// The delay before the next try, counting this failure.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// A success: the next failure starts from the first delay again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::doubling(Duration::from_millis(500), Duration::from_secs(4));
        let ms: Vec<u128> = (0..6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(4), "no overflow");
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let b =
            Backoff::doubling(Duration::from_secs(1), Duration::from_secs(1)).with_jitter(0.2, 0.2);
        for _ in 0..1000 {
            let d = b.delay(3).as_secs_f64();
            assert!((0.8..=1.2).contains(&d), "{d}");
        }
    }

    #[test]
    fn retries_count_until_a_success() {
        let mut r = Backoff::doubling(Duration::from_secs(1), Duration::from_secs(8)).retries();
        assert_eq!(r.next_delay(), Duration::from_secs(1));
        assert_eq!(r.next_delay(), Duration::from_secs(2));
        assert_eq!(r.attempts(), 2);
        r.reset();
        assert_eq!(r.next_delay(), Duration::from_secs(1));
    }
}
