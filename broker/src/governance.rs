//! Governance: who may put a policy in force (four eyes), and what a draft would have decided
//! on recorded traffic (what-if simulation).
//!
//! Four eyes: a steward of the publishing city submits a draft; a board member of the same city
//! who is not the draft's author reviews it. The author is the *person* (certificate common name
//! and organisation), not the certificate, so one person holding a steward and a board
//! certificate still cannot approve their own draft.
//!
//! [`submit_draft`] and [`review`] are the two governance steps as the API and the console both
//! take them: one implementation, so a rule cannot hold in one and not the other.

use policy_compiler::ir::Policy;
use policy_compiler::parse::Syntax;
use policy_evaluator::{DecisionDocument, LoadedModule};
use serde::Serialize;

use crate::audit::export::Period;
use crate::audit::{AdminRecord, DecisionRecord};
use crate::catalog::{CatalogError, Dataset, PolicyStatus, PolicyVersion, Review};
use crate::changes::ChangeError;
use crate::exchange::{Exchange, explain_denial};
use crate::identity::{Identity, Role};
use crate::policy::{PolicyRejection, compile_for_dataset};

/// Drafts a dataset may have waiting for review at once.
pub const MAX_DRAFTS: usize = 10;

/// How long compiling a submitted policy may take.
pub const COMPILE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a submission was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("submitting a usage policy needs a steward certificate; this one has role '{0}'")]
    NotSteward(Role),
    #[error("dataset '{dataset}' is published by {publisher}; a steward of {steward} may not submit a usage policy for it")]
    NotOwner {
        dataset: String,
        publisher: String,
        steward: String,
    },
    #[error("a policy is text/turtle or application/ld+json, not {0}")]
    UnsupportedMediaType(String),
    #[error("dataset '{dataset}' has {drafts} drafts waiting for review, the most it may; a board member reviews them first")]
    TooManyDrafts { dataset: String, drafts: usize },
    #[error("the policy did not compile within {} s", COMPILE_DEADLINE.as_secs())]
    TooComplex,
    #[error(transparent)]
    Rejected(#[from] PolicyRejection),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Change(#[from] ChangeError<CatalogError>),
    #[error("the compiler's thread was lost")]
    Lost,
}

/// Compiles `source` for `dataset` on a blocking thread within [`COMPILE_DEADLINE`]: what the
/// console's check and a submission both run.
pub async fn compile_checked(
    exchange: &Exchange,
    dataset: &Dataset,
    source: Vec<u8>,
    syntax: Syntax,
) -> Result<crate::policy::CompiledPolicy, SubmitError> {
    let dataset_iri = exchange.catalog.dataset_iri(&dataset.id);
    let vocab = exchange.vocab.clone();
    // On the blocking pool, never an async worker, and within a time limit: the compiler's
    // input limits bound its work, the deadline bounds what a bug in them would cost.
    let compiling = tokio::task::spawn_blocking(move || compile_for_dataset(&source, syntax, &dataset_iri, &vocab));
    match tokio::time::timeout(COMPILE_DEADLINE, compiling).await {
        Err(_) => Err(SubmitError::TooComplex),
        Ok(Err(_)) => Err(SubmitError::Lost),
        Ok(Ok(compiled)) => Ok(compiled?),
    }
}

/// Stores `source` as a new draft of `dataset`'s policy by `author`, a steward of its
/// publisher: compiled and checked first, recorded in the audit trail before it is stored.
pub async fn submit_draft(
    exchange: &Exchange,
    author: &Identity,
    dataset: &Dataset,
    source: Vec<u8>,
    media_type: &str,
) -> Result<PolicyVersion, SubmitError> {
    if author.role != Role::Steward {
        return Err(SubmitError::NotSteward(author.role));
    }
    if author.ags != dataset.publisher {
        return Err(SubmitError::NotOwner {
            dataset: dataset.id.to_string(),
            publisher: dataset.publisher.to_string(),
            steward: author.ags.to_string(),
        });
    }
    let media_type = media_type.split(';').next().unwrap_or_default().trim().to_owned();
    let syntax = Syntax::from_media_type(&media_type).ok_or_else(|| SubmitError::UnsupportedMediaType(media_type.clone()))?;
    let versions = blocking(exchange, {
        let id = dataset.id.clone();
        move |c| c.policy_versions(&id)
    })
    .await?;
    let drafts = versions.iter().filter(|v| v.status == PolicyStatus::Draft).count();
    if drafts >= MAX_DRAFTS {
        return Err(SubmitError::TooManyDrafts {
            dataset: dataset.id.to_string(),
            drafts,
        });
    }
    let compiled = compile_checked(exchange, dataset, source.clone(), syntax).await?;
    let ir = compiled.policy;
    // The number this version will get, so that its record names it; the catalog refuses it if
    // another submission took it meanwhile.
    let next = versions.last().map_or(1, |p| p.version + 1);
    let version = PolicyVersion {
        dataset: dataset.id.clone(),
        version: next,
        policy: ir.uid.clone(),
        source: String::from_utf8_lossy(&source).into_owned(),
        media_type,
        module_hash: compiled.hash.to_string(),
        author: author.ags.clone(),
        author_name: author.common_name.clone(),
        submitted: crate::audit::now_rfc3339(),
        status: PolicyStatus::Draft,
        review: None,
        active: false,
    };
    let detail = serde_json::json!({ "version": next, "moduleHash": version.module_hash, "policy": version.policy });
    let record = AdminRecord::by(author, "policy-submitted", dataset.id.as_str(), detail);
    let catalog = exchange.catalog.clone();
    let stored = crate::changes::audited(&exchange.log, record, move || catalog.submit_policy(&version, &ir)).await?;
    tracing::info!(dataset = %dataset.id, version = stored.version, module = %stored.module_hash, by = %author.ags, "policy submitted");
    Ok(stored)
}

/// Why a review was not made.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Refused(#[from] ReviewRefusal),
    #[error("the distributions of dataset '{0}' changed since you looked at them; review them again")]
    DistributionsChanged(String),
    #[error(transparent)]
    Change(#[from] ChangeError<CatalogError>),
}

/// A reviewer's verdict on a draft.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub approved: bool,
    pub note: Option<String>,
    /// The distributions digest the reviewer saw (`X-Distributions-Digest`), if they say.
    pub distributions_seen: Option<String>,
}

/// Approves or rejects `version` of `dataset` (four eyes, [`may_review`]): recorded first, then
/// stored; an approval puts the version in force for the distributions as they are now.
pub async fn review(
    exchange: &Exchange,
    reviewer: &Identity,
    dataset: &Dataset,
    version: &PolicyVersion,
    verdict: Verdict,
) -> Result<PolicyVersion, ReviewError> {
    may_review(reviewer, dataset, version)?;
    let current = dataset.distributions_digest();
    if verdict.distributions_seen.as_ref().is_some_and(|seen| *seen != current) {
        return Err(ReviewError::DistributionsChanged(dataset.id.to_string()));
    }
    let review = Review {
        approved: verdict.approved,
        by: reviewer.ags.clone(),
        by_name: reviewer.common_name.clone(),
        time: crate::audit::now_rfc3339(),
        note: verdict.note,
        // What the board approves the policy for: these distributions, and no others.
        distributions: verdict.approved.then_some(current),
    };
    let action = if verdict.approved { "policy-approved" } else { "policy-rejected" };
    let detail = serde_json::json!({
        "version": version.version,
        "moduleHash": version.module_hash,
        "note": review.note,
        "distributions": review.distributions,
    });
    let record = AdminRecord::by(reviewer, action, dataset.id.as_str(), detail);
    let catalog = exchange.catalog.clone();
    let (id, n) = (dataset.id.clone(), version.version);
    let reviewed = crate::changes::audited(&exchange.log, record, move || catalog.review_policy(&id, n, &review)).await?;
    exchange.forget(&dataset.id);
    tracing::info!(dataset = %dataset.id, version = n, by = %reviewer.common_name, action, "policy reviewed");
    Ok(reviewed)
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error("the version cannot be compiled: {0}")]
    Module(#[from] crate::exchange::ModuleError),
    #[error("the audit log cannot be read: {0}")]
    Log(#[from] crate::audit::LogError),
    #[error("the audit log's reader was lost")]
    Lost,
}

/// Replays the recorded decisions of `version`'s dataset in `period` with `version` (what the
/// API's `simulate` and the console's approval page show).
pub async fn simulate_version(exchange: &Exchange, version: &PolicyVersion, period: Period) -> Result<Simulation, SimulationError> {
    let compiled = exchange.module(version)?;
    let log = exchange.log.clone();
    let of = version.dataset.to_string();
    let window = period;
    let records = tokio::task::spawn_blocking(move || log.decisions_where(&|r| r.dataset == of && window.contains(&r.time)))
        .await
        .map_err(|_| SimulationError::Lost)??;
    Ok(simulate(exchange, &compiled.module, &compiled.policy, version, &records, &period).await)
}

/// Runs a catalog read on a blocking thread.
async fn blocking<T: Send + 'static>(
    exchange: &Exchange,
    read: impl FnOnce(&dyn crate::catalog::Catalog) -> Result<T, CatalogError> + Send + 'static,
) -> Result<T, CatalogError> {
    let catalog = exchange.catalog.clone();
    tokio::task::spawn_blocking(move || read(catalog.as_ref()))
        .await
        .map_err(|e| CatalogError::Storage(format!("a storage task could not run: {e}")))?
}

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
