//! Reports for governance boards, provider cities and citizens, read from a [`Tally`]: counts
//! per day, dataset, provider, consumer and purpose, kept up to date as decision records are
//! written and rebuilt from the audit trail when the broker starts. A report costs what the
//! number of such cells costs, the same with a thousand decisions or ten million; nobody can
//! make the broker read its whole trail by asking for a report (issue 18).
//!
//! - [`usage`]: permits, denies and delivered volumes by dataset, consumer city, purpose and time
//!   bucket; what a board reviews.
//! - [`processing_records`]: the records of processing activities (DSGVO Art. 30) a provider
//!   city keeps for each shared dataset: purposes, recipients, data categories, retention,
//!   technical measures.
//! - [`transparency`]: for the public, which kinds of data went from which city to which for
//!   which purpose, counted, with every group smaller than the configured minimum suppressed.
//!
//! **Architecture Invariant:** reports are computed from decision records only (the tally is
//! their sum, rebuilt from the trail at start), which hold field names and counts, never data
//! values; the public report holds no field names either. Periods are whole days (UTC): a day is
//! in a period if its first instant is.

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
    #[serde(flatten)]
    pub volumes: Volumes,
}

/// What decisions add up to: the counters of a tally cell and of a usage row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volumes {
    pub permits: u64,
    pub denies: u64,
    /// Permitted requests whose data was delivered.
    pub delivered: u64,
    pub records_delivered: u64,
    pub bytes_delivered: u64,
    /// The privacy budget spent (ε, in thousandths) by differentially private releases.
    pub epsilon_spent_milli: u64,
}

impl Volumes {
    fn add(&mut self, other: &Volumes) {
        self.permits += other.permits;
        self.denies += other.denies;
        self.delivered += other.delivered;
        self.records_delivered += other.records_delivered;
        self.bytes_delivered += other.bytes_delivered;
        self.epsilon_spent_milli += other.epsilon_spent_milli;
    }
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
        let v = &self.volumes;
        vec![
            self.bucket.clone(),
            self.dataset.clone(),
            self.provider.clone(),
            self.consumer.clone(),
            self.purpose.clone(),
            v.permits.to_string(),
            v.denies.to_string(),
            v.delivered.to_string(),
            v.records_delivered.to_string(),
            v.bytes_delivered.to_string(),
            v.epsilon_spent_milli.to_string(),
        ]
    }
}

/// One cell of the tally: a day's decisions on one dataset by one consumer for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub dataset: String,
    pub provider: String,
    pub consumer: String,
    pub purpose: String,
}

/// What a cell counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub volumes: Volumes,
    /// The fields delivered (names, for the records of processing).
    pub fields: BTreeSet<String>,
    /// Denials by [`denial_reason`].
    pub denials: BTreeMap<String, u64>,
}

/// Why a decision record was a denial, as a bounded key (never the free text of a reason,
/// which may name a request's details): `constraint:` and the failed constraints' local names,
/// `no-permission`, `evaluation-error` or `not-shared`; `None` for a permit.
pub fn denial_reason(r: &DecisionRecord) -> Option<String> {
    if r.decision == "permit" {
        return None;
    }
    Some(if !r.failed_constraints.is_empty() {
        let names: Vec<&str> = r
            .failed_constraints
            .iter()
            .map(|c| c.rsplit(['#', '/']).next().unwrap_or(c))
            .collect();
        format!("constraint:{}", names.join(" + "))
    } else if r.policy_version.is_none() {
        "not-shared".to_owned()
    } else if r.reason.is_some() {
        "evaluation-error".to_owned()
    } else {
        "no-permission".to_owned()
    })
}

/// The counts every report is read from, per [`Cell`]; see the module documentation.
#[derive(Debug, Default)]
pub struct Tally {
    cells: std::sync::Mutex<BTreeMap<Cell, Counts>>,
    /// The same counts by Berlin month, provider, consumer and purpose (datasets folded in):
    /// the console's usage page reads a year of these, a few hundred at most, instead of every
    /// day's cell of every dataset.
    months: std::sync::Mutex<BTreeMap<MonthCell, MonthCounts>>,
    /// Deliveries by (year, dataset): the console's records of processing read a page of
    /// datasets' years from here, not every day's cell.
    years: std::sync::Mutex<BTreeMap<(String, String), Deliveries>>,
}

/// The deliveries of a dataset: how many to whom for what, and which fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// (consumer, purpose) → deliveries.
    pub to: BTreeMap<(String, String), u64>,
    pub fields: BTreeSet<String>,
}

impl Deliveries {
    fn add(&mut self, consumer: &str, purpose: &str, delivered: u64, fields: &BTreeSet<String>) {
        *self.to.entry((consumer.to_owned(), purpose.to_owned())).or_default() += delivered;
        self.fields.extend(fields.iter().cloned());
    }
}

/// A month's decisions between two cities for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonthCell {
    /// `YYYY-MM`, in Berlin local time.
    pub month: String,
    pub provider: String,
    pub consumer: String,
    pub purpose: String,
}

/// What a month cell counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthCounts {
    pub volumes: Volumes,
    pub denials: BTreeMap<String, u64>,
}

/// What one decision record adds to the tally, taken from it before it is written.
#[derive(Debug)]
pub struct TallyEntry {
    cell: Cell,
    month: Option<String>,
    add: Counts,
}

impl Tally {
    /// Adds one decision record (for each record of the trail at start).
    pub fn add(&self, r: &DecisionRecord) {
        if let Some(entry) = Self::entry(r) {
            self.apply(entry);
        }
    }

    /// What `r` adds (`None` for a record without a readable time).
    pub fn entry(r: &DecisionRecord) -> Option<TallyEntry> {
        let day = r.time.get(..10)?;
        let delivered = r.outcome == "delivered";
        let permit = r.decision == "permit";
        Some(TallyEntry {
            month: crate::german::berlin_month(&r.time),
            cell: Cell {
                day: day.to_owned(),
                dataset: r.dataset.clone(),
                provider: r.provider.clone(),
                consumer: r.consumer.clone(),
                purpose: r.purpose.clone(),
            },
            add: Counts {
                volumes: Volumes {
                    permits: u64::from(permit),
                    denies: u64::from(!permit),
                    delivered: u64::from(delivered),
                    records_delivered: if delivered { r.records_out.unwrap_or(0) as u64 } else { 0 },
                    bytes_delivered: if delivered { r.bytes_out.unwrap_or(0) as u64 } else { 0 },
                    epsilon_spent_milli: u64::from(r.privacy_spent_milli.unwrap_or(0)),
                },
                fields: if delivered {
                    r.fields_delivered.iter().cloned().collect()
                } else {
                    BTreeSet::new()
                },
                denials: denial_reason(r).map(|k| (k, 1)).into_iter().collect(),
            },
        })
    }

    /// Adds an entry (once its record is durable).
    pub fn apply(&self, TallyEntry { cell, month, add }: TallyEntry) {
        if add.volumes.delivered > 0 {
            let year = cell.day.get(..4).unwrap_or_default().to_owned();
            let mut years = self.years.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            years
                .entry((year, cell.dataset.clone()))
                .or_default()
                .add(&cell.consumer, &cell.purpose, add.volumes.delivered, &add.fields);
        }
        if let Some(month) = month {
            let key = MonthCell {
                month,
                provider: cell.provider.clone(),
                consumer: cell.consumer.clone(),
                purpose: cell.purpose.clone(),
            };
            let mut months = self.months.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let m = months.entry(key).or_default();
            m.volumes.add(&add.volumes);
            for (reason, n) in &add.denials {
                *m.denials.entry(reason.clone()).or_default() += n;
            }
        }
        let mut cells = self.lock();
        let c = cells.entry(cell).or_default();
        c.volumes.add(&add.volumes);
        c.fields.extend(add.fields);
        for (reason, n) in add.denials {
            *c.denials.entry(reason).or_default() += n;
        }
    }

    /// What `dataset` delivered in `year` (`YYYY`, by UTC day).
    pub fn deliveries_in_year(&self, year: &str, dataset: &str) -> Deliveries {
        self.years
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(year.to_owned(), dataset.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Every decision tallied (since the oldest record the trail keeps), summed: what the
    /// metrics report as counters. A pass over the month cells, a few hundred a year.
    pub fn totals(&self) -> Volumes {
        let mut out = Volumes::default();
        for counts in self.months.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values() {
            out.add(&counts.volumes);
        }
        out
    }

    /// The month cells from `first` to `last` (`YYYY-MM`, inclusive) that `keep` admits.
    pub fn months_where(&self, first: &str, last: &str, keep: impl Fn(&MonthCell) -> bool) -> Vec<(MonthCell, MonthCounts)> {
        self.months
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(c, _)| c.month.as_str() >= first && c.month.as_str() <= last && keep(c))
            .map(|(c, n)| (c.clone(), n.clone()))
            .collect()
    }

    /// The cells of `period` that `keep` admits, with their counts.
    fn cells_where(&self, period: &Period, keep: impl Fn(&Cell) -> bool) -> Vec<(Cell, Counts)> {
        self.lock()
            .iter()
            .filter(|(cell, _)| keep(cell) && period.contains(&format!("{}T00:00:00Z", cell.day)))
            .map(|(cell, counts)| (cell.clone(), counts.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Cell, Counts>> {
        self.cells.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many cells the tally holds (what a report's cost grows with).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Usage in `period` by bucket, dataset, consumer and purpose, of the cells `visible` admits
/// (the reader's city as provider, or as consumer).
pub fn usage(tally: &Tally, period: &Period, bucket: Bucket, visible: impl Fn(&Cell) -> bool) -> Vec<UsageRow> {
    let mut rows: BTreeMap<(String, String, String, String), UsageRow> = BTreeMap::new();
    for (cell, c) in tally.cells_where(period, visible) {
        let b = bucket.of(&cell.day);
        let key = (b.clone(), cell.dataset.clone(), cell.consumer.clone(), cell.purpose.clone());
        let row = rows.entry(key).or_insert_with(|| UsageRow {
            bucket: b,
            dataset: cell.dataset,
            provider: cell.provider,
            consumer: cell.consumer,
            purpose: cell.purpose,
            ..UsageRow::default()
        });
        row.volumes.add(&c.volumes);
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
    /// The same measures in German (the console's printable records).
    #[serde(skip)]
    pub technical_measures_de: Vec<String>,
    /// The recipients as (municipality, purpose), for pages that name them.
    #[serde(skip)]
    pub recipient_pairs: Vec<(String, String)>,
    /// The fields delivered and the dataset's theme codes, apart.
    #[serde(skip)]
    pub fields: Vec<String>,
    #[serde(skip)]
    pub themes: Vec<String>,
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

/// What the broker does, always, and what the policy's duties add, in English (`de`: German).
fn measures(policy: &Policy, de: bool) -> (Vec<String>, Option<String>) {
    let always: [&str; 3] = if de {
        [
            "gegenseitiges TLS mit Zertifikaten der Datenraum-CA (TLS 1.2/1.3, Verfahren nach BSI TR-02102-2)",
            "jede Anfrage entschieden von der freigegebenen, kompilierten Nutzungsrichtlinie des Datensatzes",
            "verkettetes, signiertes Protokoll jeder Entscheidung",
        ]
    } else {
        [
            "mutual TLS with certificates of the data space CA (TLS 1.2/1.3, BSI TR-02102-2 suites)",
            "every request decided by the dataset's approved, compiled usage policy",
            "hash-chained, signed audit trail of every decision",
        ]
    };
    let mut out: BTreeSet<String> = always.into_iter().map(str::to_owned).collect();
    let mut retention = None;
    for d in policy
        .rules
        .iter()
        .filter(|r| r.kind == RuleKind::Permission)
        .flat_map(|r| &r.duties)
    {
        let local = d.action.rsplit(['#', '/']).next().unwrap_or_default();
        let fields = d.fields.join(", ");
        let measure = match (local, de) {
            ("minimise", false) => format!("data minimisation to {fields}"),
            ("minimise", true) => format!("Datenminimierung auf {fields}"),
            ("pseudonymise", false) => format!("keyed pseudonymisation of {fields}"),
            ("pseudonymise", true) => format!("Pseudonymisierung mit Schlüssel: {fields}"),
            ("generalise", false) => format!("generalisation of {fields}"),
            ("generalise", true) => format!("Vergröberung von {fields}"),
            ("aggregate", false) => format!(
                "aggregation by {} with groups under {} suppressed",
                d.group_by.join(", "),
                d.min_group_size.unwrap_or(0)
            ),
            ("aggregate", true) => format!(
                "Zusammenfassung nach {}, Gruppen unter {} unterdrückt",
                d.group_by.join(", "),
                d.min_group_size.unwrap_or(0)
            ),
            ("delete", _) => {
                retention.clone_from(&d.retention);
                continue;
            }
            _ => continue,
        };
        out.insert(measure);
    }
    (out.into_iter().collect(), retention)
}

/// The records of processing of `datasets` (each with its active policy, if any), from the
/// deliveries tallied in `period`.
pub fn processing_records(datasets: &[(Dataset, Option<(u32, Policy)>)], tally: &Tally, period: &Period) -> Vec<ProcessingRecord> {
    // One pass over the tally for all the datasets (not one per dataset: a city has hundreds).
    let wanted: BTreeSet<&str> = datasets.iter().map(|(d, _)| d.id.as_str()).collect();
    let mut by_dataset: BTreeMap<String, Deliveries> = BTreeMap::new();
    for (cell, counts) in tally.cells_where(period, |c| wanted.contains(c.dataset.as_str())) {
        if counts.volumes.delivered > 0 {
            by_dataset.entry(cell.dataset.clone()).or_default().add(
                &cell.consumer,
                &cell.purpose,
                counts.volumes.delivered,
                &counts.fields,
            );
        }
    }
    let none = Deliveries::default();
    datasets
        .iter()
        .map(|(d, policy)| record_of(d, policy.as_ref(), by_dataset.get(d.id.as_str()).unwrap_or(&none)))
        .collect()
}

/// The records of processing of `datasets` in `year` (`YYYY`), from the tally's yearly
/// deliveries: as many lookups as datasets, whatever the trail's length.
pub fn processing_records_in_year(datasets: &[(Dataset, Option<(u32, Policy)>)], tally: &Tally, year: &str) -> Vec<ProcessingRecord> {
    datasets
        .iter()
        .map(|(d, policy)| record_of(d, policy.as_ref(), &tally.deliveries_in_year(year, d.id.as_str())))
        .collect()
}

/// One dataset's record of processing from its policy and its deliveries.
fn record_of(d: &Dataset, policy: Option<&(u32, Policy)>, deliveries: &Deliveries) -> ProcessingRecord {
    let mut purposes = BTreeSet::new();
    let (technical_measures, technical_measures_de, retention) = match policy {
        Some((_, p)) => {
            for r in p.rules.iter().filter(|r| r.kind == RuleKind::Permission) {
                r.constraints.iter().for_each(|c| purposes_of(c, &mut purposes));
            }
            let (en, retention) = measures(p, false);
            (en, measures(p, true).0, retention)
        }
        None => (
            vec!["not shared: no approved usage policy".to_owned()],
            vec!["nicht freigegeben: keine Nutzungsrichtlinie in Kraft".to_owned()],
            None,
        ),
    };
    let recipients: Vec<String> = deliveries.to.keys().map(|(c, p)| format!("{c} ({p})")).collect();
    let mut categories: BTreeSet<String> = deliveries.fields.iter().map(|f| format!("field {f}")).collect();
    categories.extend(d.themes.iter().map(|t| format!("theme {t}")));
    ProcessingRecord {
        technical_measures_de,
        recipient_pairs: deliveries.to.keys().cloned().collect(),
        fields: deliveries.fields.iter().cloned().collect(),
        themes: d.themes.clone(),
        controller: d.publisher.to_string(),
        dataset: d.id.to_string(),
        title: d.title.values().next().cloned().unwrap_or_default(),
        purposes: purposes.into_iter().collect(),
        recipients,
        data_categories: categories.into_iter().collect(),
        retention,
        technical_measures,
        policy_version: policy.map(|(v, _)| *v),
        deliveries: deliveries.to.values().sum(),
    }
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
    /// How many groups were left out for being small (their deliveries are not summed: a
    /// board could subtract its own small groups from a sum and read another city's).
    pub suppressed_groups: u64,
}

/// Deliveries by month, provider, consumer, kind of data (theme of the dataset, looked up with
/// `theme_of`) and purpose; groups under `minimum` suppressed.
pub fn transparency(tally: &Tally, theme_of: impl Fn(&str) -> String, minimum: u64) -> TransparencyReport {
    let mut groups: BTreeMap<(String, String, String, String, String), u64> = BTreeMap::new();
    for (cell, c) in tally.cells_where(&Period::default(), |_| true) {
        if c.volumes.delivered == 0 {
            continue;
        }
        let key = (
            Bucket::Month.of(&cell.day),
            cell.provider,
            cell.consumer,
            theme_of(&cell.dataset),
            cell.purpose,
        );
        *groups.entry(key).or_default() += c.volumes.delivered;
    }
    let mut report = TransparencyReport {
        minimum_group: minimum,
        rows: Vec::new(),
        suppressed_groups: 0,
    };
    for ((month, from, to, kind, purpose), n) in groups {
        if n < minimum {
            report.suppressed_groups += 1;
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
    report
}

/// The field names delivered from `dataset` (decision records name fields, never values): what
/// the policy workbench offers a steward.
pub fn fields_of(tally: &Tally, dataset: &str) -> BTreeSet<String> {
    // From the yearly deliveries (fields are recorded only for deliveries): a few entries per
    // dataset, not every day's cell of every dataset.
    tally
        .years
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|((_, d), _)| d == dataset)
        .flat_map(|(_, deliveries)| deliveries.fields.iter().cloned())
        .collect()
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
