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
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::Caller;
use super::datasets::{check_owner, load, parse_id};
use super::problem::Problem;
use super::{AppState, read_body};
use crate::audit::export::Period;
use crate::catalog::{PolicyStatus, PolicyVersion, Review};
use crate::identity::Role;
use crate::policy::{PolicyRejection, compile_for_dataset};

/// Drafts a dataset may have waiting for review at once.
const MAX_DRAFTS: usize = 10;

/// How long compiling a submitted policy may take.
const COMPILE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

fn rejected(e: &PolicyRejection) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-policy", "Invalid policy", e.to_string())
}

/// The version as JSON, with the policy explained in German and English.
fn described(state: &AppState, p: &PolicyVersion) -> serde_json::Value {
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
    let syntax = Syntax::from_media_type(&media_type)
        .ok_or_else(|| Problem::unsupported_media_type(format!("a policy is text/turtle or application/ld+json, not {media_type}")))?;
    let id = parse_id(&id)?;
    let dataset = load(&state, id.clone()).await?;
    check_owner(&caller, &dataset, "submit a usage policy for")?;
    let source = read_body(&state, body, state.max_body_bytes).await?;
    let catalog = state.catalog.clone();
    let lookup = id.clone();
    let drafts = web::block(move || catalog.policy_versions(&lookup))
        .await??
        .iter()
        .filter(|v| v.status == PolicyStatus::Draft)
        .count();
    if drafts >= MAX_DRAFTS {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "too-many-drafts",
            "Conflict",
            format!("dataset '{id}' has {drafts} drafts waiting for review, the most it may; a board member reviews them first"),
        ));
    }
    let dataset_iri = state.catalog.dataset_iri(&id);
    let st = state.clone();
    let bytes = source.clone();
    // On the blocking pool, never an async worker, and within a time limit: the compiler's
    // input limits bound its work, the deadline bounds what a bug in them would cost.
    let compiling = web::block(move || compile_for_dataset(&bytes, syntax, &dataset_iri, &st.vocab));
    let compiled = tokio::time::timeout(COMPILE_DEADLINE, compiling)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy-too-complex",
                "Invalid policy",
                format!("the policy did not compile within {} s", COMPILE_DEADLINE.as_secs()),
            )
        })??
        .map_err(|e| rejected(&e))?;
    let ir = compiled.policy;
    // The number this version will get, so that its record names it; the catalog refuses it if
    // another submission took it meanwhile.
    let catalog = state.catalog.clone();
    let lookup = id.clone();
    let next = web::block(move || catalog.policy_versions(&lookup))
        .await??
        .last()
        .map_or(1, |p| p.version + 1);
    let version = PolicyVersion {
        dataset: id.clone(),
        version: next,
        policy: ir.uid.clone(),
        source: String::from_utf8_lossy(&source).into_owned(),
        media_type: media_type.split(';').next().unwrap_or_default().trim().to_owned(),
        module_hash: compiled.hash.to_string(),
        author: caller.identity.ags.clone(),
        author_name: caller.identity.common_name.clone(),
        submitted: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        status: PolicyStatus::Draft,
        review: None,
        active: false,
    };
    let catalog = state.catalog.clone();
    let detail = json!({ "version": next, "moduleHash": version.module_hash, "policy": version.policy });
    let stored = super::audited(&state, &caller, "policy-submitted", id.as_str(), detail, move || {
        catalog.submit_policy(&version, &ir)
    })
    .await?;
    tracing::info!(dataset = %id, version = stored.version, module = %stored.module_hash, by = %caller.identity.ags, "policy submitted");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/datasets/{id}/policy/versions/{}", stored.version)))
        .json(described(&state, &stored)))
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
    crate::governance::may_review(&caller.identity, &dataset, &version).map_err(|e| match e {
        crate::governance::ReviewRefusal::NotADraft { .. } => Problem::new(StatusCode::CONFLICT, "not-a-draft", "Conflict", e.to_string()),
        other => Problem::forbidden(other.to_string()),
    })?;
    let ReviewBody { note, distributions } = review_body(&state, body).await?;
    let current = dataset.distributions_digest();
    if distributions.as_ref().is_some_and(|seen| *seen != current) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "distributions-changed",
            "Conflict",
            format!(
                "the distributions of dataset '{}' changed since you looked at them; review them again",
                dataset.id
            ),
        ));
    }
    let review = Review {
        approved,
        by: caller.identity.ags.clone(),
        by_name: caller.identity.common_name.clone(),
        time: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        note,
        // What the board approves the policy for: these distributions, and no others.
        distributions: approved.then_some(current),
    };
    let action = if approved { "policy-approved" } else { "policy-rejected" };
    let detail = json!({
        "version": version.version,
        "moduleHash": version.module_hash,
        "note": review.note,
        "distributions": review.distributions,
    });
    let catalog = state.catalog.clone();
    let (id, n) = (dataset.id.clone(), version.version);
    let reviewed = super::audited(&state, &caller, action, dataset.id.as_str(), detail, move || {
        catalog.review_policy(&id, n, &review)
    })
    .await?;
    state.exchange.forget(&dataset.id);
    tracing::info!(dataset = %dataset.id, version = n, by = %caller.identity.common_name, action, "policy reviewed");
    Ok(HttpResponse::Ok().json(described(&state, &reviewed)))
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
    let compiled = state
        .exchange
        .module(&version)
        .map_err(|e| Problem::internal("the version cannot be compiled", e))?;
    let log = state.exchange.log.clone();
    let of = dataset.id.to_string();
    let records = web::block(move || log.decisions_where(&|r| r.dataset == of && period.contains(&r.time)))
        .await?
        .map_err(|e| Problem::internal("the audit log cannot be read", e))?;
    let sim = crate::governance::simulate(&state.exchange, &compiled.module, &compiled.policy, &version, &records, &period).await;
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
