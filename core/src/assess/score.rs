//! Points from 0 to 100 per service, on the curves Microsoft publishes for its network assessment
//! (learn.microsoft.com/microsoft-365/enterprise/office-365-network-mac-perf-score): linear between
//! the published points, flat beyond the ends.

use crate::time::{micros, Duration};

/// Exchange Online: median TCP connect latency to the front door, in ms, and the points it earns.
pub const EXCHANGE_CURVE: [(u64, u8); 6] = [
    (10, 100),
    (25, 80),
    (100, 60),
    (200, 40),
    (300, 20),
    (350, 0),
];

/// SharePoint Online: 25th-percentile download speed in MBps (megabytes per second, 10^6 bytes, as
/// Microsoft's tools count them) and the points it earns.
pub const SHAREPOINT_CURVE: [(u64, u8); 6] =
    [(0, 0), (2, 20), (4, 40), (8, 60), (14, 80), (20, 100)];

/// Teams: estimated MOS and the points it earns.
///
/// Microsoft scores Teams from its own call-quality telemetry, which a probe cannot see; we score the
/// MOS that [`super::teams::mos`] estimates. The points step by 20 at the MOS that ITU-T G.109 (Table 1)
/// gives for the lower R limit of each speech transmission quality category: R 90 "best" (MOS 4.34),
/// 80 "high" (4.03), 70 "medium" (3.60), 60 "low" (3.10), 50 "poor" (2.58), down to the scale's floor
/// MOS 1.0. So each band of 20 points is one category of user satisfaction, as on the Exchange and
/// SharePoint curves each band is a step Microsoft considers noticeable; a straight line from MOS 1
/// to 4.3 would instead give a call in which many users are dissatisfied (MOS 3.6) 79 points.
pub const TEAMS_CURVE: [(f32, u8); 6] = [
    (1.0, 0),
    (2.58, 20),
    (3.10, 40),
    (3.60, 60),
    (4.03, 80),
    (4.34, 100),
];

/// Points for Exchange from the median TCP latency to its front door.
pub fn exchange_score(median_tcp_latency: Duration) -> u8 {
    piecewise(&EXCHANGE_CURVE, 1_000, micros(median_tcp_latency))
}

/// Points for SharePoint from the 25th-percentile download speed, in bytes per second.
pub fn sharepoint_score(p25_download_bytes_per_s: u64) -> u8 {
    piecewise(&SHAREPOINT_CURVE, 1_000_000, p25_download_bytes_per_s)
}

/// Points for Teams from an estimated MOS; a NaN scores 0.
pub fn teams_score(mos: f32) -> u8 {
    let (Some(&(x_first, y_first)), Some(&(x_last, y_last))) =
        (TEAMS_CURVE.first(), TEAMS_CURVE.last())
    else {
        return 0;
    };
    if mos.is_nan() {
        return 0;
    }
    if mos <= x_first {
        return y_first;
    }
    if mos >= x_last {
        return y_last;
    }
    for w in TEAMS_CURVE.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if mos <= x1 {
            let y = f32::from(y0) + (f32::from(y1) - f32::from(y0)) * (mos - x0) / (x1 - x0);
            return libm::roundf(y) as u8;
        }
    }
    y_last
}

/// Linear interpolation on a curve whose x values (ascending) are in units of `unit` inputs,
/// rounded to the nearest point, in integers so that every published point is hit exactly.
fn piecewise(curve: &[(u64, u8)], unit: u64, x: u64) -> u8 {
    let (Some(&(x_first, y_first)), Some(&(x_last, y_last))) = (curve.first(), curve.last()) else {
        return 0;
    };
    if x <= x_first.saturating_mul(unit) {
        return y_first;
    }
    if x >= x_last.saturating_mul(unit) {
        return y_last;
    }
    for w in curve.windows(2) {
        let ((x0, y0), (x1, y1)) = ((w[0].0 * unit, w[0].1), (w[1].0 * unit, w[1].1));
        if x <= x1 {
            let num = (i128::from(y1) - i128::from(y0)) * i128::from(x - x0);
            let den = i128::from(x1 - x0);
            let step = if num >= 0 {
                (2 * num + den) / (2 * den)
            } else {
                -((-2 * num + den) / (2 * den))
            };
            return (i128::from(y0) + step) as u8;
        }
    }
    y_last
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms_f(v: f64) -> Duration {
        Duration::from_micros((v * 1000.0) as u64)
    }

    /// The published points, written out here from Microsoft's page rather than read from the
    /// constants, so a wrong constant fails.
    #[test]
    fn published_points_score_exactly() {
        for (ms, points) in [
            (10.0, 100),
            (25.0, 80),
            (100.0, 60),
            (200.0, 40),
            (300.0, 20),
            (350.0, 0),
        ] {
            assert_eq!(exchange_score(ms_f(ms)), points, "{ms} ms");
        }
        for (mbps, points) in [(20, 100), (14, 80), (8, 60), (4, 40), (2, 20), (0, 0)] {
            assert_eq!(sharepoint_score(mbps * 1_000_000), points, "{mbps} MBps");
        }
        for (mos, points) in [
            (4.34, 100),
            (4.03, 80),
            (3.60, 60),
            (3.10, 40),
            (2.58, 20),
            (1.0, 0),
        ] {
            assert_eq!(teams_score(mos), points, "MOS {mos}");
        }
    }

    #[test]
    fn midpoints_score_halfway() {
        for (ms, points) in [
            (17.5, 90),
            (62.5, 70),
            (150.0, 50),
            (250.0, 30),
            (325.0, 10),
        ] {
            assert_eq!(exchange_score(ms_f(ms)), points, "{ms} ms");
        }
        for (mbps, points) in [(1.0, 10), (3.0, 30), (6.0, 50), (11.0, 70), (17.0, 90)] {
            assert_eq!(sharepoint_score((mbps * 1e6) as u64), points, "{mbps} MBps");
        }
        for w in TEAMS_CURVE.windows(2) {
            let mid = (w[0].0 + w[1].0) / 2.0;
            assert_eq!(teams_score(mid), (w[0].1 + w[1].1) / 2, "MOS {mid}");
        }
        // Between points the rounding is to the nearest: 11 ms is 98.67 points.
        assert_eq!(exchange_score(ms_f(11.0)), 99);
        assert_eq!(sharepoint_score(100_000), 1);
    }

    #[test]
    fn ends_are_clamped() {
        assert_eq!(exchange_score(Duration::from_ticks(0)), 100);
        assert_eq!(exchange_score(ms_f(5.0)), 100);
        assert_eq!(exchange_score(ms_f(351.0)), 0);
        assert_eq!(exchange_score(Duration::MAX), 0);
        assert_eq!(sharepoint_score(u64::MAX), 100);
        assert_eq!(sharepoint_score(50_000_000), 100);
        assert_eq!(teams_score(4.5), 100);
        assert_eq!(teams_score(0.0), 0);
        assert_eq!(teams_score(-1.0), 0);
        assert_eq!(teams_score(f32::NAN), 0);
        assert_eq!(teams_score(f32::INFINITY), 100);
    }

    #[test]
    fn a_perfect_teams_path_scores_full_points() {
        let q = super::super::teams::TeamsQuality {
            rtt: Duration::from_millis(10),
            loss: super::super::teams::Loss::NONE,
            jitter: Duration::from_millis(1),
        };
        assert_eq!(teams_score(q.mos()), 100);
    }

    proptest! {
        #[test]
        fn worse_never_scores_higher(a in 0u64..500_000, b in 0u64..500_000, c in 0.0f32..5.0, d in 0.0f32..5.0) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(exchange_score(Duration::from_micros(lo)) >= exchange_score(Duration::from_micros(hi)));
            prop_assert!(sharepoint_score(lo * 50) <= sharepoint_score(hi * 50));
            prop_assert!(teams_score(c.min(d)) <= teams_score(c.max(d)));
            prop_assert!(exchange_score(Duration::from_micros(a)) <= 100);
        }
    }
}
