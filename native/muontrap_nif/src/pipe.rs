//! Pipes between the BEAM and a command's stdio: creation with a capacity
//! that is the flow-control window, non-blocking reads of its output and
//! writes of its input.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// The largest pipe we ask for: the default `/proc/sys/fs/pipe-max-size`,
/// above which an unprivileged process is refused. The window is clamped
/// to this once, in `make`; reads and writes are then bounded by the pipe
/// itself (what is queued, what is free), so they need no clamp of their own.
#[cfg(linux_native)]
const MAX_PIPE: usize = 1 << 20;
/// The smallest pipe the kernel makes: one page.
#[cfg(linux_native)]
const MIN_PIPE: usize = 4096;
/// What a read asks for when FIONREAD reports nothing (EOF or EAGAIN next).
const PROBE_READ: usize = 64 * 1024;

/// Which end of a pipe the BEAM keeps: that end is non-blocking (it is
/// polled with `enif_select`); the other end, handed to the port binary,
/// is made blocking there, since it is the program's stdio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ours {
    /// The BEAM reads (the program's stdout or stderr).
    Read,
    /// The BEAM writes (the program's stdin).
    Write,
}

/// A pipe whose capacity is about `window` bytes (one page at least, the
/// system's pipe-max-size at most): `(ours, theirs)`, both close-on-exec,
/// ours non-blocking.
pub fn make(window: usize, ours: Ours) -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = crate::sys::pipe()?;
    // Elsewhere a pipe's capacity is the system's (macOS: 16 KiB growing
    // to 64 KiB); the window then bounds only what is read at once.
    #[cfg(linux_native)]
    {
        let size =
            libc::c_int::try_from(window.clamp(MIN_PIPE, MAX_PIPE)).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl with an integer argument. Failure (EPERM above the
        // limit for unprivileged users) leaves the default 64 KiB.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    }
    #[cfg(not(linux_native))]
    let _ = window;
    let pair = match ours {
        Ours::Read => (read, write),
        Ours::Write => (write, read),
    };
    crate::sys::set_nonblocking(&pair.0)?;
    Ok(pair)
}

/// Bytes queued in the pipe (FIONREAD); 0 if unknown.
pub fn queued_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores one int through the valid pointer.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

/// How many bytes to ask for of a pipe holding `queued`: all of them (at most the pipe's
/// capacity), at most `max`, and never 0, which `read` would report as EOF.
pub fn read_size_of(queued: usize, max: usize) -> usize {
    let max = max.max(1);
    match queued {
        0 => PROBE_READ.min(max),
        queued => queued.min(max),
    }
}

/// One non-blocking read into `buf`: `Ok(0)` is EOF, EAGAIN an error the
/// caller waits on.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: read into a buffer we own, of its own length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// One non-blocking write of what fits of `buf` (at most the pipe's free
/// space): the count written, EAGAIN when the pipe is full, EPIPE once
/// every reader (the program and its descendants) has closed its stdin.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: write from a buffer we borrow, of its own length. The
        // BEAM ignores SIGPIPE, so a reader that is gone is EPIPE.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// A close-on-exec anonymous file holding `bytes` (its offset at the
/// end: the reader reads from 0).
pub fn memfd_with(bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = crate::sys::anonymous_file()?;
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        // SAFETY: writes at most rest.len() bytes from a live slice.
        let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        match n {
            n if n > 0 => done += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_is_queued_then_eagain_then_eof() {
        let (r, w) = make(65_536, Ours::Read).unwrap();
        assert_eq!(
            read_size_of(queued_bytes(r.as_raw_fd()), 1 << 30),
            PROBE_READ
        );
        let mut buf = [0u8; 16];
        let e = read(r.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
        assert_eq!(
            unsafe { libc::write(w.as_raw_fd(), b"abc".as_ptr().cast(), 3) },
            3
        );
        assert_eq!(read_size_of(queued_bytes(r.as_raw_fd()), 1 << 30), 3);
        assert_eq!(read_size_of(queued_bytes(r.as_raw_fd()), 2), 2);
        assert_eq!(read(r.as_raw_fd(), &mut buf).unwrap(), 3);
        drop(w);
        assert_eq!(read(r.as_raw_fd(), &mut buf).unwrap(), 0);
    }

    #[cfg(linux_native)]
    #[test]
    fn capacity_follows_the_window() {
        let (_r, w) = make(262_144, Ours::Read).unwrap();
        let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert!(size >= 262_144 || size == 65_536, "{size}");
    }

    #[test]
    fn writes_until_full_then_eagain_then_epipe() {
        // SAFETY: the test process must not die of SIGPIPE, as the BEAM does not.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (w, r) = make(4096, Ours::Write).unwrap();
        let chunk = vec![7u8; 1 << 16];
        let mut total = 0;
        let err = loop {
            match write(w.as_raw_fd(), &chunk) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
        assert!(total >= 4096, "{total}");
        drop(r);
        let e = write(w.as_raw_fd(), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }
}
