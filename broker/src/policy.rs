//! Usage policies as the broker handles them: a steward's document is compiled (to the rule IR
//! and to an OPA-ABI Wasm module) and checked against the dataset it is attached to and against
//! what this broker can carry out, before anything is stored.
//!
//! **Fail closed.** A policy is a promise to the citizens whose data it governs. A duty the
//! broker cannot carry out (`odrl:anonymize`: what would it do?), a constraint on something the
//! broker never tells the policy (`odrl:recipient`: a prohibition on it could never fire), an
//! obligation nobody is held to, a party or asset collection whose members nobody supplies:
//! each would be approved, look enforced, and not be. They are refused at submission with the
//! term and the node that carry them. (The policy compiler itself understands more ODRL, for the
//! conformance suite's "state of the world"; this is the broker's profile of it.)
//!
//! **Architecture Invariant:** policies reach the evaluator only as compiled modules whose hash
//! the stored version names; the source is recompiled on load and a hash mismatch is refused.

use policy_compiler::ir::{Asset, Constraint, LeftOperand, Party, Policy, Rule, RuleKind};
use policy_compiler::parse::Syntax;
use policy_compiler::{CompileError, Vocabulary, parse, wasm};
use policy_evaluator::ModuleHash;

use crate::enforce::DutyKind;

/// A policy ready to be stored: its IR, its module and the module's hash.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub module: Vec<u8>,
    pub hash: ModuleHash,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyRejection {
    #[error("the policy is not valid UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("rule {rule} targets <{target}>, not this dataset <{dataset}>; a dataset's policy governs only that dataset")]
    ForeignTarget { rule: String, target: String, dataset: String },
    #[error("{what} (at {at}): {why}")]
    Unenforceable { at: String, what: String, why: String },
}

/// The left operands the broker puts into every policy input (`exchange`): who asks is the
/// assignee, and these are the constraints it can decide.
pub const SUPPLIED_OPERANDS: &[LeftOperand] = &[LeftOperand::Purpose, LeftOperand::DateTime, LeftOperand::Count];

/// Compiles `source` (Turtle or JSON-LD) as the policy of the dataset `dataset_iri`.
pub fn compile_for_dataset(
    source: &[u8],
    syntax: Syntax,
    dataset_iri: &str,
    vocab: &Vocabulary,
) -> Result<CompiledPolicy, PolicyRejection> {
    let text = std::str::from_utf8(source).map_err(|_| PolicyRejection::NotUtf8)?;
    let policy = parse::parse_submission(text, syntax, vocab)?;
    for rule in &policy.rules {
        check_rule(rule, dataset_iri)?;
    }
    let module = wasm::compile(&policy, vocab)?;
    let hash = ModuleHash::of(&module);
    Ok(CompiledPolicy { policy, module, hash })
}

fn unenforceable(at: &str, what: impl Into<String>, why: impl Into<String>) -> PolicyRejection {
    PolicyRejection::Unenforceable {
        at: at.to_owned(),
        what: what.into(),
        why: why.into(),
    }
}

/// Whether the broker can decide and carry out `rule` for the dataset `dataset_iri`.
fn check_rule(rule: &Rule, dataset_iri: &str) -> Result<(), PolicyRejection> {
    if rule.kind == RuleKind::Obligation {
        return Err(unenforceable(
            &rule.uid,
            "an odrl:obligation",
            "the broker holds no one to an obligation outside a request; make it a duty of the permission it belongs to",
        ));
    }
    match &rule.target {
        Some(Asset::One(target)) if target != dataset_iri => {
            return Err(PolicyRejection::ForeignTarget {
                rule: rule.uid.clone(),
                target: target.clone(),
                dataset: dataset_iri.to_owned(),
            });
        }
        Some(Asset::Collection(c)) => {
            return Err(unenforceable(
                &rule.uid,
                format!("the odrl:AssetCollection <{c}>"),
                "a dataset's policy governs that dataset; name it as the target",
            ));
        }
        _ => {}
    }
    if let Some(Party::Collection(c)) = &rule.assignee {
        return Err(unenforceable(
            &rule.uid,
            format!("the odrl:PartyCollection <{c}>"),
            "the broker knows no members of party collections; give one rule per municipality",
        ));
    }
    for c in &rule.constraints {
        check_constraint(c)?;
    }
    let kinds: Vec<Option<DutyKind>> = rule.duties.iter().map(|d| DutyKind::of(&d.action)).collect();
    if kinds.contains(&Some(DutyKind::AddNoise)) && !kinds.contains(&Some(DutyKind::Aggregate)) {
        return Err(unenforceable(
            &rule.uid,
            "a kdr:addNoise duty without an odrl:aggregate duty",
            "noise is added to the counts of an aggregate; give the rule an odrl:aggregate duty as well",
        ));
    }
    for duty in &rule.duties {
        if DutyKind::of(&duty.action).is_none() {
            let known: Vec<&str> = DutyKind::ALL.iter().map(|k| k.term()).collect();
            return Err(unenforceable(
                &duty.uid,
                format!("the duty <{}>", duty.action),
                format!("the broker cannot carry it out; it carries out {}", known.join(", ")),
            ));
        }
        if let Some(c) = duty.constraints.first() {
            return Err(unenforceable(
                c.uid(),
                "a constraint on a duty",
                "the broker carries out a duty on every permitted request and does not decide constraints on duties",
            ));
        }
    }
    Ok(())
}

fn check_constraint(c: &Constraint) -> Result<(), PolicyRejection> {
    match c {
        Constraint::Atomic { uid, left, .. } if !SUPPLIED_OPERANDS.contains(left) => {
            let supplied: Vec<String> = SUPPLIED_OPERANDS.iter().map(|l| format!("odrl:{}", operand_name(*l))).collect();
            Err(unenforceable(
                uid,
                format!("a constraint on odrl:{}", operand_name(*left)),
                format!(
                    "the broker never tells a policy the {}, so the constraint could never be met (nor a prohibition on it apply); it supplies {}",
                    operand_name(*left),
                    supplied.join(", ")
                ),
            ))
        }
        Constraint::Atomic { .. } => Ok(()),
        Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } => {
            operands.iter().try_for_each(check_constraint)
        }
    }
}

fn operand_name(l: LeftOperand) -> &'static str {
    match l {
        LeftOperand::DateTime => "dateTime",
        LeftOperand::Purpose => "purpose",
        LeftOperand::Count => "count",
        LeftOperand::Recipient => "recipient",
        LeftOperand::Spatial => "spatial",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATASET: &str = "https://broker.kdr.example/datasets/aalen-buergerbuero-termine";

    fn compile(body: &str) -> Result<CompiledPolicy, PolicyRejection> {
        let vocab = Vocabulary::standard().expect("vocab");
        let doc = format!(
            "@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix dpv: <https://w3id.org/dpv#> . \
             @prefix kdr: <https://w3id.org/kdr/odrl#> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> . \
             <urn:p> a odrl:Set ; {body}"
        );
        compile_for_dataset(doc.as_bytes(), Syntax::Turtle, DATASET, &vocab)
    }

    fn refused(body: &str) -> String {
        match compile(body) {
            Ok(_) => panic!("compiled, but must be refused: {body}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_duty_the_broker_cannot_carry_out_is_refused_at_submission() {
        let e = refused(&format!(
            "odrl:permission [ odrl:target <{DATASET}> ; odrl:action odrl:use ; odrl:duty [ odrl:action odrl:anonymize ] ] ."
        ));
        assert!(e.contains("odrl/2/anonymize") && e.contains("cannot carry it out"), "{e}");
        let e = refused(&format!(
            "odrl:permission [ odrl:target <{DATASET}> ; odrl:action odrl:use ; odrl:duty [ odrl:action odrl:inform ] ] ."
        ));
        assert!(e.contains("inform"), "{e}");
    }

    #[test]
    fn constraints_on_operands_the_broker_never_supplies_are_refused() {
        for operand in ["recipient", "spatial"] {
            let e = refused(&format!(
                "odrl:permission [ odrl:target <{DATASET}> ; odrl:action odrl:use ] ; \
                 odrl:prohibition [ odrl:target <{DATASET}> ; odrl:action odrl:use ; odrl:constraint [ \
                 odrl:leftOperand odrl:{operand} ; odrl:operator odrl:eq ; odrl:rightOperand <urn:x> ] ] ."
            ));
            assert!(e.contains(&format!("odrl:{operand}")) && e.contains("never tells"), "{e}");
        }
        // Nested in a logical constraint too.
        let e = refused(&format!(
            "odrl:permission [ odrl:target <{DATASET}> ; odrl:action odrl:use ; odrl:constraint [ odrl:or ( \
             [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:ImprovePublicServices ] \
             [ odrl:leftOperand odrl:spatial ; odrl:operator odrl:eq ; odrl:rightOperand <urn:x> ] ) ] ] ."
        ));
        assert!(e.contains("odrl:spatial"), "{e}");
    }

    #[test]
    fn obligations_collections_and_duty_constraints_are_refused() {
        let e = refused("odrl:obligation [ odrl:action odrl:delete ] .");
        assert!(e.contains("obligation"), "{e}");
        let e = refused("odrl:permission [ odrl:target <urn:c> ; odrl:action odrl:use ] . <urn:c> a odrl:AssetCollection .");
        assert!(e.contains("something else") || e.contains("AssetCollection"), "{e}");
        let e = refused(&format!(
            "odrl:permission [ odrl:target <{DATASET}> ; odrl:action odrl:use ; odrl:duty [ odrl:action kdr:minimise ; \
             kdr:field \"a\" ; odrl:constraint [ odrl:leftOperand odrl:count ; odrl:operator odrl:lt ; odrl:rightOperand \"3\"^^xsd:integer ] ] ] ."
        ));
        assert!(e.contains("constraint on a duty"), "{e}");
    }

    #[test]
    fn the_example_policies_pass_the_broker_profile() {
        let vocab = Vocabulary::standard().expect("vocab");
        for (text, syntax) in [
            (
                include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl"),
                Syntax::Turtle,
            ),
            (
                include_str!("../../policies/examples/aalen-buergerbuero-termine.jsonld"),
                Syntax::JsonLd,
            ),
        ] {
            compile_for_dataset(text.as_bytes(), syntax, DATASET, &vocab).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
