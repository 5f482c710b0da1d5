//! The poll loop: relays output under the window (plain mode only; framed
//! output goes into a handed-over pipe and never reaches us), handles acks
//! or messages on stdin and signals, and drives termination.
//!
//! Phases: `Running` → `Terminating` (SIGTERM sent, SIGKILL at the
//! deadline, until no child is left) → `Draining` (cgroup gone, read the
//! pipe to EOF) → `Done`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::unistd::{read, Pid};

use crate::cgroup::Cgroup;
use crate::output::{self, Output};
use crate::protocol::{self, FrameDecoder, Inbound, ProtocolError, Window};
use crate::signals;
use crate::tree::{self, Reaper};

/// Largest single read from the output pipe.
const READ_CAP: usize = 128 * 1024;
/// Largest output pipe we ask for (the unprivileged default maximum).
const PIPE_MAX: usize = 1024 * 1024;
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
    stdin_open: bool,
    /// Set after a framed decoding error: the rest of stdin is unparseable.
    stdin_garbage: bool,
    decoder: FrameDecoder,
    pipe: Option<OwnedFd>,
    window: Window,
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
    /// Largest read when copying (`read_cap`).
    cap: usize,
    /// Read buffer (`cap` bytes), allocated only once output has to
    /// be copied: while splice(2) works it is never needed, and a 128 KiB
    /// buffer would be most of an idle port's private memory.
    buf: Vec<u8>,
    /// Stdin bytes read before we existed (during the hand-over).
    early_stdin: Vec<u8>,
}

pub struct Params {
    pub sigfd: SignalFd,
    pub out: Output,
    pub delay: Duration,
    pub window: u32,
    pub pid: Pid,
    pub pipe: Option<OwnedFd>,
    pub cgroup: Option<Cgroup>,
    pub error_status: Option<i32>,
    pub early_stdin: Vec<u8>,
}

fn ceil_ms(d: Duration) -> PollTimeout {
    let ms = d.as_nanos().div_ceil(1_000_000);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// The read buffer: the window bounds it, so a small window costs little memory.
fn read_cap(window: u32) -> usize {
    usize::try_from(window).map_or(READ_CAP, |w| w.min(READ_CAP))
}

/// A pipe larger than the default 64 KiB lets the program keep writing
/// while we wait for acks: fewer context switches per byte (measured in
/// `mix muontrap.bench`). Only for windows that could use it; failure (an
/// unprivileged process above `/proc/sys/fs/pipe-max-size`) is harmless.
fn grow_pipe(pipe: &OwnedFd, window: u32) {
    let want = usize::try_from(window).map_or(PIPE_MAX, |w| w.min(PIPE_MAX));
    if want > 64 * 1024 {
        // SAFETY: F_SETPIPE_SZ takes an int and only resizes the pipe's buffer.
        let r = unsafe {
            libc::fcntl(
                pipe.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX),
            )
        };
        if r < 0 {
            tracing::debug!(want, "cannot grow the output pipe");
        }
    }
}

impl Relay {
    pub fn new(p: Params) -> Relay {
        if let Some(pipe) = &p.pipe {
            grow_pipe(pipe, p.window);
        }
        Relay {
            sigfd: p.sigfd,
            out: p.out,
            delay: p.delay,
            stdin_open: true,
            stdin_garbage: false,
            decoder: FrameDecoder::default(),
            pipe: p.pipe,
            window: Window::new(p.window),
            discard: false,
            reaper: Reaper::new(p.pid),
            need_reap: true,
            any_left: true,
            pid: p.pid,
            cgroup: p.cgroup,
            phase: Phase::Running,
            error_status: p.error_status,
            cap: read_cap(p.window),
            buf: Vec::new(),
            early_stdin: p.early_stdin,
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
        let status = self.error_status.or(self.reaper.status).unwrap_or_else(|| {
            tracing::warn!("program status unknown");
            1
        });
        tracing::debug!(status, "finished");
        finish(&mut self.out, &self.sigfd, self.stdin_open, status);
        status
    }

    /// The pgid to signal: only while the program is unreaped (see
    /// `tree::signal_tree`).
    fn pgid(&self) -> Option<Pid> {
        self.reaper.status.is_none().then_some(self.pid)
    }

    fn start_terminate(&mut self, reason: &str) {
        if let Phase::Running = self.phase {
            tracing::debug!(reason, "terminating");
            tree::signal_tree(self.pgid(), Signal::SIGTERM);
            self.phase = Phase::Terminating {
                sigkill_at: Instant::now() + self.delay,
                last_kill: None,
            };
        }
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
                    if last_kill.is_none() {
                        tracing::debug!("delay expired, sending SIGKILL");
                    }
                    tree::signal_tree(self.pgid(), Signal::SIGKILL);
                    if let Some(cg) = &self.cgroup {
                        cg.kill_once();
                    }
                    self.phase = Phase::Terminating {
                        sigkill_at,
                        last_kill: Some(now),
                    };
                }
            }
            Phase::Draining { deadline } => {
                if self.pipe.is_none() {
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
                    self.pipe = None;
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    fn processes_gone(&mut self, now: Instant) {
        tracing::debug!("no processes left");
        if let Some(mut cg) = self.cgroup.take() {
            cg.destroy();
        }
        self.phase = if self.pipe.is_some() {
            Phase::Draining {
                deadline: now + DRAIN_GRACE,
            }
        } else {
            Phase::Done
        };
    }

    fn blocked_on_acks(&self) -> bool {
        !self.discard && self.window.available() == 0
    }

    fn timeout(&self, now: Instant) -> PollTimeout {
        match self.phase {
            Phase::Running | Phase::Done => PollTimeout::NONE,
            Phase::Terminating {
                sigkill_at,
                last_kill,
            } => {
                let next = match last_kill {
                    None => sigkill_at.min(now + RESCAN),
                    Some(t) => t + RESCAN,
                };
                ceil_ms(
                    next.saturating_duration_since(now)
                        .max(Duration::from_millis(1)),
                )
            }
            Phase::Draining { .. } if self.blocked_on_acks() => PollTimeout::NONE,
            Phase::Draining { deadline } => ceil_ms(deadline.saturating_duration_since(now)),
        }
    }

    fn poll_once(&mut self, now: Instant) {
        let read_pipe = !self.blocked_on_acks();
        let (sig_ready, stdin_ready, pipe_ready) = {
            let stdin = std::io::stdin();
            let mut fds = Vec::with_capacity(3);
            fds.push(PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN));
            let stdin_idx = self.stdin_open.then(|| {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let pipe_idx = match &self.pipe {
                Some(p) if read_pipe => {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            match poll(&mut fds, self.timeout(now)) {
                Ok(_) => {}
                Err(Errno::EINTR) => return,
                Err(e) => {
                    // Should not happen; avoid spinning on it.
                    tracing::error!(error = %e, "poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    return;
                }
            }
            let ready = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(Some(0)), ready(stdin_idx), ready(pipe_idx))
        };
        if sig_ready {
            let p = signals::drain(&self.sigfd);
            self.need_reap |= p.child;
            if let Some(sig) = p.terminate {
                self.start_terminate(sig.as_str());
            }
        }
        if stdin_ready {
            self.read_stdin();
        }
        // An ack that reopened the window: the pipe is usually readable, so
        // try it now instead of paying for another poll (it is non-blocking).
        if pipe_ready || (stdin_ready && !read_pipe && !self.blocked_on_acks()) {
            self.read_pipe();
        }
    }

    fn protocol_error(&mut self, e: ProtocolError) {
        if self.error_status.is_none() {
            self.out.error(&e.to_string());
            self.error_status = Some(1);
        }
        self.discard = true;
        self.start_terminate("protocol error");
    }

    fn read_stdin(&mut self) {
        let mut buf = [0u8; 4096];
        let n = match read(std::io::stdin().as_fd(), &mut buf) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading stdin failed");
                0
            }
        };
        if n == 0 {
            self.stdin_open = false;
            // The Erlang side is gone: nobody will ack or read output.
            self.discard = true;
            self.start_terminate("stdin closed");
            return;
        }
        self.consume_stdin(&buf[..n]);
    }

    /// Plain: acks. Framed: messages.
    fn consume_stdin(&mut self, bytes: &[u8]) {
        if self.stdin_garbage {
            return;
        }
        if !self.out.framed() {
            let acked = protocol::plain_ack_total(bytes);
            if let Err(e) = self.window.ack(acked) {
                self.protocol_error(e);
            }
            return;
        }
        self.decoder.push(bytes);
        loop {
            match self.decoder.next_message() {
                Ok(None) => break,
                Ok(Some(Inbound::Terminate)) => self.start_terminate("TERMINATE message"),
                Err(e) => {
                    self.stdin_garbage = true;
                    self.protocol_error(e);
                    break;
                }
            }
        }
    }

    fn read_pipe(&mut self) {
        let Some(pipe) = &self.pipe else { return };
        let cap = self.cap;
        // While splicing, a read only tells EOF from a spurious wakeup (or
        // picks up bytes that arrived since FIONREAD): a small buffer does.
        let mut small = [0u8; 512];
        let splicing = !self.discard && self.out.splicing();
        if splicing {
            let n = output::pipe_bytes(pipe.as_fd()).min(self.window.available().min(cap));
            if n > 0 {
                self.out.data_from_pipe(pipe.as_fd(), n);
                self.window.sent(n);
                if self.out.broken() {
                    self.discard = true;
                    self.start_terminate("stdout closed");
                }
                return;
            }
            // Nothing queued: EOF or a spurious wakeup; read() tells which.
        }
        let buf: &mut [u8] = if splicing {
            &mut small
        } else {
            if self.buf.is_empty() {
                self.buf = vec![0; cap];
            }
            &mut self.buf
        };
        let want = if self.discard {
            buf.len()
        } else {
            self.window.available().min(buf.len())
        };
        match read(pipe, &mut buf[..want]) {
            Ok(0) => {
                tracing::debug!("output pipe reached EOF");
                self.pipe = None;
            }
            Ok(n) => {
                if self.discard {
                    return;
                }
                self.out.data(&buf[..n]);
                self.window.sent(n);
                if self.out.broken() {
                    self.discard = true;
                    self.start_terminate("stdout closed");
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the output pipe failed");
                self.pipe = None;
            }
        }
    }
}

/// Last step in both modes. Framed: send EXIT, then wait for the Erlang
/// side to close stdin (or a terminating signal), so it never writes to a
/// port whose program is gone.
pub fn finish(out: &mut Output, sigfd: &SignalFd, stdin_open: bool, status: i32) {
    if !out.framed() {
        return;
    }
    out.exit(status);
    if !stdin_open || out.broken() {
        return;
    }
    let stdin = std::io::stdin();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "poll failed");
                return;
            }
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[0]) && signals::drain(sigfd).terminate.is_some() {
            return;
        }
        if ready(&fds[1]) {
            match read(stdin.as_fd(), &mut buf) {
                Ok(0) => return,
                Ok(_) | Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => return,
            }
        }
    }
}
