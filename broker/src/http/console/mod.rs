//! The console: server-rendered German pages for data stewards and governance boards at
//! `/console/` on the member listener, authenticated by the browser's client certificate.
//!
//! Why server-rendered, without script: the console acts with the identity in the certificate,
//! the same [`Caller`] and the same domain functions as the API ([`crate::governance`] for
//! submissions and reviews, [`crate::reports`] for usage), so it cannot grant what the API
//! refuses. No script means a Content Security Policy that allows none (`script-src 'none'`): an
//! injected `<script>` in a dataset title would not run even if escaping failed. Templates
//! (askama) escape every value by default.
//!
//! A browser sends its client certificate with requests other sites start too, so every form
//! that changes something is checked for forgery ([`csrf`]).
//!
//! The console's pages are not API endpoints: they are registered here, in [`PAGES`], not in
//! the OpenAPI route table.

pub mod board;
pub mod csrf;
pub mod lang;
mod pages;
mod register;
mod workbench;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::identity::Role;

/// The console's Content Security Policy: our stylesheet and nothing else — no script at all,
/// no inline style, no frames (and never framed: clickjacking), forms only to ourselves.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's pages: (method, path) as registered.
pub const PAGES: &[(&str, &str)] = &[
    ("GET", "/console/"),
    ("GET", "/console/console.css"),
    ("GET", "/console/sprache/{lang}"),
    ("GET", "/console/datensaetze"),
    ("GET", "/console/datensaetze/neu"),
    ("POST", "/console/datensaetze/neu"),
    ("GET", "/console/datensaetze/{id}/bearbeiten"),
    ("POST", "/console/datensaetze/{id}/bearbeiten"),
    ("POST", "/console/datensaetze/{id}/daten"),
    ("GET", "/console/datensaetze/{id}/richtlinie"),
    ("POST", "/console/datensaetze/{id}/richtlinie"),
    ("GET", "/console/freigaben"),
    ("GET", "/console/freigaben/{id}/{version}"),
    ("POST", "/console/freigaben/{id}/{version}"),
    ("GET", "/console/nutzung"),
    ("GET", "/console/nutzung.csv"),
    ("GET", "/console/verzeichnis"),
    ("GET", "/console/protokoll"),
];

/// Registers the console under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let headers = DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"));
    cfg.route("/console", web::get().to(to_console)).service(
        web::scope("/console")
            .wrap(headers)
            .route("/", web::get().to(pages::home))
            .route("/console.css", web::get().to(stylesheet))
            .route("/sprache/{lang}", web::get().to(lang::switch))
            .route("/datensaetze", web::get().to(pages::datasets))
            .route("/datensaetze/neu", web::get().to(register::new))
            .route("/datensaetze/neu", web::post().to(register::create))
            .route("/datensaetze/{id}/bearbeiten", web::get().to(register::edit))
            .route("/datensaetze/{id}/bearbeiten", web::post().to(register::save))
            .route("/datensaetze/{id}/daten", web::post().to(register::upload))
            .route("/datensaetze/{id}/richtlinie", web::get().to(workbench::show))
            .route("/datensaetze/{id}/richtlinie", web::post().to(workbench::post))
            .route("/freigaben", web::get().to(pages::queue))
            .route("/freigaben/{id}/{version}", web::get().to(pages::review))
            .route("/freigaben/{id}/{version}", web::post().to(pages::review_post))
            .route("/nutzung", web::get().to(pages::usage))
            .route("/nutzung.csv", web::get().to(pages::usage_csv))
            .route("/verzeichnis", web::get().to(board::records))
            .route("/protokoll", web::get().to(board::trail))
            .default_service(web::to(not_found)),
    );
}

async fn to_console() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

const STYLESHEET: &str = include_str!("../../../templates/console/console.css");

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "max-age=3600"))
        .body(STYLESHEET)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError(Problem::not_found(
        "no-such-page",
        format!("Die Seite {} gibt es in der Konsole nicht.", req.path()),
    )))
}

/// An error as a German HTML page (the problem's status, and its detail).
#[derive(Debug)]
pub struct ConsoleError(pub Problem);

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.detail)
    }
}

impl From<Problem> for ConsoleError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}

impl From<crate::catalog::CatalogError> for ConsoleError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        Self(e.into())
    }
}

impl From<actix_web::error::BlockingError> for ConsoleError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self(e.into())
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    detail: &'a str,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.0.status;
        let heading = match status.as_u16() {
            400 => "Die Anfrage ist fehlerhaft",
            403 => "Zugriff verweigert",
            404 => "Nicht gefunden",
            409 => "Konflikt",
            410 => "Nicht mehr vorhanden",
            422 => "Nicht annehmbar",
            429 => "Zu viele Anfragen",
            503 => "Derzeit ausgelastet",
            _ => "Ein Fehler ist aufgetreten",
        };
        let page = ErrorPage {
            status: status.as_u16(),
            heading,
            detail: &self.0.detail,
        };
        let mut resp = HttpResponse::build(status);
        if let Some(headers) = &self.0.headers {
            for (name, value) in headers.iter() {
                resp.insert_header((*name, value.as_str()));
            }
        }
        let body = page.render().unwrap_or_else(|_| heading.to_owned());
        let mut out = resp.content_type("text/html; charset=utf-8").body(body);
        // The scope's default headers are not added to errors made outside a handler's
        // response; set the policy here too.
        if let Ok(v) = HeaderValue::from_str(CSP) {
            out.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        out
    }
}

/// The space's members as (AGS, organisation), by AGS: names for people, partners for forms.
pub async fn members(state: &AppState) -> Result<Vec<(crate::identity::Ags, String)>, ConsoleError> {
    let catalog = state.catalog.clone();
    let members = web::block(move || catalog.members()).await??;
    Ok(members.into_iter().map(|m| (m.ags, m.organisation)).collect())
}

/// A rendered page.
pub fn page(t: &impl Template) -> Result<HttpResponse, ConsoleError> {
    let body = t
        .render()
        .map_err(|e| ConsoleError(Problem::internal("the page cannot be rendered", e)))?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

/// What every page's header shows: who is signed in, and what they may open.
#[derive(Debug, Clone)]
pub struct Nav {
    pub person: String,
    pub organisation: String,
    pub role: &'static str,
    pub steward: bool,
    pub board: bool,
    /// The page's section, for `aria-current`.
    pub current: &'static str,
    pub lang: lang::Lang,
    /// The page's path and query, where the language switch comes back to.
    pub here: String,
}

impl Nav {
    pub fn of(caller: &Caller, ui: &lang::Ui, current: &'static str) -> Self {
        Self {
            person: caller.identity.common_name.clone(),
            organisation: caller.member.organisation.clone(),
            role: role_name(caller.identity.role, ui.lang),
            steward: caller.identity.role == Role::Steward,
            board: caller.identity.role == Role::Board,
            current,
            lang: ui.lang,
            here: ui.here.clone(),
        }
    }

    /// A German text of a template in the reader's language.
    pub fn t(&self, de: &'static str) -> &'static str {
        self.lang.t(de)
    }

    /// Whether the page is in English (for sentences whose word order differs).
    pub fn en(&self) -> bool {
        self.lang == lang::Lang::En
    }
}

/// A role as people in a city hall call it.
pub fn role_name(role: Role, lang: lang::Lang) -> &'static str {
    match (role, lang) {
        (Role::System, lang::Lang::De) => "Fachverfahren",
        (Role::Steward, lang::Lang::De) => "Datenverantwortliche Stelle",
        (Role::Board, lang::Lang::De) => "Governance-Gremium",
        (Role::System, lang::Lang::En) => "application",
        (Role::Steward, lang::Lang::En) => "data steward",
        (Role::Board, lang::Lang::En) => "governance board",
    }
}

/// The console's forms: the caller, checked against forgery for `req`'s path.
pub fn check_form(state: &AppState, caller: &Caller, req: &HttpRequest, token: Option<&str>) -> Result<(), ConsoleError> {
    check_origin(req)?;
    state
        .console_csrf
        .verify(&caller.identity.serial, req.path(), token.unwrap_or_default())
        .map_err(forged)
}

/// The first half of [`check_form`], for a form whose token is inside a body not read yet
/// (an upload): the browser says the request comes from the console's own origin.
pub fn check_origin(req: &HttpRequest) -> Result<(), ConsoleError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = req.connection_info().host().to_owned();
    csrf::same_site(header("sec-fetch-site"), header("origin"), &host).map_err(forged)
}

fn forged(e: csrf::Forgery) -> ConsoleError {
    ConsoleError(Problem::new(StatusCode::FORBIDDEN, "forged-form", "Forbidden", e.to_string()))
}

/// A year a page may be asked for (the reports' periods are four-digit years).
pub fn check_year(year: i32) -> Result<(), ConsoleError> {
    if (2000..=9999).contains(&year) {
        Ok(())
    } else {
        Err(ConsoleError(Problem::bad_request(
            "bad-period",
            format!("das Jahr {year} liegt außerhalb von 2000 bis 9999"),
        )))
    }
}

/// A dataset of the caller's city, for a steward's form (`what` names the form for a refusal).
pub async fn own_dataset(state: &AppState, caller: &Caller, id: &str, what: &str) -> Result<crate::catalog::Dataset, ConsoleError> {
    caller.require(&[Role::Steward], what)?;
    let id = super::datasets::parse_id(id)?;
    let dataset = super::datasets::load(state, id).await?;
    crate::stewardship::check_owner(&caller.identity, &caller.member, &dataset, "change").map_err(|_| {
        ConsoleError(Problem::forbidden(format!(
            "der Datensatz „{}“ gehört {}; Datenverantwortliche von {} bearbeiten ihn nicht",
            dataset.id, dataset.publisher, caller.identity.ags
        )))
    })?;
    Ok(dataset)
}

/// A form body as (name, value) pairs, repeated names kept.
pub async fn form(state: &AppState, req: &HttpRequest, body: web::Payload) -> Result<Vec<(String, String)>, ConsoleError> {
    let media_type = super::content_type(req).unwrap_or_default();
    if !media_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ConsoleError(Problem::unsupported_media_type(format!(
            "ein Formular kommt als application/x-www-form-urlencoded, nicht als {media_type}"
        ))));
    }
    let bytes = super::read_body(state, body, 256 * 1024).await?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| ConsoleError(Problem::bad_request("bad-form", format!("das Formular ist nicht lesbar: {e}"))))
}

/// The first value of `name` in a form.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Every value of `name` in a form.
pub fn fields<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}
