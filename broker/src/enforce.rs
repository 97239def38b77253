//! Enforcing a decision's duties on the data in flight: the records a provider sent are reduced to
//! what the policy allows before any byte reaches the consumer.
//!
//! Steps run in a fixed order whatever order the policy lists them in: keep only the permitted
//! (and requested) fields, pseudonymise, generalise, then aggregate with small-group suppression.
//! Aggregation last means nothing it drops can leak through an earlier step; minimisation first
//! means later steps never see a field the consumer may not have.
//!
//! Pseudonyms are HMAC-SHA256 under a key derived from the broker's secret and the (provider,
//! consumer, purpose) triple: the same person gets the same pseudonym within one purpose, and
//! pseudonyms of different purposes or consumers cannot be linked without the broker's secret.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use ring::hmac;
use serde::{Deserialize, de};
use serde_json::{Map, Value};
use time::{Date, Month};

use crate::hex::encode as hex;

/// One record: field name -> value.
pub type Record = Map<String, Value>;

pub use policy_compiler::ir::Granularity;

/// A duty as the decision document carries it (see `policies/README.md`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Duty {
    pub uid: String,
    pub action: String,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub group_by: Vec<String>,
    pub min_group_size: Option<u32>,
    pub granularity: Option<Granularity>,
    pub retention: Option<String>,
    pub informed_party: Option<String>,
    pub epsilon_milli: Option<u32>,
    pub budget_milli: Option<u32>,
}

use crate::ns::{KDR_ODRL as KDR, ODRL};

/// The duties the broker carries out. Anything else is refused when a policy is submitted
/// (`crate::policy`) and, should one reach a decision anyway, fails the request: a duty is
/// never silently skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DutyKind {
    /// `kdr:minimise`: only the listed fields leave.
    Minimise,
    /// `kdr:pseudonymise`: the listed fields are replaced by keyed pseudonyms.
    Pseudonymise,
    /// `kdr:generalise`: dates and ages coarsened.
    Generalise,
    /// `odrl:aggregate`: counts per group, small groups suppressed.
    Aggregate,
    /// `odrl:delete`: the consumer's duty to delete after `kdr:retention`, carried to it in the
    /// usage terms of every response (`X-Usage-Terms`) and recorded with the decision.
    Delete,
    /// `kdr:addNoise`: the aggregate's counts get differentially private noise (ε per release,
    /// a budget per consumer, purpose and month; `crate::privacy`).
    AddNoise,
}

impl DutyKind {
    pub const ALL: [DutyKind; 6] = [
        Self::Minimise,
        Self::Pseudonymise,
        Self::Generalise,
        Self::Aggregate,
        Self::Delete,
        Self::AddNoise,
    ];

    /// The duty action's IRI.
    pub fn iri(self) -> String {
        match self {
            Self::Minimise | Self::Pseudonymise | Self::Generalise | Self::AddNoise => format!("{KDR}{}", self.local()),
            Self::Aggregate | Self::Delete => format!("{ODRL}{}", self.local()),
        }
    }

    /// The action as a prefixed name (`kdr:minimise`, `odrl:aggregate`).
    pub fn term(self) -> &'static str {
        match self {
            Self::Minimise => "kdr:minimise",
            Self::Pseudonymise => "kdr:pseudonymise",
            Self::Generalise => "kdr:generalise",
            Self::Aggregate => "odrl:aggregate",
            Self::Delete => "odrl:delete",
            Self::AddNoise => "kdr:addNoise",
        }
    }

    fn local(self) -> &'static str {
        self.term().split(':').nth(1).unwrap_or_default()
    }

    /// The kind of a duty action IRI, if the broker carries it out.
    pub fn of(action: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| {
            let (ns, local) = match k {
                Self::Minimise | Self::Pseudonymise | Self::Generalise | Self::AddNoise => (KDR, k.local()),
                Self::Aggregate | Self::Delete => (ODRL, k.local()),
            };
            action.strip_prefix(ns) == Some(local)
        })
    }
}

/// What the broker does to the data, read from the duties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// `None`: every field may pass (no minimise duty).
    pub keep: Option<BTreeSet<String>>,
    pub pseudonymise: BTreeSet<String>,
    pub generalise: BTreeMap<String, Granularity>,
    /// (group-by fields, minimum group size).
    pub aggregate: Option<(Vec<String>, u32)>,
    /// `xsd:duration` the consumer must delete the data after.
    pub retention: Option<String>,
    /// Of an aggregated release, the columns the consumer asked for (`fields=`): dropped from
    /// the groups *after* they are formed and suppressed, never before. The policy fixes the
    /// grouping; a consumer who could change it could merge a suppressed group into a
    /// delivered one and read its size off the difference.
    pub deliver: Option<BTreeSet<String>>,
    /// The aggregate's noise: (ε per release, budget per month), in thousandths.
    pub noise: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnforceError {
    #[error("the decision's duties cannot be read: {0}")]
    Duties(String),
    #[error("the data is not {format}: {reason}")]
    Format { format: &'static str, reason: String },
    #[error("the data holds more than {0} records, the most one release reads")]
    TooManyRecords(usize),
    #[error("the data has more than {MAX_FIELDS} distinct fields, or a field name longer than {MAX_FIELD_NAME} bytes")]
    TooManyFields,
    #[error("the aggregate has more than {MAX_GROUPS} groups, the most one release forms")]
    TooManyGroups,
}

impl Plan {
    /// The plan for `duties`, narrowed to the `requested` fields if the consumer named any.
    /// Several duties of one kind combine to the strictest: minimise lists intersect, the
    /// largest minimum group size wins.
    pub fn from_duties(duties: &[Duty], requested: Option<&[String]>) -> Result<Self, EnforceError> {
        let mut plan = Plan::default();
        for d in duties {
            let kind = DutyKind::of(&d.action)
                .ok_or_else(|| EnforceError::Duties(format!("the broker cannot carry out the duty <{}> ({})", d.action, d.uid)))?;
            match kind {
                DutyKind::Minimise => {
                    let fields: BTreeSet<String> = d.fields.iter().cloned().collect();
                    plan.keep = Some(match plan.keep.take() {
                        Some(k) => k.intersection(&fields).cloned().collect(),
                        None => fields,
                    });
                }
                DutyKind::Pseudonymise => plan.pseudonymise.extend(d.fields.iter().cloned()),
                DutyKind::Generalise => {
                    let g = d
                        .granularity
                        .ok_or_else(|| EnforceError::Duties(format!("{} has no granularity", d.uid)))?;
                    for f in &d.fields {
                        plan.generalise.insert(f.clone(), g);
                    }
                }
                DutyKind::Aggregate => {
                    let n = d
                        .min_group_size
                        .ok_or_else(|| EnforceError::Duties(format!("{} has no minimum group size", d.uid)))?;
                    let strictest = plan.aggregate.as_ref().map_or(n, |(_, m)| n.max(*m));
                    plan.aggregate = Some((d.group_by.clone(), strictest));
                }
                DutyKind::Delete => plan.retention = d.retention.clone(),
                DutyKind::AddNoise => {
                    let (Some(e), Some(b)) = (d.epsilon_milli, d.budget_milli) else {
                        return Err(EnforceError::Duties(format!("{} has no epsilon or budget", d.uid)));
                    };
                    // Several: the smallest ε per release (the most noise) and the smallest budget.
                    plan.noise = Some(plan.noise.map_or((e, b), |(pe, pb)| (pe.min(e), pb.min(b))));
                }
            }
        }
        if plan.noise.is_some() && plan.aggregate.is_none() {
            return Err(EnforceError::Duties(
                "kdr:addNoise applies to an aggregate, and there is none".into(),
            ));
        }
        if let Some(req) = requested {
            plan = plan.narrowed(req);
        }
        Ok(plan)
    }

    /// This plan, delivering only the `requested` fields of those it keeps. Without
    /// aggregation the other fields are skipped unread; with it, the groups are formed and
    /// suppressed as the policy says and only then lose the columns not asked for.
    pub fn narrowed(&self, requested: &[String]) -> Self {
        let req: BTreeSet<String> = requested.iter().cloned().collect();
        if self.aggregate.is_some() {
            return Self {
                deliver: Some(req),
                ..self.clone()
            };
        }
        let keep = match &self.keep {
            Some(k) => k.intersection(&req).cloned().collect(),
            None => req,
        };
        Self {
            keep: Some(keep),
            ..self.clone()
        }
    }
}

/// The key pseudonyms of one (provider, consumer, purpose) are made with.
pub fn pseudonym_key(secret: &[u8], provider: &str, consumer: &str, purpose: &str) -> hmac::Key {
    let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let context = format!("kdr-pseudonym-v1\0{provider}\0{consumer}\0{purpose}");
    let derived = hmac::sign(&master, context.as_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

fn pseudonym(key: &hmac::Key, v: &Value) -> Value {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => return Value::Null,
        other => other.to_string(),
    };
    let tag = hmac::sign(key, text.as_bytes());
    Value::String(format!("ps-{}", hex(tag.as_ref().get(..16).unwrap_or_default())))
}

/// Applies the plan to records already read. `today` anchors age bands computed from birth dates.
pub fn apply(plan: &Plan, records: Vec<Record>, key: &hmac::Key, today: Date) -> Vec<Record> {
    let mut run = Enforcer::new(plan, Some(key), today);
    for record in records {
        for (name, value) in record {
            if let Some(rule) = run.rule(&name) {
                run.field(Cow::Owned(name), rule, value);
            }
        }
        run.end_record();
    }
    run.finish().records
}

/// Reads the provider's bytes and applies the plan while reading: a field the consumer may not
/// have is skipped unread, and when the plan aggregates, records are never built, only their
/// groups. Returns the records delivered and how many were read.
/// `key` makes the pseudonyms; without one, a field to be pseudonymised is delivered as null.
pub fn enforce(plan: &Plan, format: Format, bytes: &[u8], key: Option<&hmac::Key>, today: Date) -> Result<Enforced, EnforceError> {
    let mut run = Enforcer::new(plan, key, today);
    read_into(format, bytes, &mut run)?;
    Ok(run.finish())
}

/// At most this many records are read from one provider answer or upload: enough for any
/// dataset a municipality shares through an API, and a bound on the work one request can cause.
pub const MAX_RECORDS: usize = 2_000_000;

/// At most this many distinct field names, each at most [`MAX_FIELD_NAME`] bytes, in one
/// release or upload: a table has columns, not a million of them (sparse records with ever new
/// keys would make a CSV of keys × rows cells, and every name goes into the decision record).
pub const MAX_FIELDS: usize = 512;
pub const MAX_FIELD_NAME: usize = 256;

/// At most this many groups in one aggregate: secondary suppression looks at each of them once
/// per field and pass.
pub const MAX_GROUPS: usize = 200_000;

/// What a release is: the bytes to send and what the decision record says of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub body: Vec<u8>,
    /// The field names delivered, sorted.
    pub fields: Vec<String>,
    pub records_in: usize,
    pub records_out: usize,
}

/// [`enforce`], writing the result in `out` as it goes: a record is written when it is read and
/// never kept as values, so a release holds its input, its output and one record at a time,
/// whatever the size of the data (CSV output is written from the JSON once the columns are
/// known). What a large upload or answer costs in memory is a small multiple of its size.
pub fn release(
    plan: &Plan,
    format: Format,
    bytes: &[u8],
    key: Option<&hmac::Key>,
    today: Date,
    out: Format,
) -> Result<Release, EnforceError> {
    let mut run = Enforcer::new(plan, key, today);
    run.stream();
    read_into(format, bytes, &mut run)?;
    let records_in = run.records_in;
    let (records, streamed) = run.finish_streamed();
    if let Some(Streamed { json, fields, count }) = streamed {
        let body = match out {
            Format::Json => json,
            Format::Csv => json_to_csv(&json, &fields)?,
        };
        return Ok(Release {
            body,
            fields: fields.into_iter().collect(),
            records_in,
            records_out: count,
        });
    }
    let fields: BTreeSet<&String> = records.iter().flat_map(|r| r.keys()).collect();
    Ok(Release {
        body: write(out, &records)?,
        fields: fields.into_iter().cloned().collect(),
        records_in,
        records_out: records.len(),
    })
}

/// How many records `bytes` hold, checked against the limits a release applies (an upload's
/// check: what cannot be released is not taken).
pub fn count_records(format: Format, bytes: &[u8]) -> Result<usize, EnforceError> {
    let plan = Plan::default();
    let mut run = Enforcer::new(&plan, None, Date::MIN);
    run.discard();
    read_into(format, bytes, &mut run)?;
    Ok(run.records_in)
}

/// The CSV of a JSON array of records written by [`release`], one record in memory at a time.
fn json_to_csv(json: &[u8], columns: &BTreeSet<String>) -> Result<Vec<u8>, EnforceError> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(json.len()));
    let bad = |reason: String| EnforceError::Format { format: "CSV", reason };
    w.write_record(columns.iter().map(|c| crate::spreadsheet::safe_cell(c).into_owned()))
        .map_err(|e| bad(csv_reason(&e)))?;
    let mut de = serde_json::Deserializer::from_slice(json);
    de::DeserializeSeed::deserialize(json::CsvRows { w: &mut w, columns }, &mut de).map_err(|e| bad(json_reason(&e)))?;
    w.into_inner().map_err(|e| bad(e.to_string()))
}

/// What [`enforce`] delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforced {
    pub records: Vec<Record>,
    /// Records the provider sent.
    pub records_in: usize,
}

/// Where finished records go.
enum Sink {
    /// Kept as values ([`enforce`], [`apply`], [`read`]).
    Collect(Vec<Record>),
    /// Written at once into one JSON array ([`release`]).
    Json(Streamed),
    /// Only counted, their field names checked ([`count_records`]).
    Names(BTreeSet<String>),
}

/// Records written as they ended.
struct Streamed {
    /// `[` and the records so far, comma-separated (closed by `finish_streamed`).
    json: Vec<u8>,
    fields: BTreeSet<String>,
    count: usize,
}

/// Adds the record's field names to `fields`; `false` if one is longer than [`MAX_FIELD_NAME`].
fn note_names(fields: &mut BTreeSet<String>, record: &Record) -> bool {
    for k in record.keys() {
        if k.len() > MAX_FIELD_NAME {
            return false;
        }
        if !fields.contains(k) {
            fields.insert(k.clone());
        }
    }
    true
}

/// What happens to one field's values.
#[derive(Debug, Clone, Copy, Default)]
struct Rule {
    pseudonymise: bool,
    generalise: Option<Granularity>,
    /// Its position among the group-by fields, when the plan aggregates.
    group: Option<usize>,
}

impl Rule {
    /// Pseudonymises, then generalises. Without a key a pseudonymised value becomes null.
    fn shape(self, value: Value, key: Option<&hmac::Key>, today: Date) -> Value {
        let value = match (self.pseudonymise, key) {
            (false, _) => value,
            (true, Some(key)) => pseudonym(key, &value),
            (true, None) => Value::Null,
        };
        match self.generalise {
            Some(g) => generalise(&value, g, today),
            None => value,
        }
    }
}

/// A plan at work on records as they are read, one field at a time: the reader asks [`Enforcer::rule`]
/// for each field name (and skips the field unread if there is none), hands over the value, and
/// ends each record. The order of the steps is the one the module documentation gives.
struct Enforcer<'p> {
    /// Fields with a rule; with a minimise duty, exactly the kept ones.
    rules: Vec<(&'p str, Rule)>,
    /// Without a minimise duty, fields without a rule pass unchanged.
    pass_others: bool,
    key: Option<&'p hmac::Key>,
    today: Date,
    records_in: usize,
    /// A field name longer than [`MAX_FIELD_NAME`] was seen.
    overlong: bool,
    out: Out<'p>,
}

enum Out<'p> {
    Records {
        current: Record,
        sink: Sink,
    },
    Groups {
        /// The group-by fields (each once) and the current record's values of them, as JSON
        /// text (empty: not in the record). Text, not `Value`s: a record's values are only
        /// compared, and become `Value`s once per group.
        fields: Vec<&'p str>,
        slots: Vec<Vec<u8>>,
        min: u32,
        /// Group sizes keyed by the JSON of the values, one per line (JSON text has no raw
        /// newline, so keys cannot run into each other), which orders groups as the values'
        /// texts would. The values become `Value`s only for the groups delivered.
        groups: BTreeMap<Vec<u8>, u32>,
        key: Vec<u8>,
        /// The columns to deliver (all, if `None`); `count` always.
        deliver: Option<&'p BTreeSet<String>>,
        /// ε (thousandths) of the noise added to each count before suppression.
        noise: Option<u32>,
    },
}

impl<'p> Enforcer<'p> {
    fn new(plan: &'p Plan, key: Option<&'p hmac::Key>, today: Date) -> Self {
        let mut group_fields: Vec<&str> = Vec::new();
        if let Some((group_by, _)) = &plan.aggregate {
            for f in group_by {
                if !group_fields.contains(&f.as_str()) {
                    group_fields.push(f);
                }
            }
        }
        let named: BTreeSet<&str> = match &plan.keep {
            Some(keep) => keep.iter().map(String::as_str).collect(),
            None => plan
                .pseudonymise
                .iter()
                .chain(plan.generalise.keys())
                .map(String::as_str)
                .chain(group_fields.iter().copied())
                .collect(),
        };
        // An aggregating plan delivers nothing but the groups: other fields are skipped unread.
        let aggregating = plan.aggregate.is_some();
        let rules = named
            .into_iter()
            .filter(|name| !aggregating || group_fields.contains(name))
            .map(|name| {
                let rule = Rule {
                    pseudonymise: plan.pseudonymise.contains(name),
                    generalise: plan.generalise.get(name).copied(),
                    group: group_fields.iter().position(|g| *g == name),
                };
                (name, rule)
            })
            .collect();
        let out = match &plan.aggregate {
            Some((_, min)) => Out::Groups {
                slots: vec![Vec::new(); group_fields.len()],
                fields: group_fields,
                min: *min,
                groups: BTreeMap::new(),
                key: Vec::new(),
                deliver: plan.deliver.as_ref(),
                noise: plan.noise.map(|(e, _)| e),
            },
            None => Out::Records {
                current: Record::new(),
                sink: Sink::Collect(Vec::new()),
            },
        };
        Self {
            rules,
            pass_others: plan.keep.is_none() && !aggregating,
            key,
            today,
            records_in: 0,
            overlong: false,
            out,
        }
    }

    /// Writes records out as they end instead of keeping them ([`release`]).
    fn stream(&mut self) {
        if let Out::Records { sink, .. } = &mut self.out {
            *sink = Sink::Json(Streamed {
                json: b"[".to_vec(),
                fields: BTreeSet::new(),
                count: 0,
            });
        }
    }

    /// Only counts records and checks their field names ([`count_records`]).
    fn discard(&mut self) {
        if let Out::Records { sink, .. } = &mut self.out {
            *sink = Sink::Names(BTreeSet::new());
        }
    }

    /// The limit the data broke, if it broke one (checked by the readers after each record).
    fn broken(&self) -> Option<EnforceError> {
        if self.records_in > MAX_RECORDS {
            return Some(EnforceError::TooManyRecords(MAX_RECORDS));
        }
        if self.overlong {
            return Some(EnforceError::TooManyFields);
        }
        match &self.out {
            Out::Records {
                sink: Sink::Json(Streamed { fields, .. }) | Sink::Names(fields),
                ..
            } if fields.len() > MAX_FIELDS => Some(EnforceError::TooManyFields),
            Out::Groups { groups, .. } if groups.len() > MAX_GROUPS => Some(EnforceError::TooManyGroups),
            _ => None,
        }
    }

    /// What to do with a field, or `None` to drop it.
    fn rule(&self, name: &str) -> Option<Rule> {
        match self.rules.iter().find(|(n, _)| *n == name) {
            Some((_, rule)) => Some(*rule),
            None => self.pass_others.then(Rule::default),
        }
    }

    fn field(&mut self, name: Cow<'_, str>, rule: Rule, value: Value) {
        let value = rule.shape(value, self.key, self.today);
        match &mut self.out {
            Out::Records { current, .. } => {
                current.insert(name.into_owned(), value);
            }
            Out::Groups { slots, .. } => {
                if let Some(slot) = rule.group.and_then(|i| slots.get_mut(i)) {
                    slot.clear();
                    // Writing a `Value` into a Vec cannot fail.
                    let _ = serde_json::to_writer(slot, &value);
                }
            }
        }
    }

    /// The slot a text value of a field with `rule` goes to without becoming a `Value` first:
    /// a group-by field that is not pseudonymised (the pseudonym is made from the `Value`).
    fn text_slot(&self, rule: Rule) -> Option<usize> {
        match &self.out {
            Out::Groups { .. } if !rule.pseudonymise => rule.group,
            _ => None,
        }
    }

    /// What [`Self::field`] does to a text value in the group-by slot `i`, the text borrowed.
    fn group_text(&mut self, i: usize, rule: Rule, text: &str) {
        let Out::Groups { slots, .. } = &mut self.out else {
            return;
        };
        let Some(slot) = slots.get_mut(i) else {
            return;
        };
        slot.clear();
        match rule.generalise {
            None => push_json_text(slot, text),
            Some(g) => match generalise_text(text, g, self.today) {
                Some(coarse) => push_json_text(slot, &coarse),
                None => slot.extend_from_slice(b"null"),
            },
        }
    }

    fn end_record(&mut self) {
        self.records_in += 1;
        match &mut self.out {
            Out::Records { current, sink } => match sink {
                Sink::Collect(done) => done.push(std::mem::take(current)),
                Sink::Json(s) => {
                    if s.count > 0 {
                        s.json.push(b',');
                    }
                    // Writing a map of `Value`s into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut s.json, &*current);
                    self.overlong |= !note_names(&mut s.fields, current);
                    s.count += 1;
                    current.clear();
                }
                Sink::Names(fields) => {
                    self.overlong |= !note_names(fields, current);
                    current.clear();
                }
            },
            Out::Groups { slots, groups, key, .. } => {
                key.clear();
                for slot in slots.iter() {
                    // A missing field counts as null, as it is delivered.
                    key.extend_from_slice(if slot.is_empty() { b"null" } else { slot });
                    key.push(b'\n');
                }
                match groups.get_mut(key.as_slice()) {
                    Some(n) => *n += 1,
                    None => {
                        groups.insert(key.clone(), 1);
                    }
                }
                slots.iter_mut().for_each(Vec::clear);
            }
        }
    }

    /// The records to deliver; with aggregation, one per group that survives suppression
    /// ([`suppress`]), with its size as `count`, and only the columns asked for.
    fn finish(self) -> Enforced {
        let records_in = self.records_in;
        let (records, streamed) = self.finish_streamed();
        debug_assert!(streamed.is_none(), "finish is for enforcers that keep their records");
        Enforced { records, records_in }
    }

    /// The records kept (or the groups), and what was streamed, its JSON array closed.
    fn finish_streamed(self) -> (Vec<Record>, Option<Streamed>) {
        let records = match self.out {
            Out::Records { sink, .. } => match sink {
                Sink::Collect(done) => done,
                Sink::Json(mut s) => {
                    s.json.push(b']');
                    return (Vec::new(), Some(s));
                }
                Sink::Names(_) => Vec::new(),
            },
            Out::Groups {
                fields,
                min,
                groups,
                deliver,
                noise,
                ..
            } => {
                // Noise first (each count its own draw), then suppression on the noisy counts: a
                // noisy count below the minimum is never shown, and suppression stays
                // post-processing of the private counts.
                let cells: Vec<(Vec<u8>, u32)> = groups
                    .into_iter()
                    .map(|(k, n)| match noise {
                        Some(e) => {
                            let noisy = crate::privacy::noisy_count(u64::from(n), e, &mut rand::rng());
                            (k, u32::try_from(noisy.max(0)).unwrap_or(u32::MAX))
                        }
                        None => (k, n),
                    })
                    .collect();
                let shown = suppress(&cells, fields.len(), min);
                cells
                    .into_iter()
                    .zip(shown)
                    .filter(|(_, shown)| *shown)
                    .map(|((key, n), _)| {
                        // The key holds JSON this enforcer wrote, a line per field; null is only
                        // a formality.
                        let values = key.split(|b| *b == b'\n').map(|v| serde_json::from_slice(v).unwrap_or(Value::Null));
                        let mut group: Record = fields
                            .iter()
                            .map(|f| (*f).to_owned())
                            .zip(values)
                            .filter(|(f, _)| deliver.is_none_or(|d| d.contains(f)))
                            .collect();
                        group.insert("count".into(), Value::from(n));
                        group
                    })
                    .collect()
            }
        };
        (records, None)
    }
}

/// Which cells of an aggregated table are shown: primary suppression hides every cell under
/// `min`; secondary suppression then makes sure no hidden cell can be recovered by subtraction.
///
/// The table has one dimension per group-by field; a *line* is the set of cells that agree on
/// every field but one (what a marginal total adds up, and the whole table for one field). A
/// line with exactly one hidden cell gives that cell away to anyone who knows the line's total
/// (from a population statistic, another release, last month's table): so its smallest shown
/// cell is hidden too, and this is repeated until every line hides none or at least two. This
/// is the rule statistical offices apply to published tables (e.g. in τ-ARGUS's hypercube
/// method); it does not protect against differencing *between* releases of a changing dataset,
/// which is what the differential-privacy duty is for.
///
/// `cells` are (key, count), the key one line of JSON per dimension.
fn suppress(cells: &[(Vec<u8>, u32)], dimensions: usize, min: u32) -> Vec<bool> {
    let mut shown: Vec<bool> = cells.iter().map(|(_, n)| *n >= min).collect();
    let parts: Vec<Vec<&[u8]>> = cells.iter().map(|(k, _)| k.split(|b| *b == b'\n').collect()).collect();
    // Each pass hides at least one more cell. Real tables settle in a few passes; one that has
    // not after `MAX_PASSES` (a provider's data made to chain suppressions) is not delivered at all.
    const MAX_PASSES: usize = 64;
    for _ in 0..MAX_PASSES {
        let mut changed = false;
        for d in 0..dimensions {
            // Cells by their line along dimension `d`: the key without its `d`th part.
            let mut lines: BTreeMap<Vec<&[u8]>, Vec<usize>> = BTreeMap::new();
            for (i, p) in parts.iter().enumerate() {
                let line: Vec<&[u8]> = p.iter().enumerate().filter(|(j, _)| *j != d).map(|(_, v)| *v).collect();
                lines.entry(line).or_default().push(i);
            }
            for members in lines.values() {
                let hidden = members.iter().filter(|i| !shown[**i]).count();
                if hidden == 1
                    && let Some(smallest) = members.iter().copied().filter(|i| shown[*i]).min_by_key(|i| cells[*i].1)
                {
                    shown[smallest] = false;
                    changed = true;
                }
            }
        }
        if !changed {
            return shown;
        }
    }
    vec![false; cells.len()]
}

/// Coarsens one value; what cannot be read becomes null rather than passing unchanged.
pub fn generalise(v: &Value, g: Granularity, today: Date) -> Value {
    let coarse = match v {
        Value::String(s) => generalise_text(s, g, today),
        Value::Number(n) => n.as_f64().and_then(|age| band(age, g)).map(Cow::Borrowed),
        _ => None,
    };
    coarse.map_or(Value::Null, |c| Value::String(c.into_owned()))
}

/// The coarse form of a text: a date's month or year (a prefix of the text, so borrowed), or
/// the age band of a birth date or of an age written as text.
fn generalise_text(text: &str, g: Granularity, today: Date) -> Option<Cow<'_, str>> {
    match (g, parse_date(text)) {
        // A date read here starts with `YYYY-MM-DD`, which makes these its month and year.
        (Granularity::Month, Some(_)) => text.get(..7).map(Cow::Borrowed),
        (Granularity::Year, Some(_)) => text.get(..4).map(Cow::Borrowed),
        (Granularity::AgeBand5 | Granularity::AgeBand10, Some(birth)) => band(f64::from(age_on(birth, today)), g).map(Cow::Borrowed),
        (Granularity::AgeBand5 | Granularity::AgeBand10, None) => {
            text.trim().parse::<f64>().ok().and_then(|age| band(age, g)).map(Cow::Borrowed)
        }
        _ => None,
    }
}

/// Age bands for ages 0 to 149, five and ten years wide: written out once, not formatted per
/// value.
const BANDS_5: [&str; 30] = [
    "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-59", "60-64", "65-69", "70-74",
    "75-79", "80-84", "85-89", "90-94", "95-99", "100-104", "105-109", "110-114", "115-119", "120-124", "125-129", "130-134", "135-139",
    "140-144", "145-149",
];
const BANDS_10: [&str; 15] = [
    "0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90-99", "100-109", "110-119", "120-129", "130-139",
    "140-149",
];

fn band(age: f64, g: Granularity) -> Option<&'static str> {
    if !(0.0..150.0).contains(&age) {
        return None;
    }
    // Ages are small non-negative numbers here (checked above).
    let years = age as usize;
    match g {
        Granularity::AgeBand5 => BANDS_5.get(years / 5).copied(),
        _ => BANDS_10.get(years / 10).copied(),
    }
}

/// Appends `text` as a JSON string: as it is between quotes when nothing in it needs escaping
/// (text read from JSON without escapes, dates, bands), else escaped by serde_json.
fn push_json_text(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(out, text);
    }
}

/// `YYYY-MM-DD` (four, two and two digits), optionally followed by a time (`T...` or ` ...`).
fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| {
        b.get(from..to)?
            .iter()
            .try_fold(0u16, |n, c| c.is_ascii_digit().then(|| n * 10 + u16::from(c - b'0')))
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), None | Some(b'T' | b' ')) {
        return None;
    }
    let (y, m, d) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    Date::from_calendar_date(i32::from(y), Month::try_from(u8::try_from(m).ok()?).ok()?, u8::try_from(d).ok()?).ok()
}

fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// The wire formats records travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv",
        }
    }

    pub fn from_media_type(m: &str) -> Option<Self> {
        match m.split(';').next().map(str::trim) {
            Some("application/json") => Some(Format::Json),
            Some("text/csv") => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Reads records: a JSON array of objects, or CSV with a header row (values stay strings).
pub fn read(format: Format, bytes: &[u8]) -> Result<Vec<Record>, EnforceError> {
    read_kept(format, bytes, None)
}

/// Like [`read`], keeping only the fields in `keep` (all if `None`): a field the consumer may
/// not have is skipped while parsing, never copied.
pub fn read_kept(format: Format, bytes: &[u8], keep: Option<&BTreeSet<String>>) -> Result<Vec<Record>, EnforceError> {
    let plan = Plan {
        keep: keep.cloned(),
        ..Plan::default()
    };
    let mut run = Enforcer::new(&plan, None, Date::MIN);
    read_into(format, bytes, &mut run)?;
    Ok(run.finish().records)
}

fn read_into(format: Format, bytes: &[u8], run: &mut Enforcer<'_>) -> Result<(), EnforceError> {
    match format {
        Format::Json => {
            let bad = |reason: String| EnforceError::Format {
                format: "a JSON array of objects",
                reason,
            };
            // JSON is UTF-8 (RFC 8259); checked once for the whole text, not per string.
            let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 after byte {}", e.valid_up_to())))?;
            let mut de = serde_json::Deserializer::from_str(text);
            let read = de::DeserializeSeed::deserialize(json::Records(run), &mut de).and_then(|()| de.end());
            if let Some(broken) = run.broken() {
                return Err(broken);
            }
            read.map_err(|e| bad(json_reason(&e)))
        }
        Format::Csv => {
            let bad = |e: csv::Error| EnforceError::Format {
                format: "CSV with a header row",
                reason: csv_reason(&e),
            };
            let mut reader = csv::Reader::from_reader(bytes);
            let headers = reader.headers().map_err(bad)?.clone();
            if headers.len() > MAX_FIELDS || headers.iter().any(|h| h.len() > MAX_FIELD_NAME) {
                return Err(EnforceError::TooManyFields);
            }
            let rules: Vec<Option<Rule>> = headers.iter().map(|h| run.rule(h)).collect();
            let mut row = csv::StringRecord::new();
            while reader.read_record(&mut row).map_err(bad)? {
                for ((name, value), rule) in headers.iter().zip(row.iter()).zip(&rules) {
                    if let Some(rule) = rule {
                        run.field(Cow::Borrowed(name), *rule, Value::String(value.to_owned()));
                    }
                }
                run.end_record();
                if let Some(broken) = run.broken() {
                    return Err(broken);
                }
            }
            Ok(())
        }
    }
}

/// Where and how JSON broke, never what it held: serde's messages quote the offending value
/// (`invalid type: string "Erika"`), and an error detail or a decision record must not carry
/// data.
fn json_reason(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "a value of the wrong kind (records must be objects of strings, numbers, booleans or nulls)",
        serde_json::error::Category::Eof => "the JSON ends too early",
        serde_json::error::Category::Io => "the JSON cannot be read",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}

/// Where and how CSV broke, never what it held.
fn csv_reason(e: &csv::Error) -> String {
    let at = e.position().map(|p| format!(" at line {}", p.line())).unwrap_or_default();
    let what = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("a row has {len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "text that is not UTF-8".to_owned(),
        _ => "malformed CSV".to_owned(),
    };
    format!("{what}{at}")
}

/// Streaming deserialisation of a JSON array of records into an [`Enforcer`], skipping the
/// fields it drops unread.
mod json {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    use super::Enforcer;

    pub struct Records<'r, 'p>(pub &'r mut Enforcer<'p>);

    impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Records<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(One(&mut *self.0))?.is_some() {
                if self.0.broken().is_some() {
                    return Err(de::Error::custom("a limit of the release"));
                }
            }
            Ok(())
        }
    }

    struct One<'r, 'p>(&'r mut Enforcer<'p>);

    impl<'de> DeserializeSeed<'de> for One<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for One<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object (one record)")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(Key(name)) = map.next_key()? {
                let Some(rule) = self.0.rule(&name) else {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                };
                match self.0.text_slot(rule) {
                    Some(i) => match map.next_value::<Plain<'de>>()? {
                        Plain::Text(text) => self.0.group_text(i, rule, text),
                        Plain::Other(value) => self.0.field(name, rule, value),
                    },
                    None => {
                        let value = map.next_value::<Value>()?;
                        self.0.field(name, rule, value);
                    }
                }
            }
            self.0.end_record();
            Ok(())
        }
    }

    /// A field's value: text borrowed from the input where it had no escapes, else a `Value`.
    enum Plain<'de> {
        Text(&'de str),
        Other(Value),
    }

    impl<'de> de::Deserialize<'de> for Plain<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(PlainVisitor)
        }
    }

    struct PlainVisitor;

    impl<'de> Visitor<'de> for PlainVisitor {
        type Value = Plain<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Plain::Text(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Plain::Other(Value::String(v.to_owned())))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Plain::Other(Value::Bool(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Plain::Other(Value::from(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Plain::Other(Value::from(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Plain::Other(Value::from(v)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Plain::Other(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Plain::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map)).map(Plain::Other)
        }
    }

    /// A JSON array of records written out as CSV rows with the given columns, one at a time.
    pub struct CsvRows<'w, 'c> {
        pub w: &'w mut csv::Writer<Vec<u8>>,
        pub columns: &'c std::collections::BTreeSet<String>,
    }

    impl<'de> DeserializeSeed<'de> for CsvRows<'_, '_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for CsvRows<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(record) = seq.next_element::<super::Record>()? {
                let cells = self.columns.iter().map(|c| super::cell(record.get(c)));
                self.w.write_record(cells).map_err(de::Error::custom)?;
            }
            Ok(())
        }
    }

    /// A field name, borrowed from the input unless it had escapes.
    struct Key<'de>(Cow<'de, str>);

    impl<'de> de::Deserialize<'de> for Key<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(KeyVisitor)
        }
    }

    struct KeyVisitor;

    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = Key<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a field name")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Key(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Key(Cow::Owned(v.to_owned())))
        }
    }
}

/// A value as a CSV cell: text as it is (made safe for spreadsheets), null as empty, anything
/// else as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => crate::spreadsheet::safe_cell(s).into_owned(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Writes records in `format`; CSV columns are the union of the records' fields, sorted.
pub fn write(format: Format, records: &[Record]) -> Result<Vec<u8>, EnforceError> {
    match format {
        Format::Json => serde_json::to_vec(records).map_err(|e| EnforceError::Format {
            format: "JSON",
            reason: e.to_string(),
        }),
        Format::Csv => {
            let bad = |e: csv::Error| EnforceError::Format {
                format: "CSV",
                reason: e.to_string(),
            };
            let columns: BTreeSet<&String> = records.iter().flat_map(|r| r.keys()).collect();
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(columns.iter().map(|c| crate::spreadsheet::safe_cell(c).into_owned()))
                .map_err(bad)?;
            for r in records {
                w.write_record(columns.iter().map(|c| cell(r.get(*c)))).map_err(bad)?;
            }
            w.into_inner().map_err(|e| EnforceError::Format {
                format: "CSV",
                reason: e.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    fn duty(v: Value) -> Duty {
        serde_json::from_value(v).expect("duty")
    }

    fn rec(v: Value) -> Record {
        v.as_object().expect("object").clone()
    }

    /// Aggregates `rows` of (bezirk, diagnose) by `group_by`, minimum 5, delivering `fields`.
    fn aggregated(rows: &[(&str, &str, usize)], group_by: &[&str], fields: Option<&[&str]>) -> Vec<Record> {
        let data: Vec<Value> = rows
            .iter()
            .flat_map(|(b, d, n)| std::iter::repeat_n(json!({"name": "x", "bezirk": b, "diagnose": d}), *n))
            .collect();
        let agg = duty(json!({"uid": "a", "action": format!("{ODRL}aggregate"), "groupBy": group_by, "minGroupSize": 5}));
        let requested: Option<Vec<String>> = fields.map(|f| f.iter().map(|s| (*s).to_owned()).collect());
        let plan = Plan::from_duties(&[agg], requested.as_deref()).expect("plan");
        let bytes = serde_json::to_vec(&data).expect("json");
        enforce(&plan, Format::Json, &bytes, None, date!(2026 - 12 - 02))
            .expect("enforce")
            .records
    }

    fn counts(records: &[Record]) -> Vec<u64> {
        let mut c: Vec<u64> = records.iter().filter_map(|r| r["count"].as_u64()).collect();
        c.sort_unstable();
        c
    }

    #[test]
    fn sparse_records_with_ever_new_field_names_are_refused_not_multiplied() {
        let plan = Plan::default();
        let today = date!(2026 - 12 - 02);
        let sparse: Vec<Value> = (0..=MAX_FIELDS).map(|i| json!({ format!("k{i}"): 1 })).collect();
        let bytes = serde_json::to_vec(&sparse).expect("json");
        for out in [Format::Json, Format::Csv] {
            assert_eq!(
                release(&plan, Format::Json, &bytes, None, today, out),
                Err(EnforceError::TooManyFields)
            );
        }
        assert_eq!(
            count_records(Format::Json, &bytes),
            Err(EnforceError::TooManyFields),
            "an upload too"
        );
        let long = serde_json::to_vec(&json!([{ "x".repeat(MAX_FIELD_NAME + 1): 1 }])).expect("json");
        assert_eq!(count_records(Format::Json, &long), Err(EnforceError::TooManyFields));
        let wide_csv = format!("{}\n", (0..=MAX_FIELDS).map(|i| format!("c{i}")).collect::<Vec<_>>().join(","));
        assert_eq!(count_records(Format::Csv, wide_csv.as_bytes()), Err(EnforceError::TooManyFields));
        // Within the limits, fine.
        let ok: Vec<Value> = (0..MAX_FIELDS).map(|i| json!({ format!("k{i}"): 1 })).collect();
        let released = release(
            &plan,
            Format::Json,
            &serde_json::to_vec(&ok).expect("json"),
            None,
            today,
            Format::Csv,
        )
        .expect("release");
        assert_eq!(released.fields.len(), MAX_FIELDS);
    }

    #[test]
    fn fields_cannot_merge_a_suppressed_group_into_a_delivered_one() {
        // Groups of 7, 5 and 4 (suppressed); the 5 goes too, or 16 - 7 - 5 would give the 4.
        let rows = [
            ("Innenstadt", "Grippe", 7),
            ("Unterkochen", "Grippe", 5),
            ("Wasseralfingen", "Grippe", 4),
        ];
        let normal = aggregated(&rows, &["bezirk"], None);
        assert_eq!(counts(&normal), vec![7]);
        for fields in [&[][..], &["count"][..], &["diagnose"][..], &["bezirk"][..]] {
            let narrowed = aggregated(&rows, &["bezirk"], Some(fields));
            assert_eq!(counts(&narrowed), vec![7], "fields={fields:?} regrouped the release: {narrowed:?}");
            for r in &narrowed {
                assert!(r.keys().all(|k| k == "count" || fields.contains(&k.as_str())), "{r:?}");
            }
        }
    }

    #[test]
    fn a_hidden_diagnosis_cannot_be_recovered_from_its_districts_other_cells() {
        // 6 x (Innenstadt, Grippe), 1 x (Innenstadt, HIV), 5 x (Hofherrnweiler, Grippe): whoever
        // knows how many Innenstadt residents are in the table reads the HIV case off
        // Innenstadt/Grippe, and whoever knows the Grippe total reads Innenstadt/Grippe off
        // Hofherrnweiler. Secondary suppression hides all three.
        let rows = [
            ("Innenstadt", "Grippe", 6),
            ("Innenstadt", "HIV", 1),
            ("Hofherrnweiler", "Grippe", 5),
        ];
        assert_eq!(aggregated(&rows, &["bezirk", "diagnose"], None), Vec::<Record>::new());
        assert_eq!(aggregated(&rows, &["bezirk", "diagnose"], Some(&["bezirk"])), Vec::<Record>::new());
        // A larger table keeps some cells, never the two that give the HIV case away.
        let rows = [
            ("Innenstadt", "Grippe", 6),
            ("Innenstadt", "HIV", 1),
            ("Hofherrnweiler", "Grippe", 5),
            ("Unterkochen", "Grippe", 9),
            ("Unterkochen", "HIV", 8),
        ];
        let shown = aggregated(&rows, &["bezirk", "diagnose"], None);
        let cell = |b: &str, d: &str| {
            shown
                .iter()
                .find(|r| r["bezirk"] == b && r["diagnose"] == d)
                .map(|r| r["count"].clone())
        };
        assert_eq!(cell("Innenstadt", "HIV"), None);
        assert_eq!(
            cell("Innenstadt", "Grippe"),
            None,
            "the HIV case's district line hides a second cell"
        );
        assert_eq!(cell("Unterkochen", "HIV"), None, "the HIV column hides a second cell");
        assert!(!shown.is_empty(), "the table is not emptied for nothing: {shown:?}");
    }

    #[test]
    fn every_line_of_the_table_hides_none_or_at_least_two_cells() {
        // A property over many small tables: after suppression no line (cells agreeing on all
        // fields but one) has exactly one hidden cell, and no shown cell is under the minimum.
        let districts = ["A", "B", "C", "D"];
        let diagnoses = ["x", "y", "z"];
        for seed in 0u64..300 {
            let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut rows = Vec::new();
            for b in districts {
                for d in diagnoses {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let n = ((state >> 33) % 12) as usize;
                    if n > 0 {
                        rows.push((b, d, n));
                    }
                }
            }
            let shown = aggregated(&rows, &["bezirk", "diagnose"], None);
            let is_shown = |b: &str, d: &str| shown.iter().any(|r| r["bezirk"] == b && r["diagnose"] == d);
            assert!(shown.iter().all(|r| r["count"].as_u64().is_some_and(|n| n >= 5)));
            let present = |b: &str, d: &str| rows.iter().any(|(rb, rd, _)| *rb == b && *rd == d);
            // A line that shows cells must hide none or at least two; a line of hidden cells
            // only gives nothing away that its own total would not.
            let check = |line: Vec<(&str, &str)>, what: String| {
                let present: Vec<_> = line.into_iter().filter(|(b, d)| present(b, d)).collect();
                let hidden = present.iter().filter(|(b, d)| !is_shown(b, d)).count();
                let visible = present.len() - hidden;
                assert!(
                    !(hidden == 1 && visible > 0),
                    "seed {seed}: {what} hides one cell: {rows:?} -> {shown:?}"
                );
            };
            for b in districts {
                check(diagnoses.iter().map(|d| (b, *d)).collect(), format!("district {b}"));
            }
            for d in diagnoses {
                check(districts.iter().map(|b| (*b, d)).collect(), format!("diagnosis {d}"));
            }
        }
    }

    fn key(purpose: &str) -> hmac::Key {
        pseudonym_key(b"broker secret", "08136088", "08135019", purpose)
    }

    fn appointments(district_sizes: &[(&str, usize)]) -> Vec<Record> {
        let mut out = Vec::new();
        for (district, n) in district_sizes {
            for i in 0..*n {
                out.push(rec(json!({
                    "name": format!("Person {district} {i}"),
                    "geburtsdatum": "1984-07-15",
                    "bezirk": district,
                    "termin": "2026-10-14T09:30:00",
                })));
            }
        }
        out
    }

    #[test]
    fn groups_smaller_than_the_minimum_are_suppressed() {
        let plan = Plan::from_duties(
            &[duty(
                json!({"uid": "d", "action": format!("{ODRL}aggregate"), "groupBy": ["bezirk"], "minGroupSize": 5}),
            )],
            None,
        )
        .expect("plan");
        let out = apply(
            &plan,
            // Two small groups: neither can be read off the total and the others.
            appointments(&[("Mitte", 7), ("Nord", 4), ("Ost", 3), ("Süd", 5)]),
            &key("p"),
            date!(2026 - 11 - 23),
        );
        assert_eq!(
            out,
            vec![
                rec(json!({"bezirk": "Mitte", "count": 7})),
                rec(json!({"bezirk": "Süd", "count": 5}))
            ]
        );
    }

    #[test]
    fn minimise_keeps_only_listed_and_requested_fields() {
        let d = duty(json!({"uid": "d", "action": format!("{KDR}minimise"), "fields": ["bezirk", "termin"]}));
        let plan = Plan::from_duties(std::slice::from_ref(&d), None).expect("plan");
        let out = apply(&plan, appointments(&[("Mitte", 1)]), &key("p"), date!(2026 - 11 - 23));
        assert_eq!(out[0].keys().collect::<Vec<_>>(), ["bezirk", "termin"]);
        let plan = Plan::from_duties(&[d], Some(&["termin".into(), "name".into()])).expect("plan");
        let out = apply(&plan, appointments(&[("Mitte", 1)]), &key("p"), date!(2026 - 11 - 23));
        assert_eq!(
            out[0].keys().collect::<Vec<_>>(),
            ["termin"],
            "a requested field the policy does not allow stays out"
        );
    }

    #[test]
    fn pseudonyms_are_stable_within_a_purpose_and_differ_across_purposes() {
        let plan = Plan::from_duties(
            &[duty(
                json!({"uid": "d", "action": format!("{KDR}pseudonymise"), "fields": ["name"]}),
            )],
            None,
        )
        .expect("plan");
        let today = date!(2026 - 11 - 23);
        let data = || vec![rec(json!({"name": "Erika Mustermann"})), rec(json!({"name": "Max Mustermann"}))];
        let a1 = apply(&plan, data(), &key("https://w3id.org/dpv#ImprovePublicServices"), today);
        let a2 = apply(&plan, data(), &key("https://w3id.org/dpv#ImprovePublicServices"), today);
        let b = apply(&plan, data(), &key("https://w3id.org/dpv#ResearchAndDevelopment"), today);
        assert_eq!(a1, a2, "stable within a purpose");
        assert_ne!(a1[0]["name"], a1[1]["name"], "different people, different pseudonyms");
        assert_ne!(a1[0]["name"], b[0]["name"], "unlinkable across purposes");
        assert!(!a1[0]["name"].as_str().unwrap_or_default().contains("Erika"));
        let other_consumer = pseudonym_key(
            b"broker secret",
            "08136088",
            "08136000",
            "https://w3id.org/dpv#ImprovePublicServices",
        );
        assert_ne!(
            apply(&plan, data(), &other_consumer, today)[0]["name"],
            a1[0]["name"],
            "unlinkable across consumers"
        );
    }

    #[test]
    fn the_written_out_age_bands_are_the_bands() {
        for age in 0..150u32 {
            for (g, width) in [(Granularity::AgeBand5, 5), (Granularity::AgeBand10, 10)] {
                let low = age / width * width;
                assert_eq!(band(f64::from(age), g), Some(format!("{low}-{}", low + width - 1).as_str()));
            }
        }
        assert_eq!(band(150.0, Granularity::AgeBand10), None);
        assert_eq!(band(-1.0, Granularity::AgeBand5), None);
    }

    #[test]
    fn text_is_written_as_serde_json_writes_it() {
        for text in [
            "Innenstadt",
            "",
            "2026-10",
            "a\"b",
            "back\\slash",
            "tab\there",
            "line\nbreak",
            "\u{1}",
            "Straße ✓",
            "del\u{7f}",
        ] {
            let mut out = Vec::new();
            push_json_text(&mut out, text);
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                serde_json::to_string(text).expect("json"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn dates_and_ages_are_generalised() {
        let today = date!(2026 - 11 - 23);
        assert_eq!(
            generalise(&json!("2026-10-14T09:30:00"), Granularity::Month, today),
            json!("2026-10")
        );
        assert_eq!(generalise(&json!("2026-10-14"), Granularity::Year, today), json!("2026"));
        assert_eq!(generalise(&json!("1984-07-15"), Granularity::AgeBand10, today), json!("40-49"));
        assert_eq!(
            generalise(&json!("1984-12-15"), Granularity::AgeBand5, today),
            json!("40-44"),
            "41 until December"
        );
        assert_eq!(generalise(&json!(37), Granularity::AgeBand5, today), json!("35-39"));
        assert_eq!(
            generalise(&json!("gestern"), Granularity::Month, today),
            Value::Null,
            "unreadable values do not pass"
        );
        for not_a_date in ["2026-1-015", "12026-10-14", "2026-10-14x", "2026-13-01", "2026-1o-14"] {
            assert_eq!(
                generalise(&json!(not_a_date), Granularity::Month, today),
                Value::Null,
                "{not_a_date}"
            );
        }
    }

    /// The broker reads the duties exactly as the compiler writes them into decisions.
    #[test]
    fn the_example_policys_duties_become_a_plan() {
        let vocab = policy_compiler::Vocabulary::standard().expect("vocab");
        let policy =
            policy_compiler::parse::parse_one_turtle(include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl"), &vocab)
                .expect("policy");
        let duties: Vec<Duty> = policy
            .rules
            .iter()
            .flat_map(|r| &r.duties)
            .map(|d| serde_json::from_value(serde_json::to_value(d).expect("json")).expect("duty"))
            .collect();
        let plan = Plan::from_duties(&duties, None).expect("plan");
        assert_eq!(
            plan.aggregate,
            Some((
                vec!["bezirk".into(), "dienstleistung".into(), "geburtsdatum".into(), "termin".into()],
                5
            ))
        );
        assert_eq!(plan.generalise.get("termin"), Some(&Granularity::Month));
        assert_eq!(plan.generalise.get("geburtsdatum"), Some(&Granularity::AgeBand10));
        assert_eq!(plan.retention.as_deref(), Some("P90D"));
        assert!(plan.keep.as_ref().is_some_and(|k| !k.contains("name")));
    }

    #[test]
    fn fields_outside_the_kept_set_are_skipped_while_reading() {
        let keep: BTreeSet<String> = ["bezirk".to_owned(), "ter\"min".to_owned()].into();
        let json = br#"[{"name": {"nested": [1, 2]}, "bezirk": "Mitte", "ter\"min": "2026-10-14"}, {"telefon": 1}]"#;
        let recs = read_kept(Format::Json, json, Some(&keep)).expect("json");
        assert_eq!(recs, vec![rec(json!({"bezirk": "Mitte", "ter\"min": "2026-10-14"})), Record::new()]);
        let csv = b"name,bezirk\nErika,Mitte\n";
        assert_eq!(
            read_kept(Format::Csv, csv, Some(&keep)).expect("csv"),
            vec![rec(json!({"bezirk": "Mitte"}))]
        );
        assert_eq!(read(Format::Json, json).expect("all")[0].len(), 3);
        for bad in [&b"[1]"[..], b"[{}] []", b"{\"a\": 1}", b"[{\"a\": }]"] {
            assert!(
                matches!(read_kept(Format::Json, bad, Some(&keep)), Err(EnforceError::Format { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn csv_round_trips_and_bad_data_is_named() {
        let recs = read(Format::Csv, b"name,bezirk\n\"Mustermann, Erika\",Mitte\n").expect("csv");
        assert_eq!(recs, vec![rec(json!({"name": "Mustermann, Erika", "bezirk": "Mitte"}))]);
        let out = write(Format::Csv, &recs).expect("write");
        assert_eq!(String::from_utf8_lossy(&out), "bezirk,name\nMitte,\"Mustermann, Erika\"\n");
        assert!(matches!(read(Format::Json, b"{\"a\":1}"), Err(EnforceError::Format { .. })));
        assert!(matches!(read(Format::Csv, b"a,b\n1,2,3\n"), Err(EnforceError::Format { .. })));
    }

    fn plan(duties: Value) -> Plan {
        let duties: Vec<Duty> = serde_json::from_value(duties).expect("duties");
        Plan::from_duties(&duties, None).expect("plan")
    }

    /// `enforce` applies the plan while reading; `apply` to records read whole is the reference.
    #[test]
    fn enforcing_while_reading_matches_enforcing_records_read_whole() {
        let today = date!(2026 - 11 - 23);
        let k = key("https://w3id.org/dpv#ImprovePublicServices");
        let json = r#"[{"name": "A", "bezirk": "Nord", "geburtsdatum": "1984-07-15", "termin": "2026-10-14T09:30:00", "x": {"y": 1}},
            {"name": "B", "bezirk": "Nord", "geburtsdatum": "1990-01-02", "termin": "2026-10-15T09:30:00"},
            {"name": "C", "bezirk": null, "geburtsdatum": "kaputt", "termin": "2026-11-01"},
            {"bezirk": "Süd", "name": 7},
            {"bezirk": "N\u006frd", "geburtsdatum": "1984-08-01", "termin": "2026-10-20"},
            {"bezirk": 3, "geburtsdatum": 41, "termin": {"t": 1}},
            {"bezirk": ["Nord"], "geburtsdatum": "1984-07-15 08:00", "termin": "2026-10-31 23:59"}]"#
            .as_bytes();
        let csv = "name,bezirk,geburtsdatum,termin\nA,Nord,1984-07-15,2026-10-14T09:30:00\nB,Nord,1990-01-02,2026-10-15\nC,,x,y\n";
        let plans = [
            plan(json!([
                {"uid": "m", "action": format!("{KDR}minimise"), "fields": ["bezirk", "termin", "geburtsdatum"]},
                {"uid": "g", "action": format!("{KDR}generalise"), "fields": ["termin"], "granularity": "month"},
                {"uid": "a", "action": format!("{ODRL}aggregate"), "groupBy": ["bezirk", "termin", "bezirk"], "minGroupSize": 1}
            ])),
            plan(json!([
                {"uid": "p", "action": format!("{KDR}pseudonymise"), "fields": ["name"]},
                {"uid": "g", "action": format!("{KDR}generalise"), "fields": ["geburtsdatum"], "granularity": "ageBand5"}
            ])),
            plan(json!([
                {"uid": "m", "action": format!("{KDR}minimise"), "fields": ["name", "termin"]},
                {"uid": "p", "action": format!("{KDR}pseudonymise"), "fields": ["name", "bezirk"]}
            ])),
            plan(json!([
                {"uid": "g", "action": format!("{KDR}generalise"), "fields": ["geburtsdatum"], "granularity": "ageBand10"},
                {"uid": "y", "action": format!("{KDR}generalise"), "fields": ["termin"], "granularity": "year"},
                {"uid": "a", "action": format!("{ODRL}aggregate"), "groupBy": ["geburtsdatum", "bezirk", "termin"], "minGroupSize": 1}
            ])),
            Plan::default(),
        ];
        for (format, bytes) in [(Format::Json, json), (Format::Csv, csv.as_bytes())] {
            let whole = read(format, bytes).expect("read");
            for p in &plans {
                let streamed = enforce(p, format, bytes, Some(&k), today).expect("enforce");
                assert_eq!(streamed.records, apply(p, whole.clone(), &k, today), "{format:?} {p:?}");
                assert_eq!(streamed.records_in, whole.len());
            }
        }
    }

    #[test]
    fn a_record_without_a_group_field_and_one_with_null_there_are_one_group() {
        // Both are delivered as null, so counting them apart would show two groups that look
        // the same, and suppress both when each is small.
        let p = plan(json!([{"uid": "a", "action": format!("{ODRL}aggregate"), "groupBy": ["bezirk"], "minGroupSize": 5}]));
        let data = br#"[{"bezirk": null}, {"bezirk": null}, {"bezirk": null}, {}, {"name": "x"}]"#;
        let out = enforce(&p, Format::Json, data, None, date!(2026 - 11 - 23)).expect("enforce");
        assert_eq!(out.records, vec![rec(json!({"bezirk": null, "count": 5}))]);
    }

    #[test]
    fn without_a_key_pseudonymised_fields_are_delivered_as_null() {
        let p = plan(json!([{"uid": "p", "action": format!("{KDR}pseudonymise"), "fields": ["name"]}]));
        let out = enforce(
            &p,
            Format::Json,
            br#"[{"name": "Erika", "bezirk": "Nord"}]"#,
            None,
            date!(2026 - 11 - 23),
        )
        .expect("enforce");
        assert_eq!(out.records, vec![rec(json!({"name": null, "bezirk": "Nord"}))]);
    }

    #[test]
    fn json_that_is_not_utf8_is_refused() {
        assert!(matches!(
            read(Format::Json, b"[{\"a\": \"\xff\"}]"),
            Err(EnforceError::Format { .. })
        ));
    }
}
