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
//!   `opa build -t wasm`). Every evaluation runs with a fuel budget and under a memory limit;
//!   a trap, exhausted fuel or the memory limit is an [`EvalError`], which [`Worker::decide`]
//!   turns into a deny that says why, and the instance is dropped and rebuilt on next use.
//!
//! **Architecture Invariant:** the evaluator sees only the policy input document, never a
//! certificate or a request: identity reaches a policy as the AGS-based IRIs the broker derived.

mod decision;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use opa_wasm::wasmtime::{self, Config, ResourceLimiter, Store};
use opa_wasm::{DefaultContext, Policy, Runtime};
use sha2::{Digest, Sha256};

pub use decision::{Decision, DecisionDocument};

/// Limits on one evaluation. The defaults allow a policy thousands of times the work of the
/// largest example policy, and stop a runaway one within milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wasm fuel (roughly, instructions) per evaluation.
    pub fuel: u64,
    /// The most linear memory an instance may have, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000,
            memory_bytes: 64 << 20,
        }
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
    #[error("the policy ran out of fuel (more than {0} instructions): stopped")]
    OutOfFuel(u64),
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
        config.consume_fuel(true);
        let engine = wasmtime::Engine::new(&config).map_err(|e| EvalError::Load(e.to_string()))?;
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
        store.set_fuel(limits.fuel).map_err(|e| EvalError::Load(e.to_string()))?;
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
    pub async fn evaluate_raw(&mut self, module: &LoadedModule, input: &serde_json::Value) -> Result<serde_json::Value, EvalError> {
        if !self.instances.contains_key(&module.hash) {
            let instance = self.instantiate(module).await?;
            self.instantiations += 1;
            self.instances.insert(module.hash, instance);
        }
        let limits = self.engine.limits;
        let Some(inst) = self.instances.get_mut(&module.hash) else {
            return Err(EvalError::Load("instance vanished".into()));
        };
        inst.store.set_fuel(limits.fuel).map_err(|e| EvalError::Trap(e.to_string()))?;
        let result = inst.policy.evaluate(&mut inst.store, &inst.entrypoint, input).await;
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                // Whatever state the instance is in now, it is not trusted again.
                let error = if inst.store.data().hit {
                    EvalError::MemoryLimit(limits.memory_bytes)
                } else if inst.store.get_fuel().is_ok_and(|f| f == 0) {
                    EvalError::OutOfFuel(limits.fuel)
                } else {
                    EvalError::Trap(format!("{e:#}"))
                };
                self.instances.remove(&module.hash);
                Err(error)
            }
        }
    }

    /// Evaluates `input` and reads the decision document.
    pub async fn evaluate(&mut self, module: &LoadedModule, input: &serde_json::Value) -> Result<DecisionDocument, EvalError> {
        let raw = self.evaluate_raw(module, input).await?;
        DecisionDocument::from_result_set(raw)
    }

    /// Like [`Worker::evaluate`], but fail closed: any error becomes a deny that carries it.
    pub async fn decide(&mut self, module: &LoadedModule, input: &serde_json::Value) -> DecisionDocument {
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
