//! Microsoft 365 endpoint classification: service areas and connectivity categories, as Microsoft's
//! endpoints web service names them (`serviceArea`, `category`).

use core::fmt;
use serde::{Deserialize, Serialize};

/// A Microsoft 365 service area (`serviceArea` in the endpoints web service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServiceArea {
    /// Exchange Online (`Exchange`).
    Exchange,
    /// SharePoint Online and OneDrive for Business (`SharePoint`).
    SharePoint,
    /// Skype for Business Online and Microsoft Teams (`Skype`).
    Teams,
    /// Microsoft 365 Common and Office Online (`Common`).
    Common,
}

impl ServiceArea {
    /// All service areas, in report order.
    pub const ALL: [ServiceArea; 4] = [Self::Exchange, Self::SharePoint, Self::Teams, Self::Common];

    /// The lower-case name used in config files and the JSON output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Exchange => "exchange",
            Self::SharePoint => "sharepoint",
            Self::Teams => "teams",
            Self::Common => "common",
        }
    }

    /// Parses a config name (`exchange`) or an endpoints-web-service name (`Exchange`, `Skype`),
    /// ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<Self> {
        let eq = |n: &str| s.eq_ignore_ascii_case(n);
        if eq("exchange") {
            Some(Self::Exchange)
        } else if eq("sharepoint") {
            Some(Self::SharePoint)
        } else if eq("teams") || eq("skype") {
            Some(Self::Teams)
        } else if eq("common") {
            Some(Self::Common)
        } else {
            None
        }
    }
}

impl fmt::Display for ServiceArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Microsoft's network connectivity category of an endpoint (`category` in the endpoints web service).
///
/// Optimize endpoints carry most of the traffic and are the most latency sensitive: they should leave the
/// office locally, bypass proxies and TLS inspection, and stay out of VPN tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    /// `Optimize`: local egress, no proxy, no inspection, no VPN.
    Optimize,
    /// `Allow`: local egress recommended, proxy bypass recommended.
    Allow,
    /// `Default`: may go through the normal internet path and proxies.
    Default,
}

impl Category {
    /// The lower-case name used in config files and the JSON output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Optimize => "optimize",
            Self::Allow => "allow",
            Self::Default => "default",
        }
    }

    /// Parses `optimize` / `Optimize` etc., ignoring ASCII case.
    pub fn from_name(s: &str) -> Option<Self> {
        let eq = |n: &str| s.eq_ignore_ascii_case(n);
        if eq("optimize") {
            Some(Self::Optimize)
        } else if eq("allow") {
            Some(Self::Allow)
        } else if eq("default") {
            Some(Self::Default)
        } else {
            None
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_accept_web_service_spelling() {
        for s in ServiceArea::ALL {
            assert_eq!(ServiceArea::from_name(s.name()), Some(s));
        }
        assert_eq!(ServiceArea::from_name("Skype"), Some(ServiceArea::Teams));
        assert_eq!(
            ServiceArea::from_name("SharePoint"),
            Some(ServiceArea::SharePoint)
        );
        assert_eq!(ServiceArea::from_name("yammer"), None);
        assert_eq!(Category::from_name("Optimize"), Some(Category::Optimize));
        assert_eq!(Category::from_name("opt"), None);
    }
}
