//! The console's pages for reading and reviewing: overview, datasets, the board's approval queue
//! and review page, usage.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use policy_compiler::explain::{Language, explain};
use policy_compiler::parse::Syntax;
use serde::Deserialize;

use super::{ConsoleError, Nav, check_form, field, form, page};
use crate::audit::export::Period;
use crate::catalog::labels::labels;
use crate::catalog::{Dataset, PolicyStatus, PolicyVersion};
use crate::chart::{Bar, Series, stacked_bars};
use crate::governance::{self, ReviewError};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::identity::Role;
use crate::reports::{self, Bucket};

/// A dataset as a row of the console's lists.
pub struct DatasetRow {
    pub id: String,
    pub title: String,
    pub themes: String,
    /// "aktiv (Version 2)", "kein Vertrag" …
    pub policy: String,
    pub drafts: usize,
}

/// The German title of a dataset (its English one, or its id, if it has none).
pub fn title_of(d: &Dataset) -> String {
    d.title
        .iter()
        .find(|(l, _)| l.tag() == "de")
        .or_else(|| d.title.iter().next())
        .map_or_else(|| d.id.to_string(), |(_, t)| t.clone())
}

fn themes_of(d: &Dataset) -> String {
    let l = labels();
    d.themes.iter().map(|t| l.theme(t)).collect::<Vec<_>>().join(", ")
}

/// Rows a datasets page shows.
const PER_PAGE: usize = 25;

/// A page of the caller's city's datasets (the search index: paging without reading every
/// dataset), each with its policy versions; and how many there are in all.
async fn own_datasets(
    state: &AppState,
    caller: &Caller,
    text: &str,
    page: usize,
) -> Result<(usize, Vec<(Dataset, Vec<PolicyVersion>)>), ConsoleError> {
    let search = crate::catalog::search::SearchQuery {
        text: text.chars().take(crate::catalog::search::MAX_QUERY_CHARS).collect(),
        filters: vec![("publisher", caller.identity.ags.to_string())],
        page,
        per_page: PER_PAGE,
    };
    let catalog = state.catalog.clone();
    Ok(web::block(move || {
        let found = catalog.search(&search)?;
        let mut rows = Vec::with_capacity(found.hits.len());
        for hit in found.hits {
            let Ok(id) = hit.id.parse() else { continue };
            if let Some(d) = catalog.dataset(&id)? {
                rows.push((d, catalog.policy_versions(&id)?));
            }
        }
        Ok::<_, crate::catalog::CatalogError>((found.total, rows))
    })
    .await??)
}

/// The drafts waiting in the caller's city, with their datasets (few: read one by one).
async fn own_drafts(state: &AppState, caller: &Caller) -> Result<Vec<(Dataset, PolicyVersion)>, ConsoleError> {
    let catalog = state.catalog.clone();
    let city = caller.identity.ags.clone();
    Ok(web::block(move || {
        let mut out = Vec::new();
        for id in catalog.datasets_with_drafts()? {
            let Some(d) = catalog.dataset(&id)?.filter(|d| d.publisher == city) else {
                continue;
            };
            for v in catalog.policy_versions(&id)? {
                if v.status == PolicyStatus::Draft {
                    out.push((d.clone(), v));
                }
            }
        }
        Ok::<_, crate::catalog::CatalogError>(out)
    })
    .await??)
}

fn row(d: &Dataset, versions: &[PolicyVersion]) -> DatasetRow {
    let drafts = versions.iter().filter(|v| v.status == PolicyStatus::Draft).count();
    let policy = match versions.iter().find(|v| v.active) {
        Some(v) => format!("in Kraft (Version {})", v.version),
        None => "keine Richtlinie in Kraft – nicht freigegeben".to_owned(),
    };
    DatasetRow {
        id: d.id.to_string(),
        title: title_of(d),
        themes: themes_of(d),
        policy,
        drafts,
    }
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct Home {
    nav: Nav,
    datasets: usize,
    drafts: usize,
}

pub async fn home(caller: Result<Caller, Problem>, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let (datasets, _) = own_datasets(&state, &caller, "", 1).await?;
    let drafts = own_drafts(&state, &caller).await?.len();
    page(&Home {
        nav: Nav::of(&caller, "home"),
        datasets,
        drafts,
    })
}

#[derive(Deserialize)]
pub struct DatasetsQuery {
    q: Option<String>,
    seite: Option<usize>,
}

#[derive(Template)]
#[template(path = "console/datasets.html")]
struct Datasets {
    nav: Nav,
    q: String,
    total: usize,
    page: usize,
    pages: usize,
    rows: Vec<DatasetRow>,
}

pub async fn datasets(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    query: web::Query<DatasetsQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let q = query.q.clone().unwrap_or_default();
    let page_no = query.seite.unwrap_or(1).clamp(1, 10_000);
    // The same search as `GET /v1/datasets?q=`, within the caller's city; empty: all of them.
    let (total, own) = own_datasets(&state, &caller, &q, page_no).await?;
    page(&Datasets {
        nav: Nav::of(&caller, "datasets"),
        q,
        total,
        page: page_no,
        pages: total.div_ceil(PER_PAGE).max(1),
        rows: own.iter().map(|(d, v)| row(d, v)).collect(),
    })
}

/// A draft waiting for the board.
pub struct Waiting {
    pub dataset: String,
    pub title: String,
    pub version: u32,
    pub author: String,
    pub submitted: String,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct Queue {
    nav: Nav,
    waiting: Vec<Waiting>,
}

pub async fn queue(caller: Result<Caller, Problem>, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    caller.require(&[Role::Board, Role::Steward], "die Freigabeliste")?;
    let waiting = own_drafts(&state, &caller)
        .await?
        .iter()
        .map(|(d, v)| Waiting {
            dataset: d.id.to_string(),
            title: title_of(d),
            version: v.version,
            author: v.author_name.clone(),
            submitted: crate::german::date_time(&v.submitted),
        })
        .collect();
    page(&Queue {
        nav: Nav::of(&caller, "queue"),
        waiting,
    })
}

/// A simulated flip, as the review page lists it.
pub struct FlipRow {
    pub time: String,
    pub consumer: String,
    pub purpose: String,
    pub recorded: &'static str,
    pub simulated: &'static str,
    pub reasons: String,
}

#[derive(Template)]
#[template(path = "console/review.html")]
struct ReviewPage {
    nav: Nav,
    dataset: String,
    title: String,
    version: u32,
    status: &'static str,
    author: String,
    submitted: String,
    draft_explained: String,
    draft_source: String,
    active_version: Option<u32>,
    active_explained: String,
    /// Why the caller may not review it, if they may not.
    refusal: Option<String>,
    token: String,
    distributions: String,
    from: String,
    to: String,
    considered: usize,
    not_replayable: usize,
    unchanged: usize,
    flips: Vec<FlipRow>,
    /// Whether the simulation ran (it reads the trail of the period: on request only).
    simulated: bool,
    simulation_error: Option<String>,
    /// What the last post did.
    outcome: Option<String>,
}

#[derive(Deserialize)]
pub struct ReviewQuery {
    von: Option<String>,
    bis: Option<String>,
}

fn decision_de(d: &str) -> &'static str {
    if d == "permit" { "erlaubt" } else { "abgelehnt" }
}

fn explained(state: &AppState, v: &PolicyVersion) -> String {
    let syntax = Syntax::from_media_type(&v.media_type).unwrap_or(Syntax::Turtle);
    match policy_compiler::parse::parse_one(&v.source, syntax, &state.vocab) {
        Ok(p) => explain(&p, Language::De),
        Err(e) => format!("(nicht lesbar: {e})"),
    }
}

async fn dataset_version(state: &AppState, id: &str, version: u32) -> Result<(Dataset, Vec<PolicyVersion>, PolicyVersion), ConsoleError> {
    let id = crate::http::datasets::parse_id(id)?;
    let dataset = crate::http::datasets::load(state, id.clone()).await?;
    let catalog = state.catalog.clone();
    let versions = web::block(move || catalog.policy_versions(&id)).await??;
    let v = versions
        .iter()
        .find(|v| v.version == version)
        .cloned()
        .ok_or_else(|| Problem::not_found("no-such-policy-version", format!("Version {version} gibt es nicht")))?;
    Ok((dataset, versions, v))
}

/// The last 90 days, or the dates the page was asked for (`von`, `bis`, inclusive).
fn review_period(q: &ReviewQuery) -> Result<(Period, String, String), ConsoleError> {
    let today = time::OffsetDateTime::now_utc().date();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let from = q
        .von
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| (today - time::Duration::days(90)).format(&fmt).unwrap_or_default());
    let to = q
        .bis
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| today.format(&fmt).unwrap_or_default());
    let end = time::Date::parse(&to, &fmt)
        .map_err(|_| Problem::bad_request("bad-period", format!("„{to}“ ist kein Datum (JJJJ-MM-TT)")))?
        .next_day()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default();
    let period =
        Period::parse(Some(from.as_str()), Some(end.as_str())).map_err(|e| Problem::bad_request("bad-period", format!("Zeitraum: {e}")))?;
    Ok((period, from, to))
}

async fn review_page(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    path: &(String, u32),
    q: &ReviewQuery,
    outcome: Option<String>,
) -> Result<ReviewPage, ConsoleError> {
    let (dataset, versions, v) = dataset_version(state, &path.0, path.1).await?;
    let active = versions.iter().find(|a| a.active);
    let (period, from, to) = review_period(q)?;
    let mut page = ReviewPage {
        nav: Nav::of(caller, "queue"),
        dataset: dataset.id.to_string(),
        title: title_of(&dataset),
        version: v.version,
        status: match v.status {
            PolicyStatus::Draft => "Entwurf, wartet auf Freigabe",
            PolicyStatus::Approved if v.active => "freigegeben, in Kraft",
            PolicyStatus::Approved => "freigegeben, abgelöst",
            PolicyStatus::Rejected => "abgelehnt",
        },
        author: v.author_name.clone(),
        submitted: crate::german::date_time(&v.submitted),
        draft_explained: explained(state, &v),
        draft_source: v.source.clone(),
        active_version: active.map(|a| a.version),
        active_explained: active.map(|a| explained(state, a)).unwrap_or_default(),
        refusal: governance::may_review(&caller.identity, &dataset, &v).err().map(|e| e.to_string()),
        token: state.console_csrf.token(&caller.identity.serial, req.path()),
        distributions: dataset.distributions_digest(),
        from,
        to,
        considered: 0,
        not_replayable: 0,
        unchanged: 0,
        flips: Vec::new(),
        simulated: false,
        simulation_error: None,
        outcome,
    };
    // Simulating reads the period's decisions from the trail, so it runs when asked for (the
    // page's form); and only for the publisher's people (as in the API).
    let asked = q.von.is_some() || q.bis.is_some();
    if asked && caller.identity.ags == dataset.publisher && matches!(caller.identity.role, Role::Board | Role::Steward) {
        page.simulated = true;
        match governance::simulate_version(&state.exchange, &v, period).await {
            Ok(sim) => {
                page.considered = sim.considered;
                page.not_replayable = sim.not_replayable;
                page.unchanged = sim.unchanged;
                page.flips = sim
                    .flips
                    .into_iter()
                    .map(|f| FlipRow {
                        time: crate::german::date_time(&f.time),
                        consumer: f.consumer,
                        purpose: labels().purpose(&f.purpose).to_owned(),
                        recorded: decision_de(&f.recorded),
                        simulated: decision_de(&f.simulated),
                        reasons: f.reasons.join("; "),
                    })
                    .collect();
            }
            Err(e) => page.simulation_error = Some(e.to_string()),
        }
    }
    Ok(page)
}

pub async fn review(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    q: web::Query<ReviewQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    page(&review_page(&state, &caller, &req, &path, &q, None).await?)
}

pub async fn review_post(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let form = form(&state, &req, body).await?;
    check_form(&state, &caller, &req, field(&form, "token"))?;
    let approved = match field(&form, "entscheidung") {
        Some("freigeben") => true,
        Some("ablehnen") => false,
        other => {
            return Err(ConsoleError(Problem::bad_request(
                "bad-form",
                format!("„entscheidung“ ist freigeben oder ablehnen, nicht {other:?}"),
            )));
        }
    };
    let note = field(&form, "notiz")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(2000).collect());
    let (dataset, _, version) = dataset_version(&state, &path.0, path.1).await?;
    let verdict = governance::Verdict {
        approved,
        note,
        distributions_seen: field(&form, "verteilungen").map(str::to_owned),
    };
    let reviewed = governance::review(&state.exchange, &caller.identity, &dataset, &version, verdict)
        .await
        .map_err(|e| match e {
            ReviewError::Refused(r) => ConsoleError(Problem::forbidden(r.to_string())),
            ReviewError::DistributionsChanged(_) => ConsoleError(Problem::new(
                StatusCode::CONFLICT,
                "distributions-changed",
                "Conflict",
                e.to_string(),
            )),
            ReviewError::Change(c) => ConsoleError(Problem::internal("die Entscheidung konnte nicht gespeichert werden", c)),
        })?;
    let outcome = if reviewed.status == PolicyStatus::Approved {
        format!("Version {} ist freigegeben und in Kraft.", reviewed.version)
    } else {
        format!("Version {} ist abgelehnt.", reviewed.version)
    };
    let q = ReviewQuery { von: None, bis: None };
    page(&review_page(&state, &caller, &req, &path, &q, Some(outcome)).await?)
}

/// One line of the usage table.
pub struct UsageLine {
    pub month: String,
    pub provider: String,
    pub consumer: String,
    pub purpose: String,
    pub permits: String,
    pub denies: String,
    pub delivered: String,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct Usage {
    nav: Nav,
    year: i32,
    chart: String,
    lines: Vec<UsageLine>,
    permits: String,
    denies: String,
}

#[derive(Deserialize)]
pub struct UsageQuery {
    jahr: Option<i32>,
}

const SERIES: [Series; 2] = crate::chart::PERMIT_DENY;

/// The caller's city's usage rows of `year`, by month (scoped as the API's reports).
async fn usage_rows(state: &AppState, caller: &Caller, year: i32) -> Result<Vec<reports::UsageRow>, ConsoleError> {
    caller.require(&[Role::Board, Role::Steward], "die Nutzungsübersicht")?;
    if !(2000..=9999).contains(&year) {
        return Err(ConsoleError(Problem::bad_request(
            "bad-period",
            format!("das Jahr {year} liegt außerhalb von 2000 bis 9999"),
        )));
    }
    let (start, end) = (format!("{year}-01-01"), format!("{}-01-01", year + 1));
    let period = Period::parse(Some(start.as_str()), Some(end.as_str())).map_err(|e| Problem::bad_request("bad-period", e.to_string()))?;
    let city = caller.identity.ags.to_string();
    let as_consumer = caller.identity.role == Role::Board;
    // A pass over the tally's cells (one per day, dataset, partner and purpose): on the
    // blocking pool, never an async worker.
    let tally = state.exchange.tally.clone();
    Ok(web::block(move || {
        reports::usage(&tally, &period, Bucket::Month, |c| {
            c.provider == city || (as_consumer && c.consumer == city)
        })
    })
    .await?)
}

/// Member names by AGS, for people.
async fn names(state: &AppState) -> Result<std::collections::HashMap<String, String>, ConsoleError> {
    Ok(super::members(state).await?.into_iter().map(|(a, o)| (a.to_string(), o)).collect())
}

fn this_year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

/// Month, provider, consumer, purpose.
type UsageKey = (String, String, String, String);

fn lines(rows: &[reports::UsageRow], names: &std::collections::HashMap<String, String>) -> Vec<UsageLine> {
    // By month, provider, consumer and purpose: the dataset is folded in (a board reads who used
    // what for which purpose; the per-dataset view is the API's).
    let mut folded: std::collections::BTreeMap<UsageKey, (u64, u64, u64)> = Default::default();
    for r in rows {
        let e = folded
            .entry((r.bucket.clone(), r.provider.clone(), r.consumer.clone(), r.purpose.clone()))
            .or_default();
        e.0 += r.volumes.permits;
        e.1 += r.volumes.denies;
        e.2 += r.volumes.delivered;
    }
    let name = |ags: &str| names.get(ags).cloned().unwrap_or_else(|| ags.to_owned());
    folded
        .into_iter()
        .map(|((month, provider, consumer, purpose), (p, d, del))| UsageLine {
            month: crate::german::month(&month),
            provider: name(&provider),
            consumer: name(&consumer),
            purpose: labels().purpose(&purpose).to_owned(),
            permits: crate::german::number(p),
            denies: crate::german::number(d),
            delivered: crate::german::number(del),
        })
        .collect()
}

/// The year asked for, its usage rows in the caller's scope, and member names.
async fn usage_of(
    state: &AppState,
    caller: &Caller,
    q: &UsageQuery,
) -> Result<(i32, Vec<reports::UsageRow>, std::collections::HashMap<String, String>), ConsoleError> {
    let year = q.jahr.unwrap_or_else(this_year);
    let rows = usage_rows(state, caller, year).await?;
    Ok((year, rows, names(state).await?))
}

pub async fn usage(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    q: web::Query<UsageQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let (year, rows, names) = usage_of(&state, &caller, &q).await?;
    let mut months = [(0u64, 0u64); 12];
    for r in &rows {
        let m: usize = r.bucket.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
        if let Some(slot) = months.get_mut(m.saturating_sub(1)) {
            slot.0 += r.volumes.permits;
            slot.1 += r.volumes.denies;
        }
    }
    let bars: Vec<Bar> = months
        .iter()
        .enumerate()
        .map(|(i, (p, d))| Bar {
            label: crate::catalog::labels::MONTHS_DE
                .get(i)
                .map(|m| m.chars().take(3).collect())
                .unwrap_or_default(),
            values: vec![*p, *d],
        })
        .collect();
    let total = months.iter().fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1));
    page(&Usage {
        nav: Nav::of(&caller, "usage"),
        year,
        chart: stacked_bars("nutzung", &format!("Anfragen je Monat {year}"), &SERIES, &bars),
        lines: lines(&rows, &names),
        permits: crate::german::number(total.0),
        denies: crate::german::number(total.1),
    })
}

pub async fn usage_csv(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    q: web::Query<UsageQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let (year, rows, names) = usage_of(&state, &caller, &q).await?;
    let columns = [
        "Monat",
        "Anbietende Kommune",
        "Nutzende Kommune",
        "Zweck",
        "Erlaubt",
        "Abgelehnt",
        "Geliefert",
    ];
    let csv = crate::spreadsheet::german_csv(
        &columns,
        lines(&rows, &names)
            .into_iter()
            .map(|l| vec![l.month, l.provider, l.consumer, l.purpose, l.permits, l.denies, l.delivered]),
    )
    .map_err(|e| Problem::internal("the CSV cannot be written", e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"nutzung-{year}.csv\"")))
        .body(csv))
}
