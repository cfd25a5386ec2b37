//! The operator's live dashboard (contract §13): `GET /dashboard` is one
//! static page (`dashboard/index.html`, its script and style served as
//! `/dashboard.js` and `/dashboard.css` so the page's CSP can forbid every
//! inline script and style), compiled into the binary with `include_str!` —
//! no build step. The page itself needs no credentials: it asks the
//! operator for the admin token, keeps it in `sessionStorage` and polls
//! `GET /v1/admin/dashboard` (admin token) once a second; that answer
//! (`data`) holds everything the page draws, so one poll is one request.
//!
//! The page inserts every string as text (`textContent`, never
//! `innerHTML`), so a buyer's reason or a publisher id cannot become markup.

use super::admin::{caps_usage, party, rate, transaction};
use super::ApiError;
use crate::exchange::Exchange;
use crate::http::server::Response;
use crate::json::Answer;
use crate::routing::breaker::State;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The page's policy: nothing inline, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// The transactions one dashboard answer carries, newest first.
pub const DASHBOARD_TRANSACTIONS: usize = 50;

/// The static page or one of its two files, with its security headers.
pub fn asset(path: &str) -> Response {
    let (content_type, body) = match path {
        "/dashboard.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/dashboard.css" => ("text/css; charset=utf-8", STYLE),
        _ => ("text/html; charset=utf-8", PAGE),
    };
    Response {
        status: 200,
        content_type,
        headers: vec![
            ("Content-Security-Policy", CSP.to_string()),
            ("X-Frame-Options", "DENY".to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
            ("Referrer-Policy", "no-referrer".to_string()),
            ("Cache-Control", "no-store".to_string()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

/// `GET /v1/admin/dashboard`: the live statistics of `/v1/admin/stats`
/// (every field of it, per publisher and per buyer), each buyer's health
/// (breaker state, calls in flight against `concurrency_max`) and
/// `win_rate` (sales per bid), and the newest transactions with their
/// per-buyer calls, as `/v1/admin/transactions` renders them.
pub fn data(ex: &Exchange) -> Result<Vec<u8>, ApiError> {
    let rt = ex.runtime();
    let live = ex.live_stats();
    let now = ex.now_ms();
    let mut publishers = b"[".to_vec();
    for (i, p) in rt.config.publishers.iter().enumerate() {
        if i > 0 {
            publishers.push(b',');
        }
        publishers.extend_from_slice(&party(&live.publisher(&p.id), Answer::new()).finish());
    }
    publishers.push(b']');
    let mut buyers = b"[".to_vec();
    for (i, brt) in rt.buyers.iter().enumerate() {
        let b = &brt.cfg;
        if i > 0 {
            buyers.push(b',');
        }
        let s = live.buyer(&b.id);
        let usage = brt.ledger.usage(now);
        let breaker = brt.health.breaker.as_ref().map(|br| br.state(now));
        let in_flight = brt.health.gate.as_ref().map(|g| u64::from(g.in_flight()));
        let win_rate = (s.bids > 0).then(|| s.sold as f64 / s.bids as f64);
        let o = party(&s, Answer::new())
            .raw("win_rate", &rate(win_rate))
            .raw("sold_today", usage.daily.to_string().as_bytes())
            .raw("caps", &caps_usage(&b.caps, &usage))
            .raw("breaker", breaker_json(breaker).as_bytes())
            .raw("in_flight", number_or_null(in_flight).as_bytes())
            .raw(
                "concurrency_max",
                number_or_null(b.health.concurrency_max.map(u64::from)).as_bytes(),
            );
        buyers.extend_from_slice(&o.finish());
    }
    buyers.push(b']');
    let mut txs = b"[".to_vec();
    for (i, (ping, lead)) in ex.transactions(DASHBOARD_TRANSACTIONS)?.iter().enumerate() {
        if i > 0 {
            txs.push(b',');
        }
        txs.extend_from_slice(&transaction(ping, lead.as_ref()));
    }
    txs.push(b']');
    Ok(Answer::new()
        .str("generated_at", &super::rfc3339(now))
        .raw("publishers", &publishers)
        .raw("buyers", &buyers)
        .raw("transactions", &txs)
        .finish())
}

/// `"closed"`, `"open"`, `"half_open"` (open, a trial call is due — what
/// `/metrics` calls 2), or `null` for a buyer without a breaker.
fn breaker_json(state: Option<State>) -> &'static str {
    match state {
        None => "null",
        Some(State::Closed) => "\"closed\"",
        Some(State::Open) => "\"open\"",
        Some(State::TrialDue) => "\"half_open\"",
    }
}

fn number_or_null(n: Option<u64>) -> String {
    n.map_or_else(|| "null".to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_has_nothing_inline() {
        for (name, text) in [("page", PAGE), ("script", SCRIPT), ("style", STYLE)] {
            assert!(text.len() < 60 * 1024, "{name} is {} bytes", text.len());
        }
        // The CSP forbids inline script and style: the page must not need any.
        assert!(!PAGE.contains("<script>") && !PAGE.contains("style="));
        assert!(PAGE.contains("src=\"/dashboard.js\""));
        assert!(PAGE.contains("href=\"/dashboard.css\""));
        // Data goes in as text, never as markup.
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("outerHTML"));
        assert!(!SCRIPT.contains("insertAdjacentHTML") && !SCRIPT.contains("document.write"));
    }

    #[test]
    fn breaker_states_are_words() {
        assert_eq!(breaker_json(None), "null");
        assert_eq!(breaker_json(Some(State::TrialDue)), "\"half_open\"");
        assert_eq!(number_or_null(Some(3)), "3");
    }
}
