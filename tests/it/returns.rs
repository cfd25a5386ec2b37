//! Returns (contract §13): `POST /v1/admin/leads/{id}/return` over real
//! HTTP, business time from a `ManualClock`, and durability against
//! `kill -9` with a child leadx.

use std::sync::Arc;

use serde_json::json;

use crate::support::*;

const DAY_MS: u64 = 86_400_000;

fn admin(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {ADMIN}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    request(addr, method, path, &headers, body.as_bytes())
}

fn give_back(addr: std::net::SocketAddr, lead_id: &str, reason: &str) -> Reply {
    let body = json!({ "reason": reason }).to_string();
    admin(
        addr,
        "POST",
        &format!("/v1/admin/leads/{lead_id}/return"),
        &body,
    )
}

/// A direct post as pub1; its answer.
fn sell(addr: std::net::SocketAddr, phone: &str, test: bool) -> serde_json::Value {
    let body = json!({"vertical": "auto", "lead": full_lead(phone, &format!("{phone}@x.co")), "consent": consent(), "test": test});
    let r = post_json(addr, "/v1/leads", KEY, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn party<'a>(stats: &'a serde_json::Value, kind: &str, id: &str) -> &'a serde_json::Value {
    stats[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
}

#[test]
fn a_sold_lead_is_returned_once_and_reversed_in_stats_metrics_export_and_lead_view() {
    let buyer = mock(Act::NoBid, Act::Accept("B-1"));
    let clock = Arc::new(leadx::clock::ManualClock::new());
    let l = start_with_clock(
        "",
        "",
        &direct_buyer_toml("returns-flat", &buyer, "10.00", ""),
        clock.clone(),
    );
    let kept = sell(l.addr, "5552340001", false);
    let sold = sell(l.addr, "5552340002", false);
    assert_eq!(sold["status"], "sold");
    let id = sold["lead_id"].as_str().unwrap();
    clock.advance_ms(3 * DAY_MS);
    let r = give_back(l.addr, id, "disconnected phone");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let first = r.json();
    assert_eq!(
        (
            first["status"].as_str(),
            first["reason"].as_str(),
            first["price"].as_f64(),
            first["payout"].as_f64(),
            first["buyer"].as_str()
        ),
        (
            Some("returned"),
            Some("disconnected phone"),
            Some(10.0),
            Some(8.0),
            Some("returns-flat")
        )
    );
    clock.advance_ms(DAY_MS);
    let again = give_back(l.addr, id, "another reason");
    assert_eq!(
        (again.status, &again.body),
        (200, &r.body),
        "the first return, as it was"
    );
    // The publisher sees it returned; the other sale is untouched.
    let view = get(l.addr, &format!("/v1/leads/{id}"), KEY).json();
    assert_eq!(
        (view["status"].as_str(), view["returned_at"].as_str()),
        (Some("returned"), first["returned_at"].as_str())
    );
    let other = kept["lead_id"].as_str().unwrap();
    assert_eq!(
        get(l.addr, &format!("/v1/leads/{other}"), KEY).json()["status"],
        "sold"
    );
    // Stats: gross stays, returns and net show the reversal.
    let stats = admin(l.addr, "GET", "/v1/admin/stats", "").json();
    let p = party(&stats, "publishers", "pub1");
    let b = party(&stats, "buyers", "returns-flat");
    for (who, v) in [("pub1", p), ("returns-flat", b)] {
        assert_eq!(
            (
                v["sold"].as_u64(),
                v["returns"].as_u64(),
                v["return_rate"].as_f64(),
                v["revenue"].as_f64(),
                v["returned_revenue"].as_f64(),
                v["returned_payout"].as_f64(),
                v["net_revenue"].as_f64(),
                v["net_payout"].as_f64(),
                v["net_margin"].as_f64(),
            ),
            (
                Some(2),
                Some(1),
                Some(0.5),
                Some(20.0),
                Some(10.0),
                Some(8.0),
                Some(10.0),
                Some(8.0),
                Some(2.0)
            ),
            "{who}: {v}"
        );
    }
    let metrics = String::from_utf8(get(l.addr, "/metrics", "").body).unwrap();
    assert!(
        metrics.contains("leadx_buyer_returns_total{buyer=\"returns-flat\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leadx_buyer_return_rate{buyer=\"returns-flat\"} 0.5\n"),
        "{metrics}"
    );
    // The export keeps its columns and appends `returned_at`.
    let csv =
        String::from_utf8(admin(l.addr, "GET", "/v1/admin/leads?format=csv", "").body).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("lead_id,publisher,vertical,buyer,price,payout,buyer_lead_id,created_at,sold_at,returned_at")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for row in &rows {
        assert_eq!(row.len(), 10, "{csv}");
        let want = if row[0] == id {
            first["returned_at"].as_str().unwrap()
        } else {
            ""
        };
        assert_eq!(row[9], want, "{csv}");
        assert_eq!((row[4], row[5]), ("10.00", "8.00"));
    }
}

#[test]
fn unknown_unsold_test_and_late_leads_are_refused_with_their_codes() {
    let buyer = mock(Act::NoBid, Act::Reject);
    let clock = Arc::new(leadx::clock::ManualClock::new());
    let l = start_with_clock(
        "",
        "",
        &direct_buyer_toml("flat", &buyer, "10.00", "return_window_days = 2"),
        clock.clone(),
    );
    let unsold = sell(l.addr, "5552340003", false);
    assert_eq!(unsold["status"], "unsold");
    let r = give_back(l.addr, unsold["lead_id"].as_str().unwrap(), "x");
    assert_eq!((r.status, r.code()), (409, "not_returnable".into()));
    let r = give_back(l.addr, "0190a1b2c3d4e5f60718293a4b5c6d7f", "x");
    assert_eq!((r.status, r.code()), (404, "not_found".into()));
    let r = give_back(l.addr, "nope", "x");
    assert_eq!((r.status, r.code()), (404, "not_found".into()));
    buyer.buyer.set_post(Act::Accept("B-2"));
    let test = sell(l.addr, "5552340004", true);
    assert_eq!(test["status"], "sold");
    let r = give_back(l.addr, test["lead_id"].as_str().unwrap(), "x");
    assert_eq!(
        (r.status, r.code()),
        (409, "not_returnable".into()),
        "test traffic carries no money"
    );
    // The window: two days after the sale, inclusive.
    let a = sell(l.addr, "5552340005", false)["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = sell(l.addr, "5552340006", false)["lead_id"]
        .as_str()
        .unwrap()
        .to_string();
    clock.advance_ms(2 * DAY_MS);
    assert_eq!(give_back(l.addr, &a, "x").status, 200);
    clock.advance_ms(1);
    let r = give_back(l.addr, &b, "x");
    assert_eq!((r.status, r.code()), (409, "return_window_closed".into()));
    assert_eq!(
        get(l.addr, &format!("/v1/leads/{b}"), KEY).json()["status"],
        "sold"
    );
    // Bad bodies and credentials.
    let path = format!("/v1/admin/leads/{b}/return");
    for (body, code, field) in [
        ("{}", "missing_field", "reason"),
        (r#"{"reason": ""}"#, "invalid_field", "reason"),
        (r#"{"reason": 5}"#, "invalid_field", "reason"),
        (r#"{"reason": "x", "why": 1}"#, "unknown_field", "why"),
        ("{", "malformed_json", ""),
    ] {
        let r = admin(l.addr, "POST", &path, body);
        assert_eq!(
            (r.code(), r.field()),
            (code.to_string(), field.to_string()),
            "{body}"
        );
    }
    let r = post_json(l.addr, &path, KEY, &json!({"reason": "x"}));
    assert_eq!(r.status, 401, "a publisher key is not the admin token");
    assert_eq!(admin(l.addr, "GET", &path, "").status, 405);
}

/// Durable like a sale: a `returned` answer survives `kill -9` of leadx
/// the moment after it was sent.
#[test]
fn a_returned_answer_survives_kill_9() {
    let buyer = mock(Act::NoBid, Act::Accept("B-3"));
    let dir = tempfile::tempdir().unwrap();
    let text = base_toml(&dir.path().join("data"), "", "")
        + &direct_buyer_toml("flat", &buyer, "4.00", "");
    let path = dir.path().join("leadx.toml");
    std::fs::write(&path, text).unwrap();
    let (mut child, addr) = crate::crash::spawn_leadx(&path);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            sell(addr, &format!("55523410{i:02}"), false)["lead_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &ids {
        assert_eq!(give_back(addr, id, "fraud").json()["status"], "returned");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, addr) = crate::crash::spawn_leadx(&path);
    for id in &ids {
        let v = get(addr, &format!("/v1/leads/{id}"), KEY).json();
        assert_eq!(v["status"], "returned", "return of {id} lost");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A returned lead was sold by its post: repeating the post (here a direct
/// post's `Idempotency-Key`) answers the first outcome, `sold`, while the
/// lead view shows the return.
#[test]
fn a_repeated_post_of_a_returned_lead_answers_its_first_outcome() {
    let buyer = mock(Act::NoBid, Act::Accept("B-4"));
    let l = start("", "", &direct_buyer_toml("flat", &buyer, "10.00", ""));
    let auth = format!("Bearer {KEY}");
    let body = json!({"vertical": "auto", "lead": full_lead("5552342222", "r@x.co"), "consent": consent()}).to_string();
    let send = || {
        request(
            l.addr,
            "POST",
            "/v1/leads",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "ret-1"),
            ],
            body.as_bytes(),
        )
    };
    let first = send();
    assert_eq!(first.json()["status"], "sold");
    let id = first.json()["lead_id"].as_str().unwrap().to_string();
    assert_eq!(give_back(l.addr, &id, "x").status, 200);
    let again = send();
    assert_eq!(
        again.body,
        first.body,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    assert_eq!(buyer.buyer.posts(), 1, "no buyer saw it twice");
    assert_eq!(
        get(l.addr, &format!("/v1/leads/{id}"), KEY).json()["status"],
        "returned"
    );
}
