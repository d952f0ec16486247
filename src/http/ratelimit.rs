//! Per-key token buckets (SPEC §8). A bucket holds up to `limit` tokens
//! (one minute's worth) and refills continuously at `limit / 60 s`. Time is
//! kept in integer microseconds so no float touches the arithmetic. The
//! misuse detector counts rejections per key in a sliding window.

use dashmap::DashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the limiter decided, with the values for the response headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until the next token (for `Retry-After`), at least 1.
    pub retry_after_secs: u64,
    /// True when this rejection pushed the key over the misuse threshold.
    pub misuse: bool,
    /// True when the key crossed the threshold earlier and has not been
    /// forgiven: its user is suspended (or being suspended).
    pub suspended: bool,
}

struct Bucket {
    /// Tokens, in millionths of a token.
    micro_tokens: u64,
    last: Instant,
    rejections: VecDeque<Instant>,
    flagged: bool,
}

/// A key for a bucket: a user, or a client address for unauthenticated calls.
pub type BucketKey = [u8; 16];

pub struct RateLimiter {
    buckets: DashMap<BucketKey, Bucket>,
    misuse_rejections: usize,
    misuse_window: Duration,
    /// Most buckets kept; idle full ones are evicted beyond this.
    buckets_max: usize,
}

const MICRO: u64 = 1_000_000;
const MINUTE_US: u64 = 60_000_000;

impl RateLimiter {
    pub fn new(misuse_rejections: u32, misuse_window: Duration) -> RateLimiter {
        RateLimiter {
            buckets: DashMap::new(),
            misuse_rejections: misuse_rejections.max(1) as usize,
            misuse_window,
            buckets_max: 1_000_000,
        }
    }

    /// Takes one token from `key`'s bucket of `limit` per minute.
    pub fn check(&self, key: BucketKey, limit: u32) -> Verdict {
        self.check_at(key, limit, Instant::now())
    }

    pub fn check_at(&self, key: BucketKey, limit: u32, now: Instant) -> Verdict {
        if self.buckets.len() >= self.buckets_max {
            self.evict_full(now);
        }
        let capacity = u64::from(limit.max(1)) * MICRO;
        let mut bucket = self.buckets.entry(key).or_insert_with(|| Bucket {
            micro_tokens: capacity,
            last: now,
            rejections: VecDeque::new(),
            flagged: false,
        });
        let elapsed_us = u64::try_from(now.saturating_duration_since(bucket.last).as_micros())
            .unwrap_or(u64::MAX);
        // refill = elapsed × limit / 60 s, in micro-tokens.
        let refill = u128::from(elapsed_us) * u128::from(limit.max(1)) * u128::from(MICRO)
            / u128::from(MINUTE_US);
        bucket.micro_tokens = u64::try_from(u128::from(bucket.micro_tokens) + refill)
            .unwrap_or(u64::MAX)
            .min(capacity);
        bucket.last = now;
        let suspended = bucket.flagged;
        let allowed = !suspended && bucket.micro_tokens >= MICRO;
        let mut misuse = false;
        if suspended {
            // Refused as suspended, not as over the limit: no rejection counted.
        } else if allowed {
            bucket.micro_tokens -= MICRO;
        } else {
            while bucket
                .rejections
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > self.misuse_window)
            {
                bucket.rejections.pop_front();
            }
            bucket.rejections.push_back(now);
            if bucket.rejections.len() >= self.misuse_rejections && !bucket.flagged {
                bucket.flagged = true;
                misuse = true;
            }
            while bucket.rejections.len() > self.misuse_rejections {
                bucket.rejections.pop_front();
            }
        }
        let per_token_us = MINUTE_US / u64::from(limit.max(1));
        let missing_full = capacity - bucket.micro_tokens;
        let reset_us = u128::from(missing_full) * u128::from(MINUTE_US)
            / (u128::from(limit.max(1)) * u128::from(MICRO));
        let missing_one = MICRO.saturating_sub(bucket.micro_tokens);
        let retry_us = u128::from(missing_one) * u128::from(per_token_us) / u128::from(MICRO);
        Verdict {
            allowed,
            limit,
            remaining: u32::try_from(bucket.micro_tokens / MICRO).unwrap_or(u32::MAX),
            reset_secs: u64::try_from(reset_us.div_ceil(1_000_000)).unwrap_or(u64::MAX),
            retry_after_secs: u64::try_from(retry_us.div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1),
            misuse,
            suspended,
        }
    }

    /// Gives `key` a fresh start after its user is reactivated: a full
    /// bucket and no rejections on record. Keeping the drained bucket would
    /// let the first few calls after reactivation be refused again and
    /// suspend the key a second time.
    pub fn forgive(&self, key: &BucketKey) {
        self.buckets.remove(key);
    }

    fn evict_full(&self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains_then_refills() {
        let limiter = RateLimiter::new(1_000, Duration::from_secs(600));
        let t0 = Instant::now();
        for i in 0..60 {
            let v = limiter.check_at([1; 16], 60, t0);
            assert!(v.allowed, "request {i}");
            assert_eq!(v.remaining, 59 - i);
        }
        let denied = limiter.check_at([1; 16], 60, t0);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_secs, 1);
        assert_eq!(denied.reset_secs, 60);
        // One second later one token (60/min) is back.
        assert!(
            limiter
                .check_at([1; 16], 60, t0 + Duration::from_secs(1))
                .allowed
        );
        // Another key is independent.
        assert!(limiter.check_at([2; 16], 60, t0).allowed);
    }

    #[test]
    fn misuse_is_flagged_once_at_the_threshold() {
        let limiter = RateLimiter::new(3, Duration::from_secs(600));
        let t0 = Instant::now();
        assert!(limiter.check_at([1; 16], 1, t0).allowed);
        let flags: Vec<bool> = (0..5)
            .map(|_| limiter.check_at([1; 16], 1, t0).misuse)
            .collect();
        assert_eq!(flags, [false, false, true, false, false]);
        // From the threshold on the key is refused as suspended, whatever
        // its bucket holds, until it is forgiven.
        let later = limiter.check_at([1; 16], 1, t0 + Duration::from_secs(3600));
        assert!(later.suspended && !later.allowed);
        limiter.forgive(&[1; 16]);
        let after = limiter.check_at([1; 16], 1, t0 + Duration::from_secs(3600));
        assert!(!after.suspended && after.allowed);
    }

    #[test]
    fn rejections_outside_the_window_do_not_count() {
        let limiter = RateLimiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        limiter.check_at([1; 16], 1, t0);
        assert!(!limiter.check_at([1; 16], 1, t0).misuse);
        // A minute later the bucket has a token again; take it, then be refused.
        let t1 = t0 + Duration::from_secs(61);
        assert!(limiter.check_at([1; 16], 1, t1).allowed);
        assert!(!limiter.check_at([1; 16], 1, t1).misuse);
        assert!(limiter.check_at([1; 16], 1, t1).misuse);
    }

    #[test]
    fn a_forgiven_key_starts_with_a_full_bucket() {
        let limiter = RateLimiter::new(2, Duration::from_secs(600));
        let t0 = Instant::now();
        assert!(limiter.check_at([1; 16], 1, t0).allowed);
        assert!(!limiter.check_at([1; 16], 1, t0).misuse);
        assert!(limiter.check_at([1; 16], 1, t0).misuse);
        limiter.forgive(&[1; 16]);
        // Reactivated with a higher limit, at the same instant: every call
        // of the new minute is allowed and none counts as misuse.
        for _ in 0..10 {
            let v = limiter.check_at([1; 16], 10, t0);
            assert!(v.allowed && !v.misuse);
        }
        assert!(!limiter.check_at([1; 16], 10, t0).allowed);
    }
}
