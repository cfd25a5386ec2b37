//! Crash test (contract §6): leadx runs as a child process under load and is
//! SIGKILLed right after answers went out; every lead it answered `sold`
//! must be there, sold, after a restart on the same store.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Starts `leadx serve` and reads its listening address from the log.
pub(crate) fn spawn_leadx(config: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadx"))
        .args(["serve", "--config"])
        .arg(config)
        .env("LEADX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(addr) = line.split_whitespace().find_map(|w| {
                    w.trim_matches('"')
                        .strip_prefix("addr=")
                        .and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())
                }) {
                    sent = tx.send(addr).is_ok();
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("leadx logged its address");
    (child, addr)
}

#[test]
fn every_sold_lead_survives_kill_9() {
    let buyer = mock(Act::Bid(10.0), Act::Accept("X"));
    let dir = tempfile::tempdir().unwrap();
    let text = base_toml(&dir.path().join("data"), "", "")
        + &direct_buyer_toml("flat", &buyer, "3.00", "");
    let path = dir.path().join("leadx.toml");
    std::fs::write(&path, text).unwrap();
    let (mut child, addr) = spawn_leadx(&path);
    let sold = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (sold, stop) = (&sold, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                    i += 1;
                    let body = json!({"vertical": "auto", "lead": full_lead(&format!("555{t}{i:06}"), "c@d.co"), "consent": consent()});
                    let Ok(r) = std::panic::catch_unwind(|| post_json(addr, "/v1/leads", KEY, &body)) else { break };
                    if r.status == 200 && r.json()["status"] == "sold" {
                        sold.lock().unwrap().push(r.json()["lead_id"].as_str().unwrap().to_string());
                    }
                }
            });
        }
        while sold.lock().unwrap().len() < 300 && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL with requests in flight, the moment after answers went out.
        child.kill().unwrap();
        stop.store(true, Ordering::SeqCst);
    });
    child.wait().unwrap();
    let sold = sold.into_inner().unwrap();
    assert!(sold.len() >= 300, "load ran: {} sold", sold.len());
    let (mut child, addr) = spawn_leadx(&path);
    for id in &sold {
        let r = get(addr, &format!("/v1/leads/{id}"), KEY);
        assert_eq!(
            (r.status, r.json()["status"].as_str()),
            (200, Some("sold")),
            "lead {id} acknowledged as sold was lost"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A post cut off by kill -9 after the buyer got the lead must never be
/// offered again: a retry of the ping, or of the direct post's
/// Idempotency-Key, settles it `unsold` / `interrupted` without a buyer call.
#[test]
fn a_post_cut_off_by_kill_9_is_settled_interrupted_not_offered_again() {
    let buyer = mock(
        Act::Bid(10.0),
        Act::Delay(10_000, Box::new(Act::Accept("late"))),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = base_toml(&dir.path().join("data"), "post_timeout_ms = 20000", "")
        + &buyer_toml("slow", &buyer, "post_timeout_ms = 20000");
    let path = dir.path().join("leadx.toml");
    std::fs::write(&path, text).unwrap();
    let (mut child, addr) = spawn_leadx(&path);
    let r = post_json(
        addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    let ping_id = r.json()["ping_id"].as_str().unwrap().to_string();
    let body = json!({"ping_id": ping_id, "lead": full_lead("5552345678", "a@b.co"), "consent": consent()});
    let direct = json!({"vertical": "auto", "lead": full_lead("5552345679", "c@d.co"), "consent": consent()});
    let auth = format!("Bearer {KEY}");
    std::thread::scope(|s| {
        s.spawn(|| std::panic::catch_unwind(|| post_json(addr, "/v1/post", KEY, &body)));
        s.spawn(|| {
            std::panic::catch_unwind(|| {
                request(
                    addr,
                    "POST",
                    "/v1/leads",
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                        ("Idempotency-Key", "once"),
                    ],
                    direct.to_string().as_bytes(),
                )
            })
        });
        let t0 = std::time::Instant::now();
        while buyer.buyer.posts() < 2 && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(buyer.buyer.posts(), 2, "both posts reached the buyer");
        child.kill().unwrap();
    });
    child.wait().unwrap();
    let (mut child, addr) = spawn_leadx(&path);
    let again = post_json(addr, "/v1/post", KEY, &body);
    assert_eq!(
        (
            again.json()["status"].as_str(),
            again.json()["reason"].as_str()
        ),
        (Some("unsold"), Some("interrupted"))
    );
    let retry = request(
        addr,
        "POST",
        "/v1/leads",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "once"),
        ],
        direct.to_string().as_bytes(),
    );
    assert_eq!(
        (
            retry.json()["status"].as_str(),
            retry.json()["reason"].as_str()
        ),
        (Some("unsold"), Some("interrupted"))
    );
    assert_eq!(
        post_json(addr, "/v1/post", KEY, &body).json(),
        again.json(),
        "settled once, answered the same"
    );
    assert_eq!(buyer.buyer.posts(), 2, "no buyer saw the lead twice");
    child.kill().unwrap();
    child.wait().unwrap();
}
