//! One client connection, in its own coroutine: read into a buffer, answer
//! every complete (pipelined) request in it, write all answers at once.
//!
//! Time-outs are read deadlines recomputed before each read: the idle time-out
//! while no request has begun, else what is left of the request's deadline, so
//! a client trickling bytes (slowloris) cannot stretch a request. They live on
//! an `http::deadline::Watch` (a passed one shuts reading down), not on may's
//! socket timeouts, which break under load (docs/performance.md, "A crash
//! under load"); writes have a second watch (a passed one shuts the socket
//! down), armed for `flush` and disarmed before the connection waits again.
//! Error answers
//! are followed by a short bounded "lingering close" so the client reads the
//! answer instead of a reset caused by its unread bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::codec::{self, Decoded, HttpError, Limits, Parsed, Pending, Progress};
use super::tls::{self, Handshake};
use super::{ConnSlot, Handler, Head, Port, Request, Response, Shared};
use crate::http::deadline::Watch;
use crate::limits;

/// Answers piling up past this are written before more are encoded.
const WRITE_BUFFER_FLUSH_BYTES: usize = 64 * 1024;

/// What to do after answering what is buffered.
enum Step {
    Read,
    /// Answered with `Connection: close`.
    Close,
    /// Answered with an error; the rest of the input is not trusted.
    Fail,
    /// Answers piled up past `WRITE_BUFFER_FLUSH_BYTES`: write them, then go on
    /// answering what is buffered (a pipelining client cannot grow `wbuf`).
    Flush,
}

/// Outcome of one read.
enum Fill {
    Data,
    Closed,
    RequestTimeout,
    TooLarge,
}

struct Conn {
    // Before `stream`: dropped (disarmed) before the socket closes.
    watch: Watch,
    /// The write deadline of `flush`: a passed one shuts the socket down
    /// both ways (an answer nobody reads is given up).
    write_watch: Watch,
    stream: may::net::TcpStream,
    /// The TLS session on an HTTPS listener (boxed: several KiB, and a
    /// coroutine stack is small); reads and writes go through it.
    tls: Option<Box<rustls::ServerConnection>>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: Option<Arc<ConnSlot>>,
    lim: Limits,
    buf: Vec<u8>,
    /// Unread input is `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes the current request needs in the buffer, when known.
    want: usize,
    /// How far decoding the current (incomplete) request got.
    progress: Progress,
    wbuf: Vec<u8>,
    /// When the request that has begun must be complete.
    deadline: Option<Instant>,
    /// When the buffered input was last read — or, for a pipelined request
    /// behind one just answered, when that answer was ready.
    read_at: Instant,
    head_at: Option<Instant>,
    continue_sent: bool,
    /// The handler has passed the current request's head (`check_head`).
    head_checked: bool,
}

/// Serves one accepted connection until it closes.
pub(super) fn serve<H: Handler>(
    stream: may::net::TcpStream,
    peer: SocketAddr,
    port: Port,
    shared: Arc<Shared>,
    handler: Arc<H>,
) {
    let slot = register(&stream, &shared);
    let _registered = Registered {
        shared: shared.clone(),
        id: slot.as_ref().map(|s| s.0),
        port,
    };
    let lim = shared.opts.limits();
    // The probe listener is loopback plain HTTP, for the watchdog.
    let tls = match (&shared.opts.tls, port) {
        (Some(t), Port::Main) => match t.session() {
            Some(session) => Some(session),
            None => return,
        },
        _ => None,
    };
    let mut conn = Conn {
        watch: Watch::reads(stream.as_raw_fd()),
        write_watch: Watch::new(stream.as_raw_fd()),
        stream,
        tls,
        peer,
        shared,
        slot: slot.map(|s| s.1),
        lim,
        buf: vec![0; limits::SERVER_READ_BUFFER_BYTES],
        start: 0,
        end: 0,
        want: 0,
        progress: Progress::default(),
        wbuf: Vec::new(),
        deadline: None,
        read_at: Instant::now(),
        head_at: None,
        continue_sent: false,
        head_checked: false,
    };
    if conn.tls.is_some() && !conn.handshake(&*handler) {
        return;
    }
    conn.run(&*handler);
}

/// Puts the connection where the drain can find it. Without a duplicate fd
/// (fd exhaustion) it is still served, just closed by its idle time-out.
fn register(stream: &may::net::TcpStream, shared: &Shared) -> Option<(u64, Arc<ConnSlot>)> {
    let sock = match stream.inner().try_clone() {
        Ok(sock) => sock,
        Err(e) => {
            log::warn!("http server: cannot register connection for drain: {e}");
            return None;
        }
    };
    let slot = Arc::new(ConnSlot {
        sock,
        idle: AtomicBool::new(false),
    });
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    shared.conns.lock().insert(id, slot.clone());
    Some((id, slot))
}

/// Unregisters and counts the connection closed, however `serve` ends.
struct Registered {
    shared: Arc<Shared>,
    id: Option<u64>,
    port: Port,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.conns.lock().remove(&id);
        }
        let stats = &self.shared.stats;
        let open = if self.port == Port::Probe {
            &stats.probe_connections_open
        } else {
            &stats.connections_open
        };
        open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Over `connections_max`: a best-effort 503 without waiting (the accept
/// loop must not block on one client), then close. On an HTTPS listener
/// just the close: plain bytes would be garbage to a TLS client, and a
/// handshake would mean waiting.
pub(super) fn refuse_overloaded<H: Handler>(stream: may::net::TcpStream, handler: &H, tls: bool) {
    if tls {
        return;
    }
    let mut out = Vec::new();
    codec::encode(
        &handler.error_response(&HttpError::Overloaded),
        false,
        false,
        false,
        &mut out,
    );
    let mut sock: &std::net::TcpStream = stream.inner();
    let _ = sock.write(&out);
}

impl Conn {
    /// The TLS handshake, bounded by the shorter of the idle and request
    /// time-outs from now (a watch that shuts the socket down both ways).
    /// False: the connection is done (a plain HTTP client got a plain 400
    /// saying this port speaks HTTPS).
    fn handshake<H: Handler>(&mut self, handler: &H) -> bool {
        let opts = &self.shared.opts;
        let budget = ms(opts.idle_timeout_ms.min(opts.request_timeout_ms));
        self.write_watch.arm(Instant::now() + budget);
        let Some(session) = self.tls.as_deref_mut() else {
            return true;
        };
        let outcome = tls::handshake(session, &mut self.stream, &mut self.buf);
        let fired = self.write_watch.disarm();
        match outcome {
            Handshake::Done if !fired => true,
            Handshake::PlainHttp if !fired => {
                self.shared
                    .stats
                    .protocol_errors_total
                    .fetch_add(1, Ordering::Relaxed);
                self.tls = None;
                let e = HttpError::BadRequest("this port speaks HTTPS only");
                codec::encode(
                    &handler.error_response(&e),
                    false,
                    false,
                    false,
                    &mut self.wbuf,
                );
                self.flush();
                self.close(true);
                false
            }
            _ => {
                self.shared
                    .stats
                    .tls_handshake_failures_total
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self.stream.shutdown(Shutdown::Both);
                false
            }
        }
    }

    /// One read of request bytes (plaintext) into `buf[end..]`. What TLS
    /// queued meanwhile (a key update's answer, an alert) is sent under
    /// the write deadline.
    fn read_some(&mut self) -> std::io::Result<usize> {
        let into = &mut self.buf[self.end..];
        let Some(session) = self.tls.as_deref_mut() else {
            return self.stream.read(into);
        };
        let read = tls::read(session, &mut self.stream, into);
        if session.wants_write() {
            let deadline = Instant::now() + ms(self.shared.opts.write_timeout_ms);
            self.write_watch.arm(deadline);
            let sent = tls::send_pending(session, &mut self.stream);
            if self.write_watch.disarm() || sent.is_err() {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
        }
        read
    }

    fn run<H: Handler>(&mut self, handler: &H) {
        let _ = self.stream.set_nodelay(true);
        loop {
            let step = self.answer_buffered(handler);
            if !self.flush() {
                return;
            }
            match step {
                Step::Read => {}
                Step::Flush => continue,
                Step::Close => return self.close(false),
                Step::Fail => return self.close(true),
            }
            match self.fill() {
                Fill::Data => {}
                Fill::Closed => return,
                Fill::RequestTimeout => return self.timed_out(handler),
                Fill::TooLarge => {
                    self.shared
                        .stats
                        .protocol_errors_total
                        .fetch_add(1, Ordering::Relaxed);
                    codec::encode(
                        &handler.error_response(&HttpError::BodyTooLarge),
                        false,
                        false,
                        false,
                        &mut self.wbuf,
                    );
                    self.flush();
                    return self.close(true);
                }
            }
        }
    }

    /// Decodes and answers every complete request in the buffer.
    fn answer_buffered<H: Handler>(&mut self, handler: &H) -> Step {
        while self.start < self.end {
            let mut storage = [httparse::EMPTY_HEADER; limits::HEADERS_MAX];
            let headers = &mut storage[..self.lim.headers_max];
            let input = &mut self.buf[self.start..self.end];
            let parsed = match codec::decode_resume(input, &self.lim, headers, &mut self.progress) {
                Ok(Decoded::Complete(parsed)) => parsed,
                Ok(Decoded::Partial(pending)) => {
                    if pending.head_done && !self.head_checked {
                        self.head_checked = true;
                        if !self.check_partial_head(handler) {
                            return Step::Fail;
                        }
                    }
                    self.note_pending(pending);
                    return Step::Read;
                }
                Err(e) => {
                    self.shared
                        .stats
                        .protocol_errors_total
                        .fetch_add(1, Ordering::Relaxed);
                    let response = handler.error_response(&e);
                    codec::encode(&response, false, false, false, &mut self.wbuf);
                    return Step::Fail;
                }
            };
            let received_at = self.head_at.take().unwrap_or(self.read_at);
            let head_checked = std::mem::take(&mut self.head_checked);
            let ctx = AnswerCtx {
                shared: &self.shared,
                peer: self.peer,
                received_at,
                head_checked,
            };
            let (len, keep_alive) = answer(handler, &ctx, parsed, &mut self.wbuf);
            // What is still buffered is a pipelined request the server only
            // turns to now: its time (and a ping's deadline) starts here, not
            // when its bytes came in with the one just answered.
            self.read_at = Instant::now();
            self.start += len;
            self.want = 0;
            self.progress = Progress::default();
            self.deadline = None;
            self.continue_sent = false;
            if !keep_alive {
                return Step::Close;
            }
            if self.wbuf.len() > WRITE_BUFFER_FLUSH_BYTES {
                return Step::Flush;
            }
        }
        Step::Read
    }

    /// Shows the handler the head of a request whose body is still to come
    /// (before `100 Continue`, before any wait for the body). False: it was
    /// refused, the refusal is in `wbuf` and the connection must close — the
    /// body stays unread.
    fn check_partial_head<H: Handler>(&mut self, handler: &H) -> bool {
        let received_at = *self.head_at.get_or_insert(self.read_at);
        let mut storage = [httparse::EMPTY_HEADER; limits::HEADERS_MAX];
        let headers = &mut storage[..self.lim.headers_max];
        let Ok(Some(h)) = codec::decode_head(&self.buf[self.start..self.end], &self.lim, headers)
        else {
            // `decode` has just parsed this head; nothing to check otherwise.
            return true;
        };
        let head = Head {
            method: h.method,
            path: h.path,
            query: h.query,
            headers: h.headers,
            body_bytes: h.body_bytes,
            peer: self.peer,
            received_at,
        };
        let Err(refusal) = check_head(handler, &head) else {
            return true;
        };
        let stats = &self.shared.stats;
        stats.requests_total.fetch_add(1, Ordering::Relaxed);
        stats.refused_on_head_total.fetch_add(1, Ordering::Relaxed);
        codec::encode(
            &refusal,
            false,
            false,
            head.method == "HEAD",
            &mut self.wbuf,
        );
        false
    }

    fn note_pending(&mut self, pending: Pending) {
        self.want = pending.len_hint;
        if pending.head_done {
            self.head_at.get_or_insert(self.read_at);
            if pending.expect_continue && !self.continue_sent {
                self.wbuf.extend_from_slice(codec::CONTINUE);
                self.continue_sent = true;
            }
        }
    }

    /// Reads once, with the time-out that applies now.
    fn fill(&mut self) -> Fill {
        if !self.make_room() {
            return Fill::TooLarge;
        }
        let idle = self.start == self.end;
        let timeout = if idle {
            self.set_idle(true);
            if self.shared.draining.load(Ordering::SeqCst) {
                return Fill::Closed;
            }
            ms(self.shared.opts.idle_timeout_ms)
        } else {
            let request_timeout = ms(self.shared.opts.request_timeout_ms);
            let deadline = *self
                .deadline
                .get_or_insert_with(|| Instant::now() + request_timeout);
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return Fill::RequestTimeout,
            }
        };
        self.watch.arm(Instant::now() + timeout);
        crate::sync::will_park("a server socket read");
        let read = self.read_some();
        // A passed deadline shut reading down: the read ended with EOF.
        let fired = self.watch.disarm();
        if idle {
            self.set_idle(false);
        }
        match read {
            Ok(0) | Err(_) if fired => {
                if idle {
                    Fill::Closed
                } else {
                    Fill::RequestTimeout
                }
            }
            Ok(0) => Fill::Closed,
            Ok(n) => {
                self.end += n;
                self.read_at = Instant::now();
                if idle {
                    self.deadline = Some(self.read_at + ms(self.shared.opts.request_timeout_ms));
                }
                Fill::Data
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                if idle {
                    Fill::Closed
                } else {
                    Fill::RequestTimeout
                }
            }
            Err(_) => Fill::Closed,
        }
    }

    /// Makes space to read into: resets an empty buffer (shrinking one a big
    /// request grew), slides a partial request to the front, or grows up to
    /// the most one request can need. False if the request cannot fit.
    fn make_room(&mut self) -> bool {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            shrink_read_buffer(&mut self.buf);
        }
        let need = self.want.max(self.end - self.start + 1);
        if self.start > 0 && self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if need > self.buf.len() {
            let max = self.lim.request_bytes_max();
            if self.buf.len() >= max {
                return false;
            }
            let len = need.max(self.buf.len() * 2).min(max);
            self.buf.resize(len, 0);
        }
        true
    }

    fn set_idle(&self, idle: bool) {
        if let Some(slot) = &self.slot {
            slot.idle.store(idle, Ordering::SeqCst);
        }
    }

    /// Writes everything answered so far in one go; false if the client is
    /// gone or does not read it all within `write_timeout_ms` (one deadline
    /// for the whole buffer, so a client reading a byte at a time cannot
    /// hold the coroutine).
    fn flush(&mut self) -> bool {
        if self.wbuf.is_empty() {
            return true;
        }
        let deadline = Instant::now() + ms(self.shared.opts.write_timeout_ms);
        // Re-arming a later deadline queues nothing new (`http::deadline`),
        // so a keep-alive connection pays one reaper entry per write timeout.
        self.write_watch.arm(deadline);
        let mut written = 0;
        let ok = loop {
            if written == self.wbuf.len() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            crate::sync::will_park("a server socket write");
            let rest = &self.wbuf[written..];
            let sent = match self.tls.as_deref_mut() {
                Some(session) => tls::write(session, &mut self.stream, rest),
                None => self.stream.write(rest),
            };
            match sent {
                Ok(0) | Err(_) => break false,
                Ok(n) => written += n,
            }
        };
        // Idle next: no deadline may fire on a connection that waits.
        let fired = self.write_watch.disarm();
        shrink_write_buffer(&mut self.wbuf);
        ok && !fired
    }

    fn timed_out<H: Handler>(&mut self, handler: &H) {
        self.shared
            .stats
            .timeouts_total
            .fetch_add(1, Ordering::Relaxed);
        codec::encode(
            &handler.error_response(&HttpError::RequestTimeout),
            false,
            false,
            false,
            &mut self.wbuf,
        );
        self.flush();
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Closes after a final answer. With unread input (or after an error)
    /// the input is drained for a bounded time first: closing a socket with
    /// unread bytes sends a reset that can destroy the answer in flight.
    fn close(&mut self, after_error: bool) {
        if let Some(session) = self.tls.as_deref_mut() {
            self.write_watch
                .arm(Instant::now() + ms(limits::SERVER_LINGER_MS));
            tls::close_notify(session, &mut self.stream);
            self.write_watch.disarm();
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        if !after_error && self.start == self.end {
            return;
        }
        let until = Instant::now() + ms(limits::SERVER_LINGER_MS);
        let mut drained = 0;
        while drained < limits::SERVER_LINGER_BYTES_MAX {
            let Some(left) = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return;
            };
            self.watch.arm(Instant::now() + left);
            crate::sync::will_park("a server socket read");
            match self.stream.read(&mut self.buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }
}

/// What `answer` needs from the connection besides the request.
struct AnswerCtx<'a> {
    shared: &'a Shared,
    peer: SocketAddr,
    received_at: Instant,
    /// `check_head` already passed this request while its body was read.
    head_checked: bool,
}

/// Runs the handler on one request and encodes its answer; returns the bytes
/// the request used and whether the connection stays open.
fn answer<H: Handler>(
    handler: &H,
    ctx: &AnswerCtx<'_>,
    parsed: Parsed<'_>,
    wbuf: &mut Vec<u8>,
) -> (usize, bool) {
    let Parsed {
        method,
        path,
        query,
        headers,
        body,
        len,
        keep_alive,
        http10,
    } = parsed;
    let shared = ctx.shared;
    let head_only = method == "HEAD";
    let (peer, received_at) = (ctx.peer, ctx.received_at);
    let mut req = Request {
        method,
        path,
        query,
        headers,
        body,
        peer,
        received_at,
    };
    let result = call_handler(handler, shared, &mut req, ctx.head_checked);
    shared.stats.requests_total.fetch_add(1, Ordering::Relaxed);
    // Checked after the handler: a drain that began meanwhile closes this one.
    let keep_alive = keep_alive && result.is_ok() && !shared.draining.load(Ordering::SeqCst);
    let response = result.unwrap_or_else(|e| handler.error_response(&e));
    codec::encode(&response, keep_alive, http10, head_only, wbuf);
    (len, keep_alive)
}

/// Counts the call in flight and turns a handler panic into a 500, so one
/// bad request cannot take its connection's counters or peers with it. A
/// request that arrived whole is shown to `check_head` here, so every
/// request passes the same gate whatever its packets looked like.
fn call_handler<H: Handler>(
    handler: &H,
    shared: &Shared,
    req: &mut Request<'_>,
    head_checked: bool,
) -> Result<Response, HttpError> {
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&shared.in_flight);
    if !head_checked {
        if let Err(refusal) = check_head(handler, &req.head()) {
            return Ok(refusal);
        }
    }
    catch_unwind(AssertUnwindSafe(|| handler.handle(req))).map_err(|_| {
        log::error!(
            "http server: handler panicked on {} {}",
            req.method,
            req.path
        );
        HttpError::Internal
    })
}

/// `Handler::check_head`, with a panic turned into a 500.
fn check_head<H: Handler>(handler: &H, head: &Head<'_>) -> Result<(), Response> {
    catch_unwind(AssertUnwindSafe(|| handler.check_head(head))).unwrap_or_else(|_| {
        log::error!(
            "http server: check_head panicked on {} {}",
            head.method,
            head.path
        );
        Err(handler.error_response(&HttpError::Internal))
    })
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An empty read buffer that a large request grew goes back to its initial
/// size: an idle keep-alive connection holds `SERVER_READ_BUFFER_BYTES`, not
/// its largest request (16,384 idle connections × 1 MiB would be 16 GiB).
fn shrink_read_buffer(buf: &mut Vec<u8>) {
    if buf.len() > limits::SERVER_READ_BUFFER_BYTES {
        *buf = vec![0; limits::SERVER_READ_BUFFER_BYTES];
    }
}

/// Empties the write buffer once written, keeping at most
/// `SERVER_WRITE_BUFFER_KEEP_BYTES` of capacity for the next answers.
fn shrink_write_buffer(wbuf: &mut Vec<u8>) {
    wbuf.clear();
    if wbuf.capacity() > limits::SERVER_WRITE_BUFFER_KEEP_BYTES {
        *wbuf = Vec::new();
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #7 point 4: an idle connection used to keep a read buffer of up
    /// to 16 KiB and a write buffer of up to 64 KiB after a large request.
    #[test]
    fn idle_buffers_shrink_back_after_a_large_request() {
        let mut buf = vec![0u8; 4 * limits::SERVER_READ_BUFFER_BYTES];
        shrink_read_buffer(&mut buf);
        assert_eq!(buf.len(), limits::SERVER_READ_BUFFER_BYTES);
        let mut small = vec![0u8; limits::SERVER_READ_BUFFER_BYTES];
        let ptr = small.as_ptr();
        shrink_read_buffer(&mut small);
        assert_eq!(
            small.as_ptr(),
            ptr,
            "a buffer of the initial size is kept as is"
        );

        let mut wbuf = Vec::with_capacity(60 * 1024);
        wbuf.extend_from_slice(&[1; 50 * 1024]);
        shrink_write_buffer(&mut wbuf);
        assert!(wbuf.is_empty() && wbuf.capacity() <= limits::SERVER_WRITE_BUFFER_KEEP_BYTES);
        let mut wsmall = Vec::with_capacity(1024);
        wsmall.push(1);
        shrink_write_buffer(&mut wsmall);
        assert!(
            wsmall.is_empty() && wsmall.capacity() >= 1024,
            "small buffers are reused"
        );
    }
}
