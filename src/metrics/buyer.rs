//! Per-buyer counters: ping results, error kinds, bid prices, post results,
//! skips by reason (contract §10).
//!
//! A handle is resolved once per buyer at config load and kept with the
//! buyer, so the hot path records with atomic adds and never looks a buyer
//! up by name. Every label value here comes from a closed set, so a
//! misbehaving buyer cannot grow the exposition.

use std::sync::atomic::{AtomicU64, Ordering};

use super::histogram::{self, Latency, Prices};
use crate::money::Cents;
use crate::routing::Reason;

/// What one ping of one buyer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingResult {
    Bid {
        price_cents: Cents,
    },
    NoBid,
    Timeout,
    /// A failed call; the kind is one of [`ERROR_KINDS`], anything else is
    /// counted as `"other"` so a typo cannot mint a new series.
    Error(&'static str),
}

/// What one post to one buyer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostResult {
    Accepted,
    Rejected,
    Failed,
}

/// Label values of `result` for pings, in counter order.
pub const PING_RESULTS: [&str; 4] = ["bid", "no_bid", "timeout", "error"];
/// Label values of `result` for pre-connects, in counter order.
pub const PRECONNECT_RESULTS: [&str; 2] = ["warmed", "failed"];
/// Label values of `result` for posts, in counter order.
pub const POST_RESULTS: [&str; 3] = ["accepted", "rejected", "failed"];
/// The closed set of ping error kinds; the last one catches the rest. It
/// mirrors the failure reasons of the HTTP client (`CallError::reason`) and
/// of the buyer-answer parsers; a reason added there without being added
/// here is counted as "other" — visible, and never a new series.
pub const ERROR_KINDS: [&str; 15] = [
    "connect_error",
    "resolve_error",
    "tls_error",
    "io_error",
    "response_too_large",
    "malformed_response",
    "pool_exhausted",
    "http_status",
    "malformed_json",
    "bad_status_field",
    "missing_price",
    "bad_price",
    "negative_price",
    "bad_ref",
    "other",
];

/// Index of an error kind in [`ERROR_KINDS`]; every `http_<status>`
/// reason (contract §10) counts as "http_status", unknown kinds as "other".
pub fn error_kind_index(kind: &str) -> usize {
    let kind = if kind.starts_with("http_") {
        "http_status"
    } else {
        kind
    };
    ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(ERROR_KINDS.len() - 1)
}

/// Counters and histograms of one buyer.
#[derive(Debug)]
pub struct BuyerMetrics {
    pings: [AtomicU64; PING_RESULTS.len()],
    errors: [AtomicU64; ERROR_KINDS.len()],
    ping_latency: Latency,
    bid_prices: Prices,
    posts: [AtomicU64; POST_RESULTS.len()],
    post_latency: Latency,
    /// Times the buyer was not called, by `Reason::SKIPS` index.
    skips: [AtomicU64; Reason::SKIPS.len()],
    /// Sold leads it returned (contract §13).
    returns: AtomicU64,
    /// Pre-connects (issue #9), by `PRECONNECT_RESULTS` index.
    preconnects: [AtomicU64; PRECONNECT_RESULTS.len()],
}

impl Default for BuyerMetrics {
    fn default() -> Self {
        BuyerMetrics {
            pings: Default::default(),
            errors: Default::default(),
            ping_latency: histogram::latency(),
            bid_prices: histogram::prices(),
            posts: Default::default(),
            post_latency: histogram::latency(),
            skips: Default::default(),
            returns: AtomicU64::new(0),
            preconnects: Default::default(),
        }
    }
}

impl BuyerMetrics {
    /// Records one ping call, whatever its outcome, with its latency.
    pub fn ping(&self, result: PingResult, latency_us: u64) {
        let i = match result {
            PingResult::Bid { price_cents } => {
                self.bid_prices.observe(price_cents);
                0
            }
            PingResult::NoBid => 1,
            PingResult::Timeout => 2,
            PingResult::Error(kind) => {
                self.errors[error_kind_index(kind)].fetch_add(1, Ordering::Relaxed);
                3
            }
        };
        self.pings[i].fetch_add(1, Ordering::Relaxed);
        self.ping_latency.observe(latency_us);
    }

    /// Records one post call with its latency.
    pub fn post(&self, result: PostResult, latency_us: u64) {
        let i = match result {
            PostResult::Accepted => 0,
            PostResult::Rejected => 1,
            PostResult::Failed => 2,
        };
        self.posts[i].fetch_add(1, Ordering::Relaxed);
        self.post_latency.observe(latency_us);
    }

    /// Records that the buyer was not called, and why (a reason that is
    /// not a skip is ignored: the label set stays `Reason::SKIPS`).
    pub fn skip(&self, reason: Reason) {
        if let Some(i) = Reason::SKIPS.iter().position(|r| *r == reason) {
            self.skips[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one of its leads returned (contract §13).
    pub fn returned(&self) {
        self.returns.fetch_add(1, Ordering::Relaxed);
    }

    /// Records connections warmed off the lead's clock and hosts whose
    /// warming failed (`exchange::preconnect`).
    pub fn preconnected(&self, warmed: u64, failed: u64) {
        self.preconnects[0].fetch_add(warmed, Ordering::Relaxed);
        self.preconnects[1].fetch_add(failed, Ordering::Relaxed);
    }

    pub(super) fn read(&self) -> BuyerReading {
        BuyerReading {
            pings: load_all(&self.pings),
            errors: load_all(&self.errors),
            ping_latency: self.ping_latency.snapshot(),
            bid_prices: self.bid_prices.snapshot(),
            posts: load_all(&self.posts),
            post_latency: self.post_latency.snapshot(),
            skips: load_all(&self.skips),
            returns: self.returns.load(Ordering::Relaxed),
            preconnects: load_all(&self.preconnects),
        }
    }
}

fn load_all<const N: usize>(counters: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| counters[i].load(Ordering::Relaxed))
}

/// One buyer's numbers read at one moment (for rendering and snapshots).
#[derive(Debug, Clone)]
pub(super) struct BuyerReading {
    pub pings: [u64; PING_RESULTS.len()],
    pub errors: [u64; ERROR_KINDS.len()],
    pub ping_latency: histogram::HistogramSnapshot<13>,
    pub bid_prices: histogram::HistogramSnapshot<8>,
    pub posts: [u64; POST_RESULTS.len()],
    pub post_latency: histogram::HistogramSnapshot<13>,
    pub skips: [u64; Reason::SKIPS.len()],
    pub returns: u64,
    pub preconnects: [u64; PRECONNECT_RESULTS.len()],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_error_kinds_count_as_other() {
        let m = BuyerMetrics::default();
        m.ping(PingResult::Error("http_status"), 10);
        m.ping(PingResult::Error("http_503"), 10);
        m.ping(PingResult::Error("a brand new kind"), 10);
        let r = m.read();
        assert_eq!(r.errors[error_kind_index("http_status")], 2);
        assert_eq!(r.errors[ERROR_KINDS.len() - 1], 1);
        assert_eq!(r.pings[3], 3);
        assert_eq!(r.ping_latency.count(), 3);
    }

    #[test]
    fn bids_feed_the_price_histogram_only() {
        let m = BuyerMetrics::default();
        m.ping(PingResult::Bid { price_cents: 950 }, 4_000);
        m.ping(PingResult::NoBid, 4_000);
        m.ping(PingResult::Timeout, 150_000);
        let r = m.read();
        assert_eq!(r.pings, [1, 1, 1, 0]);
        assert_eq!(r.bid_prices.count(), 1);
        assert_eq!(r.bid_prices.sum, 950);
        assert_eq!(r.ping_latency.count(), 3);
    }

    #[test]
    fn posts_count_by_result() {
        let m = BuyerMetrics::default();
        m.post(PostResult::Accepted, 1);
        m.post(PostResult::Failed, 1);
        m.post(PostResult::Failed, 1);
        assert_eq!(m.read().posts, [1, 0, 2]);
    }
}
