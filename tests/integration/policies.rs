//! Usage policies attached to datasets: compiled on submission, stored in the graph with their
//! source (`odrl:hasPolicy`), versioned, explained.

use serde_json::Value;

use crate::support::{TestBroker, example, json, review_policy, sparql_ask, submit_policy};

const POLICY: &str = include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl");
const DATASET: &str = "aalen-buergerbuero-termine";

async fn register(b: &TestBroker) {
    let resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .send_json(&example(DATASET))
        .await
        .expect("post");
    assert_eq!(resp.status(), 201);
}

async fn attach(b: &TestBroker, who: &str, turtle: &str) -> (u16, Value) {
    attach_as(b, who, turtle, "text/turtle").await
}

/// Submits as `who`; a draft that was accepted is approved by Aalen's board member. Returns the
/// submission's status and the approved version (or the submission's problem).
async fn attach_as(b: &TestBroker, who: &str, body: &str, media_type: &str) -> (u16, Value) {
    let (status, draft) = submit_policy(b, who, DATASET, body, media_type).await;
    if status != 201 {
        return (status, draft);
    }
    let n = draft["version"].as_u64().expect("version");
    let (review, approved) = review_policy(b, "aalen-board", DATASET, n, "approve").await;
    assert_eq!(review, 200, "{approved}");
    (status, approved)
}

async fn get(b: &TestBroker, path: &str) -> (u16, Value) {
    let mut resp = b.client("heidenheim-system").get(b.url(path)).send().await.expect("get");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

#[actix_rt::test]
async fn a_dataset_without_policy_has_none_and_says_it_is_not_shared() {
    let b = TestBroker::start();
    register(&b).await;
    let (status, body) = get(&b, &format!("/v1/datasets/{DATASET}/policy")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"].as_str().map(|t| t.ends_with("no-policy")), Some(true), "{body}");
}

#[actix_rt::test]
async fn aalen_steward_attaches_a_policy_that_sparql_and_readers_see() {
    let b = TestBroker::start();
    register(&b).await;
    let (status, body) = attach(&b, "aalen-steward", POLICY).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 1);
    assert!(body["moduleHash"].as_str().is_some_and(|h| h.starts_with("sha256:")), "{body}");
    assert!(
        body["explanation"]["de"]
            .as_str()
            .is_some_and(|t| t.contains("Gruppen mit weniger als 5")),
        "{body}"
    );

    let ask = "PREFIX odrl: <http://www.w3.org/ns/odrl/2/> PREFIX dpv: <https://w3id.org/dpv#> \
        ASK { ?d odrl:hasPolicy ?p . ?p odrl:permission ?r . ?r odrl:constraint ?c . ?c odrl:rightOperand dpv:ImprovePublicServices }";
    assert!(
        sparql_ask(&b, "heidenheim-board", ask).await,
        "the active policy's rules are in the graph"
    );

    // A second version becomes the active one; the first stays readable.
    let (status, body) = attach(&b, "aalen-steward", &POLICY.replace("\"100\"", "\"50\"")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 2);
    let (_, versions) = get(&b, &format!("/v1/datasets/{DATASET}/policy/versions")).await;
    let versions = versions.as_array().expect("array");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["active"], false);
    assert_eq!(versions[1]["active"], true);
    assert_ne!(versions[0]["moduleHash"], versions[1]["moduleHash"]);
    let (status, active) = get(&b, &format!("/v1/datasets/{DATASET}/policy")).await;
    assert_eq!(status, 200);
    assert!(active["source"].as_str().is_some_and(|s| s.contains("\"50\"")), "{active}");
}

#[actix_rt::test]
async fn only_the_publishers_steward_may_attach_a_policy() {
    let b = TestBroker::start();
    register(&b).await;
    for who in ["heidenheim-steward", "aalen-system", "aalen-board"] {
        let (status, body) = attach(&b, who, POLICY).await;
        assert_eq!(status, 403, "{who}: {body}");
    }
    let (status, _) = get(&b, &format!("/v1/datasets/{DATASET}/policy")).await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn a_policy_that_does_not_compile_is_refused_and_nothing_is_stored() {
    let b = TestBroker::start();
    register(&b).await;
    let before = b.quad_count();
    let (status, body) = attach(&b, "aalen-steward", &POLICY.replace("odrl:isA", "odrl:isTeleportedTo")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("isTeleportedTo")), "{body}");
    let (status, body) = attach(
        &b,
        "aalen-steward",
        &POLICY.replace("datasets/aalen-buergerbuero-termine", "datasets/other"),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("datasets/other")), "{body}");
    let (status, body) = attach(&b, "aalen-steward", "this is not turtle").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(b.quad_count(), before, "nothing half-written");
}

#[actix_rt::test]
async fn a_json_ld_policy_is_attached_like_turtle_and_other_media_types_are_refused() {
    const JSONLD: &str = include_str!("../../policies/examples/aalen-buergerbuero-termine.jsonld");
    let b = TestBroker::start();
    register(&b).await;
    let (status, body) = attach_as(&b, "aalen-steward", POLICY, "application/xml").await;
    assert_eq!(status, 415, "{body}");
    let (status, json_ld) = attach_as(&b, "aalen-steward", JSONLD, "application/ld+json").await;
    assert_eq!(status, 201, "{json_ld}");
    assert_eq!(json_ld["mediaType"], "application/ld+json");
    let (status, turtle) = attach(&b, "aalen-steward", POLICY).await;
    assert_eq!(status, 201, "{turtle}");
    assert_eq!(
        json_ld["moduleHash"], turtle["moduleHash"],
        "the same policy in either syntax compiles to the same module"
    );
    assert_eq!(json_ld["explanation"], turtle["explanation"]);
}
