//! DNS messages (RFC 1035, AAAA from RFC 3596, EDNS(0) from RFC 6891) for the DNS and resolver-identity
//! probes: build a query, read the answer exactly, and follow its CNAME chain to the front door.
//!
//! - [`Packet`]: a view of the 12-octet header (id, flags, section counts), with setters.
//! - [`Name`]: a decoded domain name in dotted text form, bounded, compared ignoring ASCII case
//!   (resolvers randomise letter case, "0x20").
//! - [`Query`] and [`Response`]: `Repr`s with `parse`, `emit` and `buffer_len`; `emit_tcp` and
//!   [`split_tcp`] add and remove the two-octet length prefix of DNS over TCP (RFC 1035 4.2.2, RFC 7766).
//! - [`Chain`]: the CNAME chain from the query name to the final name, and that name's addresses and TXT.
//!
//! Exactness: a message is read to its last octet; trailing octets, counts the packet does not hold, RDATA
//! that does not fill its RDLENGTH, and compression pointers that do not point strictly backwards are all
//! errors, each its own [`Error`] variant. The one leniency is for truncated UDP answers (`TC` set): the
//! packet may end at a record boundary before the header's counts are met, which is how servers truncate.
//!
//! Compression (RFC 1035 4.1.4): every pointer must target an offset strictly below the start of the run of
//! labels it ends (the name's start, or the previous pointer's target). Pointers therefore only ever jump
//! backwards, every jump lands lower than the last, and decoding ends; a pointer into octets this name
//! already covered is [`Error::PointerLoop`], one past them [`Error::ForwardPointer`], one beyond the packet
//! [`Error::PointerOutOfBounds`]. Real encoders only point at earlier names, so nothing valid is refused.

mod chain;
mod cursor;
mod name;
mod packet;
mod query;
mod record;
mod response;
#[cfg(test)]
mod tests;

use core::fmt;

pub use chain::{resolve, Chain, MAX_CHAIN};
pub use name::{
    Labels, Name, MAX_LABEL_LEN, MAX_NAME_POINTERS, MAX_NAME_TEXT_LEN, MAX_NAME_WIRE_LEN,
};
pub use packet::{Opcode, Packet, Rcode, HEADER_LEN, MAX_MESSAGE_LEN};
pub use query::{Query, MAX_QUERY_LEN};
pub use record::{Edns, Question, Record, RecordData, Txt, TxtStrings, Type, MAX_TXT_LEN};
pub use response::{Response, MAX_ANSWERS, MAX_RESPONSE_LEN};

/// The UDP port DNS servers listen on.
pub const PORT: u16 = 53;

/// Octets of the length prefix that frames each message on a TCP stream (RFC 1035 4.2.2).
pub const TCP_PREFIX_LEN: usize = 2;

/// Why a DNS message could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The packet ends inside the header, a question or a record's fixed fields.
    Truncated,
    /// The packet is longer than any DNS message can be (65535 octets).
    MessageTooLong,
    /// The header counts more questions or records than the packet holds.
    MissingRecords,
    /// Octets follow the last record the header counts.
    TrailingBytes,
    /// `Response::parse` was given a query (QR clear).
    NotResponse,
    /// `Query::parse` was given a response (QR set).
    NotQuery,
    /// The opcode is not QUERY.
    Opcode,
    /// A query must ask exactly one question, a response echo at most one.
    QuestionCount,
    /// The question's class is not IN.
    Class,
    /// A compression pointer targets octets this name already went through (it would never end).
    PointerLoop,
    /// A compression pointer targets octets after itself.
    ForwardPointer,
    /// A compression pointer targets an offset beyond the end of the packet.
    PointerOutOfBounds,
    /// A name follows more than [`MAX_NAME_POINTERS`] compression pointers.
    TooManyPointers,
    /// A name is longer than 255 octets in wire form (RFC 1035 2.3.4).
    NameTooLong,
    /// A label is longer than 63 octets, or its length octet uses the retired extended label types.
    LabelTooLong,
    /// A name has an empty label (`a..b`, `.a`).
    EmptyLabel,
    /// A label holds an octet outside printable ASCII, or a dot: such a name has no plain text form.
    LabelByte,
    /// RDLENGTH runs past the end of the packet.
    RdataTruncated,
    /// RDATA does not fit its type: an A record not 4 octets, AAAA not 16, a CNAME or TXT that does not
    /// fill RDLENGTH exactly, EDNS options that do not fill the OPT record.
    RdataLength,
    /// A TXT record's data is longer than [`MAX_TXT_LEN`], or a character-string longer than 255.
    TxtTooLong,
    /// The answer holds more A, AAAA, CNAME and TXT records than [`MAX_ANSWERS`].
    TooManyAnswers,
    /// An OPT record outside the additional section.
    MisplacedOpt,
    /// More than one OPT record (RFC 6891 6.1.1).
    DuplicateOpt,
    /// An OPT record whose owner is not the root.
    OptName,
    /// An rcode above 15 without EDNS to carry its upper bits, or above 4095: it cannot be written.
    RcodeUnencodable,
    /// The buffer given to `emit` is shorter than `buffer_len()`.
    BufferTooSmall,
    /// The CNAME chain comes back to a name already in it.
    CnameLoop,
    /// The CNAME chain has more than [`MAX_CHAIN`] names.
    ChainTooLong,
    /// One name has two CNAME records with different targets.
    CnameConflict,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "DNS message truncated",
            Self::MessageTooLong => "DNS message longer than 65535 octets",
            Self::MissingRecords => "DNS header counts more records than the message holds",
            Self::TrailingBytes => "octets after the last DNS record",
            Self::NotResponse => "DNS message is not a response",
            Self::NotQuery => "DNS message is not a query",
            Self::Opcode => "DNS opcode is not QUERY",
            Self::QuestionCount => "unexpected number of DNS questions",
            Self::Class => "DNS question class is not IN",
            Self::PointerLoop => "DNS compression pointer loop",
            Self::ForwardPointer => "DNS compression pointer points forward",
            Self::PointerOutOfBounds => "DNS compression pointer beyond the message",
            Self::TooManyPointers => "DNS name follows too many compression pointers",
            Self::NameTooLong => "DNS name longer than 255 octets",
            Self::LabelTooLong => "DNS label longer than 63 octets",
            Self::EmptyLabel => "empty label in DNS name",
            Self::LabelByte => "DNS label with a non-printable octet or a dot",
            Self::RdataTruncated => "DNS RDATA runs past the message",
            Self::RdataLength => "DNS RDATA length does not fit its type",
            Self::TxtTooLong => "DNS TXT data too long",
            Self::TooManyAnswers => "too many DNS answer records",
            Self::MisplacedOpt => "EDNS OPT record outside the additional section",
            Self::DuplicateOpt => "more than one EDNS OPT record",
            Self::OptName => "EDNS OPT record not owned by the root",
            Self::RcodeUnencodable => "DNS rcode cannot be encoded",
            Self::BufferTooSmall => "buffer too small for the DNS message",
            Self::CnameLoop => "CNAME loop",
            Self::ChainTooLong => "CNAME chain too long",
            Self::CnameConflict => "conflicting CNAME records",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result of reading or writing DNS.
pub type Result<T> = core::result::Result<T, Error>;

/// Splits one DNS message off the front of a TCP byte stream (RFC 1035 4.2.2): `Some((message, rest))`
/// once the length prefix and the whole message have arrived, `None` while more octets are needed.
pub fn split_tcp(stream: &[u8]) -> Option<(&[u8], &[u8])> {
    let [hi, lo, body @ ..] = stream else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    (body.len() >= len).then(|| body.split_at(len))
}

/// Writes a message as it goes on a TCP stream: the two-octet length, then the message that `emit`
/// writes (`emit` gets the buffer after the prefix and returns the message length).
pub(crate) fn emit_tcp(
    buf: &mut [u8],
    emit: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<usize> {
    if buf.len() < TCP_PREFIX_LEN {
        return Err(Error::BufferTooSmall);
    }
    let (prefix, body) = buf.split_at_mut(TCP_PREFIX_LEN);
    let len = emit(body)?;
    let len16 = u16::try_from(len).map_err(|_| Error::MessageTooLong)?;
    prefix.copy_from_slice(&len16.to_be_bytes());
    Ok(TCP_PREFIX_LEN + len)
}

/// Fuzz entry (fuzz/ and core/tests/regress.rs): decodes arbitrary bytes every way this module can.
///
/// Parses the input as a response and as a query (bare and TCP-framed), follows the response's CNAME
/// chain, and checks that whatever parsed survives `emit` and `parse` unchanged. Panics only if that
/// round trip breaks, which is a bug.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    fn round_trip(msg: &[u8]) {
        if let Ok(packet) = Packet::new_checked(msg) {
            let _ = (
                packet.id(),
                packet.opcode(),
                packet.rcode(),
                packet.truncated(),
            );
        }
        if let Ok(r) = Response::parse(msg) {
            let _ = r.chain();
            let mut buf = [0u8; MAX_RESPONSE_LEN];
            // Skipped records are counted, not kept: emit writes none back.
            let kept = Response {
                skipped: 0,
                ..r.clone()
            };
            let n = kept.emit(&mut buf).expect("a parsed response re-emits");
            assert_eq!(n, kept.buffer_len());
            let again = Response::parse(buf.get(..n).unwrap_or_default())
                .expect("re-emitted response parses");
            assert_eq!(again, kept);
            assert!(again
                .answers
                .iter()
                .zip(&kept.answers)
                .all(|(a, b)| a.name.as_str() == b.name.as_str()));
        }
        if let Ok(q) = Query::parse(msg) {
            let mut buf = [0u8; MAX_QUERY_LEN];
            let n = q.emit(&mut buf).expect("a parsed query re-emits");
            assert_eq!(n, q.buffer_len());
            let again =
                Query::parse(buf.get(..n).unwrap_or_default()).expect("re-emitted query parses");
            assert_eq!(again, q);
            assert_eq!(again.question.name.as_str(), q.question.name.as_str());
        }
    }
    round_trip(data);
    if let Some((msg, _rest)) = split_tcp(data) {
        round_trip(msg);
    }
}
