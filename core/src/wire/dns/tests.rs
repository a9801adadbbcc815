//! Tests on real captured messages (core/tests/fixtures/dns/, README there), hand-made hostile messages,
//! and properties over generated ones.

use super::*;
use core::net::{Ipv4Addr, Ipv6Addr};
use std::string::String;
use std::vec::Vec;

macro_rules! fixture {
    ($file:literal) => {
        (
            $file,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/dns/",
                $file
            ))
            .as_slice(),
        )
    };
}

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// Our queries that the fixture responses answer; their ids are fixed so responses can be matched.
fn fixture_queries() -> [((&'static str, &'static [u8]), Query); 7] {
    [
        (
            fixture!("query_outlook_a.bin"),
            Query::new(0x0a01, name("outlook.office365.com"), Type::A),
        ),
        (
            fixture!("query_outlook_aaaa.bin"),
            Query::new(0x0a02, name("outlook.office365.com"), Type::Aaaa),
        ),
        (
            fixture!("query_whoami_a.bin"),
            Query::new(0x0a03, name("whoami.akamai.net"), Type::A),
        ),
        (
            fixture!("query_myaddr_txt.bin"),
            Query::new(0x0a04, name("o-o.myaddr.l.google.com"), Type::Txt),
        ),
        (
            fixture!("query_nxdomain.bin"),
            Query::new(0x0a05, name("nosuch.office365.com"), Type::A),
        ),
        // No EDNS: the 512-octet UDP limit applies, and the answer does not fit it.
        (
            fixture!("query_big_txt.bin"),
            Query {
                edns: None,
                ..Query::new(0x0a06, name("big.office365.com"), Type::Txt)
            },
        ),
        // Letter case as a 0x20-randomising stub would send it.
        (
            fixture!("query_mixed_case_a.bin"),
            Query::new(0x0a07, name("OutLook.Office365.COM"), Type::A),
        ),
    ]
}

/// The query fixtures are golden vectors of our emitter. `DNS_FIXTURES_BLESS=1` rewrites them (then
/// re-run lab/capture.py, since the responses answer these exact queries).
#[test]
fn our_queries_are_the_fixture_queries() {
    for ((file, bytes), query) in fixture_queries() {
        let mut buf = [0u8; MAX_QUERY_LEN];
        let n = query.emit(&mut buf).unwrap();
        if std::env::var_os("DNS_FIXTURES_BLESS").is_some() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/dns")
                .join(file);
            std::fs::write(path, &buf[..n]).unwrap();
            continue;
        }
        assert_eq!(&buf[..n], bytes, "{file}");
        assert_eq!(Query::parse(bytes).unwrap(), query, "{file}");
    }
}

fn response(bytes: &[u8]) -> Response {
    Response::parse(bytes).unwrap()
}

/// Every fixture response survives emit and parse unchanged, at the length `buffer_len` says.
fn assert_round_trips(r: &Response) {
    let mut buf = [0u8; MAX_RESPONSE_LEN];
    let kept = Response {
        skipped: 0,
        ..r.clone()
    };
    let n = kept.emit(&mut buf).unwrap();
    assert_eq!(n, kept.buffer_len());
    let again = Response::parse(&buf[..n]).unwrap();
    assert_eq!(again, kept);
    let texts = |r: &Response| {
        r.answers
            .iter()
            .map(|a| String::from(a.name.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&again), texts(&kept), "letter case survives");
}

fn addresses(chain: &Chain<'_>) -> Vec<(core::net::IpAddr, u32)> {
    chain.addresses().collect()
}

fn chain_names(chain: &Chain<'_>) -> Vec<String> {
    chain
        .names()
        .iter()
        .map(|n| String::from(n.as_str()))
        .collect()
}

const OUTLOOK_CHAIN: [&str; 4] = [
    "outlook.office365.com",
    "outlook.ha.office365.com",
    "outlook.ms-acdc.office.com",
    "lhr-efz.ms-acdc.office.com",
];

#[test]
fn resolver_answer_leads_through_the_chain_to_the_front_door() {
    let (_, bytes) = fixture!("response_outlook_a.bin");
    let (query, r) = (&fixture_queries()[0].1, response(bytes));
    assert!(r.is_answer_to(query));
    assert_eq!(r.rcode, Rcode::NoError);
    assert!(r.recursion_available && r.recursion_desired && !r.authoritative && !r.truncated);
    assert_eq!(
        r.edns,
        Some(Edns {
            udp_payload_size: 1232
        })
    );
    assert_eq!((r.answers.len(), r.skipped), (4, 0));
    let chain = r.chain().unwrap();
    assert_eq!(chain_names(&chain), OUTLOOK_CHAIN);
    assert_eq!(
        chain.cnames().iter().map(|c| c.ttl).collect::<Vec<_>>(),
        [300, 300, 300]
    );
    // NSD keeps zone names in lower case: the front-door code is read ignoring case.
    let door = chain.final_name().first_label().unwrap();
    assert!(door.split('-').next().unwrap().eq_ignore_ascii_case("LHR"));
    assert_eq!(
        addresses(&chain),
        [(Ipv4Addr::new(203, 0, 113, 10).into(), 30)]
    );
    assert_round_trips(&r);
}

#[test]
fn resolver_echoes_our_letter_case_and_matching_ignores_it() {
    let (_, bytes) = fixture!("response_mixed_case_a.bin");
    let r = response(bytes);
    let query = &fixture_queries()[6].1;
    assert!(r.is_answer_to(query));
    assert!(r.is_answer_to(&Query {
        id: query.id,
        ..fixture_queries()[0].1.clone()
    }));
    assert_eq!(
        r.question.as_ref().unwrap().name.as_str(),
        "OutLook.Office365.COM"
    );
    let chain = r.chain().unwrap();
    // unbound compressed the CNAME target against our question, so it carries our case too.
    assert_eq!(chain.names()[1].as_str(), "outlook.ha.Office365.COM");
    let lower: Vec<String> = chain_names(&chain)
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    assert_eq!(lower, OUTLOOK_CHAIN);
    assert_eq!(
        addresses(&chain),
        [(Ipv4Addr::new(203, 0, 113, 10).into(), 30)]
    );
    assert_round_trips(&r);
}

#[test]
fn resolver_aaaa_answer() {
    let (_, bytes) = fixture!("response_outlook_aaaa.bin");
    let r = response(bytes);
    assert!(r.is_answer_to(&fixture_queries()[1].1));
    let chain = r.chain().unwrap();
    assert_eq!(chain_names(&chain), OUTLOOK_CHAIN);
    assert_eq!(
        addresses(&chain),
        [(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).into(), 30)]
    );
    assert_round_trips(&r);
}

#[test]
fn resolver_identity_answers() {
    let (_, bytes) = fixture!("response_whoami_a.bin");
    let r = response(bytes);
    assert!(r.is_answer_to(&fixture_queries()[2].1));
    let chain = r.chain().unwrap();
    assert_eq!(chain_names(&chain), ["whoami.akamai.net"]);
    assert_eq!(
        addresses(&chain),
        [(Ipv4Addr::new(198, 51, 100, 53).into(), 180)]
    );
    assert_round_trips(&r);

    let (_, bytes) = fixture!("response_myaddr_txt.bin");
    let r = response(bytes);
    assert!(r.is_answer_to(&fixture_queries()[3].1));
    let chain = r.chain().unwrap();
    assert_eq!(chain.addresses().count(), 0);
    let txt: Vec<(Vec<&[u8]>, u32)> = chain
        .txt()
        .map(|(t, ttl)| (t.strings().collect(), ttl))
        .collect();
    assert_eq!(
        txt,
        [
            (std::vec![&b"198.51.100.53"[..]], 60),
            (
                std::vec![&b"edns0-client-subnet"[..], b"203.0.113.0/24"],
                60
            )
        ]
    );
    assert_round_trips(&r);
}

#[test]
fn nxdomain_with_its_soa_in_the_authority_section() {
    let (_, bytes) = fixture!("response_nxdomain.bin");
    let r = response(bytes);
    assert!(r.is_answer_to(&fixture_queries()[4].1));
    assert_eq!(r.rcode, Rcode::NxDomain);
    assert_eq!(Packet::new_checked(bytes).unwrap().authority_count(), 1);
    assert!(r.answers.is_empty());
    assert_eq!(chain_names(&r.chain().unwrap()), ["nosuch.office365.com"]);
    assert_round_trips(&r);
}

#[test]
fn too_big_for_udp_is_truncated_and_whole_over_tcp() {
    let (_, udp) = fixture!("response_big_txt_udp.bin");
    let query = &fixture_queries()[5].1;
    let r = response(udp);
    assert!(r.truncated && r.is_answer_to(query));
    assert!(r.answers.is_empty());
    assert_round_trips(&r);

    let (_, stream) = fixture!("response_big_txt_tcp.bin");
    let (msg, rest) = split_tcp(stream).unwrap();
    assert!(rest.is_empty());
    let r = response(msg);
    assert!(!r.truncated && r.is_answer_to(query));
    assert!(
        msg.len() > 512,
        "over 512 octets: why UDP could not carry it"
    );
    let chain = r.chain().unwrap();
    let firsts: Vec<(u8, usize)> = chain
        .txt()
        .map(|(t, _)| t.strings().next().map(|s| (s[0], s.len())).unwrap())
        .collect();
    assert_eq!(firsts, [(b'a', 200), (b'b', 200), (b'c', 200), (b'd', 200)]);
    let mut buf = [0u8; MAX_RESPONSE_LEN + TCP_PREFIX_LEN];
    let n = r.emit_tcp(&mut buf).unwrap();
    assert_eq!(n, r.tcp_buffer_len());
    assert_eq!(response(split_tcp(&buf[..n]).unwrap().0), r);
}

#[test]
fn authoritative_answer_with_authority_and_glue() {
    let (_, bytes) = fixture!("response_outlook_a_nsd.bin");
    let p = Packet::new_checked(bytes).unwrap();
    assert_eq!(
        (p.authority_count(), p.additional_count()),
        (1, 2),
        "NS, then glue A and OPT"
    );
    let r = response(bytes);
    assert!(r.authoritative && !r.recursion_available);
    assert_eq!(
        r.answers.len(),
        4,
        "NSD follows the chain through both zones it serves"
    );
    assert_eq!(chain_names(&r.chain().unwrap()), OUTLOOK_CHAIN);
    assert_eq!(r.edns, Some(Edns::DEFAULT));
    assert_round_trips(&r);
}

#[test]
fn digs_query_parses() {
    let (_, bytes) = fixture!("dig_query.bin");
    let q = Query::parse(bytes).unwrap();
    assert_eq!(q.id, Packet::new_checked(bytes).unwrap().id());
    assert!(q.recursion_desired);
    assert_eq!(
        q.question,
        Question {
            name: name("outlook.office365.com"),
            qtype: Type::A
        }
    );
    assert_eq!(
        q.edns,
        Some(Edns {
            udp_payload_size: 1232
        }),
        "dig 9.18's OPT, cookie option read past"
    );
    assert_eq!(Response::parse(bytes), Err(Error::NotResponse));
    let (_, answer) = fixture!("response_outlook_a.bin");
    assert_eq!(Query::parse(answer), Err(Error::NotQuery));
}

// ---- hostile messages, each refused with its own error ----

/// A response header (QR, RD, RA) with the given counts, then `body`.
fn message(counts: [u16; 4], body: &[u8]) -> Vec<u8> {
    let mut m = std::vec![0u8; HEADER_LEN];
    let mut p = Packet::new_unchecked(&mut m[..]);
    p.set_id(7);
    p.set_response(true);
    p.set_recursion_desired(true);
    p.set_recursion_available(true);
    p.set_question_count(counts[0]);
    p.set_answer_count(counts[1]);
    p.set_authority_count(counts[2]);
    p.set_additional_count(counts[3]);
    m.extend_from_slice(body);
    m
}

/// "a.example" A IN at offset 12.
const QUESTION: &[u8] = b"\x01a\x07example\x00\x00\x01\x00\x01";

/// A record owned by the question's name (pointer to 12): type, class IN, TTL 60, `rdata`.
fn record(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = std::vec![0xC0, 12];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

fn with_answers(records: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = QUESTION
        .iter()
        .copied()
        .chain(records.iter().flatten().copied())
        .collect();
    message([1, records.len() as u16, 0, 0], &body)
}

#[test]
fn hand_made_valid_message_parses() {
    // The baseline the hostile variants below differ from by one thing each.
    let r = Response::parse(&with_answers(&[record(1, &[192, 0, 2, 1])])).unwrap();
    assert_eq!(
        r.answers[0].data,
        RecordData::A(Ipv4Addr::new(192, 0, 2, 1))
    );
    assert_eq!(r.answers[0].name.as_str(), "a.example");
}

#[test]
fn hostile_names_in_messages() {
    let q = |name: &[u8]| message([1, 0, 0, 0], &[name, &b"\x00\x01\x00\x01"[..]].concat());
    assert_eq!(
        Response::parse(&q(b"\xC0\x0C")),
        Err(Error::PointerLoop),
        "pointer to itself"
    );
    assert_eq!(
        Response::parse(&q(b"\xC0\xFF")),
        Err(Error::PointerOutOfBounds)
    );
    assert_eq!(
        Response::parse(&q(b"\xC0\x10\x01a\x00")),
        Err(Error::ForwardPointer)
    );
    assert_eq!(
        Response::parse(&q(&[&[64u8][..], &[b'x'; 64], b"\x00"].concat())),
        Err(Error::LabelTooLong)
    );
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(60);
        long.extend_from_slice(&[b'x'; 60]);
    }
    long.push(0);
    assert_eq!(Response::parse(&q(&long)), Err(Error::NameTooLong));
    assert_eq!(
        Response::parse(&q(b"\x03a\x01b\x00")),
        Err(Error::LabelByte)
    );
}

#[test]
fn two_step_pointer_loop_through_two_records() {
    // The question is 12..27. Answer 1 (27..43) is an A record whose RDATA (39..43) begins with a
    // pointer to 43; answer 2's owner at 43 points back to 39: 43 -> 39 -> 43.
    let answer1 = record(1, &[0xC0, 43, 0, 0]);
    let mut answer2 = record(1, &[192, 0, 2, 1]);
    answer2[1] = 39;
    assert_eq!(
        Response::parse(&with_answers(&[answer1, answer2])),
        Err(Error::PointerLoop)
    );
}

#[test]
fn hostile_counts_and_lengths() {
    // Counts larger than the packet.
    let m = message(
        [1, 2, 0, 0],
        &[QUESTION, &record(1, &[192, 0, 2, 1])].concat(),
    );
    assert_eq!(Response::parse(&m), Err(Error::MissingRecords));
    assert_eq!(
        Response::parse(&message([1, 0, 0, 0], b"")),
        Err(Error::MissingRecords)
    );
    assert_eq!(
        Response::parse(&message([1, 0, 0, 1], QUESTION)),
        Err(Error::MissingRecords)
    );
    assert_eq!(
        Response::parse(&message([2, 0, 0, 0], QUESTION)),
        Err(Error::QuestionCount)
    );
    // Truncated RDATA: RDLENGTH 4, three octets left.
    let mut m = with_answers(&[record(1, &[192, 0, 2, 1])]);
    m.pop();
    assert_eq!(Response::parse(&m), Err(Error::RdataTruncated));
    // Cut inside the fixed fields.
    let m = with_answers(&[record(1, &[192, 0, 2, 1])]);
    assert_eq!(Response::parse(&m[..m.len() - 8]), Err(Error::Truncated));
    // RDLENGTH that does not fit the type.
    assert_eq!(
        Response::parse(&with_answers(&[record(1, &[192, 0, 2, 1, 0])])),
        Err(Error::RdataLength)
    );
    assert_eq!(
        Response::parse(&with_answers(&[record(28, &[0; 4])])),
        Err(Error::RdataLength)
    );
    assert_eq!(
        Response::parse(&with_answers(&[record(28, &[0; 17])])),
        Err(Error::RdataLength)
    );
    // A CNAME whose name ends before RDLENGTH, or runs past it.
    assert_eq!(
        Response::parse(&with_answers(&[record(5, b"\x01b\xC0\x0C\x00")])),
        Err(Error::RdataLength)
    );
    assert_eq!(
        Response::parse(&with_answers(&[record(5, b"\x01b\xC0")])),
        Err(Error::RdataLength)
    );
    assert_eq!(
        Response::parse(&with_answers(&[record(16, b"\x05ab")])),
        Err(Error::RdataLength)
    );
    assert_eq!(
        Response::parse(&with_answers(&[record(16, &[0; 300])])),
        Err(Error::TxtTooLong)
    );
    // Octets after the last record.
    let mut m = with_answers(&[record(1, &[192, 0, 2, 1])]);
    m.push(0);
    assert_eq!(Response::parse(&m), Err(Error::TrailingBytes));
    let too_many: Vec<Vec<u8>> = (0..=MAX_ANSWERS as u8)
        .map(|i| record(1, &[192, 0, 2, i]))
        .collect();
    assert_eq!(
        Response::parse(&with_answers(&too_many)),
        Err(Error::TooManyAnswers)
    );
    assert_eq!(
        Response::parse(&with_answers(&too_many[1..]))
            .unwrap()
            .answers
            .len(),
        MAX_ANSWERS
    );
}

#[test]
fn truncated_udp_answers_may_stop_at_a_record_boundary() {
    let mut m = message(
        [1, 3, 0, 1],
        &[QUESTION, &record(1, &[192, 0, 2, 1])].concat(),
    );
    assert_eq!(Response::parse(&m), Err(Error::MissingRecords));
    Packet::new_unchecked(&mut m[..]).set_truncated(true);
    let r = Response::parse(&m).unwrap();
    assert!(r.truncated);
    assert_eq!(r.answers.len(), 1);
    // ... but not inside a record.
    assert_eq!(
        Response::parse(&m[..m.len() - 1]),
        Err(Error::RdataTruncated)
    );
}

#[test]
fn other_types_and_classes_are_skipped_and_counted() {
    let mut chaos = record(16, b"\x03bind");
    chaos[5] = 3; // class CH
    let m = with_answers(&[
        record(46, &[1, 2, 3]),
        record(1, &[192, 0, 2, 1]),
        chaos,
        record(65, &[]),
    ]);
    let r = Response::parse(&m).unwrap();
    assert_eq!((r.answers.len(), r.skipped), (1, 3));
}

#[test]
fn edns_opt_record_rules() {
    let opt = |ext_rcode: u8, rdata: &[u8]| -> Vec<u8> {
        let mut r = std::vec![0, 0, 41, 0x04, 0xd0, ext_rcode, 0, 0, 0];
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        r
    };
    // Extended rcode: upper 8 bits in the OPT TTL, lower 4 in the header. 1 << 4 | 0 = BADVERS.
    let m = message([1, 0, 0, 1], &[QUESTION, &opt(1, &[])].concat());
    let r = Response::parse(&m).unwrap();
    assert_eq!(r.rcode, Rcode::BadVers);
    assert_round_trips(&r);
    assert_eq!(
        Response { edns: None, ..r }.emit(&mut [0u8; 512]),
        Err(Error::RcodeUnencodable)
    );
    // Options must fill the RDATA exactly: a cookie option (10) of 8 octets, then a cut one.
    let cookie = b"\x00\x0a\x00\x08abcdefgh";
    assert!(Response::parse(&message(
        [1, 0, 0, 1],
        &[QUESTION, &opt(0, cookie)].concat()
    ))
    .is_ok());
    let cut = &cookie[..cookie.len() - 1];
    assert_eq!(
        Response::parse(&message([1, 0, 0, 1], &[QUESTION, &opt(0, cut)].concat())),
        Err(Error::RdataLength)
    );
    let two = [QUESTION, &opt(0, &[]), &opt(0, &[])].concat();
    assert_eq!(
        Response::parse(&message([1, 0, 0, 2], &two)),
        Err(Error::DuplicateOpt)
    );
    assert_eq!(
        Response::parse(&message([1, 1, 0, 0], &[QUESTION, &opt(0, &[])].concat())),
        Err(Error::MisplacedOpt)
    );
    assert_eq!(
        Response::parse(&message([1, 0, 1, 0], &[QUESTION, &opt(0, &[])].concat())),
        Err(Error::MisplacedOpt)
    );
    let mut owned = std::vec![0xC0, 12];
    owned.extend_from_slice(&opt(0, &[])[1..]);
    assert_eq!(
        Response::parse(&message([1, 0, 0, 1], &[QUESTION, &owned].concat())),
        Err(Error::OptName)
    );
}

#[test]
fn emit_checks_its_buffer_and_rcode() {
    let (_, bytes) = fixture!("response_outlook_a.bin");
    let r = response(bytes);
    let mut buf = [0u8; 512];
    let n = r.buffer_len();
    for len in [0, HEADER_LEN, n - 1] {
        assert_eq!(r.emit(&mut buf[..len]), Err(Error::BufferTooSmall));
    }
    assert_eq!(r.emit(&mut buf[..n]), Ok(n));
    let over = Response {
        rcode: Rcode::Unknown(0x1000),
        ..r
    };
    assert_eq!(over.emit(&mut buf), Err(Error::RcodeUnencodable));
}

#[test]
fn reply_to_builds_what_a_resolver_sends() {
    let query = Query::new(9, name("LHR-efz.ms-acdc.office.com"), Type::A);
    let mut r = Response::reply_to(&query);
    r.answers
        .push(Record {
            name: query.question.name.clone(),
            ttl: 30,
            data: RecordData::A(Ipv4Addr::new(203, 0, 113, 10)),
        })
        .unwrap();
    let mut buf = [0u8; MAX_RESPONSE_LEN];
    let n = r.emit(&mut buf).unwrap();
    let back = Response::parse(&buf[..n]).unwrap();
    assert!(back.is_answer_to(&query));
    assert!(!back.is_answer_to(&Query {
        id: 10,
        ..query.clone()
    }));
    assert!(!back.is_answer_to(&Query::new(
        9,
        name("LHR-efz.ms-acdc.office.com"),
        Type::Aaaa
    )));
    assert_eq!(
        addresses(&back.chain().unwrap()),
        [(Ipv4Addr::new(203, 0, 113, 10).into(), 30)]
    );
}

// ---- properties ----

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Names that share suffixes often (so compression is exercised) and random ones.
    fn arb_name() -> impl Strategy<Value = Name> {
        let suffix = prop::sample::select(
            &[
                "",
                "office.com",
                "ms-acdc.office.com",
                "office365.com",
                "net",
            ][..],
        );
        let shared = (prop::collection::vec("[a-zA-Z0-9_-]{1,12}", 0..3), suffix).prop_filter_map(
            "valid name",
            |(labels, suffix)| {
                let mut text = labels.join(".");
                if !suffix.is_empty() {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(suffix);
                }
                Name::new(&text).ok()
            },
        );
        let random = prop::collection::vec("[!-~&&[^.]]{1,63}", 0..4)
            .prop_filter_map("valid name", |labels| Name::new(&labels.join(".")).ok());
        prop_oneof![shared, random]
    }

    fn arb_txt() -> impl Strategy<Value = Txt> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 1..4).prop_filter_map(
            "fits",
            |strings| {
                let mut txt = Txt::new(&strings[0]).ok()?;
                for s in &strings[1..] {
                    txt.push(s).ok()?;
                }
                Some(txt)
            },
        )
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        let data = prop_oneof![
            any::<u32>().prop_map(|a| RecordData::A(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| RecordData::Aaaa(Ipv6Addr::from(a))),
            arb_name().prop_map(RecordData::Cname),
            arb_txt().prop_map(RecordData::Txt),
        ];
        (arb_name(), any::<u32>(), data).prop_map(|(name, ttl, data)| Record { name, ttl, data })
    }

    fn arb_question() -> impl Strategy<Value = Question> {
        (arb_name(), any::<u16>()).prop_map(|(name, t)| Question {
            name,
            qtype: Type::from(t),
        })
    }

    fn arb_edns() -> impl Strategy<Value = Option<Edns>> {
        prop::option::of(any::<u16>().prop_map(|udp_payload_size| Edns { udp_payload_size }))
    }

    fn arb_query() -> impl Strategy<Value = Query> {
        (any::<u16>(), any::<bool>(), arb_question(), arb_edns()).prop_map(
            |(id, rd, question, edns)| Query {
                id,
                recursion_desired: rd,
                question,
                edns,
            },
        )
    }

    fn arb_response() -> impl Strategy<Value = Response> {
        (
            any::<u16>(),
            any::<[bool; 5]>(),
            0u16..=0xFFF,
            prop::option::of(arb_question()),
            prop::collection::vec(arb_record(), 0..=MAX_ANSWERS),
            arb_edns(),
        )
            .prop_map(
                |(id, [aa, tc, rd, ra, ad], rcode, question, answers, edns)| Response {
                    id,
                    authoritative: aa,
                    truncated: tc,
                    recursion_desired: rd,
                    recursion_available: ra,
                    authentic_data: ad,
                    // Without EDNS only the header's 4 bits exist.
                    rcode: Rcode::from(if edns.is_some() { rcode } else { rcode & 0xF }),
                    question,
                    answers: answers.into_iter().collect(),
                    skipped: 0,
                    edns,
                },
            )
    }

    fn names_text(r: &Response) -> Vec<String> {
        let mut v: Vec<String> = r.question.iter().map(|q| q.name.as_str().into()).collect();
        for a in &r.answers {
            v.push(a.name.as_str().into());
            if let RecordData::Cname(t) = &a.data {
                v.push(t.as_str().into());
            }
        }
        v
    }

    proptest! {
        #[test]
        fn query_round_trips(q in arb_query()) {
            let mut buf = [0u8; MAX_QUERY_LEN + TCP_PREFIX_LEN];
            let n = q.emit(&mut buf).unwrap();
            prop_assert_eq!(n, q.buffer_len());
            let back = Query::parse(&buf[..n]).unwrap();
            prop_assert_eq!(back.question.name.as_str(), q.question.name.as_str());
            prop_assert_eq!(back, q.clone());
            prop_assert_eq!(q.emit(&mut buf[..n - 1]), Err(Error::BufferTooSmall));
            let n = q.emit_tcp(&mut buf).unwrap();
            prop_assert_eq!(Query::parse(split_tcp(&buf[..n]).unwrap().0).unwrap(), q);
        }

        #[test]
        fn response_round_trips(r in arb_response()) {
            let mut buf = [0u8; MAX_RESPONSE_LEN];
            let n = r.emit(&mut buf).unwrap();
            prop_assert_eq!(n, r.buffer_len());
            let back = Response::parse(&buf[..n]).unwrap();
            prop_assert_eq!(names_text(&back), names_text(&r));
            prop_assert_eq!(back, r.clone());
            prop_assert_eq!(r.emit(&mut buf[..n - 1]), Err(Error::BufferTooSmall));
        }

        #[test]
        fn chains_resolve_whatever_the_answer_order(
            len in 1..MAX_CHAIN,
            extra in prop::collection::vec(arb_record(), 0..4),
            seed in any::<u64>(),
        ) {
            let names: Vec<Name> = (0..len).map(|i| name(&std::format!("hop{i}.example"))).collect();
            let mut answers: Vec<Record> = names
                .windows(2)
                .map(|w| Record { name: w[0].clone(), ttl: 1, data: RecordData::Cname(w[1].clone()) })
                .collect();
            answers.push(Record { name: names[len - 1].clone(), ttl: 2, data: RecordData::A(Ipv4Addr::new(192, 0, 2, 1)) });
            // Unrelated owners (they never end in .example) must not disturb the chain.
            answers.extend(extra.into_iter().filter(|r| !r.name.is_subdomain_of(&name("example"))));
            // A seeded shuffle.
            let mut s = seed;
            for i in (1..answers.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                answers.swap(i, (s >> 33) as usize % (i + 1));
            }
            let chain = resolve(&names[0], &answers).unwrap();
            prop_assert_eq!(chain.names().iter().map(|n| (*n).clone()).collect::<Vec<_>>(), names.clone());
            prop_assert_eq!(chain.addresses().collect::<Vec<_>>(), [(Ipv4Addr::new(192, 0, 2, 1).into(), 2)]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            fuzz(&data);
        }

        #[test]
        fn arbitrary_sections_after_a_valid_header_never_panic(
            header in prop::sample::select(&[
                [0x0a, 0x01, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 1],
                [0x0a, 0x06, 0x83, 0x80, 0, 1, 0, 4, 0, 1, 0, 2],
                [0x26, 0xd8, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1],
            ][..]),
            tail in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            fuzz(&[&header[..], &tail[..]].concat());
        }

        #[test]
        fn mutated_captures_never_panic(
            which in 0usize..9,
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let captures = [
                fixture!("response_outlook_a.bin").1,
                fixture!("response_outlook_aaaa.bin").1,
                fixture!("response_whoami_a.bin").1,
                fixture!("response_myaddr_txt.bin").1,
                fixture!("response_nxdomain.bin").1,
                fixture!("response_big_txt_tcp.bin").1,
                fixture!("response_outlook_a_nsd.bin").1,
                fixture!("dig_query.bin").1,
                fixture!("response_mixed_case_a.bin").1,
            ];
            let mut m = captures[which].to_vec();
            for (at, byte) in flips {
                let i = at.index(m.len());
                m[i] = byte;
            }
            fuzz(&m);
            fuzz(&m[..cut.index(m.len() + 1)]);
        }
    }
}
