//! Descriptors passed with SCM_RIGHTS on the NIF's `SOCK_STREAM` sockets
//! (the spawner's request socket, each command's channel), and the small
//! socket chores around them.
//!
//! A descriptor is a capability: the supervisor never opens anything of
//! the BEAM's by name, so a caller that died before its command started
//! cannot make it write into whatever reused that descriptor number.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use muontrap_wire::handover::{MAX_FDS, MAX_MESSAGE_FDS};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A connected `SOCK_STREAM` pair, both ends close-on-exec and blocking.
pub fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    crate::sys::socket_pair(libc::SOCK_STREAM)
}

pub use crate::sys::set_nonblocking;

/// The size of `sock`'s send buffer (`SO_SNDBUF`).
pub fn send_buffer(sock: &OwnedFd) -> io::Result<usize> {
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into `size`, whose length `len` gives.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut size as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(usize::try_from(size).unwrap_or(0))
}

/// Whether `fd` became readable (or hung up) within `timeout`.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll on one pollfd we own.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// Sends all of `bytes` (one whole frame) without waiting, with `fds` on
/// its first byte. A frame sent in part would corrupt the stream, so a
/// short send (which a frame this small never meets) is an error too.
pub fn send(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_MESSAGE_FDS || bytes.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below stay valid
    // for the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
    }
    // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough
    // for one cmsghdr carrying `data_len` bytes, so CMSG_FIRSTHDR is
    // non-null and CMSG_DATA has room for the fds.
    if !fds.is_empty() {
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        }
    }
    loop {
        // SAFETY: msg is fully initialised above. MSG_NOSIGNAL: a peer
        // that is gone is EPIPE, not a SIGPIPE to the BEAM.
        let r = unsafe {
            libc::sendmsg(
                sock.as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if r >= 0 {
            return if r as usize == bytes.len() {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::EIO))
            };
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn passes_descriptors_on_a_frame() {
        let (a, b) = stream_pair().unwrap();
        let (r, w) = stream_pair().unwrap();
        send(&a, b"\0\0\0\x01x", &[w.as_raw_fd()]).unwrap();
        drop(w);
        let mut body = [0u8; 5];
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: body.as_mut_ptr().cast(),
            iov_len: body.len(),
        };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = unsafe { libc::recvmsg(b.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        assert_eq!(n, 5);
        assert_eq!(&body, b"\0\0\0\x01x");
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        assert!(!cmsg.is_null());
        let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
        let got = unsafe { OwnedFd::from_raw_fd(fd) };
        // The same socket: a write shows up at `r`.
        assert_eq!(
            unsafe { libc::write(got.as_raw_fd(), b"hi".as_ptr().cast(), 2) },
            2
        );
        assert!(wait_readable(r.as_raw_fd(), Duration::from_secs(5)));
    }

    #[test]
    fn refuses_empty_frames_and_too_many_descriptors() {
        let (a, _b) = stream_pair().unwrap();
        assert!(send(&a, b"", &[]).is_err());
        let many = vec![a.as_raw_fd(); MAX_MESSAGE_FDS + 1];
        assert!(send(&a, b"x", &many).is_err());
    }
}
