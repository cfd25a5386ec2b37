//! leadx's own HTTP/1.1 server on `may` coroutines and `httparse`.
//!
//! Why not may_minihttp: it has no body or header limits, no time-outs (a
//! slowloris client holds a connection forever), ignores `Connection: close`
//! and HTTP/1.0, and binds with SO_REUSEPORT so a second instance silently
//! shares the port. This server keeps its shape — one coroutine per
//! connection, decode every complete pipelined request in the read buffer,
//! encode all answers into one buffer, one write — and adds the bounds.
//!
//! Layout: `codec` (pure framing, benchmarked), `chunked` (chunked bodies),
//! `conn` (the per-connection loop), this file (API, accept loop, drain).

mod chunked;
mod codec;
mod conn;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Mutex;

use crate::limits;

#[doc(hidden)]
pub use codec::{
    decode, decode_head, decode_resume, encode, Decoded, HeadOnly, HttpError, Limits, Parsed,
    Pending, Progress,
};
pub use tls::ServerTls;

/// One request, borrowing the connection's read buffer.
pub struct Request<'a> {
    pub method: &'a str,
    /// The target without the query string.
    pub path: &'a str,
    /// After '?', "" if none.
    pub query: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    /// Mutable so simd-json can parse in place. Chunked bodies are decoded.
    pub body: &'a mut [u8],
    pub peer: SocketAddr,
    /// When the request head was complete.
    pub received_at: Instant,
}

impl<'a> Request<'a> {
    /// The first header called `name` (case-insensitive); None if absent or
    /// not UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        find_header(self.headers, name)
    }

    /// This request's head, as `Handler::check_head` sees it.
    pub fn head(&self) -> Head<'a> {
        Head {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: self.headers,
            body_bytes: Some(self.body.len()),
            peer: self.peer,
            received_at: self.received_at,
        }
    }
}

fn find_header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<&'a str> {
    let h = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
    std::str::from_utf8(h.value).ok()
}

/// A request's head, shown to the handler before the server reads (or
/// waits for) a single byte of its body.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    /// The body's size as declared (Content-Length, 0 when absent), or as
    /// received when it is already all here; None for a chunked body not
    /// yet received.
    pub body_bytes: Option<usize>,
    pub peer: SocketAddr,
    pub received_at: Instant,
}

impl<'a> Head<'a> {
    /// The first header called `name` (case-insensitive); None if absent or
    /// not UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        find_header(self.headers, name)
    }

    /// A body is declared or may follow (chunked).
    pub fn has_body(&self) -> bool {
        self.body_bytes != Some(0)
    }
}

/// An answer. The server adds Content-Length and Connection itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers, e.g. ("Retry-After", "1"). Framing headers here are dropped.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer with no extra headers.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }
}

/// The application. Runs in the connection's coroutine: it may block that
/// coroutine (coroutine-aware waits only), never the OS thread.
pub trait Handler: Send + Sync + 'static {
    /// Called once per request as soon as its head is complete, before any
    /// body byte is read or waited for: an `Err` is the answer, the body is
    /// never buffered, and the connection closes unless the body had
    /// already arrived whole. It must not wait for anything (it runs
    /// before a slow client has sent its body). `handle` still runs its
    /// own checks: a head that passes here is not trusted further.
    fn check_head(&self, _head: &Head<'_>) -> Result<(), Response> {
        Ok(())
    }

    fn handle(&self, req: &mut Request<'_>) -> Response;

    /// The answer to a failure the server finds itself (bad framing, too
    /// large, too slow, over capacity, a panicking handler). The HTTP layer
    /// knows the status; the body is the handler's to choose (leadx's API
    /// answers its contract's JSON error, `api::error`), so this layer
    /// imports nothing from above it.
    fn error_response(&self, e: &HttpError) -> Response {
        e.plain_response()
    }
}

/// Bounds and time-outs of one server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub body_bytes_max: usize,
    pub header_bytes_max: usize,
    /// At most `limits::HEADERS_MAX`.
    pub headers_max: usize,
    /// Keep-alive connection idle between requests → closed.
    pub idle_timeout_ms: u64,
    /// From a request's first byte to its last → 408 and close.
    pub request_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub connections_max: usize,
    /// Also listen on an ephemeral 127.0.0.1 port for health probes (the
    /// systemd watchdog), with its own `limits::PROBE_CONNECTIONS_MAX`
    /// connections outside `connections_max`: a flood of clients filling
    /// the main port must not make systemd kill a working exchange.
    pub probe_listener: bool,
    /// HTTPS only on the main listener (contract §12 `[server.tls]`); the
    /// probe listener stays plain loopback HTTP.
    pub tls: Option<Arc<ServerTls>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_bytes_max: limits::BODY_BYTES_MAX_DEFAULT,
            header_bytes_max: limits::HEADER_BYTES_MAX,
            headers_max: limits::HEADERS_MAX,
            idle_timeout_ms: limits::SERVER_IDLE_TIMEOUT_MS,
            request_timeout_ms: limits::SERVER_REQUEST_TIMEOUT_MS,
            write_timeout_ms: limits::SERVER_WRITE_TIMEOUT_MS,
            connections_max: limits::CONNECTIONS_MAX,
            probe_listener: false,
            tls: None,
        }
    }
}

impl ServerOptions {
    fn check(&self) -> std::io::Result<()> {
        let ok = self.body_bytes_max <= limits::BODY_BYTES_MAX_CEILING
            && (1..=limits::HEADERS_MAX).contains(&self.headers_max)
            && self.header_bytes_max >= 64
            && self.idle_timeout_ms > 0
            && self.request_timeout_ms > 0
            && self.write_timeout_ms > 0
            && self.connections_max > 0;
        if ok {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "server options out of bounds (see limits.rs)",
            ))
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            body_bytes_max: self.body_bytes_max,
            header_bytes_max: self.header_bytes_max,
            headers_max: self.headers_max,
        }
    }
}

/// Counters, for /metrics and tests.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    /// Closed at accept because `connections_max` were open.
    pub connections_rejected_total: AtomicU64,
    /// Connections open on the probe listener (not in `connections_open`).
    pub probe_connections_open: AtomicU64,
    /// Requests answered by the handler.
    pub requests_total: AtomicU64,
    /// Requests refused with 400/413/431.
    pub protocol_errors_total: AtomicU64,
    /// Requests the handler refused on their head while their body had not
    /// all arrived (answered, then the connection closed unread).
    pub refused_on_head_total: AtomicU64,
    /// Requests not complete within `request_timeout_ms`.
    pub timeouts_total: AtomicU64,
    /// TLS handshakes that failed or did not finish in time.
    pub tls_handshake_failures_total: AtomicU64,
}

/// A connection as the drain sees it: a duplicate of its socket, so an idle
/// one can be shut down from outside its coroutine.
pub(crate) struct ConnSlot {
    sock: std::net::TcpStream,
    /// Waiting for the first byte of a request (safe to close).
    idle: AtomicBool,
}

/// State shared by the accept loop, the connections and the handle.
pub(crate) struct Shared {
    opts: ServerOptions,
    stats: ServerStats,
    draining: AtomicBool,
    in_flight: AtomicUsize,
    next_conn_id: AtomicU64,
    /// Open connections. The lock is held only for inserts, removes and the
    /// drain's scan, never across anything that yields.
    conns: Mutex<std::collections::HashMap<u64, Arc<ConnSlot>>>,
}

/// Binds WITHOUT SO_REUSEPORT: a port already in use is an error
/// (`io::ErrorKind::AddrInUse`), never a silent second listener.
/// SO_REUSEADDR is set so a restart can bind while old connections sit in
/// TIME_WAIT; on Linux it does not allow two listeners on one port.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(limits::SERVER_LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A running server. Dropping it begins a drain (stops accepting).
#[must_use = "dropping the handle stops the server accepting"]
pub struct ServerHandle {
    local_addr: SocketAddr,
    probe_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// Duplicates of the listening sockets, shut down to stop accepting.
    listeners: Mutex<Vec<std::net::TcpListener>>,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    Main,
    /// The loopback probe listener (`ServerOptions::probe_listener`).
    Probe,
}

/// Starts serving `listener` with `handler`. Callable from a plain thread:
/// the accept loop runs in a coroutine.
pub fn start<H: Handler>(
    listener: std::net::TcpListener,
    opts: ServerOptions,
    handler: Arc<H>,
) -> std::io::Result<ServerHandle> {
    opts.check()?;
    // Touching may's sockets starts its scheduler, which sizes its coroutine
    // pool from the config at that moment: configure it first.
    crate::rt::configure(crate::rt::default_workers());
    let local_addr = listener.local_addr()?;
    let mut dups = vec![listener.try_clone()?];
    let listener = into_may_listener(listener);
    let probe = if opts.probe_listener {
        let probe = bind(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))?;
        dups.push(probe.try_clone()?);
        Some((probe.local_addr()?, into_may_listener(probe)))
    } else {
        None
    };
    let shared = Arc::new(Shared {
        opts,
        stats: ServerStats::default(),
        draining: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        next_conn_id: AtomicU64::new(0),
        conns: Mutex::new(std::collections::HashMap::new()),
    });
    let probe_addr = probe.as_ref().map(|(addr, _)| *addr);
    if let Some((_, probe)) = probe {
        let (shared, handler) = (shared.clone(), handler.clone());
        crate::rt::spawn(move || accept_loop(probe, Port::Probe, shared, handler));
    }
    let accept_shared = shared.clone();
    crate::rt::spawn(move || accept_loop(listener, Port::Main, accept_shared, handler));
    Ok(ServerHandle {
        local_addr,
        probe_addr,
        shared,
        listeners: Mutex::new(dups),
    })
}

fn into_may_listener(listener: std::net::TcpListener) -> may::net::TcpListener {
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    // SAFETY: `into_raw_fd` hands over sole ownership of an open listening
    // socket, which `from_raw_fd` takes; nothing else closes that fd. (may
    // offers no safe conversion from a std listener.)
    #[allow(unsafe_code)]
    unsafe {
        may::net::TcpListener::from_raw_fd(listener.into_raw_fd())
    }
}

fn accept_loop<H: Handler>(
    listener: may::net::TcpListener,
    port: Port,
    shared: Arc<Shared>,
    handler: Arc<H>,
) {
    loop {
        crate::sync::will_park("accept");
        let accepted = listener.accept();
        if shared.draining.load(Ordering::SeqCst) {
            // Includes the wake-up error from the drain's shutdown(2).
            break;
        }
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, port, &shared, &handler),
            Err(e) => accept_failed(&e),
        }
    }
    log::info!("http server: stopped accepting port={port:?}");
}

fn admit<H: Handler>(
    stream: may::net::TcpStream,
    peer: SocketAddr,
    port: Port,
    shared: &Arc<Shared>,
    handler: &Arc<H>,
) {
    let stats = &shared.stats;
    let (open, max) = match port {
        Port::Main => (&stats.connections_open, shared.opts.connections_max as u64),
        Port::Probe => (
            &stats.probe_connections_open,
            limits::PROBE_CONNECTIONS_MAX as u64,
        ),
    };
    if open.load(Ordering::Relaxed) >= max {
        stats
            .connections_rejected_total
            .fetch_add(1, Ordering::Relaxed);
        let tls = port == Port::Main && shared.opts.tls.is_some();
        conn::refuse_overloaded(stream, &**handler, tls);
        return;
    }
    open.fetch_add(1, Ordering::Relaxed);
    stats.connections_total.fetch_add(1, Ordering::Relaxed);
    let (shared, handler) = (shared.clone(), handler.clone());
    crate::rt::spawn(move || conn::serve(stream, peer, port, shared, handler));
}

fn accept_failed(e: &std::io::Error) {
    // Out of fds or buffers: pause rather than spin; the backlog holds
    // clients meanwhile. Anything else (a peer that reset) is per-connection.
    let exhausted = matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if exhausted {
        log::warn!("http server: accept: {e}; pausing");
        crate::sync::sleep(Duration::from_millis(limits::SERVER_ACCEPT_BACKOFF_MS));
    } else {
        log::debug!("http server: accept: {e}");
    }
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The loopback probe listener's address, when it was asked for.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe_addr
    }

    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// Stop accepting (the listening socket is shut down, so connecting is
    /// refused), answer every later request with `Connection: close`, and
    /// close idle keep-alive connections now. In-flight handler calls finish.
    pub fn begin_drain(&self) {
        if self.shared.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        for listener in std::mem::take(&mut *self.listeners.lock()) {
            // On Linux shutdown(2) of a listening socket resets its queue,
            // refuses new connections and wakes the blocked accept.
            if let Err(e) = socket2::SockRef::from(&listener).shutdown(std::net::Shutdown::Both) {
                log::warn!("http server: shutting down the listener: {e}");
            }
        }
        for slot in self.shared.conns.lock().values() {
            if slot.idle.load(Ordering::SeqCst) {
                let _ = slot.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Handler calls running now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until no handler call is running; false on time-out. Polls, so
    /// it works from a plain thread and from a coroutine.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.in_flight() == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let poll = Duration::from_millis(limits::SERVER_WAIT_IDLE_POLL_MS);
            crate::sync::sleep(poll.min(deadline - now));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.begin_drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_utf8_only() {
        let headers = [
            httparse::Header {
                name: "Content-Type",
                value: b"application/json",
            },
            httparse::Header {
                name: "X-Bin",
                value: b"\xff\xfe",
            },
        ];
        let mut body = *b"{}";
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: &mut body,
            peer: "127.0.0.1:9".parse().unwrap(),
            received_at: Instant::now(),
        };
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("x-bin"), None);
        assert_eq!(req.header("missing"), None);
    }

    #[test]
    fn options_out_of_bounds_are_refused() {
        assert!(ServerOptions::default().check().is_ok());
        let too_many = ServerOptions {
            headers_max: limits::HEADERS_MAX + 1,
            ..ServerOptions::default()
        };
        assert!(too_many.check().is_err());
        let huge = ServerOptions {
            body_bytes_max: limits::BODY_BYTES_MAX_CEILING + 1,
            ..ServerOptions::default()
        };
        assert!(huge.check().is_err());
    }
}
