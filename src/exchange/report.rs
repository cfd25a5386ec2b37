//! The one place per-lead numbers and events leave the exchange: the
//! Prometheus auction, post and per-buyer series, the business statistics
//! behind `/v1/admin/stats` (`metrics::LiveStats`) and the per-lead log
//! events (`logging::events`). The stages call these and nothing else.
//!
//! Here, and only here, the test-traffic rule is applied (contract §4):
//! test traffic counts toward no business statistic and no auction, post
//! or per-buyer series (those are live numbers; only the HTTP request
//! counters see every request), while its log events are still written,
//! marked `test`. `layering::only_report_gates_metrics_on_test_traffic`
//! keeps these calls out of every other file.

use crate::metrics::{
    self, AuctionOutcome, BuyerMetrics, LiveStats, PingResult, PostOutcome, PostResult,
};
use crate::records::{LeadRecord, LeadStatus, PingRecord};

/// An auction is over and recorded (a ping, or a direct post's ping stage).
pub(crate) fn auction_done(stats: &LiveStats, ping: &PingRecord) {
    if !ping.test {
        let outcome = if ping.bids.is_empty() {
            AuctionOutcome::NoBid
        } else {
            AuctionOutcome::Bid
        };
        metrics::global().auction(outcome, ping.auction_us);
        stats.auction(ping);
    }
    crate::logging::events::auction(ping);
}

/// A post stage is settled and its outcome durable; it took `latency_us`.
pub(crate) fn post_done(stats: &LiveStats, rec: &LeadRecord, latency_us: u64) {
    count_post(stats, rec, latency_us);
    crate::logging::events::post(rec);
}

/// A kept sale (`exchange::outcomes`) became durable: counted now that it
/// is a sale, its latency the time until the publisher could be told.
/// Its events were logged by `outcomes` when it was kept and recorded.
pub(crate) fn kept_sale_recorded(stats: &LiveStats, rec: &LeadRecord, latency_us: u64) {
    count_post(stats, rec, latency_us);
}

/// A sold lead was returned and the return is durable (contract §13):
/// its price and payout are reversed in the admin stats of its publisher
/// and buyer, and the buyer's `leadx_buyer_returns_total` counts it. Test
/// traffic is never returnable; the rule is applied here all the same.
pub(crate) fn lead_returned(rt: &crate::exchange::Runtime, stats: &LiveStats, rec: &LeadRecord) {
    if !rec.test {
        stats.returned(rec);
        if let Some(i) = rec.buyer.as_deref().and_then(|b| rt.buyer_index(b)) {
            rt.buyers[i].metrics.returned();
        }
    }
    crate::logging::events::returned(rec);
}

/// A post refused as a duplicate of a sold consumer. Only live traffic
/// has dedupe keys, so `test` is false on every path today.
pub(crate) fn post_duplicate(test: bool, latency_us: u64) {
    if !test {
        metrics::global().post_outcome(PostOutcome::Duplicate, latency_us);
    }
}

/// One buyer's ping call answered (or failed) after `latency_us`.
pub(crate) fn buyer_ping(buyer: &BuyerMetrics, test: bool, result: PingResult, latency_us: u64) {
    if !test {
        buyer.ping(result, latency_us);
    }
}

/// One buyer not called, and why (contract §10).
pub(crate) fn buyer_skip(buyer: &BuyerMetrics, test: bool, reason: crate::routing::Reason) {
    if !test {
        buyer.skip(reason);
    }
}

/// One buyer's post call answered (or failed) after `latency_us`.
pub(crate) fn buyer_post(buyer: &BuyerMetrics, test: bool, result: PostResult, latency_us: u64) {
    if !test {
        buyer.post(result, latency_us);
    }
}

fn count_post(stats: &LiveStats, rec: &LeadRecord, latency_us: u64) {
    if rec.test {
        return;
    }
    let outcome = if rec.status == LeadStatus::Sold {
        PostOutcome::Sold
    } else {
        PostOutcome::Unsold
    };
    metrics::global().post_outcome(outcome, latency_us);
    stats.post(rec, latency_us);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{CallOutcome, CallRecord, CallStage, StoredBid, RECORD_VERSION};

    fn ping(test: bool) -> PingRecord {
        PingRecord {
            v: RECORD_VERSION,
            ping_id: "P".into(),
            publisher: "report-pub".into(),
            vertical: "auto".into(),
            test,
            created_ms: 1,
            expires_ms: 2,
            lead_json: "{}".into(),
            bids: vec![StoredBid {
                buyer: "report-b1".into(),
                price: 1_000,
                payout: 800,
                priority: 0,
                buyer_ref: None,
            }],
            calls: vec![CallRecord {
                buyer: "report-b1".into(),
                stage: CallStage::Ping,
                outcome: CallOutcome::Bid,
                reason: None,
                latency_us: 3_000,
                price: Some(1_000),
            }],
            lead_id: None,
            direct: false,
            auction_us: 4_000,
        }
    }

    fn lead(test: bool) -> LeadRecord {
        LeadRecord {
            v: RECORD_VERSION,
            lead_id: "L".into(),
            ping_id: "P".into(),
            publisher: "report-pub".into(),
            vertical: "auto".into(),
            test,
            created_ms: 1,
            status: LeadStatus::Sold,
            reason: None,
            price: Some(1_000),
            payout: Some(800),
            buyer: Some("report-b1".into()),
            buyer_lead_id: None,
            sold_ms: Some(2),
            returned_ms: None,
            return_reason: None,
            post_calls: vec![CallRecord {
                buyer: "report-b1".into(),
                stage: CallStage::Post,
                outcome: CallOutcome::Accepted,
                reason: None,
                latency_us: 1,
                price: Some(1_000),
            }],
            pii_json: "{}".into(),
            pii_erased_ms: None,
            suppression_list: None,
        }
    }

    #[test]
    fn test_traffic_counts_toward_nothing() {
        let stats = LiveStats::new();
        let buyer = BuyerMetrics::default();
        auction_done(&stats, &ping(true));
        post_done(&stats, &lead(true), 1);
        kept_sale_recorded(&stats, &lead(true), 1);
        buyer_ping(&buyer, true, PingResult::NoBid, 1);
        buyer_post(&buyer, true, PostResult::Accepted, 1);
        assert_eq!(
            stats.publisher("report-pub"),
            LiveStats::new().publisher("report-pub")
        );
        assert_eq!(
            stats.buyer("report-b1").pings + stats.buyer("report-b1").posts,
            0
        );
        assert_eq!(
            format!("{buyer:?}"),
            format!("{:?}", BuyerMetrics::default())
        );
    }

    #[test]
    fn live_traffic_counts() {
        let stats = LiveStats::new();
        auction_done(&stats, &ping(false));
        post_done(&stats, &lead(false), 1);
        let p = stats.publisher("report-pub");
        assert_eq!((p.pings, p.bids, p.posts, p.sold), (1, 1, 1, 1));
        assert_eq!(stats.buyer("report-b1").sold, 1);
    }
}
