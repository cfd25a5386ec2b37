//! Routing controls (contract §10) as a pure core: who may be called for a
//! lead, and why not. No I/O, no locks, no wall clock — time comes in as
//! `now_ms` from the exchange's `Clock` — so every rule is tested with
//! plain values (`layering::the_routing_core_does_no_io_and_takes_no_lock`).
//!
//! - [`Reason`]: the one vocabulary a call record's reason is written in.
//! - [`filter`]: the vertical and `[buyer.filter]` checks.
//! - [`period`]: hour / day / week / month in a buyer's time zone, the
//!   periods `exchange::caps` counts in.
//! - [`schedule`]: whether `[buyer.schedule]` is open now.
//! - [`breaker`]: the lock-free circuit breaker of `[buyer.health]`.
//! - [`gate`]: the per-buyer concurrency gate (`concurrency_max`).
//! - [`budget`]: the time a call gets, or `no_time`.
//!
//! The live counters for caps and budgets are in `exchange::caps`: they
//! are state that outlives a reload and is counted from the store.

pub mod breaker;
pub mod budget;
pub mod filter;
pub mod gate;
pub mod period;
pub mod schedule;

use std::sync::OnceLock;

/// Why a buyer was or was not called, exactly as contract §10 words it.
/// Not called: `VerticalNotBought` … `NoTime`; called: the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    VerticalNotBought,
    FilterState,
    FilterZip,
    FilterAge,
    FilterIncome,
    FilterCredit,
    FilterHomeowner,
    FilterPublisher,
    FilterSubId,
    FilterAttribute,
    CapHourly,
    CapDaily,
    CapWeekly,
    CapMonthly,
    CapDailyBudget,
    CapWeeklyBudget,
    CapMonthlyBudget,
    Schedule,
    CircuitOpen,
    Concurrency,
    NoTime,
    Bid,
    NoBid,
    Timeout,
    /// A non-2xx answer: `http_<status>`.
    Http(u16),
    /// The answer did not parse in the stage's format (§10: "a parse
    /// failure"); leadx's word for it.
    ParseError,
    /// The call failed before any answer (connect, TLS, I/O); leadx's word.
    Error,
    Accepted,
    Rejected,
}

impl Reason {
    /// Every reason a buyer is *not called* for, in a fixed order: the
    /// label values of the skips-by-reason metric.
    pub const SKIPS: [Reason; 21] = [
        Reason::VerticalNotBought,
        Reason::FilterState,
        Reason::FilterZip,
        Reason::FilterAge,
        Reason::FilterIncome,
        Reason::FilterCredit,
        Reason::FilterHomeowner,
        Reason::FilterPublisher,
        Reason::FilterSubId,
        Reason::FilterAttribute,
        Reason::CapHourly,
        Reason::CapDaily,
        Reason::CapWeekly,
        Reason::CapMonthly,
        Reason::CapDailyBudget,
        Reason::CapWeeklyBudget,
        Reason::CapMonthlyBudget,
        Reason::Schedule,
        Reason::CircuitOpen,
        Reason::Concurrency,
        Reason::NoTime,
    ];

    /// The word stored in call records and shown by the admin views.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::VerticalNotBought => "vertical_not_bought",
            Reason::FilterState => "filter_state",
            Reason::FilterZip => "filter_zip",
            Reason::FilterAge => "filter_age",
            Reason::FilterIncome => "filter_income",
            Reason::FilterCredit => "filter_credit",
            Reason::FilterHomeowner => "filter_homeowner",
            Reason::FilterPublisher => "filter_publisher",
            Reason::FilterSubId => "filter_sub_id",
            Reason::FilterAttribute => "filter_attribute",
            Reason::CapHourly => "cap_hourly",
            Reason::CapDaily => "cap_daily",
            Reason::CapWeekly => "cap_weekly",
            Reason::CapMonthly => "cap_monthly",
            Reason::CapDailyBudget => "cap_daily_budget",
            Reason::CapWeeklyBudget => "cap_weekly_budget",
            Reason::CapMonthlyBudget => "cap_monthly_budget",
            Reason::Schedule => "schedule",
            Reason::CircuitOpen => "circuit_open",
            Reason::Concurrency => "concurrency",
            Reason::NoTime => "no_time",
            Reason::Bid => "bid",
            Reason::NoBid => "no_bid",
            Reason::Timeout => "timeout",
            Reason::Http(status) => http_word(status),
            Reason::ParseError => "parse_error",
            Reason::Error => "error",
            Reason::Accepted => "accepted",
            Reason::Rejected => "rejected",
        }
    }

    /// The reason a stored word names (admin views read records back).
    pub fn parse(word: &str) -> Option<Reason> {
        if let Some(digits) = word.strip_prefix("http_") {
            let ok = digits.len() == 3 && digits.bytes().all(|b| b.is_ascii_digit());
            return ok.then(|| Reason::Http(digits.parse().unwrap_or(0)));
        }
        let called = [
            Reason::Bid,
            Reason::NoBid,
            Reason::Timeout,
            Reason::ParseError,
            Reason::Error,
            Reason::Accepted,
            Reason::Rejected,
        ];
        Reason::SKIPS
            .into_iter()
            .chain(called)
            .find(|r| r.as_str() == word)
    }

    /// True for the reasons a buyer is not called for.
    pub fn is_skip(self) -> bool {
        Reason::SKIPS.contains(&self)
    }
}

/// Every word a *called* buyer's failed call can be recorded with — the one
/// list, printed with its meaning in docs/buyers.md ("Call reasons") and
/// pinned by `routing::every_failure_word_the_exchange_records_is_documented`
/// (tests/it). Contract §10 names `timeout`, `http_<status>` and "a parse
/// failure"; the rest are leadx's words for a parse failure or for the
/// breaker line's `error`.
///
/// Why connection failures keep their own words (`connect_error`, …) rather
/// than reading `error`: a call record has an `outcome` and a `reason`, and
/// their outcome already reads `error` (`CallOutcome::Error`, what the
/// breaker counts); the reason says which error, so an operator can tell a
/// refused port from DNS or TLS without reading logs, and the
/// `leadx_buyer_ping_errors_total{kind}` labels stay the same words.
pub const FAILURES: &[(&str, &str)] = &[
    ("timeout", "no complete answer before the call's deadline"),
    ("http_<status>", "an answer with a non-2xx status (http_503; rare ones as http_4xx, http_5xx, http_3xx, http_1xx)"),
    ("connect_error", "error: the TCP connection was refused, reset or unreachable"),
    ("resolve_error", "error: the buyer's host name did not resolve"),
    ("tls_error", "error: the TLS handshake failed (certificate, protocol)"),
    ("io_error", "error: the connection failed while the request was sent or the answer read"),
    ("pool_exhausted", "error: every connection to the buyer was busy until the deadline"),
    ("malformed_response", "parse failure: the HTTP answer itself was not valid HTTP/1.1"),
    ("response_too_large", "parse failure: a body over 64 KiB (also after gzip decoding)"),
    ("unsupported_content_encoding", "parse failure: a Content-Encoding other than gzip or identity"),
    ("bad_gzip", "parse failure: a gzip body that does not decode"),
    ("malformed_json", "parse failure: the body is not JSON (JSON buyers)"),
    ("malformed_xml", "parse failure: the body is not well-formed XML (XML and SOAP buyers)"),
    ("xml_doctype", "parse failure: the XML answer carries a DOCTYPE (refused: no entity declarations)"),
    ("xml_too_deep", "parse failure: the XML answer nests deeper than 32 elements"),
    ("not_an_object", "parse failure: a native answer that is JSON but not an object"),
    ("missing_status", "parse failure: a native answer without status"),
    ("bad_status_field", "parse failure: a status other than the protocol's words"),
    ("missing_price", "parse failure: a bid without a price"),
    ("bad_price", "parse failure: a price that is not an amount in USD"),
    ("negative_price", "parse failure: a price below zero"),
    ("bad_ref", "parse failure: a ref that is not a short string"),
    ("no_spec_stage", "a spec buyer called for a stage its spec does not describe (a bug; never expected)"),
    ("auction_deadline", "the call was still running when the auction answered"),
];

/// Whether `word` is in [`FAILURES`] (any `http_` + three digits or class
/// word counting as `http_<status>`).
pub fn is_failure_word(word: &str) -> bool {
    if let Some(rest) = word.strip_prefix("http_") {
        let class = matches!(rest, "1xx" | "3xx" | "4xx" | "5xx");
        return class || (rest.len() == 3 && rest.bytes().all(|b| b.is_ascii_digit()));
    }
    FAILURES.iter().any(|(w, _)| *w == word)
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `http_000` … `http_999`, built once so `as_str` stays `&'static`.
/// A status outside three digits (none reaches here: the client's codec
/// reads three) shows as `http_999`.
fn http_word(status: u16) -> &'static str {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    let words = WORDS.get_or_init(|| (0..1000).map(|s| format!("http_{s:03}")).collect());
    words[usize::from(status.min(999))].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_contracts_and_read_back() {
        let expected = [
            "vertical_not_bought",
            "filter_state",
            "filter_zip",
            "filter_age",
            "filter_income",
            "filter_credit",
            "filter_homeowner",
            "filter_publisher",
            "filter_sub_id",
            "filter_attribute",
            "cap_hourly",
            "cap_daily",
            "cap_weekly",
            "cap_monthly",
            "cap_daily_budget",
            "cap_weekly_budget",
            "cap_monthly_budget",
            "schedule",
            "circuit_open",
            "concurrency",
            "no_time",
        ];
        let words: Vec<&str> = Reason::SKIPS.iter().map(|r| r.as_str()).collect();
        assert_eq!(words, expected);
        for r in Reason::SKIPS {
            assert!(r.is_skip());
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        for (r, w) in [
            (Reason::Bid, "bid"),
            (Reason::NoBid, "no_bid"),
            (Reason::Timeout, "timeout"),
            (Reason::Http(503), "http_503"),
            (Reason::Http(404), "http_404"),
            (Reason::Accepted, "accepted"),
            (Reason::Rejected, "rejected"),
            (Reason::ParseError, "parse_error"),
            (Reason::Error, "error"),
        ] {
            assert_eq!(r.as_str(), w);
            assert_eq!(Reason::parse(w), Some(r));
            assert!(!r.is_skip());
        }
        assert_eq!(Reason::parse("http_5x3"), None);
        assert_eq!(Reason::parse("cap_reached"), None);
    }
}
