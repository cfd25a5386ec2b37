//! Hostile buyers against the real client on loopback (issue #7 point 5):
//! each must cost one failed call with the right reason, a read buffer
//! under `limits::BUYER_READ_BUFFER_BYTES_MAX` (the client's own peak
//! counter, not RSS), and a connection that is closed, never pooled.
//!
//! Each mock reads the request head, then plays its hostile part on a std
//! thread; every endless stream stops after `FLOOD_BYTES_MAX` or
//! `FLOOD_FOR`, whichever comes first, so a broken client fails a test
//! instead of hanging it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadx::http::client::{BuyerClient, CallError, ClientOptions, ClientResponse};
use leadx::limits;

const FLOOD_BYTES_MAX: usize = 64 << 20;
const FLOOD_FOR: Duration = Duration::from_secs(5);
/// Each call's deadline: long enough for loopback, short for the suite.
const DEADLINE: Duration = Duration::from_millis(400);

struct Hostile {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

/// A buyer that reads each request's head and then runs `act` on the
/// connection; the connection closes when `act` returns.
fn hostile(act: impl Fn(&mut TcpStream) + Send + Sync + 'static) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let (a, act) = (accepts.clone(), Arc::new(act));
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            a.fetch_add(1, Ordering::SeqCst);
            let act = act.clone();
            std::thread::spawn(move || {
                tcp.set_nodelay(true).unwrap();
                tcp.set_write_timeout(Some(FLOOD_FOR)).unwrap();
                if read_head(&mut tcp) {
                    act(&mut tcp);
                }
            });
        }
    });
    Hostile { addr, accepts }
}

/// Reads until the end of a request head (the client's small body comes
/// in the same write and is left unread).
fn read_head(tcp: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tcp.set_read_timeout(Some(FLOOD_FOR)).unwrap();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Writes `head`, then `unit` over and over until the client hangs up or
/// the flood bounds are reached.
fn flood(tcp: &mut TcpStream, head: &[u8], unit: &[u8]) {
    let start = Instant::now();
    let unit = unit.repeat((8192 / unit.len()).max(1));
    let mut sent = 0;
    if tcp.write_all(head).is_err() {
        return;
    }
    while sent < FLOOD_BYTES_MAX && start.elapsed() < FLOOD_FOR {
        if tcp.write_all(&unit).is_err() {
            return;
        }
        sent += unit.len();
    }
}

/// Two calls, one after the other, each in a leadx coroutine; returns both
/// results and the client (for its counters).
fn two_calls(h: &Hostile) -> (Vec<Result<ClientResponse, CallError>>, Arc<BuyerClient>) {
    let url = leadx::http::url::parse(&format!("http://{}/ping", h.addr)).unwrap();
    let c = Arc::new(BuyerClient::new(&url, ClientOptions::default()).unwrap());
    let c2 = c.clone();
    let results = leadx::rt::spawn(move || {
        (0..2)
            .map(|_| {
                c2.post(
                    "/ping",
                    &[],
                    "application/json",
                    b"{}",
                    Instant::now() + DEADLINE,
                )
            })
            .collect()
    })
    .join()
    .expect("coroutine panicked");
    (results, c)
}

/// The promise of point 5: each call failed with `want`, the read buffer
/// stayed bounded, and no connection was reused.
fn assert_contained(h: &Hostile, want: CallError) {
    let start = Instant::now();
    let (results, c) = two_calls(h);
    assert_eq!(results, vec![Err(want.clone()), Err(want)]);
    let s = c.stats();
    let peak = s.read_buffer_peak_bytes.load(Ordering::SeqCst) as usize;
    assert!(
        peak > 0 && peak <= limits::BUYER_READ_BUFFER_BYTES_MAX,
        "read buffer peaked at {peak} bytes"
    );
    assert_eq!(
        s.reused.load(Ordering::SeqCst),
        0,
        "a failed connection was reused"
    );
    assert_eq!(
        (
            s.created.load(Ordering::SeqCst),
            s.closed.load(Ordering::SeqCst)
        ),
        (2, 2)
    );
    assert_eq!(h.accepts.load(Ordering::SeqCst), 2);
    // Neither call outlived its deadline by much (not a speed assertion: a
    // call that ignored its deadline would take the flood's 5 s).
    assert!(
        start.elapsed() < 2 * DEADLINE + FLOOD_FOR / 2,
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn ten_megabytes_with_a_content_length_is_too_large_at_once() {
    let h = hostile(|tcp| {
        flood(
            tcp,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n",
            b"x",
        )
    });
    assert_contained(&h, CallError::TooLarge);
}

#[test]
fn ten_megabytes_chunked_is_too_large() {
    let h = hostile(|tcp| {
        flood(
            tcp,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"1000\r\n",
        )
    });
    // The chunk sizes add up past the body limit long before 10 MB.
    assert_contained(&h, CallError::TooLarge);
    let h = hostile(|tcp| {
        let chunk = [&b"400\r\n"[..], &[b'x'; 0x400], b"\r\n"].concat();
        flood(
            tcp,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunk,
        );
    });
    assert_contained(&h, CallError::TooLarge);
}

#[test]
fn ten_megabytes_until_close_is_too_large() {
    let h = hostile(|tcp| flood(tcp, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"y"));
    assert_contained(&h, CallError::TooLarge);
}

#[test]
fn a_head_that_never_ends_is_too_large() {
    let h = hostile(|tcp| flood(tcp, b"HTTP/1.1 200 OK\r\n", b"X-Never: ending\r\n"));
    assert_contained(&h, CallError::TooLarge);
}

#[test]
fn a_head_that_stops_half_way_times_out() {
    let h = hostile(|tcp| {
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
        // Hold the connection open until the client leaves.
        let _ = tcp.read(&mut [0u8; 64]);
    });
    assert_contained(&h, CallError::Timeout);
}

#[test]
fn endless_interim_responses_are_malformed() {
    let h = hostile(|tcp| flood(tcp, b"", b"HTTP/1.1 100 Continue\r\n\r\n"));
    assert_contained(&h, CallError::Malformed);
}

#[test]
fn endless_trailers_are_too_large() {
    let h = hostile(|tcp| {
        flood(
            tcp,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n",
            b"X-T: 1\r\n",
        )
    });
    assert_contained(&h, CallError::TooLarge);
}

#[test]
fn an_endless_chunk_extension_is_too_large() {
    let h = hostile(|tcp| {
        flood(
            tcp,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=",
            b"e",
        )
    });
    assert_contained(&h, CallError::TooLarge);
}

#[test]
fn a_reset_mid_body_is_an_io_error() {
    let h = hostile(|tcp| {
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"status\":");
        std::thread::sleep(Duration::from_millis(20));
        // SO_LINGER 0: the close sends RST instead of FIN.
        socket2::SockRef::from(&*tcp)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    assert_contained(&h, CallError::Io);
}

#[test]
fn a_buyer_trickling_a_byte_every_few_ms_times_out_at_the_deadline() {
    let h = hostile(|tcp| {
        let body = "x".repeat(4000);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for b in answer.bytes() {
            if tcp.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    let start = Instant::now();
    assert_contained(&h, CallError::Timeout);
    assert!(
        start.elapsed() >= 2 * DEADLINE,
        "a call ended before its deadline: {:?}",
        start.elapsed()
    );
}
