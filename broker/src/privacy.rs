//! Differentially private counts and the privacy budget they spend.
//!
//! Why: small-group suppression alone does not compose. A consumer who receives two releases
//! of a growing dataset, one person apart, subtracts them and learns that person's row. With the
//! `kdr:addNoise` duty each count a release shows carries independent noise from the discrete
//! Laplace distribution with scale 1/ε. One person changes one group's count by one (the
//! histogram's L1 sensitivity is 1), so any release's probability changes by at most a factor
//! e^ε whether that person is in the data or not; k releases cost kε at most (sequential
//! composition). Each consumer gets a budget of ε per dataset and calendar month, whatever
//! purposes it declares (a budget per purpose would give one consumer as many budgets as the
//! policy admits purposes); a release that would exceed it is denied, and the spend is part of
//! the request's decision record, written before anything leaves. A request that fails before
//! any data leaves (the provider down) gives its spend back.
//!
//! The sampler is prio's (ISRG's libprio-rs: the exact discrete Laplace sampler of Canonne,
//! Kamath and Steinke 2020 on rational parameters, no floating point), driven by the thread's
//! ChaCha-based CSPRNG that the operating system seeds. Small noisy counts are then suppressed
//! like small true ones: which groups exist is protected by that threshold (so, strictly, the
//! guarantee for the *set* of groups is (ε, δ) with a small δ), the counts shown by ε.
//!
//! Budgets are thousandths of ε (`epsilon_milli`), so that spends add up exactly.

use std::collections::HashMap;
use std::sync::Mutex;

use num_traits::ToPrimitive;
use prio::dp::Rational;
use prio::dp::distributions::DiscreteLaplace;
use rand::distr::Distribution;

use crate::audit::DecisionRecord;

/// `count` plus discrete Laplace noise of scale 1/ε (ε = `epsilon_milli` / 1000).
pub fn noisy_count<R: rand::Rng + ?Sized>(count: u64, epsilon_milli: u32, rng: &mut R) -> i64 {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    count.saturating_add(noise(epsilon_milli, rng))
}

/// One draw of discrete Laplace noise with scale 1000 / `epsilon_milli`.
pub fn noise<R: rand::Rng + ?Sized>(epsilon_milli: u32, rng: &mut R) -> i64 {
    // ε is above zero (the compiler refuses 0), so the scale is a valid rational; a zero here
    // would mean infinite noise, which is what a count that cannot be released should get.
    let Ok(scale) = Rational::from_unsigned(1000u128, u128::from(epsilon_milli.max(1))) else {
        return i64::MIN / 2;
    };
    let Ok(laplace) = DiscreteLaplace::new(scale) else {
        return i64::MIN / 2;
    };
    laplace.sample(rng).to_i64().unwrap_or(i64::MIN / 2)
}

/// The noise source of the exchange: the thread's CSPRNG.
pub fn release_noise(epsilon_milli: u32) -> i64 {
    noise(epsilon_milli, &mut rand::rng())
}

/// Whose budget a release spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    pub consumer: String,
    pub dataset: String,
    /// `YYYY-MM`.
    pub period: String,
}

impl BudgetKey {
    pub fn of(r: &DecisionRecord) -> Option<Self> {
        Some(Self {
            consumer: r.consumer.clone(),
            dataset: r.dataset.clone(),
            period: crate::usage::period_of(&r.time)?.to_owned(),
        })
    }
}

/// A release that would spend more than the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the privacy budget is exhausted: ε {} of {} spent this month, a release costs {}",
    milli(*spent),
    milli(*budget),
    milli(*cost)
)]
pub struct Exhausted {
    pub spent: u32,
    pub budget: u32,
    pub cost: u32,
}

fn milli(m: u32) -> String {
    let s = format!("{}.{:03}", m / 1000, m % 1000);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The ε spent per key, in memory, rebuilt from the trail's decision records at start
/// (`exchange::Ledgers`; like the usage counts, the records are the durable spend, no second
/// file).
#[derive(Debug, Default)]
pub struct PrivacyLedger {
    spent: Mutex<HashMap<BudgetKey, u32>>,
}

impl PrivacyLedger {
    /// Adds the spend a recorded decision made (at start, for each record of the trail).
    pub fn add_recorded(&self, r: &DecisionRecord) {
        if let (Some(cost), Some(key)) = (r.privacy_spent_milli, BudgetKey::of(r)) {
            let mut spent = self.lock();
            let n = spent.entry(key).or_insert(0);
            *n = n.saturating_add(cost);
        }
    }

    /// Spends `cost` of `key`'s `budget` if it has that much left: the check and the spend are
    /// one step, so concurrent releases never spend more than the budget together. Returns
    /// what is spent after it.
    pub fn spend(&self, key: BudgetKey, cost: u32, budget: u32) -> Result<u32, Exhausted> {
        let mut spent = self.lock();
        let n = spent.entry(key).or_insert(0);
        match n.checked_add(cost).filter(|after| *after <= budget) {
            Some(after) => {
                *n = after;
                Ok(after)
            }
            None => Err(Exhausted { spent: *n, budget, cost }),
        }
    }

    /// Gives back a spend whose release did not happen (nothing left the broker).
    pub fn refund(&self, key: &BudgetKey, cost: u32) {
        if let Some(n) = self.lock().get_mut(key) {
            *n = n.saturating_sub(cost);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BudgetKey, u32>> {
        self.spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The discrete Laplace probability of `k` with parameter p = e^(-ε).
    fn pmf(k: i64, epsilon: f64) -> f64 {
        let p = (-epsilon).exp();
        (1.0 - p) / (1.0 + p) * p.powi(i32::try_from(k.abs()).unwrap_or(i32::MAX))
    }

    #[test]
    fn the_noise_follows_the_discrete_laplace_distribution() {
        // Pearson's chi-square over the bins -6..=6 (the tails pooled) for ε = 0.5 and 1.0,
        // against the critical value for p = 0.001 with 13 degrees of freedom (34.53): a
        // correct sampler fails this one time in a thousand, a wrong scale every time.
        let mut rng = rand::rngs::StdRng::seed_from_u64(20_261_202);
        for epsilon_milli in [500u32, 1000] {
            let epsilon = f64::from(epsilon_milli) / 1000.0;
            let n = 40_000usize;
            let mut observed = [0usize; 15];
            for _ in 0..n {
                let k = noise(epsilon_milli, &mut rng).clamp(-7, 7);
                observed[usize::try_from(k + 7).expect("bin")] += 1;
            }
            let expected: Vec<f64> = (-7i64..=7)
                .map(|k| {
                    let p = match k {
                        -7 | 7 => (7..200).map(|j| pmf(j, epsilon)).sum(),
                        k => pmf(k, epsilon),
                    };
                    p * n as f64
                })
                .collect();
            let chi2: f64 = observed.iter().zip(&expected).map(|(o, e)| (*o as f64 - e).powi(2) / e).sum();
            assert!(chi2 < 34.53, "ε = {epsilon}: chi-square {chi2:.1}, observed {observed:?}");
            let mean: f64 = (0..n).map(|_| noise(epsilon_milli, &mut rng) as f64).sum::<f64>() / n as f64;
            assert!(mean.abs() < 0.1, "ε = {epsilon}: noise is centred, mean {mean}");
        }
    }

    #[test]
    fn concurrent_spends_never_exceed_the_budget_and_exhaust_it_exactly() {
        let ledger = std::sync::Arc::new(PrivacyLedger::default());
        let key = BudgetKey {
            consumer: "08135019".into(),
            dataset: "d".into(),
            period: "2026-12".into(),
        };
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (ledger, key) = (ledger.clone(), key.clone());
                std::thread::spawn(move || ledger.spend(key, 250, 1000).is_ok())
            })
            .collect();
        let granted = handles.into_iter().map(|h| h.join().expect("thread")).filter(|ok| *ok).count();
        assert_eq!(granted, 4, "1.0 / 0.25 releases, no more");
        let refused = ledger.spend(key, 1, 1000).expect_err("exhausted");
        assert_eq!(
            refused.to_string(),
            "the privacy budget is exhausted: ε 1 of 1 spent this month, a release costs 0.001"
        );
    }
}
