//! HTTP checks and the download test as a network engineer meets them: what a service, a proxy, a
//! captive portal, a TLS-inspecting box or a dead server does to a request, and what the agent says
//! about it. Loopback servers with canned answers everywhere; the lab (root) for squid, nginx and the
//! WAN relay's 50 Mbit/s line.
//!
//! minreq reads the trusted roots once per process, so the tests that need a particular root (the
//! lab's, or a test CA) run alone in a child process of this binary with `SSL_CERT_FILE` set.

use o365probe::config::{Download, Http, Proxy, ProxyEnv, Target};
use o365probe::download::{self, DownloadError, DownloadOptions, Stop};
use o365probe::http::{check, url_for, Failure, HttpCheck, HttpOptions, MAX_HEAD_BYTES};
use o365probe::net::SocketOptions;
use o365probe_core::probe::http::ProxyProduct;
use o365probe_core::report::HttpVerdict;
use o365probe_core::wire::endpoint::{Category, ServiceArea};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------------
// Loopback peers.

/// A loopback TCP server on `ip`; each connection goes to `handle` on a thread of its own.
fn serve_on(ip: &str, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = handle.clone();
            thread::spawn(move || handle(stream));
        }
    });
    addr
}

fn serve(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    serve_on("127.0.0.1", handle)
}

/// Reads a request head (at most 64 KiB).
fn read_request(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The request heads a server received.
type Requests = Arc<Mutex<Vec<String>>>;

/// A server answering every request with `response`, recording the request heads.
fn canned(response: &'static str) -> (SocketAddr, Requests) {
    let requests = Requests::default();
    let seen = requests.clone();
    let addr = serve(move |mut stream| {
        let head = read_request(&mut stream);
        seen.lock().unwrap().push(head);
        let _ = stream.write_all(response.as_bytes());
    });
    (addr, requests)
}

fn first_lines(requests: &Requests) -> Vec<String> {
    requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.lines().next().unwrap_or_default().to_owned())
        .collect()
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn options(timeout: Duration) -> HttpOptions {
    HttpOptions::direct(timeout)
}

fn via(proxy: SocketAddr) -> HttpOptions {
    HttpOptions {
        proxy: Some(format!("http://{proxy}")),
        timeout: 5 * SECOND,
        bind: SocketOptions::default(),
        resolved: Vec::new(),
    }
}

fn assert_judged(c: &HttpCheck, status: u16, verdict: HttpVerdict, proxy: Option<ProxyProduct>) {
    assert_eq!(
        (c.status, c.verdict(), c.proxy_product()),
        (Some(status), verdict, proxy),
        "{c}"
    );
    assert_eq!(c.failure, None, "{c}");
}

const IIS_200: &str = "HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/10.0\r\nContent-Length: 2\r\n\
                       Content-Type: text/plain\r\nConnection: close\r\n\r\nok";
const SQUID_403: &str = "HTTP/1.1 403 Forbidden\r\nServer: squid/3.5.27\r\nMime-Version: 1.0\r\n\
                         Content-Type: text/html;charset=utf-8\r\nContent-Length: 9\r\n\
                         X-Squid-Error: ERR_ACCESS_DENIED 0\r\nVary: Accept-Language\r\n\
                         X-Cache: MISS from proxy.branch.example\r\n\
                         Via: 1.1 proxy.branch.example (squid/3.5.27)\r\nConnection: close\r\n\r\nForbidden";
const SQUID_407: &str = "HTTP/1.1 407 Proxy Authentication Required\r\nServer: squid/5.7\r\n\
                         Content-Type: text/html;charset=utf-8\r\nContent-Length: 6\r\n\
                         X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n\
                         Proxy-Authenticate: Basic realm=\"Contoso proxy\"\r\n\
                         Connection: close\r\n\r\ndenied";

// ---------------------------------------------------------------------------------------------------
// What comes back, judged.

#[test]
fn a_service_answering_is_ok_and_its_server_is_kept() {
    let (addr, requests) = canned(IIS_200);
    let c = check(&format!("http://{addr}/owa/"), &options(5 * SECOND));
    assert_judged(&c, 200, HttpVerdict::Ok, None);
    assert_eq!(c.header("Server"), Some("Microsoft-IIS/10.0"));
    assert_eq!(
        c.header("content-type"),
        None,
        "only the proxy-revealing headers are kept"
    );
    assert!(c.ttfb > Duration::ZERO && c.ttfb < 5 * SECOND, "{c}");
    let s = c.summary(7);
    assert_eq!(
        (s.target, s.status, s.verdict),
        (7, Some(200), HttpVerdict::Ok)
    );
    assert_eq!(first_lines(&requests), ["GET /owa/ HTTP/1.1"]);
    assert!(requests.lock().unwrap()[0].contains("User-Agent: o365probe/"));
}

#[test]
fn a_direct_check_goes_to_the_addresses_the_office_resolver_gave() {
    // The name exists nowhere: only the resolved address (from the core's DNS probe) reaches the server,
    // and the request still names the host.
    let (addr, requests) = canned(IIS_200);
    let mut options = options(5 * SECOND);
    options.resolved = vec![addr.ip()];
    let c = check(
        &format!("http://outlook.office365.invalid:{}/", addr.port()),
        &options,
    );
    assert_judged(&c, 200, HttpVerdict::Ok, None);
    let head = requests.lock().unwrap()[0].clone();
    assert!(
        head.contains(&format!("Host: outlook.office365.invalid:{}", addr.port())),
        "{head}"
    );
    // Without it the same name does not resolve: the check says DNS.
    let c = check(
        &format!("http://outlook.office365.invalid:{}/", addr.port()),
        &self::options(5 * SECOND),
    );
    assert!(
        c.failure
            .as_ref()
            .is_some_and(|f| f.to_string().starts_with("DNS")),
        "{c}"
    );
}

#[test]
fn a_squid_403_is_proxy_blocked_naming_squid() {
    let (addr, _) = canned(SQUID_403);
    let c = check(&format!("http://{addr}/"), &options(5 * SECOND));
    assert_judged(
        &c,
        403,
        HttpVerdict::ProxyBlocked,
        Some(ProxyProduct::Squid),
    );
    assert_eq!(c.header("x-squid-error"), Some("ERR_ACCESS_DENIED 0"));
    assert_eq!(
        c.header("via"),
        Some("1.1 proxy.branch.example (squid/3.5.27)")
    );
    let line = c.to_string();
    assert!(
        line.contains("403 blocked by a proxy") && line.contains("Squid"),
        "{line}"
    );
}

#[test]
fn a_zscaler_block_page_is_proxy_blocked_naming_zscaler() {
    let (addr, _) = canned(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nServer: Zscaler/6.2\r\n\
         Cache-Control: no-cache\r\nContent-Length: 26\r\n\r\n<html>Access denied</html>",
    );
    let c = check(&format!("http://{addr}/"), &options(5 * SECOND));
    assert_judged(
        &c,
        403,
        HttpVerdict::ProxyBlocked,
        Some(ProxyProduct::Zscaler),
    );
}

#[test]
fn a_captive_portal_redirect_is_reported_and_not_followed() {
    // The portal is another loopback address: a different host, and a request to it would show.
    let portal_hits = Requests::default();
    let hits = portal_hits.clone();
    let portal = serve_on("127.0.0.2", move |mut s| {
        hits.lock().unwrap().push(read_request(&mut s));
    });
    let location =
        format!("http://{portal}/index.php?zone=guest&redirurl=http%3A%2F%2Fwww.office.com%2F");
    let response: &'static str = Box::leak(
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .into_boxed_str(),
    );
    let (addr, _) = canned(response);
    let c = check(&format!("http://{addr}/"), &options(5 * SECOND));
    assert_judged(&c, 302, HttpVerdict::Redirected, None);
    assert_eq!(c.header("location"), Some(location.as_str()));
    thread::sleep(Duration::from_millis(100));
    assert!(
        portal_hits.lock().unwrap().is_empty(),
        "the redirect was followed"
    );
}

#[test]
fn http_through_a_proxy_asks_the_proxy_in_absolute_form_and_judges_its_407() {
    let (proxy, requests) = canned(SQUID_407);
    let c = check("http://outlook.office365.com/owa/", &via(proxy));
    assert_judged(
        &c,
        407,
        HttpVerdict::ProxyAuthRequired,
        Some(ProxyProduct::Squid),
    );
    assert_eq!(c.proxy, Some(proxy.to_string()));
    assert_eq!(
        c.header("proxy-authenticate"),
        Some("Basic realm=\"Contoso proxy\"")
    );
    assert!(!c.tunnel_refused);
    let request = requests.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("GET http://outlook.office365.com/owa/ HTTP/1.1\r\n")
            && request.contains("\r\nHost: outlook.office365.com\r\n"),
        "{request}"
    );
}

#[test]
fn https_through_a_proxy_that_answers_connect_with_407_is_proxy_auth_required() {
    let (proxy, requests) = canned(SQUID_407);
    let c = check("https://outlook.office365.com/", &via(proxy));
    assert_judged(
        &c,
        407,
        HttpVerdict::ProxyAuthRequired,
        Some(ProxyProduct::Squid),
    );
    assert!(c.tunnel_refused, "{c}");
    assert!(c.to_string().contains("CONNECT refused"), "{c}");
    let lines = first_lines(&requests);
    assert!(
        !lines.is_empty()
            && lines
                .iter()
                .all(|l| l == "CONNECT outlook.office365.com:443 HTTP/1.1"),
        "{lines:?}"
    );
}

#[test]
fn https_through_a_proxy_that_answers_connect_with_a_squid_403_is_proxy_blocked() {
    let (proxy, _) = canned(SQUID_403);
    let c = check("https://contoso.sharepoint.com/", &via(proxy));
    assert_judged(
        &c,
        403,
        HttpVerdict::ProxyBlocked,
        Some(ProxyProduct::Squid),
    );
    assert!(c.tunnel_refused);
    assert_eq!(c.header("x-squid-error"), Some("ERR_ACCESS_DENIED 0"));
}

#[test]
fn proxy_credentials_go_out_as_basic_authorization() {
    // base64("alice:won der@land")
    let expected = "Proxy-Authorization: Basic YWxpY2U6d29uIGRlckBsYW5k\r\n";
    let (proxy, requests) = canned(SQUID_407);
    let options = HttpOptions {
        proxy: Some(format!("http://alice:won%20der%40land@{proxy}")),
        ..via(proxy)
    };
    let plain = check("http://outlook.office365.com/", &options);
    let tunnel = check("https://outlook.office365.com/", &options);
    for c in [&plain, &tunnel] {
        assert_eq!(
            c.proxy,
            Some(proxy.to_string()),
            "the password must not show"
        );
        assert!(!c.to_string().contains("won"), "{c}");
    }
    let requests = requests.lock().unwrap();
    // One plain GET, minreq's CONNECT and ours: every one carries the credentials.
    assert_eq!(requests.len(), 3, "{requests:?}");
    for r in requests.iter() {
        assert!(r.contains(expected), "{r}");
    }
}

#[test]
fn no_proxy_sends_the_request_direct_and_http_proxy_does_not() {
    let (service, _) = canned(IIS_200);
    let (proxy, _) = canned(SQUID_403);
    let url = format!("http://{service}/");
    let env = |no_proxy: Option<&str>| {
        let no_proxy = no_proxy.map(str::to_owned);
        ProxyEnv::from_vars(move |k| match k {
            "http_proxy" => Some(format!("http://{proxy}")),
            "no_proxy" => no_proxy.clone(),
            _ => None,
        })
    };
    let http = Http {
        proxy: Proxy::Env,
        timeout: 5 * SECOND,
        ..Http::default()
    };
    let through = check(&url, &HttpOptions::for_url(&url, &http, &env(None)));
    assert_judged(
        &through,
        403,
        HttpVerdict::ProxyBlocked,
        Some(ProxyProduct::Squid),
    );
    let direct = check(
        &url,
        &HttpOptions::for_url(&url, &http, &env(Some("localhost,127.0.0.1"))),
    );
    assert_judged(&direct, 200, HttpVerdict::Ok, None);
    assert_eq!(direct.proxy, None);
}

// ---------------------------------------------------------------------------------------------------
// No response: why.

#[test]
fn a_server_that_never_answers_times_out_in_bounded_time() {
    let silent = serve(|mut s| {
        read_request(&mut s);
        thread::sleep(30 * SECOND);
    });
    for (url, opts) in [
        (format!("http://{silent}/"), options(SECOND)),
        (format!("https://{silent}/"), options(SECOND)),
        (
            "https://outlook.office365.com/".to_string(),
            HttpOptions {
                timeout: SECOND,
                ..via(silent)
            },
        ),
        (
            "http://outlook.office365.com/".to_string(),
            HttpOptions {
                timeout: SECOND,
                ..via(silent)
            },
        ),
    ] {
        let start = Instant::now();
        let c = check(&url, &opts);
        let took = start.elapsed();
        assert_eq!(c.failure, Some(Failure::Timeout(SECOND)), "{c}");
        assert_eq!((c.status, c.verdict()), (None, HttpVerdict::Error));
        assert!(took < 5 * SECOND, "{url}: {took:?}");
        assert!(c.to_string().contains("no response within 1s"), "{c}");
    }
}

#[test]
fn a_refused_connect_is_named_with_what_refused_it() {
    let closed = closed_port();
    let c = check(&format!("https://{closed}/"), &options(5 * SECOND));
    assert_eq!(
        c.failure,
        Some(Failure::ConnectRefused {
            peer: closed.to_string()
        })
    );
    let c = check("https://outlook.office365.com/", &via(closed));
    assert_eq!(
        c.failure,
        Some(Failure::ConnectRefused {
            peer: format!("proxy {closed}")
        }),
        "{c}"
    );
    assert_eq!(c.summary(0).status, None);
}

#[test]
fn a_proxy_that_never_ends_its_head_is_cut_off() {
    let proxy = serve(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\n");
        let line = [b"X-Filler: ".as_slice(), &[b'a'; 1000], b"\r\n"].concat();
        while s.write_all(&line).is_ok() {}
    });
    let c = check("http://outlook.office365.com/", &via(proxy));
    match &c.failure {
        Some(Failure::Malformed { reason, .. }) => {
            assert!(reason.contains(&MAX_HEAD_BYTES.to_string()), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_proxy_that_closes_without_answering_connect_is_a_proxy_failure() {
    let proxy = serve(|mut s| {
        read_request(&mut s);
    });
    let c = check("https://outlook.office365.com/", &via(proxy));
    assert!(
        matches!(&c.failure, Some(Failure::Closed { peer }) if peer == &format!("proxy {proxy}")),
        "{c}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Uplinks: bound sockets.

/// A server that records where each connection came from and answers `response`.
fn peers_seen(response: &'static str) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    let addr = serve(move |mut s| {
        seen.lock().unwrap().push(s.peer_addr().unwrap());
        read_request(&mut s);
        let _ = s.write_all(response.as_bytes());
    });
    (addr, peers)
}

#[test]
fn a_bound_check_and_download_go_out_from_the_uplinks_address() {
    let uplink = SocketOptions {
        source: Some("127.0.0.2".parse().unwrap()),
        ..SocketOptions::default()
    };
    let (service, peers) = peers_seen(IIS_200);
    let c = check(
        &format!("http://{service}/"),
        &HttpOptions {
            bind: uplink.clone(),
            ..options(5 * SECOND)
        },
    );
    assert_judged(&c, 200, HttpVerdict::Ok, None);
    let (front_door, samples) = peers_seen("");
    let files = file_server(200_000, Some(2e6));
    let m = download::run(&DownloadOptions {
        bind: uplink,
        ..download_options(format!("http://{files}/f.bin"), Some(front_door))
    });
    assert_eq!((m.bytes, &m.failure), (200_000, &None));
    assert!(m.idle.iter().chain(&m.loaded).all(|s| s.rtt.is_some()));
    thread::sleep(Duration::from_millis(50));
    let from: Vec<_> = peers
        .lock()
        .unwrap()
        .iter()
        .chain(samples.lock().unwrap().iter())
        .map(|p| p.ip().to_string())
        .collect();
    assert!(
        from.len() >= 4 && from.iter().all(|ip| ip == "127.0.0.2"),
        "{from:?}"
    );
}

#[test]
fn binding_to_a_missing_interface_is_a_connect_failure_naming_it() {
    let (service, _) = canned(IIS_200);
    let c = check(
        &format!("http://{service}/"),
        &HttpOptions {
            bind: SocketOptions {
                interface: Some("o365nosuch0".into()),
                ..SocketOptions::default()
            },
            ..options(5 * SECOND)
        },
    );
    match &c.failure {
        // The same words as a probe bound to the missing interface says.
        Some(Failure::Connect { reason, .. }) => {
            assert_eq!(reason, "bind to interface o365nosuch0: no such interface")
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// TLS.

/// A test CA and a leaf for 127.0.0.1 it signed, made with the openssl command.
struct Pki {
    ca_pem: PathBuf,
    leaf_der: Vec<u8>,
    key_der: Vec<u8>,
}

const PKI_DIR_VAR: &str = "O365PROBE_HTTP_TEST_PKI";

fn pki() -> Option<&'static Pki> {
    static PKI: OnceLock<Option<Pki>> = OnceLock::new();
    PKI.get_or_init(|| {
        if let Ok(dir) = std::env::var(PKI_DIR_VAR) {
            return Some(load_pki(Path::new(&dir)));
        }
        // One directory per run under cargo's scratch directory for tests; those of runs that have
        // ended are removed here.
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(scratch).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("http-test-pki-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = scratch.join(format!("http-test-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ext = dir.join("leaf.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let d = |f: &str| dir.join(f).display().to_string();
        let steps: [Vec<String>; 4] = [
            vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=o365probe test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                 "-keyout", &d("ca.key"), "-out", &d("ca.pem")].into_iter().map(String::from).collect(),
            vec!["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", &d("leaf.key"),
                 "-out", &d("leaf.csr")].into_iter().map(String::from).collect(),
            vec!["x509", "-req", "-in", &d("leaf.csr"), "-CA", &d("ca.pem"), "-CAkey", &d("ca.key"),
                 "-CAcreateserial", "-days", "2", "-extfile", &d("leaf.ext"), "-outform", "DER", "-out",
                 &d("leaf.der")].into_iter().map(String::from).collect(),
            vec!["pkey", "-in", &d("leaf.key"), "-outform", "DER", "-out", &d("leaf.key.der")]
                .into_iter().map(String::from).collect(),
        ];
        for args in steps {
            match Command::new("openssl").args(&args).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => {
                    eprintln!("skipping the TLS tests: no openssl command ({e})");
                    return None;
                }
            }
        }
        Some(load_pki(&dir))
    })
    .as_ref()
}

fn load_pki(dir: &Path) -> Pki {
    Pki {
        ca_pem: dir.join("ca.pem"),
        leaf_der: std::fs::read(dir.join("leaf.der")).unwrap(),
        key_der: std::fs::read(dir.join("leaf.key.der")).unwrap(),
    }
}

fn tls_config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder()
            .with_safe_defaults()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::Certificate(pki.leaf_der.clone())],
                rustls::PrivateKey(pki.key_der.clone()),
            )
            .unwrap(),
    )
}

/// Speaks TLS with the test leaf on `stream` and answers one request with `response`.
fn answer_over_tls(config: Arc<rustls::ServerConfig>, stream: TcpStream, response: &str) {
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let head = read_request(&mut tls);
    if head.ends_with("\r\n\r\n") {
        let _ = tls.write_all(response.as_bytes());
        let _ = tls.flush();
    }
}

/// A TLS server sending a `len`-byte file to every request.
fn tls_file_server(pki: &Pki, len: usize) -> SocketAddr {
    let config = tls_config(pki);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n{}",
        "f".repeat(len)
    );
    serve(move |stream| answer_over_tls(config.clone(), stream, &response))
}

fn tls_server(pki: &Pki, response: &'static str) -> SocketAddr {
    let config = tls_config(pki);
    serve(move |stream| answer_over_tls(config.clone(), stream, response))
}

/// A proxy that opens every tunnel and then terminates TLS itself with the test leaf: a TLS-inspecting
/// proxy whose CA the client may or may not trust.
fn inspecting_proxy(pki: &Pki, response: &'static str) -> SocketAddr {
    let config = tls_config(pki);
    serve(move |mut stream| {
        read_request(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        answer_over_tls(config.clone(), stream, response);
    })
}

/// A proxy on `ip` that opens every tunnel to where `CONNECT` asks and relays bytes both ways.
fn tunnelling_proxy(ip: &str) -> (SocketAddr, Requests) {
    let requests = Requests::default();
    let seen = requests.clone();
    let addr = serve_on(ip, move |mut client| {
        let head = read_request(&mut client);
        seen.lock().unwrap().push(head.clone());
        let target = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let Ok(upstream) = TcpStream::connect(target) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
            return;
        };
        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        let (mut client, mut upstream) = (client, upstream);
        thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut upstream, &mut client);
    });
    (addr, requests)
}

#[test]
fn an_untrusted_certificate_is_a_tls_result() {
    let Some(pki) = pki() else { return };
    // This process trusts the system's roots, which never include a CA made a moment ago.
    let server = tls_server(pki, IIS_200);
    let c = check(&format!("https://{server}/"), &options(5 * SECOND));
    assert_eq!(
        c.failure,
        Some(Failure::Tls(
            "invalid peer certificate: UnknownIssuer".into()
        )),
        "{c}"
    );
    assert!(
        c.to_string()
            .contains("TLS: invalid peer certificate: UnknownIssuer"),
        "{c}"
    );
}

#[test]
fn a_tls_inspecting_proxy_with_an_untrusted_ca_shows_as_a_tls_failure() {
    let Some(pki) = pki() else { return };
    let proxy = inspecting_proxy(pki, IIS_200);
    let c = check("https://outlook.office365.com/", &via(proxy));
    assert_eq!(
        c.failure,
        Some(Failure::Tls(
            "invalid peer certificate: UnknownIssuer".into()
        )),
        "{c}"
    );
    assert_eq!(c.verdict(), HttpVerdict::Error);
}

const CHILD_VAR: &str = "O365PROBE_HTTP_TEST_CHILD";

/// Whether this process is the child that runs `test` alone.
fn is_child(test: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|t| t == test)
}

/// Runs test `test` of this binary alone in `cmd` (this binary, possibly behind nsenter), prints its
/// output and fails if it failed or did not run.
fn run_child(test: &str, mut cmd: Command) {
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, test);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- child {test}:\n{stdout}{stderr}---");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} failed"
    );
}

#[test]
fn https_to_a_trusted_service_works_direct_and_through_a_tunnel() {
    const TEST: &str = "https_to_a_trusted_service_works_direct_and_through_a_tunnel";
    let Some(pki) = pki() else { return };
    if !is_child(TEST) {
        let dir = pki.ca_pem.parent().unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env("SSL_CERT_FILE", &pki.ca_pem).env(PKI_DIR_VAR, dir);
        return run_child(TEST, cmd);
    }
    // Checks: minreq direct, and minreq through the tunnel.
    let service = tls_server(pki, IIS_200);
    let direct = check(&format!("https://{service}/"), &options(5 * SECOND));
    assert_judged(&direct, 200, HttpVerdict::Ok, None);
    let (proxy, requests) = tunnelling_proxy("127.0.0.1");
    let c = check(&format!("https://{service}/"), &via(proxy));
    assert_judged(&c, 200, HttpVerdict::Ok, None);
    assert!(!c.tunnel_refused);
    assert_eq!(
        first_lines(&requests),
        [format!("CONNECT {service} HTTP/1.1")]
    );
    // minreq cannot take an IPv6 literal proxy: the request is made by hand, with the same trust.
    if TcpListener::bind("[::1]:0").is_ok() {
        let (proxy6, _) = tunnelling_proxy("::1");
        let c = check(&format!("https://{service}/"), &via(proxy6));
        assert_judged(&c, 200, HttpVerdict::Ok, None);
        assert_eq!(c.proxy, Some(proxy6.to_string()));
    } else {
        eprintln!("no IPv6 loopback: the IPv6 proxy case is not run");
    }
    // Downloads, always by hand: rustls with the same roots.
    let files = tls_file_server(pki, 2_000_000);
    let m = download::run(&download_options(format!("https://{files}/f.bin"), None));
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (2_000_000, Stop::Complete, &None)
    );
    let mut o = download_options(format!("https://{files}/f.bin"), None);
    o.proxy = Some(format!("http://{proxy}"));
    let m = download::run(&o);
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (2_000_000, Stop::Complete, &None)
    );
    assert_eq!(m.proxy, Some(proxy.to_string()));
}

#[test]
fn a_download_from_an_untrusted_server_is_a_tls_failure() {
    let Some(pki) = pki() else { return };
    let files = tls_file_server(pki, 1_000);
    let m = download::run(&download_options(format!("https://{files}/f.bin"), None));
    assert_eq!(
        m.failure,
        Some(DownloadError::Http(Failure::Tls(
            "invalid peer certificate: UnknownIssuer".into()
        )))
    );
    assert_eq!((m.status, m.bytes), (None, 0));
}

// ---------------------------------------------------------------------------------------------------
// URLs from targets.

#[test]
fn targets_on_443_get_https_and_on_80_http() {
    let target = |host: &str, tcp: Vec<u16>, path: Option<&str>| Target {
        host: host.into(),
        service: ServiceArea::Exchange,
        category: Category::Optimize,
        tcp,
        udp: Vec::new(),
        required: true,
        http_path: path.map(str::to_owned),
    };
    assert_eq!(
        url_for(&target("outlook.office365.com", vec![443, 80], None)).as_deref(),
        Some("https://outlook.office365.com/")
    );
    assert_eq!(
        url_for(&target(
            "outlook.office365.com",
            vec![80, 443],
            Some("/owa/")
        ))
        .as_deref(),
        Some("http://outlook.office365.com/owa/")
    );
    assert_eq!(
        url_for(&target("2001:db8::10", vec![443], None)).as_deref(),
        Some("https://[2001:db8::10]/")
    );
    assert_eq!(
        url_for(&target("world.tr.teams.microsoft.com", vec![3478], None)),
        None
    );
}

// ---------------------------------------------------------------------------------------------------
// Downloads.

/// A server sending a `len`-byte body with Content-Length, at most `rate` bytes per second (paced
/// from the start, so never faster), or at full speed.
fn file_server(len: usize, rate: Option<f64>) -> SocketAddr {
    serve(move |mut s| {
        read_request(&mut s);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n");
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = [0x5a_u8; 16 * 1024];
        let start = Instant::now();
        let mut sent = 0;
        while sent < len {
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    thread::sleep(wait);
                }
            }
            let n = chunk.len().min(len - sent);
            if s.write_all(&chunk[..n]).is_err() {
                return;
            }
            sent += n;
        }
    })
}

/// Something to connect to for latency samples.
fn latency_target() -> SocketAddr {
    serve(|_| {})
}

fn download_options(url: String, latency: Option<SocketAddr>) -> DownloadOptions {
    DownloadOptions {
        url,
        proxy: None,
        max_bytes: 100_000_000,
        timeout: 10 * SECOND,
        latency_target: latency,
        latency_interval: Duration::from_millis(20),
        idle_samples: 3,
        connect_timeout: SECOND,
        bind: SocketOptions::default(),
    }
}

#[test]
fn a_download_counts_the_whole_file_and_samples_latency_idle_and_under_load() {
    const RATE: f64 = 8e6;
    let server = file_server(3_000_000, Some(RATE));
    let m = download::run(&download_options(
        format!("http://{server}/test.bin"),
        Some(latency_target()),
    ));
    assert_eq!(
        (m.status, m.bytes, m.stop, &m.failure),
        (Some(200), 3_000_000, Stop::Complete, &None)
    );
    let throughput = m.throughput().unwrap() as f64;
    // The server never sends faster than RATE: more would mean bytes counted twice or time lost.
    assert!(throughput > 0.0 && throughput <= RATE * 1.1, "{throughput}");
    assert!(!m.windows.is_empty() && m.p25_throughput().is_some());
    assert_eq!(m.idle.len(), 3);
    assert!(m.idle.iter().all(|s| s.rtt.is_some()), "{:?}", m.idle);
    assert!(
        !m.loaded.is_empty() && m.loaded.iter().all(|s| s.rtt.is_some()),
        "{:?}",
        m.loaded
    );
    let s = m.summary(2).unwrap();
    assert_eq!((s.target, s.bytes), (2, 3_000_000));
    assert!(s.idle_latency_us > 0 && s.loaded_latency_us > 0, "{s:?}");
    assert!(m.buffer_bloat().is_some());
}

#[test]
fn max_bytes_ends_the_download_early() {
    let server = file_server(50_000_000, None);
    let mut o = download_options(format!("http://{server}/big.bin"), None);
    o.max_bytes = 1_000_000;
    let m = download::run(&o);
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (1_000_000, Stop::MaxBytes, &None)
    );
    assert!(m.idle.is_empty() && m.loaded.is_empty());
    let s = m.summary(0).unwrap();
    assert_eq!(
        (s.idle_latency_us, s.loaded_latency_us),
        (0, 0),
        "not measured is 0"
    );
}

#[test]
fn a_download_asks_for_http_1_0_and_refuses_a_chunked_answer_rather_than_miscount_it() {
    let requests = Requests::default();
    let seen = requests.clone();
    let server = serve(move |mut s| {
        seen.lock().unwrap().push(read_request(&mut s));
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        );
    });
    let m = download::run(&download_options(format!("http://{server}/f.bin"), None));
    assert_eq!(first_lines(&requests), ["GET /f.bin HTTP/1.0"]);
    assert!(
        matches!(
            m.failure,
            Some(DownloadError::Http(Failure::Malformed { .. }))
        ),
        "{:?}",
        m.failure
    );
    assert_eq!((m.status, m.bytes, m.summary(0)), (Some(200), 0, None));
}

#[test]
fn a_download_through_a_proxy_asks_it_for_http_1_0_and_counts_the_body() {
    let requests = Requests::default();
    let seen = requests.clone();
    let proxy = serve(move |mut s| {
        seen.lock().unwrap().push(read_request(&mut s));
        let mut out =
            b"HTTP/1.1 200 OK\r\nVia: 1.1 proxy (squid/5.7)\r\nContent-Length: 500000\r\n\r\n"
                .to_vec();
        out.resize(out.len() + 500_000, b'y');
        let _ = s.write_all(&out);
    });
    let mut o = download_options("http://files.example/test.bin".into(), None);
    o.proxy = Some(format!("http://{proxy}"));
    let m = download::run(&o);
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (500_000, Stop::Complete, &None)
    );
    assert_eq!(m.proxy, Some(proxy.to_string()));
    assert_eq!(
        first_lines(&requests),
        ["GET http://files.example/test.bin HTTP/1.0"]
    );
}

#[test]
fn a_stalled_download_stops_at_the_timeout_with_what_came() {
    let server = serve(|mut s| {
        read_request(&mut s);
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".to_vec();
        out.resize(out.len() + 100_000, b'z');
        let _ = s.write_all(&out);
        thread::sleep(30 * SECOND);
    });
    let mut o = download_options(format!("http://{server}/"), None);
    o.timeout = SECOND;
    let start = Instant::now();
    let m = download::run(&o);
    assert!(start.elapsed() < 5 * SECOND, "{:?}", start.elapsed());
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (100_000, Stop::Timeout, &None)
    );
}

#[test]
fn a_cut_off_body_is_a_failure_with_the_bytes_that_came() {
    let server = serve(|mut s| {
        read_request(&mut s);
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
        out.resize(out.len() + 100_000, b'z');
        let _ = s.write_all(&out);
    });
    let m = download::run(&download_options(format!("http://{server}/"), None));
    assert_eq!((m.bytes, m.stop), (100_000, Stop::Failed));
    assert!(
        matches!(m.failure, Some(DownloadError::Http(Failure::Closed { .. }))),
        "{:?}",
        m.failure
    );
}

#[test]
fn a_proxy_refusing_the_download_is_judged_by_the_core() {
    let (proxy, _) = canned(SQUID_407);
    let mut o = download_options("https://contoso.sharepoint.com/test.bin".into(), None);
    o.proxy = Some(format!("http://{proxy}"));
    let m = download::run(&o);
    match &m.failure {
        Some(DownloadError::Status {
            status: 407,
            judgement,
        }) => {
            assert_eq!(judgement.verdict, HttpVerdict::ProxyAuthRequired);
            assert_eq!(judgement.proxy, Some(ProxyProduct::Squid));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((m.status, m.bytes, m.summary(0)), (Some(407), 0, None));
}

#[test]
fn download_options_come_from_the_config() {
    let env =
        ProxyEnv::from_vars(|k| (k == "https_proxy").then(|| "http://proxy.example:3128".into()));
    let mut download = Download::default();
    assert_eq!(
        DownloadOptions::from_config(&download, &Http::default(), &env, None),
        None
    );
    download.url = Some("https://contoso.sharepoint.com/test.bin".into());
    let o = DownloadOptions::from_config(&download, &Http::default(), &env, None).unwrap();
    assert_eq!(o.proxy.as_deref(), Some("http://proxy.example:3128"));
    assert_eq!(
        (o.max_bytes, o.timeout),
        (download.max_bytes, download.timeout)
    );
}

// ---------------------------------------------------------------------------------------------------
// The lab.

const ROLE_VAR: &str = "O365PROBE_HTTP_TEST_ROLE";
const PROXY_VAR: &str = "O365PROBE_HTTP_TEST_PROXY";

/// Each office runs its checks in a child process inside its namespace, trusting only the lab's
/// root (as the agent the lab configures would).
#[test]
fn in_the_lab() {
    const TEST: &str = "in_the_lab";
    if is_child(TEST) {
        let role = std::env::var(ROLE_VAR).unwrap();
        let proxy = std::env::var(PROXY_VAR).ok();
        return match role.as_str() {
            "explicit-proxy" => lab_explicit_proxy(&proxy.unwrap()),
            "proxy-auth-required" => lab_proxy_auth_required(&proxy.unwrap()),
            "good-office" => lab_good_office(),
            "tls-inspection" => lab_tls_inspection(),
            other => panic!("unknown role {other}"),
        };
    }
    if let Some(why) = o365probe_lab::unavailable() {
        eprintln!("skipping {TEST}: {why}");
        return;
    }
    let names = [
        "explicit-proxy",
        "proxy-auth-required",
        "good-office",
        "tls-inspection",
    ];
    let scenarios: Vec<_> = names
        .iter()
        .map(|n| o365probe_lab::Scenario::load(n).unwrap())
        .collect();
    let lab = match o365probe_lab::Lab::up(&scenarios) {
        Ok(lab) => lab,
        Err(e @ o365probe_lab::LabError::MissingTool(_)) => {
            eprintln!("skipping {TEST}: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    for office in lab.offices() {
        let mut cmd = office.netns().command(std::env::current_exe().unwrap());
        cmd.env(ROLE_VAR, office.scenario())
            .env("SSL_CERT_FILE", lab.trusted_roots());
        if let Some(proxy) = office.proxy_url() {
            cmd.env(PROXY_VAR, proxy);
        }
        eprintln!("office {} ({}):", office.name(), office.scenario());
        run_child(TEST, cmd);
    }
}

fn lab_check(url: &str, proxy: Option<&str>) -> HttpCheck {
    lab_check_within(url, proxy, 5 * SECOND)
}

fn lab_check_within(url: &str, proxy: Option<&str>, timeout: Duration) -> HttpCheck {
    let c = check(
        url,
        &HttpOptions {
            proxy: proxy.map(str::to_owned),
            timeout,
            bind: SocketOptions::default(),
            resolved: Vec::new(),
        },
    );
    println!("  {c}");
    c
}

fn lab_explicit_proxy(proxy: &str) {
    // squid resolves the name and opens the tunnel to the London front door; nginx answers.
    let c = lab_check("https://outlook.office365.com/", Some(proxy));
    assert_judged(&c, 200, HttpVerdict::Ok, None);
    // Plain HTTP, asked of the proxy in absolute form (the lab's squid sends no Via: silent).
    let c = lab_check("http://outlook.office365.com/", Some(proxy));
    assert_judged(&c, 200, HttpVerdict::Ok, None);
    // The download through the tunnel, by hand, trusting the lab's root.
    let m = download::run(&DownloadOptions {
        url: "https://outlook.office365.com/download/1MB.bin".into(),
        proxy: Some(proxy.into()),
        max_bytes: 10_000_000,
        timeout: 10 * SECOND,
        latency_target: None,
        latency_interval: Duration::from_millis(100),
        idle_samples: 0,
        connect_timeout: SECOND,
        bind: SocketOptions::default(),
    });
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (1_000_000, Stop::Complete, &None)
    );
    // The office's firewall rejects direct web traffic.
    let c = lab_check("https://198.51.100.10/", None);
    assert_eq!(
        c.failure,
        Some(Failure::ConnectRefused {
            peer: "198.51.100.10:443".into()
        }),
        "{c}"
    );
}

fn lab_proxy_auth_required(proxy: &str) {
    for url in [
        "https://outlook.office365.com/",
        "http://outlook.office365.com/",
    ] {
        let c = lab_check(url, Some(proxy));
        assert_judged(
            &c,
            407,
            HttpVerdict::ProxyAuthRequired,
            Some(ProxyProduct::Squid),
        );
        assert!(
            c.header("proxy-authenticate")
                .is_some_and(|v| v.starts_with("Basic")),
            "{c}"
        );
        assert_eq!(c.tunnel_refused, url.starts_with("https"));
    }
    // With the lab's credentials the same proxy lets the request through.
    let with_credentials = proxy.replacen(
        "http://",
        &format!(
            "http://{}:{}@",
            o365probe_lab::world::PROXY_USER,
            o365probe_lab::world::PROXY_PASSWORD
        ),
        1,
    );
    let c = lab_check("https://outlook.office365.com/", Some(&with_credentials));
    assert_judged(&c, 200, HttpVerdict::Ok, None);
}

fn lab_good_office() {
    use o365probe_lab::world;
    // The endpoint whose every answer is squid's 403.
    let c = lab_check(&format!("http://{}/", world::WEB_FORBIDDEN_V4), None);
    assert_judged(
        &c,
        403,
        HttpVerdict::ProxyBlocked,
        Some(ProxyProduct::Squid),
    );
    // A name the office cannot resolve: DNS, not a timeout.
    let c = lab_check_within("http://nonexistent.invalid/", None, 2 * SECOND);
    assert!(matches!(c.failure, Some(Failure::Dns(_))), "{c}");

    // 10 MB through the relay's 50 Mbit/s downlink with its 20 ms queue, sampling the London front
    // door's latency before and during the transfer.
    let front_door = SocketAddr::new(world::FRONT_DOORS[0].v4.into(), 443);
    let m = download::run(&DownloadOptions {
        url: format!("http://{}/download/10MB.bin", world::WEB_V4),
        proxy: None,
        max_bytes: 10_000_000,
        timeout: 30 * SECOND,
        latency_target: Some(front_door),
        latency_interval: Duration::from_millis(100),
        idle_samples: 5,
        connect_timeout: 3 * SECOND,
        bind: SocketOptions::default(),
    });
    let mbit = |bytes_per_s: u64| bytes_per_s as f64 * 8.0 / 1e6;
    let (idle, loaded) = (m.idle_latency().unwrap(), m.loaded_latency().unwrap());
    println!(
        "  download: {} bytes in {:.2} s: {:.1} Mbit/s, p25 of {} windows {:.1} Mbit/s; \
         connect to the front door idle {:.1} ms ({} samples), loaded {:.1} ms ({} samples), bloat {:.1} ms",
        m.bytes,
        m.duration.as_secs_f64(),
        mbit(m.throughput().unwrap()),
        m.windows.len(),
        mbit(m.p25_throughput().unwrap()),
        f64::from(idle.median_us()) / 1e3,
        m.idle.len(),
        f64::from(loaded.median_us()) / 1e3,
        m.loaded.len(),
        m.buffer_bloat().unwrap().as_secs_f64() * 1e3,
    );
    assert_eq!(
        (m.bytes, m.stop, &m.failure),
        (10_000_000, Stop::Complete, &None)
    );
    let throughput = mbit(m.throughput().unwrap());
    assert!((20.0..=60.0).contains(&throughput), "{throughput} Mbit/s");
    // The queue fills while the file comes down: the SYN-ACKs wait in it.
    assert!(
        loaded.median_us() > idle.median_us(),
        "idle {idle:?}, loaded {loaded:?}"
    );
}

fn lab_tls_inspection() {
    // The middlebox re-signs with the Contoso Web Filter CA, which the agent does not trust.
    let c = lab_check("https://198.51.100.11/", None);
    assert_eq!(
        c.failure,
        Some(Failure::Tls(
            "invalid peer certificate: UnknownIssuer".into()
        )),
        "{c}"
    );
}
