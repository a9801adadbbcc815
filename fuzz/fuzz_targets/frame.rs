//! Arbitrary bytes into the report frame decoder: must never panic (o365probe_core::report::fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| o365probe_core::report::fuzz(data));
