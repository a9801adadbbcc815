//! `cargo xtask demo`: the quick start's first command. Builds the agent and the lab, brings up every
//! lab scenario (a simulated Microsoft 365 in network namespaces, ten branch offices behind their WAN
//! relays) and runs the real `o365probe check` in every office at once, showing what each office's
//! assessment found against what its scenario says it should. Needs root (network namespaces).

use crate::setup;
use crate::util::{cargo, exec, target_dir};
use anyhow::{bail, Result};
use std::os::unix::process::CommandExt;
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    setup::run_setup()?;
    exec(cargo().args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "o365probe",
        "-p",
        "o365probe-lab",
        "--bins",
    ]))?;
    let release = target_dir().join("release");
    let agent = release.join("o365probe");
    let error = Command::new(release.join("o365lab"))
        .arg("demo")
        .arg("--agent")
        .arg(&agent)
        .args(args)
        .exec();
    bail!("cannot run o365lab: {error}")
}
