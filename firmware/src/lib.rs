//! o365probe-firmware: the bare-metal build of the probe.
//!
//! It will hold the smoltcp + embassy-time IO shell around `o365probe-core`: the same probes and report
//! frames as the Linux agent, on a TAP device (hosted) and on a Cortex-M4 (mps2-an386 under QEMU, with its
//! LAN9118 Ethernet), with a RAM ring of unacknowledged frames. Built in issue 7/10; until then it proves
//! that the core links into a `no_std` crate.
#![no_std]
#![deny(unsafe_code)]

pub use o365probe_core as core;
