//! The per-buyer concurrency gate of `[buyer.health]` (`concurrency_max`,
//! contract §10): at most that many calls in flight to one buyer; a call
//! beyond it is not made and the buyer is skipped as `concurrency`.
//!
//! A permit is an RAII guard: dropping it (answer, error, time-out, a
//! panicking coroutine) gives the slot back. Lock-free: one counter,
//! changed by compare-and-swap, never above the limit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::Reason;

#[derive(Debug)]
pub struct Gate {
    in_flight: AtomicU32,
    max: u32,
}

/// One call's slot; given back on drop.
#[derive(Debug)]
pub struct GatePermit {
    gate: Arc<Gate>,
}

impl Gate {
    pub fn new(max: u32) -> Arc<Gate> {
        Arc::new(Gate {
            in_flight: AtomicU32::new(0),
            max,
        })
    }

    /// A slot, or `Concurrency` when `max` calls are in flight.
    pub fn try_enter(self: &Arc<Self>) -> Result<GatePermit, Reason> {
        let mut cur = self.in_flight.load(Ordering::Acquire);
        loop {
            if cur >= self.max {
                return Err(Reason::Concurrency);
            }
            match self.in_flight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(GatePermit { gate: self.clone() }),
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        let before = self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
        // More slots given back than taken would let the gate overfill.
        assert!(before > 0, "concurrency gate: a slot given back twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_and_a_dropped_permit_frees_its_slot() {
        let g = Gate::new(2);
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert_eq!(g.try_enter().err(), Some(Reason::Concurrency));
        drop(a);
        assert!(g.try_enter().is_ok());
        assert_eq!(g.in_flight(), 1);
    }

    /// Threads take and hold permits at random; the count seen while
    /// holding one never passes the limit, and all come back at the end,
    /// including one held by a thread that panicked.
    #[test]
    fn concurrent_callers_never_exceed_the_limit_and_every_slot_comes_back() {
        let g = Gate::new(3);
        let peak = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (g, peak) = (g.clone(), peak.clone());
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        if let Ok(p) = g.try_enter() {
                            peak.fetch_max(g.in_flight(), Ordering::Relaxed);
                            if (t + i) % 7 == 0 {
                                std::thread::yield_now();
                            }
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let g2 = g.clone();
        let panicked = std::thread::spawn(move || {
            let _p = g2.try_enter().unwrap();
            panic!("a buyer call that panics");
        })
        .join();
        assert!(panicked.is_err());
        assert!(peak.load(Ordering::Relaxed) <= 3);
        assert_eq!(g.in_flight(), 0);
    }
}
