//! STUN messages (RFC 8489, RFC 5389 compatible) for the Teams media probe: Binding requests out, Binding
//! responses in, the public mapped address out of them; and the responses a simulated STUN server sends.
//!
//! [`Message`] is a view over one UDP datagram; [`Message::attributes`] walks its attributes without ever
//! reading past the message. [`Repr`] holds what the probe needs. Parsing is strict where the RFC is: an
//! unknown comprehension-required attribute, a FINGERPRINT that is not last or does not match, and a
//! malformed address are each their own [`Error`], because a probe that half-understands a response would
//! report a wrong public address. MESSAGE-INTEGRITY is recognised but not verified: the Binding requests to
//! Teams relays are unauthenticated.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{enum_with_unknown, u16_at};

/// Length of the fixed STUN header: type, length, magic cookie, transaction id.
pub const HEADER_LEN: usize = field::TRANSACTION_ID.end;

/// The magic cookie that tells RFC 5389/8489 STUN apart from RFC 3489 and from other protocols on the port.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// XORed into the CRC-32 of a FINGERPRINT (the ASCII of "STUN") so that it differs from CRCs of other
/// protocols multiplexed on the same port.
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// Most attributes read from one message. Binding responses carry fewer than ten; the bound keeps the cost
/// of a hostile datagram (thousands of empty attributes) fixed.
pub const MAX_ATTRIBUTES: usize = 32;

/// Longest SOFTWARE value or ERROR-CODE reason phrase in bytes (RFC 8489 §14.8, §14.14).
pub const MAX_TEXT_LEN: usize = 763;

/// Most characters in a SOFTWARE value or reason phrase ("fewer than 128 characters").
pub const MAX_TEXT_CHARS: usize = 127;

/// Most attribute types one UNKNOWN-ATTRIBUTES list may name.
pub const MAX_UNKNOWN_ATTRIBUTES: usize = 8;

/// The longest message a [`Repr`] emits: a transmit buffer of this size always suffices.
pub const MAX_REPR_LEN: usize = HEADER_LEN
    + 2 * attribute_len(ADDRESS_V6_LEN)
    + attribute_len(ERROR_CODE_HEADER_LEN + MAX_TEXT_LEN)
    + attribute_len(2 * MAX_UNKNOWN_ATTRIBUTES)
    + attribute_len(MAX_TEXT_LEN)
    + attribute_len(FINGERPRINT_LEN);

const ATTRIBUTE_HEADER_LEN: usize = field::ATTR_VALUE;
const ADDRESS_V4_LEN: usize = field::ADDR_V4.end;
const ADDRESS_V6_LEN: usize = field::ADDR_V6.end;
const ERROR_CODE_HEADER_LEN: usize = field::ERR_REASON;
const FINGERPRINT_LEN: usize = 4;
const FAMILY_V4: u8 = 0x01;
const FAMILY_V6: u8 = 0x02;
/// The two most significant bits of every STUN message are zero (RFC 8489 §5): this is how STUN is told
/// apart from RTP/RTCP and DTLS on a shared port.
const TYPE_RESERVED_BITS: u16 = 0xC000;
const METHOD_MAX: u16 = 0x0FFF;

mod field {
    use core::ops::Range;

    pub const TYPE: Range<usize> = 0..2;
    pub const LENGTH: Range<usize> = 2..4;
    pub const COOKIE: Range<usize> = 4..8;
    pub const TRANSACTION_ID: Range<usize> = 8..20;

    // Attribute header, relative to the start of the attribute.
    pub const ATTR_TYPE: Range<usize> = 0..2;
    pub const ATTR_LENGTH: Range<usize> = 2..4;
    pub const ATTR_VALUE: usize = 4;

    // (XOR-)MAPPED-ADDRESS value. Byte 0 is reserved.
    pub const ADDR_FAMILY: usize = 1;
    pub const ADDR_PORT: Range<usize> = 2..4;
    pub const ADDR_V4: Range<usize> = 4..8;
    pub const ADDR_V6: Range<usize> = 4..20;

    // ERROR-CODE value: 21 reserved bits, 3 bits of class, 8 bits of number, then the reason phrase.
    pub const ERR_CLASS: usize = 2;
    pub const ERR_NUMBER: usize = 3;
    pub const ERR_REASON: usize = 4;
}

/// Length on the wire of an attribute whose value is `value_len` bytes: header plus value padded to 4.
const fn attribute_len(value_len: usize) -> usize {
    ATTRIBUTE_HEADER_LEN + padded(value_len)
}

const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Why a datagram is not a STUN message this module accepts, or why a [`Repr`] cannot be emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the header, or than the header plus the length field.
    Truncated,
    /// Bytes follow the message inside the datagram.
    TrailingBytes,
    /// The length field is not a multiple of 4.
    LengthNotAligned,
    /// The two most significant bits of the type are not zero: another protocol on the port.
    NotStun,
    /// The magic cookie is wrong (an RFC 3489 peer, or not STUN at all).
    BadMagicCookie,
    /// An attribute header or value runs past the end of the message.
    AttributeOverrun,
    /// More than [`MAX_ATTRIBUTES`] attributes.
    TooManyAttributes,
    /// A comprehension-required attribute (0x0000-0x7FFF) this module does not understand (RFC 8489 §7.3.1:
    /// a server answers 420 naming it, a client discards the response).
    UnknownRequiredAttribute(u16),
    /// The value of the named attribute type has a length its format does not allow.
    BadAttributeLength(u16),
    /// A (XOR-)MAPPED-ADDRESS family other than IPv4 (1) or IPv6 (2).
    BadAddressFamily(u8),
    /// An ERROR-CODE class outside 3-6 or number above 99 (or such a code given to emit).
    BadErrorCode,
    /// A SOFTWARE value or reason phrase that is not UTF-8.
    InvalidUtf8,
    /// A SOFTWARE value or reason phrase longer than [`MAX_TEXT_LEN`] bytes or [`MAX_TEXT_CHARS`] characters.
    TextTooLong,
    /// An UNKNOWN-ATTRIBUTES list naming more than [`MAX_UNKNOWN_ATTRIBUTES`] types.
    TooManyUnknownAttributes,
    /// FINGERPRINT is followed by another attribute.
    FingerprintNotLast,
    /// FINGERPRINT does not match the message: corrupted, or not STUN.
    FingerprintMismatch,
    /// A method code above 0xFFF given to emit.
    MethodOutOfRange,
    /// The buffer given to emit is shorter than [`Repr::buffer_len`].
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated => f.write_str("STUN message truncated"),
            Self::TrailingBytes => f.write_str("bytes after the STUN message"),
            Self::LengthNotAligned => f.write_str("STUN length not a multiple of 4"),
            Self::NotStun => f.write_str("not a STUN message (leading type bits set)"),
            Self::BadMagicCookie => f.write_str("bad STUN magic cookie"),
            Self::AttributeOverrun => f.write_str("STUN attribute runs past the message"),
            Self::TooManyAttributes => write!(f, "more than {MAX_ATTRIBUTES} STUN attributes"),
            Self::UnknownRequiredAttribute(t) => {
                write!(f, "unknown comprehension-required STUN attribute {t:#06x}")
            }
            Self::BadAttributeLength(t) => write!(f, "bad length of STUN attribute {t:#06x}"),
            Self::BadAddressFamily(family) => write!(f, "bad STUN address family {family}"),
            Self::BadErrorCode => f.write_str("STUN error code outside 300-699"),
            Self::InvalidUtf8 => f.write_str("STUN text is not UTF-8"),
            Self::TextTooLong => write!(
                f,
                "STUN text longer than {MAX_TEXT_CHARS} characters or {MAX_TEXT_LEN} bytes"
            ),
            Self::TooManyUnknownAttributes => {
                write!(
                    f,
                    "more than {MAX_UNKNOWN_ATTRIBUTES} STUN unknown attributes"
                )
            }
            Self::FingerprintNotLast => f.write_str("STUN FINGERPRINT is not the last attribute"),
            Self::FingerprintMismatch => f.write_str("STUN FINGERPRINT does not match"),
            Self::MethodOutOfRange => f.write_str("STUN method above 0xfff"),
            Self::BufferTooSmall => f.write_str("buffer too small for the STUN message"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result of the STUN wire layer.
pub type Result<T> = core::result::Result<T, Error>;

/// The class of a message: the two class bits interleaved in the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request: expects a success or error response with the same transaction id.
    Request,
    /// An indication: no response.
    Indication,
    /// A success response.
    SuccessResponse,
    /// An error response, carrying ERROR-CODE.
    ErrorResponse,
}

impl Class {
    const fn bits(self) -> u16 {
        match self {
            Self::Request => 0b00,
            Self::Indication => 0b01,
            Self::SuccessResponse => 0b10,
            Self::ErrorResponse => 0b11,
        }
    }

    const fn from_bits(bits: u16) -> Self {
        match bits & 0b11 {
            0b00 => Self::Request,
            0b01 => Self::Indication,
            0b10 => Self::SuccessResponse,
            _ => Self::ErrorResponse,
        }
    }
}

enum_with_unknown! {
    /// The method of a message (12 bits). Only Binding is used here; TURN and others are `Unknown`.
    pub enum Method(u16) {
        /// Binding (0x001): learn the mapped address, measure the round trip.
        Binding = 0x001,
    }
}

/// The 16-bit message type: method bits M11..M0 with class bits C1 and C0 interleaved at bits 8 and 4.
const fn message_type(class: Class, method: u16) -> u16 {
    let m = method & METHOD_MAX;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

/// The 96-bit transaction id that pairs a response with its request. The probe derives it from its seed;
/// it must be unpredictable enough that an off-path host cannot forge responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransactionId(pub [u8; 12]);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

enum_with_unknown! {
    /// The type of an attribute. The named ones are those this module understands, if only to skip them; an
    /// `Unknown` type below 0x8000 makes a message unparseable (see [`AttributeType::is_comprehension_required`]).
    pub enum AttributeType(u16) {
        /// MAPPED-ADDRESS (0x0001), the RFC 3489 form of the mapped address.
        MappedAddress = 0x0001,
        /// SOURCE-ADDRESS (0x0004), sent by RFC 3489 servers in Binding responses; unused.
        SourceAddress = 0x0004,
        /// CHANGED-ADDRESS (0x0005), sent by RFC 3489 servers in Binding responses; unused.
        ChangedAddress = 0x0005,
        /// USERNAME (0x0006); unused.
        Username = 0x0006,
        /// MESSAGE-INTEGRITY (0x0008), HMAC-SHA1; not verified. Attributes after it are ignored (RFC 8489 §14.5).
        MessageIntegrity = 0x0008,
        /// ERROR-CODE (0x0009).
        ErrorCode = 0x0009,
        /// UNKNOWN-ATTRIBUTES (0x000A), in 420 responses.
        UnknownAttributes = 0x000A,
        /// REFLECTED-FROM (0x000B), RFC 3489; unused.
        ReflectedFrom = 0x000B,
        /// REALM (0x0014); unused.
        Realm = 0x0014,
        /// NONCE (0x0015); unused.
        Nonce = 0x0015,
        /// MESSAGE-INTEGRITY-SHA256 (0x001C); not verified. Attributes after it are ignored (RFC 8489 §14.6).
        MessageIntegritySha256 = 0x001C,
        /// PASSWORD-ALGORITHM (0x001D); unused.
        PasswordAlgorithm = 0x001D,
        /// USERHASH (0x001E); unused.
        Userhash = 0x001E,
        /// XOR-MAPPED-ADDRESS (0x0020).
        XorMappedAddress = 0x0020,
        /// PRIORITY (0x0024), ICE (RFC 8445) connectivity checks, which Teams media sends; unused.
        Priority = 0x0024,
        /// USE-CANDIDATE (0x0025), ICE; unused.
        UseCandidate = 0x0025,
        /// PASSWORD-ALGORITHMS (0x8002); unused.
        PasswordAlgorithms = 0x8002,
        /// ALTERNATE-DOMAIN (0x8003); unused.
        AlternateDomain = 0x8003,
        /// SOFTWARE (0x8022).
        Software = 0x8022,
        /// ALTERNATE-SERVER (0x8023); unused.
        AlternateServer = 0x8023,
        /// FINGERPRINT (0x8028).
        Fingerprint = 0x8028,
        /// ICE-CONTROLLED (0x8029); unused.
        IceControlled = 0x8029,
        /// ICE-CONTROLLING (0x802A); unused.
        IceControlling = 0x802A,
    }
}

impl AttributeType {
    /// Types 0x0000-0x7FFF must be understood by the receiver; 0x8000-0xFFFF may be skipped.
    pub fn is_comprehension_required(self) -> bool {
        u16::from(self) < 0x8000
    }
}

/// One attribute as it sits in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Its type.
    pub kind: AttributeType,
    /// Its value, without padding.
    pub value: &'a [u8],
    /// Offset of its header from the start of the message (FINGERPRINT covers the bytes before it).
    pub offset: usize,
}

/// Iterator over the attributes of a message, yielding an error once and then stopping if an attribute
/// overruns the message or there are more than [`MAX_ATTRIBUTES`]. Never reads outside the message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    message: &'a [u8],
    offset: usize,
    count: usize,
    done: bool,
}

impl<'a> Attributes<'a> {
    fn fail(&mut self, error: Error) -> Option<Result<Attribute<'a>>> {
        self.done = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<Attribute<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let rest = match self.message.get(offset..) {
            Some(rest) if !rest.is_empty() => rest,
            _ => {
                self.done = true;
                return None;
            }
        };
        if self.count == MAX_ATTRIBUTES {
            return self.fail(Error::TooManyAttributes);
        }
        let (Some(kind), Some(len)) = (
            u16_at(rest, field::ATTR_TYPE),
            u16_at(rest, field::ATTR_LENGTH),
        ) else {
            return self.fail(Error::AttributeOverrun);
        };
        let len = usize::from(len);
        // The padding must fit too: a value ending flush with an unaligned buffer is still an overrun.
        let Some(value) = rest
            .get(field::ATTR_VALUE..field::ATTR_VALUE + len)
            .filter(|_| rest.len() >= attribute_len(len))
        else {
            return self.fail(Error::AttributeOverrun);
        };
        self.offset = offset + attribute_len(len);
        self.count += 1;
        Some(Ok(Attribute {
            kind: AttributeType::from(kind),
            value,
            offset,
        }))
    }
}

/// A read/write view of a STUN message over a byte buffer holding exactly one message (one UDP datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer without checking it; getters may panic until [`Message::check_len`] succeeds.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// [`Message::new_unchecked`] followed by [`Message::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let message = Self::new_unchecked(buffer);
        message.check_len()?;
        Ok(message)
    }

    /// Checks that the buffer holds the header and exactly the length the header announces, a multiple of
    /// 4. After it succeeds no getter panics. It does not check the cookie or the leading bits; see
    /// [`Message::check_header`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let body = usize::from(self.length());
        if body % 4 != 0 {
            return Err(Error::LengthNotAligned);
        }
        match len.cmp(&(HEADER_LEN + body)) {
            core::cmp::Ordering::Less => Err(Error::Truncated),
            core::cmp::Ordering::Greater => Err(Error::TrailingBytes),
            core::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// Checks what tells STUN from other traffic on the port: the two leading zero bits and the magic cookie.
    pub fn check_header(&self) -> Result<()> {
        if self.message_type() & TYPE_RESERVED_BITS != 0 {
            return Err(Error::NotStun);
        }
        if self.magic_cookie() != MAGIC_COOKIE {
            return Err(Error::BadMagicCookie);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw 16-bit message type.
    pub fn message_type(&self) -> u16 {
        self.header_u16(field::TYPE)
    }

    /// The class, from bits C1 and C0 of the type.
    pub fn class(&self) -> Class {
        let t = self.message_type();
        Class::from_bits(((t >> 4) & 0b01) | ((t >> 7) & 0b10))
    }

    /// The method, from bits M11..M0 of the type.
    pub fn method(&self) -> Method {
        let t = self.message_type();
        Method::from((t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80))
    }

    /// The length of the message after the header.
    pub fn length(&self) -> u16 {
        self.header_u16(field::LENGTH)
    }

    /// The magic cookie field.
    pub fn magic_cookie(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::COOKIE];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        let mut id = [0; 12];
        id.copy_from_slice(&self.buffer.as_ref()[field::TRANSACTION_ID]);
        TransactionId(id)
    }

    fn header_u16(&self, at: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[at];
        u16::from_be_bytes([d[0], d[1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Message<&'a T> {
    /// The attributes, in order, borrowing the buffer rather than the view. Safe on any buffer; on one
    /// that passed [`Message::check_len`] it ends exactly at the end of the message or with an error.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            message: self.buffer.as_ref(),
            offset: HEADER_LEN,
            count: 0,
            done: false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Message<T> {
    /// Sets the raw message type.
    pub fn set_message_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::TYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type from a class and a method code (12 bits; higher bits are dropped).
    pub fn set_class_and_method(&mut self, class: Class, method: Method) {
        self.set_message_type(message_type(class, u16::from(method)));
    }

    /// Sets the length field (the length after the header).
    pub fn set_length(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the magic cookie field.
    pub fn set_magic_cookie(&mut self, value: u32) {
        self.buffer.as_mut()[field::COOKIE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the transaction id.
    pub fn set_transaction_id(&mut self, id: TransactionId) {
        self.buffer.as_mut()[field::TRANSACTION_ID].copy_from_slice(&id.0);
    }

    /// The bytes after the header, where the attributes go.
    pub fn attributes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An ERROR-CODE attribute: a code 300-699 and a reason phrase for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// class * 100 + number, 300-699.
    pub code: u16,
    /// The reason phrase, at most [`MAX_TEXT_CHARS`] characters.
    pub reason: &'a str,
}

impl ErrorCode<'_> {
    /// 300 Try Alternate: use the server in ALTERNATE-SERVER.
    pub const TRY_ALTERNATE: u16 = 300;
    /// 400 Bad Request: the request was malformed.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated: credentials are required.
    pub const UNAUTHENTICATED: u16 = 401;
    /// 420 Unknown Attribute: the request had comprehension-required attributes the server did not
    /// understand; they are listed in UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 438 Stale Nonce.
    pub const STALE_NONCE: u16 = 438;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;

    fn is_valid(code: u16) -> bool {
        (300..700).contains(&code)
    }
}

/// The attribute types named in an UNKNOWN-ATTRIBUTES list, at most [`MAX_UNKNOWN_ATTRIBUTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UnknownAttributes {
    types: [u16; MAX_UNKNOWN_ATTRIBUTES],
    len: usize,
}

impl UnknownAttributes {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            types: [0; MAX_UNKNOWN_ATTRIBUTES],
            len: 0,
        }
    }

    /// Appends a type; a full list hands it back.
    pub fn push(&mut self, attribute_type: u16) -> core::result::Result<(), u16> {
        match self.types.get_mut(self.len) {
            Some(slot) => {
                *slot = attribute_type;
                self.len += 1;
                Ok(())
            }
            None => Err(attribute_type),
        }
    }

    /// The types, in order.
    pub fn as_slice(&self) -> &[u16] {
        self.types.get(..self.len).unwrap_or(&[])
    }
}

impl PartialEq for UnknownAttributes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for UnknownAttributes {}

/// What a STUN message says that the probe and the simulated server use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Request, indication, success or error response.
    pub class: Class,
    /// The method; Binding for everything the probe sends.
    pub method: Method,
    /// Pairs the response with its request.
    pub transaction_id: TransactionId,
    /// XOR-MAPPED-ADDRESS: the public address and port the server saw.
    pub xor_mapped: Option<SocketAddr>,
    /// MAPPED-ADDRESS: the same, unobfuscated, from RFC 3489 servers (and some that send both).
    pub mapped: Option<SocketAddr>,
    /// ERROR-CODE, in error responses.
    pub error_code: Option<ErrorCode<'a>>,
    /// UNKNOWN-ATTRIBUTES, in 420 error responses.
    pub unknown_attributes: Option<UnknownAttributes>,
    /// SOFTWARE: the peer's software name and version.
    pub software: Option<&'a str>,
    /// FINGERPRINT was present and matched (parse), or is to be added (emit).
    pub fingerprint: bool,
}

impl<'a> Repr<'a> {
    /// A Binding request with the given transaction id and a FINGERPRINT, as the probe sends it.
    pub const fn binding_request(transaction_id: TransactionId) -> Self {
        Self {
            class: Class::Request,
            method: Method::Binding,
            transaction_id,
            xor_mapped: None,
            mapped: None,
            error_code: None,
            unknown_attributes: None,
            software: None,
            fingerprint: true,
        }
    }

    /// A Binding success response telling the client it was seen from `mapped`, with a FINGERPRINT.
    pub const fn binding_success(transaction_id: TransactionId, mapped: SocketAddr) -> Self {
        Self {
            class: Class::SuccessResponse,
            xor_mapped: Some(mapped),
            ..Self::binding_request(transaction_id)
        }
    }

    /// A Binding error response with the given code (300-699) and reason, with a FINGERPRINT.
    pub const fn binding_error(transaction_id: TransactionId, code: u16, reason: &'a str) -> Self {
        Self {
            class: Class::ErrorResponse,
            error_code: Some(ErrorCode { code, reason }),
            ..Self::binding_request(transaction_id)
        }
    }

    /// The mapped address: XOR-MAPPED-ADDRESS if present (NATs that rewrite addresses in payloads cannot
    /// touch it), else MAPPED-ADDRESS.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped.or(self.mapped)
    }

    /// Parses and validates a message: header, every attribute, and FINGERPRINT if present. The first of
    /// repeated attributes counts (RFC 8489 §14); attributes after MESSAGE-INTEGRITY(-SHA256) other than
    /// FINGERPRINT are ignored (§14.5, §14.6).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(message: &Message<&'a T>) -> Result<Self> {
        message.check_len()?;
        message.check_header()?;
        let bytes: &'a [u8] = message.buffer.as_ref();
        let transaction_id = message.transaction_id();
        let mut repr = Self {
            class: message.class(),
            method: message.method(),
            transaction_id,
            xor_mapped: None,
            mapped: None,
            error_code: None,
            unknown_attributes: None,
            software: None,
            fingerprint: false,
        };
        let mut after_integrity = None;
        for attribute in message.attributes() {
            let Attribute {
                kind,
                value,
                offset,
            } = attribute?;
            match (kind, after_integrity) {
                (AttributeType::Fingerprint, _) => {
                    check_fingerprint(bytes, offset, value)?;
                    repr.fingerprint = true;
                }
                (AttributeType::MessageIntegritySha256, Some(AttributeType::MessageIntegrity)) => {
                    after_integrity = Some(kind);
                }
                (_, Some(_)) => {}
                (AttributeType::MessageIntegrity | AttributeType::MessageIntegritySha256, None) => {
                    after_integrity = Some(kind);
                }
                (AttributeType::XorMappedAddress, None) if repr.xor_mapped.is_none() => {
                    repr.xor_mapped = Some(parse_address(kind, value, Some(&transaction_id))?);
                }
                (AttributeType::MappedAddress, None) if repr.mapped.is_none() => {
                    repr.mapped = Some(parse_address(kind, value, None)?);
                }
                (AttributeType::ErrorCode, None) if repr.error_code.is_none() => {
                    repr.error_code = Some(parse_error_code(value)?);
                }
                (AttributeType::UnknownAttributes, None) if repr.unknown_attributes.is_none() => {
                    repr.unknown_attributes = Some(parse_unknown_attributes(value)?);
                }
                (AttributeType::Software, None) if repr.software.is_none() => {
                    repr.software = Some(parse_text(value)?);
                }
                (AttributeType::Unknown(code), None) if kind.is_comprehension_required() => {
                    return Err(Error::UnknownRequiredAttribute(code));
                }
                _ => {}
            }
        }
        Ok(repr)
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        let address = |a: Option<SocketAddr>| match a {
            Some(SocketAddr::V4(_)) => attribute_len(ADDRESS_V4_LEN),
            Some(SocketAddr::V6(_)) => attribute_len(ADDRESS_V6_LEN),
            None => 0,
        };
        HEADER_LEN
            + address(self.xor_mapped)
            + address(self.mapped)
            + self
                .error_code
                .map_or(0, |e| attribute_len(ERROR_CODE_HEADER_LEN + e.reason.len()))
            + self
                .unknown_attributes
                .map_or(0, |u| attribute_len(2 * u.as_slice().len()))
            + self.software.map_or(0, |s| attribute_len(s.len()))
            + if self.fingerprint {
                attribute_len(FINGERPRINT_LEN)
            } else {
                0
            }
    }

    /// Emits the message into the first [`Repr::buffer_len`] bytes of the buffer, FINGERPRINT last. Fails
    /// without panicking on a short buffer or on what parse would reject (a code outside 300-699, a method
    /// above 0xFFF, text too long).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, message: &mut Message<T>) -> Result<()> {
        self.emit_into(message.buffer.as_mut()).map(|_| ())
    }

    /// [`Repr::emit`] into a plain buffer; returns the number of bytes written.
    pub fn emit_into(&self, buffer: &mut [u8]) -> Result<usize> {
        self.check_emittable()?;
        let len = self.buffer_len();
        let body = u16::try_from(len - HEADER_LEN).map_err(|_| Error::BufferTooSmall)?;
        let out = buffer.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        out.fill(0);
        let mut message = Message::new_unchecked(&mut *out);
        message.set_class_and_method(self.class, self.method);
        message.set_length(body);
        message.set_magic_cookie(MAGIC_COOKIE);
        message.set_transaction_id(self.transaction_id);

        let mut w = Writer {
            buffer: out,
            offset: HEADER_LEN,
        };
        if let Some(address) = self.xor_mapped {
            w.address(
                AttributeType::XorMappedAddress,
                address,
                Some(&self.transaction_id),
            )?;
        }
        if let Some(address) = self.mapped {
            w.address(AttributeType::MappedAddress, address, None)?;
        }
        if let Some(e) = self.error_code {
            let class = (e.code / 100) as u8;
            let number = (e.code % 100) as u8;
            w.attribute(
                AttributeType::ErrorCode,
                &[&[0, 0, class, number], e.reason.as_bytes()],
            )?;
        }
        if let Some(unknown) = self.unknown_attributes {
            let mut list = [0u8; 2 * MAX_UNKNOWN_ATTRIBUTES];
            for (slot, t) in list.chunks_exact_mut(2).zip(unknown.as_slice()) {
                slot.copy_from_slice(&t.to_be_bytes());
            }
            let list = list.get(..2 * unknown.as_slice().len()).unwrap_or(&[]);
            w.attribute(AttributeType::UnknownAttributes, &[list])?;
        }
        if let Some(software) = self.software {
            w.attribute(AttributeType::Software, &[software.as_bytes()])?;
        }
        if self.fingerprint {
            // The length field already counts the FINGERPRINT, as the CRC must see it.
            let crc =
                crc32(w.buffer.get(..w.offset).ok_or(Error::BufferTooSmall)?) ^ FINGERPRINT_XOR;
            w.attribute(AttributeType::Fingerprint, &[&crc.to_be_bytes()])?;
        }
        Ok(len)
    }

    fn check_emittable(&self) -> Result<()> {
        if u16::from(self.method) > METHOD_MAX {
            return Err(Error::MethodOutOfRange);
        }
        if let Some(e) = self.error_code {
            if !ErrorCode::is_valid(e.code) {
                return Err(Error::BadErrorCode);
            }
            check_text(e.reason)?;
        }
        if let Some(software) = self.software {
            check_text(software)?;
        }
        Ok(())
    }
}

/// Writes attributes one after another; every write is bounds-checked.
struct Writer<'b> {
    buffer: &'b mut [u8],
    offset: usize,
}

impl Writer<'_> {
    /// Writes an attribute whose value is the concatenation of `parts`, then zero padding.
    fn attribute(&mut self, kind: AttributeType, parts: &[&[u8]]) -> Result<()> {
        let value_len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u16::try_from(value_len).map_err(|_| Error::BufferTooSmall)?;
        let end = self.offset + attribute_len(value_len);
        let out = self
            .buffer
            .get_mut(self.offset..end)
            .ok_or(Error::BufferTooSmall)?;
        let mut at = 0;
        for part in [&u16::from(kind).to_be_bytes()[..], &len.to_be_bytes()[..]]
            .into_iter()
            .chain(parts.iter().copied())
        {
            out.get_mut(at..at + part.len())
                .ok_or(Error::BufferTooSmall)?
                .copy_from_slice(part);
            at += part.len();
        }
        self.offset = end;
        Ok(())
    }

    fn address(
        &mut self,
        kind: AttributeType,
        address: SocketAddr,
        xor: Option<&TransactionId>,
    ) -> Result<()> {
        let mut port = address.port();
        let mut v6 = [0u8; 16];
        let (family, bytes) = match address.ip() {
            IpAddr::V4(ip) => {
                if let Some(b) = v6.get_mut(..4) {
                    b.copy_from_slice(&ip.octets());
                }
                (FAMILY_V4, 4)
            }
            IpAddr::V6(ip) => {
                v6 = ip.octets();
                (FAMILY_V6, 16)
            }
        };
        if let Some(id) = xor {
            port ^= (MAGIC_COOKIE >> 16) as u16;
            xor_address(&mut v6, id);
        }
        let ip = v6.get(..bytes).unwrap_or(&[]);
        self.attribute(kind, &[&[0, family], &port.to_be_bytes(), ip])
    }
}

/// XORs an address (4 or 16 bytes at the start of `ip`) with the magic cookie followed by the transaction
/// id (RFC 8489 §14.2); an IPv4 address only meets the cookie.
fn xor_address(ip: &mut [u8; 16], id: &TransactionId) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    for (b, k) in ip.iter_mut().zip(cookie.iter().chain(id.0.iter())) {
        *b ^= k;
    }
}

fn parse_address(
    kind: AttributeType,
    value: &[u8],
    xor: Option<&TransactionId>,
) -> Result<SocketAddr> {
    let bad_length = Error::BadAttributeLength(u16::from(kind));
    let family = *value.get(field::ADDR_FAMILY).ok_or(bad_length)?;
    let mut port = u16_at(value, field::ADDR_PORT).ok_or(bad_length)?;
    let mut ip = [0u8; 16];
    let ip_len = match family {
        FAMILY_V4 => ADDRESS_V4_LEN,
        FAMILY_V6 => ADDRESS_V6_LEN,
        other => return Err(Error::BadAddressFamily(other)),
    };
    if value.len() != ip_len {
        return Err(bad_length);
    }
    let raw = value.get(field::ADDR_V4.start..).ok_or(bad_length)?;
    for (b, r) in ip.iter_mut().zip(raw) {
        *b = *r;
    }
    if let Some(id) = xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
        xor_address(&mut ip, id);
    }
    let ip = if family == FAMILY_V4 {
        let [a, b, c, d, ..] = ip;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(ip))
    };
    Ok(SocketAddr::new(ip, port))
}

fn parse_error_code(value: &[u8]) -> Result<ErrorCode<'_>> {
    let bad_length = Error::BadAttributeLength(u16::from(AttributeType::ErrorCode));
    let class = value.get(field::ERR_CLASS).ok_or(bad_length)? & 0x07;
    let number = *value.get(field::ERR_NUMBER).ok_or(bad_length)?;
    if !(3..=6).contains(&class) || number > 99 {
        return Err(Error::BadErrorCode);
    }
    let reason = parse_text(value.get(field::ERR_REASON..).ok_or(bad_length)?)?;
    Ok(ErrorCode {
        code: u16::from(class) * 100 + u16::from(number),
        reason,
    })
}

fn parse_unknown_attributes(value: &[u8]) -> Result<UnknownAttributes> {
    if value.len() % 2 != 0 {
        return Err(Error::BadAttributeLength(u16::from(
            AttributeType::UnknownAttributes,
        )));
    }
    let mut list = UnknownAttributes::new();
    for pair in value.chunks_exact(2) {
        let t = u16_at(pair, 0..2).unwrap_or_default();
        list.push(t).map_err(|_| Error::TooManyUnknownAttributes)?;
    }
    Ok(list)
}

/// Decodes a SOFTWARE value or reason phrase. Trailing NUL bytes are dropped: coturn counts C-string
/// padding in the length ("Unknown Attribute\0\0\0"), and a NUL is never text a person should see.
fn parse_text(value: &[u8]) -> Result<&str> {
    let end = value
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let value = value.get(..end).unwrap_or_default();
    if value.len() > MAX_TEXT_LEN {
        return Err(Error::TextTooLong);
    }
    let text = core::str::from_utf8(value).map_err(|_| Error::InvalidUtf8)?;
    check_text(text)?;
    Ok(text)
}

fn check_text(text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_LEN || text.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::TextTooLong);
    }
    Ok(())
}

/// FINGERPRINT at `offset` must be the last attribute, 4 bytes long, and equal the CRC-32 of the message
/// before it XOR [`FINGERPRINT_XOR`] (RFC 8489 §14.7).
fn check_fingerprint(message: &[u8], offset: usize, value: &[u8]) -> Result<()> {
    let value: [u8; FINGERPRINT_LEN] = value
        .try_into()
        .map_err(|_| Error::BadAttributeLength(u16::from(AttributeType::Fingerprint)))?;
    if offset + attribute_len(FINGERPRINT_LEN) != message.len() {
        return Err(Error::FingerprintNotLast);
    }
    let covered = message.get(..offset).ok_or(Error::AttributeOverrun)?;
    if crc32(covered) ^ FINGERPRINT_XOR != u32::from_be_bytes(value) {
        return Err(Error::FingerprintMismatch);
    }
    Ok(())
}

/// CRC-32 as in ISO 3309 / ITU-T V.42 / zlib (reflected polynomial 0xEDB88320), which FINGERPRINT uses.
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        CRC32_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Fuzz entry (fuzz/ and core/tests/regress.rs): decodes arbitrary bytes every way this module can.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    // The attribute walk must be safe even on a buffer that never passed check_len.
    for attribute in Message::new_unchecked(data).attributes() {
        if attribute.is_err() {
            break;
        }
    }
    let Ok(message) = Message::new_checked(data) else {
        return;
    };
    let _ = (message.class(), message.method(), message.transaction_id());
    let _ = message.check_header();
    let Ok(repr) = Repr::parse(&message) else {
        return;
    };
    let mut buffer = [0u8; MAX_REPR_LEN];
    let len = repr.emit_into(&mut buffer).expect("a parsed Repr emits");
    assert_eq!(len, repr.buffer_len());
    let emitted = buffer
        .get(..len)
        .expect("emit_into returns a length within the buffer");
    let again = Message::new_checked(emitted).expect("emitted message checks");
    assert_eq!(
        Repr::parse(&again),
        Ok(repr),
        "parse(emit(parse(x))) == parse(x)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const RFC5769_REQUEST: &[u8] = include_bytes!("../../tests/fixtures/stun/rfc5769-request.bin");
    const RFC5769_IPV4: &[u8] =
        include_bytes!("../../tests/fixtures/stun/rfc5769-response-ipv4.bin");
    const RFC5769_IPV6: &[u8] =
        include_bytes!("../../tests/fixtures/stun/rfc5769-response-ipv6.bin");
    const REQUEST_IPV4: &[u8] = include_bytes!("../../tests/fixtures/stun/request-ipv4.bin");
    const REQUEST_IPV6: &[u8] = include_bytes!("../../tests/fixtures/stun/request-ipv6.bin");
    const REQUEST_420: &[u8] = include_bytes!("../../tests/fixtures/stun/request-420.bin");
    const COTURN_IPV4: &[u8] = include_bytes!("../../tests/fixtures/stun/coturn-binding-ipv4.bin");
    const COTURN_IPV6: &[u8] = include_bytes!("../../tests/fixtures/stun/coturn-binding-ipv6.bin");
    const COTURN_420: &[u8] = include_bytes!("../../tests/fixtures/stun/coturn-error-420.bin");
    const TURNUTILS_REQUEST: &[u8] =
        include_bytes!("../../tests/fixtures/stun/turnutils-binding-request.bin");
    const TURNUTILS_RFC5780: &[u8] =
        include_bytes!("../../tests/fixtures/stun/turnutils-rfc5780-request.bin");

    const RFC5769_ID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    fn parse(bytes: &[u8]) -> Result<Repr<'_>> {
        Repr::parse(&Message::new_checked(bytes)?)
    }

    fn emit(repr: &Repr<'_>) -> Vec<u8> {
        let mut buffer = std::vec![0u8; repr.buffer_len()];
        let len = repr.emit_into(&mut buffer).unwrap();
        assert_eq!(len, buffer.len());
        buffer
    }

    fn kinds(bytes: &[u8]) -> Vec<AttributeType> {
        Message::new_unchecked(bytes)
            .attributes()
            .map(|a| a.unwrap().kind)
            .collect()
    }

    fn attribute(bytes: &[u8], kind: AttributeType) -> Vec<u8> {
        let a = Message::new_unchecked(bytes)
            .attributes()
            .map(|a| a.unwrap())
            .find(|a| a.kind == kind)
            .unwrap();
        bytes[a.offset..a.offset + attribute_len(a.value.len())].to_vec()
    }

    /// Builds a message by hand, independently of the emitter, so that tests can break it on purpose.
    /// `fingerprint` appends a correct FINGERPRINT.
    fn raw(message_type: u16, attributes: &[(u16, &[u8])], fingerprint: bool) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&message_type.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&RFC5769_ID.0);
        for (t, v) in attributes {
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&(v.len() as u16).to_be_bytes());
            m.extend_from_slice(v);
            m.resize(m.len() + padded(v.len()) - v.len(), 0);
        }
        if fingerprint {
            let len = (m.len() + 8 - HEADER_LEN) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            let crc = crc32(&m) ^ FINGERPRINT_XOR;
            m.extend_from_slice(&[0x80, 0x28, 0, 4]);
            m.extend_from_slice(&crc.to_be_bytes());
        }
        let len = (m.len() - HEADER_LEN) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    const XOR_V4_192_0_2_1: &[u8] = &[0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];

    #[test]
    fn crc32_is_the_iso_hdlc_crc() {
        // The catalogue check value of CRC-32/ISO-HDLC (zlib's CRC, which FINGERPRINT uses).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn rfc5769_sample_request() {
        let repr = parse(RFC5769_REQUEST).unwrap();
        assert_eq!(repr.class, Class::Request);
        assert_eq!(repr.method, Method::Binding);
        assert_eq!(repr.transaction_id, RFC5769_ID);
        assert_eq!(repr.software, Some("STUN test client"));
        assert!(repr.fingerprint);
        assert_eq!(repr.mapped_address(), None);
        use AttributeType::*;
        assert_eq!(
            kinds(RFC5769_REQUEST),
            [
                Software,
                Priority,
                IceControlled,
                Username,
                MessageIntegrity,
                Fingerprint
            ]
        );
    }

    #[test]
    fn rfc5769_sample_responses_give_the_mapped_address() {
        let v4 = parse(RFC5769_IPV4).unwrap();
        assert_eq!(v4.class, Class::SuccessResponse);
        assert_eq!(v4.transaction_id, RFC5769_ID);
        assert_eq!(
            v4.mapped_address(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        assert_eq!(v4.software, Some("test vector"));
        assert!(v4.fingerprint);

        let v6 = parse(RFC5769_IPV6).unwrap();
        let expected: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        assert_eq!(v6.mapped_address(), Some(expected));
        assert_eq!(v6.software, Some("test vector"));
    }

    #[test]
    fn emitted_xor_mapped_address_matches_rfc5769_bytes() {
        // The simulated server must obfuscate exactly as real servers do, or real clients read a wrong address.
        for vector in [RFC5769_IPV4, RFC5769_IPV6] {
            let parsed = parse(vector).unwrap();
            let ours = emit(&Repr::binding_success(
                RFC5769_ID,
                parsed.mapped_address().unwrap(),
            ));
            assert_eq!(
                attribute(&ours, AttributeType::XorMappedAddress),
                attribute(vector, AttributeType::XorMappedAddress)
            );
        }
    }

    #[test]
    fn our_binding_requests_are_the_bytes_coturn_answered() {
        for (bytes, id) in [
            (REQUEST_IPV4, b"o365probe-v4"),
            (REQUEST_IPV6, b"o365probe-v6"),
        ] {
            let request = Repr::binding_request(TransactionId(*id));
            assert_eq!(emit(&request), bytes);
            assert_eq!(parse(bytes), Ok(request));
        }
    }

    #[test]
    fn coturn_binding_responses_give_the_source_address() {
        let v4 = parse(COTURN_IPV4).unwrap();
        assert_eq!(v4.class, Class::SuccessResponse);
        assert_eq!(v4.method, Method::Binding);
        assert_eq!(v4.transaction_id, TransactionId(*b"o365probe-v4"));
        let source: SocketAddr = "127.0.0.1:34790".parse().unwrap();
        assert_eq!(v4.xor_mapped, Some(source));
        assert_eq!(v4.mapped, Some(source));
        assert!(v4.fingerprint);
        assert!(v4.software.unwrap().starts_with("Coturn-"));

        let v6 = parse(COTURN_IPV6).unwrap();
        assert_eq!(v6.transaction_id, TransactionId(*b"o365probe-v6"));
        assert_eq!(v6.mapped_address(), Some("[::1]:34791".parse().unwrap()));
        assert!(v6.fingerprint);
    }

    #[test]
    fn coturn_420_names_the_attribute_we_also_reject() {
        assert_eq!(
            parse(REQUEST_420),
            Err(Error::UnknownRequiredAttribute(0x7FFF))
        );
        let e = parse(COTURN_420).unwrap();
        assert_eq!(e.class, Class::ErrorResponse);
        assert_eq!(e.transaction_id, TransactionId(*b"o365probe420"));
        let code = e.error_code.unwrap();
        assert_eq!(code.code, ErrorCode::UNKNOWN_ATTRIBUTE);
        // coturn counts three NULs of C-string padding in the reason's length.
        assert_eq!(code.reason, "Unknown Attribute");
        assert_eq!(e.unknown_attributes.unwrap().as_slice(), [0x7FFF]);
        assert_eq!(e.mapped_address(), None);
    }

    #[test]
    fn turnutils_requests_as_a_server_sees_them() {
        let plain = parse(TURNUTILS_REQUEST).unwrap();
        assert_eq!(
            (plain.class, plain.method),
            (Class::Request, Method::Binding)
        );
        assert!(!plain.fingerprint);
        // RFC 5780 RESPONSE-PORT first, then CHANGE-REQUEST: a server without RFC 5780 answers 420.
        assert_eq!(
            parse(TURNUTILS_RFC5780),
            Err(Error::UnknownRequiredAttribute(0x0027))
        );
    }

    #[test]
    fn message_type_interleaves_class_bits() {
        // RFC 8489 §5 and §18.2 give these four on the wire.
        for (class, wire) in [
            (Class::Request, 0x0001),
            (Class::Indication, 0x0011),
            (Class::SuccessResponse, 0x0101),
            (Class::ErrorResponse, 0x0111),
        ] {
            let bytes = emit(&Repr {
                class,
                fingerprint: false,
                ..Repr::binding_request(RFC5769_ID)
            });
            let message = Message::new_checked(&bytes[..]).unwrap();
            assert_eq!(message.message_type(), wire);
            assert_eq!(
                (message.class(), message.method()),
                (class, Method::Binding)
            );
        }
        // TURN Allocate (0x003) error response and the highest method: no method bit lands on a class bit.
        assert_eq!(message_type(Class::ErrorResponse, 0x003), 0x0113);
        assert_eq!(message_type(Class::Request, 0xFFF), 0x3EEF);
    }

    #[test]
    fn xor_mapped_address_wins_over_a_rewritten_mapped_address() {
        // A NAT ALG that rewrites addresses in payloads can alter MAPPED-ADDRESS but not the XORed one.
        let rewritten = [0x00, 0x01, 0x80, 0x55, 203, 0, 113, 1];
        let both = raw(
            0x0101,
            &[(0x0001, &rewritten), (0x0020, XOR_V4_192_0_2_1)],
            true,
        );
        let repr = parse(&both).unwrap();
        assert_eq!(repr.mapped, Some("203.0.113.1:32853".parse().unwrap()));
        assert_eq!(
            repr.mapped_address(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        let only_mapped = raw(0x0101, &[(0x0001, &rewritten)], true);
        assert_eq!(
            parse(&only_mapped).unwrap().mapped_address(),
            Some("203.0.113.1:32853".parse().unwrap())
        );
    }

    #[test]
    fn header_errors_are_distinct() {
        let good = raw(0x0101, &[(0x0020, XOR_V4_192_0_2_1)], true);
        assert!(parse(&good).is_ok());

        assert_eq!(parse(&good[..19]), Err(Error::Truncated));
        // The length field promises more than the datagram holds.
        assert_eq!(parse(&good[..good.len() - 4]), Err(Error::Truncated));
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 4]);
        assert_eq!(parse(&trailing), Err(Error::TrailingBytes));

        let mut unaligned = good.clone();
        unaligned[3] += 2;
        unaligned.extend_from_slice(&[0; 2]);
        assert_eq!(parse(&unaligned), Err(Error::LengthNotAligned));

        let mut cookie = good.clone();
        cookie[7] ^= 1;
        assert_eq!(parse(&cookie), Err(Error::BadMagicCookie));

        // An RTP packet (version 2) on the same port.
        let mut rtp = good.clone();
        rtp[0] = 0x80;
        assert_eq!(parse(&rtp), Err(Error::NotStun));
    }

    #[test]
    fn attribute_overrunning_the_message_is_an_error() {
        let mut m = raw(0x0101, &[(0x0020, XOR_V4_192_0_2_1)], false);
        m[22..24].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(parse(&m), Err(Error::AttributeOverrun));
        // And the walk itself stops after saying so.
        let walk: Vec<_> = Message::new_unchecked(&m[..]).attributes().collect();
        assert_eq!(walk, [Err(Error::AttributeOverrun)]);
        // A value that would end flush with a buffer whose padding is missing.
        let unpadded = [&raw(0x0001, &[], false)[..], &[0x80, 0x22, 0, 1, b'x']].concat();
        let walk: Vec<_> = Message::new_unchecked(&unpadded[..]).attributes().collect();
        assert_eq!(walk, [Err(Error::AttributeOverrun)]);
    }

    #[test]
    fn fingerprint_must_be_last_and_must_match() {
        let good = raw(0x0101, &[(0x0020, XOR_V4_192_0_2_1)], true);
        let mut not_last = good.clone();
        not_last.extend_from_slice(&[0x80, 0x22, 0, 0]);
        let len = (not_last.len() - HEADER_LEN) as u16;
        not_last[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(parse(&not_last), Err(Error::FingerprintNotLast));

        // One flipped bit in the mapped address: the response must not be believed.
        let mut corrupt = good.clone();
        corrupt[HEADER_LEN + 7] ^= 0x01;
        assert_eq!(parse(&corrupt), Err(Error::FingerprintMismatch));
        let mut corrupt = RFC5769_IPV6.to_vec();
        corrupt[8] ^= 0x80;
        assert_eq!(parse(&corrupt), Err(Error::FingerprintMismatch));

        let short = raw(0x0101, &[(0x8028, &[0; 2])], false);
        assert_eq!(parse(&short), Err(Error::BadAttributeLength(0x8028)));
    }

    #[test]
    fn unknown_attributes_required_rejected_optional_skipped() {
        let required = raw(0x0101, &[(0x0020, XOR_V4_192_0_2_1), (0x7FFF, b"x")], true);
        assert_eq!(
            parse(&required),
            Err(Error::UnknownRequiredAttribute(0x7FFF))
        );
        // RFC 5780 OTHER-ADDRESS and any other optional type are skipped; the address still comes through.
        let optional = raw(
            0x0101,
            &[
                (0x802C, XOR_V4_192_0_2_1),
                (0xFFFF, b"abc"),
                (0x0020, XOR_V4_192_0_2_1),
            ],
            true,
        );
        let repr = parse(&optional).unwrap();
        assert_eq!(
            repr.mapped_address(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        let known_unused = raw(
            0x0101,
            &[
                (0x0006, b"user"),
                (0x0014, b"realm"),
                (0x0015, b"nonce"),
                (0x001E, &[0; 32]),
            ],
            false,
        );
        assert!(parse(&known_unused).is_ok());
        assert!(format!("{}", Error::UnknownRequiredAttribute(0x7FFF)).contains("0x7fff"));
    }

    #[test]
    fn malformed_addresses_are_distinct_errors() {
        let family = [0x00, 0x03, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        assert_eq!(
            parse(&raw(0x0101, &[(0x0020, &family)], true)),
            Err(Error::BadAddressFamily(3))
        );
        let v4_too_long = [XOR_V4_192_0_2_1, &[0; 4]].concat();
        assert_eq!(
            parse(&raw(0x0101, &[(0x0020, &v4_too_long)], true)),
            Err(Error::BadAttributeLength(0x0020))
        );
        let v6_too_short = [&[0x00, 0x02, 0xa1, 0x47][..], &[0; 12]].concat();
        assert_eq!(
            parse(&raw(0x0101, &[(0x0020, &v6_too_short)], true)),
            Err(Error::BadAttributeLength(0x0020))
        );
        assert_eq!(
            parse(&raw(0x0101, &[(0x0001, &[0, 1, 0])], false)),
            Err(Error::BadAttributeLength(0x0001))
        );
    }

    #[test]
    fn malformed_error_code_and_text_are_distinct_errors() {
        let class7 = raw(0x0111, &[(0x0009, &[0, 0, 7, 0])], false);
        assert_eq!(parse(&class7), Err(Error::BadErrorCode));
        let number100 = raw(0x0111, &[(0x0009, &[0, 0, 4, 100])], false);
        assert_eq!(parse(&number100), Err(Error::BadErrorCode));
        let short = raw(0x0111, &[(0x0009, &[0, 0, 4])], false);
        assert_eq!(parse(&short), Err(Error::BadAttributeLength(0x0009)));
        let latin1 = raw(0x0101, &[(0x8022, b"caf\xe9")], false);
        assert_eq!(parse(&latin1), Err(Error::InvalidUtf8));
        let long = raw(0x0101, &[(0x8022, &[b'a'; MAX_TEXT_CHARS + 1])], false);
        assert_eq!(parse(&long), Err(Error::TextTooLong));
        let most = raw(
            0x0101,
            &["é".repeat(MAX_TEXT_CHARS).as_bytes()].map(|v| (0x8022, v)),
            false,
        );
        assert_eq!(
            parse(&most).unwrap().software.unwrap().chars().count(),
            MAX_TEXT_CHARS
        );
        let odd = raw(0x0111, &[(0x000A, &[0x7F, 0xFF, 0x00])], false);
        assert_eq!(parse(&odd), Err(Error::BadAttributeLength(0x000A)));
        let many = raw(
            0x0111,
            &[(0x000A, &[0xAA; 2 * (MAX_UNKNOWN_ATTRIBUTES + 1)])],
            false,
        );
        assert_eq!(parse(&many), Err(Error::TooManyUnknownAttributes));
    }

    #[test]
    fn attribute_count_is_bounded() {
        let empty: [(u16, &[u8]); MAX_ATTRIBUTES] = [(0x8000, &[]); MAX_ATTRIBUTES];
        assert!(parse(&raw(0x0101, &empty, false)).is_ok());
        let too_many = [(0x8000, &[][..]); MAX_ATTRIBUTES + 1];
        assert_eq!(
            parse(&raw(0x0101, &too_many, false)),
            Err(Error::TooManyAttributes)
        );
    }

    #[test]
    fn first_occurrence_wins_and_integrity_ends_the_message() {
        let other = [0x00, 0x01, 0x00, 0x50, 0x7f, 0x00, 0x00, 0x01];
        let twice = raw(
            0x0101,
            &[(0x0020, XOR_V4_192_0_2_1), (0x0020, &other)],
            false,
        );
        assert_eq!(
            parse(&twice).unwrap().mapped_address(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        // After MESSAGE-INTEGRITY only FINGERPRINT counts (RFC 8489 §14.5): an attacker who appends an
        // address or an unknown attribute to an authenticated response changes nothing.
        let appended = raw(
            0x0101,
            &[
                (0x0008, &[0; 20]),
                (0x0020, XOR_V4_192_0_2_1),
                (0x7FFF, b"x"),
            ],
            true,
        );
        let repr = parse(&appended).unwrap();
        assert_eq!(repr.mapped_address(), None);
        assert!(repr.fingerprint);
    }

    #[test]
    fn emit_refuses_what_parse_would_reject() {
        let request = Repr::binding_request(RFC5769_ID);
        let mut small = [0u8; 27];
        assert_eq!(request.emit_into(&mut small), Err(Error::BufferTooSmall));
        let mut buffer = [0u8; MAX_REPR_LEN];
        let bad_code = Repr::binding_error(RFC5769_ID, 700, "no");
        assert_eq!(bad_code.emit_into(&mut buffer), Err(Error::BadErrorCode));
        let bad_method = Repr {
            method: Method::Unknown(0x1000),
            ..request
        };
        assert_eq!(
            bad_method.emit_into(&mut buffer),
            Err(Error::MethodOutOfRange)
        );
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let long_software = Repr {
            software: Some(&long),
            ..request
        };
        assert_eq!(
            long_software.emit_into(&mut buffer),
            Err(Error::TextTooLong)
        );
        // A buffer longer than needed: the message takes its first buffer_len() bytes.
        assert_eq!(request.emit_into(&mut buffer), Ok(request.buffer_len()));
        assert_eq!(parse(&buffer[..request.buffer_len()]), Ok(request));
    }

    #[test]
    fn simulated_server_answers_a_420_that_parses() {
        let mut unknown = UnknownAttributes::new();
        unknown.push(0x7FFF).unwrap();
        let repr = Repr {
            unknown_attributes: Some(unknown),
            ..Repr::binding_error(
                RFC5769_ID,
                ErrorCode::UNKNOWN_ATTRIBUTE,
                "Unknown Attribute",
            )
        };
        let bytes = emit(&repr);
        assert_eq!(parse(&bytes), Ok(repr));
        let mut full = UnknownAttributes::new();
        for t in 0..MAX_UNKNOWN_ATTRIBUTES as u16 {
            full.push(t).unwrap();
        }
        assert_eq!(full.push(0xBEEF), Err(0xBEEF));
    }

    fn text() -> impl Strategy<Value = String> {
        // Printable text up to the character limit; up to 127 four-byte characters stays within 763 bytes.
        proptest::string::string_regex("\\PC{0,127}").unwrap()
    }

    fn socket_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(ip.into(), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(ip.into(), port)),
        ]
    }

    #[derive(Debug, Clone)]
    struct Owned {
        class: Class,
        method: Method,
        id: [u8; 12],
        xor_mapped: Option<SocketAddr>,
        mapped: Option<SocketAddr>,
        error: Option<(u16, String)>,
        unknown: Option<Vec<u16>>,
        software: Option<String>,
        fingerprint: bool,
    }

    impl Owned {
        fn repr(&self) -> Repr<'_> {
            Repr {
                class: self.class,
                method: self.method,
                transaction_id: TransactionId(self.id),
                xor_mapped: self.xor_mapped,
                mapped: self.mapped,
                error_code: self.error.as_ref().map(|(code, reason)| ErrorCode {
                    code: *code,
                    reason,
                }),
                unknown_attributes: self.unknown.as_ref().map(|types| {
                    let mut list = UnknownAttributes::new();
                    for &t in types {
                        list.push(t).unwrap();
                    }
                    list
                }),
                software: self.software.as_deref(),
                fingerprint: self.fingerprint,
            }
        }
    }

    prop_compose! {
        fn owned()(
            class in prop_oneof![
                Just(Class::Request),
                Just(Class::Indication),
                Just(Class::SuccessResponse),
                Just(Class::ErrorResponse)
            ],
            method in 0u16..=METHOD_MAX,
            id in any::<[u8; 12]>(),
            xor_mapped in proptest::option::of(socket_addr()),
            mapped in proptest::option::of(socket_addr()),
            error in proptest::option::of((300u16..700, text())),
            unknown in proptest::option::of(proptest::collection::vec(any::<u16>(), 0..=MAX_UNKNOWN_ATTRIBUTES)),
            software in proptest::option::of(text()),
            fingerprint in any::<bool>(),
        ) -> Owned {
            Owned { class, method: Method::from(method), id, xor_mapped, mapped, error, unknown, software, fingerprint }
        }
    }

    proptest! {
        #[test]
        fn parse_emit_round_trips(owned in owned()) {
            let repr = owned.repr();
            let bytes = emit(&repr);
            prop_assert!(bytes.len() <= MAX_REPR_LEN);
            prop_assert_eq!(parse(&bytes), Ok(repr));
            let message = Message::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!((message.class(), message.method()), (repr.class, repr.method));
            prop_assert_eq!(message.message_type() & TYPE_RESERVED_BITS, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz(&bytes);
        }

        #[test]
        fn damaged_messages_never_panic(
            owned in owned(),
            damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let mut bytes = emit(&owned.repr());
            for (at, value) in damage {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            fuzz(&bytes);
            fuzz(&bytes[..cut % (bytes.len() + 1)]);
        }
    }
}
