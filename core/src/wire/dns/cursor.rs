//! Checked reading and writing at an offset in a message: every read past the end is an error, and a
//! writer without a buffer only counts, so `buffer_len` and `emit` share one code path.

use super::name::{read_name, skip_name, Name};
use super::{Error, Result};

/// Reads fields front to back; names may point anywhere earlier in `packet`.
pub(super) struct Reader<'p> {
    packet: &'p [u8],
    pos: usize,
}

impl<'p> Reader<'p> {
    pub(super) fn new(packet: &'p [u8], pos: usize) -> Self {
        Reader { packet, pos }
    }

    pub(super) fn packet(&self) -> &'p [u8] {
        self.packet
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.packet.len()
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'p [u8]> {
        let bytes = self
            .packet
            .get(self.pos..self.pos + n)
            .ok_or(Error::Truncated)?;
        self.pos += n;
        Ok(bytes)
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn name(&mut self) -> Result<Name> {
        let (name, end) = read_name(self.packet, self.pos, self.packet.len(), Error::Truncated)?;
        self.pos = end;
        Ok(name)
    }

    pub(super) fn skip_name(&mut self) -> Result<()> {
        self.pos = skip_name(self.packet, self.pos, self.packet.len(), Error::Truncated)?;
        Ok(())
    }
}

/// Writes fields front to back into `buf`, or only counts them when there is no buffer.
pub(super) struct Writer<'b> {
    buf: Option<&'b mut [u8]>,
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(super) fn new(buf: Option<&'b mut [u8]>) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.get_mut(self.pos..end)
                .ok_or(Error::BufferTooSmall)?
                .copy_from_slice(bytes);
        }
        self.pos = end;
        Ok(())
    }

    pub(super) fn put_u8(&mut self, value: u8) -> Result<()> {
        self.put(&[value])
    }

    pub(super) fn put_u16(&mut self, value: u16) -> Result<()> {
        self.put(&value.to_be_bytes())
    }

    pub(super) fn put_u32(&mut self, value: u32) -> Result<()> {
        self.put(&value.to_be_bytes())
    }

    /// Overwrites two octets written earlier (a length known only after what it measures).
    pub(super) fn patch_u16(&mut self, at: usize, value: u16) -> Result<()> {
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.get_mut(at..at + 2)
                .ok_or(Error::BufferTooSmall)?
                .copy_from_slice(&value.to_be_bytes());
        }
        Ok(())
    }
}
