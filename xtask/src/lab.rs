//! `cargo xtask lab up|down|status|list [--scenario NAME]...`: builds the lab's binaries (`o365lab`
//! and the relay it starts) and hands over to `o365lab`, which needs root.
//!
//! The task replaces itself with `o365lab` so that Ctrl-C reaches a single process, which tears the
//! lab down before it exits.

use crate::util::{cargo, exec, target_dir};
use anyhow::{bail, Result};
use std::os::unix::process::CommandExt;
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    if args.is_empty() {
        bail!("usage: cargo xtask lab up|down|status|list [--scenario NAME]... [--relay-log]");
    }
    exec(cargo().args(["build", "--quiet", "-p", "o365probe-lab", "--bins"]))?;
    let o365lab = target_dir().join("debug").join("o365lab");
    let error = Command::new(&o365lab).args(args).exec();
    bail!("cannot run {}: {error}", o365lab.display())
}
