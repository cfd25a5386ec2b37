//! The client leadx uses to call buyers: small HTTP/1.1 over may sockets
//! (and rustls for https), one `BuyerClient` per buyer endpoint, with a pool
//! of keep-alive connections and a hard deadline on the whole call.
//!
//! Why our own: every buyer call runs in its own coroutine. A blocking client
//! there stalls the worker thread (measured: 400 leads/s, p99 1.3 s, against
//! 2,200/s and 130 ms), one on an OS-thread pool needs a thread per call in
//! flight, and this one was 40% cheaper in CPU than ureq over a may transport.
//!
//! Architecture invariant: nothing here blocks an OS thread once `new` has
//! returned. The idle list is a parking_lot mutex held only for a push or a
//! pop, never across I/O; waiting for a free connection slot uses may's
//! semaphore, which parks the coroutine, not the worker.

pub(crate) mod codec;
mod transport;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sync::Mutex;

use crate::http::url::{Scheme, Url};
use crate::limits;

pub use codec::header_is_valid;
use codec::ReadError;
use transport::{TlsTarget, Transport};

/// How a `BuyerClient` behaves; `Default` takes the bounds in `limits`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Calls in flight to this buyer at most, and so open connections in use.
    pub connections_max: usize,
    /// Idle keep-alive connections kept for reuse.
    pub idle_max: usize,
    /// Largest response body accepted; more is `CallError::TooLarge`.
    pub response_bytes_max: usize,
    /// Extra trusted CA certificates, PEM (tests; a buyer with a private CA).
    pub extra_root_pem: Option<Vec<u8>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connections_max: limits::BUYER_CONNECTIONS_MAX,
            idle_max: limits::BUYER_IDLE_CONNECTIONS_MAX,
            response_bytes_max: limits::BUYER_RESPONSE_BYTES_MAX,
            extra_root_pem: None,
        }
    }
}

/// Checks a PEM of extra CA certificates as `ClientOptions::extra_root_pem`
/// would take it (config load names the key when it fails).
pub fn check_ca_pem(pem: &[u8]) -> Result<(), CallError> {
    transport::tls_config(Some(pem)).map(|_| ())
}

/// Why a buyer call failed. Each is a "no bid" / "failed post" reason to the
/// auction, recorded by `reason()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Timeout,
    Connect,
    Tls,
    Io,
    TooLarge,
    Malformed,
    PoolExhausted,
    Resolve,
}

impl CallError {
    /// Every variant, for the test that pins each reason as documented
    /// (`routing::FAILURES`).
    pub const ALL: [CallError; 8] = [
        CallError::Timeout,
        CallError::Connect,
        CallError::Tls,
        CallError::Io,
        CallError::TooLarge,
        CallError::Malformed,
        CallError::PoolExhausted,
        CallError::Resolve,
    ];

    /// Stable snake_case name, for logs, metrics and transaction records.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::Connect => "connect_error",
            CallError::Tls => "tls_error",
            CallError::Io => "io_error",
            CallError::TooLarge => "response_too_large",
            CallError::Malformed => "malformed_response",
            CallError::PoolExhausted => "pool_exhausted",
            CallError::Resolve => "resolve_error",
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for CallError {}

/// A buyer's answer: any status code; the caller decides what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Content-Encoding` (lower-cased) unless absent or `identity`. The
    /// body is left encoded: the buyer's integration decodes it within its
    /// own bound (`buyer::spec` reads gzip).
    pub content_encoding: Option<String>,
}

/// Connection counters of one `BuyerClient`, for metrics.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Connections opened (TCP connected, and TLS handshaken for https).
    pub created: AtomicU64,
    /// Calls that ran on a pooled keep-alive connection.
    pub reused: AtomicU64,
    /// Calls that had to wait for a free connection slot.
    pub waited: AtomicU64,
    /// Connections closed by us: stale, failed, timed out, `Connection:
    /// close`, or past the idle limits.
    pub closed: AtomicU64,
    /// Largest read buffer one call needed, in bytes; at most
    /// `limits::BUYER_READ_BUFFER_BYTES_MAX` whatever a buyer sends (the
    /// hostile-buyer tests assert it).
    pub read_buffer_peak_bytes: AtomicU64,
    /// Calls whose pooled connection died before any byte of the request
    /// left, sent again once on a fresh connection.
    pub retried_unsent: AtomicU64,
}

struct IdleConn {
    transport: Transport,
    since: Instant,
}

/// One buyer endpoint (scheme, host, port) and its connection pool.
pub struct BuyerClient {
    authority: String,
    addrs: Vec<SocketAddr>,
    tls: Option<TlsTarget>,
    opts: ClientOptions,
    /// One permit per call in flight; at most `connections_max`. A call
    /// holds one connection, so this also bounds connections in use.
    slots: may::sync::Semphore,
    idle: Mutex<Vec<IdleConn>>,
    stats: PoolStats,
}

/// Gives a slot back when a call ends, however it ends.
struct SlotGuard<'a>(&'a may::sync::Semphore);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.post();
    }
}

impl BuyerClient {
    /// Resolves the host now (blocking DNS: call this off the coroutine
    /// workers, at config load) and keeps the addresses for every call.
    /// For https, builds the TLS config; a bad `extra_root_pem` is `Tls`.
    pub fn new(url: &Url, opts: ClientOptions) -> Result<BuyerClient, CallError> {
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|_| CallError::Resolve)?
            .collect();
        if addrs.is_empty() {
            return Err(CallError::Resolve);
        }
        let tls = match url.scheme {
            Scheme::Http => None,
            Scheme::Https => Some(TlsTarget {
                config: transport::tls_config(opts.extra_root_pem.as_deref())?,
                server_name: rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|_| CallError::Tls)?,
            }),
        };
        let connections_max = opts.connections_max.max(1);
        Ok(BuyerClient {
            authority: url.authority(),
            addrs,
            tls,
            slots: may::sync::Semphore::new(connections_max),
            // Grows with use: most buyers never need `idle_max` connections,
            // and a config may hold a thousand of them.
            idle: Mutex::new(Vec::new()),
            opts: ClientOptions {
                connections_max,
                ..opts
            },
            stats: PoolStats::default(),
        })
    }

    /// POSTs `body` to `target` (path and query) with `headers` added; the
    /// whole call — waiting for a slot, connecting, TLS, writing, reading —
    /// ends by `deadline`. Must run in a may coroutine.
    ///
    /// A request is sent at most once: nothing here retries after bytes were
    /// written, because a buyer post that reached the buyer and is sent again
    /// would sell the lead twice. Stale pooled connections are caught before
    /// the write; one that dies between that check and the write — the OS
    /// took no byte of the request — is replaced by a fresh connection once,
    /// while time is left (`a_pooled_connection_dead_before_the_write_is_retried_once_fresh`).
    pub fn post(
        &self,
        target: &str,
        headers: &[(String, String)],
        content_type: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<ClientResponse, CallError> {
        self.call("POST", target, headers, Some(content_type), body, deadline)
    }

    /// Like [`BuyerClient::post`] for any method of a buyer spec (`POST`,
    /// `PUT`, `GET`); `target` may carry a query string. A GET goes without
    /// Content-Type and Content-Length when `content_type` is `None` and
    /// `body` is empty.
    pub fn call(
        &self,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        content_type: Option<&str>,
        body: &[u8],
        deadline: Instant,
    ) -> Result<ClientResponse, CallError> {
        if Instant::now() >= deadline {
            return Err(CallError::Timeout);
        }
        let request = codec::build(method, &self.authority, target, headers, content_type, body);
        let _slot = self.acquire_slot(deadline)?;
        match self.pop_idle() {
            Some(pooled) => match self.send(pooled, &request, deadline) {
                Err(Unsent(_)) if Instant::now() < deadline => {
                    self.stats.retried_unsent.fetch_add(1, Ordering::Relaxed);
                    let fresh = self.connect(deadline)?;
                    self.send(fresh, &request, deadline)
                        .map_err(Sent::into_error)
                }
                other => other.map_err(Sent::into_error),
            },
            None => {
                let fresh = self.connect(deadline)?;
                self.send(fresh, &request, deadline)
                    .map_err(Sent::into_error)
            }
        }
    }

    fn connect(&self, deadline: Instant) -> Result<Transport, CallError> {
        let t = transport::connect(&self.addrs, self.tls.as_ref(), deadline)?;
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        Ok(t)
    }

    /// One exchange on `transport`, which is then pooled or dropped. A
    /// failure says whether any byte of the request left (see `Unsent`).
    fn send(
        &self,
        mut transport: Transport,
        request: &[u8],
        deadline: Instant,
    ) -> Result<ClientResponse, Sent> {
        let sent_before = transport.sent_bytes();
        transport.set_deadline(deadline);
        let mut cost = codec::ReadCost::default();
        let result = exchange(
            &mut transport,
            request,
            self.opts.response_bytes_max,
            deadline,
            &mut cost,
        );
        self.stats
            .read_buffer_peak_bytes
            .fetch_max(cost.buffer_peak_bytes as u64, Ordering::Relaxed);
        // A pooled connection must carry no armed deadline, and one whose
        // deadline fired is shut down.
        let fired = transport.disarm();
        match result {
            Ok(resp) if resp.reusable && !fired => {
                self.push_idle(transport);
                Ok(ClientResponse {
                    status: resp.status,
                    body: resp.body,
                    content_encoding: resp.content_encoding,
                })
            }
            Ok(resp) => {
                self.discard(transport);
                Ok(ClientResponse {
                    status: resp.status,
                    body: resp.body,
                    content_encoding: resp.content_encoding,
                })
            }
            Err(e) => {
                // Whatever state the connection is in (half a response, a
                // timed-out read), it is never pooled.
                let unsent = transport.sent_bytes() == sent_before;
                self.discard(transport);
                Err(if unsent && e != CallError::Timeout {
                    Sent::Unsent(e)
                } else {
                    Sent::Written(e)
                })
            }
        }
    }

    /// Pre-connect (issue #9): opens connections until `want` (at most
    /// `idle_max`) idle ones younger than `fresh_for` are pooled, each TCP
    /// connected and, for https, TLS handshaken, all by `deadline`; older
    /// idle ones are closed first, since they would expire unused. Returns
    /// how many it opened. Takes a free call slot per connect and stops
    /// when none is free (calls are using the pool: it is warm anyway).
    /// Must run in a may coroutine, off any request (`exchange::preconnect`).
    pub fn warm(
        &self,
        want: usize,
        fresh_for: Duration,
        deadline: Instant,
    ) -> Result<usize, CallError> {
        let want = want.min(self.opts.idle_max);
        let mut opened = 0;
        while self.fresh_idle(fresh_for) < want {
            if Instant::now() >= deadline {
                return Err(CallError::Timeout);
            }
            if !self.slots.try_wait() {
                break;
            }
            let _slot = SlotGuard(&self.slots);
            let t = self.connect(deadline)?;
            // The connect's deadline must not stay armed in the pool.
            if t.disarm() {
                self.discard(t);
                return Err(CallError::Timeout);
            }
            self.push_idle(t);
            opened += 1;
        }
        Ok(opened)
    }

    /// Idle connections younger than `fresh_for`; older ones are closed.
    fn fresh_idle(&self, fresh_for: Duration) -> usize {
        let (aged, fresh) = {
            let mut idle = self.idle.lock();
            let (aged, fresh): (Vec<IdleConn>, Vec<IdleConn>) =
                idle.drain(..).partition(|c| c.since.elapsed() >= fresh_for);
            *idle = fresh;
            (aged, idle.len())
        };
        // Closed outside the lock: closing a socket is a syscall.
        for conn in aged {
            self.discard(conn.transport);
        }
        fresh
    }

    /// Idle connections pooled now (tests, metrics).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }

    /// True when `other` (built from a new config) calls the same endpoint
    /// the same way: same addresses, scheme, TLS name and options. A reload
    /// then keeps this pool, warm, instead of `other`'s empty one.
    pub fn same_endpoint(&self, other: &BuyerClient) -> bool {
        let tls_name = |c: &BuyerClient| c.tls.as_ref().map(|t| t.server_name.clone());
        self.authority == other.authority
            && self.addrs == other.addrs
            && tls_name(self) == tls_name(other)
            && self.opts.connections_max == other.opts.connections_max
            && self.opts.idle_max == other.opts.idle_max
            && self.opts.response_bytes_max == other.opts.response_bytes_max
            && self.opts.extra_root_pem == other.opts.extra_root_pem
    }

    /// Connection counters.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    fn acquire_slot(&self, deadline: Instant) -> Result<SlotGuard<'_>, CallError> {
        if self.slots.try_wait() {
            return Ok(SlotGuard(&self.slots));
        }
        self.stats.waited.fetch_add(1, Ordering::Relaxed);
        // A timed-out wait is retried while time is left: see
        // `transport::may_timeout` for why may's timer can be off by a
        // millisecond.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::PoolExhausted);
            }
            crate::sync::will_park("a wait for a buyer connection slot");
            if self.slots.wait_timeout(transport::may_timeout(left)) {
                return Ok(SlotGuard(&self.slots));
            }
        }
    }

    /// The most recently used idle connection that is still good. LIFO: the
    /// freshest connection is the least likely to have been closed by the
    /// buyer; older ones age out.
    fn pop_idle(&self) -> Option<Transport> {
        let idle_timeout = Duration::from_millis(limits::BUYER_IDLE_TIMEOUT_MS);
        loop {
            let mut conn = self.idle.lock().pop()?;
            if conn.since.elapsed() < idle_timeout && !conn.transport.is_stale() {
                self.stats.reused.fetch_add(1, Ordering::Relaxed);
                return Some(conn.transport);
            }
            self.discard(conn.transport);
        }
    }

    fn push_idle(&self, transport: Transport) {
        let conn = IdleConn {
            transport,
            since: Instant::now(),
        };
        let overflow = {
            let mut idle = self.idle.lock();
            if idle.len() < self.opts.idle_max {
                idle.push(conn);
                None
            } else {
                Some(conn)
            }
        };
        // Dropped outside the lock: closing a socket is a syscall.
        if let Some(conn) = overflow {
            self.discard(conn.transport);
        }
    }

    fn discard(&self, transport: Transport) {
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
        drop(transport);
    }
}

/// How far a failed exchange got: `Unsent` — the OS took no byte of the
/// request, so the buyer cannot have seen it and a fresh connection may
/// carry it; `Written` — it may have, and it is never sent again.
enum Sent {
    Unsent(CallError),
    Written(CallError),
}
use Sent::Unsent;

impl Sent {
    fn into_error(self) -> CallError {
        match self {
            Sent::Unsent(e) | Sent::Written(e) => e,
        }
    }
}

/// Writes the request and reads the response on one connection.
fn exchange(
    t: &mut Transport,
    request: &[u8],
    body_bytes_max: usize,
    deadline: Instant,
    cost: &mut codec::ReadCost,
) -> Result<codec::Response, CallError> {
    use std::io::Write;
    t.write_all(request)
        .and_then(|()| t.flush())
        .map_err(|e| io_error(&e, deadline))?;
    codec::read_response(t, body_bytes_max, cost).map_err(|e| match e {
        ReadError::Io(e) => io_error(&e, deadline),
        ReadError::ClosedEarly => CallError::Io,
        ReadError::Malformed => CallError::Malformed,
        ReadError::TooLarge => CallError::TooLarge,
    })
}

fn io_error(e: &std::io::Error, deadline: Instant) -> CallError {
    if transport::is_timeout(e) || Instant::now() >= deadline {
        CallError::Timeout
    } else if transport::is_tls_error(e) {
        CallError::Tls
    } else {
        CallError::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reasons_are_the_stable_snake_case_names() {
        let all = [
            (CallError::Timeout, "timeout"),
            (CallError::Connect, "connect_error"),
            (CallError::Tls, "tls_error"),
            (CallError::Io, "io_error"),
            (CallError::TooLarge, "response_too_large"),
            (CallError::Malformed, "malformed_response"),
            (CallError::PoolExhausted, "pool_exhausted"),
            (CallError::Resolve, "resolve_error"),
        ];
        for (e, name) in all {
            assert_eq!((e.reason(), e.to_string()), (name, name.to_string()));
        }
    }

    /// A loopback buyer answering `ok` with keep-alive; the request numbered
    /// `hang_up_on` (from 1) is read whole and the connection closed
    /// without an answer. Returns its address and request counter.
    fn keep_alive_buyer(hang_up_on: usize) -> (SocketAddr, Arc<AtomicU64>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    loop {
                        let mut len = 0usize;
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                // Hold our end open a while: the client's
                                // peek must not see this close.
                                std::thread::sleep(Duration::from_secs(2));
                                return;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        if n as usize == hang_up_on {
                            return;
                        }
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        w.write_all(ok).unwrap();
                    }
                });
            }
        });
        (addr, seen)
    }

    fn client_of(addr: SocketAddr) -> Arc<BuyerClient> {
        let url = crate::http::url::parse(&format!("http://{addr}/")).unwrap();
        Arc::new(BuyerClient::new(&url, ClientOptions::default()).unwrap())
    }

    fn post_now(c: &Arc<BuyerClient>) -> Result<u16, CallError> {
        let c = c.clone();
        crate::rt::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            c.post("/p", &[], "text/plain", b"lead", deadline)
                .map(|r| r.status)
        })
        .join()
        .unwrap()
    }

    /// Issue #9: a pooled connection that died before the write (the OS
    /// took no byte) is replaced once by a fresh one; the buyer sees the
    /// request once.
    #[test]
    fn a_pooled_connection_dead_before_the_write_is_retried_once_fresh() {
        let (addr, seen) = keep_alive_buyer(usize::MAX);
        let c = client_of(addr);
        assert_eq!(post_now(&c), Ok(200));
        c.idle.lock().last().expect("pooled").transport.shut_write();
        assert_eq!(post_now(&c), Ok(200), "sent again on a fresh connection");
        assert_eq!(c.stats().retried_unsent.load(Ordering::Relaxed), 1);
        assert_eq!(c.stats().created.load(Ordering::Relaxed), 2);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            2,
            "each request reached the buyer once"
        );
    }

    /// A request written on a pooled connection that then fails (the buyer
    /// read it and hung up) is never sent again: it may have been seen.
    #[test]
    fn a_written_request_is_never_sent_again() {
        let (addr, seen) = keep_alive_buyer(2);
        let c = client_of(addr);
        assert_eq!(post_now(&c), Ok(200));
        assert_eq!(post_now(&c), Err(CallError::Io));
        assert_eq!(c.stats().retried_unsent.load(Ordering::Relaxed), 0);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            2,
            "the second request once, never again"
        );
    }

    #[test]
    fn defaults_come_from_limits() {
        let o = ClientOptions::default();
        assert_eq!(o.connections_max, limits::BUYER_CONNECTIONS_MAX);
        assert_eq!(o.idle_max, limits::BUYER_IDLE_CONNECTIONS_MAX);
        assert_eq!(o.response_bytes_max, limits::BUYER_RESPONSE_BYTES_MAX);
        assert!(o.extra_root_pem.is_none());
    }

    #[test]
    fn an_ip_literal_needs_no_dns_and_a_past_deadline_fails_fast() {
        let url = crate::http::url::parse("http://127.0.0.1:9/").unwrap();
        let c = BuyerClient::new(&url, ClientOptions::default()).unwrap();
        assert_eq!(c.addrs, vec!["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
        let r = c.post("/", &[], "text/plain", b"", Instant::now());
        assert_eq!(r, Err(CallError::Timeout));
        assert_eq!(c.stats().created.load(Ordering::Relaxed), 0);
    }
}
