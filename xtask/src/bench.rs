//! `cargo xtask bench`: the speed, size and memory figures, measured (never asserted by timed tests).
//!
//! - the core alone: one 20-target probe cycle (o365probe_core::cycle) under criterion on this host;
//! - the core on a Cortex-M4: the same cycle linked into a bare-metal binary (firmware/examples/
//!   core_cycle.rs), its flash and static RAM from the ELF sections, and its peak stack measured by the
//!   binary itself (painted stack) while it runs under QEMU's mps2-an386;
//! - the lab's WAN relay: how late it sends frames (p50/p99/max), the ground truth's own error (root).

use crate::cross::firmware_build;
use crate::util::{cargo, exec, target_dir};
use anyhow::{bail, Context, Result};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(other) = args.iter().find(|a| *a != "--quick") {
        bail!("unknown bench option `{other}` (only --quick)");
    }
    let mut criterion = cargo();
    criterion.args([
        "bench",
        "-p",
        "o365probe-core",
        "--features",
        "cycle",
        "--bench",
        "cycle",
        "--",
    ]);
    if quick {
        criterion.args(["--warm-up-time", "1", "--measurement-time", "3"]);
    }
    exec(&mut criterion)?;
    firmware_cycle()?;
    agent()?;
    relay_lateness()
}

/// The agent's release binary size, and its peak memory during a whole check of the lab's good
/// office (from the agent's own lab test, which needs root).
fn agent() -> Result<()> {
    exec(cargo().args([
        "build",
        "--release",
        "-p",
        "o365probe",
        "-p",
        "o365probe-lab",
        "--bins",
    ]))?;
    let binary = target_dir().join("release/o365probe");
    let size = std::fs::metadata(&binary)
        .with_context(|| binary.display().to_string())?
        .len();
    println!("agent: x86_64 release binary (stripped, LTO, opt-level z): {size} B");
    let out = cargo()
        .args([
            "test",
            "--release",
            "-p",
            "o365probe",
            "--test",
            "lab_check",
        ])
        .args(["peak_memory_of_a_check", "--", "--ignored", "--nocapture"])
        .output()
        .context("cannot run the agent's lab test")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().find(|l| l.starts_with("agent: peak RSS")) {
        Some(line) => println!("{line}"),
        None => println!(
            "agent: peak RSS not measured ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.contains("skipping"))
                .unwrap_or("no figure")
        ),
    }
    Ok(())
}

/// The relay's scheduling error over 2000 frames each way, from its own test (which holds only the
/// median: the tail depends on the host and is reported here instead).
fn relay_lateness() -> Result<()> {
    let out = cargo()
        .args([
            "test",
            "--release",
            "-p",
            "o365probe-lab",
            "--test",
            "relay",
        ])
        .args(["median_scheduling_error", "--", "--nocapture"])
        .output()
        .context("cannot run the relay's timing test")?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        println!("relay: the timing test failed (a busy host?):");
    }
    let mut found = false;
    for line in text.lines().filter(|l| l.contains("lateness over")) {
        println!("relay: {line}");
        found = true;
    }
    if !found {
        println!(
            "relay: not measured ({})",
            text.lines()
                .find(|l| l.contains("skipping"))
                .unwrap_or("no output")
        );
    }
    Ok(())
}

/// Builds, sizes and runs the core's cycle on a Cortex-M4; prints one line of figures.
pub fn firmware_cycle() -> Result<()> {
    exec(firmware_build().args(["--example", "core_cycle"]))?;
    let elf = target_dir().join("debian/thumbv7em-none-eabihf/release/examples/core_cycle");
    let sections = section_sizes(&elf)?;
    let size = |names: &[&str]| -> u64 {
        sections
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, s)| s)
            .sum()
    };
    let flash = size(&[".vector_table", ".text", ".rodata", ".data"]);
    let static_ram = size(&[".data", ".bss", ".uninit"]);

    let out = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
        .arg(&elf)
        .output()
        .context("cannot run qemu-system-arm (cargo xtask setup installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the core's cycle failed on the Cortex-M4: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("cycle "))
        .context("no figures from the firmware")?;
    let stack: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("stack_peak="))
        .and_then(|v| v.parse().ok())
        .context("no stack figure from the firmware")?;
    println!("thumbv7em core cycle: {line}");
    println!(
        "thumbv7em core cycle: flash {flash} B, static RAM {static_ram} B, peak stack {stack} B, RAM {} B",
        static_ram + stack
    );
    Ok(())
}

/// (section, size) of an ELF file, from binutils' `size -A` (which reads ARM ELF on any host).
fn section_sizes(elf: &std::path::Path) -> Result<Vec<(String, u64)>> {
    let out = Command::new("size")
        .arg("-A")
        .arg(elf)
        .output()
        .context("cannot run size (binutils)")?;
    if !out.status.success() {
        bail!("size -A {} failed", elf.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, size) = (w.next()?, w.next()?.parse().ok()?);
            name.starts_with('.').then(|| (name.to_string(), size))
        })
        .collect())
}
