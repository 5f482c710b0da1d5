//! Plain mode without `--handover`: the output pipe of ours that the port
//! copies to stdout under the window (splice(2) while it works, else read
//! and write). Framed output goes into a handed-over pipe instead and
//! never reaches us.

#[cfg(linux_native)]
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::read;

use crate::output::{self, Output};
use crate::protocol::{ProtocolError, Window};

/// Largest single read from the output pipe.
const READ_CAP: usize = 128 * 1024;
/// Largest output pipe we ask for (the unprivileged default maximum).
#[cfg(linux_native)]
const PIPE_MAX: usize = 1024 * 1024;

/// The read buffer: the window bounds it, so a small window costs little memory.
fn read_cap(window: u32) -> usize {
    usize::try_from(window).map_or(READ_CAP, |w| w.min(READ_CAP))
}

/// A pipe larger than the default 64 KiB lets the program keep writing
/// while we wait for acks: fewer context switches per byte (measured in
/// `mix muontrap.bench`). Only for windows that could use it; failure (an
/// unprivileged process above `/proc/sys/fs/pipe-max-size`) is harmless.
#[cfg(linux_native)]
fn grow_pipe(pipe: &OwnedFd, window: u32) {
    let want = usize::try_from(window).map_or(PIPE_MAX, |w| w.min(PIPE_MAX));
    if want > 64 * 1024 {
        // SAFETY: F_SETPIPE_SZ takes an int and only resizes the pipe's buffer.
        let r = unsafe {
            libc::fcntl(
                pipe.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX),
            )
        };
        if r < 0 {
            crate::log::debug!(want, "cannot grow the output pipe");
        }
    }
}

pub(super) struct Pipe {
    fd: Option<OwnedFd>,
    window: Window,
    /// Largest read when copying (`read_cap`).
    cap: usize,
    /// Read buffer (`cap` bytes), allocated only once output has to
    /// be copied: while splice(2) works it is never needed, and a 128 KiB
    /// buffer would be most of an idle port's private memory.
    buf: Vec<u8>,
    /// Nobody can ack any more (stdin EOF, stdout gone, protocol error):
    /// read unthrottled and drop the data.
    discard: bool,
}

impl Pipe {
    pub(super) fn new(fd: Option<OwnedFd>, window: u32) -> Pipe {
        #[cfg(linux_native)]
        if let Some(fd) = &fd {
            grow_pipe(fd, window);
        }
        Pipe {
            fd,
            window: Window::new(window),
            cap: read_cap(window),
            buf: Vec::new(),
            discard: false,
        }
    }

    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    pub(super) fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    /// Stops reading (something outside holds the pipe open).
    pub(super) fn close(&mut self) {
        self.fd = None;
    }

    /// From now on, what the program writes is read and dropped.
    pub(super) fn discard(&mut self) {
        self.discard = true;
    }

    /// The window is full: nothing may be read until an ack. (Waiting
    /// for the Erlang side, not a stuck pipe.)
    pub(super) fn blocked_on_acks(&self) -> bool {
        !self.discard && self.window.available() == 0
    }

    pub(super) fn ack(&mut self, n: u64) -> Result<(), ProtocolError> {
        self.window.ack(n)
    }

    /// Moves what the window allows to `out` (once discarding: reads and
    /// drops it, unthrottled). Returns true if stdout broke.
    pub(super) fn read(&mut self, out: &mut Output) -> bool {
        let discard = self.discard;
        let Some(pipe) = &self.fd else { return false };
        let cap = self.cap;
        // While splicing, a read only tells EOF from a spurious wakeup (or
        // picks up bytes that arrived since FIONREAD): a small buffer does.
        let mut small = [0u8; 512];
        let splicing = !discard && out.splicing();
        if splicing {
            let n = output::pipe_bytes(pipe.as_fd()).min(self.window.available().min(cap));
            if n > 0 {
                out.data_from_pipe(pipe.as_fd(), n);
                self.window.sent(n);
                return out.broken();
            }
            // Nothing queued: EOF or a spurious wakeup; read() tells which.
        }
        let buf: &mut [u8] = if splicing {
            &mut small
        } else {
            if self.buf.is_empty() {
                self.buf = vec![0; cap];
            }
            &mut self.buf
        };
        let want = if discard {
            buf.len()
        } else {
            self.window.available().min(buf.len())
        };
        match read(pipe, &mut buf[..want]) {
            Ok(0) => {
                crate::log::debug!("output pipe reached EOF");
                self.fd = None;
            }
            Ok(n) if !discard => {
                out.data(&buf[..n]);
                self.window.sent(n);
                return out.broken();
            }
            Ok(_) | Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => {
                crate::log::warn!(error = %e, "reading the output pipe failed");
                self.fd = None;
            }
        }
        false
    }
}
