//! Connections to a buyer: a may TCP socket whose every read and write is
//! bounded by the call's deadline, optionally wrapped in rustls.
//!
//! may sockets yield the coroutine instead of blocking the worker, and may's
//! socket timeout applies to each wait, not to the call; so the remaining
//! time is re-armed before every read and write, which makes the deadline
//! hold however the buyer trickles its bytes.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::CallError;

/// A may TCP stream that refuses to wait past `deadline`.
pub(crate) struct DeadlineTcp {
    tcp: TcpStream,
    deadline: Instant,
}

impl DeadlineTcp {
    /// Time left as a may timeout, or a TimedOut error once the deadline
    /// has passed.
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        Ok(may_timeout(left))
    }

    /// Runs `op` with the socket timeout set to the time left. may's timer
    /// can fire a little early; then the op is retried with what is left, so
    /// a call never reports Timeout before its deadline.
    fn bounded<T>(
        &mut self,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<T>,
        read: bool,
    ) -> io::Result<T> {
        loop {
            let left = self.remaining()?;
            if read {
                self.tcp.set_read_timeout(Some(left))?;
            } else {
                self.tcp.set_write_timeout(Some(left))?;
            }
            crate::sync::will_park("a buyer socket read or write");
            match op(&mut self.tcp) {
                Err(e) if is_timeout(&e) && Instant::now() < self.deadline => continue,
                other => return other,
            }
        }
    }
}

impl Read for DeadlineTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.bounded(|tcp| tcp.read(buf), true)
    }
}

impl Write for DeadlineTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bounded(|tcp| tcp.write(buf), false)
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
            Transport::Plain(t) => t.deadline = deadline,
            Transport::Tls(s) => s.sock.deadline = deadline,
        }
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
    pub(crate) fn is_stale(&mut self) -> bool {
        if let Transport::Tls(s) = self {
            match s.conn.process_new_packets() {
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
    let tcp = connect_tcp(addrs, deadline)?;
    // Requests leave in one write and buyers answer at once; Nagle would
    // only add latency.
    tcp.set_nodelay(true).map_err(|_| CallError::Connect)?;
    let sock = DeadlineTcp { tcp, deadline };
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

fn connect_tcp(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, CallError> {
    let mut last = CallError::Connect;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::Timeout);
        }
        crate::sync::will_park("a buyer connect");
        match TcpStream::connect_timeout(addr, may_timeout(left)) {
            Ok(tcp) => return Ok(tcp),
            Err(e) if is_timeout(&e) => last = CallError::Timeout,
            Err(_) => last = CallError::Connect,
        }
    }
    Err(last)
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
}
