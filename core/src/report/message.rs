//! The plaintext body of a frame: one of the three messages, encoded with postcard (SPEC.md, "Bodies").

use super::{Ack, Error, Manifest, MessageType, Result, Results, OVERHEAD};
use serde::{Deserialize, Serialize};

/// The body of a frame; the header's message type says which one it is, so the body carries no tag of
/// its own.
// No allocator to box the large variants with; a Message lives briefly, in a frame's worth of code.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A chunk of the agent's target manifest.
    Manifest(Manifest),
    /// The results of one probe cycle.
    Results(Results),
    /// The collector's answer.
    Ack(Ack),
}

impl Message {
    /// The header's message type for this body.
    pub const fn message_type(&self) -> MessageType {
        match self {
            Self::Manifest(_) => MessageType::Manifest,
            Self::Results(_) => MessageType::Results,
            Self::Ack(_) => MessageType::Ack,
        }
    }

    /// Length of the encoded body.
    pub fn body_len(&self) -> Result<usize> {
        match self {
            Self::Manifest(m) => encoded_len(m),
            Self::Results(r) => encoded_len(r),
            Self::Ack(a) => encoded_len(a),
        }
    }

    /// Length of the sealed frame: a message fits in one frame if this is at most
    /// [`super::MAX_FRAME_LEN`].
    pub fn sealed_len(&self) -> Result<usize> {
        Ok(OVERHEAD + self.body_len()?)
    }

    /// Encodes the body (plaintext) into `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        self.validate()?;
        match self {
            Self::Manifest(m) => encode(m, out),
            Self::Results(r) => encode(r, out),
            Self::Ack(a) => encode(a, out),
        }
    }

    /// Decodes a plaintext body of the given type. Every byte must belong to the message.
    pub fn decode(message_type: MessageType, body: &[u8]) -> Result<Self> {
        let message = match message_type {
            MessageType::Manifest => Self::Manifest(decode(body)?),
            MessageType::Results => Self::Results(decode(body)?),
            MessageType::Ack => Self::Ack(decode(body)?),
        };
        message.validate()?;
        Ok(message)
    }

    /// Checks the rules the types cannot express.
    pub(super) fn validate(&self) -> Result<()> {
        match self {
            Self::Manifest(m) => m.validate(),
            Self::Results(r) => r.validate(),
            Self::Ack(_) => Ok(()),
        }
    }
}

pub(super) fn encoded_len<T: Serialize>(value: &T) -> Result<usize> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .map_err(|_| Error::Invalid)
}

fn encode<T: Serialize>(value: &T, out: &mut [u8]) -> Result<usize> {
    match postcard::to_slice(value, out) {
        Ok(used) => Ok(used.len()),
        Err(postcard::Error::SerializeBufferFull) => Err(Error::BufferTooSmall),
        Err(_) => Err(Error::Invalid),
    }
}

fn decode<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T> {
    match postcard::take_from_bytes(body) {
        Ok((value, [])) => Ok(value),
        _ => Err(Error::Body),
    }
}
