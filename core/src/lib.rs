//! o365probe-core: everything that decides or encodes, for the router, the microcontroller and the collector.
//!
//! `#![no_std]`, no allocator, no clock, no sockets. The IO shells (the Linux agent on tokio, the firmware on
//! smoltcp) move bytes and time; every number a user sees is computed here, so the devices and the collector
//! can never disagree.
//!
//! Layout:
//! - [`wire`]: views and `Repr`s over byte slices for DNS, STUN, TLS (ClientHello, certificate flight, X.509)
//!   and the endpoint categories. After a length check nothing panics on any input.
//! - [`probe`]: sans-IO probe state machines (`handle_*(now, …)`, `poll_transmit`, `poll_timeout`, `poll_result`).
//! - [`schedule`]: which probe runs when, spread with seeded jitter.
//! - [`rand`]: SplitMix64, the shell-seeded source of every offset, jitter and transaction id.
//! - [`time`]: embassy-time's `Instant` and `Duration`, as the shell passes them in.
//! - [`report`]: the report schema, postcard framing, sealing and acks; the wire contract is `report/SPEC.md`.
//! - [`assess`]: verdicts shared by agent and collector (front-door location, interception, Teams quality, score).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod ascii;
pub mod assess;
#[cfg(any(test, feature = "cycle"))]
pub mod cycle;
pub mod probe;
pub mod rand;
pub mod report;
pub mod schedule;
pub mod wire;

/// Time as the core sees it: embassy-time's types, fed in by the shell. The core never reads a clock.
pub mod time {
    pub use embassy_time::{Duration, Instant};

    /// Microseconds in a duration, whatever the shell's tick rate, saturating instead of overflowing.
    pub(crate) fn micros(d: Duration) -> u64 {
        let us = u128::from(d.as_ticks()) * 1_000_000 / u128::from(embassy_time::TICK_HZ);
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    /// [`micros`] as the reports carry durations, saturating at `u32::MAX` (71 minutes: far beyond any
    /// timeout).
    pub(crate) fn micros_u32(d: Duration) -> u32 {
        u32::try_from(micros(d)).unwrap_or(u32::MAX)
    }
}
