//! Cross-city exchange end to end: Heidenheim's system asks for Aalen's appointment data through
//! the broker, which decides with the compiled policy, fetches from Aalen's provider service over
//! mutual TLS, minimises, logs, and answers.

use serde_json::Value;

use crate::support::{TestBroker, attach_approved, example, json};

pub const POLICY: &str = include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl");
pub const DATASET: &str = "aalen-buergerbuero-termine";
pub const DPV: &str = "https://w3id.org/dpv#";

/// Registers Aalen's dataset with its access URL at `path` on the provider, and its policy.
pub async fn set_up(b: &TestBroker, provider_port: u16, path: &str, policy: Option<&str>) {
    let mut d = example(DATASET);
    d["distributions"] =
        serde_json::json!([{ "mediaType": "application/json", "accessURL": format!("https://127.0.0.1:{provider_port}{path}") }]);
    let resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .send_json(&d)
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    if let Some(p) = policy {
        attach_approved(b, DATASET, p).await;
    }
}

pub async fn request(b: &TestBroker, who: &str, purpose: &str) -> (u16, Value, awc::http::header::HeaderMap) {
    let mut resp = b
        .client(who)
        .get(b.url(&format!("/v1/datasets/{DATASET}/data")))
        .query(&[("purpose", format!("{DPV}{purpose}"))])
        .expect("query")
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, json(&mut resp).await, headers)
}

pub fn decisions(b: &TestBroker) -> Vec<Value> {
    crate::support::log_lines(&b.state_dir().join("audit.jsonl"))
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("record")["entry"].clone())
        .filter(|e| e["type"] == "decision")
        .collect()
}

#[actix_rt::test]
async fn heidenheim_gets_aggregated_minimised_data_for_improving_public_services() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, body, headers) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200, "{body}");
    let rows = body.as_array().expect("records");
    // Groups of 7 (Innenstadt) and 5 (Unterkochen) pass; the group of 4 (Wasseralfingen) is suppressed.
    let mut counts: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["bezirk"].as_str().expect("bezirk").to_owned(),
                r["count"].as_u64().expect("count"),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(counts, vec![("Innenstadt".into(), 7), ("Unterkochen".into(), 5)]);
    for r in rows {
        let fields: Vec<&String> = r.as_object().expect("object").keys().collect();
        assert_eq!(
            fields,
            ["bezirk", "count", "dienstleistung", "geburtsdatum", "termin"],
            "no field the policy does not allow"
        );
        assert_eq!(r["termin"], "2026-10", "appointments coarsened to the month");
        assert!(
            r["geburtsdatum"].as_str().is_some_and(|a| a.ends_with('9') && a.contains('-')),
            "birth dates as age bands: {r}"
        );
    }
    let text = body.to_string();
    assert!(!text.contains("Maier") && !text.contains("07361"), "no name or phone number leaves");
    assert_eq!(headers.get("x-policy-version").and_then(|v| v.to_str().ok()), Some("1"));
    assert!(
        headers
            .get("x-usage-terms")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("P90D"))
    );
    let log = decisions(&b);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["decision"], "permit");
    assert_eq!(log[0]["recordsIn"], 16);
    assert_eq!(log[0]["recordsOut"], 2);
    assert_eq!(
        Some(log[0]["id"].as_str().unwrap_or_default()),
        headers.get("x-decision-id").and_then(|v| v.to_str().ok())
    );
    assert!(
        !serde_json::to_string(&log).expect("json").contains("Maier"),
        "no personal data in the log"
    );
}

#[actix_rt::test]
async fn a_commercial_purpose_is_denied_naming_the_purpose_constraint() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, body, _) = request(&b, "heidenheim-system", "Marketing").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["policyVersion"], 1);
    let failed: Vec<&str> = body["failedConstraints"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        failed,
        ["https://broker.kdr.example/policies/aalen-buergerbuero-termine/1#use/constraint/1"],
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("purpose isA https://w3id.org/dpv#ImprovePublicServices is not met")),
        "{body}"
    );
    let log = decisions(&b);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["decision"], "deny");
    assert_eq!(log[0]["failedConstraints"], body["failedConstraints"]);
}

#[actix_rt::test]
async fn a_commercial_purpose_is_named_as_prohibited() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, body, _) = request(&b, "heidenheim-system", "CommercialPurpose").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["prohibitedBy"],
        serde_json::json!(["https://broker.kdr.example/policies/aalen-buergerbuero-termine/1#no-commerce"])
    );
}

#[actix_rt::test]
async fn requests_beyond_the_permitted_count_are_denied_even_after_a_restart() {
    let mut b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(&POLICY.replace("\"100\"", "\"2\""))).await;
    for _ in 0..2 {
        let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{body}");
    }
    // The counts are rebuilt from the trail's permit records.
    b.restart();
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["failedConstraints"],
        serde_json::json!(["https://broker.kdr.example/policies/aalen-buergerbuero-termine/1#use/constraint/0"]),
        "only the count fails: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("count lt 2 is not met")),
        "{body}"
    );
}

#[actix_rt::test]
async fn no_policy_no_purpose_unknown_purpose_and_unknown_dataset_are_refused() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with("/no-policy")), "{body}");
    assert_eq!(decisions(&b).len(), 1, "the denial is logged");
    let (status, body, _) = request(&b, "heidenheim-system", "Teleportation").await;
    assert_eq!(status, 400, "{body}");
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/v1/datasets/{DATASET}/data")))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 400);
    assert!(
        json(&mut resp).await["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/missing-purpose"))
    );
    let resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/datasets/nope/data"))
        .query(&[("purpose", format!("{DPV}ImprovePublicServices"))])
        .expect("q")
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 404);
    let (status, _, _) = request(&b, "heidenheim-board", "ImprovePublicServices").await;
    assert_eq!(status, 403, "a board certificate does not request data");
}

#[actix_rt::test]
async fn when_the_decision_log_cannot_be_written_no_data_is_returned() {
    use std::os::unix::fs::PermissionsExt;
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let log = b.state_dir().join("audit.jsonl");
    std::fs::write(&log, "").expect("create log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o444)).expect("read-only");
    if std::fs::OpenOptions::new().append(true).open(&log).is_ok() {
        // Root ignores file modes; make the log a directory instead, which nobody can append to.
        std::fs::remove_file(&log).expect("rm");
        std::fs::create_dir(&log).expect("dir");
    }
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.get("count").is_none() && !body.to_string().contains("Innenstadt"),
        "no data: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("nothing is delivered")),
        "{body}"
    );
}

#[actix_rt::test]
async fn a_provider_that_is_down_slow_or_sends_garbage_gives_502_or_504_and_a_logged_decision() {
    let b = TestBroker::start_with(|c| c.upstream.timeout = std::time::Duration::from_millis(500));
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/garbage", Some(POLICY)).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 502, "{body}");

    let b2 = TestBroker::start_with(|c| c.upstream.timeout = std::time::Duration::from_millis(500));
    let provider = b2.start_provider();
    set_up(&b2, provider.addr.port(), "/slow", Some(POLICY)).await;
    let (status, body, _) = request(&b2, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 504, "{body}");

    // Aalen's registered provider origin, where nobody listens (any more).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let b3 = TestBroker::start_with(|c| crate::support::register_provider(c, broker::demo::AALEN, dead));
    set_up(&b3, dead.port(), "/appointments", Some(POLICY)).await;
    let (status, body, _) = request(&b3, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 502, "{body}");
    for broker in [&b, &b2, &b3] {
        let log = decisions(broker);
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["decision"], "permit");
        assert_eq!(log[0]["outcome"], "upstream-failed");
    }
}

#[actix_rt::test]
async fn usage_counts_stay_exact_under_200_concurrent_requests() {
    let b = TestBroker::start_with(|c| {
        c.upstream.timeout = std::time::Duration::from_secs(60);
        // 200 connections and requests of one member at once: over the default shares, on purpose.
        c.limits.connections_per_certificate = 256;
        c.upstream.max_requests = 512;
    });
    let provider = b.start_provider();
    set_up(
        &b,
        provider.addr.port(),
        "/appointments",
        Some(&POLICY.replace("\"100\"", "\"150\"")),
    )
    .await;
    let client = b.client("heidenheim-system");
    let url = b.url(&format!("/v1/datasets/{DATASET}/data"));
    let purpose = format!("{DPV}ImprovePublicServices");
    let requests = (0..200).map(|_| {
        let req = client.get(&url).query(&[("purpose", purpose.as_str())]).expect("query");
        async move { req.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let permitted = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    let denied = statuses.iter().filter(|s| matches!(s, Ok(403))).count();
    assert_eq!((permitted, denied), (150, 50), "exactly the permitted count passes: {statuses:?}");
    let log = decisions(&b);
    assert_eq!(log.iter().filter(|r| r["decision"] == "permit").count(), 150);
    assert_eq!(log.len(), 200, "every decision is logged");
}

pub const KITA: &str = "aalen-kita-plaetze";
pub const KITA_POLICY: &str = r#"@prefix odrl: <http://www.w3.org/ns/odrl/2/> .
@prefix dpv: <https://w3id.org/dpv#> .
@prefix kdr: <https://w3id.org/kdr/odrl#> .
<https://broker.kdr.example/policies/aalen-kita-plaetze/1> a odrl:Set ;
    odrl:permission [
        odrl:assignee <http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019> ;
        odrl:target <https://broker.kdr.example/datasets/aalen-kita-plaetze> ;
        odrl:action odrl:use ;
        odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:PublicBenefit ] ;
        odrl:duty [ odrl:action kdr:minimise ; kdr:field "kita", "bezirk", "plaetze" ]
    ] .
"#;

pub async fn upload(b: &TestBroker, who: &str, dataset: &str, media_type: &str, body: &str) -> (u16, Value) {
    let mut resp = b
        .client(who)
        .put(b.url(&format!("/v1/datasets/{dataset}/hosted-data")))
        .insert_header(("Content-Type", media_type))
        .send_body(body.to_owned())
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

/// Registers Aalen's Kita places (hosted: nothing uploaded yet) with its approved policy.
pub async fn register_kita(b: &TestBroker) {
    let resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .send_json(&example(KITA))
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    attach_approved(b, KITA, KITA_POLICY).await;
}

#[actix_rt::test]
async fn hosted_data_is_uploaded_sealed_at_rest_and_served_minimised() {
    let b = TestBroker::start();
    register_kita(&b).await;
    let ask = |purpose: &str| {
        b.client("heidenheim-system")
            .get(b.url(&format!("/v1/datasets/{KITA}/data")))
            .insert_header(("Accept", "text/csv"))
            .query(&[("purpose", format!("{DPV}{purpose}"))])
            .expect("query")
    };
    let resp = ask("ImprovePublicServices").send().await.expect("req");
    assert_eq!(resp.status(), 502, "nothing uploaded yet");

    let csv = "kita,bezirk,plaetze,leiterin\nSonnenschein,Innenstadt,42,Petra Vogt\nRegenbogen,Unterkochen,35,Jana Ilg\n";
    assert_eq!(
        upload(&b, "heidenheim-steward", KITA, "text/csv", csv).await.0,
        403,
        "only the publisher's stewards"
    );
    assert_eq!(upload(&b, "aalen-system", KITA, "text/csv", csv).await.0, 403);
    assert_eq!(upload(&b, "aalen-steward", KITA, "text/plain", csv).await.0, 415);
    assert_eq!(upload(&b, "aalen-steward", KITA, "text/csv", "a,b\n1,2,3\n").await.0, 422);
    let (status, body) = upload(&b, "aalen-steward", KITA, "text/csv", csv).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"], 2);
    let sealed = std::fs::read(b.state_dir().join("hosted").join(format!("{KITA}.sealed"))).expect("sealed file");
    assert!(!String::from_utf8_lossy(&sealed).contains("Petra Vogt"), "encrypted at rest");

    let mut resp = ask("ImprovePublicServices").send().await.expect("req");
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf-8");
    assert_eq!(text, "bezirk,kita,plaetze\nInnenstadt,Sonnenschein,42\nUnterkochen,Regenbogen,35\n");
    let resp = ask("Marketing").send().await.expect("req");
    assert_eq!(resp.status(), 403);

    // An empty upload (found by schemathesis) is refused and replaces nothing.
    for empty in ["", " \n"] {
        let (status, body) = upload(&b, "aalen-steward", KITA, "text/csv", empty).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("empty")), "{body}");
    }
    let mut resp = ask("ImprovePublicServices").send().await.expect("req");
    assert_eq!(resp.status(), 200);
    let again = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf-8");
    assert_eq!(again, text, "the last good upload still serves");
}

#[actix_rt::test]
async fn a_dataset_fetched_from_an_api_takes_no_upload() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let (status, body) = upload(&b, "aalen-steward", DATASET, "application/json", "[]").await;
    assert_eq!(status, 409, "{body}");
}

/// Regression guard for the per-dataset snapshot: a new policy version decides the very next
/// request, it is not served from a stale snapshot.
#[actix_rt::test]
async fn a_new_policy_version_decides_the_next_request() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, _, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
    let stricter = POLICY.replace("dpv:ImprovePublicServices", "dpv:ResearchAndDevelopment");
    attach_approved(&b, DATASET, &stricter).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["policyVersion"], 2);
}
