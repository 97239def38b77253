//! Usage-policy versions in the graph. Each version lives in its own named graph
//! (`<base>policies/<dataset>/<n>`) holding the policy's own ODRL triples (so SPARQL can ask
//! which datasets allow which purposes), its Turtle source as submitted, the hash of the module
//! compiled from it, who submitted it when, its status (draft, approved, rejected) and its
//! review. The active version also carries `<dataset> odrl:hasPolicy <policy>`; earlier versions
//! stay readable.
//!
//! The module itself is not stored: compilation is deterministic, so the broker recompiles the
//! source when it loads a policy and refuses one whose module hash differs.

use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{GraphName, Literal, NamedNode, Quad, Term};
use serde::{Deserialize, Serialize};

use super::dcat::{DCT, Graph, Iris};
use super::model::DatasetId;
use crate::identity::Ags;

pub const KDR: &str = "https://w3id.org/kdr/odrl#";
pub const ODRL: &str = "http://www.w3.org/ns/odrl/2/";

/// One version of a dataset's usage policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub dataset: DatasetId,
    pub version: u32,
    /// The ODRL policy IRI (its `odrl:uid`).
    pub policy: String,
    /// The source as the steward submitted it.
    pub source: String,
    /// `text/turtle` or `application/ld+json`.
    pub media_type: String,
    /// `sha256:<hex>` of the compiled module.
    pub module_hash: String,
    pub author: Ags,
    /// The author's common name (the person, for the four-eyes check).
    pub author_name: String,
    /// RFC 3339.
    pub submitted: String,
    pub status: PolicyStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// Approved and not yet replaced by a later approval: the version that decides requests.
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyStatus {
    Draft,
    Approved,
    Rejected,
}

impl PolicyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for PolicyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PolicyStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Draft, Self::Approved, Self::Rejected]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(())
    }
}

/// A board member's verdict on a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub approved: bool,
    pub by: Ags,
    pub by_name: String,
    /// RFC 3339.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Iris {
    pub fn policy_version(&self, dataset: &DatasetId, version: u32) -> String {
        format!("{}{version}", self.policy_versions_prefix(dataset))
    }

    pub fn policy_versions_prefix(&self, dataset: &DatasetId) -> String {
        format!("{}/", self.dataset(dataset).replacen("/datasets/", "/policies/", 1))
    }
}

fn nn(iri: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

/// The statement that makes a version the active one.
pub fn has_policy_quad(p: &PolicyVersion, iris: &Iris) -> Quad {
    Quad::new(
        nn(iris.dataset(&p.dataset)),
        nn(format!("{ODRL}hasPolicy")),
        nn(p.policy.as_str()),
        GraphName::NamedNode(nn(iris.policy_version(&p.dataset, p.version))),
    )
}

/// Every quad of a version's graph: the record, and the policy's own triples (N-Triples).
pub fn policy_to_quads(p: &PolicyVersion, ntriples: &str, iris: &Iris) -> Result<Vec<Quad>, String> {
    let g = nn(iris.policy_version(&p.dataset, p.version));
    let graph = GraphName::NamedNode(g.clone());
    let mut quads: Vec<Quad> = RdfParser::from_format(RdfFormat::NTriples)
        .with_default_graph(graph.clone())
        .for_slice(ntriples.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut add = |pred: NamedNode, obj: Term| quads.push(Quad::new(g.clone(), pred, obj, graph.clone()));
    add(rdf::TYPE.into_owned(), nn(format!("{KDR}PolicyVersion")).into());
    add(nn(format!("{KDR}dataset")), nn(iris.dataset(&p.dataset)).into());
    add(nn(format!("{KDR}version")), Literal::from(i64::from(p.version)).into());
    add(nn(format!("{KDR}policy")), nn(p.policy.as_str()).into());
    add(nn(format!("{KDR}source")), Literal::new_simple_literal(&p.source).into());
    add(nn(format!("{KDR}moduleHash")), Literal::new_simple_literal(&p.module_hash).into());
    add(nn(format!("{KDR}mediaType")), Literal::new_simple_literal(&p.media_type).into());
    add(nn(format!("{DCT}creator")), nn(iris.member(&p.author)).into());
    add(nn(format!("{KDR}authorName")), Literal::new_simple_literal(&p.author_name).into());
    add(nn(format!("{KDR}status")), Literal::new_simple_literal(p.status.as_str()).into());
    add(
        nn(format!("{DCT}issued")),
        Literal::new_typed_literal(&p.submitted, xsd::DATE_TIME).into(),
    );
    if let Some(r) = &p.review {
        quads.extend(review_quads(p, r, iris));
    }
    if p.active {
        quads.push(has_policy_quad(p, iris));
    }
    Ok(quads)
}

/// The status statement of a version (replaced when it is reviewed).
pub fn status_quad(p: &PolicyVersion, iris: &Iris) -> Quad {
    let g = nn(iris.policy_version(&p.dataset, p.version));
    Quad::new(
        g.clone(),
        nn(format!("{KDR}status")),
        Literal::new_simple_literal(p.status.as_str()),
        GraphName::NamedNode(g),
    )
}

/// The statements recording a review.
pub fn review_quads(p: &PolicyVersion, r: &Review, iris: &Iris) -> Vec<Quad> {
    let g = nn(iris.policy_version(&p.dataset, p.version));
    let graph = GraphName::NamedNode(g.clone());
    let mut out = vec![
        Quad::new(g.clone(), nn(format!("{KDR}reviewedBy")), nn(iris.member(&r.by)), graph.clone()),
        Quad::new(
            g.clone(),
            nn(format!("{KDR}reviewerName")),
            Literal::new_simple_literal(&r.by_name),
            graph.clone(),
        ),
        Quad::new(
            g.clone(),
            nn(format!("{KDR}reviewed")),
            Literal::new_typed_literal(&r.time, xsd::DATE_TIME),
            graph.clone(),
        ),
    ];
    if let Some(note) = &r.note {
        out.push(Quad::new(
            g,
            nn(format!("{KDR}reviewNote")),
            Literal::new_simple_literal(note),
            graph,
        ));
    }
    out
}

/// Reads a version's record back (the policy triples are not needed: the source is there).
pub fn policy_from_graph(g: &Graph, graph_iri: &str, dataset: &DatasetId, iris: &Iris) -> Option<PolicyVersion> {
    let policy = g.iri(graph_iri, KDR, "policy")?;
    let author_iri = g.iri(graph_iri, DCT, "creator")?;
    let author = author_iri.strip_prefix(&iris.member_prefix())?.parse().ok()?;
    let active = g.iris(&iris.dataset(dataset), ODRL, "hasPolicy").contains(&policy);
    let review = g.iri(graph_iri, KDR, "reviewedBy").and_then(|by| {
        Some(Review {
            approved: false,
            by: by.strip_prefix(&iris.member_prefix())?.parse().ok()?,
            by_name: g.literal(graph_iri, KDR, "reviewerName")?,
            time: g.literal(graph_iri, KDR, "reviewed")?,
            note: g.literal(graph_iri, KDR, "reviewNote"),
        })
    });
    let status: PolicyStatus = g.literal(graph_iri, KDR, "status")?.parse().ok()?;
    let review = review.map(|r| Review {
        approved: status == PolicyStatus::Approved,
        ..r
    });
    Some(PolicyVersion {
        dataset: dataset.clone(),
        version: g.literal(graph_iri, KDR, "version")?.parse().ok()?,
        source: g.literal(graph_iri, KDR, "source")?,
        media_type: g.literal(graph_iri, KDR, "mediaType")?,
        module_hash: g.literal(graph_iri, KDR, "moduleHash")?,
        submitted: g.literal(graph_iri, DCT, "issued")?,
        policy,
        author,
        author_name: g.literal(graph_iri, KDR, "authorName").unwrap_or_default(),
        status,
        review,
        active,
    })
}
