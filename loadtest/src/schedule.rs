//! The open-loop schedule: send times fixed in advance, before the first
//! request goes out.
//!
//! Cycle `i` is due at `start + i / rate`. Its latency is measured from that
//! intended time, not from when a busy connection finally got round to
//! sending it, so a stalled target shows up as the queueing delay a real
//! publisher would see (no coordinated omission).

use std::time::{Duration, Instant};

/// A fixed-rate schedule of `total` cycles.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    period_ns: f64,
    total: u64,
}

impl Schedule {
    /// `rate_per_s` cycles a second for `duration`, starting at `start`.
    pub fn new(start: Instant, rate_per_s: u64, duration: Duration) -> Self {
        assert!(rate_per_s > 0, "rate must be positive");
        let total = (rate_per_s as f64 * duration.as_secs_f64()).round() as u64;
        Schedule {
            start,
            period_ns: 1e9 / rate_per_s as f64,
            total,
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// When cycle `i` is due. Computed from `i`, never accumulated, so
    /// rounding never drifts over a long run.
    pub fn intended(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.period_ns) as u64)
    }

    /// When the last cycle is due.
    pub fn end(&self) -> Instant {
        self.intended(self.total.saturating_sub(1))
    }
}

/// Latency of an answer received at `answered` for a request intended at
/// `intended`, µs. An answer "before" its intended time cannot happen
/// (we never send early), so it saturates at 0 rather than wrapping.
pub fn latency_us(intended: Instant, answered: Instant) -> u64 {
    answered.saturating_duration_since(intended).as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_and_fixed_in_advance() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000, Duration::from_secs(2));
        assert_eq!(s.total(), 2000);
        assert_eq!(s.intended(0), t0);
        assert_eq!(s.intended(1) - t0, Duration::from_millis(1));
        assert_eq!(s.intended(1500) - t0, Duration::from_millis(1500));
        assert_eq!(s.end() - t0, Duration::from_millis(1999));
    }

    #[test]
    fn a_fractional_period_does_not_drift() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 3, Duration::from_secs(10));
        assert_eq!(s.total(), 30);
        let d = s.intended(29) - t0;
        assert!(
            d >= Duration::from_nanos(9_666_666_000) && d <= Duration::from_nanos(9_666_667_000),
            "{d:?}"
        );
    }

    #[test]
    fn latency_counts_from_intended_time_when_the_sender_was_late() {
        // A target stalled for 500 ms: cycle 10 (due at 10 ms) could only be
        // sent at 500 ms and was answered at 501 ms. Its latency is 491 ms,
        // not the 1 ms service time a closed-loop tester would report.
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000, Duration::from_secs(1));
        let answered = t0 + Duration::from_millis(501);
        assert_eq!(latency_us(s.intended(10), answered), 491_000);
        assert_eq!(latency_us(answered, s.intended(10)), 0);
    }
}
