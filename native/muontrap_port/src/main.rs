//! `muontrap`: runs one program contained (own process group, optional
//! cgroup, parent-death signal, subreaper for everything it starts) and
//! hands its output to the BEAM: straight into a pipe the BEAM passed over
//! a Unix socket, or relayed with flow control (plain mode).
//!
//! Two ways to start, one value to run (`muontrap_command::Command`):
//! `muontrap --spawner` is the library's: the resident spawner forks a
//! supervisor per command, which receives the command and its
//! descriptors over its own channel and speaks the framed protocol there
//! (`spawner.rs`, `supervisor.rs`); anything else is the plain command
//! line, parsed into the same value. Both are specified in
//! `docs/protocol.md`.
//!
//! `#![no_main]`: the C `main` below skips std's runtime init (a
//! `/proc/self/maps` read for the stack guard, a sigaltstack and SIGSEGV/
//! SIGBUS handlers), syscalls paid on every run of a short command (how
//! many: docs/performance.md); what of it the port needs (SIGPIPE ignored,
//! fds 0-2 open) it does itself. std's argument access still works: glibc
//! hands argv to std's `.init_array` hook. (Test builds keep std's main,
//! which the test harness provides.)
#![cfg_attr(not(test), no_main)]

mod cgroup;
mod fds;
mod handover;
mod lifecycle;
mod listen;
mod log;
mod main_process;
#[cfg(all(
    panic = "abort",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm"),
    target_os = "linux",
    target_env = "gnu"
))]
mod no_unwind;
mod notice;
mod notify;
mod output;
mod pidfd;
mod privileges;
mod protocol;
mod signals;
mod spawn;
mod spawner;
mod supervisor;
mod threads;
mod tree;
mod watchdog;

/// The property tests' bounds on what a parser allocates are measured with
/// this (docs/reliability.md, "Fuzzing"); the shipped binary keeps the
/// system allocator.
#[cfg(test)]
#[global_allocator]
static PEAK_ALLOC: muontrap_peak_alloc::PeakAlloc = muontrap_peak_alloc::PeakAlloc;

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use cgroup::Cgroup;
use handover::Handover;
use lifecycle::Params;
use main_process::MainProcess;
use muontrap_command::cli::{self, Parsed};
use muontrap_command::Command;
use muontrap_wire::channel::SPAWNER_ARG;
use notify::Notifier;
use output::Output;
use privileges::SystemDirectory;

#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: SIG_IGN installs no handler code. Like std's runtime init: a
    // closed stdout shows up as EPIPE, also for `--help` and usage errors.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Returning runs libc's exit(), as std::process::exit would.
    match argv.as_slice() {
        // Exactly this one argument: how the NIF starts it. A program
        // named `--spawner` on the plain command line follows `--`.
        [flag] if flag == SPAWNER_ARG => spawner::run(),
        _ => plain(&argv),
    }
}

/// The plain command line: usage errors on stderr, output relayed.
fn plain(argv: &[OsString]) -> i32 {
    match cli::parse(argv) {
        Ok(Parsed::Help) => {
            let _ = std::io::stdout().write_all(cli::usage().as_bytes());
            0
        }
        Err(e) => fail(&mut Output::new(false), None, &e.to_string()),
        Ok(Parsed::Run(cmd)) => {
            log::init_from_env();
            let mut out = Output::new(false);
            match prepare() {
                Ok(sigfd) => run(&cmd, out, sigfd, Handover::default()),
                Err(msg) => fail(&mut out, None, &msg),
            }
        }
    }
}

/// A supervisor's work, once it said HELLO on its channel (stdin and
/// stdout): the command and its descriptors come in the HANDOVER frame,
/// before any privilege, cgroup or process work, so a caller that is gone
/// gets nothing started. Every report is a frame.
pub(crate) fn library() -> i32 {
    log::init_from_env();
    let mut out = Output::new(true);
    let prepared = prepare();
    // Written at once, not with the first frame: the BEAM learns the
    // supervisor's pid (os_pid/1) before the HANDOVER is read.
    if !supervisor::write_hello() {
        return 0;
    }
    let sigfd = match prepared {
        Ok(fd) => fd,
        Err(msg) => return fail(&mut out, None, &msg),
    };
    let received = handover::receive(&sigfd);
    if received.is_err() {
        supervisor::start_over();
    }
    match received {
        Ok((handover, cmd)) => run(&cmd, out, sigfd, handover),
        // Nobody to report to, nothing started.
        Err(handover::HandoverError::Closed) => 0,
        Err(e) => {
            out.error(&e.to_string());
            lifecycle::finish(&mut out, &sigfd, e.wait_for_close(), 1, Vec::new());
            1
        }
    }
}

/// Reports an error that ends the port before any program runs; returns
/// the exit status, 1. Plain: a stderr line. Framed: ERROR and EXIT, then,
/// given signal handling to wait with, the wait for stdin EOF that follows
/// every EXIT (without it, ERROR and EXIT only: nothing to wait with).
fn fail(out: &mut Output, sigfd: Option<&signals::Signals>, msg: &str) -> i32 {
    out.error(msg);
    match sigfd {
        Some(fd) => lifecycle::finish(out, fd, true, 1, Vec::new()),
        None => out.exit(1),
    }
    1
}

/// What the port needs before it can speak either protocol: fds 0-2 open,
/// and its signals on a signalfd, so that a SIGTERM from now on is queued,
/// not fatal.
fn prepare() -> Result<signals::Signals, String> {
    ensure_std_fds()?;
    signals::install().map_err(|e| format!("cannot set up signal handling: {}", e.desc()))
}

/// Makes sure fds 0-2 are open, so no pipe or file we open later lands on
/// them and gets clobbered by the child's stdio setup.
pub(crate) fn ensure_std_fds() -> Result<(), String> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only queries the flags of an integer fd.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            let null = open("/dev/null", OFlag::O_RDWR, Mode::empty())
                .map_err(|e| format!("cannot open /dev/null: {}", e.desc()))?;
            // open() returned the lowest free fd, i.e. `fd`: keep it open.
            let _ = null.into_raw_fd();
        }
    }
    Ok(())
}

fn run(cmd: &Command, mut out: Output, sigfd: signals::Signals, handover: Handover) -> i32 {
    // On error no child exists; a created cgroup was removed by its Drop.
    let Started {
        child,
        cgroup,
        notify,
        target,
    } = match start(cmd, handover) {
        Ok(started) => started,
        Err(msg) => {
            supervisor::start_over();
            return fail(&mut out, Some(&sigfd), &msg);
        }
    };
    let error_status = match &child.failure {
        Some(f) => {
            if f.stage == Some(spawn::Stage::Exec) {
                out.exec_error(f.errno as i32);
            }
            out.error(&f.describe(&cmd.program, cmd.cgroup_path.as_deref()));
            Some(f.status())
        }
        None => {
            crate::log::debug!(pid = child.pid.as_raw(), "program started");
            out.started(child.pid.as_raw() as u32);
            None
        }
    };
    // Reported: the spawner may fork its next standby now, while the BEAM
    // reads the report and the command runs.
    supervisor::start_over();
    lifecycle::run(Params {
        sigfd,
        out,
        delay: Duration::from_millis(u64::from(cmd.delay_to_sigkill_ms)),
        stop_signal: cmd.stop_signal.0,
        target,
        window: cmd.window,
        pid: child.pid,
        pipe: child.output,
        held: child.held,
        cgroup,
        error_status,
        notify,
    })
}

/// What `start` set up.
struct Started {
    child: spawn::Child,
    cgroup: Option<Cgroup>,
    notify: Option<Notifier>,
    target: MainProcess,
}

/// Setup up to and including the fork. Handed-over pipes become the
/// program's stdio, LISTEN sockets its fds 3, 4, ...; without OUTPUT,
/// captured output goes into a pipe of ours that the relay reads. The
/// notification socket is made before the fork, as its name goes into the
/// program's environment.
fn start(cfg: &Command, handover: Handover) -> Result<Started, String> {
    if let Some(dir) = &cfg.cd {
        nix::unistd::chdir(dir.0.as_os_str()).map_err(|e| {
            format!(
                "cannot change directory to {}: {}",
                dir.0.to_string_lossy(),
                e.desc()
            )
        })?;
    }
    // Orphaned descendants must reparent to us so we can find and reap them.
    tree::become_reaper().map_err(|e| format!("cannot become a child subreaper: {}", e.desc()))?;
    let creds = privileges::resolve(
        &SystemDirectory,
        cfg.uid.as_ref(),
        cfg.gid.as_ref(),
        cfg.supplementary_groups.as_deref(),
        nix::unistd::getegid().as_raw(),
    )
    .map_err(|e| e.to_string())?;
    #[cfg(not(linux_native))]
    if let Some(c) = cfg.cgroup() {
        return Err(format!("cannot use cgroup {}: cgroups need Linux", c.path));
    }
    let cgroup = cfg.cgroup().map(|c| make_cgroup(cfg, &c)).transpose()?;
    let procs = cgroup
        .as_ref()
        .map(Cgroup::open_procs)
        .transpose()?
        .unwrap_or_default();
    let arg0 = cfg.arg0.as_ref().unwrap_or(&cfg.program);
    let found = lookup_program(cfg);
    let program = found.as_deref().unwrap_or(&cfg.program);
    let mut plan = spawn::Plan::new(program, arg0, &cfg.args, cfg.capture, &creds, procs)
        .map_err(|e| e.to_string())?
        .with_attrs(spawn::Attrs {
            umask: cfg.umask,
            nice: cfg.nice,
            rlimits: cfg.rlimits.0.clone(),
        });
    let socket = cfg.notify_socket().then(notify::create).transpose()?;
    let notify_name = socket.as_ref().map(|(_, name)| name.as_str());
    if let Some(env) = program_env(cfg, notify_name, handover.listen.len())? {
        plan = plan.with_env(env);
    }
    let direct = spawn::Direct {
        output: handover.output,
        stdin: handover.stdin,
        stderr: handover.stderr,
        listen: handover.listen,
    };
    let child = spawn::spawn(plan, direct)?;
    // Before anything reaps: the pid is certainly the program's.
    let target = MainProcess::for_program(child.pid);
    // A program that never ran has nothing to say.
    let socket = socket.filter(|_| child.failure.is_none());
    let notify = socket.map(|(sock, _)| {
        let interval = cfg
            .watchdog_ms
            .map(|ms| Duration::from_millis(u64::from(ms)));
        Notifier::for_program(sock, child.pid, cgroup.as_ref(), interval, cfg.notify.0)
    });
    Ok(Started {
        child,
        cgroup,
        notify,
        target,
    })
}

/// The program's path in `PATH` (the BEAM's of the moment, else ours),
/// found before the clone (`spawn::lookup`). Not for a program run as
/// another user: whether it may run a file is for the kernel to say
/// after the switch, as execvp lets it.
fn lookup_program(cfg: &Command) -> Option<std::ffi::OsString> {
    if cfg.uid.is_some() || cfg.gid.is_some() {
        return None;
    }
    let path = match &cfg.base_env {
        Some(env) => env.get(b"PATH").map(ToOwned::to_owned),
        None => std::env::var_os("PATH"),
    };
    spawn::lookup::resolve(&cfg.program, path.as_deref())
}

/// The cgroup path and setting file names, as the plain command line
/// checks them (the library's were checked by `MuonTrap.Options`, with the
/// same code through the NIF).
fn check_cgroup(c: &muontrap_command::CgroupConfig<'_>) -> Result<(), String> {
    use muontrap_cgroup::path::{validate_cgroup_path, validate_file_name};
    validate_cgroup_path(c.path).map_err(|e| format!("invalid cgroup path '{}': {e}", c.path))?;
    for (file, _) in c.settings {
        validate_file_name(file).map_err(|e| format!("invalid cgroup file '{file}': {e}"))?;
    }
    Ok(())
}

/// The program's cgroup, by the layout the BEAM handed over, or (the
/// plain command line, a BEAM without cgroupfs) by the one detected now.
fn make_cgroup(cfg: &Command, c: &muontrap_command::CgroupConfig<'_>) -> Result<Cgroup, String> {
    // Checked again whatever the source: the path and file names are
    // joined to cgroupfs mount points.
    check_cgroup(c)?;
    let detected;
    let layout = match &cfg.cgroup_layout {
        // The library's start: the BEAM's layout, detected once per VM
        // (its `own` groups are ours: we are the BEAM's child and start
        // in its cgroups).
        Some(handed) => {
            check_layout(handed)?;
            handed
        }
        // The plain command line (or a BEAM without cgroupfs): the
        // hierarchies as they are now.
        None => {
            detected = muontrap_cgroup::layout::Layout::detect()
                .map_err(|e| format!("cannot use cgroup {}: {e}", c.path))?;
            &detected
        }
    };
    Cgroup::create(layout, c)
}

/// A handed layout is joined to paths as a detected one is: mount points
/// absolute, own groups relative without `.` or `..`, as detection
/// makes them.
fn check_layout(layout: &muontrap_cgroup::layout::Layout) -> Result<(), String> {
    use muontrap_cgroup::path::validate_cgroup_path;
    for h in layout.v2.iter().chain(&layout.v1) {
        let bad = |why: &str| format!("invalid cgroup layout: {}: {why}", h.describe());
        if !h.mount_point.is_absolute() {
            return Err(bad("the mount point is not an absolute path"));
        }
        match h.own.as_deref() {
            None | Some("") => {}
            Some(own) => validate_cgroup_path(own).map_err(|e| bad(&format!("own group {e}")))?,
        }
    }
    Ok(())
}

/// The program's environment, if it differs from ours: the BEAM's of the
/// moment (`base_env`) instead of ours, the caller's changes, the
/// notification socket's variables, the LISTEN ones (`listen`
/// descriptors; inherited values are always dropped).
fn program_env(
    cfg: &Command,
    notify_name: Option<&str>,
    listen: usize,
) -> Result<Option<spawn::Env>, String> {
    let mut changes = spawn::EnvChanges {
        caller: cfg
            .env
            .iter()
            .map(|(k, v)| (k.0.clone(), v.as_ref().map(|v| v.0.clone())))
            .collect(),
        replace_inherited: cfg.base_env.is_some(),
        ..spawn::EnvChanges::default()
    };
    if let Some(name) = notify_name {
        notify::env_changes(name, cfg.watchdog_ms, &mut changes);
    }
    let names = cfg.listen_fdnames.as_ref().map(|n| n.0.as_slice());
    listen::env_changes(listen, names, &mut changes);
    let ours;
    let base = match &cfg.base_env {
        Some(base) => base,
        None => {
            ours = own_env();
            &ours
        }
    };
    spawn::Env::new(base, &changes).map_err(|e| e.to_string())
}

/// Our own environment as a block (the plain command line): what
/// `vars_os` yields but a name with `=` (glibc allows one at the start),
/// which no block can hold. Nothing else is refused: the environment
/// holds no NUL, and `vars_os` yields no empty name.
fn own_env() -> muontrap_command::EnvBlock {
    use std::os::unix::ffi::OsStrExt;
    let pairs: Vec<_> = std::env::vars_os()
        .filter(|(k, _)| !k.is_empty() && !k.as_bytes().contains(&b'='))
        .collect();
    let pairs = pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
    muontrap_command::EnvBlock::from_pairs(pairs).unwrap_or_default()
}
