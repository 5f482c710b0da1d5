//! Writing to the Erlang side (our stdout): relayed output bytes in plain
//! mode, control messages in framed mode (whose output never passes
//! through us), and error lines on stderr. Writes are blocking by design:
//! flow control is the window, not stdout buffering.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::protocol;

/// Prints `muontrap: <msg>` on stderr; a closed stderr is ignored.
pub fn report(msg: &str) {
    let line = format!("muontrap: {msg}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

pub struct Output {
    framed: bool,
    broken: bool,
    /// splice(2) works from the output pipe to our stdout (cleared at the
    /// first failure other than EAGAIN/EINTR/EPIPE, e.g. EINVAL for a
    /// stdout that is an O_APPEND file).
    splice: bool,
}

/// Bytes queued in a pipe (FIONREAD); 0 if unknown.
pub fn pipe_bytes(fd: BorrowedFd<'_>) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores one int through the valid pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

/// splice(2) of up to `len` bytes from `from` to `to`, as its raw result.
#[cfg(linux_native)]
fn splice_once(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> isize {
    // SAFETY: splice(2) between two fds we hold open, null offsets
    // (stream-like use); no memory is passed.
    unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    }
}

/// No splice(2) elsewhere: EINVAL, so the first call turns copying on.
#[cfg(not(linux_native))]
fn splice_once(_from: BorrowedFd<'_>, _to: BorrowedFd<'_>, _len: usize) -> isize {
    Errno::EINVAL.set();
    -1
}

/// Moves exactly `n` bytes, which are queued in the pipe `from`, to `to`:
/// by splice(2) while `*splice` holds, else (or once splice fails with
/// anything but EINTR/EAGAIN/EPIPE, e.g. EINVAL for an O_APPEND file) by
/// read + write through `scratch`, clearing `*splice`. Blocks until done;
/// errors only if `to` fails (or, impossibly, the bytes are not there).
fn move_exact(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    n: usize,
    scratch: &mut [u8],
    splice: &mut bool,
) -> Result<(), Errno> {
    let mut left = n;
    while left > 0 {
        if *splice {
            let r = splice_once(from, to, left);
            match usize::try_from(r) {
                Ok(0) => *splice = false,
                Ok(k) => left -= k,
                Err(_) => match Errno::last() {
                    Errno::EINTR => {}
                    // `to` is non-blocking and full: wait for room.
                    Errno::EAGAIN => wait_writable(to),
                    Errno::EPIPE => return Err(Errno::EPIPE),
                    e => {
                        crate::log::debug!(error = %e, "splice unavailable, copying output");
                        *splice = false;
                    }
                },
            }
            continue;
        }
        let m = left.min(scratch.len());
        match nix::unistd::read(from, &mut scratch[..m]) {
            // The queued bytes vanished: the message cannot be completed.
            Ok(0) => return Err(Errno::EIO),
            Ok(k) => {
                write_fd(to, &scratch[..k])?;
                left -= k;
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn wait_writable(fd: BorrowedFd<'_>) {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    let _ = poll(&mut fds, PollTimeout::NONE);
}

/// write(2) all of `bytes`, waiting for room on a non-blocking fd.
fn write_fd(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => wait_writable(fd),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Output {
    pub fn new(framed: bool) -> Output {
        Output {
            framed,
            broken: false,
            splice: true,
        }
    }

    /// Whether `data_from_pipe` moves bytes without copying them.
    pub fn splicing(&self) -> bool {
        self.splice
    }

    pub fn framed(&self) -> bool {
        self.framed
    }

    /// The reader is gone (EPIPE or another write error).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Relays output bytes (plain mode: framed mode never relays, as its
    /// capture needs `--handover`).
    pub fn data(&mut self, bytes: &[u8]) {
        self.write_all(bytes);
    }

    /// Relays exactly `n` bytes that are queued in `pipe` (we are its only
    /// reader and `pipe_bytes` said they are there) by splice(2) from pipe
    /// to stdout, so the bytes are never copied through our memory.
    /// Only while `splicing()`: should splice fail, the rest of these bytes
    /// is copied through a small stack buffer, and the caller reads into
    /// its own buffer from then on.
    // Not inlined: its 4 KiB buffer is on the stack only while it runs
    // (each stack page a supervisor touches is a private copy of its own).
    #[inline(never)]
    pub fn data_from_pipe(&mut self, pipe: BorrowedFd<'_>, n: usize) {
        let mut scratch = [0u8; 4096];
        if self.broken {
            return;
        }
        let stdout = io::stdout();
        if let Err(e) = move_exact(pipe, stdout.as_fd(), n, &mut scratch, &mut self.splice) {
            if e != Errno::EPIPE {
                crate::log::warn!(error = %e, "relaying output failed");
            }
            self.broken = true;
        }
    }

    pub fn started(&mut self, pid: u32) {
        if self.framed {
            self.write_all(&protocol::encode_u32(protocol::TAG_STARTED, pid));
        }
    }

    /// The program could not be exec'd (`errno`): lets the Elixir side
    /// raise `:enoent` like `System.cmd/3` without looking up PATH itself.
    pub fn exec_error(&mut self, errno: i32) {
        if self.framed {
            self.write_all(&protocol::encode_u32(
                protocol::TAG_EXEC_ERROR,
                errno as u32,
            ));
        }
    }

    /// sd_notify state changes (`KEY=VALUE` lines), framed mode only.
    pub fn notify(&mut self, body: &str) {
        if self.framed {
            self.write_all(&protocol::encode(protocol::TAG_NOTIFY, body.as_bytes()));
        }
    }

    /// The watchdog fired (`reason`: 1 timeout, 2 `WATCHDOG=trigger`).
    pub fn watchdog(&mut self, reason: u8) {
        if self.framed {
            self.write_all(&protocol::encode(protocol::TAG_WATCHDOG, &[reason]));
        }
    }

    /// The answer to a SIGNAL request, framed mode only.
    pub fn signaled(&mut self, reply: protocol::Signaled) {
        if self.framed {
            self.write_all(&protocol::encode_signaled(reply));
        }
    }

    pub fn exit(&mut self, status: i32) {
        if self.framed {
            self.write_all(&protocol::encode_u32(protocol::TAG_EXIT, status as u32));
        }
    }

    /// Reports a muontrap-side error. Framed: the ERROR message only (the Elixir side raises or logs it,
    /// so a copy on the BEAM's stderr would be noise). Plain: stderr.
    pub fn error(&mut self, msg: &str) {
        if self.framed {
            let line = format!("muontrap: {msg}");
            self.write_all(&protocol::encode(protocol::TAG_ERROR, line.as_bytes()));
        } else {
            report(msg);
        }
    }

    fn write_all(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let stdout = io::stdout();
        if let Err(e) = write_fd(stdout.as_fd(), bytes) {
            if e != Errno::EPIPE {
                crate::log::warn!(error = %e, "writing to stdout failed");
            }
            self.broken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};

    fn pipe_with(bytes: &[u8]) -> (OwnedFd, OwnedFd) {
        let (r, w) = nix::unistd::pipe().unwrap();
        write_fd(w.as_fd(), bytes).unwrap();
        (r, w)
    }

    fn read_all(fd: BorrowedFd<'_>, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        let mut got = 0;
        while got < n {
            got += nix::unistd::read(fd, &mut out[got..]).unwrap();
        }
        out
    }

    #[test]
    fn moves_exactly_n_bytes_by_splice() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let (src_r, _src_w) = pipe_with(&data);
        assert_eq!(pipe_bytes(src_r.as_fd()), data.len());
        let (dst_r, dst_w) = nix::unistd::pipe().unwrap();
        let mut splice = true;
        let mut scratch = [0u8; 16];
        move_exact(
            src_r.as_fd(),
            dst_w.as_fd(),
            30_000,
            &mut scratch,
            &mut splice,
        )
        .unwrap();
        // No splice(2) on the portable path: copied through `scratch`.
        assert_eq!(splice, cfg!(linux_native));
        assert_eq!(read_all(dst_r.as_fd(), 30_000), data[..30_000]);
        // The rest is still queued, in order.
        assert_eq!(pipe_bytes(src_r.as_fd()), 20_000);
        assert_eq!(pipe_bytes(dst_r.as_fd()), 0);
    }

    #[test]
    fn falls_back_to_copying_when_splice_is_refused() {
        // splice(2) refuses an O_APPEND file (EINVAL): copy instead.
        let path = std::env::temp_dir().join(format!("muontrap_splice_{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .unwrap();
        drop(file);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let (src_r, _src_w) = pipe_with(&data);
        let mut splice = true;
        let mut scratch = [0u8; 100];
        move_exact(
            src_r.as_fd(),
            file.as_fd(),
            10_000,
            &mut scratch,
            &mut splice,
        )
        .unwrap();
        assert!(!splice);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_closed_reader_is_epipe() {
        // SAFETY: SIG_IGN installs no handler; EPIPE instead of SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (src_r, _src_w) = pipe_with(b"hello");
        let (dst_r, dst_w) = nix::unistd::pipe().unwrap();
        drop(dst_r);
        let mut splice = true;
        let mut scratch = [0u8; 8];
        let r = move_exact(src_r.as_fd(), dst_w.as_fd(), 5, &mut scratch, &mut splice);
        assert_eq!(r, Err(Errno::EPIPE));
    }
}
