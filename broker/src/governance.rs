//! Governance: who may put a policy in force (four eyes), and what a draft would have decided
//! on recorded traffic (what-if simulation).
//!
//! Four eyes: a steward of the publishing city submits a draft; a board member of the same city
//! who is not the draft's author reviews it. The author is the *person* (certificate common name
//! and organisation), not the certificate, so one person holding a steward and a board
//! certificate still cannot approve their own draft.

use policy_compiler::ir::Policy;
use policy_evaluator::{DecisionDocument, LoadedModule};
use serde::Serialize;

use crate::audit::DecisionRecord;
use crate::audit::export::Period;
use crate::catalog::{Dataset, PolicyStatus, PolicyVersion};
use crate::exchange::{Exchange, explain_denial};
use crate::identity::{Identity, Role};

/// Why a review is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewRefusal {
    #[error("reviewing a policy needs a board certificate; this one has role '{0}'")]
    NotBoard(Role),
    #[error("a board member of {publisher} reviews its policies, not one of {reviewer}")]
    OtherCity { publisher: String, reviewer: String },
    #[error("four eyes: {0} submitted this version and cannot review it")]
    OwnDraft(String),
    #[error("policy version {version} is {status}, not a draft")]
    NotADraft { version: u32, status: PolicyStatus },
}

/// Checks that `reviewer` may approve or reject `version` of `dataset`.
pub fn may_review(reviewer: &Identity, dataset: &Dataset, version: &PolicyVersion) -> Result<(), ReviewRefusal> {
    if reviewer.role != Role::Board {
        return Err(ReviewRefusal::NotBoard(reviewer.role));
    }
    if reviewer.ags != dataset.publisher {
        return Err(ReviewRefusal::OtherCity {
            publisher: dataset.publisher.to_string(),
            reviewer: reviewer.ags.to_string(),
        });
    }
    if version.author_name.is_empty() || same_person(reviewer, version) {
        return Err(ReviewRefusal::OwnDraft(version.author_name.clone()));
    }
    if version.status != PolicyStatus::Draft {
        return Err(ReviewRefusal::NotADraft {
            version: version.version,
            status: version.status,
        });
    }
    Ok(())
}

fn same_person(reviewer: &Identity, version: &PolicyVersion) -> bool {
    reviewer.common_name.trim().eq_ignore_ascii_case(version.author_name.trim()) && reviewer.ags == version.author
}

/// One recorded decision the draft would decide differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flip {
    pub decision_id: String,
    pub time: String,
    pub consumer: String,
    pub purpose: String,
    pub action: String,
    pub recorded: String,
    pub recorded_policy_version: Option<u32>,
    pub simulated: String,
    /// Why the draft denies (its unmet constraints and applying prohibitions), if it does.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Simulation {
    pub dataset: String,
    pub draft_version: u32,
    /// Recorded decisions of the dataset in the period.
    pub considered: usize,
    /// Decisions that were made without a policy input (no active policy then): not replayable.
    pub not_replayable: usize,
    pub unchanged: usize,
    pub flips: Vec<Flip>,
}

/// The draft's reasons for a denial, in ODRL terms.
pub fn denial_reasons(policy: &Policy, decision: &DecisionDocument) -> Vec<String> {
    let mut out = explain_denial(policy, decision).reasons();
    if let Some(e) = &decision.error {
        out.push(e.clone());
    }
    out
}

/// Replays the recorded decisions of `version.dataset` in `period` with the draft's module.
pub async fn simulate(
    exchange: &Exchange,
    module: &LoadedModule,
    draft: &Policy,
    version: &PolicyVersion,
    records: &[DecisionRecord],
    period: &Period,
) -> Simulation {
    let mut sim = Simulation {
        dataset: version.dataset.to_string(),
        draft_version: version.version,
        ..Simulation::default()
    };
    let relevant = records
        .iter()
        .filter(|r| r.dataset == version.dataset.as_str() && period.contains(&r.time));
    for r in relevant {
        sim.considered += 1;
        let Some(input) = &r.input else {
            sim.not_replayable += 1;
            continue;
        };
        let decision = exchange.decide(module, input).await;
        let simulated = if decision.permits() { "permit" } else { "deny" };
        if simulated == r.decision {
            sim.unchanged += 1;
            continue;
        }
        sim.flips.push(Flip {
            decision_id: r.id.clone(),
            time: r.time.clone(),
            consumer: r.consumer.clone(),
            purpose: r.purpose.clone(),
            action: r.action.clone(),
            recorded: r.decision.clone(),
            recorded_policy_version: r.policy_version,
            simulated: simulated.to_owned(),
            reasons: if decision.permits() {
                Vec::new()
            } else {
                denial_reasons(draft, &decision)
            },
        });
    }
    sim
}
