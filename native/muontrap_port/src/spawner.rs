//! `muontrap --spawner`: the one resident process per BEAM that forks a
//! supervisor per command (docs/protocol.md, "Transport").
//!
//! The NIF starts it with its request socket on fd 3 (`SPAWNER_FD`). It
//! forks once so that the NIF reaps only that short-lived parent, says
//! hello, then takes one SPAWN request at a time: each carries one end of
//! a command's channel, and a forked child (`supervisor.rs`) runs the
//! command on it. Between forks the spawner allocates nothing, so the
//! pages its children share with it stay shared (copy-on-write).
//!
//! While it is idle, the spawner forks a child ahead of its request: the
//! standby supervisor, with its set-up done, takes the next request from
//! the request socket itself, so a start waits neither for a fork nor for
//! a hand-off from the spawner. Meanwhile the spawner reads nothing from
//! that socket: it waits for the standby's word on a socket of their own
//! (`TOOK`, or `GONE` at the request socket's EOF). It forks the next
//! standby once that start is over (`STARTED`), so the fork does not take
//! the CPU from the command's exec; a request that comes before is forked
//! directly. In a burst (a request already waiting) each start is forked
//! directly, which is less work. A standby holds no request when it is
//! forked; it takes exactly one, closes the request socket, and reads its
//! command over its channel like any supervisor.
//! A standby that is gone (killed) before its word is reported on stderr,
//! and the spawner goes on without it.

use std::os::fd::RawFd;

use muontrap_wire::channel::{self, SPAWNER_FD, SPAWN_REQUEST, TAG_SPAWNER_HELLO};

use crate::fds;
use crate::supervisor;

/// A standby's words to the spawner: it took a request (the spawner may
/// read the request socket again), or the request socket is at EOF (the
/// BEAM is gone); then, once its command started or failed to, STARTED
/// (the next standby may be forked).
pub const TOOK: u8 = 1;
pub const GONE: u8 = 2;
pub const STARTED: u8 = 3;

/// Room for this many descriptors per request: one is right, more is a
/// bad request whose descriptors must still be received to be closed.
const ROOM: usize = 4;

/// Runs the spawner; returns only on a setup failure (its exit status).
/// Every other end is `_exit`: the BEAM is gone.
pub fn run() -> i32 {
    fds::close_from_but_notices(SPAWNER_FD + 1);
    // A channel received onto 0 or 1 would be clobbered by the dup2s of
    // the supervisor's start.
    if let Err(msg) = crate::ensure_std_fds() {
        return report(&msg, 0);
    }
    // From known dispositions (whoever started us may have left some
    // ignored): a supervisor then resets only what is set here.
    crate::signals::all_default();
    // SAFETY: SIG_IGN installs no handler code. Interrupts meant for the
    // BEAM's terminal (^C in iex) must not end the spawner; its end is the
    // request socket's EOF (or SIGTERM). Children put SIG_DFL back.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // Supervisors are reaped by the kernel: nobody waits for them.
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    // SAFETY: fork(2) in a single-threaded process (the std runtime was
    // never started: `no_main`, and nothing here spawns threads).
    match unsafe { libc::fork() } {
        -1 => return report("cannot fork", errno()),
        // The NIF waits for this parent; the child is reparented.
        // SAFETY: _exit(2) never returns and flushes nothing.
        0 => {}
        _ => unsafe { libc::_exit(0) },
    }
    // Out of the BEAM's session: its terminal's signals never reach us
    // nor the supervisors. Fails only for a group leader, which a fresh
    // child is not.
    // SAFETY: setsid(2) takes no arguments.
    unsafe { libc::setsid() };
    #[cfg(linux_native)]
    hold_notice_fd();
    crate::threads::watch();
    if let Err(e) = crate::spawn::map_child_stack() {
        // Each supervisor then maps one of its own, and fails its start
        // the same way if it cannot.
        report("cannot map the stack for starts", e as i32);
    }
    // SAFETY: getpid(2) cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    if !fds::write_all(SPAWNER_FD, &channel::hello(TAG_SPAWNER_HELLO, pid)) {
        exit(0);
    }
    // A standby waiting on the request socket, and one that took its
    // request and is still starting its command.
    let mut standby = None;
    let mut starting = None;
    loop {
        // Forked while idle only: in a burst each start forks its own,
        // the least work per start; and not while a start is under way,
        // whose exec would wait for the CPU the fork takes.
        if standby.is_none() && starting.is_none() && !request_pending() {
            standby = fork_standby();
        }
        // While a standby waits on the request socket, only it reads
        // there: two readers could split a request.
        if let Some(sock) = standby.take() {
            starting = await_standby(sock);
        } else if let Some(sock) = starting {
            if await_start(sock) {
                fds::close(sock);
                starting = None;
            }
        } else {
            take_request();
        }
    }
}

/// NOTICE_FD, which every supervisor keeps, made close-on-exec (no
/// command inherits it). A spawner started without the NIF's notice pipe
/// there (by hand) gets `/dev/null` on it, so that no file of its own
/// lands on that number and goes to every supervisor.
#[cfg(linux_native)]
fn hold_notice_fd() {
    use muontrap_wire::channel::NOTICE_FD;
    // SAFETY: fcntl(2) with integer arguments.
    if unsafe { libc::fcntl(NOTICE_FD, libc::F_SETFD, libc::FD_CLOEXEC) } == 0 {
        return;
    }
    // SAFETY: open(2) of a literal path; dup3(2) and close(2) of the
    // descriptor it returned.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 && null != NOTICE_FD {
            libc::dup3(null, NOTICE_FD, libc::O_CLOEXEC);
            libc::close(null);
        }
    }
}

/// Reads the next request and forks its supervisor.
fn take_request() {
    match next_request() {
        Request::Spawn(channel) => spawn(channel),
        Request::Bad => {}
        Request::Gone => exit(0),
    }
}

/// Waits for the standby's first word on `sock`: `Some(sock)` once it
/// took its request (its start is under way); else None, `sock` closed.
fn await_standby(sock: RawFd) -> Option<RawFd> {
    match read_word(sock) {
        Some(TOOK) => Some(sock),
        Some(GONE) => exit(0),
        _ => {
            fds::close(sock);
            report("the standby supervisor is gone, forking another", 0);
            None
        }
    }
}

/// While a former standby starts its command: serves a request that
/// comes meanwhile (forked directly, as in a burst), and returns true
/// once the start is over (`STARTED`, or the supervisor is gone).
fn await_start(sock: RawFd) -> bool {
    let mut pfds = [sock, SPAWNER_FD].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: poll(2) on two live pollfds.
    if unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) } < 0 {
        // Not waiting for that word any more: standbys as usual.
        return errno() != libc::EINTR;
    }
    if pfds[1].revents != 0 {
        take_request();
    }
    if pfds[0].revents == 0 {
        return false;
    }
    // Any word or EOF: its start is over.
    let _ = read_word(sock);
    true
}

/// One byte from `sock`; None at EOF or on an error.
fn read_word(sock: RawFd) -> Option<u8> {
    let mut word = [0u8; 1];
    loop {
        // SAFETY: read(2) into a live one-byte buffer.
        let n = unsafe { libc::read(sock, word.as_mut_ptr().cast(), 1) };
        match n {
            1 => return Some(word[0]),
            n if n < 0 && errno() == libc::EINTR => {}
            _ => return None,
        }
    }
}

/// Whether a request is waiting on the request socket (or it is at EOF).
fn request_pending() -> bool {
    let mut pfd = libc::pollfd {
        fd: SPAWNER_FD,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll(2) on one live pollfd, without waiting.
    unsafe { libc::poll(&mut pfd, 1, 0) > 0 }
}

/// Forks the supervisor of the command whose channel end is `channel`,
/// then closes the spawner's copy (a failed fork closes it too: the NIF
/// sees its channel end before any HELLO).
fn spawn(channel: RawFd) {
    match fork() {
        Some(0) => supervisor::run(channel),
        None => report("cannot fork a supervisor", errno()),
        Some(_) => 0,
    };
    fds::close(channel);
}

/// Forks the next standby supervisor; returns the spawner's end of its
/// socket (None: no standby, the next start forks its own).
fn fork_standby() -> Option<RawFd> {
    let (ours, theirs) = fds::stream_pair()?;
    match fork() {
        Some(0) => {
            fds::close(ours);
            supervisor::standby(theirs)
        }
        Some(_) => {
            fds::close(theirs);
            Some(ours)
        }
        None => {
            report("cannot fork a standby supervisor", errno());
            fds::close(ours);
            fds::close(theirs);
            None
        }
    }
}

/// fork(2) after checking that this process is single-threaded (a fork
/// could otherwise copy another thread's lock held mid-update): the
/// child's 0, the parent's child pid, None on failure.
fn fork() -> Option<libc::pid_t> {
    if !crate::threads::single() {
        report("more than one thread, refusing to fork", 0);
        exit(70);
    }
    // SAFETY: fork(2) in a process just checked to be single-threaded.
    match unsafe { libc::fork() } {
        -1 => None,
        pid => Some(pid),
    }
}

pub enum Request {
    Spawn(RawFd),
    Bad,
    Gone,
}

/// Receives exactly one request (5 bytes) and its descriptors. Anything
/// but one descriptor on a SPAWN frame is closed and skipped.
pub fn next_request() -> Request {
    let mut buf = [0u8; SPAWN_REQUEST.len()];
    let mut got = 0;
    let mut received = fds::Received::<ROOM>::new();
    let mut bad = false;
    while got < buf.len() {
        match fds::recv_with_fds(SPAWNER_FD, &mut buf[got..], &mut received) {
            Ok(0) => {
                received.close_all();
                return Request::Gone;
            }
            Ok(n) => got += n,
            Err(libc::EINTR) => {}
            Err(_) => {
                received.close_all();
                return Request::Gone;
            }
        }
        bad |= received.truncated;
    }
    match received.fds() {
        [fd] if !bad && buf == SPAWN_REQUEST => Request::Spawn(*fd),
        _ => {
            received.close_all();
            Request::Bad
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A line on stderr (the BEAM's), without allocating; returns 1.
fn report(what: &str, errno: i32) -> i32 {
    let _ = fds::write_all(2, b"muontrap spawner: ");
    let _ = fds::write_all(2, what.as_bytes());
    if errno != 0 {
        let _ = fds::write_all(2, b": ");
        let _ = fds::write_all(2, nix::errno::Errno::from_raw(errno).desc().as_bytes());
    }
    let _ = fds::write_all(2, b"\n");
    1
}

fn exit(status: i32) -> ! {
    // SAFETY: _exit(2) never returns; nothing buffered is ours to flush.
    unsafe { libc::_exit(status) }
}
