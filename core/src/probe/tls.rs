//! TLS front-door check: open a connection, send our TLS 1.2 ClientHello, read the server's first flight
//! up to ServerHelloDone, judge its certificate chain against the expected Microsoft roots, and close.
//!
//! We never finish a handshake (no key exchange, no application data): ServerHelloDone is the last thing
//! a TLS 1.2 server sends before it waits for us, so the handshake time reported here is ClientHello sent
//! to ServerHelloDone received, one round trip plus the server's work (and, on a long chain, the extra
//! TCP round trips its congestion window needs). The chain is judged by
//! [`crate::assess::interception`] the moment the Certificate message is complete, because the reader
//! lends it out only until the next message.
//!
//! A server that will only speak TLS 1.3 refuses our hello with a `protocol_version` alert (or, against
//! the RFC, answers with a TLS 1.3 ServerHello): that is [`TlsFailure::Tls12Refused`], told apart from
//! every other failure because it says nothing about the path, only that the certificate stays hidden.

use super::{ConnId, ConnectFailure, Event, Probe, Transmit, MAX_TRANSMIT};
use crate::assess::interception::{assess_chain, truncated, ChainAssessment, ExpectedIssuers};
use crate::assess::{Anchor, Verdict};
use crate::rand::SplitMix64;
use crate::report::{TlsSummary, TlsVerdict, MAX_ISSUER_CN_LEN};
use crate::time::{micros_u32, Duration, Instant};
use crate::wire::tls::{
    self, AlertDescription, ClientHelloRepr, HandshakeReader, ServerHello, AGENT_READER_BUFFER_LEN,
    FIRMWARE_READER_BUFFER_LEN, MAX_CLIENT_HELLO_LEN, MAX_SESSION_ID_LEN, RANDOM_LEN,
};
use core::fmt;
use core::net::SocketAddr;

/// How long the TCP connect may take unless configured: the TCP probe's default.
pub use super::tcp::DEFAULT_CONNECT_TIMEOUT;
/// How long from ClientHello to ServerHelloDone unless configured: a far front door answers in well under
/// a second; an inspecting proxy that fetches the real certificate first may take a few.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The probe's only connection.
const CONN: ConnId = 0;

// Any ClientHello this module writes fits the buffer the shell lends to `poll_transmit`.
const _: () = assert!(MAX_CLIENT_HELLO_LEN <= MAX_TRANSMIT);

/// What to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsConfig<'a> {
    /// The front door and port.
    pub target: SocketAddr,
    /// The host name sent as SNI, which the leaf must cover; `None` sends no SNI (probing by address).
    pub server_name: Option<&'a str>,
    /// The roots and issuers a genuine chain leads to.
    pub expected: ExpectedIssuers<'a>,
    /// How long the TCP connect may take.
    pub connect_timeout: Duration,
    /// How long from ClientHello sent to ServerHelloDone.
    pub handshake_timeout: Duration,
    /// The shell's wall-clock time in Unix seconds, for the leaf's validity; `None`: not judged.
    pub wall_clock: Option<i64>,
    /// Seeds the ClientHello's random and session id.
    pub seed: u64,
}

impl<'a> TlsConfig<'a> {
    /// The defaults for `server_name` at `target`: the bundled Microsoft roots, 3 s to connect, 5 s to
    /// ServerHelloDone, no wall clock, seed 0.
    pub fn new(target: SocketAddr, server_name: &'a str) -> Self {
        Self {
            target,
            server_name: Some(server_name),
            expected: ExpectedIssuers::microsoft(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            wall_clock: None,
            seed: 0,
        }
    }

    /// The longest a check can take, from start to result.
    pub fn max_duration(&self) -> Duration {
        self.connect_timeout + self.handshake_timeout
    }

    /// Judges the chain the server sent (DER certificates, leaf first) as this check is configured.
    fn assess<'c>(&self, ders: impl IntoIterator<Item = &'c [u8]>) -> ChainAssessment {
        assess_chain(ders, &self.expected, self.server_name, self.wall_clock)
    }
}

/// Why a [`TlsConfig`] cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsConfigError {
    /// The server name is not a DNS host name SNI can carry (no trailing dot, ASCII letters, digits,
    /// `-` and `_`).
    ServerName,
    /// A timeout is zero.
    Timeout,
}

#[cfg(feature = "std")]
impl std::error::Error for TlsConfigError {}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerName => f.write_str("TLS server name is not a DNS host name"),
            Self::Timeout => f.write_str("TLS timeouts must be more than zero"),
        }
    }
}

/// Why a check ended before ServerHelloDone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The TCP connection could not be opened ([`ConnectFailure::TimedOut`] also when the probe's own
    /// connect timeout fired).
    Connect(ConnectFailure),
    /// The server refused TLS 1.2: a TLS 1.3-only server (`protocol_version` alert, or a TLS 1.3
    /// ServerHello). Its certificate is encrypted, so the path cannot be judged this way.
    Tls12Refused,
    /// Any other fatal alert (e.g. `handshake_failure`: no cipher suite in common).
    Alert(AlertDescription),
    /// The answer is not a TLS 1.2 server flight (e.g. an HTTP answer from a proxy), or does not fit
    /// the reader's buffer.
    Protocol(tls::Error),
    /// No ServerHelloDone within the handshake timeout.
    TimedOut,
    /// The server closed the connection first.
    Closed,
}

#[cfg(feature = "std")]
impl std::error::Error for TlsFailure {}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(ConnectFailure::Refused) => f.write_str("connection refused"),
            Self::Connect(ConnectFailure::Unreachable) => f.write_str("unreachable"),
            Self::Connect(ConnectFailure::TimedOut) => f.write_str("connect timed out"),
            Self::Connect(ConnectFailure::Other) => f.write_str("connect failed"),
            Self::Tls12Refused => f.write_str("server refused TLS 1.2 (TLS 1.3 only)"),
            Self::Alert(d) => write!(f, "server sent alert {d:?}"),
            Self::Protocol(e) => write!(f, "not a TLS 1.2 server flight: {e}"),
            Self::TimedOut => f.write_str("no ServerHelloDone within the timeout"),
            Self::Closed => f.write_str("server closed the connection"),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsResult {
    /// The front door and port.
    pub target: SocketAddr,
    /// When the connect was asked for.
    pub started: Instant,
    /// TCP connect time, if it connected.
    pub connect: Option<Duration>,
    /// ClientHello sent to ServerHelloDone, or to the failure; `None` if no ClientHello was sent.
    pub handshake: Option<Duration>,
    /// What the server chose, if its ServerHello came.
    pub server_hello: Option<ServerHello>,
    /// The chain's verdict and leaf, if a Certificate message (or a ServerHelloDone without one) came.
    pub chain: Option<ChainAssessment>,
    /// Why the check ended early; `None` when ServerHelloDone came.
    pub failure: Option<TlsFailure>,
}

impl TlsResult {
    /// The report's verdict: the chain's when one was seen (even if the handshake then failed: a
    /// re-issued certificate is the finding), else `Failed`.
    pub fn verdict(&self) -> TlsVerdict {
        match self.chain.as_ref().map(|c| &c.verdict) {
            Some(Verdict::Genuine(_)) => TlsVerdict::Genuine,
            Some(Verdict::Intercepted { .. }) => TlsVerdict::Intercepted,
            Some(Verdict::Unknown(_)) => TlsVerdict::Unknown,
            None => TlsVerdict::Failed,
        }
    }

    /// The report's entry for manifest target `target`.
    pub fn summary(&self, target: u8) -> TlsSummary {
        let leaf = self.chain.as_ref().and_then(|c| c.leaf.as_ref());
        let issuer = leaf.and_then(|l| l.issuer.common_name.as_deref());
        TlsSummary {
            target,
            handshake_us: self.handshake.map_or(0, micros_u32),
            verdict: self.verdict(),
            issuer_cn: truncated::<MAX_ISSUER_CN_LEN>(issuer.unwrap_or("")),
            // A notAfter before 1970 is simply long expired.
            not_after: leaf.map(|l| u64::try_from(l.not_after).unwrap_or(0)),
        }
    }

    /// Whether the chain was tied to the expected roots only by an issuer name (see
    /// [`crate::assess::interception`] for what that cannot rule out).
    pub fn anchored_by_name_only(&self) -> bool {
        matches!(
            self.chain.as_ref().map(|c| &c.verdict),
            Some(Verdict::Genuine(Anchor::Name))
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The Connect is to be polled.
    Connect,
    /// Waiting for the connection since the Connect was polled.
    Connecting { since: Instant },
    /// Connected at `at`; the ClientHello is to be polled.
    SendHello { at: Instant },
    /// ClientHello sent at `since`; reading the flight.
    Flight { since: Instant },
    /// Decided at `at`; the Close is to be polled.
    Closing { at: Instant },
    /// Decided; the result is ready (or taken).
    Finished,
}

/// The TLS probe with a handshake reader of `N` bytes ([`AgentTlsProbe`], [`FirmwareTlsProbe`]).
#[derive(Debug, Clone)]
pub struct TlsProbe<'a, const N: usize> {
    config: TlsConfig<'a>,
    random: [u8; RANDOM_LEN],
    session_id: [u8; MAX_SESSION_ID_LEN],
    reader: HandshakeReader<N>,
    phase: Phase,
    started: Instant,
    connect: Option<Duration>,
    handshake: Option<Duration>,
    server_hello: Option<ServerHello>,
    chain: Option<ChainAssessment>,
    failure: Option<TlsFailure>,
    taken: bool,
}

/// The Linux agent's probe: 16 KiB for the Certificate message.
pub type AgentTlsProbe<'a> = TlsProbe<'a, AGENT_READER_BUFFER_LEN>;
/// The firmware's probe: 8 KiB for the Certificate message.
pub type FirmwareTlsProbe<'a> = TlsProbe<'a, FIRMWARE_READER_BUFFER_LEN>;

impl<'a, const N: usize> TlsProbe<'a, N> {
    /// A check that asks for its connection at `now` (the next `poll_transmit`).
    pub fn new(config: TlsConfig<'a>, now: Instant) -> Result<Self, TlsConfigError> {
        let zero = Duration::from_ticks(0);
        if config.connect_timeout == zero || config.handshake_timeout == zero {
            return Err(TlsConfigError::Timeout);
        }
        let mut rng = SplitMix64::new(config.seed);
        let mut random = [0; RANDOM_LEN];
        rng.fill_bytes(&mut random);
        // A 32-byte session id, as browsers send, so the hello looks like any client's.
        let mut session_id = [0; MAX_SESSION_ID_LEN];
        rng.fill_bytes(&mut session_id);
        let probe = Self {
            config,
            random,
            session_id,
            reader: HandshakeReader::new(),
            phase: Phase::Connect,
            started: now,
            connect: None,
            handshake: None,
            server_hello: None,
            chain: None,
            failure: None,
            taken: false,
        };
        // Only the server name can make the hello unwritable: find out now, not mid-check.
        let mut scratch = [0; MAX_CLIENT_HELLO_LEN];
        probe
            .hello()
            .emit(&mut scratch)
            .map_err(|_| TlsConfigError::ServerName)?;
        Ok(probe)
    }

    fn hello(&self) -> ClientHelloRepr<'_> {
        ClientHelloRepr {
            random: self.random,
            session_id: &self.session_id,
            server_name: self.config.server_name,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { since } => Some(since.saturating_add(self.config.connect_timeout)),
            Phase::Flight { since } => Some(since.saturating_add(self.config.handshake_timeout)),
            _ => None,
        }
    }

    /// Ends the check at `at`: the handshake time runs to here if the ClientHello went out; `close`
    /// when the connection (or the shell's attempt) is still open.
    fn finish(&mut self, at: Instant, failure: Option<TlsFailure>, close: bool) {
        if let Phase::Flight { since } = self.phase {
            self.handshake = Some(at.saturating_duration_since(since));
        }
        self.failure = failure;
        self.phase = if close {
            Phase::Closing { at }
        } else {
            Phase::Finished
        };
    }

    /// Fires the connect or handshake timeout if its deadline is before `now` (`strict`) or not after it.
    fn expire(&mut self, now: Instant, strict: bool) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if deadline < now || (!strict && deadline == now) {
            let failure = match self.phase {
                Phase::Connecting { .. } => TlsFailure::Connect(ConnectFailure::TimedOut),
                _ => TlsFailure::TimedOut,
            };
            self.finish(deadline, Some(failure), true);
        }
    }

    fn on_received(&mut self, now: Instant, mut data: &[u8]) {
        if !matches!(self.phase, Phase::Flight { .. }) {
            return;
        }
        let mut end = None;
        while end.is_none() {
            let taken = self.reader.push(data);
            data = data.get(taken..).unwrap_or_default();
            let mut events = 0;
            while let Some(event) = self.reader.next_event() {
                events += 1;
                match event {
                    Ok(tls::Event::ServerHello(hello)) => self.server_hello = Some(hello),
                    Ok(tls::Event::Tls13ServerHello(hello)) => {
                        self.server_hello = Some(hello);
                        end = Some(Some(TlsFailure::Tls12Refused));
                    }
                    Ok(tls::Event::Certificate(chain)) if self.chain.is_none() => {
                        self.chain = Some(self.config.assess(chain.iter()));
                    }
                    Ok(tls::Event::ServerHelloDone) => end = Some(None),
                    Ok(tls::Event::Alert(alert)) if alert.is_terminal() => {
                        end = Some(Some(match alert.description {
                            AlertDescription::ProtocolVersion => TlsFailure::Tls12Refused,
                            other => TlsFailure::Alert(other),
                        }));
                    }
                    // A second Certificate, ServerKeyExchange, CertificateRequest, a warning alert.
                    Ok(_) => {}
                    Err(e) => end = Some(Some(TlsFailure::Protocol(e))),
                }
                if end.is_some() {
                    break;
                }
            }
            // Everything taken, or (only when finished, which `end` covers) nothing more to take.
            if data.is_empty() || (taken == 0 && events == 0) {
                break;
            }
        }
        if let Some(failure) = end {
            if failure.is_none() && self.chain.is_none() {
                // ServerHelloDone without a certificate: a handshake with nothing to judge.
                self.chain = Some(self.config.assess([]));
            }
            self.finish(now, failure, true);
        }
    }
}

impl<const N: usize> Probe for TlsProbe<'_, N> {
    type Output = TlsResult;

    fn handle(&mut self, now: Instant, event: Event<'_>) {
        // An answer after the deadline is too late, even if the shell was late to say the time had come.
        self.expire(now, true);
        match (self.phase, event) {
            (Phase::Connecting { since }, Event::Connected { conn: CONN }) => {
                self.connect = Some(now.saturating_duration_since(since));
                self.phase = Phase::SendHello { at: now };
            }
            (Phase::Connecting { .. }, Event::ConnectFailed { conn: CONN, cause }) => {
                self.finish(now, Some(TlsFailure::Connect(cause)), false);
            }
            (Phase::Flight { .. }, Event::Received { conn: CONN, data }) => {
                self.on_received(now, data)
            }
            (
                Phase::Connecting { .. } | Phase::SendHello { .. } | Phase::Flight { .. },
                Event::Closed { conn: CONN },
            ) => self.finish(now, Some(TlsFailure::Closed), true),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire(now, false);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        match self.phase {
            Phase::Connect => {
                self.phase = Phase::Connecting { since: now };
                Some(Transmit::Connect {
                    conn: CONN,
                    to: self.config.target,
                })
            }
            Phase::SendHello { .. } => match self.hello().emit(buf) {
                Ok(len) => {
                    self.phase = Phase::Flight { since: now };
                    Some(Transmit::Stream { conn: CONN, len })
                }
                // Only a buffer shorter than MAX_TRANSMIT gets here: a shell bug, reported, not hidden.
                Err(e) => {
                    self.finish(now, Some(TlsFailure::Protocol(e)), false);
                    Some(Transmit::Close { conn: CONN })
                }
            },
            Phase::Closing { .. } => {
                self.phase = Phase::Finished;
                Some(Transmit::Close { conn: CONN })
            }
            Phase::Connecting { .. } | Phase::Flight { .. } | Phase::Finished => None,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            // Something is to be polled now.
            Phase::Connect => Some(self.started),
            Phase::SendHello { at } | Phase::Closing { at } => Some(at),
            Phase::Connecting { .. } | Phase::Flight { .. } => self.deadline(),
            Phase::Finished => None,
        }
    }

    fn poll_result(&mut self) -> Option<TlsResult> {
        if self.phase != Phase::Finished || self.taken {
            return None;
        }
        self.taken = true;
        Some(TlsResult {
            target: self.config.target,
            started: self.started,
            connect: self.connect,
            handshake: self.handshake,
            server_hello: self.server_hello,
            chain: self.chain.take(),
            failure: self.failure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::interception::{Interception, TrustedRoots, Validity};
    use crate::probe::sim::{Fate, Net, Path, TcpServer};
    use crate::wire::tls::MIN_READER_BUFFER_LEN;
    use crate::wire::x509::tests::{expected as openssl_says, pem_to_der};
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    const T0: Instant = Instant::from_secs(1_000);
    const HOST: &str = "outlook.office365.com";

    fn front_door() -> SocketAddr {
        "203.0.113.5:443".parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn lab_root() -> &'static [u8] {
        let pem = std::string::String::from_utf8(fixture("genuine-root.pem")).unwrap();
        Vec::leak(pem_to_der(&pem))
    }

    /// A server that answers the first bytes it gets with `flight` and keeps what it got.
    fn server(flight: Vec<u8>) -> (TcpServer, Rc<RefCell<Vec<Vec<u8>>>>) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        let server = TcpServer::Accept(Box::new(move |got: &[u8]| {
            log.borrow_mut().push(got.to_vec());
            flight.clone()
        }));
        (server, seen)
    }

    /// Connect takes `connect_ms` (up 7 ms + the rest down), the hello's round trip `handshake_ms`.
    fn net(connect_ms: u64, handshake_ms: u64, server: TcpServer) -> Net {
        let up = Path::script(std::vec![Fate::Deliver(ms(7)), Fate::Deliver(ms(7))]);
        let down = Path::script(std::vec![
            Fate::Deliver(ms(connect_ms - 7)),
            Fate::Deliver(ms(handshake_ms - 7)),
        ]);
        Net::new(up, down, 1).tcp(front_door(), server)
    }

    fn run<const N: usize>(net: &mut Net, config: TlsConfig<'_>) -> (TlsResult, Instant) {
        let mut probe = TlsProbe::<N>::new(config, T0).unwrap();
        let out = net.run(&mut probe, T0);
        assert_eq!(probe.poll_timeout(), None);
        assert!(probe.poll_result().is_none(), "the result comes once");
        out
    }

    fn issuer(result: &TlsResult) -> Option<&str> {
        match &result.chain.as_ref()?.verdict {
            Verdict::Intercepted { issuer, .. } => issuer.common_name.as_deref(),
            _ => None,
        }
    }

    #[test]
    fn the_genuine_flight_is_genuine_with_exact_times() {
        let leaf = openssl_says("genuine-leaf");
        let own = TrustedRoots::<2>::from_ders([lab_root()]).unwrap();
        let config = TlsConfig {
            expected: ExpectedIssuers {
                roots: own.as_slice(),
                intermediates: &[],
            },
            wall_clock: Some(leaf.not_before + 86_400),
            seed: 7,
            ..TlsConfig::new(front_door(), HOST)
        };
        let (srv, seen) = server(fixture("s_server-genuine.bin"));
        let mut n = net(20, 13, srv);
        let (result, at) = run::<AGENT_READER_BUFFER_LEN>(&mut n, config);

        assert_eq!(result.failure, None);
        assert_eq!(result.connect, Some(ms(20)));
        assert_eq!(result.handshake, Some(ms(13)));
        assert_eq!(at, T0 + ms(33));
        assert_eq!(
            n.closes(),
            [(T0 + ms(33), CONN)],
            "closed after ServerHelloDone"
        );
        let chain = result.chain.as_ref().unwrap();
        assert_eq!(chain.verdict, Verdict::Genuine(Anchor::Name));
        assert_eq!(chain.length, 2);
        assert_eq!(chain.covers_host, Some(true));
        assert_eq!(
            chain.validity,
            Some(Validity::Valid {
                expires_in_s: (leaf.not_after - leaf.not_before - 86_400) as u64
            })
        );
        assert!(result.anchored_by_name_only());
        assert!(result.server_hello.is_some());

        // What the server got: one ClientHello naming the host, its random from the seed.
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1);
        let hello = ClientHelloRepr::parse(&seen[0]).unwrap();
        assert_eq!(hello.server_name, Some(HOST));
        let mut random = [0; RANDOM_LEN];
        SplitMix64::new(7).fill_bytes(&mut random);
        assert_eq!(hello.random, random);

        let summary = result.summary(4);
        assert_eq!(summary.target, 4);
        assert_eq!(summary.handshake_us, 13_000);
        assert_eq!(summary.verdict, TlsVerdict::Genuine);
        assert_eq!(
            summary.issuer_cn.as_str(),
            "Microsoft Azure RSA TLS Issuing CA 03"
        );
        assert_eq!(summary.not_after, Some(leaf.not_after as u64));
    }

    #[test]
    fn the_bundled_microsoft_roots_recognise_the_lab_chain_by_its_root_name() {
        let (srv, _) = server(fixture("nginx-genuine.bin"));
        let (result, _) = run::<AGENT_READER_BUFFER_LEN>(
            &mut net(20, 13, srv),
            TlsConfig::new(front_door(), HOST),
        );
        assert_eq!(result.verdict(), TlsVerdict::Genuine);
    }

    #[test]
    fn the_inspection_flight_is_intercepted_by_the_web_filter() {
        let (srv, _) = server(fixture("s_server-inspection.bin"));
        let (result, _) = run::<AGENT_READER_BUFFER_LEN>(
            &mut net(20, 13, srv),
            TlsConfig::new(front_door(), HOST),
        );
        assert_eq!(result.failure, None);
        assert_eq!(issuer(&result), Some("Contoso Web Filter CA"));
        assert!(matches!(
            result.chain.as_ref().unwrap().verdict,
            Verdict::Intercepted {
                reason: Interception::UnexpectedIssuer,
                ..
            }
        ));
        // The middlebox's leaf covers the host: only the issuer gives it away.
        assert_eq!(result.chain.as_ref().unwrap().covers_host, Some(true));
        let summary = result.summary(0);
        assert_eq!(summary.verdict, TlsVerdict::Intercepted);
        assert_eq!(summary.issuer_cn.as_str(), "Contoso Web Filter CA");
    }

    #[test]
    fn one_byte_chunks_give_the_same_result_later_by_the_chunk_spacing() {
        for name in ["s_server-genuine.bin", "s_server-inspection.bin"] {
            let flight = fixture(name);
            let whole = {
                let (srv, _) = server(flight.clone());
                run::<AGENT_READER_BUFFER_LEN>(
                    &mut net(20, 13, srv),
                    TlsConfig::new(front_door(), HOST),
                )
                .0
            };
            let (srv, _) = server(flight.clone());
            let mut bytewise = net(20, 13, srv);
            bytewise.chunk = 1;
            let one = run::<FIRMWARE_READER_BUFFER_LEN>(
                &mut bytewise,
                TlsConfig::new(front_door(), HOST),
            )
            .0;
            // The simulated network spaces chunks 1 µs apart; ServerHelloDone ends the flight.
            let spread = Duration::from_micros(flight.len() as u64 - 1);
            assert_eq!(one.handshake, Some(ms(13) + spread), "{name}");
            assert_eq!(
                TlsResult {
                    handshake: whole.handshake,
                    ..one
                },
                whole,
                "{name}"
            );
        }
    }

    #[test]
    fn a_tls13_only_server_is_reported_as_refusing_tls12() {
        for name in ["s_server-tls13-only.bin", "s_server-tls13-flight.bin"] {
            let (srv, _) = server(fixture(name));
            let mut n = net(20, 13, srv);
            let (result, at) =
                run::<AGENT_READER_BUFFER_LEN>(&mut n, TlsConfig::new(front_door(), HOST));
            assert_eq!(result.failure, Some(TlsFailure::Tls12Refused), "{name}");
            assert_eq!(result.handshake, Some(ms(13)));
            assert_eq!(result.chain, None);
            assert_eq!(result.verdict(), TlsVerdict::Failed);
            assert_eq!(n.closes(), [(at, CONN)]);
        }
        let (srv, _) = server(fixture("s_server-no-common-cipher.bin"));
        let (result, _) = run::<AGENT_READER_BUFFER_LEN>(
            &mut net(20, 13, srv),
            TlsConfig::new(front_door(), HOST),
        );
        assert_eq!(
            result.failure,
            Some(TlsFailure::Alert(AlertDescription::HandshakeFailure))
        );
        assert_eq!(
            TlsFailure::Tls12Refused.to_string(),
            "server refused TLS 1.2 (TLS 1.3 only)"
        );
    }

    #[test]
    fn a_silent_server_times_out_at_the_configured_instant() {
        let config = TlsConfig {
            handshake_timeout: ms(2_000),
            ..TlsConfig::new(front_door(), HOST)
        };
        let (srv, seen) = server(Vec::new());
        let mut n = net(20, 13, srv);
        let (result, at) = run::<AGENT_READER_BUFFER_LEN>(&mut n, config);
        assert_eq!(seen.borrow().len(), 1, "the hello went out");
        assert_eq!(result.failure, Some(TlsFailure::TimedOut));
        assert_eq!(result.handshake, Some(ms(2_000)));
        assert_eq!(at, T0 + ms(20) + ms(2_000));
        assert_eq!(n.closes(), [(at, CONN)]);
        let summary = result.summary(1);
        assert_eq!(
            (summary.verdict, summary.handshake_us),
            (TlsVerdict::Failed, 2_000_000)
        );
        assert_eq!((summary.issuer_cn.as_str(), summary.not_after), ("", None));
    }

    #[test]
    fn connect_failures_end_the_check_before_any_hello() {
        let config = TlsConfig {
            connect_timeout: ms(1_500),
            ..TlsConfig::new(front_door(), HOST)
        };
        let mut n = Net::fixed(ms(10)).tcp(front_door(), TcpServer::Blackhole);
        let (result, at) = run::<AGENT_READER_BUFFER_LEN>(&mut n, config);
        assert_eq!(
            result.failure,
            Some(TlsFailure::Connect(ConnectFailure::TimedOut))
        );
        assert_eq!(at, T0 + ms(1_500));
        assert_eq!(n.closes(), [(at, CONN)], "the shell's attempt is aborted");
        assert_eq!((result.connect, result.handshake), (None, None));

        let mut n = Net::fixed(ms(10)).tcp(front_door(), TcpServer::Refuse);
        let (result, at) = run::<AGENT_READER_BUFFER_LEN>(&mut n, config);
        assert_eq!(
            result.failure,
            Some(TlsFailure::Connect(ConnectFailure::Refused))
        );
        assert_eq!(at, T0 + ms(20));
        assert!(n.closes().is_empty(), "nothing open to close");
        assert_eq!(result.summary(0).verdict, TlsVerdict::Failed);
    }

    #[test]
    fn what_is_not_a_tls_flight_is_named() {
        let (srv, _) = server(b"HTTP/1.1 403 Forbidden\r\nServer: squid\r\n\r\n".to_vec());
        let (result, _) = run::<AGENT_READER_BUFFER_LEN>(
            &mut net(20, 13, srv),
            TlsConfig::new(front_door(), HOST),
        );
        assert_eq!(
            result.failure,
            Some(TlsFailure::Protocol(tls::Error::UnexpectedContentType(
                b'H'
            )))
        );
        // A reader too small for the Certificate message says so rather than guessing.
        let (srv, _) = server(fixture("s_server-genuine.bin"));
        let (result, _) =
            run::<MIN_READER_BUFFER_LEN>(&mut net(20, 13, srv), TlsConfig::new(front_door(), HOST));
        assert_eq!(
            result.failure,
            Some(TlsFailure::Protocol(tls::Error::MessageTooLarge))
        );
        assert_eq!(result.verdict(), TlsVerdict::Failed);
    }

    #[test]
    fn a_server_that_closes_first_is_reported_and_closed() {
        let mut probe = AgentTlsProbe::new(TlsConfig::new(front_door(), HOST), T0).unwrap();
        let mut buf = [0u8; MAX_TRANSMIT];
        assert!(matches!(
            probe.poll_transmit(T0, &mut buf),
            Some(Transmit::Connect { conn: 0, .. })
        ));
        probe.handle(T0 + ms(5), Event::Connected { conn: 0 });
        assert!(matches!(
            probe.poll_transmit(T0 + ms(5), &mut buf),
            Some(Transmit::Stream { conn: 0, .. })
        ));
        // Half the genuine flight, then the peer closes.
        let flight = fixture("s_server-genuine.bin");
        probe.handle(
            T0 + ms(9),
            Event::Received {
                conn: 0,
                data: &flight[..1000],
            },
        );
        probe.handle(
            T0 + ms(10),
            Event::Received {
                conn: 9,
                data: &flight[1000..],
            },
        );
        probe.handle(T0 + ms(11), Event::Closed { conn: 0 });
        assert_eq!(probe.poll_result(), None, "the close is not out yet");
        assert_eq!(
            probe.poll_transmit(T0 + ms(11), &mut buf),
            Some(Transmit::Close { conn: 0 })
        );
        assert_eq!(probe.poll_transmit(T0 + ms(11), &mut buf), None);
        let result = probe.poll_result().unwrap();
        assert_eq!(result.failure, Some(TlsFailure::Closed));
        assert_eq!(result.handshake, Some(ms(6)));
        assert!(result.server_hello.is_some());
    }

    #[test]
    fn configurations_that_cannot_run_are_refused() {
        let base = TlsConfig::new(front_door(), HOST);
        for (config, err) in [
            (
                TlsConfig {
                    server_name: Some("outlook.office365.com."),
                    ..base
                },
                TlsConfigError::ServerName,
            ),
            (
                TlsConfig {
                    server_name: Some("bad name"),
                    ..base
                },
                TlsConfigError::ServerName,
            ),
            (
                TlsConfig {
                    connect_timeout: ms(0),
                    ..base
                },
                TlsConfigError::Timeout,
            ),
            (
                TlsConfig {
                    handshake_timeout: ms(0),
                    ..base
                },
                TlsConfigError::Timeout,
            ),
        ] {
            assert_eq!(AgentTlsProbe::new(config, T0).err(), Some(err));
        }
        let by_address = TlsConfig {
            server_name: None,
            ..base
        };
        assert!(FirmwareTlsProbe::new(by_address, T0).is_ok());
    }

    #[test]
    fn the_seed_decides_the_hello() {
        let hello_for = |seed| {
            let (srv, seen) = server(fixture("s_server-genuine.bin"));
            let config = TlsConfig {
                seed,
                ..TlsConfig::new(front_door(), HOST)
            };
            run::<AGENT_READER_BUFFER_LEN>(&mut net(20, 13, srv), config);
            let hello = seen.borrow()[0].clone();
            hello
        };
        assert_eq!(hello_for(3), hello_for(3));
        assert_ne!(hello_for(3), hello_for(4));
    }

    proptest! {
        #[test]
        fn arbitrary_failures_and_delays_finish_within_the_bound(
            kind in 0usize..6,
            up in proptest::collection::vec(proptest::option::of(0u64..4_000), 1..4),
            down in proptest::collection::vec(proptest::option::of(0u64..4_000), 1..4),
            chunk in 1usize..3_000,
            connect_ms in 1u64..3_000,
            handshake_ms in 1u64..3_000,
        ) {
            let fates = |v: Vec<Option<u64>>| {
                Path::script(v.into_iter().map(|f| f.map_or(Fate::Drop, |d| Fate::Deliver(ms(d)))).collect())
            };
            let flights = ["s_server-genuine.bin", "s_server-inspection.bin", "s_server-tls13-only.bin"];
            let srv = match kind {
                0..=2 => server(fixture(flights[kind])).0,
                3 => server(Vec::new()).0,
                4 => TcpServer::Refuse,
                _ => TcpServer::Blackhole,
            };
            let mut n = Net::new(fates(up), fates(down), 9).tcp(front_door(), srv);
            n.chunk = chunk;
            let config = TlsConfig {
                connect_timeout: ms(connect_ms),
                handshake_timeout: ms(handshake_ms),
                ..TlsConfig::new(front_door(), HOST)
            };
            let (result, at) = run::<FIRMWARE_READER_BUFFER_LEN>(&mut n, config);
            prop_assert!(at <= T0 + config.max_duration());
            prop_assert!(n.closes().len() <= 1);
            if result.failure.is_none() {
                let want = if kind == 0 { TlsVerdict::Genuine } else { TlsVerdict::Intercepted };
                prop_assert_eq!(result.verdict(), want);
                prop_assert!(result.handshake.unwrap() <= config.handshake_timeout);
            }
            if kind == 2 {
                prop_assert!(matches!(
                    result.failure,
                    Some(TlsFailure::Tls12Refused | TlsFailure::TimedOut | TlsFailure::Connect(_))
                ));
            }
        }
    }
}
