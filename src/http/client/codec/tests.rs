//! Byte fixtures for the request writer and the response reader.

use std::io::{self, Read};

use super::*;

/// Hands out its bytes `step` at a time, the way a socket may.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Reads `bytes` whole and one byte at a time; both must agree, and
/// neither may grow the read buffer past its bound.
fn read(bytes: &[u8], max: usize) -> Result<Response, ReadError> {
    let (whole, cost) = read_costed(
        &mut Trickle {
            bytes,
            step: usize::MAX,
        },
        max,
    );
    let (bytewise, cost1) = read_costed(&mut Trickle { bytes, step: 1 }, max);
    assert_eq!(
        format!("{whole:?}"),
        format!("{bytewise:?}"),
        "result depends on read sizes"
    );
    for c in [cost, cost1] {
        assert!(
            c.buffer_peak_bytes <= limits::BUYER_READ_BUFFER_BYTES_MAX,
            "{c:?}"
        );
    }
    whole
}

fn read_costed<R: Read>(io: &mut R, max: usize) -> (Result<Response, ReadError>, ReadCost) {
    let mut cost = ReadCost::default();
    let r = read_response(io, max, &mut cost);
    (r, cost)
}

/// `prefix`, then `unit` over and over up to `total` bytes, then EOF: a
/// hostile peer that would go on for ever, cut off so that a reader
/// without bounds ends (with the wrong answer) instead of hanging the test.
struct Flood {
    prefix: Vec<u8>,
    unit: Vec<u8>,
    at: usize,
    total: usize,
}

impl Flood {
    fn new(prefix: &[u8], unit: &[u8]) -> Flood {
        Flood {
            prefix: prefix.to_vec(),
            unit: unit.to_vec(),
            at: 0,
            total: 8 << 20,
        }
    }

    fn byte(&self, i: usize) -> u8 {
        match i.checked_sub(self.prefix.len()) {
            None => self.prefix[i],
            Some(j) => self.unit[j % self.unit.len()],
        }
    }
}

impl Read for Flood {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.total - self.at);
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = self.byte(self.at + k);
        }
        self.at += n;
        Ok(n)
    }
}

/// Reads a flood with a 64 KiB body limit and checks the buffer bound.
fn flood(prefix: &[u8], unit: &[u8]) -> Result<Response, ReadError> {
    let mut f = Flood::new(prefix, unit);
    let (r, cost) = read_costed(&mut f, 64 * 1024);
    assert!(
        cost.buffer_peak_bytes <= limits::BUYER_READ_BUFFER_BYTES_MAX,
        "{cost:?}"
    );
    // It stopped early, not at the flood's end.
    assert!(f.at < 1 << 20, "read {} bytes", f.at);
    r
}

#[test]
fn request_has_the_head_leadx_promises() {
    let headers = vec![("X-Api-Key".to_string(), "k1".to_string())];
    let req = build(
        "POST",
        "b.example:9001",
        "/post?a=1",
        &headers,
        Some("application/json"),
        b"{}",
    );
    let text = String::from_utf8(req).unwrap();
    assert_eq!(
        text,
        "POST /post?a=1 HTTP/1.1\r\nHost: b.example:9001\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: keep-alive\r\nX-Api-Key: k1\r\n\r\n{}"
    );
}

#[test]
fn request_drops_headers_that_could_split_it() {
    let headers = vec![
        ("X-Ok".to_string(), "1".to_string()),
        ("X-Bad".to_string(), "1\r\nX-Injected: 1".to_string()),
        ("Bad Name".to_string(), "1".to_string()),
        ("content-length".to_string(), "99".to_string()),
        ("Host".to_string(), "evil".to_string()),
    ];
    let text = String::from_utf8(build(
        "POST",
        "h",
        "/",
        &headers,
        Some("text/plain\r\nX: y"),
        b"",
    ))
    .unwrap();
    assert!(text.contains("X-Ok: 1\r\n"));
    assert!(
        !text.contains("Injected") && !text.contains("Bad") && !text.contains("X: y"),
        "{text}"
    );
    assert!(!text.contains("99") && !text.contains("evil"), "{text}");
}

#[test]
fn content_length_body_and_keep_alive() {
    let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 64).unwrap();
    assert_eq!(
        r,
        Response {
            status: 200,
            body: b"hello".to_vec(),
            content_encoding: None,
            reusable: true
        }
    );
}

/// Buyer specs (contract §9): the encoding is handed to the caller, the
/// body left as sent; `identity` counts as none.
#[test]
fn content_encoding_is_reported_and_the_body_left_as_sent() {
    let r = read(
        b"HTTP/1.1 200 OK\r\nContent-Encoding:  GZip \r\nContent-Length: 3\r\n\r\n\x1f\x8b\x08",
        64,
    )
    .unwrap();
    assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(r.body, b"\x1f\x8b\x08");
    let r = read(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 0\r\n\r\n",
        64,
    )
    .unwrap();
    assert_eq!(r.content_encoding, None);
}

#[test]
fn get_and_put_requests_have_their_heads() {
    let headers = vec![("Accept".to_string(), "application/xml".to_string())];
    let get = build("GET", "h", "/p?zip=90210&a=%26", &headers, None, b"");
    assert_eq!(
        String::from_utf8(get).unwrap(),
        "GET /p?zip=90210&a=%26 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\
         Accept: application/xml\r\n\r\n"
    );
    let put = build(
        "PUT",
        "h",
        "/p",
        &[],
        Some("text/xml; charset=utf-8"),
        b"<a/>",
    );
    assert_eq!(
        String::from_utf8(put).unwrap(),
        "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Type: text/xml; charset=utf-8\r\n\
         Content-Length: 4\r\nConnection: keep-alive\r\n\r\n<a/>"
    );
    // Anything else is POST: the method never comes from outside.
    let odd = String::from_utf8(build("DELETE /x", "h", "/", &[], None, b"")).unwrap();
    assert!(odd.starts_with("POST / HTTP/1.1\r\n"), "{odd}");
}

#[test]
fn connection_close_and_http10_are_not_reused() {
    let r = read(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        64,
    )
    .unwrap();
    assert!(!r.reusable);
    let r = read(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 64).unwrap();
    assert!(!r.reusable);
    let r = read(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        64,
    )
    .unwrap();
    assert!(r.reusable);
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n";
    let r = read(raw, 64).unwrap();
    assert_eq!((r.body.as_slice(), r.reusable), (&b"hello world"[..], true));
}

#[test]
fn interim_1xx_responses_are_skipped() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx";
    let r = read(raw, 64).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (201, &b"x"[..]));
}

#[test]
fn body_until_close_is_read_and_not_reused() {
    let r = read(b"HTTP/1.1 200 OK\r\n\r\nall of it", 64).unwrap();
    assert_eq!((r.body.as_slice(), r.reusable), (&b"all of it"[..], false));
}

#[test]
fn no_body_statuses_ignore_length() {
    let r = read(b"HTTP/1.1 204 No Content\r\n\r\n", 64).unwrap();
    assert_eq!((r.status, r.body.len(), r.reusable), (204, 0, true));
}

#[test]
fn bodies_over_the_limit_are_too_large() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nhello world",
    ] {
        assert!(matches!(read(raw, 10), Err(ReadError::TooLarge)), "{}", String::from_utf8_lossy(raw));
    }
    // Exactly at the limit is fine.
    assert!(read(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        10
    )
    .is_ok());
}

#[test]
fn an_endless_head_is_too_large() {
    let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
    while raw.len() <= limits::BUYER_RESPONSE_HEAD_BYTES_MAX {
        raw.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert!(matches!(read(&raw, 64), Err(ReadError::TooLarge)));
}

#[test]
fn garbage_and_truncation_are_malformed() {
    for raw in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ] {
        assert!(
            matches!(read(raw, 64), Err(ReadError::Malformed)),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn a_close_before_any_byte_is_reported_apart() {
    assert!(matches!(read(b"", 64), Err(ReadError::ClosedEarly)));
}

#[test]
fn leftover_bytes_make_a_connection_unusable() {
    // Only what arrived with the response can be seen, so read it whole.
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
    let r = read_costed(
        &mut Trickle {
            bytes,
            step: usize::MAX,
        },
        64,
    )
    .0
    .unwrap();
    assert_eq!((r.body.as_slice(), r.reusable), (&b"ok"[..], false));
}

#[test]
fn length_with_chunked_uses_chunked_but_closes() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let r = read(raw, 64).unwrap();
    assert_eq!((r.body.as_slice(), r.reusable), (&b"ok"[..], false));
}

// Issue #7 point 5: a hostile buyer costs a bounded buffer and one failed
// call, whatever it sends.

#[test]
fn a_few_interim_responses_are_skipped_and_an_endless_run_is_malformed() {
    let interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
    let fin = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let raw = [
        interim.repeat(limits::BUYER_INTERIM_RESPONSES_MAX),
        fin.to_vec(),
    ]
    .concat();
    assert_eq!(read(&raw, 64).unwrap().body, b"ok");
    let raw = [
        interim.repeat(limits::BUYER_INTERIM_RESPONSES_MAX + 1),
        fin.to_vec(),
    ]
    .concat();
    assert!(matches!(read(&raw, 64), Err(ReadError::Malformed)));
    assert!(matches!(
        flood(b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
        Err(ReadError::Malformed)
    ));
}

#[test]
fn endless_trailers_are_too_large() {
    let prefix = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n";
    assert!(matches!(
        flood(prefix, b"X-Trailer: 1\r\n"),
        Err(ReadError::TooLarge)
    ));
}

#[test]
fn an_endless_chunk_extension_is_too_large() {
    let prefix = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=";
    assert!(matches!(
        flood(prefix, b"aaaaaaaa"),
        Err(ReadError::TooLarge)
    ));
    // A long but bounded extension is fine.
    let ext = "e".repeat(limits::BUYER_CHUNK_LINE_BYTES_MAX - 4);
    let raw =
        format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;{ext}\r\nok\r\n0\r\n\r\n");
    assert_eq!(read(raw.as_bytes(), 64).unwrap().body, b"ok");
}

#[test]
fn a_flood_of_tiny_chunks_is_too_large_before_the_body_limit() {
    let prefix = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(
        flood(prefix, b"1;padpadpadpadpad\r\nx\r\n"),
        Err(ReadError::TooLarge)
    ));
}

#[test]
fn big_bodies_pass_through_a_bounded_buffer() {
    let body = vec![b'x'; 64 * 1024];
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let r = read(&[head.as_bytes(), &body].concat(), body.len()).unwrap();
    assert_eq!(r.body.len(), body.len());
    let chunked = [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n"[..],
        &body,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    assert_eq!(read(&chunked, body.len()).unwrap().body.len(), body.len());
    let close = [&b"HTTP/1.1 200 OK\r\n\r\n"[..], &body].concat();
    assert_eq!(read(&close, body.len()).unwrap().body.len(), body.len());
    // Ten megabytes each way: refused at once or after the limit.
    assert!(matches!(
        flood(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n", b"x"),
        Err(ReadError::TooLarge)
    ));
    assert!(matches!(
        flood(b"HTTP/1.1 200 OK\r\n\r\n", b"x"),
        Err(ReadError::TooLarge)
    ));
    let chunks = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    // 4096 bytes of "1000\r\n" and a CRLF are exactly 683 units: valid chunks without end.
    assert!(matches!(
        flood(chunks, b"1000\r\n"),
        Err(ReadError::TooLarge)
    ));
}

#[test]
fn an_endless_head_is_too_large_with_a_bounded_buffer() {
    assert!(matches!(
        flood(b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n"),
        Err(ReadError::TooLarge)
    ));
}

#[test]
fn bare_lf_heads_and_blank_line_search_agree_with_httparse() {
    let r = read(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 64).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(blank_line_at(b"a\r\n\r\n", 0), Some(2));
    assert_eq!(blank_line_at(b"a\n\n", 0), Some(1));
    assert_eq!(blank_line_at(b"a\r\nb\r\n", 0), None);
    assert_eq!(blank_line_at(b"a\r\n\r\n", 3), None);
}
