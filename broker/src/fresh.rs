//! A map whose entries are trusted for a short time: what a request reads from the catalog on
//! every call (its dataset and active policy, the caller's member record) is kept for at most
//! `ttl` and dropped at once when this broker changes it. The TTL bounds how long a change made
//! by another replica (or another process on the same store) takes to arrive; nothing here
//! outlives it, so no invalidation protocol between replicas is needed.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Fresh<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Arc<V>, Instant)>>,
    pub lookups: crate::kept::Lookups,
}

impl<K: Eq + Hash, V> Fresh<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            lookups: crate::kept::Lookups::default(),
        }
    }

    /// The value, if it was put less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(v, _)| v.clone());
        drop(entries);
        self.lookups.note(found.is_some());
        found
    }

    pub fn put(&self, key: K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Stale entries go when the map has grown (keys are datasets and members: few).
        if entries.len() >= 1024 {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        entries.insert(key, (value.clone(), Instant::now()));
        value
    }

    /// Drops an entry this broker just changed.
    pub fn forget(&self, key: &K) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::Fresh;
    use std::time::Duration;

    #[test]
    fn an_entry_expires_after_its_ttl_and_can_be_forgotten_before() {
        let cache = Fresh::new(Duration::from_millis(50));
        cache.put("a", 1);
        cache.put("b", 2);
        assert_eq!(cache.get(&"a").as_deref(), Some(&1));
        cache.forget(&"a");
        assert_eq!(cache.get(&"a"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"b"), None, "expired");
    }
}
