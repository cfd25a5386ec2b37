//! In-flight claims: "this ping is being posted", "this idempotency key is
//! being served", "this phone is being sold". A claim is taken before the
//! work and dropped after its outcome is durable, so a second request for
//! the same thing sees either the claim (409 `post_in_progress` /
//! duplicate) or the stored outcome — never neither.
//!
//! **The lead's claim** (`Exchange::leads`, by lead id) guards the lead
//! record itself. Every read-modify-write of a `Tree::Leads` record — a
//! sale from its `posting` intent to its outcome (held by a kept sale until
//! it is durable), a return, settling an interrupted post, a retention or
//! re-seal sweep — holds it from the read to a write that is *applied*
//! (visible to the next reader: `write_durable`, or `Store::write_applied`
//! for a sweep), so no writer can put back a copy older than another's
//! write. Requests wait for it briefly (`claim_lead`, coroutine-aware,
//! at most `limits::LEAD_CLAIM_WAIT_MS`: a sweep holds it for one batch);
//! sweeps never wait (`sweep_claim`): a claimed lead stops their batch and
//! is taken up by the next one, and they read the record again under the
//! claim. `it::claims` proves it; `layering::lead_records_are_written_under_their_claim`
//! keeps `encode_lead(` in the files that do this.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use crate::store::{Store, StoreError, Tree};
use crate::sync::Mutex;

use super::Exchange;

const SHARDS: usize = 16;

/// A set of keys being worked on. The lock is held only to insert or remove
/// one key, never across I/O or a coroutine yield.
pub struct Claims<K: Hash + Eq + Clone> {
    shards: Arc<[Mutex<HashSet<K>>; SHARDS]>,
}

impl<K: Hash + Eq + Clone> Default for Claims<K> {
    fn default() -> Self {
        Claims {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(HashSet::new()))),
        }
    }
}

/// Holds a claim until dropped.
pub struct Claim<K: Hash + Eq + Clone> {
    shards: Arc<[Mutex<HashSet<K>>; SHARDS]>,
    keys: Vec<K>,
}

fn shard_of<K: Hash>(k: &K) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(k);
    (h as usize) % SHARDS
}

impl<K: Hash + Eq + Clone> Claims<K> {
    /// Claims every key or none: `None` when any is already claimed.
    pub fn claim_all(&self, keys: Vec<K>) -> Option<Claim<K>> {
        let mut taken = Vec::with_capacity(keys.len());
        for k in keys {
            let won = self.shards[shard_of(&k)].lock().insert(k.clone());
            if !won {
                drop(Claim {
                    shards: self.shards.clone(),
                    keys: taken,
                });
                return None;
            }
            taken.push(k);
        }
        Some(Claim {
            shards: self.shards.clone(),
            keys: taken,
        })
    }

    pub fn claim(&self, key: K) -> Option<Claim<K>> {
        self.claim_all(vec![key])
    }
}

impl<K: Hash + Eq + Clone> Drop for Claim<K> {
    fn drop(&mut self) {
        for k in &self.keys {
            self.shards[shard_of(k)].lock().remove(k);
        }
    }
}

impl Exchange {
    /// The lead's claim for a request (a return, settling an interrupted
    /// post): waits, coroutine-aware, while a sweep or another writer holds
    /// it, at most `limits::LEAD_CLAIM_WAIT_MS`; `None` after that.
    pub(crate) fn claim_lead(&self, lead_id: &str) -> Option<Claim<String>> {
        let step = std::time::Duration::from_millis(1);
        for _ in 0..crate::limits::LEAD_CLAIM_WAIT_MS {
            if let Some(c) = self.leads.claim(lead_id.to_string()) {
                return Some(c);
            }
            crate::sync::sleep(step);
        }
        self.leads.claim(lead_id.to_string())
    }

    /// Test seam: takes the lead's claim as a request would (without
    /// waiting), so a test can hold it across a sweep.
    #[doc(hidden)]
    pub fn hold_lead_claim(&self, lead_id: &str) -> Option<Claim<String>> {
        self.leads.claim(lead_id.to_string())
    }

    /// The lead claims, for the sweeps (`sweep_claim`).
    pub(crate) fn lead_claims(&self) -> &Claims<String> {
        &self.leads
    }
}

/// A sweep's claim on the lead stored under `key`, never waited for:
/// `Ok(None)` when another writer holds it (the sweep stops its batch
/// there and goes on from it next time). With the claim, the lead's
/// *applied* value, read again: a write that landed between the sweep's
/// scan and its claim is what it must build on (`None`: no such lead).
#[allow(clippy::type_complexity)]
pub(crate) fn sweep_claim(
    claims: &Claims<String>,
    store: &Store,
    key: &[u8],
) -> Result<Option<(Claim<String>, Option<Vec<u8>>)>, StoreError> {
    let Some(claim) = claims.claim(String::from_utf8_lossy(key).into_owned()) else {
        return Ok(None);
    };
    let now = store.get(Tree::Leads, key)?;
    Ok(Some((claim, now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_claimed_once_until_released() {
        let c: Claims<String> = Claims::default();
        let first = c.claim("p1".to_string()).expect("first claim");
        assert!(c.claim("p1".to_string()).is_none());
        assert!(c.claim("p2".to_string()).is_some());
        drop(first);
        assert!(c.claim("p1".to_string()).is_some());
    }

    #[test]
    fn claim_all_is_all_or_nothing() {
        let c: Claims<u32> = Claims::default();
        let _held = c.claim(2).unwrap();
        assert!(c.claim_all(vec![1, 2, 3]).is_none());
        // 1 was taken and given back when 2 failed.
        assert!(c.claim_all(vec![1, 3]).is_some());
    }
}
