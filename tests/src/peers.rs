//! The real programs that play Microsoft 365 and the networks around it, each with configuration
//! written into the lab's directory (never the system's) and run in the foreground inside the
//! internet namespace:
//!
//! - knot: the authoritative server for every Microsoft-like zone. `mod-geoip` in subnet mode picks
//!   the front door by the querying resolver's address (Microsoft's GeoDNS); `mod-whoami` answers
//!   `whoami.akamai.net` with that address, and `o-o.myaddr.l.google.com` TXT says it too.
//! - unbound: one recursive resolver per [`world::Resolver`] in use, listening on its own address and
//!   querying knot (stub zones) from its egress address.
//! - nginx: the front doors, the Teams relays' TLS side and the web endpoint, over HTTP and HTTPS with
//!   the lab's Microsoft-like chain.
//! - coturn: STUN on UDP (and TCP) 3478-3481 at every front door and the Teams anycast address.
//! - squid: the explicit proxy (open, and with 407) and the 403 endpoint; and one more instance per
//!   office with a transparent middlebox (ssl-bump inspection, or an SNI filter).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::pki::{Pki, LEAVES};
use crate::scenario::Middlebox;
use crate::world::{self, FrontDoor, Resolver, FRONT_DOORS, RESOLVERS};
use crate::LabError;

/// The ports office `k`'s middlebox listens on for TLS and HTTP inside the internet namespace
/// (traffic reaches them through nftables redirects, never directly), and the loopback port squid
/// insists on having as a forward proxy.
pub(crate) fn middlebox_ports(k: usize) -> (u16, u16, u16) {
    let base = 3200 + 3 * k as u16;
    (base, base + 1, base + 2)
}

/// A peer to start: its command line (run inside the internet namespace), what must run before it,
/// and the TCP addresses that accept connections once it is ready.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub name: String,
    pub argv: Vec<String>,
    pub ready: Vec<SocketAddr>,
    /// Commands to run (in the lab's own namespace) before starting it.
    pub setup: Vec<Vec<String>>,
    /// A directory its unprivileged helpers (squid's run as `proxy`) must be able to write.
    pub proxy_user_dir: Option<PathBuf>,
}

/// A transparent box in one office's path.
pub(crate) struct MiddleboxSite<'a> {
    pub office: &'a str,
    pub index: usize,
    pub kind: Middlebox,
    /// The office's resolver: the box must resolve names as the office does, or squid's check that
    /// the SNI names the destination address fails (409).
    pub resolver: &'a Resolver,
}

/// Writes every peer's configuration under `dir` and returns the peers to start.
pub(crate) fn prepare(
    dir: &Path,
    pki: &Pki,
    resolvers: &[&Resolver],
    middleboxes: &[MiddleboxSite],
) -> Result<Vec<Peer>, LabError> {
    let mut peers = vec![knot(dir)?];
    for r in resolvers {
        peers.push(unbound(dir, r)?);
    }
    peers.push(nginx(dir, pki)?);
    peers.push(proxy(dir)?);
    for m in middleboxes {
        peers.push(middlebox(dir, pki, m)?);
    }
    for port in [3478, 3480] {
        peers.push(coturn(dir, port));
    }
    Ok(peers)
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| LabError::Io {
            what: format!("creating {}", parent.display()),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn sock(addr: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(addr.into(), port)
}

/// What a GeoDNS name answers a resolver that Microsoft maps to this front door.
type GeoAnswer = fn(&FrontDoor, &Resolver) -> String;

/// A DNS zone: its name, records (relative owner names), and geo answers by resolver egress.
struct Zone {
    name: &'static str,
    records: Vec<String>,
    /// (owner, record type, answer per front door) for names Microsoft's GeoDNS answers.
    geo: Vec<(String, &'static str, GeoAnswer)>,
    whoami: bool,
}

impl Zone {
    fn new(name: &'static str) -> Zone {
        Zone {
            name,
            records: Vec::new(),
            geo: Vec::new(),
            whoami: false,
        }
    }

    fn rr(mut self, record: impl Into<String>) -> Zone {
        self.records.push(record.into());
        self
    }

    fn host(mut self, owner: &str, v4: impl std::fmt::Display, v6: impl std::fmt::Display) -> Zone {
        self.records.push(format!("{owner} A {v4}"));
        self.records.push(format!("{owner} AAAA {v6}"));
        self
    }

    /// A GeoDNS name: `default` is what the zone itself says (for resolvers the map does not know).
    fn geo(mut self, owner: &str, rtype: &'static str, answer: GeoAnswer) -> Zone {
        let fallback = world::front_door(world::DEFAULT_FRONT_DOOR).unwrap_or(&FRONT_DOORS[0]);
        let default = match rtype {
            "TXT" => "\"unknown\"".to_owned(),
            _ => answer(fallback, &RESOLVERS[0]),
        };
        self.records.push(format!("{owner} {rtype} {default}"));
        self.geo
            .push((format!("{owner}.{}", self.name), rtype, answer));
        self
    }

    fn file_name(&self) -> String {
        match self.name {
            "." => "root.zone".into(),
            n => format!("{n}.zone"),
        }
    }
}

/// The zones, mirroring Microsoft's chains:
/// outlook.office365.com → outlook.ha.office365.com → outlook.ms-acdc.office.com → (geo) XXX-efz…;
/// contoso.sharepoint.com → …clump…aa-rt.sharepoint.com → …farm…akadns.net → (geo) dual-spo-00NN…;
/// world.tr.teams.microsoft.com → teams-world-tr.trafficmanager.net (anycast);
/// worldaz.tr.teams.microsoft.com → teams-worldaz-tr.trafficmanager.net → (geo) a-tr-xxx-01….
fn zones() -> Vec<Zone> {
    let clump = "302-ipv4v6e.clump.dprodmgd104.aa-rt";
    let farm = "187409-ipv4v6e.farm.dprodmgd104.sharepointonline.com";
    let mut office = Zone::new("office.com")
        .rr("outlook CNAME outlook.ha.office365.com.")
        .geo("outlook.ms-acdc", "CNAME", |f, _| {
            format!("{}.", f.exchange_name())
        });
    let mut spo = Zone::new("spo-msedge.net");
    let mut teams = Zone::new("microsoft.com")
        .rr("world.tr.teams CNAME teams-world-tr.trafficmanager.net.")
        .rr("worldaz.tr.teams CNAME teams-worldaz-tr.trafficmanager.net.");
    for f in FRONT_DOORS {
        office = office.host(&format!("{}-efz.ms-acdc", f.code), f.v4, f.v6);
        let spo_name = f.sharepoint_name();
        spo = spo.host(spo_name.trim_end_matches(".spo-msedge.net"), f.v4, f.v6);
        let teams_name = f.teams_name();
        teams = teams.host(teams_name.trim_end_matches(".microsoft.com"), f.v4, f.v6);
    }
    vec![
        Zone::new(".").host(
            "ns.o365lab.",
            world::AUTHORITATIVE_V4,
            world::AUTHORITATIVE_V6,
        ),
        Zone::new("office365.com")
            .rr("outlook CNAME outlook.ha.office365.com.")
            .rr("outlook.ha CNAME outlook.ms-acdc.office.com."),
        office,
        Zone::new("sharepoint.com")
            .rr(format!("{} CNAME {clump}.sharepoint.com.", world::TENANT))
            .rr(format!(
                "{}-my CNAME {clump}.sharepoint.com.",
                world::TENANT
            ))
            .rr(format!("{clump} CNAME {farm}.akadns.net.")),
        Zone::new("akadns.net").geo(farm, "CNAME", |f, _| format!("{}.", f.sharepoint_name())),
        spo,
        teams,
        Zone::new("trafficmanager.net")
            .host(
                "teams-world-tr",
                world::TEAMS_ANYCAST_V4,
                world::TEAMS_ANYCAST_V6,
            )
            .geo("teams-worldaz-tr", "CNAME", |f, _| {
                format!("{}.", f.teams_name())
            }),
        Zone {
            whoami: true,
            ..Zone::new("whoami.akamai.net")
        },
        Zone::new("l.google.com").geo("o-o.myaddr", "TXT", |_, r| {
            // Filled per address family below; this is the IPv4 form.
            format!("\"{}\"", r.egress_v4)
        }),
    ]
}

/// The DNS zones every resolver stubs to knot.
fn zone_names() -> Vec<&'static str> {
    zones().iter().map(|z| z.name).collect()
}

fn knot(dir: &Path) -> Result<Peer, LabError> {
    let kdir = dir.join("knot");
    let mut conf = String::new();
    let _ = write!(
        conf,
        "server:\n    listen: [ {}@53, {}@53 ]\n    rundir: {k}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         log:\n  - target: stderr\n    any: warning\n\
         database:\n    storage: {k}\n\
         template:\n  - id: default\n    storage: {k}\n    zonefile-sync: -1\n    journal-content: none\n",
        world::AUTHORITATIVE_V4,
        world::AUTHORITATIVE_V6,
        k = s(&kdir)
    );
    let mut modules = String::new();
    let mut zone_list = String::from("zone:\n");
    for zone in zones() {
        let mut text = format!(
            "$ORIGIN {origin}\n$TTL 300\n@ 60 SOA ns.o365lab. hostmaster.o365lab. 1 3600 600 86400 60\n@ NS ns.o365lab.\n",
            origin = if zone.name == "." { ".".to_owned() } else { format!("{}.", zone.name) }
        );
        for r in &zone.records {
            text.push_str(r);
            text.push('\n');
        }
        write(&kdir.join(zone.file_name()), &text)?;
        let _ = write!(
            zone_list,
            "  - domain: \"{}\"\n    file: {}\n",
            zone.name,
            s(&kdir.join(zone.file_name()))
        );
        if zone.whoami {
            zone_list.push_str("    module: mod-whoami\n");
        }
        if !zone.geo.is_empty() {
            let id = format!("geo-{}", zone.name.replace('.', "-"));
            let path = kdir.join(format!("{id}.conf"));
            let mut geo = String::new();
            for (owner, rtype, answer) in &zone.geo {
                let _ = writeln!(geo, "{owner}:");
                for r in RESOLVERS {
                    let f = world::front_door(r.geo).unwrap_or(&FRONT_DOORS[0]);
                    for (net, egress) in [
                        (format!("{}/32", r.egress_v4), r.egress_v4.to_string()),
                        (format!("{}/128", r.egress_v6), r.egress_v6.to_string()),
                    ] {
                        let value = if *rtype == "TXT" {
                            format!("\"{egress}\"")
                        } else {
                            answer(f, r)
                        };
                        let _ = writeln!(geo, "  - net: {net}\n    {rtype}: {value}");
                    }
                }
            }
            write(&path, &geo)?;
            let _ = write!(
                modules,
                "  - id: {id}\n    config-file: {}\n    ttl: 60\n    mode: subnet\n",
                s(&path)
            );
            let _ = writeln!(zone_list, "    module: mod-geoip/{id}");
        }
    }
    conf.push_str("mod-geoip:\n");
    conf.push_str(&modules);
    conf.push_str(&zone_list);
    let path = kdir.join("knot.conf");
    write(&path, &conf)?;
    Ok(Peer {
        name: "knot".into(),
        argv: vec!["knotd".into(), "-c".into(), s(&path)],
        ready: vec![sock(world::AUTHORITATIVE_V4, 53)],
        setup: Vec::new(),
        proxy_user_dir: None,
    })
}

fn unbound(dir: &Path, r: &Resolver) -> Result<Peer, LabError> {
    let udir = dir.join(format!("unbound-{}", r.name));
    let mut conf = format!(
        "server:\n\
         \x20   interface: {}\n    interface: {}\n\
         \x20   outgoing-interface: {}\n    outgoing-interface: {}\n\
         \x20   port: 53\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n\
         \x20   directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n\
         \x20   use-syslog: no\n    logfile: \"\"\n    verbosity: 0\n    num-threads: 1\n\
         \x20   so-reuseport: no\n    outgoing-range: 64\n    num-queries-per-thread: 32\n\
         \x20   msg-cache-size: 1m\n    rrset-cache-size: 1m\n    key-cache-size: 1m\n    neg-cache-size: 1m\n\
         \x20   access-control: 0.0.0.0/0 allow\n    access-control: ::/0 allow\n\
         \x20   module-config: \"iterator\"\n    qname-minimisation: no\n    do-not-query-localhost: yes\n\
         \x20   hide-identity: yes\n    hide-version: yes\n\
         remote-control:\n    control-enable: no\n",
        r.listen_v4,
        r.listen_v6,
        r.egress_v4,
        r.egress_v6,
        d = s(&udir)
    );
    // Over IPv4 only: whoami.akamai.net answers A for an IPv4 querier and AAAA for an IPv6 one, and
    // an A query must get the resolver's address every time.
    for zone in zone_names() {
        let _ = write!(
            conf,
            "stub-zone:\n    name: \"{zone}\"\n    stub-addr: {}\n",
            world::AUTHORITATIVE_V4
        );
    }
    let path = udir.join("unbound.conf");
    write(&path, &conf)?;
    Ok(Peer {
        name: format!("unbound-{}", r.name),
        argv: vec!["unbound".into(), "-d".into(), "-c".into(), s(&path)],
        ready: vec![sock(r.listen_v4, 53)],
        setup: Vec::new(),
        proxy_user_dir: None,
    })
}

/// Addresses nginx and coturn serve: front doors, the Teams anycast relay, and (nginx only) the web
/// endpoint. With the label nginx puts in `X-O365Lab-Site`.
fn web_sites(with_web: bool) -> Vec<(IpAddr, String)> {
    let mut v = Vec::new();
    for f in FRONT_DOORS {
        for a in f.addrs() {
            v.push((a, f.code.to_owned()));
        }
    }
    for a in [
        world::TEAMS_ANYCAST_V4.into(),
        world::TEAMS_ANYCAST_V6.into(),
    ] {
        v.push((a, "teams-anycast".to_owned()));
    }
    if with_web {
        for a in [world::WEB_V4.into(), world::WEB_V6.into()] {
            v.push((a, "web".to_owned()));
        }
    }
    v
}

fn nginx(dir: &Path, pki: &Pki) -> Result<Peer, LabError> {
    let ndir = dir.join("nginx");
    let www = dir.join("www");
    let downloads = www.join("download");
    std::fs::create_dir_all(&downloads).map_err(|source| LabError::Io {
        what: format!("creating {}", downloads.display()),
        source,
    })?;
    for (path, size) in world::DOWNLOADS {
        let file = www.join(path.trim_start_matches('/'));
        // Sparse: a 100 MB download costs no disk.
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(size))
            .map_err(|source| LabError::Io {
                what: format!("creating {}", file.display()),
                source,
            })?;
    }
    let sites = web_sites(true);
    let mut conf = format!(
        "daemon off;\nmaster_process off;\nuser root root;\nworker_processes 1;\npid {n}/nginx.pid;\nerror_log {n}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log off;\n    server_tokens on;\n    sendfile on;\n\
         \x20   client_body_temp_path {n}/body;\n    proxy_temp_path {n}/proxy;\n    fastcgi_temp_path {n}/fastcgi;\n\
         \x20   uwsgi_temp_path {n}/uwsgi;\n    scgi_temp_path {n}/scgi;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   map $server_addr $o365lab_site {{\n        default unknown;\n",
        n = s(&ndir)
    );
    for (a, label) in &sites {
        let _ = writeln!(conf, "        \"{a}\" {label};");
    }
    conf.push_str("    }\n");
    // Each leaf's server block answers the names its certificate covers.
    for (i, (leaf, _, names)) in LEAVES.iter().enumerate() {
        conf.push_str("    server {\n");
        // The first server is the default for names it does not list (and for no SNI at all).
        let default = if i == 0 { " default_server" } else { "" };
        for (a, _) in &sites {
            let _ = writeln!(conf, "        listen {} ssl{default};", sock(*a, 443));
            let _ = writeln!(conf, "        listen {}{default};", sock(*a, 80));
        }
        let _ = write!(
            conf,
            "        server_name {};\n\
             \x20       ssl_certificate {};\n        ssl_certificate_key {};\n\
             \x20       add_header X-O365Lab-Site $o365lab_site always;\n\
             \x20       location / {{ default_type text/plain; return 200 \"o365probe lab: $o365lab_site\\n\"; }}\n\
             \x20       location /download/ {{ root {}; }}\n    }}\n",
            names.join(" "),
            s(&pki.chain(leaf)),
            s(&pki.key(leaf)),
            s(&www)
        );
    }
    conf.push_str("}\n");
    let path = ndir.join("nginx.conf");
    write(&path, &conf)?;
    Ok(Peer {
        name: "nginx".into(),
        argv: vec![
            "nginx".into(),
            "-e".into(),
            s(&ndir.join("error.log")),
            "-p".into(),
            s(&ndir),
            "-c".into(),
            s(&path),
        ],
        ready: vec![
            sock(world::WEB_V4, 80),
            sock(FRONT_DOORS[FRONT_DOORS.len() - 1].v4, 443),
        ],
        setup: Vec::new(),
        proxy_user_dir: None,
    })
}

/// Settings every squid instance shares: files in its own directory, no cache, no disk, and a
/// silent box (no Via, no X-Cache) so that only what a scenario means it to show shows.
fn squid_common(q: &Path, resolver: &Resolver) -> String {
    format!(
        "pid_filename {q}/squid.pid\ncache_log /dev/stderr\naccess_log stdio:{q}/access.log\n\
         cache_store_log none\ncache deny all\ncache_mem 4 MB\ncoredump_dir {q}\n\
         netdb_filename none\npinger_enable off\nshutdown_lifetime 0 seconds\nlogfile_rotate 0\n\
         dns_nameservers {}\nvia off\nforwarded_for delete\n\
         reply_header_access X-Cache deny all\nreply_header_access X-Cache-Lookup deny all\n",
        resolver.listen_v4,
        q = s(q)
    )
}

/// A squid service name unique to this lab and instance (letters and digits only): it keeps
/// concurrent instances' shared memory and IPC apart.
fn service_name(dir: &Path, instance: &str) -> String {
    let lab = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("{lab}{instance}")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Squid's command line.
///
/// Squid refuses to run as root and, started as root, switches to `proxy`. In a user namespace
/// (`unshare -rn`) that user does not exist, so squid runs in a nested one where it *is* `proxy`
/// (mapped onto our uid, so it still owns the lab's files); the internet namespace lets anyone
/// bind ports below 1024 for the 403 endpoint's port 80.
fn squid_argv(conf: &Path, service: String) -> Vec<String> {
    let mut argv: Vec<String> = Vec::new();
    if !crate::netns::initial_user_namespace() {
        argv.extend(
            [
                "unshare",
                "--user",
                "--map-user=proxy",
                "--map-group=proxy",
                "--",
            ]
            .map(String::from),
        );
    }
    argv.extend([
        "squid".into(),
        "-N".into(),
        "-n".into(),
        service,
        "-f".into(),
        s(conf),
    ]);
    argv
}

/// The explicit proxy in London (open on 3128, 407 on 3129) and the 403 web endpoint.
fn proxy(dir: &Path) -> Result<Peer, LabError> {
    let q = dir.join("squid");
    let htpasswd = q.join("htpasswd");
    let hash = apr1(world::PROXY_PASSWORD)?;
    write(&htpasswd, &format!("{}:{hash}\n", world::PROXY_USER))?;
    let resolver = world::resolver_named(world::PROXY_RESOLVER).unwrap_or(&RESOLVERS[0]);
    let mut conf = squid_common(&q, resolver);
    let _ = write!(
        conf,
        "visible_hostname proxy.contoso.example\n\
         http_port {}:{open} name=open\nhttp_port [{}]:{open} name=open\n\
         http_port {}:{auth} name=auth\nhttp_port [{}]:{auth} name=auth\n\
         http_port {}:80 accel defaultsite=blocked.contoso.example name=forbidden\n\
         http_port [{}]:80 accel defaultsite=blocked.contoso.example name=forbidden\n\
         auth_param basic program /usr/lib/squid/basic_ncsa_auth {htpasswd}\n\
         auth_param basic children 1 startup=1 idle=1\nauth_param basic realm Contoso proxy\n\
         acl port_open myportname open\nacl port_auth myportname auth\n\
         acl authenticated proxy_auth REQUIRED\n\
         http_access allow port_open\n\
         http_access allow port_auth authenticated\n\
         http_access deny all\n",
        world::PROXY_V4,
        world::PROXY_V6,
        world::PROXY_V4,
        world::PROXY_V6,
        world::WEB_FORBIDDEN_V4,
        world::WEB_FORBIDDEN_V6,
        open = world::PROXY_OPEN_PORT,
        auth = world::PROXY_AUTH_PORT,
        htpasswd = s(&htpasswd),
    );
    let path = q.join("squid.conf");
    write(&path, &conf)?;
    Ok(Peer {
        name: "squid".into(),
        argv: squid_argv(&path, service_name(dir, "p")),
        ready: vec![
            sock(world::PROXY_V4, world::PROXY_OPEN_PORT),
            sock(world::WEB_FORBIDDEN_V4, 80),
        ],
        setup: Vec::new(),
        proxy_user_dir: Some(q),
    })
}

/// One office's transparent middlebox: ssl-bump re-signing everything with the inspection CA, or
/// peek-and-splice cutting TLS to the filtered names (and 403 for their HTTP).
fn middlebox(dir: &Path, pki: &Pki, m: &MiddleboxSite) -> Result<Peer, LabError> {
    let q = dir.join(format!("middlebox-{}", m.office));
    let (tls, http, forward) = middlebox_ports(m.index);
    let mut conf = squid_common(&q, m.resolver);
    let _ = write!(
        conf,
        "visible_hostname firewall.{office}.contoso.example\n\
         http_port 127.0.0.1:{forward}\n\
         http_port {http} intercept\n\
         https_port {tls} intercept ssl-bump tls-cert={ca} tls-key={key} generate-host-certificates=on dynamic_cert_mem_cache_size=4MB\n\
         sslcrtd_program /usr/lib/squid/security_file_certgen -s {q}/ssl_db -M 4MB\n\
         sslcrtd_children 2 startup=1 idle=1\n\
         tls_outgoing_options cafile={root}\n\
         acl step1 at_step SslBump1\n\
         acl filtered dstdomain {suffix}\nacl filtered_sni ssl::server_name {suffix}\n\
         ssl_bump peek step1\n",
        office = m.office,
        q = s(&q),
        ca = s(&pki.inspection_ca()),
        key = s(&pki.inspection_key()),
        root = s(&pki.root()),
        suffix = world::FILTERED_SUFFIX,
    );
    conf.push_str(match m.kind {
        // Stare so the forged certificate mimics the real one's names, then bump.
        Middlebox::TlsInspection => {
            "ssl_bump stare all\nssl_bump bump all\nhttp_access allow all\n"
        }
        Middlebox::SniFilter => {
            "ssl_bump terminate filtered_sni\nssl_bump splice all\n\
             http_access deny filtered\nhttp_access allow all\n"
        }
    });
    let path = q.join("squid.conf");
    write(&path, &conf)?;
    let loopback = std::net::Ipv4Addr::LOCALHOST;
    Ok(Peer {
        name: format!("middlebox-{}", m.office),
        argv: squid_argv(&path, service_name(dir, &format!("m{}", m.index))),
        ready: vec![sock(loopback, tls), sock(loopback, http)],
        setup: vec![vec![
            "/usr/lib/squid/security_file_certgen".into(),
            "-c".into(),
            "-s".into(),
            s(&q.join("ssl_db")),
            "-M".into(),
            "4MB".into(),
        ]],
        proxy_user_dir: Some(q),
    })
}

/// An Apache MD5 hash from `openssl passwd -apr1`, which squid's basic_ncsa_auth reads.
fn apr1(password: &str) -> Result<String, LabError> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["passwd", "-apr1", "-salt", "o365lab", password]);
    let out = cmd.output().map_err(|source| LabError::Io {
        what: "running openssl passwd".into(),
        source,
    })?;
    let out = crate::netns::exited_ok("openssl passwd -apr1".into(), out)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// coturn answering STUN on `port` and `port + 1` (its RFC 5780 alternative port) at every front
/// door and the Teams anycast address.
fn coturn(dir: &Path, port: u16) -> Peer {
    let mut argv: Vec<String> = [
        "turnserver",
        "-n",
        "--stun-only",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--simple-log",
        "--log-file",
        "stdout",
        "--relay-threads",
        "1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    argv.extend([
        "--listening-port".into(),
        port.to_string(),
        "--alt-listening-port".into(),
        (port + 1).to_string(),
        "--pidfile".into(),
        s(&dir.join(format!("coturn-{port}.pid"))),
        "--userdb".into(),
        s(&dir.join(format!("coturn-{port}.sqlite"))),
    ]);
    for (a, _) in web_sites(false) {
        argv.push("--listening-ip".into());
        argv.push(a.to_string());
    }
    Peer {
        name: format!("coturn-{port}"),
        argv,
        ready: vec![sock(world::TEAMS_ANYCAST_V4, port)],
        setup: Vec::new(),
        proxy_user_dir: None,
    }
}
