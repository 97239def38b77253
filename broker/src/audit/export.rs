//! Exporting the records of a period: every record as JSON lines, or the decisions as CSV for a
//! spreadsheet.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{DecisionRecord, Entry, Event};

pub use super::file::read_entries;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("'{value}' is neither an RFC 3339 time (2026-11-01T08:00:00Z) nor a date (2026-11-01)")]
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
        let t = |v: Option<&str>| v.map(instant).transpose();
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

/// An RFC 3339 time, or a date meaning its midnight UTC.
fn instant(s: &str) -> Result<OffsetDateTime, ExportError> {
    let date = time::macros::format_description!("[year]-[month]-[day]");
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::Date::parse(s, &date).map(|d| d.midnight().assume_utc()))
        .map_err(|_| ExportError::Time { value: s.to_owned() })
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
            let rows = in_period.filter_map(|e| match &e.event {
                Event::Decision(d) => Some(decision_row(e.seq, d)),
                _ => None,
            });
            Ok(crate::reports::csv(&DECISION_COLUMNS, rows)?)
        }
        other => Err(ExportError::Format(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::Period;

    #[test]
    fn a_period_takes_dates_as_midnight_utc_and_excludes_its_end() {
        let p = Period::parse(Some("2026-11-01"), Some("2026-11-02")).expect("dates");
        assert!(p.contains("2026-11-01T00:00:00Z"));
        assert!(p.contains("2026-11-01T23:30:00+00:00"));
        assert!(!p.contains("2026-11-02T00:00:00Z"));
        assert!(!p.contains("2026-10-31T23:59:59Z"));
        // 00:30 in Berlin (UTC+1) is still the 31st in UTC.
        assert!(!p.contains("2026-11-01T00:30:00+01:00"));
    }

    #[test]
    fn a_period_names_a_malformed_end() {
        let err = Period::parse(Some("2026-11-01"), Some("01.12.2026")).expect_err("German date format");
        assert!(err.to_string().contains("'01.12.2026'"), "{err}");
    }
}
