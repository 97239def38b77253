//! The `broker` binary: clear messages instead of panics when files are missing or unreadable.

use std::process::Command;

fn broker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_broker"))
}

fn serve_with(edit: impl FnOnce(&std::path::Path)) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).expect("mkdir");
    broker::demo::write_demo_pki(&pki).expect("pki");
    std::fs::write(dir.path().join("broker.toml"), broker::demo::demo_config("127.0.0.1:0", None)).expect("config");
    edit(dir.path());
    let out = broker()
        .args(["serve", "--config"])
        .arg(dir.path().join("broker.toml"))
        .output()
        .expect("run broker");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn serve_with_missing_private_key_exits_with_a_clear_message() {
    let (code, stderr) = serve_with(|d| std::fs::remove_file(d.join("pki/broker.key")).expect("rm"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("private key") && stderr.contains("broker.key"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_with_unreadable_ca_exits_with_a_clear_message() {
    let (code, stderr) = serve_with(|d| std::fs::write(d.join("pki/ca/ca.crt"), "not a certificate").expect("write"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("CA certificate") && stderr.contains("ca.crt"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_with_missing_config_exits_with_a_clear_message() {
    let out = broker()
        .args(["serve", "--config", "/nonexistent/broker.toml"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/broker.toml"), "{stderr}");
}

#[test]
fn pki_commands_issue_and_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    let ok = |args: &[&str]| {
        let out = broker().args(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ca_s = ca.to_str().expect("utf8");
    ok(&["pki", "init-ca", "--dir", ca_s]);
    ok(&[
        "pki",
        "issue",
        "--dir",
        ca_s,
        "--name",
        "aalen-steward",
        "--organisation",
        "Stadt Aalen",
        "--ags",
        "08136088",
        "--role",
        "steward",
    ]);
    let crt = ca.join("aalen-steward.crt");
    ok(&["pki", "revoke", "--dir", ca_s, "--cert", crt.to_str().expect("utf8")]);
    let serial = broker::pki::serial_of_cert_file(&crt).expect("serial");
    let revoked = std::fs::read_to_string(ca.join("revoked.json")).expect("state");
    assert!(revoked.contains(&serial));
    let bad = broker()
        .args([
            "pki",
            "issue",
            "--dir",
            ca_s,
            "--name",
            "x",
            "--organisation",
            "X",
            "--ags",
            "123",
            "--role",
            "steward",
        ])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("8-digit"));
}

fn policy_cli(args: &[&str]) -> (bool, String, String) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/examples/");
    let args: Vec<String> = args.iter().map(|a| a.replace("EX/", root)).collect();
    let out = broker().arg("policy").args(&args).output().expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_eval_permits_public_services_and_denies_commerce() {
    let (ok, out, err) = policy_cli(&[
        "eval",
        "EX/aalen-buergerbuero-termine.ttl",
        "--input",
        "EX/input-heidenheim-public-services.json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["decision"], "permit");
    let (ok, out, err) = policy_cli(&[
        "eval",
        "EX/aalen-buergerbuero-termine.ttl",
        "--input",
        "EX/input-heidenheim-commercial.json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["decision"], "deny");
    let failed: Vec<&String> = v["constraints"]
        .as_object()
        .expect("constraints")
        .iter()
        .filter(|(_, ok)| **ok == false)
        .map(|(uid, _)| uid)
        .collect();
    assert!(!failed.is_empty(), "a denial names the failed constraint: {out}");
    assert!(v["module"].as_str().is_some_and(|m| m.starts_with("sha256:")), "{out}");
}

#[test]
fn policy_compile_writes_a_module_that_eval_loads() {
    let dir = tempfile::tempdir().expect("tmp");
    let wasm = dir.path().join("termine.wasm");
    let (ok, out, err) = policy_cli(&["compile", "EX/aalen-buergerbuero-termine.ttl", "-o", wasm.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    assert!(out.contains("sha256:"), "{out}");
    let bytes = std::fs::read(&wasm).expect("module written");
    assert!(bytes.starts_with(b"\0asm"));
    let (ok, out, err) = policy_cli(&[
        "eval",
        wasm.to_str().expect("utf-8"),
        "--input",
        "EX/input-heidenheim-public-services.json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["decision"], "permit");
    let (ok, _, err) = policy_cli(&[
        "eval",
        "EX/aalen-buergerbuero-termine.ttl",
        "--reference",
        "--input",
        "EX/input-heidenheim-public-services.json",
    ]);
    assert!(ok, "{err}");
}

#[test]
fn policy_explain_speaks_german_and_english_and_rego_renders() {
    let (ok, de, _) = policy_cli(&["explain", "EX/aalen-buergerbuero-termine.ttl", "--lang", "de"]);
    assert!(ok);
    assert!(
        de.contains("Verboten") && de.contains("CommercialPurpose") && de.contains("AGS 08135019"),
        "{de}"
    );
    let (ok, en, _) = policy_cli(&["explain", "EX/aalen-buergerbuero-termine.ttl", "--lang", "en"]);
    assert!(ok);
    assert!(en.contains("Forbidden") && en.contains("the prohibition wins"), "{en}");
    let (ok, rego, _) = policy_cli(&["rego", "EX/aalen-buergerbuero-termine.ttl"]);
    assert!(ok);
    assert!(
        rego.contains("package kdr.policy") && rego.contains("https://w3id.org/dpv#ImprovePublicServices"),
        "{rego}"
    );
}

#[test]
fn policy_with_unknown_term_fails_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.ttl");
    std::fs::write(
        &file,
        "@prefix odrl: <http://www.w3.org/ns/odrl/2/> . <urn:p> a odrl:Set ; odrl:permission <urn:r> . <urn:r> odrl:action odrl:teleport .",
    )
    .expect("write");
    let out = broker().args(["policy", "check"]).arg(&file).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("teleport") && !err.contains("panicked"), "{err}");
}

/// The README's demo ends with two real cross-city requests: one permitted and minimised, one
/// denied with its reason.
#[test]
fn demo_ends_with_a_permitted_and_a_denied_cross_city_request() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = broker()
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = reader.next() {
        let denied = line.contains("403 Forbidden");
        lines.push(line);
        if denied {
            // The problem document follows on the next line.
            lines.extend(reader.next().and_then(Result::ok));
            break;
        }
    }
    // Regression (demo_ignored_sigterm): a demo sent SIGTERM kept running with its listeners
    // closed. It must exit, and leave its final signed checkpoint.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let exited = (0..300).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        child.try_wait().ok().flatten()
    });
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(exited.is_some(), "the demo still runs 30 s after SIGTERM");
    let text = lines.join("\n");
    assert!(text.contains("200 OK"), "{text}");
    assert!(
        text.contains("\"count\":7") && !text.contains("\"count\":4"),
        "aggregated, the small group suppressed: {text}"
    );
    assert!(!text.contains("Maier"), "no names: {text}");
    assert!(text.contains("is not met"), "the denial names its reason: {text}");
    // The demo's set-up went through the API as its people: all of it is in the trail, which
    // verifies up to the final checkpoint made at the stop.
    let log = dir.path().join("data").join("audit.jsonl");
    let out = broker().args(["audit", "verify", "--json"]).arg(&log).output().expect("verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["lastSignedSeq"], report["lastSeq"], "signed to the end: {report}");
    let entries = broker::audit::file::read_entries(&log).expect("entries");
    let actions: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.event {
            broker::audit::Event::Admin(a) => Some(a.action.clone()),
            broker::audit::Event::Decision(d) => Some(format!("decision:{}", d.decision)),
            _ => None,
        })
        .collect();
    let count = |a: &str| actions.iter().filter(|x| x.as_str() == a).count();
    assert_eq!(count("dataset-registered"), 4, "{actions:?}");
    let submitted = actions.iter().position(|a| a == "policy-submitted");
    let approved = actions.iter().position(|a| a == "policy-approved");
    assert!(submitted.is_some() && submitted < approved, "{actions:?}");
    assert_eq!(count("decision:permit") + count("decision:deny"), 2, "{actions:?}");
}
