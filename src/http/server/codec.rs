//! Pure HTTP/1.1 framing: bytes in a buffer → one request (or "need more" or
//! a typed protocol error), and a response → bytes. No I/O, so every rule is
//! unit-tested with plain byte strings and benchmarked without sockets.
//!
//! The connection loop calls `decode_resume` on the unread part of its
//! buffer as often as bytes arrive, with a `Progress` it keeps per request:
//! where the search for the end of the head stopped, when the incomplete
//! head was last checked for garbage, and where the chunked body scan
//! stopped. So a head or a chunked body trickled byte by byte costs linear
//! time, not a re-scan from the start on every read (issue #7 point 8).
//! `decode` is the same without saved progress.

use std::fmt;

use super::chunked::{self, ChunkLimits, Scan};
use super::Response;
use crate::limits;

/// A request the server refuses itself, before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line, headers or framing (400 `bad_request`).
    BadRequest(&'static str),
    /// Body over `body_bytes_max` (413 `body_too_large`).
    BodyTooLarge,
    /// Head over `header_bytes_max` or more than `headers_max` headers (431).
    HeadersTooLarge,
    /// The request did not arrive within `request_timeout_ms` (408).
    RequestTimeout,
    /// More than `connections_max` connections (503 `overloaded`).
    Overloaded,
    /// The handler panicked (500 `internal`); the cause is logged, not sent.
    Internal,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::BodyTooLarge => 413,
            HttpError::HeadersTooLarge => 431,
            HttpError::RequestTimeout => 408,
            HttpError::Overloaded => 503,
            HttpError::Internal => 500,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::BodyTooLarge => "request body is too large",
            HttpError::HeadersTooLarge => "request head is too large or has too many headers",
            HttpError::RequestTimeout => "request not received in time",
            HttpError::Overloaded => "the exchange is overloaded, retry shortly",
            HttpError::Internal => "internal error",
        }
    }

    /// A plain-text answer for this failure: what a `Handler` that does
    /// not say otherwise sends (`Handler::error_response`).
    pub fn plain_response(&self) -> Response {
        Response {
            status: self.status(),
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: format!("{}\n", self.message()).into_bytes(),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.message())
    }
}

impl std::error::Error for HttpError {}

/// The bounds `decode` enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes_max: usize,
    pub header_bytes_max: usize,
    pub headers_max: usize,
}

impl Limits {
    fn chunks(&self) -> ChunkLimits {
        ChunkLimits {
            body_bytes_max: self.body_bytes_max,
            line_bytes_max: limits::CHUNK_LINE_BYTES_MAX,
            overhead_bytes_max: limits::CHUNKED_OVERHEAD_BYTES_MAX,
        }
    }

    /// Largest buffer one request can need: head + body + chunk framing.
    pub fn request_bytes_max(&self) -> usize {
        self.header_bytes_max + self.body_bytes_max + limits::CHUNKED_OVERHEAD_BYTES_MAX
    }
}

/// "Need more bytes", with what is known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    /// The head is complete (only the body is missing).
    pub head_done: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// Total bytes of this request when known (Content-Length), else 0.
    pub len_hint: usize,
}

/// One complete request, borrowing the buffer.
pub struct Parsed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    pub body: &'a mut [u8],
    /// Bytes of the buffer this request used (head + encoded body).
    pub len: usize,
    pub keep_alive: bool,
    pub http10: bool,
}

pub enum Decoded<'a> {
    Partial(Pending),
    Complete(Parsed<'a>),
}

/// What the head says about the body and the connection.
#[derive(Debug, Default)]
struct Framing {
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

/// How far the decoding of one incomplete request got; `Default` for a new
/// request. Only valid while the bytes already seen stay as they were (more
/// may be appended).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// End of the leading empty lines skipped so far.
    skip: usize,
    /// The search for the end of the head resumes here.
    scanned: usize,
    /// Just past the last LF seen in the head.
    last_lf: usize,
    /// `last_lf` and the buffer length at the last garbage check.
    checked_lf: usize,
    checked_len: usize,
    /// Where the chunked body scan stopped.
    chunks: chunked::Resume,
    /// The head, once complete while its body is not: the body is awaited
    /// without parsing the head again on every read.
    known: Option<KnownHead>,
}

/// What a complete head said about the body still arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KnownHead {
    head_len: usize,
    chunked: bool,
    pending: Pending,
}

impl KnownHead {
    /// Whether the body may be complete now (then the request is decoded in
    /// full); a chunked body's scan resumes where it stopped.
    fn body_arrived(
        &self,
        buf: &mut [u8],
        lim: &Limits,
        chunks: &mut chunked::Resume,
    ) -> Result<bool, HttpError> {
        if !self.chunked {
            return Ok(buf.len() >= self.pending.len_hint);
        }
        let scan = chunked::scan_resume(&mut buf[self.head_len..], &lim.chunks(), chunks)?;
        Ok(scan != Scan::Partial)
    }
}

/// Decodes the request at the start of `buf`. `headers.len()` is the most
/// headers accepted.
pub fn decode<'a>(
    buf: &'a mut [u8],
    lim: &Limits,
    headers: &'a mut [httparse::Header<'a>],
) -> Result<Decoded<'a>, HttpError> {
    decode_resume(buf, lim, headers, &mut Progress::default())
}

/// `decode`, resuming from (and updating) `progress`, which belongs to the
/// request at the start of `buf`.
pub fn decode_resume<'a>(
    buf: &'a mut [u8],
    lim: &Limits,
    headers: &'a mut [httparse::Header<'a>],
    progress: &mut Progress,
) -> Result<Decoded<'a>, HttpError> {
    if let Some(known) = progress.known {
        if !known.body_arrived(buf, lim, &mut progress.chunks)? {
            return Ok(Decoded::Partial(known.pending));
        }
    }
    let Some(head_len) = head_end(buf, lim.header_bytes_max, progress)? else {
        // Checked again on each new line, or once the buffer has doubled:
        // garbage is refused early at O(lines + log n) parses in all.
        let p = &mut *progress;
        if p.checked_len == 0 || p.last_lf > p.checked_lf || buf.len() >= 2 * p.checked_len {
            (p.checked_len, p.checked_lf) = (buf.len(), p.last_lf);
            reject_bad_prefix(buf, lim.headers_max.min(limits::HEADERS_MAX))?;
        }
        return Ok(Decoded::Partial(Pending::default()));
    };
    let (head, rest) = buf.split_at_mut(head_len);
    let HeadParts {
        method,
        path,
        query,
        headers,
        http10,
        framing: f,
    } = parse_head(head, headers)?;
    let keep_alive = if http10 {
        f.keep_alive && !f.close
    } else {
        !f.close
    };
    let body_slot = |body: &'a mut [u8], raw_len: usize| Parsed {
        method,
        path,
        query,
        headers,
        body,
        len: head_len + raw_len,
        keep_alive,
        http10,
    };
    let expect_continue = f.expect_continue && !http10;
    if f.chunked {
        let decoded = decode_chunked(rest, lim, expect_continue, &mut progress.chunks, body_slot)?;
        if let Decoded::Partial(pending) = decoded {
            progress.known = Some(KnownHead {
                head_len,
                chunked: true,
                pending,
            });
        }
        return Ok(decoded);
    }
    let cl = f.content_length.unwrap_or(0);
    if cl > lim.body_bytes_max {
        return Err(HttpError::BodyTooLarge);
    }
    if rest.len() < cl {
        let pending = Pending {
            head_done: true,
            expect_continue,
            len_hint: head_len + cl,
        };
        progress.known = Some(KnownHead {
            head_len,
            chunked: false,
            pending,
        });
        return Ok(Decoded::Partial(pending));
    }
    Ok(Decoded::Complete(body_slot(&mut rest[..cl], cl)))
}

/// A complete head, parsed.
struct HeadParts<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [httparse::Header<'a>],
    http10: bool,
    framing: Framing,
}

/// Parses `head`, which ends with its empty line.
fn parse_head<'a>(
    head: &'a [u8],
    headers: &'a mut [httparse::Header<'a>],
) -> Result<HeadParts<'a>, HttpError> {
    let mut req = httparse::Request::new(headers);
    hook::parsed();
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(HttpError::BadRequest("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(_) => return Err(HttpError::BadRequest("malformed request line or header")),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    let (path, query) = split_target(target)?;
    let headers: &'a [httparse::Header<'a>] = req.headers;
    let framing = framing(headers)?;
    Ok(HeadParts {
        method,
        path,
        query,
        headers,
        http10: version == 0,
        framing,
    })
}

/// The head of a request whose body has not all arrived, as the handler's
/// `check_head` sees it.
pub struct HeadOnly<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    /// Content-Length (0 when absent); None for a chunked body.
    pub body_bytes: Option<usize>,
}

/// The head at the start of `buf` when it is complete (what `decode`
/// reported as `Pending { head_done: true, .. }`), parsed again without
/// touching the body bytes after it. None if the head is not complete.
pub fn decode_head<'a>(
    buf: &'a [u8],
    lim: &Limits,
    headers: &'a mut [httparse::Header<'a>],
) -> Result<Option<HeadOnly<'a>>, HttpError> {
    let Some(head_len) = head_end(buf, lim.header_bytes_max, &mut Progress::default())? else {
        return Ok(None);
    };
    let HeadParts {
        method,
        path,
        query,
        headers,
        framing,
        ..
    } = parse_head(&buf[..head_len], headers)?;
    let body_bytes = if framing.chunked {
        None
    } else {
        Some(framing.content_length.unwrap_or(0))
    };
    Ok(Some(HeadOnly {
        method,
        path,
        query,
        headers,
        body_bytes,
    }))
}

fn decode_chunked<'a>(
    rest: &'a mut [u8],
    lim: &Limits,
    expect_continue: bool,
    resume: &mut chunked::Resume,
    body_slot: impl FnOnce(&'a mut [u8], usize) -> Parsed<'a>,
) -> Result<Decoded<'a>, HttpError> {
    let chunk_lim = lim.chunks();
    match chunked::scan_resume(rest, &chunk_lim, resume)? {
        Scan::Partial => Ok(Decoded::Partial(Pending {
            head_done: true,
            expect_continue,
            len_hint: 0,
        })),
        Scan::Complete { raw_len, .. } => {
            let decoded = chunked::decode_in_place(&mut rest[..raw_len], &chunk_lim)?;
            Ok(Decoded::Complete(body_slot(&mut rest[..decoded], raw_len)))
        }
    }
}

/// Length of the head (through the empty line), None if it has not all
/// arrived. Leading empty lines (allowed before a request line) are skipped.
/// Resumes where `p` says the last call stopped.
fn head_end(
    buf: &[u8],
    header_bytes_max: usize,
    p: &mut Progress,
) -> Result<Option<usize>, HttpError> {
    let window = &buf[..buf.len().min(header_bytes_max)];
    let mut from = p.skip;
    // Skip the empty lines httparse skips too, so they don't end the head.
    while from < window.len() && (window[from] == b'\n' || window[from..].starts_with(b"\r\n")) {
        from += if window[from] == b'\n' { 1 } else { 2 };
    }
    p.skip = from;
    // Until a line has begun (not just a lone CR that may become an empty
    // line), there is nothing to search.
    let begun = from < window.len() && !(window[from] == b'\r' && from + 1 == window.len());
    if begun {
        let mut at = from.max(p.scanned);
        hook::scanned(window.len() - at);
        while let Some(i) = window[at..].iter().position(|&b| b == b'\n') {
            let lf = at + i;
            p.last_lf = lf + 1;
            let next = &buf[lf + 1..];
            let end = if next.starts_with(b"\n") {
                lf + 2
            } else if next.starts_with(b"\r\n") {
                lf + 3
            } else {
                at = lf + 1;
                continue;
            };
            if end > header_bytes_max {
                return Err(HttpError::HeadersTooLarge);
            }
            return Ok(Some(end));
        }
        // An LF in the last two bytes may still begin the empty line.
        p.scanned = window.len().saturating_sub(2).max(from);
    }
    if buf.len() >= header_bytes_max {
        return Err(HttpError::HeadersTooLarge);
    }
    Ok(None)
}

/// An incomplete head that is already malformed is refused now rather than
/// after the client has filled `header_bytes_max` with garbage.
#[inline(never)]
fn reject_bad_prefix(buf: &[u8], headers_max: usize) -> Result<(), HttpError> {
    hook::parsed();
    let mut scratch = [httparse::EMPTY_HEADER; limits::HEADERS_MAX];
    match httparse::Request::new(&mut scratch[..headers_max]).parse(buf) {
        Ok(_) => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadersTooLarge),
        Err(_) => Err(HttpError::BadRequest("malformed request line or header")),
    }
}

/// Origin-form `/p?q`, absolute-form `http://host/p?q` (RFC 9112 §3.2.2 says
/// servers accept it) or `*`.
fn split_target(target: &str) -> Result<(&str, &str), HttpError> {
    let origin = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(after) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes()[i] == b'/' => &after[i..],
            _ => "/",
        }
    } else {
        return Err(HttpError::BadRequest("invalid request target"));
    };
    Ok(match origin.split_once('?') {
        Some((p, q)) => (p, q),
        None => (origin, ""),
    })
}

/// Reads the headers that decide framing and persistence.
fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
    let mut f = Framing::default();
    for h in headers {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if f.content_length.is_some_and(|prev| prev != n) {
                return Err(HttpError::BadRequest("conflicting Content-Length headers"));
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if f.chunked || !trim(h.value).eq_ignore_ascii_case(b"chunked") {
                return Err(HttpError::BadRequest(
                    "unsupported Transfer-Encoding (only chunked)",
                ));
            }
            f.chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                f.close |= token.eq_ignore_ascii_case(b"close");
                f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            f.expect_continue = trim(h.value).eq_ignore_ascii_case(b"100-continue");
        }
    }
    if f.chunked && f.content_length.is_some() {
        return Err(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(f)
}

/// Digits only: no sign, no list, no overflow.
fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    const BAD: HttpError = HttpError::BadRequest("invalid Content-Length");
    let v = trim(value);
    if v.is_empty() || v.len() > 19 {
        return Err(BAD);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(BAD);
        }
        n = n * 10 + u64::from(b - b'0');
    }
    usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// The interim answer sent before reading a body the client holds back.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `res` to `out`. `head_only` (a HEAD request) keeps the
/// Content-Length of the body but not the body.
pub fn encode(res: &Response, keep_alive: bool, http10: bool, head_only: bool, out: &mut Vec<u8>) {
    out.reserve(128 + res.body.len());
    status_line(res.status, out);
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(res.content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_decimal(res.body.len() as u64, out);
    out.extend_from_slice(b"\r\n");
    for (name, value) in &res.headers {
        if header_allowed(name, value) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            log::warn!(
                "http server: dropped response header {name:?} (framing header or CR/LF in value)"
            );
        }
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&res.body);
    }
}

/// Framing is the server's job, and a CR or LF in a value would let a
/// handler split the response.
fn header_allowed(name: &str, value: &str) -> bool {
    let framing = [
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
    ];
    let bad = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    !framing.iter().any(|f| name.eq_ignore_ascii_case(f))
        && !bad(name)
        && !bad(value)
        && !name.is_empty()
}

fn status_line(status: u16, out: &mut Vec<u8>) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(u64::from(status), out);
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Test hook: per-thread counts of head parses and head bytes scanned, so a
/// test can check that a trickled request costs linear work.
pub(super) mod hook {
    #[cfg(test)]
    thread_local! {
        pub static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        pub static SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[inline]
    pub fn parsed() {
        #[cfg(test)]
        PARSES.with(|c| c.set(c.get() + 1));
    }

    #[inline]
    pub fn scanned(_bytes: usize) {
        #[cfg(test)]
        SCANNED.with(|c| c.set(c.get() + _bytes));
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
