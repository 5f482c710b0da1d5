//! The notification socket's syscalls: create and bind it, receive one
//! datagram with its sender's credentials, and close every descriptor that
//! came with it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

/// Largest datagram read; a longer one is dropped.
pub const MAX_DATAGRAM: usize = 4096;

/// The kernel's limit of descriptors in one message (`SCM_MAX_FD`). The
/// control buffer has room for all of them beside the credentials: with
/// less, a datagram carrying more would come with MSG_CTRUNC, and nix
/// decodes nothing of a truncated buffer, although the kernel installed
/// the descriptors that fit: they could not be closed.
const SCM_MAX_FD: usize = 253;

/// The control buffer `recv` needs, allocated once.
pub fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::ucred, [RawFd; SCM_MAX_FD])
}

/// 16 hex digits from getrandom(2).
fn random_hex() -> Result<String, Errno> {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into the
    // live stack buffer. The raw syscall, not libc's wrapper, which older
    // C libraries lack; 8 bytes never come back short from the urandom pool.
    let r = unsafe { libc::syscall(libc::SYS_getrandom, bytes.as_mut_ptr(), bytes.len(), 0) };
    if r != bytes.len() as libc::c_long {
        return Err(Errno::last());
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A bound `SOCK_DGRAM` socket in the abstract namespace, close-on-exec
/// and non-blocking, with `SO_PASSCRED` so every datagram names its
/// sender; and its name, without the leading NUL.
pub fn create() -> Result<(OwnedFd, String), String> {
    let err = |what: &str, e: Errno| {
        format!(
            "cannot create the notification socket: {what}: {}",
            e.desc()
        )
    };
    let name = format!(
        "muontrap-notify-{}-{}",
        std::process::id(),
        random_hex().map_err(|e| err("getrandom", e))?
    );
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| err("socket", e))?;
    setsockopt(&sock, sockopt::PassCred, &true).map_err(|e| err("SO_PASSCRED", e))?;
    let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(|e| err("address", e))?;
    bind(sock.as_raw_fd(), &addr).map_err(|e| err("bind", e))?;
    Ok((sock, name))
}

/// One datagram, its descriptors already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// `len` bytes of the body buffer; `pid` from `SCM_CREDENTIALS` (0 if
    /// none came, or the sender is in a pid namespace we cannot see into).
    Datagram { len: usize, pid: i32 },
    /// Longer than the body buffer: dropped.
    TooLong,
    /// Nothing (more) queued.
    Empty,
}

/// Receives one datagram without blocking. Every descriptor it carried is
/// owned at once and closed before this returns, whatever the datagram
/// says: that is also the answer to `BARRIER=1`.
pub fn recv(sock: &OwnedFd, body: &mut [u8], control: &mut Vec<u8>) -> Result<Received, Errno> {
    let mut iov = [IoSliceMut::new(body)];
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut *control), flags) {
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Ok(Received::Empty),
            r => break r?,
        }
    };
    let (len, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
    let mut pid = 0;
    let mut fds: Vec<OwnedFd> = Vec::new();
    match msg.cmsgs() {
        Ok(cmsgs) => {
            for cmsg in cmsgs {
                match cmsg {
                    ControlMessageOwned::ScmCredentials(c) => pid = c.pid(),
                    ControlMessageOwned::ScmRights(raw) => {
                        // SAFETY: SCM_RIGHTS just installed these
                        // descriptors in our table for us; nothing else
                        // refers to them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                    _ => {}
                }
            }
        }
        // Cannot happen with room for SCM_MAX_FD descriptors.
        Err(_) => crate::log::warn!("notification control data truncated"),
    }
    if !fds.is_empty() {
        crate::log::trace!(count = fds.len(), "closing received descriptors");
    }
    drop(fds);
    if truncated {
        crate::log::debug!(pid, "notification datagram too long, dropped");
        return Ok(Received::TooLong);
    }
    Ok(Received::Datagram { len, pid })
}
