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

pub use crate::ns::{ACCESS_RIGHT_PREFIX, DCAT, DCATDE, DCT, FOAF, MEDIA_TYPE_PREFIX, THEME_PREFIX, VCARD};
const LEVEL_MUNICIPALITY: &str = "http://dcat-ap.de/def/politicalGeocoding/Level/municipality";

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
        // DCAT-AP.de Konvention 11: political geocoding mirrored in dcatde:politicalGeocodingURI.
        if sp.starts_with(AGS_IRI_PREFIX) {
            w.add(&s, p(DCATDE, "politicalGeocodingURI"), nn(sp.as_str()));
            w.add(&s, p(DCATDE, "politicalGeocodingLevelURI"), nn(LEVEL_MUNICIPALITY));
        }
    }
    write_temporal(&mut w, &s, &d.temporal);
    if let Some(l) = &d.license {
        w.add(&s, p(DCT, "license"), nn(l.as_str()));
    }
    if let Some(a) = &d.access_rights {
        w.add(&s, p(DCT, "accessRights"), nn(format!("{ACCESS_RIGHT_PREFIX}{a}")));
    }
    write_contact(&mut w, &s, &d.contact_point);
    for (i, dist) in d.distributions.iter().enumerate() {
        write_distribution(&mut w, &s, i, dist, d.license.as_deref());
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

fn write_distribution(w: &mut Writer, s: &NamedNode, i: usize, d: &Distribution, license: Option<&str>) {
    let node = nn(format!("{}/distributions/{i}", s.as_str()));
    w.add(s, p(DCAT, "distribution"), node.clone());
    w.add(&node, rdf::TYPE.into_owned(), p(DCAT, "Distribution"));
    w.add(&node, p(DCT, "identifier"), Literal::new_simple_literal(i.to_string()));
    if let Some(t) = &d.title {
        w.add(&node, p(DCT, "title"), Literal::new_simple_literal(t));
    }
    w.add(&node, p(DCT, "mediaType"), nn(format!("{MEDIA_TYPE_PREFIX}{}", d.media_type)));
    match &d.access_url {
        Access::Url(u) => w.add(&node, p(DCAT, "accessURL"), nn(u.as_str())),
        // Hosted data is served by the broker itself; the exchange API is its access point.
        Access::Hosted => {
            w.add(&node, p(DCAT, "accessURL"), nn(format!("{}/data", s.as_str())));
            w.add(&node, p(NS, "hostedByBroker"), Literal::from(true));
        }
    }
    // DCAT-AP.de Konvention 32: distributions carry a licence.
    if let Some(l) = license {
        w.add(&node, p(DCT, "license"), nn(l));
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
    let temporal_iri = g.iri(iri, DCT, "temporal")?;
    let contact_iri = g.iri(iri, DCAT, "contactPoint")?;
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
    Some(Dataset {
        id,
        publisher,
        issued: g.literal(iri, DCT, "issued")?,
        modified: g.literal(iri, DCT, "modified")?,
        title: lang_text("title"),
        description: lang_text("description"),
        themes,
        keywords,
        spatial,
        temporal: Temporal {
            start: g.literal(&temporal_iri, DCAT, "startDate")?,
            end: g.literal(&temporal_iri, DCAT, "endDate"),
        },
        license: g.iri(iri, DCT, "license"),
        access_rights: g
            .iri(iri, DCT, "accessRights")
            .and_then(|a| a.strip_prefix(ACCESS_RIGHT_PREFIX).map(str::to_owned)),
        contact_point: ContactPoint {
            name: g.literal(&contact_iri, VCARD, "fn")?,
            email: g.iri(&contact_iri, VCARD, "hasEmail").and_then(|m| unmailto(&m)),
            url: g.iri(&contact_iri, VCARD, "hasURL"),
        },
        distributions: read_distributions(g, iri),
    })
}

fn read_distributions(g: &Graph, iri: &str) -> Vec<Distribution> {
    let mut dists: Vec<(usize, Distribution)> = g
        .iris(iri, DCAT, "distribution")
        .iter()
        .filter_map(|d| {
            let index: usize = g.literal(d, DCT, "identifier")?.parse().ok()?;
            let hosted = g.literal(d, NS, "hostedByBroker").is_some_and(|v| v == "true");
            let access_url = if hosted {
                Access::Hosted
            } else {
                Access::Url(g.iri(d, DCAT, "accessURL")?)
            };
            Some((
                index,
                Distribution {
                    title: g.literal(d, DCT, "title"),
                    media_type: g.iri(d, DCT, "mediaType")?.strip_prefix(MEDIA_TYPE_PREFIX)?.to_owned(),
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
    w.add(&s, p(DCATDE, "politicalGeocodingURI"), nn(m.ags.iri()));
    w.add(&s, p(DCT, "type"), nn("http://purl.org/adms/publishertype/LocalAuthority"));
    for r in &m.roles {
        w.add(&s, p(NS, "mayHoldRole"), nn(r.iri()));
    }
    if let Some(c) = &m.contact {
        w.add(&s, p(FOAF, "mbox"), nn(c.as_str()));
    }
    for o in &m.providers {
        w.add(&s, p(NS, "providerOrigin"), Literal::new_simple_literal(o.as_str()));
    }
    w.quads
}

pub fn member_from_graph(g: &Graph, iri: &str) -> Option<Member> {
    let ags: Ags = g.literal(iri, DCT, "identifier")?.parse().ok()?;
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
