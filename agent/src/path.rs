//! Traceroute to the Microsoft 365 front doors, without privileges: the hops between the office and
//! the service show a hairpin or a backhaul to a head office that latency alone only hints at.
//!
//! Each probe is its own socket with its TTL (IPv6: hop limit) set, connected to the destination, with
//! IP_RECVERR/IPV6_RECVERR on, so the kernel queues the ICMP error the probe provoked on that socket with
//! the router's address (SO_EE_OFFENDER); `recvmsg(MSG_ERRQUEUE)` reads it. No raw socket, no parsing of
//! quoted headers, no mix-ups between probes. Probes are UDP datagrams (classic traceroute ports 33434
//! and up, or one real port), ICMP echo through a ping socket where `net.ipv4.ping_group_range` allows
//! it, or TCP SYNs (a non-blocking connect) to a service port: front doors drop the first two at their
//! edge but answer the third.
//!
//! The probes of one TTL are in flight together and the hop ends when each is answered or timed out, so
//! a trace takes at most one timeout per hop ([`TraceOptions::max_duration`]). A hop's round-trip time
//! runs from an `Instant` taken right before the send to the kernel's receive timestamp of the answer
//! (SO_TIMESTAMPNS), so a busy router's scheduling delay does not count; the `Instant` at the read is
//! the fallback.
//!
//! Run traces one after another, not side by side: Linux routers and hosts (by default) answer a burst
//! of six ICMP errors to one source and then one a second, so traces in parallel share that budget and
//! show `*` where a router only ran out of answers. In the lab, a 5-probe trace right after another
//! 5-probe trace through the same host got 1 answer of 5.

use crate::config::{PathCheck, Uplink};
use crate::net::clock;
use crate::net::socket::{self, SocketError, SocketOptions};
use o365probe_core::report::{Hop, PathSummary, MAX_HOPS};
use socket2::{Protocol, Socket, Type};
use std::fmt;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

/// The first destination port of classic traceroute.
pub const TRACEROUTE_PORT: u16 = 33434;
/// Hops kept from the office's end of a path in its [`PathSummary`]: the LAN gateway, the access line,
/// the provider's first routers, where a backhaul to a head office shows.
pub const KEEP_NEAR: usize = 4;
/// Hops kept from the front door's end: where traffic enters Microsoft's network, and the front door.
pub const KEEP_FAR: usize = MAX_HOPS - KEEP_NEAR;

/// What a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// UDP datagrams to `first_port`, `first_port + 1`, ... (classic traceroute: 33434). The destination
    /// answers ICMP port unreachable.
    UdpClassic {
        /// The first probe's port.
        first_port: u16,
    },
    /// UDP datagrams all to one port (a service's own, like Teams' 3478). Only an answer or an ICMP error
    /// from the destination shows that it was reached; a service that ignores the datagram stays `*`.
    Udp {
        /// The port.
        port: u16,
    },
    /// ICMP echo requests through an unprivileged ping socket (the process's group must be within
    /// `net.ipv4.ping_group_range`, which also covers IPv6).
    Icmp,
    /// TCP SYNs to a port (443 for the front doors): the connect completes, or is refused, at the
    /// destination. A completed connection is reset at once.
    Tcp {
        /// The port.
        port: u16,
    },
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UdpClassic { first_port } => write!(f, "udp/{first_port}+"),
            Self::Udp { port } => write!(f, "udp/{port}"),
            Self::Icmp => f.write_str("icmp"),
            Self::Tcp { port } => write!(f, "tcp/{port}"),
        }
    }
}

/// How to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOptions {
    /// What the probes are.
    pub method: Method,
    /// The first TTL tried (1 starts at the office's own gateway).
    pub first_ttl: u8,
    /// The last TTL tried.
    pub max_hops: u8,
    /// Probes per hop (each answered or not on its own).
    pub probes_per_hop: u8,
    /// How long each probe waits for its answer.
    pub timeout: Duration,
    /// Stop after this many hops in a row where nothing answered (0: never): the path past a firewall
    /// that drops probes stays dark to the end, and waiting for all of it tells nothing more.
    pub max_silent_hops: u8,
    /// Send through this interface (SO_BINDTODEVICE; needs CAP_NET_RAW), for one uplink.
    pub interface: Option<String>,
    /// Send from this address, for one uplink.
    pub source: Option<IpAddr>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            method: Method::UdpClassic {
                first_port: TRACEROUTE_PORT,
            },
            first_ttl: 1,
            max_hops: 30,
            probes_per_hop: 3,
            timeout: Duration::from_secs(1),
            max_silent_hops: 5,
            interface: None,
            source: None,
        }
    }
}

impl TraceOptions {
    /// The options the config asks for (`[path]`), bound to an uplink's interface and source if given.
    pub fn from_config(path: &PathCheck, uplink: Option<&Uplink>) -> Self {
        Self {
            max_hops: u8::try_from(path.max_hops).unwrap_or(u8::MAX).max(1),
            interface: uplink.and_then(|u| u.interface.clone()),
            source: uplink.and_then(|u| u.source),
            ..Self::default()
        }
    }

    /// The longest a trace with these options can take: each hop waits at most one timeout, since its
    /// probes are in flight together; plus a little for sending.
    pub fn max_duration(&self) -> Duration {
        let hops = u32::from(self.max_hops.saturating_sub(self.first_ttl)) + 1;
        (self.timeout + Duration::from_millis(5)) * hops
    }
}

/// A trace that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Options that cannot work (no probes, first TTL above the last, a source of the other family).
    #[error("traceroute options: {0}")]
    Options(&'static str),
    /// The system refused to set up a probe socket.
    #[error("traceroute: {what}: {source}")]
    Socket {
        /// What was being set up.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The uplink's interface or source address cannot be used.
    #[error("traceroute: {0}")]
    Uplink(#[source] SocketError),
    /// Ping sockets are not allowed to this process's group.
    #[error("traceroute: ICMP echo sockets are not permitted to this group (sysctl net.ipv4.ping_group_range); use UDP or TCP probes")]
    IcmpNotPermitted,
}

/// What answered a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// A router on the way: ICMP time exceeded.
    TimeExceeded,
    /// The destination itself: ICMP port unreachable or any other ICMP error from its address, an
    /// echo reply, a UDP answer, or a TCP SYN-ACK or reset.
    Destination,
    /// A router that cannot forward to the destination: ICMP destination unreachable (type and code
    /// as received: ICMP 3/x, ICMPv6 1/x).
    Unreachable {
        /// ICMP(v6) type.
        icmp_type: u8,
        /// ICMP(v6) code: 0 network / no route, 1 host (v6: administratively prohibited), 13 prohibited...
        code: u8,
    },
}

/// The answer to one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reply {
    /// Who answered.
    pub from: IpAddr,
    /// Probe sent to answer received.
    pub rtt: Duration,
    /// What the answer was.
    pub kind: ReplyKind,
}

/// One TTL of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHop {
    /// The TTL (hop limit) the probes were sent with.
    pub ttl: u8,
    /// Each probe's answer in sending order; `None` for "*".
    pub replies: Vec<Option<Reply>>,
}

impl TraceHop {
    /// The address that answered most of the probes (the first of equals), `None` if none answered.
    pub fn address(&self) -> Option<IpAddr> {
        let answered = || self.replies.iter().flatten();
        answered()
            .max_by_key(|r| {
                let votes = answered().filter(|o| o.from == r.from).count();
                // Ties go to the earliest: max_by_key keeps the last maximum, so rank by reverse order.
                let position = self
                    .replies
                    .iter()
                    .position(|o| o.is_some_and(|o| o.from == r.from));
                (votes, usize::MAX - position.unwrap_or(0))
            })
            .map(|r| r.from)
    }

    /// The round-trip times of the answered probes, in sending order.
    pub fn rtts(&self) -> Vec<Duration> {
        self.replies.iter().flatten().map(|r| r.rtt).collect()
    }

    /// The fastest answer: the hop's latency with the least queueing in it.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.replies.iter().flatten().map(|r| r.rtt).min()
    }

    /// Whether no probe was answered.
    pub fn is_silent(&self) -> bool {
        self.replies.iter().all(Option::is_none)
    }
}

/// Why a trace stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceEnd {
    /// The destination answered.
    Reached,
    /// A router answered destination unreachable (traceroute's `!N`, `!H`, `!X`).
    Unreachable {
        /// The router.
        from: IpAddr,
        /// ICMP(v6) type.
        icmp_type: u8,
        /// ICMP(v6) code.
        code: u8,
    },
    /// [`TraceOptions::max_silent_hops`] hops in a row stayed silent.
    Silent,
    /// The last TTL was tried.
    MaxHops,
    /// The local system refused to send (no route: ENETUNREACH, a firewall: EPERM).
    SendFailed {
        /// The errno.
        errno: i32,
    },
}

/// A traceroute to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Where to.
    pub destination: IpAddr,
    /// With what.
    pub method: Method,
    /// Every TTL tried, in order.
    pub hops: Vec<TraceHop>,
    /// Why it stopped.
    pub end: TraceEnd,
}

impl Trace {
    /// Whether the destination answered.
    pub fn reached(&self) -> bool {
        self.end == TraceEnd::Reached
    }

    /// The TTL at which the destination answered, or the highest TTL tried.
    pub fn hop_count(&self) -> u8 {
        self.hops.last().map_or(0, |h| h.ttl)
    }

    /// The report's form: at most [`MAX_HOPS`] hops, each with the address that answered most and its
    /// fastest answer. A longer path keeps its first [`KEEP_NEAR`] hops (the office's side, where a
    /// backhaul shows) and its last [`KEEP_FAR`] (where traffic enters Microsoft's network, and the
    /// front door); a path that went dark keeps one silent hop after the last that answered, so the
    /// report shows where it stopped, rather than a run of `*`.
    pub fn summary(&self, target: u8) -> PathSummary {
        let last_answered = self.hops.iter().rposition(|h| !h.is_silent());
        let shown = match last_answered {
            Some(i) => &self.hops[..(i + 2).min(self.hops.len())],
            None => &self.hops[..self.hops.len().min(1)],
        };
        let kept: Vec<&TraceHop> = if shown.len() <= MAX_HOPS {
            shown.iter().collect()
        } else {
            let far = &shown[shown.len() - KEEP_FAR..];
            shown[..KEEP_NEAR].iter().chain(far).collect()
        };
        let mut hops = heapless::Vec::new();
        for h in kept {
            let hop = Hop {
                ttl: h.ttl,
                address: h.address(),
                rtt_us: h.min_rtt().map_or(0, clock::micros_u32),
            };
            // At most MAX_HOPS by construction.
            let _ = hops.push(hop);
        }
        PathSummary {
            target,
            reached: self.reached(),
            hop_count: self.hop_count(),
            hops,
        }
    }
}

impl fmt::Display for Trace {
    /// Like traceroute: one line per hop, addresses and round-trip times, `*` for no answer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "traceroute to {} ({})", self.destination, self.method)?;
        for hop in &self.hops {
            write!(f, "{:2}", hop.ttl)?;
            let mut shown = None;
            for reply in &hop.replies {
                match reply {
                    None => write!(f, "  *")?,
                    Some(r) => {
                        if shown != Some(r.from) {
                            write!(f, "  {}", r.from)?;
                            shown = Some(r.from);
                        }
                        write!(f, "  {:.3} ms", r.rtt.as_secs_f64() * 1e3)?;
                        if let ReplyKind::Unreachable { icmp_type, code } = r.kind {
                            write!(f, " !{icmp_type}/{code}")?;
                        }
                    }
                }
            }
            writeln!(f)?;
        }
        match self.end {
            TraceEnd::Reached => Ok(()),
            TraceEnd::Unreachable { from, .. } => writeln!(f, "unreachable at {from}"),
            TraceEnd::Silent => writeln!(f, "no answers for several hops: gave up"),
            TraceEnd::MaxHops => writeln!(f, "not reached within {} hops", self.hop_count()),
            TraceEnd::SendFailed { errno } => {
                writeln!(f, "cannot send: {}", io::Error::from_raw_os_error(errno))
            }
        }
    }
}

/// Traces the path to `destination`. Blocks for up to [`TraceOptions::max_duration`]; run it on a
/// blocking thread (`tokio::task::spawn_blocking`). Fails only when probes cannot be set up at all;
/// everything the network does (silence, unreachable, no route) is in the [`Trace`].
pub fn trace(destination: IpAddr, options: &TraceOptions) -> Result<Trace, TraceError> {
    if options.probes_per_hop == 0 {
        return Err(TraceError::Options("probes_per_hop is 0"));
    }
    if options.first_ttl == 0 || options.first_ttl > options.max_hops {
        return Err(TraceError::Options(
            "first_ttl must be between 1 and max_hops",
        ));
    }
    if options
        .source
        .is_some_and(|s| s.is_ipv4() != destination.is_ipv4())
    {
        return Err(TraceError::Options(
            "the source address and the destination are of different families",
        ));
    }
    let mut hops = Vec::new();
    let mut silent = 0u8;
    let mut sequence = 0u16;
    for ttl in options.first_ttl..=options.max_hops {
        let mut probes = Vec::with_capacity(usize::from(options.probes_per_hop));
        for _ in 0..options.probes_per_hop {
            let socket = open_probe(destination, ttl, options)?;
            let port = match options.method {
                Method::UdpClassic { first_port } => first_port.wrapping_add(sequence),
                Method::Udp { port } | Method::Tcp { port } => port,
                Method::Icmp => 0,
            };
            let sent_wall = SystemTime::now();
            let sent = Instant::now();
            if let Err(e) = launch(
                &socket,
                SocketAddr::new(destination, port),
                options,
                sequence,
            ) {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                return Ok(Trace {
                    destination,
                    method: options.method,
                    hops,
                    end: TraceEnd::SendFailed { errno },
                });
            }
            sequence = sequence.wrapping_add(1);
            probes.push(Probe {
                socket,
                sent,
                sent_wall,
                reply: None,
                done: false,
            });
        }
        wait(&mut probes, destination, options);
        let hop = TraceHop {
            ttl,
            replies: probes.iter().map(|p| p.reply).collect(),
        };
        let reached = hop
            .replies
            .iter()
            .flatten()
            .any(|r| r.kind == ReplyKind::Destination);
        let unreachable = hop.replies.iter().flatten().find_map(|r| match r.kind {
            ReplyKind::Unreachable { icmp_type, code } => Some(TraceEnd::Unreachable {
                from: r.from,
                icmp_type,
                code,
            }),
            _ => None,
        });
        silent = if hop.is_silent() {
            silent.saturating_add(1)
        } else {
            0
        };
        hops.push(hop);
        let end = if reached {
            Some(TraceEnd::Reached)
        } else if unreachable.is_some() {
            unreachable
        } else if options.max_silent_hops != 0 && silent >= options.max_silent_hops {
            Some(TraceEnd::Silent)
        } else {
            None
        };
        if let Some(end) = end {
            return Ok(Trace {
                destination,
                method: options.method,
                hops,
                end,
            });
        }
    }
    Ok(Trace {
        destination,
        method: options.method,
        hops,
        end: TraceEnd::MaxHops,
    })
}

struct Probe {
    socket: Socket,
    sent: Instant,
    sent_wall: SystemTime,
    reply: Option<Reply>,
    done: bool,
}

// SO_TIMESTAMPNS_OLD: the kernel's native timespec; the same number on every architecture the agent is
// built for (sparc alone differs).
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_TIMESTAMPNS: libc::c_int = 35;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_TIMESTAMPNS: libc::c_int = 0x21;

/// A probe socket: bound to the uplink as the probes' sockets are ([`socket::open_with`]), with its TTL
/// (hop limit), IP_RECVERR for the ICMP errors it provokes, and kernel receive stamps.
fn open_probe(destination: IpAddr, ttl: u8, options: &TraceOptions) -> Result<Socket, TraceError> {
    let v6 = destination.is_ipv6();
    let (ty, protocol) = match options.method {
        Method::UdpClassic { .. } | Method::Udp { .. } => (Type::DGRAM, Protocol::UDP),
        Method::Icmp if v6 => (Type::DGRAM, Protocol::ICMPV6),
        Method::Icmp => (Type::DGRAM, Protocol::ICMPV4),
        Method::Tcp { .. } => (Type::STREAM, Protocol::TCP),
    };
    let bind = SocketOptions {
        interface: options.interface.clone(),
        source: options.source,
        dscp: None,
    };
    let probe = socket::open_with(&bind, SocketAddr::new(destination, 0), ty, protocol).map_err(
        |e| match e {
            SocketError::Setup { error, .. }
                if options.method == Method::Icmp && error.raw_os_error() == Some(libc::EACCES) =>
            {
                TraceError::IcmpNotPermitted
            }
            e => TraceError::Uplink(e),
        },
    )?;
    let failed = |what: &str| {
        let what = what.to_owned();
        move |source| TraceError::Socket { what, source }
    };
    let set = |level, name, value, what: &str| {
        socket::set_int_option(&probe, level, name, value).map_err(failed(what))
    };
    if v6 {
        set(libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1, "IPV6_RECVERR")?;
        probe
            .set_unicast_hops_v6(ttl.into())
            .map_err(failed("IPV6_UNICAST_HOPS"))?;
    } else {
        set(libc::IPPROTO_IP, libc::IP_RECVERR, 1, "IP_RECVERR")?;
        probe.set_ttl_v4(ttl.into()).map_err(failed("IP_TTL"))?;
    }
    // Without kernel timestamps the read time stands in.
    let _ = set(libc::SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
    if let Method::Tcp { .. } = options.method {
        // A connection that completes is reset at close: nothing lingers on the router or the server.
        probe
            .set_linger(Some(Duration::ZERO))
            .map_err(failed("SO_LINGER"))?;
    }
    Ok(probe)
}

/// Connects the probe socket and sends the probe (for TCP, the connect is the probe).
fn launch(
    socket: &Socket,
    to: SocketAddr,
    options: &TraceOptions,
    sequence: u16,
) -> io::Result<()> {
    if let Err(e) = socket.connect(&to.into()) {
        let in_progress = matches!(options.method, Method::Tcp { .. })
            && e.raw_os_error() == Some(libc::EINPROGRESS);
        if !in_progress {
            return Err(e);
        }
    }
    let mut payload = [0u8; 32];
    match options.method {
        Method::Tcp { .. } => return Ok(()),
        Method::Icmp => {
            // Type echo request; the kernel fills in the identifier and the checksum.
            payload[0] = if to.is_ipv6() { 128 } else { 8 };
            payload[6..8].copy_from_slice(&sequence.to_be_bytes());
        }
        Method::UdpClassic { .. } | Method::Udp { .. } => {}
    }
    socket.send(&payload).map(drop)
}

/// Waits until every probe is answered or has timed out.
fn wait(probes: &mut [Probe], destination: IpAddr, options: &TraceOptions) {
    let tcp = matches!(options.method, Method::Tcp { .. });
    loop {
        let now = Instant::now();
        for p in probes.iter_mut() {
            if now >= p.sent + options.timeout {
                p.done = true;
            }
        }
        let open: Vec<usize> = (0..probes.len()).filter(|&i| !probes[i].done).collect();
        let Some(next_deadline) = open.iter().map(|&i| probes[i].sent + options.timeout).min()
        else {
            return;
        };
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|&i| libc::pollfd {
                fd: probes[i].socket.as_raw_fd(),
                events: if tcp { libc::POLLOUT } else { libc::POLLIN },
                revents: 0,
            })
            .collect();
        // Rounded up, so the loop does not spin through the last millisecond.
        let wait_ms = next_deadline
            .saturating_duration_since(now)
            .as_micros()
            .div_ceil(1000);
        let wait_ms = libc::c_int::try_from(wait_ms).unwrap_or(libc::c_int::MAX);
        // SAFETY: fds is a valid array of its length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n <= 0 {
            continue; // timeout (handled above) or EINTR
        }
        for (pfd, &i) in fds.iter().zip(&open) {
            if pfd.revents != 0 {
                read_probe(&mut probes[i], pfd.revents, destination, tcp);
            }
        }
    }
}

fn read_probe(probe: &mut Probe, revents: libc::c_short, destination: IpAddr, tcp: bool) {
    let fd = probe.socket.as_raw_fd();
    let rtt_now = |probe: &Probe, stamp: Option<SystemTime>| {
        let by_instant = probe.sent.elapsed();
        // The kernel's receive time, unless the wall clock stepped between send and receive.
        stamp
            .and_then(|s| s.duration_since(probe.sent_wall).ok())
            .filter(|d| *d <= by_instant)
            .unwrap_or(by_instant)
    };
    if revents & libc::POLLERR != 0 {
        // Every queued error is read, so POLLERR clears; the first ICMP error is the answer.
        while let Ok(Some(msg)) = receive(fd, true) {
            let Some((origin, icmp_type, code, Some(from))) = msg.error else {
                continue;
            };
            if probe.reply.is_some() {
                continue;
            }
            let kind = match classify(origin, icmp_type, code, from == destination) {
                Some(kind) => kind,
                None => continue,
            };
            probe.reply = Some(Reply {
                from,
                rtt: rtt_now(probe, msg.stamp),
                kind,
            });
        }
    }
    if probe.reply.is_none() && !tcp && revents & libc::POLLIN != 0 {
        // The socket is connected: only the destination's datagrams (or echo replies) arrive.
        if let Ok(Some(msg)) = receive(fd, false) {
            probe.reply = Some(Reply {
                from: destination,
                rtt: rtt_now(probe, msg.stamp),
                kind: ReplyKind::Destination,
            });
        }
    }
    if probe.reply.is_none()
        && tcp
        && revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
    {
        let answered = match probe.socket.take_error() {
            // Connected (SYN-ACK) or refused (RST): the destination answered either way.
            Ok(None) => revents & libc::POLLOUT != 0,
            Ok(Some(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => true,
            // The connection failed without an ICMP error to say where: nothing more will come.
            Ok(Some(_)) => {
                probe.done = true;
                false
            }
            Err(_) => false,
        };
        if answered {
            probe.reply = Some(Reply {
                from: destination,
                rtt: probe.sent.elapsed(),
                kind: ReplyKind::Destination,
            });
        }
    }
    if probe.reply.is_some() || revents & (libc::POLLHUP | libc::POLLNVAL) != 0 {
        probe.done = true;
    }
}

/// What an ICMP error from `from` means for a probe; `None` for errors that are not an answer
/// (local ones such as EMSGSIZE, packet too big, redirects).
fn classify(origin: u8, icmp_type: u8, code: u8, from_destination: bool) -> Option<ReplyKind> {
    const ICMP_DEST_UNREACH: u8 = 3;
    const ICMP_TIME_EXCEEDED: u8 = 11;
    const ICMP_PARAMETER_PROBLEM: u8 = 12;
    const ICMP6_DST_UNREACH: u8 = 1;
    const ICMP6_TIME_EXCEEDED: u8 = 3;
    const ICMP6_PARAM_PROB: u8 = 4;
    let (unreachable, time_exceeded, parameter) = match origin {
        libc::SO_EE_ORIGIN_ICMP => (
            ICMP_DEST_UNREACH,
            ICMP_TIME_EXCEEDED,
            ICMP_PARAMETER_PROBLEM,
        ),
        libc::SO_EE_ORIGIN_ICMP6 => (ICMP6_DST_UNREACH, ICMP6_TIME_EXCEEDED, ICMP6_PARAM_PROB),
        _ => return None,
    };
    if from_destination && (icmp_type == unreachable || icmp_type == parameter) {
        return Some(ReplyKind::Destination);
    }
    if icmp_type == time_exceeded {
        return Some(ReplyKind::TimeExceeded);
    }
    if icmp_type == unreachable {
        return Some(ReplyKind::Unreachable { icmp_type, code });
    }
    None
}

struct Received {
    /// (origin, ICMP type, ICMP code, offender) of an error-queue message.
    error: Option<(u8, u8, u8, Option<IpAddr>)>,
    /// The kernel's receive time.
    stamp: Option<SystemTime>,
}

/// Reads one message from the socket (or its error queue) without blocking; `None` when there is none.
fn receive(fd: RawFd, error_queue: bool) -> io::Result<Option<Received>> {
    let mut data = [0u8; 576];
    // u64 for the alignment cmsghdr needs.
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid (null name, no iov); fields are set below. Zeroing first
    // also clears the padding fields musl's msghdr has.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    let flags = libc::MSG_DONTWAIT | if error_queue { libc::MSG_ERRQUEUE } else { 0 };
    // SAFETY: msg points at iov, data and control, which all outlive the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    let mut out = Received {
        error: None,
        stamp: None,
    };
    // SAFETY: msg was filled in by recvmsg; the CMSG_* walkers stay within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is non-null and points into control (CMSG_FIRSTHDR/CMSG_NXTHDR checked it).
        let header = unsafe { &*cmsg };
        // SAFETY: CMSG_DATA and CMSG_LEN are pointer/size arithmetic on a valid header.
        let (payload, payload_len) = unsafe {
            (
                libc::CMSG_DATA(cmsg),
                (header.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize),
            )
        };
        let level_type = (header.cmsg_level, header.cmsg_type);
        if level_type == (libc::SOL_IP, libc::IP_RECVERR)
            || level_type == (libc::SOL_IPV6, libc::IPV6_RECVERR)
        {
            let ee_len = size_of::<libc::sock_extended_err>();
            if payload_len >= ee_len {
                // SAFETY: payload holds at least a sock_extended_err; read unaligned to be safe.
                let ee = unsafe { payload.cast::<libc::sock_extended_err>().read_unaligned() };
                // SAFETY: the offender sockaddr follows the error within payload_len (checked inside).
                let from = unsafe { offender(payload.add(ee_len), payload_len - ee_len) };
                out.error = Some((ee.ee_origin, ee.ee_type, ee.ee_code, from));
            }
        } else if level_type == (libc::SOL_SOCKET, SO_TIMESTAMPNS) {
            // SAFETY: payload_len bytes of payload are the timespec.
            let bytes = unsafe { std::slice::from_raw_parts(payload, payload_len) };
            // The kernel's native timespec: two 64-bit or two 32-bit integers.
            out.stamp = socket::timespec(bytes, bytes.len() / 2);
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(Some(out))
}

/// SO_EE_OFFENDER: the sockaddr after the extended error.
///
/// # Safety
/// `at` must be valid for reads of `len` bytes.
unsafe fn offender(at: *const u8, len: usize) -> Option<IpAddr> {
    if len < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least a family's worth of bytes (checked above).
    let family = unsafe { at.cast::<libc::sa_family_t>().read_unaligned() };
    match libc::c_int::from(family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: len covers a sockaddr_in.
            let sin = unsafe { at.cast::<libc::sockaddr_in>().read_unaligned() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: len covers a sockaddr_in6.
            let sin6 = unsafe { at.cast::<libc::sockaddr_in6>().read_unaligned() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn reply(from: &str, ms: u64) -> Option<Reply> {
        Some(Reply {
            from: from.parse().unwrap(),
            rtt: Duration::from_millis(ms),
            kind: ReplyKind::TimeExceeded,
        })
    }

    fn hop(ttl: u8, replies: Vec<Option<Reply>>) -> TraceHop {
        TraceHop { ttl, replies }
    }

    #[test]
    fn a_hop_is_the_address_most_probes_came_from() {
        let h = hop(
            3,
            vec![
                reply("192.0.2.1", 5),
                reply("192.0.2.9", 4),
                reply("192.0.2.9", 6),
            ],
        );
        assert_eq!(h.address(), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(h.min_rtt(), Some(Duration::from_millis(4)));
        let tie = hop(3, vec![None, reply("192.0.2.5", 5), reply("192.0.2.1", 4)]);
        assert_eq!(tie.address(), Some("192.0.2.5".parse().unwrap()));
        assert_eq!(hop(4, vec![None, None]).address(), None);
    }

    fn long_trace(answered_until: u8, total: u8, end: TraceEnd) -> Trace {
        Trace {
            destination: "203.0.113.10".parse().unwrap(),
            method: Method::Icmp,
            hops: (1..=total)
                .map(|ttl| {
                    let r = (ttl <= answered_until)
                        .then(|| reply(&format!("198.51.100.{ttl}"), u64::from(ttl)))
                        .flatten();
                    hop(ttl, vec![r, None])
                })
                .collect(),
            end,
        }
    }

    #[test]
    fn a_long_path_keeps_its_office_end_and_its_front_door_end() {
        let s = long_trace(14, 14, TraceEnd::Reached).summary(9);
        let ttls: Vec<u8> = s.hops.iter().map(|h| h.ttl).collect();
        assert_eq!(ttls, [1, 2, 3, 4, 11, 12, 13, 14]);
        assert_eq!((s.target, s.reached, s.hop_count), (9, true, 14));
        assert_eq!(s.hops[7].address, Some("198.51.100.14".parse().unwrap()));
        assert_eq!(s.hops[7].rtt_us, 14_000);
    }

    #[test]
    fn a_path_that_goes_dark_shows_where() {
        // Answers up to TTL 10, then silence to 30: the report ends with one "*" after TTL 10.
        let s = long_trace(10, 30, TraceEnd::MaxHops).summary(0);
        let ttls: Vec<u8> = s.hops.iter().map(|h| h.ttl).collect();
        assert_eq!(ttls, [1, 2, 3, 4, 8, 9, 10, 11]);
        assert_eq!(s.hops[7].address, None);
        assert_eq!(s.hops[7].rtt_us, 0);
        assert!(!s.reached);
        assert_eq!(s.hop_count, 30);
        // Nothing answered at all: one "*" hop.
        let dark = long_trace(0, 5, TraceEnd::Silent).summary(0);
        assert_eq!(dark.hops.len(), 1);
        assert_eq!(dark.hop_count, 5);
    }

    #[test]
    fn icmp_errors_are_told_apart() {
        use libc::{SO_EE_ORIGIN_ICMP as V4, SO_EE_ORIGIN_ICMP6 as V6, SO_EE_ORIGIN_LOCAL};
        assert_eq!(classify(V4, 11, 0, false), Some(ReplyKind::TimeExceeded));
        assert_eq!(classify(V4, 3, 3, true), Some(ReplyKind::Destination));
        assert_eq!(
            classify(V4, 3, 1, false),
            Some(ReplyKind::Unreachable {
                icmp_type: 3,
                code: 1
            })
        );
        assert_eq!(classify(V6, 3, 0, false), Some(ReplyKind::TimeExceeded));
        assert_eq!(classify(V6, 1, 4, true), Some(ReplyKind::Destination));
        assert_eq!(classify(V6, 2, 0, false), None); // packet too big
        assert_eq!(classify(SO_EE_ORIGIN_LOCAL, 0, 0, false), None);
    }

    #[test]
    fn kernel_timestamps_of_both_widths_parse() {
        let mut b = Vec::new();
        b.extend_from_slice(&1_700_000_000i64.to_ne_bytes());
        b.extend_from_slice(&5_000i64.to_ne_bytes());
        let timespec = |b: &[u8]| socket::timespec(b, b.len() / 2);
        assert_eq!(
            timespec(&b),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5_000))
        );
        let mut b = Vec::new();
        b.extend_from_slice(&1_700_000_000i32.to_ne_bytes());
        b.extend_from_slice(&5_000i32.to_ne_bytes());
        assert_eq!(
            timespec(&b),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5_000))
        );
        assert_eq!(timespec(&[0; 12]), None);
        // Nanoseconds beyond a second are not a time.
        let mut b = 1i64.to_ne_bytes().to_vec();
        b.extend_from_slice(&1_000_000_000i64.to_ne_bytes());
        assert_eq!(timespec(&b), None);
    }

    #[test]
    fn config_sets_the_last_ttl_and_the_uplink() {
        let uplink = Uplink {
            name: "wan2".into(),
            interface: Some("eth1".into()),
            source: Some("198.51.100.7".parse().unwrap()),
        };
        let o = TraceOptions::from_config(
            &PathCheck {
                max_hops: 12,
                ..PathCheck::default()
            },
            Some(&uplink),
        );
        assert_eq!(o.max_hops, 12);
        assert_eq!(o.interface.as_deref(), Some("eth1"));
        assert_eq!(o.source, "198.51.100.7".parse().ok());
        assert_eq!(o.probes_per_hop, 3);
    }
}
