//! `POST /v1/catalog/import`: a steward imports their city's open-data portal export
//! ([`crate::catalog::import`]). What changes is worked out first, recorded in the audit trail,
//! then made in one transaction; the answer says what was imported, updated, left unchanged,
//! withdrawn, refused (and why) and repaired (and how).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::Caller;
use super::problem::Problem;
use super::{AppState, read_body};
use crate::catalog::RdfSyntax;
use crate::catalog::import::{self, ImportError};
use crate::identity::Role;

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    /// Names where the datasets come from; datasets imported earlier from the same source and
    /// missing now are withdrawn. Default: the export's own catalog IRI.
    source: Option<String>,
}

pub async fn import(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<ImportQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require(&[Role::Steward], "importing a catalog")?;
    let media_type = super::content_type(&req).unwrap_or_default().to_owned();
    let syntax = RdfSyntax::from_media_type(&media_type).ok_or_else(|| {
        Problem::unsupported_media_type(format!(
            "a catalog export is {}, not '{media_type}'",
            crate::conneg::offered(RdfSyntax::OFFERS)
        ))
    })?;
    // An import shares the upload slots: its body is read, parsed and cut in memory.
    let _slot = state.exchange.upload_slot().await.map_err(|e| Problem::busy(e.to_string(), 5))?;
    let bytes = read_body(&state, body, state.max_import_bytes).await?;
    let iris = crate::catalog::dcat::Iris::new(&state.base_iri);
    let publisher = caller.identity.ags.clone();
    let prepared = web::block(move || import::parse(&bytes, syntax).and_then(|t| import::prepare(t, &iris, &publisher)))
        .await
        .map_err(|e| Problem::internal("the import could not be prepared", e))?
        .map_err(refused)?;
    let source = match q.into_inner().source.or_else(|| prepared.catalog.clone()) {
        Some(s) if !s.trim().is_empty() && s.len() <= 2000 => s,
        _ => {
            return Err(Problem::bad_request(
                "missing-source",
                "the export describes no single dcat:Catalog; name its source with ?source=",
            ));
        }
    };
    let catalog = state.catalog.clone();
    let (publisher, datasets) = (caller.identity.ags.clone(), prepared.datasets);
    let (plan, datasets) = web::block(move || catalog.plan_import(&publisher, &source, &datasets).map(|p| (p, datasets))).await??;
    let mut report = serde_json::to_value(&plan).unwrap_or_default();
    report["refused"] = serde_json::to_value(prepared.refused.iter().chain(&plan.refused).collect::<Vec<_>>()).unwrap_or_default();
    report["unchanged"] = plan.unchanged.len().into();
    report["repaired"] = serde_json::to_value(&prepared.repairs).unwrap_or_default();
    let changes = plan.imported.len() + plan.updated.len() + plan.withdrawn.len();
    if changes + plan.unchanged.len() == 0 && plan.refused.iter().any(|r| !r.findings.is_empty()) {
        return Err(nothing_meets_the_shapes(&plan));
    }
    if changes > 0 {
        let catalog = state.catalog.clone();
        let applied = plan.clone();
        let time = crate::stewardship::now_seconds();
        super::audited(
            &state,
            &caller,
            "catalog-imported",
            &plan.source,
            audit_detail(&report),
            move || catalog.apply_import(&applied, &datasets, &time),
        )
        .await?;
        for id in plan.updated.iter() {
            state.exchange.forget(id);
        }
        for id in plan.withdrawn.iter() {
            state.exchange.forget_withdrawn(id);
        }
    }
    tracing::info!(by = %caller.identity.ags, source = %plan.source, imported = plan.imported.len(), updated = plan.updated.len(), withdrawn = plan.withdrawn.len(), "catalog imported");
    Ok(HttpResponse::Ok().json(report))
}

/// What the audit trail keeps of an import's report: every change, every refusal with its
/// reason, the repairs; the shapes' findings only counted (they are the steward's to read in
/// the answer, and would make one record as large as the export).
fn audit_detail(report: &serde_json::Value) -> serde_json::Value {
    let mut detail = report.clone();
    if let Some(refused) = detail["refused"].as_array_mut() {
        for r in refused {
            if let Some(findings) = r.as_object_mut().and_then(|o| o.remove("findings")) {
                r["violations"] = findings.as_array().map_or(0, Vec::len).into();
            }
        }
    }
    if let Some(warnings) = detail["warnings"].as_array() {
        detail["warnings"] = warnings.iter().filter_map(|w| w["count"].as_u64()).sum::<u64>().into();
    }
    detail
}

/// Every dataset of the export violates the DCAT-AP.de shapes: a problem naming each one's
/// violations (node, property, message), not a report of an import that did nothing.
fn nothing_meets_the_shapes(plan: &import::Plan) -> Problem {
    let findings: Vec<_> = plan.refused.iter().flat_map(|r| r.findings.iter()).collect();
    let first = plan
        .refused
        .iter()
        .find(|r| !r.findings.is_empty())
        .map(|r| format!("{}: {}", r.dataset, r.reason));
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not-dcat-ap-de",
        "The description does not meet DCAT-AP.de 3.0",
        format!(
            "no dataset of the export meets DCAT-AP.de 3.0, nothing was imported; {}",
            first.unwrap_or_default()
        ),
    )
    .with("refused", serde_json::to_value(&plan.refused).unwrap_or_default())
    .with("shaclResults", serde_json::to_value(findings).unwrap_or_default())
}

fn refused(e: ImportError) -> Problem {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    match e {
        ImportError::Syntax { .. } => Problem::new(status, "invalid-rdf", "Not a readable catalog export", e.to_string()),
        ImportError::Empty => Problem::new(status, "no-datasets", "No datasets", e.to_string()),
    }
}
