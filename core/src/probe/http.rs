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

use crate::ascii::{contains_ignore_case, is_at_or_under};

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
            Self::PaloAlto => &[
                "palo alto",
                "paloalto",
                "pan-os",
                "prismaaccess",
                "prisma access",
            ],
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
                .any(|token| contains_ignore_case(text, token))
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
    MICROSOFT_DOMAINS
        .iter()
        .any(|domain| is_at_or_under(host.as_bytes(), domain.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One captured or documented response, and what it must be judged.
    struct Case {
        what: &'static str,
        target: &'static str,
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        verdict: HttpVerdict,
        proxy: Option<ProxyProduct>,
    }

    const CASES: &[Case] = &[
        Case {
            what: "squid 5 denying by http_access (ERR_ACCESS_DENIED)",
            target: "outlook.office365.com",
            status: 403,
            headers: &[
                ("Server", "squid/5.7"),
                ("Mime-Version", "1.0"),
                ("Date", "Tue, 12 Mar 2024 09:14:03 GMT"),
                ("Content-Type", "text/html;charset=utf-8"),
                ("Content-Length", "3563"),
                ("X-Squid-Error", "ERR_ACCESS_DENIED 0"),
                ("Vary", "Accept-Language"),
                ("Content-Language", "en"),
                ("X-Cache", "MISS from proxy.branch.example"),
                ("X-Cache-Lookup", "NONE from proxy.branch.example:3128"),
                ("Via", "1.1 proxy.branch.example (squid/5.7)"),
                ("Connection", "keep-alive"),
            ],
            verdict: HttpVerdict::ProxyBlocked,
            proxy: Some(ProxyProduct::Squid),
        },
        Case {
            what: "squid 4 asking for credentials (ERR_CACHE_ACCESS_DENIED)",
            target: "outlook.office365.com",
            status: 407,
            headers: &[
                ("Server", "squid/4.13"),
                ("Mime-Version", "1.0"),
                ("Content-Type", "text/html;charset=utf-8"),
                ("Content-Length", "3520"),
                ("X-Squid-Error", "ERR_CACHE_ACCESS_DENIED 0"),
                ("Proxy-Authenticate", "Basic realm=\"Squid proxy-caching web server\""),
                ("X-Cache", "MISS from proxy"),
                ("Via", "1.1 proxy (squid/4.13)"),
                ("Connection", "keep-alive"),
            ],
            verdict: HttpVerdict::ProxyAuthRequired,
            proxy: Some(ProxyProduct::Squid),
        },
        Case {
            what: "Zscaler block page (headers as captured by WhatWaf issue #178)",
            target: "contoso.sharepoint.com",
            status: 403,
            headers: &[
                ("Content-Type", "text/html"),
                ("Server", "Zscaler/5.6"),
                ("Cache-Control", "no-cache"),
                ("Content-length", "14916"),
            ],
            verdict: HttpVerdict::ProxyBlocked,
            proxy: Some(ProxyProduct::Zscaler),
        },
        Case {
            what: "Exchange Online's own 403",
            target: "outlook.office365.com",
            status: 403,
            headers: &[
                ("Content-Length", "0"),
                ("Server", "Microsoft-IIS/10.0"),
                ("request-id", "1c0b7a55-3f0c-4a4e-9a3c-8e5b2f7d9e10"),
                ("X-CalculatedBETarget", "AM0PR04MB1234.eurprd04.prod.outlook.com"),
                ("X-FEServer", "AM0PR04CA0012"),
                ("X-Powered-By", "ASP.NET"),
                ("Date", "Tue, 12 Mar 2024 09:14:03 GMT"),
            ],
            verdict: HttpVerdict::Ok,
            proxy: None,
        },
        Case {
            what: "Exchange Online's own 403, passed along by squid",
            target: "outlook.office365.com",
            status: 403,
            headers: &[
                ("Content-Length", "0"),
                ("Server", "Microsoft-IIS/10.0"),
                ("X-FEServer", "AM0PR04CA0012"),
                ("X-Cache", "MISS from proxy.branch.example"),
                ("Via", "1.1 proxy.branch.example (squid/5.7)"),
            ],
            verdict: HttpVerdict::Ok,
            proxy: Some(ProxyProduct::Squid),
        },
        Case {
            what: "pfSense captive portal catching the probe",
            target: "www.office.com",
            status: 302,
            headers: &[
                (
                    "Location",
                    "http://192.168.10.1:8002/index.php?zone=guest&redirurl=http%3A%2F%2Fwww.office.com%2F",
                ),
                ("Content-Length", "0"),
                ("Connection", "close"),
            ],
            verdict: HttpVerdict::Redirected,
            proxy: None,
        },
        Case {
            what: "SharePoint Online answering",
            target: "contoso.sharepoint.com",
            status: 200,
            headers: &[
                ("Cache-Control", "private, max-age=0"),
                ("Content-Type", "text/html; charset=utf-8"),
                ("Server", "Microsoft-IIS/10.0"),
                ("X-SharePointHealthScore", "2"),
                ("SPRequestGuid", "4b5f7ea1-10f2-5000-8b5c-0d7b1c4f2a9e"),
                ("X-Powered-By", "ASP.NET"),
            ],
            verdict: HttpVerdict::Ok,
            proxy: None,
        },
        Case {
            what: "Outlook sending the browser to sign in: Microsoft to Microsoft",
            target: "outlook.office.com",
            status: 302,
            headers: &[
                ("Server", "Microsoft-IIS/10.0"),
                (
                    "Location",
                    "https://login.microsoftonline.com/common/oauth2/authorize?client_id=00000002",
                ),
            ],
            verdict: HttpVerdict::Ok,
            proxy: None,
        },
        Case {
            what: "the service's own relative redirect",
            target: "outlook.office365.com",
            status: 302,
            headers: &[("Location", "/owa/"), ("Server", "Microsoft-IIS/10.0")],
            verdict: HttpVerdict::Ok,
            proxy: None,
        },
        Case {
            what: "a look-alike host is not Microsoft's",
            target: "outlook.office365.com",
            status: 302,
            headers: &[("Location", "https://login.microsoftonline.com.portal.example/x")],
            verdict: HttpVerdict::Redirected,
            proxy: None,
        },
        Case {
            what: "Cisco WSA block page, Via only (Via format as in its captured responses)",
            target: "outlook.office365.com",
            status: 403,
            headers: &[
                ("Content-Type", "text/html"),
                ("Via", "1.1 wsa.branch.example:80 (Cisco-WSA/11.5.1-124)"),
                ("Connection", "close"),
            ],
            verdict: HttpVerdict::ProxyBlocked,
            proxy: Some(ProxyProduct::CiscoWsa),
        },
        Case {
            what: "McAfee Web Gateway block page",
            target: "teams.microsoft.com",
            status: 403,
            headers: &[
                ("Via", "1.1 mwg.branch.example (McAfee Web Gateway 7.8.2.3.0.27634)"),
                ("Content-Type", "text/html"),
            ],
            verdict: HttpVerdict::ProxyBlocked,
            proxy: Some(ProxyProduct::McAfeeWebGateway),
        },
        Case {
            what: "Zscaler sending the client to authenticate on its gateway",
            target: "outlook.office365.com",
            status: 307,
            headers: &[
                ("Server", "Zscaler/6.2"),
                (
                    "Location",
                    "https://gateway.zscalertwo.net/auth/?origurl=https%3A%2F%2Foutlook.office365.com",
                ),
            ],
            verdict: HttpVerdict::Redirected,
            proxy: Some(ProxyProduct::Zscaler),
        },
        Case {
            what: "a transparent Forcepoint asking for credentials with 401",
            target: "outlook.office365.com",
            status: 401,
            headers: &[
                ("Server", "Forcepoint"),
                ("WWW-Authenticate", "NTLM"),
            ],
            verdict: HttpVerdict::ProxyAuthRequired,
            proxy: Some(ProxyProduct::Forcepoint),
        },
        Case {
            what: "a 403 with Proxy-Authenticate from an unnamed proxy",
            target: "outlook.office365.com",
            status: 403,
            headers: &[("proxy-authenticate", "Negotiate")],
            verdict: HttpVerdict::ProxyAuthRequired,
            proxy: None,
        },
        Case {
            what: "the service's own 401 (it wants a token, not the path)",
            target: "graph.microsoft.com",
            status: 401,
            headers: &[
                ("Server", "Microsoft-IIS/10.0"),
                ("WWW-Authenticate", "Bearer realm=\"\""),
            ],
            verdict: HttpVerdict::Ok,
            proxy: None,
        },
        Case {
            what: "squid failing to connect, header names in odd case",
            target: "contoso.sharepoint.com",
            status: 503,
            headers: &[("SERVER", "Squid/3.5.27"), ("x-squid-error", "ERR_CONNECT_FAIL 111")],
            verdict: HttpVerdict::ProxyBlocked,
            proxy: Some(ProxyProduct::Squid),
        },
        Case {
            what: "Palo Alto block page through Prisma Access",
            target: "outlook.office365.com",
            status: 503,
            headers: &[("Via", "1.1 prismaaccess"), ("Cache-Control", "no-cache")],
            verdict: HttpVerdict::ProxyBlocked,
            proxy: Some(ProxyProduct::PaloAlto),
        },
    ];

    #[test]
    fn realistic_responses_get_the_verdict_a_network_engineer_would() {
        for case in CASES {
            let judged = judge_response(case.target, case.status, case.headers.iter().copied());
            assert_eq!(
                (judged.verdict, judged.proxy),
                (case.verdict, case.proxy),
                "{}",
                case.what
            );
        }
    }

    #[test]
    fn no_response_is_an_error_and_names_no_proxy() {
        assert_eq!(HttpJudgement::NO_RESPONSE.verdict, HttpVerdict::Error);
        assert_eq!(HttpJudgement::NO_RESPONSE.proxy_name(), None);
    }

    #[test]
    fn redirect_hosts_are_compared_as_hosts() {
        let redirected = |target, location| {
            judge_response(target, 302, [("Location", location)]).verdict == HttpVerdict::Redirected
        };
        // Same host: another scheme, port, case, userinfo or a trailing dot stays with the target.
        assert!(!redirected(
            "outlook.office365.com",
            "https://outlook.office365.com/owa/"
        ));
        assert!(!redirected(
            "outlook.office365.com",
            "http://OUTLOOK.office365.com.:80/"
        ));
        assert!(!redirected(
            "outlook.office365.com",
            "https://u@outlook.office365.com/"
        ));
        assert!(!redirected("2001:db8::5", "http://[2001:db8::5]:8080/x"));
        assert!(!redirected("outlook.office365.com", "?page=2"));
        // Microsoft's domains and top-level domain.
        assert!(!redirected(
            "www.office.com",
            "https://www.microsoft365.com/"
        ));
        assert!(!redirected(
            "www.office.com",
            "https://m365.cloud.microsoft/"
        ));
        // Elsewhere, including scheme-relative references and names merely ending like Microsoft's.
        assert!(redirected(
            "outlook.office365.com",
            "//portal.hotel.example/login"
        ));
        assert!(redirected(
            "outlook.office365.com",
            "https://evilmicrosoft.com/"
        ));
        assert!(redirected("2001:db8::5", "http://[2001:db8::6]/"));
        // A 3xx without Location is not a redirect away (304 Not Modified).
        assert_eq!(
            judge_response("outlook.office365.com", 304, []).verdict,
            HttpVerdict::Ok
        );
    }

    #[test]
    fn every_product_is_found_by_each_of_its_tokens_and_named() {
        for product in ProxyProduct::ALL {
            for token in product.tokens() {
                let upper = token.to_ascii_uppercase();
                assert_eq!(ProxyProduct::find_in(&upper), Some(product), "{token}");
            }
            assert!(!product.name().is_empty());
            assert_eq!(product.to_string(), product.name());
        }
        assert_eq!(ProxyProduct::find_in("Microsoft-IIS/10.0"), None);
        assert_eq!(ProxyProduct::find_in("nginx"), None);
        assert_eq!(ProxyProduct::find_in(""), None);
    }

    /// Mostly the names the judgement reads, so their values are exercised.
    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Location".to_string()),
            Just("Server".to_string()),
            Just("Via".to_string()),
            Just("Proxy-Authenticate".to_string()),
            Just("X-Squid-Error".to_string()),
            "\\PC{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(
            target in "\\PC{0,20}",
            status in any::<u16>(),
            headers in proptest::collection::vec((header_name(), "\\PC{0,40}"), 0..6),
        ) {
            let judged = judge_response(
                &target,
                status,
                headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
            prop_assert!(judged.verdict != HttpVerdict::Error);
        }
    }
}
