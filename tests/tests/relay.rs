//! The WAN relay proven against the clock: two namespaces joined only by the relay, UDP trains carrying
//! their send time, kernel receive timestamps on the far side, and the relay's own log compared with
//! both. Timing comparisons that the host decides as much as the relay get a second run
//! (`assert_timing!`); everything the relay decides alone fails at once. Needs root (namespaces, TAP
//! devices); without it every test says so and passes vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use o365probe_lab::relay::{
    in_netns, read_log, Direction, DropReason, Endpoint, FrameEvent, Jitter, JitterDist, LogRecord,
    Loss, RateLimit, Relay, RelayConfig, RelayHandle, RelayStats, Reorder, Rule,
};

const MS: f64 = 1e6;
/// The tail these tests tolerate. A busy or paused virtual CPU delays a few frames by milliseconds, and
/// that is the host, not the relay; a relay that schedules wrongly moves the median, which the tests
/// hold to a fraction of a millisecond. The tail itself is a figure: `cargo xtask bench` reports it.
const TAIL: f64 = 50.0 * MS;

/// Timing tests on a two-core machine must not compete with each other.
static SERIAL: Mutex<()> = Mutex::new(());
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn have_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("skipping {test}: needs root to create network namespaces and TAP devices");
    false
}

/// A timing comparison the host decides as much as the relay: a virtual CPU its host deschedules for
/// milliseconds moves a median of a few hundred probes by more than the relay's error ever does.
struct HostNoise(String);

/// `assert!` for host timing: fails with [`HostNoise`], which [`retry_on_host_noise`] gives a second
/// run. Everything the relay decides alone (what was dropped, duplicated, reordered, logged, the
/// delays it drew) stays a plain `assert!` and fails at once.
macro_rules! assert_timing {
    ($cond:expr, $($arg:tt)+) => {
        let held: bool = $cond;
        if !held {
            let why = format!($($arg)+);
            eprintln!("host timing: {why}");
            std::panic::panic_any(HostNoise(why));
        }
    };
}

/// Runs a timing test, and once more if only a host-timing comparison failed: host noise comes and
/// goes, a relay that schedules wrongly is off on both runs.
fn retry_on_host_noise(test: impl Fn()) {
    for attempt in 1..=2 {
        let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&test)) else {
            return;
        };
        match payload.downcast::<HostNoise>() {
            Ok(noise) if attempt == 1 => {
                eprintln!("run 1 off by host timing, once more: {}", noise.0)
            }
            Ok(noise) => panic!("host timing off on both runs; the second: {}", noise.0),
            Err(other) => std::panic::resume_unwind(other),
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace that exists exactly as long as this value, panics included.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    A,
    B,
}

/// Office namespace A and internet namespace B, for the relay to join:
/// A has 198.51.100.1/24 and 2001:db8:1::1/64 on `wan0`; B has .2 and ::2 on `office0`, plus the
/// "internet" hosts 203.0.113.10, 203.0.113.130, 192.0.2.10 and 2001:db8:2::10, which A reaches
/// through B.
struct Lab {
    a: Netns,
    b: Netns,
    /// Unique to this lab: names its namespaces and its log.
    id: String,
}

impl Lab {
    fn new() -> Lab {
        let id = format!(
            "o365rly-{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::SeqCst)
        );
        Lab {
            a: Netns::new(format!("{id}-a")),
            b: Netns::new(format!("{id}-b")),
            id,
        }
    }

    fn netns(&self, side: Side) -> &str {
        match side {
            Side::A => &self.a.0,
            Side::B => &self.b.0,
        }
    }

    fn config(&self, rules: Vec<Rule>, seed: u64, log: PathBuf) -> RelayConfig {
        RelayConfig {
            side_a: Endpoint {
                netns: self.a.0.clone(),
                ifname: "wan0".into(),
                mtu: 1500,
            },
            side_b: Endpoint {
                netns: self.b.0.clone(),
                ifname: "office0".into(),
                mtu: 1500,
            },
            rules,
            seed,
            log: Some(log),
        }
    }

    /// Addresses and routes, once the relay has made the devices. `static_neighbours` pins the
    /// peers' MAC addresses so no ARP or neighbour discovery happens during a measurement (the first
    /// packet of a train would otherwise wait for it).
    fn address(&self, static_neighbours: bool) {
        let (na, nb) = (self.a.0.as_str(), self.b.0.as_str());
        for (ns, dev, addrs) in [
            (na, "wan0", &["198.51.100.1/24", "2001:db8:1::1/64"][..]),
            (
                nb,
                "office0",
                &[
                    "198.51.100.2/24",
                    "2001:db8:1::2/64",
                    "203.0.113.10/25",
                    "203.0.113.130/25",
                    "192.0.2.10/24",
                    "2001:db8:2::10/64",
                ][..],
            ),
        ] {
            for addr in addrs {
                if addr.contains(':') {
                    ip(&["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]);
                } else {
                    ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
                }
            }
        }
        for net in ["203.0.113.0/24", "192.0.2.0/24"] {
            ip(&["-n", na, "route", "add", net, "via", "198.51.100.2"]);
        }
        ip(&[
            "-n",
            na,
            "route",
            "add",
            "2001:db8:2::/64",
            "via",
            "2001:db8:1::2",
        ]);
        if static_neighbours {
            let mac_a = mac(na, "wan0");
            let mac_b = mac(nb, "office0");
            for (ns, dev, peer, lladdr) in [
                (na, "wan0", "198.51.100.2", &mac_b),
                (na, "wan0", "2001:db8:1::2", &mac_b),
                (nb, "office0", "198.51.100.1", &mac_a),
                (nb, "office0", "2001:db8:1::1", &mac_a),
            ] {
                ip(&[
                    "-n",
                    ns,
                    "neigh",
                    "replace",
                    peer,
                    "lladdr",
                    lladdr,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
        }
    }
}

/// A lab with the relay running in-process between its namespaces.
struct Pair {
    // Declared first so it stops before the namespaces go.
    relay: Option<RelayHandle>,
    lab: Lab,
    log: PathBuf,
}

impl Pair {
    fn new(rules: Vec<Rule>, seed: u64) -> Pair {
        Pair::with_neighbours(rules, seed, true)
    }

    fn with_neighbours(rules: Vec<Rule>, seed: u64, static_neighbours: bool) -> Pair {
        let lab = Lab::new();
        let log = std::env::temp_dir().join(format!("{}.jsonl", lab.id));
        let relay = Relay::start(lab.config(rules, seed, log.clone())).expect("starting the relay");
        let pair = Pair {
            relay: Some(relay),
            lab,
            log,
        };
        assert!(
            pair.relay.as_ref().is_some_and(RelayHandle::realtime),
            "the relay did not get real-time priority: timing tests would measure the machine's load"
        );
        pair.lab.address(static_neighbours);
        pair
    }

    /// Stops the relay and returns its counters and its log, in arrival order.
    fn finish(&mut self) -> (RelayStats, Vec<LogRecord>) {
        let relay = self.relay.take().expect("relay already stopped");
        let stats = relay.stop().expect("stopping the relay");
        let log = read_log(&self.log).expect("reading the relay log");
        (stats, log)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        drop(self.relay.take());
        let _ = std::fs::remove_file(&self.log);
    }
}

fn mac(netns: &str, dev: &str) -> String {
    let out = ip_output(&["-n", netns, "link", "show", dev]);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("TAP device has a MAC address")
        .to_owned()
}

/// Real-time priority for the test's own sender, so its timestamps are taken right at the send.
fn punctual() {
    let param = libc::sched_param { sched_priority: 40 };
    // SAFETY: pid 0 is this thread; param is valid for the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is valid for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One packet as the far side saw it. Times are CLOCK_REALTIME: the kernel stamps received packets
/// with it, and its durations equal CLOCK_MONOTONIC's (they differ only by steps, which the lab
/// never makes), so one-way delays compare directly with the relay's log.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    seq: u64,
    sent_ns: u64,
    received_ns: u64,
    len: usize,
}

impl Arrival {
    fn one_way_ns(&self) -> i64 {
        self.received_ns as i64 - self.sent_ns as i64
    }
}

struct Train {
    from: Side,
    to: SocketAddr,
    count: u64,
    interval: Duration,
    /// UDP payload bytes (at least 16: sequence number and send time).
    payload: usize,
}

struct TrainResult {
    sent: u64,
    /// In order of reception, duplicates included.
    arrivals: Vec<Arrival>,
}

impl TrainResult {
    fn first_copies(&self) -> BTreeMap<u64, Arrival> {
        let mut first = BTreeMap::new();
        for a in &self.arrivals {
            first.entry(a.seq).or_insert(*a);
        }
        first
    }

    fn lost(&self) -> BTreeSet<u64> {
        let got = self.first_copies();
        (0..self.sent).filter(|s| !got.contains_key(s)).collect()
    }
}

/// Sends trains at once (one thread each) and collects what arrives until `linger` after the last
/// send.
fn run_trains(lab: &Lab, trains: &[Train], linger: Duration) -> Vec<TrainResult> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = trains
            .iter()
            .map(|train| {
                let to_side = match train.from {
                    Side::A => Side::B,
                    Side::B => Side::A,
                };
                let to = train.to;
                let receiver = in_netns(lab.netns(to_side), move || stamped_socket(to))
                    .expect("entering the receiver's namespace")
                    .expect("binding the receiver");
                let unspecified: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap()
                } else {
                    "[::]:0".parse().unwrap()
                };
                let sender = in_netns(lab.netns(train.from), move || UdpSocket::bind(unspecified))
                    .expect("entering the sender's namespace")
                    .expect("binding the sender");
                let (count, interval, payload) = (train.count, train.interval, train.payload);
                let done = std::sync::Arc::new(Mutex::new(None::<Instant>));
                let done_rx = done.clone();
                let rx = scope.spawn(move || receive_until_quiet(&receiver, &done_rx, linger));
                scope.spawn(move || {
                    punctual();
                    let mut buf = vec![0u8; payload];
                    let start = Instant::now();
                    for seq in 0..count {
                        let slot = start + interval * seq as u32;
                        if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        buf[..8].copy_from_slice(&seq.to_le_bytes());
                        let now = realtime_ns();
                        buf[8..16].copy_from_slice(&now.to_le_bytes());
                        sender.send_to(&buf, to).expect("sending a probe");
                    }
                    *done.lock().unwrap() = Some(Instant::now());
                });
                (count, rx)
            })
            .collect();
        handles
            .into_iter()
            .map(|(sent, rx)| TrainResult {
                sent,
                arrivals: rx.join().expect("receiver thread"),
            })
            .collect()
    })
}

fn stamped_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    let on: libc::c_int = 1;
    let size: libc::c_int = 8 << 20;
    for (option, value) in [(libc::SO_TIMESTAMPNS, &on), (libc::SO_RCVBUFFORCE, &size)] {
        // SAFETY: value points to a c_int for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    socket.set_read_timeout(Some(Duration::from_millis(10)))?;
    Ok(socket)
}

fn receive_until_quiet(
    socket: &UdpSocket,
    done: &Mutex<Option<Instant>>,
    linger: Duration,
) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let mut buf = vec![0u8; 2048];
    // Bounded whatever happens: no train here lasts a minute.
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let finished = *done.lock().unwrap();
        if finished.is_some_and(|t| t.elapsed() > linger) || Instant::now() > give_up {
            return arrivals;
        }
        match recv_stamped(socket, &mut buf) {
            Ok((len, received_ns)) if len >= 16 => arrivals.push(Arrival {
                seq: u64::from_le_bytes(buf[..8].try_into().unwrap()),
                sent_ns: u64::from_le_bytes(buf[8..16].try_into().unwrap()),
                received_ns,
                len,
            }),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("receiving: {e}"),
        }
    }
}

/// A datagram and the kernel's CLOCK_REALTIME timestamp of its arrival.
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, u64)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain old data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes valid buffers.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the CMSG macros walk the control buffer the kernel just filled, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::timespec);
                return Ok((
                    n as usize,
                    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Err(io::Error::other("no receive timestamp"))
}

/// The log's records of one UDP flow (by destination port) in one direction, originals only, in
/// arrival order: record i is the relay's view of probe i.
fn flow(log: &[LogRecord], dir: Direction, dport: u16) -> Vec<&LogRecord> {
    log.iter()
        .filter(|r| {
            r.dir == dir
                && r.proto == Some(17)
                && r.dport == Some(dport)
                && r.event != FrameEvent::Duplicated
        })
        .collect()
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Checks the log against what the far side measured, frame by frame: the relay saw every probe,
/// and its applied delay (sent - arrival) accounts for the measured one-way delay up to the host's
/// own stack latency, which is never negative and small. Returns the stack latencies in ns.
fn log_agrees_with_measurement(
    records: &[&LogRecord],
    result: &TrainResult,
    what: &str,
) -> Vec<f64> {
    assert_eq!(
        records.len() as u64,
        result.sent,
        "{what}: the relay logged {} of {} probes",
        records.len(),
        result.sent
    );
    let mut overhead = Vec::new();
    for (seq, arrival) in result.first_copies() {
        let record = records[seq as usize];
        let applied = record
            .applied_delay_ns()
            .unwrap_or_else(|| panic!("{what}: probe {seq} arrived but the log says {record:?}"));
        overhead.push((arrival.one_way_ns() - applied as i64) as f64);
    }
    let min = overhead.iter().copied().fold(f64::INFINITY, f64::min);
    let p50 = quantile(&overhead, 0.5);
    let p99 = quantile(&overhead, 0.99);
    eprintln!(
        "{what}: measured - logged delay: min {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        min / 1e3,
        p50 / 1e3,
        p99 / 1e3
    );
    // Sender, relay and receiver clocks are one clock: the measurement can only add, never take away.
    assert!(
        min >= 0.0,
        "{what}: a probe arrived before the log says it was sent ({min} ns)"
    );
    assert_timing!(p50 < 0.3 * MS, "{what}: median host latency {p50} ns");
    assert_timing!(p99 < TAIL, "{what}: p99 host latency {p99} ns");
    overhead
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn rule(direction: Direction, prefix: &str, delay_ms: f64) -> Rule {
    Rule {
        direction,
        ..Rule::delay(prefix, delay_ms)
    }
}

#[test]
fn fixed_delay_is_applied_in_each_direction_separately() {
    let _serial = serial();
    if !have_root("fixed_delay_is_applied_in_each_direction_separately") {
        return;
    }
    retry_on_host_noise(|| {
        let rules = vec![
            rule(Direction::AtoB, "198.51.100.0/24", 30.0),
            rule(Direction::BtoA, "198.51.100.0/24", 10.0),
            rule(Direction::AtoB, "2001:db8:1::/64", 25.0),
            rule(Direction::BtoA, "2001:db8:1::/64", 15.0),
        ];
        let mut pair = Pair::new(rules, 1);
        let cases = [
            (Side::A, "198.51.100.2:5001", 30.0),
            (Side::B, "198.51.100.1:5002", 10.0),
            (Side::A, "[2001:db8:1::2]:5003", 25.0),
            (Side::B, "[2001:db8:1::1]:5004", 15.0),
        ];
        let mut results = Vec::new();
        for (from, to, _) in cases {
            let train = Train {
                from,
                to: addr(to),
                count: 200,
                interval: Duration::from_millis(2),
                payload: 64,
            };
            results.extend(run_trains(&pair.lab, &[train], Duration::from_millis(100)));
        }
        let (_, log) = pair.finish();
        for ((from, to, delay_ms), result) in cases.iter().zip(&results) {
            let what = format!("{from:?} -> {to}");
            assert!(result.lost().is_empty(), "{what}: lost {:?}", result.lost());
            let owd: Vec<f64> = result
                .first_copies()
                .values()
                .map(|a| a.one_way_ns() as f64)
                .collect();
            let excess: Vec<f64> = owd.iter().map(|d| d - delay_ms * MS).collect();
            let min = excess.iter().copied().fold(f64::INFINITY, f64::min);
            let p50 = quantile(&excess, 0.5);
            let p99 = quantile(&excess, 0.99);
            eprintln!(
                "{what}: one-way delay - {delay_ms} ms: min {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
                min / 1e3,
                p50 / 1e3,
                p99 / 1e3
            );
            assert!(min >= 0.0, "{what}: a probe arrived {min} ns early");
            assert_timing!(p50 < 0.3 * MS && p99 < TAIL, "{what}: p50 {p50} p99 {p99}");
            let dir = if *from == Side::A {
                Direction::AtoB
            } else {
                Direction::BtoA
            };
            let records = flow(&log, dir, addr(to).port());
            for record in &records {
                assert_eq!(
                    record.delay_ns,
                    Some((delay_ms * MS) as u64),
                    "{what}: {record:?}"
                );
            }
            log_agrees_with_measurement(&records, result, &what);
        }
    });
}

#[test]
fn jitter_spreads_as_configured_and_never_reorders() {
    let _serial = serial();
    if !have_root("jitter_spreads_as_configured_and_never_reorders") {
        return;
    }
    retry_on_host_noise(|| {
        let uniform = Rule {
            jitter: Some(Jitter {
                dist: JitterDist::Uniform,
                ms: 4.0,
            }),
            ..rule(Direction::AtoB, "203.0.113.0/24", 20.0)
        };
        let normal = Rule {
            jitter: Some(Jitter {
                dist: JitterDist::Normal,
                ms: 2.0,
            }),
            ..rule(Direction::AtoB, "192.0.2.0/24", 20.0)
        };
        // Frames 0.5 ms apart against σ = 10 ms: without the ordering rule most would overtake others.
        let dense = Rule {
            jitter: Some(Jitter {
                dist: JitterDist::Normal,
                ms: 10.0,
            }),
            ..rule(Direction::AtoB, "2001:db8:2::/64", 30.0)
        };
        let mut pair = Pair::new(vec![uniform, normal, dense], 2);
        // 10 ms apart, the spread of the first two never brings two frames closer than each other's
        // jitter allows, so the measured spread is the distribution's own.
        let sparse = |to: &str| Train {
            from: Side::A,
            to: addr(to),
            count: 300,
            interval: Duration::from_millis(10),
            payload: 64,
        };
        let results = run_trains(
            &pair.lab,
            &[
                sparse("203.0.113.10:5101"),
                sparse("192.0.2.10:5102"),
                Train {
                    from: Side::A,
                    to: addr("[2001:db8:2::10]:5103"),
                    count: 1000,
                    interval: Duration::from_micros(500),
                    payload: 64,
                },
            ],
            Duration::from_millis(200),
        );
        let (_, log) = pair.finish();
        for (result, (what, sd_expected, dport)) in results.iter().zip([
            ("uniform ±4 ms", 4.0 / 3f64.sqrt(), 5101),
            ("normal σ 2 ms", 2.0, 5102),
            ("normal σ 10 ms, dense", 10.0, 5103),
        ]) {
            assert!(result.lost().is_empty(), "{what}: lost {:?}", result.lost());
            let order: Vec<u64> = result.arrivals.iter().map(|a| a.seq).collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "{what}: probes arrived out of order"
            );
            let owd_ms: Vec<f64> = result
                .arrivals
                .iter()
                .map(|a| a.one_way_ns() as f64 / MS)
                .collect();
            let records = flow(&log, Direction::AtoB, dport);
            log_agrees_with_measurement(&records, result, what);
            // The relay's own draws, exact in the log: their spread is the configured one.
            let scheduled_ms: Vec<f64> = records
                .iter()
                .filter_map(|r| r.delay_ns)
                .map(|d| d as f64 / MS)
                .collect();
            assert_eq!(scheduled_ms.len(), owd_ms.len(), "{what}: scheduled delays");
            let (mean, sd) = mean_sd(&scheduled_ms);
            let (owd_mean, owd_sd) = mean_sd(&owd_ms);
            eprintln!(
                "{what}: scheduled delay mean {mean:.3} ms, sd {sd:.3} ms; \
             measured mean {owd_mean:.3} ms, sd {owd_sd:.3} ms"
            );
            if dport == 5103 {
                // Held back behind earlier frames, the spread narrows but the delays still vary widely.
                assert!(sd > 3.0, "{what}: sd {sd} ms: jitter was not applied");
            } else {
                // Standard error of the mean is σ/√300 ≈ 0.13 ms.
                assert!((mean - 20.0).abs() < 0.5, "{what}: mean {mean} ms");
                // The sd estimate's relative standard error is 1/√600 ≈ 4 %.
                assert!((sd / sd_expected - 1.0).abs() < 0.15, "{what}: sd {sd} ms");
            }
            if dport == 5101 {
                assert!(
                    scheduled_ms.iter().all(|d| (16.0..=24.0).contains(d)),
                    "{what}: scheduled delays outside 20 ± 4 ms"
                );
            }
            // Measured, the same spread. Never sooner than scheduled at any decile or quartile (no probe
            // beats its schedule, which log_agrees_with_measurement checks one by one).
            for q in [0.1, 0.25, 0.5, 0.75, 0.9] {
                let (measured, scheduled) = (quantile(&owd_ms, q), quantile(&scheduled_ms, q));
                assert!(
                    measured >= scheduled,
                    "{what}: quantile {q} measured {measured} ms beat its schedule {scheduled} ms"
                );
            }
            // How much later than its draw each probe arrived: a fraction of a millisecond at the median.
            // Per probe, not per quantile: a host that delays a few percent of the frames near a decile
            // by a few hundred µs moves that decile as far, and the host's tail is not the relay's.
            let excess_ms: Vec<f64> = result
                .first_copies()
                .into_iter()
                .map(|(seq, arrival)| {
                    let drawn = records[seq as usize]
                        .delay_ns
                        .expect("a delivered probe's draw");
                    (arrival.one_way_ns() - drawn as i64) as f64 / MS
                })
                .collect();
            let excess_p50 = quantile(&excess_ms, 0.5);
            eprintln!("{what}: arrival after the drawn delay, median {excess_p50:.3} ms");
            assert_timing!(
                excess_p50 < 0.5,
                "{what}: probes arrived a median {excess_p50} ms after their drawn delay"
            );
            // And the spread the office sees is the one drawn: a relay that added or lost jitter on the
            // way would move the standard deviation by far more than the host's few late frames (1-4 %
            // here).
            assert_timing!(
                (owd_sd / sd - 1.0).abs() < 0.1,
                "{what}: measured sd {owd_sd} ms, drawn sd {sd} ms"
            );
        }
    });
}

#[test]
fn bernoulli_loss_is_binomial_and_exactly_the_logged_drops() {
    let _serial = serial();
    if !have_root("bernoulli_loss_is_binomial_and_exactly_the_logged_drops") {
        return;
    }
    let lossy = Rule {
        loss: Some(Loss::Bernoulli { p: 0.03 }),
        ..rule(Direction::Both, "198.51.100.0/24", 1.0)
    };
    let mut pair = Pair::new(vec![lossy], 3);
    let n = 2000;
    let results = run_trains(
        &pair.lab,
        &[Train {
            from: Side::A,
            to: addr("198.51.100.2:5201"),
            count: n,
            interval: Duration::from_micros(250),
            payload: 64,
        }],
        Duration::from_millis(100),
    );
    let (stats, log) = pair.finish();
    let lost = results[0].lost();
    // Binomial(2000, 0.03): mean 60, σ 7.6; ±3.5 σ.
    assert!(
        (33..=87).contains(&lost.len()),
        "{} of {n} lost at p = 0.03",
        lost.len()
    );
    let records = flow(&log, Direction::AtoB, 5201);
    assert_eq!(records.len() as u64, n);
    let logged: BTreeSet<u64> = (0..n)
        .filter(|&i| records[i as usize].reason == Some(DropReason::Loss))
        .collect();
    assert_eq!(lost, logged, "lost probes differ from the log's drops");
    assert_eq!(stats.a_to_b.lost, lost.len() as u64);
}

#[test]
fn gilbert_elliott_loses_in_bursts() {
    let _serial = serial();
    if !have_root("gilbert_elliott_loses_in_bursts") {
        return;
    }
    let bursty = Rule {
        loss: Some(Loss::GilbertElliott {
            p: 0.02,
            r: 0.25,
            loss_good: 0.0,
            loss_bad: 1.0,
        }),
        ..rule(Direction::BtoA, "198.51.100.0/24", 1.0)
    };
    let mut pair = Pair::new(vec![bursty], 4);
    let n = 4000;
    let results = run_trains(
        &pair.lab,
        &[Train {
            from: Side::B,
            to: addr("198.51.100.1:5301"),
            count: n,
            interval: Duration::from_micros(125),
            payload: 64,
        }],
        Duration::from_millis(100),
    );
    let (_, log) = pair.finish();
    let lost = results[0].lost();
    let bursts = lost
        .iter()
        .filter(|&&s| s == 0 || !lost.contains(&(s - 1)))
        .count();
    let mean_burst = lost.len() as f64 / bursts as f64;
    eprintln!(
        "gilbert-elliott: {} lost in {bursts} bursts, mean burst {mean_burst:.2}",
        lost.len()
    );
    // Expected share lost p/(p+r) ≈ 7.4 % (≈ 296); bursts are geometric with mean 1/r = 4 and
    // σ ≈ 3.5, so over ~70 bursts the mean is 4 ± 0.4.
    assert!((150..=450).contains(&lost.len()), "{} lost", lost.len());
    assert!((2.8..=5.5).contains(&mean_burst), "mean burst {mean_burst}");
    let records = flow(&log, Direction::BtoA, 5301);
    let logged: BTreeSet<u64> = (0..n)
        .filter(|&i| records[i as usize].event == FrameEvent::Dropped)
        .collect();
    assert_eq!(lost, logged, "lost probes differ from the log's drops");
}

#[test]
fn duplicates_arrive_as_logged() {
    let _serial = serial();
    if !have_root("duplicates_arrive_as_logged") {
        return;
    }
    retry_on_host_noise(|| {
        let doubling = Rule {
            duplicate: 0.1,
            ..rule(Direction::AtoB, "203.0.113.0/24", 5.0)
        };
        let mut pair = Pair::new(vec![doubling], 5);
        let n = 1000;
        let results = run_trains(
            &pair.lab,
            &[Train {
                from: Side::A,
                to: addr("203.0.113.10:5401"),
                count: n,
                interval: Duration::from_micros(500),
                payload: 64,
            }],
            Duration::from_millis(100),
        );
        let (stats, log) = pair.finish();
        let mut copies: BTreeMap<u64, Vec<Arrival>> = BTreeMap::new();
        for a in &results[0].arrivals {
            copies.entry(a.seq).or_default().push(*a);
        }
        assert_eq!(copies.len() as u64, n, "every probe arrives");
        let doubled: BTreeSet<u64> = copies
            .iter()
            .filter(|(_, c)| c.len() > 1)
            .map(|(&s, _)| s)
            .collect();
        assert!(
            copies.values().all(|c| c.len() <= 2),
            "a probe arrived three times"
        );
        // Binomial(1000, 0.1): mean 100, σ 9.5.
        assert!(
            (65..=135).contains(&doubled.len()),
            "{} duplicated",
            doubled.len()
        );
        let originals = flow(&log, Direction::AtoB, 5401);
        let logged: BTreeSet<u64> = log
            .iter()
            .filter(|r| r.event == FrameEvent::Duplicated && r.dport == Some(5401))
            .map(|r| originals.iter().position(|o| o.seq == r.seq).unwrap() as u64)
            .collect();
        assert_eq!(doubled, logged, "duplicated probes differ from the log");
        assert_eq!(stats.a_to_b.duplicated, doubled.len() as u64);
        // The relay sends each copy right after its original, with the same scheduled delay: in the log's
        // send order of the flow nothing comes between them.
        let mut sent: Vec<&LogRecord> = log
            .iter()
            .filter(|r| r.dir == Direction::AtoB && r.dport == Some(5401) && r.sent_ns.is_some())
            .collect();
        sent.sort_by_key(|r| r.sent_ns);
        for (i, copy) in sent.iter().enumerate() {
            if copy.event != FrameEvent::Duplicated {
                continue;
            }
            let original = i.checked_sub(1).map(|k| sent[k]);
            assert!(
                original.is_some_and(|o| o.seq == copy.seq
                    && o.event == FrameEvent::Forwarded
                    && o.delay_ns == copy.delay_ns),
                "copy {copy:?} not sent right after its original {original:?}"
            );
        }
        // Measured, the copy follows within the tens of microseconds a write takes; the host's tail
        // stretches a few gaps, never the median.
        let gaps: Vec<f64> = doubled
            .iter()
            .map(|seq| (copies[seq][1].received_ns - copies[seq][0].received_ns) as f64)
            .collect();
        let (median, max) = (quantile(&gaps, 0.5), quantile(&gaps, 1.0));
        eprintln!(
            "duplicates: copy after original: median {:.1} µs, max {:.1} µs",
            median / 1e3,
            max / 1e3
        );
        assert_timing!(
            median < 0.3 * MS && max < TAIL,
            "copies came after their originals by a median {median} ns, at most {max} ns"
        );
    });
}

#[test]
fn reordering_happens_only_when_asked_and_as_logged() {
    let _serial = serial();
    if !have_root("reordering_happens_only_when_asked_and_as_logged") {
        return;
    }
    retry_on_host_noise(|| {
        let shuffling = Rule {
            reorder: Some(Reorder {
                p: 0.05,
                extra_delay_ms: 5.0,
            }),
            ..rule(Direction::AtoB, "198.51.100.0/24", 10.0)
        };
        let mut pair = Pair::new(vec![shuffling], 6);
        let n = 1000;
        let results = run_trains(
            &pair.lab,
            &[Train {
                from: Side::A,
                to: addr("198.51.100.2:5501"),
                count: n,
                interval: Duration::from_micros(500),
                payload: 64,
            }],
            Duration::from_millis(100),
        );
        let (_, log) = pair.finish();
        let records = flow(&log, Direction::AtoB, 5501);
        assert_eq!(records.len() as u64, n, "the relay logged every probe");
        // The relay's decisions, exact in the log: 10 ms, or 10 + 5 ms for the probes it held back.
        for (seq, record) in records.iter().enumerate() {
            let scheduled = if record.reordered {
                15_000_000
            } else {
                10_000_000
            };
            assert_eq!(record.delay_ns, Some(scheduled), "probe {seq}: {record:?}");
        }
        let logged: BTreeSet<u64> = (0..n).filter(|&i| records[i as usize].reordered).collect();
        // Binomial(1000, 0.05): mean 50, σ 6.9.
        assert!(
            (25..=75).contains(&logged.len()),
            "{} held back",
            logged.len()
        );
        // The order the relay scheduled (due time, then arrival), the order it sent in (the log's send
        // stamps, taken as each write began) and the order the far side received in are one order.
        let due = |seq: u64| {
            let record = records[seq as usize];
            record.arrival_ns + record.delay_ns.unwrap_or(0)
        };
        let mut scheduled: Vec<u64> = (0..n).collect();
        scheduled.sort_by_key(|&seq| (due(seq), seq));
        let mut sent: Vec<u64> = (0..n).collect();
        sent.sort_by_key(|&seq| records[seq as usize].sent_ns);
        assert_eq!(
            first_difference(&sent, &scheduled),
            None,
            "the relay sent probes out of their scheduled order (sent, scheduled)"
        );
        let order: Vec<u64> = results[0].arrivals.iter().map(|a| a.seq).collect();
        assert_eq!(order.len() as u64, n);
        assert_eq!(
            first_difference(&order, &sent),
            None,
            "probes arrived in another order than the log says they were sent (received, sent)"
        );
        // A probe was overtaken if some later probe arrived before it: only ever one the relay chose to
        // hold back. A held-back probe escapes being overtaken only when no later probe reached the
        // relay within the extra 5 ms (the sender's host paused), which is not the relay's doing.
        let held = overtaken(&order);
        assert!(
            held.is_subset(&logged),
            "probes overtaken that the log does not say were held back: {:?}",
            held.difference(&logged).collect::<Vec<_>>()
        );
        let sent_at = results[0].first_copies();
        for &seq in logged.difference(&held) {
            let (this, next) = (seq as usize, seq as usize + 1);
            let Some(next_record) = records.get(next) else {
                continue; // the last probe: nothing could overtake it
            };
            let relay_gap = next_record.arrival_ns - records[this].arrival_ns;
            let sender_gap = sent_at[&(next as u64)].sent_ns as i64 - sent_at[&seq].sent_ns as i64;
            eprintln!(
            "reorder: held-back probe {seq} not overtaken: the next probe was sent {:.3} ms and \
             read by the relay {:.3} ms after it",
            sender_gap as f64 / MS,
            relay_gap as f64 / MS
        );
            assert!(
            relay_gap >= 5_000_000,
            "held-back probe {seq} was not overtaken although the next probe was scheduled ahead"
        );
        }
        eprintln!(
            "reorder: {} held back, {} overtaken",
            logged.len(),
            held.len()
        );
        // Measured, held-back probes take the extra delay: never less, and typically within a fraction
        // of a millisecond of it (the host's tail aside).
        let owds: Vec<f64> = held
            .iter()
            .map(|seq| results[0].first_copies()[seq].one_way_ns() as f64)
            .collect();
        assert!(
            owds.iter().all(|&owd| owd >= 15.0 * MS),
            "a held-back probe arrived early: {owds:?}"
        );
        let median = quantile(&owds, 0.5);
        assert_timing!(
            median < 15.5 * MS,
            "held-back probes' median one-way delay {median} ns"
        );
        log_agrees_with_measurement(&records, &results[0], "reorder");
    });
}

/// Probes that some later probe (by number) comes before, in a sequence of probe numbers.
fn overtaken(order: &[u64]) -> BTreeSet<u64> {
    let mut position = vec![0; order.len()];
    for (i, &seq) in order.iter().enumerate() {
        position[seq as usize] = i;
    }
    let mut held = BTreeSet::new();
    let mut earliest_later = usize::MAX;
    for seq in (0..order.len()).rev() {
        if position[seq] > earliest_later {
            held.insert(seq as u64);
        }
        earliest_later = earliest_later.min(position[seq]);
    }
    held
}

/// Where two sequences first differ, with a few items of each from there, for a readable failure.
fn first_difference(a: &[u64], b: &[u64]) -> Option<(usize, Vec<u64>, Vec<u64>)> {
    let at = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))?;
    let around = |v: &[u64]| v[at.min(v.len())..(at + 5).min(v.len())].to_vec();
    Some((at, around(a), around(b)))
}

#[test]
fn rate_limit_caps_throughput_bloats_the_queue_and_drops_on_overflow() {
    let _serial = serial();
    if !have_root("rate_limit_caps_throughput_bloats_the_queue_and_drops_on_overflow") {
        return;
    }
    retry_on_host_noise(|| {
        let bottleneck = Rule {
            rate: Some(RateLimit {
                kbit_per_s: 2000,
                queue_bytes: 30_000,
            }),
            ..rule(Direction::AtoB, "203.0.113.0/24", 5.0)
        };
        let mut pair = Pair::new(vec![bottleneck], 7);
        // 1000-byte payloads are 1042-byte frames: 4.2 Mbit/s offered into a 2 Mbit/s link.
        let n = 400;
        let results = run_trains(
            &pair.lab,
            &[Train {
                from: Side::A,
                to: addr("203.0.113.10:5601"),
                count: n,
                interval: Duration::from_millis(2),
                payload: 1000,
            }],
            Duration::from_millis(300),
        );
        let (stats, log) = pair.finish();
        let result = &results[0];
        let records = flow(&log, Direction::AtoB, 5601);
        assert_eq!(records.len() as u64, n, "the relay logged every probe");
        // The relay's schedule, exact in the log: one frame every 4.168 ms (1042 bytes at 2 Mbit/s) and
        // never sooner; an idle link only where the sender paused.
        let frame = records[0].len;
        assert!(
            result.arrivals.iter().all(|a| a.len + 42 == frame),
            "1000-byte datagrams are {frame}-byte frames"
        );
        let serialise_ns = frame as u64 * 8 * 1_000_000 / 2000;
        let dues: Vec<u64> = records
            .iter()
            .filter_map(|r| Some(r.arrival_ns + r.delay_ns?))
            .collect();
        let spacing: Vec<f64> = dues.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        assert!(
            spacing.iter().all(|&s| s >= serialise_ns as f64),
            "frames scheduled closer than one serialisation ({serialise_ns} ns)"
        );
        assert_eq!(quantile(&spacing, 0.5), serialise_ns as f64);
        // An empty queue: propagation plus one frame's serialisation.
        assert_eq!(records[0].delay_ns, Some(5_000_000 + serialise_ns));
        // A full 30 kB queue drains in 120 ms: propagation, the queue and the frame's own serialisation.
        let bloated: Vec<f64> = records
            .iter()
            .filter_map(|r| r.delay_ns)
            .map(|d| d as f64 / MS)
            .collect();
        let bloated = quantile(&bloated[bloated.len() - 50..], 0.5);
        assert!(
            (5.0 + 110.0..=5.0 + 120.0 + 0.1).contains(&bloated),
            "probes behind a full queue were scheduled {bloated} ms"
        );

        // Measured: the received rate, as the median over pairs of frames half the train apart so that
        // a few frames the host delayed cannot move it.
        let received: Vec<u64> = result.arrivals.iter().map(|a| a.received_ns).collect();
        let half = received.len() / 2;
        let rates: Vec<f64> = (0..received.len() - half)
            .map(|i| (half * frame * 8) as f64 / (received[i + half] - received[i]) as f64 * 1e6)
            .collect();
        let kbit_per_s = quantile(&rates, 0.5);
        let owd_ms: Vec<f64> = result
            .arrivals
            .iter()
            .map(|a| a.one_way_ns() as f64 / MS)
            .collect();
        let first = owd_ms[0];
        let last = quantile(&owd_ms[owd_ms.len() - 50..], 0.5);
        let lost = result.lost();
        eprintln!(
        "rate limit: {kbit_per_s:.0} kbit/s received, one-way delay {first:.1} ms -> {last:.1} ms \
         (median of the last 50), {} of {n} dropped",
        lost.len()
    );
        assert_timing!(
            (kbit_per_s / 2000.0 - 1.0).abs() < 0.03,
            "{kbit_per_s} kbit/s"
        );
        // Never sooner than scheduled (log_agrees_with_measurement holds every probe to that); the median
        // of the bloated ones within a fraction of a millisecond of their schedule.
        let scheduled_first = (5_000_000 + serialise_ns) as f64 / MS;
        assert!(first >= scheduled_first, "the first probe took {first} ms");
        assert_timing!(
            first < scheduled_first + TAIL / MS,
            "the first probe took {first} ms"
        );
        assert_timing!(
            (5.0 + 110.0..5.0 + 120.0 + 0.1 + 0.5).contains(&last),
            "probes behind a full queue took {last} ms"
        );
        let logged: BTreeSet<u64> = (0..n)
            .filter(|&i| records[i as usize].reason == Some(DropReason::QueueFull))
            .collect();
        assert!(!lost.is_empty());
        assert_eq!(
            lost, logged,
            "lost probes differ from the log's queue-full drops"
        );
        assert_eq!(stats.a_to_b.queue_full, lost.len() as u64);
        log_agrees_with_measurement(&records, result, "rate limit");
    });
}

#[test]
fn arp_and_neighbour_discovery_pass_a_catch_all_total_loss() {
    let _serial = serial();
    if !have_root("arp_and_neighbour_discovery_pass_a_catch_all_total_loss") {
        return;
    }
    let black_hole = |prefix: &str| Rule {
        loss: Some(Loss::Bernoulli { p: 1.0 }),
        ..rule(Direction::Both, prefix, 0.0)
    };
    let mut pair =
        Pair::with_neighbours(vec![black_hole("0.0.0.0/0"), black_hole("::/0")], 8, false);
    let results = run_trains(
        &pair.lab,
        &[
            Train {
                from: Side::A,
                to: addr("198.51.100.2:5701"),
                count: 5,
                interval: Duration::from_millis(20),
                payload: 64,
            },
            Train {
                from: Side::A,
                to: addr("[2001:db8:1::2]:5702"),
                count: 5,
                interval: Duration::from_millis(20),
                payload: 64,
            },
        ],
        Duration::from_millis(100),
    );
    let neighbours = ip_output(&[
        "-n",
        pair.lab.netns(Side::A),
        "neigh",
        "show",
        "dev",
        "wan0",
    ]);
    let (_, log) = pair.finish();
    assert!(
        results.iter().all(|r| r.arrivals.is_empty()),
        "the loss rule let data through"
    );
    for peer in ["198.51.100.2 ", "2001:db8:1::2 "] {
        let entry = neighbours
            .lines()
            .find(|l| l.starts_with(peer))
            .unwrap_or_else(|| panic!("no neighbour entry for {peer}: {neighbours}"));
        assert!(entry.contains("lladdr"), "{peer} unresolved: {entry}");
    }
    let arp_both_ways = [Direction::AtoB, Direction::BtoA].map(|dir| {
        log.iter()
            .any(|r| r.dir == dir && r.ethertype == 0x0806 && r.event == FrameEvent::Forwarded)
    });
    assert_eq!(
        arp_both_ways,
        [true, true],
        "ARP request and reply in the log"
    );
    let dropped = log
        .iter()
        .filter(|r| r.proto == Some(17) && r.reason == Some(DropReason::Loss))
        .count();
    assert_eq!(dropped, 10);
}

#[test]
fn per_prefix_rules_pick_the_first_match() {
    let _serial = serial();
    if !have_root("per_prefix_rules_pick_the_first_match") {
        return;
    }
    let rules = vec![
        rule(Direction::AtoB, "203.0.113.128/25", 40.0),
        rule(Direction::Both, "203.0.113.0/24", 5.0),
        rule(Direction::AtoB, "2001:db8:2::/48", 30.0),
        rule(Direction::AtoB, "0.0.0.0/0", 15.0),
    ];
    let mut pair = Pair::new(rules, 9);
    let cases = [
        ("203.0.113.130:5801", Some(0), 40.0),
        ("203.0.113.10:5802", Some(1), 5.0),
        ("[2001:db8:2::10]:5803", Some(2), 30.0),
        ("192.0.2.10:5804", Some(3), 15.0),
        ("[2001:db8:1::2]:5805", None, 0.0),
    ];
    let trains: Vec<Train> = cases
        .iter()
        .map(|(to, _, _)| Train {
            from: Side::A,
            to: addr(to),
            count: 50,
            interval: Duration::from_millis(2),
            payload: 64,
        })
        .collect();
    let results = run_trains(&pair.lab, &trains, Duration::from_millis(100));
    let (_, log) = pair.finish();
    for ((to, rule_index, delay_ms), result) in cases.iter().zip(&results) {
        let owd: Vec<f64> = result
            .arrivals
            .iter()
            .map(|a| a.one_way_ns() as f64 / MS)
            .collect();
        assert_eq!(owd.len(), 50, "{to}");
        let median = quantile(&owd, 0.5);
        assert!(
            (delay_ms..&(delay_ms + 0.5)).contains(&&median),
            "{to}: median one-way delay {median} ms, rule says {delay_ms} ms"
        );
        let records = flow(&log, Direction::AtoB, addr(to).port());
        assert!(
            records.iter().all(|r| r.rule == *rule_index),
            "{to}: wrong rule logged"
        );
        let dst: IpAddr = addr(to).ip();
        assert!(
            records.iter().all(|r| r.dst == Some(dst)),
            "{to}: wrong destination logged"
        );
    }
}

#[test]
fn median_scheduling_error_is_sub_millisecond() {
    let _serial = serial();
    if !have_root("median_scheduling_error_is_sub_millisecond") {
        return;
    }
    retry_on_host_noise(|| {
        // Jitter smaller than the spacing of frames: every frame has a due time of its own, so the
        // lateness is the scheduler's alone (frames due together also wait for each other's writes).
        let jittered = |direction, prefix| Rule {
            jitter: Some(Jitter {
                dist: JitterDist::Uniform,
                ms: 0.4,
            }),
            ..rule(direction, prefix, 20.0)
        };
        let mut pair = Pair::new(
            vec![
                jittered(Direction::AtoB, "198.51.100.0/24"),
                jittered(Direction::BtoA, "198.51.100.0/24"),
            ],
            10,
        );
        let train = |from, to: &str| Train {
            from,
            to: addr(to),
            count: 2000,
            interval: Duration::from_millis(1),
            payload: 200,
        };
        let results = run_trains(
            &pair.lab,
            &[
                train(Side::A, "198.51.100.2:5901"),
                train(Side::B, "198.51.100.1:5902"),
            ],
            Duration::from_millis(100),
        );
        let (stats, log) = pair.finish();
        eprintln!("relay's own summary: {stats:?}");
        for (result, (dir, dport)) in results
            .iter()
            .zip([(Direction::AtoB, 5901), (Direction::BtoA, 5902)])
        {
            let records = flow(&log, dir, dport);
            log_agrees_with_measurement(&records, result, &format!("{dir:?} under load"));
            let late: Vec<f64> = records
                .iter()
                .filter_map(|r| r.late_ns)
                .map(|l| l as f64)
                .collect();
            let (p50, p99, max) = (
                quantile(&late, 0.5),
                quantile(&late, 0.99),
                quantile(&late, 1.0),
            );
            eprintln!(
                "{dir:?}: lateness over {} frames: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                late.len(),
                p50 / 1e3,
                p99 / 1e3,
                max / 1e3
            );
            // A few µs on a quiet host, 0.1-0.34 ms while this VM's host steals time; a scheduler that
            // sleeps instead of waking on time is late by far more than that at the median, on every run.
            assert_timing!(p50 < 0.5 * MS, "{dir:?}: median lateness {p50} ns");
            assert_timing!(p99 < TAIL, "{dir:?}: p99 lateness {p99} ns");
        }
        assert_timing!(
            stats.a_to_b.late_p99_ns < TAIL as u64 && stats.b_to_a.late_p99_ns < TAIL as u64,
            "relay's own p99: {stats:?}"
        );
    });
}

/// The relay process the lab launches, killed if a test ends early.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_signals_ready_forwards_and_flushes_its_log_on_sigterm() {
    let _serial = serial();
    if !have_root("the_binary_signals_ready_forwards_and_flushes_its_log_on_sigterm") {
        return;
    }
    let lab = Lab::new();
    let log = std::env::temp_dir().join(format!("{}.jsonl", lab.id));
    let config_path = std::env::temp_dir().join(format!("{}.toml", lab.id));
    let config = lab.config(vec![Rule::delay("198.51.100.0/24", 10.0)], 11, log.clone());
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_o365lab-relay"))
            .arg(&config_path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting o365lab-relay"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = io::BufRead::read_line(&mut io::BufReader::new(stdout), &mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("o365lab-relay said nothing within 10 s");
    assert_eq!(line, "ready\n");
    // Ready means the devices exist and are up: the lab configures them straight away.
    for (side, dev) in [(Side::A, "wan0"), (Side::B, "office0")] {
        let link = ip_output(&["-n", lab.netns(side), "link", "show", dev]);
        assert!(link.contains(",UP,"), "{dev} not up: {link}");
    }
    lab.address(true);
    let results = run_trains(
        &lab,
        &[Train {
            from: Side::A,
            to: addr("198.51.100.2:6001"),
            count: 20,
            interval: Duration::from_millis(5),
            payload: 64,
        }],
        Duration::from_millis(100),
    );
    let owd: Vec<f64> = results[0]
        .arrivals
        .iter()
        .map(|a| a.one_way_ns() as f64 / MS)
        .collect();
    assert_eq!(owd.len(), 20);
    // Never early; the median within a fraction of a millisecond (a busy host delays a few frames,
    // not the relay). The log's scheduled delays, checked below, are exact.
    let (lo, median) = (quantile(&owd, 0.0), quantile(&owd, 0.5));
    assert!(lo >= 10.0 && median < 10.5, "{owd:?}");

    // SAFETY: signalling our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let give_up = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < give_up, "o365lab-relay ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(
        stderr.contains("a_to_b: ") && stderr.contains("lateness"),
        "{stderr}"
    );
    let records = read_log(&log).expect("the log was flushed at exit");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&config_path);
    let probes = flow(&records, Direction::AtoB, 6001);
    assert_eq!(probes.len(), 20);
    assert!(probes
        .iter()
        .all(|r| r.event == FrameEvent::Forwarded && r.delay_ns == Some(10_000_000)));
    // The devices went with the process.
    for (side, dev) in [(Side::A, "wan0"), (Side::B, "office0")] {
        let out = Command::new("ip")
            .args(["-n", lab.netns(side), "link", "show", dev])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{dev} outlived the relay");
    }
}

#[test]
fn start_fails_with_the_culprit_named_and_leaves_nothing_behind() {
    let _serial = serial();
    let endpoint = |netns: &str, ifname: &str| Endpoint {
        netns: netns.into(),
        ifname: ifname.into(),
        mtu: 1500,
    };
    let missing = format!("o365rly-{}-missing", std::process::id());
    let config = RelayConfig {
        side_a: endpoint(&missing, "wan0"),
        side_b: endpoint(&missing, "office0"),
        rules: vec![],
        seed: 0,
        log: None,
    };
    let err = Relay::start(config.clone())
        .err()
        .expect("a relay into a missing namespace");
    assert!(err.to_string().contains(&missing), "{err}");
    let unwritable = RelayConfig {
        log: Some(PathBuf::from("/nonexistent-o365rly/relay.jsonl")),
        ..config
    };
    let err = Relay::start(unwritable)
        .err()
        .expect("a relay with an unwritable log");
    assert!(
        err.to_string().contains("/nonexistent-o365rly/relay.jsonl"),
        "{err}"
    );
}
