//! Aggregates that cannot be taken apart (issue 22): each test is an attempt by a partner city
//! to learn what small-group suppression hides, with its own `system` certificate.

use serde_json::{Value, json};

use crate::exchange::{DATASET, DPV, POLICY, decisions, set_up};
use crate::support::{TestBroker, attach_approved, example, json};

const DIAGNOSES: &str = "aalen-diagnosen";
const DIAGNOSES_IRI: &str = "https://broker.kdr.example/datasets/aalen-diagnosen";

/// A policy for the hosted diagnoses: Heidenheim, public services, counts by district and
/// diagnosis, groups under 5 suppressed; with `noise`, also (ε, budget) differential privacy.
fn diagnoses_policy(noise: Option<(&str, &str)>) -> String {
    diagnoses_policy_for(noise, "dpv:ImprovePublicServices")
}

/// [`diagnoses_policy`] admitting the purposes under `purpose`.
fn diagnoses_policy_for(noise: Option<(&str, &str)>, purpose: &str) -> String {
    let noise = noise
        .map(|(e, b)| format!(", [ odrl:action kdr:addNoise ; kdr:epsilon \"{e}\"^^xsd:decimal ; kdr:budget \"{b}\"^^xsd:decimal ]"))
        .unwrap_or_default();
    format!(
        "@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix dpv: <https://w3id.org/dpv#> . \
         @prefix kdr: <https://w3id.org/kdr/odrl#> . @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n\
         <urn:kdr:diagnosen> a odrl:Set ; odrl:permission [ odrl:target <{DIAGNOSES_IRI}> ; odrl:action odrl:use ; \
         odrl:assignee <http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019> ; \
         odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand {purpose} ] ; \
         odrl:duty [ odrl:action odrl:aggregate ; kdr:groupBy \"bezirk\", \"diagnose\" ; kdr:minGroupSize 5 ]{noise} ] ."
    )
}

/// Registers Aalen's hosted diagnoses with `rows` of (district, diagnosis, how many) and the
/// policy.
async fn hosted_diagnoses(b: &TestBroker, rows: &[(&str, &str, usize)], policy: &str) {
    register_diagnoses(b).await;
    upload(b, rows).await;
    attach_approved(b, DIAGNOSES, policy).await;
}

/// Registers Aalen's diagnoses as a hosted dataset, without data or policy.
async fn register_diagnoses(b: &TestBroker) {
    let mut d = example("aalen-kita-plaetze");
    d["identifier"] = json!(DIAGNOSES);
    d["distributions"] = json!([{ "mediaType": "text/csv", "accessURL": "hosted" }]);
    let resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .send_json(&d)
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
}

async fn upload(b: &TestBroker, rows: &[(&str, &str, usize)]) {
    let mut csv = String::from("name,bezirk,diagnose\n");
    for (i, (bezirk, diagnose, n)) in rows.iter().enumerate() {
        for j in 0..*n {
            csv.push_str(&format!("Person {i}-{j},{bezirk},{diagnose}\n"));
        }
    }
    let resp = b
        .client("aalen-steward")
        .put(b.url(&format!("/v1/datasets/{DIAGNOSES}/hosted-data")))
        .insert_header(("Content-Type", "text/csv"))
        .send_body(csv)
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
}

/// Heidenheim's system asks for `dataset` with `fields` (none: the parameter is left out).
async fn ask(b: &TestBroker, dataset: &str, fields: Option<&str>) -> (u16, Value) {
    ask_for(b, dataset, fields, "ImprovePublicServices").await
}

/// [`ask`] for another DPV purpose.
async fn ask_for(b: &TestBroker, dataset: &str, fields: Option<&str>, purpose: &str) -> (u16, Value) {
    let mut query = vec![("purpose", format!("{DPV}{purpose}"))];
    if let Some(f) = fields {
        query.push(("fields", f.to_owned()));
    }
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/v1/datasets/{dataset}/data")))
        .query(&query)
        .expect("query")
        .send()
        .await
        .expect("request");
    (resp.status().as_u16(), json(&mut resp).await)
}

fn counts(body: &Value) -> Vec<u64> {
    let mut c: Vec<u64> = body
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["count"].as_u64()).collect())
        .unwrap_or_default();
    c.sort_unstable();
    c
}

#[actix_rt::test]
async fn fields_cannot_merge_a_suppressed_group_into_a_delivered_one() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, normal) = ask(&b, DATASET, None).await;
    assert_eq!(status, 200, "{normal}");
    let released = counts(&normal);
    assert!(!released.is_empty(), "{normal}");
    for fields in ["", "bezirk", "termin", "count", "dienstleistung,geburtsdatum"] {
        let (status, body) = ask(&b, DATASET, Some(fields)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(counts(&body), released, "fields={fields:?} changed the groups: {body}");
        assert!(!body.to_string().contains("16"), "fields={fields:?} revealed the total: {body}");
    }
}

#[actix_rt::test]
async fn a_hidden_diagnosis_cannot_be_read_off_its_district_or_the_totals() {
    let b = TestBroker::start();
    let rows = [
        ("Innenstadt", "Grippe", 6),
        ("Innenstadt", "HIV", 1),
        ("Hofherrnweiler", "Grippe", 5),
    ];
    hosted_diagnoses(&b, &rows, &diagnoses_policy(None)).await;
    for fields in [None, Some("bezirk"), Some("diagnose"), Some("")] {
        let (status, body) = ask(&b, DIAGNOSES, fields).await;
        assert_eq!(status, 200, "{body}");
        // Innenstadt/Grippe (6) and Hofherrnweiler/Grippe (5) would each give the HIV case away
        // with a known district or diagnosis total; all three are withheld.
        assert_eq!(body, json!([]), "fields={fields:?}: {body}");
    }
}

#[actix_rt::test]
async fn two_releases_one_person_apart_show_that_person_without_noise_and_only_noise_with_it() {
    // Without noise the policy says what it does not protect against, and it is so.
    let b = TestBroker::start();
    let mut rows = vec![
        ("Innenstadt", "Grippe", 9),
        ("Unterkochen", "Grippe", 8),
        ("Innenstadt", "Masern", 7),
        ("Unterkochen", "Masern", 6),
    ];
    hosted_diagnoses(&b, &rows, &diagnoses_policy(None)).await;
    let (_, before) = ask(&b, DIAGNOSES, None).await;
    rows[0].2 += 1;
    upload(&b, &rows).await;
    let (_, after) = ask(&b, DIAGNOSES, None).await;
    assert_eq!(counts(&before), vec![6, 7, 8, 9]);
    assert_eq!(
        counts(&after),
        vec![6, 7, 8, 10],
        "k-suppression alone: the new person's group shows"
    );
    let mut resp = b
        .client("aalen-board")
        .get(b.url(&format!("/v1/datasets/{DIAGNOSES}/policy")))
        .send()
        .await
        .expect("policy");
    let policy = json(&mut resp).await;
    for lang in ["de", "en"] {
        let text = policy["explanation"][lang].as_str().unwrap_or_default();
        assert!(
            text.contains("Differential Privacy") || text.contains("differential privacy"),
            "{lang}: {text}"
        );
    }

    // With noise, releases of the very same data differ: a difference is no evidence of a person.
    // Groups well above the minimum size, so that what differs is the noise: with groups of
    // 6 to 10 one noisy count under 5 suppresses the whole 2×2 table (secondary suppression),
    // and eight empty releases in a row came up about once in a hundred runs.
    let b = TestBroker::start();
    let large: Vec<(&str, &str, usize)> = rows.iter().map(|(d, x, n)| (*d, *x, n * 10)).collect();
    hosted_diagnoses(&b, &large, &diagnoses_policy(Some(("0.5", "8")))).await;
    let mut releases = Vec::new();
    for _ in 0..8 {
        let (status, body) = ask(&b, DIAGNOSES, None).await;
        assert_eq!(status, 200, "{body}");
        releases.push(body);
    }
    assert!(
        releases.windows(2).any(|w| w[0] != w[1]),
        "eight releases of unchanged data, all identical: {releases:?}"
    );
    let mut resp = b
        .client("aalen-board")
        .get(b.url(&format!("/v1/datasets/{DIAGNOSES}/policy")))
        .send()
        .await
        .expect("policy");
    let policy = json(&mut resp).await;
    let de = policy["explanation"]["de"].as_str().unwrap_or_default();
    assert!(de.contains("ε = 0.5") && de.contains("höchstens 16 Abrufe"), "{de}");
}

#[actix_rt::test]
async fn the_privacy_budget_runs_out_exactly_at_its_epsilon_under_concurrent_requests() {
    let b = TestBroker::start();
    let rows = [("Innenstadt", "Grippe", 30), ("Unterkochen", "Grippe", 40)];
    hosted_diagnoses(&b, &rows, &diagnoses_policy(Some(("0.25", "1")))).await;
    let asks: Vec<_> = (0..10).map(|_| ask(&b, DIAGNOSES, None)).collect();
    let answers = futures_util::future::join_all(asks).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 4, "1 / 0.25 releases: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 403, "{body}");
        assert_eq!(body["type"], "https://w3id.org/kdr/problems/privacy-budget-exhausted", "{body}");
        assert!(body["decisionId"].is_string());
    }
    let spent: u64 = decisions(&b)
        .iter()
        .filter(|d| d["dataset"] == DIAGNOSES)
        .filter_map(|d| d["privacySpentMilli"].as_u64())
        .sum();
    assert_eq!(spent, 1000, "the spend is in the audit trail");
    let mut resp = b
        .client("aalen-board")
        .get(b.url("/v1/reports/usage"))
        .send()
        .await
        .expect("report");
    let report = json(&mut resp).await;
    let in_report: u64 = report
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["dataset"] == DIAGNOSES)
                .filter_map(|r| r["epsilonSpentMilli"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(in_report, 1000, "and in the usage report: {report}");
    // The budget is spent again only after a restart rebuilt it from the trail.
    let mut b = b;
    b.restart();
    let (status, body) = ask(&b, DIAGNOSES, None).await;
    assert_eq!(status, 403, "still exhausted after a restart: {body}");
}

#[actix_rt::test]
async fn declaring_another_purpose_does_not_open_another_privacy_budget() {
    let b = TestBroker::start();
    let rows = [("Innenstadt", "Grippe", 30), ("Unterkochen", "Grippe", 40)];
    // Every purpose under public benefit is admitted; the budget is two releases in all.
    hosted_diagnoses(&b, &rows, &diagnoses_policy_for(Some(("0.5", "1")), "dpv:PublicBenefit")).await;
    assert_eq!(ask_for(&b, DIAGNOSES, None, "ImprovePublicServices").await.0, 200);
    assert_eq!(ask_for(&b, DIAGNOSES, None, "PublicBenefit").await.0, 200);
    let (status, body) = ask_for(&b, DIAGNOSES, None, "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/privacy-budget-exhausted");
}

#[actix_rt::test]
async fn a_release_that_fails_before_any_data_leaves_gives_its_budget_back() {
    let b = TestBroker::start();
    register_diagnoses(&b).await;
    // One release in the budget, and no data uploaded yet: the first request fails.
    attach_approved(&b, DIAGNOSES, &diagnoses_policy(Some(("0.5", "0.5")))).await;
    let (status, body) = ask(&b, DIAGNOSES, None).await;
    assert_eq!(status, 502, "{body}");
    upload(&b, &[("Innenstadt", "Grippe", 30)]).await;
    let (status, body) = ask(&b, DIAGNOSES, None).await;
    assert_eq!(status, 200, "the failed request spent nothing: {body}");
    assert_eq!(ask(&b, DIAGNOSES, None).await.0, 403, "and now it is spent");
}
