//! The live `[buyer.health]` controls of every buyer (contract §10): its
//! circuit breaker and its concurrency gate (`routing::breaker`,
//! `routing::gate`), kept by buyer id for the life of the process like
//! the caps ledgers. A reload that keeps a buyer's `[buyer.health]` keeps
//! its breaker (open stays open) and its gate (calls still in flight on the
//! old runtime still count); a changed section starts them afresh.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Health;
use crate::routing::breaker::Breaker;
use crate::routing::gate::Gate;
use crate::sync::Mutex;

/// One buyer's breaker (when `breaker_failures` is set) and gate (when
/// `concurrency_max` is set).
#[derive(Debug, Clone, Default)]
pub struct BuyerHealth {
    pub breaker: Option<Arc<Breaker>>,
    pub gate: Option<Arc<Gate>>,
}

impl BuyerHealth {
    fn new(h: &Health) -> BuyerHealth {
        BuyerHealth {
            breaker: h
                .breaker_failures
                .map(|n| Arc::new(Breaker::new(n, h.breaker_cooldown_ms))),
            gate: h.concurrency_max.map(Gate::new),
        }
    }
}

/// Health controls by buyer id, with the section they were built from.
#[derive(Default)]
pub struct HealthBook {
    by_id: Mutex<HashMap<String, (Health, BuyerHealth)>>,
}

impl HealthBook {
    /// The controls of `buyers` (id, section), in order: the live ones of a
    /// buyer whose section is unchanged, else new ones.
    pub fn attach(&self, buyers: &[(&str, &Health)]) -> Vec<BuyerHealth> {
        let mut map = self.by_id.lock();
        buyers
            .iter()
            .map(|&(id, h)| match map.get(id) {
                Some((old, live)) if old == h => live.clone(),
                _ => {
                    let fresh = BuyerHealth::new(h);
                    map.insert(id.to_string(), (h.clone(), fresh.clone()));
                    fresh
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_section_keeps_its_state_and_a_changed_one_starts_afresh() {
        let book = HealthBook::default();
        let h = Health {
            concurrency_max: Some(2),
            breaker_failures: Some(1),
            breaker_cooldown_ms: 1000,
        };
        let first = book.attach(&[("a", &h), ("b", &Health::default())]);
        assert!(first[1].breaker.is_none() && first[1].gate.is_none());
        first[0].breaker.as_ref().unwrap().failure(5);
        let _permit = first[0].gate.as_ref().unwrap().try_enter().unwrap();
        let again = book.attach(&[("a", &h)]);
        let breaker = again[0].breaker.as_ref().unwrap();
        assert!(breaker.admit(6).is_err(), "still open after the reload");
        assert_eq!(again[0].gate.as_ref().unwrap().in_flight(), 1);
        let changed = Health {
            concurrency_max: Some(3),
            ..h
        };
        let fresh = book.attach(&[("a", &changed)]);
        assert!(fresh[0].breaker.as_ref().unwrap().admit(6).is_ok());
        assert_eq!(fresh[0].gate.as_ref().unwrap().in_flight(), 0);
    }
}
