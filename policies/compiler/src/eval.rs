//! The reference evaluator of the rule IR: the executable specification that the compiled Wasm
//! modules and the Rego rendering are checked against. Pure: the request and the state of the
//! world (time, collection membership, duty states, usage counts) come in; a report comes out.

use std::collections::{BTreeMap, BTreeSet};

use oxsdatatypes::DateTime;
use serde::Serialize;

use crate::ir::{Asset, Conflict, Constraint, Duty, LeftOperand, Operand, Operator, Party, Policy, Rule, RuleKind};
use crate::vocab::Vocabulary;

/// What is asked: who wants to do what with which asset, for which purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub assignee: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub purpose: Option<String>,
    pub recipient: Option<String>,
    pub spatial: Option<String>,
}

/// What is true when the request is evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// The current time, an `xsd:dateTime` lexical form.
    pub now: Option<String>,
    /// `odrl:partOf` links: member -> collections.
    pub part_of: BTreeMap<String, BTreeSet<String>>,
    /// Duties known to be violated.
    pub violated_duties: BTreeSet<String>,
    /// The consumer's usage count for the asset in the counting period (`odrl:count`).
    pub count: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationState {
    Active,
    Inactive,
}

/// A rule's outcome: whether it applies, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleReport {
    pub rule: String,
    pub kind: RuleKind,
    pub activation: ActivationState,
    pub party: bool,
    pub action: bool,
    pub target: bool,
    /// Every constraint (nested ones included) with whether it was satisfied.
    pub constraints: Vec<(String, bool)>,
    /// Duties of the rule known to be violated.
    pub violated_duties: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Permit,
    Deny,
}

/// Evaluates every rule of `policy`.
pub fn evaluate(policy: &Policy, request: &Request, world: &World, vocab: &Vocabulary) -> Vec<RuleReport> {
    policy.rules.iter().map(|r| evaluate_rule(r, request, world, vocab)).collect()
}

/// The policy's decision from its rule reports, by ODRL's conflict strategy.
pub fn decide(policy: &Policy, reports: &[RuleReport]) -> Decision {
    let active = |kind| reports.iter().any(|r| r.kind == kind && r.activation == ActivationState::Active);
    match (active(RuleKind::Permission), active(RuleKind::Prohibition)) {
        (true, false) => Decision::Permit,
        (true, true) if policy.conflict == Conflict::Perm => Decision::Permit,
        _ => Decision::Deny,
    }
}

/// The duties the broker must enforce: on permit, those of every active permission, in rule
/// order; nothing on deny.
pub fn duties_to_enforce<'p>(policy: &'p Policy, reports: &[RuleReport], decision: Decision) -> Vec<&'p Duty> {
    if decision != Decision::Permit {
        return Vec::new();
    }
    policy
        .rules
        .iter()
        .zip(reports)
        .filter(|(r, rep)| r.kind == RuleKind::Permission && rep.activation == ActivationState::Active)
        .flat_map(|(r, _)| &r.duties)
        .collect()
}

fn evaluate_rule(rule: &Rule, req: &Request, world: &World, vocab: &Vocabulary) -> RuleReport {
    let party = match &rule.assignee {
        None => true,
        Some(Party::One(p)) => req.assignee.as_deref() == Some(p),
        Some(Party::Collection(c)) => req.assignee.as_ref().is_some_and(|a| a == c || member_of(world, a, c)),
    };
    let target = match &rule.target {
        None => true,
        Some(Asset::One(t)) => req.target.as_deref() == Some(t),
        Some(Asset::Collection(c)) => req.target.as_ref().is_some_and(|t| t == c || member_of(world, t, c)),
    };
    let action = match (&rule.action, &req.action) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(allowed), Some(asked)) => vocab.action_within(asked, allowed),
    };
    let mut constraints = Vec::new();
    // Every constraint is checked (no short-circuit): a denial names each one that failed.
    let satisfied = rule
        .constraints
        .iter()
        .map(|c| check(c, req, world, vocab, &mut constraints))
        .fold(true, |a, b| a & b);
    let violated: Vec<String> = rule
        .duties
        .iter()
        .filter(|d| world.violated_duties.contains(&d.uid))
        .map(|d| d.uid.clone())
        .collect();
    let active = party && target && action && satisfied && violated.is_empty();
    RuleReport {
        rule: rule.uid.clone(),
        kind: rule.kind,
        activation: if active {
            ActivationState::Active
        } else {
            ActivationState::Inactive
        },
        party,
        action,
        target,
        constraints,
        violated_duties: violated,
    }
}

fn member_of(world: &World, member: &str, collection: &str) -> bool {
    world.part_of.get(member).is_some_and(|cs| cs.contains(collection))
}

/// Evaluates a constraint, recording every sub-constraint's outcome (no short-circuit, so the
/// report names each failing constraint).
fn check(c: &Constraint, req: &Request, world: &World, vocab: &Vocabulary, out: &mut Vec<(String, bool)>) -> bool {
    let result = match c {
        Constraint::And { operands, .. } => operands.iter().map(|o| check(o, req, world, vocab, out)).fold(true, |a, b| a & b),
        Constraint::Or { operands, .. } => operands.iter().map(|o| check(o, req, world, vocab, out)).fold(false, |a, b| a | b),
        Constraint::Xone { operands, .. } => operands.iter().map(|o| check(o, req, world, vocab, out)).filter(|b| *b).count() == 1,
        Constraint::Atomic { left, operator, right, .. } => atomic(*left, *operator, right, req, world, vocab),
    };
    out.push((c.uid().to_owned(), result));
    result
}

fn atomic(left: LeftOperand, op: Operator, right: &Operand, req: &Request, world: &World, vocab: &Vocabulary) -> bool {
    match left {
        LeftOperand::DateTime => {
            let (Some(now), Operand::DateTime(r)) = (world.now.as_deref(), right) else {
                return false;
            };
            match (now.parse::<DateTime>(), r.parse::<DateTime>()) {
                (Ok(a), Ok(b)) => compare(op, a.partial_cmp(&b)),
                _ => false,
            }
        }
        LeftOperand::Count => match (world.count, right) {
            (Some(n), Operand::Integer(limit)) => compare(op, Some(n.cmp(limit))),
            _ => false,
        },
        LeftOperand::Purpose => {
            let Some(asked) = req.purpose.as_deref() else { return false };
            match (op, right) {
                (Operator::Eq, Operand::Iri(p)) => asked == p,
                (Operator::Neq, Operand::Iri(p)) => asked != p,
                (Operator::IsA, Operand::Iri(p)) => vocab.purpose_within(asked, p),
                (Operator::IsAnyOf, ops) => iris(ops).iter().any(|p| vocab.purpose_within(asked, p)),
                (Operator::IsNoneOf, ops) => !iris(ops).iter().any(|p| vocab.purpose_within(asked, p)),
                _ => false,
            }
        }
        LeftOperand::Recipient | LeftOperand::Spatial => {
            let value = if left == LeftOperand::Recipient {
                req.recipient.as_deref()
            } else {
                req.spatial.as_deref()
            };
            let Some(v) = value else { return false };
            match op {
                Operator::Eq => iris(right) == [v],
                Operator::Neq => iris(right) != [v],
                Operator::IsAnyOf => iris(right).contains(&v),
                Operator::IsNoneOf => !iris(right).contains(&v),
                _ => false,
            }
        }
    }
}

fn iris(o: &Operand) -> Vec<&str> {
    match o {
        Operand::Iri(i) => vec![i.as_str()],
        Operand::Iris(is) => is.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

fn compare(op: Operator, ord: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    match (op, ord) {
        (_, None) => false,
        (Operator::Eq, Some(o)) => o == Equal,
        (Operator::Neq, Some(o)) => o != Equal,
        (Operator::Lt, Some(o)) => o == Less,
        (Operator::Lteq, Some(o)) => o != Greater,
        (Operator::Gt, Some(o)) => o == Greater,
        (Operator::Gteq, Some(o)) => o != Less,
        _ => false,
    }
}
