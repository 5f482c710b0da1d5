//! A command's supervisor: the spawner's forked child that owns one
//! channel (docs/protocol.md, "Transport"). It leaves the spawner's state
//! behind (descriptors, signal dispositions), takes its HANDOVER and then
//! runs the command as the port binary always has, the channel being its
//! stdin and stdout; its HELLO goes out first.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use muontrap_wire::channel::{self, SPAWNER_FD, STANDBY_KEPT_MIN_FD, TAG_HELLO};

use crate::fds;
use crate::spawner::{self, Request};

/// Runs in the spawner's forked child; never returns into its loop.
pub fn run(channel: RawFd) -> ! {
    take_channel(channel);
    fds::close_from_but_notices(3);
    detach();
    serve()
}

/// A supervisor forked ahead of its request (`spawner.rs`): it takes the
/// next request from the request socket itself, tells the spawner on
/// `sock` (`TOOK`, or `GONE` at the socket's EOF: the BEAM is gone, and
/// so it exits), and runs that command.
pub fn standby(sock: RawFd) -> ! {
    // Its socket on 0 (fd 1 and 2 as the spawner's) and the request
    // socket until it has its request; nothing else kept.
    // SAFETY: dup2(2) of a descriptor we hold onto 0.
    if unsafe { libc::dup2(sock, 0) } < 0 {
        exit(1);
    }
    fds::close_from_but_notices(SPAWNER_FD + 1);
    detach();
    let channel = loop {
        // Once the spawner is gone, nothing more may come: a standby
        // keeping the request socket open would hide its death from the
        // NIF, whose next request would then be lost. After SHUT_RD the
        // NIF's sends fail (EPIPE: it starts a new spawner), and a request
        // already queued is still read and served; the read after it is
        // EOF, and the standby exits.
        if !request_ready() {
            // SAFETY: shutdown(2) of a descriptor we hold.
            unsafe { libc::shutdown(SPAWNER_FD, libc::SHUT_RD) };
        }
        match spawner::next_request() {
            Request::Spawn(fd) => break fd,
            Request::Bad => {}
            Request::Gone => {
                let _ = fds::write_all(0, &[spawner::GONE]);
                exit(0)
            }
        }
    };
    fds::close(SPAWNER_FD);
    // The spawner may read requests again. Its socket is kept, off fd 0,
    // until the command started (`start_over`): the spawner forks the
    // next standby only then. Above where a daemon's LISTEN fds go; if
    // that cannot be, the start is over for the spawner now.
    let _ = fds::write_all(0, &[spawner::TOOK]);
    // SAFETY: fcntl(2) duplicating a descriptor we hold.
    let kept = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, STANDBY_KEPT_MIN_FD) };
    if kept < 0 {
        let _ = fds::write_all(0, &[spawner::STARTED]);
    }
    SPAWNER_SOCKET.store(kept, Ordering::Relaxed);
    take_channel(channel);
    fds::close(channel);
    serve()
}

/// Where a former standby keeps its socket to the spawner until its
/// command started (-1: none).
static SPAWNER_SOCKET: AtomicI32 = AtomicI32::new(-1);

/// The command started, or will not: a former standby tells its spawner
/// (STARTED), which may fork the next standby now, and closes the socket.
/// A no-op in any other supervisor, and after the first call.
pub fn start_over() {
    let fd = SPAWNER_SOCKET.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        let _ = fds::write_all(fd, &[spawner::STARTED]);
        fds::close(fd);
    }
}

/// Waits until a request (or EOF) is on the request socket: true; false
/// once the spawner is gone (its socket on 0 reads EOF). A failed poll is
/// true: the blocking read of the request follows, as without a poll.
fn request_ready() -> bool {
    let mut pfds = [SPAWNER_FD, 0].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: poll(2) on two live pollfds.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return n < 0 || pfds[1].revents == 0;
    }
}

/// The channel on 0 and 1, the supervisor's stdin and stdout.
fn take_channel(channel: RawFd) {
    // SAFETY: dup2(2) onto 0 and 1 of a descriptor we hold.
    unsafe {
        if libc::dup2(channel, 0) < 0 || libc::dup2(channel, 1) < 0 {
            libc::_exit(1);
        }
    }
}

/// Leaves the spawner's signal state behind and becomes non-dumpable.
fn detach() {
    reset_signals();
    crate::signals::set_only_pipe_ignored();
    #[cfg(linux_native)]
    // SAFETY: prctl(2) with integer arguments. Not dumpable: no core
    // file, no ptrace or /proc/<pid>/mem for its user's other processes
    // (the command's environment passes through here).
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Runs the command on the channel (fds 0 and 1).
fn serve() -> ! {
    exit(crate::library())
}

fn exit(status: i32) -> ! {
    // No flushing of anything inherited from the spawner.
    // SAFETY: _exit(2) never returns.
    unsafe { libc::_exit(status) }
}

/// HELLO on the channel, the supervisor's pid in it (the BEAM's
/// `os_pid`); false when the channel is gone.
pub fn write_hello() -> bool {
    // SAFETY: getpid(2) cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    fds::write_all(1, &channel::hello(TAG_HELLO, pid))
}

/// The dispositions and mask a freshly started port binary had: what the
/// spawner ignores goes back to default (SIGPIPE stays ignored, as the
/// port's `main` ignores it; SIGCHLD must be default for waitpid).
fn reset_signals() {
    // SAFETY: SIG_DFL installs no handler; sigprocmask(2) on a local set.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGCHLD] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}
