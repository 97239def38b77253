//! Reports agree with the audit trail, stay within each caller's scope, and the public
//! transparency report suppresses small groups and holds no personal data.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::exchange::{DATASET, DPV, POLICY, decisions, request, set_up};
use crate::support::{TestBroker, attach_approved, json, public_client};

/// (day, dataset, consumer, purpose) -> (permits, denies, bytes delivered).
type Tally = BTreeMap<(String, String, String, String), (u64, u64, u64)>;

async fn get(b: &TestBroker, who: &str, path: &str) -> (u16, Value) {
    let mut resp = b.client(who).get(b.url(path)).send().await.expect("get");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

async fn traffic(b: &TestBroker) {
    for purpose in [
        "ImprovePublicServices",
        "CommercialPurpose",
        "ImprovePublicServices",
        "ServiceProvision",
        "ImprovePublicServices",
    ] {
        request(b, "heidenheim-system", purpose).await;
    }
}

#[actix_rt::test]
async fn the_usage_report_agrees_with_the_log_counted_both_ways() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    traffic(&b).await;
    let (status, rows) = get(&b, "heidenheim-board", "/v1/reports/usage").await;
    assert_eq!(status, 200, "{rows}");
    let mut from_log = Tally::new();
    for d in decisions(&b) {
        let key = (
            d["time"].as_str().expect("time")[..10].to_owned(),
            d["dataset"].as_str().expect("dataset").to_owned(),
            d["consumer"].as_str().expect("consumer").to_owned(),
            d["purpose"].as_str().expect("purpose").to_owned(),
        );
        let e = from_log.entry(key).or_default();
        if d["decision"] == "permit" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
        e.2 += d["bytesOut"].as_u64().unwrap_or(0);
    }
    let from_report: Tally = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().expect(k).to_owned();
            let n = |k: &str| r[k].as_u64().expect(k);
            (
                (s("bucket"), s("dataset"), s("consumer"), s("purpose")),
                (n("permits"), n("denies"), n("bytesDelivered")),
            )
        })
        .collect();
    assert_eq!(from_report, from_log);
    let total: u64 = from_report.values().map(|(p, d, _)| p + d).sum();
    assert_eq!(total, 5);
    assert_eq!(from_report.values().map(|v| v.0).sum::<u64>(), 3, "three permits");

    // The same as CSV: a header and one line per row.
    let mut resp = b
        .client("aalen-board")
        .get(b.url("/v1/reports/usage?format=csv"))
        .send()
        .await
        .expect("csv");
    let text = String::from_utf8(resp.body().await.expect("body").to_vec()).expect("utf-8");
    assert!(text.starts_with("bucket,dataset,provider,consumer,purpose,permits"), "{text}");
    assert_eq!(text.lines().count(), 1 + from_report.len(), "{text}");
}

#[actix_rt::test]
async fn stewards_see_only_their_own_datasets_and_systems_no_reports() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    traffic(&b).await;
    let (status, rows) = get(&b, "aalen-steward", "/v1/reports/usage").await;
    assert_eq!(status, 200);
    assert!(!rows.as_array().expect("rows").is_empty());
    let (status, rows) = get(&b, "heidenheim-steward", "/v1/reports/usage").await;
    assert_eq!(status, 200);
    assert_eq!(rows, serde_json::json!([]), "Heidenheim publishes none of these datasets");
    let (status, body) = get(&b, "heidenheim-steward", "/v1/reports/usage?provider=08136088").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = get(&b, "heidenheim-system", "/v1/reports/usage").await;
    assert_eq!(status, 403);
}

#[actix_rt::test]
async fn the_records_of_processing_name_purposes_recipients_categories_retention_and_measures() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    traffic(&b).await;
    let (status, records) = get(&b, "aalen-steward", "/v1/reports/processing").await;
    assert_eq!(status, 200, "{records}");
    let r = records
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["dataset"] == DATASET)
        .expect("the shared dataset")
        .clone();
    assert_eq!(r["purposes"], serde_json::json!([format!("{DPV}ImprovePublicServices")]), "{r}");
    assert_eq!(
        r["recipients"],
        serde_json::json!([format!("08135019 ({DPV}ImprovePublicServices)")]),
        "{r}"
    );
    assert_eq!(r["retention"], "P90D");
    assert_eq!(r["deliveries"], 3);
    let categories = r["dataCategories"].to_string();
    assert!(categories.contains("field bezirk") && !categories.contains("name"), "{categories}");
    let measures = r["technicalMeasures"].to_string();
    assert!(measures.contains("aggregation") && measures.contains("mutual TLS"), "{measures}");
}

#[actix_rt::test]
async fn the_public_transparency_report_needs_no_certificate_and_suppresses_small_groups() {
    let b = TestBroker::start_with(|c| {
        c.transparency.listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.transparency.minimum_group = 3;
    });
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    // Any member may use it for improving public services.
    let open = POLICY.replace(
        "    odrl:assignee <http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08135019> ;\n",
        "",
    );
    assert_ne!(open, POLICY);
    attach_approved(&b, DATASET, &open).await;
    for _ in 0..3 {
        let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body, _) = request(&b, "aalen-system", "ImprovePublicServices").await;
    assert_eq!(status, 200, "{body}");

    let (client, public) = public_client(&b);
    let mut resp = client
        .get(public("/transparency"))
        .send()
        .await
        .expect("no client certificate needed");
    assert_eq!(resp.status(), 200);
    let report = json(&mut resp).await;
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["toMunicipality"], "08135019");
    assert_eq!(rows[0]["deliveries"], 3);
    assert!(rows.iter().all(|r| r["deliveries"].as_u64() >= Some(3)), "{report}");
    assert_eq!(report["suppressedGroups"], 1, "Aalen's own single request: {report}");
    assert!(
        report["suppressedDeliveries"].is_null(),
        "no total of the suppressed groups is shown: {report}"
    );
    let text = report.to_string();
    for personal in ["Innenstadt", "geburtsdatum", "name", "termin"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    // Nothing else is served there, and the member API is not reachable without a certificate.
    let resp = client.get(public("/v1/datasets")).send().await.expect("request");
    assert_eq!(resp.status(), 404);
}
