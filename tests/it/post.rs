//! Posting: at most once per ping, idempotent direct posts, caps under
//! concurrency, dedupe, consent, ownership, expiry — and all of it across a
//! restart.

use std::sync::Arc;

use serde_json::json;

use crate::support::*;

#[test]
fn reposting_a_ping_returns_the_first_outcome_without_calling_buyers_also_after_restart() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let mut l = start("", "", &buyer_toml("a", &a, ""));
    let p = ping(&l);
    let id = p["ping_id"].as_str().unwrap().to_string();
    let first = post(&l, &id, "5552345678").json();
    assert_eq!(first["status"], "sold");
    let again = post(&l, &id, "5552345678").json();
    assert_eq!(again, first);
    l.restart();
    let after = post(&l, &id, "5552345678").json();
    assert_eq!(after, first, "same outcome and lead_id after a restart");
    assert_eq!(a.buyer.posts(), 1);
}

#[test]
fn fifty_concurrent_posts_of_one_ping_reach_the_buyer_once() {
    let a = mock(
        Act::Bid(10.0),
        Act::Delay(100, Box::new(Act::Accept("A-1"))),
    );
    let l = start("", "", &buyer_toml("a", &a, ""));
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let addr = l.addr;
    let answers: Vec<Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..50).map(|_| s.spawn(|| post_json(addr, "/v1/post", KEY, &json!({"ping_id": id, "lead": full_lead("5552345678", "a@b.co"), "consent": consent()})))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(a.buyer.posts(), 1);
    let sold: Vec<_> = answers
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json())
        .collect();
    assert!(!sold.is_empty());
    assert!(
        sold.iter()
            .all(|v| v["status"] == "sold" && v["lead_id"] == sold[0]["lead_id"]),
        "one lead id for every 200"
    );
    assert!(answers
        .iter()
        .all(|r| r.status == 200 || (r.status == 409 && r.code() == "post_in_progress")));
}

#[test]
fn daily_cap_of_five_with_fifty_concurrent_posts_sells_exactly_five() {
    let a = mock(Act::Bid(10.0), Act::Delay(20, Box::new(Act::Accept("A"))));
    let l = start("", "", &buyer_toml("a", &a, "[buyer.caps]\ndaily = 5"));
    let ids: Vec<String> = (0..50)
        .map(|_| ping(&l)["ping_id"].as_str().unwrap().to_string())
        .collect();
    let addr = l.addr;
    let answers: Vec<serde_json::Value> = std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| s.spawn(move || post_json(addr, "/v1/post", KEY, &json!({"ping_id": id, "lead": full_lead(&format!("55523{:05}", i), "a@b.co"), "consent": consent()})).json()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sold = answers.iter().filter(|v| v["status"] == "sold").count();
    assert_eq!(sold, 5);
    assert_eq!(
        a.buyer.posts(),
        5,
        "a buyer past its cap is not even called"
    );
    assert!(answers
        .iter()
        .filter(|v| v["status"] == "unsold")
        .all(|v| v["reason"] == "no_eligible_buyer"));
}

#[test]
fn cap_counts_survive_a_restart() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let mut l = start("", "", &buyer_toml("a", &a, "[buyer.caps]\ndaily = 2"));
    for phone in ["5552345601", "5552345602"] {
        let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
        assert_eq!(post(&l, &id, phone).json()["status"], "sold");
    }
    l.restart();
    assert_eq!(
        ping(&l)["status"],
        "no_bid",
        "the two sales still count after a restart"
    );
}

#[test]
fn the_same_consumer_spelled_differently_is_a_duplicate_within_the_window() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let l = start("", "dedupe_window_days = 30", &buyer_toml("a", &a, ""));
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    assert_eq!(post(&l, &id, "(555) 234-5678").json()["status"], "sold");
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let r = post(&l, &id, "+1 555.234.5678");
    assert_eq!((r.status, r.code()), (409, "duplicate_lead".to_string()));
    // Same email, other phone: still the same consumer.
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let r = post_json(
        l.addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": id, "lead": full_lead("5559876543", "ANN@example.com"), "consent": consent()}),
    );
    assert_eq!((r.status, r.code()), (409, "duplicate_lead".to_string()));
    assert_eq!(a.buyer.posts(), 1);
    // Test traffic is not deduplicated.
    let p = post_json(
        l.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead(), "test": true}),
    )
    .json();
    assert_eq!(
        post(&l, p["ping_id"].as_str().unwrap(), "5552345678").json()["status"],
        "sold"
    );
}

#[test]
fn consent_is_required_where_the_vertical_says_so() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let l = start("", "require_consent = true", &buyer_toml("a", &a, ""));
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let r = post_json(
        l.addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": id, "lead": full_lead("5552345678", "a@b.co")}),
    );
    assert_eq!(
        (r.status, r.code(), r.field()),
        (422, "consent_required".into(), "consent".into())
    );
    let r = post_json(
        l.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co")}),
    );
    assert_eq!((r.status, r.code()), (422, "consent_required".into()));
    assert_eq!(post(&l, &id, "5552345678").json()["status"], "sold");
    assert!(a.buyer.last_post_json()["consent"]["text"].is_string());
}

#[test]
fn a_post_must_match_its_ping_and_belong_to_its_publisher() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let mut lead = full_lead("5552345678", "a@b.co");
    lead["zip"] = "10001".into();
    let r = post_json(
        l.addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": id, "lead": lead, "consent": consent()}),
    );
    // Issue #7 point 8: the field at fault, not just "lead" (contract §8).
    assert_eq!(
        (r.status, r.code(), r.field()),
        (422, "ping_mismatch".into(), "lead.zip".into())
    );
    let r = post_json(
        l.addr,
        "/v1/post",
        KEY2,
        &json!({"ping_id": id, "lead": full_lead("5552345678", "a@b.co"), "consent": consent()}),
    );
    assert_eq!(
        (r.status, r.code()),
        (404, "unknown_ping".into()),
        "another publisher's ping does not exist for pub2"
    );
    let r = post(&l, "0123456789abcdef0123456789abcdef", "5552345678");
    assert_eq!((r.status, r.code()), (404, "unknown_ping".into()));
    let sold = post(&l, &id, "5552345678").json();
    let lead_id = sold["lead_id"].as_str().unwrap();
    let mine = get(l.addr, &format!("/v1/leads/{lead_id}"), KEY);
    assert_eq!(mine.status, 200);
    let v = mine.json();
    assert_eq!(
        (
            v["status"].as_str(),
            v["price"].as_f64(),
            v["vertical"].as_str()
        ),
        (Some("sold"), Some(8.0), Some("auto"))
    );
    assert!(v["created_at"].is_string());
    assert!(
        !String::from_utf8_lossy(&mine.body).contains("5552345678"),
        "no PII in the publisher view"
    );
    assert_eq!(
        get(l.addr, &format!("/v1/leads/{lead_id}"), KEY2).status,
        404
    );
    let admin = get(l.addr, &format!("/v1/admin/leads/{lead_id}"), ADMIN).json();
    assert_eq!(admin["data"]["lead"]["phone"], "+15552345678");
}

#[test]
fn bids_expire_after_their_ttl() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let clock = Arc::new(leadx::clock::ManualClock::new());
    let l = start_with_clock("bid_ttl_s = 1", "", &buyer_toml("a", &a, ""), clock.clone());
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    clock.advance_ms(1_000);
    let r = post(&l, &id, "5552345678");
    assert_ne!(r.status, 410, "still valid at exactly its TTL");
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    clock.advance_ms(1_001);
    let r = post(&l, &id, "5552345679");
    assert_eq!((r.status, r.code()), (410, "ping_expired".into()));
    assert_eq!(
        a.buyer.posts(),
        1,
        "only the first, unexpired post reached the buyer"
    );
}

#[test]
fn direct_post_runs_both_stages_and_its_idempotency_key_holds_across_restart() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let flat = mock(Act::NoBid, Act::Accept("F"));
    let mut l = start(
        "",
        "",
        &(buyer_toml("a", &a, "") + &direct_buyer_toml("flat", &flat, "4.00", "")),
    );
    let body = json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co"), "consent": consent()});
    let send = |l: &Leadx, key: &str, idem: &str| {
        let auth = format!("Bearer {key}");
        request(
            l.addr,
            "POST",
            "/v1/leads",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", idem),
            ],
            body.to_string().as_bytes(),
        )
    };
    let first = send(&l, KEY, "k-1").json();
    assert_eq!(
        (first["status"].as_str(), first["price"].as_f64()),
        (Some("sold"), Some(8.0))
    );
    assert!(
        a.buyer.last_ping_json()["lead"].get("email").is_none(),
        "the ping stage sends no PII"
    );
    assert_eq!(send(&l, KEY, "k-1").json(), first);
    l.restart();
    assert_eq!(send(&l, KEY, "k-1").json(), first);
    assert_eq!(a.buyer.posts(), 1);
    // Keys are scoped to the publisher: pub2's k-1 is a new lead.
    let other = send(&l, KEY2, "k-1").json();
    assert_ne!(other["lead_id"], first["lead_id"]);
}

#[test]
fn reload_swaps_buyers_and_a_bad_file_keeps_the_running_config() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let b = mock(Act::Bid(20.0), Act::Accept("B"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    assert_eq!(ping(&l)["price"], 8.0);
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    std::fs::write(
        &l.config_path,
        format!("{text}\n{}", buyer_toml("b", &b, "")),
    )
    .unwrap();
    let r = request(
        l.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &format!("Bearer {ADMIN}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ping(&l)["price"], 16.0);
    std::fs::write(&l.config_path, "[server]\nlisten = 5\n").unwrap();
    let r = request(
        l.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &format!("Bearer {ADMIN}"))],
        b"",
    );
    assert_eq!(r.status, 422);
    assert!(r.json()["problems"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    assert_eq!(ping(&l)["price"], 16.0, "the old config keeps serving");
}

#[test]
fn concurrent_sales_survive_a_clean_restart() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let mut l = start("", "", &buyer_toml("a", &a, ""));
    let addr = l.addr;
    let sold: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                s.spawn(move || {
                    let body = json!({"vertical": "auto", "lead": full_lead(&format!("55534{:05}", i), "x@y.co"), "consent": consent()});
                    post_json(addr, "/v1/leads", KEY, &body).json()["lead_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    l.restart();
    for id in sold {
        assert_eq!(
            get(l.addr, &format!("/v1/leads/{id}"), KEY).json()["status"],
            "sold"
        );
    }
}
