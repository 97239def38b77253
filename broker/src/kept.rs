//! A map of things that are costly to build and cheap to build again (compiled policy modules,
//! read duty lists), with a bound on how many are kept: a broker runs for months while policy
//! versions come and go, and nothing it remembers for speed may grow with them. When full, the
//! map starts afresh; what is needed again is rebuilt on the next request. Correctness never
//! depends on an entry being here.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How often a cache was asked and had the answer (the metrics' `kdr_cache_lookups_total`).
#[derive(Debug, Default)]
pub struct Lookups {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Lookups {
    pub fn note(&self, hit: bool) {
        let n = if hit { &self.hits } else { &self.misses };
        n.fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
pub struct Kept<K, V> {
    cap: usize,
    entries: Mutex<HashMap<K, V>>,
    pub lookups: Lookups,
}

impl<K: Eq + Hash, V: Clone> Kept<K, V> {
    /// Keeps at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            entries: Mutex::new(HashMap::new()),
            lookups: Lookups::default(),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let found = self.lock().get(key).cloned();
        self.lookups.note(found.is_some());
        found
    }

    /// Keeps `value`, first dropping the entries `drop` names (e.g. what `value` replaces), and
    /// every entry if the map is still full.
    pub fn insert(&self, key: K, value: V, drop: impl Fn(&K) -> bool) {
        let mut entries = self.lock();
        entries.retain(|k, _| !drop(k));
        if entries.len() >= self.cap {
            entries.clear();
        }
        entries.insert(key, value);
    }

    /// Drops the entries `drop` names (e.g. everything of a withdrawn dataset).
    pub fn remove_where(&self, drop: impl Fn(&K) -> bool) {
        self.lock().retain(|k, _| !drop(k));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Kept;

    #[test]
    fn never_more_than_the_cap_and_what_an_entry_replaces_goes() {
        let kept: Kept<(&str, u32), u32> = Kept::new(3);
        for v in 1..=10 {
            // A new version of "a" replaces the older ones.
            kept.insert(("a", v), v, |(d, _)| *d == "a");
        }
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.get(&("a", 10)), Some(10));
        assert_eq!(kept.get(&("a", 9)), None);
        for (i, d) in ["b", "c", "d", "e"].into_iter().enumerate() {
            kept.insert((d, 1), 1, |_| false);
            assert!(kept.len() <= 3, "after {i}: {}", kept.len());
        }
        assert_eq!(kept.get(&("e", 1)), Some(1), "the newest entry is always kept");
    }
}
