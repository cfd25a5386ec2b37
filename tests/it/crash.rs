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
fn spawn_leadx(config: &std::path::Path) -> (Child, SocketAddr) {
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
                if let Some(addr) = line.split_whitespace().find_map(|w| w.trim_matches('"').strip_prefix("addr=").and_then(|a| a.trim_matches('"').parse::<SocketAddr>().ok())) {
                    sent = tx.send(addr).is_ok();
                }
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("leadx logged its address");
    (child, addr)
}

#[test]
fn every_sold_lead_survives_kill_9() {
    let buyer = mock(Act::Bid(10.0), Act::Accept("X"));
    let dir = tempfile::tempdir().unwrap();
    let text = base_toml(&dir.path().join("data"), "", "") + &direct_buyer_toml("flat", &buyer, "3.00", "");
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
        assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("sold")), "lead {id} acknowledged as sold was lost");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
