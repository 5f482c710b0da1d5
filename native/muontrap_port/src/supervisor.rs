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
    take_channel(channel);
    fds::close_from(3);
    detach();
    serve()
}

/// A supervisor forked ahead of its request (`spawner.rs`): `sock` is
/// its socket to the spawner, which sends its channel, or closes it (the
/// spawner is gone) and the standby exits.
pub fn standby(sock: RawFd) -> ! {
    // Its socket on 0 (fd 1 and 2 as the spawner's), nothing else kept.
    // SAFETY: dup2(2) of a descriptor we hold onto 0.
    if unsafe { libc::dup2(sock, 0) } < 0 {
        exit(1);
    }
    fds::close_from(3);
    detach();
    let channel = match wait_for_channel() {
        Some(fd) => fd,
        None => exit(0),
    };
    take_channel(channel);
    fds::close(channel);
    serve()
}

/// The one descriptor the spawner sends on fd 0; None at EOF or on
/// anything else.
fn wait_for_channel() -> Option<RawFd> {
    let mut byte = [0u8; 1];
    let mut received = fds::Received::<4>::new();
    loop {
        match fds::recv_with_fds(0, &mut byte, &mut received) {
            Err(libc::EINTR) => continue,
            Ok(1) if !received.truncated && received.fds().len() == 1 => {
                return received.fds().first().copied();
            }
            _ => {
                received.close_all();
                return None;
            }
        }
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
