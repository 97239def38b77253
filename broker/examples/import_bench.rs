//! Catalog import benchmark, run on purpose (not a test):
//!
//!     cargo run --release -p broker --example import_bench -- [datasets]
//!
//! A synthetic portal export of `datasets` datasets (two distributions each, in N-Triples) is
//! loaded twice, into fresh RocksDB stores side by side: by oxigraph's own bulk loader (the
//! floor: no repair, no per-dataset graphs, no plan) and by the broker's import (parse, repair,
//! cut, plan, apply). Prints both times and their ratio (goal of issue 19: within 1.5×), and the
//! time of importing the same export again (nothing changes).

use std::time::Instant;

use broker::catalog::import::{self, ImportedDataset};
use broker::catalog::{CatalogImport, MemberRegistry, OxigraphCatalog, RdfSyntax};
use oxigraph::io::RdfFormat;
use oxigraph::store::Store;

#[path = "common/synthetic.rs"]
mod synthetic;
use synthetic::export;

fn ours(catalog: &OxigraphCatalog, bytes: &[u8]) -> (f64, import::Plan) {
    let t = Instant::now();
    let iris = catalog.iris().clone();
    let publisher = "08136088".parse().expect("ags");
    let triples = import::parse(bytes, RdfSyntax::NTriples).expect("parse");
    let parsed = t.elapsed().as_secs_f64();
    let prepared = import::prepare(triples, &iris, &publisher).expect("prepare");
    let datasets: Vec<ImportedDataset> = prepared.datasets;
    let cut = t.elapsed().as_secs_f64();
    let plan = catalog.plan_import(&publisher, "https://portal.example/", &datasets).expect("plan");
    let planned = t.elapsed().as_secs_f64();
    catalog.apply_import(&plan, &datasets, "2026-12-02T12:00:00Z").expect("apply");
    let total = t.elapsed().as_secs_f64();
    println!(
        "  parse {parsed:.2} s, repair and cut {:.2} s, plan {:.2} s, apply {:.2} s",
        cut - parsed,
        planned - cut,
        total - planned
    );
    (total, plan)
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let bytes = export(n);
    println!("export: {n} datasets, {:.1} MB of N-Triples", bytes.len() as f64 / 1e6);
    let dir = tempfile::tempdir().expect("tempdir");

    let t = Instant::now();
    let store = Store::open(dir.path().join("bulk")).expect("store");
    let mut loader = store.bulk_loader();
    loader.load_from_slice(RdfFormat::NTriples, &bytes).expect("bulk load");
    loader.commit().expect("commit");
    let bulk = t.elapsed().as_secs_f64();
    println!("oxigraph bulk loader: {bulk:.2} s ({} quads)", store.len().unwrap_or(0));
    drop(store);

    let catalog = OxigraphCatalog::open(&dir.path().join("broker"), "https://broker.kdr.example/").expect("catalog");
    // Validation reads the publisher's own statements: the member must exist, as in a running broker.
    for m in broker::demo::demo_members() {
        catalog.put_member(&m).expect("member");
    }
    let (first, plan) = ours(&catalog, &bytes);
    println!(
        "broker import: {first:.2} s ({} imported, {} quads), {:.2}x the bulk loader",
        plan.imported.len(),
        catalog.quad_count().unwrap_or(0),
        first / bulk
    );
    let (again, plan) = ours(&catalog, &bytes);
    println!("the same export again: {again:.2} s ({} unchanged)", plan.unchanged.len());
}
