//! Builds with Debian's Rust (rustc-web, 1.85) and its library source: the only way to build for targets
//! that rustup here cannot add. Compiler and library source must be the same version, so these builds use
//! /usr/bin/cargo and /usr/bin/rustc, never the rustup proxies, and a target directory of their own.

use crate::util::{exec, root, target_dir};
use anyhow::Result;
use std::process::Command;

/// A `cargo` command for Debian's toolchain with build-std allowed.
pub fn debian_cargo() -> Command {
    let mut c = Command::new("/usr/bin/cargo");
    let path = std::env::var("PATH").unwrap_or_default();
    c.current_dir(root())
        .env("PATH", format!("/usr/bin:{path}"))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir().join("debian"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO");
    c
}

/// The no_std proof: the core builds for a Cortex-M4F with only `core` (no std, no alloc) available,
/// so no dependency or feature can pull either in.
pub fn nostd() -> Result<()> {
    exec(debian_cargo().args([
        "build",
        "--release",
        "-p",
        "o365probe-core",
        "--target",
        "thumbv7em-none-eabihf",
        "-Zbuild-std=core",
    ]))?;
    exec(&mut firmware_build())
}

/// `cargo build --release` of the firmware workspace for the Cortex-M4F (add `--example` to build one).
pub fn firmware_build() -> Command {
    let mut c = debian_cargo();
    c.args([
        "build",
        "--release",
        "--manifest-path",
        "firmware/Cargo.toml",
        "--target",
        "thumbv7em-none-eabihf",
        "-Zbuild-std=core",
    ]);
    c
}
