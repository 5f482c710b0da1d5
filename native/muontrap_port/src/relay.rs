//! The poll loop: relays output under the window (plain mode only; framed
//! output goes into a handed-over pipe and never reaches us), handles acks
//! or messages on stdin, signals and notification datagrams, and drives
//! termination.
//!
//! Phases: `Running` → `Terminating` (stop signal sent, SIGKILL at the
//! deadline, until no child is left) → `Draining` (cgroup gone, read the
//! pipe to EOF) → `Done`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::main_process::MainProcess;
use crate::notify::Notifier;
use crate::output::Output;
use crate::protocol::FrameDecoder;
use crate::signals;
use crate::tree::{self, Reaper};
use crate::watchdog::Reason;

mod finish;
mod pipe;
mod stdin;

pub use finish::finish;
use pipe::Pipe;

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

pub struct Relay {
    sigfd: SignalFd,
    out: Output,
    delay: Duration,
    /// `--stop-signal`: the first signal of the stop sequence.
    stop_signal: libc::c_int,
    /// Where SIGNAL requests go.
    target: MainProcess,
    stdin_open: bool,
    /// Set after a framed decoding error: the rest of stdin is unparseable.
    stdin_garbage: bool,
    decoder: FrameDecoder,
    pipe: Pipe,
    /// Nobody can ack any more (stdin EOF, stdout gone, protocol error):
    /// read the pipe unthrottled and drop the data.
    discard: bool,
    reaper: Reaper,
    /// SIGCHLD seen since the last reap (waitpid is not free at 16-byte
    /// windows, so it is not run on every iteration).
    need_reap: bool,
    any_left: bool,
    pid: Pid,
    cgroup: Option<Cgroup>,
    phase: Phase,
    /// Status overriding the program's (muontrap-side error).
    error_status: Option<i32>,
    /// Stdin bytes read before we existed (during the hand-over).
    early_stdin: Vec<u8>,
    /// `--notify` / `--watchdog`: the notification socket and watchdog.
    notify: Option<Notifier>,
}

pub struct Params {
    pub sigfd: SignalFd,
    pub out: Output,
    pub delay: Duration,
    pub stop_signal: libc::c_int,
    pub target: MainProcess,
    pub window: u32,
    pub pid: Pid,
    pub pipe: Option<OwnedFd>,
    pub cgroup: Option<Cgroup>,
    pub error_status: Option<i32>,
    pub early_stdin: Vec<u8>,
    pub notify: Option<Notifier>,
}

/// Which of the polled descriptors are ready.
#[derive(Default)]
struct Ready {
    sig: bool,
    stdin: bool,
    pipe: bool,
    notify: bool,
}

fn ceil_ms(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

impl Relay {
    pub fn new(p: Params) -> Relay {
        Relay {
            sigfd: p.sigfd,
            out: p.out,
            delay: p.delay,
            stop_signal: p.stop_signal,
            target: p.target,
            stdin_open: true,
            stdin_garbage: false,
            decoder: FrameDecoder::default(),
            pipe: Pipe::new(p.pipe, p.window),
            discard: false,
            reaper: Reaper::new(p.pid),
            need_reap: true,
            any_left: true,
            pid: p.pid,
            cgroup: p.cgroup,
            phase: Phase::Running,
            error_status: p.error_status,
            early_stdin: p.early_stdin,
            notify: p.notify,
        }
    }

    /// Runs to completion and returns the exit status.
    pub fn run(mut self) -> i32 {
        // A setup error reported by the child: no point relaying under it.
        if self.error_status.is_some() {
            self.start_terminate("setup failed");
        }
        let early = std::mem::take(&mut self.early_stdin);
        if !early.is_empty() {
            self.consume_stdin(&early);
        }
        loop {
            let now = Instant::now();
            self.advance(now);
            if matches!(self.phase, Phase::Done) {
                break;
            }
            self.poll_once(now);
        }
        // What is pending goes out before EXIT; the socket closes.
        if let Some(mut n) = self.notify.take() {
            n.flush(&mut self.out, Instant::now(), true);
        }
        let status = self.error_status.or(self.reaper.status).unwrap_or_else(|| {
            tracing::warn!("program status unknown");
            1
        });
        tracing::debug!(status, "finished");
        finish(&mut self.out, &self.sigfd, self.stdin_open, status);
        status
    }

    /// The program's process group to signal: only while the program is unreaped (see
    /// `tree::signal_tree`).
    fn process_group(&self) -> Option<Pid> {
        self.reaper.status.is_none().then_some(self.pid)
    }

    fn start_terminate(&mut self, reason: &str) {
        if let Phase::Running = self.phase {
            tracing::debug!(reason, signal = self.stop_signal, "terminating");
            tree::signal_tree(self.process_group(), self.stop_signal);
            self.phase = Phase::Terminating {
                sigkill_at: Instant::now() + self.delay,
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

    /// Moves the state machine on; called once per loop iteration.
    fn advance(&mut self, now: Instant) {
        if self.need_reap || matches!(self.phase, Phase::Terminating { .. }) {
            self.need_reap = false;
            self.any_left = self.reaper.reap();
        }
        let any_left = self.any_left;
        match self.phase {
            Phase::Running => {
                if self.reaper.status.is_some() || !any_left {
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
            tracing::debug!("delay expired, sending SIGKILL");
        }
        tree::signal_tree(self.process_group(), libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_once();
        }
        self.phase = Phase::Terminating {
            sigkill_at,
            last_kill: Some(now),
        };
    }

    fn drain_step(&mut self, now: Instant, deadline: Instant) {
        if !self.pipe.is_open() {
            self.phase = Phase::Done;
        } else if self.blocked_on_acks() {
            // Waiting for the Erlang side is not a stuck pipe.
            self.phase = Phase::Draining {
                deadline: now + DRAIN_GRACE,
            };
        } else if now >= deadline {
            tracing::warn!(
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

    fn processes_gone(&mut self, now: Instant) {
        tracing::debug!("no processes left");
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

    fn blocked_on_acks(&self) -> bool {
        !self.discard && self.pipe.window_full()
    }

    fn timeout(&self, now: Instant) -> PollTimeout {
        let phase_wake = match self.phase {
            Phase::Running | Phase::Done => None,
            Phase::Terminating {
                sigkill_at,
                last_kill,
            } => {
                let next = match last_kill {
                    None => sigkill_at.min(now + RESCAN),
                    Some(t) => t + RESCAN,
                };
                Some(next.max(now + Duration::from_millis(1)))
            }
            Phase::Draining { .. } if self.blocked_on_acks() => None,
            Phase::Draining { deadline } => Some(deadline),
        };
        let running = matches!(self.phase, Phase::Running);
        let notify_wake = self.notify.as_ref().and_then(|n| n.wake_at(running, now));
        match phase_wake.into_iter().chain(notify_wake).min() {
            Some(t) => ceil_ms(t.saturating_duration_since(now)),
            None => PollTimeout::NONE,
        }
    }

    /// Polls everything we wait on; `None` if interrupted.
    fn wait(&self, now: Instant, read_pipe: bool) -> Option<Ready> {
        let stdin = std::io::stdin();
        let mut fds = Vec::with_capacity(4);
        let mut add = |fd, on: bool| {
            on.then(|| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            })
        };
        let sig = add(self.sigfd.as_fd(), true);
        let stdin_idx = add(stdin.as_fd(), self.stdin_open);
        let pipe_idx = self.pipe.fd().and_then(|p| add(p, read_pipe));
        let notify_idx = self.notify.as_ref().and_then(|n| add(n.fd(), true));
        match poll(&mut fds, self.timeout(now)) {
            Ok(_) => {}
            Err(Errno::EINTR) => return None,
            Err(e) => {
                // Should not happen; avoid spinning on it.
                tracing::error!(error = %e, "poll failed");
                std::thread::sleep(Duration::from_millis(10));
                return None;
            }
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .is_some_and(|r| !r.is_empty())
        };
        Some(Ready {
            sig: ready(sig),
            stdin: ready(stdin_idx),
            pipe: ready(pipe_idx),
            notify: ready(notify_idx),
        })
    }

    fn poll_once(&mut self, now: Instant) {
        let read_pipe = !self.blocked_on_acks();
        let Some(ready) = self.wait(now, read_pipe) else {
            return;
        };
        if ready.sig {
            let p = signals::drain(&self.sigfd);
            self.need_reap |= p.child;
            if let Some(sig) = p.terminate {
                self.start_terminate(sig.as_str());
            }
        }
        if ready.stdin {
            self.read_stdin();
        }
        // Before any reap: a sender that just exited is still a zombie then.
        if ready.notify {
            if let Some(reason) = self.notify.as_mut().and_then(Notifier::read) {
                self.watchdog_fired(reason, Instant::now());
            }
        }
        // An ack that reopened the window: the pipe is usually readable, so
        // try it now instead of paying for another poll (it is non-blocking).
        if ready.pipe || (ready.stdin && !read_pipe && !self.blocked_on_acks()) {
            self.read_pipe();
        }
    }

    fn read_pipe(&mut self) {
        if self.pipe.read(&mut self.out, self.discard) {
            self.discard = true;
            self.start_terminate("stdout closed");
        }
    }
}
