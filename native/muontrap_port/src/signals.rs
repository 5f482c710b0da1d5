//! The port's own signal handling: everything it cares about is blocked and
//! read synchronously from a signalfd in the poll loop, so there are no
//! handlers and no races with the single thread.

use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals that start termination. SIGHUP counts: the controlling side is
/// gone.
const TERMINATING: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub child: bool,
    pub terminate: Option<Signal>,
}

/// Blocks the handled signals and returns the signalfd to poll. (SIGPIPE
/// is ignored once, first thing in `main`, so that `--help` and usage
/// errors see EPIPE too.)
pub fn install() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in TERMINATING {
        mask.add(s);
    }
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Reads every queued signal without blocking.
pub fn drain(fd: &SignalFd) -> Pending {
    let mut p = Pending::default();
    while let Ok(Some(info)) = fd.read_signal() {
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig == Signal::SIGCHLD {
            p.child = true;
        } else if TERMINATING.contains(&sig) {
            p.terminate = Some(sig);
        }
    }
    p
}

/// Set in a supervisor once its dispositions are known: all default but
/// SIGPIPE's, ignored (the spawner starts from defaults, `spawner.rs`).
/// The program's start then resets SIGPIPE alone.
static ONLY_PIPE_IGNORED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_only_pipe_ignored() {
    ONLY_PIPE_IGNORED.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn only_pipe_ignored() -> bool {
    ONLY_PIPE_IGNORED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Every catchable signal back to its default disposition (what an
/// exec'd process may have inherited as ignored).
pub fn all_default() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}
