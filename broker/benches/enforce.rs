//! What enforcing the duties costs per request, on the example appointments (16 records with
//! personal fields) under the example policy's duties (minimise, generalise two fields,
//! aggregate with a minimum group size): read the provider's bytes, apply, write the result,
//! and the same with pseudonymisation. Run on purpose: `cargo bench -p broker --bench enforce`.

use std::hint::black_box;
use std::path::Path;

use broker::enforce::{self, Duty, Format, Plan};
use criterion::{Criterion, criterion_group, criterion_main};
use time::macros::date;

fn duties(pseudonymise: bool) -> Vec<Duty> {
    let kdr = "https://w3id.org/kdr/odrl#";
    let odrl = "http://www.w3.org/ns/odrl/2/";
    let mut d = serde_json::json!([
        { "uid": "m", "action": format!("{kdr}minimise"), "fields": ["bezirk", "dienstleistung", "termin", "geburtsdatum", "name"] },
        { "uid": "g1", "action": format!("{kdr}generalise"), "fields": ["termin"], "granularity": "month" },
        { "uid": "g2", "action": format!("{kdr}generalise"), "fields": ["geburtsdatum"], "granularity": "ageBand10" },
        { "uid": "a", "action": format!("{odrl}aggregate"), "groupBy": ["bezirk", "dienstleistung", "termin", "geburtsdatum"], "minGroupSize": 5 },
        { "uid": "r", "action": format!("{odrl}delete"), "retention": "P90D" }
    ]);
    if pseudonymise {
        // Keep the records (no aggregation) and pseudonymise the name instead.
        d = serde_json::Value::Array(
            d.as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["uid"] != "a")
                .cloned()
                .chain([serde_json::json!({ "uid": "p", "action": format!("{kdr}pseudonymise"), "fields": ["name"] })])
                .collect(),
        );
    }
    serde_json::from_value(d).expect("duties")
}

fn data() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/providers/aalen-buergerbuero-termine.json"))
        .expect("example data")
}

fn pipeline(plan: &Plan, bytes: &[u8]) -> Vec<u8> {
    let key = enforce::pseudonym_key(&[7; 32], "08136088", "08135019", "https://w3id.org/dpv#ImprovePublicServices");
    let out = enforce::enforce(plan, Format::Json, bytes, Some(&key), date!(2026 - 11 - 23)).expect("enforce");
    enforce::write(Format::Json, &out.records).expect("write")
}

fn enforcement(c: &mut Criterion) {
    let bytes = data();
    let mut group = c.benchmark_group("enforce");
    for (name, pseudo) in [("aggregate", false), ("pseudonymise", true)] {
        let plan = Plan::from_duties(&duties(pseudo), None).expect("plan");
        group.bench_function(name, |b| b.iter(|| pipeline(black_box(&plan), black_box(&bytes))));
    }
    group.finish();
}

criterion_group!(benches, enforcement);
criterion_main!(benches);
