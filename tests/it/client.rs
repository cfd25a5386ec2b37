//! The buyer client against real loopback servers. The mock buyers are plain
//! std threads; the client under test always runs inside leadx coroutines
//! (`leadx::rt::spawn`, 64 KiB stacks), as in production.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use leadx::http::client::{BuyerClient, CallError, ClientOptions, ClientResponse};
use leadx::http::url;

/// One request as the mock buyer saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// What the mock does after its handler ran.
#[derive(Clone, Copy, PartialEq)]
enum After {
    KeepOpen,
    Close,
    /// Never answer; wait for the client to hang up.
    Hang,
}

type Handler = dyn Fn(&Seen, &mut dyn Write) -> After + Send + Sync;

struct Mock {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// One message each time the mock closed a connection.
    closed: Mutex<mpsc::Receiver<()>>,
}

impl Mock {
    fn url(&self, scheme: &str) -> url::Url {
        url::parse(&format!("{scheme}://{}/post", self.addr)).unwrap()
    }
    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn wait_closed(&self) {
        self.closed
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(5))
            .expect("mock never closed");
    }
}

fn mock(handler: impl Fn(&Seen, &mut dyn Write) -> After + Send + Sync + 'static) -> Mock {
    mock_with(None, handler)
}

fn mock_with(
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: impl Fn(&Seen, &mut dyn Write) -> After + Send + Sync + 'static,
) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (closed_tx, closed_rx) = mpsc::channel();
    let handler: Arc<Handler> = Arc::new(handler);
    let (a, s) = (accepts.clone(), seen.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            // The handlers write a response in pieces; Nagle plus delayed ACK
            // would add 40 ms to each.
            tcp.set_nodelay(true).unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let (h, s, tx, tls) = (handler.clone(), s.clone(), closed_tx.clone(), tls.clone());
            let worker = std::thread::Builder::new().stack_size(256 * 1024);
            worker
                .spawn(move || {
                    match tls {
                        Some(cfg) => serve(
                            rustls::StreamOwned::new(
                                rustls::ServerConnection::new(cfg).unwrap(),
                                tcp,
                            ),
                            &*h,
                            &s,
                        ),
                        None => serve(tcp, &*h, &s),
                    }
                    let _ = tx.send(());
                })
                .unwrap();
        }
    });
    Mock {
        addr,
        accepts,
        seen,
        closed: Mutex::new(closed_rx),
    }
}

/// Serves requests on one connection until the client leaves or the handler
/// says otherwise; the stream is dropped (closed) on return.
fn serve<S: Read + Write>(stream: S, handler: &Handler, seen: &Mutex<Vec<Seen>>) {
    let mut rd = BufReader::new(stream);
    while let Some(req) = read_request(&mut rd) {
        seen.lock().unwrap().push(req.clone());
        match handler(&req, rd.get_mut()) {
            After::KeepOpen => {
                let _ = rd.get_mut().flush();
            }
            After::Close => return,
            After::Hang => {
                let _ = std::io::copy(&mut rd, &mut std::io::sink());
                return;
            }
        }
    }
}

fn read_request<R: BufRead>(rd: &mut R) -> Option<Seen> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if rd.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    rd.read_exact(&mut body).ok()?;
    Some(Seen { head, body })
}

fn ok_json(w: &mut dyn Write, body: &str) {
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(answer.as_bytes()).unwrap();
}

fn echo() -> Mock {
    mock(|req, w| {
        ok_json(w, std::str::from_utf8(&req.body).unwrap());
        After::KeepOpen
    })
}

fn client(m: &Mock, opts: ClientOptions) -> Arc<BuyerClient> {
    Arc::new(BuyerClient::new(&m.url("http"), opts).unwrap())
}

/// Runs `f` in a leadx coroutine and returns its result.
fn co<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    leadx::rt::spawn(f).join().expect("coroutine panicked")
}

fn post(c: &BuyerClient, body: &str, within: Duration) -> Result<ClientResponse, CallError> {
    c.post(
        "/post",
        &[],
        "application/json",
        body.as_bytes(),
        Instant::now() + within,
    )
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn sends_the_promised_head_and_returns_the_answer() {
    let m = echo();
    let c = client(&m, ClientOptions::default());
    let headers = vec![("X-Api-Key".to_string(), "k1".to_string())];
    let r = co(move || {
        c.post(
            "/post?x=1",
            &headers,
            "application/json",
            b"{\"a\":1}",
            Instant::now() + SECOND,
        )
    });
    assert_eq!(
        r.unwrap(),
        ClientResponse {
            status: 200,
            body: b"{\"a\":1}".to_vec(),
            content_encoding: None,
        }
    );
    let seen = m.seen.lock().unwrap()[0].clone();
    let want = format!(
        "POST /post?x=1 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\
         Connection: keep-alive\r\nX-Api-Key: k1\r\n\r\n",
        m.addr
    );
    assert_eq!(seen.head, want);
}

#[test]
fn keep_alive_serves_100_calls_on_one_connection() {
    let m = echo();
    let c = client(&m, ClientOptions::default());
    let c2 = c.clone();
    let bodies = co(move || {
        (0..100)
            .map(|i| post(&c2, &i.to_string(), SECOND).unwrap().body)
            .collect::<Vec<_>>()
    });
    assert!(bodies
        .iter()
        .enumerate()
        .all(|(i, b)| b == i.to_string().as_bytes()));
    assert_eq!((m.accepts(), m.requests()), (1, 100));
    let s = c.stats();
    assert_eq!(
        (
            s.created.load(Ordering::SeqCst),
            s.reused.load(Ordering::SeqCst)
        ),
        (1, 99)
    );
}

#[test]
fn connection_close_is_honoured() {
    let m = mock(|_, w| {
        w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        After::KeepOpen
    });
    let c = client(&m, ClientOptions::default());
    let c2 = c.clone();
    co(move || (0..3).for_each(|_| assert_eq!(post(&c2, "", SECOND).unwrap().body, b"ok")));
    assert_eq!(m.accepts(), 3);
    assert_eq!(c.stats().closed.load(Ordering::SeqCst), 3);
}

#[test]
fn a_connection_the_buyer_closed_is_replaced_and_nothing_is_sent_twice() {
    // Advertises keep-alive, then hangs up: the pooled connection is stale.
    let m = mock(|_, w| {
        ok_json(w, "{}");
        After::Close
    });
    let c = client(&m, ClientOptions::default());
    let c2 = c.clone();
    co(move || post(&c2, "1", SECOND)).unwrap();
    m.wait_closed();
    let c2 = c.clone();
    co(move || post(&c2, "2", SECOND)).unwrap();
    assert_eq!((m.accepts(), m.requests()), (2, 2));
    let bodies: Vec<_> = m
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.body.clone())
        .collect();
    assert_eq!(bodies, vec![b"1".to_vec(), b"2".to_vec()]);
    assert_eq!(c.stats().reused.load(Ordering::SeqCst), 0);
}

#[test]
fn chunked_answers_after_1xx_keep_the_connection() {
    let m = mock(|_, w| {
        w.write_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
        w.write_all(b"3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n")
            .unwrap();
        After::KeepOpen
    });
    let c = client(&m, ClientOptions::default());
    let c2 = c.clone();
    let bodies = co(move || [post(&c2, "", SECOND), post(&c2, "", SECOND)]);
    for b in bodies {
        assert_eq!(b.unwrap().body, b"{\"a\":1}");
    }
    assert_eq!(m.accepts(), 1);
}

#[test]
fn an_oversized_answer_is_too_large_and_its_connection_dropped() {
    let m = mock(|_, w| {
        ok_json(w, &"x".repeat(2000));
        After::KeepOpen
    });
    let c = client(
        &m,
        ClientOptions {
            response_bytes_max: 1000,
            ..ClientOptions::default()
        },
    );
    let c2 = c.clone();
    let r = co(move || [post(&c2, "", SECOND), post(&c2, "", SECOND)]);
    assert_eq!(r, [Err(CallError::TooLarge), Err(CallError::TooLarge)]);
    assert_eq!(m.accepts(), 2);
    assert_eq!(c.stats().closed.load(Ordering::SeqCst), 2);
}

#[test]
fn a_buyer_that_never_answers_times_out_at_the_deadline() {
    let m = mock(|_, _| After::Hang);
    let c = client(&m, ClientOptions::default());
    let c2 = c.clone();
    let (r, took) = co(move || {
        let start = Instant::now();
        let r = post(&c2, "{}", Duration::from_millis(100));
        (r, start.elapsed())
    });
    assert_eq!(r, Err(CallError::Timeout));
    assert!(
        took >= Duration::from_millis(100),
        "returned early: {took:?}"
    );
    assert!(took < SECOND, "returned late: {took:?}");
    // The timed-out connection was closed, not pooled: the mock sees EOF.
    m.wait_closed();
    assert_eq!(c.stats().closed.load(Ordering::SeqCst), 1);
}

#[test]
fn a_closed_port_is_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = BuyerClient::new(
        &url::parse(&format!("http://{addr}/")).unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    let r = co(move || post(&c, "", SECOND));
    assert_eq!(r, Err(CallError::Connect));
}

#[test]
fn garbage_is_malformed_and_a_hang_up_is_io() {
    let garbage = mock(|_, w| {
        w.write_all(b"garbage\r\n\r\n").unwrap();
        After::KeepOpen
    });
    let hangup = mock(|_, _| After::Close);
    let (g, h) = (
        client(&garbage, ClientOptions::default()),
        client(&hangup, ClientOptions::default()),
    );
    let r = co(move || [post(&g, "", SECOND), post(&h, "", SECOND)]);
    assert_eq!(r, [Err(CallError::Malformed), Err(CallError::Io)]);
}

#[test]
fn all_connections_busy_until_the_deadline_is_pool_exhausted() {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let m = mock(move |_, w| {
        started_tx.lock().unwrap().send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300)); // a slow buyer
        ok_json(w, "{}");
        After::KeepOpen
    });
    let c = client(
        &m,
        ClientOptions {
            connections_max: 1,
            ..ClientOptions::default()
        },
    );
    let c2 = c.clone();
    let slow = leadx::rt::spawn(move || post(&c2, "", SECOND));
    started_rx.recv_timeout(5 * SECOND).unwrap();
    let c2 = c.clone();
    let (r, took) = co(move || {
        let start = Instant::now();
        (post(&c2, "", Duration::from_millis(50)), start.elapsed())
    });
    assert_eq!(r, Err(CallError::PoolExhausted));
    assert!(
        took >= Duration::from_millis(50) && took < SECOND,
        "{took:?}"
    );
    assert!(slow.join().unwrap().is_ok());
    assert_eq!(
        (c.stats().waited.load(Ordering::SeqCst), m.accepts()),
        (1, 1)
    );
}

/// `calls` posts at once from as many coroutines, against a buyer that takes
/// `delay` per answer; every answer must match its request.
fn concurrent(calls: usize, delay: Duration, opts: ClientOptions) -> (Mock, Arc<BuyerClient>) {
    let m = mock(move |req, w| {
        std::thread::sleep(delay);
        ok_json(w, std::str::from_utf8(&req.body).unwrap());
        After::KeepOpen
    });
    let c = client(&m, opts);
    let handles: Vec<_> = (0..calls)
        .map(|i| {
            let c = c.clone();
            leadx::rt::spawn(move || (i, post(&c, &i.to_string(), 20 * SECOND)))
        })
        .collect();
    for h in handles {
        let (i, r) = h.join().unwrap();
        assert_eq!(r.unwrap().body, i.to_string().as_bytes());
    }
    assert_eq!(m.requests(), calls);
    (m, c)
}

#[test]
fn five_hundred_concurrent_calls_complete() {
    let start = Instant::now();
    let (m, _) = concurrent(
        500,
        Duration::from_millis(50),
        ClientOptions {
            connections_max: 512,
            ..ClientOptions::default()
        },
    );
    // In parallel, not one after another (that would take 25 s).
    assert!(start.elapsed() < 10 * SECOND, "{:?}", start.elapsed());
    assert!(m.accepts() <= 500);
}

#[test]
fn four_connections_serve_many_calls_by_waiting() {
    let (m, c) = concurrent(
        200,
        Duration::from_millis(5),
        ClientOptions {
            connections_max: 4,
            ..ClientOptions::default()
        },
    );
    assert!(m.accepts() <= 4, "opened {}", m.accepts());
    assert!(c.stats().waited.load(Ordering::SeqCst) > 0);
}

/// A rustls server config for a fresh self-signed certificate for
/// 127.0.0.1, and that certificate in PEM for the client to trust.
fn self_signed() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key.into())
        .unwrap();
    (Arc::new(cfg), ck.cert.pem().into_bytes())
}

fn tls_echo() -> (Mock, Vec<u8>) {
    let (cfg, pem) = self_signed();
    let m = mock_with(Some(cfg), |req, w| {
        ok_json(w, std::str::from_utf8(&req.body).unwrap());
        After::KeepOpen
    });
    (m, pem)
}

#[test]
fn https_round_trips_and_keeps_alive_on_a_coroutine_stack() {
    let (m, pem) = tls_echo();
    let opts = ClientOptions {
        extra_root_pem: Some(pem),
        ..ClientOptions::default()
    };
    let c = Arc::new(BuyerClient::new(&m.url("https"), opts).unwrap());
    let c2 = c.clone();
    // The handshake runs inside a 64 KiB leadx coroutine: an overflow would
    // abort the test binary here.
    let r = co(move || [post(&c2, "a", SECOND), post(&c2, "b", SECOND)]);
    let bodies: Vec<_> = r.into_iter().map(|r| r.unwrap().body).collect();
    assert_eq!(bodies, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(m.accepts(), 1);
}

#[test]
fn https_with_an_untrusted_certificate_is_a_tls_error() {
    let (m, _) = tls_echo();
    let (_, other_ca) = self_signed();
    let untrusted = Arc::new(BuyerClient::new(&m.url("https"), ClientOptions::default()).unwrap());
    let opts = ClientOptions {
        extra_root_pem: Some(other_ca),
        ..ClientOptions::default()
    };
    let wrong_ca = Arc::new(BuyerClient::new(&m.url("https"), opts).unwrap());
    let r = co(move || [post(&untrusted, "", SECOND), post(&wrong_ca, "", SECOND)]);
    assert_eq!(r, [Err(CallError::Tls), Err(CallError::Tls)]);
    assert_eq!(m.requests(), 0);
}

#[test]
fn a_bad_extra_root_is_refused_at_setup() {
    let m = echo();
    let opts = ClientOptions {
        extra_root_pem: Some(b"not a pem".to_vec()),
        ..ClientOptions::default()
    };
    assert_eq!(
        BuyerClient::new(&m.url("https"), opts).err(),
        Some(CallError::Tls)
    );
}

#[test]
fn a_pooled_tls_connection_with_leftover_decrypted_bytes_is_stale() {
    // The answer is exactly the client's first read (512 bytes) and an
    // unasked-for second answer follows in the same TLS record: rustls
    // decrypts both, the reader takes only the first, and the socket is
    // empty. Reused, the connection would hand "EVIL" to the next call as
    // its answer (issue #7 point 5).
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 000\r\n\r\n";
    let body = "b".repeat(512 - head.len());
    let first = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {:03}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(first.len(), 512);
    let (cfg, pem) = self_signed();
    let m = mock_with(Some(cfg), move |_, w| {
        w.write_all(format!("{first}HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL").as_bytes())
            .unwrap();
        After::KeepOpen
    });
    let opts = ClientOptions {
        extra_root_pem: Some(pem),
        ..ClientOptions::default()
    };
    let c = Arc::new(BuyerClient::new(&m.url("https"), opts).unwrap());
    let c2 = c.clone();
    let r = co(move || [post(&c2, "a", SECOND), post(&c2, "b", SECOND)]);
    for r in r {
        assert_eq!(String::from_utf8(r.unwrap().body).unwrap(), body);
    }
    assert_eq!(
        (m.accepts(), c.stats().reused.load(Ordering::SeqCst)),
        (2, 0)
    );
}

/// Buyer specs (contract §9): GET with the lead in the query string and no
/// body framing, PUT with its content type, per-request headers, and a
/// gzip answer handed back with its encoding, on a real socket.
#[test]
fn get_and_put_calls_and_a_gzip_answer_round_trip() {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"<r><price>12.50</price></r>").unwrap();
    let zipped = gz.finish().unwrap();
    let answer = zipped.clone();
    let m = mock(move |_, w| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(&answer).unwrap();
        After::KeepOpen
    });
    let c = client(&m, ClientOptions::default());
    let headers = vec![("X-Key".to_string(), "k".to_string())];
    let (get, put) = co(move || {
        let get = c.call(
            "GET",
            "/ping?zip=90210&name=A%26B",
            &headers,
            None,
            b"",
            Instant::now() + SECOND,
        );
        let put = c.call(
            "PUT",
            "/post",
            &[],
            Some("application/xml"),
            b"<a/>",
            Instant::now() + SECOND,
        );
        (get.unwrap(), put.unwrap())
    });
    assert_eq!(get.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(get.body, zipped);
    assert_eq!(put.status, 200);
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].head,
        format!(
            "GET /ping?zip=90210&name=A%26B HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\nX-Key: k\r\n\r\n",
            m.addr
        )
    );
    assert!(
        seen[1].head.starts_with("PUT /post HTTP/1.1\r\n"),
        "{}",
        seen[1].head
    );
    assert!(seen[1]
        .head
        .contains("Content-Type: application/xml\r\nContent-Length: 4\r\n"));
    assert_eq!(seen[1].body, b"<a/>");
    // Both calls on one keep-alive connection: the GET's framing was right.
    assert_eq!(m.accepts(), 1);
}
