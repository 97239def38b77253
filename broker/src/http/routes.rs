//! The route table: the one list from which both the actix routes and the OpenAPI 3.1 document
//! are made, so the document cannot describe an endpoint that does not exist or miss one that does.

use actix_web::{HttpResponse, Route, web};
use serde_json::{Map, Value, json};

use super::{datasets, documents, exchange, import, members, policies, sparql};
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

/// What a dereferenced IRI answers.
const DESCRIPTION_RESPONSES: &[(u16, &str, Option<&str>)] = &[
    (200, "The description", None),
    (304, "Not modified since the ETag in If-None-Match", None),
    (406, "No RDF syntax offered is acceptable", Some("problem.schema.json")),
];

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
        summary: "Registered datasets, optionally filtered; with q (or licence, format, page, per_page) a full-text search: relevance-ordered hits over titles, descriptions and keywords with German stemming, facet counts (theme, publisher, licence, format) over all hits, and paging",
        roles: &[],
        query: &[
            (
                "keyword",
                "Only datasets with this whole keyword (case-insensitive; also with a search)",
            ),
            ("theme", "Only datasets with this EU data-theme code"),
            ("publisher", "Only datasets published by this AGS"),
            (
                "q",
                "Words to search for, all of them required (at most 500 characters; empty: every dataset)",
            ),
            (
                "licence",
                "Search: only datasets with this DCAT-AP.de licence code (e.g. dl-by-de-2.0)",
            ),
            (
                "format",
                "Search: only datasets with a distribution of this EU file-type code (e.g. CSV)",
            ),
            ("page", "Search: the page, from 1"),
            ("per_page", "Search: hits a page, 1 to 100 (default 20)"),
        ],
        body: None,
        responses: &[
            (200, "Matching datasets; with a search, a page of hits with facets", None),
            (400, "Malformed filter", Some("problem.schema.json")),
            (503, "Every search slot is taken (Retry-After)", Some("problem.schema.json")),
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
            (
                410,
                "The identifier belonged to a withdrawn dataset; it is never used again",
                Some("problem.schema.json"),
            ),
            (413, "Body too large", Some("problem.schema.json")),
            (
                422,
                "Schema violations, each by JSON Pointer; or DCAT-AP.de 3.0 violations, each by node, property and message (shaclResults)",
                Some("problem.schema.json"),
            ),
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
            (
                422,
                "Schema violations, or DCAT-AP.de 3.0 violations (shaclResults)",
                Some("problem.schema.json"),
            ),
        ],
        handler: |r| r.to(datasets::replace),
    },
    Endpoint {
        method: Method::Get,
        path: "/v1/datasets/{id}/validation",
        operation_id: "validateDataset",
        summary: "The dataset's description checked against the DCAT-AP.de 3.0 shapes GovData validates with: violations and warnings by node, property and message (German where the shapes have it)",
        roles: &[],
        query: &[],
        body: None,
        responses: &[
            (200, "The findings (none: the description conforms)", Some("validation.schema.json")),
            (404, "No such dataset", Some("problem.schema.json")),
            (503, "Every validation slot is taken (Retry-After)", Some("problem.schema.json")),
        ],
        handler: |r| r.to(datasets::validation),
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
            (409, "Too many drafts wait for review", Some("problem.schema.json")),
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
            (503, "Too many uploads at once (Retry-After)", Some("problem.schema.json")),
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
        responses: &[
            (200, "The usage rows (JSON or CSV)", None),
            (406, "Neither JSON nor CSV is acceptable", Some("problem.schema.json")),
        ],
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
        responses: &[
            (200, "One record per dataset (JSON or CSV)", None),
            (406, "Neither JSON nor CSV is acceptable", Some("problem.schema.json")),
        ],
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
            (406, "Neither JSON nor CSV is acceptable", Some("problem.schema.json")),
            (502, "The provider failed or sent unusable data", Some("problem.schema.json")),
            (503, "Too many data requests at once (Retry-After)", Some("problem.schema.json")),
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
        query: &[("query", "Required: the SPARQL query")],
        body: None,
        responses: &[
            (
                200,
                "Results as negotiated: SPARQL JSON/XML, CSV, TSV; Turtle, N-Triples, RDF/XML",
                None,
            ),
            (400, "Syntax error", Some("problem.schema.json")),
            (406, "No acceptable format", Some("problem.schema.json")),
            (422, "Result or memory limit exceeded", Some("problem.schema.json")),
            (503, "Time limit exceeded, or every query slot taken", Some("problem.schema.json")),
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
            (406, "No acceptable format", Some("problem.schema.json")),
            (422, "Result or memory limit exceeded", Some("problem.schema.json")),
            (503, "Time limit exceeded, or every query slot taken", Some("problem.schema.json")),
        ],
        handler: |r| r.to(sparql::post),
    },
    Endpoint {
        method: Method::Post,
        path: "/v1/catalog/import",
        operation_id: "importCatalog",
        summary: "Import the steward's city's open-data portal export (DCAT-AP.de in RDF/XML, Turtle, JSON-LD or N-Triples): new datasets registered, changed ones updated, vanished ones withdrawn, quirks repaired; the answer lists each",
        roles: &["steward"],
        query: &[(
            "source",
            "Where the datasets come from (default: the export's dcat:Catalog IRI); earlier imports from it that are gone now are withdrawn",
        )],
        body: Some(Body::Text(&[
            "application/rdf+xml",
            "text/turtle",
            "application/ld+json",
            "application/n-triples",
        ])),
        responses: &[
            (
                200,
                "What was imported, updated, left unchanged, withdrawn, refused (with the DCAT-AP.de violations where those are why) and repaired, and the shapes' warnings by property and message",
                None,
            ),
            (
                409,
                "The catalog changed while the import was prepared; nothing was written",
                Some("problem.schema.json"),
            ),
            (
                422,
                "Not readable RDF, no dcat:Dataset in it, or no dataset in it meets DCAT-AP.de 3.0 (shaclResults)",
                Some("problem.schema.json"),
            ),
            (
                503,
                "Too many uploads and imports at once (Retry-After)",
                Some("problem.schema.json"),
            ),
        ],
        handler: |r| r.to(import::import),
    },
    Endpoint {
        method: Method::Get,
        path: "/datasets/{id}",
        operation_id: "describeDataset",
        summary: "The dataset's IRI: its DCAT-AP.de description in RDF (RDF/XML, Turtle, JSON-LD or N-Triples by Accept), with ETag",
        roles: &[],
        query: &[],
        body: None,
        responses: DESCRIPTION_RESPONSES,
        handler: |r| r.to(documents::dataset),
    },
    Endpoint {
        method: Method::Get,
        path: "/datasets/{id}/distributions/{index}",
        operation_id: "describeDistribution",
        summary: "A distribution's IRI: the description of its dataset in RDF, with ETag",
        roles: &[],
        query: &[],
        body: None,
        responses: DESCRIPTION_RESPONSES,
        handler: |r| r.to(documents::distribution),
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

/// The methods (upper case) the route table serves on `path`, matching `{...}` segments to any
/// one segment.
pub fn methods_of(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut out: Vec<&'static str> = ENDPOINTS
        .iter()
        .filter(|ep| {
            let pattern: Vec<&str> = ep.path.split('/').collect();
            pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
        })
        .map(|ep| match ep.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

async fn openapi_handler(_caller: super::auth::Caller, state: web::Data<super::AppState>) -> HttpResponse {
    HttpResponse::Ok().json(openapi(&state.vocab))
}

fn schema_ref(file: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", component_name(file)) })
}

/// `dataset.schema.json` -> `dataset`.
pub fn component_name(file: &str) -> &str {
    file.trim_end_matches(".schema.json")
}

/// The OpenAPI 3.1 document of [`ENDPOINTS`], with the JSON Schemas of `schemas/` as components
/// and the purposes and actions `vocab` knows as the values those parameters take.
pub fn openapi(vocab: &policy_compiler::Vocabulary) -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS {
        let entry = paths.entry(ep.path).or_insert_with(|| json!({}));
        if let Value::Object(ops) = entry {
            ops.insert(ep.method.as_str().to_owned(), operation(ep, vocab));
        }
    }
    let mut schemas = Map::new();
    for (file, text) in schema::ALL {
        let mut value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        self_contained(&mut value, component_name(file));
        schemas.insert(component_name(file).to_owned(), value);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Kommunaler Datenraum broker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every call needs a client certificate from the data space's CA (mutual TLS); the caller's identity comes from it. Errors are RFC 9457 problem details."
        },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// Makes a schema file a component that resolves inside the OpenAPI document alone: no `$id`
/// (which would make its references resolve against the file's own address), references to
/// another file (`member.schema.json`, `validation.schema.json#/$defs/finding`) and to its own `$defs` (`#/$defs/langText`) rewritten to
/// component paths.
fn self_contained(v: &mut Value, component: &str) {
    match v {
        Value::Object(map) => {
            map.remove("$id");
            map.remove("$schema");
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                *r = match r.split_once("#/") {
                    Some(("", local)) => format!("#/components/schemas/{component}/{local}"),
                    Some((file, local)) => format!("#/components/schemas/{}/{local}", component_name(file)),
                    None => format!("#/components/schemas/{}", component_name(r)),
                };
            }
            map.values_mut().for_each(|x| self_contained(x, component));
        }
        Value::Array(items) => items.iter_mut().for_each(|x| self_contained(x, component)),
        _ => {}
    }
}

/// Every operation may answer these (the caller, the framework, the broker's limits).
const COMMON: &[(u16, &str)] = &[
    (400, "A malformed request (query string, path or body), naming what was wrong"),
    (
        403,
        "Not a member, the role does not allow it, or the certificate was revoked or has expired",
    ),
    (429, "Over the member's request rate or the certificate's connections (Retry-After)"),
    (500, "The broker failed; the operator's log has the details"),
];

/// Operations with a request body may also answer these.
const WITH_BODY: &[(u16, &str)] = &[
    (408, "The body did not arrive in time"),
    (413, "The body is larger than the limit"),
    (415, "The body's media type is not one this operation takes"),
];

/// A parameter's schema, by its name: what the broker accepts.
fn parameter_schema(name: &str, vocab: &policy_compiler::Vocabulary) -> Value {
    match name {
        "purpose" => json!({ "type": "string", "enum": vocab.purposes() }),
        "action" => {
            let odrl = policy_compiler::vocab::ODRL;
            let short = vocab.actions().into_iter().filter_map(|a| a.strip_prefix(odrl)).map(str::to_owned);
            let values: Vec<String> = short.chain(vocab.actions().into_iter().map(str::to_owned)).collect();
            json!({ "type": "string", "enum": values })
        }
        "query" => json!({ "type": "string", "minLength": 1 }),
        "id" => json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9-]{2,62}$" }),
        "version" => json!({ "type": "integer", "minimum": 1, "maximum": 4294967295u64 }),
        "index" => json!({ "type": "integer", "minimum": 0, "maximum": 19 }),
        "ags" | "provider" | "publisher" => json!({ "type": "string", "pattern": "^[0-9]{8}$" }),
        "bucket" => json!({ "type": "string", "enum": ["day", "month"] }),
        "format" => json!({ "type": "string", "enum": ["json", "csv"] }),
        "source" => json!({ "type": "string", "minLength": 1, "maxLength": 2000 }),
        "q" => json!({ "type": "string", "maxLength": 500 }),
        "page" => json!({ "type": "integer", "minimum": 1, "maximum": 10000 }),
        "per_page" => json!({ "type": "integer", "minimum": 1, "maximum": 100 }),
        "licence" | "theme" | "keyword" => json!({ "type": "string", "minLength": 1, "maxLength": 200 }),
        "from" | "to" => json!({ "anyOf": [{ "type": "string", "format": "date" }, { "type": "string", "format": "date-time" }] }),
        _ => json!({ "type": "string" }),
    }
}

/// The media types a successful answer of `ep` comes in.
fn success_media(ep: &Endpoint) -> Vec<&'static str> {
    match ep.operation_id {
        "requestData" | "usageReport" | "processingRecords" => vec!["application/json", "text/csv"],
        "sparqlGet" | "sparqlPost" => vec![
            "application/sparql-results+json",
            "application/sparql-results+xml",
            "text/csv",
            "text/tab-separated-values",
            "text/turtle",
            "application/n-triples",
            "application/rdf+xml",
        ],
        "describeDataset" | "describeDistribution" => crate::catalog::RdfSyntax::OFFERS.iter().map(|(m, _)| *m).collect(),
        _ => vec!["application/json"],
    }
}

fn operation(ep: &Endpoint, vocab: &policy_compiler::Vocabulary) -> Value {
    let mut responses = Map::new();
    let problem = json!({ super::problem::CONTENT_TYPE: { "schema": schema_ref("problem.schema.json") } });
    let with_body = ep.body.is_some() || matches!(ep.operation_id, "approvePolicy" | "rejectPolicy");
    let common = COMMON.iter().chain(if with_body { WITH_BODY } else { &[] });
    for (status, description) in common {
        responses.insert(status.to_string(), json!({ "description": description, "content": problem }));
    }
    for (status, description, schema) in ep.responses {
        let r = match (status, schema) {
            (204 | 304, _) => json!({ "description": description }),
            (_, Some(file)) if *file == "problem.schema.json" => json!({ "description": description, "content": problem }),
            (_, Some(file)) => json!({ "description": description, "content": { "application/json": { "schema": schema_ref(file) } } }),
            (s, None) if *s < 300 => {
                let content: Map<String, Value> = success_media(ep).into_iter().map(|m| (m.to_owned(), json!({}))).collect();
                json!({ "description": description, "content": content })
            }
            (_, None) => json!({ "description": description, "content": problem }),
        };
        responses.insert(status.to_string(), r);
    }
    let mut params: Vec<Value> = ep
        .query
        .iter()
        .map(|(name, d)| {
            let required = d.starts_with("Required");
            let schema = match (ep.operation_id, *name) {
                // The search's file-type filter, not a report's output format.
                ("listDatasets", "format") => json!({ "type": "string", "minLength": 1, "maxLength": 200 }),
                _ => parameter_schema(name, vocab),
            };
            json!({ "name": name, "in": "query", "description": d, "required": required, "schema": schema })
        })
        .collect();
    for seg in ep.path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')) {
        params.push(json!({ "name": seg, "in": "path", "required": true, "schema": parameter_schema(seg, vocab) }));
    }
    // An operation on a dataset may find it missing, or withdrawn.
    if ep.path.starts_with("/v1/datasets/{id}") || ep.path.starts_with("/datasets/{id}") {
        for (status, description) in [(404, "No such dataset (or version)"), (410, "The dataset was withdrawn")] {
            responses
                .entry(status.to_string())
                .or_insert_with(|| json!({ "description": description, "content": problem }));
        }
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
                .map(|t| {
                    let schema = match *t {
                        "application/x-www-form-urlencoded" => json!({
                            "type": "object",
                            "required": ["query"],
                            "properties": { "query": { "type": "string", "minLength": 1 } },
                            "additionalProperties": false
                        }),
                        _ => json!({ "type": "string", "minLength": 1 }),
                    };
                    ((*t).to_owned(), json!({ "schema": schema }))
                })
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
