//! The `/metrics` exposition: every family of the registry, in a fixed order,
//! each with its HELP and TYPE once and all its samples together.

use std::sync::atomic::{AtomicU64, Ordering};

use super::buyer::{BuyerReading, ERROR_KINDS, PING_RESULTS, POST_RESULTS, PRECONNECT_RESULTS};
use super::histogram::{HistogramSnapshot, CENTS_PER_USD, LATENCY_LE, PRICE_LE, US_PER_S};
use super::text::{regroup, write_header, write_histogram, write_sample};
use super::{
    Endpoint, Registry, AUCTION_OUTCOMES, AUTH_FAILURES, POST_OUTCOMES, SHED_REASONS,
    SIGNATURE_FAILURES, STATUS_LABELS, SUPPRESSION_REFUSALS,
};

impl Registry {
    /// Writes the whole exposition to `out`, then lets `extra` append
    /// families the registry does not own (pool sizes, caps remaining) —
    /// with [`super::write_gauge`]. Their lines are regrouped by family, so
    /// `extra` may write them in any order.
    pub fn render(&self, out: &mut Vec<u8>, extra: &dyn Fn(&mut Vec<u8>)) {
        write_header(
            out,
            "leadx_build_info",
            "Version of the running leadx.",
            "gauge",
        );
        write_sample(
            out,
            "leadx_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        self.render_http(out);
        self.render_outcomes(out);
        self.render_gauges(out);
        self.render_store(out);
        self.render_buyers(out);
        // The callback may interleave its families; regroup them so each
        // comes out whole, as the format requires.
        let mut extra_out = Vec::new();
        extra(&mut extra_out);
        regroup(&extra_out, out);
    }

    fn render_http(&self, out: &mut Vec<u8>) {
        let name = "leadx_http_requests_total";
        write_header(
            out,
            name,
            "HTTP requests answered, by endpoint and status.",
            "counter",
        );
        for e in Endpoint::ALL {
            for (s, status) in STATUS_LABELS.iter().enumerate() {
                // Statuses never answered are left out: 9 × 21 zero lines
                // would bury the few that matter.
                let n = self.requests[e as usize][s].load(Ordering::Relaxed);
                if n > 0 {
                    write_sample(out, name, &[("endpoint", e.label()), ("status", status)], n);
                }
            }
        }
        let name = "leadx_http_request_duration_seconds";
        write_header(
            out,
            name,
            "Time from request read to answer written.",
            "histogram",
        );
        for e in Endpoint::ALL {
            let snap = self.request_latency[e as usize].snapshot();
            write_latency(out, name, &[("endpoint", e.label())], &snap);
        }
    }

    fn render_outcomes(&self, out: &mut Vec<u8>) {
        let (c, h) = ("leadx_auctions_total", "leadx_auction_duration_seconds");
        write_counters(
            out,
            c,
            "Ping auctions run, by outcome.",
            "outcome",
            &AUCTION_OUTCOMES,
            &self.auctions,
        );
        write_header(out, h, "Ping auction duration, by outcome.", "histogram");
        for (o, outcome) in AUCTION_OUTCOMES.iter().enumerate() {
            write_latency(
                out,
                h,
                &[("outcome", outcome)],
                &self.auction_latency[o].snapshot(),
            );
        }
        let (c, h) = ("leadx_posts_total", "leadx_post_duration_seconds");
        write_counters(
            out,
            c,
            "Posts and direct posts, by outcome.",
            "outcome",
            &POST_OUTCOMES,
            &self.posts,
        );
        write_header(
            out,
            h,
            "Post duration including failover, by outcome.",
            "histogram",
        );
        for (o, outcome) in POST_OUTCOMES.iter().enumerate() {
            write_latency(
                out,
                h,
                &[("outcome", outcome)],
                &self.post_latency[o].snapshot(),
            );
        }
    }

    fn render_gauges(&self, out: &mut Vec<u8>) {
        let g = &self.gauges;
        let gauges = [
            (
                "leadx_auctions_in_flight",
                "Ping auctions running now.",
                &g.auctions_in_flight,
            ),
            (
                "leadx_posts_in_flight",
                "Posts running now.",
                &g.posts_in_flight,
            ),
            (
                "leadx_connections_open",
                "Client connections open now.",
                &g.connections_open,
            ),
        ];
        for (name, help, value) in gauges {
            write_header(out, name, help, "gauge");
            write_sample(out, name, &[], value.load(Ordering::Relaxed));
        }
        let name = "leadx_buyer_calls_in_flight";
        write_header(
            out,
            name,
            "Buyer calls holding a permit now, by stage.",
            "gauge",
        );
        for (stage, value) in [
            ("ping", &g.ping_calls_in_flight),
            ("post", &g.post_calls_in_flight),
        ] {
            write_sample(
                out,
                name,
                &[("stage", stage)],
                value.load(Ordering::Relaxed),
            );
        }
        write_counters(
            out,
            "leadx_shed_total",
            "Requests answered 503 overloaded at once instead of queued, by reason.",
            "reason",
            &SHED_REASONS,
            &self.shed,
        );
        write_counters(
            out,
            "leadx_bad_signatures_total",
            "Requests refused 401 bad_signature (contract §12), by kind.",
            "kind",
            &SIGNATURE_FAILURES,
            &self.bad_signatures,
        );
        write_counters(
            out,
            "leadx_suppression_refusals_total",
            "Posts refused by suppression lists (contract §12): 422 suppressed or 503 list_stale.",
            "reason",
            &SUPPRESSION_REFUSALS,
            &self.suppression_refusals,
        );
        write_counters(
            out,
            "leadx_auth_failures_total",
            "Failed authentications (contract §12), by the credential that failed.",
            "kind",
            &AUTH_FAILURES,
            &self.auth_failures,
        );
    }

    fn render_store(&self, out: &mut Vec<u8>) {
        let name = "leadx_store_flush_duration_seconds";
        write_header(
            out,
            name,
            "Store flushes (group commits) and their duration.",
            "histogram",
        );
        write_latency(out, name, &[], &self.store_flush_latency.snapshot());
        let name = "leadx_store_flushed_ops_total";
        write_header(
            out,
            name,
            "Writes made durable by store flushes.",
            "counter",
        );
        write_sample(out, name, &[], self.store_flush_ops.load(Ordering::Relaxed));
        let name = "leadx_late_answers_total";
        write_header(
            out,
            name,
            "Buyer answers that arrived after the auction deadline.",
            "counter",
        );
        write_sample(out, name, &[], self.late_answers.load(Ordering::Relaxed));
    }

    fn render_buyers(&self, out: &mut Vec<u8>) {
        let readings: Vec<(String, BuyerReading)> = self
            .buyer_list()
            .into_iter()
            .map(|(id, m)| (id, m.read()))
            .collect();
        let name = "leadx_buyer_pings_total";
        write_header(out, name, "Pings sent to a buyer, by result.", "counter");
        for (id, r) in &readings {
            for (i, result) in PING_RESULTS.iter().enumerate() {
                write_sample(out, name, &[("buyer", id), ("result", result)], r.pings[i]);
            }
        }
        let name = "leadx_buyer_ping_errors_total";
        write_header(
            out,
            name,
            "Failed pings to a buyer, by kind of failure.",
            "counter",
        );
        for (id, r) in &readings {
            for (i, kind) in ERROR_KINDS.iter().enumerate() {
                if r.errors[i] > 0 {
                    write_sample(out, name, &[("buyer", id), ("kind", kind)], r.errors[i]);
                }
            }
        }
        let name = "leadx_buyer_skips_total";
        write_header(
            out,
            name,
            "Times a buyer was not called (live traffic), by reason (contract §10).",
            "counter",
        );
        for (id, r) in &readings {
            for (i, reason) in crate::routing::Reason::SKIPS.iter().enumerate() {
                if r.skips[i] > 0 {
                    let labels = [("buyer", id.as_str()), ("reason", reason.as_str())];
                    write_sample(out, name, &labels, r.skips[i]);
                }
            }
        }
        let name = "leadx_buyer_ping_duration_seconds";
        write_header(out, name, "Buyer ping call duration.", "histogram");
        for (id, r) in &readings {
            write_latency(out, name, &[("buyer", id)], &r.ping_latency);
        }
        let name = "leadx_buyer_bid_price_usd";
        write_header(
            out,
            name,
            "Bid prices offered by a buyer, in USD.",
            "histogram",
        );
        for (id, r) in &readings {
            write_histogram(
                out,
                name,
                &[("buyer", id)],
                &r.bid_prices,
                &PRICE_LE,
                CENTS_PER_USD,
            );
        }
        let name = "leadx_buyer_posts_total";
        write_header(out, name, "Posts sent to a buyer, by result.", "counter");
        for (id, r) in &readings {
            for (i, result) in POST_RESULTS.iter().enumerate() {
                write_sample(out, name, &[("buyer", id), ("result", result)], r.posts[i]);
            }
        }
        let name = "leadx_buyer_post_duration_seconds";
        write_header(out, name, "Buyer post call duration.", "histogram");
        for (id, r) in &readings {
            write_latency(out, name, &[("buyer", id)], &r.post_latency);
        }
        let name = "leadx_buyer_preconnect_total";
        let help = "Buyer connections warmed off the lead's clock (start, reload), and hosts whose warming failed.";
        write_header(out, name, help, "counter");
        for (id, r) in &readings {
            for (i, result) in PRECONNECT_RESULTS.iter().enumerate() {
                write_sample(
                    out,
                    name,
                    &[("buyer", id), ("result", result)],
                    r.preconnects[i],
                );
            }
        }
        let name = "leadx_buyer_returns_total";
        write_header(
            out,
            name,
            "Sold leads a buyer returned (contract §13).",
            "counter",
        );
        for (id, r) in &readings {
            write_sample(out, name, &[("buyer", id)], r.returns);
        }
        let name = "leadx_buyer_return_rate";
        write_header(
            out,
            name,
            "Returns / accepted posts of a buyer since start (0 before its first sale).",
            "gauge",
        );
        for (id, r) in &readings {
            let rate = match r.posts[0] {
                0 => 0.0,
                sold => r.returns as f64 / sold as f64,
            };
            write_sample(out, name, &[("buyer", id)], rate);
        }
    }
}

fn write_latency(
    out: &mut Vec<u8>,
    name: &str,
    labels: &[(&str, &str)],
    snap: &HistogramSnapshot<13>,
) {
    write_histogram(out, name, labels, snap, &LATENCY_LE, US_PER_S);
}

fn write_counters(
    out: &mut Vec<u8>,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
    counters: &[AtomicU64],
) {
    write_header(out, name, help, "counter");
    for (value, n) in values.iter().zip(counters) {
        write_sample(out, name, &[(label, value)], n.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn render(r: &Registry) -> String {
        let mut out = Vec::new();
        r.render(&mut out, &|_| {});
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn recorded_events_appear_in_the_exposition() {
        let r = Registry::new();
        r.http_request(Endpoint::Ping, 200, 3_000);
        r.http_request(Endpoint::Ping, 422, 500);
        r.auction(AuctionOutcome::NoBid, 120_000);
        r.post_outcome(PostOutcome::Duplicate, 900);
        r.late_answers();
        r.store_flush(2_500, 7);
        r.gauges().connections_open.store(3, Ordering::Relaxed);
        r.gauges().ping_calls_in_flight.store(5, Ordering::Relaxed);
        r.shed(ShedReason::PostCalls);
        let t = render(&r);
        assert!(
            t.contains("leadx_buyer_calls_in_flight{stage=\"ping\"} 5\n"),
            "{t}"
        );
        assert!(t.contains("leadx_buyer_calls_in_flight{stage=\"post\"} 0\n"));
        assert!(t.contains("leadx_shed_total{reason=\"post_calls\"} 1\n"));
        assert!(t.contains("leadx_shed_total{reason=\"deadline\"} 0\n"));
        assert!(
            t.contains("leadx_http_requests_total{endpoint=\"ping\",status=\"200\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("leadx_http_requests_total{endpoint=\"ping\",status=\"422\"} 1\n"));
        assert!(!t.contains("status=\"500\""), "zero statuses are left out");
        assert!(t.contains("leadx_http_request_duration_seconds_count{endpoint=\"ping\"} 2\n"));
        assert!(t.contains("leadx_auctions_total{outcome=\"no_bid\"} 1\n"));
        assert!(t.contains("leadx_auctions_total{outcome=\"bid\"} 0\n"));
        assert!(t.contains("leadx_posts_total{outcome=\"duplicate\"} 1\n"));
        assert!(t.contains("leadx_late_answers_total 1\n"));
        assert!(t.contains("leadx_store_flushed_ops_total 7\n"));
        assert!(t.contains("leadx_store_flush_duration_seconds_count 1\n"));
        assert!(t.contains("leadx_connections_open 3\n"));
    }

    #[test]
    fn buyer_series_carry_the_escaped_id_and_usd_prices() {
        let r = Registry::new();
        let b = r.buyer("acme \"west\"");
        b.ping(PingResult::Bid { price_cents: 1_250 }, 40_000);
        b.ping(PingResult::Error("connect_error"), 1_000);
        b.post(PostResult::Accepted, 80_000);
        let t = render(&r);
        let id = "buyer=\"acme \\\"west\\\"\"";
        assert!(
            t.contains(&format!(
                "leadx_buyer_pings_total{{{id},result=\"bid\"}} 1\n"
            )),
            "{t}"
        );
        assert!(t.contains(&format!(
            "leadx_buyer_ping_errors_total{{{id},kind=\"connect_error\"}} 1\n"
        )));
        assert!(t.contains(&format!(
            "leadx_buyer_bid_price_usd_bucket{{{id},le=\"10\"}} 0\n"
        )));
        assert!(t.contains(&format!(
            "leadx_buyer_bid_price_usd_bucket{{{id},le=\"20\"}} 1\n"
        )));
        assert!(t.contains(&format!("leadx_buyer_bid_price_usd_sum{{{id}}} 12.5\n")));
        assert!(t.contains(&format!(
            "leadx_buyer_posts_total{{{id},result=\"accepted\"}} 1\n"
        )));
    }

    #[test]
    fn extra_families_come_last() {
        let r = Registry::new();
        let mut out = Vec::new();
        r.render(&mut out, &|out| {
            write_gauge(
                out,
                "leadx_buyer_cap_remaining",
                "Leads left today.",
                &[("buyer", "b1")],
                42.0,
            );
        });
        let t = String::from_utf8(out).unwrap();
        assert!(
            t.ends_with("leadx_buyer_cap_remaining{buyer=\"b1\"} 42\n"),
            "{t}"
        );
        assert_eq!(
            t.matches("# TYPE leadx_buyer_cap_remaining gauge\n")
                .count(),
            1
        );
    }
}
