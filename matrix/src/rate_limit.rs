//! [`RateLimits`]: token buckets per user and per client IP (governor),
//! applied to the endpoints the spec marks as rate-limited. A refusal is
//! `M_LIMIT_EXCEEDED` with `retry_after_ms`.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use axon_core::UserId;
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;
use crate::error::MatrixError;

/// Checks between two sweeps of idle keys, so the maps stay as small as
/// the set of recent clients.
const SWEEP_EVERY: u32 = 4096;

/// One keyed limiter, or none when the limit is off.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    checks: AtomicU32,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(limit: RateLimit) -> Self {
        let limiter = NonZeroU32::new(limit.per_second).map(|rate| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            checks: AtomicU32::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), MatrixError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(limiter.clock().now());
            MatrixError::LimitExceeded { retry_after }
        })
    }
}

/// The per-user and per-IP limits.
pub struct RateLimits {
    per_user: Keyed<UserId>,
    per_ip: Keyed<IpAddr>,
}

impl RateLimits {
    /// Limits with the given quotas.
    pub fn new(per_user: RateLimit, per_ip: RateLimit) -> Self {
        Self {
            per_user: Keyed::new(per_user),
            per_ip: Keyed::new(per_ip),
        }
    }

    /// Counts one request of an authenticated user.
    pub fn check_user(&self, user: &UserId) -> Result<(), MatrixError> {
        self.per_user.check(user)
    }

    /// Counts one request without an access token from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), MatrixError> {
        self.per_ip.check(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_limit_exceeded_with_a_wait() {
        let limits = RateLimits::new(
            RateLimit {
                per_second: 1,
                burst: 2,
            },
            RateLimit {
                per_second: 0,
                burst: 0,
            },
        );
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..100 {
            assert!(limits.check_ip(ip).is_ok(), "0 per second is no limit");
        }
        let alice = UserId::parse("@alice:x").unwrap();
        let bob = UserId::parse("@bob:x").unwrap();
        assert!(limits.check_user(&alice).is_ok());
        assert!(limits.check_user(&alice).is_ok());
        match limits.check_user(&alice) {
            Err(MatrixError::LimitExceeded { retry_after }) => {
                assert!(retry_after.as_millis() > 0 && retry_after.as_secs() <= 1)
            }
            other => panic!("expected LimitExceeded, got {other:?}"),
        }
        assert!(limits.check_user(&bob).is_ok(), "per user");
    }
}
