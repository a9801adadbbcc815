//! The frame around a report body: the clear header, the nonce derived from it, and the ChaCha20-Poly1305
//! seal with the header as associated data (SPEC.md, "Frame").

use super::{Error, Message, Result};
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, KeyInit};
use core::fmt;

/// The only format version this build reads and writes.
pub const VERSION: u8 = 1;

/// Length of the clear header: version, message type, agent id, sequence.
pub const HEADER_LEN: usize = field::SEQUENCE.end;

/// Length of the Poly1305 tag that follows the sealed body.
pub const TAG_LEN: usize = 16;

/// Bytes a frame adds to its body: header and tag.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The shortest frame that can be opened at all (an empty body never decodes, but is told apart by the tag).
pub const MIN_FRAME_LEN: usize = OVERHEAD;

/// The longest frame: one UDP datagram that no IPv6 path fragments (minimum MTU 1280, minus 40 bytes of
/// IPv6 and 8 of UDP header, leaves 1232; 1200 keeps a margin for tunnels, as QUIC does).
pub const MAX_FRAME_LEN: usize = 1200;

/// The longest body a frame can carry.
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN - OVERHEAD;

/// Length of an agent's key: ChaCha20-Poly1305 takes 256 bits.
pub const KEY_LEN: usize = 32;

/// Length of the ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;

mod field {
    use core::ops::Range;

    pub const VERSION: usize = 0;
    pub const MESSAGE_TYPE: usize = 1;
    pub const AGENT_ID: Range<usize> = 2..6;
    pub const SEQUENCE: Range<usize> = 6..14;

    // Nonce: direction, message type, two zero bytes, sequence.
    pub const NONCE_DIRECTION: usize = 0;
    pub const NONCE_MESSAGE_TYPE: usize = 1;
    pub const NONCE_SEQUENCE: Range<usize> = 4..12;
}

/// An agent's 256-bit key, shared by the agent and the collector. Its `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Wraps the key bytes (as `o365collector agent add` prints them, decoded from hex).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key bytes, for storing the key.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(GenericArray::from_slice(&self.0))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Which way a frame travels; part of the nonce, so the two directions never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Manifests and results, sealed by the agent.
    AgentToCollector = 0,
    /// Acks, sealed by the collector.
    CollectorToAgent = 1,
}

/// What a frame's body is (the header's second byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A chunk of the agent's target manifest ([`super::Manifest`]).
    Manifest = 1,
    /// The results of one probe cycle ([`super::Results`]).
    Results = 2,
    /// The collector's answer naming the frames it took ([`super::Ack`]).
    Ack = 3,
}

impl MessageType {
    /// The type with this wire value, if this version defines it.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Manifest),
            2 => Some(Self::Results),
            3 => Some(Self::Ack),
            _ => None,
        }
    }

    /// Which way frames of this type travel. The collector takes only agent-to-collector frames and the agent
    /// only acks: a genuine frame reflected back at its sender is thereby ignored.
    pub const fn direction(self) -> Direction {
        match self {
            Self::Manifest | Self::Results => Direction::AgentToCollector,
            Self::Ack => Direction::CollectorToAgent,
        }
    }
}

/// The clear header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the body is.
    pub message_type: MessageType,
    /// The agent the frame is from (manifest, results) or for (ack); selects the key.
    pub agent_id: u32,
    /// For the agent's frames, its own counter, never repeated under a key; for acks, the collector's
    /// counter for this agent. With the type and direction it makes the nonce.
    pub sequence: u64,
}

impl Header {
    /// Reads the clear header of a frame, checking only what needs no key: version, length bounds, type.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let version = *frame.first().ok_or(Error::Truncated)?;
        if version != VERSION {
            return Err(Error::UnknownVersion(version));
        }
        if frame.len() < MIN_FRAME_LEN {
            return Err(Error::Truncated);
        }
        if frame.len() > MAX_FRAME_LEN {
            return Err(Error::Oversized);
        }
        let raw_type = frame[field::MESSAGE_TYPE];
        let message_type = MessageType::from_u8(raw_type).ok_or(Error::UnknownType(raw_type))?;
        let mut agent_id = [0; 4];
        agent_id.copy_from_slice(&frame[field::AGENT_ID]);
        let mut sequence = [0; 8];
        sequence.copy_from_slice(&frame[field::SEQUENCE]);
        Ok(Self {
            message_type,
            agent_id: u32::from_be_bytes(agent_id),
            sequence: u64::from_be_bytes(sequence),
        })
    }

    /// The header as it goes on the wire (and into the AEAD as associated data).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[field::VERSION] = VERSION;
        bytes[field::MESSAGE_TYPE] = self.message_type as u8;
        bytes[field::AGENT_ID].copy_from_slice(&self.agent_id.to_be_bytes());
        bytes[field::SEQUENCE].copy_from_slice(&self.sequence.to_be_bytes());
        bytes
    }

    /// The AEAD nonce: direction, message type, two zero bytes, sequence (big-endian). It repeats only if a
    /// sender reuses a sequence, which the spec forbids.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0; NONCE_LEN];
        nonce[field::NONCE_DIRECTION] = self.message_type.direction() as u8;
        nonce[field::NONCE_MESSAGE_TYPE] = self.message_type as u8;
        nonce[field::NONCE_SEQUENCE].copy_from_slice(&self.sequence.to_be_bytes());
        nonce
    }
}

/// Seals `message` as a frame from (or, for an ack, to) `agent_id` with `sequence` into `out`; returns the
/// frame's length. The same arguments always give the same bytes; a sequence must never be sealed with a
/// different body (SPEC.md, "Nonces").
pub fn seal(
    key: &Key,
    agent_id: u32,
    sequence: u64,
    message: &Message,
    out: &mut [u8],
) -> Result<usize> {
    message.validate()?;
    let body_len = message.body_len()?;
    if body_len > MAX_BODY_LEN {
        return Err(Error::Oversized);
    }
    let frame_len = OVERHEAD + body_len;
    let frame = out.get_mut(..frame_len).ok_or(Error::BufferTooSmall)?;
    let header = Header {
        message_type: message.message_type(),
        agent_id,
        sequence,
    };
    let (head, rest) = frame.split_at_mut(HEADER_LEN);
    let (body, tag_out) = rest.split_at_mut(body_len);
    head.copy_from_slice(&header.to_bytes());
    if message.encode(body)? != body_len {
        // The size pass and the encoding pass disagree: a bug in a Serialize impl, not bad input.
        return Err(Error::Invalid);
    }
    let tag = key
        .cipher()
        .encrypt_in_place_detached(GenericArray::from_slice(&header.nonce()), head, body)
        // Only a plaintext longer than ChaCha20's 256 GiB limit fails.
        .map_err(|_| Error::Oversized)?;
    tag_out.copy_from_slice(&tag);
    Ok(frame_len)
}

/// Opens a frame without touching it: the body is decrypted in `scratch`, which needs the body's length
/// (at most [`MAX_BODY_LEN`]). For a collector that stores the sealed bytes as received.
pub fn open(key: &Key, frame: &[u8], scratch: &mut [u8]) -> Result<(Header, Message)> {
    let header = Header::parse(frame)?;
    let (head, rest) = frame.split_at(HEADER_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let plain = scratch.get_mut(..body.len()).ok_or(Error::BufferTooSmall)?;
    plain.copy_from_slice(body);
    decrypt(key, &header, head, plain, tag)?;
    Ok((header, Message::decode(header.message_type, plain)?))
}

/// Opens a frame by decrypting its body in place: afterwards `frame` holds the clear header, the plaintext
/// body and the tag. For a device short of memory.
pub fn open_in_place(key: &Key, frame: &mut [u8]) -> Result<(Header, Message)> {
    let header = Header::parse(frame)?;
    let (head, rest) = frame.split_at_mut(HEADER_LEN);
    let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    decrypt(key, &header, head, body, tag)?;
    Ok((header, Message::decode(header.message_type, body)?))
}

fn decrypt(key: &Key, header: &Header, head: &[u8], body: &mut [u8], tag: &[u8]) -> Result<()> {
    key.cipher()
        .decrypt_in_place_detached(
            GenericArray::from_slice(&header.nonce()),
            head,
            body,
            GenericArray::from_slice(tag),
        )
        .map_err(|_| Error::BadTag)
}
