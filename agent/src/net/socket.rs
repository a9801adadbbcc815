//! Sockets that leave through the uplink being assessed: bound to its interface (SO_BINDTODEVICE) or
//! its source address, optionally marked with a DSCP, and receiving with kernel timestamps.
//!
//! On a multi-WAN router the routing table picks one WAN for everything; binding each probe's socket to
//! an uplink's device or address is what lets every WAN be assessed on its own. Errors name the
//! interface, address or destination involved, so `check` can say what is wrong in one line.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use o365probe_core::probe::ConnectFailure;
use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, SockRef, Socket, Type};

use crate::config::Uplink;

/// DSCP Expedited Forwarding (RFC 3246): how Teams marks audio where QoS is deployed.
pub const DSCP_EF: u8 = 46;

/// How a probe's sockets are bound and marked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// Bind to this device (SO_BINDTODEVICE).
    pub interface: Option<String>,
    /// Send from this address (policy routing picks the uplink); its family must be the destination's.
    pub source: Option<IpAddr>,
    /// Mark every packet with this DSCP (0-63): IP_TOS or IPV6_TCLASS = `dscp << 2`.
    pub dscp: Option<u8>,
}

impl SocketOptions {
    /// The uplink's binding, unmarked.
    pub fn uplink(uplink: &Uplink) -> Self {
        Self {
            interface: uplink.interface.clone(),
            source: uplink.source,
            dscp: None,
        }
    }

    /// The same binding, marked with `dscp` (e.g. `teams.dscp_ef.then_some(DSCP_EF)`).
    pub fn with_dscp(self, dscp: Option<u8>) -> Self {
        Self { dscp, ..self }
    }
}

/// A socket could not be set up as the options ask.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// SO_BINDTODEVICE failed: no such interface, or no CAP_NET_RAW.
    #[error("bind to interface {interface}: {}", device_problem(error))]
    BindDevice {
        /// The interface asked for.
        interface: String,
        /// What the OS said.
        error: io::Error,
    },
    /// The source address is not on this machine, or is in use.
    #[error("bind to source address {address}: {}", os_message(error))]
    BindSource {
        /// The source address asked for.
        address: IpAddr,
        /// What the OS said.
        error: io::Error,
    },
    /// The source address cannot reach the destination.
    #[error("source address {address} is {}, but {to} is {}: no probe can go from one to the other",
        family(address), family(&to.ip()))]
    FamilyMismatch {
        /// The source address asked for.
        address: IpAddr,
        /// The destination.
        to: SocketAddr,
    },
    /// A DSCP beyond the 6 bits the IP header has.
    #[error("DSCP {dscp} is not a code point (0-63)")]
    InvalidDscp {
        /// The value asked for.
        dscp: u8,
    },
    /// The socket could not be created or configured.
    #[error("{what} for {to}: {}", os_message(error))]
    Setup {
        /// What was being done.
        what: &'static str,
        /// The destination.
        to: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
}

/// `SocketError::Setup` for `map_err`: `what` failed on a socket for `to`.
fn setup(what: &'static str, to: SocketAddr) -> impl FnOnce(io::Error) -> SocketError {
    move |error| SocketError::Setup { what, to, error }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn device_problem(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ENODEV) => "no such interface".into(),
        Some(libc::EPERM | libc::EACCES) => {
            "permission denied: SO_BINDTODEVICE needs the CAP_NET_RAW capability (run as root, or \
             grant it: setcap cap_net_raw+ep o365probe)"
                .into()
        }
        _ => os_message(error),
    }
}

/// The OS's message without the " (os error N)" that std appends: "Network is unreachable".
pub fn os_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// What the core calls a failed connect, from the OS's error.
pub fn connect_failure(error: &io::Error) -> ConnectFailure {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => ConnectFailure::Refused,
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => ConnectFailure::Unreachable,
        Some(libc::ETIMEDOUT) => ConnectFailure::TimedOut,
        _ => match error.kind() {
            io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                ConnectFailure::Unreachable
            }
            io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
            _ => ConnectFailure::Other,
        },
    }
}

/// A socket of `ty` (UDP or TCP) for talking to `to`, bound and marked per `opts`, non-blocking.
fn open(opts: &SocketOptions, to: SocketAddr, ty: Type) -> Result<Socket, SocketError> {
    let protocol = if ty == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    open_with(opts, to, ty, protocol)
}

/// A socket of `ty` and `protocol` for talking to `to`, bound and marked per `opts`, non-blocking: the
/// one place an uplink's binding is applied (the probes, the HTTP checks, traceroute).
pub(crate) fn open_with(
    opts: &SocketOptions,
    to: SocketAddr,
    ty: Type,
    protocol: Protocol,
) -> Result<Socket, SocketError> {
    if let Some(address) = opts.source {
        if address.is_ipv4() != to.is_ipv4() {
            return Err(SocketError::FamilyMismatch { address, to });
        }
    }
    let tos = match opts.dscp {
        Some(dscp) if dscp > 63 => return Err(SocketError::InvalidDscp { dscp }),
        dscp => dscp.map(|d| u32::from(d) << 2),
    };
    let socket = Socket::new(Domain::for_address(to), ty.cloexec(), Some(protocol))
        .map_err(setup("open a socket", to))?;
    socket
        .set_nonblocking(true)
        .map_err(setup("make the socket non-blocking", to))?;
    if to.is_ipv6() {
        // Only IPv6 on an IPv6 socket: an IPv4-mapped peer would otherwise be reported as IPv6.
        socket
            .set_only_v6(true)
            .map_err(setup("set IPV6_V6ONLY", to))?;
    }
    if let Some(interface) = &opts.interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|error| SocketError::BindDevice {
                interface: interface.clone(),
                error,
            })?;
    }
    if let Some(tos) = tos {
        let set = if to.is_ipv4() {
            socket.set_tos_v4(tos)
        } else {
            socket.set_tclass_v6(tos)
        };
        set.map_err(setup("set the DSCP", to))?;
    }
    if let Some(address) = opts.source {
        socket
            .bind(&SocketAddr::new(address, 0).into())
            .map_err(|error| SocketError::BindSource { address, error })?;
    }
    Ok(socket)
}

/// A UDP socket for sending to `to` (and to any address of its family), bound and marked per `opts`,
/// receiving with kernel timestamps where the kernel offers them. Call within a tokio runtime.
pub fn udp_socket(
    opts: &SocketOptions,
    to: SocketAddr,
) -> Result<tokio::net::UdpSocket, SocketError> {
    let socket = open(opts, to, Type::DGRAM)?;
    if opts.source.is_none() {
        // Bound now so the socket can receive before its first send.
        let any = match to {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        socket
            .bind(&SocketAddr::new(any, 0).into())
            .map_err(setup("bind the socket", to))?;
    }
    // Without kernel timestamps datagrams are stamped when recvmsg returns: still correct, less exact.
    let _ = enable_receive_timestamps(&socket);
    tokio::net::UdpSocket::from_std(socket.into()).map_err(setup("register the socket", to))
}

/// A TCP socket for connecting to `to`, bound and marked per `opts`; connect it with
/// [`tokio::net::TcpSocket::connect`] and map a failure with [`connect_failure`].
pub fn tcp_socket(
    opts: &SocketOptions,
    to: SocketAddr,
) -> Result<tokio::net::TcpSocket, SocketError> {
    Ok(tokio::net::TcpSocket::from_std_stream(
        open_tcp(opts, to)?.into(),
    ))
}

/// A blocking TCP socket for connecting to `to`, bound and marked per `opts`: for the HTTP checks and
/// the download, which connect and read with std on a thread of their own. Connect it with
/// [`Socket::connect_timeout`].
pub fn blocking_tcp_socket(opts: &SocketOptions, to: SocketAddr) -> Result<Socket, SocketError> {
    let socket = open(opts, to, Type::STREAM)?;
    socket
        .set_nonblocking(false)
        .map_err(setup("make the socket blocking", to))?;
    Ok(socket)
}

fn open_tcp(opts: &SocketOptions, to: SocketAddr) -> Result<Socket, SocketError> {
    let socket = open(opts, to, Type::STREAM)?;
    // The probes write one small message (a DNS query, a ClientHello) and wait: send it now.
    socket
        .set_tcp_nodelay(true)
        .map_err(setup("set TCP_NODELAY", to))?;
    Ok(socket)
}

/// A TCP socket made ahead of its connect, so the connect's timestamp is not followed by the
/// syscalls that make and configure a socket before its SYN leaves.
#[derive(Debug)]
pub struct TcpSpare {
    socket: Socket,
}

impl TcpSpare {
    /// A socket for connecting to `to` (or any address of its family), bound and marked per `opts`.
    pub fn open(opts: &SocketOptions, to: SocketAddr) -> Result<TcpSpare, SocketError> {
        Ok(TcpSpare {
            socket: open_tcp(opts, to)?,
        })
    }
}

/// Starts a TCP connect to `to` from a socket made earlier: the SYN has left when this returns (no task
/// switch between the caller's timestamp and the SYN). The outer error is a socket that could not be
/// registered; the inner one a connect that failed at once (no route: ENETUNREACH). Finish with
/// [`finish_connect`]. Call within a tokio runtime.
pub fn connect_from(
    spare: TcpSpare,
    to: SocketAddr,
) -> Result<io::Result<tokio::net::TcpStream>, SocketError> {
    let socket = spare.socket;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Ok(Err(e)),
    }
    // Registered only now: an unconnected socket polls writable, which would read as connected.
    let stream = std::net::TcpStream::from(socket);
    tokio::net::TcpStream::from_std(stream)
        .map(Ok)
        .map_err(setup("register the socket", to))
}

/// Waits for a connect begun by [`connect_from`]: when its outcome was known (stamped the moment the
/// socket turned writable, before the syscalls that read the outcome), and `Ok` if established, else
/// the OS's reason.
pub async fn finish_connect(stream: &tokio::net::TcpStream) -> (StdInstant, io::Result<()>) {
    let ready = stream.writable().await;
    let at = StdInstant::now();
    let outcome = ready.and_then(|()| match stream.take_error()? {
        Some(e) => Err(e),
        // Writable without an error is established; peer_addr confirms it.
        None => stream.peer_addr().map(|_| ()),
    });
    (at, outcome)
}

/// SO_TIMESTAMPNS_NEW (Linux 5.1): a 64-bit timespec on every architecture. The value is the same
/// on the generic, ARM and MIPS ABIs this agent is built for.
const SO_TIMESTAMPNS_NEW: libc::c_int = 64;

/// Asks the kernel to stamp each received datagram (CLOCK_REALTIME, taken when the packet arrived):
/// the new 64-bit option, or the old one on kernels before 5.1.
fn enable_receive_timestamps(socket: &impl AsRawFd) -> io::Result<()> {
    set_int_option(socket, libc::SOL_SOCKET, SO_TIMESTAMPNS_NEW, 1)
        .or_else(|_| set_int_option(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1))
}

/// `setsockopt` of an `int` option socket2 has no setter for.
#[allow(unsafe_code)]
pub(crate) fn set_int_option(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, a live c_int, for the duration of the call;
    // the fd belongs to a socket the caller keeps open.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A datagram as [`recv_datagram`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedDatagram {
    /// Bytes written to the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer and was cut.
    pub truncated: bool,
    /// The sender.
    pub from: SocketAddr,
    /// When it arrived: the kernel's timestamp mapped to the monotonic clock, or the moment recvmsg
    /// returned if the kernel gave none.
    pub at: StdInstant,
    /// Whether `at` came from the kernel.
    pub kernel_stamped: bool,
    /// The IPv4 TOS or IPv6 traffic class, if the socket asked for it (IP_RECVTOS, IPV6_RECVTCLASS).
    pub tos: Option<u8>,
}

/// The longest a datagram may have waited in the socket for its kernel timestamp to be believed: a
/// wall clock stepped between arrival and read (NTP at boot) would otherwise shift the stamp.
const MAX_QUEUED: std::time::Duration = std::time::Duration::from_secs(5);

/// Room for the control messages asked for: a timestamp and a TOS byte, each with its header.
const CONTROL_LEN: usize = 128;

/// Reads one datagram with recvmsg (non-blocking on a non-blocking socket: `WouldBlock` when none).
pub fn recv_datagram(socket: &impl AsFd, buf: &mut [u8]) -> io::Result<ReceivedDatagram> {
    let socket = SockRef::from(socket);
    let ipv6 = socket.local_addr()?.is_ipv6();
    let storage: SocketAddr = if ipv6 {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut from = SockAddr::from(storage);
    let mut control = [0u8; CONTROL_LEN];
    let capacity = buf.len();
    let (len, truncated, control_len, mono_now, wall_now) = {
        let mut bufs = [MaybeUninitSlice::new(as_uninit(buf))];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut from)
            .with_buffers(&mut bufs)
            .with_control(as_uninit(&mut control));
        let len = socket.recvmsg(&mut msg, 0)?;
        // Read the clocks first: the fallback stamp, and the pair a kernel stamp is mapped with.
        let (mono_now, wall_now) = (StdInstant::now(), SystemTime::now());
        let truncated = msg.flags().is_truncated();
        (len, truncated, msg.control_len(), mono_now, wall_now)
    };
    let from = from.as_socket().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    let cmsgs = parse_control(control.get(..control_len).unwrap_or(&control));
    let (at, kernel_stamped) = match cmsgs.timestamp {
        Some(kernel) => (to_monotonic(kernel, wall_now, mono_now), true),
        None => (mono_now, false),
    };
    Ok(ReceivedDatagram {
        len: len.min(capacity),
        truncated,
        from,
        at,
        kernel_stamped,
        tos: cmsgs.tos,
    })
}

/// A view of initialised bytes as possibly uninitialised ones, for recvmsg to fill.
#[allow(unsafe_code)]
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the layout of u8. The slice is only handed to recvmsg, which writes
    // bytes and never de-initialises any, so `buf` stays initialised when the borrow ends.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len()) }
}

/// A kernel arrival time (wall clock) as a monotonic instant: now, minus how long ago it was.
fn to_monotonic(kernel: SystemTime, wall_now: SystemTime, mono_now: StdInstant) -> StdInstant {
    match wall_now.duration_since(kernel) {
        Ok(queued) if queued <= MAX_QUEUED => mono_now.checked_sub(queued).unwrap_or(mono_now),
        // A clock stepped backwards or a stale stamp: the read time is the best we have.
        _ => mono_now,
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct ControlMessages {
    timestamp: Option<SystemTime>,
    tos: Option<u8>,
}

/// Reads the control messages recvmsg returned. The layout is the C ABI's (`struct cmsghdr`: a
/// `size_t` length, then level and type as `int`, data aligned to `size_t`), read byte by byte.
fn parse_control(control: &[u8]) -> ControlMessages {
    const WORD: usize = std::mem::size_of::<usize>();
    let align = |n: usize| n.div_ceil(WORD) * WORD;
    let header = align(WORD + 8);
    let mut out = ControlMessages::default();
    let mut at = 0;
    while let Some(head) = control.get(at..at + header) {
        let len = usize::from_ne_bytes(head[..WORD].try_into().unwrap_or([0; WORD]));
        let level = i32::from_ne_bytes(head[WORD..WORD + 4].try_into().unwrap_or([0; 4]));
        let kind = i32::from_ne_bytes(head[WORD + 4..WORD + 8].try_into().unwrap_or([0; 4]));
        if len < header {
            break;
        }
        let Some(data) = control.get(at + header..at + len) else {
            break;
        };
        match (level, kind) {
            (libc::SOL_SOCKET, SO_TIMESTAMPNS_NEW) => out.timestamp = timespec(data, 8),
            (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS) => {
                // The old option's timespec has the C library's time_t: 64 or 32 bits.
                out.timestamp = timespec(data, data.len() / 2)
            }
            (libc::IPPROTO_IP, libc::IP_TOS) => out.tos = data.first().copied(),
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                out.tos = data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| i32::from_ne_bytes(b) as u8)
            }
            _ => {}
        }
        at += align(len);
    }
    out
}

/// A `{ tv_sec, tv_nsec }` of two native integers of `width` bytes (8 or 4) as a wall-clock time.
pub(crate) fn timespec(data: &[u8], width: usize) -> Option<SystemTime> {
    let int = |b: &[u8]| -> Option<i64> {
        match width {
            8 => Some(i64::from_ne_bytes(b.try_into().ok()?)),
            4 => Some(i64::from(i32::from_ne_bytes(b.try_into().ok()?))),
            _ => None,
        }
    };
    let secs = int(data.get(..width)?)?;
    let nanos = int(data.get(width..2 * width)?)?;
    let nanos = u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000)?;
    let since = std::time::Duration::new(u64::try_from(secs).ok()?, nanos);
    UNIX_EPOCH.checked_add(since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn localhost(port: u16) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, port).into()
    }

    fn runtime() -> tokio::runtime::Runtime {
        super::super::runtime().unwrap()
    }

    #[test]
    fn os_errors_map_to_the_cores_connect_failures() {
        let e = io::Error::from_raw_os_error;
        assert_eq!(
            connect_failure(&e(libc::ECONNREFUSED)),
            ConnectFailure::Refused
        );
        assert_eq!(
            connect_failure(&e(libc::EHOSTUNREACH)),
            ConnectFailure::Unreachable
        );
        assert_eq!(
            connect_failure(&e(libc::ENETUNREACH)),
            ConnectFailure::Unreachable
        );
        assert_eq!(
            connect_failure(&e(libc::ETIMEDOUT)),
            ConnectFailure::TimedOut
        );
        assert_eq!(connect_failure(&e(libc::EPERM)), ConnectFailure::Other);
        assert_eq!(
            connect_failure(&e(libc::EADDRNOTAVAIL)),
            ConnectFailure::Other
        );
    }

    #[test]
    fn a_refused_bind_to_device_names_the_interface_and_the_capability() {
        let err = SocketError::BindDevice {
            interface: "wan2".into(),
            error: io::Error::from_raw_os_error(libc::EPERM),
        };
        let text = err.to_string();
        assert!(text.starts_with("bind to interface wan2: "), "{text}");
        assert!(text.contains("CAP_NET_RAW"), "{text}");
        assert!(!text.contains("os error"), "{text}");
    }

    #[test]
    fn os_messages_read_without_the_error_number() {
        let e = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(os_message(&e), "Network is unreachable");
        let custom = io::Error::other("no route (to speak of)");
        assert_eq!(os_message(&custom), "no route (to speak of)");
    }

    #[test]
    fn a_dscp_beyond_six_bits_is_refused_before_any_socket_is_made() {
        let opts = SocketOptions::default().with_dscp(Some(64));
        let err = tcp_socket(&opts, localhost(9)).unwrap_err();
        assert!(
            matches!(err, SocketError::InvalidDscp { dscp: 64 }),
            "{err}"
        );
    }

    #[test]
    fn ef_sets_the_tos_byte_on_udp_and_tcp_sockets_of_both_families() {
        let rt = runtime();
        let _guard = rt.enter();
        let ef = SocketOptions::default().with_dscp(Some(DSCP_EF));
        let v4 = udp_socket(&ef, localhost(9)).unwrap();
        assert_eq!(SockRef::from(&v4).tos_v4().unwrap(), 0xb8);
        let v6 = udp_socket(&ef, (Ipv6Addr::LOCALHOST, 9).into()).unwrap();
        assert_eq!(SockRef::from(&v6).tclass_v6().unwrap(), 0xb8);
        let tcp = tcp_socket(&ef, localhost(9)).unwrap();
        assert_eq!(SockRef::from(&tcp).tos_v4().unwrap(), 0xb8);
        // Unmarked sockets stay best effort.
        let plain = udp_socket(&SocketOptions::default(), localhost(9)).unwrap();
        assert_eq!(SockRef::from(&plain).tos_v4().unwrap(), 0);
    }

    /// A receiver with IP_RECVTOS / IPV6_RECVTCLASS reads back the mark the sender's packets carry.
    #[test]
    fn the_receiver_sees_ef_on_the_wire() {
        let rt = runtime();
        let _guard = rt.enter();
        for ip in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let receiver = std::net::UdpSocket::bind((ip, 0)).unwrap();
            receiver
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let r = SockRef::from(&receiver);
            if ip.is_ipv4() {
                r.set_recv_tos_v4(true).unwrap();
            } else {
                r.set_recv_tclass_v6(true).unwrap();
            }
            let to = receiver.local_addr().unwrap();
            let mut buf = [0u8; 64];
            for (dscp, want) in [(Some(DSCP_EF), 0xb8), (None, 0)] {
                let opts = SocketOptions::default().with_dscp(dscp);
                let sender = udp_socket(&opts, to).unwrap();
                SockRef::from(&sender).send_to(b"ef?", &to.into()).unwrap();
                let got = recv_datagram(&receiver, &mut buf).unwrap();
                assert_eq!(&buf[..got.len], b"ef?");
                let port = sender.local_addr().unwrap().port();
                assert_eq!(got.from, SocketAddr::new(ip, port));
                assert_eq!(got.tos, Some(want), "{ip} dscp {dscp:?}");
            }
        }
    }

    #[test]
    fn received_datagrams_carry_a_kernel_timestamp_from_before_the_read() {
        let rt = runtime();
        let _guard = rt.enter();
        let receiver = udp_socket(&SocketOptions::default(), localhost(9)).unwrap();
        let to = localhost(receiver.local_addr().unwrap().port());
        let sender = std::net::UdpSocket::bind(localhost(0)).unwrap();
        let mut buf = [0u8; 16];
        // The kernel switches arrival stamping on from a work queue once a socket asks for it; until
        // then it stamps at recvmsg. So a few tries, each of which must stamp at or after its send.
        let mut waited = Vec::new();
        for _ in 0..20 {
            let before = StdInstant::now();
            sender.send_to(b"when", to).unwrap();
            // The datagram waits in the socket: its stamp is its arrival, not this read.
            std::thread::sleep(Duration::from_millis(50));
            let got = recv_datagram(&receiver, &mut buf).unwrap();
            let read = StdInstant::now();
            assert!(got.kernel_stamped);
            assert!(!got.truncated);
            assert!(got.at >= before - Duration::from_millis(1));
            waited.push(read.duration_since(got.at));
            if waited.last() >= Some(&Duration::from_millis(40)) {
                break;
            }
        }
        assert!(
            waited.last() >= Some(&Duration::from_millis(40)),
            "never stamped at arrival: stamp to read {waited:?}"
        );
        // Nothing more: a non-blocking read says so instead of blocking.
        let err = recv_datagram(&receiver, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_marked_truncated() {
        let rt = runtime();
        let _guard = rt.enter();
        let receiver = udp_socket(&SocketOptions::default(), localhost(9)).unwrap();
        let to = localhost(receiver.local_addr().unwrap().port());
        let sender = std::net::UdpSocket::bind(localhost(0)).unwrap();
        sender.send_to(&[7; 100], to).unwrap();
        let mut buf = [0u8; 10];
        let got = loop {
            match recv_datagram(&receiver, &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                other => break other.unwrap(),
            }
        };
        assert_eq!((got.len, got.truncated), (10, true));
    }

    #[test]
    fn kernel_times_map_onto_the_monotonic_clock() {
        let mono = StdInstant::now();
        let wall = SystemTime::now();
        let ms = Duration::from_millis;
        assert_eq!(to_monotonic(wall - ms(3), wall, mono), mono - ms(3));
        // A stamp from the future (clock stepped back) or from long ago (stepped forward): read time.
        assert_eq!(to_monotonic(wall + ms(3), wall, mono), mono);
        assert_eq!(to_monotonic(wall - ms(60_000), wall, mono), mono);
    }

    #[test]
    fn control_messages_are_read_in_the_c_layout() {
        const WORD: usize = std::mem::size_of::<usize>();
        fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
            let header = (WORD + 8).div_ceil(WORD) * WORD;
            let mut v = (header + data.len()).to_ne_bytes()[..WORD].to_vec();
            v.extend_from_slice(&level.to_ne_bytes());
            v.extend_from_slice(&kind.to_ne_bytes());
            v.resize(header, 0);
            v.extend_from_slice(data);
            v.resize(v.len().div_ceil(WORD) * WORD, 0);
            v
        }
        let mut ts = 1_795_740_530i64.to_ne_bytes().to_vec();
        ts.extend_from_slice(&123_456_789i64.to_ne_bytes());
        let mut control = cmsg(libc::IPPROTO_IP, libc::IP_TOS, &[0xb8]);
        control.extend(cmsg(libc::SOL_SOCKET, SO_TIMESTAMPNS_NEW, &ts));
        let got = parse_control(&control);
        assert_eq!(got.tos, Some(0xb8));
        assert_eq!(
            got.timestamp,
            Some(UNIX_EPOCH + Duration::new(1_795_740_530, 123_456_789))
        );
        // A 32-bit old-style timespec, and a cut message that must not be read past its end.
        let mut ts32 = 1_000i32.to_ne_bytes().to_vec();
        ts32.extend_from_slice(&5i32.to_ne_bytes());
        let old = cmsg(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &ts32);
        assert_eq!(
            parse_control(&old).timestamp,
            Some(UNIX_EPOCH + Duration::new(1_000, 5))
        );
        assert_eq!(
            parse_control(&old[..old.len() - 6]),
            ControlMessages::default()
        );
    }
}
