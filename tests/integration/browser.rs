//! The console in a real Chromium (Debian's, driven by playwright-core: `tests/browser/`), and
//! the attacks on it a browser makes possible: a forged cross-site form, a token lifted from
//! another member's page, the other city's board.
//!
//! Each browser step is a scenario of `tests/browser/console.mjs`, run as a child process against
//! the broker this test started; the test asserts on what the browser saw *and* on the broker's
//! state afterwards through the API and the audit trail.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::exchange::{DATASET, request, set_up};
use crate::support::{TestBroker, json};

/// Runs a scenario of the browser script and returns what it printed last (JSON).
fn browser(b: &TestBroker, scenario: &str, version: Option<u64>) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    let public = b.public_addr.map(|a| format!("https://127.0.0.1:{}", a.port())).unwrap_or_default();
    let mut child = Command::new("node")
        .arg(dir.join("console.mjs"))
        .arg(scenario)
        .current_dir(&dir)
        .env("BROKER", format!("https://127.0.0.1:{}", b.addr.port()))
        .env("PUBLIC", public)
        .env("PKI", &b.pki.dir)
        .env("DATASET", DATASET)
        .env("VERSION", version.map(|v| v.to_string()).unwrap_or_default())
        .env("P12_PASSWORD", broker::demo::DEMO_P12_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); scripts/prereqs.sh installs it and the browser tests' packages"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("browser scenario {scenario} took over 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser scenario {scenario} failed:\n{stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("scenario {scenario} printed no JSON ({e}): {stdout}\n{stderr}"))
}

fn with_public(c: &mut broker::config::Config) {
    c.transparency.listen = Some("127.0.0.1:0".parse().expect("addr"));
    c.transparency.minimum_group = 2;
}

async fn version(b: &TestBroker, n: u64) -> Value {
    let mut resp = b
        .client("aalen-board")
        .get(b.url(&format!("/v1/datasets/{DATASET}/policy/versions/{n}")))
        .send()
        .await
        .expect("version");
    assert_eq!(resp.status(), 200);
    json(&mut resp).await
}

#[actix_rt::test]
async fn a_steward_drafts_in_chromium_and_only_the_other_board_member_of_the_city_puts_it_in_force() {
    let b = TestBroker::start_with(with_public);
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;

    // The steward registers a dataset in the form; the API reads it back as registered.
    let registered = browser(&b, "register", None);
    assert!(
        registered["address"]
            .as_str()
            .is_some_and(|a| a.ends_with("/console/datensaetze/aalen-spielplaetze/bearbeiten?gespeichert=1")),
        "{registered}"
    );
    assert!(
        registered["listed"].as_str().is_some_and(|t| t.contains("Spielplätze in Aalen")),
        "{registered}"
    );
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/datasets/aalen-spielplaetze"))
        .send()
        .await
        .expect("dataset");
    assert_eq!(resp.status(), 200);
    let d = json(&mut resp).await;
    assert_eq!(d["publisher"], broker::demo::AALEN);
    assert_eq!(d["themes"], serde_json::json!(["EDUC"]));
    assert_eq!(d["license"], "http://dcat-ap.de/def/licenses/dl-by-de/2.0");

    // The steward: guided editor → generated Turtle → check → draft.
    let drafted = browser(&b, "draft", None);
    let n = drafted["version"].as_u64().expect("version");
    let explanation = drafted["explanation"].as_str().unwrap_or_default();
    assert!(
        explanation.contains("Heidenheim") || explanation.contains("08135019"),
        "{explanation}"
    );
    let v = version(&b, n).await;
    assert_eq!(v["status"], "draft");
    assert_eq!(v["authorName"], broker::demo::person("aalen-steward"));
    assert!(v["source"].as_str().is_some_and(|s| s.contains("dpv:ImprovePublicServices")), "{v}");

    // A page on another origin posts the approval form with the board member's certificate.
    let forged = browser(&b, "forge", Some(n));
    assert_eq!(forged["status"], 403, "{forged}");
    assert!(forged["body"].as_str().is_some_and(|t| t.contains("another site")), "{forged}");
    assert_eq!(version(&b, n).await["status"], "draft", "the forged approval changed nothing");

    // Heidenheim's board sees the draft without a form, and a token lifted from Aalen's board
    // member's page does not work with Heidenheim's certificate.
    let other = browser(&b, "otherCity", Some(n));
    assert_eq!(other["buttons"], 0, "{other}");
    assert!(
        other["body"]
            .as_str()
            .is_some_and(|t| t.contains("können diese Version nicht freigeben")),
        "{other}"
    );
    assert_eq!(other["lifted"], 403, "{other}");
    assert_eq!(version(&b, n).await["status"], "draft");

    let before = browser(&b, "usage", None);
    assert_eq!(before["csvBom"], true, "{before}");
    assert_eq!(
        before["csvHeader"], "Monat;Anbietende Kommune;Nutzende Kommune;Zweck;Erlaubt;Abgelehnt;Geliefert",
        "{before}"
    );

    // Aalen's board member (not the author) approves it: in force, recorded with the note.
    let approved = browser(&b, "approve", Some(n));
    assert!(
        approved["after"].as_str().is_some_and(|t| t.contains("freigegeben und in Kraft")),
        "{approved}"
    );
    let v = version(&b, n).await;
    assert_eq!(v["status"], "approved");
    assert_eq!(v["active"], true);
    assert_eq!(v["review"]["byName"], broker::demo::person("aalen-board"));
    assert_eq!(v["review"]["note"], "Geprüft im Gremium am Dienstag.");
    let approvals: Vec<String> = b.audit_lines().into_iter().filter(|l| l.contains("\"policy-approved\"")).collect();
    assert_eq!(approvals.len(), 1, "{approvals:?}");

    // Brokered requests show in the board's usage chart.
    for _ in 0..3 {
        let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = request(&b, "heidenheim-system", "CommercialPurpose").await;
    assert_eq!(status, 403);
    let after = browser(&b, "usage", None);
    assert_eq!(
        after["permits"].as_u64(),
        before["permits"].as_u64().map(|p| p + 3),
        "{before} → {after}"
    );
    assert!(after["chart"].as_str().is_some_and(|c| c.contains("3 erlaubt")), "{after}");
    // By partner: Heidenheim's three permitted requests and one denial; the denial's reason.
    assert!(
        after["partners"]
            .as_str()
            .is_some_and(|c| c.contains("Heidenheim") && c.contains("3 erlaubt, 1 abgelehnt")),
        "{after}"
    );
    assert!(
        after["reasons"]
            .as_str()
            .is_some_and(|t| t.contains("Bedingung nicht erfüllt") || t.contains("keine Erlaubnis")),
        "{after}"
    );
}

#[actix_rt::test]
async fn the_public_page_and_the_console_have_no_serious_accessibility_violations() {
    let b = TestBroker::start_with(with_public);
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(crate::exchange::POLICY)).await;
    for _ in 0..2 {
        let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = browser(&b, "axe", None);
    assert!(seen["contentType"].as_str().is_some_and(|c| c.starts_with("text/html")), "{seen}");
    let pages = seen["violations"].as_object().expect("pages");
    assert!(pages.contains_key("/transparency") && pages.len() >= 10, "{seen}");
    for (page, violations) in pages {
        let serious: Vec<&Value> = violations
            .as_array()
            .expect("list")
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(serious.is_empty(), "{page}: {serious:?}");
    }
}

#[actix_rt::test]
async fn chromium_presents_the_board_members_certificate_from_its_own_store() {
    let b = TestBroker::start();
    let seen = browser(&b, "native", None);
    assert_eq!(seen["status"], 200, "{seen}");
    assert!(
        seen["who"]
            .as_str()
            .is_some_and(|w| w.contains(broker::demo::person("aalen-board"))),
        "{seen}"
    );
}

#[actix_rt::test]
async fn console_forms_without_the_token_or_from_another_origin_are_refused() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let (status, body) = crate::support::submit_policy(&b, "aalen-steward", DATASET, crate::exchange::POLICY, "text/turtle").await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/console/freigaben/{DATASET}/1");
    let client = b.client("aalen-board");
    let resp = client.get(b.url(&path)).send().await.expect("page");
    assert_eq!(resp.status(), 200);
    let csp = resp.headers().get("content-security-policy").and_then(|v| v.to_str().ok());
    assert_eq!(csp, Some(broker::http::console::CSP));
    assert!(csp.is_some_and(|c| c.contains("default-src 'none'") && !c.contains("script-src")));
    assert_eq!(resp.headers().get("x-frame-options").map(|v| v.as_bytes()), Some(&b"DENY"[..]));
    for (origin, token) in [(None, None), (Some("https://evil.example"), Some("1.00")), (None, Some("x"))] {
        let mut req = client.post(b.url(&path)).content_type("application/x-www-form-urlencoded");
        if let Some(o) = origin {
            req = req.insert_header(("Origin", o));
        }
        let form = match token {
            Some(t) => format!("entscheidung=freigeben&token={t}"),
            None => "entscheidung=freigeben".to_owned(),
        };
        let mut resp = req.send_body(form).await.expect("post");
        assert_eq!(resp.status(), 403, "{origin:?} {token:?}");
        let body = resp.body().await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("Zugriff verweigert"));
    }
    assert_eq!(version(&b, 1).await["status"], "draft");
    // A system certificate has no business in the console's review pages.
    let resp = b
        .client("aalen-system")
        .get(b.url("/console/freigaben"))
        .send()
        .await
        .expect("page");
    assert_eq!(resp.status(), 403);
}
