//! The port's own signal handling: everything it cares about is blocked and
//! read synchronously from a signalfd in the poll loop, so there are no
//! handlers and no races with the single thread. Without signalfd (macOS,
//! FreeBSD, the `portable` build) a handler writes each signal's number
//! into a pipe the poll loop reads instead (`self_pipe.rs`).

use nix::sys::signal::Signal;
#[cfg(linux_native)]
use nix::sys::signal::{self, SigSet, SigmaskHow};
#[cfg(linux_native)]
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What the poll loop reads signals from (`as_fd`, `drain`).
#[cfg(linux_native)]
pub type Signals = SignalFd;
#[cfg(not(linux_native))]
pub use self_pipe::Signals;

#[cfg(not(linux_native))]
mod self_pipe;

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
#[cfg(linux_native)]
pub fn install() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for s in TERMINATING {
        mask.add(s);
    }
    signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

#[cfg(not(linux_native))]
pub use self_pipe::install;

/// Reads every queued signal without blocking.
#[cfg(linux_native)]
pub fn drain(fd: &SignalFd) -> Pending {
    let mut p = Pending::default();
    while let Ok(Some(info)) = fd.read_signal() {
        p.add(info.ssi_signo as i32);
    }
    p
}

#[cfg(not(linux_native))]
pub use self_pipe::drain;
#[cfg(not(linux_native))]
pub use self_pipe::reset_in_child;

impl Pending {
    fn add(&mut self, signo: i32) {
        let Ok(sig) = Signal::try_from(signo) else {
            return;
        };
        if sig == Signal::SIGCHLD {
            self.child = true;
        } else if TERMINATING.contains(&sig) {
            self.terminate = Some(sig);
        }
    }
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
    for sig in 1..=muontrap_wire::signals::sigrtmax() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}
