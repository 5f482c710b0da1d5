//! The LISTEN descriptors in the child: moved onto fds 3, 4, ... in the
//! order received, without FD_CLOEXEC, whatever numbers they had in the
//! port. It runs between clone and exec, so raw syscalls only; they go
//! through `FdTable` so the order of the moves is tested on a model.

use std::os::fd::RawFd;
#[cfg(not(linux_native))]
use std::os::fd::{AsRawFd, OwnedFd};

#[cfg(not(linux_native))]
use nix::fcntl::{fcntl, FcntlArg};

use crate::handover::MAX_FDS;

/// Where sd_listen_fds(3) looks first (`SD_LISTEN_FDS_START`).
const FIRST: RawFd = 3;

/// One past the last target for `n` descriptors: the lowest fd the
/// program must not get.
pub(super) fn end(n: usize) -> RawFd {
    // At most MAX_FDS (the hand-over's limit): no overflow.
    FIRST + n.min(MAX_FDS) as RawFd
}

/// The fd-table calls the placement makes; `Err` is the errno.
pub(super) trait FdTable {
    /// F_DUPFD_CLOEXEC: a copy at the lowest free fd from `min` up.
    fn dup_from(&mut self, fd: RawFd, min: RawFd) -> Result<RawFd, i32>;
    /// dup2(2): unless `from == to`, `to` becomes `from`'s description
    /// without FD_CLOEXEC, closing what was there.
    fn dup_onto(&mut self, from: RawFd, to: RawFd) -> Result<(), i32>;
    fn clear_cloexec(&mut self, fd: RawFd) -> Result<(), i32>;
}

/// The process's own fd table.
pub(super) struct Kernel;

fn check(r: libc::c_int) -> Result<libc::c_int, i32> {
    if r < 0 {
        Err(nix::errno::Errno::last_raw())
    } else {
        Ok(r)
    }
}

impl FdTable for Kernel {
    fn dup_from(&mut self, fd: RawFd, min: RawFd) -> Result<RawFd, i32> {
        // SAFETY: fcntl(2) on integers; async-signal-safe.
        check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
    }

    fn dup_onto(&mut self, from: RawFd, to: RawFd) -> Result<(), i32> {
        // SAFETY: dup2(2) on integers; async-signal-safe.
        check(unsafe { libc::dup2(from, to) }).map(drop)
    }

    fn clear_cloexec(&mut self, fd: RawFd) -> Result<(), i32> {
        // SAFETY: fcntl(2) on integers; async-signal-safe. FD_CLOEXEC is
        // the only fd flag, so setting 0 clears just it.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
    }
}

/// Puts `fds[i]` on fd `3 + i`, leaving it inheritable. A source among the
/// targets (other than on its own) is first copied above them, so no dup2
/// replaces a source still to be moved; one already on its own target
/// stays, and as dup2 onto itself changes nothing, only loses FD_CLOEXEC.
/// Sources are distinct and above stderr; whatever else sits on a target
/// is closed by the dup2. No allocation: at most `MAX_FDS`, on the stack.
pub(super) fn place(table: &mut impl FdTable, fds: &[RawFd]) -> Result<(), i32> {
    if fds.len() > MAX_FDS {
        return Err(libc::EINVAL);
    }
    let end = end(fds.len());
    let mut from = [0 as RawFd; MAX_FDS];
    for ((slot, target), &fd) in from.iter_mut().zip(FIRST..).zip(fds) {
        *slot = if fd != target && (FIRST..end).contains(&fd) {
            table.dup_from(fd, end)?
        } else {
            fd
        };
    }
    for (&fd, target) in from.iter().take(fds.len()).zip(FIRST..) {
        if fd == target {
            table.clear_cloexec(fd)?;
        } else {
            table.dup_onto(fd, target)?;
        }
    }
    Ok(())
}

/// In the port, before the clone: `fd` (close-on-exec) moved above the
/// targets of `n` LISTEN descriptors, as the child still needs it after
/// the placement (the portable build's report pipe, `report.rs`).
#[cfg(not(linux_native))]
pub(super) fn above_targets(fd: OwnedFd, n: usize) -> nix::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let end = end(n);
    if fd.as_raw_fd() >= end {
        return Ok(fd);
    }
    let moved = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(end))?;
    // SAFETY: F_DUPFD_CLOEXEC just made this fd for us; `fd` is closed
    // when it drops here.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

#[cfg(test)]
mod tests;
