//! A steward's policy in JSON-LD, as the broker takes it at submission.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdr_fuzz::compile_submission(data, policy_compiler::parse::Syntax::JsonLd);
});
