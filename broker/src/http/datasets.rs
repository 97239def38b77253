//! `/v1/datasets`: stewards register, update and withdraw their city's dataset descriptions;
//! every member can read them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::auth::Caller;
use super::problem::Problem;
use super::{AppState, read_body};
use crate::catalog::{Dataset, DatasetFilter, DatasetId};
use crate::identity::{Ags, Role};
use crate::schema::Violation;
use crate::stewardship::{self, DatasetError};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    keyword: Option<String>,
    theme: Option<String>,
    publisher: Option<String>,
    /// Full-text search: with it (or any of the parameters below) the answer is a page of hits.
    q: Option<String>,
    licence: Option<String>,
    format: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
}

impl ListQuery {
    fn is_search(&self) -> bool {
        self.q.is_some() || self.licence.is_some() || self.format.is_some() || self.page.is_some() || self.per_page.is_some()
    }
}

pub async fn list(caller: Caller, state: web::Data<AppState>, q: web::Query<ListQuery>) -> Result<HttpResponse, Problem> {
    let q = q.into_inner();
    if q.is_search() {
        return search(state, q).await;
    }
    for (name, value) in [("keyword", &q.keyword), ("theme", &q.theme)] {
        check_filter(name, value.as_deref())?;
    }
    let publisher = q
        .publisher
        .map(|p| p.parse::<Ags>())
        .transpose()
        .map_err(|e| Problem::bad_request("bad-query-parameter", format!("query parameter 'publisher': {e}")))?;
    let filter = DatasetFilter {
        keyword: q.keyword,
        theme: q.theme,
        publisher,
    };
    let catalog = state.catalog.clone();
    let datasets = web::block(move || catalog.datasets(&filter)).await??;
    let iris = crate::catalog::dcat::Iris::new(&state.base_iri);
    let seen: Vec<Dataset> = datasets.into_iter().map(|d| seen_by(&iris, &caller, d)).collect();
    Ok(HttpResponse::Ok().json(seen))
}

/// A filter's value is 1 to 200 characters (as the OpenAPI document says), in the list and
/// the search alike.
fn check_filter(name: &str, value: Option<&str>) -> Result<(), Problem> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > 200 => Err(Problem::bad_request(
            "bad-query-parameter",
            format!("query parameter '{name}': 1 to 200 characters"),
        )),
        _ => Ok(()),
    }
}

/// `GET /v1/datasets?q=...`: relevance-ordered hits with facets ([`crate::catalog::search`]).
async fn search(state: web::Data<AppState>, q: ListQuery) -> Result<HttpResponse, Problem> {
    use crate::catalog::search::{MAX_PER_PAGE, MAX_QUERY_CHARS, SearchQuery};
    /// As the OpenAPI document says; beyond the last hit a page is empty anyway.
    const MAX_PAGE: usize = 10_000;
    let bad = |detail: String| Problem::bad_request("bad-query-parameter", detail);
    let text = q.q.unwrap_or_default();
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(bad(format!("query parameter 'q': at most {MAX_QUERY_CHARS} characters")));
    }
    let per_page = q.per_page.unwrap_or(20);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(bad(format!("query parameter 'per_page': 1 to {MAX_PER_PAGE}")));
    }
    let page = q.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(bad(format!("query parameter 'page': 1 to {MAX_PAGE}")));
    }
    if let Some(p) = &q.publisher {
        p.parse::<Ags>().map_err(|e| bad(format!("query parameter 'publisher': {e}")))?;
    }
    let mut filters = Vec::new();
    for (facet, value) in [
        ("theme", q.theme),
        ("publisher", q.publisher),
        ("licence", q.licence),
        ("format", q.format),
        (crate::catalog::search::KEYWORD, q.keyword.map(|k| k.to_lowercase())),
    ] {
        check_filter(facet, value.as_deref())?;
        if let Some(v) = value {
            filters.push((facet, v));
        }
    }
    let query = SearchQuery {
        text,
        filters,
        page,
        per_page,
    };
    let catalog = state.catalog.clone();
    let results = web::block(move || catalog.search(&query)).await??;
    Ok(HttpResponse::Ok().json(results))
}

pub async fn get(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    let dataset = load(&state, id).await?;
    let mut response = HttpResponse::Ok();
    // What a board member of the publishing city approves a policy for: sent back with the approval.
    if dataset.publisher == caller.identity.ags {
        response.insert_header(("X-Distributions-Digest", dataset.distributions_digest()));
    }
    Ok(response.json(seen_by(&crate::catalog::dcat::Iris::new(&state.base_iri), &caller, dataset)))
}

/// `GET /v1/datasets/{id}/validation`: the description as served, through the DCAT-AP.de shapes.
pub async fn validation(_caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    let catalog = state.catalog.clone();
    let wanted = id.clone();
    let findings = web::block(move || catalog.dataset_findings(&wanted))
        .await??
        .ok_or_else(|| Problem::not_found("no-such-dataset", format!("dataset '{id}' does not exist")))?;
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    use crate::catalog::shacl::Severity;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "dataset": id,
        "profile": crate::catalog::shacl::PROFILE,
        "conforms": count(Severity::Violation) == 0,
        "violations": count(Severity::Violation),
        "warnings": count(Severity::Warning),
        "findings": findings,
    })))
}

/// The dataset as the caller may see it: another city's provider addresses are the broker's.
fn seen_by(iris: &crate::catalog::dcat::Iris, caller: &Caller, d: Dataset) -> Dataset {
    let access = iris.data_access(&d.id);
    d.seen_by(&caller.identity.ags, &access)
}

pub async fn create(caller: Caller, state: web::Data<AppState>, body: web::Payload) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "registering a dataset")?;
    let value = parse_json(&state, body).await?;
    let dataset = stewardship::register(&state.exchange, &state.schemas, &caller.identity, &caller.member, value)
        .await
        .map_err(dataset_problem)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/datasets/{}", dataset.id)))
        .json(dataset))
}

pub async fn replace(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "changing a dataset")?;
    let id = parse_id(&id)?;
    let existing = load(&state, id.clone()).await?;
    check_owner(&caller, &existing, "change")?;
    let value = parse_json(&state, body).await?;
    let dataset = stewardship::change(&state.exchange, &state.schemas, &caller.identity, &caller.member, &existing, value)
        .await
        .map_err(dataset_problem)?;
    Ok(HttpResponse::Ok().json(dataset))
}

/// The problem for a steward's change that was not made.
pub fn dataset_problem(e: DatasetError) -> Problem {
    match e {
        DatasetError::Invalid(violations) => unprocessable(violations),
        DatasetError::Change(crate::changes::ChangeError::Failed(e)) => e.into(),
        DatasetError::Change(other) => super::change_problem(other, "the change could not be made"),
        DatasetError::NotSteward(_)
        | DatasetError::OtherPublisher { .. }
        | DatasetError::NotOwner { .. }
        | DatasetError::PublisherChanged => Problem::forbidden(e.to_string()),
    }
}

pub async fn remove(caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "withdrawing a dataset")?;
    let id = parse_id(&id)?;
    let existing = load(&state, id.clone()).await?;
    check_owner(&caller, &existing, "withdraw")?;
    let catalog = state.catalog.clone();
    let hosted = state.exchange.hosted.clone();
    let withdrawn = id.clone();
    let detail = serde_json::json!({ "publisher": existing.publisher });
    // One step: the description, the policy in force and the hosted upload go, a tombstone keeps
    // the identifier from ever naming another dataset.
    super::audited(&state, &caller, "dataset-withdrawn", id.as_str(), detail, move || {
        // The upload first: should the graph change then fail, the dataset stays registered
        // without data (its steward uploads again), never withdrawn with data left behind.
        hosted
            .remove(&withdrawn)
            .map_err(|e| crate::catalog::CatalogError::Storage(e.to_string()))?;
        catalog.withdraw_dataset(&withdrawn, &stewardship::now_seconds())
    })
    .await?;
    state.exchange.forget_withdrawn(&id);
    tracing::info!(dataset = %existing.id, by = %caller.identity.ags, serial = %caller.identity.serial, "dataset withdrawn");
    Ok(HttpResponse::NoContent().finish())
}

/// A dataset id from the path; a malformed one cannot exist, so it is a 404.
pub(super) fn parse_id(raw: &str) -> Result<DatasetId, Problem> {
    raw.parse()
        .map_err(|e: crate::catalog::model::BadDatasetId| Problem::not_found("no-such-dataset", e.to_string()))
}

/// The dataset, or 404 (never registered) or 410 (withdrawn).
pub(super) async fn load(state: &AppState, id: DatasetId) -> Result<Dataset, Problem> {
    let catalog = state.catalog.clone();
    let found = web::block(move || match catalog.dataset(&id)? {
        Some(d) => Ok(Ok(d)),
        None => catalog.tombstone(&id).map(|t| Err((id, t))),
    })
    .await??;
    found.map_err(|(id, tombstone)| match tombstone {
        Some(t) => crate::catalog::CatalogError::DatasetWithdrawn(Box::new(t)).into(),
        None => Problem::not_found("no-such-dataset", format!("dataset '{id}' does not exist")),
    })
}

/// Only the publishing city may change a dataset, its policy or its hosted data.
pub(super) fn check_owner(caller: &Caller, dataset: &Dataset, verb: &'static str) -> Result<(), Problem> {
    stewardship::check_owner(&caller.identity, &caller.member, dataset, verb).map_err(dataset_problem)
}

/// The body as JSON; what is wrong with it named with its place.
async fn parse_json(state: &AppState, body: web::Payload) -> Result<Value, Problem> {
    let bytes = read_body(state, body, state.max_body_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            "malformed-json",
            format!("the body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
        )
        .with_violations(vec![Violation {
            pointer: String::new(),
            message: e.to_string(),
        }])
    })
}

fn unprocessable(violations: Vec<Violation>) -> Problem {
    let n = violations.len();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-dataset",
        "Invalid dataset description",
        format!(
            "the dataset description violates schemas/dataset.schema.json in {n} place{}",
            if n == 1 { "" } else { "s" }
        ),
    )
    .with_violations(violations)
}
