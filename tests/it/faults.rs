//! Store faults (issue #7 points 2 and 6): a buyer's acceptance is never
//! lost — not to a failing store, not to a drain shorter than a post — and a
//! store that cannot write (the fault seam, or a real full filesystem)
//! refuses work with 503 `overloaded`, turns `/readyz` 503 and recovers by
//! itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use leadx::store::Fault;
use serde_json::json;

use crate::support::*;

/// Polls `cond` for at most 15 s (the store's probe and the kept-sales
/// retry run on their own clocks; there is nothing to wait on).
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn ping_id(l: &Leadx) -> String {
    ping(l)["ping_id"].as_str().unwrap().to_string()
}

fn post_at(addr: SocketAddr, ping_id: &str) -> Reply {
    post_json(
        addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": ping_id, "lead": full_lead("5552345678", "ann@example.com"), "consent": consent()}),
    )
}

/// The value of an unlabelled gauge on `/metrics`.
fn gauge(addr: SocketAddr, name: &str) -> f64 {
    let text = String::from_utf8(request(addr, "GET", "/metrics", &[], b"").body).unwrap();
    let line = text
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in /metrics"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Starts leadx with extra `[server]` keys and, when given, its data in
/// `data_dir` (else in the test's temporary directory).
fn start_with(server_extra: &str, buyers: &str, data_dir: Option<&std::path::Path>) -> Leadx {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir
        .map(|d| d.to_path_buf())
        .unwrap_or_else(|| dir.path().join("data"));
    let base = base_toml(&data, "", "").replacen(
        "workers = 2\n",
        &format!("workers = 2\n{server_extra}\n"),
        1,
    );
    let text = format!("{base}\n{buyers}");
    let config_path = dir.path().join("leadx.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = leadx::config::parse(&text, &|_| None)
        .unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
    let running = leadx::daemon::start(config, Some(config_path.clone())).unwrap();
    let addr = running.local_addr();
    Leadx {
        running: Some(running),
        addr,
        dir,
        config_path,
        clock: std::sync::Arc::new(leadx::clock::SystemClock),
    }
}

/// Issue #7 point 2: the store fails while the buyer holds the post. The
/// publisher gets 503 `overloaded` (Retry-After) until the sale is durable,
/// then `sold`; the buyer is posted once; the sale survives a restart with
/// the buyer's lead id. Without `exchange::outcomes` the retry settles the
/// lead `interrupted` and the sale is gone.
#[test]
fn an_accepted_sale_whose_outcome_write_fails_is_kept_and_recorded_later() {
    let a = mock(
        Act::Bid(10.0),
        Act::Delay(600, Box::new(Act::Accept("B-77"))),
    );
    let mut l = start("", "", &buyer_toml("a", &a, ""));
    let id = ping_id(&l);
    let addr = l.addr;
    let poster = std::thread::spawn({
        let id = id.clone();
        move || post_at(addr, &id)
    });
    assert!(
        eventually(|| a.buyer.posts() == 1),
        "the buyer never got the post"
    );
    l.ex().store().inject_fault(Fault::FailWrites);
    let r = poster.join().unwrap();
    assert_eq!(
        (r.status, r.code().as_str(), r.header("Retry-After")),
        (503, "overloaded", Some("1"))
    );
    assert_eq!(l.ex().kept_sales(), 1);
    assert_eq!(gauge(addr, "leadx_sales_kept"), 1.0);
    let again = post_at(addr, &id);
    assert_eq!(
        (again.status, again.code().as_str()),
        (503, "overloaded"),
        "not durable yet"
    );
    l.ex().store().inject_fault(Fault::None);
    // The store's probe, then the background retry (about a second).
    assert!(
        eventually(|| l.ex().kept_sales() == 0),
        "the kept sale was never recorded"
    );
    let sold = post_at(addr, &id);
    assert_eq!(sold.status, 200, "{}", String::from_utf8_lossy(&sold.body));
    let sold = sold.json();
    assert_eq!(
        (sold["status"].as_str(), sold["price"].as_f64()),
        (Some("sold"), Some(8.0))
    );
    l.restart();
    assert_eq!(
        post_at(l.addr, &id).json(),
        sold,
        "same outcome and lead id after a restart"
    );
    let lead = get(
        l.addr,
        &format!("/v1/admin/leads/{}", sold["lead_id"].as_str().unwrap()),
        ADMIN,
    )
    .json();
    assert_eq!(
        (lead["status"].as_str(), lead["buyer_lead_id"].as_str()),
        (Some("sold"), Some("B-77"))
    );
    assert_eq!(a.buyer.posts(), 1, "the buyer is posted once");
}

/// The same for a direct post, retried by the publisher with its
/// Idempotency-Key as soon as the store is writable (whichever retry wins,
/// the publisher's or the background's, the answer is the one sale).
#[test]
fn a_kept_direct_post_is_answered_on_the_publishers_retry() {
    let flat = mock(Act::NoBid, Act::Delay(400, Box::new(Act::Accept("F-9"))));
    let l = start("", "", &direct_buyer_toml("flat", &flat, "4.00", ""));
    let addr = l.addr;
    let send = move || {
        let body = json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co"), "consent": consent()});
        let auth = format!("Bearer {KEY}");
        request(
            addr,
            "POST",
            "/v1/leads",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "k-7"),
            ],
            body.to_string().as_bytes(),
        )
    };
    let poster = std::thread::spawn(send);
    assert!(eventually(|| flat.buyer.posts() == 1));
    l.ex().store().inject_fault(Fault::FailWrites);
    assert_eq!(poster.join().unwrap().status, 503);
    l.ex().store().inject_fault(Fault::None);
    assert!(eventually(|| l.ex().store().is_writable()));
    let mut answer = send();
    for _ in 0..100 {
        if answer.status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        answer = send();
    }
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        (
            answer.json()["status"].as_str(),
            answer.json()["price"].as_f64()
        ),
        (Some("sold"), Some(3.2))
    );
    assert_eq!(send().json(), answer.json());
    assert_eq!(flat.buyer.posts(), 1);
}

/// Issue #7 point 2: a drain (50 ms) shorter than a post (the buyer takes
/// 800 ms) still waits for the post's outcome before closing the store.
/// Without the wait the outcome write finds the store closed and the lead
/// is found `interrupted` after the restart.
#[test]
fn a_drain_shorter_than_a_post_waits_for_its_outcome() {
    let a = mock(
        Act::Bid(10.0),
        Act::Delay(800, Box::new(Act::Accept("B-1"))),
    );
    let mut l = start_with("drain_timeout_ms = 50", &buyer_toml("a", &a, ""), None);
    let id = ping_id(&l);
    let addr = l.addr;
    let poster = std::thread::spawn({
        let id = id.clone();
        move || post_at(addr, &id)
    });
    assert!(eventually(|| a.buyer.posts() == 1));
    l.stop();
    let answered = poster.join().unwrap();
    assert_eq!(
        answered.status,
        200,
        "{}",
        String::from_utf8_lossy(&answered.body)
    );
    assert_eq!(
        answered.json()["status"],
        "sold",
        "the drain let the answer out"
    );
    l.restart();
    let r = post_at(l.addr, &id);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        answered.json(),
        "durable: the same sale after a restart"
    );
    assert_eq!(a.buyer.posts(), 1);
}

/// Issue #7 point 6, API level: after a failed write every publisher call
/// is 503 `overloaded` at once (no buyer called), `/readyz` is 503,
/// `/healthz` 200, `leadx_store_writable` 0, the outage counted once;
/// recovery needs no traffic and loses nothing acknowledged.
#[test]
fn an_unwritable_store_refuses_at_once_and_recovers_by_itself() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let sold = post_at(l.addr, &ping_id(&l)).json();
    let lead_path = format!("/v1/leads/{}", sold["lead_id"].as_str().unwrap());
    assert_eq!(gauge(l.addr, "leadx_store_writable"), 1.0);
    l.ex().store().inject_fault(Fault::FailWrites);
    // A ping's record is written without waiting: the ping is answered,
    // its write fails a moment later.
    let _ = ping(&l);
    assert!(eventually(|| !l.ex().store().is_writable()));
    let pings_before = a.buyer.pings();
    for _ in 0..20 {
        let r = post_json(
            l.addr,
            "/v1/ping",
            KEY,
            &json!({"vertical": "auto", "lead": ping_lead()}),
        );
        assert_eq!(
            (r.status, r.code().as_str(), r.header("Retry-After")),
            (503, "overloaded", Some("1"))
        );
    }
    assert_eq!(
        a.buyer.pings(),
        pings_before,
        "refused before any buyer is called"
    );
    assert_eq!(get(l.addr, &lead_path, KEY).status, 503);
    let ready = request(l.addr, "GET", "/readyz", &[], b"");
    assert_eq!(
        (ready.status, ready.code().as_str()),
        (503, "store_unwritable")
    );
    assert_eq!(request(l.addr, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(gauge(l.addr, "leadx_store_writable"), 0.0);
    assert_eq!(
        gauge(l.addr, "leadx_store_unwritable_events"),
        1.0,
        "one outage, logged once"
    );
    l.ex().store().inject_fault(Fault::None);
    assert!(
        eventually(|| request(l.addr, "GET", "/readyz", &[], b"").status == 200),
        "no recovery"
    );
    assert_eq!(get(l.addr, &lead_path, KEY).json()["status"], "sold");
    assert_eq!(post_at(l.addr, &ping_id(&l)).json()["status"], "sold");
    assert_eq!(gauge(l.addr, "leadx_store_writable"), 1.0);
}

/// A cap counter first read while the store is unwritable (here by a
/// `/metrics` scrape) must not be taken as "nothing sold today": after
/// recovery the buyer with `daily = 3` and 2 sales takes exactly 1 more.
#[test]
fn a_cap_counter_read_during_an_outage_is_not_counted_as_zero() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let mut l = start("", "", &buyer_toml("a", &a, "[buyer.caps]\ndaily = 3"));
    for phone in ["5552345601", "5552345602"] {
        let id = ping_id(&l);
        assert_eq!(post(&l, &id, phone).json()["status"], "sold");
    }
    l.restart();
    l.ex().store().inject_fault(Fault::FailWrites);
    // pub2's `home` vertical has no buyer: the ping loads no cap counter,
    // and its record's failed write makes the store unwritable.
    let r = post_json(
        l.addr,
        "/v1/ping",
        KEY2,
        &json!({"vertical": "home", "lead": ping_lead()}),
    );
    assert_eq!(r.status, 200);
    assert!(eventually(|| !l.ex().store().is_writable()));
    let _ = request(l.addr, "GET", "/metrics", &[], b"");
    l.ex().store().inject_fault(Fault::None);
    assert!(eventually(|| l.ex().store().is_writable()));
    let sold: Vec<String> = ["5552345603", "5552345604", "5552345605"]
        .iter()
        .map(|phone| {
            let p = ping(&l);
            match p["ping_id"].as_str() {
                Some(id) if p["status"] == "bid" => post(&l, id, phone).json()["status"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                _ => "no_bid".to_string(),
            }
        })
        .collect();
    assert_eq!(
        sold,
        ["sold", "no_bid", "no_bid"],
        "the daily cap of 3 holds across the outage"
    );
}

/// Once a drain has closed posts (it then waits for the running ones), a
/// post that gets that far is refused before any buyer sees the lead.
#[test]
fn no_post_starts_once_a_drain_closed_posts() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let id = ping_id(&l);
    assert_eq!(l.ex().close_posts(Duration::ZERO), 0, "nothing running");
    let r = post_at(l.addr, &id);
    assert_eq!((r.status, r.code().as_str()), (503, "draining"));
    assert_eq!(a.buyer.posts(), 0);
}
