//! Sans-IO probe state machines: dns, tcp, tls, stun, and the http verdicts.
//!
//! A probe never touches a socket or a clock. The shell (tokio in the agent, smoltcp in the firmware, a
//! simulated network in tests) drives every probe the same way, after quinn-proto:
//!
//! 1. feed what happened: [`Probe::handle`] with an [`Event`] and the instant it happened, and
//!    [`Probe::handle_timeout`] when the instant from [`Probe::poll_timeout`] has passed (an early or extra
//!    call is harmless);
//! 2. then drain, in this order: [`Probe::poll_transmit`] until it returns `None` (what to send, open or
//!    close), [`Probe::poll_timeout`] (when to wake up next), [`Probe::poll_result`] (what was measured).
//!
//! A probe that has produced its result returns `None` from `poll_timeout` and is finished. Every wait is
//! bounded by a timeout in the probe's config, so a probe finishes even if the network never answers.
//! Time is whatever [`Instant`] the shell passes: tests pass simulated instants and get exact results.

use core::net::SocketAddr;

use crate::time::Instant;

/// The largest payload a probe asks the shell to send in one [`Transmit`]: the buffer passed to
/// [`Probe::poll_transmit`] must be at least this long. 1232 bytes is the largest UDP payload that crosses
/// any IPv6 path unfragmented (RFC 8200 minimum MTU 1280 - 40 - 8), which also bounds a DNS query over UDP.
pub const MAX_TRANSMIT: usize = 1232;

/// A TCP connection a probe asked the shell to open, numbered by the probe.
pub type ConnId = u8;

/// What a probe asks the shell to do. Payloads are written at the start of the buffer given to
/// [`Probe::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// Send `len` bytes as one UDP datagram to `to`, from the probe's socket (one UDP socket per probe; its
    /// datagrams come back as [`Event::Datagram`]).
    Datagram {
        /// Destination.
        to: SocketAddr,
        /// Payload length.
        len: usize,
    },
    /// Open a TCP connection to `to`; answer with [`Event::Connected`] or [`Event::ConnectFailed`], stamped
    /// with the instant the outcome was known.
    Connect {
        /// The probe's name for the connection.
        conn: ConnId,
        /// Destination.
        to: SocketAddr,
    },
    /// Write `len` bytes on connection `conn`.
    Stream {
        /// Connection.
        conn: ConnId,
        /// Payload length.
        len: usize,
    },
    /// Close connection `conn` and forget it; no further events for it are expected (late ones are ignored).
    Close {
        /// Connection.
        conn: ConnId,
    },
}

/// Why a TCP connection could not be opened, as the shell learnt it from the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectFailure {
    /// The peer answered with a reset (ECONNREFUSED).
    Refused,
    /// An ICMP error or no route (EHOSTUNREACH, ENETUNREACH).
    Unreachable,
    /// The connection attempt timed out in the OS before the probe's own timeout.
    TimedOut,
    /// Anything else (out of sockets, permission denied by a local firewall, ...).
    Other,
}

/// Something that happened on the network, fed to [`Probe::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A UDP datagram arrived on the probe's socket.
    Datagram {
        /// Source address.
        from: SocketAddr,
        /// Payload.
        data: &'a [u8],
    },
    /// The TCP connection `conn` is established (the SYN-ACK arrived).
    Connected {
        /// Connection.
        conn: ConnId,
    },
    /// The TCP connection `conn` could not be opened.
    ConnectFailed {
        /// Connection.
        conn: ConnId,
        /// Why.
        cause: ConnectFailure,
    },
    /// Bytes arrived on connection `conn`, in order (any chunking).
    Received {
        /// Connection.
        conn: ConnId,
        /// Payload.
        data: &'a [u8],
    },
    /// The peer closed or reset connection `conn`.
    Closed {
        /// Connection.
        conn: ConnId,
    },
}

/// A sans-IO measurement: see the module docs for how a shell drives it.
pub trait Probe {
    /// What the probe measured.
    type Output;

    /// Feeds an event that happened at `now`.
    fn handle(&mut self, now: Instant, event: Event<'_>);

    /// Tells the probe that time has reached `now`; timeouts due by then fire.
    fn handle_timeout(&mut self, now: Instant);

    /// Something to send, open or close, with any payload written to `buf` (at least [`MAX_TRANSMIT`]
    /// bytes). Call until it returns `None`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// The next instant at which [`Probe::handle_timeout`] must be called; `None` once finished.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The measurement, once, when the probe has finished.
    fn poll_result(&mut self) -> Option<Self::Output>;
}

pub mod dns;
pub mod resolver;

pub mod http;
pub mod stun;

pub mod tcp;
pub mod tls;

#[cfg(test)]
pub(crate) mod sim;
