//! Purpose limitation on the DPV hierarchy, conflict strategies, and strict compilation.

use policy_compiler::eval::{ActivationState, Decision, Request, World, decide, evaluate};
use policy_compiler::{Policy, Vocabulary, parse_turtle};

const HEIDENHEIM: &str = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019";
const AALEN: &str = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08136088";
const DATASET: &str = "https://broker.kdr.example/datasets/aalen-buergerbuero-termine";
const DPV: &str = "https://w3id.org/dpv#";

fn compile(ttl: &str) -> Policy {
    let vocab = Vocabulary::standard().expect("vocab");
    let mut policies = parse_turtle(ttl, &vocab).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policies.len(), 1);
    policies.remove(0)
}

fn ask(policy: &Policy, who: &str, purpose: &str, count: i64) -> (Decision, Vec<(String, ActivationState)>) {
    let vocab = Vocabulary::standard().expect("vocab");
    let req = Request {
        assignee: Some(who.into()),
        action: Some("http://www.w3.org/ns/odrl/2/read".into()),
        target: Some(DATASET.into()),
        purpose: Some(format!("{DPV}{purpose}")),
        ..Request::default()
    };
    let world = World {
        count: Some(count),
        ..World::default()
    };
    let reports = evaluate(policy, &req, &world, &vocab);
    let states = reports
        .iter()
        .map(|r| (r.rule.rsplit('#').next().unwrap_or_default().to_owned(), r.activation))
        .collect();
    (decide(policy, &reports), states)
}

fn example() -> Policy {
    compile(include_str!("../../examples/aalen-buergerbuero-termine.ttl"))
}

#[test]
fn heidenheim_may_read_to_improve_public_services() {
    let (d, _) = ask(&example(), HEIDENHEIM, "ImprovePublicServices", 3);
    assert_eq!(d, Decision::Permit);
}

#[test]
fn commercial_purpose_is_denied_by_the_prohibition() {
    let (d, states) = ask(&example(), HEIDENHEIM, "CommercialPurpose", 3);
    assert_eq!(d, Decision::Deny);
    assert!(states.contains(&("no-commerce".to_owned(), ActivationState::Active)), "{states:?}");
}

#[test]
fn other_cities_and_counts_beyond_the_limit_are_denied() {
    assert_eq!(ask(&example(), AALEN, "ImprovePublicServices", 3).0, Decision::Deny);
    assert_eq!(ask(&example(), HEIDENHEIM, "ImprovePublicServices", 100).0, Decision::Deny);
}

const BROAD: &str = r#"
@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix dpv: <https://w3id.org/dpv#> .
<urn:p> a odrl:Set ; odrl:conflict CONFLICT ;
  odrl:permission [ odrl:action odrl:use ; odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand PERMITTED ] ] ;
  odrl:prohibition [ odrl:action odrl:use ; odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:CommercialPurpose ] ] .
"#;

fn broad(conflict: &str, permitted: &str) -> Policy {
    compile(&BROAD.replace("CONFLICT", conflict).replace("PERMITTED", permitted))
}

#[test]
fn public_benefit_admits_improving_public_services() {
    let p = broad("odrl:prohibit", "dpv:PublicBenefit");
    assert_eq!(ask(&p, HEIDENHEIM, "ImprovePublicServices", 0).0, Decision::Permit);
    assert_eq!(ask(&p, HEIDENHEIM, "ResearchAndDevelopment", 0).0, Decision::Deny);
}

#[test]
fn prohibition_on_commercial_purpose_wins_over_a_broader_permission() {
    // dpv:Purpose is the root: the permission covers everything, the prohibition the commercial part.
    let p = broad("odrl:prohibit", "dpv:Purpose");
    assert_eq!(ask(&p, HEIDENHEIM, "ImprovePublicServices", 0).0, Decision::Permit);
    assert_eq!(ask(&p, HEIDENHEIM, "CommercialPurpose", 0).0, Decision::Deny);
    // Under odrl:perm the same conflict resolves the other way; under odrl:invalid it voids.
    assert_eq!(
        ask(&broad("odrl:perm", "dpv:Purpose"), HEIDENHEIM, "CommercialPurpose", 0).0,
        Decision::Permit
    );
    assert_eq!(
        ask(&broad("odrl:invalid", "dpv:Purpose"), HEIDENHEIM, "CommercialPurpose", 0).0,
        Decision::Deny
    );
}

fn compile_error(ttl: &str) -> String {
    let vocab = Vocabulary::standard().expect("vocab");
    match parse_turtle(ttl, &vocab) {
        Ok(p) => panic!("compiled although it should not: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_terms_are_compile_errors_that_name_them() {
    let prefix = "@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix dpv: <https://w3id.org/dpv#> .\n";
    let e = compile_error(&format!(
        "{prefix}<urn:p> a odrl:Set ; odrl:permission <urn:r> . <urn:r> odrl:action odrl:teleport ."
    ));
    assert!(e.contains("odrl/2/teleport") && e.contains("urn:r"), "{e}");
    let e = compile_error(&format!(
        "{prefix}<urn:p> a odrl:Set ; odrl:permission <urn:r> . <urn:r> odrl:action odrl:use ; odrl:constraint <urn:c> . <urn:c> odrl:leftOperand odrl:language ; odrl:operator odrl:eq ; odrl:rightOperand <urn:x> ."
    ));
    assert!(e.contains("odrl/2/language") && e.contains("urn:c"), "{e}");
    let e = compile_error(&format!(
        "{prefix}<urn:p> a odrl:Set ; odrl:permission <urn:r> . <urn:r> odrl:action odrl:use ; odrl:constraint <urn:c> . <urn:c> odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:Teleportation ."
    ));
    assert!(e.contains("dpv#Teleportation"), "{e}");
    let e = compile_error(&format!(
        "{prefix}<urn:p> a odrl:Set ; odrl:permission <urn:r> . <urn:r> odrl:action odrl:use ; odrl:remedy <urn:x> ."
    ));
    assert!(e.contains("odrl:remedy") && e.contains("urn:r"), "{e}");
    let e = compile_error(&format!("{prefix}<urn:p> a odrl:Set ; odrl:inheritFrom <urn:q> ."));
    assert!(e.contains("odrl:inheritFrom"), "{e}");
    let e = compile_error("<urn:a> <urn:b> .");
    assert!(e.contains("Turtle"), "{e}");
}

#[test]
fn same_policy_in_same_ir_out() {
    let a = ir_text(&example());
    let b = ir_text(&example());
    assert_eq!(a, b);
}

fn ir_text(p: &Policy) -> String {
    format!("{p:?}")
}

#[test]
fn profile_duties_are_checked_and_named() {
    let prefix = "@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix kdr: <https://w3id.org/kdr/odrl#> .\n\
                  <urn:p> a odrl:Set ; odrl:permission <urn:r> . <urn:r> odrl:action odrl:use ; odrl:duty <urn:d> .\n";
    let cases = [
        ("<urn:d> odrl:action odrl:aggregate .", "needs kdr:minGroupSize"),
        ("<urn:d> odrl:action odrl:aggregate ; kdr:minGroupSize 1 .", "at least 2"),
        ("<urn:d> odrl:action kdr:shred .", "kdr:shred is not in the kdr profile"),
        (
            "<urn:d> odrl:action odrl:delete ; kdr:field \"name\" ; kdr:retention \"P1D\"^^<http://www.w3.org/2001/XMLSchema#duration> .",
            "kdr:field does not apply",
        ),
        ("<urn:d> odrl:action odrl:delete ; kdr:retention \"soon\" .", "xsd:duration"),
        (
            "<urn:d> odrl:action kdr:generalise ; kdr:field \"termin\" ; kdr:granularity kdr:Week .",
            "kdr:granularity must be",
        ),
        ("<urn:d> odrl:action kdr:minimise ; kdr:fields \"name\" .", "kdr:fields on a duty"),
        ("<urn:d> odrl:action kdr:pseudonymise .", "needs kdr:field"),
    ];
    for (duty, expected) in cases {
        let e = compile_error(&format!("{prefix}{duty}"));
        assert!(e.contains(expected) && e.contains("urn:d"), "{duty}: {e}");
    }
    let e = compile_error(&format!(
        "{prefix}<urn:d> odrl:action kdr:minimise ; kdr:field \"a\" . <urn:r> kdr:field \"b\" ."
    ));
    assert!(e.contains("kdr:field on a rule"), "{e}");
}

#[test]
fn json_ld_and_turtle_give_the_same_ir() {
    use policy_compiler::parse::{Syntax, parse_one};
    let vocab = Vocabulary::standard().expect("vocab");
    let from_json = parse_one(
        include_str!("../../examples/aalen-buergerbuero-termine.jsonld"),
        Syntax::JsonLd,
        &vocab,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ir_text(&from_json), ir_text(&example()));
}

#[test]
fn json_ld_errors_name_the_problem() {
    use policy_compiler::parse::{Syntax, parse_one};
    let vocab = Vocabulary::standard().expect("vocab");
    let remote = r#"{"@context": "https://example.org/ctx.jsonld", "@type": "Set"}"#;
    let e = parse_one(remote, Syntax::JsonLd, &vocab).expect_err("remote context").to_string();
    assert!(e.contains("example.org/ctx.jsonld"), "{e}");
    let teleport = r#"{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "urn:p",
        "permission": [{"uid": "urn:r", "target": "urn:t", "action": "teleport"}]}"#;
    let e = parse_one(teleport, Syntax::JsonLd, &vocab).expect_err("unknown action").to_string();
    assert!(e.contains("teleport") && e.contains("urn:r"), "{e}");
    let e = parse_one("{ not json", Syntax::JsonLd, &vocab).expect_err("syntax").to_string();
    assert!(e.contains("JSON-LD"), "{e}");
}

/// Regression: JSON-LD drops keys and `@vocab` values it cannot expand, which turned a rule with
/// a misspelt action into a rule for any action. Both must be compile errors.
#[test]
fn json_ld_misspellings_are_errors_not_silently_dropped() {
    use policy_compiler::parse::{Syntax, parse_one};
    let vocab = Vocabulary::standard().expect("vocab");
    let doc = |rule: &str| {
        format!(r#"{{"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "urn:p", "permission": [{rule}]}}"#)
    };
    for (rule, expected) in [
        (r#"{"uid": "urn:r", "target": "urn:t", "action": "reed"}"#, "reed"),
        (r#"{"uid": "urn:r", "target": "urn:t", "actoin": "read"}"#, "actoin"),
        (
            r#"{"uid": "urn:r", "target": "urn:t", "action": "read", "constraint": [{"leftOperand": "purpose", "operater": "eq", "rightOperand": {"@id": "urn:x"}}]}"#,
            "operater",
        ),
    ] {
        let e = parse_one(&doc(rule), Syntax::JsonLd, &vocab).expect_err(rule).to_string();
        assert!(e.contains(expected), "{rule}: {e}");
    }
}
