//! The relay's system calls: TAP devices inside network namespaces, the clock, and the thread
//! settings its timing needs.
//! All of the relay's `unsafe` lives here: thin calls into libc with their arguments checked first.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::config::Endpoint;

/// Runs `work` on a thread that has joined network namespace `netns` (a name under /var/run/netns,
/// or "" for the caller's own). Sockets and TAP devices opened there stay in that namespace for
/// their whole life, whichever thread uses them later.
pub fn in_netns<T: Send>(netns: &str, work: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if !netns.is_empty() {
                    enter_netns(netns)?;
                }
                Ok(work())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn enter_netns(netns: &str) -> io::Result<()> {
    if netns.contains('/') || netns == "." || netns == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{netns:?} is not a namespace name"),
        ));
    }
    let path = format!("/var/run/netns/{netns}");
    let handle = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    // SAFETY: plain syscall on a descriptor we own; it only changes this thread's namespace.
    if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns {path}: {e}")));
    }
    Ok(())
}

/// Creates the endpoint's TAP device (Ethernet frames, no packet-info header), sets its MTU and
/// brings it up. The device lives as long as the returned file; the caller adds addresses and routes.
pub(crate) fn open_tap(endpoint: &Endpoint) -> io::Result<File> {
    let name = CString::new(endpoint.ifname.as_str())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let mtu = endpoint.mtu;
    in_netns(&endpoint.netns, move || -> io::Result<File> {
        let request = |flags: libc::c_short| {
            // SAFETY: ifreq is plain old data; all-zero is a valid value.
            let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
            for (slot, &b) in ifr.ifr_name.iter_mut().zip(bytes) {
                *slot = b as libc::c_char;
            }
            ifr.ifr_ifru.ifru_flags = flags;
            ifr
        };
        // SAFETY: the path is a valid C string; the result is checked before use.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            return Err(context("opening /dev/net/tun"));
        }
        // SAFETY: fd was just opened and is owned by nothing else.
        let tap = unsafe { File::from_raw_fd(fd) };
        let mut ifr = request((libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short);
        // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call.
        if unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) } != 0 {
            return Err(context("TUNSETIFF"));
        }
        // Interface ioctls need a socket of the namespace the device is in: this thread's.
        // SAFETY: plain syscall; the result is checked.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(context("socket for interface ioctls"));
        }
        // SAFETY: sock was just created and is owned by nothing else.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        let mut ifr = request(0);
        ifr.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
        // SAFETY: as above, one ifreq that outlives each call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU as _, &mut ifr) } != 0 {
            return Err(context("setting the MTU"));
        }
        let mut ifr = request(0);
        // SAFETY: as above.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) } != 0 {
            return Err(context("reading interface flags"));
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr) } != 0 {
            return Err(context("bringing the link up"));
        }
        Ok(tap)
    })?
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "TAP {} in namespace {:?}: {e}",
                endpoint.ifname, endpoint.netns
            ),
        )
    })
}

fn context(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// CLOCK_MONOTONIC in nanoseconds: the relay's time base, shared by every network namespace.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid for the call; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: cpu is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Makes the calling thread wake on time: real-time FIFO priority when permitted (ordinary compile
/// jobs on the machine can then no longer delay a due frame by a whole time slice), a timer slack
/// of 1 ns otherwise, and, if given, one CPU to run on. Returns whether real-time priority was granted.
pub(crate) fn make_thread_punctual(priority: i32, cpu: Option<usize>) -> bool {
    // SAFETY: prctl with an integer argument; failure only leaves the default 50 µs slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    if let Some(cpu) = cpu {
        // SAFETY: as in allowed_cpus; CPU_SET is given a CPU number below CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if cpu < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut set);
                // Failure leaves the thread free to run anywhere, which is merely less robust.
                libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
            }
        }
    }
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; param is valid for the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

/// Waits until `fd` is readable or `timeout_ms` passes; true if readable.
pub(crate) fn wait_readable(fd: &File, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    match n {
        n if n < 0 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 => {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "TAP device gone"))
        }
        _ => Ok(true),
    }
}
