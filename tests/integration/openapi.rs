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
        let concrete = path
            .replace("{id}", "no-such-dataset")
            .replace("{ags}", "08136088")
            .replace("{version}", "1");
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
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET, POST"));
    assert_eq!(json(&mut resp).await["type"], "https://w3id.org/kdr/problems/method-not-allowed");
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
        let mut on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("schema JSON");
        let served = &doc["components"]["schemas"][component];
        // The served component is the file made self-contained: no $id or $schema, references
        // rewritten to component paths; everything else as in the file.
        strip_and_drop_refs(&mut on_disk);
        let mut served_plain = served.clone();
        strip_and_drop_refs(&mut served_plain);
        assert_eq!(served_plain, on_disk, "{name} differs from the served component");
        files += 1;
    }
    assert!(files >= 4);
    // Every reference in the document resolves inside it: a code generator needs nothing else.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} points outside the document"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let body = &doc["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/dataset");
    let put = &doc["paths"]["/v1/datasets/{id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(put, "#/components/schemas/dataset");
}

fn strip_and_drop_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("$id");
            map.remove("$schema");
            map.remove("$ref");
            map.values_mut().for_each(strip_and_drop_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_and_drop_refs),
        _ => {}
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
