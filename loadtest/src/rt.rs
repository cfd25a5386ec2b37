//! The coroutine runtime: one place that configures `may` and spawns
//! coroutines, so the crate's only `unsafe` call lives here.
//!
//! `may::coroutine::spawn` is unsafe because a coroutine may migrate between
//! worker threads (cached thread-local references could change under it) and
//! its stack is fixed-size. Load-tester coroutines keep no thread-local
//! references across a yield, and they parse only bounded, flat JSON, so
//! `limits::COROUTINE_STACK_BYTES` is ample.

use std::sync::Once;

use crate::limits;

static CONFIGURE: Once = Once::new();

/// Sets the worker count. Must run before the first spawn; later calls are
/// ignored because may reads its config once.
///
/// Worker pinning is turned off: the tester shares the machine with leadx,
/// and pinning our workers to cores 0.. would fight leadx's own workers.
pub fn configure(workers: usize) {
    CONFIGURE.call_once(|| {
        may::config()
            .set_workers(workers.max(1))
            .set_stack_size(limits::COROUTINE_STACK_BYTES)
            .set_pool_capacity(1000);
        may::config().set_worker_pin(false);
    });
}

/// Spawns a coroutine with the tester's stack size.
pub fn spawn<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    configure(1);
    let builder = may::coroutine::Builder::new().stack_size(limits::COROUTINE_STACK_BYTES);
    // SAFETY: see the module doc — our coroutines hold no thread-local
    // references across yields and their stack use is bounded. The builder
    // fails only when the stack cannot be allocated, which is fatal anyway.
    #[allow(unsafe_code)]
    let handle = unsafe { builder.spawn(f) };
    handle.expect("spawning a coroutine (stack allocation) failed")
}

#[cfg(test)]
mod tests {
    #[test]
    fn spawned_coroutine_runs_and_joins() {
        let h = super::spawn(|| 40 + 2);
        assert_eq!(h.join().unwrap(), 42);
    }
}
