//! Tests of the buyer simulator: decisions (pure) and the server over
//! loopback.

use std::time::Duration;

use super::*;
use crate::http::{request, Conn, HttpError};

fn spec(bid: f64, accept: f64, faults: Faults) -> BuyerSpec {
    BuyerSpec {
        id: "b0".into(),
        latency: LatencyDist::Fixed { ms: 0.0 },
        bid_rate: bid,
        accept_rate: accept,
        faults,
        ..BuyerSpec::default()
    }
}

fn tally(s: &BuyerSpec, call: Call, n: usize) -> std::collections::HashMap<&'static str, usize> {
    let mut r = Rng::new(11);
    let mut m = std::collections::HashMap::new();
    for _ in 0..n {
        let k = match s.decide(&mut r, call).reply {
            Reply::Bid { .. } => "bid",
            Reply::NoBid => "no_bid",
            Reply::Accepted => "accepted",
            Reply::Rejected => "rejected",
            Reply::Http500 => "500",
            Reply::Garbage => "garbage",
            Reply::Hang => "hang",
            Reply::Reset => "reset",
            Reply::NotFound => "404",
            Reply::Healthy => "healthy",
        };
        *m.entry(k).or_default() += 1;
    }
    m
}

fn near(got: usize, n: usize, p: f64) -> bool {
    (got as f64 / n as f64 - p).abs() < 0.02
}

#[test]
fn bid_no_bid_and_fault_rates_follow_the_spec() {
    let faults = Faults {
        http_500: 0.05,
        garbage: 0.05,
        hang: 0.02,
        reset: 0.03,
    };
    let s = spec(0.6, 0.9, faults);
    let n = 20_000;
    let m = tally(&s, Call::Ping, n);
    let ok = 1.0 - 0.15;
    assert!(near(m["bid"], n, ok * 0.6), "{m:?}");
    assert!(near(m["no_bid"], n, ok * 0.4), "{m:?}");
    assert!(
        near(m["500"], n, 0.05) && near(m["garbage"], n, 0.05),
        "{m:?}"
    );
    assert!(
        near(m["hang"], n, 0.02) && near(m["reset"], n, 0.03),
        "{m:?}"
    );
    let m = tally(&s, Call::Post, n);
    assert!(
        near(m["accepted"], n, ok * 0.9) && near(m["rejected"], n, ok * 0.1),
        "{m:?}"
    );
}

#[test]
fn decisions_are_deterministic_for_a_seed() {
    let s = spec(0.5, 0.5, Faults::default());
    let run = |seed| {
        let mut r = Rng::new(seed);
        (0..50)
            .map(|_| s.decide(&mut r, Call::Ping))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn prices_stay_in_range_and_hang_waits_hang_ms() {
    let mut s = spec(1.0, 1.0, Faults::default());
    s.price_min = 2.5;
    s.price_max = 3.0;
    let mut r = Rng::new(4);
    for _ in 0..1000 {
        match s.decide(&mut r, Call::Ping).reply {
            Reply::Bid { price_cents } => assert!((250..=300).contains(&price_cents)),
            other => panic!("{other:?}"),
        }
    }
    s.faults.hang = 1.0;
    s.hang_ms = 1234;
    assert_eq!(
        s.decide(&mut r, Call::Post),
        Action {
            delay: Duration::from_millis(1234),
            reply: Reply::Hang
        }
    );
}

#[test]
fn rendered_answers_follow_the_buyer_protocol() {
    let body = |b: Vec<u8>| {
        let s = String::from_utf8(b).unwrap();
        serde_json::from_str::<serde_json::Value>(s.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    };
    let bid = body(render(Reply::Bid { price_cents: 1205 }, "b3", 7).unwrap());
    assert_eq!(bid["status"], "bid");
    assert_eq!(bid["price"].as_f64(), Some(12.05));
    assert_eq!(bid["ref"], "b3-r7");
    assert_eq!(
        body(render(Reply::NoBid, "b", 1).unwrap())["status"],
        "no_bid"
    );
    assert_eq!(
        body(render(Reply::Accepted, "b", 1).unwrap())["lead_id"],
        "b-L1"
    );
    assert_eq!(
        body(render(Reply::Rejected, "b", 1).unwrap())["status"],
        "rejected"
    );
    assert!(String::from_utf8(render(Reply::Http500, "b", 1).unwrap())
        .unwrap()
        .starts_with("HTTP/1.1 500"));
    assert_eq!(
        body(render(Reply::Healthy, "b", 1).unwrap())["status"],
        "ok"
    );
    let mut r = Rng::new(1);
    let s = spec(
        1.0,
        1.0,
        Faults {
            hang: 1.0,
            ..Faults::default()
        },
    );
    assert_eq!(
        s.decide(&mut r, Call::from_request("GET", "/healthz")),
        Action {
            delay: Duration::ZERO,
            reply: Reply::Healthy
        }
    );
    assert!(render(Reply::Hang, "b", 1).is_none() && render(Reply::Reset, "b", 1).is_none());
}

#[test]
fn latency_cli_forms_parse_and_bad_ones_are_usage_errors() {
    assert_eq!(
        LatencyDist::parse("fixed:5").unwrap(),
        LatencyDist::Fixed { ms: 5.0 }
    );
    assert_eq!(
        LatencyDist::parse("uniform:2:20").unwrap(),
        LatencyDist::Uniform {
            min_ms: 2.0,
            max_ms: 20.0
        }
    );
    assert!(matches!(
        LatencyDist::parse("lognormal:20:0.8"),
        Ok(LatencyDist::Lognormal { .. })
    ));
    for bad in [
        "",
        "fixed",
        "fixed:x",
        "uniform:5:1",
        "lognormal:1:9",
        "pareto:1",
        "fixed:-1",
    ] {
        assert!(
            matches!(LatencyDist::parse(bad), Err(Error::Usage(_))),
            "{bad}"
        );
    }
}

#[test]
fn fleet_spec_parses_from_toml_and_is_validated() {
    let text = r#"
        seed = 3
        [[buyers]]
        bid_rate = 0.5
        latency = { kind = "uniform", min_ms = 1, max_ms = 5 }
        faults = { hang = 0.01 }
        [[buyers]]
        id = "direct"
        accept_rate = 1.0
    "#;
    let f: FleetSpec = toml::from_str(text).unwrap();
    let f = f.validated().unwrap();
    assert_eq!(f.buyers[0].id, "b0");
    assert_eq!(f.buyers[1].id, "direct");
    assert_eq!(f.buyers[0].faults.hang, 0.01);
    let mut bad = f.clone();
    bad.buyers[0].faults = Faults {
        http_500: 0.6,
        reset: 0.6,
        ..Faults::default()
    };
    assert!(bad
        .validated()
        .unwrap_err()
        .to_string()
        .contains("more than 1"));
    assert!(
        toml::from_str::<FleetSpec>("[[buyers]]\nbid_rat = 1").is_err(),
        "typos are refused"
    );
}

fn one_buyer(s: BuyerSpec) -> (server::Listening, Conn) {
    let fleet = FleetSpec {
        seed: 9,
        base_port: 0,
        buyers: vec![s],
    };
    let l = server::start(&fleet).unwrap().remove(0);
    let addr = format!("127.0.0.1:{}", l.port).parse().unwrap();
    let c = Conn::connect(addr, Duration::from_secs(5)).unwrap();
    (l, c)
}

fn ping(c: &mut Conn) -> Result<crate::http::Response, HttpError> {
    c.send(&request(
        "POST",
        "h",
        "/ping",
        &[],
        br#"{"ping_id":"p","vertical":"v","lead":{},"test":false}"#,
    ))
    .unwrap();
    c.read_response()
}

#[test]
fn server_answers_on_one_keep_alive_connection_at_the_configured_rates() {
    let faults = Faults {
        http_500: 0.1,
        garbage: 0.1,
        ..Faults::default()
    };
    let (l, mut c) = one_buyer(spec(0.5, 1.0, faults));
    let n = 600;
    let (mut bids, mut no_bids, mut e500, mut garbage) = (0, 0, 0, 0);
    for _ in 0..n {
        let r = ping(&mut c).unwrap();
        match (
            r.status,
            serde_json::from_slice::<serde_json::Value>(&r.body),
        ) {
            (500, _) => e500 += 1,
            (200, Ok(v)) if v["status"] == "bid" => bids += 1,
            (200, Ok(v)) if v["status"] == "no_bid" => no_bids += 1,
            (200, Err(_)) => garbage += 1,
            other => panic!("{other:?}"),
        }
    }
    let within = |got: usize, p: f64| (got as f64 / n as f64 - p).abs() < 0.06;
    assert!(
        within(bids, 0.4) && within(no_bids, 0.4),
        "bids {bids} no_bids {no_bids}"
    );
    assert!(
        within(e500, 0.1) && within(garbage, 0.1),
        "500 {e500} garbage {garbage}"
    );
    let s = l.snapshot();
    assert_eq!((s.pings, s.bids, s.connections), (n as u64, bids as u64, 1));
}

#[test]
fn hang_fault_holds_the_connection_without_answering() {
    let mut s = spec(
        1.0,
        1.0,
        Faults {
            hang: 1.0,
            ..Faults::default()
        },
    );
    s.hang_ms = 3_000;
    let (l, mut c) = one_buyer(s);
    c.set_read_timeout(Duration::from_millis(300)).unwrap();
    assert!(matches!(ping(&mut c), Err(HttpError::Timeout)));
    // Still held open by the buyer: one open connection, one fault counted.
    assert_eq!(
        l.counters.open.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(l.snapshot().faults, 1);
}

#[test]
fn reset_fault_resets_the_connection() {
    let (_l, mut c) = one_buyer(spec(
        1.0,
        1.0,
        Faults {
            reset: 1.0,
            ..Faults::default()
        },
    ));
    match ping(&mut c) {
        Err(e) => assert!(matches!(e.label(), "reset" | "closed"), "{e:?}"),
        Ok(r) => panic!("expected a reset, got {r:?}"),
    }
}

/// The buyer side arms no may socket timeout, so none of its waits enter
/// may's io timer list (the race behind "A crash under load",
/// docs/performance.md). Fails if `buyer_conn` sets the old 60 s idle timeout.
#[test]
fn accepted_buyer_connections_arm_no_may_io_timer() {
    let l = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let _client = std::net::TcpStream::connect(addr).unwrap();
    let (s, _) = l.accept().unwrap();
    let c = server::buyer_conn(s).unwrap();
    assert_eq!(c.stream().read_timeout().unwrap(), None);
    assert_eq!(c.stream().write_timeout().unwrap(), None);
}
