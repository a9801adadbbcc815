//! TCP connect latency: N connects to one front door, spaced apart, each closed as soon as it is open;
//! every sample's outcome with its timestamps, and a summary for the report.
//!
//! The round-trip time of a sample is the instant of [`Event::Connected`] minus the instant the
//! [`Transmit::Connect`] was polled: SYN out to SYN-ACK in, plus whatever the shell adds (its own
//! scheduling, and on Linux the kernel's). A connect that has not completed `connect_timeout` after it
//! started is closed and counted as timed out: silent drops are what a blocking firewall looks like.
//!
//! Connects start `spacing` apart (like `ping -i`), never more than `max_in_flight` at a time: a
//! firewall or SYN-flood protection must not see a burst, and back-to-back samples would measure the
//! same queue. With the default of one at a time, a slow connect delays the next one rather than
//! overlapping it, so the whole run takes at most [`TcpConfig::max_duration`].

use super::{ConnId, ConnectFailure, Event, Probe, Transmit};
use crate::report::{Rtt, TcpFailures, TcpSummary};
use crate::time::{micros_u32, Duration, Instant};
use core::fmt;
use core::net::SocketAddr;

/// The most samples one run takes (the report counts them in a `u8`; 64 connects to one front door are
/// far more than a cycle needs).
pub const MAX_TCP_SAMPLES: usize = 64;
/// The most connections a run keeps open at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Samples per run unless configured: enough for a median and a p95 that is not just the maximum of
/// three.
pub const DEFAULT_SAMPLES: u8 = 10;
/// Time between connect starts unless configured.
pub const DEFAULT_SPACING: Duration = Duration::from_millis(100);
/// How long a connect may take unless configured: Linux's first SYN retransmission comes after 1 s and
/// the second after 3 s, so a connect slower than this has lost a SYN twice.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// The front door and port.
    pub target: SocketAddr,
    /// How many connects, 1 to [`MAX_TCP_SAMPLES`].
    pub samples: u8,
    /// Time from one connect's start to the next one's (the next waits longer if no slot is free).
    pub spacing: Duration,
    /// How long a connect may take before it is closed and counted as timed out.
    pub connect_timeout: Duration,
    /// Connections open at once, 1 to [`MAX_IN_FLIGHT`].
    pub max_in_flight: u8,
}

impl TcpConfig {
    /// The defaults for `target`: 10 samples, 100 ms apart, 3 s timeout, one at a time.
    pub const fn new(target: SocketAddr) -> Self {
        Self {
            target,
            samples: DEFAULT_SAMPLES,
            spacing: DEFAULT_SPACING,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_in_flight: 1,
        }
    }

    /// The longest a run can take, from start to result: every connect timing out, each start delayed
    /// by the one before it, `(samples - 1) * max(spacing, connect_timeout) + connect_timeout`.
    pub fn max_duration(&self) -> Duration {
        let step = self.spacing.max(self.connect_timeout);
        step * u32::from(self.samples.saturating_sub(1)) + self.connect_timeout
    }

    fn check(&self) -> Result<(), TcpConfigError> {
        if self.samples == 0 || usize::from(self.samples) > MAX_TCP_SAMPLES {
            Err(TcpConfigError::Samples)
        } else if self.max_in_flight == 0 || usize::from(self.max_in_flight) > MAX_IN_FLIGHT {
            Err(TcpConfigError::InFlight)
        } else if self.connect_timeout == Duration::from_ticks(0) {
            Err(TcpConfigError::Timeout)
        } else {
            Ok(())
        }
    }
}

/// Why a [`TcpConfig`] cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpConfigError {
    /// `samples` is 0 or more than [`MAX_TCP_SAMPLES`].
    Samples,
    /// `max_in_flight` is 0 or more than [`MAX_IN_FLIGHT`].
    InFlight,
    /// `connect_timeout` is zero.
    Timeout,
}

#[cfg(feature = "std")]
impl std::error::Error for TcpConfigError {}

impl fmt::Display for TcpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Samples => write!(f, "TCP samples must be 1 to {MAX_TCP_SAMPLES}"),
            Self::InFlight => write!(f, "TCP connects in flight must be 1 to {MAX_IN_FLIGHT}"),
            Self::Timeout => f.write_str("TCP connect timeout must be more than zero"),
        }
    }
}

/// One connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSample {
    /// When the connect was asked for (the `Transmit::Connect` was polled).
    pub started: Instant,
    /// When its outcome was known: connected, failed, or the timeout's instant.
    pub ended: Instant,
    /// Connected, or why not ([`ConnectFailure::TimedOut`] also when the probe's own timeout fired).
    pub outcome: Result<(), ConnectFailure>,
}

impl TcpSample {
    /// The connect time, if it connected.
    pub fn rtt(&self) -> Option<Duration> {
        self.outcome
            .ok()
            .map(|()| self.ended.saturating_duration_since(self.started))
    }
}

/// Failed connects by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// Answered with a reset.
    pub refused: u8,
    /// No answer within the timeout (the probe's or the OS's).
    pub timed_out: u8,
    /// ICMP unreachable or no route.
    pub unreachable: u8,
    /// Anything else the OS said.
    pub other: u8,
}

impl FailureCounts {
    /// All failures.
    pub fn total(&self) -> u8 {
        self.refused
            .saturating_add(self.timed_out)
            .saturating_add(self.unreachable)
            .saturating_add(self.other)
    }
}

/// What a run measured: every sample in start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpResult {
    /// The front door and port.
    pub target: SocketAddr,
    /// Every connect, in the order started.
    pub samples: heapless::Vec<TcpSample, MAX_TCP_SAMPLES>,
}

impl TcpResult {
    /// The connect times of the samples that connected, in start order.
    pub fn rtts(&self) -> impl Iterator<Item = Duration> + '_ {
        self.samples.iter().filter_map(TcpSample::rtt)
    }

    /// How many connected.
    pub fn connected(&self) -> u8 {
        // At most MAX_TCP_SAMPLES (64).
        self.rtts().count() as u8
    }

    /// Min, median and p95 (nearest rank) of the connect times in µs; `None` if nothing connected.
    pub fn rtt(&self) -> Option<Rtt> {
        let mut us = [0u32; MAX_TCP_SAMPLES];
        let mut n = 0;
        for (slot, rtt) in us.iter_mut().zip(self.rtts()) {
            *slot = micros_u32(rtt);
            n += 1;
        }
        Rtt::from_samples(us.get_mut(..n)?)
    }

    /// Failed connects by cause.
    pub fn failures(&self) -> FailureCounts {
        let mut counts = FailureCounts::default();
        for sample in &self.samples {
            let slot = match sample.outcome {
                Ok(()) => continue,
                Err(ConnectFailure::Refused) => &mut counts.refused,
                Err(ConnectFailure::TimedOut) => &mut counts.timed_out,
                Err(ConnectFailure::Unreachable) => &mut counts.unreachable,
                Err(ConnectFailure::Other) => &mut counts.other,
            };
            *slot = slot.saturating_add(1);
        }
        counts
    }

    /// The report's latency entry for manifest target `target`; `None` if nothing connected.
    pub fn summary(&self, target: u8) -> Option<TcpSummary> {
        Some(TcpSummary {
            target,
            samples: self.connected(),
            rtt: self.rtt()?,
        })
    }

    /// The report's failure entry for manifest target `target`; `None` if nothing failed. The report has
    /// no "other" column: those count as unreachable ("any other error").
    pub fn failure_summary(&self, target: u8) -> Option<TcpFailures> {
        let f = self.failures();
        (f.total() > 0).then_some(TcpFailures {
            target,
            refused: f.refused,
            timed_out: f.timed_out,
            unreachable: f.unreachable.saturating_add(f.other),
        })
    }
}

/// A sample as the run tracks it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    started: Instant,
    /// `None` while the connect is in flight.
    end: Option<(Instant, Result<(), ConnectFailure>)>,
}

/// The TCP connect probe: see the module docs.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    config: TcpConfig,
    /// One per connect started; the index is the connection id.
    slots: heapless::Vec<Slot, MAX_TCP_SAMPLES>,
    /// When the next connect may start.
    next_start: Instant,
    /// Connections to close, oldest first; each was in flight, so at most `MAX_IN_FLIGHT` wait.
    to_close: heapless::Deque<ConnId, MAX_IN_FLIGHT>,
    done: bool,
}

impl TcpProbe {
    /// A run that starts its first connect at `now` (the next `poll_transmit`).
    pub fn new(config: TcpConfig, now: Instant) -> Result<Self, TcpConfigError> {
        config.check()?;
        Ok(Self {
            config,
            slots: heapless::Vec::new(),
            next_start: now,
            to_close: heapless::Deque::new(),
            done: false,
        })
    }

    fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.end.is_none()).count()
    }

    fn deadline(&self, slot: &Slot) -> Instant {
        slot.started.saturating_add(self.config.connect_timeout)
    }

    fn may_start_more(&self) -> bool {
        self.slots.len() < usize::from(self.config.samples)
            && self.in_flight() < usize::from(self.config.max_in_flight)
    }

    /// Records a connect's outcome (the first one only); `close` when a connection (or the shell's
    /// attempt) is still open and must be closed.
    fn finish(
        &mut self,
        conn: ConnId,
        at: Instant,
        outcome: Result<(), ConnectFailure>,
        close: bool,
    ) {
        let Some(slot) = self.slots.get_mut(usize::from(conn)) else {
            return;
        };
        if slot.end.is_some() {
            return;
        }
        slot.end = Some((at, outcome));
        if close {
            // Room: every queued id was in flight until now, and at most MAX_IN_FLIGHT are.
            let _ = self.to_close.push_back(conn);
        }
    }

    /// Times out every connect whose deadline is before `now` (`strict`) or not after it.
    fn expire(&mut self, now: Instant, strict: bool) {
        for conn in 0..self.slots.len() {
            let Some(slot) = self.slots.get(conn).copied() else {
                continue;
            };
            let deadline = self.deadline(&slot);
            let due = if strict {
                deadline < now
            } else {
                deadline <= now
            };
            if slot.end.is_none() && due {
                // ConnId fits: conn < MAX_TCP_SAMPLES.
                self.finish(
                    conn as ConnId,
                    deadline,
                    Err(ConnectFailure::TimedOut),
                    true,
                );
            }
        }
    }
}

impl Probe for TcpProbe {
    type Output = TcpResult;

    fn handle(&mut self, now: Instant, event: Event<'_>) {
        // A connect that completes after its deadline timed out, even if the shell was late to say so.
        self.expire(now, true);
        match event {
            Event::Connected { conn } => self.finish(conn, now, Ok(()), true),
            // Nothing is open after a failure the shell reports.
            Event::ConnectFailed { conn, cause } => self.finish(conn, now, Err(cause), false),
            // Bytes or a close on a connection we only open: nothing to learn.
            Event::Received { .. } | Event::Closed { .. } | Event::Datagram { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire(now, false);
    }

    fn poll_transmit(&mut self, now: Instant, _buf: &mut [u8]) -> Option<Transmit> {
        if let Some(conn) = self.to_close.pop_front() {
            return Some(Transmit::Close { conn });
        }
        if self.may_start_more() && now >= self.next_start {
            // ConnId fits: fewer than MAX_TCP_SAMPLES slots.
            let conn = self.slots.len() as ConnId;
            self.slots
                .push(Slot {
                    started: now,
                    end: None,
                })
                .ok()?;
            self.next_start = now.saturating_add(self.config.spacing);
            return Some(Transmit::Connect {
                conn,
                to: self.config.target,
            });
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let deadlines = self
            .slots
            .iter()
            .filter(|s| s.end.is_none())
            .map(|s| self.deadline(s));
        let start = self.may_start_more().then_some(self.next_start);
        deadlines.chain(start).min()
    }

    fn poll_result(&mut self) -> Option<TcpResult> {
        let complete = self.slots.len() == usize::from(self.config.samples)
            && self.slots.iter().all(|s| s.end.is_some());
        if self.done || !complete || !self.to_close.is_empty() {
            return None;
        }
        self.done = true;
        let samples = self
            .slots
            .iter()
            .filter_map(|s| {
                let (ended, outcome) = s.end?;
                Some(TcpSample {
                    started: s.started,
                    ended,
                    outcome,
                })
            })
            .collect();
        Some(TcpResult {
            target: self.config.target,
            samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::sim::{Fate, Net, Path, TcpServer};
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::vec::Vec;

    const T0: Instant = Instant::from_secs(100);

    fn front_door() -> SocketAddr {
        "203.0.113.5:443".parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn accept() -> TcpServer {
        TcpServer::Accept(Box::new(|_| Vec::new()))
    }

    fn run(net: &mut Net, config: TcpConfig) -> (TcpResult, Instant) {
        let mut probe = TcpProbe::new(config, T0).unwrap();
        let out = net.run(&mut probe, T0);
        assert_eq!(probe.poll_timeout(), None, "finished");
        assert_eq!(probe.poll_result(), None, "the result comes once");
        out
    }

    /// The most connects in flight at once: each from its start (which must be when the network saw
    /// it) until its outcome, an end counted before a start at the same instant.
    fn most_open(net: &Net, result: &TcpResult) -> usize {
        let starts: Vec<Instant> = result.samples.iter().map(|s| s.started).collect();
        assert_eq!(starts, net.connects());
        let mut changes: Vec<(Instant, i32)> = starts.into_iter().map(|t| (t, 1)).collect();
        changes.extend(result.samples.iter().map(|s| (s.ended, -1)));
        changes.sort();
        let mut open = 0;
        let mut most = 0;
        for (_, d) in changes {
            open += d;
            most = most.max(open);
        }
        most as usize
    }

    #[test]
    fn scripted_delays_give_exactly_those_rtts_and_the_summary_by_hand() {
        let up_ms = [12, 30, 7, 25, 18, 40, 9, 22, 15, 33];
        let up = Path::script(up_ms.iter().map(|&d| Fate::Deliver(ms(d))).collect());
        let mut net = Net::new(up, Path::fixed(ms(5)), 1).tcp(front_door(), accept());
        let (result, at) = run(&mut net, TcpConfig::new(front_door()));

        let rtts: Vec<Duration> = result.rtts().collect();
        let want: Vec<Duration> = up_ms.iter().map(|&d| ms(d + 5)).collect();
        assert_eq!(rtts, want);
        // Sorted: 12 14 17 20 23 27 30 35 38 45 ms. Nearest rank: median is the 5th, p95 the 10th.
        let summary = result.summary(7).unwrap();
        assert_eq!(summary.target, 7);
        assert_eq!(summary.samples, 10);
        assert_eq!(summary.rtt, Rtt::new(12_000, 23_000, 45_000).unwrap());
        assert_eq!(result.failure_summary(7), None);

        // Every connect 100 ms after the one before, each closed the instant it connected.
        let starts: Vec<Instant> = (0..10).map(|i| T0 + ms(100 * i)).collect();
        assert_eq!(net.connects(), starts);
        let closed: Vec<(Instant, ConnId)> = starts
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(i, (s, rtt))| (*s + *rtt, i as ConnId))
            .collect();
        assert_eq!(net.closes(), closed);
        assert_eq!(at, T0 + ms(900 + 38));
        assert!(result
            .samples
            .iter()
            .zip(&starts)
            .all(|(s, start)| s.started == *start));
    }

    #[test]
    fn refused_connects_are_counted_and_nothing_is_closed() {
        let mut net = Net::fixed(ms(10)).tcp(front_door(), TcpServer::Refuse);
        let config = TcpConfig {
            samples: 3,
            ..TcpConfig::new(front_door())
        };
        let (result, at) = run(&mut net, config);
        assert_eq!(result.summary(0), None);
        assert_eq!(
            result.failure_summary(0),
            Some(TcpFailures {
                target: 0,
                refused: 3,
                timed_out: 0,
                unreachable: 0
            })
        );
        assert!(net.closes().is_empty());
        assert_eq!(at, T0 + ms(200 + 20));
        assert_eq!(result.samples[2].ended, T0 + ms(220));
    }

    #[test]
    fn a_blackhole_times_out_at_the_configured_instant_and_is_closed() {
        let mut net = Net::fixed(ms(10)).tcp(front_door(), TcpServer::Blackhole);
        let config = TcpConfig {
            samples: 3,
            connect_timeout: ms(2_500),
            ..TcpConfig::new(front_door())
        };
        let (result, at) = run(&mut net, config);
        // One at a time: each connect waits for the one before to time out.
        assert_eq!(net.connects(), [T0, T0 + ms(2_500), T0 + ms(5_000)]);
        assert_eq!(
            net.closes(),
            [
                (T0 + ms(2_500), 0),
                (T0 + ms(5_000), 1),
                (T0 + ms(7_500), 2)
            ]
        );
        assert_eq!(at, T0 + config.max_duration());
        assert_eq!(at, T0 + ms(7_500));
        let f = result.failure_summary(3).unwrap();
        assert_eq!((f.refused, f.timed_out, f.unreachable), (0, 3, 0));
        for s in &result.samples {
            assert_eq!(s.outcome, Err(ConnectFailure::TimedOut));
            assert_eq!(s.ended, s.started + ms(2_500));
        }
    }

    #[test]
    fn lost_syns_overlap_up_to_the_configured_number_of_connections() {
        let up = Path::script(std::vec![Fate::Drop, Fate::Drop, Fate::Deliver(ms(10)),]);
        let mut net = Net::new(up, Path::fixed(ms(10)), 1).tcp(front_door(), accept());
        let config = TcpConfig {
            samples: 4,
            connect_timeout: ms(1_000),
            max_in_flight: 2,
            ..TcpConfig::new(front_door())
        };
        let (result, at) = run(&mut net, config);
        // Two lost SYNs fill both slots; the third connect starts when the first times out, the fourth
        // when the second does.
        assert_eq!(
            net.connects(),
            [T0, T0 + ms(100), T0 + ms(1_000), T0 + ms(1_100)]
        );
        assert_eq!(most_open(&net, &result), 2);
        assert_eq!(result.connected(), 2);
        assert_eq!(result.failures().timed_out, 2);
        assert_eq!(at, T0 + ms(1_120));
        let rtt = result.rtt().unwrap();
        assert_eq!((rtt.min_us(), rtt.p95_us()), (20_000, 20_000));
    }

    #[test]
    fn every_cause_the_shell_reports_is_counted_and_late_answers_are_ignored() {
        let config = TcpConfig {
            samples: 5,
            spacing: ms(0),
            connect_timeout: ms(500),
            max_in_flight: 4,
            ..TcpConfig::new(front_door())
        };
        let mut probe = TcpProbe::new(config, T0).unwrap();
        let mut buf = [0u8; crate::probe::MAX_TRANSMIT];
        let mut opened = Vec::new();
        while let Some(t) = probe.poll_transmit(T0, &mut buf) {
            opened.push(t);
        }
        assert_eq!(opened.len(), 4, "four in flight at most");
        let fail = |conn, cause| Event::ConnectFailed { conn, cause };
        probe.handle(T0 + ms(1), fail(0, ConnectFailure::Unreachable));
        probe.handle(T0 + ms(2), fail(1, ConnectFailure::Other));
        probe.handle(T0 + ms(3), fail(2, ConnectFailure::TimedOut));
        // Connection 3 answers after its deadline: the shell was late, the probe is not.
        probe.handle(T0 + ms(600), Event::Connected { conn: 3 });
        assert_eq!(
            probe.poll_transmit(T0 + ms(600), &mut buf),
            Some(Transmit::Close { conn: 3 })
        );
        assert_eq!(
            probe.poll_transmit(T0 + ms(600), &mut buf),
            Some(Transmit::Connect {
                conn: 4,
                to: front_door()
            })
        );
        probe.handle(T0 + ms(620), Event::Connected { conn: 4 });
        probe.handle(T0 + ms(621), Event::Connected { conn: 4 });
        probe.handle(T0 + ms(622), fail(0, ConnectFailure::Refused));
        assert_eq!(probe.poll_result(), None, "the close is not out yet");
        assert_eq!(
            probe.poll_transmit(T0 + ms(622), &mut buf),
            Some(Transmit::Close { conn: 4 })
        );
        let result = probe.poll_result().unwrap();
        assert_eq!(
            result.failures(),
            FailureCounts {
                refused: 0,
                timed_out: 2,
                unreachable: 1,
                other: 1
            }
        );
        assert_eq!(result.samples[3].ended, T0 + ms(500));
        assert_eq!(result.rtts().collect::<Vec<_>>(), [ms(20)]);
        let f = result.failure_summary(1).unwrap();
        assert_eq!((f.refused, f.timed_out, f.unreachable), (0, 2, 2));
    }

    #[test]
    fn configurations_that_cannot_run_are_refused() {
        let base = TcpConfig::new(front_door());
        for (config, err) in [
            (TcpConfig { samples: 0, ..base }, TcpConfigError::Samples),
            (
                TcpConfig {
                    samples: 65,
                    ..base
                },
                TcpConfigError::Samples,
            ),
            (
                TcpConfig {
                    max_in_flight: 0,
                    ..base
                },
                TcpConfigError::InFlight,
            ),
            (
                TcpConfig {
                    max_in_flight: 5,
                    ..base
                },
                TcpConfigError::InFlight,
            ),
            (
                TcpConfig {
                    connect_timeout: ms(0),
                    ..base
                },
                TcpConfigError::Timeout,
            ),
        ] {
            assert_eq!(TcpProbe::new(config, T0).err(), Some(err));
        }
        let most = TcpConfig {
            samples: 64,
            max_in_flight: 4,
            ..base
        };
        assert!(TcpProbe::new(most, T0).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_failures_and_delays_finish_within_the_bound(
            samples in 1u8..=20,
            spacing_ms in 0u64..500,
            timeout_ms in 1u64..3_000,
            in_flight in 1u8..=4,
            server in 0u8..3,
            fates in proptest::collection::vec(proptest::option::of(0u64..6_000), 1..40),
            seed in any::<u64>(),
        ) {
            let fates: Vec<Fate> = fates
                .into_iter()
                .map(|f| f.map_or(Fate::Drop, |d| Fate::Deliver(ms(d))))
                .collect();
            let server = match server {
                0 => accept(),
                1 => TcpServer::Refuse,
                _ => TcpServer::Blackhole,
            };
            let mut net = Net::new(Path::script(fates), Path::random(ms(1), ms(50), 0.0, 0.0), seed)
                .tcp(front_door(), server);
            let config = TcpConfig {
                samples,
                spacing: ms(spacing_ms),
                connect_timeout: ms(timeout_ms),
                max_in_flight: in_flight,
                ..TcpConfig::new(front_door())
            };
            let (result, at) = run(&mut net, config);
            prop_assert!(at <= T0 + config.max_duration());
            prop_assert_eq!(result.samples.len(), usize::from(samples));
            prop_assert_eq!(result.connected() + result.failures().total(), samples);
            prop_assert!(most_open(&net, &result) <= usize::from(in_flight));
            for (i, s) in result.samples.iter().enumerate() {
                prop_assert!(s.ended <= s.started + config.connect_timeout);
                let closed = net.closes().contains(&(s.ended, i as ConnId));
                // Connected or timed out by the probe: closed then; refused: nothing to close.
                prop_assert_eq!(closed, s.outcome != Err(ConnectFailure::Refused));
            }
            for pair in net.connects().windows(2) {
                prop_assert!(pair[1] >= pair[0] + config.spacing);
            }
        }
    }
}
