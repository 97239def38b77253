//! The mapping between [`Dataset`]/[`Member`] and DCAT-AP.de 3.0 triples.
//!
//! Namespaces as DCAT-AP.de 3.0 uses them (`dcat:`, `dcterms:`, `dcatde:` =
//! `http://dcat-ap.de/def/dcatde/`, `vcard:`, `foaf:`). Each dataset lives in its own named graph
//! (the dataset IRI), so replacing or withdrawing it is one graph operation. Auxiliary nodes
//! (period of time, contact point, distributions) get IRIs under the dataset IRI instead of blank
//! nodes, so they can be read back and linked to from elsewhere.

use std::collections::BTreeMap;

use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{GraphName, Literal, NamedNode, NamedOrBlankNode, Quad, Term};

use super::model::{Access, ContactPoint, Dataset, DatasetId, Distribution, Lang, Member, Temporal, Tombstone};
use crate::identity::{AGS_IRI_PREFIX, Ags, NS, ROLE_IRI_PREFIX, Role};

pub use crate::ns::{
    ACCESS_RIGHT_PREFIX, DCAT, DCATDE, DCT, FILE_TYPE_PREFIX, FOAF, LANGUAGE_PREFIX, MEDIA_TYPE_PREFIX, THEME_PREFIX, VCARD,
};
const LEVEL_MUNICIPALITY: &str = "http://dcat-ap.de/def/politicalGeocoding/Level/municipality";

/// Where the broker fetches a distribution's data from (a provider's API). Written as a
/// default-graph quad, which the store keeps in its private store, where no SPARQL query of a
/// member reaches: a provider's internal address is not the members' business, and the
/// harvestable catalog must not publish it either. Every member gets data through
/// [`Iris::data_access`].
pub const FETCH_FROM: &str = "https://w3id.org/kdr/fetchFrom";
/// When an imported dataset was (last) imported, RFC 3339.
pub const IMPORTED_AT: &str = "https://w3id.org/kdr/importedAt";

/// Whether `iri` is a licence of the DCAT-AP.de licence vocabulary: the values the dataset
/// schema (`schemas/dataset.schema.json`, `license`) allows, read from it once.
pub fn is_licence(iri: &str) -> bool {
    static LICENCES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LICENCES
        .get_or_init(|| {
            let schema = crate::schema::ALL
                .iter()
                .find(|(f, _)| *f == "dataset.schema.json")
                .map(|(_, t)| *t);
            let value: serde_json::Value = schema.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
            value["properties"]["license"]["enum"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|l| l == iri)
}

/// The EU file type (`dct:format`) of a media type, for the types the data space serves.
/// `None` for a type the table has no entry for (`dcat:mediaType` still says what it is).
pub fn file_type(media_type: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("text/csv", "CSV"),
        ("application/json", "JSON"),
        ("application/geo+json", "GEOJSON"),
        ("application/ld+json", "JSON_LD"),
        ("application/xml", "XML"),
        ("text/xml", "XML"),
        ("application/pdf", "PDF"),
        ("text/html", "HTML"),
        ("text/plain", "TXT"),
        ("text/tab-separated-values", "TSV"),
        ("text/turtle", "RDF_TURTLE"),
        ("application/rdf+xml", "RDF_XML"),
        ("application/n-triples", "RDF_N_TRIPLES"),
        ("application/zip", "ZIP"),
        ("application/gml+xml", "GML"),
        ("application/vnd.google-earth.kml+xml", "KML"),
        ("application/vnd.ms-excel", "XLS"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "XLSX"),
        ("application/vnd.oasis.opendocument.spreadsheet", "ODS"),
        ("image/png", "PNG"),
        ("image/jpeg", "JPEG"),
        ("image/tiff", "TIFF"),
    ];
    TABLE.iter().find(|(m, _)| m.eq_ignore_ascii_case(media_type)).map(|(_, f)| *f)
}

/// Where the broker's own resources live; from the configuration's `base_iri`.
#[derive(Debug, Clone)]
pub struct Iris {
    base: String,
}

impl Iris {
    pub fn new(base: &str) -> Self {
        let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
        Self { base }
    }
    /// The base IRI, ending in `/`.
    pub fn base(&self) -> &str {
        &self.base
    }
    pub fn dataset(&self, id: &DatasetId) -> String {
        format!("{}datasets/{id}", self.base)
    }
    pub fn datasets_prefix(&self) -> String {
        format!("{}datasets/", self.base)
    }
    /// A distribution's IRI: under its dataset's, by position.
    pub fn distribution(&self, id: &DatasetId, index: usize) -> String {
        format!("{}datasets/{id}/distributions/{index}", self.base)
    }
    /// Where members get a dataset's data: the broker's exchange API, for every distribution.
    /// A provider's own API address is the broker's business only (see [`FETCH_FROM`]).
    pub fn data_access(&self, id: &DatasetId) -> String {
        format!("{}v1/datasets/{id}/data", self.base)
    }
    /// The catalog of one member's datasets.
    pub fn member_catalog(&self, ags: &Ags) -> String {
        format!("{}catalogs/{ags}", self.base)
    }
    /// The data space's catalog: every member's catalog.
    pub fn space_catalog(&self) -> String {
        format!("{}catalog", self.base)
    }
    pub fn member(&self, ags: &Ags) -> String {
        format!("{}members/{ags}", self.base)
    }
    pub fn member_prefix(&self) -> String {
        format!("{}members/", self.base)
    }
    pub fn members_graph(&self) -> String {
        format!("{}graphs/members", self.base)
    }
    /// Withdrawn datasets: their identifiers, publishers and when (never registered again).
    pub fn tombstones_graph(&self) -> String {
        format!("{}graphs/withdrawn", self.base)
    }
}

fn nn(iri: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

fn p(ns: &str, local: &str) -> NamedNode {
    nn(format!("{ns}{local}"))
}

struct Writer {
    graph: GraphName,
    quads: Vec<Quad>,
}

impl Writer {
    fn add(&mut self, s: &NamedNode, pred: NamedNode, o: impl Into<Term>) {
        self.quads.push(Quad::new(s.clone(), pred, o, self.graph.clone()));
    }
}

/// What of a dataset is published (everything but what the broker keeps to itself), as
/// triples: what the DCAT-AP.de shapes judge.
pub fn dataset_to_triples(d: &Dataset, iris: &Iris) -> Vec<oxigraph::model::Triple> {
    dataset_to_quads(d, iris)
        .into_iter()
        .filter(|q| !q.graph_name.is_default_graph())
        .map(|q| oxigraph::model::Triple::new(q.subject, q.predicate, q.object))
        .collect()
}

/// The quads of one dataset, all in the dataset's own graph.
pub fn dataset_to_quads(d: &Dataset, iris: &Iris) -> Vec<Quad> {
    let s = nn(iris.dataset(&d.id));
    let mut w = Writer {
        graph: GraphName::NamedNode(s.clone()),
        quads: Vec::new(),
    };
    w.add(&s, rdf::TYPE.into_owned(), p(DCAT, "Dataset"));
    w.add(&s, p(DCT, "identifier"), Literal::new_simple_literal(d.id.as_str()));
    for (lang, text) in &d.title {
        w.add(
            &s,
            p(DCT, "title"),
            Literal::new_language_tagged_literal_unchecked(text, lang.tag()),
        );
    }
    for (lang, text) in &d.description {
        w.add(
            &s,
            p(DCT, "description"),
            Literal::new_language_tagged_literal_unchecked(text, lang.tag()),
        );
    }
    w.add(&s, p(DCT, "publisher"), nn(iris.member(&d.publisher)));
    w.add(&s, p(DCT, "issued"), Literal::new_typed_literal(&d.issued, xsd::DATE_TIME));
    w.add(&s, p(DCT, "modified"), Literal::new_typed_literal(&d.modified, xsd::DATE_TIME));
    for t in &d.themes {
        w.add(&s, p(DCAT, "theme"), nn(format!("{THEME_PREFIX}{t}")));
    }
    for k in &d.keywords {
        w.add(&s, p(DCAT, "keyword"), Literal::new_simple_literal(k));
    }
    for sp in &d.spatial {
        w.add(&s, p(DCT, "spatial"), nn(sp.as_str()));
    }
    // DCAT-AP.de 3.0: the political geocoding IRI is a `dct:spatial` (the 3.0 shapes warn of
    // `dcatde:politicalGeocodingURI` as deprecated), its level says what kind of area it is.
    if d.spatial.iter().any(|sp| sp.starts_with(AGS_IRI_PREFIX)) {
        w.add(&s, p(DCATDE, "politicalGeocodingLevelURI"), nn(LEVEL_MUNICIPALITY));
    }
    // The member's catalog lists it; the statement lives in the dataset's graph, so it goes
    // when the dataset does.
    w.quads.push(Quad::new(
        nn(iris.member_catalog(&d.publisher)),
        p(DCAT, "dataset"),
        s.clone(),
        w.graph.clone(),
    ));
    w.add(&s, p(DCT, "language"), nn(format!("{LANGUAGE_PREFIX}DEU")));
    if let Some(t) = &d.temporal {
        write_temporal(&mut w, &s, t);
    }
    if let Some(l) = &d.license {
        w.add(&s, p(DCT, "license"), nn(l.as_str()));
    }
    if let Some(a) = &d.access_rights {
        w.add(&s, p(DCT, "accessRights"), nn(format!("{ACCESS_RIGHT_PREFIX}{a}")));
    }
    if let Some(c) = &d.contact_point {
        write_contact(&mut w, &s, c);
    }
    for (i, dist) in d.distributions.iter().enumerate() {
        write_distribution(&mut w, d, i, dist, iris);
    }
    w.quads
}

fn write_temporal(w: &mut Writer, s: &NamedNode, t: &Temporal) {
    let node = nn(format!("{}#temporal", s.as_str()));
    w.add(s, p(DCT, "temporal"), node.clone());
    w.add(&node, rdf::TYPE.into_owned(), p(DCT, "PeriodOfTime"));
    w.add(&node, p(DCAT, "startDate"), Literal::new_typed_literal(&t.start, xsd::DATE));
    if let Some(end) = &t.end {
        w.add(&node, p(DCAT, "endDate"), Literal::new_typed_literal(end, xsd::DATE));
    }
}

fn write_contact(w: &mut Writer, s: &NamedNode, c: &ContactPoint) {
    let node = nn(format!("{}#contact", s.as_str()));
    w.add(s, p(DCAT, "contactPoint"), node.clone());
    w.add(&node, rdf::TYPE.into_owned(), p(VCARD, "Kind"));
    w.add(&node, p(VCARD, "fn"), Literal::new_simple_literal(&c.name));
    if let Some(e) = &c.email {
        w.add(&node, p(VCARD, "hasEmail"), nn(mailto(e)));
    }
    if let Some(u) = &c.url {
        w.add(&node, p(VCARD, "hasURL"), nn(u.as_str()));
    }
}

fn write_distribution(w: &mut Writer, d: &Dataset, i: usize, dist: &Distribution, iris: &Iris) {
    let s = nn(iris.dataset(&d.id));
    let node = nn(iris.distribution(&d.id, i));
    w.add(&s, p(DCAT, "distribution"), node.clone());
    w.add(&node, rdf::TYPE.into_owned(), p(DCAT, "Distribution"));
    w.add(&node, p(DCT, "identifier"), Literal::new_simple_literal(i.to_string()));
    if let Some(t) = &dist.title {
        w.add(&node, p(DCT, "title"), Literal::new_simple_literal(t));
    }
    if let Some(media_type) = &dist.media_type {
        w.add(&node, p(DCAT, "mediaType"), nn(format!("{MEDIA_TYPE_PREFIX}{media_type}")));
        if let Some(ft) = file_type(media_type) {
            w.add(&node, p(DCT, "format"), nn(format!("{FILE_TYPE_PREFIX}{ft}")));
        }
    }
    // Members get every distribution's data through the broker's exchange API.
    w.add(&node, p(DCAT, "accessURL"), nn(iris.data_access(&d.id)));
    match &dist.access_url {
        Access::Url(u) => w
            .quads
            .push(Quad::new(node.clone(), nn(FETCH_FROM), nn(u.as_str()), GraphName::DefaultGraph)),
        Access::Hosted => w.add(&node, p(NS, "hostedByBroker"), Literal::from(true)),
    }
    // DCAT-AP.de Konvention 32: distributions carry a licence.
    if let Some(l) = &d.license {
        w.add(&node, p(DCT, "license"), nn(l.as_str()));
    }
}

/// A `mailto:` IRI for an e-mail address. RFC 5321 allows addresses an IRI cannot hold as they
/// are (`"Amt Nord"@aalen.example` has a space and quotes); every byte outside the characters
/// an IRI allows here is percent-encoded (RFC 6068), so the graph stays valid RDF in every
/// serialisation.
pub fn mailto(email: &str) -> String {
    let mut out = String::from("mailto:");
    for b in email.bytes() {
        if b.is_ascii_alphanumeric() || b"@.!$&'()*+,;=-_~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The address of a `mailto:` IRI written by [`mailto`].
fn unmailto(iri: &str) -> Option<String> {
    let encoded = iri.strip_prefix("mailto:")?.as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = std::str::from_utf8(encoded.get(i + 1..i + 3)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(encoded[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The triples of one graph, indexed by subject and predicate, for reading back.
pub struct Graph {
    by_subject: BTreeMap<String, BTreeMap<String, Vec<Term>>>,
}

impl Graph {
    pub fn from_quads(quads: impl IntoIterator<Item = Quad>) -> Self {
        let mut by_subject: BTreeMap<String, BTreeMap<String, Vec<Term>>> = BTreeMap::new();
        for q in quads {
            if let NamedOrBlankNode::NamedNode(s) = q.subject {
                by_subject
                    .entry(s.into_string())
                    .or_default()
                    .entry(q.predicate.into_string())
                    .or_default()
                    .push(q.object);
            }
        }
        Self { by_subject }
    }

    fn objects(&self, s: &str, ns: &str, local: &str) -> &[Term] {
        self.by_subject
            .get(s)
            .and_then(|m| m.get(&format!("{ns}{local}")))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub(super) fn iris(&self, s: &str, ns: &str, local: &str) -> Vec<String> {
        self.objects(s, ns, local)
            .iter()
            .filter_map(|t| match t {
                Term::NamedNode(n) => Some(n.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn iri(&self, s: &str, ns: &str, local: &str) -> Option<String> {
        self.iris(s, ns, local).into_iter().next()
    }

    fn literals(&self, s: &str, ns: &str, local: &str) -> Vec<&Literal> {
        self.objects(s, ns, local)
            .iter()
            .filter_map(|t| match t {
                Term::Literal(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    pub(super) fn literal(&self, s: &str, ns: &str, local: &str) -> Option<String> {
        self.literals(s, ns, local).first().map(|l| l.value().to_owned())
    }
}

/// Reads a dataset back from its graph. `None` when the graph is not a dataset this broker wrote.
pub fn dataset_from_graph(g: &Graph, iri: &str, iris: &Iris) -> Option<Dataset> {
    let id: DatasetId = g.literal(iri, DCT, "identifier")?.parse().ok()?;
    let member_prefix = iris.member(&"00000000".parse().ok()?);
    let member_prefix = member_prefix.trim_end_matches("00000000");
    let publisher: Ags = g.iri(iri, DCT, "publisher")?.strip_prefix(member_prefix)?.parse().ok()?;
    let lang_text = |local| {
        g.literals(iri, DCT, local)
            .into_iter()
            .filter_map(|l| Some((Lang::from_tag(l.language()?)?, l.value().to_owned())))
            .collect()
    };
    let mut keywords: Vec<String> = g.literals(iri, DCAT, "keyword").iter().map(|l| l.value().to_owned()).collect();
    keywords.sort();
    let mut themes: Vec<String> = g
        .iris(iri, DCAT, "theme")
        .iter()
        .filter_map(|t| t.strip_prefix(THEME_PREFIX).map(str::to_owned))
        .collect();
    themes.sort();
    let mut spatial = g.iris(iri, DCT, "spatial");
    spatial.sort();
    let distributions = read_distributions(g, iri, iris, &id);
    Some(Dataset {
        id,
        publisher,
        // An imported dataset may lack them; then it was issued here when it was imported.
        issued: g.literal(iri, DCT, "issued").or_else(|| g.literal(iri, "", IMPORTED_AT))?,
        modified: g
            .literal(iri, DCT, "modified")
            .or_else(|| g.literal(iri, DCT, "issued"))
            .or_else(|| g.literal(iri, "", IMPORTED_AT))?,
        title: lang_text("title"),
        description: lang_text("description"),
        themes,
        keywords,
        spatial,
        temporal: g.iri(iri, DCT, "temporal").and_then(|t| {
            Some(Temporal {
                start: g.literal(&t, DCAT, "startDate")?,
                end: g.literal(&t, DCAT, "endDate"),
            })
        }),
        license: g.iri(iri, DCT, "license"),
        access_rights: g
            .iri(iri, DCT, "accessRights")
            .and_then(|a| a.strip_prefix(ACCESS_RIGHT_PREFIX).map(str::to_owned)),
        contact_point: g.iri(iri, DCAT, "contactPoint").and_then(|c| {
            Some(ContactPoint {
                name: g.literal(&c, VCARD, "fn")?,
                email: g.iri(&c, VCARD, "hasEmail").and_then(|m| unmailto(&m)),
                url: g.iri(&c, VCARD, "hasURL"),
            })
        }),
        distributions,
    })
}

fn read_distributions(g: &Graph, iri: &str, iris: &Iris, id: &DatasetId) -> Vec<Distribution> {
    let own_access = iris.data_access(id);
    let mut dists: Vec<(usize, Distribution)> = g
        .iris(iri, DCAT, "distribution")
        .iter()
        .filter_map(|d| {
            // By position, as its IRI says (`.../distributions/{i}`, also for imported ones).
            let index: usize = d.strip_prefix(&format!("{iri}/distributions/"))?.parse().ok()?;
            let hosted = g.literal(d, NS, "hostedByBroker").is_some_and(|v| v == "true");
            // A store written before the provider's address moved out of sight still has it
            // as `dcat:accessURL` (rewritten at the next start, see `OxigraphCatalog::open`);
            // an imported distribution has its portal's address there.
            let public_url = g.iri(d, DCAT, "accessURL").filter(|u| *u != own_access);
            let access_url = if hosted {
                Access::Hosted
            } else {
                Access::Url(g.iri(d, "", FETCH_FROM).or(public_url)?)
            };
            // `dct:mediaType` is what stores before DCAT-AP.de 3.0 conformance wrote.
            let media_type = g.iri(d, DCAT, "mediaType").or_else(|| g.iri(d, DCT, "mediaType"));
            Some((
                index,
                Distribution {
                    title: g.literal(d, DCT, "title"),
                    media_type: media_type.and_then(|m| m.strip_prefix(MEDIA_TYPE_PREFIX).map(str::to_owned)),
                    access_url,
                },
            ))
        })
        .collect();
    dists.sort_by_key(|(i, _)| *i);
    dists.into_iter().map(|(_, d)| d).collect()
}

/// The quads of one member, in the members graph.
pub fn member_to_quads(m: &Member, iris: &Iris) -> Vec<Quad> {
    let s = nn(iris.member(&m.ags));
    let mut w = Writer {
        graph: GraphName::NamedNode(nn(iris.members_graph())),
        quads: Vec::new(),
    };
    w.add(&s, rdf::TYPE.into_owned(), p(FOAF, "Organization"));
    w.add(&s, rdf::TYPE.into_owned(), p(FOAF, "Agent"));
    w.add(&s, p(FOAF, "name"), Literal::new_simple_literal(&m.organisation));
    w.add(&s, p(DCT, "identifier"), Literal::new_simple_literal(m.ags.as_str()));
    w.add(&s, p(DCT, "spatial"), nn(m.ags.iri()));
    w.add(&s, p(DCT, "type"), nn("http://purl.org/adms/publishertype/LocalAuthority"));
    for r in &m.roles {
        w.add(&s, p(NS, "mayHoldRole"), nn(r.iri()));
    }
    if let Some(c) = &m.contact {
        w.add(&s, p(FOAF, "mbox"), nn(c.as_str()));
    }
    // Like a distribution's provider address ([`FETCH_FROM`]): the broker's business only.
    for o in &m.providers {
        w.quads.push(Quad::new(
            s.clone(),
            p(NS, "providerOrigin"),
            Literal::new_simple_literal(o.as_str()),
            GraphName::DefaultGraph,
        ));
    }
    write_member_catalog(&mut w, m, iris);
    w.quads
}

/// The member's own `dcat:Catalog` (its datasets link themselves to it), part of the data
/// space's catalog.
fn write_member_catalog(w: &mut Writer, m: &Member, iris: &Iris) {
    let c = nn(iris.member_catalog(&m.ags));
    w.add(&c, rdf::TYPE.into_owned(), p(DCAT, "Catalog"));
    w.add(&c, p(DCT, "identifier"), Literal::new_simple_literal(format!("catalog-{}", m.ags)));
    w.add(
        &c,
        p(DCT, "title"),
        Literal::new_language_tagged_literal_unchecked(format!("Datenkatalog: {}", m.organisation), "de"),
    );
    w.add(
        &c,
        p(DCT, "description"),
        Literal::new_language_tagged_literal_unchecked(
            format!("Datensätze, die {} im kommunalen Datenraum bereitstellt.", m.organisation),
            "de",
        ),
    );
    w.add(&c, p(DCT, "publisher"), nn(iris.member(&m.ags)));
    w.add(&c, p(DCT, "language"), nn(format!("{LANGUAGE_PREFIX}DEU")));
    w.add(&c, p(DCT, "spatial"), nn(m.ags.iri()));
    w.add(&c, p(DCT, "isPartOf"), nn(iris.space_catalog()));
    if let Some(id) = &m.contributor {
        w.add(&c, p(DCATDE, "contributorID"), nn(id.as_str()));
    }
}

pub fn member_from_graph(g: &Graph, iri: &str, iris: &Iris) -> Option<Member> {
    let ags: Ags = g.literal(iri, DCT, "identifier")?.parse().ok()?;
    let contributor = g.iri(&iris.member_catalog(&ags), DCATDE, "contributorID");
    let mut roles: Vec<Role> = g
        .iris(iri, NS, "mayHoldRole")
        .iter()
        .filter_map(|r| r.strip_prefix(ROLE_IRI_PREFIX)?.parse().ok())
        .collect();
    roles.sort();
    let mut providers: Vec<super::model::Origin> = g
        .literals(iri, NS, "providerOrigin")
        .iter()
        .filter_map(|l| l.value().parse().ok())
        .collect();
    providers.sort();
    Some(Member {
        ags,
        organisation: g.literal(iri, FOAF, "name")?,
        roles,
        contact: g.iri(iri, FOAF, "mbox"),
        providers,
        contributor,
    })
}

/// The statements that keep a withdrawn identifier from being registered again.
pub fn tombstone_to_quads(t: &Tombstone, iris: &Iris) -> Vec<Quad> {
    let s = nn(iris.dataset(&t.id));
    let mut w = Writer {
        graph: GraphName::NamedNode(nn(iris.tombstones_graph())),
        quads: Vec::new(),
    };
    w.add(&s, rdf::TYPE.into_owned(), p(NS, "WithdrawnDataset"));
    w.add(&s, p(DCT, "identifier"), Literal::new_simple_literal(t.id.as_str()));
    w.add(&s, p(DCT, "publisher"), nn(iris.member(&t.publisher)));
    w.add(&s, p(NS, "withdrawn"), Literal::new_typed_literal(&t.withdrawn, xsd::DATE_TIME));
    w.quads
}

pub fn tombstone_from_graph(g: &Graph, id: &DatasetId, iris: &Iris) -> Option<Tombstone> {
    let iri = iris.dataset(id);
    Some(Tombstone {
        id: id.clone(),
        publisher: g.iri(&iri, DCT, "publisher")?.strip_prefix(&iris.member_prefix())?.parse().ok()?,
        withdrawn: g.literal(&iri, NS, "withdrawn")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{mailto, unmailto};

    #[test]
    fn any_email_address_makes_a_valid_iri_and_reads_back() {
        for email in [
            "amt@aalen.example",
            "\"Amt Nord\"@aalen.example",
            "bürger<>büro@aalen.example",
            "a%b@x.example",
        ] {
            let iri = mailto(email);
            assert!(oxigraph::model::NamedNode::new(&iri).is_ok(), "{email} -> {iri}");
            assert_eq!(unmailto(&iri).as_deref(), Some(email));
        }
    }
}
