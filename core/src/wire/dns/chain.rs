//! Following an answer's CNAME chain from the query name to the final name, whose addresses and TXT
//! are the answer; the chain itself names the front door (`LHR` in `LHR-efz.ms-acdc.office.com`).

use super::name::Name;
use super::record::{Record, RecordData, Txt};
use super::response::MAX_ANSWERS;
use super::{Error, Result};
use core::net::IpAddr;
use heapless::Vec;

/// The most names a chain may hold, the query name included. Microsoft 365 chains have four or five;
/// resolvers give up on chains far shorter than this (unbound after 8 CNAMEs, BIND after 16).
pub const MAX_CHAIN: usize = 12;

/// The CNAME chain of an answer, and the final name's A, AAAA and TXT records. Borrows the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain<'r> {
    names: Vec<&'r Name, MAX_CHAIN>,
    cnames: Vec<&'r Record, MAX_CHAIN>,
    records: Vec<&'r Record, MAX_ANSWERS>,
}

impl<'r> Chain<'r> {
    /// Every name in order: the query name first, each CNAME target after it, the final name last.
    pub fn names(&self) -> &[&'r Name] {
        &self.names
    }

    /// The name the addresses belong to (the query name when there is no CNAME).
    pub fn final_name(&self) -> &'r Name {
        // `resolve` always puts the query name in.
        self.names.last().copied().unwrap_or(&Name::ROOT)
    }

    /// The CNAME records followed, in chain order (their TTLs bound how long the chain may be cached).
    pub fn cnames(&self) -> &[&'r Record] {
        &self.cnames
    }

    /// The final name's A, AAAA and TXT records, in answer order.
    pub fn records(&self) -> &[&'r Record] {
        &self.records
    }

    /// The final name's addresses with their TTLs, in answer order.
    pub fn addresses(&self) -> impl Iterator<Item = (IpAddr, u32)> + '_ {
        self.records.iter().filter_map(|r| match r.data {
            RecordData::A(a) => Some((IpAddr::V4(a), r.ttl)),
            RecordData::Aaaa(a) => Some((IpAddr::V6(a), r.ttl)),
            _ => None,
        })
    }

    /// The final name's TXT data with their TTLs, in answer order.
    pub fn txt(&self) -> impl Iterator<Item = (&'r Txt, u32)> + '_ {
        self.records.iter().filter_map(|r| match &r.data {
            RecordData::Txt(t) => Some((t, r.ttl)),
            _ => None,
        })
    }
}

/// Follows CNAMEs from `query` through `answers`, which may list them in any order, comparing names
/// ignoring ASCII case; records of owners off the chain are ignored.
///
/// Errors: a CNAME back to a name already in the chain ([`Error::CnameLoop`]), more than [`MAX_CHAIN`]
/// names ([`Error::ChainTooLong`]), and one name with CNAMEs to two different targets
/// ([`Error::CnameConflict`]; a repeated identical CNAME is fine).
pub fn resolve<'r>(query: &'r Name, answers: &'r [Record]) -> Result<Chain<'r>> {
    let mut names: Vec<&'r Name, MAX_CHAIN> = Vec::new();
    let mut cnames: Vec<&'r Record, MAX_CHAIN> = Vec::new();
    names.push(query).map_err(|_| Error::ChainTooLong)?;
    let mut current = query;
    // Each step uses a CNAME record with a new owner: at most `answers.len()` steps.
    for _ in 0..answers.len() {
        let mut next: Option<(&'r Record, &'r Name)> = None;
        for record in answers.iter().filter(|r| r.name == *current) {
            if let RecordData::Cname(target) = &record.data {
                match next {
                    Some((_, seen)) if seen != target => return Err(Error::CnameConflict),
                    Some(_) => {}
                    None => next = Some((record, target)),
                }
            }
        }
        let Some((record, target)) = next else { break };
        if names.contains(&target) {
            return Err(Error::CnameLoop);
        }
        names.push(target).map_err(|_| Error::ChainTooLong)?;
        cnames.push(record).map_err(|_| Error::ChainTooLong)?;
        current = target;
    }
    let mut records: Vec<&'r Record, MAX_ANSWERS> = Vec::new();
    for record in answers
        .iter()
        .filter(|r| r.name == *current && !matches!(r.data, RecordData::Cname(_)))
    {
        // More records than MAX_ANSWERS cannot come from a `Response`; from a caller's slice they can.
        records.push(record).map_err(|_| Error::TooManyAnswers)?;
    }
    Ok(Chain {
        names,
        cnames,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record {
            name: name(owner),
            ttl: 300,
            data: RecordData::Cname(name(target)),
        }
    }

    fn a(owner: &str, last: u8, ttl: u32) -> Record {
        Record {
            name: name(owner),
            ttl,
            data: RecordData::A(Ipv4Addr::new(203, 0, 113, last)),
        }
    }

    fn outlook_chain() -> std::vec::Vec<Record> {
        std::vec![
            cname("outlook.office365.com", "outlook.ha.office365.com"),
            cname("outlook.ha.office365.com", "outlook.ms-acdc.office.com"),
            cname("outlook.ms-acdc.office.com", "LHR-efz.ms-acdc.office.com"),
            a("LHR-efz.ms-acdc.office.com", 10, 30),
            Record {
                name: name("lhr-EFZ.ms-acdc.office.com"),
                ttl: 31,
                data: RecordData::Aaaa(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
            },
        ]
    }

    fn names<'a>(c: &'a Chain<'_>) -> std::vec::Vec<&'a str> {
        c.names().iter().map(|n| n.as_str()).collect()
    }

    #[test]
    fn follows_the_chain_in_any_order_to_the_front_door() {
        let query = name("OUTLOOK.office365.com");
        let want = [
            "OUTLOOK.office365.com",
            "outlook.ha.office365.com",
            "outlook.ms-acdc.office.com",
            "LHR-efz.ms-acdc.office.com",
        ];
        let mut answers = outlook_chain();
        // Every rotation, and reversed: the order in the answer section must not matter.
        for reverse in [false, true] {
            for _ in 0..answers.len() {
                answers.rotate_left(1);
                let mut shuffled = answers.clone();
                if reverse {
                    shuffled.reverse();
                }
                let chain = resolve(&query, &shuffled).unwrap();
                assert_eq!(names(&chain), want);
                assert_eq!(
                    chain
                        .final_name()
                        .first_label()
                        .and_then(|l| l.split('-').next()),
                    Some("LHR")
                );
                let mut addrs: std::vec::Vec<_> = chain.addresses().collect();
                addrs.sort();
                assert_eq!(
                    addrs,
                    [
                        ("203.0.113.10".parse().unwrap(), 30),
                        ("2001:db8::10".parse().unwrap(), 31)
                    ]
                );
                assert_eq!(chain.cnames().len(), 3);
            }
        }
    }

    #[test]
    fn records_of_unrelated_owners_are_ignored() {
        let mut answers = outlook_chain();
        answers.push(a("outlook.office365.com", 99, 5)); // on the chain but not the final name
        answers.push(a("evil.example", 66, 5));
        answers.push(cname("evil.example", "outlook.office365.com"));
        answers.push(Record {
            name: name("LHR-efz.ms-acdc.office.com"),
            ttl: 7,
            data: RecordData::Txt(Txt::new(b"front door").unwrap()),
        });
        let query = name("outlook.office365.com");
        let chain = resolve(&query, &answers).unwrap();
        assert_eq!(chain.names().len(), 4);
        assert_eq!(chain.addresses().count(), 2);
        assert_eq!(
            chain
                .txt()
                .map(|(t, ttl)| (t.rdata(), ttl))
                .collect::<std::vec::Vec<_>>(),
            [(&b"\x0afront door"[..], 7)]
        );
    }

    #[test]
    fn no_cname_means_the_query_name_is_final() {
        let answers = [a("whoami.akamai.net", 53, 180)];
        let query = name("WHOAMI.akamai.net");
        let chain = resolve(&query, &answers).unwrap();
        assert_eq!(names(&chain), ["WHOAMI.akamai.net"]);
        assert_eq!(
            chain.addresses().next(),
            Some(("203.0.113.53".parse().unwrap(), 180))
        );
        assert_eq!(
            resolve(&name("other.example"), &answers)
                .unwrap()
                .records()
                .len(),
            0
        );
    }

    #[test]
    fn loops_conflicts_and_overlong_chains_are_errors() {
        let query = name("a.example");
        assert_eq!(
            resolve(&query, &[cname("a.example", "A.example")]),
            Err(Error::CnameLoop)
        );
        let two_step = [
            cname("a.example", "b.example"),
            cname("b.example", "a.example"),
        ];
        assert_eq!(resolve(&query, &two_step), Err(Error::CnameLoop));
        let conflict = [
            cname("a.example", "b.example"),
            cname("A.EXAMPLE", "c.example"),
        ];
        assert_eq!(resolve(&query, &conflict), Err(Error::CnameConflict));
        let repeated = [
            cname("a.example", "b.example"),
            cname("A.EXAMPLE", "B.example"),
            a("b.example", 1, 1),
        ];
        assert_eq!(resolve(&query, &repeated).unwrap().addresses().count(), 1);

        let labels: std::vec::Vec<std::string::String> = (0..=MAX_CHAIN)
            .map(|i| std::format!("n{i}.example"))
            .collect();
        let long: std::vec::Vec<Record> = labels.windows(2).map(|w| cname(&w[0], &w[1])).collect();
        // MAX_CHAIN names are fine, one more is not.
        assert_eq!(
            resolve(&name("n1.example"), &long).unwrap().names().len(),
            MAX_CHAIN
        );
        assert_eq!(
            resolve(&name("n0.example"), &long),
            Err(Error::ChainTooLong)
        );
    }
}
