//! Business time: what the exchange asks when it stamps a ping or a lead,
//! expires a bid, counts a cap's day or a dedupe window. Production reads
//! the wall clock; tests move a [`ManualClock`], so no test sleeps to let
//! time pass. Durations (deadlines, latencies) use `Instant` and are not
//! business time.
//!
//! Only this module (and `ids`, which stamps ids) reads the wall clock for
//! business time: `layering::only_the_clock_reads_the_wall_clock_for_business_time`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch, as the exchange sees them.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::ids::now_ms()
    }
}

/// A clock that moves only when told: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// Starts at the wall clock's now (so ids and stamps look ordinary).
    pub fn new() -> ManualClock {
        ManualClock::at(crate::ids::now_ms())
    }

    pub fn at(now_ms: u64) -> ManualClock {
        ManualClock {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set_ms(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance_ms(1_300);
        assert_eq!(c.now_ms(), 2_300);
        c.set_ms(86_400_000);
        assert_eq!(c.now_ms(), 86_400_000);
        assert!(SystemClock.now_ms() > 1_700_000_000_000);
    }
}
