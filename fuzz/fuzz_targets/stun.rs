//! Arbitrary bytes into the stun decoders: must never panic (o365probe_core::wire::stun::fuzz).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| o365probe_core::wire::stun::fuzz(data));
