//! Dataset registration: who may write, what is stored, and how bad input is refused.

use serde_json::{Value, json};

use crate::support::{TestBroker, example, json, sparql_ask};

const SELECT_TITLES: &str = "PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/> \
    SELECT ?id ?publisher WHERE { ?d a dcat:Dataset ; dct:identifier ?id ; dct:publisher ?publisher }";

async fn sparql_ids(b: &TestBroker) -> Vec<String> {
    let mut resp = b
        .client("heidenheim-system")
        .post(b.url("/v1/sparql"))
        .insert_header(("Content-Type", "application/sparql-query"))
        .insert_header(("Accept", "application/sparql-results+json"))
        .send_body(SELECT_TITLES)
        .await
        .expect("sparql");
    assert_eq!(resp.status(), 200);
    let body = json(&mut resp).await;
    let mut ids: Vec<String> = body["results"]["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .map(|b| b["id"]["value"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn register(b: &TestBroker, who: &str, body: &Value) -> (u16, Value) {
    let mut resp = b.client(who).post(b.url("/v1/datasets")).send_json(body).await.expect("post");
    let status = resp.status().as_u16();
    let body = json(&mut resp).await;
    (status, body)
}

#[actix_rt::test]
async fn aalen_steward_registers_a_dataset_and_sparql_finds_it() {
    let b = TestBroker::start();
    let (status, body) = register(&b, "aalen-steward", &example("aalen-buergerbuero-termine")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["publisher"], "08136088");
    assert_eq!(sparql_ids(&b).await, vec!["aalen-buergerbuero-termine"]);

    // Stored as DCAT-AP.de: publisher is the member, political geocoding as the spatial
    // coverage, the broker's exchange API as the access URL (see the catalog tests).
    let ask = "PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/> PREFIX dcatde: <http://dcat-ap.de/def/dcatde/> PREFIX foaf: <http://xmlns.com/foaf/0.1/> \
        ASK { ?d a dcat:Dataset ; dct:publisher ?m ; dcat:theme <http://publications.europa.eu/resource/authority/data-theme/GOVE> ; \
        dct:spatial <http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08136088> ; \
        dcat:distribution [ dcat:accessURL <https://broker.kdr.example/v1/datasets/aalen-buergerbuero-termine/data> ] . ?m foaf:name \"Stadt Aalen\" }";
    assert!(sparql_ask(&b, "aalen-board", ask).await);

    // Read back through the API: what went in comes out.
    let mut resp = b
        .client("aalen-system")
        .get(b.url("/v1/datasets/aalen-buergerbuero-termine"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    let got = json(&mut resp).await;
    let sent = example("aalen-buergerbuero-termine");
    for key in ["title", "description", "temporal", "contactPoint", "distributions", "accessRights"] {
        assert_eq!(got[key], sent[key], "{key}");
    }
}

#[actix_rt::test]
async fn heidenheim_steward_cannot_change_or_withdraw_aalens_dataset() {
    let b = TestBroker::start();
    assert_eq!(register(&b, "aalen-steward", &example("aalen-kita-plaetze")).await.0, 201);
    let before = b.quad_count();
    let mut changed = example("aalen-kita-plaetze");
    changed["title"] = json!({"de": "Übernommen"});
    let client = b.client("heidenheim-steward");
    let mut put = client
        .put(b.url("/v1/datasets/aalen-kita-plaetze"))
        .send_json(&changed)
        .await
        .expect("put");
    assert_eq!(put.status(), 403);
    assert!(
        json(&mut put).await["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("published by 08136088")
    );
    let del = client
        .delete(b.url("/v1/datasets/aalen-kita-plaetze"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 403);
    assert_eq!(b.quad_count(), before);

    // Aalen's own steward can.
    let put = b
        .client("aalen-steward")
        .put(b.url("/v1/datasets/aalen-kita-plaetze"))
        .send_json(&changed)
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let del = b
        .client("aalen-steward")
        .delete(b.url("/v1/datasets/aalen-kita-plaetze"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 204);
    assert!(sparql_ids(&b).await.is_empty());
}

#[actix_rt::test]
async fn system_and_board_certificates_cannot_register() {
    let b = TestBroker::start();
    let before = b.quad_count();
    for who in ["aalen-system", "aalen-board"] {
        let (status, body) = register(&b, who, &example("aalen-kita-plaetze")).await;
        assert_eq!(status, 403, "{who}: {body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains("steward"), "{body}");
    }
    assert_eq!(b.quad_count(), before);
}

#[actix_rt::test]
async fn steward_cannot_register_for_another_city() {
    let b = TestBroker::start();
    let mut body = example("heidenheim-parkhaus-belegung");
    body["publisher"] = json!("08135019");
    let (status, _) = register(&b, "aalen-steward", &body).await;
    assert_eq!(status, 403);
}

#[actix_rt::test]
async fn schema_violations_are_named_by_json_pointer_and_nothing_is_stored() {
    let b = TestBroker::start();
    let before = b.quad_count();
    let mut body = example("aalen-kita-plaetze");
    body.as_object_mut().expect("object").remove("title");
    body["themes"] = json!(["EDUC", "SPORTS"]);
    body["temporal"]["start"] = json!("2024-13-45");
    body["distributions"][0]["accessURL"] = json!("ftp://example.org/x.csv");
    body["colour"] = json!("blue");
    let (status, problem) = register(&b, "aalen-steward", &body).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "https://w3id.org/kdr/problems/invalid-dataset");
    let pointers: Vec<&str> = problem["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["pointer"].as_str())
        .collect();
    for expected in ["/title", "/themes/1", "/temporal/start", "/distributions/0/accessURL", ""] {
        assert!(pointers.contains(&expected), "missing {expected:?} in {pointers:?}");
    }
    assert_eq!(b.quad_count(), before);
}

#[actix_rt::test]
async fn unknown_theme_is_refused_naming_it() {
    let b = TestBroker::start();
    let mut body = example("aalen-kita-plaetze");
    body["themes"] = json!(["UNKNOWN"]);
    let (status, problem) = register(&b, "aalen-steward", &body).await;
    assert_eq!(status, 422);
    let v = &problem["violations"][0];
    assert_eq!(v["pointer"], "/themes/0");
    assert!(v["message"].as_str().unwrap_or_default().contains("UNKNOWN"), "{v}");
}

#[actix_rt::test]
async fn malformed_json_is_400_with_position() {
    let b = TestBroker::start();
    let before = b.quad_count();
    let mut resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .insert_header(("Content-Type", "application/json"))
        .send_body("{\"title\": {\"de\": \"x\"},, }")
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    let problem = json(&mut resp).await;
    assert_eq!(problem["type"], "https://w3id.org/kdr/problems/malformed-json");
    assert!(
        problem["detail"].as_str().unwrap_or_default().contains("line 1, column"),
        "{problem}"
    );
    assert_eq!(b.quad_count(), before);
}

#[actix_rt::test]
async fn oversized_body_is_413_and_the_broker_stays_up() {
    let b = TestBroker::start();
    let before = b.quad_count();
    let mut body = example("aalen-kita-plaetze");
    body["description"]["de"] = json!("x".repeat(100_000));
    let (status, problem) = register(&b, "aalen-steward", &body).await;
    assert_eq!(status, 413, "{problem}");
    assert_eq!(problem["type"], "https://w3id.org/kdr/problems/body-too-large");
    assert_eq!(b.quad_count(), before);
    let (status, _) = register(&b, "aalen-steward", &example("aalen-kita-plaetze")).await;
    assert_eq!(status, 201);
}

#[actix_rt::test]
async fn duplicate_identifier_is_409_and_the_original_is_kept() {
    let b = TestBroker::start();
    assert_eq!(register(&b, "aalen-steward", &example("aalen-kita-plaetze")).await.0, 201);
    let mut again = example("aalen-kita-plaetze");
    again["title"] = json!({"de": "Anders"});
    assert_eq!(register(&b, "aalen-steward", &again).await.0, 409);
    let mut resp = b
        .client("aalen-system")
        .get(b.url("/v1/datasets/aalen-kita-plaetze"))
        .send()
        .await
        .expect("get");
    assert_eq!(json(&mut resp).await["title"]["de"], "Kita-Plätze nach Stadtbezirk");
}

#[actix_rt::test]
async fn list_filters_by_keyword_theme_and_publisher() {
    let b = TestBroker::start();
    for (who, name) in [
        ("aalen-steward", "aalen-buergerbuero-termine"),
        ("aalen-steward", "aalen-kita-plaetze"),
        ("heidenheim-steward", "heidenheim-parkhaus-belegung"),
        ("heidenheim-steward", "heidenheim-einwohner-stadtteile"),
    ] {
        assert_eq!(register(&b, who, &example(name)).await.0, 201, "{name}");
    }
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|d| d["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let client = b.client("heidenheim-board");
    let mut all = client.get(b.url("/v1/datasets")).send().await.expect("list");
    assert_eq!(ids(json(&mut all).await).len(), 4);
    let mut aalen = client.get(b.url("/v1/datasets?publisher=08136088")).send().await.expect("list");
    assert_eq!(
        ids(json(&mut aalen).await),
        vec!["aalen-buergerbuero-termine", "aalen-kita-plaetze"]
    );
    let mut soci = client
        .get(b.url("/v1/datasets?theme=SOCI&publisher=08135019"))
        .send()
        .await
        .expect("list");
    assert_eq!(ids(json(&mut soci).await), vec!["heidenheim-einwohner-stadtteile"]);
    let mut kw = client.get(b.url("/v1/datasets?keyword=parken")).send().await.expect("list");
    assert_eq!(ids(json(&mut kw).await), vec!["heidenheim-parkhaus-belegung"]);
    let bad = client.get(b.url("/v1/datasets?publisher=Aalen")).send().await.expect("list");
    assert_eq!(bad.status(), 400);
    let missing = client.get(b.url("/v1/datasets/does-not-exist")).send().await.expect("get");
    assert_eq!(missing.status(), 404);
}
