//! SIGNAL requests: the program's main process (the `MAINPID=` it
//! reported, else the program itself) and sending to it without ever
//! hitting a recycled pid. Both are pinned with a pidfd at a moment the
//! pid is certainly theirs: the program right after the spawn (our child,
//! unreaped), a MAINPID when it is accepted (inside the containment before
//! and after the pidfd is opened). See `docs/protocol.md`, "Signals".

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::pidfd;
use crate::protocol::Signaled;
use muontrap_wire::signals::sigrtmax;

/// Where SIGNAL requests go for the program.
pub struct MainProcess {
    program: Pid,
    /// The program's pidfd; `None` without pidfds (pre-5.3 kernels): then
    /// kill(2) on the program pid, which is safe only while it is unreaped.
    program_fd: Option<OwnedFd>,
}

/// A `MAINPID=` checked with [`pin`].
pub enum Pinned {
    /// Inside the containment, pinned.
    Fd(OwnedFd),
    /// Inside, but pidfds are unavailable (ENOSYS): signals keep going to
    /// the program.
    Unpinned,
    /// Outside the containment, gone, or not a process (a thread id).
    Refused(&'static str),
}

/// Pins `pid` if `inside` holds for it before and after its pidfd is
/// opened: in between, the process may have exited and its pid been
/// reused, and the second check catches a reuse by an outsider.
pub fn pin(pid: i32, inside: impl Fn(i32) -> bool) -> Pinned {
    if !inside(pid) {
        return Pinned::Refused("outside the containment");
    }
    match pidfd::open(pid) {
        Ok(fd) if inside(pid) && !pidfd::exited(fd.as_fd()) => Pinned::Fd(fd),
        Ok(_) => Pinned::Refused("gone or outside the containment"),
        Err(Errno::ENOSYS) => Pinned::Unpinned,
        Err(Errno::EINVAL) => Pinned::Refused("not a process"),
        Err(_) => Pinned::Refused("gone"),
    }
}

fn reply(r: Result<(), Errno>) -> Signaled {
    match r {
        Ok(()) => Signaled::Sent,
        Err(Errno::ESRCH) => Signaled::NotRunning,
        Err(_) => Signaled::Refused,
    }
}

impl MainProcess {
    /// Right after the spawn, before anything reaps: `program` is our
    /// child, so the pid is certainly its.
    pub fn for_program(program: Pid) -> MainProcess {
        let program_fd = match pidfd::open(program.as_raw()) {
            Ok(fd) => Some(fd),
            Err(Errno::ENOSYS) => {
                crate::log::debug!(
                    "pidfd_open unavailable (ENOSYS): SIGNAL falls back to kill(2) on the \
                     program while it is unreaped, MAINPID is not used"
                );
                None
            }
            Err(e) => {
                crate::log::debug!(
                    error = %e,
                    "no pidfd for the program: SIGNAL falls back to kill(2) on it while it \
                     is unreaped"
                );
                None
            }
        };
        MainProcess {
            program,
            program_fd,
        }
    }

    /// Sends `sig` to the pinned MAINPID `main` if there is one, else to
    /// the program. `running`: the program is unreaped and not being
    /// terminated; otherwise nothing is sent.
    pub fn signal(&self, sig: u32, main: Option<BorrowedFd<'_>>, running: bool) -> Signaled {
        let sig = match libc::c_int::try_from(sig) {
            Ok(s) if (1..=sigrtmax()).contains(&s) => s,
            _ => return Signaled::Refused,
        };
        if !running {
            return Signaled::NotRunning;
        }
        match main.or(self.program_fd.as_ref().map(AsFd::as_fd)) {
            Some(fd) if pidfd::exited(fd) => Signaled::NotRunning,
            Some(fd) => reply(pidfd::send_signal(fd, sig)),
            None => self.kill_program(sig),
        }
    }

    /// Whether the program is a zombie, without reaping it.
    // `id_t` is u32 on Linux and macOS (a pid may not fit), i64 on FreeBSD.
    #[allow(irrefutable_let_patterns, clippy::unnecessary_fallible_conversions)]
    fn program_exited(&self) -> bool {
        let Ok(id) = libc::id_t::try_from(self.program.as_raw()) else {
            return false;
        };
        // SAFETY: siginfo_t is plain data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid(2) writes one siginfo_t through a valid pointer;
        // WNOWAIT leaves the zombie to the reaper.
        let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) };
        // SAFETY: reads the pid field waitid filled in (0: none exited).
        r == 0 && unsafe { info.si_pid() } != 0
    }

    /// Without a pidfd: the program is unreaped (`running`), so its pid is
    /// still its own; a zombie is not running.
    fn kill_program(&self, sig: libc::c_int) -> Signaled {
        if self.program_exited() {
            return Signaled::NotRunning;
        }
        // SAFETY: kill(2) takes two integers.
        let r = unsafe { libc::kill(self.program.as_raw(), sig) };
        reply(if r == 0 { Ok(()) } else { Err(Errno::last()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_are_refused_before_anything_else() {
        let m = MainProcess {
            program: Pid::from_raw(i32::MAX),
            program_fd: None,
        };
        for sig in [0, 65, 99999, u32::MAX] {
            assert_eq!(m.signal(sig, None, true), Signaled::Refused, "{sig}");
            assert_eq!(m.signal(sig, None, false), Signaled::Refused, "{sig}");
        }
        assert_eq!(m.signal(1, None, false), Signaled::NotRunning);
    }

    /// A `sleep` child of the test process, and a MainProcess for it with
    /// (`pidfd`) or without a pidfd (the pre-5.3 fallback).
    fn sleeper(pidfd: bool) -> (std::process::Child, MainProcess) {
        let child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let mut m = MainProcess::for_program(pid);
        if !pidfd {
            m.program_fd = None;
        }
        (child, m)
    }

    #[test]
    fn the_program_with_and_without_a_pidfd() {
        for pidfd in [true, false] {
            let (mut child, m) = sleeper(pidfd);
            assert_eq!(m.signal(0, None, true), Signaled::Refused);
            assert_eq!(m.signal(libc::SIGCONT as u32, None, true), Signaled::Sent);
            assert_eq!(m.signal(libc::SIGKILL as u32, None, true), Signaled::Sent);
            // A zombie, not yet reaped: not running, in both ways.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while m.signal(libc::SIGCONT as u32, None, true) != Signaled::NotRunning {
                assert!(std::time::Instant::now() < deadline, "pidfd {pidfd}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(child.try_wait().unwrap().is_some());
            // Once reaped the relay never asks (`running` is false).
            assert_eq!(m.signal(1, None, false), Signaled::NotRunning);
        }
    }

    #[test]
    fn a_pinned_mainpid_wins_over_the_program() {
        let (mut program, m) = sleeper(true);
        let (mut main, _) = sleeper(true);
        let Ok(fd) = pidfd::open(main.id() as i32) else {
            let _ = (program.kill(), main.kill(), program.wait(), main.wait());
            return;
        };
        let sig = libc::SIGTERM as u32;
        assert_eq!(m.signal(sig, Some(fd.as_fd()), true), Signaled::Sent);
        let status = main.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        // Gone (reaped): ESRCH, not the program instead.
        assert_eq!(m.signal(sig, Some(fd.as_fd()), true), Signaled::NotRunning);
        assert!(program.try_wait().unwrap().is_none());
        program.kill().unwrap();
        program.wait().unwrap();
    }

    #[test]
    fn a_pid_outside_is_not_pinned() {
        let me = std::process::id() as i32;
        assert!(matches!(pin(me, |_| false), Pinned::Refused(_)));
        // Inside only at the first check: a pid reused in between.
        let calls = std::cell::Cell::new(0);
        let once = |_| {
            calls.set(calls.get() + 1);
            calls.get() == 1
        };
        assert!(!matches!(pin(me, once), Pinned::Fd(_)));
        assert!(matches!(
            pin(me, |_| true),
            Pinned::Fd(_) | Pinned::Unpinned
        ));
        let gone = pin(i32::MAX, |_| true);
        assert!(matches!(gone, Pinned::Refused(_) | Pinned::Unpinned));
    }
}
