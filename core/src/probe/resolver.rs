//! Resolver identity: the public address of the recursive resolver the office really uses, as a
//! whoami name reveals it (Microsoft's "resolver far from the office" check).
//!
//! A whoami name's authoritative server answers with the address the query came from, which is the
//! recursive resolver's egress address, not ours: Akamai's `whoami.akamai.net` as an A record, Google's
//! `o-o.myaddr.l.google.com` as a TXT string (Google adds an `edns0-client-subnet ...` string when the
//! resolver forwards ECS, so the first string that reads as an IP address is taken). This is a thin
//! layer over [`DnsProbe`]: same timeouts, retries, TCP fallback and spoofing checks.

use super::dns::{
    ConfigError, DnsConfig, DnsFailure, DnsOutcome, DnsProbe, DnsQuery, QueryType, Resolution,
};
use super::{Event, Probe, Transmit};
use crate::rand::SplitMix64;
use crate::report::{ResolverIdentity, MAX_RESOLVER_IDENTITIES};
use crate::time::Instant;
use crate::wire::dns::{Name, Rcode};
use core::fmt;
use core::net::{IpAddr, SocketAddr};
use heapless::Vec;

/// The most whoami names one configuration holds: as many as a report carries identities.
pub const MAX_WHOAMI_NAMES: usize = MAX_RESOLVER_IDENTITIES;

/// Akamai's whoami name: its A record is the querying resolver's IPv4 address.
pub const AKAMAI_WHOAMI: &str = "whoami.akamai.net";

/// Google's whoami name: its TXT record is the querying resolver's address.
pub const GOOGLE_WHOAMI: &str = "o-o.myaddr.l.google.com";

/// A whoami name and how it reports the address: A or AAAA records are the address, a TXT record
/// holds it as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whoami {
    /// The name asked.
    pub name: Name,
    /// The record type asked for, which says where the address is.
    pub qtype: QueryType,
}

impl Whoami {
    /// [`AKAMAI_WHOAMI`], A.
    pub fn akamai() -> Whoami {
        Whoami {
            name: literal(AKAMAI_WHOAMI),
            qtype: QueryType::A,
        }
    }

    /// [`GOOGLE_WHOAMI`], TXT.
    pub fn google() -> Whoami {
        Whoami {
            name: literal(GOOGLE_WHOAMI),
            qtype: QueryType::Txt,
        }
    }
}

/// A name written in this file; the tests check every one parses.
fn literal(name: &str) -> Name {
    Name::new(name).unwrap_or(Name::ROOT)
}

/// Which whoami names to ask, and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverIdentityConfig {
    /// The names, each its own probe (and its own identity in the report). Defaults: Akamai (A) and
    /// Google (TXT), two operators, so one outage does not hide the resolver.
    pub names: Vec<Whoami, MAX_WHOAMI_NAMES>,
    /// Timeouts and retries of each probe's query.
    pub dns: DnsConfig,
}

impl Default for ResolverIdentityConfig {
    fn default() -> Self {
        let mut names = Vec::new();
        // Two of MAX_WHOAMI_NAMES (4).
        let _ = names.push(Whoami::akamai());
        let _ = names.push(Whoami::google());
        ResolverIdentityConfig {
            names,
            dns: DnsConfig::DEFAULT,
        }
    }
}

/// Why no resolver address was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityFailure {
    /// The query got no usable answer.
    Dns(DnsFailure),
    /// The answer's rcode is not NOERROR (a resolver that filters the name, or the name is gone).
    Rcode(Rcode),
    /// NOERROR, but no record that reads as an address.
    NoAddress,
}

#[cfg(feature = "std")]
impl std::error::Error for IdentityFailure {}

impl fmt::Display for IdentityFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(e) => write!(f, "whoami query failed: {e}"),
            Self::Rcode(rcode) => write!(f, "whoami query answered {rcode}"),
            Self::NoAddress => f.write_str("whoami answer holds no address"),
        }
    }
}

/// What the resolver identity probe learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityOutcome {
    /// The whoami query as measured (its RTT is the round trip through the resolver to the whoami
    /// name's authoritative server, since whoami answers are not cached for long).
    pub dns: DnsOutcome,
    /// The resolver's public address, or why none was learnt.
    pub address: Result<IpAddr, IdentityFailure>,
}

impl IdentityOutcome {
    /// The identity as the report carries it, for the manifest's whoami name `target`; `None` if no
    /// address was learnt (the failure shows in the same name's DNS summary).
    pub fn report(&self, target: u8) -> Option<ResolverIdentity> {
        let address = self.address.ok()?;
        Some(ResolverIdentity { target, address })
    }
}

/// The address a whoami answer reveals: for A or AAAA the first address of the final name; for TXT
/// the first character-string that, trimmed of spaces, reads as an IPv4 or IPv6 address.
pub fn revealed_address(answer: &Resolution, qtype: QueryType) -> Option<IpAddr> {
    match qtype {
        QueryType::A | QueryType::Aaaa => answer.addresses.first().map(|(ip, _)| *ip),
        QueryType::Txt => answer.txt_strings().find_map(|s| {
            core::str::from_utf8(s)
                .ok()?
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .parse()
                .ok()
        }),
    }
}

/// The resolver identity probe: a [`DnsProbe`] for a whoami name, read for the address it reveals.
#[derive(Debug, Clone)]
pub struct ResolverIdentityProbe {
    dns: DnsProbe,
    qtype: QueryType,
}

impl ResolverIdentityProbe {
    /// A probe asking `resolver` for `whoami`, with ids from `rng` (see [`DnsProbe::new`]).
    pub fn new(
        resolver: SocketAddr,
        whoami: Whoami,
        config: DnsConfig,
        rng: SplitMix64,
    ) -> Result<ResolverIdentityProbe, ConfigError> {
        let qtype = whoami.qtype;
        let query = DnsQuery {
            resolver,
            name: whoami.name,
            qtype,
        };
        Ok(ResolverIdentityProbe {
            dns: DnsProbe::new(query, config, rng)?,
            qtype,
        })
    }
}

impl Probe for ResolverIdentityProbe {
    type Output = IdentityOutcome;

    fn handle(&mut self, now: Instant, event: Event<'_>) {
        self.dns.handle(now, event)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.dns.handle_timeout(now)
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.dns.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.dns.poll_timeout()
    }

    fn poll_result(&mut self) -> Option<IdentityOutcome> {
        let dns = self.dns.poll_result()?;
        let address = match &dns.answer {
            Err(e) => Err(IdentityFailure::Dns(*e)),
            Ok(answer) if answer.rcode != Rcode::NoError => {
                Err(IdentityFailure::Rcode(answer.rcode))
            }
            Ok(answer) => revealed_address(answer, self.qtype).ok_or(IdentityFailure::NoAddress),
        };
        Some(IdentityOutcome { dns, address })
    }
}

#[cfg(test)]
mod tests {
    use super::super::dns::tests::{a, reply, txt, RESOLVER};
    use super::super::dns::{DnsFailure, QueryType};
    use super::super::sim::{Net, Path};
    use super::*;
    use crate::time::Duration;
    use crate::wire::dns::Record;
    use std::vec;
    use std::vec::Vec as StdVec;

    const T0: Instant = Instant::from_secs(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs one identity probe against a resolver answering every query with `records` and `rcode`.
    fn identify(
        whoami: Whoami,
        records: StdVec<Record>,
        rcode: Rcode,
    ) -> (IdentityOutcome, Instant) {
        let mut net = Net::fixed(ms(15)).udp(RESOLVER, move |_, _, q| {
            vec![reply(q, |r| {
                r.rcode = rcode;
                for rec in &records {
                    r.answers.push(rec.clone()).unwrap();
                }
            })]
        });
        let config = DnsConfig {
            timeout: ms(400),
            tries: 2,
            tcp_timeout: ms(1_000),
        };
        let mut probe =
            ResolverIdentityProbe::new(RESOLVER, whoami, config, SplitMix64::new(8)).unwrap();
        net.run(&mut probe, T0)
    }

    #[test]
    fn an_a_record_whoami_reveals_the_resolver_egress_address() {
        // The office asks 198.51.100.53; the resolver reaches the internet from 203.0.113.77.
        let (out, at) = identify(
            Whoami::akamai(),
            vec![a(AKAMAI_WHOAMI, [203, 0, 113, 77], 20)],
            Rcode::NoError,
        );
        let egress = IpAddr::from([203, 0, 113, 77]);
        assert_eq!(out.address, Ok(egress));
        assert_eq!(
            out.report(2),
            Some(ResolverIdentity {
                target: 2,
                address: egress
            })
        );
        assert_eq!(out.dns.answer.as_ref().unwrap().rtt, ms(30));
        assert_eq!(at, T0 + ms(30));
    }

    #[test]
    fn a_txt_whoami_takes_the_first_string_that_is_an_address() {
        // Google answers with the resolver's address and, when the resolver forwards ECS, a second
        // record naming the client subnet; neither order nor extra strings may confuse the reading.
        let records = vec![
            txt(
                GOOGLE_WHOAMI,
                &[b"edns0-client-subnet 192.0.2.0/24", b"not-an-address"],
                60,
            ),
            txt(GOOGLE_WHOAMI, &[b" 2001:db8::53 "], 60),
            txt(GOOGLE_WHOAMI, &[b"198.51.100.99"], 60),
        ];
        let (out, _) = identify(Whoami::google(), records, Rcode::NoError);
        assert_eq!(out.address, Ok("2001:db8::53".parse().unwrap()));
        assert_eq!(out.report(0).map(|r| r.address), out.address.ok());
    }

    #[test]
    fn no_address_an_error_rcode_or_no_answer_is_a_named_failure() {
        let junk = vec![txt(
            GOOGLE_WHOAMI,
            &[b"edns0-client-subnet 192.0.2.0/24"],
            60,
        )];
        let (out, _) = identify(Whoami::google(), junk, Rcode::NoError);
        assert_eq!(out.address, Err(IdentityFailure::NoAddress));
        assert_eq!(out.report(0), None);

        let (out, _) = identify(Whoami::akamai(), vec![], Rcode::ServFail);
        assert_eq!(out.address, Err(IdentityFailure::Rcode(Rcode::ServFail)));

        // An A answer for the wrong owner is not the whoami name's address.
        let elsewhere = vec![a("whoami.example", [203, 0, 113, 1], 5)];
        let (out, _) = identify(Whoami::akamai(), elsewhere, Rcode::NoError);
        assert_eq!(out.address, Err(IdentityFailure::NoAddress));

        let mut net = Net::new(Path::script(vec![]), Path::fixed(ms(1)), 0);
        let config = DnsConfig {
            timeout: ms(400),
            tries: 2,
            tcp_timeout: ms(1_000),
        };
        let mut probe =
            ResolverIdentityProbe::new(RESOLVER, Whoami::akamai(), config, SplitMix64::new(1))
                .unwrap();
        let (out, at) = net.run(&mut probe, T0);
        assert_eq!(out.address, Err(IdentityFailure::Dns(DnsFailure::Timeout)));
        assert_eq!(at, T0 + ms(800));
    }

    #[test]
    fn the_default_config_asks_akamai_by_a_and_google_by_txt() {
        let config = ResolverIdentityConfig::default();
        let names: StdVec<(&str, QueryType)> = config
            .names
            .iter()
            .map(|w| (w.name.as_str(), w.qtype))
            .collect();
        assert_eq!(
            names,
            [
                ("whoami.akamai.net", QueryType::A),
                ("o-o.myaddr.l.google.com", QueryType::Txt)
            ]
        );
        assert_eq!(config.dns, DnsConfig::DEFAULT);
    }
}
