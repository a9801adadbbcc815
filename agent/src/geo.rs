//! Where an IP address is: the operator's own prefix list first, then a MaxMind-format city database.
//!
//! The check needs this twice: the recursive resolver's address (revealed by whoami names) and the
//! office's egress address (the address the Teams relay saw) are judged "far" by their distance from the
//! office, as Microsoft's connectivity test does. The front door needs no lookup: its location code
//! names its place.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use o365probe_core::assess::{lookup, GeoPoint};

use crate::config;
use crate::endpoints::IpNet;

/// Most lines read from a prefix file: a router's file names its own ranges, not the internet.
pub const MAX_PREFIXES: usize = 100_000;

/// A located address.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// Coordinates.
    pub point: GeoPoint,
    /// What the source calls the place: a location code, a city, or the prefix.
    pub label: String,
}

/// Why a geolocation source could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the prefix file is wrong.
    #[error("{}:{line}: {problem}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The database is not a MaxMind DB.
    #[error("{}: not a MaxMind city database: {reason}", path.display())]
    Database {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The geolocation sources of `[geo]`.
#[derive(Default)]
pub struct Geo {
    // Sorted by prefix length, longest first, so the most specific entry wins.
    prefixes: Vec<(IpNet, Place)>,
    database: Option<maxminddb::Reader<Vec<u8>>>,
}

impl fmt::Debug for Geo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Geo")
            .field("prefixes", &self.prefixes.len())
            .field("database", &self.database.is_some())
            .finish()
    }
}

impl Geo {
    /// Reads the files `[geo]` names (none: an empty `Geo` that locates nothing).
    pub fn load(config: &config::Geo) -> Result<Geo, GeoError> {
        let mut geo = Geo::default();
        if let Some(path) = &config.prefixes {
            let text = std::fs::read_to_string(path).map_err(|source| GeoError::Read {
                path: path.clone(),
                source,
            })?;
            geo.prefixes = parse_prefixes(&text, path)?;
        }
        if let Some(path) = &config.database {
            let reader =
                maxminddb::Reader::open_readfile(path).map_err(|e| GeoError::Database {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            geo.database = Some(reader);
        }
        Ok(geo)
    }

    /// Where `ip` is, if a source knows.
    pub fn locate(&self, ip: IpAddr) -> Option<Place> {
        if let Some((_, place)) = self.prefixes.iter().find(|(p, _)| p.contains(ip)) {
            return Some(place.clone());
        }
        let city: maxminddb::geoip2::City = self.database.as_ref()?.lookup(ip).ok()??;
        let location = city.location?;
        let point = GeoPoint {
            lat: location.latitude?,
            lon: location.longitude?,
        };
        let label = city
            .city
            .and_then(|c| c.names)
            .and_then(|n| n.get("en").map(|s| s.to_string()))
            .unwrap_or_else(|| format!("{:.2},{:.2}", point.lat, point.lon));
        Some(Place { point, label })
    }
}

fn parse_prefixes(text: &str, path: &Path) -> Result<Vec<(IpNet, Place)>, GeoError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let problem = |problem: String| GeoError::Line {
            path: path.to_path_buf(),
            line: i + 1,
            problem,
        };
        if out.len() == MAX_PREFIXES {
            return Err(problem(format!("more than {MAX_PREFIXES} prefixes")));
        }
        let mut fields = line.splitn(3, ',');
        let (Some(prefix), Some(location)) = (fields.next(), fields.next()) else {
            return Err(problem("expected `prefix,location[,name]`".into()));
        };
        let name = fields.next().map(str::trim).filter(|n| !n.is_empty());
        let prefix = prefix
            .trim()
            .parse::<IpNet>()
            .map_err(|_| problem(format!("`{}` is not an IP prefix", prefix.trim())))?;
        let mut place = parse_location(location.trim()).ok_or_else(|| {
            problem(format!(
                "`{}` is neither a known location code nor `latitude longitude`",
                location.trim()
            ))
        })?;
        if let Some(name) = name {
            place.label = name.to_owned();
        }
        out.push((prefix, place));
    }
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.prefix));
    Ok(out)
}

fn parse_location(s: &str) -> Option<Place> {
    if let Some(location) = lookup(s) {
        return Some(Place {
            point: location.point(),
            label: location.code.as_str().to_owned(),
        });
    }
    let mut it = s.split_whitespace();
    let lat: f64 = it.next()?.parse().ok()?;
    let lon: f64 = it.next()?.parse().ok()?;
    let valid =
        it.next().is_none() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
    valid.then(|| Place {
        point: GeoPoint { lat, lon },
        label: format!("{lat},{lon}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(text: &str) -> Geo {
        Geo {
            prefixes: parse_prefixes(text, Path::new("geo.csv")).unwrap(),
            database: None,
        }
    }

    #[test]
    fn the_most_specific_prefix_names_the_place() {
        let g = geo(
            "# lab plan\n198.51.100.0/24, LHR\n198.51.100.153/32,ORD\n2001:db8::/32,41.9 -87.6\n\
             2001:db8:1::/48,51.5 -0.1,London # HQ\n",
        );
        let at = |s: &str| g.locate(s.parse().unwrap()).map(|p| p.label);
        assert_eq!(at("198.51.100.153").as_deref(), Some("ORD"));
        assert_eq!(at("198.51.100.154").as_deref(), Some("LHR"));
        assert_eq!(at("2001:db8:100::53").as_deref(), Some("41.9,-87.6"));
        assert_eq!(at("2001:db8:1::9").as_deref(), Some("London"));
        assert_eq!(at("203.0.113.1"), None);
        let ord = g.locate("198.51.100.153".parse().unwrap()).unwrap().point;
        assert!((ord.lat - 41.98).abs() < 0.1, "{ord:?}");
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        for (text, want) in [
            (
                "198.51.100.0/24 LHR\n",
                "geo.csv:1: expected `prefix,location[,name]`",
            ),
            (
                "\n198.51.100.0/33,LHR\n",
                "geo.csv:2: `198.51.100.0/33` is not an IP prefix",
            ),
            (
                "10.0.0.0/8,ZZZ\n",
                "geo.csv:1: `ZZZ` is neither a known location code",
            ),
            ("10.0.0.0/8,91 0\n", "geo.csv:1: `91 0` is neither"),
        ] {
            let err = parse_prefixes(text, Path::new("geo.csv"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn a_missing_or_foreign_database_is_a_clear_error() {
        let missing = config::Geo {
            prefixes: None,
            database: Some("/nonexistent/city.mmdb".into()),
        };
        assert!(Geo::load(&missing)
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/city.mmdb"));
        let dir = std::env::temp_dir().join(format!("o365probe-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.mmdb");
        std::fs::write(&junk, b"not a database").unwrap();
        let foreign = config::Geo {
            prefixes: None,
            database: Some(junk.clone()),
        };
        let err = Geo::load(&foreign).unwrap_err().to_string();
        assert!(err.contains("not a MaxMind city database"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
