//! Reports for governance boards, provider cities and citizens, computed from the audit trail
//! (and, for the records of processing, the datasets' active policies).
//!
//! - [`usage`]: permits, denies and delivered volumes by dataset, consumer city, purpose and time
//!   bucket; what a board reviews.
//! - [`processing_records`]: the records of processing activities (DSGVO Art. 30) a provider
//!   city keeps for each shared dataset: purposes, recipients, data categories, retention,
//!   technical measures.
//! - [`transparency`]: for the public, which kinds of data went from which city to which for
//!   which purpose, counted, with every group smaller than the configured minimum suppressed.
//!
//! **Architecture Invariant:** reports are computed from decision records only, which hold
//! field names and counts, never data values; the public report holds no field names either.

use std::collections::{BTreeMap, BTreeSet};

use policy_compiler::ir::{Constraint, LeftOperand, Operand, Policy, RuleKind};
use serde::Serialize;

use crate::audit::DecisionRecord;
use crate::audit::export::Period;
use crate::catalog::Dataset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Month,
}

impl Bucket {
    /// The bucket of an RFC 3339 time: `2026-11-23` or `2026-11`.
    pub fn of(self, time: &str) -> String {
        let n = match self {
            Bucket::Day => 10,
            Bucket::Month => 7,
        };
        time.get(..n).unwrap_or(time).to_owned()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    pub bucket: String,
    pub dataset: String,
    pub provider: String,
    pub consumer: String,
    pub purpose: String,
    pub permits: u64,
    pub denies: u64,
    /// Permitted requests whose data was delivered.
    pub delivered: u64,
    pub records_delivered: u64,
    pub bytes_delivered: u64,
    /// The privacy budget spent (ε, in thousandths) by differentially private releases.
    pub epsilon_spent_milli: u64,
}

pub const USAGE_COLUMNS: [&str; 11] = [
    "bucket",
    "dataset",
    "provider",
    "consumer",
    "purpose",
    "permits",
    "denies",
    "delivered",
    "recordsDelivered",
    "bytesDelivered",
    "epsilonSpentMilli",
];

impl UsageRow {
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.bucket.clone(),
            self.dataset.clone(),
            self.provider.clone(),
            self.consumer.clone(),
            self.purpose.clone(),
            self.permits.to_string(),
            self.denies.to_string(),
            self.delivered.to_string(),
            self.records_delivered.to_string(),
            self.bytes_delivered.to_string(),
            self.epsilon_spent_milli.to_string(),
        ]
    }
}

/// Usage in `period` by bucket, dataset, consumer and purpose, of the decisions `visible`
/// admits (the reader's city as provider, or as consumer).
pub fn usage(records: &[DecisionRecord], period: &Period, bucket: Bucket, visible: impl Fn(&DecisionRecord) -> bool) -> Vec<UsageRow> {
    let mut rows: BTreeMap<(String, String, String, String), UsageRow> = BTreeMap::new();
    for r in records {
        if !period.contains(&r.time) || !visible(r) {
            continue;
        }
        let b = bucket.of(&r.time);
        let key = (b.clone(), r.dataset.clone(), r.consumer.clone(), r.purpose.clone());
        let row = rows.entry(key).or_insert_with(|| UsageRow {
            bucket: b,
            dataset: r.dataset.clone(),
            provider: r.provider.clone(),
            consumer: r.consumer.clone(),
            purpose: r.purpose.clone(),
            ..UsageRow::default()
        });
        if r.decision == "permit" {
            row.permits += 1;
        } else {
            row.denies += 1;
        }
        row.epsilon_spent_milli += u64::from(r.privacy_spent_milli.unwrap_or(0));
        if r.outcome == "delivered" {
            row.delivered += 1;
            row.records_delivered += r.records_out.unwrap_or(0) as u64;
            row.bytes_delivered += r.bytes_out.unwrap_or(0) as u64;
        }
    }
    rows.into_values().collect()
}

/// One processing activity (DSGVO Art. 30 (1)): a dataset a provider city shares through the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingRecord {
    pub controller: String,
    pub dataset: String,
    pub title: String,
    /// Art. 30 (1) b: the purposes the active policy permits.
    pub purposes: Vec<String>,
    /// Art. 30 (1) d: the municipalities that received data, and the purposes they declared.
    pub recipients: Vec<String>,
    /// Art. 30 (1) c: the categories of data (fields delivered, and the dataset's themes).
    pub data_categories: Vec<String>,
    /// Art. 30 (1) f: the deletion period the policy imposes on recipients.
    pub retention: Option<String>,
    /// Art. 30 (1) g: technical and organisational measures.
    pub technical_measures: Vec<String>,
    pub policy_version: Option<u32>,
    pub deliveries: u64,
}

fn purposes_of(c: &Constraint, out: &mut BTreeSet<String>) {
    match c {
        Constraint::Atomic {
            left: LeftOperand::Purpose,
            right,
            ..
        } => match right {
            Operand::Iri(i) => {
                out.insert(i.clone());
            }
            Operand::Iris(is) => out.extend(is.iter().cloned()),
            _ => {}
        },
        Constraint::Atomic { .. } => {}
        Constraint::And { operands, .. } | Constraint::Or { operands, .. } | Constraint::Xone { operands, .. } => {
            for o in operands {
                purposes_of(o, out);
            }
        }
    }
}

/// What the broker does, always, and what the policy's duties add.
fn measures(policy: &Policy) -> (Vec<String>, Option<String>) {
    let mut out: BTreeSet<String> = [
        "mutual TLS with certificates of the data space CA (TLS 1.2/1.3, BSI TR-02102-2 suites)",
        "every request decided by the dataset's approved, compiled usage policy",
        "hash-chained, signed audit trail of every decision",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut retention = None;
    for d in policy
        .rules
        .iter()
        .filter(|r| r.kind == RuleKind::Permission)
        .flat_map(|r| &r.duties)
    {
        let local = d.action.rsplit(['#', '/']).next().unwrap_or_default();
        match local {
            "minimise" => out.insert(format!("data minimisation to {}", d.fields.join(", "))),
            "pseudonymise" => out.insert(format!("keyed pseudonymisation of {}", d.fields.join(", "))),
            "generalise" => out.insert(format!("generalisation of {}", d.fields.join(", "))),
            "aggregate" => out.insert(format!(
                "aggregation by {} with groups under {} suppressed",
                d.group_by.join(", "),
                d.min_group_size.unwrap_or(0)
            )),
            "delete" => {
                retention.clone_from(&d.retention);
                false
            }
            _ => false,
        };
    }
    (out.into_iter().collect(), retention)
}

/// The records of processing of `datasets` (each with its active policy, if any), from the
/// decisions recorded in `period`.
pub fn processing_records(
    datasets: &[(Dataset, Option<(u32, Policy)>)],
    records: &[DecisionRecord],
    period: &Period,
) -> Vec<ProcessingRecord> {
    datasets
        .iter()
        .map(|(d, policy)| {
            let mine = || {
                records
                    .iter()
                    .filter(|r| r.dataset == d.id.as_str() && r.outcome == "delivered" && period.contains(&r.time))
            };
            let mut purposes = BTreeSet::new();
            let (technical_measures, retention) = match policy {
                Some((_, p)) => {
                    for r in p.rules.iter().filter(|r| r.kind == RuleKind::Permission) {
                        r.constraints.iter().for_each(|c| purposes_of(c, &mut purposes));
                    }
                    measures(p)
                }
                None => (vec!["not shared: no approved usage policy".to_owned()], None),
            };
            let recipients: BTreeSet<String> = mine().map(|r| format!("{} ({})", r.consumer, r.purpose)).collect();
            let mut categories: BTreeSet<String> = mine()
                .flat_map(|r| r.fields_delivered.iter().map(|f| format!("field {f}")))
                .collect();
            categories.extend(d.themes.iter().map(|t| format!("theme {t}")));
            ProcessingRecord {
                controller: d.publisher.to_string(),
                dataset: d.id.to_string(),
                title: d.title.values().next().cloned().unwrap_or_default(),
                purposes: purposes.into_iter().collect(),
                recipients: recipients.into_iter().collect(),
                data_categories: categories.into_iter().collect(),
                retention,
                technical_measures,
                policy_version: policy.as_ref().map(|(v, _)| *v),
                deliveries: mine().count() as u64,
            }
        })
        .collect()
}

/// One line of the public report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyRow {
    pub month: String,
    pub from_municipality: String,
    pub to_municipality: String,
    /// The kind of data: the dataset's DCAT-AP theme.
    pub kind_of_data: String,
    pub purpose: String,
    pub deliveries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyReport {
    /// Groups with fewer deliveries than this are not shown.
    pub minimum_group: u64,
    pub rows: Vec<TransparencyRow>,
    /// How many groups were left out for being small, and their deliveries together (shown
    /// only when that total itself reaches the minimum).
    pub suppressed_groups: u64,
    pub suppressed_deliveries: Option<u64>,
}

/// Deliveries by month, provider, consumer, kind of data (theme of the dataset, looked up with
/// `theme_of`) and purpose; groups under `minimum` suppressed.
pub fn transparency(records: &[DecisionRecord], theme_of: impl Fn(&str) -> String, minimum: u64) -> TransparencyReport {
    let mut groups: BTreeMap<(String, String, String, String, String), u64> = BTreeMap::new();
    for r in records.iter().filter(|r| r.outcome == "delivered") {
        let key = (
            Bucket::Month.of(&r.time),
            r.provider.clone(),
            r.consumer.clone(),
            theme_of(&r.dataset),
            r.purpose.clone(),
        );
        *groups.entry(key).or_default() += 1;
    }
    let mut report = TransparencyReport {
        minimum_group: minimum,
        rows: Vec::new(),
        suppressed_groups: 0,
        suppressed_deliveries: None,
    };
    let mut suppressed = 0;
    for ((month, from, to, kind, purpose), n) in groups {
        if n < minimum {
            report.suppressed_groups += 1;
            suppressed += n;
            continue;
        }
        report.rows.push(TransparencyRow {
            month,
            from_municipality: from,
            to_municipality: to,
            kind_of_data: kind,
            purpose,
            deliveries: n,
        });
    }
    report.suppressed_deliveries = Some(suppressed).filter(|s| *s >= minimum);
    report
}

/// Rows as CSV text.
pub fn csv(columns: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns)?;
    for r in rows {
        w.write_record(r.iter().map(|c| crate::spreadsheet::safe_cell(c).into_owned()))?;
    }
    let bytes = w.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
