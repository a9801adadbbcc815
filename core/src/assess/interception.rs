//! TLS inspection verdict: does the certificate chain a front door presented lead to the roots Microsoft
//! 365 uses, or did a middlebox re-issue it, and under whose name?
//!
//! Signatures are not verified (the core has no RSA/ECDSA, and needs none): a middlebox that re-signs
//! traffic shows itself by *names and keys*, not by bad signatures, because the office's own clients
//! trust its CA. The verdict therefore follows the chain by names (each certificate's issuer is the
//! next one's subject, byte for byte) and compares the end of it with the expected set:
//!
//! - **roots** ([`ExpectedRoot`]: subject CN and O, SHA-256 of the SubjectPublicKeyInfo). Servers rarely
//!   send their root, so usually only the top certificate's *issuer name* can be compared. A certificate
//!   in the chain that carries an expected root's key anchors the chain by key; one that carries an
//!   expected root's *name* with another key is an impostor.
//! - **intermediates** (issuing-CA names or parts of them, such as "Microsoft Azure RSA TLS Issuing CA
//!   03" or just "Microsoft"): when configured, the leaf's issuer common name must contain one of them.
//!
//! **Name matching alone cannot tell a same-named fake root from the real one.** A middlebox whose CA is
//! called "DigiCert Global Root G2" and that does not send it passes the root check (the lab's "genuine"
//! chain is made exactly that way). Only a sent root (checked by SPKI hash) or a configured list of
//! expected intermediates narrows that gap, which is why both exist. Real inspection products name
//! their CA after themselves, and that name is what [`Verdict::Intercepted`] reports.

use super::roots_table;
use crate::ascii::contains_ignore_case;
use crate::wire::tls::MAX_CHAIN_LEN;
use crate::wire::x509::{self, Certificate, CertificateSummary, Name, NameSummary, MAX_NAME_LEN};
use core::fmt;

/// Capacity of a [`TrustedRoots`] unless the caller picks another: a replacement set is typically the
/// six bundled roots plus a few the operator adds.
pub const MAX_TRUSTED_ROOTS: usize = 32;

/// A root a genuine chain may end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedRoot<'a> {
    /// The subject's common name (CN), compared ASCII case-insensitively with an issuer's CN.
    pub common_name: &'a str,
    /// The subject's organization (O); when present, an issuer must name it too.
    pub organization: Option<&'a str>,
    /// SHA-256 of the root's SubjectPublicKeyInfo DER: what a sent root must carry.
    pub spki_sha256: [u8; 32],
}

impl<'a> ExpectedRoot<'a> {
    /// The expected root a DER certificate describes (its subject and key), borrowing the names.
    pub fn from_der(der: &'a [u8]) -> Result<Self, RootError> {
        let cert = Certificate::parse(der).map_err(RootError::Unparsable)?;
        let subject = cert.subject();
        Ok(Self {
            common_name: subject.common_name().ok_or(RootError::NoCommonName)?,
            organization: subject.organization(),
            spki_sha256: cert.spki_sha256(),
        })
    }

    /// Whether `name` (an issuer or subject) names this root.
    pub fn is_named(&self, name: &Name<'_>) -> bool {
        let cn = name
            .common_name()
            .is_some_and(|cn| same_text(cn, self.common_name));
        let o = match self.organization {
            Some(want) => name.organization().is_some_and(|o| same_text(o, want)),
            None => true,
        };
        cn && o
    }
}

/// RFC 5280 7.1 compares names case-insensitively; beyond ASCII case, real issuers spell their names
/// exactly.
fn same_text(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The roots Microsoft 365 server certificates chain to, from Debian's ca-certificates (DigiCert Global
/// Root G2, G3 and CA, Microsoft RSA and ECC Root Certificate Authority 2017, and the retired Baltimore
/// CyberTrust Root; core/data/roots/README.md).
pub fn microsoft_roots() -> &'static [ExpectedRoot<'static>] {
    &roots_table::MICROSOFT_ROOTS
}

/// Why a certificate cannot serve as an expected root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootError {
    /// The DER does not parse as a certificate.
    Unparsable(x509::Error),
    /// The subject has no CN, so no issuer name can be matched against it.
    NoCommonName,
    /// The set is full.
    Full,
}

#[cfg(feature = "std")]
impl std::error::Error for RootError {}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unparsable(e) => write!(f, "not a certificate: {e}"),
            Self::NoCommonName => f.write_str("the certificate's subject has no common name"),
            Self::Full => f.write_str("too many trusted roots"),
        }
    }
}

/// A [`RootError`] and the position (from 0) of the certificate that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootsError {
    /// Which certificate of the list.
    pub index: usize,
    /// What is wrong with it.
    pub cause: RootError,
}

impl fmt::Display for RootsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trusted root #{}: {}", self.index + 1, self.cause)
    }
}

/// Expected roots given at run time as DER certificates (the agent's `trusted_roots` PEM file), at most
/// `N`, borrowing their names from the DER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedRoots<'a, const N: usize = MAX_TRUSTED_ROOTS> {
    roots: heapless::Vec<ExpectedRoot<'a>, N>,
}

impl<'a, const N: usize> TrustedRoots<'a, N> {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            roots: heapless::Vec::new(),
        }
    }

    /// The set of these certificates, in order; the first one that cannot be added is the error.
    pub fn from_ders(ders: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, RootsError> {
        let mut set = Self::new();
        for (index, der) in ders.into_iter().enumerate() {
            set.push_der(der)
                .map_err(|cause| RootsError { index, cause })?;
        }
        Ok(set)
    }

    /// Adds one certificate.
    pub fn push_der(&mut self, der: &'a [u8]) -> Result<(), RootError> {
        let root = ExpectedRoot::from_der(der)?;
        self.roots.push(root).map_err(|_| RootError::Full)
    }

    /// The roots, in the order added.
    pub fn as_slice(&self) -> &[ExpectedRoot<'a>] {
        &self.roots
    }
}

/// What a genuine chain must lead to. An empty part is not checked; with both empty nothing can be
/// judged ([`Unjudged::NothingExpected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedIssuers<'a> {
    /// Roots the chain must end in.
    pub roots: &'a [ExpectedRoot<'a>],
    /// Names of the CAs allowed to issue the leaf, or parts of them: the leaf's issuer common name must
    /// contain one (ASCII case-insensitive). `"Microsoft"` admits every Microsoft issuing CA.
    pub intermediates: &'a [&'a str],
}

impl ExpectedIssuers<'static> {
    /// The bundled Microsoft 365 roots, any intermediate.
    pub fn microsoft() -> Self {
        Self {
            roots: microsoft_roots(),
            intermediates: &[],
        }
    }
}

/// How a genuine chain was tied to the expected set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// A certificate in the chain carries an expected root's key (the server sent the root, or a
    /// cross-signed copy of it): the strongest evidence.
    Key,
    /// The top certificate's issuer is named like an expected root, which was not sent (the usual case).
    Name,
    /// No roots were configured; the leaf's issuer is an expected intermediate.
    Intermediate,
}

/// Why a chain is judged intercepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interception {
    /// The chain ends in an issuer that is not an expected root.
    UnexpectedIssuer,
    /// A certificate in the chain is named like an expected root but carries another key: an impostor.
    ImpostorKey,
    /// The chain reaches an expected root, but the leaf's issuer is not one of the expected intermediates.
    UnexpectedIntermediate,
}

/// Why a chain could not be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudged {
    /// The server sent no certificate.
    EmptyChain,
    /// A certificate does not parse.
    Unparsable(x509::Error),
    /// More than [`MAX_CHAIN_LEN`] certificates.
    TooManyCertificates,
    /// Neither roots nor intermediates are expected.
    NothingExpected,
}

/// What a certificate chain says about the path to the server.
// The issuer's name makes one variant a few hundred bytes larger than the others; with no allocator
// there is nothing to box it into, and a check makes one verdict.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The chain leads to the expected set: no inspection seen.
    Genuine(Anchor),
    /// The chain leads elsewhere: a middlebox re-issued the certificate.
    Intercepted {
        /// The issuer that took the place of Microsoft's (e.g. "Contoso Web Filter CA"): the top of the
        /// chain's issuer, the impostor's name, or the leaf's unexpected issuer, as `reason` says.
        issuer: NameSummary,
        /// How the chain left the expected set.
        reason: Interception,
    },
    /// No verdict.
    Unknown(Unjudged),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Genuine(Anchor::Key) => {
                f.write_str("genuine (an expected root's key is in the chain)")
            }
            Self::Genuine(Anchor::Name) => {
                f.write_str("genuine (issued under an expected root's name)")
            }
            Self::Genuine(Anchor::Intermediate) => {
                f.write_str("genuine (issued by an expected intermediate)")
            }
            Self::Intercepted { issuer, reason } => {
                f.write_str("intercepted: ")?;
                match reason {
                    Interception::UnexpectedIssuer => f.write_str("issued by ")?,
                    Interception::ImpostorKey => f.write_str("a different key claims to be ")?,
                    Interception::UnexpectedIntermediate => {
                        f.write_str("unexpected issuing CA ")?
                    }
                }
                write_name(f, issuer)
            }
            Self::Unknown(why) => match why {
                Unjudged::EmptyChain => f.write_str("unknown: no certificate"),
                Unjudged::Unparsable(e) => write!(f, "unknown: unreadable certificate ({e})"),
                Unjudged::TooManyCertificates => f.write_str("unknown: chain too long"),
                Unjudged::NothingExpected => f.write_str("unknown: no expected roots or issuers"),
            },
        }
    }
}

fn write_name(f: &mut fmt::Formatter<'_>, name: &NameSummary) -> fmt::Result {
    match (&name.common_name, &name.organization) {
        (Some(cn), Some(o)) => write!(f, "\"{cn}\" ({o})"),
        (Some(cn), None) => write!(f, "\"{cn}\""),
        (None, Some(o)) => write!(f, "({o})"),
        (None, None) => f.write_str("(unnamed)"),
    }
}

/// Judges a parsed chain (leaf first, the rest in any order, as TLS 1.2 servers sometimes send it).
pub fn verdict(chain: &[Certificate<'_>], expected: &ExpectedIssuers<'_>) -> Verdict {
    if expected.roots.is_empty() && expected.intermediates.is_empty() {
        return Verdict::Unknown(Unjudged::NothingExpected);
    }
    if chain.len() > MAX_CHAIN_LEN {
        return Verdict::Unknown(Unjudged::TooManyCertificates);
    }
    let Some(leaf) = chain.first() else {
        return Verdict::Unknown(Unjudged::EmptyChain);
    };
    let intercepted = |name: &Name<'_>, reason| Verdict::Intercepted {
        issuer: summarize_name(name),
        reason,
    };
    let mut anchor = Anchor::Intermediate;
    if !expected.roots.is_empty() {
        match anchor_in_roots(leaf, chain, expected.roots) {
            Ok(a) => anchor = a,
            Err((name, reason)) => return intercepted(&name, reason),
        }
    }
    if !expected.intermediates.is_empty() {
        let issuer = leaf.issuer();
        let known = issuer.common_name().is_some_and(|cn| {
            expected
                .intermediates
                .iter()
                .any(|i| contains_ignore_case(cn, i))
        });
        if !known {
            return intercepted(&issuer, Interception::UnexpectedIntermediate);
        }
    }
    Verdict::Genuine(anchor)
}

/// Follows the chain from the leaf by issuer name (each certificate used once, so a loop ends) and
/// ties its end to an expected root, or returns the name where it left the expected set.
fn anchor_in_roots<'c, 'a>(
    leaf: &'c Certificate<'a>,
    chain: &'c [Certificate<'a>],
    roots: &[ExpectedRoot<'_>],
) -> Result<Anchor, (Name<'a>, Interception)> {
    // The leaf is chain[0].
    let mut used = [false; MAX_CHAIN_LEN];
    let mut at = 0;
    let mut top = leaf;
    loop {
        if let Some(u) = used.get_mut(at) {
            *u = true;
        }
        let spki = top.spki_sha256();
        if roots.iter().any(|r| r.spki_sha256 == spki) {
            return Ok(Anchor::Key);
        }
        if roots.iter().any(|r| r.is_named(&top.subject())) {
            return Err((top.subject(), Interception::ImpostorKey));
        }
        if top.issuer().der() == top.subject().der() {
            // A self-signed certificate that is not an expected root: the middlebox sent its own CA.
            return Err((top.subject(), Interception::UnexpectedIssuer));
        }
        let issuer = top.issuer().der();
        let next = chain
            .iter()
            .enumerate()
            .find(|(i, c)| !used.get(*i).copied().unwrap_or(true) && c.subject().der() == issuer);
        match next {
            Some((i, c)) => {
                at = i;
                top = c;
            }
            None => break,
        }
    }
    if roots.iter().any(|r| r.is_named(&top.issuer())) {
        Ok(Anchor::Name)
    } else {
        Err((top.issuer(), Interception::UnexpectedIssuer))
    }
}

/// A name copied into a [`NameSummary`], each part cut to [`MAX_NAME_LEN`] bytes at a character
/// boundary (a longer CN breaks X.520's bound, but must still be reported).
pub fn summarize_name(name: &Name<'_>) -> NameSummary {
    NameSummary {
        common_name: name.common_name().map(truncated::<MAX_NAME_LEN>),
        organization: name.organization().map(truncated::<MAX_NAME_LEN>),
    }
}

/// What a report says about a certificate, with names cut to fit (see [`summarize_name`]).
pub fn summarize(cert: &Certificate<'_>) -> CertificateSummary {
    CertificateSummary {
        subject: summarize_name(&cert.subject()),
        issuer: summarize_name(&cert.issuer()),
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        spki_sha256: cert.spki_sha256(),
        ca: cert.is_ca(),
        dns_name_count: u16::try_from(cert.dns_names().count()).unwrap_or(u16::MAX),
    }
}

/// The longest prefix of `s` that fits `N` bytes and ends at a character boundary.
pub fn truncated<const N: usize>(s: &str) -> heapless::String<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = heapless::String::new();
    // Fits by construction.
    let _ = out.push_str(s.get(..end).unwrap_or(""));
    out
}

/// The leaf's validity at the wall-clock time the shell passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// notBefore is still ahead (a wrong clock on one side, or a freshly minted middlebox certificate).
    NotYetValid {
        /// Seconds until notBefore.
        starts_in_s: u64,
    },
    /// Within notBefore..=notAfter (RFC 5280: both inclusive).
    Valid {
        /// Seconds until notAfter.
        expires_in_s: u64,
    },
    /// notAfter has passed.
    Expired {
        /// Seconds since notAfter.
        expired_for_s: u64,
    },
}

impl Validity {
    /// The validity of a certificate valid from `not_before` to `not_after` at `now` (Unix seconds).
    pub fn at(not_before: i64, not_after: i64, now: i64) -> Self {
        if now < not_before {
            Self::NotYetValid {
                starts_in_s: not_before.abs_diff(now),
            }
        } else if now <= not_after {
            Self::Valid {
                expires_in_s: not_after.abs_diff(now),
            }
        } else {
            Self::Expired {
                expired_for_s: now.abs_diff(not_after),
            }
        }
    }
}

/// Everything the probe reports about a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainAssessment {
    /// Genuine, intercepted (by whom) or unknown.
    pub verdict: Verdict,
    /// How many certificates the server sent (counted up to [`MAX_CHAIN_LEN`]).
    pub length: u8,
    /// The leaf, when it parsed.
    pub leaf: Option<CertificateSummary>,
    /// Whether the leaf's dNSNames cover the host name asked for (SNI); `None` without a leaf or a name.
    pub covers_host: Option<bool>,
    /// The leaf's validity at the shell's wall-clock time; `None` without a leaf or a clock.
    pub validity: Option<Validity>,
}

/// Parses and judges a chain of DER certificates (leaf first), checks that the leaf covers `host`, and
/// its validity at `now_unix` (seconds; `None`: no wall clock, no judgement).
pub fn assess_chain<'c>(
    ders: impl IntoIterator<Item = &'c [u8]>,
    expected: &ExpectedIssuers<'_>,
    host: Option<&str>,
    now_unix: Option<i64>,
) -> ChainAssessment {
    let mut certs: heapless::Vec<Certificate<'c>, MAX_CHAIN_LEN> = heapless::Vec::new();
    let mut length = 0u8;
    let mut leaf_parsed = false;
    let mut problem = None;
    for der in ders {
        if usize::from(length) == MAX_CHAIN_LEN {
            problem = Some(Unjudged::TooManyCertificates);
            break;
        }
        length += 1;
        match Certificate::parse(der) {
            Ok(cert) => {
                leaf_parsed |= length == 1;
                // Fits: at most MAX_CHAIN_LEN certificates get here.
                let _ = certs.push(cert);
            }
            Err(e) => {
                problem.get_or_insert(Unjudged::Unparsable(e));
            }
        }
    }
    // When a later certificate is unreadable the leaf's own fields are still reported.
    let leaf = certs.first().filter(|_| leaf_parsed);
    let verdict = match problem {
        Some(why) => Verdict::Unknown(why),
        None => verdict(&certs, expected),
    };
    ChainAssessment {
        verdict,
        length,
        leaf: leaf.map(summarize),
        covers_host: leaf.zip(host).map(|(l, h)| l.covers_host(h)),
        validity: leaf
            .zip(now_unix)
            .map(|(l, now)| Validity::at(l.not_before(), l.not_after(), now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::x509::tests::{expected as openssl_says, pem_to_der};
    use std::path::PathBuf;
    use std::vec::Vec;

    fn core_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = core_dir().join(format!("tests/fixtures/tls/{name}.pem"));
        pem_to_der(&std::fs::read_to_string(&path).unwrap())
    }

    fn parse(ders: &[Vec<u8>]) -> Vec<Certificate<'_>> {
        ders.iter()
            .map(|d| Certificate::parse(d).unwrap())
            .collect()
    }

    fn issuer_cn(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Intercepted { issuer, .. } => issuer.common_name.as_deref(),
            _ => None,
        }
    }

    fn genuine_chain() -> Vec<Vec<u8>> {
        std::vec![fixture("genuine-leaf"), fixture("genuine-intermediate")]
    }

    #[test]
    fn bundled_table_matches_the_core_parser() {
        let dir = core_dir().join("data/roots");
        let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
        let files: Vec<&str> = sums
            .lines()
            .map(|l| l.split_once("  ").unwrap().1)
            .collect();
        assert_eq!(files.len(), microsoft_roots().len());
        for (file, root) in files.iter().zip(microsoft_roots()) {
            let der = pem_to_der(&std::fs::read_to_string(dir.join(file)).unwrap());
            assert_eq!(ExpectedRoot::from_der(&der).as_ref(), Ok(root), "{file}");
        }
        let names: Vec<&str> = microsoft_roots().iter().map(|r| r.common_name).collect();
        for want in [
            "DigiCert Global Root G2",
            "DigiCert Global Root G3",
            "DigiCert Global Root CA",
            "Microsoft RSA Root Certificate Authority 2017",
            "Microsoft ECC Root Certificate Authority 2017",
            "Baltimore CyberTrust Root",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        // The same key openssl computes for the copy among the TLS fixtures.
        let g2 = microsoft_roots()
            .iter()
            .find(|r| r.common_name == "DigiCert Global Root G2")
            .unwrap();
        assert_eq!(
            hex::encode(g2.spki_sha256),
            openssl_says("DigiCert_Global_Root_G2").spki_sha256
        );
    }

    #[test]
    fn the_lab_chain_is_genuine_under_its_own_root_and_under_microsofts_names() {
        let root = fixture("genuine-root");
        let own = TrustedRoots::<1>::from_ders([&root[..]]).unwrap();
        let chain = genuine_chain();
        let certs = parse(&chain);
        let expected = ExpectedIssuers {
            roots: own.as_slice(),
            intermediates: &[],
        };
        assert_eq!(verdict(&certs, &expected), Verdict::Genuine(Anchor::Name));
        // The lab root is named like DigiCert Global Root G2 and is not sent: the bundled table
        // recognises the chain by that name.
        assert_eq!(
            verdict(&certs, &ExpectedIssuers::microsoft()),
            Verdict::Genuine(Anchor::Name)
        );
    }

    #[test]
    fn a_sent_root_must_carry_the_expected_key() {
        let mut chain = genuine_chain();
        chain.push(fixture("genuine-root"));
        let certs = parse(&chain);
        let root = fixture("genuine-root");
        let own = TrustedRoots::<4>::from_ders([&root[..]]).unwrap();
        let own = ExpectedIssuers {
            roots: own.as_slice(),
            intermediates: &[],
        };
        assert_eq!(verdict(&certs, &own), Verdict::Genuine(Anchor::Key));
        // Against the real DigiCert key, the lab's same-named root is an impostor.
        let v = verdict(&certs, &ExpectedIssuers::microsoft());
        assert_eq!(issuer_cn(&v), Some("DigiCert Global Root G2"));
        assert!(matches!(
            v,
            Verdict::Intercepted {
                reason: Interception::ImpostorKey,
                ..
            }
        ));
        // Order after the leaf does not matter, nor does an unrelated extra certificate.
        let shuffled = std::vec![
            chain[0].clone(),
            fixture("inspection-root"),
            chain[2].clone(),
            chain[1].clone()
        ];
        assert_eq!(
            verdict(&parse(&shuffled), &own),
            Verdict::Genuine(Anchor::Key)
        );
    }

    #[test]
    fn the_web_filter_chain_is_intercepted_and_named() {
        let chain = std::vec![fixture("inspection-leaf"), fixture("inspection-root")];
        for sent in [&chain[..], &chain[..1]] {
            let v = verdict(&parse(sent), &ExpectedIssuers::microsoft());
            assert_eq!(
                v,
                Verdict::Intercepted {
                    issuer: NameSummary {
                        common_name: Some(truncated("Contoso Web Filter CA")),
                        organization: Some(truncated("Contoso Ltd")),
                    },
                    reason: Interception::UnexpectedIssuer,
                },
                "{} certificates",
                sent.len()
            );
            assert_eq!(
                v.to_string(),
                "intercepted: issued by \"Contoso Web Filter CA\" (Contoso Ltd)"
            );
        }
    }

    #[test]
    fn expected_intermediates_narrow_the_verdict() {
        let chain = genuine_chain();
        let certs = parse(&chain);
        let strict = |intermediates| ExpectedIssuers {
            intermediates,
            ..ExpectedIssuers::microsoft()
        };
        assert_eq!(
            verdict(&certs, &strict(&["microsoft azure rsa tls issuing ca 03"])),
            Verdict::Genuine(Anchor::Name)
        );
        // A part of the name admits every issuing CA that carries it (the agent's default).
        assert_eq!(
            verdict(&certs, &strict(&["DigiCert", "MICROSOFT"])),
            Verdict::Genuine(Anchor::Name)
        );
        assert!(matches!(
            verdict(&certs, &strict(&["Contoso", ""])),
            Verdict::Intercepted { .. }
        ));
        let v = verdict(&certs, &strict(&["Microsoft Azure RSA TLS Issuing CA 04"]));
        assert_eq!(issuer_cn(&v), Some("Microsoft Azure RSA TLS Issuing CA 03"));
        assert!(v
            .to_string()
            .starts_with("intercepted: unexpected issuing CA"));
        let only_names = ExpectedIssuers {
            roots: &[],
            intermediates: &["Microsoft Azure RSA TLS Issuing CA 03"],
        };
        assert_eq!(
            verdict(&certs, &only_names),
            Verdict::Genuine(Anchor::Intermediate)
        );
        // The web filter's leaf fails the intermediate check too, named by its issuer.
        let inspection = [fixture("inspection-leaf")];
        let v = verdict(&parse(&inspection), &only_names);
        assert_eq!(issuer_cn(&v), Some("Contoso Web Filter CA"));
    }

    #[test]
    fn chains_that_cannot_be_judged_say_why() {
        let microsoft = ExpectedIssuers::microsoft();
        let none: [&[u8]; 0] = [];
        assert_eq!(
            assess_chain(none, &microsoft, None, None).verdict,
            Verdict::Unknown(Unjudged::EmptyChain)
        );
        let garbage: &[u8] = &[0x30, 0x03, 1, 2, 3];
        let a = assess_chain(
            [garbage],
            &microsoft,
            Some("outlook.office365.com"),
            Some(0),
        );
        assert!(matches!(
            a.verdict,
            Verdict::Unknown(Unjudged::Unparsable(_))
        ));
        assert_eq!(
            (a.length, a.leaf, a.covers_host, a.validity),
            (1, None, None, None)
        );
        // An unreadable intermediate still leaves the leaf's own facts.
        let leaf = fixture("genuine-leaf");
        let a = assess_chain(
            [&leaf[..], garbage],
            &microsoft,
            Some("outlook.office365.com"),
            None,
        );
        assert!(matches!(
            a.verdict,
            Verdict::Unknown(Unjudged::Unparsable(_))
        ));
        assert_eq!(a.covers_host, Some(true));
        let nothing = ExpectedIssuers {
            roots: &[],
            intermediates: &[],
        };
        let chain = genuine_chain();
        assert_eq!(
            verdict(&parse(&chain), &nothing),
            Verdict::Unknown(Unjudged::NothingExpected)
        );
        let long: Vec<&[u8]> = (0..=MAX_CHAIN_LEN).map(|_| &leaf[..]).collect();
        let a = assess_chain(long, &microsoft, None, None);
        assert_eq!(a.verdict, Verdict::Unknown(Unjudged::TooManyCertificates));
        assert_eq!(usize::from(a.length), MAX_CHAIN_LEN);
    }

    #[test]
    fn the_leaf_is_checked_against_the_host_and_the_wall_clock() {
        let chain = genuine_chain();
        let e = openssl_says("genuine-leaf");
        let assess = |host, now| {
            assess_chain(
                chain.iter().map(|c| &c[..]),
                &ExpectedIssuers::microsoft(),
                host,
                now,
            )
        };
        let a = assess(Some("smtp.office365.com"), Some(e.not_after));
        assert_eq!(a.verdict, Verdict::Genuine(Anchor::Name));
        assert_eq!(a.length, 2);
        assert_eq!(a.covers_host, Some(true));
        assert_eq!(a.validity, Some(Validity::Valid { expires_in_s: 0 }));
        let leaf = a.leaf.unwrap();
        assert_eq!(leaf.not_after, e.not_after);
        assert_eq!(leaf.issuer.common_name.as_deref(), e.issuer_cn.as_deref());
        assert_eq!(usize::from(leaf.dns_name_count), e.dns_names.len());

        let a = assess(Some("teams.microsoft.com"), Some(e.not_after + 1));
        assert_eq!(a.covers_host, Some(false));
        assert_eq!(a.validity, Some(Validity::Expired { expired_for_s: 1 }));
        let a = assess(None, Some(e.not_before - 90));
        assert_eq!(a.covers_host, None);
        assert_eq!(a.validity, Some(Validity::NotYetValid { starts_in_s: 90 }));
        assert_eq!(assess(None, None).validity, None);
        assert_eq!(
            Validity::at(100, 200, 150),
            Validity::Valid { expires_in_s: 50 }
        );
        assert_eq!(
            Validity::at(100, 200, 100),
            Validity::Valid { expires_in_s: 100 }
        );
    }

    #[test]
    fn trusted_roots_are_bounded_and_refuse_what_is_not_a_root_name() {
        let g2 = fixture("DigiCert_Global_Root_G2");
        let g3 = fixture("DigiCert_Global_Root_G3");
        let mut one = TrustedRoots::<1>::new();
        assert_eq!(one.push_der(&g2), Ok(()));
        assert_eq!(one.push_der(&g3), Err(RootError::Full));
        assert_eq!(one.as_slice().len(), 1);
        let err = TrustedRoots::<4>::from_ders([&g2[..], &[0x30, 0x00][..]]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(matches!(err.cause, RootError::Unparsable(_)));
        assert!(err
            .to_string()
            .starts_with("trusted root #2: not a certificate"));
        let both = TrustedRoots::<4>::from_ders([&g2[..], &g3[..]]).unwrap();
        assert_eq!(both.as_slice()[1].common_name, "DigiCert Global Root G3");
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let s: String = "é".repeat(40); // 80 bytes
        let cut = truncated::<63>(&s);
        assert_eq!(cut.len(), 62);
        assert!(s.starts_with(cut.as_str()));
        assert_eq!(truncated::<128>(&s).as_str(), s);
        assert_eq!(truncated::<4>("Contoso").as_str(), "Cont");
    }
}
