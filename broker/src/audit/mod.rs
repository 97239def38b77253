//! The audit trail: every decision on a data request and every administrative change (policy
//! submissions and approvals, members, revocations), in one hash-chained log that a governance
//! board can check offline with the broker's public key (`broker audit verify`).
//!
//! Why one log: a board asks "who used which data for what, under which policy, and who put
//! that policy in force". Keeping decisions and the changes that govern them in one chain makes
//! their order part of the evidence.
//!
//! - [`chain`]: the line format, the hash chain, and [`chain::verify`].
//! - [`signing`]: the broker's Ed25519 checkpoint key and signed checkpoints.
//! - [`file`]: [`file::FileAuditLog`], the chain in a file with group commit.
//!
//! A decision record never holds a data value, only field names and counts; its policy input
//! holds the consumer's municipality, dataset, purpose, action, time and usage count (no
//! personal data), so a draft policy can be replayed against it ([`crate::governance`]).
//! The [`AuditLog`] trait is the seam for PostgreSQL with several replicas later.

pub mod chain;
pub mod export;
pub mod file;
pub mod keeper;
pub mod rotate;
pub mod signing;

use policy_compiler::input::PolicyInput;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub id: String,
    /// RFC 3339.
    pub time: String,
    pub consumer: String,
    pub consumer_role: String,
    pub consumer_serial: String,
    pub provider: String,
    pub dataset: String,
    pub purpose: String,
    pub action: String,
    /// `permit` or `deny`.
    pub decision: String,
    /// The constraints that failed (on deny), by uid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_constraints: Vec<String>,
    /// Why the decision could not be made normally (no policy, evaluation error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub policy_version: Option<u32>,
    pub module_hash: Option<String>,
    /// What happened after the decision: `delivered`, `denied`, `upstream-failed`, ...
    pub outcome: String,
    /// The fields the consumer asked for (empty: all it may have).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields_requested: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields_delivered: Vec<String>,
    pub records_in: Option<usize>,
    pub records_out: Option<usize>,
    pub bytes_out: Option<usize>,
    /// The privacy budget (ε, in thousandths) this release spent: recorded in the decision, the
    /// durable record of the spend (`privacy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_spent_milli: Option<u32>,
    /// The policy input the decision was made on (for what-if simulation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<PolicyInput>,
}

/// An administrative change: who did what to which subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRecord {
    pub time: String,
    /// The actor's AGS, or `broker` for the broker itself (start, configuration).
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_serial: Option<String>,
    /// `policy-submitted`, `policy-approved`, `policy-rejected`, `member-registered`,
    /// `dataset-created`, `certificate-revoked`, ...
    pub action: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl AdminRecord {
    /// A change made by the broker itself (start-up, configuration).
    pub fn by_broker(action: &str, subject: impl Into<String>, detail: serde_json::Value) -> Self {
        Self {
            time: now_rfc3339(),
            actor: "broker".into(),
            actor_role: None,
            actor_serial: None,
            action: action.into(),
            subject: subject.into(),
            detail,
        }
    }
}

/// A signature over the chain up to a record (see [`signing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    pub time: String,
    /// Hex Ed25519 signature.
    pub signature: String,
}

/// What one record of the chain says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    Decision(Box<DecisionRecord>),
    Admin(AdminRecord),
    /// Signs the record before it (`seq - 1` and `prev`).
    Checkpoint(Signed),
    /// The first line of a pruned log: stands for the last pruned record, whose hash it carries
    /// and signs.
    Anchor(Signed),
}

/// One record: its place in the chain and its event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub prev: String,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
#[error("the audit log cannot be written ({path}): {source}")]
pub struct LogError {
    pub path: String,
    pub source: std::io::Error,
}

/// An append under way: resolves once the record is durable (or cannot be written).
pub type AppendFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;

/// Where decisions and changes go. `append` returns only once the record is durable.
pub trait AuditLog: Send + Sync {
    fn append(&self, event: Event) -> Result<(), LogError>;
    /// [`Self::append`] for async callers, without blocking their thread. The default blocks
    /// (a log without a writer thread of its own).
    fn append_async(&self, event: Event) -> AppendFuture {
        Box::pin(std::future::ready(self.append(event)))
    }
    /// Every record, oldest first (for reports, simulation and tests).
    fn entries(&self) -> Result<Vec<Entry>, LogError>;

    /// Hands every record to `f`, oldest first. A log that can read one record at a time does,
    /// so a pass over a long trail (the usage counts at start) need not hold all of it; the
    /// default reads [`Self::entries`].
    fn each_entry(&self, f: &mut dyn FnMut(Entry)) -> Result<(), LogError> {
        self.entries()?.into_iter().for_each(f);
        Ok(())
    }

    /// The decision records, oldest first.
    fn decisions(&self) -> Result<Vec<DecisionRecord>, LogError> {
        self.decisions_where(&|_| true)
    }

    /// The decision records `keep` accepts, oldest first; only those are held in memory.
    fn decisions_where(&self, keep: &dyn Fn(&DecisionRecord) -> bool) -> Result<Vec<DecisionRecord>, LogError> {
        let mut out = Vec::new();
        self.each_entry(&mut |e| {
            if let Event::Decision(d) = e.event
                && keep(&d)
            {
                out.push(*d);
            }
        })?;
        Ok(out)
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
