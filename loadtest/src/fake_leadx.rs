//! A stand-in for `leadx serve`, so the orchestrator can be tested end to end
//! before leadx itself serves: it reads `[server] listen` from the config
//! and answers the contract's endpoints with canned but well-formed JSON
//! (pings bid every other time, posts and direct posts sell). It contacts no
//! buyer. It lives `LIFETIME_S` at most; SIGTERM ends it at once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http::{response, Conn};
use crate::{rt, Error};

const LIFETIME_S: u64 = 600;

/// Serves until the lifetime ends.
pub fn serve(config: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| Error::io(format!("reading {}", config.display()), e))?;
    let v: toml::Value =
        toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", config.display())))?;
    let listen = v
        .get("server")
        .and_then(|s| s.get("listen"))
        .and_then(|l| l.as_str())
        .ok_or_else(|| Error::Usage("server.listen missing".into()))?
        .to_string();
    rt::configure(1);
    let listener = may::net::TcpListener::bind(listen.as_str())
        .map_err(|e| Error::io(format!("binding {listen}"), e))?;
    let seq = Arc::new(AtomicU64::new(0));
    rt::spawn(move || {
        for s in listener.incoming().flatten() {
            let seq = seq.clone();
            rt::spawn(move || {
                if let Ok(c) = Conn::new(s, Some(Duration::from_secs(30))) {
                    serve_conn(c, &seq);
                }
            });
        }
    });
    std::thread::sleep(Duration::from_secs(LIFETIME_S));
    Ok(())
}

fn serve_conn(mut c: Conn, seq: &AtomicU64) {
    while let Ok(Some(req)) = c.read_request() {
        let n = seq.fetch_add(1, Ordering::Relaxed);
        let (status, body) = match req.path.as_str() {
            "/healthz" | "/readyz" => (200, r#"{"status":"ok"}"#.to_string()),
            "/v1/ping" if n % 2 == 0 => (
                200,
                format!(
                    r#"{{"status":"bid","ping_id":"p{n}","price":4.0,"expires_at":"2030-01-01T00:00:00Z"}}"#
                ),
            ),
            "/v1/ping" => (200, format!(r#"{{"status":"no_bid","ping_id":"p{n}"}}"#)),
            "/v1/post" | "/v1/leads" => (
                200,
                format!(r#"{{"status":"sold","lead_id":"l{n}","price":4.0}}"#),
            ),
            _ => (
                404,
                r#"{"error":{"code":"not_found","message":"no such endpoint"}}"#.to_string(),
            ),
        };
        let reason = if status == 200 { "OK" } else { "Not Found" };
        if c.send(&response(status, reason, body.as_bytes())).is_err() || req.close {
            return;
        }
    }
}
