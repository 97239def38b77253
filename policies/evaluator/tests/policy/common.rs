//! What every test here needs: one engine, a worker, and a way to run async code.

use std::sync::{Arc, OnceLock};

use policy_compiler::input::PolicyInput;
use policy_compiler::ir::Policy;
use policy_compiler::{Vocabulary, wasm};
use policy_evaluator::{DecisionDocument, Engine, Limits, LoadedModule, Worker};

pub fn vocab() -> &'static Vocabulary {
    static V: OnceLock<Vocabulary> = OnceLock::new();
    V.get_or_init(|| Vocabulary::standard().expect("vocabulary"))
}

pub fn engine() -> Arc<Engine> {
    static E: OnceLock<Arc<Engine>> = OnceLock::new();
    E.get_or_init(|| Engine::new(Limits::default()).expect("engine")).clone()
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

pub fn compile(policy: &Policy) -> LoadedModule {
    let bytes = wasm::compile(policy, vocab()).unwrap_or_else(|e| panic!("compile {}: {e}", policy.uid));
    engine().load(&bytes).expect("load module")
}

/// Evaluates through the compiled module, on a fresh worker.
pub fn decide_wasm(module: &LoadedModule, input: &PolicyInput) -> DecisionDocument {
    let input = serde_json::to_value(input).expect("input JSON");
    block_on(async { Worker::new(engine()).evaluate(module, &input).await }).expect("evaluation")
}
