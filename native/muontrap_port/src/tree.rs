//! Finding, signalling and reaping everything the program started.
//!
//! The port is a child subreaper, so orphans reparent to it and the live
//! descendants are exactly what `/proc/<pid>/task/<tid>/children` reaches
//! from the port itself.

use std::fs;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Direct children of `pid`, across all of its threads (children belong to
/// the thread that forked them).
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|s| s.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// `(parent, pid)` for every descendant of this process, parents first.
pub fn descendants() -> Vec<(i32, i32)> {
    let me = std::process::id() as i32;
    let mut found: Vec<(i32, i32)> = children_of(me).into_iter().map(|c| (me, c)).collect();
    let mut i = 0;
    while i < found.len() {
        let pid = found[i].1;
        for c in children_of(pid) {
            // A pid seen twice means it was recycled mid-walk; skip it.
            if !found.iter().any(|&(_, p)| p == c) {
                found.push((pid, c));
            }
        }
        i += 1;
    }
    found
}

/// `(ppid, pgrp)` from `/proc/<pid>/stat`.
pub(crate) fn parent_and_group(pid: i32) -> Option<(i32, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')', so parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

fn pidfd_open(pid: i32) -> Result<libc::c_int, Errno> {
    // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as libc::c_int)
    }
}

fn pidfd_send_signal(fd: libc::c_int, sig: Signal) -> Result<(), Errno> {
    // SAFETY: a null siginfo is allowed (the kernel fills one in like kill()).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig as libc::c_int,
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

/// Signals `pid`, found as a child of `parent`, without ever hitting a
/// recycled pid: the pidfd pins the process, then we check it is still the
/// one we found (same parent, or reparented to us).
fn signal_one(parent: i32, pid: i32, sig: Signal, skip_pgrp: Option<i32>) {
    let me = std::process::id() as i32;
    let check = || match parent_and_group(pid) {
        Some((ppid, pgrp)) => (ppid == parent || ppid == me) && Some(pgrp) != skip_pgrp,
        None => false,
    };
    match pidfd_open(pid) {
        Ok(fd) => {
            if check() {
                let _ = pidfd_send_signal(fd, sig);
            }
            // SAFETY: `fd` came from pidfd_open above and is closed once.
            unsafe { libc::close(fd) };
        }
        // Pre-5.3 kernel: the check-then-kill window is the best we can do.
        Err(Errno::ENOSYS) => {
            if check() {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        Err(_) => {} // already gone
    }
}

/// Sends `sig` to the program's process group and to every descendant.
/// Group members are signalled once, through the group, so a program that
/// treats a second SIGTERM as "force quit" still gets one. Pass `pgid` only
/// while the program is unreaped: its zombie keeps the id from being reused.
pub fn signal_tree(pgid: Option<Pid>, sig: Signal) -> usize {
    let skip = pgid
        .filter(|g| kill(Pid::from_raw(-g.as_raw()), sig).is_ok())
        .map(Pid::as_raw);
    let all = descendants();
    for &(parent, pid) in &all {
        signal_one(parent, pid, sig, skip);
    }
    tracing::debug!(
        signal = sig.as_str(),
        processes = all.len(),
        "signalled process tree"
    );
    all.len()
}

/// Shell-style status: exit code, or 128 + signal.
pub fn exit_status(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reaps every exited child; only the program's own status is kept.
pub struct Reaper {
    main: Pid,
    pub status: Option<i32>,
}

impl Reaper {
    pub fn new(main: Pid) -> Reaper {
        Reaper { main, status: None }
    }

    /// Reaps what it can; returns whether any child (alive or not yet
    /// reaped) is left.
    pub fn reap(&mut self) -> bool {
        loop {
            // __WALL: also children with a non-SIGCHLD exit signal, or
            // ECHILD could claim nothing is left while they still run.
            let flags = WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
            match waitpid(Pid::from_raw(-1), Some(flags)) {
                Ok(WaitStatus::StillAlive) => return true,
                Ok(ws) => {
                    if ws.pid() == Some(self.main) {
                        self.status = exit_status(ws);
                        tracing::debug!(
                            pid = self.main.as_raw(),
                            status = self.status.unwrap_or(-1),
                            "program exited"
                        );
                    } else {
                        tracing::trace!(pid = ws.pid().map_or(0, Pid::as_raw), "reaped descendant");
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_status(WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            exit_status(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(exit_status(WaitStatus::StillAlive), None);
    }

    #[test]
    fn stat_parsing_of_self() {
        let me = std::process::id() as i32;
        let (ppid, pgrp) = parent_and_group(me).unwrap();
        assert_eq!(ppid, nix::unistd::getppid().as_raw());
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(parent_and_group(-5), None);
    }
}
