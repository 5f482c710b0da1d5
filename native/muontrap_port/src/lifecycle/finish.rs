//! The end of every run, also of one that never started a program.

use std::os::fd::{AsFd, OwnedFd};

use crate::signals::Signals;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::read;

use crate::output::Output;
use crate::signals;

/// Last step in both modes. Framed: send EXIT, close `held` (the BEAM's
/// output pipes then end, with EXIT already in the channel; with an end
/// notice sent, once the channel closes instead), then wait
/// for the Erlang side to close stdin (or a terminating signal), so it
/// never writes to a port whose program is gone.
// Not inlined: its 4 KiB buffer is on the stack only while it runs
// (each stack page a supervisor touches is a private copy of its own).
#[inline(never)]
pub fn finish(
    out: &mut Output,
    sigfd: &Signals,
    stdin_open: bool,
    status: i32,
    held: Vec<OwnedFd>,
) {
    if !out.framed() {
        return;
    }
    out.exit(status);
    // With the end notice out, the output pipes end when the channel
    // closes, not now (crate::notice).
    let _held = crate::notice::send().then_some(held);
    if !stdin_open || out.broken() {
        return;
    }
    let stdin = std::io::stdin();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                crate::log::error!(error = %e, "poll failed");
                return;
            }
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[0]) && signals::drain(sigfd).terminate.is_some() {
            return;
        }
        if ready(&fds[1]) {
            match read(stdin.as_fd(), &mut buf) {
                Ok(0) => return,
                Ok(_) | Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => return,
            }
        }
    }
}
