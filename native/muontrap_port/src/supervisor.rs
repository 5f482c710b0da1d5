//! A command's supervisor: the spawner's forked child that owns one
//! channel (docs/protocol.md, "Transport"). It leaves the spawner's state
//! behind (descriptors, signal dispositions), takes its HANDOVER and then
//! runs the command as the port binary always has, the channel being its
//! stdin and stdout; its HELLO goes out first.

use std::os::fd::RawFd;

use muontrap_wire::channel::{self, TAG_HELLO};

use crate::fds;

/// Runs in the spawner's forked child; never returns into its loop.
pub fn run(channel: RawFd) -> ! {
    // SAFETY: dup2(2) onto 0 and 1 of a descriptor we hold; then only
    // our own stdio (2 is the BEAM's stderr) and the channel remain.
    unsafe {
        if libc::dup2(channel, 0) < 0 || libc::dup2(channel, 1) < 0 {
            libc::_exit(1);
        }
    }
    fds::close_from(3);
    reset_signals();
    crate::signals::set_only_pipe_ignored();
    #[cfg(linux_native)]
    // SAFETY: prctl(2) with integer arguments. Not dumpable: no core
    // file, no ptrace or /proc/<pid>/mem for its user's other processes
    // (the command's environment passes through here).
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let status = crate::library();
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
