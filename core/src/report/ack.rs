//! The collector's acknowledgement: which of the agent's frames it has durably stored, already had, or
//! will never take, so the agent can stop resending them (SPEC.md, "Ack").

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Most frames one ack names. An agent resending its backlog sends a burst; 32 acks per datagram keeps
/// the ack (at most 5 + 1 + 32 × 12 = 390 bytes) in one frame.
pub const MAX_ACKED_FRAMES: usize = 32;

/// The collector's answer to one or more of an agent's frames. Its header's sequence is the collector's own
/// counter for the agent, so two acks never share a nonce even when they name the same frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ack {
    /// The collector's clock when it sealed the ack, in seconds since 1970-01-01T00:00:00Z. A device
    /// without a clock of its own sets it from the first ack that names one of its current epoch's frames.
    pub collector_time: u32,
    /// The frames this ack answers.
    pub frames: Vec<AckedFrame, MAX_ACKED_FRAMES>,
}

/// What became of one of the agent's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AckedFrame {
    /// The sequence of the agent's frame (its header's sequence).
    pub sequence: u64,
    /// What the collector did with it.
    pub status: AckStatus,
}

/// What the collector did with a frame. Every status means "stop resending it".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AckStatus {
    /// Durably stored now.
    Stored,
    /// Stored earlier: this was a retransmission (the earlier ack was lost), and it was not stored again.
    Duplicate,
    /// Authentic but never to be stored; the agent counts it as dropped.
    Rejected(RejectReason),
}

/// Why the collector refuses an authentic frame for good. A frame that fails authentication is never
/// acked, or a forger could make an agent discard its genuine frame of the same sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The body does not decode, breaks a rule of the spec, or names a target index past its manifest.
    Malformed,
    /// The cycle start is older than the collector keeps, or further ahead of its clock than it tolerates:
    /// the agent's clock is wrong (the ack's `collector_time` tells it by how much).
    TimeOutOfRange,
}
