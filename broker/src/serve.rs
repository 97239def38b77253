//! `broker serve`: configuration in, a running broker out. Every file is read and every store
//! opened before the listener binds, so a bad setup ends with a message naming what is wrong.

use std::sync::Arc;

use crate::audit::file::FileAuditLog;
use crate::audit::keeper::Keeper;
use crate::audit::signing::Signer;
use crate::audit::{AdminRecord, AuditLog, Event};
use crate::exchange::Exchange;
use crate::hosted::FileHostedStore;
use crate::usage::TrailUsageCounter;

use crate::catalog::{Catalog, CatalogError, OxigraphCatalog};
use crate::config::{Config, ConfigError};
use crate::http::{self, AppState, BackgroundServer};
use crate::schema::{SchemaError, Schemas};
use crate::tls::{self, TlsError};
use actix_web::web;

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

/// Opens the configured catalog: RocksDB in `data_dir`, or in memory.
pub fn open_catalog(config: &Config) -> Result<Arc<OxigraphCatalog>, CatalogError> {
    let catalog = match &config.data_dir {
        Some(dir) => OxigraphCatalog::open(dir, &config.base_iri)?,
        None => OxigraphCatalog::in_memory(&config.base_iri)?,
    };
    Ok(Arc::new(catalog))
}

/// Everything the server needs, checked: TLS from the files, the audit trail, the catalog with
/// the configured members seeded into it (each change recorded).
pub fn prepare(config: &Config, catalog: Arc<dyn Catalog>) -> Result<(rustls::ServerConfig, AppState, Keeper), ServeError> {
    let tls = tls::server_config(&config.tls)?;
    let audit = open_audit(config)?;
    let state_err = |reason: String| ServeError::State {
        path: config.state_dir.display().to_string(),
        reason,
    };
    for m in &config.members {
        if catalog.member(&m.ags)?.as_ref() != Some(m) {
            catalog.put_member(m)?;
            let record = AdminRecord::by_broker("member-registered", m.ags.to_string(), serde_json::to_value(m).unwrap_or_default());
            audit.append(Event::Admin(record)).map_err(|e| state_err(e.to_string()))?;
        }
    }
    let keeper = Keeper::start(audit.clone(), config.audit, config.tls.crl.clone(), &config.state_dir);
    let state = AppState {
        catalog,
        schemas: Schemas::compile()?,
        sparql_limits: config.sparql,
        max_body_bytes: config.max_body_bytes,
        vocab: Arc::new(policy_compiler::Vocabulary::standard()?),
        exchange: Arc::new(open_exchange(config, audit)?),
        transparency_minimum: config.transparency.minimum_group,
        members: crate::fresh::Fresh::new(crate::exchange::SNAPSHOT_TTL),
        upstream_tls: Arc::new(tls::client_config(
            &config.tls.client_ca,
            &config.tls.certificate,
            &config.tls.private_key,
        )?),
    };
    Ok((tls, state, keeper))
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
fn open_exchange(config: &Config, audit: Arc<FileAuditLog>) -> Result<Exchange, ServeError> {
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
    let usage = TrailUsageCounter::from_trail(audit.as_ref()).map_err(|e| err(e.to_string()))?;
    let engine = policy_evaluator::Engine::new(policy_evaluator::Limits::default()).map_err(|e| err(e.to_string()))?;
    Ok(Exchange::new(
        policy_evaluator::WorkerPool::new(engine),
        audit,
        Arc::new(usage),
        Arc::new(hosted),
        secret,
        config.upstream,
    ))
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
    let public_tls = match config.transparency.listen {
        Some(_) => Some(tls::public_server_config(&config.tls)?),
        None => None,
    };
    let listen = config.listen;
    let public = config.transparency.listen;
    let state = web::Data::new(state);
    let result = actix_web::rt::System::new().block_on(async move {
        let (server, addrs) = http::bind(listen, tls, state.clone(), workers).map_err(listen_err(listen))?;
        for a in &addrs {
            tracing::info!(addr = %a, "broker listening (mutual TLS)");
        }
        let public = match (public, public_tls) {
            (Some(addr), Some(ptls)) => {
                let (p, addrs) = http::bind_public(addr, ptls, state).map_err(listen_err(addr))?;
                for a in &addrs {
                    tracing::info!(addr = %a, "public transparency report listening (TLS, no client certificate)");
                }
                Some(p)
            }
            _ => None,
        };
        let main = server.await.map_err(listen_err(listen));
        if let Some(p) = public {
            p.handle().stop(true).await;
        }
        main
    });
    // The final checkpoint, after the last request was answered.
    keeper.stop();
    result
}

/// Starts the broker on a background thread with the given catalog.
pub fn start_background(config: &Config, catalog: Arc<dyn Catalog>, workers: usize) -> Result<BackgroundServer, ServeError> {
    let (tls, state, keeper) = prepare(config, catalog)?;
    let state = web::Data::new(state);
    let public = match config.transparency.listen {
        Some(addr) => {
            let ptls = tls::public_server_config(&config.tls)?;
            let st = state.clone();
            Some(BackgroundServer::spawn(move || http::bind_public(addr, ptls, st)).map_err(listen_err(addr))?)
        }
        None => None,
    };
    let server = BackgroundServer::start(config.listen, tls, state, workers).map_err(listen_err(config.listen))?;
    let public_addr = public.as_ref().map(|p| p.addr);
    Ok(server.with_public(public_addr).on_stop(move || {
        if let Some(p) = public {
            p.stop();
        }
        keeper.stop();
    }))
}
