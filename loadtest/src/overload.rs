//! The `overload` scenario (leadx issue #7): does leadx shed what it cannot
//! answer in time instead of queueing it?
//!
//! It starts a buyer fleet and a real `leadx serve` as `bench` does, finds
//! the maximum with a closed loop (pings answered 200 per second at a
//! concurrency that saturates the box), then offers twice that open-loop
//! and reports: goodput (pings answered 200 per second) against the
//! maximum, p50/p99 of the answered pings, how many pings were shed (503)
//! and how fast, time-outs and other failures, each with the goal:
//! goodput ≥ 90 % of the maximum, p99 answered ≤ deadline + 50 ms, the
//! 503s within 5 ms (p99). The verdict is computed by a pure function
//! ([`Overload::judge`]) so it is tested without starting anything.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::bench::{self, child, config};
use crate::driver::{self, Mix, Mode, RunResult, RunSpec};
use crate::report::CAVEAT;
use crate::stats::Percentiles;
use crate::target::Target;
use crate::{limits, procstat, Error};

/// Goodput must reach this share of the maximum (per cent).
pub const GOODPUT_PCT_GOAL: f64 = 90.0;
/// Answered pings' p99 may exceed the ping deadline by this much.
pub const ANSWERED_P99_SLACK_MS: u64 = 50;
/// Shed pings (503) must be answered within this (p99).
pub const SHED_P99_GOAL_MS: u64 = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct OverloadSpec {
    pub leadx_bin: PathBuf,
    pub self_exe: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    pub buyers: usize,
    pub mix: Mix,
    /// Closed-loop concurrency of the maximum-finding run.
    pub max_concurrency: usize,
    pub duration: Duration,
    /// Offered rate = this × the maximum.
    pub factor: f64,
    pub connections: usize,
    pub think: Duration,
    pub timeout: Duration,
    pub ready_wait: Duration,
    /// Extra `[server]` lines for the generated leadx config (e.g.
    /// `auctions_in_flight_max = 128`), to compare budgets.
    pub server_toml: String,
}

/// The verdict of one overload run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overload {
    pub deadline_ms: u64,
    /// Pings answered 200 per second, closed loop.
    pub max_per_s: f64,
    pub offered_per_s: u64,
    /// Pings answered 200 per second at the offered rate.
    pub goodput_per_s: f64,
    pub goodput_pct_of_max: f64,
    /// Pings answered 200, from their intended send time.
    pub answered: Percentiles,
    /// Pings answered 503 (shed), from their intended send time.
    pub shed: Percentiles,
    /// Pings the driver gave up on (no answer within its time-out).
    pub timeouts: u64,
    /// Other failures without an answer, other non-200 answers, and
    /// cycles never sent because the driver fell too far behind.
    pub other_failures: u64,
    pub other_statuses: u64,
    pub not_sent: u64,
    pub goals: Goals,
    /// leadx's own `leadx_shed_total` by reason, scraped after the run
    /// (empty when the scrape failed).
    pub leadx_shed: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Goals {
    pub goodput: bool,
    pub answered_p99: bool,
    pub shed_p99: bool,
}

impl Goals {
    pub fn all(&self) -> bool {
        self.goodput && self.answered_p99 && self.shed_p99
    }
}

/// Answered-200 first requests per second of a run.
pub fn ok_per_s(r: &RunResult) -> f64 {
    r.stats.first_ok.count() as f64 / r.elapsed.as_secs_f64().max(1e-9)
}

impl Overload {
    /// Judges the open-loop run `over` (offered `offered_per_s`) against
    /// the closed-loop maximum `max`, for a ping deadline of `deadline_ms`.
    pub fn judge(
        deadline_ms: u64,
        max: &RunResult,
        offered_per_s: u64,
        over: &RunResult,
    ) -> Overload {
        let max_per_s = ok_per_s(max);
        let goodput_per_s = ok_per_s(over);
        let goodput_pct_of_max = if max_per_s > 0.0 {
            100.0 * goodput_per_s / max_per_s
        } else {
            0.0
        };
        let answered = over.stats.first_ok.percentiles();
        let shed = over.stats.first_shed.percentiles();
        let first = first_endpoint(over);
        let outcome = |what: &str| {
            over.stats
                .outcomes
                .get(&format!("{first}:{what}"))
                .copied()
                .unwrap_or(0)
        };
        let timeouts = outcome("timeout");
        let failures: u64 = ["closed", "reset", "io_error", "malformed"]
            .iter()
            .map(|w| outcome(w))
            .sum();
        let first_answered = over.stats.first.count();
        let other_statuses = first_answered.saturating_sub(answered.count + shed.count);
        let goals = Goals {
            goodput: goodput_pct_of_max >= GOODPUT_PCT_GOAL,
            // No answered ping at all is not a pass.
            answered_p99: answered.count > 0
                && answered.p99_us <= (deadline_ms + ANSWERED_P99_SLACK_MS) * 1000,
            shed_p99: shed.p99_us <= SHED_P99_GOAL_MS * 1000,
        };
        Overload {
            deadline_ms,
            max_per_s,
            offered_per_s,
            goodput_per_s,
            goodput_pct_of_max,
            answered,
            shed,
            timeouts,
            other_failures: failures,
            other_statuses,
            not_sent: over.stats.not_sent,
            goals,
            leadx_shed: Default::default(),
        }
    }

    /// A short human summary (what `loadtest/runs/…/overload.md` holds).
    pub fn summary(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let ok = |b: bool| if b { "met" } else { "MISSED" };
        let mut t = String::new();
        let _ = writeln!(
            t,
            "max (closed loop): {:.0} pings answered 200/s",
            self.max_per_s
        );
        let _ = writeln!(t, "offered (open loop): {}/s", self.offered_per_s);
        let _ = writeln!(
            t,
            "goodput: {:.0}/s = {:.1} % of max (goal >= {GOODPUT_PCT_GOAL} %: {})",
            self.goodput_per_s,
            self.goodput_pct_of_max,
            ok(self.goals.goodput)
        );
        let _ = writeln!(
            t,
            "answered 200: {}  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (goal p99 <= {} ms: {})",
            self.answered.count,
            ms(self.answered.p50_us),
            ms(self.answered.p99_us),
            ms(self.answered.max_us),
            self.deadline_ms + ANSWERED_P99_SLACK_MS,
            ok(self.goals.answered_p99)
        );
        let _ = writeln!(
            t,
            "shed 503: {}  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (goal p99 <= {SHED_P99_GOAL_MS} ms: {})",
            self.shed.count, ms(self.shed.p50_us), ms(self.shed.p99_us), ms(self.shed.max_us), ok(self.goals.shed_p99)
        );
        let _ = writeln!(
            t,
            "time-outs: {}  other failures: {}  other statuses: {}  not sent: {}",
            self.timeouts, self.other_failures, self.other_statuses, self.not_sent
        );
        if !self.leadx_shed.is_empty() {
            let by: Vec<String> = self
                .leadx_shed
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(t, "leadx shed by reason (whole run): {}", by.join(" "));
        }
        let _ = writeln!(t, "caveat: {CAVEAT}");
        t
    }
}

/// The outcome-key prefix of a run's first request.
fn first_endpoint(r: &RunResult) -> &'static str {
    let has = |p: &str| r.stats.outcomes.keys().any(|k| k.starts_with(p));
    if has("direct:") {
        "direct"
    } else {
        "ping"
    }
}

/// Starts the fleet and leadx, runs both phases, stops everything and
/// writes `overload.json` and `overload.md` into `spec.out`.
pub fn run(spec: &OverloadSpec) -> Result<Overload, Error> {
    if !spec.leadx_bin.is_file() {
        return Err(Error::Child(format!(
            "leadx binary not found at {} (build it first: cargo build --release)",
            spec.leadx_bin.display()
        )));
    }
    if !(1.0..=10.0).contains(&spec.factor) {
        return Err(Error::Usage("--factor must be 1..=10".into()));
    }
    std::fs::create_dir_all(&spec.out)
        .map_err(|e| Error::io(format!("creating {}", spec.out.display()), e))?;
    let work = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    let fleet_path = work.path().join("fleet.json");
    let fleet = bench::fleet_spec(spec.buyers, spec.seed);
    write(
        &fleet_path,
        &serde_json::to_string_pretty(&fleet).expect("spec serializes"),
    )?;
    let lifetime_s = (2 * (spec.duration.as_secs() + 20) + 120).min(limits::BUYERS_LIFETIME_S_MAX);
    let (mut fleet_child, ports) = child::start_fleet(&spec.self_exe, &fleet_path, lifetime_s)?;
    let (direct, pings) = ports
        .buyers
        .split_last()
        .ok_or_else(|| Error::Child("buyer fleet has no buyers".into()))?;
    let port = bench::free_port()?;
    let (api_key, admin_token) = bench::secrets(spec.seed);
    let data_dir = work.path().join("data");
    let text = config::leadx_config(&config::ConfigParams {
        listen_port: port,
        data_dir: &data_dir,
        api_key: &api_key,
        admin_token: &admin_token,
        ping_buyers: pings,
        direct_buyer: Some(direct),
    });
    let text = text.replacen(
        "[server]\n",
        &format!("[server]\n{}\n", spec.server_toml),
        1,
    );
    let config_path = spec.out.join("leadx.toml");
    write(&config_path, &text)?;
    let log = work.path().join("leadx.log");
    let mut leadx = child::start_leadx(&spec.leadx_bin, &config_path, &log)?;
    child::wait_ready(&mut leadx, port, spec.ready_wait, &log)?;
    let result = phases(spec, Target::local(port), &api_key).map(|mut v| {
        v.leadx_shed = shed_counts(&scrape_metrics(port).unwrap_or_default());
        v
    });
    eprintln!("{}", leadx.stop());
    eprintln!("{}", fleet_child.stop());
    let verdict = result?;
    let json = serde_json::to_string_pretty(&verdict).expect("verdict serializes");
    write(&spec.out.join("overload.json"), &json)?;
    write(&spec.out.join("overload.md"), &verdict.summary())?;
    Ok(verdict)
}

/// The closed-loop maximum, then the open loop at `factor` × it.
fn phases(spec: &OverloadSpec, target: Target, api_key: &str) -> Result<Overload, Error> {
    let vertical = if spec.mix == Mix::Direct {
        config::DIRECT_VERTICAL
    } else {
        config::VERTICAL
    };
    let run_spec = |mode, lead_offset| RunSpec {
        target,
        api_key: api_key.to_string(),
        vertical: vertical.to_string(),
        mix: spec.mix,
        mode,
        duration: spec.duration,
        connections: spec.connections,
        think: spec.think,
        timeout: spec.timeout,
        seed: spec.seed,
        lead_offset,
        progress: true,
    };
    eprintln!("== max: closed loop, concurrency {}", spec.max_concurrency);
    let max = driver::run(&run_spec(
        Mode::Closed {
            concurrency: spec.max_concurrency,
        },
        0,
    ))?;
    let offered = ((ok_per_s(&max) * spec.factor).round() as u64).clamp(1, limits::RATE_PER_S_MAX);
    eprintln!(
        "== max {:.0}/s; offering {offered}/s open loop",
        ok_per_s(&max)
    );
    let d0 = procstat::sample("self");
    let over = driver::run(&run_spec(
        Mode::Open {
            rate_per_s: offered,
        },
        max.cycles + 1,
    ))?;
    let d1 = procstat::sample("self");
    if let Some((a, b)) = d0.zip(d1) {
        eprintln!(
            "driver CPU during the open loop: {:.0} ms",
            b.cpu_us.saturating_sub(a.cpu_us) as f64 / 1000.0
        );
    }
    Ok(Overload::judge(
        config::PING_TIMEOUT_MS,
        &max,
        offered,
        &over,
    ))
}

/// `GET /metrics` of the leadx under test, as text (plain blocking
/// socket: this runs on the main thread, not in a coroutine).
fn scrape_metrics(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: leadx\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.take(limits::BODY_BYTES_MAX as u64)
        .read_to_end(&mut raw)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// `leadx_shed_total{reason="…"} N` lines, by reason.
pub fn shed_counts(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("leadx_shed_total{reason=\""))
        .filter_map(|rest| {
            let (reason, value) = rest.split_once("\"} ")?;
            Some((reason.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn write(path: &std::path::Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    /// A run of `secs` seconds whose pings were answered 200 after
    /// `ok_us` each, 503 after `shed_us` each, plus `timeouts` time-outs.
    fn run_of(secs: u64, ok_us: &[u64], shed_us: &[u64], timeouts: u64) -> RunResult {
        let mut s = Stats::default();
        for &us in ok_us {
            s.first.record_us(us);
            s.first_ok.record_us(us);
            s.count("ping:bid");
        }
        for &us in shed_us {
            s.first.record_us(us);
            s.first_shed.record_us(us);
            s.count("ping:503");
        }
        for _ in 0..timeouts {
            s.count("ping:timeout");
        }
        s.errors = timeouts;
        s.answered = (ok_us.len() + shed_us.len()) as u64;
        let cycles = (ok_us.len() + shed_us.len()) as u64 + timeouts;
        RunResult {
            stats: s,
            elapsed: Duration::from_secs(secs),
            cycles,
        }
    }

    #[test]
    fn a_run_that_sheds_fast_and_keeps_goodput_meets_every_goal() {
        let max = run_of(1, &vec![40_000; 1000], &[], 0);
        let over = run_of(1, &vec![120_000; 950], &vec![800; 1050], 0);
        let v = Overload::judge(300, &max, 2000, &over);
        assert_eq!((v.max_per_s, v.goodput_per_s), (1000.0, 950.0));
        assert!((v.goodput_pct_of_max - 95.0).abs() < 1e-9);
        assert_eq!((v.answered.count, v.shed.count, v.timeouts), (950, 1050, 0));
        assert!(v.goals.all(), "{v:?}");
        let text = v.summary();
        assert!(
            text.contains("goodput: 950/s = 95.0 % of max (goal >= 90 %: met)"),
            "{text}"
        );
        assert!(text.contains("shed 503: 1050"), "{text}");
    }

    #[test]
    fn queueing_instead_of_shedding_misses_the_latency_goal_and_counts_timeouts() {
        let max = run_of(1, &vec![40_000; 1000], &[], 0);
        // The measurement: everything answered, seconds late.
        let over = run_of(1, &vec![5_300_000; 950], &[], 400);
        let v = Overload::judge(300, &max, 2000, &over);
        assert!(!v.goals.answered_p99 && v.goals.goodput);
        assert_eq!(v.timeouts, 400);
        assert!(
            v.summary().contains("(goal p99 <= 350 ms: MISSED)"),
            "{}",
            v.summary()
        );
    }

    #[test]
    fn slow_503s_or_low_goodput_miss_their_goals() {
        let max = run_of(1, &vec![40_000; 1000], &[], 0);
        let v = Overload::judge(
            300,
            &max,
            2000,
            &run_of(1, &vec![100_000; 950], &vec![50_000; 1000], 0),
        );
        assert!(!v.goals.shed_p99 && v.goals.goodput && v.goals.answered_p99);
        let v = Overload::judge(
            300,
            &max,
            2000,
            &run_of(1, &vec![100_000; 500], &vec![500; 1500], 0),
        );
        assert!(!v.goals.goodput && v.goals.shed_p99);
        assert!((v.goodput_pct_of_max - 50.0).abs() < 1e-9);
    }

    #[test]
    fn no_answer_at_all_is_not_a_pass_and_other_statuses_are_counted() {
        let max = run_of(1, &[], &[], 0);
        let v = Overload::judge(300, &max, 1, &run_of(1, &[], &[], 3));
        assert_eq!(v.goodput_pct_of_max, 0.0);
        assert!(!v.goals.answered_p99 && !v.goals.goodput);
        let mut over = run_of(1, &[1_000], &[], 0);
        over.stats.first.record_us(2_000); // a 422, say
        let v = Overload::judge(300, &max, 1, &over);
        assert_eq!(v.other_statuses, 1);
    }

    #[test]
    fn shed_counts_are_read_from_the_exposition() {
        let text = "# TYPE leadx_shed_total counter\nleadx_shed_total{reason=\"deadline\"} 12\nleadx_shed_total{reason=\"auctions\"} 3\nleadx_shed_totals 9\n";
        let c = shed_counts(text);
        assert_eq!(c.len(), 2);
        assert_eq!((c["deadline"], c["auctions"]), (12, 3));
    }

    #[test]
    fn report_json_has_the_documented_keys() {
        let max = run_of(1, &[1_000], &[], 0);
        let v = Overload::judge(300, &max, 2, &run_of(1, &[1_000], &[500], 0));
        let j: serde_json::Value = serde_json::to_value(&v).unwrap();
        for k in [
            "deadline_ms",
            "max_per_s",
            "offered_per_s",
            "goodput_per_s",
            "goodput_pct_of_max",
            "answered",
            "shed",
            "timeouts",
            "goals",
        ] {
            assert!(j.get(k).is_some(), "missing {k}");
        }
        assert_eq!(j["shed"]["count"], 1);
        assert_eq!(j["goals"]["shed_p99"], true);
    }
}
