//! The durable store: sled behind a small API, every write through one
//! writer thread that group-commits (see `writer`).
//!
//! Why this shape: in sled 0.34.7 an acknowledged `insert` is NOT durable
//! against kill -9 (measured: 70–130 acknowledged inserts lost at a high
//! rate); only `flush` is, and it blocks an OS thread. So callers enqueue a
//! [`Batch`] and, when their answer promises durability, wait on a
//! coroutine-aware channel until a flush covers it ([`Store::write_durable`]).
//! A batch is atomic across trees (one sled tree, one tag byte per logical
//! tree — see `keys`), and batches apply in enqueue order.
//!
//! Reads go straight to sled and see *applied* data: a `write` that has not
//! been applied yet is invisible until then (at most
//! `limits::STORE_WRITE_DEFER_MS` plus the writer's backlog); `write_durable`,
//! `write_applied` or `sync` returning means it is visible. Reads may block their OS thread briefly:
//! on a cache miss (a page read) or while the writer holds sled's global
//! batch lock for one `apply_batch` (in-memory work, microseconds).
//!
//! Capacity: writes nobody waits for (pings, call records) may fill only
//! `limits::STORE_QUEUE_UNWAITED_PCT` of the queue; waited writes (a sale's
//! outcome) are never refused for queue depth. A failed write marks the
//! store unwritable until the writer's probe succeeds (see `writer`):
//! writes and reads then fail at once with [`StoreError::Unwritable`].
//! [`Store::inject_fault`] lets tests stall the writer or fail its writes.

mod keys;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::sync::{MappedReadGuard, Mutex, ReadGuard, RwLock};
use crossbeam::channel::Sender;

use crate::limits;
pub use keys::Tree;
use writer::{Counters, DbSlot, Msg, Writer};

/// The on-disk format this build writes; kept in `Tree::Meta`.
pub const FORMAT_VERSION: u32 = 1;
/// Meta key holding the format version (u32, big-endian).
const FORMAT_VERSION_KEY: &[u8] = b"format_version";

/// Key–value pairs returned by scans (keys without the tree tag).
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The disk or the OS failed (the text is for logs, never for clients).
    Io(String),
    /// The data on disk is not what the store wrote.
    Corrupt(String),
    /// The store was closed; nothing more is accepted.
    Closed,
    /// The writer's queue is full (`StoreOptions::queue_max`): shed load.
    Overloaded,
    /// A write failed (disk full, I/O error) and the store has not
    /// recovered yet: retry later. Logged once, by the writer.
    Unwritable,
    /// The data directory was written by another format version.
    Version { found: u32, expected: u32 },
    /// Another process holds the data directory (sled's lock): a running
    /// leadx. Offline tools (`leadx reseal`) refuse to work under it.
    Locked,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "store I/O error: {e}"),
            StoreError::Corrupt(e) => write!(f, "store data corrupt: {e}"),
            StoreError::Closed => f.write_str("store is closed"),
            StoreError::Overloaded => f.write_str("store write queue is full"),
            StoreError::Unwritable => f.write_str("store is not writable after a failed write"),
            StoreError::Locked => {
                f.write_str("the data directory is locked by another process (a running leadx?)")
            }
            StoreError::Version { found, expected } => write!(
                f,
                "store format version {found} on disk, this build reads {expected}"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { at, .. } => StoreError::Corrupt(format!("at {at:?}")),
            other => StoreError::Io(other.to_string()),
        }
    }
}

/// Writes applied together, atomically (all trees), in insertion order: a
/// later operation on the same key wins.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Encoded key and value (`None`: remove), in the order given. Kept as
    /// plain pairs rather than a `sled::Batch` so the writer can merge a
    /// whole group into one sled batch (see `writer`).
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn insert(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops
            .push((keys::encode(tree, &key.into()), Some(value.into())));
    }

    pub fn remove(&mut self, tree: Tree, key: impl Into<Vec<u8>>) {
        self.ops.push((keys::encode(tree, &key.into()), None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Operations recorded (a key written twice counts twice).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Adds this batch's operations to `into` after what it holds: a later
    /// write of the same key wins, as it would applied separately in order.
    fn append_to(self, into: &mut sled::Batch) {
        for (k, v) in self.ops {
            match v {
                Some(v) => into.insert(k, v),
                None => into.remove(k),
            }
        }
    }
}

/// How to open a store. Every field is passed to sled or the writer
/// explicitly; nothing leans on a library default.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page-cache size.
    pub cache_bytes: u64,
    /// The writer's queue size. Unwaited writes may fill
    /// `limits::STORE_QUEUE_UNWAITED_PCT` of it, more is `Overloaded`;
    /// waited writes are never refused for depth.
    pub queue_max: usize,
    /// Most operations applied before one flush (group commit size).
    pub batch_ops_max: usize,
    /// Longest a `write` (no waiter) is held before it is applied and
    /// flushed, so that one sled write covers many; a `write_durable` or
    /// `sync` ends the wait at once.
    pub write_defer_ms: u64,
    /// How long `open` waits for sled's directory lock before it answers
    /// `StoreError::Locked` (a restart's previous handle may still hold it
    /// briefly; an offline tool waits less).
    pub lock_wait_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lock_wait_ms: limits::STORE_LOCK_WAIT_MS,
            cache_bytes: limits::STORE_CACHE_BYTES_DEFAULT,
            queue_max: limits::STORE_QUEUE_MAX,
            batch_ops_max: limits::STORE_BATCH_OPS_MAX,
            write_defer_ms: limits::STORE_WRITE_DEFER_MS,
        }
    }
}

/// Plain counters; the metrics module turns them into exposition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub flushes_total: u64,
    pub flush_us_total: u64,
    pub flush_us_max: u64,
    /// Operations in the most recent group commit.
    pub last_batch_ops: u64,
    pub ops_total: u64,
    pub queue_depth: u64,
    /// No write failed since the last successful probe.
    pub writable: bool,
    /// Times the store became unwritable since it was opened.
    pub unwritable_total: u64,
}

/// A failure tests can switch on in a running store
/// ([`Store::inject_fault`]). Not for production use.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Normal operation.
    None,
    /// The writer pauses before its next group, holding what it took.
    Stall,
    /// Every apply, flush and probe fails as a failing disk would.
    FailWrites,
}

impl Fault {
    fn from_u8(v: u8) -> Fault {
        match v {
            1 => Fault::Stall,
            2 => Fault::FailWrites,
            _ => Fault::None,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Fault::None => 0,
            Fault::Stall => 1,
            Fault::FailWrites => 2,
        }
    }
}

/// A handle to the store; clone it freely (one writer behind all clones).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once closed: dropping it on `close` releases sled's directory
    /// lock even while other handles (a lingering connection's) still exist,
    /// so a restarted exchange can reopen the directory at once. Readers hold
    /// the read lock only for one sled call, which never yields. The
    /// writer empties and refills it to reopen sled after a failed write.
    db: DbSlot,
    /// `None` once closed. Senders take the read lock only around a
    /// non-blocking `send`, so `close` (write lock) orders `Close` after
    /// every accepted write.
    tx: RwLock<Option<Sender<Msg>>>,
    counters: Arc<Counters>,
    /// Most messages in the queue when an unwaited write is enqueued.
    unwaited_max: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and starts its writer
    /// thread. Blocks: call it at startup, not on a coroutine.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        let db = open_sled(dir, &opts)?;
        check_version(&db)?;
        let log_file = open_log_file(dir)?;
        let counters = Arc::new(Counters::default());
        let (tx, rx) = crossbeam::channel::unbounded();
        let slot: DbSlot = Arc::new(RwLock::new(Some(db.clone())));
        let queue_max = opts.queue_max.max(1);
        let writer = Writer {
            db: Some(db),
            log_file: Some(log_file),
            slot: slot.clone(),
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            rx,
            counters: counters.clone(),
            batch_ops_max: opts.batch_ops_max.max(1),
            write_defer: std::time::Duration::from_millis(opts.write_defer_ms),
        };
        let thread = std::thread::Builder::new()
            .name("leadx-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Io(format!("spawning the writer thread: {e}")))?;
        let inner = Inner {
            db: slot,
            tx: RwLock::new(Some(tx)),
            counters,
            unwaited_max: (queue_max * limits::STORE_QUEUE_UNWAITED_PCT / 100).max(1),
            thread: Mutex::new(Some(thread)),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The applied value of `key` in `tree`.
    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db()?.get(keys::encode(tree, key))?.map(|v| v.to_vec()))
    }

    /// Enqueues `batch` without waiting. `Overloaded` when unwaited writes
    /// fill their share of the queue, `Unwritable` after a failed write,
    /// `Closed` after `close`.
    pub fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.enqueue(
            Msg::Write {
                batch,
                waiter: None,
            },
            true,
        )
    }

    /// Enqueues `batch` and waits (coroutine-aware) until a flush covers it.
    /// Never refused for queue depth (see the module doc).
    pub fn write_durable(&self, batch: Batch) -> Result<(), StoreError> {
        let (waiter, done) = may::sync::mpsc::channel();
        self.enqueue(
            Msg::Write {
                batch,
                waiter: Some(waiter),
            },
            false,
        )?;
        wait(done)
    }

    /// Enqueues `batch` as an unwaited write (its share of the queue, the
    /// writer's defer) and waits (coroutine-aware) until the writer has
    /// *applied* it — a reader sees it from then on — but not for the
    /// flush. A sweep holding a lead's claim waits so before it lets go: the
    /// next claimer's `get` then reads this write, never the value before
    /// it (`exchange::claims`).
    pub fn write_applied(&self, batch: Batch) -> Result<(), StoreError> {
        let (waiter, done) = may::sync::mpsc::channel();
        self.enqueue(Msg::WriteApplied { batch, waiter }, true)?;
        wait(done)
    }

    /// Waits until everything enqueued so far is durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (waiter, done) = may::sync::mpsc::channel();
        self.enqueue(Msg::Sync(waiter), false)?;
        wait(done)
    }

    /// `false` from a failed write until the writer's probe succeeds.
    pub fn is_writable(&self) -> bool {
        !self.inner.counters.unwritable.load(Ordering::Acquire)
    }

    /// Switches a test fault on (or off with `Fault::None`).
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) {
        self.inner
            .counters
            .fault
            .store(fault.as_u8(), Ordering::Release);
    }

    /// Up to `limit` pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        self.settle();
        collect(self.db()?.scan_prefix(keys::encode(tree, prefix)), limit)
    }

    /// Up to `limit` pairs with keys in `[from, to)`, largest key first. An
    /// empty `to` means "to the end of the tree" (an empty exclusive end
    /// would otherwise always give nothing).
    pub fn scan_range_rev(
        &self,
        tree: Tree,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        let Some((lo, hi)) = keys::range(tree, from, to) else {
            return Ok(Vec::new());
        };
        self.settle();
        let db = self.db()?;
        collect(db.range((std::ops::Bound::Included(lo), hi)).rev(), limit)
    }

    /// Up to `limit` pairs with keys in `[from, to)`, smallest key first; an
    /// empty `to` as in `scan_range_rev`.
    pub fn scan_range(
        &self,
        tree: Tree,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        self.settle();
        self.scan_range_applied(tree, from, to, limit)
    }

    /// `scan_range` of what the writer has applied so far, without waiting
    /// for queued writes (no `settle`, so no flush is forced): for a
    /// background poller (the postback sender) that looks again soon and
    /// must not make the writer flush on every look.
    pub fn scan_range_applied(
        &self,
        tree: Tree,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<KeyValues, StoreError> {
        let Some((lo, hi)) = keys::range(tree, from, to) else {
            return Ok(Vec::new());
        };
        collect(self.db()?.range((std::ops::Bound::Included(lo), hi)), limit)
    }

    /// `count_prefix` of what is applied, without waiting (as
    /// `scan_range_applied`).
    pub fn count_prefix_applied(&self, tree: Tree, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for kv in self.db()?.scan_prefix(keys::encode(tree, prefix)).keys() {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    /// How many keys start with `prefix`. Walks them: O(matches).
    pub fn count_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<u64, StoreError> {
        self.settle();
        let mut n = 0u64;
        for kv in self.db()?.scan_prefix(keys::encode(tree, prefix)).keys() {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            flushes_total: c.flushes_total.load(Ordering::Relaxed),
            flush_us_total: c.flush_us_total.load(Ordering::Relaxed),
            flush_us_max: c.flush_us_max.load(Ordering::Relaxed),
            last_batch_ops: c.last_batch_ops.load(Ordering::Relaxed),
            ops_total: c.ops_total.load(Ordering::Relaxed),
            queue_depth: c.queue_depth.load(Ordering::Relaxed) as u64,
            writable: !c.unwritable.load(Ordering::Relaxed),
            unwritable_total: c.unwritable_total.load(Ordering::Relaxed),
        }
    }

    /// Drains the queue, flushes, stops the writer. Idempotent: a second
    /// call returns `Ok` at once. Later writes get `Closed`; reads still
    /// work until the last handle is dropped.
    pub fn close(&self) -> Result<(), StoreError> {
        let Some(tx) = self.inner.tx.write().take() else {
            return Ok(());
        };
        let (waiter, done) = may::sync::mpsc::channel();
        self.inner
            .counters
            .queue_depth
            .fetch_add(1, Ordering::AcqRel);
        let sent = tx.send(Msg::Close(waiter));
        drop(tx);
        let result = if sent.is_ok() {
            wait(done)
        } else {
            Err(StoreError::Closed)
        };
        // The writer has answered (or died): joining only reaps the thread,
        // which also drops its `Db` handle so the directory can be reopened.
        let thread = self.inner.thread.lock().take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("store: writer thread panicked");
            }
        }
        self.inner.db.write().take();
        result
    }

    /// The open database; `Unwritable` while a failed write is not
    /// recovered (sled's memory may hold writes the disk never got, and the
    /// writer may be reopening it), else `Closed` once closed.
    fn db(&self) -> Result<MappedReadGuard<'_, sled::Db>, StoreError> {
        if !self.is_writable() {
            return Err(StoreError::Unwritable);
        }
        ReadGuard::try_map(self.inner.db.read(), Option::as_ref).ok_or_else(|| {
            if self.is_writable() {
                StoreError::Closed
            } else {
                StoreError::Unwritable
            }
        })
    }

    /// Scans (admin listings, start-up counts) read after the writer has
    /// applied every write queued before them, deferred ones included, so a
    /// listing right after an answer shows it. Point `get`s do not: the hot
    /// paths read keys that durable writes put there, or fall back to a
    /// cache. A closed or overloaded store is read as it is.
    fn settle(&self) {
        let _ = self.sync();
    }

    /// Queues `msg`; an `unwaited` write only within its share of the
    /// queue. Refused at once while the store is unwritable.
    fn enqueue(&self, msg: Msg, unwaited: bool) -> Result<(), StoreError> {
        let guard = self.inner.tx.read();
        let tx = guard.as_ref().ok_or(StoreError::Closed)?;
        if !self.is_writable() {
            return Err(StoreError::Unwritable);
        }
        let depth = &self.inner.counters.queue_depth;
        if depth.fetch_add(1, Ordering::AcqRel) >= self.inner.unwaited_max && unwaited {
            depth.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Overloaded);
        }
        tx.send(msg).map_err(|_| {
            depth.fetch_sub(1, Ordering::AcqRel);
            StoreError::Closed
        })
    }
}

/// Waits for the writer's answer. A dropped sender means the writer
/// stopped without answering (it panicked): report the store as closed.
fn wait(done: may::sync::mpsc::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
    crate::sync::will_wait_for_store("a store wait");
    crate::sync::will_park("a store wait");
    done.recv().unwrap_or(Err(StoreError::Closed))
}

fn collect(
    iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    limit: usize,
) -> Result<KeyValues, StoreError> {
    let mut out = Vec::new();
    for kv in iter.take(limit) {
        let (k, v) = kv?;
        out.push((keys::decode(&k), v.to_vec()));
    }
    Ok(out)
}

/// Opens sled in `dir`. sled finishes its last I/O on its own threads after
/// the previous handle is dropped, and holds the directory lock until then,
/// so an immediate reopen (a restart) retries the lock briefly.
fn open_sled(dir: &Path, opts: &StoreOptions) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(opts.cache_bytes)
        // Writes come in bursts of small sales; favour write throughput
        // over compactness (LowSpace rewrites segments more eagerly).
        .mode(sled::Mode::HighThroughput)
        // We flush ourselves, once per group commit; sled's periodic
        // flusher would only add fsyncs we do not wait for.
        .flush_every_ms(None)
        .use_compression(false)
        .temporary(false)
        .create_new(false)
        .print_profile_on_drop(false);
    let give_up = std::time::Instant::now() + std::time::Duration::from_millis(opts.lock_wait_ms);
    loop {
        match config.open() {
            // sled reports a held lock as ErrorKind::Other with this text.
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= give_up {
                    return Err(StoreError::Locked);
                }
                std::thread::sleep(std::time::Duration::from_millis(10)); // own thread: start-up
            }
            other => return Ok(other?),
        }
    }
}

/// sled 0.34 keeps its log in `<dir>/db`; the writer `sync_data`s it
/// (see `Writer::flush`).
fn open_log_file(dir: &Path) -> Result<std::fs::File, StoreError> {
    let log_path = dir.join("db");
    std::fs::File::open(&log_path)
        .map_err(|e| StoreError::Io(format!("{}: {e}", log_path.display())))
}

/// Writes the format version into a new store, refuses any other version.
/// There is only one format so far, so an older one is refused too rather
/// than guessed at.
fn check_version(db: &sled::Db) -> Result<(), StoreError> {
    let key = keys::encode(Tree::Meta, FORMAT_VERSION_KEY);
    match db.get(&key)? {
        None => {
            db.insert(key, &FORMAT_VERSION.to_be_bytes())?;
            db.flush()?;
            Ok(())
        }
        Some(raw) => {
            let bytes: [u8; 4] = raw.as_ref().try_into().map_err(|_| {
                StoreError::Corrupt(format!("format version is {} bytes, not 4", raw.len()))
            })?;
            let found = u32::from_be_bytes(bytes);
            if found == FORMAT_VERSION {
                Ok(())
            } else {
                Err(StoreError::Version {
                    found,
                    expected: FORMAT_VERSION,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
