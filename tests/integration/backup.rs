//! Backup and restore, drilled the way a data centre must be able to after a disk loss: a
//! backup taken while members keep asking, the state destroyed, a restore, the broker started
//! again; and every way a backup can be damaged, refused before anything is written.

use std::path::{Path, PathBuf};

use broker::backup::{self, BackupError, KEYS, Manifest};
use broker::config::Config;

use crate::exchange::{DPV, KITA, POLICY, register_kita, request, set_up, upload};
use crate::support::{TestBroker, log_lines};

/// On disk (RocksDB, as deployed: the catalog in the state directory, `[storage] data_dir`
/// alone), with the admin listener a backup goes through.
fn deployed(c: &mut Config) {
    c.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    c.data_dir = Some(c.state_dir.clone());
}

/// The keys, kept apart from the backups once (runbook §5).
fn keep_keys(b: &TestBroker) -> tempfile::TempDir {
    let keys = tempfile::tempdir().expect("keys dir");
    for k in KEYS {
        std::fs::copy(b.state_dir().join(k), keys.path().join(k)).expect("copy key");
    }
    keys
}

const KITA_CSV: &str = "kita,bezirk,plaetze,leiterin\nSonnenschein,Innenstadt,42,Petra Vogt\nRegenbogen,Unterkochen,35,Jana Ilg\n";

/// Aalen's appointments (fetched) and its Kita places (hosted), both with approved policies.
async fn two_datasets(b: &TestBroker) {
    set_up(b, b.start_provider().addr.port(), "/appointments", Some(POLICY)).await;
    register_kita(b).await;
    let (status, body) = upload(b, "aalen-steward", KITA, "text/csv", KITA_CSV).await;
    assert_eq!(status, 200, "{body}");
}

/// A request for Aalen's appointments: status and decision id.
async fn ask(b: &TestBroker, purpose: &str) -> (u16, String) {
    let (status, body, headers) = request(b, "heidenheim-system", purpose).await;
    let id = headers
        .get("x-decision-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no decision id: {status} {body}"))
        .to_owned();
    (status, id)
}

async fn kita_csv(b: &TestBroker) -> (u16, String) {
    let mut resp = b
        .client("heidenheim-system")
        .get(b.url(&format!("/v1/datasets/{KITA}/data")))
        .insert_header(("Accept", "text/csv"))
        .query(&[("purpose", format!("{DPV}ImprovePublicServices"))])
        .expect("query")
        .send()
        .await
        .expect("request");
    let body = resp.body().await.expect("body");
    (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
}

async fn metric(b: &TestBroker, name: &str) -> f64 {
    let url = format!("http://{}/metrics", b.admin_addr.expect("admin listener"));
    let mut resp = awc::Client::default().get(url).send().await.expect("metrics");
    let text = String::from_utf8_lossy(&resp.body().limit(8 << 20).await.expect("body")).into_owned();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn verify(state: &Path) -> broker::audit::chain::Report {
    let log = state.join("audit.jsonl");
    let report = broker::audit::chain::verify_files(
        &log,
        &state.join("audit-signing.pub"),
        Some(&broker::audit::file::checkpoint_path(&log)),
    )
    .expect("verify");
    assert!(report.ok(), "{}", broker::audit::chain::describe(&report));
    report
}

#[actix_rt::test]
async fn restore_drill_a_backup_under_load_survives_the_loss_of_the_state_directory() {
    let mut b = TestBroker::start_with(deployed);
    two_datasets(&b).await;
    assert_eq!(ask(&b, "ImprovePublicServices").await.0, 200);
    // The audit key was rotated once: the backup carries both public keys, the restore checks
    // the trail across the rotation.
    let mut config = b.config.clone();
    config.admin_listen = b.admin_addr;
    std::thread::spawn(move || broker::serve::rotate_audit_key(&config).map_err(|e| e.to_string()))
        .join()
        .expect("thread")
        .expect("rotate");
    let keys = keep_keys(&b);
    // Traffic with permits and denials, acknowledged before the backup begins.
    let mut acknowledged = Vec::new();
    for purpose in ["ImprovePublicServices", "CommercialPurpose", "ImprovePublicServices", "Marketing"] {
        acknowledged.push(ask(&b, purpose).await);
    }
    assert_eq!(acknowledged.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [200, 403, 200, 403]);
    assert_eq!(kita_csv(&b).await.0, 200);

    // Without the token from the state directory, the admin listener changes nothing.
    let admin = b.admin_addr.expect("admin listener");
    for path in ["/backup", "/audit/rotate-key"] {
        let resp = awc::Client::default()
            .post(format!("http://{admin}{path}"))
            .send()
            .await
            .expect("admin");
        assert_eq!(resp.status(), 401, "{path}");
    }
    assert!(!b.state_dir().join("backups").exists());

    // The backup, while requests keep coming.
    let backups = tempfile::tempdir().expect("backups");
    let to = backups.path().join("nightly");
    // The operator's configuration names the admin port the broker listens on.
    let mut config = b.config.clone();
    config.admin_listen = b.admin_addr;
    let target = to.clone();
    let made = std::thread::spawn(move || backup::run(&config, &target));
    let mut during = 0;
    loop {
        let (status, _) = ask(&b, "ImprovePublicServices").await;
        assert_eq!(status, 200, "requests are served while the backup runs");
        during += 1;
        if made.is_finished() {
            break;
        }
    }
    let manifest = made.join().expect("backup thread").expect("backup");
    assert!(
        !b.state_dir().join("backups").read_dir().expect("area").any(|_| true),
        "copied out and removed"
    );
    let copied = log_lines(&to.join("audit.jsonl")).join("\n");
    for (_, id) in &acknowledged {
        assert!(
            copied.contains(id.as_str()),
            "decision {id}, acknowledged before the backup, is in it"
        );
    }
    assert_eq!(manifest.hosted, [KITA]);
    assert_eq!(manifest.catalog.datasets, 2);
    // No key is in the backup, and the hosted upload stays sealed in it.
    let key_bytes: Vec<Vec<u8>> = KEYS.iter().map(|k| std::fs::read(keys.path().join(k)).expect("key")).collect();
    for rel in manifest.files.keys() {
        let bytes = std::fs::read(to.join(rel)).expect("backup file");
        assert!(!KEYS.iter().any(|k| rel.ends_with(k)), "{rel}");
        for key in &key_bytes {
            assert!(!bytes.windows(key.len()).any(|w| w == key.as_slice()), "a key in {rel}");
        }
        assert!(
            !String::from_utf8_lossy(&bytes).contains("Petra Vogt"),
            "plain hosted data in {rel}"
        );
    }
    assert!(
        manifest.decisions.permits >= 3 && manifest.decisions.denies == 2,
        "{:?}",
        manifest.decisions
    );

    // More traffic after the backup: lost with the disk (the recovery point is the backup).
    let (_, lost) = ask(&b, "ImprovePublicServices").await;

    // The disk is lost: state directory and store.
    b.stop_and_close();
    std::fs::remove_dir_all(b.state_dir()).expect("destroy the state");
    std::fs::remove_dir_all(broker::catalog::store::private_dir(&b.state_dir())).expect("and the private store");
    let restored = backup::restore(&b.config, &to, keys.path()).expect("restore");
    assert_eq!(restored, manifest);
    b.reopen();

    // The trail verifies across the restore, with new records on it.
    let (status, new) = ask(&b, "ImprovePublicServices").await;
    assert_eq!(status, 200);
    let report = verify(&b.state_dir());
    assert_eq!(report.key_rotations, 1);
    let trail = b.audit_lines().join("\n");
    assert!(trail.contains(new.as_str()));
    assert!(!trail.contains(lost.as_str()), "a request after the backup is not restored");
    assert!(report.last_seq.expect("records") > manifest.trail.last_seq);
    for (_, id) in &acknowledged {
        assert!(trail.contains(id.as_str()));
    }
    // The counters continue where the backup left them.
    let permits = manifest.decisions.permits as f64;
    assert_eq!(metric(&b, r#"kdr_decisions_total{decision="permit"}"#).await, permits + 1.0);
    assert_eq!(
        metric(&b, r#"kdr_decisions_total{decision="deny"}"#).await,
        manifest.decisions.denies as f64
    );
    // The hosted data decrypts, minimised as before.
    let (status, csv) = kita_csv(&b).await;
    assert_eq!(status, 200, "{csv}");
    assert_eq!(csv, "bezirk,kita,plaetze\nInnenstadt,Sonnenschein,42\nUnterkochen,Regenbogen,35\n");
    assert!(during >= 1);
}

/// The backup directory copied to a fresh place, for one damage each.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Where a restore writes: a configuration of its own, so that the original stays.
fn elsewhere(config: &Config, dir: &Path) -> Config {
    let mut c = config.clone();
    c.state_dir = dir.join("state");
    c.data_dir = Some(dir.join("graph"));
    c
}

fn nothing_written(c: &Config) {
    for p in [
        c.state_dir.clone(),
        c.data_dir.clone().expect("data dir"),
        c.state_dir.with_file_name(".state.restoring"),
    ] {
        assert!(!p.exists(), "{} was written", p.display());
    }
}

fn refused(result: Result<Manifest, BackupError>, what: &str) -> String {
    match result {
        Err(e @ BackupError::Refused { .. }) => e.to_string(),
        other => panic!("{what}: not refused: {other:?}"),
    }
}

#[actix_rt::test]
async fn a_backup_damaged_in_any_part_is_refused_and_nothing_is_restored() {
    let mut b = TestBroker::start_with(deployed);
    two_datasets(&b).await;
    assert_eq!(ask(&b, "ImprovePublicServices").await.0, 200);
    assert_eq!(ask(&b, "CommercialPurpose").await.0, 403);
    let keys = keep_keys(&b);
    // No broker answers on the admin port: `broker backup` opens the stores itself.
    b.stop_and_close();
    let work = tempfile::tempdir().expect("work");
    let good = work.path().join("good");
    let (config, to) = (b.config.clone(), good.clone());
    let manifest = std::thread::spawn(move || backup::run(&config, &to))
        .join()
        .expect("thread")
        .expect("offline backup");
    assert_eq!(manifest.hosted, [KITA]);

    let target = elsewhere(&b.config, &work.path().join("target"));
    let mut parts: Vec<String> = manifest.files.keys().cloned().collect();
    parts.extend([backup::MANIFEST.to_owned(), backup::SIGNATURE.to_owned()]);
    assert!(parts.iter().any(|p| p.starts_with("graph/")) && parts.iter().any(|p| p.starts_with("graph-private/")));
    assert!(parts.iter().any(|p| p.starts_with("hosted/")) && parts.iter().any(|p| p == "audit.jsonl"));
    for (n, part) in parts.iter().enumerate() {
        let damaged = work.path().join(format!("damaged-{n}"));
        copy_tree(&good, &damaged);
        let file = damaged.join(part);
        let mut bytes = std::fs::read(&file).expect("read");
        match bytes.len() {
            0 => bytes.push(b'x'),
            len => bytes[len / 2] ^= 0x01,
        }
        std::fs::write(&file, bytes).expect("damage");
        let message = refused(backup::restore(&target, &damaged, keys.path()), part);
        assert!(message.contains(part.as_str()) || message.contains("manifest"), "{part}: {message}");
        nothing_written(&target);
        std::fs::remove_dir_all(&damaged).expect("clean");
    }

    // Incomplete, or with something added.
    let partial = work.path().join("partial");
    copy_tree(&good, &partial);
    std::fs::remove_file(partial.join(format!("hosted/{KITA}.sealed"))).expect("rm");
    assert!(refused(backup::restore(&target, &partial, keys.path()), "missing").contains("incomplete"));
    let padded = work.path().join("padded");
    copy_tree(&good, &padded);
    std::fs::write(padded.join("hosted/aalen-extra.sealed"), b"KDRH2").expect("add");
    assert!(refused(backup::restore(&target, &padded, keys.path()), "added").contains("not in the manifest"));
    nothing_written(&target);
    // Swollen: a file replaced by a terabyte (sparse, nothing on the disk) is refused by its size
    // after one byte more than the manifest's; it is not copied out until the disk is full.
    let swollen = work.path().join("swollen");
    copy_tree(&good, &swollen);
    let sealed = swollen.join(format!("hosted/{KITA}.sealed"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sealed)
        .and_then(|f| f.set_len(1 << 40))
        .expect("swell");
    let message = refused(backup::restore(&target, &swollen, keys.path()), "swollen");
    assert!(message.contains("does not match the manifest"), "{message}");
    nothing_written(&target);
    std::fs::remove_dir_all(&swollen).expect("clean");

    // Another broker's keys: the manifest is not theirs.
    let other = tempfile::tempdir().expect("other");
    let other_pki = other.path().join("state");
    std::fs::create_dir_all(&other_pki).expect("mkdir");
    broker::audit::signing::Signer::open_or_create(&other_pki).expect("a new audit key");
    for k in KEYS {
        let from: PathBuf = if k == KEYS[0] { other_pki.join(k) } else { keys.path().join(k) };
        std::fs::copy(from, other.path().join(k)).expect("copy");
    }
    let message = refused(backup::restore(&target, &good, other.path()), "another key");
    assert!(message.contains("not signed by the audit key"), "{message}");
    nothing_written(&target);

    // A state directory in use is never overwritten.
    match backup::restore(&b.config, &good, keys.path()) {
        Err(e @ BackupError::Target { .. }) => assert!(e.to_string().contains("not empty"), "{e}"),
        other => panic!("restored over a state directory: {other:?}"),
    }

    // The good backup restores.
    backup::restore(&target, &good, keys.path()).expect("restore");
    verify(&target.state_dir);
}

/// Every file under `dir` (and `dir`) owned by `uid`, as `chown -R`.
fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).expect("chown");
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_dir() {
            chown_tree(&entry.path(), uid);
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(uid)).expect("chown");
        }
    }
}

/// Found by an attacker's review: the restore staged its files *beside* the state directory
/// and renamed them into place — in `/var/lib` for the package, which the service user cannot
/// write, so `sudo -u kdr-broker broker restore` as the runbook says failed (and a state
/// directory that is a mount point or a container's volume cannot be renamed). Here `broker
/// restore` runs as an unprivileged user (nobody, by `setpriv`) into a state directory it owns
/// under a directory only root can write, the catalog inside it as the packaged configuration
/// has it. Needs root to become another user; CI runs as root.
#[actix_rt::test]
async fn restore_as_the_service_user_writes_only_inside_its_own_state_directory() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("restore_as_the_service_user…: not run, it needs root to become another user");
        return;
    }
    const NOBODY: u32 = 65534;
    let mut b = TestBroker::start_with(deployed);
    two_datasets(&b).await;
    assert_eq!(ask(&b, "ImprovePublicServices").await.0, 200);
    let keys = keep_keys(&b);
    b.stop_and_close();
    let work = tempfile::tempdir().expect("work");
    let good = work.path().join("backup");
    let (config, to) = (b.config.clone(), good.clone());
    std::thread::spawn(move || backup::run(&config, &to))
        .join()
        .expect("thread")
        .expect("offline backup");

    // /var/lib: root's, 0755; /var/lib/kdr-broker: the service user's, empty.
    use std::os::unix::fs::PermissionsExt;
    let var_lib = work.path().join("var-lib");
    let state = var_lib.join("kdr-broker");
    std::fs::create_dir_all(&state).expect("mkdir");
    for dir in [work.path(), var_lib.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // The keys where the operator keeps them, the service user's to read.
    let key_dir = work.path().join("keys");
    std::fs::create_dir(&key_dir).expect("mkdir");
    for k in KEYS {
        std::fs::copy(keys.path().join(k), key_dir.join(k)).expect("copy key");
    }
    for dir in [state.as_path(), good.as_path(), key_dir.as_path()] {
        chown_tree(dir, NOBODY);
    }
    let config = work.path().join("broker.toml");
    let text = broker::demo::demo_config("127.0.0.1:0", Some(&state.join("graph").display().to_string())).replacen(
        "base_iri = \"https://broker.kdr.example/\"",
        &format!("base_iri = \"{}\"", b.config.base_iri),
        1,
    );
    std::fs::write(&config, format!("{text}[exchange]\nstate_dir = \"{}\"\n", state.display())).expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    // The build directory may be under root's home, which nobody cannot enter.
    let binary = work.path().join("broker");
    std::fs::hard_link(env!("CARGO_BIN_EXE_broker"), &binary)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_broker"), &binary).map(drop))
        .expect("the broker binary");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&binary)
        .args(["restore", "--config"])
        .arg(&config)
        .arg("--from")
        .arg(&good)
        .arg("--keys")
        .arg(&key_dir)
        .output()
        .expect("run broker restore as nobody");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");

    let beside: Vec<_> = std::fs::read_dir(&var_lib)
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(beside, ["kdr-broker"], "nothing beside the state directory");
    for part in ["audit.jsonl", "audit-signing.key", "graph", "graph-private", "hosted"] {
        let meta = std::fs::metadata(state.join(part)).unwrap_or_else(|e| panic!("{part}: {e}"));
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY, "{part} is the service user's");
    }
    assert!(!state.join(".restoring").exists());
    verify(&state);
}
