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
    if changes > 0 {
        let catalog = state.catalog.clone();
        let applied = plan.clone();
        let time = super::datasets::now_rfc3339();
        super::audited(&state, &caller, "catalog-imported", &plan.source, report.clone(), move || {
            catalog.apply_import(&applied, &datasets, &time)
        })
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

fn refused(e: ImportError) -> Problem {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    match e {
        ImportError::Syntax { .. } => Problem::new(status, "invalid-rdf", "Not a readable catalog export", e.to_string()),
        ImportError::Empty => Problem::new(status, "no-datasets", "No datasets", e.to_string()),
    }
}
