//! Child processes of a bench run (the buyer fleet and `leadx serve`):
//! started with bounded waits, stopped with SIGTERM then SIGKILL after
//! `limits::CHILD_STOP_MS`, and stopped on drop so an error path never
//! leaves one running.
//!
//! This runs on the main OS thread, never in a coroutine, so plain blocking
//! I/O and short poll sleeps are fine here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::buyers::server::Listening;
use crate::{limits, Error};

/// A child that is stopped when dropped.
pub struct Managed {
    pub name: &'static str,
    child: Option<Child>,
}

impl Managed {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM (or closing stdin, for the fleet), then SIGKILL after the
    /// bound. Returns how it ended, for the log.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "already stopped".into();
        };
        drop(child.stdin.take()); // the fleet stops when its stdin closes
        terminate(child.id());
        let deadline = Instant::now() + Duration::from_millis(limits::CHILD_STOP_MS);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return format!("{} exited: {status}", self.name),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return format!("{}: wait failed: {e}", self.name),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        format!(
            "{} killed after {} ms without exiting",
            self.name,
            limits::CHILD_STOP_MS
        )
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// Sends SIGTERM to our own child.
fn terminate(pid: u32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // the pid is our own child, not yet reaped (we still hold its `Child`),
    // so it cannot have been reused by another process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// The line the fleet prints when it listens.
#[derive(Debug, Deserialize)]
pub struct FleetLine {
    pub pid: u32,
    pub buyers: Vec<Listening>,
}

/// Starts `exe buyers --spec spec_path --until-stdin-closes` and reads its
/// ports, waiting at most `limits::FLEET_START_MS`.
pub fn start_fleet(
    exe: &Path,
    spec_path: &Path,
    lifetime_s: u64,
) -> Result<(Managed, FleetLine), Error> {
    let mut child = Command::new(exe)
        .args([
            "buyers",
            "--until-stdin-closes",
            "--lifetime-s",
            &lifetime_s.to_string(),
            "--spec",
        ])
        .arg(spec_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Child(format!("cannot start buyer fleet {}: {e}", exe.display())))?;
    let stdout = child.stdout.take().expect("stdout piped");
    let managed = Managed {
        name: "buyer fleet",
        child: Some(child),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = tx.send(BufReader::new(stdout).read_line(&mut line).map(|_| line));
    });
    let line = rx
        .recv_timeout(Duration::from_millis(limits::FLEET_START_MS))
        .map_err(|_| {
            Error::Child(format!(
                "buyer fleet printed no ports within {} ms",
                limits::FLEET_START_MS
            ))
        })?
        .map_err(|e| Error::io("reading the buyer fleet's ports", e))?;
    let parsed = serde_json::from_str(&line)
        .map_err(|e| Error::Child(format!("buyer fleet printed {line:?}, not its ports: {e}")))?;
    Ok((managed, parsed))
}

/// Starts `leadx serve --config config`, output to `log`.
pub fn start_leadx(bin: &Path, config: &Path, log: &Path) -> Result<Managed, Error> {
    if !bin.is_file() {
        return Err(Error::Child(format!(
            "leadx binary not found at {} (build it first: cargo build --release)",
            bin.display()
        )));
    }
    let out = std::fs::File::create(log)
        .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io("duplicating the log handle", e))?;
    let child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::Child(format!("cannot start {}: {e}", bin.display())))?;
    Ok(Managed {
        name: "leadx",
        child: Some(child),
    })
}

/// Polls `GET /readyz` until 200, the child exits, or `wait` passes.
pub fn wait_ready(m: &mut Managed, port: u16, wait: Duration, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + wait;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(child) = m.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Child(format!(
                    "{} exited ({status}) before /readyz answered 200; see {}",
                    m.name,
                    log.display()
                )));
            }
        }
        if get_status(addr, "/readyz", Duration::from_millis(500)).ok() == Some(200) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Child(format!(
                "{} never answered 200 on /readyz within {} ms; see {}",
                m.name,
                wait.as_millis(),
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One blocking `GET` with `Connection: close`; the status code.
pub fn get_status(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: Duration,
) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    // Read only until the head parses: a keep-alive server may ignore
    // `Connection: close`, and waiting for EOF would then time out.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < limits::HEAD_BYTES_MAX {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; limits::HEADERS_MAX];
        let mut r = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(_)) = r.parse(&buf) {
            return Ok(r.code.unwrap_or(0));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "no complete HTTP response head",
    ))
}
