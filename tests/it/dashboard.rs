//! The live dashboard (contract §13, issue #11): the static page and its
//! headers, and the one admin JSON answer it polls. The browser test that
//! drives the page in headless Chromium is `dashboard_browser`.

use serde_json::json;

use crate::support::*;

#[test]
fn the_dashboard_page_is_served_without_auth_with_a_strict_policy() {
    let l = start("", "", "");
    for (path, media) in [
        ("/dashboard", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let r = request(l.addr, "GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(media),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let page = request(l.addr, "GET", "/dashboard", &[], b"");
    assert!(String::from_utf8_lossy(&page.body).contains("/dashboard.js"));
    let r = request(l.addr, "POST", "/dashboard", &[], b"");
    assert_eq!(r.status, 405);
}

#[test]
fn the_dashboard_data_needs_the_admin_token() {
    let l = start("", "", "");
    assert_eq!(get(l.addr, "/v1/admin/dashboard", KEY).status, 401);
    let r = request(l.addr, "GET", "/v1/admin/dashboard", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(get(l.addr, "/v1/admin/dashboard", ADMIN).status, 200);
}

#[test]
fn the_dashboard_data_has_figures_health_caps_and_the_newest_sale() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let b = mock(Act::NoBid, Act::Reject);
    let health = "[buyer.health]\nconcurrency_max = 8\nbreaker_failures = 5\nbreaker_cooldown_ms = 1000\n[buyer.caps]\ndaily = 20\n";
    let buyers = format!("{}{}", buyer_toml("a", &a, health), buyer_toml("b", &b, ""));
    let l = start("", "", &buyers);
    let r = post_json(
        l.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co"), "consent": consent()}),
    );
    assert_eq!(r.json()["status"], "sold");
    let lead_id = r.json()["lead_id"].as_str().unwrap().to_string();
    let d = get(l.addr, "/v1/admin/dashboard", ADMIN).json();
    assert!(d["generated_at"].is_string());
    let pub1 = &d["publishers"][0];
    assert_eq!(
        (pub1["id"].as_str(), pub1["pings"].as_u64()),
        (Some("pub1"), Some(1))
    );
    assert_eq!(pub1["sold"], 1);
    let a = &d["buyers"][0];
    assert_eq!(a["id"], "a");
    assert_eq!((a["bids"].as_u64(), a["sold"].as_u64()), (Some(1), Some(1)));
    assert_eq!(a["win_rate"], 1.0);
    assert_eq!(a["breaker"], "closed");
    assert_eq!(
        (a["in_flight"].as_u64(), a["concurrency_max"].as_u64()),
        (Some(0), Some(8))
    );
    assert_eq!(a["caps"]["daily"], json!({"used": 1, "limit": 20}));
    assert!(a["response_ms"]["p99"].is_number());
    let b = &d["buyers"][1];
    assert!(b["breaker"].is_null() && b["concurrency_max"].is_null());
    assert!(b["win_rate"].is_null(), "no bids, no win rate");
    let tx = &d["transactions"][0];
    assert_eq!(
        (tx["lead_id"].as_str(), tx["post_status"].as_str()),
        (Some(&*lead_id), Some("sold"))
    );
    assert_eq!(tx["buyer"], "a");
    let calls = tx["ping_calls"].as_array().unwrap();
    assert!(calls
        .iter()
        .any(|c| c["buyer"] == "b" && c["outcome"] == "no_bid"));
    assert_eq!(tx["post_calls"][0]["outcome"], "accepted");
}
