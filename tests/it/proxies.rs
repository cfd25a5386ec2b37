//! Contract §12 `server.trusted_proxies` and failed-auth accounting, over
//! real HTTP: pub1 may call only from 198.51.100.7, and the tests reach
//! leadx from 127.0.0.1 — a trusted proxy, or not.

use std::sync::Arc;

use leadx::clock::ManualClock;

use crate::privacy::start_with_text;
use crate::support::*;

/// leadx trusting `proxies` (a TOML list), pub1 allowed only 198.51.100.7.
fn start_behind(proxies: &str) -> Leadx {
    start_with_text(
        |text| {
            text.replacen(
                "workers = 2",
                &format!("workers = 2\ntrusted_proxies = {proxies}"),
                1,
            )
            .replacen(
                "revenue_share = 0.8",
                "revenue_share = 0.8\nallowed_ips = [\"198.51.100.7\"]",
                1,
            )
        },
        "",
        Arc::new(ManualClock::at(1_800_000_000_000)),
    )
}

/// GET a lead as pub1 with these X-Forwarded-For headers: 404 once past
/// the allow-list (no such lead), 403 when refused by it.
fn status_with(l: &Leadx, xff: &[&str]) -> u16 {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend(xff.iter().map(|v| ("X-Forwarded-For", *v)));
    request(l.addr, "GET", "/v1/leads/nope", &headers, b"").status
}

#[test]
fn allowed_ips_see_the_client_behind_a_trusted_proxy() {
    let l = start_behind("[\"127.0.0.1\"]");
    assert_eq!(status_with(&l, &[]), 403, "the proxy itself is not pub1");
    assert_ne!(status_with(&l, &["198.51.100.7"]), 403);
    assert_ne!(
        status_with(&l, &["203.0.113.1, 198.51.100.7"]),
        403,
        "a spoofed leftmost entry does not matter"
    );
    assert_eq!(
        status_with(&l, &["198.51.100.7, 203.0.113.1"]),
        403,
        "the rightmost untrusted hop is the client"
    );
    assert_ne!(status_with(&l, &["198.51.100.7", "127.0.0.1"]), 403);
    assert_eq!(
        status_with(&l, &["198.51.100.7, junk"]),
        403,
        "malformed: the last trusted hop (the peer) is the client"
    );
}

/// GET a lead as pub1 with these headers: 404 once past the allow-list,
/// 403 when refused by it.
fn status_with_headers(l: &Leadx, extra: &[(&str, &str)]) -> u16 {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    request(l.addr, "GET", "/v1/leads/nope", &headers, b"").status
}

#[test]
fn rfc7239_forwarded_is_read_behind_a_trusted_proxy_when_alone_or_agreeing() {
    let l = start_behind("[\"127.0.0.1\"]");
    let fwd = |v: &str| status_with_headers(&l, &[("Forwarded", v)]);
    assert_ne!(fwd("for=198.51.100.7;proto=https"), 403);
    assert_ne!(fwd("for=203.0.113.1, for=\"198.51.100.7:4711\""), 403);
    assert_eq!(fwd("for=198.51.100.7, for=203.0.113.1"), 403);
    assert_eq!(
        fwd("for=198.51.100.7, for=_hidden"),
        403,
        "obfuscated: stop"
    );
    assert_eq!(fwd("for=unknown"), 403);
    let both =
        |xff: &str, f: &str| status_with_headers(&l, &[("X-Forwarded-For", xff), ("Forwarded", f)]);
    assert_ne!(both("198.51.100.7", "for=198.51.100.7"), 403);
    assert_eq!(
        both("203.0.113.1", "for=198.51.100.7"),
        403,
        "disagreeing headers: neither is believed"
    );
    assert_eq!(both("198.51.100.7", "for=203.0.113.1"), 403);
}

#[test]
fn an_untrusted_peer_cannot_spoof_forwarded() {
    let l = start_behind("[\"10.0.0.0/8\"]");
    assert_eq!(
        status_with_headers(&l, &[("Forwarded", "for=198.51.100.7")]),
        403
    );
    assert_eq!(
        status_with_headers(
            &l,
            &[
                ("Forwarded", "for=198.51.100.7"),
                ("X-Forwarded-For", "198.51.100.7")
            ]
        ),
        403
    );
}

#[test]
fn an_untrusted_peer_cannot_spoof_x_forwarded_for() {
    let l = start_behind("[\"10.0.0.0/8\"]");
    assert_eq!(status_with(&l, &["198.51.100.7"]), 403);
}

#[test]
fn a_bad_trusted_proxies_entry_is_a_config_error_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = base_toml(dir.path(), "", "").replacen(
        "workers = 2",
        "workers = 2\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]",
        1,
    );
    let errors = leadx::config::parse(&text, &|_| None).unwrap_err();
    let text = format!("{errors:?}");
    assert!(text.contains("server.trusted_proxies[1]"), "{text}");
}

#[test]
fn failed_authentications_are_counted_by_kind() {
    let l = start_behind("[\"127.0.0.1\"]");
    let g = leadx::metrics::global();
    let (key0, ip0, admin0) = (
        g.auth_failure_count("publisher_key"),
        g.auth_failure_count("publisher_ip"),
        g.auth_failure_count("admin_token"),
    );
    for i in 0..1_000 {
        let bad = format!("Bearer not-a-key-{i}");
        let r = request(
            l.addr,
            "GET",
            "/v1/leads/x",
            &[("Authorization", &bad)],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(status_with(&l, &[]), 403);
    let r = request(
        l.addr,
        "GET",
        "/v1/admin/stats",
        &[("Authorization", "Bearer wrong-admin")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(g.auth_failure_count("publisher_key") >= key0 + 1_000);
    assert!(g.auth_failure_count("publisher_ip") > ip0);
    assert!(g.auth_failure_count("admin_token") > admin0);
    let auth = format!("Bearer {ADMIN}");
    let text = request(l.addr, "GET", "/metrics", &[("Authorization", &auth)], b"");
    let text = String::from_utf8(text.body).unwrap();
    assert!(
        text.contains("leadx_auth_failures_total{kind=\"publisher_key\"}"),
        "{text}"
    );
}
