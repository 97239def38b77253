//! The policy toolchain end to end: ODRL in, compiled OPA-ABI Wasm evaluated by `opa-wasm` on
//! wasmtime out, checked against the conformance suite, the reference evaluator and regorus,
//! and under hostile modules. One test binary, modules inside.

mod common;
mod conformance;
mod differential;
mod limits;
