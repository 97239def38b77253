//! A steward's dataset description (the body of `POST /v1/datasets`): schema check, typed
//! description, DCAT-AP.de triples and back. A description the schema admits must read back
//! from the graph as it was stored.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdr_fuzz::dataset_round_trip(data);
});
