//! The HTTP API on actix-web over rustls.
//!
//! **Architecture Invariant:** only `broker::http` imports actix-web. Handlers get a
//! [`auth::Caller`] (identity + member), never a certificate.

pub mod admin;
pub mod auth;
pub mod console;
pub mod datasets;
pub mod documents;
pub mod exchange;
pub mod import;
pub mod limits;
pub mod members;
pub mod policies;
pub mod problem;
pub mod provider;
pub mod reports;
pub mod routes;
pub mod sparql;

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{Extensions, Server, ServerHandle, Service};
use actix_web::http::StatusCode;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpRequest, HttpServer, web};
use futures_util::StreamExt;

use crate::catalog::{Catalog, QueryLimits};
use crate::identity::Identity;
use crate::schema::Schemas;
use auth::PeerIdentity;
use problem::Problem;

/// What every handler can reach.
pub struct AppState {
    pub catalog: Arc<dyn Catalog>,
    pub schemas: Schemas,
    pub sparql_limits: QueryLimits,
    pub max_body_bytes: usize,
    /// Largest catalog export one import may have.
    pub max_import_bytes: usize,
    /// ODRL actions and DPV purposes, for compiling and explaining policies.
    pub vocab: Arc<policy_compiler::Vocabulary>,
    pub exchange: Arc<crate::exchange::Exchange>,
    /// The revocation state the member listener's handshakes use, asked again on every request.
    pub revocation: Arc<crate::tls::ReloadingCrlVerifier>,
    /// Groups smaller than this are suppressed in the public transparency report.
    pub transparency_minimum: u64,
    /// The public report as last made (at most a minute old).
    pub transparency_cache: crate::fresh::Fresh<(), reports::TransparencyBodies>,
    /// The key of the console's form tokens (derived from the broker's secret).
    pub console_csrf: console::csrf::CsrfKey,
    /// Rate and connection limits per caller.
    pub limits: Arc<limits::Limits>,
    /// Member records as `Caller` reads them on every request, kept for at most
    /// [`crate::exchange::SNAPSHOT_TTL`]: a member removed or a role withdrawn in the store takes
    /// effect within that time (a revoked certificate is refused at once, by the TLS layer).
    pub members: crate::fresh::Fresh<crate::identity::Ags, Option<crate::catalog::Member>>,
    /// Where the broker's resources live (the configuration's `base_iri`, ending in `/`).
    pub base_iri: String,
    /// What the data space's catalog says of itself.
    pub space: crate::catalog::SpaceCatalog,
    /// The audit trail's files, for the board's console page.
    pub trail: Arc<console::board::TrailState>,
    /// Health and metrics, when the admin listener is configured (`[admin] listen`).
    pub admin: Option<admin::Admin>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("sparql_limits", &self.sparql_limits)
            .finish_non_exhaustive()
    }
}

/// Runs a change of the catalog's state as an audited step ([`crate::changes`]): recorded
/// first, then made; a failure after the record leaves an `-aborted` record.
pub async fn audited<T: Send + 'static>(
    state: &AppState,
    caller: &auth::Caller,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
    change: impl FnOnce() -> Result<T, crate::catalog::CatalogError> + Send + 'static,
) -> Result<T, Problem> {
    let record = crate::audit::AdminRecord::by(&caller.identity, action, subject, detail);
    crate::changes::audited(&state.exchange.log, record, change)
        .await
        .map_err(|e| match e {
            crate::changes::ChangeError::Failed(e) => e.into(),
            other => change_problem(other, "the change could not be made"),
        })
}

/// The problem for a change that was not made.
pub fn change_problem<E: std::error::Error + 'static>(e: crate::changes::ChangeError<E>, context: &str) -> Problem {
    match e {
        crate::changes::ChangeError::NotRecorded(e) => Problem::internal("the audit log cannot be written, so the change is not made", e),
        crate::changes::ChangeError::Failed(e) => Problem::internal(context, e),
        crate::changes::ChangeError::Lost => Problem::internal(context, "the change's thread was lost"),
    }
}

/// The request's `Content-Type`, if it has a readable one.
pub fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Reads a request body up to `limit` bytes within the body deadline (`[limits]
/// body_timeout_ms`); a larger one is a 413 problem, whether announced by `Content-Length` or
/// discovered while streaming, a slower one a 408.
pub async fn read_body(state: &AppState, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, Problem> {
    let allowed = state.limits.settings().body_timeout;
    let deadline = tokio::time::Instant::now() + allowed;
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Content too large",
            format!("the body exceeds the limit of {limit} bytes"),
        )
    };
    let mut buf = web::BytesMut::new();
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, payload.next()).await else {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-too-slow",
                "Request Timeout",
                format!("the body did not arrive within the limit of {} ms", allowed.as_millis()),
            ));
        };
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            other => Problem::bad_request("unreadable-body", other.to_string()),
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Parses the peer certificate once per connection, and counts the connection for its
/// certificate (a certificate over its connection limit gets 429 on every request).
fn on_connect(conn: &dyn Any, ext: &mut Extensions, limits: &limits::Limits) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let identity = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(cert) => Identity::from_certificate_der(cert.as_ref()),
        None => Err(crate::identity::IdentityError::NoCertificate),
    };
    if let Ok(id) = &identity {
        match limits.connect(&id.serial) {
            Some(permit) => {
                ext.insert(permit);
            }
            None => {
                ext.insert(limits::TooManyConnections(limits.settings().connections_per_certificate));
            }
        }
    }
    ext.insert(PeerIdentity(identity));
}

/// What the route table does not serve: 405 with `Allow` if the path exists with other
/// methods, else 404.
async fn no_such_route(req: HttpRequest) -> Result<actix_web::HttpResponse, Problem> {
    let allowed = routes::methods_of(req.path());
    if !allowed.is_empty() {
        let allow = allowed.join(", ");
        return Err(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            format!("{} {} is not an endpoint; this path takes {allow}", req.method(), req.path()),
        )
        .with_header("Allow", allow));
    }
    Err(Problem::not_found(
        "no-such-route",
        format!("there is no endpoint {} {}; see /v1/openapi.json", req.method(), req.path()),
    ))
}

/// The framework's own refusals (a malformed query string, a path segment of the wrong type)
/// as problems too, naming what was wrong.
fn extractor_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| Problem::bad_request("bad-query-parameter", format!("the query string is not valid: {e}")).into()),
    )
    .app_data(
        web::PathConfig::default().error_handler(|e, req| Problem::not_found("no-such-route", format!("{}: {e}", req.path())).into()),
    );
}

/// Binds the listener and returns the server (not yet awaited) and its bound addresses.
/// Must be called inside an actix system.
pub fn bind(
    listen: SocketAddr,
    tls: rustls::ServerConfig,
    state: web::Data<AppState>,
    workers: usize,
) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let limits = state.limits.clone();
    let server = HttpServer::new(move || {
        let metrics = state.admin.as_ref().map(|a| a.metrics.clone());
        App::new()
            .wrap_fn(move |req, srv| {
                let noted = admin::before(metrics.as_ref(), &req);
                let answer = srv.call(req);
                async move { admin::after(noted, answer.await) }
            })
            .app_data(state.clone())
            .configure(extractor_errors)
            .configure(routes::configure)
            .configure(console::configure)
            .default_service(web::to(no_such_route))
    })
    .on_connect(move |conn, ext| on_connect(conn, ext, &limits))
    // The request head within 5 s, an idle kept-alive connection closed after 5 s, a TLS
    // handshake within 3 s (actix-tls): a slow client holds little for long.
    .client_request_timeout(std::time::Duration::from_secs(5))
    .keep_alive(std::time::Duration::from_secs(5))
    .workers(workers)
    .bind_rustls_0_23(listen, tls)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

/// Binds the public listener: the transparency report only, no client certificate.
pub fn bind_public(
    listen: SocketAddr,
    tls: rustls::ServerConfig,
    state: web::Data<AppState>,
) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(reports::public_routes))
        .client_request_timeout(std::time::Duration::from_secs(5))
        .keep_alive(std::time::Duration::from_secs(5))
        .workers(1)
        .bind_rustls_0_23(listen, tls)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

/// A listener that failed to bind: its address and why.
pub type ListenError = (SocketAddr, std::io::Error);

/// Runs the member listener (and the public and admin ones, if given) on this thread until
/// stopped.
pub fn run(
    listen: SocketAddr,
    tls: rustls::ServerConfig,
    public: Option<(SocketAddr, rustls::ServerConfig)>,
    admin_listen: Option<SocketAddr>,
    state: AppState,
    workers: usize,
) -> Result<(), ListenError> {
    let state = web::Data::new(state);
    actix_web::rt::System::new().block_on(async move {
        let (server, addrs) = bind(listen, tls, state.clone(), workers).map_err(|e| (listen, e))?;
        for a in &addrs {
            tracing::info!(addr = %a, "broker listening (mutual TLS)");
        }
        // An actix `Server` serves only while it is polled: the side listeners are spawned
        // (awaiting only the member listener left them bound and silent).
        let admin_server = match admin_listen {
            Some(addr) => {
                let (a, addrs) = admin::bind_admin(addr, state.clone()).map_err(|e| (addr, e))?;
                for a in &addrs {
                    tracing::info!(addr = %a, "admin listener: /health/live, /health/ready, /metrics (plain HTTP)");
                }
                let handle = a.handle();
                actix_web::rt::spawn(a);
                Some(handle)
            }
            None => None,
        };
        let public = match public {
            Some((addr, ptls)) => {
                let (p, addrs) = bind_public(addr, ptls, state).map_err(|e| (addr, e))?;
                for a in &addrs {
                    tracing::info!(addr = %a, "public transparency report listening (TLS, no client certificate)");
                }
                let handle = p.handle();
                actix_web::rt::spawn(p);
                Some(handle)
            }
            None => None,
        };
        let main = server.await.map_err(|e| (listen, e));
        if let Some(p) = public {
            p.stop(true).await;
        }
        if let Some(a) = admin_server {
            a.stop(true).await;
        }
        main
    })
}

/// Starts the member listener (and the public and admin ones, if given) on background threads.
pub fn start(
    listen: SocketAddr,
    tls: rustls::ServerConfig,
    public: Option<(SocketAddr, rustls::ServerConfig)>,
    admin_listen: Option<SocketAddr>,
    state: AppState,
    workers: usize,
) -> Result<BackgroundServer, ListenError> {
    let state = web::Data::new(state);
    let public = match public {
        Some((addr, ptls)) => {
            let st = state.clone();
            Some(BackgroundServer::spawn(move || bind_public(addr, ptls, st)).map_err(|e| (addr, e))?)
        }
        None => None,
    };
    let admin_server = match admin_listen {
        Some(addr) => {
            let st = state.clone();
            Some(BackgroundServer::spawn(move || admin::bind_admin(addr, st)).map_err(|e| (addr, e))?)
        }
        None => None,
    };
    let server = BackgroundServer::start(listen, tls, state, workers).map_err(|e| (listen, e))?;
    let public_addr = public.as_ref().map(|p| p.addr);
    let admin_addr = admin_server.as_ref().map(|a| a.addr);
    let mut server = server.with_public(public_addr).on_stop(move || {
        if let Some(p) = public {
            p.stop();
        }
        if let Some(a) = admin_server {
            a.stop();
        }
    });
    server.admin_addr = admin_addr;
    Ok(server)
}

/// A server running on its own thread, for tests and the demo.
pub struct BackgroundServer {
    pub addr: SocketAddr,
    /// The public listener's address, if one runs beside this server.
    pub public_addr: Option<SocketAddr>,
    /// The admin listener's address, if one runs beside this server.
    pub admin_addr: Option<SocketAddr>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for BackgroundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl BackgroundServer {
    pub fn start(listen: SocketAddr, tls: rustls::ServerConfig, state: web::Data<AppState>, workers: usize) -> std::io::Result<Self> {
        Self::spawn(move || bind(listen, tls, state, workers))
    }

    /// Runs the server `bind` makes on its own thread and actix system.
    pub fn spawn(bind: impl FnOnce() -> std::io::Result<(Server, Vec<SocketAddr>)> + Send + 'static) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                match bind() {
                    Ok((server, addrs)) => {
                        let _ = tx.send(Ok((server.handle(), addrs)));
                        if let Err(e) = server.await {
                            tracing::error!(error = %e, "server stopped with an error");
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        let (handle, addrs) = rx
            .recv()
            .map_err(|_| std::io::Error::other("server thread ended before binding"))??;
        let addr = addrs.first().copied().ok_or_else(|| std::io::Error::other("no bound address"))?;
        Ok(Self {
            addr,
            public_addr: None,
            admin_addr: None,
            handle,
            thread: Some(thread),
            on_stop: None,
        })
    }

    #[must_use]
    pub fn with_public(mut self, addr: Option<SocketAddr>) -> Self {
        self.public_addr = addr;
        self
    }

    /// Runs `f` once the server has stopped (e.g. the audit trail's final checkpoint), after
    /// what was registered before.
    #[must_use]
    pub fn on_stop(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        let before = self.on_stop.take();
        self.on_stop = Some(Box::new(move || {
            if let Some(b) = before {
                b();
            }
            f();
        }));
        self
    }

    /// Stops gracefully and waits for the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let handle = self.handle.clone();
            let _ = std::thread::spawn(move || futures_executor_block_on(handle.stop(true))).join();
            let _ = t.join();
        }
        if let Some(f) = self.on_stop.take() {
            f();
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}
