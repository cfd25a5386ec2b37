//! Contract §12 on the wire: signed requests and suppression lists, with
//! real HTTP against leadx in-process and a `ManualClock` for time.

use std::net::SocketAddr;
use std::sync::Arc;

use leadx::clock::{Clock, ManualClock};
use leadx::privacy::SigningKey;
use serde_json::json;

use crate::support::*;

/// pub1's signing secret in these tests.
const SIGNING: &str = "pub1-signing-secret-0123456789abcdef";
/// Business time the tests start at (2027-01-15).
const NOW_MS: u64 = 1_800_000_000_000;

/// leadx with pub1 signing, `extra` appended to the config, on a manual
/// clock.
fn start_signed(extra: &str, buyers: &str) -> (Leadx, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let l = start_with_text(
        |text| {
            text.replacen(
                "revenue_share = 0.8",
                &format!("revenue_share = 0.8\nsigning_secret = \"{SIGNING}\""),
                1,
            ) + extra
        },
        buyers,
        clock.clone(),
    );
    (l, clock)
}

/// Like `support::start_with_clock`, with the config text edited by `edit`.
pub fn start_with_text(
    edit: impl Fn(String) -> String,
    buyers: &str,
    clock: Arc<dyn Clock>,
) -> Leadx {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(format!(
        "{}\n{buyers}",
        base_toml(&dir.path().join("data"), "", "")
    ));
    let config_path = dir.path().join("leadx.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = leadx::config::parse(&text, &|_| None)
        .unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
    let running =
        leadx::daemon::start_with_clock(config, Some(config_path.clone()), clock.clone()).unwrap();
    let addr = running.local_addr();
    Leadx {
        running: Some(running),
        addr,
        dir,
        config_path,
        clock,
    }
}

/// POST `body` to `path` as `key`, with `signature` as `Leadx-Signature`.
fn send(addr: SocketAddr, path: &str, key: &str, signature: Option<&str>, body: &[u8]) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(s) = signature {
        headers.push(("Leadx-Signature", s));
    }
    request(addr, "POST", path, &headers, body)
}

fn ping_body() -> Vec<u8> {
    json!({"vertical": "auto", "lead": ping_lead()})
        .to_string()
        .into_bytes()
}

fn sign(secret: &str, t_ms: u64, body: &[u8]) -> String {
    SigningKey::new(secret.as_bytes()).sign(t_ms / 1000, body)
}

fn refused(r: &Reply, what: &str) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (401, "bad_signature"),
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn a_signing_publisher_must_sign_every_request_right_once() {
    let (l, clock) = start_signed("", "");
    let body = ping_body();
    let before = |k: &str| leadx::metrics::global().bad_signature_count(k);
    let (mismatch0, replayed0, missing0, stale0) = (
        before("mismatch"),
        before("replayed"),
        before("missing"),
        before("stale"),
    );

    let good = sign(SIGNING, clock.now_ms(), &body);
    let r = send(l.addr, "/v1/ping", KEY, Some(&good), &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    refused(
        &send(l.addr, "/v1/ping", KEY, Some(&good), &body),
        "replayed",
    );
    refused(&send(l.addr, "/v1/ping", KEY, None, &body), "missing");
    refused(
        &send(l.addr, "/v1/ping", KEY, Some("t=1,v1=zz"), &body),
        "malformed",
    );
    let stale = sign(SIGNING, clock.now_ms() - 301_000, &body);
    refused(&send(l.addr, "/v1/ping", KEY, Some(&stale), &body), "stale");
    let future = sign(SIGNING, clock.now_ms() + 301_000, &body);
    refused(
        &send(l.addr, "/v1/ping", KEY, Some(&future), &body),
        "future",
    );
    let wrong = sign("another-secret-0123456789abcdef0123", clock.now_ms(), &body);
    refused(&send(l.addr, "/v1/ping", KEY, Some(&wrong), &body), "wrong");
    // The body changed after signing: one byte of the zip.
    let tampered_body = String::from_utf8(body.clone())
        .unwrap()
        .replace("90210", "90211");
    let signed_other = sign(SIGNING, clock.now_ms() + 1000, &body);
    refused(
        &send(
            l.addr,
            "/v1/ping",
            KEY,
            Some(&signed_other),
            tampered_body.as_bytes(),
        ),
        "tampered",
    );

    // Checked before the body is parsed: garbage unsigned is 401, not 400;
    // garbage signed right reaches the parser.
    refused(
        &send(l.addr, "/v1/post", KEY, None, b"{not json"),
        "unparsed",
    );
    let garbage = sign(SIGNING, clock.now_ms() + 2000, b"{not json");
    let r = send(l.addr, "/v1/post", KEY, Some(&garbage), b"{not json");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // A GET signs its empty body.
    let path = "/v1/leads/00000000000000000000000000";
    let auth = format!("Bearer {KEY}");
    let r = request(l.addr, "GET", path, &[("Authorization", &auth)], b"");
    refused(&r, "get unsigned");
    let empty = sign(SIGNING, clock.now_ms() + 3000, b"");
    let r = request(
        l.addr,
        "GET",
        path,
        &[("Authorization", &auth), ("Leadx-Signature", &empty)],
        b"",
    );
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));

    // A publisher without signing_secret is unchanged.
    let r = send(l.addr, "/v1/ping", KEY2, None, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // The window moves with the exchange's clock.
    clock.advance_ms(600_000);
    let late = sign(SIGNING, NOW_MS, &body);
    refused(&send(l.addr, "/v1/ping", KEY, Some(&late), &body), "old");
    let fresh = sign(SIGNING, clock.now_ms(), &body);
    assert_eq!(
        send(l.addr, "/v1/ping", KEY, Some(&fresh), &body).status,
        200
    );

    let g = leadx::metrics::global();
    assert!(g.bad_signature_count("mismatch") >= mismatch0 + 2);
    assert!(g.bad_signature_count("replayed") > replayed0);
    assert!(g.bad_signature_count("missing") >= missing0 + 2);
    assert!(g.bad_signature_count("stale") >= stale0 + 3);
    let auth = format!("Bearer {ADMIN}");
    let m = request(l.addr, "GET", "/metrics", &[("Authorization", &auth)], b"");
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains("leadx_bad_signatures_total{kind=\"replayed\"}"),
        "{text}"
    );
}

#[test]
fn the_replay_cache_outlives_a_reload() {
    let (l, clock) = start_signed("", "");
    let body = ping_body();
    let good = sign(SIGNING, clock.now_ms(), &body);
    assert_eq!(
        send(l.addr, "/v1/ping", KEY, Some(&good), &body).status,
        200
    );
    reload_ok(l.addr);
    refused(
        &send(l.addr, "/v1/ping", KEY, Some(&good), &body),
        "replayed after reload",
    );
    // A reload that removes the secret stops the check.
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    let unsigned = text.replace(&format!("signing_secret = \"{SIGNING}\""), "");
    std::fs::write(&l.config_path, unsigned).unwrap();
    reload_ok(l.addr);
    assert_eq!(send(l.addr, "/v1/ping", KEY, None, &body).status, 200);
}

const DAY_MS: u64 = 86_400_000;

/// leadx with one buyer `a` and a `[[suppression]]` list of `auto` at
/// `dnc.txt` holding `numbers`, on a manual clock at the real time (the
/// list's mtime is real).
fn start_suppressed(numbers: &str) -> (Leadx, Mock, Arc<ManualClock>, tempfile::TempDir) {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let lists = tempfile::tempdir().unwrap();
    let list = lists.path().join("dnc.txt");
    std::fs::write(&list, numbers).unwrap();
    // wall clock: the list file's mtime is real, so business time starts there.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let clock = Arc::new(ManualClock::at(now));
    let extra = format!(
        "\n[[suppression]]\nid = \"dnc\"\npath = \"{}\"\nmax_age_days = 31\nverticals = [\"auto\"]\n",
        list.display()
    );
    let l = start_with_text(|t| t + &extra, &buyer_toml("a", &a, ""), clock.clone());
    (l, a, clock, lists)
}

fn direct(l: &Leadx, phone: &str) -> Reply {
    post_json(
        l.addr,
        "/v1/leads",
        KEY,
        &json!({"vertical": "auto", "lead": full_lead(phone, "ann@example.com"), "consent": consent()}),
    )
}

fn ping_and_post(l: &Leadx, phone: &str) -> Reply {
    let p = ping(l);
    post(l, p["ping_id"].as_str().unwrap(), phone)
}

pub fn suppressed(r: &Reply, what: &str) {
    assert_eq!(
        (r.status, r.code().as_str(), r.field().as_str()),
        (422, "suppressed", "lead.phone"),
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

fn admin(l: &Leadx, method: &str, body: &serde_json::Value) -> Reply {
    let auth = format!("Bearer {ADMIN}");
    request(
        l.addr,
        method,
        "/v1/admin/suppressions",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn a_listed_phone_is_refused_before_any_buyer_sees_it_and_lists_reload() {
    let g = leadx::metrics::global();
    let (suppressed0, stale0) = (
        g.suppression_refusal_count(false),
        g.suppression_refusal_count(true),
    );
    let (l, a, clock, lists) = start_suppressed("# national list\n(555) 234-5678\nnot a number\n");
    let list = lists.path().join("dnc.txt");
    // Any spelling of the listed number, at post and direct post.
    suppressed(&ping_and_post(&l, "+15552345678"), "post E.164");
    suppressed(&ping_and_post(&l, "555.234.5678"), "post dotted");
    assert_eq!(a.buyer.posts(), 0, "no buyer saw the suppressed lead");
    let pings = a.buyer.pings();
    suppressed(&direct(&l, "555-234-5678"), "direct");
    assert_eq!(
        a.buyer.pings(),
        pings,
        "a direct post is refused before its auction"
    );
    assert_eq!(a.buyer.posts(), 0);
    // Another number sells.
    let r = ping_and_post(&l, "5552345679");
    assert_eq!(
        r.json()["status"],
        "sold",
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // A new list file is read on reload (SIGHUP runs the same reload).
    std::fs::write(&list, "5552345680\n").unwrap();
    reload_ok(l.addr);
    suppressed(&ping_and_post(&l, "5552345680"), "new list");
    let r = ping_and_post(&l, "5552345678");
    assert_eq!(r.json()["status"], "sold", "the old number left the list");

    // Past max_age_days on the exchange's clock: every post of its
    // vertical is 503 list_stale, before any buyer call.
    clock.advance_ms(32 * DAY_MS);
    let posts = a.buyer.posts();
    for r in [ping_and_post(&l, "5552345681"), direct(&l, "5552345682")] {
        assert_eq!(
            (r.status, r.code().as_str()),
            (503, "list_stale"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(a.buyer.posts(), posts);
    assert!(g.suppression_refusal_count(false) >= suppressed0 + 4);
    assert!(g.suppression_refusal_count(true) >= stale0 + 2);
}

#[test]
fn the_internal_list_is_durable_and_changed_by_the_admin_api() {
    let (mut l, a, _clock, _list) = start_suppressed("");
    let r = admin(
        &l,
        "POST",
        &json!({"phones": ["(555) 234-5690", "+15552345691"]}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["size"], 2);
    suppressed(&ping_and_post(&l, "5552345690"), "internal");
    suppressed(&direct(&l, "555-234-5691"), "internal direct");
    l.restart();
    suppressed(&ping_and_post(&l, "555 234 5690"), "after restart");
    let r = admin(&l, "DELETE", &json!({"phones": ["5552345690"]}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["size"], 1);
    let r = ping_and_post(&l, "5552345690");
    assert_eq!(
        r.json()["status"],
        "sold",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(a.buyer.posts(), 1);
    l.restart();
    suppressed(&direct(&l, "5552345691"), "the other stays");

    // Bad input names the field; nothing changes.
    let r = admin(&l, "POST", &json!({"phones": ["5552345692", "12"]}));
    assert_eq!(
        (r.status, r.field().as_str()),
        (422, "phones[1]"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = admin(&l, "POST", &json!({"phones": []}));
    assert_eq!((r.status, r.field().as_str()), (422, "phones"));
    let r = admin(&l, "POST", &json!({"numbers": ["5552345692"]}));
    assert_eq!((r.status, r.field().as_str()), (422, "numbers"));
    let r = ping_and_post(&l, "5552345692");
    assert_eq!(r.json()["status"], "sold");
    // Only the admin may, and other admin routes still take no body.
    let r = request(
        l.addr,
        "POST",
        "/v1/admin/suppressions",
        &[
            ("Authorization", "Bearer nope"),
            ("Content-Type", "application/json"),
        ],
        b"{\"phones\":[\"5552345693\"]}",
    );
    assert_eq!(r.status, 401);
    let auth = format!("Bearer {ADMIN}");
    let r = request(
        l.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &auth)],
        b"{}",
    );
    assert_eq!(r.status, 413);
}

/// Every file under `dir`, recursively, as bytes.
pub fn every_byte_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

pub fn admin_lead(l: &Leadx, lead_id: &str) -> serde_json::Value {
    let auth = format!("Bearer {ADMIN}");
    let path = format!("/v1/admin/leads/{lead_id}");
    let r = request(l.addr, "GET", &path, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Issue #10: with a data key, a sold lead's phone (every spelling),
/// email and consent IP are nowhere in the bytes under `data_dir`; the
/// admin still reads them, after a restart and after a key rotation.
#[test]
fn with_a_data_key_no_pii_byte_reaches_the_data_dir() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let key1 = "1f".repeat(32);
    let key2 = "2e".repeat(32);
    let mut l = start_with_text(
        |t| format!("{t}\n[privacy]\ndata_key = \"{key1}\"\n"),
        &buyer_toml("a", &a, ""),
        Arc::new(leadx::clock::SystemClock),
    );
    let phone = "5559876543";
    let email = "zelda.quirkyname@example.org";
    let p = ping(&l);
    let r = post_json(
        l.addr,
        "/v1/post",
        KEY,
        &json!({"ping_id": p["ping_id"], "lead": full_lead(phone, email),
                "consent": {"text": "I agree", "captured_at": "2026-11-27T12:00:00Z",
                            "ip": "198.51.100.77", "user_agent": "UA", "page_url": "https://example.com/q"}}),
    );
    let lead_id = r.sold_lead_id();
    assert_eq!(
        a.buyer.last_post_json()["lead"]["email"],
        email,
        "the buyer gets it in clear"
    );
    let data = admin_lead(&l, &lead_id)["data"].clone();
    assert_eq!(data["lead"]["email"], email, "{data}");

    l.stop();
    let needles: [&str; 7] = [
        "5559876543",
        "+15559876543",
        "555-987-6543",
        "(555) 987-6543",
        email,
        "zelda",
        "198.51.100.77",
    ];
    let files = every_byte_under(&l.dir.path().join("data"));
    assert!(!files.is_empty());
    for (path, bytes) in &files {
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{n:?} in clear in {}",
                path.display()
            );
        }
    }

    // A restart reads it; a rotation (new key, the old one in
    // old_data_keys) still opens it.
    l.restart();
    assert_eq!(admin_lead(&l, &lead_id)["data"]["lead"]["email"], email);
    let text = std::fs::read_to_string(&l.config_path).unwrap().replace(
        &format!("data_key = \"{key1}\""),
        &format!("data_key = \"{key2}\"\nold_data_keys = [\"{key1}\"]"),
    );
    std::fs::write(&l.config_path, text).unwrap();
    reload_ok(l.addr);
    assert_eq!(admin_lead(&l, &lead_id)["data"]["lead"]["email"], email);
}

/// A v1 config (no data key) keeps PII in clear, readable as before.
#[test]
fn without_a_data_key_pii_stays_in_clear_as_in_v1() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let p = ping(&l);
    let r = post(&l, p["ping_id"].as_str().unwrap(), "5559876544");
    let lead_id = r.json()["lead_id"].as_str().unwrap().to_string();
    let rec = l.ex().lead(&lead_id).unwrap().unwrap();
    assert!(rec.pii_json.contains("ann@example.com"), "{}", rec.pii_json);
    assert_eq!(
        admin_lead(&l, &lead_id)["data"]["lead"]["email"],
        "ann@example.com"
    );
}

/// Contract §12: with a data key the stored dedupe keys are keyed hashes,
/// never a plain SHA-256 of the phone or email; duplicates are still found
/// across a rotation, and against plain hashes written before the key
/// (migration).
#[test]
fn dedupe_keys_are_keyed_with_a_data_key_and_old_stores_still_dedupe() {
    use sha2::{Digest, Sha256};
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let key1 = "3d".repeat(32);
    let key2 = "4c".repeat(32);
    let mut l = start_with_text(
        |t| {
            t.replacen(
                "id = \"auto\"\n",
                "id = \"auto\"\ndedupe_window_days = 30\n",
                1,
            )
        },
        &buyer_toml("a", &a, ""),
        Arc::new(leadx::clock::SystemClock),
    );
    let sell = |l: &Leadx, phone: &str, email: &str| {
        let p = ping(l);
        post_json(
            l.addr,
            "/v1/post",
            KEY,
            &json!({"ping_id": p["ping_id"], "lead": full_lead(phone, email), "consent": consent()}),
        )
    };
    let duplicate = |r: Reply, what: &str| {
        assert_eq!(
            (r.status, r.code().as_str()),
            (409, "duplicate_lead"),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        )
    };
    // v1: plain hashes.
    assert_eq!(
        sell(&l, "5552340001", "one@example.com").json()["status"],
        "sold"
    );
    // The data key arrives: the old plain keys still dedupe.
    let set_key = |l: &Leadx, privacy: &str| {
        let text = std::fs::read_to_string(&l.config_path).unwrap();
        let base = text.split("\n[privacy]").next().unwrap().to_string();
        std::fs::write(&l.config_path, format!("{base}\n[privacy]\n{privacy}\n")).unwrap();
    };
    set_key(&l, &format!("data_key = \"{key1}\""));
    l.restart();
    duplicate(
        sell(&l, "5552340001", "x1@example.com"),
        "plain phone, keyed lookup",
    );
    assert_eq!(
        sell(&l, "5552340002", "two@example.com").json()["status"],
        "sold"
    );
    duplicate(sell(&l, "5552340009", "TWO@example.com"), "keyed email");
    // No plain hash of the new lead's contacts is stored.
    let dedupe = l
        .ex()
        .store()
        .scan_prefix(leadx::store::Tree::Dedupe, b"", usize::MAX)
        .unwrap();
    assert!(dedupe.len() >= 4, "{}", dedupe.len());
    for plain in ["+15552340002", "two@example.com"] {
        let h: [u8; 32] = Sha256::digest(plain.as_bytes()).into();
        assert!(
            !dedupe.iter().any(|(k, _)| k.windows(32).any(|w| w == h)),
            "plain hash of {plain} stored"
        );
    }
    // A rotation keeps the window.
    set_key(
        &l,
        &format!("data_key = \"{key2}\"\nold_data_keys = [\"{key1}\"]"),
    );
    l.restart();
    duplicate(sell(&l, "5552340002", "y@example.com"), "after rotation");
}
