//! Runs the cargo-fuzz targets (fuzz/) on stable Rust without a sanitizer, and reports executions.
//!
//! Inputs that crash a target are kept by libFuzzer in fuzz/artifacts/<target>/; copy them to
//! core/tests/regress/<target>/ so `cargo test` replays them forever (core/tests/regress.rs).

use crate::util::{cargo, root};
use anyhow::{bail, Context, Result};
use std::process::Stdio;

/// One target per decoder.
pub const TARGETS: &[&str] = &["dns", "stun", "tls", "frame"];

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds")?
            }
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => bail!("unknown fuzz option or target `{other}` (targets: {TARGETS:?})"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|s| s.to_string()).collect();
    }
    let mut report = Vec::new();
    for t in &targets {
        let runs = one(t, seconds)?;
        report.push(format!("{t}: {runs} executions in {seconds} s"));
    }
    for line in report {
        println!("fuzz {line}");
    }
    Ok(())
}

/// Runs one target for `seconds`; returns libFuzzer's execution count.
fn one(target: &str, seconds: u64) -> Result<u64> {
    let corpus = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let seeds = root().join("fuzz/seeds").join(target);
    let mut cmd = cargo();
    cmd.args(["fuzz", "run", "-s", "none", "--release", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    eprintln!("$ cargo fuzz run -s none {target} ({seconds} s)");
    let out = cmd
        .output()
        .context("cannot start cargo fuzz (cargo xtask setup installs it)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{err}");
        bail!("fuzz target {target} failed: the crashing input is in fuzz/artifacts/{target}/");
    }
    // "stat::number_of_executed_units: 123456"
    err.lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no execution count from libFuzzer for {target}:\n{err}"))
}
