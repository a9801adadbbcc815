//! Which probe runs when: per-job intervals, spread over a fleet by seeded offsets and jitter, with at
//! most K probes in flight.
//!
//! Sans-IO like the probes: the shell passes `now`, asks [`Schedule::poll_due`] for a job to start,
//! reports [`Schedule::finished`], and sleeps until [`Schedule::poll_timeout`]. Nothing here reads a
//! clock or the OS's randomness, so a schedule is a pure function of its seed and its inputs.
//!
//! Timing rules, and why:
//! - A job's first run falls at a uniform offset within its interval after it is added. Ten thousand
//!   routers that boot together after a power cut (or load the same config) would otherwise probe
//!   Microsoft's front doors in the same second, and every one of them would measure the burst it
//!   caused.
//! - Each later run is due one interval after the previous *start*, moved by a uniform jitter of up to
//!   [`JITTER_PERCENT`] of the interval either way, so that routers seeded alike still drift apart,
//!   and a probe's own period cannot lock onto some periodic event on the path.
//! - At most K jobs are in flight. A due job that finds no free slot waits and starts as soon as one
//!   frees, oldest due first. It then runs once: periods missed while waiting (or while the shell was
//!   suspended) are not caught up in a burst, its next run is simply one interval after this start.
//! - A job whose run outlasts its interval is due again the moment it finishes, behind every job that
//!   was due before that moment.

use crate::rand::SplitMix64;
use crate::time::{Duration, Instant};
use core::fmt;

/// Later runs are due one interval after the previous start, plus or minus up to this share of the
/// interval (uniformly): 10 % keeps a 5-minute probe within 30 s of its nominal time, which no
/// dashboard notices, while letting a fleet that started together spread out within a few runs.
pub const JITTER_PERCENT: u64 = 10;

/// Names a job in one [`Schedule`]; stale once the job is removed (the slot's generation moves on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId {
    slot: u16,
    generation: u16,
}

/// Why the schedule refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// All `N` job slots are taken.
    Full,
    /// An interval of zero would make the job due continuously.
    ZeroInterval,
    /// The id names no job (never added, or removed since).
    UnknownJob,
    /// `finished` for a job that was not started.
    NotInFlight,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "schedule is full",
            Self::ZeroInterval => "probe interval must not be zero",
            Self::UnknownJob => "no such scheduled job",
            Self::NotInFlight => "job is not in flight",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// A job the schedule did not take, handed back with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected<J> {
    /// The job, as it was passed in.
    pub job: J,
    /// Why it was refused.
    pub error: Error,
}

#[derive(Debug, Clone)]
struct Entry<J> {
    job: J,
    interval: Duration,
    /// When the job is next due; while it is in flight, when its next run will be.
    due: Instant,
    in_flight: bool,
}

/// Up to `N` jobs of type `J` (the shell's description of a probe and its target), each with its own
/// interval, at most `max_in_flight` of them running at once.
#[derive(Debug, Clone)]
pub struct Schedule<J, const N: usize> {
    entries: [Option<Entry<J>>; N],
    generations: [u16; N],
    rng: SplitMix64,
    max_in_flight: usize,
    in_flight: usize,
}

impl<J, const N: usize> Schedule<J, N> {
    /// An empty schedule. `seed` fixes every offset and jitter it will draw (give each device its own);
    /// `max_in_flight` is K, at least 1 (0 is taken as 1: a schedule that can start nothing is no use).
    pub fn new(seed: u64, max_in_flight: usize) -> Self {
        const { assert!(N <= u16::MAX as usize, "job slots are numbered with u16") };
        Self {
            entries: core::array::from_fn(|_| None),
            generations: [0; N],
            rng: SplitMix64::new(seed),
            max_in_flight: max_in_flight.max(1),
            in_flight: 0,
        }
    }

    /// Adds a job that runs every `interval`, first at a seeded uniform offset in `[now, now + interval)`.
    /// A full schedule or a zero interval hands the job back.
    pub fn add(&mut self, job: J, interval: Duration, now: Instant) -> Result<JobId, Rejected<J>> {
        if interval.as_ticks() == 0 {
            return Err(Rejected {
                job,
                error: Error::ZeroInterval,
            });
        }
        let Some(slot) = self.entries.iter().position(Option::is_none) else {
            return Err(Rejected {
                job,
                error: Error::Full,
            });
        };
        let offset = self.rng.below(interval.as_ticks());
        self.entries[slot] = Some(Entry {
            job,
            interval,
            due: now.saturating_add(Duration::from_ticks(offset)),
            in_flight: false,
        });
        Ok(JobId {
            slot: slot as u16,
            generation: self.generations[slot],
        })
    }

    /// Removes a job and hands it back. A job removed while in flight frees its slot at once; its
    /// later `finished` is refused as [`Error::UnknownJob`].
    pub fn remove(&mut self, id: JobId) -> Result<J, Error> {
        self.entry(id)?;
        let slot = usize::from(id.slot);
        let entry = self.entries[slot].take().ok_or(Error::UnknownJob)?;
        if entry.in_flight {
            self.in_flight -= 1;
        }
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        Ok(entry.job)
    }

    /// Changes a job's interval. The next run comes no later than a fresh seeded offset within the new
    /// interval from `now`: shortening takes effect at once, lengthening after the run already due.
    pub fn set_interval(
        &mut self,
        id: JobId,
        interval: Duration,
        now: Instant,
    ) -> Result<(), Error> {
        if interval.as_ticks() == 0 {
            return Err(Error::ZeroInterval);
        }
        self.entry(id)?;
        let offset = self.rng.below(interval.as_ticks());
        let entry = self.entry_mut(id)?;
        entry.interval = interval;
        entry.due = entry
            .due
            .min(now.saturating_add(Duration::from_ticks(offset)));
        Ok(())
    }

    /// A job to start now, if one is due and fewer than K are in flight: the one due longest ago
    /// (ties: the one added to the lower slot). It is marked in flight until [`finished`](Self::finished).
    pub fn poll_due(&mut self, now: Instant) -> Option<JobId> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let (slot, _) = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                e.as_ref()
                    .filter(|e| !e.in_flight && e.due <= now)
                    .map(|e| (i, e.due))
            })
            .min_by_key(|&(i, due)| (due, i))?;
        let interval = self.entries[slot].as_ref()?.interval.as_ticks();
        let next = self.rng.jittered(interval, JITTER_PERCENT);
        let entry = self.entries[slot].as_mut()?;
        entry.in_flight = true;
        entry.due = now.saturating_add(Duration::from_ticks(next));
        self.in_flight += 1;
        Some(JobId {
            slot: slot as u16,
            generation: self.generations[slot],
        })
    }

    /// The run of `id` that [`poll_due`](Self::poll_due) started has ended (whatever its outcome),
    /// freeing its slot.
    pub fn finished(&mut self, id: JobId, now: Instant) -> Result<(), Error> {
        let entry = self.entry_mut(id)?;
        if !entry.in_flight {
            return Err(Error::NotInFlight);
        }
        entry.in_flight = false;
        // An overrun leaves `due` in the past: queue the job as due from now, behind the ones that
        // have been waiting longer, rather than ahead of them.
        entry.due = entry.due.max(now);
        self.in_flight -= 1;
        Ok(())
    }

    /// When to call [`poll_due`](Self::poll_due) next: the earliest due instant of a job not in flight
    /// (possibly already past). `None` when all K slots are busy, since only a
    /// [`finished`](Self::finished) can change that, or when no job waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        self.entries
            .iter()
            .flatten()
            .filter(|e| !e.in_flight)
            .map(|e| e.due)
            .min()
    }

    /// The job's description.
    pub fn job(&self, id: JobId) -> Option<&J> {
        self.entry(id).ok().map(|e| &e.job)
    }

    /// When the job is next due (for a job in flight: when its next run will be due).
    pub fn due(&self, id: JobId) -> Option<Instant> {
        self.entry(id).ok().map(|e| e.due)
    }

    /// The job's interval.
    pub fn interval(&self, id: JobId) -> Option<Duration> {
        self.entry(id).ok().map(|e| e.interval)
    }

    /// Whether the job has been started and not finished.
    pub fn is_in_flight(&self, id: JobId) -> bool {
        self.entry(id).is_ok_and(|e| e.in_flight)
    }

    /// Every job with its id, in slot order.
    pub fn jobs(&self) -> impl Iterator<Item = (JobId, &J)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            let id = JobId {
                slot: i as u16,
                generation: self.generations[i],
            };
            e.as_ref().map(|e| (id, &e.job))
        })
    }

    /// Jobs in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// K: how many jobs may be in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Number of jobs.
    pub fn len(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    /// Whether there are no jobs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, id: JobId) -> Result<&Entry<J>, Error> {
        let slot = usize::from(id.slot);
        match (self.entries.get(slot), self.generations.get(slot)) {
            (Some(Some(e)), Some(&g)) if g == id.generation => Ok(e),
            _ => Err(Error::UnknownJob),
        }
    }

    fn entry_mut(&mut self, id: JobId) -> Result<&mut Entry<J>, Error> {
        let slot = usize::from(id.slot);
        match (self.entries.get_mut(slot), self.generations.get(slot)) {
            (Some(Some(e)), Some(&g)) if g == id.generation => Ok(e),
            _ => Err(Error::UnknownJob),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn at(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    fn jitter(interval: Duration) -> u64 {
        interval.as_ticks() * JITTER_PERCENT / 100
    }

    #[test]
    fn full_schedule_and_zero_interval_hand_the_job_back() {
        let mut s: Schedule<&str, 2> = Schedule::new(1, 1);
        s.add("dns", ms(1000), at(0)).unwrap();
        s.add("tcp", ms(1000), at(0)).unwrap();
        assert_eq!(
            s.add("tls", ms(1000), at(0)),
            Err(Rejected {
                job: "tls",
                error: Error::Full
            })
        );
        let mut s: Schedule<&str, 2> = Schedule::new(1, 1);
        assert_eq!(
            s.add("dns", ms(0), at(0)),
            Err(Rejected {
                job: "dns",
                error: Error::ZeroInterval
            })
        );
        assert!(s.is_empty());
    }

    #[test]
    fn removed_ids_go_stale_and_their_slot_is_reused() {
        let mut s: Schedule<u8, 1> = Schedule::new(1, 1);
        let a = s.add(1, ms(1000), at(0)).unwrap();
        assert_eq!(s.remove(a), Ok(1));
        assert_eq!(s.remove(a), Err(Error::UnknownJob));
        let b = s.add(2, ms(1000), at(0)).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.job(a), None);
        assert_eq!(s.job(b), Some(&2));
        assert_eq!(s.finished(a, at(0)), Err(Error::UnknownJob));
    }

    #[test]
    fn first_run_waits_for_its_offset_then_starts_once() {
        let mut s: Schedule<(), 1> = Schedule::new(5, 1);
        let id = s.add((), ms(60_000), at(1_000)).unwrap();
        let due = s.poll_timeout().unwrap();
        assert!(due >= at(1_000) && due < at(61_000), "{due:?}");
        assert_eq!(s.due(id), Some(due));
        if due > at(1_000) {
            assert_eq!(s.poll_due(due - Duration::from_ticks(1)), None);
        }
        assert_eq!(s.poll_due(due), Some(id));
        assert!(s.is_in_flight(id));
        assert_eq!(
            s.poll_due(due),
            None,
            "a job in flight is not started twice"
        );
        assert_eq!(s.finished(id, due), Ok(()));
        assert_eq!(s.finished(id, due), Err(Error::NotInFlight));
    }

    #[test]
    fn all_slots_busy_means_no_timeout_and_a_finish_lets_the_oldest_due_run() {
        let mut s: Schedule<u8, 3> = Schedule::new(9, 1);
        let ids: Vec<JobId> = (0..3)
            .map(|j| s.add(j, ms(1_000), at(0)).unwrap())
            .collect();
        let now = at(5_000); // everything is overdue
        let first = s.poll_due(now).unwrap();
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.poll_due(now), None);
        let mut rest: Vec<JobId> = ids.iter().copied().filter(|&i| i != first).collect();
        rest.sort_by_key(|&i| s.due(i).unwrap());
        assert!(s.due(first).unwrap() > now);
        s.finished(first, at(5_100)).unwrap();
        assert_eq!(s.poll_timeout(), s.due(rest[0]));
        assert_eq!(s.poll_due(at(5_100)), Some(rest[0]));
    }

    #[test]
    fn missed_periods_are_not_caught_up_in_a_burst() {
        let mut s: Schedule<(), 1> = Schedule::new(3, 1);
        let id = s.add((), ms(1_000), at(0)).unwrap();
        // The shell was suspended for 100 intervals.
        let late = at(100_000);
        assert_eq!(s.poll_due(late), Some(id));
        s.finished(id, late + ms(10)).unwrap();
        assert_eq!(s.poll_due(late + ms(10)), None);
        let next = s.poll_timeout().unwrap();
        let gap = (next - late).as_ticks();
        let i = ms(1_000);
        assert!(
            gap >= i.as_ticks() - jitter(i) && gap <= i.as_ticks() + jitter(i),
            "{gap}"
        );
    }

    #[test]
    fn an_overrun_is_due_at_its_finish_behind_jobs_waiting_longer() {
        let mut s: Schedule<u8, 2> = Schedule::new(11, 1);
        let a = s.add(0, ms(1_000), at(0)).unwrap();
        let b = s.add(1, ms(100_000), at(0)).unwrap();
        let t = at(200_000); // both overdue
        let first = s.poll_due(t).unwrap();
        let (ran, waiting) = if first == a { (a, b) } else { (b, a) };
        let finish = t + ms(500_000); // far past the next due of either
        s.finished(ran, finish).unwrap();
        assert_eq!(s.due(ran), Some(finish));
        assert!(s.due(waiting).unwrap() < finish);
        assert_eq!(s.poll_due(finish), Some(waiting));
    }

    #[test]
    fn shortening_the_interval_takes_effect_now_and_lengthening_after_the_next_run() {
        let mut s: Schedule<(), 1> = Schedule::new(21, 1);
        let id = s.add((), ms(3_600_000), at(0)).unwrap();
        let hour_due = s.due(id).unwrap();
        s.set_interval(id, ms(10_000), at(1_000)).unwrap();
        assert!(s.due(id).unwrap() < at(11_000));
        let short_due = s.due(id).unwrap();
        s.set_interval(id, ms(86_400_000), at(2_000)).unwrap();
        assert_eq!(s.due(id), Some(short_due.min(hour_due)));
        assert_eq!(s.interval(id), Some(ms(86_400_000)));
        assert_eq!(s.set_interval(id, ms(0), at(0)), Err(Error::ZeroInterval));
    }

    #[test]
    fn removing_a_job_in_flight_frees_its_slot() {
        let mut s: Schedule<u8, 2> = Schedule::new(2, 1);
        let a = s.add(0, ms(10), at(0)).unwrap();
        let b = s.add(1, ms(10), at(0)).unwrap();
        let first = s.poll_due(at(100)).unwrap();
        assert_eq!(s.poll_due(at(100)), None);
        s.remove(first).unwrap();
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.poll_due(at(100)), Some(if first == a { b } else { a }));
    }

    /// What a simulated shell saw: every start as (job index, due, start), in ticks.
    #[derive(Debug, PartialEq)]
    struct Trace {
        starts: Vec<(usize, u64, u64)>,
        max_seen_in_flight: usize,
    }

    /// Drives a schedule like a shell does: sleep to the earliest of the schedule's timeout and the
    /// next probe to finish, report finishes, start everything `poll_due` offers. Probe run times come
    /// from their own seeded stream, uniform in `1..=max_run` ticks.
    fn simulate(
        seed: u64,
        k: usize,
        intervals: &[Duration],
        run_seed: u64,
        max_run: Duration,
        horizon: Duration,
    ) -> Trace {
        let mut s: Schedule<usize, 8> = Schedule::new(seed, k);
        let mut runs = SplitMix64::new(run_seed);
        let start = Instant::from_ticks(0);
        let ids: Vec<JobId> = intervals
            .iter()
            .enumerate()
            .map(|(j, &i)| s.add(j, i, start).unwrap())
            .collect();
        let mut running: Vec<(JobId, Instant)> = Vec::new();
        let mut trace = Trace {
            starts: Vec::new(),
            max_seen_in_flight: 0,
        };
        let mut now = start;
        loop {
            running.retain(|&(id, end)| {
                if end <= now {
                    s.finished(id, now).unwrap();
                }
                end > now
            });
            loop {
                let dues: Vec<Instant> = ids.iter().map(|&id| s.due(id).unwrap()).collect();
                let Some(id) = s.poll_due(now) else { break };
                let job = *s.job(id).unwrap();
                trace
                    .starts
                    .push((job, dues[job].as_ticks(), now.as_ticks()));
                running.push((
                    id,
                    now + Duration::from_ticks(1 + runs.below(max_run.as_ticks())),
                ));
            }
            assert_eq!(s.in_flight(), running.len());
            trace.max_seen_in_flight = trace.max_seen_in_flight.max(running.len());
            let next_finish = running.iter().map(|&(_, end)| end).min();
            let next = match (next_finish, s.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("some job is always waiting or running"),
            };
            assert!(next > now, "nothing startable may be left due");
            if next - start > horizon {
                return trace;
            }
            now = next;
        }
    }

    fn durations(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| ms(m)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever the seed, intervals, K and probe run times: never more than K in flight, every job
        /// runs, and no due job waits longer than it takes the jobs ahead of it to get through K slots
        /// (at most N jobs are ahead, and each slot finishes a run within the longest run time).
        #[test]
        fn k_bounds_flight_and_nobody_starves(
            seed: u64,
            run_seed: u64,
            k in 1usize..=4,
            intervals in proptest::collection::vec(100u64..20_000, 1..=8),
            max_run_ms in 1u64..5_000,
        ) {
            let horizon = ms(200_000);
            let max_run = ms(max_run_ms);
            let t = simulate(seed, k, &durations(&intervals), run_seed, max_run, horizon);
            prop_assert!(t.max_seen_in_flight <= k);
            let n = intervals.len() as u64;
            let bound = n.div_ceil(k as u64) * max_run.as_ticks();
            for &(job, due, start) in &t.starts {
                prop_assert!(start >= due);
                prop_assert!(start - due <= bound, "job {} waited {} ticks > {}", job, start - due, bound);
            }
            for (j, &i) in durations(&intervals).iter().enumerate() {
                let count = t.starts.iter().filter(|s| s.0 == j).count() as u64;
                // A cycle takes at most the interval and its jitter, the run, and the wait.
                let cycle = i.as_ticks() + jitter(i) + max_run.as_ticks() + bound;
                let want = (horizon.as_ticks() / cycle).saturating_sub(1).max(1);
                prop_assert!(count >= want, "job {} ran {} times, want {}", j, count, want);
            }
        }

        /// With a free slot for every job and runs shorter than the shortest gap, each job first runs
        /// within its interval and then every interval ± jitter.
        #[test]
        fn free_slots_give_interval_spacing_within_jitter(
            seed: u64,
            run_seed: u64,
            intervals in proptest::collection::vec(100u64..20_000, 1..=8),
        ) {
            let intervals = durations(&intervals);
            let shortest = intervals.iter().map(|i| i.as_ticks() - jitter(*i)).min().unwrap();
            let max_run = Duration::from_ticks(shortest - 1);
            let t = simulate(seed, intervals.len(), &intervals, run_seed, max_run, ms(100_000));
            for (j, &i) in intervals.iter().enumerate() {
                let starts: Vec<u64> = t.starts.iter().filter(|s| s.0 == j).map(|s| s.2).collect();
                prop_assert!(starts[0] < i.as_ticks(), "first run of job {} at {}", j, starts[0]);
                let (lo, hi) = (i.as_ticks() - jitter(i), i.as_ticks() + jitter(i));
                for w in starts.windows(2) {
                    let gap = w[1] - w[0];
                    prop_assert!(gap >= lo && gap <= hi, "job {} gap {} ticks, want {}..={}", j, gap, lo, hi);
                }
            }
        }

        /// Same seed, same inputs: the same starts at the same times.
        #[test]
        fn same_seed_same_sequence(
            seed: u64,
            run_seed: u64,
            k in 1usize..=4,
            intervals in proptest::collection::vec(100u64..20_000, 1..=8),
        ) {
            let intervals = durations(&intervals);
            let a = simulate(seed, k, &intervals, run_seed, ms(3_000), ms(60_000));
            let b = simulate(seed, k, &intervals, run_seed, ms(3_000), ms(60_000));
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn different_seeds_give_different_sequences() {
        let intervals = durations(&[1_000, 5_000, 7_000]);
        let a = simulate(1, 2, &intervals, 0, ms(500), ms(60_000));
        let b = simulate(2, 2, &intervals, 0, ms(500), ms(60_000));
        assert_ne!(a.starts, b.starts);
    }

    /// 10,000 routers (seeds 0..10,000: consecutive seeds are the hard case for a weak mixer) add the
    /// same job at the same instant. Their first runs must spread uniformly over the interval: a
    /// Pearson chi-square test over 20 equal bins, each expecting 500, must stay below 43.82, the
    /// critical value of chi-square with 19 degrees of freedom at significance 0.001. A generator
    /// that clustered (say, offsets from the low bits of the seed, or all at zero) exceeds it by
    /// orders of magnitude.
    #[test]
    fn first_runs_of_a_fleet_spread_uniformly_over_the_interval() {
        const ROUTERS: u64 = 10_000;
        const BINS: usize = 20;
        const CRITICAL_19_DOF_P001: f64 = 43.82;
        for interval in [ms(7_919), ms(60_000), ms(300_000), ms(3_600_000)] {
            let mut bins = [0u32; BINS];
            for seed in 0..ROUTERS {
                let mut s: Schedule<(), 1> = Schedule::new(seed, 1);
                let id = s.add((), interval, at(0)).unwrap();
                let offset = s.due(id).unwrap().as_ticks();
                assert!(offset < interval.as_ticks());
                bins[(offset * BINS as u64 / interval.as_ticks()) as usize] += 1;
            }
            let expected = ROUTERS as f64 / BINS as f64;
            let chi2: f64 = bins
                .iter()
                .map(|&o| (o as f64 - expected).powi(2) / expected)
                .sum();
            println!(
                "first-run spread, interval {} ms: chi-square {chi2:.2} (19 dof)",
                interval.as_millis()
            );
            assert!(
                chi2 < CRITICAL_19_DOF_P001,
                "interval {interval:?}: chi-square {chi2}, bins {bins:?}"
            );
        }
    }
}
