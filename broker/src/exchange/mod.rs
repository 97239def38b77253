//! Cross-city exchange: what the broker needs to decide a data request and account for it. The
//! HTTP side (`http::exchange`) runs the steps in order: decide → count the use → fetch →
//! enforce → log → respond; this module holds the state and the steps that need no HTTP.
//!
//! **Architecture Invariant:** no data leaves without a decision by the dataset's active,
//! compiled policy and a durable decision record. A dataset without an active policy is never
//! shared; an evaluation error is a deny; a log that cannot be written fails the request.

use std::sync::Arc;
use std::time::Duration;

use policy_compiler::Vocabulary;
use policy_compiler::input::PolicyInput;
use policy_compiler::ir::{Constraint, Operand, Policy, RuleKind};
use policy_compiler::parse::Syntax;
use policy_evaluator::{DecisionDocument, LoadedModule, WorkerPool};

use crate::audit::AuditLog;
use crate::catalog::{Dataset, DatasetId, PolicyVersion};
use crate::enforce::{Duty, EnforceError, Plan};
use crate::fresh::Fresh;
use crate::hosted::HostedStore;
use crate::identity::{AGS_IRI_PREFIX, Ags};
use crate::kept::Kept;
use crate::usage::TrailUsageCounter;

pub const ODRL: &str = "http://www.w3.org/ns/odrl/2/";

/// The exchange's shared state.
pub struct Exchange {
    pub pool: WorkerPool,
    pub log: Arc<dyn AuditLog>,
    pub usage: Arc<TrailUsageCounter>,
    /// Pseudonym master secret (32 random bytes kept in the data directory).
    pub secret: Vec<u8>,
    /// Upstream limits.
    pub upstream: UpstreamLimits,
    /// Data uploaded by providers without an API of their own.
    pub hosted: Arc<dyn HostedStore>,
    /// Compiled versions, at most one per dataset (the one compiled last) and
    /// [`MODULES_KEPT`] in all.
    modules: Kept<(DatasetId, u32), CompiledVersion>,
    snapshots: Fresh<DatasetId, Snapshot>,
    /// Read duties by the JSON text a decision carried them in.
    duties: Kept<Box<str>, Arc<Duties>>,
}

/// A decision's duties, read: what the consumer must honour and what the broker does to the
/// data. A policy version's decisions carry one of a few duty lists, so each is read once.
#[derive(Debug)]
pub struct Duties {
    pub duties: Vec<Duty>,
    pub plan: Plan,
    /// The usage terms the consumer must honour, as the `X-Usage-Terms` header carries them:
    /// `{"retention": <xsd:duration or null>, "duties": [<action IRI>, ...]}`.
    pub terms: String,
}

/// At most this many distinct duty lists are kept; more (only after many policy versions)
/// start the cache afresh.
const DUTIES_KEPT: usize = 256;

/// At most this many compiled versions are kept (a compiled module is some hundred kilobytes of
/// machine code); a data space with more datasets recompiles some of them now and then.
const MODULES_KEPT: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum DutiesError {
    #[error("the decision's duties cannot be read: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("the decision's duties cannot be enforced: {0}")]
    Unenforceable(#[from] EnforceError),
}

/// A dataset and its active policy version as a request sees them. Kept for at most
/// [`SNAPSHOT_TTL`] and dropped at once when this broker changes either, so a new policy version
/// decides the next request; the TTL bounds what another replica's change can take to arrive.
#[derive(Debug)]
pub struct Snapshot {
    pub dataset: Dataset,
    pub policy: Option<PolicyVersion>,
}

pub const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").field("upstream", &self.upstream).finish_non_exhaustive()
    }
}

/// A stored policy version, compiled: the module that decides, and the IR that explains.
#[derive(Debug, Clone)]
pub struct CompiledVersion {
    pub module: LoadedModule,
    pub policy: Arc<Policy>,
}

#[derive(Debug, Clone, Copy)]
pub struct UpstreamLimits {
    pub timeout: std::time::Duration,
    /// Largest response from a provider's API, and largest upload of hosted data.
    pub max_bytes: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(10),
            max_bytes: 16 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("policy version {version} of '{dataset}' no longer compiles: {reason}")]
    Compile { dataset: DatasetId, version: u32, reason: String },
    #[error("policy version {version} of '{dataset}' compiles to {got}, but {stored} was approved")]
    HashMismatch {
        dataset: DatasetId,
        version: u32,
        got: String,
        stored: String,
    },
}

impl Exchange {
    pub fn new(
        pool: WorkerPool,
        log: Arc<dyn AuditLog>,
        usage: Arc<TrailUsageCounter>,
        hosted: Arc<dyn HostedStore>,
        secret: Vec<u8>,
        upstream: UpstreamLimits,
    ) -> Self {
        Self {
            pool,
            log,
            usage,
            hosted,
            secret,
            upstream,
            modules: Kept::new(MODULES_KEPT),
            snapshots: Fresh::new(SNAPSHOT_TTL),
            duties: Kept::new(DUTIES_KEPT),
        }
    }

    /// The duties of a decision (its `duties` JSON), read and planned.
    pub fn duties(&self, json: &str) -> Result<Arc<Duties>, DutiesError> {
        if let Some(d) = self.duties.get(json) {
            return Ok(d);
        }
        let duties: Vec<Duty> = serde_json::from_str(json)?;
        let plan = Plan::from_duties(&duties, None)?;
        let actions: Vec<&str> = duties.iter().map(|d| d.action.as_str()).collect();
        let terms = serde_json::json!({ "retention": plan.retention, "duties": actions }).to_string();
        let read = Arc::new(Duties { duties, plan, terms });
        self.duties.insert(json.into(), read.clone(), |_| false);
        Ok(read)
    }

    /// A fresh snapshot of the dataset, if one is kept.
    pub fn snapshot(&self, id: &DatasetId) -> Option<Arc<Snapshot>> {
        self.snapshots.get(id)
    }

    pub fn remember(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        self.snapshots.put(snapshot.dataset.id.clone(), snapshot)
    }

    /// Drops the snapshot of a dataset this broker just changed (description or policy).
    pub fn forget(&self, id: &DatasetId) {
        self.snapshots.forget(id);
    }

    /// The compiled module of a stored version: compiled once, and only if its hash is the one
    /// stored with the version.
    pub fn module(&self, p: &PolicyVersion, vocab: &Vocabulary) -> Result<CompiledVersion, ModuleError> {
        let key = (p.dataset.clone(), p.version);
        if let Some(m) = self.modules.get(&key) {
            return Ok(m);
        }
        let compile_err = |reason: String| ModuleError::Compile {
            dataset: p.dataset.clone(),
            version: p.version,
            reason,
        };
        let syntax = Syntax::from_media_type(&p.media_type).unwrap_or(Syntax::Turtle);
        let policy = policy_compiler::parse::parse_one(&p.source, syntax, vocab).map_err(|e| compile_err(e.to_string()))?;
        let bytes = policy_compiler::wasm::compile(&policy, vocab).map_err(|e| compile_err(e.to_string()))?;
        let module = self.pool.engine().load(&bytes).map_err(|e| compile_err(e.to_string()))?;
        if module.hash.to_string() != p.module_hash {
            return Err(ModuleError::HashMismatch {
                dataset: p.dataset.clone(),
                version: p.version,
                got: module.hash.to_string(),
                stored: p.module_hash.clone(),
            });
        }
        let compiled = CompiledVersion {
            module,
            policy: Arc::new(policy),
        };
        // Another version of the dataset is rarely needed again once this one is (it replaced
        // it, or a steward simulated it once), and versions accumulate for as long as it runs.
        self.modules.insert(key, compiled.clone(), |(d, _)| *d == p.dataset);
        Ok(compiled)
    }

    pub async fn decide(&self, module: &LoadedModule, input: &PolicyInput) -> DecisionDocument {
        self.pool.decide(module, input).await
    }
}

/// Why a request was denied, in terms of the policy: the unsatisfied constraints of the
/// permissions that could have allowed it, and the prohibitions that forbade it. (Unsatisfied
/// constraints of a prohibition are not reasons: they are why it did not apply.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denial {
    /// Constraint uid -> a readable form (`purpose isA https://w3id.org/dpv#...`).
    pub failed_constraints: Vec<(String, String)>,
    pub prohibited_by: Vec<String>,
}

impl Denial {
    /// Each unmet constraint and applying prohibition as a sentence.
    pub fn reasons(&self) -> Vec<String> {
        let unmet = self
            .failed_constraints
            .iter()
            .map(|(uid, text)| format!("{text} is not met ({uid})"));
        unmet
            .chain(self.prohibited_by.iter().map(|r| format!("prohibited by {r}")))
            .collect()
    }
}

pub fn explain_denial(policy: &Policy, decision: &DecisionDocument) -> Denial {
    let mut out = Denial::default();
    for rule in &policy.rules {
        let active = decision.rules.get(&rule.uid).copied().unwrap_or(false);
        match rule.kind {
            RuleKind::Permission if !active => {
                for c in &rule.constraints {
                    collect_failed(c, decision, &mut out.failed_constraints);
                }
            }
            RuleKind::Prohibition if active => out.prohibited_by.push(rule.uid.clone()),
            _ => {}
        }
    }
    out
}

fn collect_failed(c: &Constraint, decision: &DecisionDocument, out: &mut Vec<(String, String)>) {
    if decision.constraints.get(c.uid()).copied().unwrap_or(true) {
        return;
    }
    match c {
        Constraint::Atomic {
            uid,
            left,
            operator,
            right,
        } => {
            let right = match right {
                Operand::DateTime(d) => d.clone(),
                Operand::Integer(n) => n.to_string(),
                Operand::Iri(i) => i.clone(),
                Operand::Iris(is) => is.join(" "),
            };
            out.push((uid.clone(), format!("{} {} {right}", odrl_name(left), odrl_name(operator))));
        }
        Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } => {
            out.push((c.uid().to_owned(), "a logical constraint".into()));
            for o in operands {
                collect_failed(o, decision, out);
            }
        }
    }
}

/// An IR term by its ODRL local name (`purpose`, `isA`): how the IR serialises it.
fn odrl_name(term: &impl serde::Serialize) -> String {
    serde_json::to_value(term)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A party's IRI in policies: its municipality's geocoding IRI.
pub fn party_iri(ags: &Ags) -> String {
    format!("{AGS_IRI_PREFIX}{ags}")
}

/// An action given as `read` or as a full IRI.
pub fn action_iri(action: &str) -> String {
    if action.contains(':') {
        action.to_owned()
    } else {
        format!("{ODRL}{action}")
    }
}
