//! The o365probe lab: a simulated Microsoft 365 internet in network namespaces, the ground truth the
//! agent, the firmware and the collector are tested, measured and demonstrated against.
//!
//! Layout:
//! - [`lab`]: a running lab ([`Lab`]): one namespace per branch office (the router the agent runs on),
//!   an "internet" namespace with every peer, a collector namespace; RAII teardown, also on Ctrl-C,
//!   at exit, and of crashed runs' leftovers.
//! - [`scenario`]: scenarios as data (`tests/scenarios/*.toml`): offices, what sits in their path, the
//!   relay's rules, and the findings each office must produce.
//! - [`world`]: the simulated internet's map and address plan (front doors, resolvers, proxy, ...).
//! - [`relay`]: the WAN relay between each office and the internet (delay, jitter, loss, reordering,
//!   duplication, rate limits; this kernel has no netem), binary `o365lab-relay`.
//! - `peers`, `pki`, `netns`: the real programs (knot, unbound, nginx, coturn, squid) and their
//!   configuration, the Microsoft-like certificates, and namespace plumbing.
//!
//! The binary `o365lab up|down|status` (`cargo xtask lab …`) brings scenarios up by hand. The
//! end-to-end tests of the agent and collector live in `tests/tests/`.

pub mod lab;
mod netns;
mod peers;
pub mod pki;
pub mod relay;
pub mod scenario;
pub mod world;

pub use lab::{
    down_all, remove_stale, shared_between_processes, status, unavailable, Egress, Lab, LabOptions,
    LabStatus, Office,
};
pub use netns::Netns;
pub use scenario::{Finding, Middlebox, OfficeSpec, ProxyMode, Scenario};

/// What can go wrong bringing a lab up or using it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    #[error("the lab cannot run here: {0}")]
    NotPermitted(String),
    #[error("missing {0}: run `cargo xtask setup`")]
    MissingTool(String),
    #[error("scenario {name}: {message}")]
    Scenario { name: String, message: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{peer} did not start: {detail}; its log ends:\n{log}")]
    NotReady {
        peer: String,
        detail: String,
        log: String,
    },
    #[error("relay of office {office}: {message}")]
    Relay { office: String, message: String },
}
