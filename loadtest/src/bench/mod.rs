//! The orchestrator: starts a buyer fleet and `leadx serve` with a generated
//! config, waits for readiness, sweeps the offered rates (ping-post, then
//! direct-post durable sales), runs the hello-world baseline, stops
//! everything and writes the report.

pub mod child;
pub mod config;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::buyers::{BuyerSpec, Faults, FleetSpec, LatencyDist};
use crate::driver::{self, Mix, Mode, RunSpec};
use crate::procstat::{self, ProcSample};
use crate::report::{self, Report, Scenario};
use crate::target::Target;
use crate::{limits, Error};
use child::Managed;

/// One bench sweep's parameters.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub leadx_bin: PathBuf,
    /// This program, started again as the buyer fleet.
    pub self_exe: PathBuf,
    pub rates: Vec<u64>,
    pub duration: Duration,
    pub buyers: usize,
    pub out: PathBuf,
    pub machine: String,
    pub seed: u64,
    pub connections: usize,
    pub think: Duration,
    pub timeout: Duration,
    pub healthz_concurrency: usize,
    pub direct: bool,
    pub healthz: bool,
    pub ready_wait: Duration,
}

/// Parses a rate list like `500,1000,2000`, refusing empty items, non
/// numbers, zero and rates past `limits::RATE_PER_S_MAX`.
pub fn parse_rates(s: &str) -> Result<Vec<u64>, Error> {
    let bad = |why: String| Error::Usage(format!("--rates {s:?}: {why}"));
    let rates = s
        .split(',')
        .enumerate()
        .map(|(i, item)| match item.trim() {
            "" => Err(bad(format!("item {} is empty", i + 1))),
            t => match t.parse::<u64>() {
                Ok(r) if (1..=limits::RATE_PER_S_MAX).contains(&r) => Ok(r),
                Ok(_) => Err(bad(format!(
                    "item {} ({t}) is outside 1..={}",
                    i + 1,
                    limits::RATE_PER_S_MAX
                ))),
                Err(_) => Err(bad(format!(
                    "item {} ({t:?}) is not a whole number of requests per second",
                    i + 1
                ))),
            },
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rates.len() > limits::RATES_MAX {
        return Err(bad(format!("at most {} rates", limits::RATES_MAX)));
    }
    Ok(rates)
}

/// The fleet a bench uses: `n` ping buyers with a realistic profile and a
/// few faults, plus one always-accepting direct-post buyer (last).
pub fn fleet_spec(n: usize, seed: u64) -> FleetSpec {
    let mut buyers: Vec<BuyerSpec> = (0..n)
        .map(|i| BuyerSpec {
            id: format!("b{i}"),
            latency: LatencyDist::Lognormal {
                median_ms: 10.0 + 5.0 * i as f64,
                sigma: 0.6,
            },
            bid_rate: 0.6,
            faults: Faults {
                http_500: 0.005,
                garbage: 0.005,
                hang: 0.001,
                reset: 0.002,
            },
            hang_ms: 5_000,
            ..BuyerSpec::default()
        })
        .collect();
    buyers.push(BuyerSpec {
        id: "direct".into(),
        latency: LatencyDist::Lognormal {
            median_ms: 10.0,
            sigma: 0.4,
        },
        accept_rate: 1.0,
        ..BuyerSpec::default()
    });
    FleetSpec {
        seed,
        base_port: 0,
        buyers,
    }
}

/// Runs the whole sweep and writes the report into `spec.out`.
pub fn bench(spec: &BenchSpec) -> Result<Report, Error> {
    if !spec.leadx_bin.is_file() {
        return Err(Error::Child(format!(
            "leadx binary not found at {} (build it first: cargo build --release)",
            spec.leadx_bin.display()
        )));
    }
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
    let fleet = fleet_spec(spec.buyers, spec.seed);
    write(
        &fleet_path,
        &serde_json::to_string_pretty(&fleet).expect("spec serializes"),
    )?;
    let scenario_count = spec.rates.len() * (1 + spec.direct as usize) + spec.healthz as usize;
    let lifetime_s = (scenario_count as u64 * (spec.duration.as_secs() + 20) + 120)
        .min(limits::BUYERS_LIFETIME_S_MAX);
    let (mut fleet_child, ports) = child::start_fleet(&spec.self_exe, &fleet_path, lifetime_s)?;
    let (direct, pings) = ports
        .buyers
        .split_last()
        .ok_or_else(|| Error::Child("buyer fleet has no buyers".into()))?;

    let port = free_port()?;
    let (api_key, admin_token) = secrets(spec.seed);
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
    let log = spec.out.join("leadx.log");
    let mut leadx = child::start_leadx(&spec.leadx_bin, &config_path, &log)?;
    child::wait_ready(&mut leadx, port, spec.ready_wait, &log)?;
    eprintln!(
        "leadx pid {} ready on 127.0.0.1:{port}; buyer fleet pid {}",
        leadx.pid(),
        ports.pid
    );

    let scenarios = sweep(spec, Target::local(port), &api_key, &leadx, &fleet_child)?;
    eprintln!("{}", leadx.stop());
    eprintln!("{}", fleet_child.stop());
    let report = Report::new(today(), spec.machine.clone(), scenarios);
    report::write_all(&spec.out, &report)?;
    Ok(report)
}

/// Runs every scenario in turn against the ready leadx.
fn sweep(
    spec: &BenchSpec,
    target: Target,
    api_key: &str,
    leadx: &Managed,
    fleet: &Managed,
) -> Result<Vec<Scenario>, Error> {
    let mut plan: Vec<(String, Mix, &str, Mode)> = Vec::new();
    for &r in &spec.rates {
        plan.push((
            format!("ping-post@{r}"),
            Mix::PingPost,
            config::VERTICAL,
            Mode::Open { rate_per_s: r },
        ));
    }
    if spec.direct {
        for &r in &spec.rates {
            plan.push((
                format!("direct@{r}"),
                Mix::Direct,
                config::DIRECT_VERTICAL,
                Mode::Open { rate_per_s: r },
            ));
        }
    }
    if spec.healthz {
        let c = spec.healthz_concurrency;
        plan.push((
            format!("healthz-c{c}"),
            Mix::Healthz,
            config::VERTICAL,
            Mode::Closed { concurrency: c },
        ));
    }
    let mut out = Vec::with_capacity(plan.len());
    let mut lead_offset = 0;
    for (name, mix, vertical, mode) in plan {
        eprintln!("== {name}");
        let run_spec = RunSpec {
            target,
            api_key: api_key.to_string(),
            vertical: vertical.to_string(),
            mix,
            mode,
            duration: spec.duration,
            connections: spec.connections,
            think: spec.think,
            timeout: spec.timeout,
            seed: spec.seed,
            lead_offset,
            progress: true,
        };
        let (l0, f0, d0) = (sample(leadx), sample(fleet), procstat::sample("self"));
        let result = driver::run(&run_spec)?;
        let (l1, f1, d1) = (sample(leadx), sample(fleet), procstat::sample("self"));
        lead_offset += result.cycles + 1;
        let mut s = Scenario::from_run(name, mix, mode, &result, l0.zip(l1));
        s.buyers_cpu_us = f0.zip(f1).map(|(a, b)| b.cpu_us.saturating_sub(a.cpu_us));
        s.driver_cpu_us = d0
            .zip(d1)
            .map(|(a, b)| b.cpu_us.saturating_sub(a.cpu_us))
            .unwrap_or(0);
        eprint!("{}", report::table(std::slice::from_ref(&s)));
        out.push(s);
    }
    Ok(out)
}

fn sample(m: &Managed) -> Option<ProcSample> {
    procstat::sample(&m.pid().to_string())
}

/// A free loopback port for leadx. Another process could take it between
/// this probe and leadx's bind; leadx then fails to start and the bench
/// says so, which is acceptable for a benchmark tool.
pub fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("probing for a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("probing for a free port", e))
}

/// A publisher API key and an admin token for this run only; leadx gets
/// their hashes.
pub fn secrets(seed: u64) -> (String, String) {
    let salt = format!(
        "{seed}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let h = config::sha256_hex(&salt);
    (
        format!("lt_pub_{}", &h[..32]),
        format!("lt_admin_{}", &h[32..]),
    )
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Today's UTC date, `YYYY-MM-DD`, for run directories.
pub fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_lists_parse_and_bad_ones_say_which_item() {
        assert_eq!(
            parse_rates("500,1000, 2000").unwrap(),
            vec![500, 1000, 2000]
        );
        let e = parse_rates("10,,x").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("item 2 is empty"), "{e}");
        let e = parse_rates("10,x").unwrap_err().to_string();
        assert!(e.contains("item 2 (\"x\") is not a whole number"), "{e}");
        assert!(parse_rates("0")
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert!(parse_rates("").is_err());
    }

    #[test]
    fn bench_fleet_is_valid_and_ends_with_the_direct_buyer() {
        let f = fleet_spec(5, 1).validated().unwrap();
        assert_eq!(f.buyers.len(), 6);
        let d = f.buyers.last().unwrap();
        assert_eq!((d.id.as_str(), d.accept_rate), ("direct", 1.0));
        assert_eq!(d.faults, Faults::default());
    }

    #[test]
    fn a_missing_leadx_binary_is_a_clear_error() {
        let spec = BenchSpec {
            leadx_bin: "/nonexistent/leadx".into(),
            self_exe: "/bin/true".into(),
            rates: vec![1],
            duration: Duration::from_secs(1),
            buyers: 1,
            out: std::env::temp_dir(),
            machine: "m".into(),
            seed: 1,
            connections: 1,
            think: Duration::ZERO,
            timeout: Duration::from_secs(1),
            healthz_concurrency: 1,
            direct: false,
            healthz: false,
            ready_wait: Duration::from_secs(1),
        };
        let e = bench(&spec).unwrap_err().to_string();
        assert!(
            e.contains("leadx binary not found at /nonexistent/leadx"),
            "{e}"
        );
    }
}
