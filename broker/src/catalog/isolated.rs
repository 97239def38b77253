//! SPARQL queries in worker processes, where a bomb costs only itself.
//!
//! Why processes: oxigraph stops a query at its deadline only when the query next reads the
//! store. A plan that recombines rows it already holds (a cross product of `VALUES`, a string
//! doubled by `CONCAT` 26 times) reads nothing and runs on, using a core and gigabytes, long after
//! its caller was told it timed out; a thread cannot be stopped from outside. Measured on the
//! demo: four such queries kept the endpoint answering 503 for two and a half minutes at 130 %
//! CPU, and one doubled string took 1 GB. A process can be stopped: at the deadline the broker
//! kills the worker (`SIGKILL`), the CPU is free at once, and the slot with it; the operating
//! system caps each worker's memory (`RLIMIT_AS`), so a bomb dies in the worker, not in the
//! broker.
//!
//! The workers read a *snapshot* of the graph: for the RocksDB store a checkpoint (oxigraph's
//! `backup`: hard links, milliseconds, opened read-only by the workers and written by no one),
//! for the in-memory store an N-Quads dump each worker loads. A write to the catalog starts a new
//! generation; the next query takes a new snapshot, and workers of an older one are replaced as
//! they come back. Queries see the graph as of the last write before them.
//!
//! Slots: at most `max_concurrent` queries run at once, and at most `max_per_member` of them for
//! one member (all its certificates together), so one member cannot take them all. Idle workers
//! are kept for the next query (a process start and a store open cost ~0.1 s). A query still
//! running after [`QUERY_GRACE`] drops to the lowest CPU priority: it takes what the data
//! exchanges leave.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use oxigraph::io::RdfFormat;
use oxigraph::store::Store;
use serde::{Deserialize, Serialize};

use super::sparql::{QueryLimits, QueryOutput, SparqlError};

/// How the workers are started and bounded.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The broker binary (`broker sparql-worker` is the worker).
    pub executable: PathBuf,
    /// Where snapshots are kept.
    pub dir: PathBuf,
    /// Address space of one worker, in bytes.
    pub memory_bytes: u64,
}

/// One query as the worker reads it (a JSON line on its standard input).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRequest {
    pub query: String,
    pub accept: String,
    pub max_results: usize,
    pub max_bytes: usize,
}

/// The head of a worker's answer (a JSON line on its standard output), followed by `length`
/// bytes of body when it is `ok`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum WorkerAnswer {
    Ok { content_type: String, length: usize },
    Syntax { message: String },
    TooManyResults { limit: usize },
    TooLarge { limit: usize },
    NotAcceptable { accept: String, form: String, offered: String },
    Failed { message: String },
}

/// Where the workers' graph comes from.
enum Source {
    /// RocksDB: checkpoints.
    OnDisk,
    /// In memory: N-Quads dumps.
    InMemory,
}

struct Snapshot {
    generation: u64,
    path: PathBuf,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    /// With the reading thread while a query runs.
    stdout: Option<BufReader<ChildStdout>>,
    generation: u64,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The worker processes of one catalog.
pub struct Isolated {
    store: Store,
    source: Source,
    settings: WorkerSettings,
    generation: Arc<AtomicU64>,
    snapshots: Mutex<Vec<Snapshot>>,
    idle: Mutex<Vec<Worker>>,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    total: usize,
    per_member: HashMap<String, usize>,
}

impl std::fmt::Debug for Isolated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Isolated").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A taken query slot, given back on drop.
struct SlotGuard<'a> {
    slots: &'a Mutex<Slots>,
    member: String,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_member.get_mut(&self.member) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_member.remove(&self.member);
            }
        }
    }
}

fn failed(e: impl std::fmt::Display) -> SparqlError {
    SparqlError::Evaluation(e.to_string())
}

impl Isolated {
    /// Workers for `store`; `on_disk` says whether it is RocksDB (checkpoints) or in memory
    /// (dumps). `generation` is bumped by the catalog on every write.
    pub fn new(store: Store, on_disk: bool, settings: WorkerSettings, generation: Arc<AtomicU64>) -> Self {
        Self {
            store,
            source: if on_disk { Source::OnDisk } else { Source::InMemory },
            settings,
            generation,
            snapshots: Mutex::new(Vec::new()),
            idle: Mutex::new(Vec::new()),
            slots: Mutex::default(),
        }
    }

    /// Queries running now (for tests and metrics).
    pub fn running(&self) -> usize {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner).total
    }

    /// Runs `query` for `member` in a worker, within `limits`.
    pub fn query(&self, query: &str, accept: &str, limits: &QueryLimits, member: &str) -> Result<QueryOutput, SparqlError> {
        let _slot = self.take_slot(member, limits)?;
        let snapshot = self.snapshot()?;
        let mut worker = self.worker(&snapshot)?;
        let request = WorkerRequest {
            query: query.to_owned(),
            accept: accept.to_owned(),
            max_results: limits.max_results,
            max_bytes: limits.max_result_bytes,
        };
        let mut line = serde_json::to_vec(&request).map_err(failed)?;
        line.push(b'\n');
        if worker.stdin.write_all(&line).and_then(|()| worker.stdin.flush()).is_err() {
            // A worker that died while idle: once more with a new one.
            worker = self.spawn(&snapshot)?;
            worker.stdin.write_all(&line).and_then(|()| worker.stdin.flush()).map_err(failed)?;
        }
        let (tx, rx) = mpsc::channel();
        let mut stdout = worker.stdout.take().ok_or_else(|| failed("the worker's output is gone"))?;
        let memory_mib = self.settings.memory_bytes >> 20;
        let max_bytes = limits.max_result_bytes;
        std::thread::Builder::new()
            .name("sparql-answer".into())
            .spawn(move || {
                let answer = read_answer(&mut stdout, memory_mib, max_bytes);
                let _ = tx.send((answer, stdout));
            })
            .map_err(failed)?;
        match rx.recv_timeout(limits.timeout) {
            Ok((answer, stdout)) => {
                worker.stdout = Some(stdout);
                // A worker that failed (or died) is not used again; one that answered is.
                if !matches!(answer, Err(SparqlError::Evaluation(_) | SparqlError::MemoryLimit(_))) {
                    self.give_back(worker);
                }
                answer
            }
            Err(_) => {
                // Past the deadline: the worker is killed now (dropping it kills and reaps it),
                // its CPU and memory are free at once, and so is the slot.
                drop(worker);
                Err(SparqlError::Timeout(limits.timeout))
            }
        }
    }

    fn take_slot(&self, member: &str, limits: &QueryLimits) -> Result<SlotGuard<'_>, SparqlError> {
        let mut s = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.total >= limits.max_concurrent {
            return Err(SparqlError::Busy(limits.max_concurrent));
        }
        let mine = s.per_member.get(member).copied().unwrap_or(0);
        if mine >= limits.max_per_member {
            return Err(SparqlError::MemberBusy(limits.max_per_member));
        }
        s.total += 1;
        *s.per_member.entry(member.to_owned()).or_insert(0) += 1;
        Ok(SlotGuard {
            slots: &self.slots,
            member: member.to_owned(),
        })
    }

    /// The snapshot of the current generation, taken now if there is none.
    fn snapshot(&self) -> Result<Arc<PathBuf>, SparqlError> {
        let mut snapshots = self.snapshots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(s) = snapshots.last().filter(|s| s.generation == generation) {
            return Ok(Arc::new(s.path.clone()));
        }
        std::fs::create_dir_all(&self.settings.dir).map_err(failed)?;
        let path = self.settings.dir.join(format!("snapshot-{}-{generation}", std::process::id()));
        remove(&path);
        match self.source {
            Source::OnDisk => checkpoint(&self.store, &path)?,
            Source::InMemory => {
                let file = std::fs::File::create(&path).map_err(failed)?;
                let mut w = std::io::BufWriter::new(file);
                self.store.dump_to_writer(RdfFormat::NQuads, &mut w).map_err(failed)?;
                w.flush().map_err(failed)?;
            }
        }
        snapshots.push(Snapshot {
            generation,
            path: path.clone(),
        });
        // Workers open their snapshot when they start; two generations back nobody starts.
        while snapshots.len() > 2 {
            let old = snapshots.remove(0);
            remove(&old.path);
        }
        // Idle workers of older generations are not used again.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|w| w.generation == generation);
        Ok(Arc::new(path))
    }

    fn worker(&self, snapshot: &Arc<PathBuf>) -> Result<Worker, SparqlError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let reusable = {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = idle.iter().position(|w| w.generation == generation);
            at.map(|i| idle.swap_remove(i))
        };
        match reusable {
            Some(w) => Ok(w),
            None => self.spawn(snapshot),
        }
    }

    fn spawn(&self, snapshot: &Path) -> Result<Worker, SparqlError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let kind = match self.source {
            Source::OnDisk => "--store",
            Source::InMemory => "--nquads",
        };
        let mut child = Command::new(&self.settings.executable)
            .arg("sparql-worker")
            .arg(kind)
            .arg(snapshot)
            .arg("--memory-bytes")
            .arg(self.settings.memory_bytes.to_string())
            .arg("--parent")
            .arg(std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(format!("cannot start a query worker ({}): {e}", self.settings.executable.display())))?;
        let stdin = child.stdin.take().ok_or_else(|| failed("the worker has no standard input"))?;
        let stdout = child.stdout.take().ok_or_else(|| failed("the worker has no standard output"))?;
        Ok(Worker {
            child,
            stdin,
            stdout: Some(BufReader::new(stdout)),
            generation,
        })
    }

    fn give_back(&self, worker: Worker) {
        if worker.generation != self.generation.load(Ordering::SeqCst) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        idle.push(worker);
    }
}

/// How long a query runs at its broker's CPU priority before it is demoted to the lowest.
///
/// Why: a deadline and a memory cap bound what one bomb costs, but not while it runs: one member's
/// two slots, each busy with a bomb until its deadline, took both cores of a two-core machine and
/// brokered requests fell to a tenth (bench-hostile, limits lifted). A query demoted to niceness
/// 19 gets about 1/70 of a core's time against each busy broker thread, so it uses the CPU the
/// data exchanges leave (on an idle machine it runs at full speed as before). Demoting every
/// query from the start made another member's plain `ASK` wait behind the exchanges for two
/// seconds; ordinary queries end well within this grace and are not demoted.
const QUERY_GRACE: Duration = Duration::from_millis(200);

/// Runs `query` on a thread of its own, and lowers that thread's priority (Linux gives each
/// thread its own niceness) if it is still running after [`QUERY_GRACE`]. A thread per query,
/// because an unprivileged process cannot raise a priority again once lowered.
fn run_demoted<T: Send>(query: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let (done_tx, done) = mpsc::channel();
        let (tid_tx, tid) = mpsc::channel();
        std::thread::Builder::new()
            .name("query".into())
            // As much stack as the main thread had: deeply nested queries recurse.
            .stack_size(8 << 20)
            .spawn_scoped(scope, move || {
                let _ = tid_tx.send(rustix::thread::gettid());
                let _ = done_tx.send(query());
            })
            .map_err(|e| format!("cannot start the query's thread: {e}"))?;
        let tid = tid.recv().map_err(|_| "the query's thread ended at its start".to_owned())?;
        match done.recv_timeout(QUERY_GRACE) {
            Ok(answer) => return Ok(answer),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the query's thread failed".into()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // Best effort: a query that cannot be demoted still ends at its deadline.
        let _ = rustix::process::setpriority_process(Some(tid), 19);
        done.recv().map_err(|_| "the query's thread failed".to_owned())
    })
}

/// How often a worker looks whether its broker still runs.
const PARENT_WATCH: Duration = Duration::from_millis(100);

/// Ends this worker within [`PARENT_WATCH`] of its broker's end, however the broker ended.
///
/// Why: the broker kills a worker at the query's deadline, but a broker that is itself killed
/// (SIGKILL, a crash, an operator's restart) kills nothing, and a worker busy with a query bomb
/// does not read its closed input: measured, orphaned workers went on at 45 % CPU each for
/// minutes after their broker was gone. A parent-death signal (`PR_SET_PDEATHSIG`) would need
/// `unsafe` and fires when the spawning *thread* ends (the broker spawns from its blocking pool,
/// whose threads come and go); watching the parent's pid needs neither.
fn exit_with_parent(parent: u32) -> Result<(), String> {
    if std::os::unix::process::parent_id() != parent {
        return Err(format!("the broker (pid {parent}) is gone"));
    }
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(PARENT_WATCH);
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(3);
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot watch the broker: {e}"))
}

fn remove(path: &Path) {
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
}

/// Reads one answer: the head line, then the body.
fn read_answer(stdout: &mut BufReader<ChildStdout>, memory_mib: u64, max_bytes: usize) -> Result<QueryOutput, SparqlError> {
    let mut head = String::new();
    let n = stdout.read_line(&mut head).map_err(failed)?;
    if n == 0 {
        // The worker ended without an answer: an allocation past its address space aborts it.
        return Err(SparqlError::MemoryLimit(memory_mib));
    }
    let answer: WorkerAnswer = serde_json::from_str(&head).map_err(failed)?;
    match answer {
        // A worker never sends more than the limit; one that says so is not believed.
        WorkerAnswer::Ok { length, .. } if length > max_bytes => Err(SparqlError::Evaluation(format!(
            "a worker announced {length} bytes, over the limit of {max_bytes}"
        ))),
        WorkerAnswer::Ok { content_type, length } => {
            let mut body = vec![0u8; length];
            stdout.read_exact(&mut body).map_err(failed)?;
            Ok(QueryOutput {
                content_type: super::sparql::media_type(&content_type),
                body,
            })
        }
        WorkerAnswer::Syntax { message } => Err(SparqlError::Syntax(message)),
        WorkerAnswer::TooManyResults { limit } => Err(SparqlError::TooManyResults(limit)),
        WorkerAnswer::TooLarge { limit } => Err(SparqlError::TooLarge(limit)),
        WorkerAnswer::NotAcceptable { accept, form, offered } => Err(SparqlError::NotAcceptable {
            accept,
            form: super::sparql::form_name(&form),
            offered,
        }),
        WorkerAnswer::Failed { message } => Err(SparqlError::Evaluation(message)),
    }
}

/// `broker sparql-worker`: answers queries from its standard input on the snapshot it was given,
/// within `memory_bytes` of address space, until its input closes or its broker (`parent`) is
/// gone.
pub fn serve_worker(store_dir: Option<&Path>, nquads: Option<&Path>, memory_bytes: u64, parent: Option<u32>) -> Result<(), String> {
    if let Some(parent) = parent {
        exit_with_parent(parent)?;
    }
    let store = match (store_dir, nquads) {
        (Some(dir), _) => open_read_only(dir)?,
        (None, Some(file)) => {
            let store = Store::new().map_err(|e| e.to_string())?;
            let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(|e| e.to_string())?);
            store.load_from_reader(RdfFormat::NQuads, reader).map_err(|e| e.to_string())?;
            store
        }
        (None, None) => return Err("sparql-worker needs --store or --nquads".into()),
    };
    // The limit counts from what the opened store already holds: RocksDB reserves address space
    // for its caches up front (gigabytes of it, mostly never touched), the queries get
    // `memory_bytes` on top.
    limit_memory(address_space()?.saturating_add(memory_bytes))?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Ok(request) = serde_json::from_str::<WorkerRequest>(&line) else {
            return Err("not a worker request".into());
        };
        let limits = QueryLimits {
            timeout: Duration::from_secs(3600),
            max_results: request.max_results,
            max_concurrent: 1,
            max_per_member: 1,
            max_result_bytes: request.max_bytes,
        };
        let result = run_demoted(|| super::sparql::run_unbounded(&store, &request.query, &request.accept, &limits))?.and_then(|o| {
            if o.body.len() > request.max_bytes {
                Err(SparqlError::TooLarge(request.max_bytes))
            } else {
                Ok(o)
            }
        });
        let (head, body) = match result {
            Ok(o) => (
                WorkerAnswer::Ok {
                    content_type: o.content_type.to_owned(),
                    length: o.body.len(),
                },
                o.body,
            ),
            Err(SparqlError::Syntax(message)) => (WorkerAnswer::Syntax { message }, Vec::new()),
            Err(SparqlError::TooManyResults(limit)) => (WorkerAnswer::TooManyResults { limit }, Vec::new()),
            Err(SparqlError::TooLarge(limit)) => (WorkerAnswer::TooLarge { limit }, Vec::new()),
            Err(SparqlError::NotAcceptable { accept, form, offered }) => (
                WorkerAnswer::NotAcceptable {
                    accept,
                    form: form.to_owned(),
                    offered,
                },
                Vec::new(),
            ),
            Err(other) => (
                WorkerAnswer::Failed {
                    message: other.to_string(),
                },
                Vec::new(),
            ),
        };
        let mut head = serde_json::to_vec(&head).map_err(|e| e.to_string())?;
        head.push(b'\n');
        out.write_all(&head)
            .and_then(|()| out.write_all(&body))
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(feature = "rocksdb")]
fn checkpoint(store: &Store, path: &Path) -> Result<(), SparqlError> {
    store.backup(path).map_err(failed)
}

#[cfg(not(feature = "rocksdb"))]
fn checkpoint(_store: &Store, path: &Path) -> Result<(), SparqlError> {
    Err(failed(format!("built without RocksDB: no checkpoint at {}", path.display())))
}

#[cfg(feature = "rocksdb")]
fn open_read_only(dir: &Path) -> Result<Store, String> {
    Store::open_read_only(dir).map_err(|e| e.to_string())
}

#[cfg(not(feature = "rocksdb"))]
fn open_read_only(dir: &Path) -> Result<Store, String> {
    Err(format!("built without RocksDB: cannot open {}", dir.display()))
}

/// This process's address space now, in bytes (`/proc/self/statm`, first field, in pages).
fn address_space() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm").map_err(|e| format!("cannot read /proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("/proc/self/statm is unreadable")?;
    Ok(pages.saturating_mul(4096))
}

/// Caps this process's address space: an allocation past it fails, and the process ends.
fn limit_memory(bytes: u64) -> Result<(), String> {
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, limit).map_err(|e| format!("cannot limit the worker's memory: {e}"))
}
