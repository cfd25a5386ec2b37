//! The command line: `buyers`, `run` and `bench`, parsed with clap and
//! turned into the library's specs. `main` only calls `main_with`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::{self, BenchSpec};
use crate::buyers::{self, BuyerSpec, Faults, FleetSpec, LatencyDist};
use crate::driver::{self, Mix, Mode, RunSpec};
use crate::report::{self, Report, Scenario};
use crate::target::Target;
use crate::{fake_leadx, limits, procstat, Error};

#[derive(Parser, Debug)]
#[command(
    name = "leadx-loadtest",
    version,
    about = "Load tester for leadx (127.0.0.1 targets only)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run simulated buyers on loopback ports; prints their ports as one JSON line.
    Buyers(BuyersArgs),
    /// Drive traffic at a leadx (open loop at --rate, or --closed-loop).
    Run(RunArgs),
    /// Start buyers and leadx, sweep rates, write the report.
    Bench(BenchArgs),
    /// Start buyers and leadx, hold one rate for minutes, sample RSS and latency.
    Soak(SoakArgs),
    /// Find the max (closed loop), offer 2x it open-loop, judge the shedding.
    Overload(OverloadArgs),
    /// A stand-in for `leadx serve` used by the tester's own tests.
    #[command(hide = true)]
    FakeLeadx {
        mode: String,
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct BuyersArgs {
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    /// First port (buyer i on base+i); 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    pub base_port: u16,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A TOML or JSON fleet spec; replaces the per-buyer flags below.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// fixed:MS | uniform:MIN:MAX | lognormal:MEDIAN:SIGMA
    #[arg(long, default_value = "lognormal:15:0.6")]
    pub latency: String,
    #[arg(long, default_value_t = 0.7)]
    pub bid_rate: f64,
    #[arg(long, default_value_t = 1.0)]
    pub price_min: f64,
    #[arg(long, default_value_t = 25.0)]
    pub price_max: f64,
    #[arg(long, default_value_t = 0.9)]
    pub accept_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    pub fault_500: f64,
    #[arg(long, default_value_t = 0.0)]
    pub fault_garbage: f64,
    #[arg(long, default_value_t = 0.0)]
    pub fault_hang: f64,
    #[arg(long, default_value_t = 0.0)]
    pub fault_reset: f64,
    #[arg(long, default_value_t = limits::HANG_MS_DEFAULT)]
    pub hang_ms: u64,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value_t = limits::BUYERS_LIFETIME_S_DEFAULT)]
    pub lifetime_s: u64,
    /// Also stop when standard input closes (how `bench` stops the fleet).
    #[arg(long)]
    pub until_stdin_closes: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[arg(long)]
    pub target: String,
    #[arg(long, default_value = "")]
    pub api_key: String,
    #[arg(long, default_value = "auto_insurance")]
    pub vertical: String,
    /// ping | ping-post | direct | healthz
    #[arg(long, default_value = "ping-post")]
    pub mix: String,
    /// Offered rate (lead cycles per second), open loop.
    #[arg(long, conflicts_with = "closed_loop")]
    pub rate: Option<u64>,
    #[arg(long, requires = "concurrency")]
    pub closed_loop: bool,
    #[arg(long)]
    pub concurrency: Option<usize>,
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    #[arg(long, default_value_t = limits::CONNECTIONS_DEFAULT)]
    pub connections: usize,
    #[arg(long, default_value_t = limits::THINK_MS_DEFAULT)]
    pub think_ms: u64,
    #[arg(long, default_value_t = limits::REQUEST_TIMEOUT_MS_DEFAULT)]
    pub timeout_ms: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 0)]
    pub lead_offset: u64,
    /// Also write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "target/release/leadx")]
    pub leadx_bin: PathBuf,
    #[arg(long, default_value = "500,1000,2000")]
    pub rates: String,
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 5)]
    pub buyers: usize,
    /// Default: loadtest/runs/<date>-<machine>/
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Default: <cores>core
    #[arg(long)]
    pub machine: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = limits::CONNECTIONS_DEFAULT)]
    pub connections: usize,
    #[arg(long, default_value_t = limits::THINK_MS_DEFAULT)]
    pub think_ms: u64,
    #[arg(long, default_value_t = limits::REQUEST_TIMEOUT_MS_DEFAULT)]
    pub timeout_ms: u64,
    #[arg(long, default_value_t = 32)]
    pub healthz_concurrency: usize,
    #[arg(long)]
    pub skip_direct: bool,
    #[arg(long)]
    pub skip_healthz: bool,
    #[arg(long, default_value_t = limits::READY_WAIT_MS / 1000)]
    pub ready_timeout_s: u64,
}

#[derive(Args, Debug)]
pub struct SoakArgs {
    #[arg(long, default_value = "target/release/leadx")]
    pub leadx_bin: PathBuf,
    /// Offered ping-post cycles per second, open loop.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[arg(long, default_value_t = 5)]
    pub minutes: u64,
    #[arg(long, default_value_t = 5)]
    pub sample_s: u64,
    #[arg(long, default_value_t = 5)]
    pub buyers: usize,
    /// Default: loadtest/runs/<date>-<machine>-soak/
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub machine: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = limits::CONNECTIONS_DEFAULT)]
    pub connections: usize,
    #[arg(long, default_value_t = limits::THINK_MS_DEFAULT)]
    pub think_ms: u64,
    #[arg(long, default_value_t = limits::REQUEST_TIMEOUT_MS_DEFAULT)]
    pub timeout_ms: u64,
    /// Dashed line on the RSS plot, MiB (issue #7's goal: 256).
    #[arg(long, default_value_t = 256.0)]
    pub rss_goal_mib: f64,
}

#[derive(Args, Debug)]
pub struct OverloadArgs {
    #[arg(long, default_value = "target/release/leadx")]
    pub leadx_bin: PathBuf,
    /// ping | ping-post | direct
    #[arg(long, default_value = "ping-post")]
    pub mix: String,
    /// Closed-loop concurrency of the maximum-finding phase.
    #[arg(long, default_value_t = 256)]
    pub max_concurrency: usize,
    /// Offered rate = factor × the maximum.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 5)]
    pub buyers: usize,
    /// Open-loop connections: enough for 2× the maximum of ping-post cycles.
    #[arg(long, default_value_t = 2048)]
    pub connections: usize,
    #[arg(long, default_value_t = limits::THINK_MS_DEFAULT)]
    pub think_ms: u64,
    #[arg(long, default_value_t = limits::REQUEST_TIMEOUT_MS_DEFAULT)]
    pub timeout_ms: u64,
    /// Extra `[server]` lines for leadx, e.g. "auctions_in_flight_max = 128".
    #[arg(long, default_value = "")]
    pub server_toml: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Default: loadtest/runs/<date>-<machine>-overload/
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = limits::READY_WAIT_MS / 1000)]
    pub ready_timeout_s: u64,
}

/// Runs the parsed command.
pub fn main_with(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Buyers(a) => run_buyers(a),
        Command::Run(a) => run_driver(a),
        Command::Bench(a) => run_bench(a),
        Command::Soak(a) => run_soak(a),
        Command::Overload(a) => run_overload(a),
        Command::FakeLeadx { mode, config } if mode == "serve" => fake_leadx::serve(&config),
        Command::FakeLeadx { mode, .. } => {
            Err(Error::Usage(format!("fake-leadx: unknown mode {mode:?}")))
        }
    }
}

fn fleet_from_args(a: &BuyersArgs) -> Result<FleetSpec, Error> {
    if let Some(path) = &a.spec {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<FleetSpec>(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str::<FleetSpec>(&text).map_err(|e| e.to_string())
        };
        return parsed
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
            .validated();
    }
    let one = BuyerSpec {
        id: String::new(),
        latency: LatencyDist::parse(&a.latency)?,
        bid_rate: a.bid_rate,
        price_min: a.price_min,
        price_max: a.price_max,
        accept_rate: a.accept_rate,
        faults: Faults {
            http_500: a.fault_500,
            garbage: a.fault_garbage,
            hang: a.fault_hang,
            reset: a.fault_reset,
        },
        hang_ms: a.hang_ms,
    };
    FleetSpec {
        seed: a.seed,
        base_port: a.base_port,
        buyers: vec![one; a.count],
    }
    .validated()
}

fn run_buyers(a: BuyersArgs) -> Result<(), Error> {
    if a.lifetime_s == 0 || a.lifetime_s > limits::BUYERS_LIFETIME_S_MAX {
        return Err(Error::Usage(format!(
            "--lifetime-s must be 1..={}",
            limits::BUYERS_LIFETIME_S_MAX
        )));
    }
    let spec = fleet_from_args(&a)?;
    crate::rt::configure(1);
    let fleet = buyers::server::start(&spec)?;
    let line = serde_json::json!({ "pid": std::process::id(), "buyers": fleet });
    println!("{line}");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    if a.until_stdin_closes {
        // A plain OS thread: blocking on stdin must not occupy a may worker.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
    }
    let _ = rx.recv_timeout(Duration::from_secs(a.lifetime_s));
    let cpu_us = procstat::sample("self").map(|s| s.cpu_us).unwrap_or(0);
    let counters: Vec<_> = fleet.iter().map(|b| b.snapshot()).collect();
    println!(
        "{}",
        serde_json::json!({ "cpu_us": cpu_us, "buyers": counters })
    );
    Ok(())
}

fn run_driver(a: RunArgs) -> Result<(), Error> {
    let target = Target::parse(&a.target)?;
    let mix = Mix::parse(&a.mix).ok_or_else(|| {
        Error::Usage(format!(
            "--mix {:?}: expected ping, ping-post, direct or healthz",
            a.mix
        ))
    })?;
    let mode = match (a.rate, a.closed_loop, a.concurrency) {
        (Some(r), false, _) => Mode::Open { rate_per_s: r },
        (None, true, Some(c)) => Mode::Closed { concurrency: c },
        _ => {
            return Err(Error::Usage(
                "give --rate R (open loop) or --closed-loop --concurrency C".into(),
            ))
        }
    };
    let spec = RunSpec {
        target,
        api_key: a.api_key,
        vertical: a.vertical,
        mix,
        mode,
        duration: Duration::from_secs(a.duration_s),
        connections: a.connections,
        think: Duration::from_millis(a.think_ms),
        timeout: Duration::from_millis(a.timeout_ms),
        seed: a.seed,
        lead_offset: a.lead_offset,
        progress: true,
    };
    let d0 = procstat::sample("self");
    let result = driver::run(&spec)?;
    let mut s = Scenario::from_run(
        format!(
            "{}@{}",
            a.mix,
            a.rate.map(|r| r.to_string()).unwrap_or("max".into())
        ),
        mix,
        mode,
        &result,
        None,
    );
    s.driver_cpu_us = d0
        .zip(procstat::sample("self"))
        .map(|(x, y)| y.cpu_us.saturating_sub(x.cpu_us))
        .unwrap_or(0);
    print!("{}", report::table(std::slice::from_ref(&s)));
    println!("driver CPU: {:.0} ms", s.driver_cpu_us as f64 / 1000.0);
    if let Some(path) = a.json {
        let r = Report::new(bench::today(), machine_name(), vec![s]);
        std::fs::write(&path, r.to_json())
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

fn machine_name() -> String {
    format!(
        "{}core",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    )
}

fn run_bench(a: BenchArgs) -> Result<(), Error> {
    let rates = bench::parse_rates(&a.rates)?;
    let machine = a.machine.unwrap_or_else(machine_name);
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from(format!("loadtest/runs/{}-{machine}", bench::today())));
    let self_exe = std::env::current_exe().map_err(|e| Error::io("locating this program", e))?;
    if a.ready_timeout_s == 0 || a.ready_timeout_s > 120 {
        return Err(Error::Usage("--ready-timeout-s must be 1..=120".into()));
    }
    let spec = BenchSpec {
        leadx_bin: a.leadx_bin,
        self_exe,
        rates,
        duration: Duration::from_secs(a.duration_s),
        buyers: a.buyers,
        out: out.clone(),
        machine,
        seed: a.seed,
        connections: a.connections,
        think: Duration::from_millis(a.think_ms),
        timeout: Duration::from_millis(a.timeout_ms),
        healthz_concurrency: a.healthz_concurrency,
        direct: !a.skip_direct,
        healthz: !a.skip_healthz,
        ready_wait: Duration::from_secs(a.ready_timeout_s),
    };
    let report = bench::bench(&spec)?;
    print!("{}", report::table(&report.scenarios));
    println!("report written to {}", out.display());
    Ok(())
}

fn run_overload(a: OverloadArgs) -> Result<(), Error> {
    let mix = Mix::parse(&a.mix)
        .filter(|m| *m != Mix::Healthz)
        .ok_or_else(|| {
            Error::Usage(format!(
                "--mix {:?}: expected ping, ping-post or direct",
                a.mix
            ))
        })?;
    if a.ready_timeout_s == 0 || a.ready_timeout_s > 120 {
        return Err(Error::Usage("--ready-timeout-s must be 1..=120".into()));
    }
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "loadtest/runs/{}-{}-overload",
            bench::today(),
            machine_name()
        ))
    });
    let spec = crate::overload::OverloadSpec {
        leadx_bin: a.leadx_bin,
        self_exe: std::env::current_exe().map_err(|e| Error::io("locating this program", e))?,
        out: out.clone(),
        seed: a.seed,
        buyers: a.buyers,
        mix,
        max_concurrency: a.max_concurrency,
        duration: Duration::from_secs(a.duration_s),
        factor: a.factor,
        connections: a.connections,
        think: Duration::from_millis(a.think_ms),
        timeout: Duration::from_millis(a.timeout_ms),
        ready_wait: Duration::from_secs(a.ready_timeout_s),
        server_toml: a.server_toml,
    };
    let verdict = crate::overload::run(&spec)?;
    print!("{}", verdict.summary());
    println!("written to {}", out.display());
    Ok(())
}

fn run_soak(a: SoakArgs) -> Result<(), Error> {
    let machine = a.machine.unwrap_or_else(machine_name);
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(format!("loadtest/runs/{}-{machine}-soak", bench::today()))
    });
    if a.minutes == 0
        || a.minutes * 60 > limits::DURATION_S_MAX
        || a.sample_s == 0
        || a.sample_s > 600
    {
        return Err(Error::Usage(format!(
            "--minutes must be 1..={} and --sample-s 1..=600",
            limits::DURATION_S_MAX / 60
        )));
    }
    let spec = crate::soak::SoakSpec {
        leadx_bin: a.leadx_bin,
        self_exe: std::env::current_exe().map_err(|e| Error::io("locating this program", e))?,
        rate_per_s: a.rate,
        duration: Duration::from_secs(a.minutes * 60),
        sample_every: Duration::from_secs(a.sample_s),
        buyers: a.buyers,
        out: out.clone(),
        machine,
        seed: a.seed,
        connections: a.connections,
        think: Duration::from_millis(a.think_ms),
        timeout: Duration::from_millis(a.timeout_ms),
        ready_wait: Duration::from_millis(limits::READY_WAIT_MS),
        rss_goal_mib: Some(a.rss_goal_mib),
    };
    let samples = crate::soak::soak(&spec)?;
    println!("{} samples; results in {}", samples.len(), out.display());
    Ok(())
}
