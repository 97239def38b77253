//! The audit trail survives a crash: the broker binary is killed with SIGKILL under concurrent
//! load and restarted; its log verifies, and every request that got an answer has its record.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::exchange::{DATASET, DPV, POLICY};
use crate::support::{client, example, start_provider};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The broker's process, killed when the test ends however it ends: a failed assertion left
/// brokers running for hours before.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_broker(config: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_broker"))
            .args(["serve", "--workers", "2", "--config"])
            .arg(config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start broker"),
    )
}

pub async fn wait_ready(addr: SocketAddr) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the broker did not start on {addr}");
}

fn verify(log: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["audit", "verify", "--json"])
        .arg(log)
        .output()
        .expect("verify");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(out.status.code(), Some(0), "{report}");
    report
}

fn logged_decisions(log: &Path) -> BTreeSet<String> {
    broker::audit::file::read_entries(log)
        .expect("entries")
        .into_iter()
        .filter_map(|e| match e.event {
            broker::audit::Event::Decision(d) => Some(d.id),
            _ => None,
        })
        .collect()
}

/// Requests in a loop until the broker stops answering; returns the decision ids it answered.
async fn hammer(pki: broker::demo::PkiLayout, url: String, answered: Arc<Mutex<Vec<String>>>) {
    let c = client(&pki, "heidenheim-system");
    for i in 0.. {
        let purpose = if i % 3 == 0 { "CommercialPurpose" } else { "ImprovePublicServices" };
        let Ok(mut resp) = c
            .get(&url)
            .query(&[("purpose", format!("{DPV}{purpose}"))])
            .expect("query")
            .send()
            .await
        else {
            return;
        };
        let id = resp.headers().get("x-decision-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let Ok(body) = resp.body().limit(1 << 20).await else {
            return;
        };
        let id = id.or_else(|| {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["decisionId"].as_str().map(str::to_owned))
        });
        if let Some(id) = id {
            answered.lock().expect("lock").push(id);
        }
    }
}

#[actix_rt::test]
async fn a_broker_killed_under_load_leaves_a_log_that_verifies_with_every_answered_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = broker::demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let provider = start_provider(&pki);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = dir.path().join("broker.toml");
    let text = broker::demo::demo_config(&format!("127.0.0.1:{port}"), Some("data")).replacen(
        "providers = [\"https://127.0.0.1:9441\"]",
        &format!("providers = [\"https://{}\"]", provider.addr),
        1,
    );
    std::fs::write(&config, format!("{text}[audit]\ncheckpoint_interval_s = 1\n")).expect("config");
    let log = dir.path().join("data/audit.jsonl");

    let mut child = spawn_broker(&config);
    wait_ready(addr).await;
    let base = format!("https://127.0.0.1:{port}");
    let steward = client(&pki, "aalen-steward");
    let mut d = example(DATASET);
    d["distributions"] = serde_json::json!([{ "mediaType": "application/json", "accessURL": format!("https://127.0.0.1:{}/appointments", provider.addr.port()) }]);
    let resp = steward.post(format!("{base}/v1/datasets")).send_json(&d).await.expect("register");
    assert_eq!(resp.status(), 201);
    let resp = steward
        .post(format!("{base}/v1/datasets/{DATASET}/policy/versions"))
        .insert_header(("Content-Type", "text/turtle"))
        .send_body(POLICY)
        .await
        .expect("submit");
    assert_eq!(resp.status(), 201);
    let resp = client(&pki, "aalen-board")
        .post(format!("{base}/v1/datasets/{DATASET}/policy/versions/1/approve"))
        .send()
        .await
        .expect("approve");
    assert_eq!(resp.status(), 200);

    let answered = Arc::new(Mutex::new(Vec::new()));
    let url = format!("{base}/v1/datasets/{DATASET}/data");
    let tasks: Vec<_> = (0..8)
        .map(|_| actix_rt::spawn(hammer(pki.clone(), url.clone(), answered.clone())))
        .collect();
    // Until well past the first checkpoints, and then in the middle of the load.
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    for t in tasks {
        t.await.expect("task");
    }
    let answered: BTreeSet<String> = answered.lock().expect("lock").iter().cloned().collect();
    assert!(answered.len() > 20, "load was running: {} answers", answered.len());

    let report = verify(&log);
    assert!(report["checkpoints"].as_u64() >= Some(1), "{report}");
    let logged = logged_decisions(&log);
    let missing: Vec<_> = answered.difference(&logged).collect();
    assert!(missing.is_empty(), "answered but not in the log: {missing:?}");

    // Restarted, the broker continues the chain; stopped with SIGTERM, it signs the head.
    let mut child = spawn_broker(&config);
    wait_ready(addr).await;
    let resp = client(&pki, "heidenheim-system")
        .get(&url)
        .query(&[("purpose", format!("{DPV}ImprovePublicServices"))])
        .expect("query")
        .send()
        .await
        .expect("after restart");
    assert!([200, 403].contains(&resp.status().as_u16()), "{:?}", resp.status());
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    child.0.wait().expect("stopped");
    let report = verify(&log);
    assert_eq!(report["lastSignedSeq"], report["lastSeq"], "{report}");
    assert!(logged_decisions(&log).is_superset(&answered));
}

/// The query workers' processes whose command line names `dir` (zombies have none).
fn workers_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("sparql-worker") && c.contains(&needle)
            })
        })
        .collect()
}

/// A process's or thread's niceness from its `stat` file (the 19th field; the 2nd, the name,
/// may hold spaces). 100 when the file is gone (the thread ended).
fn niceness(stat: &str) -> i64 {
    let Ok(stat) = std::fs::read_to_string(stat) else {
        return 100;
    };
    let after_name = &stat[stat.rfind(')').expect("name") + 2..];
    after_name.split(' ').nth(16).and_then(|n| n.parse().ok()).expect("niceness")
}

/// Regression (orphaned_sparql_workers): a broker killed while a query bomb ran left its worker
/// processes running on at full CPU for minutes; the next broker (and everything else on the
/// machine) shared the cores with them.
#[actix_rt::test]
async fn query_workers_end_with_a_killed_broker() {
    let dir = tempfile::tempdir().expect("tmp");
    let pki = broker::demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = dir.path().join("broker.toml");
    let text = broker::demo::demo_config(&format!("127.0.0.1:{port}"), Some("data"));
    // A deadline long past the test's end: the bomb is still running when its broker dies.
    let long = text.replace("timeout_ms = 5000", "timeout_ms = 60000");
    assert_ne!(long, text, "the demo configuration sets the SPARQL deadline");
    std::fs::write(&config, long).expect("config");
    let mut child = spawn_broker(&config);
    wait_ready(addr).await;
    let bomb = format!(
        "SELECT * WHERE {{ {} FILTER(?a + ?b + ?c + ?d + ?e + ?f < 0) }}",
        ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|v| format!(
                "VALUES ?{v} {{ {} }}",
                (1..=40).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let c = client(&pki, "aalen-system");
    let url = format!("https://127.0.0.1:{port}/v1/sparql");
    let asking = actix_rt::spawn(async move {
        let _ = c.get(&url).query(&[("query", bomb)]).expect("query").send().await;
    });
    let mut running = Vec::new();
    for _ in 0..100 {
        running = workers_under(dir.path());
        if !running.is_empty() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!running.is_empty(), "the bomb runs in a worker");
    // Past its grace, the query's thread runs at the lowest priority; the broker's do not.
    let broker = niceness(&format!("/proc/{}/stat", child.0.id()));
    let mut demoted = false;
    for _ in 0..50 {
        demoted = running.iter().any(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .any(|t| niceness(&t.path().join("stat").to_string_lossy()) == broker + 19)
        });
        if demoted {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(demoted, "the bomb's thread is demoted to the lowest priority");
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    let _ = asking.await;
    let mut left = running.clone();
    for _ in 0..50 {
        left = workers_under(dir.path());
        if left.is_empty() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "workers {left:?} outlived their broker");
}
