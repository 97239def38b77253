//! Operations: the admin listener's health and metrics, as the data centre's monitoring reads
//! them — readiness that turns false when the audit trail cannot be written or the CRL expires
//! and back when fixed, metrics whose labels never name a dataset or a member, and an admin
//! listener that refuses to face the network unless told so by a `dangerous_` setting.

use std::net::SocketAddr;

use serde_json::Value;

use crate::exchange::{DATASET, POLICY, request, set_up};
use crate::support::TestBroker;

fn with_admin(c: &mut broker::config::Config) {
    c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
}

/// A GET on the admin listener (plain HTTP): status and body.
async fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut resp = awc::Client::default()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("admin listener");
    let body = resp.body().limit(8 << 20).await.expect("body");
    (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

async fn readiness(b: &TestBroker) -> (u16, Value) {
    let (status, body) = admin_get(b.admin_addr.expect("admin listener"), "/health/ready").await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn failing(r: &Value) -> Vec<String> {
    r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[actix_rt::test]
async fn readiness_turns_false_when_the_trail_is_unwritable_or_the_crl_expires_and_back_when_fixed() {
    let b = TestBroker::start_with(with_admin);
    let admin = b.admin_addr.expect("admin listener");
    assert_eq!(admin_get(admin, "/health/live").await.0, 200);
    let (status, r) = readiness(&b).await;
    assert_eq!(status, 200, "{r}");
    let names: Vec<&str> = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["store", "audit-trail", "crl", "policy-engine"]);

    // The trail's file can no longer be appended to (a directory where it was: root ignores
    // file modes).
    let log = b.audit_log();
    let aside = log.with_extension("aside");
    std::fs::rename(&log, &aside).expect("move the trail aside");
    std::fs::create_dir(&log).expect("a directory in its place");
    let (status, r) = readiness(&b).await;
    assert_eq!(status, 503, "{r}");
    assert_eq!(failing(&r), ["audit-trail"], "{r}");
    assert!(r["checks"][1]["problem"].as_str().is_some_and(|p| p.contains("audit.jsonl")), "{r}");
    std::fs::remove_dir(&log).expect("rm dir");
    std::fs::rename(&aside, &log).expect("the trail back");
    assert_eq!(readiness(&b).await.0, 200, "ready again once the trail is writable");

    // The CRL expires (re-signed with an end a minute ago): every client would be refused.
    let ca = b.ca();
    ca.resign_crl_until(time::OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .expect("expired CRL");
    let (status, r) = readiness(&b).await;
    assert_eq!(status, 503, "{r}");
    assert_eq!(failing(&r), ["crl"], "{r}");
    assert!(r["checks"][2]["problem"].as_str().is_some_and(|p| p.contains("expired")), "{r}");
    ca.resign_crl().expect("a fresh CRL");
    let (status, r) = readiness(&b).await;
    assert_eq!(status, 200, "{r}");
}

#[actix_rt::test]
async fn metrics_count_requests_by_route_pattern_and_never_name_a_dataset_or_member() {
    let b = TestBroker::start_with(with_admin);
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    for _ in 0..2 {
        let (status, body, _) = request(&b, "heidenheim-system", "ImprovePublicServices").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, _) = request(&b, "heidenheim-system", "CommercialPurpose").await;
    assert_eq!(status, 403);
    // A path a caller makes up is not a label either.
    let resp = b
        .client("heidenheim-system")
        .get(b.url("/v1/datasets/ein-ausgedachter-name/data"))
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let _ = b.client("heidenheim-system").get(b.url("/etwas/ganz/anderes")).send().await;

    let (status, text) = admin_get(b.admin_addr.expect("admin"), "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let line = |prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert_eq!(
        line(r#"kdr_http_requests_total{route="/v1/datasets/{id}/data",method="GET",status="200"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        line(r#"kdr_http_requests_total{route="/v1/datasets/{id}/data",method="GET",status="403"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        line(r#"kdr_http_requests_total{route="unmatched",method="GET",status="404"}"#).is_some(),
        "{text}"
    );
    assert!(line(r#"kdr_http_request_duration_seconds_count{route="/v1/datasets/{id}/data"}"#).is_some_and(|n| n >= 3.0));
    assert_eq!(line(r#"kdr_decisions_total{decision="permit"}"#), Some(2.0), "{text}");
    assert_eq!(line(r#"kdr_decisions_total{decision="deny"}"#), Some(1.0), "{text}");
    assert_eq!(line("kdr_deliveries_total "), Some(2.0), "{text}");
    assert!(line("kdr_crl_seconds_until_next_update ").is_some_and(|s| s > 86_400.0), "{text}");
    assert!(line("kdr_certificate_days_remaining ").is_some_and(|d| d > 0.0), "{text}");
    assert_eq!(line("kdr_sparql_queries_running "), Some(0.0), "{text}");
    // Three requests for one dataset: its snapshot and policy module were built once, then kept.
    assert!(
        line(r#"kdr_cache_lookups_total{cache="snapshots",result="hit"}"#).is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        line(r#"kdr_cache_lookups_total{cache="policy-modules",result="hit"}"#).is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        line(r#"kdr_cache_lookups_total{cache="policy-modules",result="miss"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(line("kdr_audit_write_seconds_count ").is_some_and(|n| n >= 1.0), "{text}");
    assert!(line("kdr_audit_batch_records_sum ").is_some_and(|n| n >= 3.0), "{text}");
    for secret in [
        DATASET,
        "ein-ausgedachter-name",
        "etwas",
        broker::demo::HEIDENHEIM,
        broker::demo::AALEN,
    ] {
        assert!(!text.contains(secret), "'{secret}' in the metrics:\n{text}");
    }
    // The admin listener serves health and metrics, nothing of the API.
    assert_eq!(admin_get(b.admin_addr.expect("admin"), "/v1/datasets").await.0, 404);
}

#[test]
fn the_admin_listener_faces_the_network_only_when_told_so_dangerously() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = broker::demo::demo_config("127.0.0.1:0", None);
    let remote = format!("{base}\n[admin]\nlisten = \"0.0.0.0:9464\"\n");
    let err = broker::config::Config::parse(&remote, dir.path()).expect_err("refused");
    assert!(err.contains("dangerous_listen_beyond_loopback"), "{err}");
    let allowed = format!("{base}\n[admin]\nlisten = \"0.0.0.0:9464\"\ndangerous_listen_beyond_loopback = true\n");
    let config = broker::config::Config::parse(&allowed, dir.path()).expect("allowed when told");
    assert_eq!(config.admin_listen, Some("0.0.0.0:9464".parse().expect("addr")));
    let local = format!("{base}\n[admin]\nlisten = \"[::1]:9464\"\n");
    assert!(broker::config::Config::parse(&local, dir.path()).is_ok());
}

#[test]
fn environment_variables_override_the_file_and_are_named_when_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = broker::demo::demo_config("127.0.0.1:8443", None);
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> { pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() };
    let c = broker::config::Config::parse_with_env(
        &base,
        dir.path(),
        env(&[
            ("BROKER__LISTEN", "127.0.0.1:7443"),
            ("BROKER__ADMIN__LISTEN", "127.0.0.1:9464"),
            ("BROKER__TRANSPARENCY__MINIMUM_GROUP", "7"),
            ("broker__not_ours", "ignored: the prefix is upper case"),
            ("HOME", "/root"),
        ]),
    )
    .expect("overridden");
    assert_eq!(c.listen, "127.0.0.1:7443".parse().expect("addr"));
    assert_eq!(c.admin_listen, Some("127.0.0.1:9464".parse().expect("addr")));
    assert_eq!(c.transparency.minimum_group, 7);
    let err = broker::config::Config::parse_with_env(&base, dir.path(), env(&[("BROKER__ADMIN__LISTN", "127.0.0.1:1")]))
        .expect_err("a misspelt setting");
    assert!(err.contains("listn") && err.contains("BROKER__ADMIN__LISTN"), "{err}");
    let err = broker::config::Config::parse_with_env(&base, dir.path(), env(&[("BROKER__MEMBERS", "[]")])).expect_err("members");
    assert!(err.contains("BROKER__MEMBERS"), "{err}");
    let err = broker::config::Config::parse_with_env(&base, dir.path(), env(&[("BROKER__ADMIN__LISTEN", "0.0.0.0:9464")]))
        .expect_err("the environment cannot open the admin listener to the network either");
    assert!(err.contains("dangerous_listen_beyond_loopback"), "{err}");
}

#[test]
fn config_check_validates_a_file_without_starting_anything() {
    let dir = tempfile::tempdir().expect("tmp");
    broker::demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, broker::demo::demo_config("127.0.0.1:8443", None)).expect("config");
    let check = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_broker"));
        cmd.args(["config", "check", "--config"]).arg(&file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("broker");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = check(&[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("OK") && text.contains("CRL valid for") && text.contains("2 members"),
        "{text}"
    );
    assert!(!dir.path().join("state").exists(), "nothing started, nothing created");
    let (ok, text) = check(&[("BROKER__ADMIN__LISTEN", "0.0.0.0:9464")]);
    assert!(!ok && text.contains("dangerous_listen_beyond_loopback"), "{text}");
    std::fs::write(dir.path().join("pki/ca/ca.crl"), "not a CRL").expect("break the CRL");
    let (ok, text) = check(&[]);
    assert!(!ok && text.contains("ca.crl"), "{text}");
}

#[actix_rt::test]
async fn json_logs_carry_the_decision_id_of_each_request_and_no_names() {
    use crate::crash::{Running, free_port, wait_ready};
    let dir = tempfile::tempdir().expect("tmp");
    let pki = broker::demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let provider = crate::support::start_provider(&pki);
    let port = free_port();
    let config = dir.path().join("broker.toml");
    let text = broker::demo::demo_config(&format!("127.0.0.1:{port}"), None).replacen(
        "providers = [\"https://127.0.0.1:9441\"]",
        &format!("providers = [\"https://{}\"]", provider.addr),
        1,
    );
    std::fs::write(&config, text).expect("config");
    let stderr = std::fs::File::create(dir.path().join("broker.log")).expect("log file");
    let _broker = Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
            .args(["serve", "--workers", "2", "--config"])
            .arg(&config)
            .env("BROKER_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,opa_wasm=warn,access=info")
            .stderr(stderr)
            .spawn()
            .expect("start broker"),
    );
    wait_ready(([127, 0, 0, 1], port).into()).await;
    let base = format!("https://127.0.0.1:{port}");
    let steward = crate::support::client(&pki, "aalen-steward");
    let mut d = crate::support::example(DATASET);
    d["distributions"] = serde_json::json!([{ "mediaType": "application/json", "accessURL": format!("https://127.0.0.1:{}/appointments", provider.addr.port()) }]);
    assert_eq!(
        steward
            .post(format!("{base}/v1/datasets"))
            .send_json(&d)
            .await
            .expect("register")
            .status(),
        201
    );
    let resp = steward
        .post(format!("{base}/v1/datasets/{DATASET}/policy/versions"))
        .insert_header(("Content-Type", "text/turtle"))
        .send_body(POLICY)
        .await
        .expect("submit");
    assert_eq!(resp.status(), 201);
    let board = crate::support::client(&pki, "aalen-board");
    let resp = board
        .post(format!("{base}/v1/datasets/{DATASET}/policy/versions/1/approve"))
        .send()
        .await
        .expect("approve");
    assert_eq!(resp.status(), 200);
    let consumer = crate::support::client(&pki, "heidenheim-system");
    let mut ids = Vec::new();
    for purpose in ["ImprovePublicServices", "CommercialPurpose"] {
        let resp = consumer
            .get(format!("{base}/v1/datasets/{DATASET}/data"))
            .query(&[("purpose", format!("{}{purpose}", crate::exchange::DPV))])
            .expect("query")
            .send()
            .await
            .expect("request");
        let id = resp
            .headers()
            .get("x-decision-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("a decision id on the {} answer", resp.status()))
            .to_owned();
        ids.push(id);
    }
    // The access log is written after the answer: give the writer a moment.
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let logged = std::fs::read_to_string(dir.path().join("broker.log")).expect("log");
    let lines: Vec<Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "access").collect();
    assert!(access.len() >= 5, "{logged}");
    let trail = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).expect("trail");
    for id in &ids {
        let line = access
            .iter()
            .find(|l| l["decision"] == id.as_str())
            .unwrap_or_else(|| panic!("no access line with decision {id}: {logged}"));
        assert_eq!(line["route"], "/v1/datasets/{id}/data");
        assert!(trail.contains(id.as_str()), "the decision {id} is in the trail");
    }
    for line in &access {
        let text = line.to_string();
        for name in [
            broker::demo::person("heidenheim-system"),
            broker::demo::person("aalen-steward"),
            DATASET,
        ] {
            assert!(!text.contains(name), "'{name}' in an access line: {text}");
        }
    }
}

/// Regression: `broker serve` bound the admin and public listeners but only ever polled the
/// member listener, so health, metrics and the transparency report never answered in a
/// deployment (the tests' in-process broker started all three). Found installing the Debian
/// package.
#[actix_rt::test]
async fn broker_serve_answers_on_its_admin_and_public_listeners() {
    let dir = tempfile::tempdir().expect("tmp");
    broker::demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let (member, admin, public) = (crate::crash::free_port(), crate::crash::free_port(), crate::crash::free_port());
    let text = broker::demo::demo_config(&format!("127.0.0.1:{member}"), Some("data"))
        + &broker::demo::demo_public_config(&format!("127.0.0.1:{public}"));
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, format!("{text}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n")).expect("config");
    let _broker = crate::crash::Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
            .args(["serve", "--workers", "2", "--config"])
            .arg(&config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start broker"),
    );
    crate::crash::wait_ready(([127, 0, 0, 1], member).into()).await;
    let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
    crate::crash::wait_ready(admin).await;
    let client = awc::Client::builder().timeout(std::time::Duration::from_secs(10)).finish();
    let resp = client
        .get(format!("http://{admin}/health/live"))
        .send()
        .await
        .expect("the admin listener answers");
    assert_eq!(resp.status(), 200);
    crate::crash::wait_ready(([127, 0, 0, 1], public).into()).await;
    let roots = broker::tls::root_store(&dir.path().join("pki/ca/ca.crt")).expect("roots");
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let public_client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls)))
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let resp = public_client
        .get(format!("https://127.0.0.1:{public}/transparency"))
        .send()
        .await
        .expect("the public listener answers");
    assert_eq!(resp.status(), 200);
}
