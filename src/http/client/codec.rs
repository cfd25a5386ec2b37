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
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    name_ok && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Headers the client writes itself; a second copy from config would make
/// the request ambiguous (two lengths, two hosts) to the buyer.
fn is_framing_header(name: &str) -> bool {
    ["host", "content-length", "content-type", "connection", "transfer-encoding"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// The whole request (head and body) in one buffer so that it leaves in one
/// write: a buyer call is small and one syscall is cheaper than two.
/// Invalid extra headers are left out (see `header_is_valid`).
pub(crate) fn build_request(
    authority: &str,
    target: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + target.len() + body.len() + headers.len() * 48);
    // `url::parse` already refuses such targets; this keeps a bad one from
    // splitting the request if one ever gets here another way.
    let target = if target.starts_with('/') && header_is_valid("x", target) && !target.contains(' ') { target } else { "/" };
    let content_type = if header_is_valid("x", content_type) { content_type } else { "application/octet-stream" };
    for part in ["POST ", target, " HTTP/1.1\r\nHost: ", authority, "\r\nContent-Type: ", content_type] {
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
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
    len: usize,
    framing: Framing,
    keep_alive: bool,
}

/// Reads one response from `io`, skipping 1xx interim responses. The body
/// is bounded by `body_bytes_max`, the head by
/// `limits::BUYER_RESPONSE_HEAD_BYTES_MAX`.
pub(crate) fn read_response<R: Read>(io: &mut R, body_bytes_max: usize) -> Result<Response, ReadError> {
    let mut rd = Buffered { io, buf: Vec::new(), pos: 0, eof: false };
    let head = loop {
        let head = rd.head()?;
        rd.pos += head.len;
        // 101 would switch protocols, which a POST to a buyer never asks for.
        match head.status {
            101 => return Err(ReadError::Malformed),
            100..=199 => continue,
            _ => break head,
        }
    };
    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) if n > body_bytes_max as u64 => return Err(ReadError::TooLarge),
        Framing::Length(n) => rd.take(n as usize)?.to_vec(),
        Framing::Chunked => rd.chunked(body_bytes_max)?,
        Framing::UntilClose => rd.until_close(body_bytes_max)?,
    };
    let framed = head.framing != Framing::UntilClose;
    let reusable = framed && head.keep_alive && rd.pos == rd.buf.len();
    Ok(Response { status: head.status, body, reusable })
}

/// Bytes asked of the transport per read.
const READ_CHUNK_BYTES: usize = 4096;
/// Bytes asked by the first read of a response. The buffer exists while the
/// call waits for the buyer, and a typical bid answer (head and body) fits
/// in this: 4 KiB from the start cost 40 MB with 10,000 calls in flight.
const FIRST_READ_BYTES: usize = 512;

/// A growable read buffer; `buf[pos..]` is read but not yet consumed.
struct Buffered<'a, R> {
    io: &'a mut R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl<R: Read> Buffered<'_, R> {
    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes; false at end of stream. Keeps the buffer under
    /// `cap` unread bytes so that a hostile peer cannot grow it without end.
    fn fill(&mut self, cap: usize) -> Result<bool, ReadError> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        if self.buf.len() - self.pos >= cap {
            return Err(ReadError::TooLarge);
        }
        let old = self.buf.len();
        let chunk = if self.buf.capacity() == 0 { FIRST_READ_BYTES } else { READ_CHUNK_BYTES };
        self.buf.resize(old + chunk, 0);
        let n = loop {
            match self.io.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.buf.truncate(old + n.as_ref().copied().unwrap_or(0));
        let n = n?;
        self.eof = n == 0;
        Ok(n > 0)
    }

    fn head(&mut self) -> Result<Head, ReadError> {
        let cap = limits::BUYER_RESPONSE_HEAD_BYTES_MAX;
        loop {
            if let Some(head) = parse_head(self.available())? {
                return Ok(head);
            }
            let had_bytes = self.pos < self.buf.len() || self.pos > 0;
            if !self.fill(cap)? {
                return Err(if had_bytes { ReadError::Malformed } else { ReadError::ClosedEarly });
            }
        }
    }

    /// Consumes exactly `n` bytes, reading as needed; EOF first is Malformed.
    fn take(&mut self, n: usize) -> Result<&[u8], ReadError> {
        while self.available().len() < n {
            if !self.fill(n + READ_CHUNK_BYTES)? {
                return Err(ReadError::Malformed);
            }
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    /// Consumes one CRLF-terminated line (without the CRLF).
    fn line(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = self.available().windows(2).position(|w| w == b"\r\n") {
                let line = self.available()[..i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            if !self.fill(limits::BUYER_RESPONSE_HEAD_BYTES_MAX)? {
                return Err(ReadError::Malformed);
            }
        }
    }

    fn chunked(&mut self, body_bytes_max: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let mut line = self.line()?;
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
            body.extend_from_slice(self.take(size as usize)?);
            if self.take(2)? != b"\r\n" {
                return Err(ReadError::Malformed);
            }
        }
        // Trailers are read and dropped; they end with an empty line.
        while !self.line()?.is_empty() {}
        Ok(body)
    }

    fn until_close(&mut self, body_bytes_max: usize) -> Result<Vec<u8>, ReadError> {
        while !self.eof {
            if self.available().len() > body_bytes_max {
                return Err(ReadError::TooLarge);
            }
            self.fill(body_bytes_max + READ_CHUNK_BYTES)?;
        }
        if self.available().len() > body_bytes_max {
            return Err(ReadError::TooLarge);
        }
        let body = self.available().to_vec();
        self.pos = self.buf.len();
        Ok(body)
    }
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
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| ReadError::Malformed)?.trim();
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
    Ok(Some(Head { status, len, framing, keep_alive }))
}

#[cfg(test)]
mod tests;
