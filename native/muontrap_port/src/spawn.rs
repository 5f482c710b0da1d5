//! vfork-style spawn + exec of the program with its containment set up in
//! the child.
//!
//! Everything the child needs (C strings, argv pointers, fds, numeric
//! credentials) is prepared before the clone, so the child only makes raw
//! syscalls between clone and exec (`spawn/child.rs`). It shares our memory
//! (`CLONE_VM | CLONE_VFORK`, like glibc's `posix_spawn`) on a stack of its
//! own, and we are suspended until it execs or exits: no page tables are
//! copied and no copy-on-write faults follow. Failures in the child travel
//! back as `(stage, errno, detail)` over a close-on-exec pipe: EOF means
//! exec succeeded.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
#[cfg(linux_native)]
use nix::unistd::pipe2;
use nix::unistd::{setpgid, Pid};

use muontrap_command::{Capture, Rlimit};

/// What the child sets up before it drops privileges and execs: the
/// command's umask, nice value and rlimits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub umask: Option<u32>,
    pub nice: Option<i32>,
    pub rlimits: Vec<Rlimit>,
}
use crate::privileges::Credentials;

mod attrs;
mod child;
mod clone;
mod env;
mod listen_fds;
pub mod lookup;
mod report;

use child::{ChildArgs, ChildFds};
use clone::{clone_vfork, ChildStack};
pub use env::{Env, EnvChanges};

/// Where in the child setup something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Cgroup = 1,
    Stdio = 2,
    Setgid = 3,
    Setgroups = 4,
    Setuid = 5,
    Exec = 6,
    Nice = 7,
    Rlimit = 8,
    Listen = 9,
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
            7 => Stage::Nice,
            8 => Stage::Rlimit,
            9 => Stage::Listen,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildFailure {
    pub stage: Option<Stage>,
    pub errno: Errno,
    /// Nice and Rlimit: what was refused (`-5`, `nofile to 1024:1024`).
    pub value: Option<String>,
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

    fn value(&self) -> &str {
        self.value.as_deref().unwrap_or("?")
    }

    pub fn describe(&self, program: &OsStr, cgroup: Option<&str>) -> String {
        let what = match self.stage {
            Some(Stage::Exec) => format!("failed to run {}", program.to_string_lossy()),
            Some(Stage::Cgroup) => format!("failed to join cgroup {}", cgroup.unwrap_or("")),
            Some(Stage::Stdio) => "failed to set up the program's stdio".to_string(),
            Some(Stage::Setgid) => "failed to set the group id".to_string(),
            Some(Stage::Setgroups) => "failed to set the supplementary groups".to_string(),
            Some(Stage::Setuid) => "failed to set the user id".to_string(),
            Some(Stage::Nice) => format!("failed to set nice value {}", self.value()),
            Some(Stage::Rlimit) => format!("failed to set rlimit {}", self.value()),
            Some(Stage::Listen) => "failed to pass the listening sockets".to_string(),
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
    supplementary_groups: Option<Vec<libc::gid_t>>,
    supplementary_groups_required: bool,
    /// `cgroup.procs` of the cgroup in every hierarchy it spans.
    cgroup_procs: Vec<OwnedFd>,
    /// The program's environment, if not ours (`execvpe` instead of `execvp`).
    env: Option<Env>,
    /// `--umask`, `--rlimit`, `--nice`.
    attrs: Attrs,
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
            supplementary_groups: creds.supplementary_groups.clone(),
            supplementary_groups_required: creds.supplementary_groups_required,
            cgroup_procs,
            env: None,
            attrs: Attrs::default(),
        })
    }

    /// Sets these attributes in the child before the privilege drop.
    pub fn with_attrs(mut self, attrs: Attrs) -> Plan {
        self.attrs = attrs;
        self
    }

    /// Runs the program with `env` instead of the port's environment.
    pub fn with_env(mut self, env: Env) -> Plan {
        self.env = Some(env);
        self
    }
}

pub struct Child {
    pub pid: Pid,
    /// Read end of the captured output pipe (non-blocking).
    pub output: Option<OwnedFd>,
    /// Our copies of the write ends of the BEAM's output pipes (OUTPUT,
    /// STDERR): kept until EXIT is written (`lifecycle::finish`), so the
    /// BEAM finds EXIT waiting when the output ends and reads both in one
    /// wake-up (docs/protocol.md, "Transport").
    pub held: Vec<OwnedFd>,
    /// Set when the child reported a setup or exec failure; it exits 127.
    pub failure: Option<ChildFailure>,
}

/// Descriptors the BEAM handed over for the program's stdio.
pub struct Direct {
    /// Where captured output goes; nothing to relay then.
    pub output: Option<OwnedFd>,
    /// The program's fd 0 instead of /dev/null.
    pub stdin: Option<OwnedFd>,
    /// The program's fd 2; only beside `Capture::Stdout`.
    pub stderr: Option<OwnedFd>,
    /// The program's fds 3, 4, ... (socket activation), at most
    /// `handover::MAX_FDS`.
    pub listen: Vec<OwnedFd>,
}

/// Maps this process's stack for the clone of a start now: the spawner
/// does so before its first fork, so that its supervisors inherit it
/// instead of each mapping its own (`clone::ChildStack`).
pub fn map_child_stack() -> nix::Result<()> {
    ChildStack::get().map(drop)
}

/// Forks and execs. `Err` only if nothing was forked; once a child exists
/// it is always returned so the caller can reap (and if needed kill) it.
/// Captured output goes into `direct.output` when given (`Child::output`
/// is `None`), else into a new pipe.
pub fn spawn(plan: Plan, direct: Direct) -> Result<Child, String> {
    let devnull = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("cannot open /dev/null: {}", e.desc()))?;
    let output = output_pipe(plan.capture, direct.output)?;
    let report = report::Slot::new(direct.listen.len())?;
    let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(AsRawFd::as_raw_fd);
    let fds = ChildFds {
        devnull: devnull.as_raw_fd(),
        out_w: output.as_ref().map(|(_, w)| w.as_raw_fd()),
        stdin: raw(&direct.stdin),
        stderr: raw(&direct.stderr),
        listen: direct.listen.iter().map(AsRawFd::as_raw_fd).collect(),
        report: report.sink(),
        procs: plan.cgroup_procs.iter().map(AsRawFd::as_raw_fd).collect(),
    };
    let stack = ChildStack::get().map_err(|e| format!("cannot map a stack: {}", e.desc()))?;
    let args = ChildArgs {
        plan: &plan,
        fds: &fds,
        parent: nix::unistd::getpid(),
    };
    let pid = clone_vfork(stack, &args).map_err(|e| format!("fork failed: {}", e.desc()))?;
    // A cmd/3's supervisor (one with an end notice) exits soon, and its
    // pages go with it: the call is saved on its critical path.
    if !crate::notice::asked() {
        stack.release_pages();
    }
    // Also set the process group here so it exists before we might signal it.
    // EACCES after the child exec'd is fine: it did it itself.
    let _ = setpgid(pid, pid);
    // The child has its copies. Ours would keep the BEAM's stdin write end
    // from EPIPE once the program closed its stdin, and a listening socket
    // open once the BEAM and the program closed theirs. The BEAM's output
    // pipes are held until EXIT.
    drop((devnull, direct.stdin, direct.listen));
    let mut held: Vec<OwnedFd> = direct.stderr.into_iter().collect();
    let output = output.and_then(|(r, w)| {
        match r {
            Some(_) => drop(w),
            None => held.push(w),
        }
        r
    });
    if let Some(r) = &output {
        if let Err(e) = set_nonblocking(r) {
            crate::log::warn!(error = %e, "cannot make the output pipe non-blocking");
        }
    }
    let failure = read_report(report).map(|r| {
        let mut f = r.failure;
        if let Some(stage) = f.stage {
            f.value = attrs::refused_value(&plan.attrs, stage, r.detail);
        }
        f
    });
    Ok(Child {
        pid,
        output,
        held,
        failure,
    })
}

/// (read end to relay from, if the pipe is ours; the child's write end)
type OutputPipe = (Option<OwnedFd>, OwnedFd);

fn output_pipe(capture: Capture, direct: Option<OwnedFd>) -> Result<Option<OutputPipe>, String> {
    Ok(match (capture, direct) {
        (Capture::None, _) => None,
        (_, Some(w)) => Some((None, w)),
        (_, None) => {
            let (r, w) = new_pipe()?;
            Some((Some(r), w))
        }
    })
}

fn new_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let err = |e: nix::Error| format!("cannot create a pipe: {}", e.desc());
    #[cfg(linux_native)]
    return pipe2(OFlag::O_CLOEXEC).map_err(err);
    // No pipe2 (macOS): close-on-exec right after. Only this single
    // thread forks, so no exec can come in between.
    #[cfg(not(linux_native))]
    {
        let (r, w) = nix::unistd::pipe().map_err(err)?;
        for fd in [&r, &w] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(err)?;
        }
        Ok((r, w))
    }
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// A failure as the child reported it: `detail` says which rlimit.
struct Report {
    failure: ChildFailure,
    detail: u8,
}

impl Report {
    fn new(stage: Option<Stage>, errno: Errno, detail: u8) -> Report {
        Report {
            failure: ChildFailure {
                stage,
                errno,
                value: None,
            },
            detail,
        }
    }
}

/// The child's report, once it has exec'd (`None`) or failed.
fn read_report(slot: report::Slot) -> Option<Report> {
    match slot.read() {
        Ok(None) => None,
        Ok(Some([stage, e0, e1, e2, e3, detail])) => Some(Report::new(
            Stage::from_u8(stage),
            Errno::from_raw(i32::from_ne_bytes([e0, e1, e2, e3])),
            detail,
        )),
        Err(e) => Some(Report::new(None, e, 0)),
    }
}

#[cfg(test)]
mod tests;
