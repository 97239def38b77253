//! The served OpenAPI document matches the routes that exist and the schemas in `schemas/`.

use serde_json::Value;

use crate::support::{TestBroker, json};

#[actix_rt::test]
async fn every_documented_operation_exists_and_unknown_routes_are_problems() {
    let b = TestBroker::start();
    let client = b.client("aalen-steward");
    let mut resp = client.get(b.url("/v1/openapi.json")).send().await.expect("openapi");
    assert_eq!(resp.status(), 200);
    let doc = json(&mut resp).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, ops) in paths {
        let concrete = path.replace("{id}", "no-such-dataset").replace("{ags}", "08136088");
        for method in ops.as_object().expect("ops").keys() {
            let req = match method.as_str() {
                "get" => client.get(b.url(&concrete)),
                "post" => client.post(b.url(&concrete)),
                "put" => client.put(b.url(&concrete)),
                "delete" => client.delete(b.url(&concrete)),
                other => panic!("unexpected method {other}"),
            };
            let mut resp = req.send().await.expect("send");
            let body = resp.body().await.expect("body");
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("problems/no-such-route"),
                "{method} {path} is documented but not routed: {text}"
            );
            operations += 1;
        }
    }
    assert!(operations >= 11, "only {operations} operations documented");
    let mut resp = client.get(b.url("/v1/nothing-here")).send().await.expect("send");
    assert_eq!(resp.status(), 404);
    assert_eq!(json(&mut resp).await["type"], "https://w3id.org/kdr/problems/no-such-route");
    let mut resp = client.patch(b.url("/v1/datasets")).send().await.expect("send");
    assert_eq!(json(&mut resp).await["type"], "https://w3id.org/kdr/problems/no-such-route");
}

#[actix_rt::test]
async fn request_bodies_are_the_schemas_of_the_schemas_directory() {
    let b = TestBroker::start();
    let mut resp = b
        .client("aalen-system")
        .get(b.url("/v1/openapi.json"))
        .send()
        .await
        .expect("openapi");
    let doc = json(&mut resp).await;
    let dir = format!("{}/../schemas", env!("CARGO_MANIFEST_DIR"));
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("schemas dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        let Some(component) = name.strip_suffix(".schema.json") else {
            continue;
        };
        let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("schema JSON");
        assert_eq!(
            doc["components"]["schemas"][component], on_disk,
            "{name} differs from the served component"
        );
        files += 1;
    }
    assert!(files >= 4);
    let body = &doc["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/dataset");
    let put = &doc["paths"]["/v1/datasets/{id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(put, "#/components/schemas/dataset");
}
