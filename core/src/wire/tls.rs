//! TLS 1.2 handshake wire format for spotting TLS inspection: the ClientHello we send, and a bounded,
//! incremental reader of the server's first flight (ServerHello .. ServerHelloDone) that hands out the
//! certificate chain in place.
//!
//! Our ClientHello offers only TLS 1.2 (legacy_version 0x0303 and no supported_versions extension), so
//! a server answers with TLS 1.2 and its Certificate message travels in clear. A server that insists on
//! TLS 1.3 answers with a `protocol_version` alert (what OpenSSL does) or, against the RFC, with a TLS 1.3
//! ServerHello, which [`HandshakeReader`] reports as [`Event::Tls13ServerHello`]. We never finish the
//! handshake: the probe closes the connection after [`Event::ServerHelloDone`].
//!
//! Records (5-byte header) carry handshake messages (4-byte header); one message may span several records
//! and one record may hold several messages, and TCP may cut anywhere. [`HandshakeReader`] takes bytes as
//! they arrive, strips the record layer on the fly and keeps only handshake bytes, in a buffer of `N`
//! bytes that must hold the largest single message (the Certificate message).

use crate::wire::{enum_with_unknown, u16_at, x509};
use core::fmt;
use core::ops::Range;

/// Length of a TLS record header: content type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;
/// Length of a handshake message header: type, 24-bit length.
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// The longest TLSPlaintext fragment (RFC 5246 6.2.1: 2^14 bytes).
pub const MAX_RECORD_LEN: usize = 16_384;
/// Length of the client and server random.
pub const RANDOM_LEN: usize = 32;
/// The longest session id.
pub const MAX_SESSION_ID_LEN: usize = 32;
/// The longest server name we send or accept: a DNS name in text form.
pub const MAX_SERVER_NAME_LEN: usize = 253;
/// The most cipher suites a ClientHello we parse may offer.
pub const MAX_CIPHER_SUITES: usize = 256;
/// The most extensions a hello we parse may carry.
pub const MAX_EXTENSIONS: usize = 64;
/// The most certificates a Certificate message may carry; real chains have 2-4.
pub const MAX_CHAIN_LEN: usize = 10;
/// The longest ClientHello [`ClientHelloRepr::emit`] produces (record header included).
pub const MAX_CLIENT_HELLO_LEN: usize = 1024;
/// The smallest `N` a [`HandshakeReader`] accepts: room for any ServerHello.
pub const MIN_READER_BUFFER_LEN: usize = 512;
/// The `N` for the Linux agent: a Certificate message of Microsoft's leaf (about 3 KB with its many
/// subjectAltNames) and two intermediates (about 1.7 KB each) with room to spare for longer chains an
/// inspecting middlebox may send.
pub const AGENT_READER_BUFFER_LEN: usize = 16_384;
/// The `N` the firmware needs at least: Microsoft's leaf plus one or two intermediates, 5-7 KB.
pub const FIRMWARE_READER_BUFFER_LEN: usize = 8_192;

/// Why TLS bytes could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A length field runs past the end of its message.
    Truncated,
    /// A field holds a value the protocol forbids (bad lengths, wrong compression, empty record).
    Malformed,
    /// A record of a content type that cannot appear before ServerHelloDone in clear (e.g. application
    /// data, or the first byte of something that is not TLS at all, like `H` of an HTTP answer).
    UnexpectedContentType(u8),
    /// A record whose version's major number is not 3: not TLS.
    BadRecordVersion,
    /// A record longer than [`MAX_RECORD_LEN`].
    RecordTooLong,
    /// A handshake message of this type, or at this point of the flight.
    UnexpectedMessage(u8),
    /// A handshake message larger than the reader's buffer.
    MessageTooLarge,
    /// More than [`MAX_CHAIN_LEN`] certificates, [`MAX_EXTENSIONS`] extensions or [`MAX_CIPHER_SUITES`]
    /// cipher suites.
    TooManyElements,
    /// A ClientHello to emit has a session id longer than 32 bytes or a server name that is not a DNS name.
    InvalidRepr,
    /// The output buffer is shorter than [`ClientHelloRepr::buffer_len`].
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("TLS length runs past its message"),
            Self::Malformed => f.write_str("malformed TLS message"),
            Self::UnexpectedContentType(t) => write!(f, "unexpected TLS content type {t}"),
            Self::BadRecordVersion => f.write_str("not a TLS record"),
            Self::RecordTooLong => f.write_str("TLS record longer than 2^14 bytes"),
            Self::UnexpectedMessage(t) => write!(f, "unexpected TLS handshake message {t}"),
            Self::MessageTooLarge => {
                f.write_str("TLS handshake message larger than the reader's buffer")
            }
            Self::TooManyElements => f.write_str("too many elements in TLS message"),
            Self::InvalidRepr => f.write_str("ClientHello fields out of range"),
            Self::BufferTooSmall => f.write_str("buffer too small for ClientHello"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result of TLS parsing and emitting.
pub type Result<T> = core::result::Result<T, Error>;

enum_with_unknown! {
    /// Record content type.
    pub enum ContentType(u8) {
        /// change_cipher_spec.
        ChangeCipherSpec = 20,
        /// alert.
        Alert = 21,
        /// handshake.
        Handshake = 22,
        /// application_data.
        ApplicationData = 23,
    }
}

enum_with_unknown! {
    /// Handshake message type.
    pub enum HandshakeType(u8) {
        /// client_hello.
        ClientHello = 1,
        /// server_hello (also a TLS 1.3 HelloRetryRequest).
        ServerHello = 2,
        /// certificate.
        Certificate = 11,
        /// server_key_exchange.
        ServerKeyExchange = 12,
        /// certificate_request.
        CertificateRequest = 13,
        /// server_hello_done.
        ServerHelloDone = 14,
    }
}

enum_with_unknown! {
    /// Protocol version (record version, legacy_version, supported_versions).
    pub enum Version(u16) {
        /// SSL 3.0.
        Ssl30 = 0x0300,
        /// TLS 1.0: browsers' record version for the ClientHello.
        Tls10 = 0x0301,
        /// TLS 1.1.
        Tls11 = 0x0302,
        /// TLS 1.2.
        Tls12 = 0x0303,
        /// TLS 1.3.
        Tls13 = 0x0304,
    }
}

enum_with_unknown! {
    /// Cipher suite; the named ones are those we offer.
    pub enum CipherSuite(u16) {
        /// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.
        EcdheEcdsaAes128GcmSha256 = 0xc02b,
        /// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256.
        EcdheRsaAes128GcmSha256 = 0xc02f,
        /// TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384.
        EcdheEcdsaAes256GcmSha384 = 0xc02c,
        /// TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384.
        EcdheRsaAes256GcmSha384 = 0xc030,
        /// TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256.
        EcdheEcdsaChacha20Poly1305Sha256 = 0xcca9,
        /// TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256.
        EcdheRsaChacha20Poly1305Sha256 = 0xcca8,
        /// TLS_RSA_WITH_AES_128_GCM_SHA256.
        RsaAes128GcmSha256 = 0x009c,
        /// TLS_RSA_WITH_AES_256_GCM_SHA384.
        RsaAes256GcmSha384 = 0x009d,
    }
}

impl CipherSuite {
    /// What our ClientHello offers, in preference order: forward-secret AEAD suites as browsers order
    /// them, then the RSA key-exchange AES-GCM suites that older front ends still need.
    pub const OFFERED: [CipherSuite; 8] = [
        Self::EcdheEcdsaAes128GcmSha256,
        Self::EcdheRsaAes128GcmSha256,
        Self::EcdheEcdsaAes256GcmSha384,
        Self::EcdheRsaAes256GcmSha384,
        Self::EcdheEcdsaChacha20Poly1305Sha256,
        Self::EcdheRsaChacha20Poly1305Sha256,
        Self::RsaAes128GcmSha256,
        Self::RsaAes256GcmSha384,
    ];
}

enum_with_unknown! {
    /// Alert level.
    pub enum AlertLevel(u8) {
        /// warning: the connection goes on.
        Warning = 1,
        /// fatal: the server closes the connection.
        Fatal = 2,
    }
}

enum_with_unknown! {
    /// Alert description (RFC 5246 7.2, RFC 8446 6).
    pub enum AlertDescription(u8) {
        /// close_notify.
        CloseNotify = 0,
        /// unexpected_message.
        UnexpectedMessage = 10,
        /// bad_record_mac.
        BadRecordMac = 20,
        /// record_overflow.
        RecordOverflow = 22,
        /// handshake_failure: typically no cipher suite in common.
        HandshakeFailure = 40,
        /// bad_certificate.
        BadCertificate = 42,
        /// certificate_unknown.
        CertificateUnknown = 46,
        /// illegal_parameter.
        IllegalParameter = 47,
        /// unknown_ca.
        UnknownCa = 48,
        /// access_denied.
        AccessDenied = 49,
        /// decode_error.
        DecodeError = 50,
        /// protocol_version: the server refuses TLS 1.2 (a TLS 1.3-only server).
        ProtocolVersion = 70,
        /// insufficient_security.
        InsufficientSecurity = 71,
        /// internal_error.
        InternalError = 80,
        /// inappropriate_fallback.
        InappropriateFallback = 86,
        /// user_canceled.
        UserCanceled = 90,
        /// no_renegotiation.
        NoRenegotiation = 100,
        /// missing_extension.
        MissingExtension = 109,
        /// unsupported_extension.
        UnsupportedExtension = 110,
        /// unrecognized_name: the server does not know the name we sent in SNI.
        UnrecognizedName = 112,
    }
}

/// Extension types we send or read.
mod extension {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const EC_POINT_FORMATS: u16 = 11;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const PADDING: u16 = 21;
    pub const EXTENDED_MASTER_SECRET: u16 = 23;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const RENEGOTIATION_INFO: u16 = 0xff01;
}

/// Named groups we offer: x25519, secp256r1, secp384r1.
pub const OFFERED_GROUPS: [u16; 3] = [0x001d, 0x0017, 0x0018];

/// Signature schemes we offer, as browsers order them: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256,
/// rsa_pkcs1_sha256, ecdsa_secp384r1_sha384, rsa_pss_rsae_sha384, rsa_pkcs1_sha384, rsa_pss_rsae_sha512,
/// rsa_pkcs1_sha512, ecdsa_secp521r1_sha512.
pub const OFFERED_SIGNATURE_SCHEMES: [u16; 9] = [
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0603,
];

/// The special ServerHello.random of a TLS 1.3 HelloRetryRequest (RFC 8446 4.1.3).
const HELLO_RETRY_REQUEST_RANDOM: [u8; RANDOM_LEN] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// The last 8 bytes of ServerHello.random of a TLS 1.3-capable server that negotiated TLS 1.2
/// (RFC 8446 4.1.3).
const TLS13_DOWNGRADE_SENTINEL: [u8; 8] = *b"DOWNGRD\x01";

mod field {
    use core::ops::Range;

    pub const RECORD_CONTENT_TYPE: usize = 0;
    pub const RECORD_VERSION: Range<usize> = 1..3;
    pub const RECORD_LENGTH: Range<usize> = 3..5;

    pub const HANDSHAKE_TYPE: usize = 0;
    pub const HANDSHAKE_LENGTH: Range<usize> = 1..4;
}

fn u24_at(data: &[u8], range: Range<usize>) -> Option<usize> {
    match data.get(range) {
        Some(&[a, b, c]) => Some(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)),
        _ => None,
    }
}

/// A TLS record: a view over a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Record<T> {
    /// Wraps a buffer without checking it; call [`Self::check_len`] before the getters.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least one whole record.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let record = Self::new_unchecked(buffer);
        record.check_len()?;
        Ok(record)
    }

    /// Checks that the buffer holds the header and the payload the header announces.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let len = u16_at(data, field::RECORD_LENGTH).ok_or(Error::Truncated)?;
        if data.len() < RECORD_HEADER_LEN + usize::from(len) {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The content type.
    pub fn content_type(&self) -> ContentType {
        ContentType::from(
            self.buffer
                .as_ref()
                .get(field::RECORD_CONTENT_TYPE)
                .copied()
                .unwrap_or(0),
        )
    }

    /// The record-layer version.
    pub fn version(&self) -> Version {
        Version::from(u16_at(self.buffer.as_ref(), field::RECORD_VERSION).unwrap_or(0))
    }

    /// The payload length the header announces.
    pub fn len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::RECORD_LENGTH).unwrap_or(0)
    }

    /// Whether the record announces an empty payload (forbidden for every type we read).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what every record we read must satisfy: TLS version, length bound, a type we read.
    fn check_header(&self) -> Result<ContentType> {
        let content_type = self.content_type();
        // The payload lengths each type allows: a handshake fragment of any size, a 2-byte alert, a
        // 1-byte ChangeCipherSpec.
        let allowed = match content_type {
            ContentType::Handshake => 1..=MAX_RECORD_LEN,
            ContentType::Alert => 2..=2,
            ContentType::ChangeCipherSpec => 1..=1,
            other => return Err(Error::UnexpectedContentType(other.into())),
        };
        if u16::from(self.version()) >> 8 != 3 {
            return Err(Error::BadRecordVersion);
        }
        let len = usize::from(self.len());
        if len > MAX_RECORD_LEN {
            return Err(Error::RecordTooLong);
        }
        if allowed.contains(&len) {
            Ok(content_type)
        } else {
            Err(Error::Malformed)
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Record<&'a T> {
    /// The payload, borrowing the buffer rather than the view.
    pub fn payload(&self) -> &'a [u8] {
        let end = RECORD_HEADER_LEN + usize::from(self.len());
        self.buffer
            .as_ref()
            .get(RECORD_HEADER_LEN..end)
            .unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Record<T> {
    /// Sets the content type.
    pub fn set_content_type(&mut self, value: ContentType) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::RECORD_CONTENT_TYPE) {
            *b = value.into();
        }
    }

    /// Sets the record-layer version.
    pub fn set_version(&mut self, value: Version) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::RECORD_VERSION) {
            b.copy_from_slice(&u16::from(value).to_be_bytes());
        }
    }

    /// Sets the payload length.
    pub fn set_len(&mut self, value: u16) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::RECORD_LENGTH) {
            b.copy_from_slice(&value.to_be_bytes());
        }
    }
}

/// A handshake message: a view over a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Handshake<T> {
    /// Wraps a buffer without checking it; call [`Self::check_len`] before the getters.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least one whole handshake message.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let message = Self::new_unchecked(buffer);
        message.check_len()?;
        Ok(message)
    }

    /// Checks that the buffer holds the header and the body the header announces.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let len = u24_at(data, field::HANDSHAKE_LENGTH).ok_or(Error::Truncated)?;
        if data.len() < HANDSHAKE_HEADER_LEN + len {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The message type.
    pub fn msg_type(&self) -> HandshakeType {
        HandshakeType::from(
            self.buffer
                .as_ref()
                .get(field::HANDSHAKE_TYPE)
                .copied()
                .unwrap_or(0),
        )
    }

    /// The body length the header announces.
    pub fn body_len(&self) -> usize {
        u24_at(self.buffer.as_ref(), field::HANDSHAKE_LENGTH).unwrap_or(0)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Handshake<&'a T> {
    /// The body, borrowing the buffer rather than the view.
    pub fn body(&self) -> &'a [u8] {
        let end = HANDSHAKE_HEADER_LEN + self.body_len();
        self.buffer
            .as_ref()
            .get(HANDSHAKE_HEADER_LEN..end)
            .unwrap_or_default()
    }
}

/// Reads the variable-length fields of hello bodies; every read is bounds-checked.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.rest.len() {
            return Err(Error::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16_at(self.take(2)?, 0..2).unwrap_or(0))
    }

    fn u24(&mut self) -> Result<usize> {
        Ok(u24_at(self.take(3)?, 0..3).unwrap_or(0))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self) -> Result<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// A vector with a three-byte length prefix.
    fn vec24(&mut self) -> Result<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }

    fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed)
        }
    }
}

/// Iterates over a hello's extension block as (type, data), checking the count bound.
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Extensions<'a> {
    /// Checks that `block` (the contents after the two-byte block length) is a well-formed list of at
    /// most [`MAX_EXTENSIONS`] extensions.
    fn checked(block: &'a [u8]) -> Result<Self> {
        let mut cursor = Cursor::new(block);
        let mut count = 0;
        while !cursor.is_empty() {
            count += 1;
            if count > MAX_EXTENSIONS {
                return Err(Error::TooManyElements);
            }
            cursor.u16()?;
            cursor.vec16()?;
        }
        Ok(Self {
            cursor: Cursor::new(block),
        })
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let kind = self.cursor.u16().ok()?;
        let data = self.cursor.vec16().ok()?;
        Some((kind, data))
    }
}

/// A ClientHello body: a view whose accessors see every field, checked when it is made.
#[derive(Debug, Clone)]
pub struct ClientHello<'a> {
    version: u16,
    random: &'a [u8],
    session_id: &'a [u8],
    cipher_suites: &'a [u8],
    compression_methods: &'a [u8],
    extensions: &'a [u8],
}

impl<'a> ClientHello<'a> {
    /// Checks and splits a ClientHello body (the handshake message without its 4-byte header).
    pub fn new_checked(body: &'a [u8]) -> Result<Self> {
        let mut c = Cursor::new(body);
        let version = c.u16()?;
        let random = c.take(RANDOM_LEN)?;
        let session_id = c.vec8()?;
        let cipher_suites = c.vec16()?;
        let compression_methods = c.vec8()?;
        let extensions = if c.is_empty() { &[][..] } else { c.vec16()? };
        c.finish()?;
        if session_id.len() > MAX_SESSION_ID_LEN
            || cipher_suites.is_empty()
            || cipher_suites.len() % 2 != 0
            || compression_methods.is_empty()
        {
            return Err(Error::Malformed);
        }
        if cipher_suites.len() / 2 > MAX_CIPHER_SUITES {
            return Err(Error::TooManyElements);
        }
        Extensions::checked(extensions)?;
        Ok(Self {
            version,
            random,
            session_id,
            cipher_suites,
            compression_methods,
            extensions,
        })
    }

    /// legacy_version.
    pub fn version(&self) -> Version {
        Version::from(self.version)
    }

    /// The client random.
    pub fn random(&self) -> [u8; RANDOM_LEN] {
        let mut out = [0; RANDOM_LEN];
        out.copy_from_slice(self.random);
        out
    }

    /// The session id.
    pub fn session_id(&self) -> &'a [u8] {
        self.session_id
    }

    /// The offered cipher suites, in preference order.
    pub fn cipher_suites(&self) -> impl Iterator<Item = CipherSuite> + 'a {
        self.cipher_suites
            .chunks_exact(2)
            .map(|p| CipherSuite::from(u16_at(p, 0..2).unwrap_or(0)))
    }

    /// The offered compression methods.
    pub fn compression_methods(&self) -> &'a [u8] {
        self.compression_methods
    }

    /// The extensions, as (type, data).
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions {
            cursor: Cursor::new(self.extensions),
        }
    }

    /// The host_name in the server_name extension (SNI), if any.
    pub fn server_name(&self) -> Result<Option<&'a str>> {
        let Some((_, data)) = self
            .extensions()
            .find(|(t, _)| *t == extension::SERVER_NAME)
        else {
            return Ok(None);
        };
        let mut list = Cursor::new(data);
        let mut names = Cursor::new(list.vec16()?);
        list.finish()?;
        while !names.is_empty() {
            let kind = names.u8()?;
            let name = names.vec16()?;
            // name_type 0 is host_name, the only type defined.
            if kind == 0 {
                return host_name(name).map(Some);
            }
        }
        Ok(None)
    }
}

/// Checks a DNS host name as SNI carries it: letters, digits, `-`, `_` and dots, no empty label, no
/// trailing dot, at most [`MAX_SERVER_NAME_LEN`] bytes.
fn host_name(name: &[u8]) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SERVER_NAME_LEN
        && name.split(|&b| b == b'.').all(|label| {
            !label.is_empty()
                && label
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        core::str::from_utf8(name).map_err(|_| Error::Malformed)
    } else {
        Err(Error::Malformed)
    }
}

/// The ClientHello we send: the fields that change between probes. Everything else (suites, groups,
/// signature schemes, extensions) is fixed by this module so that servers answer with TLS 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHelloRepr<'a> {
    /// The client random, from the shell's seed.
    pub random: [u8; RANDOM_LEN],
    /// The session id, at most 32 bytes; empty is fine since we never resume.
    pub session_id: &'a [u8],
    /// The name for SNI, or `None` to send none (when probing by address).
    pub server_name: Option<&'a str>,
}

/// Writes big-endian fields into a buffer; every write is bounds-checked.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.pos + bytes.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<()> {
        self.put(&[v])
    }

    fn u16(&mut self, v: usize) -> Result<()> {
        self.put(
            &u16::try_from(v)
                .map_err(|_| Error::InvalidRepr)?
                .to_be_bytes(),
        )
    }

    fn u24(&mut self, v: usize) -> Result<()> {
        let v = u32::try_from(v).map_err(|_| Error::InvalidRepr)?;
        self.put(&v.to_be_bytes()[1..])
    }
}

/// Bytes of the fixed part of a ClientHello body before the extensions: version, random, the session
/// id length byte, the suites with their length, one compression method with its length.
const HELLO_FIXED_LEN: usize = 2 + RANDOM_LEN + 1 + 2 + 2 * CipherSuite::OFFERED.len() + 2;

impl<'a> ClientHelloRepr<'a> {
    /// Parses a ClientHello record (one record holding the whole message, as every client sends it).
    pub fn parse(record: &'a [u8]) -> Result<Self> {
        let view = Record::new_checked(record)?;
        if view.content_type() != ContentType::Handshake {
            return Err(Error::UnexpectedContentType(view.content_type().into()));
        }
        let payload = view.payload();
        let message = Handshake::new_checked(payload)?;
        if message.msg_type() != HandshakeType::ClientHello {
            return Err(Error::UnexpectedMessage(message.msg_type().into()));
        }
        if HANDSHAKE_HEADER_LEN + message.body_len() != payload.len() {
            return Err(Error::Malformed);
        }
        let hello = ClientHello::new_checked(message.body())?;
        Ok(Self {
            random: hello.random(),
            session_id: hello.session_id(),
            server_name: hello.server_name()?,
        })
    }

    /// Extensions before padding, as sent: (type, data length). server_name only with a name.
    fn extension_lens(&self) -> impl Iterator<Item = (u16, usize)> {
        let server_name = self
            .server_name
            .map(|n| (extension::SERVER_NAME, 2 + 1 + 2 + n.len()));
        server_name.into_iter().chain([
            (extension::EXTENDED_MASTER_SECRET, 0),
            (extension::RENEGOTIATION_INFO, 1),
            (extension::SUPPORTED_GROUPS, 2 + 2 * OFFERED_GROUPS.len()),
            (extension::EC_POINT_FORMATS, 2),
            (
                extension::SIGNATURE_ALGORITHMS,
                2 + 2 * OFFERED_SIGNATURE_SCHEMES.len(),
            ),
        ])
    }

    fn unpadded_extensions_len(&self) -> usize {
        self.extension_lens().map(|(_, len)| 4 + len).sum()
    }

    /// Data length of the padding extension (RFC 7685), if one is sent. Some F5 load balancers hang on
    /// a ClientHello message of 256-511 bytes; like BoringSSL we pad such a message to 512 bytes.
    fn padding_len(&self) -> Option<usize> {
        let unpadded = HANDSHAKE_HEADER_LEN
            + HELLO_FIXED_LEN
            + self.session_id.len()
            + 2
            + self.unpadded_extensions_len();
        if (256..512).contains(&unpadded) {
            Some((512 - unpadded).saturating_sub(4).max(1))
        } else {
            None
        }
    }

    fn extensions_len(&self) -> usize {
        self.unpadded_extensions_len() + self.padding_len().map_or(0, |n| 4 + n)
    }

    fn body_len(&self) -> usize {
        HELLO_FIXED_LEN + self.session_id.len() + 2 + self.extensions_len()
    }

    /// Length of the record [`Self::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN + self.body_len()
    }

    /// Writes the ClientHello record into `buf` and returns its length ([`Self::buffer_len`]).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if self.session_id.len() > MAX_SESSION_ID_LEN {
            return Err(Error::InvalidRepr);
        }
        if let Some(name) = self.server_name {
            host_name(name.as_bytes()).map_err(|_| Error::InvalidRepr)?;
        }
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let mut w = Writer { buf, pos: 0 };
        w.u8(ContentType::Handshake.into())?;
        w.put(&u16::from(Version::Tls10).to_be_bytes())?;
        w.u16(HANDSHAKE_HEADER_LEN + self.body_len())?;
        w.u8(HandshakeType::ClientHello.into())?;
        w.u24(self.body_len())?;
        w.put(&u16::from(Version::Tls12).to_be_bytes())?;
        w.put(&self.random)?;
        w.u8(self.session_id.len() as u8)?;
        w.put(self.session_id)?;
        w.u16(2 * CipherSuite::OFFERED.len())?;
        for suite in CipherSuite::OFFERED {
            w.put(&u16::from(suite).to_be_bytes())?;
        }
        w.put(&[1, 0])?; // one compression method: null
        w.u16(self.extensions_len())?;
        for (kind, data_len) in self.extension_lens() {
            w.put(&kind.to_be_bytes())?;
            w.u16(data_len)?;
            match kind {
                extension::SERVER_NAME => {
                    let name = self.server_name.unwrap_or_default();
                    w.u16(1 + 2 + name.len())?;
                    w.u8(0)?; // host_name
                    w.u16(name.len())?;
                    w.put(name.as_bytes())?;
                }
                extension::RENEGOTIATION_INFO => w.u8(0)?, // empty renegotiated_connection
                extension::SUPPORTED_GROUPS => {
                    w.u16(2 * OFFERED_GROUPS.len())?;
                    for g in OFFERED_GROUPS {
                        w.put(&g.to_be_bytes())?;
                    }
                }
                extension::EC_POINT_FORMATS => w.put(&[1, 0])?, // uncompressed only
                extension::SIGNATURE_ALGORITHMS => {
                    w.u16(2 * OFFERED_SIGNATURE_SCHEMES.len())?;
                    for s in OFFERED_SIGNATURE_SCHEMES {
                        w.put(&s.to_be_bytes())?;
                    }
                }
                _ => {} // extended_master_secret: empty
            }
        }
        if let Some(n) = self.padding_len() {
            w.put(&extension::PADDING.to_be_bytes())?;
            w.u16(n)?;
            for _ in 0..n {
                w.u8(0)?;
            }
        }
        debug_assert_eq!(w.pos, len);
        Ok(w.pos)
    }
}

/// What a server's ServerHello chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHello {
    /// legacy_version: the negotiated version unless `selected_version` is present.
    pub version: Version,
    /// The server random.
    pub random: [u8; RANDOM_LEN],
    /// The chosen cipher suite.
    pub cipher_suite: CipherSuite,
    /// The supported_versions extension's value: present only in a TLS 1.3 ServerHello.
    pub selected_version: Option<Version>,
    /// The server agreed to extended_master_secret (RFC 7627).
    pub extended_master_secret: bool,
    /// The server sent renegotiation_info (RFC 5746 secure renegotiation).
    pub secure_renegotiation: bool,
}

impl ServerHello {
    /// Parses a ServerHello body (the handshake message without its 4-byte header).
    pub fn parse(body: &[u8]) -> Result<Self> {
        let mut c = Cursor::new(body);
        let version = Version::from(c.u16()?);
        let mut random = [0; RANDOM_LEN];
        random.copy_from_slice(c.take(RANDOM_LEN)?);
        let session_id = c.vec8()?;
        let cipher_suite = CipherSuite::from(c.u16()?);
        let compression = c.u8()?;
        let extensions = if c.is_empty() { &[][..] } else { c.vec16()? };
        c.finish()?;
        if session_id.len() > MAX_SESSION_ID_LEN || compression != 0 {
            return Err(Error::Malformed);
        }
        let mut hello = Self {
            version,
            random,
            cipher_suite,
            selected_version: None,
            extended_master_secret: false,
            secure_renegotiation: false,
        };
        for (kind, data) in Extensions::checked(extensions)? {
            match kind {
                extension::SUPPORTED_VERSIONS => {
                    let v = u16_at(data, 0..2)
                        .filter(|_| data.len() == 2)
                        .ok_or(Error::Malformed)?;
                    hello.selected_version = Some(Version::from(v));
                }
                extension::EXTENDED_MASTER_SECRET => hello.extended_master_secret = true,
                extension::RENEGOTIATION_INFO => hello.secure_renegotiation = true,
                _ => {}
            }
        }
        Ok(hello)
    }

    /// The version the server chose: supported_versions if present, else legacy_version.
    pub fn negotiated_version(&self) -> Version {
        self.selected_version.unwrap_or(self.version)
    }

    /// Whether this is a TLS 1.3 HelloRetryRequest.
    pub fn is_hello_retry_request(&self) -> bool {
        self.random == HELLO_RETRY_REQUEST_RANDOM
    }

    /// Whether a server that negotiated TLS 1.2 says it could have spoken TLS 1.3 (RFC 8446's
    /// downgrade sentinel): told apart from a TLS 1.2-only middlebox that terminates the connection.
    pub fn signals_tls13_support(&self) -> bool {
        self.random.get(RANDOM_LEN - 8..) == Some(&TLS13_DOWNGRADE_SENTINEL[..])
    }
}

/// An alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// Level.
    pub level: AlertLevel,
    /// Description.
    pub description: AlertDescription,
}

impl Alert {
    /// Whether the connection ends with this alert.
    pub fn is_terminal(&self) -> bool {
        self.level != AlertLevel::Warning || self.description == AlertDescription::CloseNotify
    }
}

/// A Certificate message's list, checked: [`Self::iter`] yields each DER certificate in server order
/// (leaf first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateChain<'a> {
    list: &'a [u8],
    len: usize,
}

impl<'a> CertificateChain<'a> {
    /// Checks a Certificate message body: a 3-byte list length, then certificates of 3-byte length each,
    /// at most [`MAX_CHAIN_LEN`], none empty.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let mut c = Cursor::new(body);
        let list = c.vec24()?;
        c.finish()?;
        let mut certs = Cursor::new(list);
        let mut len = 0;
        while !certs.is_empty() {
            if certs.vec24()?.is_empty() {
                return Err(Error::Malformed);
            }
            len += 1;
            if len > MAX_CHAIN_LEN {
                return Err(Error::TooManyElements);
            }
        }
        Ok(Self { list, len })
    }

    /// The number of certificates.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the server sent no certificate at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The DER certificates, leaf first.
    pub fn iter(&self) -> Certificates<'a> {
        Certificates {
            cursor: Cursor::new(self.list),
        }
    }
}

/// The DER certificates of a [`CertificateChain`].
#[derive(Debug, Clone)]
pub struct Certificates<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Iterator for Certificates<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // CertificateChain::parse checked the list; an error cannot happen here and ends the iteration.
        self.cursor.vec24().ok()
    }
}

/// What the reader found next in the server's flight, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A TLS 1.2 (or older) ServerHello: the flight goes on.
    ServerHello(ServerHello),
    /// A TLS 1.3 ServerHello or HelloRetryRequest: the server refused TLS 1.2, so its certificate will
    /// be encrypted. The reader is finished.
    Tls13ServerHello(ServerHello),
    /// The server's certificate chain, borrowed from the reader's buffer.
    Certificate(CertificateChain<'a>),
    /// ServerKeyExchange (not decoded).
    ServerKeyExchange,
    /// CertificateRequest (not decoded).
    CertificateRequest,
    /// ServerHelloDone: the flight is complete, the reader is finished. The probe's handshake time ends here.
    ServerHelloDone,
    /// An alert. The reader is finished if [`Alert::is_terminal`].
    Alert(Alert),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitServerHello,
    Flight,
    Finished,
}

/// Something `push` met that must be reported after the handshake messages before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Alert(Alert),
    Error(Error),
}

/// The record being read by `push`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordState {
    /// Collecting a record header; this many bytes of it so far.
    Header(usize),
    /// Inside a record's payload; this many bytes to go.
    Payload(ContentType, usize),
}

/// Reads a server's first flight from bytes as they arrive, in any chunking, with `N` bytes of buffer.
///
/// Use: feed received bytes with [`push`](Self::push), which takes what it can and returns how many it
/// took; then call [`next_event`](Self::next_event) until it returns `None`; push the rest of the bytes;
/// repeat. Events (and errors) come in wire order. An event borrows the reader, so certificates are read
/// in place; the message is dropped from the buffer on the next `push` or `next_event`.
///
/// Whenever `push` takes fewer bytes than offered, either `next_event` has something to report or the
/// reader [`is_finished`](Self::is_finished): after ServerHelloDone, a TLS 1.3 ServerHello, a terminal
/// alert or an error. A finished reader takes no more bytes and reports nothing more.
///
/// `N` must hold the largest handshake message: see [`AGENT_READER_BUFFER_LEN`] and
/// [`FIRMWARE_READER_BUFFER_LEN`]. A larger message is [`Error::MessageTooLarge`].
#[derive(Debug, Clone)]
pub struct HandshakeReader<const N: usize> {
    /// Handshake bytes with the record layer stripped: `start..end` not yet reported.
    buf: [u8; N],
    start: usize,
    end: usize,
    /// Length of the message `next_event` reported last, dropped on the next call.
    reported: usize,
    header: [u8; RECORD_HEADER_LEN],
    record: RecordState,
    alert: [u8; 2],
    alert_len: usize,
    pending: Option<Pending>,
    stage: Stage,
}

impl<const N: usize> Default for HandshakeReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> HandshakeReader<N> {
    const BUFFER_IS_LARGE_ENOUGH: () = assert!(
        N >= MIN_READER_BUFFER_LEN,
        "a HandshakeReader needs MIN_READER_BUFFER_LEN bytes"
    );

    /// A reader waiting for the ServerHello.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::BUFFER_IS_LARGE_ENOUGH;
        Self {
            buf: [0; N],
            start: 0,
            end: 0,
            reported: 0,
            header: [0; RECORD_HEADER_LEN],
            record: RecordState::Header(0),
            alert: [0; 2],
            alert_len: 0,
            pending: None,
            stage: Stage::AwaitServerHello,
        }
    }

    /// Whether the flight is over (ServerHelloDone, TLS 1.3 ServerHello, terminal alert or error).
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    fn drop_reported(&mut self) {
        self.start += core::mem::take(&mut self.reported);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Takes received bytes; returns how many it took (see the type's documentation for when that is
    /// fewer than offered). Never fails: problems in the bytes are reported by `next_event` in order.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.drop_reported();
        let mut taken = 0;
        while self.pending.is_none() && self.stage != Stage::Finished {
            let Some(rest) = bytes.get(taken..).filter(|r| !r.is_empty()) else {
                break;
            };
            match self.record {
                RecordState::Header(have) => {
                    let n = rest.len().min(RECORD_HEADER_LEN - have);
                    if let (Some(dst), Some(src)) =
                        (self.header.get_mut(have..have + n), rest.get(..n))
                    {
                        dst.copy_from_slice(src);
                    }
                    taken += n;
                    self.record = RecordState::Header(have + n);
                    if have + n == RECORD_HEADER_LEN {
                        let record = Record::new_unchecked(&self.header[..]);
                        match record.check_header() {
                            Ok(t) => {
                                self.record = RecordState::Payload(t, usize::from(record.len()))
                            }
                            Err(e) => self.pending = Some(Pending::Error(e)),
                        }
                    }
                }
                RecordState::Payload(content_type, left) => {
                    let n = match content_type {
                        ContentType::Handshake => self.take_handshake(rest, left),
                        ContentType::Alert => self.take_alert(rest, left),
                        _ => self.take_change_cipher_spec(rest),
                    };
                    if n == 0 {
                        break;
                    }
                    taken += n;
                    self.record = if left == n {
                        RecordState::Header(0)
                    } else {
                        RecordState::Payload(content_type, left - n)
                    };
                }
            }
        }
        taken
    }

    fn take_handshake(&mut self, rest: &[u8], left: usize) -> usize {
        if self.end == N && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = rest.len().min(left).min(N - self.end);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.end..self.end + n), rest.get(..n)) {
            dst.copy_from_slice(src);
            self.end += n;
            n
        } else {
            0
        }
    }

    fn take_alert(&mut self, rest: &[u8], left: usize) -> usize {
        let n = rest.len().min(left);
        for &b in rest.iter().take(n) {
            if let Some(slot) = self.alert.get_mut(self.alert_len) {
                *slot = b;
                self.alert_len += 1;
            }
        }
        if self.alert_len == self.alert.len() {
            self.alert_len = 0;
            let [level, description] = self.alert;
            self.pending = Some(Pending::Alert(Alert {
                level: AlertLevel::from(level),
                description: AlertDescription::from(description),
            }));
        }
        n
    }

    fn take_change_cipher_spec(&mut self, rest: &[u8]) -> usize {
        // TLS 1.3 servers send one for middlebox compatibility after their ServerHello; its only value is 1.
        if rest.first() != Some(&1) {
            self.pending = Some(Pending::Error(Error::Malformed));
            return 0;
        }
        1
    }

    /// The next event of the flight, or `None` until more bytes are pushed (or ever, once finished).
    pub fn next_event(&mut self) -> Option<Result<Event<'_>>> {
        if self.stage == Stage::Finished {
            return None;
        }
        self.drop_reported();
        let available = self.buf.get(self.start..self.end).unwrap_or_default();
        if let Some(body_len) = u24_at(available, field::HANDSHAKE_LENGTH) {
            let message_len = HANDSHAKE_HEADER_LEN + body_len;
            if message_len > N {
                self.stage = Stage::Finished;
                return Some(Err(Error::MessageTooLarge));
            }
            if available.len() >= message_len {
                self.reported = message_len;
                let message =
                    Handshake::new_unchecked(self.buf.get(self.start..self.start + message_len)?);
                let event = decode(&mut self.stage, message.msg_type(), message.body());
                if event.is_err() {
                    self.stage = Stage::Finished;
                }
                return Some(event);
            }
        }
        match self.pending.take()? {
            Pending::Alert(alert) => {
                if alert.is_terminal() {
                    self.stage = Stage::Finished;
                }
                Some(Ok(Event::Alert(alert)))
            }
            Pending::Error(e) => {
                self.stage = Stage::Finished;
                Some(Err(e))
            }
        }
    }
}

/// Decodes one complete handshake message of the server's flight and advances the stage.
fn decode<'a>(stage: &mut Stage, kind: HandshakeType, body: &'a [u8]) -> Result<Event<'a>> {
    match (*stage, kind) {
        (Stage::AwaitServerHello, HandshakeType::ServerHello) => {
            let hello = ServerHello::parse(body)?;
            if hello.selected_version.is_some() {
                *stage = Stage::Finished;
                Ok(Event::Tls13ServerHello(hello))
            } else {
                *stage = Stage::Flight;
                Ok(Event::ServerHello(hello))
            }
        }
        (Stage::Flight, HandshakeType::Certificate) => {
            Ok(Event::Certificate(CertificateChain::parse(body)?))
        }
        (Stage::Flight, HandshakeType::ServerKeyExchange) => Ok(Event::ServerKeyExchange),
        (Stage::Flight, HandshakeType::CertificateRequest) => Ok(Event::CertificateRequest),
        (Stage::Flight, HandshakeType::ServerHelloDone) if body.is_empty() => {
            *stage = Stage::Finished;
            Ok(Event::ServerHelloDone)
        }
        (Stage::Flight, HandshakeType::ServerHelloDone) => Err(Error::Malformed),
        (_, other) => Err(Error::UnexpectedMessage(other.into())),
    }
}

/// Feeds `data` to a reader in chunks of `chunk` bytes, parses every certificate, and folds the events
/// into a digest, which must not depend on the chunking.
fn fuzz_flight<const N: usize>(data: &[u8], chunk: usize) -> u64 {
    let mut reader = HandshakeReader::<N>::new();
    let mut digest = 0xcbf2_9ce4_8422_2325u64; // FNV-1a
    let mut mix = |v: u64| {
        for b in v.to_le_bytes() {
            digest = (digest ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    for mut piece in data.chunks(chunk.max(1)) {
        // Each round takes at least one byte or reports at least one event or finishes: bounded.
        while !piece.is_empty() && !reader.is_finished() {
            let taken = reader.push(piece);
            piece = piece.get(taken..).unwrap_or_default();
            let mut events = 0;
            while let Some(event) = reader.next_event() {
                events += 1;
                let code = match event {
                    Ok(Event::ServerHello(h)) => 1 << 32 | u64::from(u16::from(h.cipher_suite)),
                    Ok(Event::Tls13ServerHello(h)) => {
                        2 << 32 | u64::from(u16::from(h.negotiated_version()))
                    }
                    Ok(Event::Certificate(chain)) => {
                        for der in chain.iter() {
                            mix(der.len() as u64);
                            if let Ok(cert) = x509::Certificate::parse(der) {
                                mix(cert.not_after() as u64);
                                let _ = crate::assess::interception::summarize(&cert);
                            }
                        }
                        3 << 32 | chain.len() as u64
                    }
                    Ok(Event::ServerKeyExchange) => 4 << 32,
                    Ok(Event::CertificateRequest) => 5 << 32,
                    Ok(Event::ServerHelloDone) => 6 << 32,
                    Ok(Event::Alert(a)) => 7 << 32 | u64::from(u8::from(a.description)),
                    Err(e) => 8 << 32 | error_code(e),
                };
                mix(code);
            }
            assert!(
                taken > 0 || events > 0 || reader.is_finished(),
                "reader stalled"
            );
        }
    }
    digest
}

fn error_code(e: Error) -> u64 {
    match e {
        Error::Truncated => 1,
        Error::Malformed => 2,
        Error::UnexpectedContentType(t) => 3 << 8 | u64::from(t),
        Error::BadRecordVersion => 4,
        Error::RecordTooLong => 5,
        Error::UnexpectedMessage(t) => 6 << 8 | u64::from(t),
        Error::MessageTooLarge => 7,
        Error::TooManyElements => 8,
        Error::InvalidRepr => 9,
        Error::BufferTooSmall => 10,
    }
}

/// Fuzz entry (fuzz/ and core/tests/regress.rs): decodes arbitrary bytes every way this module can.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    // The server flight, whole and in two other chunkings: the events must not depend on the cuts.
    let whole = fuzz_flight::<MIN_READER_BUFFER_LEN>(data, data.len());
    let chunk = data.first().map_or(1, |&b| usize::from(b % 17) + 1);
    assert_eq!(
        whole,
        fuzz_flight::<MIN_READER_BUFFER_LEN>(data, 1),
        "byte-by-byte differs"
    );
    assert_eq!(
        whole,
        fuzz_flight::<MIN_READER_BUFFER_LEN>(data, chunk),
        "chunks of {chunk} differ"
    );
    fuzz_flight::<FIRMWARE_READER_BUFFER_LEN>(data, data.len());

    if let Ok(cert) = x509::Certificate::parse(data) {
        let _ = crate::assess::interception::summarize(&cert);
        let _ = cert.covers_host("outlook.office365.com");
    }

    if let Ok(hello) = ClientHelloRepr::parse(data) {
        let mut out = [0u8; MAX_CLIENT_HELLO_LEN];
        if let Ok(n) = hello.emit(&mut out) {
            assert_eq!(
                ClientHelloRepr::parse(out.get(..n).unwrap_or_default()),
                Ok(hello)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;
    use std::string::String;
    use std::vec::Vec;

    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The ClientHello the captures were made with (client-hello.bin).
    fn fixture_hello() -> ClientHelloRepr<'static> {
        ClientHelloRepr {
            random: core::array::from_fn(|i| 0xa0 + i as u8),
            session_id: &[0x5a; 32],
            server_name: Some("outlook.office365.com"),
        }
    }

    fn emit(hello: &ClientHelloRepr<'_>) -> Vec<u8> {
        let mut buf = vec![0; hello.buffer_len()];
        assert_eq!(hello.emit(&mut buf), Ok(buf.len()));
        buf
    }

    /// What a reader reports for `data` fed in chunks of the given sizes (cycled), as strings.
    fn events_chunked<const N: usize>(data: &[u8], sizes: &[usize]) -> Vec<String> {
        let mut reader = HandshakeReader::<N>::new();
        let mut out = Vec::new();
        let mut rest = data;
        let mut sizes = sizes.iter().cycle();
        while !rest.is_empty() && !reader.is_finished() {
            let n = (*sizes.next().unwrap()).clamp(1, rest.len());
            let mut piece = &rest[..n];
            rest = &rest[n..];
            while !piece.is_empty() && !reader.is_finished() {
                let taken = reader.push(piece);
                piece = &piece[taken..];
                let before = out.len();
                while let Some(event) = reader.next_event() {
                    out.push(format!("{event:?}"));
                }
                assert!(
                    taken > 0 || out.len() > before || reader.is_finished(),
                    "reader stalled"
                );
            }
        }
        assert!(reader.next_event().is_none());
        out
    }

    fn events(data: &[u8]) -> Vec<String> {
        events_chunked::<AGENT_READER_BUFFER_LEN>(data, &[data.len()])
    }

    /// Every certificate of the first Certificate event, copied out.
    fn chain_of(flight: &[u8]) -> Vec<Vec<u8>> {
        let mut reader = HandshakeReader::<AGENT_READER_BUFFER_LEN>::new();
        assert_eq!(reader.push(flight), flight.len());
        while let Some(event) = reader.next_event() {
            if let Event::Certificate(chain) = event.unwrap() {
                assert_eq!(chain.iter().count(), chain.len());
                return chain.iter().map(<[u8]>::to_vec).collect();
            }
        }
        panic!("no Certificate message");
    }

    /// The first event, which must be a ServerHello of either kind.
    fn server_hello(flight: &[u8]) -> Event<'static> {
        let mut reader = HandshakeReader::<AGENT_READER_BUFFER_LEN>::new();
        reader.push(flight);
        match reader.next_event().unwrap().unwrap() {
            Event::ServerHello(h) => Event::ServerHello(h),
            Event::Tls13ServerHello(h) => Event::Tls13ServerHello(h),
            other => panic!("not a ServerHello: {other:?}"),
        }
    }

    fn pem(name: &str) -> Vec<u8> {
        let text = String::from_utf8(fixture(&format!("{name}.pem"))).unwrap();
        x509::tests::pem_to_der(&text)
    }

    /// The handshake bytes of a flight of handshake records, re-wrapped into records of `size` bytes.
    fn reframe(flight: &[u8], size: usize) -> Vec<u8> {
        let mut stream = Vec::new();
        let mut rest = flight;
        while rest.len() >= RECORD_HEADER_LEN {
            let record = Record::new_checked(rest).unwrap();
            assert_eq!(record.content_type(), ContentType::Handshake);
            stream.extend_from_slice(record.payload());
            rest = &rest[RECORD_HEADER_LEN + usize::from(record.len())..];
        }
        assert!(rest.is_empty());
        let mut out = Vec::new();
        for piece in stream.chunks(size) {
            let mut header = [0; RECORD_HEADER_LEN];
            let mut record = Record::new_unchecked(&mut header[..]);
            record.set_content_type(ContentType::Handshake);
            record.set_version(Version::Tls12);
            record.set_len(piece.len() as u16);
            out.extend_from_slice(&header);
            out.extend_from_slice(piece);
        }
        out
    }

    fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![content_type, 3, 3];
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn our_client_hello_is_the_golden_vector_both_ways() {
        let golden = fixture("client-hello.bin");
        assert_eq!(emit(&fixture_hello()), golden);
        assert_eq!(ClientHelloRepr::parse(&golden), Ok(fixture_hello()));
    }

    #[test]
    fn our_client_hello_offers_tls12_only_with_what_servers_accept() {
        let bytes = emit(&fixture_hello());
        let record = Record::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            record.version(),
            Version::Tls10,
            "browsers' first record version"
        );
        let message = Handshake::new_checked(record.payload()).unwrap();
        let hello = ClientHello::new_checked(message.body()).unwrap();
        assert_eq!(hello.version(), Version::Tls12);
        assert_eq!(
            hello.cipher_suites().collect::<Vec<_>>(),
            CipherSuite::OFFERED
        );
        assert!(hello
            .cipher_suites()
            .all(|s| !matches!(s, CipherSuite::Unknown(_))));
        assert_eq!(hello.compression_methods(), [0]);
        let kinds: Vec<u16> = hello.extensions().map(|(t, _)| t).collect();
        assert!(
            !kinds.contains(&extension::SUPPORTED_VERSIONS),
            "a TLS 1.3 offer would hide the chain"
        );
        assert!(!kinds.contains(&16), "no ALPN");
        for needed in [
            extension::SERVER_NAME,
            extension::SUPPORTED_GROUPS,
            extension::EC_POINT_FORMATS,
            extension::SIGNATURE_ALGORITHMS,
            extension::RENEGOTIATION_INFO,
            extension::EXTENDED_MASTER_SECRET,
        ] {
            assert!(kinds.contains(&needed), "extension {needed} missing");
        }
        let groups = hello
            .extensions()
            .find(|(t, _)| *t == extension::SUPPORTED_GROUPS)
            .unwrap()
            .1;
        assert_eq!(groups, [0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
        assert_eq!(hello.server_name(), Ok(Some("outlook.office365.com")));
    }

    #[test]
    fn openssl_client_hello_parses_with_its_server_name() {
        // s_client offers TLS 1.3: its hello has supported_versions, key_share and many more suites.
        let bytes = fixture("s_client-client-hello.bin");
        let repr = ClientHelloRepr::parse(&bytes).unwrap();
        assert_eq!(repr.server_name, Some("outlook.office365.com"));
        let hello =
            ClientHello::new_checked(&bytes[RECORD_HEADER_LEN + HANDSHAKE_HEADER_LEN..]).unwrap();
        assert!(hello
            .extensions()
            .any(|(t, _)| t == extension::SUPPORTED_VERSIONS));
        assert!(hello.cipher_suites().count() > CipherSuite::OFFERED.len());
    }

    #[test]
    fn a_hello_of_256_to_511_bytes_is_padded_to_512() {
        let mut padded = 0;
        for name_len in 1..=MAX_SERVER_NAME_LEN {
            let name: String = (0..name_len)
                .map(|i| if i % 10 == 9 { '.' } else { 'a' })
                .collect();
            if name.ends_with('.') {
                continue;
            }
            let repr = ClientHelloRepr {
                server_name: Some(&name),
                ..fixture_hello()
            };
            let bytes = emit(&repr);
            let message_len = bytes.len() - RECORD_HEADER_LEN;
            assert!(
                !(256..512).contains(&message_len),
                "{message_len}-byte ClientHello"
            );
            assert!(bytes.len() <= MAX_CLIENT_HELLO_LEN);
            assert_eq!(ClientHelloRepr::parse(&bytes), Ok(repr));
            if ClientHello::new_checked(&bytes[9..])
                .unwrap()
                .extensions()
                .any(|(t, _)| t == extension::PADDING)
            {
                padded += 1;
            }
        }
        assert!(padded > 100, "the padding branch ran {padded} times");
    }

    #[test]
    fn emit_refuses_what_it_cannot_encode() {
        let long_id = [0; MAX_SESSION_ID_LEN + 1];
        let mut buf = [0; MAX_CLIENT_HELLO_LEN];
        assert_eq!(
            ClientHelloRepr {
                session_id: &long_id,
                ..fixture_hello()
            }
            .emit(&mut buf),
            Err(Error::InvalidRepr)
        );
        for bad in [
            "",
            "a..b",
            "outlook.office365.com.",
            "203.0.113.1:443",
            "ex ample.com",
            "bücher.de",
        ] {
            let repr = ClientHelloRepr {
                server_name: Some(bad),
                ..fixture_hello()
            };
            assert_eq!(repr.emit(&mut buf), Err(Error::InvalidRepr), "{bad:?}");
        }
        let repr = fixture_hello();
        let mut short = vec![0; repr.buffer_len() - 1];
        assert_eq!(repr.emit(&mut short), Err(Error::BufferTooSmall));
        let no_sni = ClientHelloRepr {
            server_name: None,
            ..fixture_hello()
        };
        assert_eq!(ClientHelloRepr::parse(&emit(&no_sni)), Ok(no_sni));
    }

    #[test]
    fn genuine_flight_from_openssl_yields_the_microsoft_like_chain() {
        let flight = fixture("s_server-genuine.bin");
        let ev = events(&flight);
        assert_eq!(ev.len(), 4, "{ev:?}");
        assert!(ev[1].starts_with("Ok(Certificate("));
        assert_eq!(ev[2..], ["Ok(ServerKeyExchange)", "Ok(ServerHelloDone)"]);
        let Event::ServerHello(hello) = server_hello(&flight) else {
            panic!("TLS 1.3 ServerHello")
        };
        assert_eq!(hello.version, Version::Tls12);
        assert!(
            CipherSuite::OFFERED.contains(&hello.cipher_suite),
            "{:?}",
            hello.cipher_suite
        );
        assert!(hello.extended_master_secret && hello.secure_renegotiation);
        assert!(
            hello.signals_tls13_support(),
            "OpenSSL 3 can speak TLS 1.3 and says so"
        );

        let chain = chain_of(&flight);
        assert_eq!(chain, [pem("genuine-leaf"), pem("genuine-intermediate")]);
        x509::tests::assert_matches_openssl(&chain[0], "genuine-leaf");
        x509::tests::assert_matches_openssl(&chain[1], "genuine-intermediate");
        let leaf = x509::Certificate::parse(&chain[0]).unwrap();
        let issuer = x509::Certificate::parse(&chain[1]).unwrap();
        assert_eq!(leaf.issuer().der(), issuer.subject().der());
        assert_eq!(
            issuer.issuer().common_name(),
            Some("DigiCert Global Root G2")
        );
    }

    #[test]
    fn nginx_sends_the_same_chain() {
        let flight = fixture("nginx-genuine.bin");
        assert_eq!(
            chain_of(&flight),
            [pem("genuine-leaf"), pem("genuine-intermediate")]
        );
        assert_eq!(
            events(&flight).last().map(String::as_str),
            Some("Ok(ServerHelloDone)")
        );
    }

    #[test]
    fn inspection_flight_names_the_web_filter() {
        let flight = fixture("s_server-inspection.bin");
        let chain = chain_of(&flight);
        assert_eq!(chain, [pem("inspection-leaf"), pem("inspection-root")]);
        x509::tests::assert_matches_openssl(&chain[0], "inspection-leaf");
        let leaf = x509::Certificate::parse(&chain[0]).unwrap();
        assert_eq!(leaf.subject().common_name(), Some("outlook.office365.com"));
        assert_eq!(leaf.issuer().common_name(), Some("Contoso Web Filter CA"));
        assert!(leaf.covers_host("outlook.office365.com"));
        let Event::ServerHello(hello) = server_hello(&flight) else {
            panic!("TLS 1.3 ServerHello")
        };
        // The middlebox's leaf has an ECDSA key: the server picked one of our ECDSA suites.
        assert!(matches!(
            hello.cipher_suite,
            CipherSuite::EcdheEcdsaAes128GcmSha256
                | CipherSuite::EcdheEcdsaAes256GcmSha384
                | CipherSuite::EcdheEcdsaChacha20Poly1305Sha256
        ));
    }

    #[test]
    fn certificate_request_is_reported_in_order() {
        let ev = events(&fixture("s_server-client-auth.bin"));
        assert_eq!(
            ev[2..],
            [
                "Ok(ServerKeyExchange)",
                "Ok(CertificateRequest)",
                "Ok(ServerHelloDone)"
            ]
        );
    }

    #[test]
    fn a_tls13_only_server_refuses_with_protocol_version() {
        let fatal = |description| {
            format!(
                "{:?}",
                Ok::<_, Error>(Event::Alert(Alert {
                    level: AlertLevel::Fatal,
                    description
                }))
            )
        };
        assert_eq!(
            events(&fixture("s_server-tls13-only.bin")),
            [fatal(AlertDescription::ProtocolVersion)]
        );
        assert_eq!(
            events(&fixture("s_server-no-common-cipher.bin")),
            [fatal(AlertDescription::HandshakeFailure)]
        );
    }

    #[test]
    fn a_tls13_server_hello_is_reported_distinctly_and_ends_the_flight() {
        let flight = fixture("s_server-tls13-flight.bin");
        // The flight goes on with a ChangeCipherSpec and encrypted records; the reader stops first.
        assert_eq!(events(&flight).len(), 1);
        let Event::Tls13ServerHello(hello) = server_hello(&flight) else {
            panic!("TLS 1.2 ServerHello")
        };
        assert_eq!(hello.version, Version::Tls12, "legacy_version");
        assert_eq!(hello.negotiated_version(), Version::Tls13);
        assert!(!hello.is_hello_retry_request());
    }

    #[test]
    fn every_chunking_and_record_framing_gives_the_same_events() {
        for name in [
            "s_server-genuine.bin",
            "s_server-inspection.bin",
            "s_server-client-auth.bin",
            "nginx-genuine.bin",
        ] {
            let flight = fixture(name);
            let whole = events(&flight);
            assert_eq!(
                events_chunked::<AGENT_READER_BUFFER_LEN>(&flight, &[1]),
                whole,
                "{name} byte by byte"
            );
            assert_eq!(
                events_chunked::<FIRMWARE_READER_BUFFER_LEN>(&flight, &[1460]),
                whole,
                "{name} firmware"
            );
            for size in [1, 2, 3, 4, 5, 100, 1000] {
                assert_eq!(
                    events(&reframe(&flight, size)),
                    whole,
                    "{name} in records of {size}"
                );
            }
        }
    }

    #[test]
    fn a_message_larger_than_the_buffer_is_a_distinct_error() {
        let flight = fixture("s_server-genuine.bin");
        let mut reader = HandshakeReader::<MIN_READER_BUFFER_LEN>::new();
        let mut rest = &flight[..];
        let mut seen = Vec::new();
        for _ in 0..flight.len() {
            let taken = reader.push(rest);
            rest = &rest[taken..];
            while let Some(event) = reader.next_event() {
                seen.push(event.map(|e| matches!(e, Event::ServerHello(_))));
            }
            if reader.is_finished() {
                break;
            }
        }
        assert_eq!(seen, [Ok(true), Err(Error::MessageTooLarge)]);
        assert!(!rest.is_empty(), "the reader stopped taking bytes");
        assert_eq!(reader.push(rest), 0);
        assert!(reader.next_event().is_none());
        // A Certificate message of exactly 1024 bytes fits a 1024-byte reader and not a 1023-byte one.
        let hello_record = Record::new_checked(&flight[..]).unwrap();
        let mut exact = flight[..RECORD_HEADER_LEN + usize::from(hello_record.len())].to_vec();
        let cert = vec![0x30; 1024 - HANDSHAKE_HEADER_LEN - 6];
        let mut body = ((cert.len() + 3) as u32).to_be_bytes()[1..].to_vec();
        body.extend_from_slice(&(cert.len() as u32).to_be_bytes()[1..]);
        body.extend_from_slice(&cert);
        let message = handshake(11, &body);
        assert_eq!(message.len(), 1024);
        exact.extend(record(22, &message));
        let fits = events_chunked::<1024>(&exact, &[7]);
        assert_eq!(fits.len(), 2);
        assert!(
            fits[1].starts_with("Ok(Certificate(CertificateChain { list: ["),
            "{fits:?}"
        );
        assert_eq!(
            events_chunked::<1023>(&exact, &[7])[1],
            format!("{:?}", Err::<Event, _>(Error::MessageTooLarge))
        );
    }

    #[test]
    fn hostile_and_foreign_flights_are_named() {
        let err = |e: Error| vec![format!("{:?}", Err::<Event, _>(e))];
        assert_eq!(
            events(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            err(Error::UnexpectedContentType(b'H'))
        );
        assert_eq!(
            events(&[22, 2, 0, 0, 4, 2, 0, 0, 0]),
            err(Error::BadRecordVersion)
        );
        assert_eq!(events(&[22, 3, 3, 0x40, 0x01]), err(Error::RecordTooLong));
        assert_eq!(events(&[22, 3, 3, 0, 0]), err(Error::Malformed));
        assert_eq!(events(&record(21, &[2, 40, 0])), err(Error::Malformed));
        assert_eq!(
            events(&record(23, &[0; 40])),
            err(Error::UnexpectedContentType(23))
        );
        assert_eq!(
            events(&record(22, &handshake(11, &[0, 0, 0]))),
            err(Error::UnexpectedMessage(11))
        );

        let flight = fixture("s_server-genuine.bin");
        let hello_len =
            RECORD_HEADER_LEN + usize::from(Record::new_checked(&flight[..]).unwrap().len());
        let hello = &flight[..hello_len];
        let after_hello = |tail: Vec<u8>| {
            let mut data = hello.to_vec();
            data.extend(tail);
            events(&data)
        };
        let second = |v: Vec<String>| v.get(1).cloned();
        assert_eq!(
            second(after_hello(record(22, &handshake(14, &[1])))),
            err(Error::Malformed).pop()
        );
        assert_eq!(
            second(after_hello(record(22, &handshake(2, &[])))),
            err(Error::UnexpectedMessage(2)).pop()
        );
        assert_eq!(
            second(after_hello(record(22, &handshake(4, &[])))),
            err(Error::UnexpectedMessage(4)).pop()
        );
        assert_eq!(
            second(after_hello(record(20, &[2]))),
            err(Error::Malformed).pop()
        );
        // A Certificate whose inner length runs past the message.
        assert_eq!(
            second(after_hello(record(
                22,
                &handshake(11, &[0, 0, 4, 0, 0, 9, 0])
            ))),
            err(Error::Truncated).pop()
        );
        let mut too_many = Vec::new();
        for _ in 0..=MAX_CHAIN_LEN {
            too_many.extend_from_slice(&[0, 0, 1, 0x30]);
        }
        let mut body = (too_many.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend(too_many);
        assert_eq!(
            second(after_hello(record(22, &handshake(11, &body)))),
            err(Error::TooManyElements).pop()
        );

        // A warning alert (unrecognized_name) in the middle of the flight is reported in place, and the
        // flight goes on; a handshake message split around it is still reassembled.
        let rest = &flight[hello_len..];
        let whole = events(&flight);
        let mut with_warning = hello.to_vec();
        let framed = reframe(rest, 700);
        let cut = RECORD_HEADER_LEN + 700;
        with_warning.extend_from_slice(&framed[..cut]);
        with_warning.extend(record(21, &[1, 112]));
        with_warning.extend_from_slice(&framed[cut..]);
        let ev = events(&with_warning);
        let warning = format!(
            "{:?}",
            Ok::<_, Error>(Event::Alert(Alert {
                level: AlertLevel::Warning,
                description: AlertDescription::UnrecognizedName,
            }))
        );
        assert_eq!(ev[..1], whole[..1]);
        assert_eq!(ev[1], warning);
        assert_eq!(ev[2..], whole[1..]);
        assert_eq!(
            events_chunked::<AGENT_READER_BUFFER_LEN>(&with_warning, &[1]),
            ev
        );
    }

    #[test]
    fn fuzz_entry_accepts_every_fixture() {
        for name in [
            "client-hello.bin",
            "s_client-client-hello.bin",
            "s_server-genuine.bin",
            "s_server-inspection.bin",
            "s_server-client-auth.bin",
            "s_server-tls13-only.bin",
            "s_server-no-common-cipher.bin",
            "s_server-tls13-flight.bin",
            "nginx-genuine.bin",
        ] {
            fuzz(&fixture(name));
        }
    }

    fn host_label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
    }

    prop_compose! {
        fn client_hello_parts()(
            random in any::<[u8; RANDOM_LEN]>(),
            session_id in proptest::collection::vec(any::<u8>(), 0..=MAX_SESSION_ID_LEN),
            labels in proptest::option::of(proptest::collection::vec(host_label(), 1..8)),
        ) -> ([u8; RANDOM_LEN], Vec<u8>, Option<String>) {
            (random, session_id, labels.map(|l| l.join(".")))
        }
    }

    proptest! {
        #[test]
        fn client_hello_parse_emit_round_trips((random, session_id, name) in client_hello_parts()) {
            let repr = ClientHelloRepr { random, session_id: &session_id, server_name: name.as_deref() };
            let bytes = emit(&repr);
            prop_assert!(bytes.len() <= MAX_CLIENT_HELLO_LEN);
            prop_assert_eq!(ClientHelloRepr::parse(&bytes), Ok(repr));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            fuzz(&data);
        }

        #[test]
        fn arbitrary_records_never_panic(
            records in proptest::collection::vec((20u8..24, proptest::collection::vec(any::<u8>(), 0..64)), 0..16),
        ) {
            // Plausible record headers get the bytes past the record layer into the handshake decoder.
            let data: Vec<u8> = records.iter().flat_map(|(t, p)| record(*t, p)).collect();
            fuzz(&data);
        }

        #[test]
        fn random_chunkings_give_the_same_events(
            sizes in proptest::collection::vec(1usize..600, 1..20),
            which in 0usize..3,
        ) {
            let name = ["s_server-genuine.bin", "s_server-inspection.bin", "s_server-client-auth.bin"][which];
            let flight = fixture(name);
            prop_assert_eq!(events_chunked::<FIRMWARE_READER_BUFFER_LEN>(&flight, &sizes), events(&flight));
        }

        #[test]
        fn random_record_framings_give_the_same_events(size in 1usize..3000, chunk in 1usize..2000) {
            let flight = fixture("s_server-genuine.bin");
            prop_assert_eq!(events_chunked::<FIRMWARE_READER_BUFFER_LEN>(&reframe(&flight, size), &[chunk]), events(&flight));
        }
    }
}
