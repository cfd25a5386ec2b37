//! The HTTP server against real sockets on 127.0.0.1:0, with a tiny echo
//! handler, so these tests depend on nothing but `leadx::http::server` (and
//! `api::error` for the error bodies the echo handler chooses).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use leadx::http::server::{self, Handler, Request, Response, ServerHandle, ServerOptions};

/// Answers "METHOD PATH QUERY BODYLEN"; `/sleep?ms=N` sleeps (coroutine-aware) first;
/// `/panic` panics.
struct Echo;

impl Handler for Echo {
    /// The contract's JSON errors, as leadx's API answers them, so these
    /// tests check the codes too.
    fn error_response(&self, e: &server::HttpError) -> Response {
        let e = leadx::api::error::ApiError::from(e);
        Response {
            status: e.status,
            content_type: "application/json",
            headers: vec![],
            body: e.body(),
        }
    }

    fn handle(&self, req: &mut Request<'_>) -> Response {
        if req.path == "/sleep" {
            let ms = req
                .query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            may::coroutine::sleep(Duration::from_millis(ms));
        }
        if req.path == "/panic" {
            panic!("test handler panics on purpose");
        }
        let text = format!(
            "{} {} {} {}",
            req.method,
            req.path,
            req.query,
            req.body.len()
        );
        let headers = vec![
            ("X-Echo", "1".into()),
            ("X-Received-Us", since_epoch_us(req.received_at).to_string()),
            ("X-Done-Us", since_epoch_us(Instant::now()).to_string()),
        ];
        Response {
            status: 200,
            content_type: "text/plain",
            headers,
            body: text.into_bytes(),
        }
    }
}

/// A process-wide origin for the times the echo handler reports.
fn since_epoch_us(t: Instant) -> u128 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    t.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_micros()
}

fn opts() -> ServerOptions {
    ServerOptions {
        body_bytes_max: 1000,
        header_bytes_max: 2048,
        headers_max: 16,
        ..ServerOptions::default()
    }
}

fn serve(opts: ServerOptions) -> ServerHandle {
    leadx::rt::configure(2);
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    server::start(listener, opts, Arc::new(Echo)).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    // A bound on every test read: a hang fails instead of stalling the suite.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn error_code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).expect("error body is JSON");
        v["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Reads one response (by Content-Length); None on EOF before any byte.
fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Resp> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = parsed.parse(pending) {
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let status = parsed.code.unwrap();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let len = if status == 100 { 0 } else { len };
            if pending.len() >= head + len {
                let body = pending[head..head + len].to_vec();
                pending.drain(..head + len);
                return Some(Resp {
                    status,
                    headers,
                    body,
                });
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn roundtrip(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_response(&mut s, &mut Vec::new()).expect("a response")
}

/// True when the server closed the connection (EOF or reset) within the read timeout.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true
            }
            Err(_) => return false,
        }
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn get_and_post_are_answered_with_length_and_type() {
    let h = serve(opts());
    let r = roundtrip(
        h.local_addr(),
        b"GET /v1/leads/9?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "GET /v1/leads/9 x=1 0")
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-echo"), Some("1"));
    let r = roundtrip(
        h.local_addr(),
        b"POST /v1/ping HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.text(), "POST /v1/ping  5");
    let mut s = connect(h.local_addr());
    s.write_all(b"HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(
        raw.contains("Content-Length: 10\r\n") && raw.ends_with("\r\n\r\n"),
        "HEAD: length but no body: {raw:?}"
    );
    assert!(h.stats().requests_total.load(Ordering::Relaxed) >= 3);
}

#[test]
fn pipelined_requests_are_answered_in_order_and_keep_alive_is_default() {
    let h = serve(opts());
    let mut s = connect(h.local_addr());
    s.write_all(b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    let texts: Vec<String> = (0..3)
        .map(|_| read_response(&mut s, &mut pending).unwrap().text())
        .collect();
    assert_eq!(texts, ["GET /1  0", "POST /2  3", "GET /3  0"]);
    s.write_all(b"GET /4 HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut pending).unwrap();
    assert_eq!(
        (r.text().as_str(), r.header("connection")),
        ("GET /4  0", Some("close"))
    );
    assert!(closed(&mut s));
}

/// Issue #7 point 8: a pipelined request is received when the one before
/// it is answered, not when the bytes of both were read, or a ping queued
/// behind a slow one would start with its deadline spent.
#[test]
fn each_pipelined_request_gets_its_own_received_time() {
    since_epoch_us(Instant::now());
    let h = serve(opts());
    let mut s = connect(h.local_addr());
    s.write_all(b"GET /sleep?ms=150 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let first = read_response(&mut s, &mut pending).unwrap();
    let second = read_response(&mut s, &mut pending).unwrap();
    let us = |r: &Resp, h: &str| -> u128 { r.header(h).unwrap().parse().unwrap() };
    assert!(
        us(&second, "x-received-us") >= us(&first, "x-done-us"),
        "second received at {} µs, before the first was done at {} µs",
        us(&second, "x-received-us"),
        us(&first, "x-done-us")
    );
}

#[test]
fn http10_closes_unless_keep_alive() {
    let h = serve(opts());
    let mut s = connect(h.local_addr());
    s.write_all(b"GET /a HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new()).unwrap().status, 200);
    assert!(closed(&mut s));
    let mut s = connect(h.local_addr());
    let mut pending = Vec::new();
    s.write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut pending).unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    s.write_all(b"GET /b HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut s, &mut pending).unwrap().text(),
        "GET /b  0"
    );
    assert!(closed(&mut s));
}

/// Sends `raw`, expects one error answer with `status`/`code`, then a close.
fn refused_with(h: &ServerHandle, raw: &[u8], status: u16, code: &str) {
    let mut s = connect(h.local_addr());
    s.write_all(raw).unwrap();
    let mut pending = Vec::new();
    let r = read_response(&mut s, &mut pending).expect("an error answer");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (status, code),
        "for {:?}",
        String::from_utf8_lossy(raw)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        read_response(&mut s, &mut pending).is_none(),
        "nothing after the error answer"
    );
}

#[test]
fn malformed_requests_get_400_then_close() {
    let h = serve(opts());
    refused_with(&h, b"GARBAGE\x01\r\n\r\n", 400, "bad_request");
    refused_with(
        &h,
        b"GET / HTTP/1.1\r\nContent-Length: nine\r\n\r\n",
        400,
        "bad_request",
    );
    refused_with(
        &h,
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
        "bad_request",
    );
    refused_with(
        &h,
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "bad_request",
    );
    refused_with(
        &h,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        "bad_request",
    );
    assert!(h.stats().protocol_errors_total.load(Ordering::Relaxed) >= 5);
}

#[test]
fn oversized_body_is_413_and_its_rest_is_never_a_request() {
    let h = serve(opts());
    let mut raw = b"POST /p HTTP/1.1\r\nContent-Length: 1500\r\n\r\n".to_vec();
    let smuggled = b"GET /smuggled HTTP/1.1\r\n\r\n";
    while raw.len() < 1400 {
        raw.extend_from_slice(smuggled);
    }
    refused_with(&h, &raw, 413, "body_too_large");
    let chunked = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n";
    refused_with(&h, chunked, 413, "body_too_large");
    assert_eq!(
        h.stats().requests_total.load(Ordering::Relaxed),
        0,
        "the handler never ran"
    );
}

#[test]
fn oversized_head_or_too_many_headers_is_431() {
    let h = serve(opts());
    let mut long = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    long.resize(3000, b'a');
    refused_with(&h, &long, 431, "headers_too_large");
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..20 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    refused_with(&h, &many, 431, "headers_too_large");
}

#[test]
fn chunked_body_is_decoded_for_the_handler() {
    let h = serve(opts());
    let r = roundtrip(h.local_addr(), b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n");
    assert_eq!(r.text(), "POST /c  8");
}

#[test]
fn expect_100_continue_is_honoured() {
    let h = serve(opts());
    let mut s = connect(h.local_addr());
    s.write_all(b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let interim = read_response(&mut s, &mut pending).unwrap();
    assert_eq!(interim.status, 100, "100 Continue before the body is sent");
    s.write_all(b"body").unwrap();
    assert_eq!(
        read_response(&mut s, &mut pending).unwrap().text(),
        "POST /e  4"
    );
    // Over the limit: 413 at once, without the body ever being sent.
    refused_with(
        &h,
        b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
        413,
        "body_too_large",
    );
}

#[test]
fn garbage_and_fragmented_writes_never_break_the_server() {
    let h = serve(opts());
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..40 {
        let mut s = connect(h.local_addr());
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut garbage = Vec::new();
        for _ in 0..(64 + round * 16) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            garbage.push((x >> 24) as u8);
        }
        let _ = s.write_all(&garbage);
        let _ = closed(&mut s);
    }
    // A valid request one byte per write is still assembled and answered.
    let mut s = connect(h.local_addr());
    s.set_nodelay(true).unwrap();
    for b in b"POST /frag?q=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok" {
        s.write_all(&[*b]).unwrap();
    }
    assert_eq!(
        read_response(&mut s, &mut Vec::new()).unwrap().text(),
        "POST /frag q=1 2"
    );
}

#[test]
fn handler_panic_is_500_and_the_server_lives_on() {
    let h = serve(opts());
    let r = roundtrip(h.local_addr(), b"GET /panic HTTP/1.1\r\n\r\n");
    assert_eq!((r.status, r.error_code().as_str()), (500, "internal"));
    assert_eq!(
        roundtrip(h.local_addr(), b"GET /ok HTTP/1.1\r\n\r\n").status,
        200
    );
    assert_eq!(h.in_flight(), 0);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let h = serve(ServerOptions {
        idle_timeout_ms: 200,
        ..opts()
    });
    let mut s = connect(h.local_addr());
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, &mut Vec::new()).unwrap().status, 200);
    assert!(
        closed(&mut s),
        "closed by the idle time-out, well before the 10 s read bound"
    );
    wait_until("the connection to be counted closed", || {
        h.stats().connections_open.load(Ordering::Relaxed) == 0
    });
}

#[test]
fn slowloris_is_dropped_while_others_are_served() {
    let h = serve(ServerOptions {
        request_timeout_ms: 300,
        ..opts()
    });
    let addr = h.local_addr();
    let slow = thread::spawn(move || {
        let mut s = connect(addr);
        let started = Instant::now();
        for b in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
        {
            if s.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            thread::sleep(Duration::from_millis(200));
        }
        started.elapsed()
    });
    for i in 0..5 {
        let r = roundtrip(addr, format!("GET /other/{i} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200);
        thread::sleep(Duration::from_millis(100));
    }
    let held = slow.join().unwrap();
    assert!(
        held < Duration::from_secs(5),
        "slow client dropped near the 300 ms request time-out, held {held:?}"
    );
    assert!(h.stats().timeouts_total.load(Ordering::Relaxed) >= 1);
}

#[test]
fn slow_handler_does_not_hold_up_other_connections() {
    let h = serve(opts());
    let addr = h.local_addr();
    let slow =
        thread::spawn(move || roundtrip(addr, b"GET /sleep?ms=1500 HTTP/1.1\r\n\r\n").text());
    wait_until("the slow call to start", || h.in_flight() == 1);
    let fast: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                (0..5)
                    .map(|j| {
                        roundtrip(addr, format!("GET /f{i}/{j} HTTP/1.1\r\n\r\n").as_bytes()).status
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in fast {
        assert!(t.join().unwrap().iter().all(|&s| s == 200));
    }
    assert_eq!(
        h.in_flight(),
        1,
        "40 fast requests finished while the slow call was still running"
    );
    assert_eq!(slow.join().unwrap(), "GET /sleep ms=1500 0");
}

#[test]
fn connections_over_the_maximum_are_refused() {
    let h = serve(ServerOptions {
        connections_max: 2,
        ..opts()
    });
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut s = connect(h.local_addr());
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, &mut Vec::new()).unwrap().status, 200);
        kept.push(s);
    }
    let mut third = connect(h.local_addr());
    let r = read_response(&mut third, &mut Vec::new());
    assert_eq!(r.map(|r| r.status), Some(503));
    assert!(closed(&mut third));
    assert_eq!(
        h.stats().connections_rejected_total.load(Ordering::Relaxed),
        1
    );
    drop(kept);
    wait_until("slots to free up", || {
        h.stats().connections_open.load(Ordering::Relaxed) == 0
    });
    assert_eq!(
        roundtrip(h.local_addr(), b"GET / HTTP/1.1\r\n\r\n").status,
        200
    );
}

#[test]
fn bind_on_a_port_in_use_is_addr_in_use() {
    let first = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let second = server::bind(first.local_addr().unwrap());
    assert_eq!(second.unwrap_err().kind(), ErrorKind::AddrInUse);
}

#[test]
fn drain_refuses_new_connections_closes_idle_ones_and_finishes_in_flight() {
    let h = serve(opts());
    let addr = h.local_addr();
    let mut idle = connect(addr);
    idle.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut idle, &mut Vec::new()).unwrap().status,
        200
    );
    let busy = thread::spawn(move || roundtrip(addr, b"GET /sleep?ms=400 HTTP/1.1\r\n\r\n"));
    wait_until("the slow call to start", || h.in_flight() == 1);

    let began = Instant::now();
    h.begin_drain();
    assert_eq!(
        TcpStream::connect(addr).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    assert!(closed(&mut idle), "idle keep-alive connection closed");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "idle close was prompt: {:?}",
        began.elapsed()
    );

    let r = busy.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "GET /sleep ms=400 0"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(h.wait_idle(Duration::from_secs(5)));
}

#[test]
fn a_deep_pipeline_is_answered_completely_and_in_order() {
    let h = serve(opts());
    let mut s = connect(h.local_addr());
    let mut writer = s.try_clone().unwrap();
    let n = 3000;
    let sender = thread::spawn(move || {
        let mut all = Vec::new();
        for i in 0..n {
            all.extend_from_slice(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes());
        }
        writer.write_all(&all).unwrap();
    });
    let mut pending = Vec::new();
    for i in 0..n {
        let r = read_response(&mut s, &mut pending).expect("every pipelined request answered");
        assert_eq!(r.text(), format!("GET /{i}  0"));
    }
    sender.join().unwrap();
}

#[test]
fn a_body_that_stalls_gets_408_then_close() {
    let h = serve(ServerOptions {
        request_timeout_ms: 300,
        ..opts()
    });
    let mut s = connect(h.local_addr());
    s.write_all(b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut pending = Vec::new();
    let r = read_response(&mut s, &mut pending).expect("a 408 answer");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (408, "request_timeout")
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut s));
}

/// A client that sends and never reads fills the socket buffers with its
/// answers; the write deadline (`write_timeout_ms`, on an
/// `http::deadline::Watch`, not a may socket timeout) gives the answers up
/// and closes the connection, while a keep-alive connection that only
/// waits between requests is never cut by it.
#[test]
fn a_client_that_never_reads_is_closed_at_the_write_deadline() {
    let h = serve(ServerOptions {
        write_timeout_ms: 300,
        ..opts()
    });
    let addr = h.local_addr();
    let flooder = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let chunk = b"GET /x HTTP/1.1\r\n\r\n".repeat(1000);
        // Bounded: stops once the server stops reading (or closes).
        for _ in 0..2000 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        s
    });
    wait_until("the flooding connection to open", || {
        h.stats().connections_open.load(Ordering::Relaxed) == 1
    });
    // A patient client on another connection, idle longer than the write
    // deadline between its requests, keeps its connection.
    let mut patient = connect(addr);
    patient.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut patient, &mut Vec::new()).unwrap().status,
        200
    );
    thread::sleep(Duration::from_millis(600));
    patient.write_all(b"GET /b HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut patient, &mut Vec::new()).unwrap().status,
        200
    );
    drop(patient);
    let _unread = flooder.join().unwrap();
    wait_until(
        "the flooding connection to be closed by the write deadline",
        || h.stats().connections_open.load(Ordering::Relaxed) == 0,
    );
}
