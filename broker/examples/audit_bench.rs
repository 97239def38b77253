//! Audit trail benchmark, run on purpose (not a test):
//!
//!     cargo run --release -p broker --example audit_bench -- [threads] [appends-per-thread] [verify-records]
//!
//! 1. Durable appends per second with group commit (the broker's `FileAuditLog`), `threads`
//!    writers at once.
//! 2. The same records and writers without group commit: each append takes the lock, chains,
//!    writes and `fsync`s alone (what a naive chained log does).
//! 3. Verification time per million records (`audit::chain::verify` over a log written in bulk).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use broker::audit::chain::{Chain, GENESIS, Item, verify};
use broker::audit::file::FileAuditLog;
use broker::audit::signing::Signer;
use broker::audit::{AdminRecord, AuditLog, Event};
use broker::durable::Framing;

fn event(n: usize) -> Event {
    Event::Admin(AdminRecord::by_broker(
        "bench",
        format!("record {n}"),
        serde_json::json!({ "dataset": "aalen-buergerbuero-termine", "purpose": "https://w3id.org/dpv#ImprovePublicServices" }),
    ))
}

/// Appends/s of `threads` writers each calling `append(n)` for its `per` record numbers.
fn writers(threads: usize, per: usize, append: impl Fn(usize) + Send + Sync + 'static) -> f64 {
    let append = Arc::new(append);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let append = append.clone();
            std::thread::spawn(move || (0..per).for_each(|i| append(t * per + i)))
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().expect("thread"));
    (threads * per) as f64 / start.elapsed().as_secs_f64()
}

fn group_commit(dir: &std::path::Path, signer: Arc<Signer>, threads: usize, per: usize) -> f64 {
    let log = FileAuditLog::open(&dir.join("grouped.jsonl"), signer).expect("open");
    writers(threads, per, move |n| log.append(event(n)).expect("append"))
}

fn one_by_one(dir: &std::path::Path, signer: Arc<Signer>, threads: usize, per: usize) -> f64 {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("single.jsonl"))
        .expect("open");
    let chain = Chain {
        seq: 0,
        head: GENESIS.into(),
        signed_head: true,
        last_checkpoint: None,
        signer,
    };
    let shared = Mutex::new((file, chain));
    writers(threads, per, move |n| {
        let bytes = serde_json::to_vec(&event(n)).expect("json");
        let mut guard = shared.lock().expect("lock");
        let (file, chain) = &mut *guard;
        let mut out = Vec::new();
        chain.frame(vec![Item::Event(bytes)], &mut out);
        file.write_all(&out).expect("write");
        file.sync_data().expect("fsync");
    })
}

fn verification(dir: &std::path::Path, signer: Arc<Signer>, records: usize) -> (f64, u64) {
    let path = dir.join("million.jsonl");
    let mut chain = Chain {
        seq: 0,
        head: GENESIS.into(),
        signed_head: true,
        last_checkpoint: None,
        signer: signer.clone(),
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for chunk in 0..records.div_ceil(10_000) {
        let items: Vec<Item> = (0..10_000.min(records - chunk * 10_000))
            .map(|i| Item::Event(serde_json::to_vec(&event(chunk * 10_000 + i)).expect("json")))
            .chain(std::iter::once(Item::Checkpoint))
            .collect();
        let mut out = Vec::new();
        chain.frame(items, &mut out);
        file.write_all(&out).expect("write");
    }
    file.flush().expect("flush");
    drop(file);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let key: broker::audit::signing::PublicKey = signer.public_hex().parse().expect("key");
    let start = Instant::now();
    let report = verify(
        std::io::BufReader::new(std::fs::File::open(&path).expect("open")),
        std::slice::from_ref(&key),
        None,
    )
    .expect("verify");
    let secs = start.elapsed().as_secs_f64();
    assert!(report.ok(), "{report:?}");
    (secs * 1_000_000.0 / report.records as f64, bytes)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let threads = args.first().copied().unwrap_or(16);
    let per = args.get(1).copied().unwrap_or(200);
    let records = args.get(2).copied().unwrap_or(1_000_000);
    let dir = tempfile::tempdir_in(".").expect("a directory on the disk under test");
    let signer = Arc::new(Signer::open_or_create(dir.path()).expect("key"));
    let grouped = group_commit(dir.path(), signer.clone(), threads, per);
    let single = one_by_one(dir.path(), signer.clone(), threads, per);
    println!(
        "durable appends/s, {threads} writers x {per}: group commit {grouped:.0}, one fsync per append {single:.0}, ratio {:.1}",
        grouped / single
    );
    let (per_million, bytes) = verification(dir.path(), signer, records);
    println!(
        "verification: {per_million:.2} s per million records ({records} records, {} MB)",
        bytes / 1_000_000
    );
}
