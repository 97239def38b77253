//! Shares of a bounded resource held per key (a member, a certificate), each given back when
//! dropped.
//!
//! Why one type: the data-request slots a member holds and the connections a certificate holds
//! are the same count, taken under a lock and returned on drop however the request or connection
//! ends; one implementation keeps the return path (and its removal of idle keys, so the map
//! holds only keys in use) the same for both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many shares each key holds now.
#[derive(Debug, Default, Clone)]
pub struct Shares {
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Shares {
    /// A share for `key`, or `None` when it holds `max` already.
    pub fn take(&self, key: &str, max: usize) -> Option<Share> {
        let mut held = self.lock();
        let n = held.entry(key.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Share {
            key: key.to_owned(),
            held: self.held.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One share of a key, given back on drop.
#[derive(Debug)]
pub struct Share {
    key: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_max_and_a_dropped_share_is_given_back() {
        let shares = Shares::default();
        let a = shares.take("a", 2).expect("first");
        let _b = shares.take("a", 2).expect("second");
        assert!(shares.take("a", 2).is_none(), "a third over the maximum");
        assert!(shares.take("b", 2).is_some(), "another key has its own");
        drop(a);
        assert!(shares.take("a", 2).is_some(), "a dropped share is given back");
    }

    #[test]
    fn keys_without_shares_are_forgotten() {
        let shares = Shares::default();
        drop(shares.take("a", 1));
        assert!(shares.lock().is_empty());
    }
}
