//! Arbitrary bytes into the tls decoders: must never panic (o365probe_core::wire::tls::fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| o365probe_core::wire::tls::fuzz(data));
