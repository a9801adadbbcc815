//! The results of one probe cycle: per-target summaries grouped by probe kind, so a result carries no tag
//! of its own, and every duration in microseconds as a varint (SPEC.md, "Results").

use crate::assess::LocationCode;
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use heapless::{String, Vec};
use serde::de::{self, DeserializeSeed, EnumAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most TCP summaries (and, separately, TCP failure counts) in one cycle.
pub const MAX_TCP_SUMMARIES: usize = 64;
/// Most DNS summaries in one cycle.
pub const MAX_DNS_SUMMARIES: usize = 32;
/// Most addresses kept from one DNS answer: the first two tell a front door, the rest only cost bytes.
pub const MAX_DNS_ADDRESSES: usize = 2;
/// Most resolver identities in one cycle (one per whoami name).
pub const MAX_RESOLVER_IDENTITIES: usize = 4;
/// Most TLS summaries in one cycle.
pub const MAX_TLS_SUMMARIES: usize = 16;
/// Longest issuer common name, in bytes: X.520's upper bound for a common name (ub-common-name) is 64
/// characters; the probe cuts a longer UTF-8 name at a character boundary.
pub const MAX_ISSUER_CN_LEN: usize = 64;
/// Most STUN summaries in one cycle.
pub const MAX_STUN_SUMMARIES: usize = 8;
/// Most HTTP summaries in one cycle.
pub const MAX_HTTP_SUMMARIES: usize = 32;
/// Most download summaries in one cycle.
pub const MAX_DOWNLOAD_SUMMARIES: usize = 4;
/// Most path (traceroute) summaries in one cycle.
pub const MAX_PATH_SUMMARIES: usize = 4;
/// Most hops kept from one path.
pub const MAX_HOPS: usize = 8;

/// The results of one probe cycle. Target indices refer to the manifest `manifest_id`.
///
/// On the wire only the non-empty sections appear, each as (kind, list), in the order of the fields below
/// (SPEC.md, "Results"): a cycle that measured only TCP pays three bytes for its framing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Results {
    /// The manifest the target indices refer to.
    pub manifest_id: u32,
    /// When the cycle started, in seconds since 1970-01-01T00:00:00Z (UTC, no leap seconds).
    pub cycle_start: u32,
    /// Frames the agent has dropped unacknowledged (queue full, or rejected) in this sequence epoch,
    /// counted up to when this frame was built; the collector takes differences.
    pub dropped_frames: u32,
    /// TCP connect latency per target that answered at least once.
    pub tcp: Vec<TcpSummary, MAX_TCP_SUMMARIES>,
    /// TCP connect failures per target that had any.
    pub tcp_failures: Vec<TcpFailures, MAX_TCP_SUMMARIES>,
    /// DNS resolution per name.
    pub dns: Vec<DnsSummary, MAX_DNS_SUMMARIES>,
    /// The recursive resolver's public address, per whoami name.
    pub resolvers: Vec<ResolverIdentity, MAX_RESOLVER_IDENTITIES>,
    /// TLS handshake and certificate verdict per target.
    pub tls: Vec<TlsSummary, MAX_TLS_SUMMARIES>,
    /// STUN train (Teams media path) per target and port.
    pub stun: Vec<StunSummary, MAX_STUN_SUMMARIES>,
    /// HTTP request per target.
    pub http: Vec<HttpSummary, MAX_HTTP_SUMMARIES>,
    /// Download throughput and latency under load per target.
    pub downloads: Vec<DownloadSummary, MAX_DOWNLOAD_SUMMARIES>,
    /// Traceroute per target.
    pub paths: Vec<PathSummary, MAX_PATH_SUMMARIES>,
}

impl Results {
    /// An empty batch for one cycle.
    pub fn new(manifest_id: u32, cycle_start: u32, dropped_frames: u32) -> Self {
        Self {
            manifest_id,
            cycle_start,
            dropped_frames,
            ..Self::default()
        }
    }

    /// Length of the sealed frame this batch makes: it fits if this is at most
    /// [`super::MAX_FRAME_LEN`].
    pub fn sealed_len(&self) -> super::Result<usize> {
        Ok(super::OVERHEAD + super::message::encoded_len(self)?)
    }

    /// Front-door codes must be three upper-case ASCII letters: `LocationCode`'s serde form is any three
    /// bytes, and its table lookups assume letters.
    pub(super) fn validate(&self) -> super::Result<()> {
        let canonical = |code: &LocationCode| LocationCode::parse(code.as_str()) == Some(*code);
        let mut codes = self
            .dns
            .iter()
            .filter_map(|d| d.answer.as_ref()?.front_door);
        if codes.all(|code| canonical(&code)) {
            Ok(())
        } else {
            Err(super::Error::Invalid)
        }
    }
}

/// Round-trip times of one target in one cycle: minimum, median and 95th percentile, in microseconds.
///
/// Always ordered (min <= median <= p95); on the wire the median and p95 are deltas from the value
/// before, which keeps them small varints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rtt {
    min_us: u32,
    median_us: u32,
    p95_us: u32,
}

impl Rtt {
    /// The summary of these values, if they are ordered.
    pub const fn new(min_us: u32, median_us: u32, p95_us: u32) -> Option<Self> {
        if min_us <= median_us && median_us <= p95_us {
            Some(Self {
                min_us,
                median_us,
                p95_us,
            })
        } else {
            None
        }
    }

    /// Summarises samples (microseconds; sorted in place): the median and p95 are nearest-rank
    /// percentiles, the sample of 1-based rank ⌈p·n/100⌉, so every value reported was measured.
    pub fn from_samples(samples: &mut [u32]) -> Option<Self> {
        samples.sort_unstable();
        let rank = |percent: usize| (percent * samples.len()).div_ceil(100).max(1) - 1;
        Self::new(
            *samples.first()?,
            *samples.get(rank(50))?,
            *samples.get(rank(95))?,
        )
    }

    /// The fastest sample, µs.
    pub const fn min_us(&self) -> u32 {
        self.min_us
    }

    /// The median sample (nearest rank), µs.
    pub const fn median_us(&self) -> u32 {
        self.median_us
    }

    /// The 95th-percentile sample (nearest rank), µs.
    pub const fn p95_us(&self) -> u32 {
        self.p95_us
    }
}

impl Serialize for Rtt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Ordered by construction, so the deltas cannot underflow.
        let mut t = serializer.serialize_tuple(3)?;
        t.serialize_element(&self.min_us)?;
        t.serialize_element(&(self.median_us - self.min_us))?;
        t.serialize_element(&(self.p95_us - self.median_us))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Rtt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (min_us, median_delta, p95_delta) = <(u32, u32, u32)>::deserialize(deserializer)?;
        let median_us = min_us.checked_add(median_delta);
        let p95_us = median_us.and_then(|m| m.checked_add(p95_delta));
        match (median_us, p95_us) {
            (Some(median_us), Some(p95_us)) => Ok(Self {
                min_us,
                median_us,
                p95_us,
            }),
            _ => Err(de::Error::custom("rtt past u32::MAX microseconds")),
        }
    }
}

/// TCP connect latency to one target's first TCP port in one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TcpSummary {
    /// Manifest index of the target.
    pub target: u8,
    /// Connects that completed (at least 1; failures are in [`TcpFailures`]).
    pub samples: u8,
    /// Time from SYN sent to SYN-ACK received (connect completed), µs.
    pub rtt: Rtt,
}

/// TCP connects to one target that failed in one cycle, by cause. Only targets with a failure appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TcpFailures {
    /// Manifest index of the target.
    pub target: u8,
    /// Answered with a reset (RST): something is there and refuses.
    pub refused: u8,
    /// No answer within the probe's timeout: a silent drop.
    pub timed_out: u8,
    /// ICMP unreachable, no route, or any other error.
    pub unreachable: u8,
}

/// DNS resolution of one target name through the office's resolver in one cycle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsSummary {
    /// Manifest index of the name.
    pub target: u8,
    /// Queries that got no usable response (timeout, truncated or garbled).
    pub failures: u8,
    /// The response, if one came.
    pub answer: Option<DnsAnswer>,
}

/// The response to a DNS query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// Time from query sent to response received, µs.
    pub rtt_us: u32,
    /// The response code (RFC 1035 §4.1.1, extended by EDNS: RFC 6891 §6.1.3); 0 is NOERROR.
    pub rcode: u16,
    /// The front-door location code found in the CNAME chain (`crate::assess::front_door_code`), if any.
    pub front_door: Option<LocationCode>,
    /// The first addresses of the answer, in answer order.
    pub addresses: Vec<IpAddr, MAX_DNS_ADDRESSES>,
    /// The smallest TTL of the answer's records, seconds.
    pub ttl_s: u32,
}

/// The public address of the office's recursive resolver, as a whoami name (its authoritative server
/// answers with the address the query came from) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResolverIdentity {
    /// Manifest index of the whoami name.
    pub target: u8,
    /// The resolver's public (egress) address.
    pub address: IpAddr,
}

/// What the certificate chain of a TLS front door says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TlsVerdict {
    /// The chain ends in one of the expected Microsoft roots: no inspection.
    Genuine,
    /// The chain ends elsewhere: a proxy inspects TLS; the issuer names it.
    Intercepted,
    /// A handshake completed but the chain could not be judged (incomplete, unparsable).
    Unknown,
    /// The handshake failed: no certificate to judge.
    Failed,
}

/// A TLS handshake with one target in one cycle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlsSummary {
    /// Manifest index of the target.
    pub target: u8,
    /// Time from ClientHello sent to the server's ServerHelloDone (or to the failure), µs.
    pub handshake_us: u32,
    /// What the chain says.
    pub verdict: TlsVerdict,
    /// The leaf's issuer common name (empty when none was seen): for an intercepted chain, the proxy.
    pub issuer_cn: String<MAX_ISSUER_CN_LEN>,
    /// The leaf's notAfter, in seconds since 1970-01-01T00:00:00Z; `None` when no certificate was seen.
    pub not_after: Option<u64>,
}

/// A train of STUN binding requests to one target and UDP port in one cycle: the Teams media path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StunSummary {
    /// Manifest index of the target.
    pub target: u8,
    /// The UDP port the train went to.
    pub port: u16,
    /// Binding requests sent.
    pub sent: u16,
    /// Distinct requests answered.
    pub received: u16,
    /// Requests never answered by the end of the train's wait (`sent - received`).
    pub lost: u16,
    /// Responses beyond the first for a request.
    pub duplicated: u16,
    /// Responses that arrived after the response to a later request.
    pub reordered: u16,
    /// Request-to-response times; `None` when nothing was answered.
    pub rtt: Option<Rtt>,
    /// RFC 3550 §6.4.1 interarrival jitter over the answered requests in arrival order, µs: J += (|D| - J) / 16,
    /// with D the difference of consecutive round-trip times.
    pub jitter_us: u32,
    /// The public address and port the server saw (XOR-MAPPED-ADDRESS), if any response carried one.
    pub mapped: Option<SocketAddr>,
}

/// How an HTTP request to a target went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpVerdict {
    /// A response from the service (any status the service itself sends).
    Ok,
    /// 407 Proxy Authentication Required: a proxy sits in the path.
    ProxyAuthRequired,
    /// 403 (or similar) from a proxy-like `Server`: a proxy blocks the endpoint.
    ProxyBlocked,
    /// A redirect away from the service (a captive portal or a proxy's block page).
    Redirected,
    /// No HTTP response: connect, TLS or read failed, or timed out.
    Error,
}

/// One HTTP request to a target in one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpSummary {
    /// Manifest index of the target.
    pub target: u8,
    /// The response status, `None` when no response came.
    pub status: Option<u16>,
    /// How it went.
    pub verdict: HttpVerdict,
    /// Time from connect start to the first byte of the response (or to the failure), µs.
    pub ttfb_us: u32,
}

/// A download from one target in one cycle (agent only): throughput, and latency idle versus under load
/// (buffer bloat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DownloadSummary {
    /// Manifest index of the target.
    pub target: u8,
    /// Body bytes received.
    pub bytes: u64,
    /// Time from the request to the last byte, µs.
    pub duration_us: u32,
    /// Median TCP connect time to the target just before the download, µs.
    pub idle_latency_us: u32,
    /// Median TCP connect time to the target during the download, µs.
    pub loaded_latency_us: u32,
}

/// One hop of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hop {
    /// The TTL (hop number, from 1) this reply answered.
    pub ttl: u8,
    /// The address that answered, `None` when nothing did ("*").
    pub address: Option<IpAddr>,
    /// Time from probe sent to reply, µs (0 when nothing answered).
    pub rtt_us: u32,
}

/// A traceroute to one target in one cycle (agent only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathSummary {
    /// Manifest index of the target.
    pub target: u8,
    /// Whether the target itself answered.
    pub reached: bool,
    /// The TTL at which the target answered, or the highest TTL tried.
    pub hop_count: u8,
    /// The hops the agent chose to keep (typically the first few and the last), in TTL order.
    pub hops: Vec<Hop, MAX_HOPS>,
}

/// The section kinds in wire order; the variant index is the kind on the wire.
#[derive(Serialize)]
enum SectionRef<'a> {
    Tcp(&'a [TcpSummary]),
    TcpFailures(&'a [TcpFailures]),
    Dns(&'a [DnsSummary]),
    Resolvers(&'a [ResolverIdentity]),
    Tls(&'a [TlsSummary]),
    Stun(&'a [StunSummary]),
    Http(&'a [HttpSummary]),
    Downloads(&'a [DownloadSummary]),
    Paths(&'a [PathSummary]),
}

const SECTION_NAMES: &[&str] = &[
    "Tcp",
    "TcpFailures",
    "Dns",
    "Resolvers",
    "Tls",
    "Stun",
    "Http",
    "Downloads",
    "Paths",
];

impl Results {
    fn sections(&self) -> [Option<SectionRef<'_>>; 9] {
        fn some<'a, T>(
            items: &'a [T],
            section: fn(&'a [T]) -> SectionRef<'a>,
        ) -> Option<SectionRef<'a>> {
            (!items.is_empty()).then(|| section(items))
        }
        [
            some(&self.tcp, SectionRef::Tcp),
            some(&self.tcp_failures, SectionRef::TcpFailures),
            some(&self.dns, SectionRef::Dns),
            some(&self.resolvers, SectionRef::Resolvers),
            some(&self.tls, SectionRef::Tls),
            some(&self.stun, SectionRef::Stun),
            some(&self.http, SectionRef::Http),
            some(&self.downloads, SectionRef::Downloads),
            some(&self.paths, SectionRef::Paths),
        ]
    }
}

struct Sections<'a>(&'a Results);

impl Serialize for Sections<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sections = self.0.sections();
        let present = sections.iter().flatten().count();
        let mut seq = serializer.serialize_seq(Some(present))?;
        for section in sections.iter().flatten() {
            seq.serialize_element(section)?;
        }
        seq.end()
    }
}

impl Serialize for Results {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(4)?;
        t.serialize_element(&self.manifest_id)?;
        t.serialize_element(&self.cycle_start)?;
        t.serialize_element(&self.dropped_frames)?;
        t.serialize_element(&Sections(self))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Results {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(4, ResultsVisitor)
    }
}

struct ResultsVisitor;

impl<'de> Visitor<'de> for ResultsVisitor {
    type Value = Results;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a results batch")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Results, A::Error> {
        let missing = || de::Error::custom("results batch ends early");
        let mut results = Results::new(
            seq.next_element()?.ok_or_else(missing)?,
            seq.next_element()?.ok_or_else(missing)?,
            seq.next_element()?.ok_or_else(missing)?,
        );
        seq.next_element_seed(SectionsSeed(&mut results))?
            .ok_or_else(missing)?;
        Ok(results)
    }
}

/// Reads the section list into a [`Results`].
struct SectionsSeed<'a>(&'a mut Results);

impl<'de> DeserializeSeed<'de> for SectionsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SectionsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("result sections")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut next_kind = 0;
        while let Some(kind) = seq.next_element_seed(SectionSeed {
            results: &mut *self.0,
            next_kind,
        })? {
            next_kind = kind + 1;
        }
        Ok(())
    }
}

/// Reads one section; its kind must come after the previous one's, so each kind appears at most once and
/// every batch has exactly one encoding.
struct SectionSeed<'a> {
    results: &'a mut Results,
    next_kind: u32,
}

impl<'de> DeserializeSeed<'de> for SectionSeed<'_> {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u32, D::Error> {
        deserializer.deserialize_enum("Section", SECTION_NAMES, self)
    }
}

impl<'de> Visitor<'de> for SectionSeed<'_> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result section")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<u32, A::Error> {
        let (kind, variant): (u32, _) = data.variant()?;
        if kind < self.next_kind {
            return Err(de::Error::custom("result section out of order or repeated"));
        }
        let r = self.results;
        match kind {
            0 => fill(variant, &mut r.tcp)?,
            1 => fill(variant, &mut r.tcp_failures)?,
            2 => fill(variant, &mut r.dns)?,
            3 => fill(variant, &mut r.resolvers)?,
            4 => fill(variant, &mut r.tls)?,
            5 => fill(variant, &mut r.stun)?,
            6 => fill(variant, &mut r.http)?,
            7 => fill(variant, &mut r.downloads)?,
            8 => fill(variant, &mut r.paths)?,
            _ => return Err(de::Error::custom("unknown result section")),
        }
        Ok(kind)
    }
}

fn fill<'de, V, T, const N: usize>(variant: V, section: &mut Vec<T, N>) -> Result<(), V::Error>
where
    V: VariantAccess<'de>,
    T: Deserialize<'de>,
{
    let items: Vec<T, N> = variant.newtype_variant()?;
    if items.is_empty() {
        // An empty section is written by leaving it out.
        return Err(de::Error::custom("empty result section"));
    }
    *section = items;
    Ok(())
}
