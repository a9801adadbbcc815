//! Network namespaces and the processes inside them: creating, entering, running commands, and
//! finding every process a namespace still holds so teardown can leave nothing behind.
//!
//! As root, namespaces are ordinary `ip netns` names (`ip netns exec NAME …` works from any shell).
//! Inside `unshare -rn` there is no right to mount on the real /run/netns, so one "spawner" thread
//! moves into a private mount namespace with its own /run/netns; every process the lab starts is
//! started from that thread (and so sees the names), and other threads reach a namespace through
//! `/proc/PID/task/TID/root/run/netns/NAME`. Either way, processes started by the lab get SIGKILL if
//! the process that started them dies, because the spawner thread lives as long as the process.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::LabError;

/// A network namespace the lab created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// The namespace called `name` (which need not exist yet).
    pub(crate) fn named(name: &str) -> Result<Netns, LabError> {
        let path = spawner()?.root.join("run/netns").join(name);
        Ok(Netns {
            name: name.to_owned(),
            path,
        })
    }

    /// The name, as `ip netns` shows it (as root).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A path that names the namespace from any thread of this process (for `nsenter --net=`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `program` to be run inside the namespace (through nsenter). Add arguments and spawn it as any
    /// `Command`; it does not outlive the lab (teardown kills every process in the namespace).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        let mut net = std::ffi::OsString::from("--net=");
        net.push(self.path.as_os_str());
        c.arg(net).arg("--").arg(program);
        c
    }

    /// Runs `argv` inside the namespace to completion; its stdout if it exits 0, else an error with
    /// its stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String, LabError> {
        let (program, args) = argv.split_first().ok_or_else(|| LabError::Command {
            command: String::new(),
            status: "not started".into(),
            stderr: "empty command line".into(),
        })?;
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = run(cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `argv` inside the namespace to completion and returns whatever it did, exit status included.
    pub fn output(&self, argv: &[&str]) -> Result<Output, LabError> {
        let mut cmd = self.command(argv.first().copied().unwrap_or("true"));
        cmd.args(argv.iter().skip(1));
        output(cmd)
    }

    /// Starts a long-running `cmd` (built with [`Netns::command`]); killed at teardown at the latest.
    pub fn spawn(&self, cmd: Command) -> Result<Child, LabError> {
        spawn(cmd)
    }

    /// Runs `work` on a thread inside the namespace. Sockets opened there stay in the namespace
    /// whichever thread uses them afterwards.
    pub fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = self.path.clone();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let ns = File::open(&path).map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    // SAFETY: a plain syscall on a descriptor we own; it moves only this thread.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(work())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The namespace's identity (its nsfs inode), if it exists.
    pub(crate) fn inode(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.ino())
    }

    /// Processes (other than this one) whose network namespace this is.
    pub fn pids(&self) -> Vec<i32> {
        match self.inode() {
            Some(ino) => pids_in(ino),
            None => Vec::new(),
        }
    }

    /// SIGKILLs every process inside and waits (at most 2 s) until they are gone.
    pub(crate) fn kill_all(&self) {
        let Some(ino) = self.inode() else { return };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = pids_in(ino);
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Processes (other than this one) whose network namespace has inode `ino`.
fn pids_in(ino: u64) -> Vec<i32> {
    let own = std::process::id() as i32;
    let want = format!("net:[{ino}]");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.as_os_str() == want.as_str())
        })
        .collect()
}

/// Whether a process with this pid runs (a zombie does not: it only waits to be reaped).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

type Job = Box<dyn FnOnce() + Send>;

struct Spawner {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Prefix that makes /run/netns/NAME reachable from every thread: "/" as root, or the spawner
    /// thread's root in its private mount namespace.
    root: PathBuf,
}

static SPAWNER: OnceLock<Result<Spawner, String>> = OnceLock::new();

fn spawner() -> Result<&'static Spawner, LabError> {
    SPAWNER
        .get_or_init(start_spawner)
        .as_ref()
        .map_err(|e| LabError::NotPermitted(e.clone()))
}

fn start_spawner() -> Result<Spawner, String> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<PathBuf, String>>();
    std::thread::Builder::new()
        .name("o365lab-spawner".into())
        .spawn(move || {
            let _ = ready_tx.send(prepare_spawner_thread());
            for job in queue {
                job();
            }
        })
        .map_err(|e| format!("starting the spawner thread: {e}"))?;
    let root = ready_rx
        .recv()
        .map_err(|_| "the spawner thread died".to_owned())??;
    Ok(Spawner {
        jobs: Mutex::new(jobs),
        root,
    })
}

/// In the initial user namespace nothing is needed; in a user namespace this thread gets a private
/// mount namespace with a writable /run/netns.
fn prepare_spawner_thread() -> Result<PathBuf, String> {
    if initial_user_namespace() {
        return Ok(PathBuf::from("/"));
    }
    // SAFETY: unshare affects only this thread's mount namespace (and its own copy of fs state).
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "cannot make a private mount namespace in this user namespace: {}",
            io::Error::last_os_error()
        ));
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
    let (root, none, tmpfs) = (c("/"), c("none"), c("tmpfs"));
    // SAFETY: valid NUL-terminated strings; mounts only affect the private namespace made above.
    unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
    }
    // /run/netns may not exist and /run may not be ours to write; a tmpfs on /run/netns if possible,
    // else on /run itself.
    let target = if std::fs::create_dir_all("/run/netns").is_ok() {
        "/run/netns"
    } else {
        "/run"
    };
    let t = c(target);
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(
            tmpfs.as_ptr(),
            t.as_ptr(),
            tmpfs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot mount a tmpfs on {target}: {}",
            io::Error::last_os_error()
        ));
    }
    std::fs::create_dir_all("/run/netns").map_err(|e| format!("/run/netns: {e}"))?;
    // SAFETY: gettid cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    Ok(PathBuf::from(format!(
        "/proc/{}/task/{tid}/root",
        std::process::id()
    )))
}

/// Whether this process runs in the initial user namespace (uid_map maps the whole range), rather
/// than in one like `unshare -rn` makes, where only its own uid exists.
pub(crate) fn initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        .unwrap_or(true)
}

/// Runs `job` on the spawner thread and returns its result.
fn on_spawner<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T, LabError> {
    let spawner = spawner()?;
    let (tx, rx) = mpsc::channel();
    let sent = spawner
        .jobs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Box::new(move || {
            let _ = tx.send(job());
        }));
    let lost = || LabError::NotPermitted("the spawner thread is gone".into());
    sent.map_err(|_| lost())?;
    rx.recv().map_err(|_| lost())
}

/// Starts `cmd` from the spawner thread, in a process group of its own (a terminal's Ctrl-C reaches
/// the lab, which then tears down in order) and with SIGKILL as its parent-death signal.
pub(crate) fn spawn(mut cmd: Command) -> Result<Child, LabError> {
    let shown = show(&cmd);
    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would ever send the signal.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.process_group(0);
    on_spawner(move || cmd.spawn())?.map_err(|source| LabError::Io {
        what: format!("starting {shown}"),
        source,
    })
}

/// Runs `cmd` to completion (started from the spawner thread) and returns what it did.
pub(crate) fn output(mut cmd: Command) -> Result<Output, LabError> {
    let shown = show(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn(cmd)?
        .wait_with_output()
        .map_err(|source| LabError::Io {
            what: format!("waiting for {shown}"),
            source,
        })
}

/// Runs `cmd` to completion; an error with its stderr unless it exits 0.
pub(crate) fn run(cmd: Command) -> Result<Output, LabError> {
    let shown = show(&cmd);
    exited_ok(shown, output(cmd)?)
}

/// `out` if the command (shown as `command`) exited 0, else an error with its stderr.
pub(crate) fn exited_ok(command: String, out: Output) -> Result<Output, LabError> {
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

/// Runs `ip -batch -` with `lines` on stdin, inside `netns` if given.
pub(crate) fn ip_batch(netns: Option<&Netns>, lines: &[String]) -> Result<(), LabError> {
    use std::io::Write;
    let mut cmd = match netns {
        Some(ns) => ns.command("ip"),
        None => Command::new("ip"),
    };
    cmd.args(["-batch", "-"]);
    let shown = format!("{}  <<< {}", show(&cmd), lines.join("; "));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(cmd)?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = lines.join("\n") + "\n";
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| LabError::Io {
                what: format!("feeding {shown}"),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| LabError::Io {
        what: format!("waiting for {shown}"),
        source,
    })?;
    exited_ok(shown, out).map(drop)
}

/// Creates the namespaces (one `ip` process for all of them).
pub(crate) fn create(namespaces: &[&Netns]) -> Result<(), LabError> {
    let lines: Vec<String> = namespaces
        .iter()
        .map(|ns| format!("netns add {}", ns.name))
        .collect();
    ip_batch(None, &lines)
}

/// Deletes the namespaces that exist; missing ones are not an error.
pub(crate) fn delete(namespaces: &[&Netns]) -> Result<(), LabError> {
    let lines: Vec<String> = namespaces
        .iter()
        .filter(|ns| ns.inode().is_some())
        .map(|ns| format!("netns del {}", ns.name))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    ip_batch(None, &lines)
}

/// Names of the namespaces under /run/netns (this process's view of it).
pub(crate) fn list() -> Result<Vec<String>, LabError> {
    let dir = spawner()?.root.join("run/netns");
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    Ok(names)
}

/// Writes a sysctl of the namespace (they are per namespace under /proc/sys/net).
pub(crate) fn sysctl(netns: &Netns, settings: &[(&str, &str)]) -> Result<(), LabError> {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    netns
        .enter(move || -> io::Result<()> {
            for (key, value) in &settings {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                std::fs::write(&path, value)
                    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
            }
            Ok(())
        })
        .and_then(|r| r)
        .map_err(|source| LabError::Io {
            what: format!("setting sysctls in {}", netns.name),
            source,
        })
}

pub(crate) fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
