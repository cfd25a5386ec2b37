//! Lock-free fixed-bucket histograms.
//!
//! Buckets are fixed at compile time so an observation is a short scan and
//! two relaxed atomic adds — cheap enough for every request on every core.
//! Counts are kept per bucket (not cumulative) so one observation touches one
//! bucket; rendering and quantile estimation accumulate them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket upper bounds in microseconds, last one `+Inf`. Fine below
/// 50 ms because buyer timeouts and the whole ping deadline live there.
pub const LATENCY_BOUNDS_US: [u64; 13] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    u64::MAX,
];
/// The same bounds as Prometheus `le` label values, in seconds.
pub const LATENCY_LE: [&str; 13] = [
    "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "+Inf",
];

/// Bid price bucket upper bounds in cents, last one `+Inf`.
pub const PRICE_BOUNDS_CENTS: [u64; 8] = [100, 200, 500, 1_000, 2_000, 5_000, 10_000, u64::MAX];
/// The same bounds as `le` label values, in USD.
pub const PRICE_LE: [&str; 8] = ["1", "2", "5", "10", "20", "50", "100", "+Inf"];

/// Units of a histogram's sum as exposed: observations are integers
/// (microseconds, cents) and the exposition divides by this.
pub const US_PER_S: f64 = 1_000_000.0;
pub const CENTS_PER_USD: f64 = 100.0;

/// A histogram over `N` buckets whose last bound is `u64::MAX` (`+Inf`).
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    buckets: [AtomicU64; N],
    sum: AtomicU64,
}

/// A histogram read at one moment: per-bucket counts, cumulative on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot<const N: usize> {
    pub bounds: &'static [u64; N],
    pub buckets: [u64; N],
    pub sum: u64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: &'static [u64; N]) -> Self {
        assert!(
            N > 0 && bounds[N - 1] == u64::MAX,
            "last bucket must be +Inf"
        );
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must ascend");
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one value. `le` is inclusive, as Prometheus defines it.
    #[inline]
    pub fn observe(&self, value: u64) {
        // The last bound is u64::MAX, so the search always finds a bucket.
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(N - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot<N> {
        HistogramSnapshot {
            bounds: self.bounds,
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

impl<const N: usize> HistogramSnapshot<N> {
    /// Number of observations (equals the `+Inf` cumulative bucket).
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Cumulative counts, as the exposition's `_bucket` series want them.
    pub fn cumulative(&self) -> [u64; N] {
        let mut acc = 0;
        std::array::from_fn(|i| {
            acc += self.buckets[i];
            acc
        })
    }

    /// Estimates the `q` quantile (0..=1) by linear interpolation inside the
    /// bucket that holds it, like Prometheus' `histogram_quantile`. A value in
    /// the `+Inf` bucket is reported as the last finite bound: the true value
    /// is unknown, and "at least this" is the honest answer. None if empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                if i == N - 1 {
                    return Some(if N >= 2 { self.bounds[N - 2] } else { 0 });
                }
                let lower = if i == 0 { 0 } else { self.bounds[i - 1] };
                let upper = self.bounds[i];
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + ((upper - lower) as f64 * within) as u64);
            }
            below += n;
        }
        None
    }
}

/// The latency histogram used everywhere in leadx.
pub type Latency = Histogram<13>;
/// The bid price histogram.
pub type Prices = Histogram<8>;

pub fn latency() -> Latency {
    Histogram::new(&LATENCY_BOUNDS_US)
}

pub fn prices() -> Prices {
    Histogram::new(&PRICE_BOUNDS_CENTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_inf_catches_the_rest() {
        let h = latency();
        h.observe(1_000); // exactly 1 ms → le="0.001"
        h.observe(1_001); // just above → le="0.002"
        h.observe(60_000_000); // a minute → +Inf
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[12], 1);
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum, 1_000 + 1_001 + 60_000_000);
        assert_eq!(s.cumulative()[12], 3);
        assert_eq!(s.cumulative()[1], 2);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let h = latency();
        for _ in 0..100 {
            h.observe(15_000); // all in (10 ms, 20 ms]
        }
        let s = h.snapshot();
        let p50 = s.quantile(0.5).unwrap();
        assert_eq!(p50, 15_000, "midpoint of the 10–20 ms bucket");
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > 19_000 && p99 <= 20_000, "p99 {p99}");
        assert_eq!(latency().snapshot().quantile(0.5), None);
    }

    #[test]
    fn quantile_in_inf_bucket_reports_last_finite_bound() {
        let h = latency();
        h.observe(9_000_000);
        assert_eq!(h.snapshot().quantile(0.99), Some(5_000_000));
    }

    #[test]
    fn quantiles_follow_the_distribution() {
        let h = latency();
        for _ in 0..90 {
            h.observe(800); // ≤ 1 ms
        }
        for _ in 0..10 {
            h.observe(150_000); // (100, 200] ms
        }
        let s = h.snapshot();
        assert!(s.quantile(0.5).unwrap() <= 1_000);
        let p95 = s.quantile(0.95).unwrap();
        assert!((100_000..=200_000).contains(&p95), "p95 {p95}");
    }

    #[test]
    fn price_buckets_are_in_cents() {
        let h = prices();
        h.observe(1_250); // $12.50 → le="20"
        let s = h.snapshot();
        assert_eq!(s.buckets[4], 1);
        assert_eq!(PRICE_LE[4], "20");
    }
}
