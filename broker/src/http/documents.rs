//! Linked data over HTTP: a dataset's IRI (and each of its distributions' IRIs) dereferences to
//! its DCAT-AP.de description, in the RDF syntax the client asks for; the public listener
//! serves the harvestable catalog of the public datasets page by page.
//!
//! Every document has a strong `ETag` over its bytes, so a harvester that walks the catalog
//! every night gets `304 Not Modified` for each page that did not change.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::datasets::parse_id;
use super::problem::{Problem, negotiate};
use crate::catalog::{CatalogError, DatasetId, RdfSyntax};

/// Datasets to a harvest page: what GovData's harvester is used to.
pub const PER_PAGE: usize = 100;

/// `GET /datasets/{id}` on the member listener: any dataset's description, for any member.
pub async fn dataset(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let id = parse_id(&id)?;
    describe(&state, id, &req, false).await
}

/// `GET /datasets/{id}/distributions/{index}`: the description of the dataset it belongs to.
pub async fn distribution(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let (id, index) = path.into_inner();
    let id = parse_id(&id)?;
    let described = describe(&state, id.clone(), &req, false).await?;
    check_index(&state, &id, &index).await?;
    Ok(described)
}

/// `GET /datasets/{id}` on the public listener: only a public dataset's description; any
/// other is "not found", whether it exists or not.
pub async fn public_dataset(state: web::Data<AppState>, id: web::Path<String>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    super::reports::public_rate(&state, &req)?;
    let id = parse_id(&id)?;
    describe(&state, id, &req, true).await
}

/// `GET /datasets/{id}/distributions/{index}` on the public listener.
pub async fn public_distribution(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    super::reports::public_rate(&state, &req)?;
    let (id, index) = path.into_inner();
    let id = parse_id(&id)?;
    // Whether the dataset is there and public first, answered as for the dataset itself: the
    // index of a restricted one must not tell the public that it exists.
    let described = describe(&state, id.clone(), &req, true).await?;
    check_index(&state, &id, &index).await?;
    Ok(described)
}

#[derive(Debug, Deserialize)]
pub struct HarvestQuery {
    page: Option<String>,
}

/// `GET /catalog?page=N` on the public listener: the public datasets, [`PER_PAGE`] to a page,
/// with Hydra paging.
pub async fn harvest(state: web::Data<AppState>, q: web::Query<HarvestQuery>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    super::reports::public_rate(&state, &req)?;
    let (_, syntax) = negotiate(&req, RdfSyntax::OFFERS)?;
    let number = match q.page.as_deref() {
        None => 1,
        Some(p) => p.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            Problem::bad_request(
                "bad-query-parameter",
                format!("query parameter 'page': '{p}' is not a page number (1, 2, ...)"),
            )
        })?,
    };
    let catalog = state.catalog.clone();
    let space = state.space.clone();
    let base = state.base_iri.clone();
    let page = web::block(move || {
        let page_iri = |n: usize| format!("{base}catalog?page={n}");
        catalog.harvest_page(number, PER_PAGE, &space, &page_iri, syntax)
    })
    .await??;
    let body = page.ok_or_else(|| {
        Problem::not_found(
            "no-such-page",
            format!("the catalog has no page {number}; page 1 links to the last one"),
        )
    })?;
    Ok(document(&req, body, syntax, true))
}

async fn describe(state: &AppState, id: DatasetId, req: &HttpRequest, public_only: bool) -> Result<HttpResponse, Problem> {
    let (_, syntax) = negotiate(req, RdfSyntax::OFFERS)?;
    let catalog = state.catalog.clone();
    let wanted = id.clone();
    let found = web::block(move || -> Result<_, CatalogError> {
        match catalog.dataset_document(&wanted, syntax, public_only)? {
            Some(doc) => Ok(Ok(doc)),
            // A withdrawn dataset says so to members; the public learns nothing of it.
            None if !public_only => Ok(Err(catalog.tombstone(&wanted)?)),
            None => Ok(Err(None)),
        }
    })
    .await??;
    match found {
        Ok(body) => Ok(document(req, body, syntax, public_only)),
        Err(Some(t)) => Err(CatalogError::DatasetWithdrawn(Box::new(t)).into()),
        Err(None) if public_only => Err(Problem::not_found("no-such-dataset", format!("there is no public dataset '{id}'"))),
        Err(None) => Err(Problem::not_found("no-such-dataset", format!("dataset '{id}' does not exist"))),
    }
}

/// A distribution's index must be one the dataset (found by `describe`) has.
async fn check_index(state: &AppState, id: &DatasetId, index: &str) -> Result<(), Problem> {
    let not_found = || Problem::not_found("no-such-distribution", format!("dataset '{id}' has no distribution '{index}'"));
    let index: usize = index.parse().map_err(|_| not_found())?;
    let catalog = state.catalog.clone();
    let wanted = id.clone();
    let dataset = web::block(move || catalog.dataset(&wanted)).await??;
    match dataset {
        Some(d) if index < d.distributions.len() => Ok(()),
        _ => Err(not_found()),
    }
}

/// A document with its `ETag`, or `304` if the client has that one already. Only what the
/// public listener serves may be kept by shared caches.
fn document(req: &HttpRequest, body: Vec<u8>, syntax: RdfSyntax, public: bool) -> HttpResponse {
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let etag = format!("\"{}\"", crate::hex::encode(&digest.as_ref()[..16]));
    let fresh = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let mut response = if fresh {
        HttpResponse::build(StatusCode::NOT_MODIFIED)
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::VARY, HeaderValue::from_static("Accept")))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static(if public { "public, max-age=60" } else { "private, max-age=60" }),
        ));
    if fresh {
        response.finish()
    } else {
        response.content_type(syntax.media_type()).body(body)
    }
}
