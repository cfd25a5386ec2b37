//! Report shape tests: the JSON keys a reader (or a CI check) relies on.

use std::time::Duration;

use super::*;
use crate::stats::Stats;

fn result(latencies_us: &[u64]) -> RunResult {
    let mut stats = Stats::default();
    for &us in latencies_us {
        stats.first.record_us(us);
        stats.answered += 1;
        stats.count("ping:bid");
    }
    stats.pings = latencies_us.len() as u64;
    stats.bids = stats.pings / 2;
    stats.errors = 1;
    RunResult {
        stats,
        elapsed: Duration::from_secs(2),
        cycles: latencies_us.len() as u64 + 1,
    }
}

fn scenarios() -> Vec<Scenario> {
    let before = ProcSample {
        cpu_us: 1_000_000,
        rss_peak_kib: 10_240,
        threads: 3,
    };
    let after = ProcSample {
        cpu_us: 1_500_000,
        rss_peak_kib: 20_480,
        threads: 4,
    };
    vec![
        Scenario::from_run(
            "ping-post@100".into(),
            Mix::PingPost,
            Mode::Open { rate_per_s: 100 },
            &result(&[1000, 2000, 3000]),
            Some((before, after)),
        ),
        Scenario::from_run(
            "ping-post@200".into(),
            Mix::PingPost,
            Mode::Open { rate_per_s: 200 },
            &result(&[2000, 4000, 9000]),
            None,
        ),
        Scenario::from_run(
            "healthz".into(),
            Mix::Healthz,
            Mode::Closed { concurrency: 8 },
            &result(&[100]),
            None,
        ),
    ]
}

#[test]
fn report_json_has_the_documented_shape() {
    let r = Report::new("2025-01-01".into(), "2core".into(), scenarios());
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["machine"], "2core");
    assert!(v["caveat"].as_str().unwrap().contains("share"));
    let s = &v["scenarios"][0];
    for k in [
        "name",
        "mix",
        "mode",
        "offered_per_s",
        "achieved_per_s",
        "latency_us",
        "post_latency_us",
        "cycle_us",
        "outcomes",
        "answered",
        "errors",
        "non_2xx",
        "not_sent",
        "bids_per_ping",
        "leadx",
        "buyers_cpu_us",
        "driver_cpu_us",
    ] {
        assert!(s.get(k).is_some(), "missing {k}");
    }
    for k in [
        "count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
    ] {
        assert!(s["latency_us"].get(k).is_some(), "missing latency_us.{k}");
    }
    assert_eq!(s["mix"], "ping-post");
    assert_eq!(s["mode"], "open");
    assert_eq!(s["offered_per_s"], 100);
    assert_eq!(s["achieved_per_s"], 1.5);
    let max = s["latency_us"]["max_us"].as_u64().unwrap();
    assert!(
        (3000..=3003).contains(&max),
        "HDR max within its 3-digit precision: {max}"
    );
    // 500 ms of leadx CPU over 3 answered + 1 failed request.
    assert_eq!(s["leadx"]["cpu_us_per_request"], 125_000.0);
    assert_eq!(s["leadx"]["rss_peak_kib"], 20_480);
    assert_eq!(v["scenarios"][2]["mode"], "closed");
    assert_eq!(v["scenarios"][2]["concurrency"], 8);
    assert!(v["scenarios"][1]["leadx"].is_null());
}

#[test]
fn table_has_a_row_per_scenario_and_the_caveat() {
    let t = table(&scenarios());
    assert!(t.lines().next().unwrap().contains("p99.9"));
    assert!(t.contains("ping-post@100") && t.contains("healthz") && t.contains("c=8"));
    assert!(t.contains("125000"), "cpu-us per request column: {t}");
    assert!(t.contains(CAVEAT));
}

#[test]
fn all_files_are_written_and_the_plot_is_svg() {
    let dir = tempfile::tempdir().unwrap();
    write_all(
        dir.path(),
        &Report::new("d".into(), "m".into(), scenarios()),
    )
    .unwrap();
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    assert!(svg.contains("PingPost p99"));
    assert!(dir.path().join("report.json").exists() && dir.path().join("table.txt").exists());
}
