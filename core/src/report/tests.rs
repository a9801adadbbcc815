//! The report format against its spec: golden vectors both ways (and against the hex in SPEC.md), every
//! error provoked, sizes against the stated rule, and round trips of arbitrary messages.
//!
//! `O365PROBE_BLESS=1 cargo test -p o365probe-core --lib report` rewrites golden/*.bin from the values here;
//! only do that for a deliberate format change, and update SPEC.md to match.

use super::*;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, KeyInit};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use heapless::{String, Vec};
use proptest::prelude::*;
use std::path::PathBuf;

use crate::assess::LocationCode;
use crate::wire::endpoint::{Category, ServiceArea};

const KEY: Key = FUZZ_KEY;

/// 2026-11-26T09:00:00Z.
const CYCLE_START: u32 = 1_795_683_600;

/// (min, median, p95) µs to 20 front doors in the same metro: every value and both deltas < 16.384 ms.
const NEAR: [(u32, u32, u32); 20] = [
    (3120, 3410, 4980),
    (3185, 3522, 5630),
    (2950, 3301, 4415),
    (4410, 4790, 7020),
    (8830, 9412, 12950),
    (9015, 9870, 14230),
    (2480, 2765, 3990),
    (2512, 2804, 4377),
    (6120, 6655, 9840),
    (6233, 6931, 10518),
    (11870, 12544, 17320),
    (12035, 12790, 18875),
    (3340, 3680, 5205),
    (3390, 3802, 6114),
    (5205, 5590, 8232),
    (5307, 5748, 9021),
    (7710, 8290, 11640),
    (14980, 15765, 21902),
    (4020, 4391, 6580),
    (4105, 4522, 7713),
];

/// The same 20 targets from a branch whose traffic is backhauled across a continent: min 158-185 ms,
/// median 2.5-9 ms above it, p95 17-48 ms above that.
const FAR: [(u32, u32, u32); 20] = [
    (158_410, 161_020, 183_300),
    (158_902, 162_115, 190_870),
    (160_215, 163_480, 181_002),
    (161_033, 165_904, 199_410),
    (162_870, 166_012, 184_555),
    (163_120, 170_230, 210_050),
    (164_008, 167_590, 187_930),
    (165_440, 168_912, 196_017),
    (166_317, 172_410, 204_788),
    (167_905, 171_200, 189_940),
    (169_250, 173_880, 211_605),
    (170_114, 176_043, 200_312),
    (171_870, 175_109, 193_460),
    (173_002, 181_995, 229_870),
    (174_560, 178_213, 197_335),
    (176_211, 180_540, 206_118),
    (178_090, 182_476, 214_902),
    (180_333, 185_620, 222_761),
    (182_712, 186_090, 203_977),
    (184_950, 193_870, 241_415),
];

fn tcp_batch(manifest_id: u32, rtts: &[(u32, u32, u32)]) -> Results {
    let mut results = Results::new(manifest_id, CYCLE_START, 0);
    for (target, &(min, median, p95)) in rtts.iter().enumerate() {
        let summary = TcpSummary {
            target: target as u8,
            samples: 10,
            rtt: Rtt::new(min, median, p95).unwrap(),
        };
        results.tcp.push(summary).unwrap();
    }
    results
}

fn target(host: &str, area: ServiceArea, required: bool, tcp: &[u16], udp: &[u16]) -> Target {
    let category = match area {
        ServiceArea::Common => Category::Default,
        _ => Category::Optimize,
    };
    Target {
        host: String::try_from(host).unwrap(),
        service_area: area,
        category,
        required,
        tcp_ports: Vec::from_slice(tcp).unwrap(),
        udp_ports: Vec::from_slice(udp).unwrap(),
    }
}

fn manifest() -> Manifest {
    let targets = [
        target(
            "outlook.office365.com",
            ServiceArea::Exchange,
            true,
            &[443, 80],
            &[],
        ),
        target(
            "contoso.sharepoint.com",
            ServiceArea::SharePoint,
            true,
            &[443, 80],
            &[],
        ),
        target(
            "world.tr.teams.microsoft.com",
            ServiceArea::Teams,
            true,
            &[443],
            &[3478, 3479, 3480, 3481],
        ),
        target(
            "whoami.o365probe.example",
            ServiceArea::Common,
            false,
            &[],
            &[],
        ),
    ];
    Manifest {
        manifest_id: 1,
        total: 4,
        first: 0,
        targets: Vec::from_slice(&targets).unwrap(),
    }
}

fn every_section() -> Results {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let mut r = Results::new(1, CYCLE_START + 300, 3);
    r.tcp
        .push(TcpSummary {
            target: 0,
            samples: 9,
            rtt: Rtt::new(3120, 3410, 4980).unwrap(),
        })
        .unwrap();
    r.tcp_failures
        .extend_from_slice(&[
            TcpFailures {
                target: 0,
                refused: 0,
                timed_out: 1,
                unreachable: 0,
            },
            TcpFailures {
                target: 2,
                refused: 0,
                timed_out: 0,
                unreachable: 10,
            },
        ])
        .unwrap();
    r.dns
        .extend_from_slice(&[
            DnsSummary {
                target: 0,
                failures: 0,
                answer: Some(DnsAnswer {
                    rtt_us: 1840,
                    rcode: 0,
                    front_door: LocationCode::parse("lhr"),
                    addresses: Vec::from_slice(&[
                        v4(203, 0, 113, 10),
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
                    ])
                    .unwrap(),
                    ttl_s: 30,
                }),
            },
            DnsSummary {
                target: 1,
                failures: 2,
                answer: None,
            },
        ])
        .unwrap();
    r.resolvers
        .push(ResolverIdentity {
            target: 3,
            address: v4(198, 51, 100, 53),
        })
        .unwrap();
    r.tls
        .push(TlsSummary {
            target: 1,
            handshake_us: 21_450,
            verdict: TlsVerdict::Intercepted,
            issuer_cn: String::try_from("Contoso Inspection CA").unwrap(),
            // 2027-03-14T23:59:59Z
            not_after: Some(1_805_068_799),
        })
        .unwrap();
    r.stun
        .push(StunSummary {
            target: 2,
            port: 3478,
            sent: 50,
            received: 48,
            lost: 2,
            duplicated: 1,
            reordered: 0,
            rtt: Rtt::new(18_200, 19_150, 24_800),
            jitter_us: 1320,
            mapped: Some(SocketAddr::new(v4(203, 0, 113, 7), 40_123)),
        })
        .unwrap();
    r.http
        .push(HttpSummary {
            target: 1,
            status: Some(407),
            verdict: HttpVerdict::ProxyAuthRequired,
            ttfb_us: 35_210,
        })
        .unwrap();
    r.downloads
        .push(DownloadSummary {
            target: 1,
            bytes: 10_485_760,
            duration_us: 2_900_000,
            idle_latency_us: 3_300,
            loaded_latency_us: 48_500,
        })
        .unwrap();
    r.paths
        .push(PathSummary {
            target: 0,
            reached: true,
            hop_count: 9,
            hops: Vec::from_slice(&[
                Hop {
                    ttl: 1,
                    address: Some(v4(192, 0, 2, 1)),
                    rtt_us: 610,
                },
                Hop {
                    ttl: 2,
                    address: None,
                    rtt_us: 0,
                },
                Hop {
                    ttl: 9,
                    address: Some(v4(203, 0, 113, 10)),
                    rtt_us: 3350,
                },
            ])
            .unwrap(),
        })
        .unwrap();
    r
}

fn ack() -> Ack {
    let frames = [
        (1, AckStatus::Stored),
        (2, AckStatus::Stored),
        (3, AckStatus::Duplicate),
        (4, AckStatus::Rejected(RejectReason::TimeOutOfRange)),
    ]
    .map(|(sequence, status)| AckedFrame { sequence, status });
    Ack {
        // 2026-11-26T09:05:02Z
        collector_time: 1_795_683_902,
        frames: Vec::from_slice(&frames).unwrap(),
    }
}

struct Golden {
    name: &'static str,
    agent_id: u32,
    sequence: u64,
    message: Message,
}

/// The golden vectors of SPEC.md. The firmware-style sequence (random boot epoch 0xC0FFEE42, frame 5 of
/// that boot) shows the epoch in the nonce.
fn golden() -> [Golden; 5] {
    [
        Golden {
            name: "manifest",
            agent_id: 42,
            sequence: 1,
            message: Message::Manifest(manifest()),
        },
        Golden {
            name: "results-tcp20-near",
            agent_id: 42,
            sequence: 2,
            message: Message::Results(tcp_batch(2, &NEAR)),
        },
        Golden {
            name: "results-tcp20-far",
            agent_id: 42,
            sequence: 3,
            message: Message::Results(tcp_batch(2, &FAR)),
        },
        Golden {
            name: "results-every-section",
            agent_id: 7,
            sequence: 0xC0FF_EE42_0000_0005,
            message: Message::Results(every_section()),
        },
        Golden {
            name: "ack",
            agent_id: 42,
            sequence: 1,
            message: Message::Ack(ack()),
        },
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/report/golden")
}

fn sealed(g: &Golden) -> std::vec::Vec<u8> {
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = seal(&KEY, g.agent_id, g.sequence, &g.message, &mut out).unwrap();
    out[..len].to_vec()
}

fn golden_file(name: &str) -> std::vec::Vec<u8> {
    let path = golden_dir().join(format!("{name}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn golden_values_seal_to_exactly_the_golden_files() {
    let bless = std::env::var_os("O365PROBE_BLESS").is_some();
    for g in golden() {
        let frame = sealed(&g);
        if bless {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(golden_dir().join(format!("{}.bin", g.name)), &frame).unwrap();
        }
        assert_eq!(
            hex::encode(&frame),
            hex::encode(golden_file(g.name)),
            "{}",
            g.name
        );
    }
}

#[test]
fn golden_files_open_to_exactly_the_golden_values() {
    for g in golden() {
        let frame = golden_file(g.name);
        let mut scratch = [0u8; MAX_BODY_LEN];
        let (header, message) = open(&KEY, &frame, &mut scratch).unwrap();
        let expected = Header {
            message_type: g.message.message_type(),
            agent_id: g.agent_id,
            sequence: g.sequence,
        };
        assert_eq!(header, expected, "{}", g.name);
        assert_eq!(message, g.message, "{}", g.name);
        let mut in_place = frame.clone();
        assert_eq!(
            open_in_place(&KEY, &mut in_place).unwrap(),
            (expected, g.message)
        );
    }
}

/// The hex blocks of SPEC.md: `<!-- golden/NAME.bin -->` marks a whole frame, `<!-- body of
/// golden/NAME.bin -->` its plaintext body; text after `#` on a line is a comment.
fn spec_hex_blocks() -> std::vec::Vec<(std::string::String, bool, std::vec::Vec<u8>)> {
    let spec = std::fs::read_to_string(golden_dir().join("../SPEC.md")).unwrap();
    let mut blocks = std::vec::Vec::new();
    let mut lines = spec.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let (body, file) = match marker.strip_prefix("body of ") {
            Some(file) => (true, file),
            None => (false, marker),
        };
        let Some(name) = file
            .strip_prefix("golden/")
            .and_then(|f| f.strip_suffix(".bin"))
        else {
            continue;
        };
        assert_eq!(
            lines.next().map(str::trim),
            Some("```text"),
            "block after {line}"
        );
        let mut digits = std::string::String::new();
        for l in lines.by_ref().take_while(|l| l.trim() != "```") {
            let data = l.split('#').next().unwrap();
            digits.extend(data.chars().filter(|c| !c.is_whitespace()));
        }
        let bytes = hex::decode(&digits).unwrap_or_else(|e| panic!("{line}: {e}"));
        blocks.push((name.to_string(), body, bytes));
    }
    blocks
}

#[test]
fn spec_hex_is_the_golden_files_and_their_plaintext() {
    let blocks = spec_hex_blocks();
    for g in golden() {
        let frame = golden_file(g.name);
        let whole: std::vec::Vec<_> = blocks.iter().filter(|b| b.0 == g.name && !b.1).collect();
        assert_eq!(
            whole.len(),
            1,
            "SPEC.md must show golden/{}.bin once",
            g.name
        );
        assert_eq!(hex::encode(&whole[0].2), hex::encode(&frame), "{}", g.name);
        for (_, _, body) in blocks.iter().filter(|b| b.0 == g.name && b.1) {
            let mut plain = [0u8; MAX_BODY_LEN];
            let len = g.message.encode(&mut plain).unwrap();
            assert_eq!(
                hex::encode(body),
                hex::encode(&plain[..len]),
                "body of {}",
                g.name
            );
        }
    }
    assert!(
        blocks.iter().any(|b| b.1),
        "SPEC.md shows no annotated body"
    );
}

fn varint_len(value: u64) -> usize {
    (1..10).find(|n| value >> (7 * n) == 0).unwrap_or(10)
}

/// SPEC.md, "Size": a TCP-only batch is 30 + varint(manifest id) + 5 + varint(dropped) + 1 + 1 +
/// varint(count) bytes, plus per result 2 + varint(min) + varint(median - min) + varint(p95 - median).
fn tcp_batch_len_by_the_spec(results: &Results) -> usize {
    let per_result: usize = results
        .tcp
        .iter()
        .map(|s| {
            let r = s.rtt;
            2 + varint_len(r.min_us().into())
                + varint_len((r.median_us() - r.min_us()).into())
                + varint_len((r.p95_us() - r.median_us()).into())
        })
        .sum();
    30 + varint_len(results.manifest_id.into())
        + 5
        + varint_len(results.dropped_frames.into())
        + 2
        + varint_len(results.tcp.len() as u64)
        + per_result
}

#[test]
fn twenty_tcp_summaries_seal_to_the_sizes_the_spec_states() {
    let near = golden_file("results-tcp20-near");
    let far = golden_file("results-tcp20-far");
    // SPEC.md, "Size": 8 bytes per near result, 10 per far one.
    assert_eq!(near.len(), 200);
    assert_eq!(far.len(), 240);
    assert_eq!(near.len(), tcp_batch_len_by_the_spec(&tcp_batch(2, &NEAR)));
    assert_eq!(far.len(), tcp_batch_len_by_the_spec(&tcp_batch(2, &FAR)));
    assert_eq!(tcp_batch(2, &NEAR).sealed_len(), Ok(200));
}

#[test]
fn the_size_rule_holds_for_arbitrary_latencies() {
    let mut runner = proptest::test_runner::TestRunner::default();
    let rtts = prop::collection::vec(rtt(), 1..=MAX_TCP_SUMMARIES);
    runner
        .run(
            &(rtts, any::<u32>(), any::<u32>()),
            |(rtts, manifest_id, dropped)| {
                let mut batch = Results::new(manifest_id, CYCLE_START, dropped);
                for (i, rtt) in rtts.into_iter().enumerate() {
                    let summary = TcpSummary {
                        target: i as u8,
                        samples: 10,
                        rtt,
                    };
                    batch.tcp.push(summary).unwrap();
                }
                prop_assert_eq!(batch.sealed_len(), Ok(tcp_batch_len_by_the_spec(&batch)));
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn a_resealed_frame_is_byte_identical_and_a_new_sequence_is_not() {
    for g in golden() {
        assert_eq!(sealed(&g), sealed(&g));
        let next = Golden {
            sequence: g.sequence + 1,
            ..g
        };
        let frame = sealed(&next);
        assert_ne!(frame[HEADER_LEN..], golden_file(next.name)[HEADER_LEN..]);
    }
}

#[test]
fn the_nonce_separates_direction_type_and_sequence() {
    let results = Header {
        message_type: MessageType::Results,
        agent_id: 42,
        sequence: 0x0102_0304_0506_0708,
    };
    assert_eq!(hex::encode(results.nonce()), "000200000102030405060708");
    let ack = Header {
        message_type: MessageType::Ack,
        ..results
    };
    assert_eq!(hex::encode(ack.nonce()), "010300000102030405060708");
    assert_eq!(
        hex::encode(results.to_bytes()),
        "01020000002a0102030405060708"
    );
}

#[test]
fn a_frame_cut_anywhere_is_truncated_or_fails_the_tag() {
    for g in golden() {
        let frame = golden_file(g.name);
        let mut scratch = [0u8; MAX_BODY_LEN];
        for len in 0..frame.len() {
            let expected = if len < MIN_FRAME_LEN {
                Error::Truncated
            } else {
                Error::BadTag
            };
            assert_eq!(
                open(&KEY, &frame[..len], &mut scratch),
                Err(expected),
                "{} cut at {len}",
                g.name
            );
            let mut copy = frame[..len].to_vec();
            assert_eq!(open_in_place(&KEY, &mut copy), Err(expected));
        }
    }
}

#[test]
fn any_flipped_bit_is_a_header_error_or_fails_the_tag() {
    for g in golden() {
        let frame = golden_file(g.name);
        let mut scratch = [0u8; MAX_BODY_LEN];
        for bit in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = open(&KEY, &bad, &mut scratch).unwrap_err();
            match (bit / 8, err) {
                (0, Error::UnknownVersion(v)) => assert_eq!(v, bad[0]),
                (1, Error::UnknownType(t)) => assert_eq!(t, bad[1]),
                // Another defined type: the header (associated data) and the nonce both changed.
                (1, Error::BadTag) => assert!(MessageType::from_u8(bad[1]).is_some()),
                (2.., Error::BadTag) => {}
                (byte, err) => panic!("{}: bit {bit} (byte {byte}) gave {err:?}", g.name),
            }
        }
    }
}

#[test]
fn another_agents_key_fails_the_tag() {
    let other = Key::from_bytes([0x42; KEY_LEN]);
    let mut scratch = [0u8; MAX_BODY_LEN];
    for g in golden() {
        assert_eq!(
            open(&other, &golden_file(g.name), &mut scratch),
            Err(Error::BadTag)
        );
    }
}

#[test]
fn unknown_versions_and_types_are_named() {
    let frame = golden_file("ack");
    for version in [0, 2, 0xff] {
        let mut bad = frame.clone();
        bad[0] = version;
        assert_eq!(Header::parse(&bad), Err(Error::UnknownVersion(version)));
        // The version decides the layout: a short frame of another version is still that version's.
        assert_eq!(
            Header::parse(&[version]),
            Err(Error::UnknownVersion(version))
        );
    }
    for message_type in [0, 4, 0xff] {
        let mut bad = frame.clone();
        bad[1] = message_type;
        assert_eq!(Header::parse(&bad), Err(Error::UnknownType(message_type)));
    }
    assert_eq!(Header::parse(&[]), Err(Error::Truncated));
}

#[test]
fn frames_and_bodies_over_the_limit_are_oversized() {
    let mut long = golden_file("manifest");
    long.resize(MAX_FRAME_LEN + 1, 0);
    assert_eq!(Header::parse(&long), Err(Error::Oversized));
    long.truncate(MAX_FRAME_LEN);
    // The largest frame is read, and fails only on its tag.
    let mut scratch = [0u8; MAX_BODY_LEN];
    assert_eq!(open(&KEY, &long, &mut scratch), Err(Error::BadTag));

    // Sixteen intercepted handshakes with long issuer names do not fit in one frame.
    let mut results = Results::new(1, CYCLE_START, 0);
    for target in 0..MAX_TLS_SUMMARIES as u8 {
        let summary = TlsSummary {
            target,
            handshake_us: 100_000,
            verdict: TlsVerdict::Intercepted,
            issuer_cn: String::try_from("x".repeat(MAX_ISSUER_CN_LEN).as_str()).unwrap(),
            not_after: Some(u64::MAX),
        };
        results.tls.push(summary).unwrap();
    }
    let message = Message::Results(results);
    assert!(message.body_len().unwrap() > MAX_BODY_LEN);
    let mut out = [0u8; 4 * MAX_FRAME_LEN];
    assert_eq!(seal(&KEY, 1, 1, &message, &mut out), Err(Error::Oversized));
}

#[test]
fn short_buffers_are_refused_not_overrun() {
    let g = &golden()[0];
    let frame = golden_file(g.name);
    let mut out = vec![0u8; frame.len() - 1];
    assert_eq!(
        seal(&KEY, g.agent_id, g.sequence, &g.message, &mut out),
        Err(Error::BufferTooSmall)
    );
    let mut scratch = vec![0u8; frame.len() - OVERHEAD - 1];
    assert_eq!(open(&KEY, &frame, &mut scratch), Err(Error::BufferTooSmall));
    let mut plain = vec![0u8; 3];
    assert_eq!(g.message.encode(&mut plain), Err(Error::BufferTooSmall));
}

/// Seals arbitrary plaintext, as a buggy or newer sender would.
fn seal_raw(message_type: MessageType, plain: &[u8]) -> std::vec::Vec<u8> {
    let header = Header {
        message_type,
        agent_id: 42,
        sequence: 99,
    };
    let mut frame = header.to_bytes().to_vec();
    let mut body = plain.to_vec();
    let cipher = ChaCha20Poly1305::new(GenericArray::from_slice(KEY.as_bytes()));
    let tag = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(&header.nonce()), &frame, &mut body)
        .unwrap();
    frame.extend_from_slice(&body);
    frame.extend_from_slice(&tag);
    frame
}

fn open_raw(message_type: MessageType, plain: &[u8]) -> Result<Message> {
    let mut scratch = [0u8; MAX_BODY_LEN];
    open(&KEY, &seal_raw(message_type, plain), &mut scratch).map(|(_, m)| m)
}

fn body_of(message: &Message) -> std::vec::Vec<u8> {
    let mut plain = [0u8; MAX_BODY_LEN];
    let len = message.encode(&mut plain).unwrap();
    plain[..len].to_vec()
}

#[test]
fn authentic_bodies_that_do_not_decode_are_body_errors() {
    let near = body_of(&Message::Results(tcp_batch(2, &NEAR)));
    // The raw sealer agrees with seal, so the cases below differ from a good frame only as described.
    assert_eq!(
        open_raw(MessageType::Results, &near),
        Ok(Message::Results(tcp_batch(2, &NEAR)))
    );

    let mut trailing = near.clone();
    trailing.push(0);
    let cut = near[..near.len() - 1].to_vec();
    // A batch: manifest 1, the cycle start, dropped 0, then the sections given.
    let batch = |sections: &[u8]| {
        let mut b = [0u8; 16];
        let mut b = postcard::to_slice(&(1u32, CYCLE_START, 0u32), &mut b)
            .unwrap()
            .to_vec();
        b.extend_from_slice(sections);
        b
    };
    let tcp = [0x00, 0x01, 0x00, 0x01, 0x05, 0x01, 0x01]; // kind 0, one summary
    let failures = [0x01, 0x01, 0x00, 0x01, 0x00, 0x00]; // kind 1, one entry
    let dns = |addresses: &[u8], code: &[u8]| {
        // one DNS section, one summary with an answer
        let head = [0x01, 0x02, 0x01, 0x00, 0x00, 0x01, 0x01, 0x00];
        batch(&[&head[..], code, addresses, &[0x00]].concat())
    };
    let v4 = [0x00, 192, 0, 2, 1];
    let (two, three) = (
        [&[0x02][..], &v4, &v4].concat(),
        [&[0x03][..], &v4, &v4, &v4].concat(),
    );
    // (what, type, the bad body, a body that differs only in the fault and decodes)
    let cases = [
        (
            "trailing byte",
            MessageType::Results,
            trailing,
            Some(near.clone()),
        ),
        ("cut body", MessageType::Results, cut, Some(near)),
        ("empty body", MessageType::Ack, vec![], None),
        (
            "unknown section kind",
            MessageType::Results,
            batch(&[0x01, 0x09, 0x01, 0x00]),
            Some(batch(&[0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 0x00])),
        ),
        (
            "repeated section",
            MessageType::Results,
            batch(&[&[0x02][..], &tcp, &tcp].concat()),
            Some(batch(&[&[0x01][..], &tcp].concat())),
        ),
        (
            "sections out of order",
            MessageType::Results,
            batch(&[&[0x02][..], &failures, &tcp].concat()),
            Some(batch(&[&[0x02][..], &tcp, &failures].concat())),
        ),
        (
            "empty section",
            MessageType::Results,
            batch(&[0x01, 0x00, 0x00]),
            Some(batch(&[0x00])),
        ),
        (
            "rtt past u32::MAX",
            MessageType::Results,
            batch(&[
                0x01, 0x00, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x00,
            ]),
            Some(batch(&[
                0x01, 0x00, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00,
            ])),
        ),
        (
            "list over its bound",
            MessageType::Results,
            dns(&three, &[0x00]),
            Some(dns(&two, &[0x00])),
        ),
        (
            "unknown reject reason",
            MessageType::Ack,
            vec![0x01, 0x01, 0x05, 0x02, 0x02],
            Some(vec![0x01, 0x01, 0x05, 0x02, 0x01]),
        ),
    ];
    for (what, message_type, bad, good) in cases {
        assert_eq!(open_raw(message_type, &bad), Err(Error::Body), "{what}");
        assert_eq!(
            Message::decode(message_type, &bad),
            Err(Error::Body),
            "{what}"
        );
        if let Some(good) = good {
            assert!(
                open_raw(message_type, &good).is_ok(),
                "{what}: the control does not decode"
            );
        }
    }
    // A front-door code decodes as any three bytes, but only upper-case letters are valid.
    assert!(open_raw(MessageType::Results, &dns(&two, b"\x01LHR")).is_ok());
    for code in [b"\x01lhr", b"\x01L1R", b"\x01\0\0\0", b"\x01\xff\xfe\xfd"] {
        let bad = dns(&two, code);
        assert_eq!(
            open_raw(MessageType::Results, &bad),
            Err(Error::Invalid),
            "{code:?}"
        );
    }
}

#[test]
fn a_manifest_chunk_past_its_total_is_invalid_both_ways() {
    let mut bad = manifest();
    bad.first = 1; // targets 1..5 of 4
    let message = Message::Manifest(bad.clone());
    let mut out = [0u8; MAX_FRAME_LEN];
    assert_eq!(seal(&KEY, 42, 5, &message, &mut out), Err(Error::Invalid));
    let plain = postcard::to_slice(&bad, &mut out).unwrap().to_vec();
    assert_eq!(open_raw(MessageType::Manifest, &plain), Err(Error::Invalid));
}

#[test]
fn manifest_chunks_fill_frames_and_cover_every_target() {
    // 40 targets with long names: several chunks, each a frame.
    let all: std::vec::Vec<Target> = (0..40)
        .map(|i| {
            let host = format!("tenant{i:02}-{}.sharepoint.com", "x".repeat(60));
            target(&host, ServiceArea::SharePoint, true, &[443, 80], &[])
        })
        .collect();
    let mut first = 0;
    let mut chunks = 0;
    while first < all.len() {
        let chunk = Manifest::chunk(9, &all, first).unwrap();
        assert_eq!(
            (chunk.manifest_id, chunk.total, usize::from(chunk.first)),
            (9, 40, first)
        );
        assert!(!chunk.targets.is_empty());
        assert_eq!(&chunk.targets[..], &all[first..first + chunk.targets.len()]);
        let message = Message::Manifest(chunk.clone());
        let mut out = [0u8; MAX_FRAME_LEN];
        assert!(seal(&KEY, 42, first as u64, &message, &mut out).is_ok());
        // Full: the next target would not have fitted.
        if let Some(next) = all.get(first + chunk.targets.len()) {
            let mut bigger = chunk.clone();
            if bigger.targets.push(next.clone()).is_ok() {
                assert!(bigger.sealed_len().unwrap() > MAX_FRAME_LEN);
            }
        }
        first += chunk.targets.len();
        chunks += 1;
    }
    assert!(chunks > 2, "{chunks}");
    let too_many = vec![target("a.example", ServiceArea::Common, false, &[], &[]); MAX_TARGETS + 1];
    assert_eq!(Manifest::chunk(1, &too_many, 0), Err(Error::TooManyItems));
}

#[test]
fn rtt_summaries_are_nearest_rank_percentiles() {
    // 20 samples: median is the 10th smallest, p95 the 19th.
    let mut samples: std::vec::Vec<u32> = (1..=20).rev().map(|ms| ms * 1000).collect();
    assert_eq!(
        Rtt::from_samples(&mut samples),
        Rtt::new(1000, 10_000, 19_000)
    );
    // 1 sample: all three are it.
    assert_eq!(Rtt::from_samples(&mut [4200]), Rtt::new(4200, 4200, 4200));
    // 4 samples: the lower median, and the largest for p95.
    assert_eq!(
        Rtt::from_samples(&mut [40, 10, 30, 20]),
        Rtt::new(10, 20, 40)
    );
    assert_eq!(Rtt::from_samples(&mut []), None);
    assert_eq!(Rtt::new(2, 1, 3), None);
}

#[test]
fn every_error_reads_differently() {
    let all = [
        Error::Truncated,
        Error::Oversized,
        Error::UnknownVersion(2),
        Error::UnknownType(4),
        Error::BadTag,
        Error::Body,
        Error::Invalid,
        Error::BufferTooSmall,
        Error::TooManyItems,
    ];
    let texts: std::collections::HashSet<_> = all.iter().map(|e| e.to_string()).collect();
    assert_eq!(texts.len(), all.len());
    assert!(Error::UnknownVersion(2).to_string().contains('2'));
}

#[test]
fn the_fuzz_entry_opens_the_golden_frames() {
    // The seeds must reach the body decoder through a valid tag, or the fuzzer only ever sees BadTag.
    for g in golden() {
        let frame = golden_file(g.name);
        let mut scratch = [0u8; MAX_BODY_LEN];
        assert!(open(&FUZZ_KEY, &frame, &mut scratch).is_ok());
        fuzz(&frame);
        fuzz(&body_of(&g.message));
    }
}

// Strategies for arbitrary messages; `n` bounds the lists so that frame-sized messages are common.

fn rtt() -> impl Strategy<Value = Rtt> {
    // Mostly realistic latencies (below 2 s), sometimes anything.
    let value = prop_oneof![4 => 0u32..2_000_000, 1 => any::<u32>()];
    [value.clone(), value.clone(), value].prop_map(|mut v| {
        v.sort_unstable();
        Rtt::new(v[0], v[1], v[2]).unwrap()
    })
}

fn hvec<T: Clone + std::fmt::Debug, const N: usize>(
    item: impl Strategy<Value = T>,
    n: usize,
) -> impl Strategy<Value = Vec<T, N>> {
    prop::collection::vec(item, 0..=n.min(N)).prop_map(|v| Vec::from_slice(&v).unwrap())
}

fn hstring<const N: usize>() -> impl Strategy<Value = String<N>> {
    any::<std::string::String>().prop_map(|s| {
        let mut out = String::new();
        for c in s.chars() {
            if out.push(c).is_err() {
                break;
            }
        }
        out
    })
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    // Serde carries address and port only; IPv6 flow info and scope id are not part of the format.
    (any::<IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn area() -> impl Strategy<Value = ServiceArea> {
    prop::sample::select(ServiceArea::ALL.to_vec())
}

fn targets(n: usize) -> impl Strategy<Value = Vec<Target, MAX_MANIFEST_TARGETS>> {
    let category =
        prop::sample::select(vec![Category::Optimize, Category::Allow, Category::Default]);
    let one = (
        hstring(),
        area(),
        category,
        any::<bool>(),
        hvec(any::<u16>(), n),
        hvec(any::<u16>(), n),
    )
        .prop_map(
            |(host, service_area, category, required, tcp_ports, udp_ports)| Target {
                host,
                service_area,
                category,
                required,
                tcp_ports,
                udp_ports,
            },
        );
    hvec(one, n)
}

fn manifest_strategy(n: usize) -> impl Strategy<Value = Manifest> {
    (any::<u32>(), targets(n), any::<u8>(), any::<u8>()).prop_map(
        |(manifest_id, targets, first, extra)| {
            let first = first.min(u8::MAX - targets.len() as u8);
            let total = (first + targets.len() as u8).saturating_add(extra % 8);
            Manifest {
                manifest_id,
                total,
                first,
                targets,
            }
        },
    )
}

fn results_strategy(n: usize) -> impl Strategy<Value = Results> {
    let tcp = (any::<u8>(), any::<u8>(), rtt()).prop_map(|(target, samples, rtt)| TcpSummary {
        target,
        samples,
        rtt,
    });
    let failures =
        any::<[u8; 4]>().prop_map(|[target, refused, timed_out, unreachable]| TcpFailures {
            target,
            refused,
            timed_out,
            unreachable,
        });
    let code = prop::sample::select(vec!["LHR", "AMS", "MDW", "SIN"]).prop_map(LocationCode::parse);
    let answer = (
        any::<u32>(),
        any::<u16>(),
        code,
        hvec(any::<IpAddr>(), n),
        any::<u32>(),
    )
        .prop_map(|(rtt_us, rcode, front_door, addresses, ttl_s)| DnsAnswer {
            rtt_us,
            rcode,
            front_door,
            addresses,
            ttl_s,
        });
    let dns = (any::<u8>(), any::<u8>(), prop::option::of(answer)).prop_map(
        |(target, failures, answer)| DnsSummary {
            target,
            failures,
            answer,
        },
    );
    let resolver = (any::<u8>(), any::<IpAddr>())
        .prop_map(|(target, address)| ResolverIdentity { target, address });
    let verdict = prop::sample::select(vec![
        TlsVerdict::Genuine,
        TlsVerdict::Intercepted,
        TlsVerdict::Unknown,
        TlsVerdict::Failed,
    ]);
    let tls = (
        any::<u8>(),
        any::<u32>(),
        verdict,
        hstring(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(target, handshake_us, verdict, issuer_cn, not_after)| TlsSummary {
                target,
                handshake_us,
                verdict,
                issuer_cn,
                not_after,
            },
        );
    let stun = (
        (any::<u8>(), any::<u16>(), any::<[u16; 5]>()),
        prop::option::of(rtt()),
        any::<u32>(),
        prop::option::of(socket_addr()),
    )
        .prop_map(
            |(
                (target, port, [sent, received, lost, duplicated, reordered]),
                rtt,
                jitter_us,
                mapped,
            )| {
                StunSummary {
                    target,
                    port,
                    sent,
                    received,
                    lost,
                    duplicated,
                    reordered,
                    rtt,
                    jitter_us,
                    mapped,
                }
            },
        );
    let http_verdict = prop::sample::select(vec![
        HttpVerdict::Ok,
        HttpVerdict::ProxyAuthRequired,
        HttpVerdict::ProxyBlocked,
        HttpVerdict::Redirected,
        HttpVerdict::Error,
    ]);
    let http = (
        any::<u8>(),
        any::<Option<u16>>(),
        http_verdict,
        any::<u32>(),
    )
        .prop_map(|(target, status, verdict, ttfb_us)| HttpSummary {
            target,
            status,
            verdict,
            ttfb_us,
        });
    let download = (any::<u8>(), any::<u64>(), any::<[u32; 3]>()).prop_map(
        |(target, bytes, [duration_us, idle_latency_us, loaded_latency_us])| DownloadSummary {
            target,
            bytes,
            duration_us,
            idle_latency_us,
            loaded_latency_us,
        },
    );
    let hop =
        (any::<u8>(), any::<Option<IpAddr>>(), any::<u32>()).prop_map(|(ttl, address, rtt_us)| {
            Hop {
                ttl,
                address,
                rtt_us,
            }
        });
    let path = (any::<u8>(), any::<bool>(), any::<u8>(), hvec(hop, n)).prop_map(
        |(target, reached, hop_count, hops)| PathSummary {
            target,
            reached,
            hop_count,
            hops,
        },
    );
    (
        any::<[u32; 3]>(),
        (hvec(tcp, n), hvec(failures, n), hvec(dns, n)),
        (hvec(resolver, n), hvec(tls, n), hvec(stun, n)),
        (hvec(http, n), hvec(download, n), hvec(path, n)),
    )
        .prop_map(
            |([manifest_id, cycle_start, dropped_frames], a, b, c)| Results {
                manifest_id,
                cycle_start,
                dropped_frames,
                tcp: a.0,
                tcp_failures: a.1,
                dns: a.2,
                resolvers: b.0,
                tls: b.1,
                stun: b.2,
                http: c.0,
                downloads: c.1,
                paths: c.2,
            },
        )
}

fn ack_strategy(n: usize) -> impl Strategy<Value = Ack> {
    let status = prop_oneof![
        Just(AckStatus::Stored),
        Just(AckStatus::Duplicate),
        Just(AckStatus::Rejected(RejectReason::Malformed)),
        Just(AckStatus::Rejected(RejectReason::TimeOutOfRange)),
    ];
    let frame =
        (any::<u64>(), status).prop_map(|(sequence, status)| AckedFrame { sequence, status });
    (any::<u32>(), hvec(frame, n)).prop_map(|(collector_time, frames)| Ack {
        collector_time,
        frames,
    })
}

fn message(n: usize) -> impl Strategy<Value = Message> {
    prop_oneof![
        manifest_strategy(n).prop_map(Message::Manifest),
        results_strategy(n).prop_map(Message::Results),
        ack_strategy(n).prop_map(Message::Ack),
    ]
}

proptest! {
    #[test]
    fn any_frame_sized_message_opens_to_itself(
        m in message(3),
        agent_id in any::<u32>(),
        sequence in any::<u64>(),
    ) {
        let mut out = [0u8; MAX_FRAME_LEN];
        match seal(&KEY, agent_id, sequence, &m, &mut out) {
            Ok(len) => {
                prop_assert_eq!(Ok(len), m.sealed_len());
                let mut scratch = [0u8; MAX_BODY_LEN];
                let (header, opened) = open(&KEY, &out[..len], &mut scratch).unwrap();
                prop_assert_eq!((header.message_type, header.agent_id, header.sequence), (m.message_type(), agent_id, sequence));
                prop_assert_eq!(opened, m);
            }
            Err(e) => {
                prop_assert_eq!(e, Error::Oversized);
                prop_assert!(m.body_len().unwrap() > MAX_BODY_LEN);
            }
        }
    }

    #[test]
    fn any_body_up_to_every_bound_decodes_to_itself(m in message(usize::MAX)) {
        let mut plain = vec![0u8; 64 * 1024];
        let len = m.encode(&mut plain).unwrap();
        prop_assert_eq!(Ok(len), m.body_len());
        prop_assert_eq!(Message::decode(m.message_type(), &plain[..len]), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1300)) {
        fuzz(&data);
        let mut copy = data.clone();
        let _ = open_in_place(&KEY, &mut copy);
    }

    #[test]
    fn arbitrary_bytes_under_a_good_header_never_panic(
        plain in prop::collection::vec(any::<u8>(), 0..400),
        t in 1u8..=3,
    ) {
        let message_type = MessageType::from_u8(t).unwrap();
        let frame = seal_raw(message_type, &plain);
        let mut scratch = [0u8; MAX_BODY_LEN];
        match open(&KEY, &frame, &mut scratch) {
            Ok((_, m)) => prop_assert_eq!(m.message_type(), message_type),
            Err(e) => prop_assert!(matches!(e, Error::Body | Error::Invalid), "{e:?}"),
        }
    }
}
