//! The admin listener: `/health/live`, `/health/ready` and `/metrics` for the data centre's
//! monitoring, in plain HTTP on an address of its own (localhost unless the operator says
//! otherwise with a `dangerous_` setting: it needs no certificate, so it must not face the
//! network). It shows no member's data: health checks and bounded metrics only.
//!
//! The member listener's requests are counted by [`observe`], wrapped around its app when the
//! admin listener is configured (without it, the request path pays nothing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpResponse, HttpServer, web};

use super::AppState;

/// What the admin listener needs beside the member listener's state.
#[derive(Debug)]
pub struct Admin {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub audit: Arc<crate::audit::file::FileAuditLog>,
    pub probe: crate::health::Probe,
    /// `POST /backup` (see [`crate::backup`]).
    pub backup: Arc<crate::backup::Source>,
    /// Where the audit key's files are (`POST /audit/rotate-key`).
    pub state_dir: std::path::PathBuf,
    /// What a POST must bring (`Authorization: Bearer …`): the token the broker wrote at start
    /// to `<state_dir>/admin.token` (0600). Reading health and metrics needs nothing; changing
    /// anything needs the right to read the state directory.
    pub token: AdminToken,
}

/// The admin listener's token, compared by digest (the time a comparison takes says nothing).
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// A new random token, written to `<dir>/admin.token` (0600).
    pub fn create(dir: &std::path::Path) -> std::io::Result<Self> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| std::io::Error::other("no randomness"))?;
        let token = crate::hex::encode(&bytes);
        crate::fsutil::write_atomic(&dir.join(crate::admin_client::TOKEN_FILE), token.as_bytes(), 0o600)?;
        Ok(Self(token))
    }

    fn admits(&self, req: &actix_web::HttpRequest) -> bool {
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let digest = |t: &str| ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
        digest(given).as_ref() == digest(&self.0).as_ref()
    }
}

/// 401 unless the request brings the admin token.
fn authorised(admin: &Admin, req: &actix_web::HttpRequest) -> Result<(), super::problem::Problem> {
    if admin.token.admits(req) {
        return Ok(());
    }
    Err(super::problem::Problem::new(
        actix_web::http::StatusCode::UNAUTHORIZED,
        "admin-token",
        "Unauthorized",
        format!(
            "a change on the admin listener needs the token in <state_dir>/{}",
            crate::admin_client::TOKEN_FILE
        ),
    ))
}

/// Binds the admin listener (plain HTTP, one worker).
pub fn bind_admin(listen: SocketAddr, state: web::Data<AppState>) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/health/live", web::get().to(live))
            .route("/health/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
            .route("/backup", web::post().to(backup))
            .route("/audit/rotate-key", web::post().to(rotate_key))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().body("/health/live, /health/ready, /metrics, POST /backup, POST /audit/rotate-key\n")
            }))
    })
    .client_request_timeout(std::time::Duration::from_secs(5))
    .workers(1)
    .bind(listen)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "live": true }))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let Some(admin) = &state.admin else {
        return HttpResponse::NotFound().finish();
    };
    let r = crate::health::readiness(&state.exchange, &admin.audit, &state.revocation, &admin.probe).await;
    if !r.ready {
        tracing::warn!(checks = ?r.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect::<Vec<_>>(), "not ready");
    }
    let mut resp = if r.ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    resp.insert_header(("Cache-Control", "no-store")).json(r)
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let Some(admin) = &state.admin else {
        return HttpResponse::NotFound().finish();
    };
    match admin.metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => HttpResponse::InternalServerError().body(format!("the metrics cannot be written: {e}\n")),
    }
}

/// Makes a backup in the state directory for `broker backup` to copy out (one at a time; the
/// caller chooses nothing, least of all a path). Requests are served meanwhile.
async fn backup(state: web::Data<AppState>, req: actix_web::HttpRequest) -> Result<HttpResponse, super::problem::Problem> {
    use super::problem::Problem;
    use actix_web::http::StatusCode;
    let Some(admin) = &state.admin else {
        return Ok(HttpResponse::NotFound().finish());
    };
    authorised(admin, &req)?;
    let failed = |detail: String| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "backup-failed", "Backup Failed", detail);
    let source = admin.backup.clone();
    let made = web::block(move || source.create()).await.map_err(|e| failed(e.to_string()))?;
    match made {
        Ok((name, m)) => {
            tracing::info!(backup = %name, records = m.trail.records, "backup made");
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "backup": name,
                "records": m.trail.records,
                "lastSeq": m.trail.last_seq,
            })))
        }
        Err(e @ crate::backup::BackupError::Busy) => Err(Problem::new(
            StatusCode::CONFLICT,
            "backup-running",
            "Backup Running",
            e.to_string(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "backup failed");
            Err(failed(e.to_string()))
        }
    }
}

/// Rotates the audit key (see [`crate::audit::rotate`]); requests go on meanwhile.
async fn rotate_key(state: web::Data<AppState>, req: actix_web::HttpRequest) -> Result<HttpResponse, super::problem::Problem> {
    use actix_web::http::StatusCode;
    let Some(admin) = &state.admin else {
        return Ok(HttpResponse::NotFound().finish());
    };
    authorised(admin, &req)?;
    let (audit, dir) = (admin.audit.clone(), admin.state_dir.clone());
    let failed =
        |detail: String| super::problem::Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "rotation-failed", "Rotation Failed", detail);
    let public = web::block(move || crate::audit::rotate::rotate(&audit, &dir))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "audit key rotation failed");
            failed(e.to_string())
        })?;
    tracing::warn!(public_key = %public, "the audit key was rotated");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "publicKey": public })))
}

/// What is noted of a member listener's request before it is handled.
pub struct Before {
    metrics: Option<Arc<crate::metrics::Metrics>>,
    method: &'static str,
    started: Instant,
}

/// Notes a request of the member listener (nothing, without metrics and access log): its method
/// and start. Its route is read after routing ([`after`]): before, actix would match the path
/// against every route's pattern again; after, it looks up the resource that was matched.
pub fn before(metrics: Option<&Arc<crate::metrics::Metrics>>, req: &ServiceRequest) -> Option<Before> {
    if metrics.is_none() && !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return None;
    }
    Some(Before {
        metrics: metrics.cloned(),
        method: crate::metrics::method_label(req.method().as_str()),
        started: Instant::now(),
    })
}

/// Counts the request noted by [`before`] with its status and time to the response's head, and
/// writes its access-log line (`access=info`): with the decision id, so that the request's
/// other log lines and its audit record are found by it; without path or certificate name.
pub fn after<B: MessageBody>(
    before: Option<Before>,
    result: Result<ServiceResponse<B>, actix_web::Error>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if let Some(b) = before {
        let took = b.started.elapsed();
        // The route's pattern, never the path: a dataset id is not a label.
        let (route, status, decision) = match &result {
            Ok(res) => (
                res.request().match_pattern(),
                res.status().as_u16(),
                res.headers().get("x-decision-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
            ),
            Err(e) => (None, e.as_response_error().status_code().as_u16(), None),
        };
        let route = route.as_deref().unwrap_or("unmatched");
        if let Some(m) = &b.metrics {
            m.request(route, b.method, status, took);
        }
        tracing::info!(
            target: "access",
            route = %route,
            method = b.method,
            status,
            micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            decision = decision.as_deref().unwrap_or("-"),
            "request"
        );
    }
    result
}
