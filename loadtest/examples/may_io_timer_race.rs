//! Stress program for may's per-socket io timers (docs/performance.md, "A
//! crash under load"): loopback ping-pong pairs on may coroutines, every
//! read and write with the same socket timeout so all timer entries of a
//! selector share one list. In `expire` mode the timeout is 1 ms and the
//! echo side sometimes sleeps about that long, so timers expire while data
//! arrives; `none-expire` is the same traffic with no socket timeout (the
//! control).
//!
//! Usage: `cargo run --release -p leadx-loadtest --example may_io_timer_race
//! -- PAIRS SECONDS MODE WORKERS` with MODE one of `5s`, `expire`,
//! `none-expire`. Loopback only; stops by itself after SECONDS (at most 600).
//! A panic prints how long the run lasted, then aborts.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let t0 = Instant::now();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("PANIC after {:.1} s", t0.elapsed().as_secs_f64());
        prev(info);
        std::process::abort();
    }));
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let pairs = arg(1, 200) as usize;
    let secs = arg(2, 30).min(600);
    let mode = args.get(3).map_or("expire", String::as_str).to_string();
    let workers = arg(4, 2) as usize;
    may::config().set_workers(workers).set_stack_size(16 * 1024);
    may::config().set_worker_pin(false);
    let expire = mode.ends_with("expire");
    let timeout = match mode.as_str() {
        "none-expire" => None,
        "expire" => Some(Duration::from_millis(1)),
        _ => Some(Duration::from_secs(5)),
    };
    let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let round_trips = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let timed_out =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock);
    // SAFETY: these coroutines keep no thread-local references across a
    // yield and use little stack.
    unsafe {
        may::coroutine::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(timeout).unwrap();
                s.set_write_timeout(timeout).unwrap();
                may::coroutine::spawn(move || {
                    let mut b = [0u8; 1];
                    let mut k = 0u32;
                    loop {
                        match s.read(&mut b) {
                            Ok(1) => {}
                            Err(e) if timed_out(&e) => continue,
                            _ => break,
                        }
                        k = k.wrapping_add(1);
                        if expire && k % 3 == 0 {
                            may::coroutine::sleep(Duration::from_micros(
                                900 + u64::from(k % 7) * 50,
                            ));
                        }
                        if s.write_all(&b).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    let mut clients = Vec::new();
    for _ in 0..pairs {
        let n = round_trips.clone();
        // SAFETY: as above.
        let h = unsafe {
            may::coroutine::spawn(move || {
                let mut s = may::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(timeout).unwrap();
                s.set_write_timeout(timeout).unwrap();
                let mut b = [7u8; 1];
                while Instant::now() < end {
                    s.write_all(&b).unwrap();
                    loop {
                        match s.read(&mut b) {
                            Ok(1) => break,
                            Err(e) if timed_out(&e) => continue,
                            other => panic!("read: {other:?}"),
                        }
                    }
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        clients.push(h);
    }
    for h in clients {
        h.join().unwrap();
    }
    println!(
        "mode {mode}, workers {workers}: {} round trips in {secs} s, no panic",
        round_trips.load(Ordering::Relaxed)
    );
}
