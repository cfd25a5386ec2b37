//! Consent evidence per vertical (issue #10) through real HTTP: a post or
//! direct post whose consent fails a check of its vertical is 422
//! `invalid_field` naming the consent field, and no buyer is called; the
//! age rule runs on the exchange clock (a `ManualClock` here).

use std::sync::Arc;

use serde_json::json;

use crate::support::*;

const CERT: &str = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567";
const LEADID: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
/// 2026-11-27T12:00:00Z: `support::consent()`'s `captured_at`.
const CAPTURED_MS: u64 = 1_795_780_800_000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;
const RULES: &str = "require_consent = true\nconsent_trustedform = true\nconsent_jornaya = true\nconsent_max_age_days = 30";

fn evidence(cert: &str, leadid: &str) -> serde_json::Value {
    let mut c = consent();
    c["trustedform_cert_url"] = cert.into();
    c["jornaya_leadid"] = leadid.into();
    c
}

fn post_with(l: &Leadx, consent: serde_json::Value, phone: &str) -> Reply {
    let id = ping(l)["ping_id"].as_str().unwrap().to_string();
    let lead = full_lead(phone, "ann@example.com");
    post_json(
        l.addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": id, "lead": lead, "consent": consent}),
    )
}

fn direct_with(l: &Leadx, consent: serde_json::Value, phone: &str) -> Reply {
    let lead = full_lead(phone, "ann@example.com");
    post_json(
        l.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": lead, "consent": consent}),
    )
}

fn refused(r: &Reply) -> (u16, String, String) {
    (r.status, r.code(), r.field())
}

fn invalid(field: &str) -> (u16, String, String) {
    (422, "invalid_field".into(), field.into())
}

#[test]
fn post_and_direct_post_refuse_bad_evidence_before_any_buyer() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let flat = mock(Act::NoBid, Act::Accept("F"));
    let clock = Arc::new(leadx::clock::ManualClock::at(CAPTURED_MS + DAY_MS));
    let buyers = buyer_toml("a", &a, "") + &direct_buyer_toml("flat", &flat, "4.00", "");
    let l = start_with_clock("", RULES, &buyers, clock.clone());
    let cases = [
        (consent(), "consent.trustedform_cert_url"),
        (
            evidence("https://cert.trustedform.com/xyz", LEADID),
            "consent.trustedform_cert_url",
        ),
        (evidence(CERT, "not-a-leadid"), "consent.jornaya_leadid"),
    ];
    for (i, (c, field)) in cases.into_iter().enumerate() {
        let phone = format!("555234567{i}");
        assert_eq!(refused(&post_with(&l, c.clone(), &phone)), invalid(field));
        assert_eq!(refused(&direct_with(&l, c, &phone)), invalid(field));
    }
    assert_eq!(
        (a.buyer.posts(), flat.buyer.posts()),
        (0, 0),
        "no buyer saw a refused lead"
    );
    let r = post_with(&l, evidence(CERT, LEADID), "5552345680");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("sold")));
    let r = direct_with(&l, evidence(CERT, &LEADID.to_uppercase()), "5552345681");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("sold")));
}

#[test]
fn consent_age_runs_on_the_exchange_clock() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let clock = Arc::new(leadx::clock::ManualClock::at(CAPTURED_MS + 30 * DAY_MS));
    let l = start_with_clock("", RULES, &buyer_toml("a", &a, ""), clock.clone());
    let r = post_with(&l, evidence(CERT, LEADID), "5552345670");
    assert_eq!(r.status, 200, "exactly 30 days old is fine");
    clock.advance_ms(1);
    let r = post_with(&l, evidence(CERT, LEADID), "5552345671");
    assert_eq!(refused(&r), invalid("consent.captured_at"));
    clock.set_ms(CAPTURED_MS - 5 * 60 * 1000 - 1);
    let r = direct_with(&l, evidence(CERT, LEADID), "5552345672");
    assert_eq!(
        refused(&r),
        invalid("consent.captured_at"),
        "in the future beyond the skew"
    );
    assert_eq!(a.buyer.posts(), 1);
}

#[test]
fn without_the_keys_consent_evidence_is_not_checked() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let l = start("", "require_consent = true", &buyer_toml("a", &a, ""));
    let r = post_with(&l, evidence("junk", "junk"), "5552345660");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("sold")));
}
