//! The DNS header (RFC 1035 4.1.1) as a view over a byte slice, and its opcode and rcode numbers.

use super::{Error, Result};
use crate::wire::enum_with_unknown;

/// Octets in the DNS header.
pub const HEADER_LEN: usize = field::HEADER_END;

/// The longest DNS message: its length must fit the TCP length prefix, and every offset a 16-bit count.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

mod field {
    use core::ops::Range;

    pub const ID: Range<usize> = 0..2;
    pub const FLAGS: Range<usize> = 2..4;
    pub const QDCOUNT: Range<usize> = 4..6;
    pub const ANCOUNT: Range<usize> = 6..8;
    pub const NSCOUNT: Range<usize> = 8..10;
    pub const ARCOUNT: Range<usize> = 10..12;
    pub const HEADER_END: usize = 12;
}

// Bits of the 16-bit flags word.
const QR: u16 = 0x8000;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0x7800;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const AD: u16 = 0x0020;
const CD: u16 = 0x0010;
const RCODE_MASK: u16 = 0x000F;

enum_with_unknown! {
    /// The kind of query (RFC 1035 4.1.1, RFC 1996, RFC 2136).
    pub enum Opcode(u8, "OPCODE") {
        /// A standard query.
        Query = 0 => "QUERY",
        /// A server status request.
        Status = 2 => "STATUS",
        /// A zone change notification.
        Notify = 4 => "NOTIFY",
        /// A dynamic update.
        Update = 5 => "UPDATE",
    }
}

enum_with_unknown! {
    /// The response code: 4 bits in the header, extended to 12 by EDNS (RFC 1035, RFC 6891 6.1.3).
    pub enum Rcode(u16, "RCODE") {
        /// No error.
        NoError = 0 => "NOERROR",
        /// The server could not read the query.
        FormErr = 1 => "FORMERR",
        /// The server failed (often: upstream resolution failed).
        ServFail = 2 => "SERVFAIL",
        /// The name does not exist.
        NxDomain = 3 => "NXDOMAIN",
        /// The server does not implement this kind of query.
        NotImp = 4 => "NOTIMP",
        /// The server refuses to answer (often: recursion not offered to this client).
        Refused = 5 => "REFUSED",
        /// A name exists that should not (dynamic update).
        YxDomain = 6 => "YXDOMAIN",
        /// An RRset exists that should not (dynamic update).
        YxRrset = 7 => "YXRRSET",
        /// An RRset that should exist does not (dynamic update).
        NxRrset = 8 => "NXRRSET",
        /// The server is not authoritative, or the request is not authorised.
        NotAuth = 9 => "NOTAUTH",
        /// A name is not in the zone (dynamic update).
        NotZone = 10 => "NOTZONE",
        /// The server does not implement the query's EDNS version.
        BadVers = 16 => "BADVERS",
        /// A bad or missing DNS cookie (RFC 7873).
        BadCookie = 23 => "BADCOOKIE",
    }
}

/// A read/write view of a DNS message's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length: getters panic on one shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds a whole header and is no longer than a DNS message can be; after
    /// this, no getter or setter panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::HEADER_END {
            Err(Error::Truncated)
        } else if len > MAX_MESSAGE_LEN {
            Err(Error::MessageTooLong)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The transaction id a response must echo.
    pub fn id(&self) -> u16 {
        self.u16_at(field::ID)
    }

    /// The raw 16-bit flags word.
    pub fn flags(&self) -> u16 {
        self.u16_at(field::FLAGS)
    }

    /// QR: this message is a response.
    pub fn is_response(&self) -> bool {
        self.flags() & QR != 0
    }

    /// The kind of query.
    pub fn opcode(&self) -> Opcode {
        // The mask keeps 4 bits, so the cast cannot truncate.
        Opcode::from(((self.flags() & OPCODE_MASK) >> OPCODE_SHIFT) as u8)
    }

    /// AA: the answer comes from a server authoritative for the name.
    pub fn authoritative(&self) -> bool {
        self.flags() & AA != 0
    }

    /// TC: the message was cut to fit a UDP datagram; ask again over TCP.
    pub fn truncated(&self) -> bool {
        self.flags() & TC != 0
    }

    /// RD: the client asks the server to resolve recursively.
    pub fn recursion_desired(&self) -> bool {
        self.flags() & RD != 0
    }

    /// RA: the server offers recursion.
    pub fn recursion_available(&self) -> bool {
        self.flags() & RA != 0
    }

    /// AD: the resolver validated the answer with DNSSEC (RFC 4035 3.2.3).
    pub fn authentic_data(&self) -> bool {
        self.flags() & AD != 0
    }

    /// CD: the client asks the resolver not to validate (RFC 4035 3.2.2).
    pub fn checking_disabled(&self) -> bool {
        self.flags() & CD != 0
    }

    /// The header's 4-bit rcode; an OPT record may extend it (see [`Response`](super::Response)).
    pub fn rcode(&self) -> Rcode {
        Rcode::from(self.flags() & RCODE_MASK)
    }

    /// QDCOUNT: questions in the message.
    pub fn question_count(&self) -> u16 {
        self.u16_at(field::QDCOUNT)
    }

    /// ANCOUNT: records in the answer section.
    pub fn answer_count(&self) -> u16 {
        self.u16_at(field::ANCOUNT)
    }

    /// NSCOUNT: records in the authority section.
    pub fn authority_count(&self) -> u16 {
        self.u16_at(field::NSCOUNT)
    }

    /// ARCOUNT: records in the additional section.
    pub fn additional_count(&self) -> u16 {
        self.u16_at(field::ARCOUNT)
    }

    /// The octets after the header: the sections.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_END..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    fn set_flag(&mut self, bit: u16, on: bool) {
        let flags = self.flags();
        self.set_flags(if on { flags | bit } else { flags & !bit });
    }

    /// Sets the transaction id.
    pub fn set_id(&mut self, value: u16) {
        self.set_u16_at(field::ID, value)
    }

    /// Sets the raw 16-bit flags word.
    pub fn set_flags(&mut self, value: u16) {
        self.set_u16_at(field::FLAGS, value)
    }

    /// Sets QR.
    pub fn set_response(&mut self, value: bool) {
        self.set_flag(QR, value)
    }

    /// Sets the opcode (its low 4 bits: the field is 4 bits wide).
    pub fn set_opcode(&mut self, value: Opcode) {
        let bits = (u16::from(u8::from(value)) << OPCODE_SHIFT) & OPCODE_MASK;
        self.set_flags((self.flags() & !OPCODE_MASK) | bits)
    }

    /// Sets AA.
    pub fn set_authoritative(&mut self, value: bool) {
        self.set_flag(AA, value)
    }

    /// Sets TC.
    pub fn set_truncated(&mut self, value: bool) {
        self.set_flag(TC, value)
    }

    /// Sets RD.
    pub fn set_recursion_desired(&mut self, value: bool) {
        self.set_flag(RD, value)
    }

    /// Sets RA.
    pub fn set_recursion_available(&mut self, value: bool) {
        self.set_flag(RA, value)
    }

    /// Sets AD.
    pub fn set_authentic_data(&mut self, value: bool) {
        self.set_flag(AD, value)
    }

    /// Sets CD.
    pub fn set_checking_disabled(&mut self, value: bool) {
        self.set_flag(CD, value)
    }

    /// Sets the header's 4-bit rcode (the low 4 bits of `value`; the rest goes in an OPT record).
    pub fn set_rcode(&mut self, value: Rcode) {
        let bits = u16::from(value) & RCODE_MASK;
        self.set_flags((self.flags() & !RCODE_MASK) | bits)
    }

    /// Sets QDCOUNT.
    pub fn set_question_count(&mut self, value: u16) {
        self.set_u16_at(field::QDCOUNT, value)
    }

    /// Sets ANCOUNT.
    pub fn set_answer_count(&mut self, value: u16) {
        self.set_u16_at(field::ANCOUNT, value)
    }

    /// Sets NSCOUNT.
    pub fn set_authority_count(&mut self, value: u16) {
        self.set_u16_at(field::NSCOUNT, value)
    }

    /// Sets ARCOUNT.
    pub fn set_additional_count(&mut self, value: u16) {
        self.set_u16_at(field::ARCOUNT, value)
    }

    /// The octets after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::HEADER_END..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dig's query for outlook.office365.com A, captured (tests/fixtures/dns/README.md).
    static DIG_QUERY: &[u8] = include_bytes!("../../../tests/fixtures/dns/dig_query.bin");

    #[test]
    fn reads_digs_header() {
        let p = Packet::new_checked(DIG_QUERY).unwrap();
        assert!(!p.is_response());
        assert_eq!(p.opcode(), Opcode::Query);
        assert!(p.recursion_desired());
        assert!(p.authentic_data(), "dig sets AD in queries since BIND 9.11");
        assert!(!p.truncated() && !p.authoritative() && !p.recursion_available());
        assert_eq!(p.rcode(), Rcode::NoError);
        assert_eq!(
            (p.question_count(), p.answer_count(), p.authority_count()),
            (1, 0, 0)
        );
        assert_eq!(p.additional_count(), 1, "dig sends an OPT record");
        assert_eq!(p.payload().len(), DIG_QUERY.len() - HEADER_LEN);
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut buf = [0u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_id(0xBEEF);
        p.set_response(true);
        p.set_opcode(Opcode::Notify);
        p.set_authoritative(true);
        p.set_truncated(true);
        p.set_recursion_desired(true);
        p.set_recursion_available(true);
        p.set_rcode(Rcode::BadVers); // 16: only the low 4 bits (0) fit the header
        p.set_answer_count(3);
        assert_eq!(buf, [0xBE, 0xEF, 0xA7, 0x80, 0, 0, 0, 3, 0, 0, 0, 0]);

        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_rcode(Rcode::NxDomain);
        p.set_truncated(false);
        p.set_opcode(Opcode::Query);
        assert!(
            p.is_response()
                && p.authoritative()
                && p.recursion_desired()
                && p.recursion_available()
        );
        assert!(!p.truncated());
        assert_eq!(p.opcode(), Opcode::Query);
        assert_eq!(p.rcode(), Rcode::NxDomain);
        assert_eq!(p.id(), 0xBEEF);
    }

    #[test]
    fn check_len_refuses_short_and_oversized_buffers() {
        assert_eq!(
            Packet::new_checked(&[0u8; HEADER_LEN - 1][..]),
            Err(Error::Truncated)
        );
        assert!(Packet::new_checked(&[0u8; HEADER_LEN][..]).is_ok());
        let big = [0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            Packet::new_checked(&big[..]).err(),
            Some(Error::MessageTooLong)
        );
    }

    #[test]
    fn codes_keep_unknown_values_and_print_rfc_mnemonics() {
        assert_eq!(Rcode::from(3), Rcode::NxDomain);
        assert_eq!(u16::from(Rcode::from(3841)), 3841);
        assert_eq!(Rcode::from(3841), Rcode::Unknown(3841));
        use std::string::ToString;
        assert_eq!(Rcode::NxDomain.to_string(), "NXDOMAIN");
        assert_eq!(Rcode::from(22).to_string(), "RCODE22");
        assert_eq!(Opcode::from(9).to_string(), "OPCODE9");
    }
}
