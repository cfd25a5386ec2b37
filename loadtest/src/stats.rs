//! Latency histograms and outcome counters for one run.
//!
//! Latencies go into HDR histograms (3 significant digits, 1 µs to
//! `limits::LATENCY_US_MAX`) so p99.9 and max are exact to 0.1 % whatever the
//! spread, and per-worker recorders merge without losing anything.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::limits;

/// One latency distribution.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// The percentiles the report prints, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, limits::LATENCY_US_MAX, 3)
            .expect("static histogram bounds are valid");
        Latency { hist }
    }

    /// Records one latency; values past the histogram's range are clamped
    /// (and still counted) rather than dropped.
    pub fn record_us(&mut self, us: u64) {
        let v = us.clamp(1, limits::LATENCY_US_MAX);
        self.hist.record(v).expect("value clamped into range");
    }

    pub fn merge(&mut self, other: &Latency) {
        self.hist
            .add(&other.hist)
            .expect("same bounds on both sides");
    }

    /// What was recorded after `earlier`, a snapshot of this same
    /// histogram (cumulative snapshots → one window).
    pub fn since(&self, earlier: &Latency) -> Latency {
        let mut hist = self.hist.clone();
        // A later snapshot holds every count of an earlier one.
        hist.subtract(&earlier.hist)
            .expect("an earlier snapshot of the same histogram");
        Latency { hist }
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Value at quantile `q` in [0, 1], µs (0 when empty).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.count(),
            p50_us: self.quantile_us(0.50),
            p90_us: self.quantile_us(0.90),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: if self.hist.is_empty() {
                0
            } else {
                self.hist.max()
            },
            mean_us: if self.hist.is_empty() {
                0.0
            } else {
                self.hist.mean()
            },
        }
    }
}

/// Everything one run counts, per endpoint where it matters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Latency of the first request of a cycle (ping, direct post or
    /// healthz), from its intended send time.
    pub first: Latency,
    /// Latency of posts, from their intended send time (ping answered + think).
    pub post: Latency,
    /// Ping sent (intended) → post answered.
    pub cycle: Latency,
    /// The first requests answered 200, and those answered 503 (shed by an
    /// overloaded leadx), apart: the `overload` scenario reports each.
    pub first_ok: Latency,
    pub first_shed: Latency,
    /// Outcome counts keyed `endpoint:outcome`, e.g. `ping:200`, `post:sold`,
    /// `ping:timeout`.
    pub outcomes: BTreeMap<String, u64>,
    /// HTTP requests answered (any status).
    pub answered: u64,
    /// Requests that failed without an HTTP answer (I/O error, timeout).
    pub errors: u64,
    /// Non-2xx answers.
    pub non_2xx: u64,
    /// Scheduled cycles never sent before the drain bound.
    pub not_sent: u64,
    pub pings: u64,
    pub bids: u64,
}

impl Stats {
    pub fn count(&mut self, key: &str) {
        // Look up before inserting: the key exists on all but the first call,
        // and this runs once per request on the driver's hot path.
        if let Some(n) = self.outcomes.get_mut(key) {
            *n += 1;
            return;
        }
        self.outcomes.insert(key.to_string(), 1);
    }

    pub fn merge(&mut self, o: &Stats) {
        self.first.merge(&o.first);
        self.post.merge(&o.post);
        self.cycle.merge(&o.cycle);
        self.first_ok.merge(&o.first_ok);
        self.first_shed.merge(&o.first_shed);
        for (k, v) in &o.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        self.answered += o.answered;
        self.errors += o.errors;
        self.non_2xx += o.non_2xx;
        self.not_sent += o.not_sent;
        self.pings += o.pings;
        self.bids += o.bids;
    }

    /// Bids per ping answered (0 when no ping was answered).
    pub fn bids_per_ping(&self) -> f64 {
        if self.pings == 0 {
            0.0
        } else {
            self.bids as f64 / self.pings as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_1_to_1000_are_where_they_should_be() {
        let mut l = Latency::new();
        for v in 1..=1000 {
            l.record_us(v);
        }
        let p = l.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500);
        assert_eq!(p.p90_us, 900);
        assert_eq!(p.p99_us, 990);
        assert_eq!(p.p999_us, 999);
        assert_eq!(p.max_us, 1000);
        assert!((p.mean_us - 500.5).abs() < 0.5);
    }

    #[test]
    fn large_values_keep_three_significant_digits_and_clamp() {
        let mut l = Latency::new();
        l.record_us(1_234_567);
        let got = l.quantile_us(1.0) as f64;
        assert!((got - 1_234_567.0).abs() / 1_234_567.0 < 0.001, "{got}");
        l.record_us(u64::MAX);
        assert_eq!(l.count(), 2);
        assert!(l.percentiles().max_us >= limits::LATENCY_US_MAX);
    }

    #[test]
    fn merged_histogram_equals_one_fed_everything() {
        let (mut a, mut b, mut all) = (Latency::new(), Latency::new(), Latency::new());
        for v in 0..500u64 {
            a.record_us(v * 7 + 1);
            all.record_us(v * 7 + 1);
            b.record_us(v * 13 + 5);
            all.record_us(v * 13 + 5);
        }
        a.merge(&b);
        assert_eq!(a.percentiles(), all.percentiles());
    }

    #[test]
    fn since_keeps_only_what_came_after_the_snapshot() {
        let mut l = Latency::new();
        for v in 1..=100 {
            l.record_us(v);
        }
        let snapshot = l.clone();
        for _ in 0..10 {
            l.record_us(5_000);
        }
        let w = l.since(&snapshot);
        assert_eq!(w.count(), 10);
        assert!(
            (4_995..=5_005).contains(&w.quantile_us(0.5)),
            "{}",
            w.quantile_us(0.5)
        );
        assert_eq!(l.since(&l.clone()).count(), 0);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(Latency::new().percentiles(), Percentiles::default());
    }

    #[test]
    fn stats_merge_adds_counts_and_bids_per_ping() {
        let mut a = Stats::default();
        a.count("ping:200");
        a.pings = 4;
        a.bids = 1;
        let mut b = Stats::default();
        b.count("ping:200");
        b.count("ping:timeout");
        b.pings = 4;
        b.bids = 3;
        a.merge(&b);
        assert_eq!(a.outcomes["ping:200"], 2);
        assert_eq!(a.outcomes["ping:timeout"], 1);
        assert_eq!(a.bids_per_ping(), 0.5);
    }
}
