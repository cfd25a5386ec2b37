//! systemd notifications: readiness, reload, stop, status and the watchdog.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). That is a few lines over `UnixDatagram`. Kept rather than the
//! `sd-notify` crate (compared in issue #8): its `notify` sends on a blocking
//! socket, which on a may worker would stall every coroutine there when
//! systemd's queue is full, and it reads the environment on every call;
//! ours is non-blocking and takes the socket path as a value, so the tests
//! point it at their own socket. Every
//! function is a no-op when `NOTIFY_SOCKET` is unset (not under systemd).
//!
//! Order the server keeps (`Type=notify`): `ready()` only once the store is
//! open and the listener bound; on SIGHUP `reloading()`, reload, then
//! `ready()` again; on SIGTERM `stopping()` before draining.
//!
//! Sends are non-blocking, so calling these from a may coroutine never
//! stalls a worker; a full socket queue drops the message and returns the
//! error (systemd drains its queue far faster than leadx writes to it).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Env var systemd sets to the notification socket.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends `msg` to the socket at `socket`: a filesystem path, or `@name` for
/// an abstract socket.
pub fn send_to(socket: &OsStr, msg: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let sent = sock.send_to_addr(msg.as_bytes(), &addr)?;
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "notification datagram truncated",
        ));
    }
    Ok(())
}

fn socket_from_env() -> Option<OsString> {
    std::env::var_os(SOCKET_ENV).filter(|s| !s.is_empty())
}

/// Sends `msg` to `$NOTIFY_SOCKET`. Ok(false) when it is unset.
pub fn notify(msg: &str) -> io::Result<bool> {
    match socket_from_env() {
        Some(socket) => send_to(&socket, msg).map(|()| true),
        None => Ok(false),
    }
}

/// Sends and logs a failure: a lost notification must not stop the server
/// (systemd will time out and say so in the journal).
fn notify_logged(msg: &str) {
    if let Err(e) = notify(msg) {
        let first = msg.lines().next().unwrap_or("");
        log::warn!(error:% = e, message = first; "systemd notification failed");
    }
}

/// READY=1: the store is open and the listener bound (also after a reload).
pub fn ready() {
    notify_logged("READY=1");
}

/// STOPPING=1: draining has started.
pub fn stopping() {
    notify_logged("STOPPING=1");
}

/// RELOADING=1 with MONOTONIC_USEC (which `Type=notify-reload`, systemd ≥
/// 253, requires; older systemd ignores it). Send `ready()` when the reload
/// is done, whether the new config was taken or refused.
pub fn reloading() {
    notify_logged(&reloading_message(monotonic_usec()));
}

fn reloading_message(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
}

/// WATCHDOG=1: the process is alive and serving.
pub fn watchdog_ping() {
    notify_logged("WATCHDOG=1");
}

/// STATUS=…: a one-line status shown by `systemctl status`.
pub fn status(s: &str) {
    notify_logged(&status_message(s));
}

fn status_message(s: &str) -> String {
    // The protocol is newline-separated: a newline would start a new key.
    format!("STATUS={}", s.replace(['\n', '\r'], " "))
}

/// The watchdog timeout systemd enforces (`WatchdogSec=`), if any. Ping at
/// least twice per interval, from a path that proves the server works (a
/// self-check of `/healthz`), so a wedged scheduler starves the watchdog.
/// None when unset, zero, malformed, or meant for another process
/// (`WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    parse_watchdog(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(my_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares with.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live,
    // properly aligned local; CLOCK_MONOTONIC always exists on Linux.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("datagram within 5 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn send_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn send_to_an_abstract_socket() {
        let mut rand = [0u8; 8];
        getrandom::getrandom(&mut rand).unwrap();
        let name = format!(
            "leadx-test-{}-{}",
            std::process::id(),
            u64::from_le_bytes(rand)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn sending_to_a_missing_socket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(send_to(dir.path().join("none").as_os_str(), "READY=1").is_err());
    }

    #[test]
    fn watchdog_interval_parsing() {
        let d = |s| Some(Duration::from_micros(s));
        assert_eq!(parse_watchdog(Some("10000000"), None, 7), d(10_000_000));
        assert_eq!(
            parse_watchdog(Some("10000000"), Some("7"), 7),
            d(10_000_000)
        );
        assert_eq!(parse_watchdog(Some("10000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("soon"), None, 7), None);
        assert_eq!(parse_watchdog(None, Some("7"), 7), None);
    }

    #[test]
    fn messages_keep_to_the_protocol() {
        assert_eq!(
            status_message("draining\n2 posts left"),
            "STATUS=draining 2 posts left"
        );
        let m = reloading_message(42);
        assert_eq!(m, "RELOADING=1\nMONOTONIC_USEC=42");
        assert!(monotonic_usec() > 0);
    }
}
