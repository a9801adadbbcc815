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
//! TAP and a sender thread releases frames from a due-time heap: it sleeps until shortly before the
//! earliest due time, then spins to it. Both threads ask for SCHED_FIFO (granted to root; see
//! [`RelayHandle::realtime`]) so that other work on a busy machine cannot delay a due frame by a time
//! slice. The log records, per frame, how late the send was.
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
mod tap;

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
pub use tap::{in_netns, monotonic_ns};

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

/// Sleep until this long before a frame is due, then spin: a wake-up from sleep can be late by tens
/// of microseconds, a spin cannot. Longer without real-time priority, where wake-ups straggle more.
const SPIN_NS_REALTIME: u64 = 150_000;
const SPIN_NS_ORDINARY: u64 = 400_000;
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
        let tap = |side: &Endpoint| {
            tap::open_tap(side).map_err(|source| RelayError::Io {
                what: format!("creating TAP {} in {:?}", side.ifname, side.netns),
                source,
            })
        };
        let tap_a = Arc::new(tap(&config.side_a)?);
        let tap_b = Arc::new(tap(&config.side_b)?);

        let (log_tx, log_thread) = match &config.log {
            Some(path) => {
                let (tx, rx) = sync_channel(LOG_BACKLOG);
                (Some(tx), Some(log::write_log(path.clone(), rx)))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            realtime: AtomicBool::new(true),
            failure: Mutex::new(None),
        });
        let buffer = usize::from(config.side_a.mtu.max(config.side_b.mtu)) + 64;
        let mut handle = RelayHandle {
            shared: shared.clone(),
            lanes: Vec::new(),
            log_thread,
            stopped: false,
        };
        for (way, impairment, ingress, egress) in [
            (Direction::AtoB, impair_ab, tap_a.clone(), tap_b.clone()),
            (Direction::BtoA, impair_ba, tap_b, tap_a),
        ] {
            let lane = Arc::new(Lane::default());
            let reader = {
                let (lane, shared, log) = (lane.clone(), shared.clone(), log_tx.clone());
                spawn(way, "reader", move || {
                    read_frames(way, impairment, &ingress, buffer, &lane, &shared, log)
                })
            };
            let sender = {
                let (lane, shared, log) = (lane.clone(), shared.clone(), log_tx.clone());
                spawn(way, "sender", move || {
                    send_frames(&egress, &lane, &shared, log)
                })
            };
            handle.lanes.push(LaneThreads {
                way,
                lane,
                reader: Some(reader),
                sender: Some(sender),
            });
        }
        Ok(handle)
    }
}

fn spawn<T: Send + 'static>(
    way: Direction,
    role: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let short = if way == Direction::AtoB { "ab" } else { "ba" };
    std::thread::Builder::new()
        .name(format!("relay-{short}-{role}"))
        .spawn(work)
        .expect("spawning a relay thread")
}

/// A running relay. Stops (and removes its TAP devices) on [`RelayHandle::stop`] or when dropped.
pub struct RelayHandle {
    shared: Arc<Shared>,
    lanes: Vec<LaneThreads>,
    log_thread: Option<JoinHandle<Result<(), RelayError>>>,
    stopped: bool,
}

struct LaneThreads {
    way: Direction,
    lane: Arc<Lane>,
    reader: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<Lateness>>,
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

/// Counts of one direction, and how late the sender was.
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
    /// Lateness (sent - due) of every frame sent, to the microsecond (the maximum exact).
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

    /// Counts so far (lateness percentiles are only known at stop).
    pub fn stats(&self) -> RelayStats {
        let mut stats = RelayStats::default();
        for threads in &self.lanes {
            let way = match threads.way {
                Direction::AtoB => &mut stats.a_to_b,
                _ => &mut stats.b_to_a,
            };
            threads.lane.counters.fill(way);
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
        let mut stats = self.stats();
        for threads in &mut self.lanes {
            threads.lane.wake.notify_all();
            let mut failed = None;
            if let Some(reader) = threads.reader.take() {
                if reader.join().is_err() {
                    failed = Some("reader");
                }
            }
            let lateness = match threads.sender.take().map(JoinHandle::join) {
                Some(Ok(lateness)) => lateness,
                _ => {
                    failed = Some("sender");
                    Lateness::default()
                }
            };
            if let Some(role) = failed {
                self.shared
                    .fail(RelayError::Thread(role, "panicked".into()));
            }
            let way = match threads.way {
                Direction::AtoB => &mut stats.a_to_b,
                _ => &mut stats.b_to_a,
            };
            threads.lane.counters.fill(way);
            lateness.fill(way);
        }
        // Every log sender lived in the joined threads: the writer now sees the channel close.
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

/// One direction's frames between its reader and its sender.
#[derive(Default)]
struct Lane {
    pending: Mutex<BinaryHeap<Reverse<Pending>>>,
    wake: Condvar,
    /// Bumped on every push, so a spinning sender notices an earlier frame.
    pushes: AtomicU64,
    counters: Counters,
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
    /// Arrival order (a duplicate right after its original): breaks ties between equal due times.
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

fn log_record(log: &Option<SyncSender<LogRecord>>, record: LogRecord) {
    if let Some(log) = log {
        // The writer only goes away after every sender: a send cannot fail while we run.
        let _ = log.send(record);
    }
}

fn read_frames(
    way: Direction,
    mut impairment: Impairment,
    ingress: &File,
    buffer: usize,
    lane: &Lane,
    shared: &Shared,
    log: Option<SyncSender<LogRecord>>,
) {
    if !tap::make_thread_punctual(READER_PRIORITY) {
        shared.realtime.store(false, Ordering::SeqCst);
    }
    let mut buf = vec![0u8; buffer];
    let mut seq = 0u64;
    let mut order = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        match tap::wait_readable(ingress, STOP_POLL_MS) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(source) => {
                return shared.fail(RelayError::Io {
                    what: format!("waiting on the {way:?} ingress TAP"),
                    source,
                })
            }
        }
        // Drain everything queued: each frame still gets its own arrival time.
        loop {
            let len = match (&*ingress).read(&mut buf) {
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
                seq,
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
            seq += 1;
            let decision = impairment.decide(arrival_ns, len, &meta);
            let mut pending = lock(&lane.pending);
            let overflow = pending.len() + 2 > PENDING_CAPACITY;
            match decision {
                Decision::Drop { rule, reason } => {
                    drop(pending);
                    record.rule = Some(rule);
                    record.event = FrameEvent::Dropped;
                    record.reason = Some(reason);
                    lane.counters.count(&record);
                    log_record(&log, record);
                }
                Decision::Forward { rule, .. } if overflow => {
                    drop(pending);
                    record.rule = rule;
                    record.event = FrameEvent::Dropped;
                    record.reason = Some(DropReason::QueueFull);
                    lane.counters.count(&record);
                    log_record(&log, record);
                }
                Decision::Forward {
                    rule,
                    due_ns,
                    reordered,
                    duplicate,
                } => {
                    record.rule = rule;
                    record.reordered = reordered;
                    record.delay_ns = Some(due_ns - arrival_ns);
                    if duplicate {
                        let mut copy = record.clone();
                        copy.event = FrameEvent::Duplicated;
                        pending.push(Reverse(Pending {
                            due_ns,
                            order: order + 1,
                            frame: frame.to_vec(),
                            record: copy,
                        }));
                    }
                    pending.push(Reverse(Pending {
                        due_ns,
                        order,
                        frame: frame.to_vec(),
                        record,
                    }));
                    order += 2;
                    drop(pending);
                    lane.pushes.fetch_add(1, Ordering::SeqCst);
                    lane.wake.notify_one();
                }
            }
        }
    }
}

/// Lateness of sent frames in 1 µs buckets (the last one open-ended), plus the exact maximum.
struct Lateness {
    buckets: Vec<u64>,
    max_ns: u64,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            buckets: vec![0; 20_001],
            max_ns: 0,
        }
    }
}

impl Lateness {
    fn add(&mut self, late_ns: u64) {
        let bucket = ((late_ns / 1000) as usize).min(self.buckets.len() - 1);
        self.buckets[bucket] += 1;
        self.max_ns = self.max_ns.max(late_ns);
    }

    fn quantile_ns(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return ((bucket as u64 + 1) * 1000).min(self.max_ns);
            }
        }
        self.max_ns
    }

    fn fill(&self, way: &mut WayStats) {
        way.late_p50_ns = self.quantile_ns(0.5);
        way.late_p99_ns = self.quantile_ns(0.99);
        way.late_max_ns = self.max_ns;
    }
}

fn send_frames(
    egress: &File,
    lane: &Lane,
    shared: &Shared,
    log: Option<SyncSender<LogRecord>>,
) -> Lateness {
    let realtime = tap::make_thread_punctual(SENDER_PRIORITY);
    if !realtime {
        shared.realtime.store(false, Ordering::SeqCst);
    }
    let spin_ns = if realtime {
        SPIN_NS_REALTIME
    } else {
        SPIN_NS_ORDINARY
    };
    let mut lateness = Lateness::default();
    let mut due_now = Vec::new();
    let mut pending = lock(&lane.pending);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            for Reverse(mut item) in pending.drain() {
                item.record.event = FrameEvent::Dropped;
                item.record.reason = Some(DropReason::Stopped);
                lane.counters.count(&item.record);
                log_record(&log, item.record);
            }
            return lateness;
        }
        let Some(head_due) = pending.peek().map(|Reverse(p)| p.due_ns) else {
            pending = lane
                .wake
                .wait(pending)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        let now = monotonic_ns();
        if head_due > now + spin_ns {
            let sleep = Duration::from_nanos(head_due - now - spin_ns);
            pending = lane
                .wake
                .wait_timeout(pending, sleep)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            continue;
        }
        if head_due > now {
            let pushes = lane.pushes.load(Ordering::SeqCst);
            drop(pending);
            // Bounded by spin_ns, and cut short when the reader queues something new (it might be
            // due sooner).
            while monotonic_ns() < head_due && lane.pushes.load(Ordering::SeqCst) == pushes {
                std::hint::spin_loop();
            }
            pending = lock(&lane.pending);
            continue;
        }
        while pending.peek().is_some_and(|Reverse(p)| p.due_ns <= now) {
            if let Some(Reverse(item)) = pending.pop() {
                due_now.push(item);
            }
        }
        drop(pending);
        for mut item in due_now.drain(..) {
            let sent_ns = monotonic_ns();
            match (&*egress).write(&item.frame) {
                Ok(_) => {
                    let late_ns = sent_ns.saturating_sub(item.due_ns);
                    lateness.add(late_ns);
                    item.record.sent_ns = Some(sent_ns);
                    item.record.late_ns = Some(late_ns as i64);
                }
                Err(_) => {
                    item.record.event = FrameEvent::Dropped;
                    item.record.reason = Some(DropReason::SendFailed);
                }
            }
            lane.counters.count(&item.record);
            log_record(&log, item.record);
        }
        pending = lock(&lane.pending);
    }
}
