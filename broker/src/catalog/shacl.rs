//! SHACL validation of dataset descriptions against the official DCAT-AP.de 3.0 shapes
//! (GovData's profile, `schemas/dcat-ap-de/`), with rudof's `shacl` crate.
//!
//! Why these shapes and not our own checks: a description the broker accepts should pass the
//! validator GovData runs on what it harvests, and the shapes are that validator's. Violations
//! refuse a registration (and one dataset of an import); warnings are kept and shown.
//!
//! Why per dataset: a description is validated with only its own statements (what the broker
//! would store) plus, from the vocabularies the profile imports, what is said about the IRIs
//! it uses: their `rdf:type`, `skos:inScheme` and the classes' `rdfs:subClassOf` chain. That is
//! all the shapes look at beyond the description (membership in a code list, `sh:class`), and
//! it keeps validation proportional to one description, not to the store or the 4 MB of
//! vocabularies.
//!
//! The shapes and vocabularies are built into the binary and compiled once, on first use.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::OnceLock;

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::vocab::{rdf, rdfs};
use oxigraph::model::{Graph, NamedNode, NamedNodeRef, NamedOrBlankNodeRef, Term, TermRef, Triple, TripleRef};
use rudof_rdf::rdf_core::RDFFormat;
use rudof_rdf::rdf_impl::{OxigraphInMemory, ReaderMode};
use serde::Serialize;
use shacl::ir::IRSchema;
use shacl::rdf::ShaclParser;
use shacl::validator::processor::{GraphValidation, ShaclProcessor};
use shacl::validator::store::Graph as ShaclGraph;
use shacl::validator::{ShaclConfig, ShaclValidationMode};

use crate::ns::SKOS;

/// What the findings are measured against: GovData's validation profile.
pub const PROFILE: &str = "DCAT-AP.de 3.0 - Spezifikation (GovData v30_de_spec)";

const SHAPES: &[(&str, &str)] = &[
    (
        "dcat-ap-SHACL.ttl",
        include_str!("../../../schemas/dcat-ap-de/shapes/dcat-ap-SHACL.ttl"),
    ),
    (
        "dcat-ap-SHACL-DE.ttl",
        include_str!("../../../schemas/dcat-ap-de/shapes/dcat-ap-SHACL-DE.ttl"),
    ),
    (
        "dcat-ap-de-deprecated.ttl",
        include_str!("../../../schemas/dcat-ap-de/shapes/dcat-ap-de-deprecated.ttl"),
    ),
    (
        "dcat-ap-spec-german-additions.ttl",
        include_str!("../../../schemas/dcat-ap-de/shapes/dcat-ap-spec-german-additions.ttl"),
    ),
    (
        "dcat-ap-de-controlledvocabularies.ttl",
        include_str!("../../../schemas/dcat-ap-de/shapes/dcat-ap-de-controlledvocabularies.ttl"),
    ),
];

const VOCABULARIES: &[(&str, &[u8])] = &[
    (
        "eu-language.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-language.rdf"),
    ),
    (
        "eu-file-type.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-file-type.rdf"),
    ),
    (
        "eu-frequency.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-frequency.rdf"),
    ),
    (
        "eu-access-right.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-access-right.rdf"),
    ),
    (
        "eu-data-theme.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-data-theme.rdf"),
    ),
    (
        "eu-distribution-status.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-distribution-status.rdf"),
    ),
    (
        "eu-planned-availability.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-planned-availability.rdf"),
    ),
    (
        "eu-dataset-type.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/eu-dataset-type.rdf"),
    ),
    (
        "dcat-ap-de-contributors.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/dcat-ap-de-contributors.rdf"),
    ),
    (
        "dcat-ap-de-licenses-open.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/dcat-ap-de-licenses-open.rdf"),
    ),
    ("foaf_0_1.rdf", include_bytes!("../../../schemas/dcat-ap-de/vocab/foaf_0_1.rdf")),
    ("vcard.ttl", include_bytes!("../../../schemas/dcat-ap-de/vocab/vcard.ttl")),
    ("org.ttl", include_bytes!("../../../schemas/dcat-ap-de/vocab/org.ttl")),
    (
        "spdx-ontology.owl.xml",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/spdx-ontology.owl.xml"),
    ),
    (
        "ADMS_SKOS_v1.00.rdf",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/ADMS_SKOS_v1.00.rdf"),
    ),
    (
        "political-geocoding-level.ttl",
        include_bytes!("../../../schemas/dcat-ap-de/vocab/political-geocoding-level.ttl"),
    ),
];

/// How much a finding weighs: a violation refuses, a warning is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Violation,
    Warning,
    Info,
}

/// One result of the validation, in the words of the shapes (German where they have it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    /// The node the finding is about (the dataset, one of its distributions, its contact ...).
    pub focus: String,
    /// The property (as a SHACL path), where the shape names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The offending value, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub message: String,
}

/// The compiled shapes and the vocabularies' statements they need.
pub struct Validator {
    schema: IRSchema,
    vocabulary: &'static Graph,
    /// Classes the vocabularies enumerate the members of (`skos:Concept`,
    /// `spdx:ChecksumAlgorithm` ...): a description cannot make something one of them.
    enumerated: HashSet<NamedNode>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("vocabulary", &self.vocabulary.len())
            .finish_non_exhaustive()
    }
}

/// Why the validator could not be built or run: a defect of the broker, never of the data.
#[derive(Debug, thiserror::Error)]
#[error("SHACL validation is not available: {0}")]
pub struct ShaclError(String);

static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
static VOCABULARY: OnceLock<Result<Graph, String>> = OnceLock::new();

/// What the built-in vocabularies say of their terms: types, schemes, superclasses.
fn vocabulary() -> Result<&'static Graph, ShaclError> {
    VOCABULARY.get_or_init(load_vocabulary).as_ref().map_err(|e| ShaclError(e.clone()))
}

fn load_vocabulary() -> Result<Graph, String> {
    let mut vocabulary = Graph::new();
    for (name, bytes) in VOCABULARIES {
        let format = if name.ends_with(".ttl") {
            RdfFormat::Turtle
        } else {
            RdfFormat::RdfXml
        };
        for quad in RdfParser::from_format(format).for_slice(bytes) {
            let quad = quad.map_err(|e| format!("{name}: {e}"))?;
            if kept(quad.predicate.as_ref()) {
                vocabulary.insert(&Triple::new(quad.subject, quad.predicate, quad.object));
            }
        }
    }
    Ok(vocabulary)
}

/// Whether `iri` is a term of the controlled vocabulary `scheme` (`skos:inScheme`), e.g. an
/// EU file type; false also when the vocabularies cannot be read.
pub fn in_scheme(iri: &str, scheme: &str) -> bool {
    let (Ok(term), Ok(scheme), Ok(vocabulary)) = (NamedNode::new(iri), NamedNode::new(scheme), vocabulary()) else {
        return false;
    };
    let in_scheme = NamedNode::new_unchecked(format!("{SKOS}inScheme"));
    vocabulary.contains(TripleRef::new(term.as_ref(), in_scheme.as_ref(), scheme.as_ref()))
}

/// The validator, compiled on first use (about half a second).
pub fn validator() -> Result<&'static Validator, ShaclError> {
    VALIDATOR.get_or_init(Validator::build).as_ref().map_err(|e| ShaclError(e.clone()))
}

/// The predicates copied from the vocabularies for an IRI a description uses.
fn kept(p: NamedNodeRef<'_>) -> bool {
    p == rdf::TYPE || p == rdfs::SUB_CLASS_OF || p.as_str() == format!("{SKOS}inScheme")
}

impl Validator {
    fn build() -> Result<Self, String> {
        let mut shapes = OxigraphInMemory::new();
        for (name, text) in SHAPES {
            shapes
                .merge_from_reader(&mut text.as_bytes(), name, &RDFFormat::Turtle, None, &ReaderMode::default())
                .map_err(|e| format!("{name}: {e}"))?;
        }
        let ast = ShaclParser::new(shapes).parse().map_err(|e| format!("the shapes: {e}"))?;
        let schema = IRSchema::try_from(ast).map_err(|e| format!("the shapes: {e}"))?;
        let vocabulary = vocabulary().map_err(|e| e.0)?;
        let meta = [
            "http://www.w3.org/2002/07/owl#",
            "http://www.w3.org/2000/01/rdf-schema#",
            "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        ];
        let enumerated = vocabulary
            .triples_for_predicate(rdf::TYPE)
            .filter_map(|t| match t.object {
                TermRef::NamedNode(c) if !meta.iter().any(|m| c.as_str().starts_with(m)) => Some(c.into_owned()),
                _ => None,
            })
            .collect();
        Ok(Self {
            schema,
            vocabulary,
            enumerated,
        })
    }

    /// Whether a statement of a description is one the validation takes as it is. What would
    /// vouch for a term is the vocabularies' to say, never the description's: its claims that
    /// something is in a code list (`skos:inScheme`), a subclass, or one of the members a
    /// vocabulary enumerates are left out (a steward's own `<x> skos:inScheme <language>`
    /// would otherwise pass the language check).
    fn admissible(&self, t: &Triple) -> bool {
        let p = t.predicate.as_ref();
        if p == rdfs::SUB_CLASS_OF || p.as_str().strip_prefix(SKOS) == Some("inScheme") {
            return false;
        }
        !(p == rdf::TYPE && matches!(&t.object, Term::NamedNode(c) if self.enumerated.contains(c)))
    }

    /// Validates one description: `triples` are its statements as they would be stored.
    /// Findings come sorted, violations first.
    pub fn validate(&self, triples: &[Triple]) -> Result<Vec<Finding>, ShaclError> {
        let mut data = OxigraphInMemory::new();
        let own: Vec<&Triple> = triples.iter().filter(|t| self.admissible(t)).collect();
        for t in own.iter().copied().chain(&self.context(triples)) {
            data.add_triple_ref(t.subject.as_ref(), t.predicate.as_ref(), t.object.as_ref())
                .map_err(|e| ShaclError(e.to_string()))?;
        }
        let mut validation = GraphValidation::new(ShaclGraph::from(data));
        let report = validation
            .validate(&self.schema, &ShaclValidationMode::Native, &ShaclConfig::new())
            .map_err(|e| ShaclError(e.to_string()))?;
        let mut findings: Vec<Finding> = report.results().iter().filter_map(finding).collect();
        findings.sort();
        findings.dedup();
        Ok(findings)
    }

    /// What the vocabularies say about the IRIs `triples` use as objects (and about their
    /// classes' superclasses, transitively).
    fn context(&self, triples: &[Triple]) -> Vec<Triple> {
        let mut seen = HashSet::new();
        let mut todo: Vec<_> = triples
            .iter()
            .filter_map(|t| match t.object.as_ref() {
                TermRef::NamedNode(n) => Some(n.into_owned()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        while let Some(iri) = todo.pop() {
            if !seen.insert(iri.clone()) {
                continue;
            }
            for t in self.vocabulary.triples_for_subject(NamedOrBlankNodeRef::NamedNode(iri.as_ref())) {
                if let TermRef::NamedNode(o) = t.object
                    && (t.predicate == rdf::TYPE || t.predicate == rdfs::SUB_CLASS_OF)
                {
                    todo.push(o.into_owned());
                }
                out.push(t.into_owned());
            }
        }
        out
    }
}

fn finding(r: &shacl::validator::report::ValidationResult) -> Option<Finding> {
    use shacl::types::Severity as S;
    let severity = match r.severity() {
        S::Violation => Severity::Violation,
        S::Warning => Severity::Warning,
        S::Info => Severity::Info,
        // Trace and debug results are the engine's, not the shapes'.
        _ => return None,
    };
    Some(Finding {
        severity,
        focus: r.focus_node().to_string(),
        path: r.path().map(|p| p.to_string()),
        value: r.value().map(|v| v.to_string()),
        message: message(r),
    })
}

/// The shape's message, German first; else the name of the constraint that failed.
fn message(r: &shacl::validator::report::ValidationResult) -> String {
    let messages = r.message().messages();
    let by_lang = |lang: &str| {
        messages
            .iter()
            .find(|(l, _)| l.as_ref().is_some_and(|l| l.as_str().eq_ignore_ascii_case(lang)))
            .map(|(_, m)| m.clone())
    };
    by_lang("de")
        .or_else(|| by_lang("en"))
        .or_else(|| messages.values().next().cloned())
        .unwrap_or_else(|| {
            let component = r.constraint_component().to_string();
            let name = component.rsplit(['#', '/']).next().unwrap_or(&component);
            format!("{} nicht erfüllt", name.trim_end_matches("ConstraintComponent"))
        })
}

/// Warnings of many descriptions, one entry per property and message: what a steward fixes at
/// the source once, not once per dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarningGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
    pub count: usize,
    /// The first node it was found on.
    pub example: String,
}

/// Groups the warnings among `findings` (violations and notes are left out).
pub fn group_warnings<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Vec<WarningGroup> {
    let mut groups: BTreeMap<(Option<&str>, &str), WarningGroup> = BTreeMap::new();
    for f in findings.into_iter().filter(|f| f.severity == Severity::Warning) {
        groups
            .entry((f.path.as_deref(), f.message.as_str()))
            .or_insert_with(|| WarningGroup {
                path: f.path.clone(),
                message: f.message.clone(),
                count: 0,
                example: f.focus.clone(),
            })
            .count += 1;
    }
    groups.into_values().collect()
}

/// A one-line account of the violations among `findings`, for a refusal's reason.
pub fn violations_summary(findings: &[Finding]) -> Option<String> {
    let violations: Vec<&Finding> = findings.iter().filter(|f| f.severity == Severity::Violation).collect();
    let first = violations.first()?;
    let distinct: BTreeSet<&str> = violations.iter().map(|f| f.message.as_str()).collect();
    Some(format!(
        "{} violation{} ({} different), the first at {}{}: {}",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" },
        distinct.len(),
        first.focus,
        first.path.as_deref().map(|p| format!(", {p}")).unwrap_or_default(),
        first.message
    ))
}
