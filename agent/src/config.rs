//! The agent's configuration: TOML (`/etc/o365probe/config.toml`) or, on OpenWrt, UCI
//! (`/etc/config/o365probe`), both read into one [`Config`] with the same validation and the same one-line
//! errors (`FILE: KEY: PROBLEM`). Every key is optional and documented in docs/config.md.
//!
//! Conventions, the same in every section: durations are strings with a unit (`"20ms"`, `"2s"`, `"1h"`,
//! `"1h30m"`); ports are numbers 1-65535; relative paths are relative to the directory of the config file;
//! unknown keys are errors, never ignored. Keys in errors are paths: `target[1].service` is the second
//! `[[target]]` (counted from 0, as `uci show` counts sections).

use crate::uci::{self, Node, NodeDeserializer};
use o365probe_core::assess::{GeoPoint, LocationCode};
use o365probe_core::report::{self, Key, KEY_LEN, MAX_HOST_LEN, MAX_PORTS, MAX_TARGETS};
use o365probe_core::wire::endpoint::{Category, ServiceArea};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the TOML config is read from when no `--config` is given.
pub const DEFAULT_TOML_PATH: &str = "/etc/o365probe/config.toml";
/// Where OpenWrt keeps the UCI config.
pub const DEFAULT_UCI_PATH: &str = "/etc/config/o365probe";
/// The process exit code for a bad config file.
pub const EXIT_CODE: i32 = 2;
/// Microsoft's endpoints web service.
pub const MICROSOFT_ENDPOINTS_URL: &str = "https://endpoints.office.com";

/// The file formats the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// OpenWrt's UCI.
    Uci,
}

impl Format {
    /// The format of a file: `.toml` files are TOML; otherwise a file whose first statement is a UCI
    /// `config` or `package` line is UCI; anything else is TOML.
    pub fn detect(path: &Path, text: &str) -> Format {
        if path.extension().is_some_and(|e| e == "toml") {
            return Format::Toml;
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first.and_then(|l| l.split_whitespace().next()) {
            Some("config" | "package") => Format::Uci,
            _ => Format::Toml,
        }
    }
}

/// A bad config file, in one line: `FILE: KEY: PROBLEM`, `FILE:LINE:COLUMN: PROBLEM` for a syntax error,
/// or `FILE: PROBLEM` when the file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// Where in it.
    pub place: Place,
    /// What is wrong (one line).
    pub problem: String,
}

/// Where a config error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (it cannot be read).
    File,
    /// A syntax error at a line (1-based) and, for TOML, a column (1-based, in characters).
    Line {
        /// Line number.
        line: usize,
        /// Column number.
        column: Option<usize>,
    },
    /// A key, as a path: `dns.timeout`, `target[1].tcp[0]`.
    Key(String),
}

impl ConfigError {
    fn at_key(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            place: Place::Key(key.into()),
            problem: problem.into(),
        }
    }

    /// The key the error names, if it names one.
    pub fn key(&self) -> Option<&str> {
        match &self.place {
            Place::Key(k) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = one_line(&self.file.display().to_string());
        let problem = one_line(&self.problem);
        match &self.place {
            Place::File => write!(f, "{file}: {problem}"),
            Place::Line {
                line,
                column: Some(column),
            } => write!(f, "{file}:{line}:{column}: {problem}"),
            Place::Line { line, column: None } => write!(f, "{file}:{line}: {problem}"),
            Place::Key(key) => write!(f, "{file}: {}: {problem}", one_line(key)),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Control characters (a newline in a hostile value) escaped, so an error stays one line.
fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The whole configuration. `Config::default()` is what an empty file means.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[agent]`: who and where this agent is, and where it keeps its state.
    pub agent: Agent,
    /// `[dns]`: the resolvers to test and how.
    pub dns: Dns,
    /// `[tls]`: what a genuine Microsoft certificate chain looks like.
    pub tls: Tls,
    /// `[tcp]`: connect-time sampling.
    pub tcp: Tcp,
    /// `[teams]`: the STUN train to Teams media relays.
    pub teams: Teams,
    /// `[http]`: HTTP checks and the proxy.
    pub http: Http,
    /// `[download]`: the throughput test.
    pub download: Download,
    /// `[path]`: traceroute.
    pub path: PathCheck,
    /// `[geo]`: where addresses are, to judge how far the resolver and the egress are.
    pub geo: Geo,
    /// `[[uplink]]`: the WAN links to assess separately; empty means the routing table's choice.
    pub uplinks: Vec<Uplink>,
    /// `[endpoints]`: targets from Microsoft's endpoints web service.
    pub endpoints: EndpointService,
    /// `[[target]]`: targets given in the config.
    pub targets: Vec<Target>,
    /// `[collector]`: where `o365probe run` reports to.
    pub collector: Option<Collector>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            agent: Agent::default(),
            dns: Dns::default(),
            tls: Tls::default(),
            tcp: Tcp::default(),
            teams: Teams::default(),
            http: Http::default(),
            download: Download::default(),
            path: PathCheck::default(),
            geo: Geo::default(),
            uplinks: Vec::new(),
            endpoints: RawEndpoints::default().resolve(false),
            targets: Vec::new(),
            collector: None,
        }
    }
}

/// `[agent]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agent {
    /// `office`: the office's name in reports; default: the router's host name.
    #[serde(deserialize_with = "office_name")]
    pub office: Option<String>,
    /// `location`: where the office is, to judge "far" front doors, resolvers and egress.
    pub location: Option<OfficeLocation>,
    /// `state_dir`: ClientRequestId, endpoint cache, sequence counter, report spool.
    pub state_dir: PathBuf,
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            office: None,
            location: None,
            state_dir: PathBuf::from("/var/lib/o365probe"),
        }
    }
}

impl Agent {
    /// The office name: the configured one, else the host name, else `"unnamed"`.
    pub fn office_name(&self) -> String {
        if let Some(name) = &self.office {
            return name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unnamed".to_owned())
    }
}

/// Where the office is: a known IATA location code (`"LHR"`) or `"latitude,longitude"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OfficeLocation {
    /// A location code from the core's table.
    Code(LocationCode),
    /// Coordinates in decimal degrees.
    Point(GeoPoint),
}

impl OfficeLocation {
    /// Where on Earth the office is.
    pub fn point(&self) -> GeoPoint {
        match self {
            // Parsing accepts only codes the table knows.
            Self::Code(code) => code
                .location()
                .map_or(GeoPoint { lat: 0.0, lon: 0.0 }, |l| l.point()),
            Self::Point(p) => *p,
        }
    }

    /// Parses `"LHR"` (any case) or `"51.47,-0.45"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((lat, lon)) = s.split_once(',') {
            let lat: f64 = lat.trim().parse().map_err(|_| bad_location(s))?;
            let lon: f64 = lon.trim().parse().map_err(|_| bad_location(s))?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(format!(
                    "{s:?} is off the map (latitude -90 to 90, longitude -180 to 180)"
                ));
            }
            return Ok(Self::Point(GeoPoint { lat, lon }));
        }
        match LocationCode::parse(s) {
            Some(code) if code.is_known() => Ok(Self::Code(code)),
            Some(_) => Err(format!(
                "unknown location code {s:?} (expected a known IATA code like \"LHR\", or \"latitude,longitude\")"
            )),
            None => Err(bad_location(s)),
        }
    }
}

fn bad_location(s: &str) -> String {
    format!("invalid location {s:?} (expected an IATA code like \"LHR\", or \"latitude,longitude\" like \"51.47,-0.45\")")
}

impl<'de> Deserialize<'de> for OfficeLocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(de::Error::custom)
    }
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// `resolver`: `"system"`, one address or a list.
    pub resolver: Resolvers,
    /// `resolv_conf`: where the system's resolvers are listed.
    pub resolv_conf: PathBuf,
    /// `timeout`: how long one try waits for an answer.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// `tries`: how many times a query is sent before it counts as failed.
    pub tries: u32,
    /// `whoami_a`: a name whose A record is the address of the resolver that asks for it.
    #[serde(deserialize_with = "dns_name")]
    pub whoami_a: String,
    /// `whoami_txt`: a name whose TXT record holds the address of the resolver that asks for it.
    #[serde(deserialize_with = "dns_name")]
    pub whoami_txt: String,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            resolver: Resolvers::System,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            timeout: Duration::from_secs(2),
            tries: 2,
            whoami_a: "whoami.akamai.net".into(),
            whoami_txt: "o-o.myaddr.l.google.com".into(),
        }
    }
}

impl Dns {
    /// The resolvers to use: the configured ones, or the `nameserver` lines of `resolv_conf`.
    pub fn resolvers(&self) -> std::io::Result<Vec<SocketAddr>> {
        match &self.resolver {
            Resolvers::Addrs(addrs) => Ok(addrs.clone()),
            Resolvers::System => Ok(parse_resolv_conf(&std::fs::read_to_string(
                &self.resolv_conf,
            )?)),
        }
    }
}

/// The most resolvers one agent tests.
pub const MAX_RESOLVERS: usize = 8;

/// Which resolvers to test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolvers {
    /// Those in `resolv_conf`.
    System,
    /// These addresses (port 53 unless given).
    Addrs(Vec<SocketAddr>),
}

/// The `nameserver` addresses in a resolv.conf, on port 53, at most [`MAX_RESOLVERS`]; a scoped IPv6
/// address (`fe80::1%eth0`) loses its scope.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            let addr = words.next()?;
            let addr = addr.split_once('%').map_or(addr, |(a, _)| a);
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .take(MAX_RESOLVERS)
        .collect()
}

/// Parses a resolver address: `198.51.100.53`, `198.51.100.53:5353`, `2001:db8::53`,
/// `[2001:db8::53]:5353`.
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    match s.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        _ => Err(format!(
            "invalid resolver {s:?} (expected an IP address with an optional port, like 198.51.100.53, 198.51.100.53:53 or [2001:db8::53]:53, or \"system\")"
        )),
    }
}

struct ResolverAddr(SocketAddr);

impl<'de> Deserialize<'de> for ResolverAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_resolver(&s).map(Self).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Resolvers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Resolvers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"system\", an IP address, or a list of IP addresses")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Resolvers, E> {
                if s.trim().eq_ignore_ascii_case("system") {
                    return Ok(Resolvers::System);
                }
                parse_resolver(s)
                    .map(|a| Resolvers::Addrs(vec![a]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Resolvers, A::Error> {
                let mut addrs = Vec::new();
                while let Some(ResolverAddr(a)) = seq.next_element()? {
                    if addrs.len() == MAX_RESOLVERS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_RESOLVERS} resolvers"
                        )));
                    }
                    addrs.push(a);
                }
                if addrs.is_empty() {
                    return Err(de::Error::custom(
                        "an empty list (give addresses, or \"system\")",
                    ));
                }
                Ok(Resolvers::Addrs(addrs))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// `trusted_roots`: a PEM file of the roots a genuine chain ends in; `None`: the bundled
    /// Microsoft/DigiCert roots. Not read at load time.
    pub trusted_roots: Option<PathBuf>,
    /// `expected_issuers`: a chain whose issuing CA's name contains none of these (case-insensitive)
    /// is flagged as possible TLS inspection.
    #[serde(deserialize_with = "issuer_names")]
    pub expected_issuers: Vec<String>,
    /// `timeout`: how long a handshake may take.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            trusted_roots: None,
            expected_issuers: vec!["Microsoft".into(), "DigiCert".into()],
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[tcp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tcp {
    /// `samples`: connects per target per cycle.
    pub samples: u32,
    /// `spacing`: pause between two connects to one target.
    #[serde(deserialize_with = "duration")]
    pub spacing: Duration,
    /// `timeout`: how long one connect may take before it counts as failed.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for Tcp {
    fn default() -> Self {
        Self {
            samples: 10,
            spacing: Duration::from_millis(100),
            timeout: Duration::from_secs(3),
        }
    }
}

/// `[teams]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Teams {
    /// `count`: STUN binding requests per train.
    pub count: u32,
    /// `spacing`: time between two requests (20 ms is one audio packet).
    #[serde(deserialize_with = "duration")]
    pub spacing: Duration,
    /// `drain`: how long to wait for late answers after the last request.
    #[serde(deserialize_with = "duration")]
    pub drain: Duration,
    /// `dscp_ef`: mark the train DSCP EF (46), as Teams audio is when QoS is deployed.
    pub dscp_ef: bool,
    /// `ports`: relay UDP ports that get a train, for targets without their own `udp` list.
    #[serde(deserialize_with = "ports")]
    pub ports: Vec<u16>,
}

impl Default for Teams {
    fn default() -> Self {
        Self {
            // Microsoft judges loss "over 15 s": 750 requests at 20 ms. A 1 s train sees one lost packet as
            // 2 % and misses 3 % loss one time in twenty.
            count: 750,
            spacing: Duration::from_millis(20),
            drain: Duration::from_secs(1),
            dscp_ef: false,
            ports: vec![3478],
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// `proxy`: `"env"`, `"none"` or an `http://` proxy URL.
    pub proxy: Proxy,
    /// `timeout`: for one HTTP check, to the end of the response headers.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// `check`: which targets get an HTTP check.
    pub check: HttpChecks,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            proxy: Proxy::Env,
            timeout: Duration::from_secs(10),
            check: HttpChecks::All,
        }
    }
}

/// How HTTP(S) requests reach the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (or their lower-case forms) from the environment.
    Env,
    /// Directly.
    None,
    /// Through this HTTP proxy (`http://[user:password@]host[:port]`).
    Url(String),
}

/// The proxy settings of the environment, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `HTTPS_PROXY` / `https_proxy`.
    pub https: Option<String>,
    /// `HTTP_PROXY` / `http_proxy`.
    pub http: Option<String>,
    /// `NO_PROXY` / `no_proxy`, split at commas.
    pub no_proxy: Vec<String>,
}

const PROXY_VARS: [&str; 8] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

impl ProxyEnv {
    /// Reads the proxy variables through `var` (lower case first, as curl does).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |lower: &str, upper: &str| {
            var(lower)
                .or_else(|| var(upper))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            https: get("https_proxy", "HTTPS_PROXY"),
            http: get("http_proxy", "HTTP_PROXY"),
            no_proxy: get("no_proxy", "NO_PROXY")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Reads the proxy variables and removes them from the environment. minreq reads `https_proxy`,
    /// `http_proxy` and `all_proxy` itself whenever a request has no proxy, which would defeat
    /// `proxy = "none"` and `NO_PROXY`; call this once at startup, before any thread is spawned.
    pub fn take() -> Self {
        let env = Self::from_vars(|k| std::env::var(k).ok());
        for var in PROXY_VARS {
            std::env::remove_var(var);
        }
        env
    }

    /// Whether `NO_PROXY` sends requests to `host` direct: `*`, the host itself, or a domain it is in
    /// (`example.com`, `.example.com` and `*.example.com` all cover `www.example.com`).
    fn bypasses(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let domain = entry.trim_start_matches('*').trim_start_matches('.');
            !domain.is_empty()
                && (host == domain
                    || host
                        .strip_suffix(domain)
                        .is_some_and(|head| head.ends_with('.')))
        })
    }
}

impl Proxy {
    /// The proxy URL for a request to `url`, or `None` to go direct.
    pub fn for_url(&self, url: &str, env: &ProxyEnv) -> Option<String> {
        match self {
            Proxy::None => None,
            Proxy::Url(u) => Some(u.clone()),
            Proxy::Env => {
                let parsed = parse_url(url).ok()?;
                if env.bypasses(&parsed.host) {
                    return None;
                }
                if parsed.scheme == "https" {
                    env.https.clone()
                } else {
                    env.http.clone()
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Proxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        if t.eq_ignore_ascii_case("env") {
            return Ok(Proxy::Env);
        }
        if t.eq_ignore_ascii_case("none") {
            return Ok(Proxy::None);
        }
        match parse_url(t) {
            Ok(u) if u.scheme == "http" && (u.path.is_empty() || u.path == "/") => {
                Ok(Proxy::Url(t.to_owned()))
            }
            _ => Err(de::Error::custom(format!(
                "invalid proxy {s:?} (expected \"env\", \"none\" or an http:// URL like \"http://proxy.example:3128\")"
            ))),
        }
    }
}

/// Which targets get an HTTP check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpChecks {
    /// Every target with a TCP port.
    All,
    /// Targets marked required.
    Required,
    /// None.
    None,
}

impl<'de> Deserialize<'de> for HttpChecks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "required" => Ok(Self::Required),
            "none" => Ok(Self::None),
            _ => Err(de::Error::custom(format!(
                "unknown choice {s:?} (expected all, required or none)"
            ))),
        }
    }
}

/// `[download]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Download {
    /// `url`: an http(s) URL of a file to download; `None`: no download test.
    #[serde(deserialize_with = "download_url")]
    pub url: Option<String>,
    /// `max_bytes`: stop after this many bytes.
    pub max_bytes: u64,
    /// `timeout`: stop after this long.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// `latency_interval`: how often latency is sampled during the download (buffer bloat).
    #[serde(deserialize_with = "duration")]
    pub latency_interval: Duration,
}

impl Default for Download {
    fn default() -> Self {
        Self {
            url: None,
            max_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            latency_interval: Duration::from_millis(100),
        }
    }
}

/// `[path]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathCheck {
    /// `traceroute`: trace the path to each front door.
    pub traceroute: bool,
    /// `max_hops`: give up after this many hops.
    pub max_hops: u32,
}

impl Default for PathCheck {
    fn default() -> Self {
        Self {
            traceroute: true,
            max_hops: 30,
        }
    }
}

/// `[geo]`: IP geolocation, to tell where the resolver and the office's egress are (the front door's
/// place comes from its location code). Without either file those two findings cannot be judged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Geo {
    /// `prefixes`: a CSV file of `prefix,location` lines (location an IATA code like `LHR` or
    /// `latitude longitude`), for the operator's own ranges; looked up first.
    pub prefixes: Option<PathBuf>,
    /// `database`: a MaxMind-format city database (DB-IP Lite or GeoLite2 City `.mmdb`).
    pub database: Option<PathBuf>,
}

/// One `[[uplink]]`: a WAN link assessed on its own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uplink {
    /// `name`: how reports name it (in UCI, the section name unless `option name` is given).
    #[serde(deserialize_with = "uplink_name")]
    pub name: String,
    /// `interface`: bind probes to this device (SO_BINDTODEVICE).
    #[serde(default, deserialize_with = "interface")]
    pub interface: Option<String>,
    /// `source`: send probes from this address.
    #[serde(default)]
    pub source: Option<IpAddr>,
}

/// `[endpoints]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointService {
    /// `enabled`: take targets from the service (default: only when no `[[target]]` is given).
    pub enabled: bool,
    /// `instance`: the Microsoft 365 cloud.
    pub instance: Instance,
    /// `tenant`: the tenant name (`contoso` of contoso.onmicrosoft.com), for tenant-specific hosts.
    pub tenant: Option<String>,
    /// `service_url`: base URL of the service.
    pub service_url: String,
    /// `refresh_interval`: how often the list's version is checked.
    pub refresh_interval: Duration,
    /// `services`: service areas to probe.
    pub services: Vec<ServiceArea>,
    /// `categories`: categories to probe.
    pub categories: Vec<Category>,
    /// `required_only`: probe only endpoint sets Microsoft marks required.
    pub required_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawEndpoints {
    enabled: Option<bool>,
    instance: Instance,
    #[serde(deserialize_with = "tenant")]
    tenant: Option<String>,
    #[serde(deserialize_with = "service_url")]
    service_url: String,
    #[serde(deserialize_with = "duration")]
    refresh_interval: Duration,
    #[serde(deserialize_with = "services")]
    services: Vec<ServiceArea>,
    #[serde(deserialize_with = "categories")]
    categories: Vec<Category>,
    required_only: bool,
}

impl Default for RawEndpoints {
    fn default() -> Self {
        Self {
            enabled: None,
            instance: Instance::Worldwide,
            tenant: None,
            service_url: MICROSOFT_ENDPOINTS_URL.into(),
            refresh_interval: Duration::from_secs(3600),
            services: ServiceArea::ALL.to_vec(),
            categories: vec![Category::Optimize, Category::Allow],
            required_only: false,
        }
    }
}

impl RawEndpoints {
    fn resolve(self, has_targets: bool) -> EndpointService {
        EndpointService {
            enabled: self.enabled.unwrap_or(!has_targets),
            instance: self.instance,
            tenant: self.tenant,
            service_url: self.service_url,
            refresh_interval: self.refresh_interval,
            services: self.services,
            categories: self.categories,
            required_only: self.required_only,
        }
    }
}

/// A Microsoft 365 cloud, as the endpoints web service names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// `Worldwide`.
    Worldwide,
    /// `USGovDoD`.
    UsGovDod,
    /// `USGovGCCHigh`.
    UsGovGccHigh,
    /// `China` (operated by 21Vianet).
    China,
}

impl Instance {
    /// The name in the web service's URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Worldwide => "Worldwide",
            Self::UsGovDod => "USGovDoD",
            Self::UsGovGccHigh => "USGovGCCHigh",
            Self::China => "China",
        }
    }
}

impl<'de> Deserialize<'de> for Instance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        [
            Self::Worldwide,
            Self::UsGovDod,
            Self::UsGovGccHigh,
            Self::China,
        ]
        .into_iter()
        .find(|i| i.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            de::Error::custom(format!(
                "unknown instance {s:?} (expected Worldwide, USGovDoD, USGovGCCHigh or China)"
            ))
        })
    }
}

/// A target to probe: from a `[[target]]` or from an endpoint set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `host`: a host name or IP literal.
    #[serde(deserialize_with = "target_host")]
    pub host: String,
    /// `service`: the service area.
    #[serde(deserialize_with = "service")]
    pub service: ServiceArea,
    /// `category`: the connectivity category.
    #[serde(default = "default_category", deserialize_with = "category")]
    pub category: Category,
    /// `tcp`: TCP ports, most important first.
    #[serde(default, deserialize_with = "ports")]
    pub tcp: Vec<u16>,
    /// `udp`: UDP ports.
    #[serde(default, deserialize_with = "ports")]
    pub udp: Vec<u16>,
    /// `required`: a failure is a finding.
    #[serde(default = "yes")]
    pub required: bool,
    /// `http_path`: the path of the HTTP check (default `/`).
    #[serde(default, deserialize_with = "http_path")]
    pub http_path: Option<String>,
}

fn default_category() -> Category {
    Category::Default
}

fn yes() -> bool {
    true
}

/// A target does not fit the report manifest's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {0:?} does not fit the report manifest (host at most {MAX_HOST_LEN} bytes, at most {MAX_PORTS} ports each)")]
pub struct TargetTooLarge(pub String);

impl TryFrom<&Target> for report::Target {
    type Error = TargetTooLarge;

    fn try_from(t: &Target) -> Result<Self, TargetTooLarge> {
        let err = || TargetTooLarge(t.host.clone());
        Ok(report::Target {
            host: heapless::String::try_from(t.host.as_str()).map_err(|_| err())?,
            service_area: t.service,
            category: t.category,
            required: t.required,
            tcp_ports: heapless::Vec::from_slice(&t.tcp).map_err(|_| err())?,
            udp_ports: heapless::Vec::from_slice(&t.udp).map_err(|_| err())?,
        })
    }
}

/// `[collector]`: validated now, used by `o365probe run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// `url`: `https://host[:port]/path`, `http://…`, or `udp://host:port`.
    pub url: String,
    /// `agent_id`: this agent's id, as `o365collector agent add` printed it.
    pub agent_id: u32,
    /// `key` or `key_file`.
    pub key: KeySource,
}

/// Where the agent's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `key`: 64 hex digits in the config.
    Inline(Key),
    /// `key_file`: a file holding the 64 hex digits (read when needed, so `check` runs without it).
    File(PathBuf),
}

impl Collector {
    /// The key; a `key_file` is read now. `config` is the config file, for the error.
    pub fn load_key(&self, config: &Path) -> Result<Key, ConfigError> {
        match &self.key {
            KeySource::Inline(k) => Ok(k.clone()),
            KeySource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::at_key(
                        config,
                        "collector.key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                parse_key(text.trim()).map_err(|p| {
                    ConfigError::at_key(
                        config,
                        "collector.key_file",
                        format!("{}: {p}", path.display()),
                    )
                })
            }
        }
    }
}

/// Parses a key: exactly 64 hex digits.
pub fn parse_key(s: &str) -> Result<Key, String> {
    let bytes = s.as_bytes();
    if bytes.len() != KEY_LEN * 2 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "not a key: expected {} hex digits, found {} characters",
            KEY_LEN * 2,
            s.chars().count()
        ));
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).unwrap_or("00");
        key[i] = u8::from_str_radix(hex, 16).unwrap_or(0);
    }
    Ok(Key::from_bytes(key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    #[serde(deserialize_with = "collector_url")]
    url: String,
    agent_id: u32,
    #[serde(default)]
    key: Option<KeyText>,
    #[serde(default)]
    key_file: Option<PathBuf>,
}

struct KeyText(Key);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // The message must not echo the key.
        parse_key(s.trim()).map(KeyText).map_err(de::Error::custom)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    agent: Agent,
    #[serde(default)]
    dns: Dns,
    #[serde(default)]
    tls: Tls,
    #[serde(default)]
    tcp: Tcp,
    #[serde(default)]
    teams: Teams,
    #[serde(default)]
    http: Http,
    #[serde(default)]
    download: Download,
    #[serde(default)]
    path: PathCheck,
    #[serde(default)]
    geo: Geo,
    #[serde(default)]
    uplink: Vec<Uplink>,
    #[serde(default)]
    endpoints: RawEndpoints,
    #[serde(default)]
    target: Vec<Target>,
    #[serde(default)]
    collector: Option<RawCollector>,
}

impl Config {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        Self::from_toml_str(&text, path)
    }

    /// Reads a UCI config file (`/etc/config/o365probe`).
    pub fn from_uci(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        Self::from_uci_str(&text, path)
    }

    /// Reads a config file in the format [`Format::detect`] finds.
    pub fn load_any(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        match Format::detect(path, &text) {
            Format::Toml => Self::from_toml_str(&text, path),
            Format::Uci => Self::from_uci_str(&text, path),
        }
    }

    /// The config file to read when none is given: see [`Config::choose_path`].
    pub fn default_path() -> (PathBuf, Format) {
        Self::choose_path(Path::new(DEFAULT_TOML_PATH), Path::new(DEFAULT_UCI_PATH))
    }

    /// `uci` when it exists and `toml` does not (an OpenWrt install); otherwise `toml`.
    pub fn choose_path(toml: &Path, uci: &Path) -> (PathBuf, Format) {
        if uci.exists() && !toml.exists() {
            (uci.to_path_buf(), Format::Uci)
        } else {
            (toml.to_path_buf(), Format::Toml)
        }
    }

    /// Reads the default config file; when neither default file exists, the defaults.
    pub fn load_default() -> Result<Config, ConfigError> {
        let (path, format) = Self::default_path();
        if !path.exists() {
            return Ok(Config::default());
        }
        match format {
            Format::Toml => Self::load(&path),
            Format::Uci => Self::from_uci(&path),
        }
    }

    /// Parses TOML text; `file` names it in errors and anchors relative paths.
    pub fn from_toml_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let de = toml::de::Deserializer::parse(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError {
                file: file.to_path_buf(),
                place: Place::Line {
                    line,
                    column: Some(column),
                },
                problem: format!("invalid TOML: {}", e.message().trim()),
            }
        })?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            keyed_error(file, &path, e.inner().message(), Format::Toml)
        })?;
        raw.finish(file)
    }

    /// Parses UCI text; `file` names it in errors and anchors relative paths.
    pub fn from_uci_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let package = uci::parse(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            place: Place::Line {
                line: e.line,
                column: None,
            },
            problem: e.problem,
        })?;
        let tree =
            uci_tree(&package).map_err(|(key, problem)| ConfigError::at_key(file, key, problem))?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(NodeDeserializer(tree)).map_err(|e| {
                let path = e.path().to_string();
                keyed_error(file, &path, &e.inner().0, Format::Uci)
            })?;
        raw.finish(file)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        place: Place::File,
        problem: format!("cannot read: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let text = String::from_utf8_lossy(upto);
        let (line, column) = line_column(&text, text.len());
        ConfigError {
            file: path.to_path_buf(),
            place: Place::Line {
                line,
                column: Some(column),
            },
            problem: "not UTF-8 text".into(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Section types that may repeat (each becomes a list); the others may appear once.
const REPEATED_SECTIONS: [&str; 2] = ["target", "uplink"];

/// The UCI package as a tree shaped like the TOML file: singleton sections as tables, repeated
/// sections as arrays. An uplink section's name is its `name` unless an option gives one.
fn uci_tree(package: &uci::Package) -> Result<Node, (String, String)> {
    let mut top: Vec<(String, Node)> = Vec::new();
    let mut first_line: Vec<(String, usize)> = Vec::new();
    for section in &package.sections {
        let mut options: Vec<(String, Node)> = section
            .options
            .iter()
            .map(|o| {
                let node = match &o.value {
                    uci::Value::Single(s) => Node::Str(s.clone()),
                    uci::Value::List(l) => Node::List(l.clone()),
                };
                (o.name.clone(), node)
            })
            .collect();
        let kind = section.kind.as_str();
        if kind == "uplink" && section.option("name").is_none() {
            if let Some(name) = &section.name {
                options.insert(0, ("name".into(), Node::Str(name.clone())));
            }
        }
        let node = Node::Map(options);
        if REPEATED_SECTIONS.contains(&kind) {
            match top.iter_mut().find(|(k, _)| k == kind) {
                Some((_, Node::Seq(items))) => items.push(node),
                _ => top.push((kind.to_owned(), Node::Seq(vec![node]))),
            }
        } else if let Some((_, line)) = first_line.iter().find(|(k, _)| k == kind) {
            return Err((
                kind.to_owned(),
                format!(
                    "section given twice (lines {line} and {}); only one `config {kind}` is allowed",
                    section.line
                ),
            ));
        } else {
            first_line.push((kind.to_owned(), section.line));
            top.push((kind.to_owned(), node));
        }
    }
    Ok(Node::Map(top))
}

/// Turns serde's wording into ours: the key gets named, the problem said in config terms.
fn keyed_error(file: &Path, path: &str, message: &str, format: Format) -> ConfigError {
    let path = if path == "." { "" } else { path };
    let join = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest
            .split_once("expected")
            .map(|(_, e)| e.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let what = if path.ends_with(field) && path.len() > field.len() || path == field {
            path.to_owned()
        } else {
            join(field)
        };
        let top_level = !what.contains('.') && !what.contains('[');
        let noun = match (top_level, format) {
            (true, Format::Uci) => "unknown section type",
            (true, Format::Toml) => "unknown section",
            (false, _) => "unknown key",
        };
        let problem = match closest(field, &expected) {
            Some(guess) => format!("{noun} (did you mean {guess}?)"),
            None if expected.is_empty() => noun.to_owned(),
            None => format!("{noun} (expected {})", or_list(&expected)),
        };
        return ConfigError::at_key(file, what, problem);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return ConfigError::at_key(file, join(field), "missing (this key is required)");
    }
    ConfigError::at_key(file, path, plain_types(message))
}

/// "expected u32" means nothing to a network engineer.
fn plain_types(message: &str) -> String {
    let mut m = message.trim().to_owned();
    for (rust, plain) in [
        ("expected u8", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("expected a string", "expected a string in quotes"),
    ] {
        if let Some(stripped) = m.strip_suffix(rust) {
            m = format!("{stripped}{plain}");
        }
    }
    if let Some(i) = m.find("expected struct ") {
        m = format!("{}expected a section", &m[..i]);
    }
    m
}

fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The expected name within two edits of a typo.
fn closest<'a>(typo: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|e| (edit_distance(typo, e), *e))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + usize::from(ca != *cb)).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[b.len()]
}

impl RawConfig {
    fn finish(self, file: &Path) -> Result<Config, ConfigError> {
        let err = |key: String, problem: String| ConfigError::at_key(file, key, problem);
        let base = file.parent().unwrap_or(Path::new("."));
        let anchor = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };

        check_range("dns.tries", self.dns.tries, 1, 10).map_err(|(k, p)| err(k, p))?;
        for (key, value, min, max) in [
            ("dns.timeout", self.dns.timeout, ms(10), secs(60)),
            ("tls.timeout", self.tls.timeout, ms(100), secs(120)),
            ("tcp.spacing", self.tcp.spacing, ms(0), secs(60)),
            ("tcp.timeout", self.tcp.timeout, ms(10), secs(60)),
            ("teams.spacing", self.teams.spacing, ms(1), secs(1)),
            ("teams.drain", self.teams.drain, ms(0), secs(10)),
            ("http.timeout", self.http.timeout, ms(100), secs(300)),
            (
                "download.timeout",
                self.download.timeout,
                secs(1),
                secs(3600),
            ),
            (
                "download.latency_interval",
                self.download.latency_interval,
                ms(10),
                secs(10),
            ),
            (
                "endpoints.refresh_interval",
                self.endpoints.refresh_interval,
                secs(60),
                secs(30 * 86400),
            ),
        ] {
            check_duration(key, value, min, max).map_err(|(k, p)| err(k, p))?;
        }
        check_range("tcp.samples", self.tcp.samples, 1, 100).map_err(|(k, p)| err(k, p))?;
        check_range("teams.count", self.teams.count, 1, 1000).map_err(|(k, p)| err(k, p))?;
        check_range("path.max_hops", self.path.max_hops, 1, 64).map_err(|(k, p)| err(k, p))?;
        if !(1..=1 << 30).contains(&self.download.max_bytes) {
            return Err(err(
                "download.max_bytes".into(),
                format!(
                    "{} is out of range (1 to 1073741824)",
                    self.download.max_bytes
                ),
            ));
        }
        check_port_list("teams.ports", &self.teams.ports).map_err(|(k, p)| err(k, p))?;
        if self.teams.ports.is_empty() {
            return Err(err(
                "teams.ports".into(),
                "an empty list (give at least one port)".into(),
            ));
        }
        if self.endpoints.service_url.trim_end_matches('/') == MICROSOFT_ENDPOINTS_URL
            && self.endpoints.refresh_interval < secs(3600)
        {
            return Err(err(
                "endpoints.refresh_interval".into(),
                "below \"1h\": Microsoft asks clients to check the version at most hourly".into(),
            ));
        }

        for (i, uplink) in self.uplink.iter().enumerate() {
            if uplink.interface.is_none() && uplink.source.is_none() {
                return Err(err(
                    format!("uplink[{i}]"),
                    "needs an interface, a source address, or both".into(),
                ));
            }
            if let Some(j) = self.uplink[..i].iter().position(|u| u.name == uplink.name) {
                return Err(err(
                    format!("uplink[{i}].name"),
                    format!("{:?} is already the name of uplink[{j}]", uplink.name),
                ));
            }
        }

        if self.target.len() > MAX_TARGETS {
            return Err(err(
                "target".into(),
                format!(
                    "{} targets; at most {MAX_TARGETS} fit a report manifest",
                    self.target.len()
                ),
            ));
        }
        for (i, t) in self.target.iter().enumerate() {
            if t.tcp.is_empty() && t.udp.is_empty() {
                return Err(err(
                    format!("target[{i}]"),
                    format!("{:?} needs at least one tcp or udp port", t.host),
                ));
            }
            check_port_list(&format!("target[{i}].tcp"), &t.tcp).map_err(|(k, p)| err(k, p))?;
            check_port_list(&format!("target[{i}].udp"), &t.udp).map_err(|(k, p)| err(k, p))?;
            if t.http_path.is_some() && t.tcp.is_empty() {
                return Err(err(
                    format!("target[{i}].http_path"),
                    "an HTTP check needs a tcp port".into(),
                ));
            }
        }

        let collector = match self.collector {
            None => None,
            Some(c) => {
                let key = match (c.key, c.key_file) {
                    (Some(KeyText(k)), None) => KeySource::Inline(k),
                    (None, Some(path)) => KeySource::File(anchor(path)),
                    (Some(_), Some(_)) => {
                        return Err(err(
                            "collector.key".into(),
                            "give key or key_file, not both".into(),
                        ))
                    }
                    (None, None) => {
                        return Err(err(
                            "collector.key".into(),
                            "missing (give key, 64 hex digits, or key_file)".into(),
                        ))
                    }
                };
                Some(Collector {
                    url: c.url,
                    agent_id: c.agent_id,
                    key,
                })
            }
        };

        let has_targets = !self.target.is_empty();
        let mut agent = self.agent;
        agent.state_dir = anchor(agent.state_dir);
        let mut dns = self.dns;
        dns.resolv_conf = anchor(dns.resolv_conf);
        let mut tls = self.tls;
        tls.trusted_roots = tls.trusted_roots.map(anchor);
        let geo = Geo {
            prefixes: self.geo.prefixes.map(anchor),
            database: self.geo.database.map(anchor),
        };
        Ok(Config {
            agent,
            dns,
            tls,
            tcp: self.tcp,
            teams: self.teams,
            http: self.http,
            download: self.download,
            path: self.path,
            geo,
            uplinks: self.uplink,
            endpoints: self.endpoints.resolve(has_targets),
            targets: self.target,
            collector,
        })
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn check_range(key: &str, value: u32, min: u32, max: u32) -> Result<(), (String, String)> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err((
            key.into(),
            format!("{value} is out of range ({min} to {max})"),
        ))
    }
}

fn check_duration(
    key: &str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), (String, String)> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err((
            key.into(),
            format!(
                "{} is out of range ({} to {})",
                format_duration(value),
                format_duration(min),
                format_duration(max)
            ),
        ))
    }
}

fn check_port_list(key: &str, ports: &[u16]) -> Result<(), (String, String)> {
    if ports.len() > MAX_PORTS {
        return Err((
            key.into(),
            format!("{} ports; at most {MAX_PORTS}", ports.len()),
        ));
    }
    for (i, p) in ports.iter().enumerate() {
        if ports[..i].contains(p) {
            return Err((format!("{key}[{i}]"), format!("port {p} is listed twice")));
        }
    }
    Ok(())
}

/// Parses a duration: one or more `<number><unit>` with units `us`, `ms`, `s`, `m`, `h`, `d`
/// (`"20ms"`, `"1.5s"`, `"1h30m"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {s:?} (expected a number and a unit: us, ms, s, m, h or d, like \"20ms\", \"2s\" or \"1h\")")
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let scale = match unit.trim() {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = next.trim_start();
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration the way the config writes it: `"20ms"`, `"2s"`, `"1h"`, `"1h30m"`.
pub fn format_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 && !d.is_zero() {
        return format!("{}us", d.as_micros());
    }
    if total_ms % 1000 != 0 {
        return format!("{total_ms}ms");
    }
    let s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (d_, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    for (n, unit) in [(d_, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration string with a unit, like \"2s\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a bare number {n}: durations are strings with a unit, like \"{n}s\" or \"{n}ms\""
            )))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            self.visit_i64(n as i64)
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "a bare number {n}: durations are strings with a unit, like \"{n}s\""
            )))
        }
    }
    d.deserialize_any(V)
}

struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number 1-65535")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Port, E> {
                match u16::try_from(n) {
                    Ok(p) if p != 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!("port {n} is out of range (1-65535)"))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Port, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_u64(V)
    }
}

fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    Ok(Vec::<Port>::deserialize(d)?
        .into_iter()
        .map(|p| p.0)
        .collect())
}

/// Checks a host name (or IP literal) that a probe can connect to: no wildcards, no URL parts.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains('*') {
        return Err(format!(
            "{host:?} is a wildcard; a probe needs a concrete host name"
        ));
    }
    check_dns_name(host).map_err(|why| format!("invalid host name {host:?} ({why})"))
}

fn check_dns_name(name: &str) -> Result<(), &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > MAX_HOST_LEN {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label needs 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("letters, digits, - and _ only");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with -");
        }
    }
    Ok(())
}

fn target_host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim().to_owned();
    check_host(&s).map_err(de::Error::custom)?;
    Ok(s)
}

fn dns_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_dns_name(s.trim())
        .map_err(|why| de::Error::custom(format!("invalid DNS name {s:?} ({why})")))?;
    Ok(s.trim().to_owned())
}

fn service<'de, D: Deserializer<'de>>(d: D) -> Result<ServiceArea, D::Error> {
    let s = String::deserialize(d)?;
    ServiceArea::from_name(s.trim()).ok_or_else(|| {
        de::Error::custom(format!(
            "unknown service {s:?} (expected exchange, sharepoint, teams or common)"
        ))
    })
}

fn category<'de, D: Deserializer<'de>>(d: D) -> Result<Category, D::Error> {
    let s = String::deserialize(d)?;
    Category::from_name(s.trim()).ok_or_else(|| {
        de::Error::custom(format!(
            "unknown category {s:?} (expected optimize, allow or default)"
        ))
    })
}

struct ServiceName(ServiceArea);
impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        service(d).map(Self)
    }
}

struct CategoryName(Category);
impl<'de> Deserialize<'de> for CategoryName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        category(d).map(Self)
    }
}

fn services<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ServiceArea>, D::Error> {
    probed(Vec::<ServiceName>::deserialize(d)?.into_iter().map(|s| s.0))
}

fn categories<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Category>, D::Error> {
    probed(
        Vec::<CategoryName>::deserialize(d)?
            .into_iter()
            .map(|c| c.0),
    )
}

/// A selection of what `[endpoints]` probes: an empty one would probe nothing.
fn probed<T, E: de::Error>(items: impl Iterator<Item = T>) -> Result<Vec<T>, E> {
    let list: Vec<T> = items.collect();
    if list.is_empty() {
        return Err(E::custom(
            "an empty list: nothing would be probed (set enabled = false instead)",
        ));
    }
    Ok(list)
}

fn tenant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix(".onmicrosoft.com").unwrap_or(&t).to_owned();
    let ok = !t.is_empty()
        && t.len() <= 63
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !t.starts_with('-')
        && !t.ends_with('-');
    if ok {
        Ok(Some(t))
    } else {
        Err(de::Error::custom(format!(
            "invalid tenant name {s:?} (expected the first label of your onmicrosoft.com domain, like \"contoso\")"
        )))
    }
}

fn office_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
        return Err(de::Error::custom(
            "an office name needs 1 to 64 printable characters",
        ));
    }
    Ok(Some(t.to_owned()))
}

fn uplink_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(s)
    } else {
        Err(de::Error::custom(format!(
            "invalid uplink name {s:?} (1 to 32 letters, digits, _, . or -)"
        )))
    }
}

fn interface<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    // IFNAMSIZ is 16 with the terminating zero.
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(Some(s))
    } else {
        Err(de::Error::custom(format!(
            "invalid interface name {s:?} (1 to 15 characters, no spaces, / or :)"
        )))
    }
}

fn issuer_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    if list.is_empty() {
        return Err(de::Error::custom(
            "an empty list (every chain would look intercepted)",
        ));
    }
    for name in &list {
        if name.trim().is_empty() || name.chars().count() > 64 {
            return Err(de::Error::custom(format!(
                "issuer name {name:?} needs 1 to 64 characters"
            )));
        }
    }
    Ok(list.into_iter().map(|n| n.trim().to_owned()).collect())
}

fn http_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s.starts_with('/') && s.len() <= 1024 && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(Some(s))
    } else {
        Err(de::Error::custom(format!(
            "invalid HTTP path {s:?} (starts with /, no spaces, at most 1024 characters)"
        )))
    }
}

/// The parts of a URL the config checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// Lower-case scheme.
    pub scheme: String,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port, if given.
    pub port: Option<u16>,
    /// Path and query, possibly empty.
    pub path: String,
}

/// Splits `scheme://[userinfo@]host[:port][/path]`.
pub fn parse_url(s: &str) -> Result<UrlParts, String> {
    let bad = |why: &str| format!("invalid URL {s:?} ({why})");
    let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("no scheme://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(bad("junk after ]")),
        };
        (h, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => Some(n),
            _ => return Err(bad("bad port")),
        },
        None => None,
    };
    if host.parse::<IpAddr>().is_err() {
        check_dns_name(host).map_err(bad)?;
    }
    if path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(bad("spaces or control characters in the path"));
    }
    Ok(UrlParts {
        scheme: scheme.to_ascii_lowercase(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

fn url_with_scheme(s: &str, schemes: &[&str], example: &str) -> Result<String, String> {
    let t = s.trim();
    match parse_url(t) {
        Ok(u) if schemes.contains(&u.scheme.as_str()) => Ok(t.to_owned()),
        Ok(u) => Err(format!(
            "unsupported scheme {:?} in {t:?} (expected {})",
            u.scheme,
            or_list(schemes)
        )),
        Err(e) => Err(format!("{e}; expected a URL like {example:?}")),
    }
}

fn service_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    url_with_scheme(&s, &["https", "http"], MICROSOFT_ENDPOINTS_URL).map_err(de::Error::custom)
}

fn download_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    url_with_scheme(
        &s,
        &["https", "http"],
        "https://contoso.sharepoint.com/test.bin",
    )
    .map(Some)
    .map_err(de::Error::custom)
}

fn collector_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let url = url_with_scheme(
        &s,
        &["https", "http", "udp"],
        "https://collector.example:8443",
    )
    .map_err(de::Error::custom)?;
    if url.starts_with("udp://") && parse_url(&url).map(|u| u.port.is_none()).unwrap_or(true) {
        return Err(de::Error::custom(format!(
            "{url:?} needs a port (udp://host:port)"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_the_same_way() {
        for (s, d) in [
            ("20ms", ms(20)),
            ("2s", secs(2)),
            ("1.5s", ms(1500)),
            ("1h", secs(3600)),
            ("1h30m", secs(5400)),
            ("500us", Duration::from_micros(500)),
        ] {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
        assert_eq!(format_duration(ms(20)), "20ms");
        assert_eq!(format_duration(secs(5400)), "1h30m");
        for bad in ["", "20", "ms", "2 parsecs", "1e9999s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn resolv_conf_gives_nameservers_on_port_53() {
        let text = "# generated\nsearch lan\nnameserver 198.51.100.53\nnameserver fe80::1%eth0\nnameserver bogus\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "198.51.100.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn env_proxy_honours_no_proxy() {
        let env = ProxyEnv::from_vars(|k| match k {
            "HTTPS_PROXY" => Some("http://proxy.example:3128".into()),
            "no_proxy" => Some("localhost, .office.com".into()),
            _ => None,
        });
        let p = Proxy::Env;
        assert_eq!(
            p.for_url("https://endpoints.office.com/version", &env)
                .as_deref(),
            None
        );
        assert_eq!(
            p.for_url("https://login.microsoftonline.com/", &env)
                .as_deref(),
            Some("http://proxy.example:3128")
        );
        assert_eq!(p.for_url("http://example.net/", &env), None);
        assert_eq!(Proxy::None.for_url("https://x.example/", &env), None);
    }
}
