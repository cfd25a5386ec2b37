//! Just enough HTTP/1.1 for both sides of the tester: a keep-alive
//! connection that writes a request and reads the response (driver), or
//! reads a request and writes the response (buyer simulator).
//!
//! Hand-rolled on `httparse` over `may::net::TcpStream` because a full client
//! would bring its own runtime, and this one must be cheap and never block an
//! OS thread. Every read is bounded (`limits::HEAD_BYTES_MAX`,
//! `BODY_BYTES_MAX`) and times out at the socket's read timeout.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use may::net::TcpStream;

use crate::limits;

/// Why a message could not be read.
#[derive(Debug)]
pub enum HttpError {
    /// The peer did not answer within the read timeout.
    Timeout,
    /// The peer closed the connection before a whole message arrived.
    Closed,
    /// An I/O error (reset, refused, ...).
    Io(io::Error),
    /// Not HTTP, or too large.
    Malformed(&'static str),
}

impl HttpError {
    /// Short label used as an outcome key in reports.
    pub fn label(&self) -> &'static str {
        match self {
            HttpError::Timeout => "timeout",
            HttpError::Closed => "closed",
            HttpError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset => "reset",
            HttpError::Io(_) => "io_error",
            HttpError::Malformed(_) => "malformed",
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Timeout,
            io::ErrorKind::UnexpectedEof => HttpError::Closed,
            _ => HttpError::Io(e),
        }
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server asked to close the connection.
    pub close: bool,
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub close: bool,
}

/// What the head of a message says about its body and the connection.
struct Framing {
    head_len: usize,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

/// A keep-alive connection with its read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    len: usize,
}

impl Conn {
    /// Connects with a bounded wait and sets the read/write timeout.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Conn::new(stream, Some(timeout))
    }

    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream, timeout: Option<Duration>) -> io::Result<Conn> {
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        Ok(Conn {
            stream,
            buf: vec![0; 8 * 1024],
            len: 0,
        })
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response.
    pub fn read_response(&mut self) -> Result<Response, HttpError> {
        let (status, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; limits::HEADERS_MAX];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&self.buf[..self.len]) {
                Ok(httparse::Status::Complete(n)) => {
                    let f = framing(n, r.headers, r.version == Some(0));
                    break (r.code.unwrap_or(0), f);
                }
                Ok(httparse::Status::Partial) => self.fill_head()?,
                Err(_) => return Err(HttpError::Malformed("bad response head")),
            }
        };
        let body = self.read_body(&framing)?;
        Ok(Response {
            status,
            body,
            close: framing.close,
        })
    }

    /// Reads one request; `Ok(None)` when the peer closed cleanly between
    /// requests (the normal end of a keep-alive connection).
    pub fn read_request(&mut self) -> Result<Option<Request>, HttpError> {
        let (method, path, framing) = loop {
            let mut headers = [httparse::EMPTY_HEADER; limits::HEADERS_MAX];
            let mut r = httparse::Request::new(&mut headers);
            match r.parse(&self.buf[..self.len]) {
                Ok(httparse::Status::Complete(n)) => {
                    let f = framing(n, r.headers, r.version == Some(0));
                    let m = r.method.unwrap_or("").to_string();
                    break (m, r.path.unwrap_or("").to_string(), f);
                }
                Ok(httparse::Status::Partial) => match self.fill_head() {
                    Err(HttpError::Closed) if self.len == 0 => return Ok(None),
                    other => other?,
                },
                Err(_) => return Err(HttpError::Malformed("bad request head")),
            }
        };
        let body = self.read_body(&framing)?;
        Ok(Some(Request {
            method,
            path,
            body,
            close: framing.close,
        }))
    }

    /// Reads more bytes while the head is incomplete, within the head bound.
    fn fill_head(&mut self) -> Result<(), HttpError> {
        if self.len >= limits::HEAD_BYTES_MAX {
            return Err(HttpError::Malformed("head too large"));
        }
        self.fill()
    }

    /// Reads at least one more byte into the buffer, growing it if full.
    fn fill(&mut self) -> Result<(), HttpError> {
        if self.len == self.buf.len() {
            let grown =
                (self.buf.len() * 2).min(limits::HEAD_BYTES_MAX + limits::BODY_BYTES_MAX + 64);
            if grown == self.buf.len() {
                return Err(HttpError::Malformed("message too large"));
            }
            self.buf.resize(grown, 0);
        }
        match self.stream.read(&mut self.buf[self.len..])? {
            0 => Err(HttpError::Closed),
            n => {
                self.len += n;
                Ok(())
            }
        }
    }

    /// Reads the body the framing announces, then drops the message from the
    /// buffer (keeping any bytes of the next one).
    fn read_body(&mut self, f: &Framing) -> Result<Vec<u8>, HttpError> {
        let (body, used) = if f.chunked {
            loop {
                match decode_chunked(&self.buf[f.head_len..self.len])? {
                    Some((body, used)) => break (body, used),
                    None => self.fill()?,
                }
            }
        } else {
            let n = f.content_length.unwrap_or(0);
            if n > limits::BODY_BYTES_MAX {
                return Err(HttpError::Malformed("body too large"));
            }
            while self.len < f.head_len + n {
                self.fill()?;
            }
            (self.buf[f.head_len..f.head_len + n].to_vec(), n)
        };
        let end = f.head_len + used;
        self.buf.copy_within(end..self.len, 0);
        self.len -= end;
        Ok(body)
    }
}

fn framing(head_len: usize, headers: &[httparse::Header<'_>], http10: bool) -> Framing {
    let mut f = Framing {
        head_len,
        content_length: None,
        chunked: false,
        close: http10,
    };
    for h in headers {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            f.content_length = v.parse().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            f.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = v.to_ascii_lowercase();
            f.close = v.contains("close") || (http10 && !v.contains("keep-alive"));
        }
    }
    f
}

/// Decodes a chunked body from the bytes after the head: `Ok(None)` while
/// incomplete, else the body and how many bytes it used. Trailers are not
/// supported (nobody in this protocol sends them).
pub fn decode_chunked(bytes: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&bytes[at..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&bytes[at..at + eol])
            .map_err(|_| HttpError::Malformed("chunk size"))?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(hex, 16).map_err(|_| HttpError::Malformed("chunk size"))?;
        if body.len() + size > limits::BODY_BYTES_MAX {
            return Err(HttpError::Malformed("body too large"));
        }
        at += eol + 2;
        if bytes.len() < at + size + 2 {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some((body, at + 2)));
        }
        body.extend_from_slice(&bytes[at..at + size]);
        at += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Builds a request with a JSON body (or none when `body` is empty and the
/// method is GET).
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    if method != "GET" || !body.is_empty() {
        let _ = write!(
            out,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Builds a response with a JSON body.
pub fn response(status: u16, reason: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_and_report_incomplete_input() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (body, used) = decode_chunked(wire).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&wire[used..], b"NEXT");
        assert!(decode_chunked(&wire[..10]).unwrap().is_none());
        assert!(decode_chunked(b"zz\r\n").is_err());
    }

    #[test]
    fn built_request_parses_back() {
        let req = request(
            "POST",
            "127.0.0.1:1",
            "/v1/ping",
            &[("Authorization", "Bearer k")],
            b"{}",
        );
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut headers);
        let n = match r.parse(&req).unwrap() {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial"),
        };
        assert_eq!(r.path, Some("/v1/ping"));
        assert_eq!(&req[n..], b"{}");
        assert!(r
            .headers
            .iter()
            .any(|h| h.name == "Content-Length" && h.value == b"2"));
    }

    #[test]
    fn keep_alive_round_trips_over_loopback() {
        let l = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = crate::rt::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut c = Conn::new(s, Some(Duration::from_secs(5))).unwrap();
            let mut n = 0;
            while let Some(req) = c.read_request().unwrap() {
                assert_eq!(req.body, b"{\"a\":1}");
                c.send(&response(200, "OK", req.path.as_bytes())).unwrap();
                n += 1;
            }
            n
        });
        let mut c = Conn::connect(addr, Duration::from_secs(5)).unwrap();
        for p in ["/one", "/two", "/three"] {
            c.send(&request("POST", "h", p, &[], b"{\"a\":1}")).unwrap();
            let r = c.read_response().unwrap();
            assert_eq!(
                (r.status, r.body.as_slice(), r.close),
                (200, p.as_bytes(), false)
            );
        }
        drop(c);
        assert_eq!(server.join().unwrap(), 3);
    }
}
