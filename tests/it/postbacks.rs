//! Postbacks (contract §13) on real sockets: a publisher endpoint that is
//! down for a while, one that hangs, a kill -9 with events pending, the
//! signature, and the `returned` event. Assertions are on outcomes and
//! counts, never on how fast something was.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadx::clock::{Clock, ManualClock};
use leadx::http::server::{self, Handler, Request, Response, ServerHandle, ServerOptions};
use leadx::privacy::{ReplayCache, SigningKey};
use parking_lot::Mutex;
use serde_json::json;

use crate::privacy::start_with_text;
use crate::support::*;

/// What the publisher's endpoint does with a postback.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    Down,
    /// Accepts and reads, never answers (for longer than any test).
    Hang,
}

struct SinkState {
    mode: Mutex<Mode>,
    /// Every request seen: its `Leadx-Signature` and body.
    seen: Mutex<Vec<(Option<String>, Vec<u8>)>>,
    /// Bodies answered 2xx.
    delivered: Mutex<Vec<serde_json::Value>>,
    in_flight: AtomicUsize,
    in_flight_peak: AtomicUsize,
}

struct Sink {
    state: Arc<SinkState>,
    server: ServerHandle,
}

struct SinkHandler(Arc<SinkState>);

impl Handler for SinkHandler {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let s = &self.0;
        let sig = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("leadx-signature"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned());
        let body: serde_json::Value = serde_json::from_slice(req.body).unwrap_or_default();
        s.seen.lock().push((sig, req.body.to_vec()));
        let n = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.in_flight_peak.fetch_max(n, Ordering::SeqCst);
        let mode = *s.mode.lock();
        let status = match mode {
            Mode::Ok => {
                s.delivered.lock().push(body);
                204
            }
            Mode::Down => 503,
            Mode::Hang => {
                may::coroutine::sleep(Duration::from_secs(20));
                503
            }
        };
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        Response {
            status,
            content_type: "application/json",
            headers: vec![],
            body: Vec::new(),
        }
    }
}

fn sink(mode: Mode) -> Sink {
    let state = Arc::new(SinkState {
        mode: Mutex::new(mode),
        seen: Mutex::new(vec![]),
        delivered: Mutex::new(vec![]),
        in_flight: AtomicUsize::new(0),
        in_flight_peak: AtomicUsize::new(0),
    });
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = server::start(
        listener,
        ServerOptions::default(),
        Arc::new(SinkHandler(state.clone())),
    )
    .unwrap();
    Sink { state, server }
}

impl Sink {
    fn url(&self) -> String {
        format!("http://{}/postback", self.server.local_addr())
    }
    fn set(&self, m: Mode) {
        *self.state.mode.lock() = m;
    }
    fn seen(&self) -> usize {
        self.state.seen.lock().len()
    }
    /// Distinct `lead_id:event` delivered.
    fn delivered(&self) -> BTreeSet<String> {
        self.state
            .delivered
            .lock()
            .iter()
            .map(|b| {
                format!(
                    "{}:{}",
                    b["lead_id"].as_str().unwrap_or(""),
                    b["event"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Config edit: `pub` (the one with `share`) gets `extra` keys, and a
/// `[postbacks]` table with fast retries for the tests.
fn with_postback(text: String, share: &str, extra: &str) -> String {
    text.replacen(
        &format!("revenue_share = {share}\n"),
        &format!("revenue_share = {share}\n{extra}\n"),
        1,
    ) + "\n[postbacks]\nretry_base_ms = 20\nretry_max_ms = 200\n"
}

/// leadx with pub1 posting back to `s` and one direct-post buyer, `flat`,
/// at a fixed $10.00.
fn start_flat(buyer: &Mock, s: &Sink, clock: Arc<dyn Clock>) -> Leadx {
    let url = format!("postback_url = \"{}\"", s.url());
    start_with_text(
        |t| with_postback(t, "0.8", &url),
        &direct_buyer_toml("flat", buyer, "10.00", ""),
        clock,
    )
}

fn sell_as(addr: SocketAddr, key: &str, phone: &str) -> String {
    let body = json!({"vertical": "auto", "lead": full_lead(phone, &format!("{phone}@x.co")), "consent": consent()});
    let r = post_json(addr, "/v1/leads", key, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "sold");
    r.json()["lead_id"].as_str().unwrap().to_string()
}

fn metric(addr: SocketAddr, line_start: &str) -> Option<f64> {
    let text = String::from_utf8(get(addr, "/metrics", "").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn an_endpoint_down_for_a_while_then_back_gets_every_event() {
    let buyer = mock(Act::NoBid, Act::Accept("B"));
    let s = sink(Mode::Down);
    let l = start_flat(&buyer, &s, Arc::new(leadx::clock::SystemClock));
    let ids: Vec<String> = (0..6)
        .map(|i| sell_as(l.addr, KEY, &format!("555234{i:04}")))
        .collect();
    // Down: every event is tried, refused and tried again.
    assert!(
        eventually(20, || s.seen() >= 3 * ids.len()),
        "retries: {}",
        s.seen()
    );
    assert!(s.delivered().is_empty());
    assert_eq!(
        metric(
            l.addr,
            "leadx_postbacks_delivered_total{publisher=\"pub1\"} "
        ),
        Some(0.0)
    );
    assert!(
        metric(
            l.addr,
            "leadx_postback_attempts_failed_total{publisher=\"pub1\"} "
        )
        .unwrap()
            >= 3.0
    );
    assert!(eventually(5, || metric(l.addr, "leadx_postbacks_pending ")
        == Some(6.0)));
    s.set(Mode::Ok);
    let want: BTreeSet<String> = ids.iter().map(|id| format!("{id}:sold")).collect();
    assert!(
        eventually(20, || s.delivered() == want),
        "delivered {:?}",
        s.delivered()
    );
    let one = s.state.delivered.lock()[0].clone();
    assert_eq!(
        one["price"].as_f64(),
        Some(8.0),
        "the publisher's payout: {one}"
    );
    assert!(one["ping_id"].is_string() && one["at"].is_string() && one["test"] == false);
    assert!(eventually(5, || metric(l.addr, "leadx_postbacks_pending ")
        == Some(0.0)));
    assert_eq!(
        metric(
            l.addr,
            "leadx_postbacks_delivered_total{publisher=\"pub1\"} "
        ),
        Some(6.0)
    );
    // pub2 has no postback_url: nothing for it.
    assert_eq!(
        metric(
            l.addr,
            "leadx_postbacks_delivered_total{publisher=\"pub2\"} "
        ),
        None
    );
}

/// A hanging endpoint holds at most `per_publisher_max` deliveries and
/// costs pings, posts and other publishers' postbacks nothing.
#[test]
fn a_hanging_endpoint_costs_no_ping_post_or_other_publisher_anything() {
    let buyer = mock(Act::Bid(10.0), Act::Accept("B"));
    let hung = sink(Mode::Hang);
    let fine = sink(Mode::Ok);
    let (u1, u2) = (
        format!("postback_url = \"{}\"", hung.url()),
        format!("postback_url = \"{}\"", fine.url()),
    );
    let l = start_with_text(
        |t| {
            with_postback(t, "0.8", &u1).replacen(
                "revenue_share = 0.5\n",
                &format!("revenue_share = 0.5\n{u2}\n"),
                1,
            ) + "per_publisher_max = 2\ntimeout_ms = 60000\n"
        },
        &buyer_toml("b", &buyer, ""),
        Arc::new(leadx::clock::SystemClock),
    );
    let mut pub2 = Vec::new();
    for i in 0..12 {
        sell_as(l.addr, KEY, &format!("555235{i:04}"));
        let p = ping(&l);
        assert_eq!(p["status"], "bid", "pings keep answering");
        pub2.push(sell_as(l.addr, KEY2, &format!("555236{i:04}")));
    }
    let want: BTreeSet<String> = pub2.iter().map(|id| format!("{id}:sold")).collect();
    assert!(
        eventually(20, || fine.delivered() == want),
        "pub2 got {:?}",
        fine.delivered()
    );
    assert!(eventually(5, || hung
        .state
        .in_flight
        .load(Ordering::SeqCst)
        == 2));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        hung.state.in_flight_peak.load(Ordering::SeqCst),
        2,
        "per_publisher_max"
    );
    assert_eq!(hung.seen(), 2, "no more than the slots were tried");
}

/// Events pending when leadx is killed -9 are delivered after a restart.
#[test]
fn events_pending_at_kill_9_are_delivered_after_a_restart() {
    let buyer = mock(Act::NoBid, Act::Accept("B"));
    let s = sink(Mode::Down);
    let dir = tempfile::tempdir().unwrap();
    let text = with_postback(
        base_toml(&dir.path().join("data"), "", ""),
        "0.8",
        &format!("postback_url = \"{}\"", s.url()),
    ) + &direct_buyer_toml("flat", &buyer, "4.00", "");
    let path = dir.path().join("leadx.toml");
    std::fs::write(&path, text).unwrap();
    let (mut child, addr) = crate::crash::spawn_leadx(&path);
    let ids: Vec<String> = (0..15)
        .map(|i| sell_as(addr, KEY, &format!("555237{i:04}")))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    s.set(Mode::Ok);
    let (mut child, _addr) = crate::crash::spawn_leadx(&path);
    let want: BTreeSet<String> = ids.iter().map(|id| format!("{id}:sold")).collect();
    let ok = eventually(20, || s.delivered() == want);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ok, "delivered {} of {}", s.delivered().len(), want.len());
}

const SIGNING: &str = "pub1-postback-secret-0123456789";

/// A signing publisher's postbacks carry `Leadx-Signature` made with its
/// secret (checked with the same verifier leadx uses), and a return sends
/// a `returned` event.
#[test]
fn postbacks_are_signed_and_a_return_sends_returned() {
    let buyer = mock(Act::NoBid, Act::Accept("B"));
    let s = sink(Mode::Ok);
    let clock = Arc::new(ManualClock::new());
    let extra = format!(
        "postback_url = \"{}\"\nsigning_secret = \"{SIGNING}\"",
        s.url()
    );
    let l = start_with_text(
        |t| with_postback(t, "0.8", &extra),
        &direct_buyer_toml("flat", &buyer, "10.00", ""),
        clock.clone(),
    );
    let key = SigningKey::new(SIGNING.as_bytes());
    let body = json!({"vertical": "auto", "lead": full_lead("5552380001", "s@x.co"), "consent": consent()}).to_string();
    let auth = format!("Bearer {KEY}");
    let sig = key.sign(clock.now_ms() / 1000, body.as_bytes());
    let r = request(
        l.addr,
        "POST",
        "/v1/leads",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Leadx-Signature", &sig),
        ],
        body.as_bytes(),
    );
    let id = r.sold_lead_id();
    assert!(eventually(10, || s
        .delivered()
        .contains(&format!("{id}:sold"))));
    let r = request(
        l.addr,
        "POST",
        &format!("/v1/admin/leads/{id}/return"),
        &[
            ("Authorization", &format!("Bearer {ADMIN}")),
            ("Content-Type", "application/json"),
        ],
        br#"{"reason":"bad lead"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(eventually(10, || s
        .delivered()
        .contains(&format!("{id}:returned"))));
    let seen = s.state.seen.lock().clone();
    assert_eq!(seen.len(), 2);
    let cache = ReplayCache::default();
    let wrong = SigningKey::new(b"another-secret-0123456789abcdef");
    for (sig, raw) in &seen {
        let sig = sig.as_deref().expect("signed").as_bytes();
        let now = clock.now_ms();
        assert!(leadx::privacy::signature::verify(
            &wrong,
            Some(sig),
            raw,
            now,
            &ReplayCache::default()
        )
        .is_err());
        leadx::privacy::signature::verify(&key, Some(sig), raw, now, &cache)
            .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(raw)));
    }
    let returned: serde_json::Value = serde_json::from_slice(&seen[1].1).unwrap();
    assert_eq!(
        (
            returned["event"].as_str(),
            returned["lead_id"].as_str(),
            returned["price"].as_f64()
        ),
        (Some("returned"), Some(id.as_str()), Some(8.0))
    );
}

/// Architecture invariant: a sale's (and a return's) postback event is
/// written in the same batch as the sale, so it is in the store the moment
/// `sold` is answered — no later write that a crash could lose. The
/// endpoint is down and the clock stands still, so nothing is delivered
/// or rescheduled out of sight.
#[test]
fn the_event_is_written_in_the_sales_batch() {
    let buyer = mock(Act::NoBid, Act::Accept("B"));
    let s = sink(Mode::Down);
    let clock = Arc::new(ManualClock::new());
    let l = start_flat(&buyer, &s, clock.clone());
    let events = || -> Vec<String> {
        let rows = l
            .ex()
            .store()
            .scan_prefix(leadx::store::Tree::Outbox, b"", 1000)
            .unwrap();
        rows.iter()
            .map(|(_, v)| leadx::records::decode_outbox(v).unwrap().event_id)
            .collect()
    };
    for i in 0..5 {
        let id = sell_as(l.addr, KEY, &format!("555239{i:04}"));
        assert!(
            events().contains(&format!("{id}:sold")),
            "no event with the sale of {id}"
        );
        let r = request(
            l.addr,
            "POST",
            &format!("/v1/admin/leads/{id}/return"),
            &[
                ("Authorization", &format!("Bearer {ADMIN}")),
                ("Content-Type", "application/json"),
            ],
            br#"{"reason":"x"}"#,
        );
        assert_eq!(r.status, 200);
        assert!(
            events().contains(&format!("{id}:returned")),
            "no event with the return of {id}"
        );
    }
    // pub2 has no postback_url: its sales write no event.
    let before = events().len();
    sell_as(l.addr, KEY2, "5552399999");
    assert_eq!(events().len(), before);
}

/// The same invariant where it bites: the store fails while the buyer
/// holds the post, so the sale is kept (`exchange::outcomes`) and written
/// later with its whole batch. Its event comes with it; an event written
/// on its own would have been refused with the failing write and lost.
#[test]
fn a_kept_sale_brings_its_event_when_it_is_recorded() {
    use leadx::store::Fault;
    let a = mock(
        Act::Bid(10.0),
        Act::Delay(600, Box::new(Act::Accept("B-77"))),
    );
    let s = sink(Mode::Ok);
    let url = format!("postback_url = \"{}\"", s.url());
    let l = start_with_text(
        |t| with_postback(t, "0.8", &url),
        &buyer_toml("a", &a, ""),
        Arc::new(leadx::clock::SystemClock),
    );
    let ping_id = ping(&l)["ping_id"].as_str().unwrap().to_string();
    let body = json!({"ping_id": ping_id, "lead": full_lead("5552391111", "k@x.co"), "consent": consent()});
    let addr = l.addr;
    let poster = std::thread::spawn({
        let body = body.clone();
        move || post_json(addr, "/v1/post", KEY, &body)
    });
    assert!(eventually(15, || a.buyer.posts() == 1));
    l.ex().store().inject_fault(Fault::FailWrites);
    assert_eq!(poster.join().unwrap().status, 503);
    l.ex().store().inject_fault(Fault::None);
    assert!(
        eventually(15, || l.ex().kept_sales() == 0),
        "never recorded"
    );
    let sold = post_json(addr, "/v1/post", KEY, &body);
    let id = sold.sold_lead_id();
    assert!(
        eventually(15, || s.delivered().contains(&format!("{id}:sold"))),
        "the kept sale's event was lost"
    );
}

/// After `give_up_after_s` (24 h by default) of failed attempts an event is
/// marked failed: kept in the outbox, counted, no longer tried. Business
/// time moves on a `ManualClock`; nothing sleeps a day.
#[test]
fn an_event_failing_for_24_hours_is_marked_failed_and_kept() {
    let buyer = mock(Act::NoBid, Act::Accept("B"));
    let s = sink(Mode::Down);
    let clock = Arc::new(ManualClock::new());
    let l = start_flat(&buyer, &s, clock.clone());
    let id = sell_as(l.addr, KEY, "5552397777");
    assert!(eventually(10, || s.seen() == 1), "the first attempt");
    let failed = "leadx_postbacks_failed_total{publisher=\"pub1\"} ";
    // Short of a day: retried, not given up.
    clock.advance_ms(86_400_000 - 1_000);
    assert!(eventually(10, || s.seen() == 2), "a retry");
    assert_eq!(metric(l.addr, failed), Some(0.0));
    clock.advance_ms(1_000);
    assert!(eventually(10, || metric(l.addr, failed) == Some(1.0)));
    assert!(eventually(5, || metric(l.addr, "leadx_postbacks_pending ")
        == Some(0.0)));
    let seen = s.seen();
    clock.advance_ms(86_400_000);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.seen(), seen, "a failed event is not tried again");
    let rows = l
        .ex()
        .store()
        .scan_prefix(leadx::store::Tree::Outbox, &[1], 10)
        .unwrap();
    assert_eq!(rows.len(), 1, "kept in the failed range");
    let e = leadx::records::decode_outbox(&rows[0].1).unwrap();
    assert_eq!((e.event_id, e.attempts >= 3), (format!("{id}:sold"), true));
}
