//! The resident spawner (docs/protocol.md, "Transport"): one
//! `priv/muontrap --spawner` per BEAM, started here with `posix_spawn` and
//! its request socket on `SPAWNER_FD`. Each command's channel end goes to
//! it in one SPAWN frame; it forks the command's supervisor.
//!
//! The spawner forks once at its start and its first process exits, so it
//! is nobody's child here: the BEAM never reaps it. It exits when its
//! request socket reads EOF, that is when the BEAM (or this library's
//! instance) is gone. One that died is replaced at the next start; the
//! commands it forked do not depend on it.
//!
//! Each load of this library is an `Instance`, which `MuonTrap.Nif` keeps
//! in `:persistent_term`. A later load (a code upgrade, or a reload in
//! development) puts its own there, and the old one's drop retires the
//! spawner started under it: otherwise an unloaded library's spawner
//! would hold its request socket, and live, until the BEAM exits.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use muontrap_wire::channel::{
    self, NOTICE_FD, SPAWNER_ARG, SPAWNER_FD, SPAWN_REQUEST, TAG_SPAWNER_HELLO,
};

use crate::fdpass;

/// How long a new spawner has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

struct Spawner {
    socket: OwnedFd,
    pid: u32,
    /// The `Instance` current when it started.
    instance: u64,
}

/// The latest `Instance` of this library (0: none yet).
static INSTANCE: AtomicU64 = AtomicU64::new(0);

/// One load of this library; dropping it retires the spawner started
/// while it was the latest (see the module docs).
pub struct Instance(u64);

crate::object::kind!(Instance);

/// Registers `Instance`'s type under a name of this copy of the library
/// alone (the address of its counter): unlike the other types, an upgrade
/// must never take over the old library's instances, whose drop has to
/// reach the old library's spawner.
pub fn register(env: rustler::Env) -> bool {
    let name = format!("MuonTrap.Instance@{:p}", &INSTANCE);
    let name = std::ffi::CString::new(name).unwrap_or_default();
    crate::object::register::<Instance>(env, &name)
}

impl Instance {
    pub fn new() -> Self {
        Instance(INSTANCE.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let mut guard = spawner();
        if guard.as_ref().is_some_and(|s| s.instance <= self.0) {
            *guard = None;
        }
    }
}

static SPAWNER: Mutex<Option<Spawner>> = Mutex::new(None);
/// Held while a spawner starts (on a dirty scheduler): one start at a
/// time, never under SPAWNER, so sends to a running spawner never wait.
static STARTING: Mutex<()> = Mutex::new(());

fn spawner() -> MutexGuard<'static, Option<Spawner>> {
    SPAWNER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a channel could not be given to a spawner.
#[derive(Debug)]
pub enum SpawnError {
    /// The request socket is full or too many descriptors are in flight
    /// (`EAGAIN`, `ETOOMANYREFS`): try again shortly.
    Busy,
    /// No spawner runs (none yet, or the last one is gone): start one
    /// (`ensure`, on a dirty scheduler) and try again.
    NoSpawner,
    /// The spawner could not be started, or said something else.
    Start(String),
    /// Another failure of the request socket.
    Os(io::Error),
}

/// Sends `end` (a channel's supervisor end) to the running spawner.
/// Never waits: without a spawner, or when it is gone, `NoSpawner`.
pub fn request(end: &OwnedFd) -> Result<(), SpawnError> {
    let mut guard = spawner();
    let Some(s) = guard.as_ref() else {
        return Err(SpawnError::NoSpawner);
    };
    match fdpass::send(&s.socket, &SPAWN_REQUEST, &[end.as_raw_fd()]) {
        Ok(()) => Ok(()),
        Err(e) => match e.raw_os_error() {
            Some(libc::EAGAIN | libc::ETOOMANYREFS) => Err(SpawnError::Busy),
            // Gone: the next start replaces it.
            Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN) => {
                *guard = None;
                Err(SpawnError::NoSpawner)
            }
            _ => Err(SpawnError::Os(e)),
        },
    }
}

/// Whether a spawner runs (as far as is known without sending to it).
pub fn running() -> bool {
    spawner().is_some()
}

/// Starts a spawner if none runs (blocks for its start and hello: call
/// it from a dirty scheduler). Returns its pid.
pub fn ensure(path: &CStr) -> Result<u32, SpawnError> {
    let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pid) = pid() {
        return Ok(pid);
    }
    let s = start(path)?;
    let pid = s.pid;
    *spawner() = Some(s);
    Ok(pid)
}

/// The running spawner's pid, if there is one.
pub fn pid() -> Option<u32> {
    spawner().as_ref().map(|s| s.pid)
}

/// Lets go of the spawner (it exits, as its request socket reads EOF);
/// the next start begins a new one. Running commands are left alone.
pub fn stop() {
    *spawner() = None;
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn os(what: &str) -> impl Fn(io::Error) -> SpawnError + '_ {
    move |e| SpawnError::Start(format!("{what}: {e}"))
}

fn start(path: &CStr) -> Result<Spawner, SpawnError> {
    let (ours, theirs) = fdpass::stream_pair().map_err(os("cannot create its socket"))?;
    let first = spawn(path, &theirs).map_err(|e| {
        let name = path.to_string_lossy();
        SpawnError::Start(format!("cannot start {name}: {e}"))
    })?;
    drop(theirs);
    reap(first);
    let (version, pid) = hello(&ours)?;
    if version != channel::VERSION {
        return Err(SpawnError::Start(format!(
            "{} speaks transport version {version}, this library {} (a stale priv/muontrap?)",
            path.to_string_lossy(),
            channel::VERSION
        )));
    }
    fdpass::set_nonblocking(&ours).map_err(os("cannot set up its socket"))?;
    let instance = INSTANCE.load(Ordering::SeqCst);
    Ok(Spawner {
        socket: ours,
        pid,
        instance,
    })
}

/// `fd`, or a duplicate above 10 when it is one of `targets`: a dup2 onto
/// a descriptor's own number keeps its close-on-exec flag on some
/// systems, and one onto another's would clobber it first.
fn off_targets(fd: RawFd, targets: &[RawFd]) -> io::Result<(RawFd, Option<OwnedFd>)> {
    if !targets.contains(&fd) {
        return Ok((fd, None));
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates an fd we own onto a new one.
    let moved = unsafe { OwnedFd::from_raw_fd(cvt(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10))?) };
    Ok((moved.as_raw_fd(), Some(moved)))
}

/// posix_spawn of `path --spawner` with `/dev/null` on fds 0 and 1, the
/// BEAM's stderr on 2, `sock` on SPAWNER_FD, on Linux the end notices'
/// pipe on NOTICE_FD (`crate::notices`), every signal at its default and
/// none blocked.
fn spawn(path: &CStr, sock: &OwnedFd) -> io::Result<libc::pid_t> {
    let (raw, _moved) = off_targets(sock.as_raw_fd(), &[SPAWNER_FD])?;
    // Always there on Linux: the spawner keeps NOTICE_FD open for its
    // supervisors, and must never find some other file on it.
    let notice = if cfg!(linux_native) {
        Some(off_targets(
            crate::notices::write_end()?,
            &[SPAWNER_FD, NOTICE_FD],
        )?)
    } else {
        None
    };
    let arg0 = CString::new("muontrap").map_err(io::Error::other)?;
    let arg1 = CString::new(SPAWNER_ARG).map_err(io::Error::other)?;
    let argv = [
        arg0.as_ptr().cast_mut(),
        arg1.as_ptr().cast_mut(),
        std::ptr::null_mut(),
    ];
    let null = c"/dev/null";
    // SAFETY: the attribute and file-action objects are initialised before
    // use and destroyed after; every pointer passed (path, argv, environ,
    // "/dev/null") is a NUL-terminated string or array alive for the call.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        cvt(libc::posix_spawn_file_actions_init(&mut actions))?;
        cvt(libc::posix_spawnattr_init(&mut attr))?;
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigemptyset(&mut none);
        let flags = (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short;
        let set_up = [
            libc::posix_spawnattr_setflags(&mut attr, flags),
            libc::posix_spawnattr_setsigdefault(&mut attr, &all),
            libc::posix_spawnattr_setsigmask(&mut attr, &none),
            libc::posix_spawn_file_actions_addopen(
                &mut actions,
                0,
                null.as_ptr(),
                libc::O_RDONLY,
                0,
            ),
            libc::posix_spawn_file_actions_addopen(
                &mut actions,
                1,
                null.as_ptr(),
                libc::O_WRONLY,
                0,
            ),
            libc::posix_spawn_file_actions_adddup2(&mut actions, raw, SPAWNER_FD),
            match &notice {
                Some((fd, _)) => {
                    libc::posix_spawn_file_actions_adddup2(&mut actions, *fd, NOTICE_FD)
                }
                None => 0,
            },
        ];
        let mut pid: libc::pid_t = 0;
        let r = match set_up.iter().find(|&&r| r != 0) {
            Some(&r) => r,
            None => libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                environ(),
            ),
        };
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(pid)
    }
}

/// The process environment (the spawner's own; each command carries the
/// BEAM's environment of the moment).
fn environ() -> *const *mut libc::c_char {
    extern "C" {
        static environ: *const *mut libc::c_char;
    }
    // SAFETY: reads libc's global environment pointer.
    unsafe { environ }
}

/// Waits for the spawner's first process, which exits once it has forked
/// the spawner proper. ECHILD: someone reaps for us (SIGCHLD ignored).
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// The spawner's SPAWNER_HELLO: `(version, pid)`.
fn hello(sock: &OwnedFd) -> Result<(u32, u32), SpawnError> {
    let deadline = Instant::now() + HELLO_TIMEOUT;
    let mut buf = [0u8; channel::HEADER + 9];
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !fdpass::wait_readable(sock.as_raw_fd(), left) {
            return Err(SpawnError::Start("the spawner did not answer".into()));
        }
        // SAFETY: reads into the unfilled part of our buffer.
        let n = unsafe {
            libc::read(
                sock.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        match n {
            0 => return Err(SpawnError::Start("the spawner exited at once".into())),
            n if n > 0 => got += n as usize,
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => return Err(os("cannot read its hello")(io::Error::last_os_error())),
        }
    }
    channel::parse_hello(TAG_SPAWNER_HELLO, &buf[channel::HEADER..])
        .ok_or_else(|| SpawnError::Start("the spawner's hello is malformed".into()))
}
