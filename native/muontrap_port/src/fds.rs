//! Descriptor plumbing for the spawner and the supervisor's start, in raw
//! libc on stack buffers: the spawner must not allocate between forks
//! (its heap pages stay shared with every supervisor), and right after a
//! fork only plain system calls are wanted.

use std::ffi::CStr;
use std::os::fd::RawFd;

/// Closes every descriptor from `first` on: close_range(2) where the
/// kernel has it, else one close(2) per possible number.
pub fn close_from(first: RawFd) {
    #[cfg(linux_native)]
    {
        // SAFETY: close_range(2) on integers; closing is what we want.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
        if r == 0 {
            return;
        }
    }
    // SAFETY: sysconf(3) takes an integer.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let max = if max <= 0 {
        1024
    } else {
        max.min(1 << 20) as RawFd
    };
    for fd in first..max {
        close(fd);
    }
}

/// close(2), errors ignored: the descriptor is gone either way.
/// Closes every descriptor from `first` on but the end notices' pipe
/// (`NOTICE_FD`, Linux only), which the spawner and its supervisors keep:
/// the spawner's and each supervisor's cleanup of what they inherited.
pub fn close_from_but_notices(first: RawFd) {
    #[cfg(linux_native)]
    {
        use muontrap_wire::channel::NOTICE_FD;
        for fd in first..NOTICE_FD {
            close(fd);
        }
        close_from(first.max(NOTICE_FD + 1));
    }
    #[cfg(not(linux_native))]
    close_from(first);
}

pub fn close(fd: RawFd) {
    // SAFETY: close(2) on an integer this process no longer needs.
    unsafe { libc::close(fd) };
}

/// write(2) all of `bytes` to a blocking `fd`; false on any error.
pub fn write_all(fd: RawFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: write(2) from a live slice of the length given.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(n) => bytes = &bytes[n..],
            Err(_) if last_errno() == libc::EINTR => {}
            Err(_) => return false,
        }
    }
    true
}

/// read(2) into `buf` until it is full; false on EOF or error first.
pub fn read_exact(fd: RawFd, buf: &mut [u8]) -> Result<bool, i32> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: read(2) into a live slice of the length given.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(_) if last_errno() == libc::EINTR => {}
            Err(_) => return Err(last_errno()),
        }
    }
    Ok(true)
}

/// The start of a small file (one read), into `buf`.
#[cfg_attr(not(linux_native), allow(dead_code))]
pub fn read_file(path: &CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: open(2) of a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: read(2) into a live slice of the length given.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    close(fd);
    usize::try_from(n).ok()
}

pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A connected pair of close-on-exec `SOCK_STREAM` Unix sockets.
pub fn stream_pair() -> Option<(RawFd, RawFd)> {
    let mut fds = [-1 as RawFd; 2];
    #[cfg(linux_native)]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    #[cfg(not(linux_native))]
    let kind = libc::SOCK_STREAM;
    // SAFETY: socketpair(2) fills the two-int array it is given.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return None;
    }
    #[cfg(not(linux_native))]
    for fd in fds {
        // SAFETY: fcntl(2) on descriptors we own. Not atomic with their
        // creation, which matters only where another thread could fork:
        // the spawner has none.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Some((fds[0], fds[1]))
}

/// Descriptors received with SCM_RIGHTS, at most `N` kept; the rest are
/// closed at once and mark the whole as `truncated`, as does MSG_CTRUNC.
pub struct Received<const N: usize> {
    fds: [RawFd; N],
    len: usize,
    pub truncated: bool,
}

impl<const N: usize> Received<N> {
    pub fn new() -> Self {
        Received {
            fds: [-1; N],
            len: 0,
            truncated: false,
        }
    }

    pub fn fds(&self) -> &[RawFd] {
        &self.fds[..self.len]
    }

    pub fn close_all(&mut self) {
        for &fd in self.fds() {
            close(fd);
        }
        self.len = 0;
    }

    fn push(&mut self, fd: RawFd) {
        if self.len < N {
            self.fds[self.len] = fd;
            self.len += 1;
        } else {
            close(fd);
            self.truncated = true;
        }
    }
}

/// Room for one SCM_RIGHTS message of `N` descriptors: its header (at
/// most three words with its padding, on every platform) and the ints,
/// word-aligned as `cmsghdr` needs. Sized to what it holds: it was 32
/// bytes a descriptor, 8 KB on the stack of every supervisor's hand-over
/// (docs/performance.md, round 17). More than `N` do not fit: MSG_CTRUNC.
#[repr(C)]
struct Control<const N: usize> {
    header: [usize; 3],
    fds: [RawFd; N],
}

/// One recvmsg(2) into `buf`, adding the descriptors that came to `into`
/// (close-on-exec). Returns the bytes read (0: EOF) or the errno.
pub fn recv_with_fds<const N: usize>(
    sock: RawFd,
    buf: &mut [u8],
    into: &mut Received<N>,
) -> Result<usize, i32> {
    let mut control = Control::<N> {
        header: [0; 3],
        fds: [0; N],
    };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no buffers yet).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut Control<N>).cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    #[cfg(linux_native)]
    let flags = libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(linux_native))]
    let flags = 0;
    // SAFETY: recvmsg(2) into the live buffers msg points at.
    let n = unsafe { libc::recvmsg(sock, &mut msg, flags) };
    let Ok(n) = usize::try_from(n) else {
        return Err(last_errno());
    };
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        into.truncated = true;
    }
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // within msg_controllen; the data of an SCM_RIGHTS message is ints.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = c.cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = data.add(i).read_unaligned();
                    #[cfg(not(linux_native))]
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                    into.push(fd);
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{
        sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    };

    #[test]
    fn the_control_buffer_holds_its_descriptors() {
        fn room<const N: usize>() -> bool {
            let ints = (N * std::mem::size_of::<RawFd>()) as libc::c_uint;
            // SAFETY: CMSG_SPACE is arithmetic on its argument.
            std::mem::size_of::<Control<N>>() >= unsafe { libc::CMSG_SPACE(ints) } as usize
        }
        assert!(room::<1>() && room::<4>() && room::<32>() && room::<253>());
    }

    fn pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    fn send(sock: RawFd, bytes: &[u8], fds: &[RawFd]) {
        let iov = [std::io::IoSlice::new(bytes)];
        let rights = [ControlMessage::ScmRights(fds)];
        sendmsg::<()>(sock, &iov, &rights, MsgFlags::empty(), None).unwrap();
    }

    #[test]
    fn receives_descriptors_and_closes_the_extra_ones() {
        let (a, b) = pair();
        let (x, y) = pair();
        send(a.as_raw_fd(), b"hello", &[x.as_raw_fd(), y.as_raw_fd()]);
        let mut buf = [0u8; 5];
        let mut got = Received::<1>::new();
        assert_eq!(recv_with_fds(b.as_raw_fd(), &mut buf, &mut got), Ok(5));
        assert_eq!(&buf, b"hello");
        assert_eq!(got.fds().len(), 1);
        assert!(got.truncated);
        got.close_all();
        drop(a);
        assert_eq!(recv_with_fds(b.as_raw_fd(), &mut buf, &mut got), Ok(0));
    }

    #[test]
    fn reads_exactly_and_sees_eof() {
        let (a, b) = pair();
        assert!(write_all(a.as_raw_fd(), b"abcdef"));
        let mut buf = [0u8; 4];
        assert_eq!(read_exact(b.as_raw_fd(), &mut buf), Ok(true));
        assert_eq!(&buf, b"abcd");
        drop(a);
        assert_eq!(read_exact(b.as_raw_fd(), &mut buf), Ok(false));
    }
}
