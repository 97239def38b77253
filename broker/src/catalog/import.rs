//! Import of a portal's DCAT-AP.de export: parse, repair what real dumps get wrong, cut the
//! graph into one description per dataset, and say what was done.
//!
//! Why the graph and not the typed model: a dump says more than the API's JSON form has fields
//! for (checksums, byte sizes, conformance, rights, landing pages ...). What DCAT-AP.de defines
//! must reach harvesters again unchanged, so each dataset's statements are kept as they are
//! (after repair), with three changes only: the dataset gets an IRI under the broker's base
//! (its original one is kept as `adms:identifier`), its distributions get IRIs under it, and
//! its publisher is the member it is imported for (the dump's own publisher node is not kept).
//!
//! Every repair is counted by kind with one example, so a steward can see what the import
//! changed and fix it at the source.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oxigraph::io::RdfParser;
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{BlankNode, Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use serde::Serialize;

use super::dcat::Iris;
use super::documents::RdfSyntax;
use super::model::DatasetId;
use crate::identity::Ags;
use crate::ns::{
    ACCESS_RIGHT_PREFIX, ADMS, DCAT, DCATDE, DCATDE_DEF as DEF, DCT, DISTRIBUTION_STATUS_PREFIX, FILE_TYPE_PREFIX, GSP, KDR,
    LANGUAGE_PREFIX, LICENSES_PREFIX as LICENSES, LOCN, MEDIA_TYPE_PREFIX, SKOS, VCARD,
};

/// Most statements one imported dataset may have, with everything it links to: a shared node
/// is copied into each dataset that links to it, and an export must not multiply itself.
pub const MAX_STATEMENTS: usize = 20_000;

/// The base relative references in an export resolve against (see [`parse`]).
const NO_BASE: &str = "urn:kdr:relative/";

/// Namespaces of older DCAT-AP.de versions, rewritten to the current one.
const OLD_DCATDE: &[&str] = &[
    "https://www.dcat-ap.de/def/dcatde/1.1/",
    "http://www.dcat-ap.de/def/dcatde/1.1/",
    "http://dcat-ap.de/def/dcatde/1.1/",
    "https://www.dcat-ap.de/def/dcatde/1_0/",
    "http://dcat-ap.de/def/dcatde/1_0/",
    "https://www.dcat-ap.de/def/dcatde/",
    "http://www.dcat-ap.de/def/dcatde/",
];
/// Spellings of the DCAT-AP.de controlled vocabularies' host that are not the IRIs themselves.
const OLD_DEF_HOSTS: &[&str] = &[
    "https://www.dcat-ap.de/def/",
    "http://www.dcat-ap.de/def/",
    "https://dcat-ap.de/def/",
];
/// The file-type codes older dumps use for services, and the table's codes for them.
const FILE_TYPE_FIXES: &[(&str, &str)] = &[("WMS", "WMS_SRVC"), ("WFS", "WFS_SRVC"), ("WCS", "WCS_SRVC"), ("WMTS", "WMTS_SRVC")];
/// The ADMS 1.0 status IRIs older dumps give `adms:status`, and the EU distribution-status
/// codes DCAT-AP.de 3.0 requires instead (same meaning, one to one).
const ADMS_STATUS: &str = "http://purl.org/adms/status/";
const STATUS_FIXES: &[(&str, &str)] = &[
    ("Completed", "COMPLETED"),
    ("Deprecated", "DEPRECATED"),
    ("UnderDevelopment", "DEVELOP"),
    ("Withdrawn", "WITHDRAWN"),
];

/// Why an import cannot be made at all (nothing is written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not valid {syntax}: {reason}")]
    Syntax { syntax: &'static str, reason: String },
    #[error("the file describes no dcat:Dataset")]
    Empty,
}

/// One kind of repair: how often, how, and one example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Repair {
    pub kind: &'static str,
    pub how: &'static str,
    pub count: usize,
    /// The first value repaired, before and after (`before -> after`, or `before -> dropped`).
    pub example: String,
}

/// A dataset of the dump that is not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    pub dataset: String,
    pub reason: String,
    /// What the DCAT-AP.de shapes found, where that is the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<super::shacl::Finding>,
}

impl Refused {
    pub fn new(dataset: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            dataset: dataset.into(),
            reason: reason.into(),
            findings: Vec::new(),
        }
    }
}

/// One dataset as it will be stored: its statements, all about nodes under its new IRI (or
/// blank nodes), and a digest over them that does not depend on blank node labels.
#[derive(Debug, Clone)]
pub struct ImportedDataset {
    pub id: DatasetId,
    /// Its IRI in the dump.
    pub original: String,
    pub triples: Vec<Triple>,
    pub digest: String,
}

/// What a dump becomes before anything is written.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The dump's own catalog, if it describes exactly one (the import's default source).
    pub catalog: Option<String>,
    pub datasets: Vec<ImportedDataset>,
    pub repairs: Vec<Repair>,
    pub refused: Vec<Refused>,
}

#[derive(Default)]
struct Repairs(BTreeMap<&'static str, Repair>);

impl Repairs {
    fn note(&mut self, kind: &'static str, how: &'static str, before: &str, after: Option<&str>) {
        let entry = self.0.entry(kind).or_insert_with(|| Repair {
            kind,
            how,
            count: 0,
            example: format!("{before} -> {}", after.unwrap_or("dropped")),
        });
        entry.count += 1;
    }
}

fn nn(iri: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

/// Parses `bytes` in `syntax` into triples (graph names, if any, are dropped).
pub fn parse(bytes: &[u8], syntax: RdfSyntax) -> Result<Vec<Triple>, ImportError> {
    // Exports without a base still write relative references (a bare `info@stadt.de` as a
    // resource); they resolve against a base no real IRI has, and [`repair`] deals with them.
    let parser = RdfParser::from_format(syntax.format())
        .with_base_iri(NO_BASE)
        .map_err(|e| ImportError::Syntax {
            syntax: syntax.media_type(),
            reason: e.to_string(),
        })?;
    parser
        .for_slice(bytes)
        .map(|q| q.map(|q| Triple::new(q.subject, q.predicate, q.object)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ImportError::Syntax {
            syntax: syntax.media_type(),
            reason: e.to_string(),
        })
}

/// An IRI with the older DCAT-AP.de spellings replaced, if it had one.
fn current_iri(iri: &str) -> Option<String> {
    if let Some(rest) = OLD_DCATDE.iter().find_map(|old| iri.strip_prefix(old)) {
        return Some(format!("{DCATDE}{rest}"));
    }
    OLD_DEF_HOSTS
        .iter()
        .find_map(|old| iri.strip_prefix(old))
        .filter(|rest| !rest.starts_with("dcatde/"))
        .map(|rest| format!("{DEF}{rest}"))
}

/// A date or date-time as XML Schema writes it, from the spellings dumps use; `None` if it is
/// none of them.
pub fn repair_date(value: &str) -> Option<Literal> {
    let v = value.trim();
    let is_date = |s: &str| {
        s.len() == 10
            && s.as_bytes()[4] == b'-'
            && s.as_bytes()[7] == b'-'
            && s.bytes().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit())
    };
    if is_date(v) {
        return Some(Literal::new_typed_literal(v, xsd::DATE));
    }
    // 03.05.2019
    if let [d, m, y] = v.split('.').collect::<Vec<_>>()[..]
        && d.len() <= 2
        && m.len() <= 2
        && y.len() == 4
        && [d, m, y].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let date = format!("{y}-{m:0>2}-{d:0>2}");
        return is_date(&date).then(|| Literal::new_typed_literal(date, xsd::DATE));
    }
    // 2019-05-03 10:00:00, 2019-05-03T10:00:00.123+02:00
    let (date, time) = v.split_once(['T', ' '])?;
    let time = time.trim();
    let clock = time.get(..8)?;
    let ok_clock = clock.len() == 8
        && clock.as_bytes()[2] == b':'
        && clock.as_bytes()[5] == b':'
        && clock.bytes().enumerate().all(|(i, b)| i == 2 || i == 5 || b.is_ascii_digit());
    let rest = &time[8..];
    let ok_rest = rest.bytes().all(|b| b.is_ascii_digit() || b"+-:.Z".contains(&b));
    (is_date(date) && ok_clock && ok_rest).then(|| Literal::new_typed_literal(format!("{date}T{time}"), xsd::DATE_TIME))
}

/// Whether a date literal is already as XML Schema writes it (what [`repair_date`] makes).
fn valid_literal(l: &Literal) -> bool {
    repair_date(l.value()).is_some_and(|fixed| fixed.value() == l.value() && fixed.datatype() == l.datatype())
}

const DATE_PROPERTIES: &[&str] = &["issued", "modified"];

/// Repairs one statement into `out`: itself, changed, dropped, or (a geometry given as a
/// literal) two statements.
fn repair(t: Triple, r: &mut Repairs, out: &mut Vec<Triple>) {
    let Triple {
        subject,
        predicate,
        object,
    } = t;
    // A relative reference cannot be resolved without the base the export did not give; only
    // an e-mail address written as one can be repaired (below).
    let is_email = predicate.as_str() == format!("{VCARD}hasEmail");
    let relative = match (&subject, &object) {
        (NamedOrBlankNode::NamedNode(n), _) if n.as_str().starts_with(NO_BASE) => Some(n.as_str()),
        (_, Term::NamedNode(n)) if n.as_str().starts_with(NO_BASE) && !(is_email && n.as_str().contains('@')) => Some(n.as_str()),
        _ => None,
    };
    if let Some(reference) = relative {
        r.note(
            "relative-iri",
            "a statement about a relative reference (no base to resolve it) was dropped",
            reference,
            None,
        );
        return;
    }
    let mut predicate = predicate;
    if let Some(fixed) = current_iri(predicate.as_str()) {
        r.note(
            "namespace",
            "older DCAT-AP.de namespace replaced by http://dcat-ap.de/def/dcatde/",
            predicate.as_str(),
            Some(&fixed),
        );
        predicate = nn(fixed);
    }
    let p = predicate.as_str();
    let object = match object {
        Term::NamedNode(n) => repair_iri_object(p, n, r),
        Term::Literal(l) if p == format!("{LOCN}geometry") => {
            let node = geometry_node(l, r, out);
            Term::BlankNode(node)
        }
        Term::Literal(l) => match repair_literal_object(p, l, r) {
            Some(object) => object,
            None => return,
        },
        other => other,
    };
    out.push(Triple::new(subject, predicate, object));
}

/// DCAT-AP.de 3.0 wants `locn:geometry` to point at a geometry node; dumps give the WKT or
/// GeoJSON literal itself. The literal moves under a new `locn:Geometry` node as GeoSPARQL
/// writes it (`gsp:asWKT` / `gsp:asGeoJSON`), unchanged.
fn geometry_node(l: Literal, r: &mut Repairs, out: &mut Vec<Triple>) -> BlankNode {
    let node = BlankNode::default();
    let geo_json = l.datatype().as_str() == format!("{GSP}geoJSONLiteral")
        || l.datatype().as_str() == format!("{MEDIA_TYPE_PREFIX}application/vnd.geo+json")
        || l.value().trim_start().starts_with('{');
    let (property, datatype) = if geo_json {
        ("asGeoJSON", "geoJSONLiteral")
    } else {
        ("asWKT", "wktLiteral")
    };
    let short: String = l.value().chars().take(40).collect();
    r.note(
        "geometry-literal",
        "a geometry given as a literal moved under a locn:Geometry node (gsp:asWKT or gsp:asGeoJSON)",
        &short,
        Some(&format!("[ a locn:Geometry; gsp:{property} \"{short}\"^^gsp:{datatype} ]")),
    );
    let subject = NamedOrBlankNode::BlankNode(node.clone());
    out.push(Triple::new(subject.clone(), rdf::TYPE, nn(format!("{LOCN}Geometry"))));
    let literal = Literal::new_typed_literal(l.value(), nn(format!("{GSP}{datatype}")));
    out.push(Triple::new(subject, nn(format!("{GSP}{property}")), literal));
    node
}

fn repair_iri_object(p: &str, n: NamedNode, r: &mut Repairs) -> Term {
    let mut iri = n.into_string();
    if let Some(fixed) = current_iri(&iri) {
        let kind = if fixed.starts_with(LICENSES) {
            "licence-iri"
        } else {
            "vocabulary-iri"
        };
        r.note(
            kind,
            "www.dcat-ap.de or https spelling replaced by the vocabulary's IRI (http://dcat-ap.de/def/...)",
            &iri,
            Some(&fixed),
        );
        iri = fixed;
    }
    if p == format!("{VCARD}hasEmail") && !iri.starts_with("mailto:") && iri.contains('@') {
        let address = iri.strip_prefix(NO_BASE).unwrap_or_else(|| iri.rsplit("//").next().unwrap_or(&iri));
        let fixed = super::dcat::mailto(address.trim_start_matches('/'));
        r.note("email-iri", "e-mail address as a resource made a mailto: IRI", &iri, Some(&fixed));
        iri = fixed;
    }
    if p == format!("{DCT}format")
        && let Some(code) = iri.strip_prefix(FILE_TYPE_PREFIX)
        && let Some((_, fixed)) = FILE_TYPE_FIXES.iter().find(|(old, _)| *old == code)
    {
        let fixed = format!("{FILE_TYPE_PREFIX}{fixed}");
        r.note(
            "file-type",
            "service file type replaced by the EU table's code (WMS -> WMS_SRVC)",
            &iri,
            Some(&fixed),
        );
        iri = fixed;
    }
    if p == format!("{ADMS}status")
        && let Some(code) = iri.strip_prefix(ADMS_STATUS)
        && let Some((_, fixed)) = STATUS_FIXES.iter().find(|(old, _)| *old == code)
    {
        let fixed = format!("{DISTRIBUTION_STATUS_PREFIX}{fixed}");
        r.note(
            "status",
            "ADMS 1.0 status replaced by the EU distribution-status code (Completed -> COMPLETED)",
            &iri,
            Some(&fixed),
        );
        iri = fixed;
    }
    if p == format!("{DCT}mediaType") {
        r.note(
            "media-type-property",
            "dct:mediaType replaced by dcat:mediaType (DCAT-AP.de 3.0)",
            &iri,
            Some(&iri),
        );
    }
    Term::NamedNode(nn(iri))
}

fn repair_literal_object(p: &str, l: Literal, r: &mut Repairs) -> Option<Term> {
    let value = l.value().trim();
    let is_iri = |s: &str| (s.starts_with("http://") || s.starts_with("https://")) && NamedNode::new(s).is_ok();
    let local = p.strip_prefix(DCT).unwrap_or_default();
    match local {
        "license" | "rights" => {
            let iri = if is_iri(value) {
                current_iri(value).unwrap_or_else(|| value.to_owned())
            } else {
                format!("{LICENSES}{value}")
            };
            if NamedNode::new(&iri).is_ok() && (is_iri(value) || super::dcat::is_licence(&iri)) {
                r.note(
                    "licence-literal",
                    "licence given as text made the vocabulary's IRI",
                    value,
                    Some(&iri),
                );
                return Some(Term::NamedNode(nn(iri)));
            }
            Some(Term::Literal(l))
        }
        "language" if is_iri(value) => {
            r.note("language-literal", "language IRI given as text made an IRI", value, Some(value));
            Some(Term::NamedNode(nn(value)))
        }
        "language" if value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic()) => {
            let iri = format!("{LANGUAGE_PREFIX}{}", value.to_ascii_uppercase());
            r.note(
                "language-literal",
                "language code given as text made the EU language IRI",
                value,
                Some(&iri),
            );
            Some(Term::NamedNode(nn(iri)))
        }
        "accessRights" => match value.to_ascii_uppercase().replace([' ', '-'], "_").as_str() {
            code @ ("PUBLIC" | "RESTRICTED" | "NON_PUBLIC") => {
                let iri = format!("{ACCESS_RIGHT_PREFIX}{code}");
                r.note(
                    "access-rights-literal",
                    "access rights given as text made the EU access-right IRI",
                    value,
                    Some(&iri),
                );
                Some(Term::NamedNode(nn(iri)))
            }
            _ => Some(Term::Literal(l)),
        },
        d if DATE_PROPERTIES.contains(&d) && !valid_literal(&l) => match repair_date(value) {
            Some(fixed) => {
                r.note(
                    "date",
                    "date in another spelling written as xsd:date or xsd:dateTime",
                    value,
                    Some(fixed.value()),
                );
                Some(Term::Literal(fixed))
            }
            None => {
                r.note("date-dropped", "a date that is no date was dropped", value, None);
                None
            }
        },
        _ if p == format!("{DCAT}byteSize") && l.datatype() != xsd::NON_NEGATIVE_INTEGER => match whole_number(value) {
            Some(bytes) => {
                r.note(
                    "byte-size",
                    "byte size written as xsd:nonNegativeInteger (it was a decimal or text)",
                    value,
                    Some(&bytes),
                );
                Some(Term::Literal(Literal::new_typed_literal(bytes, xsd::NON_NEGATIVE_INTEGER)))
            }
            None => Some(Term::Literal(l)),
        },
        _ if p == format!("{VCARD}hasEmail") && value.contains('@') => {
            let iri = super::dcat::mailto(value.trim_start_matches("mailto:"));
            r.note("email-literal", "e-mail address as text made a mailto: IRI", value, Some(&iri));
            Some(Term::NamedNode(nn(iri)))
        }
        _ => Some(Term::Literal(l)),
    }
}

/// `value` as a whole number of bytes without leading zeros (`"1024"`, `"1024.0"`), or `None`
/// for anything else (a negative, a fraction, text): that stays, and the shapes say why.
fn whole_number(value: &str) -> Option<String> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 20 || !digits(whole) || !digits(fraction) || fraction.bytes().any(|b| b != b'0') {
        return None;
    }
    let trimmed = whole.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0" } else { trimmed }.to_owned())
}

/// A dataset identifier from a dump's identifier or IRI: lower case, runs of anything else
/// than letters and digits as one hyphen, at most 63 characters.
pub fn identifier_from(text: &str) -> Option<DatasetId> {
    let mut out = String::new();
    for c in text.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out = &out[..out.len().min(63)];
    out.trim_end_matches('-').parse().ok()
}

fn key(s: &NamedOrBlankNode) -> String {
    s.to_string()
}

fn term_key(t: &Term) -> Option<String> {
    match t {
        Term::NamedNode(n) => Some(n.to_string()),
        Term::BlankNode(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Repairs `triples` and cuts them into datasets for `publisher`.
pub fn prepare(triples: Vec<Triple>, iris: &Iris, publisher: &Ags) -> Result<Prepared, ImportError> {
    let mut repairs = Repairs::default();
    let mut repaired = Vec::with_capacity(triples.len());
    for t in triples {
        repair(t, &mut repairs, &mut repaired);
    }
    let triples = repaired;
    let mut by_subject: HashMap<String, Vec<&Triple>> = HashMap::new();
    for t in &triples {
        by_subject.entry(key(&t.subject)).or_default().push(t);
    }
    let typed = |class: &str| -> BTreeSet<String> {
        triples
            .iter()
            .filter(|t| t.predicate == rdf::TYPE && matches!(&t.object, Term::NamedNode(n) if n.as_str() == class))
            .map(|t| key(&t.subject))
            .collect()
    };
    let datasets = typed(&format!("{DCAT}Dataset"));
    if datasets.is_empty() {
        return Err(ImportError::Empty);
    }
    // Nodes never copied into a dataset's graph: other datasets, catalogs, publishers.
    let mut stop: BTreeSet<String> = datasets.clone();
    let catalogs = typed(&format!("{DCAT}Catalog"));
    let catalog = match catalogs.iter().collect::<Vec<_>>()[..] {
        [one] if one.starts_with('<') => Some(one.trim_matches(['<', '>']).to_owned()),
        _ => None,
    };
    stop.extend(catalogs);
    let mut prepared = Prepared {
        catalog,
        ..Prepared::default()
    };
    let mut taken: BTreeMap<DatasetId, String> = BTreeMap::new();
    for original in &datasets {
        let statements = &by_subject[original];
        let identifier = statements
            .iter()
            .find(|t| t.predicate.as_str() == format!("{DCT}identifier"))
            .and_then(|t| match &t.object {
                Term::Literal(l) => Some(l.value().to_owned()),
                _ => None,
            });
        let plain = original.trim_matches(['<', '>']).to_owned();
        let id = identifier
            .as_deref()
            .and_then(identifier_from)
            .or_else(|| identifier_from(plain.trim_end_matches('/').rsplit('/').next().unwrap_or_default()));
        let Some(id) = id else {
            prepared.refused.push(Refused::new(
                plain,
                "neither its dct:identifier nor its IRI gives an identifier (3 to 63 letters, digits or hyphens)",
            ));
            continue;
        };
        if let Some(first) = taken.get(&id) {
            prepared.refused.push(Refused::new(
                plain,
                format!("its identifier '{id}' is the one of {first} in the same file"),
            ));
            continue;
        }
        taken.insert(id.clone(), plain.clone());
        let triples = match cut(original, &id, &plain, &by_subject, &stop, iris, publisher, &mut repairs) {
            Ok(t) => t,
            Err(reason) => {
                prepared.refused.push(Refused::new(plain, reason));
                continue;
            }
        };
        let digest = digest(&triples);
        prepared.datasets.push(ImportedDataset {
            id,
            original: plain,
            triples,
            digest,
        });
    }
    prepared.repairs = repairs.0.into_values().collect();
    Ok(prepared)
}

/// The statements of one dataset: everything reachable from it except other datasets and
/// catalogs (and its publisher, which becomes the member), with its node and its distributions renamed under its new IRI.
#[allow(clippy::too_many_arguments)]
fn cut(
    original: &str,
    id: &DatasetId,
    plain: &str,
    by_subject: &HashMap<String, Vec<&Triple>>,
    stop: &BTreeSet<String>,
    iris: &Iris,
    publisher: &Ags,
    r: &mut Repairs,
) -> Result<Vec<Triple>, String> {
    let dataset = nn(iris.dataset(id));
    let mut rename: HashMap<String, Term> = HashMap::from([(original.to_owned(), Term::NamedNode(dataset.clone()))]);
    let mut distributions: Vec<String> = by_subject[original]
        .iter()
        .filter(|t| t.predicate.as_str() == format!("{DCAT}distribution"))
        .filter_map(|t| term_key(&t.object))
        .collect();
    distributions.sort();
    distributions.dedup();
    for (i, d) in distributions.iter().enumerate() {
        rename.insert(d.clone(), Term::NamedNode(nn(iris.distribution(id, i))));
    }
    let renamed = |t: &Term| -> Term { term_key(t).and_then(|k| rename.get(&k).cloned()).unwrap_or_else(|| t.clone()) };
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue = vec![original.to_owned()];
    let distribution_prefix = format!("{}/distributions/", dataset.as_str());
    while let Some(node) = queue.pop() {
        if !seen.insert(node.clone()) {
            continue;
        }
        for t in by_subject.get(&node).into_iter().flatten() {
            let subject = match renamed(&Term::from(t.subject.clone())) {
                Term::NamedNode(n) => NamedOrBlankNode::NamedNode(n),
                Term::BlankNode(b) => NamedOrBlankNode::BlankNode(b),
                _ => continue,
            };
            // What the broker itself says (its namespace, its members, other datasets,
            // governance) is never taken from an export: such a statement would read, in the
            // union every query sees, as if the broker had made it.
            if t.predicate.as_str().starts_with(KDR) {
                r.note(
                    "broker-term",
                    "a statement with a predicate of the broker's own namespace was dropped",
                    t.predicate.as_str(),
                    None,
                );
                continue;
            }
            if let NamedOrBlankNode::NamedNode(n) = &subject
                && n.as_str().starts_with(iris.base())
                && *n != dataset
                && !n.as_str().starts_with(&distribution_prefix)
            {
                r.note(
                    "broker-iri",
                    "a statement about a resource of the broker (a member, another dataset) was dropped",
                    n.as_str(),
                    None,
                );
                continue;
            }
            if out.len() >= MAX_STATEMENTS {
                return Err(format!("it has more than {MAX_STATEMENTS} statements (with what it links to)"));
            }
            // The dataset's publisher is the member it is imported for; the dump's publisher
            // node is not followed from there (as a creator or elsewhere it is).
            let is_publisher = node == original && t.predicate.as_str() == format!("{DCT}publisher");
            let object = if is_publisher {
                Term::NamedNode(nn(iris.member(publisher)))
            } else {
                renamed(&t.object)
            };
            if let Some(k) = term_key(&t.object).filter(|k| !is_publisher && !stop.contains(k) && by_subject.contains_key(k)) {
                queue.push(k);
            }
            out.push(Triple::new(subject, t.predicate.clone(), object));
        }
    }
    let media = format!("{DCT}mediaType");
    for t in &mut out {
        if t.predicate.as_str() == media {
            t.predicate = nn(format!("{DCAT}mediaType"));
        }
    }
    if !out
        .iter()
        .any(|t| t.predicate.as_str() == format!("{DCT}publisher") && t.subject == NamedOrBlankNode::NamedNode(dataset.clone()))
    {
        out.push(Triple::new(
            dataset.clone(),
            nn(format!("{DCT}publisher")),
            nn(iris.member(publisher)),
        ));
    }
    // The identifier the broker knows it by, and the one it had.
    out.retain(|t| !(t.subject == NamedOrBlankNode::NamedNode(dataset.clone()) && t.predicate.as_str() == format!("{DCT}identifier")));
    out.push(Triple::new(
        dataset.clone(),
        nn(format!("{DCT}identifier")),
        Literal::new_simple_literal(id.as_str()),
    ));
    let other = BlankNode::default();
    out.push(Triple::new(dataset.clone(), nn(format!("{ADMS}identifier")), other.clone()));
    out.push(Triple::new(other.clone(), rdf::TYPE.into_owned(), nn(format!("{ADMS}Identifier"))));
    out.push(Triple::new(
        other,
        nn(format!("{SKOS}notation")),
        Literal::new_simple_literal(plain),
    ));
    out.push(Triple::new(
        nn(iris.member_catalog(publisher)),
        nn(format!("{DCAT}dataset")),
        dataset,
    ));
    Ok(out)
}

/// SHA-256 over the statements in a form independent of blank node labels and order: each
/// blank node is written as the sorted statements about it (nested ones likewise).
fn digest(triples: &[Triple]) -> String {
    let mut about: HashMap<String, Vec<&Triple>> = HashMap::new();
    for t in triples {
        about.entry(key(&t.subject)).or_default().push(t);
    }
    fn canon(term: &Term, about: &HashMap<String, Vec<&Triple>>, depth: usize) -> String {
        match term {
            Term::BlankNode(b) if depth < 8 => {
                let mut parts: Vec<String> = about
                    .get(&b.to_string())
                    .into_iter()
                    .flatten()
                    .map(|t| format!("{} {}", t.predicate, canon(&t.object, about, depth + 1)))
                    .collect();
                parts.sort();
                format!("[{}]", parts.join("; "))
            }
            other => other.to_string(),
        }
    }
    let mut lines: Vec<String> = triples
        .iter()
        .filter(|t| matches!(t.subject, NamedOrBlankNode::NamedNode(_)))
        .map(|t| format!("{} {} {}", t.subject, t.predicate, canon(&t.object, &about, 0)))
        .collect();
    lines.sort();
    let text = lines.join("\n");
    crate::hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

/// What an import changes, worked out before anything is written (and recorded in the audit
/// trail before it is made).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Where the datasets come from (the dump's catalog IRI, or what the steward named).
    pub source: String,
    pub publisher: String,
    pub imported: Vec<DatasetId>,
    pub updated: Vec<DatasetId>,
    /// Imported before with the same statements: not written again.
    pub unchanged: Vec<DatasetId>,
    /// Imported before from the same source and gone from it now.
    pub withdrawn: Vec<DatasetId>,
    /// In the dump, but their identifier belongs to another dataset (or a withdrawn one), or
    /// their description violates the DCAT-AP.de shapes.
    pub refused: Vec<Refused>,
    /// What the shapes warn about in the datasets to be written, by property and message.
    pub warnings: Vec<super::shacl::WarningGroup>,
    /// The catalog's generation the plan was made for: applied only to that one.
    #[serde(skip)]
    pub generation: u64,
}

/// The predicate marking an imported dataset with where it came from (`source` of the import).
pub const IMPORTED_FROM: &str = "https://w3id.org/kdr/importedFrom";
/// The predicate holding the digest of what was imported (an unchanged dataset is not rewritten).
pub const IMPORT_DIGEST: &str = "https://w3id.org/kdr/importDigest";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_spellings_dumps_use_are_repaired_and_others_are_not() {
        for (given, expected) in [
            ("2019-05-03", Some("2019-05-03")),
            ("3.5.2019", Some("2019-05-03")),
            ("03.05.2019", Some("2019-05-03")),
            ("2019-05-03 10:00:00", Some("2019-05-03T10:00:00")),
            ("2019-05-03T10:00:00.5+02:00", Some("2019-05-03T10:00:00.5+02:00")),
            ("Mai 2019", None),
            ("2019", None),
            ("", None),
        ] {
            assert_eq!(repair_date(given).map(|l| l.value().to_owned()).as_deref(), expected, "{given}");
        }
    }

    #[test]
    fn identifiers_come_out_in_the_data_spaces_form() {
        for (given, expected) in [
            ("def01e2f-270d-450d-a329-557e635c37d5", Some("def01e2f-270d-450d-a329-557e635c37d5")),
            ("Bäume  Rostock (2019)", Some("b-ume-rostock-2019")),
            ("--x", None),
            ("ab", None),
        ] {
            assert_eq!(identifier_from(given).map(|i| i.to_string()).as_deref(), expected, "{given}");
        }
    }

    #[test]
    fn older_namespaces_and_licence_spellings_become_the_current_iris() {
        assert_eq!(
            current_iri("https://www.dcat-ap.de/def/dcatde/1.1/contributorID").as_deref(),
            Some("http://dcat-ap.de/def/dcatde/contributorID")
        );
        assert_eq!(
            current_iri("https://www.dcat-ap.de/def/licenses/cc-zero").as_deref(),
            Some("http://dcat-ap.de/def/licenses/cc-zero")
        );
        assert_eq!(current_iri("http://dcat-ap.de/def/licenses/cc-zero"), None);
        assert_eq!(current_iri("http://purl.org/dc/terms/title"), None);
    }

    fn repaired(t: Triple) -> (Vec<Triple>, Vec<&'static str>) {
        let (mut r, mut out) = (Repairs::default(), Vec::new());
        repair(t, &mut r, &mut out);
        (out, r.0.keys().copied().collect())
    }

    #[test]
    fn byte_sizes_statuses_and_geometry_literals_get_the_form_the_shapes_require() {
        let s = nn("https://portal.example/d/1");
        let size = |v: &str, dt| Triple::new(s.clone(), nn(format!("{DCAT}byteSize")), Literal::new_typed_literal(v, dt));
        let (out, kinds) = repaired(size("001024.00", xsd::DECIMAL));
        assert_eq!(out[0].object, Literal::new_typed_literal("1024", xsd::NON_NEGATIVE_INTEGER).into());
        assert_eq!(kinds, ["byte-size"]);
        for kept in ["10.5", "-3", "viel", ""] {
            let (out, kinds) = repaired(size(kept, xsd::STRING));
            assert_eq!(out[0].object, Literal::new_typed_literal(kept, xsd::STRING).into(), "{kept}");
            assert!(kinds.is_empty(), "{kept}");
        }
        let status = Triple::new(
            s.clone(),
            nn(format!("{ADMS}status")),
            nn("http://purl.org/adms/status/UnderDevelopment"),
        );
        let (out, kinds) = repaired(status);
        assert_eq!(out[0].object, nn(format!("{DISTRIBUTION_STATUS_PREFIX}DEVELOP")).into());
        assert_eq!(kinds, ["status"]);
        let wkt = Literal::new_typed_literal("POINT(10 48)", nn(format!("{GSP}wktLiteral")));
        let (out, kinds) = repaired(Triple::new(s.clone(), nn(format!("{LOCN}geometry")), wkt.clone()));
        assert_eq!(kinds, ["geometry-literal"]);
        assert_eq!(out.len(), 3, "{out:?}");
        let node = out
            .iter()
            .find(|t| t.subject == s.clone().into())
            .map(|t| t.object.clone())
            .expect("link");
        assert!(
            out.iter()
                .any(|t| t.object == Term::from(wkt.clone()) && Term::from(t.subject.clone()) == node)
        );
        let json = Literal::new_typed_literal("{\"type\":\"Point\"}", nn(format!("{MEDIA_TYPE_PREFIX}application/vnd.geo+json")));
        let (out, _) = repaired(Triple::new(s, nn(format!("{LOCN}geometry")), json));
        assert!(out.iter().any(|t| t.predicate.as_str() == format!("{GSP}asGeoJSON")), "{out:?}");
    }
}
