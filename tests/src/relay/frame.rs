//! Just enough Ethernet, IPv4 and IPv6 parsing to pick a rule and describe a frame in the log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;

/// What the relay knows about a frame; anything it cannot parse is simply absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FrameMeta {
    /// The innermost ethertype (after one VLAN tag); 0 if the frame is shorter than a header.
    pub ethertype: u16,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMPv6 type, to recognise neighbour discovery.
    pub icmpv6_type: Option<u8>,
}

impl FrameMeta {
    /// Frames that resolve or configure the link (ARP, IPv6 neighbour and router discovery) are
    /// passed untouched: a catch-all loss rule must degrade the path, not break address resolution.
    pub(crate) fn is_link_control(&self) -> bool {
        self.ethertype == ETHERTYPE_ARP
            || (self.proto == Some(PROTO_ICMPV6) && matches!(self.icmpv6_type, Some(133..=137)))
    }

    pub(crate) fn parse(frame: &[u8]) -> FrameMeta {
        let mut meta = FrameMeta::default();
        let Some(mut ethertype) = be16(frame, 12) else {
            return meta;
        };
        let mut l3 = 14;
        if ethertype == ETHERTYPE_VLAN {
            let Some(inner) = be16(frame, 16) else {
                return meta;
            };
            ethertype = inner;
            l3 = 18;
        }
        meta.ethertype = ethertype;
        let packet = frame.get(l3..).unwrap_or_default();
        match ethertype {
            ETHERTYPE_IPV4 => parse_ipv4(packet, &mut meta),
            ETHERTYPE_IPV6 => parse_ipv6(packet, &mut meta),
            _ => {}
        }
        meta
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn parse_ipv4(packet: &[u8], meta: &mut FrameMeta) {
    let Some(header) = packet.get(..20) else {
        return;
    };
    if header[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(header[0] & 0x0f) * 4;
    let src: [u8; 4] = [header[12], header[13], header[14], header[15]];
    let dst: [u8; 4] = [header[16], header[17], header[18], header[19]];
    meta.src = Some(IpAddr::V4(Ipv4Addr::from(src)));
    meta.dst = Some(IpAddr::V4(Ipv4Addr::from(dst)));
    let proto = header[9];
    meta.proto = Some(proto);
    // Only the first fragment carries the transport header.
    let fragment_offset = u16::from_be_bytes([header[6], header[7]]) & 0x1fff;
    if fragment_offset == 0 && ihl >= 20 {
        parse_transport(proto, packet.get(ihl..).unwrap_or_default(), meta);
    }
}

fn parse_ipv6(packet: &[u8], meta: &mut FrameMeta) {
    let Some(header) = packet.get(..40) else {
        return;
    };
    if header[0] >> 4 != 6 {
        return;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&header[8..24]);
    dst.copy_from_slice(&header[24..40]);
    meta.src = Some(IpAddr::V6(Ipv6Addr::from(src)));
    meta.dst = Some(IpAddr::V6(Ipv6Addr::from(dst)));
    let mut next = header[6];
    let mut at = 40;
    // Walk the usual extension headers; a chain longer than this is not something the lab sends.
    for _ in 0..8 {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte units beyond the first 8.
            0 | 43 | 60 => {
                let (Some(&following), Some(&len)) = (packet.get(at), packet.get(at + 1)) else {
                    meta.proto = Some(next);
                    return;
                };
                next = following;
                at += 8 + usize::from(len) * 8;
            }
            44 => {
                let (Some(&following), Some(offset)) = (packet.get(at), be16(packet, at + 2))
                else {
                    meta.proto = Some(next);
                    return;
                };
                meta.proto = Some(following);
                if offset & 0xfff8 != 0 {
                    return;
                }
                next = following;
                at += 8;
            }
            _ => break,
        }
    }
    meta.proto = Some(next);
    parse_transport(next, packet.get(at..).unwrap_or_default(), meta);
}

fn parse_transport(proto: u8, segment: &[u8], meta: &mut FrameMeta) {
    match proto {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => {
            meta.sport = be16(segment, 0);
            meta.dport = be16(segment, 2);
        }
        PROTO_ICMPV6 => meta.icmpv6_type = segment.first().copied(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn udp_over_ipv4_gives_addresses_and_ports() {
        // 198.51.100.1:40000 -> 203.0.113.10:3478, UDP, header checksum not checked.
        let mut ip = vec![
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 51, 100, 1, 203, 0, 113, 10,
        ];
        ip.extend_from_slice(&[0x9c, 0x40, 0x0d, 0x96, 0, 8, 0, 0]);
        let meta = FrameMeta::parse(&ethernet(ETHERTYPE_IPV4, &ip));
        assert_eq!(meta.dst, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(meta.src, Some("198.51.100.1".parse().unwrap()));
        assert_eq!(
            (meta.proto, meta.sport, meta.dport),
            (Some(17), Some(40000), Some(3478))
        );
        assert!(!meta.is_link_control());
    }

    #[test]
    fn neighbour_solicitation_and_arp_are_link_control_but_echo_is_not() {
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 24, 58, 255];
        ip6.extend_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&"ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets());
        let mut ns = ip6.clone();
        ns.extend_from_slice(&[135, 0, 0, 0]);
        assert!(FrameMeta::parse(&ethernet(ETHERTYPE_IPV6, &ns)).is_link_control());
        let mut echo = ip6;
        echo.extend_from_slice(&[128, 0, 0, 0]);
        let meta = FrameMeta::parse(&ethernet(ETHERTYPE_IPV6, &echo));
        assert!(!meta.is_link_control());
        assert_eq!(meta.dst, Some("ff02::1:ff00:2".parse().unwrap()));
        assert!(FrameMeta::parse(&ethernet(ETHERTYPE_ARP, &[0; 28])).is_link_control());
    }

    #[test]
    fn truncated_frames_yield_what_is_there_without_panicking() {
        let full = ethernet(ETHERTYPE_IPV4, &[0x45; 40]);
        for len in 0..full.len() {
            let _ = FrameMeta::parse(&full[..len]);
        }
        assert_eq!(FrameMeta::parse(&full[..10]), FrameMeta::default());
    }
}
