//! The traffic driver: open-loop at a fixed rate (send times fixed in
//! advance, latency from the intended time) or closed-loop at a fixed
//! concurrency (max throughput), over a bounded pool of keep-alive
//! connections, with a progress line once a second.

pub mod cycle;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use cycle::Mix;
use cycle::{Ctx, Slot};

use crate::lead;
use crate::schedule::Schedule;
use crate::stats::Stats;
use crate::target::Target;
use crate::{limits, rt, Error};

/// Open loop at a rate, or closed loop at a concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open { rate_per_s: u64 },
    Closed { concurrency: usize },
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub target: Target,
    pub api_key: String,
    pub vertical: String,
    pub mix: Mix,
    pub mode: Mode,
    pub duration: Duration,
    /// Connection count in open-loop mode (closed loop uses `concurrency`).
    pub connections: usize,
    pub think: Duration,
    pub timeout: Duration,
    pub seed: u64,
    /// Index of the first lead, so successive runs of a sweep never reuse a
    /// phone or email (leadx would answer 409 duplicate).
    pub lead_offset: u64,
    pub progress: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub stats: Stats,
    /// First request sent → last answer.
    pub elapsed: Duration,
    /// Cycles started (leads used).
    pub cycles: u64,
}

impl RunResult {
    /// Cycles completed (first request answered) per second.
    pub fn achieved_per_s(&self) -> f64 {
        self.stats.first.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Checks bounds that clap cannot express.
pub fn validate(spec: &RunSpec) -> Result<(), Error> {
    let bad = |m: String| Err(Error::Usage(m));
    match spec.mode {
        Mode::Open { rate_per_s } if rate_per_s == 0 || rate_per_s > limits::RATE_PER_S_MAX => {
            return bad(format!("--rate must be 1..={}", limits::RATE_PER_S_MAX));
        }
        Mode::Closed { concurrency }
            if concurrency == 0 || concurrency > limits::CONNECTIONS_MAX =>
        {
            return bad(format!(
                "--concurrency must be 1..={}",
                limits::CONNECTIONS_MAX
            ));
        }
        _ => {}
    }
    if spec.connections == 0 || spec.connections > limits::CONNECTIONS_MAX {
        return bad(format!(
            "--connections must be 1..={}",
            limits::CONNECTIONS_MAX
        ));
    }
    if spec.duration.is_zero() || spec.duration > Duration::from_secs(limits::DURATION_S_MAX) {
        return bad(format!(
            "--duration-s must be 1..={}",
            limits::DURATION_S_MAX
        ));
    }
    if spec.think > Duration::from_millis(limits::THINK_MS_MAX) {
        return bad(format!(
            "--think-ms must be at most {}",
            limits::THINK_MS_MAX
        ));
    }
    Ok(())
}

/// Fails with a clear error when nothing listens on the target.
pub fn check_reachable(target: Target, timeout: Duration) -> Result<(), Error> {
    // Runs on the calling OS thread, not in a coroutine: blocking is fine.
    std::net::TcpStream::connect_timeout(&target.addr, timeout)
        .map(drop)
        .map_err(|e| {
            Error::Target(format!(
                "cannot connect to http://{}: {e} (is the server running?)",
                target.addr
            ))
        })
}

/// Runs the traffic described by `spec` and returns what it measured.
pub fn run(spec: &RunSpec) -> Result<RunResult, Error> {
    run_sampled(spec, Duration::from_secs(1), &mut |_, _| {})
}

/// Called every sampling period while a run goes on, with the time since
/// the run's start and the statistics so far (cumulative).
pub type Sampler<'a> = dyn FnMut(Duration, &Stats) + 'a;

/// `run`, calling `sampler` about every `every` (at least a second apart;
/// the soak scenario samples memory and latency this way).
pub fn run_sampled(
    spec: &RunSpec,
    every: Duration,
    sampler: &mut Sampler<'_>,
) -> Result<RunResult, Error> {
    validate(spec)?;
    check_reachable(spec.target, spec.timeout)?;
    rt::configure(1);
    let ctx = Arc::new(Ctx {
        target: spec.target,
        host: spec.target.host_header(),
        auth: format!("Bearer {}", spec.api_key),
        vertical: spec.vertical.clone(),
        mix: spec.mix,
        think: spec.think,
        timeout: spec.timeout,
        seed: spec.seed,
    });
    let stats = Arc::new(Mutex::new(Stats::default()));
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        started: AtomicU64::new(0),
    });
    let captured_at = now_rfc3339();
    let start = Instant::now() + Duration::from_millis(20); // let every worker get ready
    let (workers, plan) = match spec.mode {
        Mode::Open { rate_per_s } => (
            spec.connections,
            Plan::Open(Schedule::new(start, rate_per_s, spec.duration)),
        ),
        Mode::Closed { concurrency } => (
            concurrency,
            Plan::Closed {
                start,
                end: start + spec.duration,
            },
        ),
    };
    let (done_tx, done_rx) = mpsc::channel();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let w = Worker {
                ctx: ctx.clone(),
                stats: stats.clone(),
                shared: shared.clone(),
                plan,
                captured_at: captured_at.clone(),
                offset: spec.lead_offset,
            };
            rt::spawn(move || w.run())
        })
        .collect();
    rt::spawn(move || {
        for h in handles {
            let _ = h.join();
        }
        let _ = done_tx.send(Instant::now());
    });
    let finished = wait_with_progress(&done_rx, &stats, start, spec.progress, (every, sampler));
    let mut stats = stats.lock().expect("stats lock").clone();
    let cycles = shared.started.load(Ordering::Relaxed);
    if let Plan::Open(s) = plan {
        stats.not_sent = s.total().saturating_sub(cycles);
    }
    Ok(RunResult {
        stats,
        elapsed: finished.saturating_duration_since(start),
        cycles,
    })
}

/// Waits for the workers, printing a progress line to stderr each second
/// and handing the statistics to the sampler every sampling period.
fn wait_with_progress(
    done: &mpsc::Receiver<Instant>,
    stats: &Mutex<Stats>,
    start: Instant,
    progress: bool,
    (every, sampler): (Duration, &mut Sampler<'_>),
) -> Instant {
    let mut last = (Instant::now(), 0u64);
    let every = every.max(Duration::from_secs(1));
    let mut next_sample = start + every;
    loop {
        if Instant::now() >= next_sample {
            // Clone under the lock, sample outside it.
            let snapshot = stats.lock().expect("stats lock").clone();
            sampler(Instant::now().saturating_duration_since(start), &snapshot);
            next_sample += every;
        }
        match done.recv_timeout(Duration::from_secs(1)) {
            Ok(t) => return t,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Instant::now(),
            Err(mpsc::RecvTimeoutError::Timeout) if progress => {
                let s = stats.lock().expect("stats lock");
                let now = Instant::now();
                let rate = (s.answered - last.1) as f64 / (now - last.0).as_secs_f64();
                eprintln!(
                    "[{:>5.1}s] {:>8.0} answers/s  answered {:>8}  errors {:>6}  non-2xx {:>6}  p99 so far {:>9.2} ms",
                    now.saturating_duration_since(start).as_secs_f64(),
                    rate,
                    s.answered,
                    s.errors,
                    s.non_2xx,
                    s.first.quantile_us(0.99) as f64 / 1000.0
                );
                last = (now, s.answered);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The current UTC time, RFC 3339, for `consent.captured_at`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting of the current time")
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Open(Schedule),
    Closed { start: Instant, end: Instant },
}

struct Shared {
    /// Next cycle index to claim.
    next: AtomicU64,
    /// Cycles actually sent.
    started: AtomicU64,
}

struct Worker {
    ctx: Arc<Ctx>,
    stats: Arc<Mutex<Stats>>,
    shared: Arc<Shared>,
    plan: Plan,
    captured_at: String,
    offset: u64,
}

type Prepared = (Arc<lead::Lead>, Arc<Vec<u8>>);

impl Worker {
    /// The lead and first request of cycle `i`, built before its due time.
    fn prepare(&self, i: u64, healthz: &Option<Prepared>) -> Prepared {
        if let Some((l, f)) = healthz {
            return (l.clone(), f.clone());
        }
        let lead = lead::generate(self.ctx.seed, self.offset + i, &self.captured_at);
        let first = cycle::first_request(&self.ctx, &lead, self.offset + i);
        (Arc::new(lead), Arc::new(first))
    }

    /// Claims cycles until the plan is exhausted; each worker owns one
    /// connection slot, so the connection count is bounded by the workers.
    fn run(self) {
        let mut slot = Slot::new();
        // The baseline request never changes: build it once, not per cycle,
        // so the driver's own cost does not blur the hello-world number.
        let healthz = (self.ctx.mix == Mix::Healthz).then(|| {
            let lead = lead::generate(self.ctx.seed, 0, &self.captured_at);
            let first = cycle::first_request(&self.ctx, &lead, 0);
            (Arc::new(lead), Arc::new(first))
        });
        loop {
            let i = self.shared.next.fetch_add(1, Ordering::Relaxed);
            let (lead, first) = self.prepare(i, &healthz);
            let intended = match self.plan {
                Plan::Open(s) => {
                    if i >= s.total() {
                        return;
                    }
                    let due = s.intended(i);
                    let now = Instant::now();
                    if now > s.end() + Duration::from_millis(limits::DRAIN_MS) {
                        return; // far behind: the rest is counted as not sent
                    }
                    if due > now {
                        may::coroutine::sleep(due - now);
                    }
                    due
                }
                Plan::Closed { start, end } => {
                    if let Some(wait) = start.checked_duration_since(Instant::now()) {
                        may::coroutine::sleep(wait);
                    }
                    let now = Instant::now();
                    if now >= end {
                        return;
                    }
                    now
                }
            };
            self.shared.started.fetch_add(1, Ordering::Relaxed);
            cycle::run_cycle(&self.ctx, &mut slot, &lead, &first, intended, &self.stats);
        }
    }
}

#[cfg(test)]
mod tests;
