//! The core's probes driven over real sockets by `o365probe::net`: DNS, TCP, TLS and STUN against small
//! servers on loopback (IPv4 and IPv6) and `openssl s_server`; per-uplink binding and DSCP inside
//! network namespaces this test makes itself (root only; documentation addresses only); and what an
//! offline machine reports.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use o365probe::net::socket::recv_datagram;
use o365probe::net::{
    self, clock, drive, drive_all, drive_within, join_all, limit_for, DriveError, Limit,
    SocketError, SocketOptions, DSCP_EF,
};
use o365probe_core::assess::interception::{ExpectedIssuers, TrustedRoots, Validity};
use o365probe_core::assess::Verdict;
use o365probe_core::probe::dns::{
    DnsConfig, DnsFailure, DnsOutcome, DnsProbe, DnsQuery, Exchange, QueryType,
};
use o365probe_core::probe::stun::{Drain, StunConfig, StunMeasurement, StunProbe};
use o365probe_core::probe::tcp::{TcpConfig, TcpProbe, TcpResult};
use o365probe_core::probe::tls::{AgentTlsProbe, TlsConfig, TlsFailure};
use o365probe_core::probe::{ConnectFailure, Event, Probe, Transmit};
use o365probe_core::rand::SplitMix64;
use o365probe_core::time::{Duration, Instant};
use o365probe_core::wire::dns::{Name, Query, Rcode, Record, RecordData, Response, Type};
use o365probe_core::wire::stun::{Message, Repr};
use socket2::SockRef;

const ANSWER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const ANSWER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x80);
const EF_TOS: u8 = DSCP_EF << 2;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn localhost(v6: bool) -> IpAddr {
    if v6 {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    net::runtime().unwrap().block_on(f)
}

/// What a test server saw: each datagram's source, TOS byte and payload, in order.
#[derive(Debug, Clone)]
struct Seen {
    from: SocketAddr,
    tos: Option<u8>,
    payload: Vec<u8>,
}

/// A UDP server on its own thread answering each datagram with what `answer` returns.
struct UdpServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpServer {
    fn start(
        socket: UdpSocket,
        mut answer: impl FnMut(&[u8], SocketAddr) -> Option<Vec<u8>> + Send + 'static,
    ) -> UdpServer {
        let addr = socket.local_addr().unwrap();
        let r = SockRef::from(&socket);
        if addr.is_ipv4() {
            r.set_recv_tos_v4(true).unwrap();
        } else {
            r.set_recv_tclass_v6(true).unwrap();
        }
        socket
            .set_read_timeout(Some(StdDuration::from_millis(50)))
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let got = match recv_datagram(&socket, &mut buf) {
                    Ok(got) => got,
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => continue,
                    Err(e) => panic!("test server: {e}"),
                };
                let payload = buf[..got.len].to_vec();
                let reply = answer(&payload, got.from);
                // Recorded before the answer leaves: whoever gets the answer finds the request here.
                seen2.lock().unwrap().push(Seen {
                    from: got.from,
                    tos: got.tos,
                    payload,
                });
                if let Some(reply) = reply {
                    socket.send_to(&reply, got.from).unwrap();
                }
            }
        });
        UdpServer {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A resolver's answer built by the core's wire layer: A or AAAA of the documentation address.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    let query = Query::parse(query).ok()?;
    let mut response = Response::reply_to(&query);
    let data = match query.question.qtype {
        Type::A => RecordData::A(ANSWER_V4),
        Type::Aaaa => RecordData::Aaaa(ANSWER_V6),
        _ => return None,
    };
    let record = Record {
        name: query.question.name.clone(),
        ttl: 300,
        data,
    };
    response.answers.push(record).ok()?;
    let mut buf = vec![0; response.buffer_len()];
    let len = response.emit(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

fn dns_server(ip: IpAddr) -> UdpServer {
    UdpServer::start(UdpSocket::bind((ip, 0)).unwrap(), |q, _| dns_answer(q))
}

/// A server that reads and never answers.
fn silent_server(ip: IpAddr) -> UdpServer {
    UdpServer::start(UdpSocket::bind((ip, 0)).unwrap(), |_, _| None)
}

/// A STUN server built from the core's wire layer: a Binding success naming the request's source.
fn stun_answer(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let message = Message::new_checked(request).ok()?;
    let repr = Repr::parse(&message).ok()?;
    let mut buf = [0u8; 128];
    let len = Repr::binding_success(repr.transaction_id, from)
        .emit_into(&mut buf)
        .ok()?;
    Some(buf[..len].to_vec())
}

fn stun_server(socket: UdpSocket) -> UdpServer {
    UdpServer::start(socket, stun_answer)
}

fn dns_probe(resolver: SocketAddr, name: &str, qtype: QueryType, config: DnsConfig) -> DnsProbe {
    let query = DnsQuery {
        resolver,
        name: Name::new(name).unwrap(),
        qtype,
    };
    DnsProbe::new(query, config, SplitMix64::new(7)).unwrap()
}

fn quick_dns(tries: u8, timeout_ms: u64) -> DnsConfig {
    DnsConfig {
        timeout: ms(timeout_ms),
        tries,
        tcp_timeout: ms(1000),
    }
}

fn stun_probe(server: SocketAddr, count: u16) -> StunProbe<64> {
    let config = StunConfig {
        server,
        count,
        spacing: ms(5),
        drain: Drain::Fixed(ms(300)),
    };
    StunProbe::new(config, SplitMix64::new(3), clock::now()).unwrap()
}

fn tcp_probe(target: SocketAddr, samples: u8) -> TcpProbe {
    let config = TcpConfig {
        samples,
        spacing: ms(5),
        connect_timeout: ms(2000),
        ..TcpConfig::new(target)
    };
    TcpProbe::new(config, clock::now()).unwrap()
}

#[test]
fn dns_over_udp_answers_on_ipv4_and_ipv6_loopback() {
    for (v6, qtype, want) in [
        (false, QueryType::A, IpAddr::V4(ANSWER_V4)),
        (true, QueryType::Aaaa, IpAddr::V6(ANSWER_V6)),
    ] {
        let server = dns_server(localhost(v6));
        let probe = dns_probe(
            server.addr,
            "outlook.office365.com",
            qtype,
            DnsConfig::DEFAULT,
        );
        let t0 = StdInstant::now();
        let out = block_on(drive(probe, &SocketOptions::default())).unwrap();
        let wall = t0.elapsed();
        let answer = out.answer.expect("an answer");
        assert_eq!(answer.rcode, Rcode::NoError);
        assert_eq!(answer.exchange, Exchange::Udp(1));
        assert_eq!(answer.addresses.as_slice(), &[(want, 300)]);
        assert_eq!(out.tries, 1);
        assert!(answer.rtt > Duration::from_ticks(0));
        assert!(clock::std_duration(answer.rtt) <= wall, "{:?}", answer.rtt);
        let seen = server.seen();
        assert_eq!(seen.len(), 1, "one query, no retry");
        assert_eq!(seen[0].from.ip(), localhost(v6));
    }
}

#[test]
fn an_unanswered_dns_probe_ends_in_its_own_timeout_and_the_driver_returns_right_after() {
    let server = silent_server(localhost(false));
    let probe = dns_probe(server.addr, "a.example", QueryType::A, quick_dns(2, 300));
    let t0 = StdInstant::now();
    // The longest this probe can take: two tries and the TCP fallback (7 s with the net's margin).
    let limit = limit_for(ms(2 * 300 + 1000));
    let out = block_on(drive_within(probe, &SocketOptions::default(), limit))
        .expect("the core's timeout ends it, not the safety net");
    let wall = t0.elapsed();
    assert_eq!(out.answer, Err(DnsFailure::Timeout));
    assert_eq!(out.tries, 2);
    assert_eq!(server.seen().len(), 2);
    // Two tries of 300 ms: the probe's own clock says at least 600 ms...
    assert!(out.elapsed >= ms(600), "{:?}", out.elapsed);
    // ...and the driver returns when the probe says so, long before its safety net.
    assert!(wall >= StdDuration::from_millis(600), "{wall:?}");
    assert!(wall < StdDuration::from_secs(5), "{wall:?}");
}

/// A truncated UDP answer sends the probe to TCP on the same port; the TCP answer comes in two writes.
#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let udp = UdpServer::start(UdpSocket::bind(addr).unwrap(), |q, _| {
        let query = Query::parse(q).ok()?;
        let mut r = Response::reply_to(&query);
        r.truncated = true;
        let mut buf = vec![0; r.buffer_len()];
        let n = r.emit(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    });
    let tcp = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).unwrap();
        let mut query = vec![0; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut query).unwrap();
        let answer = dns_answer(&query).unwrap();
        let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&answer);
        let (first, rest) = framed.split_at(5);
        conn.write_all(first).unwrap();
        conn.flush().unwrap();
        std::thread::sleep(StdDuration::from_millis(20));
        conn.write_all(rest).unwrap();
        // Held open until the probe closes it: the answer, not a close, ends the exchange.
        let _ = conn.read(&mut [0u8; 1]);
    });
    let probe = dns_probe(
        addr,
        "outlook.office365.com",
        QueryType::A,
        DnsConfig::DEFAULT,
    );
    let out = block_on(drive(probe, &SocketOptions::default())).unwrap();
    tcp.join().unwrap();
    assert!(out.tcp);
    let answer = out.answer.unwrap();
    assert_eq!(answer.exchange, Exchange::Tcp);
    assert_eq!(answer.addresses.as_slice(), &[(IpAddr::V4(ANSWER_V4), 300)]);
    // The TCP answer's round trip includes the server's 20 ms pause between its two writes.
    assert!(answer.rtt >= ms(20), "{:?}", answer.rtt);
    assert_eq!(udp.seen().len(), 1);
}

/// A server that accepts and hangs up at once: the TLS probe hears the close.
#[test]
fn a_peer_that_closes_is_reported_as_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || drop(listener.accept().unwrap()));
    let probe =
        AgentTlsProbe::new(TlsConfig::new(addr, "outlook.office365.com"), clock::now()).unwrap();
    let result = block_on(drive(probe, &SocketOptions::default())).unwrap();
    server.join().unwrap();
    assert!(result.connect.is_some());
    assert_eq!(result.failure, Some(TlsFailure::Closed), "{result:?}");
}

#[test]
fn tcp_connects_to_a_listener_and_is_refused_by_a_closed_port() {
    for v6 in [false, true] {
        let listener = TcpListener::bind((localhost(v6), 0)).unwrap();
        let open = listener.local_addr().unwrap();
        let result: TcpResult =
            block_on(drive(tcp_probe(open, 5), &SocketOptions::default())).unwrap();
        assert_eq!(result.connected(), 5, "{result:?}");
        let rtt = result.rtt().unwrap();
        assert!(rtt.min_us() > 0);

        let closed = {
            let l = TcpListener::bind((localhost(v6), 0)).unwrap();
            l.local_addr().unwrap()
        };
        let result = block_on(drive(tcp_probe(closed, 3), &SocketOptions::default())).unwrap();
        assert_eq!(result.connected(), 0);
        assert_eq!(result.failures().refused, 3, "{result:?}");
        assert!(result
            .samples
            .iter()
            .all(|s| s.outcome == Err(ConnectFailure::Refused)));
        drop(listener);
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/tls")
        .join(name)
}

/// `openssl s_server` with the fixture chain on a free loopback port; killed on drop.
struct SServer {
    child: Child,
    addr: SocketAddr,
}

impl SServer {
    fn start() -> Option<SServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(fixture("genuine-leaf.pem"))
            .arg("-key")
            .arg(fixture("genuine-leaf.key"))
            .arg("-cert_chain")
            .arg(fixture("genuine-intermediate.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut server = SServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = StdInstant::now() + StdDuration::from_secs(20);
        while std::net::TcpStream::connect(server.addr).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "s_server exited"
            );
            assert!(StdInstant::now() < deadline, "s_server never listened");
            std::thread::sleep(StdDuration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn der(pem: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(fixture(pem))
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn tls_probe_judges_the_s_server_chain_genuine_under_the_fixture_root() {
    let Some(server) = SServer::start() else {
        eprintln!("skipped: openssl is not installed");
        return;
    };
    let root = der("genuine-root.pem");
    let roots = TrustedRoots::<1>::from_ders([&root[..]]).unwrap();
    let config = TlsConfig {
        expected: ExpectedIssuers {
            roots: roots.as_slice(),
            intermediates: &[],
        },
        wall_clock: clock::unix_seconds(),
        ..TlsConfig::new(server.addr, "outlook.office365.com")
    };
    let probe = AgentTlsProbe::new(config, clock::now()).unwrap();
    let result = block_on(drive(probe, &SocketOptions::default())).unwrap();
    assert_eq!(result.failure, None, "{result:?}");
    let chain = result.chain.as_ref().unwrap();
    assert!(matches!(chain.verdict, Verdict::Genuine(_)), "{chain:?}");
    assert_eq!(chain.length, 2);
    assert_eq!(chain.covers_host, Some(true));
    // The wall clock reached the probe: the leaf's validity was judged.
    assert!(
        matches!(
            chain.validity,
            Some(Validity::Valid { .. } | Validity::NotYetValid { .. } | Validity::Expired { .. })
        ),
        "{chain:?}"
    );
    let connect = result.connect.unwrap();
    let handshake = result.handshake.unwrap();
    assert!(connect > Duration::from_ticks(0) && handshake > Duration::from_ticks(0));
}

#[test]
fn stun_reports_the_address_and_port_the_server_saw_and_ef_reaches_the_server() {
    for v6 in [false, true] {
        let server = stun_server(UdpSocket::bind((localhost(v6), 0)).unwrap());
        let opts = SocketOptions::default().with_dscp(Some(DSCP_EF));
        let m: StunMeasurement = block_on(drive(stun_probe(server.addr, 20), &opts)).unwrap();
        let seen = server.seen();
        assert_eq!((m.sent, m.received, m.lost), (20, 20, 0), "{m:?}");
        assert_eq!(seen.len(), 20);
        // The mapped address is the probe socket's, exactly as the server saw it.
        assert_eq!(m.mapped, Some(seen[0].from));
        assert_eq!(m.mapping_changes, 0);
        assert!(seen.iter().all(|s| s.from == seen[0].from));
        let marks: Vec<Option<u8>> = seen.iter().map(|s| s.tos).collect();
        assert!(marks.iter().all(|t| *t == Some(EF_TOS)), "{marks:?}");
        assert!(m.rtt.is_some());
    }
}

#[test]
fn probes_of_every_kind_run_together_on_one_thread() {
    let dns = dns_server(localhost(false));
    let stun = stun_server(UdpSocket::bind("[::1]:0").unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = SocketOptions::default();
    let (d, s, t) = block_on(async {
        tokio::join!(
            drive(
                dns_probe(dns.addr, "a.example", QueryType::A, DnsConfig::DEFAULT),
                &opts
            ),
            drive(stun_probe(stun.addr, 10), &opts),
            drive(tcp_probe(listener.local_addr().unwrap(), 3), &opts),
        )
    });
    assert!(d.unwrap().answer.is_ok());
    assert_eq!(s.unwrap().received, 10);
    assert_eq!(t.unwrap().connected(), 3);
}

/// Three unanswered probes: with room for three they overlap (every first try before any retry); with
/// room for one, each finishes before the next starts. Only orderings are asserted.
#[test]
fn a_limit_bounds_how_many_probes_are_in_flight() {
    let names = ["a.example", "b.example", "c.example"];
    let order = |concurrent: usize| -> Vec<String> {
        let server = silent_server(localhost(false));
        let probes = names.map(|n| dns_probe(server.addr, n, QueryType::A, quick_dns(2, 200)));
        let limit = Limit::new(concurrent);
        let out = block_on(drive_all(probes, &SocketOptions::default(), &limit));
        assert_eq!(out.len(), 3);
        for o in out {
            assert_eq!(o.unwrap().answer, Err(DnsFailure::Timeout));
        }
        server
            .seen()
            .iter()
            .map(|s| {
                let q = Query::parse(&s.payload).unwrap();
                q.question.name.as_str().to_owned()
            })
            .collect()
    };
    let overlapping = order(3);
    let mut first = overlapping[..3].to_vec();
    first.sort();
    assert_eq!(first, names, "{overlapping:?}");
    assert_eq!(
        order(1),
        [
            "a.example",
            "a.example",
            "b.example",
            "b.example",
            "c.example",
            "c.example"
        ]
    );
}

#[test]
fn join_all_keeps_the_order_of_its_futures() {
    let server = dns_server(localhost(true));
    let opts = SocketOptions::default();
    let outs = block_on(join_all(["x.example", "y.example"].map(|n| {
        drive(
            dns_probe(server.addr, n, QueryType::Aaaa, DnsConfig::DEFAULT),
            &opts,
        )
    })));
    let chains: Vec<String> = outs
        .into_iter()
        .map(|o: Result<DnsOutcome, DriveError>| {
            o.unwrap().answer.unwrap().chain[0].as_str().to_owned()
        })
        .collect();
    assert_eq!(chains, ["x.example", "y.example"]);
}

#[test]
fn a_source_address_of_the_other_family_is_a_clear_error() {
    let server = dns_server(localhost(true));
    let opts = SocketOptions {
        source: Some(Ipv4Addr::LOCALHOST.into()),
        ..SocketOptions::default()
    };
    let probe = dns_probe(server.addr, "a.example", QueryType::A, DnsConfig::DEFAULT);
    let err = block_on(drive(probe, &opts)).unwrap_err();
    assert!(
        matches!(err, DriveError::Socket(SocketError::FamilyMismatch { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1 is IPv4") && text.contains("IPv6"),
        "{text}"
    );
    assert!(server.seen().is_empty());
}

#[test]
fn a_source_address_not_on_this_machine_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = SocketOptions {
        source: Some("192.0.2.77".parse().unwrap()),
        ..SocketOptions::default()
    };
    let err = block_on(drive(tcp_probe(listener.local_addr().unwrap(), 1), &opts)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bind to source address 192.0.2.77: Cannot assign requested address"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

#[test]
fn bind_to_device_works_on_lo_and_names_a_missing_interface() {
    let server = dns_server(localhost(false));
    let missing = SocketOptions {
        interface: Some("o365-nosuch0".into()),
        ..SocketOptions::default()
    };
    let probe = dns_probe(server.addr, "a.example", QueryType::A, DnsConfig::DEFAULT);
    let err = block_on(drive(probe, &missing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bind to interface o365-nosuch0: no such interface"
    );
    if !is_root() {
        eprintln!("skipped SO_BINDTODEVICE to lo: not root");
        return;
    }
    let lo = SocketOptions {
        interface: Some("lo".into()),
        ..SocketOptions::default()
    };
    let probe = dns_probe(server.addr, "a.example", QueryType::A, DnsConfig::DEFAULT);
    assert!(block_on(drive(probe, &lo)).unwrap().answer.is_ok());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = block_on(drive(tcp_probe(listener.local_addr().unwrap(), 2), &lo)).unwrap();
    assert_eq!(tcp.connected(), 2);
}

/// A buggy probe: never sends, never gives a result, and asks to be woken when `wake` says.
struct Buggy {
    wake: fn() -> Option<Instant>,
}

impl Probe for Buggy {
    type Output = ();
    fn handle(&mut self, _: Instant, _: Event<'_>) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (self.wake)()
    }
    fn poll_result(&mut self) -> Option<()> {
        None
    }
}

/// Never finishes: always wants to be woken a second from now.
const FOREVER: Buggy = Buggy {
    wake: || Some(clock::now() + ms(1000)),
};
/// Gives up on time without a result: nothing in flight, nothing to wait for.
const MUTE: Buggy = Buggy { wake: || None };
/// Asks to be woken in the past, forever.
const SPINNER: Buggy = Buggy {
    wake: || Some(Instant::from_ticks(0)),
};

#[test]
fn a_probe_bug_ends_in_an_error_never_a_hang() {
    let opts = SocketOptions::default();
    let t0 = StdInstant::now();
    let err = block_on(drive_within(FOREVER, &opts, StdDuration::from_millis(300))).unwrap_err();
    assert!(matches!(err, DriveError::Stalled { .. }), "{err:?}");
    assert!(t0.elapsed() >= StdDuration::from_millis(300));
    assert_eq!(
        err.to_string(),
        "probe did not finish within 0.3 s (the driver's safety net)"
    );
    let err = block_on(drive(MUTE, &opts)).unwrap_err();
    assert!(matches!(err, DriveError::Stuck(_)), "{err:?}");
    let err = block_on(drive(SPINNER, &opts)).unwrap_err();
    assert!(matches!(err, DriveError::Stuck(_)), "{err:?}");
}

// ---- Network namespaces (root only) ----

type Job = Box<dyn FnOnce() + Send>;

/// A network namespace of our own, held by a thread that runs jobs inside it. Sockets made by a job stay
/// in the namespace wherever they are used afterwards; the namespace and its devices go away on drop.
struct Netns {
    jobs: Option<mpsc::Sender<Job>>,
    tid: i32,
    thread: Option<JoinHandle<()>>,
}

impl Netns {
    fn new() -> Result<Netns, String> {
        if !is_root() {
            return Err("not root".into());
        }
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            #[allow(unsafe_code)]
            // SAFETY: unshare and gettid have no memory-safety preconditions; CLONE_NEWNET moves only
            // this thread.
            let (rc, tid) = unsafe { (libc::unshare(libc::CLONE_NEWNET), libc::gettid()) };
            if rc != 0 {
                let _ = ready_tx.send(Err(io::Error::last_os_error().to_string()));
                return;
            }
            let _ = ready_tx.send(Ok(tid));
            for job in rx {
                job();
            }
        });
        let tid = ready.recv().map_err(|e| e.to_string())??;
        let ns = Netns {
            jobs: Some(jobs),
            tid,
            thread: Some(thread),
        };
        ns.sh("ip link set lo up")?;
        Ok(ns)
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        self.jobs.as_ref().unwrap().send(job).unwrap();
        match rx.recv().unwrap() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    fn sh(&self, script: &str) -> Result<(), String> {
        let script = script.to_owned();
        self.run(move || {
            let out = Command::new("sh")
                .args(["-ec", &script])
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{script}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
    }

    /// Drives `probe` from inside the namespace.
    fn drive<P>(&self, probe: P, opts: &SocketOptions) -> Result<P::Output, DriveError>
    where
        P: Probe + Send + 'static,
        P::Output: Send + 'static,
    {
        let opts = opts.clone();
        self.run(move || block_on(drive(probe, &opts)))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An office router with two WANs, and the internet behind both:
///
/// ```text
/// office: wan1 192.0.2.2/24    ── inet: isp1 192.0.2.1/24      lo: 203.0.113.1 (the servers)
///         wan2 198.51.100.2/24 ──       isp2 198.51.100.1/24   strict rp_filter: a packet is
///         main table: default via wan1 (metric 10) and wan2 (metric 20)   only accepted on the
///         policy: from 198.51.100.2 -> table 2 (default via wan2)          link its source is on
/// ```
fn two_uplinks() -> Result<(Netns, Netns), String> {
    let office = Netns::new()?;
    let inet = Netns::new()?;
    let t = inet.tid;
    office.sh(&format!(
        "ip link add wan1 type veth peer name isp1 netns {t}
         ip link add wan2 type veth peer name isp2 netns {t}
         ip addr add 192.0.2.2/24 dev wan1
         ip addr add 198.51.100.2/24 dev wan2
         ip link set wan1 up
         ip link set wan2 up
         ip route add default via 192.0.2.1 dev wan1 metric 10
         ip route add default via 198.51.100.1 dev wan2 metric 20
         ip route add default via 198.51.100.1 dev wan2 table 2
         ip rule add from 198.51.100.2 lookup 2"
    ))?;
    inet.sh("ip addr add 192.0.2.1/24 dev isp1
         ip addr add 198.51.100.1/24 dev isp2
         ip addr add 203.0.113.1/32 dev lo
         ip link set isp1 up
         ip link set isp2 up
         sysctl -qw net.ipv4.conf.all.rp_filter=1
         sysctl -qw net.ipv4.conf.isp1.rp_filter=1
         sysctl -qw net.ipv4.conf.isp2.rp_filter=1")?;
    Ok((office, inet))
}

#[test]
fn each_uplink_is_assessed_from_its_own_interface_and_address() {
    let (office, inet) = match two_uplinks() {
        Ok(pair) => pair,
        Err(why) => {
            eprintln!("skipped: cannot make network namespaces ({why})");
            return;
        }
    };
    let stun = stun_server(inet.run(|| UdpSocket::bind("203.0.113.1:3478").unwrap()));
    let listener = inet.run(|| TcpListener::bind("203.0.113.1:443").unwrap());
    let wan1: IpAddr = "192.0.2.2".parse().unwrap();
    let wan2: IpAddr = "198.51.100.2".parse().unwrap();
    let by_interface = |name: &str| SocketOptions {
        interface: Some(name.into()),
        ..SocketOptions::default()
    };
    let by_source = |ip| SocketOptions {
        source: Some(ip),
        ..SocketOptions::default()
    };
    let cases = [
        ("routing table", SocketOptions::default(), wan1),
        ("interface wan1", by_interface("wan1"), wan1),
        ("interface wan2", by_interface("wan2"), wan2),
        ("source wan1", by_source(wan1), wan1),
        ("source wan2", by_source(wan2), wan2),
        (
            "interface wan2, EF",
            by_interface("wan2").with_dscp(Some(DSCP_EF)),
            wan2,
        ),
    ];
    for (case, opts, want) in cases {
        let before = stun.seen().len();
        let m = office
            .drive(stun_probe(stun.addr, 5), &opts)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(m.received, 5, "{case}: {m:?}");
        // The public address a STUN server reports is the uplink's.
        assert_eq!(m.mapped.map(|a| a.ip()), Some(want), "{case}");
        let seen = stun.seen();
        assert!(seen[before..].iter().all(|s| s.from.ip() == want), "{case}");
        let tos = if opts.dscp.is_some() { EF_TOS } else { 0 };
        assert!(
            seen[before..].iter().all(|s| s.tos == Some(tos)),
            "{case}: the mark crosses the link"
        );

        let target = listener.local_addr().unwrap();
        let tcp = office.drive(tcp_probe(target, 1), &opts).unwrap();
        assert_eq!(tcp.connected(), 1, "{case}: {tcp:?}");
        let (_conn, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), want, "{case}: TCP");
    }
}

/// A machine with no network at all: every probe says what failed, at once, never hangs.
#[test]
fn offline_every_probe_says_what_failed_and_returns() {
    let offline = match Netns::new() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: cannot make a network namespace ({why})");
            return;
        }
    };
    let t0 = StdInstant::now();
    for resolver in ["192.0.2.53:53", "[2001:db8::53]:53"] {
        let resolver: SocketAddr = resolver.parse().unwrap();
        let probe = dns_probe(resolver, "a.example", QueryType::A, DnsConfig::DEFAULT);
        let err = offline.drive(probe, &SocketOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("sendto {resolver}: Network is unreachable")
        );
    }
    let stun = offline
        .drive(
            stun_probe("203.0.113.50:3478".parse().unwrap(), 5),
            &SocketOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(stun, DriveError::Send { .. }), "{stun}");
    for target in ["192.0.2.10:443", "[2001:db8::10]:443"] {
        let target: SocketAddr = target.parse().unwrap();
        let tcp = offline
            .drive(tcp_probe(target, 3), &SocketOptions::default())
            .unwrap();
        assert_eq!(tcp.failures().unreachable, 3, "{tcp:?}");
        let tls = offline.run(move || {
            let probe = AgentTlsProbe::new(
                TlsConfig::new(target, "outlook.office365.com"),
                clock::now(),
            )
            .unwrap();
            block_on(drive(probe, &SocketOptions::default())).unwrap()
        });
        assert_eq!(
            tls.failure,
            Some(TlsFailure::Connect(ConnectFailure::Unreachable))
        );
    }
    // Nothing waited for a timeout (the DNS default alone is 6 s).
    assert!(
        t0.elapsed() < StdDuration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
}

/// Prints the stamping overhead on loopback: the core's TCP connect and STUN round trips against the
/// same exchanges timed in a std loop with the same 5 ms spacing. Run with `--ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_stamping_overhead() {
    const N: usize = 200;
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let accept = std::thread::spawn(move || {
        for c in listener.incoming().take(2 * N) {
            drop(c);
        }
    });
    // The same 5 ms spacing as the probes: an idle gap makes every wake-up slower, in both.
    let gap = || std::thread::sleep(StdDuration::from_millis(5));
    let std_tcp: Vec<u64> = (0..N)
        .map(|_| {
            gap();
            let t = StdInstant::now();
            let s = std::net::TcpStream::connect(target).unwrap();
            let us = t.elapsed().as_micros() as u64;
            drop(s);
            us
        })
        .collect();
    let core_tcp: Vec<u64> = {
        let mut all = Vec::new();
        for _ in 0..(N / 50) {
            let r = block_on(drive(tcp_probe(target, 50), &SocketOptions::default())).unwrap();
            all.extend(r.rtts().map(|d| d.as_micros()));
        }
        all
    };
    accept.join().unwrap();

    let stun = stun_server(UdpSocket::bind("127.0.0.1:0").unwrap());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = [0u8; 128];
    let request = {
        let mut b = [0u8; 28];
        let n = Repr::binding_request(Default::default())
            .emit_into(&mut b)
            .unwrap();
        b[..n].to_vec()
    };
    let std_udp: Vec<u64> = (0..N)
        .map(|_| {
            gap();
            let t = StdInstant::now();
            sock.send_to(&request, stun.addr).unwrap();
            sock.recv_from(&mut buf).unwrap();
            t.elapsed().as_micros() as u64
        })
        .collect();
    let m = block_on(drive(stun_probe(stun.addr, 50), &SocketOptions::default())).unwrap();
    let rtt = m.rtt.unwrap();
    // One query per probe: its UDP socket is made between the query's stamp and its send.
    let dns = dns_server(localhost(false));
    let query = {
        let q = Query::new(1, Name::new("a.example").unwrap(), Type::A);
        let mut b = vec![0; q.buffer_len()];
        let n = q.emit(&mut b).unwrap();
        b.truncate(n);
        b
    };
    let std_dns: Vec<u64> = (0..N)
        .map(|_| {
            gap();
            let t = StdInstant::now();
            sock.send_to(&query, dns.addr).unwrap();
            sock.recv_from(&mut buf).unwrap();
            t.elapsed().as_micros() as u64
        })
        .collect();
    let core_dns: Vec<u64> = (0..N)
        .map(|_| {
            gap();
            let probe = dns_probe(dns.addr, "a.example", QueryType::A, DnsConfig::DEFAULT);
            let out = block_on(drive(probe, &SocketOptions::default())).unwrap();
            out.answer.unwrap().rtt.as_micros()
        })
        .collect();
    println!(
        "DNS query, loopback, median of {N}: std loop {} us, core via net::drive {} us",
        median(std_dns),
        median(core_dns)
    );
    println!(
        "TCP connect, loopback, median of {N}: std loop {} us, core via net::drive {} us",
        median(std_tcp),
        median(core_tcp)
    );
    println!(
        "UDP STUN round trip, loopback, median: std loop {} us (of {N}), core via net::drive {} us (min {}, of 50)",
        median(std_udp),
        rtt.median_us(),
        rtt.min_us()
    );
}
