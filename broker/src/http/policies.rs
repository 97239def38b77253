//! `/v1/datasets/{id}/policy`: the policy lifecycle. A steward of the publishing city submits a
//! version (ODRL Turtle or JSON-LD), compiled and checked on submission, as a draft; a board
//! member of that city who is not its author approves or rejects it (four eyes,
//! [`crate::governance`]); only an approved version decides requests. Before approving, a
//! steward or board member can replay the draft against recorded requests. Every member can
//! read the active version, with a plain-language explanation, and all earlier ones. Each step
//! is in the audit trail.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use policy_compiler::explain::{Language, explain};
use policy_compiler::parse::Syntax;
use serde_json::json;

use super::auth::Caller;
use super::datasets::{check_owner, load, parse_id};
use super::problem::Problem;
use super::{AppState, read_body};
use crate::audit::export::Period;
use crate::catalog::{CatalogError, PolicyVersion};
use crate::changes::ChangeError;
use crate::governance::{self, ReviewError, SubmitError};
use crate::identity::Role;
use crate::policy::PolicyRejection;

fn rejected(e: &PolicyRejection) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-policy", "Invalid policy", e.to_string())
}

/// The version as JSON, with the policy explained in German and English.
pub(super) fn described(state: &AppState, p: &PolicyVersion) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    let syntax = Syntax::from_media_type(&p.media_type).unwrap_or(Syntax::Turtle);
    if let Ok(policy) = policy_compiler::parse::parse_one(&p.source, syntax, &state.vocab) {
        v["explanation"] = json!({ "de": explain(&policy, Language::De), "en": explain(&policy, Language::En) });
    }
    v
}

pub async fn submit(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "submitting a usage policy")?;
    let media_type = super::content_type(&req).unwrap_or("text/turtle").to_owned();
    if Syntax::from_media_type(&media_type).is_none() {
        return Err(submit_problem(SubmitError::UnsupportedMediaType(media_type)));
    }
    let id = parse_id(&id)?;
    let dataset = load(&state, id.clone()).await?;
    check_owner(&caller, &dataset, "submit a usage policy for")?;
    let source = read_body(&state, body, state.max_body_bytes).await?;
    let stored = governance::submit_draft(&state.exchange, &caller.identity, &dataset, source.to_vec(), &media_type)
        .await
        .map_err(submit_problem)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/datasets/{id}/policy/versions/{}", stored.version)))
        .json(described(&state, &stored)))
}

/// A submission refused, as the API says it.
pub fn submit_problem(e: SubmitError) -> Problem {
    match e {
        SubmitError::NotSteward(_) | SubmitError::NotOwner { .. } => Problem::forbidden(e.to_string()),
        SubmitError::UnsupportedMediaType(_) => Problem::unsupported_media_type(e.to_string()),
        SubmitError::TooManyDrafts { .. } => Problem::new(StatusCode::CONFLICT, "too-many-drafts", "Conflict", e.to_string()),
        SubmitError::TooComplex => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy-too-complex",
            "Invalid policy",
            e.to_string(),
        ),
        SubmitError::Rejected(r) => rejected(&r),
        SubmitError::Catalog(c) => c.into(),
        SubmitError::Change(c) => change_problem(c),
        SubmitError::Lost => Problem::internal("the policy could not be compiled", e),
    }
}

/// An audited change that did not happen, as a problem.
fn change_problem(e: ChangeError<CatalogError>) -> Problem {
    match e {
        ChangeError::Failed(e) => e.into(),
        other => super::change_problem(other, "the change could not be made"),
    }
}

/// The path's dataset and version.
async fn dataset_version(state: &AppState, raw: &(String, u32)) -> Result<(crate::catalog::Dataset, PolicyVersion), Problem> {
    let id = parse_id(&raw.0)?;
    let dataset = load(state, id.clone()).await?;
    let catalog = state.catalog.clone();
    let lookup = id.clone();
    let versions = web::block(move || catalog.policy_versions(&lookup)).await??;
    let version = versions
        .into_iter()
        .find(|v| v.version == raw.1)
        .ok_or_else(|| Problem::not_found("no-such-policy-version", format!("dataset '{id}' has no policy version {}", raw.1)))?;
    Ok((dataset, version))
}

pub async fn version(_caller: Caller, state: web::Data<AppState>, path: web::Path<(String, u32)>) -> Result<HttpResponse, Problem> {
    let (_, version) = dataset_version(&state, &path).await?;
    Ok(HttpResponse::Ok().json(described(&state, &version)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    note: Option<String>,
    /// The distributions the reviewer saw (`X-Distributions-Digest` of the dataset): the review
    /// is refused if they changed since.
    distributions: Option<String>,
}

pub async fn approve(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    review(caller, state, path, body, true).await
}

pub async fn reject(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    review(caller, state, path, body, false).await
}

async fn review_body(state: &AppState, body: web::Payload) -> Result<ReviewBody, Problem> {
    let bytes = read_body(state, body, state.max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ReviewBody {
            note: None,
            distributions: None,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::bad_request(
            "invalid-review",
            format!("the body is {{\"note\": \"...\", \"distributions\": \"<digest>\"}} (both optional) or empty: {e}"),
        )
    })
}

async fn review(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    body: web::Payload,
    approved: bool,
) -> Result<HttpResponse, Problem> {
    let (dataset, version) = dataset_version(&state, &path).await?;
    governance::may_review(&caller.identity, &dataset, &version).map_err(|e| review_problem(e.into()))?;
    let ReviewBody { note, distributions } = review_body(&state, body).await?;
    let verdict = governance::Verdict {
        approved,
        note,
        distributions_seen: distributions,
    };
    let reviewed = governance::review(&state.exchange, &caller.identity, &dataset, &version, verdict)
        .await
        .map_err(review_problem)?;
    Ok(HttpResponse::Ok().json(described(&state, &reviewed)))
}

/// A review refused, as the API says it.
pub fn review_problem(e: ReviewError) -> Problem {
    match e {
        ReviewError::Refused(r @ governance::ReviewRefusal::NotADraft { .. }) => {
            Problem::new(StatusCode::CONFLICT, "not-a-draft", "Conflict", r.to_string())
        }
        ReviewError::Refused(r) => Problem::forbidden(r.to_string()),
        ReviewError::DistributionsChanged(_) => Problem::new(StatusCode::CONFLICT, "distributions-changed", "Conflict", e.to_string()),
        ReviewError::Change(c) => change_problem(c),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct SimulateQuery {
    from: Option<String>,
    to: Option<String>,
}

pub async fn simulate(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    q: web::Query<SimulateQuery>,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward, Role::Board], "simulating a policy")?;
    let (dataset, version) = dataset_version(&state, &path).await?;
    if caller.identity.ags != dataset.publisher {
        return Err(Problem::forbidden(format!(
            "only the stewards and board of {} simulate its policies",
            dataset.publisher
        )));
    }
    let period = Period::parse(q.from.as_deref(), q.to.as_deref())
        .map_err(|e| Problem::bad_request("bad-period", format!("query parameters 'from'/'to': {e}")))?;
    let sim = governance::simulate_version(&state.exchange, &version, period)
        .await
        .map_err(|e| Problem::internal("the simulation could not run", e))?;
    Ok(HttpResponse::Ok().json(sim))
}

pub async fn active(_caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    let catalog = state.catalog.clone();
    let lookup = id.clone();
    let Some(policy) = web::block(move || catalog.active_policy(&lookup)).await?? else {
        // Tell a dataset without a policy from one that never existed or was withdrawn (410).
        super::datasets::load(&state, id.clone()).await?;
        return Err(Problem::not_found(
            "no-policy",
            format!("dataset '{id}' has no active usage policy; it is not shared"),
        ));
    };
    Ok(HttpResponse::Ok().json(described(&state, &policy)))
}

pub async fn versions(_caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    let catalog = state.catalog.clone();
    // The history of a withdrawn dataset stays in the graph for the audit, but is not served
    // as if the dataset were there (410), nor for one that never was (404).
    super::datasets::load(&state, id.clone()).await?;
    let versions = web::block(move || catalog.policy_versions(&id)).await??;
    Ok(HttpResponse::Ok().json(versions))
}
