//! The store's one writer OS thread: group commit, and recovery from a
//! failed write.
//!
//! Why one thread: sled 0.34 only makes data durable on `flush`, which blocks
//! an OS thread (so it must not run on a may worker), and concurrent
//! `flush_async` calls deadlock (spacejam/sled#1308). So every write is
//! queued here; the writer takes everything queued (up to
//! `batch_ops_max` operations), applies it in queue order as ONE sled batch,
//! flushes ONCE, then wakes every waiter that flush covered. Writes nobody
//! waits for are held up to `write_defer` to join a larger group. Under load one fsync covers many
//! writes, which is what makes thousands of durable writes per second
//! possible on one disk.
//!
//! Errors never panic the process. A failed apply or flush (a full disk, an
//! I/O error) marks the store *unwritable* and every waiter of the group
//! gets `StoreError::Unwritable`: one error is logged, later writes are refused at enqueue
//! (503 `overloaded` at once) and reads too, since sled's memory may then
//! hold writes that never reached the disk. sled latches its first I/O error
//! for good, so the writer recovers by reopening sled: every
//! `limits::STORE_PROBE_MS`, whatever the traffic, it writes and syncs a
//! plain probe file in the data directory and, when that works, drops every
//! sled handle, opens the directory again (what is on disk is exactly what
//! was flushed) and writes, flushes and removes a probe key. When that works
//! the store is writable again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::RwLock;
use crossbeam::channel::{Receiver, RecvTimeoutError};

use super::{keys, Batch, Fault, StoreError, StoreOptions, Tree};
use crate::limits;

/// Where a writer answers one waiter. may's mpsc wakes a coroutine or a
/// plain thread alike, so either can wait for durability.
pub(crate) type Waiter = may::sync::mpsc::Sender<Result<(), StoreError>>;

/// One queued request.
pub(crate) enum Msg {
    /// Apply `batch`; answer `waiter` (if any) once a flush covers it.
    Write {
        batch: Batch,
        waiter: Option<Waiter>,
    },
    /// Apply `batch`; answer `waiter` once it is applied (visible to
    /// readers), before the flush, and without ending the group's defer:
    /// for a sweep that must not let go of a lead's claim before a reader
    /// could see its write, yet promises nobody durability.
    WriteApplied { batch: Batch, waiter: Waiter },
    /// Answer once everything queued before it is durable.
    Sync(Waiter),
    /// The last message ever sent: drain, flush, answer, stop.
    Close(Waiter),
}

/// Counters and flags the writer updates and `Store` reads.
#[derive(Default)]
pub(crate) struct Counters {
    pub flushes_total: AtomicU64,
    pub flush_us_total: AtomicU64,
    pub flush_us_max: AtomicU64,
    pub last_batch_ops: AtomicU64,
    pub ops_total: AtomicU64,
    /// Messages enqueued and not yet taken by the writer (bounded by
    /// `queue_max` at enqueue for unwaited writes).
    pub queue_depth: AtomicUsize,
    /// A write failed and no probe has succeeded since.
    pub unwritable: AtomicBool,
    /// Times the store became unwritable.
    pub unwritable_total: AtomicU64,
    /// The injected `Fault` (tests), as its `u8`.
    pub fault: AtomicU8,
}

impl Counters {
    fn fault(&self) -> Fault {
        Fault::from_u8(self.fault.load(Ordering::Acquire))
    }
}

/// The sled handle readers use; the writer empties it to reopen sled.
pub(crate) type DbSlot = Arc<RwLock<Option<sled::Db>>>;

/// What the writer thread owns.
pub(crate) struct Writer {
    /// `None` between a failed probe and the next.
    pub db: Option<sled::Db>,
    /// sled's log file, opened again only to `sync_data` it (see `flush`).
    pub log_file: Option<std::fs::File>,
    /// The readers' handle, replaced on a reopen.
    pub slot: DbSlot,
    pub dir: PathBuf,
    pub opts: StoreOptions,
    pub rx: Receiver<Msg>,
    pub counters: Arc<Counters>,
    pub batch_ops_max: usize,
    /// Longest a group without waiters keeps gathering before its apply.
    pub write_defer: Duration,
}

/// One group commit's worth of work, gathered before the flush.
#[derive(Default)]
struct Group {
    /// Every write of the group, merged in queue order: sled's
    /// `apply_batch` writes and syncs its log buffer each time it is called,
    /// so one call per group instead of one per write is the saving.
    merged: sled::Batch,
    /// Waiters of writes and syncs (all answered with the group's result).
    waiters: Vec<Waiter>,
    /// Waiters of `WriteApplied`, answered right after the apply.
    applied: Vec<Waiter>,
    ops: u64,
    /// The `Close` waiter, when the group ends with it.
    close: Option<Waiter>,
}

impl Writer {
    /// Runs until `Close` arrives or every sender is gone (all `Store`
    /// handles dropped), flushing whatever was applied before stopping.
    pub fn run(mut self) {
        let mut dirty = false;
        loop {
            let Some(first) = self.next_msg() else {
                // Last handle dropped without `close`: still leave the data
                // durable. No one is left to tell; a failure is logged.
                if dirty {
                    let _ = self.flush();
                }
                return;
            };
            self.stall();
            let mut group = self.gather(first);
            let ops = group.ops;
            let result = if self.unwritable() {
                Err(StoreError::Unwritable)
            } else {
                let applied = self.apply(group.merged, ops);
                dirty |= applied.is_ok() && ops > 0;
                // Visible to readers now; durable only after the flush.
                let visible = applied.clone().map_err(|_| StoreError::Unwritable);
                answer(std::mem::take(&mut group.applied), &visible);
                let flushed = match applied {
                    Err(e) => Err(e),
                    Ok(()) if dirty || group.close.is_some() => self.flush(),
                    Ok(()) => Ok(()),
                };
                // Either way nothing applied is pending any more: flushed,
                // or lost with the reopen that recovery does.
                dirty = false;
                // Callers learn that the store cannot write (503); the cause
                // goes to the log, once.
                flushed
                    .inspect_err(|e| self.mark_unwritable(e))
                    .map_err(|_| StoreError::Unwritable)
            };
            self.counters.last_batch_ops.store(ops, Ordering::Relaxed);
            self.counters.ops_total.fetch_add(ops, Ordering::Relaxed);
            // Not applied (the store was unwritable): told so.
            answer(std::mem::take(&mut group.applied), &result);
            answer(group.waiters, &result);
            if let Some(waiter) = group.close {
                // Nothing left to make durable is a clean close, even on a
                // store that cannot be written right now.
                let closed = if ops == 0 && self.unwritable() {
                    Ok(())
                } else {
                    result
                };
                let _ = waiter.send(closed);
                return;
            }
        }
    }

    fn unwritable(&self) -> bool {
        self.counters.unwritable.load(Ordering::Acquire)
    }

    /// The next message; while unwritable, probes every
    /// `STORE_PROBE_MS` whether or not messages arrive. `None`: every
    /// sender is gone.
    fn next_msg(&mut self) -> Option<Msg> {
        let probe_every = Duration::from_millis(limits::STORE_PROBE_MS);
        let mut next_probe = Instant::now() + probe_every;
        loop {
            if !self.unwritable() {
                // own thread: the writer
                return self.rx.recv().ok();
            }
            match self.rx.recv_deadline(next_probe) {
                Ok(msg) => return Some(msg),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    self.probe();
                    next_probe = Instant::now() + probe_every;
                }
            }
        }
    }

    /// `Fault::Stall` (tests): hold everything taken so far, and every
    /// message behind it, until the fault is lifted.
    fn stall(&self) {
        while self.counters.fault() == Fault::Stall {
            std::thread::sleep(Duration::from_millis(1)); // own thread: the writer
        }
    }

    /// Takes `first` and whatever else is queued (up to `batch_ops_max`
    /// operations, at least one message). While nobody in the group waits,
    /// it keeps gathering until `write_defer` after `first`: those writes
    /// were promised nothing, and one apply for many is far cheaper.
    fn gather(&self, first: Msg) -> Group {
        let defer_until = Instant::now() + self.write_defer;
        let mut group = Group::default();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            self.counters.queue_depth.fetch_sub(1, Ordering::AcqRel);
            take(msg, &mut group);
            if group.close.is_some() || group.ops >= self.batch_ops_max as u64 {
                break;
            }
            next = match self.rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(_) if group.waiters.is_empty() => self.rx.recv_deadline(defer_until).ok(),
                Err(_) => None,
            };
        }
        group
    }

    fn apply(&self, merged: sled::Batch, ops: u64) -> Result<(), StoreError> {
        if ops == 0 {
            return Ok(());
        }
        if self.counters.fault() == Fault::FailWrites {
            return Err(injected());
        }
        let db = self.db.as_ref().ok_or(StoreError::Unwritable)?;
        db.apply_batch(merged).map_err(StoreError::from)
    }

    /// One flush covering everything applied so far, timed.
    ///
    /// sled's flush writes its buffers with `sync_file_range` only, which
    /// survives a killed process but neither commits the file's metadata
    /// (the log grows) nor flushes the disk's write cache, so a power cut
    /// could still lose acknowledged sales. `sync_data` on the same file
    /// closes that gap; it costs one more syscall per group, not per write.
    fn flush(&self) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = self.flush_untimed();
        let us = start.elapsed().as_micros().min(u64::MAX as u128) as u64;
        let c = &self.counters;
        c.flushes_total.fetch_add(1, Ordering::Relaxed);
        c.flush_us_total.fetch_add(us, Ordering::Relaxed);
        c.flush_us_max.fetch_max(us, Ordering::Relaxed);
        result
    }

    fn flush_untimed(&self) -> Result<(), StoreError> {
        if self.counters.fault() == Fault::FailWrites {
            return Err(injected());
        }
        let (Some(db), Some(log_file)) = (&self.db, &self.log_file) else {
            return Err(StoreError::Unwritable);
        };
        db.flush()?;
        log_file
            .sync_data()
            .map_err(|e| StoreError::Io(format!("fdatasync: {e}")))
    }

    /// The one log line of an outage; the flag makes every later write
    /// fail at enqueue, so no request logs it again.
    fn mark_unwritable(&self, e: &StoreError) {
        if !self.counters.unwritable.swap(true, Ordering::AcqRel) {
            self.counters
                .unwritable_total
                .fetch_add(1, Ordering::Relaxed);
            log::error!(target: "leadx::store", probe_every_ms = limits::STORE_PROBE_MS, error:% = e; "store write failed; refusing writes and reads until a probe succeeds");
        }
    }

    /// Reopens sled and tries a real write. On success the readers get
    /// the new handle first, then the flag clears. A plain file is written
    /// first: while the disk is still full that fails without touching
    /// sled, whose reopen and drop would each log and cost more.
    fn probe(&mut self) {
        if let Err(e) = self.probe_file() {
            log::debug!(target: "leadx::store", error:% = e; "store probe failed");
            return;
        }
        self.slot.write().take();
        self.db.take();
        self.log_file.take();
        match self.reopen() {
            Ok((db, log_file)) => {
                *self.slot.write() = Some(db.clone());
                self.db = Some(db);
                self.log_file = Some(log_file);
                self.counters.unwritable.store(false, Ordering::Release);
                log::info!(target: "leadx::store", "store writable again");
            }
            Err(e) => log::debug!(target: "leadx::store", error:% = e; "store probe failed"),
        }
    }

    fn probe_file(&self) -> Result<(), StoreError> {
        if self.counters.fault() == Fault::FailWrites {
            return Err(injected());
        }
        let path = self.dir.join("leadx-probe.tmp");
        let written = std::fs::File::create(&path).and_then(|mut f| {
            std::io::Write::write_all(&mut f, &vec![0u8; limits::STORE_PROBE_BYTES])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        written.map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))
    }

    fn reopen(&self) -> Result<(sled::Db, std::fs::File), StoreError> {
        let db = super::open_sled(&self.dir, &self.opts)?;
        let log_file = super::open_log_file(&self.dir)?;
        if self.counters.fault() == Fault::FailWrites {
            return Err(injected());
        }
        let key = keys::encode(Tree::Meta, b"probe");
        db.insert(&key, vec![0u8; limits::STORE_PROBE_BYTES])?;
        db.flush()?;
        db.remove(&key)?;
        db.flush()?;
        log_file
            .sync_data()
            .map_err(|e| StoreError::Io(format!("fdatasync: {e}")))?;
        Ok((db, log_file))
    }
}

fn injected() -> StoreError {
    StoreError::Io("injected fault: writes fail".into())
}

fn take(msg: Msg, group: &mut Group) {
    match msg {
        Msg::Write { batch, waiter } => {
            group.ops += batch.len() as u64;
            batch.append_to(&mut group.merged);
            group.waiters.extend(waiter);
        }
        Msg::WriteApplied { batch, waiter } => {
            group.ops += batch.len() as u64;
            batch.append_to(&mut group.merged);
            group.applied.push(waiter);
        }
        Msg::Sync(w) => group.waiters.push(w),
        Msg::Close(w) => group.close = Some(w),
    }
}

/// Wakes every waiter of a group with its outcome: `Unwritable` if the
/// merged apply or the flush failed (the group is one atomic sled batch,
/// durable together or not at all), else `Ok`. A waiter that gave up (dropped its receiver)
/// is fine to ignore.
fn answer(waiters: Vec<Waiter>, result: &Result<(), StoreError>) {
    for waiter in waiters {
        let _ = waiter.send(result.clone());
    }
}
