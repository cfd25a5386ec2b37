//! Issue #7 points 4 and 6: what a client can make leadx hold in memory,
//! and the watchdog's probe under a connection flood. Real sockets on
//! 127.0.0.1; every read is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::{self, parse_reply, Reply, ADMIN, KEY};

/// Sends only a request head (no body byte) and reads the answer, which
/// must come within `wait` — on the old code the server waited for the
/// body until `request_timeout_ms` (10 s), so this read timed out.
fn head_only(addr: SocketAddr, head: &str, wait: Duration) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let started = Instant::now();
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "no answer to a head without its body after {:?}: {e}",
                started.elapsed()
            ),
        }
        if complete(&raw) {
            break;
        }
    }
    parse_reply(&raw)
}

/// The head and a Content-Length body are in.
fn complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| raw.len() >= split + 4 + n)
}

const WAIT: Duration = Duration::from_secs(5);

/// Issue #7 point 4: a bad key with a large Content-Length is answered 401
/// from the head, before the client sends one body byte, and the
/// connection is closed (the body is never read into memory).
#[test]
fn a_bad_key_with_a_large_content_length_gets_401_before_the_body_is_sent() {
    let l = support::start("", "", "");
    let head = "POST /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n";
    let r = head_only(l.addr, head, WAIT);
    assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
    assert_eq!(r.header("connection"), Some("close"));
    let stats = l.running.as_ref().unwrap().server().stats();
    assert_eq!(stats.refused_on_head_total.load(Ordering::Relaxed), 1);
    // No key at all, and a held-back body (Expect: 100-continue): refused,
    // and no `100 Continue` invites the body first.
    let head = "POST /v1/leads HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 60000\r\n\r\n";
    let r = head_only(l.addr, head, WAIT);
    assert_eq!(r.status, 401);
}

#[test]
fn a_good_key_with_a_wrong_media_type_gets_415_before_the_body() {
    let l = support::start("", "", "");
    let head = format!("POST /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: text/plain\r\nContent-Length: 60000\r\n\r\n");
    let r = head_only(l.addr, &head, WAIT);
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    let r = head_only(
        l.addr,
        "GET /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status, 405);
    let r = head_only(
        l.addr,
        "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status, 404);
}

/// Endpoints that need no key (health, readiness, metrics) and the admin
/// API take no body: a body is refused on the head, not buffered.
#[test]
fn get_and_admin_endpoints_do_not_buffer_a_body() {
    let l = support::start("", "", "");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = head_only(
            l.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"),
            WAIT,
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (413, "body_too_large"),
            "{path}"
        );
        let chunked =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(
            head_only(l.addr, &chunked, WAIT).status,
            413,
            "{path} chunked"
        );
    }
    let r = head_only(
        l.addr,
        "POST /v1/admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n",
        WAIT,
    );
    assert_eq!(r.status, 401, "no admin token");
    let head = format!("POST /v1/admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 60000\r\n\r\n");
    assert_eq!(
        head_only(l.addr, &head, WAIT).status,
        413,
        "admin routes take no body"
    );
    // Without a body they work as before.
    assert_eq!(
        support::request(l.addr, "GET", "/healthz", &[], b"").status,
        200
    );
    assert_eq!(support::get(l.addr, "/v1/admin/stats", ADMIN).status, 200);
}

/// A request that passes the head check is served whole, body and all,
/// also when its body comes later than its head.
#[test]
fn a_good_request_whose_body_comes_later_is_served() {
    let l = support::start("", "", "");
    let body = serde_json::json!({"vertical": "auto", "lead": support::ping_lead()}).to_string();
    let mut s = TcpStream::connect(l.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let r = parse_reply(&raw);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["ping_id"].is_string());
}

/// Issue #7 point 6: with `connections_max` filled by idle clients, the
/// watchdog's probe still gets its 200 (on the old code it asked the main
/// port, which refuses past `connections_max`, and systemd killed leadx).
#[test]
fn the_watchdog_probe_succeeds_while_idle_clients_fill_connections_max() {
    let dir = tempfile::tempdir().unwrap();
    let text = support::base_toml(&dir.path().join("data"), "", "")
        .replace("workers = 2", "workers = 2\nconnections_max = 4");
    let config = leadx::config::parse(&text, &|_| None).unwrap();
    let running = leadx::daemon::start(config, None).unwrap();
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(running.local_addr()).unwrap())
        .collect();
    let stats = running.server().stats();
    let until = Instant::now() + Duration::from_secs(10);
    while stats.connections_open.load(Ordering::SeqCst) < 4 {
        assert!(
            Instant::now() < until,
            "the idle connections were not accepted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !leadx::watchdog::healthy(running.local_addr(), Duration::from_secs(2)),
        "the main port is full"
    );
    assert_ne!(running.watchdog_addr(), running.local_addr());
    for _ in 0..3 {
        assert!(
            leadx::watchdog::healthy(running.watchdog_addr(), Duration::from_secs(5)),
            "probe refused"
        );
    }
    drop(idle);
    running.shutdown().unwrap();
}

/// A request that arrived whole is shown to the same head check (every
/// request passes one gate whatever its packets looked like); its body is
/// already consumed, so the connection stays open for the next one.
#[test]
fn a_whole_request_refused_on_its_head_keeps_the_connection() {
    let l = support::start("", "", "");
    let mut s = TcpStream::connect(l.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nxGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i..i + 12])
        .collect();
    assert_eq!(statuses, ["HTTP/1.1 413", "HTTP/1.1 200"], "{text}");
}
