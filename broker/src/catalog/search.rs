//! Full-text search over the datasets' titles, descriptions and keywords, with German analysis,
//! facets and paging, from a tantivy index kept in step with the graph.
//!
//! Why a text index and not SPARQL: `FILTER(CONTAINS(...))` reads every title of the store for
//! every query (seconds at 100,000 datasets), knows no stemming ("Parkhäuser" finds no
//! "Parkhaus") and no relevance. tantivy is the well-kept Lucene of Rust.
//!
//! Why in memory, built from the graph (by the server at start, in the background, or by the
//! first search): the graph is the one truth; an index on disk would be a second state to back
//! up, restore and keep consistent across a crash. The catalog feeds every change it commits
//! into the index ([`SearchIndex::update`]); should that fail, the index marks itself stale and
//! the catalog rebuilds it before the next search. A replica of the broker builds its own
//! index the same way.
//!
//! Why the query text is split into words here and not given to tantivy's query parser: a
//! search box is not a query language. Fields, ranges, boosts and phrase syntax in it would
//! reach the identifier and facet fields and the parser's own corner cases; words cannot.
//!
//! German analysis: words are lower-cased, German stop words dropped, stemmed with Snowball's
//! German stemmer (which folds umlauts and ß: "Baum", "Bäume" and "baume" meet), and what
//! remains is folded to ASCII, so "Straße", "strasse" and "STRASSE" are one word. Compounds
//! are not split ("Kataster" does not find "Baumkataster"): that needs a dictionary.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use oxigraph::model::{NamedOrBlankNode, Term, Triple};
use serde::Serialize;
use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, EmptyQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term as IndexTerm, doc};

use super::dcat::Iris;
use super::model::DatasetId;
use crate::ns::{DCAT, DCT, FILE_TYPE_PREFIX, LICENSES_PREFIX, THEME_PREFIX};

/// Longest query text accepted.
pub const MAX_QUERY_CHARS: usize = 500;
/// Most hits on one page.
pub const MAX_PER_PAGE: usize = 100;
/// Most distinct words of a query that count (the rest are ignored).
pub const MAX_QUERY_WORDS: usize = 32;
/// Most values of one facet in an answer (the most frequent).
pub const MAX_FACET_VALUES: usize = 50;
/// Hits beyond this one are not served (a page past it is empty): collecting them costs
/// memory per request, and nobody pages through ten thousand hits.
pub const MAX_HIT: usize = 10_000;
/// The facets every search answers with, and the filters it takes.
pub const FACETS: [&str; 4] = ["theme", "publisher", "licence", "format"];

/// A filter on one whole keyword (any case), as the plain list has it; not counted as a facet
/// (keywords are free text: counting them would let descriptions flood the answer).
pub const KEYWORD: &str = "keyword";

const GERMAN: &str = "kdr_german";

/// What one search asks.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words to find (empty: every dataset, e.g. to browse by facet).
    pub text: String,
    /// Facet filters: (facet, value), all of which a hit must have.
    pub filters: Vec<(&'static str, String)>,
    /// 1-based.
    pub page: usize,
    pub per_page: usize,
}

/// One dataset found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    pub id: String,
    pub title: String,
    pub publisher: String,
    pub score: f32,
}

/// A page of hits, how many there are in all, and the facets over all of them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub hits: Vec<Hit>,
    /// For each facet, its values among all hits (not only this page) with their counts.
    pub facets: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the search index failed: {0}")]
pub struct SearchError(String);

fn err(e: impl std::fmt::Display) -> SearchError {
    SearchError(e.to_string())
}

/// What the index holds of one dataset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub id: String,
    /// The title shown with a hit: the German one, else one without a language, else any.
    pub shown_title: String,
    pub titles: Vec<String>,
    pub descriptions: Vec<String>,
    pub keywords: Vec<String>,
    pub publisher: String,
    /// (facet, value) pairs: EU theme codes, the publisher's AGS, licence and file-type codes,
    /// only values of the vocabularies the broker knows (a description cannot flood a facet);
    /// and each keyword in lower case under [`KEYWORD`], a filter that is never counted.
    pub facets: Vec<(&'static str, String)>,
}

impl Entry {
    /// Reads a dataset's entry from its statements (its graph), whatever wrote them: the
    /// JSON form and imports alike. Licences and file types count where DCAT-AP.de puts
    /// them: on the dataset's distributions (and a licence on the dataset itself).
    pub fn from_triples(id: &DatasetId, triples: &[Triple], iris: &Iris) -> Self {
        let subject = iris.dataset(id);
        let about_dataset = |t: &Triple| matches!(&t.subject, NamedOrBlankNode::NamedNode(n) if n.as_str() == subject);
        let is = |t: &Triple, ns: &str, local: &str| t.predicate.as_str().strip_prefix(ns) == Some(local);
        let distributions: HashSet<&Term> = triples
            .iter()
            .filter(|t| about_dataset(t) && is(t, DCAT, "distribution"))
            .map(|t| &t.object)
            .collect();
        let mut e = Entry {
            id: id.to_string(),
            ..Entry::default()
        };
        let mut titles: Vec<(Option<&str>, &str)> = Vec::new();
        for t in triples {
            let own = about_dataset(t);
            let on_distribution = match &t.subject {
                NamedOrBlankNode::NamedNode(n) => distributions.contains(&Term::NamedNode(n.clone())),
                NamedOrBlankNode::BlankNode(b) => distributions.contains(&Term::BlankNode(b.clone())),
            };
            match &t.object {
                Term::Literal(l) if own => {
                    if is(t, DCT, "title") {
                        titles.push((l.language(), l.value()));
                        e.titles.push(l.value().to_owned());
                    } else if is(t, DCT, "description") {
                        e.descriptions.push(l.value().to_owned());
                    } else if is(t, DCAT, "keyword") {
                        e.keywords.push(l.value().to_owned());
                        e.facets.push((KEYWORD, l.value().to_lowercase()));
                    }
                }
                Term::NamedNode(n) => {
                    let iri = n.as_str();
                    if own && is(t, DCAT, "theme") {
                        if let Some(code) = iri.strip_prefix(THEME_PREFIX) {
                            e.facets.push(("theme", code.to_owned()));
                        }
                    } else if own && is(t, DCT, "publisher") {
                        if let Some(ags) = iri.strip_prefix(&iris.member_prefix()) {
                            e.publisher = ags.to_owned();
                            e.facets.push(("publisher", ags.to_owned()));
                        }
                    } else if (own || on_distribution) && is(t, DCT, "license") && super::dcat::is_licence(iri) {
                        if let Some(code) = iri.strip_prefix(LICENSES_PREFIX) {
                            e.facets.push(("licence", code.to_owned()));
                        }
                    } else if on_distribution
                        && is(t, DCT, "format")
                        && super::shacl::in_scheme(iri, FILE_TYPE_PREFIX.trim_end_matches('/'))
                        && let Some(code) = iri.strip_prefix(FILE_TYPE_PREFIX)
                    {
                        e.facets.push(("format", code.to_owned()));
                    }
                }
                _ => {}
            }
        }
        e.facets.sort();
        e.facets.dedup();
        let rank = |lang: Option<&str>| match lang {
            Some(l) if l.eq_ignore_ascii_case("de") || l.to_ascii_lowercase().starts_with("de-") => 0,
            None | Some("") => 1,
            _ => 2,
        };
        titles.sort_by_key(|(lang, _)| rank(*lang));
        e.shown_title = titles.first().map_or_else(|| e.id.clone(), |(_, t)| (*t).to_owned());
        e
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    shown_title: Field,
    publisher: Field,
    description: Field,
    keywords: Field,
    facets: Field,
}

/// The index. Writes are serialised by the catalog's own write lock; searches run in parallel.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    stale: AtomicBool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("stale", &self.is_stale())
            .finish_non_exhaustive()
    }
}

fn german() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(60))
        .filter(LowerCaser);
    match StopWordFilter::new(Language::German) {
        Some(stop) => builder
            .filter(stop)
            .filter(Stemmer::new(Language::German))
            .filter(AsciiFoldingFilter)
            .build(),
        None => builder.filter(Stemmer::new(Language::German)).filter(AsciiFoldingFilter).build(),
    }
}

impl SearchIndex {
    /// An empty index, stale until [`Self::rebuild`] fills it.
    pub fn new() -> Result<Self, SearchError> {
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(GERMAN)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fields = Fields {
            id: schema.add_text_field("id", STRING | STORED | FAST),
            title: schema.add_text_field("title", text.clone()),
            shown_title: schema.add_text_field("shown_title", STORED),
            publisher: schema.add_text_field("publisher", STORED),
            description: schema.add_text_field("description", text.clone()),
            keywords: schema.add_text_field("keywords", text),
            facets: schema.add_facet_field("facets", FacetOptions::default().set_stored()),
        };
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(GERMAN, german());
        // One indexing thread and a small arena: the index is a few hundred bytes a dataset.
        let writer = index.writer_with_num_threads(1, 32_000_000).map_err(err)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(err)?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            // Built from the graph on first use.
            stale: AtomicBool::new(true),
        })
    }

    /// Whether the index is behind the graph (never built, or a change could not be applied):
    /// then [`Self::rebuild`] must run before a search.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Marks the index as behind the graph.
    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Replaces everything with what `read` returns, read while no update can run: a change
    /// committed to the graph meanwhile is either in what `read` sees or applied after.
    pub fn rebuild<E: std::fmt::Display>(&self, read: impl FnOnce() -> Result<Vec<Entry>, E>) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().map_err(|_| SearchError("the index writer is poisoned".into()))?;
        if !self.is_stale() {
            // Another caller rebuilt it while this one waited for the writer.
            return Ok(());
        }
        let result = (|| {
            let entries = read().map_err(err)?;
            writer.delete_all_documents().map_err(err)?;
            for e in &entries {
                writer.add_document(self.document(e)).map_err(err)?;
            }
            writer.commit().map_err(err)?;
            self.reader.reload().map_err(err)
        })();
        match result {
            Ok(()) => {
                self.stale.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let _ = writer.rollback();
                Err(e)
            }
        }
    }

    /// Puts `entries` in (replacing what was there for their ids) and takes `removed` out.
    /// Nothing to do while the index is stale: its rebuild reads the graph as it is then.
    pub fn update(&self, entries: impl IntoIterator<Item = Entry>, removed: &[DatasetId]) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().map_err(|_| SearchError("the index writer is poisoned".into()))?;
        if self.is_stale() {
            return Ok(());
        }
        let result = (|| {
            for id in removed {
                writer.delete_term(IndexTerm::from_field_text(self.fields.id, id.as_str()));
            }
            for e in entries {
                writer.delete_term(IndexTerm::from_field_text(self.fields.id, &e.id));
                writer.add_document(self.document(&e)).map_err(err)?;
            }
            writer.commit().map_err(err)?;
            self.reader.reload().map_err(err)
        })();
        if result.is_err() {
            self.stale.store(true, Ordering::Release);
            let _ = writer.rollback();
        }
        result
    }

    fn document(&self, e: &Entry) -> TantivyDocument {
        let f = self.fields;
        let mut d = doc!(f.id => e.id.as_str(), f.shown_title => e.shown_title.as_str(), f.publisher => e.publisher.as_str());
        for t in &e.titles {
            d.add_text(f.title, t);
        }
        for t in &e.descriptions {
            d.add_text(f.description, t);
        }
        for t in &e.keywords {
            d.add_text(f.keywords, t);
        }
        for (facet, value) in &e.facets {
            d.add_facet(f.facets, Facet::from_path([*facet, value.as_str()]));
        }
        d
    }

    /// The words of `text` as the index has them (stop words dropped, stemmed, folded), at
    /// most [`MAX_QUERY_WORDS`] distinct ones.
    fn words(&self, text: &str) -> Result<Vec<String>, SearchError> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.title).map_err(err)?;
        let mut stream = analyzer.token_stream(text);
        let mut words: Vec<String> = Vec::new();
        while stream.advance() {
            let word = &stream.token().text;
            if !words.contains(word) && words.len() < MAX_QUERY_WORDS {
                words.push(word.clone());
            }
        }
        Ok(words)
    }

    /// Searches: every word required, each in any of title (weighing most), keywords and
    /// description; relevance order (an empty text: every dataset, by identifier). The text is
    /// only words: no query syntax reaches the index (no fields, ranges or boosts).
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let browse = q.text.trim().is_empty();
        if browse {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        } else {
            let words = self.words(&q.text)?;
            if words.is_empty() {
                // Only stop words ("der die das"): nothing to look for.
                clauses.push((Occur::Must, Box::new(EmptyQuery)));
            }
            for word in words {
                let any_field: Vec<(Occur, Box<dyn Query>)> = [(f.title, 3.0), (f.keywords, 2.0), (f.description, 1.0)]
                    .into_iter()
                    .map(|(field, boost)| {
                        let term = TermQuery::new(IndexTerm::from_field_text(field, &word), IndexRecordOption::WithFreqs);
                        (Occur::Should, Box::new(BoostQuery::new(Box::new(term), boost)) as Box<dyn Query>)
                    })
                    .collect();
                clauses.push((Occur::Must, Box::new(BooleanQuery::new(any_field))));
            }
        }
        for (facet, value) in &q.filters {
            let term = IndexTerm::from_facet(f.facets, &Facet::from_path([*facet, value.as_str()]));
            clauses.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
        }
        let query = BooleanQuery::new(clauses);
        let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
        let page = q.page.max(1);
        let mut facets = FacetCollector::for_field("facets");
        for name in FACETS {
            facets.add_facet(Facet::from_path([name]));
        }
        let offset = (page - 1).saturating_mul(per_page).min(MAX_HIT);
        let limit = per_page.min(MAX_HIT - offset);
        let top = TopDocs::with_limit(limit.max(1)).and_offset(offset);
        let (mut found, total, counts): (Vec<(f32, DocAddress)>, usize, _) = if browse {
            let (by_id, total, counts) = searcher
                .search(&query, &(top.order_by_string_fast_field("id", Order::Asc), Count, facets))
                .map_err(err)?;
            (by_id.into_iter().map(|(_, a)| (0.0, a)).collect(), total, counts)
        } else {
            searcher.search(&query, &(top.order_by_score(), Count, facets)).map_err(err)?
        };
        found.truncate(limit);
        let hits = found
            .into_iter()
            .map(|(score, address)| self.hit(&searcher, score, address))
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_facet = BTreeMap::new();
        for name in FACETS {
            let values: BTreeMap<String, u64> = counts
                .top_k(Facet::from_path([name]), MAX_FACET_VALUES)
                .into_iter()
                .filter_map(|(facet, n)| facet.to_path().last().map(|v| ((*v).to_owned(), n)))
                .collect();
            by_facet.insert(name, values);
        }
        Ok(SearchResults {
            total,
            page,
            per_page,
            hits,
            facets: by_facet,
        })
    }

    fn hit(&self, searcher: &tantivy::Searcher, score: f32, address: DocAddress) -> Result<Hit, SearchError> {
        let d: TantivyDocument = searcher.doc(address).map_err(err)?;
        let text = |field| d.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        Ok(Hit {
            id: text(self.fields.id),
            title: text(self.fields.shown_title),
            publisher: text(self.fields.publisher),
            score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, title: &str, description: &str, theme: &str) -> Entry {
        Entry {
            id: id.into(),
            shown_title: title.into(),
            titles: vec![title.into()],
            descriptions: vec![description.into()],
            keywords: vec![],
            publisher: "08136088".into(),
            facets: vec![("theme", theme.into()), ("publisher", "08136088".into())],
        }
    }

    fn ids(r: &SearchResults) -> Vec<&str> {
        r.hits.iter().map(|h| h.id.as_str()).collect()
    }

    fn search(index: &SearchIndex, text: &str) -> SearchResults {
        index
            .search(&SearchQuery {
                text: text.into(),
                page: 1,
                per_page: 10,
                ..SearchQuery::default()
            })
            .expect("search")
    }

    #[test]
    fn german_words_meet_their_inflections_umlauts_and_sharp_s() {
        let index = SearchIndex::new().expect("index");
        index
            .rebuild(|| -> Result<_, SearchError> {
                Ok(vec![
                    entry("baeume", "Bäume in Rostock", "Baumkataster der Stadt", "ENVI"),
                    entry("parken", "Parkhäuser", "Belegung der Parkhäuser in der Innenstadt", "TRAN"),
                    entry("strassen", "Straßenverzeichnis", "Alle Straßen", "REGI"),
                ])
            })
            .expect("rebuild");
        assert_eq!(ids(&search(&index, "Baum")), vec!["baeume"], "singular finds plural");
        assert_eq!(ids(&search(&index, "baume")), vec!["baeume"]);
        assert_eq!(ids(&search(&index, "Kataster")), Vec::<&str>::new(), "compounds are not split");
        assert_eq!(ids(&search(&index, "Parkhaus")), vec!["parken"]);
        assert_eq!(ids(&search(&index, "STRASSEN")), vec!["strassen"]);
        assert_eq!(ids(&search(&index, "straßen")), vec!["strassen"]);
        assert_eq!(ids(&search(&index, "Parkhäuser Innenstadt")), vec!["parken"]);
        assert_eq!(
            ids(&search(&index, "Parkhäuser Rostock")),
            Vec::<&str>::new(),
            "all words are required"
        );
        assert_eq!(
            ids(&search(&index, "\"unbalanced: (")),
            Vec::<&str>::new(),
            "stray syntax is no error"
        );
    }

    #[test]
    fn facets_count_all_hits_and_filters_narrow_them() {
        let index = SearchIndex::new().expect("index");
        assert!(index.is_stale());
        index.rebuild(|| -> Result<_, SearchError> { Ok(vec![]) }).expect("rebuild");
        index
            .update(
                (0..30).map(|i| entry(&format!("d{i}a"), "Messwerte", "Daten", if i % 3 == 0 { "ENVI" } else { "TRAN" })),
                &[],
            )
            .expect("update");
        let all = search(&index, "messwerte");
        assert_eq!((all.total, all.hits.len()), (30, 10));
        assert_eq!(all.facets["theme"].get("ENVI"), Some(&10));
        assert_eq!(all.facets["theme"].get("TRAN"), Some(&20));
        let envi = index
            .search(&SearchQuery {
                text: "messwerte".into(),
                filters: vec![("theme", "ENVI".into())],
                page: 2,
                per_page: 8,
            })
            .expect("search");
        assert_eq!((envi.total, envi.hits.len()), (10, 2));
        index.update([], &["d0a".parse::<DatasetId>().expect("id")]).expect("remove");
        assert_eq!(search(&index, "messwerte").total, 29);
    }
}
