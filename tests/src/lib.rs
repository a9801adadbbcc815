//! The o365probe lab: a simulated Microsoft 365 internet in network namespaces.
//!
//! It will hold the namespace topology (branch offices, an "internet", the collector), the WAN relay that
//! applies delay, jitter, loss, reordering, duplication and rate limits (this kernel has no netem), the real
//! peers (unbound and an authoritative zone mirroring Microsoft's CNAME chains, TLS front doors, coturn,
//! squid, a TLS-inspecting middlebox) and the scenarios as data. Built in issue 3/10; the end-to-end tests
//! of the agent and collector live in `tests/tests/`.

pub mod relay;
