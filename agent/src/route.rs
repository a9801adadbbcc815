//! Routing lookups for the split-tunnel check: which interface, gateway and source address the kernel
//! picks for a destination (what `ip route get` prints), what kind of interface that is (a VPN tunnel or
//! not), and which interfaces carry a default route (the uplinks of a multi-WAN router).
//!
//! Microsoft asks that Optimize traffic leave the office directly, not through a VPN to a head office.
//! [`split_tunnel`] asks the kernel about one address in each Optimize prefix and flags the prefixes whose
//! route goes into a tunnel interface.
//!
//! The rtnetlink requests are written by hand (the section at the end, about 400 formatted lines: one
//! RTM_GETROUTE, one RTM_GETLINK, a route dump and their parsers) rather than pulled from a netlink crate,
//! because the agent runs from a router's flash.
//! Kernel ABI constants are spelled out here instead of taken from libc, which lacks some of them on musl.
//! Lookups run in the network namespace of the calling thread and send nothing onto the network.

use crate::endpoints::{EndpointSet, IpNet};
use o365probe_core::wire::endpoint::Category;
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// A failed routing lookup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The netlink socket could not be opened or used.
    #[error("rtnetlink: {0}")]
    Netlink(#[source] io::Error),
    /// The kernel refused the lookup; for a route lookup this is usually "no route" (ENETUNREACH), or
    /// the errno of an `unreachable`, `prohibit` or `blackhole` route.
    #[error("{what}: {}", io::Error::from_raw_os_error(*.errno))]
    Kernel {
        /// What was asked.
        what: String,
        /// The kernel's errno.
        errno: i32,
    },
    /// The route exists but does not forward: `blackhole`, `unreachable`, `prohibit`, `throw`.
    #[error("{destination} is routed to a {kind} route")]
    NotForwarded {
        /// The destination looked up.
        destination: IpAddr,
        /// The route type's name.
        kind: &'static str,
    },
    /// The kernel's answer did not parse or said nothing usable.
    #[error("rtnetlink: unexpected answer ({0})")]
    Malformed(&'static str),
    /// No interface has this name.
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
}

impl RouteError {
    /// Whether the kernel simply has no route for the destination (an IPv4-only office asked about an
    /// IPv6 prefix, for example), as opposed to a lookup that went wrong.
    pub fn is_no_route(&self) -> bool {
        matches!(self, Self::Kernel { errno, .. } if *errno == libc::ENETUNREACH || *errno == libc::EHOSTUNREACH)
    }
}

/// A network interface, as rtnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface index.
    pub index: u32,
    /// The name (`eth0`, `pppoe-wan`, `wg0`).
    pub name: String,
    /// The driver's link kind (IFLA_INFO_KIND: `veth`, `wireguard`, `tun`, `gre` ...), if it has one.
    pub kind: Option<String>,
    /// The hardware type (ARPHRD_*: 1 Ethernet, 512 PPP, 65534 none).
    pub link_type: u16,
    /// IFF_POINTOPOINT: no link-layer neighbours, only a peer.
    pub point_to_point: bool,
    /// IFF_UP: administratively up.
    pub up: bool,
}

/// A kind of VPN tunnel interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// WireGuard.
    WireGuard,
    /// A TUN/TAP device: OpenVPN, most user-space VPN clients.
    Tun,
    /// OpenVPN's kernel data channel (ovpn, ovpn-dco).
    OpenVpn,
    /// IPsec: a `vti`/`vti6` or `xfrm` interface.
    Ipsec,
    /// IP-in-IP, SIT, ip6tnl.
    IpInIp,
    /// GRE (gre, gretap, ip6gre, ip6gretap, erspan).
    Gre,
    /// A PPP interface whose name says it carries a VPN (L2TP or PPTP: OpenWrt's `l2tp-*`, `pptp-*`).
    PppVpn,
}

impl Tunnel {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::WireGuard => "wireguard",
            Self::Tun => "tun",
            Self::OpenVpn => "openvpn",
            Self::Ipsec => "ipsec",
            Self::IpInIp => "ipip",
            Self::Gre => "gre",
            Self::PppVpn => "ppp-vpn",
        }
    }
}

impl fmt::Display for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_PPP: u16 = 512;
const ARPHRD_TUNNEL: u16 = 768;
const ARPHRD_TUNNEL6: u16 = 769;
const ARPHRD_SIT: u16 = 776;
const ARPHRD_IPGRE: u16 = 778;
const ARPHRD_IP6GRE: u16 = 823;
const ARPHRD_NONE: u16 = 0xfffe;

impl Interface {
    fn named_like_vpn(&self, words: &[&str]) -> bool {
        let name = self.name.to_ascii_lowercase();
        words.iter().any(|w| name.contains(w))
    }

    /// The kind of VPN tunnel this interface is, if it is one.
    ///
    /// The driver's link kind decides when there is one. PPP is the awkward case: PPPoE is the ordinary
    /// DSL uplink on OpenWrt (`pppoe-wan`) and the kernel does not say what a PPP unit runs over, so PPP
    /// counts as a tunnel only when its name says L2TP or PPTP. A kind-less point-to-point interface
    /// without a link layer (ARPHRD_NONE: a TUN device on an old kernel) counts as a tunnel.
    pub fn tunnel(&self) -> Option<Tunnel> {
        if let Some(kind) = self.kind.as_deref() {
            let tunnel = match kind {
                "wireguard" => Tunnel::WireGuard,
                // The tun driver also makes TAP devices (Ethernet frames): OpenVPN in TAP mode names
                // them tapN, but a TAP is just as often a virtual machine's or an emulated link.
                "tun"
                    if self.link_type == ARPHRD_ETHER && !self.named_like_vpn(&["tap", "vpn"]) =>
                {
                    return None
                }
                "tun" => Tunnel::Tun,
                "ovpn" | "ovpn-dco" => Tunnel::OpenVpn,
                "vti" | "vti6" | "xfrm" => Tunnel::Ipsec,
                "ipip" | "sit" | "ip6tnl" => Tunnel::IpInIp,
                "gre" | "gretap" | "ip6gre" | "ip6gretap" | "erspan" | "ip6erspan" => Tunnel::Gre,
                _ => return None,
            };
            return Some(tunnel);
        }
        match self.link_type {
            ARPHRD_PPP => self
                .named_like_vpn(&["l2tp", "pptp", "vpn"])
                .then_some(Tunnel::PppVpn),
            ARPHRD_TUNNEL | ARPHRD_TUNNEL6 | ARPHRD_SIT => Some(Tunnel::IpInIp),
            ARPHRD_IPGRE | ARPHRD_IP6GRE => Some(Tunnel::Gre),
            ARPHRD_NONE if self.point_to_point => Some(Tunnel::Tun),
            _ => None,
        }
    }
}

/// Where the kernel sends packets for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination looked up.
    pub destination: IpAddr,
    /// The outgoing interface.
    pub interface: Interface,
    /// The next hop, if the destination is not on a connected network.
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would pick (RTA_PREFSRC).
    pub source: Option<IpAddr>,
    /// The routing table the route came from (254 is `main`): policy routing shows here.
    pub table: u32,
}

impl Route {
    /// The tunnel the destination's traffic goes into, if it goes into one.
    pub fn tunnel(&self) -> Option<Tunnel> {
        self.interface.tunnel()
    }
}

/// Extra selectors for a route lookup, as `ip route get DEST from SOURCE oif DEV mark MARK` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteQuery {
    /// The source address the traffic would be sent from (an uplink's address under policy routing).
    pub source: Option<IpAddr>,
    /// The interface the traffic is bound to (SO_BINDTODEVICE).
    pub interface: Option<String>,
    /// The firewall mark the traffic would carry (mwan3 and similar steer uplinks by mark).
    pub mark: Option<u32>,
}

/// The route the kernel picks for `destination`: `ip route get DESTINATION`.
pub fn route_to(destination: IpAddr) -> Result<Route, RouteError> {
    Rtnetlink::open()?.route(destination, &RouteQuery::default())
}

/// The route for `destination` under extra selectors: `ip route get DESTINATION from … oif … mark …`.
pub fn route_with(destination: IpAddr, query: &RouteQuery) -> Result<Route, RouteError> {
    Rtnetlink::open()?.route(destination, query)
}

/// The interface with this index.
pub fn interface(index: u32) -> Result<Interface, RouteError> {
    Rtnetlink::open()?.link(index)
}

/// How one Optimize prefix is routed.
#[derive(Debug)]
pub struct PrefixRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// The address looked up for it: its first host (the address itself for a /32 or /128).
    pub probe: IpAddr,
    /// The route, or why there is none.
    pub route: Result<Route, RouteError>,
}

impl PrefixRoute {
    /// The tunnel this prefix's traffic goes into, if any: Optimize traffic that should go out locally.
    pub fn tunnel(&self) -> Option<Tunnel> {
        self.route.as_ref().ok()?.tunnel()
    }
}

/// Looks up one representative address of each prefix (its first host): which interface carries it and
/// whether that is a VPN tunnel. Pass the Optimize prefixes ([`optimize_prefixes`]) and the resolved
/// front-door addresses (as /32 or /128). A prefix without a route is reported with its error; only a
/// netlink socket that cannot be opened fails the whole check.
pub fn split_tunnel(prefixes: &[IpNet]) -> Result<Vec<PrefixRoute>, RouteError> {
    split_tunnel_with(prefixes, &RouteQuery::default())
}

/// [`split_tunnel`] for traffic with extra selectors (one uplink's source address or interface).
pub fn split_tunnel_with(
    prefixes: &[IpNet],
    query: &RouteQuery,
) -> Result<Vec<PrefixRoute>, RouteError> {
    let mut rtnl = Rtnetlink::open()?;
    Ok(prefixes
        .iter()
        .map(|&prefix| {
            let probe = first_host(prefix);
            PrefixRoute {
                prefix,
                probe,
                route: rtnl.route(probe, query),
            }
        })
        .collect())
}

/// The address that stands for a prefix: its first host, or the address itself for a single host.
pub fn first_host(net: IpNet) -> IpAddr {
    match net.addr {
        IpAddr::V4(a) if net.prefix < 32 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask) + 1))
        }
        IpAddr::V6(a) if net.prefix < 128 => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from((u128::from(a) & mask) + 1))
        }
        addr => addr,
    }
}

/// The address ranges of the Optimize endpoint sets, each once, in list order.
pub fn optimize_prefixes(sets: &[EndpointSet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for set in sets.iter().filter(|s| s.category == Category::Optimize) {
        for net in &set.ips {
            if !out.contains(net) {
                out.push(*net);
            }
        }
    }
    out
}

/// A default route: one uplink of the router (one per next hop of a multipath route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    /// IPv6 (`::/0`) rather than IPv4 (`0.0.0.0/0`).
    pub ipv6: bool,
    /// The interface.
    pub interface: Interface,
    /// The next hop, if any (a point-to-point uplink has none).
    pub gateway: Option<IpAddr>,
    /// The route's metric (lower wins within a table).
    pub metric: u32,
    /// The routing table (254 is `main`; multi-WAN setups keep one table per uplink).
    pub table: u32,
}

/// Every default route in every routing table, IPv4 then IPv6, in the kernel's order: the uplinks of a
/// multi-WAN router (and a full-tunnel VPN, whose default route is a tunnel).
pub fn uplinks() -> Result<Vec<DefaultRoute>, RouteError> {
    let mut rtnl = Rtnetlink::open()?;
    let mut found = rtnl.default_routes(libc::AF_INET as u8)?;
    found.extend(rtnl.default_routes(libc::AF_INET6 as u8)?);
    let mut out = Vec::with_capacity(found.len());
    for hop in found {
        out.push(DefaultRoute {
            ipv6: hop.ipv6,
            interface: rtnl.link(hop.index)?,
            gateway: hop.gateway,
            metric: hop.metric,
            table: hop.table,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// rtnetlink by hand (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h).

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_F_LOOKUP_TABLE: u32 = 0x1000;
const RTMSG_LEN: usize = 12;
const IFINFOMSG_LEN: usize = 16;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_MARK: u16 = 16;
const RTA_VIA: u16 = 18;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFF_POINTOPOINT: u32 = 0x10;
/// Enough for one link message with all its statistics, or a page of a route dump.
const RECV_BUF_LEN: usize = 32 * 1024;

struct Rtnetlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnetlink {
    fn open() -> Result<Self, RouteError> {
        let socket = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::RAW,
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )
        .map_err(RouteError::Netlink)?;
        // The kernel answers at once; the timeout only guards against a kernel that never does.
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(RouteError::Netlink)?;
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    /// Sends one request to the kernel (an unaddressed netlink send goes to port 0, the kernel);
    /// returns its sequence number.
    fn send(&mut self, kind: u16, flags: u16, body: &[u8]) -> Result<u32, RouteError> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(NLMSG_HDR_LEN + body.len());
        msg.extend_from_slice(&((NLMSG_HDR_LEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        self.socket.send(&msg).map_err(RouteError::Netlink)?;
        Ok(self.seq)
    }

    /// Sends a request and collects the answer's messages (type, payload): one for a plain request,
    /// all up to NLMSG_DONE for a dump. An error message becomes [`RouteError::Kernel`] about `what`.
    fn request(
        &mut self,
        kind: u16,
        flags: u16,
        body: &[u8],
        what: impl Fn() -> String,
    ) -> Result<Vec<(u16, Vec<u8>)>, RouteError> {
        let seq = self.send(kind, flags, body)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answer = Vec::new();
        loop {
            let n = match (&self.socket).read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RouteError::Netlink(e)),
            };
            let mut rest = self.buf.get(..n).unwrap_or_default();
            while rest.len() >= NLMSG_HDR_LEN {
                let len = u32_at(rest, 0) as usize;
                let msg_kind = u16_at(rest, 4);
                let msg_seq = u32_at(rest, 8);
                let Some(payload) = rest.get(NLMSG_HDR_LEN..len) else {
                    return Err(RouteError::Malformed("truncated message"));
                };
                rest = rest.get(align4(len)..).unwrap_or_default();
                if msg_seq != seq {
                    continue; // an answer to an earlier request that timed out
                }
                match msg_kind {
                    NLMSG_DONE => return Ok(answer),
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or(RouteError::Malformed("short error"))?;
                        if errno == 0 {
                            return Ok(answer); // an acknowledgement
                        }
                        return Err(RouteError::Kernel {
                            what: what(),
                            errno: -errno,
                        });
                    }
                    _ => {
                        answer.push((msg_kind, payload.to_vec()));
                        if !dump {
                            return Ok(answer);
                        }
                    }
                }
            }
        }
    }

    fn route(&mut self, destination: IpAddr, query: &RouteQuery) -> Result<Route, RouteError> {
        let (family, addr_len) = family_of(destination);
        let mut body = vec![0u8; RTMSG_LEN];
        body[0] = family;
        body[1] = (addr_len * 8) as u8;
        body[8..12].copy_from_slice(&RTM_F_LOOKUP_TABLE.to_ne_bytes());
        push_attr(&mut body, RTA_DST, &ip_bytes(destination));
        if let Some(source) = query.source {
            if family_of(source).0 == family {
                body[2] = (addr_len * 8) as u8;
                push_attr(&mut body, RTA_SRC, &ip_bytes(source));
            }
        }
        if let Some(name) = &query.interface {
            let index = index_of(name)?;
            push_attr(&mut body, RTA_OIF, &index.to_ne_bytes());
        }
        if let Some(mark) = query.mark {
            push_attr(&mut body, RTA_MARK, &mark.to_ne_bytes());
        }
        let answer = self.request(RTM_GETROUTE, 0, &body, || format!("route to {destination}"))?;
        let parsed = match answer.first() {
            Some((RTM_NEWROUTE, payload)) => parse_route(payload)?,
            _ => return Err(RouteError::Malformed("no route message")),
        };
        if parsed.kind != RTN_UNICAST && parsed.kind != RTN_LOCAL {
            return Err(RouteError::NotForwarded {
                destination,
                kind: route_kind_name(parsed.kind),
            });
        }
        let index = parsed.oif.ok_or(RouteError::Malformed("no interface"))?;
        Ok(Route {
            destination,
            interface: self.link(index)?,
            gateway: parsed.gateway,
            source: parsed.prefsrc,
            table: parsed.table,
        })
    }

    fn link(&mut self, index: u32) -> Result<Interface, RouteError> {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        match self
            .request(RTM_GETLINK, 0, &body, || format!("interface {index}"))?
            .first()
        {
            Some((RTM_NEWLINK, payload)) => parse_link(payload),
            _ => Err(RouteError::Malformed("no link message")),
        }
    }

    /// Every default route of one family, one entry per next hop.
    fn default_routes(&mut self, family: u8) -> Result<Vec<DefaultHop>, RouteError> {
        let mut body = vec![0u8; RTMSG_LEN];
        body[0] = family;
        let ipv6 = family == libc::AF_INET6 as u8;
        let mut out = Vec::new();
        for (kind, payload) in
            self.request(RTM_GETROUTE, NLM_F_DUMP, &body, || "route dump".into())?
        {
            // Only unicast routes with a zero-length destination: the defaults.
            if kind != RTM_NEWROUTE || payload.get(1) != Some(&0) {
                continue;
            }
            let r = parse_route(&payload)?;
            if r.kind != RTN_UNICAST {
                continue;
            }
            let hops = r
                .oif
                .map(|oif| (oif, r.gateway))
                .into_iter()
                .chain(r.multipath);
            for (index, gateway) in hops {
                out.push(DefaultHop {
                    ipv6,
                    index,
                    gateway,
                    metric: r.metric,
                    table: r.table,
                });
            }
        }
        Ok(out)
    }
}

struct DefaultHop {
    ipv6: bool,
    index: u32,
    gateway: Option<IpAddr>,
    metric: u32,
    table: u32,
}

#[derive(Default)]
struct ParsedRoute {
    kind: u8,
    table: u32,
    oif: Option<u32>,
    gateway: Option<IpAddr>,
    prefsrc: Option<IpAddr>,
    metric: u32,
    multipath: Vec<(u32, Option<IpAddr>)>,
}

fn parse_route(payload: &[u8]) -> Result<ParsedRoute, RouteError> {
    let head = payload
        .get(..RTMSG_LEN)
        .ok_or(RouteError::Malformed("short rtmsg"))?;
    let mut r = ParsedRoute {
        kind: head[7],
        table: u32::from(head[4]),
        ..ParsedRoute::default()
    };
    for (kind, value) in attrs(&payload[RTMSG_LEN..]) {
        match kind {
            RTA_OIF => r.oif = value.get(..4).map(|_| u32_at(value, 0)),
            RTA_GATEWAY => r.gateway = ip_from(value),
            RTA_VIA => r.gateway = via(value),
            RTA_PREFSRC => r.prefsrc = ip_from(value),
            RTA_TABLE if value.len() >= 4 => r.table = u32_at(value, 0),
            RTA_PRIORITY if value.len() >= 4 => r.metric = u32_at(value, 0),
            RTA_MULTIPATH => r.multipath = nexthops(value),
            _ => {}
        }
    }
    Ok(r)
}

/// RTA_MULTIPATH: a list of rtnexthop (len u16, flags u8, hops u8, ifindex i32) each followed by its
/// own attributes.
fn nexthops(mut value: &[u8]) -> Vec<(u32, Option<IpAddr>)> {
    let mut out = Vec::new();
    while value.len() >= 8 {
        let len = usize::from(u16_at(value, 0));
        let Some(entry) = value.get(8..len) else {
            break;
        };
        let gateway = attrs(entry).find_map(|(kind, v)| match kind {
            RTA_GATEWAY => ip_from(v),
            RTA_VIA => via(v),
            _ => None,
        });
        out.push((u32_at(value, 4), gateway));
        value = value.get(align4(len)..).unwrap_or_default();
    }
    out
}

fn parse_link(payload: &[u8]) -> Result<Interface, RouteError> {
    let head = payload
        .get(..IFINFOMSG_LEN)
        .ok_or(RouteError::Malformed("short ifinfomsg"))?;
    let flags = u32_at(head, 8);
    let mut link = Interface {
        index: u32_at(head, 4),
        name: String::new(),
        kind: None,
        link_type: u16_at(head, 2),
        point_to_point: flags & IFF_POINTOPOINT != 0,
        up: flags & IFF_UP != 0,
    };
    for (kind, value) in attrs(&payload[IFINFOMSG_LEN..]) {
        match kind {
            IFLA_IFNAME => link.name = c_string(value),
            IFLA_LINKINFO => {
                link.kind = attrs(value)
                    .find(|(k, _)| *k == IFLA_INFO_KIND)
                    .map(|(_, v)| c_string(v));
            }
            _ => {}
        }
    }
    Ok(link)
}

/// The attributes (type without the nested/byte-order flags, value) in a run of rtattr/nlattr.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16_at(data, 0));
        let kind = u16_at(data, 2) & 0x3fff;
        let value = data.get(4..len)?;
        data = data.get(align4(len)..).unwrap_or_default();
        Some((kind, value))
    })
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn family_of(ip: IpAddr) -> (u8, usize) {
    match ip {
        IpAddr::V4(_) => (libc::AF_INET as u8, 4),
        IpAddr::V6(_) => (libc::AF_INET6 as u8, 16),
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// RTA_VIA: an address family (u16) then the address (an IPv4 route with an IPv6 next hop).
fn via(b: &[u8]) -> Option<IpAddr> {
    ip_from(b.get(2..)?)
}

fn route_kind_name(kind: u8) -> &'static str {
    match kind {
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        _ => "non-unicast",
    }
}

/// The index of the interface called `name` in this network namespace.
pub fn index_of(name: &str) -> Result<u32, RouteError> {
    let c = std::ffi::CString::new(name).map_err(|_| RouteError::NoSuchInterface(name.into()))?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(RouteError::NoSuchInterface(name.into()));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_prefix_stands_for_its_first_host() {
        assert_eq!(
            first_host(net("13.107.136.0/22")),
            "13.107.136.1".parse::<IpAddr>().unwrap()
        );
        // Written with host bits set, as some lists do.
        assert_eq!(
            first_host(net("52.112.7.9/14")),
            "52.112.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            first_host(net("2603:1063::/38")),
            "2603:1063::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            first_host(net("198.51.100.10")),
            "198.51.100.10".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            first_host(net("0.0.0.0/0")),
            "0.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    fn link(name: &str, kind: Option<&str>, link_type: u16, p2p: bool) -> Interface {
        Interface {
            index: 7,
            name: name.into(),
            kind: kind.map(Into::into),
            link_type,
            point_to_point: p2p,
            up: true,
        }
    }

    #[test]
    fn tunnels_are_told_from_uplinks() {
        assert_eq!(
            link("wg0", Some("wireguard"), ARPHRD_NONE, true).tunnel(),
            Some(Tunnel::WireGuard)
        );
        assert_eq!(
            link("tun0", Some("tun"), ARPHRD_NONE, true).tunnel(),
            Some(Tunnel::Tun)
        );
        assert_eq!(
            link("ipsec0", Some("xfrm"), ARPHRD_NONE, false).tunnel(),
            Some(Tunnel::Ipsec)
        );
        assert_eq!(
            link("l2tp-vpn", None, ARPHRD_PPP, true).tunnel(),
            Some(Tunnel::PppVpn)
        );
        // The DSL uplink of an OpenWrt router is PPP too, and not a VPN.
        assert_eq!(link("pppoe-wan", None, ARPHRD_PPP, true).tunnel(), None);
        assert_eq!(link("eth0", None, 1, false).tunnel(), None);
        assert_eq!(link("br-lan", Some("bridge"), 1, false).tunnel(), None);
        assert_eq!(link("vxlan0", Some("vxlan"), 1, false).tunnel(), None);
        // A TAP device is the tun driver's too: a VPN only when it says so (OpenVPN's tapN).
        assert_eq!(
            link("wan0", Some("tun"), ARPHRD_ETHER, false).tunnel(),
            None
        );
        assert_eq!(
            link("tap0", Some("tun"), ARPHRD_ETHER, false).tunnel(),
            Some(Tunnel::Tun)
        );
    }

    #[test]
    fn multipath_next_hops_are_all_listed() {
        // Two rtnexthop entries: ifindex 3 via 192.0.2.1, ifindex 4 via 198.51.100.1.
        let mut value = Vec::new();
        for (ifindex, gw) in [(3u32, [192, 0, 2, 1]), (4, [198, 51, 100, 1])] {
            value.extend_from_slice(&16u16.to_ne_bytes());
            value.extend_from_slice(&[0, 0]);
            value.extend_from_slice(&ifindex.to_ne_bytes());
            push_attr(&mut value, RTA_GATEWAY, &gw);
        }
        assert_eq!(
            nexthops(&value),
            [
                (3, Some("192.0.2.1".parse().unwrap())),
                (4, Some("198.51.100.1".parse().unwrap()))
            ]
        );
        // A truncated list ends the walk instead of panicking.
        assert_eq!(nexthops(&value[..20]).len(), 1);
    }
}
