//! The relay's configuration: the two TAP endpoints and the impairment rules, as TOML.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RelayError;

/// Everything the relay needs: where its two sides live, what to do to frames, and where to log.
///
/// Side A is the office side, side B the internet side; `AtoB` is therefore upstream traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub side_a: Endpoint,
    pub side_b: Endpoint,
    /// Tried in order for each IP frame; the first whose direction and prefix match applies.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Seeds every random decision, so a run is repeatable frame by frame.
    #[serde(default)]
    pub seed: u64,
    /// JSON Lines log of every frame event (see the module docs); none if absent.
    #[serde(default)]
    pub log: Option<PathBuf>,
}

/// A TAP device that the relay creates inside a network namespace and brings up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Name under /var/run/netns (as `ip netns add` makes it); "" for the relay's own namespace.
    #[serde(default)]
    pub netns: String,
    pub ifname: String,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

fn default_mtu() -> u16 {
    1500
}

/// Which way a rule applies; in the log, which way a frame went (never `Both`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Office to internet.
    #[serde(rename = "a_to_b")]
    AtoB,
    /// Internet to office.
    #[serde(rename = "b_to_a")]
    BtoA,
    #[serde(rename = "both")]
    Both,
}

impl Direction {
    /// Whether a rule with this direction applies to frames going `way`.
    pub fn covers(self, way: Direction) -> bool {
        self == Direction::Both || self == way
    }
}

/// The impairment for frames whose destination falls in `prefix`, in `direction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default = "default_direction")]
    pub direction: Direction,
    /// CIDR, IPv4 or IPv6, matched against the destination address of the IP packet.
    pub prefix: String,
    /// One-way propagation delay added to every frame.
    #[serde(default)]
    pub delay_ms: f64,
    #[serde(default)]
    pub jitter: Option<Jitter>,
    #[serde(default)]
    pub loss: Option<Loss>,
    #[serde(default)]
    pub reorder: Option<Reorder>,
    /// Probability that a forwarded frame is sent twice.
    #[serde(default)]
    pub duplicate: f64,
    #[serde(default)]
    pub rate: Option<RateLimit>,
}

fn default_direction() -> Direction {
    Direction::Both
}

impl Rule {
    /// A rule that only delays, in both directions: the common case in scenarios.
    pub fn delay(prefix: &str, delay_ms: f64) -> Rule {
        Rule {
            direction: Direction::Both,
            prefix: prefix.to_owned(),
            delay_ms,
            jitter: None,
            loss: None,
            reorder: None,
            duplicate: 0.0,
            rate: None,
        }
    }

    /// Whether this rule covers an IP packet to `dst` going `way` (first match wins among rules).
    pub fn applies_to(&self, way: Direction, dst: IpAddr) -> bool {
        self.direction.covers(way) && Prefix::parse(&self.prefix).is_ok_and(|p| p.contains(dst))
    }
}

/// Random variation added to the delay. It never reorders frames of one rule and direction: a frame
/// that would overtake an earlier one waits for it instead (unless [`Reorder`] picked it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jitter {
    pub dist: JitterDist,
    /// Uniform: half-width (delay ± ms). Normal: standard deviation.
    pub ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JitterDist {
    Uniform,
    Normal,
}

/// Which frames are lost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    /// Each frame independently with probability `p`.
    Bernoulli { p: f64 },
    /// Two-state bursts: `p` good→bad and `r` bad→good per frame, with a loss probability in each
    /// state. With `loss_good = 0` and `loss_bad = 1` bursts last 1/r frames on average.
    GilbertElliott {
        p: f64,
        r: f64,
        #[serde(default)]
        loss_good: f64,
        #[serde(default = "one")]
        loss_bad: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// With probability `p` a frame is held `extra_delay_ms` longer and later frames may overtake it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reorder {
    pub p: f64,
    pub extra_delay_ms: f64,
}

/// A bottleneck link in front of the delay: frames are serialised at `kbit_per_s` (Ethernet frame
/// bytes, no preamble or FCS) from a FIFO of `queue_bytes`; a frame that does not fit is dropped.
/// A deep queue is buffer bloat: latency grows under load instead of loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub kbit_per_s: u64,
    /// Bytes waiting or being serialised; must hold at least one full frame.
    pub queue_bytes: usize,
}

impl RelayConfig {
    pub fn from_toml(text: &str) -> Result<RelayConfig, RelayError> {
        let config: RelayConfig =
            toml::from_str(text).map_err(|e| RelayError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<RelayConfig, RelayError> {
        let text = std::fs::read_to_string(path).map_err(|source| RelayError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        RelayConfig::from_toml(&text)
    }

    /// The rule the relay applies to an IP packet to `dst` going `way`, with its index as logged.
    pub fn rule_for(&self, way: Direction, dst: IpAddr) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.applies_to(way, dst))
    }

    pub fn to_toml(&self) -> String {
        // Every field is a plain value, a table or an array of tables: serialising cannot fail.
        toml::to_string(self).unwrap_or_default()
    }

    /// Rejects what would otherwise fail mid-run or silently mean something else.
    pub fn validate(&self) -> Result<(), RelayError> {
        for side in [&self.side_a, &self.side_b] {
            if side.ifname.is_empty() || side.ifname.len() >= libc::IFNAMSIZ {
                return Err(RelayError::Config(format!(
                    "interface name {:?} must be 1 to {} bytes",
                    side.ifname,
                    libc::IFNAMSIZ - 1
                )));
            }
            if side.mtu < 68 {
                return Err(RelayError::Config(format!(
                    "{}: MTU {} is below the IPv4 minimum of 68",
                    side.ifname, side.mtu
                )));
            }
        }
        if self.side_a.netns == self.side_b.netns && self.side_a.ifname == self.side_b.ifname {
            return Err(RelayError::Config(
                "side_a and side_b name the same interface in the same namespace".into(),
            ));
        }
        let max_frame = usize::from(self.side_a.mtu.max(self.side_b.mtu)) + ETHERNET_OVERHEAD;
        for (index, rule) in self.rules.iter().enumerate() {
            let bad = |what: String| RelayError::Config(format!("rule {index}: {what}"));
            Prefix::parse(&rule.prefix)?;
            check_ms("delay_ms", rule.delay_ms).map_err(bad)?;
            if let Some(jitter) = rule.jitter {
                check_ms("jitter.ms", jitter.ms).map_err(bad)?;
            }
            match rule.loss {
                Some(Loss::Bernoulli { p }) => check_p("loss.p", p).map_err(bad)?,
                Some(Loss::GilbertElliott {
                    p,
                    r,
                    loss_good,
                    loss_bad,
                }) => {
                    check_p("loss.p", p).map_err(bad)?;
                    check_p("loss.r", r).map_err(bad)?;
                    check_p("loss.loss_good", loss_good).map_err(bad)?;
                    check_p("loss.loss_bad", loss_bad).map_err(bad)?;
                }
                None => {}
            }
            if let Some(reorder) = rule.reorder {
                check_p("reorder.p", reorder.p).map_err(bad)?;
                check_ms("reorder.extra_delay_ms", reorder.extra_delay_ms).map_err(bad)?;
            }
            check_p("duplicate", rule.duplicate).map_err(bad)?;
            if let Some(rate) = rule.rate {
                if rate.kbit_per_s == 0 {
                    return Err(bad("rate.kbit_per_s must be above 0".into()));
                }
                if rate.queue_bytes < max_frame {
                    return Err(bad(format!(
                        "rate.queue_bytes {} cannot hold one {max_frame}-byte frame",
                        rate.queue_bytes
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Ethernet header plus one VLAN tag: the largest frame is the MTU plus this.
pub(crate) const ETHERNET_OVERHEAD: usize = 18;

fn check_p(name: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{name} = {p} is not a probability in [0, 1]"))
    }
}

fn check_ms(name: &str, ms: f64) -> Result<(), String> {
    // An hour bounds the scheduler's queue residence time and keeps ns arithmetic far from overflow.
    if ms.is_finite() && (0.0..=3_600_000.0).contains(&ms) {
        Ok(())
    } else {
        Err(format!("{name} = {ms} must be between 0 and 3600000 ms"))
    }
}

/// A parsed CIDR prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    pub(crate) fn parse(text: &str) -> Result<Prefix, RelayError> {
        let bad = || RelayError::Config(format!("{text:?} is not a CIDR prefix"));
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => len.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if len > max {
            return Err(bad());
        }
        Ok(Prefix { addr, len })
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
seed = 7
log = "/tmp/relay.jsonl"

[side_a]
netns = "office-lhr"
ifname = "wan0"

[side_b]
netns = "internet"
ifname = "lhr0"
mtu = 1400

[[rules]]
prefix = "203.0.113.0/24"
delay_ms = 12.5

[[rules]]
direction = "a_to_b"
prefix = "2001:db8:2::/48"
delay_ms = 40
jitter = { dist = "normal", ms = 3 }
loss = { model = "gilbert_elliott", p = 0.01, r = 0.25 }
reorder = { p = 0.01, extra_delay_ms = 5 }
duplicate = 0.001
rate = { kbit_per_s = 10000, queue_bytes = 64000 }
"#;

    #[test]
    fn documented_example_parses_with_defaults_filled_in() {
        let config = RelayConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!(config.side_a.mtu, 1500);
        assert_eq!(config.side_b.mtu, 1400);
        let minimal = &config.rules[0];
        assert_eq!(minimal.direction, Direction::Both);
        assert_eq!(minimal.delay_ms, 12.5);
        assert!(minimal.jitter.is_none() && minimal.loss.is_none() && minimal.rate.is_none());
        assert_eq!(minimal.duplicate, 0.0);
        assert_eq!(
            config.rules[1].loss,
            Some(Loss::GilbertElliott {
                p: 0.01,
                r: 0.25,
                loss_good: 0.0,
                loss_bad: 1.0
            })
        );
        // What the lab writes out must read back the same.
        assert_eq!(RelayConfig::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn the_example_in_the_module_docs_is_a_valid_configuration() {
        let docs: String = include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l)))
            .collect();
        let example = docs
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a TOML example in the module docs");
        let config = RelayConfig::from_toml(example).unwrap();
        assert_eq!(config.side_a.netns, "office-lhr");
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.rules[1].direction, Direction::AtoB);
        let v6: IpAddr = "2001:db8:2::1".parse().unwrap();
        assert_eq!(
            config.rule_for(Direction::AtoB, v6).map(|(i, _)| i),
            Some(1)
        );
        assert!(config.rule_for(Direction::BtoA, v6).is_none());
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(
            config.rule_for(Direction::BtoA, v4).map(|(i, _)| i),
            Some(0)
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_rule_named() {
        let with = |rule: &str| EXAMPLE.replace("delay_ms = 12.5", rule);
        let err = RelayConfig::from_toml(&with("delay_ms = 1\nduplicate = 1.5")).unwrap_err();
        assert!(err.to_string().contains("rule 0"), "{err}");
        let err = RelayConfig::from_toml(&EXAMPLE.replace("/24", "/33")).unwrap_err();
        assert!(err.to_string().contains("203.0.113.0/33"), "{err}");
        let err = RelayConfig::from_toml(&with("dely_ms = 3")).unwrap_err();
        assert!(err.to_string().contains("dely_ms"), "{err}");
        let err =
            RelayConfig::from_toml(&EXAMPLE.replace("queue_bytes = 64000", "queue_bytes = 1000"))
                .unwrap_err();
        assert!(err.to_string().contains("queue_bytes"), "{err}");
    }

    #[test]
    fn prefixes_match_by_their_length_only() {
        let net = Prefix::parse("198.51.100.128/25").unwrap();
        assert!(net.contains("198.51.100.200".parse().unwrap()));
        assert!(!net.contains("198.51.100.127".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let all = Prefix::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6 = Prefix::parse("2001:db8:1::/48").unwrap();
        assert!(v6.contains("2001:db8:1:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db8:2::1".parse().unwrap()));
        let host = Prefix::parse("2001:db8::5").unwrap();
        assert!(host.contains("2001:db8::5".parse().unwrap()));
        assert!(!host.contains("2001:db8::6".parse().unwrap()));
    }
}
