//! The circuit breaker of `[buyer.health]` (contract §10): after
//! `breaker_failures` failures in a row (time-out, error, non-2xx) the
//! buyer is skipped as `circuit_open`; while open, exactly one trial call
//! is let through per `breaker_cooldown_ms`, and any success closes it.
//!
//! Lock-free: the whole state is one `AtomicU64`, changed by
//! compare-and-swap, so the request path never waits on it. Time is
//! passed in (`now_ms` from the exchange's `Clock`): tests move it instead
//! of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Reason;

/// Set while open; the low 63 bits then hold the instant (ms) from which
/// the next trial may start. Clear: the low bits count failures in a row.
const OPEN: u64 = 1 << 63;

#[derive(Debug)]
pub struct Breaker {
    state: AtomicU64,
    failures_max: u32,
    cooldown_ms: u64,
}

/// What `admit` lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: an ordinary call.
    Call,
    /// Open: the one trial call of this cooldown.
    Trial,
}

/// What `/metrics` shows (`leadx_buyer_breaker_state`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    Open = 1,
    /// Open, and a trial may start now.
    TrialDue = 2,
}

impl Breaker {
    /// `failures_max` at least 1 (the config refuses 0).
    pub fn new(failures_max: u32, cooldown_ms: u64) -> Breaker {
        Breaker {
            state: AtomicU64::new(0),
            failures_max: failures_max.max(1),
            cooldown_ms: cooldown_ms.min(OPEN - 1),
        }
    }

    /// May the buyer be called at `now_ms`? While open, the first caller
    /// at or after the trial instant wins the trial (and moves the next
    /// one a cooldown later); every other caller gets `CircuitOpen`.
    pub fn admit(&self, now_ms: u64) -> Result<Admit, Reason> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & OPEN == 0 {
                return Ok(Admit::Call);
            }
            if now_ms < cur & !OPEN {
                return Err(Reason::CircuitOpen);
            }
            let next = OPEN | self.after_cooldown(now_ms);
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Admit::Trial),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A call succeeded (an answer, bid or not): closed, count reset.
    pub fn success(&self) {
        if self.state.load(Ordering::Acquire) != 0 {
            self.state.store(0, Ordering::Release);
        }
    }

    /// A call failed at `now_ms`. The `failures_max`-th in a row opens the
    /// breaker until `now_ms + cooldown`; a failure while open (a failed
    /// trial, or a call that started before it opened) changes nothing:
    /// the next trial is already a cooldown after the last one began.
    pub fn failure(&self, now_ms: u64) {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & OPEN != 0 {
                return;
            }
            let failures = cur + 1;
            let next = if failures >= u64::from(self.failures_max) {
                OPEN | self.after_cooldown(now_ms)
            } else {
                failures
            };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn state(&self, now_ms: u64) -> State {
        let cur = self.state.load(Ordering::Acquire);
        if cur & OPEN == 0 {
            State::Closed
        } else if now_ms < cur & !OPEN {
            State::Open
        } else {
            State::TrialDue
        }
    }

    fn after_cooldown(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.cooldown_ms).min(OPEN - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};

    #[test]
    fn failures_in_a_row_open_it_and_a_success_in_between_resets_the_count() {
        let b = Breaker::new(3, 1000);
        b.failure(10);
        b.failure(11);
        b.success();
        b.failure(12);
        b.failure(13);
        assert_eq!(b.admit(14), Ok(Admit::Call));
        b.failure(14);
        assert_eq!(b.state(15), State::Open);
        assert_eq!(b.admit(15), Err(Reason::CircuitOpen));
        assert_eq!(b.admit(1013), Err(Reason::CircuitOpen));
        assert_eq!(b.state(1014), State::TrialDue);
    }

    #[test]
    fn one_trial_per_cooldown_a_failed_trial_keeps_it_open_and_a_success_closes_it() {
        let b = Breaker::new(1, 100);
        b.failure(0);
        assert_eq!(b.admit(100), Ok(Admit::Trial));
        assert_eq!(b.admit(100), Err(Reason::CircuitOpen));
        assert_eq!(b.admit(199), Err(Reason::CircuitOpen));
        b.failure(150); // the trial failed: still open, next trial at 200
        assert_eq!(b.admit(199), Err(Reason::CircuitOpen));
        assert_eq!(b.admit(260), Ok(Admit::Trial));
        assert_eq!(b.admit(261), Err(Reason::CircuitOpen));
        b.success();
        assert_eq!(b.state(261), State::Closed);
        assert_eq!(b.admit(261), Ok(Admit::Call));
    }

    /// Many threads race for the trial at each cooldown's end: exactly one
    /// wins each time, the rest are refused.
    #[test]
    fn racing_threads_get_exactly_one_trial_per_cooldown() {
        const THREADS: usize = 8;
        const ROUNDS: u64 = 200;
        let b = Arc::new(Breaker::new(1, 50));
        b.failure(0);
        let trials = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (b, trials, barrier) = (b.clone(), trials.clone(), barrier.clone());
                std::thread::spawn(move || {
                    for round in 1..=ROUNDS {
                        barrier.wait();
                        // Every thread tries a few instants of the round.
                        for dt in 0..5 {
                            if b.admit(round * 50 + dt) == Ok(Admit::Trial) {
                                trials.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(trials.load(Ordering::Relaxed), ROUNDS as usize);
    }

    #[test]
    fn a_huge_cooldown_does_not_overflow_into_the_open_bit() {
        let b = Breaker::new(1, u64::MAX);
        b.failure(1000);
        assert_eq!(b.admit(1001), Err(Reason::CircuitOpen));
        assert_eq!(b.admit(u64::MAX / 4), Err(Reason::CircuitOpen));
        assert_eq!(b.state(0), State::Open);
    }
}
