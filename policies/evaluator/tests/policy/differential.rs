//! Differential check: for generated policies and requests, three implementations must agree on
//! the decision, every rule's activation and every constraint: the reference evaluator, the
//! compiled Wasm module (via `opa-wasm`), and `regorus` evaluating the rendered Rego. A mismatch
//! is a bug in one of them; the message says which disagrees with the other two.

use std::collections::BTreeMap;

use policy_compiler::eval::{ActivationState, Decision, Request, World, decide, duties_to_enforce, evaluate};
use policy_compiler::input::PolicyInput;
use policy_compiler::ir::{
    Asset, Conflict, Constraint, Duty, Granularity, KDR, LeftOperand, Operand, Operator, Party, Policy, Rule, RuleKind,
};
use policy_compiler::rego;
use policy_evaluator::Decision as WasmDecision;
use proptest::prelude::*;

const ODRL: &str = "http://www.w3.org/ns/odrl/2/";
const DPV: &str = "https://w3id.org/dpv#";
const PARTIES: &[&str] = &["urn:aalen", "urn:heidenheim", "urn:ostalb"];
const ACTIONS: &[&str] = &["use", "read", "distribute", "aggregate", "modify", "write", "print"];
const PURPOSES: &[&str] = &[
    "Purpose",
    "PublicBenefit",
    "ImprovePublicServices",
    "CommercialPurpose",
    "ResearchAndDevelopment",
    "ServiceProvision",
    "Marketing",
    "PersonalisedAdvertising",
];
const TIMES: &[&str] = &[
    "2024-01-01T00:00:00Z",
    "2024-06-30T12:00:00.500Z",
    "2025-01-01T00:00:00+01:00",
    "2026-11-22T10:00:00Z",
];

fn operator() -> impl Strategy<Value = Operator> {
    prop::sample::select(vec![
        Operator::Eq,
        Operator::Neq,
        Operator::Lt,
        Operator::Lteq,
        Operator::Gt,
        Operator::Gteq,
    ])
}

fn atomic() -> impl Strategy<Value = Constraint> {
    let purpose = (
        prop::sample::select(vec![Operator::Eq, Operator::Neq, Operator::IsA]),
        prop::sample::select(PURPOSES),
    )
        .prop_map(|(operator, p)| (LeftOperand::Purpose, operator, Operand::Iri(format!("{DPV}{p}"))));
    let purposes = (
        prop::sample::select(vec![Operator::IsAnyOf, Operator::IsNoneOf]),
        prop::sample::subsequence(PURPOSES, 1..3),
    )
        .prop_map(|(operator, ps)| {
            (
                LeftOperand::Purpose,
                operator,
                Operand::Iris(ps.iter().map(|p| format!("{DPV}{p}")).collect()),
            )
        });
    let count = (operator(), 0i64..6).prop_map(|(op, n)| (LeftOperand::Count, op, Operand::Integer(n)));
    let time = (operator(), prop::sample::select(TIMES)).prop_map(|(op, t)| (LeftOperand::DateTime, op, Operand::DateTime(t.to_owned())));
    let recipient = (
        prop::sample::select(vec![Operator::Eq, Operator::Neq, Operator::IsAnyOf, Operator::IsNoneOf]),
        prop::sample::select(PARTIES),
    )
        .prop_map(|(op, p)| (LeftOperand::Recipient, op, Operand::Iri(p.to_owned())));
    prop_oneof![purpose, purposes, count, time, recipient].prop_map(|(left, operator, right)| Constraint::Atomic {
        uid: String::new(),
        left,
        operator,
        right,
    })
}

fn constraint() -> impl Strategy<Value = Constraint> {
    atomic().prop_recursive(2, 8, 3, |inner| {
        (0..3usize, prop::collection::vec(inner, 1..3)).prop_map(|(k, operands)| match k {
            0 => Constraint::And {
                uid: String::new(),
                operands,
            },
            1 => Constraint::Or {
                uid: String::new(),
                operands,
            },
            _ => Constraint::Xone {
                uid: String::new(),
                operands,
            },
        })
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(vec![RuleKind::Permission, RuleKind::Prohibition]),
        prop::option::of(prop::sample::select(ACTIONS)),
        prop::option::of(prop::sample::select(vec![
            Asset::One("urn:ds1".into()),
            Asset::Collection("urn:all".into()),
        ])),
        prop::option::of(prop::sample::select(vec![
            Party::One("urn:heidenheim".into()),
            Party::Collection("urn:ostalb".into()),
        ])),
        prop::collection::vec(constraint(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(kind, action, target, assignee, constraints, duty)| Rule {
            uid: String::new(),
            kind,
            action: action.map(|a| format!("{ODRL}{a}")),
            target,
            assignee,
            constraints,
            duties: if duty && kind == RuleKind::Permission {
                vec![
                    Duty {
                        uid: "urn:duty".into(),
                        action: format!("{ODRL}compensate"),
                        ..Duty::default()
                    },
                    // Profile duties travel into the decision with their parameters, quotes included.
                    Duty {
                        uid: "urn:duty:aggregate".into(),
                        action: format!("{ODRL}aggregate"),
                        group_by: vec!["bezirk".into(), "say \"hi\"\\".into()],
                        min_group_size: Some(5),
                        ..Duty::default()
                    },
                    Duty {
                        uid: "urn:duty:generalise".into(),
                        action: format!("{KDR}generalise"),
                        fields: vec!["geburtsdatum".into()],
                        granularity: Some(Granularity::AgeBand10),
                        ..Duty::default()
                    },
                ]
            } else {
                vec![]
            },
        })
}

/// Gives every rule and constraint a unique uid, as the parser does.
fn name(policy: &mut Policy) {
    fn walk(c: &mut Constraint, prefix: &str, i: usize) {
        let uid = format!("{prefix}/c{i}");
        match c {
            Constraint::Atomic { uid: u, .. } => *u = uid,
            Constraint::And { uid: u, operands } | Constraint::Or { uid: u, operands } | Constraint::Xone { uid: u, operands } => {
                *u = uid.clone();
                for (j, o) in operands.iter_mut().enumerate() {
                    walk(o, &uid, j);
                }
            }
        }
    }
    for (i, r) in policy.rules.iter_mut().enumerate() {
        r.uid = format!("urn:rule{i}");
        for (j, c) in r.constraints.iter_mut().enumerate() {
            walk(c, &r.uid, j);
        }
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::collection::vec(rule(), 1..4),
        prop::sample::select(vec![Conflict::Perm, Conflict::Prohibit, Conflict::Invalid]),
    )
        .prop_map(|(rules, conflict)| {
            let mut p = Policy {
                uid: "urn:policy".into(),
                conflict,
                rules,
            };
            name(&mut p);
            p
        })
}

fn request() -> impl Strategy<Value = (Request, World)> {
    (
        prop::option::of(prop::sample::select(PARTIES)),
        prop::option::of(prop::sample::select(ACTIONS)),
        prop::option::of(prop::sample::select(vec!["urn:ds1", "urn:ds2"])),
        prop::option::of(prop::sample::select(PURPOSES)),
        prop::option::of(prop::sample::select(PARTIES)),
        prop::option::of(prop::sample::select(TIMES)),
        prop::option::of(0i64..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(assignee, action, target, purpose, recipient, now, count, in_group, violated)| {
            let req = Request {
                assignee: assignee.map(str::to_owned),
                action: action.map(|a| format!("{ODRL}{a}")),
                target: target.map(str::to_owned),
                purpose: purpose.map(|p| format!("{DPV}{p}")),
                recipient: recipient.map(str::to_owned),
                spatial: None,
            };
            let mut world = World {
                now: now.map(str::to_owned),
                count,
                ..World::default()
            };
            if in_group {
                world
                    .part_of
                    .entry("urn:heidenheim".into())
                    .or_default()
                    .insert("urn:ostalb".into());
                world.part_of.entry("urn:ds1".into()).or_default().insert("urn:all".into());
            }
            if violated {
                world.violated_duties.insert("urn:duty".into());
            }
            (req, world)
        })
}

type Outcome = (Decision, BTreeMap<String, bool>, BTreeMap<String, bool>, serde_json::Value);

fn regorus_result(rego_text: &str, input: &PolicyInput) -> Outcome {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy("policy.rego".into(), rego_text.to_owned())
        .unwrap_or_else(|e| panic!("{e}\n{rego_text}"));
    let json = serde_json::to_string(input).expect("input JSON");
    engine.set_input(regorus::Value::from_json_str(&json).expect("regorus input"));
    let value = engine
        .eval_rule(rego::ENTRYPOINT.into())
        .unwrap_or_else(|e| panic!("{e}\n{rego_text}"));
    let out: serde_json::Value = serde_json::from_str(&value.to_json_str().expect("json")).expect("result JSON");
    let decision = match out["decision"].as_str() {
        Some("permit") => Decision::Permit,
        Some("deny") => Decision::Deny,
        other => panic!("decision {other:?} in {out}"),
    };
    let map = |key: &str| {
        out[key]
            .as_object()
            .expect(key)
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bool().expect("bool")))
            .collect()
    };
    (decision, map("rules"), map("constraints"), out["duties"].clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reference_wasm_and_regorus_agree(p in policy(), (req, world) in request()) {
        let vocab = super::common::vocab();
        let reports = evaluate(&p, &req, &world, vocab);
        let expected = decide(&p, &reports);
        let text = rego::render(&p, vocab).expect("render");
        let input = PolicyInput::from_request(&req, &world);
        let (got, rules, constraints, duties) = regorus_result(&text, &input);
        let expected_duties = serde_json::to_value(duties_to_enforce(&p, &reports, expected)).expect("duties");
        prop_assert_eq!(&duties, &expected_duties, "regorus: duties differ\n{}", text);
        let module = super::common::compile(&p);
        let wasm = super::common::decide_wasm(&module, &input);
        prop_assert_eq!(&serde_json::Value::Array(wasm.duties.parse().expect("duties are JSON")), &expected_duties, "wasm: duties differ\n{:?}", p);
        for r in &reports {
            let active = r.activation == ActivationState::Active;
            prop_assert_eq!(rules.get(&r.rule).copied(), Some(active), "regorus: rule {} differs\n{}", r.rule, text);
            prop_assert_eq!(wasm.rules.get(&r.rule).copied(), Some(active), "wasm: rule {} differs\n{:?}", r.rule, p);
            for (uid, satisfied) in &r.constraints {
                prop_assert_eq!(constraints.get(uid).copied(), Some(*satisfied), "regorus: constraint {} differs\n{}", uid, text);
                prop_assert_eq!(wasm.constraints.get(uid).copied(), Some(*satisfied), "wasm: constraint {} differs\n{:?}", uid, p);
            }
        }
        prop_assert_eq!(wasm.rules.len(), reports.len(), "wasm reports other rules");
        prop_assert_eq!(got, expected, "regorus: decision differs\n{}", text);
        let wasm_decision = if wasm.decision == WasmDecision::Permit { Decision::Permit } else { Decision::Deny };
        prop_assert_eq!(wasm_decision, expected, "wasm: decision differs\n{:?}", p);
    }
}
