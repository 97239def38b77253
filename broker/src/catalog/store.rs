//! The embedded catalog: oxigraph on RocksDB in a data directory, or in memory for tests.
//!
//! Writes go through one mutex so that "insert if absent" and "replace if present" are atomic
//! within this process; each write is a single oxigraph transaction, so a failure leaves the
//! graph as it was. (Several broker replicas will need a shared store with its own concurrency
//! control; the traits in [`super`] are the seam for that.)

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use oxigraph::model::{GraphNameRef, NamedNode, NamedNodeRef, NamedOrBlankNode, Quad, Term, Triple};
use oxigraph::store::{StorageError, Store, Transaction};
use policy_compiler::ir::Policy;

use super::dcat::{self, Graph, Iris};
use super::documents::{self, Page, RdfSyntax, SpaceCatalog};
use super::import::{self, ImportedDataset, Plan, Refused};
use super::policy::{self as policy_graph, PolicyStatus, PolicyVersion, Review};
use super::search;
use super::sparql::{self, QueryLimits, QueryOutput, SparqlError};
use super::{
    CatalogDocuments, CatalogError, CatalogImport, Dataset, DatasetCatalog, DatasetFilter, DatasetId, Member, MemberRegistry,
    PolicyCatalog, SparqlService, Tombstone,
};
use crate::identity::Ags;

pub struct OxigraphCatalog {
    store: Store,
    /// What the broker keeps to itself (where it fetches each distribution, the members'
    /// provider origins): a store of its own, which no member query ever reads (the query
    /// workers open only `store`). Queries over `store` see every graph in it, the default
    /// graph included, so "not in a queryable graph" means "not in `store`".
    private: Store,
    iris: Iris,
    writes: Mutex<()>,
    running_queries: Arc<AtomicUsize>,
    /// Bumped by every write: the SPARQL workers' snapshots are of one generation.
    generation: Arc<std::sync::atomic::AtomicU64>,
    on_disk: bool,
    workers: Option<super::isolated::Isolated>,
    /// The public datasets' identifiers, sorted, of one generation (what harvest pages cut).
    public_ids: Mutex<Option<(u64, Arc<Vec<DatasetId>>)>>,
    /// The text index over the datasets ([`search`]), fed by every dataset write.
    search: search::SearchIndex,
    /// Searches and on-request validations running now: each is bounded, so that no caller
    /// can queue more of them than there are cores to run them.
    searching: AtomicUsize,
    validating: AtomicUsize,
    /// Findings of on-request validations, by dataset, of one catalog generation.
    findings: Mutex<std::collections::HashMap<DatasetId, (u64, Vec<super::shacl::Finding>)>>,
}

/// Most searches at once (they take milliseconds; more wait as busy, 503).
const MAX_SEARCHES: usize = 8;
/// Most on-request validations at once.
const MAX_VALIDATIONS: usize = 2;

/// One of a bounded number of places, given back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(count: &'a AtomicUsize, max: usize, what: &str) -> Result<Self, CatalogError> {
        if count.fetch_add(1, Ordering::SeqCst) >= max {
            count.fetch_sub(1, Ordering::SeqCst);
            return Err(CatalogError::Busy(format!("{max} {what} are running; try again in a moment")));
        }
        Ok(Self(count))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for OxigraphCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OxigraphCatalog").field("iris", &self.iris).finish_non_exhaustive()
    }
}

/// Validates statements against the DCAT-AP.de shapes ([`shacl`]).
fn validate(triples: &[Triple]) -> Result<Vec<super::shacl::Finding>, CatalogError> {
    Ok(super::shacl::validator()?.validate(triples)?)
}

fn storage(e: StorageError) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

/// Where the private store of the store in `dir` lives: beside it (`<dir>-private`).
pub fn private_dir(dir: &Path) -> std::path::PathBuf {
    let mut name = dir.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_else(|| "store".into());
    name.push("-private");
    dir.with_file_name(name)
}

/// One transaction on `store`: `remove`, then `insert`.
fn apply(store: &Store, remove: &[Quad], insert: &[Quad]) -> Result<(), CatalogError> {
    let mut tx = store.start_transaction().map_err(storage)?;
    for q in remove {
        tx.remove(q.as_ref());
    }
    for q in insert {
        tx.insert(q.as_ref());
    }
    tx.commit().map_err(storage)
}

impl OxigraphCatalog {
    /// Opens (or creates) a RocksDB-backed store in `dir`.
    #[cfg(feature = "rocksdb")]
    pub fn open(dir: &Path, base_iri: &str) -> Result<Self, CatalogError> {
        std::fs::create_dir_all(dir).map_err(|e| CatalogError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        let private_dir = private_dir(dir);
        std::fs::create_dir_all(&private_dir)
            .map_err(|e| CatalogError::Storage(format!("cannot create {}: {e}", private_dir.display())))?;
        let private = Store::open(&private_dir).map_err(storage)?;
        let mut catalog = Self::with_store(Store::open(dir).map_err(storage)?, private, base_iri)?;
        catalog.on_disk = true;
        let upgraded = catalog.upgrade()?;
        if upgraded > 0 {
            tracing::info!(upgraded, "rewrote what an earlier version stored in the current DCAT-AP.de form");
        }
        Ok(catalog)
    }

    /// Rewrites, in the current form, what an earlier version of the broker stored: datasets
    /// with `dct:mediaType` and the provider's address as their public `dcat:accessURL`,
    /// members with their provider origins in the queryable members graph. Returns how many
    /// members and datasets were rewritten (none when the store is current).
    pub fn upgrade(&self) -> Result<usize, CatalogError> {
        let old_media = NamedNode::new_unchecked(format!("{}mediaType", crate::ns::DCT));
        let origin = NamedNode::new_unchecked(format!("{}providerOrigin", crate::identity::NS));
        let members = NamedNode::new_unchecked(self.iris.members_graph());
        let any =
            |p: &NamedNode, g: Option<GraphNameRef<'_>>| self.store.quads_for_pattern(None, Some(p.as_ref()), None, g).next().is_some();
        let mut rewritten = 0;
        if any(&origin, Some(members.as_ref().into())) {
            for m in self.members()? {
                self.put_member(&m)?;
                rewritten += 1;
            }
        }
        if any(&old_media, None) {
            for id in self.graphs_under::<DatasetId>(&self.iris.datasets_prefix()) {
                // An imported dataset is kept as its graph; the typed model would lose what
                // it has no field for.
                if self.own_literal(&id, import::IMPORTED_FROM)?.is_some() {
                    continue;
                }
                if let Some(d) = self.dataset(&id)? {
                    self.write_dataset(&d, true, false)?;
                    rewritten += 1;
                }
            }
        }
        Ok(rewritten)
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
        Self::with_store(Store::new().map_err(storage)?, Store::new().map_err(storage)?, base_iri)
    }

    fn with_store(store: Store, private: Store, base_iri: &str) -> Result<Self, CatalogError> {
        Ok(Self {
            store,
            private,
            iris: Iris::new(base_iri),
            writes: Mutex::new(()),
            running_queries: Arc::new(AtomicUsize::new(0)),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            on_disk: false,
            workers: None,
            public_ids: Mutex::new(None),
            search: search::SearchIndex::new().map_err(|e| CatalogError::Storage(e.to_string()))?,
            searching: AtomicUsize::new(0),
            validating: AtomicUsize::new(0),
            findings: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Brings the text index in step with datasets just written or withdrawn. The graph is
    /// the truth: a failure here leaves the index stale, to be rebuilt before the next search.
    fn reindex(&self, written: &[DatasetId], withdrawn: &[DatasetId]) {
        let entries: Result<Vec<_>, _> = written
            .iter()
            .map(|id| self.dataset_triples(id).map(|t| search::Entry::from_triples(id, &t, &self.iris)))
            .collect();
        let result = match entries {
            Ok(entries) => self.search.update(entries, withdrawn).map_err(|e| e.to_string()),
            Err(e) => {
                // Unread, the written ones would be missing: rebuild everything instead.
                self.search.mark_stale();
                Err(e.to_string())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "the search index fell behind the catalog; it is rebuilt before the next search");
        }
    }

    /// Every dataset's index entry, read from the graph under the write lock (one state of it).
    fn search_entries(&self) -> Result<Vec<search::Entry>, CatalogError> {
        let _guard = self.lock();
        let mut entries = Vec::new();
        for id in self.graphs_under::<DatasetId>(&self.iris.datasets_prefix()) {
            let triples = self.dataset_triples(&id)?;
            if !triples.is_empty() {
                entries.push(search::Entry::from_triples(&id, &triples, &self.iris));
            }
        }
        Ok(entries)
    }

    /// Builds the text index now (the server does at start, in the background), so that the
    /// first search does not wait for it.
    pub fn warm_search(&self) -> Result<(), CatalogError> {
        self.search
            .rebuild(|| self.search_entries())
            .map_err(|e| CatalogError::Storage(e.to_string()))
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
        Ok(self.store.len().map_err(storage)? + self.private.len().map_err(storage)?)
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

    /// Replaces everything the members graph says of `ags` with `quads` (those in the default
    /// graph go to the private store).
    fn replace_member(&self, ags: &Ags, quads: Vec<Quad>) -> Result<(), CatalogError> {
        let subject = NamedNode::new_unchecked(self.iris.member(ags));
        let graph = NamedNode::new_unchecked(self.iris.members_graph());
        let catalog = NamedNode::new_unchecked(self.iris.member_catalog(ags));
        let _guard = self.lock();
        let mut old = self.subject_quads(&subject, &graph)?;
        old.extend(self.subject_quads(&catalog, &graph)?);
        let old_private = self.private_quads(&subject, None)?;
        let (private, public): (Vec<Quad>, Vec<Quad>) = quads.into_iter().partition(|q| q.graph_name.is_default_graph());
        self.write_private_then_public(&old_private, &private, |tx| {
            for q in &old {
                tx.remove(q.as_ref());
            }
            for q in &public {
                tx.insert(q.as_ref());
            }
            Ok(())
        })?;
        self.changed();
        Ok(())
    }

    /// Changes the private store, then the graph. The private change goes first: should the
    /// process end between the two, the addresses no longer match the distributions in the
    /// graph, so their digest no longer matches what a board approved and the dataset is not
    /// shared (fail closed) until its steward writes it again. Should the graph's transaction
    /// fail, the private change is undone.
    fn write_private_then_public(
        &self,
        remove: &[Quad],
        insert: &[Quad],
        public: impl FnOnce(&mut Transaction<'_>) -> Result<(), CatalogError>,
    ) -> Result<(), CatalogError> {
        apply(&self.private, remove, insert)?;
        let result = self.store.start_transaction().map_err(storage).and_then(|mut tx| {
            public(&mut tx)?;
            tx.commit().map_err(storage)
        });
        if let Err(e) = result {
            if let Err(undo) = apply(&self.private, insert, remove) {
                tracing::error!(%undo, "the private statements of a failed change could not be restored");
            }
            return Err(e);
        }
        Ok(())
    }

    /// What the private store says of `subject`, with `predicate` if given.
    fn private_quads(&self, subject: &NamedNode, predicate: Option<&str>) -> Result<Vec<Quad>, CatalogError> {
        let predicate = predicate.map(NamedNode::new_unchecked);
        self.private
            .quads_for_pattern(
                Some(subject.as_ref().into()),
                predicate.as_ref().map(NamedNode::as_ref),
                None,
                Some(GraphNameRef::DefaultGraph),
            )
            .collect::<Result<Vec<Quad>, _>>()
            .map_err(storage)
    }

    /// A dataset's graph together with its private statements (where its data is fetched from).
    fn dataset_graph(&self, graph_name: &NamedNode) -> Result<(Vec<Quad>, Vec<Quad>), CatalogError> {
        let public = self
            .store
            .quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(graph_name.as_ref())))
            .collect::<Result<Vec<Quad>, _>>()
            .map_err(storage)?;
        let distribution = NamedNode::new_unchecked(format!("{}distribution", crate::ns::DCAT));
        let mut private = Vec::new();
        for q in public
            .iter()
            .filter(|q| q.predicate == distribution && q.subject.as_ref() == graph_name.as_ref().into())
        {
            if let oxigraph::model::Term::NamedNode(node) = &q.object {
                private.extend(self.private_quads(node, Some(dcat::FETCH_FROM))?);
            }
        }
        Ok((public, private))
    }

    /// The members graph with the members' private statements (their provider origins).
    fn members_graph(&self) -> Result<Graph, CatalogError> {
        let graph_iri = NamedNode::new_unchecked(self.iris.members_graph());
        let origin = NamedNode::new_unchecked(format!("{}providerOrigin", crate::identity::NS));
        let quads = self
            .store
            .quads_for_pattern(None, None, None, Some(graph_iri.as_ref().into()))
            .chain(
                self.private
                    .quads_for_pattern(None, Some(origin.as_ref()), None, Some(GraphNameRef::DefaultGraph)),
            )
            .collect::<Result<Vec<Quad>, _>>()
            .map_err(storage)?;
        Ok(Graph::from_quads(quads))
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

    /// Writes a dataset's description; `checked`: only if it meets the DCAT-AP.de shapes
    /// (what an earlier version stored is rewritten as it is).
    fn write_dataset(&self, dataset: &Dataset, must_exist: bool, checked: bool) -> Result<(), CatalogError> {
        let graph = NamedNode::new_unchecked(self.iris.dataset(&dataset.id));
        let (private, public): (Vec<Quad>, Vec<Quad>) = dcat::dataset_to_quads(dataset, &self.iris)
            .into_iter()
            .partition(|q| q.graph_name.is_default_graph());
        if checked {
            // Before the lock: validation takes milliseconds and reads nothing it writes.
            let mut triples: Vec<Triple> = public
                .iter()
                .map(|q| Triple::new(q.subject.clone(), q.predicate.clone(), q.object.clone()))
                .collect();
            triples.extend(self.publisher_triples(&dataset.publisher)?);
            let findings = validate(&triples)?;
            if findings.iter().any(|f| f.severity == super::shacl::Severity::Violation) {
                return Err(CatalogError::NotDcatApDe {
                    dataset: dataset.id.clone(),
                    findings: findings
                        .into_iter()
                        .filter(|f| f.severity == super::shacl::Severity::Violation)
                        .collect(),
                });
            }
        }
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
        let old_private = if exists { self.dataset_graph(&graph)?.1 } else { Vec::new() };
        self.write_private_then_public(&old_private, &private, |tx| {
            if exists {
                tx.remove_named_graph(graph.as_ref()).map_err(storage)?;
            }
            tx.insert_named_graph(graph.as_ref());
            for q in &public {
                tx.insert(q.as_ref());
            }
            Ok(())
        })?;
        self.changed();
        self.reindex(std::slice::from_ref(&dataset.id), &[]);
        Ok(())
    }
}

impl super::CatalogBackup for OxigraphCatalog {
    /// RocksDB checkpoints of both stores (hard links where `dir` is on the same file system),
    /// taken under the write lock, so the queryable and the private store are of one moment.
    #[cfg(feature = "rocksdb")]
    fn backup_to(&self, dir: &Path) -> Result<(super::CatalogCounts, Vec<DatasetId>), CatalogError> {
        if !self.on_disk {
            return Err(CatalogError::Storage("a catalog in memory has nothing to back up".into()));
        }
        let _guard = self.lock();
        let graph = dir.join("graph");
        self.store.backup(&graph).map_err(storage)?;
        self.private.backup(private_dir(&graph)).map_err(storage)?;
        Ok((self.counts()?, self.graphs_under::<DatasetId>(&self.iris.datasets_prefix())))
    }

    #[cfg(not(feature = "rocksdb"))]
    fn backup_to(&self, _dir: &Path) -> Result<(super::CatalogCounts, Vec<DatasetId>), CatalogError> {
        Err(CatalogError::Storage(
            "this broker was built without RocksDB and keeps nothing to back up".into(),
        ))
    }

    fn counts(&self) -> Result<super::CatalogCounts, CatalogError> {
        let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
        Ok(super::CatalogCounts {
            quads: n(self.store.len().map_err(storage)?),
            private_quads: n(self.private.len().map_err(storage)?),
            members: n(self.members()?.len()),
            datasets: n(self.graphs_under::<DatasetId>(&self.iris.datasets_prefix()).len()),
        })
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
        let graph = self.members_graph()?;
        Ok(dcat::member_from_graph(&graph, &self.iris.member(ags), &self.iris))
    }

    fn members(&self) -> Result<Vec<Member>, CatalogError> {
        let graph_iri = NamedNode::new_unchecked(self.iris.members_graph());
        let graph = self.members_graph()?;
        let type_pred = NamedNodeRef::new_unchecked("http://purl.org/dc/terms/identifier");
        let mut members: Vec<Member> = self
            .store
            .quads_for_pattern(None, Some(type_pred), None, Some(graph_iri.as_ref().into()))
            .filter_map(Result::ok)
            .filter_map(|q| match q.subject {
                NamedOrBlankNode::NamedNode(s) => dcat::member_from_graph(&graph, s.as_str(), &self.iris),
                _ => None,
            })
            .collect();
        members.sort_by(|a, b| a.ags.cmp(&b.ags));
        Ok(members)
    }
}

impl DatasetCatalog for OxigraphCatalog {
    fn insert_dataset(&self, dataset: &Dataset) -> Result<(), CatalogError> {
        self.write_dataset(dataset, false, true)
    }

    fn replace_dataset(&self, dataset: &Dataset) -> Result<(), CatalogError> {
        self.write_dataset(dataset, true, true)
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
        let (_, private) = self.dataset_graph(&graph)?;
        let mut tx = self.store.start_transaction().map_err(storage)?;
        tx.remove_named_graph(graph.as_ref()).map_err(storage)?;
        self.deactivate(&mut tx, id)?;
        for q in dcat::tombstone_to_quads(&tombstone, &self.iris) {
            tx.insert(q.as_ref());
        }
        tx.commit().map_err(storage)?;
        self.changed();
        self.reindex(&[], std::slice::from_ref(id));
        // Withdrawn, its identifier never used again: nothing reads its addresses any more.
        if let Err(e) = apply(&self.private, &private, &[]) {
            tracing::warn!(dataset = %id, error = %e, "the withdrawn dataset's provider addresses could not be removed");
        }
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
        let (public, private) = self.dataset_graph(&graph_name)?;
        let graph = Graph::from_quads(public.into_iter().chain(private));
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

    fn datasets_with_drafts(&self) -> Result<Vec<DatasetId>, CatalogError> {
        let records = NamedNode::new_unchecked(self.iris.policy_records_graph());
        let status = NamedNode::new_unchecked(format!("{}status", policy_graph::KDR));
        let of_dataset = NamedNode::new_unchecked(format!("{}dataset", policy_graph::KDR));
        let draft = oxigraph::model::Literal::new_simple_literal(PolicyStatus::Draft.as_str());
        let prefix = self.iris.datasets_prefix();
        let mut out = std::collections::BTreeSet::new();
        for q in self.store.quads_for_pattern(
            None,
            Some(status.as_ref()),
            Some(draft.as_ref().into()),
            Some(records.as_ref().into()),
        ) {
            let version = q.map_err(storage)?.subject;
            for d in self.store.quads_for_pattern(
                Some(version.as_ref()),
                Some(of_dataset.as_ref()),
                None,
                Some(records.as_ref().into()),
            ) {
                if let Term::NamedNode(n) = d.map_err(storage)?.object
                    && let Some(id) = n.as_str().strip_prefix(&prefix).and_then(|i| i.parse().ok())
                {
                    out.insert(id);
                }
            }
        }
        Ok(out.into_iter().collect())
    }
}

impl SparqlService for OxigraphCatalog {
    fn query(&self, query: &str, accept: &str, limits: &QueryLimits, member: &str) -> Result<QueryOutput, SparqlError> {
        match &self.workers {
            Some(w) => w.query(query, accept, limits, member),
            None => sparql::evaluate(&self.store, &self.running_queries, query, accept, limits),
        }
    }

    fn queries_running(&self) -> usize {
        self.running_queries()
    }
}

impl OxigraphCatalog {
    /// The identifiers of the datasets whose access rights are `PUBLIC`, sorted; computed once
    /// per generation of the graph.
    fn public_ids(&self) -> Result<Arc<Vec<DatasetId>>, CatalogError> {
        let generation = self.generation();
        let mut cached = self.public_ids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, ids)) = cached.as_ref().filter(|(g, _)| *g == generation) {
            return Ok(ids.clone());
        }
        let access = NamedNode::new_unchecked(format!("{}accessRights", crate::ns::DCT));
        let public = NamedNode::new_unchecked(format!("{}PUBLIC", crate::ns::ACCESS_RIGHT_PREFIX));
        let prefix = self.iris.datasets_prefix();
        let mut ids: Vec<DatasetId> = Vec::new();
        for q in self
            .store
            .quads_for_pattern(None, Some(access.as_ref()), Some(public.as_ref().into()), None)
        {
            let q = q.map_err(storage)?;
            let same =
                matches!((&q.subject, &q.graph_name), (NamedOrBlankNode::NamedNode(s), oxigraph::model::GraphName::NamedNode(g)) if s == g);
            if let (true, NamedOrBlankNode::NamedNode(s)) = (same, &q.subject)
                && let Some(id) = s.as_str().strip_prefix(&prefix).and_then(|k| k.parse().ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        ids.dedup();
        let ids = Arc::new(ids);
        *cached = Some((generation, ids.clone()));
        Ok(ids)
    }

    /// The statements of a dataset's graph, as triples.
    fn dataset_triples(&self, id: &DatasetId) -> Result<Vec<oxigraph::model::Triple>, CatalogError> {
        let graph = NamedNode::new_unchecked(self.iris.dataset(id));
        self.store
            .quads_for_pattern(None, None, None, Some(graph.as_ref().into()))
            .map(|q| q.map(|q| oxigraph::model::Triple::new(q.subject, q.predicate, q.object)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(storage)
    }

    /// What the members graph says of a publisher and its catalog (never its provider origins,
    /// which are not in that graph).
    fn publisher_triples(&self, ags: &Ags) -> Result<Vec<oxigraph::model::Triple>, CatalogError> {
        let graph = NamedNode::new_unchecked(self.iris.members_graph());
        let mut out = Vec::new();
        for subject in [self.iris.member(ags), self.iris.member_catalog(ags)] {
            for q in self.subject_quads(&NamedNode::new_unchecked(subject), &graph)? {
                out.push(oxigraph::model::Triple::new(q.subject, q.predicate, q.object));
            }
        }
        Ok(out)
    }

    fn publisher_of(triples: &[oxigraph::model::Triple], iris: &Iris, dataset_iri: &str) -> Option<Ags> {
        let publisher = format!("{}publisher", crate::ns::DCT);
        triples.iter().find_map(|t| match (&t.subject, &t.object) {
            (oxigraph::model::NamedOrBlankNode::NamedNode(s), oxigraph::model::Term::NamedNode(o))
                if s.as_str() == dataset_iri && t.predicate.as_str() == publisher =>
            {
                o.as_str().strip_prefix(&iris.member_prefix())?.parse().ok()
            }
            _ => None,
        })
    }
}

/// A document of `triples`, each written once (a node shared by several datasets, such as a
/// common contact point, is in each of their graphs).
fn document(triples: &[oxigraph::model::Triple], syntax: RdfSyntax) -> Result<Vec<u8>, CatalogError> {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<oxigraph::model::Triple> = triples.iter().filter(|t| seen.insert(*t)).cloned().collect();
    documents::serialize(&unique, syntax).map_err(|e| CatalogError::Storage(format!("cannot write the document: {e}")))
}

impl CatalogDocuments for OxigraphCatalog {
    fn dataset_document(&self, id: &DatasetId, syntax: RdfSyntax, public_only: bool) -> Result<Option<Vec<u8>>, CatalogError> {
        if public_only && self.public_ids()?.binary_search(id).is_err() {
            return Ok(None);
        }
        let mut triples = self.dataset_triples(id)?;
        if triples.is_empty() {
            return Ok(None);
        }
        if let Some(ags) = Self::publisher_of(&triples, &self.iris, &self.iris.dataset(id)) {
            triples.extend(self.publisher_triples(&ags)?);
        }
        document(&triples, syntax).map(Some)
    }

    fn dataset_findings(&self, id: &DatasetId) -> Result<Option<Vec<super::shacl::Finding>>, CatalogError> {
        let generation = self.generation();
        if let Ok(cache) = self.findings.lock()
            && let Some((g, findings)) = cache.get(id)
            && *g == generation
        {
            return Ok(Some(findings.clone()));
        }
        let _slot = Slot::take(&self.validating, MAX_VALIDATIONS, "validations")?;
        let mut triples = self.dataset_triples(id)?;
        if triples.is_empty() {
            return Ok(None);
        }
        if let Some(ags) = Self::publisher_of(&triples, &self.iris, &self.iris.dataset(id)) {
            triples.extend(self.publisher_triples(&ags)?);
        }
        let findings = validate(&triples)?;
        if let Ok(mut cache) = self.findings.lock() {
            // Of one generation at most; bounded, whoever asks for however many datasets.
            cache.retain(|_, (g, _)| *g == generation);
            if cache.len() < 1024 {
                cache.insert(id.clone(), (generation, findings.clone()));
            }
        }
        Ok(Some(findings))
    }

    fn harvest_page(
        &self,
        number: usize,
        per_page: usize,
        space: &SpaceCatalog,
        page_iri: &dyn Fn(usize) -> String,
        syntax: RdfSyntax,
    ) -> Result<Option<Vec<u8>>, CatalogError> {
        let ids = self.public_ids()?;
        let page = Page {
            number,
            per_page: per_page.max(1),
            total: ids.len(),
        };
        if number == 0 || number > page.last() {
            return Ok(None);
        }
        let start = (number - 1) * page.per_page;
        let on_page = &ids[start.min(ids.len())..(start + page.per_page).min(ids.len())];
        let mut triples = Vec::new();
        let mut publishers = std::collections::BTreeSet::new();
        for id in on_page {
            let t = self.dataset_triples(id)?;
            if let Some(ags) = Self::publisher_of(&t, &self.iris, &self.iris.dataset(id)) {
                publishers.insert(ags);
            }
            triples.extend(t);
        }
        for ags in &publishers {
            triples.extend(self.publisher_triples(ags)?);
        }
        let member_catalogs: Vec<String> = publishers.iter().map(|a| self.iris.member_catalog(a)).collect();
        let datasets: Vec<String> = on_page.iter().map(|id| self.iris.dataset(id)).collect();
        triples.extend(documents::space_catalog_triples(&self.iris, space, &member_catalogs, &datasets));
        triples.extend(documents::paging_triples(&page, page_iri));
        document(&triples, syntax).map(Some)
    }
}

impl OxigraphCatalog {
    /// The datasets earlier imported for `publisher` from `source`.
    fn imported_from(&self, publisher: &Ags, source: &str) -> Result<Vec<DatasetId>, CatalogError> {
        let from = NamedNode::new_unchecked(import::IMPORTED_FROM);
        let source = oxigraph::model::Literal::new_simple_literal(source);
        let prefix = self.iris.datasets_prefix();
        let mut ids = Vec::new();
        for q in self
            .store
            .quads_for_pattern(None, Some(from.as_ref()), Some(source.as_ref().into()), None)
        {
            let q = q.map_err(storage)?;
            if let NamedOrBlankNode::NamedNode(s) = &q.subject
                && let Some(id) = s.as_str().strip_prefix(&prefix).and_then(|k| k.parse::<DatasetId>().ok())
                && self.dataset(&id)?.is_some_and(|d| d.publisher == *publisher)
            {
                ids.push(id);
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// A literal statement of the dataset's graph about the dataset itself.
    fn own_literal(&self, id: &DatasetId, predicate: &str) -> Result<Option<String>, CatalogError> {
        let iri = NamedNode::new_unchecked(self.iris.dataset(id));
        let p = NamedNode::new_unchecked(predicate);
        let found = self
            .store
            .quads_for_pattern(Some(iri.as_ref().into()), Some(p.as_ref()), None, Some(iri.as_ref().into()))
            .next()
            .transpose()
            .map_err(storage)?;
        Ok(found.and_then(|q| match q.object {
            oxigraph::model::Term::Literal(l) => Some(l.value().to_owned()),
            _ => None,
        }))
    }
}

impl CatalogImport for OxigraphCatalog {
    fn plan_import(&self, publisher: &Ags, source: &str, datasets: &[ImportedDataset]) -> Result<Plan, CatalogError> {
        let generation = self.generation();
        let earlier = self.imported_from(publisher, source)?;
        let mut plan = Plan {
            source: source.to_owned(),
            publisher: publisher.to_string(),
            generation,
            ..Plan::default()
        };
        let mut publisher_triples = None;
        let mut findings = Vec::new();
        for d in datasets {
            if let Some(t) = self.tombstone(&d.id)? {
                plan.refused.push(Refused::new(
                    d.original.clone(),
                    format!(
                        "its identifier '{}' was withdrawn by {} on {}; a withdrawn identifier is never used again",
                        d.id, t.publisher, t.withdrawn
                    ),
                ));
                continue;
            }
            let update = earlier.binary_search(&d.id).is_ok();
            if update && self.own_literal(&d.id, import::IMPORT_DIGEST)?.as_deref() == Some(d.digest.as_str()) {
                plan.unchanged.push(d.id.clone());
                continue;
            }
            if !update && let Some(other) = self.dataset(&d.id)? {
                plan.refused.push(Refused::new(
                    d.original.clone(),
                    format!(
                        "its identifier '{}' is taken by a dataset of {} that was not imported from this source",
                        d.id, other.publisher
                    ),
                ));
                continue;
            }
            // What is written is validated with the publisher's description, as it is served.
            let context = match &publisher_triples {
                Some(t) => t,
                None => publisher_triples.insert(self.publisher_triples(publisher)?),
            };
            let mut triples = d.triples.clone();
            triples.extend(context.iter().cloned());
            let found = validate(&triples)?;
            if let Some(reason) = super::shacl::violations_summary(&found) {
                let mut refused = Refused::new(d.original.clone(), format!("it does not meet DCAT-AP.de 3.0: {reason}"));
                refused.findings = found
                    .into_iter()
                    .filter(|f| f.severity == super::shacl::Severity::Violation)
                    .collect();
                plan.refused.push(refused);
                continue;
            }
            findings.extend(found);
            if update {
                plan.updated.push(d.id.clone());
            } else {
                plan.imported.push(d.id.clone());
            }
        }
        plan.warnings = super::shacl::group_warnings(&findings);
        let now: std::collections::BTreeSet<&DatasetId> = datasets.iter().map(|d| &d.id).collect();
        plan.withdrawn = earlier.into_iter().filter(|id| !now.contains(id)).collect();
        Ok(plan)
    }

    fn apply_import(&self, plan: &Plan, datasets: &[ImportedDataset], time: &str) -> Result<(), CatalogError> {
        let _guard = self.lock();
        if self.generation() != plan.generation {
            return Err(CatalogError::Conflict("another change was made meanwhile".into()));
        }
        let publisher: Ags = plan
            .publisher
            .parse()
            .map_err(|e: crate::identity::IdentityError| CatalogError::Storage(e.to_string()))?;
        let writes: std::collections::BTreeSet<&DatasetId> = plan.imported.iter().chain(&plan.updated).collect();
        let mut tx = self.store.start_transaction().map_err(storage)?;
        for d in datasets.iter().filter(|d| writes.contains(&d.id)) {
            let graph = NamedNode::new_unchecked(self.iris.dataset(&d.id));
            tx.remove_named_graph(graph.as_ref()).map_err(storage)?;
            tx.insert_named_graph(graph.as_ref());
            let g = oxigraph::model::GraphName::NamedNode(graph.clone());
            for t in &d.triples {
                tx.insert(Quad::new(t.subject.clone(), t.predicate.clone(), t.object.clone(), g.clone()).as_ref());
            }
            let literal = |v: &str| oxigraph::model::Literal::new_simple_literal(v);
            for (p, o) in [
                (import::IMPORTED_FROM, literal(&plan.source)),
                (import::IMPORT_DIGEST, literal(&d.digest)),
                (
                    super::dcat::IMPORTED_AT,
                    oxigraph::model::Literal::new_typed_literal(time, oxigraph::model::vocab::xsd::DATE_TIME),
                ),
            ] {
                tx.insert(Quad::new(graph.clone(), NamedNode::new_unchecked(p), o, g.clone()).as_ref());
            }
        }
        for id in &plan.withdrawn {
            let graph = NamedNode::new_unchecked(self.iris.dataset(id));
            tx.remove_named_graph(graph.as_ref()).map_err(storage)?;
            self.deactivate(&mut tx, id)?;
            let t = Tombstone {
                id: id.clone(),
                publisher: publisher.clone(),
                withdrawn: time.to_owned(),
            };
            for q in dcat::tombstone_to_quads(&t, &self.iris) {
                tx.insert(q.as_ref());
            }
        }
        tx.commit().map_err(storage)?;
        self.changed();
        let written: Vec<DatasetId> = writes.into_iter().cloned().collect();
        self.reindex(&written, &plan.withdrawn);
        Ok(())
    }
}

impl super::DatasetSearch for OxigraphCatalog {
    fn search(&self, query: &search::SearchQuery) -> Result<search::SearchResults, CatalogError> {
        let _slot = Slot::take(&self.searching, MAX_SEARCHES, "searches")?;
        if self.search.is_stale() {
            self.warm_search()?;
        }
        self.search.search(query).map_err(|e| CatalogError::Storage(e.to_string()))
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
