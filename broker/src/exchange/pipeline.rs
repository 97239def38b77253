//! A data request, start to end, and a hosted upload: the exchange's two ways data moves.
//!
//! The order of a request is fixed: check what was asked → the dataset, its active policy and
//! its publisher → decide (holding the usage key) → count the use → fetch from the publisher's
//! provider (or the hosted upload) → enforce the duties → write the decision record (for a
//! permit, the durable record of the use) → deliver. Every path that ends without data after
//! the dataset is known still writes its decision record; if the record cannot be written,
//! nothing is returned.
//!
//! What a refusal says is for the consumer: which constraint failed, which limit was hit. What
//! went wrong at a provider (its address, its error text, a value in its malformed JSON) is
//! for the operator's log, keyed by the decision id, never for the consumer's answer: the
//! consumer learns that the provider failed, and how (timeout, unreachable, unusable data).

use std::sync::Arc;

use policy_compiler::input::PolicyInput;
use policy_evaluator::DecisionDocument;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Duties, Exchange, Snapshot, action_iri, explain_denial};
use crate::audit::{AdminRecord, DecisionRecord, Event};
use crate::catalog::{Access, Dataset, DatasetId, PolicyVersion, Tombstone};
use crate::changes::{ChangeError, audited};
use crate::enforce::{self, Format};
use crate::identity::Identity;
use crate::privacy::BudgetKey;
use crate::upstream::{self, UpstreamError};
use crate::usage::{UsageCounter, UsageKey};

/// A consumer's request for a dataset's data, as the HTTP layer (or any other caller) parsed it.
#[derive(Debug, Clone, Copy)]
pub struct DataRequest<'a> {
    pub dataset: &'a DatasetId,
    /// The declared DPV purpose (required).
    pub purpose: Option<&'a str>,
    /// An ODRL action, `read` by default.
    pub action: Option<&'a str>,
    /// `a,b,c`: the fields the consumer needs; absent means all the policy allows.
    pub fields: Option<&'a str>,
    pub format: Format,
}

/// The data as it may leave, and what the response says about it.
#[derive(Debug)]
pub struct Delivery {
    pub format: Format,
    pub body: Vec<u8>,
    pub decision_id: String,
    pub policy_version: u32,
    pub module_hash: String,
    /// `X-Usage-Terms`: what the consumer must honour.
    pub terms: String,
}

/// Why no data was delivered. Every variant after [`Self::NoSuchDataset`] carries the id of the
/// decision record that says so.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request itself is malformed (no purpose, an unknown purpose or action).
    #[error("{detail}")]
    BadRequest { kind: &'static str, detail: String },
    #[error("dataset '{0}' does not exist")]
    NoSuchDataset(DatasetId),
    #[error("dataset '{}' was withdrawn by {} on {}", .0.id, .0.publisher, .0.withdrawn)]
    Withdrawn(Box<Tombstone>),
    /// Not shared at all now: no active policy, a publisher that is no longer a member,
    /// distributions changed since the approval, no registered provider.
    #[error("{detail}")]
    NotShared {
        kind: &'static str,
        detail: String,
        decision: String,
    },
    /// The active policy denies it.
    #[error("{}", .0.detail)]
    Denied(Box<Denied>),
    /// The provider failed (or sent what cannot be enforced on).
    #[error("{detail}")]
    Upstream {
        kind: &'static str,
        timeout: bool,
        detail: String,
        decision: String,
    },
    /// Every data-request slot is taken.
    #[error(transparent)]
    Busy(super::Busy),
    /// The broker failed; the operator's log has the details. `decision` is `None` when the
    /// decision record itself could not be written.
    #[error("{context}")]
    Internal { context: &'static str, decision: Option<String> },
}

/// A denial by the policy, with what a consumer needs to understand it.
#[derive(Debug)]
pub struct Denied {
    pub detail: String,
    pub decision: String,
    pub policy_version: u32,
    pub module_hash: String,
    pub failed_constraints: Vec<String>,
    pub prohibited_by: Vec<String>,
}

impl Refusal {
    /// The decision record's id, if one was written.
    pub fn decision(&self) -> Option<&str> {
        match self {
            Self::NotShared { decision, .. } | Self::Upstream { decision, .. } => Some(decision),
            Self::Denied(d) => Some(&d.decision),
            Self::Internal { decision, .. } => decision.as_deref(),
            Self::BadRequest { .. } | Self::NoSuchDataset(_) | Self::Withdrawn(_) | Self::Busy(_) => None,
        }
    }
}

/// What a request has established so far, for its decision record.
struct Pending {
    record: DecisionRecord,
}

impl Pending {
    fn new(consumer: &Identity, dataset: &Dataset, purpose: &str, action: &str) -> Self {
        Self {
            record: DecisionRecord {
                id: uuid::Uuid::new_v4().to_string(),
                time: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
                consumer: consumer.ags.to_string(),
                consumer_role: consumer.role.as_str().to_owned(),
                consumer_serial: consumer.serial.clone(),
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
                privacy_spent_milli: None,
                input: None,
            },
        }
    }

    /// Writes the record durably, counts it in the reports' tally, and returns its id; a
    /// failure fails the request.
    async fn log(self, x: &Exchange) -> Result<String, Refusal> {
        let id = self.record.id.clone();
        let record = Box::new(self.record);
        let tallied = crate::reports::Tally::entry(&record);
        x.log.append_async(Event::Decision(record)).await.map_err(|e| {
            tracing::error!(error = %e, decision = %id, "the decision log cannot be written");
            Refusal::Internal {
                context: "the decision log cannot be written, so nothing is delivered",
                decision: None,
            }
        })?;
        if let Some(entry) = tallied {
            x.tally.apply(entry);
        }
        Ok(id)
    }

    /// Records the outcome with `reason` (no data values: a reason is the broker's own words)
    /// and returns the refusal `make` builds from the record's id, or the log failure.
    async fn fail(mut self, x: &Exchange, outcome: &str, reason: &str, make: impl FnOnce(String) -> Refusal) -> Refusal {
        self.record.outcome = outcome.to_owned();
        self.record.reason.get_or_insert_with(|| reason.to_owned());
        match self.log(x).await {
            Ok(id) => make(id),
            Err(log_failure) => log_failure,
        }
    }

    async fn not_shared(self, x: &Exchange, kind: &'static str, detail: String) -> Refusal {
        let reason = detail.clone();
        self.fail(x, "denied", &reason, |decision| Refusal::NotShared { kind, detail, decision })
            .await
    }

    async fn internal(self, x: &Exchange, outcome: &str, context: &'static str, error: impl std::fmt::Display) -> Refusal {
        let id = self.record.id.clone();
        tracing::error!(%error, decision = %id, "{context}");
        self.fail(x, outcome, context, |decision| Refusal::Internal {
            context,
            decision: Some(decision),
        })
        .await
    }
}

impl Exchange {
    /// Runs a data request by `consumer` from start to end.
    pub async fn request(&self, consumer: &Identity, req: DataRequest<'_>) -> Result<Delivery, Refusal> {
        let (purpose, action) = self.check_request(&req)?;
        let _slot = self.request_slot(consumer.ags.as_str()).await.map_err(Refusal::Busy)?;
        let snapshot = self.snapshot_of(req.dataset).await?;
        let dataset = &snapshot.dataset;
        let mut pending = Pending::new(consumer, dataset, &purpose, &action);
        let requested: Option<Vec<String>> = req
            .fields
            .map(|f| f.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect());
        pending.record.fields_requested = requested.clone().unwrap_or_default();
        let policy = match self.shared_under(&snapshot) {
            Ok(p) => p,
            Err((kind, detail)) => return Err(pending.not_shared(self, kind, detail).await),
        };
        pending.record.policy_version = Some(policy.version);
        pending.record.module_hash = Some(policy.module_hash.clone());
        let compiled = match self.module(policy) {
            Ok(m) => m,
            Err(e) => {
                return Err(pending
                    .internal(self, "denied", "the dataset's policy cannot be evaluated", e)
                    .await);
            }
        };
        let key = UsageKey {
            consumer: consumer.ags.to_string(),
            dataset: dataset.id.to_string(),
            period: key_period(&pending.record.time),
        };
        let guard = match self.usage.acquire(key).await {
            Ok(g) => g,
            Err(e) => return Err(pending.internal(self, "denied", "usage counts are unavailable", e).await),
        };
        let input = PolicyInput {
            assignee: Some(consumer.ags.iri()),
            action: Some(action.clone()),
            target: Some(self.catalog.dataset_iri(&dataset.id)),
            purpose: Some(purpose.clone()),
            now_ms: i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).ok(),
            count: i64::try_from(guard.count()).ok(),
            ..PolicyInput::default()
        };
        let decision = self.decide(&compiled.module, &input).await;
        pending.record.input = Some(input);
        if !decision.permits() {
            drop(guard);
            return Err(self.deny(pending, policy, &compiled.policy, &decision).await);
        }
        let read: Arc<Duties> = match self.duties(decision.duties.as_json()) {
            Ok(d) => d,
            Err(e) => {
                return Err(pending
                    .internal(self, "duties-unreadable", "the decision's duties cannot be enforced", e)
                    .await);
            }
        };
        if let Some((cost, budget)) = read.plan.noise {
            // Spent now (check and spend in one step), made durable by the decision record.
            let key = BudgetKey {
                consumer: consumer.ags.to_string(),
                dataset: dataset.id.to_string(),
                period: key_period(&pending.record.time),
            };
            if let Err(exhausted) = self.privacy.spend(key, cost, budget) {
                drop(guard);
                let detail = format!("dataset '{}': {exhausted}; the next release is possible next month", dataset.id);
                return Err(pending.not_shared(self, "privacy-budget-exhausted", detail).await);
            }
            pending.record.privacy_spent_milli = Some(cost);
        }
        pending.record.decision = "permit".into();
        // Counted now, made durable by the permit record written before any data leaves.
        self.usage.count_use(guard);
        self.deliver(pending, consumer, &snapshot, &purpose, &read, requested.as_deref(), req.format)
            .await
    }

    fn check_request(&self, req: &DataRequest<'_>) -> Result<(String, String), Refusal> {
        let bad = |kind, detail: String| Refusal::BadRequest { kind, detail };
        let purpose = req.purpose.filter(|p| !p.is_empty()).ok_or_else(|| {
            bad(
                "missing-purpose",
                "query parameter 'purpose' is required: the DPV purpose the data is used for, e.g. https://w3id.org/dpv#ImprovePublicServices".into(),
            )
        })?;
        if !self.vocab.is_known_purpose(purpose) {
            return Err(bad(
                "unknown-purpose",
                format!("query parameter 'purpose': <{purpose}> is not a purpose the data space knows (DPV 2.2)"),
            ));
        }
        let action = action_iri(req.action.unwrap_or("read"));
        if !self.vocab.is_known_action(&action) {
            return Err(bad(
                "unknown-action",
                format!("query parameter 'action': <{action}> is not an ODRL 2.2 action"),
            ));
        }
        Ok((purpose.to_owned(), action))
    }

    /// The dataset, its active policy and its publisher, from the snapshot or the catalog.
    pub async fn snapshot_of(&self, id: &DatasetId) -> Result<Arc<Snapshot>, Refusal> {
        if let Some(s) = self.snapshot(id) {
            return Ok(s);
        }
        let catalog = self.catalog.clone();
        let lookup = id.clone();
        // A write between this read and keeping it (a withdrawal, an approval) must not be
        // undone by keeping what was read before it: kept only if no write came in between.
        let generation = self.catalog.generation();
        let read = tokio::task::spawn_blocking(move || -> Result<_, crate::catalog::CatalogError> {
            let Some(dataset) = catalog.dataset(&lookup)? else {
                return Ok(Err(catalog.tombstone(&lookup)?));
            };
            let policy = catalog.active_policy(&lookup)?;
            let publisher = catalog.member(&dataset.publisher)?;
            Ok(Ok((dataset, policy, publisher)))
        })
        .await;
        let internal = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, dataset = %id, "the catalog cannot be read");
            Refusal::Internal {
                context: "the metadata store failed",
                decision: None,
            }
        };
        match read {
            Ok(Ok(Ok((dataset, policy, publisher)))) => {
                let distributions = dataset.distributions_digest();
                let snapshot = Snapshot {
                    dataset,
                    policy,
                    publisher,
                    distributions,
                };
                if self.catalog.generation() == generation {
                    Ok(self.remember(snapshot))
                } else {
                    Ok(Arc::new(snapshot))
                }
            }
            Ok(Ok(Err(Some(t)))) => Err(Refusal::Withdrawn(Box::new(t))),
            Ok(Ok(Err(None))) => Err(Refusal::NoSuchDataset(id.clone())),
            Ok(Err(e)) => Err(internal(&e)),
            Err(e) => Err(internal(&e)),
        }
    }

    /// The policy version the dataset is shared under now, or why it is not shared:
    /// (problem kind, detail).
    fn shared_under<'s>(&self, s: &'s Snapshot) -> Result<&'s PolicyVersion, (&'static str, String)> {
        let d = &s.dataset;
        let Some(policy) = s.policy.as_ref() else {
            return Err((
                "no-policy",
                format!("dataset '{}' has no active usage policy; it is not shared", d.id),
            ));
        };
        if s.publisher.is_none() {
            return Err((
                "publisher-not-member",
                format!(
                    "dataset '{}' is published by {}, which is no longer a member; it is not shared",
                    d.id, d.publisher
                ),
            ));
        }
        let approved_for = policy.review.as_ref().and_then(|r| r.distributions.as_deref());
        if approved_for != Some(s.distributions.as_str()) {
            return Err((
                "distributions-changed",
                format!(
                    "the distributions of dataset '{}' changed after policy version {} was approved; it is not shared until a board member of {} approves a policy version for them",
                    d.id, policy.version, d.publisher
                ),
            ));
        }
        Ok(policy)
    }

    async fn deny(
        &self,
        mut pending: Pending,
        version: &PolicyVersion,
        policy: &policy_compiler::ir::Policy,
        decision: &DecisionDocument,
    ) -> Refusal {
        let why = explain_denial(policy, decision);
        let failed: Vec<String> = why.failed_constraints.iter().map(|(uid, _)| uid.clone()).collect();
        pending.record.failed_constraints = failed.clone();
        pending.record.reason = decision.error.clone();
        let reasons = why.reasons();
        let by = format!("denied by policy version {} of dataset '{}'", version.version, version.dataset);
        let detail = match &decision.error {
            Some(e) => format!("{by}: {e}"),
            None if reasons.is_empty() => format!("{by}: no permission applies to this consumer and action"),
            None => format!("{by}: {}", reasons.join("; ")),
        };
        let reason = pending.record.reason.clone().unwrap_or_default();
        pending
            .fail(self, "denied", &reason, |decision| {
                Refusal::Denied(Box::new(Denied {
                    detail,
                    decision,
                    policy_version: version.version,
                    module_hash: version.module_hash.clone(),
                    failed_constraints: failed,
                    prohibited_by: why.prohibited_by,
                }))
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        mut pending: Pending,
        consumer: &Identity,
        snapshot: &Snapshot,
        purpose: &str,
        read: &Duties,
        requested: Option<&[String]>,
        format: Format,
    ) -> Result<Delivery, Refusal> {
        let dataset = &snapshot.dataset;
        let Some(policy) = snapshot.policy.as_ref() else {
            return Err(pending.internal(self, "denied", "the policy vanished", "no active policy").await);
        };
        let narrowed;
        let plan = match requested {
            Some(fields) => {
                narrowed = read.plan.narrowed(fields);
                &narrowed
            }
            None => &read.plan,
        };
        let (upstream_format, bytes) = match self.fetch(snapshot, &pending.record.id).await {
            Ok(v) => v,
            Err((kind, timeout, detail)) => {
                self.refund(&mut pending);
                let reason = detail.clone();
                return Err(pending
                    .fail(self, "upstream-failed", &reason, |decision| Refusal::Upstream {
                        kind,
                        timeout,
                        detail,
                        decision,
                    })
                    .await);
            }
        };
        // Derived only when a field is to be pseudonymised.
        let key = (!plan.pseudonymise.is_empty())
            .then(|| enforce::pseudonym_key(&self.secret, dataset.publisher.as_str(), consumer.ags.as_str(), purpose));
        let today = OffsetDateTime::now_utc().date();
        let released = match self.release(plan, upstream_format, bytes, key, today, format).await {
            Ok(r) => r,
            Err(e) => {
                self.refund(&mut pending);
                // The error names where the data broke, never what it held.
                let detail = format!("the provider's data is unusable: {e}");
                let reason = detail.clone();
                return Err(pending
                    .fail(self, "upstream-failed", &reason, |decision| Refusal::Upstream {
                        kind: "bad-upstream-data",
                        timeout: false,
                        detail,
                        decision,
                    })
                    .await);
            }
        };
        pending.record.fields_delivered = released.fields;
        pending.record.records_in = Some(released.records_in);
        pending.record.records_out = Some(released.records_out);
        pending.record.bytes_out = Some(released.body.len());
        pending.record.outcome = "delivered".into();
        let body = released.body;
        let decision_id = pending.log(self).await?;
        Ok(Delivery {
            format,
            body,
            decision_id,
            policy_version: policy.version,
            module_hash: policy.module_hash.clone(),
            terms: read.terms.clone(),
        })
    }

    /// Enforces `plan` on `bytes`: inline when small (most answers, a few microseconds), on the
    /// blocking pool when large, so a provider's big or hostile answer never stalls the worker
    /// thread that serves other connections.
    async fn release(
        &self,
        plan: &enforce::Plan,
        input: Format,
        bytes: Vec<u8>,
        key: Option<ring::hmac::Key>,
        today: time::Date,
        output: Format,
    ) -> Result<enforce::Release, enforce::EnforceError> {
        if bytes.len() <= INLINE_RELEASE_BYTES {
            return enforce::release(plan, input, &bytes, key.as_ref(), today, output);
        }
        let plan = plan.clone();
        tokio::task::spawn_blocking(move || enforce::release(&plan, input, &bytes, key.as_ref(), today, output))
            .await
            .unwrap_or_else(|e| Err(enforce::EnforceError::Duties(format!("the release could not run: {e}"))))
    }

    /// Gives back the privacy budget a request spent when nothing of its release left.
    fn refund(&self, pending: &mut Pending) {
        let (Some(cost), Some(key)) = (pending.record.privacy_spent_milli.take(), BudgetKey::of(&pending.record)) else {
            return;
        };
        self.privacy.refund(&key, cost);
    }

    /// The dataset's data: the hosted upload, or the publisher's provider API. On failure:
    /// (problem kind, whether it was a timeout, what the consumer may know).
    async fn fetch(&self, s: &Snapshot, decision: &str) -> Result<(Format, Vec<u8>), (&'static str, bool, String)> {
        let dataset = &s.dataset;
        let Some((url, media_type)) = dataset.distributions.iter().find_map(|d| match &d.access_url {
            Access::Url(u) => Some((u.as_str(), d.media_type.as_deref().unwrap_or("application/json"))),
            Access::Hosted => None,
        }) else {
            return self.hosted(dataset).await;
        };
        let provider = &dataset.publisher;
        // No egress but to an origin the publisher's member record registers.
        if !s.publisher.as_ref().is_some_and(|m| m.serves(url)) {
            tracing::warn!(dataset = %dataset.id, %url, decision, "access URL is not at a provider origin of its publisher; not fetched");
            return Err((
                "no-registered-provider",
                false,
                format!(
                    "the access URL of dataset '{}' is not at a provider address {provider} registered",
                    dataset.id
                ),
            ));
        }
        let accept = Format::from_media_type(media_type).unwrap_or(Format::Json).media_type();
        let limits = self.upstream;
        let fetch = upstream::Fetch {
            url,
            accept,
            provider,
            revocation: self.revocation.as_deref(),
            timeout: limits.timeout,
            max_bytes: limits.max_bytes,
        };
        let failed = |kind: &'static str, e: &dyn std::fmt::Display, told: String| {
            tracing::warn!(dataset = %dataset.id, %url, error = %e, decision, "provider request failed");
            (kind, false, told)
        };
        let of = format!("the provider of dataset '{}' ({provider})", dataset.id);
        let resp = match upstream::get(&self.upstream_tls, fetch).await {
            Ok(r) => r,
            Err(e @ UpstreamError::Timeout(t)) => {
                let (kind, _, told) = failed("upstream-timeout", &e, format!("{of} did not answer within {t:?}"));
                return Err((kind, true, told));
            }
            Err(e @ UpstreamError::WrongProvider { .. }) => {
                return Err(failed(
                    "wrong-provider",
                    &e,
                    format!("{of} did not prove to be {provider}'s provider"),
                ));
            }
            Err(e @ UpstreamError::Unreachable(_)) => return Err(failed("upstream-unreachable", &e, format!("{of} cannot be reached"))),
            Err(e @ UpstreamError::TooLarge(n)) => {
                return Err(failed("upstream-too-large", &e, format!("{of} sent more than {n} bytes")));
            }
            Err(e @ UpstreamError::Failed(_)) => return Err(failed("upstream-failed", &e, format!("{of} broke off its answer"))),
        };
        if !resp.status.is_success() {
            return Err(failed(
                "upstream-error",
                &resp.status,
                format!("{of} answered {}", resp.status.as_u16()),
            ));
        }
        let format = resp.content_type.as_deref().and_then(Format::from_media_type).ok_or_else(|| {
            let sent = resp.content_type.clone().unwrap_or_default();
            failed("bad-upstream-data", &sent, format!("{of} sent neither JSON nor CSV"))
        })?;
        Ok((format, resp.body))
    }

    /// The publisher's upload, decrypted.
    async fn hosted(&self, dataset: &Dataset) -> Result<(Format, Vec<u8>), (&'static str, bool, String)> {
        let store = self.hosted.clone();
        let (id, publisher) = (dataset.id.clone(), dataset.publisher.clone());
        match tokio::task::spawn_blocking(move || store.get(&id, &publisher)).await {
            Ok(Ok(Some(data))) => Ok(data),
            Ok(Ok(None)) => Err((
                "no-hosted-data",
                false,
                format!(
                    "dataset '{}' is hosted by the broker, but its provider has not uploaded data yet",
                    dataset.id
                ),
            )),
            Ok(Err(e)) => {
                tracing::error!(error = %e, dataset = %dataset.id, "hosted data cannot be read");
                Err((
                    "hosted-data-unreadable",
                    false,
                    format!("the hosted data of dataset '{}' cannot be read", dataset.id),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, dataset = %dataset.id, "hosted data cannot be read");
                Err((
                    "hosted-data-unreadable",
                    false,
                    format!("the hosted data of dataset '{}' cannot be read", dataset.id),
                ))
            }
        }
    }
}

/// Provider answers up to this size are enforced on the request's own thread; larger ones on the
/// blocking pool.
const INLINE_RELEASE_BYTES: usize = 256 * 1024;

/// The counting period (`YYYY-MM`) of a record's time.
fn key_period(time: &str) -> String {
    crate::usage::period_of(time).unwrap_or_default().to_owned()
}

/// Why a hosted upload was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("dataset '{0}' has no hosted distribution; the broker fetches it from its access URL")]
    NotHosted(DatasetId),
    #[error("the data cannot be read: {0}")]
    Unreadable(enforce::EnforceError),
    #[error(transparent)]
    Change(#[from] ChangeError<crate::hosted::HostedError>),
}

impl Exchange {
    /// The publisher's steward `steward` uploads `bytes` as the data of the hosted `dataset`:
    /// checked for readability, recorded, then sealed at rest bound to the dataset and its
    /// publisher. Whose steward may upload is the caller's check (the dataset's publisher).
    pub async fn upload(&self, steward: &Identity, dataset: &Dataset, format: Format, bytes: Vec<u8>) -> Result<usize, UploadError> {
        if !dataset.distributions.iter().any(|d| d.access_url == Access::Hosted) {
            return Err(UploadError::NotHosted(dataset.id.clone()));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(UploadError::Unreadable(enforce::EnforceError::Format {
                format: format.media_type(),
                reason: "the upload is empty".into(),
            }));
        }
        let records = enforce::count_records(format, &bytes).map_err(UploadError::Unreadable)?;
        let detail = serde_json::json!({ "records": records, "bytes": bytes.len(), "mediaType": format.media_type() });
        let record = AdminRecord::by(steward, "hosted-data-uploaded", dataset.id.as_str(), detail);
        let store = self.hosted.clone();
        let (id, publisher) = (dataset.id.clone(), dataset.publisher.clone());
        audited(&self.log, record, move || store.put(&id, &publisher, format, &bytes)).await?;
        self.forget(&dataset.id);
        // Withdrawn meanwhile (a race with the withdrawal): the upload goes with it.
        let (catalog, store, id) = (self.catalog.clone(), self.hosted.clone(), dataset.id.clone());
        let gone = tokio::task::spawn_blocking(move || match catalog.dataset(&id) {
            Ok(None) => store.remove(&id).map(|()| true),
            _ => Ok(false),
        })
        .await;
        if let Ok(Ok(true)) = gone {
            tracing::warn!(dataset = %dataset.id, "the dataset was withdrawn during its upload; the upload is deleted");
        }
        Ok(records)
    }
}
