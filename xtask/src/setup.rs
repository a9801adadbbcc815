//! Installs what the checks need, idempotently: Debian packages (only the missing ones) and cargo tools.
//!
//! CI runs on a fresh machine as root with the package registries reachable and nothing else, so every
//! program a test or check starts must be installed from here.

use crate::util::{cargo, exec, have};
use anyhow::{bail, Result};
use std::process::Command;

/// Debian packages and why we need them.
const APT: &[(&str, &str)] = &[
    // Cross builds: Debian's Rust with its library source, for -Zbuild-std (README, "Cross builds").
    ("rustc-web", "cross compiler (same version as rust-web-src)"),
    ("cargo-web", "cargo for the cross compiler"),
    ("rust-web-src", "library source for -Zbuild-std"),
    ("lld-19", "linker for bare-metal ARM"),
    (
        "qemu-system-arm",
        "bench: the core's cycle on a Cortex-M4 (mps2-an386)",
    ),
    ("binutils", "bench: section sizes of ARM binaries (size -A)"),
    (
        "time",
        "bench: the agent's peak memory during a check (GNU time)",
    ),
    // The lab (tests/, README "Lab"): namespaces and the real peers it runs inside them. Service
    // packages start system daemons on install; the lab runs its own instances, in its own
    // namespaces, from its own files, so those neither matter nor collide. squid-openssl (for
    // ssl-bump) replaces Debian's squid.
    ("iproute2", "lab: ip netns, veth, routes"),
    ("util-linux", "lab: nsenter into namespaces"),
    ("nftables", "lab: middleboxes, firewalls, NAT"),
    ("knot", "lab: authoritative DNS, whoami"),
    ("knot-module-geoip", "lab: GeoDNS by resolver"),
    ("unbound", "lab: recursive resolvers"),
    ("nginx-light", "lab: front doors, web endpoints"),
    ("coturn", "lab: STUN on UDP 3478-3481"),
    ("squid-openssl", "lab: proxies, ssl-bump middlebox"),
    ("openssl", "lab: certificates; s_client"),
    ("bind9-dnsutils", "lab tests: dig"),
    ("curl", "lab tests: HTTP through proxies"),
    ("iputils-ping", "lab tests: relay round trips"),
];

/// Cargo tools: (binary, crate).
const CARGO_TOOLS: &[(&str, &str)] = &[("cargo-fuzz", "cargo-fuzz")];

pub fn run_setup() -> Result<()> {
    apt()?;
    for (bin, krate) in CARGO_TOOLS {
        if !have(bin) {
            exec(cargo().args(["install", "--locked", krate]))?;
        }
    }
    Ok(())
}

pub fn run() -> Result<()> {
    run_setup()
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("missing Debian packages {missing:?} and no apt-get to install them");
    }
    eprintln!("installing {missing:?}");
    // A stale or half-synced mirror index for one architecture makes `apt-get update` exit 100 while
    // the rest of the index is fine: go on and let the install say whether it worked.
    let _ = exec(Command::new("apt-get").args(["update", "-q"]));
    exec(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}
