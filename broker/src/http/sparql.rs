//! `/v1/sparql`: the SPARQL 1.1 protocol, queries only.
//!
//! Updates are refused on every route the protocol defines for them (`update=` form field,
//! `application/sparql-update` body): the graph changes only through the typed APIs, where
//! authorisation and validation live.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::Caller;
use super::problem::Problem;
use super::{AppState, read_body};
use crate::catalog::SparqlError;

#[derive(Debug, serde::Deserialize)]
pub struct ProtocolParams {
    query: Option<String>,
    update: Option<String>,
    #[serde(rename = "default-graph-uri")]
    default_graph_uri: Option<String>,
    #[serde(rename = "named-graph-uri")]
    named_graph_uri: Option<String>,
}

pub async fn get(caller: Caller, state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let params = web::Query::<ProtocolParams>::from_query(req.query_string())
        .map_err(|e| Problem::bad_request("bad-query-parameter", e.to_string()))?
        .into_inner();
    let query = query_of(params)?;
    run(&state, &caller, query, accept(&req)).await
}

pub async fn post(caller: Caller, state: web::Data<AppState>, req: HttpRequest, body: web::Payload) -> Result<HttpResponse, Problem> {
    let content_type = super::content_type(&req).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let bytes = read_body(&state, body, state.max_body_bytes).await?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| Problem::bad_request("bad-encoding", "the body is not UTF-8"))?;
    let query = match media.as_str() {
        "application/sparql-query" => text,
        "application/sparql-update" => return Err(update_refused()),
        "application/x-www-form-urlencoded" => {
            let params = web::Query::<ProtocolParams>::from_query(&text)
                .map_err(|e| Problem::bad_request("bad-form", e.to_string()))?
                .into_inner();
            query_of(params)?
        }
        other => {
            return Err(Problem::unsupported_media_type(format!(
                "'{other}' is not a SPARQL protocol body; use application/sparql-query or application/x-www-form-urlencoded"
            )));
        }
    };
    run(&state, &caller, query, accept(&req)).await
}

fn query_of(params: ProtocolParams) -> Result<String, Problem> {
    if params.update.is_some() {
        return Err(update_refused());
    }
    if params.default_graph_uri.is_some() || params.named_graph_uri.is_some() {
        return Err(Problem::bad_request(
            "unsupported-dataset",
            "default-graph-uri and named-graph-uri are not supported; use FROM / FROM NAMED in the query",
        ));
    }
    params
        .query
        .ok_or_else(|| Problem::bad_request("missing-query", "the 'query' parameter is required"))
}

fn accept(req: &HttpRequest) -> String {
    super::problem::accept_header(req).unwrap_or_default()
}

fn update_refused() -> Problem {
    Problem::forbidden("SPARQL updates are refused: the metadata graph changes only through the dataset and member APIs")
        .with_kind("sparql-update-refused")
}

async fn run(state: &web::Data<AppState>, caller: &Caller, query: String, accept: String) -> Result<HttpResponse, Problem> {
    let catalog = state.catalog.clone();
    let limits = state.sparql_limits;
    let member = caller.identity.ags.to_string();
    let out = web::block(move || catalog.query(&query, &accept, &limits, &member))
        .await?
        .map_err(sparql_problem)?;
    Ok(HttpResponse::Ok().content_type(out.content_type).body(out.body))
}

fn sparql_problem(e: SparqlError) -> Problem {
    let detail = e.to_string();
    match e {
        SparqlError::Syntax(_) => Problem::bad_request("sparql-syntax", detail),
        SparqlError::Timeout(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sparql-timeout",
            "Query time limit exceeded",
            detail,
        ),
        SparqlError::TooManyResults(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sparql-result-limit",
            "Query result limit exceeded",
            detail,
        ),
        SparqlError::NotAcceptable { .. } => Problem::new(StatusCode::NOT_ACCEPTABLE, "not-acceptable", "Not acceptable", detail),
        SparqlError::Busy(_) => Problem::busy(detail, 1).with_kind("sparql-busy"),
        SparqlError::MemberBusy(_) => Problem::rate_limited(detail, 1).with_kind("sparql-member-busy"),
        SparqlError::TooLarge(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sparql-result-too-large",
            "Query result limit exceeded",
            detail,
        ),
        SparqlError::MemoryLimit(_) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sparql-memory-limit",
            "Query memory limit exceeded",
            detail,
        ),
        SparqlError::Evaluation(_) => Problem::internal("the SPARQL query failed", detail),
    }
}
