//! Domain names: the bounded [`Name`] in dotted text form, decoding from the wire with pointer checks
//! (module doc of `dns` for the rule), and encoding with compression.

use super::cursor::Writer;
use super::{Error, Result};
use crate::ascii::is_at_or_under;
use core::{fmt, str};
use heapless::Vec;

/// The longest name in wire form: length octets, labels and the root octet (RFC 1035 2.3.4).
pub const MAX_NAME_WIRE_LEN: usize = 255;
/// The longest label (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// The longest name in dotted text form without the final dot: the wire form less its first length
/// octet and the root octet.
pub const MAX_NAME_TEXT_LEN: usize = MAX_NAME_WIRE_LEN - 2;
/// The most compression pointers one name may follow. Real encoders point once per name, at an earlier
/// name that may itself end in a pointer; a few levels are usual, 32 is far beyond any real message.
pub const MAX_NAME_POINTERS: usize = 32;

/// Names offered for compression while emitting one message; names after that are written in full
/// (the message is longer, never different in meaning).
const MAX_COMPRESSION_TARGETS: usize = 64;

/// The largest offset a 14-bit compression pointer can hold.
const MAX_POINTER_TARGET: usize = 0x3FFF;

/// A domain name, decoded: labels of printable ASCII joined by dots, without the final dot (the root is
/// the empty string). At most 255 octets in wire form, labels at most 63.
///
/// Equality ignores ASCII case (RFC 4343): resolvers may echo `oUtLoOk.office365.com` for
/// `outlook.office365.com`. [`as_str`](Self::as_str) keeps the case as read.
#[derive(Clone)]
pub struct Name {
    text: [u8; MAX_NAME_TEXT_LEN],
    len: u8,
}

/// Octets a label may hold in our text form: printable ASCII except the dot that separates labels.
/// Host names need far less (RFC 952: letters, digits, hyphen); `_` and `*` appear in real zones.
fn label_byte_ok(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'.'
}

impl Name {
    /// The root name (`.`).
    pub const ROOT: Name = Name {
        text: [0; MAX_NAME_TEXT_LEN],
        len: 0,
    };

    /// Reads a name in dotted form; a final dot is allowed, and `""` or `"."` is the root.
    pub fn new(text: &str) -> Result<Name> {
        let text = text.strip_suffix('.').unwrap_or(text);
        let mut name = Name::ROOT;
        if text.is_empty() {
            return Ok(name);
        }
        let mut wire_len = 1; // the root octet
        for label in text.split('.') {
            if label.is_empty() {
                return Err(Error::EmptyLabel);
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(Error::LabelTooLong);
            }
            if !label.bytes().all(label_byte_ok) {
                return Err(Error::LabelByte);
            }
            wire_len += 1 + label.len();
            if wire_len > MAX_NAME_WIRE_LEN {
                return Err(Error::NameTooLong);
            }
        }
        name.push_text(text.as_bytes())?;
        Ok(name)
    }

    fn push_text(&mut self, bytes: &[u8]) -> Result<()> {
        let start = usize::from(self.len);
        let end = start + bytes.len();
        self.text
            .get_mut(start..end)
            .ok_or(Error::NameTooLong)?
            .copy_from_slice(bytes);
        self.len = u8::try_from(end).map_err(|_| Error::NameTooLong)?;
        Ok(())
    }

    /// Appends one label read from the wire (already checked for length).
    fn push_label(&mut self, label: &[u8]) -> Result<()> {
        if !label.iter().all(|&b| label_byte_ok(b)) {
            return Err(Error::LabelByte);
        }
        if self.len > 0 {
            self.push_text(b".")?;
        }
        self.push_text(label)
    }

    /// The name in dotted form without the final dot, letter case as read; empty for the root.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored, so this is always valid UTF-8.
        str::from_utf8(self.octets()).unwrap_or_default()
    }

    /// The text as octets (no UTF-8 check: comparisons run often while following chains).
    fn octets(&self) -> &[u8] {
        self.text.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Whether this is the root name.
    pub fn is_root(&self) -> bool {
        self.len == 0
    }

    /// The labels from the left (`LHR-efz`, `ms-acdc`, `office`, `com`); none for the root.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            rest: if self.is_root() {
                None
            } else {
                Some(self.as_str())
            },
        }
    }

    /// The leftmost label, e.g. `LHR-efz` in `LHR-efz.ms-acdc.office.com`; `None` for the root.
    pub fn first_label(&self) -> Option<&str> {
        self.labels().next()
    }

    /// Whether this name is `suffix` or lies under it, label by label, ignoring ASCII case
    /// (`LHR-efz.ms-acdc.office.com` is under `ms-acdc.office.com`, `xoffice.com` is not under `office.com`).
    pub fn is_subdomain_of(&self, suffix: &Name) -> bool {
        suffix.is_root() || is_at_or_under(self.octets(), suffix.octets())
    }

    /// Octets of this name in uncompressed wire form.
    pub fn wire_len(&self) -> usize {
        if self.is_root() {
            1
        } else {
            usize::from(self.len) + 2
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.octets().eq_ignore_ascii_case(other.octets())
    }
}

impl Eq for Name {}

impl core::hash::Hash for Name {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // Consistent with the case-insensitive `Eq`.
        for b in self.octets() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl fmt::Display for Name {
    /// The dotted form; the root prints as `.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str(".")
        } else {
            f.write_str(self.as_str())
        }
    }
}

impl str::FromStr for Name {
    type Err = Error;

    fn from_str(s: &str) -> Result<Name> {
        Name::new(s)
    }
}

impl TryFrom<&str> for Name {
    type Error = Error;

    fn try_from(s: &str) -> Result<Name> {
        Name::new(s)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> core::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> core::result::Result<Name, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a domain name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> core::result::Result<Name, E> {
                Name::new(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The labels of a [`Name`], from the left.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match rest.split_once('.') {
            Some((label, tail)) => {
                self.rest = Some(tail);
                Some(label)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Walks the name that starts at `start` in `packet`, following compression pointers, and hands each
/// label to `on_label`. Returns the offset just after the name where it starts (after its first
/// pointer, or its root octet), which is where the next field begins.
///
/// Octets at or after `limit` are out of reach (reading them is `overrun`): a name inside RDATA must
/// not run out of it. Pointers may still point anywhere below the start of their run of labels.
pub(super) fn walk_name(
    packet: &[u8],
    start: usize,
    limit: usize,
    overrun: Error,
    mut on_label: impl FnMut(&[u8]) -> Result<()>,
) -> Result<usize> {
    let data = packet.get(..limit).unwrap_or(packet);
    let mut pos = start;
    let mut run_start = start;
    let mut end = None;
    let mut wire_len = 0;
    // The runs of labels already read, as (start, end past their pointer): for telling a loop from a
    // forward pointer. Each later run starts lower, which is what makes the walk end.
    let mut runs: Vec<(usize, usize), MAX_NAME_POINTERS> = Vec::new();
    loop {
        let octet = *data.get(pos).ok_or(overrun)?;
        match octet & 0xC0 {
            0x00 if octet == 0 => {
                wire_len += 1;
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(Error::NameTooLong);
                }
                return Ok(end.unwrap_or(pos + 1));
            }
            0x00 => {
                let len = usize::from(octet);
                // Keep room for the root octet that must still follow.
                wire_len += 1 + len;
                if wire_len + 1 > MAX_NAME_WIRE_LEN {
                    return Err(Error::NameTooLong);
                }
                on_label(data.get(pos + 1..pos + 1 + len).ok_or(overrun)?)?;
                pos += 1 + len;
            }
            0xC0 => {
                let low = *data.get(pos + 1).ok_or(overrun)?;
                let target = usize::from(octet & 0x3F) << 8 | usize::from(low);
                let run = (run_start, pos + 2);
                end.get_or_insert(pos + 2);
                if target >= packet.len() {
                    return Err(Error::PointerOutOfBounds);
                }
                if core::iter::once(&run)
                    .chain(runs.iter())
                    .any(|&(s, e)| (s..e).contains(&target))
                {
                    return Err(Error::PointerLoop);
                }
                if target > pos {
                    return Err(Error::ForwardPointer);
                }
                // Not in this run and not after it: `target < run_start`, strictly backwards.
                runs.push(run).map_err(|_| Error::TooManyPointers)?;
                run_start = target;
                pos = target;
            }
            // 0b01 (RFC 6891 retired the extended label types) and 0b10 (reserved): as length octets
            // they would say 64 to 191.
            _ => return Err(Error::LabelTooLong),
        }
    }
}

/// Decodes the name at `start` (see [`walk_name`]); returns it and the offset after it.
pub(super) fn read_name(
    packet: &[u8],
    start: usize,
    limit: usize,
    overrun: Error,
) -> Result<(Name, usize)> {
    let mut name = Name::ROOT;
    let end = walk_name(packet, start, limit, overrun, |label| {
        name.push_label(label)
    })?;
    Ok((name, end))
}

/// Checks the name at `start` is well formed without decoding it; returns the offset after it.
pub(super) fn skip_name(
    packet: &[u8],
    start: usize,
    limit: usize,
    overrun: Error,
) -> Result<usize> {
    walk_name(packet, start, limit, overrun, |_| Ok(()))
}

/// Writes names into one message, pointing each at the longest earlier name it ends with (exact case:
/// the octets read back are the octets given).
pub(super) struct Compressor<'n> {
    known: Vec<(&'n str, u16), MAX_COMPRESSION_TARGETS>,
}

impl<'n> Compressor<'n> {
    pub(super) fn new() -> Self {
        Compressor { known: Vec::new() }
    }

    pub(super) fn emit(&mut self, w: &mut Writer<'_>, name: &'n Name) -> Result<()> {
        let mut rest = name.as_str();
        while !rest.is_empty() {
            if let Some(&(_, at)) = self.known.iter().find(|(k, _)| *k == rest) {
                return w.put_u16(0xC000 | at);
            }
            if let Ok(at) = u16::try_from(w.position()) {
                if usize::from(at) <= MAX_POINTER_TARGET {
                    // A full table only costs compression of later names, never their content.
                    let _ = self.known.push((rest, at));
                }
            }
            let (label, tail) = rest.split_once('.').unwrap_or((rest, ""));
            // Labels of a `Name` are at most 63 octets: the length fits an octet.
            w.put_u8(label.len() as u8)?;
            w.put(label.as_bytes())?;
            rest = tail;
        }
        w.put_u8(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};

    fn read(packet: &[u8], start: usize) -> Result<(String, usize)> {
        read_name(packet, start, packet.len(), Error::Truncated)
            .map(|(n, end)| (n.as_str().to_string(), end))
    }

    /// A 12-octet stand-in header, then `body`.
    fn msg(body: &[u8]) -> std::vec::Vec<u8> {
        let mut m = std::vec![0u8; 12];
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn text_form_is_validated() {
        assert_eq!(
            Name::new("LHR-efz.ms-acdc.office.com").unwrap().as_str(),
            "LHR-efz.ms-acdc.office.com"
        );
        assert_eq!(
            Name::new("outlook.office365.com.").unwrap().as_str(),
            "outlook.office365.com"
        );
        assert!(Name::new(".").unwrap().is_root());
        assert!(Name::new("").unwrap().is_root());
        assert_eq!(Name::new("_sip._tls.example").unwrap().labels().count(), 3);
        assert_eq!(Name::new("a..b").err(), Some(Error::EmptyLabel));
        assert_eq!(Name::new(".a").err(), Some(Error::EmptyLabel));
        assert_eq!(Name::new("a b.com").err(), Some(Error::LabelByte));
        assert_eq!(Name::new("é.com").err(), Some(Error::LabelByte));
        let label63 = "x".repeat(63);
        assert!(Name::new(&label63).is_ok());
        assert_eq!(Name::new(&"x".repeat(64)).err(), Some(Error::LabelTooLong));
        // 4 labels of 63 = 4 * 64 + 1 = 257 octets; 3 of 63 and one of 61 = 255 exactly.
        let too_long = [label63.as_str(); 4].join(".");
        assert_eq!(Name::new(&too_long).err(), Some(Error::NameTooLong));
        let longest = std::format!("{label63}.{label63}.{label63}.{}", "y".repeat(61));
        let name = Name::new(&longest).unwrap();
        assert_eq!(name.wire_len(), MAX_NAME_WIRE_LEN);
        assert_eq!(name.as_str().len(), MAX_NAME_TEXT_LEN);
    }

    #[test]
    fn equality_ignores_case_but_text_keeps_it() {
        let a = Name::new("OutLook.Office365.COM").unwrap();
        let b = Name::new("outlook.office365.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "OutLook.Office365.COM");
        assert_ne!(a, Name::new("outlook.office365.co").unwrap());
        use core::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        assert_eq!(h.hash_one(&a), h.hash_one(&b));
    }

    #[test]
    fn labels_suffixes_and_display() {
        let n = Name::new("LHR-efz.ms-acdc.office.com").unwrap();
        assert_eq!(
            n.labels().collect::<std::vec::Vec<_>>(),
            ["LHR-efz", "ms-acdc", "office", "com"]
        );
        assert_eq!(n.first_label(), Some("LHR-efz"));
        assert!(n.is_subdomain_of(&Name::new("MS-ACDC.office.com").unwrap()));
        assert!(n.is_subdomain_of(&n));
        assert!(n.is_subdomain_of(&Name::ROOT));
        assert!(!n.is_subdomain_of(&Name::new("acdc.office.com").unwrap()));
        assert_eq!(Name::ROOT.labels().count(), 0);
        assert_eq!(Name::ROOT.to_string(), ".");
        assert_eq!(n.to_string(), "LHR-efz.ms-acdc.office.com");
    }

    #[test]
    fn serde_uses_the_text_form_and_validates_it() {
        let n = Name::new("outlook.ms-acdc.office.com").unwrap();
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(&n, &mut buf).unwrap();
        assert_eq!(bytes[0] as usize, n.as_str().len());
        let back: Name = postcard::from_bytes(bytes).unwrap();
        assert_eq!(back.as_str(), n.as_str());
        assert!(postcard::from_bytes::<Name>(&[3, b'a', b'.', b'.']).is_err());
    }

    #[test]
    fn decompresses_suffix_pointers() {
        // 12: "office.com", 24: "outlook" -> 12.
        let m = msg(b"\x06office\x03com\x00\x07outlook\xC0\x0C");
        assert_eq!(read(&m, 12).unwrap(), ("office.com".into(), 24));
        assert_eq!(read(&m, 24).unwrap(), ("outlook.office.com".into(), 34));
    }

    #[test]
    fn hostile_pointers_each_have_their_own_error() {
        // Pointer to itself.
        assert_eq!(read(&msg(b"\xC0\x0C"), 12), Err(Error::PointerLoop));
        // Two-step loop: 12 -> 14 would be forward, so enter at 14: 14 -> 12 -> 14.
        assert_eq!(read(&msg(b"\xC0\x0E\xC0\x0C"), 14), Err(Error::PointerLoop));
        // A label, then a pointer back into that label: it would repeat forever.
        assert_eq!(read(&msg(b"\x01a\xC0\x0C"), 12), Err(Error::PointerLoop));
        // Forward pointer to a well-formed name.
        assert_eq!(
            read(&msg(b"\xC0\x0E\x01a\x00"), 12),
            Err(Error::ForwardPointer)
        );
        // Past the end.
        assert_eq!(read(&msg(b"\xC0\x40"), 12), Err(Error::PointerOutOfBounds));
        assert_eq!(read(&msg(b"\xFF\xFF"), 12), Err(Error::PointerOutOfBounds));
        // Length octet 64 (0b01 type) and 128 (0b10).
        assert_eq!(read(&msg(&[64]), 12), Err(Error::LabelTooLong));
        assert_eq!(read(&msg(&[0x80, 0]), 12), Err(Error::LabelTooLong));
        // Cut inside a label, and a pointer cut after its first octet.
        assert_eq!(read(&msg(b"\x05ab"), 12), Err(Error::Truncated));
        assert_eq!(read(&msg(b"\x01a\xC0"), 12), Err(Error::Truncated));
        assert_eq!(read(&msg(b""), 12), Err(Error::Truncated));
        // A label byte with no text form.
        assert_eq!(read(&msg(b"\x03a.b\x00"), 12), Err(Error::LabelByte));
        assert_eq!(
            skip_name(&msg(b"\x03a.b\x00"), 12, 17, Error::Truncated),
            Ok(17)
        );
    }

    #[test]
    fn overlong_names_are_refused_with_or_without_pointers() {
        // 5 labels of 50: 5 * 51 + 1 = 256 octets.
        let mut body = std::vec::Vec::new();
        for _ in 0..5 {
            body.push(50);
            body.extend_from_slice(&[b'x'; 50]);
        }
        body.push(0);
        assert_eq!(read(&msg(&body), 12), Err(Error::NameTooLong));
        // 4 labels of 50 (205 octets with root) are fine; a name at the end adding 50 more through a
        // pointer to them is not.
        let mut body = body[51..].to_vec();
        let at = 12 + body.len();
        body.push(50);
        body.extend_from_slice(&[b'y'; 50]);
        body.extend_from_slice(&[0xC0, 12]);
        let m = msg(&body);
        assert_eq!(read(&m, 12).unwrap().0.len(), 4 * 51 - 1);
        assert_eq!(read(&m, at), Err(Error::NameTooLong));
    }

    #[test]
    fn pointer_chains_are_bounded() {
        // 12: "a" root; then MAX+1 pointers, each to the one before.
        let mut body = std::vec![1, b'a', 0];
        let mut prev = 12;
        for _ in 0..=MAX_NAME_POINTERS {
            let here = 12 + body.len();
            body.extend_from_slice(&[0xC0, prev as u8]);
            prev = here;
        }
        let m = msg(&body);
        assert_eq!(read(&m, prev), Err(Error::TooManyPointers));
        // One fewer is fine.
        let one_fewer = prev - 2;
        assert_eq!(read(&m, one_fewer).unwrap().0, "a");
    }

    #[test]
    fn a_name_in_rdata_must_end_inside_it() {
        let m = msg(b"\x03foo\x03com\x00");
        assert_eq!(
            read_name(&m, 12, 20, Error::RdataLength).err(),
            Some(Error::RdataLength)
        );
        assert_eq!(read_name(&m, 12, 21, Error::RdataLength).unwrap().1, 21);
    }

    #[test]
    fn compressor_points_at_the_longest_earlier_suffix() {
        let names = [
            "outlook.office365.com",
            "outlook.ha.office365.com",
            "office365.com",
            "OFFICE365.com",
        ]
        .map(|s| Name::new(s).unwrap());
        let mut buf = [0u8; 128];
        let mut w = Writer::new(Some(&mut buf[..]));
        w.put(&[0; 12]).unwrap();
        let mut c = Compressor::new();
        let mut starts = std::vec::Vec::new();
        for n in &names {
            starts.push(w.position());
            c.emit(&mut w, n).unwrap();
        }
        let end = w.position();
        // 23 octets in full; "outlook" "ha" and a pointer; a bare pointer; "OFFICE365" and a pointer to
        // "com", because compression matches exact case.
        assert_eq!(starts, [12, 35, 48, 50]);
        assert_eq!(end, 62);
        for (n, &s) in names.iter().zip(&starts) {
            assert_eq!(read(&buf[..end], s).unwrap().0, n.as_str());
        }
    }
}
