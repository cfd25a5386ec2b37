//! Publisher XML end to end (contract §11): every JSON shape that matters
//! has its XML twin here — ping bid / no_bid, post sold / unsold, direct
//! post with `Idempotency-Key`, a 4xx naming its field, DOCTYPE, billion
//! laughs and a depth bomb refused — and every answer to an XML request is
//! XML with the JSON answer's keys and the same status.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::*;

/// The XML twin of a JSON request: root `<request>`, one element per key.
fn twin(v: &serde_json::Value) -> Vec<u8> {
    fn write(out: &mut String, name: &str, v: &serde_json::Value) {
        use serde_json::Value as V;
        match v {
            V::Null => {}
            V::Object(o) => {
                out.push_str(&format!("<{name}>"));
                for (k, v) in o {
                    write(out, k, v);
                }
                out.push_str(&format!("</{name}>"));
            }
            V::String(s) => {
                let s = s
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                out.push_str(&format!("<{name}>{s}</{name}>"));
            }
            other => out.push_str(&format!("<{name}>{other}</{name}>")),
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write(&mut out, "request", v);
    out.into_bytes()
}

fn send_xml(l: &Leadx, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/xml"),
    ];
    headers.extend_from_slice(extra);
    request(l.addr, "POST", path, &headers, body)
}

/// A flat XML answer: its root's name and each child's text. Panics unless
/// the body is well-formed and `Content-Type` is XML.
fn read(r: &Reply) -> (String, BTreeMap<String, String>) {
    assert_eq!(r.header("content-type"), Some("application/xml"), "{r:?}");
    let mut reader = quick_xml::Reader::from_reader(&r.body[..]);
    let (mut root, mut fields, mut at) = (String::new(), BTreeMap::new(), None);
    loop {
        use quick_xml::events::Event;
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                if root.is_empty() {
                    root = name;
                } else {
                    fields.insert(name.clone(), String::new());
                    at = Some(name);
                }
            }
            Event::Text(t) => {
                if let Some(k) = &at {
                    let text = t.xml10_content().unwrap();
                    fields.get_mut(k).unwrap().push_str(&text);
                }
            }
            Event::GeneralRef(g) => {
                let c = match g.decode().unwrap().as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("entity {other}"),
                };
                fields.get_mut(at.as_ref().unwrap()).unwrap().push_str(c);
            }
            Event::End(_) => at = None,
            Event::Eof => break,
            _ => {}
        }
    }
    (root, fields)
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

fn xml_error(r: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{r:?}");
    let (root, f) = read(r);
    assert_eq!(root, "error", "{r:?}");
    assert_eq!(f.get("code").map(String::as_str), Some(code), "{r:?}");
    assert!(f.contains_key("message"), "{r:?}");
    assert_eq!(f.get("field").map(String::as_str), field, "{r:?}");
}

#[test]
fn an_xml_ping_bids_and_no_bids_in_xml_with_the_json_keys() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let body = json!({"vertical": "auto", "lead": ping_lead(), "floor": 1.5});
    let r = send_xml(&l, "/v1/ping", &twin(&body), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let (root, f) = read(&r);
    assert_eq!(root, "response");
    let keys: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(keys, ["expires_at", "ping_id", "price", "status"]);
    assert_eq!((f["status"].as_str(), f["price"].as_str()), ("bid", "8.00"));
    let j = post_json(l.addr, "/v1/ping", KEY, &body).json();
    let mut json_keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    json_keys.sort_unstable();
    assert_eq!(keys, json_keys, "one element per key of the JSON answer");
    a.buyer.set_ping(Act::NoBid);
    let (_, f) = read(&send_xml(&l, "/v1/ping", &twin(&body), &[]));
    assert_eq!(f["status"], "no_bid");
    assert!(f["ping_id"].starts_with("p_") || !f["ping_id"].is_empty());
    assert_eq!(f.len(), 2);
}

#[test]
fn an_xml_post_sells_and_a_refused_one_is_unsold_in_xml() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let ping_body = json!({"vertical": "auto", "lead": ping_lead()});
    let (_, p) = read(&send_xml(&l, "/v1/ping", &twin(&ping_body), &[]));
    let post_body = json!({"ping_id": p["ping_id"], "lead": full_lead("5552345678", "a@b.co"), "consent": consent()});
    let r = send_xml(&l, "/v1/post", &twin(&post_body), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let (root, f) = read(&r);
    assert_eq!(root, "response");
    assert_eq!(
        (f["status"].as_str(), f["price"].as_str()),
        ("sold", "8.00")
    );
    assert!(!f["lead_id"].is_empty());
    // The buyer got the same native JSON post a JSON publisher's lead makes.
    let sent = a.buyer.last_post_json();
    assert_eq!(sent["lead"]["phone"], "+15552345678");
    assert_eq!(sent["lead"]["age"], 30);
    // A repeat answers the first outcome, in the format of the repeat.
    let again = post_json(l.addr, "/v1/post", KEY, &post_body).json();
    assert_eq!(again["lead_id"].as_str(), Some(f["lead_id"].as_str()));
    assert_eq!(a.buyer.posts(), 1);

    a.buyer.set_post(Act::Reject);
    let (_, p) = read(&send_xml(&l, "/v1/ping", &twin(&ping_body), &[]));
    let post_body = json!({"ping_id": p["ping_id"], "lead": full_lead("5552345679", "b@b.co"), "consent": consent()});
    let (_, f) = read(&send_xml(&l, "/v1/post", &twin(&post_body), &[]));
    assert_eq!(f["status"], "unsold");
    assert!(!f["reason"].is_empty());
}

#[test]
fn an_xml_direct_post_with_an_idempotency_key_is_answered_once_in_xml() {
    let d = mock(Act::NoBid, Act::Accept("D-1"));
    let l = start("", "", &direct_buyer_toml("d", &d, "7.00", ""));
    let body = json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co"), "consent": consent(), "test": false});
    let key = [("Idempotency-Key", "order-42")];
    let first = send_xml(&l, "/v1/leads", &twin(&body), &key);
    let (_, f) = read(&first);
    assert_eq!(f["status"], "sold", "{first:?}");
    let (_, g) = read(&send_xml(&l, "/v1/leads", &twin(&body), &key));
    assert_eq!(f, g, "the first outcome again");
    assert_eq!(d.buyer.posts(), 1);
    let bad = [("Idempotency-Key", "")];
    let r = send_xml(&l, "/v1/leads", &twin(&body), &bad);
    xml_error(&r, 400, "bad_request", Some("Idempotency-Key"));
}

#[test]
fn xml_refusals_are_xml_with_the_json_status_code_and_field() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let mut lead = ping_lead();
    lead["age"] = json!(17);
    let body = json!({"vertical": "auto", "lead": lead});
    xml_error(
        &send_xml(&l, "/v1/ping", &twin(&body), &[]),
        422,
        "invalid_field",
        Some("lead.age"),
    );
    let j = post_json(l.addr, "/v1/ping", KEY, &body);
    assert_eq!(
        (j.status, j.code(), j.field()),
        (422, "invalid_field".into(), "lead.age".into())
    );
    let body = json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co")});
    xml_error(
        &send_xml(&l, "/v1/ping", &twin(&body), &[]),
        422,
        "pii_in_ping",
        Some("lead.email"), // serde_json writes keys sorted
    );
    let body = json!({"ping_id": "p_nope", "lead": full_lead("5552345678", "a@b.co"), "consent": consent()});
    xml_error(
        &send_xml(&l, "/v1/post", &twin(&body), &[]),
        404,
        "unknown_ping",
        Some("ping_id"),
    );
    assert_eq!(a.buyer.pings(), 0, "no refused request reached a buyer");
}

#[test]
fn doctype_billion_laughs_and_depth_bombs_are_400_before_any_buyer() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE request [<!ENTITY a \"ha\">{}]><request><vertical>&e9;</vertical></request>",
        (1..10)
            .map(|i| format!("<!ENTITY e{i} \"{}\">", format!("&e{};", i - 1).repeat(10)))
            .collect::<String>()
            .replace("&e0;", "&a;")
    );
    let external = "<!DOCTYPE request SYSTEM \"file:///etc/passwd\"><request/>";
    let deep = format!(
        "<request>{}{}</request>",
        "<lead>".repeat(2_000),
        "</lead>".repeat(2_000)
    );
    let pi = "<?xml version=\"1.0\"?><?xml-stylesheet href=\"x\"?><request/>";
    for body in [laughs.as_str(), external, deep.as_str(), pi, "<request>"] {
        let r = send_xml(&l, "/v1/ping", body.as_bytes(), &[]);
        xml_error(&r, 400, "bad_request", None);
    }
    let r = send_xml(
        &l,
        "/v1/ping",
        b"<request><lead><zip a=\"1\">90210</zip></lead></request>",
        &[],
    );
    xml_error(&r, 400, "bad_request", Some("lead.zip"));
    assert_eq!(a.buyer.pings(), 0);
}

#[test]
fn errors_before_the_body_follow_content_type_then_accept() {
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start("", "", &buyer_toml("a", &a, ""));
    let body = twin(&json!({"vertical": "auto", "lead": ping_lead()}));
    let bad_key = [
        ("Authorization", "Bearer nope"),
        ("Content-Type", "text/xml"),
    ];
    let r = request(l.addr, "POST", "/v1/ping", &bad_key, &body);
    xml_error(&r, 401, "unauthorized", None);
    let auth = format!("Bearer {KEY}");
    let plain = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/plain"),
        (
            "Accept",
            "text/html, application/xml;q=0.9, application/json;q=0.8",
        ),
    ];
    let r = request(l.addr, "POST", "/v1/ping", &plain, &body);
    xml_error(&r, 415, "unsupported_media_type", None);
    let r = request(
        l.addr,
        "GET",
        "/v1/ping",
        &[("Accept", "application/xml")],
        b"",
    );
    xml_error(&r, 405, "method_not_allowed", None);
    // Without either, JSON as before.
    let r = request(l.addr, "POST", "/v1/ping", &bad_key[..1], &body);
    assert_eq!((r.status, r.code()), (401, "unauthorized".to_string()));
}

/// `leadx demo` (issue #9): its config checks clean, and its XML buyer
/// (own spec, price in an attribute) bids and buys through the auction.
#[test]
fn the_demo_config_checks_clean_and_its_xml_buyer_bids_and_buys() {
    use leadx::demo;
    use leadx::sim::{start_buyer, SimBuyer};
    let sure = SimBuyer {
        delay_ms_min: 0,
        delay_ms_max: 1,
        bid_pct: 100,
        price_cents_min: 1250,
        price_cents_max: 1250,
        accept_pct: 100,
    };
    let xml = start_buyer(sure, 7).unwrap();
    let direct = start_buyer(sure, 8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = demo::config_text(
        "127.0.0.1:0".parse().unwrap(),
        dir.path(),
        &[],
        direct.local_addr(),
        xml.local_addr(),
    );
    let config = leadx::config::parse(&text, &leadx::config::default_secrets).unwrap();
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    let running = leadx::daemon::start(config, None).unwrap();
    let addr = running.local_addr();
    let auth = format!("Bearer {}", demo::DEMO_API_KEY);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/xml"),
    ];
    let ping = "<request><vertical>auto_insurance</vertical><lead><zip>90210</zip><state>CA</state><age>34</age><credit>good</credit></lead></request>";
    let r = request(addr, "POST", "/v1/ping", &headers, ping.as_bytes());
    let (_, f) = read(&r);
    // 12.50 bid by the XML buyer, 80 % share: 10.00 (the form buyer's
    // fixed 4.00 ranks below it).
    assert_eq!(
        (f["status"].as_str(), f["price"].as_str()),
        ("bid", "10.00"),
        "{r:?}"
    );
    let post = format!(
        "<request><ping_id>{}</ping_id><lead><zip>90210</zip><state>CA</state><age>34</age><credit>good</credit><first_name>Ada</first_name><last_name>Lovelace</last_name><phone>(310) 555-0142</phone><email>ada@example.com</email></lead><consent><text>I agree</text><captured_at>2026-11-27T12:00:00Z</captured_at><ip>203.0.113.7</ip><user_agent>UA</user_agent><page_url>https://quotes.example.com/auto</page_url></consent></request>",
        f["ping_id"]
    );
    let (_, f) = read(&request(
        addr,
        "POST",
        "/v1/post",
        &headers,
        post.as_bytes(),
    ));
    assert_eq!(
        (f["status"].as_str(), f["price"].as_str()),
        ("sold", "10.00")
    );
    running.shutdown().unwrap();
}
