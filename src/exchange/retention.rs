//! Retention (contract §12): PII erased from leads older than
//! `privacy.pii_retention_days`, unposted pings deleted after
//! `privacy.ping_retention_days`, dedupe keys deleted once past their
//! vertical's `dedupe_window_days` — in the background, never on a request.
//!
//! Why this shape: a sweep must not raise the ping p99 (issue #10: ≤ +1 ms).
//! So it runs on its own OS thread (`spawn`), reads a small batch
//! (`limits::RETENTION_BATCH_KEYS`), writes its changes with an *unwaited*
//! store write (it takes a share of the writer's queue like a ping, and
//! backs off when that share is full instead of competing), then sleeps
//! `limits::RETENTION_TICK_MS` before the next batch. A pass looks at most
//! `limits::RETENTION_PASS_KEYS_MAX` keys, then the thread idles
//! `limits::RETENTION_IDLE_MS`.
//!
//! Erasing a lead's PII rewrites its record, so the PII job holds the lead's
//! claim (`exchange::claims`) from a re-read to the applied write
//! (`Store::write_applied`), never waiting for it: a lead a request or post
//! holds stops the batch there, and the next pass starts from it
//! (`it::claims`).
//!
//! Each job keeps a cursor in `Tree::Meta` (`retention/<job>`), written in
//! the same batch as the changes it covers, so a restart resumes where the
//! last applied batch stopped. Pings and leads are keyed by time-ordered ids
//! (`ids`), so their sweeps walk in creation order and stop at the first
//! record still inside its window: a pass costs the expired records plus
//! one, not the whole store. Dedupe keys are hashes in no time order: that
//! job walks the whole tree, one batch a tick, and starts over at its end.
//!
//! A ping writes one key, its `Tree::Pings` record (nothing in
//! `Tree::Calls`, which no code writes), and may sit in the ping cache:
//! deleting a ping removes both.
//!
//! Idempotency keys are kept as long as the lead they name (leads are never
//! deleted, only their PII): a retry answers its first outcome whenever it
//! comes, and the key holds no PII. A posted ping is kept with its lead
//! (the admin lead view shows its calls).
//!
//! Business time is the exchange's `Clock` (`Exchange::now_ms`); a record's
//! age is its `created_ms` (a dedupe key's, its sale time).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::claims::{sweep_claim, Claim, Claims};
use super::Exchange;
use crate::limits;
use crate::records;
use crate::store::{Batch, Store, StoreError, Tree};

const DAY_MS: u64 = 86_400_000;

/// The three sweeps, by the `kind` label of `leadx_retention_erased_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A lead's PII erased.
    Pii,
    /// An unposted ping deleted.
    Ping,
    /// A dedupe key past its window deleted.
    Dedupe,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Pii, Job::Ping, Job::Dedupe];

    pub fn as_str(self) -> &'static str {
        match self {
            Job::Pii => "pii",
            Job::Ping => "ping",
            Job::Dedupe => "dedupe",
        }
    }

    /// Its cursor's key in `Tree::Meta`.
    fn cursor_key(self) -> &'static [u8] {
        match self {
            Job::Pii => b"retention/leads",
            Job::Ping => b"retention/pings",
            Job::Dedupe => b"retention/dedupe",
        }
    }

    fn tree(self) -> Tree {
        match self {
            Job::Pii => Tree::Leads,
            Job::Ping => Tree::Pings,
            Job::Dedupe => Tree::Dedupe,
        }
    }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    /// Records looked at.
    pub scanned: u64,
    pub pii_erased: u64,
    pub pings_deleted: u64,
    pub dedupe_deleted: u64,
    /// Every job reached its end (or its first record still in its
    /// window); false when the pass ran out of budget or the store
    /// refused a write (the next pass goes on from the cursors).
    pub caught_up: bool,
}

/// The sweeps' counters (`/metrics`) and the flag that keeps passes from
/// overlapping (the thread's and a test's).
#[derive(Default)]
pub struct Sweeps {
    erased: [AtomicU64; 3],
    last_pass_ms: AtomicU64,
    last_pass_us: AtomicU64,
    running: AtomicBool,
    /// Test seam: the thread skips its passes (tests run them by hand).
    paused: AtomicBool,
    /// Test seam: run by every sweep batch (retention and re-seal) between
    /// its scan and its writes (`set_test_hook`).
    hook: crate::sync::Mutex<Option<SweepHook>>,
}

/// A test's code run inside a sweep batch, told the job (`"pii"`, `"ping"`,
/// `"dedupe"`, `"reseal"`).
pub type SweepHook = Arc<dyn Fn(&str) + Send + Sync>;

impl Sweeps {
    /// Records retention removed since start, by job.
    pub fn erased_total(&self, job: Job) -> u64 {
        self.erased[job as usize].load(Ordering::Relaxed)
    }

    /// When the last finished pass ended (business time, ms) and how long
    /// it took (µs, wall time with its pauses); 0 before the first.
    pub fn last_pass(&self) -> (u64, u64) {
        (
            self.last_pass_ms.load(Ordering::Relaxed),
            self.last_pass_us.load(Ordering::Relaxed),
        )
    }

    /// Waits for, and takes, the one sweep turn: retention batches and
    /// re-seal batches both read a lead and write it back, so they take
    /// turns batch by batch (each reads after the writer applied the
    /// other's last write) and never undo each other's change. Plain
    /// threads only (it sleeps).
    pub(crate) fn turn(&self) -> SweepTurn<'_> {
        while self
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            crate::sync::sleep(Duration::from_millis(1));
        }
        SweepTurn(&self.running)
    }

    /// Test seam: `hook` runs in every later sweep batch after its scan,
    /// before it claims and writes anything (`None`: no hook) — where a
    /// request that lands mid-batch is the case to prove.
    #[doc(hidden)]
    pub fn set_test_hook(&self, hook: Option<SweepHook>) {
        *self.hook.lock() = hook;
    }

    /// Runs the test hook, if any, with no lock held (it may park).
    pub(crate) fn run_hook(&self, job: &str) {
        let hook = self.hook.lock().clone();
        if let Some(hook) = hook {
            hook(job);
        }
    }

    /// Test seam: stops (or restarts) the background passes, so a test's
    /// own `Exchange::sweep_retention` calls count everything.
    #[doc(hidden)]
    pub fn pause_background(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }
}

/// The sweep turn (`Sweeps::turn`), given back when dropped.
pub(crate) struct SweepTurn<'a>(&'a AtomicBool);

impl Drop for SweepTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What a job decided about one record.
enum Verdict {
    /// Nothing to do (posted ping, PII already erased, inside its window
    /// but not in time order).
    Keep,
    /// Changed: its write is in the batch.
    Done,
    /// Still inside its window, and every later key is younger: the job is
    /// caught up.
    Stop,
    /// Its lead's claim is held (a return, a post, re-seal): the batch
    /// stops before it and the next pass starts from it.
    Busy,
}

/// One job's batch: what it looked at, what it changed, whether it is
/// caught up.
struct Step {
    scanned: u64,
    done: u64,
    caught_up: bool,
    /// Stopped at a claimed lead: the job ends this pass there.
    busy: bool,
}

/// The leads a batch rewrites: their claims, held until the batch's write
/// is applied (`exchange::claims`).
struct Rewrites<'a> {
    claims: &'a Claims<String>,
    store: &'a Store,
    held: Vec<Claim<String>>,
}

/// The retention settings at one instant, from the running config.
struct Policy {
    now_ms: u64,
    pii_ms: Option<u64>,
    ping_ms: Option<u64>,
    /// Per vertical id, its dedupe window (ms); a vertical no longer in the
    /// config keeps its keys for the longest window.
    windows: Vec<(String, u64)>,
    window_max_ms: u64,
}

impl Policy {
    fn of(ex: &Exchange) -> Policy {
        let rt = ex.runtime();
        let p = &rt.config.privacy;
        let windows: Vec<(String, u64)> = rt
            .config
            .verticals
            .iter()
            .map(|v| (v.id.clone(), u64::from(v.dedupe_window_days) * DAY_MS))
            .collect();
        let window_max_ms = windows.iter().map(|w| w.1).max().unwrap_or(0);
        Policy {
            now_ms: ex.now_ms(),
            pii_ms: p.pii_retention_days.map(|d| u64::from(d) * DAY_MS),
            ping_ms: p.ping_retention_days.map(|d| u64::from(d) * DAY_MS),
            windows,
            window_max_ms,
        }
    }

    /// Dedupe keys are swept with PII retention: a v1 config erases nothing.
    fn enabled(&self, job: Job) -> bool {
        match job {
            Job::Pii | Job::Dedupe => self.pii_ms.is_some(),
            Job::Ping => self.ping_ms.is_some(),
        }
    }

    fn expired(&self, at_ms: u64, keep_ms: u64) -> bool {
        self.now_ms.saturating_sub(at_ms) > keep_ms
    }

    /// Decides on the scanned `value`; a lead to erase is then claimed
    /// (never waited for) and erased as it is stored *now*, read again
    /// under the claim, so a return written since the scan is kept.
    fn lead(
        &self,
        key: &[u8],
        value: &[u8],
        batch: &mut Batch,
        rw: &mut Rewrites<'_>,
    ) -> Result<Verdict, StoreError> {
        let Ok(mut rec) = records::decode_lead(value) else {
            log::warn!(target: "leadx::retention", "lead record unreadable, left as is lead_id={}", String::from_utf8_lossy(key));
            return Ok(Verdict::Keep);
        };
        if !self.expired(rec.created_ms, self.pii_ms.unwrap_or(u64::MAX)) {
            return Ok(Verdict::Stop);
        }
        if !rec.erase_pii(self.now_ms) {
            return Ok(Verdict::Keep);
        }
        let Some((claim, stored)) = sweep_claim(rw.claims, rw.store, key)? else {
            return Ok(Verdict::Busy);
        };
        let Some(Ok(mut rec)) = stored.map(|v| records::decode_lead(&v)) else {
            return Ok(Verdict::Keep);
        };
        if !rec.erase_pii(self.now_ms) {
            return Ok(Verdict::Keep);
        }
        batch.insert(Tree::Leads, key.to_vec(), records::encode_lead(&rec));
        rw.held.push(claim);
        Ok(Verdict::Done)
    }

    fn ping(&self, key: &[u8], value: &[u8], batch: &mut Batch) -> Verdict {
        let Ok(ping) = records::decode_ping(value) else {
            log::warn!(target: "leadx::retention", "ping record unreadable, left as is ping_id={}", String::from_utf8_lossy(key));
            return Verdict::Keep;
        };
        let keep_ms = self.ping_ms.unwrap_or(u64::MAX);
        if !self.expired(ping.created_ms, keep_ms) {
            return Verdict::Stop;
        }
        // A posted ping stays with its lead; an unexpired bid can still be
        // posted (a bid_ttl_s longer than the retention), so it stays too.
        if ping.lead_id.is_some() || ping.expires_ms >= self.now_ms {
            return Verdict::Keep;
        }
        batch.remove(Tree::Pings, key.to_vec());
        Verdict::Done
    }

    fn dedupe(&self, key: &[u8], value: &[u8], batch: &mut Batch) -> Verdict {
        let vertical = key.split(|&b| b == 0).next().unwrap_or_default();
        let window_ms = self
            .windows
            .iter()
            .find(|(id, _)| id.as_bytes() == vertical)
            .map_or(self.window_max_ms, |w| w.1);
        if !self.expired(records::decode_dedupe(value), window_ms) {
            return Verdict::Keep;
        }
        batch.remove(Tree::Dedupe, key.to_vec());
        Verdict::Done
    }
}

/// One batch of `job`: from its cursor, at most `max` records; the changes
/// and the new cursor go to the store as one unwaited batch. The dedupe job
/// starts over once it reached the end of its tree.
fn step(
    ex: &Exchange,
    policy: &Policy,
    job: Job,
    max: usize,
    deleted: &mut Vec<Vec<u8>>,
) -> Result<Step, StoreError> {
    let store = &ex.store;
    let cursor = read_cursor(store, job.cursor_key())?;
    let rows = store.scan_range(job.tree(), &cursor, b"", max)?;
    ex.retention.run_hook(job.as_str());
    let mut batch = Batch::default();
    let mut rw = Rewrites {
        claims: ex.lead_claims(),
        store,
        held: Vec::new(),
    };
    let mut next = cursor.clone();
    let mut s = Step {
        scanned: 0,
        done: 0,
        caught_up: rows.len() < max,
        busy: false,
    };
    for (key, value) in &rows {
        let verdict = match job {
            Job::Pii => policy.lead(key, value, &mut batch, &mut rw)?,
            Job::Ping => policy.ping(key, value, &mut batch),
            Job::Dedupe => policy.dedupe(key, value, &mut batch),
        };
        match verdict {
            Verdict::Stop => {
                s.caught_up = true;
                break;
            }
            Verdict::Busy => {
                // The cursor stays on it: the next pass starts here.
                s.caught_up = false;
                s.busy = true;
                break;
            }
            Verdict::Done => {
                s.done += 1;
                if job == Job::Ping {
                    deleted.push(key.clone());
                }
            }
            Verdict::Keep => {}
        }
        s.scanned += 1;
        // The smallest key after `key`.
        next = key.clone();
        next.push(0);
    }
    if job == Job::Dedupe && s.caught_up {
        next.clear();
    }
    if next != cursor {
        batch.insert(Tree::Meta, job.cursor_key().to_vec(), next);
    }
    if !rw.held.is_empty() {
        // Applied before the claims go: the next claimer reads this.
        store.write_applied(batch)?;
    } else if !batch.is_empty() {
        store.write(batch)?;
    }
    drop(rw);
    Ok(s)
}

/// The cursor at `key` in `Tree::Meta` (empty: from the start). Read by a
/// scan, which first waits for the writer to apply what is queued: the
/// previous batch's cursor was an unwaited write (a point `get` could
/// still see the one before it).
pub(crate) fn read_cursor(store: &Store, key: &[u8]) -> Result<Vec<u8>, StoreError> {
    let rows = store.scan_prefix(Tree::Meta, key, 1)?;
    Ok(rows
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default())
}

impl Exchange {
    /// One retention pass over every enabled job, at most `keys_max`
    /// records, `pace` between batches. The background thread runs it
    /// paced; tests call it with no pause (with the thread paused:
    /// `Sweeps::pause_background`). Each batch takes the sweep turn.
    pub fn sweep_retention(&self, keys_max: u64, pace: Duration) -> PassReport {
        let started = Instant::now();
        let report = self.retention_pass(keys_max, pace);
        let s = &self.retention;
        if report.caught_up {
            s.last_pass_ms.store(self.now_ms(), Ordering::Relaxed);
            s.last_pass_us
                .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        report
    }

    fn retention_pass(&self, keys_max: u64, pace: Duration) -> PassReport {
        let mut report = PassReport {
            caught_up: true,
            ..PassReport::default()
        };
        for job in Job::ALL {
            loop {
                let policy = Policy::of(self);
                if !policy.enabled(job) {
                    break;
                }
                if report.scanned >= keys_max {
                    report.caught_up = false;
                    return report;
                }
                let mut deleted = Vec::new();
                let max = limits::RETENTION_BATCH_KEYS.min((keys_max - report.scanned) as usize);
                let turn = self.retention.turn();
                let s = step(self, &policy, job, max.max(1), &mut deleted);
                drop(turn);
                let s = match s {
                    Ok(s) => s,
                    Err(e) => {
                        // Overloaded (the queue's unwaited share is full),
                        // unwritable or closed: the next pass goes on.
                        log::warn!(target: "leadx::retention", "retention batch not written; the next pass resumes job={} error=\"{e}\"", job.as_str());
                        report.caught_up = false;
                        return report;
                    }
                };
                for id in &deleted {
                    self.pings.remove(&String::from_utf8_lossy(id));
                }
                report.scanned += s.scanned;
                self.retention.erased[job as usize].fetch_add(s.done, Ordering::Relaxed);
                match job {
                    Job::Pii => report.pii_erased += s.done,
                    Job::Ping => report.pings_deleted += s.done,
                    Job::Dedupe => report.dedupe_deleted += s.done,
                }
                if s.busy {
                    // A claimed lead: this job goes on from it next pass.
                    report.caught_up = false;
                    break;
                }
                if s.caught_up {
                    break;
                }
                if !pace.is_zero() {
                    crate::sync::sleep(pace);
                }
            }
        }
        report
    }

    /// The retention counters (`/metrics`).
    pub fn retention(&self) -> &Sweeps {
        &self.retention
    }
}

/// Starts the retention thread: a paced pass every
/// `limits::RETENTION_IDLE_MS` (the first soon after start), until the
/// exchange is dropped or its posts are closed (a drain).
pub fn spawn(ex: &Arc<Exchange>) {
    let weak: Weak<Exchange> = Arc::downgrade(ex);
    let spawned = std::thread::Builder::new()
        .name("leadx-retention".into())
        .spawn(move || {
            let mut wait = Duration::from_millis(limits::RETENTION_START_DELAY_MS);
            loop {
                crate::sync::sleep(wait);
                let Some(ex) = weak.upgrade() else { return };
                if ex.posts_closed() {
                    return;
                }
                wait = Duration::from_millis(limits::RETENTION_IDLE_MS);
                if ex.retention.paused.load(Ordering::Acquire) {
                    continue;
                }
                let pace = Duration::from_millis(limits::RETENTION_TICK_MS);
                let r = ex.sweep_retention(limits::RETENTION_PASS_KEYS_MAX, pace);
                if r.pii_erased + r.pings_deleted + r.dedupe_deleted > 0 {
                    log::info!(target: "leadx::retention", "retention pass scanned={} pii_erased={} pings_deleted={} dedupe_deleted={} caught_up={}", r.scanned, r.pii_erased, r.pings_deleted, r.dedupe_deleted, r.caught_up);
                }
            }
        });
    if let Err(e) = spawned {
        log::error!(target: "leadx::retention", "cannot start the retention thread; nothing is erased error=\"{e}\"");
    }
}
