//! The real-socket twin of the core's simulated network (`probe::sim::Net::run`): drives one [`Probe`]
//! over UDP and TCP sockets bound per [`SocketOptions`], with instants from [`super::clock`].
//!
//! One loop per probe: drain `poll_transmit` (datagrams go out on the probe's UDP socket, one per address
//! family, made on first use; connects start in a task of their own), take the result if there is one,
//! then wait for the earliest of the probe's timeout, a datagram, or news from a connection task, and feed
//! it in with the instant it happened. Datagrams carry the kernel's arrival stamp; connection tasks stamp
//! a connect, bytes or a close the moment their await returns, before the news queues for the loop.
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
use super::socket::{self, os_message, SocketError, SocketOptions};

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
    #[error("receive from {to}: {}", os_message(error))]
    Receive {
        /// The destination the socket was made for.
        to: SocketAddr,
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

/// Drives `probe` to its result over real sockets bound per `opts`, with [`DEFAULT_LIMIT`] as the
/// safety net. Call within a tokio runtime (see [`super::runtime`]).
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
    let mut out = vec![0u8; MAX_TRANSMIT];
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut idle = 0u32;
    loop {
        let mut progressed = false;
        // A fresh `now` per transmit: each send is stamped as close to the syscall as possible.
        while let Some(t) = probe.poll_transmit(clock::now(), &mut out) {
            progressed = true;
            if let Some((conn, event)) = io.transmit(t, &out).await? {
                // A write the connection task cannot take: to the probe, the connection is gone.
                probe.handle(clock::now(), conn_event(conn, &event));
            }
        }
        if let Some(result) = probe.poll_result() {
            return Ok(result);
        }
        let timeout = probe.poll_timeout();
        if timeout.is_none() && io.conns.is_empty() && !io.has_udp() {
            return Err(DriveError::Stuck("no timeout and nothing in flight"));
        }
        let wake = tokio::select! {
            biased;
            r = readable(io.udp4.as_ref()) => Wake::Readable(r, io.udp4_to),
            r = readable(io.udp6.as_ref()) => Wake::Readable(r, io.udp6_to),
            Some(news) = io.news_rx.recv() => Wake::News(news),
            () = sleep_until(timeout), if timeout.is_some() => Wake::Timeout,
            () = tokio::time::sleep_until(give_up) => Wake::GiveUp,
        };
        match wake {
            Wake::Readable(Err(error), to) => {
                return Err(DriveError::Receive {
                    to: to.unwrap_or(UNSPECIFIED),
                    error,
                })
            }
            Wake::Readable(Ok(socket), to) => {
                for _ in 0..DATAGRAM_BATCH {
                    let Some(socket) = io.socket(socket) else {
                        break;
                    };
                    let got = socket.try_io(tokio::io::Interest::READABLE, || {
                        socket::recv_datagram(socket, &mut datagram)
                    });
                    match got {
                        Ok(d) => {
                            progressed = true;
                            let data = &datagram[..d.len];
                            let event = Event::Datagram { from: d.from, data };
                            probe.handle(clock::from_std(d.at), event);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => {
                            return Err(DriveError::Receive {
                                to: to.unwrap_or(UNSPECIFIED),
                                error,
                            })
                        }
                    }
                }
            }
            Wake::News(news) => {
                if let Some(event) = io.accept(news) {
                    progressed = true;
                    probe.handle(clock::from_std(event.2), conn_event(event.0, &event.1));
                }
            }
            Wake::Timeout => {
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

const UNSPECIFIED: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

enum Wake {
    Readable(io::Result<Family>, Option<SocketAddr>),
    News(News),
    Timeout,
    GiveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

async fn readable(socket: Option<&(UdpSocket, Family)>) -> io::Result<Family> {
    match socket {
        Some((s, family)) => s.readable().await.map(|()| *family),
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
    udp4: Option<(UdpSocket, Family)>,
    udp4_to: Option<SocketAddr>,
    udp6: Option<(UdpSocket, Family)>,
    udp6_to: Option<SocketAddr>,
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
            udp4: None,
            udp4_to: None,
            udp6: None,
            udp6_to: None,
            conns: BTreeMap::new(),
            generation: 0,
            tasks: JoinSet::new(),
            news_tx,
            news_rx,
        }
    }

    fn has_udp(&self) -> bool {
        self.udp4.is_some() || self.udp6.is_some()
    }

    fn socket(&self, family: Family) -> Option<&UdpSocket> {
        match family {
            Family::V4 => self.udp4.as_ref().map(|s| &s.0),
            Family::V6 => self.udp6.as_ref().map(|s| &s.0),
        }
    }

    /// The probe's UDP socket for `to`'s family, made on first use.
    fn udp_for(&mut self, to: SocketAddr) -> Result<&UdpSocket, SocketError> {
        let (slot, first_to, family) = if to.is_ipv4() {
            (&mut self.udp4, &mut self.udp4_to, Family::V4)
        } else {
            (&mut self.udp6, &mut self.udp6_to, Family::V6)
        };
        if slot.is_none() {
            *slot = Some((socket::udp_socket(self.opts, to)?, family));
            *first_to = Some(to);
        }
        Ok(slot.as_ref().map(|s| &s.0).expect("made above"))
    }

    /// Carries out one transmit; returns news for the probe if a connection could not take a write.
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
                let socket = socket::tcp_socket(self.opts, to)?;
                self.generation += 1;
                let generation = self.generation;
                let (writes, writes_rx) = mpsc::channel(WRITES_CAPACITY);
                let news = self.news_tx.clone();
                let task = self
                    .tasks
                    .spawn(connection(socket, to, conn, generation, writes_rx, news));
                if let Some(old) = self.conns.insert(
                    conn,
                    Conn {
                        generation,
                        writes,
                        task,
                    },
                ) {
                    old.task.abort();
                }
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

/// One TCP connection: connect, then relay writes out and bytes in, stamping everything as it happens.
async fn connection(
    socket: tokio::net::TcpSocket,
    to: SocketAddr,
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
    let stream = match socket.connect(to).await {
        Ok(stream) => {
            let at = StdInstant::now();
            if news.send(tell(ConnNews::Connected, at)).await.is_err() {
                return;
            }
            stream
        }
        Err(e) => {
            let at = StdInstant::now();
            let _ = news
                .send(tell(ConnNews::Failed(socket::connect_failure(&e)), at))
                .await;
            return;
        }
    };
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
