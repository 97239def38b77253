//! The decision log: every decision on a data request, permit or deny, written durably before
//! any data is returned. If it cannot be written, the request fails (fail closed).
//!
//! A record says who asked for what, for which purpose, what was decided by which policy version
//! and module, and how much was delivered; it never holds a data value, only field names and
//! counts. Issue 5 turns this log into the hash-chained audit trail; the [`DecisionLog`] trait is
//! the seam (PostgreSQL for several replicas later).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::AppendFile;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub id: String,
    /// RFC 3339.
    pub time: String,
    pub consumer: String,
    pub consumer_role: String,
    pub consumer_serial: String,
    pub provider: String,
    pub dataset: String,
    pub purpose: String,
    pub action: String,
    /// `permit` or `deny`.
    pub decision: String,
    /// The constraints that failed (on deny), by uid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_constraints: Vec<String>,
    /// Why the decision could not be made normally (no policy, evaluation error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub policy_version: Option<u32>,
    pub module_hash: Option<String>,
    /// What happened after the decision: `delivered`, `denied`, `upstream-failed`, ...
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields_delivered: Vec<String>,
    pub records_in: Option<usize>,
    pub records_out: Option<usize>,
    pub bytes_out: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("the decision log cannot be written ({path}): {source}")]
pub struct LogError {
    path: String,
    source: std::io::Error,
}

/// Where decisions go. `append` returns only once the record is durable.
pub trait DecisionLog: Send + Sync {
    fn append(&self, record: &DecisionRecord) -> Result<(), LogError>;
    /// Every record, oldest first (for reports and tests).
    fn records(&self) -> Result<Vec<DecisionRecord>, LogError>;
}

/// JSON lines in one file, durable on return (group commit: one `fsync` per batch).
pub struct FileDecisionLog {
    path: PathBuf,
    file: AppendFile,
}

impl std::fmt::Debug for FileDecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDecisionLog").field("path", &self.path).finish()
    }
}

impl FileDecisionLog {
    /// The log at `path`; the file is opened (and created) on first append, so a log directory
    /// that is not writable fails the first request rather than the start.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: AppendFile::new(path),
        }
    }

    fn err(&self, source: std::io::Error) -> LogError {
        LogError {
            path: self.path.display().to_string(),
            source,
        }
    }
}

impl DecisionLog for FileDecisionLog {
    fn append(&self, record: &DecisionRecord) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(record).map_err(|e| self.err(e.into()))?;
        line.push(b'\n');
        self.file.append(&line).map_err(|e| self.err(e))
    }

    fn records(&self) -> Result<Vec<DecisionRecord>, LogError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| self.err(e.into())))
            .collect()
    }
}
