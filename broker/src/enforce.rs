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

use std::collections::{BTreeMap, BTreeSet};

use ring::hmac;
use serde::{Deserialize, de};
use serde_json::{Map, Value};
use time::{Date, Month};

use policy_compiler::wasm::hex;

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
}

const ODRL: &str = "http://www.w3.org/ns/odrl/2/";
const KDR: &str = "https://w3id.org/kdr/odrl#";

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
    pub inform_provider: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnforceError {
    #[error("the decision's duties cannot be read: {0}")]
    Duties(String),
    #[error("the data is not {format}: {reason}")]
    Format { format: &'static str, reason: String },
}

impl Plan {
    /// The plan for `duties`, narrowed to the `requested` fields if the consumer named any.
    /// Several duties of one kind combine to the strictest: minimise lists intersect, the
    /// largest minimum group size wins.
    pub fn from_duties(duties: &[Duty], requested: Option<&[String]>) -> Result<Self, EnforceError> {
        let mut plan = Plan::default();
        for d in duties {
            match (d.action.strip_prefix(KDR), d.action.strip_prefix(ODRL)) {
                (Some("minimise"), _) => {
                    let fields: BTreeSet<String> = d.fields.iter().cloned().collect();
                    plan.keep = Some(match plan.keep.take() {
                        Some(k) => k.intersection(&fields).cloned().collect(),
                        None => fields,
                    });
                }
                (Some("pseudonymise"), _) => plan.pseudonymise.extend(d.fields.iter().cloned()),
                (Some("generalise"), _) => {
                    let g = d
                        .granularity
                        .ok_or_else(|| EnforceError::Duties(format!("{} has no granularity", d.uid)))?;
                    for f in &d.fields {
                        plan.generalise.insert(f.clone(), g);
                    }
                }
                (_, Some("aggregate")) => {
                    let n = d
                        .min_group_size
                        .ok_or_else(|| EnforceError::Duties(format!("{} has no minimum group size", d.uid)))?;
                    let strictest = plan.aggregate.as_ref().map_or(n, |(_, m)| n.max(*m));
                    plan.aggregate = Some((d.group_by.clone(), strictest));
                }
                (_, Some("delete")) => plan.retention = d.retention.clone(),
                (_, Some("inform")) => plan.inform_provider = true,
                // Duties without a data operation (fulfilled elsewhere) do not change the data.
                _ => {}
            }
        }
        if let Some(req) = requested {
            let req: BTreeSet<String> = req.iter().cloned().collect();
            plan.keep = Some(match plan.keep.take() {
                Some(k) => k.intersection(&req).cloned().collect(),
                None => req,
            });
        }
        Ok(plan)
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

/// Applies the plan. `today` anchors age bands computed from birth dates.
pub fn apply(plan: &Plan, mut records: Vec<Record>, key: &hmac::Key, today: Date) -> Vec<Record> {
    for r in &mut records {
        shape(plan, r, key, today);
    }
    match &plan.aggregate {
        Some((group_by, min)) => aggregate(records, group_by, *min),
        None => records,
    }
}

/// Minimises, pseudonymises and generalises one record in place.
fn shape(plan: &Plan, record: &mut Record, key: &hmac::Key, today: Date) {
    if let Some(keep) = &plan.keep {
        record.retain(|k, _| keep.contains(k));
    }
    if plan.pseudonymise.is_empty() && plan.generalise.is_empty() {
        return;
    }
    for (k, v) in record.iter_mut() {
        if plan.pseudonymise.contains(k) {
            *v = pseudonym(key, v);
        }
        if let Some(g) = plan.generalise.get(k) {
            *v = generalise(v, *g, today);
        }
    }
}

/// Coarsens one value; what cannot be read becomes null rather than passing unchanged.
pub fn generalise(v: &Value, g: Granularity, today: Date) -> Value {
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Number(n) => return n.as_f64().map_or(Value::Null, |age| band(age, g)),
        _ => return Value::Null,
    };
    match (g, parse_date(text)) {
        (Granularity::Month, Some(d)) => Value::String(format!("{:04}-{:02}", d.year(), u8::from(d.month()))),
        (Granularity::Year, Some(d)) => Value::String(format!("{:04}", d.year())),
        (Granularity::AgeBand5 | Granularity::AgeBand10, Some(birth)) => band(f64::from(age_on(birth, today)), g),
        (Granularity::AgeBand5 | Granularity::AgeBand10, None) => text.trim().parse::<f64>().map_or(Value::Null, |age| band(age, g)),
        _ => Value::Null,
    }
}

fn band(age: f64, g: Granularity) -> Value {
    let width = if g == Granularity::AgeBand5 { 5 } else { 10 };
    if !(0.0..150.0).contains(&age) {
        return Value::Null;
    }
    // Ages are small non-negative numbers here (checked above).
    let low = (age as u32 / width) * width;
    Value::String(format!("{low}-{}", low + width - 1))
}

/// `YYYY-MM-DD`, optionally followed by a time (`T...` or ` ...`).
fn parse_date(text: &str) -> Option<Date> {
    let day = text.get(..10)?;
    let mut parts = day.split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let d: u8 = parts.next()?.parse().ok()?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
        return None;
    }
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// Counts records per group (field `count`), dropping every group smaller than `min`. Groups are
/// keyed by the JSON of their values, one per line (JSON text has no raw newline, so keys cannot
/// run into each other), which orders them as the values' texts would and needs no allocation
/// for a record of a group already seen.
fn aggregate(records: Vec<Record>, group_by: &[String], min: u32) -> Vec<Record> {
    let mut groups: BTreeMap<Vec<u8>, (Record, u32)> = BTreeMap::new();
    let mut key = Vec::new();
    for r in &records {
        key.clear();
        for f in group_by {
            if let Some(v) = r.get(f) {
                // Writing a `Value` into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut key, v);
            }
            key.push(b'\n');
        }
        if let Some(entry) = groups.get_mut(key.as_slice()) {
            entry.1 += 1;
            continue;
        }
        let group: Record = group_by
            .iter()
            .map(|f| (f.clone(), r.get(f).cloned().unwrap_or(Value::Null)))
            .collect();
        groups.insert(key.clone(), (group, 1));
    }
    groups
        .into_values()
        .filter(|(_, n)| *n >= min)
        .map(|(mut g, n)| {
            g.insert("count".into(), Value::from(n));
            g
        })
        .collect()
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
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let records = de::DeserializeSeed::deserialize(kept::Records(keep), &mut de).and_then(|r| de.end().map(|()| r));
            records.map_err(|e| EnforceError::Format {
                format: "a JSON array of objects",
                reason: e.to_string(),
            })
        }
        Format::Csv => {
            let bad = |reason: String| EnforceError::Format {
                format: "CSV with a header row",
                reason,
            };
            let mut reader = csv::Reader::from_reader(bytes);
            let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
            let wanted: Vec<bool> = headers.iter().map(|h| keep.is_none_or(|k| k.contains(h))).collect();
            reader
                .records()
                .map(|row| {
                    let row = row.map_err(|e| bad(e.to_string()))?;
                    Ok(headers
                        .iter()
                        .zip(row.iter())
                        .zip(&wanted)
                        .filter(|(_, w)| **w)
                        .map(|((h, v), _)| (h.to_owned(), Value::String(v.to_owned())))
                        .collect())
                })
                .collect()
        }
    }
}

/// Streaming deserialisation of a JSON array of records that drops unwanted fields unread.
mod kept {
    use std::borrow::Cow;
    use std::collections::BTreeSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    use super::Record;

    pub struct Records<'k>(pub Option<&'k BTreeSet<String>>);

    impl<'de> DeserializeSeed<'de> for Records<'_> {
        type Value = Vec<Record>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Records<'_> {
        type Value = Vec<Record>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(r) = seq.next_element_seed(One(self.0))? {
                out.push(r);
            }
            Ok(out)
        }
    }

    struct One<'k>(Option<&'k BTreeSet<String>>);

    impl<'de> DeserializeSeed<'de> for One<'_> {
        type Value = Record;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for One<'_> {
        type Value = Record;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object (one record)")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut record = Record::new();
            while let Some(Key(k)) = map.next_key()? {
                if self.0.is_none_or(|keep| keep.contains(k.as_ref())) {
                    record.insert(k.into_owned(), map.next_value::<Value>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(record)
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
            w.write_record(columns.iter().map(|c| c.as_str())).map_err(bad)?;
            for r in records {
                w.write_record(columns.iter().map(|c| match r.get(*c) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                }))
                .map_err(bad)?;
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
            appointments(&[("Mitte", 7), ("Nord", 4), ("Süd", 5)]),
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
}
