//! (being written)

/// Fuzz entry (fuzz/ and core/tests/regress.rs): decodes arbitrary bytes every way this module can.
#[doc(hidden)]
pub fn fuzz(_data: &[u8]) {}
