//! A steward's policy in Turtle, as the broker takes it at submission: parsed with the broker's
//! checks, compiled to Wasm. Any input gets an answer; a panic, a hang or an overflow is a find.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdr_fuzz::compile_submission(data, policy_compiler::parse::Syntax::Turtle);
});
