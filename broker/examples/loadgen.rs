//! A small load generator for the exchange benchmark (`scripts/bench-exchange.sh`): N keep-alive
//! connections, each presenting a client certificate, sending GETs for S seconds; prints the
//! throughput and latency percentiles as one JSON line. Run on purpose, never in the tests.
//!
//! Usage: loadgen URL --ca CA --cert CERT --key KEY [--connections 16] [--seconds 10]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("usage: loadgen URL --ca CA --cert CERT --key KEY"))?;
    let need = |n: &str| arg(&args, n).ok_or_else(|| anyhow::anyhow!("{n} is required"));
    let tls = broker::tls::client_config(need("--ca")?.as_ref(), need("--cert")?.as_ref(), need("--key")?.as_ref())?;
    let tls = Arc::new(tls);
    let connections: usize = arg(&args, "--connections").map_or(Ok(16), |v| v.parse())?;
    let seconds: u64 = arg(&args, "--seconds").map_or(Ok(10), |v| v.parse())?;
    let latencies = Rc::new(RefCell::new(Vec::<Duration>::new()));
    let failures = Rc::new(RefCell::new(0u64));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    actix_rt::System::new().block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (tls, url, latencies, failures) = (tls.clone(), url.clone(), latencies.clone(), failures.clone());
            tasks.push(actix_rt::spawn(async move {
                // One client per task: its own keep-alive connection.
                let client = awc::Client::builder()
                    .connector(awc::Connector::new().rustls_0_23(tls).limit(1))
                    .timeout(Duration::from_secs(30))
                    .finish();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = match client.get(&url).send().await {
                        Ok(mut r) => r.body().limit(64 << 20).await.is_ok() && r.status().is_success(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies.borrow_mut().push(t.elapsed());
                    } else {
                        *failures.borrow_mut() += 1;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.borrow_mut();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{}",
        serde_json::json!({
            "url": url, "connections": connections, "seconds": elapsed,
            "ok": l.len(), "failed": *failures.borrow(),
            "rps": l.len() as f64 / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        })
    );
    Ok(())
}
