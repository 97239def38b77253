//! Cross-city exchange, the broker's reason to exist, in one place: [`pipeline`] runs a data
//! request (decide → count the use → fetch → enforce → record → deliver) and a hosted upload;
//! this module holds the state they share. The HTTP layer only maps requests and refusals, so
//! the promises below hold for every way in (API, console, tests without TLS) and are tested
//! here.
//!
//! **Architecture Invariant:** no data leaves without a decision by the dataset's active,
//! compiled policy and a durable decision record. A dataset without an active policy is never
//! shared; an evaluation error is a deny; a log that cannot be written fails the request.
//!
//! **Architecture Invariant:** a city's data is fetched only from that city: from an origin its
//! member record registers, from a server whose certificate names it as the provider
//! ([`crate::upstream`]), for a dataset it publishes, under a policy version its board approved
//! for exactly these distributions. The broker dials no other address.

pub mod denial;
pub mod pipeline;

pub use denial::{Denial, explain_denial};

use std::sync::Arc;
use std::time::Duration;

use policy_compiler::Vocabulary;
use policy_compiler::input::PolicyInput;
use policy_compiler::ir::Policy;
use policy_compiler::parse::Syntax;
use policy_evaluator::{DecisionDocument, LoadedModule, WorkerPool};

use crate::audit::AuditLog;
use crate::catalog::{Catalog, Dataset, DatasetId, Member, PolicyVersion};
use crate::enforce::{Duty, EnforceError, Plan};
use crate::fresh::Fresh;
use crate::hosted::HostedStore;
use crate::kept::Kept;
use crate::usage::TrailUsageCounter;

pub use crate::ns::ODRL;

/// The exchange's shared state.
pub struct Exchange {
    pub catalog: Arc<dyn Catalog>,
    pub vocab: Arc<Vocabulary>,
    /// The broker's own client identity towards providers' APIs.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// The revocation list providers' certificates are checked against too.
    pub revocation: Option<Arc<crate::tls::ReloadingCrlVerifier>>,
    pub pool: WorkerPool,
    pub log: Arc<dyn AuditLog>,
    pub usage: Arc<TrailUsageCounter>,
    /// The ε each consumer spent on each dataset this month.
    pub privacy: Arc<crate::privacy::PrivacyLedger>,
    /// What the reports are read from.
    pub tally: Arc<crate::reports::Tally>,
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
    requests: Arc<tokio::sync::Semaphore>,
    /// Data requests in progress per member: at most half the slots each, so one member's
    /// requests to a slow provider cannot take them all.
    member_requests: crate::shares::Shares,
    uploads: Arc<tokio::sync::Semaphore>,
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

/// Everything kept in memory that the trail's decision records add up to: the usage counts,
/// the privacy budgets spent, the reports' tally. Rebuilt at start in one pass over the trail.
#[derive(Debug, Default)]
pub struct Ledgers {
    pub usage: TrailUsageCounter,
    pub privacy: crate::privacy::PrivacyLedger,
    pub tally: crate::reports::Tally,
}

impl Ledgers {
    /// What the decision records of `trail` add up to, read one record at a time.
    pub fn from_trail(trail: &dyn AuditLog) -> Result<Self, crate::audit::LogError> {
        let ledgers = Self::default();
        trail.each_entry(&mut |e| {
            if let crate::audit::Event::Decision(r) = &e.event {
                ledgers.usage.add_recorded(r);
                ledgers.privacy.add_recorded(r);
                ledgers.tally.add(r);
            }
        })?;
        Ok(ledgers)
    }
}

async fn slot(
    semaphore: &Arc<tokio::sync::Semaphore>,
    limit: usize,
    what: &'static str,
) -> Result<tokio::sync::OwnedSemaphorePermit, Busy> {
    match tokio::time::timeout(SLOT_WAIT, semaphore.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Busy { limit, what }),
    }
}

/// A dataset, its active policy version and its publisher's member record as a request sees
/// them. Kept for at most [`SNAPSHOT_TTL`] and dropped at once when this broker changes either,
/// so a new policy version decides the next request; the TTL bounds what another replica's
/// change (or a member removed from the configuration) can take to arrive.
#[derive(Debug)]
pub struct Snapshot {
    pub dataset: Dataset,
    pub policy: Option<PolicyVersion>,
    /// `None` once the publisher is no longer a member.
    pub publisher: Option<Member>,
    /// [`Dataset::distributions_digest`], computed once.
    pub distributions: String,
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
    /// Data requests in progress at once; more wait up to [`SLOT_WAIT`] for a slot, then are
    /// refused as busy. With `max_bytes`, this bounds what data requests can hold in memory
    /// together (a release holds about three times its input at most).
    pub max_requests: usize,
    /// Hosted uploads in progress at once (their bodies are read only once they have a slot).
    pub max_uploads: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(10),
            max_bytes: 16 << 20,
            max_requests: 128,
            max_uploads: 2,
        }
    }
}

/// How long a data request or an upload waits for a slot before it is refused as busy.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);

/// A slot for one data request or upload; released when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// One of the member's data-request slots.
    _share: Option<crate::shares::Share>,
}

/// All slots of a kind were taken for [`SLOT_WAIT`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the broker is handling {limit} {what} at once, the most it takes; try again shortly")]
pub struct Busy {
    pub limit: usize,
    pub what: &'static str,
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

/// What the exchange is built from.
pub struct Parts {
    pub catalog: Arc<dyn Catalog>,
    pub vocab: Arc<Vocabulary>,
    pub upstream_tls: Arc<rustls::ClientConfig>,
    pub revocation: Option<Arc<crate::tls::ReloadingCrlVerifier>>,
    pub pool: WorkerPool,
    pub log: Arc<dyn AuditLog>,
    pub usage: Arc<TrailUsageCounter>,
    pub privacy: Arc<crate::privacy::PrivacyLedger>,
    pub tally: Arc<crate::reports::Tally>,
    pub hosted: Arc<dyn HostedStore>,
    pub secret: Vec<u8>,
    pub upstream: UpstreamLimits,
}

impl Exchange {
    pub fn new(parts: Parts) -> Self {
        let Parts {
            catalog,
            vocab,
            upstream_tls,
            revocation,
            pool,
            log,
            usage,
            privacy,
            tally,
            hosted,
            secret,
            upstream,
        } = parts;
        Self {
            catalog,
            vocab,
            upstream_tls,
            revocation,
            pool,
            log,
            usage,
            privacy,
            tally,
            hosted,
            secret,
            upstream,
            modules: Kept::new(MODULES_KEPT),
            snapshots: Fresh::new(SNAPSHOT_TTL),
            duties: Kept::new(DUTIES_KEPT),
            requests: Arc::new(tokio::sync::Semaphore::new(upstream.max_requests.max(1))),
            member_requests: crate::shares::Shares::default(),
            uploads: Arc::new(tokio::sync::Semaphore::new(upstream.max_uploads.max(1))),
        }
    }

    /// A slot for a data request by `member`: refused at once when the member holds its share
    /// (half the slots), else waiting up to [`SLOT_WAIT`] for one of all.
    pub async fn request_slot(&self, member: &str) -> Result<Slot, Busy> {
        let limit = self.upstream.max_requests.div_ceil(2).max(1);
        let share = self.member_requests.take(member, limit).ok_or(Busy {
            limit,
            what: "data requests of one member",
        })?;
        Ok(Slot {
            _permit: slot(&self.requests, self.upstream.max_requests, "data requests").await?,
            _share: Some(share),
        })
    }

    /// A slot for a hosted upload: taken before its body is read.
    pub async fn upload_slot(&self) -> Result<Slot, Busy> {
        Ok(Slot {
            _permit: slot(&self.uploads, self.upstream.max_uploads, "uploads").await?,
            _share: None,
        })
    }

    /// The request path's caches: (hits, misses) of each (the metrics).
    pub fn cache_lookups(&self) -> Vec<(&'static str, (u64, u64))> {
        vec![
            ("policy-modules", self.modules.lookups.counts()),
            ("duties", self.duties.lookups.counts()),
            ("snapshots", self.snapshots.lookups.counts()),
        ]
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

    /// Drops everything kept of a withdrawn dataset: its snapshot and its compiled versions.
    pub fn forget_withdrawn(&self, id: &DatasetId) {
        self.snapshots.forget(id);
        self.modules.remove_where(|(d, _)| d == id);
    }

    /// The compiled module of a stored version: compiled once, and only if its hash is the one
    /// stored with the version.
    pub fn module(&self, p: &PolicyVersion) -> Result<CompiledVersion, ModuleError> {
        let vocab = self.vocab.as_ref();
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

/// An action given as `read` or as a full IRI.
pub fn action_iri(action: &str) -> String {
    if action.contains(':') {
        action.to_owned()
    } else {
        format!("{ODRL}{action}")
    }
}
