//! The few descriptor calls whose close-on-exec form is Linux's own
//! (`pipe2`, `SOCK_CLOEXEC`, `memfd_create`), with the stand-ins macOS
//! and FreeBSD get (docs/portability.md).
//!
//! The stand-ins set `FD_CLOEXEC` right after the call. In the BEAM,
//! which is multi-threaded, a fork and exec by another thread in between
//! could inherit the new descriptor: the BEAM itself never forks (ports
//! start from its `erl_child_setup`), and our spawner closes every
//! descriptor it did not ask for, so only another NIF that forks could
//! see it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Two new descriptors `fds` as owned ones.
fn owned(fds: [RawFd; 2]) -> (OwnedFd, OwnedFd) {
    // SAFETY: the caller's call just made both; nobody else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[cfg(not(linux_native))]
fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Makes `fd` non-blocking: one `FIONBIO` call, where `fcntl` would
/// take two (read the flags, then set them).
pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int through the valid pointer.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &on) })?;
    Ok(())
}

/// A pipe, `(read, write)`, both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array.
    #[cfg(linux_native)]
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe writes two fds into the array.
    #[cfg(not(linux_native))]
    cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    let pair = owned(fds);
    #[cfg(not(linux_native))]
    {
        set_cloexec(&pair.0)?;
        set_cloexec(&pair.1)?;
    }
    Ok(pair)
}

/// A connected Unix socket pair of `kind`, both ends close-on-exec; on
/// macOS, a write to a peer that is gone is EPIPE, never SIGPIPE
/// (`SO_NOSIGPIPE`: it has no `MSG_NOSIGNAL`).
pub fn socket_pair(kind: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    #[cfg(linux_native)]
    let kind = kind | libc::SOCK_CLOEXEC;
    // SAFETY: socketpair writes two new descriptors into the array.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) })?;
    let pair = owned(fds);
    #[cfg(not(linux_native))]
    for fd in [&pair.0, &pair.1] {
        set_cloexec(fd)?;
        #[cfg(target_vendor = "apple")]
        no_sigpipe(fd)?;
    }
    Ok(pair)
}

#[cfg(target_vendor = "apple")]
fn no_sigpipe(fd: &OwnedFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one int from a live local.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// A close-on-exec file of its own, in memory where the system allows:
/// a memfd on Linux, elsewhere a file in the temporary directory that is
/// unlinked at once.
pub fn anonymous_file() -> io::Result<OwnedFd> {
    #[cfg(linux_native)]
    {
        // SAFETY: a NUL-terminated name and flags; the fd is ours on success.
        let fd =
            cvt(unsafe { libc::memfd_create(c"muontrap-command".as_ptr(), libc::MFD_CLOEXEC) })?;
        // SAFETY: a new descriptor nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(linux_native))]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut template = std::env::temp_dir()
            .join("muontrap-command.XXXXXX")
            .as_os_str()
            .as_bytes()
            .to_vec();
        template.push(0);
        // SAFETY: mkstemp rewrites the NUL-terminated template in place.
        let fd = cvt(unsafe { libc::mkstemp(template.as_mut_ptr().cast()) })?;
        // SAFETY: a new descriptor nobody else owns.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the NUL-terminated name mkstemp just created.
        unsafe { libc::unlink(template.as_ptr().cast()) };
        set_cloexec(&file)?;
        Ok(file)
    }
}
