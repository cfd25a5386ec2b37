//! Table-driven tests of request bodies: every rule of contract §3/§4 with
//! the code and field path it must produce.

use super::*;
use crate::lead::{Attr, Credit};

const PING_LEAD: &str = r#"{"zip":"90210","state":"CA","city":"Beverly Hills","age":30,"income":85000,
    "credit":"good","homeowner":true,"sub_id":"s1","attributes":{"vehicle_year":2019,"coverage":"full","x":1.5,"y":false},
    "captured_at":"2024-05-01T12:00:00Z"}"#;

const CONSENT: &str = r#"{"text":"I agree","captured_at":"2024-05-01T12:00:00Z","ip":"203.0.113.9",
    "user_agent":"Mozilla/5.0","page_url":"https://example.com/quote"}"#;

fn post_lead(extra: &str) -> String {
    let base = r#"{"zip":"90210","state":"CA","first_name":"Ann","last_name":"Lee","phone":"(555) 234-5678","email":"ann@example.com""#;
    format!("{base}{extra}}}")
}

fn ping(body: &str) -> Result<PingRequest, Invalid> {
    parse_ping(&mut body.as_bytes().to_vec())
}
fn post(body: &str) -> Result<PostRequest, Invalid> {
    parse_post(&mut body.as_bytes().to_vec())
}
fn direct(body: &str) -> Result<DirectRequest, Invalid> {
    parse_direct(&mut body.as_bytes().to_vec())
}

/// Asserts `r` failed with what answers as `status`, `code` and `field`
/// (through `api::error`'s one mapping).
fn fails<T: std::fmt::Debug>(
    r: Result<T, Invalid>,
    status: u16,
    code: &str,
    field: Option<&str>,
    case: &str,
) {
    let e = crate::api::error::ApiError::from(r.expect_err(case));
    assert_eq!(
        (e.status, e.code, e.field.as_deref()),
        (status, code, field),
        "{case}: {}",
        e.message
    );
}

#[test]
fn a_full_ping_parses() {
    let r = ping(&format!(
        r#"{{"vertical":"auto","lead":{PING_LEAD},"test":true,"floor":2.50}}"#
    ))
    .unwrap();
    assert_eq!(
        (r.vertical.as_str(), r.test, r.floor),
        ("auto", true, Some(250))
    );
    let l = r.lead;
    assert_eq!(
        (l.zip.as_str(), l.state.as_str(), l.age, l.income),
        ("90210", "CA", Some(30), Some(85_000))
    );
    assert_eq!(
        (l.credit, l.homeowner, l.sub_id.as_deref()),
        (Some(Credit::Good), Some(true), Some("s1"))
    );
    let keys: Vec<&str> = l.attributes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["coverage", "vehicle_year", "x", "y"],
        "sorted by key"
    );
    assert_eq!(l.attributes[1].1, Attr::Int(2019));
    assert_eq!(l.attributes[2].1, Attr::Float(1.5));
    assert_eq!(l.phone, None);
}

#[test]
fn ping_defaults_and_nulls() {
    let r = ping(r#"{"vertical":"auto","lead":{"zip":"10001","state":"ny","city":null}}"#).unwrap();
    assert_eq!(
        (r.test, r.floor, r.lead.state.as_str(), r.lead.city),
        (false, None, "NY", None)
    );
    let r =
        ping(r#"{"vertical":"auto","lead":{"zip":"10001","state":"NY"},"test":null,"floor":0}"#)
            .unwrap();
    assert_eq!((r.test, r.floor), (false, Some(0)));
}

#[test]
fn ping_field_errors() {
    let lead = |extra: &str| {
        format!(r#"{{"vertical":"auto","lead":{{"zip":"90210","state":"CA"{extra}}}}}"#)
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (lead(r#","foo":1"#), "unknown_field", "lead.foo"),
        (lead(r#","zip":"9021""#), "invalid_field", "lead.zip"),
        (lead(r#","zip":"902100""#), "invalid_field", "lead.zip"),
        (lead(r#","zip":"9021a""#), "invalid_field", "lead.zip"),
        (lead(r#","zip":90210"#), "invalid_field", "lead.zip"),
        (lead(r#","state":"XX""#), "invalid_field", "lead.state"),
        (
            lead(r#","state":"California""#),
            "invalid_field",
            "lead.state",
        ),
        (lead(r#","age":17"#), "invalid_field", "lead.age"),
        (lead(r#","age":121"#), "invalid_field", "lead.age"),
        (lead(r#","age":30.5"#), "invalid_field", "lead.age"),
        (lead(r#","age":30.0"#), "invalid_field", "lead.age"),
        (lead(r#","age":"30""#), "invalid_field", "lead.age"),
        (lead(r#","income":-1"#), "invalid_field", "lead.income"),
        (
            lead(r#","income":100000001"#),
            "invalid_field",
            "lead.income",
        ),
        (lead(r#","credit":"great""#), "invalid_field", "lead.credit"),
        (
            lead(r#","homeowner":"yes""#),
            "invalid_field",
            "lead.homeowner",
        ),
        (
            lead(&format!(r#","sub_id":"{}""#, "s".repeat(65))),
            "invalid_field",
            "lead.sub_id",
        ),
        (
            lead(&format!(r#","city":"{}""#, "c".repeat(1025))),
            "invalid_field",
            "lead.city",
        ),
        (
            lead(r#","captured_at":"yesterday""#),
            "invalid_field",
            "lead.captured_at",
        ),
        (
            lead(r#","attributes":[1]"#),
            "invalid_field",
            "lead.attributes",
        ),
        (
            lead(r#","attributes":{"a":{"b":1}}"#),
            "invalid_field",
            "lead.attributes.a",
        ),
        (
            lead(r#","attributes":{"a":[1]}"#),
            "invalid_field",
            "lead.attributes.a",
        ),
        (
            lead(r#","attributes":{"a":null}"#),
            "invalid_field",
            "lead.attributes.a",
        ),
        (
            lead(r#","attributes":{"":1}"#),
            "invalid_field",
            "lead.attributes.",
        ),
        (
            lead(r#","attributes":{"a":18446744073709551615}"#),
            "invalid_field",
            "lead.attributes.a",
        ),
        (
            lead(&format!(r#","attributes":{{"a":"{}"}}"#, "v".repeat(1025))),
            "invalid_field",
            "lead.attributes.a",
        ),
        (
            lead(r#","first_name":"Ann""#),
            "pii_in_ping",
            "lead.first_name",
        ),
        (
            lead(r#","last_name":null"#),
            "pii_in_ping",
            "lead.last_name",
        ),
        (
            lead(r#","phone":"5552345678""#),
            "pii_in_ping",
            "lead.phone",
        ),
        (lead(r#","email":"a@b.co""#), "pii_in_ping", "lead.email"),
        (
            lead(r#","address":"1 Main St""#),
            "pii_in_ping",
            "lead.address",
        ),
        (
            r#"{"vertical":"auto","lead":{"state":"CA"}}"#.into(),
            "missing_field",
            "lead.zip",
        ),
        (
            r#"{"vertical":"auto","lead":{"zip":"90210","state":null}}"#.into(),
            "missing_field",
            "lead.state",
        ),
        (
            r#"{"lead":{"zip":"90210","state":"CA"}}"#.into(),
            "missing_field",
            "vertical",
        ),
        (r#"{"vertical":"auto"}"#.into(), "missing_field", "lead"),
        (
            r#"{"vertical":"auto","lead":[]}"#.into(),
            "invalid_field",
            "lead",
        ),
        (
            r#"{"vertical":7,"lead":{"zip":"90210","state":"CA"}}"#.into(),
            "invalid_field",
            "vertical",
        ),
        (
            r#"{"vertical":"auto","colour":"red","lead":{"zip":"90210","state":"CA"}}"#.into(),
            "unknown_field",
            "colour",
        ),
        (
            lead("").replacen("{", r#"{"test":"yes","#, 1),
            "invalid_field",
            "test",
        ),
        (
            lead("").replacen("{", r#"{"floor":-1,"#, 1),
            "invalid_field",
            "floor",
        ),
        (
            lead("").replacen("{", r#"{"floor":2.505,"#, 1),
            "invalid_field",
            "floor",
        ),
        (
            lead("").replacen("{", r#"{"floor":"2.50","#, 1),
            "invalid_field",
            "floor",
        ),
        (
            lead("").replacen("{", r#"{"ping_id":"p","#, 1),
            "unknown_field",
            "ping_id",
        ),
    ];
    for (body, code, field) in &cases {
        fails(ping(body), 422, code, Some(field), body);
    }
    let many = (0..=crate::limits::LEAD_ATTRIBUTES_MAX)
        .map(|i| format!(r#""k{i}":1"#))
        .collect::<Vec<_>>();
    fails(
        ping(&lead(&format!(r#","attributes":{{{}}}"#, many.join(",")))),
        422,
        "invalid_field",
        Some("lead.attributes"),
        "65 attributes",
    );
}

#[test]
fn malformed_bodies_are_400() {
    let deep = format!(
        r#"{{"vertical":"auto","lead":{}1{}}}"#,
        r#"{"a":"#.repeat(100),
        "}".repeat(100)
    );
    let deep_array = format!("{}{}", "[".repeat(100), "]".repeat(100));
    for body in [
        "",
        "   ",
        "nope",
        "[1]",
        "\"str\"",
        "42",
        "null",
        r#"{"vertical":"auto","#,
        &deep,
        &deep_array,
    ] {
        fails(ping(body), 400, "malformed_json", None, body);
        fails(post(body), 400, "malformed_json", None, body);
        fails(direct(body), 400, "malformed_json", None, body);
    }
    fails(ping(&deep), 400, "malformed_json", None, "deep message");
    assert!(ping(&deep).unwrap_err().message.contains("deeper"));
    let bad_utf8 = b"{\"vertical\":\"\xff\"}".to_vec();
    fails(
        parse_ping(&mut bad_utf8.clone()),
        400,
        "malformed_json",
        None,
        "bad utf-8",
    );
}

#[test]
fn deep_body_is_refused_on_a_coroutine_stack() {
    let h = crate::rt::spawn(|| {
        let deep = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
        let e = ping(&deep).unwrap_err();
        let ok = post(&format!(r#"{{"ping_id":"p1","lead":{}}}"#, post_lead(""))).is_ok();
        (e.kind, ok)
    });
    assert_eq!(
        h.join().unwrap(),
        (crate::lead::InvalidKind::Malformed, true)
    );
}

#[test]
fn huge_string_values_are_bounded_not_fatal() {
    let big = "x".repeat(2 * 1024 * 1024);
    let body =
        format!(r#"{{"vertical":"auto","lead":{{"zip":"90210","state":"CA","city":"{big}"}}}}"#);
    fails(
        ping(&body),
        422,
        "invalid_field",
        Some("lead.city"),
        "2 MB city",
    );
    let body = format!(r#"{{"vertical":"auto","lead":{{"zip":"90210","state":"CA","{big}":1}}}}"#);
    let e = ping(&body).unwrap_err();
    assert_eq!(e.kind, crate::lead::InvalidKind::Unknown);
    assert!(
        e.field.unwrap().len() <= 5 + crate::limits::ERROR_PATH_KEY_BYTES_MAX,
        "path is cut"
    );
    assert!(e.message.len() < 200, "message is cut too");
    let body = format!(
        r#"{{"ping_id":"p","lead":{},"consent":{{"text":"{big}"}}}}"#,
        post_lead("")
    );
    fails(
        post(&body),
        422,
        "invalid_field",
        Some("consent.text"),
        "2 MB consent text",
    );
}

#[test]
fn a_full_post_parses_and_normalises() {
    let body = format!(
        r#"{{"ping_id":"p1","lead":{},"consent":{CONSENT}}}"#,
        post_lead(r#","address":"1 Main St""#)
    );
    let r = post(&body).unwrap();
    assert_eq!(r.ping_id, "p1");
    assert_eq!(r.lead.phone.as_deref(), Some("+15552345678"));
    assert_eq!(r.lead.address.as_deref(), Some("1 Main St"));
    let c = r.consent.unwrap();
    assert_eq!(
        (c.ip.as_str(), c.page_url.as_str()),
        ("203.0.113.9", "https://example.com/quote")
    );
    let r = post(&format!(
        r#"{{"ping_id":"p1","lead":{},"consent":null}}"#,
        post_lead("")
    ))
    .unwrap();
    assert_eq!(r.consent, None);
}

#[test]
fn post_field_errors() {
    let with = |lead: String, consent: &str| {
        format!(r#"{{"ping_id":"p1","lead":{lead},"consent":{consent}}}"#)
    };
    let consent_with = |extra: &str| CONSENT.replacen('}', extra, 1).to_string() + "}";
    let no_email =
        r#"{"zip":"90210","state":"CA","first_name":"Ann","last_name":"Lee","phone":"5552345678"}"#;
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with(post_lead(r#","phone":"555-134-5678""#), CONSENT),
            "invalid_field",
            "lead.phone",
        ),
        (
            with(post_lead(r#","phone":5552345678"#), CONSENT),
            "invalid_field",
            "lead.phone",
        ),
        (
            with(post_lead(r#","email":"ann@example""#), CONSENT),
            "invalid_field",
            "lead.email",
        ),
        (
            with(post_lead(r#","first_name":"""#), CONSENT),
            "invalid_field",
            "lead.first_name",
        ),
        (
            with(
                post_lead(&format!(r#","last_name":"{}""#, "l".repeat(65))),
                CONSENT,
            ),
            "invalid_field",
            "lead.last_name",
        ),
        (
            with(post_lead(r#","first_name":null"#), CONSENT),
            "missing_field",
            "lead.first_name",
        ),
        (
            with(no_email.to_string(), CONSENT),
            "missing_field",
            "lead.email",
        ),
        (
            with(post_lead(r#","nickname":"A""#), CONSENT),
            "unknown_field",
            "lead.nickname",
        ),
        (with(post_lead(""), "[]"), "invalid_field", "consent"),
        (
            with(post_lead(""), r#"{"text":"t"}"#),
            "missing_field",
            "consent.captured_at",
        ),
        (
            with(post_lead(""), &consent_with(r#","x":1"#)),
            "unknown_field",
            "consent.x",
        ),
        (
            with(post_lead(""), &consent_with(r#","ip":"999.1.1.1""#)),
            "invalid_field",
            "consent.ip",
        ),
        (
            with(post_lead(""), &consent_with(r#","page_url":"ftp://x.com""#)),
            "invalid_field",
            "consent.page_url",
        ),
        (
            with(
                post_lead(""),
                &consent_with(r#","captured_at":"2024-05-01""#),
            ),
            "invalid_field",
            "consent.captured_at",
        ),
        (
            with(post_lead(""), &consent_with(r#","text":"""#)),
            "invalid_field",
            "consent.text",
        ),
        (
            with(post_lead(""), &consent_with(r#","jornaya_leadid":5"#)),
            "invalid_field",
            "consent.jornaya_leadid",
        ),
        (
            format!(r#"{{"lead":{}}}"#, post_lead("")),
            "missing_field",
            "ping_id",
        ),
        (
            format!(r#"{{"ping_id":"","lead":{}}}"#, post_lead("")),
            "invalid_field",
            "ping_id",
        ),
        (
            format!(
                r#"{{"ping_id":"{}","lead":{}}}"#,
                "p".repeat(65),
                post_lead("")
            ),
            "invalid_field",
            "ping_id",
        ),
        (
            format!(r#"{{"ping_id":"p","lead":{},"test":true}}"#, post_lead("")),
            "unknown_field",
            "test",
        ),
        (r#"{"ping_id":"p"}"#.to_string(), "missing_field", "lead"),
    ];
    for (body, code, field) in &cases {
        fails(post(body), 422, code, Some(field), body);
    }
}

#[test]
fn direct_post_parses_and_checks() {
    let r = direct(&format!(
        r#"{{"vertical":"auto","lead":{},"consent":{CONSENT},"test":true}}"#,
        post_lead("")
    ))
    .unwrap();
    assert!(r.test && r.consent.is_some() && r.lead.email.is_some());
    let r = direct(&format!(
        r#"{{"vertical":"auto","lead":{}}}"#,
        post_lead("")
    ))
    .unwrap();
    assert!(!r.test && r.consent.is_none());
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!(r#"{{"lead":{}}}"#, post_lead("")),
            "missing_field",
            "vertical",
        ),
        (
            r#"{"vertical":"auto","lead":{"zip":"90210","state":"CA"}}"#.into(),
            "missing_field",
            "lead.first_name",
        ),
        (
            format!(
                r#"{{"vertical":"auto","lead":{},"floor":1}}"#,
                post_lead("")
            ),
            "unknown_field",
            "floor",
        ),
    ];
    for (body, code, field) in &cases {
        fails(direct(body), 422, code, Some(field), body);
    }
}

#[test]
fn ping_and_post_of_one_lead_match_and_round_trip() {
    let p = ping(
        r#"{"vertical":"a","lead":{"zip":"90210","state":"ca","attributes":{"b":1,"a":"x"}}}"#,
    )
    .unwrap();
    let body = r#"{"ping_id":"p","lead":{"attributes":{"a":"x","b":1},"state":"CA","zip":"90210",
        "first_name":"Ann","last_name":"Lee","phone":"+1 555 234 5678","email":"ann@example.com"}}"#;
    let q = post(body).unwrap();
    assert!(
        p.lead.same_ping_fields(&q.lead),
        "key order and state case do not matter"
    );
    // What we write parses back into the same lead.
    let mut out = br#"{"ping_id":"p","lead":"#.to_vec();
    q.lead.write_json(&mut out, true);
    out.push(b'}');
    assert_eq!(parse_post(&mut out).unwrap().lead, q.lead);
    let dup = r#"{"vertical":"a","lead":{"zip":"90210","state":"CA","attributes":{"k":1,"k":2},"zip":"10001"}}"#;
    let d = ping(dup).unwrap().lead;
    assert_eq!(
        (d.zip.as_str(), d.attributes.as_slice()),
        ("10001", &[("k".to_string(), Attr::Int(2))][..]),
        "last wins"
    );
}
