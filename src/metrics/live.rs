//! Live business statistics per publisher and per buyer, for
//! `/v1/admin/stats`: pings, bids, posts, sales, money and response times.
//!
//! Why apart from the Prometheus families: these are *business* numbers, and
//! test traffic (`"test": true`) counts toward none of them (contract §4),
//! while `/metrics` is operational telemetry that sees every call a buyer
//! answered, test or not (test calls load the buyers and leadx alike).
//!
//! They are recorded from the records the exchange already builds — the
//! ping record once its auction is over, the lead record once its post is
//! settled — so the counting needs no hook inside the auction or the sale,
//! and a count can never disagree with what was stored. Recording takes one
//! shared read lock per event (a map lookup per party, never held across a
//! yield), relaxed atomic adds and a short mutex per latency histogram
//! (`metrics::quantiles`); a party seen for the first time takes the write
//! lock once. Every map is bounded: past its limit new ids share one
//! `_other` entry, as buyer metrics do.
//!
//! Definitions (every ratio is `None` while its denominator is 0):
//! - bid rate = bids / pings
//! - fill rate = sold / pings
//! - post success rate = sold / posts
//! - margin = revenue − payout (what the exchange keeps), in cents
//! - return rate = returns / sold
//! - net revenue = revenue − returned revenue; net payout = payout −
//!   returned payout; net margin = net revenue − net payout (contract §13:
//!   a return reverses its price and payout). `revenue`, `payout` and
//!   `margin` stay gross, as before returns existed.
//!
//! Returns count when they happen: a return of a lead sold before this
//! process started subtracts from this run's numbers, so a net figure can
//! be negative after a restart (the CSV export is the reconciliation).
//!
//! For a publisher: `pings` are auctions run on its traffic (pings and the
//! ping stage of direct posts), `bids` the auctions that got at least one
//! bid, `posts` the settled posts (sold or unsold, direct posts included),
//! `sold` the sales, `revenue` what buyers paid for them and `payout` what
//! the publisher earned; response time is the auction (ping answer) time and
//! the post stage time; `timeouts` the buyer calls that timed out on its
//! traffic. For a buyer: `pings` are the auctions it was offered (called, or
//! bidding its fixed price without a call), `bids` its bids (fixed price
//! included), `posts` the leads posted to it, `sold` the ones it accepted,
//! `revenue` its price for them and `payout` the publishers' share; response
//! time is its answer time to pings and to posts (fixed-price bids have no
//! call and are not timed); `timeouts` its ping and post calls that timed out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::sync::RwLock;

use super::quantiles::Quantiles;
use super::snapshot::LatencySummary;
use crate::money::Cents;
use crate::records::{CallOutcome, CallStage, LeadRecord, LeadStatus, PingRecord};

/// Label of the shared entry for parties past a map's bound.
pub const OTHER_PARTY: &str = "_other";

/// The counters of one publisher or one buyer.
#[derive(Debug)]
struct Counters {
    pings: AtomicU64,
    bids: AtomicU64,
    timeouts: AtomicU64,
    posts: AtomicU64,
    sold: AtomicU64,
    revenue_cents: AtomicU64,
    payout_cents: AtomicU64,
    returns: AtomicU64,
    returned_revenue_cents: AtomicU64,
    returned_payout_cents: AtomicU64,
    ping_latency: Quantiles,
    post_latency: Quantiles,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            pings: AtomicU64::new(0),
            bids: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            sold: AtomicU64::new(0),
            revenue_cents: AtomicU64::new(0),
            payout_cents: AtomicU64::new(0),
            returns: AtomicU64::new(0),
            returned_revenue_cents: AtomicU64::new(0),
            returned_payout_cents: AtomicU64::new(0),
            ping_latency: Quantiles::default(),
            post_latency: Quantiles::default(),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// One party's numbers read at one moment, with the ratios derived.
#[derive(Debug, Clone, PartialEq)]
pub struct PartyStats {
    pub id: String,
    pub pings: u64,
    pub bids: u64,
    pub posts: u64,
    pub sold: u64,
    pub timeouts: u64,
    pub revenue_cents: Cents,
    pub payout_cents: Cents,
    /// Sold leads returned (contract §13), and their price and payout.
    pub returns: u64,
    pub returned_revenue_cents: Cents,
    pub returned_payout_cents: Cents,
    /// Ping answer time (a publisher's auctions, a buyer's ping calls), µs.
    pub ping_latency: LatencySummary,
    /// Post time (a publisher's post stages, a buyer's post calls), µs.
    pub post_latency: LatencySummary,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl PartyStats {
    /// bids / pings.
    pub fn bid_rate(&self) -> Option<f64> {
        ratio(self.bids, self.pings)
    }
    /// sold / pings.
    pub fn fill_rate(&self) -> Option<f64> {
        ratio(self.sold, self.pings)
    }
    /// sold / posts.
    pub fn post_success_rate(&self) -> Option<f64> {
        ratio(self.sold, self.posts)
    }
    /// revenue − payout, in cents. Negative only if a payout ever exceeded
    /// its price, which `money::payout` rules out; signed so that it shows.
    pub fn margin_cents(&self) -> i64 {
        self.revenue_cents as i64 - self.payout_cents as i64
    }
    /// returns / sold.
    pub fn return_rate(&self) -> Option<f64> {
        ratio(self.returns, self.sold)
    }
    /// revenue − returned revenue, in cents.
    pub fn net_revenue_cents(&self) -> i64 {
        self.revenue_cents as i64 - self.returned_revenue_cents as i64
    }
    /// payout − returned payout, in cents.
    pub fn net_payout_cents(&self) -> i64 {
        self.payout_cents as i64 - self.returned_payout_cents as i64
    }
    /// net revenue − net payout, in cents.
    pub fn net_margin_cents(&self) -> i64 {
        self.net_revenue_cents() - self.net_payout_cents()
    }
}

/// A bounded map of parties to their counters.
#[derive(Debug)]
struct Parties {
    map: RwLock<HashMap<String, Arc<Counters>>>,
    max: usize,
}

impl Parties {
    fn new(max: usize) -> Self {
        Parties {
            map: RwLock::new(HashMap::new()),
            max,
        }
    }

    fn handle(&self, id: &str) -> Arc<Counters> {
        if let Some(c) = self.map.read().get(id) {
            return Arc::clone(c);
        }
        let mut map = self.map.write();
        let key = if map.len() < self.max || map.contains_key(id) {
            id
        } else {
            OTHER_PARTY
        };
        Arc::clone(map.entry(key.to_owned()).or_default())
    }

    fn read(&self, id: &str) -> PartyStats {
        let c = self.map.read().get(id).cloned().unwrap_or_default();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PartyStats {
            id: id.to_owned(),
            pings: load(&c.pings),
            bids: load(&c.bids),
            posts: load(&c.posts),
            sold: load(&c.sold),
            timeouts: load(&c.timeouts),
            revenue_cents: load(&c.revenue_cents),
            payout_cents: load(&c.payout_cents),
            returns: load(&c.returns),
            returned_revenue_cents: load(&c.returned_revenue_cents),
            returned_payout_cents: load(&c.returned_payout_cents),
            ping_latency: c.ping_latency.summary(),
            post_latency: c.post_latency.summary(),
        }
    }
}

/// Live statistics of every publisher and buyer since the process started.
#[derive(Debug)]
pub struct LiveStats {
    publishers: Parties,
    buyers: Parties,
}

impl Default for LiveStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveStats {
    pub fn new() -> Self {
        // Reloads can add ids; the bounds keep the maps finite whatever
        // happens, with room for a full config twice over.
        LiveStats {
            publishers: Parties::new(2 * crate::limits::PUBLISHERS_MAX),
            buyers: Parties::new(2 * crate::limits::BUYERS_MAX),
        }
    }

    /// Records a finished auction (a ping, or a direct post's ping stage)
    /// of live traffic: `exchange::report` applies the test-traffic rule.
    pub(crate) fn auction(&self, ping: &PingRecord) {
        let p = self.publishers.handle(&ping.publisher);
        add(&p.pings, 1);
        add(&p.bids, u64::from(!ping.bids.is_empty()));
        p.ping_latency.observe(ping.auction_us);
        for call in ping.calls.iter().filter(|c| c.stage == CallStage::Ping) {
            let b = self.buyers.handle(&call.buyer);
            add(&b.pings, 1);
            match call.outcome {
                CallOutcome::Bid => add(&b.bids, 1),
                // Bid without a call: nothing to time.
                CallOutcome::FixedPrice => {
                    add(&b.bids, 1);
                    continue;
                }
                CallOutcome::Timeout => {
                    add(&b.timeouts, 1);
                    add(&p.timeouts, 1);
                }
                _ => {}
            }
            b.ping_latency.observe(call.latency_us);
        }
    }

    /// Records a settled post (or direct post) of live traffic that took
    /// `latency_us` (`exchange::report` applies the test-traffic rule).
    pub(crate) fn post(&self, rec: &LeadRecord, latency_us: u64) {
        let p = self.publishers.handle(&rec.publisher);
        add(&p.posts, 1);
        p.post_latency.observe(latency_us);
        let sold = rec.status == LeadStatus::Sold;
        let (price, payout) = (rec.price.unwrap_or(0), rec.payout.unwrap_or(0));
        if sold {
            add(&p.sold, 1);
            add(&p.revenue_cents, price);
            add(&p.payout_cents, payout);
        }
        // Skipped bidders (cap reached, buyer removed) were not posted to.
        for call in rec
            .post_calls
            .iter()
            .filter(|c| c.stage == CallStage::Post && c.outcome != CallOutcome::Skipped)
        {
            let b = self.buyers.handle(&call.buyer);
            add(&b.posts, 1);
            b.post_latency.observe(call.latency_us);
            if call.reason.as_deref() == Some("timeout") {
                add(&b.timeouts, 1);
                add(&p.timeouts, 1);
            }
            if sold && call.outcome == CallOutcome::Accepted {
                add(&b.sold, 1);
                add(&b.revenue_cents, price);
                add(&b.payout_cents, payout);
            }
        }
    }

    /// Records a return (contract §13) of a live sale: its publisher's and
    /// its buyer's price and payout are reversed.
    pub(crate) fn returned(&self, rec: &LeadRecord) {
        let (price, payout) = (rec.price.unwrap_or(0), rec.payout.unwrap_or(0));
        let p = self.publishers.handle(&rec.publisher);
        let b = rec.buyer.as_deref().map(|id| self.buyers.handle(id));
        for c in std::iter::once(&p).chain(b.as_ref()) {
            add(&c.returns, 1);
            add(&c.returned_revenue_cents, price);
            add(&c.returned_payout_cents, payout);
        }
    }

    /// A publisher's numbers (all zero if it has had no live traffic).
    pub fn publisher(&self, id: &str) -> PartyStats {
        self.publishers.read(id)
    }

    /// A buyer's numbers (all zero if it has had no live traffic).
    pub fn buyer(&self, id: &str) -> PartyStats {
        self.buyers.read(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{CallRecord, StoredBid, RECORD_VERSION};

    fn call(
        buyer: &str,
        stage: &str,
        outcome: &str,
        reason: Option<&str>,
        latency_us: u64,
    ) -> CallRecord {
        CallRecord {
            buyer: buyer.into(),
            stage: serde_json::from_str(&format!("\"{stage}\"")).unwrap(),
            outcome: serde_json::from_str(&format!("\"{outcome}\"")).unwrap(),
            reason: reason.map(Into::into),
            latency_us,
            price: None,
        }
    }

    fn ping(test: bool, bids: usize, calls: Vec<CallRecord>) -> PingRecord {
        let bid = StoredBid {
            buyer: "b1".into(),
            price: 1_000,
            payout: 800,
            priority: 0,
            buyer_ref: None,
        };
        PingRecord {
            v: RECORD_VERSION,
            ping_id: "p".into(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test,
            created_ms: 0,
            expires_ms: 0,
            lead_json: "{}".into(),
            bids: vec![bid; bids],
            calls,
            lead_id: None,
            direct: false,
            auction_us: 4_000,
        }
    }

    fn lead(test: bool, sold: bool, calls: Vec<CallRecord>) -> LeadRecord {
        LeadRecord {
            v: RECORD_VERSION,
            lead_id: "l".into(),
            ping_id: "p".into(),
            publisher: "pub1".into(),
            vertical: "auto".into(),
            test,
            created_ms: 0,
            status: if sold {
                LeadStatus::Sold
            } else {
                LeadStatus::Unsold
            },
            reason: None,
            price: sold.then_some(1_000),
            payout: sold.then_some(800),
            buyer: sold.then(|| "b1".into()),
            buyer_lead_id: None,
            sold_ms: None,
            returned_ms: None,
            return_reason: None,
            post_calls: calls,
            pii_json: String::new(),
            pii_erased_ms: None,
            suppression_list: None,
        }
    }

    #[test]
    fn auctions_count_per_publisher_and_buyer() {
        let s = LiveStats::new();
        let calls = vec![
            call("b1", "ping", "bid", None, 3_000),
            call("b2", "ping", "timeout", Some("timeout"), 150_000),
            call("d1", "ping", "fixed_price", None, 0),
            call("b3", "skip", "ineligible", Some("filter"), 0),
        ];
        s.auction(&ping(false, 2, calls));
        s.auction(&ping(
            false,
            0,
            vec![call("b1", "ping", "no_bid", None, 1_000)],
        ));
        let p = s.publisher("pub1");
        assert_eq!((p.pings, p.bids, p.timeouts), (2, 1, 1));
        assert_eq!(p.bid_rate(), Some(0.5));
        assert_eq!(p.ping_latency.count, 2);
        let b1 = s.buyer("b1");
        assert_eq!((b1.pings, b1.bids, b1.ping_latency.count), (2, 1, 2));
        let d1 = s.buyer("d1");
        assert_eq!(
            (d1.pings, d1.bids, d1.ping_latency.count),
            (1, 1, 0),
            "a fixed price is a bid without a call"
        );
        assert_eq!(s.buyer("b2").timeouts, 1);
        assert_eq!(
            s.buyer("b3").pings,
            0,
            "an ineligible buyer was not offered the lead"
        );
    }

    #[test]
    fn posts_count_sales_money_and_failover() {
        let s = LiveStats::new();
        let calls = vec![
            call("b2", "post", "skipped", Some("cap_daily"), 0),
            call("b3", "post", "failed", Some("timeout"), 900_000),
            call("b1", "post", "accepted", None, 20_000),
        ];
        s.auction(&ping(
            false,
            1,
            vec![call("b1", "ping", "bid", None, 3_000)],
        ));
        s.post(&lead(false, true, calls), 950_000);
        s.post(
            &lead(
                false,
                false,
                vec![call("b1", "post", "rejected", Some("not today"), 5_000)],
            ),
            6_000,
        );
        let p = s.publisher("pub1");
        assert_eq!(
            (
                p.posts,
                p.sold,
                p.revenue_cents,
                p.payout_cents,
                p.margin_cents()
            ),
            (2, 1, 1_000, 800, 200)
        );
        assert_eq!(
            (p.post_success_rate(), p.fill_rate()),
            (Some(0.5), Some(1.0))
        );
        assert_eq!(p.timeouts, 1);
        let b1 = s.buyer("b1");
        assert_eq!(
            (b1.posts, b1.sold, b1.revenue_cents, b1.payout_cents),
            (2, 1, 1_000, 800)
        );
        assert_eq!(b1.post_latency.count, 2);
        assert_eq!(
            (
                s.buyer("b3").posts,
                s.buyer("b3").sold,
                s.buyer("b3").timeouts
            ),
            (1, 0, 1)
        );
        assert_eq!(s.buyer("b2").posts, 0, "a skipped bidder was not posted to");
    }

    #[test]
    fn returns_reverse_price_and_payout_for_publisher_and_buyer() {
        let s = LiveStats::new();
        let accepted = || vec![call("b1", "post", "accepted", None, 20_000)];
        s.post(&lead(false, true, accepted()), 1_000);
        s.post(&lead(false, true, accepted()), 1_000);
        let mut back = lead(false, true, accepted());
        back.status = LeadStatus::Returned;
        s.returned(&back);
        for party in [s.publisher("pub1"), s.buyer("b1")] {
            assert_eq!(
                (
                    party.sold,
                    party.returns,
                    party.return_rate(),
                    party.revenue_cents,
                    party.returned_revenue_cents,
                    party.returned_payout_cents,
                ),
                (2, 1, Some(0.5), 2_000, 1_000, 800),
                "{}",
                party.id
            );
            assert_eq!(
                (
                    party.net_revenue_cents(),
                    party.net_payout_cents(),
                    party.net_margin_cents()
                ),
                (1_000, 800, 200)
            );
        }
        assert_eq!(s.buyer("b9").return_rate(), None);
    }

    #[test]
    fn maps_are_bounded() {
        let parties = Parties::new(2);
        parties.handle("a");
        parties.handle("b");
        let c = parties.handle("c");
        assert!(Arc::ptr_eq(&c, &parties.handle("d")));
        assert!(Arc::ptr_eq(&c, &parties.handle(OTHER_PARTY)));
        assert!(!Arc::ptr_eq(&c, &parties.handle("a")));
        assert_eq!(parties.map.read().len(), 3);
    }
}
