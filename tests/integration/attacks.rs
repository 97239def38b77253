//! The attack suite: each test is an attempt by a member, a stranger or a provider to break one
//! of the broker's promises, named after the attack, run against the real broker over mutual
//! TLS. Every one of them succeeded against the broker before the trust-model work (issue 17);
//! `SECURITY.md` maps each threat to its test here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exchange::{DATASET, DPV, POLICY, decisions, request, set_up};
use crate::support::{
    TestBroker, attach_approved, client_config, example, json, raw_request, register_provider, review_policy, sparql_ask, submit_policy,
};

const DATASET_IRI: &str = "https://broker.kdr.example/datasets/aalen-buergerbuero-termine";
const PREFIXES: &str = "@prefix odrl: <http://www.w3.org/ns/odrl/2/> . @prefix dpv: <https://w3id.org/dpv#> . \
    @prefix kdr: <https://w3id.org/kdr/odrl#> . @prefix dct: <http://purl.org/dc/terms/> . \
    @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n";

/// A minimal valid policy for Aalen's appointments: Heidenheim may read for any purpose under
/// public services, minimised to the district.
fn small_policy(uid: &str) -> String {
    format!(
        "{PREFIXES}<{uid}> a odrl:Set ; odrl:permission [ odrl:target <{DATASET_IRI}> ; odrl:action odrl:use ; \
         odrl:assignee <http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019> ; \
         odrl:constraint [ odrl:leftOperand odrl:purpose ; odrl:operator odrl:isA ; odrl:rightOperand dpv:ImprovePublicServices ] ; \
         odrl:duty [ odrl:action kdr:minimise ; kdr:field \"bezirk\" ] ] .\n"
    )
}

async fn status_of(b: &TestBroker, who: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = b.client(who);
    let req = match method {
        "PUT" => client.put(b.url(path)),
        "POST" => client.post(b.url(path)),
        "DELETE" => client.delete(b.url(path)),
        _ => client.get(b.url(path)),
    };
    let mut resp = match body {
        Some(v) => req.send_json(&v).await,
        None => req.send().await,
    }
    .expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn admin_actions(b: &TestBroker) -> Vec<(String, String)> {
    b.audit_lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("record")["entry"].clone())
        .filter(|e| e["type"] == "admin")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

// ---- 1. A draft puts itself in force -------------------------------------------------------

#[actix_rt::test]
async fn draft_declaring_itself_active_with_has_policy_is_refused_naming_the_triple() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let uid = "https://broker.kdr.example/policies/aalen-buergerbuero-termine/evil";
    let doc = format!("{}<{DATASET_IRI}> odrl:hasPolicy <{uid}> .\n", small_policy(uid));
    let (status, body) = submit_policy(&b, "aalen-steward", DATASET, &doc, "text/turtle").await;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("hasPolicy") && detail.contains("own statements"), "{detail}");
    // Nothing decides requests: no board member approved anything.
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/no-policy");
}

#[actix_rt::test]
async fn draft_forging_another_citys_dataset_title_is_refused_and_never_reaches_sparql() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let other = "https://broker.kdr.example/datasets/heidenheim-parkhaus-belegung";
    let uid = "urn:kdr:evil";
    for (doc, media) in [
        (
            format!("{}<{other}> dct:title \"Gefälscht\"@de .\n", small_policy(uid)),
            "text/turtle",
        ),
        (
            json!({
                "@context": "http://www.w3.org/ns/odrl.jsonld",
                "@graph": [
                    { "uid": uid, "type": "Set", "permission": [{ "target": DATASET_IRI, "action": "use" }] },
                    { "@id": other, "http://purl.org/dc/terms/title": "Gefälscht" }
                ]
            })
            .to_string(),
            "application/ld+json",
        ),
    ] {
        let (status, body) = submit_policy(&b, "aalen-steward", DATASET, &doc, media).await;
        assert_eq!(status, 422, "{media}: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("title")), "{body}");
    }
    let forged = format!("ASK {{ <{other}> <http://purl.org/dc/terms/title> \"Gefälscht\"@de }}");
    assert!(
        !sparql_ask(&b, "heidenheim-system", &forged).await,
        "the forged title is nowhere in the graph"
    );
}

#[actix_rt::test]
async fn rejecting_a_draft_leaves_nothing_new_in_force() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let (status, draft) = submit_policy(&b, "aalen-steward", DATASET, POLICY, "text/turtle").await;
    assert_eq!(status, 201, "{draft}");
    let (status, body) = review_policy(&b, "aalen-board", DATASET, 1, "reject").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "a rejected version decides nothing");
    let ask = format!("ASK {{ <{DATASET_IRI}> <http://www.w3.org/ns/odrl/2/hasPolicy> ?p }}");
    assert!(!sparql_ask(&b, "heidenheim-system", &ask).await, "no policy in force");
    // With an approved version in force, rejecting a later draft keeps the approved one.
    attach_approved(&b, DATASET, POLICY).await;
    let (status, _) = submit_policy(&b, "aalen-steward", DATASET, &small_policy("urn:kdr:v3"), "text/turtle").await;
    assert_eq!(status, 201);
    let (status, _) = review_policy(&b, "aalen-board", DATASET, 3, "reject").await;
    assert_eq!(status, 200);
    let (status, _, headers) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-policy-version").and_then(|v| v.to_str().ok()), Some("2"));
}

// ---- 2. Confused deputy: another city's provider behind one's own dataset --------------------

#[actix_rt::test]
async fn registering_a_dataset_whose_access_url_is_another_citys_provider_is_refused() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    let mut d = example("heidenheim-parkhaus-belegung");
    d["identifier"] = json!("heidenheim-relay");
    d["distributions"] = json!([{ "mediaType": "application/json",
        "accessURL": format!("https://127.0.0.1:{}/appointments", provider.addr.port()) }]);
    let (status, body) = status_of(&b, "heidenheim-steward", "POST", "/v1/datasets", Some(d)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["pointer"], "/distributions/0/accessURL", "{body}");
}

#[actix_rt::test]
async fn a_provider_address_registered_for_the_wrong_city_still_does_not_relay_its_data() {
    // The operator mistypes Heidenheim's provider origin as Aalen's API. Heidenheim registers a
    // dataset there and its own board approves a permissive policy: the broker still refuses,
    // because the server proves to be Aalen's provider, not Heidenheim's.
    let aalen_port = std::sync::Mutex::new(0u16);
    let b = TestBroker::start_with(|c| {
        let aalen = c.members.iter().find(|m| m.ags.as_str() == broker::demo::AALEN).expect("aalen");
        let origin = aalen.providers.last().expect("the test provider").clone();
        *aalen_port.lock().expect("lock") = origin.as_str().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let addr: SocketAddr = origin.as_str().trim_start_matches("https://").parse().expect("addr");
        register_provider(c, broker::demo::HEIDENHEIM, addr);
    });
    let port = *aalen_port.lock().expect("lock");
    let mut d = example("heidenheim-parkhaus-belegung");
    d["identifier"] = json!("heidenheim-relay");
    d["distributions"] = json!([{ "mediaType": "application/json", "accessURL": format!("https://127.0.0.1:{port}/appointments") }]);
    let (status, body) = status_of(&b, "heidenheim-steward", "POST", "/v1/datasets", Some(d)).await;
    assert_eq!(status, 201, "{body}");
    let iri = "https://broker.kdr.example/datasets/heidenheim-relay";
    let policy = format!("{PREFIXES}<urn:kdr:relay> a odrl:Set ; odrl:permission [ odrl:target <{iri}> ; odrl:action odrl:use ] .");
    let (status, draft) = submit_policy(&b, "heidenheim-steward", "heidenheim-relay", &policy, "text/turtle").await;
    assert_eq!(status, 201, "{draft}");
    let (status, _) = review_policy(&b, "heidenheim-board", "heidenheim-relay", 1, "approve").await;
    assert_eq!(status, 200);
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/datasets/heidenheim-relay/data"))
        .query(&[("purpose", format!("{DPV}ImprovePublicServices"))])
        .expect("query")
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body = json(&mut resp).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/wrong-provider", "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("Maier") && !text.contains("127.0.0.1"),
        "no data, no address: {text}"
    );
}

#[actix_rt::test]
async fn repointing_an_approved_datasets_distribution_stops_sharing_until_approved_again() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, _, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200);
    let mut d = example(DATASET);
    d["distributions"] = json!([{ "mediaType": "application/json",
        "accessURL": format!("https://127.0.0.1:{}/garbage", provider.addr.port()) }]);
    let (status, body) = status_of(&b, "aalen-steward", "PUT", &format!("/v1/datasets/{DATASET}"), Some(d)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/distributions-changed", "{body}");
    assert!(body["decisionId"].is_string(), "the refusal is a recorded decision: {body}");
    // A board member approves a version for the new distributions: shared again.
    attach_approved(&b, DATASET, POLICY).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 502, "now fetched from the new address: {body}");
}

#[actix_rt::test]
async fn approving_distributions_other_than_those_the_board_saw_is_refused() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let resp = b
        .client("aalen-board")
        .get(b.url(&format!("/v1/datasets/{DATASET}")))
        .send()
        .await
        .expect("get");
    let seen = resp
        .headers()
        .get("x-distributions-digest")
        .and_then(|v| v.to_str().ok())
        .expect("the dataset names its distributions' digest")
        .to_owned();
    let (status, _) = submit_policy(&b, "aalen-steward", DATASET, POLICY, "text/turtle").await;
    assert_eq!(status, 201);
    // The steward re-points the dataset while the board member reads the draft.
    let mut d = example(DATASET);
    d["distributions"] = json!([{ "mediaType": "application/json",
        "accessURL": format!("https://127.0.0.1:{}/garbage", provider.addr.port()) }]);
    let (status, _) = status_of(&b, "aalen-steward", "PUT", &format!("/v1/datasets/{DATASET}"), Some(d)).await;
    assert_eq!(status, 200);
    let approve = format!("/v1/datasets/{DATASET}/policy/versions/1/approve");
    let (status, body) = status_of(&b, "aalen-board", "POST", &approve, Some(json!({ "distributions": seen }))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/distributions-changed");
}

#[actix_rt::test]
async fn one_member_cannot_take_every_data_request_slot() {
    let b = TestBroker::start_with(|c| {
        c.upstream.max_requests = 2;
        c.upstream.timeout = Duration::from_secs(3);
    });
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/slow", Some(POLICY)).await;
    let slow = request(&b, "heidenheim-system", "ImprovePublicServices");
    let more = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mine = request(&b, "heidenheim-steward", "ImprovePublicServices").await;
        let other = request(&b, "aalen-system", "ImprovePublicServices").await;
        (mine, other)
    };
    let (slow, (mine, other)) = tokio::join!(slow, more);
    assert_eq!(slow.0, 504, "{}", slow.1);
    assert_eq!(mine.0, 503, "Heidenheim holds its share: {}", mine.1);
    assert_ne!(other.0, 503, "Aalen still gets a slot: {}", other.1);
}

// ---- 3. Withdrawal leaves everything behind --------------------------------------------------

#[actix_rt::test]
async fn a_withdrawn_identifier_cannot_be_taken_over_with_its_policy_data_or_history() {
    let b = TestBroker::start();
    let mut d = example("aalen-kita-plaetze");
    d["distributions"] = json!([{ "mediaType": "text/csv", "accessURL": "hosted" }]);
    let (status, body) = status_of(&b, "aalen-steward", "POST", "/v1/datasets", Some(d.clone())).await;
    assert_eq!(status, 201, "{body}");
    let resp = b
        .client("aalen-steward")
        .put(b.url("/v1/datasets/aalen-kita-plaetze/hosted-data"))
        .insert_header(("Content-Type", "text/csv"))
        .send_body("kita,bezirk,plaetze\nSonnenschein,Innenstadt,42\n")
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
    let kita_policy = crate::exchange::KITA_POLICY;
    attach_approved(&b, "aalen-kita-plaetze", kita_policy).await;
    let sealed = b.state_dir().join("hosted").join("aalen-kita-plaetze.sealed");
    assert!(sealed.exists());
    let (status, body) = status_of(&b, "aalen-steward", "DELETE", "/v1/datasets/aalen-kita-plaetze", None).await;
    assert_eq!(status, 204, "{body}");
    assert!(!sealed.exists(), "the hosted data is deleted with the dataset");
    let ask = "ASK { <https://broker.kdr.example/datasets/aalen-kita-plaetze> <http://www.w3.org/ns/odrl/2/hasPolicy> ?p }";
    assert!(
        !sparql_ask(&b, "heidenheim-system", ask).await,
        "no policy in force for a withdrawn dataset"
    );
    // Heidenheim takes the identifier over, with hosted data of its own: refused.
    let mut takeover = d.clone();
    takeover["publisher"] = json!(broker::demo::HEIDENHEIM);
    for (who, body) in [("heidenheim-steward", takeover), ("aalen-steward", d)] {
        let (status, answer) = status_of(&b, who, "POST", "/v1/datasets", Some(body)).await;
        assert_eq!(status, 410, "{who}: {answer}");
        assert_eq!(answer["type"], "https://w3id.org/kdr/problems/dataset-withdrawn");
    }
    for path in ["", "/policy", "/policy/versions"] {
        let path = format!("/v1/datasets/aalen-kita-plaetze{path}");
        let (status, body) = status_of(&b, "heidenheim-system", "GET", &path, None).await;
        assert_eq!(status, 410, "{path}: {body}");
    }
    let (status, body) = status_of(&b, "heidenheim-system", "GET", "/v1/datasets/never-was/policy/versions", None).await;
    assert_eq!(status, 404, "{body}");
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/datasets/aalen-kita-plaetze/data"))
        .query(&[("purpose", format!("{DPV}PublicBenefit"))])
        .expect("query")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 410, "{}", json(&mut resp).await);
}

// ---- 4. Providers trust every member certificate ---------------------------------------------

#[actix_rt::test]
async fn members_cannot_read_a_providers_raw_data_past_the_broker() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    for who in [
        "heidenheim-system",
        "heidenheim-steward",
        "heidenheim-board",
        "aalen-system",
        "aalen-board",
    ] {
        let got = get_over_tls(provider.addr, client_config(&b.pki, who), "/appointments").await;
        assert!(got.is_err(), "{who} must be refused by the provider, got {got:?}");
    }
    // The broker itself is admitted.
    let status = get_over_tls(provider.addr, client_config(&b.pki, "broker"), "/appointments")
        .await
        .expect("the broker is admitted");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

// ---- 5. Unenforceable duties fail open ---------------------------------------------------------

#[actix_rt::test]
async fn a_policy_with_a_duty_the_broker_cannot_carry_out_is_refused_at_submission() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let anonymize = format!(
        "{PREFIXES}<urn:kdr:anon> a odrl:Set ; odrl:permission [ odrl:target <{DATASET_IRI}> ; odrl:action odrl:use ; \
         odrl:duty [ odrl:action odrl:anonymize ] ] ."
    );
    let (status, body) = submit_policy(&b, "aalen-steward", DATASET, &anonymize, "text/turtle").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("anonymize")), "{body}");
    let recipient = format!(
        "{PREFIXES}<urn:kdr:rec> a odrl:Set ; odrl:conflict odrl:prohibit ; \
         odrl:permission [ odrl:target <{DATASET_IRI}> ; odrl:action odrl:use ] ; \
         odrl:prohibition [ odrl:target <{DATASET_IRI}> ; odrl:action odrl:use ; odrl:constraint [ \
         odrl:leftOperand odrl:recipient ; odrl:operator odrl:eq ; odrl:rightOperand <urn:kdr:press> ] ] ."
    );
    let (status, body) = submit_policy(&b, "aalen-steward", DATASET, &recipient, "text/turtle").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("recipient")), "{body}");
}

// ---- 6. Revocation bypassed by resumption and kept-alive connections --------------------------

#[actix_rt::test]
async fn a_revoked_certificate_cannot_resume_its_tls_13_session() {
    let b = TestBroker::start();
    let config = b.client_config("revoked");
    let first = raw_request(b.addr, config.clone()).await.expect("accepted before revocation");
    assert!(first.contains("200"), "{first}");
    revoke(&b, "revoked");
    let second = raw_request(b.addr, config).await;
    assert!(second.is_err(), "a resumed session must not get past revocation: {second:?}");
}

#[actix_rt::test]
async fn a_revoked_certificate_cannot_resume_its_tls_12_session() {
    let b = TestBroker::start();
    let config = tls12_client(&b, "revoked");
    let first = raw_request(b.addr, config.clone()).await.expect("accepted before revocation");
    assert!(first.contains("200"), "{first}");
    revoke(&b, "revoked");
    let second = raw_request(b.addr, config).await;
    assert!(second.is_err(), "a resumed session must not get past revocation: {second:?}");
}

#[actix_rt::test]
async fn a_revoked_certificate_is_refused_on_its_kept_alive_connection() {
    let b = TestBroker::start();
    let mut conn = KeptAlive::open(b.addr, b.client_config("revoked")).await;
    assert_eq!(conn.get("/v1/whoami").await.0, 200);
    revoke(&b, "revoked");
    let (status, body) = conn.get("/v1/whoami").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("certificate-refused") && body.contains("revoked"), "{body}");
}

#[actix_rt::test]
async fn an_expired_certificate_is_refused_on_its_kept_alive_connection() {
    let b = TestBroker::start();
    let ca = b.ca();
    let now = time::OffsetDateTime::now_utc();
    let mut spec = broker::pki::MemberCertSpec::valid_for_days(
        "Kurzlebig",
        "Stadt Heidenheim an der Brenz",
        broker::demo::HEIDENHEIM.parse().expect("ags"),
        broker::identity::Role::System,
        1,
    );
    // Expires within the connection's keep-alive time (actix closes idle connections after 5 s).
    spec.not_after = now + time::Duration::seconds(2);
    ca.issue_member(&spec)
        .expect("issue")
        .write(&b.pki.dir, "short-lived")
        .expect("write");
    let mut conn = KeptAlive::open(b.addr, b.client_config("short-lived")).await;
    assert_eq!(conn.get("/v1/whoami").await.0, 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, body) = conn.get("/v1/whoami").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");
}

// ---- 7. One small policy kills the broker ------------------------------------------------------

#[actix_rt::test]
async fn a_self_referential_policy_gets_an_answer_and_the_broker_stays_up() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let permission = |constraint: &str| {
        format!(
            "{PREFIXES}<urn:kdr:bomb> a odrl:Set ; odrl:permission [ odrl:target <{DATASET_IRI}> ; odrl:action odrl:use ; \
             odrl:constraint {constraint} ] .\n"
        )
    };
    let deep = (0..200).fold(
        "[ odrl:leftOperand odrl:count ; odrl:operator odrl:lt ; odrl:rightOperand \"3\"^^xsd:integer ]".to_owned(),
        |inner, _| format!("[ odrl:and ( {inner} ) ]"),
    );
    let mut doubling = String::new();
    for i in 0..40 {
        doubling.push_str(&format!("_:d{i} odrl:and ( _:d{} _:d{} ) .\n", i + 1, i + 1));
    }
    doubling.push_str("_:d40 odrl:leftOperand odrl:count ; odrl:operator odrl:lt ; odrl:rightOperand \"3\"^^xsd:integer .\n");
    let bombs = [
        (
            "a constraint that is its own operand",
            format!("{}_:c odrl:and _:c .\n", permission("_:c")),
        ),
        (
            "a list whose tail points back",
            format!(
                "{}_:c odrl:and _:l . _:l <http://www.w3.org/1999/02/22-rdf-syntax-ns#first> _:c ; <http://www.w3.org/1999/02/22-rdf-syntax-ns#rest> _:l .\n",
                permission("_:c")
            ),
        ),
        ("constraints nested 200 deep", permission(&deep)),
        ("a constraint doubling 40 times", format!("{}{doubling}", permission("_:d0"))),
        (
            "a megabyte of Turtle",
            format!("{}# {}\n", small_policy("urn:kdr:big"), "x".repeat(1 << 20)),
        ),
    ];
    for (what, doc) in bombs {
        let (status, body) = submit_policy(&b, "aalen-steward", DATASET, &doc, "text/turtle").await;
        assert!(status == 422 || status == 413, "{what}: {status} {body}");
        let (status, _, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{what}: the broker still serves");
    }
}

// ---- Reports are scoped to the controller ----------------------------------------------------

#[actix_rt::test]
async fn a_board_reads_only_its_own_citys_usage_and_records_of_processing() {
    let b = TestBroker::start_with(|c| {
        c.members.push(broker::catalog::Member {
            ags: broker::demo::NON_MEMBER.parse().expect("ags"),
            organisation: "Landeshauptstadt Stuttgart".into(),
            roles: vec![broker::identity::Role::System],
            contact: None,
            providers: Vec::new(),
            contributor: None,
        });
    });
    let provider = b.start_provider();
    let stuttgart = POLICY.replace("municipalityKey/08135019", "municipalityKey/08111000");
    set_up(&b, provider.addr.port(), "/appointments", Some(&stuttgart)).await;
    let (status, _, _) = request(&b, "non-member", "ImprovePublicServices").await;
    assert_eq!(status, 200, "Stuttgart (now a member) uses Aalen's data");
    let usage = |who: &'static str| {
        let b = &b;
        async move { status_of(b, who, "GET", "/v1/reports/usage", None).await }
    };
    let (status, aalen) = usage("aalen-board").await;
    assert_eq!(status, 200);
    assert!(
        aalen.to_string().contains("08111000"),
        "Aalen's board sees use of Aalen's data: {aalen}"
    );
    let (status, heidenheim) = usage("heidenheim-board").await;
    assert_eq!(status, 200);
    assert_eq!(
        heidenheim,
        json!([]),
        "Heidenheim's board sees nothing of Aalen and Stuttgart: {heidenheim}"
    );
    let (status, records) = status_of(&b, "heidenheim-board", "GET", "/v1/reports/processing", None).await;
    assert_eq!(status, 200);
    assert!(
        records
            .as_array()
            .is_some_and(|r| r.iter().all(|p| p["controller"] == broker::demo::HEIDENHEIM)),
        "only Heidenheim's own records of processing: {records}"
    );
    assert!(!records.to_string().contains(DATASET));
}

// ---- Members have a lifecycle ------------------------------------------------------------------

#[actix_rt::test]
async fn a_member_removed_from_the_configuration_is_locked_out_and_the_removal_is_recorded() {
    let mut b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    assert_eq!(request(&b, "heidenheim-system", "ImprovePublicServices").await.0, 200);
    b.config.members.retain(|m| m.ags.as_str() != broker::demo::HEIDENHEIM);
    b.restart();
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("not a member")), "{body}");
    assert!(
        admin_actions(&b).contains(&("member-removed".to_owned(), broker::demo::HEIDENHEIM.to_owned())),
        "the removal is in the audit trail"
    );
    // Aalen leaves too: its datasets are no longer shared with anyone.
    b.config.members.retain(|m| m.ags.as_str() != broker::demo::AALEN);
    b.config.members.push(heidenheim_again());
    b.restart();
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/publisher-not-member", "{body}");
}

fn heidenheim_again() -> broker::catalog::Member {
    broker::demo::demo_members()
        .into_iter()
        .find(|m| m.ags.as_str() == broker::demo::HEIDENHEIM)
        .expect("heidenheim")
}

// ---- No data values in errors or records -------------------------------------------------------

#[actix_rt::test]
async fn a_providers_malformed_data_echoes_no_value_and_no_address() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/garbage", Some(POLICY)).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 502, "{body}");
    let text = body.to_string();
    assert!(!text.contains("Erika"), "no value of the provider's data: {text}");
    assert!(!text.contains(&provider.addr.port().to_string()), "no provider address: {text}");
    let log = serde_json::to_string(&decisions(&b)).expect("json");
    assert!(!log.contains("Erika"), "no value in the decision record: {log}");
}

// ---- Helpers -------------------------------------------------------------------------------

fn revoke(b: &TestBroker, who: &str) {
    let serial = broker::pki::serial_of_cert_file(&b.pki.cert(who)).expect("serial");
    b.ca().revoke(&serial).expect("revoke");
}

/// A client that speaks only TLS 1.2 (session IDs instead of tickets).
fn tls12_client(b: &TestBroker, who: &str) -> rustls::ClientConfig {
    let certs = broker::tls::load_certs(&b.pki.cert(who), "client certificate").expect("cert");
    let key = broker::tls::load_key(&b.pki.key(who)).expect("key");
    rustls::ClientConfig::builder_with_provider(Arc::new(broker::tls::bsi_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_root_certificates(broker::tls::root_store(&b.pki.ca_cert()).expect("roots"))
        .with_client_auth_cert(certs, key)
        .expect("client auth")
}

/// `GET path` over a fresh TLS connection: the status line, or the TLS error.
async fn get_over_tls(addr: SocketAddr, config: rustls::ClientConfig, path: &str) -> Result<String, String> {
    let mut conn = KeptAlive::try_open(addr, config).await?;
    conn.write(path).await?;
    let (status, _) = conn.read().await?;
    Ok(format!("HTTP/1.1 {status}"))
}

/// One TLS connection, several requests on it.
struct KeptAlive {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buf: Vec<u8>,
}

impl KeptAlive {
    async fn open(addr: SocketAddr, config: rustls::ClientConfig) -> Self {
        Self::try_open(addr, config).await.expect("connect")
    }

    async fn try_open(addr: SocketAddr, config: rustls::ClientConfig) -> Result<Self, String> {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        Ok(Self { tls, buf: Vec::new() })
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        self.write(path).await.expect("write");
        self.read().await.expect("read")
    }

    async fn write(&mut self, path: &str) -> Result<(), String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())
    }

    /// One response: its status and its body (by `Content-Length`).
    async fn read(&mut self) -> Result<(u16, String), String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    self.fill().await?;
                }
                let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + length]).into_owned();
                self.buf.drain(..end + 4 + length);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        let n = self.tls.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

// ---- Imports cannot speak for the broker -------------------------------------------------------

#[actix_rt::test]
async fn an_import_cannot_forge_another_citys_dataset_a_member_or_where_data_is_fetched_from() {
    let b = TestBroker::start();
    let resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .send_json(&example("aalen-kita-plaetze"))
        .await;
    assert_eq!(resp.expect("register").status(), 201);
    let dump = r#"
        @prefix dcat: <http://www.w3.org/ns/dcat#> . @prefix dct: <http://purl.org/dc/terms/> .
        @prefix foaf: <http://xmlns.com/foaf/0.1/> . @prefix kdr: <https://w3id.org/kdr/> .
        <https://portal.example/d/1> a dcat:Dataset ; dct:identifier "heidenheim-import" ; dct:title "Import"@de ;
            dct:description "Ein Import"@de ;
            dct:relation <https://broker.kdr.example/datasets/aalen-kita-plaetze>, <https://broker.kdr.example/members/08136088> ;
            kdr:importedFrom "elsewhere" ;
            dcat:distribution <https://portal.example/d/1/csv> .
        <https://broker.kdr.example/datasets/aalen-kita-plaetze> dct:title "Gefälscht"@de .
        <https://broker.kdr.example/members/08136088> foaf:name "Gefälscht" .
        <https://portal.example/d/1/csv> a dcat:Distribution ; dcat:accessURL <https://portal.example/1.csv> ;
            dct:license <http://dcat-ap.de/def/licenses/cc-zero> ;
            kdr:fetchFrom <https://127.0.0.1:9441/appointments> ; kdr:hostedByBroker true .
    "#;
    let (status, report) = crate::catalog::import(&b, "heidenheim-steward", dump.as_bytes().to_vec(), "text/turtle", Some("portal")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], json!(["heidenheim-import"]), "{report}");
    let kinds: Vec<&str> = report["repaired"]
        .as_array()
        .expect("repaired")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"broker-iri") && kinds.contains(&"broker-term"), "{report}");
    for query in [
        "ASK { ?s ?p ?o FILTER(CONTAINS(STR(?o), 'Gefälscht')) }",
        "ASK { ?s <https://w3id.org/kdr/fetchFrom> ?o }",
        "ASK { <https://broker.kdr.example/datasets/heidenheim-import/distributions/0> <https://w3id.org/kdr/hostedByBroker> ?o }",
        "ASK { ?s <https://w3id.org/kdr/importedFrom> 'elsewhere' }",
    ] {
        assert!(!sparql_ask(&b, "aalen-board", query).await, "{query}");
    }
    // Its distribution is what the portal says: fetched from nowhere, hosted by nobody.
    let mut resp = b
        .client("heidenheim-steward")
        .get(b.url("/v1/datasets/heidenheim-import"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        json(&mut resp).await["distributions"][0]["accessURL"],
        "https://portal.example/1.csv"
    );
}

#[actix_rt::test]
async fn an_export_that_multiplies_itself_through_a_shared_node_is_refused_per_dataset() {
    let b = TestBroker::start();
    // Two datasets link to one node with more statements than one dataset may carry: copied into
    // each, it would double; at 10,000 datasets, multiply by 10,000.
    let mut dump = String::from(
        "@prefix dcat: <http://www.w3.org/ns/dcat#> . @prefix dct: <http://purl.org/dc/terms/> .\n\
         <https://portal.example/d/a> a dcat:Dataset ; dct:identifier \"heavy-a\" ; dct:relation <https://portal.example/shared> .\n\
         <https://portal.example/d/b> a dcat:Dataset ; dct:identifier \"heavy-b\" ; dct:relation <https://portal.example/shared> .\n\
         <https://portal.example/d/c> a dcat:Dataset ; dct:identifier \"light-c\" ; dct:title \"Leicht\" ;\n\
         dct:description \"Leicht beschrieben\" .\n",
    );
    for i in 0..broker::catalog::import::MAX_STATEMENTS {
        dump.push_str(&format!("<https://portal.example/shared> dct:subject \"{i}\" .\n"));
    }
    let quads = b.quad_count();
    let (status, report) = crate::catalog::import(&b, "heidenheim-steward", dump.into_bytes(), "text/turtle", Some("portal")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], json!(["light-c"]), "{report}");
    let refused: Vec<&str> = report["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(refused.len(), 2, "{report}");
    assert!(refused.iter().all(|r| r.contains("more than 20000 statements")), "{report}");
    assert!(b.quad_count() < quads + 100, "nothing of the heavy ones was written");
}
