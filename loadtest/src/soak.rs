//! The `soak` scenario: one fixed open-loop rate for a long time against a
//! real `leadx serve` (the bench's fleet and config), sampling leadx's
//! resident memory (`VmRSS` from `/proc/<pid>/status`) and the ping latency
//! of each sampling window. Memory that grows with traffic rather than with
//! configuration shows up as a rising RSS line, which a short sweep hides.
//!
//! It writes `soak.csv` (one row per sample), `soak.svg` (RSS and latency
//! over time, drawn here as a few polylines: a plotting crate's output is
//! ten times larger) and `soak.md` (a short summary). leadx's own log goes
//! to the system temp directory, never next to the results: it is large.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bench::{self, child, config};
use crate::driver::{self, Mix, Mode, RunSpec};
use crate::stats::{Latency, Stats};
use crate::target::Target;
use crate::{limits, procstat, Error};

/// One soak run's parameters.
#[derive(Debug, Clone)]
pub struct SoakSpec {
    pub leadx_bin: PathBuf,
    /// This program, started again as the buyer fleet.
    pub self_exe: PathBuf,
    pub rate_per_s: u64,
    pub duration: Duration,
    pub sample_every: Duration,
    pub buyers: usize,
    pub out: PathBuf,
    pub machine: String,
    pub seed: u64,
    pub connections: usize,
    pub think: Duration,
    pub timeout: Duration,
    pub ready_wait: Duration,
    /// Drawn as a dashed line on the RSS panel (MiB), e.g. the issue's goal.
    pub rss_goal_mib: Option<f64>,
}

/// One sampling window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Seconds since the run's start, at the window's end.
    pub t_s: f64,
    /// leadx's resident set at the window's end, KiB (0 if unreadable).
    pub rss_kib: u64,
    /// Answers (any status) per second over the window.
    pub answers_per_s: f64,
    /// Latency of the pings (first requests) answered in the window.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Requests without an answer, and non-2xx answers, in the window.
    pub errors: u64,
    pub non_2xx: u64,
}

/// Turns cumulative statistics, sampled now and then, into windows.
#[derive(Debug, Default)]
pub struct Windows {
    prev: Option<(f64, Stats)>,
}

impl Windows {
    /// The window from the previous call (or the start) to `t`.
    pub fn next(&mut self, t: Duration, stats: &Stats, rss_kib: u64) -> Sample {
        let t_s = t.as_secs_f64();
        let empty = Stats::default();
        let (t0, before) = match &self.prev {
            Some((t0, s)) => (*t0, s),
            None => (0.0, &empty),
        };
        let latency: Latency = stats.first.since(&before.first);
        let p = latency.percentiles();
        let sample = Sample {
            t_s,
            rss_kib,
            answers_per_s: stats.answered.saturating_sub(before.answered) as f64
                / (t_s - t0).max(1e-3),
            p50_us: p.p50_us,
            p99_us: p.p99_us,
            max_us: p.max_us,
            errors: stats.errors.saturating_sub(before.errors),
            non_2xx: stats.non_2xx.saturating_sub(before.non_2xx),
        };
        self.prev = Some((t_s, stats.clone()));
        sample
    }
}

/// The samples as CSV, with a header; MiB and ms for people.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "t_s,rss_mib,answers_per_s,ping_p50_ms,ping_p99_ms,ping_max_ms,errors,non_2xx\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{:.0},{:.1},{:.0},{:.2},{:.2},{:.2},{},{}",
            s.t_s,
            mib(s.rss_kib),
            s.answers_per_s,
            ms(s.p50_us),
            ms(s.p99_us),
            ms(s.max_us),
            s.errors,
            s.non_2xx
        );
    }
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (an axis top).
pub fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

const SVG_W: f64 = 720.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 700.0;

/// A panel: where it is drawn and the top of its y axis.
struct Panel {
    top: f64,
    bottom: f64,
    y_max: f64,
    t_max: f64,
}

impl Panel {
    fn x(&self, t: f64) -> f64 {
        LEFT + (RIGHT - LEFT) * (t / self.t_max).clamp(0.0, 1.0)
    }
    fn y(&self, v: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * (v / self.y_max).clamp(0.0, 1.0)
    }

    /// Frame, four grid lines with their values, and the axis name.
    fn frame(&self, out: &mut String, name: &str) {
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            self.top,
            RIGHT - LEFT,
            self.bottom - self.top
        );
        for i in 1..=4 {
            let v = self.y_max * f64::from(i) / 4.0;
            let y = self.y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 4.0,
                y + 4.0,
                axis_label(v)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">0</text><text x="{LEFT}" y="{}">{name}</text>"#,
            LEFT - 4.0,
            self.bottom + 4.0,
            self.top - 6.0
        );
    }

    fn line(
        &self,
        out: &mut String,
        points: impl Iterator<Item = (f64, f64)>,
        colour: &str,
        dashed: bool,
    ) {
        let pts: Vec<String> = points
            .map(|(t, v)| format!("{:.1},{:.1}", self.x(t), self.y(v)))
            .collect();
        let dash = if dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} points="{}"/>"#,
            pts.join(" ")
        );
    }
}

fn axis_label(v: f64) -> String {
    if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// RSS (top) and ping latency p50/p99 (bottom) against time, as a small
/// self-contained SVG.
pub fn svg(samples: &[Sample], title: &str, rss_goal_mib: Option<f64>) -> String {
    let t_max = samples.iter().map(|s| s.t_s).fold(0.0, f64::max).max(1.0);
    let rss_max = samples
        .iter()
        .map(|s| mib(s.rss_kib))
        .fold(rss_goal_mib.unwrap_or(0.0), f64::max);
    let lat_max = samples.iter().map(|s| ms(s.p99_us)).fold(0.0, f64::max);
    let rss = Panel {
        top: 50.0,
        bottom: 210.0,
        y_max: nice_ceiling(rss_max),
        t_max,
    };
    let lat = Panel {
        top: 260.0,
        bottom: 420.0,
        y_max: nice_ceiling(lat_max),
        t_max,
    };
    let mut out = String::with_capacity(4096 + samples.len() * 40);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="460" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="13">{}</text>"#,
        escape(title)
    );
    rss.frame(&mut out, "leadx RSS, MiB");
    if let Some(goal) = rss_goal_mib {
        rss.line(
            &mut out,
            [(0.0, goal), (t_max, goal)].into_iter(),
            "#c00",
            true,
        );
        let _ = writeln!(
            out,
            r##"<text x="{RIGHT}" y="{:.1}" text-anchor="end" fill="#c00">goal {goal:.0}</text>"##,
            rss.y(goal) - 4.0
        );
    }
    rss.line(
        &mut out,
        samples.iter().map(|s| (s.t_s, mib(s.rss_kib))),
        "#1f5fbf",
        false,
    );
    lat.frame(
        &mut out,
        "ping latency per window, ms: p50 (green), p99 (orange)",
    );
    lat.line(
        &mut out,
        samples.iter().map(|s| (s.t_s, ms(s.p50_us))),
        "#2a9d3a",
        false,
    );
    lat.line(
        &mut out,
        samples.iter().map(|s| (s.t_s, ms(s.p99_us))),
        "#e07b00",
        false,
    );
    for i in 0..=4 {
        let t = t_max * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="438" text-anchor="middle">{t:.0}</text>"#,
            lat.x(t)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="454" text-anchor="middle">seconds</text></svg>"#,
        (LEFT + RIGHT) / 2.0
    );
    out
}

/// The summary written next to the CSV. `hwm_kib` is leadx's VmHWM (its
/// true peak) read just before it was stopped.
pub fn summary(
    spec: &SoakSpec,
    samples: &[Sample],
    result: &driver::RunResult,
    date: &str,
    hwm_kib: Option<u64>,
) -> String {
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let first_min = samples
        .iter()
        .find(|s| s.t_s >= 60.0)
        .map(|s| s.rss_kib)
        .unwrap_or(0);
    let last = samples.last().map(|s| s.rss_kib).unwrap_or(0);
    let p = result.stats.first.percentiles();
    let mut out = String::new();
    let _ = writeln!(out, "# soak {date} ({})\n", spec.machine);
    let _ = writeln!(
        out,
        "ping-post at {}/s for {} s, {} connections, think {} ms; sampled every {} s.\n",
        spec.rate_per_s,
        spec.duration.as_secs(),
        spec.connections,
        spec.think.as_millis(),
        spec.sample_every.as_secs()
    );
    let _ = writeln!(
        out,
        "- leadx RSS: after 60 s {:.1} MiB, at the end {:.1} MiB, peak sampled {:.1} MiB, VmHWM {}",
        mib(first_min),
        mib(last),
        mib(peak),
        hwm_kib.map_or("unknown".to_string(), |k| format!("{:.1} MiB", mib(k)))
    );
    let _ = writeln!(
        out,
        "- achieved {:.0} cycles/s; answered {}, errors {}, non-2xx {}, not sent {}",
        result.achieved_per_s(),
        result.stats.answered,
        result.stats.errors,
        result.stats.non_2xx,
        result.stats.not_sent
    );
    let _ = writeln!(
        out,
        "- ping latency over the run: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(p.p50_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us)
    );
    let _ = writeln!(out, "\nCaveat: {}.", crate::report::CAVEAT);
    out
}

/// Starts the fleet and leadx, runs the soak, writes the results.
pub fn soak(spec: &SoakSpec) -> Result<Vec<Sample>, Error> {
    if spec.buyers == 0 || spec.buyers >= limits::BUYERS_MAX {
        return Err(Error::Usage(format!(
            "--buyers must be 1..{}",
            limits::BUYERS_MAX
        )));
    }
    std::fs::create_dir_all(&spec.out)
        .map_err(|e| Error::io(format!("creating {}", spec.out.display()), e))?;
    let work = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    let fleet_path = work.path().join("fleet.json");
    write(
        &fleet_path,
        &serde_json::to_string_pretty(&bench::fleet_spec(spec.buyers, spec.seed))
            .expect("spec serializes"),
    )?;
    let lifetime_s = (spec.duration.as_secs() + 180).min(limits::BUYERS_LIFETIME_S_MAX);
    let (mut fleet, ports) = child::start_fleet(&spec.self_exe, &fleet_path, lifetime_s)?;
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
    let config_path = spec.out.join("leadx.toml");
    write(&config_path, &text)?;
    let log = std::env::temp_dir().join(format!("leadx-soak-{}.log", std::process::id()));
    let mut leadx = child::start_leadx(&spec.leadx_bin, &config_path, &log)?;
    child::wait_ready(&mut leadx, port, spec.ready_wait, &log)?;
    eprintln!(
        "leadx pid {} ready on 127.0.0.1:{port} (log {}); buyer fleet pid {}",
        leadx.pid(),
        log.display(),
        ports.pid
    );

    let run_spec = RunSpec {
        target: Target::local(port),
        api_key,
        vertical: config::VERTICAL.to_string(),
        mix: Mix::PingPost,
        mode: Mode::Open {
            rate_per_s: spec.rate_per_s,
        },
        duration: spec.duration,
        connections: spec.connections,
        think: spec.think,
        timeout: spec.timeout,
        seed: spec.seed,
        lead_offset: 0,
        progress: false,
    };
    let pid = leadx.pid().to_string();
    let mut windows = Windows::default();
    let mut samples = Vec::new();
    let result = driver::run_sampled(&run_spec, spec.sample_every, &mut |t, stats| {
        let s = windows.next(t, stats, procstat::rss_kib(&pid).unwrap_or(0));
        eprintln!("[{:>5.0}s] rss {:>6.1} MiB  {:>6.0} answers/s  p50 {:>7.2} ms  p99 {:>8.2} ms  errors {}", s.t_s, mib(s.rss_kib), s.answers_per_s, ms(s.p50_us), ms(s.p99_us), s.errors);
        samples.push(s);
    })?;
    let hwm_kib = procstat::sample(&pid).map(|s| s.rss_peak_kib);
    eprintln!("{}", leadx.stop());
    eprintln!("{}", fleet.stop());
    let date = bench::today();
    let title = format!(
        "leadx soak {date} ({}): ping-post {}/s for {} s",
        spec.machine,
        spec.rate_per_s,
        spec.duration.as_secs()
    );
    write(&spec.out.join("soak.csv"), &csv(&samples))?;
    write(
        &spec.out.join("soak.svg"),
        &svg(&samples, &title, spec.rss_goal_mib),
    )?;
    write(
        &spec.out.join("soak.md"),
        &summary(spec, &samples, &result, &date, hwm_kib),
    )?;
    Ok(samples)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
#[path = "soak_tests.rs"]
mod tests;
