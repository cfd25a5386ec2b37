//! The renderers' escaping property, as one check that the property tests
//! (`template_tests.rs`) and the `buyer_spec_render` fuzz target share:
//! whatever two lead values hold, a body rendered in each format parses in
//! that format, carries each value as data (parsed back, it is the value),
//! and has exactly the fields the template wrote — no more.

use std::sync::Arc;

use super::template::{Maps, StageKind, Template};
use super::{
    render, xml, Format, Method, Payload, PingRules, Request, Rule, Rules, Source, Stage, Vars,
};
use crate::lead::{Attr, Lead};

fn stage(method: Method, format: Format, payload: Payload) -> Stage {
    Stage {
        method,
        format,
        headers: Arc::new([]),
        content_type: format.content_type().to_string(),
        payload,
        rules: Rules::Ping(PingRules {
            bid: None,
            price: Rule {
                source: Source::regex("x").expect("a constant pattern"),
                equals: None,
            },
            buyer_ref: None,
            reason: None,
        }),
        source: String::new(),
    }
}

fn t(src: &str) -> Template {
    Template::compile(src, StageKind::Post, &Maps::new()).expect("a constant template")
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(&s[i + 1..i + 3]).expect("hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// `name=value&…` → pairs, percent-decoded; panics on anything else.
fn form_pairs(s: &[u8]) -> Vec<(String, String)> {
    s.split(|&b| b == b'&')
        .map(|pair| {
            assert!(
                pair.iter().all(|b| b.is_ascii_graphic() && *b != b'+'),
                "raw byte in a form"
            );
            let eq = pair.iter().position(|&b| b == b'=').expect("name=value");
            let text = |b: &[u8]| String::from_utf8(percent_decode(b)).expect("UTF-8 back");
            (text(&pair[..eq]), text(&pair[eq + 1..]))
        })
        .collect()
}

/// Panics when a rendered body does not carry `a` and `b` as data.
pub fn check(a: &str, b: &str) {
    let lead = Lead {
        first_name: Some(a.to_string()),
        last_name: Some(b.to_string()),
        attributes: vec![("k".into(), Attr::Str(b.to_string()))],
        ..Lead::default()
    };
    let vars = Vars {
        ping_id: a,
        vertical: "v",
        publisher: b,
        lead: &lead,
        consent: None,
        test: false,
        buyer_ref: Some(a),
        price: Some(1250),
        now_ms: 0,
    };
    let mut req = Request::default();

    // JSON: values are whole JSON values; the object keeps its three keys.
    let json = t(
        r#"{"a": {{ lead.first_name }}, "n": {"b": {{ lead.attributes.k }}, "m": {{ lead.attributes.none }}}, "p": {{ price }}}"#,
    );
    render(
        &stage(Method::Post, Format::Json, Payload::Body(json)),
        "/",
        &vars,
        &mut req,
    );
    let v: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON parses");
    let o = v.as_object().expect("an object");
    assert_eq!(o.keys().collect::<Vec<_>>(), ["a", "n", "p"]);
    assert_eq!(o["a"], a);
    assert_eq!(o["n"].as_object().map(|n| n.len()), Some(2));
    assert_eq!(o["n"]["b"], b);
    assert!(o["n"]["m"].is_null());
    assert_eq!(o["p"], 12.5);

    // XML and SOAP: text and attribute values; exactly the elements written.
    let soap = t(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:P xmlns:m="urn:x" m:ref='{{ ref }}'><m:A>{{ lead.first_name }}</m:A><m:B x="{{ lead.last_name }}"/><![CDATA[c]]></m:P></s:Body></s:Envelope>"#,
    );
    render(
        &stage(Method::Post, Format::Soap, Payload::Body(soap)),
        "/",
        &vars,
        &mut req,
    );
    let d = xml::parse(&req.body).expect("XML parses");
    let path = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
    assert_eq!(d.elements(), 5, "no element added");
    assert_eq!(
        d.find(&path("Envelope/Body/P/A"), None),
        Some(crate::xml::carried(a).as_str())
    );
    assert_eq!(
        d.find(&path("Envelope/Body/P/B"), Some("x")),
        Some(crate::xml::carried(b).as_str())
    );
    assert_eq!(
        d.find(&path("Envelope/Body/P"), Some("ref")),
        Some(crate::xml::carried(a).as_str())
    );
    assert_eq!(d.find(&path("Envelope/Body/P"), None), Some("c"));

    // Form body and GET query: exactly the fields configured.
    let fields = || {
        Payload::Fields(vec![
            ("a".into(), t("{{ lead.first_name }}")),
            ("b%20c".into(), t("pre & {{ lead.last_name }}=")),
        ])
    };
    let want = [
        ("a".to_string(), a.to_string()),
        ("b c".to_string(), format!("pre & {b}=")),
    ];
    render(
        &stage(Method::Post, Format::Form, fields()),
        "/",
        &vars,
        &mut req,
    );
    assert_eq!(form_pairs(&req.body), want);
    render(
        &stage(Method::Get, Format::Json, fields()),
        "/p?k=1",
        &vars,
        &mut req,
    );
    assert!(req.body.is_empty() && req.content_type.is_none());
    let query = req
        .target
        .strip_prefix("/p?")
        .expect("the base target kept");
    let mut got = form_pairs(query.as_bytes());
    assert_eq!(got.remove(0), ("k".to_string(), "1".to_string()));
    assert_eq!(got, want);
}
