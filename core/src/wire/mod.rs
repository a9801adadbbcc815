//! Wire formats: zero-copy views over byte slices and the `Repr`s built from them.
//!
//! The contract, after smoltcp: `Packet::new_checked` (or `check_len`) validates every length the getters
//! rely on; after it succeeds no getter panics. A `Repr` holds the fields that matter, with `parse`,
//! `emit` and `buffer_len`; `emit` into a buffer of `buffer_len()` bytes never panics. Every length and
//! count read from the wire is bounded by a named constant, and a container that is full is an error,
//! never a silent truncation.

pub mod dns;
pub mod endpoint;
pub mod stun;
pub mod tls;
pub mod x509;
