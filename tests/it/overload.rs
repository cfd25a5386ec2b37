//! Issue #7 point 3: overload is shed, not queued. Past its auction or
//! buyer-call budget, or with its deadline mostly gone, a ping answers 503
//! `overloaded` with `Retry-After` at once; a post that finds no buyer-call
//! permit answers 503 and stays sellable; permits come back on every path.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use leadx::exchange::admission::Budgets;
use serde_json::json;

use crate::support::*;

/// `start`, with extra `[server]` keys.
fn start_with(server: &str, auction: &str, buyers: &str) -> Leadx {
    let dir = tempfile::tempdir().unwrap();
    let base = base_toml(&dir.path().join("data"), auction, "");
    let text = format!(
        "{}\n{buyers}",
        base.replacen("workers = 2\n", &format!("workers = 2\n{server}\n"), 1)
    );
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

fn budgets(l: &Leadx) -> Budgets {
    Budgets::of(&l.ex().runtime().config.server)
}

/// Polls `done` until it holds or `bound` passes (a permit is given back
/// when its call's coroutine ends, just after the answer it contributed).
fn eventually(bound: Duration, done: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < bound {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

fn ping_reply(l: &Leadx) -> Reply {
    post_json(
        l.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    )
}

fn assert_shed(r: &Reply) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "overloaded"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("Retry-After"), Some("1"));
}

fn metric(l: &Leadx, series: &str) -> f64 {
    let text = String::from_utf8(request(l.addr, "GET", "/metrics", &[], b"").body).unwrap();
    let line = text
        .lines()
        .find(|line| line.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_burst_past_the_auction_limit_is_shed_at_once_and_the_server_then_answers_normally() {
    let slow = mock(
        Act::Delay(1_500, Box::new(Act::Bid(5.0))),
        Act::Accept("S-1"),
    );
    let l = start_with(
        "auctions_in_flight_max = 2",
        "ping_timeout_ms = 3000",
        &buyer_toml("slow", &slow, ""),
    );
    let shed_before = metric(&l, "leadx_shed_total{reason=\"auctions\"}");
    let addr = l.addr;
    let replies: Vec<(Reply, Instant)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(move || {
                    let r = post_json(
                        addr,
                        "/v1/ping",
                        KEY,
                        &json!({"vertical": "auto", "lead": ping_lead()}),
                    );
                    (r, Instant::now())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (ok, shed): (Vec<_>, Vec<_>) = replies.iter().partition(|(r, _)| r.status == 200);
    assert!(
        (1..=2).contains(&ok.len()),
        "at most two auctions at once, got {} answered",
        ok.len()
    );
    for (r, _) in &shed {
        assert_shed(r);
    }
    // Not queued behind the running auctions: every refusal was out before
    // the first admitted auction (1.5 s of buyer latency) could answer.
    let first_ok = ok.iter().map(|(_, at)| *at).min().unwrap();
    assert!(
        shed.iter().all(|(_, at)| *at < first_ok),
        "a 503 came after an admitted ping's answer"
    );
    assert!(slow.buyer.pings() <= 2, "a shed ping calls no buyer");
    assert!(metric(&l, "leadx_shed_total{reason=\"auctions\"}") - shed_before >= shed.len() as f64);
    // Every permit is back, and the server answers normally.
    let adm = l.ex().admission();
    assert!(eventually(Duration::from_secs(5), || adm
        .auctions_in_flight()
        == 0
        && adm.buyer_calls_in_flight() == 0));
    slow.buyer.set_ping(Act::Bid(5.0));
    assert_eq!(ping(&l)["status"], "bid");
    assert_eq!(request(l.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn a_ping_whose_deadline_is_mostly_gone_is_shed_before_any_buyer_is_called() {
    let b = mock(Act::Bid(5.0), Act::Accept("B-1"));
    let l = start_with("", "ping_timeout_ms = 1000", &buyer_toml("b", &b, ""));
    // The deadline counts from the complete head: a body that follows 0.7 s
    // later leaves 30 % of it, less than the half an auction needs.
    let body = json!({"vertical": "auto", "lead": ping_lead()}).to_string();
    let mut s = TcpStream::connect(l.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!("POST /v1/ping HTTP/1.1\r\nHost: leadx\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
    assert_shed(&parse_reply(&raw));
    assert_eq!(b.buyer.pings(), 0);
    assert_eq!(ping(&l)["status"], "bid", "a fresh ping runs");
}

#[test]
fn pings_past_their_share_of_buyer_calls_are_shed_while_posts_keep_their_reserve() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    // 4 calls: 3 for pings, 1 kept for posts.
    let l = start_with(
        "buyer_calls_in_flight_max = 4",
        "",
        &buyer_toml("a", &a, ""),
    );
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let pings_held = l.ex().admission().ping_calls(&budgets(&l), 3).unwrap();
    assert_shed(&ping_reply(&l));
    assert_eq!(a.buyer.pings(), 1, "the shed ping called nobody");
    let r = post(&l, &id, "5552345678");
    assert_eq!(
        r.json()["status"],
        "sold",
        "the post used the reserve pings cannot take"
    );
    drop(pings_held);
    assert_eq!(ping(&l)["status"], "bid");
}

#[test]
fn a_post_without_a_buyer_call_permit_answers_503_and_a_retry_still_sells_to_the_best_bidder() {
    let best = mock(Act::Bid(20.0), Act::Accept("BEST-1"));
    let next = mock(Act::Bid(10.0), Act::Accept("NEXT-1"));
    let l = start_with(
        "buyer_calls_in_flight_max = 3",
        "",
        &(buyer_toml("best", &best, "") + &buyer_toml("next", &next, "")),
    );
    let id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let b = budgets(&l);
    let held: Vec<_> = (0..3)
        .map(|_| l.ex().admission().post_call(&b).unwrap())
        .collect();
    let r = post(&l, &id, "5552345678");
    assert_shed(&r);
    assert_eq!(
        (best.buyer.posts(), next.buyer.posts()),
        (0, 0),
        "no buyer was offered the lead, no lower bidder either"
    );
    drop(held);
    let v = post(&l, &id, "5552345678").json();
    assert_eq!(v["status"], "sold", "the lead was not settled unsold: {v}");
    assert_eq!((best.buyer.posts(), next.buyer.posts()), (1, 0));
    let lead = get(
        l.addr,
        &format!("/v1/admin/leads/{}", v["lead_id"].as_str().unwrap()),
        ADMIN,
    )
    .json();
    assert_eq!(lead["buyer"], "best");
}

#[test]
fn permits_come_back_after_many_auctions_and_posts_with_failing_buyers() {
    let five = mock(Act::Status(500), Act::Status(500));
    let junk = mock(Act::Garbage, Act::Garbage);
    let hang = mock(Act::Hang, Act::Hang);
    let bids = mock(Act::Delay(20, Box::new(Act::Bid(9.0))), Act::Reject);
    let gone = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let refused = format!("[[buyer]]\nid = \"gone\"\nverticals = [\"auto\"]\nping_url = \"http://{gone}/ping\"\npost_url = \"http://{gone}/post\"\n");
    let buyers = buyer_toml("five", &five, "")
        + &buyer_toml("junk", &junk, "")
        + &buyer_toml("hang", &hang, "")
        + &buyer_toml("bids", &bids, "")
        + &refused;
    let l = start_with("", "ping_timeout_ms = 200\npost_timeout_ms = 300", &buyers);
    let addr = l.addr;
    std::thread::scope(|s| {
        for t in 0..6 {
            s.spawn(move || {
                for i in 0..6 {
                    let r = post_json(addr, "/v1/ping", KEY, &json!({"vertical": "auto", "lead": ping_lead()}));
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    let id = r.json()["ping_id"].as_str().unwrap().to_string();
                    let phone = format!("55523{:05}", t * 100 + i);
                    let p = post_json(addr, "/v1/post", KEY, &json!({"ping_id": id, "lead": full_lead(&phone, "a@b.co"), "consent": consent()}));
                    assert_eq!(p.status, 200, "{}", String::from_utf8_lossy(&p.body));
                }
            });
        }
    });
    assert!(bids.buyer.posts() > 0, "posts ran and failed");
    let adm = l.ex().admission();
    let back = eventually(Duration::from_secs(10), || {
        adm.auctions_in_flight() == 0 && adm.buyer_calls_in_flight() == 0
    });
    assert!(
        back,
        "permits leaked: auctions {} calls {}",
        adm.auctions_in_flight(),
        adm.buyer_calls_in_flight()
    );
    assert_eq!(adm.post_calls_in_flight(), 0);
}
