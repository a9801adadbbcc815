//! Traceroute and routing lookups against real kernels: network namespaces this test makes (a client,
//! three routers and a server in a row; a router with a VPN tunnel), documentation addresses only.
//! Needs root; without it each test says why and passes.

use o365probe::endpoints::IpNet;
use o365probe::path::{trace, Method, ReplyKind, Trace, TraceEnd, TraceError, TraceOptions};
use o365probe::route::{route_to, route_with, split_tunnel, uplinks, RouteQuery, Tunnel};
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------------
// Namespaces.

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace of this test, deleted on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn new(role: &str) -> Ns {
        let name = format!(
            "o365path-{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name], None);
        let ns = Ns { name };
        // Link-local addresses would otherwise stay tentative for a second or two after a link comes
        // up, and a router with a tentative link-local address does not resolve the next hop of the
        // packets it forwards.
        ns.sysctl(&[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ]);
        ns
    }

    /// `ip -n NAME -batch -` with these lines.
    fn ip(&self, lines: &[String]) {
        run(
            "ip",
            &["-n", &self.name, "-batch", "-"],
            Some(&lines.join("\n")),
        );
    }

    /// Waits until every veth of the namespace is operationally up: until the kernel's link watcher
    /// has seen the carrier, a link drops what is sent (and a lost first neighbour solicitation is
    /// only repeated a second later, after a probe's timeout).
    fn wait_until_links_are_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = Command::new("ip")
                .args(["-n", &self.name, "-o", "link", "show", "type", "veth"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if text.lines().all(|l| l.contains("state UP")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "links not up in {}:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn exec(&self, argv: &[&str], stdin: Option<&str>) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(argv);
        run("ip", &args, stdin);
    }

    fn sysctl(&self, settings: &[(&str, &str)]) {
        self.enter(|| {
            for (key, value) in settings {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                std::fs::write(&path, value).unwrap_or_else(|e| panic!("{path}: {e}"));
            }
        });
    }

    /// Runs `work` on a thread inside the namespace; sockets it opens stay there.
    fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: a plain syscall on a descriptor we own; it moves only this thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(format!("{text}\n").as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} <<< {stdin:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why namespaces cannot be made here, if they cannot. Found out once: the tests run side by side,
/// and two of them trying the same probe namespace at once would see "exists" and skip themselves.
fn unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("needs root for network namespaces".into());
        }
        let probe = format!("o365path-{}-check", std::process::id());
        let made = Command::new("ip")
            .args(["netns", "add", &probe])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &probe])
            .stderr(Stdio::null())
            .status();
        match made {
            Ok(s) if s.success() => None,
            _ => Some("`ip netns add` fails here".into()),
        }
    })
    .clone()
}

macro_rules! require_namespaces {
    () => {
        if let Some(why) = unavailable() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

// ---------------------------------------------------------------------------------------------------
// The chain: client -> r1 -> r2 -> r3 -> server.

/// Link i joins node i (left, nearer the client) and node i+1: (left, right) addresses.
const LINKS_V4: [(&str, &str); 4] = [
    ("192.0.2.1", "192.0.2.2"),
    ("192.0.2.5", "192.0.2.6"),
    ("192.0.2.9", "192.0.2.10"),
    ("203.0.113.1", "203.0.113.2"),
];
const LINKS_V6: [(&str, &str); 4] = [
    ("2001:db8:0:1::1", "2001:db8:0:1::2"),
    ("2001:db8:0:2::1", "2001:db8:0:2::2"),
    ("2001:db8:0:3::1", "2001:db8:0:3::2"),
    ("2001:db8:0:4::1", "2001:db8:0:4::2"),
];
const SERVER_V4: &str = "203.0.113.2";
const SERVER_V6: &str = "2001:db8:0:4::2";

/// Each router answers from its address on the link toward the client.
fn expected_hops(v6: bool) -> Vec<IpAddr> {
    let links = if v6 { LINKS_V6 } else { LINKS_V4 };
    links.iter().map(|(_, right)| ip(right)).collect()
}

struct Chain {
    /// client, r1, r2, r3, server.
    nodes: Vec<Ns>,
}

impl Chain {
    fn new() -> Chain {
        let nodes: Vec<Ns> = ["client", "r1", "r2", "r3", "server"]
            .iter()
            .map(|role| Ns::new(role))
            .collect();
        for (i, left) in nodes[..4].iter().enumerate() {
            let right = &nodes[i + 1];
            left.ip(&[format!(
                "link add srv type veth peer name cli netns {}",
                right.name
            )]);
        }
        for (i, node) in nodes.iter().enumerate() {
            let mut lines = vec!["link set lo up".to_owned()];
            if i > 0 {
                // Toward the client: link i-1, where this node is on the right.
                let (v4, v6) = (LINKS_V4[i - 1].1, LINKS_V6[i - 1].1);
                lines.push(format!("addr add {v4}/30 dev cli"));
                lines.push(format!("addr add {v6}/64 dev cli nodad"));
                lines.push("link set cli up".into());
            }
            if i < 4 {
                // Toward the server: link i, where this node is on the left.
                let (v4, v6) = (LINKS_V4[i].0, LINKS_V6[i].0);
                lines.push(format!("addr add {v4}/30 dev srv"));
                lines.push(format!("addr add {v6}/64 dev srv nodad"));
                lines.push("link set srv up".into());
                lines.push(format!("route add default via {}", LINKS_V4[i].1));
                lines.push(format!("route add ::/0 via {}", LINKS_V6[i].1));
            } else {
                lines.push(format!("route add default via {}", LINKS_V4[3].0));
                lines.push(format!("route add ::/0 via {}", LINKS_V6[3].0));
            }
            if (2..4).contains(&i) {
                // Back to the client's network.
                lines.push(format!("route add 192.0.2.0/30 via {}", LINKS_V4[i - 1].0));
                lines.push(format!(
                    "route add 2001:db8:0:1::/64 via {}",
                    LINKS_V6[i - 1].0
                ));
            }
            node.ip(&lines);
            if (1..4).contains(&i) {
                node.sysctl(&[
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv6.conf.all.forwarding", "1"),
                ]);
            }
            if i > 0 {
                // Several traces in one test would otherwise meet the kernel's ICMP rate limit (a burst
                // of 6 per destination, then one a second) and lose answers.
                node.sysctl(&[
                    ("net.ipv4.icmp_ratelimit", "0"),
                    ("net.ipv6.icmp.ratelimit", "0"),
                ]);
            }
        }
        for node in &nodes {
            node.wait_until_links_are_up();
        }
        Chain { nodes }
    }

    fn client(&self) -> &Ns {
        &self.nodes[0]
    }

    fn router(&self, n: usize) -> &Ns {
        &self.nodes[n]
    }

    fn server(&self) -> &Ns {
        &self.nodes[4]
    }

    fn trace(&self, to: &str, options: &TraceOptions) -> Trace {
        let to = ip(to);
        self.client()
            .enter(|| trace(to, options))
            .unwrap_or_else(|e| panic!("trace to {to}: {e}"))
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addresses(t: &Trace) -> Vec<Option<IpAddr>> {
    t.hops.iter().map(|h| h.address()).collect()
}

fn quick(method: Method) -> TraceOptions {
    TraceOptions {
        method,
        max_hops: 8,
        timeout: Duration::from_secs(1),
        ..TraceOptions::default()
    }
}

/// Every probe of every hop answered, by the expected router, then by the server.
fn assert_full_path(t: &Trace, v6: bool) {
    let want: Vec<Option<IpAddr>> = expected_hops(v6).into_iter().map(Some).collect();
    assert_eq!(addresses(t), want, "{t}");
    assert!(t.reached(), "{t}");
    assert_eq!(t.end, TraceEnd::Reached);
    assert_eq!(t.hop_count(), 4);
    for (i, hop) in t.hops.iter().enumerate() {
        assert_eq!(hop.ttl as usize, i + 1);
        assert_eq!(hop.replies.len(), 3, "{t}");
        let kind = if i == 3 {
            ReplyKind::Destination
        } else {
            ReplyKind::TimeExceeded
        };
        for reply in &hop.replies {
            let reply =
                reply.unwrap_or_else(|| panic!("a probe unanswered at TTL {}:\n{t}", i + 1));
            assert_eq!(reply.kind, kind, "{t}");
            assert!(reply.rtt < Duration::from_secs(1), "{t}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Traceroute.

/// No privileges needed: the destination's own port unreachable (or SYN-ACK) ends the trace at TTL 1.
#[test]
fn loopback_is_reached_at_the_first_hop_by_any_user() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut methods = vec![("127.0.0.1", quick(Method::UdpClassic { first_port: 33434 }))];
    methods.push(("127.0.0.1", quick(Method::Tcp { port })));
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        methods.push(("::1", quick(Method::UdpClassic { first_port: 33434 })));
    }
    for (to, opts) in methods {
        let t = trace(ip(to), &opts).unwrap();
        assert!(t.reached(), "{t}");
        assert_eq!(t.hops.len(), 1, "{t}");
        for reply in &t.hops[0].replies {
            let reply = reply.unwrap_or_else(|| panic!("unanswered:\n{t}"));
            assert_eq!((reply.from, reply.kind), (ip(to), ReplyKind::Destination));
        }
    }
}

#[test]
fn three_routers_are_the_hops_in_order_over_ipv4_and_ipv6() {
    require_namespaces!();
    let chain = Chain::new();
    let opts = quick(Method::UdpClassic { first_port: 33434 });
    let v6 = chain.trace(SERVER_V6, &opts);
    assert_full_path(&v6, true);
    let v4 = chain.trace(SERVER_V4, &opts);
    assert_full_path(&v4, false);

    // What the report carries.
    let s = v4.summary(5);
    assert_eq!((s.target, s.reached, s.hop_count), (5, true, 4));
    let hops: Vec<(u8, Option<IpAddr>)> = s.hops.iter().map(|h| (h.ttl, h.address)).collect();
    let want: Vec<(u8, Option<IpAddr>)> = (1..)
        .zip(expected_hops(false).into_iter().map(Some))
        .collect();
    assert_eq!(hops, want);
    assert!(s.hops.iter().all(|h| h.rtt_us > 0 && h.rtt_us < 1_000_000));
}

#[test]
fn icmp_echo_and_tcp_syn_probes_reach_the_server_too() {
    require_namespaces!();
    let chain = Chain::new();
    // Ping sockets are allowed per namespace; a new one allows nobody.
    chain
        .client()
        .sysctl(&[("net.ipv4.ping_group_range", "0 2147483647")]);
    for (to, v6) in [(SERVER_V4, false), (SERVER_V6, true)] {
        let t = chain.trace(to, &quick(Method::Icmp));
        assert_eq!(t.method, Method::Icmp);
        assert_full_path(&t, v6);
    }

    // A front door: something listens on 443 (a dual-stack socket takes IPv4 too).
    let _listener = chain
        .server()
        .enter(|| TcpListener::bind("[::]:443"))
        .unwrap();
    for (to, v6) in [(SERVER_V4, false), (SERVER_V6, true)] {
        assert_full_path(&chain.trace(to, &quick(Method::Tcp { port: 443 })), v6);
        // A closed port answers with a reset: reached all the same.
        assert_full_path(&chain.trace(to, &quick(Method::Tcp { port: 444 })), v6);
    }
}

#[test]
fn ping_sockets_that_are_not_allowed_say_so() {
    require_namespaces!();
    let ns = Ns::new("noping");
    ns.sysctl(&[("net.ipv4.ping_group_range", "1 0")]);
    let err = ns
        .enter(|| trace(ip(SERVER_V4), &quick(Method::Icmp)))
        .unwrap_err();
    assert!(matches!(err, TraceError::IcmpNotPermitted), "{err}");
    assert!(err.to_string().contains("ping_group_range"));
}

#[test]
fn a_router_that_sends_no_icmp_is_a_star_and_the_trace_goes_on() {
    require_namespaces!();
    let chain = Chain::new();
    chain.router(2).exec(
        &["nft", "-f", "-"],
        Some(
            "table inet o365path { chain out { type filter hook output priority 0; policy accept; \
             icmp type time-exceeded drop; icmpv6 type time-exceeded drop; }; }",
        ),
    );
    let opts = TraceOptions {
        timeout: Duration::from_millis(500),
        ..quick(Method::UdpClassic { first_port: 33434 })
    };
    for (to, v6) in [(SERVER_V4, false), (SERVER_V6, true)] {
        let t = chain.trace(to, &opts);
        let mut want: Vec<Option<IpAddr>> = expected_hops(v6).into_iter().map(Some).collect();
        want[1] = None;
        assert_eq!(addresses(&t), want, "{t}");
        assert!(t.hops[1].replies.iter().all(Option::is_none), "{t}");
        assert!(t.reached(), "{t}");
        assert!(t.to_string().contains(" 2  *  *  *"), "{t}");

        let s = t.summary(0);
        assert_eq!(s.hops.len(), 4);
        assert_eq!(
            (s.hops[1].ttl, s.hops[1].address, s.hops[1].rtt_us),
            (2, None, 0)
        );
    }
}

#[test]
fn an_unreachable_destination_is_not_reached_within_the_bound() {
    require_namespaces!();
    let chain = Chain::new();
    // r3 throws away what it has no real route for, without a word (a firewall's silent drop).
    chain.router(3).ip(&[
        "route add blackhole 198.51.100.0/24".into(),
        "route add blackhole 2001:db8:dead::/48".into(),
    ]);
    let opts = TraceOptions {
        method: Method::UdpClassic { first_port: 33434 },
        max_hops: 6,
        probes_per_hop: 2,
        timeout: Duration::from_millis(300),
        max_silent_hops: 0,
        ..TraceOptions::default()
    };
    let bound = opts.timeout * u32::from(opts.max_hops) * u32::from(opts.probes_per_hop);
    for (to, v6) in [("198.51.100.99", false), ("2001:db8:dead::99", true)] {
        let started = Instant::now();
        let t = chain.trace(to, &opts);
        let took = started.elapsed();
        assert!(!t.reached(), "{t}");
        assert_eq!(t.end, TraceEnd::MaxHops, "{t}");
        assert_eq!(t.hop_count(), 6);
        let hops = expected_hops(v6);
        let want = [Some(hops[0]), Some(hops[1]), None, None, None, None];
        assert_eq!(addresses(&t), want, "{t}");
        assert!(took <= bound, "{took:?} > {bound:?}");
        assert!(
            took <= opts.max_duration(),
            "{took:?} > {:?}",
            opts.max_duration()
        );
        let s = t.summary(1);
        assert!(!s.reached);
        assert_eq!(s.hop_count, 6);
        // Where it went dark: the two routers that answered, then one "*".
        assert_eq!(
            s.hops.iter().map(|h| h.address).collect::<Vec<_>>(),
            [Some(hops[0]), Some(hops[1]), None]
        );
    }

    // Giving up after two dark hops ends the trace at TTL 4.
    let t = chain.trace(
        "198.51.100.99",
        &TraceOptions {
            max_silent_hops: 2,
            ..opts.clone()
        },
    );
    assert_eq!((t.end, t.hop_count()), (TraceEnd::Silent, 4), "{t}");
}

#[test]
fn a_router_without_a_route_ends_the_trace_as_unreachable() {
    require_namespaces!();
    let chain = Chain::new();
    chain.router(2).ip(&[
        "route add unreachable 198.51.100.0/24".into(),
        "route add unreachable 2001:db8:dead::/48".into(),
    ]);
    for (to, v6, icmp_type) in [("198.51.100.99", false, 3), ("2001:db8:dead::99", true, 1)] {
        let t = chain.trace(to, &quick(Method::UdpClassic { first_port: 33434 }));
        let r2 = expected_hops(v6)[1];
        assert!(!t.reached(), "{t}");
        assert_eq!(t.hop_count(), 2, "{t}");
        match t.end {
            TraceEnd::Unreachable {
                from,
                icmp_type: ty,
                ..
            } => assert_eq!((from, ty), (r2, icmp_type), "{t}"),
            other => panic!("ended {other:?}:\n{t}"),
        }
    }
}

#[test]
fn a_missing_route_or_interface_is_reported_not_hidden() {
    require_namespaces!();
    let ns = Ns::new("bare");
    ns.ip(&["link set lo up".into()]);
    // No route at all: the send fails at once, nothing is waited for.
    let t = ns
        .enter(|| trace(ip(SERVER_V4), &TraceOptions::default()))
        .unwrap();
    assert_eq!(
        t.end,
        TraceEnd::SendFailed {
            errno: libc::ENETUNREACH
        },
        "{t}"
    );
    assert!(!t.reached() && t.hops.is_empty());
    // An uplink whose interface does not exist.
    let err = ns
        .enter(|| {
            trace(
                ip(SERVER_V4),
                &TraceOptions {
                    interface: Some("wan9".into()),
                    ..TraceOptions::default()
                },
            )
        })
        .unwrap_err();
    // In the probes' words.
    assert_eq!(
        err.to_string(),
        "traceroute: bind to interface wan9: no such interface"
    );
    // The route lookup says "no route" the same way.
    let err = ns.enter(|| route_to(ip("13.107.136.1"))).unwrap_err();
    assert!(err.is_no_route(), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// Routes and the split tunnel.

/// A branch router: wan0 (veth to its provider, default routes), tun0 (a VPN client's TUN device).
fn branch_router() -> (Ns, Ns) {
    let router = Ns::new("branch");
    let isp = Ns::new("isp");
    router.ip(&[
        format!("link add wan0 type veth peer name lan0 netns {}", isp.name),
        "link set lo up".into(),
        "addr add 192.0.2.2/30 dev wan0".into(),
        "addr add 2001:db8:0:1::2/64 dev wan0 nodad".into(),
        "link set wan0 up".into(),
        "route add default via 192.0.2.1".into(),
        "route add ::/0 via 2001:db8:0:1::1".into(),
        "tuntap add mode tun dev tun0".into(),
        "link set tun0 up".into(),
        "addr add 198.51.100.2/32 dev tun0".into(),
    ]);
    isp.ip(&[
        "addr add 192.0.2.1/30 dev lan0".into(),
        "addr add 2001:db8:0:1::1/64 dev lan0 nodad".into(),
        "link set lan0 up".into(),
    ]);
    (router, isp)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn optimize_traffic_into_a_tunnel_is_flagged_and_nothing_else() {
    require_namespaces!();
    let (router, _isp) = branch_router();
    // The VPN client routes Teams media (and its IPv6 range) into the tunnel.
    router.ip(&[
        "route add 52.112.0.0/14 dev tun0".into(),
        "route add 2603:1063::/38 dev tun0".into(),
    ]);
    let prefixes = [
        net("13.107.136.0/22"),
        net("52.112.0.0/14"),
        net("52.122.0.0/15"),
        net("2603:1063::/38"),
        net("2620:1ec:4::/46"),
        // A resolved front door.
        net("203.0.113.10/32"),
    ];
    let routes = router.enter(|| split_tunnel(&prefixes)).unwrap();
    assert_eq!(routes.len(), prefixes.len());
    let tunneled: Vec<String> = routes
        .iter()
        .filter(|r| r.tunnel().is_some())
        .map(|r| r.prefix.to_string())
        .collect();
    assert_eq!(tunneled, ["52.112.0.0/14", "2603:1063::/38"]);
    for r in &routes {
        let route = r
            .route
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", r.prefix));
        assert_eq!(route.destination, r.probe);
        assert_eq!(route.table, 254, "{}: the main table", r.prefix);
        if r.tunnel().is_some() {
            assert_eq!(r.tunnel(), Some(Tunnel::Tun));
            assert_eq!(route.interface.name, "tun0");
            assert_eq!(route.interface.kind.as_deref(), Some("tun"));
            assert_eq!(route.gateway, None);
        } else {
            assert_eq!(route.interface.name, "wan0");
            assert_eq!(route.interface.kind.as_deref(), Some("veth"));
            let (gateway, source) = if r.probe.is_ipv6() {
                ("2001:db8:0:1::1", "2001:db8:0:1::2")
            } else {
                ("192.0.2.1", "192.0.2.2")
            };
            assert_eq!(route.gateway, Some(ip(gateway)), "{}", r.prefix);
            assert_eq!(route.source, Some(ip(source)), "{}", r.prefix);
        }
    }
    assert_eq!(routes[1].probe, ip("52.112.0.1"));
    assert_eq!(routes[3].probe, ip("2603:1063::1"));
}

#[test]
fn policy_routing_and_several_uplinks_are_seen() {
    require_namespaces!();
    let (router, isp) = branch_router();
    // A second uplink (wan1), preferred less in main, alone in table 100 and used for its own source.
    router.ip(&[
        format!("link add wan1 type veth peer name lan1 netns {}", isp.name),
        "addr add 198.51.100.6/30 dev wan1".into(),
        "link set wan1 up".into(),
        "route add default via 198.51.100.5 dev wan1 metric 20".into(),
        "route add default via 198.51.100.5 dev wan1 table 100".into(),
        "rule add from 198.51.100.6 lookup 100".into(),
        "route add default table 200 nexthop via 192.0.2.1 dev wan0 nexthop via 198.51.100.5 dev wan1"
            .into(),
    ]);
    isp.ip(&[
        "addr add 198.51.100.5/30 dev lan1".into(),
        "link set lan1 up".into(),
    ]);
    let (main, by_source, found) = router.enter(|| {
        let teams = ip("52.112.0.1");
        let by_source = route_with(
            teams,
            &RouteQuery {
                source: Some(ip("198.51.100.6")),
                ..RouteQuery::default()
            },
        );
        (route_to(teams), by_source, uplinks())
    });
    let main = main.unwrap();
    assert_eq!((main.interface.name.as_str(), main.table), ("wan0", 254));
    let by_source = by_source.unwrap();
    assert_eq!(
        (
            by_source.interface.name.as_str(),
            by_source.table,
            by_source.gateway
        ),
        ("wan1", 100, Some(ip("198.51.100.5")))
    );
    let mut found: Vec<(bool, String, Option<IpAddr>, u32, u32)> = found
        .unwrap()
        .into_iter()
        .map(|u| (u.ipv6, u.interface.name, u.gateway, u.metric, u.table))
        .collect();
    found.sort_by_key(|u| (u.0, u.4, u.3, u.1.clone()));
    let v4 =
        |name: &str, gw: &str, metric, table| (false, name.to_owned(), Some(ip(gw)), metric, table);
    assert_eq!(
        found,
        [
            v4("wan1", "198.51.100.5", 0, 100),
            v4("wan0", "192.0.2.1", 0, 200),
            v4("wan1", "198.51.100.5", 0, 200),
            v4("wan0", "192.0.2.1", 0, 254),
            v4("wan1", "198.51.100.5", 20, 254),
            (
                true,
                "wan0".to_owned(),
                Some(ip("2001:db8:0:1::1")),
                1024,
                254
            ),
        ]
    );
}
