//! The lab tested as its users see it: every peer answers as Microsoft's (or a middlebox's) would, the
//! relay applies each scenario's delays and loss, and nothing outlives a lab: not after a drop, a
//! panic, Ctrl-C, or a killed process. Needs root (namespaces, TAP devices); without it each test
//! prints why it did nothing.
//!
//! Most tests share one lab with every scenario's office in it (bringing labs up costs seconds on a
//! two-core machine); the teardown tests bring up their own.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use o365probe_core::wire::stun::{Class, Message, Repr, TransactionId};
use o365probe_lab::relay::{read_log, Direction, FrameEvent};
use o365probe_lab::world;
use o365probe_lab::{
    down_all, remove_stale, status, unavailable, Finding, Lab, LabOptions, Office, Scenario,
};

fn skip(test: &str) -> bool {
    match unavailable() {
        Some(reason) => {
            eprintln!("skipping {test}: {reason}");
            true
        }
        None => false,
    }
}

/// One lab with the offices of every scenario, shared by the tests that only look.
fn shared(test: &str) -> Option<&'static Lab> {
    static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
    if skip(test) {
        return None;
    }
    let lab = LAB.get_or_init(|| {
        let scenarios = Scenario::all().map_err(|e| e.to_string())?;
        let options = LabOptions {
            relay_log: true,
            ..LabOptions::default()
        };
        let lab = Lab::up_with(&scenarios, &options).map_err(|e| e.to_string())?;
        eprintln!(
            "lab up with all {} scenarios ({} offices) in {} ms",
            scenarios.len(),
            lab.offices().len(),
            lab.startup().as_millis()
        );
        Ok(lab)
    });
    match lab {
        Ok(lab) => Some(lab),
        Err(e) => panic!("bringing up the shared lab: {e}"),
    }
}

fn office<'a>(lab: &'a Lab, name: &str) -> &'a Office {
    lab.office(name)
        .unwrap_or_else(|| panic!("no office {name} in the lab"))
}

/// `dig +noall +answer` through the office's resolver: (owner, type, data) per answer record.
fn dig(office: &Office, name: &str, rtype: &str) -> Vec<(String, String, String)> {
    let resolver = office.resolver().listen_v4.to_string();
    let out = office
        .run(&[
            "dig",
            "+noall",
            "+answer",
            "+time=3",
            "+tries=2",
            &format!("@{resolver}"),
            name,
            rtype,
        ])
        .unwrap_or_else(|e| panic!("dig {name} {rtype} from {}: {e}", office.name()));
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5).then(|| {
                (
                    f[0].trim_end_matches('.').to_ascii_lowercase(),
                    f[3].to_owned(),
                    f[4..].join(" ").trim_end_matches('.').to_owned(),
                )
            })
        })
        .collect()
}

fn cnames(answers: &[(String, String, String)]) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, t, _)| t == "CNAME")
        .map(|(_, _, d)| d.to_ascii_lowercase())
        .collect()
}

fn addresses(answers: &[(String, String, String)]) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, t, _)| t == "A" || t == "AAAA")
        .map(|(_, _, d)| d.clone())
        .collect()
}

#[test]
fn every_required_scenario_exists_and_expects_only_known_findings() {
    let all = Scenario::all().expect("scenario files load");
    let names: BTreeSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
    for required in [
        "good-office",
        "backhauled-office",
        "far-resolver",
        "tls-inspection",
        "explicit-proxy",
        "udp-blocked",
        "lossy-wan-3pct",
        "slow-far-front-door",
    ] {
        assert!(names.contains(required), "no scenario {required}");
    }
    let good = Scenario::load("good-office").unwrap();
    assert!(good.offices.iter().all(|o| o.expect.is_empty()));
    // Every finding is exercised by some scenario, so an assessment that never emits one is caught.
    let expected: BTreeSet<Finding> = all
        .iter()
        .flat_map(|s| s.offices.iter().flat_map(|o| o.expect.iter().copied()))
        .collect();
    assert_eq!(expected, Finding::ALL.into_iter().collect());
    // Office names become namespace names: unique across files, so any scenarios can share a lab.
    let offices: Vec<&str> = all
        .iter()
        .flat_map(|s| s.offices.iter().map(|o| o.name.as_str()))
        .collect();
    let unique: BTreeSet<&&str> = offices.iter().collect();
    assert_eq!(unique.len(), offices.len(), "{offices:?}");
}

#[test]
fn scenario_round_trips_to_front_doors_fit_the_distances() {
    for scenario in Scenario::all().unwrap() {
        for office in &scenario.offices {
            let here = office.location();
            for rule in &office.relay {
                let Some(fd) = world::FRONT_DOORS
                    .iter()
                    .find(|f| rule.prefix == format!("{}/32", f.v4))
                else {
                    continue;
                };
                if rule.direction == Direction::BtoA || rule.jitter.is_some() {
                    continue; // a deliberately slow path says so with jitter
                }
                let there = fd.location();
                let expected = match &office.backhaul {
                    Some(hq) => world::round_trip_ms(&here, hq) + world::round_trip_ms(hq, &there),
                    None => world::round_trip_ms(&here, &there),
                };
                assert!(
                    (rule.delay_ms - expected).abs() <= 3.0,
                    "{}: {} -> {} is {} ms, the map says {expected:.0}",
                    scenario.name,
                    office.name,
                    fd.code,
                    rule.delay_ms
                );
            }
        }
    }
}

#[test]
fn resolvers_answer_microsoft_chains_with_the_front_door_geodns_picks() {
    let Some(lab) = shared("resolvers_answer_microsoft_chains") else {
        return;
    };
    for (name, code) in [
        ("london-good", "LHR"),
        ("london-far-dns", "ORD"),
        ("dublin-far-fd", "IAD"),
        ("amsterdam-tls", "AMS"),
        ("frankfurt-filtered", "FRA"),
        ("singapore-backhaul", "LHR"),
    ] {
        let office = office(lab, name);
        let fd = world::front_door(code).unwrap();
        let exchange = dig(office, "outlook.office365.com", "A");
        assert_eq!(
            cnames(&exchange),
            [
                "outlook.ha.office365.com".to_owned(),
                "outlook.ms-acdc.office.com".to_owned(),
                fd.exchange_name().to_ascii_lowercase(),
            ],
            "{name}"
        );
        assert_eq!(addresses(&exchange), [fd.v4.to_string()], "{name}");
        // The location code keeps Microsoft's upper case, which agents parse.
        assert!(exchange
            .iter()
            .any(|(_, _, d)| d.starts_with(&format!("{code}-efz"))));
        let six = dig(office, "outlook.office365.com", "AAAA");
        assert_eq!(addresses(&six), [fd.v6.to_string()], "{name}");

        let spo = dig(office, "contoso.sharepoint.com", "A");
        let chain = cnames(&spo);
        assert_eq!(chain.len(), 3, "{name}: {chain:?}");
        assert!(chain[0].ends_with(".aa-rt.sharepoint.com"));
        assert!(chain[1].ends_with(".akadns.net"));
        assert_eq!(chain[2], fd.sharepoint_name());
        assert_eq!(addresses(&spo), [fd.v4.to_string()]);

        // Teams: "world" is anycast whatever the resolver, "worldaz" follows GeoDNS.
        let world_tr = dig(office, "world.tr.teams.microsoft.com", "A");
        assert_eq!(addresses(&world_tr), [world::TEAMS_ANYCAST_V4.to_string()]);
        let worldaz = dig(office, "worldaz.tr.teams.microsoft.com", "A");
        assert_eq!(cnames(&worldaz).last(), Some(&fd.teams_name()));
        assert_eq!(addresses(&worldaz), [fd.v4.to_string()]);
    }
    // Names outside the simulated internet do not exist (and never leave it).
    let nx = office(lab, "london-good")
        .run(&[
            "dig",
            "+short",
            "+time=3",
            "@198.51.100.53",
            "www.example.com",
        ])
        .unwrap();
    assert!(nx.trim().is_empty(), "{nx}");
}

#[test]
fn whoami_names_answer_the_address_of_the_resolver_that_asked() {
    let Some(lab) = shared("whoami_names") else {
        return;
    };
    for name in ["london-good", "london-far-dns", "dublin-far-fd"] {
        let office = office(lab, name);
        let egress = office.resolver().egress_v4.to_string();
        assert_eq!(
            addresses(&dig(office, "whoami.akamai.net", "A")),
            [egress.as_str()]
        );
        let txt = dig(office, "o-o.myaddr.l.google.com", "TXT");
        assert_eq!(txt.len(), 1, "{txt:?}");
        assert_eq!(txt[0].2.trim_matches('"'), egress, "{name}");
        // Not the address the office sends its queries to: what the authoritative server saw.
        assert_ne!(egress, office.resolver().listen_v4.to_string());
    }
}

/// `openssl s_client -showcerts`: the (subject CN, issuer CN) pairs and whether the chain verified
/// against `ca`.
fn tls_chain(office: &Office, addr: IpAddr, sni: &str, ca: &Path) -> (Vec<(String, String)>, bool) {
    let out = office
        .netns()
        .output(&[
            "openssl",
            "s_client",
            "-connect",
            &SocketAddr::new(addr, 443).to_string(),
            "-servername",
            sni,
            "-showcerts",
            "-CAfile",
            &ca.display().to_string(),
        ])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let cn = |line: &str| {
        line.split("CN = ")
            .nth(1)
            .map(|s| s.split(',').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default()
    };
    let mut chain = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.len() > 2 && t.as_bytes()[0].is_ascii_digit() && t[1..].starts_with(" s:") {
            let issuer = lines.next().map(cn).unwrap_or_default();
            chain.push((cn(t), issuer));
        }
    }
    // s_client says "0 (ok)" even when no certificate arrived at all.
    let verified = !chain.is_empty() && text.contains("Verify return code: 0 (ok)");
    (chain, verified)
}

#[test]
fn front_doors_serve_the_microsoft_like_chain() {
    let Some(lab) = shared("front_doors_serve_the_chain") else {
        return;
    };
    let office = office(lab, "london-good");
    for (sni, leaf) in [
        ("outlook.office365.com", "outlook.com"),
        ("contoso.sharepoint.com", "*.sharepoint.com"),
        ("world.tr.teams.microsoft.com", "*.tr.teams.microsoft.com"),
    ] {
        for fd in [&world::FRONT_DOORS[0], world::front_door("SIN").unwrap()] {
            let (chain, verified) = tls_chain(office, fd.v4.into(), sni, lab.trusted_roots());
            assert_eq!(
                chain,
                [
                    (
                        leaf.to_owned(),
                        "Microsoft Azure RSA TLS Issuing CA 03".to_owned()
                    ),
                    (
                        "Microsoft Azure RSA TLS Issuing CA 03".to_owned(),
                        "DigiCert Global Root G2".to_owned()
                    ),
                ],
                "{sni} at {}",
                fd.code
            );
            assert!(
                verified,
                "{sni} at {} does not verify against the lab root",
                fd.code
            );
        }
    }
}

#[test]
fn the_inspection_box_re_signs_every_chain_with_its_own_ca() {
    let Some(lab) = shared("inspection_box") else {
        return;
    };
    let amsterdam = office(lab, "amsterdam-tls");
    let fd = world::front_door("AMS").unwrap();
    let (chain, verified) = tls_chain(
        amsterdam,
        fd.v4.into(),
        "outlook.office365.com",
        lab.trusted_roots(),
    );
    assert!(
        !verified,
        "an inspected chain must not verify against Microsoft's root"
    );
    assert_eq!(
        chain.first().map(|c| c.0.as_str()),
        Some("outlook.com"),
        "{chain:?}"
    );
    assert!(
        chain
            .iter()
            .all(|(_, issuer)| issuer == "Contoso Web Filter CA"),
        "{chain:?}"
    );
    let (_, verified) = tls_chain(
        amsterdam,
        fd.v4.into(),
        "outlook.office365.com",
        lab.inspection_ca(),
    );
    assert!(
        verified,
        "the re-signed chain verifies against the inspection CA"
    );
    // The box sits in this office's path only.
    let (chain, verified) = tls_chain(
        office(lab, "london-good"),
        fd.v4.into(),
        "outlook.office365.com",
        lab.trusted_roots(),
    );
    assert!(verified && chain[0].1 == "Microsoft Azure RSA TLS Issuing CA 03");
}

#[test]
fn the_sni_filter_cuts_sharepoint_and_passes_exchange_untouched() {
    let Some(lab) = shared("sni_filter") else {
        return;
    };
    let office = office(lab, "frankfurt-filtered");
    let fd = world::front_door("FRA").unwrap();
    let (chain, verified) = tls_chain(
        office,
        fd.v4.into(),
        "outlook.office365.com",
        lab.trusted_roots(),
    );
    assert!(verified, "{chain:?}");
    let (chain, verified) = tls_chain(
        office,
        fd.v4.into(),
        "contoso.sharepoint.com",
        lab.trusted_roots(),
    );
    assert!(
        chain.is_empty() && !verified,
        "SharePoint got through: {chain:?}"
    );
    let http = curl(
        office,
        &[
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "Host: contoso.sharepoint.com",
            &format!("http://{}/", fd.v4),
        ],
    );
    assert!(http.starts_with("HTTP/1.1 403"), "{http}");
    assert!(http.contains("Server: squid"), "{http}");
}

/// `curl -sS ARGS` in the office: its stdout (which `-D -` makes the response's status line and
/// headers, `-w` whatever it writes).
fn curl(office: &Office, args: &[&str]) -> String {
    let mut argv = vec!["curl", "-sS"];
    argv.extend(args);
    office
        .run(&argv)
        .unwrap_or_else(|e| panic!("curl {args:?} in {}: {e}", office.name()))
}

/// One STUN Binding request from inside the office; the mapped address, or None on timeout.
fn stun(office: &Office, server: SocketAddr, timeout: Duration) -> Option<SocketAddr> {
    office
        .netns()
        .enter(move || {
            let socket = UdpSocket::bind(if server.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            })
            .ok()?;
            socket.set_read_timeout(Some(timeout)).ok()?;
            let id = TransactionId(*b"o365lab-test");
            let mut request = [0u8; 64];
            let n = Repr::binding_request(id).emit_into(&mut request).ok()?;
            socket.send_to(&request[..n], server).ok()?;
            let mut buf = [0u8; 1500];
            loop {
                let (len, from) = socket.recv_from(&mut buf).ok()?;
                let message = Message::new_checked(&buf[..len]).ok()?;
                let repr = Repr::parse(&message).ok()?;
                if from == server
                    && repr.transaction_id == id
                    && repr.class == Class::SuccessResponse
                {
                    return repr.mapped_address();
                }
            }
        })
        .unwrap()
}

#[test]
fn coturn_answers_binding_requests_on_3478_to_3481_with_the_egress_address() {
    let Some(lab) = shared("coturn_answers") else {
        return;
    };
    let good = office(lab, "london-good");
    for port in world::TEAMS_UDP_PORTS {
        for server in [
            SocketAddr::new(world::TEAMS_ANYCAST_V4.into(), port),
            SocketAddr::new(world::FRONT_DOORS[2].v4.into(), port),
        ] {
            let mapped = stun(good, server, Duration::from_secs(2));
            assert_eq!(mapped.map(|m| m.ip()), Some(good.v4().into()), "{server}");
        }
    }
    let six = stun(
        good,
        SocketAddr::new(world::TEAMS_ANYCAST_V6.into(), 3478),
        Duration::from_secs(2),
    );
    assert_eq!(six.map(|m| m.ip()), Some(good.v6().into()));
    // A backhauled office is seen from its head office's egress.
    let far = office(lab, "singapore-backhaul");
    assert!(far.egress().backhauled);
    let mapped = stun(
        far,
        SocketAddr::new(world::TEAMS_ANYCAST_V4.into(), 3478),
        Duration::from_secs(2),
    );
    assert_eq!(mapped.map(|m| m.ip()), Some(far.egress().v4.into()));
    assert_eq!(far.egress().location.city, "London");
}

#[test]
fn the_udp_blocked_office_gets_no_stun_answer_but_tcp_still_works() {
    let Some(lab) = shared("udp_blocked") else {
        return;
    };
    let blocked = office(lab, "london-udp-blocked");
    for port in world::TEAMS_UDP_PORTS {
        let server = SocketAddr::new(world::TEAMS_ANYCAST_V4.into(), port);
        assert_eq!(
            stun(blocked, server, Duration::from_millis(700)),
            None,
            "{server}"
        );
    }
    let code = curl(
        blocked,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://198.51.100.40/",
        ],
    );
    assert_eq!(code, "200");
}

#[test]
fn the_explicit_proxy_wants_credentials_on_3129_and_the_firewall_forces_it() {
    let Some(lab) = shared("explicit_proxy") else {
        return;
    };
    let auth = office(lab, "london-proxy-auth");
    let url = "http://outlook.office365.com/";
    let proxy = |port: u16| format!("http://{}:{port}", world::PROXY_V4);
    let head = |args: &[&str]| {
        let mut argv = vec!["-o", "/dev/null", "-D", "-"];
        argv.extend(args);
        curl(auth, &argv)
    };
    let denied = head(&["-x", &proxy(world::PROXY_AUTH_PORT), url]);
    assert!(denied.starts_with("HTTP/1.1 407"), "{denied}");
    assert!(denied.contains("Proxy-Authenticate: Basic"), "{denied}");
    let user = format!("{}:{}", world::PROXY_USER, world::PROXY_PASSWORD);
    let passed = head(&["-x", &proxy(world::PROXY_AUTH_PORT), "-U", &user, url]);
    assert!(passed.starts_with("HTTP/1.1 200"), "{passed}");
    // Through the proxy, the proxy's resolver (London) picks the front door.
    assert!(passed.contains("X-O365Lab-Site: LHR"), "{passed}");
    // HTTPS through the open proxy (CONNECT) keeps Microsoft's chain end to end.
    let open = office(lab, "london-proxy");
    assert_eq!(open.proxy_url(), Some(proxy(world::PROXY_OPEN_PORT)));
    let code = curl(
        open,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &lab.trusted_roots().display().to_string(),
            "-x",
            &proxy(world::PROXY_OPEN_PORT),
            "https://outlook.office365.com/",
        ],
    );
    assert_eq!(code, "200");
    // Going direct is refused at once (TCP reset), not left to time out.
    let started = Instant::now();
    let direct = open
        .netns()
        .output(&["curl", "-sS", "--max-time", "5", "http://198.51.100.10/"])
        .unwrap();
    assert_eq!(
        direct.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&direct.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn web_endpoints_answer_200_and_a_proxys_403_and_serve_downloads() {
    let Some(lab) = shared("web_endpoints") else {
        return;
    };
    let office = office(lab, "london-good");
    let ok = curl(office, &["-D", "-", &format!("http://{}/", world::WEB_V4)]);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let forbidden = curl(
        office,
        &[
            "-o",
            "/dev/null",
            "-D",
            "-",
            &format!("http://{}/", world::WEB_FORBIDDEN_V4),
        ],
    );
    assert!(forbidden.starts_with("HTTP/1.1 403"), "{forbidden}");
    assert!(forbidden.contains("Server: squid/"), "{forbidden}");
    let (path, size) = world::DOWNLOADS[1];
    let got = curl(
        office,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{speed_download}",
            "--cacert",
            &lab.trusted_roots().display().to_string(),
            "--resolve",
            &format!("contoso.sharepoint.com:443:{}", world::FRONT_DOORS[0].v4),
            &format!("https://contoso.sharepoint.com{path}"),
        ],
    );
    let mut fields = got.split_whitespace();
    assert_eq!(fields.next(), Some(size.to_string().as_str()));
    // The good office's downlink is 50 Mbit/s: 10 MB cannot arrive faster than that.
    let bytes_per_s: f64 = fields.next().unwrap().parse().unwrap();
    let mbit = bytes_per_s * 8.0 / 1e6;
    eprintln!("download through the relay: {mbit:.1} Mbit/s (limit 50)");
    assert!(mbit < 52.0 && mbit > 20.0, "{mbit} Mbit/s");
}

/// The smallest of `count` ping round trips, in ms.
fn min_ping_ms(office: &Office, dst: IpAddr, count: u32) -> f64 {
    let out = office
        .run(&[
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            &dst.to_string(),
        ])
        .unwrap();
    // rtt min/avg/max/mdev = 2.217/2.271/2.369/0.069 ms
    let stats = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_else(|| panic!("{out}"));
    stats
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_relay_delays_each_destination_as_the_scenario_says() {
    let Some(lab) = shared("relay_delays") else {
        return;
    };
    let fd = |code: &str| IpAddr::from(world::front_door(code).unwrap().v4);
    let cases = [
        ("london-good", fd("LHR")),
        ("london-good", fd("ORD")),
        ("london-good", fd("SIN")),
        (
            "london-far-dns",
            world::resolver_named("chicago").unwrap().listen_v4.into(),
        ),
        ("singapore-backhaul", fd("LHR")),
        ("london-good", world::front_door("ORD").unwrap().v6.into()),
    ];
    for (name, dst) in cases {
        let office = office(lab, name);
        let configured = office.configured_rtt_ms(dst);
        assert!(configured > 1.0, "{name} -> {dst}: no rule");
        let measured = min_ping_ms(office, dst, 5);
        eprintln!("{name} -> {dst}: configured {configured} ms, measured {measured:.2} ms");
        assert!(
            measured >= configured - 0.2 && measured <= configured + 5.0,
            "{name} -> {dst}: configured {configured} ms, measured {measured} ms"
        );
    }
}

#[test]
fn the_relay_log_records_each_frame_with_the_delay_the_scenario_gave_it() {
    let Some(lab) = shared("relay_log") else {
        return;
    };
    let office = office(lab, "london-far-dns");
    let ord = world::front_door("ORD").unwrap();
    let server = SocketAddr::new(ord.v4.into(), 3479);
    for _ in 0..3 {
        let started = Instant::now();
        assert!(stun(office, server, Duration::from_secs(2)).is_some());
        assert!(started.elapsed() >= Duration::from_millis(93));
    }
    // The log is flushed when the relay idles; other tests may keep it busy for a while.
    let log = office.relay_log().expect("the shared lab logs frames");
    let deadline = Instant::now() + Duration::from_secs(10);
    let requests = loop {
        let records = read_log(log).unwrap_or_default();
        let requests: Vec<_> = records
            .into_iter()
            .filter(|r| {
                r.dir == Direction::AtoB && r.dst == Some(ord.v4.into()) && r.dport == Some(3479)
            })
            .collect();
        if requests.len() >= 3 || Instant::now() > deadline {
            break requests;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(requests.len(), 3, "{requests:?}");
    for r in &requests {
        assert_eq!(r.event, FrameEvent::Forwarded);
        assert_eq!(r.delay_ns, Some(93_000_000), "{r:?}");
        let rule = &office.relay_rules()[r.rule.unwrap()];
        assert_eq!(rule.prefix, format!("{}/32", ord.v4));
    }
}

#[test]
fn the_lossy_wan_loses_about_six_percent_of_round_trips() {
    let Some(lab) = shared("lossy_wan") else {
        return;
    };
    let lossy = office(lab, "london-lossy");
    // ping exits 1 when replies are missing; its summary is what counts.
    let out = lossy
        .netns()
        .output(&[
            "ping",
            "-n",
            "-q",
            "-c",
            "400",
            "-i",
            "0.005",
            "-W",
            "1",
            "198.51.100.10",
        ])
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let loss: f64 = out
        .split(',')
        .find(|f| f.contains("packet loss"))
        .and_then(|f| f.trim().split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    eprintln!("lossy WAN: {loss} % of 400 pings lost (3 % each way: 5.9 % expected)");
    assert!((2.0..=11.0).contains(&loss), "{loss} %");
    // The same path without the lossy line loses nothing.
    let clean = office(lab, "london-good")
        .run(&[
            "ping",
            "-n",
            "-q",
            "-c",
            "100",
            "-i",
            "0.005",
            "198.51.100.10",
        ])
        .unwrap();
    assert!(clean.contains(" 0% packet loss"), "{clean}");
}

#[test]
fn agent_configs_name_the_lab_resolver_roots_proxy_and_resolvable_targets() {
    let Some(lab) = shared("agent_configs") else {
        return;
    };
    for office in lab.offices() {
        let text = std::fs::read_to_string(office.agent_config_path()).unwrap();
        assert_eq!(text, office.agent_config());
        let config: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            config["dns"]["resolver"].as_str(),
            Some(office.resolver().listen_v4.to_string().as_str())
        );
        assert_eq!(
            config["tls"]["trusted_roots"].as_str().map(Path::new),
            Some(lab.trusted_roots())
        );
        assert_eq!(
            config["http"]
                .get("proxy")
                .and_then(|p| p.as_str())
                .map(String::from),
            office.proxy_url()
        );
        let location = office.location();
        assert_eq!(
            config["agent"]["location"].as_str(),
            Some(format!("{},{}", location.lat, location.lon).as_str())
        );
        // The prefix file places this office's egress and its resolver where they really are.
        let geo = std::fs::read_to_string(config["geo"]["prefixes"].as_str().unwrap()).unwrap();
        let place = |addr: String| {
            geo.lines()
                .find(|l| l.starts_with(&format!("{addr},")))
                .unwrap_or_else(|| panic!("{addr} not in the geo file"))
                .to_owned()
        };
        let egress = office.egress();
        assert!(place(egress.v4.to_string())
            .contains(&format!(",{} {}", egress.location.lat, egress.location.lon)));
        let resolver = office.resolver();
        assert!(place(resolver.egress_v4.to_string())
            .contains(&format!(",{} {}", resolver.lat, resolver.lon)));
        let targets = config["target"].as_array().unwrap();
        let hosts: Vec<&str> = targets.iter().filter_map(|t| t["host"].as_str()).collect();
        assert_eq!(
            hosts,
            [
                "outlook.office365.com",
                "contoso.sharepoint.com",
                "world.tr.teams.microsoft.com"
            ]
        );
        if office.name() == "london-good" {
            for host in hosts {
                assert!(!addresses(&dig(office, host, "A")).is_empty(), "{host}");
            }
        }
    }
}

/// Whether a process is gone. A zombie counts as gone: it holds nothing but its pid until whoever
/// inherited it (init, here a container's process manager) reaps it.
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Which of `pids` are still there after a grace period: a process killed a moment ago may still be
/// exiting (out of its namespace already, not yet a zombie).
fn survivors(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| !gone(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything of a lab a user could find afterwards: namespaces, processes inside them, and processes
/// (the relays) whose command line points into its directory.
fn traces(prefix: &str, dir: &Path) -> (Vec<String>, Vec<i32>) {
    let namespaces: Vec<String> = status()
        .unwrap()
        .into_iter()
        .filter(|l| l.prefix == prefix)
        .flat_map(|l| l.namespaces.into_iter().map(|(n, _)| n))
        .collect();
    let needle = format!("{}/", dir.display());
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                && !gone(*pid)
        })
        .collect();
    (namespaces, pids)
}

#[test]
fn dropping_a_lab_leaves_no_namespace_process_or_file() {
    if skip("dropping_a_lab") {
        return;
    }
    let lab = Lab::scenario("good-office").unwrap();
    eprintln!(
        "lab up with one scenario in {} ms",
        lab.startup().as_millis()
    );
    let (prefix, dir) = (lab.prefix().to_owned(), lab.dir().to_owned());
    let (namespaces, relays) = traces(&prefix, &dir);
    assert_eq!(namespaces.len(), 3, "{namespaces:?}");
    assert!(
        !relays.is_empty(),
        "the relay runs with its config from the lab directory"
    );
    let inside: Vec<i32> = lab.internet().pids();
    assert!(
        inside.len() >= 6,
        "peers in the internet namespace: {inside:?}"
    );
    let problems = lab.down();
    assert!(problems.is_empty(), "{problems:?}");
    let (namespaces, processes) = traces(&prefix, &dir);
    assert!(namespaces.is_empty(), "{namespaces:?}");
    assert!(processes.is_empty(), "{processes:?}");
    let all: Vec<i32> = inside.iter().chain(&relays).copied().collect();
    assert_eq!(survivors(&all), Vec::<i32>::new());
    assert!(!dir.exists());
}

#[test]
fn a_panicking_test_still_tears_its_lab_down() {
    if skip("a_panicking_test") {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let lab = Lab::scenario("udp-blocked").unwrap();
        tx.send((
            lab.prefix().to_owned(),
            lab.dir().to_owned(),
            lab.internet().pids(),
        ))
        .unwrap();
        panic!("a test fails with its lab up");
    });
    assert!(outcome.is_err());
    let (prefix, dir, inside) = rx.recv().unwrap();
    let (namespaces, processes) = traces(&prefix, &dir);
    assert!(
        namespaces.is_empty() && processes.is_empty(),
        "{namespaces:?} {processes:?}"
    );
    assert_eq!(survivors(&inside), Vec::<i32>::new());
    assert!(!dir.exists());
}

/// `o365lab up --scenario NAME` in another process, as a person would run it; whatever a test does
/// with it, dropping this makes sure the process is gone.
struct ByHand {
    child: std::process::Child,
    prefix: String,
    dir: std::path::PathBuf,
}

impl ByHand {
    /// Starts it and waits for it to say the lab is up.
    fn up(scenario: &str) -> ByHand {
        let mut child = Command::new(env!("CARGO_BIN_EXE_o365lab"))
            .args(["up", "--scenario", scenario])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if first.is_none() {
                    first = Some(line.clone());
                }
                if line.starts_with("Ctrl-C tears") {
                    let _ = tx.send(first.take().unwrap_or_default());
                }
            }
        });
        let mut by_hand = ByHand {
            child,
            prefix: String::new(),
            dir: Default::default(),
        };
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("o365lab up never said the lab was up");
        // "lab o365lab-PID-N (directory /tmp/o365lab-PID-N), up in … ms"
        by_hand.prefix = first.split_whitespace().nth(1).unwrap().to_owned();
        by_hand.dir = first
            .split("(directory ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap()
            .into();
        by_hand
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for ByHand {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGCONT);
            self.signal(libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Tests that look at a lab from another process: inside a user namespace (`unshare -rn`) each
/// process keeps its namespaces to itself, so there is nothing to see.
fn skip_cross_process(test: &str) -> bool {
    if skip(test) {
        return true;
    }
    if !o365probe_lab::shared_between_processes() {
        eprintln!(
            "skipping {test}: in a user namespace, labs are private to the process that made them"
        );
        return true;
    }
    false
}

#[test]
fn ctrl_c_tears_down_a_lab_brought_up_by_hand() {
    if skip_cross_process("ctrl_c_tears_down") {
        return;
    }
    let mut lab = ByHand::up("explicit-proxy");
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    assert_eq!(traces(&prefix, &dir).0.len(), 3);
    lab.signal(libc::SIGINT);
    let status = lab.child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let (namespaces, processes) = traces(&prefix, &dir);
    assert!(
        namespaces.is_empty() && processes.is_empty(),
        "{namespaces:?} {processes:?}"
    );
    assert!(!dir.exists());
}

#[test]
fn down_removes_a_lab_running_elsewhere() {
    if skip_cross_process("down_removes_a_lab_running_elsewhere") {
        return;
    }
    let lab = ByHand::up("far-resolver"); // dropping it kills the frozen process
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    // Frozen, its owner is alive: only an explicit `down` may remove the lab.
    lab.signal(libc::SIGSTOP);
    let (namespaces, processes) = traces(&prefix, &dir);
    assert_eq!(namespaces.len(), 3, "{namespaces:?}");
    assert!(
        !processes.is_empty(),
        "the relay runs from the lab directory"
    );
    let removed = down_all(&prefix).unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    let (namespaces, processes) = traces(&prefix, &dir);
    assert!(
        namespaces.is_empty() && processes.is_empty(),
        "{namespaces:?} {processes:?}"
    );
    assert!(!dir.exists());
}

#[test]
fn leftovers_of_a_killed_lab_process_are_removed() {
    if skip_cross_process("leftovers_of_a_killed_lab_process") {
        return;
    }
    let mut lab = ByHand::up("tls-inspection");
    let (prefix, dir) = (lab.prefix.clone(), lab.dir.clone());
    lab.child.kill().unwrap();
    lab.child.wait().unwrap();
    // SIGKILL leaves no time to clean up. Relays and most daemons die with their parent (squid,
    // which drops privileges, does not); the namespaces stay until the next lab start (or
    // `o365lab down`) sees that their owner is gone. (A lab starting in another test may get there
    // first: the outcome is the same.)
    remove_stale().unwrap();
    let (namespaces, processes) = traces(&prefix, &dir);
    assert!(namespaces.is_empty(), "{namespaces:?}");
    assert_eq!(survivors(&processes), Vec::<i32>::new());
    assert!(!dir.exists());
}
