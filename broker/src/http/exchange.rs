//! `GET /v1/datasets/{id}/data?purpose=…`: a city's system (or steward) asks for another city's
//! data for a declared purpose and gets exactly what the provider's policy allows, or a denial
//! that names the failing constraints.
//!
//! The order is fixed: decide (holding the usage key) → count the use → fetch from the provider
//! → enforce the duties → write the decision record (for a permit, the durable record of the use)
//! → respond. Every path that ends without data still writes its decision record; if the record
//! cannot be written, nothing is returned.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::ACCEPT;
use actix_web::{HttpRequest, HttpResponse, web};
use policy_compiler::input::PolicyInput;
use policy_compiler::ir::Policy;
use policy_evaluator::DecisionDocument;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::datasets::{check_owner, load, parse_id};
use super::problem::Problem;
use super::upstream::{self, UpstreamError};
use crate::audit::{DecisionRecord, Event};
use crate::catalog::{Access, Dataset, PolicyVersion};
use crate::enforce::{self, Format};
use crate::exchange::{Snapshot, action_iri, explain_denial, party_iri};
use crate::identity::Role;
use crate::usage::{UsageCounter, UsageKey};

#[derive(Debug, Deserialize)]
pub struct DataQuery {
    purpose: Option<String>,
    action: Option<String>,
    /// Comma-separated field names the consumer needs.
    fields: Option<String>,
}

/// What a request has established so far, for its decision record.
struct Pending {
    record: DecisionRecord,
}

impl Pending {
    fn new(caller: &Caller, dataset: &Dataset, purpose: &str, action: &str) -> Self {
        Self {
            record: DecisionRecord {
                id: uuid::Uuid::new_v4().to_string(),
                time: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
                consumer: caller.identity.ags.to_string(),
                consumer_role: caller.identity.role.as_str().to_owned(),
                consumer_serial: caller.identity.serial.clone(),
                provider: dataset.publisher.to_string(),
                dataset: dataset.id.to_string(),
                purpose: purpose.to_owned(),
                action: action.to_owned(),
                decision: "deny".into(),
                failed_constraints: Vec::new(),
                reason: None,
                policy_version: None,
                module_hash: None,
                outcome: "denied".into(),
                fields_requested: Vec::new(),
                fields_delivered: Vec::new(),
                records_in: None,
                records_out: None,
                bytes_out: None,
                input: None,
            },
        }
    }

    /// Writes the record durably and returns its id; a failure fails the request.
    async fn log(self, state: &AppState) -> Result<String, Problem> {
        let id = self.record.id.clone();
        let written = Event::Decision(Box::new(self.record));
        state
            .exchange
            .log
            .append_async(written)
            .await
            .map_err(|e| Problem::internal("the decision log cannot be written, so nothing is delivered", e))?;
        Ok(id)
    }

    /// Logs the outcome and returns `problem` (or the log failure).
    async fn fail(mut self, state: &AppState, outcome: &str, problem: Problem) -> Problem {
        self.record.outcome = outcome.to_owned();
        self.record.reason.get_or_insert_with(|| problem.detail.clone());
        match self.log(state).await {
            Ok(id) => problem.with("decisionId", id),
            Err(log_failure) => log_failure,
        }
    }
}

pub async fn data(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<DataQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::System, Role::Steward], "requesting data")?;
    let q = q.into_inner();
    let (purpose, action) = check_request(&state, &q)?;
    let snapshot = snapshot(&state, &id).await?;
    let dataset = &snapshot.dataset;
    let format = response_format(&req)?;
    let mut pending = Pending::new(&caller, dataset, &purpose, &action);
    // `fields=a,b`: the fields the consumer needs; absent means all the policy allows.
    let requested: Option<Vec<String>> = q
        .fields
        .as_deref()
        .map(|f| f.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect());
    pending.record.fields_requested = requested.clone().unwrap_or_default();
    let Some(policy) = snapshot.policy.as_ref() else {
        let p = Problem::new(
            StatusCode::FORBIDDEN,
            "no-policy",
            "Forbidden",
            format!("dataset '{}' has no active usage policy; it is not shared", dataset.id),
        );
        return Err(pending.fail(&state, "denied", p).await);
    };
    pending.record.policy_version = Some(policy.version);
    pending.record.module_hash = Some(policy.module_hash.clone());
    let compiled = match state.exchange.module(policy, &state.vocab) {
        Ok(m) => m,
        Err(e) => {
            return Err(pending
                .fail(&state, "denied", Problem::internal("the dataset's policy cannot be evaluated", e))
                .await);
        }
    };

    let key = UsageKey {
        consumer: caller.identity.ags.to_string(),
        dataset: dataset.id.to_string(),
        period: crate::usage::period_of(&pending.record.time).unwrap_or_default().to_owned(),
    };
    let guard = state
        .exchange
        .usage
        .acquire(key)
        .await
        .map_err(|e| Problem::internal("usage counts are unavailable", e))?;
    let input = PolicyInput {
        assignee: Some(party_iri(&caller.identity.ags)),
        action: Some(action.clone()),
        target: Some(state.catalog.dataset_iri(&dataset.id)),
        purpose: Some(purpose.clone()),
        now_ms: i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).ok(),
        count: i64::try_from(guard.count()).ok(),
        ..PolicyInput::default()
    };
    let decision = state.exchange.decide(&compiled.module, &input).await;
    pending.record.input = Some(input);
    if !decision.permits() {
        drop(guard);
        return Err(deny(pending, &state, policy, &compiled.policy, &decision).await);
    }
    pending.record.decision = "permit".into();
    // Counted now, made durable by the permit record written before any data leaves.
    state.exchange.usage.count_use(guard);
    deliver(
        pending,
        &state,
        &caller,
        dataset,
        &purpose,
        &decision,
        policy,
        requested.as_deref(),
        format,
    )
    .await
}

fn check_request(state: &AppState, q: &DataQuery) -> Result<(String, String), Problem> {
    let purpose = q.purpose.clone().filter(|p| !p.is_empty()).ok_or_else(|| {
        Problem::bad_request(
            "missing-purpose",
            "query parameter 'purpose' is required: the DPV purpose the data is used for, e.g. https://w3id.org/dpv#ImprovePublicServices",
        )
    })?;
    if !state.vocab.is_known_purpose(&purpose) {
        return Err(Problem::bad_request(
            "unknown-purpose",
            format!("query parameter 'purpose': <{purpose}> is not a purpose the data space knows (DPV 2.2)"),
        ));
    }
    let action = action_iri(q.action.as_deref().unwrap_or("read"));
    if !state.vocab.is_known_action(&action) {
        return Err(Problem::bad_request(
            "unknown-action",
            format!("query parameter 'action': <{action}> is not an ODRL 2.2 action"),
        ));
    }
    Ok((purpose, action))
}

/// The dataset and its active policy, from the exchange's snapshot or the catalog.
async fn snapshot(state: &AppState, raw: &str) -> Result<Arc<Snapshot>, Problem> {
    let id = parse_id(raw)?;
    if let Some(s) = state.exchange.snapshot(&id) {
        return Ok(s);
    }
    let dataset = load(state, id.clone()).await?;
    let catalog = state.catalog.clone();
    let policy = web::block(move || catalog.active_policy(&id)).await??;
    Ok(state.exchange.remember(Snapshot { dataset, policy }))
}

fn response_format(req: &HttpRequest) -> Result<Format, Problem> {
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if accept.contains("text/csv") {
        Ok(Format::Csv)
    } else if accept.contains("application/json") || accept.contains("*/*") {
        Ok(Format::Json)
    } else {
        Err(Problem::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not Acceptable",
            format!("data is served as application/json or text/csv, not {accept}"),
        ))
    }
}

async fn deny(mut pending: Pending, state: &AppState, version: &PolicyVersion, policy: &Policy, decision: &DecisionDocument) -> Problem {
    let why = explain_denial(policy, decision);
    let failed: Vec<String> = why.failed_constraints.iter().map(|(uid, _)| uid.clone()).collect();
    pending.record.failed_constraints = failed.clone();
    pending.record.reason = decision.error.clone();
    let reasons = why.reasons();
    let detail = match &decision.error {
        Some(e) => format!("denied by policy version {} of dataset '{}': {e}", version.version, version.dataset),
        None if reasons.is_empty() => format!(
            "denied by policy version {} of dataset '{}': no permission applies to this consumer and action",
            version.version, version.dataset
        ),
        None => format!(
            "denied by policy version {} of dataset '{}': {}",
            version.version,
            version.dataset,
            reasons.join("; ")
        ),
    };
    let p = Problem::new(StatusCode::FORBIDDEN, "denied-by-policy", "Forbidden", detail)
        .with("failedConstraints", failed)
        .with("prohibitedBy", why.prohibited_by)
        .with("policyVersion", version.version)
        .with("moduleHash", version.module_hash.clone());
    pending.fail(state, "denied", p).await
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    mut pending: Pending,
    state: &AppState,
    caller: &Caller,
    dataset: &Dataset,
    purpose: &str,
    decision: &DecisionDocument,
    policy: &PolicyVersion,
    requested: Option<&[String]>,
    format: Format,
) -> Result<HttpResponse, Problem> {
    let read = match state.exchange.duties(decision.duties.as_json()) {
        Ok(d) => d,
        Err(e) => {
            return Err(pending
                .fail(
                    state,
                    "duties-unreadable",
                    Problem::internal("the decision's duties cannot be enforced", e),
                )
                .await);
        }
    };
    let narrowed;
    let plan = match requested {
        Some(fields) => {
            narrowed = read.plan.narrowed(fields);
            &narrowed
        }
        None => &read.plan,
    };
    let (upstream_format, bytes) = match fetch(state, dataset).await {
        Ok(v) => v,
        Err(p) => return Err(pending.fail(state, "upstream-failed", p).await),
    };
    // Derived only when a field is to be pseudonymised.
    let key = (!plan.pseudonymise.is_empty()).then(|| {
        enforce::pseudonym_key(
            &state.exchange.secret,
            dataset.publisher.as_str(),
            caller.identity.ags.as_str(),
            purpose,
        )
    });
    let today = OffsetDateTime::now_utc().date();
    let enforced = match enforce::enforce(plan, upstream_format, &bytes, key.as_ref(), today) {
        Ok(r) => r,
        Err(e) => {
            return Err(pending
                .fail(
                    state,
                    "upstream-failed",
                    Problem::new(
                        StatusCode::BAD_GATEWAY,
                        "bad-upstream-data",
                        "Bad Gateway",
                        format!("the provider's data is unusable: {e}"),
                    ),
                )
                .await);
        }
    };
    let (out, records_in) = (enforced.records, enforced.records_in);
    let body = match enforce::write(format, &out) {
        Ok(b) => b,
        Err(e) => {
            return Err(pending
                .fail(state, "encoding-failed", Problem::internal("the result cannot be encoded", e))
                .await);
        }
    };
    let delivered: BTreeSet<&String> = out.iter().flat_map(|r| r.keys()).collect();
    pending.record.fields_delivered = delivered.into_iter().cloned().collect();
    pending.record.records_in = Some(records_in);
    pending.record.records_out = Some(out.len());
    pending.record.bytes_out = Some(body.len());
    pending.record.outcome = "delivered".into();
    let id = pending.log(state).await?;
    Ok(HttpResponse::Ok()
        .content_type(format.media_type())
        .insert_header(("X-Decision-Id", id))
        .insert_header(("X-Policy-Version", policy.version.to_string()))
        .insert_header(("X-Module-Hash", policy.module_hash.clone()))
        .insert_header(("X-Usage-Terms", read.terms.clone()))
        .body(body))
}

/// The provider's upload, decrypted.
async fn hosted(state: &AppState, dataset: &Dataset) -> Result<(Format, Vec<u8>), Problem> {
    let store = state.exchange.hosted.clone();
    let id = dataset.id.clone();
    match web::block(move || store.get(&id)).await? {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "no-hosted-data",
            "Bad Gateway",
            format!(
                "dataset '{}' is hosted by the broker, but its provider has not uploaded data yet",
                dataset.id
            ),
        )),
        Err(e) => Err(Problem::internal("the hosted data cannot be read", e)),
    }
}

/// Fetches the dataset's data from the provider's API over mutual TLS, whole or not at all.
async fn fetch(state: &AppState, dataset: &Dataset) -> Result<(Format, Vec<u8>), Problem> {
    let Some((url, media_type)) = dataset.distributions.iter().find_map(|d| match &d.access_url {
        Access::Url(u) => Some((u.clone(), d.media_type.clone())),
        Access::Hosted => None,
    }) else {
        return hosted(state, dataset).await;
    };
    let limits = state.exchange.upstream;
    let gateway = |kind: &'static str, detail: String| Problem::new(StatusCode::BAD_GATEWAY, kind, "Bad Gateway", detail);
    let accept = Format::from_media_type(&media_type).unwrap_or(Format::Json).media_type();
    let resp = match upstream::get(&state.upstream_tls, &url, accept, limits.timeout, limits.max_bytes).await {
        Ok(r) => r,
        Err(UpstreamError::Timeout(t)) => {
            return Err(Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "Gateway Timeout",
                format!("the provider at {url} did not answer within {t:?}"),
            ));
        }
        Err(e @ UpstreamError::Unreachable(_)) => return Err(gateway("upstream-unreachable", format!("the provider at {url} {e}"))),
        Err(e @ UpstreamError::TooLarge(_)) => return Err(gateway("upstream-too-large", format!("the provider at {url} {e}"))),
        Err(e @ UpstreamError::Failed(_)) => return Err(gateway("upstream-failed", format!("the provider at {url} {e}"))),
    };
    if !resp.status.is_success() {
        return Err(gateway("upstream-error", format!("the provider at {url} answered {}", resp.status)));
    }
    let format = resp
        .content_type
        .as_deref()
        .and_then(Format::from_media_type)
        .ok_or_else(|| gateway("bad-upstream-data", format!("the provider at {url} sent neither JSON nor CSV")))?;
    Ok((format, resp.body))
}

/// `PUT /v1/datasets/{id}/hosted-data`: the publisher's steward uploads the records (CSV or JSON)
/// of a dataset with a `hosted` distribution. Checked for readability, then sealed at rest.
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
    if !dataset.distributions.iter().any(|d| d.access_url == Access::Hosted) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "not-hosted",
            "Conflict",
            format!(
                "dataset '{}' has no hosted distribution; the broker fetches it from its access URL",
                dataset.id
            ),
        ));
    }
    let media_type = super::content_type(&req).unwrap_or_default();
    let format = Format::from_media_type(media_type)
        .ok_or_else(|| Problem::unsupported_media_type(format!("hosted data is text/csv or application/json, not '{media_type}'")))?;
    let bytes = super::read_body(body, state.exchange.upstream.max_bytes).await?;
    let records = enforce::read(format, &bytes).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable-data",
            "Unprocessable Content",
            e.to_string(),
        )
    })?;
    let detail = serde_json::json!({ "records": records.len(), "bytes": bytes.len(), "mediaType": format.media_type() });
    super::record_change(&state, &caller, "hosted-data-uploaded", dataset.id.as_str(), detail).await?;
    let store = state.exchange.hosted.clone();
    let target = dataset.id.clone();
    web::block(move || store.put(&target, format, &bytes))
        .await?
        .map_err(|e| Problem::internal("the hosted data cannot be stored", e))?;
    tracing::info!(dataset = %dataset.id, records = records.len(), by = %caller.identity.ags, "hosted data uploaded");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "dataset": dataset.id, "records": records.len(), "mediaType": format.media_type() })))
}
