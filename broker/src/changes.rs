//! Administrative changes, recorded before they are made.
//!
//! **Architecture Invariant:** a change of the broker's state (members, datasets, policies and
//! their reviews, hosted uploads, pruning) is appended durably to the audit trail *before* it is
//! made; a change that then fails leaves an `<action>-aborted` record. So the trail never shows a
//! change that did not happen without saying so, and never misses one that did. A change the
//! trail cannot hold is not made at all (fail closed).
//!
//! This module is that rule, once, for every caller: the HTTP handlers, the start-up
//! reconciliation of members with the configuration, and the console.

use std::sync::Arc;

use crate::audit::{AdminRecord, AuditLog, Event, LogError};
use crate::identity::Identity;

/// Why an audited change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError<E: std::error::Error + 'static> {
    /// The trail could not take the record, so nothing was changed.
    #[error("the audit log cannot be written, so the change is not made: {0}")]
    NotRecorded(#[source] LogError),
    /// The change failed after it was recorded; an `-aborted` record says so.
    #[error(transparent)]
    Failed(E),
    /// The change could not be run (its thread was lost); an `-aborted` record says so.
    #[error("the change could not be run")]
    Lost,
}

impl AdminRecord {
    /// A change made by the holder of `identity`.
    pub fn by(identity: &Identity, action: &str, subject: impl Into<String>, detail: serde_json::Value) -> Self {
        Self {
            time: crate::audit::now_rfc3339(),
            actor: identity.ags.to_string(),
            actor_role: Some(identity.role.as_str().to_owned()),
            actor_serial: Some(identity.serial.clone()),
            action: action.to_owned(),
            subject: subject.into(),
            detail,
        }
    }

    fn aborted(&self, reason: String) -> Self {
        Self {
            time: crate::audit::now_rfc3339(),
            action: format!("{}-aborted", self.action),
            detail: serde_json::json!({ "reason": reason }),
            ..self.clone()
        }
    }
}

/// Records `record`, then runs `change` on a blocking thread; records `<action>-aborted` if it
/// fails. For async callers.
pub async fn audited<T, E>(
    log: &Arc<dyn AuditLog>,
    record: AdminRecord,
    change: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ChangeError<E>>
where
    T: Send + 'static,
    E: std::error::Error + Send + 'static,
{
    log.append_async(Event::Admin(record.clone()))
        .await
        .map_err(ChangeError::NotRecorded)?;
    let outcome = match tokio::task::spawn_blocking(change).await {
        Ok(Ok(v)) => return Ok(v),
        Ok(Err(e)) => (e.to_string(), ChangeError::Failed(e)),
        Err(e) => (e.to_string(), ChangeError::Lost),
    };
    if let Err(e) = log.append_async(Event::Admin(record.aborted(outcome.0))).await {
        abort_unrecorded(&record, &e);
    }
    Err(outcome.1)
}

/// [`audited`] for a caller on a thread that may block (start-up, the command line).
pub fn audited_blocking<T, E>(log: &dyn AuditLog, record: AdminRecord, change: impl FnOnce() -> Result<T, E>) -> Result<T, ChangeError<E>>
where
    E: std::error::Error + 'static,
{
    log.append(Event::Admin(record.clone())).map_err(ChangeError::NotRecorded)?;
    change().map_err(|e| {
        if let Err(log_error) = log.append(Event::Admin(record.aborted(e.to_string()))) {
            abort_unrecorded(&record, &log_error);
        }
        ChangeError::Failed(e)
    })
}

/// The change was recorded as intended and did not happen, and the trail cannot take the abort
/// record: it overstates, never understates. The operator learns of it here.
fn abort_unrecorded(record: &AdminRecord, e: &LogError) {
    tracing::error!(error = %e, action = %record.action, subject = %record.subject, "cannot record an aborted change");
}
