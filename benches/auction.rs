//! One whole ping through leadx in-process: the publisher's request on a
//! keep-alive loopback connection, the auction calling four buyers on
//! loopback (leadx's own HTTP server answering at once), the answer back.
//! Fleets: four native JSON buyers (the cost every native auction pays),
//! two native + two XML spec buyers (contract §9: rendered and read per
//! buyer), and five native against five spec buyers of every custom format
//! (JSON, XML, SOAP, a form answered in text, a GET with the lead in the
//! query) side by side. Wall time per ping; the box's noise is in it, so compare runs
//! made one after the other.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use leadx::http::server::{self, Handler, Request, Response, ServerHandle, ServerOptions};

const KEY: &str = "bench-publisher-key";
const BODY: &str = r#"{"vertical":"auto","lead":{"zip":"90210","state":"CA","city":"Beverly Hills","age":34,"credit":"good","homeowner":true}}"#;

struct Answer;

impl Handler for Answer {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let body: &[u8] = match req.path {
            "/xml" => {
                br#"<PingResponse result="Approved"><Bid amount="9.25" token="T-77"/></PingResponse>"#
            }
            "/json" | "/get" => br#"{"result":{"status":"accepted","bid":{"amount":"$11.75","token":"t-9"}}}"#,
            "/soap" => br#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><PingResponse xmlns="urn:x"><PingResult ConfirmationId="c-1"><Status>Success</Status><Payout>10.40</Payout></PingResult></PingResponse></soap:Body></soap:Envelope>"#,
            "/form" => b"BID:12.10 REF:f-3",
            _ => br#"{"status":"bid","price":12.50,"ref":"r-1234"}"#,
        };
        Response {
            status: 200,
            content_type: "application/json",
            headers: vec![],
            body: body.to_vec(),
        }
    }
}

fn buyer_server() -> ServerHandle {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    server::start(listener, ServerOptions::default(), Arc::new(Answer)).unwrap()
}

fn native(i: usize, addr: SocketAddr) -> String {
    format!("[[buyer]]\nid = \"n{i}\"\nverticals = [\"auto\"]\nping_url = \"http://{addr}/ping\"\npost_url = \"http://{addr}/post\"\n")
}

fn xml(i: usize, addr: SocketAddr) -> String {
    r#"[[buyer]]
id = "xID"
verticals = ["auto"]
post_url = "http://ADDR/post"
[buyer.ping]
url = "http://ADDR/xml"
format = "xml"
body = """<PingRequest source="{{ publisher }}"><Zip>{{ lead.zip }}</Zip><State>{{ lead.state }}</State><City>{{ lead.city }}</City><Age>{{ lead.age }}</Age></PingRequest>"""
[buyer.ping.response]
bid = { path = "/PingResponse/@result", equals = ["Approved"] }
price = { path = "/PingResponse/Bid/@amount" }
ref = { path = "/PingResponse/Bid/@token" }
"#
    .replace("ID", &i.to_string())
    .replace("ADDR", &addr.to_string())
}

/// A spec buyer of `format` (json, soap, form, get) at `addr`.
fn spec(format: &str, i: usize, addr: SocketAddr) -> String {
    let stage = match format {
        "json" => {
            r#"url = "http://ADDR/json"
format = "json"
body = """{"contact": {"zip": {{ lead.zip }}, "state": {{ lead.state }}, "city": {{ lead.city | upper }}}, "driver": {"age": {{ lead.age }}, "credit": {{ lead.credit }}}, "source": {{ publisher }}}"""
[buyer.ping.response]
bid = { path = "/result/status", equals = ["accepted"] }
price = { path = "/result/bid/amount" }
ref = { path = "/result/bid/token" }"#
        }
        "soap" => {
            r#"url = "http://ADDR/soap"
format = "soap"
headers = { "SOAPAction" = "\"urn:x/Ping\"" }
body = """<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Ping xmlns="urn:x"><Zip>{{ lead.zip }}</Zip><State>{{ lead.state }}</State><Age>{{ lead.age }}</Age></Ping></soap:Body></soap:Envelope>"""
[buyer.ping.response]
bid = { path = "/Envelope/Body/PingResponse/PingResult/Status", equals = ["Success"] }
price = { path = "/Envelope/Body/PingResponse/PingResult/Payout" }
ref = { path = "/Envelope/Body/PingResponse/PingResult/@ConfirmationId" }"#
        }
        "form" => {
            r#"url = "http://ADDR/form"
format = "form"
[buyer.ping.fields]
zip = "{{ lead.zip }}"
state = "{{ lead.state }}"
age = "{{ lead.age }}"
[buyer.ping.response]
price = { regex = "^BID:([0-9.]+)" }
ref = { regex = "REF:(\\S+)$" }"#
        }
        _ => {
            r#"url = "http://ADDR/get?src=leadx"
method = "GET"
format = "json"
[buyer.ping.fields]
zip = "{{ lead.zip }}"
state = "{{ lead.state }}"
age = "{{ lead.age }}"
[buyer.ping.response]
bid = { path = "/result/status", equals = ["accepted"] }
price = { path = "/result/bid/amount" }"#
        }
    };
    format!(
        "[[buyer]]\nid = \"s{i}\"\nverticals = [\"auto\"]\npost_url = \"http://{addr}/post\"\n[buyer.ping]\n{}\n",
        stage.replace("ADDR", &addr.to_string())
    )
}

fn start(dir: &std::path::Path, buyers: &str) -> leadx::daemon::Running {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nworkers = 2\n[auction]\nping_timeout_ms = 1000\n[[vertical]]\nid = \"auto\"\n[[publisher]]\nid = \"pub1\"\napi_key_sha256 = \"{}\"\nrevenue_share = 0.8\nverticals = [\"auto\"]\n{buyers}",
        dir.display(),
        leadx::config::hash_key(KEY.as_bytes())
    );
    let config = leadx::config::parse(&text, &|_| None).expect("bench config");
    leadx::daemon::start(config, None).unwrap()
}

/// One ping on the keep-alive connection; panics unless it is a bid.
fn ping(s: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) {
    s.write_all(request).unwrap();
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "leadx closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let text = std::str::from_utf8(&buf[..head])
            .unwrap()
            .to_ascii_lowercase();
        let len: usize = text
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        if buf.len() >= head + 4 + len {
            assert!(text.starts_with("http/1.1 200"), "{text}");
            assert!(buf[head + 4..].windows(5).any(|w| w == b"\"bid\""));
            return;
        }
    }
}

fn bench(c: &mut Criterion) {
    let servers: Vec<ServerHandle> = (0..5).map(|_| buyer_server()).collect();
    let addr = |i: usize| servers[i].local_addr();
    let fleets = [
        (
            "ping: 4 native buyers",
            (0..4).map(|i| native(i, addr(i))).collect::<String>(),
        ),
        (
            "ping: 2 native + 2 xml spec buyers",
            native(0, addr(0)) + &native(1, addr(1)) + &xml(2, addr(2)) + &xml(3, addr(3)),
        ),
        (
            "ping: 5 native buyers",
            (0..5).map(|i| native(i, addr(i))).collect::<String>(),
        ),
        (
            "ping: 5 spec buyers (json, xml, soap, form, get)",
            spec("json", 0, addr(0))
                + &xml(1, addr(1))
                + &spec("soap", 2, addr(2))
                + &spec("form", 3, addr(3))
                + &spec("get", 4, addr(4)),
        ),
    ];
    let request = format!(
        "POST /v1/ping HTTP/1.1\r\nHost: leadx\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    for (name, buyers) in fleets {
        let dir = tempfile::tempdir().unwrap();
        let running = start(dir.path(), &buyers);
        let mut s = TcpStream::connect(running.local_addr()).unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = Vec::with_capacity(4096);
        c.bench_function(name, |b| {
            b.iter(|| ping(&mut s, request.as_bytes(), &mut buf))
        });
        drop(s);
        running.shutdown().unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
