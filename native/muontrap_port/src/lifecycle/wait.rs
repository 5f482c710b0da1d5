//! One turn of the poll loop: how long to sleep (the phase's next
//! deadline, the watchdog's), what to wait on, and handling what woke us.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::stdin::Inbox;
use super::{Lifecycle, Phase, RESCAN};
use crate::notify::Notifier;
use crate::signals;

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

impl Lifecycle {
    /// Waits for the next event and handles it.
    pub(super) fn poll_once(&mut self, now: Instant) {
        let read_pipe = !self.pipe.blocked_on_acks();
        let Some(ready) = self.wait(now, read_pipe) else {
            return;
        };
        if ready.sig {
            let p = signals::drain(&self.sigfd);
            if p.child {
                self.processes.child_exited();
            }
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
        if ready.pipe || (ready.stdin && !read_pipe && !self.pipe.blocked_on_acks()) {
            self.read_pipe();
        }
    }

    fn read_pipe(&mut self) {
        if self.pipe.read(&mut self.out) {
            self.pipe.discard();
            self.start_terminate("stdout closed");
        }
    }

    /// When the phase or the watchdog needs us next, as a poll timeout.
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
            Phase::Draining { .. } if self.pipe.blocked_on_acks() => None,
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
        let stdin_idx = add(stdin.as_fd(), self.inbox != Inbox::Closed);
        let pipe_idx = self.pipe.fd().and_then(|p| add(p, read_pipe));
        let notify_idx = self.notify.as_ref().and_then(|n| add(n.fd(), true));
        match poll(&mut fds, self.timeout(now)) {
            Ok(_) => {}
            Err(Errno::EINTR) => return None,
            Err(e) => {
                // Should not happen; avoid spinning on it.
                crate::log::error!(error = %e, "poll failed");
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
}
