//! The audit trail on real logs: a broker answers real requests, then its log file is edited,
//! cut, reordered and truncated, and `broker audit verify` must name the first bad record.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::exchange::{POLICY, request, set_up};
use crate::support::TestBroker;

fn verify(log: &Path, public_key: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["audit", "verify", "--json"])
        .arg(log)
        .arg("--public-key")
        .arg(public_key)
        .output()
        .expect("run broker audit verify");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// A stopped broker whose log holds admin records, permits, denies and checkpoints.
async fn recorded_traffic() -> TestBroker {
    let mut b = TestBroker::start();
    let provider = b.start_provider();
    set_up(&b, provider.addr.port(), "/appointments", Some(POLICY)).await;
    for purpose in [
        "ImprovePublicServices",
        "CommercialPurpose",
        "ImprovePublicServices",
        "ServiceProvision",
    ] {
        request(&b, "heidenheim-system", purpose).await;
    }
    b.stop();
    b
}

fn lines(log: &Path) -> Vec<String> {
    crate::support::log_lines(log)
}

/// Writes `lines` to a copy of the log beside the original (with the checkpoint file copied
/// under the copy's name) and verifies it.
fn verify_variant(b: &TestBroker, name: &str, lines: &[String]) -> (i32, Value) {
    let dir = b.state_dir();
    let log = dir.join(format!("{name}.jsonl"));
    std::fs::write(&log, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write variant");
    std::fs::copy(
        broker::audit::file::checkpoint_path(&b.audit_log()),
        broker::audit::file::checkpoint_path(&log),
    )
    .expect("checkpoint file");
    verify(&log, &dir.join("audit-signing.pub"))
}

fn seq_of(line: &str) -> u64 {
    let v: Value = serde_json::from_str(line).expect("line");
    v["entry"]["seq"].as_u64().expect("seq")
}

fn breach(report: &Value) -> (u64, String) {
    let b = &report["breach"];
    (
        b["seq"].as_u64().expect("a breach"),
        b["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[actix_rt::test]
async fn an_untouched_log_verifies_with_its_checkpoints() {
    let b = recorded_traffic().await;
    let (code, report) = verify(&b.audit_log(), &b.state_dir().join("audit-signing.pub"));
    assert_eq!(code, 0, "{report}");
    assert!(report["breach"].is_null(), "{report}");
    assert!(report["checkpoints"].as_u64() >= Some(1), "a checkpoint on shutdown: {report}");
    assert_eq!(
        report["lastSignedSeq"], report["lastSeq"],
        "everything is signed after shutdown: {report}"
    );
    let all = lines(&b.audit_log());
    let kinds: Vec<String> = all
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line")["entry"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for kind in ["admin", "decision", "checkpoint"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[actix_rt::test]
async fn an_edited_record_is_named() {
    let b = recorded_traffic().await;
    let mut all = lines(&b.audit_log());
    let k = all.iter().position(|l| l.contains("\"decision\":\"deny\"")).expect("a deny");
    all[k] = all[k].replace("\"decision\":\"deny\"", "\"decision\":\"permit\"");
    let (code, report) = verify_variant(&b, "edited", &all);
    assert_eq!(code, 1, "{report}");
    let (seq, message) = breach(&report);
    assert_eq!(seq, seq_of(&all[k]), "{report}");
    assert!(message.contains("altered"), "{message}");
}

#[actix_rt::test]
async fn an_edited_record_with_a_recomputed_hash_is_named_through_the_next_link() {
    let b = recorded_traffic().await;
    let mut all = lines(&b.audit_log());
    let k = all.iter().position(|l| l.contains("\"decision\":\"permit\"")).expect("a permit");
    let mut line: Value = serde_json::from_str(&all[k]).expect("line");
    line["entry"]["consumer"] = Value::from("08111000");
    let entry = serde_json::to_string(&line["entry"]).expect("entry");
    let forged = format!(
        "{{\"hash\":\"{}\",\"entry\":{entry}}}",
        broker::audit::chain::sha256_hex(entry.as_bytes())
    );
    all[k] = forged;
    let (code, report) = verify_variant(&b, "rehashed", &all);
    assert_eq!(code, 1, "{report}");
    let (seq, message) = breach(&report);
    assert_eq!(seq, seq_of(&all[k]), "{report}");
    assert!(message.contains("does not link"), "{message}");
}

#[actix_rt::test]
async fn a_deleted_record_is_named() {
    let b = recorded_traffic().await;
    let mut all = lines(&b.audit_log());
    let k = all.len() / 2;
    let gone = seq_of(&all[k]);
    all.remove(k);
    let (code, report) = verify_variant(&b, "deleted", &all);
    assert_eq!(code, 1, "{report}");
    let (seq, message) = breach(&report);
    assert_eq!(seq, gone, "{report}");
    assert!(message.contains("missing"), "{message}");
}

#[actix_rt::test]
async fn reordered_records_are_named() {
    let b = recorded_traffic().await;
    let mut all = lines(&b.audit_log());
    let k = all.len() / 2;
    let first = seq_of(&all[k]);
    all.swap(k, k + 1);
    let (code, report) = verify_variant(&b, "reordered", &all);
    assert_eq!(code, 1, "{report}");
    let (seq, message) = breach(&report);
    assert_eq!(seq, first, "{report}");
    assert!(message.contains("out of place"), "{message}");
}

#[actix_rt::test]
async fn a_truncated_log_is_named_by_the_checkpoint_file() {
    let b = recorded_traffic().await;
    let mut all = lines(&b.audit_log());
    let first_cut = seq_of(&all[all.len() - 3]);
    all.truncate(all.len() - 3);
    let (code, report) = verify_variant(&b, "truncated", &all);
    assert_eq!(code, 1, "{report}");
    let (seq, message) = breach(&report);
    assert_eq!(seq, first_cut, "{report}");
    assert!(message.contains("missing") && message.contains("checkpoint"), "{message}");
}

#[actix_rt::test]
async fn an_unfinished_last_line_from_a_crash_is_ignored_and_the_rest_verifies() {
    let b = recorded_traffic().await;
    let text = std::fs::read_to_string(b.audit_log()).expect("log");
    let data = &text[..broker::durable::unpadded(text.as_bytes()).len()];
    assert!(text.len() > data.len(), "the log is padded");
    let log = b.state_dir().join("torn.jsonl");
    // Written over the start of the padding when the crash came.
    let torn = "{\"hash\":\"ab12";
    std::fs::write(&log, format!("{data}{torn}{}", &text[data.len() + torn.len()..])).expect("torn");
    std::fs::copy(
        broker::audit::file::checkpoint_path(&b.audit_log()),
        broker::audit::file::checkpoint_path(&log),
    )
    .expect("checkpoint");
    let (code, report) = verify(&log, &b.state_dir().join("audit-signing.pub"));
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["tornTailBytes"], torn.len(), "{report}");
}

#[actix_rt::test]
async fn another_key_does_not_verify_the_checkpoints() {
    let b = recorded_traffic().await;
    let other = tempfile::tempdir().expect("tmp");
    broker::audit::signing::Signer::open_or_create(other.path()).expect("another key");
    let (code, report) = verify(&b.audit_log(), &other.path().join("audit-signing.pub"));
    assert_eq!(code, 1, "{report}");
    assert!(breach(&report).1.contains("not signed by this key"), "{report}");
}
