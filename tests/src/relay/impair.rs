//! The impairment decisions for one direction, without IO: given a frame and its arrival time, drop it
//! or say when it is due. Deterministic for a seed and an arrival sequence, so it is tested in
//! simulated time and the live relay only adds clocks and TAP devices around it.

use super::config::{Direction, Jitter, JitterDist, Loss, Prefix, Rule};
use super::frame::FrameMeta;
use super::log::DropReason;
use super::RelayError;

/// What happens to one arriving frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    Drop {
        rule: usize,
        reason: DropReason,
    },
    Forward {
        /// Index into the configuration's rules; `None` when no rule matched (no impairment).
        rule: Option<usize>,
        /// CLOCK_MONOTONIC nanoseconds at which the frame is to be sent.
        due_ns: u64,
        reordered: bool,
        duplicate: bool,
    },
}

struct ActiveRule {
    index: usize,
    prefix: Prefix,
    delay_ns: f64,
    jitter: Option<Jitter>,
    loss: Option<Loss>,
    reorder: Option<(f64, u64)>,
    duplicate: f64,
    /// Bytes per second and queue size.
    rate: Option<(u64, usize)>,
    /// Gilbert-Elliott state.
    bad: bool,
    /// When the bottleneck link finishes serialising what is already queued.
    link_free_ns: u64,
    /// Latest due time given to an in-order frame: later arrivals never leave before it.
    last_due_ns: u64,
}

/// Decisions for the frames of one direction.
pub(crate) struct Impairment {
    rules: Vec<ActiveRule>,
    rng: Rng,
}

impl Impairment {
    pub(crate) fn new(rules: &[Rule], way: Direction, seed: u64) -> Result<Impairment, RelayError> {
        let mut active = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if !rule.direction.covers(way) {
                continue;
            }
            active.push(ActiveRule {
                index,
                prefix: Prefix::parse(&rule.prefix)?,
                delay_ns: rule.delay_ms * 1e6,
                jitter: rule.jitter,
                loss: rule.loss,
                reorder: rule.reorder.map(|r| (r.p, ms_to_ns(r.extra_delay_ms))),
                duplicate: rule.duplicate,
                rate: rule
                    .rate
                    .map(|r| (r.kbit_per_s.saturating_mul(125), r.queue_bytes)),
                bad: false,
                link_free_ns: 0,
                last_due_ns: 0,
            });
        }
        // Each direction draws from its own stream so one side's traffic cannot shift the other's.
        let stream = match way {
            Direction::BtoA => u64::from_be_bytes(*b"relayB>A"),
            _ => u64::from_be_bytes(*b"relayA>B"),
        };
        Ok(Impairment {
            rules: active,
            rng: Rng::new(seed ^ stream),
        })
    }

    pub(crate) fn decide(&mut self, arrival_ns: u64, len: usize, meta: &FrameMeta) -> Decision {
        let pass = Decision::Forward {
            rule: None,
            due_ns: arrival_ns,
            reordered: false,
            duplicate: false,
        };
        if meta.is_link_control() {
            return pass;
        }
        let Some(dst) = meta.dst else {
            return pass;
        };
        let Some(rule) = self.rules.iter_mut().find(|r| r.prefix.contains(dst)) else {
            return pass;
        };
        let rng = &mut self.rng;

        let lost = match rule.loss {
            None => false,
            Some(Loss::Bernoulli { p }) => rng.chance(p),
            Some(Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            }) => {
                let lost = rng.chance(if rule.bad { loss_bad } else { loss_good });
                rule.bad = if rule.bad {
                    !rng.chance(r)
                } else {
                    rng.chance(p)
                };
                lost
            }
        };
        if lost {
            return Decision::Drop {
                rule: rule.index,
                reason: DropReason::Loss,
            };
        }

        let mut leaves_ns = arrival_ns;
        if let Some((bytes_per_s, queue_bytes)) = rule.rate {
            let backlog_ns = rule.link_free_ns.saturating_sub(arrival_ns);
            let backlog_bytes = u128::from(backlog_ns) * u128::from(bytes_per_s) / 1_000_000_000;
            if backlog_bytes + len as u128 > queue_bytes as u128 {
                return Decision::Drop {
                    rule: rule.index,
                    reason: DropReason::QueueFull,
                };
            }
            let serialise_ns = (len as u128 * 1_000_000_000).div_ceil(u128::from(bytes_per_s));
            leaves_ns = rule.link_free_ns.max(arrival_ns) + serialise_ns as u64;
            rule.link_free_ns = leaves_ns;
        }

        let jitter_ns = match rule.jitter {
            None => 0.0,
            Some(Jitter {
                dist: JitterDist::Uniform,
                ms,
            }) => (rng.unit() * 2.0 - 1.0) * ms * 1e6,
            Some(Jitter {
                dist: JitterDist::Normal,
                ms,
            }) => rng.normal() * ms * 1e6,
        };
        let delay_ns = (rule.delay_ns + jitter_ns).max(0.0).round() as u64;
        let mut due_ns = (leaves_ns + delay_ns).max(rule.last_due_ns);
        let mut reordered = false;
        match rule.reorder {
            Some((p, extra_ns)) if rng.chance(p) => {
                due_ns += extra_ns;
                reordered = true;
            }
            _ => rule.last_due_ns = due_ns,
        }
        let duplicate = rng.chance(rule.duplicate);
        Decision::Forward {
            rule: Some(rule.index),
            due_ns,
            reordered,
            duplicate,
        }
    }
}

pub(crate) fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).round().max(0.0) as u64
}

/// xoshiro256++ seeded through SplitMix64: small, fast and the same on every platform.
pub(crate) struct Rng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut split = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [split(), split(), split(), split()],
            spare_normal: None,
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`; draws nothing when `p` is 0 so unused impairments do not shift
    /// the random stream of the others.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Standard normal, by the Box-Muller transform (both values of a pair are used).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - unit() is in (0, 1]: the logarithm stays finite.
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{RateLimit, Reorder};
    use super::*;

    const MS: u64 = 1_000_000;

    fn udp_to(dst: &str) -> FrameMeta {
        FrameMeta {
            ethertype: super::super::frame::ETHERTYPE_IPV4,
            src: Some("198.51.100.1".parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            proto: Some(17),
            sport: Some(5000),
            dport: Some(5000),
            icmpv6_type: None,
        }
    }

    fn forward_due(decision: Decision) -> u64 {
        match decision {
            Decision::Forward { due_ns, .. } => due_ns,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    fn mean_sd(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    #[test]
    fn first_matching_rule_of_the_direction_applies() {
        let mut upstream_only = Rule::delay("203.0.113.0/24", 40.0);
        upstream_only.direction = Direction::AtoB;
        let rules = vec![
            Rule::delay("203.0.113.128/25", 10.0),
            upstream_only,
            Rule::delay("0.0.0.0/0", 5.0),
        ];
        let mut up = Impairment::new(&rules, Direction::AtoB, 1).unwrap();
        let mut down = Impairment::new(&rules, Direction::BtoA, 1).unwrap();
        let at = 1_000 * MS;
        let cases = [
            (Direction::AtoB, "203.0.113.200", Some(0), 10),
            (Direction::AtoB, "203.0.113.5", Some(1), 40),
            (Direction::AtoB, "192.0.2.1", Some(2), 5),
            (Direction::BtoA, "203.0.113.5", Some(2), 5),
        ];
        for (way, dst, rule_index, delay_ms) in cases {
            let engine = if way == Direction::AtoB {
                &mut up
            } else {
                &mut down
            };
            match engine.decide(at, 100, &udp_to(dst)) {
                Decision::Forward { rule, due_ns, .. } => {
                    assert_eq!(rule, rule_index, "{dst}");
                    assert_eq!(due_ns, at + delay_ms * MS, "{dst}");
                }
                other => panic!("{dst}: {other:?}"),
            }
        }
        let unmatched = Impairment::new(&rules[..1], Direction::AtoB, 1)
            .unwrap()
            .decide(at, 100, &udp_to("192.0.2.1"));
        assert_eq!(forward_due(unmatched), at);
    }

    #[test]
    fn arp_and_neighbour_discovery_escape_a_catch_all_total_loss() {
        let mut rule = Rule::delay("0.0.0.0/0", 50.0);
        rule.loss = Some(Loss::Bernoulli { p: 1.0 });
        let mut rule6 = rule.clone();
        rule6.prefix = "::/0".into();
        let mut engine = Impairment::new(&[rule, rule6], Direction::AtoB, 3).unwrap();
        let arp = FrameMeta {
            ethertype: super::super::frame::ETHERTYPE_ARP,
            ..FrameMeta::default()
        };
        assert_eq!(forward_due(engine.decide(7, 42, &arp)), 7);
        let solicitation = FrameMeta {
            ethertype: super::super::frame::ETHERTYPE_IPV6,
            dst: Some("ff02::1:ff00:2".parse().unwrap()),
            proto: Some(58),
            icmpv6_type: Some(135),
            ..FrameMeta::default()
        };
        assert_eq!(forward_due(engine.decide(7, 86, &solicitation)), 7);
        let ping6 = FrameMeta {
            icmpv6_type: Some(128),
            ..solicitation
        };
        assert!(matches!(
            engine.decide(7, 86, &ping6),
            Decision::Drop { .. }
        ));
        assert!(matches!(
            engine.decide(7, 60, &udp_to("203.0.113.1")),
            Decision::Drop { .. }
        ));
    }

    #[test]
    fn jitter_spreads_as_configured_and_never_reorders() {
        for (dist, expected_sd) in [
            (JitterDist::Uniform, 4.0 / 3f64.sqrt()),
            (JitterDist::Normal, 4.0),
        ] {
            let mut rule = Rule::delay("203.0.113.0/24", 30.0);
            rule.jitter = Some(Jitter { dist, ms: 4.0 });
            // Arrivals far apart: ordering never interferes, so the spread is the distribution's.
            let mut sparse = Impairment::new(&[rule.clone()], Direction::AtoB, 11).unwrap();
            let delays: Vec<f64> = (0..20_000u64)
                .map(|i| {
                    let at = i * 100 * MS;
                    (forward_due(sparse.decide(at, 100, &udp_to("203.0.113.9"))) - at) as f64 / 1e6
                })
                .collect();
            let (mean, sd) = mean_sd(&delays);
            assert!((mean - 30.0).abs() < 0.15, "{dist:?} mean {mean}");
            assert!((sd / expected_sd - 1.0).abs() < 0.03, "{dist:?} sd {sd}");
            if dist == JitterDist::Uniform {
                assert!(delays.iter().all(|d| (26.0..=34.0).contains(d)));
            }
            // Arrivals 0.1 ms apart with ±4 ms of jitter would overtake each other constantly.
            let mut dense = Impairment::new(&[rule], Direction::AtoB, 11).unwrap();
            let dues: Vec<u64> = (0..5_000u64)
                .map(|i| forward_due(dense.decide(i * MS / 10, 100, &udp_to("203.0.113.9"))))
                .collect();
            assert!(dues.windows(2).all(|w| w[0] <= w[1]), "{dist:?} reordered");
        }
    }

    #[test]
    fn reorder_holds_back_the_chosen_frames_only() {
        let mut rule = Rule::delay("203.0.113.0/24", 10.0);
        rule.reorder = Some(Reorder {
            p: 0.1,
            extra_delay_ms: 5.0,
        });
        let mut engine = Impairment::new(&[rule], Direction::AtoB, 5).unwrap();
        let mut held = 0;
        for i in 0..10_000u64 {
            let at = i * MS;
            match engine.decide(at, 100, &udp_to("203.0.113.9")) {
                Decision::Forward {
                    due_ns, reordered, ..
                } => {
                    let expected = if reordered { 15 } else { 10 };
                    assert_eq!(due_ns, at + expected * MS);
                    held += usize::from(reordered);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!((850..=1150).contains(&held), "{held} of 10000 held back");
    }

    #[test]
    fn bernoulli_and_gilbert_elliott_loss_rates_and_burst_lengths() {
        let bursts = |loss: Loss| {
            let mut rule = Rule::delay("203.0.113.0/24", 0.0);
            rule.loss = Some(loss);
            let mut engine = Impairment::new(&[rule], Direction::AtoB, 99).unwrap();
            let lost: Vec<bool> = (0..200_000u64)
                .map(|i| {
                    matches!(
                        engine.decide(i, 100, &udp_to("203.0.113.9")),
                        Decision::Drop { .. }
                    )
                })
                .collect();
            let total = lost.iter().filter(|&&l| l).count();
            let starts = lost.windows(2).filter(|w| !w[0] && w[1]).count();
            (
                total as f64 / lost.len() as f64,
                total as f64 / starts as f64,
            )
        };
        let (rate, burst) = bursts(Loss::Bernoulli { p: 0.03 });
        assert!((rate - 0.03).abs() < 0.002, "bernoulli rate {rate}");
        assert!(burst < 1.1, "bernoulli bursts {burst}");
        let (rate, burst) = bursts(Loss::GilbertElliott {
            p: 0.01,
            r: 0.25,
            loss_good: 0.0,
            loss_bad: 1.0,
        });
        // Stationary share of the bad state is p / (p + r).
        assert!(
            (rate - 0.01 / 0.26).abs() < 0.005,
            "gilbert-elliott rate {rate}"
        );
        assert!((burst - 4.0).abs() < 0.3, "gilbert-elliott bursts {burst}");
    }

    #[test]
    fn rate_limit_serialises_queues_and_drops_when_full() {
        let mut rule = Rule::delay("203.0.113.0/24", 20.0);
        // 1 Mbit/s: a 1250-byte frame takes 10 ms; the queue holds 8 of them (80 ms of bloat).
        rule.rate = Some(RateLimit {
            kbit_per_s: 1000,
            queue_bytes: 10_000,
        });
        let mut engine = Impairment::new(&[rule], Direction::AtoB, 1).unwrap();
        let mut dues = Vec::new();
        let mut dropped = 0;
        // 20 frames arriving at once: 8 fit, the rest overflow.
        for _ in 0..20 {
            match engine.decide(0, 1250, &udp_to("203.0.113.9")) {
                Decision::Forward { due_ns, .. } => dues.push(due_ns),
                Decision::Drop { reason, .. } => {
                    assert_eq!(reason, DropReason::QueueFull);
                    dropped += 1;
                }
            }
        }
        assert_eq!(dues.len(), 8);
        assert_eq!(dropped, 12);
        for (k, due) in dues.iter().enumerate() {
            assert_eq!(*due, (k as u64 + 1) * 10 * MS + 20 * MS);
        }
        // Once the link has drained half the queue, four more fit.
        let later = 40 * MS;
        let fit = (0..10)
            .filter(|_| {
                matches!(
                    engine.decide(later, 1250, &udp_to("203.0.113.9")),
                    Decision::Forward { .. }
                )
            })
            .count();
        assert_eq!(fit, 4);
    }

    #[test]
    fn same_seed_same_decisions_other_seed_other_decisions() {
        let mut rule = Rule::delay("203.0.113.0/24", 10.0);
        rule.loss = Some(Loss::Bernoulli { p: 0.2 });
        rule.jitter = Some(Jitter {
            dist: JitterDist::Normal,
            ms: 2.0,
        });
        rule.duplicate = 0.1;
        let run = |seed| {
            let mut engine = Impairment::new(&[rule.clone()], Direction::AtoB, seed).unwrap();
            (0..1000u64)
                .map(|i| engine.decide(i * 50 * MS, 100, &udp_to("203.0.113.9")))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }
}
