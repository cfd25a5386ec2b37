//! In-flight claims: "this ping is being posted", "this idempotency key is
//! being served", "this phone is being sold". A claim is taken before the
//! work and dropped after its outcome is durable, so a second request for
//! the same thing sees either the claim (409 `post_in_progress` /
//! duplicate) or the stored outcome — never neither.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use crate::sync::Mutex;

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
