//! `[buyer.ping]`, `[buyer.post]`, `[buyer.maps]`: what loads, and one bad
//! snippet per rule with the exact line `check-config` prints.

use crate::buyer::spec::{Format, Method};
use crate::config::{parse, Config};

const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "/var/lib/leadx"
[[vertical]]
id = "v"
"#;

fn secrets(name: &str) -> Option<String> {
    (name == "KEY").then(|| "k-123".to_string())
}

fn load(buyer: &str) -> Result<Config, Vec<String>> {
    parse(
        &format!("{BASE}\n[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\n{buyer}"),
        &secrets,
    )
    .map_err(|e| e.iter().map(|e| e.to_string()).collect())
}

const PING: &str = r#"
[buyer.ping]
url = "http://127.0.0.1:9/ping?x=1"
format = "xml"
timeout_ms = 120
headers = { "X-Key" = "${KEY}", "Content-Type" = "text/xml" }
body = "<P><Z>{{ lead.zip }}</Z><C>{{ lead.credit | lookup('credit') }}</C></P>"
[buyer.ping.response]
bid = { path = "/R/@ok", equals = ["yes"] }
price = { path = "/R/Price" }
"#;

const POST: &str = r#"
[buyer.post]
url = "https://127.0.0.1/post"
method = "PUT"
format = "form"
fields = { zip = "{{ lead.zip }}", t = "{{ ref }}" }
[buyer.post.response]
accepted = { regex = "^OK" }
"#;

const MAPS: &str = "[buyer.maps]\ncredit = { good = \"B\", \"_\" = \"U\" }\n";

#[test]
fn stage_tables_load_with_their_urls_time_outs_and_headers() {
    let c = load(&format!(
        "headers = {{ \"X-Key\" = \"old\", \"X-B\" = \"1\" }}\n{PING}{POST}{MAPS}"
    ))
    .unwrap();
    let b = &c.buyers[0];
    assert_eq!(b.ping_url.as_ref().unwrap().target, "/ping?x=1");
    assert_eq!(b.post_url.target, "/post");
    assert_eq!(b.ping_timeout_ms, 120);
    let ping = b.spec.ping.as_ref().unwrap();
    assert_eq!((ping.method, ping.format), (Method::Post, Format::Xml));
    assert_eq!(
        ping.content_type, "text/xml",
        "a headers entry overrides the format's"
    );
    let names: Vec<(&str, &str)> = ping
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        names,
        [("X-B", "1"), ("X-Key", "k-123")],
        "the stage's header wins"
    );
    let post = b.spec.post.as_ref().unwrap();
    assert_eq!((post.method, post.format), (Method::Put, Format::Form));
    assert_eq!(post.content_type, "application/x-www-form-urlencoded");
    // Secrets stay out of Debug.
    assert!(!format!("{b:?}").contains("k-123"));
}

#[test]
fn native_ping_with_a_custom_post_and_a_direct_post_buyer_load() {
    let mixed = load(&format!("ping_url = \"http://127.0.0.1:9/p\"\n{POST}")).unwrap();
    assert!(mixed.buyers[0].spec.ping.is_none() && mixed.buyers[0].spec.post.is_some());
    let direct = load(&format!("fixed_price = 4.5\n{POST}")).unwrap();
    assert_eq!(direct.buyers[0].fixed_price, Some(450));
    assert!(direct.buyers[0].ping_url.is_none());
    assert_eq!(
        load(POST).unwrap_err(),
        ["buyer[0].fixed_price: required for a direct-post buyer (no ping_url)"]
    );
    // Same source, same stage; another map, another stage.
    let a = load(&format!("{PING}{POST}{MAPS}")).unwrap();
    let b = load(&format!("{PING}{POST}{MAPS}")).unwrap();
    assert_eq!(a, b);
    let c = load(&format!("{PING}{POST}{}", MAPS.replace("\"B\"", "\"2\""))).unwrap();
    assert_ne!(a.buyers[0].spec, c.buyers[0].spec);
    // A secret in a body: a reload with its new value is a new stage.
    let with_secret = format!("{PING}{POST}{MAPS}").replace("<P>", "<P><K>${BODY_KEY}</K>");
    let text = |key: &'static str| {
        move |n: &str| match n {
            "BODY_KEY" => Some(key.to_string()),
            _ => secrets(n),
        }
    };
    let full = |s: &str, secrets: &dyn Fn(&str) -> Option<String>| {
        parse(
            &format!("{BASE}\n[[buyer]]\nid = \"b\"\nverticals = [\"v\"]\n{s}"),
            secrets,
        )
        .unwrap()
    };
    let (old, new) = (
        full(&with_secret, &text("k1")),
        full(&with_secret, &text("k2")),
    );
    assert_ne!(old.buyers[0].spec.ping, new.buyers[0].spec.ping);
}

/// One bad snippet per rule, with the exact line(s) `check-config` prints.
#[test]
fn every_problem_names_its_key() {
    let ping_with = |from: &str, to: &str| format!("{}{POST}{MAPS}", PING.replace(from, to));
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("ping_url = \"http://127.0.0.1:9/p\"\n{PING}{POST}{MAPS}"),
            vec!["buyer[0].ping: give ping_url or [buyer.ping], not both"],
        ),
        (
            format!("ping_timeout_ms = 50\n{PING}{POST}{MAPS}"),
            vec!["buyer[0].ping.timeout_ms: give ping_timeout_ms or ping.timeout_ms, not both"],
        ),
        (
            ping_with("{{ lead.zip }}", "{{ leed.zip }}"),
            vec!["buyer[0].ping.body: in {{ leed.zip }}: unknown variable leed (lead, consent, ping_id, vertical, publisher, test, ref, price, now)"],
        ),
        (
            ping_with("lookup('credit')", "lookup('nope')"),
            vec!["buyer[0].ping.body: in {{ lead.credit | lookup('nope') }}: unknown map \"nope\" (not in [buyer.maps])"],
        ),
        (
            ping_with("lookup('credit')", "shout"),
            vec!["buyer[0].ping.body: in {{ lead.credit | shout }}: unknown filter shout (lookup, phone, date, default, upper, lower)"],
        ),
        (
            ping_with("{{ lead.zip }}", "{{ ref }}"),
            vec!["buyer[0].ping.body: in {{ ref }}: ref exists only in the post"],
        ),
        (
            ping_with("<Z>{{ lead.zip }}</Z>", "<Z>{{ lead.zip }}</Y>"),
            vec!["buyer[0].ping.body: does not render to well-formed XML (malformed_xml); placeholders go in element text or quoted attribute values, with every value present"],
        ),
        (
            ping_with("format = \"xml\"", "format = \"yaml\""),
            vec!["buyer[0].ping.format: expected json, xml, soap or form"],
        ),
        (
            ping_with("format = \"xml\"", "format = \"xml\"\nmethod = \"PATCH\""),
            vec!["buyer[0].ping.method: expected POST, PUT or GET"],
        ),
        (
            ping_with("price = { path = \"/R/Price\" }", ""),
            vec!["buyer[0].ping.response.price: required"],
        ),
        (
            ping_with("\"/R/Price\"", "\"R/Price\""),
            vec!["buyer[0].ping.response.price.path: an XML path starts with / and the root element"],
        ),
        (
            ping_with("path = \"/R/Price\"", "path = \"/R/Price\", regex = \"x\""),
            vec!["buyer[0].ping.response.price: give exactly one of path or regex"],
        ),
        (
            ping_with("equals = [\"yes\"]", "equals = [\"yes\"], when = 1"),
            vec!["buyer[0].ping.response.bid.when: unknown key"],
        ),
        (
            ping_with("url = \"http://127.0.0.1:9/ping?x=1\"", "url = \"ftp://x\""),
            vec!["buyer[0].ping.url: not a URL (scheme must be http:// or https://)"],
        ),
        (
            ping_with("timeout_ms = 120", "timeout_ms = 0"),
            vec!["buyer[0].ping.timeout_ms: must be between 1 and 60000"],
        ),
        (
            ping_with("format = \"xml\"", "format = \"xml\"\nfields = { a = \"1\" }"),
            vec!["buyer[0].ping.fields: not used here: a json, xml or soap POST/PUT sends a body template"],
        ),
        (
            format!("{PING}{MAPS}{}", POST.replace("regex = \"^OK\"", "regex = \"(\"")),
            vec!["buyer[0].post.response.accepted.regex: invalid regex: error: unclosed group"],
        ),
        (
            format!("{PING}{MAPS}{}", POST.replace("regex = \"^OK\"", "path = \"/a\"")),
            vec!["buyer[0].post.response.accepted.path: a form buyer's answer is plain text: use regex, not path"],
        ),
        (
            format!("{PING}{MAPS}{}", POST.replace("t = \"{{ ref }}\"", "t = \"{{ ref | phone('x') }}\"")),
            vec!["buyer[0].post.fields.t: in {{ ref | phone('x') }}: phone: unknown format \"x\" (digits, e164, dashed)"],
        ),
        (
            format!("{PING}{}", POST.replace("accepted = { regex = \"^OK\" }", "")),
            vec!["buyer[0].ping.body: in {{ lead.credit | lookup('credit') }}: unknown map \"credit\" (not in [buyer.maps])", "buyer[0].post.response.accepted: required"],
        ),
        (
            format!("{PING}{POST}[buyer.maps]\ncredit = {{ good = [1] }}\n"),
            vec!["buyer[0].maps.credit.good: expected a string, number or boolean"],
        ),
        (
            format!("{PING}{MAPS}"),
            vec!["buyer[0].post_url: required"],
        ),
        (
            format!("{}{POST}{MAPS}", PING.replace("format = \"xml\"", "format = \"json\"").replace("<P><Z>{{ lead.zip }}</Z><C>{{ lead.credit | lookup('credit') }}</C></P>", "{\\\"z\\\": \\\"{{ lead.zip }}\\\"}").replace("/R/@ok", "/ok").replace("/R/Price", "/price")),
            vec!["buyer[0].ping.body: does not render to JSON (expected `,` or `}` at line 1 column 9); a placeholder renders a whole JSON value, so write \"key\": {{ x }}, not \"{{ x }}\", with every value present"],
        ),
    ];
    for (snippet, want) in cases {
        let got = load(&snippet).expect_err(&snippet);
        assert_eq!(got, want, "{snippet}");
    }
}
