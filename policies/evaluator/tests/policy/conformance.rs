//! Runs the SolidLab ODRL evaluation test suite (`../shared/conformance/odrl-solidlab/`, 68
//! cases) and compares each rule's activation state with the expected report, twice: through
//! the reference IR evaluator, and through the policy compiled to Wasm and evaluated by
//! `opa-wasm` on wasmtime (the path the broker uses).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oxrdf::{Graph, NamedNodeRef, NamedOrBlankNodeRef, TermRef};
use policy_compiler::eval::{ActivationState, Request, World, evaluate};
use policy_compiler::input::PolicyInput;
use policy_compiler::parse::{policy_from_graph, turtle_graph};

const ODRL: &str = "http://www.w3.org/ns/odrl/2/";
const EX: &str = "http://example.org/";
const REPORT: &str = "https://w3id.org/force/compliance-report#";
const DCT_ISSUED: &str = "http://purl.org/dc/terms/issued";
const TEMP_NOW: &str = "http://example.com/request/currentTime";

/// Cases the profile cannot express yet, with the reason. Each must still fail: a case that
/// starts passing has to leave this list.
const KNOWN_GAPS: &[(&str, &str)] = &[];

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/odrl-solidlab/data")
}

fn load_dir(dir: &Path) -> Vec<(String, Graph)> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read");
        let graph = turtle_graph(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path.file_name().expect("name").to_string_lossy().into_owned(), graph));
    }
    out
}

fn nn(iri: &str) -> NamedNodeRef<'_> {
    NamedNodeRef::new_unchecked(iri)
}

fn iri_obj(g: &Graph, s: &str, p: &str) -> Option<String> {
    match g.object_for_subject_predicate(nn(s), nn(p))? {
        TermRef::NamedNode(n) => Some(n.as_str().to_owned()),
        _ => None,
    }
}

fn find<'a>(graphs: &'a [(String, Graph)], subject: &str) -> &'a Graph {
    graphs
        .iter()
        .find(|(_, g)| g.triples_for_subject(nn(subject)).next().is_some())
        .map(|(_, g)| g)
        .unwrap_or_else(|| panic!("no file describes {subject}"))
}

fn request_of(g: &Graph, iri: &str) -> Request {
    let perm = match g.object_for_subject_predicate(nn(iri), nn(&format!("{ODRL}permission"))) {
        Some(TermRef::NamedNode(n)) => NamedOrBlankNodeRef::from(n),
        Some(TermRef::BlankNode(b)) => NamedOrBlankNodeRef::from(b),
        _ => panic!("request {iri} has no permission"),
    };
    let get = |local: &str| match g.object_for_subject_predicate(perm, nn(&format!("{ODRL}{local}"))) {
        Some(TermRef::NamedNode(n)) => Some(n.as_str().to_owned()),
        _ => None,
    };
    Request {
        assignee: get("assignee"),
        action: get("action"),
        target: get("target"),
        ..Request::default()
    }
}

fn world_of(g: &Graph) -> World {
    let mut world = World::default();
    if let Some(TermRef::Literal(l)) = g.object_for_subject_predicate(nn(TEMP_NOW), nn(DCT_ISSUED)) {
        world.now = Some(l.value().to_owned());
    }
    for t in g.triples_for_predicate(nn(&format!("{ODRL}partOf"))) {
        if let (NamedOrBlankNodeRef::NamedNode(s), TermRef::NamedNode(o)) = (t.subject, t.object) {
            world
                .part_of
                .entry(s.as_str().to_owned())
                .or_default()
                .insert(o.as_str().to_owned());
        }
    }
    let violated = nn("https://w3id.org/force/compliance-report#Violated");
    for report in g.subjects_for_predicate_object(nn(&format!("{REPORT}deonticState")), violated) {
        if let Some(TermRef::NamedNode(rule)) = g.object_for_subject_predicate(report, nn(&format!("{REPORT}rule"))) {
            world.violated_duties.insert(rule.as_str().to_owned());
        }
    }
    world
}

#[test]
fn solidlab_odrl_test_suite() {
    let dir = suite_dir();
    let vocab = super::common::vocab();
    let policies = load_dir(&dir.join("policies"));
    let requests = load_dir(&dir.join("requests"));
    let sotws = load_dir(&dir.join("sotw"));
    let cases = load_dir(&dir.join("test_cases"));
    let mut outcomes: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    for (file, tc) in &cases {
        let case = tc
            .subjects_for_predicate_object(nn("http://www.w3.org/1999/02/22-rdf-syntax-ns#type"), nn(&format!("{EX}TestCase")))
            .next()
            .map(|s| s.to_string().trim_matches(['<', '>']).to_owned())
            .unwrap_or_else(|| panic!("{file}: no ex:TestCase"));
        let field = |p: &str| iri_obj(tc, &case, &format!("{EX}{p}")).unwrap_or_else(|| panic!("{file}: no ex:{p}"));
        let (policy_iri, request_iri, sotw_iri, expected_iri) = (field("policy"), field("request"), field("sotw"), field("expectedReport"));
        let rule_report = iri_obj(tc, &expected_iri, &format!("{REPORT}ruleReport")).expect("ruleReport");
        let rule = iri_obj(tc, &rule_report, &format!("{REPORT}rule")).expect("rule");
        let expected = match iri_obj(tc, &rule_report, &format!("{REPORT}activationState")).as_deref() {
            Some(s) if s.ends_with("#Active") => ActivationState::Active,
            Some(s) if s.ends_with("#Inactive") => ActivationState::Inactive,
            other => panic!("{file}: activation state {other:?}"),
        };
        let outcome = policy_from_graph(find(&policies, &policy_iri), &policy_iri, vocab)
            .map_err(|e| format!("compile error: {e}"))
            .and_then(|policy| {
                let request = request_of(find(&requests, &request_iri), &request_iri);
                let world = world_of(find(&sotws, &sotw_iri));
                let reports = evaluate(&policy, &request, &world, vocab);
                let reference = reports
                    .iter()
                    .find(|r| r.rule == rule)
                    .map(|r| r.activation == ActivationState::Active)
                    .ok_or_else(|| format!("rule {rule} not in the policy"))?;
                let module = super::common::compile(&policy);
                let doc = super::common::decide_wasm(&module, &PolicyInput::from_request(&request, &world));
                let wasm = *doc
                    .rules
                    .get(&rule)
                    .ok_or_else(|| format!("rule {rule} not in the Wasm decision"))?;
                let want = expected == ActivationState::Active;
                match (reference == want, wasm == want) {
                    (true, true) => Ok(()),
                    (r, w) => Err(format!("expected {expected:?}; reference evaluator right: {r}, Wasm right: {w}")),
                }
            });
        outcomes.insert(file.clone(), outcome);
    }
    let passed = outcomes.values().filter(|o| o.is_ok()).count();
    println!(
        "conformance (reference evaluator and compiled Wasm): {passed}/{} cases pass",
        outcomes.len()
    );
    let mut wrong = Vec::new();
    for (file, outcome) in &outcomes {
        let gap = KNOWN_GAPS.iter().find(|(f, _)| f == file);
        match (outcome, gap) {
            (Ok(()), None) => {}
            (Err(e), Some((_, why))) => println!("known gap {file}: {e} ({why})"),
            (Ok(()), Some(_)) => wrong.push(format!("{file} passes now: remove it from KNOWN_GAPS")),
            (Err(e), None) => wrong.push(format!("{file}: {e}")),
        }
    }
    assert_eq!(outcomes.len(), 68, "the suite should have 68 cases");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
