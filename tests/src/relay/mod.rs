//! The lab's WAN relay: forwards Ethernet frames between two TAP devices in two network namespaces and
//! applies delay, jitter, loss, reordering, duplication and rate limits per destination prefix and
//! direction (this kernel has no netem). Its log is the ground truth for the fidelity tests.
//!
//! # Topology
//!
//! Side A is the office, side B the internet. The relay creates a TAP device on each side inside that
//! side's namespace (`Endpoint::netns`, a name under /var/run/netns), sets its MTU and **brings the
//! link up**; addresses and routes are the caller's. The two TAPs behave like the two ends of one
//! Ethernet cable: frames are forwarded unchanged, MAC addresses included, so ARP and neighbour
//! discovery work across the relay as on a wire. The devices disappear when the relay stops.
//!
//! # Impairments
//!
//! Each IP frame is matched against the rules in order: the first rule whose direction covers the
//! frame's and whose prefix contains the packet's destination address applies. Frames matching no
//! rule, non-IP frames, ARP and IPv6 neighbour/router discovery (ICMPv6 133-137) pass at once and
//! unimpaired, so even a catch-all 100 % loss rule leaves address resolution working. A rule applies,
//! in this order, to frames of one direction:
//!
//! 1. loss: Bernoulli, or Gilbert-Elliott with per-rule state (`p` good→bad, `r` bad→good);
//! 2. rate limit: a FIFO of `queue_bytes` drained at `kbit_per_s` (frame bytes); a frame that does
//!    not fit is dropped (`queue_full`); otherwise it leaves the bottleneck when fully serialised;
//! 3. delay plus jitter (uniform ±ms or normal with σ = ms, floored at zero);
//! 4. ordering: a frame is never due before a frame of the same rule and direction that arrived
//!    earlier, unless reorder picks it (probability `p`), in which case it is held `extra_delay_ms`
//!    longer and later frames overtake it;
//! 5. duplication: with probability `duplicate` a second copy leaves right after the original.
//!
//! Every random draw comes from a per-direction xoshiro256++ stream seeded by `seed`, so the same
//! traffic meets the same fate on every run.
//!
//! # Timing
//!
//! Per direction, a reader thread timestamps each frame with CLOCK_MONOTONIC as it leaves the ingress
//! TAP, and a sender thread releases frames from a due-time heap: it sleeps until 100 µs before the
//! earliest due time and spins to it. All of them ask for SCHED_FIFO (granted to root; see
//! [`RelayHandle::realtime`]), so other work on a busy machine cannot delay a due frame by a time
//! slice. On a machine with two CPUs or more, each role has a twin pinned to the other CPU: a second
//! reader, and a backup sender that sends whatever is still waiting 100 µs after its due time. A
//! virtual CPU descheduled by its host for milliseconds then no longer holds frames back. Either
//! sender sends only the head of the heap, and taking it off and writing it are one critical section
//! per direction, so frames leave strictly in the order scheduled (due time, then arrival) whichever
//! thread sends them; only the one frame being written can wait for a stalled CPU. Frames due at the
//! same instant leave one after the other, each write taking the tens of microseconds the receiving
//! stack needs. The log records, per frame, how late the send was.
//!
//! # Log
//!
//! JSON Lines, one [`LogRecord`] per event: `forwarded` (every sent original), `duplicated` (each extra
//! copy) or `dropped` with a `reason` (`loss`, `queue_full`, `stopped`, `send_failed`). Lines are
//! written by their own thread through a buffer, flushed when the relay is idle for 200 ms and at stop;
//! a line is written when its event completes, so [`read_log`] sorts them back into arrival order:
//!
//! ```text
//! {"arrival_ns":5123456789,"dir":"a_to_b","seq":17,"rule":0,"ethertype":2048,"src":"198.51.100.1",
//!  "dst":"203.0.113.10","proto":17,"sport":40000,"dport":3478,"len":74,"event":"forwarded",
//!  "reason":null,"reordered":false,"delay_ns":20000000,"sent_ns":5143461012,"late_ns":4223}
//! ```
//! (one line in the file). Times are CLOCK_MONOTONIC nanoseconds, comparable with timestamps taken in
//! any namespace; `delay_ns` is the scheduled delay, `sent_ns - arrival_ns` the applied one.
//!
//! # Configuration
//!
//! ```toml
//! seed = 7
//! log = "/run/o365lab/relay-lhr.jsonl"
//! side_a = { netns = "office-lhr", ifname = "wan0" }      # mtu defaults to 1500
//! side_b = { netns = "internet", ifname = "lhr0" }
//!
//! [[rules]]                        # direction defaults to "both"
//! prefix = "203.0.113.0/24"
//! delay_ms = 12.5
//!
//! [[rules]]
//! direction = "a_to_b"             # or "b_to_a"
//! prefix = "2001:db8:2::/48"
//! delay_ms = 40
//! jitter = { dist = "normal", ms = 3 }                     # or "uniform"
//! loss = { model = "gilbert_elliott", p = 0.01, r = 0.25 } # loss_good = 0, loss_bad = 1
//! # loss = { model = "bernoulli", p = 0.03 }
//! reorder = { p = 0.01, extra_delay_ms = 5 }
//! duplicate = 0.001
//! rate = { kbit_per_s = 10000, queue_bytes = 64000 }
//! ```
//!
//! The binary `o365lab-relay CONFIG.toml` runs the relay until SIGTERM or SIGINT and prints `ready` on
//! stdout once both TAP devices exist and are up.

mod config;
mod frame;
mod impair;
mod log;
mod sys;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub use config::{
    Direction, Endpoint, Jitter, JitterDist, Loss, RateLimit, RelayConfig, Reorder, Rule,
};
pub use log::{read_log, DropReason, FrameEvent, LogRecord};
pub use sys::{in_netns, monotonic_ns};

use frame::FrameMeta;
use impair::{Decision, Impairment};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("relay configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("relay {0} thread failed: {1}")]
    Thread(&'static str, String),
}

/// The WAN relay; [`Relay::start`] runs one.
pub enum Relay {}

/// Sleep until this long before a frame is due, then spin: a real-time thread's wake-up is typically
/// 40-60 µs late on the virtual machines the lab runs on, a spin is not. Longer without real-time
/// priority, where wake-ups straggle more. Short enough that spinning costs a few percent of a CPU
/// at a thousand frames a second.
const SPIN_NS_REALTIME: u64 = 100_000;
const SPIN_NS_ORDINARY: u64 = 400_000;
/// A backup sender on another CPU sends what is still waiting this long after its due time: a
/// virtual CPU can be descheduled by its host for milliseconds, taking the primary sender with it.
const BACKUP_GRACE_NS: u64 = 100_000;
/// Readers outrank senders so that a sender spinning towards a due time never delays the arrival
/// timestamp of the next frame.
const READER_PRIORITY: i32 = 60;
const SENDER_PRIORITY: i32 = 50;
/// Log records in flight to the writer thread. When the disk falls this far behind, forwarding
/// waits rather than losing ground truth.
const LOG_BACKLOG: usize = 1 << 16;
/// Frames waiting for their due time, per direction; beyond it arrivals are dropped (`queue_full`)
/// so a flood cannot exhaust memory.
const PENDING_CAPACITY: usize = 1 << 18;
/// How often a blocked reader looks at the stop flag.
const STOP_POLL_MS: i32 = 50;

impl Relay {
    /// Creates both TAP devices (up, with their MTU) and starts forwarding. Returns once the devices
    /// exist, so the caller can configure addresses immediately.
    pub fn start(config: RelayConfig) -> Result<RelayHandle, RelayError> {
        config.validate()?;
        let impair_ab = Impairment::new(&config.rules, Direction::AtoB, config.seed)?;
        let impair_ba = Impairment::new(&config.rules, Direction::BtoA, config.seed)?;
        let (log_tx, log_thread) = match &config.log {
            Some(path) => {
                let (tx, rx) = sync_channel(LOG_BACKLOG);
                (Some(tx), Some(log::write_log(path.clone(), rx)?))
            }
            None => (None, None),
        };
        let tap = |side: &Endpoint| {
            sys::open_tap(side).map_err(|source| RelayError::Io {
                what: format!("creating TAP {} in {:?}", side.ifname, side.netns),
                source,
            })
        };
        let tap_a = Arc::new(tap(&config.side_a)?);
        let tap_b = Arc::new(tap(&config.side_b)?);

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            realtime: AtomicBool::new(true),
            failure: Mutex::new(None),
        });
        let buffer = usize::from(config.side_a.mtu.max(config.side_b.mtu)) + 64;
        // With two CPUs, every role has a thread on each, so one stalled CPU holds nothing back.
        let cpus = sys::allowed_cpus();
        let placement: Vec<Option<usize>> = match cpus.as_slice() {
            [first, second, ..] => vec![Some(*first), Some(*second)],
            _ => vec![None],
        };
        let mut handle = RelayHandle {
            shared: shared.clone(),
            lanes: Vec::new(),
            threads: Vec::new(),
            log_thread,
            stopped: false,
        };
        for (k, (way, impairment, ingress, egress)) in [
            (Direction::AtoB, impair_ab, tap_a.clone(), tap_b.clone()),
            (Direction::BtoA, impair_ba, tap_b, tap_a),
        ]
        .into_iter()
        .enumerate()
        {
            let lane = Arc::new(Lane {
                way,
                ingress,
                egress,
                reading: Mutex::new(Reading {
                    impairment,
                    seq: 0,
                    order: 0,
                    buf: vec![0; buffer],
                }),
                pending: Mutex::new(BinaryHeap::new()),
                wake: Condvar::new(),
                pushes: AtomicU64::new(0),
                sending: Mutex::new(()),
                lateness: Lateness::default(),
                counters: Counters::default(),
                log: log_tx.clone(),
            });
            // The two directions put their primary sender on different CPUs.
            for (i, cpu) in placement.iter().enumerate() {
                let primary = (i + k) % placement.len() == 0;
                let (lane_r, shared_r) = (lane.clone(), shared.clone());
                let cpu = *cpu;
                handle.threads.push(spawn(way, "reader", move || {
                    read_frames(&lane_r, &shared_r, cpu)
                }));
                let (lane_s, shared_s) = (lane.clone(), shared.clone());
                let role = if primary { "sender" } else { "backup" };
                handle.threads.push(spawn(way, role, move || {
                    send_frames(&lane_s, &shared_s, cpu, primary)
                }));
            }
            handle.lanes.push(lane);
        }
        Ok(handle)
    }
}

fn spawn(way: Direction, role: &str, work: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    let short = if way == Direction::AtoB { "ab" } else { "ba" };
    std::thread::Builder::new()
        .name(format!("relay-{short}-{role}"))
        .spawn(work)
        .expect("spawning a relay thread")
}

/// A running relay. Stops (and removes its TAP devices) on [`RelayHandle::stop`] or when dropped.
pub struct RelayHandle {
    shared: Arc<Shared>,
    lanes: Vec<Arc<Lane>>,
    threads: Vec<JoinHandle<()>>,
    log_thread: Option<JoinHandle<Result<(), RelayError>>>,
    stopped: bool,
}

struct Shared {
    stop: AtomicBool,
    /// Cleared when any relay thread was refused real-time priority.
    realtime: AtomicBool,
    failure: Mutex<Option<RelayError>>,
}

impl Shared {
    fn fail(&self, error: RelayError) {
        let mut failure = lock(&self.failure);
        failure.get_or_insert(error);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Counts of one direction, and how late its frames were sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WayStats {
    /// Frames read from the ingress TAP.
    pub received: u64,
    /// Originals sent to the egress TAP.
    pub forwarded: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    pub lost: u64,
    pub queue_full: u64,
    /// Discarded at stop while waiting, or refused by the egress TAP.
    pub unsent: u64,
    /// Lateness (sent - due) of the frames sent, to the microsecond (the maximum exact).
    pub late_p50_ns: u64,
    pub late_p99_ns: u64,
    pub late_max_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub a_to_b: WayStats,
    pub b_to_a: WayStats,
}

impl RelayHandle {
    /// Whether every relay thread runs with real-time (SCHED_FIFO) priority. Without it the
    /// scheduling error grows with the machine's load.
    pub fn realtime(&self) -> bool {
        self.shared.realtime.load(Ordering::SeqCst)
    }

    /// Counts and lateness so far.
    pub fn stats(&self) -> RelayStats {
        let mut stats = RelayStats::default();
        for lane in &self.lanes {
            let way = match lane.way {
                Direction::AtoB => &mut stats.a_to_b,
                _ => &mut stats.b_to_a,
            };
            lane.counters.fill(way);
            lane.lateness.fill(way);
        }
        stats
    }

    /// Stops forwarding, discards frames still waiting (logged as `stopped`), flushes the log and
    /// removes the TAP devices. Fails if a relay thread failed while running or the log could not
    /// be written.
    pub fn stop(mut self) -> Result<RelayStats, RelayError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<RelayStats, RelayError> {
        if self.stopped {
            return Ok(RelayStats::default());
        }
        self.stopped = true;
        self.shared.stop.store(true, Ordering::SeqCst);
        for lane in &self.lanes {
            // Under the lock, so no sender can be between its stop check and its wait.
            let _pending = lock(&lane.pending);
            lane.wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                self.shared
                    .fail(RelayError::Thread("forwarding", "panicked".into()));
            }
        }
        for lane in &self.lanes {
            let waiting = std::mem::take(&mut *lock(&lane.pending));
            for Reverse(mut item) in waiting.into_sorted_vec().into_iter().rev() {
                item.record.event = FrameEvent::Dropped;
                item.record.reason = Some(DropReason::Stopped);
                lane.counters.count(&item.record);
                lane.log(item.record);
            }
        }
        let stats = self.stats();
        // The lanes hold the last log senders and the TAP files: dropping them closes the log
        // channel and removes the devices.
        self.lanes.clear();
        let logged = match self.log_thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(RelayError::Thread("log", "panicked".into())),
            None => Ok(()),
        };
        if let Some(error) = lock(&self.shared.failure).take() {
            return Err(error);
        }
        logged.map(|()| stats)
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// One direction: its TAP devices, its readers' state, its frames waiting for their due time.
struct Lane {
    way: Direction,
    ingress: Arc<File>,
    egress: Arc<File>,
    /// Held while a reader reads, timestamps and decides, so frames are taken in order even with
    /// two readers.
    reading: Mutex<Reading>,
    pending: Mutex<BinaryHeap<Reverse<Pending>>>,
    wake: Condvar,
    /// Bumped on every push, so a spinning sender notices an earlier frame.
    pushes: AtomicU64,
    /// Held from taking the head off the heap to having written it, one frame at a time, so two
    /// senders never swap frames.
    sending: Mutex<()>,
    /// How late the frames sent were; lock-free, so reading the statistics never holds a sender.
    lateness: Lateness,
    counters: Counters,
    log: Option<SyncSender<LogRecord>>,
}

struct Reading {
    impairment: Impairment,
    /// Arrival number within the direction, as logged.
    seq: u64,
    /// Position in the heap among equal due times (a duplicate right after its original).
    order: u64,
    buf: Vec<u8>,
}

impl Lane {
    fn log(&self, record: LogRecord) {
        if let Some(log) = &self.log {
            // The writer only goes away after every sender: a send cannot fail while we run.
            let _ = log.send(record);
        }
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    duplicated: AtomicU64,
    lost: AtomicU64,
    queue_full: AtomicU64,
    unsent: AtomicU64,
}

impl Counters {
    fn fill(&self, way: &mut WayStats) {
        way.received = self.received.load(Ordering::Relaxed);
        way.forwarded = self.forwarded.load(Ordering::Relaxed);
        way.duplicated = self.duplicated.load(Ordering::Relaxed);
        way.lost = self.lost.load(Ordering::Relaxed);
        way.queue_full = self.queue_full.load(Ordering::Relaxed);
        way.unsent = self.unsent.load(Ordering::Relaxed);
    }

    fn count(&self, record: &LogRecord) {
        let counter = match (record.event, record.reason) {
            (FrameEvent::Forwarded, _) => &self.forwarded,
            (FrameEvent::Duplicated, _) => &self.duplicated,
            (FrameEvent::Dropped, Some(DropReason::Loss)) => &self.lost,
            (FrameEvent::Dropped, Some(DropReason::QueueFull)) => &self.queue_full,
            (FrameEvent::Dropped, _) => &self.unsent,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Pending {
    due_ns: u64,
    order: u64,
    frame: Vec<u8>,
    record: LogRecord,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ns, self.order) == (other.due_ns, other.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due_ns, self.order).cmp(&(other.due_ns, other.order))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking relay thread is reported at stop; the data it guarded is still consistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_frames(lane: &Lane, shared: &Shared, cpu: Option<usize>) {
    if !sys::make_thread_punctual(READER_PRIORITY, cpu) {
        shared.realtime.store(false, Ordering::SeqCst);
    }
    let way = lane.way;
    while !shared.stop.load(Ordering::Relaxed) {
        match sys::wait_readable(&lane.ingress, STOP_POLL_MS) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(source) => {
                return shared.fail(RelayError::Io {
                    what: format!("waiting on the {way:?} ingress TAP"),
                    source,
                })
            }
        }
        let mut reading = lock(&lane.reading);
        let Reading {
            impairment,
            seq,
            order,
            buf,
        } = &mut *reading;
        // Drain everything queued: each frame still gets its own arrival time.
        loop {
            let len = match (&*lane.ingress).read(buf) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return shared.fail(RelayError::Io {
                        what: format!("reading the {way:?} ingress TAP"),
                        source,
                    })
                }
            };
            let arrival_ns = monotonic_ns();
            let frame = &buf[..len];
            let meta = FrameMeta::parse(frame);
            lane.counters.received.fetch_add(1, Ordering::Relaxed);
            let mut record = LogRecord {
                arrival_ns,
                dir: way,
                seq: *seq,
                rule: None,
                ethertype: meta.ethertype,
                src: meta.src,
                dst: meta.dst,
                proto: meta.proto,
                sport: meta.sport,
                dport: meta.dport,
                len,
                event: FrameEvent::Forwarded,
                reason: None,
                reordered: false,
                delay_ns: None,
                sent_ns: None,
                late_ns: None,
            };
            *seq += 1;
            let decision = impairment.decide(arrival_ns, len, &meta);
            let mut pending = lock(&lane.pending);
            let overflow = pending.len() + 2 > PENDING_CAPACITY;
            match decision {
                Decision::Forward {
                    rule,
                    due_ns,
                    reordered,
                    duplicate,
                } if !overflow => {
                    record.rule = rule;
                    record.reordered = reordered;
                    record.delay_ns = Some(due_ns - arrival_ns);
                    if duplicate {
                        let mut copy = record.clone();
                        copy.event = FrameEvent::Duplicated;
                        pending.push(Reverse(Pending {
                            due_ns,
                            order: *order + 1,
                            frame: frame.to_vec(),
                            record: copy,
                        }));
                    }
                    pending.push(Reverse(Pending {
                        due_ns,
                        order: *order,
                        frame: frame.to_vec(),
                        record,
                    }));
                    *order += 2;
                    lane.pushes.fetch_add(1, Ordering::SeqCst);
                    drop(pending);
                    lane.wake.notify_all();
                }
                Decision::Forward { rule, .. } => {
                    drop(pending);
                    record.rule = rule;
                    record.event = FrameEvent::Dropped;
                    record.reason = Some(DropReason::QueueFull);
                    lane.counters.count(&record);
                    lane.log(record);
                }
                Decision::Drop { rule, reason } => {
                    drop(pending);
                    record.rule = Some(rule);
                    record.event = FrameEvent::Dropped;
                    record.reason = Some(reason);
                    lane.counters.count(&record);
                    lane.log(record);
                }
            }
        }
    }
}

/// Lateness of sent frames in 1 µs buckets (the last one open-ended), plus the exact maximum.
struct Lateness {
    buckets: Vec<AtomicU64>,
    max_ns: AtomicU64,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            buckets: (0..20_001).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl Lateness {
    fn add(&self, late_ns: u64) {
        let bucket = ((late_ns / 1000) as usize).min(self.buckets.len() - 1);
        self.max_ns.fetch_max(late_ns, Ordering::Relaxed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn fill(&self, way: &mut WayStats) {
        // One snapshot for both quantiles; frames sent meanwhile count next time.
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let max_ns = self.max_ns.load(Ordering::Relaxed);
        let total: u64 = counts.iter().sum();
        let quantile_ns = |q: f64| {
            if total == 0 {
                return 0;
            }
            let rank = ((total as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (bucket, &count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return ((bucket as u64 + 1) * 1000).min(max_ns);
                }
            }
            max_ns
        };
        way.late_p50_ns = quantile_ns(0.5);
        way.late_p99_ns = quantile_ns(0.99);
        way.late_max_ns = max_ns;
    }
}

/// Sends frames when due. The primary sender sleeps until just before the earliest due time and
/// spins to it; the backup (on the other CPU) only acts when a frame is still waiting
/// `BACKUP_GRACE_NS` after its due time.
fn send_frames(lane: &Lane, shared: &Shared, cpu: Option<usize>, primary: bool) {
    let realtime = sys::make_thread_punctual(SENDER_PRIORITY, cpu);
    if !realtime {
        shared.realtime.store(false, Ordering::SeqCst);
    }
    let spin_ns = if realtime {
        SPIN_NS_REALTIME
    } else {
        SPIN_NS_ORDINARY
    };
    let mut pending = lock(&lane.pending);
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(head_due) = pending.peek().map(|Reverse(p)| p.due_ns) else {
            pending = lane
                .wake
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        let now = monotonic_ns();
        let wake_at = if primary {
            head_due.saturating_sub(spin_ns)
        } else {
            head_due + BACKUP_GRACE_NS
        };
        if wake_at > now {
            pending = lane
                .wake
                .wait_timeout(pending, Duration::from_nanos(wake_at - now))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            continue;
        }
        if head_due > now {
            let pushes = lane.pushes.load(Ordering::SeqCst);
            drop(pending);
            // Bounded by spin_ns, and cut short when a reader queues something new (it might be
            // due sooner).
            while monotonic_ns() < head_due && lane.pushes.load(Ordering::SeqCst) == pushes {
                std::hint::spin_loop();
            }
            pending = lock(&lane.pending);
            continue;
        }
        drop(pending);
        send_due(lane, shared);
        pending = lock(&lane.pending);
    }
}

/// Sends the frames that are due, strictly in heap order (due time, then arrival), one at a time:
/// taking the head off the heap and writing it are one critical section under `lane.sending`, so
/// whichever sender does it, no frame is written before one that was ahead of it in the heap, and
/// a frame is never held by one sender while the other writes a later one. Between two frames the
/// lock is free, so the other sender can carry on if this one's CPU stalls.
fn send_due(lane: &Lane, shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        // Lock order: sending, then pending.
        let sending = lock(&lane.sending);
        let head = {
            let mut pending = lock(&lane.pending);
            let due = pending
                .peek()
                .is_some_and(|Reverse(head)| head.due_ns <= monotonic_ns());
            if due {
                pending.pop()
            } else {
                None
            }
        };
        let Some(Reverse(mut item)) = head else {
            return;
        };
        // Stamped right before the write: the receiving stack handles the frame within it, so a
        // receiver's timestamp is never earlier than this one.
        let sent_ns = monotonic_ns();
        match (&*lane.egress).write(&item.frame) {
            Ok(_) => {
                let late_ns = sent_ns.saturating_sub(item.due_ns);
                lane.lateness.add(late_ns);
                item.record.sent_ns = Some(sent_ns);
                item.record.late_ns = Some(late_ns as i64);
            }
            Err(_) => {
                item.record.event = FrameEvent::Dropped;
                item.record.reason = Some(DropReason::SendFailed);
            }
        }
        drop(sending);
        lane.counters.count(&item.record);
        lane.log(item.record);
    }
}
