//! The coroutine runtime: one place that configures `may` and spawns
//! coroutines.
//!
//! may's `spawn` is `unsafe` because a coroutine can migrate between worker
//! threads (so thread-locals it caches may change under it) and because its
//! stack is fixed-size. Both are handled here once: leadx code in coroutines
//! never caches thread-local references across a yield, and the stack is
//! sized in `limits::COROUTINE_STACK_BYTES` with inputs bounded (JSON depth)
//! before anything can recurse.

use std::sync::Once;

use crate::limits;

static CONFIGURE: Once = Once::new();

/// may (through `generator`) sizes stacks in machine words, not bytes.
const STACK_WORDS: usize = limits::COROUTINE_STACK_BYTES / std::mem::size_of::<usize>();

/// Sets the worker count and coroutine stack size. Must run before the first
/// coroutine is spawned; later calls are ignored (may reads its config once).
pub fn configure(workers: usize) {
    CONFIGURE.call_once(|| {
        may::config()
            .set_workers(workers.max(1))
            .set_stack_size(STACK_WORDS)
            .set_pool_capacity(1000);
        // may pins worker i to core i by default. On a box shared with
        // other processes (the buyer simulator, the load driver, other
        // services) a pinned worker waits for its core while another idles:
        // unpinned, /healthz served 25 % more requests at the same CPU per
        // request, and pings the same (docs/performance.md).
        may::config().set_worker_pin(false);
    });
}

/// Worker count to use when the config does not say: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Spawns a coroutine with leadx's stack size.
pub fn spawn<F, T>(f: F) -> may::coroutine::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // `default_workers` reads cgroup files on every call (std does not
    // cache it): evaluating it per spawn was ~12 % of a ping's CPU. Only the
    // first spawn of a process that never called `configure` needs it.
    if !CONFIGURE.is_completed() {
        configure(default_workers());
    }
    let builder = may::coroutine::Builder::new().stack_size(STACK_WORDS);
    // SAFETY: see the module doc — leadx coroutines do not hold thread-local
    // references across yields, and their stack use is bounded by the input
    // limits in `limits`. The builder only fails on stack allocation failure,
    // which is as fatal as an allocation failure anywhere else.
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
