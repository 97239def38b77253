//! Starting a broker with a fresh test PKI, and clients that present its certificates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use awc::Client;
use broker::catalog::{OxigraphCatalog, QueryLimits};
use broker::config::Config;
use broker::demo::{self, PkiLayout};
use broker::http::BackgroundServer;
use broker::tls;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct TestBroker {
    _dir: tempfile::TempDir,
    pub pki: PkiLayout,
    pub catalog: Arc<OxigraphCatalog>,
    pub addr: SocketAddr,
    /// The public transparency listener, if configured.
    pub public_addr: Option<SocketAddr>,
    /// The admin listener (health, metrics), if configured.
    pub admin_addr: Option<SocketAddr>,
    server: Option<BackgroundServer>,
    /// Aalen's own API (the example provider), registered as Aalen's provider origin.
    provider: BackgroundServer,
    pub config: Config,
}

/// Where a test's provider listens.
#[derive(Debug, Clone, Copy)]
pub struct Provider {
    pub addr: SocketAddr,
}

impl TestBroker {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Starts a broker on an ephemeral port with an in-memory store; `adjust` may change the config.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki_dir = dir.path().join("pki");
        std::fs::create_dir_all(&pki_dir).expect("pki dir");
        let pki = demo::write_test_pki(&pki_dir).expect("test PKI");
        let provider = start_provider(&pki);
        let text = demo::demo_config("127.0.0.1:0", None);
        let mut config = Config::parse(&text, dir.path()).expect("config");
        register_provider(&mut config, demo::AALEN, provider.addr);
        adjust(&mut config);
        // In memory, unless the adjustment gave a data directory (RocksDB, as deployed).
        let store = match &config.data_dir {
            Some(dir) => OxigraphCatalog::open(dir, &config.base_iri),
            None => OxigraphCatalog::in_memory(&config.base_iri),
        };
        let catalog = Arc::new(store.expect("store").with_workers(sparql_workers(&config)));
        let server = broker::serve::start_background(&config, catalog.clone(), 2).expect("start broker");
        let addr = server.addr;
        let public_addr = server.public_addr;
        let admin_addr = server.admin_addr;
        Self {
            _dir: dir,
            pki,
            catalog,
            addr,
            public_addr,
            admin_addr,
            server: Some(server),
            provider,
            config,
        }
    }

    /// Stops the broker and starts it again on the same state directory and store (on a new
    /// port): what survives is what the broker keeps on disk.
    pub fn restart(&mut self) {
        self.stop();
        let server = broker::serve::start_background(&self.config, self.catalog.clone(), 2).expect("restart broker");
        self.addr = server.addr;
        self.public_addr = server.public_addr;
        self.admin_addr = server.admin_addr;
        self.server = Some(server);
    }

    /// Stops the broker and closes its store, as a stopped broker leaves its directories (a
    /// restore writes into them).
    pub fn stop_and_close(&mut self) {
        self.stop();
        // The broker's threads let go of the store as they end.
        let start = std::time::Instant::now();
        while Arc::strong_count(&self.catalog) > 1 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the stopped broker still holds its store ({} holders)",
                Arc::strong_count(&self.catalog)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.catalog = Arc::new(OxigraphCatalog::in_memory(&self.config.base_iri).expect("store"));
    }

    /// Opens the store in the configured data directory again and starts the broker on it.
    pub fn reopen(&mut self) {
        let dir = self.config.data_dir.clone().expect("a data directory");
        let store = OxigraphCatalog::open(&dir, &self.config.base_iri).expect("reopen the store");
        self.catalog = Arc::new(store.with_workers(sparql_workers(&self.config)));
        self.restart();
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// The client TLS configuration presenting `<who>.crt`.
    pub fn client_config(&self, who: &str) -> rustls::ClientConfig {
        client_config(&self.pki, who)
    }

    /// An HTTP client presenting `<who>.crt`.
    pub fn client(&self, who: &str) -> Client {
        client(&self.pki, who)
    }

    /// Where the decision log, usage counts and pseudonym secret live.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("state")
    }

    /// Aalen's example provider (`examples/providers/`), started with the broker and registered
    /// as Aalen's provider origin: its appointments at `/appointments`.
    pub fn start_provider(&self) -> Provider {
        Provider { addr: self.provider.addr }
    }
    /// Stops the broker (its final audit checkpoint included) and keeps its files.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }

    /// The audit log's lines, as JSON text.
    pub fn audit_lines(&self) -> Vec<String> {
        log_lines(&self.audit_log())
    }

    /// The audit log.
    pub fn audit_log(&self) -> std::path::PathBuf {
        self.state_dir().join("audit.jsonl")
    }

    pub fn quad_count(&self) -> usize {
        self.catalog.quad_count().expect("count")
    }

    pub fn ca(&self) -> broker::pki::CertificateAuthority {
        broker::pki::CertificateAuthority::open(&self.pki.dir.join("ca")).expect("open CA")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

/// The SPARQL workers of a test broker: the broker binary cargo built for the tests.
pub fn sparql_workers(config: &Config) -> broker::catalog::isolated::WorkerSettings {
    broker::catalog::isolated::WorkerSettings {
        executable: env!("CARGO_BIN_EXE_broker").into(),
        dir: config.state_dir.join("sparql"),
        memory_bytes: 1 << 30,
    }
}

/// Limits small enough to trip in a test.
pub fn tight_sparql(config: &mut Config) {
    config.sparql = QueryLimits {
        timeout: Duration::from_millis(300),
        max_results: 5,
        max_concurrent: 2,
        max_per_member: 2,
        max_result_bytes: 1 << 20,
    };
}

/// A raw TLS connection and one HTTP/1.1 request: `Ok(status line)` if the broker answered,
/// `Err(text of the TLS error)` if the handshake or the first read was refused.
pub async fn raw_request(addr: SocketAddr, config: rustls::ClientConfig) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let mut tls = connector.connect(name, stream).await.map_err(|e| e.to_string())?;
    tls.write_all(b"GET /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().map(str::to_owned).ok_or_else(|| "empty response".to_owned())
}

/// A client configuration trusting the test CA but presenting no certificate.
pub fn anonymous_config(pki: &PkiLayout) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(tls::bsi_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(tls::root_store(&pki.ca_cert()).expect("roots"))
        .with_no_client_auth()
}

/// A client without a certificate for the public listener, and the URL of `path` there.
pub fn public_client(b: &TestBroker) -> (Client, impl Fn(&str) -> String) {
    let port = b.public_addr.expect("public listener").port();
    let connector = awc::Connector::new().rustls_0_23(Arc::new(anonymous_config(&b.pki)));
    (Client::builder().connector(connector).finish(), move |path: &str| {
        format!("https://127.0.0.1:{port}{path}")
    })
}

/// Reads a JSON body.
pub async fn json<S>(resp: &mut awc::ClientResponse<S>) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let bytes = resp.body().limit(10 * 1024 * 1024).await.expect("body");
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

pub fn example(name: &str) -> serde_json::Value {
    let path = format!("{}/../examples/datasets/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("example")).expect("example JSON")
}

/// Runs a SPARQL ASK query as `who` and returns its answer.
pub async fn sparql_ask(b: &TestBroker, who: &str, query: &str) -> bool {
    let mut resp = b
        .client(who)
        .get(b.url("/v1/sparql"))
        .query(&[("query", query)])
        .expect("query")
        .send()
        .await
        .expect("ask");
    json(&mut resp).await["boolean"].as_bool().expect("an ASK answer")
}

/// Submits a policy version as `who`: (status, body).
pub async fn submit_policy(b: &TestBroker, who: &str, dataset: &str, body: &str, media_type: &str) -> (u16, serde_json::Value) {
    let mut resp = b
        .client(who)
        .post(b.url(&format!("/v1/datasets/{dataset}/policy/versions")))
        .insert_header(("Content-Type", media_type))
        .send_body(body.to_owned())
        .await
        .expect("submit");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

/// Approves (or rejects) version `n` as `who`: (status, body).
pub async fn review_policy(b: &TestBroker, who: &str, dataset: &str, n: u64, verdict: &str) -> (u16, serde_json::Value) {
    let mut resp = b
        .client(who)
        .post(b.url(&format!("/v1/datasets/{dataset}/policy/versions/{n}/{verdict}")))
        .send()
        .await
        .expect("review");
    let status = resp.status().as_u16();
    (status, json(&mut resp).await)
}

/// Aalen's steward submits, Aalen's board member approves: the version is active. Returns the
/// approved version.
pub async fn attach_approved(b: &TestBroker, dataset: &str, turtle: &str) -> serde_json::Value {
    let (status, draft) = submit_policy(b, "aalen-steward", dataset, turtle, "text/turtle").await;
    assert_eq!(status, 201, "{draft}");
    let n = draft["version"].as_u64().expect("version");
    let (status, approved) = review_policy(b, "aalen-board", dataset, n, "approve").await;
    assert_eq!(status, 200, "{approved}");
    approved
}

/// The client TLS configuration presenting `<who>.crt` of `pki`.
pub fn client_config(pki: &PkiLayout, who: &str) -> rustls::ClientConfig {
    tls::client_config(&pki.ca_cert(), &pki.cert(who), &pki.key(who)).expect("client config")
}

/// An HTTP client presenting `<who>.crt` of `pki`.
pub fn client(pki: &PkiLayout, who: &str) -> Client {
    let connector = awc::Connector::new().rustls_0_23(Arc::new(client_config(pki, who)));
    Client::builder().connector(connector).timeout(Duration::from_secs(30)).finish()
}

/// Registers `https://<addr>` as a further provider origin of member `ags` in `config` (beside
/// the demo's, where the example datasets point).
pub fn register_provider(config: &mut Config, ags: &str, addr: SocketAddr) {
    let origin = format!("https://{addr}").parse().expect("origin");
    let member = config.members.iter_mut().find(|m| m.ags.as_str() == ags).expect("member");
    member.providers.push(origin);
}

/// Aalen's example provider (`examples/providers/`) behind mutual TLS with Aalen's provider
/// certificate, admitting only the broker, serving the appointments at `/appointments`.
pub fn start_provider(pki: &PkiLayout) -> BackgroundServer {
    start_provider_as(pki, "aalen")
}

/// The example provider with `<city>-provider`'s certificate.
pub fn start_provider_as(pki: &PkiLayout, city: &str) -> BackgroundServer {
    let tls = tls::provider_server_config(&demo::provider_tls_files(pki, city)).expect("provider TLS");
    let body = std::fs::read(format!(
        "{}/../examples/providers/aalen-buergerbuero-termine.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("data");
    let resources = vec![broker::http::provider::Resource {
        path: "/appointments".into(),
        content_type: "application/json".into(),
        body,
    }];
    broker::http::provider::start("127.0.0.1:0".parse().expect("addr"), tls, resources).expect("provider")
}

/// The lines of an audit log (none if there is none): the file without the padding (spaces)
/// after its last line.
pub fn log_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}
