//! Where a front door, a resolver or an office is: IATA location codes, the front-door code in a CNAME
//! chain, great-circle distance, and Microsoft's "too far" distances.
//!
//! The known codes come from core/data/airports.csv (airportsdata, every IATA-coded airport plus the
//! multi-airport city codes; provenance in core/data/README.md), generated into a sorted table by
//! `cargo xtask gen`.

use super::location_table as table;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG R1 = (2a + b) / 3 of WGS 84), in km: the radius for which a spherical
/// great-circle distance errs least on average (at most about 0.5 % against the ellipsoid).
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// How many location codes the table knows.
pub const KNOWN_LOCATIONS: usize = table::LEN;

/// The DNS zone whose host names carry a front-door location code (`LHR-efz.ms-acdc.office.com`).
pub const FRONT_DOOR_ZONE: &str = "ms-acdc.office.com";

/// An IATA three-letter location code, upper case (`LHR`). It need not be in the table; see
/// [`LocationCode::location`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocationCode([u8; 3]);

impl LocationCode {
    /// Three ASCII letters in any case; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let b: [u8; 3] = s.as_bytes().try_into().ok()?;
        if b.iter().all(u8::is_ascii_alphabetic) {
            Some(Self(b.map(|c| c.to_ascii_uppercase())))
        } else {
            None
        }
    }

    /// The code, e.g. `"LHR"`.
    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII letters.
        core::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// The known location with this code.
    pub fn location(self) -> Option<Location> {
        let packed = self.packed()?;
        table::CODES.binary_search(&packed).ok().map(row)
    }

    /// Whether the table knows this code.
    pub fn is_known(self) -> bool {
        self.location().is_some()
    }

    /// Base-26 packing, as the generated table stores codes; `None` unless three upper-case letters (a
    /// code decoded from a report is any three bytes until checked).
    fn packed(self) -> Option<u16> {
        self.0.iter().try_fold(0, |acc, &c| {
            c.is_ascii_uppercase()
                .then(|| acc * 26 + u16::from(c - b'A'))
        })
    }

    fn unpack(v: u16) -> Self {
        let b = |d: u16| b'A' + (d % 26) as u8;
        Self([b(v / 676), b(v / 26), b(v)])
    }
}

impl fmt::Display for LocationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A point on the Earth, in decimal degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    /// Latitude, -90 (south) to 90 (north).
    pub lat: f64,
    /// Longitude, -180 (west) to 180 (east).
    pub lon: f64,
}

/// A known location: the place an IATA code names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// Its code.
    pub code: LocationCode,
    /// The city it serves (for a few small airfields, the airfield's name).
    pub city: &'static str,
    /// ISO 3166-1 alpha-2 country code.
    pub country: &'static str,
    /// Latitude of the airport's reference point (or a metro area's mean), to 0.01 degree.
    pub lat: f64,
    /// Longitude, likewise.
    pub lon: f64,
}

impl Location {
    /// Where it is.
    pub fn point(&self) -> GeoPoint {
        GeoPoint {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

/// The known location with this code (any letter case): `lookup("lhr")` is London.
pub fn lookup(code: &str) -> Option<Location> {
    LocationCode::parse(code)?.location()
}

/// Every known location, sorted by code.
pub fn known_locations() -> impl Iterator<Item = Location> {
    (0..table::LEN).map(row)
}

fn row(i: usize) -> Location {
    let place = usize::from(table::PLACE[i]);
    let start = place
        .checked_sub(1)
        .map_or(0, |p| table::PLACE_END[p] as usize);
    let end = table::PLACE_END[place] as usize;
    let country = usize::from(table::COUNTRY[i]) * 2;
    let GeoPoint { lat, lon } = point(i);
    Location {
        code: LocationCode::unpack(table::CODES[i]),
        city: table::PLACE_TEXT.get(start..end).unwrap_or(""),
        country: table::COUNTRIES.get(country..country + 2).unwrap_or(""),
        lat,
        lon,
    }
}

/// Where table row `i` is (the table stores hundredths of a degree).
fn point(i: usize) -> GeoPoint {
    GeoPoint {
        lat: f64::from(table::LAT[i]) / 100.0,
        lon: f64::from(table::LON[i]) / 100.0,
    }
}

/// The front-door location named in a DNS CNAME chain, e.g. `LHR` from
/// `outlook.office365.com -> outlook.ms-acdc.office.com -> LHR-efz.ms-acdc.office.com`.
///
/// Microsoft names Exchange front doors `<CODE>-<suffix>.ms-acdc.office.com`, where CODE is the IATA
/// code of an airport near the site. A name counts only if it is directly under
/// [`FRONT_DOOR_ZONE`], its first label is three letters, a hyphen and at least one more character,
/// and the three letters are a known code, so a random label cannot pass for a location. Letter case
/// and a trailing dot are ignored (resolvers may change case). The first matching name wins.
pub fn front_door_code<'a>(chain: impl IntoIterator<Item = &'a str>) -> Option<LocationCode> {
    chain.into_iter().find_map(front_door_label)
}

fn front_door_label(name: &str) -> Option<LocationCode> {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    let zone = FRONT_DOOR_ZONE.as_bytes();
    let split = name.len().checked_sub(zone.len() + 1)?;
    let (label, rest) = name.split_at(split);
    match rest.split_first() {
        Some((b'.', tail)) if tail.eq_ignore_ascii_case(zone) => {}
        _ => return None,
    }
    match label {
        [a, b, c, b'-', suffix @ ..] if !suffix.is_empty() && !suffix.contains(&b'.') => {
            let code = LocationCode::parse(core::str::from_utf8(&[*a, *b, *c]).ok()?)?;
            code.is_known().then_some(code)
        }
        _ => None,
    }
}

/// Great-circle distance in km between two points, by the haversine formula on a sphere of
/// [`EARTH_RADIUS_KM`]: well conditioned for the short distances that matter here (an office and its
/// front door), where the spherical law of cosines loses metres to rounding.
pub fn great_circle_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let h = haversine(a, b).clamp(0.0, 1.0);
    2.0 * EARTH_RADIUS_KM * libm::atan2(libm::sqrt(h), libm::sqrt(1.0 - h))
}

/// The haversine of the central angle: grows with the distance, so comparing it ranks distances
/// without the arcsine.
fn haversine(a: GeoPoint, b: GeoPoint) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let s1 = libm::sin(dp / 2.0);
    let s2 = libm::sin(dl / 2.0);
    s1 * s1 + libm::cos(p1) * libm::cos(p2) * s2 * s2
}

/// The known location nearest to a point (the collector names an egress or a resolver by it).
///
/// A scan of the table that skips, without trigonometry, every row whose latitude alone puts it
/// farther than the best so far (the central angle is at least the latitude difference): well under
/// a millisecond.
pub fn nearest_location(p: GeoPoint) -> Location {
    let mut best = (f64::INFINITY, f64::INFINITY, 0); // haversine, its central angle, row
    for i in 0..table::LEN {
        let q = point(i);
        if libm::fabs((q.lat - p.lat).to_radians()) > best.1 {
            continue;
        }
        let h = haversine(p, q);
        if h < best.0 {
            best = (h, 2.0 * libm::asin(libm::sqrt(h.min(1.0))), i);
        }
    }
    row(best.2)
}

/// What an office's distance is measured to, for Microsoft's "too far" insights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Remote {
    /// The service front door the office's traffic reaches (from its location code).
    FrontDoor,
    /// The recursive DNS resolver the office's queries leave from.
    Resolver,
    /// The office's internet egress point.
    Egress,
}

/// Microsoft's network connectivity test and the Admin Center's network insights flag a DNS recursive
/// resolver more than 500 miles (800 km) from the office ("DNS recursive resolver" in
/// learn.microsoft.com/microsoft-365/enterprise/office-365-network-mac-perf-onboarding-tool).
pub const RESOLVER_FAR_KM: f64 = 800.0;

/// The "Backhauled network egress" insight fires when the egress is more than 500 miles (800 km) from
/// the office (learn.microsoft.com/microsoft-365/enterprise/office-365-network-mac-perf-insights).
pub const EGRESS_FAR_KM: f64 = 800.0;

/// Microsoft judges a front door against its own list of the best front doors for each location,
/// which is not published; we use the distance Microsoft applies to everything else it places (egress,
/// resolver, proxy: 800 km). Front doors sit in every large metro area, so a nearer one than 800 km
/// exists for almost every office, and a front door that far away means the traffic (or the DNS
/// query that chose it) leaves the network somewhere else.
pub const FRONT_DOOR_FAR_KM: f64 = 800.0;

impl Remote {
    /// The distance beyond which Microsoft's tools call it too far from the office.
    pub const fn far_km(self) -> f64 {
        match self {
            Self::FrontDoor => FRONT_DOOR_FAR_KM,
            Self::Resolver => RESOLVER_FAR_KM,
            Self::Egress => EGRESS_FAR_KM,
        }
    }
}

/// Whether `km` from the office is too far for this kind of remote (strictly beyond its threshold).
pub fn is_far(remote: Remote, km: f64) -> bool {
    km > remote.far_km()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = include_str!("../../data/airports.csv");

    #[test]
    fn every_csv_row_is_found_with_its_place_and_coordinates() {
        let mut rows = 0;
        for line in CSV.lines().skip(1) {
            rows += 1;
            let code = &line[..3];
            let l = lookup(code).unwrap_or_else(|| panic!("{code} missing"));
            assert_eq!(l.code.as_str(), code);
            // Country, lat and lon are the last three fields; the city may hold quoted commas.
            let mut tail = line.rsplitn(4, ',');
            let lon: f64 = tail.next().unwrap().parse().unwrap();
            let lat: f64 = tail.next().unwrap().parse().unwrap();
            assert_eq!(l.country, tail.next().unwrap());
            let city = tail.next().unwrap()[4..]
                .trim_matches('"')
                .replace("\"\"", "\"");
            assert_eq!(l.city, city);
            assert!(
                (l.lat - lat).abs() <= 0.005 + 1e-9,
                "{code} lat {} vs {lat}",
                l.lat
            );
            assert!(
                (l.lon - lon).abs() <= 0.005 + 1e-9,
                "{code} lon {} vs {lon}",
                l.lon
            );
        }
        assert_eq!(rows, KNOWN_LOCATIONS);
        assert_eq!(known_locations().count(), KNOWN_LOCATIONS);
    }

    #[test]
    fn lookup_knows_front_door_sites_and_ignores_case() {
        let lhr = lookup("lhr").unwrap();
        assert_eq!((lhr.city, lhr.country), ("London", "GB"));
        assert_eq!(lookup("MNZ").unwrap().country, "US");
        assert_eq!(lookup("TYO").unwrap().city, "Tokyo");
        assert_eq!(lookup("ZZQ"), None);
        assert_eq!(lookup("LH"), None);
        assert_eq!(lookup("L1R"), None);
        assert_eq!(lookup("ÄBC"), None);
    }

    #[test]
    fn front_door_code_reads_microsofts_names_in_a_chain() {
        let chain = [
            "outlook.office365.com",
            "outlook.ms-acdc.office.com",
            "LHR-efz.ms-acdc.office.com",
        ];
        assert_eq!(front_door_code(chain).unwrap().as_str(), "LHR");
        for (name, code) in [
            ("ams-efz.ms-acdc.office.com", "AMS"),
            ("MNZ-efz.MS-ACDC.Office.COM.", "MNZ"),
            ("SYD-efz2.ms-acdc.office.com", "SYD"),
            ("CDG-x.ms-acdc.office.com", "CDG"),
        ] {
            assert_eq!(
                front_door_code([name]).map(|c| c.to_string()).as_deref(),
                Some(code),
                "{name}"
            );
        }
    }

    #[test]
    fn front_door_code_refuses_lookalikes() {
        for name in [
            "outlook.ms-acdc.office.com",           // the step before the front door
            "ZZQ-efz.ms-acdc.office.com",           // three letters, but no such location
            "LHR.ms-acdc.office.com",               // no hyphen
            "LHR-.ms-acdc.office.com",              // nothing after the hyphen
            "LHRX-efz.ms-acdc.office.com",          // four letters
            "L1R-efz.ms-acdc.office.com",           // not letters
            "LHR-efz.ms-acdc.office.com.evil.test", // not under the zone
            "LHR-efz.xms-acdc.office.com",          // a different zone that ends alike
            "LHR-efz.sub.ms-acdc.office.com",       // not directly under the zone
            "LHR-efz.example.com",
            "ms-acdc.office.com",
            "",
        ] {
            assert_eq!(front_door_code([name]), None, "{name}");
        }
    }

    /// No false positives on random labels: of all 17,576 three-letter labels in the front-door
    /// pattern, exactly the known codes are accepted.
    #[test]
    fn only_known_codes_pass() {
        let mut accepted = 0;
        for v in 0..26u16 * 26 * 26 {
            let code = LocationCode::unpack(v);
            let mut name = [0u8; 26];
            name[..3].copy_from_slice(code.as_str().as_bytes());
            name[3..].copy_from_slice(b"-efz.ms-acdc.office.com");
            let got = front_door_code([core::str::from_utf8(&name).unwrap()]);
            assert_eq!(got.is_some(), code.is_known());
            accepted += usize::from(got.is_some());
        }
        assert_eq!(accepted, KNOWN_LOCATIONS);
    }

    #[test]
    fn great_circle_matches_geometry_and_published_distances() {
        let p = |lat, lon| GeoPoint { lat, lon };
        let r = EARTH_RADIUS_KM;
        assert_eq!(great_circle_km(p(51.47, -0.46), p(51.47, -0.46)), 0.0);
        let quarter = core::f64::consts::PI * r / 2.0;
        assert!((great_circle_km(p(0.0, 0.0), p(0.0, 90.0)) - quarter).abs() < 1e-6);
        assert!((great_circle_km(p(0.0, 0.0), p(90.0, 0.0)) - quarter).abs() < 1e-6);
        // Near the antipodes the haversine rounds to within 1e-16 of 1, which leaves metres of error.
        // Near the antipodes the haversine rounds to within 1e-16 of 1: a fraction of a metre off.
        let half = core::f64::consts::PI * r;
        assert!(
            (great_circle_km(p(10.0, 20.0), p(-10.0, -160.0)) - half).abs() < 1e-3,
            "antipodes"
        );
        // Across the date line the short way, not around the world.
        assert!(great_circle_km(p(0.0, 179.5), p(0.0, -179.5)) < 112.0);
        // Published great-circle distances between airports (e.g. Great Circle Mapper): LHR-JFK
        // 5,540 km, SYD-LAX 12,051 km, AMS-FRA 365 km. The spherical model errs up to ~0.5 %.
        let d = |a: &str, b: &str| {
            great_circle_km(lookup(a).unwrap().point(), lookup(b).unwrap().point())
        };
        for (a, b, km) in [
            ("LHR", "JFK", 5540.0),
            ("SYD", "LAX", 12051.0),
            ("AMS", "FRA", 365.0),
        ] {
            let got = d(a, b);
            assert!(
                (got - km).abs() / km < 0.005,
                "{a}-{b}: {got} km, published {km} km"
            );
        }
    }

    #[test]
    fn nearest_location_names_the_place_a_point_is_in() {
        // Trafalgar Square is in London (the city code LON, placed at the mean of London's
        // airports, is nearer than any one airport).
        let london = nearest_location(GeoPoint {
            lat: 51.508,
            lon: -0.128,
        });
        assert_eq!(
            (london.city, london.country),
            ("London", "GB"),
            "{}",
            london.code
        );
        // Microsoft's Redmond campus: some airfield in Washington state, within 25 km.
        let redmond = nearest_location(GeoPoint {
            lat: 47.64,
            lon: -122.13,
        });
        assert_eq!(redmond.country, "US", "{}", redmond.code);
        assert!(
            great_circle_km(
                redmond.point(),
                GeoPoint {
                    lat: 47.64,
                    lon: -122.13
                }
            ) < 25.0
        );
        // Every location is its own nearest (or ties with a code at the same rounded point).
        for l in known_locations().step_by(97) {
            let n = nearest_location(l.point());
            assert_eq!(
                great_circle_km(n.point(), l.point()),
                0.0,
                "{} -> {}",
                l.code,
                n.code
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The pruned scan finds a location exactly as near as the nearest of a full scan.
        #[test]
        fn nearest_is_as_near_as_a_full_scan(lat in -90.0f64..=90.0, lon in -180.0f64..=180.0) {
            let p = GeoPoint { lat, lon };
            let full = known_locations().map(|l| great_circle_km(p, l.point())).fold(f64::INFINITY, f64::min);
            proptest::prop_assert_eq!(great_circle_km(p, nearest_location(p).point()), full);
        }
    }

    #[test]
    fn far_means_strictly_beyond_microsofts_800_km() {
        for r in [Remote::FrontDoor, Remote::Resolver, Remote::Egress] {
            assert!(!is_far(r, 0.0));
            assert!(!is_far(r, 800.0));
            assert!(is_far(r, 800.1));
        }
        // London to Frankfurt is near; London to New York is far.
        let d = great_circle_km(
            lookup("LHR").unwrap().point(),
            lookup("FRA").unwrap().point(),
        );
        assert!(!is_far(Remote::FrontDoor, d), "{d}");
        let d = great_circle_km(
            lookup("LHR").unwrap().point(),
            lookup("JFK").unwrap().point(),
        );
        assert!(is_far(Remote::Resolver, d), "{d}");
    }
}

#[cfg(test)]
mod decoded_code_tests {
    use super::*;

    /// A report decodes a front-door code as any three bytes: looking it up must not panic, and must not
    /// alias a real code.
    #[test]
    fn a_code_that_is_not_three_capitals_is_unknown_not_a_panic() {
        for raw in [*b"[HR", *b"lhr", *b"\x00\x00\x00", *b"\xff\xffA", *b"L1R"] {
            let code: LocationCode = postcard::from_bytes(&raw).unwrap();
            assert_eq!(code.location(), None, "{raw:?}");
            assert!(!code.is_known());
        }
        let lhr: LocationCode = postcard::from_bytes(b"LHR").unwrap();
        assert_eq!(lhr.location().map(|l| l.code), LocationCode::parse("LHR"));
    }
}
