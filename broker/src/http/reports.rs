//! `/v1/reports/...` for boards and stewards, and the public transparency report on its own
//! listener (no client certificate; [`public_routes`] is all that listener serves).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::audit::export::Period;
use crate::catalog::DatasetFilter;
use crate::identity::{Ags, Role};
use crate::reports::{self, Bucket};

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<Bucket>,
    /// `json` (default) or `csv`; `Accept: text/csv` works too.
    format: Option<String>,
    /// One provider city's datasets only (a board member's own city's use of another city's
    /// data, or their own city's datasets).
    provider: Option<String>,
}

/// Whose usage a caller sees. Reports are scoped to the controller: every member sees its own
/// city's part of the trail and nothing of other cities' dealings with each other.
#[derive(Debug, Clone)]
struct Scope {
    city: Ags,
    /// A board member sees their city as provider *and* as consumer; a steward only the
    /// datasets their city provides.
    as_consumer: bool,
    provider: Option<Ags>,
}

impl Scope {
    fn admits(&self, r: &crate::reports::Cell) -> bool {
        let city = self.city.as_str();
        let mine = r.provider == city || (self.as_consumer && r.consumer == city);
        mine && self.provider.as_ref().is_none_or(|p| r.provider == p.as_str())
    }
}

impl ReportQuery {
    fn period(&self) -> Result<Period, Problem> {
        Period::parse(self.from.as_deref(), self.to.as_deref())
            .map_err(|e| Problem::bad_request("bad-period", format!("query parameters 'from'/'to': {e}")))
    }

    fn csv(&self, req: &HttpRequest) -> Result<bool, Problem> {
        match self.format.as_deref() {
            None | Some("json" | "csv") => {}
            Some(other) => {
                return Err(Problem::bad_request(
                    "bad-query-parameter",
                    format!("query parameter 'format': '{other}' is neither json nor csv"),
                ));
            }
        }
        match self.format.as_deref() {
            Some(f) => Ok(f == "csv"),
            None => super::problem::negotiate(req, &[("application/json", false), ("text/csv", true)]).map(|(_, csv)| csv),
        }
    }

    /// What the caller may see: their own city's part (see [`Scope`]).
    fn scope(&self, caller: &Caller) -> Result<Scope, Problem> {
        caller.require(&[Role::Board, Role::Steward], "reading usage reports")?;
        let provider = self
            .provider
            .as_deref()
            .map(str::parse::<Ags>)
            .transpose()
            .map_err(|e| Problem::bad_request("bad-query-parameter", format!("query parameter 'provider': {e}")))?;
        let as_consumer = caller.identity.role == Role::Board;
        if !as_consumer && provider.as_ref().is_some_and(|p| *p != caller.identity.ags) {
            return Err(Problem::forbidden(format!(
                "a steward of {} sees the reports of its own datasets, not of {}",
                caller.identity.ags,
                provider.as_ref().map(Ags::as_str).unwrap_or_default()
            )));
        }
        Ok(Scope {
            city: caller.identity.ags.clone(),
            as_consumer,
            provider,
        })
    }
}

fn csv_response(text: Result<String, csv::Error>) -> Result<HttpResponse, Problem> {
    let text = text.map_err(|e| Problem::internal("the report cannot be written as CSV", e))?;
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(text))
}

pub async fn usage(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<ReportQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let scope = q.scope(&caller)?;
    let period = q.period()?;
    let rows = reports::usage(&state.exchange.tally, &period, q.bucket.unwrap_or(Bucket::Day), |c| scope.admits(c));
    if q.csv(&req)? {
        return csv_response(reports::csv(&reports::USAGE_COLUMNS, rows.iter().map(reports::UsageRow::cells)));
    }
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn processing(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<ReportQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let scope = q.scope(&caller)?;
    let period = q.period()?;
    let out = processing_records_of(&state, scope.city, &period).await?;
    if q.csv(&req)? {
        let columns = [
            "controller",
            "dataset",
            "title",
            "purposes",
            "recipients",
            "dataCategories",
            "retention",
            "technicalMeasures",
            "policyVersion",
            "deliveries",
        ];
        let rows = out.iter().map(|r| {
            vec![
                r.controller.clone(),
                r.dataset.clone(),
                r.title.clone(),
                r.purposes.join(" "),
                r.recipients.join("; "),
                r.data_categories.join("; "),
                r.retention.clone().unwrap_or_default(),
                r.technical_measures.join("; "),
                r.policy_version.map(|v| v.to_string()).unwrap_or_default(),
                r.deliveries.to_string(),
            ]
        });
        return csv_response(reports::csv(&columns, rows));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// The DSGVO Art. 30 records of processing of `city`'s datasets in `period` (the API's and the
/// console's).
pub async fn processing_records_of(state: &AppState, city: Ags, period: &Period) -> Result<Vec<reports::ProcessingRecord>, Problem> {
    let catalog = state.catalog.clone();
    // Art. 30 records are the controller's: the datasets the caller's city publishes.
    let filter = DatasetFilter {
        publisher: Some(city),
        ..DatasetFilter::default()
    };
    let vocab = state.vocab.clone();
    // The active versions' rules read from their sources (parsing, not compiling: a city with
    // hundreds of datasets would otherwise compile hundreds of modules for one report).
    let with_policies = web::block(move || {
        let mut out = Vec::new();
        for d in catalog.datasets(&filter)? {
            let policy = match catalog.active_policy(&d.id)? {
                Some(v) => {
                    let syntax =
                        policy_compiler::parse::Syntax::from_media_type(&v.media_type).unwrap_or(policy_compiler::parse::Syntax::Turtle);
                    let parsed = policy_compiler::parse::parse_one(&v.source, syntax, &vocab)
                        .map_err(|e| crate::catalog::CatalogError::Storage(format!("active policy of {} unreadable: {e}", d.id)))?;
                    Some((v.version, parsed))
                }
                None => None,
            };
            out.push((d, policy));
        }
        Ok::<_, crate::catalog::CatalogError>(out)
    })
    .await??;
    Ok(reports::processing_records(&with_policies, &state.exchange.tally, period))
}

/// How long the public report is served from its cache.
pub const TRANSPARENCY_FRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// The public report as served: JSON for programs, an accessible German page for people.
#[derive(Debug)]
pub struct TransparencyBodies {
    json: Vec<u8>,
    html: String,
}

/// One row of the public page, in German names.
struct PublicRow {
    month: String,
    from: String,
    to: String,
    kind: String,
    purpose: String,
    deliveries: String,
}

#[derive(askama::Template)]
#[template(path = "public/transparency.html")]
struct TransparencyPage<'a> {
    style: &'a str,
    minimum: u64,
    suppressed: u64,
    as_of: String,
    rows: Vec<PublicRow>,
}

/// The public page's only style, allowed by its hash in the page's Content Security Policy (the
/// public listener serves no stylesheet of its own).
const PUBLIC_STYLE: &str = include_str!("../../templates/public/transparency.css");

fn public_csp() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, PUBLIC_STYLE.as_bytes());
    use base64::Engine as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    format!("default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
}

async fn transparency_bodies(state: &AppState) -> Result<std::sync::Arc<TransparencyBodies>, Problem> {
    if let Some(b) = state.transparency_cache.get(&()) {
        return Ok(b);
    }
    let catalog = state.catalog.clone();
    let (datasets, members) =
        web::block(move || Ok::<_, crate::catalog::CatalogError>((catalog.datasets(&DatasetFilter::default())?, catalog.members()?)))
            .await??;
    let theme_of = |id: &str| {
        datasets
            .iter()
            .find(|d| d.id.as_str() == id)
            .and_then(|d| d.themes.first().cloned())
            .unwrap_or_else(|| "unspecified".into())
    };
    let report = reports::transparency(&state.exchange.tally, theme_of, state.transparency_minimum);
    let json = serde_json::to_vec(&report).map_err(|e| Problem::internal("the report cannot be written", e))?;
    let labels = crate::catalog::labels::labels();
    let name = |ags: &str| {
        members
            .iter()
            .find(|m| m.ags.as_str() == ags)
            .map_or_else(|| ags.to_owned(), |m| m.organisation.clone())
    };
    let page = TransparencyPage {
        style: PUBLIC_STYLE,
        minimum: report.minimum_group,
        suppressed: report.suppressed_groups,
        as_of: crate::german::date_time(&crate::audit::now_rfc3339()),
        rows: report
            .rows
            .iter()
            .map(|r| PublicRow {
                month: crate::german::month(&r.month),
                from: name(&r.from_municipality),
                to: name(&r.to_municipality),
                kind: if r.kind_of_data == "unspecified" {
                    "nicht angegeben".to_owned()
                } else {
                    labels.theme(&r.kind_of_data).to_owned()
                },
                purpose: labels.purpose(&r.purpose).to_owned(),
                deliveries: crate::german::number(r.deliveries),
            })
            .collect(),
    };
    let html = askama::Template::render(&page).map_err(|e| Problem::internal("the report cannot be rendered", e))?;
    Ok(state.transparency_cache.put((), TransparencyBodies { json, html }))
}

/// The public report: no caller, no client certificate. Made at most once a minute (everyone in
/// between gets the same bytes), and each address may ask a few times a second. JSON, or a German
/// HTML page for a browser (`Accept: text/html`).
pub async fn transparency(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    public_rate(&state, &req)?;
    let (_, html) = super::problem::negotiate(&req, &[("application/json", false), ("text/html", true)])?;
    let bodies = transparency_bodies(&state).await?;
    let mut resp = HttpResponse::Ok();
    resp.insert_header(("Cache-Control", "public, max-age=60"))
        .insert_header(("Vary", "Accept"));
    if html {
        return Ok(resp
            .content_type("text/html; charset=utf-8")
            .insert_header(("Content-Security-Policy", public_csp()))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(bodies.html.clone()));
    }
    Ok(resp.content_type("application/json").body(bodies.json.clone()))
}

/// Each address may ask the public listener a few times a second (`[limits]
/// public_requests_per_second`).
pub fn public_rate(state: &AppState, req: &HttpRequest) -> Result<(), Problem> {
    match req.peer_addr().map(|a| a.ip()) {
        Some(ip) => state.limits.public(ip).map_err(|wait| {
            Problem::rate_limited(
                format!("too many requests from {ip}; what this listener serves changes at most once a minute"),
                wait,
            )
        }),
        None => Ok(()),
    }
}

async fn public_not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::build(StatusCode::NOT_FOUND)
        .content_type("application/problem+json")
        .body(
            serde_json::json!({
                "type": "https://w3id.org/kdr/problems/no-such-route",
                "title": "Not Found",
                "status": 404,
                "detail": format!(
                    "this listener serves only GET /transparency, /catalog and /datasets/{{id}}, not {} {}",
                    req.method(),
                    req.path()
                ),
            })
            .to_string(),
        )
}

/// Everything the public listener serves.
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/transparency", web::get().to(transparency))
        .route("/catalog", web::get().to(super::documents::harvest))
        .route("/datasets/{id}", web::get().to(super::documents::public_dataset))
        .route(
            "/datasets/{id}/distributions/{index}",
            web::get().to(super::documents::public_distribution),
        )
        .default_service(web::to(public_not_found));
}
