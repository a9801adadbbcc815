//! The simulated internet's geography and address plan: Microsoft's front doors, the recursive
//! resolvers, the Teams relay, the proxy, the web endpoints and the collector, each with a fixed
//! documentation address (IPv4 and IPv6) and a place on the map.
//!
//! Everything here is the same in every lab, so scenario files can name peers (`frontdoor:LHR`,
//! `resolver:london`) and the collector can judge distances from the coordinates.
//!
//! | range | what |
//! | --- | --- |
//! | 192.0.2.8k/29, 2001:db8:2:k::/64 | office k's WAN link: internet side .1, office side .2 |
//! | 198.51.100.1 | the authoritative DNS server (knot) for every Microsoft-like zone |
//! | 198.51.100.10-16 | front doors LHR AMS DUB FRA ORD IAD SIN (Exchange, SharePoint, Teams "worldaz") |
//! | 198.51.100.40 | the Teams anycast relay (`world.tr.teams.microsoft.com`), coturn |
//! | 198.51.100.53-59 | recursive resolvers (unbound) as offices see them |
//! | 198.51.100.153-159 | the same resolvers' sending addresses, as Microsoft's GeoDNS sees them |
//! | 203.0.113.9/30, .10 | the collector's link; the collector is .10 |
//! | 203.0.113.31 | the explicit proxy (squid): 3128 open, 3129 with 407 authentication |
//! | 203.0.113.43 | a web endpoint answering 403 from a proxy (squid) |
//! | 203.0.113.80 | a web endpoint answering 200, with files for download tests |
//! | 203.0.113.100+k | head-office egress of backhauled office k (source NAT) |
//!
//! Every IPv4 address a.b.c.X has the IPv6 twin 2001:db8:(100|113)::X written with the same digits
//! (so 198.51.100.53 is 2001:db8:100::53).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A place: what the collector compares to judge "near" and "far".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub city: String,
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
}

impl Location {
    pub fn new(city: &str, lat: f64, lon: f64) -> Location {
        Location {
            city: city.to_owned(),
            lat,
            lon,
        }
    }

    /// Great-circle distance in km (spherical Earth, mean radius).
    pub fn distance_km(&self, other: &Location) -> f64 {
        let (la1, lo1) = (self.lat.to_radians(), self.lon.to_radians());
        let (la2, lo2) = (other.lat.to_radians(), other.lon.to_radians());
        let h = ((la2 - la1) / 2.0).sin().powi(2)
            + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
        2.0 * 6371.0088 * h.sqrt().asin()
    }
}

/// The round-trip time the scenarios give a path of this length: light in fibre covers 200 km per
/// ms, real routes are about 1.4 times the great circle, and a millisecond goes to the access line.
/// Scenario files write the rounded result down; this is how they were computed.
pub fn round_trip_ms(a: &Location, b: &Location) -> f64 {
    2.0 * (1.0 + a.distance_km(b) / 140.0)
}

/// One of Microsoft's service front doors (an Azure Front Door / ms-acdc edge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrontDoor {
    /// IATA code, as in `LHR-efz.ms-acdc.office.com`.
    pub code: &'static str,
    pub city: &'static str,
    /// Where the airport is: Microsoft names front doors after the nearest airport.
    pub lat: f64,
    pub lon: f64,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl FrontDoor {
    pub fn location(&self) -> Location {
        Location::new(self.city, self.lat, self.lon)
    }

    /// The Exchange front-door name, e.g. `LHR-efz.ms-acdc.office.com`.
    pub fn exchange_name(&self) -> String {
        format!("{}-efz.ms-acdc.office.com", self.code)
    }

    /// The SharePoint edge name, e.g. `dual-spo-0010.spo-msedge.net`.
    pub fn sharepoint_name(&self) -> String {
        format!("dual-spo-{:04}.spo-msedge.net", self.v4.octets()[3])
    }

    /// The regional ("worldaz") Teams relay name, e.g. `a-tr-lhr-01.tr.teams.microsoft.com`.
    pub fn teams_name(&self) -> String {
        format!(
            "a-tr-{}-01.tr.teams.microsoft.com",
            self.code.to_ascii_lowercase()
        )
    }

    pub fn addrs(&self) -> [IpAddr; 2] {
        [self.v4.into(), self.v6.into()]
    }
}

const fn fd(code: &'static str, city: &'static str, lat: f64, lon: f64, x: u8) -> FrontDoor {
    FrontDoor {
        code,
        city,
        lat,
        lon,
        v4: Ipv4Addr::new(198, 51, 100, x),
        v6: v6_twin(0x100, x as u16),
    }
}

/// The front doors, near and far from the European offices.
pub const FRONT_DOORS: &[FrontDoor] = &[
    fd("LHR", "London", 51.4700, -0.4543, 10),
    fd("AMS", "Amsterdam", 52.3105, 4.7683, 11),
    fd("DUB", "Dublin", 53.4213, -6.2701, 12),
    fd("FRA", "Frankfurt", 50.0379, 8.5622, 13),
    fd("ORD", "Chicago", 41.9742, -87.9073, 14),
    fd("IAD", "Washington", 38.9531, -77.4565, 15),
    fd("SIN", "Singapore", 1.3644, 103.9915, 16),
];

/// The front door a GeoDNS answer falls back to for resolvers it does not know.
pub const DEFAULT_FRONT_DOOR: &str = "LHR";

pub fn front_door(code: &str) -> Option<&'static FrontDoor> {
    FRONT_DOORS
        .iter()
        .find(|f| f.code.eq_ignore_ascii_case(code))
}

/// A recursive resolver (an ISP's, a company's or a public one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolver {
    /// How scenario files name it.
    pub name: &'static str,
    pub city: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Where offices send queries.
    pub listen_v4: Ipv4Addr,
    pub listen_v6: Ipv6Addr,
    /// Where its queries to the authoritative server come from: what whoami names answer and what
    /// Microsoft's GeoDNS decides by.
    pub egress_v4: Ipv4Addr,
    pub egress_v6: Ipv6Addr,
    /// The front door Microsoft's GeoDNS hands this resolver's clients.
    pub geo: &'static str,
}

impl Resolver {
    pub fn location(&self) -> Location {
        Location::new(self.city, self.lat, self.lon)
    }

    pub fn listen(&self) -> [IpAddr; 2] {
        [self.listen_v4.into(), self.listen_v6.into()]
    }

    pub fn egress(&self) -> [IpAddr; 2] {
        [self.egress_v4.into(), self.egress_v6.into()]
    }
}

const fn resolver(
    name: &'static str,
    city: &'static str,
    lat: f64,
    lon: f64,
    x: u8,
    geo: &'static str,
) -> Resolver {
    Resolver {
        name,
        city,
        lat,
        lon,
        listen_v4: Ipv4Addr::new(198, 51, 100, x),
        listen_v6: v6_twin(0x100, x as u16),
        egress_v4: Ipv4Addr::new(198, 51, 100, x + 100),
        egress_v6: v6_twin(0x100, x as u16 + 100),
        geo,
    }
}

/// The resolvers. `dublin-misgeo` sits in Dublin but Microsoft's geolocation places its addresses in
/// the United States (a stale registration), so its clients get the Washington front door.
pub const RESOLVERS: &[Resolver] = &[
    resolver("london", "London", 51.5072, -0.1276, 53, "LHR"),
    resolver("amsterdam", "Amsterdam", 52.3676, 4.9041, 54, "AMS"),
    resolver("dublin", "Dublin", 53.3498, -6.2603, 55, "DUB"),
    resolver("dublin-misgeo", "Dublin", 53.3498, -6.2603, 56, "IAD"),
    resolver("chicago", "Chicago", 41.8781, -87.6298, 57, "ORD"),
    resolver("singapore", "Singapore", 1.3521, 103.8198, 58, "SIN"),
    resolver("frankfurt", "Frankfurt", 50.1109, 8.6821, 59, "FRA"),
];

pub fn resolver_named(name: &str) -> Option<&'static Resolver> {
    RESOLVERS.iter().find(|r| r.name == name)
}

/// The resolver the proxy uses: the proxy sits in London.
pub const PROXY_RESOLVER: &str = "london";

/// The authoritative server for every Microsoft-like zone.
pub const AUTHORITATIVE_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const AUTHORITATIVE_V6: Ipv6Addr = v6_twin(0x100, 1);
/// The Teams anycast relay: every office reaches the relay nearest its egress at this address.
pub const TEAMS_ANYCAST_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 40);
pub const TEAMS_ANYCAST_V6: Ipv6Addr = v6_twin(0x100, 40);
/// STUN/TURN ports Teams media uses (coturn answers on all four).
pub const TEAMS_UDP_PORTS: [u16; 4] = [3478, 3479, 3480, 3481];
/// The explicit proxy.
pub const PROXY_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 31);
pub const PROXY_V6: Ipv6Addr = v6_twin(0x113, 31);
pub const PROXY_OPEN_PORT: u16 = 3128;
pub const PROXY_AUTH_PORT: u16 = 3129;
/// The only credentials the authenticating proxy accepts.
pub const PROXY_USER: &str = "alice";
pub const PROXY_PASSWORD: &str = "wonderland";
/// A web endpoint whose every answer is a proxy's 403 (`Server: squid/...`).
pub const WEB_FORBIDDEN_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 43);
pub const WEB_FORBIDDEN_V6: Ipv6Addr = v6_twin(0x113, 43);
/// A web endpoint answering 200, with `/download/{1,10,100}MB.bin` (10^6 bytes per MB).
pub const WEB_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 80);
pub const WEB_V6: Ipv6Addr = v6_twin(0x113, 80);
/// Download files every web endpoint and front door serves, and their sizes.
pub const DOWNLOADS: [(&str, u64); 3] = [
    ("/download/1MB.bin", 1_000_000),
    ("/download/10MB.bin", 10_000_000),
    ("/download/100MB.bin", 100_000_000),
];
/// The collector, in its own namespace behind a plain link from the internet.
pub const COLLECTOR_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const COLLECTOR_V6: Ipv6Addr = v6_twin(0x113, 10);
/// The collector's data centre.
pub fn collector_location() -> Location {
    Location::new("Amsterdam", 52.3676, 4.9041)
}
/// The SharePoint tenant every lab serves (`contoso.sharepoint.com`, `contoso-my.sharepoint.com`).
pub const TENANT: &str = "contoso";
/// Names the filtering middlebox refuses (TLS by SNI, HTTP by Host): `*.sharepoint.com`.
pub const FILTERED_SUFFIX: &str = ".sharepoint.com";

/// Offices per lab: the WAN links are /29s of 192.0.2.0/24.
pub const MAX_OFFICES: usize = 32;

/// Office `k`'s WAN link: (internet side, office side) for IPv4 and IPv6, with prefix lengths 29 and 64.
pub fn office_link(k: usize) -> ((Ipv4Addr, Ipv4Addr), (Ipv6Addr, Ipv6Addr)) {
    let base = (k as u8).wrapping_mul(8);
    let net6 = |host: u16| Ipv6Addr::new(0x2001, 0xdb8, 2, k as u16, 0, 0, 0, host);
    (
        (
            Ipv4Addr::new(192, 0, 2, base + 1),
            Ipv4Addr::new(192, 0, 2, base + 2),
        ),
        (net6(1), net6(2)),
    )
}

/// The head-office egress address that backhauled office `k` is translated to.
pub fn hq_egress(k: usize) -> (Ipv4Addr, Ipv6Addr) {
    let x = 100 + k as u8;
    (Ipv4Addr::new(203, 0, 113, x), v6_twin(0x113, u16::from(x)))
}

/// 2001:db8:`group`::`x`, where `x` is written with the IPv4 octet's decimal digits read as hex.
const fn v6_twin(group: u16, x: u16) -> Ipv6Addr {
    let hexlike = (x / 100) * 0x100 + (x / 10 % 10) * 0x10 + x % 10;
    Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, hexlike)
}

/// The addresses a scenario rule's `to` names: `frontdoor:LHR`, `resolver:london`, `teams`, `proxy`,
/// `web`, `collector`, `dns`, or `any` (0.0.0.0/0 and ::/0). Host prefixes, IPv4 and IPv6.
pub fn target_prefixes(name: &str) -> Option<Vec<String>> {
    let hosts = |addrs: &[IpAddr]| {
        addrs
            .iter()
            .map(|a| match a {
                IpAddr::V4(a) => format!("{a}/32"),
                IpAddr::V6(a) => format!("{a}/128"),
            })
            .collect::<Vec<_>>()
    };
    if let Some(code) = name.strip_prefix("frontdoor:") {
        return front_door(code).map(|f| hosts(&f.addrs()));
    }
    if let Some(r) = name.strip_prefix("resolver:") {
        return resolver_named(r).map(|r| hosts(&r.listen()));
    }
    Some(match name {
        "teams" => hosts(&[TEAMS_ANYCAST_V4.into(), TEAMS_ANYCAST_V6.into()]),
        "proxy" => hosts(&[PROXY_V4.into(), PROXY_V6.into()]),
        "web" => hosts(&[
            WEB_V4.into(),
            WEB_V6.into(),
            WEB_FORBIDDEN_V4.into(),
            WEB_FORBIDDEN_V6.into(),
        ]),
        "collector" => hosts(&[COLLECTOR_V4.into(), COLLECTOR_V6.into()]),
        "dns" => hosts(&[AUTHORITATIVE_V4.into(), AUTHORITATIVE_V6.into()]),
        "any" => vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()],
        _ => return None,
    })
}

/// Every address the internet namespace answers on (its loopback carries them all).
pub fn internet_hosts() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = vec![
        AUTHORITATIVE_V4.into(),
        AUTHORITATIVE_V6.into(),
        TEAMS_ANYCAST_V4.into(),
        TEAMS_ANYCAST_V6.into(),
        PROXY_V4.into(),
        PROXY_V6.into(),
        WEB_FORBIDDEN_V4.into(),
        WEB_FORBIDDEN_V6.into(),
        WEB_V4.into(),
        WEB_V6.into(),
    ];
    for f in FRONT_DOORS {
        v.extend(f.addrs());
    }
    for r in RESOLVERS {
        v.extend(r.listen());
        v.extend(r.egress());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_twins_read_like_their_ipv4_addresses() {
        assert_eq!(
            resolver_named("london").unwrap().listen_v6.to_string(),
            "2001:db8:100::53"
        );
        assert_eq!(
            resolver_named("london").unwrap().egress_v6.to_string(),
            "2001:db8:100::153"
        );
        assert_eq!(PROXY_V6.to_string(), "2001:db8:113::31");
        assert_eq!(office_link(3).1 .1.to_string(), "2001:db8:2:3::2");
        assert_eq!(office_link(3).0 .1.to_string(), "192.0.2.26");
    }

    #[test]
    fn every_address_is_unique_and_documentation_only() {
        let hosts = internet_hosts();
        for (i, a) in hosts.iter().enumerate() {
            assert!(!hosts[i + 1..].contains(a), "{a} appears twice");
            let doc = match a {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    matches!(
                        (o[0], o[1], o[2]),
                        (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
                    )
                }
                IpAddr::V6(a) => a.segments()[0] == 0x2001 && a.segments()[1] == 0xdb8,
            };
            assert!(doc, "{a} is not a documentation address");
        }
        // Backhaul egress addresses stay clear of the fixed hosts.
        let (v4, v6) = hq_egress(MAX_OFFICES - 1);
        assert!(!hosts.contains(&v4.into()) && !hosts.contains(&v6.into()));
    }

    #[test]
    fn geodns_maps_each_resolver_to_a_real_front_door() {
        for r in RESOLVERS {
            let f = front_door(r.geo).unwrap_or_else(|| panic!("{} maps to {}", r.name, r.geo));
            // Only the deliberately misgeolocated resolver is sent far away.
            let far = r.location().distance_km(&f.location()) > 3000.0;
            assert_eq!(far, r.name == "dublin-misgeo", "{} -> {}", r.name, f.code);
        }
    }

    #[test]
    fn distances_and_round_trips_fit_the_map() {
        let london = Location::new("London", 51.5072, -0.1276);
        let chicago = front_door("ORD").unwrap().location();
        let km = london.distance_km(&chicago);
        assert!((6300.0..6400.0).contains(&km), "{km}");
        assert_eq!(round_trip_ms(&london, &chicago).round(), 93.0);
        assert!(round_trip_ms(&london, &front_door("LHR").unwrap().location()) < 3.0);
    }
}
