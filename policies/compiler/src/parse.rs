//! ODRL (RDF) to the rule IR. Strict: an ODRL term this profile does not implement is an error
//! naming the term and the node it sits on, never silently ignored. Terms outside the ODRL
//! namespace on policy and rule nodes (descriptions, provenance) are metadata and pass.
//!
//! Total: whatever a document holds, the reader answers with a policy or an error, never a
//! crash or a hang. The [`Limits`] bound its size, and the structures a graph can make endless
//! (a constraint that is its own operand, an RDF list whose tail points back) are found and
//! refused, so a steward's 300-byte document cannot take the broker down.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;

use oxrdf::{Graph, NamedNode, NamedNodeRef, NamedOrBlankNodeRef, Term, TermRef};
use oxttl::TurtleParser;

use crate::ir::{Asset, Conflict, Constraint, Duty, Granularity, KDR, LeftOperand, Operand, Operator, Party, Policy, Rule, RuleKind};
use crate::vocab::{ODRL, Vocabulary};

const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
const RDF_FIRST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#first";
const RDF_REST: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#rest";
const RDF_NIL: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#nil";
const XSD: &str = "http://www.w3.org/2001/XMLSchema#";

/// Something in the policy the compiler cannot (or refuses to) translate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {at})")]
pub struct CompileError {
    pub message: String,
    /// The node (IRI or blank node) where the problem was found.
    pub at: String,
}

fn err(at: impl std::fmt::Display, message: impl Into<String>) -> CompileError {
    CompileError {
        message: message.into(),
        at: at.to_string(),
    }
}

/// Bounds on one policy document. Each keeps the compiler's work and memory proportional to what
/// a real usage policy needs (the demo cities' policies use a tenth of each), whatever is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The document's text (Turtle or JSON-LD), in bytes.
    pub document_bytes: usize,
    /// Triples in the document's graph.
    pub triples: usize,
    /// Rules (permissions, prohibitions, obligations) of one policy.
    pub rules: usize,
    /// Constraints of one policy, nested ones included, counted as often as they are used.
    pub constraints: usize,
    /// Duties of one policy.
    pub duties: usize,
    /// Nesting of logical constraints (`odrl:and` inside `odrl:or` ...).
    pub depth: usize,
    /// Items of one RDF list (logical operands, right operands).
    pub list: usize,
}

impl Limits {
    /// What a steward may submit to the broker (and what the broker reads back).
    pub const SUBMITTED: Limits = Limits {
        document_bytes: 256 * 1024,
        triples: 4096,
        rules: 64,
        constraints: 256,
        duties: 64,
        depth: 8,
        list: 256,
    };

    /// Files an operator or a test harness reads locally (the conformance suite's big policy
    /// has hundreds of constraints): larger counts, still finite, cycles still refused.
    pub const LOCAL: Limits = Limits {
        document_bytes: 64 * 1024 * 1024,
        triples: 1_000_000,
        rules: 10_000,
        constraints: 100_000,
        duties: 10_000,
        depth: 32,
        list: 100_000,
    };
}

fn odrl(local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{ODRL}{local}"))
}

/// Parses every policy (`odrl:Set`, `odrl:Offer`, `odrl:Agreement`, `odrl:Policy`) in a Turtle
/// document, within [`Limits::SUBMITTED`].
pub fn parse_turtle(ttl: &str, vocab: &Vocabulary) -> Result<Vec<Policy>, CompileError> {
    policies_in_graph(&document_graph(ttl, Syntax::Turtle)?, vocab, Limits::SUBMITTED)
}

/// Parses every policy in a JSON-LD document (ODRL's context is built in), within
/// [`Limits::SUBMITTED`].
pub fn parse_jsonld(json: &str, vocab: &Vocabulary) -> Result<Vec<Policy>, CompileError> {
    policies_in_graph(&document_graph(json, Syntax::JsonLd)?, vocab, Limits::SUBMITTED)
}

/// The syntaxes a policy document may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Turtle,
    JsonLd,
}

impl Syntax {
    /// By media type (`text/turtle`, `application/ld+json`).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type.split(';').next().map(str::trim) {
            Some("text/turtle") => Some(Syntax::Turtle),
            Some("application/ld+json" | "application/json") => Some(Syntax::JsonLd),
            _ => None,
        }
    }

    /// By file name: `.jsonld` and `.json` are JSON-LD, anything else Turtle.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonld" | "json") => Syntax::JsonLd,
            _ => Syntax::Turtle,
        }
    }
}

/// The RDF graph of a policy document, in either syntax, within [`Limits::SUBMITTED`].
pub fn document_graph(text: &str, syntax: Syntax) -> Result<Graph, CompileError> {
    let limits = Limits::SUBMITTED;
    match syntax {
        Syntax::Turtle => turtle_graph_within(text, &limits),
        Syntax::JsonLd => crate::jsonld::jsonld_graph_within(text, &limits),
    }
}

/// Parses the one policy a document holds (what a steward submits for one dataset).
pub fn parse_one(text: &str, syntax: Syntax, vocab: &Vocabulary) -> Result<Policy, CompileError> {
    let mut policies = match syntax {
        Syntax::Turtle => parse_turtle(text, vocab)?,
        Syntax::JsonLd => parse_jsonld(text, vocab)?,
    };
    match policies.len() {
        1 => Ok(policies.remove(0)),
        n => Err(err("the document", format!("holds {n} policies; give one policy per document"))),
    }
}

fn policies_in_graph(graph: &Graph, vocab: &Vocabulary, limits: Limits) -> Result<Vec<Policy>, CompileError> {
    policy_nodes(graph)?
        .iter()
        .map(|iri| read_policy(&Reader::new(graph, vocab, limits), iri))
        .collect()
}

/// The IRIs of the policies (`odrl:Set`, `odrl:Offer`, `odrl:Agreement`, `odrl:Policy`) in
/// `graph`, sorted; a policy must be named by an IRI.
fn policy_nodes(graph: &Graph) -> Result<Vec<String>, CompileError> {
    let mut nodes: Vec<String> = Vec::new();
    for class in ["Set", "Offer", "Agreement", "Policy"] {
        let class = odrl(class);
        for s in graph.subjects_for_predicate_object(NamedNodeRef::new_unchecked(RDF_TYPE), class.as_ref()) {
            match s {
                NamedOrBlankNodeRef::NamedNode(n) => nodes.push(n.as_str().to_owned()),
                NamedOrBlankNodeRef::BlankNode(_) => return Err(err(s, "a policy must be named by an IRI (its odrl:uid)")),
            }
        }
    }
    if nodes.is_empty() {
        return Err(err("the document", "no odrl:Set, odrl:Offer, odrl:Agreement or odrl:Policy found"));
    }
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

/// Parses the one policy a Turtle document holds.
pub fn parse_one_turtle(ttl: &str, vocab: &Vocabulary) -> Result<Policy, CompileError> {
    parse_one(ttl, Syntax::Turtle, vocab)
}

/// Parses Turtle text into a graph, with the parser's error as a [`CompileError`], within
/// [`Limits::LOCAL`] (a file read locally; what is submitted goes through [`document_graph`]).
pub fn turtle_graph(ttl: &str) -> Result<Graph, CompileError> {
    turtle_graph_within(ttl, &Limits::LOCAL)
}

fn turtle_graph_within(ttl: &str, limits: &Limits) -> Result<Graph, CompileError> {
    check_document_size(ttl, limits)?;
    let mut graph = Graph::new();
    for triple in TurtleParser::new().for_slice(ttl.as_bytes()) {
        let t = triple.map_err(|e| err("the Turtle text", e.to_string()))?;
        graph.insert(&t);
        check_triple_count(&graph, limits)?;
    }
    Ok(graph)
}

/// Refuses a document longer than the limit before it is parsed.
pub(crate) fn check_document_size(text: &str, limits: &Limits) -> Result<(), CompileError> {
    if text.len() > limits.document_bytes {
        return Err(err(
            "the document",
            format!(
                "is {} bytes long; a policy document may have at most {} bytes",
                text.len(),
                limits.document_bytes
            ),
        ));
    }
    Ok(())
}

/// Refuses a graph with more triples than the limit (checked as it grows).
pub(crate) fn check_triple_count(graph: &Graph, limits: &Limits) -> Result<(), CompileError> {
    if graph.len() > limits.triples {
        return Err(err(
            "the document",
            format!(
                "holds more than {} triples; this is more than one usage policy needs",
                limits.triples
            ),
        ));
    }
    Ok(())
}

struct Reader<'a> {
    graph: &'a Graph,
    vocab: &'a Vocabulary,
    limits: Limits,
    /// Constraints and duties read so far (against [`limits`]).
    constraints: Cell<usize>,
    duties: Cell<usize>,
    /// Every node the policy's structure reaches (policy, rules, duties, constraints, list
    /// cells): the subjects of the policy's own statements.
    structural: RefCell<HashSet<NamedOrBlankNodeRef<'a>>>,
}

impl<'a> Reader<'a> {
    fn new(graph: &'a Graph, vocab: &'a Vocabulary, limits: Limits) -> Self {
        Self {
            graph,
            vocab,
            limits,
            constraints: Cell::new(0),
            duties: Cell::new(0),
            structural: RefCell::default(),
        }
    }

    /// Marks `node` as part of the policy's structure.
    fn visit(&self, node: NamedOrBlankNodeRef<'a>) {
        self.structural.borrow_mut().insert(node);
    }

    /// Counts one more item against a limit.
    fn count(&self, counter: &Cell<usize>, limit: usize, what: &str, at: NamedOrBlankNodeRef<'a>) -> Result<(), CompileError> {
        counter.set(counter.get() + 1);
        if counter.get() > limit {
            return Err(err(at, format!("the policy has more than {limit} {what}")));
        }
        Ok(())
    }

    fn objects(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Vec<TermRef<'a>> {
        let p = odrl(local);
        self.graph.objects_for_subject_predicate(node, p.as_ref()).collect()
    }

    /// One IRI value, or none; several is an error.
    fn single_iri(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Result<Option<String>, CompileError> {
        let objs = self.objects(node, local);
        match objs.as_slice() {
            [] => Ok(None),
            [TermRef::NamedNode(n)] => Ok(Some(n.as_str().to_owned())),
            [other] => Err(err(node, format!("odrl:{local} must be an IRI, found {other}"))),
            _ => Err(err(node, format!("odrl:{local} has several values; this profile allows one"))),
        }
    }

    fn has_type(&self, iri: &str, class: &str) -> bool {
        let class = odrl(class);
        self.graph.contains(oxrdf::TripleRef::new(
            NamedNodeRef::new_unchecked(iri),
            NamedNodeRef::new_unchecked(RDF_TYPE),
            class.as_ref(),
        ))
    }

    /// Rejects ODRL-namespace predicates outside `allowed`.
    fn check_predicates(&self, node: NamedOrBlankNodeRef<'a>, what: &str, allowed: &[&str]) -> Result<(), CompileError> {
        for t in self.graph.triples_for_subject(node) {
            if let Some(local) = t.predicate.as_str().strip_prefix(ODRL).filter(|l| !allowed.contains(l)) {
                return Err(err(node, format!("odrl:{local} on a {what} is not supported by this profile")));
            }
            let profile_term = t.predicate.as_str().strip_prefix(KDR);
            if let Some(local) = profile_term.filter(|l| what != "duty" || !PROFILE_TERMS.contains(l)) {
                return Err(err(node, format!("kdr:{local} on a {what} is not a term of the kdr profile here")));
            }
        }
        Ok(())
    }

    fn profile_objects(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Vec<TermRef<'a>> {
        let p = NamedNode::new_unchecked(format!("{KDR}{local}"));
        self.graph.objects_for_subject_predicate(node, p.as_ref()).collect()
    }

    /// Plain string literals of a profile term.
    fn profile_strings(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Result<Vec<String>, CompileError> {
        self.profile_objects(node, local)
            .into_iter()
            .map(|t| match t {
                TermRef::Literal(l) if l.datatype().as_str() == format!("{XSD}string") => Ok(l.value().to_owned()),
                other => Err(err(node, format!("kdr:{local} must be a string, found {other}"))),
            })
            .collect()
    }

    fn profile_single(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Result<Option<TermRef<'a>>, CompileError> {
        let objs = self.profile_objects(node, local);
        match objs.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(err(node, format!("kdr:{local} has several values; it takes one"))),
        }
    }

    fn profile_integer(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Result<Option<u32>, CompileError> {
        self.profile_single(node, local)?
            .map(|t| match t {
                TermRef::Literal(l) if l.datatype().as_str().starts_with(XSD) => l
                    .value()
                    .parse::<u32>()
                    .map_err(|_| err(node, format!("kdr:{local} must be a non-negative integer, found {t}"))),
                other => Err(err(node, format!("kdr:{local} must be an integer, found {other}"))),
            })
            .transpose()
    }

    /// A decimal with at most three places (`"0.5"^^xsd:decimal`, `0.25`), in thousandths.
    fn profile_milli(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Result<Option<u32>, CompileError> {
        self.profile_single(node, local)?
            .map(|t| {
                let bad = || {
                    err(
                        node,
                        format!("kdr:{local} must be a decimal with at most three places, such as \"0.5\", found {t}"),
                    )
                };
                let TermRef::Literal(l) = t else {
                    return Err(bad());
                };
                let (whole, frac) = l.value().split_once('.').unwrap_or((l.value(), ""));
                let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
                if !digits(whole) || (!frac.is_empty() && (frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()))) {
                    return Err(bad());
                }
                let frac_milli: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
                let whole: u32 = whole.parse().map_err(|_| bad())?;
                Ok(whole * 1000 + frac_milli)
            })
            .transpose()
    }

    fn profile_duration(&self, node: NamedOrBlankNodeRef<'a>, local: &str) -> Result<Option<String>, CompileError> {
        self.profile_single(node, local)?
            .map(|t| match t {
                TermRef::Literal(l) if l.value().parse::<oxsdatatypes::Duration>().is_ok() => Ok(l.value().to_owned()),
                other => Err(err(
                    node,
                    format!("kdr:{local} must be an xsd:duration such as \"P90D\", found {other}"),
                )),
            })
            .transpose()
    }

    fn profile_granularity(&self, node: NamedOrBlankNodeRef<'a>) -> Result<Option<Granularity>, CompileError> {
        self.profile_single(node, "granularity")?
            .map(|t| {
                let local = match t {
                    TermRef::NamedNode(n) => n.as_str().strip_prefix(KDR),
                    _ => None,
                };
                match local {
                    Some("Month") => Ok(Granularity::Month),
                    Some("Year") => Ok(Granularity::Year),
                    Some("AgeBand5") => Ok(Granularity::AgeBand5),
                    Some("AgeBand10") => Ok(Granularity::AgeBand10),
                    _ => Err(err(
                        node,
                        format!("kdr:granularity must be kdr:Month, kdr:Year, kdr:AgeBand5 or kdr:AgeBand10, found {t}"),
                    )),
                }
            })
            .transpose()
    }

    fn node_of(&self, term: TermRef<'a>, at: NamedOrBlankNodeRef<'a>, what: &str) -> Result<NamedOrBlankNodeRef<'a>, CompileError> {
        match term {
            TermRef::NamedNode(n) => Ok(n.into()),
            TermRef::BlankNode(b) => Ok(b.into()),
            other => Err(err(at, format!("{what} must be a node, found {other}"))),
        }
    }
}

/// Parses the policy `iri` of `graph` (a graph read locally: within [`Limits::LOCAL`]).
pub fn policy_from_graph(graph: &Graph, iri: &str, vocab: &Vocabulary) -> Result<Policy, CompileError> {
    let r = Reader::new(graph, vocab, Limits::LOCAL);
    read_policy(&r, iri)
}

/// Parses the one policy a submitted document holds, and refuses the document if it says
/// anything that is not the policy's own statement: a triple whose subject is not the policy, one
/// of its rules, duties, constraints or their lists (say, `<dataset> odrl:hasPolicy <policy>`,
/// or a title for another city's dataset). What a steward submits is a policy, nothing else.
pub fn parse_submission(text: &str, syntax: Syntax, vocab: &Vocabulary) -> Result<Policy, CompileError> {
    let graph = document_graph(text, syntax)?;
    let nodes = policy_nodes(&graph)?;
    let [iri] = nodes.as_slice() else {
        return Err(err(
            "the document",
            format!("holds {} policies; give one policy per document", nodes.len()),
        ));
    };
    let r = Reader::new(&graph, vocab, Limits::SUBMITTED);
    let policy = read_policy(&r, iri)?;
    let structural = r.structural.borrow();
    if let Some(foreign) = graph.iter().find(|t| !structural.contains(&t.subject)) {
        let others = graph.iter().filter(|t| !structural.contains(&t.subject)).count() - 1;
        let more = if others == 0 {
            String::new()
        } else {
            format!(" (and {others} more)")
        };
        return Err(err(
            foreign.subject,
            format!("the document may hold only the policy's own statements; `{foreign} .` is about something else{more}"),
        ));
    }
    Ok(policy)
}

fn read_policy<'a>(r: &Reader<'a>, iri: &str) -> Result<Policy, CompileError> {
    let named = NamedNodeRef::new(iri).map_err(|e| err(iri, e.to_string()))?;
    let node: NamedOrBlankNodeRef<'a> = match r.graph.triples_for_subject(named).next() {
        Some(t) => t.subject,
        None => return Err(err(iri, "the policy node has no statements")),
    };
    r.visit(node);
    r.check_predicates(
        node,
        "policy",
        &[
            "uid",
            "permission",
            "prohibition",
            "obligation",
            "conflict",
            "profile",
            "assigner",
            "assignee",
            "target",
            "action",
        ],
    )?;
    let conflict = match r.single_iri(node, "conflict")?.as_deref().and_then(|c| c.strip_prefix(ODRL)) {
        None | Some("invalid") => Conflict::Invalid,
        Some("perm") => Conflict::Perm,
        Some("prohibit") => Conflict::Prohibit,
        Some(other) => return Err(err(node, format!("odrl:conflict odrl:{other} is not a conflict strategy"))),
    };
    // Policy-level action, target and assignee apply to every rule that does not name its own.
    let inherited = RuleDefaults {
        action: r.single_iri(node, "action")?,
        target: r.single_iri(node, "target")?,
        assignee: r.single_iri(node, "assignee")?,
    };
    let mut rules = Vec::new();
    for (local, kind) in [
        ("permission", RuleKind::Permission),
        ("prohibition", RuleKind::Prohibition),
        ("obligation", RuleKind::Obligation),
    ] {
        for obj in r.objects(node, local) {
            if rules.len() == r.limits.rules {
                return Err(err(node, format!("the policy has more than {} rules", r.limits.rules)));
            }
            let rule_node = r.node_of(obj, node, "a rule")?;
            rules.push(parse_rule(r, rule_node, kind, &inherited)?);
        }
    }
    canonicalise(iri, &mut rules);
    Ok(Policy {
        uid: iri.to_owned(),
        conflict,
        rules,
    })
}

/// Puts rules, duties and constraints into an order that depends only on their content and gives
/// blank nodes stable uids (`<parent>/<kind>/<n>`): the same policy always yields the same IR.
fn canonicalise(policy: &str, rules: &mut [Rule]) {
    for rule in rules.iter_mut() {
        sort_constraints(&mut rule.constraints);
        for duty in &mut rule.duties {
            sort_constraints(&mut duty.constraints);
        }
        rule.duties.sort_by_cached_key(|d| format!("{d:?}"));
    }
    rules.sort_by_cached_key(|r| format!("{r:?}"));
    for (i, rule) in rules.iter_mut().enumerate() {
        if rule.uid.is_empty() {
            rule.uid = format!("{policy}/{:?}/{i}", rule.kind).to_lowercase();
        }
        name_constraints(&rule.uid, &mut rule.constraints);
        for (j, duty) in rule.duties.iter_mut().enumerate() {
            if duty.uid.is_empty() {
                duty.uid = format!("{}/duty/{j}", rule.uid);
            }
            name_constraints(&duty.uid, &mut duty.constraints);
        }
    }
}

fn children(c: &mut Constraint) -> Option<&mut Vec<Constraint>> {
    match c {
        Constraint::Atomic { .. } => None,
        Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } => Some(operands),
    }
}

fn sort_constraints(cs: &mut [Constraint]) {
    for c in cs.iter_mut() {
        if let Some(ops) = children(c) {
            sort_constraints(ops);
        }
    }
    cs.sort_by_cached_key(|c| format!("{c:?}"));
}

fn name_constraints(parent: &str, cs: &mut [Constraint]) {
    for (i, c) in cs.iter_mut().enumerate() {
        let uid = match c {
            Constraint::Atomic { uid, .. } | Constraint::And { uid, .. } | Constraint::Or { uid, .. } | Constraint::Xone { uid, .. } => uid,
        };
        if uid.is_empty() {
            *uid = format!("{parent}/constraint/{i}");
        }
        let uid = uid.clone();
        if let Some(ops) = children(c) {
            name_constraints(&uid, ops);
        }
    }
}

struct RuleDefaults {
    action: Option<String>,
    target: Option<String>,
    assignee: Option<String>,
}

fn parse_rule<'a>(r: &Reader<'a>, node: NamedOrBlankNodeRef<'a>, kind: RuleKind, inherited: &RuleDefaults) -> Result<Rule, CompileError> {
    r.visit(node);
    let allowed: &[&str] = match kind {
        RuleKind::Permission => &["uid", "action", "target", "assignee", "assigner", "constraint", "duty"],
        RuleKind::Prohibition | RuleKind::Obligation => &["uid", "action", "target", "assignee", "assigner", "constraint"],
    };
    r.check_predicates(node, "rule", allowed)?;
    let action = match r.single_iri(node, "action")?.or_else(|| inherited.action.clone()) {
        Some(a) if !r.vocab.is_known_action(&a) => return Err(err(node, format!("action <{a}> is not an ODRL 2.2 action"))),
        other => other,
    };
    let target = r.single_iri(node, "target")?.or_else(|| inherited.target.clone()).map(|t| {
        if r.has_type(&t, "AssetCollection") {
            Asset::Collection(t)
        } else {
            Asset::One(t)
        }
    });
    let assignee = r.single_iri(node, "assignee")?.or_else(|| inherited.assignee.clone()).map(|a| {
        if r.has_type(&a, "PartyCollection") {
            Party::Collection(a)
        } else {
            Party::One(a)
        }
    });
    let constraints = parse_constraints(r, node)?;
    let duties = r
        .objects(node, "duty")
        .into_iter()
        .map(|d| {
            r.count(&r.duties, r.limits.duties, "duties", node)?;
            parse_duty(r, r.node_of(d, node, "a duty")?)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        uid: uid_of(r, node),
        kind,
        action,
        target,
        assignee,
        constraints,
        duties,
    })
}

fn uid_of<'a>(r: &Reader<'a>, node: NamedOrBlankNodeRef<'a>) -> String {
    match r.single_iri(node, "uid") {
        Ok(Some(uid)) => uid,
        // Blank-node labels differ on every parse; such nodes get a uid from their position in
        // the canonical order instead (see `canonicalise`).
        _ => match node {
            NamedOrBlankNodeRef::NamedNode(n) => n.as_str().to_owned(),
            NamedOrBlankNodeRef::BlankNode(_) => String::new(),
        },
    }
}

fn parse_duty<'a>(r: &Reader<'a>, node: NamedOrBlankNodeRef<'a>) -> Result<Duty, CompileError> {
    r.visit(node);
    r.check_predicates(node, "duty", &["uid", "action", "constraint", "informedParty"])?;
    let action = r
        .single_iri(node, "action")?
        .ok_or_else(|| err(node, "a duty needs an odrl:action"))?;
    let profile_action = action.strip_prefix(KDR);
    if let Some(local) = profile_action
        && !PROFILE_ACTIONS.contains(&local)
    {
        return Err(err(
            node,
            format!("duty action kdr:{local} is not in the kdr profile ({})", PROFILE_ACTIONS.join(", ")),
        ));
    }
    if profile_action.is_none() && !r.vocab.is_known_action(&action) {
        return Err(err(node, format!("duty action <{action}> is not an ODRL 2.2 action")));
    }
    let mut duty = Duty {
        uid: uid_of(r, node),
        constraints: parse_constraints(r, node)?,
        fields: r.profile_strings(node, "field")?,
        group_by: r.profile_strings(node, "groupBy")?,
        min_group_size: r.profile_integer(node, "minGroupSize")?,
        granularity: r.profile_granularity(node)?,
        retention: r.profile_duration(node, "retention")?,
        informed_party: r.single_iri(node, "informedParty")?,
        epsilon_milli: r.profile_milli(node, "epsilon")?,
        budget_milli: r.profile_milli(node, "budget")?,
        action,
    };
    duty.fields.sort();
    duty.group_by.sort();
    check_duty_terms(&duty).map_err(|m| err(node, m))?;
    Ok(duty)
}

/// The duty actions the kdr profile adds to ODRL.
const PROFILE_ACTIONS: &[&str] = &["minimise", "pseudonymise", "generalise", "addNoise"];
const PROFILE_TERMS: &[&str] = &["field", "groupBy", "minGroupSize", "granularity", "retention", "epsilon", "budget"];

/// The largest ε the profile admits for one release, and for a month's budget: above that the
/// noise no longer protects anyone, and the number would only look like protection.
pub const MAX_EPSILON_MILLI: u32 = 5_000;
pub const MAX_BUDGET_MILLI: u32 = 50_000;

/// Which profile terms each duty action takes, and which it needs.
fn check_duty_terms(d: &Duty) -> Result<(), String> {
    let local = d
        .action
        .strip_prefix(KDR)
        .map(|l| format!("kdr:{l}"))
        .or_else(|| d.action.strip_prefix(ODRL).map(|l| format!("odrl:{l}")))
        .unwrap_or_else(|| d.action.clone());
    let present = [
        ("kdr:field", !d.fields.is_empty()),
        ("kdr:groupBy", !d.group_by.is_empty()),
        ("kdr:minGroupSize", d.min_group_size.is_some()),
        ("kdr:granularity", d.granularity.is_some()),
        ("kdr:retention", d.retention.is_some()),
        ("odrl:informedParty", d.informed_party.is_some()),
        ("kdr:epsilon", d.epsilon_milli.is_some()),
        ("kdr:budget", d.budget_milli.is_some()),
    ];
    let (allowed, required): (&[&str], &[&str]) = match local.as_str() {
        "kdr:minimise" | "kdr:pseudonymise" => (&["kdr:field"], &["kdr:field"]),
        "kdr:generalise" => (&["kdr:field", "kdr:granularity"], &["kdr:field", "kdr:granularity"]),
        "odrl:aggregate" => (&["kdr:groupBy", "kdr:minGroupSize"], &["kdr:minGroupSize"]),
        "odrl:delete" => (&["kdr:retention"], &["kdr:retention"]),
        "odrl:inform" => (&["odrl:informedParty"], &[]),
        "kdr:addNoise" => (&["kdr:epsilon", "kdr:budget"], &["kdr:epsilon", "kdr:budget"]),
        _ => (&[], &[]),
    };
    for (term, is_set) in present {
        if is_set && !allowed.contains(&term) {
            return Err(format!("{term} does not apply to a {local} duty"));
        }
        if !is_set && required.contains(&term) {
            return Err(format!("a {local} duty needs {term}"));
        }
    }
    if d.min_group_size.is_some_and(|n| n < 2) {
        return Err("kdr:minGroupSize must be at least 2".into());
    }
    if let (Some(e), Some(b)) = (d.epsilon_milli, d.budget_milli) {
        if e == 0 || e > MAX_EPSILON_MILLI {
            return Err(format!(
                "kdr:epsilon must be above 0 and at most {}",
                f64::from(MAX_EPSILON_MILLI) / 1000.0
            ));
        }
        if b < e || b > MAX_BUDGET_MILLI {
            return Err(format!(
                "kdr:budget must be at least kdr:epsilon and at most {}",
                f64::from(MAX_BUDGET_MILLI) / 1000.0
            ));
        }
    }
    Ok(())
}

/// The `odrl:constraint`s of a rule or duty.
fn parse_constraints<'a>(r: &Reader<'a>, node: NamedOrBlankNodeRef<'a>) -> Result<Vec<Constraint>, CompileError> {
    r.objects(node, "constraint")
        .into_iter()
        .map(|c| parse_constraint(r, r.node_of(c, node, "a constraint")?, &mut Vec::new()))
        .collect()
}

/// One constraint; `path` holds the logical constraints it is nested in, so a constraint that
/// is (directly or through others) its own operand is found instead of read forever.
fn parse_constraint<'a>(
    r: &Reader<'a>,
    node: NamedOrBlankNodeRef<'a>,
    path: &mut Vec<NamedOrBlankNodeRef<'a>>,
) -> Result<Constraint, CompileError> {
    if path.contains(&node) {
        return Err(err(node, "the logical constraint is one of its own operands (a cycle)"));
    }
    if path.len() == r.limits.depth {
        return Err(err(
            node,
            format!("logical constraints are nested more than {} deep", r.limits.depth),
        ));
    }
    r.count(&r.constraints, r.limits.constraints, "constraints", node)?;
    r.visit(node);
    let uid = uid_of(r, node);
    for (local, make) in [
        (
            "and",
            (|uid, operands| Constraint::And { uid, operands }) as fn(String, Vec<Constraint>) -> Constraint,
        ),
        ("or", |uid, operands| Constraint::Or { uid, operands }),
        ("xone", |uid, operands| Constraint::Xone { uid, operands }),
    ] {
        let members = r.objects(node, local);
        if !members.is_empty() {
            r.check_predicates(node, "logical constraint", &["uid", local])?;
            let mut operands = Vec::new();
            path.push(node);
            for m in list_or_values(r, members, node)? {
                operands.push(parse_constraint(r, r.node_of(m, node, "a constraint operand")?, path)?);
            }
            path.pop();
            return Ok(make(uid, operands));
        }
    }
    r.check_predicates(node, "constraint", &["uid", "leftOperand", "operator", "rightOperand"])?;
    let left_iri = r
        .single_iri(node, "leftOperand")?
        .ok_or_else(|| err(node, "a constraint needs odrl:leftOperand (or odrl:and/or/xone)"))?;
    let left = match left_iri.strip_prefix(ODRL) {
        Some("dateTime") => LeftOperand::DateTime,
        Some("purpose") => LeftOperand::Purpose,
        Some("count") => LeftOperand::Count,
        Some("recipient") => LeftOperand::Recipient,
        Some("spatial") => LeftOperand::Spatial,
        _ => return Err(err(node, format!("left operand <{left_iri}> is not supported by this profile"))),
    };
    let op_iri = r
        .single_iri(node, "operator")?
        .ok_or_else(|| err(node, "a constraint needs odrl:operator"))?;
    let operator = match op_iri.strip_prefix(ODRL) {
        Some("eq") => Operator::Eq,
        Some("neq") => Operator::Neq,
        Some("lt") => Operator::Lt,
        Some("lteq") => Operator::Lteq,
        Some("gt") => Operator::Gt,
        Some("gteq") => Operator::Gteq,
        Some("isA") => Operator::IsA,
        Some("isAnyOf") => Operator::IsAnyOf,
        Some("isNoneOf") => Operator::IsNoneOf,
        _ => return Err(err(node, format!("operator <{op_iri}> is not supported by this profile"))),
    };
    let right = parse_right(r, node, left)?;
    check_combination(node, left, operator, &right, r.vocab)?;
    Ok(Constraint::Atomic {
        uid,
        left,
        operator,
        right,
    })
}

/// Logical operands may be given as an RDF list or as repeated values. A list whose tail points
/// back into itself, or longer than the limit, is refused.
fn list_or_values<'a>(r: &Reader<'a>, values: Vec<TermRef<'a>>, at: NamedOrBlankNodeRef<'a>) -> Result<Vec<TermRef<'a>>, CompileError> {
    let first = NamedNodeRef::new_unchecked(RDF_FIRST);
    let rest = NamedNodeRef::new_unchecked(RDF_REST);
    let mut out = Vec::new();
    let mut cells = HashSet::new();
    for v in values {
        let mut cursor: Option<NamedOrBlankNodeRef<'a>> = match v {
            TermRef::BlankNode(b) if r.graph.object_for_subject_predicate(b, first).is_some() => Some(b.into()),
            _ => {
                out.push(v);
                None
            }
        };
        while let Some(cell) = cursor {
            if !cells.insert(cell) {
                return Err(err(at, "an RDF list of its values points back into itself (a cycle)"));
            }
            r.visit(cell);
            if let Some(item) = r.graph.object_for_subject_predicate(cell, first) {
                out.push(item);
            }
            cursor = match r.graph.object_for_subject_predicate(cell, rest) {
                Some(TermRef::BlankNode(b)) => Some(b.into()),
                Some(TermRef::NamedNode(n)) if n.as_str() != RDF_NIL => Some(n.into()),
                _ => None,
            };
        }
        if out.len() > r.limits.list {
            return Err(err(at, format!("a list holds more than {} values", r.limits.list)));
        }
    }
    Ok(out)
}

fn parse_right<'a>(r: &Reader<'a>, node: NamedOrBlankNodeRef<'a>, left: LeftOperand) -> Result<Operand, CompileError> {
    let values = list_or_values(r, r.objects(node, "rightOperand"), node)?;
    let one = |t: &TermRef<'_>| -> Result<Operand, CompileError> {
        match t {
            TermRef::NamedNode(n) => Ok(Operand::Iri(n.as_str().to_owned())),
            TermRef::Literal(l) => {
                let dt = l.datatype().as_str().strip_prefix(XSD).unwrap_or("");
                match (left, dt) {
                    (LeftOperand::DateTime, "dateTime") => {
                        l.value()
                            .parse::<oxsdatatypes::DateTime>()
                            .map_err(|e| err(node, format!("'{}' is not an xsd:dateTime: {e}", l.value())))?;
                        Ok(Operand::DateTime(l.value().to_owned()))
                    }
                    (LeftOperand::Count, "integer" | "int" | "long" | "nonNegativeInteger" | "positiveInteger") => l
                        .value()
                        .parse::<i64>()
                        .map(Operand::Integer)
                        .map_err(|e| err(node, format!("'{}' is not an integer: {e}", l.value()))),
                    _ => Err(err(node, format!("right operand {t} does not fit the left operand {left:?}"))),
                }
            }
            other => Err(err(node, format!("right operand {other} must be an IRI or a literal"))),
        }
    };
    match values.as_slice() {
        [] => Err(err(node, "a constraint needs odrl:rightOperand")),
        [single] => one(single),
        many => many
            .iter()
            .map(|t| match one(t)? {
                Operand::Iri(i) => Ok(i),
                _ => Err(err(node, "a list of right operands must hold IRIs")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Operand::Iris),
    }
}

fn check_combination(
    node: NamedOrBlankNodeRef<'_>,
    left: LeftOperand,
    op: Operator,
    right: &Operand,
    vocab: &Vocabulary,
) -> Result<(), CompileError> {
    use Operator::*;
    let ok = match left {
        LeftOperand::DateTime => matches!(right, Operand::DateTime(_)) && matches!(op, Eq | Neq | Lt | Lteq | Gt | Gteq),
        LeftOperand::Count => matches!(right, Operand::Integer(_)) && matches!(op, Eq | Neq | Lt | Lteq | Gt | Gteq),
        // Comparisons with one value need exactly one IRI; set operators take one or several.
        LeftOperand::Purpose => match op {
            Eq | Neq | IsA => matches!(right, Operand::Iri(_)),
            IsAnyOf | IsNoneOf => matches!(right, Operand::Iri(_) | Operand::Iris(_)),
            _ => false,
        },
        LeftOperand::Recipient | LeftOperand::Spatial => match op {
            Eq | Neq => matches!(right, Operand::Iri(_)),
            IsAnyOf | IsNoneOf => matches!(right, Operand::Iri(_) | Operand::Iris(_)),
            _ => false,
        },
    };
    if !ok {
        return Err(err(
            node,
            format!("operator {op:?} with {right:?} is not supported for the left operand {left:?}"),
        ));
    }
    if left == LeftOperand::Purpose {
        let iris: Vec<&String> = match right {
            Operand::Iri(i) => vec![i],
            Operand::Iris(is) => is.iter().collect(),
            _ => return Err(err(node, "a purpose constraint needs purpose IRIs")),
        };
        if let Some(unknown) = iris.into_iter().find(|i| !vocab.is_known_purpose(i)) {
            return Err(err(node, format!("purpose <{unknown}> is not in the DPV purpose taxonomy")));
        }
    }
    Ok(())
}

/// The IRI of an RDF term, for callers reading requests and states of the world.
pub fn iri_of(term: &Term) -> Option<&str> {
    match term {
        Term::NamedNode(n) => Some(n.as_str()),
        _ => None,
    }
}
