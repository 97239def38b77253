//! Usage counting for `odrl:count`: how often a consumer has used a dataset in the current
//! counting period (the calendar month, UTC). Exact under concurrency: a request holds its
//! (consumer, dataset, period) key from reading the count until the use is counted, so two
//! concurrent requests never both see the last permitted count.
//!
//! Why there is no usage file: the durable record of a use is the request's `permit` decision
//! record in the audit trail, which is written (and `fsync`ed) before any data leaves. Counting
//! happens in memory while the key is held ([`UsageCounter::count_use`], on the request's own
//! thread), and the counts are rebuilt from the trail at start (`exchange::Ledgers::from_trail`,
//! one pass for every count kept from the trail).
//! One durable stream instead of two halves the `fsync`s of a request; a second file could also
//! disagree with the trail, this cannot. A crash before the record is written loses a use that
//! delivered nothing; a record that cannot be written fails the request and the use stays
//! counted until the next start (over-counting is the safe direction). Pruning keeps the current
//! period's records ([`period_start`]). Several replicas will need a shared store behind
//! [`UsageCounter`] (PostgreSQL: the count is a query over the same decision rows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::audit::DecisionRecord;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    pub consumer: String,
    pub dataset: String,
    /// `YYYY-MM`.
    pub period: String,
}

#[derive(Debug, thiserror::Error)]
#[error("usage counts are unavailable: {0}")]
pub struct UsageError(pub String);

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
    /// Counts one use and releases the key; returns the count after it. Cheap: call it on the
    /// request's thread. The use's durable record is the request's permit decision record.
    fn count_use(&self, guard: UsageGuard) -> u64;
}

/// `YYYY-MM` of an RFC 3339 time (the counting period it falls in).
pub fn period_of(time: &str) -> Option<&str> {
    let p = time.get(..7)?;
    let b = p.as_bytes();
    (b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5..].iter().all(u8::is_ascii_digit)).then_some(p)
}

/// The first instant of the period `now` falls in: the audit keeper never prunes past it, so
/// the counts can always be rebuilt from the trail.
pub fn period_start(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(time::UtcOffset::UTC);
    now.replace_day(1).map_or(now, |d| d.replace_time(time::Time::MIDNIGHT))
}

/// Counts in memory, rebuilt from the audit trail's decision records.
#[derive(Default)]
pub struct TrailUsageCounter {
    counts: Mutex<HashMap<UsageKey, u64>>,
    locks: Mutex<HashMap<UsageKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for TrailUsageCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailUsageCounter").finish_non_exhaustive()
    }
}

impl TrailUsageCounter {
    /// The counts the `permit` decisions among `records` add up to.
    pub fn from_decisions<'a>(records: impl IntoIterator<Item = &'a DecisionRecord>) -> Self {
        let mut counts = HashMap::new();
        for r in records {
            count_permit(&mut counts, r);
        }
        Self::with_counts(counts)
    }

    /// Adds a recorded decision: a permit is a use.
    pub fn add_recorded(&self, r: &DecisionRecord) {
        count_permit(&mut self.counts(), r);
    }

    fn with_counts(counts: HashMap<UsageKey, u64>) -> Self {
        Self {
            counts: Mutex::new(counts),
            locks: Mutex::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<UsageKey, u64>> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Adds `r` to `counts` if it is a permit (a use).
fn count_permit(counts: &mut HashMap<UsageKey, u64>, r: &DecisionRecord) {
    if r.decision != "permit" {
        return;
    }
    let Some(period) = period_of(&r.time) else {
        return;
    };
    let key = UsageKey {
        consumer: r.consumer.clone(),
        dataset: r.dataset.clone(),
        period: period.to_owned(),
    };
    *counts.entry(key).or_insert(0) += 1;
}

impl UsageCounter for TrailUsageCounter {
    async fn acquire(&self, key: UsageKey) -> Result<UsageGuard, UsageError> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(key.clone()).or_default().clone()
        };
        let held = lock.lock_owned().await;
        let count = self.counts().get(&key).copied().unwrap_or(0);
        Ok(UsageGuard { key, count, _lock: held })
    }

    fn count_use(&self, guard: UsageGuard) -> u64 {
        let mut counts = self.counts();
        let n = counts.entry(guard.key.clone()).or_insert(0);
        *n += 1;
        *n
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
    async fn counts_are_exact_under_concurrency_and_are_rebuilt_from_the_decisions() {
        let counter = Arc::new(TrailUsageCounter::default());
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let c = counter.clone();
            tasks.push(tokio::spawn(async move {
                let g = c.acquire(key()).await.expect("acquire");
                let seen = g.count();
                tokio::task::yield_now().await;
                (seen, c.count_use(g))
            }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            let (s, a) = t.await.expect("task");
            assert_eq!(a, s + 1, "nobody counted between read and count");
            seen.push(s);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<u64>>(), "every request saw a distinct count");

        let record = |decision: &str, time: &str, dataset: &str| DecisionRecord {
            time: time.into(),
            decision: decision.into(),
            dataset: dataset.into(),
            consumer: "08135019".into(),
            ..serde_json::from_value(serde_json::json!({
                "id": "x", "time": "", "consumer": "", "consumerRole": "system", "consumerSerial": "01",
                "provider": "08136088", "dataset": "", "purpose": "p", "action": "a", "decision": "",
                "policyVersion": null, "moduleHash": null, "outcome": "delivered",
                "recordsIn": null, "recordsOut": null, "bytesOut": null
            }))
            .expect("record")
        };
        let records = [
            record("permit", "2026-11-02T10:00:00Z", "aalen-buergerbuero-termine"),
            record("permit", "2026-11-30T23:59:59Z", "aalen-buergerbuero-termine"),
            record("deny", "2026-11-03T10:00:00Z", "aalen-buergerbuero-termine"),
            record("permit", "2026-10-31T23:59:59Z", "aalen-buergerbuero-termine"),
            record("permit", "2026-11-04T10:00:00Z", "heidenheim-parken"),
        ];
        let rebuilt = TrailUsageCounter::from_decisions(&records);
        assert_eq!(
            rebuilt.acquire(key()).await.expect("acquire").count(),
            2,
            "permits of the period only"
        );
    }

    #[test]
    fn periods_are_calendar_months() {
        assert_eq!(period_of("2026-11-23T08:00:00Z"), Some("2026-11"));
        assert_eq!(period_of("gestern"), None);
        let now = time::macros::datetime!(2026-11-23 08:15:30.5 UTC);
        assert_eq!(period_start(now), time::macros::datetime!(2026-11-01 0:00 UTC));
    }
}
