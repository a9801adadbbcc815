//! A running lab: the namespaces (one per office, the internet, the collector), the WAN relays, the
//! peers, and the teardown that removes all of it when the [`Lab`] is dropped, when the process is
//! interrupted (SIGINT, SIGTERM, SIGHUP), when it exits with a lab still alive (a `static`), or at
//! the next start after a crash.
//!
//! ```text
//!   office ns "PREFIX-NAME"          relay (o365lab-relay)          internet ns "PREFIX-inet"
//!   wan0 192.0.2.8k+2/29  ─── TAP ═══ delay, loss, ... ═══ TAP ───  ok 192.0.2.8k+1/29
//!   default route → .8k+1                                           lo: every service address
//!                                                                   nftables: middleboxes, firewalls,
//!                                                                   head-office NAT
//!   collector ns "PREFIX-coll"  wan0 203.0.113.10/30 ─── veth ───   c0 203.0.113.9/30
//! ```
//!
//! PREFIX is `o365lab-PID-N`: unique per lab in this process, and it names the owner, so leftovers of
//! a crashed process are recognised and removed.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

use crate::netns::{self, Netns};
use crate::peers;
use crate::pki::{fnv1a, Pki};
use crate::relay::{Direction, Endpoint, RelayConfig, Rule};
use crate::scenario::{Finding, Middlebox, OfficeSpec, ProxyMode, Scenario};
use crate::world::{self, Location, Resolver};
use crate::LabError;

/// Every lab namespace, directory and process command line starts with this.
pub const PREFIX: &str = "o365lab-";

/// How a lab is brought up.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Have each relay write its per-frame JSON Lines log (the ground truth for accuracy tests).
    pub relay_log: bool,
    /// Seeds the relays' random decisions (mixed with each office's name).
    pub seed: u64,
    /// The `o365lab-relay` binary; default `$O365LAB_RELAY`, else beside the running executable.
    pub relay_binary: Option<PathBuf>,
    /// How long peers and relays may take to start.
    pub ready_timeout: Duration,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            relay_log: false,
            seed: 1,
            relay_binary: None,
            ready_timeout: Duration::from_secs(20),
        }
    }
}

/// Where an office's traffic meets the internet.
#[derive(Debug, Clone, PartialEq)]
pub struct Egress {
    /// The source address the internet sees (what STUN's XOR-MAPPED-ADDRESS reports).
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub location: Location,
    /// True when that is a head office far away, not the office itself.
    pub backhauled: bool,
}

/// One branch office: its namespace (the router the agent runs on), addresses, and what the
/// scenario says about it.
#[derive(Debug)]
pub struct Office {
    spec: OfficeSpec,
    scenario: String,
    index: usize,
    netns: Netns,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    gateway_v4: Ipv4Addr,
    gateway_v6: Ipv6Addr,
    egress: Egress,
    resolver: &'static Resolver,
    agent_config_path: PathBuf,
    trusted_roots: PathBuf,
    relay_log: Option<PathBuf>,
}

impl Office {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The scenario file the office comes from.
    pub fn scenario(&self) -> &str {
        &self.scenario
    }

    pub fn spec(&self) -> &OfficeSpec {
        &self.spec
    }

    /// Where the office is (what the collector compares distances from).
    pub fn location(&self) -> Location {
        self.spec.location()
    }

    /// What an assessment of this office must find, and nothing else.
    pub fn expected_findings(&self) -> &[Finding] {
        &self.spec.expect
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The office router's WAN addresses.
    pub fn v4(&self) -> Ipv4Addr {
        self.v4
    }

    pub fn v6(&self) -> Ipv6Addr {
        self.v6
    }

    /// The internet side of the office's WAN link (its default gateway).
    pub fn gateway(&self) -> (Ipv4Addr, Ipv6Addr) {
        (self.gateway_v4, self.gateway_v6)
    }

    /// Where the office reaches the internet.
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// The recursive resolver the office is configured with.
    pub fn resolver(&self) -> &'static Resolver {
        self.resolver
    }

    /// The WAN relay's rules, in the order it tries them.
    pub fn relay_rules(&self) -> &[Rule] {
        &self.spec.relay
    }

    /// The relay's frame log, when [`LabOptions::relay_log`] asked for one.
    pub fn relay_log(&self) -> Option<&Path> {
        self.relay_log.as_deref()
    }

    /// The relay's name for the internet side of this office's link.
    pub fn internet_ifname(&self) -> String {
        format!("o{}", self.index)
    }

    /// The explicit proxy the office must use, as a URL (never with credentials).
    pub fn proxy_url(&self) -> Option<String> {
        self.spec.proxy.map(|mode| {
            let port = match mode {
                ProxyMode::Open => world::PROXY_OPEN_PORT,
                ProxyMode::Auth => world::PROXY_AUTH_PORT,
            };
            format!("http://{}:{port}", world::PROXY_V4)
        })
    }

    /// The round trip the relay adds between this office and `dst`: the first rule covering each
    /// direction (out to `dst`, back to the office). Jitter and loss aside.
    pub fn configured_rtt_ms(&self, dst: IpAddr) -> f64 {
        let back_to: IpAddr = if dst.is_ipv4() {
            self.v4.into()
        } else {
            self.v6.into()
        };
        let delay = |way: Direction, addr: IpAddr| {
            self.spec
                .relay
                .iter()
                .find(|r| r.applies_to(way, addr))
                .map_or(0.0, |r| r.delay_ms)
        };
        delay(Direction::AtoB, dst) + delay(Direction::BtoA, back_to)
    }

    /// The agent configuration for this office: its resolver, the lab's Microsoft-like root as the
    /// trusted roots, the proxy when there is one, and the Exchange, SharePoint and Teams targets.
    pub fn agent_config(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let location = self.location();
        let proxy = self
            .proxy_url()
            .map(|url| format!("proxy = {}\n", quote(&url)))
            .unwrap_or_default();
        let geo = self
            .agent_config_path
            .parent()
            .map(|dir| dir.join(GEO_FILE))
            .unwrap_or_else(|| PathBuf::from(GEO_FILE));
        format!(
            "# o365probe agent configuration for office {name} ({city}), lab scenario {scenario}.\n\
             # Generated by the lab: every address is inside the lab's namespaces.\n\
             # Expected findings: [{expect}]\n\n\
             [agent]\noffice = {name}\nlocation = \"{lat},{lon}\"\nstate_dir = {state}\n\n\
             [dns]\nresolver = \"{resolver}\"\n\n\
             [tls]\ntrusted_roots = {roots}\n\n\
             [http]\n{proxy}\n\
             [geo]\nprefixes = {geo}\n\n\
             [[target]]\nhost = \"outlook.office365.com\"\nservice = \"exchange\"\ncategory = \"optimize\"\ntcp = [443]\nrequired = true\n\n\
             [[target]]\nhost = \"{tenant}.sharepoint.com\"\nservice = \"sharepoint\"\ncategory = \"optimize\"\ntcp = [443]\nrequired = true\n\n\
             [[target]]\nhost = \"world.tr.teams.microsoft.com\"\nservice = \"teams\"\ncategory = \"optimize\"\nudp = [3478]\nrequired = true\n",
            name = quote(self.name()),
            city = self.spec.city,
            scenario = quote(&self.scenario),
            expect = self
                .spec
                .expect
                .iter()
                .map(|f| f.code())
                .collect::<Vec<_>>()
                .join(", "),
            lat = location.lat,
            lon = location.lon,
            state = quote(&self.state_dir().display().to_string()),
            resolver = self.resolver.listen_v4,
            roots = quote(&self.trusted_roots.display().to_string()),
            geo = quote(&geo.display().to_string()),
            tenant = world::TENANT,
        )
    }

    /// The agent's state directory for this office (its ClientRequestId, caches, spool), in the lab's
    /// directory so teardown removes it.
    pub fn state_dir(&self) -> PathBuf {
        let dir = self.agent_config_path.parent().unwrap_or(Path::new("."));
        dir.join(format!("{}.state", self.spec.name))
    }

    /// Where [`Office::agent_config`] was written.
    pub fn agent_config_path(&self) -> &Path {
        &self.agent_config_path
    }

    /// `program` inside the office namespace (see [`Netns::command`]).
    pub fn command(&self, program: &str) -> Command {
        self.netns.command(program)
    }

    /// Runs `argv` in the office namespace; its stdout, or an error with its stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String, LabError> {
        self.netns.run(argv)
    }

    /// Starts a long-running process in the office (built with [`Office::command`]).
    pub fn spawn(&self, cmd: Command) -> Result<Child, LabError> {
        self.netns.spawn(cmd)
    }
}

/// A running lab. Dropping it tears everything down (its teardown record does, dropped with it).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    internet: Netns,
    collector: Netns,
    offices: Vec<Office>,
    resolvers: Vec<&'static Resolver>,
    trusted_roots: PathBuf,
    inspection_ca: PathBuf,
    startup: Duration,
    teardown: Arc<Teardown>,
}

impl Lab {
    /// Brings up the offices of one scenario file (`tests/scenarios/NAME.toml`).
    pub fn scenario(name: &str) -> Result<Lab, LabError> {
        Lab::up(&[Scenario::load(name)?])
    }

    /// Brings up every office of these scenarios in one lab.
    pub fn up(scenarios: &[Scenario]) -> Result<Lab, LabError> {
        Lab::up_with(scenarios, &LabOptions::default())
    }

    pub fn up_with(scenarios: &[Scenario], options: &LabOptions) -> Result<Lab, LabError> {
        let started = Instant::now();
        if let Some(reason) = unavailable() {
            return Err(LabError::NotPermitted(reason));
        }
        check_tools()?;
        install_handlers();
        let _ = remove_stale();

        let specs: Vec<(String, OfficeSpec)> = scenarios
            .iter()
            .flat_map(|s| s.offices.iter().map(|o| (s.name.clone(), o.clone())))
            .collect();
        if specs.is_empty() {
            return Err(LabError::Scenario {
                name: "(none)".into(),
                message: "a lab needs at least one office".into(),
            });
        }
        if specs.len() > world::MAX_OFFICES {
            return Err(LabError::Scenario {
                name: "(all)".into(),
                message: format!(
                    "{} offices; a lab holds {}",
                    specs.len(),
                    world::MAX_OFFICES
                ),
            });
        }
        for (i, (scenario, o)) in specs.iter().enumerate() {
            if specs[..i].iter().any(|(_, p)| p.name == o.name) {
                return Err(LabError::Scenario {
                    name: scenario.clone(),
                    message: format!("office name {:?} is used twice in this lab", o.name),
                });
            }
        }
        let relay_binary = relay_binary(options)?;
        let pki = Pki::cached()?;

        static LABS: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&prefix);
        let teardown = Arc::new(Teardown::new(prefix.clone(), dir.clone()));
        register(&teardown);
        mkdir(&dir)?;

        let internet = Netns::named(&format!("{prefix}-inet"))?;
        let collector = Netns::named(&format!("{prefix}-coll"))?;
        let copy = |from: PathBuf, name: &str| -> Result<PathBuf, LabError> {
            let to = dir.join(name);
            std::fs::copy(&from, &to).map_err(|source| LabError::Io {
                what: format!("copying {}", from.display()),
                source,
            })?;
            Ok(to)
        };
        let trusted_roots = copy(pki.root(), "roots.pem")?;
        let inspection_ca = copy(pki.inspection_ca(), "inspection-ca.pem")?;

        let mut offices = Vec::new();
        for (index, (scenario, spec)) in specs.into_iter().enumerate() {
            let ((gateway_v4, v4), (gateway_v6, v6)) = world::office_link(index);
            let egress = match &spec.backhaul {
                Some(hq) => {
                    let (e4, e6) = world::hq_egress(index);
                    Egress {
                        v4: e4,
                        v6: e6,
                        location: hq.clone(),
                        backhauled: true,
                    }
                }
                None => Egress {
                    v4,
                    v6,
                    location: spec.location(),
                    backhauled: false,
                },
            };
            let resolver =
                world::resolver_named(&spec.resolver).ok_or_else(|| LabError::Scenario {
                    name: scenario.clone(),
                    message: format!("unknown resolver {:?}", spec.resolver),
                })?;
            offices.push(Office {
                netns: Netns::named(&format!("{prefix}-{}", spec.name))?,
                agent_config_path: dir.join(format!("{}.o365probe.toml", spec.name)),
                relay_log: options
                    .relay_log
                    .then(|| dir.join(format!("relay-{}.jsonl", spec.name))),
                trusted_roots: trusted_roots.clone(),
                spec,
                scenario,
                index,
                v4,
                v6,
                gateway_v4,
                gateway_v6,
                egress,
                resolver,
            });
        }
        let mut resolvers: Vec<&'static Resolver> = offices.iter().map(|o| o.resolver).collect();
        resolvers.extend(world::resolver_named(world::PROXY_RESOLVER));
        resolvers.sort_by_key(|r| r.name);
        resolvers.dedup_by_key(|r| r.name);

        let mut lab = Lab {
            prefix,
            dir,
            internet,
            collector,
            offices,
            resolvers,
            trusted_roots,
            inspection_ca,
            startup: Duration::ZERO,
            teardown,
        };
        lab.build(&pki, &relay_binary, options)?;
        lab.startup = started.elapsed();
        Ok(lab)
    }

    fn build(&self, pki: &Pki, relay_binary: &Path, options: &LabOptions) -> Result<(), LabError> {
        // O365LAB_TRACE=1 prints how long each phase took: start-up time is what every test pays.
        let started = Instant::now();
        let trace = std::env::var_os("O365LAB_TRACE").is_some();
        let phase = |name: &str| {
            if trace {
                eprintln!("o365lab: {name} at {} ms", started.elapsed().as_millis());
            }
        };
        let mut all: Vec<&Netns> = vec![&self.internet, &self.collector];
        all.extend(self.offices.iter().map(|o| &o.netns));
        // Recorded before they exist: a failure half-way still removes whatever was made.
        self.teardown
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(all.iter().map(|n| (*n).clone()));
        netns::create(&all)?;
        phase("namespaces created");

        // Without DAD, IPv6 addresses are usable at once instead of a second later.
        let quiet = [
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.all.accept_dad", "0"),
        ];
        for ns in &all {
            netns::sysctl(ns, &quiet)?;
            // Unprivileged ping sockets for every group, as a router's agent may use them; a user
            // namespace only maps its own groups, and there the agent is root anyway.
            let _ = netns::sysctl(ns, &[("net.ipv4.ping_group_range", "0 2147483647")]);
        }
        netns::sysctl(
            &self.internet,
            &[
                ("net.ipv4.ip_unprivileged_port_start", "0"),
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv6.conf.all.forwarding", "1"),
            ],
        )?;

        let mut lines = vec!["link set lo up".to_owned()];
        for a in world::internet_hosts() {
            lines.push(match a {
                IpAddr::V4(a) => format!("addr add {a}/32 dev lo"),
                IpAddr::V6(a) => format!("addr add {a}/128 dev lo nodad"),
            });
        }
        lines.extend([
            format!(
                "link add c0 type veth peer name wan0 netns {}",
                self.collector.name()
            ),
            "addr add 203.0.113.9/30 dev c0".into(),
            "addr add 2001:db8:113::11/127 dev c0 nodad".into(),
            "link set c0 up".into(),
        ]);
        netns::ip_batch(Some(&self.internet), &lines)?;
        netns::ip_batch(
            Some(&self.collector),
            &[
                "link set lo up".into(),
                format!("addr add {}/30 dev wan0", world::COLLECTOR_V4),
                format!("addr add {}/127 dev wan0 nodad", world::COLLECTOR_V6),
                "link set wan0 up".into(),
                "route add default via 203.0.113.9".into(),
                "route add default via 2001:db8:113::11".into(),
            ],
        )?;
        let nft = self.dir.join("internet.nft");
        write_file(&nft, &self.nftables())?;
        netns::run({
            let mut c = self.internet.command("nft");
            c.arg("-f").arg(&nft);
            c
        })?;

        // Peers first (they only need the internet's loopback), relays while they start.
        let logs = self.dir.join("logs");
        mkdir(&logs)?;
        phase("internet and collector configured");
        let middleboxes: Vec<peers::MiddleboxSite> = self
            .offices
            .iter()
            .filter_map(|o| {
                Some(peers::MiddleboxSite {
                    office: o.name(),
                    index: o.index,
                    kind: o.spec.middlebox?,
                    resolver: o.resolver,
                })
            })
            .collect();
        let peers = peers::prepare(&self.dir, pki, &self.resolvers, &middleboxes)?;
        for peer in &peers {
            for argv in &peer.setup {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                netns::run(c)?;
            }
            if let Some(dir) = &peer.proxy_user_dir {
                give_to_proxy_user(dir);
            }
        }
        for peer in &peers {
            let mut cmd = self.internet.command(&peer.argv[0]);
            cmd.args(&peer.argv[1..]).stdin(Stdio::null());
            let log = logs.join(format!("{}.log", peer.name));
            redirect_output(&mut cmd, &log)?;
            let child = netns::spawn(cmd)?;
            self.teardown.adopt(&peer.name, child, false);
        }
        phase("peers started");
        let mut relays = Vec::new();
        for office in &self.offices {
            relays.push(self.start_relay(office, relay_binary, options, &logs)?);
        }
        let deadline = Instant::now() + options.ready_timeout;
        for (office, ready) in self.offices.iter().zip(relays) {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = ready
                .recv_timeout(left)
                .unwrap_or_else(|_| Err("no \"ready\" in time".into()));
            outcome.map_err(|message| LabError::Relay {
                office: office.name().to_owned(),
                message: format!(
                    "{message}; its log ends:\n{}",
                    tail(&logs.join(format!("relay-{}.log", office.name())))
                ),
            })?;
        }
        phase("relays ready");
        let mut inet = Vec::new();
        for office in &self.offices {
            let ifname = office.internet_ifname();
            inet.push(format!("addr add {}/29 dev {ifname}", office.gateway_v4));
            inet.push(format!(
                "addr add {}/64 dev {ifname} nodad",
                office.gateway_v6
            ));
            if office.egress.backhauled {
                // Replies to the head-office address are routed before NAT turns them back into
                // replies to the office: without a route they would be dropped as unroutable.
                let (e4, e6) = (office.egress.v4, office.egress.v6);
                inet.push(format!("route add {e4}/32 via {} dev {ifname}", office.v4));
                inet.push(format!("route add {e6}/128 via {} dev {ifname}", office.v6));
            }
            netns::ip_batch(
                Some(&office.netns),
                &[
                    "link set lo up".into(),
                    format!("addr add {}/29 dev wan0", office.v4),
                    format!("addr add {}/64 dev wan0 nodad", office.v6),
                    format!("route add default via {}", office.gateway_v4),
                    format!("route add default via {}", office.gateway_v6),
                ],
            )?;
        }
        netns::ip_batch(Some(&self.internet), &inet)?;

        phase("links configured");
        self.wait_for_peers(&peers, deadline, &logs, &phase)?;
        phase("peers ready");
        write_file(&self.dir.join(GEO_FILE), &geo_csv(&self.offices))?;
        for office in &self.offices {
            write_file(&office.agent_config_path, &office.agent_config())?;
        }
        Ok(())
    }

    /// Starts one office's relay; the receiver says when it printed "ready" (or why it did not).
    fn start_relay(
        &self,
        office: &Office,
        binary: &Path,
        options: &LabOptions,
        logs: &Path,
    ) -> Result<mpsc::Receiver<Result<(), String>>, LabError> {
        let config = RelayConfig {
            side_a: Endpoint {
                netns: office.netns.name().to_owned(),
                ifname: "wan0".into(),
                mtu: 1500,
            },
            side_b: Endpoint {
                netns: self.internet.name().to_owned(),
                ifname: office.internet_ifname(),
                mtu: 1500,
            },
            rules: office.spec.relay.clone(),
            seed: options.seed ^ fnv1a(office.name()),
            log: office.relay_log.clone(),
        };
        let path = self.dir.join(format!("relay-{}.toml", office.name()));
        write_file(&path, &config.to_toml())?;
        let mut cmd = Command::new(binary);
        cmd.arg(&path).stdin(Stdio::null()).stdout(Stdio::piped());
        let log = logs.join(format!("relay-{}.log", office.name()));
        let err = std::fs::File::create(&log).map_err(|source| LabError::Io {
            what: format!("creating {}", log.display()),
            source,
        })?;
        cmd.stderr(err);
        let mut child = netns::spawn(cmd)?;
        let stdout = child.stdout.take();
        self.teardown
            .adopt(&format!("relay-{}", office.name()), child, true);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else {
                let _ = tx.send(Err("no stdout".into()));
                return;
            };
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let outcome = match reader.read_line(&mut line) {
                Ok(_) if line.trim() == "ready" => Ok(()),
                Ok(_) => Err(format!("it said {:?} instead of \"ready\"", line.trim())),
                Err(e) => Err(format!("reading its stdout: {e}")),
            };
            let _ = tx.send(outcome);
            // Keep the pipe open (and drained) for the relay's whole life.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        Ok(rx)
    }

    fn wait_for_peers(
        &self,
        peers: &[peers::Peer],
        deadline: Instant,
        logs: &Path,
        trace: &dyn Fn(&str),
    ) -> Result<(), LabError> {
        let mut pending: Vec<(String, SocketAddr)> = peers
            .iter()
            .flat_map(|p| p.ready.iter().map(|a| (p.name.clone(), *a)))
            .collect();
        loop {
            let left = self
                .internet
                .enter(|| {
                    pending
                        .iter()
                        .filter(|(_, a)| {
                            TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err()
                        })
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .map_err(|source| LabError::Io {
                    what: "entering the internet namespace".into(),
                    source,
                })?;
            for (name, _) in &pending {
                if !left.iter().any(|(n, _)| n == name) {
                    trace(&format!("{name} ready"));
                }
            }
            pending = left;
            if pending.is_empty() {
                return Ok(());
            }
            let died = pending
                .iter()
                .find_map(|(name, _)| Some((name.clone(), self.teardown.exited(name)?)));
            if died.is_some() || Instant::now() > deadline {
                let (name, detail) = match died {
                    Some((name, status)) => (name, format!("it exited ({status})")),
                    None => (
                        pending[0].0.clone(),
                        format!("{} refused connections", pending[0].1),
                    ),
                };
                return Err(LabError::NotReady {
                    log: tail(&logs.join(format!("{name}.log"))),
                    peer: name,
                    detail,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The internet namespace's firewall: middleboxes (redirects to squid), office firewalls, and
    /// head-office source NAT for backhauled offices.
    fn nftables(&self) -> String {
        let (mut pre, mut filter, mut nat) = (String::new(), String::new(), String::new());
        for o in &self.offices {
            let i = o.internet_ifname();
            let (tls, http, _) = peers::middlebox_ports(o.index);
            match o.spec.middlebox {
                Some(Middlebox::TlsInspection) => pre.push_str(&format!(
                    "    iifname \"{i}\" tcp dport 443 redirect to :{tls}\n"
                )),
                Some(Middlebox::SniFilter) => pre.push_str(&format!(
                    "    iifname \"{i}\" tcp dport 443 redirect to :{tls}\n    iifname \"{i}\" tcp dport 80 redirect to :{http}\n"
                )),
                None => {}
            }
            if o.spec.proxy.is_some() {
                filter.push_str(&format!(
                    "    iifname \"{i}\" tcp dport {{ 80, 443 }} reject with tcp reset\n"
                ));
            }
            if let Some([first, last]) = o.spec.block_udp {
                filter.push_str(&format!(
                    "    iifname \"{i}\" udp dport {first}-{last} drop\n"
                ));
            }
            if o.egress.backhauled {
                nat.push_str(&format!(
                    "    iifname \"{i}\" meta nfproto ipv4 snat ip to {}\n    iifname \"{i}\" meta nfproto ipv6 snat ip6 to {}\n",
                    o.egress.v4, o.egress.v6
                ));
            }
        }
        format!(
            "table inet o365lab {{\n\
             chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{pre}}}\n\
             chain input {{\n    type filter hook input priority filter; policy accept;\n{filter}}}\n\
             chain forward {{\n    type filter hook forward priority filter; policy accept;\n{filter}}}\n\
             chain nat_input {{\n    type nat hook input priority 100; policy accept;\n{nat}}}\n\
             chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{nat}}}\n\
             }}\n"
        )
    }

    /// The prefix of every namespace of this lab (`o365lab-PID-N`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's directory: configurations, logs (`logs/`), agent configurations, relay logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn offices(&self) -> &[Office] {
        &self.offices
    }

    pub fn office(&self, name: &str) -> Option<&Office> {
        self.offices.iter().find(|o| o.name() == name)
    }

    /// The internet namespace, where every peer runs.
    pub fn internet(&self) -> &Netns {
        &self.internet
    }

    /// The collector's namespace; the collector listens on [`Lab::collector_addrs`].
    pub fn collector(&self) -> &Netns {
        &self.collector
    }

    pub fn collector_addrs(&self) -> (Ipv4Addr, Ipv6Addr) {
        (world::COLLECTOR_V4, world::COLLECTOR_V6)
    }

    /// The resolvers running in this lab.
    pub fn resolvers(&self) -> &[&'static Resolver] {
        &self.resolvers
    }

    /// The Microsoft-like root (PEM), the only root an agent in the lab should trust.
    pub fn trusted_roots(&self) -> &Path {
        &self.trusted_roots
    }

    /// The TLS-inspection CA (PEM) the middlebox signs with.
    pub fn inspection_ca(&self) -> &Path {
        &self.inspection_ca
    }

    /// A peer's log (`knot`, `unbound-london`, `nginx`, `squid`, `coturn-3478`, `relay-OFFICE`).
    pub fn log(&self, peer: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{peer}.log"))
    }

    /// How long bringing the lab up took.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Whether every process the lab started is still running.
    pub fn healthy(&self) -> bool {
        self.teardown.all_running()
    }

    /// A person's guide to the running lab: namespaces, addresses, commands to look inside.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "lab {} (directory {}), up in {} ms\n\ninternet: {}\n",
            self.prefix,
            self.dir.display(),
            self.startup.as_millis(),
            self.internet.name()
        );
        s.push_str(&format!(
            "  authoritative DNS {}  Teams anycast relay {}  proxy {}:{} (open) :{} (407)\n  web {} (200, /download/*)  {} (403 from a proxy)\n  front doors:",
            world::AUTHORITATIVE_V4,
            world::TEAMS_ANYCAST_V4,
            world::PROXY_V4,
            world::PROXY_OPEN_PORT,
            world::PROXY_AUTH_PORT,
            world::WEB_V4,
            world::WEB_FORBIDDEN_V4
        ));
        for f in world::FRONT_DOORS {
            s.push_str(&format!(" {} {}", f.code, f.v4));
        }
        s.push_str("\n  resolvers:");
        for r in &self.resolvers {
            s.push_str(&format!(
                " {} {} (egress {})",
                r.name, r.listen_v4, r.egress_v4
            ));
        }
        s.push_str(&format!(
            "\ncollector: {}  address {} / {}\n",
            self.collector.name(),
            world::COLLECTOR_V4,
            world::COLLECTOR_V6
        ));
        for o in &self.offices {
            s.push_str(&format!(
                "\noffice {} ({}, scenario {}): {}\n  wan0 {} / {}  resolver {} {}  egress {} ({})\n  expected findings: [{}]\n  agent config: {}\n",
                o.name(),
                o.spec.city,
                o.scenario,
                o.netns.name(),
                o.v4,
                o.v6,
                o.resolver.name,
                o.resolver.listen_v4,
                o.egress.v4,
                o.egress.location.city,
                o.spec
                    .expect
                    .iter()
                    .map(|f| f.code())
                    .collect::<Vec<_>>()
                    .join(", "),
                o.agent_config_path.display()
            ));
        }
        if let Some(o) = self.offices.first() {
            let ns = o.netns.name();
            s.push_str(&format!(
                "\nlook inside:\n  ip netns exec {ns} dig @{r} outlook.office365.com\n  ip netns exec {ns} dig @{r} +short TXT o-o.myaddr.l.google.com\n  ip netns exec {ns} ping -c 3 {lhr}\n  ip netns exec {ns} curl -v --cacert {roots} https://outlook.office365.com/ --resolve outlook.office365.com:443:{lhr}\n  ip netns exec {inet} ss -lntup\n",
                r = o.resolver.listen_v4,
                lhr = world::FRONT_DOORS[0].v4,
                roots = self.trusted_roots.display(),
                inet = self.internet.name(),
            ));
        }
        s
    }

    /// Tears the lab down now and reports what could not be cleaned (empty when all went well).
    pub fn down(self) -> Vec<String> {
        self.teardown.run()
    }
}

/// Whether other processes see this process's labs (`ip netns`, `o365lab status` and `down`): as
/// root they do; inside `unshare -rn` each process keeps its namespaces in a private mount namespace.
pub fn shared_between_processes() -> bool {
    netns::initial_user_namespace()
}

/// Why this process cannot run a lab, if it cannot (tests print it and skip).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "the lab needs root (or a user namespace: `unshare -rn cargo test`) to create network namespaces"
                .into(),
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("the lab's WAN relay needs /dev/net/tun".into());
    }
    None
}

/// Programs the lab runs, with the Debian package that has each.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("nft", "nftables"),
    ("knotd", "knot"),
    ("unbound", "unbound"),
    ("nginx", "nginx-light"),
    ("squid", "squid-openssl"),
    ("turnserver", "coturn"),
    ("openssl", "openssl"),
];

fn check_tools() -> Result<(), LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // Daemons live in sbin, which a non-login root shell may lack.
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    for (program, package) in TOOLS {
        if !dirs.iter().any(|d| d.join(program).is_file()) {
            return Err(LabError::MissingTool(format!(
                "{program} (Debian package {package})"
            )));
        }
    }
    for (file, package) in [
        ("/usr/lib/squid/security_file_certgen", "squid-openssl"),
        ("/usr/lib/squid/basic_ncsa_auth", "squid-openssl"),
    ] {
        if !Path::new(file).is_file() {
            return Err(LabError::MissingTool(format!(
                "{file} (Debian package {package})"
            )));
        }
    }
    let geoip = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|arch| {
            std::fs::read_dir(arch.path().join("knot"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .any(|m| m.path().join("geoip.so").is_file());
    if !geoip {
        return Err(LabError::MissingTool(
            "knot's geoip module (Debian package knot-module-geoip)".into(),
        ));
    }
    Ok(())
}

fn relay_binary(options: &LabOptions) -> Result<PathBuf, LabError> {
    if let Some(p) = options
        .relay_binary
        .clone()
        .or_else(|| std::env::var_os("O365LAB_RELAY").map(PathBuf::from))
    {
        return Ok(p);
    }
    // Test executables sit in target/debug/deps, binaries in target/debug.
    let exe = std::env::current_exe().map_err(|source| LabError::Io {
        what: "finding the running executable".into(),
        source,
    })?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("o365lab-relay"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::MissingTool(
                "o365lab-relay (build it: cargo build -p o365probe-lab --bins, or set O365LAB_RELAY)"
                    .into(),
            )
        })
}

fn mkdir(dir: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(dir).map_err(|source| LabError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

fn redirect_output(cmd: &mut Command, log: &Path) -> Result<(), LabError> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| LabError::Io {
                what: format!("opening {}", log.display()),
                source,
            })
    };
    cmd.stdout(open()?).stderr(open()?);
    Ok(())
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Squid's helpers run as the `proxy` user when squid starts as root; in a user namespace that user
/// does not exist and squid stays root, so failure here is harmless.
fn give_to_proxy_user(dir: &Path) {
    let _ = Command::new("chown")
        .args(["-R", "proxy:proxy"])
        .arg(dir)
        .stderr(Stdio::null())
        .status();
}

/// Everything a lab made, and the undoing of it.
#[derive(Debug)]
pub(crate) struct Teardown {
    prefix: String,
    dir: PathBuf,
    namespaces: Mutex<Vec<Netns>>,
    /// Name, process, and whether it gets SIGTERM and a second to finish (the relays, whose frame
    /// logs must be complete) rather than SIGKILL (the peers: nothing of theirs outlives the lab, and
    /// squid takes a second or more to obey SIGTERM).
    children: Mutex<Vec<(String, Child, bool)>>,
    done: Mutex<bool>,
}

impl Teardown {
    fn new(prefix: String, dir: PathBuf) -> Teardown {
        Teardown {
            prefix,
            dir,
            namespaces: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
            done: Mutex::new(false),
        }
    }

    fn adopt(&self, name: &str, child: Child, graceful: bool) {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_owned(), child, graceful));
    }

    /// The exit status of the named process, if it has exited.
    fn exited(&self, name: &str) -> Option<String> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .iter_mut()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, c, _)| c.try_wait().ok().flatten())
            .map(|s| s.to_string())
    }

    fn all_running(&self) -> bool {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children
            .iter_mut()
            .all(|(_, c, _)| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops every process (SIGTERM, then SIGKILL after a second), kills whatever is left inside the
    /// namespaces, deletes them and the directory. Runs once; a concurrent call (a signal arriving
    /// during a drop) waits for it to finish, later calls return nothing.
    fn run(&self) -> Vec<String> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if *done {
            return Vec::new();
        }
        *done = true;
        let mut problems = Vec::new();
        let mut children =
            std::mem::take(&mut *self.children.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, child, graceful) in &children {
            let signal = if *graceful {
                libc::SIGTERM
            } else {
                libc::SIGKILL
            };
            // SAFETY: kill has no memory effects; the pid is our unreaped child, so cannot be reused.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline
            && children
                .iter_mut()
                .any(|(_, c, _)| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for (name, child, _) in &mut children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            if let Err(e) = child.wait() {
                problems.push(format!("{name}: {e}"));
            }
        }
        let namespaces =
            std::mem::take(&mut *self.namespaces.lock().unwrap_or_else(|e| e.into_inner()));
        for ns in &namespaces {
            ns.kill_all();
            let left = ns.pids();
            if !left.is_empty() {
                problems.push(format!("{}: processes {left:?} would not die", ns.name()));
            }
        }
        let refs: Vec<&Netns> = namespaces.iter().collect();
        if let Err(e) = netns::delete(&refs) {
            problems.push(e.to_string());
        }
        if self.dir.starts_with(std::env::temp_dir()) {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    problems.push(format!("{}: {e}", self.dir.display()));
                }
            }
        }
        problems
    }
}

impl Drop for Teardown {
    /// Undoes a dropped [`Lab`], and a lab that failed half-way through `up` (never a `Lab`).
    fn drop(&mut self) {
        for problem in self.run() {
            eprintln!("o365lab: teardown of {}: {problem}", self.prefix);
        }
    }
}

static LIVE: Mutex<Vec<Weak<Teardown>>> = Mutex::new(Vec::new());

fn register(teardown: &Arc<Teardown>) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|w| w.strong_count() > 0);
    live.push(Arc::downgrade(teardown));
}

/// Tears down every lab of this process that is still up.
fn teardown_live() {
    let live: Vec<Arc<Teardown>> = LIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for t in live {
        for problem in t.run() {
            eprintln!("o365lab: teardown of {}: {problem}", t.prefix);
        }
    }
}

extern "C" fn teardown_at_exit() {
    teardown_live();
}

/// Ctrl-C, SIGTERM and SIGHUP tear down live labs and exit; so does a normal exit with labs still up
/// (labs kept in statics are never dropped).
fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(teardown_at_exit) };
        let installed = ctrlc::set_handler(|| {
            eprintln!("o365lab: interrupted; tearing down the lab");
            teardown_live();
            std::process::exit(130);
        });
        if let Err(e) = installed {
            eprintln!("o365lab: no signal handler ({e}); an interrupted run leaves namespaces for `o365lab down`");
        }
    });
}

/// The pid that made a lab namespace or directory (`o365lab-PID-N…`).
fn owner(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Removes namespaces and directories left by lab processes that no longer exist (every lab start
/// does this first). Returns the removed namespaces.
pub fn remove_stale() -> Result<Vec<String>, LabError> {
    remove_matching(&|name: &str| owner(name).is_some_and(|pid| !netns::alive(pid)))
}

/// Removes every lab namespace whose name starts with `prefix` (any owner but this process), the
/// processes in them, relays started for them, and their directories. Returns the removed names.
pub fn down_all(prefix: &str) -> Result<Vec<String>, LabError> {
    let own = std::process::id() as i32;
    remove_matching(&|name: &str| name.starts_with(prefix) && owner(name) != Some(own))
}

fn remove_matching(matches: &dyn Fn(&str) -> bool) -> Result<Vec<String>, LabError> {
    let names: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && matches(n))
        .collect();
    let namespaces: Vec<Netns> = names
        .iter()
        .map(|n| Netns::named(n))
        .collect::<Result<_, _>>()?;
    let tmp = std::env::temp_dir();
    let dirs: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX) && !n.starts_with("o365lab-pki") && matches(n))
        .map(|n| tmp.join(n))
        .collect();
    // Relays live outside the namespaces; they are recognised by their config path.
    for dir in &dirs {
        kill_by_argument(dir);
    }
    for ns in &namespaces {
        ns.kill_all();
    }
    let refs: Vec<&Netns> = namespaces.iter().collect();
    netns::delete(&refs)?;
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(names)
}

/// SIGKILLs processes with an argument inside `dir`.
fn kill_by_argument(dir: &Path) {
    let own = std::process::id() as i32;
    // With the separator: lab o365lab-1-1 must not match o365lab-1-10's files.
    let mut needle = dir.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    for pid in std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != own)
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline
            .split(|&b| b == 0)
            .any(|arg| arg.starts_with(&needle))
        {
            // SAFETY: kill has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One lab found on this machine.
#[derive(Debug, Clone)]
pub struct LabStatus {
    /// `o365lab-PID-N`.
    pub prefix: String,
    /// Whether the process that made it still runs (if not, the next lab start removes it).
    pub owner_alive: bool,
    /// Each namespace and the processes in it (pid, command name).
    pub namespaces: Vec<(String, Vec<(i32, String)>)>,
}

/// The labs whose namespaces exist now.
pub fn status() -> Result<Vec<LabStatus>, LabError> {
    let mut labs: Vec<LabStatus> = Vec::new();
    for name in netns::list()?.into_iter().filter(|n| n.starts_with(PREFIX)) {
        let Some(pid) = owner(&name) else { continue };
        let rest = &name[PREFIX.len()..];
        let mut parts = rest.splitn(3, '-');
        let prefix = format!(
            "{PREFIX}{}-{}",
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("")
        );
        let ns = Netns::named(&name)?;
        let procs = ns
            .pids()
            .into_iter()
            .map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                (p, comm.trim().to_owned())
            })
            .collect();
        match labs.iter_mut().find(|l| l.prefix == prefix) {
            Some(lab) => lab.namespaces.push((name, procs)),
            None => labs.push(LabStatus {
                prefix,
                owner_alive: netns::alive(pid),
                namespaces: vec![(name, procs)],
            }),
        }
    }
    Ok(labs)
}

/// The geolocation file the lab's agent configs name (`[geo] prefixes`).
pub const GEO_FILE: &str = "geo.csv";

/// Where the lab's addresses really are, as an operator's prefix file would say: each resolver's
/// sending address at the resolver's city (even `dublin-misgeo`, which only Microsoft's GeoDNS
/// misplaces), and each office's egress at its egress point (the head office, when backhauled).
pub fn geo_csv(offices: &[Office]) -> String {
    let mut out = String::from(
        "# o365probe lab: where the lab's addresses are (prefix,latitude longitude)\n",
    );
    for r in world::RESOLVERS {
        for addr in [IpAddr::from(r.egress_v4), IpAddr::from(r.egress_v6)] {
            out.push_str(&format!(
                "{addr},{} {}  # resolver {}\n",
                r.lat, r.lon, r.name
            ));
        }
    }
    for o in offices {
        let e = o.egress();
        for addr in [IpAddr::from(e.v4), IpAddr::from(e.v6)] {
            out.push_str(&format!(
                "{addr},{} {},{}  # egress of {}\n",
                e.location.lat,
                e.location.lon,
                e.location.city,
                o.name()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner("o365lab-1234-0-inet"), Some(1234));
        assert_eq!(owner("o365lab-1234-17-london-good"), Some(1234));
        assert_eq!(owner("o365lab-pki-00ff"), None);
        assert_eq!(owner("other-1234-0"), None);
    }
}
