//! What the data centre's monitoring scrapes: Prometheus/OpenMetrics metrics of the broker, on
//! the admin listener only (bound to localhost unless configured otherwise).
//!
//! Why these and no more: every label set is bounded by the broker, never by a caller — the
//! route is the matched route's pattern (`/v1/datasets/{id}/data`, never a dataset id), the
//! method one of a fixed few, the status a number; no member, dataset or person appears in a
//! label. Counts that the trail already keeps (decisions by outcome) are read from the usage
//! tally at scrape time instead of being counted a second time on the request path; the values
//! that only make sense now (CRL, certificate, SPARQL slots) are read at scrape time too. What
//! the request path pays is one counter and one histogram observation per request.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A request's labels: the matched route's pattern, the method, the status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

/// A route's label (the latency histogram's).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Request latency buckets, seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];

/// Audit batch sizes (records) and write-and-`fsync` times (seconds).
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const FSYNC_BUCKETS: [f64; 12] = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The method as a bounded label value.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// What is read at scrape time, from the parts of the broker that know it.
pub trait Sources: Send + Sync + 'static {
    /// Decisions tallied: (permitted, denied, delivered).
    fn decisions(&self) -> (u64, u64, u64);
    /// The CRL's `nextUpdate` (seconds since the epoch), if the CRL is usable.
    fn crl_next_update(&self) -> Option<i64>;
    /// SPARQL queries evaluating now.
    fn sparql_running(&self) -> usize;
    /// The request path's caches by name: (hits, misses) so far.
    fn caches(&self) -> Vec<(&'static str, (u64, u64))> {
        Vec::new()
    }
}

/// The broker's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    audit_batch_records: Histogram,
    audit_write_seconds: Histogram,
    audit_failed_batches: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The values read at scrape time.
struct Scraped {
    sources: Arc<dyn Sources>,
    /// The broker's own certificate's `notAfter`, seconds since the epoch.
    certificate_not_after: i64,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").finish_non_exhaustive()
    }
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (permits, denies, delivered) = self.sources.decisions();
        let mut decisions = encoder.encode_descriptor(
            "kdr_decisions",
            "Decisions recorded in the audit trail, by decision (read from the trail's tally).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (decision, n) in [("permit", permits), ("deny", denies)] {
            let labels = [("decision", decision)];
            ConstCounter::new(n).encode(decisions.encode_family(&labels)?)?;
        }
        let e = encoder.encode_descriptor(
            "kdr_deliveries",
            "Permitted requests whose data was delivered.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        ConstCounter::new(delivered).encode(e)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let crl = ConstGauge::new(self.sources.crl_next_update().map_or(-1, |t| t - now));
        let e = encoder.encode_descriptor(
            "kdr_crl_seconds_until_next_update",
            "Seconds until the CRL's nextUpdate; negative: expired or unusable (every client is refused).",
            None,
            crl.metric_type(),
        )?;
        crl.encode(e)?;
        let days = ConstGauge::new((self.certificate_not_after - now) / 86_400);
        let e = encoder.encode_descriptor(
            "kdr_certificate_days_remaining",
            "Days until the broker's own certificate expires.",
            None,
            days.metric_type(),
        )?;
        days.encode(e)?;
        let running = ConstGauge::new(i64::try_from(self.sources.sparql_running()).unwrap_or(i64::MAX));
        let e = encoder.encode_descriptor(
            "kdr_sparql_queries_running",
            "SPARQL queries evaluating now (slots in use).",
            None,
            running.metric_type(),
        )?;
        running.encode(e)?;
        let mut lookups = encoder.encode_descriptor(
            "kdr_cache_lookups",
            "Lookups in the request path's caches (compiled policy modules, duty lists, dataset snapshots), by result.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (cache, (hits, misses)) in self.sources.caches() {
            for (result, n) in [("hit", hits), ("miss", misses)] {
                let labels = [("cache", cache), ("result", result)];
                ConstCounter::new(n).encode(lookups.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// The metrics, with what is read at scrape time from `sources`, and the broker's
    /// certificate's expiry.
    pub fn new(sources: Arc<dyn Sources>, certificate_not_after: i64) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "kdr_http_requests",
            "Requests answered on the member listener, by route pattern, method and status.",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "kdr_http_request_duration",
            "Time from the request's head to its response's head, by route pattern.",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let audit_batch_records = Histogram::new(BATCH_BUCKETS);
        registry.register(
            "kdr_audit_batch_records",
            "Records per group-committed batch of the audit trail.",
            audit_batch_records.clone(),
        );
        let audit_write_seconds = Histogram::new(FSYNC_BUCKETS);
        registry.register_with_unit(
            "kdr_audit_write",
            "Time to write and fsync one batch of the audit trail.",
            prometheus_client::registry::Unit::Seconds,
            audit_write_seconds.clone(),
        );
        let audit_failed_batches = Counter::default();
        registry.register(
            "kdr_audit_failed_batches",
            "Batches of the audit trail that could not be written (their requests were refused).",
            audit_failed_batches.clone(),
        );
        registry.register_collector(Box::new(Scraped {
            sources,
            certificate_not_after,
        }));
        Self {
            registry,
            requests,
            latency,
            audit_batch_records,
            audit_write_seconds,
            audit_failed_batches,
        }
    }

    /// One answered request.
    pub fn request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route: route.to_owned() })
            .observe(took.as_secs_f64());
    }

    /// What the audit trail's writer tells of each batch.
    pub fn audit_observer(self: &Arc<Self>) -> crate::durable::BatchObserver {
        let me = Arc::clone(self);
        Box::new(move |records, took, failed| {
            me.audit_batch_records.observe(records as f64);
            me.audit_write_seconds.observe(took.as_secs_f64());
            if failed {
                me.audit_failed_batches.inc();
            }
        })
    }

    /// The OpenMetrics text of every metric now.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
