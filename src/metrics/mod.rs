//! Metrics: a small registry on atomics, exposed as Prometheus text.
//!
//! Why our own: the hot path (every request, every buyer call) must cost a
//! few relaxed atomic adds, with no lock and no lookup by string. So every
//! series is a fixed slot: endpoints, statuses and outcomes are closed enums;
//! per-buyer handles are resolved once at config load and kept. Label
//! cardinality is bounded by construction — at most `limits::BUYERS_MAX`
//! buyer ids, statuses from the set leadx emits — and no label ever carries
//! lead data (no PII, no publisher input).
//!
//! `render` writes the exposition for `/metrics`; `snapshot` returns plain
//! structs with counts and latency quantiles for `/v1/admin/stats`, and
//! `live` the per-publisher and per-buyer business numbers (no test
//! traffic), owned by each running `Exchange`, not by this registry.

mod buyer;
pub mod histogram;
mod live;
mod quantiles;
mod render;
mod snapshot;
mod text;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::sync::Mutex;

pub use buyer::{BuyerMetrics, PingResult, PostResult, ERROR_KINDS};
use histogram::Latency;
pub use live::{LiveStats, PartyStats};
pub use snapshot::{BuyerStats, EndpointStats, LatencySummary, OutcomeStats, Snapshot};
pub use text::{write_gauge, write_header, write_sample};

use crate::limits;

/// Which endpoint a request hit; the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Post,
    Leads,
    LeadGet,
    Health,
    Ready,
    Metrics,
    Admin,
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 9] = [
        Endpoint::Ping,
        Endpoint::Post,
        Endpoint::Leads,
        Endpoint::LeadGet,
        Endpoint::Health,
        Endpoint::Ready,
        Endpoint::Metrics,
        Endpoint::Admin,
        Endpoint::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Ping => "ping",
            Endpoint::Post => "post",
            Endpoint::Leads => "leads",
            Endpoint::LeadGet => "lead_get",
            Endpoint::Health => "health",
            Endpoint::Ready => "ready",
            Endpoint::Metrics => "metrics",
            Endpoint::Admin => "admin",
            Endpoint::Other => "other",
        }
    }
}

/// The status codes leadx answers with; any other is counted as `"other"`.
pub const STATUS_CODES: [u16; 20] = [
    200, 204, 400, 401, 403, 404, 405, 408, 409, 410, 411, 413, 415, 422, 429, 431, 500, 501, 503,
    505,
];
/// `status` label values: the codes above, then the catch-all.
pub const STATUS_LABELS: [&str; 21] = [
    "200", "204", "400", "401", "403", "404", "405", "408", "409", "410", "411", "413", "415",
    "422", "429", "431", "500", "501", "503", "505", "other",
];

fn status_index(status: u16) -> usize {
    STATUS_CODES
        .iter()
        .position(|&c| c == status)
        .unwrap_or(STATUS_CODES.len())
}

/// How a ping auction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuctionOutcome {
    Bid,
    NoBid,
}
pub const AUCTION_OUTCOMES: [&str; 2] = ["bid", "no_bid"];

/// How a post (or direct post) ended for the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    Sold,
    Unsold,
    Duplicate,
}
pub const POST_OUTCOMES: [&str; 3] = ["sold", "unsold", "duplicate"];

/// Why a request was shed (answered 503 `overloaded` at once) instead of
/// queued; the `reason` label of `leadx_shed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// The ping had waited so long that most of its deadline was gone.
    Deadline,
    /// `server.auctions_in_flight_max` auctions were running.
    Auctions,
    /// No buyer-call permits left for a ping's calls.
    PingCalls,
    /// No buyer-call permit left for a post.
    PostCalls,
}
pub const SHED_REASONS: [&str; 4] = ["deadline", "auctions", "ping_calls", "post_calls"];

impl ShedReason {
    pub fn label(self) -> &'static str {
        SHED_REASONS[self as usize]
    }
}

/// Gauges the server moves up and down itself.
#[derive(Debug, Default)]
pub struct Gauges {
    pub auctions_in_flight: AtomicI64,
    /// Buyer calls holding a permit, by stage (`exchange::admission`).
    pub ping_calls_in_flight: AtomicI64,
    pub post_calls_in_flight: AtomicI64,
    pub posts_in_flight: AtomicI64,
    pub connections_open: AtomicI64,
}

/// Adds one to a gauge now and takes it off when dropped, so an early
/// return or a panic cannot leave the gauge high.
#[must_use = "the gauge goes back down when this guard is dropped"]
pub struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    pub fn enter(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a signed request was refused (401 `bad_signature`); the `kind`
/// label of `leadx_bad_signatures_total`, as `SignatureError::kind` names
/// it.
pub const SIGNATURE_FAILURES: [&str; 6] = [
    "missing",
    "malformed",
    "stale",
    "mismatch",
    "replayed",
    "replay_cache_full",
];

/// Which credential failed (contract §12); the `kind` label of
/// `leadx_auth_failures_total`. `publisher_key`: no or an unknown API
/// key (401); `publisher_ip`: a known key from outside its `allowed_ips`
/// (403); `admin_token`: no or a wrong admin token (401); `signature`: a
/// 401 `bad_signature` (its detail is in `leadx_bad_signatures_total`).
pub const AUTH_FAILURES: [&str; 4] = ["publisher_key", "publisher_ip", "admin_token", "signature"];

/// Why a post or direct post was refused by a suppression list (contract
/// §12); the `reason` label of `leadx_suppression_refusals_total`.
pub const SUPPRESSION_REFUSALS: [&str; 2] = ["suppressed", "list_stale"];

/// Label value of the shared handle for buyers past `limits::BUYERS_MAX`.
pub const OTHER_BUYER: &str = "_other";

/// All of leadx's metrics. One per process in production (`global()`);
/// tests make their own.
#[derive(Debug)]
pub struct Registry {
    requests: [[AtomicU64; STATUS_LABELS.len()]; Endpoint::ALL.len()],
    request_latency: [Latency; Endpoint::ALL.len()],
    auctions: [AtomicU64; AUCTION_OUTCOMES.len()],
    auction_latency: [Latency; AUCTION_OUTCOMES.len()],
    posts: [AtomicU64; POST_OUTCOMES.len()],
    post_latency: [Latency; POST_OUTCOMES.len()],
    gauges: Gauges,
    store_flush_latency: Latency,
    store_flush_ops: AtomicU64,
    late_answers: AtomicU64,
    shed: [AtomicU64; SHED_REASONS.len()],
    bad_signatures: [AtomicU64; SIGNATURE_FAILURES.len()],
    suppression_refusals: [AtomicU64; SUPPRESSION_REFUSALS.len()],
    auth_failures: [AtomicU64; AUTH_FAILURES.len()],
    /// Only touched at config load, render and snapshot — never per request.
    buyers: Mutex<BTreeMap<String, Arc<BuyerMetrics>>>,
    other_buyer: Arc<BuyerMetrics>,
    other_buyer_used: AtomicBool,
}

/// The process-wide registry.
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::new)
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            requests: Default::default(),
            request_latency: std::array::from_fn(|_| histogram::latency()),
            auctions: Default::default(),
            auction_latency: std::array::from_fn(|_| histogram::latency()),
            posts: Default::default(),
            post_latency: std::array::from_fn(|_| histogram::latency()),
            gauges: Gauges::default(),
            store_flush_latency: histogram::latency(),
            store_flush_ops: AtomicU64::new(0),
            late_answers: AtomicU64::new(0),
            shed: Default::default(),
            bad_signatures: Default::default(),
            suppression_refusals: Default::default(),
            auth_failures: Default::default(),
            buyers: Mutex::new(BTreeMap::new()),
            other_buyer: Arc::new(BuyerMetrics::default()),
            other_buyer_used: AtomicBool::new(false),
        }
    }

    /// Records one answered HTTP request.
    pub fn http_request(&self, endpoint: Endpoint, status: u16, latency_us: u64) {
        let e = endpoint as usize;
        self.requests[e][status_index(status)].fetch_add(1, Ordering::Relaxed);
        self.request_latency[e].observe(latency_us);
    }

    /// Records one finished ping auction.
    pub fn auction(&self, outcome: AuctionOutcome, latency_us: u64) {
        let o = outcome as usize;
        self.auctions[o].fetch_add(1, Ordering::Relaxed);
        self.auction_latency[o].observe(latency_us);
    }

    /// Records one finished post or direct post.
    pub fn post_outcome(&self, outcome: PostOutcome, latency_us: u64) {
        let o = outcome as usize;
        self.posts[o].fetch_add(1, Ordering::Relaxed);
        self.post_latency[o].observe(latency_us);
    }

    /// The handle of one buyer, created on first use. Call at config load
    /// and keep the handle. Past `limits::BUYERS_MAX` distinct ids (reloads
    /// can add ids; they are never forgotten) every new id shares one
    /// `_other` handle, so the exposition stays bounded.
    pub fn buyer(&self, buyer_id: &str) -> Arc<BuyerMetrics> {
        if buyer_id != OTHER_BUYER {
            let mut buyers = self.buyers.lock();
            if let Some(m) = buyers.get(buyer_id) {
                return Arc::clone(m);
            }
            if buyers.len() < limits::BUYERS_MAX {
                let m = Arc::new(BuyerMetrics::default());
                buyers.insert(buyer_id.to_owned(), Arc::clone(&m));
                return m;
            }
        }
        self.other_buyer_used.store(true, Ordering::Relaxed);
        Arc::clone(&self.other_buyer)
    }

    pub fn gauges(&self) -> &Gauges {
        &self.gauges
    }

    /// Records one store flush (group commit) and how many writes it made
    /// durable.
    pub fn store_flush(&self, latency_us: u64, batch_ops: u64) {
        self.store_flush_latency.observe(latency_us);
        self.store_flush_ops.fetch_add(batch_ops, Ordering::Relaxed);
    }

    /// Counts one buyer answer that arrived after its auction's deadline.
    pub fn late_answers(&self) {
        self.late_answers.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request shed for overload.
    pub fn shed(&self, reason: ShedReason) {
        self.shed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests shed so far for `reason`.
    pub fn shed_count(&self, reason: ShedReason) -> u64 {
        self.shed[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts one request refused for its signature; `kind` is one of
    /// [`SIGNATURE_FAILURES`] (anything else is not counted).
    pub fn bad_signature(&self, kind: &str) {
        if let Some(i) = SIGNATURE_FAILURES.iter().position(|k| *k == kind) {
            self.bad_signatures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests refused so far for their signature, with `kind`.
    pub fn bad_signature_count(&self, kind: &str) -> u64 {
        SIGNATURE_FAILURES
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.bad_signatures[i].load(Ordering::Relaxed))
    }

    /// Counts one failed authentication; `kind` is one of
    /// [`AUTH_FAILURES`] (anything else is not counted).
    pub fn auth_failure(&self, kind: &str) {
        if let Some(i) = AUTH_FAILURES.iter().position(|k| *k == kind) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Failed authentications so far of `kind`.
    pub fn auth_failure_count(&self, kind: &str) -> u64 {
        AUTH_FAILURES
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.auth_failures[i].load(Ordering::Relaxed))
    }

    /// Counts one post refused by suppression; `stale`: 503 `list_stale`,
    /// else 422 `suppressed`.
    pub fn suppression_refusal(&self, stale: bool) {
        self.suppression_refusals[usize::from(stale)].fetch_add(1, Ordering::Relaxed);
    }

    /// Posts refused so far by suppression (`stale` as above).
    pub fn suppression_refusal_count(&self, stale: bool) -> u64 {
        self.suppression_refusals[usize::from(stale)].load(Ordering::Relaxed)
    }

    /// The buyers to report, sorted by id, `_other` last when handed out.
    fn buyer_list(&self) -> Vec<(String, Arc<BuyerMetrics>)> {
        let mut list: Vec<_> = self
            .buyers
            .lock()
            .iter()
            .map(|(id, m)| (id.clone(), Arc::clone(m)))
            .collect();
        if self.other_buyer_used.load(Ordering::Relaxed) {
            list.push((OTHER_BUYER.to_owned(), Arc::clone(&self.other_buyer)));
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_codes_share_one_slot() {
        assert_eq!(STATUS_LABELS[status_index(422)], "422");
        assert_eq!(STATUS_LABELS[status_index(418)], "other");
        assert_eq!(STATUS_LABELS[status_index(599)], "other");
        for (i, code) in STATUS_CODES.iter().enumerate() {
            assert_eq!(STATUS_LABELS[i], code.to_string());
        }
    }

    #[test]
    fn buyer_handles_are_shared_per_id_and_bounded() {
        let r = Registry::new();
        let a = r.buyer("a");
        assert!(Arc::ptr_eq(&a, &r.buyer("a")));
        for i in 0..limits::BUYERS_MAX {
            r.buyer(&format!("b{i}"));
        }
        let over = r.buyer("one_too_many");
        assert!(Arc::ptr_eq(&over, &r.buyer("another")));
        assert!(Arc::ptr_eq(&over, &r.buyer(OTHER_BUYER)));
        // "a" was registered before the limit and keeps its own handle.
        assert!(Arc::ptr_eq(&a, &r.buyer("a")));
        let list = r.buyer_list();
        assert_eq!(list.len(), limits::BUYERS_MAX + 1);
        assert_eq!(list.last().unwrap().0, OTHER_BUYER);
    }

    #[test]
    fn in_flight_guard_restores_the_gauge() {
        let r = Registry::new();
        {
            let _g = InFlight::enter(&r.gauges().auctions_in_flight);
            assert_eq!(r.gauges().auctions_in_flight.load(Ordering::Relaxed), 1);
        }
        assert_eq!(r.gauges().auctions_in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn global_is_one_registry() {
        assert!(std::ptr::eq(global(), global()));
    }
}
