//! `o365lab-relay CONFIG.toml`: runs the lab's WAN relay until SIGTERM or SIGINT.
//!
//! Prints `ready` on stdout once both TAP devices exist and are up (the lab then configures addresses),
//! and a summary of what it forwarded, dropped and how late it was on stderr when it stops.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use o365probe_lab::relay::{Relay, RelayConfig, WayStats};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        bail!("usage: o365lab-relay CONFIG.toml");
    };
    let path = PathBuf::from(path);
    let config = RelayConfig::load(&path).with_context(|| format!("loading {}", path.display()))?;

    // Blocked before any relay thread exists, so every thread inherits the mask and the signals
    // wait for sigwait below instead of killing the process with the log unflushed.
    let signals = termination_signals();
    // SAFETY: signals is an initialised sigset_t; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };
    if rc != 0 {
        bail!(
            "blocking SIGTERM/SIGINT: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }

    let relay = Relay::start(config)?;
    if !relay.realtime() {
        eprintln!("o365lab-relay: no real-time priority; delays will straggle under load");
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    drop(stdout);

    let mut signal = 0;
    // SAFETY: both pointers are valid for the call.
    let rc = unsafe { libc::sigwait(&signals, &mut signal) };
    if rc != 0 {
        bail!(
            "waiting for a signal: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    let stats = relay.stop()?;
    for (way, s) in [("a_to_b", &stats.a_to_b), ("b_to_a", &stats.b_to_a)] {
        eprintln!("o365lab-relay: {way}: {}", summary(s));
    }
    Ok(())
}

fn termination_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

fn summary(s: &WayStats) -> String {
    format!(
        "{} received, {} forwarded, {} duplicated, {} lost, {} queue-full, {} unsent; \
         lateness p50 {} µs, p99 {} µs, max {} µs",
        s.received,
        s.forwarded,
        s.duplicated,
        s.lost,
        s.queue_full,
        s.unsent,
        s.late_p50_ns / 1000,
        s.late_p99_ns / 1000,
        s.late_max_ns / 1000
    )
}
