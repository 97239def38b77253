//! A broker's state for the benchmarks (`console_bench`, `backup_bench`): an audit trail of
//! decision records over the last twelve months, chained and signed as the broker writes it, and
//! copies of Aalen's example dataset.

use std::io::Write;
use std::sync::Arc;

use broker::audit::chain::{Chain, GENESIS, Item};
use broker::audit::signing::Signer;
use broker::audit::{DecisionRecord, Event};
use broker::demo;
use broker::durable::Framing;

pub fn decision(n: usize, datasets: usize) -> DecisionRecord {
    let now = time::OffsetDateTime::now_utc();
    let time = now - time::Duration::seconds((n as i64 * 31) % (365 * 86_400));
    let purposes = ["ImprovePublicServices", "ResearchAndDevelopment", "CommercialPurpose"];
    let permit = !n.is_multiple_of(5);
    DecisionRecord {
        id: format!("bench-{n}"),
        time: time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        consumer: demo::HEIDENHEIM.into(),
        consumer_role: "system".into(),
        consumer_serial: "01".into(),
        provider: demo::AALEN.into(),
        dataset: format!("bench-{}", n % datasets),
        purpose: format!("https://w3id.org/dpv#{}", purposes[n % purposes.len()]),
        action: "http://www.w3.org/ns/odrl/2/use".into(),
        decision: if permit { "permit" } else { "deny" }.into(),
        failed_constraints: Vec::new(),
        reason: None,
        policy_version: Some(1),
        module_hash: None,
        outcome: if permit { "delivered" } else { "denied" }.into(),
        fields_requested: Vec::new(),
        fields_delivered: if permit {
            vec!["bezirk".into(), "anzahl".into()]
        } else {
            Vec::new()
        },
        records_in: Some(10),
        records_out: Some(3),
        bytes_out: Some(200),
        privacy_spent_milli: None,
        input: None,
    }
}

/// Writes `records` decision records, chained and signed as the broker does, into the state dir.
pub fn write_trail(state: &std::path::Path, records: usize, datasets: usize) {
    let signer = Arc::new(Signer::open_or_create(state).expect("key"));
    let mut chain = Chain {
        seq: 0,
        head: GENESIS.into(),
        signed_head: true,
        last_checkpoint: None,
        signer,
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(state.join("audit.jsonl")).expect("trail"));
    for chunk in 0..records.div_ceil(10_000) {
        let items: Vec<Item> = (chunk * 10_000..records.min((chunk + 1) * 10_000))
            .map(|i| Item::Event(serde_json::to_vec(&Event::Decision(Box::new(decision(i, datasets)))).expect("json")))
            .chain(std::iter::once(Item::Checkpoint))
            .collect();
        let mut out = Vec::new();
        chain.frame(items, &mut out);
        file.write_all(&out).expect("write");
    }
    file.flush().expect("flush");
}

pub fn datasets(n: usize) -> Vec<broker::catalog::Dataset> {
    let examples = demo::example_datasets().expect("examples");
    let aalen = examples
        .iter()
        .find(|d| d.publisher.as_str() == demo::AALEN)
        .expect("an Aalen example")
        .clone();
    (0..n)
        .map(|i| {
            let mut d = aalen.clone();
            d.id = format!("bench-{i}").parse().expect("id");
            for t in d.title.values_mut() {
                t.push_str(&format!(" {i}"));
            }
            d
        })
        .collect()
}
