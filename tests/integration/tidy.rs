//! The architecture invariants of `ARCHITECTURE.md` that a test can check by reading the source:
//! which modules may import which crates, where `unsafe` may appear, that the documents name
//! every attack test. Each failure names the file and line that broke the rule.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its path relative to the repository root.
fn rust_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                let rel = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
                out.push((rel.replace("/../", "/"), text));
            }
        }
    }
    out.sort();
    out
}

/// Lines of `text` that use crate `name` (a `use` or a path starting with it, `::name::`
/// included; not a module of that name inside another path such as `catalog::shacl::`),
/// outside comments.
fn uses(text: &str, name: &str) -> Vec<usize> {
    let path = format!("{name}::");
    let ident = |c: char| c == '_' || c.is_alphanumeric();
    let crate_path = |code: &str| {
        code.match_indices(&path).any(|(i, _)| {
            let before = &code[..i];
            match before.strip_suffix("::") {
                // `x::name::` is a module inside x; a leading `::name::` is the crate.
                Some(rest) => !rest.chars().next_back().is_some_and(ident),
                None => !before.chars().next_back().is_some_and(ident),
            }
        })
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or_default();
            crate_path(code) || code.contains(&format!("use {name}"))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// Fails with every (file, line) where `name` is used outside the modules `allowed` admits.
fn only_in(name: &str, files: &[(String, String)], allowed: impl Fn(&str) -> bool) {
    let offenders: Vec<String> = files
        .iter()
        .filter(|(path, _)| !allowed(path))
        .flat_map(|(path, text)| uses(text, name).into_iter().map(move |l| format!("{path}:{l}")))
        .collect();
    assert!(offenders.is_empty(), "{name} used outside its modules: {offenders:?}");
}

#[test]
fn only_the_http_layer_imports_actix_web() {
    let files = rust_files(&root().join("broker/src"));
    only_in("actix_web", &files, |p| p.starts_with("broker/src/http/"));
}

#[test]
fn only_the_catalog_imports_oxigraph() {
    let files = rust_files(&root().join("broker/src"));
    only_in("oxigraph", &files, |p| p.starts_with("broker/src/catalog/"));
}

#[test]
fn shacl_and_the_text_index_each_live_in_one_catalog_module() {
    // The validator and the index are implementation choices behind the catalog's traits: a
    // replica on PostgreSQL or a remote SPARQL endpoint keeps them without touching the rest.
    let files = rust_files(&root().join("broker/src"));
    for name in ["shacl", "rudof_rdf"] {
        only_in(name, &files, |p| p == "broker/src/catalog/shacl.rs");
    }
    only_in("tantivy", &files, |p| p == "broker/src/catalog/search.rs");
}

#[test]
fn only_the_policy_evaluator_imports_wasmtime_and_opa_wasm() {
    let mut files = rust_files(&root().join("broker/src"));
    files.extend(rust_files(&root().join("policies/compiler/src")));
    files.extend(rust_files(&root().join("policies/evaluator/src")));
    for name in ["wasmtime", "opa_wasm"] {
        only_in(name, &files, |p| p.starts_with("policies/evaluator/"));
    }
}

#[test]
fn the_exchange_pipeline_lives_outside_the_http_layer() {
    // The HTTP face of the exchange maps requests and refusals; deciding, fetching, enforcing and
    // recording are the exchange's. A handler that reached for them directly would be a second
    // pipeline with promises of its own.
    let files = rust_files(&root().join("broker/src/http"));
    for (path, text) in &files {
        for forbidden in ["upstream::get", "enforce::enforce", ".decide(", "append_async(Event::Decision"] {
            assert!(!text.contains(forbidden), "{path} runs `{forbidden}`: that belongs to the exchange");
        }
    }
}

#[test]
fn governance_steps_are_taken_only_by_the_governance_module() {
    // The API and the console submit and review through `governance::submit_draft` and
    // `governance::review`, one implementation of four eyes and of the audit record before the
    // change: a handler calling the catalog directly would be a second set of rules.
    for (path, text) in rust_files(&root().join("broker/src")) {
        if path == "broker/src/governance.rs" || path.starts_with("broker/src/catalog/") {
            continue;
        }
        for forbidden in [".submit_policy(", ".review_policy("] {
            assert!(
                !text.contains(forbidden),
                "{path} calls `{forbidden}`: that is governance::submit_draft / review"
            );
        }
    }
}

#[test]
fn the_console_runs_no_script_and_registers_every_page_it_lists() {
    let dir = root().join("broker/templates");
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("templates") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("template").to_lowercase();
            for forbidden in ["<script", "javascript:", " onclick=", " onload=", " onsubmit=", " style=\""] {
                assert!(
                    !text.contains(forbidden),
                    "{} holds `{forbidden}`: the console's CSP allows no script or inline style",
                    path.display()
                );
            }
        }
    }
    let source = std::fs::read_to_string(root().join("broker/src/http/console/mod.rs")).expect("console");
    let registered: Vec<String> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix(".route(\""))
        .filter_map(|l| l.split('"').next())
        .map(|p| format!("/console{p}"))
        .collect();
    assert!(registered.len() >= 8, "{registered:?}");
    for p in &registered {
        assert!(
            broker::http::console::PAGES.iter().any(|(_, listed)| listed == p),
            "{p} is registered but not in console::PAGES"
        );
    }
    for (_, p) in broker::http::console::PAGES {
        assert!(registered.contains(&(*p).to_owned()), "{p} is in console::PAGES but not registered");
    }
}

/// The string literals passed to `t("…")` in `text` (templates and handlers alike).
fn translated_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("t(\"") {
        let after = &rest[i + 3..];
        // `t(` of a longer name (`format(`, `split(`) is not the translation.
        let before = rest[..i].chars().last();
        if before.is_none_or(|c| c == '.' || c == ' ' || c == '(' || c == '{')
            && let Some(end) = after.find('"')
        {
            out.push(after[..end].to_owned());
        }
        rest = after;
    }
    out
}

#[test]
fn every_console_text_has_an_english_translation() {
    let english = broker::http::console::lang::ENGLISH;
    let mut keys = std::collections::HashSet::new();
    for (de, en) in english {
        assert!(keys.insert(*de), "'{de}' is in lang::ENGLISH twice");
        assert!(!en.is_empty(), "'{de}' has an empty translation");
    }
    let mut corpus = String::new();
    for entry in std::fs::read_dir(root().join("broker/templates/console")).expect("templates") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("template");
        for literal in translated_literals(&text) {
            assert!(
                keys.contains(literal.as_str()),
                "{}: \"{literal}\" has no English in lang::ENGLISH",
                path.display()
            );
        }
        corpus.push_str(&text);
    }
    for (path, text) in rust_files(&root().join("broker/src/http/console")) {
        if path.ends_with("lang.rs") {
            continue;
        }
        for literal in translated_literals(&text) {
            assert!(
                keys.contains(literal.as_str()),
                "{path}: \"{literal}\" has no English in lang::ENGLISH"
            );
        }
        corpus.push_str(&text);
    }
    corpus.push_str(&std::fs::read_to_string(root().join("broker/src/authoring.rs")).expect("authoring"));
    for (de, _) in english {
        assert!(
            corpus.contains(&format!("\"{de}\"")),
            "lang::ENGLISH has '{de}', which no console template or handler shows any more"
        );
    }
}

#[test]
fn unsafe_code_only_in_the_no_std_wasm_runtime() {
    let mut files = rust_files(&root().join("broker"));
    files.extend(rust_files(&root().join("policies/compiler")));
    files.extend(rust_files(&root().join("policies/evaluator")));
    files.extend(rust_files(&root().join("tests")));
    let offenders: Vec<String> = files
        .iter()
        .filter(|(path, _)| !path.ends_with("tidy.rs"))
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| {
                    let code = l.split("//").next().unwrap_or_default();
                    code.contains("unsafe ") || code.contains("unsafe{")
                })
                .map(move |(i, _)| format!("{path}:{}", i + 1))
        })
        .collect();
    assert!(offenders.is_empty(), "unsafe outside policies/runtime: {offenders:?}");
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("manifest");
    assert!(manifest.contains("unsafe_code = \"forbid\""), "the workspace forbids unsafe code");
}

#[test]
fn security_md_names_only_tests_that_exist() {
    let security = std::fs::read_to_string(root().join("SECURITY.md")).expect("SECURITY.md");
    let mut sources = String::new();
    for (_, text) in rust_files(&root().join("tests"))
        .iter()
        .chain(&rust_files(&root().join("broker/src")))
    {
        sources.push_str(text);
    }
    let named: Vec<&str> = security
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|code| code.split(", "))
        .map(|t| t.rsplit("::").next().unwrap_or(t))
        .filter(|t| t.contains('_') && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .filter(|t| t.split('_').count() >= 4)
        .collect();
    assert!(named.len() >= 20, "SECURITY.md names its tests ({} found)", named.len());
    let missing: Vec<&&str> = named.iter().filter(|t| !sources.contains(&format!("fn {t}("))).collect();
    assert!(missing.is_empty(), "SECURITY.md names tests that do not exist: {missing:?}");
}

#[test]
fn every_attack_test_is_in_security_md() {
    let security = std::fs::read_to_string(root().join("SECURITY.md")).expect("SECURITY.md");
    let attacks = std::fs::read_to_string(root().join("tests/integration/attacks.rs")).expect("attacks");
    let tests: Vec<&str> = attacks
        .split("#[actix_rt::test]")
        .skip(1)
        .filter_map(|t| t.split("async fn ").nth(1)?.split('(').next())
        .collect();
    assert!(tests.len() >= 10);
    let missing: Vec<&&str> = tests.iter().filter(|t| !security.contains(**t)).collect();
    assert!(missing.is_empty(), "attack tests SECURITY.md does not name: {missing:?}");
}
