//! o365probe, the agent for Linux and OpenWrt routers: the std IO shell around `o365probe-core`, which
//! computes every number it reports.
//!
//! - [`config`] (with [`uci`]): the TOML or UCI config file, validated into one [`config::Config`].
//! - [`endpoints`]: Microsoft's endpoints web service, its cache and bundled fallback, and the targets.
//! - [`net`]: a tokio current-thread runtime driving the core's DNS, TCP, TLS and STUN probes over
//!   sockets bound to the uplink being assessed.
//! - [`http`], [`download`]: HTTP(S) checks through the office's proxy, and the download test.
//! - [`path`], [`route`]: traceroute, and how the Optimize ranges are routed (VPN tunnel or not).
//! - [`geo`]: where the resolver and the egress address are.
//! - [`check`]: `o365probe check`, the whole assessment now, for a person or as JSON.
//!
//! `o365probe run`, the daemon with store-and-forward reporting, is not built yet (roadmap step 6).

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
