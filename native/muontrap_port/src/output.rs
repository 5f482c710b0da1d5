//! Writing to the Erlang side (our stdout) in plain or framed form, and
//! error lines on stderr. Writes are blocking by design: flow control is
//! the window, not stdout buffering.

use std::io::{self, Write};
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::protocol::{self, HEADER_LEN};

/// Prints `muontrap: <msg>` on stderr; a closed stderr is ignored.
pub fn report(msg: &str) {
    let line = format!("muontrap: {msg}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

pub struct Output {
    framed: bool,
    broken: bool,
}

impl Output {
    pub fn new(framed: bool) -> Output {
        Output {
            framed,
            broken: false,
        }
    }

    pub fn framed(&self) -> bool {
        self.framed
    }

    /// The reader is gone (EPIPE or another write error).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Sends `buf[HEADER_LEN..HEADER_LEN + n]` as output. The first
    /// `HEADER_LEN` bytes are scratch space so a DATA frame goes out in one
    /// write.
    pub fn data(&mut self, buf: &mut [u8], n: usize) {
        if self.framed {
            buf[..HEADER_LEN].copy_from_slice(&protocol::encode_header(protocol::TAG_DATA, n));
            self.write_all(&buf[..HEADER_LEN + n]);
        } else {
            self.write_all(&buf[HEADER_LEN..HEADER_LEN + n]);
        }
    }

    pub fn started(&mut self, pid: u32) {
        if self.framed {
            self.write_all(&protocol::encode_u32(protocol::TAG_STARTED, pid));
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

    fn write_all(&mut self, mut bytes: &[u8]) {
        let stdout = io::stdout();
        let fd = stdout.as_fd();
        while !bytes.is_empty() && !self.broken {
            match nix::unistd::write(fd, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EINTR) => {}
                // Inherited O_NONBLOCK stdout: wait for room.
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::NONE);
                }
                Err(e) => {
                    if e != Errno::EPIPE {
                        tracing::warn!(error = %e, "writing to stdout failed");
                    }
                    self.broken = true;
                }
            }
        }
    }
}
