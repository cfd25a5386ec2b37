//! leadx as an appliance, in-process (issue #4): admin statistics, the
//! transactions listing and the reconciliation export (limits, time window,
//! no PII), and config reloads under load that fail no request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// Distinctive PII: none of it may appear where PII is not allowed.
pub const PII: [&str; 7] = [
    "Zebulon",
    "Quixotically",
    "(312) 555-0187",
    "+13125550187",
    "zeb.quixote@pii-probe.example",
    "4242 Marigold Lane",
    "198.51.100.77",
];

pub fn pii_lead() -> Value {
    let mut l = full_lead(PII[2], PII[4]);
    let o = l.as_object_mut().unwrap();
    o.insert("first_name".into(), PII[0].into());
    o.insert("last_name".into(), PII[1].into());
    o.insert("address".into(), PII[5].into());
    l
}

pub fn pii_consent() -> Value {
    let mut c = consent();
    c["ip"] = PII[6].into();
    c
}

fn assert_no_pii(what: &str, text: &str) {
    for p in PII.iter().chain(&["3125550187"]) {
        assert!(!text.contains(p), "{what} leaks {p:?}: {text}");
    }
}

fn admin_get(l: &Leadx, path: &str) -> Reply {
    get(l.addr, path, ADMIN)
}

fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {list}"))
}

#[test]
fn stats_count_live_traffic_per_publisher_and_buyer() {
    let b1 = mock(Act::Bid(10.0), Act::Accept("B1"));
    let slow = mock(
        Act::Delay(1_000, Box::new(Act::Bid(50.0))),
        Act::Accept("S"),
    );
    let flat = mock(Act::NoBid, Act::Reject);
    let buyers = buyer_toml("st_b1", &b1, "")
        + &buyer_toml("st_slow", &slow, "")
        + &direct_buyer_toml("st_flat", &flat, "3.00", "");
    // The stats are this exchange's own (not a process global), so the
    // ids need not differ from those of the tests running beside it.
    let l = start("ping_timeout_ms = 200", "", &buyers);
    for (i, test) in [(0, false), (1, false), (2, true)] {
        let r = post_json(
            l.addr,
            "/v1/ping",
            KEY,
            &json!({"vertical": "auto", "lead": ping_lead(), "test": test}),
        );
        assert_eq!(r.json()["price"], 8.0, "{}", r.json());
        if i != 1 {
            let ping_id = r.json()["ping_id"].as_str().unwrap().to_string();
            let r = post(&l, &ping_id, &format!("31255502{i:02}"));
            assert_eq!(r.json()["status"], "sold");
        }
    }
    let body = json!({"vertical": "auto", "lead": full_lead("3125550299", "d@e.co"), "consent": consent()});
    assert_eq!(
        post_json(l.addr, "/v1/leads", KEY, &body).json()["status"],
        "sold"
    );
    let stats = admin_get(&l, "/v1/admin/stats");
    assert_eq!(stats.status, 200);
    let s = stats.json();
    let p = find(&s["publishers"], "pub1");
    let counts = |v: &Value, keys: &[&str]| {
        keys.iter()
            .map(|k| v[*k].as_f64().unwrap_or(-1.0))
            .collect::<Vec<_>>()
    };
    let keys = [
        "pings", "bids", "posts", "sold", "revenue", "payout", "margin", "timeouts",
    ];
    // 3 live auctions (2 pings, 1 direct), every one timed out st_slow;
    // 2 sales at 10.00, 8.00 each to the publisher. The test ping: nothing.
    assert_eq!(
        counts(p, &keys),
        [3.0, 3.0, 2.0, 2.0, 20.0, 16.0, 4.0, 3.0],
        "{p}"
    );
    assert_eq!(
        counts(p, &["bid_rate", "fill_rate", "post_success_rate"]),
        [1.0, 0.6667, 1.0],
        "{p}"
    );
    let p50 = p["response_ms"]["p50"].as_f64().unwrap();
    assert!(
        (100.0..=500.0).contains(&p50),
        "auctions ran to the 200 ms deadline: p50 {p50}"
    );
    assert!(p["post_response_ms"]["p99"].as_f64().is_some(), "{p}");
    let b = find(&s["buyers"], "st_b1");
    assert_eq!(
        counts(b, &keys),
        [3.0, 3.0, 2.0, 2.0, 20.0, 16.0, 4.0, 0.0],
        "{b}"
    );
    assert_eq!(
        (b["sold_today"].as_u64(), b["response_ms"]["count"].as_u64()),
        (Some(2), Some(3)),
        "{b}"
    );
    let slow = find(&s["buyers"], "st_slow");
    assert_eq!(
        counts(slow, &["pings", "bids", "timeouts", "posts"]),
        [3.0, 0.0, 3.0, 0.0],
        "{slow}"
    );
    assert!(
        slow["bid_rate"] == 0.0 && slow["post_success_rate"].is_null(),
        "{slow}"
    );
    let flat = find(&s["buyers"], "st_flat");
    assert_eq!(
        counts(flat, &["pings", "bids", "posts", "sold"]),
        [3.0, 3.0, 0.0, 0.0],
        "{flat}"
    );
    assert!(
        flat["response_ms"]["mean"].is_null(),
        "a fixed price is not a call: {flat}"
    );
    let pub2 = find(&s["publishers"], "pub2");
    assert!(
        pub2["pings"].as_u64().is_some(),
        "every configured publisher is listed: {pub2}"
    );
}

/// Three sales with PII, one unsold; returns the sold lead ids, oldest first.
fn sell_three(l: &Leadx, buyer: &Mock) -> Vec<String> {
    sell_three_as(l, buyer, "BL")
}

/// `sell_three` with the buyer answering `buyer_lead_id` for each sale.
fn sell_three_as(l: &Leadx, buyer: &Mock, buyer_lead_id: &'static str) -> Vec<String> {
    let mut sold = Vec::new();
    for i in 0..4 {
        buyer.buyer.set_post(if i == 2 {
            Act::Reject
        } else {
            Act::Accept(buyer_lead_id)
        });
        let r = post_json(
            l.addr,
            "/v1/ping",
            KEY,
            &json!({"vertical": "auto", "lead": ping_lead()}),
        );
        let ping_id = r.json()["ping_id"].as_str().unwrap().to_string();
        let mut lead = pii_lead();
        lead["phone"] = format!("312555{:04}", 100 + i).into();
        let body = json!({"ping_id": ping_id, "lead": lead, "consent": pii_consent()});
        let r = post_json(l.addr, "/v1/post", KEY, &body);
        if r.json()["status"] == "sold" {
            sold.push(r.json()["lead_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(sold.len(), 3);
    sold
}

#[test]
fn transactions_are_newest_first_bounded_and_free_of_pii() {
    let b = mock(Act::Bid(10.0), Act::Accept("BL"));
    let l = start("", "", &buyer_toml("b1", &b, ""));
    let sold = sell_three(&l, &b);
    let r = admin_get(&l, "/v1/admin/transactions?limit=2");
    assert_eq!(r.status, 200);
    assert_no_pii("transactions", &String::from_utf8_lossy(&r.body));
    let list = r.json()["transactions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "limit respected");
    assert_eq!(list[0]["lead_id"], sold[2].as_str(), "newest first");
    assert_eq!(list[1]["post_status"], "unsold");
    let all = admin_get(&l, "/v1/admin/transactions?limit=1000");
    assert_no_pii("transactions", &String::from_utf8_lossy(&all.body));
    assert_eq!(all.json()["transactions"].as_array().unwrap().len(), 4);
    for bad in ["0", "1001", "x", ""] {
        let r = admin_get(&l, &format!("/v1/admin/transactions?limit={bad}"));
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request".into()),
            "limit={bad}"
        );
    }
}

/// Issue #7 point 8: a newest ping record that does not decode is left out
/// and the listing stays JSON (it used to start `[,`).
#[test]
fn transactions_skip_an_undecodable_first_row_and_stay_json() {
    let b = mock(Act::Bid(10.0), Act::Accept("BL"));
    let l = start("", "", &buyer_toml("b1", &b, ""));
    let ping_id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let mut batch = leadx::store::Batch::default();
    // Sorts after every real id, so the scan (newest first) meets it first.
    batch.insert(
        leadx::store::Tree::Pings,
        "f".repeat(32),
        &b"{not a ping record"[..],
    );
    l.ex().store().write_durable(batch).unwrap();
    let r = admin_get(&l, "/v1/admin/transactions");
    assert_eq!(r.status, 200);
    let list = r.json()["transactions"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["ping_id"], ping_id.as_str());
}

#[test]
fn export_lists_sold_leads_in_the_window_without_pii() {
    let b = mock(Act::Bid(10.0), Act::Accept("BL"));
    let l = start("", "", &buyer_toml("b1", &b, ""));
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let sold = sell_three(&l, &b);
    let after = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let r = admin_get(
        &l,
        &format!(
            "/v1/admin/leads?from={}&to={}&format=csv",
            fmt(before),
            fmt(after)
        ),
    );
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert_no_pii("export", &text);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("lead_id,publisher,"), "{text}");
    let ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, sold, "sold leads only, oldest first");
    assert!(lines[1].contains(",b1,10.00,8.00,BL,"), "{}", lines[1]);
    // The window: from is inclusive, to exclusive — nothing after `after`,
    // nothing before `before`.
    let later = admin_get(&l, &format!("/v1/admin/leads?from={}", fmt(after)));
    assert_eq!(
        later.body.iter().filter(|&&c| c == b'\n').count(),
        1,
        "header only"
    );
    let earlier = admin_get(&l, &format!("/v1/admin/leads?to={}", fmt(before)));
    assert_eq!(
        earlier.body.iter().filter(|&&c| c == b'\n').count(),
        1,
        "header only"
    );
    for q in ["from=yesterday", "to=2026-13-01T00:00:00Z", "format=xml"] {
        let r = admin_get(&l, &format!("/v1/admin/leads?{q}"));
        assert_eq!((r.status, r.code()), (400, "bad_request".into()), "{q}");
    }
}

/// Issue #7 point 8: the export pages (a `Link` to the next page, never a
/// silent cut) and a buyer's lead id cannot be a spreadsheet formula.
#[test]
fn export_pages_with_a_link_and_neutralises_formulas() {
    let b = mock(Act::Bid(10.0), Act::Accept("=HYPERLINK(1)"));
    let l = start("", "", &buyer_toml("b1", &b, ""));
    let sold = sell_three_as(&l, &b, "=HYPERLINK(1)");
    let ids = |r: &Reply| -> Vec<String> {
        let text = String::from_utf8(r.body.clone()).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    let first = admin_get(&l, "/v1/admin/leads?format=csv&limit=2");
    assert_eq!(first.status, 200);
    assert_eq!(ids(&first), sold[..2], "oldest first, two rows");
    let text = String::from_utf8(first.body.clone()).unwrap();
    assert!(
        text.lines().nth(1).unwrap().contains(",'=HYPERLINK(1),"),
        "{text}"
    );
    let link = first
        .header("link")
        .unwrap_or_else(|| panic!("no Link header: {:?}", first.headers));
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("{link}"));
    assert!(
        next.contains(&format!("after={}", sold[1])) && next.contains("limit=2"),
        "{next}"
    );
    let second = admin_get(&l, next);
    assert_eq!(ids(&second), sold[2..], "the rest");
    assert_eq!(second.header("link"), None, "the last page has no next");
    let all = admin_get(&l, "/v1/admin/leads");
    assert_eq!((ids(&all), all.header("link")), (sold.clone(), None));
    for q in ["limit=0", "limit=100001", "after=zz"] {
        let r = admin_get(&l, &format!("/v1/admin/leads?{q}"));
        assert_eq!((r.status, r.code()), (400, "bad_request".into()), "{q}");
    }
}

#[test]
fn admin_refuses_bad_tokens_unknown_routes_and_methods() {
    let l = start("", "", "");
    assert_eq!(
        request(l.addr, "GET", "/v1/admin/stats", &[], b"").status,
        401
    );
    assert_eq!(
        get(l.addr, "/v1/admin/stats", KEY).code(),
        "unauthorized",
        "a publisher key is not the admin token"
    );
    assert_eq!(get(l.addr, "/v1/admin/stat", ADMIN).status, 404);
    assert_eq!(get(l.addr, "/v1/admin/reload", ADMIN).status, 405);
    assert_eq!(
        get(l.addr, "/v1/admin/leads/01234567890123456789", ADMIN).status,
        404
    );
}

/// Pings and posts (or direct posts) until `stop`; every answer must be a
/// 200 with a business outcome. Returns the ping prices seen.
fn traffic(l: &Leadx, t: usize, stop: &AtomicBool, done: &AtomicUsize) -> Vec<f64> {
    let mut prices = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let phone = format!("{}5{i:06}", ["312", "415", "646", "713"][t]);
        let r = if i % 3 == 0 {
            post_json(
                l.addr,
                "/v1/leads",
                KEY,
                &json!({"vertical": "auto", "lead": full_lead(&phone, "r@l.co"), "consent": consent()}),
            )
        } else {
            let r = post_json(
                l.addr,
                "/v1/ping",
                KEY,
                &json!({"vertical": "auto", "lead": ping_lead()}),
            );
            assert_eq!(
                r.status,
                200,
                "ping during reloads: {}",
                String::from_utf8_lossy(&r.body)
            );
            prices.push(r.json()["price"].as_f64().unwrap());
            post(l, r.json()["ping_id"].as_str().unwrap(), &phone)
        };
        assert_eq!(
            r.status,
            200,
            "post during reloads: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["status"], "sold", "{}", r.json());
        done.fetch_add(1, Ordering::SeqCst);
    }
    prices
}

#[test]
fn no_request_fails_because_of_a_reload() {
    let b = mock(
        Act::Delay(5, Box::new(Act::Bid(10.0))),
        Act::Delay(5, Box::new(Act::Accept("R"))),
    );
    let flat = mock(Act::NoBid, Act::Accept("F"));
    let l = start(
        "",
        "",
        &(buyer_toml("b1", &b, "") + &direct_buyer_toml("flat", &flat, "3.00", "")),
    );
    let a = std::fs::read_to_string(&l.config_path).unwrap();
    // The second config: another payout share and another direct buyer price.
    let b_text = a
        .replacen("revenue_share = 0.8", "revenue_share = 0.5", 1)
        .replace("fixed_price = 3.00", "fixed_price = 4.00");
    assert_ne!(a, b_text);
    let (stop, done) = (AtomicBool::new(false), AtomicUsize::new(0));
    let auth = format!("Bearer {ADMIN}");
    let prices: Vec<f64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (l, stop, done) = (&l, &stop, &done);
                s.spawn(move || traffic(l, t, stop, done))
            })
            .collect();
        let started = Instant::now();
        for n in 0..20 {
            std::fs::write(&l.config_path, if n % 2 == 0 { &b_text } else { &a }).unwrap();
            let r = request(
                l.addr,
                "POST",
                "/v1/admin/reload",
                &[("Authorization", &auth)],
                b"",
            );
            assert_eq!(
                (r.status, r.json()["status"].as_str()),
                (200, Some("reloaded"))
            );
            // Let some traffic run on each config (bounded).
            let target = done.load(Ordering::SeqCst) + 4;
            while done.load(Ordering::SeqCst) < target
                && started.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        stop.store(true, Ordering::SeqCst);
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        done.load(Ordering::SeqCst) >= 80,
        "traffic ran: {}",
        done.load(Ordering::SeqCst)
    );
    assert!(
        prices.contains(&8.0) && prices.contains(&5.0),
        "both configs served: {prices:?}"
    );
    // An invalid file is refused with its problems; the last config stays.
    std::fs::write(
        &l.config_path,
        a.replacen("revenue_share = 0.8", "revenue_share = 8", 1),
    )
    .unwrap();
    let r = request(
        l.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!((r.status, r.code()), (422, "invalid_config".into()));
    let problems = r.json()["problems"].to_string();
    assert!(
        problems.contains("publisher[0].revenue_share"),
        "{problems}"
    );
    assert_eq!(
        ping(&l)["price"],
        8.0,
        "the last good config (a) still serves"
    );
}

/// Business stats belong to the running exchange, not to the process: two
/// exchanges in one process with the same publisher and buyer ids count
/// only their own traffic (with one process-wide registry, the second saw
/// the first's ping, and both saw every other test's).
#[test]
fn each_exchange_counts_only_its_own_traffic() {
    let b = mock(Act::Bid(10.0), Act::Accept("BL"));
    let one = start("", "", &buyer_toml("b1", &b, ""));
    let two = start("", "", &buyer_toml("b1", &b, ""));
    let r = post_json(
        one.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let pings = |l: &Leadx, list: &str, id: &str| {
        find(&admin_get(l, "/v1/admin/stats").json()[list], id)["pings"].as_u64()
    };
    assert_eq!(pings(&one, "publishers", "pub1"), Some(1));
    assert_eq!(pings(&one, "buyers", "b1"), Some(1));
    assert_eq!(pings(&two, "publishers", "pub1"), Some(0));
    assert_eq!(pings(&two, "buyers", "b1"), Some(0));
}
