//! HTTP verdicts: what the status and headers of a response to a Microsoft 365 endpoint say about the
//! path (a proxy that wants credentials, a proxy that blocks, a captive portal), and which proxy product
//! answered. The transfer itself is the agent's; this is a pure function of what came back, so the
//! router and the collector judge the same response the same way.
//!
//! # Rules, in order
//!
//! 1. No response (connect, TLS or read failed, or timed out): [`HttpVerdict::Error`]
//!    ([`HttpJudgement::NO_RESPONSE`]).
//! 2. 407, or a 401/403 carrying `Proxy-Authenticate`: [`HttpVerdict::ProxyAuthRequired`].
//! 3. A 401 that a proxy generated (see below): [`HttpVerdict::ProxyAuthRequired`] too. A transparent
//!    proxy cannot send 407 (the client does not know it is there), so it asks with 401.
//! 4. A 3xx whose `Location` names a host other than the target and outside Microsoft's own domains
//!    ([`MICROSOFT_DOMAINS`]): [`HttpVerdict::Redirected`] (a captive portal, a proxy's block or login
//!    page). Microsoft's services redirect between their own hosts all the time (outlook.office.com to
//!    login.microsoftonline.com), which is the service answering, not the path interfering.
//! 5. Any other 4xx or 5xx that a proxy generated: [`HttpVerdict::ProxyBlocked`]. Whatever the status
//!    (403 for a policy, 451, Palo Alto's 503 block page, squid's 503 when it cannot connect), the proxy
//!    answered instead of the service, so the endpoint is not reachable through it.
//! 6. Anything else: [`HttpVerdict::Ok`], the service answered (Microsoft's own 403 included).
//!
//! # Proxy products
//!
//! A product is recognised by a case-insensitive token in `Server`, in `Via`, or by a header only that
//! product sends (`X-Squid-Error`); the tokens are listed in [`ProxyProduct::tokens`]. A response was
//! *generated* by a proxy when the product is named in `Server` or in such a header, or in `Via` when
//! there is no `Server` at all (some proxies send only `Via` on their own pages). A product named only
//! in `Via` next to the service's own `Server` (squid passing Microsoft-IIS's 403 along) is still
//! reported in [`HttpJudgement::proxy`]: the response was not blocked, but a proxy sits on the path,
//! which Microsoft's connectivity principles advise against for Optimize traffic.

use core::fmt;

pub use crate::report::HttpVerdict;

/// A forward proxy or secure web gateway recognised from response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyProduct {
    /// Squid.
    Squid,
    /// Zscaler Internet Access.
    Zscaler,
    /// Blue Coat ProxySG, later Symantec (Broadcom) Web Security.
    BlueCoat,
    /// Forcepoint (formerly Websense) Web Security.
    Forcepoint,
    /// McAfee Web Gateway (formerly Webwasher; now Skyhigh Secure Web Gateway).
    McAfeeWebGateway,
    /// Palo Alto Networks firewalls (PAN-OS) and Prisma Access.
    PaloAlto,
    /// Fortinet FortiGate and FortiProxy.
    FortiGate,
    /// Cisco Web Security Appliance (formerly IronPort).
    CiscoWsa,
    /// Netskope.
    Netskope,
    /// Sophos (UTM, formerly Astaro; XG/XGS firewall).
    Sophos,
    /// Barracuda Web Security Gateway.
    Barracuda,
    /// Check Point gateways.
    CheckPoint,
}

impl ProxyProduct {
    /// Every recognised product, in the order they are tried.
    pub const ALL: [ProxyProduct; 12] = [
        Self::Squid,
        Self::Zscaler,
        Self::BlueCoat,
        Self::Forcepoint,
        Self::McAfeeWebGateway,
        Self::PaloAlto,
        Self::FortiGate,
        Self::CiscoWsa,
        Self::Netskope,
        Self::Sophos,
        Self::Barracuda,
        Self::CheckPoint,
    ];

    /// The product's name for people.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Squid => "Squid",
            Self::Zscaler => "Zscaler",
            Self::BlueCoat => "Blue Coat ProxySG",
            Self::Forcepoint => "Forcepoint",
            Self::McAfeeWebGateway => "McAfee Web Gateway",
            Self::PaloAlto => "Palo Alto Networks",
            Self::FortiGate => "FortiGate",
            Self::CiscoWsa => "Cisco WSA",
            Self::Netskope => "Netskope",
            Self::Sophos => "Sophos",
            Self::Barracuda => "Barracuda",
            Self::CheckPoint => "Check Point",
        }
    }

    /// The tokens that name the product in a `Server` or `Via` value (matched ignoring ASCII case).
    /// Only distinctive ones: a short token like "wsa" or "mwg" would match ordinary host names.
    pub const fn tokens(self) -> &'static [&'static str] {
        match self {
            // "Server: squid/5.7", "Via: 1.1 proxy (squid/5.7)"
            Self::Squid => &["squid"],
            // "Server: Zscaler/6.2"
            Self::Zscaler => &["zscaler"],
            Self::BlueCoat => &["bluecoat", "blue coat", "proxysg", "symantec"],
            Self::Forcepoint => &["forcepoint", "websense"],
            // "Via: 1.1 gw (McAfee Web Gateway 7.8.2.…)"
            Self::McAfeeWebGateway => &["mcafee", "skyhigh", "webwasher"],
            Self::PaloAlto => &["palo alto", "paloalto", "pan-os", "prismaaccess", "prisma access"],
            Self::FortiGate => &["fortigate", "fortiproxy", "fortinet", "fortiguard"],
            // "Via: 1.1 wsa.example:80 (Cisco-WSA/11.5.1-124)"
            Self::CiscoWsa => &["cisco-wsa", "cisco wsa", "ironport", "cisco secure web"],
            Self::Netskope => &["netskope", "goskope"],
            Self::Sophos => &["sophos", "astaro"],
            Self::Barracuda => &["barracuda"],
            Self::CheckPoint => &["check point", "checkpoint", "check-point"],
        }
    }

    /// The first product (in [`ProxyProduct::ALL`] order) one of whose tokens occurs in `text`.
    pub fn find_in(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| {
            p.tokens()
                .iter()
                .any(|token| contains_ignore_ascii_case(text, token))
        })
    }
}

impl fmt::Display for ProxyProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Headers that only one product sends on the pages it generates.
const PRODUCT_HEADERS: [(&str, ProxyProduct); 1] = [("x-squid-error", ProxyProduct::Squid)];

/// Registrable domains that belong to Microsoft: a redirect to a host at or under one of them stays with
/// the service. `microsoft` is Microsoft's own top-level domain (`cloud.microsoft`, `static.microsoft`).
pub const MICROSOFT_DOMAINS: [&str; 19] = [
    "microsoft",
    "microsoft.com",
    "microsoftonline.com",
    "microsoftonline-p.com",
    "microsoft365.com",
    "office.com",
    "office.net",
    "office365.com",
    "onmicrosoft.com",
    "outlook.com",
    "live.com",
    "sharepoint.com",
    "sharepointonline.com",
    "lync.com",
    "skype.com",
    "windows.net",
    "msauth.net",
    "msftauth.net",
    "msocdn.com",
];

/// What a response (or its absence) says about the path to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpJudgement {
    /// The report's verdict.
    pub verdict: HttpVerdict,
    /// The proxy product the headers name, whatever the verdict: with [`HttpVerdict::Ok`] it passed the
    /// service's response along.
    pub proxy: Option<ProxyProduct>,
}

impl HttpJudgement {
    /// No HTTP response at all.
    pub const NO_RESPONSE: Self = Self {
        verdict: HttpVerdict::Error,
        proxy: None,
    };

    /// The proxy product's name, if one was recognised.
    pub fn proxy_name(&self) -> Option<&'static str> {
        self.proxy.map(ProxyProduct::name)
    }
}

/// Judges a response with `status` and `headers` (name, value; names in any case, in the order
/// received) to a request for `target_host` (a host name or IP address without port; a trailing dot
/// and IPv6 brackets are ignored). See the module docs for the rules.
pub fn judge_response<'h, I>(target_host: &str, status: u16, headers: I) -> HttpJudgement
where
    I: IntoIterator<Item = (&'h str, &'h str)>,
{
    let mut server: Option<&str> = None;
    let mut location: Option<&str> = None;
    let mut proxy_authenticate = false;
    let mut in_via = None;
    let mut in_own_header = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("server") {
            server = server.or(Some(value));
        } else if name.eq_ignore_ascii_case("location") {
            location = location.or(Some(value));
        } else if name.eq_ignore_ascii_case("proxy-authenticate") {
            proxy_authenticate = true;
        } else if name.eq_ignore_ascii_case("via") {
            in_via = in_via.or_else(|| ProxyProduct::find_in(value));
        } else if let Some((_, product)) = PRODUCT_HEADERS
            .iter()
            .find(|(header, _)| name.eq_ignore_ascii_case(header))
        {
            in_own_header = in_own_header.or(Some(*product));
        }
    }
    let in_server = server.and_then(ProxyProduct::find_in);
    let generated_by = in_server
        .or(in_own_header)
        .or(if server.is_none() { in_via } else { None });
    let proxy = generated_by.or(in_via);

    let verdict = match status {
        407 => HttpVerdict::ProxyAuthRequired,
        401 | 403 if proxy_authenticate => HttpVerdict::ProxyAuthRequired,
        401 if generated_by.is_some() => HttpVerdict::ProxyAuthRequired,
        300..=399 if location.is_some_and(|l| redirects_away(target_host, l)) => {
            HttpVerdict::Redirected
        }
        400..=599 if generated_by.is_some() => HttpVerdict::ProxyBlocked,
        _ => HttpVerdict::Ok,
    };
    HttpJudgement { verdict, proxy }
}

/// Whether a `Location` leads to a host other than the target and outside Microsoft's domains. A
/// relative reference (no authority) stays on the target.
fn redirects_away(target_host: &str, location: &str) -> bool {
    match location_host(location) {
        Some(host) => {
            let host = normalise_host(host);
            !host.eq_ignore_ascii_case(normalise_host(target_host)) && !is_microsoft(host)
        }
        None => false,
    }
}

/// The host of a URI reference (RFC 3986 §4.1): `scheme://host...` or `//host...`; `None` for a
/// relative reference, which keeps the request's host.
fn location_host(location: &str) -> Option<&str> {
    let location = location.trim();
    let rest = match location.strip_prefix("//") {
        Some(rest) => rest,
        None => {
            let colon = location.find(':')?;
            let (scheme, rest) = location.split_at(colon);
            let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !scheme_ok {
                return None;
            }
            rest.strip_prefix("://")?
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    Some(host)
}

/// Without IPv6 brackets and a trailing dot.
fn normalise_host(host: &str) -> &str {
    let host = host.trim();
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host)
}

fn is_microsoft(host: &str) -> bool {
    MICROSOFT_DOMAINS.iter().any(|domain| {
        let Some(split) = host.len().checked_sub(domain.len()) else {
            return false;
        };
        let (head, tail) = (host.get(..split), host.get(split..));
        matches!((head, tail), (Some(head), Some(tail))
            if tail.eq_ignore_ascii_case(domain) && (head.is_empty() || head.ends_with('.')))
    })
}

fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    !needle.is_empty()
        && haystack
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}
