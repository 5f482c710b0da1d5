//! Process file descriptors (Linux 5.3+): a pidfd pins one process, so a
//! signal sent through it can never reach another process that later got
//! the same pid. libc's syscall numbers, so no glibc 2.36 wrappers needed.

#[cfg(linux_native)]
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// `pidfd_open(2)`: ENOSYS before Linux 5.3, ESRCH for no such process,
/// EINVAL for a thread that is not a thread-group leader.
#[cfg(linux_native)]
pub fn open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    let fd = libc::c_int::try_from(r).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this fd; nobody else owns it. It is
    // close-on-exec (pidfd_open always sets O_CLOEXEC).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)` with a kernel-filled siginfo (as from kill(2)).
#[cfg(linux_native)]
pub fn send_signal(fd: BorrowedFd<'_>, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: an fd we hold open, a plain signal number, a null siginfo
    // (allowed: the kernel fills one in like kill()) and no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Whether the process has exited (a zombie or reaped): its pidfd is then
/// readable. A signal sent to a zombie succeeds but reaches nobody.
pub fn exited(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// Without pidfds (macOS, FreeBSD, the `portable` build) every caller
/// takes the path of a Linux before 5.3: ENOSYS.
#[cfg(not(linux_native))]
pub fn open(_pid: i32) -> Result<OwnedFd, Errno> {
    Err(Errno::ENOSYS)
}

#[cfg(not(linux_native))]
pub fn send_signal(_fd: BorrowedFd<'_>, _sig: libc::c_int) -> Result<(), Errno> {
    Err(Errno::ENOSYS)
}

#[cfg(all(test, linux_native))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pins_a_child_and_sees_it_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let fd = match open(pid) {
            Ok(fd) => fd,
            Err(Errno::ENOSYS) => {
                // Pre-5.3 kernel.
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(!exited(fd.as_fd()));
        assert_eq!(send_signal(fd.as_fd(), 0), Ok(()));
        assert_eq!(send_signal(fd.as_fd(), 99999), Err(Errno::EINVAL));
        assert_eq!(send_signal(fd.as_fd(), libc::SIGKILL), Ok(()));
        // A zombie: exited, and a signal still "succeeds".
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exited(fd.as_fd()) {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(send_signal(fd.as_fd(), libc::SIGTERM), Ok(()));
        child.wait().unwrap();
        assert!(exited(fd.as_fd()));
        assert_eq!(send_signal(fd.as_fd(), libc::SIGTERM), Err(Errno::ESRCH));
        assert_eq!(open(-1).err(), Some(Errno::EINVAL));
    }
}
