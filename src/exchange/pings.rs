//! Recent pings in memory. The store has every ping, but its writer applies
//! writes a moment later; a publisher may post the instant it has a bid, so
//! the ping is served from here until it expires. Bounded by
//! `limits::PINGS_CACHED_MAX`: past that, the oldest fall back to the store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::sync::Mutex;

use crate::limits;
use crate::records::PingRecord;

const SHARDS: usize = 16;

pub struct PingCache {
    shards: [Mutex<HashMap<String, Arc<PingRecord>>>; SHARDS],
    /// Insertion order with expiry, to evict without scanning.
    order: Mutex<VecDeque<(u64, String)>>,
}

impl Default for PingCache {
    fn default() -> Self {
        PingCache { shards: std::array::from_fn(|_| Mutex::new(HashMap::new())), order: Mutex::new(VecDeque::new()) }
    }
}

fn shard(id: &str) -> usize {
    // Ids are random hex after the 12-digit time prefix.
    id.as_bytes().get(13).map(|b| *b as usize % SHARDS).unwrap_or(0)
}

impl PingCache {
    pub fn insert(&self, ping: Arc<PingRecord>, now_ms: u64) {
        let id = ping.ping_id.clone();
        let expires = ping.expires_ms;
        self.shards[shard(&id)].lock().insert(id.clone(), ping);
        let evict = {
            let mut order = self.order.lock();
            order.push_back((expires, id));
            let mut evict = Vec::new();
            while let Some((exp, _)) = order.front() {
                if *exp > now_ms && order.len() <= limits::PINGS_CACHED_MAX {
                    break;
                }
                evict.extend(order.pop_front().map(|(_, id)| id));
            }
            evict
        };
        for id in evict {
            self.shards[shard(&id)].lock().remove(&id);
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<PingRecord>> {
        self.shards[shard(id)].lock().get(id).cloned()
    }

    /// Forgets a ping once its post is settled in the store.
    pub fn remove(&self, id: &str) {
        self.shards[shard(id)].lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RECORD_VERSION;

    fn ping(id: &str, expires_ms: u64) -> Arc<PingRecord> {
        Arc::new(PingRecord {
            v: RECORD_VERSION,
            ping_id: id.into(),
            publisher: "p".into(),
            vertical: "v".into(),
            test: false,
            created_ms: 0,
            expires_ms,
            lead_json: "{}".into(),
            bids: vec![],
            calls: vec![],
            lead_id: None,
            direct: false,
            auction_us: 0,
        })
    }

    #[test]
    fn expired_pings_are_evicted_on_later_inserts() {
        let c = PingCache::default();
        c.insert(ping("0000000000000a", 100), 0);
        c.insert(ping("0000000000000b", 500), 50);
        assert!(c.get("0000000000000a").is_some());
        c.insert(ping("0000000000000c", 900), 200);
        assert!(c.get("0000000000000a").is_none());
        assert!(c.get("0000000000000b").is_some() && c.get("0000000000000c").is_some());
        assert_eq!(c.len(), 2);
    }
}
