//! Console render-time benchmark, run on purpose (not a test):
//!
//!     cargo run --profile production -p broker --example console_bench -- [datasets] [records] [requests]
//!
//! A broker on RocksDB with `datasets` datasets of Aalen (default 1,000) and an audit trail of
//! `records` decision records over the last twelve months (default 1,000,000; the usage tally is
//! built from it at start, as always), one draft waiting. Then each console page is asked for
//! `requests` times (default 200) by Aalen's board member (the steward for the workbench) over one
//! kept-alive connection, and its p50 / p95 / max are printed (goal of issue 20: p95 < 50 ms).
//! The public transparency page too, with its cache bypassed after the first request being the
//! point of the cache: the first (cold) render is printed separately.

use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::catalog::{DatasetCatalog, OxigraphCatalog};
use broker::config::Config;
use broker::demo;

#[path = "common/state.rs"]
mod state;
use state::{datasets, write_trail};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n_datasets = args.first().copied().unwrap_or(1_000);
    let records = args.get(1).copied().unwrap_or(1_000_000);
    let requests = args.get(2).copied().unwrap_or(200);
    let dir = tempfile::tempdir_in(".").expect("a directory on the disk under test");
    let pki = demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let data = dir.path().join("data");
    let text = demo::demo_config("127.0.0.1:0", Some(data.to_str().expect("utf-8 path")));
    let mut config = Config::parse(&text, dir.path()).expect("config");
    config.transparency.listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.limits.member_per_second = 1_000_000;
    config.limits.public_per_second = 1_000_000;
    std::fs::create_dir_all(&config.state_dir).expect("state");
    let t = Instant::now();
    write_trail(&config.state_dir, records, n_datasets);
    println!("trail: {records} decision records written in {:.1} s", t.elapsed().as_secs_f64());
    let catalog = Arc::new(OxigraphCatalog::open(config.data_dir.as_ref().expect("data dir"), &config.base_iri).expect("store"));
    let t = Instant::now();
    let server = broker::serve::start_background(&config, catalog.clone(), 2).expect("broker");
    println!("broker started in {:.1} s (tally from the trail)", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for d in datasets(n_datasets) {
        catalog.insert_dataset(&d).expect("dataset");
    }
    println!("{n_datasets} datasets registered in {:.1} s", t.elapsed().as_secs_f64());
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let public = format!("https://127.0.0.1:{}", server.public_addr.expect("public").port());
    let policy = include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl").replace("aalen-buergerbuero-termine", "bench-0");
    let steward = broker::client::Connection {
        broker: base.clone(),
        ca: pki.ca_cert(),
        certificate: pki.cert("aalen-steward"),
        private_key: pki.key("aalen-steward"),
    };
    let answer = steward
        .call(
            "POST",
            "/v1/datasets/bench-0/policy/versions",
            Some((policy.into_bytes(), "text/turtle".into())),
        )
        .expect("submit");
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));

    let pages: Vec<(&str, String)> = vec![
        ("aalen-board", format!("{base}/console/")),
        ("aalen-board", format!("{base}/console/datensaetze")),
        ("aalen-board", format!("{base}/console/datensaetze?q=Termine")),
        ("aalen-board", format!("{base}/console/freigaben")),
        ("aalen-board", format!("{base}/console/freigaben/bench-0/1")),
        ("aalen-board", format!("{base}/console/nutzung")),
        ("aalen-board", format!("{base}/console/nutzung.csv")),
        ("aalen-board", format!("{base}/console/verzeichnis")),
        ("aalen-board", format!("{base}/console/protokoll")),
        ("aalen-steward", format!("{base}/console/datensaetze/bench-0/richtlinie")),
        ("aalen-steward", format!("{base}/console/datensaetze/neu")),
        ("aalen-steward", format!("{base}/console/datensaetze/bench-0/bearbeiten")),
        ("", format!("{public}/transparency")),
    ];
    println!("{:<48} {:>8} {:>8} {:>8}", "page", "p50 ms", "p95 ms", "max ms");
    actix_rt::System::new().block_on(async move {
        for (who, url) in pages {
            let tls = if who.is_empty() {
                let roots = broker::tls::root_store(&pki.ca_cert()).expect("roots");
                rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
            } else {
                broker::tls::client_config(&pki.ca_cert(), &pki.cert(who), &pki.key(who)).expect("tls")
            };
            let client = awc::Client::builder()
                .connector(awc::Connector::new().rustls_0_23(Arc::new(tls)))
                .timeout(Duration::from_secs(60))
                .finish();
            let mut times = Vec::with_capacity(requests);
            for i in 0..=requests {
                let t = Instant::now();
                let mut resp = client
                    .get(&url)
                    .insert_header(("Accept", "text/html"))
                    .send()
                    .await
                    .expect("request");
                let body = resp.body().limit(64 << 20).await.expect("body");
                assert_eq!(resp.status(), 200, "{url}: {}", String::from_utf8_lossy(&body));
                // The first request opens the connection (TLS handshake); it is not counted.
                if i > 0 {
                    times.push(t.elapsed());
                }
            }
            times.sort();
            let path = url.splitn(4, '/').nth(3).unwrap_or_default();
            println!(
                "{:<48} {:>8.2} {:>8.2} {:>8.2}",
                format!("/{path}"),
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                percentile(&times, 1.0)
            );
        }
        // Verifying the whole chain from the board's page is on request (a button), not a
        // page view: one run, timed.
        let tls = broker::tls::client_config(&pki.ca_cert(), &pki.cert("aalen-board"), &pki.key("aalen-board")).expect("tls");
        let client = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(Arc::new(tls)))
            .timeout(Duration::from_secs(600))
            .finish();
        let t = Instant::now();
        let mut resp = client
            .get(format!("{base}/console/protokoll?pruefen=1"))
            .send()
            .await
            .expect("verify");
        let body = resp.body().limit(64 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("unversehrt"), "the bench trail verifies");
        println!("verifying the whole trail from the console: {:.2} s", t.elapsed().as_secs_f64());
    });
    drop(server);
}
