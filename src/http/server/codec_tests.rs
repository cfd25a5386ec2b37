//! Unit tests of the pure framing rules in `codec`.

use super::*;

const LIM: Limits = Limits {
    body_bytes_max: 100,
    header_bytes_max: 256,
    headers_max: 8,
};

/// What a decode produced, owned, so tests can compare it.
#[derive(Debug, PartialEq)]
enum Out {
    Partial(Pending),
    Req {
        method: String,
        path: String,
        query: String,
        body: Vec<u8>,
        len: usize,
        keep_alive: bool,
    },
}

fn run(input: &[u8]) -> Result<Out, HttpError> {
    let mut buf = input.to_vec();
    let mut hdrs = [httparse::EMPTY_HEADER; 8];
    Ok(match decode(&mut buf, &LIM, &mut hdrs)? {
        Decoded::Partial(p) => Out::Partial(p),
        Decoded::Complete(r) => Out::Req {
            method: r.method.into(),
            path: r.path.into(),
            query: r.query.into(),
            body: r.body.to_vec(),
            len: r.len,
            keep_alive: r.keep_alive,
        },
    })
}

fn req(input: &[u8]) -> (String, String, String, Vec<u8>, usize, bool) {
    match run(input) {
        Ok(Out::Req {
            method,
            path,
            query,
            body,
            len,
            keep_alive,
        }) => (method, path, query, body, len, keep_alive),
        other => panic!(
            "expected a request from {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn get_with_query_and_pipelined_tail() {
    let input = b"GET /v1/leads/7?a=1&b=2 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n";
    let (m, p, q, body, len, ka) = req(input);
    assert_eq!(
        (m.as_str(), p.as_str(), q.as_str()),
        ("GET", "/v1/leads/7", "a=1&b=2")
    );
    assert!(body.is_empty() && ka);
    assert_eq!(&input[len..], b"GET / HTTP/1.1\r\n");
}

#[test]
fn post_with_content_length_and_leading_crlf() {
    let (m, _, _, body, len, _) =
        req(b"\r\nPOST /v1/ping HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloXX");
    assert_eq!(
        (m.as_str(), body.as_slice(), len),
        ("POST", &b"hello"[..], 52)
    );
}

#[test]
fn chunked_body_is_decoded() {
    let input =
        b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let (_, _, _, body, len, _) = req(input);
    assert_eq!((body.as_slice(), len), (&b"abcde"[..], input.len()));
}

#[test]
fn every_prefix_is_partial_and_head_done_is_reported() {
    let input = b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody";
    let head_len = input.len() - 4;
    for cut in 0..input.len() {
        match run(&input[..cut]) {
            Ok(Out::Partial(p)) => {
                assert_eq!(p.head_done, cut >= head_len, "cut {cut}");
                assert_eq!(p.expect_continue, cut >= head_len, "cut {cut}");
                if p.head_done {
                    assert_eq!(p.len_hint, input.len());
                }
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

/// Issue #7 point 8: a 15 KB head trickled in byte by byte is parsed a
/// bounded number of times and scanned about once (it was re-parsed and
/// re-scanned from its start on every read: quadratic).
#[test]
fn a_trickled_head_is_scanned_incrementally() {
    let lim = Limits {
        body_bytes_max: 100,
        header_bytes_max: 16 * 1024,
        headers_max: 64,
    };
    let mut input = b"\r\nGET /slow HTTP/1.1\r\n".to_vec();
    for i in 0..10 {
        input.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(1_500)).as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    assert!(input.len() > 15_000);
    hook::PARSES.with(|c| c.set(0));
    hook::SCANNED.with(|c| c.set(0));
    let mut progress = Progress::default();
    for cut in 1..input.len() {
        let mut buf = input[..cut].to_vec();
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        match decode_resume(&mut buf, &lim, &mut hdrs, &mut progress) {
            Ok(Decoded::Partial(p)) => assert!(!p.head_done, "cut {cut}"),
            Ok(Decoded::Complete(_)) => panic!("complete at {cut}"),
            Err(e) => panic!("cut {cut}: {e}"),
        }
    }
    let mut buf = input.clone();
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let Ok(Decoded::Complete(r)) = decode_resume(&mut buf, &lim, &mut hdrs, &mut progress) else {
        panic!("not complete")
    };
    assert_eq!((r.path, r.headers.len(), r.len), ("/slow", 10, input.len()));
    let (parses, scanned) = (
        hook::PARSES.with(|c| c.get()),
        hook::SCANNED.with(|c| c.get()),
    );
    // One per line, one per doubling of the buffer, and the final parse.
    assert!(parses <= 12 + 15 + 1, "{parses} parses");
    assert!(
        scanned <= 4 * input.len(),
        "{scanned} bytes scanned for {}",
        input.len()
    );
}

/// A body trickled in after a big head does not re-parse the head per read.
#[test]
fn a_trickled_body_does_not_reparse_its_head() {
    let lim = Limits {
        body_bytes_max: 2_000,
        header_bytes_max: 16 * 1024,
        headers_max: 64,
    };
    let head = format!("POST /p HTTP/1.1\r\nX-Pad: {}\r\n", "a".repeat(10_000));
    let length = format!("{head}Content-Length: 1000\r\n\r\n{}", "b".repeat(1_000));
    let chunks = format!(
        "{head}Transfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        "1\r\nc\r\n".repeat(300)
    );
    for (input, body_len) in [(length.as_bytes(), 1_000), (chunks.as_bytes(), 300)] {
        let head_len = input.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let mut progress = Progress::default();
        let mut buf = input[..head_len].to_vec();
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        assert!(
            matches!(decode_resume(&mut buf, &lim, &mut hdrs, &mut progress), Ok(Decoded::Partial(p)) if p.head_done)
        );
        hook::PARSES.with(|c| c.set(0));
        for cut in head_len + 1..input.len() {
            let mut buf = input[..cut].to_vec();
            let mut hdrs = [httparse::EMPTY_HEADER; 64];
            match decode_resume(&mut buf, &lim, &mut hdrs, &mut progress) {
                Ok(Decoded::Partial(p)) => assert!(p.head_done, "cut {cut}"),
                Ok(Decoded::Complete(_)) => panic!("complete at {cut}"),
                Err(e) => panic!("cut {cut}: {e}"),
            }
        }
        let mut buf = input.to_vec();
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let Ok(Decoded::Complete(r)) = decode_resume(&mut buf, &lim, &mut hdrs, &mut progress)
        else {
            panic!("not complete")
        };
        assert_eq!((r.body.len(), r.len), (body_len, input.len()));
        assert_eq!(
            hook::PARSES.with(|c| c.get()),
            1,
            "the head is parsed again only once the body is complete"
        );
    }
}

#[test]
fn progress_keeps_garbage_and_split_empty_lines_right() {
    // Leading empty lines arriving a byte at a time are still skipped.
    let input = b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut progress = Progress::default();
    for cut in 1..input.len() {
        let mut buf = input[..cut].to_vec();
        let mut hdrs = [httparse::EMPTY_HEADER; 8];
        assert!(
            matches!(
                decode_resume(&mut buf, &LIM, &mut hdrs, &mut progress),
                Ok(Decoded::Partial(_))
            ),
            "cut {cut}"
        );
    }
    let mut buf = input.to_vec();
    let mut hdrs = [httparse::EMPTY_HEADER; 8];
    assert!(
        matches!(decode_resume(&mut buf, &LIM, &mut hdrs, &mut progress), Ok(Decoded::Complete(r)) if r.path == "/")
    );
    // Garbage trickled in is still refused before the head is complete: at
    // the latest once the buffer has doubled since it arrived.
    let mut input = b"GET / HTTP/1.1\r\nX\x01Y: ".to_vec();
    let garbage_at = 18;
    input.resize(100, b'z');
    let mut progress = Progress::default();
    let refused = (1..=input.len()).find(|&cut| {
        let mut buf = input[..cut].to_vec();
        let mut hdrs = [httparse::EMPTY_HEADER; 8];
        decode_resume(&mut buf, &LIM, &mut hdrs, &mut progress).is_err()
    });
    assert!(
        refused.is_some_and(|cut| cut <= 2 * garbage_at),
        "garbage refused at {refused:?}"
    );
}

#[test]
fn connection_rules_for_http10_and_11() {
    assert!(!req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").5);
    assert!(!req(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").5);
    assert!(!req(b"GET / HTTP/1.0\r\n\r\n").5);
    assert!(req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").5);
    assert!(req(b"GET / HTTP/1.1\r\n\r\n").5);
}

#[test]
fn absolute_form_target() {
    let (_, p, q, ..) = req(b"GET http://example.com/a/b?x=1 HTTP/1.1\r\n\r\n");
    assert_eq!((p.as_str(), q.as_str()), ("/a/b", "x=1"));
    let (_, p, ..) = req(b"GET http://example.com HTTP/1.1\r\n\r\n");
    assert_eq!(p, "/");
}

#[test]
fn framing_errors_are_400() {
    let cases: [&[u8]; 9] = [
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\na",
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET nope HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    ];
    for c in cases {
        assert!(
            matches!(run(c), Err(HttpError::BadRequest(_))),
            "{:?}",
            String::from_utf8_lossy(c)
        );
    }
    let (.., body, _, _) =
        req(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(body, b"ab", "repeated identical Content-Length is allowed");
}

#[test]
fn garbage_is_refused_before_the_head_completes() {
    assert!(matches!(
        run(b"\x16\x03\x01\x02\x00"),
        Err(HttpError::BadRequest(_))
    ));
    assert!(matches!(
        run(b"GET / HTTP/1.1\r\nX\x01Y"),
        Err(HttpError::BadRequest(_))
    ));
}

#[test]
fn limits_give_413_and_431() {
    assert_eq!(
        run(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").unwrap_err(),
        HttpError::BodyTooLarge
    );
    assert_eq!(
        run(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n").unwrap_err(),
        HttpError::BadRequest("invalid Content-Length")
    );
    let chunked_big = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n";
    assert_eq!(run(chunked_big).unwrap_err(), HttpError::BodyTooLarge);
    let mut long = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    long.resize(300, b'a');
    assert_eq!(run(&long).unwrap_err(), HttpError::HeadersTooLarge);
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..9 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(run(&many).unwrap_err(), HttpError::HeadersTooLarge);
}

#[test]
fn random_bytes_never_panic() {
    // xorshift, seeded: reproducible garbage with some HTTP-looking pieces mixed in.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let pieces: [&[u8]; 8] = [
        b"GET ",
        b"POST / HTTP/1.1\r\n",
        b"\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"0\r\n",
        b":",
        b"\n",
    ];
    for _ in 0..20_000 {
        let mut input = Vec::new();
        for _ in 0..(x % 12) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 == 0 {
                input.extend_from_slice(pieces[(x >> 8) as usize % pieces.len()]);
            } else {
                input.push((x >> 16) as u8);
            }
        }
        let _ = run(&input);
    }
}

#[test]
fn encode_has_length_type_and_connection() {
    let res = Response {
        status: 429,
        content_type: "application/json",
        headers: vec![
            ("Retry-After", "1".into()),
            ("Content-Length", "9".into()),
            ("X-Bad", "a\r\nb".into()),
        ],
        body: b"{}".to_vec(),
    };
    let mut out = Vec::new();
    encode(&res, false, false, false, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 2\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}"
    );
    let mut out = Vec::new();
    encode(&res, true, true, true, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("Connection: keep-alive\r\n\r\n"), "{text}");
}

#[test]
fn decimal_and_odd_status() {
    let mut out = Vec::new();
    for n in [0u64, 7, 10, 65_536, u64::MAX] {
        out.clear();
        push_decimal(n, &mut out);
        assert_eq!(out, n.to_string().as_bytes());
    }
    out.clear();
    status_line(42, &mut out);
    assert_eq!(out, b"HTTP/1.1 500 Internal Server Error\r\n");
}

#[test]
fn the_default_error_answer_is_plain_text_with_the_http_status() {
    let res = HttpError::BodyTooLarge.plain_response();
    assert_eq!(
        (res.status, res.content_type),
        (413, "text/plain; charset=utf-8")
    );
    assert_eq!(res.body, b"request body is too large\n");
}
