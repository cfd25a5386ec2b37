//! Buyer specs (contract §9) wired into the exchange, end to end on real
//! sockets: leadx in-process, buyer servers that speak XML, form posts,
//! SOAP, gzip JSON and GET pings. Each test asserts the exact request the
//! buyer received (method, target, headers, body), the publisher's answer,
//! the stored lead and the call records. `buyer_specs.rs` checks the same
//! formats as pure bytes; this checks that the auction and the post stage
//! actually use them (before the wiring, such buyers were called natively).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use leadx::http::server::{self, Handler, Request, Response, ServerHandle, ServerOptions};
use parking_lot::Mutex;
use serde_json::Value;

use crate::support::*;

/// One answer a buyer server gives.
#[derive(Clone)]
struct Canned {
    status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn canned(status: u16, content_type: &'static str, body: &str) -> Canned {
    Canned {
        status,
        content_type,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn gzipped(content_type: &'static str, body: &str) -> Canned {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    Canned {
        status: 200,
        content_type,
        headers: vec![("Content-Encoding", "gzip".into())],
        body: gz.finish().unwrap(),
    }
}

/// A buyer server: answers a target starting with `/ping` with `ping`,
/// anything else with `post`, and keeps every request it received, as
/// text: `METHOD target`, one `Name: value` line per header in the order
/// sent, a blank line, the body.
struct Buyer {
    ping: Mutex<Canned>,
    post: Mutex<Canned>,
    seen: Mutex<Vec<String>>,
    server: ServerHandle,
}

struct BuyerHandler(Arc<Mutex<Option<Arc<Buyer>>>>);

impl Handler for BuyerHandler {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let b = self.0.lock().clone().expect("buyer set before traffic");
        let mut text = format!("{} {}", req.method, req.path);
        if !req.query.is_empty() {
            text.push('?');
            text.push_str(req.query);
        }
        text.push('\n');
        for h in req.headers {
            text.push_str(&format!(
                "{}: {}\n",
                h.name,
                String::from_utf8_lossy(h.value)
            ));
        }
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(req.body));
        b.seen.lock().push(text);
        let c = if req.path.starts_with("/ping") {
            b.ping.lock().clone()
        } else {
            b.post.lock().clone()
        };
        Response {
            status: c.status,
            content_type: c.content_type,
            headers: c.headers,
            body: c.body,
        }
    }
}

fn buyer(ping: Canned, post: Canned) -> Arc<Buyer> {
    let slot = Arc::new(Mutex::new(None));
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = server::start(
        listener,
        ServerOptions::default(),
        Arc::new(BuyerHandler(slot.clone())),
    )
    .unwrap();
    let b = Arc::new(Buyer {
        ping: Mutex::new(ping),
        post: Mutex::new(post),
        seen: Mutex::new(vec![]),
        server,
    });
    *slot.lock() = Some(b.clone());
    b
}

impl Buyer {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Its `[[buyer]]` table: `ADDR` in `toml` is this server.
    fn toml(&self, toml: &str) -> String {
        toml.replace("ADDR", &self.addr().to_string()) + "\n"
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().clone()
    }

    /// The head lines the client always writes, for a request with a body.
    fn head(&self, line: &str, content_type: &str, body: &str) -> String {
        format!(
            "{line}\nHost: {}\nContent-Type: {content_type}\nContent-Length: {}\nConnection: keep-alive\n",
            self.addr(),
            body.len()
        )
    }
}

fn json_ok(body: &str) -> Canned {
    canned(200, "application/json", body)
}

fn admin(l: &Leadx, path: &str) -> Value {
    let r = get(l.addr, path, ADMIN);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// The last transaction's ping calls, by buyer: (outcome, reason).
fn ping_calls(l: &Leadx) -> Vec<(String, String, String)> {
    let tx = admin(l, "/v1/admin/transactions?limit=1");
    let mut out: Vec<(String, String, String)> = tx["transactions"][0]["ping_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["buyer"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn ping_of(l: &Leadx, lead: Value) -> Value {
    let r = post_json(
        l.addr,
        "/v1/ping",
        KEY,
        &serde_json::json!({"vertical": "auto", "lead": lead}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

const XML_PING: &str = r#"
[[buyer]]
id = "xmlb"
verticals = ["auto"]
post_url = "http://ADDR/post"

[buyer.ping]
url = "http://ADDR/ping?v=2"
format = "xml"
headers = { "X-Partner" = "leadx" }
body = """<PingRequest source="{{ publisher }}" id="{{ ping_id }}"><Zip>{{ lead.zip }}</Zip><Credit>{{ lead.credit | lookup("credit") }}</Credit><City>{{ lead.city }}</City></PingRequest>"""

[buyer.ping.response]
bid = { path = "/PingResponse/@result", equals = ["Approved"] }
price = { path = "/PingResponse/Bid/@amount" }
ref = { path = "/PingResponse/Bid/@token" }
reason = { path = "/PingResponse/Message" }

[buyer.maps]
credit = { excellent = "1", good = "2", fair = "3", poor = "4", "_" = "0" }
"#;

#[test]
fn an_xml_ping_buyer_bids_by_attribute_and_its_native_post_sells() {
    let x = buyer(
        canned(
            200,
            "application/xml",
            r#"<?xml version="1.0"?><PingResponse result="Approved"><Bid amount="9.25" token="T-77&amp;x"/></PingResponse>"#,
        ),
        json_ok(r#"{"status":"accepted","lead_id":"XB-1"}"#),
    );
    let l = start("ping_timeout_ms = 1000", "", &x.toml(XML_PING));
    let mut lead = ping_lead();
    lead["city"] = "Tom & Jerry's <Town>".into();
    let p = ping_of(&l, lead);
    assert_eq!(p["status"], "bid", "{p}");
    assert_eq!(p["price"], 7.4, "floor(9.25 × 0.8)");
    let ping_id = p["ping_id"].as_str().unwrap();
    let body = format!(
        r#"<PingRequest source="pub1" id="{ping_id}"><Zip>90210</Zip><Credit>2</Credit><City>Tom &amp; Jerry&apos;s &lt;Town&gt;</City></PingRequest>"#
    );
    let want = x.head("POST /ping?v=2", "application/xml", &body) + "X-Partner: leadx\n\n" + &body;
    assert_eq!(x.seen(), [want], "the exact XML ping, not the native JSON");
    assert_eq!(
        ping_calls(&l),
        [("xmlb".into(), "bid".into(), String::new())]
    );

    let mut lead = full_lead("5552345678", "ann@example.com");
    lead["city"] = "Tom & Jerry's <Town>".into();
    let body = serde_json::json!({"ping_id": ping_id, "lead": lead, "consent": consent()});
    let r = post_json(l.addr, "/v1/post", KEY, &body);
    assert_eq!(r.json()["status"], "sold", "{}", r.json());
    let sent = x.seen().pop().unwrap();
    assert!(sent.starts_with("POST /post\n"), "{sent}");
    let json: Value = serde_json::from_str(sent.split("\n\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        json["ref"], "T-77&x",
        "the XML token is echoed in the native post"
    );
    assert_eq!(json["price"], 9.25);
    let stored = admin(
        &l,
        &format!("/v1/admin/leads/{}", r.json()["lead_id"].as_str().unwrap()),
    );
    assert_eq!(stored["buyer"], "xmlb");
    assert_eq!(stored["buyer_lead_id"], "XB-1");
    assert_eq!(
        (&stored["price"], &stored["payout"]),
        (&9.25.into(), &7.4.into()),
        "{stored}"
    );
}

const FORM_POST: &str = r#"
[buyer.post]
url = "http://ADDR/leadimport.aspx?vendor=leadx"
format = "form"
headers = { "X-Vendor-Key" = "k-1" }

[buyer.post.fields]
FirstName = "{{ lead.first_name }}"
Phone = "{{ lead.phone | phone('dashed') }}"
Email = "{{ lead.email }}"
Price = "{{ price }}"
Ref = "{{ ref }}"
TCPA = "{{ consent.text }}"

[buyer.post.response]
accepted = { regex = "^OK:(\\w+)$" }
lead_id = { regex = "^OK:(\\w+)$" }
reason = { regex = "^ERR:(.*)$" }
"#;

#[test]
fn form_posts_answer_ok_or_err_for_a_mixed_and_a_direct_buyer() {
    // Native ping (bids 30 with a ref), form post that refuses.
    let mixed = buyer(
        json_ok(r#"{"status":"bid","price":30,"ref":"M-9"}"#),
        canned(200, "text/plain", "ERR:duplicate lead\r\n"),
    );
    // Direct post (fixed price, no ping), form post that buys.
    let direct = buyer(
        json_ok(r#"{"status":"no_bid"}"#),
        canned(200, "text/plain", "OK:LD99812\r\n"),
    );
    let toml = mixed.toml(
        &(r#"[[buyer]]
id = "mixed"
verticals = ["auto"]
ping_url = "http://ADDR/ping"
"#
        .to_string()
            + FORM_POST),
    ) + &direct.toml(
        &(r#"[[buyer]]
id = "direct"
verticals = ["auto"]
fixed_price = 22.00
"#
        .to_string()
            + FORM_POST),
    );
    let l = start("ping_timeout_ms = 1000", "", &toml);
    let p = ping_of(&l, ping_lead());
    assert_eq!(p["price"], 24.0, "{p}");
    let ping_id = p["ping_id"].as_str().unwrap().to_string();
    let native_ping = mixed.seen().pop().unwrap();
    assert!(
        native_ping.contains("Content-Type: application/json\n") && native_ping.contains(&ping_id),
        "a native ping stays native: {native_ping}"
    );
    assert!(
        direct.seen().is_empty(),
        "a direct-post buyer is not pinged"
    );

    let r = post(&l, &ping_id, "(555) 234-5678");
    let v = r.json();
    assert_eq!(v["status"], "sold", "{v}");
    assert_eq!(
        v["price"], 17.6,
        "floor(22 × 0.8), from the buyer that bought"
    );
    let form = |price: &str, r#ref: &str| {
        format!("Email=ann%40example.com&FirstName=Ann&Phone=555-234-5678&Price={price}&Ref={ref}&TCPA=I%20agree")
    };
    let (m, d) = (form("30.00", "M-9"), form("22.00", ""));
    let ct = "application/x-www-form-urlencoded";
    let head = |b: &Buyer, body: &str| {
        b.head("POST /leadimport.aspx?vendor=leadx", ct, body) + "X-Vendor-Key: k-1\n\n" + body
    };
    assert_eq!(mixed.seen().pop().unwrap(), head(&mixed, &m));
    assert_eq!(direct.seen(), [head(&direct, &d)]);
    let stored = admin(
        &l,
        &format!("/v1/admin/leads/{}", v["lead_id"].as_str().unwrap()),
    );
    assert_eq!(stored["buyer"], "direct");
    assert_eq!(stored["buyer_lead_id"], "LD99812");
    assert_eq!(stored["price"], 22.0, "{stored}");
    let calls: Vec<(String, String, String)> = stored["post_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["buyer"].as_str().unwrap().into(),
                c["outcome"].as_str().unwrap().into(),
                c["reason"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("mixed".into(), "rejected".into(), "duplicate lead".into()),
            ("direct".into(), "accepted".into(), String::new()),
        ]
    );
}

const SOAP_PING: &str = r#"
[[buyer]]
id = "soap"
verticals = ["auto"]
post_url = "http://ADDR/post"

[buyer.ping]
url = "http://ADDR/ping/LeadService.asmx"
format = "soap"
headers = { "SOAPAction" = "\"http://soapins.example/ws/Ping\"" }
body = """<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://soapins.example/ws/"><soap:Body><ws:Ping><ws:LeadId>{{ ping_id }}</ws:LeadId><ws:Zip>{{ lead.zip }}</ws:Zip></ws:Ping></soap:Body></soap:Envelope>"""

[buyer.ping.response]
bid = { path = "/Envelope/Body/PingResponse/PingResult/Status", equals = ["Success"] }
price = { path = "/Envelope/Body/PingResponse/PingResult/Payout" }
ref = { path = "/Envelope/Body/PingResponse/PingResult/@ConfirmationId" }
"#;

/// An XML ping buyer with only the answer rules that matter here.
const XML_SIMPLE: &str = r#"
[[buyer]]
id = "ID"
verticals = ["auto"]
post_url = "http://ADDR/post"

[buyer.ping]
url = "http://ADDR/ping"
format = "xml"
body = """<Ping><Zip>{{ lead.zip }}</Zip></Ping>"""

[buyer.ping.response]
bid = { path = "/R/@status", equals = ["ok"] }
price = { path = "/R/@price" }
reason = { path = "/R/Why" }
"#;

#[test]
fn soap_bids_and_bad_spec_answers_are_recorded_with_their_reasons() {
    let soap = buyer(
        canned(
            200,
            "text/xml; charset=utf-8",
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><PingResponse xmlns="http://soapins.example/ws/"><PingResult ConfirmationId="C-5512"><Status>Success</Status><Payout><![CDATA[ 11.4 ]]></Payout></PingResult></PingResponse></s:Body></s:Envelope>"#,
        ),
        json_ok(r#"{"status":"accepted","lead_id":"S-1"}"#),
    );
    let down = buyer(canned(503, "application/xml", "<R/>"), json_ok("{}"));
    let broken = buyer(
        canned(200, "application/xml", "<R status='ok'"),
        json_ok("{}"),
    );
    let abc = buyer(
        canned(200, "application/xml", r#"<R status="ok" price="abc"/>"#),
        json_ok("{}"),
    );
    let declines = buyer(
        canned(
            200,
            "application/xml",
            r#"<R status="no"><Why>out of area</Why></R>"#,
        ),
        json_ok("{}"),
    );
    let xml = |b: &Buyer, id: &str| b.toml(&XML_SIMPLE.replace("\"ID\"", &format!("\"{id}\"")));
    let toml = soap.toml(SOAP_PING)
        + &xml(&down, "down")
        + &xml(&broken, "broken")
        + &xml(&abc, "abc")
        + &xml(&declines, "declines");
    let l = start("ping_timeout_ms = 1000", "", &toml);
    let p = ping_of(&l, ping_lead());
    assert_eq!(p["price"], 9.12, "floor(11.40 × 0.8): {p}");
    let ping_id = p["ping_id"].as_str().unwrap();
    let body = format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://soapins.example/ws/"><soap:Body><ws:Ping><ws:LeadId>{ping_id}</ws:LeadId><ws:Zip>90210</ws:Zip></ws:Ping></soap:Body></soap:Envelope>"#
    );
    let want = soap.head(
        "POST /ping/LeadService.asmx",
        "text/xml; charset=utf-8",
        &body,
    ) + "SOAPAction: \"http://soapins.example/ws/Ping\"\n\n"
        + &body;
    assert_eq!(soap.seen(), [want]);
    let row = |b: &str, o: &str, r: &str| (b.to_string(), o.to_string(), r.to_string());
    assert_eq!(
        ping_calls(&l),
        [
            row("abc", "invalid", "bad_price"),
            row("broken", "invalid", "malformed_xml"),
            row("declines", "no_bid", "out of area"),
            row("down", "invalid", "http_503"),
            row("soap", "bid", ""),
        ]
    );
    let r = post(&l, ping_id, "5552345678");
    let stored = admin(
        &l,
        &format!("/v1/admin/leads/{}", r.json()["lead_id"].as_str().unwrap()),
    );
    assert_eq!(
        (&stored["buyer"], &stored["buyer_lead_id"], &stored["price"]),
        (&"soap".into(), &"S-1".into(), &11.4.into())
    );
    let sent = soap.seen().pop().unwrap();
    assert!(sent.contains("\"ref\":\"C-5512\""), "{sent}");
}

#[test]
fn a_gzip_json_answer_and_a_get_ping_with_the_lead_in_the_query() {
    let gz = buyer(
        gzipped("application/json", r#"{"status": "bid", "price": 8.05}"#),
        json_ok("{}"),
    );
    let getb = buyer(
        json_ok(r#"{"accept": true, "payout": "7.5"}"#),
        json_ok("{}"),
    );
    let toml = gz.toml(
        r#"[[buyer]]
id = "gz"
verticals = ["auto"]
post_url = "http://ADDR/post"

[buyer.ping]
url = "http://ADDR/ping"
format = "json"
body = """{"zip": {{ lead.zip }}, "age": {{ lead.age }}, "test": {{ test }}}"""

[buyer.ping.response]
bid = { path = "/status", equals = ["bid"] }
price = { path = "/price" }
"#,
    ) + &getb.toml(
        r#"[[buyer]]
id = "get"
verticals = ["auto"]
post_url = "http://ADDR/post"

[buyer.ping]
url = "http://ADDR/ping/api?key=k-2"
method = "GET"
format = "json"

[buyer.ping.fields]
zip = "{{ lead.zip }}"
st = "{{ lead.state }}"
src = "{{ publisher }}/{{ lead.sub_id }}"

[buyer.ping.response]
bid = { path = "/accept", equals = ["true"] }
price = { path = "/payout" }
"#,
    );
    let l = start("ping_timeout_ms = 1000", "", &toml);
    let mut lead = ping_lead();
    lead["sub_id"] = "s 7".into();
    let p = ping_of(&l, lead);
    assert_eq!(
        p["price"], 6.44,
        "floor(8.05 × 0.8), the gzip answer read: {p}"
    );
    let body = r#"{"zip": "90210", "age": 30, "test": false}"#;
    let want = gz.head("POST /ping", "application/json", body) + "\n" + body;
    assert_eq!(gz.seen(), [want]);
    let want = format!(
        "GET /ping/api?key=k-2&src=pub1%2Fs%207&st=CA&zip=90210\nHost: {}\nConnection: keep-alive\n\n",
        getb.addr()
    );
    assert_eq!(
        getb.seen(),
        [want],
        "no body, no Content-Type, no Content-Length"
    );
    let row = |b: &str, o: &str| (b.to_string(), o.to_string(), String::new());
    assert_eq!(ping_calls(&l), [row("get", "bid"), row("gz", "bid")]);
}
