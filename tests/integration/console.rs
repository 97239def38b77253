//! The console's forms and board pages over real mutual TLS, without a browser (the browser
//! tests are in `browser.rs`): a steward registers and edits a dataset as the API would, the
//! form shows the schema's violations and stores nothing, and the attacks a member would try —
//! another city's dataset, another city as publisher, a board certificate on a steward's form.
//! The board's Art. 30 records and the audit trail's state, including a tampered trail.

use std::sync::Arc;
use std::time::Duration;

use awc::Client;

use crate::exchange::{DATASET, POLICY, request, set_up};
use crate::support::{TestBroker, json};

/// A client presenting `who`'s certificate that does not follow redirects (so that a test sees
/// the console's `303 See Other`).
fn browser_like(b: &TestBroker, who: &str) -> Client {
    let connector = awc::Connector::new().rustls_0_23(Arc::new(b.client_config(who)));
    Client::builder()
        .connector(connector)
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// The page at `path` as `who` sees it: status and body.
async fn get(client: &Client, b: &TestBroker, path: &str) -> (u16, String) {
    let mut resp = client.get(b.url(path)).send().await.expect("page");
    let body = resp.body().limit(4 << 20).await.expect("body");
    (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

/// The form token a page carries.
fn token(page: &str) -> String {
    let start = page.find(r#"name="token" value=""#).expect("a form token") + r#"name="token" value=""#.len();
    page[start..].split('"').next().unwrap_or_default().to_owned()
}

/// Posts a form as a browser of the console's own origin would; status, Location, body.
async fn post(client: &Client, b: &TestBroker, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let body = serde_urlencoded::to_string(form).expect("form");
    let mut resp = client
        .post(b.url(path))
        .insert_header(("Sec-Fetch-Site", "same-origin"))
        .content_type("application/x-www-form-urlencoded")
        .send_body(body)
        .await
        .expect("post");
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = resp.body().limit(4 << 20).await.expect("body");
    (resp.status().as_u16(), location, String::from_utf8_lossy(&body).into_owned())
}

/// A complete registration form (hosted data: Aalen has no provider API in these tests).
fn registration<'a>(token: &'a str, id: &'a str, title: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("token", token),
        ("kennung", id),
        ("titel_de", title),
        ("beschreibung_de", "Wartezeiten im Bürgerbüro, je Tag und Standort."),
        ("thema", "GOVE"),
        ("thema", "SOCI"),
        ("schlagwoerter", "Bürgerbüro, Wartezeit"),
        ("raum", "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/08136088"),
        ("beginn", "2026-01-01"),
        ("lizenz", "http://dcat-ap.de/def/licenses/other-closed"),
        ("zugang", "RESTRICTED"),
        ("kontakt_name", "Stadt Aalen, Bürgerbüro"),
        ("kontakt_email", "buergerbuero@aalen.example"),
        ("verteilung_titel_0", "Wartezeiten als CSV"),
        ("verteilung_typ_0", "text/csv"),
        ("verteilung_url_0", "hosted"),
    ]
}

/// Posts a file as a browser's upload form would (`multipart/form-data`).
async fn upload(client: &Client, b: &TestBroker, path: &str, token: &str, name: &str, media_type: &str, bytes: &str) -> (u16, String) {
    let boundary = "----kdr-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"datei\"; filename=\"{name}\"\r\nContent-Type: {media_type}\r\n\r\n{bytes}\r\n--{boundary}--\r\n"
    );
    let mut resp = client
        .post(b.url(path))
        .insert_header(("Sec-Fetch-Site", "same-origin"))
        .content_type(format!("multipart/form-data; boundary={boundary}"))
        .send_body(body)
        .await
        .expect("upload");
    let body = resp.body().limit(4 << 20).await.expect("body");
    (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

async fn dataset(b: &TestBroker, id: &str) -> (u16, serde_json::Value) {
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/v1/datasets/{id}")))
        .send()
        .await
        .expect("dataset");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

#[actix_rt::test]
async fn a_steward_registers_and_edits_a_dataset_in_the_console_as_the_api_would() {
    let b = TestBroker::start();
    let steward = browser_like(&b, "aalen-steward");
    let (status, page) = get(&steward, &b, "/console/datensaetze/neu").await;
    assert_eq!(status, 200, "{page}");
    // The choices are the schema's: every theme of its enumeration, by its German name.
    assert!(
        page.contains(r#"value="TRAN""#) && page.contains("Verkehr"),
        "themes from the schema"
    );
    assert!(
        page.contains("http://dcat-ap.de/def/licenses/dl-by-de/2.0"),
        "licences from the schema"
    );
    let t = token(&page);
    let mut form = registration(&t, "aalen-wartezeiten", "Wartezeiten im Bürgerbüro");
    // A hidden field a member adds to make the dataset another city's: the form has no such
    // field, and the publisher is the certificate's city.
    form.push(("publisher", "08135019"));
    let (status, location, body) = post(&steward, &b, "/console/datensaetze/neu", &form).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        location.as_deref(),
        Some("/console/datensaetze/aalen-wartezeiten/bearbeiten?gespeichert=1")
    );
    let (status, d) = dataset(&b, "aalen-wartezeiten").await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["publisher"], broker::demo::AALEN);
    assert_eq!(d["title"]["de"], "Wartezeiten im Bürgerbüro");
    assert_eq!(d["themes"], serde_json::json!(["GOVE", "SOCI"]));
    assert_eq!(d["keywords"], serde_json::json!(["Bürgerbüro", "Wartezeit"]));
    let registered: Vec<String> = b
        .audit_lines()
        .into_iter()
        .filter(|l| l.contains("\"dataset-registered\"") && l.contains("aalen-wartezeiten"))
        .collect();
    assert_eq!(registered.len(), 1, "recorded once, by the steward: {registered:?}");

    // The edit form starts from what is stored; a change is saved as the API's PUT would.
    let path = "/console/datensaetze/aalen-wartezeiten/bearbeiten";
    let (status, page) = get(&steward, &b, &format!("{path}?gespeichert=1")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("ist gespeichert") && page.contains("buergerbuero@aalen.example"),
        "{page}"
    );
    let t = token(&page);
    let mut form = registration(&t, "ignored", "Wartezeiten im Bürgerbüro Aalen");
    form.retain(|(k, _)| *k != "kennung");
    let (status, _, page) = post(&steward, &b, path, &form).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("ist gespeichert"), "{page}");
    let (_, d) = dataset(&b, "aalen-wartezeiten").await;
    assert_eq!(d["title"]["de"], "Wartezeiten im Bürgerbüro Aalen");
    assert!(b.audit_lines().iter().any(|l| l.contains("\"dataset-changed\"")));

    // Its hosted data, uploaded as a file from the same page (what a browser sends for a .csv
    // on Windows is not text/csv: the name's ending decides then).
    let upload_token = {
        let start = page.find("/daten\"").expect("an upload form");
        token(&page[start..])
    };
    let csv = "standort,tag,wartezeit\nInnenstadt,2026-11-02,12\nUnterkochen,2026-11-02,7\n";
    let upload_path = "/console/datensaetze/aalen-wartezeiten/daten";
    let (status, page) = upload(
        &steward,
        &b,
        upload_path,
        &upload_token,
        "wartezeiten.csv",
        "application/vnd.ms-excel",
        csv,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2 Datensätze aus „wartezeiten.csv“ sind hochgeladen"), "{page}");
    let (status, page) = upload(&steward, &b, upload_path, &upload_token, "bild.png", "image/png", "PNG").await;
    assert_eq!(status, 200);
    assert!(page.contains("weder CSV noch JSON"), "{page}");
    // The token of the description form does not open the upload.
    let (status, _) = upload(&steward, &b, upload_path, &t, "wartezeiten.csv", "text/csv", csv).await;
    assert_eq!(status, 403);
}

#[actix_rt::test]
async fn the_dataset_form_shows_the_schemas_violations_beside_their_fields_and_stores_nothing() {
    let b = TestBroker::start();
    let steward = b.client("aalen-steward");
    let (_, page) = get(&steward, &b, "/console/datensaetze/neu").await;
    let t = token(&page);
    let lines_before = b.audit_lines().len();
    let mut form = registration(&t, "aalen-kaputt", "");
    // No title, no contact e-mail or web page, and an access URL at a stranger's server.
    form.retain(|(k, _)| *k != "kontakt_email");
    form.retain(|(k, _)| *k != "verteilung_url_0");
    form.push(("verteilung_url_0", "https://evil.example/data"));
    let (status, _, page) = post(&steward, &b, "/console/datensaetze/neu", &form).await;
    assert_eq!(status, 200, "the form comes back: {page}");
    assert!(page.contains("ist so nicht gespeichert"), "{page}");
    assert!(
        page.contains(r##"href="#titel_de">Titel</a>"##),
        "the missing title, linked to its field: {page}"
    );
    assert!(page.contains(r##"href="#kontakt_name">Ansprechstelle</a>"##), "{page}");
    // What was typed is kept in the form.
    assert!(page.contains("https://evil.example/data") && page.contains("Bürgerbüro, Wartezeit"));
    let (status, _) = dataset(&b, "aalen-kaputt").await;
    assert_eq!(status, 404, "nothing stored");
    assert_eq!(b.audit_lines().len(), lines_before, "nothing recorded");

    // The title given, the stranger's server is refused by the provider rule, beside its row.
    let mut form = registration(&t, "aalen-kaputt", "Titel");
    form.retain(|(k, _)| *k != "verteilung_url_0");
    form.push(("verteilung_url_0", "https://evil.example/data"));
    let (_, _, page) = post(&steward, &b, "/console/datensaetze/neu", &form).await;
    assert!(page.contains(r##"href="#verteilung_typ_0">Verteilungen</a>"##), "{page}");
    assert!(page.contains("must be at a provider origin registered for"), "{page}");
    assert_eq!(dataset(&b, "aalen-kaputt").await.0, 404);

    // The schema admits access rights without a licence; the DCAT-AP.de shapes want a licence
    // on every distribution: their finding is shown beside the licence field, nothing stored.
    let mut form = registration(&t, "aalen-kaputt", "Titel");
    form.retain(|(k, _)| *k != "lizenz");
    let (status, _, page) = post(&steward, &b, "/console/datensaetze/neu", &form).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r##"href="#lizenz">Lizenz</a>: DCAT-AP.de"##), "{page}");
    assert_eq!(dataset(&b, "aalen-kaputt").await.0, 404);
    // The attempt was recorded before the store refused it, and its abort after.
    assert_eq!(
        b.audit_lines()
            .iter()
            .filter(|l| l.contains("\"dataset-registered-aborted\""))
            .count(),
        1
    );
}

#[actix_rt::test]
async fn another_citys_steward_cannot_open_or_post_the_edit_form_of_aalens_dataset() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", None).await;
    let path = format!("/console/datensaetze/{DATASET}/bearbeiten");
    let (status, page) = get(&b.client("heidenheim-steward"), &b, &path).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("gehört 08136088"), "{page}");
    // A token from Aalen's steward's page, posted with Heidenheim's certificate.
    let (_, own) = get(&b.client("aalen-steward"), &b, &path).await;
    let lifted = token(&own);
    let form = registration(&lifted, DATASET, "Übernommen von Heidenheim");
    let (status, _, _) = post(&b.client("heidenheim-steward"), &b, &path, &form).await;
    assert_eq!(status, 403);
    // Nor does a board member of Aalen edit descriptions, or a system certificate register.
    let (status, _, _) = post(&b.client("aalen-board"), &b, &path, &form).await;
    assert_eq!(status, 403);
    let (status, _) = get(&b.client("aalen-system"), &b, "/console/datensaetze/neu").await;
    assert_eq!(status, 403);
    // Nor upload data into Aalen's dataset.
    let (status, _) = upload(
        &b.client("heidenheim-steward"),
        &b,
        &format!("/console/datensaetze/{DATASET}/daten"),
        &lifted,
        "x.csv",
        "text/csv",
        "a\n1\n",
    )
    .await;
    assert_eq!(status, 403);
    let (_, d) = dataset(&b, DATASET).await;
    assert_ne!(d["title"]["de"], "Übernommen von Heidenheim");
    assert!(!b.audit_lines().iter().any(|l| l.contains("\"dataset-changed\"")));
}

#[actix_rt::test]
async fn the_board_reads_the_records_of_processing_and_the_denials_by_reason() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = request(&b, "heidenheim-system", "CommercialPurpose").await;
    assert_eq!(status, 403);
    let board = b.client("aalen-board");
    let (status, page) = get(&board, &b, "/console/verzeichnis").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Art. 30"), "{page}");
    assert!(
        page.contains("Stadt Heidenheim") || page.contains("Heidenheim"),
        "the recipient by name: {page}"
    );
    assert!(page.contains("Datenminimierung auf"), "the policy's measures in German: {page}");
    assert!(page.contains("Tage") || page.contains("P"), "the deletion period: {page}");
    let (status, page) = get(&board, &b, "/console/nutzung").await;
    assert_eq!(status, 200);
    assert!(page.contains("Ablehnungen nach Grund"), "{page}");
    assert!(
        page.contains("Bedingung nicht erfüllt") || page.contains("keine Erlaubnis"),
        "the denial's reason: {page}"
    );
    assert!(page.contains("Anfragen nach Partnerkommune"), "{page}");
    // Heidenheim's board sees none of Aalen's records of processing (its own city's only).
    let (_, page) = get(&b.client("heidenheim-board"), &b, "/console/verzeichnis").await;
    assert!(!page.contains(DATASET), "{page}");
}

#[actix_rt::test]
async fn the_trail_page_verifies_the_chain_and_names_a_tampered_record() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    for _ in 0..3 {
        let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{body}");
    }
    let board = b.client("aalen-board");
    let (status, page) = get(&board, &b, "/console/protokoll?pruefen=1").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Die Kette ist unversehrt"), "{page}");
    // Stewards and systems do not read the trail's state.
    assert_eq!(get(&b.client("aalen-steward"), &b, "/console/protokoll").await.0, 403);
    assert_eq!(get(&b.client("heidenheim-system"), &b, "/console/protokoll").await.0, 403);

    // Someone with access to the disk changes a recorded decision's consumer.
    let log = b.audit_log();
    let text = std::fs::read_to_string(&log).expect("trail");
    let forged = text.replacen("\"consumer\":\"08135019\"", "\"consumer\":\"08135020\"", 1);
    assert_ne!(forged, text, "a decision to forge");
    std::fs::write(&log, forged).expect("tamper");
    let (status, page) = get(&board, &b, "/console/protokoll?pruefen=1").await;
    assert_eq!(status, 200);
    assert!(page.contains("VERLETZT bei Eintrag"), "{page}");
}

#[actix_rt::test]
async fn the_console_switches_to_english_and_never_redirects_elsewhere() {
    let b = TestBroker::start();
    let board = browser_like(&b, "aalen-board");
    let resp = board
        .get(b.url("/console/sprache/en?zurueck=/console/nutzung%3Fjahr%3D2026"))
        .send()
        .await
        .expect("switch");
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/console/nutzung?jahr=2026")
    );
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    for part in ["konsole_sprache=en", "Path=/console", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    let mut resp = board
        .get(b.url("/console/nutzung"))
        .insert_header(("Cookie", "konsole_sprache=en"))
        .send()
        .await
        .expect("page");
    let page = String::from_utf8_lossy(&resp.body().limit(4 << 20).await.expect("body")).into_owned();
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("Denials by reason") && page.contains("Requests per month"), "{page}");
    assert!(page.contains(">Deutsch</a>"), "the way back: {page}");
    // German without the cookie.
    let (_, page) = get(&board, &b, "/console/nutzung").await;
    assert!(page.contains(r#"<html lang="de">"#) && page.contains("Ablehnungen nach Grund"));
    // The way back never leaves the console: another site, a scheme-relative URL, a backslash.
    for evil in [
        "https://evil.example/",
        "//evil.example/console/",
        "/console/\\evil.example",
        "/v1/datasets",
    ] {
        let resp = board
            .get(b.url(&format!(
                "/console/sprache/de?zurueck={}",
                evil.replace('/', "%2F").replace('\\', "%5C")
            )))
            .send()
            .await
            .expect("switch");
        assert_eq!(
            resp.headers().get("location").and_then(|v| v.to_str().ok()),
            Some("/console/"),
            "{evil}"
        );
    }
}
