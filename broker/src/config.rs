//! Configuration: `RawConfig` is the TOML file as written; [`Config`] is what the broker runs
//! with, every path resolved against the file's directory and every value checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{Member, QueryLimits};
use crate::tls::ServerTlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file '{path}': {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the configuration file '{path}' is invalid: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: SocketAddr,
    /// Base IRI of the broker's resources in the graph.
    #[serde(default = "default_base_iri")]
    base_iri: String,
    tls: RawTls,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    sparql: RawSparql,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    exchange: RawExchange,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    transparency: RawTransparency,
    #[serde(default)]
    catalog: RawCatalog,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    members: Vec<Member>,
}

/// The admin listener: health and metrics in plain HTTP.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    /// Where `/health/live`, `/health/ready` and `/metrics` are served (off if absent). A
    /// loopback address unless `dangerous_listen_beyond_loopback` is set.
    listen: Option<SocketAddr>,
    /// Serve health and metrics on a non-loopback address: they need no certificate, so only
    /// behind a firewall that admits the monitoring system alone.
    #[serde(default)]
    dangerous_listen_beyond_loopback: bool,
}

/// What the data space's own catalog says of itself (harvest pages, `dcat:Catalog`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    /// `dct:title` (German).
    title: Option<String>,
    /// `dct:description` (German).
    description: Option<String>,
    /// Who runs the broker: the catalog's `dct:publisher`.
    operator: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    /// Seconds between signed checkpoints of the audit chain (default 60; one is also made on
    /// shutdown).
    checkpoint_interval_s: Option<u64>,
    /// Records older than this many days are pruned (default: kept forever).
    retention_days: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTransparency {
    /// Where the public transparency report is served without client certificates (off if absent).
    listen: Option<SocketAddr>,
    /// Groups with fewer deliveries are suppressed (default 5).
    minimum_group: Option<u64>,
}

/// The public transparency report.
#[derive(Debug, Clone, Copy)]
pub struct TransparencySettings {
    pub listen: Option<SocketAddr>,
    pub minimum_group: u64,
}

/// How the audit trail is kept.
#[derive(Debug, Clone, Copy)]
pub struct AuditSettings {
    pub checkpoint_interval: Duration,
    pub retention: Option<Duration>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    /// Where the decision log, usage counts and the pseudonym secret live. Default: the storage
    /// `data_dir`, or `state/` beside the configuration file.
    state_dir: Option<PathBuf>,
    /// Time limit of one fetch from a provider's API (default 10 s).
    upstream_timeout_ms: Option<u64>,
    /// Largest response accepted from a provider's API (default 16 MiB).
    upstream_max_bytes: Option<usize>,
    /// Data requests in progress at once (default 128, at most half of them one member's); more
    /// wait up to 5 s, then get 503.
    max_concurrent_requests: Option<usize>,
    /// Hosted uploads in progress at once (default 2).
    max_concurrent_uploads: Option<usize>,
}

fn default_base_iri() -> String {
    "https://broker.kdr.example/".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificate: PathBuf,
    private_key: PathBuf,
    client_ca: PathBuf,
    crl: PathBuf,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    /// Directory of the RocksDB store; absent means an in-memory store (lost on exit).
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSparql {
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_max_results")]
    max_results: usize,
    #[serde(default = "default_max_concurrent")]
    max_concurrent: usize,
    /// Queries one member may have running at once (default: half of max_concurrent).
    max_concurrent_per_member: Option<usize>,
    /// Largest answer of one query, in bytes (default 16 MiB).
    max_result_bytes: Option<usize>,
    /// Address space of one query worker process, in MiB (default 1024).
    worker_memory_mb: Option<u64>,
    /// The program the query workers run (default: this broker's own executable).
    worker: Option<PathBuf>,
}

impl Default for RawSparql {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            max_results: default_max_results(),
            max_concurrent: default_max_concurrent(),
            max_concurrent_per_member: None,
            max_result_bytes: None,
            worker_memory_mb: None,
            worker: None,
        }
    }
}

fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_results() -> usize {
    10_000
}
fn default_max_concurrent() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    /// Requests per second one member may make, all its certificates together (default 1000;
    /// bursts of twice that). Over it: 429 with Retry-After.
    requests_per_second: Option<u32>,
    /// Connections one certificate may hold open at once (default 64).
    connections_per_certificate: Option<usize>,
    /// Requests per second one address may make of the public listener (default 5).
    public_requests_per_second: Option<u32>,
    /// How long a request body may take to arrive, whole, in ms (default 20000).
    body_timeout_ms: Option<u64>,
    /// Largest catalog export a steward may import at once, in bytes (default 64 MiB).
    max_import_bytes: Option<usize>,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            requests_per_second: None,
            connections_per_certificate: None,
            public_requests_per_second: None,
            body_timeout_ms: None,
            max_import_bytes: None,
        }
    }
}

/// Limits per caller (`[limits]`), enforced by `http::limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per second one member may make (bursts of twice that).
    pub member_per_second: u32,
    /// Connections one certificate may hold open at once.
    pub connections_per_certificate: usize,
    /// Requests per second one address may make of the public listener (bursts of twice that).
    pub public_per_second: u32,
    /// How long a request body may take to arrive, whole: a client that sends a byte now and
    /// then (slowloris) holds a connection and a buffer for at most this long.
    pub body_timeout: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            member_per_second: 1000,
            connections_per_certificate: 64,
            public_per_second: 5,
            body_timeout: Duration::from_secs(20),
        }
    }
}

fn default_max_body() -> usize {
    64 * 1024
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub base_iri: String,
    pub tls: ServerTlsFiles,
    pub data_dir: Option<PathBuf>,
    pub sparql: QueryLimits,
    /// Address space of one SPARQL worker process, in bytes.
    pub sparql_worker_memory: u64,
    /// The SPARQL worker program (`None`: this executable).
    pub sparql_worker: Option<PathBuf>,
    pub max_body_bytes: usize,
    /// Largest catalog export one import may have.
    pub max_import_bytes: usize,
    pub limits: LimitSettings,
    pub state_dir: PathBuf,
    pub upstream: crate::exchange::UpstreamLimits,
    pub members: Vec<Member>,
    /// The data space's catalog description.
    pub catalog: crate::catalog::SpaceCatalog,
    pub audit: AuditSettings,
    pub transparency: TransparencySettings,
    /// Where the admin listener serves health and metrics (off if `None`).
    pub admin_listen: Option<SocketAddr>,
}

/// Environment variables that override the file start with this (for containers):
/// `BROKER__ADMIN__LISTEN=127.0.0.1:9464` sets `listen` in `[admin]`; sections and keys are
/// separated by `__`, written in any case. A value is read as TOML if it is one (a number, a
/// boolean, a quoted string), else as a string. `[[members]]` are not overridden: the file is
/// the authority on members.
pub const ENV_PREFIX: &str = "BROKER__";

/// Applies the `BROKER__…` variables of `env` to the parsed file `doc`; which were applied.
fn apply_env(doc: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<Vec<String>, String> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) || keys.first().is_some_and(|k| *k == "members") {
            return Err(format!("{name}: not a setting this variable can override"));
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, tables) = keys.split_last().ok_or_else(|| format!("{name}: no setting named"))?;
        let mut table = &mut *doc;
        for key in tables {
            let entry = table.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry
                .as_table_mut()
                .ok_or_else(|| format!("{name}: '{key}' is a value, not a section"))?;
        }
        table.insert(last.clone(), parsed);
        applied.push(name);
    }
    Ok(applied)
}

impl Config {
    /// The file at `path`, with the process's `BROKER__…` variables applied.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// The file at `path`, with the `BROKER__…` variables of `env` applied.
    pub fn load_with_env(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_with_env(&text, path.parent().unwrap_or(Path::new(".")), env).map_err(|reason| ConfigError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses TOML text with the `BROKER__…` variables of `env` applied over it.
    pub fn parse_with_env(text: &str, dir: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
        if env.is_empty() {
            return Self::parse(text, dir);
        }
        let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let applied = apply_env(&mut doc, env)?;
        let raw: RawConfig = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| format!("{e} (with {} from the environment)", applied.join(", ")))?;
        Self::from_raw(raw, dir)
    }

    /// Parses TOML text; relative paths are taken relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::from_raw(raw, dir)
    }

    fn from_raw(raw: RawConfig, dir: &Path) -> Result<Self, String> {
        if let Some(a) = raw.admin.listen
            && !a.ip().is_loopback()
            && !raw.admin.dangerous_listen_beyond_loopback
        {
            return Err(format!(
                "admin.listen {a} is not a loopback address: health and metrics need no certificate; bind them to 127.0.0.1 or ::1, or set admin.dangerous_listen_beyond_loopback = true behind a firewall"
            ));
        }
        if raw.sparql.timeout_ms == 0 || raw.sparql.max_results == 0 || raw.sparql.max_concurrent == 0 {
            return Err("sparql.timeout_ms, sparql.max_results and sparql.max_concurrent must be positive".into());
        }
        if oxigraph_iri_ok(&raw.base_iri).is_err() {
            return Err(format!("base_iri '{}' is not an absolute http(s) IRI", raw.base_iri));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = raw.members.iter().find(|m| !seen.insert(&m.ags)) {
            return Err(format!("member {} is configured twice", twice.ags));
        }
        if let Some((m, c)) = raw
            .members
            .iter()
            .find_map(|m| Some((m, m.contributor.as_deref()?)).filter(|(_, c)| !contributor_ok(c)))
        {
            return Err(format!(
                "member {}: contributor '{c}' is not an IRI of the DCAT-AP.de contributor list (http://dcat-ap.de/def/contributors/<name>)",
                m.ags
            ));
        }
        let abs = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
        Ok(Self {
            listen: raw.listen,
            base_iri: raw.base_iri,
            tls: ServerTlsFiles {
                certificate: abs(raw.tls.certificate),
                private_key: abs(raw.tls.private_key),
                client_ca: abs(raw.tls.client_ca),
                crl: abs(raw.tls.crl),
            },
            state_dir: raw
                .exchange
                .state_dir
                .map(abs)
                .or_else(|| raw.storage.data_dir.clone().map(abs))
                .unwrap_or_else(|| dir.join("state")),
            upstream: {
                let d = crate::exchange::UpstreamLimits::default();
                crate::exchange::UpstreamLimits {
                    timeout: raw.exchange.upstream_timeout_ms.map_or(d.timeout, Duration::from_millis),
                    max_bytes: raw.exchange.upstream_max_bytes.unwrap_or(d.max_bytes),
                    max_requests: raw.exchange.max_concurrent_requests.unwrap_or(d.max_requests).max(1),
                    max_uploads: raw.exchange.max_concurrent_uploads.unwrap_or(d.max_uploads).max(1),
                }
            },
            data_dir: raw.storage.data_dir.map(abs),
            sparql: QueryLimits {
                timeout: Duration::from_millis(raw.sparql.timeout_ms),
                max_results: raw.sparql.max_results,
                max_concurrent: raw.sparql.max_concurrent,
                max_per_member: raw
                    .sparql
                    .max_concurrent_per_member
                    .unwrap_or(raw.sparql.max_concurrent.div_ceil(2))
                    .clamp(1, raw.sparql.max_concurrent),
                max_result_bytes: raw.sparql.max_result_bytes.unwrap_or(16 << 20).max(1024),
            },
            sparql_worker_memory: raw.sparql.worker_memory_mb.unwrap_or(1024).max(64) << 20,
            sparql_worker: raw.sparql.worker.map(abs),
            max_body_bytes: raw.limits.max_body_bytes,
            max_import_bytes: raw.limits.max_import_bytes.unwrap_or(64 << 20).max(1024),
            limits: {
                let d = LimitSettings::default();
                LimitSettings {
                    member_per_second: raw.limits.requests_per_second.unwrap_or(d.member_per_second).max(1),
                    connections_per_certificate: raw
                        .limits
                        .connections_per_certificate
                        .unwrap_or(d.connections_per_certificate)
                        .max(1),
                    public_per_second: raw.limits.public_requests_per_second.unwrap_or(d.public_per_second).max(1),
                    body_timeout: raw.limits.body_timeout_ms.map_or(d.body_timeout, Duration::from_millis),
                }
            },
            members: raw.members,
            catalog: {
                let d = crate::catalog::SpaceCatalog::default();
                crate::catalog::SpaceCatalog {
                    title: raw.catalog.title.unwrap_or(d.title),
                    description: raw.catalog.description.unwrap_or(d.description),
                    operator: raw.catalog.operator.unwrap_or(d.operator),
                }
            },
            transparency: TransparencySettings {
                listen: raw.transparency.listen,
                minimum_group: raw.transparency.minimum_group.unwrap_or(5).max(1),
            },
            audit: AuditSettings {
                checkpoint_interval: Duration::from_secs(raw.audit.checkpoint_interval_s.unwrap_or(60).max(1)),
                retention: raw.audit.retention_days.map(|d| Duration::from_secs(u64::from(d) * 86_400)),
            },
            admin_listen: raw.admin.listen,
        })
    }
}

/// Changes the `[[members]]` of the configuration file at `path` with `change`, keeping the rest
/// of the file (comments and layout included; toml_edit is the format-preserving editor the
/// `toml` crate itself is built on). The result is checked as a whole configuration and
/// written atomically, so a failed edit leaves the file as it was.
pub fn edit_members(path: &Path, change: impl FnOnce(&mut Vec<Member>) -> Result<(), String>) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut members = Config::parse(&text, dir).map_err(&invalid)?.members;
    change(&mut members).map_err(&invalid)?;
    #[derive(serde::Serialize)]
    struct Members<'a> {
        members: &'a [Member],
    }
    let rendered = toml::to_string(&Members { members: &members }).map_err(|e| invalid(e.to_string()))?;
    let rendered: toml_edit::DocumentMut = rendered.parse().map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
    doc.remove("members");
    if let Some(item) = rendered.get("members") {
        doc.insert("members", item.clone());
    }
    let edited = doc.to_string();
    Config::parse(&edited, dir).map_err(&invalid)?;
    crate::fsutil::write_atomic(path, edited.as_bytes(), 0o644).map_err(|e| invalid(e.to_string()))
}

fn oxigraph_iri_ok(iri: &str) -> Result<(), ()> {
    let ok = (iri.starts_with("https://") || iri.starts_with("http://")) && !iri.contains(char::is_whitespace);
    if ok { Ok(()) } else { Err(()) }
}

/// An IRI of the DCAT-AP.de contributor list: `http://dcat-ap.de/def/contributors/<letters and digits>`.
fn contributor_ok(iri: &str) -> bool {
    iri.strip_prefix("http://dcat-ap.de/def/contributors/")
        .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()))
}
