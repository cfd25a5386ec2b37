//! Per-publisher token buckets for `publisher.rate_limit_rps`. Kept outside
//! the config so a reload does not refill every bucket.

use std::collections::HashMap;
use std::time::Instant;

use crate::sync::Mutex;

#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimits {
    /// Takes one token from the publisher's bucket (capacity one second's
    /// worth); false when empty.
    pub fn allow(&self, publisher: &str, rps: u32) -> bool {
        let now = Instant::now();
        let rate = f64::from(rps.max(1));
        let mut map = self.buckets.lock();
        let b = map.entry(publisher.to_string()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_burst_beyond_the_rate_is_refused() {
        let r = super::RateLimits::default();
        let allowed = (0..20).filter(|_| r.allow("p", 5)).count();
        assert_eq!(allowed, 5);
        assert!(r.allow("other", 5));
    }
}
