//! The child's side of the spawn, from clone to exec. It shares the
//! parent's memory and runs on a small stack of its own, so it makes raw
//! syscalls only, on data prepared before the clone: no allocation, no
//! locks, no destructors.

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::env::decimal;
use super::report::Sink;
use super::{attrs, listen_fds, Plan, Stage};
use muontrap_command::Capture;

/// Fds the child needs, as raw numbers (it must not run destructors).
pub(super) struct ChildFds {
    pub(super) devnull: RawFd,
    /// Where the capture flags send output: a pipe of ours or OUTPUT.
    pub(super) out_w: Option<RawFd>,
    /// Handed-over STDIN and STDERR.
    pub(super) stdin: Option<RawFd>,
    pub(super) stderr: Option<RawFd>,
    /// Handed-over LISTEN sockets, for fds 3, 4, ...
    pub(super) listen: Vec<RawFd>,
    /// Where a failure is reported (`report.rs`).
    pub(super) report: Sink,
    pub(super) procs: Vec<RawFd>,
}

pub(super) struct ChildArgs<'a> {
    pub(super) plan: &'a Plan,
    pub(super) fds: &'a ChildFds,
    pub(super) parent: Pid,
}

pub(super) extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` that `clone_vfork` passed, alive in
    // the suspended parent's frame until we exec or exit.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    child(a.plan, a.fds, a.parent)
}

fn fail(fds: &ChildFds, stage: Stage, errno: i32) -> ! {
    fail_at(fds, stage, errno, 0)
}

/// Reports `(stage, errno, detail)` (detail: which rlimit) to the parent
/// and exits without running any destructors or atexit handlers of the
/// parent's copy.
fn fail_at(fds: &ChildFds, stage: Stage, errno: i32, detail: u8) -> ! {
    let e = errno.to_ne_bytes();
    fds.report
        .send([stage as u8, e[0], e[1], e[2], e[3], detail]);
    // SAFETY: _exit(2) is async-signal-safe and runs nothing of ours.
    unsafe { libc::_exit(127) }
}

fn errno() -> i32 {
    Errno::last_raw()
}

/// Writes `n` in decimal using only the stack.
fn write_decimal(fd: RawFd, n: u32) -> bool {
    let mut buf = [0u8; 10];
    let i = decimal(n, &mut buf);
    let len = buf.len() - i;
    // SAFETY: writes from a live stack buffer.
    let r = unsafe { libc::write(fd, buf[i..].as_ptr().cast(), len) };
    r == len as isize
}

fn dup_onto(from: RawFd, to: RawFd) -> Result<(), i32> {
    // SAFETY: dup2 on fds that are open in this process.
    if unsafe { libc::dup2(from, to) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Every source is above 2 (fds 0-2 were open before anything was opened
/// or received), so no dup2 here clobbers a later one's source.
fn setup_stdio(capture: Capture, fds: &ChildFds) -> Result<(), i32> {
    let pipe = fds.out_w.unwrap_or(fds.devnull);
    dup_onto(fds.stdin.unwrap_or(fds.devnull), 0)?;
    match capture {
        Capture::None => dup_onto(fds.devnull, 1)?,
        Capture::Stdout => dup_onto(pipe, 1)?,
        Capture::StdoutAndStderr => {
            dup_onto(pipe, 1)?;
            dup_onto(pipe, 2)?;
        }
        Capture::StderrOnly => {
            dup_onto(fds.devnull, 1)?;
            dup_onto(pipe, 2)?;
        }
    }
    // Only ever beside `Capture::Stdout` (`handover::check_capture`), so
    // what it replaces is the inherited stderr.
    match fds.stderr {
        Some(err) => dup_onto(err, 2),
        None => Ok(()),
    }
}

/// Marks every fd from `first` (above stderr and the LISTEN fds) up
/// close-on-exec: the port's own pipes and anything inherited from the
/// BEAM must not leak into the program, while what stays usable until
/// exec (the portable build's failure-report pipe) is not closed.
fn cloexec_all_from(first: RawFd) {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes fd flags.
    #[cfg(linux_native)]
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    #[cfg(linux_native)]
    if r == 0 {
        return;
    }
    // Pre-5.11 kernel, or no close_range: walk the fd table.
    // SAFETY: getrlimit/fcntl on integers only; fcntl on a closed fd just
    // fails with EBADF.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 20) as RawFd
        } else {
            4096
        };
        for fd in first..max {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

fn drop_privileges(plan: &Plan, fds: &ChildFds) {
    if let Some(gid) = plan.gid {
        // SAFETY: setgid(2) takes an integer.
        if unsafe { libc::setgid(gid) } != 0 {
            fail(fds, Stage::Setgid, errno());
        }
    }
    if let Some(groups) = &plan.supplementary_groups {
        // SAFETY: the pointer and length describe a live Vec (or an empty
        // list, for which the pointer is not read).
        let r = unsafe { libc::setgroups(groups.len() as _, groups.as_ptr()) };
        if r != 0 && plan.supplementary_groups_required {
            fail(fds, Stage::Setgroups, errno());
        }
    }
    if let Some(uid) = plan.uid {
        // SAFETY: setuid(2) takes an integer.
        if unsafe { libc::setuid(uid) } != 0 {
            fail(fds, Stage::Setuid, errno());
        }
    }
}

#[cfg(linux_native)]
use libc::execvpe;

/// execvpe(3) where the C library has none (macOS) or for the portable
/// build: the environment swapped in, then execvp. Only in a forked child
/// (the portable spawn forks, it shares no memory with us).
#[cfg(not(linux_native))]
unsafe fn execvpe(
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> libc::c_int {
    #[cfg(target_vendor = "apple")]
    {
        *libc::_NSGetEnviron() = envp.cast_mut().cast();
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        extern "C" {
            static mut environ: *const *const libc::c_char;
        }
        environ = envp;
    }
    libc::execvp(program, argv)
}

/// Runs in the forked child; never returns.
fn child(plan: &Plan, fds: &ChildFds, parent: Pid) -> ! {
    // SAFETY: only async-signal-safe libc calls on stack data. Dispositions
    // go back to default before unblocking so nothing pending meets the
    // port's SIG_IGN for SIGPIPE. A supervisor knows it changed no other
    // (one syscall, not 64); a plain start resets all it may inherit.
    unsafe {
        if crate::signals::only_pipe_ignored() {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        } else {
            for sig in 1..=muontrap_wire::signals::sigrtmax() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        #[cfg(not(linux_native))]
        crate::signals::reset_in_child();
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::setpgid(0, 0);
        // If the port dies (even by SIGKILL), take the program with it. The
        // parent may have died before this took effect, hence the check.
        // Without a parent-death signal (macOS, the `portable` build) the
        // BEAM kills the process group when the channel ends.
        crate::tree::kill_with_parent();
        if libc::getppid() != parent.as_raw() {
            libc::_exit(127);
        }
    }
    // SAFETY: getpid(2) cannot fail.
    let me = unsafe { libc::getpid() } as u32;
    for &procs in &fds.procs {
        if !write_decimal(procs, me) {
            fail(fds, Stage::Cgroup, errno());
        }
    }
    if let Err(e) = setup_stdio(plan.capture, fds) {
        fail(fds, Stage::Stdio, e);
    }
    // After stdio: its sources may sit where the LISTEN fds go.
    if let Err(e) = listen_fds::place(&mut listen_fds::Kernel, &fds.listen) {
        fail(fds, Stage::Listen, e);
    }
    // After the fd walk, which a lower RLIMIT_NOFILE would cut short.
    cloexec_all_from(listen_fds::end(fds.listen.len()));
    if let Err((stage, e, detail)) = attrs::apply(&plan.attrs) {
        fail_at(fds, stage, e, detail);
    }
    drop_privileges(plan, fds);
    let (program, argv) = (plan.program.as_ptr(), plan.argv_ptrs.as_ptr());
    match &plan.env {
        Some(env) => {
            env.fill_pid(me);
            // SAFETY: as for execvp below; envp is a null-terminated array
            // of C strings owned by the Plan.
            unsafe { execvpe(program, argv, env.envp()) };
        }
        // SAFETY: program and argv are NUL-terminated C strings and a
        // null-terminated pointer array, all alive (the Plan outlives
        // this call).
        None => unsafe {
            libc::execvp(program, argv);
        },
    }
    fail(fds, Stage::Exec, errno())
}
