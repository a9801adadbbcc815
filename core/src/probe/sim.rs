//! A simulated network for probe tests: explicit time, scripted or seeded delay, loss, duplication and
//! reordering, and servers as closures (after smoltcp's netsim and quinn-proto's test `Pair`).
//!
//! [`Net::run`] drives a [`Probe`] exactly as a shell would (handle, then drain `poll_transmit`,
//! `poll_timeout`, `poll_result`), jumping time to the earliest of the probe's timeout and the next
//! delivery, so a test's numbers are exact and repeatable. Everything the network did is kept in
//! [`Net::log`], which is the ground truth tests compare the probe's results against.

use super::{ConnId, ConnectFailure, Event, Probe, Transmit, MAX_TRANSMIT};
use crate::rand::SplitMix64;
use crate::time::{Duration, Instant};
use core::net::SocketAddr;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec::Vec;

/// What happens to one packet on a path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    /// Delivered after this one-way delay.
    Deliver(Duration),
    /// Lost.
    Drop,
    /// Delivered twice, after each delay.
    Duplicate(Duration, Duration),
}

type FateFn = Box<dyn FnMut(u64, &mut SplitMix64) -> Fate>;

/// One direction of the network: decides each packet's fate from its index on the path.
pub struct Path {
    fate: FateFn,
    sent: u64,
}

impl Path {
    /// Every packet delivered after `delay`.
    pub fn fixed(delay: Duration) -> Self {
        Self::from_fn(move |_, _| Fate::Deliver(delay))
    }

    /// Packet `i` gets `fates[i]`; packets beyond the script are delivered after the last scripted delay
    /// (or dropped if the script is empty).
    pub fn script(fates: Vec<Fate>) -> Self {
        Self::from_fn(move |i, _| {
            let last = fates.iter().rev().find_map(|f| match f {
                Fate::Deliver(d) => Some(Fate::Deliver(*d)),
                _ => None,
            });
            fates
                .get(i as usize)
                .copied()
                .or(last)
                .unwrap_or(Fate::Drop)
        })
    }

    /// Seeded random impairments: `delay` plus uniform jitter in `[0, jitter]`, loss and duplication
    /// probabilities. Reordering happens when jitter exceeds the spacing between packets.
    pub fn random(delay: Duration, jitter: Duration, loss: f64, duplicate: f64) -> Self {
        Self::from_fn(move |_, rng| {
            if chance(rng, loss) {
                return Fate::Drop;
            }
            let one = |rng: &mut SplitMix64| {
                delay + Duration::from_micros(rng.below(jitter.as_micros() + 1))
            };
            let first = one(rng);
            if chance(rng, duplicate) {
                Fate::Duplicate(first, one(rng))
            } else {
                Fate::Deliver(first)
            }
        })
    }

    /// Any rule.
    pub fn from_fn(f: impl FnMut(u64, &mut SplitMix64) -> Fate + 'static) -> Self {
        Self {
            fate: Box::new(f),
            sent: 0,
        }
    }

    fn next(&mut self, rng: &mut SplitMix64) -> Fate {
        let f = (self.fate)(self.sent, rng);
        self.sent += 1;
        f
    }
}

/// True with probability `p`.
fn chance(rng: &mut SplitMix64, p: f64) -> bool {
    p > 0.0 && rng.next_f64() < p
}

/// A UDP service: gets each request (time, source, payload), returns the datagrams it answers with.
pub type UdpServer = Box<dyn FnMut(Instant, SocketAddr, &[u8]) -> Vec<Vec<u8>>>;

/// A TCP service: answers each chunk of received bytes.
pub type StreamServer = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

/// How a TCP endpoint behaves.
pub enum TcpServer {
    /// Accepts, and answers each chunk of received bytes with the returned bytes (possibly none).
    Accept(StreamServer),
    /// Answers the SYN with a reset.
    Refuse,
    /// Never answers.
    Blackhole,
}

/// What the network did, in order: the ground truth for assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// The probe sent a datagram (index on the uplink path).
    Sent {
        at: Instant,
        to: SocketAddr,
        len: usize,
    },
    /// A datagram was dropped on the way to the server or back.
    Dropped { at: Instant, up: bool },
    /// A server's datagram was scheduled to reach the probe after `delay`.
    Answered { at: Instant, delay: Duration },
    /// The probe asked for a connection.
    Connect {
        at: Instant,
        conn: ConnId,
        to: SocketAddr,
    },
    /// The probe closed a connection.
    Close { at: Instant, conn: ConnId },
}

enum Delivery {
    Datagram { from: SocketAddr, data: Vec<u8> },
    Connected(ConnId),
    Failed(ConnId, ConnectFailure),
    Received(ConnId, Vec<u8>),
}

/// The simulated network between one probe and its servers.
pub struct Net {
    rng: SplitMix64,
    /// Probe to servers.
    pub up: Path,
    /// Servers to probe.
    pub down: Path,
    udp: BTreeMap<SocketAddr, UdpServer>,
    tcp: BTreeMap<SocketAddr, TcpServer>,
    conns: BTreeMap<ConnId, SocketAddr>,
    /// Bytes per `Received` event: the server's answers are cut in chunks of this size (any reassembly bug
    /// in a probe shows up with small chunks).
    pub chunk: usize,
    // (due, insertion order) -> delivery: a stable order for equal times.
    pending: BTreeMap<(Instant, u64), Delivery>,
    order: u64,
    /// Everything that happened.
    pub log: Vec<Record>,
}

impl Net {
    /// A network with the given paths and seed, no servers.
    pub fn new(up: Path, down: Path, seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            up,
            down,
            udp: BTreeMap::new(),
            tcp: BTreeMap::new(),
            conns: BTreeMap::new(),
            chunk: usize::MAX,
            pending: BTreeMap::new(),
            order: 0,
            log: Vec::new(),
        }
    }

    /// Symmetric fixed one-way delay.
    pub fn fixed(one_way: Duration) -> Self {
        Self::new(Path::fixed(one_way), Path::fixed(one_way), 0)
    }

    /// Adds a UDP service at `addr`.
    pub fn udp(
        mut self,
        addr: SocketAddr,
        f: impl FnMut(Instant, SocketAddr, &[u8]) -> Vec<Vec<u8>> + 'static,
    ) -> Self {
        self.udp.insert(addr, Box::new(f));
        self
    }

    /// Adds a TCP endpoint at `addr`.
    pub fn tcp(mut self, addr: SocketAddr, server: TcpServer) -> Self {
        self.tcp.insert(addr, server);
        self
    }

    /// The probe's own address, as servers see it.
    pub const CLIENT: SocketAddr = SocketAddr::new(
        core::net::IpAddr::V4(core::net::Ipv4Addr::new(192, 0, 2, 10)),
        40000,
    );

    /// Drives `probe` from `start` until it yields its result; returns the result and the instant it came.
    ///
    /// Panics if the probe stalls (no timeout while nothing is in flight) or runs away (more than a
    /// million steps): both are probe bugs a shell would turn into a hang.
    pub fn run<P: Probe>(&mut self, probe: &mut P, start: Instant) -> (P::Output, Instant) {
        let mut now = start;
        let mut buf = [0u8; MAX_TRANSMIT];
        for _ in 0..1_000_000 {
            while let Some(t) = probe.poll_transmit(now, &mut buf) {
                self.transmit(now, t, &buf);
            }
            if let Some(out) = probe.poll_result() {
                return (out, now);
            }
            let timeout = probe.poll_timeout();
            let delivery = self.pending.keys().next().map(|k| k.0);
            let next = match (timeout, delivery) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => {
                    panic!("probe stalled at {now:?}: no timeout and nothing in flight")
                }
            };
            assert!(
                next >= now,
                "probe asked to wake in the past: {next:?} < {now:?}"
            );
            now = next;
            while let Some(entry) = self.pending.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let d = entry.remove();
                self.deliver(probe, now, d);
            }
            if probe.poll_timeout().is_some_and(|t| t <= now) {
                probe.handle_timeout(now);
            }
        }
        panic!("probe did not finish within a million steps");
    }

    /// When the probe sent each datagram, in order.
    pub fn sends(&self) -> Vec<Instant> {
        self.log
            .iter()
            .filter_map(|r| match r {
                Record::Sent { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    /// When the probe asked for each connection, in order.
    pub fn connects(&self) -> Vec<Instant> {
        self.log
            .iter()
            .filter_map(|r| match r {
                Record::Connect { at, .. } => Some(*at),
                _ => None,
            })
            .collect()
    }

    /// When the probe closed which connection, in order.
    pub fn closes(&self) -> Vec<(Instant, ConnId)> {
        self.log
            .iter()
            .filter_map(|r| match r {
                Record::Close { at, conn } => Some((*at, *conn)),
                _ => None,
            })
            .collect()
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        self.order += 1;
        self.pending.insert((at, self.order), d);
    }

    fn deliver<P: Probe>(&mut self, probe: &mut P, now: Instant, d: Delivery) {
        match d {
            Delivery::Datagram { from, data } => {
                probe.handle(now, Event::Datagram { from, data: &data })
            }
            Delivery::Connected(conn) => {
                if self.conns.contains_key(&conn) {
                    probe.handle(now, Event::Connected { conn })
                }
            }
            Delivery::Failed(conn, cause) => {
                if self.conns.remove(&conn).is_some() {
                    probe.handle(now, Event::ConnectFailed { conn, cause })
                }
            }
            Delivery::Received(conn, data) => {
                if self.conns.contains_key(&conn) {
                    probe.handle(now, Event::Received { conn, data: &data })
                }
            }
        }
    }

    fn transmit(&mut self, now: Instant, t: Transmit, buf: &[u8]) {
        match t {
            Transmit::Datagram { to, len } => {
                self.log.push(Record::Sent { at: now, to, len });
                let payload = buf[..len].to_vec();
                let up = self.up.next(&mut self.rng);
                for d in arrivals(up) {
                    self.request(now + d, to, &payload);
                }
                if up == Fate::Drop {
                    self.log.push(Record::Dropped { at: now, up: true });
                }
            }
            Transmit::Connect { conn, to } => {
                self.log.push(Record::Connect { at: now, conn, to });
                self.conns.insert(conn, to);
                let rtt = self.round_trip();
                match (self.tcp.get(&to), rtt) {
                    (Some(TcpServer::Accept(_)), Some(rtt)) => {
                        self.schedule(now + rtt, Delivery::Connected(conn))
                    }
                    (Some(TcpServer::Refuse), Some(rtt)) => {
                        self.schedule(now + rtt, Delivery::Failed(conn, ConnectFailure::Refused))
                    }
                    _ => {}
                }
            }
            Transmit::Stream { conn, len } => {
                let Some(to) = self.conns.get(&conn).copied() else {
                    return;
                };
                let Some(TcpServer::Accept(server)) = self.tcp.get_mut(&to) else {
                    return;
                };
                let answer = server(&buf[..len]);
                // TCP retransmits, so a stream is only delayed, never lost: use the path's delays.
                let rtt = self.round_trip().unwrap_or(Duration::from_millis(200));
                let mut at = now + rtt;
                for chunk in answer.chunks(self.chunk.max(1)) {
                    self.schedule(at, Delivery::Received(conn, chunk.to_vec()));
                    at += Duration::from_micros(1);
                }
            }
            Transmit::Close { conn } => {
                self.log.push(Record::Close { at: now, conn });
                self.conns.remove(&conn);
            }
        }
    }

    /// A SYN and its answer: `None` if either was lost.
    fn round_trip(&mut self) -> Option<Duration> {
        let up = first(self.up.next(&mut self.rng))?;
        let down = first(self.down.next(&mut self.rng))?;
        Some(up + down)
    }

    fn request(&mut self, at: Instant, to: SocketAddr, payload: &[u8]) {
        let Some(server) = self.udp.get_mut(&to) else {
            return;
        };
        let answers = server(at, Self::CLIENT, payload);
        for a in answers {
            let fate = self.down.next(&mut self.rng);
            if fate == Fate::Drop {
                self.log.push(Record::Dropped { at, up: false });
            }
            for d in arrivals(fate) {
                self.log.push(Record::Answered { at, delay: d });
                self.schedule(
                    at + d,
                    Delivery::Datagram {
                        from: to,
                        data: a.clone(),
                    },
                );
            }
        }
    }
}

fn arrivals(f: Fate) -> Vec<Duration> {
    match f {
        Fate::Deliver(d) => std::vec![d],
        Fate::Drop => Vec::new(),
        Fate::Duplicate(a, b) => std::vec![a, b],
    }
}

fn first(f: Fate) -> Option<Duration> {
    match f {
        Fate::Deliver(d) | Fate::Duplicate(d, _) => Some(d),
        Fate::Drop => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one datagram and waits up to 100 ms for the answer: the smallest possible probe.
    struct Ping {
        to: SocketAddr,
        sent: Option<Instant>,
        deadline: Option<Instant>,
        result: Option<Option<Duration>>,
    }

    impl Probe for Ping {
        type Output = Option<Duration>;
        fn handle(&mut self, now: Instant, event: Event<'_>) {
            if let (Event::Datagram { .. }, Some(sent)) = (event, self.sent) {
                self.result.get_or_insert(Some(now - sent));
                self.deadline = None;
            }
        }
        fn handle_timeout(&mut self, now: Instant) {
            if self.deadline.is_some_and(|d| d <= now) {
                self.result.get_or_insert(None);
                self.deadline = None;
            }
        }
        fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
            if self.sent.is_some() {
                return None;
            }
            self.sent = Some(now);
            self.deadline = Some(now + Duration::from_millis(100));
            buf[0] = 7;
            Some(Transmit::Datagram {
                to: self.to,
                len: 1,
            })
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.deadline
        }
        fn poll_result(&mut self) -> Option<Option<Duration>> {
            self.result.take()
        }
    }

    fn ping() -> Ping {
        Ping {
            to: "198.51.100.7:9".parse().unwrap(),
            sent: None,
            deadline: None,
            result: None,
        }
    }

    fn echo(net: Net) -> Net {
        net.udp("198.51.100.7:9".parse().unwrap(), |_, _, p| {
            std::vec![p.to_vec()]
        })
    }

    #[test]
    fn round_trip_is_the_sum_of_the_scripted_one_way_delays() {
        let mut net = echo(Net::new(
            Path::fixed(Duration::from_micros(12_300)),
            Path::script(std::vec![Fate::Deliver(Duration::from_micros(7_700))]),
            1,
        ));
        let t0 = Instant::from_secs(10);
        let (rtt, at) = net.run(&mut ping(), t0);
        assert_eq!(rtt, Some(Duration::from_millis(20)));
        assert_eq!(at, t0 + Duration::from_millis(20));
    }

    #[test]
    fn a_lost_answer_ends_in_the_probe_timeout_at_the_exact_instant() {
        let mut net = echo(Net::new(
            Path::fixed(Duration::from_millis(5)),
            Path::script(std::vec![Fate::Drop]),
            1,
        ));
        let t0 = Instant::from_secs(10);
        let (rtt, at) = net.run(&mut ping(), t0);
        assert_eq!(rtt, None);
        assert_eq!(at, t0 + Duration::from_millis(100));
        assert!(net.log.contains(&Record::Dropped {
            at: t0 + Duration::from_millis(5),
            up: false
        }));
    }

    #[test]
    fn seeded_impairments_repeat_for_a_seed() {
        let draw = |seed| {
            let mut p = Path::random(
                Duration::from_millis(10),
                Duration::from_millis(5),
                0.2,
                0.1,
            );
            let mut rng = SplitMix64::new(seed);
            (0..200).map(|_| p.next(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let fates = draw(3);
        let lost = fates.iter().filter(|f| **f == Fate::Drop).count();
        assert!((20..=60).contains(&lost), "20 % of 200 lost, got {lost}");
    }

    /// Opens one connection, sends a line, and reports when the answer's first byte came.
    struct Hello {
        to: SocketAddr,
        state: u8,
        out: Option<Result<Instant, ConnectFailure>>,
    }

    impl Probe for Hello {
        type Output = Result<Instant, ConnectFailure>;
        fn handle(&mut self, now: Instant, event: Event<'_>) {
            match event {
                Event::Connected { .. } => self.state = 2,
                Event::ConnectFailed { cause, .. } => self.out = Some(Err(cause)),
                Event::Received { .. } => self.out = self.out.or(Some(Ok(now))),
                _ => {}
            }
        }
        fn handle_timeout(&mut self, _: Instant) {
            self.out = self.out.or(Some(Err(ConnectFailure::TimedOut)));
        }
        fn poll_transmit(&mut self, _: Instant, buf: &mut [u8]) -> Option<Transmit> {
            match self.state {
                0 => {
                    self.state = 1;
                    Some(Transmit::Connect {
                        conn: 1,
                        to: self.to,
                    })
                }
                2 => {
                    self.state = 3;
                    buf[..5].copy_from_slice(b"hello");
                    Some(Transmit::Stream { conn: 1, len: 5 })
                }
                _ => None,
            }
        }
        fn poll_timeout(&self) -> Option<Instant> {
            self.out.is_none().then_some(Instant::from_secs(11))
        }
        fn poll_result(&mut self) -> Option<Self::Output> {
            self.out.take()
        }
    }

    #[test]
    fn tcp_endpoints_accept_refuse_or_stay_silent() {
        let t0 = Instant::from_secs(10);
        let to: SocketAddr = "203.0.113.5:443".parse().unwrap();
        let run = |server| {
            let mut net = Net::fixed(Duration::from_millis(15)).tcp(to, server);
            net.run(
                &mut Hello {
                    to,
                    state: 0,
                    out: None,
                },
                t0,
            )
            .0
        };
        // SYN + SYN-ACK, then the request and the answer: two round trips of 30 ms.
        let echo = TcpServer::Accept(Box::new(|b: &[u8]| b.to_vec()));
        assert_eq!(run(echo), Ok(t0 + Duration::from_millis(60)));
        assert_eq!(run(TcpServer::Refuse), Err(ConnectFailure::Refused));
        assert_eq!(run(TcpServer::Blackhole), Err(ConnectFailure::TimedOut));
    }
}
