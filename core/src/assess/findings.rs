//! Findings: what is wrong with an office's path to Microsoft 365, how bad it is and what to change.
//!
//! The agent's `check` and the collector name every problem with the same code, severity and advice, so
//! a finding on a router's screen, in the JSON output and on the collector's office page is the same
//! thing. The codes are stable: scripts and alert rules match on them.

use core::fmt;

use serde::{Deserialize, Serialize};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Worth knowing; Microsoft 365 works as it should.
    Info,
    /// Against Microsoft's network connectivity principles: users get a slower or flakier service.
    Warning,
    /// Something users will notice as broken: blocked endpoints, Teams media without UDP, certificates
    /// replaced on traffic that must not be inspected.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }

    /// Parses a severity name (for `--fail-on`).
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::Info, Self::Warning, Self::Error]
            .into_iter()
            .find(|v| v.name() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FindingCode {
    /// A middlebox replaced Microsoft's certificate chain: TLS is inspected.
    TlsInspection,
    /// Microsoft 365 traffic goes through a proxy (configured, or one that answered in the path).
    Proxy,
    /// A required endpoint cannot be reached, or something in the path refuses it.
    EndpointBlocked,
    /// No STUN answer from the Teams media relays on UDP 3478-3481.
    UdpBlocked,
    /// Teams media reaches the relay, but round trip, loss or jitter miss Microsoft's targets.
    TeamsQuality,
    /// The service front door the office reaches is far from the office.
    FarFrontDoor,
    /// The recursive DNS resolver is far from the office (so Microsoft's GeoDNS picks far front doors).
    FarResolver,
    /// The office reaches the internet far from itself: traffic is backhauled to another site.
    Backhaul,
    /// Optimize traffic is routed into a VPN tunnel.
    VpnTunnel,
    /// Microsoft 365 names do not resolve through the office's resolver.
    DnsFailure,
    /// Latency grows sharply while the link is busy (queues in the path: buffer bloat).
    BufferBloat,
}

impl FindingCode {
    /// Every code, in the order reports list them (most severe kinds first).
    pub const ALL: [FindingCode; 11] = [
        Self::EndpointBlocked,
        Self::DnsFailure,
        Self::TlsInspection,
        Self::UdpBlocked,
        Self::Proxy,
        Self::VpnTunnel,
        Self::Backhaul,
        Self::FarResolver,
        Self::FarFrontDoor,
        Self::TeamsQuality,
        Self::BufferBloat,
    ];

    /// The stable code, as in the JSON output and the collector's API (`tls-inspection`).
    pub const fn code(self) -> &'static str {
        match self {
            Self::TlsInspection => "tls-inspection",
            Self::Proxy => "proxy",
            Self::EndpointBlocked => "endpoint-blocked",
            Self::UdpBlocked => "udp-blocked",
            Self::TeamsQuality => "teams-quality",
            Self::FarFrontDoor => "far-front-door",
            Self::FarResolver => "far-resolver",
            Self::Backhaul => "backhaul",
            Self::VpnTunnel => "vpn-tunnel",
            Self::DnsFailure => "dns-failure",
            Self::BufferBloat => "buffer-bloat",
        }
    }

    /// Parses a code.
    pub fn from_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == s)
    }

    /// How much it matters.
    pub const fn severity(self) -> Severity {
        match self {
            Self::TlsInspection | Self::EndpointBlocked | Self::UdpBlocked | Self::DnsFailure => {
                Severity::Error
            }
            Self::Proxy
            | Self::TeamsQuality
            | Self::FarFrontDoor
            | Self::FarResolver
            | Self::Backhaul
            | Self::VpnTunnel
            | Self::BufferBloat => Severity::Warning,
        }
    }

    /// One line for a person: what is wrong.
    pub const fn title(self) -> &'static str {
        match self {
            Self::TlsInspection => "TLS inspection replaces Microsoft's certificates",
            Self::Proxy => "Microsoft 365 traffic goes through a proxy",
            Self::EndpointBlocked => "a required Microsoft 365 endpoint is blocked",
            Self::UdpBlocked => "UDP to Teams media relays is blocked",
            Self::TeamsQuality => "Teams media path misses Microsoft's targets",
            Self::FarFrontDoor => "the Microsoft 365 front door is far from the office",
            Self::FarResolver => "the DNS resolver is far from the office",
            Self::Backhaul => "internet egress is far from the office (backhaul)",
            Self::VpnTunnel => "Optimize traffic goes into a VPN tunnel",
            Self::DnsFailure => "Microsoft 365 names do not resolve",
            Self::BufferBloat => "latency rises sharply under load (buffer bloat)",
        }
    }

    /// What to change, after Microsoft's network connectivity principles.
    pub const fn advice(self) -> &'static str {
        match self {
            Self::TlsInspection => {
                "exempt Microsoft 365 Optimize and Allow endpoints from TLS inspection on the \
                 proxy or firewall"
            }
            Self::Proxy => {
                "send Optimize endpoints directly from the office (proxy bypass / PAC DIRECT), \
                 not through the proxy"
            }
            Self::EndpointBlocked => {
                "allow the endpoint on the firewall or proxy (Microsoft's endpoint list names the \
                 hosts, ports and categories)"
            }
            Self::UdpBlocked => {
                "allow outbound UDP 3478-3481 to the Teams media ranges (52.112.0.0/14, \
                 52.122.0.0/15, 2603:1063::/38)"
            }
            Self::TeamsQuality => {
                "reduce loss, jitter and round trip on the office's internet link (QoS for Teams \
                 media, a less congested or closer uplink)"
            }
            Self::FarFrontDoor => {
                "use local internet egress and a resolver near the office, so Microsoft's DNS \
                 picks a nearby front door"
            }
            Self::FarResolver => {
                "resolve Microsoft 365 names with a resolver near the office (local egress for \
                 DNS, no central or far DNS forwarder)"
            }
            Self::Backhaul => {
                "give the office local internet egress for Microsoft 365 instead of backhauling \
                 through a central site"
            }
            Self::VpnTunnel => {
                "split-tunnel the Optimize ranges so they leave locally, not through the VPN"
            }
            Self::DnsFailure => {
                "check the office's resolver: it must resolve Microsoft 365 names (and their CNAME \
                 chains) quickly"
            }
            Self::BufferBloat => {
                "enable smart queue management (fq_codel, CAKE) or shape just below the line rate"
            }
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Loaded minus idle latency beyond which a link counts as bloated: Teams media wants jitter under 30 ms
/// and a queue that adds 100 ms under load turns every upload into a call quality problem.
pub const BUFFER_BLOAT_MS: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, a) in FindingCode::ALL.iter().enumerate() {
            assert_eq!(FindingCode::from_code(a.code()), Some(*a));
            for b in &FindingCode::ALL[i + 1..] {
                assert_ne!(a.code(), b.code());
            }
        }
        assert_eq!(FindingCode::from_code("tls_inspection"), None);
    }

    #[test]
    fn what_users_notice_as_broken_is_an_error() {
        use FindingCode::*;
        // As the README lists them: four errors, every other code a warning.
        for c in FindingCode::ALL {
            let want = match c {
                TlsInspection | EndpointBlocked | UdpBlocked | DnsFailure => Severity::Error,
                _ => Severity::Warning,
            };
            assert_eq!(c.severity(), want, "{c}");
        }
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(Severity::from_name("error"), Some(Severity::Error));
    }
}
