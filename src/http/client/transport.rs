//! Connections to a buyer: a may TCP socket whose every read and write is
//! bounded by the call's deadline, optionally wrapped in rustls.
//!
//! may sockets yield the coroutine instead of blocking the worker. The
//! deadline is not a may socket timeout: may 0.3.51's io timers break under
//! load (a stress program makes may panic in them; docs/performance.md, "A
//! crash under load"). Each call arms its deadline once on the socket's
//! `http::deadline::Watch` (the connect too: no `connect_timeout`); when it
//! passes, the reaper shuts the socket down, the pending connect, read or
//! write ends, and it is reported as a time-out. A buyer that trickles its
//! bytes still cannot stretch the call.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::CallError;
use crate::http::deadline::Watch;
use crate::limits;

/// A may TCP stream that refuses to wait past `deadline`.
pub(crate) struct DeadlineTcp {
    // Declared before `tcp`: dropped (disarmed) before the socket closes.
    watch: Watch,
    tcp: TcpStream,
    deadline: Instant,
    /// Bytes the OS accepted from us on this socket, ever: a call that
    /// failed with this unchanged wrote nothing the buyer could have seen.
    sent_bytes: u64,
}

impl DeadlineTcp {
    fn new(tcp: TcpStream, deadline: Instant) -> DeadlineTcp {
        let watch = Watch::new(tcp.as_raw_fd());
        watch.arm(deadline);
        DeadlineTcp {
            watch,
            tcp,
            deadline,
            sent_bytes: 0,
        }
    }

    /// Arms a new call's deadline.
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.watch.arm(deadline);
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
    }

    /// Runs `op` unless the deadline has passed. An op the reaper cut short
    /// (EOF or an error after the shutdown) is reported as a time-out.
    fn bounded(
        &mut self,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.watch.fired() || Instant::now() >= self.deadline {
            return Err(Self::timed_out());
        }
        crate::sync::will_park("a buyer socket read or write");
        match op(&mut self.tcp) {
            Ok(0) | Err(_) if self.watch.fired() => Err(Self::timed_out()),
            other => other,
        }
    }
}

impl Read for DeadlineTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.bounded(|tcp| tcp.read(buf))
    }
}

impl Write for DeadlineTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.bounded(|tcp| tcp.write(buf))?;
        self.sent_bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// `left` rounded UP to whole milliseconds, at least 1 ms. may keeps socket
/// and park timeouts in whole milliseconds, truncating, and reads 0 ms as
/// "no timeout": 0.6 ms left would wait forever and 49.9 ms would fire at
/// 49 ms. Rounding up makes the timer fire at or after the deadline; callers
/// loop while time is left, so a call ends within a millisecond after it.
pub(crate) fn may_timeout(left: Duration) -> Duration {
    let ms = left.as_nanos().div_ceil(1_000_000).max(1);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// One open connection to a buyer. The TLS state is boxed: it is several
/// KiB and a coroutine stack is only `limits::COROUTINE_STACK_BYTES`.
pub(crate) enum Transport {
    Plain(DeadlineTcp),
    Tls(Box<StreamOwned<ClientConnection, DeadlineTcp>>),
}

impl Transport {
    fn tcp(&self) -> &DeadlineTcp {
        match self {
            Transport::Plain(t) => t,
            Transport::Tls(s) => &s.sock,
        }
    }

    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        match self {
            Transport::Plain(t) => t.set_deadline(deadline),
            Transport::Tls(s) => s.sock.set_deadline(deadline),
        }
    }

    /// Bytes the OS accepted on this connection so far (TLS records
    /// included): unchanged across a failed call means nothing of it left.
    pub(crate) fn sent_bytes(&self) -> u64 {
        self.tcp().sent_bytes
    }

    /// Test seam: shuts our sending side, so the next write fails at once
    /// with nothing written while a peek still sees a live socket — the
    /// race a pooled connection loses when the buyer closes it between the
    /// stale check and the write.
    #[cfg(test)]
    pub(crate) fn shut_write(&self) {
        let _ = self.tcp().tcp.inner().shutdown(std::net::Shutdown::Write);
    }

    /// Ends the call's deadline; true when it had fired (the socket is shut
    /// down and must not be pooled).
    pub(crate) fn disarm(&self) -> bool {
        self.tcp().watch.disarm()
    }

    /// True when an idle connection can no longer carry a request: the
    /// server closed it (EOF, close_notify), reset it, or sent bytes nobody
    /// asked for. The probe is a non-blocking peek on the OS socket (may
    /// keeps it non-blocking), so it never yields.
    ///
    /// For TLS, bytes nobody asked for may already sit decrypted inside
    /// rustls, where no socket peek sees them: rustls reads whole records,
    /// and the response reader takes only what it asked for. Such a
    /// connection would hand those bytes to the next call as its answer, so
    /// it is stale too. (A record rustls holds only part of has its rest
    /// still on the socket, where the peek sees it, or still in flight.)
    ///
    /// TLS records waiting on the socket are read into rustls first (a
    /// non-blocking read of the OS socket, never a yield): a connection
    /// warmed before its first call (`exchange::preconnect`) has the
    /// server's post-handshake messages (TLS 1.3 session tickets) there,
    /// which carry no data and leave it good.
    pub(crate) fn is_stale(&mut self) -> bool {
        if let Transport::Tls(s) = self {
            let StreamOwned { conn, sock } = &mut **s;
            for _ in 0..limits::BUYER_STALE_TLS_READS_MAX {
                let mut os = sock.tcp.inner();
                match conn.read_tls(&mut os) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return true,
                }
                match conn.process_new_packets() {
                    Ok(io) if io.plaintext_bytes_to_read() == 0 && !io.peer_has_closed() => {}
                    _ => return true,
                }
            }
            match conn.process_new_packets() {
                Ok(io) if io.plaintext_bytes_to_read() == 0 && !io.peer_has_closed() => {}
                _ => return true,
            }
        }
        let mut probe = [0u8; 1];
        match self.tcp().tcp.inner().peek(&mut probe) {
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(t) => t.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(t) => t.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(t) => t.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// What it takes to open a TLS session to one buyer.
pub(crate) struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Opens a connection: TCP to the first address that answers, then the TLS
/// handshake when `tls` is given, all before `deadline`.
pub(crate) fn connect(
    addrs: &[SocketAddr],
    tls: Option<&TlsTarget>,
    deadline: Instant,
) -> Result<Transport, CallError> {
    let sock = connect_tcp(addrs, deadline)?;
    // Requests leave in one write and buyers answer at once; Nagle would
    // only add latency.
    sock.tcp.set_nodelay(true).map_err(|_| CallError::Connect)?;
    let Some(tls) = tls else {
        return Ok(Transport::Plain(sock));
    };
    let conn = ClientConnection::new(tls.config.clone(), tls.server_name.clone())
        .map_err(|_| CallError::Tls)?;
    let mut stream = Box::new(StreamOwned::new(conn, sock));
    while stream.conn.is_handshaking() {
        let StreamOwned { conn, sock } = &mut *stream;
        conn.complete_io(sock)
            .map_err(|e| handshake_error(&e, deadline))?;
    }
    Ok(Transport::Tls(stream))
}

fn connect_tcp(addrs: &[SocketAddr], deadline: Instant) -> Result<DeadlineTcp, CallError> {
    let mut last = CallError::Connect;
    for addr in addrs {
        if Instant::now() >= deadline {
            return Err(CallError::Timeout);
        }
        match connect_one(addr, deadline) {
            Ok(sock) => return Ok(sock),
            Err(e) if is_timeout(&e) => last = CallError::Timeout,
            Err(_) => last = CallError::Connect,
        }
    }
    Err(last)
}

/// Connects without may's `connect_timeout` (its io timer is the one that
/// breaks under load): a non-blocking connect, handed to may, watched by
/// the call's `Watch`. While the handshake runs a zero-length write answers
/// EAGAIN, so may parks the coroutine until the socket is writable; then it
/// answers 0 (connected) or the connect error (refused, unreachable). When
/// the deadline passes first, the reaper's shutdown ends the wait.
fn connect_one(addr: &SocketAddr, deadline: Instant) -> io::Result<DeadlineTcp> {
    use std::os::fd::{FromRawFd, IntoRawFd};

    let socket = socket2::Socket::new(
        socket2::Domain::for_address(*addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_nonblocking(true)?;
    match socket.connect(&(*addr).into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: the fd is a TCP socket this function just created and owns;
    // `into_raw_fd` gives up socket2's ownership, so may's stream is its
    // only owner and closes it once.
    #[allow(unsafe_code)]
    let tcp = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
    let mut sock = DeadlineTcp::new(tcp, deadline);
    sock.bounded(|tcp| tcp.write(&[]))?;
    Ok(sock)
}

fn handshake_error(e: &io::Error, deadline: Instant) -> CallError {
    if is_timeout(e) || Instant::now() >= deadline {
        CallError::Timeout
    } else {
        // A refused certificate, a protocol error, or the peer hanging up
        // mid-handshake: all mean this buyer's TLS setup failed.
        CallError::Tls
    }
}

/// True when an I/O error came from rustls (bad record, alert) rather than
/// from the socket.
pub(crate) fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

/// The client TLS config for one buyer: the Mozilla roots plus any extra CA
/// from the options. The crypto provider and protocol versions are named
/// here rather than taken from process-wide defaults.
pub(crate) fn tls_config(extra_root_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, CallError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_root_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(|_| CallError::Tls)?)
                .map_err(|_| CallError::Tls)?;
            added += 1;
        }
        if added == 0 {
            return Err(CallError::Tls);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| CallError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn may_timeouts_round_up_and_are_never_zero() {
        let ms = Duration::from_millis;
        assert_eq!(may_timeout(Duration::from_nanos(1)), ms(1));
        assert_eq!(may_timeout(Duration::from_micros(600)), ms(1));
        assert_eq!(may_timeout(Duration::from_micros(49_900)), ms(50));
        assert_eq!(may_timeout(ms(50)), ms(50));
    }

    /// A call's reads and writes leave may's io timers alone (they break
    /// under load; docs/performance.md, "A crash under load"): the deadline
    /// lives in the socket's `Watch`. Fails if `bounded` goes back to
    /// `set_read_timeout`/`set_write_timeout`.
    #[test]
    fn a_call_arms_no_may_socket_timeout() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        });
        let got = crate::rt::spawn(move || {
            let Ok(mut t) = connect(&[addr], None, Instant::now() + Duration::from_secs(10)) else {
                panic!("connect to the local peer failed");
            };
            t.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            t.read_exact(&mut b).unwrap();
            let tcp = &t.tcp().tcp;
            (
                tcp.read_timeout().unwrap(),
                tcp.write_timeout().unwrap(),
                t.disarm(),
            )
        })
        .join()
        .unwrap();
        peer.join().unwrap();
        assert_eq!(got, (None, None, false));
    }

    /// A connect that gets no answer (the listener's accept queue is full,
    /// so the kernel drops the SYN) ends at the deadline as a time-out,
    /// through the `Watch`, not may's `connect_timeout`; a closed port is a
    /// connect error at once.
    #[test]
    fn an_unanswered_connect_times_out_at_the_deadline_and_a_refused_one_fails() {
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the accept queue (never accepted) until a connect goes unanswered.
        let mut held = Vec::new();
        for _ in 0..16 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (silent, refused) = crate::rt::spawn(move || {
            let silent = connect(&[addr], None, Instant::now() + Duration::from_millis(300)).err();
            let refused = connect(&[closed], None, Instant::now() + Duration::from_secs(5)).err();
            (silent, refused)
        })
        .join()
        .unwrap();
        drop(held);
        assert!(matches!(silent, Some(CallError::Timeout)), "{silent:?}");
        assert!(matches!(refused, Some(CallError::Connect)), "{refused:?}");
    }
}
