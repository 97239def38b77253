//! Availability under hostile load (issue 18): each test is an attempt by a member or a stranger
//! to starve the broker or the other members, and checks the limit that stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestBroker, json};

/// A query whose evaluation never reads the store and holds little memory: a cross product of
/// inline data (a billion rows), filtered to nothing. In-process it ran on after its deadline,
/// using a core; in a worker it is killed at the deadline.
pub fn cpu_bomb() -> String {
    let values = |v: &str| {
        let items: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
        format!("VALUES ?{v} {{ {} }} ", items.join(" "))
    };
    format!(
        "SELECT * WHERE {{ {}{}{}FILTER(?a + ?b + ?c < 0) }}",
        values("a"),
        values("b"),
        values("c")
    )
}

/// A string doubled 30 times: a gigabyte from a few hundred bytes of query.
fn doubling_bomb() -> String {
    let mut q = String::from("SELECT ?s30 WHERE { BIND(\"xxxxxxxxxxxxxxxx\" AS ?s0) ");
    for i in 1..=30 {
        q.push_str(&format!("BIND(CONCAT(?s{p}, ?s{p}) AS ?s{i}) ", p = i - 1));
    }
    q.push('}');
    q
}

async fn sparql(b: &TestBroker, who: &str, query: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let mut resp = b
        .client(who)
        .get(b.url("/v1/sparql"))
        .query(&[("query", query)])
        .expect("query")
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(1 << 24).await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        started.elapsed(),
    )
}

/// CPU time (user + system, in clock ticks) of every `sparql-worker` process of this test run.
fn worker_cpu_ticks(dir: &std::path::Path) -> u64 {
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains("sparql-worker") || !cmdline.contains(dir.to_string_lossy().as_ref()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        ticks += fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks
}

#[actix_rt::test]
async fn a_sparql_bomb_past_its_deadline_stops_using_cpu_and_frees_its_slot() {
    let b = TestBroker::start_with(|c| {
        c.sparql.timeout = Duration::from_millis(500);
        c.sparql.max_concurrent = 2;
        c.sparql.max_per_member = 2;
    });
    let (status, body, took) = sparql(&b, "heidenheim-system", &cpu_bomb()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/sparql-timeout");
    assert!(took < Duration::from_secs(3), "answered at the deadline, took {took:?}");
    // The slot is free at once, and no worker burns CPU any more.
    assert_eq!(b.catalog.running_queries(), 0);
    let sparql_dir = b.state_dir().join("sparql");
    let before = worker_cpu_ticks(&sparql_dir);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker_cpu_ticks(&sparql_dir) <= before + 5,
        "no worker keeps computing after the deadline"
    );
    // Two more bombs and a plain query: the plain one is answered at once.
    let bomb = cpu_bomb();
    let bombs = [sparql(&b, "heidenheim-system", &bomb), sparql(&b, "heidenheim-steward", &bomb)];
    let (bombs, ok) = tokio::join!(futures_util::future::join_all(bombs), async {
        // Past the bombs' deadline; on a loaded machine stopping them may take a little longer
        // than the deadline itself, so wait (bounded) until their slots are given back.
        tokio::time::sleep(Duration::from_millis(700)).await;
        for _ in 0..100 {
            if b.catalog.running_queries() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sparql(&b, "aalen-system", "ASK { }").await
    });
    assert!(bombs.iter().all(|(s, _, _)| *s == 503), "{bombs:?}");
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert!(ok.2 < Duration::from_secs(1), "another member's query answered in {:?}", ok.2);
}

#[actix_rt::test]
async fn queries_on_the_rocksdb_store_are_answered_and_bombs_stopped_there_too() {
    let b = TestBroker::start_with(|c| {
        c.data_dir = Some(c.state_dir.join("graph"));
        c.sparql.timeout = Duration::from_millis(800);
    });
    let resp = b
        .client("aalen-steward")
        .post(b.url("/v1/datasets"))
        .send_json(&crate::support::example("aalen-kita-plaetze"))
        .await
        .expect("register");
    assert_eq!(resp.status(), 201);
    let (status, body, _) = sparql(
        &b,
        "heidenheim-system",
        "ASK { ?d <http://purl.org/dc/terms/identifier> \"aalen-kita-plaetze\" }",
    )
    .await;
    assert_eq!((status, &body["boolean"]), (200, &serde_json::json!(true)), "{body}");
    let (status, body, took) = sparql(&b, "heidenheim-system", &cpu_bomb()).await;
    assert_eq!(status, 503, "{body}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(b.catalog.running_queries(), 0);
    // Stopped by the memory cap or the deadline, whichever comes first.
    let (status, body, _) = sparql(&b, "heidenheim-system", &doubling_bomb()).await;
    assert!(status == 422 || status == 503, "{body}");
    let (status, _, _) = sparql(&b, "heidenheim-system", "ASK { }").await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn one_member_cannot_take_every_sparql_slot() {
    let b = TestBroker::start_with(|c| {
        c.sparql.timeout = Duration::from_millis(1500);
        c.sparql.max_concurrent = 3;
        c.sparql.max_per_member = 1;
    });
    // Heidenheim's system and steward are one member: the second bomb is refused at once.
    let bomb = cpu_bomb();
    let first = sparql(&b, "heidenheim-system", &bomb);
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sparql(&b, "heidenheim-steward", &bomb).await
    };
    let other = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sparql(&b, "aalen-system", "ASK { }").await
    };
    let (first, second, other) = tokio::join!(first, second, other);
    assert_eq!(first.0, 503, "{}", first.1);
    assert_eq!(second.0, 429, "{}", second.1);
    assert_eq!(second.1["type"], "https://w3id.org/kdr/problems/sparql-member-busy");
    assert_eq!(other.0, 200, "Aalen still gets a slot: {}", other.1);
}

#[actix_rt::test]
async fn a_query_that_grows_a_string_past_the_memory_limit_costs_only_its_worker() {
    let b = TestBroker::start_with(|c| c.sparql.timeout = Duration::from_secs(20));
    let (status, body, _) = sparql(&b, "heidenheim-system", &doubling_bomb()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/sparql-memory-limit", "{body}");
    let (status, _, _) = sparql(&b, "heidenheim-system", "ASK { }").await;
    assert_eq!(status, 200, "the next query gets a new worker");
}

#[actix_rt::test]
async fn a_member_over_its_request_rate_gets_429_with_retry_after() {
    let b = TestBroker::start_with(|c| c.limits.member_per_second = 5);
    let client = b.client("heidenheim-system");
    let mut refused = None;
    for _ in 0..30 {
        let mut resp = client.get(b.url("/v1/whoami")).send().await.expect("send");
        if resp.status() == 429 {
            let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            refused = Some((retry, json(&mut resp).await));
            break;
        }
    }
    let (retry, body) = refused.expect("a burst of 30 is over a rate of 5 a second");
    assert!(retry.is_some_and(|r| r.parse::<u32>().is_ok_and(|s| s >= 1)));
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/rate-limited");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("5 requests a second")), "{body}");
    // Another member is not affected.
    let resp = b.client("aalen-system").get(b.url("/v1/whoami")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
}

#[actix_rt::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off() {
    let b = TestBroker::start_with(|c| c.limits.body_timeout = Duration::from_millis(800));
    let mut conn = tls(b.addr, b.client_config("aalen-steward")).await;
    let head = "POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    conn.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let mut answer = Vec::new();
    for _ in 0..20 {
        if conn.write_all(b" ").await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(250), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body-too-slow"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[actix_rt::test]
async fn a_certificate_cannot_hold_more_connections_than_its_share() {
    let b = TestBroker::start_with(|c| c.limits.connections_per_certificate = 2);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tls(b.addr, b.client_config("heidenheim-system")).await;
        assert!(get(&mut c, "/v1/whoami").await.starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut third = tls(b.addr, b.client_config("heidenheim-system")).await;
    let answer = get(&mut third, "/v1/whoami").await;
    assert!(answer.starts_with("HTTP/1.1 429") && answer.contains("connections"), "{answer}");
    let mut other = tls(b.addr, b.client_config("aalen-system")).await;
    assert!(
        get(&mut other, "/v1/whoami").await.starts_with("HTTP/1.1 200"),
        "another certificate is not affected"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = tls(b.addr, b.client_config("heidenheim-system")).await;
    assert!(
        get(&mut again, "/v1/whoami").await.starts_with("HTTP/1.1 200"),
        "closed connections free their places"
    );
}

#[actix_rt::test]
async fn a_wrong_method_is_405_with_allow_and_framework_errors_are_problems() {
    let b = TestBroker::start();
    let mut resp = b.client("aalen-system").delete(b.url("/v1/whoami")).send().await.expect("send");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET"));
    let body = json(&mut resp).await;
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/method-not-allowed");
    let mut resp = b
        .client("aalen-system")
        .get(b.url("/v1/datasets/aalen-kita-plaetze/policy/versions/zwei"))
        .send()
        .await
        .expect("send");
    assert!(resp.status() == 404 || resp.status() == 400);
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let _ = json(&mut resp).await;
    let mut resp = b
        .client("aalen-system")
        .get(format!("{}?bucket=week", b.url("/v1/reports/usage")))
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "a malformed query string is a problem too"
    );
    let _ = json(&mut resp).await;
}

#[actix_rt::test]
async fn the_public_report_is_made_once_a_minute_and_an_address_is_rate_limited() {
    let b = TestBroker::start_with(|c| {
        c.transparency.listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.limits.public_per_second = 2;
    });
    let addr = b.public_addr.expect("public listener");
    let config = crate::support::anonymous_config(&b.pki);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let mut c = tls(addr, config.clone()).await;
        statuses.push(get(&mut c, "/transparency").await);
    }
    assert!(statuses[0].starts_with("HTTP/1.1 200"), "{}", statuses[0]);
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("HTTP/1.1 429") && s.to_ascii_lowercase().contains("retry-after")),
        "{statuses:?}"
    );
}

#[actix_rt::test]
async fn a_steward_cannot_pile_up_drafts_without_end() {
    let b = TestBroker::start();
    let provider = b.start_provider();
    crate::exchange::set_up(&b, provider.addr.port(), "/appointments", None).await;
    for n in 0..10 {
        let (status, body) = crate::support::submit_policy(
            &b,
            "aalen-steward",
            crate::exchange::DATASET,
            crate::exchange::POLICY,
            "text/turtle",
        )
        .await;
        assert_eq!(status, 201, "draft {n}: {body}");
    }
    let (status, body) = crate::support::submit_policy(
        &b,
        "aalen-steward",
        crate::exchange::DATASET,
        crate::exchange::POLICY,
        "text/turtle",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "https://w3id.org/kdr/problems/too-many-drafts");
}

async fn tls(addr: SocketAddr, config: rustls::ClientConfig) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake")
}

/// One GET on a kept-alive connection: the response head and as much body as came at once.
async fn get(conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 16384];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
