//! `cargo xtask gen [--check]`: Rust tables generated from the derived data in core/data/.
//!
//! Today one table: the IATA location codes with place and coordinates that the core's assessment uses
//! to name a front door (core/data/airports.csv -> core/src/assess/location_table.rs). The CSV is the
//! reviewed artefact (its provenance is core/data/README.md); the Rust file is a compact, sorted,
//! `no_std` rendering of it that nobody edits by hand. `--check` fails if the committed file is not
//! what the CSV generates, and the test below runs that check with every `cargo test`.

use crate::util::root;
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const CSV: &str = "core/data/airports.csv";
const TABLE: &str = "core/src/assess/location_table.rs";
const HEADER: [&str; 5] = ["code", "city", "country", "lat", "lon"];

pub fn run(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [a] if a == "--check" => true,
        _ => bail!("usage: cargo xtask gen [--check]"),
    };
    let (path, want) = generate(&root())?;
    if check {
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            bail!(
                "{} is stale: run `cargo xtask gen` and commit it",
                path.display()
            );
        }
        eprintln!("gen: {} is up to date", path.display());
    } else {
        std::fs::write(&path, &want).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("gen: wrote {}", path.display());
    }
    Ok(())
}

/// The table file's path and the text it must hold.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_location_table_is_what_the_csv_generates() {
        let (path, want) = generate(&root()).unwrap();
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `cargo xtask gen` and commit it",
            path.display()
        );
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
}
