//! The BEAM's side of the descriptor hand-over (docs/protocol.md,
//! "Descriptor hand-over"): a listening abstract Unix socket with a random
//! name, the check that the one peer accepted is the port binary, and the
//! SCM_RIGHTS message that gives it the descriptors.
//!
//! A descriptor is a capability: the port never opens anything of the
//! BEAM's by name, so a caller that died before the port started cannot
//! make it write into whatever reused that descriptor number.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use muontrap_wire::handover::{socket_name, MAX_FDS, MAX_MESSAGE_FDS};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// 64 random bits from the kernel, so the name cannot be guessed ahead.
fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the array.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// `sockaddr_un` for an abstract name (leading NUL, no terminator).
fn abstract_addr(name: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_bytes();
    if bytes.len() + 1 > addr.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in addr.sun_path[1..].iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
    let len = libc::socklen_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
    Ok((addr, len))
}

/// A non-blocking, close-on-exec SOCK_SEQPACKET listener on a fresh random
/// abstract name, and that name.
pub fn listen() -> io::Result<(OwnedFd, String)> {
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() } as u32;
    let name = socket_name(pid, random_u64()?);
    let flags = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: socket() with constant arguments; the fd is ours on success.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, flags, 0) })?;
    // SAFETY: fd is a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (addr, len) = abstract_addr(&name)?;
    // SAFETY: addr is a valid sockaddr_un of length len.
    cvt(unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), len) })?;
    // SAFETY: listen on our bound socket.
    cvt(unsafe { libc::listen(sock.as_raw_fd(), 4) })?;
    Ok((sock, name))
}

/// Accepts one pending connection (close-on-exec), or `None` if none is
/// pending (EAGAIN).
pub fn accept(listener: RawFd) -> io::Result<Option<OwnedFd>> {
    loop {
        // SAFETY: accept4 on a listening socket, not asking for the address.
        let r = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        match cvt(r) {
            // SAFETY: a new descriptor nobody else owns.
            Ok(fd) => return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            // The peer gave up between connect and accept: none pending.
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The pid of the process that connected `conn` (`SO_PEERCRED`).
pub fn peer_pid(conn: &OwnedFd) -> io::Result<u32> {
    // SAFETY: ucred is plain data.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of `len` bytes.
    cvt(unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    })?;
    Ok(cred.pid as u32)
}

/// Sends `fds` with SCM_RIGHTS in one message whose body is their role
/// bytes, in the same order.
pub fn send_fds(conn: &OwnedFd, roles: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() != roles.len() || fds.is_empty() || fds.len() > MAX_MESSAGE_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: roles.as_ptr().cast_mut().cast(),
        iov_len: roles.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below stay valid
    // for the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough
    // for one cmsghdr carrying `data_len` bytes, so CMSG_FIRSTHDR is
    // non-null and CMSG_DATA has room for the fds.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
    }
    loop {
        // SAFETY: msg is fully initialised above. MSG_NOSIGNAL: a peer
        // that is gone is EPIPE, not a SIGPIPE to the BEAM.
        let r = unsafe {
            libc::sendmsg(
                conn.as_raw_fd(),
                &msg,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if r >= 0 {
            return Ok(());
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

    fn connect(name: &str) -> OwnedFd {
        let flags = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
        let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, flags, 0) }).unwrap();
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let (addr, len) = abstract_addr(name).unwrap();
        cvt(unsafe { libc::connect(sock.as_raw_fd(), (&raw const addr).cast(), len) }).unwrap();
        sock
    }

    #[test]
    fn names_carry_the_pid_and_differ() {
        let (_a, n1) = listen().unwrap();
        let (_b, n2) = listen().unwrap();
        assert_ne!(n1, n2);
        let pid = muontrap_wire::handover::parse_name(&n1);
        assert_eq!(pid, Some(std::process::id() as i32));
    }

    #[test]
    fn hands_over_descriptors_with_their_roles() {
        let (listener, name) = listen().unwrap();
        assert!(accept(listener.as_raw_fd()).unwrap().is_none());
        let client = connect(&name);
        let conn = accept(listener.as_raw_fd()).unwrap().expect("a peer");
        assert_eq!(peer_pid(&conn).unwrap(), std::process::id());
        let (r, w) = nix_pipe();
        send_fds(&conn, &[1], &[w.as_raw_fd()]).unwrap();
        drop(w);
        let got = recv_one(&client);
        assert_eq!(got.0, vec![1]);
        // The received descriptor is the same pipe: a write shows up in `r`.
        let msg = b"through";
        assert_eq!(
            unsafe { libc::write(got.1, msg.as_ptr().cast(), msg.len()) },
            msg.len() as isize
        );
        unsafe { libc::close(got.1) };
        let mut buf = [0u8; 16];
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), 16) };
        assert_eq!(&buf[..n as usize], msg);
    }

    #[test]
    fn refuses_mismatched_roles() {
        let (listener, name) = listen().unwrap();
        let _client = connect(&name);
        let conn = accept(listener.as_raw_fd()).unwrap().unwrap();
        assert!(send_fds(&conn, &[1, 2], &[0]).is_err());
        assert!(send_fds(&conn, &[], &[]).is_err());
    }

    fn nix_pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).unwrap();
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn recv_one(sock: &OwnedFd) -> (Vec<u8>, RawFd) {
        let mut body = [0u8; 64];
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
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        assert!(n > 0);
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        assert!(!cmsg.is_null());
        let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
        (body[..n as usize].to_vec(), fd)
    }
}
