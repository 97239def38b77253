//! Keeping the audit trail while the broker runs: a signed checkpoint every interval and on
//! shutdown, pruning past the retention period, and recording certificate revocations as the
//! CRL changes (the CRL is edited by `broker pki revoke`, outside the broker).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::file::FileAuditLog;
use super::{AdminRecord, AuditLog, Event};
use crate::config::AuditSettings;

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The background thread; [`Keeper::stop`] (or dropping it) makes the final checkpoint.
#[derive(Debug)]
pub struct Keeper {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Duties {
    log: Arc<FileAuditLog>,
    settings: AuditSettings,
    crl: PathBuf,
    /// Serials whose revocation is already in the log (kept in a small state file).
    seen_path: PathBuf,
}

impl Keeper {
    pub fn start(log: Arc<FileAuditLog>, settings: AuditSettings, crl: PathBuf, state_dir: &std::path::Path) -> Self {
        let duties = Duties {
            log,
            settings,
            crl,
            seen_path: state_dir.join("audit-revocations.json"),
        };
        duties.record_revocations();
        duties.prune();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("audit-keeper".into())
            .spawn(move || duties.run(&rx))
            .ok();
        Self { stop: Some(tx), thread }
    }

    /// Stops the thread after a final checkpoint.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Duties {
    fn run(&self, stop: &Receiver<()>) {
        let mut last_prune = Instant::now();
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(self.settings.checkpoint_interval) {
            self.record_revocations();
            self.checkpoint();
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.prune();
                last_prune = Instant::now();
            }
        }
        self.checkpoint();
    }

    fn checkpoint(&self) {
        if let Err(e) = self.log.checkpoint() {
            tracing::error!(error = %e, "audit checkpoint failed");
        }
    }

    fn prune(&self) {
        let Some(retention) = self.settings.retention else {
            return;
        };
        let now = time::OffsetDateTime::now_utc();
        // Never the current counting period: usage counts are rebuilt from its decisions.
        let before = (now - retention).min(crate::usage::period_start(now));
        // Recorded before it is made (and as aborted if it fails), like every change.
        match self.log.oldest_time() {
            Ok(Some(t)) if time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).is_ok_and(|t| t < before) => {}
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "audit pruning: the log cannot be read");
                return;
            }
        }
        let cutoff = before.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let record = AdminRecord::by_broker("audit-pruning", "audit-log", serde_json::json!({ "before": cutoff }));
        if let Err(e) = self.log.append(Event::Admin(record)) {
            tracing::error!(error = %e, "cannot record the pruning, so the log is not pruned");
            return;
        }
        match self.log.prune(before) {
            Ok(n) => tracing::info!(records = n, "audit log pruned past the retention period"),
            Err(e) => {
                tracing::error!(error = %e, "audit pruning failed");
                let why = serde_json::json!({ "before": cutoff, "reason": e.to_string() });
                if let Err(e) = self
                    .log
                    .append(Event::Admin(AdminRecord::by_broker("audit-pruning-aborted", "audit-log", why)))
                {
                    tracing::error!(error = %e, "cannot record the failed pruning");
                }
            }
        }
    }

    fn record_revocations(&self) {
        let Ok(serials) = crate::tls::revoked_serials(&self.crl) else {
            return;
        };
        let mut seen: BTreeSet<String> = std::fs::read(&self.seen_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut changed = false;
        for serial in serials {
            if seen.contains(&serial) {
                continue;
            }
            let record = AdminRecord::by_broker("certificate-revoked", serial.clone(), serde_json::Value::Null);
            if self.log.append(Event::Admin(record)).is_err() {
                return;
            }
            seen.insert(serial);
            changed = true;
        }
        if changed && let Ok(bytes) = serde_json::to_vec(&seen) {
            let _ = crate::fsutil::write_atomic(&self.seen_path, &bytes, 0o644);
        }
    }
}
