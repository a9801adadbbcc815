//! `o365probe check`: the whole assessment, now, for each uplink.
//!
//! The order follows what depends on what: first every name is resolved through the office's resolver
//! (and whoami names reveal where that resolver queries from); then, all at once within a bound, each
//! target's TCP latency, TLS certificate flight, STUN train, HTTP check and path; then the routes of the
//! Optimize ranges; then the optional download. Every number comes from the core's probes; this module
//! only moves bytes and time (net::driver) and puts the results in [`model`] form, and [`findings`]
//! applies the core's verdicts to them.
//!
//! Every step is bounded by its probe's timeouts, so on an offline machine `check` finishes and says
//! what failed and why.

pub mod findings;
pub mod model;
pub mod render;
mod web;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use o365probe_core::assess::{self, great_circle_km, ExpectedIssuers, GeoPoint, TrustedRoots};
use o365probe_core::probe::dns::{DnsConfig, DnsProbe, DnsQuery, QueryType};
use o365probe_core::probe::resolver::{ResolverIdentityProbe, Whoami};
use o365probe_core::probe::stun::{Drain, StunConfig, StunProbe, MAX_TRAIN_LEN};
use o365probe_core::probe::tcp::{TcpConfig, TcpProbe};
use o365probe_core::probe::tls::{AgentTlsProbe, TlsConfig};
use o365probe_core::rand::SplitMix64;
use o365probe_core::report::TlsVerdict;
use o365probe_core::time::Duration;
use o365probe_core::wire::dns::Name;
use o365probe_core::wire::endpoint::{Category, ServiceArea};

use crate::config::{Config, HttpChecks, ProxyEnv, Target, Uplink};
use crate::endpoints::{self, ClientSettings, EndpointSet, EndpointsClient, IpNet, Selection};
use crate::geo::{Geo, Place};
use crate::net::{self, clock, driver, Limit, SocketOptions, DSCP_EF};
use crate::{path, route};
use model::*;

/// Probes of one uplink running at once: enough to overlap waiting, few enough for a small router.
pub const CONCURRENT_PROBES: usize = 8;

/// Stack of the thread that runs a check (reserved, not committed, until used).
const CHECK_STACK: usize = 32 * 1024 * 1024;

/// What an assessment needs besides the config: read once, shared by every uplink.
pub struct Context<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// The proxy settings of the environment (read once at start, before any thread).
    pub proxy_env: ProxyEnv,
    /// IP geolocation.
    pub geo: Geo,
    /// The targets to probe.
    pub targets: Vec<Target>,
    /// The endpoint sets (for the Optimize ranges of the split-tunnel check).
    pub endpoint_sets: Vec<EndpointSet>,
    /// DER certificates of `[tls] trusted_roots`, when configured.
    pub roots: Vec<Vec<u8>>,
    /// What could not be set up, for the report's notes.
    pub notes: Vec<String>,
    /// Seeds transaction ids and ClientHello randoms.
    pub seed: u64,
}

/// A setup problem that stops the check before any probe (exit code 2, like a config error).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `[tls] trusted_roots` cannot be used.
    #[error("{}: {problem}", path.display())]
    Roots {
        /// The PEM file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `[geo]` cannot be used.
    #[error(transparent)]
    Geo(#[from] crate::geo::GeoError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl<'a> Context<'a> {
    /// Reads what the config names (roots, geolocation) and settles the target list: the config's
    /// `[[target]]`s, or Microsoft's endpoints web service (its cache, or the bundled fallback).
    pub fn new(config: &'a Config, proxy_env: ProxyEnv) -> Result<Self, SetupError> {
        let mut notes = Vec::new();
        let roots = match &config.tls.trusted_roots {
            Some(path) => read_roots(path)?,
            None => Vec::new(),
        };
        let geo = Geo::load(&config.geo)?;
        let (targets, endpoint_sets) = select_targets(config, &proxy_env, &mut notes);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
            ^ u64::from(std::process::id()).rotate_left(32);
        Ok(Self {
            config,
            proxy_env,
            geo,
            targets,
            endpoint_sets,
            roots,
            notes,
            seed,
        })
    }

    /// Assesses every configured uplink (or the routing table's choice when none is configured).
    pub fn run(&self) -> Result<Vec<Assessment>, SetupError> {
        // Probes keep their buffers inline (the core has no allocator): a whole cycle's futures are
        // large, so the runtime gets a thread with room for them, also in debug builds.
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("check".into())
                .stack_size(CHECK_STACK)
                .spawn_scoped(scope, || self.run_here())
                .map_err(SetupError::Runtime)?
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn run_here(&self) -> Result<Vec<Assessment>, SetupError> {
        let runtime = net::runtime().map_err(SetupError::Runtime)?;
        let uplinks: Vec<Option<&Uplink>> = if self.config.uplinks.is_empty() {
            vec![None]
        } else {
            self.config.uplinks.iter().map(Some).collect()
        };
        Ok(uplinks
            .into_iter()
            .enumerate()
            .map(|(i, uplink)| runtime.block_on(self.assess(uplink, i as u64)))
            .collect())
    }

    /// One uplink's assessment.
    pub async fn assess(&self, uplink: Option<&Uplink>, salt: u64) -> Assessment {
        let started = clock::unix_seconds().unwrap_or(0);
        let t0 = StdInstant::now();
        let mut rng = SplitMix64::new(self.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let opts = uplink.map(SocketOptions::uplink).unwrap_or_default();
        let limit = Limit::new(CONCURRENT_PROBES);
        let traces = Limit::new(1);
        let mut notes = self.notes.clone();

        let resolver = match self.config.dns.resolvers() {
            Ok(list) => list.first().copied(),
            Err(e) => {
                notes.push(format!(
                    "cannot read {}: {e}",
                    self.config.dns.resolv_conf.display()
                ));
                None
            }
        };
        if resolver.is_none() {
            notes.push("no DNS resolver configured or found: names cannot be resolved".into());
        }

        // 1. Names, and the resolver's identity.
        let forks: Vec<SplitMix64> = self.targets.iter().map(|_| rng.fork()).collect();
        let dns_futures = self.targets.iter().zip(forks).map(|(t, rng)| {
            let limit = &limit;
            let opts = &opts;
            async move { limit.run(self.resolve(&t.host, resolver, rng, opts)).await }
        });
        let whoami_future = self.whoami(resolver, rng.fork(), &opts, &limit);
        let (resolved, whoami) = tokio::join!(net::join_all(dns_futures), whoami_future);

        // 2. Everything per target, at once within the bound.
        let traced = self.traced_targets(&resolved);
        let forks: Vec<SplitMix64> = self.targets.iter().map(|_| rng.fork()).collect();
        let per_target = self
            .targets
            .iter()
            .zip(&resolved)
            .zip(forks)
            .enumerate()
            .map(|(i, ((t, r), rng))| {
                // Traces go one at a time: routers answer only a few ICMP errors per second, and
                // side-by-side traces would share that budget and show silent hops that are not.
                let trace = traced.contains(&i).then_some(&traces);
                let (limit, opts) = (&limit, &opts);
                async move {
                    self.probe_target(t, r, rng, opts, limit, trace, uplink)
                        .await
                }
            });
        let mut targets: Vec<TargetReport> = net::join_all(per_target).await;
        for (report, r) in targets.iter_mut().zip(resolved) {
            report.dns = r.report;
            report.front_door = r.front_door.map(|code| self.front_door(code));
        }

        // 3. Routes of the Optimize ranges and front doors.
        let split_tunnel = self.split_tunnel(&targets, uplink, &mut notes);

        // 4. The download.
        let download = self.download(&targets, &opts).await;

        let egress_address = targets
            .iter()
            .filter_map(|t| t.stun.as_ref()?.mapped_address)
            .map(|a| a.ip())
            .next();
        let resolver_address = whoami.iter().find_map(|w| w.address);
        let egress = Egress {
            address: egress_address,
            location: egress_address.and_then(|a| self.place(a)),
        };
        let resolver = Resolver {
            queried: resolver,
            address: resolver_address,
            location: resolver_address.and_then(|a| self.place(a)),
            whoami,
        };
        let mut assessment = Assessment {
            version: SCHEMA_VERSION,
            office: Office {
                name: self.config.agent.office_name(),
                location: self.office_point().map(point),
            },
            uplink: uplink.map(|u| u.name.clone()),
            started: rfc3339(started),
            duration_ms: 0.0,
            egress,
            resolver,
            targets,
            split_tunnel,
            download,
            scores: Scores::default(),
            findings: Vec::new(),
            notes,
        };
        assessment.scores = findings::scores(&assessment);
        let (found, more_notes) = findings::judge(&assessment, &|host| {
            let url = format!("https://{host}/");
            self.config
                .http
                .proxy
                .for_url(&url, &self.proxy_env)
                .is_some()
        });
        assessment.findings = found;
        assessment.notes.extend(more_notes);
        assessment.duration_ms = ms_std(t0.elapsed());
        assessment
    }

    fn office_point(&self) -> Option<GeoPoint> {
        self.config.agent.location.map(|l| l.point())
    }

    fn place(&self, address: IpAddr) -> Option<Placed> {
        let Place { point: p, label } = self.geo.locate(address)?;
        Some(Placed {
            name: label,
            point: point(p),
            distance_km: self.office_point().map(|o| round1(great_circle_km(o, p))),
        })
    }

    fn front_door(&self, code: assess::LocationCode) -> FrontDoor {
        let location = code.location();
        FrontDoor {
            code: code.as_str().to_owned(),
            location: location.map(|l| l.city.to_owned()),
            country: location.map(|l| l.country.to_owned()),
            distance_km: location
                .zip(self.office_point())
                .map(|(l, o)| round1(great_circle_km(o, l.point()))),
        }
    }

    /// Resolves a target name: A, then AAAA.
    async fn resolve(
        &self,
        host: &str,
        resolver: Option<SocketAddr>,
        mut rng: SplitMix64,
        opts: &SocketOptions,
    ) -> Resolved {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Resolved {
                addresses: vec![ip],
                ..Resolved::default()
            };
        }
        let Some(resolver) = resolver else {
            return Resolved::failed("no resolver");
        };
        let name = match Name::new(host) {
            Ok(n) => n,
            Err(e) => return Resolved::failed(&format!("not a DNS name: {e}")),
        };
        let config = self.dns_config();
        let a = DnsQuery {
            resolver,
            name: name.clone(),
            qtype: QueryType::A,
        };
        let aaaa = DnsQuery {
            resolver,
            name,
            qtype: QueryType::Aaaa,
        };
        let (a, aaaa) = match (
            DnsProbe::new(a, config, rng.fork()),
            DnsProbe::new(aaaa, config, rng.fork()),
        ) {
            (Ok(a), Ok(aaaa)) => {
                tokio::join!(
                    Box::pin(driver::drive(a, opts)),
                    Box::pin(driver::drive(aaaa, opts)),
                )
            }
            _ => return Resolved::failed("invalid [dns] tries"),
        };
        let a = match a {
            Ok(out) => out,
            Err(e) => return Resolved::failed(&e.to_string()),
        };
        let mut report = DnsReport {
            cnames: Vec::new(),
            addresses: Vec::new(),
            rtt_ms: None,
            rcode: None,
            tries: a.tries,
            tcp: a.tcp,
            error: None,
        };
        let mut front_door = None;
        match &a.answer {
            Ok(r) => {
                report.cnames = r
                    .chain
                    .iter()
                    .skip(1)
                    .map(|n| n.as_str().to_owned())
                    .collect();
                report.addresses = r.addresses.iter().map(|(ip, _)| *ip).collect();
                report.rtt_ms = Some(ms(r.rtt));
                report.rcode = Some(r.rcode.to_string());
                front_door = r.front_door();
            }
            Err(e) => report.error = Some(e.to_string()),
        }
        if let Ok(Ok(r)) = aaaa.map(|o| o.answer) {
            report.addresses.extend(
                r.addresses
                    .iter()
                    .map(|(ip, _)| *ip)
                    .filter(|ip| ip.is_ipv6()),
            );
        }
        Resolved {
            addresses: report.addresses.clone(),
            report: Some(report),
            front_door,
        }
    }

    fn dns_config(&self) -> DnsConfig {
        DnsConfig {
            timeout: clock::core_duration(self.config.dns.timeout),
            tries: u8::try_from(self.config.dns.tries).unwrap_or(u8::MAX),
            ..DnsConfig::DEFAULT
        }
    }

    async fn whoami(
        &self,
        resolver: Option<SocketAddr>,
        mut rng: SplitMix64,
        opts: &SocketOptions,
        limit: &Limit,
    ) -> Vec<model::Whoami> {
        let Some(resolver) = resolver else {
            return Vec::new();
        };
        let names = [
            (self.config.dns.whoami_a.clone(), QueryType::A),
            (self.config.dns.whoami_txt.clone(), QueryType::Txt),
        ];
        let futures = names.into_iter().map(|(name, qtype)| {
            let rng = rng.fork();
            async move {
                let whoami = match Name::new(&name) {
                    Ok(n) => Whoami { name: n, qtype },
                    Err(e) => {
                        return model::Whoami {
                            name,
                            address: None,
                            error: Some(format!("not a DNS name: {e}")),
                        }
                    }
                };
                let probe = ResolverIdentityProbe::new(resolver, whoami, self.dns_config(), rng);
                let address = match probe {
                    Ok(p) => match limit.run(Box::pin(driver::drive(p, opts))).await {
                        Ok(out) => out.address.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                model::Whoami {
                    name,
                    address: address.as_ref().ok().copied(),
                    error: address.err(),
                }
            }
        });
        net::join_all(futures).await
    }

    /// The first resolved target of each of Exchange, SharePoint and Teams gets a traceroute.
    fn traced_targets(&self, resolved: &[Resolved]) -> Vec<usize> {
        if !self.config.path.traceroute {
            return Vec::new();
        }
        let mut out = Vec::new();
        for service in [
            ServiceArea::Exchange,
            ServiceArea::SharePoint,
            ServiceArea::Teams,
        ] {
            if let Some(i) = self
                .targets
                .iter()
                .zip(resolved)
                .position(|(t, r)| t.service == service && !r.addresses.is_empty())
            {
                out.push(i);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    async fn probe_target(
        &self,
        target: &Target,
        resolved: &Resolved,
        rng: SplitMix64,
        opts: &SocketOptions,
        limit: &Limit,
        trace: Option<&Limit>,
        uplink: Option<&Uplink>,
    ) -> TargetReport {
        // The uplink's source address decides the family; otherwise IPv4 first, what most offices'
        // Microsoft 365 traffic uses.
        let v4 = opts.source.is_none_or(|s| s.is_ipv4());
        let address = resolved
            .addresses
            .iter()
            .find(|a| a.is_ipv4() == v4)
            .or_else(|| resolved.addresses.first().filter(|_| opts.source.is_none()))
            .copied();
        let tcp_port = target.tcp.first().copied();
        let udp_port = target.udp.first().copied().or_else(|| {
            (target.service == ServiceArea::Teams && target.tcp.is_empty())
                .then(|| self.config.teams.ports.first().copied())
                .flatten()
        });

        let tcp = async {
            let (Some(ip), Some(port)) = (address, tcp_port) else {
                return None;
            };
            Some(limit.run(self.tcp(SocketAddr::new(ip, port), opts)).await)
        };
        let tls = async {
            let ip = address?;
            target.tcp.contains(&443).then_some(())?;
            let seed = rng.clone().next_u64();
            Some(
                limit
                    .run(self.tls(SocketAddr::new(ip, 443), &target.host, seed, opts))
                    .await,
            )
        };
        let stun = async {
            let (Some(ip), Some(port)) = (address, udp_port) else {
                return None;
            };
            let rng = rng.clone().fork();
            Some(
                limit
                    .run(self.stun(SocketAddr::new(ip, port), rng, opts))
                    .await,
            )
        };
        let http = async {
            tcp_port?;
            let wanted = match self.config.http.check {
                HttpChecks::All => true,
                HttpChecks::Required => target.required,
                HttpChecks::None => false,
            };
            if !wanted
                || resolved
                    .report
                    .as_ref()
                    .is_some_and(|d| d.addresses.is_empty())
            {
                return None;
            }
            limit
                .run(web::check(self, target, &resolved.addresses, opts))
                .await
        };
        let path = async {
            let (ip, traces) = (address?, trace?);
            Some(traces.run(self.trace(ip, tcp_port, uplink)).await)
        };
        let (tcp, tls, stun, http, path) = tokio::join!(tcp, tls, stun, http, path);
        TargetReport {
            host: target.host.clone(),
            service: target.service.name().to_owned(),
            category: target.category.name().to_owned(),
            required: target.required,
            // Filled in from the resolution by the caller.
            dns: None,
            front_door: None,
            tcp,
            tls,
            stun,
            http,
            path,
        }
    }

    async fn tcp(&self, to: SocketAddr, opts: &SocketOptions) -> TcpReport {
        let c = &self.config.tcp;
        let mut config = TcpConfig::new(to);
        config.samples = u8::try_from(c.samples).unwrap_or(u8::MAX);
        config.spacing = clock::core_duration(c.spacing);
        config.connect_timeout = clock::core_duration(c.timeout);
        let empty = TcpFailures {
            refused: 0,
            timed_out: 0,
            unreachable: 0,
            other: 0,
        };
        let mut report = TcpReport {
            address: to,
            samples: config.samples,
            connected: 0,
            min_ms: None,
            median_ms: None,
            p95_ms: None,
            failures: empty,
        };
        let limit = driver::limit_for(config.max_duration());
        let result = match TcpProbe::new(config, clock::now()) {
            Ok(p) => Box::pin(driver::drive_within(p, opts, limit)).await,
            Err(_) => return report,
        };
        let Ok(result) = result else {
            report.failures.other = report.samples;
            return report;
        };
        report.connected = result.connected();
        if let Some(rtt) = result.rtt() {
            report.min_ms = Some(us(rtt.min_us()));
            report.median_ms = Some(us(rtt.median_us()));
            report.p95_ms = Some(us(rtt.p95_us()));
        }
        let f = result.failures();
        report.failures = TcpFailures {
            refused: f.refused,
            timed_out: f.timed_out,
            unreachable: f.unreachable,
            other: f.other,
        };
        report
    }

    async fn tls(&self, to: SocketAddr, host: &str, seed: u64, opts: &SocketOptions) -> TlsReport {
        let mut report = TlsReport {
            address: to,
            verdict: "failed".into(),
            detail: String::new(),
            issuer: None,
            issuer_org: None,
            not_after: None,
            covers_host: None,
            connect_ms: None,
            handshake_ms: None,
            error: None,
        };
        let roots: TrustedRoots<'_> =
            match TrustedRoots::from_ders(self.roots.iter().map(Vec::as_slice)) {
                Ok(r) => r,
                Err(e) => {
                    report.error = Some(format!("trusted roots: {e}"));
                    return report;
                }
            };
        let intermediates: Vec<&str> = self
            .config
            .tls
            .expected_issuers
            .iter()
            .map(String::as_str)
            .collect();
        let expected = ExpectedIssuers {
            roots: if self.roots.is_empty() {
                assess::microsoft_roots()
            } else {
                roots.as_slice()
            },
            intermediates: &intermediates,
        };
        let mut config = TlsConfig::new(to, host);
        config.expected = expected;
        config.handshake_timeout = clock::core_duration(self.config.tls.timeout);
        config.connect_timeout = clock::core_duration(self.config.tcp.timeout);
        config.wall_clock = clock::unix_seconds();
        config.seed = seed;
        let limit = driver::limit_for(config.max_duration());
        let probe = match AgentTlsProbe::new(config, clock::now()) {
            Ok(p) => Box::new(p),
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        let result = match Box::pin(driver::drive_within(*probe, opts, limit)).await {
            Ok(r) => r,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        report.verdict = match result.verdict() {
            TlsVerdict::Genuine => "genuine",
            TlsVerdict::Intercepted => "intercepted",
            TlsVerdict::Unknown => "unknown",
            TlsVerdict::Failed => "failed",
        }
        .into();
        report.connect_ms = result.connect.map(ms);
        report.handshake_ms = result.handshake.map(ms);
        report.error = result.failure.map(|f| f.to_string());
        if let Some(chain) = &result.chain {
            report.detail = chain.verdict.to_string();
            report.covers_host = chain.covers_host;
            if let Some(leaf) = &chain.leaf {
                report.issuer = leaf.issuer.common_name.as_ref().map(|s| s.to_string());
                report.issuer_org = leaf.issuer.organization.as_ref().map(|s| s.to_string());
                report.not_after = Some(rfc3339(leaf.not_after));
            }
        }
        report
    }

    async fn stun(&self, to: SocketAddr, rng: SplitMix64, opts: &SocketOptions) -> StunReport {
        let t = &self.config.teams;
        let dscp = t.dscp_ef.then_some(DSCP_EF);
        let opts = opts.clone().with_dscp(dscp);
        let mut config = StunConfig::new(to);
        config.count = u16::try_from(t.count).unwrap_or(u16::MAX);
        config.spacing = clock::core_duration(t.spacing);
        config.drain = Drain::Fixed(clock::core_duration(t.drain));
        let mut report = StunReport {
            address: to,
            sent: 0,
            received: 0,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            loss_percent: None,
            rtt_min_ms: None,
            rtt_median_ms: None,
            rtt_p95_ms: None,
            jitter_ms: None,
            mapped_address: None,
            mos: None,
            missed_targets: Vec::new(),
            dscp,
        };
        let limit = config
            .longest_duration()
            .map_or(driver::DEFAULT_LIMIT, driver::limit_for);
        let probe = match StunProbe::<MAX_TRAIN_LEN>::new(config, rng, clock::now()) {
            Ok(p) => Box::new(p),
            Err(_) => return report,
        };
        let Ok(m) = Box::pin(driver::drive_within(*probe, &opts, limit)).await else {
            return report;
        };
        report.sent = m.sent;
        report.received = m.received;
        report.lost = m.lost;
        report.duplicated = m.duplicated;
        report.reordered = m.reordered;
        // The core's loss, the one its Teams targets are judged on.
        report.loss_percent = m.loss().map(|l| round3(l.percent()));
        if let Some(rtt) = m.rtt {
            report.rtt_min_ms = Some(us(rtt.min_us()));
            report.rtt_median_ms = Some(us(rtt.median_us()));
            report.rtt_p95_ms = Some(us(rtt.p95_us()));
            report.jitter_ms = Some(us(m.jitter_us));
        }
        report.mapped_address = m.mapped;
        if let Some(q) = m.teams_quality() {
            report.mos = Some(round3(f64::from(q.mos())));
            report.missed_targets = q.judge().failed().map(|t| t.name().to_owned()).collect();
        }
        report
    }

    /// A traceroute, with TCP SYNs to the target's port when it has one: Microsoft's front doors answer
    /// those, while UDP and ICMP probes are often dropped at their edge.
    async fn trace(
        &self,
        ip: IpAddr,
        tcp_port: Option<u16>,
        uplink: Option<&Uplink>,
    ) -> PathReport {
        let mut options = path::TraceOptions::from_config(&self.config.path, uplink);
        if let Some(port) = tcp_port {
            options.method = path::Method::Tcp { port };
        }
        let result = tokio::task::spawn_blocking(move || path::trace(ip, &options)).await;
        match result {
            Ok(Ok(trace)) => PathReport {
                destination: ip,
                reached: trace.reached(),
                hops: trace
                    .hops
                    .iter()
                    .map(|h| Hop {
                        ttl: h.ttl,
                        address: h.address(),
                        rtt_ms: h.min_rtt().map(ms_std),
                    })
                    .collect(),
                error: None,
            },
            Ok(Err(e)) => PathReport {
                destination: ip,
                reached: false,
                hops: Vec::new(),
                error: Some(e.to_string()),
            },
            Err(e) => PathReport {
                destination: ip,
                reached: false,
                hops: Vec::new(),
                error: Some(format!("traceroute task: {e}")),
            },
        }
    }

    fn split_tunnel(
        &self,
        targets: &[TargetReport],
        uplink: Option<&Uplink>,
        notes: &mut Vec<String>,
    ) -> Vec<PrefixRoute> {
        let mut prefixes = route::optimize_prefixes(&self.endpoint_sets);
        // Each Optimize target's first address, as a /32 or /128.
        let front_doors = self
            .targets
            .iter()
            .zip(targets)
            .filter(|(t, _)| t.category == Category::Optimize)
            .filter_map(|(_, report)| report.dns.as_ref()?.addresses.first().copied());
        for net in front_doors.map(IpNet::host) {
            if !prefixes.contains(&net) {
                prefixes.push(net);
            }
        }
        let query = route::RouteQuery {
            source: uplink.and_then(|u| u.source),
            interface: uplink.and_then(|u| u.interface.clone()),
            mark: None,
        };
        match route::split_tunnel_with(&prefixes, &query) {
            Ok(routes) => routes
                .into_iter()
                .map(|r| PrefixRoute {
                    prefix: r.prefix.to_string(),
                    interface: r.route.as_ref().ok().map(|x| x.interface.name.clone()),
                    tunnel: r.tunnel().map(|t| t.name().to_owned()),
                    error: r.route.as_ref().err().map(|e| e.to_string()),
                })
                .collect(),
            Err(e) => {
                notes.push(format!("split-tunnel check not run: {e}"));
                Vec::new()
            }
        }
    }

    async fn download(&self, targets: &[TargetReport], opts: &SocketOptions) -> Option<Download> {
        // Latency is sampled to the first front door that answered TCP.
        let probe_to = targets
            .iter()
            .filter_map(|t| t.tcp.as_ref())
            .find(|t| t.connected > 0)
            .map(|t| t.address);
        web::download(self, probe_to, opts).await
    }
}

/// What resolving a target gave.
#[derive(Debug, Clone, Default)]
struct Resolved {
    addresses: Vec<IpAddr>,
    report: Option<DnsReport>,
    front_door: Option<assess::LocationCode>,
}

impl Resolved {
    fn failed(why: &str) -> Self {
        Self {
            addresses: Vec::new(),
            report: Some(DnsReport {
                cnames: Vec::new(),
                addresses: Vec::new(),
                rtt_ms: None,
                rcode: None,
                tries: 0,
                tcp: false,
                error: Some(why.to_owned()),
            }),
            front_door: None,
        }
    }
}

/// The config's targets, or Microsoft's endpoints web service's (plus the config's).
fn select_targets(
    config: &Config,
    proxy_env: &ProxyEnv,
    notes: &mut Vec<String>,
) -> (Vec<Target>, Vec<EndpointSet>) {
    if !config.endpoints.enabled {
        return (config.targets.clone(), endpoints::fallback());
    }
    let selection = Selection::from_config(&config.endpoints);
    let sets = match EndpointsClient::open(ClientSettings::from_config(config, proxy_env)) {
        Ok(mut client) => {
            if let Err(e) = client.refresh(SystemTime::now()) {
                notes.push(format!("endpoints web service: {e}"));
            }
            client.sets().to_vec()
        }
        Err(e) => {
            notes.push(format!("endpoints web service not used: {e}"));
            endpoints::fallback()
        }
    };
    let mut targets = endpoints::targets(&sets, &selection);
    for t in &config.targets {
        if !targets.iter().any(|x| x.host.eq_ignore_ascii_case(&t.host)) {
            targets.push(t.clone());
        }
    }
    (targets, sets)
}

/// The DER certificates of a PEM file.
fn read_roots(path: &Path) -> Result<Vec<Vec<u8>>, SetupError> {
    let problem = |problem: String| SetupError::Roots {
        path: path.to_path_buf(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let ders = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
        .map_err(|e| problem(format!("not a PEM file: {e}")))?;
    if ders.is_empty() {
        return Err(problem("no CERTIFICATE in the PEM file".into()));
    }
    let checked: Result<TrustedRoots<'_>, _> =
        TrustedRoots::from_ders(ders.iter().map(Vec::as_slice));
    if let Err(e) = checked.map(drop) {
        return Err(problem(e.to_string()));
    }
    Ok(ders)
}

/// Milliseconds to the microsecond.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

pub(crate) fn ms_std(d: std::time::Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// Milliseconds of a core figure in microseconds.
pub(crate) fn us(v: u32) -> f64 {
    f64::from(v) / 1000.0
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn point(p: GeoPoint) -> Point {
    Point {
        lat: p.lat,
        lon: p.lon,
    }
}

/// `2026-11-27T01:02:03Z` for Unix seconds (proleptic Gregorian, UTC).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_747_335), "2026-11-27T02:42:15Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
