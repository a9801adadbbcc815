//! One whole probe cycle through the core alone, on an in-memory network: what `cargo xtask bench` times
//! on the host (criterion) and runs on a Cortex-M4 under QEMU to measure the core's flash and RAM.
//!
//! For each target: resolve its name (DNS over UDP, a four-name CNAME chain ending in a front door),
//! time ten TCP connects, read the TLS certificate flight of a real server (captured from `openssl
//! s_server`, core/tests/fixtures/tls) and judge it against the bundled Microsoft roots; every fifth target
//! is a Teams relay and gets a train of 50 STUN binding requests. Then the results become one sealed
//! report frame in the uplink queue. The network answers after fixed delays, so a cycle does the same
//! work every time: the figures measure the core, not a network.
//!
//! Built only with the `cycle` feature: it is a measuring instrument, not part of the probe.

use core::fmt::Write as _;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use heapless::{String, Vec};

use crate::probe::dns::{DnsConfig, DnsProbe, DnsQuery, QueryType};
use crate::probe::stun::{StunConfig, StunProbe};
use crate::probe::tcp::{TcpConfig, TcpProbe};
use crate::probe::tls::{FirmwareTlsProbe, TlsConfig};
use crate::probe::{ConnId, Event, Probe, Transmit, MAX_TRANSMIT};
use crate::rand::SplitMix64;
use crate::report::{Key, Message, QueueConfig, ReportQueue, Results};
use crate::time::{Duration, Instant};
use crate::wire::dns::{self, Name, Record, RecordData};
use crate::wire::stun;

/// Most targets in one cycle: one results frame's worth.
pub const MAX_TARGETS: usize = 20;

/// A real server's TLS 1.2 flight (ServerHello, Certificate, ServerKeyExchange, ServerHelloDone).
static FLIGHT: &[u8] = include_bytes!("../tests/fixtures/tls/s_server-genuine.bin");

const RESOLVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53)), 53);
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 40000);
const SEGMENT: usize = 1460;
const PENDING: usize = 16;
const DATAGRAM: usize = 512;

/// What one cycle did: enough to check that the work really happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleSummary {
    /// Targets probed.
    pub targets: u8,
    /// Names resolved to the front door `LHR`.
    pub resolved: u8,
    /// TCP connects completed.
    pub connects: u16,
    /// TLS chains judged genuine.
    pub genuine: u8,
    /// STUN responses received.
    pub stun_responses: u16,
    /// Bytes of the sealed results frame.
    pub frame_len: u16,
    /// Simulated time the cycle took, µs.
    pub elapsed_us: u64,
}

/// Runs one cycle over `targets` targets (at most [`MAX_TARGETS`]) with ids and randoms from `seed`.
pub fn run(targets: usize, seed: u64) -> CycleSummary {
    let targets = targets.min(MAX_TARGETS);
    let mut rng = SplitMix64::new(seed);
    let start = Instant::from_secs(1);
    let mut now = start;
    let mut net = Network::new();
    let mut results = Results::new(1, 1_790_000_000, 0);
    let mut summary = CycleSummary {
        targets: targets as u8,
        ..CycleSummary::default()
    };

    for i in 0..targets {
        let target = i as u8;
        let front_door = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 + target)), 443);
        let mut host: String<64> = String::new();
        let _ = write!(host, "t{i}.outlook.office365.com");

        let Ok(name) = Name::new(&host) else { continue };
        let query = DnsQuery {
            resolver: RESOLVER,
            name,
            qtype: QueryType::A,
        };
        if let Ok(mut probe) = DnsProbe::new(query, DnsConfig::DEFAULT, rng.fork()) {
            let (out, end) = net.drive(&mut probe, now);
            now = end;
            if out
                .answer
                .as_ref()
                .ok()
                .and_then(|r| r.front_door())
                .is_some_and(|c| c.as_str() == "LHR")
            {
                summary.resolved += 1;
            }
            let _ = results.dns.push(out.summary(target));
        }

        if let Ok(mut probe) = TcpProbe::new(TcpConfig::new(front_door), now) {
            let (out, end) = net.drive(&mut probe, now);
            now = end;
            summary.connects += u16::from(out.connected());
            if let Some(s) = out.summary(target) {
                let _ = results.tcp.push(s);
            }
        }

        if i % 2 == 0 {
            let mut config = TlsConfig::new(front_door, "outlook.office365.com");
            config.seed = rng.next_u64();
            if let Ok(mut probe) = FirmwareTlsProbe::new(config, now) {
                let (out, end) = net.drive(&mut probe, now);
                now = end;
                if out.verdict() == crate::report::TlsVerdict::Genuine {
                    summary.genuine += 1;
                }
                let _ = results.tls.push(out.summary(target));
            }
        }

        if i % 5 == 4 {
            let relay = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 100)), 3478);
            if let Ok(mut probe) = StunProbe::<64>::new(StunConfig::new(relay), rng.fork(), now) {
                let (out, end) = net.drive(&mut probe, now);
                now = end;
                let s = out.summary(target);
                summary.stun_responses += s.received;
                let _ = results.stun.push(s);
            }
        }
    }

    let mut queue: ReportQueue<2, 2400> = ReportQueue::new(QueueConfig::default(), seed);
    let key = Key::from_bytes([7; 32]);
    let mut message = Message::Results(results);
    if queue.seal_and_push(now, &key, 1, 1, &mut message).is_ok() {
        if let Some(out) = queue.poll_transmit(now) {
            summary.frame_len = out.frame.len() as u16;
        }
    }
    summary.elapsed_us = (now - start).as_micros();
    summary
}

// Deliveries live in a fixed queue (no allocator): the datagram is stored inline.
#[allow(clippy::large_enum_variant)]
enum Delivery {
    Datagram {
        from: SocketAddr,
        len: usize,
        data: [u8; DATAGRAM],
    },
    Connected(ConnId),
    Received(ConnId, &'static [u8]),
}

/// Fixed-delay servers: a resolver, TCP front doors that send the captured TLS flight, a STUN relay.
struct Network {
    pending: Vec<(Instant, u32, Delivery), PENDING>,
    order: u32,
    connects: u32,
}

impl Network {
    fn new() -> Self {
        Self {
            pending: Vec::new(),
            order: 0,
            connects: 0,
        }
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        self.order += 1;
        // A full queue loses the delivery, which the probes see as loss: the cycle still ends.
        let _ = self.pending.push((at, self.order, d));
    }

    fn drive<P: Probe>(&mut self, probe: &mut P, start: Instant) -> (P::Output, Instant) {
        let mut now = start;
        let mut buf = [0u8; MAX_TRANSMIT];
        self.pending.clear();
        loop {
            while let Some(t) = probe.poll_transmit(now, &mut buf) {
                self.transmit(now, t, &buf);
            }
            if let Some(out) = probe.poll_result() {
                return (out, now);
            }
            let next_delivery = self.pending.iter().map(|p| (p.0, p.1)).min();
            now = match (probe.poll_timeout(), next_delivery) {
                (Some(t), Some((d, _))) => t.min(d),
                (Some(t), None) => t,
                (None, Some((d, _))) => d,
                // A probe with no timeout and nothing in flight is finished or broken: either way, stop.
                (None, None) => now + Duration::from_secs(60),
            };
            while let Some(i) = self.due(now) {
                let (_, _, d) = self.pending.swap_remove(i);
                match d {
                    Delivery::Datagram { from, len, data } => probe.handle(
                        now,
                        Event::Datagram {
                            from,
                            data: &data[..len],
                        },
                    ),
                    Delivery::Connected(conn) => probe.handle(now, Event::Connected { conn }),
                    Delivery::Received(conn, data) => {
                        probe.handle(now, Event::Received { conn, data })
                    }
                }
            }
            if probe.poll_timeout().is_some_and(|t| t <= now) {
                probe.handle_timeout(now);
            }
        }
    }

    fn due(&self, now: Instant) -> Option<usize> {
        let (i, _) = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.0 <= now)
            .min_by_key(|(_, p)| (p.0, p.1))?;
        Some(i)
    }

    fn transmit(&mut self, now: Instant, t: Transmit, buf: &[u8]) {
        match t {
            Transmit::Datagram { to, len } if to == RESOLVER => {
                let mut data = [0u8; DATAGRAM];
                if let Some(len) = resolve(&buf[..len], &mut data) {
                    self.schedule(
                        now + Duration::from_millis(2),
                        Delivery::Datagram {
                            from: to,
                            len,
                            data,
                        },
                    );
                }
            }
            Transmit::Datagram { to, len } => {
                let mut data = [0u8; DATAGRAM];
                if let Some(len) = stun_answer(&buf[..len], &mut data) {
                    self.schedule(
                        now + Duration::from_millis(20),
                        Delivery::Datagram {
                            from: to,
                            len,
                            data,
                        },
                    );
                }
            }
            Transmit::Connect { conn, .. } => {
                self.connects += 1;
                let rtt = Duration::from_micros(10_000 + u64::from(self.connects % 7) * 150);
                self.schedule(now + rtt, Delivery::Connected(conn));
            }
            Transmit::Stream { conn, len } if buf.first() == Some(&0x16) && len > 0 => {
                let at = now + Duration::from_millis(10);
                for (k, chunk) in FLIGHT.chunks(SEGMENT).enumerate() {
                    self.schedule(
                        at + Duration::from_micros(k as u64 * 100),
                        Delivery::Received(conn, chunk),
                    );
                }
            }
            Transmit::Stream { .. } => {}
            Transmit::Close { conn } => self.pending.retain(|p| match p.2 {
                Delivery::Connected(c) | Delivery::Received(c, _) => c != conn,
                Delivery::Datagram { .. } => true,
            }),
        }
    }
}

/// A resolver's answer: the Microsoft-style chain `name -> outlook.ha.office365.com ->
/// outlook.ms-acdc.office.com -> LHR-efz.ms-acdc.office.com -> 203.0.113.10`.
fn resolve(query: &[u8], out: &mut [u8]) -> Option<usize> {
    let query = dns::Query::parse(query).ok()?;
    let mut response = dns::Response::reply_to(&query);
    let chain = [
        "outlook.ha.office365.com",
        "outlook.ms-acdc.office.com",
        "LHR-efz.ms-acdc.office.com",
    ];
    let mut owner = query.question.name.clone();
    for next in chain {
        let next = Name::new(next).ok()?;
        let record = Record {
            name: owner,
            ttl: 300,
            data: RecordData::Cname(next.clone()),
        };
        response.answers.push(record).ok()?;
        owner = next;
    }
    let address = RecordData::A(Ipv4Addr::new(203, 0, 113, 10));
    response
        .answers
        .push(Record {
            name: owner,
            ttl: 30,
            data: address,
        })
        .ok()?;
    response.emit(out).ok()
}

/// A STUN relay's binding success, mapping the client to its public address.
fn stun_answer(request: &[u8], out: &mut [u8]) -> Option<usize> {
    let message = stun::Message::new_checked(request).ok()?;
    let id = stun::Repr::parse(&message).ok()?.transaction_id;
    stun::Repr::binding_success(id, CLIENT).emit_into(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_does_all_its_work_and_fits_one_frame() {
        let s = run(MAX_TARGETS, 42);
        assert_eq!(s.targets, 20);
        assert_eq!(s.resolved, 20, "{s:?}");
        assert_eq!(s.connects, 200, "ten connects per target: {s:?}");
        assert_eq!(s.genuine, 10, "every second target gets a TLS check: {s:?}");
        assert_eq!(
            s.stun_responses,
            4 * 50,
            "four Teams relays, 50 requests each: {s:?}"
        );
        assert!(
            s.frame_len > 0 && usize::from(s.frame_len) <= crate::report::MAX_FRAME_LEN,
            "{s:?}"
        );
        assert_eq!(
            run(MAX_TARGETS, 42),
            s,
            "a cycle does the same work every time"
        );
    }
}
