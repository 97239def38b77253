//! The shared metadata graph: members, datasets (DCAT-AP.de) and a SPARQL query service.
//!
//! Everything above this module talks to the graph through the narrow traits below, never to
//! oxigraph directly, so a remote SPARQL endpoint or a replicated store can take the embedded
//! one's place without touching the HTTP layer.
//!
//! **Architecture Invariant:** only `catalog` imports oxigraph.

pub mod dcat;
pub mod documents;
pub mod import;
pub mod isolated;
pub mod labels;
pub mod model;
pub mod policy;
pub mod search;
pub mod shacl;
pub mod sparql;
pub mod store;

pub use documents::{RdfSyntax, SpaceCatalog};
pub use model::{
    Access, ContactPoint, Dataset, DatasetDescription, DatasetFilter, DatasetId, Distribution, Lang, Member, Temporal, Tombstone,
};
pub use policy::{PolicyStatus, PolicyVersion, Review};
pub use sparql::{QueryLimits, QueryOutput, SparqlError};
pub use store::OxigraphCatalog;

use crate::identity::Ags;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the metadata store failed: {0}")]
    Storage(String),
    #[error("dataset '{0}' already exists")]
    DatasetExists(DatasetId),
    #[error("dataset '{0}' does not exist")]
    NoSuchDataset(DatasetId),
    #[error("dataset '{}' was withdrawn by {} on {}; a withdrawn identifier is never used again", .0.id, .0.publisher, .0.withdrawn)]
    DatasetWithdrawn(Box<Tombstone>),
    #[error("dataset '{dataset}' does not meet DCAT-AP.de 3.0: {}", self::shacl::violations_summary(findings).unwrap_or_default())]
    NotDcatApDe {
        dataset: DatasetId,
        findings: Vec<self::shacl::Finding>,
    },
    #[error(transparent)]
    Shacl(#[from] self::shacl::ShaclError),
    #[error("busy: {0}")]
    Busy(String),
    #[error("the catalog changed while this was being prepared ({0}); nothing was written, try again")]
    Conflict(String),
    #[error("the policy cannot be stored: {0}")]
    InvalidPolicy(String),
    #[error("dataset '{dataset}' has no policy version {version}")]
    NoSuchPolicyVersion { dataset: DatasetId, version: u32 },
    #[error("policy version {version} of '{dataset}' was submitted meanwhile by someone else; submit again")]
    PolicyVersionTaken { dataset: DatasetId, version: u32 },
    #[error("policy version {version} of '{dataset}' is {status}, not a draft; only drafts are reviewed")]
    NotADraft {
        dataset: DatasetId,
        version: u32,
        status: policy::PolicyStatus,
    },
}

/// The data space's members.
pub trait MemberRegistry: Send + Sync {
    /// Inserts or replaces a member.
    fn put_member(&self, member: &Member) -> Result<(), CatalogError>;
    /// Removes a member (none is fine): its certificates are refused from then on.
    fn remove_member(&self, ags: &Ags) -> Result<(), CatalogError>;
    fn member(&self, ags: &Ags) -> Result<Option<Member>, CatalogError>;
    fn members(&self) -> Result<Vec<Member>, CatalogError>;
}

/// Registered datasets. Every write is all-or-nothing.
pub trait DatasetCatalog: Send + Sync {
    /// Adds a dataset; fails with [`CatalogError::DatasetExists`] if its id is taken and with
    /// [`CatalogError::DatasetWithdrawn`] if it was ever withdrawn.
    fn insert_dataset(&self, dataset: &Dataset) -> Result<(), CatalogError>;
    /// Replaces an existing dataset; fails with [`CatalogError::NoSuchDataset`] otherwise.
    fn replace_dataset(&self, dataset: &Dataset) -> Result<(), CatalogError>;
    /// Withdraws a dataset at `time` (RFC 3339), all in one step: its description goes, its
    /// active policy version is taken out of force (the versions stay readable as history), and
    /// a tombstone keeps the identifier from ever being registered again, by anyone.
    /// [`CatalogError::NoSuchDataset`] if it is not there.
    fn withdraw_dataset(&self, id: &DatasetId, time: &str) -> Result<Tombstone, CatalogError>;
    /// The tombstone of a withdrawn dataset.
    fn tombstone(&self, id: &DatasetId) -> Result<Option<Tombstone>, CatalogError>;
    fn dataset(&self, id: &DatasetId) -> Result<Option<Dataset>, CatalogError>;
    /// The dataset's IRI in the graph (what policies name as their target).
    fn dataset_iri(&self, id: &DatasetId) -> String;
    /// The datasets matching `filter`, ordered by id.
    fn datasets(&self, filter: &DatasetFilter) -> Result<Vec<Dataset>, CatalogError>;
    /// A number that changes with every write to the catalog: what was read under one
    /// generation may be kept (cached) only while it is still the current one.
    fn generation(&self) -> u64;
}

/// Versions of the datasets' usage policies. A version is submitted as a draft and reviewed
/// once; approving it makes it the active one (`odrl:hasPolicy`). Sources are never rewritten
/// and earlier versions stay readable.
pub trait PolicyCatalog: Send + Sync {
    /// Stores `policy` as the dataset's next version, a draft, with statements derived from its
    /// compiled rule IR `ir` (never from the submitted document). `policy.version` must be that
    /// next number (the caller records it before the change), else
    /// [`CatalogError::PolicyVersionTaken`]; [`CatalogError::NoSuchDataset`] for an unknown dataset.
    fn submit_policy(&self, policy: &PolicyVersion, ir: &policy_compiler::ir::Policy) -> Result<PolicyVersion, CatalogError>;
    /// Records the review of a draft; an approval makes it the active version (and the one before
    /// it inactive), a rejection changes nothing in force. Fails with
    /// [`CatalogError::NotADraft`] for a version already reviewed. Who may review is the
    /// caller's check (four eyes: `broker::governance`).
    fn review_policy(&self, dataset: &DatasetId, version: u32, review: &policy::Review) -> Result<PolicyVersion, CatalogError>;
    /// Every version of the dataset's policy, oldest first.
    fn policy_versions(&self, dataset: &DatasetId) -> Result<Vec<PolicyVersion>, CatalogError>;
    /// The datasets that have drafts waiting for review (a board's queue), without reading
    /// every dataset: drafts are few, datasets many.
    fn datasets_with_drafts(&self) -> Result<Vec<DatasetId>, CatalogError>;
    fn active_policy(&self, dataset: &DatasetId) -> Result<Option<PolicyVersion>, CatalogError> {
        Ok(self.policy_versions(dataset)?.into_iter().find(|p| p.active))
    }
}

/// Read-only SPARQL 1.1 queries over the whole graph, for a member (whose share of the query
/// slots it counts against).
pub trait SparqlService: Send + Sync {
    fn query(&self, query: &str, accept: &str, limits: &QueryLimits, member: &str) -> Result<QueryOutput, SparqlError>;
    /// Queries evaluating now (the metrics' slots in use).
    fn queries_running(&self) -> usize {
        0
    }
}

/// The catalog as RDF documents ([`documents`]): what dataset IRIs dereference to and what
/// harvesters read. Nothing the broker keeps to itself (a provider's address) is in them.
pub trait CatalogDocuments: Send + Sync {
    /// A dataset's description with its publisher and the publisher's catalog; `None` if there
    /// is no such dataset, or (`public_only`) it is not public.
    fn dataset_document(&self, id: &DatasetId, syntax: RdfSyntax, public_only: bool) -> Result<Option<Vec<u8>>, CatalogError>;
    /// Page `number` (1-based) of the harvestable catalog: the datasets whose access rights
    /// are `PUBLIC`, by identifier, `per_page` to a page, with Hydra paging; `None` past the
    /// last page. `page_iri` names a page.
    /// What the DCAT-AP.de shapes find in a dataset's description as it is served
    /// ([`shacl`]), violations first; `None` if there is no such dataset.
    fn dataset_findings(&self, id: &DatasetId) -> Result<Option<Vec<self::shacl::Finding>>, CatalogError>;
    fn harvest_page(
        &self,
        number: usize,
        per_page: usize,
        space: &SpaceCatalog,
        page_iri: &dyn Fn(usize) -> String,
        syntax: RdfSyntax,
    ) -> Result<Option<Vec<u8>>, CatalogError>;
}

/// Datasets imported from a portal's DCAT-AP.de export ([`import`]): kept as their graphs,
/// marked with their source, updated and withdrawn when the source changes.
pub trait CatalogImport: Send + Sync {
    /// What importing `datasets` for `publisher` from `source` would change (nothing is
    /// written): new ones, changed ones, unchanged ones, the ones earlier imported from
    /// `source` that are gone from it, and the ones whose identifier is not free.
    fn plan_import(&self, publisher: &Ags, source: &str, datasets: &[import::ImportedDataset]) -> Result<import::Plan, CatalogError>;
    /// Makes `plan` in one transaction at `time` (RFC 3339): all of it, or nothing if the
    /// catalog changed since it was planned ([`CatalogError::Conflict`]).
    fn apply_import(&self, plan: &import::Plan, datasets: &[import::ImportedDataset], time: &str) -> Result<(), CatalogError>;
}

/// Full-text search over the datasets ([`search`]), in step with every write.
pub trait DatasetSearch: Send + Sync {
    fn search(&self, query: &search::SearchQuery) -> Result<search::SearchResults, CatalogError>;
}

/// Everything the broker needs from its metadata graph.
pub trait Catalog:
    MemberRegistry + DatasetCatalog + PolicyCatalog + SparqlService + CatalogDocuments + CatalogImport + DatasetSearch + CatalogBackup
{
}
impl<T: MemberRegistry + DatasetCatalog + PolicyCatalog + SparqlService + CatalogDocuments + CatalogImport + DatasetSearch + CatalogBackup>
    Catalog for T
{
}

/// What a catalog holds, counted: a backup states it, a restore checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogCounts {
    /// Statements members can query.
    pub quads: u64,
    /// Statements the broker keeps to itself.
    pub private_quads: u64,
    pub members: u64,
    pub datasets: u64,
}

/// A consistent copy of the whole catalog, while it is in use (`broker backup`).
pub trait CatalogBackup: Send + Sync {
    /// Writes the catalog into `dir` (created; it must not exist) as a store that opens like
    /// the original, and returns what the copy holds with the identifiers of its datasets. No
    /// write is in progress while the copy is taken.
    fn backup_to(&self, dir: &Path) -> Result<(CatalogCounts, Vec<DatasetId>), CatalogError>;
    /// What the catalog holds now.
    fn counts(&self) -> Result<CatalogCounts, CatalogError>;
}
