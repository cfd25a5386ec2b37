//! Re-sealing after a data-key rotation (contract §12, issue #10): every
//! lead whose PII is sealed under an old key (`privacy.old_data_keys`) is
//! sealed again under the current `privacy.data_key`, so the old key can
//! then leave the config.
//!
//! Two ways in, one batch function (`batch`): `POST /v1/admin/reseal` on a
//! running leadx starts a background job (`Exchange::start_reseal`, its own
//! thread, paced like retention: `limits::RETENTION_BATCH_KEYS` leads a
//! batch, unwaited writes, `limits::RETENTION_TICK_MS` between batches,
//! taking the sweep turn so retention and re-seal never rewrite the same
//! lead from stale reads); `leadx reseal --config F` (`offline`) does the
//! same on a stopped leadx's `data_dir` — sled's directory lock makes it
//! refuse while a leadx runs on it.
//!
//! A re-seal rewrites lead records, so it holds each lead's claim from a
//! re-read to the applied write (`exchange::claims`, `it::claims`).
//!
//! Resumable: the job's cursor lives in `Tree::Meta` (`reseal/cursor`),
//! written with each batch; a leadx started while it exists goes on with
//! the job. A lead whose key id is in no key of the ring (an old key
//! removed too early) is counted `failed` and logged by lead id; the job
//! goes on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::claims::{sweep_claim, Claim, Claims};
use super::Exchange;
use crate::config::Config;
use crate::limits;
use crate::privacy::KeyRing;
use crate::records;
use crate::store::{Batch, Store, StoreError, StoreOptions, Tree};

/// The job's cursor in `Tree::Meta`: present while a job is unfinished.
const CURSOR: &[u8] = b"reseal/cursor";

/// What a re-seal job did so far (`GET /v1/admin/reseal`, the CLI).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Leads looked at.
    pub scanned: u64,
    /// Sealed again under the current key.
    pub resealed: u64,
    /// Could not be opened (logged by lead id).
    pub failed: u64,
    /// The job reached the last lead.
    pub done: bool,
}

/// The running (or last) job's counters.
#[derive(Default)]
pub struct Job {
    scanned: AtomicU64,
    resealed: AtomicU64,
    failed: AtomicU64,
    done: AtomicBool,
    running: AtomicBool,
}

impl Job {
    pub fn progress(&self) -> Progress {
        Progress {
            scanned: self.scanned.load(Ordering::Relaxed),
            resealed: self.resealed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Acquire),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    fn add(&self, p: &Progress) {
        self.scanned.fetch_add(p.scanned, Ordering::Relaxed);
        self.resealed.fetch_add(p.resealed, Ordering::Relaxed);
        self.failed.fetch_add(p.failed, Ordering::Relaxed);
        if p.done {
            self.done.store(true, Ordering::Release);
        }
    }
}

/// One batch: at most `max` leads from the job's cursor; the resealed
/// records and the new cursor go to the store as one unwaited write (the
/// cursor is removed when the last lead was looked at).
///
/// A lead to re-seal is claimed in `claims` (never waited for) and re-read
/// under the claim, and the write is *applied* before the claims go
/// (`exchange::claims`): a return written since the scan is re-sealed with
/// it, never undone. A lead someone else holds stops the batch before it;
/// the next batch starts from it. `hook` runs between the scan and the
/// claims (a test seam; `leadx reseal` offline passes a no-op and a claim
/// set of its own: nothing else runs on its store).
pub fn batch(
    store: &Store,
    ring: &KeyRing,
    max: usize,
    claims: &Claims<String>,
    hook: &dyn Fn(),
) -> Result<Progress, StoreError> {
    let cursor = super::retention::read_cursor(store, CURSOR)?;
    let rows = store.scan_range(Tree::Leads, &cursor, b"", max)?;
    hook();
    let mut p = Progress {
        done: rows.len() < max,
        ..Progress::default()
    };
    let mut batch = Batch::default();
    let mut held = Vec::new();
    // The key the next batch starts from (`None`: the cursor stays).
    let mut next: Option<Vec<u8>> = None;
    for (key, value) in &rows {
        let lead_id = String::from_utf8_lossy(key);
        match reseal_one(ring, key, value, claims, store)? {
            Resealed::Busy => {
                p.done = false;
                next = Some(key.clone());
                break;
            }
            Resealed::Kept => {}
            Resealed::Written(bytes, claim) => {
                batch.insert(Tree::Leads, key.clone(), bytes);
                held.push(claim);
                p.resealed += 1;
            }
            Resealed::Failed(e) => {
                log::error!(target: "leadx::privacy", "lead PII not resealed lead_id={lead_id} error=\"{e}\"");
                p.failed += 1;
            }
        }
        p.scanned += 1;
        let mut after = key.clone();
        after.push(0);
        next = Some(after);
    }
    match next {
        _ if p.done => batch.remove(Tree::Meta, CURSOR.to_vec()),
        Some(next) if next != cursor => batch.insert(Tree::Meta, CURSOR.to_vec(), next),
        _ => {}
    }
    if !held.is_empty() {
        // Applied before the claims go: the next claimer reads this.
        store.write_applied(batch)?;
    } else if !batch.is_empty() {
        store.write(batch)?;
    }
    drop(held);
    Ok(p)
}

/// What `reseal_one` did with a lead.
enum Resealed {
    /// Nothing to do (sealed under the current key, or in clear).
    Kept,
    /// Its claim is held elsewhere: stop here.
    Busy,
    /// Its new record, and its claim to hold until the write is applied.
    Written(Vec<u8>, Claim<String>),
    /// Unreadable, or sealed under a key no longer in the ring.
    Failed(String),
}

/// Decides on the scanned `value`, then re-seals the lead as stored now,
/// under its claim.
fn reseal_one(
    ring: &KeyRing,
    key: &[u8],
    value: &[u8],
    claims: &Claims<String>,
    store: &Store,
) -> Result<Resealed, StoreError> {
    let Ok(rec) = records::decode_lead(value) else {
        return Ok(Resealed::Failed("lead record unreadable".into()));
    };
    match records::reseal_pii(ring, &rec.lead_id, &rec.pii_json) {
        Ok(None) => return Ok(Resealed::Kept),
        Ok(Some(_)) => {}
        Err(e) => return Ok(Resealed::Failed(e.to_string())),
    }
    let Some((claim, stored)) = sweep_claim(claims, store, key)? else {
        return Ok(Resealed::Busy);
    };
    let Some(Ok(mut rec)) = stored.map(|v| records::decode_lead(&v)) else {
        return Ok(Resealed::Kept);
    };
    match records::reseal_pii(ring, &rec.lead_id, &rec.pii_json) {
        Ok(None) => Ok(Resealed::Kept),
        Ok(Some(sealed)) => {
            rec.pii_json = sealed;
            Ok(Resealed::Written(records::encode_lead(&rec), claim))
        }
        Err(e) => Ok(Resealed::Failed(e.to_string())),
    }
}

/// Whether an unfinished job's cursor is in the store.
fn unfinished(store: &Store) -> Result<bool, StoreError> {
    let rows = store.scan_prefix(Tree::Meta, CURSOR, 1)?;
    Ok(rows.iter().any(|(k, _)| k == CURSOR))
}

impl Exchange {
    /// Starts a re-seal job in the background (`POST /v1/admin/reseal`),
    /// or lets the running one go on; `false` without a data key.
    pub fn start_reseal(self: &Arc<Self>) -> Result<bool, StoreError> {
        if self.runtime().key_ring.is_none() {
            return Ok(false);
        }
        if self
            .reseal
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(true);
        }
        let job = &self.reseal;
        for c in [&job.scanned, &job.resealed, &job.failed] {
            c.store(0, Ordering::Relaxed);
        }
        job.done.store(false, Ordering::Release);
        if !unfinished(&self.store)? {
            let mut b = Batch::default();
            b.insert(Tree::Meta, CURSOR.to_vec(), Vec::new());
            self.store.write(b)?;
        }
        spawn(self);
        Ok(true)
    }

    /// The re-seal job: its progress and whether it runs.
    pub fn reseal_job(&self) -> &Job {
        &self.reseal
    }

    /// At start: a job a stop interrupted goes on.
    pub fn resume_reseal(self: &Arc<Self>) {
        match unfinished(&self.store) {
            Ok(true) => {
                log::info!(target: "leadx::privacy", "resuming an unfinished re-seal job");
                if let Err(e) = self.start_reseal() {
                    log::error!(target: "leadx::privacy", "cannot resume the re-seal job error=\"{e}\"");
                }
            }
            Ok(false) => {}
            Err(e) => {
                log::error!(target: "leadx::privacy", "cannot look for a re-seal job error=\"{e}\"")
            }
        }
    }
}

fn spawn(ex: &Arc<Exchange>) {
    let weak: Weak<Exchange> = Arc::downgrade(ex);
    let spawned = std::thread::Builder::new()
        .name("leadx-reseal".into())
        .spawn(move || run(&weak));
    if let Err(e) = spawned {
        ex.reseal.running.store(false, Ordering::Release);
        log::error!(target: "leadx::privacy", "cannot start the re-seal thread error=\"{e}\"");
    }
}

/// The job's loop: a batch per tick under the sweep turn, until done, the
/// exchange drains, or the data key is gone (a reload removed it).
fn run(weak: &Weak<Exchange>) {
    let pace = Duration::from_millis(limits::RETENTION_TICK_MS);
    loop {
        let Some(ex) = weak.upgrade() else { return };
        if ex.posts_closed() {
            ex.reseal.running.store(false, Ordering::Release);
            return;
        }
        let rt = ex.runtime();
        let Some(ring) = rt.key_ring.as_ref() else {
            ex.reseal.running.store(false, Ordering::Release);
            return;
        };
        let turn = ex.retention().turn();
        let hook = || ex.retention().run_hook("reseal");
        let result = batch(
            &ex.store,
            ring,
            limits::RETENTION_BATCH_KEYS,
            ex.lead_claims(),
            &hook,
        );
        drop(turn);
        match result {
            Ok(p) => {
                // `done` only once the last batch is applied and durable:
                // an operator removes the old key when it says so.
                if p.done {
                    if let Err(e) = ex.store.sync() {
                        log::warn!(target: "leadx::privacy", "re-seal: last batch not confirmed; retrying error=\"{e}\"");
                        drop(rt);
                        drop(ex);
                        crate::sync::sleep(pace);
                        continue;
                    }
                }
                ex.reseal.add(&p);
                if p.done {
                    let p = ex.reseal.progress();
                    log::info!(target: "leadx::privacy", "re-seal done scanned={} resealed={} failed={}", p.scanned, p.resealed, p.failed);
                    ex.reseal.running.store(false, Ordering::Release);
                    return;
                }
            }
            // Overloaded: the next tick tries again; closed or unwritable
            // likewise, until the drain stops the loop.
            Err(e) => {
                log::warn!(target: "leadx::privacy", "re-seal batch not written; retrying error=\"{e}\"")
            }
        }
        drop(rt);
        drop(ex);
        crate::sync::sleep(pace);
    }
}

/// Why `leadx reseal` could not run.
#[derive(Debug)]
pub enum OfflineError {
    /// No `privacy.data_key` in the config: nothing to seal under.
    NoDataKey,
    /// The store would not open (locked by a running leadx, another
    /// format, I/O).
    Store(StoreError),
}

impl std::fmt::Display for OfflineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfflineError::NoDataKey => f.write_str(
                "privacy.data_key: not set; re-sealing needs the key to seal under",
            ),
            OfflineError::Store(StoreError::Locked) => f.write_str(
                "server.data_dir is locked by a running leadx: stop it first, or ask it with POST /v1/admin/reseal",
            ),
            OfflineError::Store(e) => write!(f, "server.data_dir: {e}"),
        }
    }
}

/// `leadx reseal`: the whole job on a stopped leadx's store, unpaced
/// (nothing else runs on it), resuming an unfinished job's cursor.
/// `progress` is told after every batch.
pub fn offline(config: &Config, progress: impl Fn(&Progress)) -> Result<Progress, OfflineError> {
    let ring = config.privacy.key_ring().ok_or(OfflineError::NoDataKey)?;
    let opts = StoreOptions {
        cache_bytes: config.server.store_cache_bytes,
        lock_wait_ms: limits::OFFLINE_LOCK_WAIT_MS,
        ..StoreOptions::default()
    };
    let store = Store::open(&config.server.data_dir, opts).map_err(OfflineError::Store)?;
    let mut total = Progress::default();
    let claims = Claims::default();
    let result = loop {
        match batch(&store, &ring, limits::RETENTION_BATCH_KEYS, &claims, &|| {}) {
            Ok(p) => {
                total.scanned += p.scanned;
                total.resealed += p.resealed;
                total.failed += p.failed;
                total.done = p.done;
                progress(&total);
                if p.done {
                    break Ok(total);
                }
            }
            Err(e) => break Err(OfflineError::Store(e)),
        }
    };
    let closed = store.close().map_err(OfflineError::Store);
    let total = result?;
    closed?;
    Ok(total)
}
