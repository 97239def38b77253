//! Usage counting for `odrl:count`: how often a consumer has used a dataset in the current
//! counting period (the calendar month, UTC). Durable, and exact under concurrency: a request
//! holds its (consumer, dataset) key from reading the count until the use is recorded, so two
//! concurrent requests never both see the last permitted count.
//!
//! A use is recorded when a request is permitted: counted in memory while the key is held
//! ([`UsageCounter::count_use`], on the request's own thread: no thread hop while the key is
//! held), then made durable (one JSON line, group commit, [`UsageCounter::persist`]) after the
//! key is released and before any data is fetched, so the next request for the key does not
//! wait for the disk. A crash between the two loses a use that delivered nothing. If the line
//! cannot be written the request fails without data; the use stays counted (over-counting is
//! the safe direction). Counts are rebuilt
//! from the file on start; several replicas will need a shared store behind [`UsageCounter`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::durable::AppendFile;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    pub consumer: String,
    pub dataset: String,
    /// `YYYY-MM`.
    pub period: String,
}

#[derive(Debug, thiserror::Error)]
#[error("usage counts cannot be {action} ({path}): {reason}")]
pub struct UsageError {
    action: &'static str,
    path: String,
    reason: String,
}

/// Holds a key: the count it read stays true until the guard records a use or is dropped.
pub struct UsageGuard {
    key: UsageKey,
    count: u64,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

impl std::fmt::Debug for UsageGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageGuard")
            .field("key", &self.key)
            .field("count", &self.count)
            .finish()
    }
}

impl UsageGuard {
    /// Earlier uses in the period.
    pub fn count(&self) -> u64 {
        self.count
    }
}

pub trait UsageCounter: Send + Sync {
    /// Waits for the key, then reads its count.
    fn acquire(&self, key: UsageKey) -> impl Future<Output = Result<UsageGuard, UsageError>> + Send;
    /// Counts one use in memory and releases the key. Cheap: call it on the request's thread.
    fn count_use(&self, guard: UsageGuard) -> CountedUse;
    /// Makes a counted use durable (blocking); returns the count after it.
    fn persist(&self, used: CountedUse) -> Result<u64, UsageError>;
    /// [`Self::count_use`] and [`Self::persist`] in one.
    fn record_use(&self, guard: UsageGuard) -> Result<u64, UsageError> {
        self.persist(self.count_use(guard))
    }
}

/// A use counted in memory, not yet durable.
#[derive(Debug)]
pub struct CountedUse {
    pub count: u64,
    key: UsageKey,
}

pub struct FileUsageCounter {
    path: PathBuf,
    counts: Mutex<HashMap<UsageKey, u64>>,
    file: AppendFile,
    locks: Mutex<HashMap<UsageKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for FileUsageCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUsageCounter").field("path", &self.path).finish()
    }
}

impl FileUsageCounter {
    /// Opens the counter file (it need not exist yet) and rebuilds the counts.
    pub fn open(path: &Path) -> Result<Self, UsageError> {
        let err = |action, reason: String| UsageError {
            action,
            path: path.display().to_string(),
            reason,
        };
        let mut counts = HashMap::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let key: UsageKey = serde_json::from_str(line).map_err(|e| err("read", format!("line {}: {e}", i + 1)))?;
                    *counts.entry(key).or_insert(0) += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("read", e.to_string())),
        }
        Ok(Self {
            path: path.to_owned(),
            counts: Mutex::new(counts),
            file: AppendFile::new(path),
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<UsageKey, u64>> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl UsageCounter for FileUsageCounter {
    async fn acquire(&self, key: UsageKey) -> Result<UsageGuard, UsageError> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(key.clone()).or_default().clone()
        };
        let held = lock.lock_owned().await;
        let count = self.counts().get(&key).copied().unwrap_or(0);
        Ok(UsageGuard { key, count, _lock: held })
    }

    fn count_use(&self, guard: UsageGuard) -> CountedUse {
        let key = guard.key.clone();
        let count = {
            let mut counts = self.counts();
            let n = counts.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        // Release the key before any thread hop or disk wait.
        drop(guard);
        CountedUse { count, key }
    }

    fn persist(&self, used: CountedUse) -> Result<u64, UsageError> {
        let err = |reason: String| UsageError {
            action: "written",
            path: self.path.display().to_string(),
            reason,
        };
        let mut line = serde_json::to_vec(&used.key).map_err(|e| err(e.to_string()))?;
        line.push(b'\n');
        self.file.append(&line).map_err(|e| err(e.to_string()))?;
        Ok(used.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UsageKey {
        UsageKey {
            consumer: "08135019".into(),
            dataset: "aalen-buergerbuero-termine".into(),
            period: "2026-11".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_are_exact_under_concurrency_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("usage.jsonl");
        let counter = Arc::new(FileUsageCounter::open(&path).expect("open"));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let c = counter.clone();
            tasks.push(tokio::spawn(async move {
                let g = c.acquire(key()).await.expect("acquire");
                let seen = g.count();
                tokio::task::yield_now().await;
                let after = c.record_use(g).expect("record");
                (seen, after)
            }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            let (s, a) = t.await.expect("task");
            assert_eq!(a, s + 1, "nobody recorded between read and write");
            seen.push(s);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<u64>>(), "every request saw a distinct count");
        let reopened = FileUsageCounter::open(&path).expect("reopen");
        assert_eq!(reopened.acquire(key()).await.expect("acquire").count(), 200);
    }
}
