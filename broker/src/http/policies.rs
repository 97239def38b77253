//! `/v1/datasets/{id}/policy`: a steward of the publishing city attaches a usage policy (ODRL
//! Turtle); every member can read the active one, with a plain-language explanation, and the
//! earlier versions.

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
use crate::catalog::PolicyVersion;
use crate::identity::Role;
use crate::policy::{PolicyRejection, compile_for_dataset};

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

pub async fn attach(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "attaching a usage policy")?;
    let media_type = super::content_type(&req).unwrap_or("text/turtle").to_owned();
    let syntax = Syntax::from_media_type(&media_type)
        .ok_or_else(|| Problem::unsupported_media_type(format!("a policy is text/turtle or application/ld+json, not {media_type}")))?;
    let id = parse_id(&id)?;
    let dataset = load(&state, id.clone()).await?;
    check_owner(&caller, &dataset, "set the usage policy of")?;
    let source = read_body(body, state.max_body_bytes).await?;
    let dataset_iri = state.catalog.dataset_iri(&id);
    let st = state.clone();
    let bytes = source.clone();
    let compiled = web::block(move || compile_for_dataset(&bytes, syntax, &dataset_iri, &st.vocab))
        .await?
        .map_err(|e| rejected(&e))?;
    let version = PolicyVersion {
        dataset: id.clone(),
        version: 0,
        policy: compiled.policy.uid.clone(),
        source: String::from_utf8_lossy(&source).into_owned(),
        media_type: media_type.split(';').next().unwrap_or_default().trim().to_owned(),
        module_hash: compiled.hash.to_string(),
        author: caller.identity.ags.clone(),
        submitted: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        active: true,
    };
    let catalog = state.catalog.clone();
    let ntriples = compiled.ntriples;
    let stored = web::block(move || catalog.attach_policy(&version, &ntriples)).await??;
    state.exchange.forget(&id);
    tracing::info!(dataset = %id, version = stored.version, module = %stored.module_hash, by = %caller.identity.ags, "policy attached");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/datasets/{id}/policy")))
        .json(described(&state, &stored)))
}

pub async fn active(_caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    let catalog = state.catalog.clone();
    let lookup = id.clone();
    let policy = web::block(move || catalog.active_policy(&lookup))
        .await??
        .ok_or_else(|| Problem::not_found("no-policy", format!("dataset '{id}' has no active usage policy; it is not shared")))?;
    Ok(HttpResponse::Ok().json(described(&state, &policy)))
}

pub async fn versions(_caller: Caller, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    let catalog = state.catalog.clone();
    let versions = web::block(move || catalog.policy_versions(&id)).await??;
    Ok(HttpResponse::Ok().json(versions))
}
