//! Shared test fixtures: leadx started in-process on 127.0.0.1:0 with a
//! temporary store, mock buyers on loopback whose behaviour each test sets,
//! and a tiny blocking HTTP client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leadx::daemon::{self, Running};
use leadx::http::server::{self, Handler, Request, Response, ServerHandle, ServerOptions};
use parking_lot::Mutex;

pub const KEY: &str = "pub1-secret-key";
pub const KEY2: &str = "pub2-secret-key";
pub const ADMIN: &str = "admin-secret-token";

/// What a mock buyer does with one call.
#[derive(Clone, Debug)]
pub enum Act {
    Bid(f64),
    BidRef(f64, &'static str),
    NoBid,
    Accept(&'static str),
    Reject,
    /// Rejected with this reason (JSON-escaped here).
    RejectWith(&'static str),
    Status(u16),
    Garbage,
    /// Sleep this long, then act.
    Delay(u64, Box<Act>),
    /// Never answer (for longer than any test deadline).
    Hang,
}

pub struct MockBuyer {
    pub ping: Mutex<Act>,
    pub post: Mutex<Act>,
    pub pings: AtomicUsize,
    pub posts: AtomicUsize,
    pub last_ping: Mutex<Vec<u8>>,
    pub last_post: Mutex<Vec<u8>>,
    pub last_headers: Mutex<Vec<(String, String)>>,
}

impl MockBuyer {
    pub fn set_ping(&self, a: Act) {
        *self.ping.lock() = a;
    }
    pub fn set_post(&self, a: Act) {
        *self.post.lock() = a;
    }
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }
    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }
    pub fn last_post_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.last_post.lock()).unwrap()
    }
    pub fn last_ping_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.last_ping.lock()).unwrap()
    }
}

fn act(a: Act) -> Response {
    let ok = |body: String| Response {
        status: 200,
        content_type: "application/json",
        headers: vec![],
        body: body.into_bytes(),
    };
    match a {
        Act::Bid(p) => ok(format!(r#"{{"status":"bid","price":{p}}}"#)),
        Act::BidRef(p, r) => ok(format!(r#"{{"status":"bid","price":{p},"ref":"{r}"}}"#)),
        Act::NoBid => ok(r#"{"status":"no_bid"}"#.into()),
        Act::Accept(id) => ok(format!(r#"{{"status":"accepted","lead_id":"{id}"}}"#)),
        Act::Reject => ok(r#"{"status":"rejected","reason":"not today"}"#.into()),
        Act::RejectWith(reason) => {
            ok(serde_json::json!({"status": "rejected", "reason": reason}).to_string())
        }
        Act::Status(s) => Response {
            status: s,
            content_type: "application/json",
            headers: vec![],
            body: b"{}".to_vec(),
        },
        Act::Garbage => ok("<html>oops".into()),
        Act::Delay(ms, then) => {
            may::coroutine::sleep(Duration::from_millis(ms));
            act(*then)
        }
        Act::Hang => {
            may::coroutine::sleep(Duration::from_secs(30));
            act(Act::NoBid)
        }
    }
}

struct MockHandler(Arc<MockBuyer>);

impl Handler for MockHandler {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let b = &self.0;
        let headers = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        *b.last_headers.lock() = headers;
        if req.path == "/ping" {
            b.pings.fetch_add(1, Ordering::SeqCst);
            *b.last_ping.lock() = req.body.to_vec();
            let a = b.ping.lock().clone();
            act(a)
        } else {
            b.posts.fetch_add(1, Ordering::SeqCst);
            *b.last_post.lock() = req.body.to_vec();
            let a = b.post.lock().clone();
            act(a)
        }
    }
}

pub struct Mock {
    pub buyer: Arc<MockBuyer>,
    pub server: ServerHandle,
}

impl Mock {
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

pub fn mock(ping: Act, post: Act) -> Mock {
    let buyer = Arc::new(MockBuyer {
        ping: Mutex::new(ping),
        post: Mutex::new(post),
        pings: AtomicUsize::new(0),
        posts: AtomicUsize::new(0),
        last_ping: Mutex::new(vec![]),
        last_post: Mutex::new(vec![]),
        last_headers: Mutex::new(vec![]),
    });
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = server::start(
        listener,
        ServerOptions::default(),
        Arc::new(MockHandler(buyer.clone())),
    )
    .unwrap();
    Mock { buyer, server }
}

/// A `[[buyer]]` table for a mock (ping buyer).
pub fn buyer_toml(id: &str, m: &Mock, extra: &str) -> String {
    format!(
        "[[buyer]]\nid = \"{id}\"\nverticals = [\"auto\"]\nping_url = \"http://{a}/ping\"\npost_url = \"http://{a}/post\"\n{extra}\n",
        a = m.addr()
    )
}

/// A direct-post `[[buyer]]` (no ping_url).
pub fn direct_buyer_toml(id: &str, m: &Mock, price: &str, extra: &str) -> String {
    format!("[[buyer]]\nid = \"{id}\"\nverticals = [\"auto\"]\npost_url = \"http://{a}/post\"\nfixed_price = {price}\n{extra}\n", a = m.addr())
}

pub fn base_toml(data_dir: &std::path::Path, auction: &str, vertical_extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = "{dir}"
body_bytes_max = 65536
workers = 2

[admin]
token_sha256 = "{admin}"

[auction]
{auction}

[[vertical]]
id = "auto"
{vertical_extra}

[[vertical]]
id = "home"

[[publisher]]
id = "pub1"
api_key_sha256 = "{k1}"
revenue_share = 0.8
verticals = ["auto"]

[[publisher]]
id = "pub2"
api_key_sha256 = "{k2}"
revenue_share = 0.5
verticals = ["auto", "home"]
"#,
        dir = data_dir.display(),
        admin = leadx::config::hash_key(ADMIN.as_bytes()),
        k1 = leadx::config::hash_key(KEY.as_bytes()),
        k2 = leadx::config::hash_key(KEY2.as_bytes()),
    )
}

pub struct Leadx {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
    pub clock: Arc<dyn leadx::clock::Clock>,
}

impl Leadx {
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().unwrap();
        }
    }

    /// Stops and starts again on the same store and config file.
    pub fn restart(&mut self) {
        self.stop();
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let config = leadx::config::parse(&text, &|_| None).unwrap();
        let running =
            daemon::start_with_clock(config, Some(self.config_path.clone()), self.clock.clone())
                .unwrap();
        self.addr = running.local_addr();
        self.running = Some(running);
    }

    pub fn ex(&self) -> &leadx::exchange::Exchange {
        &self.running.as_ref().unwrap().ex
    }
}

impl Drop for Leadx {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown();
        }
    }
}

/// Starts leadx on a fresh store with `[auction]` settings, extra vertical
/// keys and buyer tables.
pub fn start(auction: &str, vertical_extra: &str, buyers: &str) -> Leadx {
    start_with_clock(
        auction,
        vertical_extra,
        buyers,
        Arc::new(leadx::clock::SystemClock),
    )
}

/// `start` with business time told by `clock` (a `ManualClock` lets a test
/// move time instead of sleeping).
pub fn start_with_clock(
    auction: &str,
    vertical_extra: &str,
    buyers: &str,
    clock: Arc<dyn leadx::clock::Clock>,
) -> Leadx {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n{buyers}",
        base_toml(&dir.path().join("data"), auction, vertical_extra)
    );
    let config_path = dir.path().join("leadx.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = leadx::config::parse(&text, &|_| None)
        .unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
    let running =
        daemon::start_with_clock(config, Some(config_path.clone()), clock.clone()).unwrap();
    let addr = running.local_addr();
    Leadx {
        running: Some(running),
        addr,
        dir,
        config_path,
        clock,
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// Asserts the answer is `sold` (showing the body otherwise) and
    /// gives its `lead_id`.
    pub fn sold_lead_id(&self) -> String {
        let v = self.json();
        assert_eq!(
            v["status"],
            "sold",
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        v["lead_id"]
            .as_str()
            .expect("a sold answer has a lead_id")
            .to_string()
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    pub fn field(&self) -> String {
        self.json()["error"]["field"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: leadx\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

pub fn post_json(addr: SocketAddr, path: &str, key: &str, body: &serde_json::Value) -> Reply {
    let auth = format!("Bearer {key}");
    request(
        addr,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// `POST /v1/admin/reload` with the admin token; asserts it answered 200.
pub fn reload_ok(addr: SocketAddr) {
    let auth = format!("Bearer {ADMIN}");
    let r = request(
        addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

pub fn get(addr: SocketAddr, path: &str, key: &str) -> Reply {
    let auth = format!("Bearer {key}");
    request(addr, "GET", path, &[("Authorization", &auth)], b"")
}

pub fn ping_lead() -> serde_json::Value {
    serde_json::json!({"zip": "90210", "state": "CA", "age": 30, "credit": "good"})
}

pub fn full_lead(phone: &str, email: &str) -> serde_json::Value {
    let mut l = ping_lead();
    let o = l.as_object_mut().unwrap();
    o.insert("first_name".into(), "Ann".into());
    o.insert("last_name".into(), "Lee".into());
    o.insert("phone".into(), phone.into());
    o.insert("email".into(), email.into());
    l
}

pub fn consent() -> serde_json::Value {
    serde_json::json!({"text": "I agree", "captured_at": "2026-11-27T12:00:00Z", "ip": "203.0.113.9", "user_agent": "UA", "page_url": "https://example.com/q"})
}

/// Pings `auto` as pub1 and returns the answer's JSON.
pub fn ping(l: &Leadx) -> serde_json::Value {
    let r = post_json(
        l.addr,
        "/v1/ping",
        KEY,
        &serde_json::json!({"vertical": "auto", "lead": ping_lead()}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

pub fn post(l: &Leadx, ping_id: &str, phone: &str) -> Reply {
    post_json(
        l.addr,
        "/v1/post",
        KEY,
        &serde_json::json!({"ping_id": ping_id, "lead": full_lead(phone, "ann@example.com"), "consent": consent()}),
    )
}
