//! Driver tests against a tiny fake leadx served in-process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::http::{response, Conn};

/// A fake publisher API: pings bid (every other one), posts and direct posts
/// sell, healthz is ok. The very first request stalls `stall_ms`.
fn fake_leadx(stall_ms: u64) -> Target {
    let l = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicU64::new(0));
    rt::spawn(move || {
        for s in l.incoming().flatten() {
            let seen = seen.clone();
            rt::spawn(move || {
                let mut c = Conn::new(s, Some(Duration::from_secs(10))).unwrap();
                while let Ok(Some(req)) = c.read_request() {
                    let n = seen.fetch_add(1, Ordering::Relaxed);
                    if n == 0 {
                        may::coroutine::sleep(Duration::from_millis(stall_ms));
                    }
                    let body = match req.path.as_str() {
                        "/v1/ping" if n % 2 == 0 => format!(
                            r#"{{"status":"bid","ping_id":"p{n}","price":1.5,"expires_at":"x"}}"#
                        ),
                        "/v1/ping" => format!(r#"{{"status":"no_bid","ping_id":"p{n}"}}"#),
                        "/v1/post" | "/v1/leads" => {
                            format!(r#"{{"status":"sold","lead_id":"l{n}","price":1.5}}"#)
                        }
                        _ => r#"{"status":"ok"}"#.to_string(),
                    };
                    if c.send(&response(200, "OK", body.as_bytes())).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Target::local(port)
}

fn spec(target: Target, mix: Mix, mode: Mode, connections: usize) -> RunSpec {
    RunSpec {
        target,
        api_key: "k".into(),
        vertical: "auto_insurance".into(),
        mix,
        mode,
        duration: Duration::from_secs(1),
        connections,
        think: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
        seed: 1,
        lead_offset: 0,
        progress: false,
    }
}

#[test]
fn open_loop_sends_the_scheduled_count_and_posts_only_bids() {
    let r = run(&spec(
        fake_leadx(0),
        Mix::PingPost,
        Mode::Open { rate_per_s: 200 },
        16,
    ))
    .unwrap();
    assert_eq!(r.cycles, 200);
    assert_eq!(r.stats.not_sent, 0);
    assert_eq!(r.stats.pings, 200);
    assert_eq!(r.stats.errors, 0, "{:?}", r.stats.outcomes);
    let bids = r.stats.outcomes.get("ping:bid").copied().unwrap_or(0);
    assert_eq!(bids, r.stats.bids);
    assert!(bids > 0 && bids < 200, "{:?}", r.stats.outcomes);
    assert_eq!(r.stats.outcomes.get("post:sold").copied(), Some(bids));
    assert_eq!(r.stats.cycle.count(), bids);
    // A cycle includes the 5 ms think time.
    assert!(r.stats.cycle.quantile_us(0.0) >= 5_000);
    let rate = r.achieved_per_s();
    assert!(rate > 150.0 && rate < 230.0, "achieved {rate}");
}

#[test]
fn a_stalled_target_shows_in_latency_from_intended_send_time() {
    // One connection, 100/s, the first request stalls 300 ms: the ~30
    // requests due meanwhile wait behind it. Measured from their intended
    // times they show up to ~300 ms; a closed-loop tester would report one
    // slow request and 99 fast ones.
    let r = run(&spec(
        fake_leadx(300),
        Mix::Ping,
        Mode::Open { rate_per_s: 100 },
        1,
    ))
    .unwrap();
    let p = r.stats.first.percentiles();
    assert_eq!(p.count, 100);
    assert!(p.max_us >= 290_000, "{p:?}");
    assert!(r.stats.first.quantile_us(0.85) >= 100_000, "{p:?}");
    // Relative, not absolute: on a loaded machine every request is slower.
    assert!(p.p50_us < p.max_us / 2, "{p:?}");
}

#[test]
fn closed_loop_runs_back_to_back_and_counts_healthz() {
    let mut s = spec(
        fake_leadx(0),
        Mix::Healthz,
        Mode::Closed { concurrency: 4 },
        1,
    );
    s.duration = Duration::from_millis(500);
    let r = run(&s).unwrap();
    let ok = r.stats.outcomes.get("healthz:200").copied().unwrap_or(0);
    assert!(ok > 50, "{:?}", r.stats.outcomes);
    assert_eq!(ok, r.stats.first.count());
    assert_eq!(r.stats.not_sent, 0);
}

#[test]
fn direct_mix_sells_with_distinct_idempotency_keys() {
    let mut s = spec(fake_leadx(0), Mix::Direct, Mode::Open { rate_per_s: 50 }, 4);
    s.lead_offset = 1000;
    let r = run(&s).unwrap();
    assert_eq!(r.stats.outcomes.get("direct:sold").copied(), Some(50));
    let lead = lead::generate(1, 1000, "t");
    let ctx = Ctx {
        target: s.target,
        host: "h".into(),
        auth: "Bearer k".into(),
        vertical: "v".into(),
        mix: Mix::Direct,
        think: s.think,
        timeout: s.timeout,
        seed: 1,
    };
    let req = String::from_utf8(cycle::first_request(&ctx, &lead, 1000)).unwrap();
    assert!(
        req.contains("Idempotency-Key: lt-1-1000\r\n") && req.contains("\"consent\":{"),
        "{req}"
    );
}

#[test]
fn unreachable_target_is_a_clear_error() {
    // Bind then drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = run(&spec(
        Target::local(port),
        Mix::Ping,
        Mode::Open { rate_per_s: 10 },
        1,
    ))
    .unwrap_err();
    assert!(matches!(e, Error::Target(_)), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn out_of_bound_parameters_are_usage_errors() {
    let t = Target::local(1);
    for s in [
        spec(t, Mix::Ping, Mode::Open { rate_per_s: 0 }, 1),
        spec(t, Mix::Ping, Mode::Closed { concurrency: 0 }, 1),
        spec(t, Mix::Ping, Mode::Open { rate_per_s: 10 }, 0),
        RunSpec {
            duration: Duration::ZERO,
            ..spec(t, Mix::Ping, Mode::Open { rate_per_s: 10 }, 1)
        },
    ] {
        assert!(matches!(validate(&s), Err(Error::Usage(_))), "{s:?}");
    }
}
