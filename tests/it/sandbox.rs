//! Sandbox publishers (contract §13, issue #11): served by leadx's built-in
//! simulated buyers only, never by a configured buyer, and counted toward
//! nothing (caps, dedupe, billing, live statistics), with the answers a
//! live publisher gets.

use serde_json::{json, Value};

use crate::support::*;

const SANDBOX_KEY: &str = "sandbox-publisher-key";

/// A `[[publisher]]` with `sandbox = true` (appended after the buyers).
fn sandbox_publisher() -> String {
    format!(
        "[[publisher]]\nid = \"sbx\"\napi_key_sha256 = \"{}\"\nrevenue_share = 0.8\nverticals = [\"auto\"]\nsandbox = true\n",
        leadx::config::hash_key(SANDBOX_KEY.as_bytes())
    )
}

fn direct(l: &Leadx, key: &str, phone: &str) -> Reply {
    let body = json!({"vertical": "auto", "lead": full_lead(phone, "s@example.com"), "consent": consent()});
    post_json(l.addr, "/v1/leads", key, &body)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn stats(l: &Leadx) -> Value {
    get(l.addr, "/v1/admin/stats", ADMIN).json()
}

fn party<'a>(stats: &'a Value, kind: &str, id: &str) -> &'a Value {
    stats[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
}

#[test]
fn a_sandbox_publisher_never_reaches_a_configured_buyer() {
    let a = mock(Act::Bid(50.0), Act::Accept("REAL-1"));
    let d = mock(Act::NoBid, Act::Accept("REAL-2"));
    let buyers = format!(
        "{}{}{}",
        buyer_toml("a", &a, "[buyer.caps]\ndaily = 5\n"),
        direct_buyer_toml("d", &d, "40.00", ""),
        sandbox_publisher()
    );
    let l = start("", "dedupe_window_days = 30", &buyers);

    // Direct post: sold to a simulated buyer, in the live answer's shape.
    let r = direct(&l, SANDBOX_KEY, "5552345678");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let sold = r.json();
    assert_eq!(sold["status"], "sold", "{sold}");
    assert_eq!(keys(&sold), ["lead_id", "price", "status"]);
    // The same consumer again: dedupe is not consulted for the sandbox.
    assert_eq!(
        direct(&l, SANDBOX_KEY, "5552345678").json()["status"],
        "sold"
    );

    // Ping then post: the same.
    let p = post_json(
        l.addr,
        "/v1/ping",
        SANDBOX_KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    let ping = p.json();
    assert_eq!(ping["status"], "bid", "{ping}");
    let live = post_json(
        l.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    assert_eq!(
        keys(&ping),
        keys(&live.json()),
        "a sandbox ping answers like a live one"
    );
    let posted = post_json(
        l.addr,
        "/v1/post",
        SANDBOX_KEY,
        &json!({"ping_id": ping["ping_id"], "lead": full_lead("5553456789", "t@example.com"), "consent": consent()}),
    );
    assert_eq!(
        posted.json()["status"],
        "sold",
        "{}",
        String::from_utf8_lossy(&posted.body)
    );

    // The configured buyers saw nothing from the sandbox: only pub1's ping.
    assert_eq!((a.buyer.pings(), a.buyer.posts()), (1, 0));
    assert_eq!(d.buyer.posts(), 0);

    // The sale is the sandbox's: a simulated buyer, marked test.
    let lead_id = sold["lead_id"].as_str().unwrap();
    let lead = get(l.addr, &format!("/v1/admin/leads/{lead_id}"), ADMIN).json();
    assert!(
        lead["buyer"].as_str().unwrap().starts_with("sandbox_"),
        "{lead}"
    );
    assert_eq!(lead["test"], true);
    let mine = get(l.addr, &format!("/v1/leads/{lead_id}"), SANDBOX_KEY);
    assert_eq!(mine.json()["status"], "sold");

    // Counted toward nothing: stats, caps, billing.
    let s = stats(&l);
    let sbx = party(&s, "publishers", "sbx");
    assert_eq!(
        (sbx["pings"].as_u64(), sbx["sold"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(sbx["revenue"], 0.0);
    let a_stats = party(&s, "buyers", "a");
    assert_eq!(
        (a_stats["pings"].as_u64(), a_stats["sold"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(a_stats["caps"]["daily"]["used"], 0);
    assert!(s["buyers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| !b["id"].as_str().unwrap().starts_with("sandbox_")));
    let metrics = request(l.addr, "GET", "/metrics", &[], b"");
    assert!(
        !String::from_utf8_lossy(&metrics.body).contains("sandbox_"),
        "no sandbox series"
    );
    let csv = get(l.addr, "/v1/admin/leads?format=csv", ADMIN);
    assert_eq!(
        String::from_utf8_lossy(&csv.body).lines().count(),
        1,
        "header only"
    );

    // A live publisher sells the sandbox's consumer: no dedupe key was left.
    let live = post_json(
        l.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": full_lead("5552345678", "s@example.com"), "consent": consent()}),
    );
    assert_eq!(live.json()["status"], "sold");
    assert_eq!(a.buyer.posts(), 1);
}

#[test]
fn sandbox_is_a_boolean_and_survives_a_reload() {
    let a = mock(Act::Bid(50.0), Act::Accept("REAL-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    assert_eq!(direct(&l, SANDBOX_KEY, "5552345678").status, 401);
    // Made a sandbox publisher by a reload: served by the simulation.
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    std::fs::write(&l.config_path, format!("{text}\n{}", sandbox_publisher())).unwrap();
    reload_ok(l.addr);
    assert_eq!(
        direct(&l, SANDBOX_KEY, "5552345678").json()["status"],
        "sold"
    );
    assert_eq!(a.buyer.pings() + a.buyer.posts(), 0);
    let bad = sandbox_publisher().replace("sandbox = true", "sandbox = \"yes\"");
    let errs = leadx::config::parse(&format!("{text}\n{bad}"), &|_| None).unwrap_err();
    assert!(
        errs.iter().any(|e| e.key == "publisher[2].sandbox"),
        "{errs:?}"
    );
}
