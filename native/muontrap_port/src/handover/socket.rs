//! The rendezvous: connect to the BEAM's abstract SOCK_SEQPACKET socket,
//! check who listens on it, wait for its one message and own the
//! descriptors it carries.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    getsockopt, recvmsg, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr,
};

use super::{HandoverError, MAX_BODY};
use crate::signals;

/// The kernel's per-message limit (`SCM_MAX_FD`). The control buffer has
/// room for that many, not just `MAX_FDS`: with MSG_CTRUNC the kernel
/// still installs the descriptors that fit, but nix will not decode them,
/// so they could not be closed. More than `MAX_FDS` is refused once they
/// are owned.
const SCM_MAX_FD: usize = 253;

/// More than a TERMINATE message: the BEAM sends nothing else this early.
const MAX_EARLY_INPUT: usize = 64 * 1024;

fn os(op: &'static str) -> impl Fn(Errno) -> HandoverError {
    move |errno| HandoverError::Os { op, errno }
}

pub(super) fn connect(name: &str) -> Result<OwnedFd, HandoverError> {
    let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(os("invalid socket name"))?;
    let sock = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(os("cannot create a socket"))?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr)
        .map_err(os("cannot connect to the hand-over socket"))?;
    Ok(sock)
}

/// The listener's pid (recorded by the kernel at listen(2)) must be the
/// BEAM's: once the BEAM side is gone, anyone could bind the same name.
pub(super) fn check_peer(sock: &OwnedFd, beam: i32) -> Result<(), HandoverError> {
    let cred = getsockopt(sock, sockopt::PeerCredentials)
        .map_err(os("cannot get the hand-over socket's peer"))?;
    if cred.pid() != beam {
        return Err(HandoverError::WrongPeer {
            beam,
            peer: cred.pid(),
        });
    }
    Ok(())
}

/// Blocks until the socket is readable (the message, or its error). Stdin
/// is watched too: EOF means the caller is gone and nobody will send; any
/// bytes (a TERMINATE) are kept for the relay.
pub(super) fn wait(
    sock: &OwnedFd,
    sigfd: &SignalFd,
    early: &mut Vec<u8>,
) -> Result<(), HandoverError> {
    let stdin = std::io::stdin();
    loop {
        let mut fds = [
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(os("poll failed")(e)),
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let (sock_ready, stdin_ready, sig_ready) = (ready(0), ready(1), ready(2));
        if sig_ready {
            if let Some(sig) = signals::drain(sigfd).terminate {
                return Err(HandoverError::Interrupted(sig));
            }
        }
        // Before the socket: a caller that is gone must not get a program.
        if stdin_ready {
            read_stdin(early)?;
        }
        if sock_ready {
            return Ok(());
        }
    }
}

fn read_stdin(early: &mut Vec<u8>) -> Result<(), HandoverError> {
    let mut buf = [0u8; 4096];
    match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
        Ok(0) => Err(HandoverError::StdinClosed),
        Ok(n) if early.len() + n > MAX_EARLY_INPUT => Err(HandoverError::TooMuchInput),
        Ok(n) => {
            early.extend_from_slice(&buf[..n]);
            Ok(())
        }
        Err(Errno::EINTR | Errno::EAGAIN) => Ok(()),
        Err(e) => Err(os("cannot read stdin")(e)),
    }
}

/// Receives the message: (role bytes, descriptors in order). Every
/// descriptor is owned before anything is checked, so none leaks.
/// MSG_CTRUNC cannot come from SCM_RIGHTS with room for `SCM_MAX_FD`; it
/// is still refused, should other control data ever crowd them out.
pub(super) fn recv(sock: &OwnedFd) -> Result<(Vec<u8>, Vec<OwnedFd>), HandoverError> {
    let mut body = [0u8; MAX_BODY];
    let mut control = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(&mut body)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => {}
            r => break r.map_err(os("cannot receive the hand-over message"))?,
        }
    };
    let (len, flags) = (msg.bytes, msg.flags);
    let cmsgs = msg.cmsgs().map_err(|_| HandoverError::ControlTruncated)?;
    let mut fds = Vec::new();
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: SCM_RIGHTS just installed this descriptor in our
                // table for us; nothing else refers to it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(HandoverError::BodyTooLong);
    }
    // Counts (and an empty message, or EOF: both read 0 bytes) are
    // `sort`'s to check.
    Ok((body[..len].to_vec(), fds))
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
