//! Teams media quality: the measured path against Microsoft's network targets, and a MOS estimate by
//! the ITU-T G.107 E-model.

use crate::time::{micros, Duration};
use core::fmt;

/// Packet loss as parts per million of the packets sent (1 % = 10,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Loss(u32);

impl Loss {
    /// No loss.
    pub const NONE: Loss = Loss(0);
    /// Every packet lost.
    pub const ALL: Loss = Loss(PPM);

    /// From parts per million; `None` above 1,000,000.
    pub const fn from_ppm(ppm: u32) -> Option<Self> {
        if ppm <= PPM {
            Some(Self(ppm))
        } else {
            None
        }
    }

    /// `lost` of `sent` packets, rounded to the nearest ppm; `None` if nothing was sent or more were
    /// lost than sent.
    pub fn from_counts(lost: u32, sent: u32) -> Option<Self> {
        if sent == 0 || lost > sent {
            return None;
        }
        let ppm = (u64::from(lost) * u64::from(PPM) + u64::from(sent) / 2) / u64::from(sent);
        Some(Self(ppm as u32))
    }

    /// Parts per million.
    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// Percent, 0 to 100.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

const PPM: u32 = 1_000_000;

/// What the STUN probe measured towards a Teams media relay over one train of packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamsQuality {
    /// Round-trip time (median of the train).
    pub rtt: Duration,
    /// Packet loss over the train.
    pub loss: Loss,
    /// Inter-arrival jitter (RFC 3550).
    pub jitter: Duration,
}

/// Microsoft's targets for Teams media, in "Prepare your organization's network for Microsoft Teams"
/// (learn.microsoft.com/microsoftteams/prepare-network), "Network requirements", column "Client to
/// Microsoft Edge": round-trip latency < 100 ms.
pub const CLIENT_MAX_RTT: Duration = Duration::from_millis(100);
/// Same source and column: packet loss < 1 % during any 15 s interval.
pub const CLIENT_MAX_LOSS: Loss = Loss(10_000);
/// Same source and column: packet inter-arrival jitter < 30 ms during any 15 s interval.
pub const CLIENT_MAX_JITTER: Duration = Duration::from_millis(30);
/// Same source, column "Customer Edge to Microsoft Edge" (the stricter budget for the part of the
/// path past the office's own edge): round-trip latency < 60 ms.
pub const EDGE_MAX_RTT: Duration = Duration::from_millis(60);
/// Same source and column: packet loss < 0.1 % during any 15 s interval.
pub const EDGE_MAX_LOSS: Loss = Loss(1_000);
/// Same source and column: jitter < 15 ms during any 15 s interval.
pub const EDGE_MAX_JITTER: Duration = Duration::from_millis(15);

/// One set of Microsoft's Teams targets; a measurement meets a target when strictly below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamsTargets {
    /// Round-trip time must be below this.
    pub rtt: Duration,
    /// Loss must be below this.
    pub loss: Loss,
    /// Jitter must be below this.
    pub jitter: Duration,
}

impl TeamsTargets {
    /// From a client to Microsoft's edge: what a user's call experiences end to end. The default,
    /// since the router measures the whole path from the office to the relay.
    pub const CLIENT_TO_EDGE: Self = Self {
        rtt: CLIENT_MAX_RTT,
        loss: CLIENT_MAX_LOSS,
        jitter: CLIENT_MAX_JITTER,
    };
    /// From the customer's network edge to Microsoft's edge.
    pub const CUSTOMER_EDGE_TO_EDGE: Self = Self {
        rtt: EDGE_MAX_RTT,
        loss: EDGE_MAX_LOSS,
        jitter: EDGE_MAX_JITTER,
    };
}

/// One of Microsoft's Teams targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeamsTarget {
    /// Round-trip time.
    Rtt,
    /// Packet loss.
    Loss,
    /// Inter-arrival jitter.
    Jitter,
}

impl TeamsTarget {
    /// All targets, in report order.
    pub const ALL: [TeamsTarget; 3] = [Self::Rtt, Self::Loss, Self::Jitter];

    /// The lower-case name used in the JSON output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rtt => "rtt",
            Self::Loss => "loss",
            Self::Jitter => "jitter",
        }
    }
}

impl fmt::Display for TeamsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which of Microsoft's targets a measurement met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamsVerdict {
    /// RTT below target.
    pub rtt_ok: bool,
    /// Loss below target.
    pub loss_ok: bool,
    /// Jitter below target.
    pub jitter_ok: bool,
}

impl TeamsVerdict {
    /// Whether every target was met.
    pub fn meets_all(&self) -> bool {
        self.rtt_ok && self.loss_ok && self.jitter_ok
    }

    /// Whether this target was met.
    pub fn met(&self, target: TeamsTarget) -> bool {
        match target {
            TeamsTarget::Rtt => self.rtt_ok,
            TeamsTarget::Loss => self.loss_ok,
            TeamsTarget::Jitter => self.jitter_ok,
        }
    }

    /// The targets that were missed, in report order.
    pub fn failed(&self) -> impl Iterator<Item = TeamsTarget> + '_ {
        TeamsTarget::ALL.into_iter().filter(|&t| !self.met(t))
    }
}

impl TeamsQuality {
    /// Judged against Microsoft's client-to-edge targets (RTT < 100 ms, loss < 1 %, jitter < 30 ms).
    pub fn judge(&self) -> TeamsVerdict {
        self.judge_against(&TeamsTargets::CLIENT_TO_EDGE)
    }

    /// Judged against a given set of targets.
    pub fn judge_against(&self, targets: &TeamsTargets) -> TeamsVerdict {
        TeamsVerdict {
            rtt_ok: self.rtt < targets.rtt,
            loss_ok: self.loss < targets.loss,
            jitter_ok: self.jitter < targets.jitter,
        }
    }

    /// The estimated MOS of a call over this path: see [`mos`].
    pub fn mos(&self) -> f32 {
        mos(self)
    }
}

/// The voice codec the E-model assumes: its equipment impairment and loss robustness (ITU-T G.113
/// Appendix I) and the delay it adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Codec {
    /// Equipment impairment factor Ie with no loss.
    pub ie: f64,
    /// Packet-loss robustness factor Bpl.
    pub bpl: f64,
    /// Packetisation delay: one packet's worth of speech is buffered before it is sent.
    pub packet: Duration,
}

impl Codec {
    /// G.711 with packet-loss concealment, 20 ms packets: Ie = 0, Bpl = 25.1 (G.113 Appendix I,
    /// Table I.3, random loss). Teams uses wideband SILK/Satin, for which Microsoft publishes no E-model
    /// factors; G.711 with PLC is the reference most VoIP monitors use, so our MOS compares with theirs.
    pub const G711_PLC: Codec = Codec {
        ie: 0.0,
        bpl: 25.1,
        packet: Duration::from_millis(20),
    };
}

/// The jitter buffer holds this many times the measured jitter: twice the jitter is the common
/// sizing of an adaptive buffer that rides out most of the delay variation, and the delay it adds
/// is what a user hears.
pub const JITTER_BUFFER_FACTOR: u32 = 2;

/// Mouth-to-ear delay (G.107's Ta) of a call over a path: half the RTT (one way), plus the jitter
/// buffer ([`JITTER_BUFFER_FACTOR`] × jitter), plus the codec's packetisation delay.
pub fn mouth_to_ear(q: &TeamsQuality, codec: &Codec) -> Duration {
    Duration::from_ticks(q.rtt.as_ticks() / 2)
        + Duration::from_ticks(
            q.jitter
                .as_ticks()
                .saturating_mul(u64::from(JITTER_BUFFER_FACTOR)),
        )
        + codec.packet
}

/// The estimated MOS (1.0 to 4.5) of a call over this path, by the ITU-T G.107 (06/2015) E-model:
/// [`r_factor`] with the mouth-to-ear delay of [`mouth_to_ear`] and [`Codec::G711_PLC`], mapped to
/// MOS by [`r_to_mos`]. A perfect path gives R = 93.2, MOS 4.41.
pub fn mos(q: &TeamsQuality) -> f32 {
    let codec = Codec::G711_PLC;
    r_to_mos(r_factor(mouth_to_ear(q, &codec), q.loss, &codec)) as f32
}

/// G.107's table of default values ("Default values and permitted ranges for the parameters"), for
/// every E-model parameter that we do not measure.
mod default {
    pub const SLR: f64 = 8.0; // send loudness rating, dB
    pub const RLR: f64 = 2.0; // receive loudness rating, dB
    pub const STMR: f64 = 15.0; // sidetone masking rating, dB
    pub const LSTR: f64 = 18.0; // listener sidetone rating, dB
    pub const DS: f64 = 3.0; // D-value of telephone, send side
    pub const TELR: f64 = 65.0; // talker echo loudness rating, dB
    pub const WEPL: f64 = 110.0; // weighted echo path loss, dB
    pub const QDU: f64 = 1.0; // number of quantization distortion units
    pub const A: f64 = 0.0; // advantage factor
    pub const NC: f64 = -70.0; // circuit noise referred to the 0 dBr point, dBm0p
    pub const NFOR: f64 = -64.0; // noise floor at the receive side, dBmp
    pub const PS: f64 = 35.0; // room noise at the send side, dB(A)
    pub const PR: f64 = 35.0; // room noise at the receive side, dB(A)
    pub const BURST_R: f64 = 1.0; // burst ratio: 1 for random loss, all a probe train can tell apart
}

fn log10(x: f64) -> f64 {
    libm::log10(x)
}

fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// The G.107 transmission rating R of a call with mouth-to-ear delay `ta` and packet loss `loss`
/// through `codec`, every other parameter at its G.107 default. For a connection without echo
/// paths of its own (VoIP, headsets) the echo delays follow from it: T = Ta and Tr = 2 Ta. The loss
/// is taken as random (BurstR = 1).
pub fn r_factor(ta: Duration, loss: Loss, codec: &Codec) -> f64 {
    use default::*;
    let t = micros(ta) as f64 / 1000.0;
    let tr = 2.0 * t;

    // Basic signal-to-noise ratio Ro.
    let olr = SLR + RLR;
    let nfo = NFOR + RLR;
    let pre = PR + 10.0 * log10(1.0 + pow(10.0, (10.0 - LSTR) / 10.0));
    let nor = RLR - 121.0 + pre + 0.008 * (pre - 35.0) * (pre - 35.0);
    let nos_level = PS - olr - DS - 14.0;
    let nos = PS - SLR - DS - 100.0 + 0.004 * nos_level * nos_level;
    let no = 10.0
        * log10(
            pow(10.0, NC / 10.0)
                + pow(10.0, nos / 10.0)
                + pow(10.0, nor / 10.0)
                + pow(10.0, nfo / 10.0),
        );
    let ro = 15.0 - 1.5 * (SLR + no);

    // Simultaneous impairment factor Is = Iolr + Ist + Iq.
    let xolr = olr + 0.2 * (64.0 + no - RLR);
    let iolr = 20.0 * (pow(1.0 + pow(xolr / 8.0, 8.0), 1.0 / 8.0) - xolr / 8.0);
    let stmro =
        -10.0 * log10(pow(10.0, -STMR / 10.0) + libm::exp(-t / 4.0) * pow(10.0, -TELR / 10.0));
    let ist = 12.0 * pow(1.0 + pow((stmro - 13.0) / 6.0, 8.0), 1.0 / 8.0)
        - 28.0 * pow(1.0 + pow((stmro + 1.0) / 19.4, 35.0), 1.0 / 35.0)
        - 13.0 * pow(1.0 + pow((stmro - 3.0) / 33.0, 13.0), 1.0 / 13.0)
        + 29.0;
    let q = 37.0 - 15.0 * log10(QDU);
    let g = 1.07 + 0.258 * q + 0.0602 * q * q;
    let z = 46.0 / 30.0 - g / 40.0;
    let y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0;
    let iq = 15.0 * log10(1.0 + pow(10.0, y) + pow(10.0, z));
    let is = iolr + ist + iq;

    // Delay impairment factor Id = Idte + Idle + Idd.
    let idte = if t < 1.0 {
        // Below 1 ms the talker's echo is heard as sidetone, which Ist already covers.
        0.0
    } else {
        let terv = TELR - 40.0 * log10((1.0 + t / 10.0) / (1.0 + t / 150.0))
            + 6.0 * libm::exp(-0.3 * t * t);
        let roe = -1.5 * (no - RLR);
        let re = 80.0 + 2.5 * (terv - 14.0);
        ((roe - re) / 2.0 + libm::sqrt((roe - re) * (roe - re) / 4.0 + 100.0) - 1.0)
            * (1.0 - libm::exp(-t))
    };
    let rle = 10.5 * (WEPL + 7.0) * pow(tr + 1.0, -0.25);
    let idle = (ro - rle) / 2.0 + libm::sqrt((ro - rle) * (ro - rle) / 4.0 + 169.0);
    let idd = if t <= 100.0 {
        0.0
    } else {
        let x = log10(t / 100.0) / log10(2.0);
        25.0 * (pow(1.0 + pow(x, 6.0), 1.0 / 6.0) - 3.0 * pow(1.0 + pow(x / 3.0, 6.0), 1.0 / 6.0)
            + 2.0)
    };
    let id = idte + idle + idd;

    // Effective equipment impairment factor Ie,eff under random packet loss.
    let ppl = loss.percent();
    let ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl / BURST_R + codec.bpl);

    ro - is - id - ie_eff + A
}

/// G.107 Annex B: the MOS (conversational quality, 1 to 4.5) that a rating R predicts. Annex B's cubic
/// dips to 0.99 for 0 < R < 6.5; the MOS scale ends at 1 ("bad"), so that is floored to 1.
pub fn r_to_mos(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn path(rtt: u64, loss_ppm: u32, jitter: u64) -> TeamsQuality {
        TeamsQuality {
            rtt: ms(rtt),
            loss: Loss::from_ppm(loss_ppm).unwrap(),
            jitter: ms(jitter),
        }
    }

    #[test]
    fn targets_are_strict_and_name_what_failed() {
        assert!(path(99, 9_999, 29).judge().meets_all());
        let v = path(100, 10_000, 30).judge();
        assert_eq!(v.failed().collect::<Vec<_>>(), TeamsTarget::ALL);
        let v = path(150, 0, 5).judge();
        assert_eq!(v.failed().collect::<Vec<_>>(), [TeamsTarget::Rtt]);
        let v = path(20, 20_000, 40).judge();
        assert_eq!(
            v.failed().map(|t| t.name()).collect::<Vec<_>>(),
            ["loss", "jitter"]
        );
        // The same path meets the client budget but not the stricter customer-edge one.
        let v = path(80, 5_000, 20).judge_against(&TeamsTargets::CUSTOMER_EDGE_TO_EDGE);
        assert_eq!(v.failed().collect::<Vec<_>>(), TeamsTarget::ALL);
        assert!(path(80, 5_000, 20).judge().meets_all());
    }

    #[test]
    fn loss_from_counts_rounds_and_refuses_nonsense() {
        assert_eq!(Loss::from_counts(1, 100), Loss::from_ppm(10_000));
        assert_eq!(Loss::from_counts(1, 3), Loss::from_ppm(333_333));
        assert_eq!(Loss::from_counts(2, 3), Loss::from_ppm(666_667));
        assert_eq!(Loss::from_counts(0, 0), None);
        assert_eq!(Loss::from_counts(5, 4), None);
        assert_eq!(Loss::from_ppm(1_000_001), None);
        assert_eq!(Loss::from_counts(u32::MAX, u32::MAX), Some(Loss::ALL));
    }

    /// G.107, "Default values": with every parameter at its default, R = 93.2. Our inputs at zero delay
    /// and zero loss are exactly the defaults (Ta = T = Tr = 0, Ie = 0, Ppl = 0).
    #[test]
    fn default_parameters_give_the_published_r_93_2() {
        let r = r_factor(ms(0), Loss::NONE, &Codec::G711_PLC);
        assert!((r - 93.2).abs() < 0.05, "R = {r}");
        // Annex B, figure B.1 reads MOS 4.41 at the default R.
        assert!((r_to_mos(r) - 4.41).abs() < 0.005, "MOS = {}", r_to_mos(r));
    }

    /// G.109 Table 1 lists the MOS at the lower R limit of each speech quality category, from G.107
    /// Annex B: R 90 -> 4.34, 80 -> 4.03, 70 -> 3.60, 60 -> 3.10, 50 -> 2.58.
    #[test]
    fn r_to_mos_matches_g109_category_limits_and_clamps() {
        for (r, want) in [
            (90.0, 4.34),
            (80.0, 4.03),
            (70.0, 3.60),
            (60.0, 3.10),
            (50.0, 2.58),
        ] {
            assert!(
                (r_to_mos(r) - want).abs() <= 0.01,
                "R {r}: {} vs {want}",
                r_to_mos(r)
            );
        }
        assert_eq!(r_to_mos(-5.0), 1.0);
        assert_eq!(r_to_mos(f64::NAN), 1.0);
        assert_eq!(r_to_mos(120.0), 4.5);
        // Annex B's cubic dips below 1 for 0 < R < 6.5; the scale (and our docs) end at 1.
        for tenth in 0..=1_000 {
            let r = f64::from(tenth) / 10.0;
            assert!(r_to_mos(r) >= 1.0, "R {r}: MOS {}", r_to_mos(r));
        }
        // 500 ms, 45 % loss, 50 ms jitter: R is about 4, a call nobody can hold, MOS 1.
        let dead = path(500, 450_000, 50);
        let r = r_factor(
            mouth_to_ear(&dead, &Codec::G711_PLC),
            dead.loss,
            &Codec::G711_PLC,
        );
        assert!(r > 0.0 && r < 6.5, "R {r}");
        assert_eq!(dead.mos(), 1.0);
    }

    /// Cole and Rosenbluth ("Voice over IP performance monitoring", ACM SIGCOMM CCR 31(2), 2001) fit
    /// G.107's delay impairment at default settings as Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)
    /// for one-way delay d in ms; an independent check of our Idte + Idle + Idd within a rating point
    /// up to 300 ms, where their fit was made.
    #[test]
    fn delay_impairment_follows_the_published_fit() {
        let r0 = r_factor(ms(0), Loss::NONE, &Codec::G711_PLC);
        for d in [25u64, 50, 100, 150, 177, 200, 250, 300] {
            let drop = r0 - r_factor(ms(d), Loss::NONE, &Codec::G711_PLC);
            let df = d as f64;
            let fit = 0.024 * df + 0.11 * (df - 177.3).max(0.0);
            assert!(
                (drop - fit).abs() < 1.0,
                "d = {d} ms: Id {drop:.2}, fit {fit:.2}"
            );
        }
    }

    /// G.107, "Equipment impairment factor": Ie,eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl). With G.711+PLC (Ie 0, Bpl 25.1)
    /// random loss of 1 % costs 95 / 26.1 = 3.64 points, and loss equal to Bpl costs half of 95.
    #[test]
    fn loss_impairment_follows_g107() {
        let r0 = r_factor(ms(0), Loss::NONE, &Codec::G711_PLC);
        let one = r0 - r_factor(ms(0), Loss::from_ppm(10_000).unwrap(), &Codec::G711_PLC);
        assert!((one - 95.0 / 26.1).abs() < 1e-9, "{one}");
        let half = r0 - r_factor(ms(0), Loss::from_ppm(251_000).unwrap(), &Codec::G711_PLC);
        assert!((half - 47.5).abs() < 1e-9, "{half}");
    }

    #[test]
    fn mos_falls_with_each_impairment_and_counts_jitter_as_delay() {
        let good = path(20, 0, 2).mos();
        assert!(good > 4.3 && good <= 4.41, "{good}");
        assert!(path(300, 0, 2).mos() < good);
        assert!(path(20, 30_000, 2).mos() < good);
        assert!(path(20, 0, 60).mos() < good);
        // 2 ms of jitter is 4 ms of buffer: the same as 8 ms more RTT.
        assert_eq!(path(20, 0, 2).mos(), path(28, 0, 0).mos());
        assert_eq!(
            mouth_to_ear(&path(100, 0, 10), &Codec::G711_PLC),
            ms(50 + 20 + 20)
        );
        // A path at Microsoft's client limits still makes an acceptable call (G.109 "medium" or better).
        let limit = path(99, 9_999, 29).mos();
        assert!(limit > 3.6, "{limit}");
        let dead = path(2_000, 500_000, 500).mos();
        assert!(dead < 1.6, "{dead}");
    }
}
