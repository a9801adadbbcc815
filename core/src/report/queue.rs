//! The uplink queue: the agent's sealed frames, kept until the collector acks them, resent with backoff,
//! and dropped (and counted) only when the queue is full (SPEC.md, "Queue").
//!
//! Sans-IO like the probes: the shell pushes frames ([`ReportQueue::seal_and_push`] for a message,
//! [`ReportQueue::push`] for bytes already sealed), sends what [`ReportQueue::poll_transmit`] hands out,
//! feeds opened acks to [`ReportQueue::handle_ack`], and sleeps until [`ReportQueue::poll_timeout`].
//!
//! Rules, and why:
//! - A frame is stored sealed and resent as stored: a resend is byte-identical, so the collector can tell
//!   it for a retransmission, and no sequence is ever sealed twice (a nonce must not repeat).
//! - The first send is immediate; resend `n` (n >= 1) follows the previous send by
//!   `min(initial × 2^(n-1), cap)`, moved by a seeded uniform jitter of up to `jitter_percent` either
//!   way, so that a fleet that lost the collector together does not resend in step when it returns.
//! - At most `max_in_flight` frames are in flight (sent, not acked, resend timer running); a due frame
//!   waits for a free place, oldest first. A backlog built up during an outage is then drained at the pace
//!   the acks come back, and during the outage only the oldest frames probe the path.
//! - Any ack status ends a frame: `Stored` and `Duplicate` mean the collector has it, `Rejected` that it
//!   never will (it is counted as dropped, and by reason). Acks naming unknown sequences change nothing.
//! - Full (no free frame slot, or too few free bytes) means the oldest results frame is dropped and
//!   counted. Manifest chunks go last: results are only useful once their manifest has arrived, and a
//!   manifest is sent once per target change, whereas a lost results batch costs one cycle.
//! - The count of frames dropped in the current sequence epoch (full, or rejected) is written into every
//!   results frame [`ReportQueue::seal_and_push`] builds, after it has made room for that frame.

use super::{seal, Ack, AckStatus, Direction, Header, Key, Message, MessageType, RejectReason};
use super::{Error, MAX_FRAME_LEN};
use crate::rand::SplitMix64;
use crate::time::{Duration, Instant};
use core::fmt;
use heapless::Vec;

/// Default wait before the first resend: 3 s, the conservative fixed timeout RFC 8085 (§3.1.3) suggests
/// for an application that keeps no round-trip estimate. It also leaves the collector time to store the
/// frame durably (an fsync) before it acks.
pub const INITIAL_RESEND: Duration = Duration::from_secs(3);

/// Default cap on the wait between resends: once the collector is back, every agent resumes within two
/// minutes, while an outage costs the collector at most `MAX_IN_FLIGHT` datagrams per agent per cap.
pub const MAX_RESEND: Duration = Duration::from_secs(120);

/// Default jitter of a resend wait, in percent of the wait, either way (uniform): after a collector
/// outage a fleet's resends spread over ±24 s at the cap instead of arriving in one burst.
pub const RESEND_JITTER_PERCENT: u8 = 20;

/// Default bound on frames in flight: the normal one frame per cycle never waits, and a backlog of 16
/// drains in four round trips.
pub const MAX_IN_FLIGHT: usize = 4;

/// How the queue paces its sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Wait after the first send before the first resend; each resend doubles it (at least one tick).
    pub initial_resend: Duration,
    /// The longest wait between resends, before jitter (at least `initial_resend`).
    pub max_resend: Duration,
    /// Each wait is moved by a uniform amount of up to this share of it, either way (at most 100).
    pub jitter_percent: u8,
    /// Most frames sent and awaiting an ack whose resend timer has not run out (at least 1).
    pub max_in_flight: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            initial_resend: INITIAL_RESEND,
            max_resend: MAX_RESEND,
            jitter_percent: RESEND_JITTER_PERCENT,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

impl QueueConfig {
    /// The config with every field brought into its documented range.
    fn normalized(self) -> Self {
        let initial_resend = Duration::from_ticks(self.initial_resend.as_ticks().max(1));
        Self {
            initial_resend,
            max_resend: self.max_resend.max(initial_resend),
            jitter_percent: self.jitter_percent.min(100),
            max_in_flight: self.max_in_flight.max(1),
        }
    }
}

/// Why the queue refused a frame or an ack. Nothing is dropped or changed when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueError {
    /// The frame travels from the collector to the agent (an ack): the queue holds only the agent's own.
    NotAgentFrame,
    /// A frame of this agent and sequence is queued already. Sealing another body under the sequence would
    /// repeat a nonce; pushing the same frame again would send it twice.
    SequenceQueued,
    /// `handle_ack` was given a header that is not an ack's: an agent frame reflected back at the agent
    /// must not end the frame it names.
    NotAnAck,
    /// The frame's header does not parse, or the message does not seal (oversized, breaks a rule).
    Frame(Error),
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAgentFrame => f.write_str("only the agent's own frames are queued, not acks"),
            Self::SequenceQueued => f.write_str("a frame with this sequence is queued already"),
            Self::NotAnAck => f.write_str("an ack must come in an ack frame"),
            Self::Frame(e) => write!(f, "report frame: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for QueueError {}

/// What a push did besides queueing the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Older frames dropped to make room (each counted in [`ReportQueue::dropped_frames`]).
    pub evicted: usize,
}

/// A frame to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The sealed frame, exactly as pushed: send it as one datagram (or request body).
    pub frame: &'a [u8],
    /// Its sequence.
    pub sequence: u64,
    /// 1 for the first send, 2 for the first resend, ...
    pub attempt: u16,
}

/// What one ack did to the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acked {
    /// Queued frames the collector has (`Stored` or `Duplicate`), removed.
    pub stored: usize,
    /// Queued frames the collector refused for good, removed and counted as dropped.
    pub rejected: usize,
    /// Named sequences not queued (acked before, dropped, or never sent): ignored. An ack that names
    /// only these may be a replay, so it must not set the device's clock (SPEC.md, "Processing").
    pub ignored: usize,
}

/// Counters for the shell to show and log. `queued` and `in_flight` are now; the others count since the
/// queue was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames held.
    pub queued: usize,
    /// Frames sent whose resend timer has not run out, as of the latest instant the queue was given.
    pub in_flight: usize,
    /// First sends.
    pub sent: u64,
    /// Sends after the first.
    pub resends: u64,
    /// Frames acked `Stored` or `Duplicate`.
    pub acked: u64,
    /// Frames dropped unacknowledged because the queue was full.
    pub dropped_full: u64,
    /// Frames acked `Rejected(Malformed)`.
    pub rejected_malformed: u64,
    /// Frames acked `Rejected(TimeOutOfRange)`: the agent's clock is off.
    pub rejected_time_out_of_range: u64,
}

impl QueueStats {
    /// Frames the collector refused, for any reason.
    pub fn rejected(&self) -> u64 {
        self.rejected_malformed + self.rejected_time_out_of_range
    }
}

/// A queued frame, for a shell that mirrors the queue to storage or shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedFrame<'a> {
    /// Its sequence.
    pub sequence: u64,
    /// Manifest or results.
    pub message_type: MessageType,
    /// The sealed bytes.
    pub frame: &'a [u8],
    /// Times sent so far.
    pub attempts: u16,
    /// When it was first sent, if it was.
    pub first_sent: Option<Instant>,
    /// When it is next due to be sent (a past instant: due now).
    pub next_due: Instant,
}

/// One queued frame's bookkeeping; its bytes sit in the queue's byte budget, in the same order.
#[derive(Debug, Clone, Copy)]
struct Entry {
    sequence: u64,
    /// Meaningful once `attempts > 0`.
    first_sent: Instant,
    next_due: Instant,
    agent_id: u32,
    len: u16,
    attempts: u16,
    manifest: bool,
}

/// Up to `FRAMES` sealed frames of one agent, their bytes together at most `BYTES`, awaiting acks.
///
/// The frames are packed in one byte budget rather than one `MAX_FRAME_LEN` slot each, because results
/// frames are typically 200-250 bytes: RAM is `BYTES` plus 40 bytes per frame slot, plus about 150. A
/// queue of 16 full-size frames (`ReportQueue<16, 19200>`) costs 19.5 KiB; `ReportQueue<32, 8192>`
/// holds 32 typical results frames in 9.4 KiB. `BYTES` must hold one frame of `MAX_FRAME_LEN`.
#[derive(Debug, Clone)]
pub struct ReportQueue<const FRAMES: usize, const BYTES: usize> {
    config: QueueConfig,
    rng: SplitMix64,
    /// Oldest first, as the frames' bytes in `bytes[..used]`.
    entries: Vec<Entry, FRAMES>,
    bytes: [u8; BYTES],
    used: usize,
    /// The latest instant the shell passed: what "in flight" is measured against in `poll_timeout`.
    now: Option<Instant>,
    /// The sequence epoch of the latest frame pushed, and the frames dropped in it.
    epoch: Option<u32>,
    epoch_dropped: u32,
    stats: QueueStats,
}

impl<const FRAMES: usize, const BYTES: usize> ReportQueue<FRAMES, BYTES> {
    /// An empty queue. `seed` fixes every jitter it will draw (give each device its own).
    pub fn new(config: QueueConfig, seed: u64) -> Self {
        const {
            assert!(FRAMES >= 1, "a report queue must hold a frame");
            assert!(
                BYTES >= MAX_FRAME_LEN,
                "a report queue must hold a full-size frame"
            );
        };
        Self {
            config: config.normalized(),
            rng: SplitMix64::new(seed),
            entries: Vec::new(),
            bytes: [0; BYTES],
            used: 0,
            now: None,
            epoch: None,
            epoch_dropped: 0,
            stats: QueueStats::default(),
        }
    }

    /// The pacing in force (as normalised by [`new`](Self::new)).
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Queues a frame sealed elsewhere (by [`seal`], or read back from storage), to be sent at once.
    /// When full, the oldest results frame (else the oldest manifest chunk) is dropped and counted.
    pub fn push(&mut self, now: Instant, frame: &[u8]) -> Result<Pushed, QueueError> {
        let header = Header::parse(frame).map_err(QueueError::Frame)?;
        self.check(&header)?;
        self.enter(now, header.sequence);
        // Header::parse bounds a frame by MAX_FRAME_LEN, which BYTES holds.
        let evicted = self.make_room(frame.len());
        self.bytes[self.used..self.used + frame.len()].copy_from_slice(frame);
        self.append(now, &header, frame.len());
        Ok(Pushed { evicted })
    }

    /// Seals `message` (a manifest chunk or a results batch) as `agent_id`'s frame `sequence`, sealed
    /// in place in the queue, to be sent at once. `sequence` must never have been used under `key`
    /// (SPEC.md, "Sequences and nonces"): the caller owns and persists the counter.
    ///
    /// For results, `dropped_frames` is set to [`dropped_frames`](Self::dropped_frames) as it stands
    /// after room has been made for this frame, so a frame that displaced another reports it itself.
    /// A message that does not seal, or would not fit in a frame with any count this push could
    /// write, is refused before anything is dropped.
    pub fn seal_and_push(
        &mut self,
        now: Instant,
        key: &Key,
        agent_id: u32,
        sequence: u64,
        message: &mut Message,
    ) -> Result<Pushed, QueueError> {
        let header = Header {
            message_type: message.message_type(),
            agent_id,
            sequence,
        };
        self.check(&header)?;
        message.validate().map_err(QueueError::Frame)?;
        // The count is a varint: check the size with the most this push can reach, so that a frame
        // refused as oversized has cost nothing.
        let counted = if self.epoch == Some(epoch_of(sequence)) {
            self.epoch_dropped
        } else {
            0
        };
        let most = counted.saturating_add(self.entries.len() as u32);
        if Self::sealed_len(message, most)? > MAX_FRAME_LEN {
            return Err(QueueError::Frame(Error::Oversized));
        }
        self.enter(now, sequence);
        let mut evicted = 0;
        let len = loop {
            let len = Self::sealed_len(message, self.epoch_dropped)?;
            if self.has_room(len) {
                break len;
            }
            if !self.evict_oldest() {
                return Err(QueueError::Frame(Error::Oversized));
            }
            evicted += 1;
        };
        let written = seal(
            key,
            agent_id,
            sequence,
            message,
            &mut self.bytes[self.used..],
        )
        .map_err(QueueError::Frame)?;
        debug_assert_eq!(written, len);
        self.append(now, &header, written);
        Ok(Pushed { evicted })
    }

    /// The next frame to send at `now`, if one is due and fewer than `max_in_flight` are in flight: the
    /// oldest due. Call until it returns `None`; each frame handed out is scheduled for its resend.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Outgoing<'_>> {
        self.observe(now);
        if self.in_flight_at(now) >= self.config.max_in_flight {
            return None;
        }
        let index = self.entries.iter().position(|e| e.next_due <= now)?;
        let attempts = self.entries[index].attempts.saturating_add(1);
        let wait = self.resend_wait(attempts);
        let entry = &mut self.entries[index];
        if entry.attempts == 0 {
            entry.first_sent = now;
            self.stats.sent += 1;
        } else {
            self.stats.resends += 1;
        }
        entry.attempts = attempts;
        entry.next_due = now.saturating_add(wait);
        let (sequence, len) = (entry.sequence, usize::from(entry.len));
        let start = self.offset(index);
        Some(Outgoing {
            frame: &self.bytes[start..start + len],
            sequence,
            attempt: attempts,
        })
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) next: the earliest instant a frame is due, or,
    /// when `max_in_flight` are in flight, the earliest a resend timer runs out. `None` when empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let now = self.now?;
        let window_full = self.in_flight_at(now) >= self.config.max_in_flight;
        self.entries
            .iter()
            .filter(|e| !window_full || Self::is_in_flight(e, now))
            .map(|e| e.next_due)
            .min()
    }

    /// Takes an ack the shell has opened ([`super::open`] under the agent's key): every queued frame it
    /// names ends, whatever its status, and is never sent again. The header must be an ack's (collector to
    /// agent), and only frames of the agent it names are touched.
    pub fn handle_ack(
        &mut self,
        now: Instant,
        header: &Header,
        ack: &Ack,
    ) -> Result<Acked, QueueError> {
        if header.message_type != MessageType::Ack {
            return Err(QueueError::NotAnAck);
        }
        self.observe(now);
        let mut acked = Acked::default();
        for named in &ack.frames {
            let found = self
                .entries
                .iter()
                .position(|e| e.sequence == named.sequence && e.agent_id == header.agent_id);
            let Some(index) = found else {
                acked.ignored += 1;
                continue;
            };
            self.remove(index);
            match named.status {
                AckStatus::Stored | AckStatus::Duplicate => {
                    acked.stored += 1;
                    self.stats.acked += 1;
                }
                AckStatus::Rejected(reason) => {
                    acked.rejected += 1;
                    self.count_dropped();
                    match reason {
                        RejectReason::Malformed => self.stats.rejected_malformed += 1,
                        RejectReason::TimeOutOfRange => self.stats.rejected_time_out_of_range += 1,
                    }
                }
            }
        }
        Ok(acked)
    }

    /// Frames dropped unacknowledged (full queue, or rejected) in the epoch of the latest frame pushed:
    /// the `dropped_frames` the next results frame carries.
    pub fn dropped_frames(&self) -> u32 {
        self.epoch_dropped
    }

    /// Counters for the shell.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.entries.len(),
            in_flight: self.now.map_or(0, |now| self.in_flight_at(now)),
            ..self.stats
        }
    }

    /// The queued frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = QueuedFrame<'_>> + '_ {
        let mut start = 0;
        self.entries.iter().map(move |e| {
            let frame = &self.bytes[start..start + usize::from(e.len)];
            start += usize::from(e.len);
            QueuedFrame {
                sequence: e.sequence,
                message_type: if e.manifest {
                    MessageType::Manifest
                } else {
                    MessageType::Results
                },
                frame,
                attempts: e.attempts,
                first_sent: (e.attempts > 0).then_some(e.first_sent),
                next_due: e.next_due,
            }
        })
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no frame awaits an ack.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks that a frame may be queued.
    fn check(&self, header: &Header) -> Result<(), QueueError> {
        if header.message_type.direction() != Direction::AgentToCollector {
            return Err(QueueError::NotAgentFrame);
        }
        let queued = self
            .entries
            .iter()
            .any(|e| e.sequence == header.sequence && e.agent_id == header.agent_id);
        if queued {
            return Err(QueueError::SequenceQueued);
        }
        Ok(())
    }

    /// Takes in a frame's time and sequence epoch: the count is per epoch (SPEC.md, "Results"), and a
    /// new epoch starts it again.
    fn enter(&mut self, now: Instant, sequence: u64) {
        self.observe(now);
        let epoch = epoch_of(sequence);
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.epoch_dropped = 0;
        }
    }

    fn sealed_len(message: &mut Message, dropped: u32) -> Result<usize, QueueError> {
        if let Message::Results(results) = message {
            results.dropped_frames = dropped;
        }
        message.sealed_len().map_err(QueueError::Frame)
    }

    fn has_room(&self, len: usize) -> bool {
        !self.entries.is_full() && BYTES - self.used >= len
    }

    fn make_room(&mut self, len: usize) -> usize {
        let mut evicted = 0;
        while !self.has_room(len) && self.evict_oldest() {
            evicted += 1;
        }
        evicted
    }

    /// Drops the oldest results frame, else the oldest manifest chunk, and counts it; false when empty.
    fn evict_oldest(&mut self) -> bool {
        let victim = self.entries.iter().position(|e| !e.manifest);
        let Some(index) = victim.or((!self.entries.is_empty()).then_some(0)) else {
            return false;
        };
        self.remove(index);
        self.stats.dropped_full += 1;
        self.count_dropped();
        true
    }

    /// Records a frame whose bytes were just written at `bytes[used..used + len]`.
    fn append(&mut self, now: Instant, header: &Header, len: usize) {
        let entry = Entry {
            sequence: header.sequence,
            first_sent: now,
            next_due: now,
            agent_id: header.agent_id,
            // At most MAX_FRAME_LEN.
            len: len as u16,
            attempts: 0,
            manifest: header.message_type == MessageType::Manifest,
        };
        // `make_room` or `has_room` left a free slot.
        if self.entries.push(entry).is_ok() {
            self.used += len;
        }
    }

    fn remove(&mut self, index: usize) {
        let start = self.offset(index);
        let entry = self.entries.remove(index);
        let end = start + usize::from(entry.len);
        self.bytes.copy_within(end..self.used, start);
        self.used -= usize::from(entry.len);
    }

    fn offset(&self, index: usize) -> usize {
        self.entries[..index]
            .iter()
            .map(|e| usize::from(e.len))
            .sum()
    }

    fn count_dropped(&mut self) {
        self.epoch_dropped = self.epoch_dropped.saturating_add(1);
    }

    fn observe(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |seen| seen.max(now)));
    }

    fn is_in_flight(entry: &Entry, now: Instant) -> bool {
        entry.attempts > 0 && entry.next_due > now
    }

    fn in_flight_at(&self, now: Instant) -> usize {
        self.entries
            .iter()
            .filter(|e| Self::is_in_flight(e, now))
            .count()
    }

    /// The wait after send number `attempts` (1 = the first send): the doubled, capped wait, jittered.
    fn resend_wait(&mut self, attempts: u16) -> Duration {
        let doublings = u32::from(attempts.saturating_sub(1)).min(63);
        let nominal = self
            .config
            .initial_resend
            .as_ticks()
            .saturating_mul(1 << doublings)
            .min(self.config.max_resend.as_ticks());
        Duration::from_ticks(
            self.rng
                .jittered(nominal, u64::from(self.config.jitter_percent)),
        )
    }
}

/// The high 32 bits of a sequence: the epoch (SPEC.md, "Sequences and nonces").
const fn epoch_of(sequence: u64) -> u32 {
    (sequence >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{
        open, AckedFrame, Manifest, Results, Rtt, Target, TcpFailures, TcpSummary, MAX_ACKED_FRAMES,
    };
    use crate::wire::endpoint::{Category, ServiceArea};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec as StdVec;

    const KEY: Key = Key::from_bytes([0x42; 32]);
    const AGENT: u32 = 42;
    /// Sequences of epoch 7: the high 32 bits.
    const EPOCH: u64 = 7 << 32;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// No jitter, so every instant follows from the rule alone.
    fn exact(max_in_flight: usize) -> QueueConfig {
        QueueConfig {
            initial_resend: secs(3),
            max_resend: secs(20),
            jitter_percent: 0,
            max_in_flight,
        }
    }

    /// A results batch of `tcp` near front doors: 8 bytes a summary.
    fn results(tcp: usize) -> Message {
        results_of(tcp, Rtt::new(3120, 3410, 4980).unwrap())
    }

    fn results_of(tcp: usize, rtt: Rtt) -> Message {
        let mut r = Results::new(1, 1_795_683_600, 0);
        for i in 0..tcp {
            let summary = TcpSummary {
                target: i as u8,
                samples: 10,
                rtt,
            };
            r.tcp.push(summary).unwrap();
        }
        Message::Results(r)
    }

    fn manifest() -> Message {
        let target = Target {
            host: heapless::String::try_from("outlook.office365.com").unwrap(),
            service_area: ServiceArea::Exchange,
            category: Category::Optimize,
            required: true,
            tcp_ports: Vec::from_slice(&[443]).unwrap(),
            udp_ports: Vec::new(),
        };
        Message::Manifest(Manifest {
            manifest_id: 1,
            total: 1,
            first: 0,
            targets: Vec::from_slice(&[target]).unwrap(),
        })
    }

    fn push<const F: usize, const B: usize>(
        q: &mut ReportQueue<F, B>,
        now: Instant,
        sequence: u64,
        mut message: Message,
    ) -> Pushed {
        q.seal_and_push(now, &KEY, AGENT, sequence, &mut message)
            .unwrap()
    }

    fn ack_header() -> Header {
        Header {
            message_type: MessageType::Ack,
            agent_id: AGENT,
            sequence: 1,
        }
    }

    fn ack(frames: &[(u64, AckStatus)]) -> Ack {
        let frames = frames
            .iter()
            .map(|&(sequence, status)| AckedFrame { sequence, status });
        Ack {
            collector_time: 1_795_683_902,
            frames: frames.collect(),
        }
    }

    fn sequences<const F: usize, const B: usize>(q: &ReportQueue<F, B>) -> StdVec<u64> {
        q.frames().map(|f| f.sequence).collect()
    }

    /// The results frame's `dropped_frames`, as the collector reads it.
    fn dropped_in(frame: &[u8]) -> u32 {
        let mut scratch = [0u8; crate::report::MAX_BODY_LEN];
        match open(&KEY, frame, &mut scratch).unwrap() {
            (_, Message::Results(r)) => r.dropped_frames,
            other => panic!("not results: {other:?}"),
        }
    }

    fn frame_of<const F: usize, const B: usize>(
        q: &ReportQueue<F, B>,
        sequence: u64,
    ) -> StdVec<u8> {
        q.frames()
            .find(|f| f.sequence == sequence)
            .unwrap()
            .frame
            .to_vec()
    }

    /// Sends everything due at `now`; returns the sequences sent.
    fn send_all<const F: usize, const B: usize>(
        q: &mut ReportQueue<F, B>,
        now: Instant,
    ) -> StdVec<u64> {
        let mut sent = StdVec::new();
        while let Some(out) = q.poll_transmit(now) {
            sent.push(out.sequence);
        }
        sent
    }

    #[test]
    fn first_send_is_immediate_and_resends_double_up_to_the_cap() {
        let mut q: ReportQueue<4, 4096> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(1000), EPOCH | 1, results(3));
        let mut sends = StdVec::new();
        while sends.len() < 7 {
            let due = q.poll_timeout().unwrap();
            if !sends.is_empty() {
                assert!(q.poll_transmit(due - Duration::from_millis(1)).is_none());
            }
            let out = q.poll_transmit(due).unwrap();
            assert_eq!(out.attempt as usize, sends.len() + 1);
            sends.push(due.as_millis() - 1000);
        }
        // 3 s, then 6, 12, then the 20 s cap instead of 24 and 48.
        assert_eq!(sends, [0, 3000, 9000, 21000, 41000, 61000, 81000]);
        let stats = q.stats();
        assert_eq!((stats.sent, stats.resends, stats.in_flight), (1, 6, 1));
    }

    #[test]
    fn jitter_spreads_a_fleet_within_the_stated_share_and_repeats_per_seed() {
        let first_resend = |seed: u64| {
            let mut q: ReportQueue<2, 2048> = ReportQueue::new(QueueConfig::default(), seed);
            push(&mut q, at(0), EPOCH | 1, results(1));
            q.poll_transmit(at(0)).unwrap();
            q.poll_timeout().unwrap().as_millis()
        };
        let waits: BTreeSet<u64> = (0..200).map(first_resend).collect();
        let nominal = INITIAL_RESEND.as_millis();
        let share = nominal * u64::from(RESEND_JITTER_PERCENT) / 100;
        assert!(waits
            .iter()
            .all(|w| (nominal - share..=nominal + share).contains(w)));
        // Spread both ways over most of the range, not a handful of values.
        assert!(*waits.first().unwrap() < nominal - share / 2);
        assert!(*waits.last().unwrap() > nominal + share / 2);
        assert!(waits.len() > 150);
        assert_eq!(first_resend(9), first_resend(9));
    }

    #[test]
    fn stored_and_duplicate_acks_end_frames_for_good() {
        let mut q: ReportQueue<4, 4096> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(0), EPOCH | 1, manifest());
        push(&mut q, at(0), EPOCH | 2, results(2));
        assert_eq!(send_all(&mut q, at(0)), [EPOCH | 1, EPOCH | 2]);
        let acked = q
            .handle_ack(
                at(500),
                &ack_header(),
                &ack(&[
                    (EPOCH | 1, AckStatus::Stored),
                    (EPOCH | 2, AckStatus::Duplicate),
                ]),
            )
            .unwrap();
        assert_eq!(
            acked,
            Acked {
                stored: 2,
                rejected: 0,
                ignored: 0
            }
        );
        assert!(q.is_empty());
        assert_eq!(q.poll_timeout(), None);
        assert!(q.poll_transmit(at(3_600_000)).is_none());
        assert_eq!((q.stats().acked, q.dropped_frames()), (2, 0));
    }

    #[test]
    fn an_ack_between_resends_cancels_the_next_resend() {
        let mut q: ReportQueue<4, 4096> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(0), EPOCH | 1, results(2));
        assert_eq!(send_all(&mut q, at(0)), [EPOCH | 1]);
        assert_eq!(send_all(&mut q, at(3000)), [EPOCH | 1]);
        assert_eq!(q.poll_timeout(), Some(at(9000)));
        let stored = ack(&[(EPOCH | 1, AckStatus::Stored)]);
        q.handle_ack(at(5000), &ack_header(), &stored).unwrap();
        assert_eq!(q.poll_timeout(), None);
        assert!(send_all(&mut q, at(9000)).is_empty());
        // The ack of the first copy, arriving late, names a frame that is gone.
        let late = q.handle_ack(at(9500), &ack_header(), &stored).unwrap();
        assert_eq!((late.stored, late.ignored), (0, 1));
        assert_eq!(
            (q.stats().sent, q.stats().resends, q.stats().acked),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_the_next_results_frame_reports_it() {
        let mut q: ReportQueue<3, 4096> = ReportQueue::new(exact(4), 1);
        for s in 1..=3 {
            assert_eq!(push(&mut q, at(0), EPOCH | s, results(2)).evicted, 0);
        }
        assert_eq!(push(&mut q, at(10), EPOCH | 4, results(2)).evicted, 1);
        assert_eq!(sequences(&q), [EPOCH | 2, EPOCH | 3, EPOCH | 4]);
        assert_eq!(dropped_in(&frame_of(&q, EPOCH | 4)), 1);
        assert_eq!(push(&mut q, at(20), EPOCH | 5, results(2)).evicted, 1);
        assert_eq!(dropped_in(&frame_of(&q, EPOCH | 5)), 2);
        assert_eq!(dropped_in(&frame_of(&q, EPOCH | 3)), 0);
        // The dropped frames are never sent; the rest go oldest first.
        assert_eq!(send_all(&mut q, at(20)), [EPOCH | 3, EPOCH | 4, EPOCH | 5]);
        assert_eq!((q.stats().dropped_full, q.dropped_frames()), (2, 2));
    }

    #[test]
    fn manifest_chunks_outlast_results_and_go_only_when_nothing_else_is_left() {
        let mut q: ReportQueue<3, 4096> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(0), EPOCH | 1, manifest());
        push(&mut q, at(0), EPOCH | 2, results(1));
        push(&mut q, at(0), EPOCH | 3, results(1));
        push(&mut q, at(0), EPOCH | 4, results(1));
        assert_eq!(sequences(&q), [EPOCH | 1, EPOCH | 3, EPOCH | 4]);
        push(&mut q, at(0), EPOCH | 5, manifest());
        assert_eq!(sequences(&q), [EPOCH | 1, EPOCH | 4, EPOCH | 5]);
        push(&mut q, at(0), EPOCH | 6, manifest());
        assert_eq!(sequences(&q), [EPOCH | 1, EPOCH | 5, EPOCH | 6]);
        // Only manifests left: the oldest of them makes room.
        push(&mut q, at(0), EPOCH | 7, results(1));
        assert_eq!(sequences(&q), [EPOCH | 5, EPOCH | 6, EPOCH | 7]);
        assert_eq!(dropped_in(&frame_of(&q, EPOCH | 7)), 4);
    }

    #[test]
    fn the_byte_budget_drops_frames_too_and_keeps_the_rest_intact() {
        // 60 summaries: 30 bytes of frame, 10 of batch and section framing, 60 × 8: 520 bytes.
        // Two fit in 1200 with a small one beside them; a third does not.
        let mut q: ReportQueue<8, 1200> = ReportQueue::new(exact(8), 1);
        push(&mut q, at(0), EPOCH | 1, results(60));
        push(&mut q, at(0), EPOCH | 2, results(60));
        assert_eq!(frame_of(&q, EPOCH | 1).len(), 520);
        assert_eq!(push(&mut q, at(0), EPOCH | 3, results(1)).evicted, 0);
        assert_eq!(push(&mut q, at(0), EPOCH | 4, results(60)).evicted, 1);
        assert_eq!(sequences(&q), [EPOCH | 2, EPOCH | 3, EPOCH | 4]);
        // Every frame left still opens: compaction moved bytes, not tags.
        for f in q.frames() {
            let (header, _) = open(&KEY, f.frame, &mut [0u8; 1200]).unwrap();
            assert_eq!(header.sequence, f.sequence);
        }
        // Full-size frames: one at a time.
        let mut q: ReportQueue<8, 1200> = ReportQueue::new(exact(8), 1);
        let mut big = [0u8; MAX_FRAME_LEN];
        let n = seal(&KEY, AGENT, EPOCH | 1, &results(1), &mut big).unwrap();
        q.push(at(0), &big[..n]).unwrap();
        let full = frame_of_len(MAX_FRAME_LEN);
        q.push(at(0), &full).unwrap();
        assert_eq!(sequences(&q), [EPOCH | 9]);
    }

    /// A results frame of exactly `len` bytes (sequence 9), built from TCP summaries of slow targets
    /// (17 bytes each) and TCP failures (4 bytes each).
    fn frame_of_len(len: usize) -> StdVec<u8> {
        let slow = Rtt::new(300_000_000, 600_000_000, 900_000_000).unwrap();
        for tcp in 0..64 {
            for failures in 0..64 {
                let mut m = results_of(tcp, slow);
                if let Message::Results(r) = &mut m {
                    for t in 0..failures {
                        let f = TcpFailures {
                            target: t as u8,
                            refused: 0,
                            timed_out: 1,
                            unreachable: 0,
                        };
                        r.tcp_failures.push(f).unwrap();
                    }
                    r.cycle_start = u32::MAX;
                }
                if m.sealed_len().unwrap() == len {
                    let mut out = vec![0u8; len];
                    seal(&KEY, AGENT, EPOCH | 9, &m, &mut out).unwrap();
                    return out;
                }
            }
        }
        panic!("no results frame of {len} bytes");
    }

    #[test]
    fn rejected_frames_end_and_are_counted_by_reason_and_reported() {
        let mut q: ReportQueue<4, 4096> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(0), EPOCH | 1, results(1));
        push(&mut q, at(0), EPOCH | 2, results(1));
        push(&mut q, at(0), EPOCH | 3, results(1));
        send_all(&mut q, at(0));
        let refused = ack(&[
            (EPOCH | 1, AckStatus::Rejected(RejectReason::TimeOutOfRange)),
            (EPOCH | 2, AckStatus::Rejected(RejectReason::Malformed)),
            (EPOCH | 3, AckStatus::Rejected(RejectReason::TimeOutOfRange)),
        ]);
        let acked = q.handle_ack(at(100), &ack_header(), &refused).unwrap();
        assert_eq!((acked.stored, acked.rejected), (0, 3));
        let stats = q.stats();
        assert_eq!(
            (
                stats.rejected_malformed,
                stats.rejected_time_out_of_range,
                stats.rejected()
            ),
            (1, 2, 3)
        );
        assert_eq!((stats.acked, stats.dropped_full), (0, 0));
        assert!(send_all(&mut q, at(60_000)).is_empty());
        push(&mut q, at(60_000), EPOCH | 4, results(1));
        assert_eq!(dropped_in(&frame_of(&q, EPOCH | 4)), 3);
    }

    #[test]
    fn stale_foreign_and_reflected_acks_change_nothing() {
        let mut q: ReportQueue<4, 4096> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(0), EPOCH | 1, results(1));
        let stored = ack(&[(EPOCH | 1, AckStatus::Stored)]);
        let stale = ack(&[(EPOCH | 99, AckStatus::Stored), (1, AckStatus::Stored)]);
        assert_eq!(
            q.handle_ack(at(1), &ack_header(), &stale).unwrap().ignored,
            2
        );
        let other_agent = Header {
            agent_id: AGENT + 1,
            ..ack_header()
        };
        assert_eq!(
            q.handle_ack(at(1), &other_agent, &stored).unwrap().ignored,
            1
        );
        // The agent's own results frame (or a forged type) reflected back is no ack.
        for message_type in [MessageType::Results, MessageType::Manifest] {
            let reflected = Header {
                message_type,
                ..ack_header()
            };
            assert_eq!(
                q.handle_ack(at(1), &reflected, &stored),
                Err(QueueError::NotAnAck)
            );
        }
        assert_eq!(sequences(&q), [EPOCH | 1]);
        assert_eq!((q.stats().acked, q.dropped_frames()), (0, 0));
        assert_eq!(send_all(&mut q, at(2)), [EPOCH | 1]);
    }

    #[test]
    fn a_backlog_goes_out_at_most_max_in_flight_at_a_time() {
        let mut q: ReportQueue<8, 4096> = ReportQueue::new(exact(2), 1);
        for s in 1..=5 {
            push(&mut q, at(0), EPOCH | s, results(1));
        }
        assert_eq!(send_all(&mut q, at(0)), [EPOCH | 1, EPOCH | 2]);
        assert_eq!(q.stats().in_flight, 2);
        // Waiting frames are due already; the wake-up is when a place frees, not a busy loop.
        assert_eq!(q.poll_timeout(), Some(at(3000)));
        q.handle_ack(
            at(1000),
            &ack_header(),
            &ack(&[(EPOCH | 1, AckStatus::Stored)]),
        )
        .unwrap();
        assert_eq!(send_all(&mut q, at(1000)), [EPOCH | 3]);
        assert_eq!(q.poll_timeout(), Some(at(3000)));
        // Frame 2's timer runs out: it is resent (oldest due) ahead of the frames never sent.
        assert_eq!(send_all(&mut q, at(3000)), [EPOCH | 2]);
        assert_eq!(q.poll_timeout(), Some(at(4000)));
        assert_eq!(send_all(&mut q, at(4000)), [EPOCH | 3]);
    }

    /// 64 slow targets (17 bytes each) and 64 failure counts (4 bytes each): a 1,396-byte frame.
    fn too_big() -> Message {
        let mut m = results_of(64, Rtt::new(300_000_000, 600_000_000, 900_000_000).unwrap());
        if let Message::Results(r) = &mut m {
            for target in 0..64 {
                let f = TcpFailures {
                    target,
                    refused: 0,
                    timed_out: 1,
                    unreachable: 0,
                };
                r.tcp_failures.push(f).unwrap();
            }
        }
        m
    }

    #[test]
    fn pushes_that_break_the_rules_are_refused_without_effect() {
        let mut q: ReportQueue<2, 2048> = ReportQueue::new(exact(4), 1);
        push(&mut q, at(0), EPOCH | 1, results(1));
        push(&mut q, at(0), EPOCH | 2, results(1));
        let mut sealed_ack = [0u8; 128];
        let n = seal(&KEY, AGENT, 5, &Message::Ack(ack(&[])), &mut sealed_ack).unwrap();
        assert_eq!(
            q.push(at(1), &sealed_ack[..n]),
            Err(QueueError::NotAgentFrame)
        );
        let mut as_message = Message::Ack(ack(&[]));
        assert_eq!(
            q.seal_and_push(at(1), &KEY, AGENT, EPOCH | 3, &mut as_message),
            Err(QueueError::NotAgentFrame)
        );
        assert_eq!(
            q.seal_and_push(at(1), &KEY, AGENT, EPOCH | 2, &mut results(5)),
            Err(QueueError::SequenceQueued)
        );
        let again = frame_of(&q, EPOCH | 1);
        assert_eq!(q.push(at(1), &again), Err(QueueError::SequenceQueued));
        assert_eq!(
            q.push(at(1), &again[..10]),
            Err(QueueError::Frame(Error::Truncated))
        );
        let mut overlong = again.clone();
        overlong.resize(MAX_FRAME_LEN + 1, 0);
        assert_eq!(
            q.push(at(1), &overlong),
            Err(QueueError::Frame(Error::Oversized))
        );
        let mut oversized = too_big();
        assert!(oversized.sealed_len().unwrap() > MAX_FRAME_LEN);
        assert_eq!(
            q.seal_and_push(at(1), &KEY, AGENT, EPOCH | 3, &mut oversized),
            Err(QueueError::Frame(Error::Oversized))
        );
        assert_eq!(sequences(&q), [EPOCH | 1, EPOCH | 2]);
        assert_eq!((q.dropped_frames(), q.stats().dropped_full), (0, 0));
    }

    #[test]
    fn a_new_epoch_counts_its_drops_from_zero() {
        let mut q: ReportQueue<2, 2048> = ReportQueue::new(exact(4), 1);
        for s in 1..=3 {
            push(&mut q, at(0), EPOCH | s, results(1));
        }
        assert_eq!(q.dropped_frames(), 1);
        let next_epoch = 8 << 32;
        // A push refused in the new epoch leaves the old epoch's count alone.
        assert!(q
            .seal_and_push(at(1), &KEY, AGENT, next_epoch, &mut too_big())
            .is_err());
        assert_eq!(q.dropped_frames(), 1);
        let both = ack(&[
            (EPOCH | 2, AckStatus::Stored),
            (EPOCH | 3, AckStatus::Stored),
        ]);
        q.handle_ack(at(1), &ack_header(), &both).unwrap();
        push(&mut q, at(2), next_epoch, results(1));
        assert_eq!(dropped_in(&frame_of(&q, next_epoch)), 0);
        assert_eq!((q.dropped_frames(), q.stats().dropped_full), (0, 1));
    }

    #[test]
    fn every_send_is_the_frame_seal_makes_byte_for_byte() {
        let mut q: ReportQueue<4, 4096> = ReportQueue::new(QueueConfig::default(), 3);
        let mut message = results(7);
        q.seal_and_push(at(0), &KEY, AGENT, EPOCH | 1, &mut message)
            .unwrap();
        let mut expected = [0u8; MAX_FRAME_LEN];
        let n = seal(&KEY, AGENT, EPOCH | 1, &message, &mut expected).unwrap();
        let mut now = at(0);
        for attempt in 1..=4 {
            let out = q.poll_transmit(now).unwrap();
            assert_eq!((out.frame, out.attempt), (&expected[..n], attempt));
            now = q.poll_timeout().unwrap();
        }
    }

    #[test]
    fn ram_is_the_byte_budget_plus_forty_bytes_a_frame_plus_a_little() {
        let overhead = |size: usize, frames: usize, bytes: usize| size - bytes - 40 * frames;
        eprintln!(
            "ReportQueue<16, 19200>: {full} bytes; ReportQueue<32, 8192>: {typical} bytes",
            full = core::mem::size_of::<ReportQueue<16, { 16 * MAX_FRAME_LEN }>>(),
            typical = core::mem::size_of::<ReportQueue<32, 8192>>(),
        );
        let full = core::mem::size_of::<ReportQueue<16, { 16 * MAX_FRAME_LEN }>>();
        let typical = core::mem::size_of::<ReportQueue<32, 8192>>();
        assert!(overhead(full, 16, 16 * MAX_FRAME_LEN) <= 160, "{full}");
        assert!(overhead(typical, 32, 8192) <= 160, "{typical}");
    }

    // ---- The queue's guarantees under arbitrary ack and loss orders -------------------------------

    const PFRAMES: usize = 4;
    const PBYTES: usize = 1400;
    const MAX_IN_FLIGHT_P: usize = 2;
    const JITTER_P: u8 = 25;

    fn pconfig() -> QueueConfig {
        QueueConfig {
            initial_resend: secs(1),
            max_resend: secs(8),
            jitter_percent: JITTER_P,
            max_in_flight: MAX_IN_FLIGHT_P,
        }
    }

    /// The wait after send `attempt`, as the module docs state it: (shortest, longest).
    fn wait_bounds(attempt: u16) -> (u64, u64) {
        let c = pconfig();
        let nominal =
            (c.initial_resend.as_ticks() << (attempt - 1).min(20)).min(c.max_resend.as_ticks());
        let jitter = nominal * u64::from(c.jitter_percent) / 100;
        (nominal - jitter, nominal + jitter)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push { manifest: bool, tcp: usize },
        Advance(u64),
        Transmit(StdVec<bool>),
        DeliverAcks { pick: usize, count: usize },
        RepeatAck(usize),
        StaleAck(u64),
        Reflected,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<bool>(), 0..=64usize).prop_map(|(m, tcp)| Op::Push {
                manifest: m && tcp % 3 == 0,
                tcp,
            }),
            3 => (0..12_000u64).prop_map(Op::Advance),
            4 => prop::collection::vec(prop::bool::weighted(0.4), 1..6).prop_map(Op::Transmit),
            3 => (any::<usize>(), 1..5usize).prop_map(|(pick, count)| Op::DeliverAcks { pick, count }),
            1 => any::<usize>().prop_map(Op::RepeatAck),
            1 => any::<u32>().prop_map(|s| Op::StaleAck(EPOCH | (1 << 31) | u64::from(s))),
            1 => Just(Op::Reflected),
        ]
    }

    /// The queue beside what it must amount to, and a collector that acks what reaches it.
    struct World {
        q: ReportQueue<PFRAMES, PBYTES>,
        now: Instant,
        next: u64,
        /// The predicted contents: (sequence, manifest, length), oldest first.
        held: StdVec<(u64, bool, usize)>,
        pushed: BTreeSet<u64>,
        acked: BTreeSet<u64>,
        rejected: BTreeSet<u64>,
        evicted: BTreeSet<u64>,
        sealed: BTreeMap<u64, StdVec<u8>>,
        last_send: BTreeMap<u64, (Instant, u16)>,
        collector_stored: BTreeSet<u64>,
        pending_acks: StdVec<AckedFrame>,
        delivered: StdVec<Ack>,
    }

    impl World {
        fn new(seed: u64) -> Self {
            Self {
                q: ReportQueue::new(pconfig(), seed),
                now: at(0),
                next: 1,
                held: StdVec::new(),
                pushed: BTreeSet::new(),
                acked: BTreeSet::new(),
                rejected: BTreeSet::new(),
                evicted: BTreeSet::new(),
                sealed: BTreeMap::new(),
                last_send: BTreeMap::new(),
                collector_stored: BTreeSet::new(),
                pending_acks: StdVec::new(),
                delivered: StdVec::new(),
            }
        }

        fn push(&mut self, manifest_chunk: bool, tcp: usize) {
            let sequence = EPOCH | self.next;
            self.next += 1;
            let mut message = if manifest_chunk {
                manifest()
            } else {
                results(tcp)
            };
            let pushed = self
                .q
                .seal_and_push(self.now, &KEY, AGENT, sequence, &mut message)
                .unwrap();
            let frame = frame_of(&self.q, sequence);
            // Predict the room made: the oldest results frame first, by count and by bytes.
            let mut evicted = 0;
            while self.held.len() == PFRAMES
                || self.held.iter().map(|h| h.2).sum::<usize>() + frame.len() > PBYTES
            {
                let victim = self.held.iter().position(|h| !h.1).unwrap_or(0);
                self.evicted.insert(self.held.remove(victim).0);
                evicted += 1;
            }
            assert_eq!(pushed.evicted, evicted);
            self.held.push((sequence, manifest_chunk, frame.len()));
            if !manifest_chunk {
                let dropped = (self.evicted.len() + self.rejected.len()) as u32;
                assert_eq!(
                    dropped_in(&frame),
                    dropped,
                    "the count travels in the frame"
                );
            }
            self.pushed.insert(sequence);
            self.sealed.insert(sequence, frame);
        }

        fn transmit(&mut self, losses: &[bool]) {
            let now = self.now;
            for &lost in losses {
                let before: StdVec<(u64, u16, Instant)> = self
                    .q
                    .frames()
                    .map(|f| (f.sequence, f.attempts, f.next_due))
                    .collect();
                let in_flight = before.iter().filter(|b| b.1 > 0 && b.2 > now).count();
                let Some(out) = self.q.poll_transmit(now) else {
                    let waiting = before.iter().any(|b| b.2 <= now);
                    assert!(
                        !waiting || in_flight >= MAX_IN_FLIGHT_P,
                        "a due frame is held back"
                    );
                    if let Some(wake) = self.q.poll_timeout() {
                        assert!(wake > now, "poll_timeout asks for a busy loop");
                    }
                    return;
                };
                let (sequence, attempt, frame) = (out.sequence, out.attempt, out.frame.to_vec());
                assert!(in_flight < MAX_IN_FLIGHT_P);
                assert!(
                    !self.acked.contains(&sequence)
                        && !self.rejected.contains(&sequence)
                        && !self.evicted.contains(&sequence),
                    "a frame that ended was sent again"
                );
                assert_eq!(
                    frame, self.sealed[&sequence],
                    "a send differs from the sealed frame"
                );
                let oldest_due = before.iter().find(|b| b.2 <= now).unwrap();
                assert_eq!((oldest_due.0, oldest_due.1 + 1), (sequence, attempt));
                if let Some(&(previous, previous_attempt)) = self.last_send.get(&sequence) {
                    let gap = (now - previous).as_ticks();
                    assert!(gap >= wait_bounds(previous_attempt).0, "resent too early");
                }
                let next_due = self
                    .q
                    .frames()
                    .find(|f| f.sequence == sequence)
                    .unwrap()
                    .next_due;
                let (shortest, longest) = wait_bounds(attempt);
                let wait = (next_due - now).as_ticks();
                assert!(
                    (shortest..=longest).contains(&wait),
                    "wait {wait} after send {attempt}"
                );
                assert!(self.q.stats().in_flight <= MAX_IN_FLIGHT_P);
                self.last_send.insert(sequence, (now, attempt));
                if !lost {
                    self.collector_receives(sequence);
                }
            }
        }

        /// The collector's rule: a frame stored before is a duplicate; some frames it refuses.
        fn collector_receives(&mut self, sequence: u64) {
            let status = if self.collector_stored.contains(&sequence) {
                AckStatus::Duplicate
            } else if sequence % 5 == 3 {
                AckStatus::Rejected(if sequence % 2 == 0 {
                    RejectReason::Malformed
                } else {
                    RejectReason::TimeOutOfRange
                })
            } else {
                self.collector_stored.insert(sequence);
                AckStatus::Stored
            };
            self.pending_acks.push(AckedFrame { sequence, status });
        }

        fn deliver(&mut self, ack: Ack) {
            let mut expected = Acked::default();
            for named in &ack.frames {
                match self.held.iter().position(|h| h.0 == named.sequence) {
                    None => expected.ignored += 1,
                    Some(i) => {
                        self.held.remove(i);
                        if let AckStatus::Rejected(_) = named.status {
                            expected.rejected += 1;
                            self.rejected.insert(named.sequence);
                        } else {
                            expected.stored += 1;
                            self.acked.insert(named.sequence);
                        }
                    }
                }
            }
            assert_eq!(
                self.q.handle_ack(self.now, &ack_header(), &ack),
                Ok(expected)
            );
            self.delivered.push(ack);
        }

        fn deliver_pending(&mut self, pick: usize, count: usize) {
            if self.pending_acks.is_empty() {
                return;
            }
            let start = pick % self.pending_acks.len();
            let end = (start + count).min(self.pending_acks.len());
            let frames: StdVec<AckedFrame> = self.pending_acks.drain(start..end).collect();
            self.deliver(Ack {
                collector_time: 0,
                frames: Vec::from_slice(&frames).unwrap(),
            });
        }

        fn apply(&mut self, op: &Op) {
            match op {
                Op::Push { manifest, tcp } => self.push(*manifest, *tcp),
                Op::Advance(ms) => self.now += Duration::from_millis(*ms),
                Op::Transmit(losses) => self.transmit(losses),
                Op::DeliverAcks { pick, count } => self.deliver_pending(*pick, *count),
                Op::RepeatAck(i) if !self.delivered.is_empty() => {
                    let ack = self.delivered[i % self.delivered.len()].clone();
                    let before = self.held.len();
                    self.deliver(ack);
                    assert_eq!(self.held.len(), before);
                }
                Op::RepeatAck(_) => {}
                Op::StaleAck(sequence) => self.deliver(ack(&[(*sequence, AckStatus::Stored)])),
                Op::Reflected => {
                    let reflected = Header {
                        message_type: MessageType::Results,
                        ..ack_header()
                    };
                    let everything: StdVec<(u64, AckStatus)> =
                        self.held.iter().map(|h| (h.0, AckStatus::Stored)).collect();
                    let result = self.q.handle_ack(self.now, &reflected, &ack(&everything));
                    assert_eq!(result, Err(QueueError::NotAnAck));
                }
            }
            self.check();
        }

        fn check(&self) {
            assert!(self.q.len() <= PFRAMES);
            let held: StdVec<u64> = self.held.iter().map(|h| h.0).collect();
            assert_eq!(sequences(&self.q), held);
            // Nothing lost silently: every frame pushed is queued, acked, rejected or counted dropped.
            for s in &self.pushed {
                let places = [
                    held.contains(s),
                    self.acked.contains(s),
                    self.rejected.contains(s),
                    self.evicted.contains(s),
                ];
                assert_eq!(places.iter().filter(|p| **p).count(), 1, "frame {s:#x}");
            }
            let stats = self.q.stats();
            assert_eq!(stats.queued, held.len());
            assert_eq!(stats.acked, self.acked.len() as u64);
            assert_eq!(stats.rejected(), self.rejected.len() as u64);
            assert_eq!(stats.dropped_full, self.evicted.len() as u64);
            let dropped = self.evicted.len() + self.rejected.len();
            assert_eq!(self.q.dropped_frames() as usize, dropped);
            assert_eq!(self.q.poll_timeout().is_some(), !held.is_empty());
        }
    }

    proptest! {
        #[test]
        fn the_queue_keeps_its_guarantees_under_any_ack_and_loss_order(
            seed in any::<u64>(),
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let mut world = World::new(seed);
            for op in &ops {
                world.apply(op);
            }
            // Then the network heals: everything left is delivered and acked, nothing is stuck.
            for _ in 0..100 {
                if world.q.is_empty() {
                    break;
                }
                let wake = world.q.poll_timeout().unwrap();
                world.now = world.now.max(wake);
                world.transmit(&[false; PFRAMES]);
                world.deliver_pending(0, MAX_ACKED_FRAMES);
                world.check();
            }
            prop_assert!(world.q.is_empty());
            prop_assert_eq!(
                world.pushed.len(),
                world.acked.len() + world.rejected.len() + world.evicted.len()
            );
        }
    }
}
