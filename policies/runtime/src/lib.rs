//! The runtime every compiled usage policy runs on: the OPA Wasm ABI (what `opa-wasm` calls),
//! a JSON reader and writer, a bump heap, and the small helpers that generated policy code calls.
//!
//! It is built once for `wasm32-unknown-unknown` (`build.sh`) and committed. The policy compiler
//! (`policy-compiler`, `wasm.rs`) then rewrites a copy per policy: it appends the policy's
//! constants as a data segment and replaces the three `kdr.*` imports below with generated
//! functions, so a compiled policy imports nothing but `env.memory` and `env.opa_abort`.
//!
//! Why hooks are imports: stub functions do not survive LTO, imports do, and walrus can turn an
//! import into a local function in place.
//!
//! Why a bump heap: the OPA ABI host resets the heap pointer between evaluations and writes the
//! input at that pointer itself, so the allocator's pointer *is* the ABI heap pointer and nothing
//! allocated during an evaluation outlives it. There are no lazy statics for the same reason.

#![no_std]
#![allow(unsafe_code)]

extern crate alloc;

mod abi;
mod heap;
mod json;
mod policy;

/// Generated per policy by the compiler.
mod hooks {
    #[link(wasm_import_module = "kdr")]
    unsafe extern "C" {
        /// First free address after the policy's constants.
        pub fn heap_base() -> usize;
        /// Address of the policy's metadata table (see `policy::Meta`).
        pub fn meta() -> usize;
        /// The policy's rules: calls the `kdr_rt_*` helpers and records every outcome.
        pub fn eval();
    }
}

mod host {
    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        /// Reports a NUL-terminated message to the host, which ends the evaluation with a trap.
        pub fn opa_abort(message: *const u8);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: the message is a static NUL-terminated string.
    unsafe { host::opa_abort(c"kdr policy runtime: internal error".as_ptr().cast()) };
    core::arch::wasm32::unreachable()
}
