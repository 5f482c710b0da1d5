//! Finding, signalling and reaping everything the program started.
//!
//! The port is a child subreaper, so orphans reparent to it and the live
//! descendants are exactly what `/proc/<pid>/task/<tid>/children` reaches
//! from the port itself.

use std::fs;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::pidfd;

#[cfg(target_os = "freebsd")]
mod freebsd;

/// Makes orphaned descendants reparent to us, so we can find and reap
/// them: Linux's child subreaper, FreeBSD's `procctl(PROC_REAP_ACQUIRE)`.
/// macOS (and the `portable` build) has neither: the program's process
/// group is the containment there.
pub fn become_reaper() -> nix::Result<()> {
    #[cfg(linux_native)]
    return nix::sys::prctl::set_child_subreaper(true);
    #[cfg(target_os = "freebsd")]
    return freebsd::acquire_reaper();
    #[cfg(not(any(linux_native, target_os = "freebsd")))]
    return Ok(());
}

/// In the child before exec: SIGKILL when the supervisor dies (Linux's
/// `PR_SET_PDEATHSIG`, FreeBSD's `PROC_PDEATHSIG_CTL`; nothing on macOS
/// and the `portable` build, where the BEAM kills the process group once
/// the channel ends). Async-signal-safe: one system call.
pub fn kill_with_parent() {
    // SAFETY: prctl(2) with integer arguments.
    #[cfg(linux_native)]
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    #[cfg(target_os = "freebsd")]
    freebsd::parent_death_signal(libc::SIGKILL);
}

/// Whether any process is left in the process group `pgid` (signal 0).
/// While one is, no new process can get the id (POSIX), so it names the
/// same group.
#[cfg_attr(linux_native, allow(dead_code))]
pub fn group_exists(pgid: Pid) -> bool {
    kill_raw(-pgid.as_raw(), 0).is_ok()
}

/// Direct children of `pid`, across all of its threads (children belong to
/// the thread that forked them).
#[cfg(linux_native)]
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

/// No /proc walk without a subreaper (orphans are not ours to find):
/// the process group reaches what is contained (macOS, the `portable`
/// build), and FreeBSD's reaper kills the rest (`signal_tree`).
#[cfg(not(linux_native))]
pub fn descendants() -> Vec<(i32, i32)> {
    Vec::new()
}

/// `(parent, pid)` for every descendant of this process, parents first.
#[cfg(linux_native)]
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
pub(crate) fn parent_and_process_group(pid: i32) -> Option<(i32, i32)> {
    // Bytes, not a String: the command name is whatever the process chose
    // (prctl PR_SET_NAME, or a file name cut at 15 bytes, maybe inside a
    // UTF-8 character), and a process whose stat could not be read would
    // never be signalled: it would outlive the port's stop sequence.
    parse_stat(&fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// `(ppid, pgrp)` from the text of a `/proc/<pid>/stat`: `pid (comm) state
/// ppid pgrp ...`. The command name may contain anything but NUL, spaces
/// and `)` included, so the fields are read after the last `)`.
fn parse_stat(stat: &[u8]) -> Option<(i32, i32)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut f = rest.split_ascii_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// kill(2) with a raw signal number (realtime signals included, which
/// nix's `Signal` cannot name).
fn kill_raw(pid: i32, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: kill(2) takes two integers.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Signals `pid`, found as a child of `parent`, without ever hitting a
/// recycled pid: the pidfd pins the process, then we check it is still the
/// one we found (same parent, or reparented to us).
fn signal_one(parent: i32, pid: i32, sig: libc::c_int, skip_process_group: Option<i32>) {
    let me = std::process::id() as i32;
    let check = || match parent_and_process_group(pid) {
        Some((ppid, pgrp)) => (ppid == parent || ppid == me) && Some(pgrp) != skip_process_group,
        None => false,
    };
    match pidfd::open(pid) {
        Ok(fd) => {
            if check() {
                let _ = pidfd::send_signal(fd.as_fd(), sig);
            }
        }
        // Pre-5.3 kernel: the check-then-kill window is the best we can do.
        Err(Errno::ENOSYS) => {
            if check() {
                let _ = kill_raw(pid, sig);
            }
        }
        Err(_) => {} // already gone
    }
}

/// Sends `sig` to the program's process group and to every descendant.
/// Its members are signalled once, through the process group, so a program that
/// treats a second SIGTERM as "force quit" still gets one. Pass `process_group` only
/// while the program is unreaped: its zombie keeps the id from being reused.
pub fn signal_tree(process_group: Option<Pid>, sig: libc::c_int) -> usize {
    let skip = process_group
        .filter(|g| kill_raw(-g.as_raw(), sig).is_ok())
        .map(Pid::as_raw);
    let all = descendants();
    for &(parent, pid) in &all {
        signal_one(parent, pid, sig, skip);
    }
    #[cfg(target_os = "freebsd")]
    freebsd::signal_descendants(sig);
    crate::log::debug!(
        signal = sig,
        processes = all.len(),
        "signalled process tree"
    );
    all.len()
}

/// Shell-style status from a raw wait status: exit code, or 128 + signal
/// (any signal number: nix's `WaitStatus` cannot hold realtime ones).
pub fn exit_status(raw: libc::c_int) -> Option<i32> {
    if libc::WIFEXITED(raw) {
        Some(libc::WEXITSTATUS(raw))
    } else if libc::WIFSIGNALED(raw) {
        Some(128 + libc::WTERMSIG(raw))
    } else {
        None
    }
}

#[cfg(target_os = "linux")]
const WAIT_FLAGS: libc::c_int = libc::WNOHANG | libc::__WALL;
#[cfg(not(target_os = "linux"))]
const WAIT_FLAGS: libc::c_int = libc::WNOHANG;

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
            let mut raw: libc::c_int = 0;
            // SAFETY: waitpid(2) writes one int through a valid pointer.
            // __WALL: also children with a non-SIGCHLD exit signal, or
            // ECHILD could claim nothing is left while they still run.
            let pid = unsafe { libc::waitpid(-1, &mut raw, WAIT_FLAGS) };
            match pid {
                0 => return true,
                p if p == self.main.as_raw() => {
                    self.status = exit_status(raw);
                    crate::log::debug!(
                        pid = p,
                        status = self.status.unwrap_or(-1),
                        "program exited"
                    );
                }
                p if p > 0 => crate::log::trace!(pid = p, "reaped descendant"),
                _ => match Errno::last() {
                    Errno::EINTR => {}
                    Errno::ECHILD => return false,
                    e => {
                        crate::log::warn!(error = %e, "waitpid failed");
                        return true;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        // Raw wait statuses: exit code in the second byte, signal in the
        // low 7 bits (0x80: core dumped), 0x7f in the low byte: stopped.
        assert_eq!(exit_status(3 << 8), Some(3));
        assert_eq!(exit_status(0), Some(0));
        assert_eq!(exit_status(libc::SIGKILL), Some(137));
        assert_eq!(exit_status(35), Some(163));
        assert_eq!(exit_status(64 | 0x80), Some(192));
        assert_eq!(exit_status((libc::SIGSTOP << 8) | 0x7f), None);
    }

    #[test]
    fn stat_parsing_of_self() {
        let me = std::process::id() as i32;
        let (ppid, pgrp) = parent_and_process_group(me).unwrap();
        assert_eq!(ppid, nix::unistd::getppid().as_raw());
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(parent_and_process_group(-5), None);
    }

    /// Found while adding the property in `props.rs`: a command name that is not
    /// UTF-8 made the whole stat unreadable, so a daemonized descendant
    /// with such a name was never signalled and the port waited for it
    /// for ever (without a cgroup).
    #[test]
    fn stat_of_a_command_name_that_is_not_utf8() {
        let tail = b" S 41 42 42 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 7 1 1\n";
        for comm in [&b"\xff\xfe"[..], b"abcdefghijklmn\xc3", b"a) S 1 1 (b", b""] {
            let stat = [&b"7 ("[..], comm, b")", tail].concat();
            assert_eq!(parse_stat(&stat), Some((41, 42)), "{comm:?}");
        }
        assert_eq!(parse_stat(b"7 (x"), None);
        assert_eq!(parse_stat(b"7 (x) S"), None);
        assert_eq!(parse_stat(b"7 (x) S \xff 42"), None);
    }

    /// The same name on a real process: the port's own child, renamed.
    #[test]
    fn stat_of_a_live_process_renamed_to_bytes() {
        // The shell renames itself, then waits on its stdin (a builtin:
        // an exec would rename it back).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "printf '\\377\\376' > /proc/self/comm; read x"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let pid = child.id() as i32;
        let renamed = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"\xff"))
        });
        let parsed = parent_and_process_group(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(renamed, "the child never renamed itself");
        assert_eq!(
            parsed.map(|(ppid, _)| ppid),
            Some(std::process::id() as i32)
        );
    }
}

#[cfg(test)]
mod props;
