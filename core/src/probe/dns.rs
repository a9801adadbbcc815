//! The DNS probe: one question (A, AAAA or TXT) to one resolver, timed exactly, retried over UDP on
//! timeout, and asked again over TCP when the UDP answer is truncated.
//!
//! Each UDP try carries a fresh transaction id from the seeded generator, so an answer names the try it
//! answers and its round-trip time is measured from that try's send, even when it comes late. A datagram
//! is accepted only if it comes from the resolver's exact address and port, reads as a response, carries
//! the id of a try and echoes our question; anything else is counted in [`IgnoredResponses`] and the
//! probe keeps waiting, so an off-path spoofer cannot end the measurement early with a forged answer.
//!
//! Timeouts: try `k` (1-based) is sent at `start + (k - 1) × timeout` unless an answer came, and the
//! probe gives up at `start + tries × timeout`. A truncated answer (TC) ends the UDP tries and opens a
//! TCP connection to the resolver; the whole TCP exchange (connect, query, complete answer) has
//! [`DnsConfig::tcp_timeout`] from the moment the truncated answer arrived. So a probe always finishes
//! by `start + tries × timeout + tcp_timeout`.

use super::{ConnId, ConnectFailure, Event, Probe, Transmit, MAX_TRANSMIT};
use crate::assess::{front_door_code, LocationCode};
use crate::rand::SplitMix64;
use crate::report::{DnsAnswer, DnsSummary, MAX_DNS_ADDRESSES};
use crate::time::{micros_u32, Duration, Instant};
use crate::wire::dns::{
    split_tcp, Name, Query, Rcode, Response, Txt, Type, MAX_ANSWERS, MAX_CHAIN, MAX_QUERY_LEN,
    TCP_PREFIX_LEN,
};
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use heapless::Vec;

/// The most UDP tries one probe may be configured for. Past a handful, a resolver is down, not lossy,
/// and more tries only delay the verdict.
pub const MAX_TRIES: u8 = 8;

/// The most TXT records a [`Resolution`] keeps (more are counted in [`Resolution::txt_omitted`]).
/// Whoami answers have one or two (Google adds an `edns0-client-subnet` record).
pub const MAX_TXT_RECORDS: usize = 4;

/// The longest DNS message the probe takes over TCP. An answer is truncated over UDP only past 1232
/// octets (our EDNS payload size); 4096 octets is what resolvers offered over UDP before DNS Flag Day
/// 2020 and holds every answer the probed names give. A longer message fails as
/// [`DnsFailure::TooLarge`] as soon as its length prefix arrives.
pub const MAX_TCP_RESPONSE_LEN: usize = 4096;

/// The probe's name for its one TCP connection.
const TCP_CONN: ConnId = 0;

// A query, even framed for TCP, always fits the buffer the shell lends to `poll_transmit`.
const _: () = assert!(MAX_QUERY_LEN + TCP_PREFIX_LEN <= MAX_TRANSMIT);

/// What the probe asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Text (whoami names that report an address as text).
    Txt,
}

impl From<QueryType> for Type {
    fn from(q: QueryType) -> Type {
        match q {
            QueryType::A => Type::A,
            QueryType::Aaaa => Type::Aaaa,
            QueryType::Txt => Type::Txt,
        }
    }
}

/// One question to one resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    /// The resolver asked (the office's configured resolver, usually port 53). TCP goes to the same
    /// address and port.
    pub resolver: SocketAddr,
    /// The name resolved.
    pub name: Name,
    /// The record type asked for.
    pub qtype: QueryType,
}

/// Timeouts and retries of the DNS probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsConfig {
    /// How long each UDP try waits for its answer before the next try is sent.
    pub timeout: Duration,
    /// UDP tries, 1 to [`MAX_TRIES`].
    pub tries: u8,
    /// How long the TCP fallback may take, from the truncated answer to the complete TCP answer.
    pub tcp_timeout: Duration,
}

impl DnsConfig {
    /// 2 s per try, 3 tries, 5 s for TCP. An answer slower than 2 s already stalls users (Windows' own
    /// stub resends after 1 s); three tries ride out two lost datagrams; TCP needs a handshake and a
    /// longer answer, so it gets more.
    pub const DEFAULT: DnsConfig = DnsConfig {
        timeout: Duration::from_secs(2),
        tries: 3,
        tcp_timeout: Duration::from_secs(5),
    };
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A [`DnsConfig`] the probe cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// `tries` is 0: nothing would be asked.
    NoTries,
    /// `tries` is above [`MAX_TRIES`].
    TooManyTries,
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTries => f.write_str("DNS probe configured for 0 tries"),
            Self::TooManyTries => write!(f, "DNS probe configured for more than {MAX_TRIES} tries"),
        }
    }
}

/// Which exchange brought the answer: its round-trip time is measured from that exchange's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// UDP try number `n` (1-based); an earlier try's late answer is still that try's.
    Udp(u8),
    /// The TCP fallback after a truncated UDP answer.
    Tcp,
}

/// Why the probe got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsFailure {
    /// No response to any try within its timeout.
    Timeout,
    /// Responses came from the resolver, but none could be used: unreadable, or a CNAME chain that
    /// loops or conflicts. Over TCP: an answer that does not read or does not answer our query.
    Malformed,
    /// The TCP fallback's connection could not be opened.
    TcpConnect(ConnectFailure),
    /// The TCP fallback did not bring a complete answer within its timeout.
    TcpTimeout,
    /// The resolver closed the TCP connection before the answer was complete.
    TcpClosed,
    /// The TCP answer is longer than [`MAX_TCP_RESPONSE_LEN`].
    TooLarge,
}

#[cfg(feature = "std")]
impl std::error::Error for DnsFailure {}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no DNS response (timeout on every try)"),
            Self::Malformed => f.write_str("malformed DNS response"),
            Self::TcpConnect(cause) => write!(f, "DNS over TCP: connect failed ({cause:?})"),
            Self::TcpTimeout => f.write_str("DNS over TCP: no complete answer in time"),
            Self::TcpClosed => f.write_str("DNS over TCP: closed before the answer was complete"),
            Self::TooLarge => write!(
                f,
                "DNS over TCP: answer longer than {MAX_TCP_RESPONSE_LEN} octets"
            ),
        }
    }
}

/// Datagrams the probe did not accept, by reason (saturating counts). Non-zero wrong-source or wrong-id
/// counts on a quiet network point at spoofing or a middlebox rewriting DNS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IgnoredResponses {
    /// From an address or port other than the resolver's.
    pub wrong_source: u16,
    /// A response whose id is none of our tries'.
    pub wrong_id: u16,
    /// Our id, but not our question echoed.
    pub wrong_question: u16,
    /// From the resolver but unreadable as a DNS response (or its CNAME chain loops or conflicts).
    pub malformed: u16,
}

/// The answer: rcode, CNAME chain, and the final name's addresses and TXT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The response code (NOERROR, NXDOMAIN, SERVFAIL, ...).
    pub rcode: Rcode,
    /// From the answering exchange's query to its answer (for TCP: from the query written on the
    /// established connection to the last octet of the answer).
    pub rtt: Duration,
    /// Which exchange answered.
    pub exchange: Exchange,
    /// The CNAME chain: the query name first, each CNAME target after it, the final name last.
    pub chain: Vec<Name, MAX_CHAIN>,
    /// The final name's addresses with their TTLs (seconds), in answer order.
    pub addresses: Vec<(IpAddr, u32), MAX_ANSWERS>,
    /// The final name's TXT records with their TTLs, in answer order, at most [`MAX_TXT_RECORDS`].
    pub txt: Vec<(Txt, u32), MAX_TXT_RECORDS>,
    /// TXT records beyond [`MAX_TXT_RECORDS`], not kept.
    pub txt_omitted: u8,
    /// The smallest TTL among the CNAMEs followed and the final records: how long this answer may be
    /// cached. `None` when the answer has no records (NXDOMAIN, NODATA).
    pub min_ttl: Option<u32>,
}

impl Resolution {
    /// The front-door location named in the chain (`LHR` from `LHR-efz.ms-acdc.office.com`).
    pub fn front_door(&self) -> Option<LocationCode> {
        front_door_code(self.chain.iter().map(Name::as_str))
    }

    /// Every TXT character-string, record by record, in order.
    pub fn txt_strings(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.txt.iter().flat_map(|(txt, _)| txt.strings())
    }

    /// The answer as the report carries it.
    pub fn report(&self) -> DnsAnswer {
        let mut addresses = heapless::Vec::<IpAddr, MAX_DNS_ADDRESSES>::new();
        for (ip, _) in self.addresses.iter().take(MAX_DNS_ADDRESSES) {
            // `take` keeps within capacity.
            let _ = addresses.push(*ip);
        }
        DnsAnswer {
            rtt_us: micros_u32(self.rtt),
            rcode: u16::from(self.rcode),
            front_door: self.front_door(),
            addresses,
            ttl_s: self.min_ttl.unwrap_or(0),
        }
    }

    fn from_response(r: &Response, rtt: Duration, exchange: Exchange) -> Option<Resolution> {
        let chain = r.chain().ok()?;
        let mut out = Resolution {
            rcode: r.rcode,
            rtt,
            exchange,
            chain: Vec::new(),
            addresses: Vec::new(),
            txt: Vec::new(),
            txt_omitted: 0,
            min_ttl: None,
        };
        // The wire layer bounds chains by MAX_CHAIN and records by MAX_ANSWERS: these pushes fit.
        for name in chain.names() {
            let _ = out.chain.push((*name).clone());
        }
        for (ip, ttl) in chain.addresses() {
            let _ = out.addresses.push((ip, cache_ttl(ttl)));
        }
        for (txt, ttl) in chain.txt() {
            if out.txt.push((txt.clone(), cache_ttl(ttl))).is_err() {
                out.txt_omitted = out.txt_omitted.saturating_add(1);
            }
        }
        let ttls = chain.cnames().iter().chain(chain.records()).map(|r| r.ttl);
        out.min_ttl = ttls.map(cache_ttl).min();
        Some(out)
    }
}

/// What the DNS probe measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOutcome {
    /// UDP tries sent.
    pub tries: u8,
    /// Whether the TCP fallback was started (the UDP answer was truncated).
    pub tcp: bool,
    /// From the first query to the answer or the failure: what a user waits, lost tries included.
    pub elapsed: Duration,
    /// Datagrams not accepted.
    pub ignored: IgnoredResponses,
    /// The answer, or why none came.
    pub answer: Result<Resolution, DnsFailure>,
}

impl DnsOutcome {
    /// Queries that got no usable response: every query sent (UDP tries and the TCP one) except the
    /// one answered. A truncated UDP answer counts, since it sent us to TCP.
    pub fn failures(&self) -> u8 {
        let sent = self.tries.saturating_add(u8::from(self.tcp));
        sent.saturating_sub(u8::from(self.answer.is_ok()))
    }

    /// The outcome as the report carries it, for the manifest's name `target`.
    pub fn summary(&self, target: u8) -> DnsSummary {
        DnsSummary {
            target,
            failures: self.failures(),
            answer: self.answer.as_ref().ok().map(Resolution::report),
        }
    }
}

/// A UDP try: its id and when it went out.
#[derive(Debug, Clone, Copy)]
struct Try {
    id: u16,
    sent_at: Instant,
}

/// Where the probe is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Sending UDP tries: `deadline` is the latest try's; `send_due` once it passed with tries left.
    Udp { deadline: Instant, send_due: bool },
    /// The TCP fallback, all of it bounded by `deadline`.
    Tcp { deadline: Instant, step: TcpStep },
    /// The outcome is ready (after a `Close`, if one is due).
    Finished,
}

#[derive(Debug, Clone, Copy)]
enum TcpStep {
    ConnectDue,
    Connecting,
    QueryDue,
    Awaiting { id: u16, sent_at: Instant },
}

/// The DNS probe (see the module docs). Drive it as every [`Probe`].
#[derive(Debug, Clone)]
pub struct DnsProbe {
    resolver: SocketAddr,
    query: Query,
    config: DnsConfig,
    rng: SplitMix64,
    tries: Vec<Try, { MAX_TRIES as usize }>,
    phase: Phase,
    ignored: IgnoredResponses,
    /// The TCP stream so far: length prefix, then the message.
    stream: Vec<u8, { TCP_PREFIX_LEN + MAX_TCP_RESPONSE_LEN }>,
    tcp_used: bool,
    close_due: bool,
    outcome: Option<DnsOutcome>,
}

impl DnsProbe {
    /// A probe for `query`, drawing transaction ids from `rng` (give each probe its own, e.g. a
    /// [`SplitMix64::fork`] of the shell's generator). Nothing is sent until the first
    /// [`Probe::poll_transmit`], whose `now` is the start.
    pub fn new(
        query: DnsQuery,
        config: DnsConfig,
        rng: SplitMix64,
    ) -> Result<DnsProbe, ConfigError> {
        if config.tries == 0 {
            return Err(ConfigError::NoTries);
        }
        if config.tries > MAX_TRIES {
            return Err(ConfigError::TooManyTries);
        }
        Ok(DnsProbe {
            resolver: query.resolver,
            query: Query::new(0, query.name, query.qtype.into()),
            config,
            rng,
            tries: Vec::new(),
            // Due at once: the first poll_transmit sends try 1.
            phase: Phase::Udp {
                deadline: Instant::from_ticks(0),
                send_due: true,
            },
            ignored: IgnoredResponses::default(),
            stream: Vec::new(),
            tcp_used: false,
            close_due: false,
            outcome: None,
        })
    }

    /// A transaction id no try of this probe has used.
    fn fresh_id(&mut self) -> u16 {
        let mut id = self.rng.next_u16();
        // At most MAX_TRIES ids are taken, so this ends within MAX_TRIES steps.
        while self.tries.iter().any(|t| t.id == id) {
            id = id.wrapping_add(1);
        }
        id
    }

    fn finish(&mut self, now: Instant, answer: Result<Resolution, DnsFailure>) {
        let start = self.tries.first().map_or(now, |t| t.sent_at);
        // Once a connection was asked for, the shell holds a socket (or a failed one) until told to
        // close it, whatever the peer did.
        self.close_due =
            matches!(self.phase, Phase::Tcp { step, .. } if !matches!(step, TcpStep::ConnectDue));
        self.phase = Phase::Finished;
        self.outcome = Some(DnsOutcome {
            // At most MAX_TRIES.
            tries: self.tries.len() as u8,
            tcp: self.tcp_used,
            elapsed: now.saturating_duration_since(start),
            ignored: self.ignored,
            answer,
        });
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Phase::Udp { .. } = self.phase else {
            // Duplicates and late answers after the UDP phase change nothing.
            return;
        };
        if from != self.resolver {
            bump(&mut self.ignored.wrong_source);
            return;
        }
        let Ok(response) = Response::parse(data) else {
            bump(&mut self.ignored.malformed);
            return;
        };
        let Some((n, sent)) = (1u8..)
            .zip(self.tries.iter())
            .find(|(_, t)| t.id == response.id)
            .map(|(n, t)| (n, *t))
        else {
            bump(&mut self.ignored.wrong_id);
            return;
        };
        if response.question.as_ref() != Some(&self.query.question) {
            bump(&mut self.ignored.wrong_question);
            return;
        }
        if response.truncated {
            self.tcp_used = true;
            self.phase = Phase::Tcp {
                deadline: now.saturating_add(self.config.tcp_timeout),
                step: TcpStep::ConnectDue,
            };
            return;
        }
        let rtt = now.saturating_duration_since(sent.sent_at);
        match Resolution::from_response(&response, rtt, Exchange::Udp(n)) {
            Some(resolution) => self.finish(now, Ok(resolution)),
            None => bump(&mut self.ignored.malformed),
        }
    }

    fn on_stream(&mut self, now: Instant, data: &[u8]) {
        let Phase::Tcp {
            step: TcpStep::Awaiting { id, sent_at },
            ..
        } = self.phase
        else {
            return;
        };
        let mut data = data;
        loop {
            let want = match self.stream.as_slice() {
                [hi, lo, ..] => TCP_PREFIX_LEN + usize::from(u16::from_be_bytes([*hi, *lo])),
                _ => TCP_PREFIX_LEN,
            };
            if want > self.stream.capacity() {
                return self.finish(now, Err(DnsFailure::TooLarge));
            }
            let room = want - self.stream.len();
            if room == 0 || data.is_empty() {
                break;
            }
            let (take, rest) = data.split_at(room.min(data.len()));
            // `want` fits the capacity, checked above.
            let _ = self.stream.extend_from_slice(take);
            data = rest;
        }
        let Some((message, _)) = split_tcp(&self.stream) else {
            return;
        };
        let rtt = now.saturating_duration_since(sent_at);
        let answer = Response::parse(message)
            .ok()
            .filter(|r| r.id == id && r.question.as_ref() == Some(&self.query.question))
            .and_then(|r| Resolution::from_response(&r, rtt, Exchange::Tcp))
            .ok_or(DnsFailure::Malformed);
        self.finish(now, answer);
    }
}

impl Probe for DnsProbe {
    type Output = DnsOutcome;

    fn handle(&mut self, now: Instant, event: Event<'_>) {
        match event {
            Event::Datagram { from, data } => self.on_datagram(now, from, data),
            Event::Connected { conn } if conn == TCP_CONN => {
                if let Phase::Tcp {
                    step: step @ TcpStep::Connecting,
                    ..
                } = &mut self.phase
                {
                    *step = TcpStep::QueryDue;
                }
            }
            Event::ConnectFailed { conn, cause } if conn == TCP_CONN => {
                if let Phase::Tcp {
                    step: TcpStep::Connecting,
                    ..
                } = self.phase
                {
                    self.finish(now, Err(DnsFailure::TcpConnect(cause)));
                }
            }
            Event::Received { conn, data } if conn == TCP_CONN => self.on_stream(now, data),
            Event::Closed { conn } if conn == TCP_CONN => {
                if let Phase::Tcp { .. } = self.phase {
                    self.finish(now, Err(DnsFailure::TcpClosed));
                }
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Udp {
                deadline,
                send_due: false,
            } if deadline <= now => {
                if self.tries.len() < usize::from(self.config.tries) {
                    self.phase = Phase::Udp {
                        deadline,
                        send_due: true,
                    };
                } else {
                    let failure = if self.ignored.malformed > 0 {
                        DnsFailure::Malformed
                    } else {
                        DnsFailure::Timeout
                    };
                    self.finish(now, Err(failure));
                }
            }
            Phase::Tcp { deadline, .. } if deadline <= now => {
                self.finish(now, Err(DnsFailure::TcpTimeout))
            }
            _ => {}
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        match self.phase {
            Phase::Udp { send_due: true, .. } => {
                let id = self.fresh_id();
                // Fewer than config.tries <= MAX_TRIES are recorded while a send is due.
                let _ = self.tries.push(Try { id, sent_at: now });
                self.phase = Phase::Udp {
                    deadline: now.saturating_add(self.config.timeout),
                    send_due: false,
                };
                self.query.id = id;
                // A buffer shorter than MAX_TRANSMIT breaks the shell's contract: the try is then
                // as good as lost, and times out like one.
                let len = self.query.emit(buf).ok()?;
                Some(Transmit::Datagram {
                    to: self.resolver,
                    len,
                })
            }
            Phase::Tcp {
                deadline,
                step: TcpStep::ConnectDue,
            } => {
                self.phase = Phase::Tcp {
                    deadline,
                    step: TcpStep::Connecting,
                };
                Some(Transmit::Connect {
                    conn: TCP_CONN,
                    to: self.resolver,
                })
            }
            Phase::Tcp {
                deadline,
                step: TcpStep::QueryDue,
            } => {
                let id = self.fresh_id();
                self.phase = Phase::Tcp {
                    deadline,
                    step: TcpStep::Awaiting { id, sent_at: now },
                };
                self.query.id = id;
                let len = self.query.emit_tcp(buf).ok()?;
                Some(Transmit::Stream {
                    conn: TCP_CONN,
                    len,
                })
            }
            Phase::Finished if self.close_due => {
                self.close_due = false;
                Some(Transmit::Close { conn: TCP_CONN })
            }
            _ => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Udp { deadline, .. } | Phase::Tcp { deadline, .. } => Some(deadline),
            Phase::Finished => None,
        }
    }

    fn poll_result(&mut self) -> Option<DnsOutcome> {
        if self.close_due {
            // Close first, so a shell that drops the probe with its result leaks no connection.
            return None;
        }
        self.outcome.take()
    }
}

/// A TTL as a cache may use it: RFC 2181 8 asks to read values with the top bit set as 0.
fn cache_ttl(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 {
        0
    } else {
        ttl
    }
}

fn bump(count: &mut u16) {
    *count = count.saturating_add(1);
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::sim::{Fate, Net, Path, Record as Log, TcpServer};
    use super::*;
    use crate::wire::dns::{Record, RecordData};
    use core::cell::RefCell;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;
    use std::rc::Rc;
    use std::vec;
    use std::vec::Vec as StdVec;

    pub(in crate::probe) const RESOLVER: SocketAddr = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53)),
        crate::wire::dns::PORT,
    );

    const T0: Instant = Instant::from_secs(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    pub(in crate::probe) fn a(owner: &str, ip: [u8; 4], ttl: u32) -> Record {
        Record {
            name: name(owner),
            ttl,
            data: RecordData::A(Ipv4Addr::from(ip)),
        }
    }

    fn cname(owner: &str, target: &str, ttl: u32) -> Record {
        Record {
            name: name(owner),
            ttl,
            data: RecordData::Cname(name(target)),
        }
    }

    pub(in crate::probe) fn txt(owner: &str, strings: &[&[u8]], ttl: u32) -> Record {
        let mut t = Txt::new(strings[0]).unwrap();
        for s in &strings[1..] {
            t.push(s).unwrap();
        }
        Record {
            name: name(owner),
            ttl,
            data: RecordData::Txt(t),
        }
    }

    /// A resolver's reply to the query in `msg`, built by the wire layer's emitter after `edit`.
    pub(in crate::probe) fn reply(msg: &[u8], edit: impl FnOnce(&mut Response)) -> StdVec<u8> {
        let query = Query::parse(msg).expect("the probe sends a well-formed query");
        let mut r = Response::reply_to(&query);
        edit(&mut r);
        let mut buf = vec![0; r.buffer_len()];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    fn answers(records: &[Record]) -> impl Fn(&mut Response) + '_ {
        move |r: &mut Response| {
            for rec in records {
                r.answers.push(rec.clone()).unwrap();
            }
        }
    }

    fn probe(host: &str, qtype: QueryType, config: DnsConfig, seed: u64) -> DnsProbe {
        let query = DnsQuery {
            resolver: RESOLVER,
            name: name(host),
            qtype,
        };
        DnsProbe::new(query, config, SplitMix64::new(seed)).unwrap()
    }

    fn config(timeout_ms: u64, tries: u8) -> DnsConfig {
        DnsConfig {
            timeout: ms(timeout_ms),
            tries,
            tcp_timeout: ms(3_000),
        }
    }

    fn outlook_records() -> StdVec<Record> {
        vec![
            a("LHR-efz.ms-acdc.office.com", [203, 0, 113, 10], 30),
            cname(
                "outlook.ms-acdc.office.com",
                "LHR-efz.ms-acdc.office.com",
                17,
            ),
            cname("OUTLOOK.office365.com", "outlook.ha.office365.com", 300),
            Record {
                name: name("lhr-EFZ.ms-acdc.office.com"),
                ttl: 31,
                data: RecordData::Aaaa(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
            },
            a("LHR-efz.ms-acdc.office.com", [203, 0, 113, 11], 30),
            cname("outlook.ha.office365.com", "outlook.ms-acdc.office.com", 60),
        ]
    }

    #[test]
    fn the_answer_after_a_scripted_delay_gives_that_exact_rtt() {
        let seen = Rc::new(RefCell::new(StdVec::new()));
        let log = seen.clone();
        let mut net = Net::new(
            Path::fixed(Duration::from_micros(12_345)),
            Path::script(vec![Fate::Deliver(Duration::from_micros(7_655))]),
            1,
        )
        .udp(RESOLVER, move |_, _, q| {
            log.borrow_mut().push(Query::parse(q).unwrap());
            vec![reply(
                q,
                answers(&[a("whoami.akamai.net", [198, 51, 100, 200], 20)]),
            )]
        });
        let mut p = probe("whoami.akamai.net", QueryType::A, DnsConfig::DEFAULT, 7);
        let (out, at) = net.run(&mut p, T0);
        let answer = out.answer.as_ref().unwrap();
        assert_eq!(answer.rtt, ms(20));
        assert_eq!(answer.exchange, Exchange::Udp(1));
        assert_eq!(at, T0 + ms(20));
        assert_eq!(out.elapsed, ms(20));
        assert_eq!((out.tries, out.tcp, out.failures()), (1, false, 0));
        assert_eq!(
            answer.addresses.as_slice(),
            [("198.51.100.200".parse().unwrap(), 20)]
        );
        // What went out: an A query with EDNS(0) at 1232 octets, recursion desired.
        let q = &seen.borrow()[0];
        assert_eq!(q.question.qtype, Type::A);
        assert_eq!(q.edns.map(|e| e.udp_payload_size), Some(1232));
        assert!(q.recursion_desired);
    }

    #[test]
    fn ids_come_from_the_seed() {
        let ids = |seed| {
            let seen = Rc::new(RefCell::new(StdVec::new()));
            let log = seen.clone();
            // Every answer lost: all three tries reach the server.
            let mut net = Net::new(Path::fixed(ms(1)), Path::script(vec![Fate::Drop]), 0).udp(
                RESOLVER,
                move |_, _, q| {
                    log.borrow_mut().push(Query::parse(q).unwrap().id);
                    vec![reply(q, |_| {})]
                },
            );
            net.run(
                &mut probe("a.example", QueryType::A, config(100, 3), seed),
                T0,
            );
            seen.take()
        };
        let (one, again, other) = (ids(1), ids(1), ids(2));
        assert_eq!(one.len(), 3);
        assert_eq!(one, again, "same seed, same ids");
        assert_ne!(one, other);
        // Seed 31784 draws 8102 twice in a row: the second try must still get an id of its own, or
        // try 1's late answer would be taken for try 2's (and its RTT measured from the wrong send).
        let mut twice = SplitMix64::new(31784);
        assert_eq!(twice.next_u16(), twice.next_u16());
        for ids in [one, ids(31784)] {
            assert!(
                ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
                "{ids:?}"
            );
        }
    }

    #[test]
    fn a_lost_query_is_retried_at_the_timeout_and_the_rtt_counts_from_the_retry() {
        let mut net = Net::new(
            Path::script(vec![Fate::Drop, Fate::Deliver(ms(9))]),
            Path::fixed(ms(11)),
            1,
        )
        .udp(RESOLVER, |_, _, q| {
            vec![reply(q, answers(&[a("a.example", [192, 0, 2, 1], 5)]))]
        });
        let (out, at) = net.run(&mut probe("a.example", QueryType::A, config(500, 3), 3), T0);
        assert_eq!(net.sends(), [T0, T0 + ms(500)]);
        let answer = out.answer.as_ref().unwrap();
        assert_eq!(answer.exchange, Exchange::Udp(2));
        assert_eq!(answer.rtt, ms(20));
        assert_eq!(out.elapsed, ms(520));
        assert_eq!(at, T0 + ms(520));
        assert_eq!((out.tries, out.failures()), (2, 1));
    }

    #[test]
    fn a_late_answer_to_an_earlier_try_is_that_try_s() {
        // Try 1's answer takes 560 ms; try 2 (sent at 500 ms) loses its answer.
        let mut net = Net::new(
            Path::fixed(ms(10)),
            Path::script(vec![Fate::Deliver(ms(550)), Fate::Drop]),
            1,
        )
        .udp(RESOLVER, |_, _, q| {
            vec![reply(q, answers(&[a("a.example", [192, 0, 2, 1], 5)]))]
        });
        let (out, at) = net.run(&mut probe("a.example", QueryType::A, config(500, 3), 3), T0);
        let answer = out.answer.unwrap();
        assert_eq!(answer.exchange, Exchange::Udp(1));
        assert_eq!(answer.rtt, ms(560));
        assert_eq!(at, T0 + ms(560));
        assert_eq!(out.tries, 2);
    }

    #[test]
    fn all_tries_lost_fail_with_timeout_at_tries_times_timeout() {
        let mut net = Net::new(Path::script(vec![Fate::Drop]), Path::fixed(ms(5)), 1)
            .udp(RESOLVER, |_, _, q| vec![reply(q, |_| {})]);
        let (out, at) = net.run(&mut probe("a.example", QueryType::A, config(700, 3), 3), T0);
        assert_eq!(out.answer, Err(DnsFailure::Timeout));
        assert_eq!(at, T0 + ms(2_100));
        assert_eq!(out.elapsed, ms(2_100));
        assert_eq!(net.sends(), [T0, T0 + ms(700), T0 + ms(1_400)]);
        assert_eq!(out.tries, 3);
        let summary = out.summary(4);
        assert_eq!((summary.target, summary.failures), (4, 3));
        assert_eq!(summary.answer, None);
    }

    /// A resolver whose UDP answer is truncated and whose TCP answer is the whole chain; returns the
    /// network and the TCP answer's length on the stream.
    fn truncating_resolver(one_way: Duration) -> (Net, Rc<RefCell<usize>>) {
        let stream_len = Rc::new(RefCell::new(0));
        let len = stream_len.clone();
        let net = Net::fixed(one_way)
            .udp(RESOLVER, |_, _, q| {
                vec![reply(q, |r| {
                    r.truncated = true;
                    // What fitted before the cut.
                    r.answers
                        .push(cname(
                            "outlook.office365.com",
                            "outlook.ha.office365.com",
                            300,
                        ))
                        .unwrap();
                })]
            })
            .tcp(
                RESOLVER,
                TcpServer::Accept(std::boxed::Box::new(move |bytes: &[u8]| {
                    let (msg, rest) = split_tcp(bytes).expect("one whole query per write");
                    assert!(rest.is_empty());
                    let query = Query::parse(msg).unwrap();
                    let mut r = Response::reply_to(&query);
                    answers(&outlook_records())(&mut r);
                    let mut buf = vec![0; r.tcp_buffer_len()];
                    r.emit_tcp(&mut buf).unwrap();
                    *len.borrow_mut() = buf.len();
                    buf
                })),
            );
        (net, stream_len)
    }

    #[test]
    fn a_truncated_answer_is_asked_again_over_tcp_and_read_from_one_octet_chunks() {
        let (mut net, stream_len) = truncating_resolver(ms(10));
        net.chunk = 1;
        let mut p = probe("outlook.office365.com", QueryType::A, config(1_000, 3), 9);
        let (out, at) = net.run(&mut p, T0);
        let n = *stream_len.borrow() as u64;
        assert!(n > 100, "the answer came in {n} one-octet chunks");
        // UDP answer at 20 ms, connected at 40 ms, query written then, last octet 20 ms + n-1 µs later.
        assert!(net.log.contains(&Log::Connect {
            at: T0 + ms(20),
            conn: TCP_CONN,
            to: RESOLVER
        }));
        let done = T0 + ms(60) + Duration::from_micros(n - 1);
        assert_eq!(at, done);
        assert_eq!(
            net.log.last(),
            Some(&Log::Close {
                at: done,
                conn: TCP_CONN
            })
        );
        let answer = out.answer.as_ref().unwrap();
        assert_eq!(answer.exchange, Exchange::Tcp);
        assert_eq!(answer.rtt, ms(20) + Duration::from_micros(n - 1));
        assert_eq!(
            answer.addresses.len(),
            3,
            "the whole answer, not the cut one"
        );
        assert_eq!(answer.front_door(), LocationCode::parse("LHR"));
        assert!(out.tcp);
        assert_eq!((out.tries, out.failures()), (1, 1));
        assert_eq!(net.sends(), [T0], "no UDP retry once truncated");
    }

    #[test]
    fn tcp_fallback_failures_are_named_and_bounded_by_the_tcp_timeout() {
        let run = |server: TcpServer| {
            let mut net = Net::fixed(ms(10))
                .udp(RESOLVER, |_, _, q| vec![reply(q, |r| r.truncated = true)])
                .tcp(RESOLVER, server);
            let (out, at) = net.run(
                &mut probe("a.example", QueryType::A, config(1_000, 3), 1),
                T0,
            );
            let closed = net.log.iter().any(|r| matches!(r, Log::Close { .. }));
            (out.answer.err(), at, closed)
        };
        // TC arrives at 20 ms; TCP gets 3 s from then.
        assert_eq!(
            run(TcpServer::Blackhole),
            (Some(DnsFailure::TcpTimeout), T0 + ms(3_020), true)
        );
        assert_eq!(
            run(TcpServer::Refuse),
            (
                Some(DnsFailure::TcpConnect(ConnectFailure::Refused)),
                T0 + ms(40),
                true
            )
        );
        let silent = TcpServer::Accept(std::boxed::Box::new(|_: &[u8]| vec![]));
        assert_eq!(
            run(silent),
            (Some(DnsFailure::TcpTimeout), T0 + ms(3_020), true)
        );
        // A length prefix past MAX_TCP_RESPONSE_LEN: refused as soon as the prefix is in.
        let huge = TcpServer::Accept(std::boxed::Box::new(|_: &[u8]| vec![0xff, 0xff, 0]));
        assert_eq!(run(huge), (Some(DnsFailure::TooLarge), T0 + ms(60), true));
        // A whole answer, but not to our TCP query's id.
        let other_id = TcpServer::Accept(std::boxed::Box::new(|bytes: &[u8]| {
            let (msg, _) = split_tcp(bytes).unwrap();
            let r = reply(msg, |r| r.id = r.id.wrapping_add(1));
            let mut framed = (r.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&r);
            framed
        }));
        assert_eq!(
            run(other_id),
            (Some(DnsFailure::Malformed), T0 + ms(60), true)
        );
        let garbage = TcpServer::Accept(std::boxed::Box::new(|_: &[u8]| vec![0, 3, 1, 2, 3]));
        assert_eq!(
            run(garbage),
            (Some(DnsFailure::Malformed), T0 + ms(60), true)
        );
    }

    #[test]
    fn spoofed_answers_with_a_wrong_id_or_question_are_ignored_and_the_real_one_accepted() {
        // The forgeries come first (5 ms), the real answer later (30 ms).
        let mut net = Net::new(
            Path::fixed(ms(10)),
            Path::script(vec![
                Fate::Deliver(ms(5)),
                Fate::Deliver(ms(5)),
                Fate::Deliver(ms(30)),
            ]),
            1,
        )
        .udp(RESOLVER, |_, _, q| {
            let evil = [a("a.example", [203, 0, 113, 66], 5)];
            let good = [a("a.example", [192, 0, 2, 1], 5)];
            vec![
                reply(q, |r| {
                    r.id = r.id.wrapping_add(1);
                    answers(&evil)(r)
                }),
                reply(q, |r| {
                    r.question.as_mut().unwrap().name = name("b.example");
                    answers(&evil)(r)
                }),
                reply(q, answers(&good)),
            ]
        });
        let (out, at) = net.run(&mut probe("a.example", QueryType::A, config(500, 3), 5), T0);
        let answer = out.answer.unwrap();
        assert_eq!(answer.addresses[0].0, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(answer.rtt, ms(40));
        assert_eq!(at, T0 + ms(40));
        assert_eq!(
            out.ignored,
            IgnoredResponses {
                wrong_id: 1,
                wrong_question: 1,
                ..IgnoredResponses::default()
            }
        );
    }

    #[test]
    fn answers_from_another_address_or_port_are_ignored() {
        // Driven by hand: the simulated network only answers from where a query went.
        let mut p = probe("a.example", QueryType::A, config(500, 3), 5);
        let mut buf = [0u8; MAX_TRANSMIT];
        let Some(Transmit::Datagram { to, len }) = p.poll_transmit(T0, &mut buf) else {
            panic!("the probe starts with a query");
        };
        assert_eq!(to, RESOLVER);
        let real = reply(&buf[..len], answers(&[a("a.example", [192, 0, 2, 1], 5)]));
        let other_host = SocketAddr::new(IpAddr::from([203, 0, 113, 66]), 53);
        let other_port = SocketAddr::new(RESOLVER.ip(), 5353);
        for from in [other_host, other_port] {
            p.handle(T0 + ms(3), Event::Datagram { from, data: &real });
            assert_eq!(p.poll_result(), None);
        }
        p.handle(
            T0 + ms(8),
            Event::Datagram {
                from: RESOLVER,
                data: &real,
            },
        );
        let out = p.poll_result().unwrap();
        assert_eq!(out.answer.unwrap().rtt, ms(8));
        assert_eq!(out.ignored.wrong_source, 2);
        assert_eq!(p.poll_timeout(), None, "finished");
    }

    #[test]
    fn a_shuffled_cname_chain_gives_the_chain_in_order_and_the_front_door() {
        let mut net = Net::fixed(ms(4)).udp(RESOLVER, |_, _, q| {
            vec![reply(q, answers(&outlook_records()))]
        });
        let mut p = probe(
            "outlook.office365.com",
            QueryType::A,
            DnsConfig::DEFAULT,
            11,
        );
        let (out, _) = net.run(&mut p, T0);
        let answer = out.answer.as_ref().unwrap();
        let chain: StdVec<&str> = answer.chain.iter().map(Name::as_str).collect();
        assert_eq!(
            chain,
            [
                "outlook.office365.com",
                "outlook.ha.office365.com",
                "outlook.ms-acdc.office.com",
                "LHR-efz.ms-acdc.office.com"
            ]
        );
        assert_eq!(answer.front_door(), LocationCode::parse("LHR"));
        assert_eq!(answer.min_ttl, Some(17), "the shortest-lived CNAME");
        let summary = out.summary(7);
        let want = DnsAnswer {
            rtt_us: 8_000,
            rcode: 0,
            front_door: LocationCode::parse("LHR"),
            addresses: heapless::Vec::from_slice(&[
                IpAddr::from([203, 0, 113, 10]),
                "2001:db8::10".parse().unwrap(),
            ])
            .unwrap(),
            ttl_s: 17,
        };
        assert_eq!(summary.answer, Some(want));
        assert_eq!((summary.target, summary.failures), (7, 0));
    }

    #[test]
    fn nxdomain_is_an_answer_with_rcode_3_and_no_addresses() {
        let mut net = Net::fixed(ms(6)).udp(RESOLVER, |_, _, q| {
            vec![reply(q, |r| r.rcode = Rcode::NxDomain)]
        });
        let mut p = probe("nosuch.office365.com", QueryType::Aaaa, config(500, 3), 2);
        let (out, _) = net.run(&mut p, T0);
        let answer = out.answer.as_ref().unwrap();
        assert_eq!(answer.rcode, Rcode::NxDomain);
        assert!(answer.addresses.is_empty());
        assert_eq!(answer.min_ttl, None);
        assert_eq!(net.sends(), [T0], "an NXDOMAIN is not retried");
        let report = out.summary(1).answer.unwrap();
        assert_eq!((report.rcode, report.addresses.len()), (3, 0));
        assert_eq!(report.front_door, None);
    }

    #[test]
    fn a_server_answering_garbage_fails_as_malformed_after_all_tries() {
        let mut net = Net::fixed(ms(10)).udp(RESOLVER, |_, _, q| {
            // Our id and the QR bit, then nonsense; and a datagram too short for a header.
            let mut mangled = q.to_vec();
            mangled[2] |= 0x80;
            mangled.truncate(20);
            vec![mangled, vec![0xde, 0xad]]
        });
        let (out, at) = net.run(&mut probe("a.example", QueryType::A, config(300, 2), 4), T0);
        assert_eq!(out.answer, Err(DnsFailure::Malformed));
        assert_eq!(at, T0 + ms(600));
        assert_eq!(out.ignored.malformed, 4);
        assert_eq!(out.failures(), 2);
    }

    #[test]
    fn configurations_without_tries_or_with_too_many_are_refused() {
        let q = || DnsQuery {
            resolver: RESOLVER,
            name: name("a.example"),
            qtype: QueryType::A,
        };
        let with = |tries| DnsProbe::new(q(), config(100, tries), SplitMix64::new(0)).map(|_| ());
        assert_eq!(with(0), Err(ConfigError::NoTries));
        assert_eq!(with(MAX_TRIES + 1), Err(ConfigError::TooManyTries));
        assert_eq!(with(MAX_TRIES), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_probe_always_finishes_within_its_timeouts(
            seed in any::<u64>(),
            up in proptest::collection::vec(proptest::option::weighted(0.8, 0u64..1_000), 0..12),
            down in proptest::collection::vec(proptest::option::weighted(0.8, 0u64..1_000), 0..12),
            behaviours in proptest::collection::vec(0u8..4, 1..8),
            tcp in 0u8..3,
            chunk in 1usize..64,
            tries in 1u8..=MAX_TRIES,
            timeout_ms in 1u64..1_500,
            tcp_timeout_ms in 0u64..3_000,
        ) {
            // Scripted loss (None) and delays per packet; past the script, 5 ms.
            let path = |fates: StdVec<Option<u64>>| Path::from_fn(move |i, _| {
                match fates.get(i as usize) {
                    Some(Some(d)) => Fate::Deliver(ms(*d)),
                    Some(None) => Fate::Drop,
                    None => Fate::Deliver(ms(5)),
                }
            });
            let mut n = 0usize;
            let tcp_server = match tcp {
                0 => TcpServer::Refuse,
                1 => TcpServer::Blackhole,
                _ => TcpServer::Accept(std::boxed::Box::new(|bytes: &[u8]| {
                    let Some((msg, _)) = split_tcp(bytes) else { return vec![] };
                    let mut out = vec![0; MAX_TCP_RESPONSE_LEN + 2];
                    let r = Response::reply_to(&Query::parse(msg).unwrap());
                    let len = r.emit_tcp(&mut out).unwrap();
                    out.truncate(len);
                    out
                })),
            };
            let mut net = Net::new(path(up), path(down), seed)
                .udp(RESOLVER, move |_, _, q| {
                    let b = behaviours[n % behaviours.len()];
                    n += 1;
                    match b {
                        0 => vec![reply(q, answers(&[a("a.example", [192, 0, 2, 1], 5)]))],
                        1 => vec![reply(q, |r| r.truncated = true)],
                        2 => vec![q[..q.len() / 2].to_vec()],
                        _ => vec![],
                    }
                })
                .tcp(RESOLVER, tcp_server);
            net.chunk = chunk;
            let config = DnsConfig {
                timeout: ms(timeout_ms),
                tries,
                tcp_timeout: ms(tcp_timeout_ms),
            };
            let mut p = probe("a.example", QueryType::A, config, seed);
            let (out, at) = net.run(&mut p, T0);
            let bound = ms(timeout_ms * u64::from(tries) + tcp_timeout_ms);
            prop_assert!(at <= T0 + bound, "finished at {:?}, bound {:?}", at - T0, bound);
            prop_assert_eq!(out.elapsed, at - T0);
            prop_assert!(out.tries >= 1 && out.tries <= tries);
            prop_assert_eq!(net.sends().len(), usize::from(out.tries));
            if let Ok(answer) = &out.answer {
                prop_assert!(answer.rtt <= out.elapsed);
                if let Exchange::Udp(k) = answer.exchange {
                    prop_assert!(k <= out.tries);
                }
            }
            prop_assert_eq!(p.poll_timeout(), None);
        }
    }
}
