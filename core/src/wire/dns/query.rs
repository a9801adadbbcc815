//! The query a probe sends: one question, recursion desired, optionally EDNS(0).

use super::cursor::{Reader, Writer};
use super::name::{Compressor, Name, MAX_NAME_WIRE_LEN};
use super::packet::{Opcode, Packet, HEADER_LEN};
use super::record::{read_additional, skip_records, Edns, Question, Type, OPT_LEN};
use super::{emit_tcp, Error, Result, TCP_PREFIX_LEN};

/// The longest query: header, the longest question, an OPT record.
pub const MAX_QUERY_LEN: usize = HEADER_LEN + MAX_NAME_WIRE_LEN + 4 + OPT_LEN;

/// A standard query (opcode QUERY) with one question.
///
/// Reading accepts what other resolvers' clients send (dig sets AD and adds a cookie option); flags
/// other than RD, EDNS options and records outside the question are checked and read past.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// The transaction id; the caller picks it (from the shell's seeded randomness).
    pub id: u16,
    /// RD: ask the server to resolve recursively (what a stub resolver does).
    pub recursion_desired: bool,
    /// What is asked.
    pub question: Question,
    /// EDNS(0), announcing the UDP payload size we can receive. The DO bit is always clear.
    pub edns: Option<Edns>,
}

impl Query {
    /// A recursive query for `name`/`qtype` with EDNS(0) at [`Edns::DEFAULT`].
    pub fn new(id: u16, name: Name, qtype: Type) -> Query {
        Query {
            id,
            recursion_desired: true,
            question: Question { name, qtype },
            edns: Some(Edns::DEFAULT),
        }
    }

    /// Reads a query message.
    pub fn parse(msg: &[u8]) -> Result<Query> {
        let packet = Packet::new_checked(msg)?;
        if packet.is_response() {
            return Err(Error::NotQuery);
        }
        if packet.opcode() != Opcode::Query {
            return Err(Error::Opcode);
        }
        if packet.question_count() != 1 {
            return Err(Error::QuestionCount);
        }
        let mut r = Reader::new(msg, HEADER_LEN);
        if r.at_end() {
            return Err(Error::MissingRecords);
        }
        let question = Question::parse(&mut r)?;
        skip_records(&mut r, packet.answer_count(), false)?;
        skip_records(&mut r, packet.authority_count(), false)?;
        let edns = read_additional(&mut r, packet.additional_count(), false)?.map(|(edns, _)| edns);
        if !r.at_end() {
            return Err(Error::TrailingBytes);
        }
        Ok(Query {
            id: packet.id(),
            recursion_desired: packet.recursion_desired(),
            question,
            edns,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let mut header = [0u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut header[..]);
        p.set_id(self.id);
        p.set_recursion_desired(self.recursion_desired);
        p.set_question_count(1);
        p.set_additional_count(u16::from(self.edns.is_some()));
        w.put(&header)?;
        self.question.emit(w, &mut Compressor::new())?;
        if let Some(edns) = &self.edns {
            edns.emit(w, 0)?;
        }
        Ok(())
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let mut w = Writer::new(None);
        // Counting cannot fail.
        let _ = self.write(&mut w);
        w.position()
    }

    /// Writes the query into the front of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(Some(buf));
        self.write(&mut w)?;
        Ok(w.position())
    }

    /// Octets [`emit_tcp`](Self::emit_tcp) writes.
    pub fn tcp_buffer_len(&self) -> usize {
        TCP_PREFIX_LEN + self.buffer_len()
    }

    /// Writes the query as it goes on a TCP stream, after its two-octet length; returns the total length.
    pub fn emit_tcp(&self, buf: &mut [u8]) -> Result<usize> {
        emit_tcp(buf, |body| self.emit(body))
    }
}

#[cfg(test)]
mod tests {
    use super::super::split_tcp;
    use super::*;

    fn outlook_a() -> Query {
        Query::new(0x4f36, Name::new("outlook.office365.com").unwrap(), Type::A)
    }

    #[test]
    fn emits_what_a_stub_resolver_sends() {
        let q = outlook_a();
        let mut buf = [0u8; MAX_QUERY_LEN];
        let n = q.emit(&mut buf).unwrap();
        assert_eq!(n, q.buffer_len());
        let want = hex::decode(
            concat!(
                "4f36 0100 0001 0000 0000 0001",
                "076f75746c6f6f6b 096f6666696365333635 03636f6d 00 0001 0001",
                "00 0029 04d0 00000000 0000"
            )
            .replace(' ', ""),
        )
        .unwrap();
        assert_eq!(&buf[..n], &want[..]);
    }

    #[test]
    fn tcp_form_has_the_length_in_front() {
        let q = outlook_a();
        let mut buf = [0u8; MAX_QUERY_LEN + 2];
        let n = q.emit_tcp(&mut buf).unwrap();
        assert_eq!(n, q.tcp_buffer_len());
        assert_eq!(usize::from(u16::from_be_bytes([buf[0], buf[1]])), n - 2);
        let (msg, rest) = split_tcp(&buf[..n + 3]).unwrap();
        assert_eq!(Query::parse(msg).unwrap(), q);
        assert_eq!(rest.len(), 3);
        assert_eq!(split_tcp(&buf[..n - 1]), None, "not all of it has arrived");
        assert_eq!(split_tcp(&buf[..1]), None);
        assert_eq!(q.emit_tcp(&mut buf[..1]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn emit_refuses_short_buffers_without_panicking() {
        let q = outlook_a();
        let mut buf = [0u8; MAX_QUERY_LEN];
        for len in 0..q.buffer_len() {
            assert_eq!(q.emit(&mut buf[..len]), Err(Error::BufferTooSmall));
        }
    }

    #[test]
    fn refuses_what_is_not_a_single_question_query() {
        let mut buf = [0u8; MAX_QUERY_LEN];
        let n = outlook_a().emit(&mut buf).unwrap();
        let mut m = buf[..n].to_vec();
        Packet::new_unchecked(&mut m[..]).set_response(true);
        assert_eq!(Query::parse(&m), Err(Error::NotQuery));
        let mut m = buf[..n].to_vec();
        Packet::new_unchecked(&mut m[..]).set_opcode(Opcode::Notify);
        assert_eq!(Query::parse(&m), Err(Error::Opcode));
        let mut m = buf[..n].to_vec();
        Packet::new_unchecked(&mut m[..]).set_question_count(2);
        assert_eq!(Query::parse(&m), Err(Error::QuestionCount));
        let mut m = buf[..n].to_vec();
        m.push(0);
        assert_eq!(Query::parse(&m), Err(Error::TrailingBytes));
        // Class CH (3) instead of IN.
        let mut m = buf[..n].to_vec();
        m[12 + 23 + 3] = 3;
        assert_eq!(Query::parse(&m), Err(Error::Class));
        assert_eq!(Query::parse(&buf[..HEADER_LEN]), Err(Error::MissingRecords));
    }
}
