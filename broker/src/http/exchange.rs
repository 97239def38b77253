//! `GET /v1/datasets/{id}/data?purpose=…` and `PUT /v1/datasets/{id}/hosted-data`: the HTTP
//! face of [`crate::exchange::pipeline`]. This module maps a request to a
//! [`DataRequest`], and a [`Refusal`] to a problem; what happens in between (and every promise
//! about it) lives in the exchange.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::datasets::{check_owner, load, parse_id};
use super::problem::Problem;
use crate::enforce::Format;
use crate::exchange::pipeline::{DataRequest, Refusal, UploadError};
use crate::identity::Role;

#[derive(Debug, Deserialize)]
pub struct DataQuery {
    purpose: Option<String>,
    action: Option<String>,
    /// Comma-separated field names the consumer needs.
    fields: Option<String>,
}

pub async fn data(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<DataQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::System, Role::Steward], "requesting data")?;
    let id = parse_id(&id)?;
    let format = response_format(&req)?;
    let request = DataRequest {
        dataset: &id,
        purpose: q.purpose.as_deref(),
        action: q.action.as_deref(),
        fields: q.fields.as_deref(),
        format,
    };
    let delivery = state.exchange.request(&caller.identity, request).await.map_err(refused)?;
    Ok(HttpResponse::Ok()
        .content_type(delivery.format.media_type())
        .insert_header(("X-Decision-Id", delivery.decision_id))
        .insert_header(("X-Policy-Version", delivery.policy_version.to_string()))
        .insert_header(("X-Module-Hash", delivery.module_hash))
        .insert_header(("X-Usage-Terms", delivery.terms))
        .body(delivery.body))
}

/// A refusal as the consumer sees it, with the decision record's id where one was written.
pub fn refused(r: Refusal) -> Problem {
    let decision = r.decision().map(str::to_owned);
    let detail = r.to_string();
    let problem = match r {
        Refusal::BadRequest { kind, detail } => Problem::bad_request(kind, detail),
        Refusal::NoSuchDataset(_) => Problem::not_found("no-such-dataset", detail),
        Refusal::Withdrawn(_) => Problem::new(StatusCode::GONE, "dataset-withdrawn", "Gone", detail),
        Refusal::NotShared { kind, .. } => Problem::new(StatusCode::FORBIDDEN, kind, "Forbidden", detail),
        Refusal::Denied(d) => Problem::new(StatusCode::FORBIDDEN, "denied-by-policy", "Forbidden", detail)
            .with("failedConstraints", d.failed_constraints)
            .with("prohibitedBy", d.prohibited_by)
            .with("policyVersion", d.policy_version)
            .with("moduleHash", d.module_hash),
        Refusal::Upstream { kind, timeout: true, .. } => Problem::new(StatusCode::GATEWAY_TIMEOUT, kind, "Gateway Timeout", detail),
        Refusal::Upstream { kind, .. } => Problem::new(StatusCode::BAD_GATEWAY, kind, "Bad Gateway", detail),
        Refusal::Busy(_) => Problem::busy(detail, 1),
        Refusal::Internal { .. } => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("{detail}; the operator's log has the details"),
        ),
    };
    match decision {
        // In the body for the consumer, in a header as on a delivery (the access log reads it).
        Some(id) => problem.with("decisionId", id.clone()).with_header("X-Decision-Id", id),
        None => problem,
    }
}

fn response_format(req: &HttpRequest) -> Result<Format, Problem> {
    const OFFERS: &[crate::conneg::Offer<Format>] = &[("application/json", Format::Json), ("text/csv", Format::Csv)];
    super::problem::negotiate(req, OFFERS).map(|(_, f)| f)
}

/// `PUT /v1/datasets/{id}/hosted-data`: the publisher's steward uploads the records (CSV or JSON)
/// of a dataset with a `hosted` distribution.
pub async fn upload(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "uploading hosted data")?;
    let dataset = load(&state, parse_id(&id)?).await?;
    check_owner(&caller, &dataset, "upload the data of")?;
    let media_type = super::content_type(&req).unwrap_or_default();
    let format = Format::from_media_type(media_type)
        .ok_or_else(|| Problem::unsupported_media_type(format!("hosted data is text/csv or application/json, not '{media_type}'")))?;
    // The slot first: an upload's body is read only when the broker has room for it.
    let _slot = state.exchange.upload_slot().await.map_err(|e| Problem::busy(e.to_string(), 5))?;
    let bytes = super::read_body(&state, body, state.exchange.upstream.max_bytes).await?;
    let records = state
        .exchange
        .upload(&caller.identity, &dataset, format, bytes.to_vec())
        .await
        .map_err(|e| match e {
            e @ UploadError::NotHosted(_) => Problem::new(StatusCode::CONFLICT, "not-hosted", "Conflict", e.to_string()),
            e @ UploadError::Unreadable(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unreadable-data",
                "Unprocessable Content",
                e.to_string(),
            ),
            UploadError::Change(c) => super::change_problem(c, "the hosted data cannot be stored"),
        })?;
    tracing::info!(dataset = %dataset.id, records, by = %caller.identity.ags, "hosted data uploaded");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "dataset": dataset.id, "records": records, "mediaType": format.media_type() })))
}
