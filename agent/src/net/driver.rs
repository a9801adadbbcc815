//! The real-socket twin of the core's simulated network (`probe::sim::Net::run`): drives one [`Probe`]
//! over UDP and TCP sockets bound per [`SocketOptions`], with instants from [`super::clock`].
//!
//! One loop per probe: drain `poll_transmit` (datagrams go out on the probe's UDP socket, one per address
//! family; a connect's SYN leaves at once and a task of its own waits for the outcome), take the result
//! if there is one, then wait for the earliest of the probe's timeout, a datagram, or news from a
//! connection task, and feed it in with the instant it happened. Datagrams carry the kernel's arrival
//! stamp; connection tasks stamp a connect, bytes or a close the moment their await returns, before the
//! news queues for the loop. Sockets are made before the probe is polled (a spare TCP socket per family
//! is kept ready), so no socket setup sits between a probe's timestamp and its packet.
//!
//! Measured on loopback against the same exchange timed in a std loop (`measure_stamping_overhead` in
//! `agent/tests/net.rs`): DNS and STUN round trips no longer than the std loop's (the kernel stamps the
//! answer's arrival; the loop's own wake-up is not counted), a TCP connect 20-75 µs longer (the
//! reactor's wake-up and the task's poll before the stamp).
//!
//! Never hangs: the probe's own timeouts end it; the driver's `limit` is only a safety net against a
//! probe bug, and ends the drive with [`DriveError::Stalled`].

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use o365probe_core::probe::{ConnId, ConnectFailure, Event, Probe, Transmit, MAX_TRANSMIT};
use o365probe_core::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::clock;
use super::socket::{self, os_message, SocketError, SocketOptions, TcpSpare};

/// The safety net of [`drive`]: longer than any probe the core can be configured for (a STUN train's
/// `MAX_TRAIN_DURATION` of 10 minutes, plus a minute). Use [`drive_within`] with the probe's own
/// `max_duration()` plus a margin to give up sooner.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(11 * 60);

/// The largest datagram taken whole; a longer one reaches the probe cut, and the probe finds it
/// malformed. Our DNS queries offer 1232 octets (EDNS), STUN answers are under 100.
pub const MAX_DATAGRAM: usize = 4096;

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 * 1024;
/// News from connection tasks waiting for the loop; a task waits when it is full.
const NEWS_CAPACITY: usize = 64;
/// Writes waiting for a connection task.
const WRITES_CAPACITY: usize = 8;
/// Datagrams read per wake-up before the probe gets to send again.
const DATAGRAM_BATCH: usize = 64;
/// Wake-ups in a row that change nothing (a probe asking to be woken in the past and not moving on)
/// before the drive is declared stuck rather than spinning until its limit.
const MAX_IDLE_WAKEUPS: u32 = 10_000;

/// Why a drive ended without the probe's result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriveError {
    /// A socket could not be set up as the uplink asks.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// A datagram could not be sent: no route, a local firewall, an address gone.
    #[error("sendto {to}: {}", os_message(error))]
    Send {
        /// The destination.
        to: SocketAddr,
        /// What the OS said.
        error: io::Error,
    },
    /// Reading the probe's UDP socket failed.
    #[error("receive on the probe's {family} socket: {}", os_message(error))]
    Receive {
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// What the OS said.
        error: io::Error,
    },
    /// The probe did not finish within the driver's safety net (a probe bug: its own timeouts end it).
    #[error("probe did not finish within {:.1} s (the driver's safety net)", limit.as_secs_f64())]
    Stalled {
        /// The limit that passed.
        limit: Duration,
    },
    /// The probe stopped asking for time, or kept asking for the past, without giving a result.
    #[error("probe stopped without a result ({0})")]
    Stuck(&'static str),
}

/// A safety net for a probe that can take at most `max_duration` (its config's `max_duration()` or
/// `longest_duration()`): that plus a quarter, plus 5 s for a loaded machine.
pub fn limit_for(max_duration: o365probe_core::time::Duration) -> Duration {
    let max = clock::std_duration(max_duration);
    max + max / 4 + Duration::from_secs(5)
}

/// Drives `probe` to its result over real sockets bound per `opts`, with [`DEFAULT_LIMIT`] as the
/// safety net. Call within a tokio runtime (see [`super::runtime`]) whose clock is not paused: the
/// core's instants come from the real clock.
pub async fn drive<P: Probe>(probe: P, opts: &SocketOptions) -> Result<P::Output, DriveError> {
    drive_within(probe, opts, DEFAULT_LIMIT).await
}

/// [`drive`], giving up with [`DriveError::Stalled`] after `limit`.
pub async fn drive_within<P: Probe>(
    mut probe: P,
    opts: &SocketOptions,
    limit: Duration,
) -> Result<P::Output, DriveError> {
    let started = StdInstant::now();
    let give_up = tokio::time::Instant::from_std(started + limit);
    let mut io = Io::new(opts);
    // Sockets of both families before the first poll: a probe stamps a datagram or a connect when it
    // hands it out, and making a socket then would count towards that round trip.
    io.prepare();
    let mut out = vec![0u8; MAX_TRANSMIT];
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut idle = 0u32;
    loop {
        // Not between a stamp and its SYN, nor (on loopback) between a SYN and its task's stamp.
        io.replace_spares();
        let mut progressed = false;
        // A fresh `now` per transmit: each send is stamped as close to the syscall as possible.
        while let Some(t) = probe.poll_transmit(clock::now(), &mut out) {
            progressed = true;
            if let Some((conn, event)) = io.transmit(t, &out).await? {
                // A connect that failed at once, or a write its connection cannot take.
                probe.handle(clock::now(), conn_event(conn, &event));
            }
        }
        if let Some(result) = probe.poll_result() {
            return Ok(result);
        }
        let timeout = probe.poll_timeout();
        if timeout.is_none() && io.conns.is_empty() {
            // Only a connection's news can move it on; a datagram wait is always bounded by a timeout.
            return Err(DriveError::Stuck("no timeout and no connection open"));
        }
        let wake = tokio::select! {
            biased;
            r = readable(&io.udp, Family::V4) => Wake::Readable(r),
            r = readable(&io.udp, Family::V6) => Wake::Readable(r),
            Some(news) = io.news_rx.recv() => Wake::News(news),
            () = sleep_until(timeout), if timeout.is_some() => Wake::Timeout,
            () = tokio::time::sleep_until(give_up) => Wake::GiveUp,
        };
        match wake {
            Wake::Readable(Err((family, error))) => {
                return Err(DriveError::Receive {
                    family: family.name(),
                    error,
                })
            }
            Wake::Readable(Ok(family)) => {
                progressed |= feed_datagrams(&mut probe, &io, family, &mut datagram, true)?;
            }
            Wake::News(news) => {
                if let Some(event) = io.accept(news) {
                    progressed = true;
                    probe.handle(clock::from_std(event.2), conn_event(event.0, &event.1));
                }
            }
            Wake::Timeout => {
                // Datagrams that arrived before the timer fired go first, even those the reactor has
                // not reported yet: an answer just before a deadline is in time.
                for family in [Family::V4, Family::V6] {
                    progressed |= feed_datagrams(&mut probe, &io, family, &mut datagram, false)?;
                }
                probe.handle_timeout(clock::now());
                progressed |= probe.poll_timeout() != timeout;
            }
            Wake::GiveUp => return Err(DriveError::Stalled { limit }),
        }
        idle = if progressed { 0 } else { idle + 1 };
        if idle > MAX_IDLE_WAKEUPS {
            return Err(DriveError::Stuck(
                "woken again and again with nothing to do",
            ));
        }
    }
}

/// Feeds the probe what `family`'s socket holds, up to a batch, each with its arrival stamp; through
/// the reactor's readiness (`via_reactor`) or straight from the socket. Whether anything came.
fn feed_datagrams<P: Probe>(
    probe: &mut P,
    io: &Io<'_>,
    family: Family,
    buf: &mut [u8],
    via_reactor: bool,
) -> Result<bool, DriveError> {
    let Some(socket) = io.socket(family) else {
        return Ok(false);
    };
    let mut fed = false;
    for _ in 0..DATAGRAM_BATCH {
        let got = if via_reactor {
            socket.try_io(tokio::io::Interest::READABLE, || {
                socket::recv_datagram(socket, buf)
            })
        } else {
            socket::recv_datagram(socket, buf)
        };
        match got {
            Ok(d) => {
                fed = true;
                let data = buf.get(..d.len).unwrap_or_default();
                let event = Event::Datagram { from: d.from, data };
                probe.handle(clock::from_std(d.at), event);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(DriveError::Receive {
                    family: family.name(),
                    error,
                })
            }
        }
    }
    Ok(fed)
}

enum Wake {
    Readable(Result<Family, (Family, io::Error)>),
    News(News),
    Timeout,
    GiveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4 = 0,
    V6 = 1,
}

impl Family {
    fn of(to: SocketAddr) -> Family {
        if to.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// A stand-in destination of this family, for making a socket before the real one is known.
    fn any(self) -> SocketAddr {
        match self {
            Family::V4 => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            Family::V6 => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        }
    }
}

async fn readable(
    udp: &[Option<UdpSocket>; 2],
    family: Family,
) -> Result<Family, (Family, io::Error)> {
    match &udp[family as usize] {
        Some(s) => s.readable().await.map(|()| family).map_err(|e| (family, e)),
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(clock::to_std(at))).await
    }
}

/// What a connection task saw, and when.
#[derive(Debug)]
enum ConnNews {
    Connected,
    Failed(ConnectFailure),
    Received(Vec<u8>),
    Closed,
}

#[derive(Debug)]
struct News {
    conn: ConnId,
    /// Which opening of `conn` this is about: news of a closed one is dropped.
    generation: u64,
    at: StdInstant,
    what: ConnNews,
}

fn conn_event(conn: ConnId, news: &ConnNews) -> Event<'_> {
    match news {
        ConnNews::Connected => Event::Connected { conn },
        ConnNews::Failed(cause) => Event::ConnectFailed {
            conn,
            cause: *cause,
        },
        ConnNews::Received(data) => Event::Received { conn, data },
        ConnNews::Closed => Event::Closed { conn },
    }
}

struct Conn {
    generation: u64,
    writes: mpsc::Sender<Vec<u8>>,
    task: AbortHandle,
}

/// The sockets and connection tasks of one drive; dropping it closes them all.
struct Io<'a> {
    opts: &'a SocketOptions,
    /// The probe's UDP socket per family.
    udp: [Option<UdpSocket>; 2],
    /// A TCP socket per family, ready for the next connect.
    spares: [Option<TcpSpare>; 2],
    /// The families whose spare could be made (a spare is replaced only where one could be made).
    spares_work: [bool; 2],
    conns: BTreeMap<ConnId, Conn>,
    generation: u64,
    tasks: JoinSet<()>,
    news_tx: mpsc::Sender<News>,
    news_rx: mpsc::Receiver<News>,
}

impl<'a> Io<'a> {
    fn new(opts: &'a SocketOptions) -> Self {
        let (news_tx, news_rx) = mpsc::channel(NEWS_CAPACITY);
        Self {
            opts,
            udp: [None, None],
            spares: [None, None],
            spares_work: [false; 2],
            conns: BTreeMap::new(),
            generation: 0,
            tasks: JoinSet::new(),
            news_tx,
            news_rx,
        }
    }

    /// Makes what UDP and TCP sockets the options allow; one that fails is tried again, and its error
    /// reported, when the probe needs it.
    fn prepare(&mut self) {
        for family in [Family::V4, Family::V6] {
            if let Ok(socket) = socket::udp_socket(self.opts, family.any()) {
                self.udp[family as usize] = Some(socket);
            }
            let spare = TcpSpare::open(self.opts, family.any()).ok();
            self.spares_work[family as usize] = spare.is_some();
            self.spares[family as usize] = spare;
        }
    }

    fn replace_spares(&mut self) {
        for family in [Family::V4, Family::V6] {
            let i = family as usize;
            if self.spares_work[i] && self.spares[i].is_none() {
                self.spares[i] = TcpSpare::open(self.opts, family.any()).ok();
            }
        }
    }

    fn socket(&self, family: Family) -> Option<&UdpSocket> {
        self.udp[family as usize].as_ref()
    }

    /// The probe's UDP socket for `to`'s family.
    fn udp_for(&mut self, to: SocketAddr) -> Result<&UdpSocket, SocketError> {
        let opts = self.opts;
        let slot = &mut self.udp[Family::of(to) as usize];
        Ok(match slot {
            Some(socket) => socket,
            None => slot.insert(socket::udp_socket(opts, to)?),
        })
    }

    /// Carries out one transmit; returns news for the probe when a connect failed at once or a
    /// connection could not take a write.
    async fn transmit(
        &mut self,
        t: Transmit,
        buf: &[u8],
    ) -> Result<Option<(ConnId, ConnNews)>, DriveError> {
        match t {
            Transmit::Datagram { to, len } => {
                let socket = self.udp_for(to)?;
                let payload = buf.get(..len).unwrap_or(buf);
                match socket.send_to(payload, to).await {
                    Ok(_) => {}
                    // Lost on the way out, as a full queue on a router would lose it.
                    Err(e) if soft_send_error(&e) => {}
                    Err(error) => return Err(DriveError::Send { to, error }),
                }
            }
            Transmit::Connect { conn, to } => {
                if let Some(old) = self.conns.remove(&conn) {
                    old.task.abort();
                }
                // Spares are kept per family, so the one taken fits `to`.
                let spare = match self.spares[Family::of(to) as usize].take() {
                    Some(spare) => spare,
                    None => TcpSpare::open(self.opts, to)?,
                };
                let stream = match socket::connect_from(spare, to)? {
                    Ok(stream) => stream,
                    Err(e) => {
                        return Ok(Some((conn, ConnNews::Failed(socket::connect_failure(&e)))))
                    }
                };
                self.generation += 1;
                let generation = self.generation;
                let (writes, writes_rx) = mpsc::channel(WRITES_CAPACITY);
                let news = self.news_tx.clone();
                let task = self
                    .tasks
                    .spawn(connection(stream, conn, generation, writes_rx, news));
                self.conns.insert(
                    conn,
                    Conn {
                        generation,
                        writes,
                        task,
                    },
                );
            }
            Transmit::Stream { conn, len } => {
                if let Some(c) = self.conns.get(&conn) {
                    let payload = buf.get(..len).unwrap_or(buf).to_vec();
                    if c.writes.try_send(payload).is_err() {
                        if let Some(c) = self.conns.remove(&conn) {
                            c.task.abort();
                        }
                        return Ok(Some((conn, ConnNews::Closed)));
                    }
                }
            }
            Transmit::Close { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    c.task.abort();
                }
            }
        }
        Ok(None)
    }

    /// News for the probe, unless it is about a connection closed since.
    fn accept(&mut self, news: News) -> Option<(ConnId, ConnNews, StdInstant)> {
        let current = self.conns.get(&news.conn)?;
        if current.generation != news.generation {
            return None;
        }
        if matches!(news.what, ConnNews::Failed(_) | ConnNews::Closed) {
            // The task has ended; the probe may still send Close, which finds nothing.
            self.conns.remove(&news.conn);
        }
        Some((news.conn, news.what, news.at))
    }
}

/// Send errors that lose one datagram and say nothing about the path.
fn soft_send_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR | libc::ECONNREFUSED)
    )
}

/// One TCP connection: its connect's outcome, then writes out and bytes in, each stamped as it happens.
async fn connection(
    stream: tokio::net::TcpStream,
    conn: ConnId,
    generation: u64,
    mut writes: mpsc::Receiver<Vec<u8>>,
    news: mpsc::Sender<News>,
) {
    let tell = |what, at| News {
        conn,
        generation,
        at,
        what,
    };
    let (at, connected) = socket::finish_connect(&stream).await;
    let what = match &connected {
        Ok(()) => ConnNews::Connected,
        Err(e) => ConnNews::Failed(socket::connect_failure(e)),
    };
    if news.send(tell(what, at)).await.is_err() || connected.is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            write = writes.recv() => match write {
                Some(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        let _ = news.send(tell(ConnNews::Closed, StdInstant::now())).await;
                        return;
                    }
                }
                // The drive is over.
                None => return,
            },
            read = rd.read(&mut buf) => {
                let at = StdInstant::now();
                let what = match read {
                    Ok(0) | Err(_) => ConnNews::Closed,
                    Ok(n) => ConnNews::Received(buf[..n].to_vec()),
                };
                let closed = matches!(what, ConnNews::Closed);
                if news.send(tell(what, at)).await.is_err() || closed {
                    return;
                }
            }
        }
    }
}
