//! Rotation under load (contract §12, issue #10): while four clients ping
//! and post without pause, (a) the data key is rotated by a config reload
//! (the new key current, the old one in `old_data_keys`) and (b) the
//! publisher's API key is rotated (a second hash added, clients switched,
//! the first removed). No request fails, and every lead sold before,
//! during and after reads back with its PII from the admin lead view.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;

use crate::cli::eventually;
use crate::privacy::{admin_lead, start_with_text};
use crate::support::*;

const NEW_API_KEY: &str = "pub1-rotated-key-2";
const CLIENTS: usize = 4;

fn edit_config(l: &Leadx, from: &str, to: &str) {
    let text = std::fs::read_to_string(&l.config_path).unwrap();
    assert!(text.contains(from), "{from} not in the config");
    std::fs::write(&l.config_path, text.replacen(from, to, 1)).unwrap();
    reload_ok(l.addr);
}

#[test]
fn data_and_api_keys_rotate_under_load_without_a_failed_request() {
    let (key_a, key_b) = ("1a".repeat(32), "2b".repeat(32));
    let a = mock(Act::Bid(10.0), Act::Accept("A-1"));
    let l = start_with_text(
        |t| format!("{t}\n[privacy]\ndata_key = \"{key_a}\"\n"),
        &buyer_toml("a", &a, ""),
        Arc::new(leadx::clock::SystemClock),
    );
    let addr = l.addr;
    let api_key = Arc::new(Mutex::new(KEY.to_string()));
    let stop = Arc::new(AtomicBool::new(false));
    let done: Arc<Vec<AtomicUsize>> = Arc::new((0..CLIENTS).map(|_| AtomicUsize::new(0)).collect());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let sold = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (api_key, stop, done) = (api_key.clone(), stop.clone(), done.clone());
            let (failures, sold) = (failures.clone(), sold.clone());
            std::thread::spawn(move || {
                for n in 0..2_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = api_key.lock().clone();
                    let phone = format!("5552{c}{n:05}");
                    let p = post_json(addr, "/v1/ping", &key, &json!({"vertical": "auto", "lead": ping_lead()}));
                    if p.status != 200 {
                        failures.lock().push(format!("ping {}: {}", p.status, String::from_utf8_lossy(&p.body)));
                        continue;
                    }
                    let r = post_json(addr, "/v1/post", &key, &json!({"ping_id": p.json()["ping_id"], "lead": full_lead(&phone, "ann@example.com"), "consent": consent()}));
                    if r.status != 200 || r.json()["status"] != "sold" {
                        failures.lock().push(format!("post {}: {}", r.status, String::from_utf8_lossy(&r.body)));
                        continue;
                    }
                    sold.lock().push((r.json()["lead_id"].as_str().unwrap().to_string(), phone));
                    done[c].fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Every client finishes two more rounds (so at least one started after
    // this point, with whatever key is current now).
    let two_more_rounds = || {
        let marks: Vec<usize> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
        assert!(
            eventually(Duration::from_secs(60), || done
                .iter()
                .zip(&marks)
                .all(|(d, m)| d.load(Ordering::SeqCst) >= m + 2)),
            "clients stalled: {:?}",
            failures.lock()
        );
    };
    two_more_rounds();
    // (a) The data key: B seals, A still opens.
    edit_config(
        &l,
        &format!("data_key = \"{key_a}\""),
        &format!("data_key = \"{key_b}\"\nold_data_keys = [\"{key_a}\"]"),
    );
    two_more_rounds();
    // (b) The API key: both hashes, clients switch, the first goes.
    let (old_hash, new_hash) = (
        leadx::config::hash_key(KEY.as_bytes()),
        leadx::config::hash_key(NEW_API_KEY.as_bytes()),
    );
    edit_config(
        &l,
        &format!("api_key_sha256 = \"{old_hash}\""),
        &format!("api_key_sha256 = [\"{old_hash}\", \"{new_hash}\"]"),
    );
    two_more_rounds();
    *api_key.lock() = NEW_API_KEY.to_string();
    two_more_rounds();
    edit_config(
        &l,
        &format!("[\"{old_hash}\", \"{new_hash}\"]"),
        &format!("\"{new_hash}\""),
    );
    two_more_rounds();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let old = post_json(
        l.addr,
        "/v1/ping",
        KEY,
        &json!({"vertical": "auto", "lead": ping_lead()}),
    );
    assert_eq!(old.status, 401, "the first API key is gone");
    let sold = sold.lock();
    assert!(sold.len() >= CLIENTS * 10, "{}", sold.len());
    for (id, phone) in sold.iter() {
        let view = admin_lead(&l, id);
        assert_eq!(
            view["data"]["lead"]["phone"],
            format!("+1{phone}"),
            "{view}"
        );
    }
}
