//! The policy lifecycle: drafts, four-eyes approval, and what-if simulation over recorded
//! traffic.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::exchange::{DATASET, POLICY, request, set_up};
use crate::support::{TestBroker, attach_approved, review_policy, submit_policy};

async fn draft(b: &TestBroker, turtle: &str) -> u64 {
    let (status, body) = submit_policy(b, "aalen-steward", DATASET, turtle, "text/turtle").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "draft");
    assert_eq!(body["active"], false);
    body["version"].as_u64().expect("version")
}

#[actix_rt::test]
async fn a_system_certificate_cannot_submit_a_policy() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let (status, body) = submit_policy(&b, "aalen-system", DATASET, POLICY, "text/turtle").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("steward")), "{body}");
}

#[actix_rt::test]
async fn a_steward_cannot_approve_their_own_policy_even_with_a_board_certificate() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let n = draft(&b, POLICY).await;
    let (status, body) = review_policy(&b, "aalen-steward", DATASET, n, "approve").await;
    assert_eq!(status, 403, "the steward's own certificate: {body}");
    let (status, body) = review_policy(&b, "aalen-steward-as-board", DATASET, n, "approve").await;
    assert_eq!(status, 403, "the author's board certificate: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("four eyes")), "{body}");
    let (status, body) = review_policy(&b, "heidenheim-board", DATASET, n, "approve").await;
    assert_eq!(status, 403, "another city's board: {body}");
    let (status, body) = review_policy(&b, "aalen-board", DATASET, n, "approve").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["status"].as_str(), body["active"].as_bool()), (Some("approved"), Some(true)));
    assert_eq!(body["review"]["byName"], "Bernd Beirat (Aalen)");
    let (status, body) = review_policy(&b, "aalen-board", DATASET, n, "reject").await;
    assert_eq!(status, 409, "reviewed once: {body}");
}

#[actix_rt::test]
async fn a_draft_never_decides_a_live_request() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    // Only a draft: the dataset is not shared.
    let n = draft(&b, POLICY).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with("no-policy")), "{body}");
    review_policy(&b, "aalen-board", DATASET, n, "approve").await;
    let (status, _, headers) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-policy-version").and_then(|v| v.to_str().ok()), Some("1"));
    // A stricter draft does not change live decisions; rejected, it never will.
    let stricter = draft(&b, &POLICY.replace("dpv:ImprovePublicServices", "dpv:ResearchAndDevelopment")).await;
    let (status, _, headers) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-policy-version").and_then(|v| v.to_str().ok()), Some("1"));
    let (status, body) = review_policy(&b, "aalen-board", DATASET, stricter, "reject").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("rejected")), "{body}");
    let (status, _, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn a_stricter_draft_simulated_over_recorded_traffic_lists_exactly_the_decisions_that_flip() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let mut permitted = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for purpose in [
        "ImprovePublicServices",
        "CommercialPurpose",
        "ImprovePublicServices",
        "ServiceProvision",
    ] {
        let (status, body, headers) = request(&b, "heidenheim-system", purpose).await;
        match status {
            200 => {
                permitted.insert(headers.get("x-decision-id").and_then(|v| v.to_str().ok()).expect("id").to_owned());
            }
            _ => {
                denied.insert(body["decisionId"].as_str().expect("id").to_owned());
            }
        }
    }
    assert!(!permitted.is_empty() && !denied.is_empty(), "{permitted:?} {denied:?}");
    // The draft allows only research: every recorded permit would now be denied; no deny flips.
    let n = draft(&b, &POLICY.replace("dpv:ImprovePublicServices", "dpv:ResearchAndDevelopment")).await;
    let mut resp = b
        .client("aalen-board")
        .post(b.url(&format!("/v1/datasets/{DATASET}/policy/versions/{n}/simulate")))
        .send()
        .await
        .expect("simulate");
    assert_eq!(resp.status(), 200);
    let sim: Value = crate::support::json(&mut resp).await;
    let flipped: BTreeSet<String> = sim["flips"]
        .as_array()
        .expect("flips")
        .iter()
        .map(|f| f["decisionId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(flipped, permitted, "{sim}");
    assert_eq!(sim["considered"].as_u64(), Some((permitted.len() + denied.len()) as u64), "{sim}");
    for f in sim["flips"].as_array().expect("flips") {
        assert_eq!((f["recorded"].as_str(), f["simulated"].as_str()), (Some("permit"), Some("deny")));
        assert!(
            f["reasons"].to_string().contains("ResearchAndDevelopment"),
            "the draft's failing purpose constraint is named: {f}"
        );
    }
    // A period before the traffic holds nothing to replay.
    let mut resp = b
        .client("aalen-steward")
        .post(b.url(&format!("/v1/datasets/{DATASET}/policy/versions/{n}/simulate")))
        .query(&[("to", "2020-01-01T00:00:00Z")])
        .expect("query")
        .send()
        .await
        .expect("simulate");
    let sim: Value = crate::support::json(&mut resp).await;
    assert_eq!(sim["considered"], 0, "{sim}");
}

#[actix_rt::test]
async fn every_step_of_the_lifecycle_is_in_the_audit_trail_in_order() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    attach_approved(&b, DATASET, POLICY).await;
    let n = draft(&b, &POLICY.replace("\"100\"", "\"50\"")).await;
    review_policy(&b, "aalen-board", DATASET, n, "reject").await;
    let text = b.audit_lines().join("\n");
    let actions: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("line")["entry"].clone())
        .filter(|e| e["type"] == "admin" && e["subject"] == DATASET)
        .map(|e| {
            format!(
                "{} {} by {}",
                e["action"].as_str().unwrap_or_default(),
                e["detail"]["version"],
                e["actorRole"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "dataset-registered null by steward".to_owned(),
            "policy-submitted 1 by steward".to_owned(),
            "policy-approved 1 by board".to_owned(),
            format!("policy-submitted {n} by steward"),
            format!("policy-rejected {n} by board")
        ],
        "{text}"
    );
    assert_eq!(n, 2);
}

/// `broker policy ...` and `broker report ...` against a running broker, as a person would.
fn cli(b: &TestBroker, who: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(args)
        .args(["--broker", &b.url(""), "--ca"])
        .arg(b.pki.ca_cert())
        .arg("--cert")
        .arg(b.pki.cert(who))
        .arg("--key")
        .arg(b.pki.key(who))
        .output()
        .expect("run broker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn the_lifecycle_through_the_command_line() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let policy = format!("{}/../policies/examples/aalen-buergerbuero-termine.ttl", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = cli(&b, "aalen-system", &["policy", "submit", &policy, "--dataset", DATASET]);
    assert_eq!(code, 1, "a system certificate: {out} {err}");
    let (code, out, err) = cli(&b, "aalen-steward", &["policy", "submit", &policy, "--dataset", DATASET]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"draft\""), "{out}");
    let version = ["--dataset", DATASET, "--version", "1"];
    let (code, _, err) = cli(&b, "aalen-steward-as-board", &[&["policy", "approve"][..], &version].concat());
    assert_eq!(code, 1);
    assert!(err.contains("four eyes"), "{err}");
    let (code, out, err) = cli(
        &b,
        "aalen-board",
        &[&["policy", "approve", "--note", "geprüft"][..], &version].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"approved\"") && out.contains("geprüft"), "{out}");
    let (status, _, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
    let (code, out, err) = cli(&b, "aalen-board", &[&["policy", "simulate"][..], &version].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"considered\": 1"), "{out}");
    let (code, out, err) = cli(&b, "heidenheim-board", &["report", "usage", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bucket,dataset") && out.lines().count() == 2, "{out}");
    let (code, out, err) = cli(&b, "aalen-steward", &["report", "processing"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("P90D"), "{out}");
}

/// Concurrent submissions each get their own version number, and the trail names each number
/// once: a submission that lost the race is refused (409) and recorded as aborted.
#[actix_rt::test]
async fn concurrent_submissions_are_numbered_once_each_and_recorded_with_their_number() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let answers = futures_util::future::join_all((0..8).map(|_| submit_policy(&b, "aalen-steward", DATASET, POLICY, "text/turtle"))).await;
    let mut numbered = BTreeSet::new();
    for (status, body) in &answers {
        match status {
            201 => assert!(
                numbered.insert(body["version"].as_u64().expect("version")),
                "numbered twice: {body}"
            ),
            409 => assert_eq!(
                body["type"].as_str().map(|t| t.ends_with("policy-version-taken")),
                Some(true),
                "{body}"
            ),
            _ => panic!("{status} {body}"),
        }
    }
    let stored: BTreeSet<u64> = (1..=numbered.len() as u64).collect();
    assert_eq!(numbered, stored, "versions without gaps");
    let text = b.audit_lines().join("\n");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("line")["entry"].clone())
        .collect();
    let recorded: Vec<u64> = entries
        .iter()
        .filter(|e| e["action"] == "policy-submitted")
        .filter_map(|e| e["detail"]["version"].as_u64())
        .collect();
    let aborted = entries.iter().filter(|e| e["action"] == "policy-submitted-aborted").count();
    assert_eq!(recorded.len(), 8, "{text}");
    assert_eq!(aborted, 8 - numbered.len(), "{text}");
    for n in &numbered {
        assert!(recorded.contains(n), "version {n} recorded: {text}");
    }
}
