//! What `o365probe check --json` prints: the assessment of one uplink, with stable names.
//!
//! Durations are milliseconds (fractions to the microsecond), distances kilometres, times RFC 3339 UTC.
//! An absent measurement is `null` or an empty list, never a made-up zero. docs/check-json.md documents
//! every field; a test keeps the two in step.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// Version of this schema; bumped only when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// One assessment: an office's path to Microsoft 365 over one uplink.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The office.
    pub office: Office,
    /// The uplink assessed (`[[uplink]]` name), or null for the routing table's choice.
    pub uplink: Option<String>,
    /// When the assessment started, RFC 3339 UTC.
    pub started: String,
    /// How long it took.
    pub duration_ms: f64,
    /// The office's public egress address, as the Teams relay saw it.
    pub egress: Egress,
    /// The DNS resolver the office uses, and the public address it queries from.
    pub resolver: Resolver,
    /// One entry per target probed.
    pub targets: Vec<TargetReport>,
    /// How Optimize destinations are routed (VPN tunnel or not).
    pub split_tunnel: Vec<PrefixRoute>,
    /// The download test, when `[download] url` is set.
    pub download: Option<Download>,
    /// Microsoft's 0-100 scores, where the measurements allow.
    pub scores: Scores,
    /// What is wrong and what to change, most severe first.
    pub findings: Vec<Finding>,
    /// What could not be judged, and why (for example no geolocation for the resolver).
    pub notes: Vec<String>,
}

/// The office.
#[derive(Debug, Clone, Serialize)]
pub struct Office {
    /// `[agent] office`, or the host name.
    pub name: String,
    /// `[agent] location`, if given.
    pub location: Option<Point>,
}

/// A place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
}

/// Where something is and how far from the office.
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    /// The place's name (location code, city, or coordinates).
    pub name: String,
    /// Its coordinates.
    pub point: Point,
    /// Great-circle distance from the office, when the office's location is known.
    pub distance_km: Option<f64>,
}

/// The office's internet egress.
#[derive(Debug, Clone, Serialize)]
pub struct Egress {
    /// The public address (from STUN's XOR-MAPPED-ADDRESS), if a relay answered.
    pub address: Option<IpAddr>,
    /// Where it is (from `[geo]`).
    pub location: Option<Placed>,
}

/// The recursive resolver.
#[derive(Debug, Clone, Serialize)]
pub struct Resolver {
    /// The resolver queried (from `[dns] resolver` or the system's).
    pub queried: Option<SocketAddr>,
    /// The public address it queries Microsoft's DNS from, as whoami names revealed it.
    pub address: Option<IpAddr>,
    /// Where that is (from `[geo]`).
    pub location: Option<Placed>,
    /// Each whoami name and what it said.
    pub whoami: Vec<Whoami>,
}

/// One whoami lookup.
#[derive(Debug, Clone, Serialize)]
pub struct Whoami {
    /// The name asked.
    pub name: String,
    /// The address it revealed.
    pub address: Option<IpAddr>,
    /// Why not, when none.
    pub error: Option<String>,
}

/// Everything measured for one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// Host name.
    pub host: String,
    /// `exchange`, `sharepoint`, `teams` or `common`.
    pub service: String,
    /// `optimize`, `allow` or `default`.
    pub category: String,
    /// Whether the endpoint is required.
    pub required: bool,
    /// Name resolution.
    pub dns: Option<DnsReport>,
    /// The front door the name led to, if its CNAME chain names one.
    pub front_door: Option<FrontDoor>,
    /// TCP connect latency to the first TCP port.
    pub tcp: Option<TcpReport>,
    /// The TLS certificate flight on 443.
    pub tls: Option<TlsReport>,
    /// The STUN train to the first UDP port.
    pub stun: Option<StunReport>,
    /// The HTTP(S) check.
    pub http: Option<HttpReport>,
    /// The path (traceroute).
    pub path: Option<PathReport>,
}

/// A DNS resolution.
#[derive(Debug, Clone, Serialize)]
pub struct DnsReport {
    /// The CNAME chain after the queried name, in order.
    pub cnames: Vec<String>,
    /// The final addresses.
    pub addresses: Vec<IpAddr>,
    /// Query to answer, of the try that was answered.
    pub rtt_ms: Option<f64>,
    /// `NOERROR`, `NXDOMAIN`, ...
    pub rcode: Option<String>,
    /// Queries sent.
    pub tries: u8,
    /// Whether the answer came over TCP (the UDP answer was truncated).
    pub tcp: bool,
    /// Why there is no answer.
    pub error: Option<String>,
}

/// A front door.
#[derive(Debug, Clone, Serialize)]
pub struct FrontDoor {
    /// Its location code (`LHR`).
    pub code: String,
    /// Its city.
    pub location: Option<String>,
    /// Its country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Distance from the office.
    pub distance_km: Option<f64>,
}

/// TCP connect latency.
#[derive(Debug, Clone, Serialize)]
pub struct TcpReport {
    /// Where.
    pub address: SocketAddr,
    /// Connects attempted.
    pub samples: u8,
    /// Connects completed.
    pub connected: u8,
    /// Fastest connect.
    pub min_ms: Option<f64>,
    /// Median connect.
    pub median_ms: Option<f64>,
    /// 95th percentile connect.
    pub p95_ms: Option<f64>,
    /// Failed connects by cause.
    pub failures: TcpFailures,
}

/// Failed connects by cause.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TcpFailures {
    /// Reset: something refuses.
    pub refused: u8,
    /// No answer in time: a silent drop.
    pub timed_out: u8,
    /// ICMP unreachable or no route.
    pub unreachable: u8,
    /// Anything else.
    pub other: u8,
}

/// The TLS certificate flight.
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// Where.
    pub address: SocketAddr,
    /// `genuine`, `intercepted`, `unknown` or `failed`.
    pub verdict: String,
    /// The verdict in words (which anchor, or who intercepted).
    pub detail: String,
    /// The leaf's issuer common name.
    pub issuer: Option<String>,
    /// The leaf's issuer organisation.
    pub issuer_org: Option<String>,
    /// The leaf's notAfter, RFC 3339 UTC.
    pub not_after: Option<String>,
    /// Whether the leaf's names cover the host.
    pub covers_host: Option<bool>,
    /// TCP connect time.
    pub connect_ms: Option<f64>,
    /// ClientHello to ServerHelloDone.
    pub handshake_ms: Option<f64>,
    /// Why the handshake failed, if it did.
    pub error: Option<String>,
}

/// A STUN train to a Teams relay.
#[derive(Debug, Clone, Serialize)]
pub struct StunReport {
    /// Where.
    pub address: SocketAddr,
    /// Binding requests sent.
    pub sent: u16,
    /// Requests answered.
    pub received: u16,
    /// Requests never answered.
    pub lost: u16,
    /// Extra copies of answers.
    pub duplicated: u16,
    /// Answers that overtook later ones.
    pub reordered: u16,
    /// `lost / sent`, percent; null when nothing was sent.
    pub loss_percent: Option<f64>,
    /// Round trip: fastest, median, 95th percentile.
    pub rtt_min_ms: Option<f64>,
    /// Median round trip.
    pub rtt_median_ms: Option<f64>,
    /// 95th percentile round trip.
    pub rtt_p95_ms: Option<f64>,
    /// RFC 3550 interarrival jitter.
    pub jitter_ms: Option<f64>,
    /// The public address and port the relay saw.
    pub mapped_address: Option<SocketAddr>,
    /// ITU-T G.107 E-model MOS estimate.
    pub mos: Option<f64>,
    /// Microsoft's targets missed (`rtt`, `loss`, `jitter`); empty when all are met.
    pub missed_targets: Vec<String>,
    /// DSCP the train was marked with.
    pub dscp: Option<u8>,
}

/// An HTTP(S) check.
#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// The URL requested.
    pub url: String,
    /// The proxy used, if any.
    pub proxy: Option<String>,
    /// The response status.
    pub status: Option<u16>,
    /// `ok`, `proxy-auth-required`, `proxy-blocked`, `redirected` or `error`.
    pub verdict: String,
    /// The proxy product that answered, when one is recognised (`squid`, `Zscaler`...).
    pub proxy_product: Option<String>,
    /// Request to first response byte.
    pub ttfb_ms: Option<f64>,
    /// Why there is no response.
    pub error: Option<String>,
}

/// A traceroute.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// Where to.
    pub destination: IpAddr,
    /// Whether the destination answered.
    pub reached: bool,
    /// Hops in order.
    pub hops: Vec<Hop>,
    /// Why the trace could not run.
    pub error: Option<String>,
}

/// One hop.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// The TTL that reached it.
    pub ttl: u8,
    /// Who answered (null: nobody).
    pub address: Option<IpAddr>,
    /// Fastest answer.
    pub rtt_ms: Option<f64>,
}

/// How one Optimize destination is routed.
#[derive(Debug, Clone, Serialize)]
pub struct PrefixRoute {
    /// The prefix (or front-door address) looked up.
    pub prefix: String,
    /// The interface its traffic leaves by.
    pub interface: Option<String>,
    /// The VPN tunnel kind, when it is one.
    pub tunnel: Option<String>,
    /// Why there is no route.
    pub error: Option<String>,
}

/// The download test.
#[derive(Debug, Clone, Serialize)]
pub struct Download {
    /// The URL.
    pub url: String,
    /// Body bytes received.
    pub bytes: u64,
    /// Transfer time.
    pub duration_ms: f64,
    /// Mean throughput, megabytes (10^6) per second; null when no body came.
    pub mbytes_per_s: Option<f64>,
    /// 25th percentile of per-interval throughput (Microsoft's SharePoint score input).
    pub p25_mbytes_per_s: Option<f64>,
    /// Median latency before the transfer.
    pub idle_latency_ms: Option<f64>,
    /// Median latency during the transfer.
    pub loaded_latency_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Microsoft's 0-100 scores.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Scores {
    /// From the Exchange front door's median TCP latency.
    pub exchange: Option<u8>,
    /// From the SharePoint download's 25th percentile throughput.
    pub sharepoint: Option<u8>,
    /// From the Teams MOS estimate.
    pub teams: Option<u8>,
}

/// A finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable code (`tls-inspection`; core's `FindingCode`).
    pub code: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// The target host it concerns, if one.
    pub target: Option<String>,
    /// What was measured.
    pub detail: String,
    /// What to change.
    pub advice: String,
}
