//! X.509 certificates as a TLS server presents them: the fields that tell a genuine Microsoft 365 chain
//! from one re-issued by a TLS-inspecting middlebox (names, validity, public key hash, DNS names, CA flag).
//!
//! The DER reader is our own and deliberately small: single-byte tags, definite lengths of at most
//! [`MAX_LENGTH_OCTETS`] octets in minimal form, nesting at most [`MAX_DEPTH`] deep, checked without
//! recursion. [`Certificate::parse`] validates everything its accessors rely on, so after it succeeds no
//! accessor fails or panics. Signatures are not verified: the verdict compares names and key hashes with
//! the expected Microsoft roots and issuers, it does not build a trust path.

use core::fmt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The deepest nesting of constructed DER values accepted. Real certificates nest about seven deep
/// (RSA-PSS parameters inside an AlgorithmIdentifier inside the TBS certificate); anything deeper is hostile.
pub const MAX_DEPTH: usize = 12;
/// The most length octets in a long-form DER length: 4 octets already describe 4 GiB.
pub const MAX_LENGTH_OCTETS: usize = 4;
/// The most attributes (e.g. C, O, OU, CN) in one distinguished name.
pub const MAX_NAME_ATTRIBUTES: usize = 32;
/// The most extensions in one certificate.
pub const MAX_EXTENSIONS: usize = 32;
/// The most subjectAltName entries in one certificate (Microsoft's multi-service certificates carry
/// about a hundred).
pub const MAX_ALT_NAMES: usize = 1024;
/// Capacity in bytes of a name in a [`CertificateSummary`]. X.520 bounds CN and O at 64 characters;
/// 128 bytes hold that in any script that UTF-8 encodes in two bytes per character.
pub const MAX_NAME_LEN: usize = 128;

/// Why a certificate could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A length runs past the end of the data or of the value that contains it.
    Truncated,
    /// A BER indefinite length (`0x80`), which DER forbids.
    IndefiniteLength,
    /// A length of more than [`MAX_LENGTH_OCTETS`] octets.
    LengthTooLong,
    /// A length not in its shortest form, which DER forbids.
    NonMinimalLength,
    /// A multi-byte (high-tag-number) tag, which X.509 never uses.
    UnsupportedTag,
    /// Constructed values nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A field with a tag its position does not allow.
    UnexpectedTag,
    /// Bytes after the end of a value that must fill its container.
    TrailingData,
    /// A value that breaks a rule of X.509 (bad version, boolean or empty name component, duplicate extension).
    Malformed,
    /// More elements than a named bound allows ([`MAX_NAME_ATTRIBUTES`], [`MAX_EXTENSIONS`], [`MAX_ALT_NAMES`]).
    TooManyElements,
    /// A UTCTime or GeneralizedTime that is not `YYMMDDHHMMSSZ` / `YYYYMMDDHHMMSSZ` or names no real instant.
    BadTime,
    /// A UTF8String that is not valid UTF-8.
    InvalidUtf8,
    /// A PrintableString, IA5String, TeletexString or dNSName with bytes outside ASCII.
    NonAsciiString,
    /// A CN or O in a string type that cannot be borrowed as UTF-8 (BMPString, UniversalString).
    UnsupportedStringType,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "DER length runs past its container",
            Self::IndefiniteLength => "DER indefinite length",
            Self::LengthTooLong => "DER length of more than 4 octets",
            Self::NonMinimalLength => "DER length not in minimal form",
            Self::UnsupportedTag => "multi-byte DER tag",
            Self::TooDeep => "DER nested too deep",
            Self::UnexpectedTag => "unexpected DER tag",
            Self::TrailingData => "trailing data after DER value",
            Self::Malformed => "malformed certificate field",
            Self::TooManyElements => "too many elements in certificate",
            Self::BadTime => "bad certificate time",
            Self::InvalidUtf8 => "invalid UTF-8 in certificate string",
            Self::NonAsciiString => "non-ASCII byte in ASCII certificate string",
            Self::UnsupportedStringType => "certificate name in an unsupported string type",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result of X.509 parsing.
pub type Result<T> = core::result::Result<T, Error>;

/// A bounded DER reader: single-byte tags, minimal definite lengths, explicit nesting bound.
mod der {
    use super::{Error, Result, MAX_DEPTH, MAX_LENGTH_OCTETS};

    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const TELETEX_STRING: u8 = 0x14;
    pub const IA5_STRING: u8 = 0x16;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// `[0] EXPLICIT` (the certificate version).
    pub const CONTEXT_0: u8 = 0xa0;
    /// `[1] IMPLICIT` primitive (issuerUniqueID).
    pub const CONTEXT_1_PRIMITIVE: u8 = 0x81;
    /// `[2] IMPLICIT` primitive (subjectUniqueID; dNSName in a GeneralName).
    pub const CONTEXT_2_PRIMITIVE: u8 = 0x82;
    /// `[3] EXPLICIT` (the extensions).
    pub const CONTEXT_3: u8 = 0xa3;

    const CONSTRUCTED: u8 = 0x20;
    const HIGH_TAG_NUMBER: u8 = 0x1f;

    /// One decoded tag-length-value.
    #[derive(Debug, Clone, Copy)]
    pub struct Tlv<'a> {
        pub tag: u8,
        /// The contents octets.
        pub value: &'a [u8],
        /// Tag, length and contents: what a hash over the encoded value covers.
        pub whole: &'a [u8],
    }

    /// Reads the tag and length at the start of `data`: (tag, header length, contents length), with the
    /// contents checked to lie within `data`.
    fn header(data: &[u8]) -> Result<(u8, usize, usize)> {
        let (&tag, rest) = data.split_first().ok_or(Error::Truncated)?;
        if tag & HIGH_TAG_NUMBER == HIGH_TAG_NUMBER {
            return Err(Error::UnsupportedTag);
        }
        let (&first, rest) = rest.split_first().ok_or(Error::Truncated)?;
        let (header_len, len) = if first < 0x80 {
            (2, usize::from(first))
        } else if first == 0x80 {
            return Err(Error::IndefiniteLength);
        } else {
            let n = usize::from(first & 0x7f);
            if n > MAX_LENGTH_OCTETS {
                return Err(Error::LengthTooLong);
            }
            let octets = rest.get(..n).ok_or(Error::Truncated)?;
            if octets.first() == Some(&0) {
                return Err(Error::NonMinimalLength);
            }
            let len = octets
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            if len < 0x80 {
                return Err(Error::NonMinimalLength);
            }
            (2 + n, usize::try_from(len).map_err(|_| Error::Truncated)?)
        };
        if len > data.len() - header_len {
            return Err(Error::Truncated);
        }
        Ok((tag, header_len, len))
    }

    /// Splits the first TLV off `data`.
    pub fn split(data: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
        let (tag, header_len, len) = header(data)?;
        let (whole, rest) = data.split_at(header_len + len);
        Ok((
            Tlv {
                tag,
                value: whole.get(header_len..).unwrap_or_default(),
                whole,
            },
            rest,
        ))
    }

    /// Checks that `data` is a sequence of well-formed TLVs whose constructed values contain exactly
    /// well-formed TLVs, at most [`MAX_DEPTH`] deep. Iterative: the open containers sit in a fixed array.
    pub fn check_nesting(data: &[u8]) -> Result<()> {
        let mut ends = [0usize; MAX_DEPTH];
        let mut depth = 0;
        let mut pos = 0;
        loop {
            while depth > 0 && ends.get(depth - 1) == Some(&pos) {
                depth -= 1;
            }
            let limit = if depth == 0 {
                data.len()
            } else {
                ends.get(depth - 1).copied().unwrap_or(0)
            };
            if pos >= limit {
                return Ok(());
            }
            let window = data.get(pos..limit).ok_or(Error::Truncated)?;
            let (tag, header_len, len) = header(window)?;
            if tag & CONSTRUCTED != 0 {
                *ends.get_mut(depth).ok_or(Error::TooDeep)? = pos + header_len + len;
                depth += 1;
                pos += header_len;
            } else {
                pos += header_len + len;
            }
        }
    }

    /// Reads the TLVs of one container in order.
    #[derive(Debug, Clone, Copy)]
    pub struct Reader<'a> {
        rest: &'a [u8],
    }

    impl<'a> Reader<'a> {
        pub fn new(data: &'a [u8]) -> Self {
            Self { rest: data }
        }

        pub fn is_empty(&self) -> bool {
            self.rest.is_empty()
        }

        pub fn peek_tag(&self) -> Option<u8> {
            self.rest.first().copied()
        }

        pub fn read(&mut self) -> Result<Tlv<'a>> {
            let (tlv, rest) = split(self.rest)?;
            self.rest = rest;
            Ok(tlv)
        }

        /// Reads a TLV that must carry `tag`.
        pub fn expect(&mut self, tag: u8) -> Result<Tlv<'a>> {
            let tlv = self.read()?;
            if tlv.tag == tag {
                Ok(tlv)
            } else {
                Err(Error::UnexpectedTag)
            }
        }

        /// Reads a TLV only if it carries `tag`.
        pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>> {
            if self.peek_tag() == Some(tag) {
                self.read().map(Some)
            } else {
                Ok(None)
            }
        }

        /// Ends the container: nothing may follow.
        pub fn finish(self) -> Result<()> {
            if self.rest.is_empty() {
                Ok(())
            } else {
                Err(Error::TrailingData)
            }
        }
    }

    /// A BOOLEAN's value. DER says `0xff` for true; any non-zero octet is accepted, as BER readers do,
    /// because the meaning is unambiguous.
    pub fn boolean(tlv: Tlv<'_>) -> Result<bool> {
        match tlv.value {
            [b] => Ok(*b != 0),
            _ => Err(Error::Malformed),
        }
    }
}

/// OID contents octets (without tag and length) of the attributes and extensions we read.
mod oid {
    /// id-at-commonName, 2.5.4.3.
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// id-at-organizationName, 2.5.4.10.
    pub const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    /// id-ce-subjectAltName, 2.5.29.17.
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// id-ce-basicConstraints, 2.5.29.19.
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
}

/// Decodes a directory string that must be readable as UTF-8 without copying.
fn directory_string(tlv: der::Tlv<'_>) -> Result<&str> {
    match tlv.tag {
        der::UTF8_STRING => core::str::from_utf8(tlv.value).map_err(|_| Error::InvalidUtf8),
        der::PRINTABLE_STRING | der::IA5_STRING | der::TELETEX_STRING => ascii(tlv.value),
        _ => Err(Error::UnsupportedStringType),
    }
}

/// ASCII bytes as `&str`. PrintableString's narrower alphabet is not enforced: real certificates put `*`,
/// `&` and `@` in it, and rejecting them would hide exactly the middlebox certificates we look for.
fn ascii(bytes: &[u8]) -> Result<&str> {
    if bytes.is_ascii() {
        core::str::from_utf8(bytes).map_err(|_| Error::NonAsciiString)
    } else {
        Err(Error::NonAsciiString)
    }
}

/// A distinguished name (subject or issuer) with the attributes the verdict names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    der: &'a [u8],
    common_name: Option<&'a str>,
    organization: Option<&'a str>,
}

impl<'a> Name<'a> {
    /// Parses a Name from its whole DER encoding (the SEQUENCE tag included).
    fn parse(tlv: der::Tlv<'a>) -> Result<Self> {
        if tlv.tag != der::SEQUENCE {
            return Err(Error::UnexpectedTag);
        }
        let mut name = Name {
            der: tlv.whole,
            common_name: None,
            organization: None,
        };
        let mut attributes = 0;
        let mut rdns = der::Reader::new(tlv.value);
        while !rdns.is_empty() {
            let set = rdns.expect(der::SET)?;
            if set.value.is_empty() {
                return Err(Error::Malformed);
            }
            let mut atvs = der::Reader::new(set.value);
            while !atvs.is_empty() {
                attributes += 1;
                if attributes > MAX_NAME_ATTRIBUTES {
                    return Err(Error::TooManyElements);
                }
                let mut atv = der::Reader::new(atvs.expect(der::SEQUENCE)?.value);
                let oid = atv.expect(der::OID)?.value;
                let value = atv.read()?;
                atv.finish()?;
                // The first CN and the first O: a name with two of either is unusual, and the first is
                // the one `openssl x509 -subject` prints first.
                if oid == oid::COMMON_NAME && name.common_name.is_none() {
                    name.common_name = Some(directory_string(value)?);
                } else if oid == oid::ORGANIZATION && name.organization.is_none() {
                    name.organization = Some(directory_string(value)?);
                }
            }
        }
        Ok(name)
    }

    /// The first commonName (CN), if any.
    pub fn common_name(&self) -> Option<&'a str> {
        self.common_name
    }

    /// The first organizationName (O), if any.
    pub fn organization(&self) -> Option<&'a str> {
        self.organization
    }

    /// The whole DER encoding: an issuer equals the next certificate's subject byte for byte.
    pub fn der(&self) -> &'a [u8] {
        self.der
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A UTCTime or GeneralizedTime as seconds since the Unix epoch. RFC 5280 profile: UTCTime is
/// `YYMMDDHHMMSSZ` with years 50-99 meaning 19xx; GeneralizedTime is `YYYYMMDDHHMMSSZ` without
/// fractions. Every field is range-checked, including the day against the month's length.
fn parse_time(tlv: der::Tlv<'_>) -> Result<i64> {
    let (year_digits, rest) = match tlv.tag {
        der::UTC_TIME if tlv.value.len() == 13 => tlv.value.split_at(2),
        der::GENERALIZED_TIME if tlv.value.len() == 15 => tlv.value.split_at(4),
        der::UTC_TIME | der::GENERALIZED_TIME => return Err(Error::BadTime),
        _ => return Err(Error::UnexpectedTag),
    };
    let number = |digits: &[u8]| -> Result<i64> {
        digits.iter().try_fold(0i64, |acc, &d| {
            if d.is_ascii_digit() {
                Ok(acc * 10 + i64::from(d - b'0'))
            } else {
                Err(Error::BadTime)
            }
        })
    };
    let mut year = number(year_digits)?;
    if tlv.tag == der::UTC_TIME {
        year += if year >= 50 { 1900 } else { 2000 };
    }
    let field = |i: usize| number(rest.get(i..i + 2).ok_or(Error::BadTime)?);
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if rest.get(10) != Some(&b'Z')
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(Error::BadTime);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// One X.509 certificate, parsed in place from its DER bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certificate<'a> {
    issuer: Name<'a>,
    subject: Name<'a>,
    not_before: i64,
    not_after: i64,
    spki: &'a [u8],
    /// Contents of the subjectAltName GeneralNames SEQUENCE, every entry already checked.
    alt_names: &'a [u8],
    ca: bool,
}

impl<'a> Certificate<'a> {
    /// Parses and validates one DER certificate; `der` must hold exactly the certificate.
    pub fn parse(der: &'a [u8]) -> Result<Self> {
        der::check_nesting(der)?;
        let mut outer = der::Reader::new(der);
        let mut cert = der::Reader::new(outer.expect(der::SEQUENCE)?.value);
        outer.finish()?;
        let tbs = cert.expect(der::SEQUENCE)?;
        cert.expect(der::SEQUENCE)?; // signatureAlgorithm
        cert.expect(der::BIT_STRING)?; // signatureValue
        cert.finish()?;

        let mut tbs = der::Reader::new(tbs.value);
        if let Some(version) = tbs.optional(der::CONTEXT_0)? {
            let mut explicit = der::Reader::new(version.value);
            // v1 (0), v2 (1), v3 (2).
            if !matches!(explicit.expect(der::INTEGER)?.value, [0..=2]) {
                return Err(Error::Malformed);
            }
            explicit.finish()?;
        }
        tbs.expect(der::INTEGER)?; // serialNumber
        tbs.expect(der::SEQUENCE)?; // signature
        let issuer = Name::parse(tbs.read()?)?;
        let mut validity = der::Reader::new(tbs.expect(der::SEQUENCE)?.value);
        let not_before = parse_time(validity.read()?)?;
        let not_after = parse_time(validity.read()?)?;
        validity.finish()?;
        let subject = Name::parse(tbs.read()?)?;
        let spki = tbs.expect(der::SEQUENCE)?.whole;
        tbs.optional(der::CONTEXT_1_PRIMITIVE)?; // issuerUniqueID
        tbs.optional(der::CONTEXT_2_PRIMITIVE)?; // subjectUniqueID
        let mut cert = Certificate {
            issuer,
            subject,
            not_before,
            not_after,
            spki,
            alt_names: &[],
            ca: false,
        };
        if let Some(extensions) = tbs.optional(der::CONTEXT_3)? {
            let mut explicit = der::Reader::new(extensions.value);
            cert.read_extensions(explicit.expect(der::SEQUENCE)?.value)?;
            explicit.finish()?;
        }
        tbs.finish()?;
        Ok(cert)
    }

    fn read_extensions(&mut self, list: &'a [u8]) -> Result<()> {
        let (mut seen_san, mut seen_bc) = (false, false);
        let mut count = 0;
        let mut list = der::Reader::new(list);
        while !list.is_empty() {
            count += 1;
            if count > MAX_EXTENSIONS {
                return Err(Error::TooManyElements);
            }
            let mut ext = der::Reader::new(list.expect(der::SEQUENCE)?.value);
            let id = ext.expect(der::OID)?.value;
            if let Some(critical) = ext.optional(der::BOOLEAN)? {
                der::boolean(critical)?;
            }
            let value = ext.expect(der::OCTET_STRING)?.value;
            ext.finish()?;
            let seen = if id == oid::SUBJECT_ALT_NAME {
                self.alt_names = alt_names(value)?;
                &mut seen_san
            } else if id == oid::BASIC_CONSTRAINTS {
                self.ca = basic_constraints_ca(value)?;
                &mut seen_bc
            } else {
                continue;
            };
            // RFC 5280 4.2: a certificate must not include more than one instance of an extension.
            if core::mem::replace(seen, true) {
                return Err(Error::Malformed);
            }
        }
        Ok(())
    }

    /// The issuer's name.
    pub fn issuer(&self) -> Name<'a> {
        self.issuer
    }

    /// The subject's name.
    pub fn subject(&self) -> Name<'a> {
        self.subject
    }

    /// Start of validity, seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity, seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The SubjectPublicKeyInfo, whole DER (what `openssl pkey -pubin -outform DER` writes).
    pub fn spki_der(&self) -> &'a [u8] {
        self.spki
    }

    /// SHA-256 of [`Self::spki_der`]: the key pin the verdict compares.
    pub fn spki_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.spki).into()
    }

    /// The subjectAltName dNSName entries, in certificate order.
    pub fn dns_names(&self) -> DnsNames<'a> {
        DnsNames {
            rest: self.alt_names,
        }
    }

    /// Whether basicConstraints says this is a CA (false when the extension is absent).
    pub fn is_ca(&self) -> bool {
        self.ca
    }

    /// Whether a dNSName entry covers `host` (RFC 6125: ASCII case-insensitive; a `*` only as the whole
    /// left-most label, matching exactly one label). The CN is not consulted, as browsers no longer do.
    pub fn covers_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.dns_names()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host.split_once('.').is_some_and(|(label, rest)| {
                    !label.is_empty() && rest.eq_ignore_ascii_case(parent)
                }),
                None => pattern.eq_ignore_ascii_case(host),
            })
    }
}

/// Checks a subjectAltName extension value and returns the GeneralNames contents.
fn alt_names(value: &[u8]) -> Result<&[u8]> {
    let mut outer = der::Reader::new(value);
    let names = outer.expect(der::SEQUENCE)?.value;
    outer.finish()?;
    let mut reader = der::Reader::new(names);
    let mut count = 0;
    while !reader.is_empty() {
        count += 1;
        if count > MAX_ALT_NAMES {
            return Err(Error::TooManyElements);
        }
        let name = reader.read()?;
        if name.tag == der::CONTEXT_2_PRIMITIVE {
            ascii(name.value)?;
        }
    }
    Ok(names)
}

/// The cA flag of a basicConstraints extension value.
fn basic_constraints_ca(value: &[u8]) -> Result<bool> {
    let mut outer = der::Reader::new(value);
    let mut fields = der::Reader::new(outer.expect(der::SEQUENCE)?.value);
    outer.finish()?;
    let ca = match fields.optional(der::BOOLEAN)? {
        Some(b) => der::boolean(b)?,
        None => false,
    };
    fields.optional(der::INTEGER)?; // pathLenConstraint
    fields.finish()?;
    Ok(ca)
}

/// The dNSName entries of a certificate's subjectAltName, as borrowed ASCII strings.
#[derive(Debug, Clone)]
pub struct DnsNames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for DnsNames<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // Certificate::parse checked every entry; an error here cannot happen and ends the iteration.
        while !self.rest.is_empty() {
            let (tlv, rest) = der::split(self.rest).ok()?;
            self.rest = rest;
            if tlv.tag == der::CONTEXT_2_PRIMITIVE {
                return ascii(tlv.value).ok();
            }
        }
        None
    }
}

/// A name copied into a summary.
pub type NameString = heapless::String<MAX_NAME_LEN>;

/// The CN and O of a distinguished name, owned: what
/// [`summarize_name`](crate::assess::interception::summarize_name) copies out, cut to [`MAX_NAME_LEN`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameSummary {
    /// commonName (CN).
    pub common_name: Option<NameString>,
    /// organizationName (O).
    pub organization: Option<NameString>,
}

/// What a report says about one certificate of a chain, as
/// [`summarize`](crate::assess::interception::summarize) copies it out of a [`Certificate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// The subject's CN and O.
    pub subject: NameSummary,
    /// The issuer's CN and O: for a re-issued leaf, the name of the inspecting product.
    pub issuer: NameSummary,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    pub spki_sha256: [u8; 32],
    /// basicConstraints cA.
    pub ca: bool,
    /// How many dNSName entries the subjectAltName holds.
    pub dns_name_count: u16,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::assess::interception::{summarize, summarize_name};
    use std::path::PathBuf;
    use std::vec::Vec;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
    }

    /// Decodes a PEM file's first certificate (the fixtures keep PEM so `openssl` reads them directly).
    pub(crate) fn pem_to_der(pem: &str) -> Vec<u8> {
        let body: std::string::String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        base64_decode(&body)
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        };
        let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(value).collect();
        let mut out = Vec::new();
        for chunk in digits.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &d)| acc | u32::from(d) << (18 - 6 * i));
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }

    /// What `openssl` printed about one certificate (written by fixtures/tls/generate.sh).
    #[derive(Debug, Default)]
    pub(crate) struct Expected {
        pub subject_cn: Option<std::string::String>,
        pub subject_o: Option<std::string::String>,
        pub issuer_cn: Option<std::string::String>,
        pub issuer_o: Option<std::string::String>,
        pub not_before: i64,
        pub not_after: i64,
        pub spki_sha256: std::string::String,
        pub dns_names: Vec<std::string::String>,
        pub ca: bool,
    }

    /// Reads a `<name>.expect` file: `openssl x509 -nameopt multiline` subject/issuer blocks, dates
    /// converted by GNU `date`, the `sha256sum` of the public key DER, the SAN and basicConstraints lines.
    pub(crate) fn expected(name: &str) -> Expected {
        let path = fixture_dir().join(format!("{name}.expect"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut e = Expected::default();
        let mut section = "";
        for line in text.lines() {
            let (key, value) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (line.trim(), ""),
            };
            let value_s = Some(value.to_string());
            match key {
                "subject" | "issuer" => {
                    section = if key == "subject" {
                        "subject"
                    } else {
                        "issuer"
                    }
                }
                "commonName" if section == "subject" => e.subject_cn = e.subject_cn.or(value_s),
                "commonName" if section == "issuer" => e.issuer_cn = e.issuer_cn.or(value_s),
                "organizationName" if section == "subject" => e.subject_o = e.subject_o.or(value_s),
                "organizationName" if section == "issuer" => e.issuer_o = e.issuer_o.or(value_s),
                "not_before_epoch" => e.not_before = value.parse().unwrap(),
                "not_after_epoch" => e.not_after = value.parse().unwrap(),
                "spki_sha256" => {
                    e.spki_sha256 = value.split_whitespace().next().unwrap().to_string()
                }
                "DNS_names" => {
                    e.dns_names = value
                        .split(", ")
                        .filter_map(|n| n.strip_prefix("DNS:"))
                        .map(str::to_string)
                        .collect()
                }
                "CA" => e.ca = value == "TRUE",
                _ => {}
            }
        }
        assert!(
            !e.spki_sha256.is_empty(),
            "{}: no spki_sha256",
            path.display()
        );
        e
    }

    pub(crate) fn assert_matches_openssl(der: &[u8], name: &str) {
        let cert = Certificate::parse(der).unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = expected(name);
        assert_eq!(
            cert.subject().common_name(),
            e.subject_cn.as_deref(),
            "{name} subject CN"
        );
        assert_eq!(
            cert.subject().organization(),
            e.subject_o.as_deref(),
            "{name} subject O"
        );
        assert_eq!(
            cert.issuer().common_name(),
            e.issuer_cn.as_deref(),
            "{name} issuer CN"
        );
        assert_eq!(
            cert.issuer().organization(),
            e.issuer_o.as_deref(),
            "{name} issuer O"
        );
        assert_eq!(cert.not_before(), e.not_before, "{name} notBefore");
        assert_eq!(cert.not_after(), e.not_after, "{name} notAfter");
        assert_eq!(
            hex::encode(cert.spki_sha256()),
            e.spki_sha256,
            "{name} SPKI SHA-256"
        );
        assert_eq!(
            cert.dns_names().collect::<Vec<_>>(),
            e.dns_names,
            "{name} dNSNames"
        );
        assert_eq!(cert.is_ca(), e.ca, "{name} CA flag");
        let summary = summarize(&cert);
        assert_eq!(
            summary.issuer.common_name.as_deref(),
            e.issuer_cn.as_deref()
        );
        assert_eq!(usize::from(summary.dns_name_count), e.dns_names.len());
    }

    fn read_pem(name: &str) -> Vec<u8> {
        let path = fixture_dir().join(format!("{name}.pem"));
        pem_to_der(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
    }

    const LAB_CERTS: &[&str] = &[
        "genuine-root",
        "genuine-intermediate",
        "genuine-leaf",
        "inspection-root",
        "inspection-leaf",
    ];

    const SYSTEM_ROOTS: &[&str] = &[
        "DigiCert_Global_Root_G2",
        "DigiCert_Global_Root_G3",
        "DigiCert_Global_Root_CA",
        "Microsoft_RSA_Root_Certificate_Authority_2017",
        "Microsoft_ECC_Root_Certificate_Authority_2017",
        "Baltimore_CyberTrust_Root",
    ];

    #[test]
    fn lab_certificates_read_as_openssl_reads_them() {
        for name in LAB_CERTS {
            assert_matches_openssl(&read_pem(name), name);
        }
    }

    #[test]
    fn microsoft_and_digicert_roots_read_as_openssl_reads_them() {
        for name in SYSTEM_ROOTS {
            assert_matches_openssl(&read_pem(name), name);
        }
        let g2 = read_pem("DigiCert_Global_Root_G2");
        let g2 = Certificate::parse(&g2).unwrap();
        // A root names itself: issuer and subject are the same bytes.
        assert_eq!(g2.issuer().der(), g2.subject().der());
        assert_eq!(g2.subject().common_name(), Some("DigiCert Global Root G2"));
    }

    #[test]
    fn leaf_covers_the_office_host_names() {
        let leaf = read_pem("genuine-leaf");
        let leaf = Certificate::parse(&leaf).unwrap();
        assert!(leaf.covers_host("outlook.office365.com"));
        assert!(leaf.covers_host("OUTLOOK.Office.com."));
        assert!(leaf.covers_host("smtp.office365.com"));
        assert!(!leaf.covers_host("a.b.office365.com"));
        assert!(leaf.covers_host("office365.com"));
        // *.live.com is listed, live.com itself is not.
        assert!(leaf.covers_host("login.live.com"));
        assert!(!leaf.covers_host("live.com"));
        assert!(!leaf.covers_host("outlook.office365.com.evil.example"));
    }

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match value.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend_from_slice(&[0x81, n as u8]),
            n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(value);
        out
    }

    fn time(tag: u8, s: &str) -> Result<i64> {
        parse_time(der::split(&tlv(tag, s.as_bytes())).unwrap().0)
    }

    #[test]
    fn times_convert_to_unix_seconds() {
        assert_eq!(time(der::UTC_TIME, "700101000000Z"), Ok(0));
        assert_eq!(time(der::UTC_TIME, "491231235959Z"), Ok(2_524_607_999));
        assert_eq!(time(der::UTC_TIME, "500101000000Z"), Ok(-631_152_000));
        assert_eq!(
            time(der::GENERALIZED_TIME, "20000229120000Z"),
            Ok(951_825_600)
        );
        assert_eq!(
            time(der::GENERALIZED_TIME, "99991231235959Z"),
            Ok(253_402_300_799)
        );
        assert_eq!(
            time(der::GENERALIZED_TIME, "19000101000000Z"),
            Ok(-2_208_988_800)
        );
    }

    #[test]
    fn bad_times_are_rejected() {
        for (tag, s) in [
            (der::UTC_TIME, "230229000000Z"),           // not a leap year
            (der::GENERALIZED_TIME, "21000229000000Z"), // century, not a leap year
            (der::UTC_TIME, "231301000000Z"),
            (der::UTC_TIME, "231200000000Z"),
            (der::UTC_TIME, "231231240000Z"),
            (der::UTC_TIME, "231231236000Z"),
            (der::UTC_TIME, "231231235960Z"),
            (der::UTC_TIME, "2312312359Z"),       // no seconds
            (der::UTC_TIME, "231231235959+0100"), // offsets are not DER
            (der::UTC_TIME, "2312312359590"),
            (der::GENERALIZED_TIME, "20231231235959.5Z"), // fractions are not in RFC 5280
            (der::GENERALIZED_TIME, "2023123123595Z9"),
            (der::UTC_TIME, "-31231235959Z"),
        ] {
            assert_eq!(time(tag, s), Err(Error::BadTime), "{s}");
        }
        assert_eq!(
            time(der::INTEGER, "230101000000Z"),
            Err(Error::UnexpectedTag)
        );
    }

    #[test]
    fn hostile_der_is_rejected_distinctly() {
        let leaf = read_pem("genuine-leaf");
        // Outer length one byte longer than the data.
        let mut long = leaf.clone();
        long.truncate(leaf.len() - 1);
        assert_eq!(Certificate::parse(&long), Err(Error::Truncated));
        assert_eq!(
            Certificate::parse(&[0x30, 0x80, 0x00, 0x00]),
            Err(Error::IndefiniteLength)
        );
        assert_eq!(
            Certificate::parse(&[0x30, 0x85, 1, 0, 0, 0, 0]),
            Err(Error::LengthTooLong)
        );
        assert_eq!(
            Certificate::parse(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5]),
            Err(Error::NonMinimalLength)
        );
        assert_eq!(
            Certificate::parse(&[0x30, 0x82, 0x00, 0x80]),
            Err(Error::NonMinimalLength)
        );
        assert_eq!(
            Certificate::parse(&[0x3f, 0x81, 0x01, 0x00]),
            Err(Error::UnsupportedTag)
        );
        assert_eq!(
            Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(Error::Truncated)
        );
        // A well-formed value after the certificate, and a stray byte that is no value at all.
        let with_trailer = [&leaf[..], &tlv(0x05, &[])].concat();
        assert_eq!(Certificate::parse(&with_trailer), Err(Error::TrailingData));
        let mut with_stray_byte = leaf.clone();
        with_stray_byte.push(0);
        assert_eq!(Certificate::parse(&with_stray_byte), Err(Error::Truncated));
        assert_eq!(Certificate::parse(&[]), Err(Error::Truncated));

        let mut deep = tlv(der::INTEGER, &[1]);
        for _ in 0..MAX_DEPTH {
            deep = tlv(der::SEQUENCE, &deep);
        }
        // MAX_DEPTH levels are well-formed DER (but not a certificate) ...
        assert_eq!(der::check_nesting(&deep), Ok(()));
        // ... one more is too deep.
        assert_eq!(
            Certificate::parse(&tlv(der::SEQUENCE, &deep)),
            Err(Error::TooDeep)
        );

        // An inner length that runs past its container, though not past the data.
        let inner = [0x30, 0x03, 0x02, 0x05, 0x00, 0x00, 0x00];
        assert_eq!(der::check_nesting(&inner), Err(Error::Truncated));
    }

    /// Replaces the first occurrence of `from` with `to` (same length) in a certificate.
    fn patch(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = der
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern in fixture");
        let mut out = der.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn bad_strings_and_times_inside_a_real_certificate_are_named() {
        let leaf = read_pem("genuine-leaf");
        let cn = b"outlook.office365.com";
        // The subject CN is a UTF8String: break its UTF-8.
        let mut bad_utf8 = cn.to_vec();
        bad_utf8[0] = 0xff;
        let mut utf8_cn = vec![der::UTF8_STRING, cn.len() as u8];
        utf8_cn.extend_from_slice(cn);
        let mut broken = utf8_cn.clone();
        broken[2..].copy_from_slice(&bad_utf8);
        assert_eq!(
            Certificate::parse(&patch(&leaf, &utf8_cn, &broken)),
            Err(Error::InvalidUtf8)
        );
        // As a PrintableString, non-ASCII is a different error.
        broken[0] = der::PRINTABLE_STRING;
        assert_eq!(
            Certificate::parse(&patch(&leaf, &utf8_cn, &broken)),
            Err(Error::NonAsciiString)
        );
        // A BMPString CN cannot be borrowed as UTF-8.
        broken[0] = 0x1e;
        assert_eq!(
            Certificate::parse(&patch(&leaf, &utf8_cn, &broken)),
            Err(Error::UnsupportedStringType)
        );
        // A notAfter on the 31st of a 30-day month.
        let not_after = cert_time_bytes(&leaf, 1);
        let mut bad = not_after.clone();
        bad[2..4].copy_from_slice(b"04");
        bad[4..6].copy_from_slice(b"31");
        assert_eq!(
            Certificate::parse(&patch(&leaf, &not_after, &bad)),
            Err(Error::BadTime)
        );
    }

    /// The encoded notBefore (0) or notAfter (1) of a certificate.
    fn cert_time_bytes(der: &[u8], which: usize) -> Vec<u8> {
        let pos = der
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == &[der::UTC_TIME, 13])
            .map(|(i, _)| i)
            .nth(which)
            .unwrap();
        der[pos..pos + 15].to_vec()
    }

    #[test]
    fn a_summary_cuts_names_longer_than_its_capacity() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        let fits = "y".repeat(MAX_NAME_LEN);
        let name = Name {
            der: &[],
            common_name: Some(&long),
            organization: Some(&fits),
        };
        let summary = summarize_name(&name);
        assert_eq!(summary.common_name.unwrap().as_str(), &long[..MAX_NAME_LEN]);
        assert_eq!(summary.organization.unwrap().as_str(), fits);
    }

    #[test]
    fn summary_survives_postcard() {
        let leaf = read_pem("inspection-leaf");
        let summary = summarize(&Certificate::parse(&leaf).unwrap());
        let mut buf = [0u8; 512];
        let bytes = postcard::to_slice(&summary, &mut buf).unwrap();
        assert_eq!(
            postcard::from_bytes::<CertificateSummary>(bytes).unwrap(),
            summary
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(cert) = Certificate::parse(&data) {
                let _ = summarize(&cert);
                let _ = cert.dns_names().count();
            }
        }

        #[test]
        fn mutated_certificates_never_panic(
            edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..8),
            cut in proptest::num::usize::ANY,
        ) {
            let mut der = read_pem("genuine-leaf");
            for (at, byte) in edits {
                let i = at % der.len();
                der[i] = byte;
            }
            der.truncate(cut % (der.len() + 1));
            if let Ok(cert) = Certificate::parse(&der) {
                let _ = summarize(&cert);
                let _ = cert.covers_host("outlook.office365.com");
            }
        }
    }
}
