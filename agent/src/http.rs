//! HTTP(S) checks of Microsoft 365 endpoints: one request, directly or through the explicit proxy, and
//! what came back (status, the headers that name a proxy, time to the response head) judged by the
//! core's [`probe::http`](o365probe_core::probe::http) rules, or why nothing came back.
//!
//! # What minreq does and what is done by hand
//!
//! minreq 2.14 makes every request whose answer it can report exactly: direct `http://` and `https://`,
//! and `https://` through a proxy once the proxy has opened the tunnel. What it cannot do is done here
//! with a `std` [`TcpStream`] (rustls over it for TLS) and a bounded read of the response head
//! ([`MAX_HEAD_BYTES`]):
//!
//! - **A refused tunnel.** minreq turns any non-200 answer to `CONNECT` into an error without status
//!   or headers (407 becomes `InvalidProxyCreds`, 403 `BadProxy`), yet that answer is exactly what says
//!   "the proxy wants credentials" or "squid blocks this endpoint". On those errors the request is
//!   made again by hand, `CONNECT` first, and the proxy's answer is the result
//!   ([`HttpCheck::tunnel_refused`]). When the tunnel opens, as it normally does, minreq's own
//!   connection is the only one. (minreq cannot take an IPv6 literal proxy either: by hand too.)
//! - **`http://` through a proxy.** minreq tunnels plain HTTP with `CONNECT host:80` too, which proxies
//!   commonly refuse and browsers never do; a browser sends `GET http://host/path` to the proxy, whose
//!   own answer (a squid 403 page, a 407) is then the response. That request is written by hand.
//! - **Bodies at line rate.** minreq reads a body a byte at a time; the download test
//!   ([`crate::download`]) reads its own connection (TCP, or rustls with the roots minreq loads).
//! - **Time-bounded name lookup.** The target's name is looked up first, on a thread with the check's
//!   deadline, so that a resolver that does not answer is reported as DNS, not as a silent timeout.
//!   minreq then looks it up again (a cache hit on a router's dnsmasq).
//! - **Binding to an uplink.** minreq opens its own sockets and offers no hook, so a check with
//!   [`HttpOptions::bind`] set (interface, source address, DSCP) is made by hand, on a socket bound
//!   exactly as the probes' sockets are ([`crate::net::socket::blocking_tcp_socket`]).
//!
//! Trust: rustls with the system's roots, read once per process (`SSL_CERT_FILE` honoured: the lab
//! points it at its root). A certificate the roots do not vouch for is a result of its own,
//! [`Failure::Tls`] ("TLS: invalid peer certificate: UnknownIssuer"), which is also how a
//! TLS-inspecting proxy whose CA the router does not trust shows up.

use crate::config::{self, Proxy, ProxyEnv, Target, UrlParts};
use crate::net::{clock, socket, SocketOptions};
use o365probe_core::probe::http::{judge_response, HttpJudgement, ProxyProduct};
use o365probe_core::report::{HttpSummary, HttpVerdict};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

/// The most bytes of a response head (status line and headers) read by hand; a longer head is a
/// [`Failure::Malformed`]. Squid's and Zscaler's block pages have heads well under 1 KiB.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most headers an [`HttpCheck`] keeps (of [`SELECTED_HEADERS`]).
pub const MAX_SELECTED_HEADERS: usize = 16;
/// The most characters kept of one header value.
pub const MAX_HEADER_VALUE: usize = 256;
/// The response headers an [`HttpCheck`] keeps (names lower case): those that name a proxy or say where
/// a redirect or an authentication request leads. The judgement sees every header.
pub const SELECTED_HEADERS: [&str; 9] = [
    "server",
    "via",
    "location",
    "proxy-authenticate",
    "www-authenticate",
    "x-squid-error",
    "x-cache",
    "x-cache-lookup",
    "proxy-agent",
];
/// The `User-Agent` of every request (some proxies refuse requests without one).
pub const USER_AGENT: &str = concat!("o365probe/", env!("CARGO_PKG_VERSION"));
/// minreq's default proxy port, used when a proxy URL names none.
pub const DEFAULT_PROXY_PORT: u16 = 8080;

/// How to make one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The proxy for this URL (`http://[user:password@]host[:port]`), already decided from the config,
    /// the environment and `NO_PROXY`; `None` goes direct.
    pub proxy: Option<String>,
    /// From the start of the request to the end of the response head; minreq counts whole seconds,
    /// so its part is rounded up to the next second.
    pub timeout: Duration,
    /// The uplink's binding (interface, source address, DSCP). minreq cannot bind, so a bound
    /// request is made by hand.
    pub bind: SocketOptions,
    /// The host's addresses as the office's resolver gave them (the check resolved the name with the
    /// core's DNS probe): a direct request connects there, by hand, instead of asking the system's
    /// resolver again, so it goes where the other probes went. Empty: look the name up.
    pub resolved: Vec<IpAddr>,
}

impl HttpOptions {
    /// The options for a request to `url`: the proxy from `[http] proxy` (resolved against `env` and
    /// its `NO_PROXY`) and `[http] timeout`.
    pub fn for_url(url: &str, http: &config::Http, env: &ProxyEnv) -> Self {
        Self::with_proxy(url, &http.proxy, env, http.timeout)
    }

    /// The options for a request to `url` through `proxy` (resolved against `env`), with `timeout`.
    pub fn with_proxy(url: &str, proxy: &Proxy, env: &ProxyEnv, timeout: Duration) -> Self {
        Self {
            proxy: proxy.for_url(url, env),
            timeout,
            bind: SocketOptions::default(),
            resolved: Vec::new(),
        }
    }

    /// Direct, with `timeout`.
    pub fn direct(timeout: Duration) -> Self {
        Self {
            proxy: None,
            timeout,
            bind: SocketOptions::default(),
            resolved: Vec::new(),
        }
    }
}

/// The URL of a target's HTTP check: `https://host/path` for a target with TCP port 443,
/// `http://host/path` for one with port 80 (whichever its port list names first), `None` for a target
/// with neither. The path is the target's `http_path`, else `/`.
pub fn url_for(target: &Target) -> Option<String> {
    let scheme = target.tcp.iter().find_map(|port| match port {
        443 => Some("https"),
        80 => Some("http"),
        _ => None,
    })?;
    let host = match target.host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => target.host.clone(),
    };
    let path = target.http_path.as_deref().unwrap_or("/");
    Some(format!("{scheme}://{host}{path}"))
}

/// Why a request got no HTTP response. `peer` names what was connected to: `host:port`, or
/// `proxy host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The URL is not an `http://` or `https://` URL.
    #[error("bad URL {0:?}")]
    BadUrl(String),
    /// The proxy URL cannot be used.
    #[error("bad proxy URL {0:?} (expected http://[user:password@]host[:port])")]
    BadProxy(String),
    /// The name did not resolve, or not in time.
    #[error("DNS: {0}")]
    Dns(String),
    /// The peer (or a firewall on its behalf) answered the SYN with a reset.
    #[error("connect to {peer}: refused")]
    ConnectRefused {
        /// What was connected to.
        peer: String,
    },
    /// No answer to the SYN in time: what a firewall that drops looks like.
    #[error("connect to {peer}: timed out")]
    ConnectTimeout {
        /// What was connected to.
        peer: String,
    },
    /// Another connect error (no route, network unreachable).
    #[error("connect to {peer}: {reason}")]
    Connect {
        /// What was connected to.
        peer: String,
        /// The OS's words.
        reason: String,
    },
    /// The TLS handshake failed; `0` is rustls's reason ("invalid peer certificate: UnknownIssuer").
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection was reset after it opened (a filter cutting it on the SNI, or the server).
    #[error("connection to {peer} reset")]
    Reset {
        /// What was connected to.
        peer: String,
    },
    /// The peer closed the connection before a complete response head.
    #[error("{peer} closed the connection without a response")]
    Closed {
        /// What was connected to.
        peer: String,
    },
    /// No response head within the timeout (connected or not: minreq does not say which).
    #[error("no response within {}", config::format_duration(*.0))]
    Timeout(Duration),
    /// The proxy misbehaved in a way that yields no response to judge.
    #[error("proxy {peer}: {reason}")]
    Proxy {
        /// The proxy.
        peer: String,
        /// What happened.
        reason: String,
    },
    /// Something came back that is not an HTTP response head, or one too large.
    #[error("malformed response from {peer}: {reason}")]
    Malformed {
        /// What was connected to.
        peer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The outcome of one HTTP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The URL requested.
    pub url: String,
    /// The proxy the request went through (`host:port`, never the credentials); `None`: direct.
    pub proxy: Option<String>,
    /// The response status; `None` when no response came.
    pub status: Option<u16>,
    /// The [`SELECTED_HEADERS`] of the response, names lower case, values cut at
    /// [`MAX_HEADER_VALUE`] characters, at most [`MAX_SELECTED_HEADERS`].
    pub headers: Vec<(String, String)>,
    /// From the start of the request (after the name lookup) to the complete response head; with no
    /// response, from the start of the check to the failure.
    pub ttfb: Duration,
    /// The core's verdict and the proxy product the headers name.
    pub judgement: HttpJudgement,
    /// Why no response came; `None` when one did.
    pub failure: Option<Failure>,
    /// The response is the proxy's answer to `CONNECT`: it refused to open the tunnel.
    pub tunnel_refused: bool,
}

impl HttpCheck {
    /// The report's verdict.
    pub fn verdict(&self) -> HttpVerdict {
        self.judgement.verdict
    }

    /// The proxy product the response names, if any (with [`HttpVerdict::Ok`] it passed the service's
    /// answer along).
    pub fn proxy_product(&self) -> Option<ProxyProduct> {
        self.judgement.proxy
    }

    /// The first kept header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The report's entry for manifest target `target`.
    pub fn summary(&self, target: u8) -> HttpSummary {
        HttpSummary {
            target,
            status: self.status,
            verdict: self.verdict(),
            ttfb_us: clock::micros_u32(self.ttfb),
        }
    }

    fn failed(url: &str, proxy: Option<String>, ttfb: Duration, failure: Failure) -> Self {
        Self {
            url: url.to_owned(),
            proxy,
            status: None,
            headers: Vec::new(),
            ttfb,
            judgement: HttpJudgement::NO_RESPONSE,
            failure: Some(failure),
            tunnel_refused: false,
        }
    }
}

impl fmt::Display for HttpCheck {
    /// One line for a person: `https://host/: 403 proxy-blocked by Squid (server: squid/5.7) in 12 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)?;
        if let Some(proxy) = &self.proxy {
            write!(f, " via proxy {proxy}")?;
        }
        let ms = self.ttfb.as_secs_f64() * 1e3;
        match (self.status, &self.failure) {
            (Some(status), _) => {
                let verdict = match self.verdict() {
                    HttpVerdict::Ok => "ok",
                    HttpVerdict::ProxyAuthRequired => "proxy authentication required",
                    HttpVerdict::ProxyBlocked => "blocked by a proxy",
                    HttpVerdict::Redirected => "redirected away",
                    HttpVerdict::Error => "error",
                };
                write!(f, ": {status} {verdict}")?;
                if self.tunnel_refused {
                    f.write_str(" (CONNECT refused)")?;
                }
                if let Some(product) = self.proxy_product() {
                    write!(f, ", proxy {product}")?;
                }
                for (name, value) in &self.headers {
                    write!(f, "; {name}: {value}")?;
                }
                write!(f, "; {ms:.1} ms")
            }
            (None, Some(failure)) => write!(f, ": no response: {failure} ({ms:.1} ms)"),
            (None, None) => write!(f, ": no response ({ms:.1} ms)"),
        }
    }
}

/// Makes one request to `url` (`GET`, redirects not followed) and judges what came back. Blocks for at
/// most about `options.timeout` (run it with `tokio::task::spawn_blocking`).
pub fn check(url: &str, options: &HttpOptions) -> HttpCheck {
    let start = Instant::now();
    let deadline = Deadline::after(options.timeout);
    let proxy = match options.proxy.as_deref().map(ProxyServer::parse).transpose() {
        Ok(proxy) => proxy,
        Err(failure) => {
            let shown = options.proxy.as_deref().map(strip_credentials);
            return HttpCheck::failed(url, shown, Duration::ZERO, failure);
        }
    };
    let shown_proxy = proxy.as_ref().map(ProxyServer::address);
    let parts = match parse_http_url(url) {
        Ok(parts) => parts,
        Err(failure) => return HttpCheck::failed(url, shown_proxy, Duration::ZERO, failure),
    };
    let bind = &options.bind;
    let resolved = &options.resolved;
    let by_hand = |proxy: Option<&ProxyServer>| {
        request_by_hand(&parts, proxy, "HTTP/1.1", bind, resolved, deadline).map(|a| a.head)
    };
    let answer = match &proxy {
        _ if *bind != SocketOptions::default() => by_hand(proxy.as_ref()),
        None if !resolved.is_empty() => by_hand(None),
        None => lookup(&parts.host, parts.port_or_default(), deadline)
            .and_then(|_| minreq_head(url, None, deadline, &parts.peer())),
        Some(proxy) if parts.scheme == "http" => by_hand(Some(proxy)),
        Some(proxy) => tunnel_via_proxy(url, proxy, &parts, deadline),
    };
    match answer {
        Ok(head) => {
            let ttfb = head.asked.elapsed();
            let judgement = judge_response(
                &parts.host,
                head.status,
                head.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
            HttpCheck {
                url: url.to_owned(),
                proxy: shown_proxy,
                status: Some(head.status),
                headers: select_headers(&head.headers),
                ttfb,
                judgement,
                failure: None,
                tunnel_refused: head.tunnel_refused,
            }
        }
        Err(failure) => HttpCheck::failed(url, shown_proxy, start.elapsed(), failure),
    }
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// Every header, in the order received (minreq's are sorted by name: it keeps them in a map).
    pub(crate) headers: Vec<(String, String)>,
    /// The proxy's refusal of `CONNECT`.
    pub(crate) tunnel_refused: bool,
    /// When the request started: the connect (after the name lookup), or minreq's call.
    pub(crate) asked: Instant,
}

/// A URL with the parts a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    pub(crate) scheme: &'static str,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) path: String,
}

impl HttpUrl {
    pub(crate) fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// `host:port` (IPv6 in brackets), as `CONNECT` and error messages name it.
    pub(crate) fn peer(&self) -> String {
        host_port(&self.host, self.port_or_default())
    }

    /// The `Host` header's value: the port only when it is not the scheme's default.
    pub(crate) fn host_header(&self) -> String {
        match self.port {
            Some(port) => host_port(&self.host, port),
            None => bracketed(&self.host),
        }
    }

    /// The path and query, as a server wants them in the request line.
    fn origin(&self) -> String {
        if self.path.is_empty() {
            "/".to_owned()
        } else {
            self.path.clone()
        }
    }

    /// The absolute form a proxy wants in the request line.
    fn absolute(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host_header(), self.origin())
    }
}

pub(crate) fn parse_http_url(url: &str) -> Result<HttpUrl, Failure> {
    let bad = || Failure::BadUrl(url.to_owned());
    let UrlParts {
        scheme,
        host,
        port,
        path,
    } = config::parse_url(url).map_err(|_| bad())?;
    let scheme = match scheme.as_str() {
        "http" => "http",
        "https" => "https",
        _ => return Err(bad()),
    };
    Ok(HttpUrl {
        scheme,
        host,
        port,
        path,
    })
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn host_port(host: &str, port: u16) -> String {
    format!("{}:{port}", bracketed(host))
}

/// An explicit HTTP proxy. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyServer {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl ProxyServer {
    /// `[http://][user[:password]@]host[:port][/]`; user and password may be percent-encoded.
    pub(crate) fn parse(url: &str) -> Result<Self, Failure> {
        let bad = || Failure::BadProxy(strip_credentials(url));
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(bad()),
            None => url,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(bad());
        }
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((percent_decode(user), percent_decode(password))),
                    host_port,
                )
            }
            None => (None, authority),
        };
        let parts = config::parse_url(&format!("http://{host_port}")).map_err(|_| bad())?;
        Ok(Self {
            host: parts.host,
            port: parts.port.unwrap_or(DEFAULT_PROXY_PORT),
            credentials,
        })
    }

    /// `host:port`, as results name the proxy.
    pub(crate) fn address(&self) -> String {
        host_port(&self.host, self.port)
    }

    pub(crate) fn peer(&self) -> String {
        format!("proxy {}", self.address())
    }

    /// The `Proxy-Authorization` header line (with CRLF), or nothing.
    fn authorization(&self) -> String {
        use base64::Engine;
        match &self.credentials {
            Some((user, password)) => format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            None => String::new(),
        }
    }

    /// The same proxy for minreq. Its parser splits `host:port` at the first colon, so an IPv6
    /// literal proxy cannot be handed to it.
    pub(crate) fn minreq(&self) -> Result<minreq::Proxy, Failure> {
        let bad = || Failure::Proxy {
            peer: self.peer(),
            reason: "minreq cannot use an IPv6 literal proxy address for https".into(),
        };
        if self.host.contains(':') {
            return Err(bad());
        }
        let userinfo = match &self.credentials {
            Some((user, password)) => format!("{user}:{password}@"),
            None => String::new(),
        };
        minreq::Proxy::new(format!("{userinfo}{}:{}", self.host, self.port)).map_err(|_| bad())
    }
}

/// The URL as it may be shown: without `user:password@`.
fn strip_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// When a request must be done, and the timeout that set it (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// `timeout` from now.
    pub(crate) fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// The time left, or the timeout failure.
    pub(crate) fn left(&self) -> Result<Duration, Failure> {
        match self.at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(self.failure()),
        }
    }

    pub(crate) fn failure(&self) -> Failure {
        Failure::Timeout(self.timeout)
    }
}

/// Looks `host` up (an IP literal needs no lookup) on a thread of its own, so that a resolver that
/// never answers costs no more than the time left until `deadline`.
pub(crate) fn lookup(
    host: &str,
    port: u16,
    deadline: Deadline,
) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let left = deadline.left().unwrap_or_default();
    let (tx, rx) = mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("http-lookup".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })
        .map_err(|e| Failure::Other(format!("cannot start a lookup thread: {e}")))?;
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(Failure::Dns(format!("{host}: no addresses"))),
        Ok(Err(e)) => Err(Failure::Dns(format!("{host}: {}", lookup_reason(&e)))),
        Err(_) => Err(Failure::Dns(format!(
            "{host}: no answer within {}",
            config::format_duration(deadline.timeout)
        ))),
    }
}

/// std says "failed to lookup address information: Name or service not known"; the first half adds
/// nothing after "DNS:".
fn lookup_reason(e: &io::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_owned()
}

/// Connects to the first of `addrs` that answers before `deadline`, from a socket bound per `bind`
/// (interface, source address, DSCP: what minreq cannot do). With a source address, only addresses
/// of its family are tried.
pub(crate) fn connect(
    addrs: &[SocketAddr],
    peer: &str,
    bind: &SocketOptions,
    deadline: Deadline,
) -> Result<TcpStream, Failure> {
    let mut last = Failure::Connect {
        peer: peer.to_owned(),
        reason: "no address of the source address's family".into(),
    };
    let same_family = |a: &&SocketAddr| bind.source.is_none_or(|s| s.is_ipv4() == a.is_ipv4());
    for addr in addrs.iter().filter(same_family) {
        let left = deadline.left().map_err(|_| Failure::ConnectTimeout {
            peer: peer.to_owned(),
        })?;
        let socket = socket::blocking_tcp_socket(bind, *addr).map_err(|e| Failure::Connect {
            peer: peer.to_owned(),
            reason: e.to_string(),
        })?;
        match socket.connect_timeout(&(*addr).into(), left) {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last = connect_failure(&e, peer),
        }
    }
    Err(last)
}

fn connect_failure(e: &io::Error, peer: &str) -> Failure {
    let peer = peer.to_owned();
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::ConnectRefused { peer },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::ConnectTimeout { peer },
        _ => Failure::Connect {
            peer,
            reason: e.to_string(),
        },
    }
}

/// A connection the agent reads and writes itself: plain TCP, or TLS over it (rustls with the same
/// roots as minreq's).
pub(crate) enum Connection {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Connection {
    /// The TCP connection under it.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref(),
        }
    }

    /// Reads and writes give up at `deadline`.
    pub(crate) fn set_deadline(&self, deadline: Deadline, peer: &str) -> Result<(), Failure> {
        let left = deadline.left()?;
        let tcp = self.tcp();
        tcp.set_read_timeout(Some(left))
            .and_then(|()| tcp.set_write_timeout(Some(left)))
            .map_err(|e| io_failure(e, peer, deadline))
    }

    /// Writes `bytes` before `deadline` (for TLS, the handshake happens here).
    pub(crate) fn send(
        &mut self,
        bytes: &[u8],
        peer: &str,
        deadline: Deadline,
    ) -> Result<(), Failure> {
        self.set_deadline(deadline, peer)?;
        self.write_all(bytes)
            .and_then(|()| self.flush())
            .map_err(|e| io_failure(e, peer, deadline))
    }

    /// TLS to `host` over this (plain) connection.
    pub(crate) fn start_tls(self, host: &str) -> Result<Self, Failure> {
        let Self::Plain(tcp) = self else {
            return Ok(self);
        };
        let name = rustls::ServerName::try_from(host)
            .map_err(|_| Failure::Tls(format!("{host:?} is not a name TLS can verify")))?;
        let conn = rustls::ClientConnection::new(tls_config(), name)
            .map_err(|e| Failure::Tls(e.to_string()))?;
        Ok(Self::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}

/// The client side of TLS, built once: the system's roots as minreq loads them (`SSL_CERT_FILE`
/// honoured), so a request by hand trusts exactly what a request through minreq trusts.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().unwrap_or_default() {
                // A root rustls cannot read is one fewer root, as in minreq.
                let _ = roots.add(&rustls::Certificate(cert.0));
            }
            Arc::new(
                rustls::ClientConfig::builder()
                    .with_safe_defaults()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// A response head and the connection it came on.
pub(crate) struct Answer {
    /// Positioned after the head.
    pub(crate) conn: Connection,
    pub(crate) head: Head,
    /// Body bytes that came with the head.
    pub(crate) early: Vec<u8>,
    /// What was connected to.
    pub(crate) peer: String,
}

/// A request written by hand: connect (to the proxy when there is one), `CONNECT` through it for
/// `https://`, TLS, `GET` (`version` as for [`get_request`]) and the response head. A proxy's refusal
/// to open the tunnel is the answer, with [`Head::tunnel_refused`].
pub(crate) fn request_by_hand(
    url: &HttpUrl,
    proxy: Option<&ProxyServer>,
    version: &str,
    bind: &SocketOptions,
    resolved: &[IpAddr],
    deadline: Deadline,
) -> Result<Answer, Failure> {
    let (addrs, peer) = match proxy {
        None if !resolved.is_empty() => (
            resolved
                .iter()
                .map(|ip| SocketAddr::new(*ip, url.port_or_default()))
                .collect(),
            url.peer(),
        ),
        None => (
            lookup(&url.host, url.port_or_default(), deadline)?,
            url.peer(),
        ),
        Some(p) => (lookup(&p.host, p.port, deadline)?, p.peer()),
    };
    let asked = Instant::now();
    let mut conn = connect(&addrs, &peer, bind, deadline).map(Connection::Plain)?;
    if let (Some(proxy), "https") = (proxy, url.scheme) {
        conn.send(connect_request(proxy, url).as_bytes(), &peer, deadline)?;
        let (mut head, _) = read_head(&mut conn, &peer, deadline)?;
        if !(200..300).contains(&head.status) {
            head.tunnel_refused = true;
            head.asked = asked;
            return Ok(Answer {
                conn,
                head,
                early: Vec::new(),
                peer,
            });
        }
    }
    if url.scheme == "https" {
        conn = conn.start_tls(&url.host)?;
    }
    let plain_proxy = proxy.filter(|_| url.scheme == "http");
    conn.send(
        get_request(url, plain_proxy, version).as_bytes(),
        &peer,
        deadline,
    )?;
    let (mut head, early) = read_head(&mut conn, &peer, deadline)?;
    head.asked = asked;
    Ok(Answer {
        conn,
        head,
        early,
        peer,
    })
}

/// Reads a response head of at most [`MAX_HEAD_BYTES`] before `deadline`; returns it and the bytes
/// read past it.
pub(crate) fn read_head(
    conn: &mut Connection,
    peer: &str,
    deadline: Deadline,
) -> Result<(Head, Vec<u8>), Failure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        conn.set_deadline(deadline, peer)?;
        let n = match conn.read(&mut chunk) {
            Ok(0) => {
                return Err(Failure::Closed {
                    peer: peer.to_owned(),
                })
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(e, peer, deadline)),
        };
        // Search from a little before the new bytes: the blank line may straddle two reads.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = find_head_end(buf.get(from..).unwrap_or_default()) {
            let end = from + end;
            let head_bytes = buf.get(..end).unwrap_or_default();
            if head_bytes.len() > MAX_HEAD_BYTES {
                break;
            }
            let head = parse_head(head_bytes).map_err(|reason| Failure::Malformed {
                peer: peer.to_owned(),
                reason,
            })?;
            let rest = buf.get(end..).unwrap_or_default().to_vec();
            return Ok((head, rest));
        }
        if buf.len() > MAX_HEAD_BYTES {
            break;
        }
    }
    Err(Failure::Malformed {
        peer: peer.to_owned(),
        reason: format!("response head longer than {MAX_HEAD_BYTES} bytes"),
    })
}

/// The offset just past the blank line that ends a head (`\r\n\r\n`, or a bare `\n\n`).
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses `HTTP/1.x NNN reason` and the header lines (folded lines joined to the one before).
fn parse_head(bytes: &[u8]) -> Result<Head, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or_default();
    let status = words.next().and_then(|s| s.parse::<u16>().ok());
    let status = match status {
        Some(status) if version.starts_with("HTTP/") && (100..=999).contains(&status) => status,
        _ => {
            let shown: String = status_line.chars().take(60).collect();
            return Err(format!("not an HTTP status line: {shown:?}"));
        }
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok(Head {
        status,
        headers,
        tunnel_refused: false,
        asked: Instant::now(),
    })
}

fn select_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            SELECTED_HEADERS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
        })
        .take(MAX_SELECTED_HEADERS)
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.chars().take(MAX_HEADER_VALUE).collect(),
            )
        })
        .collect()
}

/// A `GET` head. Through a proxy (for `http://`) the request line has the whole URL, as browsers send
/// it, and the proxy's credentials; otherwise the path. `version` is `"HTTP/1.1"`, or `"HTTP/1.0"` to
/// keep chunked encoding out of a body that is read by hand.
pub(crate) fn get_request(url: &HttpUrl, proxy: Option<&ProxyServer>, version: &str) -> String {
    let (target, authorization) = match proxy {
        Some(proxy) => (url.absolute(), proxy.authorization()),
        None => (url.origin(), String::new()),
    };
    format!(
        "GET {target} {version}\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n{authorization}Connection: close\r\n\r\n",
        url.host_header(),
    )
}

pub(crate) fn connect_request(proxy: &ProxyServer, url: &HttpUrl) -> String {
    let target = url.peer();
    format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {USER_AGENT}\r\n{}\r\n",
        proxy.authorization()
    )
}

/// `https://` through `proxy`: minreq, and by hand when minreq was refused the tunnel (to get the
/// proxy's answer) or cannot use the proxy's address.
fn tunnel_via_proxy(
    url: &str,
    proxy: &ProxyServer,
    parts: &HttpUrl,
    deadline: Deadline,
) -> Result<Head, Failure> {
    let answer = match proxy.minreq() {
        Ok(minreq_proxy) => minreq_head(url, Some(minreq_proxy), deadline, &proxy.peer()),
        Err(failure) => Err(failure),
    };
    match answer {
        Err(Failure::Proxy { .. }) => request_by_hand(
            parts,
            Some(proxy),
            "HTTP/1.1",
            &SocketOptions::default(),
            &[],
            deadline,
        )
        .map(|a| a.head),
        other => other,
    }
}

/// minreq's request for `url`, its head read and the body left unread.
pub(crate) fn minreq_request(
    url: &str,
    proxy: Option<minreq::Proxy>,
    deadline: Deadline,
    peer: &str,
) -> Result<minreq::ResponseLazy, Failure> {
    let left = deadline.left()?;
    // minreq counts whole seconds; round up so that it never gives up before we do.
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let mut request = minreq::get(url)
        .with_header("User-Agent", USER_AGENT)
        .with_header("Accept", "*/*")
        .with_follow_redirects(false)
        .with_max_headers_size(MAX_HEAD_BYTES)
        .with_max_status_line_length(Some(1024))
        .with_timeout(secs.max(1));
    if let Some(proxy) = proxy {
        request = request.with_proxy(proxy);
    }
    request
        .send_lazy()
        .map_err(|e| minreq_failure(e, peer, deadline))
}

fn minreq_head(
    url: &str,
    proxy: Option<minreq::Proxy>,
    deadline: Deadline,
    peer: &str,
) -> Result<Head, Failure> {
    let asked = Instant::now();
    let response = minreq_request(url, proxy, deadline, peer)?;
    let mut head = head_of(&response, peer)?;
    head.asked = asked;
    Ok(head)
}

pub(crate) fn head_of(response: &minreq::ResponseLazy, peer: &str) -> Result<Head, Failure> {
    let status = u16::try_from(response.status_code)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| Failure::Malformed {
            peer: peer.to_owned(),
            reason: format!("status {}", response.status_code),
        })?;
    let mut headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    headers.sort();
    Ok(Head {
        status,
        headers,
        tunnel_refused: false,
        asked: Instant::now(),
    })
}

/// What a minreq error says about where the request failed.
pub(crate) fn minreq_failure(e: minreq::Error, peer: &str, deadline: Deadline) -> Failure {
    let malformed = |reason: String| Failure::Malformed {
        peer: peer.to_owned(),
        reason,
    };
    let proxy = |reason: &str| Failure::Proxy {
        peer: peer.to_owned(),
        reason: reason.to_owned(),
    };
    match e {
        minreq::Error::IoError(e) => io_failure(e, peer, deadline),
        minreq::Error::RustlsCreateConnection(e) => Failure::Tls(e.to_string()),
        minreq::Error::AddressNotFound => Failure::Dns(format!("{peer}: no addresses")),
        // minreq's names for a CONNECT answered with 401/407, with another status, or with nothing.
        minreq::Error::InvalidProxyCreds => proxy("CONNECT refused: credentials required"),
        minreq::Error::BadProxy => proxy("CONNECT refused"),
        minreq::Error::ProxyConnect => proxy("no answer to CONNECT"),
        minreq::Error::BadProxyCreds => proxy("malformed credentials"),
        e @ (minreq::Error::HeadersOverflow
        | minreq::Error::StatusLineOverflow
        | minreq::Error::InvalidUtf8InResponse
        | minreq::Error::MalformedContentLength
        | minreq::Error::MalformedChunkLength
        | minreq::Error::MalformedChunkEnd) => malformed(e.to_string()),
        e => Failure::Other(e.to_string()),
    }
}

/// What an IO error on a connection to `peer` means; TLS errors come from rustls inside an
/// `io::Error`, and a failed name lookup is std's "failed to lookup address information".
pub(crate) fn io_failure(e: io::Error, peer: &str, deadline: Deadline) -> Failure {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return Failure::Tls(tls.to_string());
    }
    let peer = peer.to_owned();
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::ConnectRefused { peer },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => deadline.failure(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            Failure::Reset { peer }
        }
        io::ErrorKind::UnexpectedEof => Failure::Closed { peer },
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => Failure::Connect {
            peer,
            reason: e.to_string(),
        },
        _ if e
            .to_string()
            .starts_with("failed to lookup address information") =>
        {
            Failure::Dns(format!("{peer}: {}", lookup_reason(&e)))
        }
        _ => Failure::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_as_proxies_send_them() {
        let head = parse_head(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nServer: squid/5.7\r\n\
              Proxy-Authenticate: Basic realm=\"Contoso\r\n proxy\"\r\nX-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.status, 407);
        assert_eq!(
            head.headers,
            [
                ("Server".into(), "squid/5.7".into()),
                (
                    "Proxy-Authenticate".into(),
                    "Basic realm=\"Contoso proxy\"".into()
                ),
                ("X-Squid-Error".into(), "ERR_CACHE_ACCESS_DENIED 0".into()),
            ]
        );
        assert!(parse_head(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert_eq!(find_head_end(b"HTTP/1.0 200 OK\n\nbody"), Some(17));
    }

    #[test]
    fn proxy_urls_parse_and_never_show_the_password() {
        let p = ProxyServer::parse("http://al%40ice:s3cr%3At@proxy.example:3128/").unwrap();
        assert_eq!(p.address(), "proxy.example:3128");
        assert_eq!(
            p.credentials,
            Some(("al@ice".to_string(), "s3cr:t".to_string()))
        );
        assert!(!format!("{p:?}").contains("s3cr"));
        // base64("al@ice:s3cr:t")
        assert_eq!(
            p.authorization(),
            "Proxy-Authorization: Basic YWxAaWNlOnMzY3I6dA==\r\n"
        );
        assert_eq!(
            ProxyServer::parse("proxy.example").unwrap().address(),
            "proxy.example:8080"
        );
        assert_eq!(
            ProxyServer::parse("http://[2001:db8::31]:3128")
                .unwrap()
                .address(),
            "[2001:db8::31]:3128"
        );
        let err = ProxyServer::parse("socks5://u:hunter2@proxy.example:1080").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn requests_to_a_proxy_use_the_absolute_form() {
        let proxy = ProxyServer::parse("http://203.0.113.31:3128").unwrap();
        let url = parse_http_url("http://outlook.office365.com").unwrap();
        assert_eq!(
            get_request(&url, Some(&proxy), "HTTP/1.1")
                .lines()
                .take(2)
                .collect::<Vec<_>>(),
            [
                "GET http://outlook.office365.com/ HTTP/1.1",
                "Host: outlook.office365.com"
            ]
        );
        let url = parse_http_url("https://[2001:db8::10]:8443/x").unwrap();
        assert!(
            connect_request(&proxy, &url).starts_with("CONNECT [2001:db8::10]:8443 HTTP/1.1\r\n")
        );
    }
}
