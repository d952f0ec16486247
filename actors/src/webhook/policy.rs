//! When to try again. After `n` failed attempts the next waits
//! `base · 2^(n−1)`, capped, with ±20 % jitter. The jitter comes from a hash
//! of the delivery and attempt number, so it spreads retries of many
//! deliveries apart yet is reproducible (and testable to the millisecond).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub base_ms: u64,
    /// Attempts (including the first) before a delivery is marked failed.
    pub max_attempts: u32,
    /// No single delay exceeds this.
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    /// About 10 attempts over about a day: 3 min, 6 min, … 12.8 h.
    fn default() -> Self {
        RetryPolicy {
            base_ms: 180_000,
            max_attempts: 10,
            cap_ms: 24 * 3_600_000,
        }
    }
}

/// SplitMix64: a fixed, seedless mixer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl RetryPolicy {
    /// Whether a delivery that has failed `failed` times in this round gets
    /// another attempt.
    pub fn retries_left(&self, failed: u32) -> bool {
        failed < self.max_attempts
    }

    /// The delay after `failed` (≥ 1) failed attempts, jittered by `seed`.
    pub fn delay_ms(&self, failed: u32, seed: u64) -> u64 {
        let exp = failed.saturating_sub(1).min(40);
        let nominal = self
            .base_ms
            .saturating_mul(1u64 << exp)
            .min(self.cap_ms)
            .max(1);
        // jitter in [-20 %, +20 %] of nominal, in 1/1000 steps
        let permille = mix(seed ^ u64::from(failed)) % 401; // 0..=400
        let scaled = u128::from(nominal) * u128::from(800 + permille) / 1_000;
        u64::try_from(scaled).unwrap_or(u64::MAX).max(1)
    }

    /// The whole schedule (delays after attempt 1, 2, …) for one seed.
    pub fn schedule(&self, seed: u64) -> Vec<u64> {
        (1..self.max_attempts)
            .map(|n| self.delay_ms(n, seed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter() {
        let p = RetryPolicy {
            base_ms: 1_000,
            max_attempts: 10,
            cap_ms: u64::MAX,
        };
        for seed in 0..200 {
            for n in 1..10 {
                let nominal = 1_000u64 << (n - 1);
                let d = p.delay_ms(n, seed);
                assert!(
                    d >= nominal * 8 / 10 && d <= nominal * 12 / 10,
                    "n={n} seed={seed} d={d}"
                );
            }
        }
        // Jitter actually varies.
        let distinct: std::collections::HashSet<u64> = (0..50).map(|s| p.delay_ms(3, s)).collect();
        assert!(distinct.len() > 25);
    }

    #[test]
    fn default_schedule_spans_about_a_day() {
        let total: u64 = RetryPolicy::default().schedule(7).iter().sum();
        let hours = total / 3_600_000;
        assert!((18..=32).contains(&hours), "{hours} h");
        assert_eq!(RetryPolicy::default().schedule(7).len(), 9);
    }

    #[test]
    fn delays_are_capped() {
        let p = RetryPolicy {
            base_ms: 1_000,
            max_attempts: 100,
            cap_ms: 5_000,
        };
        assert!(p.delay_ms(60, 1) <= 6_000);
        assert!(p.retries_left(99) && !p.retries_left(100));
    }
}
