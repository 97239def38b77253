//! Evaluates usage policies compiled to OPA-ABI WebAssembly, with `opa-wasm` on wasmtime.
//!
//! Why this shape:
//! - Compiling a module with Cranelift costs tens of milliseconds, so [`Engine`] compiles each
//!   module once and caches it by the SHA-256 of its bytes ([`ModuleHash`], the hash every
//!   decision record names).
//! - A fresh store and instance cost tens of microseconds, an evaluation on a live instance about
//!   one, so a [`Worker`] keeps one instance per module and reuses it. A worker is single-threaded
//!   (one per broker worker thread); the engine and its cache are shared.
//! - A policy is code from outside the broker (a city may bring a module built by
//!   `opa build -t wasm`). Every evaluation runs with an epoch deadline and under a memory limit;
//!   a trap, the deadline or the memory limit is an [`EvalError`], which [`Worker::decide`]
//!   turns into a deny that says why, and the instance is dropped and rebuilt on next use.
//!   Epochs rather than fuel: fuel instruments every basic block and cost a fifth of a decision
//!   (measured: 7.2 µs with fuel, 6.0 µs without); epoch checks sit only at loop heads and calls.
//!
//! **Architecture Invariant:** the evaluator sees only the policy input document, never a
//! certificate or a request: identity reaches a policy as the AGS-based IRIs the broker derived.

mod decision;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opa_wasm::wasmtime::{self, Config, ResourceLimiter, Store};
use opa_wasm::{DefaultContext, Policy, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use decision::{Decision, DecisionDocument};

/// Limits on one evaluation. A decision takes microseconds; the deadline is four orders of
/// magnitude above that so a loaded machine never denies a sound policy, and still stops a
/// runaway one quickly.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time an evaluation may run (measured in 10 ms epoch ticks).
    pub deadline: Duration,
    /// The most linear memory an instance may have, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
        }
    }
}

/// The epoch tick: the granularity of deadlines.
const TICK: Duration = Duration::from_millis(10);

impl Limits {
    fn ticks(&self) -> u64 {
        u64::try_from(self.deadline.as_millis() / TICK.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
            + 1
    }
}

/// The SHA-256 of a module's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash([u8; 32]);

impl ModuleHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("the policy module could not be loaded: {0}")]
    Load(String),
    #[error("the policy ran past its deadline of {0:?}: stopped")]
    Timeout(Duration),
    #[error("the policy exceeded its memory limit of {0} bytes: stopped")]
    MemoryLimit(usize),
    #[error("the policy trapped: {0}")]
    Trap(String),
    #[error("the policy returned no decision document: {0}")]
    BadResult(String),
}

/// A compiled module, shared by all workers.
#[derive(Clone)]
pub struct LoadedModule {
    pub hash: ModuleHash,
    module: wasmtime::Module,
}

impl fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule").field("hash", &self.hash).finish()
    }
}

/// The wasmtime engine and the compiled-module cache.
pub struct Engine {
    engine: wasmtime::Engine,
    limits: Limits,
    modules: Mutex<HashMap<ModuleHash, LoadedModule>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(limits: Limits) -> Result<Arc<Self>, EvalError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config).map_err(|e| EvalError::Load(e.to_string()))?;
        spawn_ticker(engine.weak()).map_err(|e| EvalError::Load(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Arc::new(Self {
            engine,
            limits,
            modules: Mutex::new(HashMap::new()),
        }))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles `bytes` (or takes it from the cache).
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedModule, EvalError> {
        let hash = ModuleHash::of(bytes);
        if let Some(m) = self.cache().get(&hash) {
            return Ok(m.clone());
        }
        let module = wasmtime::Module::new(&self.engine, bytes).map_err(|e| EvalError::Load(format!("{e:#}")))?;
        let loaded = LoadedModule { hash, module };
        self.cache().insert(hash, loaded.clone());
        Ok(loaded)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ModuleHash, LoadedModule>> {
        // A poisoned lock only means another thread panicked while inserting; the map is whole.
        self.modules.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many distinct modules are compiled.
    pub fn cached_modules(&self) -> usize {
        self.cache().len()
    }
}

/// Advances the engine's epoch every [`TICK`] until the engine is gone.
fn spawn_ticker(engine: wasmtime::EngineWeak) -> std::io::Result<()> {
    std::thread::Builder::new().name("policy-epoch".into()).spawn(move || {
        while let Some(e) = engine.upgrade() {
            e.increment_epoch();
            drop(e);
            std::thread::sleep(TICK);
        }
    })?;
    Ok(())
}

/// Tracks memory growth against the limit, and the peak, for reports and tests.
struct Limiter {
    max: usize,
    peak: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

fn load_error(e: impl fmt::Display) -> EvalError {
    EvalError::Load(format!("{e:#}"))
}

/// One live instance of a module.
struct Instance {
    store: Store<Limiter>,
    policy: Policy<DefaultContext>,
    entrypoint: String,
}

/// A worker's instances, one per module, reused across evaluations.
pub struct Worker {
    engine: Arc<Engine>,
    instances: HashMap<ModuleHash, Instance>,
    /// How many instances this worker has built (a replaced instance counts again).
    pub instantiations: u64,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("instances", &self.instances.len())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            instances: HashMap::new(),
            instantiations: 0,
        }
    }

    async fn instantiate(&self, module: &LoadedModule) -> Result<Instance, EvalError> {
        let limits = self.engine.limits;
        let mut store = Store::new(
            &self.engine.engine,
            Limiter {
                max: limits.memory_bytes,
                peak: 0,
                hit: false,
            },
        );
        store.limiter(|l| l as &mut dyn ResourceLimiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(limits.ticks());
        let runtime = Runtime::new(&mut store, &module.module).await.map_err(load_error)?;
        let entrypoint = runtime
            .default_entrypoint()
            .ok_or_else(|| EvalError::Load("the module has no entrypoint with id 0".into()))?
            .to_owned();
        let policy = runtime.without_data(&mut store).await.map_err(load_error)?;
        Ok(Instance { store, policy, entrypoint })
    }

    /// Evaluates `input` with `module` and returns the raw result of its entrypoint (for OPA
    /// modules, `[{"result": ...}]`, or `[]` when undefined).
    pub async fn evaluate_raw(&mut self, module: &LoadedModule, input: &impl Serialize) -> Result<serde_json::Value, EvalError> {
        self.evaluate_as(module, input).await
    }

    /// Evaluates `input` and reads the result set straight into `R`.
    async fn evaluate_as<R: DeserializeOwned>(&mut self, module: &LoadedModule, input: &impl Serialize) -> Result<R, EvalError> {
        if !self.instances.contains_key(&module.hash) {
            let instance = self.instantiate(module).await?;
            self.instantiations += 1;
            self.instances.insert(module.hash, instance);
        }
        let limits = self.engine.limits;
        let Some(inst) = self.instances.get_mut(&module.hash) else {
            return Err(EvalError::Load("instance vanished".into()));
        };
        inst.store.set_epoch_deadline(limits.ticks());
        let started = Instant::now();
        let result = inst.policy.evaluate(&mut inst.store, &inst.entrypoint, input).await;
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                let error = if let Some(json) = e.downcast_ref::<serde_json::Error>() {
                    EvalError::BadResult(json.to_string())
                } else if inst.store.data().hit {
                    EvalError::MemoryLimit(limits.memory_bytes)
                } else if started.elapsed() >= limits.deadline {
                    EvalError::Timeout(limits.deadline)
                } else {
                    EvalError::Trap(format!("{e:#}"))
                };
                // Whatever state the instance is in now, it is not trusted again.
                self.instances.remove(&module.hash);
                Err(error)
            }
        }
    }

    /// Evaluates `input` and reads the decision document.
    pub async fn evaluate(&mut self, module: &LoadedModule, input: &impl Serialize) -> Result<DecisionDocument, EvalError> {
        let results: Vec<decision::ResultItem> = self.evaluate_as(module, input).await?;
        DecisionDocument::from_results(results)
    }

    /// Like [`Worker::evaluate`], but fail closed: any error becomes a deny that carries it.
    pub async fn decide(&mut self, module: &LoadedModule, input: &impl Serialize) -> DecisionDocument {
        match self.evaluate(module, input).await {
            Ok(d) => d,
            Err(e) => DecisionDocument::denied_by_error(&e),
        }
    }

    /// The largest linear memory the instance of `module` has had, in bytes.
    pub fn peak_memory(&self, module: &ModuleHash) -> Option<usize> {
        self.instances.get(module).map(|i| i.store.data().peak)
    }
}

/// Idle workers shared by the threads of a server: a request takes one (or a new one), decides,
/// and gives it back, so instances are reused without tying a worker to a thread.
pub struct WorkerPool {
    engine: Arc<Engine>,
    idle: Mutex<Vec<Worker>>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool").finish_non_exhaustive()
    }
}

impl WorkerPool {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Decides `input` with `module` on a pooled worker (fail closed, as [`Worker::decide`]).
    pub async fn decide(&self, module: &LoadedModule, input: &impl Serialize) -> DecisionDocument {
        let taken = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut worker = taken.unwrap_or_else(|| Worker::new(self.engine.clone()));
        let decision = worker.decide(module, input).await;
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(worker);
        decision
    }
}
