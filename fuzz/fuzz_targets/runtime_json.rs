//! The Wasm runtime's JSON reader (`policies/runtime/src/json.rs`, the very file the runtime is
//! built from), on the host: the policy input is JSON the broker writes, but the reader must
//! hold whatever it is given. What it reads must write back as JSON that reads the same.
#![no_main]

extern crate alloc;

#[allow(dead_code, clippy::all)]
#[path = "../../policies/runtime/src/json.rs"]
mod json;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(v) = json::parse(data) {
        let mut out = alloc::string::String::new();
        json::dump(&v, &mut out);
        let again = json::parse(out.as_bytes()).expect("what the runtime writes, it reads");
        let mut twice = alloc::string::String::new();
        json::dump(&again, &mut twice);
        assert_eq!(out, twice, "reading and writing is stable");
    }
});
