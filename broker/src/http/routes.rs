//! The route table: the one list from which both the actix routes and the OpenAPI 3.1 document
//! are made, so the document cannot describe an endpoint that does not exist or miss one that does.

use actix_web::{HttpResponse, Route, web};
use serde_json::{Map, Value, json};

use super::{datasets, exchange, members, policies, sparql};
use crate::schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Delete => "delete",
        }
    }

    fn route(self) -> Route {
        match self {
            Method::Get => web::get(),
            Method::Post => web::post(),
            Method::Put => web::put(),
            Method::Delete => web::delete(),
        }
    }
}

/// A request body: media type and the schema file in `schemas/` (or a plain type).
#[derive(Debug, Clone, Copy)]
pub enum Body {
    Schema(&'static str),
    Text(&'static [&'static str]),
}

/// One endpoint of the API.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// Roles that may call it; all roles of a member when empty.
    pub roles: &'static [&'static str],
    pub query: &'static [(&'static str, &'static str)],
    pub body: Option<Body>,
    /// Status, description, response schema file.
    pub responses: &'static [(u16, &'static str, Option<&'static str>)],
    handler: fn(Route) -> Route,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method.as_str(), self.path)
    }
}

const PROBLEMS: &[(u16, &str, Option<&str>)] = &[(403, "Not a member, or the role does not allow it", Some("problem.schema.json"))];

pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::Get,
        path: "/v1/whoami",
        operation_id: "whoami",
        summary: "The identity read from the caller's certificate, and its member entry",
        roles: &[],
        query: &[],
        body: None,
        responses: &[(200, "The caller's identity", Some("identity.schema.json"))],
        handler: |r| r.to(members::whoami),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/members",
        operation_id: "listMembers",
        summary: "The members of the data space",
        roles: &[],
        query: &[],
        body: None,
        responses: &[(200, "All members", None)],
        handler: |r| r.to(members::list),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/members/{ags}",
        operation_id: "getMember",
        summary: "One member by municipality key",
        roles: &[],
        query: &[],
        body: None,
        responses: &[
            (200, "The member", Some("member.schema.json")),
            (404, "No such member", Some("problem.schema.json")),
        ],
        handler: |r| r.to(members::get),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets",
        operation_id: "listDatasets",
        summary: "Registered datasets, optionally filtered",
        roles: &[],
        query: &[
            ("keyword", "Only datasets with this keyword (case-insensitive)"),
            ("theme", "Only datasets with this EU data-theme code"),
            ("publisher", "Only datasets published by this AGS"),
        ],
        body: None,
        responses: &[
            (200, "Matching datasets", None),
            (400, "Malformed filter", Some("problem.schema.json")),
        ],
        handler: |r| r.to(datasets::list),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/datasets",
        operation_id: "registerDataset",
        summary: "Register a dataset of the steward's own municipality",
        roles: &["steward"],
        query: &[],
        body: Some(Body::Schema("dataset.schema.json")),
        responses: &[
            (201, "Registered", None),
            (400, "Malformed JSON", Some("problem.schema.json")),
            (409, "Identifier taken", Some("problem.schema.json")),
            (413, "Body too large", Some("problem.schema.json")),
            (422, "Schema violations, each by JSON Pointer", Some("problem.schema.json")),
        ],
        handler: |r| r.to(datasets::create),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets/{id}",
        operation_id: "getDataset",
        summary: "One dataset",
        roles: &[],
        query: &[],
        body: None,
        responses: &[(200, "The dataset", None), (404, "No such dataset", Some("problem.schema.json"))],
        handler: |r| r.to(datasets::get),
    },
    Endpoint {
        method: Method::Put,
        path: "/v1/datasets/{id}",
        operation_id: "replaceDataset",
        summary: "Replace a dataset's description (publisher's stewards only)",
        roles: &["steward"],
        query: &[],
        body: Some(Body::Schema("dataset.schema.json")),
        responses: &[
            (200, "Replaced", None),
            (404, "No such dataset", Some("problem.schema.json")),
            (422, "Schema violations", Some("problem.schema.json")),
        ],
        handler: |r| r.to(datasets::replace),
    },
    Endpoint {
        method: Method::Delete,
        path: "/v1/datasets/{id}",
        operation_id: "withdrawDataset",
        summary: "Withdraw a dataset (publisher's stewards only)",
        roles: &["steward"],
        query: &[],
        body: None,
        responses: &[(204, "Withdrawn", None), (404, "No such dataset", Some("problem.schema.json"))],
        handler: |r| r.to(datasets::remove),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets/{id}/policy",
        operation_id: "getPolicy",
        summary: "The dataset's active usage policy, its module hash and a German and English explanation",
        roles: &[],
        query: &[],
        body: None,
        responses: &[
            (200, "The active version", None),
            (404, "No such dataset, or no active policy", Some("problem.schema.json")),
        ],
        handler: |r| r.to(policies::active),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets/{id}/policy/versions",
        operation_id: "listPolicyVersions",
        summary: "Every version of the dataset's usage policy, oldest first",
        roles: &[],
        query: &[],
        body: None,
        responses: &[(200, "The versions", None)],
        handler: |r| r.to(policies::versions),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/datasets/{id}/policy/versions",
        operation_id: "submitPolicy",
        summary: "Submit a usage policy (ODRL 2.2 in Turtle or JSON-LD, DPV purposes) as a draft version; compiled and checked now, in force only once a board member approves it (publisher's stewards only)",
        roles: &["steward"],
        query: &[],
        body: Some(Body::Text(&["text/turtle", "application/ld+json"])),
        responses: &[
            (201, "Compiled and stored as a draft", None),
            (404, "No such dataset", Some("problem.schema.json")),
            (
                422,
                "The policy does not compile or targets another dataset",
                Some("problem.schema.json"),
            ),
        ],
        handler: |r| r.to(policies::submit),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets/{id}/policy/versions/{version}",
        operation_id: "getPolicyVersion",
        summary: "One version of the dataset's usage policy, with its status and review",
        roles: &[],
        query: &[],
        body: None,
        responses: &[
            (200, "The version", None),
            (404, "No such dataset or version", Some("problem.schema.json")),
        ],
        handler: |r| r.to(policies::version),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/datasets/{id}/policy/versions/{version}/approve",
        operation_id: "approvePolicy",
        summary: "Approve a draft: it becomes the active version (a board member of the publishing city who is not the author; optional body {\"note\": ...})",
        roles: &["board"],
        query: &[],
        body: None,
        responses: &[
            (200, "Approved and active", None),
            (
                403,
                "Not a board member of the publisher, or the author",
                Some("problem.schema.json"),
            ),
            (404, "No such dataset or version", Some("problem.schema.json")),
            (409, "The version is not a draft", Some("problem.schema.json")),
        ],
        handler: |r| r.to(policies::approve),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/datasets/{id}/policy/versions/{version}/reject",
        operation_id: "rejectPolicy",
        summary: "Reject a draft (a board member of the publishing city who is not the author; optional body {\"note\": ...})",
        roles: &["board"],
        query: &[],
        body: None,
        responses: &[
            (200, "Rejected", None),
            (
                403,
                "Not a board member of the publisher, or the author",
                Some("problem.schema.json"),
            ),
            (404, "No such dataset or version", Some("problem.schema.json")),
            (409, "The version is not a draft", Some("problem.schema.json")),
        ],
        handler: |r| r.to(policies::reject),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/datasets/{id}/policy/versions/{version}/simulate",
        operation_id: "simulatePolicy",
        summary: "Replay a version against the recorded requests of a period and list the decisions that would change, and why (stewards and board of the publisher)",
        roles: &["steward", "board"],
        query: &[
            ("from", "RFC 3339 start of the period (inclusive)"),
            ("to", "RFC 3339 end of the period (exclusive)"),
        ],
        body: None,
        responses: &[
            (200, "The decisions that flip", None),
            (400, "Unreadable period", Some("problem.schema.json")),
        ],
        handler: |r| r.to(policies::simulate),
    },
    Endpoint {
        method: Method::Put,
        path: "/v1/datasets/{id}/hosted-data",
        operation_id: "uploadHostedData",
        summary: "Upload the records (CSV or JSON) of a hosted dataset; kept encrypted at rest (publisher's stewards only)",
        roles: &["steward"],
        query: &[],
        body: Some(Body::Text(&["text/csv", "application/json"])),
        responses: &[
            (200, "Stored", None),
            (404, "No such dataset", Some("problem.schema.json")),
            (409, "The dataset is not hosted", Some("problem.schema.json")),
            (415, "Neither CSV nor JSON", Some("problem.schema.json")),
            (422, "The records cannot be read", Some("problem.schema.json")),
        ],
        handler: |r| r.to(exchange::upload),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/reports/usage",
        operation_id: "usageReport",
        summary: "Permits, denies and delivered volumes by time bucket, dataset, consumer city and purpose (board: all or ?provider=; steward: own city's datasets)",
        roles: &["board", "steward"],
        query: &[
            ("from", "RFC 3339 start (inclusive)"),
            ("to", "RFC 3339 end (exclusive)"),
            ("bucket", "day (default) or month"),
            ("provider", "Boards: one provider city's AGS"),
            ("format", "json (default) or csv"),
        ],
        body: None,
        responses: &[(200, "The usage rows (JSON or CSV)", None)],
        handler: |r| r.to(super::reports::usage),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/reports/processing",
        operation_id: "processingRecords",
        summary: "Records of processing activities (DSGVO Art. 30) for a provider city's shared datasets: purposes, recipients, data categories, retention, technical measures",
        roles: &["board", "steward"],
        query: &[
            ("from", "RFC 3339 start (inclusive)"),
            ("to", "RFC 3339 end (exclusive)"),
            ("provider", "Boards: one provider city's AGS"),
            ("format", "json (default) or csv"),
        ],
        body: None,
        responses: &[(200, "One record per dataset (JSON or CSV)", None)],
        handler: |r| r.to(super::reports::processing),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets/{id}/data",
        operation_id: "requestData",
        summary: "The dataset's data for a declared purpose, decided by its usage policy and minimised as the policy's duties demand",
        roles: &["system", "steward"],
        query: &[
            ("purpose", "Required: the DPV purpose IRI the data is used for"),
            ("action", "The ODRL action (default read)"),
            ("fields", "Comma-separated fields the consumer needs"),
        ],
        body: None,
        responses: &[
            (
                200,
                "The permitted data (JSON or CSV); headers X-Decision-Id, X-Policy-Version, X-Module-Hash, X-Usage-Terms",
                None,
            ),
            (400, "Missing or unknown purpose or action", Some("problem.schema.json")),
            (
                403,
                "Denied by the policy (failedConstraints, policyVersion) or no active policy",
                Some("problem.schema.json"),
            ),
            (404, "No such dataset", Some("problem.schema.json")),
            (502, "The provider failed or sent unusable data", Some("problem.schema.json")),
            (504, "The provider did not answer in time", Some("problem.schema.json")),
        ],
        handler: |r| r.to(exchange::data),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/sparql",
        operation_id: "sparqlGet",
        summary: "SPARQL 1.1 protocol query (SELECT, ASK, CONSTRUCT, DESCRIBE); updates are refused",
        roles: &[],
        query: &[("query", "The SPARQL query")],
        body: None,
        responses: &[
            (
                200,
                "Results as negotiated: SPARQL JSON/XML, CSV, TSV; Turtle, N-Triples, RDF/XML",
                None,
            ),
            (400, "Syntax error", Some("problem.schema.json")),
            (406, "No acceptable format", Some("problem.schema.json")),
            (422, "Result limit exceeded", Some("problem.schema.json")),
            (503, "Time limit exceeded", Some("problem.schema.json")),
        ],
        handler: |r| r.to(sparql::get),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/sparql",
        operation_id: "sparqlPost",
        summary: "SPARQL 1.1 protocol query by POST; updates are refused",
        roles: &[],
        query: &[],
        body: Some(Body::Text(&["application/sparql-query", "application/x-www-form-urlencoded"])),
        responses: &[
            (200, "Results as negotiated", None),
            (400, "Syntax error", Some("problem.schema.json")),
            (415, "Unsupported body type", Some("problem.schema.json")),
        ],
        handler: |r| r.to(sparql::post),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/openapi.json",
        operation_id: "openapi",
        summary: "This API description (OpenAPI 3.1)",
        roles: &[],
        query: &[],
        body: None,
        responses: &[(200, "The OpenAPI document", None)],
        handler: |r| r.to(openapi_handler),
    },
];

/// The endpoint nearly all traffic goes to; registered first, because actix tries the routes in
/// order, matching each pattern with a regex.
pub const HOT_PATH: &str = "requestData";

/// Registers every endpoint of [`ENDPOINTS`], the hot path first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let (hot, rest): (Vec<&Endpoint>, Vec<&Endpoint>) = ENDPOINTS.iter().partition(|ep| ep.operation_id == HOT_PATH);
    for ep in hot.into_iter().chain(rest) {
        cfg.route(ep.path, (ep.handler)(ep.method.route()));
    }
}

async fn openapi_handler(_caller: super::auth::Caller) -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}

fn schema_ref(file: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", component_name(file)) })
}

/// `dataset.schema.json` -> `dataset`.
pub fn component_name(file: &str) -> &str {
    file.trim_end_matches(".schema.json")
}

/// The OpenAPI 3.1 document of [`ENDPOINTS`], with the JSON Schemas of `schemas/` as components.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS {
        let entry = paths.entry(ep.path).or_insert_with(|| json!({}));
        if let Value::Object(ops) = entry {
            ops.insert(ep.method.as_str().to_owned(), operation(ep));
        }
    }
    let mut schemas = Map::new();
    for (file, text) in schema::ALL {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        schemas.insert(component_name(file).to_owned(), value);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Kommunaler Datenraum broker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every call needs a client certificate from the data space's CA (mutual TLS); the caller's identity comes from it."
        },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

fn operation(ep: &Endpoint) -> Value {
    let mut responses = Map::new();
    for (status, description, schema) in ep.responses.iter().chain(PROBLEMS) {
        let mut r = json!({ "description": description });
        if let Some(file) = schema {
            let media = if *file == "problem.schema.json" {
                super::problem::CONTENT_TYPE
            } else {
                "application/json"
            };
            r["content"] = json!({ media: { "schema": schema_ref(file) } });
        }
        responses.insert(status.to_string(), r);
    }
    let mut params: Vec<Value> = ep
        .query
        .iter()
        .map(|(name, d)| json!({ "name": name, "in": "query", "description": d, "schema": { "type": "string" } }))
        .collect();
    for seg in ep.path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
        params.push(json!({ "name": seg, "in": "path", "required": true, "schema": { "type": "string" } }));
    }
    let mut op = json!({
        "operationId": ep.operation_id,
        "summary": ep.summary,
        "parameters": params,
        "responses": responses,
    });
    if !ep.roles.is_empty() {
        op["x-roles"] = json!(ep.roles);
    }
    match ep.body {
        Some(Body::Schema(file)) => {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(file) } } })
        }
        Some(Body::Text(types)) => {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| ((*t).to_owned(), json!({ "schema": { "type": "string" } })))
                .collect();
            op["requestBody"] = json!({ "required": true, "content": content });
        }
        None => {}
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_path_is_one_endpoint() {
        let hot: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|ep| ep.operation_id == HOT_PATH)
            .map(|ep| ep.path)
            .collect();
        assert_eq!(hot, ["/v1/datasets/{id}/data"]);
    }
}
