//! Recent pings in memory. The store has every ping, but its writer applies
//! writes a moment later; a publisher may post the instant it has a bid, so
//! the ping is served from here until it expires.
//!
//! Bounded by bytes (`server.ping_cache_bytes`), not by count: a ping's size
//! depends on its lead and on how many buyers took part, so a count bound
//! says nothing about memory (200,000 entries of up to 64 KiB was ~12 GB).
//! Each entry is charged what it really holds — the record, every string's
//! and vector's capacity, the key and the slots in the map and the queue —
//! and the oldest are evicted first; an evicted ping falls back to the store.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::sync::Mutex;

use crate::limits;
use crate::records::{CallRecord, PingRecord, StoredBid};

const SHARDS: usize = 16;

struct Entry {
    ping: Arc<PingRecord>,
    /// What this entry was charged (its map slot included).
    bytes: usize,
}

pub struct PingCache {
    shards: [Mutex<HashMap<String, Entry>>; SHARDS],
    /// Insertion order with expiry, to evict without scanning. Entries stay
    /// here after `remove` until they reach the front; they are charged too.
    order: Mutex<VecDeque<(u64, String)>>,
    /// Bytes charged for map entries and queue entries together.
    bytes: AtomicUsize,
    bytes_max: AtomicUsize,
}

impl Default for PingCache {
    fn default() -> Self {
        PingCache::new(limits::PING_CACHE_BYTES_DEFAULT)
    }
}

fn shard(id: &str) -> usize {
    // Ids are random hex after the 12-digit time prefix.
    id.as_bytes()
        .get(13)
        .map(|b| *b as usize % SHARDS)
        .unwrap_or(0)
}

/// Bytes `ping` holds: the `Arc` allocation (two counters and the record)
/// plus every owned buffer at its capacity.
pub fn record_bytes(ping: &PingRecord) -> usize {
    let s = |v: &String| v.capacity();
    let bids: usize = ping
        .bids
        .iter()
        .map(|b| s(&b.buyer) + b.buyer_ref.as_ref().map_or(0, s))
        .sum();
    let calls: usize = ping
        .calls
        .iter()
        .map(|c| s(&c.buyer) + c.reason.as_ref().map_or(0, s))
        .sum();
    2 * size_of::<usize>()
        + size_of::<PingRecord>()
        + s(&ping.ping_id)
        + s(&ping.publisher)
        + s(&ping.vertical)
        + s(&ping.lead_json)
        + ping.lead_id.as_ref().map_or(0, s)
        + ping.bids.capacity() * size_of::<StoredBid>()
        + bids
        + ping.calls.capacity() * size_of::<CallRecord>()
        + calls
}

/// One map slot (key, entry and hashbrown's control byte) with the key's
/// bytes. Maps are kept at most 7/8 full, so a slot costs 8/7 of its size.
fn map_entry_bytes(key: &String) -> usize {
    (size_of::<(String, Entry)>() + 1) * 8 / 7 + key.capacity()
}

/// One queue slot with its key. A `VecDeque` grows by doubling, so up to
/// twice the slots are allocated; charged in full.
fn order_entry_bytes(key: &String) -> usize {
    2 * size_of::<(u64, String)>() + key.capacity()
}

impl PingCache {
    pub fn new(bytes_max: usize) -> PingCache {
        PingCache {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            order: Mutex::new(VecDeque::new()),
            bytes: AtomicUsize::new(0),
            bytes_max: AtomicUsize::new(bytes_max),
        }
    }

    /// A reload may change the bound; the next insert evicts down to it.
    pub fn set_bytes_max(&self, bytes_max: usize) {
        self.bytes_max.store(bytes_max, Ordering::Relaxed);
    }

    pub fn insert(&self, ping: Arc<PingRecord>, now_ms: u64) {
        let id = ping.ping_id.clone();
        let expires = ping.expires_ms;
        let entry_bytes = record_bytes(&ping) + map_entry_bytes(&id);
        let order_bytes = order_entry_bytes(&id);
        self.bytes
            .fetch_add(entry_bytes + order_bytes, Ordering::Relaxed);
        let old = self.shards[shard(&id)].lock().insert(
            id.clone(),
            Entry {
                ping,
                bytes: entry_bytes,
            },
        );
        if let Some(old) = old {
            // The same id twice (a test re-inserting): the first copy's queue
            // entry stays charged until it leaves the queue.
            self.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
        }
        self.order.lock().push_back((expires, id));
        self.evict(now_ms);
    }

    /// Pops the queue's front while it is expired or the cache is over its
    /// bound. The locks are taken one at a time, per popped entry.
    fn evict(&self, now_ms: u64) {
        let bytes_max = self.bytes_max.load(Ordering::Relaxed);
        loop {
            let front = {
                let mut order = self.order.lock();
                let over = self.bytes.load(Ordering::Relaxed) > bytes_max;
                match order.front() {
                    Some((exp, _)) if *exp <= now_ms || over => order.pop_front(),
                    _ => None,
                }
            };
            let Some((_, id)) = front else { return };
            let mut freed = order_entry_bytes(&id);
            if let Some(old) = self.shards[shard(&id)].lock().remove(&id) {
                freed += old.bytes;
            }
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<PingRecord>> {
        self.shards[shard(id)]
            .lock()
            .get(id)
            .map(|e| e.ping.clone())
    }

    /// Forgets a ping once its post is settled in the store.
    pub fn remove(&self, id: &str) {
        let removed = self.shards[shard(id)].lock().remove(id);
        if let Some(old) = removed {
            self.bytes.fetch_sub(old.bytes, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged now. At most the bound once an insert has returned
    /// (inserts running at the same moment aside): a ping larger than the
    /// whole bound is evicted at once and served from the store.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "pings_tests.rs"]
mod tests;
