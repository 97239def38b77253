//! `broker`: the command line. Parsing and reporting only; the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use broker::catalog::Member;
use broker::config::Config;
use broker::identity::{Ags, Role};
use broker::pki::{self, CertificateAuthority, MemberCertSpec};
use broker::{demo, serve};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "broker",
    version,
    about = "Privacy-preserving data-space broker for inter-municipal data exchange"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker with a configuration file.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// HTTP worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Start a ready demo data space (Aalen and Heidenheim) in a directory.
    Demo {
        #[arg(long, default_value = "demo-dataspace")]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Requests a second per member (the load benchmarks raise it; default 1000).
        #[arg(long)]
        requests_per_second: Option<u32>,
    },
    /// Run a demo city's own API (examples/providers) behind mutual TLS, as the broker fetches it.
    ExampleProvider {
        /// `aalen` (citizen-office appointments at /appointments) or `heidenheim` (car parks at /parking).
        #[arg(long)]
        city: String,
        #[arg(long)]
        listen: SocketAddr,
        /// The city's provider certificate and key (`broker pki issue-provider`), and the CA and
        /// CRL the broker's certificate is checked against: only the broker is admitted.
        #[arg(long)]
        certificate: PathBuf,
        #[arg(long)]
        private_key: PathBuf,
        #[arg(long)]
        client_ca: PathBuf,
        #[arg(long)]
        crl: PathBuf,
        /// More to serve: `PATH=MEDIA-TYPE=FILE` (e.g. `/big=application/json=big.json`), for
        /// benchmarks with large answers.
        #[arg(long = "resource")]
        resources: Vec<String>,
    },
    /// A SPARQL query worker (started by the broker itself; reads queries on stdin).
    #[command(hide = true)]
    SparqlWorker {
        #[arg(long, conflicts_with = "nquads")]
        store: Option<PathBuf>,
        #[arg(long)]
        nquads: Option<PathBuf>,
        #[arg(long)]
        memory_bytes: u64,
        /// The broker's pid: the worker ends when its broker does.
        #[arg(long)]
        parent: Option<u32>,
    },
    /// The data space's PKI.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Members of the data space, in the configuration file (the authority on members): the
    /// broker applies a change at its next start and records it in the audit trail.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Usage policies (ODRL 2.2 in Turtle, purposes from DPV).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The catalog of a running broker (a steward certificate).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Reports from a running broker's audit trail.
    #[command(subcommand)]
    Report(ReportCommand),
    /// The audit trail (offline: needs only the log and the broker's public key).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Back up the broker's state while it runs (through its admin listener; or itself when no
    /// broker runs): catalog, audit trail to a signed checkpoint, hosted data, a signed manifest.
    /// The keys are not in it: keep `audit-signing.key`, `pseudonym.key` and `hosted.key` apart.
    Backup {
        #[arg(long)]
        config: PathBuf,
        /// A new (or empty) directory.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into an empty state directory (the broker stopped), after checking all
    /// of it: the manifest's signature, every file's hash, the trail, the catalog, the hosted
    /// data. A damaged or incomplete backup is refused and nothing is written.
    Restore {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        from: PathBuf,
        /// The directory with the keys kept apart from the backups.
        #[arg(long)]
        keys: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Checks a configuration file, with the environment's `BROKER__…` overrides, without
    /// starting anything: it parses, the certificates, key and CRL load and are in date.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Import your city's open-data portal export (DCAT-AP.de; RDF/XML, Turtle, JSON-LD or
    /// N-Triples by the file's extension): prints what was imported, updated, withdrawn,
    /// refused and repaired. Importing the same export again changes nothing.
    Import {
        file: PathBuf,
        /// Where the datasets come from (default: the export's dcat:Catalog IRI).
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain and signatures; names the first record that was altered, removed or
    /// reordered. Exit status 0 if the log verifies, 1 if not.
    Verify {
        /// The log (`<state_dir>/audit.jsonl`).
        log: PathBuf,
        /// The broker's public key (default: `audit-signing.pub` beside the log).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The latest checkpoint (default: `<log>.checkpoint.json` if it exists).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the records of a period (after verifying the log), as JSON lines or CSV.
    Export {
        log: PathBuf,
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// RFC 3339 start (inclusive) and end (exclusive) of the period.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// `jsonl` (every record) or `csv` (decisions).
        #[arg(long, default_value = "jsonl")]
        format: String,
    },
    /// Replace the audit signing key, the chain unbroken: the rotation is recorded and signed by
    /// the old key, the new key signs from then on, `audit-signing.pub` lists both. Through the
    /// running broker's admin listener, or itself when no broker runs.
    RotateKey {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Parse and check a policy; print its rule IR as JSON.
    Check { policy: PathBuf },
    /// Compile a policy to an OPA-ABI Wasm module (entrypoint kdr/policy/result).
    Compile {
        policy: PathBuf,
        /// Where to write the module.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Decide an input document (schemas/policy-input.schema.json) with a policy (compiled to
    /// Wasm first) or a Wasm module (ours or one built by `opa build -t wasm`); prints the
    /// decision document (schemas/policy-decision.schema.json).
    Eval {
        /// A policy (.ttl) or a module (.wasm).
        policy: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// Use the reference evaluator instead of the compiled module (policies only).
        #[arg(long)]
        reference: bool,
    },
    /// The policy in plain language, for governance boards.
    Explain {
        policy: PathBuf,
        #[arg(long, default_value = "de")]
        lang: policy_compiler::explain::Language,
    },
    /// The same rules as Rego (entrypoint data.kdr.policy.result).
    Rego { policy: PathBuf },
    /// Submit a policy version for a dataset as a draft (a steward certificate).
    Submit {
        policy: PathBuf,
        #[arg(long)]
        dataset: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Approve a draft: it becomes the active version (a board certificate, not the author's).
    Approve {
        #[command(flatten)]
        version: VersionArgs,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Reject a draft (a board certificate, not the author's).
    Reject {
        #[command(flatten)]
        version: VersionArgs,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Replay a version against the recorded requests of a period; lists the decisions that flip.
    Simulate {
        #[command(flatten)]
        version: VersionArgs,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Which broker to talk to, with which certificate.
#[derive(clap::Args)]
struct ConnArgs {
    /// The broker's URL.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    broker: String,
    /// The data space CA certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Your certificate and key.
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
}

impl ConnArgs {
    fn connection(self) -> broker::client::Connection {
        broker::client::Connection {
            broker: self.broker,
            ca: self.ca,
            certificate: self.cert,
            private_key: self.key,
        }
    }
}

#[derive(clap::Args)]
struct VersionArgs {
    #[arg(long)]
    dataset: String,
    #[arg(long)]
    version: u32,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Usage by time bucket, dataset, consumer city and purpose (board, or a steward's own city).
    Usage {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// `day` or `month`.
        #[arg(long, default_value = "day")]
        bucket: String,
        /// `json` or `csv`.
        #[arg(long, default_value = "json")]
        format: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Records of processing (DSGVO Art. 30) of a provider city's shared datasets.
    Processing {
        #[arg(long)]
        provider: Option<String>,
        #[arg(long, default_value = "json")]
        format: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create the data space's CA in DIR (ca.crt, ca.key with 0600, ca.crl).
    InitCa {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "Kommunaler Datenraum CA")]
        name: String,
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Issue a member certificate (system, steward or board) into OUT/NAME.crt and NAME.key.
    Issue {
        /// The CA directory.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        organisation: String,
        #[arg(long)]
        ags: Ags,
        #[arg(long)]
        role: Role,
        /// The holder's name (default: NAME).
        #[arg(long)]
        cn: Option<String>,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Issue a city's provider certificate (its own API, which the broker fetches the city's
    /// data from) for the given host names and IP addresses, naming the city by its AGS.
    IssueProvider {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        organisation: String,
        #[arg(long)]
        ags: Ags,
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Issue the broker's own certificate for the given host names and IP addresses.
    IssueServer {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Revoke a certificate and re-sign the CRL; a running broker picks it up at once.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, conflicts_with = "cert", required_unless_present = "cert")]
        serial: Option<String>,
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// Bundle a member certificate, its key and the CA certificate into a PKCS#12 file for a
    /// browser (to open the console). The password is read from the environment variable named
    /// by --password-env (never from the command line, where other users could read it).
    ExportP12 {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The data space's CA certificate (ca/ca.crt).
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "BROKER_P12_PASSWORD")]
        password_env: String,
    },
    /// Re-sign the CRL (it is valid for 30 days).
    Crl {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write the test PKI (valid, expired, revocable, non-member, wrong-CA certificates) into DIR.
    Testbed {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a member to the configuration, or replace the one with the same AGS.
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        ags: Ags,
        #[arg(long)]
        organisation: String,
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        #[arg(long)]
        contact: Option<String>,
        /// An origin of the member's own API (https://host:port); repeat for several.
        #[arg(long = "provider")]
        providers: Vec<broker::catalog::model::Origin>,
        /// The member's GovData contributor ID (an IRI of the DCAT-AP.de contributor list).
        #[arg(long)]
        contributor: Option<String>,
    },
    /// Remove a member from the configuration.
    Remove {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        ags: Ags,
    },
    /// List the members the configuration names.
    List {
        #[arg(long)]
        config: PathBuf,
    },
}

/// mimalloc instead of glibc's allocator: a request allocates and frees thousands of small
/// buffers across threads (TLS records, JSON values, headers), and glibc's arenas spent about a
/// sixth of the broker's instructions on it (callgrind, `scripts/bench-exchange.sh` load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What is logged unless `RUST_LOG` says otherwise: information and up, except that `opa_wasm`
/// opens an INFO span around every call into a policy module (one or more per request, ~2 % of
/// a worker's time under load) and logs nothing useful in it; its warnings and errors still show.
/// The access log (`access=info`: a line per request, the route pattern, status, time and
/// decision id; no path, no certificate name) is off unless asked for: it is a write per request.
const DEFAULT_LOG_FILTER: &str = "info,opa_wasm=warn,access=off";

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `BROKER_LOG_FORMAT=json`: one JSON object a line, for the data centre's log collector.
    if std::env::var("BROKER_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json().flatten_event(true).with_current_span(false).init();
    } else {
        logs.init();
    }
    if let Err(e) = run(Cli::parse()) {
        eprintln!("broker: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config, workers } => {
            let cfg = Config::load(&config)?;
            serve::run(&cfg, workers.unwrap_or_else(default_workers))?;
        }
        Command::Demo {
            dir,
            listen,
            requests_per_second,
        } => run_demo(&dir, listen, requests_per_second)?,
        Command::ExampleProvider {
            city,
            listen,
            certificate,
            private_key,
            client_ca,
            crl,
            resources: extra,
        } => {
            let mut resources =
                broker::demo::provider_resources(&city).with_context(|| format!("no example provider for '{city}' (aalen, heidenheim)"))?;
            for spec in extra {
                let mut parts = spec.splitn(3, '=');
                let (Some(path), Some(content_type), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
                    anyhow::bail!("--resource takes PATH=MEDIA-TYPE=FILE, not '{spec}'");
                };
                let body = std::fs::read(file).with_context(|| format!("reading {file}"))?;
                resources.push(broker::http::provider::Resource {
                    path: path.to_owned(),
                    content_type: content_type.to_owned(),
                    body,
                });
            }
            let tls = broker::tls::provider_server_config(&broker::tls::ServerTlsFiles {
                certificate,
                private_key,
                client_ca,
                crl,
            })?;
            let server = broker::http::provider::start(listen, tls, resources)?;
            println!(
                "example provider of {city} on https://{} (mutual TLS); Ctrl-C stops it",
                server.addr
            );
            loop {
                std::thread::park();
            }
        }
        Command::SparqlWorker {
            store,
            nquads,
            memory_bytes,
            parent,
        } => {
            broker::catalog::isolated::serve_worker(store.as_deref(), nquads.as_deref(), memory_bytes, parent)
                .map_err(anyhow::Error::msg)?;
        }
        Command::Pki(cmd) => run_pki(cmd)?,
        Command::Member(cmd) => run_member(cmd)?,
        Command::Policy(cmd) => run_policy(cmd)?,
        Command::Catalog(cmd) => run_catalog(cmd)?,
        Command::Audit(cmd) => run_audit(cmd)?,
        Command::Report(cmd) => run_report(cmd)?,
        Command::Backup { config, to } => {
            let cfg = Config::load(&config)?;
            let m = broker::backup::run(&cfg, &to)?;
            println!(
                "{}: {} records up to the checkpoint of record {}, {} members, {} datasets, {} hosted uploads, {} files",
                to.display(),
                m.trail.records,
                m.trail.last_seq,
                m.catalog.members,
                m.catalog.datasets,
                m.hosted.len(),
                m.files.len()
            );
        }
        Command::Restore { config, from, keys } => {
            let cfg = Config::load(&config)?;
            let m = broker::backup::restore(&cfg, &from, &keys)?;
            println!(
                "restored {} (made {}): {} records, {} members, {} datasets, {} hosted uploads; start the broker",
                from.display(),
                m.created,
                m.trail.records,
                m.catalog.members,
                m.catalog.datasets,
                m.hosted.len()
            );
        }
        Command::Config(ConfigCommand::Check { config }) => {
            let cfg = Config::load(&config)?;
            for note in serve::check(&cfg)? {
                println!("{note}");
            }
            println!("{}: OK", config.display());
        }
    }
    Ok(())
}

fn run_catalog(cmd: CatalogCommand) -> Result<()> {
    match cmd {
        CatalogCommand::Import { file, source, conn } => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
            let media_type = match extension.as_str() {
                "ttl" => "text/turtle",
                "jsonld" | "json" => "application/ld+json",
                "nt" => "application/n-triples",
                _ => "application/rdf+xml",
            };
            let path = format!("/v1/catalog/import{}", query(&[("source", source.as_deref())]));
            let answer = upload_with_progress(&conn.connection(), &path, &file, bytes, media_type)?;
            print_answer(&answer)?;
        }
    }
    Ok(())
}

/// Uploads `bytes` with a progress bar on standard error (drawn only on a terminal): the bytes
/// sent, then the time the broker takes to read, validate and write what it received.
fn upload_with_progress(
    conn: &broker::client::Connection,
    path: &str,
    file: &std::path::Path,
    bytes: Vec<u8>,
    media_type: &str,
) -> Result<broker::client::Answer> {
    use indicatif::{ProgressBar, ProgressStyle};
    let total = bytes.len() as u64;
    let bar = ProgressBar::new(total).with_message(format!("{} ({media_type})", file.display()));
    bar.set_style(
        ProgressStyle::with_template("{msg}\n[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} sent")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let shown = bar.clone();
    let answer = conn.upload(path, bytes, media_type, std::time::Duration::from_secs(3600), move |sent| {
        shown.set_position(sent);
        if sent >= total {
            shown.set_style(
                ProgressStyle::with_template("{msg}\n[{elapsed_precise}] {spinner} the broker reads, validates and writes it")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            shown.enable_steady_tick(std::time::Duration::from_millis(200));
        }
    });
    bar.finish_and_clear();
    Ok(answer?)
}

/// Prints an answer's body; a status of 400 or more is an error (with the problem's text).
fn print_answer(answer: &broker::client::Answer) -> Result<()> {
    let text = String::from_utf8_lossy(&answer.body);
    if answer.status >= 400 {
        bail!("the broker answered {}: {text}", answer.status);
    }
    match serde_json::from_slice::<serde_json::Value>(&answer.body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) => print!("{text}"),
    }
    Ok(())
}

/// A query string from the parameters that are set.
fn query(params: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn percent(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn review(conn: ConnArgs, v: &VersionArgs, verdict: &str, note: Option<String>) -> Result<()> {
    let body = note.map(|n| {
        (
            serde_json::to_vec(&serde_json::json!({ "note": n })).unwrap_or_default(),
            "application/json".to_owned(),
        )
    });
    let path = format!("/v1/datasets/{}/policy/versions/{}/{verdict}", v.dataset, v.version);
    print_answer(&conn.connection().call("POST", &path, body)?)
}

fn run_report(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Usage {
            from,
            to,
            bucket,
            format,
            conn,
        } => {
            let q = query(&[
                ("from", from.as_deref()),
                ("to", to.as_deref()),
                ("bucket", Some(&bucket)),
                ("format", Some(&format)),
            ]);
            print_answer(&conn.connection().call("GET", &format!("/v1/reports/usage{q}"), None)?)
        }
        ReportCommand::Processing { provider, format, conn } => {
            let q = query(&[("provider", provider.as_deref()), ("format", Some(&format))]);
            print_answer(&conn.connection().call("GET", &format!("/v1/reports/processing{q}"), None)?)
        }
    }
}

fn verify_log(log: &std::path::Path, public_key: Option<PathBuf>, checkpoint: Option<PathBuf>) -> Result<broker::audit::chain::Report> {
    let public_key = public_key.unwrap_or_else(|| log.with_file_name("audit-signing.pub"));
    let checkpoint = checkpoint.or_else(|| Some(broker::audit::file::checkpoint_path(log)).filter(|p| p.exists()));
    Ok(broker::audit::chain::verify_files(log, &public_key, checkpoint.as_deref())?)
}

fn run_audit(cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Verify {
            log,
            public_key,
            checkpoint,
            json,
        } => {
            let report = verify_log(&log, public_key, checkpoint)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", broker::audit::chain::describe(&report));
            }
            if !report.ok() {
                std::process::exit(1);
            }
        }
        AuditCommand::Export {
            log,
            public_key,
            from,
            to,
            format,
        } => {
            let report = verify_log(&log, public_key, None)?;
            if let Some(b) = report.breach {
                bail!("the log does not verify, nothing exported: {}", b.message);
            }
            let period = broker::audit::export::Period::parse(from.as_deref(), to.as_deref())?;
            let entries = broker::audit::export::read_entries(&log)?;
            let out = broker::audit::export::export(&entries, &period, &format)?;
            print!("{out}");
        }
        AuditCommand::RotateKey { config } => {
            let cfg = Config::load(&config)?;
            let public = serve::rotate_audit_key(&cfg)?;
            println!("the audit trail is signed with the key {public} from now on; give it to the board (runbook §4)");
        }
    }
    Ok(())
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

fn run_pki(cmd: PkiCommand) -> Result<()> {
    match cmd {
        PkiCommand::InitCa { dir, name, days } => {
            CertificateAuthority::create(&dir, &name, days)?;
            println!("CA created in {}", dir.display());
        }
        PkiCommand::Issue {
            dir,
            name,
            out,
            organisation,
            ags,
            role,
            cn,
            days,
        } => {
            let ca = CertificateAuthority::open(&dir)?;
            let spec = MemberCertSpec::valid_for_days(cn.as_deref().unwrap_or(&name), &organisation, ags, role, days);
            let issued = ca.issue_member(&spec)?;
            let (crt, key) = issued.write(&out.unwrap_or_else(|| dir.clone()), &name)?;
            println!("issued {} (serial {}), key {}", crt.display(), issued.serial, key.display());
        }
        PkiCommand::IssueProvider {
            dir,
            name,
            out,
            organisation,
            ags,
            hosts,
            days,
        } => {
            let ca = CertificateAuthority::open(&dir)?;
            let issued = ca.issue_provider(&name, &organisation, &ags, &hosts, days)?;
            let (crt, _) = issued.write(&out.unwrap_or_else(|| dir.clone()), &name)?;
            println!("issued {} (serial {}) for the provider of {ags}", crt.display(), issued.serial);
        }
        PkiCommand::IssueServer {
            dir,
            name,
            out,
            hosts,
            days,
        } => {
            let ca = CertificateAuthority::open(&dir)?;
            let issued = ca.issue_server(&name, "Kommunaler Datenraum Broker", &hosts, days)?;
            let (crt, _) = issued.write(&out.unwrap_or_else(|| dir.clone()), &name)?;
            println!("issued {} (serial {})", crt.display(), issued.serial);
        }
        PkiCommand::Revoke { dir, serial, cert } => {
            let ca = CertificateAuthority::open(&dir)?;
            let serial = match (serial, cert) {
                (Some(s), _) => s,
                (None, Some(c)) => pki::serial_of_cert_file(&c)?,
                (None, None) => bail!("give --serial or --cert"),
            };
            ca.revoke(&serial)?;
            println!("revoked {serial}; CRL {} re-signed", ca.crl_path().display());
        }
        PkiCommand::ExportP12 {
            cert,
            key,
            ca,
            out,
            password_env,
        } => {
            let password = std::env::var(&password_env)
                .map_err(|_| anyhow::anyhow!("set the PKCS#12 password in the environment variable {password_env}"))?;
            let bytes = pki::export_pkcs12(&cert, &key, &ca, &password)?;
            broker::fsutil::write_atomic(&out, &bytes, 0o600)?;
            println!(
                "wrote {} (PKCS#12, key encrypted with AES-256; import it into the browser)",
                out.display()
            );
        }
        PkiCommand::Crl { dir } => {
            let ca = CertificateAuthority::open(&dir)?;
            ca.resign_crl()?;
            println!("CRL {} re-signed", ca.crl_path().display());
        }
        PkiCommand::Testbed { dir } => {
            demo::write_test_pki(&dir)?;
            println!("test PKI written to {} (see its README.md)", dir.display());
        }
    }
    Ok(())
}

fn load_policy(path: &std::path::Path) -> Result<(policy_compiler::Policy, policy_compiler::Vocabulary)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the policy '{}'", path.display()))?;
    let vocab = policy_compiler::Vocabulary::standard()?;
    let syntax = policy_compiler::parse::Syntax::from_path(path);
    let policy = policy_compiler::parse::parse_one(&text, syntax, &vocab).with_context(|| format!("compiling '{}'", path.display()))?;
    Ok((policy, vocab))
}

/// Evaluates through a Wasm module (compiling a policy first), as the broker does.
fn eval_wasm(path: &std::path::Path, input: &policy_compiler::input::PolicyInput) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading '{}'", path.display()))?;
    let module_bytes = if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        let (p, vocab) = load_policy(path)?;
        policy_compiler::wasm::compile(&p, &vocab)?
    };
    let engine = policy_evaluator::Engine::new(policy_evaluator::Limits::default())?;
    let module = engine.load(&module_bytes)?;
    let input = serde_json::to_value(input)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let decision = rt.block_on(policy_evaluator::Worker::new(engine).decide(&module, &input));
    let mut out = serde_json::to_value(&decision)?;
    out["module"] = serde_json::Value::String(module.hash.to_string());
    Ok(out)
}

fn run_policy(cmd: PolicyCommand) -> Result<()> {
    use policy_compiler::eval::{decide, evaluate};
    match cmd {
        PolicyCommand::Check { policy } => {
            let (p, _) = load_policy(&policy)?;
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
        PolicyCommand::Compile { policy, output } => {
            let (p, vocab) = load_policy(&policy)?;
            let bytes = policy_compiler::wasm::compile(&p, &vocab)?;
            std::fs::write(&output, &bytes).with_context(|| format!("writing '{}'", output.display()))?;
            println!(
                "{}: {} bytes, {}",
                output.display(),
                bytes.len(),
                policy_evaluator::ModuleHash::of(&bytes)
            );
        }
        PolicyCommand::Eval { policy, input, reference } => {
            let text = std::fs::read_to_string(&input).with_context(|| format!("reading the input '{}'", input.display()))?;
            let doc: policy_compiler::input::PolicyInput =
                serde_json::from_str(&text).with_context(|| format!("'{}' is not a policy input document", input.display()))?;
            let out = if reference {
                let (p, vocab) = load_policy(&policy)?;
                let (req, world) = doc.to_request_world();
                let reports = evaluate(&p, &req, &world, &vocab);
                serde_json::json!({ "decision": decide(&p, &reports), "policy": p.uid, "rules": reports })
            } else {
                eval_wasm(&policy, &doc)?
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        PolicyCommand::Explain { policy, lang } => {
            let (p, _) = load_policy(&policy)?;
            print!("{}", policy_compiler::explain::explain(&p, lang));
        }
        PolicyCommand::Rego { policy } => {
            let (p, vocab) = load_policy(&policy)?;
            print!("{}", policy_compiler::rego::render(&p, &vocab)?);
        }
        PolicyCommand::Submit { policy, dataset, conn } => {
            let bytes = std::fs::read(&policy).with_context(|| format!("cannot read {}", policy.display()))?;
            let media_type = if policy.extension().is_some_and(|e| e == "jsonld" || e == "json") {
                "application/ld+json"
            } else {
                "text/turtle"
            };
            let path = format!("/v1/datasets/{dataset}/policy/versions");
            print_answer(&conn.connection().call("POST", &path, Some((bytes, media_type.to_owned())))?)?;
        }
        PolicyCommand::Approve { version, note, conn } => review(conn, &version, "approve", note)?,
        PolicyCommand::Reject { version, note, conn } => review(conn, &version, "reject", note)?,
        PolicyCommand::Simulate { version, from, to, conn } => {
            let q = query(&[("from", from.as_deref()), ("to", to.as_deref())]);
            let path = format!("/v1/datasets/{}/policy/versions/{}/simulate{q}", version.dataset, version.version);
            print_answer(&conn.connection().call("POST", &path, None)?)?;
        }
    }
    Ok(())
}

fn run_member(cmd: MemberCommand) -> Result<()> {
    match cmd {
        MemberCommand::Add {
            config,
            ags,
            organisation,
            roles,
            contact,
            providers,
            contributor,
        } => {
            let member = Member {
                ags,
                organisation,
                roles,
                contact,
                providers,
                contributor,
            };
            broker::config::edit_members(&config, |members| {
                match members.iter_mut().find(|m| m.ags == member.ags) {
                    Some(m) => *m = member.clone(),
                    None => members.push(member.clone()),
                }
                Ok(())
            })?;
            println!(
                "member {} written to {}; the broker applies it at its next start",
                member.ags,
                config.display()
            );
        }
        MemberCommand::Remove { config, ags } => {
            broker::config::edit_members(&config, |members| {
                let before = members.len();
                members.retain(|m| m.ags != ags);
                if members.len() == before {
                    return Err(format!("{} names no member {ags}", config.display()));
                }
                Ok(())
            })?;
            println!(
                "member {ags} removed from {}; the broker applies it at its next start",
                config.display()
            );
        }
        MemberCommand::List { config } => {
            let cfg = Config::load(&config)?;
            for m in &cfg.members {
                let roles: Vec<&str> = m.roles.iter().map(|r| r.as_str()).collect();
                let providers: Vec<&str> = m.providers.iter().map(|o| o.as_str()).collect();
                println!("{}  {}  [{}]  {}", m.ags, m.organisation, roles.join(", "), providers.join(" "));
            }
        }
    }
    Ok(())
}

fn run_demo(dir: &std::path::Path, listen: SocketAddr, requests_per_second: Option<u32>) -> Result<()> {
    let stop = stop_signals()?;
    let pki_dir = dir.join("pki");
    if !pki_dir.join("ca").join(pki::CA_CERT).exists() {
        std::fs::create_dir_all(&pki_dir).with_context(|| format!("creating {}", pki_dir.display()))?;
        demo::write_demo_pki(&pki_dir)?;
    }
    let config_path = dir.join("broker.toml");
    // The next port, or any free one when the broker's is chosen by the system.
    let public = SocketAddr::new(listen.ip(), if listen.port() == 0 { 0 } else { listen.port().saturating_add(1) });
    let mut text = demo::demo_config(&listen.to_string(), Some("data")) + &demo::demo_public_config(&public.to_string());
    if let Some(n) = requests_per_second {
        text = text.replacen("requests_per_second = 1000", &format!("requests_per_second = {n}"), 1);
    }
    std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;
    let cfg = Config::load(&config_path)?;
    let catalog = serve::open_catalog(&cfg)?;
    let providers = demo::start_example_providers(&pki_dir)?;
    let server = serve::start_background(&cfg, catalog, default_workers())?;
    demo::seed_through_api(server.addr, &pki_dir)?;
    println!("{}", demo::curl_help(dir, &server.addr.to_string(), server.public_addr));
    let layout = demo::PkiLayout { dir: pki_dir.clone() };
    let client = broker::tls::client_config(
        &layout.ca_cert(),
        &layout.cert("heidenheim-system"),
        &layout.key("heidenheim-system"),
    )?;
    println!("{}", broker::http::provider::demo_requests(server.addr, client));
    // Run until SIGINT or SIGTERM; actix's own signal handling is per system, so wait here.
    let _ = stop.recv();
    server.stop();
    drop(providers);
    Ok(())
}

/// SIGINT and SIGTERM, caught from now on (registered before this returns); the receiver gets
/// one message when either arrives. Registered before any server starts: a demo sent SIGTERM
/// while it started used to keep running with its listeners closed (actix stops its servers on
/// SIGTERM by itself) — the regression test sends it right after the demo's last line.
fn stop_signals() -> Result<std::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(ready_tx.send(Err(e))),
        };
        rt.block_on(async move {
            let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => return drop(ready_tx.send(Err(e))),
            };
            let _ = ready_tx.send(Ok(()));
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        });
        let _ = tx.send(());
    });
    ready_rx
        .recv()
        .context("the signal thread ended before registering")?
        .context("registering SIGINT and SIGTERM")?;
    Ok(rx)
}
