//! Deterministic randomness from a seed the shell supplies: schedule offsets and jitter, transaction ids.
//!
//! The core has no entropy source of its own, and must not: with the same seed every run of a device
//! (and every test) draws the same numbers, so a schedule or a probe can be replayed exactly. The shell
//! seeds from the OS (`getrandom` on Linux) or from the hardware RNG on a microcontroller.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014; the reference C is Vigna's `splitmix64.c`): a 64-bit state advanced by the
//! golden-ratio increment and passed through a 64-bit finaliser. It is tiny, has no bad seeds (every
//! seed, including 0, gives a full-period stream of 2^64 outputs) and passes BigCrush; nearby seeds
//! (agent 1, agent 2, ...) give unrelated streams. It is not cryptographic: nothing here needs secrecy,
//! only spread, and a DNS transaction id is a spoofing defence only together with the source port.

/// SplitMix64: a 64-bit deterministic pseudorandom generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

/// The golden-ratio increment of SplitMix64 (2^64 / phi, made odd).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    /// A generator whose stream is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next 16 random bits, e.g. a DNS transaction id.
    pub fn next_u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    /// A uniform integer in `0..bound`, without modulo bias; `0` when `bound` is 0.
    ///
    /// Lemire's multiply-and-reject ("Fast random integer generation in an interval", ACM TOMACS
    /// 2019): the high half of `x * bound` is uniform once the few low halves below
    /// `2^64 mod bound` are redrawn.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(bound);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// `nominal` moved by a uniform amount of up to `percent` % of it either way (at most 100 %), in
    /// `nominal`'s unit: how the schedule and the report queue keep devices seeded alike from acting in
    /// step. One draw of [`below`](Self::below).
    pub(crate) fn jittered(&mut self, nominal: u64, percent: u64) -> u64 {
        let spread = (u128::from(nominal) * u128::from(percent.min(100)) / 100) as u64;
        let drawn = self.below(spread.saturating_mul(2).saturating_add(1));
        (nominal - spread).saturating_add(drawn)
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `buf` with random bytes, e.g. a STUN transaction id.
    pub fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A new generator for a component of its own (one per probe, say), seeded from this one, so
    /// that how often one component draws does not shift what another draws.
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published SplitMix64 outputs for seed 1234567 (Rosetta Code, "Pseudo-random
    /// numbers/Splitmix64", which follows Vigna's splitmix64.c) and the first outputs for seed 0
    /// that other ports of splitmix64.c test against.
    #[test]
    fn matches_the_reference_vectors() {
        let mut r = SplitMix64::new(1234567);
        for want in [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ] {
            assert_eq!(r.next_u64(), want);
        }
        let mut r = SplitMix64::new(0);
        for want in [0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f] {
            assert_eq!(r.next_u64(), want);
        }
    }

    /// Rosetta Code's second check: 100,000 floats from seed 987654321, counted by
    /// `floor(x * 5)`, fall 20027, 19892, 20073, 19978, 20030 into the five buckets.
    #[test]
    fn floats_match_the_reference_bucket_counts() {
        let mut r = SplitMix64::new(987654321);
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            counts[(r.next_f64() * 5.0) as usize] += 1;
        }
        assert_eq!(counts, [20027, 19892, 20073, 19978, 20030]);
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut r = SplitMix64::new(7);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
        let (mut lo, mut hi) = (false, false);
        for _ in 0..1000 {
            let v = r.below(10);
            assert!(v < 10);
            lo |= v == 0;
            hi |= v == 9;
        }
        assert!(lo && hi);
        // A bound just above 2^63 rejects almost half the draws: it must still terminate and stay
        // in range.
        let big = (1u64 << 63) + 12345;
        for _ in 0..100 {
            assert!(r.below(big) < big);
        }
    }

    #[test]
    fn jittered_stays_within_its_spread_and_reaches_both_ends() {
        let mut r = SplitMix64::new(3);
        let draws: std::vec::Vec<u64> = (0..2000).map(|_| r.jittered(1000, 20)).collect();
        assert!(draws.iter().all(|d| (800..=1200).contains(d)));
        assert!(draws.contains(&800) && draws.contains(&1200));
        assert_eq!(r.jittered(1000, 0), 1000);
        // The extremes neither overflow nor panic.
        let _ = r.jittered(u64::MAX, 100);
    }

    #[test]
    fn fill_bytes_covers_odd_lengths_from_the_stream() {
        let mut a = SplitMix64::new(42);
        let mut b = a.clone();
        let mut buf = [0u8; 12];
        a.fill_bytes(&mut buf);
        let first = b.next_u64().to_le_bytes();
        let second = b.next_u64().to_le_bytes();
        assert_eq!(&buf[..8], &first);
        assert_eq!(&buf[8..], &second[..4]);
    }

    #[test]
    fn forks_are_independent_of_the_parent_draw_count() {
        let mut parent = SplitMix64::new(99);
        let mut child = parent.fork();
        let c1 = child.next_u64();
        let p1 = parent.next_u64();
        assert_ne!(c1, p1);
        let mut again = SplitMix64::new(99).fork();
        assert_eq!(again.next_u64(), c1);
    }
}
