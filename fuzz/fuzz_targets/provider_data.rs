//! A provider's answer (JSON or CSV, the first byte chooses) through enforcement with the demo
//! policy's duties: minimise, generalise, aggregate; and with pseudonymisation. No input may
//! panic, and no error may quote the data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kdr_fuzz::enforce_provider_data(data);
});
