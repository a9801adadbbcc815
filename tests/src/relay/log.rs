//! The relay's frame log: one JSON object per line per frame event, written off the forwarding path.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Direction;
use super::RelayError;

/// What happened to a frame (or to one copy of it). Ordered so that an original sorts before its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameEvent {
    /// Sent to the other side (the original of a duplicated frame too).
    Forwarded,
    /// The extra copy of a duplicated frame.
    Duplicated,
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The rule's loss model chose it.
    Loss,
    /// The rate limiter's queue had no room.
    QueueFull,
    /// Still waiting for its due time when the relay stopped.
    Stopped,
    /// Writing to the TAP failed (the peer namespace or device went away).
    SendFailed,
}

/// One line of the log. Times are CLOCK_MONOTONIC nanoseconds, which every network namespace shares,
/// so they compare directly with timestamps taken by senders and receivers in the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the relay read the frame from the ingress TAP.
    pub arrival_ns: u64,
    /// `a_to_b` or `b_to_a`.
    pub dir: Direction,
    /// Arrival order within the direction, from 0; a duplicate shares its original's.
    pub seq: u64,
    /// Index of the rule applied; null when none matched or the frame is ARP/neighbour discovery.
    pub rule: Option<usize>,
    pub ethertype: u16,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number (6 TCP, 17 UDP, 58 ICMPv6…).
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// Ethernet frame length in bytes.
    pub len: usize,
    pub event: FrameEvent,
    /// Only for `dropped`.
    pub reason: Option<DropReason>,
    /// Held back by the rule's reorder setting, so later frames could overtake it.
    pub reordered: bool,
    /// Scheduled delay (due - arrival), including rate-limit queueing; null when dropped before
    /// scheduling.
    pub delay_ns: Option<u64>,
    /// When the write to the egress TAP began (the receiving stack handles the frame within that
    /// write, so no receiver sees it earlier); null unless sent. Frames of one direction have these
    /// in the order they were written, which is their scheduled order (due time, then arrival).
    pub sent_ns: Option<u64>,
    /// sent - due: the scheduler's error, never negative by construction.
    pub late_ns: Option<i64>,
}

impl LogRecord {
    /// The delay actually applied (sent - arrival), for frames that were sent.
    pub fn applied_delay_ns(&self) -> Option<u64> {
        Some(self.sent_ns?.saturating_sub(self.arrival_ns))
    }
}

/// Reads a log back, ordered by direction then arrival (lines are written when each event completes,
/// so a delayed frame's line follows frames that arrived after it).
pub fn read_log(path: &Path) -> Result<Vec<LogRecord>, RelayError> {
    let io = |source| RelayError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut records = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .map_err(|e| RelayError::Config(format!("{}:{}: {e}", path.display(), number + 1)))?;
        records.push(record);
    }
    records.sort_by_key(|r: &LogRecord| (r.dir == Direction::BtoA, r.seq, r.event));
    Ok(records)
}

/// Drains records into the file until every sender is gone. Flushes whenever the relay is idle for
/// a moment, so a running lab can read a current log, and always at the end.
pub(crate) fn write_log(
    path: PathBuf,
    records: Receiver<LogRecord>,
) -> Result<std::thread::JoinHandle<Result<(), RelayError>>, RelayError> {
    // Created here, so a log that cannot be written stops the relay from starting at all.
    let file = File::create(&path).map_err(|source| RelayError::Io {
        what: format!("creating {}", path.display()),
        source,
    })?;
    Ok(std::thread::Builder::new()
        .name("relay-log".into())
        .spawn(move || {
            let io = |source| RelayError::Io {
                what: format!("writing {}", path.display()),
                source,
            };
            let mut out = BufWriter::with_capacity(1 << 16, file);
            loop {
                match records.recv_timeout(Duration::from_millis(200)) {
                    Ok(record) => {
                        serde_json::to_writer(&mut out, &record)
                            .map_err(|e| io(std::io::Error::other(e)))?;
                        out.write_all(b"\n").map_err(io)?;
                    }
                    Err(RecvTimeoutError::Timeout) => out.flush().map_err(io)?,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            out.flush().map_err(io)
        })
        .expect("spawning the relay log thread"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_log_reads_back_in_arrival_order() {
        let path = std::env::temp_dir().join(format!("relay-log-{}.jsonl", std::process::id()));
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let writer = write_log(path.clone(), rx).unwrap();
        let record = |dir, seq, event| LogRecord {
            arrival_ns: 1_000 + seq,
            dir,
            seq,
            rule: Some(0),
            ethertype: 0x0800,
            src: Some("198.51.100.1".parse().unwrap()),
            dst: Some("203.0.113.10".parse().unwrap()),
            proto: Some(17),
            sport: Some(1),
            dport: Some(2),
            len: 60,
            event,
            reason: None,
            reordered: false,
            delay_ns: Some(5),
            sent_ns: Some(1_010 + seq),
            late_ns: Some(5),
        };
        let written = [
            record(Direction::BtoA, 0, FrameEvent::Forwarded),
            record(Direction::AtoB, 1, FrameEvent::Duplicated),
            record(Direction::AtoB, 1, FrameEvent::Forwarded),
            record(Direction::AtoB, 0, FrameEvent::Forwarded),
        ];
        for r in written.iter().cloned() {
            tx.send(r).unwrap();
        }
        drop(tx);
        writer.join().unwrap().unwrap();
        let read = read_log(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let order: Vec<_> = read.iter().map(|r| (r.dir, r.seq, r.event)).collect();
        assert_eq!(
            order,
            [
                (Direction::AtoB, 0, FrameEvent::Forwarded),
                (Direction::AtoB, 1, FrameEvent::Forwarded),
                (Direction::AtoB, 1, FrameEvent::Duplicated),
                (Direction::BtoA, 0, FrameEvent::Forwarded),
            ]
        );
        assert_eq!(read[0], written[3]);
        assert_eq!(read[1].applied_delay_ns(), Some(10));
    }
}
