//! `cargo xtask gen [--check]`: Rust tables generated from the derived data in core/data/.
//!
//! - The IATA location codes with place and coordinates that the core's assessment uses to name a front
//!   door (core/data/airports.csv -> core/src/assess/location_table.rs).
//! - The roots Microsoft 365 chains end in, as the TLS verdict expects them: subject CN and O and the
//!   SHA-256 of the SubjectPublicKeyInfo (core/data/roots/*.crt, listed with their hashes in
//!   core/data/roots/SHA256SUMS -> core/src/assess/roots_table.rs).
//!
//! The data files are the reviewed artefacts (their provenance is in core/data/); the Rust files are
//! compact `no_std` renderings that nobody edits by hand. `--check` fails if a committed file is not what
//! the data generates, and the tests below run that check with every `cargo test`.

use crate::util::root;
use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const CSV: &str = "core/data/airports.csv";
const TABLE: &str = "core/src/assess/location_table.rs";
const HEADER: [&str; 5] = ["code", "city", "country", "lat", "lon"];
const ROOTS_DIR: &str = "core/data/roots";
const ROOTS_TABLE: &str = "core/src/assess/roots_table.rs";

pub fn run(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [a] if a == "--check" => true,
        _ => bail!("usage: cargo xtask gen [--check]"),
    };
    let root = root();
    for (path, want) in [generate(&root)?, generate_roots(&root)?] {
        if check {
            up_to_date(&path, &want)?;
            eprintln!("gen: {} is up to date", path.display());
        } else {
            std::fs::write(&path, &want).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("gen: wrote {}", path.display());
        }
    }
    Ok(())
}

/// Fails unless the committed file at `path` holds `want`.
fn up_to_date(path: &Path, want: &str) -> Result<()> {
    let have = std::fs::read_to_string(path).unwrap_or_default();
    ensure!(
        have == want,
        "{} is stale: run `cargo xtask gen` and commit it",
        path.display()
    );
    Ok(())
}

/// The location table file's path and the text it must hold.
fn generate(root: &Path) -> Result<(PathBuf, String)> {
    let csv_path = root.join(CSV);
    let text = std::fs::read_to_string(&csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let rows = parse_locations(&text).with_context(|| format!("in {}", csv_path.display()))?;
    Ok((root.join(TABLE), render(&rows)))
}

struct Row {
    code: [u8; 3],
    city: String,
    country: [u8; 2],
    /// Hundredths of a degree: about 1 km, finer than anything the table is used for (an airport
    /// stands for a metro area's front door tens of km away), and it fits an i16.
    lat: i16,
    lon: i16,
}

fn parse_locations(text: &str) -> Result<Vec<Row>> {
    let mut records = parse_csv(text)?.into_iter();
    let header = records.next().context("empty file")?;
    ensure!(
        header == HEADER,
        "header is {header:?}, expected {HEADER:?}"
    );
    let mut rows: Vec<Row> = Vec::new();
    for (i, rec) in records.enumerate() {
        let line = i + 2;
        let [code, city, country, lat, lon]: [String; 5] = rec
            .try_into()
            .map_err(|r: Vec<String>| anyhow::anyhow!("line {line}: {} fields", r.len()))?;
        let code: [u8; 3] =
            letters(&code).with_context(|| format!("line {line}: code {code:?}"))?;
        let country: [u8; 2] =
            letters(&country).with_context(|| format!("line {line}: country {country:?}"))?;
        ensure!(!city.is_empty(), "line {line}: empty city");
        if let Some(prev) = rows.last() {
            ensure!(
                prev.code < code,
                "line {line}: codes must be unique and sorted"
            );
        }
        rows.push(Row {
            code,
            city,
            country,
            lat: centidegrees(&lat, 90.0).with_context(|| format!("line {line}: lat {lat:?}"))?,
            lon: centidegrees(&lon, 180.0).with_context(|| format!("line {line}: lon {lon:?}"))?,
        });
    }
    ensure!(
        rows.len() <= u16::MAX as usize,
        "{} rows do not fit u16 indices",
        rows.len()
    );
    Ok(rows)
}

/// Upper-case ASCII letters, exactly `N` of them.
fn letters<const N: usize>(s: &str) -> Result<[u8; N]> {
    let b: [u8; N] = s.as_bytes().try_into().context("wrong length")?;
    ensure!(
        b.iter().all(u8::is_ascii_uppercase),
        "not upper-case letters"
    );
    Ok(b)
}

fn centidegrees(s: &str, limit: f64) -> Result<i16> {
    let v: f64 = s.parse()?;
    ensure!(v.is_finite() && v.abs() <= limit, "out of range");
    Ok((v * 100.0).round() as i16)
}

/// RFC 4180 records: comma-separated, fields optionally in double quotes with `""` for a quote.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut fields = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            let mut field = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => field.push(c),
                        None => bail!("line {}: unterminated quote", i + 1),
                    }
                }
            }
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            fields.push(field);
            if chars.next().is_none() {
                break;
            }
        }
        records.push(fields);
    }
    Ok(records)
}

/// Base-26 packing of a code: sorts like the code itself and fits a u16 (26^3 = 17576).
fn pack(code: [u8; 3]) -> u16 {
    code.iter()
        .fold(0, |acc, &c| acc * 26 + u16::from(c - b'A'))
}

fn render(rows: &[Row]) -> String {
    let mut countries = BTreeMap::new();
    for r in rows {
        countries.entry(r.country).or_insert(0u8);
    }
    for (i, v) in countries.values_mut().enumerate() {
        *v = u8::try_from(i).expect("fewer than 256 countries");
    }
    // Cities are deduplicated: many codes share one (London, New York, Tokyo...).
    let mut city_ids: BTreeMap<&str, u16> = BTreeMap::new();
    let mut city_text = String::new();
    let mut city_ends = Vec::new();
    let mut city_of = Vec::with_capacity(rows.len());
    for r in rows {
        let next = city_ids.len() as u16;
        let id = *city_ids.entry(&r.city).or_insert_with(|| {
            city_text.push_str(&r.city);
            city_ends.push(city_text.len() as u32);
            next
        });
        city_of.push(id);
    }

    let mut out = String::new();
    let w = &mut out;
    writeln!(
        w,
        "// @generated by `cargo xtask gen` from core/data/airports.csv: do not edit."
    )
    .unwrap();
    writeln!(
        w,
        "// {} codes, {} places, {} countries.",
        rows.len(),
        city_ends.len(),
        countries.len()
    )
    .unwrap();
    writeln!(w).unwrap();
    writeln!(w, "/// Number of known location codes.").unwrap();
    writeln!(w, "pub(super) const LEN: usize = {};", rows.len()).unwrap();
    writeln!(w, "/// Number of distinct place names.").unwrap();
    writeln!(w, "pub(super) const PLACES: usize = {};", city_ends.len()).unwrap();
    array(
        w,
        "Codes packed base 26 (`AAA` = 0), ascending.",
        "CODES",
        "u16",
        "LEN",
        rows.iter().map(|r| pack(r.code)),
    );
    array(
        w,
        "Latitude, hundredths of a degree.",
        "LAT",
        "i16",
        "LEN",
        rows.iter().map(|r| r.lat),
    );
    array(
        w,
        "Longitude, hundredths of a degree.",
        "LON",
        "i16",
        "LEN",
        rows.iter().map(|r| r.lon),
    );
    array(
        w,
        "Index into `COUNTRIES` (two letters each).",
        "COUNTRY",
        "u8",
        "LEN",
        rows.iter().map(|r| countries[&r.country]),
    );
    array(
        w,
        "Index into `PLACE_END`.",
        "PLACE",
        "u16",
        "LEN",
        city_of.iter().copied(),
    );
    array(
        w,
        "End offset of each place name in `PLACE_TEXT`.",
        "PLACE_END",
        "u32",
        "PLACES",
        city_ends.iter().copied(),
    );
    let cc: String = countries
        .keys()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    writeln!(w, "/// ISO 3166-1 alpha-2 codes, two bytes each.").unwrap();
    writeln!(w, "pub(super) static COUNTRIES: &str = {cc:?};").unwrap();
    writeln!(w, "/// Place names, concatenated.").unwrap();
    writeln!(w, "pub(super) static PLACE_TEXT: &str = {city_text:?};").unwrap();
    out
}

fn array<T: std::fmt::Display>(
    w: &mut String,
    doc: &str,
    name: &str,
    ty: &str,
    len: &str,
    items: impl Iterator<Item = T>,
) {
    writeln!(w, "/// {doc}").unwrap();
    writeln!(w, "pub(super) static {name}: [{ty}; {len}] = [").unwrap();
    let items: Vec<String> = items.map(|v| v.to_string()).collect();
    for chunk in items.chunks(16) {
        writeln!(w, "    {},", chunk.join(", ")).unwrap();
    }
    writeln!(w, "];").unwrap();
}

/// One bundled root as the core's verdict expects it.
#[derive(Debug, PartialEq)]
struct Root {
    file: String,
    common_name: String,
    organization: Option<String>,
    spki_sha256: [u8; 32],
}

/// The roots table file's path and the text it must hold. Every `.crt` in the directory must be listed
/// in SHA256SUMS with its hash, so a swapped or stray certificate cannot slip into the table unreviewed.
fn generate_roots(root: &Path) -> Result<(PathBuf, String)> {
    let dir = root.join(ROOTS_DIR);
    let sums_path = dir.join("SHA256SUMS");
    let sums = std::fs::read_to_string(&sums_path)
        .with_context(|| format!("reading {}", sums_path.display()))?;
    let mut roots = Vec::new();
    for (i, line) in sums.lines().enumerate() {
        let (hash, file) = line
            .split_once("  ")
            .with_context(|| format!("SHA256SUMS line {}: not `<sha256>  <file>`", i + 1))?;
        ensure!(
            !file.contains('/') && file.ends_with(".crt"),
            "SHA256SUMS line {}: {file:?} is not a .crt file in {ROOTS_DIR}",
            i + 1
        );
        let path = dir.join(file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let have = hex(&Sha256::digest(&bytes));
        ensure!(
            have == hash,
            "{file}: sha256 {have} is not the {hash} of SHA256SUMS (core/data/roots/README.md)"
        );
        let pem = std::str::from_utf8(&bytes).with_context(|| format!("{file}: not PEM"))?;
        let der = pem_to_der(pem).with_context(|| format!("{file}: bad PEM"))?;
        let (common_name, organization, spki_sha256) =
            parse_root(&der).with_context(|| format!("{file}: bad certificate"))?;
        roots.push(Root {
            file: file.to_string(),
            common_name,
            organization,
            spki_sha256,
        });
    }
    ensure!(!roots.is_empty(), "{} lists no roots", sums_path.display());
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        ensure!(
            !name.ends_with(".crt") || roots.iter().any(|r| r.file == name),
            "{name} is in {ROOTS_DIR} but not in SHA256SUMS"
        );
    }
    Ok((root.join(ROOTS_TABLE), render_roots(&roots)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of a PEM file's one CERTIFICATE block.
fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    ensure!(
        pem.matches(BEGIN).count() == 1,
        "not exactly one certificate"
    );
    let body = pem
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(body, _)| body)
        .context("no END line")?;
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    let mut padding = 0;
    for c in body.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => bail!("bad base64 byte {c:#x}"),
        };
        ensure!(padding == 0, "base64 after padding");
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// One DER value at the start of some bytes, and what follows it.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    /// Tag, length and contents.
    whole: &'a [u8],
    rest: &'a [u8],
}

/// Splits the first DER value off `data`.
fn der_split(data: &[u8]) -> Result<Tlv<'_>> {
    let (&tag, rest) = data.split_first().context("truncated DER")?;
    ensure!(tag & 0x1f != 0x1f, "multi-byte DER tag");
    let (&first, rest) = rest.split_first().context("truncated DER")?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        ensure!((1..=4).contains(&n), "bad DER length");
        let octets = rest.get(..n).context("truncated DER")?;
        (
            octets.iter().fold(0usize, |a, &b| a << 8 | usize::from(b)),
            2 + n,
        )
    };
    ensure!(
        data.len() - header >= len,
        "DER value runs past its container"
    );
    Ok(Tlv {
        tag,
        contents: &data[header..header + len],
        whole: &data[..header + len],
        rest: &data[header + len..],
    })
}

fn der_expect(data: &[u8], tag: u8) -> Result<Tlv<'_>> {
    let tlv = der_split(data)?;
    ensure!(
        tlv.tag == tag,
        "DER tag {:#04x} where {tag:#04x} belongs",
        tlv.tag
    );
    Ok(tlv)
}

/// Subject CN and O and the SPKI hash of a self-signed certificate: the fields the table keeps. The
/// core's own X.509 parser reads the same files in a test and must agree.
fn parse_root(der: &[u8]) -> Result<(String, Option<String>, [u8; 32])> {
    const SEQUENCE: u8 = 0x30;
    let cert = der_expect(der, SEQUENCE)?;
    ensure!(cert.rest.is_empty(), "bytes after the certificate");
    let tbs = der_expect(cert.contents, SEQUENCE)?;
    let mut r = tbs.contents;
    if r.first() == Some(&0xa0) {
        r = der_split(r)?.rest; // version
    }
    r = der_expect(r, 0x02)?.rest; // serialNumber
    r = der_expect(r, SEQUENCE)?.rest; // signature
    let issuer = der_expect(r, SEQUENCE)?;
    let validity = der_expect(issuer.rest, SEQUENCE)?;
    let subject = der_expect(validity.rest, SEQUENCE)?;
    let spki = der_expect(subject.rest, SEQUENCE)?;
    ensure!(
        issuer.whole == subject.whole,
        "not self-signed: a root's issuer is its subject"
    );
    let (mut common_name, mut organization) = (None, None);
    let mut rdns = subject.contents;
    while !rdns.is_empty() {
        let set = der_expect(rdns, 0x31)?;
        rdns = set.rest;
        let mut atvs = set.contents;
        while !atvs.is_empty() {
            let atv = der_expect(atvs, SEQUENCE)?;
            atvs = atv.rest;
            let oid = der_expect(atv.contents, 0x06)?;
            let value = der_split(oid.rest)?;
            let slot = match oid.contents {
                [0x55, 0x04, 0x03] => &mut common_name,
                [0x55, 0x04, 0x0a] => &mut organization,
                _ => continue,
            };
            ensure!(
                matches!(value.tag, 0x0c | 0x13 | 0x14 | 0x16),
                "name in string type {:#04x}",
                value.tag
            );
            let text = std::str::from_utf8(value.contents).context("name not UTF-8")?;
            slot.get_or_insert_with(|| text.to_string());
        }
    }
    let common_name = common_name.context("subject has no common name")?;
    Ok((common_name, organization, Sha256::digest(spki.whole).into()))
}

fn render_roots(roots: &[Root]) -> String {
    let mut out = String::new();
    let w = &mut out;
    writeln!(
        w,
        "// @generated by `cargo xtask gen` from core/data/roots/ (SHA256SUMS): do not edit."
    )
    .unwrap();
    writeln!(w, "// {} roots.", roots.len()).unwrap();
    writeln!(w).unwrap();
    writeln!(w, "use super::interception::ExpectedRoot;").unwrap();
    writeln!(w).unwrap();
    writeln!(
        w,
        "/// The bundled expected roots: subject CN and O, SHA-256 of the SubjectPublicKeyInfo DER."
    )
    .unwrap();
    writeln!(
        w,
        "pub(super) static MICROSOFT_ROOTS: [ExpectedRoot<'static>; {}] = [",
        roots.len()
    )
    .unwrap();
    for r in roots {
        writeln!(w, "    // {}", r.file).unwrap();
        writeln!(w, "    ExpectedRoot {{").unwrap();
        writeln!(w, "        common_name: {:?},", r.common_name).unwrap();
        match &r.organization {
            Some(o) => writeln!(w, "        organization: Some({o:?}),").unwrap(),
            None => writeln!(w, "        organization: None,").unwrap(),
        }
        writeln!(w, "        spki_sha256: [").unwrap();
        for chunk in r.spki_sha256.chunks(16) {
            let bytes: Vec<String> = chunk.iter().map(|b| format!("0x{b:02x}")).collect();
            writeln!(w, "            {},", bytes.join(", ")).unwrap();
        }
        writeln!(w, "        ],").unwrap();
        writeln!(w, "    }},").unwrap();
    }
    writeln!(w, "];").unwrap();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_location_table_is_what_the_csv_generates() {
        let (path, want) = generate(&root()).unwrap();
        up_to_date(&path, &want).unwrap();
    }

    #[test]
    fn csv_fields_with_quotes_and_commas_survive() {
        let recs = parse_csv("a,\"b, c\",\"say \"\"hi\"\"\",\n").unwrap();
        assert_eq!(recs, vec![vec!["a", "b, c", "say \"hi\"", ""]]);
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let head = "code,city,country,lat,lon\n";
        for (bad, what) in [
            (
                "LHR,London,GB,51.47,-0.46\nAMS,Amsterdam,NL,52.3,4.76\n",
                "sorted",
            ),
            ("lhr,London,GB,51.47,-0.46\n", "code"),
            ("LHR,London,GBR,51.47,-0.46\n", "country"),
            ("LHR,London,GB,91,-0.46\n", "lat"),
            ("LHR,,GB,51.47,-0.46\n", "empty city"),
        ] {
            let err = format!(
                "{:#}",
                parse_locations(&format!("{head}{bad}")).err().unwrap()
            );
            assert!(err.contains(what), "{bad:?}: {err}");
        }
    }

    #[test]
    fn packed_codes_sort_like_the_codes() {
        assert_eq!(pack(*b"AAA"), 0);
        assert_eq!(pack(*b"ZZZ"), 26 * 26 * 26 - 1);
        assert!(pack(*b"AZZ") < pack(*b"BAA"));
    }

    #[test]
    fn committed_roots_table_is_what_the_certificates_generate() {
        let (path, want) = generate_roots(&root()).unwrap();
        up_to_date(&path, &want).unwrap();
        assert!(want.contains("common_name: \"DigiCert Global Root G2\","));
    }

    /// A scratch workspace holding a copy of core/data/roots.
    fn roots_copy(name: &str) -> PathBuf {
        let tmp = std::env::temp_dir().join(format!("xtask-gen-{name}-{}", std::process::id()));
        let dir = tmp.join(ROOTS_DIR);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(root().join(ROOTS_DIR)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        tmp
    }

    #[test]
    fn a_root_that_differs_from_its_listed_hash_or_is_unlisted_is_refused() {
        let tmp = roots_copy("tamper");
        let dir = tmp.join(ROOTS_DIR);
        let g2 = dir.join("DigiCert_Global_Root_G2.crt");
        let text = std::fs::read_to_string(&g2).unwrap();
        std::fs::write(&g2, text.replacen("MII", "MIJ", 1)).unwrap();
        let err = format!("{:#}", generate_roots(&tmp).unwrap_err());
        assert!(err.contains("DigiCert_Global_Root_G2.crt: sha256"), "{err}");

        std::fs::write(&g2, text).unwrap();
        generate_roots(&tmp).unwrap();
        std::fs::write(dir.join("Extra.crt"), "").unwrap();
        let err = format!("{:#}", generate_roots(&tmp).unwrap_err());
        assert!(err.contains("Extra.crt is in"), "{err}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn only_self_signed_certificates_with_a_common_name_are_roots() {
        let fixtures = root().join("core/tests/fixtures/tls");
        let read = |name: &str| {
            pem_to_der(&std::fs::read_to_string(fixtures.join(name)).unwrap()).unwrap()
        };
        let (cn, o, _) = parse_root(&read("inspection-root.pem")).unwrap();
        assert_eq!(
            (cn.as_str(), o.as_deref()),
            ("Contoso Web Filter CA", Some("Contoso Ltd"))
        );
        let err = format!(
            "{:#}",
            parse_root(&read("genuine-intermediate.pem")).unwrap_err()
        );
        assert!(err.contains("not self-signed"), "{err}");
        assert!(parse_root(&read("genuine-leaf.pem")[..100]).is_err());
    }
}
