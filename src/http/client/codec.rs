//! HTTP/1.1 bytes for the buyer client: the request we write and the response
//! we read, over any `Read`. No sockets, clocks or pools here, so every
//! framing rule (Content-Length, chunked, until-close, 1xx, size limits) is
//! tested with plain byte fixtures.

use std::io::{self, Read};

use crate::limits;

/// What reading a response produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Content-Encoding`, lower-cased, when the answer has one other than
    /// `identity` (the body is as sent: decoding is the reader's job).
    pub content_encoding: Option<String>,
    /// The connection may carry another request: the response was framed,
    /// fully read, nothing followed it, and the server did not ask to close.
    pub reusable: bool,
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The peer closed before sending a single byte of the response.
    ClosedEarly,
    Malformed,
    TooLarge,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// A header name or value that could split the request (CR, LF, NUL) or a
/// name that is not a token. Config validation should refuse these first;
/// the client checks again because a header injected into a buyer call would
/// be invisible.
pub fn header_is_valid(name: &str, value: &str) -> bool {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    name_ok && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Headers the client writes itself; a second copy from config would make
/// the request ambiguous (two lengths, two hosts) to the buyer.
fn is_framing_header(name: &str) -> bool {
    [
        "host",
        "content-length",
        "content-type",
        "connection",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// The whole request (head and body) in one buffer so that it leaves in one
/// write: a buyer call is small and one syscall is cheaper than two.
/// `method` is `POST`, `PUT` or `GET` (buyer specs, contract §9); without a
/// content type and body (a GET), neither Content-Type nor Content-Length
/// is written. Invalid extra headers are left out (see `header_is_valid`).
pub(crate) fn build(
    method: &str,
    authority: &str,
    target: &str,
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + target.len() + body.len() + headers.len() * 48);
    // `url::parse` already refuses such targets; this keeps a bad one from
    // splitting the request if one ever gets here another way.
    let target = if target.starts_with('/') && header_is_valid("x", target) && !target.contains(' ')
    {
        target
    } else {
        "/"
    };
    // Only the methods buyer specs use; anything else would be a bug.
    let method = match method {
        "PUT" | "GET" => method,
        _ => "POST",
    };
    for part in [method, " ", target, " HTTP/1.1\r\nHost: ", authority] {
        out.extend_from_slice(part.as_bytes());
    }
    let bodiless = content_type.is_none() && body.is_empty() && method == "GET";
    if !bodiless {
        let content_type = match content_type {
            Some(ct) if header_is_valid("x", ct) => ct,
            _ => "application/octet-stream",
        };
        for part in ["\r\nContent-Type: ", content_type, "\r\nContent-Length: "] {
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(body.len().to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\nConnection: keep-alive\r\n");
    for (name, value) in headers {
        if !header_is_valid(name, value) || is_framing_header(name) {
            log::warn!("buyer header {name:?} not sent: invalid, or set by the client itself");
            continue;
        }
        for part in [name.as_str(), ": ", value.as_str(), "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the head said, copied out of httparse's borrowed view.
struct Head {
    status: u16,
    content_encoding: Option<String>,
    len: usize,
    framing: Framing,
    keep_alive: bool,
}

/// What reading one response cost, known even when the read failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadCost {
    /// Largest capacity the read buffer reached; never above
    /// `limits::BUYER_READ_BUFFER_BYTES_MAX`.
    pub buffer_peak_bytes: usize,
}

/// Reads one response from `io`, skipping at most
/// `limits::BUYER_INTERIM_RESPONSES_MAX` 1xx interim responses. The body is
/// bounded by `body_bytes_max`, the head by
/// `limits::BUYER_RESPONSE_HEAD_BYTES_MAX`, chunked framing by
/// `limits::BUYER_CHUNKED_OVERHEAD_BYTES_MAX`, and the read buffer by
/// `limits::BUYER_READ_BUFFER_BYTES_MAX` whatever the peer sends.
pub(crate) fn read_response<R: Read>(
    io: &mut R,
    body_bytes_max: usize,
    cost: &mut ReadCost,
) -> Result<Response, ReadError> {
    let mut rd = Buffered {
        io,
        buf: Vec::new(),
        pos: 0,
        end: 0,
        read_bytes: 0,
        peak: 0,
    };
    let r = read_with(&mut rd, body_bytes_max);
    cost.buffer_peak_bytes = rd.peak;
    r
}

fn read_with<R: Read>(
    rd: &mut Buffered<'_, R>,
    body_bytes_max: usize,
) -> Result<Response, ReadError> {
    let mut interim = 0;
    let head = loop {
        let head = rd.head()?;
        rd.pos += head.len;
        // 101 would switch protocols, which a POST to a buyer never asks for.
        match head.status {
            101 => return Err(ReadError::Malformed),
            100..=199 if interim < limits::BUYER_INTERIM_RESPONSES_MAX => interim += 1,
            100..=199 => return Err(ReadError::Malformed),
            _ => break head,
        }
    };
    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) if n > body_bytes_max as u64 => return Err(ReadError::TooLarge),
        Framing::Length(n) => {
            let mut body = Vec::with_capacity(n as usize);
            rd.move_into(n as usize, &mut body)?;
            body
        }
        Framing::Chunked => rd.chunked(body_bytes_max)?,
        Framing::UntilClose => rd.until_close(body_bytes_max)?,
    };
    let framed = head.framing != Framing::UntilClose;
    let reusable = framed && head.keep_alive && rd.available().is_empty();
    Ok(Response {
        status: head.status,
        body,
        content_encoding: head.content_encoding,
        reusable,
    })
}

/// Bytes asked of the transport per read.
const READ_CHUNK_BYTES: usize = 4096;
/// Bytes asked by the first read of a response. The buffer exists while the
/// call waits for the buyer, and a typical bid answer (head and body) fits
/// in this: 4 KiB from the start cost 40 MB with 10,000 calls in flight.
const FIRST_READ_BYTES: usize = 512;

const _: () = assert!(
    limits::BUYER_RESPONSE_HEAD_BYTES_MAX + READ_CHUNK_BYTES <= limits::BUYER_READ_BUFFER_BYTES_MAX
);
const _: () = assert!(
    limits::BUYER_CHUNK_LINE_BYTES_MAX + 2 + READ_CHUNK_BYTES
        <= limits::BUYER_READ_BUFFER_BYTES_MAX
);

/// A bounded read buffer; `buf[pos..end]` is read but not yet consumed.
/// `buf[end..]` is initialised spare room, kept so that a read does not
/// zero 4 KiB again each time (a buyer trickling single bytes would make
/// that 4,096 bytes of work per byte it sends).
///
/// Consumed bytes are dropped before every read (compaction), so the buffer
/// holds only what is unread: at most one head or one line, plus one read.
/// Body bytes are moved out into the body as they arrive instead of piling
/// up here, so a 1xx flood, an endless trailer section or a large body never
/// grows it.
struct Buffered<'a, R> {
    io: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Bytes read from `io` in all; 0 means the peer sent nothing.
    read_bytes: usize,
    /// Largest `buf.capacity()` seen.
    peak: usize,
}

impl<R: Read> Buffered<'_, R> {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads more bytes; false at end of stream. `cap` bounds the unread
    /// bytes the buffer may hold (more is `TooLarge`) and so its capacity.
    fn fill(&mut self, cap: usize) -> Result<bool, ReadError> {
        debug_assert!(cap <= limits::BUYER_READ_BUFFER_BYTES_MAX);
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let room = cap.saturating_sub(self.end);
        if room == 0 {
            return Err(ReadError::TooLarge);
        }
        let want = room.min(if self.buf.is_empty() {
            FIRST_READ_BYTES
        } else {
            READ_CHUNK_BYTES
        });
        if self.buf.len() < self.end + want {
            // Doubling keeps growth amortised; `cap` keeps it bounded.
            let target = (self.end + want).max(self.buf.len().saturating_mul(2).min(cap));
            self.buf.reserve_exact(target - self.buf.len());
            self.buf.resize(target, 0);
        }
        self.peak = self.peak.max(self.buf.capacity());
        let n = loop {
            match self.io.read(&mut self.buf[self.end..self.end + want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        }?;
        self.end += n;
        self.read_bytes += n;
        Ok(n > 0)
    }

    /// Reads until a whole head is buffered and parses it. httparse runs
    /// only once a blank line has arrived, so a head trickled a byte at a
    /// time costs linear, not quadratic, work.
    fn head(&mut self) -> Result<Head, ReadError> {
        let mut scanned = 0;
        loop {
            while let Some(nl) = blank_line_at(self.available(), scanned) {
                if let Some(head) = parse_head(self.available())? {
                    return Ok(head);
                }
                // A blank line httparse skips (leading empty lines).
                scanned = nl + 1;
            }
            // A newline in the last two bytes may yet start a blank line.
            scanned = scanned.max(self.available().len().saturating_sub(2));
            if !self.fill(limits::BUYER_RESPONSE_HEAD_BYTES_MAX)? {
                return Err(if self.read_bytes > 0 {
                    ReadError::Malformed
                } else {
                    ReadError::ClosedEarly
                });
            }
        }
    }

    /// Moves exactly `n` bytes into `out`, reading as needed; EOF first is
    /// Malformed.
    fn move_into(&mut self, mut n: usize, out: &mut Vec<u8>) -> Result<(), ReadError> {
        loop {
            let k = n.min(self.available().len());
            out.extend_from_slice(&self.available()[..k]);
            self.pos += k;
            n -= k;
            if n == 0 {
                return Ok(());
            }
            if !self.fill(READ_CHUNK_BYTES)? {
                return Err(ReadError::Malformed);
            }
        }
    }

    /// Consumes one CRLF-terminated line of chunked framing (without the
    /// CRLF), counting it into `overhead`; a line longer than
    /// `limits::BUYER_CHUNK_LINE_BYTES_MAX` or framing past
    /// `limits::BUYER_CHUNKED_OVERHEAD_BYTES_MAX` is `TooLarge`.
    fn line(&mut self, overhead: &mut usize) -> Result<Vec<u8>, ReadError> {
        let line_max = limits::BUYER_CHUNK_LINE_BYTES_MAX;
        loop {
            let avail = self.available();
            if let Some(i) = avail.windows(2).position(|w| w == b"\r\n") {
                *overhead += i + 2;
                if i > line_max || *overhead > limits::BUYER_CHUNKED_OVERHEAD_BYTES_MAX {
                    return Err(ReadError::TooLarge);
                }
                let line = avail[..i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            // Room for a line of `line_max` and its CR, still without the LF.
            if avail.len() > line_max + 1 {
                return Err(ReadError::TooLarge);
            }
            if !self.fill(limits::BUYER_READ_BUFFER_BYTES_MAX)? {
                return Err(ReadError::Malformed);
            }
        }
    }

    fn chunked(&mut self, body_bytes_max: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        let mut overhead = 0;
        loop {
            let mut line = self.line(&mut overhead)?;
            line.extend_from_slice(b"\r\n");
            let size = match httparse::parse_chunk_size(&line) {
                Ok(httparse::Status::Complete((_, size))) => size,
                _ => return Err(ReadError::Malformed),
            };
            if size == 0 {
                break;
            }
            if size > (body_bytes_max - body.len()) as u64 {
                return Err(ReadError::TooLarge);
            }
            self.move_into(size as usize, &mut body)?;
            if !self.line(&mut overhead)?.is_empty() {
                return Err(ReadError::Malformed);
            }
        }
        // Trailers are read and dropped; they end with an empty line.
        while !self.line(&mut overhead)?.is_empty() {}
        Ok(body)
    }

    fn until_close(&mut self, body_bytes_max: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let k = self.available().len();
            if body.len() + k > body_bytes_max {
                return Err(ReadError::TooLarge);
            }
            body.extend_from_slice(self.available());
            self.pos += k;
            if !self.fill(READ_CHUNK_BYTES)? {
                return Ok(body);
            }
        }
    }
}

/// The index of the first `\n` at or after `from` that ends a blank line
/// (`\n\n` or `\n\r\n`; httparse accepts bare LF line ends).
fn blank_line_at(bytes: &[u8], from: usize) -> Option<usize> {
    let tail = bytes.get(from..)?;
    tail.iter().enumerate().find_map(|(i, &b)| {
        let rest = &tail[i + 1..];
        (b == b'\n' && (rest.starts_with(b"\n") || rest.starts_with(b"\r\n"))).then_some(from + i)
    })
}

/// Parses a complete head out of `bytes`; None when more bytes are needed.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; limits::BUYER_RESPONSE_HEADERS_MAX];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::TooLarge),
        Err(_) => return Err(ReadError::Malformed),
    };
    let status = resp.code.ok_or(ReadError::Malformed)?;
    let http11 = resp.version == Some(1);
    let mut keep_alive = http11;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut content_encoding = None;
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ReadError::Malformed)?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| ReadError::Malformed)?;
            if length.is_some_and(|old| old != n) {
                return Err(ReadError::Malformed);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only a final `chunked` frames the body; any other coding means
            // the body runs to the close.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = last.eq_ignore_ascii_case("chunked");
            other_coding = !chunked;
        } else if h.name.eq_ignore_ascii_case("content-encoding") {
            let v = value.to_ascii_lowercase();
            content_encoding = (!v.is_empty() && v != "identity").then_some(v);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = match (status, chunked, other_coding, length) {
        (204 | 304 | 100..=199, ..) => Framing::Empty,
        (_, true, ..) => Framing::Chunked,
        (_, false, true, _) => Framing::UntilClose,
        (_, _, _, Some(n)) => Framing::Length(n),
        _ => Framing::UntilClose,
    };
    // Both Content-Length and Transfer-Encoding: chunked wins (RFC 9112
    // 6.3), but such a peer is confused, so its connection is not reused.
    if (chunked || other_coding) && length.is_some() {
        keep_alive = false;
    }
    Ok(Some(Head {
        status,
        content_encoding,
        len,
        framing,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests;
