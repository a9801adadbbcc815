//! Replays every input the fuzzers ever found interesting (core/tests/regress/<target>/) through the same
//! entry points the fuzz targets use: a crasher, once fixed, stays fixed.

use std::fs;
use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/regress")
        .join(target);
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        if path.file_name().is_some_and(|f| f == ".keep") {
            continue;
        }
        entry(&fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn dns_regressions() {
    replay("dns", o365probe_core::wire::dns::fuzz);
}

#[test]
fn stun_regressions() {
    replay("stun", o365probe_core::wire::stun::fuzz);
}

#[test]
fn tls_regressions() {
    replay("tls", o365probe_core::wire::tls::fuzz);
}

#[test]
fn frame_regressions() {
    replay("frame", o365probe_core::report::fuzz);
}
