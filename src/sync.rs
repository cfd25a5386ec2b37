//! Locks for code that runs on may coroutines, and the check that keeps them
//! safe there.
//!
//! A may coroutine that parks (a channel, a socket, a store wait, a sleep)
//! while it holds an OS-level lock leaves its worker thread free to run
//! other coroutines — and when those block on the same lock, every worker
//! can end up blocked with no thread left to resume the holder. leadx hung
//! for good that way once (a cap counter loaded from the store under a
//! mutex). So the rule "no lock is held across a coroutine yield" is
//! enforced, not hoped for:
//!
//! - every lock in `src/` is this module's [`Mutex`] or [`RwLock`] (thin
//!   wrappers over `parking_lot`); the test
//!   `layering::locks_and_parks_go_through_sync` refuses any other;
//! - in debug builds each guard counts itself on its thread, and every park
//!   point in leadx calls [`will_park`] first, which panics while the
//!   thread holds a guard; a guard dropped on another thread than the one
//!   that took it (its coroutine yielded and migrated) panics too;
//! - a ping marks its coroutine with [`no_store_wait`]: a store wait under
//!   the mark panics in debug builds — a ping never waits for a flush.
//!
//! Release builds compile the checks away: the guards are parking_lot's.

use std::ops::{Deref, DerefMut};

/// A mutual-exclusion lock whose guard must not live across a park.
#[derive(Default)]
pub struct Mutex<T: ?Sized> {
    inner: parking_lot::Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            inner: parking_lot::const_mutex(value),
        }
    }

    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            guard: self.inner.lock(),
            _held: Held::take(),
        }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

pub struct MutexGuard<'a, T: ?Sized> {
    guard: parking_lot::MutexGuard<'a, T>,
    _held: Held,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// A reader-writer lock whose guards must not live across a park.
#[derive(Default)]
pub struct RwLock<T: ?Sized> {
    inner: parking_lot::RwLock<T>,
}

impl<T> RwLock<T> {
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            inner: parking_lot::const_rwlock(value),
        }
    }
}

impl<T: ?Sized> RwLock<T> {
    pub fn read(&self) -> ReadGuard<'_, T> {
        ReadGuard {
            guard: self.inner.read(),
            _held: Held::take(),
        }
    }

    pub fn write(&self) -> WriteGuard<'_, T> {
        WriteGuard {
            guard: self.inner.write(),
            _held: Held::take(),
        }
    }
}

pub struct ReadGuard<'a, T: ?Sized> {
    guard: parking_lot::RwLockReadGuard<'a, T>,
    _held: Held,
}

impl<'a, T: ?Sized> ReadGuard<'a, T> {
    /// A guard of a part of the value (`None`: `f` found nothing), still
    /// counted as held.
    pub fn try_map<U: ?Sized>(
        this: Self,
        f: impl FnOnce(&T) -> Option<&U>,
    ) -> Option<MappedReadGuard<'a, U>> {
        let ReadGuard { guard, _held } = this;
        parking_lot::RwLockReadGuard::try_map(guard, f)
            .ok()
            .map(|guard| MappedReadGuard { guard, _held })
    }
}

impl<T: ?Sized> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

pub struct MappedReadGuard<'a, T: ?Sized> {
    guard: parking_lot::MappedRwLockReadGuard<'a, T>,
    _held: Held,
}

impl<T: ?Sized> Deref for MappedReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

pub struct WriteGuard<'a, T: ?Sized> {
    guard: parking_lot::RwLockWriteGuard<'a, T>,
    _held: Held,
}

impl<T: ?Sized> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// Call right before anything that can park the current coroutine (or
/// block the current thread): `what` names it in the panic. Panics in debug
/// builds while this thread holds a [`Mutex`] or [`RwLock`] guard.
#[inline]
pub fn will_park(what: &'static str) {
    #[cfg(debug_assertions)]
    check::will_park(what);
    #[cfg(not(debug_assertions))]
    let _ = what;
}

/// Sleeps the current coroutine (or thread), after [`will_park`].
pub fn sleep(d: std::time::Duration) {
    will_park("a sleep");
    #[allow(clippy::disallowed_methods)] // this is the one checked sleep
    may::coroutine::sleep(d);
}

/// Call right before waiting for the store's writer (a flush, a settle):
/// [`will_park`], and in debug builds a panic inside a [`no_store_wait`]
/// scope.
#[inline]
pub fn will_wait_for_store(what: &'static str) {
    will_park(what);
    #[cfg(debug_assertions)]
    check::will_wait_for_store(what);
}

/// Marks the current coroutine (or thread) until the returned value drops:
/// it must not wait for the store. Pings run under it.
#[must_use = "the mark lasts as long as the returned value"]
pub fn no_store_wait() -> NoStoreWait {
    #[cfg(debug_assertions)]
    check::mark(1);
    NoStoreWait { _private: () }
}

pub struct NoStoreWait {
    _private: (),
}

impl Drop for NoStoreWait {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        check::mark(-1);
    }
}

/// Guards held by this thread (debug builds; always 0 in release).
pub fn held_here() -> usize {
    #[cfg(debug_assertions)]
    return check::HELD.with(|c| c.get());
    #[cfg(not(debug_assertions))]
    0
}

/// What a guard carries to be counted: nothing in release builds.
struct Held {
    #[cfg(debug_assertions)]
    thread: std::thread::ThreadId,
}

impl Held {
    #[inline]
    fn take() -> Held {
        #[cfg(debug_assertions)]
        {
            check::HELD.with(|c| c.set(c.get() + 1));
            Held {
                thread: std::thread::current().id(),
            }
        }
        #[cfg(not(debug_assertions))]
        Held {}
    }
}

#[cfg(debug_assertions)]
impl Drop for Held {
    fn drop(&mut self) {
        let here = std::thread::current().id();
        if here != self.thread {
            // The count we would decrement belongs to another thread; the
            // holder yielded with the guard and moved.
            if !std::thread::panicking() {
                panic!(
                    "a lock guard taken on {:?} was dropped on {here:?}: its coroutine \
                     yielded while holding it (ARCHITECTURE.md: no lock is held across \
                     a coroutine yield)",
                    self.thread
                );
            }
            return;
        }
        check::HELD.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

#[cfg(debug_assertions)]
mod check {
    use std::cell::Cell;

    thread_local! {
        pub static HELD: Cell<usize> = const { Cell::new(0) };
    }

    // Per coroutine, not per thread: a ping parks (its auction wait) and may
    // resume on another worker with the mark still on.
    may::coroutine_local!(static NO_STORE_WAIT: Cell<u32> = Cell::new(0));

    pub fn mark(delta: i32) {
        NO_STORE_WAIT.with(|c| c.set(c.get().saturating_add_signed(delta)));
    }

    pub fn will_park(what: &'static str) {
        let held = HELD.with(|c| c.get());
        if held > 0 && !std::thread::panicking() {
            panic!(
                "{what} would park while this thread holds {held} lock guard(s) \
                 (ARCHITECTURE.md: no lock is held across a coroutine yield)"
            );
        }
    }

    pub fn will_wait_for_store(what: &'static str) {
        if NO_STORE_WAIT.with(|c| c.get()) > 0 && !std::thread::panicking() {
            panic!("{what}: a ping must never wait for the store (ARCHITECTURE.md)");
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    fn panics(f: impl FnOnce()) -> String {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err("should have panicked");
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn parking_under_a_mutex_guard_panics_and_after_it_does_not() {
        let m = Mutex::new(1);
        let msg = panics(|| {
            let _g = m.lock();
            will_park("a test park");
        });
        assert!(
            msg.contains("a test park would park while this thread holds 1"),
            "{msg}"
        );
        assert_eq!(held_here(), 0, "the unwound guard was counted off");
        {
            let g = m.lock();
            assert_eq!((*g, held_here()), (1, 1));
        }
        will_park("after the guard");
    }

    #[test]
    fn read_write_and_mapped_guards_count_too() {
        let l = RwLock::new(Some(5));
        for f in [
            (|l: &RwLock<Option<i32>>| drop((l.read(), will_park("read")))) as fn(&_),
            |l| drop((l.write(), will_park("write"))),
            |l| {
                drop((
                    ReadGuard::try_map(l.read(), Option::as_ref),
                    will_park("mapped"),
                ))
            },
        ] {
            panics(|| f(&l));
        }
        assert_eq!(held_here(), 0);
    }

    #[test]
    fn a_guard_that_moves_to_another_thread_panics_there() {
        // What a coroutine that yields while holding a guard does, made
        // explicit: the guard is dropped on another OS thread.
        struct Smuggle(#[allow(dead_code)] MutexGuard<'static, i32>);
        // SAFETY (test only): moves a guard across threads on purpose to
        // show that the drop check fires; parking_lot's raw mutex tolerates
        // an unlock from another thread.
        #[allow(unsafe_code)]
        unsafe impl Send for Smuggle {}
        static M: Mutex<i32> = Mutex::new(0);
        let s = Smuggle(M.lock());
        let joined = std::thread::spawn(move || drop(s)).join();
        let msg = joined.expect_err("drop on another thread panics");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("was dropped on"), "{msg}");
        // This thread's count still holds the smuggled guard.
        assert_eq!(held_here(), 1);
        check::HELD.with(|c| c.set(0));
    }

    #[test]
    fn a_store_wait_under_the_ping_mark_panics() {
        let msg = panics(|| {
            let _mark = no_store_wait();
            will_wait_for_store("Store::sync");
        });
        assert!(
            msg.contains("a ping must never wait for the store"),
            "{msg}"
        );
        will_wait_for_store("outside the mark");
    }

    #[test]
    fn the_ping_mark_follows_the_coroutine_not_the_thread() {
        let h = crate::rt::spawn(|| {
            let _mark = no_store_wait();
            may::coroutine::yield_now();
            std::panic::catch_unwind(|| will_wait_for_store("after a yield")).is_err()
        });
        assert!(h.join().unwrap(), "the mark survived the yield");
        let h = crate::rt::spawn(|| std::panic::catch_unwind(|| will_wait_for_store("x")).is_ok());
        assert!(h.join().unwrap(), "another coroutine is not marked");
    }
}
