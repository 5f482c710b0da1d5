//! Signals without signalfd (macOS, FreeBSD, the `portable` build): a
//! handler writes the signal's number, one byte, into a non-blocking pipe
//! whose read end the poll loop watches. A full pipe drops the byte: one
//! queued byte per signal is all the loop needs (SIGCHLD means "reap",
//! and any terminating signal means "stop").

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;

use super::{Pending, TERMINATING};

/// The pipe's write end, for the handler (-1 before `install`).
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

/// The read end the poll loop watches.
pub struct Signals(OwnedFd);

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // The handler may interrupt code that inspects errno.
    let saved = Errno::last_raw();
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; one byte from the stack to a
    // non-blocking pipe (or to -1, which fails harmlessly).
    unsafe {
        libc::write(
            WRITE_END.load(Ordering::Relaxed),
            (&byte as *const u8).cast(),
            1,
        )
    };
    Errno::set_raw(saved);
}

fn set_flags(fd: RawFd) -> nix::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0
            || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0
            || libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0
        {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Makes the pipe and installs the handler for SIGCHLD and the
/// terminating signals. Called once per process (a supervisor, the plain
/// command line): the pipe lives as long as the process.
pub fn install() -> nix::Result<Signals> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe(2) writes two new descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: both are new and ours alone; the write end is never closed
    // (the handler may use it until the process exits).
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    set_flags(fds[0])?;
    set_flags(fds[1])?;
    WRITE_END.store(fds[1], Ordering::Relaxed);
    let signals = [libc::SIGCHLD]
        .into_iter()
        .chain(TERMINATING.iter().map(|s| *s as libc::c_int));
    for sig in signals {
        // SAFETY: a zeroed sigaction is valid; the handler only calls
        // async-signal-safe functions. SA_RESTART keeps blocking writes
        // of frames from failing with EINTR; poll still wakes (the byte).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) < 0 {
                return Err(Errno::last());
            }
        }
    }
    Ok(Signals(read))
}

/// Reads every queued signal without blocking.
pub fn drain(signals: &Signals) -> Pending {
    let mut p = Pending::default();
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: read(2) into a live stack buffer of its own length.
        let n = unsafe { libc::read(signals.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(n) = usize::try_from(n) else {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return p;
        };
        for &b in &buf[..n] {
            p.add(i32::from(b));
        }
        if n < buf.len() {
            return p;
        }
    }
}

/// In a forked child before exec: our handlers back to the default, so
/// none runs in the child and writes into the parent's pipe.
pub fn reset_in_child() {
    let signals = [libc::SIGCHLD]
        .into_iter()
        .chain(TERMINATING.iter().map(|s| *s as libc::c_int));
    for sig in signals {
        // SAFETY: SIG_DFL installs no handler; signal(2) is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}
