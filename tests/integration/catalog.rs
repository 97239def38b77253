//! Catalog interoperability: what is stored is DCAT-AP.de 3.0, dataset IRIs dereference, the
//! public catalog is harvestable page by page, and nothing the broker keeps to itself (a
//! provider's address) reaches a member or the public.

use std::collections::BTreeSet;

use broker::catalog::{DatasetCatalog, DatasetDescription};
use oxigraph::io::{JsonLdProfileSet, RdfFormat, RdfParser};
use oxigraph::model::{Quad, Term};
use serde_json::{Value, json};

use crate::support::{TestBroker, example, json, public_client, sparql_ask};

const PREFIXES: &str = "PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/> \
    PREFIX dcatde: <http://dcat-ap.de/def/dcatde/> PREFIX kdr: <https://w3id.org/kdr/> ";
const TERMINE: &str = "aalen-buergerbuero-termine";
const DCAT_DATASET: &str = "http://www.w3.org/ns/dcat#Dataset";

async fn register(b: &TestBroker, who: &str, body: &Value) -> (u16, Value) {
    let mut resp = b.client(who).post(b.url("/v1/datasets")).send_json(body).await.expect("post");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

fn parse(bytes: &[u8], format: RdfFormat) -> Vec<Quad> {
    RdfParser::from_format(format)
        .for_slice(bytes)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("not {format}: {e}\n{}", String::from_utf8_lossy(bytes)))
}

/// The subjects typed `dcat:Dataset` in `quads`, as identifiers (the IRI's last segment).
fn dataset_ids(quads: &[Quad]) -> BTreeSet<String> {
    quads
        .iter()
        .filter(|q| q.predicate.as_str().ends_with("#type") && matches!(&q.object, Term::NamedNode(n) if n.as_str() == DCAT_DATASET))
        .filter_map(|q| q.subject.to_string().trim_matches(['<', '>']).rsplit('/').next().map(str::to_owned))
        .collect()
}

#[actix_rt::test]
async fn no_query_document_or_answer_shows_a_providers_address_regression_internal_api_shown_to_members() {
    let b = TestBroker::start();
    assert_eq!(register(&b, "aalen-steward", &example(TERMINE)).await.0, 201);
    // The address is in the example: 127.0.0.1:9441. No member finds it, however it asks.
    for query in [
        "ASK { ?s ?p ?o FILTER(CONTAINS(STR(?o), '9441')) }",
        "ASK { GRAPH ?g { ?s ?p ?o FILTER(CONTAINS(STR(?o), '9441')) } }",
        "ASK { ?s kdr:fetchFrom ?o }",
        "ASK { ?s kdr:providerOrigin ?o }",
    ] {
        for who in ["heidenheim-system", "aalen-board"] {
            assert!(!sparql_ask(&b, who, &format!("{PREFIXES}{query}")).await, "{who}: {query}");
        }
    }
    // Another city's members see the broker's exchange API as the access URL, and no digest.
    let mut resp = b
        .client("heidenheim-steward")
        .get(b.url(&format!("/v1/datasets/{TERMINE}")))
        .send()
        .await
        .expect("get");
    assert!(resp.headers().get("X-Distributions-Digest").is_none());
    let seen = json(&mut resp).await;
    let access = format!("https://broker.kdr.example/v1/datasets/{TERMINE}/data");
    for d in seen["distributions"].as_array().expect("distributions") {
        assert_eq!(d["accessURL"], access.as_str(), "{seen}");
    }
    let list = b.client("heidenheim-system").get(b.url("/v1/datasets")).send().await;
    assert!(!format!("{:?}", json(&mut list.expect("list")).await).contains("9441"));
    // The publisher's own people see what they registered (they edit it), with the digest.
    let mut resp = b
        .client("aalen-board")
        .get(b.url(&format!("/v1/datasets/{TERMINE}")))
        .send()
        .await
        .expect("get");
    assert!(resp.headers().get("X-Distributions-Digest").is_some());
    assert_eq!(json(&mut resp).await["distributions"], example(TERMINE)["distributions"]);
    // Members' provider origins: each member sees only its own.
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/members"))
        .send()
        .await
        .expect("members");
    for m in json(&mut resp).await.as_array().expect("members") {
        let own = m["ags"] == broker::demo::HEIDENHEIM;
        assert_eq!(m.get("providers").is_some(), own, "{m}");
    }
    // The dereferenced description has none either; and the data still flows (the exchange
    // reads the address from where only the broker looks): see the exchange tests.
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/datasets/{TERMINE}")))
        .insert_header(("Accept", "text/turtle"))
        .send()
        .await
        .expect("describe");
    assert_eq!(resp.status(), 200);
    let body = resp.body().await.expect("body");
    assert!(!String::from_utf8_lossy(&body).contains("9441"));
    assert_eq!(dataset_ids(&parse(&body, RdfFormat::Turtle)), BTreeSet::from([TERMINE.to_owned()]));
}

#[actix_rt::test]
async fn what_is_stored_is_dcat_ap_de_3() {
    let b = TestBroker::start();
    assert_eq!(register(&b, "aalen-steward", &example(TERMINE)).await.0, 201);
    let mut hosted = example("aalen-kita-plaetze");
    hosted["distributions"] = json!([{ "mediaType": "text/csv", "accessURL": "hosted" }]);
    assert_eq!(register(&b, "aalen-steward", &hosted).await.0, 201);
    for (what, query) in [
        (
            "dcat:mediaType and the EU file type",
            format!(
                "ASK {{ <https://broker.kdr.example/datasets/{TERMINE}> dcat:distribution ?d . \
                 ?d dcat:mediaType <https://www.iana.org/assignments/media-types/application/json> ; \
                    dct:format <http://publications.europa.eu/resource/authority/file-type/JSON> ; \
                    dcat:accessURL <https://broker.kdr.example/v1/datasets/{TERMINE}/data> }}"
            ),
        ),
        (
            "the hosted distribution's access URL under /v1",
            "ASK { <https://broker.kdr.example/datasets/aalen-kita-plaetze/distributions/0> \
               dcat:accessURL <https://broker.kdr.example/v1/datasets/aalen-kita-plaetze/data> ; kdr:hostedByBroker true }"
                .to_owned(),
        ),
        (
            "the member's catalog lists it",
            format!(
                "ASK {{ <https://broker.kdr.example/catalogs/08136088> a dcat:Catalog ; dct:publisher <https://broker.kdr.example/members/08136088> ; \
                 dcat:dataset <https://broker.kdr.example/datasets/{TERMINE}> }}"
            ),
        ),
        (
            "the political geocoding level of a municipality key",
            "ASK { ?d dct:spatial <http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08136088> ; \
               dcatde:politicalGeocodingLevelURI <http://dcat-ap.de/def/politicalGeocoding/Level/municipality> }"
                .to_owned(),
        ),
        (
            "the distributions' path is under the dataset's IRI",
            format!(
                "ASK {{ <https://broker.kdr.example/datasets/{TERMINE}> dcat:distribution <https://broker.kdr.example/datasets/{TERMINE}/distributions/1> }}"
            ),
        ),
    ] {
        assert!(sparql_ask(&b, "heidenheim-system", &format!("{PREFIXES}{query}")).await, "{what}");
    }
    for (what, query) in [
        ("dct:mediaType, which DCAT-AP.de 3.0 replaced", "ASK { ?d dct:mediaType ?m }"),
        (
            "the deprecated dcatde:politicalGeocodingURI",
            "ASK { ?d dcatde:politicalGeocodingURI ?m }",
        ),
    ] {
        assert!(!sparql_ask(&b, "heidenheim-system", &format!("{PREFIXES}{query}")).await, "{what}");
    }
}

#[actix_rt::test]
async fn a_licence_outside_the_dcat_ap_de_vocabulary_is_refused_by_pointer() {
    let b = TestBroker::start();
    let mut d = example("aalen-kita-plaetze");
    d["license"] = json!("https://www.dcat-ap.de/def/licenses/dl-by-de/2.0");
    let (status, body) = register(&b, "aalen-steward", &d).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["pointer"], "/license", "{body}");
    d["license"] = json!("http://dcat-ap.de/def/licenses/dl-by-de/2.0");
    assert_eq!(register(&b, "aalen-steward", &d).await.0, 201);
}

/// A public copy of the Kita example under another identifier, straight into the store.
fn public_copy(n: usize) -> broker::catalog::Dataset {
    let mut d = example("aalen-kita-plaetze");
    d["identifier"] = json!(format!("kita-{n:03}"));
    d["accessRights"] = json!("PUBLIC");
    let description: DatasetDescription = serde_json::from_value(d).expect("description");
    broker::catalog::Dataset::from_description(
        format!("kita-{n:03}").parse().expect("id"),
        broker::demo::AALEN.parse().expect("ags"),
        description,
        "2026-12-01T00:00:00Z".into(),
        "2026-12-01T00:00:00Z".into(),
    )
}

#[actix_rt::test]
async fn the_harvest_walks_every_public_dataset_once_and_never_a_restricted_one() {
    let b = TestBroker::start_with(|c| {
        c.transparency.listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.limits.public_per_second = 1000;
    });
    assert_eq!(register(&b, "aalen-steward", &example(TERMINE)).await.0, 201, "restricted");
    for n in 0..230 {
        b.catalog.insert_dataset(&public_copy(n)).expect("insert");
    }
    let (client, public) = public_client(&b);

    let mut seen = BTreeSet::new();
    let mut next = Some("/catalog".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let mut resp = client.get(public(&path)).send().await.expect("page");
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/rdf+xml")
        );
        let quads = parse(&resp.body().limit(1 << 24).await.expect("body"), RdfFormat::RdfXml);
        let ids = dataset_ids(&quads);
        assert!(ids.len() <= 100, "{path}: {}", ids.len());
        assert!(ids.is_disjoint(&seen), "{path} repeats a dataset");
        seen.extend(ids);
        pages += 1;
        next = quads
            .iter()
            .find(|q| q.predicate.as_str() == "http://www.w3.org/ns/hydra/core#next")
            .map(|q| {
                q.object
                    .to_string()
                    .trim_matches(['<', '>'])
                    .trim_start_matches("https://broker.kdr.example")
                    .to_owned()
            });
        assert!(pages <= 3, "more pages than 230 datasets need");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 230);
    assert!(!seen.contains(TERMINE), "a restricted dataset was harvestable");

    // Its description is not public either, and no IRI under it tells the public that it
    // exists: each answers as for an identifier nobody registered. A public one's is served.
    for (restricted, never) in [
        (format!("/datasets/{TERMINE}"), "/datasets/never-registered".to_owned()),
        (
            format!("/datasets/{TERMINE}/distributions/0"),
            "/datasets/never-registered/distributions/0".to_owned(),
        ),
        (
            format!("/datasets/{TERMINE}/distributions/7"),
            "/datasets/never-registered/distributions/7".to_owned(),
        ),
    ] {
        let mut a = client.get(public(&restricted)).send().await.expect("get");
        let mut b = client.get(public(&never)).send().await.expect("get");
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (404, 404), "{restricted}");
        let (a, b) = (json(&mut a).await, json(&mut b).await);
        assert_eq!(a["type"], b["type"], "{restricted}: {a} / {b}");
        assert_eq!(
            a["detail"].as_str().map(|d| d.replace(TERMINE, "X")),
            b["detail"].as_str().map(|d| d.replace("never-registered", "X")),
            "{restricted}"
        );
    }
    let resp = client
        .get(public("/datasets/kita-007"))
        .insert_header(("Accept", "application/ld+json"))
        .send()
        .await;
    let mut resp = resp.expect("get");
    assert_eq!(resp.status(), 200);
    let ld = parse(
        &resp.body().await.expect("body"),
        RdfFormat::JsonLd {
            profile: JsonLdProfileSet::empty(),
        },
    );
    assert_eq!(dataset_ids(&ld), BTreeSet::from(["kita-007".to_owned()]));

    // Conditional GET: the same page again is 304 Not Modified.
    let first = client.get(public("/catalog?page=1")).send().await.expect("page");
    let etag = first.headers().get("etag").expect("etag").clone();
    let again = client
        .get(public("/catalog?page=1"))
        .insert_header(("If-None-Match", etag))
        .send()
        .await
        .expect("again");
    assert_eq!(again.status(), 304);
    // Pages that do not exist, and syntaxes not offered.
    for (path, accept, status) in [
        ("/catalog?page=0", "*/*", 400),
        ("/catalog?page=x", "*/*", 400),
        ("/catalog?page=4", "*/*", 404),
        ("/catalog", "image/png", 406),
        ("/catalog", "text/turtle;q=0, */*;q=0.1", 200),
    ] {
        let resp = client
            .get(public(path))
            .insert_header(("Accept", accept))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), status, "{path} {accept}");
    }
}

#[actix_rt::test]
async fn json_first_with_csv_least_gets_json_regression_accept_substring_match() {
    let b = TestBroker::start();
    for (accept, expected) in [
        ("application/json, text/csv;q=0.1", Some("application/json")),
        ("text/csv;q=0.1, application/json", Some("application/json")),
        ("text/*", Some("text/csv")),
        ("text/csv;q=0, */*", Some("application/json")),
        ("image/png", None),
    ] {
        let resp = b
            .client("aalen-board")
            .get(b.url("/v1/reports/usage"))
            .insert_header(("Accept", accept))
            .send()
            .await
            .expect("report");
        match expected {
            Some(media) => {
                assert_eq!(resp.status(), 200, "{accept}");
                let got = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
                assert!(got.starts_with(media), "{accept}: {got}");
            }
            None => assert_eq!(resp.status(), 406, "{accept}"),
        }
    }
}

// ---- Import of portal exports ----------------------------------------------------------------

fn shared(path: &str) -> Vec<u8> {
    let p = format!("{}/../../shared/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub async fn import(b: &TestBroker, who: &str, body: Vec<u8>, media_type: &str, source: Option<&str>) -> (u16, Value) {
    let path = match source {
        Some(s) => format!("/v1/catalog/import?source={}", s.replace(':', "%3A").replace('/', "%2F")),
        None => "/v1/catalog/import".to_owned(),
    };
    let mut resp = b
        .client(who)
        .post(b.url(&path))
        .insert_header(("Content-Type", media_type))
        .timeout(std::time::Duration::from_secs(120))
        .send_body(body)
        .await
        .expect("import");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

fn kinds(report: &Value) -> BTreeSet<String> {
    report["repaired"]
        .as_array()
        .expect("repaired")
        .iter()
        .map(|r| r["kind"].as_str().expect("kind").to_owned())
        .collect()
}

/// How often each DCAT-AP.de property occurs in the descriptions of datasets (not of catalogs
/// or agents), by local name, in `quads`.
fn property_counts(quads: &[Quad]) -> std::collections::BTreeMap<String, usize> {
    let skip_subjects: BTreeSet<String> = quads
        .iter()
        .filter(|q| {
            q.predicate.as_str().ends_with("#type")
                && matches!(&q.object, Term::NamedNode(n) if n.as_str().ends_with("#Catalog") || n.as_str().starts_with("http://xmlns.com/foaf/"))
        })
        .map(|q| q.subject.to_string())
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for q in quads {
        let p = q.predicate.as_str();
        let local = p.rsplit(['#', '/']).next().unwrap_or(p);
        let interesting = [
            "title",
            "description",
            "keyword",
            "theme",
            "distribution",
            "accessURL",
            "downloadURL",
            "format",
            "mediaType",
            "byteSize",
            "license",
            "modified",
            "issued",
            "checksum",
            "checksumValue",
            "contributorID",
            "spatial",
            "fn",
            "hasEmail",
            "conformsTo",
            "rights",
            "language",
            "plannedAvailability",
            "status",
            "creator",
            "maintainer",
            "politicalGeocodingLevelURI",
            "politicalGeocodingURI",
            "geocodingDescription",
            "accessRights",
            "contactPoint",
        ];
        if interesting.contains(&local) && !skip_subjects.contains(&q.subject.to_string()) {
            *counts.entry(local.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

#[actix_rt::test]
async fn rostocks_portal_export_is_imported_repaired_harvested_back_whole_and_reimported_as_nothing() {
    let b = TestBroker::start_with(|c| {
        c.transparency.listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.limits.public_per_second = 1000;
    });
    let dump = shared("catalogs/rostock-catalog.rdf");
    let (status, report) = import(&b, "aalen-steward", dump.clone(), "application/rdf+xml", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"].as_array().map(Vec::len), Some(100), "{report}");
    assert_eq!(report["refused"], json!([]), "{report}");
    for kind in [
        "namespace",
        "licence-iri",
        "language-literal",
        "access-rights-literal",
        "file-type",
        "vocabulary-iri",
        "byte-size",
        "status",
        "geometry-literal",
    ] {
        assert!(kinds(&report).contains(kind), "{kind} not repaired: {}", report["repaired"]);
    }
    // Re-exported through the harvest endpoint (all public) and parsed back: nothing that
    // DCAT-AP.de defines is lost.
    let (client, public) = public_client(&b);
    let mut resp = client.get(public("/catalog")).send().await.expect("harvest");
    assert_eq!(resp.status(), 200);
    let harvested = parse(&resp.body().limit(1 << 26).await.expect("body"), RdfFormat::RdfXml);
    assert_eq!(dataset_ids(&harvested).len(), 100);
    let source = parse(&dump, RdfFormat::RdfXml);
    let (before, after) = (property_counts(&source), property_counts(&harvested));
    for (property, n) in &before {
        assert_eq!(after.get(property), Some(n), "{property}: {before:?}\n{after:?}");
    }
    // Readable through the API too, as Aalen's (the dump's publisher is not kept).
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/datasets?publisher=08136088"))
        .send()
        .await
        .expect("list");
    assert_eq!(json(&mut resp).await.as_array().map(Vec::len), Some(100));

    // The same export again: nothing changes, nothing is written.
    let quads = b.quad_count();
    let records = b.audit_lines().len();
    let (status, again) = import(&b, "aalen-steward", dump, "application/rdf+xml", None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["unchanged"], 100, "{again}");
    assert_eq!(
        (again["imported"].clone(), again["updated"].clone(), again["withdrawn"].clone()),
        (json!([]), json!([]), json!([]))
    );
    assert_eq!(b.quad_count(), quads);
    assert_eq!(b.audit_lines().len(), records, "an import that changes nothing records nothing");
}

#[actix_rt::test]
async fn a_reimport_updates_what_changed_and_withdraws_what_vanished_each_in_the_audit_trail() {
    let b = TestBroker::start();
    let source = parse(&shared("catalogs/rostock-catalog.rdf"), RdfFormat::RdfXml);
    let nt = |quads: &[Quad]| {
        quads
            .iter()
            .map(|q| format!("{} {} {} .\n", q.subject, q.predicate, q.object))
            .collect::<String>()
            .into_bytes()
    };
    let src = Some("https://www.opendata-hro.de/");
    let (status, first) = import(&b, "aalen-steward", nt(&source), "application/n-triples", src).await;
    assert_eq!(status, 200, "{first}");
    let ids: Vec<String> = serde_json::from_value(first["imported"].clone()).expect("ids");
    // Drop the first dataset's own statements and retitle the second.
    let subject_of = |id: &str| {
        source
            .iter()
            .find(|q| q.predicate.as_str() == "http://purl.org/dc/terms/identifier" && q.object.to_string().contains(id))
            .map(|q| q.subject.to_string())
            .expect("subject")
    };
    let (gone, changed) = (subject_of(&ids[0]), subject_of(&ids[1]));
    let next: Vec<Quad> = source
        .iter()
        .filter(|q| q.subject.to_string() != gone && q.object.to_string() != gone)
        .map(|q| {
            let mut q = q.clone();
            if q.subject.to_string() == changed && q.predicate.as_str() == "http://purl.org/dc/terms/title" {
                q.object = oxigraph::model::Literal::new_simple_literal("Neuer Titel").into();
            }
            q
        })
        .collect();
    let (status, second) = import(&b, "aalen-steward", nt(&next), "application/n-triples", src).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["withdrawn"], json!([ids[0]]), "{second}");
    assert_eq!(second["updated"], json!([ids[1]]), "{second}");
    assert_eq!(second["unchanged"], 98);
    let resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/v1/datasets/{}", ids[0])))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 410, "a vanished dataset is withdrawn");
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/v1/datasets/{}", ids[1])))
        .send()
        .await
        .expect("get");
    assert_eq!(
        json(&mut resp).await["title"]["de"],
        Value::Null,
        "an untagged title is not a German one"
    );
    assert!(
        sparql_ask(
            &b,
            "heidenheim-system",
            &format!(
                "{PREFIXES} ASK {{ <https://broker.kdr.example/datasets/{}> dct:title 'Neuer Titel' }}",
                ids[1]
            )
        )
        .await
    );
    let imports: Vec<Value> = b
        .audit_lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("record")["entry"].clone())
        .filter(|e| e["action"] == "catalog-imported")
        .collect();
    assert_eq!(imports.len(), 2, "each import that changes something is one record");
    assert_eq!(imports[1]["detail"]["withdrawn"], json!([ids[0]]));
    // Another city cannot take over these identifiers by importing the same export.
    let (status, other) = import(&b, "heidenheim-steward", nt(&next), "application/n-triples", src).await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["imported"], json!([]), "{other}");
    assert_eq!(other["refused"].as_array().map(Vec::len), Some(99), "{other}");
}

#[actix_rt::test]
async fn each_quirk_of_real_dumps_is_repaired_and_listed() {
    let b = TestBroker::start();
    let dump = r#"
        @prefix dcat: <http://www.w3.org/ns/dcat#> . @prefix dct: <http://purl.org/dc/terms/> .
        @prefix old: <https://www.dcat-ap.de/def/dcatde/1.1/> . @prefix vcard: <http://www.w3.org/2006/vcard/ns#> .
        <https://portal.example/dataset/baeume> a dcat:Dataset ; dct:identifier "Bäume 2019" ;
            dct:title "Bäume"@de ; dct:description "Baumkataster"@de ;
            old:contributorID <https://www.dcat-ap.de/def/contributors/openDataHRO> ;
            dct:issued "03.05.2019" ; dct:modified "irgendwann" ;
            dct:language "http://publications.europa.eu/resource/authority/language/DEU" ;
            dct:accessRights "public" ;
            dcat:contactPoint [ a vcard:Organization ; vcard:fn "Grünamt" ; vcard:hasEmail <gruenamt@portal.example> ] ;
            dcat:distribution <https://portal.example/dataset/baeume/csv> .
        <https://portal.example/dataset/baeume/csv> a dcat:Distribution ;
            dcat:accessURL <https://portal.example/baeume.csv> ;
            dct:license "dl-by-de/2.0" ; dct:format <http://publications.europa.eu/resource/authority/file-type/WMS> ;
            dct:mediaType <https://www.iana.org/assignments/media-types/text/csv> .
    "#;
    let (status, report) = import(
        &b,
        "aalen-steward",
        dump.as_bytes().to_vec(),
        "text/turtle",
        Some("https://portal.example/"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], json!(["b-ume-2019"]), "{report}");
    for kind in [
        "namespace",
        "vocabulary-iri",
        "date",
        "date-dropped",
        "language-literal",
        "access-rights-literal",
        "email-iri",
        "licence-literal",
        "file-type",
        "media-type-property",
    ] {
        assert!(kinds(&report).contains(kind), "{kind}: {}", report["repaired"]);
    }
    let dropped = report["repaired"]
        .as_array()
        .expect("repaired")
        .iter()
        .find(|r| r["kind"] == "date-dropped")
        .cloned();
    assert_eq!(dropped.expect("dropped")["example"], "irgendwann -> dropped");
    let ds = "<https://broker.kdr.example/datasets/b-ume-2019>";
    for (what, query) in [
        (
            "contributor ID in the current namespace",
            format!("{ds} dcatde:contributorID <http://dcat-ap.de/def/contributors/openDataHRO>"),
        ),
        (
            "a German date as xsd:date",
            format!("{ds} dct:issued '2019-05-03'^^<http://www.w3.org/2001/XMLSchema#date>"),
        ),
        (
            "the language as an IRI",
            format!("{ds} dct:language <http://publications.europa.eu/resource/authority/language/DEU>"),
        ),
        (
            "access rights as the EU IRI",
            format!("{ds} dct:accessRights <http://publications.europa.eu/resource/authority/access-right/PUBLIC>"),
        ),
        (
            "the e-mail as mailto:",
            format!("{ds} dcat:contactPoint ?c . ?c vcard:hasEmail <mailto:gruenamt@portal.example>"),
        ),
        (
            "the licence as the vocabulary's IRI",
            format!("{ds} dcat:distribution ?d . ?d dct:license <http://dcat-ap.de/def/licenses/dl-by-de/2.0>"),
        ),
        (
            "the file type as the table's code",
            "?d dct:format <http://publications.europa.eu/resource/authority/file-type/WMS_SRVC>".to_owned(),
        ),
        (
            "dcat:mediaType",
            "?d dcat:mediaType <https://www.iana.org/assignments/media-types/text/csv>".to_owned(),
        ),
        (
            "the original IRI kept",
            format!("{ds} adms:identifier/skos:notation 'https://portal.example/dataset/baeume'"),
        ),
        (
            "the publisher is the member",
            format!("{ds} dct:publisher <https://broker.kdr.example/members/08136088>"),
        ),
    ] {
        let q = format!(
            "{PREFIXES} PREFIX vcard: <http://www.w3.org/2006/vcard/ns#> PREFIX adms: <http://www.w3.org/ns/adms#> \
             PREFIX skos: <http://www.w3.org/2004/02/skos/core#> ASK {{ {query} }}"
        );
        assert!(sparql_ask(&b, "heidenheim-system", &q).await, "{what}");
    }
    assert!(!sparql_ask(&b, "heidenheim-system", &format!("{PREFIXES} ASK {{ {ds} dct:modified ?m }}")).await);
}

#[actix_rt::test]
async fn an_import_that_cannot_be_read_writes_nothing_and_says_where() {
    let b = TestBroker::start();
    let quads = b.quad_count();
    for (body, media, status, kind) in [
        ("<a> <b> .", "text/turtle", 422, "invalid-rdf"),
        (
            "<http://x.example/a> <http://x.example/b> <http://x.example/c> .",
            "text/turtle",
            422,
            "no-datasets",
        ),
        ("{}", "application/json", 415, "unsupported-media-type"),
    ] {
        let (s, problem) = import(&b, "aalen-steward", body.as_bytes().to_vec(), media, Some("x")).await;
        assert_eq!(s, status, "{problem}");
        assert_eq!(problem["type"], format!("https://w3id.org/kdr/problems/{kind}"), "{problem}");
    }
    let (s, problem) = import(&b, "aalen-system", b"<a> <b> <c> .".to_vec(), "text/turtle", Some("x")).await;
    assert_eq!(s, 403, "{problem}");
    // The official DCAT-AP.de 3.0 example: its catalog is a blank node, so the source is named.
    let (s, report) = import(
        &b,
        "aalen-steward",
        shared("catalogs/dcat-ap-de-3.0-example.ttl"),
        "text/turtle",
        None,
    )
    .await;
    assert_eq!(s, 400, "{report}");
    assert_eq!(b.quad_count(), quads, "nothing half-written");
    let (s, report) = import(
        &b,
        "aalen-steward",
        shared("catalogs/dcat-ap-de-3.0-example.ttl"),
        "text/turtle",
        Some("bienenland"),
    )
    .await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["imported"].as_array().map(Vec::len), Some(1), "{report}");
}

async fn get_json(b: &TestBroker, who: &str, path: &str) -> (u16, Value) {
    let mut resp = b.client(who).get(b.url(path)).send().await.expect("get");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

fn hit_ids(results: &Value) -> Vec<String> {
    results["hits"]
        .as_array()
        .map(|h| h.iter().filter_map(|h| h["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[actix_rt::test]
async fn search_finds_german_inflections_counts_facets_pages_and_follows_every_write() {
    let b = TestBroker::start();
    let (status, report) = import(
        &b,
        "aalen-steward",
        shared("catalogs/rostock-catalog.rdf"),
        "application/rdf+xml",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    // "Friedhof" finds "Friedhöfe", "Ärztehaus" finds "Ärztehäuser": stems, umlauts folded.
    // (Percent-encoded: "ärztehaus", "FLIESSGEWÄSSER".)
    for (words, title) in [
        ("Friedhof", "Friedhöfe"),
        ("%C3%A4rztehaus", "Ärztehäuser"),
        ("FLIESSGEW%C3%84SSER", "Fließgewässer"),
    ] {
        let (status, found) = get_json(&b, "heidenheim-system", &format!("/v1/datasets?q={words}")).await;
        assert_eq!(status, 200, "{found}");
        let titles: Vec<&str> = found["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .filter_map(|h| h["title"].as_str())
            .collect();
        assert!(titles.contains(&title), "{words}: {titles:?}");
        assert!(found["hits"].as_array().expect("hits").iter().all(|h| h["publisher"] == "08136088"));
    }
    // Browsing: no words, 100 datasets, facets over all of them, pages of 30.
    let (_, all) = get_json(&b, "aalen-board", "/v1/datasets?q=&per_page=30&page=4").await;
    assert_eq!((all["total"].as_u64(), hit_ids(&all).len()), (Some(100), 10), "{all}");
    assert_eq!(all["facets"]["publisher"]["08136088"], 100, "{}", all["facets"]);
    let csv = all["facets"]["format"]["CSV"].as_u64().expect("CSV facet");
    let (_, only_csv) = get_json(&b, "aalen-board", "/v1/datasets?format=CSV&per_page=100").await;
    assert_eq!(only_csv["total"].as_u64(), Some(csv), "a filter keeps what its facet counted");
    // Every write is searchable at once: registered, changed, withdrawn.
    let mut termine = example(TERMINE);
    assert_eq!(register(&b, "aalen-steward", &termine).await.0, 201);
    let (_, found) = get_json(&b, "heidenheim-system", "/v1/datasets?q=B%C3%BCrgerb%C3%BCro").await;
    assert_eq!(hit_ids(&found), vec![TERMINE], "{found}");
    // A keyword filters a search as it filters the plain list: whole, in any case.
    for (keyword, hits) in [("VERWALTUNG", vec![TERMINE]), ("Verwalt", vec![])] {
        let (_, found) = get_json(
            &b,
            "heidenheim-system",
            &format!("/v1/datasets?q=B%C3%BCrgerb%C3%BCro&keyword={keyword}"),
        )
        .await;
        assert_eq!(hit_ids(&found), hits, "{keyword}: {found}");
    }
    termine["title"] = json!({ "de": "Wartezeiten im Standesamt" });
    let resp = b
        .client("aalen-steward")
        .put(b.url(&format!("/v1/datasets/{TERMINE}")))
        .send_json(&termine)
        .await
        .expect("put");
    assert_eq!(resp.status(), 200);
    let (_, found) = get_json(&b, "heidenheim-system", "/v1/datasets?q=Standesamt").await;
    assert_eq!(hit_ids(&found), vec![TERMINE], "{found}");
    let resp = b
        .client("aalen-steward")
        .delete(b.url(&format!("/v1/datasets/{TERMINE}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let (_, found) = get_json(&b, "heidenheim-system", "/v1/datasets?q=Standesamt").await;
    assert_eq!(found["total"], 0, "{found}");
}

#[actix_rt::test]
async fn a_search_is_bounded_and_query_syntax_in_it_is_only_words() {
    let b = TestBroker::start();
    assert_eq!(register(&b, "aalen-steward", &example(TERMINE)).await.0, 201);
    for (path, status) in [
        (format!("/v1/datasets?q={}", "a".repeat(501)), 400),
        ("/v1/datasets?q=x&per_page=101".to_owned(), 400),
        ("/v1/datasets?q=x&per_page=0".to_owned(), 400),
        ("/v1/datasets?q=x&page=0".to_owned(), 400),
        ("/v1/datasets?q=x&keyword=".to_owned(), 400),
        ("/v1/datasets?q=x&theme=".to_owned(), 400),
        ("/v1/datasets?theme=".to_owned(), 400),
        (format!("/v1/datasets?keyword={}", "k".repeat(201)), 400),
        // Far past the last hit: an empty page, not a heap of a million entries.
        ("/v1/datasets?q=&page=10000&per_page=100".to_owned(), 200),
        ("/v1/datasets?q=&page=10001".to_owned(), 400),
        // Query syntax is not an error, and reaches no field the search does not offer.
        ("/v1/datasets?q=id%3A*%20OR%20%22%28%5B".to_owned(), 200),
        ("/v1/datasets?q=&publisher=..%2F..%2Fetc".to_owned(), 400),
    ] {
        let (got, body) = get_json(&b, "heidenheim-system", &path).await;
        assert_eq!(got, status, "{path}: {body}");
        if status == 400 {
            assert_eq!(body["status"], 400, "problem+json: {body}");
        }
    }
    let (_, past) = get_json(&b, "heidenheim-system", "/v1/datasets?q=&page=10000&per_page=100").await;
    assert_eq!((past["total"].as_u64(), hit_ids(&past).len()), (Some(1), 0), "{past}");
    let (_, syntax) = get_json(&b, "heidenheim-system", "/v1/datasets?q=id%3A*%20OR%20%22%28%5B").await;
    assert!(hit_ids(&syntax).is_empty(), "{syntax}");
}

/// A dataset of a portal export: `extra` is added to its statements (Turtle, after `;`).
fn portal_dataset(name: &str, extra: &str) -> String {
    format!(
        r#"<https://portal.example/dataset/{name}> a dcat:Dataset ; dct:identifier "{name}" ;
            dct:title "Messwerte {name}"@de ; {extra}
            dcat:distribution <https://portal.example/dataset/{name}/csv> .
        <https://portal.example/dataset/{name}/csv> a dcat:Distribution ;
            dcat:accessURL <https://portal.example/{name}.csv> ;
            dct:license <http://dcat-ap.de/def/licenses/dl-by-de/2.0> ;
            dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> .
        "#
    )
}

const PORTAL_PREFIXES: &str = "@prefix dcat: <http://www.w3.org/ns/dcat#> . @prefix dct: <http://purl.org/dc/terms/> .\n";

#[actix_rt::test]
async fn an_import_refuses_what_violates_the_dcat_ap_de_shapes_naming_node_property_and_german_message() {
    let b = TestBroker::start();
    let good = portal_dataset("gut", r#"dct:description "Messwerte der Stadt"@de ;"#);
    // dct:description is mandatory for a dcat:Dataset (DCAT-AP 3.0, sh:minCount 1).
    let bad = portal_dataset("ohne-beschreibung", "");
    let dump = format!("{PORTAL_PREFIXES}{good}{bad}");
    let (status, report) = import(
        &b,
        "aalen-steward",
        dump.into_bytes(),
        "text/turtle",
        Some("https://portal.example/"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], json!(["gut"]), "{report}");
    let refused = &report["refused"][0];
    assert_eq!(refused["dataset"], "https://portal.example/dataset/ohne-beschreibung", "{report}");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("does not meet DCAT-AP.de 3.0")),
        "{report}"
    );
    let finding = refused["findings"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .find(|f| f["path"].as_str().is_some_and(|p| p.contains("purl.org/dc/terms/description")))
        })
        .unwrap_or_else(|| panic!("no finding on dct:description: {report}"));
    assert_eq!(finding["severity"], "violation");
    assert!(
        finding["focus"]
            .as_str()
            .is_some_and(|f| f.ends_with("/datasets/ohne-beschreibung")),
        "{finding}"
    );
    assert!(
        finding["message"].as_str().is_some_and(|m| m.contains("MUSS")),
        "German message: {finding}"
    );
    assert!(
        !sparql_ask(
            &b,
            "heidenheim-system",
            &format!("{PREFIXES}ASK {{ GRAPH ?g {{ ?d dct:identifier \"ohne-beschreibung\" }} }}")
        )
        .await,
        "nothing of the refused dataset is written"
    );
    // Nothing in an export meets the shapes: a problem, nothing written.
    let quads = b.quad_count();
    let dump = format!("{PORTAL_PREFIXES}{}", portal_dataset("auch-ohne", ""));
    let (status, problem) = import(
        &b,
        "aalen-steward",
        dump.into_bytes(),
        "text/turtle",
        Some("https://portal2.example/"),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"].as_str().map(|t| t.ends_with("not-dcat-ap-de")),
        Some(true),
        "{problem}"
    );
    assert!(problem["shaclResults"].as_array().is_some_and(|r| !r.is_empty()), "{problem}");
    assert_eq!(b.quad_count(), quads);
    // What was imported is checked again on request, warnings and all.
    let (status, validation) = get_json(&b, "heidenheim-system", "/v1/datasets/gut/validation").await;
    assert_eq!(status, 200, "{validation}");
    assert_eq!(
        (validation["conforms"].clone(), validation["violations"].clone()),
        (json!(true), json!(0)),
        "{validation}"
    );
    let (status, _) = get_json(&b, "heidenheim-system", "/v1/datasets/gibt-es-nicht/validation").await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn every_example_dataset_meets_dcat_ap_de_as_registered() {
    let b = TestBroker::start();
    for (who, name) in [
        ("aalen-steward", "aalen-buergerbuero-termine"),
        ("aalen-steward", "aalen-kita-plaetze"),
        ("heidenheim-steward", "heidenheim-parkhaus-belegung"),
        ("heidenheim-steward", "heidenheim-einwohner-stadtteile"),
    ] {
        let (status, body) = register(&b, who, &example(name)).await;
        assert_eq!(status, 201, "{name}: {body}");
        let (status, validation) = get_json(&b, "aalen-board", &format!("/v1/datasets/{name}/validation")).await;
        assert_eq!(status, 200);
        assert_eq!(validation["violations"], 0, "{name}: {validation}");
    }
}
