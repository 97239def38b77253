//! What the fuzz targets run, shared so that `tests/` can replay a corpus on stable Rust too.

use std::sync::OnceLock;

use broker::enforce::{self, Duty, Format, Plan};
use policy_compiler::parse::Syntax;

fn vocab() -> &'static policy_compiler::Vocabulary {
    static VOCAB: OnceLock<policy_compiler::Vocabulary> = OnceLock::new();
    VOCAB.get_or_init(|| policy_compiler::Vocabulary::standard().expect("the bundled vocabulary loads"))
}

const DATASET: &str = "https://broker.kdr.example/datasets/aalen-buergerbuero-termine";

/// A submitted policy through the broker's checks and the Wasm compiler.
pub fn compile_submission(data: &[u8], syntax: Syntax) {
    let _ = broker::policy::compile_for_dataset(data, syntax, DATASET, vocab());
}

fn plans() -> &'static [Plan; 2] {
    static PLANS: OnceLock<[Plan; 2]> = OnceLock::new();
    PLANS.get_or_init(|| {
        let text = include_str!("../../policies/examples/aalen-buergerbuero-termine.ttl");
        let policy = policy_compiler::parse::parse_one(text, Syntax::Turtle, vocab()).expect("example policy");
        let duties: Vec<Duty> = policy
            .rules
            .iter()
            .flat_map(|r| &r.duties)
            .map(|d| serde_json::from_value(serde_json::to_value(d).expect("duty")).expect("duty"))
            .collect();
        let aggregated = Plan::from_duties(&duties, None).expect("plan");
        let mut raw = Plan::from_duties(&duties[..1], None).expect("plan");
        raw.pseudonymise.insert("name".into());
        [aggregated, raw]
    })
}

/// A provider's answer through enforcement.
pub fn enforce_provider_data(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let format = if first & 1 == 0 { Format::Json } else { Format::Csv };
    let key = enforce::pseudonym_key(b"fuzz", "08136088", "08135019", "https://w3id.org/dpv#ImprovePublicServices");
    let today = time::macros::date!(2026 - 12 - 02);
    for plan in plans() {
        for out in [Format::Json, Format::Csv] {
            match enforce::release(plan, format, body, Some(&key), today, out) {
                Ok(released) => assert!(released.records_out <= released.records_in || plan.aggregate.is_some()),
                // Only a format error carries words derived from the input; the other
                // variants are fixed texts with the broker's own limits in them.
                Err(enforce::EnforceError::Format { reason, .. }) => no_data_in(&reason, body),
                Err(_) => {}
            }
        }
    }
}

/// A format error's reason must consist of the broker's own words and numbers, never quote
/// the data.
fn no_data_in(error: &str, input: &[u8]) {
    const OWN: &[&str] = &[
        "a value of the wrong kind (records must be objects of strings, numbers, booleans or nulls)",
        "fields where the header has",
        "the data holds more than",
        "records, the most one release reads",
        "the data is not",
        "a JSON array of objects",
        "CSV with a header row",
        "not UTF-8 after byte",
        "text that is not UTF-8",
        "the JSON ends too early",
        "the JSON cannot be read",
        "malformed JSON",
        "malformed CSV",
        "a row has",
        "at line",
        "column",
    ];
    let mut rest = error.to_owned();
    for own in OWN {
        rest = rest.replace(own, "");
    }
    assert!(
        rest.chars()
            .all(|c| c.is_ascii_digit() || c.is_whitespace() || ",.:;()".contains(c)),
        "the error {error:?} says more than the broker's own words ({rest:?}) for input {:?}",
        String::from_utf8_lossy(input)
    );
}

/// A dataset description through the schema, the model and the graph.
pub fn dataset_round_trip(data: &[u8]) {
    static SCHEMAS: OnceLock<broker::schema::Schemas> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| broker::schema::Schemas::compile().expect("schemas"));
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if !schemas.check_dataset(&value).is_empty() {
        return;
    }
    let Ok(description) = serde_json::from_value::<broker::catalog::DatasetDescription>(value) else {
        return;
    };
    let id = description.identifier.clone().unwrap_or_else(broker::catalog::DatasetId::generate);
    let publisher = "08136088".parse().expect("ags");
    let stamp = "2026-12-02T10:00:00Z".to_owned();
    let dataset = broker::catalog::Dataset::from_description(id, publisher, description, stamp.clone(), stamp);
    let iris = broker::catalog::dcat::Iris::new("https://broker.kdr.example/");
    let quads = broker::catalog::dcat::dataset_to_quads(&dataset, &iris);
    let graph = broker::catalog::dcat::Graph::from_quads(quads);
    let back = broker::catalog::dcat::dataset_from_graph(&graph, &iris.dataset(&dataset.id), &iris);
    assert_eq!(back.as_ref(), Some(&dataset), "a stored description reads back as it was");
    // The DCAT-AP.de shapes judge whatever a steward can write, and never fail doing it.
    let triples: Vec<_> = broker::catalog::dcat::dataset_to_triples(&dataset, &iris);
    broker::catalog::shacl::validator()
        .expect("shapes")
        .validate(&triples)
        .expect("validation runs");
}
