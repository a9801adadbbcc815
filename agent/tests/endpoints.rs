//! The endpoint list: the parser on schema-following and hostile fixtures, targets from endpoint sets,
//! and the web service client against a loopback HTTP server that counts what it is asked.

use o365probe::config::Instance;
use o365probe::endpoints::{
    self, fallback, parse, targets, ClientSettings, EndpointsClient, EndpointsError, IpNet,
    Refresh, Selection, Source, UrlKind, MAX_RESPONSE_BYTES, MAX_SETS, MAX_URLS,
};
use o365probe_core::wire::endpoint::{Category, ServiceArea};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn all() -> Selection {
    Selection {
        services: ServiceArea::ALL.to_vec(),
        categories: vec![Category::Optimize, Category::Allow, Category::Default],
        required_only: false,
        tenant: None,
    }
}

// ---------------------------------------------------------------------------------------------------
// Parser.

#[test]
fn a_schema_following_list_parses_completely() {
    let parsed = parse(&fixture("endpoints-worldwide.json")).unwrap();
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    let ids: Vec<u32> = parsed.sets.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 2, 8, 11, 12, 31, 46, 64]);

    let exchange = &parsed.sets[0];
    assert_eq!(exchange.service_area, ServiceArea::Exchange);
    assert_eq!(exchange.category, Category::Optimize);
    assert!(exchange.required && exchange.express_route);
    assert_eq!(exchange.tcp_ports.to_string(), "80,443");
    assert!(exchange.udp_ports.is_empty());
    assert_eq!(exchange.ips[0], "13.107.6.152/31".parse::<IpNet>().unwrap());
    assert_eq!(exchange.ips[4].to_string(), "2603:1006::/40");

    let teams = &parsed.sets[3];
    assert_eq!(teams.service_area, ServiceArea::Teams, "Skype is Teams");
    assert!(teams.urls.is_empty());
    assert_eq!(teams.udp_ports.first_ports(8), [3478, 3479, 3480, 3481]);
    assert!(teams.ips[0].contains("52.113.1.1".parse().unwrap()));

    let kinds: Vec<UrlKind> = parsed.sets[4].urls.iter().map(|u| u.kind).collect();
    assert_eq!(kinds, [UrlKind::Wildcard, UrlKind::Wildcard, UrlKind::Host]);
    assert_eq!(parsed.sets[5].urls[0].kind, UrlKind::Tenant);
    assert_eq!(
        parsed.sets[5].urls[1].host(Some("contoso")).as_deref(),
        Some("contoso.sharepoint.com")
    );
    assert_eq!(parsed.sets[5].urls[1].host(None), None);
    assert_eq!(
        parsed.sets[4].urls[1].host(Some("contoso")),
        None,
        "a wildcard is never a host"
    );
}

#[test]
fn hostile_entries_are_skipped_with_a_reason_and_good_ones_kept() {
    let parsed = parse(&fixture("endpoints-hostile.json")).unwrap();
    let kept: Vec<u32> = parsed.sets.iter().map(|s| s.id).collect();
    assert_eq!(kept, [100, 124]);
    let wide = &parsed.sets[1];
    assert_eq!(wide.udp_ports.to_string(), "1-65535");
    assert_eq!(
        wide.notes.as_deref(),
        Some("Unicode é☃ and a very wide UDP range")
    );

    let expected: &[(usize, &str)] = &[
        (1, "invalid type: string \"101\""),
        (2, "missing field `serviceArea`"),
        (3, "unknown serviceArea \"Intune\""),
        (4, "unknown category \"Optimise\""),
        (5, "tcpPorts: bad port \"abc\""),
        (6, "tcpPorts: bad port \"0\""),
        (7, "udpPorts: bad port \"70000\""),
        (8, "udpPorts: port range \"3481-3478\" runs backwards"),
        (9, "tcpPorts: bad port \"1-2-3\""),
        (10, "invalid type: integer `443`, expected a string"),
        (
            11,
            "invalid type: string \"a.example.com\", expected an array",
        ),
        (12, "invalid type: integer `42`, expected a string"),
        (13, "urls: bad URL \"bad host.example.com\""),
        (14, "ips: bad IP range \"10.0.0.0/33\""),
        (15, "ips: bad IP range \"2603:1063::/129\""),
        (16, "ips: bad IP range \"not-an-ip\""),
        (17, "invalid type: string \"yes\", expected a boolean"),
        (18, "missing field `required`"),
        (19, "invalid value: integer `-5`"),
        (20, "invalid type: floating point `1.5`"),
        (21, "invalid type: null"),
        (22, "invalid type: string \"hello\""),
        (23, "duplicate id 100"),
        (25, "urls: bad URL \"\\0evil.example.com\""),
        (26, "invalid type: map, expected a string"),
        (27, "invalid type: null, expected a boolean"),
    ];
    let got: Vec<(usize, String)> = parsed
        .skipped
        .iter()
        .map(|s| (s.index, s.reason.clone()))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((index, reason), (want_index, want)) in got.iter().zip(expected) {
        assert_eq!(index, want_index, "{got:#?}");
        assert!(
            reason.contains(want),
            "entry {index}: {reason:?} lacks {want:?}"
        );
    }
    assert_eq!(parsed.skipped[0].id, None, "a string id is not an id");
    assert_eq!(parsed.skipped[2].id, Some(103));
    assert_eq!(
        parsed.skipped[2].to_string(),
        "entry 3 (id 103): unknown serviceArea \"Intune\""
    );
}

#[test]
fn unusable_lists_are_errors_not_panics() {
    let list_err = |json: &[u8]| match parse(json) {
        Err(EndpointsError::List(why)) => why,
        other => panic!("{other:?}"),
    };
    assert!(list_err(b"{\"error\": \"No tenant\"}").contains("expected a JSON array"));
    assert!(list_err(b"<html>502 Bad Gateway</html>").contains("not JSON"));
    assert!(list_err(b"").contains("not JSON"));
    assert_eq!(list_err(b"[]"), "no endpoint sets");
    assert!(list_err(b"[1, 2]").starts_with("no usable endpoint set (2 skipped; first: entry 0: "));
    // Deep nesting costs neither the stack nor the good entries around it.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let why = list_err(format!("[{deep}]").as_bytes());
    assert!(
        why.starts_with("no usable endpoint set (1 skipped"),
        "{why}"
    );
    let nested_field = format!(
        r#"[{{"id":7,"serviceArea":"Common","urls":["a.example.com"],"tcpPorts":"443","category":"Allow","required":true,"extra":{deep}}}]"#
    );
    assert_eq!(parse(nested_field.as_bytes()).unwrap().sets[0].id, 7);
    // More sets than the bound.
    let set = r#"{"id":1,"serviceArea":"Common","urls":["a.example.com"],"tcpPorts":"443","category":"Allow","required":true}"#;
    let many = format!("[{}]", vec![set; MAX_SETS + 1].join(","));
    assert!(list_err(many.as_bytes()).contains(&format!("more than {MAX_SETS} elements")));
    // Over the size cap, whatever it holds.
    let huge = vec![b' '; MAX_RESPONSE_BYTES + 1];
    assert!(list_err(&huge).contains("longer than"));
}

#[test]
fn a_set_with_too_many_urls_is_skipped() {
    let urls: Vec<String> = (0..=MAX_URLS)
        .map(|i| format!("\"h{i}.example.com\""))
        .collect();
    let json = format!(
        r#"[{{"id":1,"serviceArea":"Common","urls":[{}],"tcpPorts":"443","category":"Allow","required":true}},
            {{"id":2,"serviceArea":"Common","urls":["ok.example.com"],"tcpPorts":"443","category":"Allow","required":true}}]"#,
        urls.join(",")
    );
    let parsed = parse(json.as_bytes()).unwrap();
    assert_eq!(parsed.sets.len(), 1);
    assert!(parsed.skipped[0]
        .reason
        .contains(&format!("more than {MAX_URLS} elements")));
}

#[test]
fn the_bundled_fallback_holds_the_documented_optimize_sets() {
    let parsed = parse(endpoints::FALLBACK_JSON.as_bytes()).unwrap();
    assert!(parsed.skipped.is_empty());
    assert_eq!(fallback(), parsed.sets);
    let ids: Vec<u32> = parsed.sets.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 11, 31]);
    for set in &parsed.sets {
        assert_eq!(set.category, Category::Optimize);
        assert!(set.required);
        assert!(
            set.notes.as_deref().unwrap_or("").contains("FALLBACK")
                && set
                    .notes
                    .as_deref()
                    .unwrap_or("")
                    .contains("not a snapshot"),
            "set {} must say it is a fallback",
            set.id
        );
    }
    let teams = &parsed.sets[1];
    let ips: Vec<String> = teams.ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["52.112.0.0/14", "52.122.0.0/15", "2603:1063::/38"]);
    assert_eq!(teams.udp_ports.first_ports(8), [3478, 3479, 3480, 3481]);

    let mut selection = all();
    selection.tenant = Some("contoso".into());
    let t = targets(&parsed.sets, &selection);
    let hosts: Vec<&str> = t.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(
        hosts,
        [
            "outlook.office.com",
            "outlook.office365.com",
            "world.tr.teams.microsoft.com",
            "worldaz.tr.teams.microsoft.com",
            "contoso.sharepoint.com",
            "contoso-my.sharepoint.com"
        ]
    );
    assert_eq!(
        t[0].tcp,
        [443, 80],
        "443 first: the tls and http probes use the first port"
    );
    assert_eq!(t[2].udp, [3478, 3479, 3480, 3481]);
    assert!(t[2].tcp.is_empty());
    // Without a tenant, the tenant's SharePoint names cannot be probed.
    assert_eq!(targets(&parsed.sets, &all()).len(), 4);
}

#[test]
fn targets_follow_the_selection_and_merge_hosts() {
    let sets = parse(&fixture("endpoints-worldwide.json")).unwrap().sets;
    let t = targets(&sets, &all());
    let hosts: Vec<&str> = t.iter().map(|t| t.host.as_str()).collect();
    // Optimize first; wildcards and tenant names without a tenant left out; a host in two sets appears
    // once. The Teams media set lists only address ranges: its UDP ports go to the transport relay.
    assert_eq!(
        hosts,
        [
            "outlook.office.com",
            "outlook.office365.com",
            "world.tr.teams.microsoft.com",
            "smtp.office365.com",
            "teams.microsoft.com",
            "login.microsoftonline.com",
            "login.microsoft.com",
            "office.live.com"
        ]
    );
    let owa = &t[1];
    assert_eq!(
        owa.category,
        Category::Optimize,
        "the most demanding category of its sets"
    );
    assert_eq!(owa.tcp, [443, 80, 587], "ports of both sets");
    let relay = &t[2];
    assert_eq!(
        (
            relay.tcp.as_slice(),
            relay.udp.as_slice(),
            relay.category,
            relay.required
        ),
        (
            &[][..],
            &[3478, 3479, 3480, 3481][..],
            Category::Optimize,
            true
        )
    );
    // STUN answers only on the relays: the web front end of set 12 keeps its TCP port and no UDP, or
    // its train would read as "UDP blocked".
    let teams = &t[4];
    assert_eq!(teams.host, "teams.microsoft.com");
    assert_eq!(
        (teams.tcp.as_slice(), teams.udp.as_slice()),
        (&[443][..], &[][..])
    );

    let only = Selection {
        services: vec![ServiceArea::Exchange],
        categories: vec![Category::Optimize],
        required_only: true,
        tenant: None,
    };
    let hosts: Vec<String> = targets(&sets, &only).into_iter().map(|t| t.host).collect();
    assert_eq!(hosts, ["outlook.office.com", "outlook.office365.com"]);

    // A very wide range is a client port range, not a service: its first ports are not probed blindly.
    let hostile = parse(&fixture("endpoints-hostile.json")).unwrap().sets;
    let relay = targets(&hostile, &all())
        .into_iter()
        .find(|t| t.host == "relay.example.net")
        .unwrap();
    assert!(relay.udp.is_empty(), "{:?}", relay.udp);
    assert_eq!(relay.tcp, [443]);
}

// ---------------------------------------------------------------------------------------------------
// Client against a loopback server.

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn ok(body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into(),
    }
}

fn version(v: &str) -> Reply {
    ok(format!(r#"{{"instance":"Worldwide","latest":"{v}"}}"#))
}

type Handler = Box<dyn FnMut(&str) -> Reply + Send>;

/// A request's line and headers, up to the blank line (or whatever came within 5 s).
fn read_head(conn: &mut TcpStream) -> Vec<u8> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}

/// A loopback HTTP server that logs every request path and answers with the current handler.
struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    handler: Arc<Mutex<Handler>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Handler>> =
            Arc::new(Mutex::new(Box::new(|_: &str| ok("unscripted"))));
        let (log2, handler2) = (log.clone(), handler.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let request = read_head(&mut conn);
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                log2.lock().unwrap().push(path.clone());
                let reply = (handler2.lock().unwrap())(&path);
                let mut head = format!(
                    "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&reply.body);
                let _ = conn.flush();
            }
        });
        Server { addr, log, handler }
    }

    fn respond(&self, handler: impl FnMut(&str) -> Reply + Send + 'static) {
        *self.handler.lock().unwrap() = Box::new(handler);
    }

    /// Requests since the last call, as (kind, full path).
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.take()
            .iter()
            .map(|p| {
                if p.starts_with("/version/") {
                    "version"
                } else if p.starts_with("/endpoints/") {
                    "endpoints"
                } else {
                    "other"
                }
            })
            .collect()
    }
}

/// Answers versions from `current` and the worldwide fixture for the list.
fn service(current: Arc<Mutex<String>>) -> impl FnMut(&str) -> Reply + Send {
    move |path: &str| {
        if path.starts_with("/version/") {
            version(&current.lock().unwrap())
        } else {
            ok(fixture("endpoints-worldwide.json"))
        }
    }
}

fn state_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "o365probe-endpoints-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn settings(server: &Server, dir: &Path) -> ClientSettings {
    ClientSettings {
        service_url: format!("http://{}/", server.addr),
        instance: Instance::Worldwide,
        tenant: Some("contoso".into()),
        state_dir: dir.to_path_buf(),
        refresh_interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        proxy: None,
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

#[test]
fn one_version_check_per_interval_and_the_list_only_when_it_changes() {
    let server = Server::start();
    let current = Arc::new(Mutex::new("2024103100".to_owned()));
    server.respond(service(current.clone()));
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    assert_eq!(client.source(), &Source::Fallback, "nothing fetched yet");

    let r = client.refresh(at(0)).unwrap();
    assert!(
        matches!(&r, Refresh::Updated { version, sets: 8, .. } if version == "2024103100"),
        "{r:?}"
    );
    let paths = server.take();
    assert_eq!(paths.len(), 2, "{paths:?}");
    let id = client.client_request_id().to_owned();
    assert_eq!(paths[0], format!("/version/Worldwide?clientrequestid={id}"));
    assert_eq!(
        paths[1],
        format!("/endpoints/Worldwide?clientrequestid={id}&TenantName=contoso&NoIPv6=false")
    );
    assert_eq!(
        client.source(),
        &Source::Service {
            version: "2024103100".into()
        }
    );
    assert_eq!(client.sets().len(), 8);

    // Within the hour: no request at all, however often the agent asks.
    for s in [1, 600, 3599] {
        assert!(
            matches!(client.refresh(at(s)).unwrap(), Refresh::NotDue { next_check } if next_check == at(3600))
        );
    }
    assert!(server.kinds().is_empty());

    // On the hour: one version check; same version, so no download.
    assert_eq!(
        client.refresh(at(3600)).unwrap(),
        Refresh::Unchanged {
            version: "2024103100".into()
        }
    );
    assert_eq!(server.kinds(), ["version"]);
    client.refresh(at(3700)).unwrap();
    assert!(server.kinds().is_empty());

    // A new version: one check, one download.
    *current.lock().unwrap() = "2024110500".into();
    assert!(matches!(
        client.refresh(at(7200)).unwrap(),
        Refresh::Updated { .. }
    ));
    assert_eq!(server.kinds(), ["version", "endpoints"]);
    assert_eq!(
        client.source(),
        &Source::Service {
            version: "2024110500".into()
        }
    );
}

#[test]
fn retry_after_is_honoured_even_across_a_restart() {
    let server = Server::start();
    server.respond(|_: &str| Reply {
        status: 429,
        headers: vec![("Retry-After".into(), "300".into())],
        body: b"slow down".to_vec(),
    });
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    match client.refresh(at(0)) {
        Err(EndpointsError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(300)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.kinds(), ["version"]);
    assert_eq!(
        client.refresh(at(299)).unwrap(),
        Refresh::BackingOff { until: at(300) }
    );
    // A restarted agent keeps waiting too.
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    assert_eq!(
        client.refresh(at(120)).unwrap(),
        Refresh::BackingOff { until: at(300) }
    );
    assert!(server.kinds().is_empty());

    let current = Arc::new(Mutex::new("1".to_owned()));
    server.respond(service(current));
    assert!(matches!(
        client.refresh(at(300)).unwrap(),
        Refresh::Updated { .. }
    ));
    assert_eq!(server.kinds(), ["version", "endpoints"]);
}

#[test]
fn a_garbage_list_keeps_the_cache_which_survives_a_restart() {
    let server = Server::start();
    let current = Arc::new(Mutex::new("1".to_owned()));
    server.respond(service(current.clone()));
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    client.refresh(at(0)).unwrap();
    let good = client.sets().to_vec();
    server.take();

    // Version 2 comes with garbage instead of a list.
    *current.lock().unwrap() = "2".into();
    let v = current.clone();
    server.respond(move |path: &str| {
        if path.starts_with("/version/") {
            version(&v.lock().unwrap())
        } else {
            ok(r#"[{"id": "x"}, "garbage"]"#)
        }
    });
    let err = client.refresh(at(3600)).unwrap_err();
    assert!(matches!(err, EndpointsError::List(_)), "{err}");
    assert_eq!(client.sets(), good.as_slice());
    assert_eq!(
        client.source(),
        &Source::Service {
            version: "1".into()
        }
    );
    // The failure backs off (1 minute first) instead of hammering the service.
    assert_eq!(
        client.refresh(at(3601)).unwrap(),
        Refresh::BackingOff { until: at(3660) }
    );
    assert_eq!(server.kinds(), ["version", "endpoints"]);

    // A restart reads the cache, not the fallback, and makes no request to do so.
    let restarted = EndpointsClient::open(settings(&server, &dir)).unwrap();
    assert_eq!(restarted.sets(), good.as_slice());
    assert_eq!(
        restarted.source(),
        &Source::Service {
            version: "1".into()
        }
    );
    assert!(server.kinds().is_empty());

    // An answer that is too large is refused as well, and the cache still stands.
    server.respond(|path: &str| {
        if path.starts_with("/version/") {
            version("3")
        } else {
            ok(vec![b' '; MAX_RESPONSE_BYTES + 10])
        }
    });
    let mut client = restarted;
    assert!(matches!(
        client.refresh(at(3660)),
        Err(EndpointsError::TooLarge { .. })
    ));
    assert_eq!(client.sets(), good.as_slice());
    // Second failure in a row: two minutes.
    assert_eq!(
        client.refresh(at(3661)).unwrap(),
        Refresh::BackingOff { until: at(3780) }
    );

    // Once the service is sane again, the new list replaces the cache.
    *current.lock().unwrap() = "4".into();
    server.respond(service(current));
    assert!(matches!(
        client.refresh(at(3780)).unwrap(),
        Refresh::Updated { .. }
    ));
    assert_eq!(
        client.source(),
        &Source::Service {
            version: "4".into()
        }
    );
}

#[test]
fn errors_back_off_exponentially_and_keep_the_fallback() {
    let server = Server::start();
    server.respond(|_: &str| Reply {
        status: 503,
        headers: vec![],
        body: vec![],
    });
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    assert!(matches!(
        client.refresh(at(0)),
        Err(EndpointsError::Status { status: 503, .. })
    ));
    assert_eq!(
        client.refresh(at(59)).unwrap(),
        Refresh::BackingOff { until: at(60) }
    );
    assert!(client.refresh(at(60)).is_err());
    assert_eq!(
        client.refresh(at(61)).unwrap(),
        Refresh::BackingOff { until: at(180) }
    );
    assert!(client.refresh(at(180)).is_err());
    assert_eq!(
        client.refresh(at(181)).unwrap(),
        Refresh::BackingOff { until: at(420) }
    );
    assert_eq!(server.kinds(), ["version", "version", "version"]);
    assert_eq!(client.source(), &Source::Fallback);
    assert_eq!(client.sets(), fallback().as_slice());

    // A bad version answer is an error too, and nothing is downloaded on its strength.
    server.respond(|_: &str| ok(r#"{"instance":"China","latest":"1"}"#));
    assert!(matches!(
        client.refresh(at(420)),
        Err(EndpointsError::Version(_))
    ));
    assert_eq!(server.kinds(), ["version"]);
}

#[test]
fn the_client_request_id_is_made_once_and_kept() {
    let server = Server::start();
    server.respond(service(Arc::new(Mutex::new("1".into()))));
    let dir = state_dir();
    let first = EndpointsClient::open(settings(&server, &dir)).unwrap();
    let id = first.client_request_id().to_owned();
    assert!(endpoints::is_guid(&id), "{id}");
    assert_eq!(&id[14..15], "4", "a version 4 GUID: {id}");
    drop(first);
    let mut second = EndpointsClient::open(settings(&server, &dir)).unwrap();
    assert_eq!(second.client_request_id(), id);
    second.refresh(at(0)).unwrap();
    assert!(server
        .take()
        .iter()
        .all(|p| p.contains(&format!("clientrequestid={id}"))));
    // Another machine (another state directory) has another id.
    let other = EndpointsClient::open(settings(&server, &state_dir())).unwrap();
    assert_ne!(other.client_request_id(), id);
}

#[test]
fn a_clock_that_jumps_back_makes_the_check_due() {
    // Routers without a real-time clock boot in the past until NTP answers.
    let server = Server::start();
    server.respond(service(Arc::new(Mutex::new("1".into()))));
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    client.refresh(at(10_000)).unwrap();
    server.take();
    assert!(matches!(
        client.refresh(at(5_000)).unwrap(),
        Refresh::Unchanged { .. }
    ));
    assert_eq!(server.kinds(), ["version"]);
}

#[test]
fn a_corrupt_cache_falls_back_and_refetches() {
    let server = Server::start();
    let current = Arc::new(Mutex::new("1".to_owned()));
    server.respond(service(current));
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    client.refresh(at(0)).unwrap();
    std::fs::write(dir.join("endpoints.json"), b"\0\0 not json").unwrap();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    assert_eq!(client.source(), &Source::Fallback);
    server.take();
    // Same version as before, but the list on disk is gone: it is fetched again, at once.
    assert!(matches!(
        client.refresh(at(1)).unwrap(),
        Refresh::Updated { .. }
    ));
    assert_eq!(server.kinds(), ["version", "endpoints"]);
}

#[test]
fn another_tenant_does_not_reuse_the_cached_list() {
    let server = Server::start();
    server.respond(service(Arc::new(Mutex::new("1".into()))));
    let dir = state_dir();
    let mut client = EndpointsClient::open(settings(&server, &dir)).unwrap();
    client.refresh(at(0)).unwrap();
    server.take();
    // Same machine, same version, but the operator set another tenant: its names differ.
    let mut other = settings(&server, &dir);
    other.tenant = Some("fabrikam".into());
    let mut client = EndpointsClient::open(other).unwrap();
    assert_eq!(client.source(), &Source::Fallback);
    assert!(matches!(
        client.refresh(at(60)).unwrap(),
        Refresh::Updated { .. }
    ));
    let paths = server.take();
    assert!(paths[1].contains("TenantName=fabrikam"), "{paths:?}");
}

/// The service through a proxy whose password is percent-encoded in `[http] proxy`: the credentials
/// go out decoded, as the HTTP checks send them, not as the encoded text.
#[test]
fn proxy_credentials_are_sent_as_the_http_checks_send_them() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let head = read_head(&mut conn);
        *record.lock().unwrap() = String::from_utf8_lossy(&head).into_owned();
        let _ = conn
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
    });
    let dir = state_dir();
    let mut client = EndpointsClient::open(ClientSettings {
        service_url: "http://192.0.2.1/".into(),
        instance: Instance::Worldwide,
        tenant: None,
        state_dir: dir.clone(),
        refresh_interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        proxy: Some(format!("http://alice:won%20der%40land@{proxy}")),
    })
    .unwrap();
    assert!(client.refresh(at(0)).is_err());
    let head = seen.lock().unwrap().clone();
    // base64("alice:won der@land")
    assert!(
        head.contains("Proxy-Authorization: Basic YWxpY2U6d29uIGRlckBsYW5k\r\n"),
        "{head}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
