//! `cargo xtask ci`: every check the project has, in the order that fails fastest.

use crate::util::{cargo, exec};
use crate::{bench, cross, fuzz, setup};
use anyhow::{Context, Result};

pub fn run_ci(fuzz_seconds: u64) -> Result<()> {
    setup::run_setup()?;
    exec(cargo().args(["fmt", "--all", "--check"]))?;
    for manifest in ["firmware/Cargo.toml", "fuzz/Cargo.toml"] {
        exec(cargo().args(["fmt", "--check", "--manifest-path", manifest]))?;
    }
    exec(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The measuring cycle and its criterion bench are behind a feature: lint them too.
    exec(cargo().args([
        "clippy",
        "-p",
        "o365probe-core",
        "--features",
        "cycle",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    exec(cargo().args(["test", "--workspace"]))?;
    cross::nostd()?;
    // The core on a Cortex-M4 under QEMU: links, runs a whole probe cycle, fits.
    bench::firmware_cycle()?;
    fuzz::run(&["--seconds".into(), fuzz_seconds.to_string()])?;
    eprintln!("ci: all checks passed");
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    let mut fuzz_seconds = 10;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--fuzz-seconds" => {
                fuzz_seconds = it
                    .next()
                    .context("--fuzz-seconds needs a number")?
                    .parse()?;
            }
            other => anyhow::bail!("unknown ci option `{other}`"),
        }
    }
    run_ci(fuzz_seconds)
}
