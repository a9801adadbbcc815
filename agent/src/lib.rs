//! o365probe, the agent for Linux and OpenWrt routers.
//!
//! It will hold the std IO shell around `o365probe-core`: a tokio current-thread runtime that drives the
//! core's probes over real sockets (UDP for DNS and STUN, TCP connect timing, TLS certificate flights),
//! minreq for HTTP(S) reachability and downloads, traceroute, per-uplink binding, the config (TOML, or
//! UCI on OpenWrt), `o365probe check` (one assessment now, for a person or as JSON) and `o365probe run`
//! (the daemon with store-and-forward reporting). Built in issues 4/10 and 6/10.

pub mod check;
pub mod config;
pub mod download;
pub mod endpoints;
pub mod geo;
pub mod http;
pub mod net;
pub mod path;
pub mod route;
pub mod uci;
