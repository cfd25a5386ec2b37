//! The systemd watchdog, fed from a live path: a plain thread asks the
//! server's own `/healthz` over loopback and pings systemd only when the
//! answer comes back. A wedged coroutine scheduler stops the pings and
//! systemd restarts the service; a merely busy one still answers.
//!
//! It asks on the server's probe listener (`ServerOptions::probe_listener`,
//! an ephemeral 127.0.0.1 port with connections of its own), not on
//! `server.listen`: there a flood of clients filling `connections_max`
//! would get the probe refused and systemd would kill leadx mid-post.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::notify;

/// Starts the watchdog thread when systemd asked for one.
pub fn spawn(addr: SocketAddr) {
    let Some(interval) = notify::watchdog_interval() else {
        return;
    };
    let every = interval / 3;
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    std::thread::Builder::new()
        .name("leadx-watchdog".into())
        .spawn(move || loop {
            if healthy(addr, every) {
                notify::watchdog_ping();
            } else {
                log::warn!(target: "leadx::watchdog", "self-check of /healthz failed; not feeding the watchdog");
            }
            std::thread::sleep(every); // own thread: the watchdog's
        })
        .expect("spawning the watchdog thread");
}

/// One `GET /healthz` with a time-out; true on a 200.
pub fn healthy(addr: SocketAddr, timeout: Duration) -> bool {
    let check = || -> std::io::Result<bool> {
        // own thread: the watchdog's (std sockets, never on a worker)
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: leadx\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(&head[9..12] == b"200")
    };
    check().unwrap_or(false)
}
