//! Arbitrary bytes into the dns decoders: must never panic (o365probe_core::wire::dns::fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| o365probe_core::wire::dns::fuzz(data));
