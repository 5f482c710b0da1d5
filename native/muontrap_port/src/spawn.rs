//! vfork-style spawn + exec of the program with its containment set up in
//! the child.
//!
//! Everything the child needs (C strings, argv pointers, fds, numeric
//! credentials) is prepared before the clone, so the child only makes raw
//! syscalls between clone and exec. It shares our memory
//! (`CLONE_VM | CLONE_VFORK`, like glibc's `posix_spawn`) on a stack of its
//! own, and we are suspended until it execs or exits: no page tables are
//! copied and no copy-on-write faults follow. Failures in the child travel
//! back as `(stage, errno)` over a close-on-exec pipe: EOF means exec
//! succeeded.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{pipe2, read, setpgid, Pid};

use crate::args::Capture;
use crate::privileges::Credentials;

/// Where in the child setup something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Cgroup = 1,
    Stdio = 2,
    Setgid = 3,
    Setgroups = 4,
    Setuid = 5,
    Exec = 6,
}

impl Stage {
    fn from_u8(b: u8) -> Option<Stage> {
        Some(match b {
            1 => Stage::Cgroup,
            2 => Stage::Stdio,
            3 => Stage::Setgid,
            4 => Stage::Setgroups,
            5 => Stage::Setuid,
            6 => Stage::Exec,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildFailure {
    pub stage: Option<Stage>,
    pub errno: Errno,
}

impl ChildFailure {
    /// 127 like a shell for "could not run it", 1 for muontrap-side setup.
    pub fn status(&self) -> i32 {
        if self.stage == Some(Stage::Exec) {
            127
        } else {
            1
        }
    }

    pub fn describe(&self, program: &OsStr, cgroup: Option<&str>) -> String {
        let what = match self.stage {
            Some(Stage::Exec) => format!("failed to run {}", program.to_string_lossy()),
            Some(Stage::Cgroup) => format!("failed to join cgroup {}", cgroup.unwrap_or("")),
            Some(Stage::Stdio) => "failed to set up the program's stdio".to_string(),
            Some(Stage::Setgid) => "failed to set the group id".to_string(),
            Some(Stage::Setgroups) => "failed to set the supplementary groups".to_string(),
            Some(Stage::Setuid) => "failed to set the user id".to_string(),
            None => "failed to start the program".to_string(),
        };
        format!("{what}: {}", self.errno.desc())
    }
}

/// Everything decided before fork.
pub struct Plan {
    program: CString,
    // Kept alive for `argv_ptrs`.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    capture: Capture,
    uid: Option<libc::uid_t>,
    gid: Option<libc::gid_t>,
    groups: Option<Vec<libc::gid_t>>,
    groups_required: bool,
    /// `cgroup.procs` of the group in every hierarchy it spans.
    cgroup_procs: Vec<OwnedFd>,
}

#[derive(Debug)]
pub struct PlanError(String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn cstring(what: &str, s: &OsStr) -> Result<CString, PlanError> {
    CString::new(s.as_bytes()).map_err(|_| {
        PlanError(format!(
            "{what} contains a NUL byte: {}",
            s.to_string_lossy()
        ))
    })
}

impl Plan {
    pub fn new(
        program: &OsStr,
        arg0: &OsStr,
        args: &[impl AsRef<OsStr>],
        capture: Capture,
        creds: &Credentials,
        cgroup_procs: Vec<OwnedFd>,
    ) -> Result<Plan, PlanError> {
        let program = cstring("program", program)?;
        let mut argv = vec![cstring("arg0", arg0)?];
        for a in args {
            argv.push(cstring("argument", a.as_ref())?);
        }
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        Ok(Plan {
            program,
            _argv: argv,
            argv_ptrs,
            capture,
            uid: creds.uid,
            gid: creds.gid,
            groups: creds.groups.clone(),
            groups_required: creds.groups_required,
            cgroup_procs,
        })
    }
}

pub struct Child {
    pub pid: Pid,
    /// Read end of the captured output pipe (non-blocking).
    pub output: Option<OwnedFd>,
    /// Set when the child reported a setup or exec failure; it exits 127.
    pub failure: Option<ChildFailure>,
}

/// Fds the child needs, as raw numbers (it must not run destructors).
struct ChildFds {
    devnull: RawFd,
    out_w: Option<RawFd>,
    report_w: RawFd,
    procs: Vec<RawFd>,
}

/// Forks and execs. `Err` only if nothing was forked; once a child exists
/// it is always returned so the caller can reap (and if needed kill) it.
/// Captured output goes into `direct_output` when given (nothing to relay,
/// `Child::output` is `None`), else into a new pipe.
pub fn spawn(plan: Plan, direct_output: Option<OwnedFd>) -> Result<Child, String> {
    let cloexec = OFlag::O_CLOEXEC;
    let devnull = open("/dev/null", OFlag::O_RDWR | cloexec, Mode::empty())
        .map_err(|e| format!("cannot open /dev/null: {}", e.desc()))?;
    // (read end to relay from, the child's write end)
    let output = match (plan.capture, direct_output) {
        (Capture::None, _) => None,
        (_, Some(w)) => Some((None, w)),
        (_, None) => {
            let (r, w) =
                pipe2(cloexec).map_err(|e| format!("cannot create a pipe: {}", e.desc()))?;
            Some((Some(r), w))
        }
    };
    let (report_r, report_w) =
        pipe2(cloexec).map_err(|e| format!("cannot create a pipe: {}", e.desc()))?;
    let fds = ChildFds {
        devnull: devnull.as_raw_fd(),
        out_w: output.as_ref().map(|(_, w)| w.as_raw_fd()),
        report_w: report_w.as_raw_fd(),
        procs: plan.cgroup_procs.iter().map(AsRawFd::as_raw_fd).collect(),
    };
    let parent = nix::unistd::getpid();
    let stack = ChildStack::new().map_err(|e| format!("cannot map a stack: {}", e.desc()))?;

    match clone_vfork(
        &stack,
        &ChildArgs {
            plan: &plan,
            fds: &fds,
            parent,
        },
    ) {
        Err(e) => Err(format!("fork failed: {}", e.desc())),
        Ok(pid) => {
            // Also set the group here so it exists before we might signal it.
            // EACCES after the child exec'd is fine: it did it itself.
            let _ = setpgid(pid, pid);
            drop(report_w);
            drop(devnull);
            let output = output.and_then(|(r, w)| {
                drop(w);
                r
            });
            if let Some(r) = &output {
                if let Err(e) = set_nonblocking(r) {
                    tracing::warn!(error = %e, "cannot make the output pipe non-blocking");
                }
            }
            let failure = read_report(&report_r);
            Ok(Child {
                pid,
                output,
                failure,
            })
        }
    }
}

/// Stack for the child between clone and exec: it runs `child` and
/// `execvp` (which builds paths on the stack), nothing else. Below it a
/// guard page turns an overflow into a fault instead of silent corruption
/// of our memory.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

const CHILD_STACK: usize = 256 * 1024;
const GUARD: usize = 4096;

impl ChildStack {
    fn new() -> nix::Result<ChildStack> {
        let len = CHILD_STACK + GUARD;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping we own (the stack grows down).
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(Errno::last());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the top of the mapping, 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our own mapping; `len` is page-aligned.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`; the child that
        // used it has exec'd or exited (CLONE_VFORK) by the time we drop it.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

struct ChildArgs<'a> {
    plan: &'a Plan,
    fds: &'a ChildFds,
    parent: Pid,
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` that `clone_vfork` passed, alive in
    // the suspended parent's frame until we exec or exit.
    let a = unsafe { &*arg.cast::<ChildArgs>() };
    child(a.plan, a.fds, a.parent)
}

/// `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)`: returns once the child has
/// exec'd or exited. All signals are blocked around the clone so no handler
/// of ours can run on the child's side of the shared memory; the child sets
/// its own mask and dispositions before exec.
fn clone_vfork(stack: &ChildStack, args: &ChildArgs) -> nix::Result<Pid> {
    // SAFETY: sigset_t is plain data (all-zero is a valid empty set), and
    // sigfillset/sigprocmask only read and write these stack-local sets.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    // SAFETY: the child runs `child_entry` on its own stack and only makes
    // raw syscalls on data prepared before this call (which outlives it,
    // since CLONE_VFORK suspends us until the child execs or `_exit`s); it
    // never returns into our frames and allocates nothing.
    let pid = unsafe {
        libc::clone(
            child_entry,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(args).cast_mut().cast(),
        )
    };
    let result = if pid < 0 {
        Err(Errno::last())
    } else {
        Ok(Pid::from_raw(pid))
    };
    // SAFETY: restores the mask saved above.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Blocks until exec succeeded (EOF) or the child reported a failure.
fn read_report(fd: &OwnedFd) -> Option<ChildFailure> {
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < buf.len() {
        match read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Some(ChildFailure {
                    stage: None,
                    errno: e,
                })
            }
        }
    }
    match got {
        0 => None,
        5 => Some(ChildFailure {
            stage: Stage::from_u8(buf[0]),
            errno: Errno::from_raw(i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]])),
        }),
        _ => Some(ChildFailure {
            stage: None,
            errno: Errno::EIO,
        }),
    }
}

/// Reports `(stage, errno)` to the parent and exits without running any
/// destructors or atexit handlers of the parent's copy.
fn fail(fds: &ChildFds, stage: Stage, errno: i32) -> ! {
    let e = errno.to_ne_bytes();
    let msg = [stage as u8, e[0], e[1], e[2], e[3]];
    // SAFETY: plain write(2) of a stack buffer and _exit(2); both are
    // async-signal-safe.
    unsafe {
        libc::write(fds.report_w, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn errno() -> i32 {
    Errno::last_raw()
}

/// Writes `n` in decimal using only the stack.
fn write_decimal(fd: RawFd, mut n: u32) -> bool {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
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

fn setup_stdio(capture: Capture, fds: &ChildFds) -> Result<(), i32> {
    let pipe = fds.out_w.unwrap_or(fds.devnull);
    dup_onto(fds.devnull, 0)?;
    match capture {
        Capture::None => dup_onto(fds.devnull, 1),
        Capture::Stdout => dup_onto(pipe, 1),
        Capture::StdoutAndStderr => {
            dup_onto(pipe, 1)?;
            dup_onto(pipe, 2)
        }
        Capture::StderrOnly => {
            dup_onto(fds.devnull, 1)?;
            dup_onto(pipe, 2)
        }
    }
}

/// Marks every fd above stderr close-on-exec: the port's own pipes and
/// anything inherited from the BEAM must not leak into the program, while
/// the failure-report pipe stays usable until exec.
fn cloexec_all_above_stderr() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Pre-5.11 kernel: walk the fd table.
    // SAFETY: getrlimit/fcntl on integers only; fcntl on a closed fd just
    // fails with EBADF.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 20) as RawFd
        } else {
            4096
        };
        for fd in 3..max {
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
    if let Some(groups) = &plan.groups {
        // SAFETY: the pointer and length describe a live Vec (or an empty
        // list, for which the pointer is not read).
        let r = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
        if r != 0 && plan.groups_required {
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

/// Runs in the forked child; never returns.
fn child(plan: &Plan, fds: &ChildFds, parent: Pid) -> ! {
    // SAFETY: only async-signal-safe libc calls on stack data. Dispositions
    // go back to default before unblocking so nothing pending meets the
    // port's SIG_IGN for SIGPIPE.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::setpgid(0, 0);
        // If the port dies (even by SIGKILL), take the program with it. The
        // parent may have died before this took effect, hence the check.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent.as_raw() {
            libc::_exit(127);
        }
    }
    for &procs in &fds.procs {
        // SAFETY: getpid(2) cannot fail.
        let me = unsafe { libc::getpid() } as u32;
        if !write_decimal(procs, me) {
            fail(fds, Stage::Cgroup, errno());
        }
    }
    if let Err(e) = setup_stdio(plan.capture, fds) {
        fail(fds, Stage::Stdio, e);
    }
    cloexec_all_above_stderr();
    drop_privileges(plan, fds);
    // SAFETY: program and argv are NUL-terminated C strings and a
    // null-terminated pointer array, all alive (the Plan outlives this call).
    unsafe { libc::execvp(plan.program.as_ptr(), plan.argv_ptrs.as_ptr()) };
    fail(fds, Stage::Exec, errno())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_messages_and_status() {
        let exec = ChildFailure {
            stage: Some(Stage::Exec),
            errno: Errno::ENOENT,
        };
        assert_eq!(exec.status(), 127);
        assert_eq!(
            exec.describe(OsStr::new("/no/such"), None),
            "failed to run /no/such: No such file or directory"
        );
        let uid = ChildFailure {
            stage: Some(Stage::Setuid),
            errno: Errno::EPERM,
        };
        assert_eq!(uid.status(), 1);
        assert!(uid
            .describe(OsStr::new("x"), None)
            .starts_with("failed to set the user id"));
        let cg = ChildFailure {
            stage: Some(Stage::Cgroup),
            errno: Errno::EACCES,
        };
        assert_eq!(
            cg.describe(OsStr::new("x"), Some("a/b")),
            "failed to join cgroup a/b: Permission denied"
        );
        for b in 1..=6 {
            assert_eq!(Stage::from_u8(b).map(|s| s as u8), Some(b));
        }
        assert_eq!(Stage::from_u8(0), None);
    }

    #[test]
    fn plan_rejects_nul() {
        let c = Credentials::default();
        let bad = OsStr::new("a\0b");
        let none: &[&OsStr] = &[];
        assert!(Plan::new(bad, OsStr::new("x"), none, Capture::None, &c, vec![]).is_err());
        assert!(Plan::new(
            OsStr::new("x"),
            OsStr::new("x"),
            &[bad],
            Capture::None,
            &c,
            vec![]
        )
        .is_err());
        let p = Plan::new(
            OsStr::new("x"),
            OsStr::new("y"),
            &["1", "2"],
            Capture::None,
            &c,
            vec![],
        )
        .unwrap();
        assert_eq!(p.argv_ptrs.len(), 4);
        assert!(p.argv_ptrs[3].is_null());
    }
}
