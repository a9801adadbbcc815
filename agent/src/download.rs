//! The download test: how fast a configured file comes down (SharePoint's score is the 25th-percentile
//! download speed), and how much latency to the front door grows while it does (buffer bloat).
//!
//! One run: a few idle TCP connect samples to the latency target, then the transfer (through the proxy
//! the config and the environment choose, as for [`crate::http`]) up to `max_bytes` or `timeout`, with connect samples continuing every
//! `latency_interval` on a thread of their own. Samples started between the first and the last body
//! byte are the loaded ones. Throughput is body bytes over the time from the request to the last byte
//! (as the report counts it), and also per [`THROUGHPUT_WINDOW`] from the first byte on, for the 25th
//! percentile.
//!
//! Each latency sample is one run of the core's `TcpProbe` (one connect) through the agent's IO shell
//! (`net::drive_within`), on the sampling thread's own current-thread runtime: measured exactly as the
//! TCP latency probe measures, bound to the same uplink as the transfer.
//!
//! The transfer is written by hand on a `std` socket (rustls for `https://`, with the roots minreq
//! uses; `CONNECT` by hand through a proxy), not with minreq: minreq hands a body over one byte at a
//! time through an iterator, which measured 616 Mbit/s on loopback on the development machine in a
//! release build (75 in a debug build) against 8 Gbit/s for plain reads, and a router's CPU is several
//! times slower: minreq would measure the router, not the line. The request asks for `HTTP/1.0`, so
//! that the body has no chunked framing to undo (RFC 9112 §6.1: no transfer coding in answer to an
//! HTTP/1.0 request); a server that sends one anyway is reported, not miscounted.

use crate::config::{self, ProxyEnv};
use crate::http::{self, Connection, Deadline, Failure, HttpUrl, ProxyServer};
use crate::net::{self, clock, SocketOptions};
use o365probe_core::probe::http::{judge_response, HttpJudgement};
use o365probe_core::probe::tcp::{TcpConfig, TcpProbe};
use o365probe_core::report::{DownloadSummary, Rtt};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Idle latency samples before the transfer unless configured.
pub const DEFAULT_IDLE_SAMPLES: usize = 5;
/// How long one latency sample may take unless configured (Linux retransmits a SYN after 1 s; a
/// bloated queue can add more than that).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The throughput window: long enough for many reads at any speed worth measuring, short enough for
/// a 10 MB file at 50 Mbit/s to give eight of them.
pub const THROUGHPUT_WINDOW: Duration = Duration::from_millis(200);
/// The most throughput windows kept (16 minutes of 200 ms windows); later ones are not recorded.
pub const MAX_WINDOWS: usize = 4096;
/// The most latency samples kept per phase; later ones are not taken.
pub const MAX_LATENCY_SAMPLES: usize = 4096;
/// Bytes asked of the connection per read.
const READ_CHUNK: usize = 64 * 1024;

/// What to download and how to sample latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOptions {
    /// The file.
    pub url: String,
    /// The proxy for `url`, decided as for [`http::HttpOptions::proxy`]; `None` goes direct.
    pub proxy: Option<String>,
    /// Stop after this many body bytes.
    pub max_bytes: u64,
    /// Stop this long after the request started (the idle samples come before and do not count).
    pub timeout: Duration,
    /// Where latency is sampled with TCP connects (the front door); `None`: no latency samples.
    pub latency_target: Option<SocketAddr>,
    /// Time from one sample's start to the next one's.
    pub latency_interval: Duration,
    /// Samples before the transfer.
    pub idle_samples: usize,
    /// How long one sample may take before it counts as failed.
    pub connect_timeout: Duration,
    /// The uplink's binding, for the transfer and the samples.
    pub bind: SocketOptions,
}

impl DownloadOptions {
    /// The options from `[download]` and the proxy from `[http]` (resolved against `env`), sampling
    /// latency to `latency_target`, unbound (set [`DownloadOptions::bind`] for an uplink); `None` when
    /// no download is configured.
    pub fn from_config(
        download: &config::Download,
        http: &config::Http,
        env: &ProxyEnv,
        latency_target: Option<SocketAddr>,
    ) -> Option<Self> {
        let url = download.url.clone()?;
        Some(Self {
            proxy: http.proxy.for_url(&url, env),
            url,
            max_bytes: download.max_bytes,
            timeout: download.timeout,
            latency_target,
            latency_interval: download.latency_interval,
            idle_samples: DEFAULT_IDLE_SAMPLES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            bind: SocketOptions::default(),
        })
    }
}

/// One TCP connect to the latency target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySample {
    /// When it started, from the start of the run.
    pub at: Duration,
    /// How long the connect took; `None` if it failed or timed out.
    pub rtt: Option<Duration>,
}

/// Why the transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The whole file came.
    Complete,
    /// `max_bytes` came.
    MaxBytes,
    /// The timeout came first.
    Timeout,
    /// It failed (see [`DownloadMeasurement::failure`]).
    Failed,
}

/// Why a download brought no file (or only part of one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// No response, or the connection failed during the body.
    #[error(transparent)]
    Http(#[from] Failure),
    /// A response other than 2xx (a proxy's refusal among them, judged by the core).
    #[error("answered {status}, not 200{}", .judgement.proxy.map(|p| format!(" (proxy {p})")).unwrap_or_default())]
    Status {
        /// The status.
        status: u16,
        /// The core's judgement of the response.
        judgement: HttpJudgement,
    },
}

/// The outcome of one download run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadMeasurement {
    /// The URL.
    pub url: String,
    /// The proxy it went through (`host:port`); `None`: direct.
    pub proxy: Option<String>,
    /// The response status, if one came.
    pub status: Option<u16>,
    /// Body bytes received (at most `max_bytes`).
    pub bytes: u64,
    /// From the request to the response head.
    pub ttfb: Option<Duration>,
    /// From the request to the last body byte (to the failure when none came).
    pub duration: Duration,
    /// Why the transfer ended.
    pub stop: Stop,
    /// What went wrong, if anything.
    pub failure: Option<DownloadError>,
    /// Bytes per second in each full [`THROUGHPUT_WINDOW`] from the first body byte, in order.
    pub windows: Vec<u64>,
    /// Latency samples before the transfer.
    pub idle: Vec<LatencySample>,
    /// Latency samples started between the first and the last body byte.
    pub loaded: Vec<LatencySample>,
}

impl DownloadMeasurement {
    /// Body bytes per second from the request to the last byte; `None` when nothing came.
    pub fn throughput(&self) -> Option<u64> {
        let secs = self.duration.as_secs_f64();
        (self.bytes > 0 && secs > 0.0).then(|| (self.bytes as f64 / secs) as u64)
    }

    /// The 25th percentile (nearest rank, as the core's percentiles) of the window throughputs,
    /// bytes per second: SharePoint's score is the 25th-percentile download speed.
    pub fn p25_throughput(&self) -> Option<u64> {
        let mut w = self.windows.clone();
        w.sort_unstable();
        let rank = (25 * w.len()).div_ceil(100).max(1) - 1;
        w.get(rank).copied()
    }

    /// Min, median and p95 of the idle samples, µs (the core's summary).
    pub fn idle_latency(&self) -> Option<Rtt> {
        rtt_of(&self.idle)
    }

    /// Min, median and p95 of the loaded samples, µs (the core's summary).
    pub fn loaded_latency(&self) -> Option<Rtt> {
        rtt_of(&self.loaded)
    }

    /// Loaded minus idle median latency (zero if lower): the queue the transfer built up.
    pub fn buffer_bloat(&self) -> Option<Duration> {
        let idle = self.idle_latency()?.median_us();
        let loaded = self.loaded_latency()?.median_us();
        Some(Duration::from_micros(u64::from(
            loaded.saturating_sub(idle),
        )))
    }

    /// The report's entry for manifest target `target`; `None` when no body byte came (the HTTP check
    /// says why). A latency that was not measured is 0.
    pub fn summary(&self, target: u8) -> Option<DownloadSummary> {
        (self.bytes > 0).then(|| DownloadSummary {
            target,
            bytes: self.bytes,
            duration_us: clock::micros_u32(self.duration),
            idle_latency_us: self.idle_latency().map_or(0, |r| r.median_us()),
            loaded_latency_us: self.loaded_latency().map_or(0, |r| r.median_us()),
        })
    }
}

fn rtt_of(samples: &[LatencySample]) -> Option<Rtt> {
    let mut us: Vec<u32> = samples
        .iter()
        .filter_map(|s| s.rtt.map(clock::micros_u32))
        .collect();
    Rtt::from_samples(&mut us)
}

/// Downloads and samples latency as `options` say. Blocks for the idle samples plus about
/// `options.timeout` (run it with `tokio::task::spawn_blocking`).
pub fn run(options: &DownloadOptions) -> DownloadMeasurement {
    let epoch = Instant::now();
    let sampler = options
        .latency_target
        .and_then(|target| Sampler::start(target, options, epoch));
    let idle = sampler.as_ref().map(Sampler::idle).unwrap_or_default();
    let transfer = transfer(options);
    let samples = sampler.map(Sampler::stop).unwrap_or_default();
    let loaded = match (transfer.meter.first, transfer.meter.last) {
        (Some(first), Some(last)) => {
            let (from, to) = (first - epoch, last - epoch);
            samples
                .into_iter()
                .filter(|s| s.at >= from && s.at < to)
                .collect()
        }
        _ => Vec::new(),
    };
    let duration = transfer
        .meter
        .last
        .unwrap_or(transfer.ended)
        .saturating_duration_since(transfer.started);
    DownloadMeasurement {
        url: options.url.clone(),
        proxy: transfer.proxy,
        status: transfer.status,
        bytes: transfer.meter.bytes,
        ttfb: transfer.ttfb,
        duration,
        stop: transfer.stop,
        failure: transfer.failure,
        windows: transfer.meter.windows,
        idle,
        loaded,
    }
}

/// Connect samples taken with the core's TCP probe (one connect per run) through the agent's IO shell,
/// on a runtime of the sampling thread's own: exactly as the TCP latency probe measures.
struct Pinger {
    runtime: tokio::runtime::Runtime,
    target: SocketAddr,
    bind: SocketOptions,
    connect_timeout: Duration,
    epoch: Instant,
}

impl Pinger {
    fn sample(&self) -> LatencySample {
        let failed = LatencySample {
            at: self.epoch.elapsed(),
            rtt: None,
        };
        let config = TcpConfig {
            samples: 1,
            connect_timeout: clock::core_duration(self.connect_timeout),
            ..TcpConfig::new(self.target)
        };
        let Ok(probe) = TcpProbe::new(config, clock::now()) else {
            return failed;
        };
        // The probe's own timeout ends it; the limit is the driver's safety net.
        let limit = self.connect_timeout + Duration::from_secs(1);
        let drive = net::drive_within(probe, &self.bind, limit);
        match self
            .runtime
            .block_on(drive)
            .map(|r| r.samples.first().copied())
        {
            Ok(Some(sample)) => LatencySample {
                at: clock::to_std(sample.started).saturating_duration_since(self.epoch),
                rtt: sample.rtt().map(clock::std_duration),
            },
            _ => failed,
        }
    }
}

/// The sampling thread: the idle samples, then loaded ones every `latency_interval` until stopped.
struct Sampler {
    idle: mpsc::Receiver<Vec<LatencySample>>,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Vec<LatencySample>>,
}

impl Sampler {
    fn start(target: SocketAddr, options: &DownloadOptions, epoch: Instant) -> Option<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let (idle_tx, idle) = mpsc::channel();
        let interval = options.latency_interval;
        let idle_count = options.idle_samples.min(MAX_LATENCY_SAMPLES);
        let (bind, connect_timeout) = (options.bind.clone(), options.connect_timeout);
        let thread = std::thread::Builder::new()
            .name("download-latency".into())
            .spawn(move || {
                let Ok(runtime) = net::runtime() else {
                    return Vec::new();
                };
                let pinger = Pinger {
                    runtime,
                    target,
                    bind,
                    connect_timeout,
                    epoch,
                };
                let mut samples = Vec::new();
                for i in 0..idle_count {
                    let start = Instant::now();
                    samples.push(pinger.sample());
                    if i + 1 < idle_count {
                        std::thread::sleep(interval.saturating_sub(start.elapsed()));
                    }
                }
                let _ = idle_tx.send(std::mem::take(&mut samples));
                while samples.len() < MAX_LATENCY_SAMPLES {
                    let start = Instant::now();
                    samples.push(pinger.sample());
                    let wait = interval.saturating_sub(start.elapsed());
                    match stopped.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                samples
            })
            .ok()?;
        Some(Self { idle, stop, thread })
    }

    /// Waits for the idle samples.
    fn idle(&self) -> Vec<LatencySample> {
        self.idle.recv().unwrap_or_default()
    }

    fn stop(self) -> Vec<LatencySample> {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_default()
    }
}

/// Counts body bytes and their timing.
#[derive(Debug, Default)]
struct Meter {
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
    windows: Vec<u64>,
}

impl Meter {
    fn add(&mut self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        self.bytes += n as u64;
        self.last = Some(now);
        let Some(window_start) = self.window_start else {
            // The first read's bytes arrived some time before `now`: the windows start after them.
            self.first = Some(now);
            self.window_start = Some(now);
            return;
        };
        self.window_bytes += n as u64;
        let elapsed = now - window_start;
        if elapsed >= THROUGHPUT_WINDOW {
            if self.windows.len() < MAX_WINDOWS {
                self.windows
                    .push((self.window_bytes as f64 / elapsed.as_secs_f64()) as u64);
            }
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
    }
}

/// The transfer's part of a run.
struct Transfer {
    proxy: Option<String>,
    status: Option<u16>,
    ttfb: Option<Duration>,
    started: Instant,
    ended: Instant,
    meter: Meter,
    stop: Stop,
    failure: Option<DownloadError>,
}

fn transfer(options: &DownloadOptions) -> Transfer {
    let started = Instant::now();
    let deadline = Deadline::after(options.timeout);
    let mut t = Transfer {
        proxy: options.proxy.clone(),
        status: None,
        ttfb: None,
        started,
        ended: started,
        meter: Meter::default(),
        stop: Stop::Failed,
        failure: None,
    };
    let result = (|| -> Result<Stop, DownloadError> {
        let proxy = options
            .proxy
            .as_deref()
            .map(ProxyServer::parse)
            .transpose()?;
        t.proxy = proxy.as_ref().map(ProxyServer::address);
        let url = http::parse_http_url(&options.url)?;
        fetch(&url, proxy.as_ref(), options, deadline, &mut t)
    })();
    t.ended = Instant::now();
    match result {
        Ok(stop) => t.stop = stop,
        Err(e) => t.failure = Some(e),
    }
    t
}

/// The request and the body, by hand: minreq hands a body over a byte at a time, which caps what it
/// can measure (see the module docs).
fn fetch(
    url: &HttpUrl,
    proxy: Option<&ProxyServer>,
    options: &DownloadOptions,
    deadline: Deadline,
    t: &mut Transfer,
) -> Result<Stop, DownloadError> {
    let http::Answer {
        mut conn,
        head,
        early,
        peer,
    } = http::request_by_hand(url, proxy, "HTTP/1.0", &options.bind, &[], deadline)?;
    // The name lookup is the DNS probe's to measure, not the transfer's.
    t.started = head.asked;
    accept(&head, url, t)?;
    let coded = head.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && !v.trim().eq_ignore_ascii_case("identity")
    });
    if coded {
        return Err(Failure::Malformed {
            peer,
            reason: "a transfer-coded body in answer to an HTTP/1.0 request".into(),
        }
        .into());
    }
    let length = content_length(&head);
    let mut body = io::Cursor::new(early).chain(TimedConnection {
        conn: &mut conn,
        deadline,
    });
    read_body(
        &mut body,
        length,
        options.max_bytes,
        deadline,
        &peer,
        &mut t.meter,
    )
}

/// The status check: 2xx goes on to the body; anything else is judged by the core.
fn accept(head: &http::Head, url: &HttpUrl, t: &mut Transfer) -> Result<(), DownloadError> {
    t.status = Some(head.status);
    t.ttfb = Some(head.asked.elapsed());
    if (200..300).contains(&head.status) {
        return Ok(());
    }
    Err(DownloadError::Status {
        status: head.status,
        judgement: judge_response(
            &url.host,
            head.status,
            head.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        ),
    })
}

fn content_length(head: &http::Head) -> Option<u64> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
}

/// A connection whose reads give up at the deadline.
struct TimedConnection<'a> {
    conn: &'a mut Connection,
    deadline: Deadline,
}

impl Read for TimedConnection<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self
            .deadline
            .left()
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
        // As Connection::set_deadline does, without its error type (and only the read side).
        self.conn.tcp().set_read_timeout(Some(left))?;
        self.conn.read(buf)
    }
}

/// Reads the body up to `length` (its Content-Length), `max_bytes` or the deadline.
fn read_body(
    body: &mut dyn Read,
    length: Option<u64>,
    max_bytes: u64,
    deadline: Deadline,
    peer: &str,
    meter: &mut Meter,
) -> Result<Stop, DownloadError> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let want = max_bytes.min(length.unwrap_or(u64::MAX));
        if meter.bytes >= want {
            return Ok(if length.is_some_and(|l| meter.bytes >= l) {
                Stop::Complete
            } else {
                Stop::MaxBytes
            });
        }
        if deadline.left().is_err() {
            return Ok(Stop::Timeout);
        }
        let room = usize::try_from(want - meter.bytes)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let cut_off = || -> DownloadError {
            Failure::Closed {
                peer: peer.to_owned(),
            }
            .into()
        };
        match body.read(buf.get_mut(..room).unwrap_or_default()) {
            Ok(0) if length.is_some() => return Err(cut_off()),
            Ok(0) => return Ok(Stop::Complete),
            Ok(n) => meter.add(n, Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                return Ok(Stop::Timeout)
            }
            // rustls: the server closed without close_notify. Without a Content-Length that is how
            // an HTTP/1.0 body ends; with one, the body was cut off.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && length.is_none() => {
                return Ok(Stop::Complete)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(cut_off()),
            Err(e) => return Err(http::io_failure(e, peer, deadline).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(windows: Vec<u64>, idle: &[u64], loaded: &[u64]) -> DownloadMeasurement {
        let samples = |ms: &[u64]| {
            ms.iter()
                .map(|&ms| LatencySample {
                    at: Duration::ZERO,
                    rtt: Some(Duration::from_millis(ms)),
                })
                .collect()
        };
        DownloadMeasurement {
            url: "http://192.0.2.80/10MB.bin".into(),
            proxy: None,
            status: Some(200),
            bytes: 10_000_000,
            ttfb: Some(Duration::from_millis(5)),
            duration: Duration::from_secs(2),
            stop: Stop::Complete,
            failure: None,
            windows,
            idle: samples(idle),
            loaded: samples(loaded),
        }
    }

    #[test]
    fn figures_are_nearest_rank_like_the_cores() {
        // Eight windows: the 25th percentile is the 2nd smallest.
        let m = measurement(
            vec![
                6_000_000, 1_000_000, 5_000_000, 6_100_000, 2_000_000, 6_200_000, 6_300_000,
                6_400_000,
            ],
            &[4, 5, 6, 5, 4],
            &[25, 24, 26, 30, 5],
        );
        assert_eq!(m.throughput(), Some(5_000_000));
        assert_eq!(m.p25_throughput(), Some(2_000_000));
        assert_eq!(m.idle_latency().unwrap().median_us(), 5_000);
        assert_eq!(m.loaded_latency().unwrap().median_us(), 25_000);
        assert_eq!(m.buffer_bloat(), Some(Duration::from_millis(20)));
        let s = m.summary(3).unwrap();
        assert_eq!(
            (
                s.target,
                s.bytes,
                s.duration_us,
                s.idle_latency_us,
                s.loaded_latency_us
            ),
            (3, 10_000_000, 2_000_000, 5_000, 25_000)
        );
    }

    #[test]
    fn nothing_measured_gives_no_figures() {
        let mut m = measurement(Vec::new(), &[], &[]);
        m.bytes = 0;
        assert_eq!(m.throughput(), None);
        assert_eq!(m.p25_throughput(), None);
        assert_eq!(m.buffer_bloat(), None);
        assert_eq!(m.summary(0), None);
    }
}
