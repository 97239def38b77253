//! RFC 9457 problem details: every error the API returns is one of these.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::identity::NS;
use crate::schema::Violation;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An API error. `kind` is the last segment of the problem type IRI (`https://w3id.org/kdr/problems/<kind>`).
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub violations: Vec<Violation>,
    /// RFC 9457 extension members (e.g. `failedConstraints` of a denial).
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Response headers beside the content type (`Retry-After`, `Allow`); rare, so boxed.
    pub headers: Option<Box<Vec<(&'static str, String)>>>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    violations: &'a [Violation],
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            violations: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: None,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.get_or_insert_with(Default::default).push((name, value.into()));
        self
    }

    /// A 503 for a limit that is reached: says which, and when to try again.
    pub fn busy(detail: impl Into<String>, retry_after: u32) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "Service Unavailable", detail)
            .with_header("Retry-After", retry_after.to_string())
    }

    /// A 429 for a caller over their rate: says the limit, and when to try again.
    pub fn rate_limited(detail: impl Into<String>, retry_after: u32) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too Many Requests", detail)
            .with_header("Retry-After", retry_after.to_string())
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_violations(mut self, violations: Vec<Violation>) -> Self {
        self.violations = violations;
        self
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, "Not found", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 406: the request's `Accept` header accepts none of `offers`.
    pub fn not_acceptable<F>(req: &actix_web::HttpRequest, offers: &[crate::conneg::Offer<F>]) -> Self {
        let accept = accept_header(req).unwrap_or_default();
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not Acceptable",
            format!(
                "this is served as {}, and 'Accept: {accept}' accepts none of them",
                crate::conneg::offered(offers)
            ),
        )
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, "Bad request", detail)
    }

    /// An internal failure: logged in full, reported without internals.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("{context}; the operator's log has the details"),
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = Body {
            type_: format!("{NS}problems/{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            violations: &self.violations,
            extensions: &self.extensions,
        };
        let mut resp = HttpResponse::build(self.status);
        for (name, value) in self.headers.iter().flat_map(|h| h.iter()) {
            resp.insert_header((*name, value.as_str()));
        }
        resp.content_type(CONTENT_TYPE).json(body)
    }
}

impl From<actix_web::error::BlockingError> for Problem {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Problem::internal("a storage task could not run", e)
    }
}

impl From<crate::catalog::CatalogError> for Problem {
    fn from(e: crate::catalog::CatalogError) -> Self {
        use crate::catalog::CatalogError as E;
        match e {
            E::DatasetExists(id) => Problem::new(
                StatusCode::CONFLICT,
                "dataset-exists",
                "Conflict",
                format!("dataset '{id}' already exists; use PUT /v1/datasets/{id} to change it"),
            ),
            E::NoSuchDataset(id) => Problem::not_found("no-such-dataset", format!("dataset '{id}' does not exist")),
            e @ E::DatasetWithdrawn(_) => Problem::new(StatusCode::GONE, "dataset-withdrawn", "Gone", e.to_string()),
            E::Storage(s) => Problem::internal("the metadata store failed", s),
            E::InvalidPolicy(s) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-policy", "Invalid policy", s),
            e @ E::NoSuchPolicyVersion { .. } => Problem::not_found("no-such-policy-version", e.to_string()),
            e @ E::PolicyVersionTaken { .. } => Problem::new(StatusCode::CONFLICT, "policy-version-taken", "Conflict", e.to_string()),
            e @ E::NotADraft { .. } => Problem::new(StatusCode::CONFLICT, "not-a-draft", "Conflict", e.to_string()),
            e @ E::Conflict(_) => Problem::new(StatusCode::CONFLICT, "changed-meanwhile", "Conflict", e.to_string()),
            E::Shacl(e) => Problem::internal("the DCAT-AP.de validation failed", e),
            e @ E::Busy(_) => Problem::busy(e.to_string(), 1),
            E::NotDcatApDe { dataset, findings } => {
                let detail = E::NotDcatApDe {
                    dataset,
                    findings: findings.clone(),
                }
                .to_string();
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not-dcat-ap-de",
                    "The description does not meet DCAT-AP.de 3.0",
                    detail,
                )
                .with("shaclResults", serde_json::to_value(findings).unwrap_or_default())
            }
        }
    }
}

impl Problem {
    /// The same problem under a more specific type.
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }
}

/// The request's `Accept` headers as one list (RFC 9110 §5.3), `None` when there is none (a
/// value that is not text counts as absent, which RFC 9110 lets a server do).
pub fn accept_header(req: &actix_web::HttpRequest) -> Option<String> {
    let values: Vec<&str> = req
        .headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The offer the request's `Accept` header prefers ([`crate::conneg`]), or a 406 problem.
pub fn negotiate<F: Copy>(req: &actix_web::HttpRequest, offers: &[crate::conneg::Offer<F>]) -> Result<crate::conneg::Offer<F>, Problem> {
    crate::conneg::negotiate(accept_header(req).as_deref(), offers).ok_or_else(|| Problem::not_acceptable(req, offers))
}
