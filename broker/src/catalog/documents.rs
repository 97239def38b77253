//! The catalog as RDF documents: a dataset's description at its own IRI, and the harvestable
//! catalog of the public datasets, page by page (Hydra), in the syntaxes harvesters read.
//!
//! Why documents are made here and not from the typed model: a document is what the graph
//! says, so whatever a dataset's graph holds (also what an import brought that the API's JSON
//! form has no field for) reaches harvesters unchanged. What is not in the dataset's graph is
//! never in a document: the provider's address ([`super::dcat::FETCH_FROM`]) lives outside it.

use oxigraph::io::{JsonLdProfileSet, RdfFormat, RdfSerializer};
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{Literal, NamedNode, NamedOrBlankNode, Term, Triple};

use super::dcat::Iris;
use crate::ns::{DCAT, DCATDE, DCT, FOAF, KDR, VCARD};

/// The RDF syntaxes documents are written in, in the order offered when a client has no
/// preference: RDF/XML first, because it is what DCAT-AP.de exchanges and what GovData's
/// harvester reads first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdfSyntax {
    RdfXml,
    Turtle,
    JsonLd,
    NTriples,
}

impl RdfSyntax {
    /// Media types for content negotiation ([`crate::conneg`]).
    pub const OFFERS: &'static [(&'static str, RdfSyntax)] = &[
        ("application/rdf+xml", RdfSyntax::RdfXml),
        ("text/turtle", RdfSyntax::Turtle),
        ("application/ld+json", RdfSyntax::JsonLd),
        ("application/n-triples", RdfSyntax::NTriples),
    ];

    /// The syntax of a `Content-Type` (parameters ignored), if it is one of these.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let m = media_type.split(';').next().unwrap_or_default().trim();
        Self::OFFERS.iter().find(|(o, _)| o.eq_ignore_ascii_case(m)).map(|(_, s)| *s)
    }

    pub fn media_type(self) -> &'static str {
        Self::OFFERS
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("application/rdf+xml", |(m, _)| *m)
    }

    pub(crate) fn format(self) -> RdfFormat {
        match self {
            RdfSyntax::RdfXml => RdfFormat::RdfXml,
            RdfSyntax::Turtle => RdfFormat::Turtle,
            RdfSyntax::JsonLd => RdfFormat::JsonLd {
                profile: JsonLdProfileSet::empty(),
            },
            RdfSyntax::NTriples => RdfFormat::NTriples,
        }
    }
}

/// What the data space's own catalog says of itself (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceCatalog {
    pub title: String,
    pub description: String,
    /// Who runs the broker (the catalog's `dct:publisher`).
    pub operator: String,
}

impl Default for SpaceCatalog {
    fn default() -> Self {
        Self {
            title: "Kommunaler Datenraum".into(),
            description: "Metadaten der Datensätze, die die Mitglieder des kommunalen Datenraums bereitstellen.".into(),
            operator: "Betreiber des kommunalen Datenraums".into(),
        }
    }
}

/// One page of the harvestable catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based.
    pub number: usize,
    pub per_page: usize,
    /// Public datasets in the whole catalog.
    pub total: usize,
}

impl Page {
    pub fn last(&self) -> usize {
        self.total.div_ceil(self.per_page).max(1)
    }
}

/// Writes `triples` in `syntax` with the prefixes DCAT-AP.de documents use.
pub fn serialize(triples: &[Triple], syntax: RdfSyntax) -> std::io::Result<Vec<u8>> {
    let mut serializer = RdfSerializer::from_format(syntax.format());
    for (prefix, iri) in [
        ("dcat", DCAT),
        ("dct", DCT),
        ("dcatde", DCATDE),
        ("foaf", FOAF),
        ("vcard", VCARD),
        ("hydra", HYDRA),
        ("xsd", "http://www.w3.org/2001/XMLSchema#"),
        ("kdr", KDR),
    ] {
        serializer = serializer.with_prefix(prefix, iri).map_err(std::io::Error::other)?;
    }
    let mut writer = serializer.for_writer(Vec::new());
    for t in triples {
        writer.serialize_triple(t)?;
    }
    writer.finish()
}

const HYDRA: &str = "http://www.w3.org/ns/hydra/core#";

fn nn(iri: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

fn triple(s: &str, p: String, o: impl Into<Term>) -> Triple {
    Triple::new(NamedOrBlankNode::NamedNode(nn(s)), nn(p), o)
}

/// The data space's catalog node: its description, the member catalogs it holds and the
/// datasets on this page.
pub fn space_catalog_triples(iris: &Iris, space: &SpaceCatalog, member_catalogs: &[String], datasets: &[String]) -> Vec<Triple> {
    let c = iris.space_catalog();
    let operator = format!("{}operator", iris.base());
    let mut out = vec![
        triple(&c, rdf::TYPE.as_str().to_owned(), nn(format!("{DCAT}Catalog"))),
        triple(
            &c,
            format!("{DCT}title"),
            Literal::new_language_tagged_literal_unchecked(&space.title, "de"),
        ),
        triple(
            &c,
            format!("{DCT}description"),
            Literal::new_language_tagged_literal_unchecked(&space.description, "de"),
        ),
        triple(&c, format!("{DCT}publisher"), nn(operator.clone())),
        triple(&c, format!("{FOAF}homepage"), nn(iris.base())),
        triple(&operator, rdf::TYPE.as_str().to_owned(), nn(format!("{FOAF}Agent"))),
        triple(&operator, format!("{FOAF}name"), Literal::new_simple_literal(&space.operator)),
    ];
    out.extend(member_catalogs.iter().map(|m| triple(&c, format!("{DCAT}catalog"), nn(m.as_str()))));
    out.extend(datasets.iter().map(|d| triple(&c, format!("{DCAT}dataset"), nn(d.as_str()))));
    out
}

/// The Hydra paging statements of a harvest page, in both vocabularies harvesters read: the
/// `hydra:PagedCollection` of older CKAN harvesters (page IRIs as literals) and the
/// `hydra:PartialCollectionView` of Hydra's current draft.
pub fn paging_triples(page: &Page, page_iri: impl Fn(usize) -> String) -> Vec<Triple> {
    let this = page_iri(page.number);
    let count = |n: usize| Literal::new_typed_literal(n.to_string(), xsd::INTEGER);
    let mut out = vec![
        triple(&this, rdf::TYPE.as_str().to_owned(), nn(format!("{HYDRA}PagedCollection"))),
        triple(&this, rdf::TYPE.as_str().to_owned(), nn(format!("{HYDRA}PartialCollectionView"))),
        triple(&this, format!("{HYDRA}totalItems"), count(page.total)),
        triple(&this, format!("{HYDRA}itemsPerPage"), count(page.per_page)),
    ];
    let mut link = |old: &str, new: &str, n: usize| {
        out.push(triple(&this, format!("{HYDRA}{old}"), Literal::new_simple_literal(page_iri(n))));
        out.push(triple(&this, format!("{HYDRA}{new}"), nn(page_iri(n))));
    };
    link("firstPage", "first", 1);
    link("lastPage", "last", page.last());
    if page.number > 1 {
        link("previousPage", "previous", page.number - 1);
    }
    if page.number < page.last() {
        link("nextPage", "next", page.number + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_middle_page_links_every_way_and_the_last_has_no_next() {
        let page = |number| Page {
            number,
            per_page: 100,
            total: 250,
        };
        let iri = |n: usize| format!("https://b.example/catalog?page={n}");
        let has = |t: &[Triple], p: &str| t.iter().any(|t| t.predicate.as_str() == format!("{HYDRA}{p}"));
        let middle = paging_triples(&page(2), iri);
        for p in ["first", "last", "previous", "next", "nextPage", "totalItems"] {
            assert!(has(&middle, p), "{p}");
        }
        let last = paging_triples(&page(3), iri);
        assert!(!has(&last, "next") && has(&last, "previous"));
        assert_eq!(page(3).last(), 3);
        assert_eq!(
            Page {
                number: 1,
                per_page: 100,
                total: 0
            }
            .last(),
            1
        );
    }

    #[test]
    fn every_syntax_writes_what_it_says() {
        let t = vec![triple(
            "https://b.example/d",
            format!("{DCT}title"),
            Literal::new_simple_literal("Kitas"),
        )];
        for (media, syntax) in RdfSyntax::OFFERS {
            let bytes = serialize(&t, *syntax).expect("serialised");
            let parsed: Vec<_> = oxigraph::io::RdfParser::from_format(syntax.format())
                .for_slice(&bytes)
                .collect::<Result<_, _>>()
                .expect(media);
            assert_eq!(parsed.len(), 1, "{media}");
        }
    }
}
