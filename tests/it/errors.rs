//! Contract §8: every error code, with its status, its field, and a JSON
//! body — and hostile input that must get a 4xx while the server lives.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;

use crate::support::*;

fn leadx() -> (Leadx, Mock) {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    (start("", "", &buyer_toml("a", &a, "")), a)
}

fn expect(r: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(
        r.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("content-type")
            .map(|c| c.starts_with("application/json")),
        Some(true)
    );
    assert_eq!(r.code(), code);
    if let Some(f) = field {
        assert_eq!(r.field(), f);
    }
}

#[test]
fn auth_method_route_and_media_type_errors() {
    let (l, _a) = leadx();
    let body = json!({"vertical": "auto", "lead": ping_lead()}).to_string();
    expect(
        &request(
            l.addr,
            "POST",
            "/v1/ping",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ),
        401,
        "unauthorized",
        None,
    );
    expect(
        &post_json(l.addr, "/v1/ping", "wrong-key", &json!({})),
        401,
        "unauthorized",
        None,
    );
    expect(
        &request(l.addr, "GET", "/v1/ping", &[], b""),
        405,
        "method_not_allowed",
        None,
    );
    expect(
        &request(l.addr, "GET", "/nope", &[], b""),
        404,
        "not_found",
        None,
    );
    let auth = format!("Bearer {KEY}");
    expect(
        &request(
            l.addr,
            "POST",
            "/v1/ping",
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            body.as_bytes(),
        ),
        415,
        "unsupported_media_type",
        None,
    );
    expect(
        &request(
            l.addr,
            "POST",
            "/v1/ping",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            b"{not json",
        ),
        400,
        "malformed_json",
        None,
    );
    expect(
        &get(l.addr, "/v1/admin/stats", "not-the-token"),
        401,
        "unauthorized",
        None,
    );
    expect(
        &get(l.addr, "/v1/admin/nothing-here", ADMIN),
        404,
        "not_found",
        None,
    );
}

#[test]
fn lead_field_errors_name_their_field() {
    let (l, _a) = leadx();
    let ping = |lead: serde_json::Value| {
        post_json(
            l.addr,
            "/v1/ping",
            KEY,
            &json!({"vertical": "auto", "lead": lead}),
        )
    };
    expect(
        &ping(json!({"state": "CA"})),
        422,
        "missing_field",
        Some("lead.zip"),
    );
    expect(
        &ping(json!({"zip": "9021", "state": "CA"})),
        422,
        "invalid_field",
        Some("lead.zip"),
    );
    expect(
        &ping(json!({"zip": "90210", "state": "CA", "age": 17})),
        422,
        "invalid_field",
        Some("lead.age"),
    );
    expect(
        &ping(json!({"zip": "90210", "state": "CA", "age": "30"})),
        422,
        "invalid_field",
        Some("lead.age"),
    );
    expect(
        &ping(json!({"zip": "90210", "state": "CA", "colour": "red"})),
        422,
        "unknown_field",
        Some("lead.colour"),
    );
    expect(
        &ping(json!({"zip": "90210", "state": "CA", "phone": "5552345678"})),
        422,
        "pii_in_ping",
        Some("lead.phone"),
    );
    expect(
        &ping(json!({"zip": "90210", "state": "CA", "email": "a@b.co"})),
        422,
        "pii_in_ping",
        Some("lead.email"),
    );
    expect(
        &post_json(
            l.addr,
            "/v1/ping",
            KEY,
            &json!({"vertical": "boats", "lead": ping_lead()}),
        ),
        422,
        "invalid_field",
        Some("vertical"),
    );
    expect(
        &post_json(
            l.addr,
            "/v1/ping",
            KEY,
            &json!({"vertical": "home", "lead": ping_lead()}),
        ),
        403,
        "forbidden",
        None,
    );
    let id = crate::support::ping(&l)["ping_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut lead = full_lead("555", "a@b.co");
    expect(
        &post_json(
            l.addr,
            "/v1/post",
            KEY,
            &json!({"ping_id": id, "lead": lead.clone(), "consent": consent()}),
        ),
        422,
        "invalid_field",
        Some("lead.phone"),
    );
    lead["phone"] = "5552345678".into();
    lead.as_object_mut().unwrap().remove("email");
    expect(
        &post_json(
            l.addr,
            "/v1/post",
            KEY,
            &json!({"ping_id": id, "lead": lead, "consent": consent()}),
        ),
        422,
        "missing_field",
        Some("lead.email"),
    );
}

#[test]
fn oversized_and_deep_bodies_get_4xx_and_the_server_lives() {
    let (l, _a) = leadx();
    let big = vec![b'a'; 2 * 1024 * 1024];
    let auth = format!("Bearer {KEY}");
    let r = request_lenient(
        l.addr,
        "POST",
        "/v1/ping",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &big,
    );
    if let Some(r) = r {
        expect(&r, 413, "body_too_large", None);
    }
    let deep = format!(
        "{{\"vertical\":\"auto\",\"lead\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let r = request(
        l.addr,
        "POST",
        "/v1/ping",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        deep.as_bytes(),
    );
    assert!((400..500).contains(&r.status), "deep JSON: {}", r.status);
    let deeper = format!("{}{}", "[".repeat(60_000), "]".repeat(60_000));
    let r = request_lenient(
        l.addr,
        "POST",
        "/v1/ping",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        deeper.as_bytes(),
    );
    if let Some(r) = r {
        assert!((400..500).contains(&r.status));
    }
    assert_eq!(crate::support::ping(&l)["status"], "bid", "still serving");
    assert_eq!(
        request(l.addr, "GET", "/healthz", &[], b"").json()["status"],
        "ok"
    );
}

/// Like `request`, but a connection the server closed early (it may answer
/// 413 before reading a huge body and close) is fine: returns what came.
fn request_lenient(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    (!raw.is_empty()).then(|| parse_reply(&raw))
}

#[test]
fn malformed_http_is_answered_and_other_clients_are_served() {
    let (l, _a) = leadx();
    let mut s = TcpStream::connect(l.addr).unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let mut s = TcpStream::connect(l.addr).unwrap();
    s.write_all(b"POST /v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 400"));
    let mut s = TcpStream::connect(l.addr).unwrap();
    let mut head = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let _ = s.write_all(&head);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)])
    );
    assert_eq!(request(l.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn rate_limits_and_ip_allow_lists_are_enforced() {
    let a = mock(Act::Bid(10.0), Act::Accept("A"));
    let dir = tempfile::tempdir().unwrap();
    let text = base_toml(&dir.path().join("d"), "", "")
        .replace(
            "verticals = [\"auto\"]\n",
            "verticals = [\"auto\"]\nrate_limit_rps = 2\n",
        )
        .replace(
            "verticals = [\"auto\", \"home\"]\n",
            "verticals = [\"auto\", \"home\"]\nallowed_ips = [\"10.0.0.0/8\"]\n",
        )
        + &buyer_toml("a", &a, "");
    let config = leadx::config::parse(&text, &|_| None).unwrap();
    let running = leadx::daemon::start(config, None).unwrap();
    let addr = running.local_addr();
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            post_json(
                addr,
                "/v1/ping",
                KEY,
                &json!({"vertical": "auto", "lead": ping_lead()}),
            )
            .status
        })
        .collect();
    assert_eq!(&statuses[..2], &[200, 200]);
    let limited = post_json(
        addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    expect(&limited, 429, "rate_limited", None);
    assert!(limited.header("retry-after").is_some());
    expect(
        &post_json(
            addr,
            "/v1/ping",
            KEY2,
            &json!({"vertical": "auto", "lead": ping_lead()}),
        ),
        403,
        "forbidden",
        None,
    );
    running.shutdown().unwrap();
}

#[test]
fn a_bad_idempotency_key_is_a_bad_request_naming_the_header() {
    let (l, a) = leadx();
    let auth = format!("Bearer {KEY}");
    let body = json!({"vertical": "auto", "lead": full_lead("5552345678", "a@b.co"), "consent": consent()}).to_string();
    let long = "k".repeat(129);
    for bad in [long.as_str(), "has space"] {
        let r = request(
            l.addr,
            "POST",
            "/v1/leads",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", bad),
            ],
            body.as_bytes(),
        );
        expect(&r, 400, "bad_request", Some("Idempotency-Key"));
    }
    assert_eq!(a.buyer.pings(), 0, "refused before any buyer is called");
}
