//! Concurrency where it bites (issue #7): right after start-up and right
//! after a reload, with capped buyers, every kind of request at once. leadx
//! runs as a child (`leadx serve`, debug build: the lock/park guards of
//! `leadx::sync` are armed, so a lock held across a park panics there) with
//! two workers, so a hang cannot take the test binary's own runtime with it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{eventually, signal, write_config, Served};
use crate::support::*;

/// `n` ping buyers, all on the one mock, each with a daily cap.
fn capped_buyers(prefix: &str, n: usize, m: &Mock) -> String {
    (0..n)
        .map(|i| {
            buyer_toml(
                &format!("{prefix}{i}"),
                m,
                "ping_timeout_ms = 300\n[buyer.caps]\ndaily = 1000",
            )
        })
        .collect()
}

fn admin_get(addr: SocketAddr, path: &str) -> Reply {
    get(addr, path, ADMIN)
}

/// One burst: 64 pings, 8 direct posts, and 4 each of `/metrics`,
/// `/v1/admin/stats`, `/v1/admin/transactions` and `/v1/admin/reload`, all
/// at once, each on its own connection. Returns (what, status, seconds) per request.
fn burst(addr: SocketAddr, tag: &str) -> Vec<(String, u16, f64)> {
    let mut threads = Vec::new();
    let spawn = |what: String, f: Box<dyn FnOnce() -> Reply + Send>| {
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let r = f();
            (what, r.status, t0.elapsed().as_secs_f64())
        })
    };
    for i in 0..64 {
        threads.push(spawn(
            format!("ping {i}"),
            Box::new(move || {
                post_json(
                    addr,
                    "/v1/ping",
                    KEY,
                    &json!({"vertical": "auto", "lead": ping_lead()}),
                )
            }),
        ));
    }
    for i in 0..8 {
        let phone = format!("3125551{:03}", i + if tag == "start" { 0 } else { 100 });
        threads.push(spawn(
            format!("direct post {i}"),
            Box::new(move || {
                post_json(addr, "/v1/leads", KEY, &json!({"vertical": "auto", "lead": full_lead(&phone, "a@b.co"), "consent": consent()}))
            }),
        ));
    }
    for i in 0..4 {
        threads.push(spawn(
            format!("metrics {i}"),
            Box::new(move || request(addr, "GET", "/metrics", &[], b"")),
        ));
        threads.push(spawn(
            format!("stats {i}"),
            Box::new(move || admin_get(addr, "/v1/admin/stats")),
        ));
        threads.push(spawn(
            format!("transactions {i}"),
            Box::new(move || admin_get(addr, "/v1/admin/transactions?limit=5")),
        ));
        threads.push(spawn(
            format!("admin reload {i}"),
            Box::new(move || {
                let auth = format!("Bearer {ADMIN}");
                request(
                    addr,
                    "POST",
                    "/v1/admin/reload",
                    &[("Authorization", &auth)],
                    b"",
                )
            }),
        ));
    }
    threads
        .into_iter()
        .map(|t| {
            t.join()
                .expect("a request thread panicked (no answer within 20 s?)")
        })
        .collect()
}

fn check_burst(results: &[(String, u16, f64)], leadx: &Served) {
    let bad: Vec<_> = results
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        bad.is_empty(),
        "requests not answered 200: {bad:?}\n{}",
        leadx.log_text()
    );
    let slowest = results.iter().map(|r| r.2).fold(0.0, f64::max);
    // Not a speed assertion: a hang shows as the client's 20 s time-out
    // panicking above; this only reports.
    eprintln!(
        "burst of {} answered, slowest {slowest:.3} s",
        results.len()
    );
    assert_eq!(request(leadx.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn bursts_after_start_and_after_a_reload_adding_capped_buyers_are_all_answered() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "127.0.0.1:0", &capped_buyers("cap", 8, &m), "");
    let leadx = Served::start(&path, &[]);
    assert!(eventually(Duration::from_secs(20), || request(
        leadx.addr,
        "GET",
        "/readyz",
        &[],
        b""
    )
    .status
        == 200));
    check_burst(&burst(leadx.addr, "start"), &leadx);

    // A reload that adds eight more capped buyers, and the burst right on
    // its heels (the reload thread counts the new buyers' sales meanwhile).
    let text = std::fs::read_to_string(&path).unwrap() + &capped_buyers("new", 8, &m);
    std::fs::write(&path, text).unwrap();
    signal(leadx.pid(), libc::SIGHUP);
    check_burst(&burst(leadx.addr, "reload"), &leadx);
    let has_new = || {
        admin_get(leadx.addr, "/v1/admin/stats").json()["buyers"]
            .as_array()
            .is_some_and(|b| b.len() == 16)
    };
    assert!(
        eventually(Duration::from_secs(10), has_new),
        "reload took effect: {}",
        leadx.log_text()
    );
    assert!(
        !leadx.log_text().contains("panicked"),
        "{}",
        leadx.log_text()
    );
}

/// The counters are counted from the store when a runtime is built: a
/// restart and a reload that adds a cap both start from the day's sales.
#[test]
fn a_cap_counts_sales_made_before_a_restart_and_before_the_cap_was_added() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let mut l = start("", "", &buyer_toml("b", &m, ""));
    for i in 0..3 {
        let p = ping(&l);
        assert_eq!(
            post(&l, p["ping_id"].as_str().unwrap(), &format!("312555030{i}")).json()["status"],
            "sold"
        );
    }
    // Uncapped sales count too: add a cap of 4 by reload → one more sale.
    // The buyer's table is the last in the file.
    let text = std::fs::read_to_string(&l.config_path).unwrap() + "[buyer.caps]\ndaily = 4\n";
    std::fs::write(&l.config_path, text).unwrap();
    assert_eq!(
        request(
            l.addr,
            "POST",
            "/v1/admin/reload",
            &[("Authorization", &format!("Bearer {ADMIN}"))],
            b""
        )
        .status,
        200
    );
    let sold_today = |l: &Leadx| {
        get(l.addr, "/v1/admin/stats", ADMIN).json()["buyers"][0]["sold_today"].as_u64()
    };
    assert_eq!(sold_today(&l), Some(3));
    let p = ping(&l);
    assert_eq!(
        post(&l, p["ping_id"].as_str().unwrap(), "3125550310").json()["status"],
        "sold"
    );
    assert_eq!(ping(&l)["status"], "no_bid", "cap of 4 reached");
    l.restart();
    assert_eq!(
        sold_today(&l),
        Some(4),
        "counted from the store after a restart"
    );
    assert_eq!(
        ping(&l)["status"],
        "no_bid",
        "still capped after the restart"
    );
}

/// Sends `n` copies of `raw` (one request) on one keep-alive connection and
/// returns the status of each answer; a read time-out panics.
fn keep_alive_statuses(addr: SocketAddr, raw: &[u8], n: usize) -> Vec<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        s.write_all(raw).unwrap();
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    statuses.push(head[9..12].parse().unwrap());
                    buf.drain(..end + 4 + len);
                    break;
                }
            }
            let mut chunk = [0u8; 4096];
            let got = s.read(&mut chunk).expect("an answer within 10 s");
            assert!(
                got > 0,
                "connection closed after {} answers",
                statuses.len()
            );
            buf.extend_from_slice(&chunk[..got]);
        }
    }
    statuses
}

/// A stderr nobody reads (journald stalled) fills its pipe after a few
/// hundred lines. Lines are written by the logger thread, so the requests
/// that log go on being answered; before, the worker writing the line
/// blocked and took every request on it down.
#[test]
fn a_stderr_nobody_reads_never_blocks_requests() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "127.0.0.1:0", "", "");
    let mut child = crate::cli::leadx_cmd()
        .args(["serve", "--config"])
        .arg(&path)
        .env("LEADX_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let _child = Kill(child);
    // Read up to the address, then never again.
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "leadx exited");
        if let Some(a) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
        {
            break a.trim_matches('"').parse().unwrap();
        }
    };
    // Each refused request logs a warning line (~150 bytes): 4 × 2,500
    // lines is ~1.5 MB, far past a 64 KiB pipe.
    let raw = b"POST /v1/ping HTTP/1.1\r\nHost: l\r\nAuthorization: Bearer wrong\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || keep_alive_statuses(addr, raw, 2_500)))
        .collect();
    for t in threads {
        let statuses = t.join().expect("every request answered");
        assert!(statuses.iter().all(|s| *s == 401), "{:?}", &statuses[..5]);
    }
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").status, 200);
    drop(stderr);
}

/// A daily cap counts UTC days of business time: moved past midnight by the
/// exchange's clock (no sleeping), a capped-out buyer bids again.
#[test]
fn a_daily_cap_frees_up_at_utc_midnight() {
    let m = mock(Act::Bid(4.0), Act::Accept("B1"));
    let clock = std::sync::Arc::new(leadx::clock::ManualClock::new());
    let buyer = buyer_toml("b", &m, "[buyer.caps]\ndaily = 1");
    let l = start_with_clock("", "", &buyer, clock.clone());
    let p = ping(&l);
    let sold = post(&l, p["ping_id"].as_str().unwrap(), "3125550401");
    assert_eq!(sold.json()["status"], "sold");
    assert_eq!(ping(&l)["status"], "no_bid", "cap of 1 reached");
    let now = leadx::clock::Clock::now_ms(&*clock);
    let next_midnight = (now / 86_400_000 + 1) * 86_400_000;
    clock.set_ms(next_midnight - 1);
    assert_eq!(ping(&l)["status"], "no_bid", "still the same UTC day");
    clock.set_ms(next_midnight);
    assert_eq!(ping(&l)["status"], "bid", "a new UTC day, a new cap");
}
