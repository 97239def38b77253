//! `/v1/whoami` and `/v1/members`: who the caller is, and who else is in the data space.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::identity::Ags;

pub async fn whoami(caller: Caller) -> Result<HttpResponse, Problem> {
    let id = &caller.identity;
    Ok(HttpResponse::Ok().json(json!({
        "ags": id.ags,
        "organisation": id.organisation,
        "role": id.role,
        "commonName": id.common_name,
        "serial": id.serial,
        "member": caller.member,
    })))
}

pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    let catalog = state.catalog.clone();
    let members = web::block(move || catalog.members()).await??;
    let members: Vec<_> = members.into_iter().map(|m| m.seen_by(&caller.identity.ags)).collect();
    Ok(HttpResponse::Ok().json(members))
}

pub async fn get(caller: Caller, state: web::Data<AppState>, ags: web::Path<String>) -> Result<HttpResponse, Problem> {
    let ags: Ags = ags
        .parse()
        .map_err(|e: crate::identity::IdentityError| Problem::not_found("no-such-member", e.to_string()))?;
    let catalog = state.catalog.clone();
    let key = ags.clone();
    let member = web::block(move || catalog.member(&key)).await??;
    member
        .map(|m| HttpResponse::Ok().json(m.seen_by(&caller.identity.ags)))
        .ok_or_else(|| Problem::not_found("no-such-member", format!("{ags} is not a member")))
}
