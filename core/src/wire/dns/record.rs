//! Questions, resource records (A, AAAA, CNAME, TXT kept; others walked past) and the EDNS(0) OPT record.

use super::cursor::{Reader, Writer};
use super::name::{read_name, Compressor, Name};
use super::{Error, Result};
use crate::wire::enum_with_unknown;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use heapless::Vec;

/// The most TXT data one record may carry, in wire form (each character-string with its length
/// octet): one full 255-octet string. Whoami-style answers are a few dozen octets.
pub const MAX_TXT_LEN: usize = 256;

/// The longest character-string (its length is one octet).
const MAX_CHARACTER_STRING: usize = 255;

/// Class IN (RFC 1035 3.2.4); the only class the probes ask about.
pub(super) const CLASS_IN: u16 = 1;

/// Fixed octets after a record's owner name: type, class, TTL, RDLENGTH.
pub(super) const RECORD_FIXED_LEN: usize = 10;

/// Octets of an OPT record without options: root owner and the fixed fields.
pub(super) const OPT_LEN: usize = 1 + RECORD_FIXED_LEN;

enum_with_unknown! {
    /// A record type (RFC 1035 3.2.2 and later registrations).
    pub enum Type(u16, "TYPE") {
        /// IPv4 address.
        A = 1 => "A",
        /// Name server.
        Ns = 2 => "NS",
        /// Canonical name: this name is an alias.
        Cname = 5 => "CNAME",
        /// Start of authority.
        Soa = 6 => "SOA",
        /// Reverse pointer.
        Ptr = 12 => "PTR",
        /// Mail exchange.
        Mx = 15 => "MX",
        /// Text strings.
        Txt = 16 => "TXT",
        /// IPv6 address (RFC 3596).
        Aaaa = 28 => "AAAA",
        /// Service location (RFC 2782).
        Srv = 33 => "SRV",
        /// EDNS(0) pseudo-record (RFC 6891).
        Opt = 41 => "OPT",
        /// DNSSEC signature.
        Rrsig = 46 => "RRSIG",
        /// Service binding (RFC 9460).
        Svcb = 64 => "SVCB",
        /// HTTPS service binding (RFC 9460).
        Https = 65 => "HTTPS",
    }
}

/// The question: what was asked (class IN).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// The name asked about.
    pub name: Name,
    /// The record type asked for.
    pub qtype: Type,
}

impl Question {
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Question> {
        let name = r.name()?;
        let qtype = Type::from(r.u16()?);
        if r.u16()? != CLASS_IN {
            return Err(Error::Class);
        }
        Ok(Question { name, qtype })
    }

    pub(super) fn emit<'n>(&'n self, w: &mut Writer<'_>, c: &mut Compressor<'n>) -> Result<()> {
        c.emit(w, &self.name)?;
        w.put_u16(self.qtype.into())?;
        w.put_u16(CLASS_IN)
    }
}

/// TXT data: one or more character-strings (RFC 1035 3.3.14), kept in wire form, at most
/// [`MAX_TXT_LEN`] octets. Compared octet for octet: unlike names, TXT data is case-sensitive.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Txt {
    wire: Vec<u8, MAX_TXT_LEN>,
}

impl Txt {
    /// TXT data of one character-string.
    pub fn new(string: &[u8]) -> Result<Txt> {
        let mut txt = Txt { wire: Vec::new() };
        txt.push(string)?;
        Ok(txt)
    }

    /// Appends a character-string (at most 255 octets, and room left in [`MAX_TXT_LEN`]).
    pub fn push(&mut self, string: &[u8]) -> Result<()> {
        if string.len() > MAX_CHARACTER_STRING {
            return Err(Error::TxtTooLong);
        }
        // At most 255: fits the length octet.
        let len = string.len() as u8;
        if self.wire.len() + 1 + string.len() > MAX_TXT_LEN {
            return Err(Error::TxtTooLong);
        }
        self.wire.push(len).map_err(|_| Error::TxtTooLong)?;
        self.wire
            .extend_from_slice(string)
            .map_err(|_| Error::TxtTooLong)
    }

    /// Reads TXT RDATA: character-strings that fill it exactly.
    pub fn from_rdata(rdata: &[u8]) -> Result<Txt> {
        if rdata.len() > MAX_TXT_LEN {
            return Err(Error::TxtTooLong);
        }
        if rdata.is_empty() {
            return Err(Error::RdataLength);
        }
        let mut rest = rdata;
        while let Some((&len, tail)) = rest.split_first() {
            rest = tail.get(usize::from(len)..).ok_or(Error::RdataLength)?;
        }
        let wire = Vec::from_slice(rdata).map_err(|_| Error::TxtTooLong)?;
        Ok(Txt { wire })
    }

    /// The RDATA: each character-string after its length octet.
    pub fn rdata(&self) -> &[u8] {
        &self.wire
    }

    /// The character-strings, in order.
    pub fn strings(&self) -> TxtStrings<'_> {
        TxtStrings { rest: &self.wire }
    }
}

impl fmt::Debug for Txt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Txt")?;
        f.debug_list().entries(self.strings().map(Quoted)).finish()
    }
}

/// A character-string printed as a quoted, escaped string.
struct Quoted<'a>(&'a [u8]);

impl fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// The character-strings of a [`Txt`].
#[derive(Debug, Clone)]
pub struct TxtStrings<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for TxtStrings<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, tail) = self.rest.split_first()?;
        // A `Txt` is only ever built whole, so the string is there; stop rather than panic otherwise.
        let string = tail.get(..usize::from(len))?;
        self.rest = tail.get(usize::from(len)..).unwrap_or_default();
        Some(string)
    }
}

/// What a kept record says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// The canonical name this owner is an alias of.
    Cname(Name),
    /// Text.
    Txt(Txt),
}

impl RecordData {
    /// The record type.
    pub fn rtype(&self) -> Type {
        match self {
            Self::A(_) => Type::A,
            Self::Aaaa(_) => Type::Aaaa,
            Self::Cname(_) => Type::Cname,
            Self::Txt(_) => Type::Txt,
        }
    }
}

/// A resource record of a type this layer keeps (A, AAAA, CNAME, TXT; class IN).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The owner name.
    pub name: Name,
    /// Seconds the record may be cached, as received (RFC 2181 8 asks readers to treat values with the top
    /// bit set as 0; that is the reader's call).
    pub ttl: u32,
    /// The data.
    pub data: RecordData,
}

impl Record {
    /// The largest a kept record can be in wire form (uncompressed owner, largest RDATA).
    pub(super) const MAX_LEN: usize = super::name::MAX_NAME_WIRE_LEN
        + RECORD_FIXED_LEN
        + max(MAX_TXT_LEN, super::name::MAX_NAME_WIRE_LEN);

    pub(super) fn emit<'n>(&'n self, w: &mut Writer<'_>, c: &mut Compressor<'n>) -> Result<()> {
        c.emit(w, &self.name)?;
        w.put_u16(self.data.rtype().into())?;
        w.put_u16(CLASS_IN)?;
        w.put_u32(self.ttl)?;
        let rdlength_at = w.position();
        w.put_u16(0)?;
        match &self.data {
            RecordData::A(a) => w.put(&a.octets())?,
            RecordData::Aaaa(a) => w.put(&a.octets())?,
            RecordData::Cname(target) => c.emit(w, target)?,
            RecordData::Txt(txt) => w.put(txt.rdata())?,
        }
        // At most MAX_NAME_WIRE_LEN or MAX_TXT_LEN octets: it fits.
        let rdlength = w.position() - rdlength_at - 2;
        w.patch_u16(rdlength_at, rdlength as u16)
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// A record as it sits in the message, before its owner and RDATA are decoded.
pub(super) struct RawRecord<'p> {
    pub owner_at: usize,
    pub rtype: Type,
    pub class: u16,
    pub ttl: u32,
    pub rdata_at: usize,
    pub rdata: &'p [u8],
}

impl<'p> RawRecord<'p> {
    /// Reads one record's framing, checking its owner name and that its RDATA is in the packet.
    pub(super) fn parse(r: &mut Reader<'p>) -> Result<RawRecord<'p>> {
        let owner_at = r.position();
        r.skip_name()?;
        let rtype = Type::from(r.u16()?);
        let class = r.u16()?;
        let ttl = r.u32()?;
        let rdlength = usize::from(r.u16()?);
        let rdata_at = r.position();
        let rdata = r.take(rdlength).map_err(|_| Error::RdataTruncated)?;
        Ok(RawRecord {
            owner_at,
            rtype,
            class,
            ttl,
            rdata_at,
            rdata,
        })
    }

    /// Decodes a record this layer keeps; `None` for other types and classes.
    pub(super) fn decode(&self, packet: &[u8]) -> Result<Option<Record>> {
        if self.class != CLASS_IN {
            return Ok(None);
        }
        let data = match self.rtype {
            Type::A => RecordData::A(Ipv4Addr::from(
                <[u8; 4]>::try_from(self.rdata).map_err(|_| Error::RdataLength)?,
            )),
            Type::Aaaa => RecordData::Aaaa(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.rdata).map_err(|_| Error::RdataLength)?,
            )),
            Type::Cname => {
                let end = self.rdata_at + self.rdata.len();
                let (target, after) = read_name(packet, self.rdata_at, end, Error::RdataLength)?;
                if after != end {
                    return Err(Error::RdataLength);
                }
                RecordData::Cname(target)
            }
            Type::Txt => RecordData::Txt(Txt::from_rdata(self.rdata)?),
            _ => return Ok(None),
        };
        let (name, _) = read_name(packet, self.owner_at, packet.len(), Error::Truncated)?;
        Ok(Some(Record {
            name,
            ttl: self.ttl,
            data,
        }))
    }

    /// Reads an OPT record (RFC 6891 6.1.2): the requester's UDP payload size and the upper 8 bits of the
    /// rcode. The version, the DO bit and the options are read past (options must fill the RDATA).
    pub(super) fn opt(&self, packet: &[u8]) -> Result<(Edns, u8)> {
        let (owner, _) = read_name(packet, self.owner_at, packet.len(), Error::Truncated).map_err(
            |e| match e {
                Error::LabelByte => Error::OptName,
                other => other,
            },
        )?;
        if !owner.is_root() {
            return Err(Error::OptName);
        }
        let mut rest = self.rdata;
        while !rest.is_empty() {
            let len = match rest {
                [_, _, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
                _ => return Err(Error::RdataLength),
            };
            rest = rest.get(4 + len..).ok_or(Error::RdataLength)?;
        }
        let extended_rcode = self.ttl.to_be_bytes()[0];
        Ok((
            Edns {
                udp_payload_size: self.class,
            },
            extended_rcode,
        ))
    }
}

/// Reads `count` records, handing each to `each`. A truncated response (`cut_ok`) may end at a record
/// boundary before `count` is met: then this stops and returns `false`.
pub(super) fn read_records<'p>(
    r: &mut Reader<'p>,
    count: u16,
    cut_ok: bool,
    mut each: impl FnMut(&RawRecord<'p>) -> Result<()>,
) -> Result<bool> {
    for _ in 0..count {
        if r.at_end() {
            return if cut_ok {
                Ok(false)
            } else {
                Err(Error::MissingRecords)
            };
        }
        each(&RawRecord::parse(r)?)?;
    }
    Ok(true)
}

/// Reads the additional section: the OPT record if there is one (at most one), others walked past.
pub(super) fn read_additional(
    r: &mut Reader<'_>,
    count: u16,
    cut_ok: bool,
) -> Result<Option<(Edns, u8)>> {
    let packet = r.packet();
    let mut opt = None;
    read_records(r, count, cut_ok, |raw| {
        if raw.rtype == Type::Opt {
            if opt.is_some() {
                return Err(Error::DuplicateOpt);
            }
            opt = Some(raw.opt(packet)?);
        }
        Ok(())
    })?;
    Ok(opt)
}

/// Walks records that are only checked (authority; answers of a query): an OPT there is an error.
pub(super) fn skip_records(r: &mut Reader<'_>, count: u16, cut_ok: bool) -> Result<bool> {
    read_records(r, count, cut_ok, |raw| {
        if raw.rtype == Type::Opt {
            Err(Error::MisplacedOpt)
        } else {
            Ok(())
        }
    })
}

/// EDNS(0) (RFC 6891): what an OPT record says that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edns {
    /// The largest UDP payload the sender can receive.
    pub udp_payload_size: u16,
}

impl Edns {
    /// 1232 octets: fits an IPv6 minimum-MTU packet without fragmentation (DNS Flag Day 2020).
    pub const DEFAULT: Edns = Edns {
        udp_payload_size: 1232,
    };

    /// Writes the OPT record: root owner, version 0, DO clear, no options.
    pub(super) fn emit(&self, w: &mut Writer<'_>, extended_rcode: u8) -> Result<()> {
        w.put_u8(0)?;
        w.put_u16(Type::Opt.into())?;
        w.put_u16(self.udp_payload_size)?;
        w.put_u32(u32::from(extended_rcode) << 24)?;
        w.put_u16(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_strings_are_bounded_and_read_back_in_order() {
        let mut txt = Txt::new(b"ns").unwrap();
        txt.push(b"192.0.2.1").unwrap();
        txt.push(b"").unwrap();
        assert_eq!(
            txt.strings().collect::<std::vec::Vec<_>>(),
            [&b"ns"[..], b"192.0.2.1", b""]
        );
        assert_eq!(txt.rdata(), b"\x02ns\x09192.0.2.1\x00");
        assert_eq!(Txt::from_rdata(txt.rdata()), Ok(txt.clone()));
        assert_eq!(std::format!("{txt:?}"), r#"Txt["ns", "192.0.2.1", ""]"#);

        assert_eq!(Txt::new(&[b'x'; 256]).err(), Some(Error::TxtTooLong));
        let mut full = Txt::new(&[b'x'; 255]).unwrap();
        assert_eq!(full.rdata().len(), MAX_TXT_LEN);
        assert_eq!(full.push(b""), Err(Error::TxtTooLong));
        assert_eq!(
            Txt::from_rdata(&[0; MAX_TXT_LEN + 1]).err(),
            Some(Error::TxtTooLong)
        );
        assert_eq!(Txt::from_rdata(b"").err(), Some(Error::RdataLength));
        assert_eq!(Txt::from_rdata(b"\x05abc").err(), Some(Error::RdataLength));
    }

    #[test]
    fn types_print_rfc3597_names_for_unknown_values() {
        use std::string::ToString;
        assert_eq!(Type::from(28), Type::Aaaa);
        assert_eq!(Type::Aaaa.to_string(), "AAAA");
        assert_eq!(Type::from(65280).to_string(), "TYPE65280");
        assert_eq!(u16::from(Type::from(65280)), 65280);
    }
}
