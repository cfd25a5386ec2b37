//! What a run or a sweep prints and writes: the final table, the JSON
//! report and the SVG plot of latency percentiles against offered rate.
//!
//! Every number carries the machine caveat: the driver and the buyer fleet
//! share the cores with leadx, so absolute numbers understate leadx.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::driver::{Mix, Mode, RunResult};
use crate::procstat::ProcSample;
use crate::stats::Percentiles;
use crate::Error;

/// Said next to every published number.
pub const CAVEAT: &str = "driver, buyer simulator and leadx share the same cores; \
numbers include the tester's own CPU contention";

/// leadx's resource use over one scenario.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerUse {
    pub cpu_us: u64,
    /// leadx CPU (utime+stime) ÷ HTTP requests answered or failed.
    pub cpu_us_per_request: f64,
    /// VmHWM at the end of the scenario (peak since leadx started), KiB.
    pub rss_peak_kib: u64,
    pub threads: u64,
}

/// One scenario (one rate of a sweep, or one `run`).
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub mix: Mix,
    /// "open" or "closed".
    pub mode: &'static str,
    pub offered_per_s: Option<u64>,
    pub concurrency: Option<usize>,
    pub duration_s: f64,
    pub achieved_per_s: f64,
    /// Ping, direct post or healthz, from intended send time (open loop).
    pub latency_us: Percentiles,
    pub post_latency_us: Percentiles,
    /// Ping intended send → post answered.
    pub cycle_us: Percentiles,
    pub outcomes: BTreeMap<String, u64>,
    pub answered: u64,
    pub errors: u64,
    pub non_2xx: u64,
    pub not_sent: u64,
    pub bids_per_ping: f64,
    pub leadx: Option<ServerUse>,
    pub buyers_cpu_us: Option<u64>,
    pub driver_cpu_us: u64,
}

impl Scenario {
    /// Summarises a run; `leadx` is (before, after) samples when known.
    pub fn from_run(
        name: String,
        mix: Mix,
        mode: Mode,
        r: &RunResult,
        leadx: Option<(ProcSample, ProcSample)>,
    ) -> Scenario {
        let (mode_name, offered, conc) = match mode {
            Mode::Open { rate_per_s } => ("open", Some(rate_per_s), None),
            Mode::Closed { concurrency } => ("closed", None, Some(concurrency)),
        };
        let requests = r.stats.answered + r.stats.errors;
        let leadx = leadx.map(|(a, b)| {
            let cpu_us = b.cpu_us.saturating_sub(a.cpu_us);
            ServerUse {
                cpu_us,
                cpu_us_per_request: cpu_us as f64 / requests.max(1) as f64,
                rss_peak_kib: b.rss_peak_kib,
                threads: b.threads,
            }
        });
        Scenario {
            name,
            mix,
            mode: mode_name,
            offered_per_s: offered,
            concurrency: conc,
            duration_s: r.elapsed.as_secs_f64(),
            achieved_per_s: r.achieved_per_s(),
            latency_us: r.stats.first.percentiles(),
            post_latency_us: r.stats.post.percentiles(),
            cycle_us: r.stats.cycle.percentiles(),
            outcomes: r.stats.outcomes.clone(),
            answered: r.stats.answered,
            errors: r.stats.errors,
            non_2xx: r.stats.non_2xx,
            not_sent: r.stats.not_sent,
            bids_per_ping: r.stats.bids_per_ping(),
            leadx,
            buyers_cpu_us: None,
            driver_cpu_us: 0,
        }
    }
}

/// The whole report of a run or sweep.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: u32,
    pub date: String,
    pub machine: String,
    pub cores: usize,
    pub caveat: &'static str,
    pub scenarios: Vec<Scenario>,
}

impl Report {
    pub fn new(date: String, machine: String, scenarios: Vec<Scenario>) -> Report {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Report {
            schema: 1,
            date,
            machine,
            cores,
            caveat: CAVEAT,
            scenarios,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The final table, one row per scenario (latencies in ms).
pub fn table(scenarios: &[Scenario]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<22} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>6} {:>9} {:>9} {:>8} {:>8} {:>4}",
        "scenario", "offered", "achieved", "p50", "p90", "p99", "p99.9", "max", "errors", "bids/p", "cycle p50", "cycle p99", "cpu-us/r", "rss-MiB", "thr"
    );
    for s in scenarios {
        let l = &s.latency_us;
        let (cpu, rss, thr) = match &s.leadx {
            Some(u) => (
                format!("{:.0}", u.cpu_us_per_request),
                format!("{:.1}", u.rss_peak_kib as f64 / 1024.0),
                u.threads.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let offered = s
            .offered_per_s
            .map(|r| r.to_string())
            .unwrap_or_else(|| format!("c={}", s.concurrency.unwrap_or(0)));
        let _ = writeln!(
            t,
            "{:<22} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>7} {:>6.2} {:>9.2} {:>9.2} {:>8} {:>8} {:>4}",
            s.name, offered, s.achieved_per_s, ms(l.p50_us), ms(l.p90_us), ms(l.p99_us), ms(l.p999_us), ms(l.max_us),
            s.errors + s.not_sent, s.bids_per_ping, ms(s.cycle_us.p50_us), ms(s.cycle_us.p99_us), cpu, rss, thr
        );
    }
    for s in scenarios {
        let counts: Vec<String> = s.outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(t, "{}: {}", s.name, counts.join(" "));
    }
    let _ = writeln!(t, "latencies in ms; caveat: {CAVEAT}");
    t
}

/// Picks one percentile out of a summary.
type Pick = fn(&Percentiles) -> u64;

/// Plots p50/p90/p99/p99.9 of the first request against offered rate, one
/// set of lines per mix that has open-loop rows.
pub fn write_svg(path: &Path, scenarios: &[Scenario]) -> Result<(), Error> {
    let open: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| s.offered_per_s.is_some())
        .collect();
    let x_max = open
        .iter()
        .filter_map(|s| s.offered_per_s)
        .max()
        .unwrap_or(1) as f64
        * 1.05;
    let y_max = open
        .iter()
        .map(|s| ms(s.latency_us.p999_us))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let draw_err = |e: String| {
        Error::io(
            format!("drawing {}", path.display()),
            std::io::Error::other(e),
        )
    };
    root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "leadx latency vs offered rate (driver+buyers share the cores)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| draw_err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("offered rate (/s)")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| draw_err(e.to_string()))?;
    let picks: [(&str, Pick); 4] = [
        ("p50", |p| p.p50_us),
        ("p90", |p| p.p90_us),
        ("p99", |p| p.p99_us),
        ("p99.9", |p| p.p999_us),
    ];
    let mixes: Vec<Mix> = open.iter().fold(Vec::new(), |mut v, s| {
        if !v.contains(&s.mix) {
            v.push(s.mix);
        }
        v
    });
    for (mi, mix) in mixes.iter().enumerate() {
        for (pi, (label, pick)) in picks.iter().enumerate() {
            let pts: Vec<(f64, f64)> = open
                .iter()
                .filter(|s| s.mix == *mix)
                .map(|s| (s.offered_per_s.unwrap_or(0) as f64, ms(pick(&s.latency_us))))
                .collect();
            let color = Palette99::pick(mi * 4 + pi).to_rgba();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| draw_err(e.to_string()))?
                .label(format!("{mix:?} {label}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| draw_err(e.to_string()))?;
    root.present().map_err(|e| draw_err(e.to_string()))
}

/// Writes `report.json`, `table.txt` and `latency.svg` into `dir`.
pub fn write_all(dir: &Path, report: &Report) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| Error::io(format!("writing {}", dir.join(name).display()), e))
    };
    write("report.json", report.to_json())?;
    write("table.txt", table(&report.scenarios))?;
    write_svg(&dir.join("latency.svg"), &report.scenarios)
}

#[cfg(test)]
mod tests;
