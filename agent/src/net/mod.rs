//! The probes' IO shell: a tokio current-thread runtime moving the core's probes' bytes and time over real
//! sockets, bound to the uplink being assessed.
//!
//! - [`clock`]: the one clock the core sees (std `Instant` <-> core `Instant`), and the wall clock.
//! - [`socket`]: sockets bound to an interface or source address, DSCP marks, kernel receive stamps.
//! - [`driver`]: [`drive`] runs one [`Probe`] to its result, the real-socket twin of the core's
//!   simulated network.
//!
//! Probes run concurrently on one thread: join their drives (`tokio::join!`, or [`join_all`] for many of
//! one kind) and bound how many are in flight with a [`Limit`], so a check does not open a hundred
//! sockets at once on a small router.
//!
//! ```no_run
//! # use o365probe::net::{self, Limit, SocketOptions};
//! # use o365probe_core::probe::tcp::{TcpConfig, TcpProbe};
//! let rt = net::runtime()?;
//! let opts = SocketOptions::default();
//! let limit = Limit::new(8);
//! let probe = TcpProbe::new(TcpConfig::new("192.0.2.1:443".parse()?), net::clock::now())?;
//! let result = rt.block_on(limit.run(net::drive(probe, &opts)))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use o365probe_core::probe::Probe;

pub mod clock;
pub mod driver;
pub mod socket;

pub use driver::{drive, drive_within, limit_for, DriveError, DEFAULT_LIMIT};
pub use socket::{SocketError, SocketOptions, DSCP_EF};

/// The runtime the probes run on: one thread, sockets and timers only.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// At most this many futures run through [`Limit::run`] at once; the others wait their turn, in order.
#[derive(Debug)]
pub struct Limit {
    permits: tokio::sync::Semaphore,
}

impl Limit {
    /// A limit of `concurrent` (at least 1).
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(concurrent.max(1)),
        }
    }

    /// Runs `work` once a slot is free.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.permits.acquire().await.ok();
        work.await
    }
}

/// Runs every future concurrently on this task and returns their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut running: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(v) => *output = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Drives every probe with the same options, at most `limit` at once; results in the probes' order.
pub async fn drive_all<P: Probe>(
    probes: impl IntoIterator<Item = P>,
    opts: &SocketOptions,
    limit: &Limit,
) -> Vec<Result<P::Output, DriveError>> {
    join_all(probes.into_iter().map(|p| limit.run(drive(p, opts)))).await
}
