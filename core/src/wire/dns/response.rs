//! The response a probe reads: flags, rcode (extended by EDNS), the echoed question and the answer
//! records it keeps; authority and additional sections are checked and read past.

use super::chain::{resolve, Chain};
use super::cursor::{Reader, Writer};
use super::name::{Compressor, MAX_NAME_WIRE_LEN};
use super::packet::{Opcode, Packet, Rcode, HEADER_LEN};
use super::query::Query;
use super::record::{
    read_additional, read_records, skip_records, Edns, Question, Record, Type, OPT_LEN,
};
use super::{emit_tcp, Error, Result, TCP_PREFIX_LEN};
use heapless::Vec;

/// The most A, AAAA, CNAME and TXT records one response may answer with. Microsoft 365 names resolve
/// through three or four CNAMEs to one or two addresses; sixteen leaves room for round-robin sets.
pub const MAX_ANSWERS: usize = 16;

/// The longest response [`Response::emit`] can write: every answer at its largest, uncompressed.
pub const MAX_RESPONSE_LEN: usize =
    HEADER_LEN + MAX_NAME_WIRE_LEN + 4 + MAX_ANSWERS * Record::MAX_LEN + OPT_LEN;

/// A response to a standard query (opcode QUERY).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Response {
    /// The transaction id (must match the query's).
    pub id: u16,
    /// AA: the answer comes from an authoritative server, not a resolver's cache.
    pub authoritative: bool,
    /// TC: cut to fit UDP; ask again over TCP. The answers hold what arrived.
    pub truncated: bool,
    /// RD, echoed from the query.
    pub recursion_desired: bool,
    /// RA: the server offers recursion.
    pub recursion_available: bool,
    /// AD: the resolver validated the answer with DNSSEC.
    pub authentic_data: bool,
    /// The response code, with the upper 8 bits from the OPT record when there is one (12 bits).
    pub rcode: Rcode,
    /// The question, echoed (servers may leave it out of some errors).
    pub question: Option<Question>,
    /// The A, AAAA, CNAME and TXT records of class IN in the answer section, in order.
    pub answers: Vec<Record, MAX_ANSWERS>,
    /// Answer records of other types or classes: counted when read, not kept; `emit` writes none.
    pub skipped: u16,
    /// EDNS(0) from the responder's OPT record.
    pub edns: Option<Edns>,
}

impl Response {
    /// An empty NOERROR answer to `query`, as a recursive resolver starts one: id, RD and the question
    /// echoed, RA set, EDNS(0) at [`Edns::DEFAULT`] if the query had it.
    pub fn reply_to(query: &Query) -> Response {
        Response {
            id: query.id,
            authoritative: false,
            truncated: false,
            recursion_desired: query.recursion_desired,
            recursion_available: true,
            authentic_data: false,
            rcode: Rcode::NoError,
            question: Some(query.question.clone()),
            answers: Vec::new(),
            skipped: 0,
            edns: query.edns.map(|_| Edns::DEFAULT),
        }
    }

    /// Reads a response message.
    pub fn parse(msg: &[u8]) -> Result<Response> {
        let packet = Packet::new_checked(msg)?;
        if !packet.is_response() {
            return Err(Error::NotResponse);
        }
        if packet.opcode() != Opcode::Query {
            return Err(Error::Opcode);
        }
        let mut r = Reader::new(msg, HEADER_LEN);
        let question = match packet.question_count() {
            0 => None,
            1 if r.at_end() => return Err(Error::MissingRecords),
            1 => Some(Question::parse(&mut r)?),
            _ => return Err(Error::QuestionCount),
        };
        let cut_ok = packet.truncated();
        let mut answers = Vec::new();
        let mut skipped = 0u16;
        read_records(&mut r, packet.answer_count(), cut_ok, |raw| {
            if raw.rtype == Type::Opt {
                return Err(Error::MisplacedOpt);
            }
            match raw.decode(msg)? {
                Some(record) => answers.push(record).map_err(|_| Error::TooManyAnswers),
                None => {
                    // At most ANCOUNT, a u16.
                    skipped = skipped.saturating_add(1);
                    Ok(())
                }
            }
        })?;
        skip_records(&mut r, packet.authority_count(), cut_ok)?;
        let opt = read_additional(&mut r, packet.additional_count(), cut_ok)?;
        if !r.at_end() {
            return Err(Error::TrailingBytes);
        }
        let extended = opt.map_or(0, |(_, upper)| u16::from(upper) << 4);
        Ok(Response {
            id: packet.id(),
            authoritative: packet.authoritative(),
            truncated: packet.truncated(),
            recursion_desired: packet.recursion_desired(),
            recursion_available: packet.recursion_available(),
            authentic_data: packet.authentic_data(),
            rcode: Rcode::from(extended | u16::from(packet.rcode())),
            question,
            answers,
            skipped,
            edns: opt.map(|(edns, _)| edns),
        })
    }

    /// Whether this answers `query`: same id, and the same question (name compared ignoring case).
    pub fn is_answer_to(&self, query: &Query) -> bool {
        self.id == query.id && self.question.as_ref() == Some(&query.question)
    }

    /// The CNAME chain from the question's name, and the final name's records (see [`resolve`]).
    pub fn chain(&self) -> Result<Chain<'_>> {
        let question = self.question.as_ref().ok_or(Error::QuestionCount)?;
        resolve(&question.name, &self.answers)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let rcode = u16::from(self.rcode);
        let mut header = [0u8; HEADER_LEN];
        let mut p = Packet::new_unchecked(&mut header[..]);
        p.set_id(self.id);
        p.set_response(true);
        p.set_authoritative(self.authoritative);
        p.set_truncated(self.truncated);
        p.set_recursion_desired(self.recursion_desired);
        p.set_recursion_available(self.recursion_available);
        p.set_authentic_data(self.authentic_data);
        p.set_rcode(self.rcode);
        p.set_question_count(u16::from(self.question.is_some()));
        // At most MAX_ANSWERS.
        p.set_answer_count(self.answers.len() as u16);
        p.set_additional_count(u16::from(self.edns.is_some()));
        w.put(&header)?;
        let mut c = Compressor::new();
        if let Some(q) = &self.question {
            q.emit(w, &mut c)?;
        }
        for record in &self.answers {
            record.emit(w, &mut c)?;
        }
        if let Some(edns) = &self.edns {
            // `emit` checked that the upper bits fit 8.
            edns.emit(w, (rcode >> 4) as u8)?;
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

    /// Writes the response into the front of `buf` (names compressed); returns its length. An rcode
    /// above 15 needs `edns` to carry its upper bits.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let rcode = u16::from(self.rcode);
        if rcode > 0xFFF || (rcode > 0xF && self.edns.is_none()) {
            return Err(Error::RcodeUnencodable);
        }
        let mut w = Writer::new(Some(buf));
        self.write(&mut w)?;
        Ok(w.position())
    }

    /// Octets [`emit_tcp`](Self::emit_tcp) writes.
    pub fn tcp_buffer_len(&self) -> usize {
        TCP_PREFIX_LEN + self.buffer_len()
    }

    /// Writes the response as it goes on a TCP stream, after its two-octet length; returns the total.
    pub fn emit_tcp(&self, buf: &mut [u8]) -> Result<usize> {
        emit_tcp(buf, |body| self.emit(body))
    }
}
