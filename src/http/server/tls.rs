//! HTTPS on the server's main listener (contract §12 `[server.tls]`):
//! rustls driven by hand over the connection's may socket, on the
//! connection's own coroutine.
//!
//! rustls does no I/O itself: it takes ciphertext (`read_tls`), hands out
//! plaintext (`reader`) and queues ciphertext to send (`write_tls`). Every
//! socket wait here is a may read or write (it parks the coroutine, never
//! the worker), preceded by `sync::will_park` and bounded by the caller's
//! `http::deadline::Watch` — no may socket timeout. The handshake runs
//! before the first request is read, under one deadline (the shorter of
//! the idle and request time-outs from accept), so a client that opens TCP
//! and never speaks TLS, or trickles its hello, is closed like a slowloris.
//!
//! The `rustls::ServerConfig` sits in an `ArcSwap` (`ServerTls`): a reload
//! builds a new one on the reload thread and swaps it in; each connection
//! takes the config current at its accept and keeps it, so a new
//! certificate reaches new connections and no open one is dropped.

use std::io::{self, Read, Write};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::{ServerConfig, ServerConnection};

/// The server's TLS settings, replaceable while it runs.
pub struct ServerTls {
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    pub fn new(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls {
            current: ArcSwap::new(config),
        }
    }

    /// New connections use `config` from now on; open ones keep theirs.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        self.current.store(config);
    }

    /// A session for a connection accepted now.
    pub(super) fn session(&self) -> Option<Box<ServerConnection>> {
        ServerConnection::new(self.current.load_full())
            .ok()
            .map(Box::new)
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How a handshake ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Handshake {
    Done,
    /// The client spoke plain HTTP (its first byte is a letter): answer it
    /// a plain 400 saying so, then close.
    PlainHttp,
    /// Anything else: close (rustls has queued an alert, already sent).
    Failed,
}

/// Runs the handshake. `scratch` is the connection's read buffer (empty
/// now). The caller has armed a watch that shuts the socket down at the
/// handshake's deadline, which ends any wait here.
pub(super) fn handshake(
    tls: &mut ServerConnection,
    sock: &mut may::net::TcpStream,
    scratch: &mut [u8],
) -> Handshake {
    crate::sync::will_park("a TLS handshake read");
    let n = match sock.read(scratch) {
        Ok(n) if n > 0 => n,
        _ => return Handshake::Failed,
    };
    if scratch[0] != TLS_HANDSHAKE_RECORD {
        return if scratch[0].is_ascii_alphabetic() {
            Handshake::PlainHttp
        } else {
            Handshake::Failed
        };
    }
    let mut first = &scratch[..n];
    while !first.is_empty() {
        // From a slice: never parks, no will_park needed.
        if tls.read_tls(&mut first).is_err() || !process(tls, sock) {
            return Handshake::Failed;
        }
    }
    while tls.is_handshaking() {
        if tls.wants_write() {
            if send_pending(tls, sock).is_err() {
                return Handshake::Failed;
            }
            continue;
        }
        crate::sync::will_park("a TLS handshake read");
        match tls.read_tls(sock) {
            Ok(0) | Err(_) => return Handshake::Failed,
            Ok(_) => {}
        }
        if !process(tls, sock) {
            return Handshake::Failed;
        }
    }
    // TLS 1.3 session tickets, or the last flight of TLS 1.2.
    match send_pending(tls, sock) {
        Ok(()) => Handshake::Done,
        Err(_) => Handshake::Failed,
    }
}

/// Processes the ciphertext read so far; on a protocol error sends the
/// alert rustls queued (best effort) and answers false.
fn process(tls: &mut ServerConnection, sock: &mut may::net::TcpStream) -> bool {
    match tls.process_new_packets() {
        Ok(_) => true,
        Err(_) => {
            let _ = send_pending(tls, sock);
            false
        }
    }
}

/// Writes all the ciphertext rustls has queued.
pub(super) fn send_pending(
    tls: &mut ServerConnection,
    sock: &mut may::net::TcpStream,
) -> io::Result<()> {
    while tls.wants_write() {
        crate::sync::will_park("a TLS socket write");
        if tls.write_tls(sock)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Reads plaintext into `buf`: what rustls already holds, else one socket
/// read's worth of records. Ok(0) is the end (close_notify or EOF). It
/// never writes: what rustls queues meanwhile (a key update's answer, an
/// alert) is left for the caller to send under its write deadline — a
/// write here would wait under a read deadline that cannot end it.
pub(super) fn read(
    tls: &mut ServerConnection,
    sock: &mut may::net::TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        crate::sync::will_park("a TLS socket read");
        if tls.read_tls(sock)? == 0 {
            return Ok(0);
        }
        if let Err(e) = tls.process_new_packets() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// Encrypts and writes `plain`; Ok(n) once `n` bytes were sent.
pub(super) fn write(
    tls: &mut ServerConnection,
    sock: &mut may::net::TcpStream,
    plain: &[u8],
) -> io::Result<usize> {
    let n = tls.writer().write(plain)?;
    send_pending(tls, sock)?;
    Ok(n)
}

/// Sends close_notify (best effort; the caller shuts the socket down next).
pub(super) fn close_notify(tls: &mut ServerConnection, sock: &mut may::net::TcpStream) {
    tls.send_close_notify();
    let _ = send_pending(tls, sock);
}
