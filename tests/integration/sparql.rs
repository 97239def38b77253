//! The SPARQL endpoint: protocol, content negotiation, refusal of updates, limits.

use crate::support::{TestBroker, example, json, tight_sparql};

async fn with_examples(b: &TestBroker) {
    for (who, name) in [
        ("aalen-steward", "aalen-buergerbuero-termine"),
        ("aalen-steward", "aalen-kita-plaetze"),
        ("heidenheim-steward", "heidenheim-parkhaus-belegung"),
    ] {
        let resp = b
            .client(who)
            .post(b.url("/v1/datasets"))
            .send_json(&example(name))
            .await
            .expect("post");
        assert_eq!(resp.status(), 201);
    }
}

async fn body_text(b: &TestBroker, query: &str, accept: &str) -> (u16, String, String) {
    let mut resp = b
        .client("aalen-system")
        .get(b.url("/v1/sparql"))
        .query(&[("query", query)])
        .expect("query")
        .insert_header(("Accept", accept))
        .send()
        .await
        .expect("send");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.body().await.expect("body");
    (resp.status().as_u16(), ct, String::from_utf8_lossy(&body).into_owned())
}

const SELECT: &str = "PREFIX dct: <http://purl.org/dc/terms/> PREFIX dcat: <http://www.w3.org/ns/dcat#> SELECT ?id WHERE { ?d a dcat:Dataset ; dct:identifier ?id } ORDER BY ?id";

#[actix_rt::test]
async fn select_results_in_every_negotiated_format() {
    let b = TestBroker::start();
    with_examples(&b).await;
    let (s, ct, body) = body_text(&b, SELECT, "application/sparql-results+json").await;
    assert_eq!((s, ct.as_str()), (200, "application/sparql-results+json"));
    assert!(body.contains("\"aalen-kita-plaetze\""), "{body}");
    let (s, ct, body) = body_text(&b, SELECT, "application/sparql-results+xml").await;
    assert_eq!((s, ct.as_str()), (200, "application/sparql-results+xml"));
    assert!(body.contains("<literal>aalen-kita-plaetze</literal>"), "{body}");
    let (s, ct, body) = body_text(&b, SELECT, "text/csv").await;
    assert_eq!((s, ct.as_str()), (200, "text/csv"));
    assert_eq!(
        body.lines().collect::<Vec<_>>(),
        vec![
            "id",
            "aalen-buergerbuero-termine",
            "aalen-kita-plaetze",
            "heidenheim-parkhaus-belegung"
        ]
    );
    let (s, ct, body) = body_text(&b, SELECT, "text/tab-separated-values").await;
    assert_eq!((s, ct.as_str()), (200, "text/tab-separated-values"));
    assert!(body.starts_with("?id"), "{body}");
    let (s, _, _) = body_text(&b, SELECT, "image/png").await;
    assert_eq!(s, 406);
}

#[actix_rt::test]
async fn construct_describe_and_ask() {
    let b = TestBroker::start();
    with_examples(&b).await;
    let construct =
        "PREFIX dct: <http://purl.org/dc/terms/> CONSTRUCT { ?d dct:title ?t } WHERE { ?d dct:title ?t FILTER(lang(?t) = 'de') }";
    let (s, ct, body) = body_text(&b, construct, "text/turtle").await;
    assert_eq!((s, ct.as_str()), (200, "text/turtle"));
    assert!(body.contains("Parkhäuser"), "{body}");
    let (s, ct, body) = body_text(
        &b,
        "DESCRIBE <https://broker.kdr.example/members/08136088>",
        "application/n-triples",
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "application/n-triples"));
    assert!(body.contains("\"Stadt Aalen\""), "{body}");
    let (s, _, body) = body_text(&b, "ASK { ?s ?p \"Kita\" }", "").await;
    assert_eq!(s, 200);
    assert!(body.contains("true"), "{body}");
}

#[actix_rt::test]
async fn sparql_updates_are_refused_and_change_nothing() {
    let b = TestBroker::start();
    with_examples(&b).await;
    let before = b.quad_count();
    let update = "INSERT DATA { <http://x.example/s> <http://x.example/p> \"o\" }";
    let client = b.client("aalen-steward");
    let mut form = client
        .post(b.url("/v1/sparql"))
        .send_form(&[("update", update)])
        .await
        .expect("form");
    assert_eq!(form.status(), 403);
    assert_eq!(json(&mut form).await["type"], "https://w3id.org/kdr/problems/sparql-update-refused");
    let direct = client
        .post(b.url("/v1/sparql"))
        .insert_header(("Content-Type", "application/sparql-update"))
        .send_body(update)
        .await
        .expect("direct");
    assert_eq!(direct.status(), 403);
    let mut as_query = client
        .get(b.url("/v1/sparql"))
        .query(&[("query", update)])
        .expect("q")
        .send()
        .await
        .expect("as query");
    assert_eq!(as_query.status(), 400);
    assert_eq!(json(&mut as_query).await["type"], "https://w3id.org/kdr/problems/sparql-syntax");
    let clear = client
        .post(b.url("/v1/sparql"))
        .send_form(&[("query", "CLEAR ALL")])
        .await
        .expect("clear");
    assert_eq!(clear.status(), 400);
    assert_eq!(b.quad_count(), before);
}

#[actix_rt::test]
async fn runaway_query_is_stopped_at_the_time_limit() {
    let b = TestBroker::start_with(tight_sparql);
    with_examples(&b).await;
    // Nested optional joins over ~150 triples: billions of rows to count, each re-read from the
    // store, so the cancellation reaches the evaluation (see the FIXME in catalog::sparql).
    let runaway = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c OPTIONAL { ?d ?e ?f FILTER(STR(?c) < STR(?f)) \
        OPTIONAL { ?g ?h ?i FILTER(STR(?f) < STR(?i)) OPTIONAL { ?j ?k ?l FILTER(STR(?i) < STR(?l)) } } } }";
    let started = std::time::Instant::now();
    let mut resp = b
        .client("aalen-system")
        .get(b.url("/v1/sparql"))
        .query(&[("query", runaway)])
        .expect("q")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 503);
    let problem = json(&mut resp).await;
    assert_eq!(problem["type"], "https://w3id.org/kdr/problems/sparql-timeout");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("300ms"), "{problem}");
    // Not a timing assertion: a sanity bound far above the limit, so a query that was never
    // stopped (minutes) fails here instead of hanging the suite.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // The evaluation itself stops too, not only the response.
    let mut polls = 0;
    while b.catalog.running_queries() > 0 {
        polls += 1;
        assert!(polls < 300, "the query kept running after its deadline");
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The broker still answers.
    let (s, _, _) = body_text(&b, "ASK {}", "").await;
    assert_eq!(s, 200);
}

#[actix_rt::test]
async fn result_size_cap_is_enforced() {
    let b = TestBroker::start_with(tight_sparql);
    with_examples(&b).await;
    let (s, _, body) = body_text(&b, "SELECT * WHERE { ?s ?p ?o }", "").await;
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("sparql-result-limit") && body.contains("limit of 5"), "{body}");
    let (s, _, _) = body_text(&b, "SELECT * WHERE { ?s ?p ?o } LIMIT 5", "").await;
    assert_eq!(s, 200);
}

#[actix_rt::test]
async fn concurrent_query_cap_refuses_extra_queries_as_busy() {
    let b = TestBroker::start_with(|c| {
        tight_sparql(c);
        c.sparql.max_concurrent = 1;
        c.sparql.timeout = std::time::Duration::from_secs(3);
    });
    with_examples(&b).await;
    let slow = crate::availability::cpu_bomb();
    let client = b.client("aalen-system");
    let first = client
        .get(b.url("/v1/sparql"))
        .query(&[("query", slow.as_str())])
        .expect("q")
        .send();
    let second = async {
        // Give the first query time to take the only slot.
        while b.catalog.running_queries() == 0 {
            actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        body_text(&b, "ASK {}", "").await
    };
    let (first, (status, _, body)) = tokio::join!(first, second);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("sparql-busy"), "{body}");
    assert_eq!(first.expect("first").status(), 503);
}

#[actix_rt::test]
async fn missing_query_parameter_is_400() {
    let b = TestBroker::start();
    let resp = b.client("aalen-system").get(b.url("/v1/sparql")).send().await.expect("send");
    assert_eq!(resp.status(), 400);
}
