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

/// The big-endian `u16` at `range` of `data`; `None` unless the range is in `data` and two bytes long.
pub(crate) fn u16_at(data: &[u8], range: core::ops::Range<usize>) -> Option<u16> {
    match data.get(range) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// An enum over a protocol number, with an `Unknown` arm for every value it does not name (smoltcp's
/// `enum_with_unknown!`): `From` both ways, so a value read is always written back unchanged. Written
/// with a mnemonic after each value (`A = 1 => "A"`) and a prefix for the rest (`Type(u16, "TYPE")`),
/// the enum also gets `mnemonic()` and a `Display` that prints the mnemonic, or the prefix and the
/// number (`TYPE65280`, as RFC 3597 5 writes unknown types).
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty, $unknown:literal) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr => $text:literal ),+ $(,)?
        }
    ) => {
        $crate::wire::enum_with_unknown! {
            $(#[$enum_attr])*
            pub enum $name($ty) {
                $( $(#[$variant_attr])* $variant = $value ),+
            }
        }

        impl $name {
            /// The mnemonic (`None` for values this enum does not name).
            pub const fn mnemonic(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($text) ),+,
                    $name::Unknown(_) => None,
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                match self.mnemonic() {
                    Some(m) => f.write_str(m),
                    None => write!(f, "{}{}", $unknown, <$ty>::from(*self)),
                }
            }
        }
    };
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_attr])* $variant ),+,
            /// A value this enum does not name.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),+,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),+,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use enum_with_unknown;
