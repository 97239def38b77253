//! What the metrics add to one request of the member listener, alone. Run on purpose, not a test.
//!
//! Issue 21's goal is that metrics cost under 2 % of throughput. `scripts/bench-metrics.sh`
//! measures throughput with and without them beside nginx, but on this machine two rounds of the
//! same build differ by far more than 2 %: that run cannot tell the two apart. This measures the
//! difference itself — the member listener's route table and its wrapper
//! (`http::admin::before`/`after`, as `http::bind` installs it) serving the hot path in-process,
//! once without metrics and once with them, the two variants taking turns round by round, on as
//! many threads as cores, all threads sharing one `Metrics` as the broker's workers do. No
//! tracing subscriber: the access log is off, as by default. The request ends in the handler's
//! extractor failing (no broker state in this app: a 500), the same work in both variants.
//!
//! It prints one JSON line: nanoseconds a request in each variant (medians over the rounds) and
//! their difference, which `bench-metrics.sh` sets beside the broker's CPU time a request.
//!
//!   cargo run --profile production -p broker --example metrics_bench -- [requests] [rounds]

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use actix_web::{App, test};
use broker::http::{admin, routes};
use broker::metrics::{Metrics, Sources};

/// The values read at scrape time; nothing scrapes here.
struct Unscraped;

impl Sources for Unscraped {
    fn decisions(&self) -> (u64, u64, u64) {
        (0, 0, 0)
    }
    fn crl_next_update(&self) -> Option<i64> {
        None
    }
    fn sparql_running(&self) -> usize {
        0
    }
}

/// `requests` requests of the hot path through the member listener's routes and wrapper; the
/// time they took.
async fn serve(metrics: Option<Arc<Metrics>>, requests: usize) -> Duration {
    let app = test::init_service(
        App::new()
            .wrap_fn(move |req, srv| {
                let noted = admin::before(metrics.as_ref(), &req);
                let answer = srv.call(req);
                async move { admin::after(noted, answer.await) }
            })
            .configure(routes::configure),
    )
    .await;
    let started = Instant::now();
    for _ in 0..requests {
        let req = test::TestRequest::get()
            .uri("/v1/datasets/aalen-buergerbuero-termine/data?purpose=dpv:ServiceProvision")
            .to_request();
        let status = app.call(req).await.map(|res| res.status().as_u16()).unwrap_or(0);
        std::hint::black_box(status);
    }
    started.elapsed()
}

/// One round of a variant: every thread serves `requests`; nanoseconds a request, averaged.
fn round(metrics: Option<&Arc<Metrics>>, threads: usize, requests: usize) -> f64 {
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let metrics = metrics.cloned();
            std::thread::spawn(move || actix_rt::System::new().block_on(serve(metrics, requests)))
        })
        .collect();
    let total: Duration = handles.into_iter().map(|h| h.join().expect("a bench thread panicked")).sum();
    total.as_nanos() as f64 / (threads * requests) as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let metrics = Arc::new(Metrics::new(Arc::new(Unscraped), 0));
    // Warm both variants up (allocator, route table, the metric families' first labels).
    round(None, threads, requests / 10);
    round(Some(&metrics), threads, requests / 10);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        without.push(round(None, threads, requests));
        with.push(round(Some(&metrics), threads, requests));
    }
    let counted = metrics
        .render()
        .map(|text| text.contains("route=\"/v1/datasets/{id}/data\""))
        .unwrap_or(false);
    assert!(
        counted,
        "the metrics did not count the hot path's route: the benchmark measured nothing"
    );
    let (without, with) = (median(without), median(with));
    println!(
        "{{\"threads\":{threads},\"requests\":{requests},\"rounds\":{rounds},\"without_ns\":{without:.1},\"with_ns\":{with:.1},\"added_ns\":{:.1}}}",
        with - without
    );
}
