//! The store's one writer OS thread: group commit.
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
//! Errors never panic the process: a failed apply or flush is reported to
//! every waiter of the group, and the
//! writer keeps going (sled itself latches a fatal I/O error, so later
//! operations then fail too and the operator sees them all).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;

use super::{Batch, StoreError};

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
    /// Answer once everything queued before it is durable.
    Sync(Waiter),
    /// The last message ever sent: drain, flush, answer, stop.
    Close(Waiter),
}

/// Counters the writer updates and `Store::stats` reads.
#[derive(Default)]
pub(crate) struct Counters {
    pub flushes_total: AtomicU64,
    pub flush_us_total: AtomicU64,
    pub flush_us_max: AtomicU64,
    pub last_batch_ops: AtomicU64,
    pub ops_total: AtomicU64,
    /// Messages enqueued and not yet taken by the writer (bounded by
    /// `queue_max` at enqueue).
    pub queue_depth: AtomicUsize,
}

/// What the writer thread owns.
pub(crate) struct Writer {
    pub db: sled::Db,
    /// sled's log file, opened again only to `sync_data` it (see `flush`).
    pub log_file: std::fs::File,
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
    ops: u64,
    close: bool,
}

impl Writer {
    /// Runs until `Close` arrives or every sender is gone (all `Store`
    /// handles dropped), flushing whatever was applied before stopping.
    pub fn run(self) {
        let mut dirty = false;
        loop {
            // own thread: the writer
            let first = match self.rx.recv() {
                Ok(msg) => msg,
                Err(_) => {
                    // Last handle dropped without `close`: still leave the
                    // data durable.
                    // No one is left to tell; `flush` logs a failure.
                    if dirty {
                        let _ = self.flush();
                    }
                    return;
                }
            };
            let group = self.gather(first);
            let ops = group.ops;
            let applied = self.apply(group.merged, ops);
            dirty |= applied.is_ok() && ops > 0;
            let flushed = match applied {
                Err(e) => Err(e),
                Ok(()) if dirty || group.close => self.flush(),
                Ok(()) => Ok(()),
            };
            if flushed.is_ok() {
                dirty = false;
            }
            self.counters.last_batch_ops.store(ops, Ordering::Relaxed);
            self.counters.ops_total.fetch_add(ops, Ordering::Relaxed);
            answer(group.waiters, &flushed);
            if group.close {
                return;
            }
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
            if group.close || group.ops >= self.batch_ops_max as u64 {
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
        let applied = self.db.apply_batch(merged).map_err(StoreError::from);
        if let Err(e) = &applied {
            log::error!("store: applying a batch failed: {e}");
        }
        applied
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
        let result = self.db.flush().map_err(StoreError::from).and_then(|_| {
            self.log_file
                .sync_data()
                .map_err(|e| StoreError::Io(format!("fdatasync: {e}")))
        });
        let us = start.elapsed().as_micros().min(u64::MAX as u128) as u64;
        let c = &self.counters;
        c.flushes_total.fetch_add(1, Ordering::Relaxed);
        c.flush_us_total.fetch_add(us, Ordering::Relaxed);
        c.flush_us_max.fetch_max(us, Ordering::Relaxed);
        if let Err(e) = &result {
            log::error!("store: flush failed: {e}");
        }
        result
    }
}

fn take(msg: Msg, group: &mut Group) {
    match msg {
        Msg::Write { batch, waiter } => {
            group.ops += batch.len() as u64;
            batch.append_to(&mut group.merged);
            group.waiters.extend(waiter);
        }
        Msg::Sync(w) => group.waiters.push(w),
        Msg::Close(w) => {
            group.waiters.push(w);
            group.close = true;
        }
    }
}

/// Wakes every waiter of a group with its outcome: the merged apply's error
/// if it failed (the whole group is one atomic sled batch, so none of it was
/// applied), else the flush's. A waiter that gave up (dropped its receiver)
/// is fine to ignore.
fn answer(waiters: Vec<Waiter>, result: &Result<(), StoreError>) {
    for waiter in waiters {
        let _ = waiter.send(result.clone());
    }
}
