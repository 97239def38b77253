//! `broker serve`: configuration in, a running broker out. Every file is read and every store
//! opened before the listener binds, so a bad setup ends with a message naming what is wrong.

use std::sync::Arc;

use crate::audit::file::FileAuditLog;
use crate::audit::keeper::Keeper;
use crate::audit::signing::Signer;
use crate::audit::{AdminRecord, AuditLog};
use crate::changes::{ChangeError, audited_blocking};
use crate::exchange::{Exchange, Parts};
use crate::hosted::FileHostedStore;

use crate::catalog::{Catalog, CatalogError, OxigraphCatalog};
use crate::config::{Config, ConfigError};
use crate::http::{self, AppState, BackgroundServer};
use crate::schema::{SchemaError, Schemas};
use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot open the metadata store: {0}")]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("the exchange state in '{path}' is unusable: {reason}")]
    State { path: String, reason: String },
    #[error("the bundled policy vocabulary does not load: {0}")]
    Vocabulary(#[from] policy_compiler::vocab::VocabError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

/// Opens the configured catalog: RocksDB in `data_dir`, or in memory; SPARQL queries are
/// answered by worker processes (`catalog::isolated`).
pub fn open_catalog(config: &Config) -> Result<Arc<OxigraphCatalog>, CatalogError> {
    let catalog = match &config.data_dir {
        Some(dir) => OxigraphCatalog::open(dir, &config.base_iri)?,
        None => OxigraphCatalog::in_memory(&config.base_iri)?,
    };
    let catalog = Arc::new(catalog.with_workers(sparql_workers(config)?));
    // The text index and the DCAT-AP.de shapes are built in the background, so that neither
    // the start nor the first search or registration waits for them.
    let warm = catalog.clone();
    let spawned = std::thread::Builder::new().name("catalog-warm".into()).spawn(move || {
        if let Err(e) = warm.warm_search() {
            tracing::warn!(error = %e, "the search index could not be built; the first search tries again");
        }
        if let Err(e) = crate::catalog::shacl::validator() {
            tracing::error!(error = %e, "the DCAT-AP.de shapes cannot be compiled; registrations will fail");
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread to build the search index ahead; the first search builds it");
    }
    Ok(catalog)
}

/// How the SPARQL workers of `config` are started.
pub fn sparql_workers(config: &Config) -> Result<crate::catalog::isolated::WorkerSettings, CatalogError> {
    let executable = match &config.sparql_worker {
        Some(p) => p.clone(),
        None => {
            std::env::current_exe().map_err(|e| CatalogError::Storage(format!("cannot find this program for the query workers: {e}")))?
        }
    };
    Ok(crate::catalog::isolated::WorkerSettings {
        executable,
        dir: config.state_dir.join("sparql"),
        memory_bytes: config.sparql_worker_memory,
    })
}

/// Everything the server needs, checked: TLS from the files, the audit trail, the catalog's
/// members brought in line with the configuration (each change recorded before it is made).
pub fn prepare(config: &Config, catalog: Arc<dyn Catalog>) -> Result<(rustls::ServerConfig, AppState, Keeper), ServeError> {
    let tls = tls::server_config(&config.tls)?;
    let audit = open_audit(config)?;
    reconcile_members(config, catalog.as_ref(), audit.as_ref())?;
    let keeper = Keeper::start(audit.clone(), config.audit, config.tls.crl.clone(), &config.state_dir);
    let vocab = Arc::new(policy_compiler::Vocabulary::standard()?);
    let upstream_tls = Arc::new(tls::client_config(
        &config.tls.client_ca,
        &config.tls.certificate,
        &config.tls.private_key,
    )?);
    let exchange = Arc::new(open_exchange(
        config,
        audit.clone(),
        catalog.clone(),
        vocab.clone(),
        upstream_tls,
        tls.revocation.clone(),
    )?);
    let admin = match config.admin_listen {
        Some(_) => Some(admin(config, &exchange, audit, tls.revocation.clone())?),
        None => None,
    };
    let state = AppState {
        console_csrf: crate::http::console::csrf::CsrfKey::derive(&exchange.secret),
        catalog: catalog.clone(),
        schemas: Schemas::compile()?,
        sparql_limits: config.sparql,
        max_body_bytes: config.max_body_bytes,
        max_import_bytes: config.max_import_bytes,
        vocab: vocab.clone(),
        exchange,
        revocation: tls.revocation,
        transparency_minimum: config.transparency.minimum_group,
        transparency_cache: crate::fresh::Fresh::new(crate::http::reports::TRANSPARENCY_FRESH),
        limits: Arc::new(crate::http::limits::Limits::new(config.limits)),
        members: crate::fresh::Fresh::new(crate::exchange::SNAPSHOT_TTL),
        base_iri: crate::catalog::dcat::Iris::new(&config.base_iri).base().to_owned(),
        space: config.catalog.clone(),
        trail: Arc::new(crate::http::console::board::TrailState::in_state_dir(&config.state_dir)),
        admin,
    };
    Ok((tls.config, state, keeper))
}

/// Checks `config` without starting anything: the TLS files load (certificate, key, CA, CRL),
/// the CRL and the broker's certificate are in date, the state directory can be created.
/// Returns what an operator should know (one line each).
pub fn check(config: &Config) -> Result<Vec<String>, ServeError> {
    let member = tls::server_config(&config.tls)?;
    let mut notes = vec![format!("member listener {} (mutual TLS)", config.listen)];
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let days = (tls::certificate_not_after(&config.tls.certificate)? - now) / 86_400;
    if days < 0 {
        return Err(ServeError::State {
            path: config.tls.certificate.display().to_string(),
            reason: "the broker's certificate has expired".into(),
        });
    }
    notes.push(format!("broker certificate valid for {days} more days"));
    let next = member.revocation.crl_status().map_err(|reason| ServeError::State {
        path: config.tls.crl.display().to_string(),
        reason,
    })?;
    notes.push(format!("CRL valid for {} more hours", (next - now) / 3600));
    if let Some(p) = config.transparency.listen {
        tls::public_server_config(&config.tls)?;
        notes.push(format!("public transparency report on {p}"));
    }
    match config.admin_listen {
        Some(a) => notes.push(format!("admin listener (health, metrics) on {a}")),
        None => notes.push("no admin listener ([admin] listen)".into()),
    }
    let creatable = config.state_dir.ancestors().find(|p| p.exists()).is_some_and(|p| p.is_dir());
    if !creatable {
        return Err(ServeError::State {
            path: config.state_dir.display().to_string(),
            reason: "no existing directory to create the state directory in".into(),
        });
    }
    notes.push(format!("state directory {}", config.state_dir.display()));
    notes.push(format!("{} members", config.members.len()));
    Ok(notes)
}

/// `broker audit rotate-key`: through the running broker's admin listener, or, when nothing
/// answers there, here (the catalog's lock taken first, so that a broker running without an
/// admin listener is not written beside). Returns the new public key.
pub fn rotate_audit_key(config: &Config) -> Result<String, ServeError> {
    let state_err = |reason: String| ServeError::State {
        path: config.state_dir.display().to_string(),
        reason,
    };
    if let Some(addr) = config.admin_listen
        && let Some((status, body)) = crate::admin_client::post(addr, &config.state_dir, "/audit/rotate-key").map_err(state_err)?
    {
        return match (status, body["publicKey"].as_str()) {
            // Whoever listens on the admin port could answer with a key of their own for the
            // board to trust: the key is the one the broker listed in its state directory.
            (200, Some(key)) if listed_last(&config.state_dir).as_deref() == Some(key) => Ok(key.to_owned()),
            (200, Some(key)) => Err(state_err(format!(
                "the admin listener answered key {key}, which is not the last key in {}: not trusted",
                crate::audit::signing::PUBLIC_FILE
            ))),
            _ => Err(state_err(format!(
                "the broker answered {status}: {}",
                body["detail"].as_str().unwrap_or("no detail")
            ))),
        };
    }
    let _running_guard = match &config.data_dir {
        Some(dir) => Some(OxigraphCatalog::open(dir, &config.base_iri).map_err(|e| {
            state_err(format!(
                "the catalog cannot be opened ({e}); is the broker running without an admin listener?"
            ))
        })?),
        None => None,
    };
    let log = FileAuditLog::open_stopped(&config.state_dir).map_err(state_err)?;
    crate::audit::rotate::rotate(&log, &config.state_dir).map_err(|e| state_err(e.to_string()))
}

/// The newest key listed in the state directory's `audit-signing.pub` (read as every reader of
/// that file reads it, `signing::parse_public_keys`).
fn listed_last(state_dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join(crate::audit::signing::PUBLIC_FILE)).ok()?;
    crate::audit::signing::parse_public_keys(&text).ok()?.last().map(|k| k.to_hex())
}

/// What is read at scrape time, from the broker's parts.
struct Sources {
    /// Weak: the audit trail holds the metrics (its batch observer) and the exchange holds the
    /// trail; a strong reference back would keep all of them alive after a stop.
    exchange: std::sync::Weak<Exchange>,
    tally: Arc<crate::reports::Tally>,
    revocation: Arc<crate::tls::ReloadingCrlVerifier>,
    catalog: Arc<dyn Catalog>,
}

impl crate::metrics::Sources for Sources {
    fn decisions(&self) -> (u64, u64, u64) {
        let v = self.tally.totals();
        (v.permits, v.denies, v.delivered)
    }

    fn crl_next_update(&self) -> Option<i64> {
        self.revocation.crl_status().ok()
    }

    fn sparql_running(&self) -> usize {
        crate::catalog::SparqlService::queries_running(self.catalog.as_ref())
    }

    fn caches(&self) -> Vec<(&'static str, (u64, u64))> {
        self.exchange.upgrade().map(|e| e.cache_lookups()).unwrap_or_default()
    }
}

/// Health and metrics for the admin listener: the metrics observe the audit trail's batches,
/// the probe policy is compiled and loaded now (a broken compiler or engine stops the start).
fn admin(
    config: &Config,
    exchange: &Arc<Exchange>,
    audit: Arc<FileAuditLog>,
    revocation: Arc<crate::tls::ReloadingCrlVerifier>,
) -> Result<crate::http::admin::Admin, ServeError> {
    let state_err = |reason: String| ServeError::State {
        path: config.state_dir.display().to_string(),
        reason,
    };
    let not_after = tls::certificate_not_after(&config.tls.certificate)?;
    let sources = Sources {
        exchange: Arc::downgrade(exchange),
        tally: exchange.tally.clone(),
        revocation,
        catalog: exchange.catalog.clone(),
    };
    let metrics = Arc::new(crate::metrics::Metrics::new(Arc::new(sources), not_after));
    audit.observe_batches(metrics.audit_observer());
    let probe = crate::health::Probe::new(exchange).map_err(state_err)?;
    let backup = Arc::new(crate::backup::Source::new(
        exchange.catalog.clone(),
        audit.clone(),
        exchange.hosted.clone(),
        &config.state_dir,
    ));
    Ok(crate::http::admin::Admin {
        metrics,
        audit,
        probe,
        backup,
        state_dir: config.state_dir.clone(),
        token: crate::http::admin::AdminToken::create(&config.state_dir).map_err(|e| state_err(format!("the admin token: {e}")))?,
    })
}

/// The configuration is the authority on members: each member it names is added or updated, and
/// each stored member it no longer names is removed (its certificates open nothing any more,
/// its datasets are no longer shared). Every change is recorded before it is made.
pub fn reconcile_members(config: &Config, catalog: &dyn Catalog, audit: &dyn AuditLog) -> Result<(), ServeError> {
    let state_err = |reason: String| ServeError::State {
        path: config.state_dir.display().to_string(),
        reason,
    };
    let changed = |e: ChangeError<CatalogError>| match e {
        ChangeError::Failed(e) => ServeError::Catalog(e),
        other => state_err(other.to_string()),
    };
    for m in &config.members {
        let stored = catalog.member(&m.ags)?;
        if stored.as_ref() == Some(m) {
            continue;
        }
        let action = if stored.is_some() { "member-changed" } else { "member-registered" };
        let record = AdminRecord::by_broker(action, m.ags.to_string(), serde_json::to_value(m).unwrap_or_default());
        audited_blocking(audit, record, || catalog.put_member(m)).map_err(changed)?;
    }
    for stored in catalog.members()? {
        if config.members.iter().any(|m| m.ags == stored.ags) {
            continue;
        }
        let detail = serde_json::json!({ "organisation": stored.organisation, "reason": "no longer in the configuration" });
        let record = AdminRecord::by_broker("member-removed", stored.ags.to_string(), detail);
        audited_blocking(audit, record, || catalog.remove_member(&stored.ags)).map_err(changed)?;
    }
    Ok(())
}

/// The audit chain in the state directory, signed with the broker's audit key.
fn open_audit(config: &Config) -> Result<Arc<FileAuditLog>, ServeError> {
    let dir = &config.state_dir;
    let err = |reason: String| ServeError::State {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let signer = Signer::open_or_create(dir).map_err(|e| err(format!("audit key: {e}")))?;
    let log = FileAuditLog::open(&dir.join("audit.jsonl"), Arc::new(signer)).map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(log))
}

/// The decision log, usage counts (from the log) and pseudonym secret in the state directory.
fn open_exchange(
    config: &Config,
    audit: Arc<FileAuditLog>,
    catalog: Arc<dyn Catalog>,
    vocab: Arc<policy_compiler::Vocabulary>,
    upstream_tls: Arc<rustls::ClientConfig>,
    revocation: Arc<crate::tls::ReloadingCrlVerifier>,
) -> Result<Exchange, ServeError> {
    let dir = &config.state_dir;
    let err = |reason: String| ServeError::State {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let secret = secret_file(&dir.join("pseudonym.key")).map_err(|e| err(e.to_string()))?;
    let data_key = secret_file(&dir.join("hosted.key")).map_err(|e| err(e.to_string()))?;
    let hosted = FileHostedStore::new(&dir.join("hosted"), &data_key).map_err(|e| err(e.to_string()))?;
    // The trail is the durable record of every use (see `usage`).
    let ledgers = crate::exchange::Ledgers::from_trail(audit.as_ref()).map_err(|e| err(e.to_string()))?;
    let engine = policy_evaluator::Engine::new(policy_evaluator::Limits::default()).map_err(|e| err(e.to_string()))?;
    Ok(Exchange::new(Parts {
        catalog,
        vocab,
        upstream_tls,
        revocation: Some(revocation),
        pool: policy_evaluator::WorkerPool::new(engine),
        log: audit,
        usage: Arc::new(ledgers.usage),
        privacy: Arc::new(ledgers.privacy),
        tally: Arc::new(ledgers.tally),
        hosted: Arc::new(hosted),
        secret,
        upstream: config.upstream,
    }))
}

/// 32 random bytes, created once (mode 0600) and kept: pseudonyms stay stable and hosted data
/// stays readable across restarts.
fn secret_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        Ok(_) => Err(std::io::Error::other(format!("{} is not 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| std::io::Error::other("no randomness"))?;
            crate::fsutil::write_atomic(path, &secret, 0o600)?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

fn listen_err(addr: std::net::SocketAddr) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Listen {
        addr: addr.to_string(),
        source,
    }
}

/// Runs the broker until it is stopped (SIGINT/SIGTERM).
pub fn run(config: &Config, workers: usize) -> Result<(), ServeError> {
    let catalog = open_catalog(config)?;
    let (tls, state, keeper) = prepare(config, catalog)?;
    let public = public_listener(config)?;
    let result =
        http::run(config.listen, tls, public, config.admin_listen, state, workers).map_err(|(addr, source)| listen_err(addr)(source));
    // The final checkpoint, after the last request was answered.
    keeper.stop();
    result
}

/// Starts the broker on a background thread with the given catalog.
pub fn start_background(config: &Config, catalog: Arc<dyn Catalog>, workers: usize) -> Result<BackgroundServer, ServeError> {
    let (tls, state, keeper) = prepare(config, catalog)?;
    let public = public_listener(config)?;
    let server =
        http::start(config.listen, tls, public, config.admin_listen, state, workers).map_err(|(addr, source)| listen_err(addr)(source))?;
    Ok(server.on_stop(move || keeper.stop()))
}

/// The public listener's address and TLS, if one is configured.
fn public_listener(config: &Config) -> Result<Option<(std::net::SocketAddr, rustls::ServerConfig)>, ServeError> {
    match config.transparency.listen {
        Some(addr) => Ok(Some((addr, tls::public_server_config(&config.tls)?))),
        None => Ok(None),
    }
}
