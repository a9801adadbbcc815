//! `cargo xtask`: the project's tasks, one module each.
//!
//! - `demo`: the lab's offices assessed by the real agent, side by side (the quick start).
//! - `ci`: every check the project has (what `.ci/run` and the README's test command run).
//! - `setup`: install what the checks need (apt packages, cargo tools), idempotently.
//! - `fuzz`: run each cargo-fuzz target for a while and report executions.
//! - `nostd`: build the core for thumbv7em-none-eabihf with Debian's Rust and `-Zbuild-std=core`.
//! - `gen`: regenerate the core's tables from the derived data in core/data/ (`--check` in tests).
//! - `bench`: speed, size and memory figures (criterion on the host, the core's cycle on a Cortex-M4).
//! - `lab`: bring lab scenarios up by hand, look at and remove labs (runs `o365lab`, as root).

mod bench;
mod ci;
mod cross;
mod demo;
mod fuzz;
mod gen;
mod lab;
mod setup;
mod util;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  demo [--scenario NAME]... [--keep]
                          every lab office assessed by o365probe check, against what it should find
  ci [--fuzz-seconds N]   every check: setup, fmt, clippy, tests, no_std build, fuzz smoke
  setup                   install what the checks need (apt packages, cargo tools); idempotent
  fuzz [--seconds N] [TARGET...]
                          run the cargo-fuzz targets (default: all, 60 s each)
  nostd                   build the core for thumbv7em-none-eabihf without std or alloc
  gen [--check]           regenerate core tables from core/data/ (--check: fail if stale)
  bench [--quick]         criterion figures and the core's flash/RAM on a Cortex-M4 (QEMU)
  lab up|down|status|list [--scenario NAME]...
                          the lab (root): bring scenarios up until Ctrl-C, remove or list labs
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "ci" => ci::run(&rest),
        "demo" => demo::run(&rest),
        "setup" => setup::run(),
        "fuzz" => fuzz::run(&rest),
        "nostd" => cross::nostd(),
        "gen" => gen::run(&rest),
        "lab" => lab::run(&rest),
        "bench" => bench::run(&rest),
        "" | "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n{USAGE}"),
    }
}
