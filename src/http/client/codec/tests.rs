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

/// Reads `bytes` whole and one byte at a time; both must agree.
fn read(bytes: &[u8], max: usize) -> Result<Response, ReadError> {
    let whole = read_response(&mut Trickle { bytes, step: usize::MAX }, max);
    let bytewise = read_response(&mut Trickle { bytes, step: 1 }, max);
    assert_eq!(format!("{whole:?}"), format!("{bytewise:?}"), "result depends on read sizes");
    whole
}

#[test]
fn request_has_the_head_leadx_promises() {
    let headers = vec![("X-Api-Key".to_string(), "k1".to_string())];
    let req = build_request("b.example:9001", "/post?a=1", &headers, "application/json", b"{}");
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
    let text = String::from_utf8(build_request("h", "/", &headers, "text/plain\r\nX: y", b"")).unwrap();
    assert!(text.contains("X-Ok: 1\r\n"));
    assert!(!text.contains("Injected") && !text.contains("Bad") && !text.contains("X: y"), "{text}");
    assert!(!text.contains("99") && !text.contains("evil"), "{text}");
}

#[test]
fn content_length_body_and_keep_alive() {
    let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 64).unwrap();
    assert_eq!(r, Response { status: 200, body: b"hello".to_vec(), reusable: true });
}

#[test]
fn connection_close_and_http10_are_not_reused() {
    let r = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 64).unwrap();
    assert!(!r.reusable);
    let r = read(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 64).unwrap();
    assert!(!r.reusable);
    let r = read(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 64).unwrap();
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
    assert!(read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 10).is_ok());
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
        assert!(matches!(read(raw, 64), Err(ReadError::Malformed)), "{}", String::from_utf8_lossy(raw));
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
    let r = read_response(&mut Trickle { bytes, step: usize::MAX }, 64).unwrap();
    assert_eq!((r.body.as_slice(), r.reusable), (&b"ok"[..], false));
}

#[test]
fn length_with_chunked_uses_chunked_but_closes() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let r = read(raw, 64).unwrap();
    assert_eq!((r.body.as_slice(), r.reusable), (&b"ok"[..], false));
}
