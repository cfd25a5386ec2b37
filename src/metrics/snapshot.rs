//! Plain-struct view of the registry for `/v1/admin/stats`: counts and
//! latency quantiles estimated from the histogram buckets.
//!
//! Quantiles come from the fixed buckets (linear interpolation, like
//! Prometheus' `histogram_quantile`) instead of an HDR histogram per buyer:
//! the buckets already exist for `/metrics`, cost nothing extra on the hot
//! path, and are precise enough where it matters (below 50 ms).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::buyer::{BuyerReading, ERROR_KINDS};
use super::histogram::HistogramSnapshot;
use super::{Endpoint, Registry, AUCTION_OUTCOMES, POST_OUTCOMES, STATUS_LABELS};

/// Count, mean and estimated quantiles of one latency histogram, in µs.
/// Quantiles are `None` when nothing was observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: Option<u64>,
    pub p95_us: Option<u64>,
    pub p99_us: Option<u64>,
}

impl LatencySummary {
    pub(super) fn of(snap: &HistogramSnapshot<13>) -> Self {
        let count = snap.count();
        LatencySummary {
            count,
            mean_us: snap.sum.checked_div(count).unwrap_or(0),
            p50_us: snap.quantile(0.50),
            p95_us: snap.quantile(0.95),
            p99_us: snap.quantile(0.99),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub endpoint: &'static str,
    pub requests: u64,
    /// Only statuses answered at least once.
    pub by_status: BTreeMap<&'static str, u64>,
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeStats {
    pub outcome: &'static str,
    pub count: u64,
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuyerStats {
    pub buyer: String,
    pub pings: u64,
    pub bids: u64,
    pub no_bids: u64,
    pub timeouts: u64,
    pub errors: u64,
    /// Only kinds seen at least once.
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Mean bid price in cents (0 when no bid yet).
    pub bid_price_mean_cents: u64,
    pub ping_latency: LatencySummary,
    pub posts_accepted: u64,
    pub posts_rejected: u64,
    pub posts_failed: u64,
    pub post_latency: LatencySummary,
}

/// Everything the registry knows, read at one moment (each value is read
/// atomically on its own; the whole is not one atomic cut, which stats do
/// not need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub endpoints: Vec<EndpointStats>,
    pub auctions: Vec<OutcomeStats>,
    pub posts: Vec<OutcomeStats>,
    pub auctions_in_flight: i64,
    pub posts_in_flight: i64,
    pub connections_open: i64,
    pub store_flushes: LatencySummary,
    pub store_flushed_ops: u64,
    pub late_answers: u64,
    pub buyers: Vec<BuyerStats>,
}

impl Registry {
    /// Counts and latency quantiles for admin stats.
    pub fn snapshot(&self) -> Snapshot {
        let g = &self.gauges;
        Snapshot {
            endpoints: Endpoint::ALL
                .iter()
                .map(|&e| self.endpoint_stats(e))
                .collect(),
            auctions: outcome_stats(&AUCTION_OUTCOMES, &self.auctions, &self.auction_latency),
            posts: outcome_stats(&POST_OUTCOMES, &self.posts, &self.post_latency),
            auctions_in_flight: g.auctions_in_flight.load(Ordering::Relaxed),
            posts_in_flight: g.posts_in_flight.load(Ordering::Relaxed),
            connections_open: g.connections_open.load(Ordering::Relaxed),
            store_flushes: LatencySummary::of(&self.store_flush_latency.snapshot()),
            store_flushed_ops: self.store_flush_ops.load(Ordering::Relaxed),
            late_answers: self.late_answers.load(Ordering::Relaxed),
            buyers: self
                .buyer_list()
                .into_iter()
                .map(|(id, m)| buyer_stats(id, &m.read()))
                .collect(),
        }
    }

    fn endpoint_stats(&self, e: Endpoint) -> EndpointStats {
        let by_status: BTreeMap<_, _> = STATUS_LABELS
            .iter()
            .zip(&self.requests[e as usize])
            .map(|(s, n)| (*s, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        EndpointStats {
            endpoint: e.label(),
            requests: by_status.values().sum(),
            by_status,
            latency: LatencySummary::of(&self.request_latency[e as usize].snapshot()),
        }
    }
}

fn outcome_stats(
    names: &[&'static str],
    counts: &[std::sync::atomic::AtomicU64],
    latency: &[super::histogram::Latency],
) -> Vec<OutcomeStats> {
    names
        .iter()
        .zip(counts.iter().zip(latency))
        .map(|(outcome, (n, h))| OutcomeStats {
            outcome,
            count: n.load(Ordering::Relaxed),
            latency: LatencySummary::of(&h.snapshot()),
        })
        .collect()
}

fn buyer_stats(buyer: String, r: &BuyerReading) -> BuyerStats {
    let bids = r.bid_prices.count();
    BuyerStats {
        buyer,
        pings: r.pings.iter().sum(),
        bids: r.pings[0],
        no_bids: r.pings[1],
        timeouts: r.pings[2],
        errors: r.pings[3],
        errors_by_kind: ERROR_KINDS
            .iter()
            .zip(r.errors)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (*k, n))
            .collect(),
        bid_price_mean_cents: r.bid_prices.sum.checked_div(bids).unwrap_or(0),
        ping_latency: LatencySummary::of(&r.ping_latency),
        posts_accepted: r.posts[0],
        posts_rejected: r.posts[1],
        posts_failed: r.posts[2],
        post_latency: LatencySummary::of(&r.post_latency),
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn snapshot_counts_and_estimates_quantiles() {
        let r = Registry::new();
        for _ in 0..99 {
            r.http_request(Endpoint::Ping, 200, 3_000); // (2, 5] ms
        }
        r.http_request(Endpoint::Ping, 503, 400_000); // (200, 500] ms
        let b = r.buyer("b1");
        b.ping(PingResult::Bid { price_cents: 1_000 }, 10_000);
        b.ping(PingResult::Bid { price_cents: 2_000 }, 10_000);
        b.ping(PingResult::Timeout, 150_000);
        b.post(PostResult::Rejected, 5_000);
        let s = r.snapshot();
        let ping = &s.endpoints[0];
        assert_eq!(ping.endpoint, "ping");
        assert_eq!(ping.requests, 100);
        assert_eq!(ping.by_status.get("503"), Some(&1));
        let p50 = ping.latency.p50_us.unwrap();
        assert!((2_000..=5_000).contains(&p50), "p50 {p50}");
        let p99 = ping.latency.p99_us.unwrap();
        assert!(p99 <= 5_000, "99 of 100 are ≤ 5 ms: p99 {p99}");
        assert_eq!(s.endpoints[1].latency.p50_us, None);
        let bs = &s.buyers[0];
        assert_eq!(
            (bs.buyer.as_str(), bs.pings, bs.bids, bs.timeouts),
            ("b1", 3, 2, 1)
        );
        assert_eq!(bs.bid_price_mean_cents, 1_500);
        assert_eq!(bs.posts_rejected, 1);
        assert_eq!(s.auctions.len(), 2);
        assert_eq!(s.posts[2].outcome, "duplicate");
    }
}
