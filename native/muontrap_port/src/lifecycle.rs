//! The port's life once the program is spawned: relays output under the
//! window (plain mode only; framed output goes into a handed-over pipe and
//! never reaches us), handles acks or messages on stdin, signals and
//! notification datagrams, and drives termination.
//!
//! Phases: `Running` → `Terminating` (stop signal sent, SIGKILL at the
//! deadline, until no child is left) → `Draining` (cgroup gone, read the
//! pipe to EOF) → `Done`.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::signals::Signals;
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::main_process::MainProcess;
use crate::notify::Notifier;
use crate::output::Output;
use crate::protocol::FrameDecoder;
use crate::tree;
use crate::watchdog::Reason;

mod finish;
mod pipe;
mod processes;
mod stdin;
mod wait;

pub use finish::finish;
use pipe::Pipe;
use processes::Processes;
use stdin::Inbox;

/// How long the pipe may stay open once nothing we know of is alive.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// Re-scan (and re-kill) period while terminating: catches processes forked
/// after a scan, and exits we were not notified of.
const RESCAN: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
enum Phase {
    Running,
    Terminating {
        sigkill_at: Instant,
        last_kill: Option<Instant>,
    },
    Draining {
        deadline: Instant,
    },
    Done,
}

/// The stop sequence: `signal` (`--stop-signal`), then SIGKILL after
/// `delay` (`--delay-to-sigkill`).
#[derive(Debug, Clone, Copy)]
struct StopSequence {
    signal: libc::c_int,
    delay: Duration,
}

struct Lifecycle {
    sigfd: Signals,
    out: Output,
    stop: StopSequence,
    /// Where SIGNAL requests go.
    target: MainProcess,
    inbox: Inbox,
    decoder: FrameDecoder,
    pipe: Pipe,
    /// The BEAM's output pipes, held until EXIT (`spawn::Child::held`).
    held: Vec<OwnedFd>,
    processes: Processes,
    cgroup: Option<Cgroup>,
    phase: Phase,
    /// Status overriding the program's (muontrap-side error).
    error_status: Option<i32>,
    /// `--notify` / `--watchdog`: the notification socket and watchdog.
    notify: Option<Notifier>,
}

pub struct Params {
    pub sigfd: Signals,
    pub out: Output,
    pub delay: Duration,
    pub stop_signal: libc::c_int,
    pub target: MainProcess,
    pub window: u32,
    pub pid: Pid,
    pub pipe: Option<OwnedFd>,
    /// Closed once EXIT is written (`spawn::Child::held`).
    pub held: Vec<OwnedFd>,
    pub cgroup: Option<Cgroup>,
    pub error_status: Option<i32>,
    pub notify: Option<Notifier>,
}

/// Runs the program's lifecycle to completion; returns the exit status.
pub fn run(p: Params) -> i32 {
    Lifecycle {
        sigfd: p.sigfd,
        out: p.out,
        stop: StopSequence {
            signal: p.stop_signal,
            delay: p.delay,
        },
        target: p.target,
        inbox: Inbox::Open,
        decoder: FrameDecoder::default(),
        pipe: Pipe::new(p.pipe, p.window),
        held: p.held,
        processes: Processes::new(p.pid),
        cgroup: p.cgroup,
        phase: Phase::Running,
        error_status: p.error_status,
        notify: p.notify,
    }
    .run()
}

impl Lifecycle {
    fn run(mut self) -> i32 {
        // A setup error reported by the child: no point relaying under it.
        if self.error_status.is_some() {
            self.start_terminate("setup failed");
        }
        loop {
            let now = Instant::now();
            self.advance(now);
            if matches!(self.phase, Phase::Done) {
                break;
            }
            self.poll_once(now);
        }
        self.conclude()
    }

    /// After `Done`: what is pending goes out before EXIT; the socket closes.
    fn conclude(mut self) -> i32 {
        if let Some(mut n) = self.notify.take() {
            n.flush(&mut self.out, Instant::now(), true);
        }
        let status = self
            .error_status
            .or(self.processes.program_status())
            .unwrap_or_else(|| {
                crate::log::warn!("program status unknown");
                1
            });
        crate::log::debug!(status, "finished");
        let stdin_open = self.inbox != Inbox::Closed;
        let held = std::mem::take(&mut self.held);
        finish(&mut self.out, &self.sigfd, stdin_open, status, held);
        status
    }

    fn start_terminate(&mut self, reason: &str) {
        if let Phase::Running = self.phase {
            let signal = self.stop.signal;
            crate::log::debug!(reason, signal, "terminating");
            tree::signal_tree(self.processes.process_group(), signal);
            self.phase = Phase::Terminating {
                sigkill_at: Instant::now() + self.stop.delay,
                last_kill: None,
            };
        }
    }

    /// WATCHDOG (after what is pending), then termination as for TERMINATE.
    /// Only while running: once terminating there is nothing to add.
    fn watchdog_fired(&mut self, reason: Reason, now: Instant) {
        if !matches!(self.phase, Phase::Running) {
            return;
        }
        if let Some(n) = &mut self.notify {
            n.disarm();
            n.flush(&mut self.out, now, true);
        }
        self.out.watchdog(reason as u8);
        self.start_terminate(match reason {
            Reason::Timeout => "watchdog timeout",
            Reason::Trigger => "WATCHDOG=trigger",
        });
    }

    /// Moves the phase on; called once per loop iteration.
    fn advance(&mut self, now: Instant) {
        let terminating = matches!(self.phase, Phase::Terminating { .. });
        self.processes.reap(terminating);
        let any_left = self.processes.any_left();
        match self.phase {
            Phase::Running => {
                if !self.processes.program_running() || !any_left {
                    if any_left {
                        // The program exited on its own but left descendants.
                        self.start_terminate("program exited, descendants remain");
                    } else {
                        self.processes_gone(now);
                    }
                }
            }
            Phase::Terminating {
                sigkill_at,
                last_kill,
            } => {
                if !any_left {
                    self.processes_gone(now);
                } else if now >= sigkill_at && last_kill.is_none_or(|t| now >= t + RESCAN) {
                    self.kill_remaining(now, sigkill_at, last_kill.is_none());
                }
            }
            Phase::Draining { deadline } => self.drain_step(now, deadline),
            Phase::Done => {}
        }
        self.advance_notify(now);
    }

    fn kill_remaining(&mut self, now: Instant, sigkill_at: Instant, first: bool) {
        if first {
            crate::log::debug!("delay expired, sending SIGKILL");
        }
        tree::signal_tree(self.processes.process_group(), libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_once();
        }
        self.phase = Phase::Terminating {
            sigkill_at,
            last_kill: Some(now),
        };
    }

    fn processes_gone(&mut self, now: Instant) {
        crate::log::debug!("no processes left");
        if let Some(mut cg) = self.cgroup.take() {
            cg.destroy();
        }
        self.phase = if self.pipe.is_open() {
            Phase::Draining {
                deadline: now + DRAIN_GRACE,
            }
        } else {
            Phase::Done
        };
    }

    fn drain_step(&mut self, now: Instant, deadline: Instant) {
        if !self.pipe.is_open() {
            self.phase = Phase::Done;
        } else if self.pipe.blocked_on_acks() {
            // Waiting for the Erlang side is not a stuck pipe.
            self.phase = Phase::Draining {
                deadline: now + DRAIN_GRACE,
            };
        } else if now >= deadline {
            crate::log::warn!(
                "output pipe still open 1s after the program and its descendants exited; \
                 something outside holds it, not draining further"
            );
            self.pipe.close();
            self.phase = Phase::Done;
        }
    }

    /// The watchdog (while running) and a due NOTIFY summary.
    fn advance_notify(&mut self, now: Instant) {
        let running = matches!(self.phase, Phase::Running);
        if running
            && self
                .notify
                .as_ref()
                .is_some_and(|n| n.watchdog_expired(now))
        {
            self.watchdog_fired(Reason::Timeout, now);
        }
        if let Some(n) = &mut self.notify {
            n.flush(&mut self.out, now, false);
        }
    }
}
