//! The HANDOVER frame on the channel: wait for it, receive its
//! descriptors with its header, then exactly the body the header
//! announces.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use crate::signals::Signals;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use muontrap_wire::channel::{self, HandoverFrameError, HEADER, MAX_HANDOVER};

use super::HandoverError;
use crate::fds;
use crate::signals;

/// The kernel's per-message limit (`SCM_MAX_FD`). The control buffer has
/// room for that many, not just `MAX_FDS`: with MSG_CTRUNC the kernel
/// still installs the descriptors that fit, which must be closed. More
/// than `MAX_FDS` is refused once they are owned.
const SCM_MAX_FD: usize = 253;

/// The channel: the supervisor's stdin.
const CHANNEL: i32 = 0;

fn os(op: &'static str) -> impl Fn(Errno) -> HandoverError {
    move |errno| HandoverError::Os { op, errno }
}

/// Blocks until the channel is readable (the frame, or EOF); a
/// terminating signal meanwhile ends the wait.
pub(super) fn wait(sigfd: &Signals) -> Result<(), HandoverError> {
    let stdin = std::io::stdin();
    loop {
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(os("poll failed")(e)),
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let (channel_ready, sig_ready) = (ready(0), ready(1));
        if sig_ready {
            if let Some(sig) = signals::drain(sigfd).terminate {
                return Err(HandoverError::Interrupted(sig));
            }
        }
        if channel_ready {
            return Ok(());
        }
    }
}

/// What a HANDOVER brought.
pub(super) struct Received {
    /// One role byte per descriptor, in order.
    pub roles: Vec<u8>,
    pub fds: Vec<OwnedFd>,
    /// The command value, when the frame carries it (else empty).
    pub command: Vec<u8>,
    /// The end notice asked for (0: none).
    pub notice: u64,
}

/// Receives the frame. Every descriptor is owned before anything is
/// checked, so none leaks.
pub(super) fn recv() -> Result<Received, HandoverError> {
    let mut received = fds::Received::<SCM_MAX_FD>::new();
    let header = recv_header(&mut received);
    let fds: Vec<OwnedFd> = received
        .fds()
        .iter()
        // SAFETY: SCM_RIGHTS just installed these descriptors in our
        // table for us; nothing else refers to them.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let header = header?;
    if received.truncated {
        return Err(HandoverError::ControlTruncated);
    }
    let len = channel::frame_len(header);
    if len > MAX_HANDOVER {
        return Err(HandoverError::BodyTooLong);
    }
    let mut payload = vec![0u8; len];
    match fds::read_exact(CHANNEL, &mut payload) {
        Ok(true) => {}
        Ok(false) => return Err(HandoverError::Closed),
        Err(e) => return Err(os("cannot read the hand-over frame")(Errno::from_raw(e))),
    }
    match channel::parse_handover(&payload) {
        Ok(frame) => Ok(Received {
            notice: frame.notice,
            roles: frame.roles.to_vec(),
            fds,
            command: frame.command.to_vec(),
        }),
        Err(HandoverFrameError::Version(v)) => Err(HandoverError::Version(v)),
        Err(HandoverFrameError::Malformed) => Err(HandoverError::Malformed),
    }
}

/// The 4-byte header, by recvmsg (the descriptors ride on its first
/// byte), never reading past it. EOF before it: the caller is gone.
fn recv_header(into: &mut fds::Received<SCM_MAX_FD>) -> Result<[u8; HEADER], HandoverError> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match fds::recv_with_fds(CHANNEL, &mut header[got..], into) {
            Ok(0) => return Err(HandoverError::Closed),
            Ok(n) => got += n,
            Err(libc::EINTR) => {}
            Err(e) => {
                return Err(os("cannot receive the hand-over frame")(Errno::from_raw(e)));
            }
        }
    }
    Ok(header)
}

/// The whole of the COMMAND memfd, read from its start whatever its
/// offset, at most `MAX_ENCODED` bytes.
pub(super) fn read_all(fd: &OwnedFd) -> Result<Vec<u8>, HandoverError> {
    let err = os("cannot read the command");
    let size = nix::sys::stat::fstat(fd).map_err(&err)?.st_size as u64;
    if size > muontrap_command::wire::MAX_ENCODED as u64 {
        return Err(HandoverError::CommandTooLong(size));
    }
    let mut buf = vec![0u8; size as usize];
    let mut done = 0;
    while done < buf.len() {
        match nix::sys::uio::pread(fd, &mut buf[done..], done as libc::off_t) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(err(e)),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// The program expects blocking stdio, as a pipe of ours would be; the
/// BEAM makes the pipes it creates non-blocking, and O_NONBLOCK belongs to
/// the open file description the program would share.
pub(super) fn set_blocking(fd: &OwnedFd, op: &'static str) -> Result<(), HandoverError> {
    let err = os(op);
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(&err)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map_err(&err)?;
    }
    Ok(())
}
