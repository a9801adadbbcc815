//! Report frames: the schema, postcard framing and sealing. The contract is `SPEC.md` beside this file.
//!
//! A frame is a 14-byte header in the clear (version, message type, agent id, sequence), then a postcard
//! body sealed with ChaCha20-Poly1305 under the agent's key, with the header as associated data and a
//! nonce built from the header, then the 16-byte tag. Agents send target [`Manifest`]s and [`Results`];
//! the collector answers with [`Ack`]s, sealed the same way under the same key.
//!
//! - [`seal`] builds a frame. It is deterministic: the same key, header and body give the same bytes,
//!   so a resent frame is identical to the first copy.
//! - [`Header::parse`] reads the clear header, so the collector can find the agent's key and check for
//!   a replayed sequence before it spends time on the AEAD.
//! - [`open`] (into a scratch buffer) and [`open_in_place`] check the tag and decode the body.
//!
//! Every way a frame can be wrong is its own [`Error`]; no input makes this module panic.

use core::fmt;

mod ack;
mod frame;
mod manifest;
mod message;
mod queue;
mod results;
#[cfg(test)]
mod tests;

pub use ack::{Ack, AckStatus, AckedFrame, RejectReason, MAX_ACKED_FRAMES};
pub use frame::{
    open, open_in_place, seal, Direction, Header, Key, MessageType, HEADER_LEN, KEY_LEN,
    MAX_BODY_LEN, MAX_FRAME_LEN, MIN_FRAME_LEN, NONCE_LEN, OVERHEAD, TAG_LEN, VERSION,
};
pub use manifest::{Manifest, Target, MAX_HOST_LEN, MAX_MANIFEST_TARGETS, MAX_PORTS, MAX_TARGETS};
pub use message::Message;
pub use queue::{
    Acked, Outgoing, Pushed, QueueConfig, QueueError, QueueStats, QueuedFrame, ReportQueue,
    INITIAL_RESEND, MAX_IN_FLIGHT, MAX_RESEND, RESEND_JITTER_PERCENT,
};
pub use results::{
    DnsAnswer, DnsSummary, DownloadSummary, Hop, HttpSummary, HttpVerdict, PathSummary,
    ResolverIdentity, Results, Rtt, StunSummary, TcpFailures, TcpSummary, TlsSummary, TlsVerdict,
    MAX_DNS_ADDRESSES, MAX_DNS_SUMMARIES, MAX_DOWNLOAD_SUMMARIES, MAX_HOPS, MAX_HTTP_SUMMARIES,
    MAX_ISSUER_CN_LEN, MAX_PATH_SUMMARIES, MAX_RESOLVER_IDENTITIES, MAX_STUN_SUMMARIES,
    MAX_TCP_SUMMARIES, MAX_TLS_SUMMARIES,
};

/// Why a frame cannot be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than a header and a tag ([`MIN_FRAME_LEN`]); a longer cut is indistinguishable from an
    /// altered frame and is [`Error::BadTag`], because the datagram is the frame's only length.
    Truncated,
    /// Longer than [`MAX_FRAME_LEN`], or a message whose body would make it so.
    Oversized,
    /// A format version this build does not read (the first byte).
    UnknownVersion(u8),
    /// A message type this version does not define (the second byte).
    UnknownType(u8),
    /// The tag does not match: forged, altered (header or body), or sealed under another key.
    BadTag,
    /// The opened body is not a valid postcard encoding of its message type: malformed, bytes left over,
    /// a list longer than its bound, an unknown enum value.
    Body,
    /// The message breaks a rule of the spec that its types cannot express (a manifest chunk that
    /// runs past the manifest's total, a front-door code that is not three upper-case letters).
    Invalid,
    /// The caller's output or scratch buffer cannot hold the frame or body.
    BufferTooSmall,
    /// More items than the format can number (more than [`MAX_TARGETS`] targets in a manifest).
    TooManyItems,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "report frame shorter than {MIN_FRAME_LEN} bytes"),
            Self::Oversized => write!(f, "report frame longer than {MAX_FRAME_LEN} bytes"),
            Self::UnknownVersion(v) => write!(f, "unknown report format version {v}"),
            Self::UnknownType(t) => write!(f, "unknown report message type {t}"),
            Self::BadTag => f.write_str("report frame is forged, altered or under another key"),
            Self::Body => f.write_str("report body does not decode as its message type"),
            Self::Invalid => f.write_str("report message breaks a rule of the spec"),
            Self::BufferTooSmall => f.write_str("buffer too small for the report frame"),
            Self::TooManyItems => write!(f, "more than {MAX_TARGETS} targets in a manifest"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result of the report module's operations.
pub type Result<T> = core::result::Result<T, Error>;

/// The key the fuzz entry opens frames with; the golden vectors are sealed under it too, so the fuzz seeds
/// open and reach the body decoder (SPEC.md, "Golden vectors").
const FUZZ_KEY: Key = Key::from_bytes([
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
]);

/// Fuzz entry (fuzz/ and core/tests/regress.rs): decodes arbitrary bytes every way this module can.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let _ = Header::parse(data);
    let mut scratch = [0u8; MAX_BODY_LEN];
    if let Ok((header, message)) = open(&FUZZ_KEY, data, &mut scratch) {
        assert_eq!(header.message_type, message.message_type());
        reseal_round_trip(&message);
    }
    // A mutated frame almost never passes the tag, so the body decoders are driven directly as well.
    for message_type in [
        MessageType::Manifest,
        MessageType::Results,
        MessageType::Ack,
    ] {
        if let Ok(message) = Message::decode(message_type, data) {
            reseal_round_trip(&message);
        }
    }
}

/// Whatever decodes must seal and open to the same value (or be refused as oversized, since a body read
/// straight from fuzz input may be longer than a frame allows).
fn reseal_round_trip(message: &Message) {
    let mut frame = [0u8; MAX_FRAME_LEN];
    match seal(&FUZZ_KEY, 7, 9, message, &mut frame) {
        Ok(len) => {
            let mut scratch = [0u8; MAX_BODY_LEN];
            let (header, reopened) = open(&FUZZ_KEY, &frame[..len], &mut scratch)
                .expect("a frame just sealed must open");
            assert_eq!((header.agent_id, header.sequence), (7, 9));
            assert_eq!(&reopened, message);
        }
        Err(Error::Oversized) => {
            assert!(message.body_len().is_ok_and(|n| n > MAX_BODY_LEN));
        }
        Err(e) => panic!("a decoded message failed to seal: {e}"),
    }
}
