//! Microsoft's endpoints web service: the client that keeps the endpoint list current, the parser for its
//! JSON, the bundled fallback list, and the step from endpoint sets to probe targets.
//!
//! The client follows Microsoft's guidance for the service: a per-machine ClientRequestId (a v4 GUID made
//! once and kept in `state_dir`), the version checked at most once per refresh interval (hourly by
//! default), the endpoint list fetched only when the version changed, and backing off on HTTP 429
//! (honouring `Retry-After`) and on errors. The last good list is cached on disk and never replaced by a
//! failed or hostile answer; until there is one, the bundled fallback (agent/data/endpoints-fallback.json,
//! assembled from Microsoft's documentation, not a snapshot of the service) stands in.
//!
//! Parsing hostile input: the whole answer is capped at [`MAX_RESPONSE_BYTES`] while it is read, the list
//! at [`MAX_SETS`] entries, each entry's lists at [`MAX_URLS`], [`MAX_IPS`] and [`MAX_PORT_RANGES`]. An
//! answer that is not a JSON array, has too many entries or has no usable entry is an error and changes
//! nothing. An entry with any malformed field (a wrong type, a missing `id`, `serviceArea`, `category` or
//! `required`, an unknown service area or category, a bad URL, CIDR or port string, a duplicate `id`) is
//! skipped whole, with the reason reported in [`Parsed::skipped`]; the rest of the list is kept.

use crate::config::{self, check_host, Config, Instance, ProxyEnv, Target};
use crate::http::{ProxyServer, USER_AGENT};
use o365probe_core::report::{MAX_PORTS, MAX_TARGETS};
use o365probe_core::wire::endpoint::{Category, ServiceArea};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most bytes read of an endpoint list answer; the real list is about 100 KiB.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Most bytes read of a version answer.
pub const MAX_VERSION_BYTES: usize = 16 << 10;
/// Most endpoint sets in a list (the real one has about 150).
pub const MAX_SETS: usize = 2000;
/// Most URLs in one endpoint set.
pub const MAX_URLS: usize = 1000;
/// Most IP ranges in one endpoint set.
pub const MAX_IPS: usize = 1000;
/// Most comma-separated items in one port string.
pub const MAX_PORT_RANGES: usize = 64;
/// Longest `notes` kept; longer notes are cut.
pub const MAX_NOTES: usize = 1024;
/// First wait after a failure; it doubles with each failure in a row.
pub const BACKOFF_START: Duration = Duration::from_secs(60);
/// Longest wait after failures, and the most of a `Retry-After` that is honoured.
pub const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);
/// The bundled fallback list.
pub const FALLBACK_JSON: &str = include_str!("../data/endpoints-fallback.json");

const STATE_FILE: &str = "endpoints-state.json";
const CACHE_FILE: &str = "endpoints.json";
const ID_FILE: &str = "client-request-id";

/// Why the endpoint list could not be refreshed, or the state could not be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointsError {
    /// The request did not complete (connection, TLS, timeout, proxy).
    #[error("{url}: {reason}")]
    Transport {
        /// The URL, without its query.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An HTTP status other than 200 or 429.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL, without its query.
        url: String,
        /// The status code.
        status: i32,
    },
    /// HTTP 429: too many requests.
    #[error("{url}: rate limited (HTTP 429){}", .retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The URL, without its query.
        url: String,
        /// The `Retry-After` the service asked for (seconds form only).
        retry_after: Option<Duration>,
    },
    /// The answer was longer than allowed.
    #[error("{url}: answer longer than {limit} bytes")]
    TooLarge {
        /// The URL, without its query.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The version answer is not what the service sends.
    #[error("invalid version answer: {0}")]
    Version(String),
    /// The endpoint list is unusable as a whole.
    #[error("invalid endpoint list: {0}")]
    List(String),
    /// A state file could not be read or written.
    #[error("{}: {source}", .path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

// ---------------------------------------------------------------------------------------------------
// The list and its parts.

/// One endpoint set of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSet {
    /// `id`: Microsoft's number for the set.
    pub id: u32,
    /// `serviceArea`.
    pub service_area: ServiceArea,
    /// `category`.
    pub category: Category,
    /// `required`: the service needs it.
    pub required: bool,
    /// `expressRoute`: routed over ExpressRoute.
    pub express_route: bool,
    /// `urls`: host names, wildcards and tenant patterns.
    pub urls: Vec<EndpointUrl>,
    /// `ips`: address ranges.
    pub ips: Vec<IpNet>,
    /// `tcpPorts`.
    pub tcp_ports: PortRanges,
    /// `udpPorts`.
    pub udp_ports: PortRanges,
    /// `notes`, cut to [`MAX_NOTES`] characters.
    pub notes: Option<String>,
}

/// One entry of `urls`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl {
    /// The name as listed, in lower case: `outlook.office365.com`, `*.teams.microsoft.com`,
    /// `<tenant>.sharepoint.com`.
    pub pattern: String,
    /// What kind of name it is.
    pub kind: UrlKind,
}

/// What kind of name an [`EndpointUrl`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlKind {
    /// A host name a probe can connect to.
    Host,
    /// Contains `*`: stands for many hosts and cannot be probed directly.
    Wildcard,
    /// Contains `<tenant>`: a host once the tenant name is known.
    Tenant,
}

impl EndpointUrl {
    /// Classifies and checks one `urls` entry.
    pub fn parse(s: &str) -> Result<Self, String> {
        let pattern = s.trim().to_ascii_lowercase();
        let kind = if pattern.contains('*') {
            UrlKind::Wildcard
        } else if pattern.contains("<tenant>") {
            UrlKind::Tenant
        } else {
            UrlKind::Host
        };
        // Checked as the host it stands for, with placeholders filled in.
        let sample = pattern.replace("<tenant>", "tenant").replace('*', "x");
        if sample.parse::<IpAddr>().is_ok() || check_host(&sample).is_err() {
            return Err(format!("bad URL {s:?}"));
        }
        Ok(Self { pattern, kind })
    }

    /// The host to probe: the name itself, or with `<tenant>` filled in; `None` for a wildcard, or a
    /// tenant pattern without a tenant.
    pub fn host(&self, tenant: Option<&str>) -> Option<String> {
        match self.kind {
            UrlKind::Host => Some(self.pattern.clone()),
            UrlKind::Wildcard => None,
            UrlKind::Tenant => tenant.map(|t| self.pattern.replace("<tenant>", t)),
        }
    }
}

/// An IP range in CIDR notation (`52.112.0.0/14`, `2603:1063::/38`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The address as written.
    pub addr: IpAddr,
    /// Prefix length: up to 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
}

impl IpNet {
    /// The single address `addr`: a /32 or a /128.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    /// `addr/prefix`; a bare address is a single host.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad IP range {s:?}");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let host = Self::host(addr.parse().map_err(|_| bad())?);
        let prefix = match prefix {
            Some(p) if p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => return Ok(host),
        };
        if prefix > host.prefix {
            return Err(bad());
        }
        Ok(Self { prefix, ..host })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A port string of the list: `80,443`, `3478-3481`, empty for none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortRanges(Vec<RangeInclusive<u16>>);

impl PortRanges {
    /// The ranges, in listed order.
    pub fn ranges(&self) -> &[RangeInclusive<u16>] {
        &self.0
    }

    /// No ports.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `port` is listed.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(&port))
    }

    /// The first `max` ports, in listed order, without repeats (a range gives its lowest ports first).
    pub fn first_ports(&self, max: usize) -> Vec<u16> {
        self.ports_of(self.0.iter(), max)
    }

    /// Like [`Self::first_ports`], leaving out ranges wider than `max`: such a range (Teams' old
    /// `50000-59999`) is a range of client ports, not a service a probe could find on its first ports.
    pub fn service_ports(&self, max: usize) -> Vec<u16> {
        let narrow = self
            .0
            .iter()
            .filter(|r| usize::from(r.end() - r.start()) < max);
        self.ports_of(narrow, max)
    }

    fn ports_of<'a>(
        &self,
        ranges: impl Iterator<Item = &'a RangeInclusive<u16>>,
        max: usize,
    ) -> Vec<u16> {
        let mut out: Vec<u16> = Vec::new();
        for range in ranges {
            for port in range.clone() {
                if out.len() == max {
                    return out;
                }
                if !out.contains(&port) {
                    out.push(port);
                }
            }
        }
        out
    }
}

impl FromStr for PortRanges {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(ranges));
        }
        for item in s.split(',') {
            if ranges.len() == MAX_PORT_RANGES {
                return Err(format!("more than {MAX_PORT_RANGES} port items"));
            }
            let item = item.trim();
            let port = |p: &str| -> Result<u16, String> {
                let p = p.trim();
                match p.parse::<u16>() {
                    Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                    _ => Err(format!("bad port {item:?}")),
                }
            };
            let range = match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(format!("port range {item:?} runs backwards"));
                    }
                    lo..=hi
                }
                None => {
                    let p = port(item)?;
                    p..=p
                }
            };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }
}

impl fmt::Display for PortRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

/// A parsed list: the usable sets and what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Usable endpoint sets, in listed order.
    pub sets: Vec<EndpointSet>,
    /// Entries left out, and why.
    pub skipped: Vec<Skipped>,
}

/// An entry of the list that was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its position in the list (from 0).
    pub index: usize,
    /// Its `id`, if that much could be read.
    pub id: Option<u64>,
    /// Why it was left out.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "entry {} (id {id}): {}", self.index, self.reason),
            None => write!(f, "entry {}: {}", self.index, self.reason),
        }
    }
}

/// A JSON array read into at most `N` elements.
struct Bounded<T, const N: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an array of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if out.len() == N {
                        return Err(de::Error::custom(format!("more than {N} elements")));
                    }
                    out.push(item);
                }
                Ok(Bounded(out))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSet {
    id: u32,
    service_area: String,
    #[serde(default)]
    urls: Option<Bounded<String, MAX_URLS>>,
    #[serde(default)]
    ips: Option<Bounded<String, MAX_IPS>>,
    #[serde(default)]
    tcp_ports: Option<String>,
    #[serde(default)]
    udp_ports: Option<String>,
    category: String,
    #[serde(default)]
    express_route: Option<bool>,
    required: bool,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<u64>,
}

impl RawSet {
    fn check(self) -> Result<EndpointSet, String> {
        let service_area = ServiceArea::from_name(&self.service_area)
            .ok_or_else(|| format!("unknown serviceArea {:?}", self.service_area))?;
        let category = Category::from_name(&self.category)
            .ok_or_else(|| format!("unknown category {:?}", self.category))?;
        let urls = self
            .urls
            .map(|b| b.0)
            .unwrap_or_default()
            .iter()
            .map(|u| EndpointUrl::parse(u).map_err(|e| format!("urls: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let ips = self
            .ips
            .map(|b| b.0)
            .unwrap_or_default()
            .iter()
            .map(|ip| ip.parse::<IpNet>().map_err(|e| format!("ips: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let tcp_ports = self
            .tcp_ports
            .as_deref()
            .unwrap_or("")
            .parse::<PortRanges>()
            .map_err(|e| format!("tcpPorts: {e}"))?;
        let udp_ports = self
            .udp_ports
            .as_deref()
            .unwrap_or("")
            .parse::<PortRanges>()
            .map_err(|e| format!("udpPorts: {e}"))?;
        let notes = self.notes.map(|n| n.chars().take(MAX_NOTES).collect());
        Ok(EndpointSet {
            id: self.id,
            service_area,
            category,
            required: self.required,
            express_route: self.express_route.unwrap_or(false),
            urls,
            ips,
            tcp_ports,
            udp_ports,
            notes,
        })
    }
}

/// Parses an endpoint list (the answer of `/endpoints/{instance}`). See the module docs for what is an
/// error and what is a skipped entry.
pub fn parse(json: &[u8]) -> Result<Parsed, EndpointsError> {
    if json.len() > MAX_RESPONSE_BYTES {
        return Err(EndpointsError::List(format!(
            "longer than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let entries: Bounded<&RawValue, MAX_SETS> = serde_json::from_slice(json).map_err(|e| {
        EndpointsError::List(match e.classify() {
            serde_json::error::Category::Data => {
                format!("expected a JSON array of at most {MAX_SETS} endpoint sets ({e})")
            }
            _ => format!("not JSON ({e})"),
        })
    })?;
    let mut sets: Vec<EndpointSet> = Vec::new();
    let mut skipped = Vec::new();
    for (index, raw) in entries.0.into_iter().enumerate() {
        let result = serde_json::from_str::<RawSet>(raw.get())
            .map_err(|e| one_line_json_error(&e))
            .and_then(RawSet::check)
            .and_then(|set| {
                if sets.iter().any(|s| s.id == set.id) {
                    Err(format!("duplicate id {}", set.id))
                } else {
                    Ok(set)
                }
            });
        match result {
            Ok(set) => sets.push(set),
            Err(reason) => {
                // Read again for what little can be read: the id, to name the entry.
                let id = serde_json::from_str::<IdOnly>(raw.get())
                    .ok()
                    .and_then(|i| i.id);
                skipped.push(Skipped { index, id, reason })
            }
        }
    }
    if sets.is_empty() {
        return Err(EndpointsError::List(match skipped.first() {
            Some(s) => format!(
                "no usable endpoint set ({} skipped; first: {s})",
                skipped.len()
            ),
            None => "no endpoint sets".into(),
        }));
    }
    Ok(Parsed { sets, skipped })
}

/// serde_json's message without its position (which is relative to the entry, not the answer).
fn one_line_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// The bundled fallback list: Optimize endpoint sets assembled from Microsoft's documentation.
pub fn fallback() -> Vec<EndpointSet> {
    // The file is fixed at build time and a test parses it, so this never comes out empty.
    parse(FALLBACK_JSON.as_bytes())
        .map(|p| p.sets)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------
// From endpoint sets to targets.

/// Which endpoint sets become targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Service areas to probe.
    pub services: Vec<ServiceArea>,
    /// Categories to probe.
    pub categories: Vec<Category>,
    /// Only sets marked required.
    pub required_only: bool,
    /// Fills `<tenant>` in tenant-specific names; without it those names are left out.
    pub tenant: Option<String>,
}

impl Selection {
    /// Everything the `[endpoints]` section selects.
    pub fn from_config(e: &config::EndpointService) -> Self {
        Self {
            services: e.services.clone(),
            categories: e.categories.clone(),
            required_only: e.required_only,
            tenant: e.tenant.clone(),
        }
    }

    fn selects(&self, set: &EndpointSet) -> bool {
        self.services.contains(&set.service_area)
            && self.categories.contains(&set.category)
            && (set.required || !self.required_only)
    }
}

/// The probe targets for the selected sets: one per probeable host name (wildcards, and tenant names
/// without a tenant, are left out; so are IP ranges, which name no single host). A host in several sets
/// is one target with their ports merged, the most demanding category and `required` if any set is.
/// TCP port 443 goes first (the tcp, tls and http probes use the first port); each list keeps at most
/// the manifest's [`MAX_PORTS`], and a range wider than that is left out (see
/// [`PortRanges::service_ports`]). Optimize targets come first, and there are at most [`MAX_TARGETS`].
pub fn targets(sets: &[EndpointSet], selection: &Selection) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for set in sets.iter().filter(|s| selection.selects(s)) {
        let mut tcp = set.tcp_ports.service_ports(MAX_PORTS);
        if tcp.contains(&443) {
            tcp.retain(|&p| p != 443);
            tcp.insert(0, 443);
            tcp.truncate(MAX_PORTS);
        }
        let udp = set.udp_ports.service_ports(MAX_PORTS);
        if tcp.is_empty() && udp.is_empty() {
            continue;
        }
        let hosts: Vec<String> = set
            .urls
            .iter()
            .filter_map(|url| url.host(selection.tenant.as_deref()))
            .filter(|host| check_host(host).is_ok())
            .collect();
        // Teams media (set 11) lists only address ranges: its UDP ports are reached through the
        // transport relay, which is what the STUN train needs a name for. The relay speaks TURN, not
        // HTTPS, so it gets the media ports only.
        let media_relay = set.service_area == ServiceArea::Teams
            && !udp.is_empty()
            && !hosts.iter().any(|h| is_teams_relay(h));
        let mut wanted: Vec<(String, &[u16], &[u16])> = hosts
            .into_iter()
            .map(|host| {
                // STUN answers only on the relays: UDP ports on a web front end (set 12 lists
                // teams.microsoft.com with UDP 3478-3481) would read as "UDP blocked".
                let udp: &[u16] = if is_teams_relay(&host) { &udp } else { &[] };
                (host, tcp.as_slice(), udp)
            })
            .collect();
        if media_relay {
            wanted.push((TEAMS_RELAY.to_owned(), &[], &udp));
        }
        for (host, tcp, udp) in wanted {
            if tcp.is_empty() && udp.is_empty() {
                continue;
            }
            match out.iter_mut().find(|t| t.host == host) {
                Some(t) => {
                    merge_ports(&mut t.tcp, tcp);
                    merge_ports(&mut t.udp, udp);
                    t.required |= set.required;
                    t.category = t.category.min(set.category);
                }
                None => out.push(Target {
                    host,
                    service: set.service_area,
                    category: set.category,
                    tcp: tcp.to_vec(),
                    udp: udp.to_vec(),
                    required: set.required,
                    http_path: None,
                }),
            }
        }
    }
    out.sort_by_key(|t| t.category);
    out.truncate(MAX_TARGETS);
    out
}

/// The Teams transport relay Microsoft's own connectivity test sends media probes to.
pub const TEAMS_RELAY: &str = "world.tr.teams.microsoft.com";

/// A Teams transport relay name (`world.tr.teams.microsoft.com`, `worldaz.tr.teams.microsoft.com`).
fn is_teams_relay(host: &str) -> bool {
    host.to_ascii_lowercase()
        .ends_with(".tr.teams.microsoft.com")
}

fn merge_ports(into: &mut Vec<u16>, more: &[u16]) {
    for &p in more {
        if into.len() < MAX_PORTS && !into.contains(&p) {
            into.push(p);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The client.

/// How the client reaches the service and where it keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Base URL, `https://endpoints.office.com`.
    pub service_url: String,
    /// The cloud.
    pub instance: Instance,
    /// Tenant name for `TenantName=`.
    pub tenant: Option<String>,
    /// Where the GUID, the state and the cached list live.
    pub state_dir: PathBuf,
    /// How often the version is checked.
    pub refresh_interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The HTTP proxy for the service, if any.
    pub proxy: Option<String>,
}

impl ClientSettings {
    /// The settings a config gives, with the proxy resolved against `proxy_env`.
    pub fn from_config(config: &Config, proxy_env: &ProxyEnv) -> Self {
        let e = &config.endpoints;
        Self {
            service_url: e.service_url.clone(),
            instance: e.instance,
            tenant: e.tenant.clone(),
            state_dir: config.agent.state_dir.clone(),
            refresh_interval: e.refresh_interval,
            timeout: config.http.timeout,
            proxy: config.http.proxy.for_url(&e.service_url, proxy_env),
        }
    }
}

/// Where the current list came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The web service, at this version.
    Service {
        /// The list's version (`2024103100`).
        version: String,
    },
    /// The bundled fallback.
    Fallback,
}

/// What a [`EndpointsClient::refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The version was checked recently: no request.
    NotDue {
        /// When the next check is due.
        next_check: SystemTime,
    },
    /// Backing off after a failure or a 429: no request.
    BackingOff {
        /// When the next attempt is allowed.
        until: SystemTime,
    },
    /// The version is the cached list's: no download.
    Unchanged {
        /// The version.
        version: String,
    },
    /// A new list was downloaded and cached.
    Updated {
        /// Its version.
        version: String,
        /// Usable sets in it.
        sets: usize,
        /// Entries skipped.
        skipped: Vec<Skipped>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Seconds since the epoch of the last successful version check.
    #[serde(default)]
    last_check: Option<u64>,
    /// The version of the cached list.
    #[serde(default)]
    version: Option<String>,
    /// Failures in a row.
    #[serde(default)]
    failures: u32,
    /// No request before this (seconds since the epoch).
    #[serde(default)]
    retry_at: Option<u64>,
    /// Which list the cache holds: service URL, instance and tenant (another tenant gets other names).
    #[serde(default)]
    list: Option<String>,
}

/// Keeps the endpoint list current. All state lives in `state_dir`, so a restarted agent carries on
/// where it stopped: same GUID, same schedule, same backoff, same cached list.
#[derive(Debug)]
pub struct EndpointsClient {
    settings: ClientSettings,
    client_request_id: String,
    state: State,
    sets: Vec<EndpointSet>,
    source: Source,
}

impl EndpointsClient {
    /// Opens (creating if needed) the state in `settings.state_dir`. An unreadable or corrupt cache or
    /// state file is ignored (the fallback stands in and the next refresh fetches); a directory that
    /// cannot be created or a GUID that cannot be stored is an error.
    pub fn open(settings: ClientSettings) -> Result<Self, EndpointsError> {
        let dir = &settings.state_dir;
        std::fs::create_dir_all(dir).map_err(|source| EndpointsError::State {
            path: dir.clone(),
            source,
        })?;
        let client_request_id = load_or_create_guid(&dir.join(ID_FILE))?;
        let mut state: State = std::fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let list = list_identity(&settings);
        let cached = state
            .version
            .clone()
            .filter(|_| state.list.as_deref() == Some(list.as_str()))
            .and_then(|version| {
                let bytes = read_capped(&dir.join(CACHE_FILE), MAX_RESPONSE_BYTES)?;
                parse(&bytes).ok().map(|p| (version, p.sets))
            });
        let (sets, source) = match cached {
            Some((version, sets)) => (sets, Source::Service { version }),
            None => {
                // No usable cache for this service, instance and tenant: the version on record means
                // nothing, and the next refresh checks at once.
                state.version = None;
                state.last_check = None;
                state.list = Some(list);
                (fallback(), Source::Fallback)
            }
        };
        Ok(Self {
            settings,
            client_request_id,
            state,
            sets,
            source,
        })
    }

    /// The per-machine ClientRequestId sent with every request.
    pub fn client_request_id(&self) -> &str {
        &self.client_request_id
    }

    /// The current endpoint sets: the cached list, or the fallback.
    pub fn sets(&self) -> &[EndpointSet] {
        &self.sets
    }

    /// Where [`Self::sets`] came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Checks the version if it is due (and no backoff is running), and fetches the list if the version
    /// changed. On any failure the current list stays, the failure is recorded and the next attempt
    /// waits (`Retry-After` for a 429 that gives one in seconds; otherwise 1 min, doubling to 6 h).
    /// A clock that went backwards past the last check makes the check due.
    pub fn refresh(&mut self, now: SystemTime) -> Result<Refresh, EndpointsError> {
        let now_s = unix_secs(now);
        if let Some(until) = self.state.retry_at.filter(|&t| now_s < t) {
            return Ok(Refresh::BackingOff {
                until: from_unix(until),
            });
        }
        let interval = self.settings.refresh_interval.as_secs().max(1);
        if let Some(last) = self.state.last_check {
            if last <= now_s && now_s < last.saturating_add(interval) {
                return Ok(Refresh::NotDue {
                    next_check: from_unix(last.saturating_add(interval)),
                });
            }
        }
        match self.check_and_fetch() {
            Ok(outcome) => {
                self.state.failures = 0;
                self.state.retry_at = None;
                self.state.last_check = Some(now_s);
                self.save_state()?;
                Ok(outcome)
            }
            Err(e) => {
                self.state.failures = self.state.failures.saturating_add(1);
                let wait = match &e {
                    EndpointsError::RateLimited {
                        retry_after: Some(d),
                        ..
                    } => (*d).min(BACKOFF_MAX),
                    _ => backoff(self.state.failures),
                };
                self.state.retry_at = Some(now_s.saturating_add(wait.as_secs().max(1)));
                self.save_state()?;
                Err(e)
            }
        }
    }

    fn check_and_fetch(&mut self) -> Result<Refresh, EndpointsError> {
        let base = self.settings.service_url.trim_end_matches('/');
        let instance = self.settings.instance.as_str();
        let id = &self.client_request_id;
        let version_url = format!("{base}/version/{instance}?clientrequestid={id}");
        let body = self.get(&version_url, MAX_VERSION_BYTES)?;
        let version = parse_version(&body, instance)?;
        if self.state.version.as_deref() == Some(version.as_str()) {
            return Ok(Refresh::Unchanged { version });
        }
        let mut list_url = format!("{base}/endpoints/{instance}?clientrequestid={id}");
        if let Some(tenant) = &self.settings.tenant {
            list_url.push_str("&TenantName=");
            list_url.push_str(tenant);
        }
        list_url.push_str("&NoIPv6=false");
        let body = self.get(&list_url, MAX_RESPONSE_BYTES)?;
        let parsed = parse(&body)?;
        // Cache first, then record its version: a crash between the two only costs a refetch.
        let dir = &self.settings.state_dir;
        write_atomic(&dir.join(CACHE_FILE), &body)?;
        self.state.version = Some(version.clone());
        self.sets = parsed.sets;
        self.source = Source::Service {
            version: version.clone(),
        };
        Ok(Refresh::Updated {
            version,
            sets: self.sets.len(),
            skipped: parsed.skipped,
        })
    }

    fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, EndpointsError> {
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        let transport = |reason: String| EndpointsError::Transport {
            url: shown.clone(),
            reason,
        };
        let mut request = minreq::get(url)
            .with_timeout(self.settings.timeout.as_secs().max(1))
            .with_header("Accept", "application/json")
            .with_header("User-Agent", USER_AGENT)
            .with_max_headers_size(64 * 1024)
            .with_max_status_line_length(1024)
            .with_max_redirects(3);
        if let Some(proxy) = &self.settings.proxy {
            // As the HTTP checks read it: percent-encoded credentials are decoded.
            let proxy = ProxyServer::parse(proxy)
                .and_then(|p| p.minreq())
                .map_err(|e| transport(format!("proxy: {e}")))?;
            request = request.with_proxy(proxy);
        }
        let response = request.send_lazy().map_err(|e| transport(e.to_string()))?;
        match response.status_code {
            200 => {}
            429 => {
                let retry_after = response
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(EndpointsError::RateLimited {
                    url: shown,
                    retry_after,
                });
            }
            status => return Err(EndpointsError::Status { url: shown, status }),
        }
        let mut body = Vec::new();
        Read::take(response, limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| transport(e.to_string()))?;
        if body.len() > limit {
            return Err(EndpointsError::TooLarge { url: shown, limit });
        }
        Ok(body)
    }

    fn save_state(&self) -> Result<(), EndpointsError> {
        let json = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        write_atomic(&self.settings.state_dir.join(STATE_FILE), &json)
    }
}

/// What the cache is a copy of: the list URL without the ClientRequestId.
fn list_identity(settings: &ClientSettings) -> String {
    format!(
        "{}/endpoints/{}?TenantName={}",
        settings.service_url.trim_end_matches('/'),
        settings.instance.as_str(),
        settings.tenant.as_deref().unwrap_or("")
    )
}

fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_START
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

/// The `latest` of a version answer: `{"instance": "Worldwide", "latest": "2024103100"}`.
fn parse_version(body: &[u8], instance: &str) -> Result<String, EndpointsError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        instance: Option<String>,
        latest: String,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| EndpointsError::Version(one_line_json_error(&e)))?;
    if let Some(i) = &answer.instance {
        if !i.eq_ignore_ascii_case(instance) {
            return Err(EndpointsError::Version(format!(
                "answer for instance {i:?}, asked for {instance:?}"
            )));
        }
    }
    let v = answer.latest.trim();
    if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(EndpointsError::Version(format!("bad version {v:?}")));
    }
    Ok(v.to_owned())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_unix(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn read_capped(path: &Path, limit: usize) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() <= limit).then_some(bytes)
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never a mix: a temporary
/// file beside it, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EndpointsError> {
    let err = |source| EndpointsError::State {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)
}

/// The GUID in `path`, or a new random v4 GUID stored there.
fn load_or_create_guid(path: &Path) -> Result<String, EndpointsError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let id = text.trim().to_ascii_lowercase();
        if is_guid(&id) {
            return Ok(id);
        }
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| EndpointsError::State {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    let id = format_guid(bytes);
    write_atomic(path, format!("{id}\n").as_bytes())?;
    Ok(id)
}

/// A version 4 (random) GUID from 16 random bytes, in the usual 8-4-4-4-12 form.
pub fn format_guid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `s` is a GUID in 8-4-4-4-12 form.
pub fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_version_4() {
        let id = format_guid([0xff; 16]);
        assert!(is_guid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert_eq!(&id[19..20], "b");
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(40), BACKOFF_MAX);
    }

    #[test]
    fn cidr_containment() {
        let net: IpNet = "52.112.0.0/14".parse().unwrap();
        assert!(net.contains("52.115.255.1".parse().unwrap()));
        assert!(!net.contains("52.116.0.1".parse().unwrap()));
        let v6: IpNet = "2603:1063::/38".parse().unwrap();
        assert!(v6.contains("2603:1063:3ff::1".parse().unwrap()));
        assert!(!v6.contains("2603:1063:400::1".parse().unwrap()));
    }
}
