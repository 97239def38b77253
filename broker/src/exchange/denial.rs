//! Why a request was denied, in the policy's own terms.

use policy_compiler::ir::{Constraint, Operand, Policy, RuleKind};
use policy_evaluator::DecisionDocument;

/// Why a request was denied, in terms of the policy: the unsatisfied constraints of the
/// permissions that could have allowed it, and the prohibitions that forbade it. (Unsatisfied
/// constraints of a prohibition are not reasons: they are why it did not apply.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denial {
    /// Constraint uid -> a readable form (`purpose isA https://w3id.org/dpv#...`).
    pub failed_constraints: Vec<(String, String)>,
    pub prohibited_by: Vec<String>,
}

impl Denial {
    /// Each unmet constraint and applying prohibition as a sentence.
    pub fn reasons(&self) -> Vec<String> {
        let unmet = self
            .failed_constraints
            .iter()
            .map(|(uid, text)| format!("{text} is not met ({uid})"));
        unmet
            .chain(self.prohibited_by.iter().map(|r| format!("prohibited by {r}")))
            .collect()
    }
}

pub fn explain_denial(policy: &Policy, decision: &DecisionDocument) -> Denial {
    let mut out = Denial::default();
    for rule in &policy.rules {
        let active = decision.rules.get(&rule.uid).copied().unwrap_or(false);
        match rule.kind {
            RuleKind::Permission if !active => {
                for c in &rule.constraints {
                    collect_failed(c, decision, &mut out.failed_constraints);
                }
            }
            RuleKind::Prohibition if active => out.prohibited_by.push(rule.uid.clone()),
            _ => {}
        }
    }
    out
}

fn collect_failed(c: &Constraint, decision: &DecisionDocument, out: &mut Vec<(String, String)>) {
    if decision.constraints.get(c.uid()).copied().unwrap_or(true) {
        return;
    }
    match c {
        Constraint::Atomic {
            uid,
            left,
            operator,
            right,
        } => {
            let right = match right {
                Operand::DateTime(d) => d.clone(),
                Operand::Integer(n) => n.to_string(),
                Operand::Iri(i) => i.clone(),
                Operand::Iris(is) => is.join(" "),
            };
            out.push((uid.clone(), format!("{} {} {right}", odrl_name(left), odrl_name(operator))));
        }
        Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } => {
            out.push((c.uid().to_owned(), "a logical constraint".into()));
            for o in operands {
                collect_failed(o, decision, out);
            }
        }
    }
}

/// An IR term by its ODRL local name (`purpose`, `isA`): how the IR serialises it.
fn odrl_name(term: &impl serde::Serialize) -> String {
    serde_json::to_value(term)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
