//! Exporting the records of a period: every record as JSON lines, or the decisions as CSV for a
//! spreadsheet.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{DecisionRecord, Entry, Event};

pub use super::file::read_entries;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("'{value}' is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)")]
    Time { value: String },
    #[error("unknown export format '{0}' (jsonl, csv)")]
    Format(String),
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot encode: {0}")]
    Json(#[from] serde_json::Error),
}

/// A half-open period `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Period {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

impl Period {
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, ExportError> {
        let t = |v: Option<&str>| {
            v.map(|s| OffsetDateTime::parse(s, &Rfc3339).map_err(|_| ExportError::Time { value: s.to_owned() }))
                .transpose()
        };
        Ok(Self {
            from: t(from)?,
            to: t(to)?,
        })
    }

    /// Whether the RFC 3339 time `t` lies in the period (an unreadable time does not).
    pub fn contains(&self, t: &str) -> bool {
        let Ok(t) = OffsetDateTime::parse(t, &Rfc3339) else {
            return false;
        };
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

pub fn entry_time(e: &Entry) -> &str {
    match &e.event {
        Event::Decision(d) => &d.time,
        Event::Admin(a) => &a.time,
        Event::Checkpoint(s) | Event::Anchor(s) => &s.time,
    }
}

pub const DECISION_COLUMNS: [&str; 17] = [
    "seq",
    "id",
    "time",
    "consumer",
    "consumerRole",
    "provider",
    "dataset",
    "purpose",
    "action",
    "decision",
    "outcome",
    "policyVersion",
    "moduleHash",
    "failedConstraints",
    "fieldsDelivered",
    "recordsOut",
    "bytesOut",
];

fn decision_row(seq: u64, d: &DecisionRecord) -> Vec<String> {
    let opt = |v: Option<usize>| v.map(|n| n.to_string()).unwrap_or_default();
    vec![
        seq.to_string(),
        d.id.clone(),
        d.time.clone(),
        d.consumer.clone(),
        d.consumer_role.clone(),
        d.provider.clone(),
        d.dataset.clone(),
        d.purpose.clone(),
        d.action.clone(),
        d.decision.clone(),
        d.outcome.clone(),
        d.policy_version.map(|v| v.to_string()).unwrap_or_default(),
        d.module_hash.clone().unwrap_or_default(),
        d.failed_constraints.join(" "),
        d.fields_delivered.join(" "),
        opt(d.records_out),
        opt(d.bytes_out),
    ]
}

/// The records of `period` in `format` (`jsonl`: every record; `csv`: the decisions).
pub fn export(entries: &[Entry], period: &Period, format: &str) -> Result<String, ExportError> {
    let in_period = entries.iter().filter(|e| period.contains(entry_time(e)));
    match format {
        "jsonl" => {
            let mut out = String::new();
            for e in in_period {
                out.push_str(&serde_json::to_string(e)?);
                out.push('\n');
            }
            Ok(out)
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(DECISION_COLUMNS)?;
            for e in in_period {
                if let Event::Decision(d) = &e.event {
                    w.write_record(decision_row(e.seq, d))?;
                }
            }
            let bytes = w.into_inner().map_err(|e| ExportError::Csv(e.into_error().into()))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        other => Err(ExportError::Format(other.to_owned())),
    }
}
