//! How the clone's child tells its parent that its setup or its exec
//! failed: `[stage, errno (4 bytes, native order), detail]`, then it exits.
//! Nothing written means the exec succeeded.
//!
//! - Linux clones with `CLONE_VM | CLONE_VFORK`: the child writes into a
//!   slot in the parent's memory, which the parent, suspended until the
//!   child execs or exits, reads when the clone returns (as glibc's
//!   `posix_spawn` does). No pipe is made, closed and read per start
//!   (docs/performance.md, round 17).
//! - A plain fork (macOS, FreeBSD, the `portable` build) shares no memory:
//!   a close-on-exec pipe, which reads EOF once the exec succeeded.

/// Bytes of a failure report: stage, errno (native order), detail.
pub(super) const REPORT_LEN: usize = 6;

#[cfg(linux_native)]
pub(super) use shared::{Sink, Slot};

#[cfg(not(linux_native))]
pub(super) use piped::{Sink, Slot};

#[cfg(linux_native)]
mod shared {
    use std::cell::UnsafeCell;

    use super::REPORT_LEN;

    /// The report and, last, 1 once it is written.
    pub(in crate::spawn) struct Slot(UnsafeCell<[u8; REPORT_LEN + 1]>);

    /// The child's end: where the slot is.
    #[derive(Clone, Copy)]
    pub(in crate::spawn) struct Sink(*mut [u8; REPORT_LEN + 1]);

    impl Slot {
        pub(in crate::spawn) fn new(_listen: usize) -> Result<Slot, String> {
            Ok(Slot(UnsafeCell::new([0; REPORT_LEN + 1])))
        }

        pub(in crate::spawn) fn sink(&self) -> Sink {
            Sink(self.0.get())
        }

        /// After the clone returned: the child has exec'd or exited.
        pub(in crate::spawn) fn read(self) -> Result<Option<[u8; REPORT_LEN]>, nix::Error> {
            let [report @ .., written] = self.0.into_inner();
            Ok((written == 1).then_some(report))
        }
    }

    impl Sink {
        /// In the child, before `_exit`: no allocation, no lock.
        pub(in crate::spawn) fn send(self, report: [u8; REPORT_LEN]) {
            let mut bytes = [1; REPORT_LEN + 1];
            bytes[..REPORT_LEN].copy_from_slice(&report);
            // SAFETY: the slot lives in the parent's frame, which outlives
            // the clone; the parent is suspended (CLONE_VFORK) until we
            // exit, and reads it only then. We share its memory (CLONE_VM).
            unsafe { std::ptr::write_volatile(self.0, bytes) };
        }
    }
}

#[cfg(not(linux_native))]
mod piped {
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};

    use nix::errno::Errno;
    use nix::unistd::read;

    use super::super::{listen_fds, new_pipe};
    use super::REPORT_LEN;

    /// The pipe's read end, and its write end for the child.
    pub(in crate::spawn) struct Slot {
        read: OwnedFd,
        write: Option<OwnedFd>,
    }

    /// The child's end: the write end's number.
    #[derive(Clone, Copy)]
    pub(in crate::spawn) struct Sink(RawFd);

    impl Slot {
        /// `listen`: how many LISTEN descriptors the child moves onto
        /// 3, 4, ...: the write end is kept above them.
        pub(in crate::spawn) fn new(listen: usize) -> Result<Slot, String> {
            let (read, write) = new_pipe()?;
            let write = listen_fds::above_targets(write, listen)
                .map_err(|e| format!("cannot move the report pipe: {}", e.desc()))?;
            Ok(Slot {
                read,
                write: Some(write),
            })
        }

        pub(in crate::spawn) fn sink(&self) -> Sink {
            Sink(self.write.as_ref().map_or(-1, AsRawFd::as_raw_fd))
        }

        /// Blocks until exec succeeded (EOF) or the child reported; an
        /// incomplete report is `EIO`.
        pub(in crate::spawn) fn read(mut self) -> Result<Option<[u8; REPORT_LEN]>, nix::Error> {
            // Ours would keep the pipe from EOF.
            drop(self.write.take());
            let mut buf = [0u8; REPORT_LEN];
            let mut got = 0;
            while got < buf.len() {
                match read(&self.read, &mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            match got {
                0 => Ok(None),
                REPORT_LEN => Ok(Some(buf)),
                _ => Err(Errno::EIO),
            }
        }
    }

    impl Sink {
        /// In the child, before `_exit`: write(2) is async-signal-safe.
        pub(in crate::spawn) fn send(self, report: [u8; REPORT_LEN]) {
            // SAFETY: write(2) of a stack buffer to a descriptor we hold.
            unsafe { libc::write(self.0, report.as_ptr().cast(), report.len()) };
        }
    }
}
