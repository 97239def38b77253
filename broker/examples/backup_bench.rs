//! Backup and restore times, for the runbook's recovery point and recovery time; run on purpose
//! (not a test):
//!
//!     cargo run --profile production -p broker --example backup_bench -- [datasets] [records]
//!
//! A broker on RocksDB with `datasets` datasets (default 1,000) and an audit trail of `records`
//! decision records (default 1,000,000), its admin listener on. A backup is made through the
//! admin listener while it serves and copied out (`broker backup`); then the broker is stopped,
//! its state directory removed, the backup restored (`broker restore`, every check included) and
//! the broker started again (which rebuilds its counters from the trail). Each step is timed.

use std::sync::Arc;
use std::time::Instant;

use broker::catalog::{DatasetCatalog, OxigraphCatalog};
use broker::config::Config;
use broker::demo;

#[path = "common/state.rs"]
mod state;
use state::{datasets, write_trail};

fn size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => size(&e.path()),
                    _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                })
                .sum()
        })
        .unwrap_or(0)
}

fn open(config: &Config) -> Arc<OxigraphCatalog> {
    Arc::new(OxigraphCatalog::open(config.data_dir.as_ref().expect("data dir"), &config.base_iri).expect("store"))
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n_datasets = args.first().copied().unwrap_or(1_000);
    let records = args.get(1).copied().unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(".").expect("a directory on the disk under test");
    demo::write_test_pki(&dir.path().join("pki")).expect("pki");
    let text = demo::demo_config("127.0.0.1:0", Some("data"));
    let mut config = Config::parse(&text, dir.path()).expect("config");
    config.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    std::fs::create_dir_all(&config.state_dir).expect("state");
    write_trail(&config.state_dir, records, n_datasets);
    let catalog = open(&config);
    let server = broker::serve::start_background(&config, catalog.clone(), 2).expect("broker");
    for d in datasets(n_datasets) {
        catalog.insert_dataset(&d).expect("dataset");
    }
    config.admin_listen = server.admin_addr;
    println!("{n_datasets} datasets, {records} decision records");

    let to = dir.path().join("backup");
    let t = Instant::now();
    let manifest = broker::backup::run(&config, &to).expect("backup");
    let backup_s = t.elapsed().as_secs_f64();
    println!(
        "backup while serving: {backup_s:.1} s, {:.0} MiB, {} files, {} records",
        size(&to) as f64 / (1 << 20) as f64,
        manifest.files.len(),
        manifest.trail.records
    );

    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).expect("keys");
    for k in broker::backup::KEYS {
        std::fs::copy(config.state_dir.join(k), keys.join(k)).expect("key");
    }
    drop(server);
    drop(catalog);
    std::fs::remove_dir_all(&config.state_dir).expect("destroy the state");
    if let Some(data) = &config.data_dir {
        let _ = std::fs::remove_dir_all(data);
        let _ = std::fs::remove_dir_all(broker::catalog::store::private_dir(data));
    }
    let t = Instant::now();
    broker::backup::restore(&config, &to, &keys).expect("restore");
    let restore_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let catalog = open(&config);
    let server = broker::serve::start_background(&config, catalog, 2).expect("broker again");
    let start_s = t.elapsed().as_secs_f64();
    println!("restore (all checks): {restore_s:.1} s; start after it (counters from the trail): {start_s:.1} s");
    println!("recovery time without the operator: {:.1} s", restore_s + start_s);
    drop(server);
}
