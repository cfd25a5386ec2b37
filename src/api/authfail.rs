//! Failed authentications (contract §12): each is counted in
//! `leadx_auth_failures_total{kind}` and logged with the client address
//! (after `server.trusted_proxies`), the credential kind and the path —
//! never the presented key, token or signature.
//!
//! A credential-stuffing burst must not flood the journal, so the lines
//! go through one process-wide [`LogGate`]: at most [`LINES_PER_SECOND`]
//! per second of the exchange's clock; the rest are only counted, and the
//! next line that gets through says how many were `suppressed`. The gate
//! is three atomics, no lock: under a race a second may let a line or two
//! more through, never an unbounded number.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics;

/// Auth-failure log lines allowed per second, process-wide.
pub const LINES_PER_SECOND: u64 = 10;

/// A per-second line budget.
pub struct LogGate {
    /// The second (of the clock) the budget is for.
    second: AtomicU64,
    /// Lines let through in `second`.
    used: AtomicU64,
    /// Lines held back since the last line let through.
    suppressed: AtomicU64,
}

impl LogGate {
    pub const fn new() -> LogGate {
        LogGate {
            second: AtomicU64::new(0),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Some(lines suppressed before this one) when a line may be written
    /// at `now_ms`; None when this one is suppressed (and counted).
    pub fn admit(&self, now_ms: u64) -> Option<u64> {
        let now_s = now_ms / 1000;
        let seen = self.second.load(Ordering::Relaxed);
        if now_s > seen
            && self
                .second
                .compare_exchange(seen, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < LINES_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for LogGate {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-wide gate.
static GATE: LogGate = LogGate::new();

/// Counts and (within the budget) logs one failed authentication of
/// `kind` (one of `metrics::AUTH_FAILURES`) from `client` on `path`;
/// `detail` (may be empty) says more, e.g. which signature check failed.
pub fn failed(kind: &'static str, detail: &str, client: IpAddr, path: &str, now_ms: u64) {
    metrics::global().auth_failure(kind);
    if let Some(suppressed) = GATE.admit(now_ms) {
        log::warn!(target: "leadx::auth", kind = kind, detail = detail, client:% = client, path = path, suppressed = suppressed; "authentication failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_gets_a_bounded_number_of_lines_then_the_count() {
        let gate = LogGate::new();
        let t = 5_000_000;
        let let_through: Vec<u64> = (0..1_000).filter_map(|_| gate.admit(t + 300)).collect();
        assert_eq!(let_through.len() as u64, LINES_PER_SECOND);
        assert!(let_through.iter().all(|&s| s == 0), "{let_through:?}");
        // Still the same second: nothing more.
        assert_eq!(gate.admit(t + 999), None);
        // Next second: the first line reports what was held back.
        assert_eq!(gate.admit(t + 1_000), Some(1_000 - LINES_PER_SECOND + 1));
        assert_eq!(gate.admit(t + 1_001), Some(0));
    }

    #[test]
    fn a_clock_going_back_does_not_reopen_the_budget() {
        let gate = LogGate::new();
        for _ in 0..LINES_PER_SECOND {
            assert!(gate.admit(9_000).is_some());
        }
        assert_eq!(gate.admit(8_000), None);
    }
}
