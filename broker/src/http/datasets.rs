//! `/v1/datasets`: stewards register, update and withdraw their city's dataset descriptions;
//! every member can read them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Caller;
use super::problem::Problem;
use super::{AppState, read_body};
use crate::catalog::{Dataset, DatasetDescription, DatasetFilter, DatasetId};
use crate::identity::{Ags, Role};
use crate::schema::Violation;

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
    let description = parse_description(&state, body).await?;
    if let Some(p) = description.publisher.as_ref().filter(|p| **p != caller.identity.ags) {
        return Err(Problem::forbidden(format!(
            "a steward of {} may only register datasets of {}, not of {p}",
            caller.member.organisation, caller.identity.ags
        )));
    }
    check_providers(&caller, &description)?;
    let id = description.identifier.clone().unwrap_or_else(DatasetId::generate);
    let now = now_rfc3339();
    let dataset = Dataset::from_description(id, caller.identity.ags.clone(), description, now.clone(), now);
    let catalog = state.catalog.clone();
    let stored = dataset.clone();
    let detail = serde_json::to_value(&dataset).unwrap_or_default();
    super::audited(&state, &caller, "dataset-registered", dataset.id.as_str(), detail, move || {
        catalog.insert_dataset(&stored)
    })
    .await?;
    tracing::info!(dataset = %dataset.id, by = %caller.identity.ags, serial = %caller.identity.serial, "dataset registered");
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
    let description = parse_description(&state, body).await?;
    if description.identifier.as_ref().is_some_and(|i| *i != id) {
        return Err(unprocessable(vec![Violation {
            pointer: "/identifier".into(),
            message: format!("must be '{id}', the identifier in the path"),
        }]));
    }
    if description.publisher.as_ref().is_some_and(|p| *p != existing.publisher) {
        return Err(Problem::forbidden("the publisher of a dataset cannot be changed"));
    }
    check_providers(&caller, &description)?;
    let dataset = Dataset::from_description(id, existing.publisher.clone(), description, existing.issued.clone(), now_rfc3339());
    let catalog = state.catalog.clone();
    let stored = dataset.clone();
    let detail = serde_json::to_value(&dataset).unwrap_or_default();
    super::audited(&state, &caller, "dataset-changed", dataset.id.as_str(), detail, move || {
        catalog.replace_dataset(&stored)
    })
    .await?;
    state.exchange.forget(&dataset.id);
    tracing::info!(dataset = %dataset.id, by = %caller.identity.ags, serial = %caller.identity.serial, "dataset replaced");
    Ok(HttpResponse::Ok().json(dataset))
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
        catalog.withdraw_dataset(&withdrawn, &now_rfc3339())
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
pub(super) fn check_owner(caller: &Caller, dataset: &Dataset, verb: &str) -> Result<(), Problem> {
    if dataset.publisher == caller.identity.ags {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "dataset '{}' is published by {}; a steward of {} ({}) may not {verb} it",
            dataset.id, dataset.publisher, caller.identity.ags, caller.member.organisation
        )))
    }
}

/// A city's data is fetched only from that city: every access URL must be at one of the
/// provider origins the operator registered for the steward's member (the exchange checks it
/// again on every request, and the provider's certificate too).
fn check_providers(caller: &Caller, d: &DatasetDescription) -> Result<(), Problem> {
    let registered: Vec<&str> = caller.member.providers.iter().map(|o| o.as_str()).collect();
    let violations: Vec<Violation> = d
        .distributions
        .iter()
        .enumerate()
        .filter_map(|(i, dist)| match &dist.access_url {
            crate::catalog::Access::Url(u) if !caller.member.serves(u) => Some(Violation {
                pointer: format!("/distributions/{i}/accessURL"),
                message: if registered.is_empty() {
                    format!(
                        "{} has no registered provider API, so only 'hosted' distributions are possible; the operator registers provider origins in the configuration",
                        caller.member.organisation
                    )
                } else {
                    format!(
                        "must be at a provider origin registered for {} ({}); the broker fetches a city's data only from that city",
                        caller.member.organisation,
                        registered.join(", ")
                    )
                },
            }),
            _ => None,
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(unprocessable(violations))
    }
}

/// Body -> JSON -> schema check -> typed description. Every step names what was wrong and where.
async fn parse_description(state: &AppState, body: web::Payload) -> Result<DatasetDescription, Problem> {
    let bytes = read_body(state, body, state.max_body_bytes).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            "malformed-json",
            format!("the body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
        )
        .with_violations(vec![Violation {
            pointer: String::new(),
            message: e.to_string(),
        }])
    })?;
    let violations = state.schemas.check_dataset(&value);
    if !violations.is_empty() {
        return Err(unprocessable(violations));
    }
    serde_json::from_value(value).map_err(|e| {
        unprocessable(vec![Violation {
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

pub(super) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default()
}
