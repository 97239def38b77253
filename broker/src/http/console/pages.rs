//! The console's pages for reading and reviewing: overview, datasets, the board's approval queue
//! and review page, usage.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use policy_compiler::explain::explain;
use policy_compiler::parse::Syntax;
use serde::Deserialize;

use super::lang::{Lang, Ui};
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
use crate::reports;

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

fn themes_of(d: &Dataset, lang: Lang) -> String {
    let l = labels();
    d.themes
        .iter()
        .map(|t| l.theme_in(t, lang.language()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows a datasets page shows.
pub(super) const PER_PAGE: usize = 25;

/// A page of the caller's city's datasets (the search index: paging without reading every
/// dataset), each with its policy versions; and how many there are in all.
pub(super) async fn own_datasets(
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

/// How many datasets the caller's city publishes (the search index's count; nothing read).
async fn own_count(state: &AppState, caller: &Caller) -> Result<usize, ConsoleError> {
    let search = crate::catalog::search::SearchQuery {
        text: String::new(),
        filters: vec![("publisher", caller.identity.ags.to_string())],
        page: 1,
        per_page: 1,
    };
    let catalog = state.catalog.clone();
    Ok(web::block(move || catalog.search(&search).map(|found| found.total)).await??)
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

fn row(d: &Dataset, versions: &[PolicyVersion], lang: Lang) -> DatasetRow {
    let drafts = versions.iter().filter(|v| v.status == PolicyStatus::Draft).count();
    let policy = match (versions.iter().find(|v| v.active), lang) {
        (Some(v), Lang::De) => format!("in Kraft (Version {})", v.version),
        (Some(v), Lang::En) => format!("in force (version {})", v.version),
        (None, Lang::De) => "keine Richtlinie in Kraft – nicht freigegeben".to_owned(),
        (None, Lang::En) => "no policy in force – not shared".to_owned(),
    };
    DatasetRow {
        id: d.id.to_string(),
        title: title_of(d),
        themes: themes_of(d, lang),
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

pub async fn home(caller: Result<Caller, Problem>, state: web::Data<AppState>, ui: Ui) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let datasets = own_count(&state, &caller).await?;
    let drafts = own_drafts(&state, &caller).await?.len();
    page(&Home {
        nav: Nav::of(&caller, &ui, "home"),
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
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let q = query.q.clone().unwrap_or_default();
    let page_no = query.seite.unwrap_or(1).clamp(1, 10_000);
    // The same search as `GET /v1/datasets?q=`, within the caller's city; empty: all of them.
    let (total, own) = own_datasets(&state, &caller, &q, page_no).await?;
    page(&Datasets {
        nav: Nav::of(&caller, &ui, "datasets"),
        q,
        total,
        page: page_no,
        pages: total.div_ceil(PER_PAGE).max(1),
        rows: own.iter().map(|(d, v)| row(d, v, ui.lang)).collect(),
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

pub async fn queue(caller: Result<Caller, Problem>, state: web::Data<AppState>, ui: Ui) -> Result<HttpResponse, ConsoleError> {
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
            submitted: crate::german::date_time_in(&v.submitted, ui.lang.language()),
        })
        .collect();
    page(&Queue {
        nav: Nav::of(&caller, &ui, "queue"),
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

/// A recorded decision in German (the template translates it).
fn decision_de(d: &str) -> &'static str {
    if d == "permit" { "erlaubt" } else { "abgelehnt" }
}

fn explained(state: &AppState, v: &PolicyVersion, lang: Lang) -> String {
    let syntax = Syntax::from_media_type(&v.media_type).unwrap_or(Syntax::Turtle);
    match policy_compiler::parse::parse_one(&v.source, syntax, &state.vocab) {
        Ok(p) => explain(&p, lang.language()),
        Err(e) => format!("({}: {e})", lang.t("nicht lesbar")),
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
    ui: &Ui,
    req: &HttpRequest,
    path: &(String, u32),
    q: &ReviewQuery,
    outcome: Option<String>,
) -> Result<ReviewPage, ConsoleError> {
    let (dataset, versions, v) = dataset_version(state, &path.0, path.1).await?;
    let active = versions.iter().find(|a| a.active);
    let (period, from, to) = review_period(q)?;
    let mut page = ReviewPage {
        nav: Nav::of(caller, ui, "queue"),
        dataset: dataset.id.to_string(),
        title: title_of(&dataset),
        version: v.version,
        status: ui.lang.t(match v.status {
            PolicyStatus::Draft => "Entwurf, wartet auf Freigabe",
            PolicyStatus::Approved if v.active => "freigegeben, in Kraft",
            PolicyStatus::Approved => "freigegeben, abgelöst",
            PolicyStatus::Rejected => "vom Gremium abgelehnt",
        }),
        author: v.author_name.clone(),
        submitted: crate::german::date_time_in(&v.submitted, ui.lang.language()),
        draft_explained: explained(state, &v, ui.lang),
        draft_source: v.source.clone(),
        active_version: active.map(|a| a.version),
        active_explained: active.map(|a| explained(state, a, ui.lang)).unwrap_or_default(),
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
                        time: crate::german::date_time_in(&f.time, ui.lang.language()),
                        consumer: f.consumer,
                        purpose: labels().purpose_in(&f.purpose, ui.lang.language()).to_owned(),
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
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    page(&review_page(&state, &caller, &ui, &req, &path, &q, None).await?)
}

pub async fn review_post(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    req: HttpRequest,
    body: web::Payload,
    ui: Ui,
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
    let outcome = match (reviewed.status == PolicyStatus::Approved, ui.lang) {
        (true, Lang::De) => format!("Version {} ist freigegeben und in Kraft.", reviewed.version),
        (false, Lang::De) => format!("Version {} ist abgelehnt.", reviewed.version),
        (true, Lang::En) => format!("Version {} is approved and in force.", reviewed.version),
        (false, Lang::En) => format!("Version {} is rejected.", reviewed.version),
    };
    let q = ReviewQuery { von: None, bis: None };
    page(&review_page(&state, &caller, &ui, &req, &path, &q, Some(outcome)).await?)
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

/// A denial reason with its count, for people.
pub struct ReasonLine {
    pub reason: String,
    pub count: String,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
struct Usage {
    nav: Nav,
    year: i32,
    chart: String,
    by_partner: String,
    by_purpose: String,
    lines: Vec<UsageLine>,
    reasons: Vec<ReasonLine>,
    permits: String,
    denies: String,
}

/// A denial reason key ([`reports::denial_reason`]) for people.
pub fn reason_text(key: &str, lang: Lang) -> String {
    match key {
        "not-shared" => lang
            .t("nicht freigegeben (keine Richtlinie in Kraft, Datensatz geändert oder zurückgezogen)")
            .to_owned(),
        "no-permission" => lang.t("keine Erlaubnis für diese Kommune oder Handlung").to_owned(),
        "evaluation-error" => lang.t("Richtlinie nicht auswertbar (abgelehnt, sicherheitshalber)").to_owned(),
        other => match other.strip_prefix("constraint:") {
            Some(names) => format!("{} {names}", lang.t("Bedingung nicht erfüllt:")),
            None => other.to_owned(),
        },
    }
}

/// A month of usage between two cities for one purpose (the tally's month cell).
type MonthRow = (reports::MonthCell, reports::MonthCounts);

/// Permits and denials summed by `key` of each row, as bars (at most 12, the largest).
fn bars_by(rows: &[MonthRow], key: impl Fn(&reports::MonthCell) -> String) -> Vec<Bar> {
    let mut sums: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (cell, counts) in rows {
        let e = sums.entry(key(cell)).or_default();
        e.0 += counts.volumes.permits;
        e.1 += counts.volumes.denies;
    }
    let mut sums: Vec<(String, (u64, u64))> = sums.into_iter().collect();
    sums.sort_by(|a, b| (b.1.0 + b.1.1).cmp(&(a.1.0 + a.1.1)).then_with(|| a.0.cmp(&b.0)));
    sums.into_iter()
        .take(12)
        .map(|(label, (p, d))| Bar { label, values: vec![p, d] })
        .collect()
}

#[derive(Deserialize)]
pub struct UsageQuery {
    jahr: Option<i32>,
}

const SERIES: [Series; 2] = crate::chart::PERMIT_DENY;

/// The caller's city's usage of `year` by Berlin month (scoped as the API's reports: a board
/// member sees their city as provider and as consumer, a steward as provider). Reads the
/// tally's month cells: a year is a few hundred of them, however many requests there were.
async fn usage_rows(state: &AppState, caller: &Caller, year: i32) -> Result<Vec<MonthRow>, ConsoleError> {
    caller.require(&[Role::Board, Role::Steward], "die Nutzungsübersicht")?;
    super::check_year(year)?;
    let city = caller.identity.ags.to_string();
    let as_consumer = caller.identity.role == Role::Board;
    Ok(state
        .exchange
        .tally
        .months_where(&format!("{year}-01"), &format!("{year}-12"), |c| {
            c.provider == city || (as_consumer && c.consumer == city)
        }))
}

/// The denials of the rows by reason, most frequent first.
fn denial_reasons(rows: &[MonthRow], lang: Lang) -> Vec<ReasonLine> {
    let mut sums: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, counts) in rows {
        for (reason, n) in &counts.denials {
            *sums.entry(reason.as_str()).or_default() += n;
        }
    }
    let mut sums: Vec<(&str, u64)> = sums.into_iter().collect();
    sums.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    sums.into_iter()
        .map(|(r, n)| ReasonLine {
            reason: reason_text(r, lang),
            count: crate::german::number_in(n, lang.language()),
        })
        .collect()
}

/// Member names by AGS, for people.
async fn names(state: &AppState) -> Result<std::collections::HashMap<String, String>, ConsoleError> {
    Ok(super::members(state).await?.into_iter().map(|(a, o)| (a.to_string(), o)).collect())
}

fn this_year() -> i32 {
    time::OffsetDateTime::now_utc().year()
}

fn lines(rows: &[MonthRow], names: &std::collections::HashMap<String, String>, lang: Lang) -> Vec<UsageLine> {
    let name = |ags: &str| names.get(ags).cloned().unwrap_or_else(|| ags.to_owned());
    let l = lang.language();
    rows.iter()
        .map(|(c, n)| UsageLine {
            month: crate::german::month_in(&c.month, l),
            provider: name(&c.provider),
            consumer: name(&c.consumer),
            purpose: labels().purpose_in(&c.purpose, l).to_owned(),
            permits: crate::german::number_in(n.volumes.permits, l),
            denies: crate::german::number_in(n.volumes.denies, l),
            delivered: crate::german::number_in(n.volumes.delivered, l),
        })
        .collect()
}

/// The year asked for, its usage rows in the caller's scope, and member names.
async fn usage_of(
    state: &AppState,
    caller: &Caller,
    q: &UsageQuery,
) -> Result<(i32, Vec<MonthRow>, std::collections::HashMap<String, String>), ConsoleError> {
    let year = q.jahr.unwrap_or_else(this_year);
    let rows = usage_rows(state, caller, year).await?;
    Ok((year, rows, names(state).await?))
}

pub async fn usage(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    q: web::Query<UsageQuery>,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    let (year, rows, names) = usage_of(&state, &caller, &q).await?;
    let mut months = [(0u64, 0u64); 12];
    for (c, n) in &rows {
        let m: usize = c.month.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
        if let Some(slot) = months.get_mut(m.saturating_sub(1)) {
            slot.0 += n.volumes.permits;
            slot.1 += n.volumes.denies;
        }
    }
    let bars: Vec<Bar> = months
        .iter()
        .enumerate()
        .map(|(i, (p, d))| Bar {
            label: crate::german::month_short(i, ui.lang.language()),
            values: vec![*p, *d],
        })
        .collect();
    let total = months.iter().fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1));
    let city = caller.identity.ags.to_string();
    let name = |ags: &str| names.get(ags).cloned().unwrap_or_else(|| ags.to_owned());
    // The partner: the other city of each row (the consumer of the city's data, or the
    // provider of data the city used).
    let partners = bars_by(&rows, |c| name(if c.provider == city { &c.consumer } else { &c.provider }));
    let l = ui.lang.language();
    let purposes = bars_by(&rows, |c| labels().purpose_in(&c.purpose, l).to_owned());
    let series = if ui.lang == Lang::De {
        &SERIES
    } else {
        &crate::chart::PERMIT_DENY_EN
    };
    let t = |de: &'static str| ui.lang.t(de);
    page(&Usage {
        nav: Nav::of(&caller, &ui, "usage"),
        year,
        chart: stacked_bars("nutzung", &format!("{} {year}", t("Anfragen je Monat")), series, &bars),
        by_partner: stacked_bars(
            "partner",
            &format!("{} {year}", t("Anfragen nach Partnerkommune")),
            series,
            &partners,
        ),
        by_purpose: stacked_bars("zweck", &format!("{} {year}", t("Anfragen nach Zweck")), series, &purposes),
        reasons: denial_reasons(&rows, ui.lang),
        lines: lines(&rows, &names, ui.lang),
        permits: crate::german::number_in(total.0, l),
        denies: crate::german::number_in(total.1, l),
    })
}

pub async fn usage_csv(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    q: web::Query<UsageQuery>,
    ui: Ui,
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
    ]
    .map(|c| ui.lang.t(c));
    let csv = crate::spreadsheet::german_csv(
        &columns,
        lines(&rows, &names, ui.lang)
            .into_iter()
            .map(|l| vec![l.month, l.provider, l.consumer, l.purpose, l.permits, l.denies, l.delivered]),
    )
    .map_err(|e| Problem::internal("the CSV cannot be written", e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"nutzung-{year}.csv\"")))
        .body(csv))
}
