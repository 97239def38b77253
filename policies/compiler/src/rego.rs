//! The rule IR rendered as Rego (OPA's policy language): the same rules for cities that already
//! run OPA, and an independent implementation to check the compiled modules against
//! (differential tests evaluate it with `regorus`).
//!
//! The output is self-contained: action and purpose hierarchies are expanded into constant
//! sets, dates into epoch milliseconds. The entrypoint is `data.kdr.policy.result`:
//! `{"decision": "permit"|"deny", "rules": {<uid>: bool}, "constraints": {<uid>: bool},
//! "duties": [<duty>]}`, the decision document of `schemas/policy-decision.schema.json`.

use std::fmt::Write;

use crate::input::datetime_ms;
use crate::ir::{Asset, Conflict, Constraint, LeftOperand, Operand, Operator, Party, Policy, Rule, RuleKind};
use crate::parse::CompileError;
use crate::vocab::Vocabulary;

pub const PACKAGE: &str = "kdr.policy";
pub const ENTRYPOINT: &str = "data.kdr.policy.result";

struct Out<'a> {
    text: String,
    vocab: &'a Vocabulary,
    next: usize,
    /// Constraint uid -> its variable, reported in the result so each can be checked.
    constraints: Vec<(String, String)>,
}

impl Out<'_> {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}", self.next)
    }

    /// `name := true if { body } else := false`: a total boolean, false when the body fails or
    /// refers to an input field that is absent.
    fn boolean(&mut self, name: &str, comment: &str, bodies: &[String]) {
        let _ = writeln!(self.text, "# {comment}");
        if bodies.is_empty() {
            let _ = writeln!(self.text, "{name} := false\n");
            return;
        }
        let mut line = format!("{name} := true");
        for (i, body) in bodies.iter().enumerate() {
            if i > 0 {
                line.push_str(" else := true");
            }
            let _ = write!(line, " if {{ {body} }}");
        }
        let _ = writeln!(self.text, "{line} else := false\n");
    }
}

/// A Rego string literal: Rego strings escape as JSON strings do.
fn quote(s: &str) -> String {
    crate::wasm::json_string(s)
}

fn set(items: &[String]) -> String {
    if items.is_empty() {
        return "set()".into();
    }
    // One element per line: vocabulary closures are long, and Rego tools limit line length.
    let quoted: Vec<String> = items.iter().map(|i| format!("\n\t{}", quote(i))).collect();
    format!("{{{}\n}}", quoted.join(","))
}

/// Renders `policy` as a Rego module.
pub fn render(policy: &Policy, vocab: &Vocabulary) -> Result<String, CompileError> {
    let mut out = Out {
        text: String::new(),
        vocab,
        next: 0,
        constraints: Vec::new(),
    };
    let _ = writeln!(
        out.text,
        "# Generated from the ODRL policy {} by the kdr policy compiler.\npackage {PACKAGE}\n\nimport rego.v1\n",
        policy.uid
    );
    let mut rule_vars = Vec::new();
    for rule in &policy.rules {
        rule_vars.push((rule, render_rule(&mut out, rule)?));
    }
    let any = |kind: RuleKind| -> Vec<String> { rule_vars.iter().filter(|(r, _)| r.kind == kind).map(|(_, v)| v.clone()).collect() };
    out.boolean("permission_active", "some permission applies", &any(RuleKind::Permission));
    out.boolean("prohibition_active", "some prohibition applies", &any(RuleKind::Prohibition));
    let conflict_permits = policy.conflict == Conflict::Perm;
    let _ = writeln!(
        out.text,
        "decision := \"permit\" if {{ permission_active; not prohibition_active }} else := \"permit\" if {{ permission_active; {conflict_permits} }} else := \"deny\"\n"
    );
    let with_duties: Vec<String> = rule_vars
        .iter()
        .filter(|(r, _)| r.kind == RuleKind::Permission && !r.duties.is_empty())
        .map(|(r, v)| format!("\n\t[{v}, [{}]]", crate::wasm::duties_json(r)))
        .collect();
    if with_duties.is_empty() {
        let _ = writeln!(out.text, "# the duties of the active permissions, on permit\nduties := []\n");
    } else {
        let _ = writeln!(
            out.text,
            "# the duties of the active permissions, on permit\nduties := [d | some pair in [{}\n]; pair[0]; decision == \"permit\"; some d in pair[1]]\n",
            with_duties.join(",")
        );
    }
    let rules: Vec<String> = rule_vars.iter().map(|(r, v)| format!("{}: {v}", quote(&r.uid))).collect();
    let constraints: Vec<String> = out.constraints.iter().map(|(uid, v)| format!("\n\t{}: {v}", quote(uid))).collect();
    let _ = writeln!(
        out.text,
        "result := {{\"decision\": decision, \"rules\": {{{}}}, \"constraints\": {{{}\n}}, \"duties\": duties}}",
        rules.join(", "),
        constraints.join(",")
    );
    Ok(out.text)
}

/// `input.<field>` is `iri`, or (for a collection) is part of it per `input.partOf`.
fn membership(field: &str, iri: &str, collection: bool) -> Vec<String> {
    let mut bodies = vec![format!("input.{field} == {}", quote(iri))];
    if collection {
        bodies.push(format!("{} in input.partOf[input.{field}]", quote(iri)));
    }
    bodies
}

fn render_rule(out: &mut Out<'_>, rule: &Rule) -> Result<String, CompileError> {
    let mut parts = Vec::new();
    if let Some(p) = &rule.assignee {
        let v = out.fresh("party");
        let bodies = match p {
            Party::One(iri) => membership("assignee", iri, false),
            Party::Collection(c) => membership("assignee", c, true),
        };
        out.boolean(&v, &format!("assignee of {}", rule.uid), &bodies);
        parts.push(v);
    }
    if let Some(a) = &rule.action {
        let v = out.fresh("action");
        let within = out.vocab.actions_within(a);
        out.boolean(
            &v,
            &format!("action of {} ({a} and what it includes)", rule.uid),
            &[format!("input.action in {}", set(&within))],
        );
        parts.push(v);
    }
    if let Some(t) = &rule.target {
        let v = out.fresh("target");
        let bodies = match t {
            Asset::One(iri) => membership("target", iri, false),
            Asset::Collection(c) => membership("target", c, true),
        };
        out.boolean(&v, &format!("target of {}", rule.uid), &bodies);
        parts.push(v);
    }
    for c in &rule.constraints {
        parts.push(render_constraint(out, c)?);
    }
    for d in &rule.duties {
        let v = out.fresh("duty");
        out.boolean(
            &v,
            &format!("duty {} not violated", d.uid),
            &[format!("not {} in object.get(input, \"violatedDuties\", [])", quote(&d.uid))],
        );
        parts.push(v);
    }
    let v = out.fresh("rule");
    let body = if parts.is_empty() { "true".to_owned() } else { parts.join("; ") };
    out.boolean(&v, &format!("{:?} {} is active", rule.kind, rule.uid), &[body]);
    Ok(v)
}

fn render_constraint(out: &mut Out<'_>, c: &Constraint) -> Result<String, CompileError> {
    let v = out.fresh("constraint");
    out.constraints.push((c.uid().to_owned(), v.clone()));
    let comment = format!("constraint {}", c.uid());
    match c {
        Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } => {
            let vars = operands.iter().map(|o| render_constraint(out, o)).collect::<Result<Vec<_>, _>>()?;
            let bodies = match c {
                Constraint::And { .. } => vec![if vars.is_empty() { "true".into() } else { vars.join("; ") }],
                Constraint::Or { .. } => vars.clone(),
                _ => vec![format!("count([x | some x in [{}]; x]) == 1", vars.join(", "))],
            };
            let bodies = if bodies.is_empty() { vec!["false".to_owned()] } else { bodies };
            out.boolean(&v, &comment, &bodies);
        }
        Constraint::Atomic {
            left,
            operator,
            right,
            uid,
        } => {
            let body = atomic(out.vocab, *left, *operator, right).map_err(|m| CompileError {
                message: m,
                at: uid.clone(),
            })?;
            out.boolean(&v, &comment, &[body]);
        }
    }
    Ok(v)
}

fn cmp(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "==",
        Operator::Neq => "!=",
        Operator::Lt => "<",
        Operator::Lteq => "<=",
        Operator::Gt => ">",
        Operator::Gteq => ">=",
        _ => return None,
    })
}

fn iris(o: &Operand) -> Vec<String> {
    match o {
        Operand::Iri(i) => vec![i.clone()],
        Operand::Iris(is) => is.clone(),
        _ => Vec::new(),
    }
}

fn atomic(vocab: &Vocabulary, left: LeftOperand, op: Operator, right: &Operand) -> Result<String, String> {
    let unsupported = || format!("{op:?} on {left:?} with {right:?} cannot be rendered");
    match left {
        LeftOperand::DateTime => {
            let Operand::DateTime(d) = right else { return Err(unsupported()) };
            let ms = datetime_ms(d).ok_or_else(|| format!("'{d}' is not an RFC 3339 date-time"))?;
            Ok(format!("input.nowMs {} {ms}", cmp(op).ok_or_else(unsupported)?))
        }
        LeftOperand::Count => {
            let Operand::Integer(n) = right else { return Err(unsupported()) };
            Ok(format!("input.count {} {n}", cmp(op).ok_or_else(unsupported)?))
        }
        LeftOperand::Purpose => {
            let expand = |ps: Vec<String>| -> Vec<String> {
                let mut all: Vec<String> = ps.iter().flat_map(|p| vocab.purposes_within(p)).collect();
                all.sort();
                all.dedup();
                all
            };
            Ok(match op {
                Operator::Eq => format!("input.purpose == {}", quote(&iris(right).concat())),
                Operator::Neq => format!("input.purpose != {}", quote(&iris(right).concat())),
                Operator::IsA | Operator::IsAnyOf => format!("input.purpose in {}", set(&expand(iris(right)))),
                Operator::IsNoneOf => format!("input.purpose; not input.purpose in {}", set(&expand(iris(right)))),
                _ => return Err(unsupported()),
            })
        }
        LeftOperand::Recipient | LeftOperand::Spatial => {
            let field = if left == LeftOperand::Recipient {
                "input.recipient"
            } else {
                "input.spatial"
            };
            let values = iris(right);
            Ok(match op {
                Operator::Eq => format!("[{field}] == [{}]", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")),
                Operator::Neq => format!("[{field}] != [{}]", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")),
                Operator::IsAnyOf => format!("{field} in {}", set(&values)),
                Operator::IsNoneOf => format!("{field}; not {field} in {}", set(&values)),
                _ => return Err(unsupported()),
            })
        }
    }
}
