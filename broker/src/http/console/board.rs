//! The board's records: the DSGVO Art. 30 records of processing (printable) and the state of
//! the audit trail (its last signed checkpoint, and a verification of the whole chain on
//! request).
//!
//! Both read what the API and `broker audit verify` read — [`crate::http::reports`] and
//! [`crate::audit::chain`] — so the page cannot tell a different story from the JSON or the
//! command line.

use std::path::PathBuf;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::lang::{Lang, Ui};
use super::{ConsoleError, Nav, page};
use crate::audit::chain::{self, Report};
use crate::catalog::labels::labels;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::identity::Role;

/// One record of processing, for people.
pub struct RecordView {
    pub title: String,
    pub dataset: String,
    pub controller: String,
    pub purposes: Vec<String>,
    pub recipients: Vec<String>,
    pub fields: String,
    pub themes: String,
    pub retention: String,
    pub measures: Vec<String>,
    pub policy: String,
    pub deliveries: String,
}

#[derive(Template)]
#[template(path = "console/records.html")]
struct Records {
    nav: Nav,
    year: i32,
    as_of: String,
    records: Vec<RecordView>,
    total: usize,
    page: usize,
    pages: usize,
}

#[derive(Deserialize)]
pub struct YearQuery {
    jahr: Option<i32>,
    seite: Option<usize>,
}

/// `P30D` as "30 Tage" ("30 days"); other ISO 8601 durations as written.
fn duration_in(iso: &str, lang: Lang) -> String {
    let days = iso
        .strip_prefix('P')
        .and_then(|d| d.strip_suffix('D'))
        .and_then(|d| d.parse::<u64>().ok());
    match (days, lang) {
        (Some(1), Lang::De) => "1 Tag".to_owned(),
        (Some(n), Lang::De) => format!("{n} Tage"),
        (Some(1), Lang::En) => "1 day".to_owned(),
        (Some(n), Lang::En) => format!("{n} days"),
        (None, _) => iso.to_owned(),
    }
}

/// The records of processing of the caller's city's datasets in a year.
pub async fn records(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    q: web::Query<YearQuery>,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    caller.require(&[Role::Board, Role::Steward], "das Verzeichnis der Verarbeitungstätigkeiten")?;
    let year = q.jahr.unwrap_or_else(|| time::OffsetDateTime::now_utc().year());
    super::check_year(year)?;
    // A page of the city's datasets (the search index pages them), each with the rules of its
    // version in force, and its deliveries of the year from the tally: the page costs the same
    // with ten datasets as with a thousand, and with a short trail as with a long one.
    let page_no = q.seite.unwrap_or(1).clamp(1, 10_000);
    let (total, own) = super::pages::own_datasets(&state, &caller, "", page_no).await?;
    let with_policies: Vec<_> = own
        .into_iter()
        .map(|(d, versions)| {
            let policy = versions.iter().find(|v| v.active).and_then(|v| {
                let syntax =
                    policy_compiler::parse::Syntax::from_media_type(&v.media_type).unwrap_or(policy_compiler::parse::Syntax::Turtle);
                policy_compiler::parse::parse_one(&v.source, syntax, &state.vocab)
                    .ok()
                    .map(|p| (v.version, p))
            });
            (d, policy)
        })
        .collect();
    let found = crate::reports::processing_records_in_year(&with_policies, &state.exchange.tally, &year.to_string());
    let names: std::collections::HashMap<String, String> =
        super::members(&state).await?.into_iter().map(|(a, o)| (a.to_string(), o)).collect();
    let name = |ags: &str| names.get(ags).cloned().unwrap_or_else(|| ags.to_owned());
    let l = labels();
    let (lang, language) = (ui.lang, ui.lang.language());
    let records = found
        .into_iter()
        .map(|r| RecordView {
            controller: name(&r.controller),
            purposes: r.purposes.iter().map(|p| l.purpose_in(p, language).to_owned()).collect(),
            recipients: r
                .recipient_pairs
                .iter()
                .map(|(c, p)| format!("{} ({}: {})", name(c), lang.t("Zweck"), l.purpose_in(p, language)))
                .collect(),
            fields: r.fields.join(", "),
            themes: r.themes.iter().map(|t| l.theme_in(t, language)).collect::<Vec<_>>().join(", "),
            retention: r.retention.as_deref().map_or_else(
                || lang.t("keine Löschpflicht in der Richtlinie").to_owned(),
                |d| duration_in(d, lang),
            ),
            measures: if lang == Lang::De {
                r.technical_measures_de
            } else {
                r.technical_measures
            },
            policy: r
                .policy_version
                .map_or_else(|| lang.t("keine in Kraft").to_owned(), |v| format!("{} {v}", lang.t("Version"))),
            deliveries: crate::german::number_in(r.deliveries, language),
            title: r.title,
            dataset: r.dataset,
        })
        .collect();
    page(&Records {
        nav: Nav::of(&caller, &ui, "records"),
        year,
        as_of: crate::german::date_time_in(&crate::audit::now_rfc3339(), language),
        records,
        total,
        page: page_no,
        pages: total.div_ceil(super::pages::PER_PAGE).max(1),
    })
}

/// Where the trail and its signatures are (in the state directory), and the last verification.
#[derive(Debug)]
pub struct TrailState {
    pub log: PathBuf,
    pub public_key: PathBuf,
    /// The last verification: when it ran, and what it found.
    last: std::sync::Mutex<Option<(String, Report)>>,
    /// One verification at a time (it reads the whole trail).
    running: std::sync::Mutex<()>,
}

impl TrailState {
    pub fn in_state_dir(dir: &std::path::Path) -> Self {
        Self {
            log: dir.join("audit.jsonl"),
            public_key: dir.join("audit-signing.pub"),
            last: std::sync::Mutex::new(None),
            running: std::sync::Mutex::new(()),
        }
    }

    fn checkpoint(&self) -> PathBuf {
        crate::audit::file::checkpoint_path(&self.log)
    }
}

#[derive(Template)]
#[template(path = "console/trail.html")]
struct Trail {
    nav: Nav,
    checkpoint_seq: Option<u64>,
    checkpoint_time: String,
    checkpoint_valid: bool,
    checkpoint_problem: Option<String>,
    verified_at: Option<String>,
    verified_ok: bool,
    verified: Vec<String>,
    records: String,
    public_key: String,
}

#[derive(Deserialize)]
pub struct TrailQuery {
    pruefen: Option<u8>,
}

/// The report for people, line by line (English: the command line's words).
fn describe_in(r: &Report, lang: Lang) -> Vec<String> {
    if lang == Lang::En {
        return chain::describe(r).lines().map(str::to_owned).collect();
    }
    let mut out = Vec::new();
    match &r.breach {
        None => out.push(format!(
            "Die Kette ist unversehrt: {} Einträge, {} gültig signierte Prüfpunkte.",
            crate::german::number(r.records),
            crate::german::number(r.checkpoints)
        )),
        Some(b) => out.push(format!("VERLETZT bei Eintrag {} (Zeile {}): {}", b.seq, b.line, b.message)),
    }
    if let Some(p) = r.pruned_through {
        out.push(format!("Gelöscht (Aufbewahrungsfrist) bis Eintrag {p}, mit signiertem Anker."));
    }
    match (r.last_signed_seq, r.last_seq) {
        (Some(s), Some(l)) if s < l => out.push(format!(
            "Die Einträge {}–{l} folgen der letzten Signatur (nur durch die Kette gesichert, bis zum nächsten Prüfpunkt).",
            s + 1
        )),
        (None, Some(_)) => out.push("Noch kein signierter Prüfpunkt (nur die Kette).".to_owned()),
        _ => {}
    }
    if r.torn_tail_bytes > 0 {
        out.push(format!(
            "Eine unvollständige letzte Zeile ({} Bytes) wurde übergangen: ein durch einen Absturz abgebrochener, nie bestätigter Schreibvorgang.",
            r.torn_tail_bytes
        ));
    }
    out
}

/// The audit trail's state; `?pruefen=1` verifies the whole chain first.
pub async fn trail(
    caller: Result<Caller, Problem>,
    state: web::Data<AppState>,
    q: web::Query<TrailQuery>,
    ui: Ui,
) -> Result<HttpResponse, ConsoleError> {
    let caller = caller?;
    caller.require(&[Role::Board], "den Zustand des Prüfprotokolls")?;
    let files = state.trail.clone();
    if q.pruefen.is_some() {
        let files = files.clone();
        web::block(move || {
            let Ok(_one) = files.running.try_lock() else {
                return Err(Problem::busy(
                    "eine Prüfung läuft bereits; laden Sie die Seite gleich noch einmal",
                    5,
                ));
            };
            let checkpoint = files.checkpoint();
            let checkpoint = checkpoint.exists().then_some(checkpoint.as_path());
            let report = chain::verify_files(&files.log, &files.public_key, checkpoint)
                .map_err(|e| Problem::internal("the audit trail cannot be read", e))?;
            tracing::info!(ok = report.ok(), records = report.records, "audit trail verified from the console");
            *files.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((crate::audit::now_rfc3339(), report));
            Ok(())
        })
        .await
        .map_err(Problem::from)??;
    }
    let public_key = std::fs::read_to_string(&files.public_key).unwrap_or_default().trim().to_owned();
    let (checkpoint_seq, checkpoint_time, checkpoint_valid, checkpoint_problem) = read_checkpoint(&files, &public_key, ui.lang);
    let last = files.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    page(&Trail {
        nav: Nav::of(&caller, &ui, "trail"),
        checkpoint_seq,
        checkpoint_time,
        checkpoint_valid,
        checkpoint_problem,
        verified_at: last.as_ref().map(|(t, _)| crate::german::date_time_in(t, ui.lang.language())),
        verified_ok: last.as_ref().is_some_and(|(_, r)| r.ok()),
        verified: last.as_ref().map(|(_, r)| describe_in(r, ui.lang)).unwrap_or_default(),
        records: last
            .as_ref()
            .map(|(_, r)| crate::german::number_in(r.records, ui.lang.language()))
            .unwrap_or_default(),
        public_key,
    })
}

/// The checkpoint file beside the trail, and whether its signature verifies with the key.
fn read_checkpoint(files: &TrailState, public_key: &str, lang: Lang) -> (Option<u64>, String, bool, Option<String>) {
    let bytes = match std::fs::read(files.checkpoint()) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (None, String::new(), false, Some(lang.t("Noch kein Prüfpunkt signiert.").to_owned()));
        }
        Err(e) => {
            return (
                None,
                String::new(),
                false,
                Some(format!("{} {e}", lang.t("Die Prüfpunktdatei ist nicht lesbar:"))),
            );
        }
    };
    let Ok(cp) = serde_json::from_slice::<crate::audit::signing::CheckpointFile>(&bytes) else {
        return (
            None,
            String::new(),
            false,
            Some(lang.t("Die Prüfpunktdatei ist beschädigt.").to_owned()),
        );
    };
    // The current key is the last one listed (earlier ones were rotated out).
    let valid = crate::audit::signing::parse_public_keys(public_key)
        .is_ok_and(|keys| keys.last().is_some_and(|k| k.verifies(cp.seq, &cp.hash, &cp.signed)));
    let problem = (!valid).then(|| {
        lang.t("Die Signatur des Prüfpunkts passt nicht zum öffentlichen Schlüssel des Brokers.")
            .to_owned()
    });
    (
        Some(cp.seq),
        crate::german::date_time_in(&cp.signed.time, lang.language()),
        valid,
        problem,
    )
}
