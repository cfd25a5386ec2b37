//! Routing controls (contract §10) through a real leadx with real buyer
//! sockets: every skip reason recorded for the right buyer in
//! `/v1/admin/transactions` and `/v1/admin/leads/{id}`, caps in a buyer's
//! zone across its local midnight, budgets, schedules, the breaker and the
//! concurrency gate, `no_time`, and caps that survive a restart (also the
//! sales a v1 leadx stored). Business time is a `ManualClock`.

use std::sync::Arc;

use leadx::clock::ManualClock;
use serde_json::Value;

use crate::support::*;

/// Milliseconds of an RFC 3339 instant.
fn at(rfc3339: &str) -> u64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
}

/// A ping buyer of `verticals` (TOML array text) on mock `m`.
fn buyer(id: &str, m: &Mock, verticals: &str, extra: &str) -> String {
    format!(
        "[[buyer]]\nid = \"{id}\"\nverticals = {verticals}\nping_url = \"http://{a}/ping\"\npost_url = \"http://{a}/post\"\n{extra}\n",
        a = m.addr()
    )
}

fn newest_transaction(l: &Leadx) -> Value {
    let r = get(l.addr, "/v1/admin/transactions?limit=1", ADMIN);
    assert_eq!(r.status, 200);
    r.json()["transactions"][0].clone()
}

/// The reason recorded for `buyer` among `calls` (a `ping_calls` or
/// `post_calls` array), or "called" when it was called without one.
fn reason_of(calls: &Value, buyer: &str) -> String {
    let call = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["buyer"] == buyer)
        .unwrap_or_else(|| panic!("no call record for {buyer} in {calls}"));
    call["reason"].as_str().unwrap_or("called").to_string()
}

fn ping_reason(l: &Leadx, buyer: &str) -> String {
    reason_of(&newest_transaction(l)["ping_calls"], buyer)
}

fn sell(l: &Leadx, phone: &str) -> Value {
    let p = ping(l);
    assert_eq!(p["status"], "bid", "{p}");
    let r = post(l, p["ping_id"].as_str().unwrap(), phone).json();
    assert_eq!(r["status"], "sold", "{r}");
    r
}

fn metrics(l: &Leadx) -> String {
    String::from_utf8(get(l.addr, "/metrics", ADMIN).body).unwrap()
}

fn stats_buyer(l: &Leadx, i: usize) -> Value {
    get(l.addr, "/v1/admin/stats", ADMIN).json()["buyers"][i].clone()
}

#[test]
fn every_ping_skip_is_recorded_for_its_buyer_with_its_reason() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    // Monday 10:00 UTC.
    let clock = Arc::new(ManualClock::at(at("2026-12-07T10:00:00Z")));
    let buyers = [
        buyer("home_only", &m, "[\"home\"]", ""),
        buyer(
            "texas",
            &m,
            "[\"auto\"]",
            "[buyer.filter]\nstates = [\"TX\"]",
        ),
        buyer("sf", &m, "[\"auto\"]", "[buyer.filter]\nzips = [\"941*\"]"),
        buyer(
            "credit",
            &m,
            "[\"auto\"]",
            "[buyer.filter]\ncredit = [\"excellent\"]",
        ),
        buyer(
            "pub2_only",
            &m,
            "[\"auto\"]",
            "[buyer.filter]\npublishers = [\"pub2\"]",
        ),
        buyer(
            "mornings",
            &m,
            "[\"auto\"]",
            "[buyer.schedule]\nmon = [\"08:00-09:00\", \"12:00-13:00\"]",
        ),
        buyer("open", &m, "[\"auto\"]", ""),
        direct_buyer_toml("fixed", &m, "4.00", "[buyer.caps]\ndaily_budget = 5.00"),
    ]
    .concat();
    let l = start_with_clock("", "", &buyers, clock.clone());
    let p = ping(&l);
    assert_eq!(p["status"], "bid");
    for (b, why) in [
        ("home_only", "vertical_not_bought"),
        ("texas", "filter_state"),
        ("sf", "filter_zip"),
        ("credit", "filter_credit"),
        ("pub2_only", "filter_publisher"),
        ("mornings", "schedule"),
        ("open", "called"),
        ("fixed", "called"),
    ] {
        assert_eq!(ping_reason(&l, b), why, "{b}");
    }
    assert_eq!(m.buyer.pings(), 1, "only the open buyer was pinged");
    // The lead view shows the ping's reasons too; the fixed-price buyer
    // wins the tie (an instant bid) and buys at 4.00 ...
    let sold = post(&l, p["ping_id"].as_str().unwrap(), "3125550901").json();
    assert_eq!(sold["status"], "sold", "{sold}");
    let lead = get(
        l.addr,
        &format!("/v1/admin/leads/{}", sold["lead_id"].as_str().unwrap()),
        ADMIN,
    )
    .json();
    assert_eq!(lead["buyer"], "fixed");
    assert_eq!(reason_of(&lead["ping_calls"], "texas"), "filter_state");
    assert_eq!(reason_of(&lead["ping_calls"], "mornings"), "schedule");
    // The schedule opens at noon (the buyer's zone is UTC).
    clock.set_ms(at("2026-12-07T12:00:00Z"));
    ping(&l);
    assert_eq!(ping_reason(&l, "mornings"), "called");
    clock.set_ms(at("2026-12-07T13:00:00Z"));
    ping(&l);
    assert_eq!(
        ping_reason(&l, "mornings"),
        "schedule",
        "ranges end exclusive"
    );
    // ... so its price no longer fits its budget of 5.00 at the next ping.
    ping(&l);
    assert_eq!(ping_reason(&l, "fixed"), "cap_daily_budget");
    let text = metrics(&l);
    for (b, why) in [("texas", "filter_state"), ("mornings", "schedule")] {
        let line = format!("leadx_buyer_skips_total{{buyer=\"{b}\",reason=\"{why}\"}} ");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

/// A daily cap counts the buyer's day: in New York it frees up at local
/// midnight (05:00 UTC in December), not at UTC midnight.
#[test]
fn a_daily_cap_in_new_york_frees_up_at_new_york_midnight() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let clock = Arc::new(ManualClock::at(at("2026-12-07T04:58:00Z")));
    let extra = "timezone = \"America/New_York\"\n[buyer.caps]\ndaily = 1";
    let l = start_with_clock("", "", &buyer_toml("ny", &m, extra), clock.clone());
    sell(&l, "3125550501");
    assert_eq!(ping(&l)["status"], "no_bid");
    assert_eq!(ping_reason(&l, "ny"), "cap_daily");
    clock.set_ms(at("2026-12-07T04:59:59Z"));
    assert_eq!(ping(&l)["status"], "no_bid", "23:59:59 in New York");
    clock.set_ms(at("2026-12-07T05:00:00Z"));
    assert_eq!(
        ping(&l)["status"],
        "bid",
        "a new day in New York, same UTC day"
    );
    let caps = &stats_buyer(&l, 0)["caps"];
    assert_eq!(caps["daily"], serde_json::json!({"used": 0, "limit": 1}));
    assert_eq!(
        caps["weekly"]["used"], 0,
        "Monday 00:00 in New York: a new week"
    );
    assert_eq!(
        caps["monthly"]["used"], 1,
        "the sale is in this month still"
    );
}

/// A budget is a sum of accepted prices: the post that would pass it is
/// not offered to the buyer, and the lead view says why.
#[test]
fn a_daily_budget_stops_the_post_that_would_pass_it() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let clock = Arc::new(ManualClock::at(at("2026-12-07T10:00:00Z")));
    let buyers = buyer_toml("b", &m, "[buyer.caps]\ndaily_budget = 5.00");
    let l = start_with_clock("", "", &buyers, clock.clone());
    sell(&l, "3125550601");
    let p = ping(&l);
    assert_eq!(p["status"], "bid", "one cent would still fit at the ping");
    let posts = m.buyer.posts();
    let r = post(&l, p["ping_id"].as_str().unwrap(), "3125550602").json();
    assert_eq!(r["status"], "unsold", "{r}");
    assert_eq!(m.buyer.posts(), posts, "the buyer was not offered the lead");
    let lead = get(
        l.addr,
        &format!("/v1/admin/leads/{}", r["lead_id"].as_str().unwrap()),
        ADMIN,
    )
    .json();
    assert_eq!(reason_of(&lead["post_calls"], "b"), "cap_daily_budget");
    assert_eq!(
        reason_of(&newest_transaction(&l)["post_calls"], "b"),
        "cap_daily_budget"
    );
    let caps = &stats_buyer(&l, 0)["caps"];
    assert_eq!(
        caps["daily_budget"],
        serde_json::json!({"used": 4.0, "limit": 5.0})
    );
    // A new day (UTC here), a new budget.
    clock.set_ms(at("2026-12-08T00:00:00Z"));
    sell(&l, "3125550603");
}

/// `breaker_failures` failures in a row open the breaker: the buyer is
/// skipped as `circuit_open`, one trial call goes through per cooldown, a
/// failed trial keeps it open and a success closes it.
#[test]
fn the_breaker_opens_after_failures_lets_one_trial_per_cooldown_and_closes_on_success() {
    let m = mock(Act::Status(503), Act::Accept("B1"));
    let t0 = at("2026-12-07T10:00:00Z");
    let clock = Arc::new(ManualClock::at(t0));
    let health = "[buyer.health]\nbreaker_failures = 2\nbreaker_cooldown_ms = 5000";
    let l = start_with_clock("", "", &buyer_toml("b", &m, health), clock.clone());
    let state = |l: &Leadx| {
        let text = metrics(l);
        let line = text
            .lines()
            .find(|s| s.starts_with("leadx_buyer_breaker_state{buyer=\"b\"}"))
            .unwrap_or_else(|| panic!("no breaker state in\n{text}"))
            .to_string();
        line.rsplit(' ').next().unwrap().to_string()
    };
    assert_eq!(state(&l), "0");
    ping(&l);
    assert_eq!(ping_reason(&l, "b"), "http_503");
    ping(&l);
    assert_eq!(m.buyer.pings(), 2);
    assert_eq!(state(&l), "1", "open after 2 failures");
    ping(&l);
    // The §10 families are valid exposition (one HELP/TYPE each, bounded
    // labels), also for promtool when it is installed.
    let text = metrics(&l);
    // (Series are process-wide and other tests name a buyer "b" too.)
    assert!(text.contains("leadx_buyer_skips_total{buyer=\"b\",reason=\"circuit_open\"} "));
    crate::ops::check_exposition(&text);
    if crate::ops::have_tool("promtool") {
        crate::ops::promtool_check(&text);
    }
    assert_eq!(ping_reason(&l, "b"), "circuit_open");
    assert_eq!(m.buyer.pings(), 2, "not called while open");
    clock.set_ms(t0 + 5000);
    assert_eq!(state(&l), "2", "a trial is due");
    ping(&l);
    assert_eq!(m.buyer.pings(), 3, "the trial call");
    ping(&l);
    assert_eq!(
        ping_reason(&l, "b"),
        "circuit_open",
        "one trial per cooldown"
    );
    assert_eq!(m.buyer.pings(), 3);
    clock.set_ms(t0 + 10_000);
    m.buyer.set_ping(Act::Bid(4.0));
    assert_eq!(ping(&l)["status"], "bid", "the second trial succeeds");
    assert_eq!(state(&l), "0", "a success closes it");
    assert_eq!(ping(&l)["status"], "bid");
    assert_eq!(m.buyer.pings(), 5);
}

/// `concurrency_max`: a call beyond it is not made, the buyer is skipped
/// as `concurrency`; the slot comes back when the slow call ends.
#[test]
fn a_buyer_at_its_concurrency_max_is_skipped() {
    let m = mock(Act::Delay(700, Box::new(Act::Bid(4.0))), Act::Accept("B1"));
    let extra = "ping_timeout_ms = 800\n[buyer.health]\nconcurrency_max = 1";
    let l = Arc::new(start(
        "ping_timeout_ms = 1000",
        "",
        &buyer_toml("slow", &m, extra),
    ));
    let first = {
        let l = l.clone();
        std::thread::spawn(move || ping(&l))
    };
    while m.buyer.pings() == 0 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(ping(&l)["status"], "no_bid");
    assert_eq!(ping_reason(&l, "slow"), "concurrency");
    let text = metrics(&l);
    assert!(
        text.contains("leadx_buyer_in_flight{buyer=\"slow\"} 1\n"),
        "{text}"
    );
    assert_eq!(m.buyer.pings(), 1);
    assert_eq!(first.join().unwrap()["status"], "bid");
    assert_eq!(ping(&l)["status"], "bid", "the slot came back");
}

/// Less time left than leadx needs to call a buyer: not called, `no_time`.
#[test]
fn a_buyer_without_time_left_is_skipped_as_no_time() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let l = start("ping_timeout_ms = 4", "", &buyer_toml("b", &m, ""));
    assert_eq!(ping(&l)["status"], "no_bid");
    assert_eq!(ping_reason(&l, "b"), "no_time");
    assert_eq!(m.buyer.pings(), 0);
}

/// Caps and budgets are counted from the store after a restart, and so are
/// the sales a v1 leadx stored today (as `cap_sale` keys: counted, priced
/// 0, so a budget cannot see them).
#[test]
fn caps_survive_a_restart_and_count_v1_sales() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let now = at("2026-12-07T10:00:00Z");
    let clock = Arc::new(ManualClock::at(now));
    let extra = "[buyer.caps]\ndaily = 3\nmonthly_budget = 100.00";
    let mut l = start_with_clock("", "", &buyer_toml("b", &m, extra), clock.clone());
    sell(&l, "3125550701");
    let mut v1 = leadx::store::Batch::default();
    let day = (now / 86_400_000) as u32;
    v1.insert(
        leadx::store::Tree::Caps,
        leadx::records::keys::cap_sale("b", day, "V1LEAD"),
        leadx::records::encode_marker(),
    );
    l.ex().store().write_durable(v1).unwrap();
    l.restart();
    let caps = &stats_buyer(&l, 0)["caps"];
    assert_eq!(caps["daily"]["used"], 2, "{caps}");
    assert_eq!(caps["monthly_budget"]["used"], 4.0, "{caps}");
    sell(&l, "3125550702");
    assert_eq!(ping(&l)["status"], "no_bid");
    assert_eq!(ping_reason(&l, "b"), "cap_daily");
    l.restart();
    assert_eq!(ping_reason_after_ping(&l), "cap_daily", "still capped");
}

fn ping_reason_after_ping(l: &Leadx) -> String {
    assert_eq!(ping(l)["status"], "no_bid");
    ping_reason(l, "b")
}

/// A post that fails counts toward the breaker too: a failed post (a
/// non-2xx, recorded as `http_500`) opens a breaker of one failure, and the
/// next ping skips the buyer.
#[test]
fn a_failed_post_opens_the_breaker() {
    let m = mock(Act::Bid(4.0), Act::Status(500));
    let health = "[buyer.health]\nbreaker_failures = 1\nbreaker_cooldown_ms = 60000";
    let clock = Arc::new(ManualClock::at(at("2026-12-07T10:00:00Z")));
    let l = start_with_clock("", "", &buyer_toml("b", &m, health), clock);
    let p = ping(&l);
    let r = post(&l, p["ping_id"].as_str().unwrap(), "3125550801").json();
    assert_eq!(r["status"], "unsold");
    let lead = get(
        l.addr,
        &format!("/v1/admin/leads/{}", r["lead_id"].as_str().unwrap()),
        ADMIN,
    )
    .json();
    assert_eq!(reason_of(&lead["post_calls"], "b"), "http_500");
    assert_eq!(
        reason_of(&lead["ping_calls"], "b"),
        "called",
        "the lead view shows the ping"
    );
    assert_eq!(ping(&l)["status"], "no_bid");
    assert_eq!(ping_reason(&l, "b"), "circuit_open");
    assert_eq!(
        stats_buyer(&l, 0)["caps"]["daily"]["used"],
        0,
        "the unit came back"
    );
}

/// A reload keeps a buyer's breaker while its `[buyer.health]` is the
/// same (open stays open), and a changed section starts it afresh.
#[test]
fn a_reload_keeps_an_open_breaker_unless_its_section_changes() {
    let m = mock(Act::Status(500), Act::Accept("B1"));
    let health = "[buyer.health]\nbreaker_failures = 1\nbreaker_cooldown_ms = 60000";
    let clock = Arc::new(ManualClock::at(at("2026-12-07T10:00:00Z")));
    let l = start_with_clock("", "", &buyer_toml("b", &m, health), clock);
    ping(&l);
    m.buyer.set_ping(Act::Bid(4.0));
    // An unrelated change: a second buyer.
    let other = mock(Act::NoBid, Act::Reject);
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    std::fs::write(&l.config_path, text.clone() + &buyer_toml("c", &other, "")).unwrap();
    reload_ok(l.addr);
    assert_eq!(ping(&l)["status"], "no_bid");
    assert_eq!(
        ping_reason(&l, "b"),
        "circuit_open",
        "still open after the reload"
    );
    let text = text.replace("breaker_cooldown_ms = 60000", "breaker_cooldown_ms = 30000");
    std::fs::write(&l.config_path, text).unwrap();
    reload_ok(l.addr);
    assert_eq!(
        ping(&l)["status"],
        "bid",
        "a changed section: a new breaker"
    );
}

/// Issue #9: the reasons a called buyer's failure is recorded with are one
/// documented list (`routing::FAILURES`, docs/buyers.md "Call reasons").
/// Every word the client, the native and spec answer readers and the
/// fan-out can record is in it — found by running them where that is
/// cheap, and by reading the reason literals of their sources so a word
/// added there later fails here until it is documented.
#[test]
fn every_failure_word_the_exchange_records_is_documented() {
    use leadx::buyer::native::{parse_bid_answer, parse_post_answer};
    use leadx::buyer::{BidAnswer, PostAnswer};
    use leadx::routing::{is_failure_word, FAILURES};
    let mut words: Vec<String> = leadx::http::client::CallError::ALL
        .iter()
        .map(|e| e.reason().to_string())
        .collect();
    for x in [
        leadx::xml::XmlError::Malformed,
        leadx::xml::XmlError::Doctype,
        leadx::xml::XmlError::TooDeep,
    ] {
        words.push(x.reason().into());
    }
    let bad = [
        "",
        "[]",
        "{}",
        r#"{"status":"maybe"}"#,
        r#"{"status":"bid"}"#,
        r#"{"status":"bid","price":"x"}"#,
        r#"{"status":"bid","price":-1}"#,
        r#"{"status":"bid","price":1,"ref":[1]}"#,
        r#"{"status":"accepted","lead_id":[]}"#,
    ];
    for body in bad {
        if let BidAnswer::Invalid(w) = parse_bid_answer(&mut body.as_bytes().to_vec()) {
            words.push(w.into());
        }
        if let PostAnswer::Invalid(w) = parse_post_answer(&mut body.as_bytes().to_vec()) {
            words.push(w.into());
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        "src/buyer/native/answer.rs",
        "src/buyer/spec/answer.rs",
        "src/buyer/spec/mod.rs",
        "src/exchange/fanout.rs",
        "src/http/client/mod.rs",
    ];
    for file in sources {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap();
        for open in [
            "Err(\"",
            "Invalid(\"",
            "|_| \"",
            "ok_or(\"",
            "reason: \"",
            "reason: Some(\"",
            "=> \"",
            "STAGE: &str = \"",
        ] {
            for piece in text.split(open).skip(1) {
                let lit = piece.split('"').next().unwrap();
                let snake = !lit.is_empty()
                    && lit
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if snake {
                    words.push(lit.to_string());
                }
            }
        }
    }
    // Words of the native protocol and the format names are no reasons.
    let not_reasons = [
        "json", "xml", "soap", "form", "bid", "no_bid", "accepted", "rejected",
    ];
    words.retain(|w| !not_reasons.contains(&w.as_str()));
    words.sort();
    words.dedup();
    assert!(words.len() >= 20, "found the reasons: {words:?}");
    let undocumented: Vec<&String> = words.iter().filter(|w| !is_failure_word(w)).collect();
    assert!(
        undocumented.is_empty(),
        "not in routing::FAILURES: {undocumented:?}"
    );
    let guide = std::fs::read_to_string(root.join("docs/buyers.md")).unwrap();
    for (w, _) in FAILURES {
        assert!(
            guide.contains(&format!("`{w}`")),
            "docs/buyers.md does not list `{w}`"
        );
    }
}
