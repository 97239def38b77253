//! Usage-policy versions in the graph, in two places with two owners.
//!
//! - **The policy's content**: one named graph per version (`<base>policies/<dataset>/<n>`, the
//!   version's IRI) with the policy's ODRL statements, so SPARQL can ask which datasets allow
//!   which purposes. They are *derived from the compiled rule IR*, never copied from the
//!   submitted document: every subject is an IRI the broker mints under the version's IRI, every
//!   predicate an ODRL or profile term. A steward's document cannot put anything else into the
//!   graph (`<dataset> odrl:hasPolicy …`, another city's title), because nothing of it is stored
//!   as triples. (It is refused at submission as well: `policy_compiler::parse::parse_submission`.)
//! - **The governance record**: status, author, review, the approved distributions and which
//!   version is active, in the one records graph (`<base>graphs/policy-records`) that only the
//!   broker writes. `<dataset> odrl:hasPolicy <version>` lives there and nowhere else, and a
//!   version reads as active only if it is approved as well.
//!
//! The module itself is not stored: compilation is deterministic, so the broker recompiles the
//! source (kept in the record) when it loads a policy and refuses one whose module hash differs.

use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{GraphName, Literal, NamedNode, Quad, Term};
use policy_compiler::ir::{Asset, Conflict, Constraint, Duty, Granularity, Operand, Party, Policy, Rule, RuleKind};
use serde::{Deserialize, Serialize};

use super::dcat::{DCT, Graph, Iris};
use super::model::DatasetId;
use crate::identity::Ags;

pub use crate::ns::{KDR_ODRL as KDR, ODRL};

/// One version of a dataset's usage policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub dataset: DatasetId,
    pub version: u32,
    /// The ODRL policy IRI (its `odrl:uid`) as the steward named it.
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
    /// On approval: the digest of the dataset's distributions the board saw
    /// ([`super::Dataset::distributions_digest`]). The version decides only while the dataset
    /// still names exactly these; a changed access URL needs a new approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distributions: Option<String>,
}

impl Iris {
    pub fn policy_version(&self, dataset: &DatasetId, version: u32) -> String {
        format!("{}{version}", self.policy_versions_prefix(dataset))
    }

    pub fn policy_versions_prefix(&self, dataset: &DatasetId) -> String {
        format!("{}/", self.dataset(dataset).replacen("/datasets/", "/policies/", 1))
    }

    /// The graph only the broker writes: every version's governance record and activation.
    pub fn policy_records_graph(&self) -> String {
        format!("{}graphs/policy-records", self.base())
    }
}

fn nn(iri: impl Into<String>) -> NamedNode {
    NamedNode::new_unchecked(iri)
}

fn kdr(local: &str) -> NamedNode {
    nn(format!("{KDR}{local}"))
}

fn odrl(local: &str) -> NamedNode {
    nn(format!("{ODRL}{local}"))
}

fn records(iris: &Iris) -> GraphName {
    GraphName::NamedNode(nn(iris.policy_records_graph()))
}

/// The statement that makes a version the active one (in the records graph).
pub fn has_policy_quad(p: &PolicyVersion, iris: &Iris) -> Quad {
    Quad::new(
        nn(iris.dataset(&p.dataset)),
        odrl("hasPolicy"),
        nn(iris.policy_version(&p.dataset, p.version)),
        records(iris),
    )
}

/// The governance record of a version (in the records graph).
pub fn record_quads(p: &PolicyVersion, iris: &Iris) -> Vec<Quad> {
    let v = nn(iris.policy_version(&p.dataset, p.version));
    let g = records(iris);
    let mut quads = Vec::new();
    let mut add = |pred: NamedNode, obj: Term| quads.push(Quad::new(v.clone(), pred, obj, g.clone()));
    add(rdf::TYPE.into_owned(), kdr("PolicyVersion").into());
    add(kdr("dataset"), nn(iris.dataset(&p.dataset)).into());
    add(kdr("version"), Literal::from(i64::from(p.version)).into());
    add(kdr("policy"), Literal::new_simple_literal(&p.policy).into());
    add(kdr("source"), Literal::new_simple_literal(&p.source).into());
    add(kdr("moduleHash"), Literal::new_simple_literal(&p.module_hash).into());
    add(kdr("mediaType"), Literal::new_simple_literal(&p.media_type).into());
    add(nn(format!("{DCT}creator")), nn(iris.member(&p.author)).into());
    add(kdr("authorName"), Literal::new_simple_literal(&p.author_name).into());
    add(
        nn(format!("{DCT}issued")),
        Literal::new_typed_literal(&p.submitted, xsd::DATE_TIME).into(),
    );
    quads.push(status_quad(p, iris));
    if let Some(r) = &p.review {
        quads.extend(review_quads(p, r, iris));
    }
    if p.active {
        quads.push(has_policy_quad(p, iris));
    }
    quads
}

/// The status statement of a version (replaced when it is reviewed).
pub fn status_quad(p: &PolicyVersion, iris: &Iris) -> Quad {
    Quad::new(
        nn(iris.policy_version(&p.dataset, p.version)),
        kdr("status"),
        Literal::new_simple_literal(p.status.as_str()),
        records(iris),
    )
}

/// The statements recording a review.
pub fn review_quads(p: &PolicyVersion, r: &Review, iris: &Iris) -> Vec<Quad> {
    let v = nn(iris.policy_version(&p.dataset, p.version));
    let g = records(iris);
    let q = |pred: NamedNode, obj: Term| Quad::new(v.clone(), pred, obj, g.clone());
    let mut out = vec![
        q(kdr("reviewedBy"), nn(iris.member(&r.by)).into()),
        q(kdr("reviewerName"), Literal::new_simple_literal(&r.by_name).into()),
        q(kdr("reviewed"), Literal::new_typed_literal(&r.time, xsd::DATE_TIME).into()),
    ];
    if let Some(note) = &r.note {
        out.push(q(kdr("reviewNote"), Literal::new_simple_literal(note).into()));
    }
    if let Some(d) = &r.distributions {
        out.push(q(kdr("approvedDistributions"), Literal::new_simple_literal(d).into()));
    }
    out
}

/// Reads a version's record back from the records graph. `active` is read from the dataset's
/// `odrl:hasPolicy` there, and holds only for an approved version.
pub fn policy_from_records(g: &Graph, version_iri: &str, dataset: &DatasetId, iris: &Iris) -> Option<PolicyVersion> {
    let author = g
        .iri(version_iri, DCT, "creator")?
        .strip_prefix(&iris.member_prefix())?
        .parse()
        .ok()?;
    let status: PolicyStatus = g.literal(version_iri, KDR, "status")?.parse().ok()?;
    let review = g.iri(version_iri, KDR, "reviewedBy").and_then(|by| {
        Some(Review {
            approved: status == PolicyStatus::Approved,
            by: by.strip_prefix(&iris.member_prefix())?.parse().ok()?,
            by_name: g.literal(version_iri, KDR, "reviewerName")?,
            time: g.literal(version_iri, KDR, "reviewed")?,
            note: g.literal(version_iri, KDR, "reviewNote"),
            distributions: g.literal(version_iri, KDR, "approvedDistributions"),
        })
    });
    let in_force = g.iris(&iris.dataset(dataset), ODRL, "hasPolicy").iter().any(|v| v == version_iri);
    Some(PolicyVersion {
        dataset: dataset.clone(),
        version: g.literal(version_iri, KDR, "version")?.parse().ok()?,
        policy: g.literal(version_iri, KDR, "policy")?,
        source: g.literal(version_iri, KDR, "source")?,
        media_type: g.literal(version_iri, KDR, "mediaType")?,
        module_hash: g.literal(version_iri, KDR, "moduleHash")?,
        submitted: g.literal(version_iri, DCT, "issued")?,
        author,
        author_name: g.literal(version_iri, KDR, "authorName").unwrap_or_default(),
        active: in_force && status == PolicyStatus::Approved,
        status,
        review,
    })
}

/// The policy's ODRL statements, derived from its rule IR, in the version's own graph. Subjects
/// are minted under the version IRI (`<v>/rule/0`, `<v>/rule/0/constraint/1`, ...); the
/// steward's own identifiers appear only as values (`odrl:uid`).
pub fn content_quads(p: &PolicyVersion, policy: &Policy, iris: &Iris) -> Vec<Quad> {
    let v = iris.policy_version(&p.dataset, p.version);
    let mut w = ContentWriter {
        graph: GraphName::NamedNode(nn(v.as_str())),
        quads: Vec::new(),
    };
    let subject = nn(v.as_str());
    w.add(&subject, rdf::TYPE.into_owned(), odrl("Set").into());
    w.add(&subject, odrl("uid"), nn(policy.uid.as_str()).into());
    let conflict = match policy.conflict {
        Conflict::Perm => "perm",
        Conflict::Prohibit => "prohibit",
        Conflict::Invalid => "invalid",
    };
    w.add(&subject, odrl("conflict"), odrl(conflict).into());
    for (i, rule) in policy.rules.iter().enumerate() {
        let node = nn(format!("{v}/rule/{i}"));
        let (link, class) = match rule.kind {
            RuleKind::Permission => ("permission", "Permission"),
            RuleKind::Prohibition => ("prohibition", "Prohibition"),
            RuleKind::Obligation => ("obligation", "Duty"),
        };
        w.add(&subject, odrl(link), node.clone().into());
        w.add(&node, rdf::TYPE.into_owned(), odrl(class).into());
        w.rule(&node, rule);
    }
    w.quads
}

struct ContentWriter {
    graph: GraphName,
    quads: Vec<Quad>,
}

impl ContentWriter {
    fn add(&mut self, s: &NamedNode, p: NamedNode, o: Term) {
        self.quads.push(Quad::new(s.clone(), p, o, self.graph.clone()));
    }

    fn rule(&mut self, node: &NamedNode, rule: &Rule) {
        if let Some(a) = &rule.action {
            self.add(node, odrl("action"), nn(a.as_str()).into());
        }
        match &rule.target {
            Some(Asset::One(t) | Asset::Collection(t)) => self.add(node, odrl("target"), nn(t.as_str()).into()),
            None => {}
        }
        match &rule.assignee {
            Some(Party::One(a) | Party::Collection(a)) => self.add(node, odrl("assignee"), nn(a.as_str()).into()),
            None => {}
        }
        self.constraints(node, &rule.constraints);
        for (j, duty) in rule.duties.iter().enumerate() {
            let d = nn(format!("{}/duty/{j}", node.as_str()));
            self.add(node, odrl("duty"), d.clone().into());
            self.duty(&d, duty);
        }
    }

    fn constraints(&mut self, parent: &NamedNode, cs: &[Constraint]) {
        for (k, c) in cs.iter().enumerate() {
            let node = nn(format!("{}/constraint/{k}", parent.as_str()));
            self.add(parent, odrl("constraint"), node.clone().into());
            self.constraint(&node, c);
        }
    }

    fn constraint(&mut self, node: &NamedNode, c: &Constraint) {
        let (logical, operands) = match c {
            Constraint::Atomic { left, operator, right, .. } => {
                self.add(node, odrl("leftOperand"), odrl(&term_name(left)).into());
                self.add(node, odrl("operator"), odrl(&term_name(operator)).into());
                for value in operand_terms(right) {
                    self.add(node, odrl("rightOperand"), value);
                }
                return;
            }
            Constraint::And { operands, .. } => ("and", operands),
            Constraint::Or { operands, .. } => ("or", operands),
            Constraint::Xone { operands, .. } => ("xone", operands),
        };
        for (k, o) in operands.iter().enumerate() {
            let child = nn(format!("{}/{logical}/{k}", node.as_str()));
            self.add(node, odrl(logical), child.clone().into());
            self.constraint(&child, o);
        }
    }

    fn duty(&mut self, node: &NamedNode, d: &Duty) {
        self.add(node, odrl("action"), nn(d.action.as_str()).into());
        self.constraints(node, &d.constraints);
        for f in &d.fields {
            self.add(node, kdr("field"), Literal::new_simple_literal(f).into());
        }
        for f in &d.group_by {
            self.add(node, kdr("groupBy"), Literal::new_simple_literal(f).into());
        }
        if let Some(n) = d.min_group_size {
            self.add(node, kdr("minGroupSize"), Literal::from(i64::from(n)).into());
        }
        if let Some(g) = d.granularity {
            let local = match g {
                Granularity::Month => "Month",
                Granularity::Year => "Year",
                Granularity::AgeBand5 => "AgeBand5",
                Granularity::AgeBand10 => "AgeBand10",
            };
            self.add(node, kdr("granularity"), kdr(local).into());
        }
        if let Some(r) = &d.retention {
            self.add(node, kdr("retention"), Literal::new_typed_literal(r, xsd::DURATION).into());
        }
        if let Some(p) = &d.informed_party {
            self.add(node, odrl("informedParty"), nn(p.as_str()).into());
        }
    }
}

/// An IR term by its ODRL local name (`purpose`, `isA`): how the IR serialises it.
fn term_name(term: &impl Serialize) -> String {
    serde_json::to_value(term)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn operand_terms(o: &Operand) -> Vec<Term> {
    match o {
        Operand::DateTime(d) => vec![Literal::new_typed_literal(d, xsd::DATE_TIME).into()],
        Operand::Integer(n) => vec![Literal::from(*n).into()],
        Operand::Iri(i) => vec![nn(i.as_str()).into()],
        Operand::Iris(is) => is.iter().map(|i| nn(i.as_str()).into()).collect(),
    }
}
