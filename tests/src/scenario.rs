//! Scenarios as data: each file in `tests/scenarios/` describes one or more branch offices (where they
//! are, which resolver they use, what sits in their path, the WAN relay's rules) and the findings an
//! assessment of each office must produce, no more and no fewer.
//!
//! ```toml
//! name = "good-office"
//! description = "..."
//!
//! [[office]]
//! name = "london-good"           # unique across all scenario files; names the namespace
//! city = "London"
//! lat = 51.5072
//! lon = -0.1276
//! resolver = "london"            # a resolver of world::RESOLVERS
//! expect = []                    # finding codes, see Finding
//! # proxy = "open" | "auth"      # explicit proxy; direct TCP 80/443 is then refused
//! # middlebox = "tls-inspection" | "sni-filter"
//! # block_udp = [3478, 3481]     # first and last UDP port the office firewall drops
//! # backhaul = { city = "London", lat = 51.5072, lon = -0.1276 }   # egress at a head office
//!
//! [[office.relay]]               # a relay::Rule, with `to` (peer names) in place of `prefix`
//! direction = "a_to_b"
//! to = ["frontdoor:LHR", "resolver:london"]
//! delay_ms = 2
//! ```
//!
//! `to` takes the names of [`crate::world::target_prefixes`]; a rule may give `prefix` instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::relay::{Endpoint, RelayConfig, Rule};
use crate::world::{self, Location};
use crate::LabError;

/// What an assessment of an office concludes is wrong, by its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// A middlebox replaced Microsoft's certificate chain with its own.
    TlsInspection,
    /// Optimize traffic goes through a proxy (explicit, or one answering 407 / a proxy's 403).
    Proxy,
    /// Teams media cannot use UDP 3478-3481.
    UdpBlocked,
    /// Teams media over UDP works but loss, jitter or round-trip time miss Microsoft's targets.
    TeamsQuality,
    /// The front door in use is far from the office.
    FarFrontDoor,
    /// The DNS resolver in use is far from the office.
    FarResolver,
    /// A required endpoint cannot be reached (refused, reset, or blocked by a proxy).
    EndpointBlocked,
    /// Internet traffic leaves the network far from the office (backhauled to a head office).
    Backhaul,
}

impl Finding {
    pub const ALL: [Finding; 8] = [
        Finding::TlsInspection,
        Finding::Proxy,
        Finding::UdpBlocked,
        Finding::TeamsQuality,
        Finding::FarFrontDoor,
        Finding::FarResolver,
        Finding::EndpointBlocked,
        Finding::Backhaul,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Finding::TlsInspection => "tls-inspection",
            Finding::Proxy => "proxy",
            Finding::UdpBlocked => "udp-blocked",
            Finding::TeamsQuality => "teams-quality",
            Finding::FarFrontDoor => "far-front-door",
            Finding::FarResolver => "far-resolver",
            Finding::EndpointBlocked => "endpoint-blocked",
            Finding::Backhaul => "backhaul",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Finding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Finding::ALL
            .into_iter()
            .find(|f| f.code() == s)
            .ok_or_else(|| format!("unknown finding {s:?}"))
    }
}

/// An explicit proxy the office must use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    /// Squid on 3128, no authentication.
    Open,
    /// Squid on 3129, answering 407 to requests without credentials; the office is not given any.
    Auth,
}

/// A box in the office's path that looks at TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Middlebox {
    /// Squid ssl-bump, transparent: every TLS connection on 443 is re-signed by "Contoso Web Filter CA".
    TlsInspection,
    /// Squid peek-and-splice, transparent: TLS to `*.sharepoint.com` is cut after the ClientHello and
    /// HTTP to it answered 403; everything else passes untouched.
    SniFilter,
}

/// One branch office of a scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeSpec {
    pub name: String,
    pub city: String,
    pub lat: f64,
    pub lon: f64,
    /// Name of the recursive resolver the office uses (see [`world::RESOLVERS`]).
    pub resolver: String,
    /// Findings an assessment must produce for this office, and no others.
    #[serde(default)]
    pub expect: Vec<Finding>,
    #[serde(default)]
    pub proxy: Option<ProxyMode>,
    #[serde(default)]
    pub middlebox: Option<Middlebox>,
    /// First and last UDP destination port the office's firewall drops.
    #[serde(default)]
    pub block_udp: Option<[u16; 2]>,
    /// Where the office's traffic reaches the internet, when not in the office itself.
    #[serde(default)]
    pub backhaul: Option<Location>,
    /// The WAN relay's rules, in order (the first match applies).
    #[serde(default, deserialize_with = "relay_rules")]
    pub relay: Vec<Rule>,
}

impl OfficeSpec {
    pub fn location(&self) -> Location {
        Location::new(&self.city, self.lat, self.lon)
    }
}

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    #[serde(rename = "office")]
    pub offices: Vec<OfficeSpec>,
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, LabError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| LabError::Scenario {
            name: "?".into(),
            message: e.to_string(),
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The scenario `tests/scenarios/NAME.toml`.
    pub fn load(name: &str) -> Result<Scenario, LabError> {
        let path = scenarios_dir().join(format!("{name}.toml"));
        Scenario::load_file(&path)
    }

    pub fn load_file(path: &Path) -> Result<Scenario, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Io {
            what: format!("reading scenario {}", path.display()),
            source,
        })?;
        let scenario = Scenario::from_toml(&text).map_err(|e| match e {
            LabError::Scenario { message, .. } => LabError::Scenario {
                name: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if scenario.name != stem {
            return Err(scenario.error(format!("is named {stem:?} on disk")));
        }
        Ok(scenario)
    }

    /// Every scenario file, by name.
    pub fn all() -> Result<Vec<Scenario>, LabError> {
        let dir = scenarios_dir();
        let entries = std::fs::read_dir(&dir).map_err(|source| LabError::Io {
            what: format!("listing {}", dir.display()),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        paths.iter().map(|p| Scenario::load_file(p)).collect()
    }

    fn error(&self, message: String) -> LabError {
        LabError::Scenario {
            name: self.name.clone(),
            message,
        }
    }

    fn validate(&self) -> Result<(), LabError> {
        if self.offices.is_empty() {
            return Err(self.error("has no [[office]]".into()));
        }
        for (i, office) in self.offices.iter().enumerate() {
            let bad = |m: String| self.error(format!("office {:?}: {m}", office.name));
            if office.name.is_empty()
                || office.name.len() > 24
                || !office
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(bad("names must be 1-24 of a-z, 0-9 and '-'".into()));
            }
            if self.offices[..i].iter().any(|o| o.name == office.name) {
                return Err(bad("appears twice".into()));
            }
            if world::resolver_named(&office.resolver).is_none() {
                return Err(bad(format!("unknown resolver {:?}", office.resolver)));
            }
            if !(-90.0..=90.0).contains(&office.lat) || !(-180.0..=180.0).contains(&office.lon) {
                return Err(bad("latitude or longitude out of range".into()));
            }
            let mut seen = office.expect.clone();
            seen.sort();
            seen.dedup();
            if seen.len() != office.expect.len() {
                return Err(bad("lists a finding twice".into()));
            }
            if let Some([first, last]) = office.block_udp {
                if first > last {
                    return Err(bad("block_udp must be [first, last]".into()));
                }
            }
            let endpoint = |netns: &str, ifname: &str| Endpoint {
                netns: netns.into(),
                ifname: ifname.into(),
                mtu: 1500,
            };
            RelayConfig {
                side_a: endpoint("office", "wan0"),
                side_b: endpoint("internet", "o0"),
                rules: office.relay.clone(),
                seed: 0,
                log: None,
            }
            .validate()
            .map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }
}

/// Where scenario files live: `$O365LAB_SCENARIOS`, else this crate's `scenarios/`.
pub fn scenarios_dir() -> PathBuf {
    std::env::var_os("O365LAB_SCENARIOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
}

/// Reads `[[office.relay]]` tables, expanding `to` into one relay rule per prefix.
fn relay_rules<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Rule>, D::Error> {
    use serde::de::Error;
    let tables = Vec::<toml::Table>::deserialize(d)?;
    let mut rules = Vec::new();
    for mut table in tables {
        let prefixes = match (table.remove("to"), table.contains_key("prefix")) {
            (Some(_), true) => return Err(D::Error::custom("a rule has both `to` and `prefix`")),
            (None, true) => vec![None],
            (None, false) => return Err(D::Error::custom("a rule needs `to` or `prefix`")),
            (Some(to), false) => {
                let names: Vec<String> = match to {
                    toml::Value::String(s) => vec![s],
                    other => Vec::<String>::deserialize(other).map_err(D::Error::custom)?,
                };
                let mut prefixes = Vec::new();
                for name in &names {
                    let p = world::target_prefixes(name).ok_or_else(|| {
                        D::Error::custom(format!("unknown peer {name:?} in `to`"))
                    })?;
                    prefixes.extend(p.into_iter().map(Some));
                }
                prefixes
            }
        };
        for prefix in prefixes {
            let mut t = table.clone();
            if let Some(p) = prefix {
                t.insert("prefix".into(), toml::Value::String(p));
            }
            rules.push(Rule::deserialize(toml::Value::Table(t)).map_err(D::Error::custom)?);
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::Direction;

    const ONE: &str = r#"
name = "x"
description = "d"
[[office]]
name = "london-x"
city = "London"
lat = 51.5
lon = -0.12
resolver = "london"
expect = ["far-front-door"]
[[office.relay]]
direction = "a_to_b"
to = ["frontdoor:ORD", "teams"]
delay_ms = 92
[[office.relay]]
prefix = "0.0.0.0/0"
loss = { model = "bernoulli", p = 0.03 }
"#;

    #[test]
    fn peer_names_expand_into_one_rule_per_address() {
        let s = Scenario::from_toml(ONE).unwrap();
        let rules = &s.offices[0].relay;
        let prefixes: Vec<&str> = rules.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(
            prefixes,
            [
                "198.51.100.14/32",
                "2001:db8:100::14/128",
                "198.51.100.40/32",
                "2001:db8:100::40/128",
                "0.0.0.0/0"
            ]
        );
        assert!(rules[..4]
            .iter()
            .all(|r| r.delay_ms == 92.0 && r.direction == Direction::AtoB));
        assert_eq!(rules[4].direction, Direction::Both);
        assert_eq!(s.offices[0].expect, [Finding::FarFrontDoor]);
    }

    #[test]
    fn mistakes_name_what_is_wrong() {
        let cases = [
            (ONE.replace("frontdoor:ORD", "frontdoor:XXX"), "XXX"),
            (ONE.replace("\"london\"", "\"paris\""), "paris"),
            (ONE.replace("far-front-door", "far-door"), "far-door"),
            (
                ONE.replace("delay_ms = 92", "delay_ms = 92\nprefix = \"::/0\""),
                "both",
            ),
            (ONE.replace("p = 0.03", "p = 3"), "probability"),
            (ONE.replace("london-x", "London X"), "a-z"),
            (
                ONE.replace("lat = 51.5", "lat = 51.5\nlatitude = 1"),
                "latitude",
            ),
        ];
        for (text, needle) in cases {
            let err = Scenario::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }

    #[test]
    fn finding_codes_round_trip() {
        for f in Finding::ALL {
            assert_eq!(f.code().parse::<Finding>(), Ok(f));
            let toml = toml::to_string(&std::collections::BTreeMap::from([("f", f)])).unwrap();
            assert!(toml.contains(f.code()), "{toml}");
        }
    }
}
