//! The store's one writer OS thread: group commit.
//!
//! Why one thread: sled 0.34 only makes data durable on `flush`, which blocks
//! an OS thread (so it must not run on a may worker), and concurrent
//! `flush_async` calls deadlock (spacejam/sled#1308). So every write is
//! queued here; the writer takes everything queued (up to
//! `batch_ops_max` operations), applies it in queue order, flushes ONCE, then
//! wakes every waiter that flush covered. Under load one fsync covers many
//! writes, which is what makes thousands of durable writes per second
//! possible on one disk.
//!
//! Errors never panic the process: a failed apply is reported to that
//! write's waiter, a failed flush to every waiter of the group, and the
//! writer keeps going (sled itself latches a fatal I/O error, so later
//! operations then fail too and the operator sees them all).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
}

/// One group commit's worth of work, gathered before the flush.
#[derive(Default)]
struct Group {
    /// Waiters and their result so far (an apply error is final).
    waiters: Vec<(Waiter, Result<(), StoreError>)>,
    ops: u64,
    applied: bool,
    close: bool,
}

impl Writer {
    /// Runs until `Close` arrives or every sender is gone (all `Store`
    /// handles dropped), flushing whatever was applied before stopping.
    pub fn run(self) {
        let mut dirty = false;
        loop {
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
            dirty |= group.applied;
            let flushed = if dirty || group.close {
                self.flush()
            } else {
                Ok(())
            };
            if flushed.is_ok() {
                dirty = false;
            }
            self.counters
                .last_batch_ops
                .store(group.ops, Ordering::Relaxed);
            self.counters
                .ops_total
                .fetch_add(group.ops, Ordering::Relaxed);
            let close = group.close;
            answer(group.waiters, &flushed);
            if close {
                return;
            }
        }
    }

    /// Takes `first` and whatever else is queued (up to `batch_ops_max`
    /// operations, at least one message), applying writes in queue order.
    fn gather(&self, first: Msg) -> Group {
        let mut group = Group::default();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            self.counters.queue_depth.fetch_sub(1, Ordering::AcqRel);
            self.take(msg, &mut group);
            if group.close || group.ops >= self.batch_ops_max as u64 {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        group
    }

    fn take(&self, msg: Msg, group: &mut Group) {
        match msg {
            Msg::Write { batch, waiter } => {
                group.ops += batch.len() as u64;
                let applied = self.apply(batch);
                group.applied |= applied.is_ok();
                if let Err(e) = &applied {
                    log::error!("store: applying a batch failed: {e}");
                }
                if let Some(w) = waiter {
                    group.waiters.push((w, applied));
                }
            }
            Msg::Sync(w) => group.waiters.push((w, Ok(()))),
            Msg::Close(w) => {
                group.waiters.push((w, Ok(())));
                group.close = true;
            }
        }
    }

    fn apply(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.db
            .apply_batch(batch.into_sled())
            .map_err(StoreError::from)
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

/// Wakes every waiter of a group: its own apply error if it had one, else
/// the flush's outcome. A waiter that gave up (dropped its receiver) is
/// fine to ignore.
fn answer(waiters: Vec<(Waiter, Result<(), StoreError>)>, flushed: &Result<(), StoreError>) {
    for (waiter, applied) in waiters {
        let result = match applied {
            Err(e) => Err(e),
            Ok(()) => flushed.clone(),
        };
        let _ = waiter.send(result);
    }
}
