//! The embedded catalog: oxigraph on RocksDB in a data directory, or in memory for tests.
//!
//! Writes go through one mutex so that "insert if absent" and "replace if present" are atomic
//! within this process; each write is a single oxigraph transaction, so a failure leaves the
//! graph as it was. (Several broker replicas will need a shared store with its own concurrency
//! control; the traits in [`super`] are the seam for that.)

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use oxigraph::model::{GraphNameRef, NamedNode, NamedNodeRef, NamedOrBlankNode, Quad};
use oxigraph::store::{StorageError, Store, Transaction};
use policy_compiler::ir::Policy;

use super::dcat::{self, Graph, Iris};
use super::policy::{self as policy_graph, PolicyStatus, PolicyVersion, Review};
use super::sparql::{self, QueryLimits, QueryOutput, SparqlError};
use super::{
    CatalogError, Dataset, DatasetCatalog, DatasetFilter, DatasetId, Member, MemberRegistry, PolicyCatalog, SparqlService, Tombstone,
};
use crate::identity::Ags;

pub struct OxigraphCatalog {
    store: Store,
    iris: Iris,
    writes: Mutex<()>,
    running_queries: Arc<AtomicUsize>,
    /// Bumped by every write: the SPARQL workers' snapshots are of one generation.
    generation: Arc<std::sync::atomic::AtomicU64>,
    on_disk: bool,
    workers: Option<super::isolated::Isolated>,
}

impl std::fmt::Debug for OxigraphCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OxigraphCatalog").field("iris", &self.iris).finish_non_exhaustive()
    }
}

fn storage(e: StorageError) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

impl OxigraphCatalog {
    /// Opens (or creates) a RocksDB-backed store in `dir`.
    #[cfg(feature = "rocksdb")]
    pub fn open(dir: &Path, base_iri: &str) -> Result<Self, CatalogError> {
        std::fs::create_dir_all(dir).map_err(|e| CatalogError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        let mut catalog = Self::with_store(Store::open(dir).map_err(storage)?, base_iri);
        catalog.on_disk = true;
        Ok(catalog)
    }

    /// Answers SPARQL queries in worker processes ([`super::isolated`]) from now on.
    #[must_use]
    pub fn with_workers(mut self, settings: super::isolated::WorkerSettings) -> Self {
        self.workers = Some(super::isolated::Isolated::new(
            self.store.clone(),
            self.on_disk,
            settings,
            self.generation.clone(),
        ));
        self
    }

    /// A write was committed: queries from now on see a new generation of the graph.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Without the `rocksdb` feature there is no persistent store.
    #[cfg(not(feature = "rocksdb"))]
    pub fn open(dir: &Path, _base_iri: &str) -> Result<Self, CatalogError> {
        Err(CatalogError::Storage(format!(
            "this broker was built without RocksDB and cannot open the store in {}",
            dir.display()
        )))
    }

    /// A store that lives only as long as the process.
    pub fn in_memory(base_iri: &str) -> Result<Self, CatalogError> {
        Ok(Self::with_store(Store::new().map_err(storage)?, base_iri))
    }

    fn with_store(store: Store, base_iri: &str) -> Self {
        Self {
            store,
            iris: Iris::new(base_iri),
            writes: Mutex::new(()),
            running_queries: Arc::new(AtomicUsize::new(0)),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            on_disk: false,
            workers: None,
        }
    }

    pub fn iris(&self) -> &Iris {
        &self.iris
    }

    /// SPARQL queries still evaluating: in workers, or in this process (including any that
    /// passed their deadline and have not noticed their cancellation yet).
    pub fn running_queries(&self) -> usize {
        self.workers.as_ref().map_or(0, |w| w.running()) + self.running_queries.load(Ordering::SeqCst)
    }

    /// Number of quads in the whole store (for tests that check nothing was half-written).
    pub fn quad_count(&self) -> Result<usize, CatalogError> {
        self.store.len().map_err(storage)
    }

    fn graph(&self, graph: &NamedNode) -> Result<Graph, CatalogError> {
        let quads = self
            .store
            .quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(graph.as_ref())))
            .collect::<Result<Vec<Quad>, _>>()
            .map_err(storage)?;
        Ok(Graph::from_quads(quads))
    }

    /// The named graphs `<prefix><key>` whose key parses as `K`, sorted by key.
    fn graphs_under<K: std::str::FromStr + Ord>(&self, prefix: &str) -> Vec<K> {
        let mut keys: Vec<K> = self
            .store
            .named_graphs()
            .filter_map(Result::ok)
            .filter_map(|g| match g {
                NamedOrBlankNode::NamedNode(n) => n.as_str().strip_prefix(prefix)?.parse().ok(),
                _ => None,
            })
            .collect();
        keys.sort();
        keys
    }

    /// Replaces everything the members graph says of `ags` with `quads`, in one transaction.
    fn replace_member(&self, ags: &Ags, quads: Vec<Quad>) -> Result<(), CatalogError> {
        let subject = NamedNode::new_unchecked(self.iris.member(ags));
        let graph = NamedNode::new_unchecked(self.iris.members_graph());
        let _guard = self.lock();
        let old = self.subject_quads(&subject, &graph)?;
        let mut tx = self.store.start_transaction().map_err(storage)?;
        for q in &old {
            tx.remove(q.as_ref());
        }
        for q in &quads {
            tx.insert(q.as_ref());
        }
        tx.commit().map_err(storage)?;
        self.changed();
        Ok(())
    }

    /// The statements about `subject` in `graph`.
    fn subject_quads(&self, subject: &NamedNode, graph: &NamedNode) -> Result<Vec<Quad>, CatalogError> {
        self.store
            .quads_for_pattern(Some(subject.as_ref().into()), None, None, Some(graph.as_ref().into()))
            .collect::<Result<Vec<Quad>, _>>()
            .map_err(storage)
    }

    /// Takes the dataset's active version (if any) out of force, within `tx`.
    fn deactivate(&self, tx: &mut Transaction<'_>, dataset: &DatasetId) -> Result<(), CatalogError> {
        let records = NamedNode::new_unchecked(self.iris.policy_records_graph());
        let dataset_iri = NamedNode::new_unchecked(self.iris.dataset(dataset));
        let has_policy = NamedNode::new_unchecked(format!("{}hasPolicy", policy_graph::ODRL));
        for q in self.store.quads_for_pattern(
            Some(dataset_iri.as_ref().into()),
            Some(has_policy.as_ref()),
            None,
            Some(records.as_ref().into()),
        ) {
            tx.remove(q.map_err(storage)?.as_ref());
        }
        Ok(())
    }

    /// The tombstone graph: one statement set per withdrawn dataset.
    fn tombstones_graph(&self) -> NamedNode {
        NamedNode::new_unchecked(self.iris.tombstones_graph())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_dataset(&self, dataset: &Dataset, must_exist: bool) -> Result<(), CatalogError> {
        let graph = NamedNode::new_unchecked(self.iris.dataset(&dataset.id));
        let _guard = self.lock();
        let exists = self.store.contains_named_graph(graph.as_ref()).map_err(storage)?;
        match (must_exist, exists) {
            (true, false) => return Err(CatalogError::NoSuchDataset(dataset.id.clone())),
            (false, true) => return Err(CatalogError::DatasetExists(dataset.id.clone())),
            (false, false) => {
                if let Some(t) = self.tombstone(&dataset.id)? {
                    return Err(CatalogError::DatasetWithdrawn(Box::new(t)));
                }
            }
            (true, true) => {}
        }
        let mut tx = self.store.start_transaction().map_err(storage)?;
        if exists {
            tx.remove_named_graph(graph.as_ref()).map_err(storage)?;
        }
        tx.insert_named_graph(graph.as_ref());
        for q in dcat::dataset_to_quads(dataset, &self.iris) {
            tx.insert(q.as_ref());
        }
        tx.commit().map_err(storage)?;
        self.changed();
        Ok(())
    }
}

impl MemberRegistry for OxigraphCatalog {
    fn put_member(&self, member: &Member) -> Result<(), CatalogError> {
        self.replace_member(&member.ags, dcat::member_to_quads(member, &self.iris))
    }

    fn remove_member(&self, ags: &Ags) -> Result<(), CatalogError> {
        self.replace_member(ags, Vec::new())
    }

    fn member(&self, ags: &Ags) -> Result<Option<Member>, CatalogError> {
        let graph = self.graph(&NamedNode::new_unchecked(self.iris.members_graph()))?;
        Ok(dcat::member_from_graph(&graph, &self.iris.member(ags)))
    }

    fn members(&self) -> Result<Vec<Member>, CatalogError> {
        let graph_iri = NamedNode::new_unchecked(self.iris.members_graph());
        let graph = self.graph(&graph_iri)?;
        let type_pred = NamedNodeRef::new_unchecked("http://purl.org/dc/terms/identifier");
        let mut members: Vec<Member> = self
            .store
            .quads_for_pattern(None, Some(type_pred), None, Some(graph_iri.as_ref().into()))
            .filter_map(Result::ok)
            .filter_map(|q| match q.subject {
                NamedOrBlankNode::NamedNode(s) => dcat::member_from_graph(&graph, s.as_str()),
                _ => None,
            })
            .collect();
        members.sort_by(|a, b| a.ags.cmp(&b.ags));
        Ok(members)
    }
}

impl DatasetCatalog for OxigraphCatalog {
    fn insert_dataset(&self, dataset: &Dataset) -> Result<(), CatalogError> {
        self.write_dataset(dataset, false)
    }

    fn replace_dataset(&self, dataset: &Dataset) -> Result<(), CatalogError> {
        self.write_dataset(dataset, true)
    }

    fn withdraw_dataset(&self, id: &DatasetId, time: &str) -> Result<Tombstone, CatalogError> {
        let graph = NamedNode::new_unchecked(self.iris.dataset(id));
        let _guard = self.lock();
        if !self.store.contains_named_graph(graph.as_ref()).map_err(storage)? {
            return Err(CatalogError::NoSuchDataset(id.clone()));
        }
        let publisher = self
            .dataset(id)?
            .map(|d| d.publisher)
            .ok_or_else(|| CatalogError::Storage(format!("dataset '{id}' cannot be read back")))?;
        let tombstone = Tombstone {
            id: id.clone(),
            publisher,
            withdrawn: time.to_owned(),
        };
        let mut tx = self.store.start_transaction().map_err(storage)?;
        tx.remove_named_graph(graph.as_ref()).map_err(storage)?;
        self.deactivate(&mut tx, id)?;
        for q in dcat::tombstone_to_quads(&tombstone, &self.iris) {
            tx.insert(q.as_ref());
        }
        tx.commit().map_err(storage)?;
        self.changed();
        Ok(tombstone)
    }

    fn tombstone(&self, id: &DatasetId) -> Result<Option<Tombstone>, CatalogError> {
        let subject = NamedNode::new_unchecked(self.iris.dataset(id));
        let quads = self.subject_quads(&subject, &self.tombstones_graph())?;
        if quads.is_empty() {
            return Ok(None);
        }
        Ok(dcat::tombstone_from_graph(&Graph::from_quads(quads), id, &self.iris))
    }

    fn dataset(&self, id: &DatasetId) -> Result<Option<Dataset>, CatalogError> {
        let iri = self.iris.dataset(id);
        let graph_name = NamedNode::new_unchecked(iri.as_str());
        if !self.store.contains_named_graph(graph_name.as_ref()).map_err(storage)? {
            return Ok(None);
        }
        let graph = self.graph(&graph_name)?;
        Ok(dcat::dataset_from_graph(&graph, &iri, &self.iris))
    }

    fn dataset_iri(&self, id: &DatasetId) -> String {
        self.iris.dataset(id)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn datasets(&self, filter: &DatasetFilter) -> Result<Vec<Dataset>, CatalogError> {
        let ids: Vec<DatasetId> = self.graphs_under(&self.iris.datasets_prefix());
        let mut out = Vec::new();
        for id in ids {
            if let Some(d) = self.dataset(&id)?.filter(|d| filter.matches(d)) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

impl PolicyCatalog for OxigraphCatalog {
    fn submit_policy(&self, policy: &PolicyVersion, ir: &Policy) -> Result<PolicyVersion, CatalogError> {
        let _guard = self.lock();
        let dataset_graph = NamedNode::new_unchecked(self.iris.dataset(&policy.dataset));
        if !self.store.contains_named_graph(dataset_graph.as_ref()).map_err(storage)? {
            return Err(CatalogError::NoSuchDataset(policy.dataset.clone()));
        }
        let earlier = self.policy_versions(&policy.dataset)?;
        let mut stored = policy.clone();
        stored.version = earlier.last().map_or(1, |p| p.version + 1);
        if policy.version != stored.version {
            return Err(CatalogError::PolicyVersionTaken {
                dataset: policy.dataset.clone(),
                version: policy.version,
            });
        }
        stored.status = PolicyStatus::Draft;
        stored.review = None;
        stored.active = false;
        let content = policy_graph::content_quads(&stored, ir, &self.iris);
        let record = policy_graph::record_quads(&stored, &self.iris);
        let mut tx = self.store.start_transaction().map_err(storage)?;
        tx.insert_named_graph(NamedNode::new_unchecked(self.iris.policy_version(&stored.dataset, stored.version)).as_ref());
        for q in content.iter().chain(&record) {
            tx.insert(q.as_ref());
        }
        tx.commit().map_err(storage)?;
        self.changed();
        Ok(stored)
    }

    fn review_policy(&self, dataset: &DatasetId, version: u32, review: &Review) -> Result<PolicyVersion, CatalogError> {
        let _guard = self.lock();
        let versions = self.policy_versions(dataset)?;
        let Some(draft) = versions.iter().find(|p| p.version == version) else {
            return Err(CatalogError::NoSuchPolicyVersion {
                dataset: dataset.clone(),
                version,
            });
        };
        if draft.status != PolicyStatus::Draft {
            return Err(CatalogError::NotADraft {
                dataset: dataset.clone(),
                version,
                status: draft.status,
            });
        }
        let mut reviewed = draft.clone();
        reviewed.status = if review.approved {
            PolicyStatus::Approved
        } else {
            PolicyStatus::Rejected
        };
        reviewed.review = Some(review.clone());
        reviewed.active = review.approved;
        let mut tx = self.store.start_transaction().map_err(storage)?;
        tx.remove(policy_graph::status_quad(draft, &self.iris).as_ref());
        tx.insert(policy_graph::status_quad(&reviewed, &self.iris).as_ref());
        for q in policy_graph::review_quads(&reviewed, review, &self.iris) {
            tx.insert(q.as_ref());
        }
        if review.approved {
            self.deactivate(&mut tx, dataset)?;
            tx.insert(policy_graph::has_policy_quad(&reviewed, &self.iris).as_ref());
        }
        tx.commit().map_err(storage)?;
        self.changed();
        Ok(reviewed)
    }

    fn policy_versions(&self, dataset: &DatasetId) -> Result<Vec<PolicyVersion>, CatalogError> {
        let records = NamedNode::new_unchecked(self.iris.policy_records_graph());
        let dataset_iri = NamedNode::new_unchecked(self.iris.dataset(dataset));
        let of_dataset = NamedNode::new_unchecked(format!("{}dataset", policy_graph::KDR));
        let mut out = Vec::new();
        for q in self.store.quads_for_pattern(
            None,
            Some(of_dataset.as_ref()),
            Some(dataset_iri.as_ref().into()),
            Some(records.as_ref().into()),
        ) {
            let NamedOrBlankNode::NamedNode(v) = q.map_err(storage)?.subject else {
                continue;
            };
            let mut quads = self.subject_quads(&v, &records)?;
            quads.extend(self.subject_quads(&dataset_iri, &records)?);
            if let Some(p) = policy_graph::policy_from_records(&Graph::from_quads(quads), v.as_str(), dataset, &self.iris) {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.version);
        Ok(out)
    }
}

impl SparqlService for OxigraphCatalog {
    fn query(&self, query: &str, accept: &str, limits: &QueryLimits, member: &str) -> Result<QueryOutput, SparqlError> {
        match &self.workers {
            Some(w) => w.query(query, accept, limits, member),
            None => sparql::evaluate(&self.store, &self.running_queries, query, accept, limits),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    #[test]
    fn datasets_and_members_round_trip_through_the_graph() {
        let c = OxigraphCatalog::in_memory("https://broker.test/").expect("store");
        for m in demo::demo_members() {
            c.put_member(&m).expect("member");
        }
        // Replacing a member leaves no stale triples behind.
        let mut members = demo::demo_members();
        c.put_member(&members[0]).expect("again");
        members.sort_by(|a, b| a.ags.cmp(&b.ags));
        assert_eq!(c.members().expect("members"), members);
        for d in demo::example_datasets().expect("examples") {
            c.insert_dataset(&d).expect("insert");
            assert_eq!(c.dataset(&d.id).expect("read"), Some(d.clone()), "{}", d.id);
            assert!(matches!(c.insert_dataset(&d), Err(CatalogError::DatasetExists(_))));
        }
        let all = c.datasets(&DatasetFilter::default()).expect("list");
        assert_eq!(all.len(), demo::EXAMPLE_DATASETS.len());
        let id: DatasetId = "aalen-kita-plaetze".parse().expect("id");
        c.withdraw_dataset(&id, "2026-12-01T10:00:00Z").expect("withdraw");
        assert_eq!(c.dataset(&id).expect("read"), None);
        assert!(matches!(
            c.withdraw_dataset(&id, "2026-12-01T10:00:00Z"),
            Err(CatalogError::NoSuchDataset(_))
        ));
        let d = demo::example_datasets()
            .expect("examples")
            .into_iter()
            .find(|d| d.id == id)
            .expect("kita");
        assert!(
            matches!(c.insert_dataset(&d), Err(CatalogError::DatasetWithdrawn(_))),
            "a withdrawn identifier is never registered again"
        );
    }
}
