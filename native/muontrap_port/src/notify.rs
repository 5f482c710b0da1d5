//! sd_notify for the program (`--notify`, `--watchdog`): the socket it
//! sends to, the sender check, the coalesced NOTIFY frames and the
//! watchdog. The relay polls `Notifier::fd` and calls the hooks below;
//! `docs/protocol.md`, "Notification socket", has the semantics.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::main_process::{self, Pinned};
use crate::output::Output;
use crate::spawn::EnvChanges;
use crate::watchdog::{Reason, Watchdog};

mod coalesce;
mod parse;
#[cfg(test)]
mod props;
pub mod sender;
#[cfg_attr(not(linux_native), path = "notify/no_socket.rs")]
mod socket;

use coalesce::{Coalescer, Key};
use parse::Msg;
use sender::{Containment, Verdict};
use socket::{Received, MAX_DATAGRAM};

pub use socket::create;

/// Most datagrams read per wakeup, so the other descriptors get their turn.
const BATCH: usize = 64;

/// The program's environment: ours, with `NOTIFY_SOCKET` naming the socket
/// (`@` for the abstract namespace, as sd_notify(3) expects) and, with a
/// watchdog, `WATCHDOG_USEC` and `WATCHDOG_PID` (filled in by the child).
/// Inherited `WATCHDOG_*` variables describe someone else's watchdog: they
/// are replaced, or removed without `--watchdog`.
pub fn env_changes(socket_name: &str, watchdog_ms: Option<u32>, changes: &mut EnvChanges) {
    changes
        .set
        .push(("NOTIFY_SOCKET", format!("@{socket_name}")));
    changes.remove.extend(["WATCHDOG_USEC", "WATCHDOG_PID"]);
    if let Some(ms) = watchdog_ms {
        let usec = (u64::from(ms) * 1000).to_string();
        changes.set.push(("WATCHDOG_USEC", usec));
        changes.pids.push("WATCHDOG_PID");
    }
}

pub struct Notifier {
    sock: OwnedFd,
    control: Vec<u8>,
    containment: Containment,
    coalescer: Coalescer,
    watchdog: Watchdog,
    /// The accepted `MAINPID`, pinned (see `main_process::pin`).
    main_pidfd: Option<OwnedFd>,
}

impl Notifier {
    /// `sock` from `create`; `watchdog` set up at the program's exec.
    pub fn new(sock: OwnedFd, containment: Containment, watchdog: Watchdog) -> Notifier {
        Notifier {
            sock,
            control: socket::control_buffer(),
            containment,
            coalescer: Coalescer::default(),
            watchdog,
            main_pidfd: None,
        }
    }

    /// For the program `pid`, just exec'd: senders are checked against its
    /// cgroup if it has one, else against the port's process tree. The
    /// watchdog (`interval` from `--watchdog`) starts now, or at READY with
    /// `await_ready` (`--notify`).
    pub fn for_program(
        sock: OwnedFd,
        pid: Pid,
        cgroup: Option<&Cgroup>,
        interval: Option<Duration>,
        await_ready: bool,
    ) -> Notifier {
        let containment = match cgroup.and_then(Cgroup::tracking_hierarchy) {
            Some((version, controllers)) => {
                let h = sender::Hierarchy {
                    version,
                    controllers,
                };
                Containment::cgroup(h, pid.as_raw())
            }
            None => Containment::Tree {
                port: std::process::id() as i32,
            },
        };
        let watchdog = Watchdog::new(interval, await_ready, Instant::now());
        Notifier::new(sock, containment, watchdog)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Reads what is queued (at most `BATCH` datagrams), closing every
    /// descriptor that came along. `Some` if the program asked for
    /// `WATCHDOG=trigger`.
    // Not inlined: its 4 KiB buffer is on the stack only while it runs
    // (each stack page a supervisor touches is a private copy of its own).
    #[inline(never)]
    pub fn read(&mut self) -> Option<Reason> {
        let mut body = [0u8; MAX_DATAGRAM];
        let mut trigger = None;
        for _ in 0..BATCH {
            match socket::recv(&self.sock, &mut body, &mut self.control) {
                Ok(Received::Datagram { len, pid }) => {
                    let verdict = self.containment.check(pid);
                    if verdict != Verdict::Inside {
                        crate::log::debug!(pid, ?verdict, "notification from outside ignored");
                        continue;
                    }
                    let msgs = parse::parse(&body[..len]);
                    trigger = trigger.or(self.apply(msgs, Instant::now()));
                }
                Ok(Received::TooLong) => {}
                Ok(Received::Empty) => break,
                Err(e) => {
                    crate::log::warn!(error = %e, "reading the notification socket failed");
                    break;
                }
            }
        }
        trigger
    }

    fn apply(&mut self, msgs: Vec<Msg>, now: Instant) -> Option<Reason> {
        let mut trigger = None;
        let one = || "1".to_string();
        for m in msgs {
            match m {
                Msg::Ready => {
                    self.watchdog.ready(now);
                    self.coalescer.push(Key::Ready, one());
                }
                Msg::Reloading => self.coalescer.push(Key::Reloading, one()),
                Msg::Stopping => self.coalescer.push(Key::Stopping, one()),
                Msg::Status(s) => self.coalescer.push(Key::Status, s),
                Msg::Ping => self.watchdog.ping(now),
                Msg::Trigger => trigger = Some(Reason::Trigger),
                Msg::WatchdogUsec(n) => {
                    self.watchdog.set_interval(Duration::from_micros(n), now);
                    self.coalescer.push(Key::WatchdogUsec, n.to_string());
                }
                Msg::ExtendTimeoutUsec(n) => {
                    self.coalescer.push(Key::ExtendTimeoutUsec, n.to_string());
                }
                Msg::MainPid(pid) => self.main_pid(pid),
                Msg::Barrier => {}
            }
        }
        trigger
    }

    /// `MAINPID=pid`: forwarded and pinned for SIGNAL if inside the
    /// containment (replacing, and closing, the pidfd of an earlier one).
    fn main_pid(&mut self, pid: i32) {
        let containment = &self.containment;
        match main_process::pin(pid, |p| containment.check(p) == Verdict::Inside) {
            Pinned::Fd(fd) => self.main_pidfd = Some(fd),
            Pinned::Unpinned => self.main_pidfd = None,
            Pinned::Refused(why) => {
                crate::log::debug!(pid, why, "MAINPID ignored");
                return;
            }
        }
        self.coalescer.push(Key::MainPid, pid.to_string());
    }

    /// The last accepted `MAINPID`'s pidfd, the target of SIGNAL.
    pub fn main_pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.main_pidfd.as_ref().map(AsFd::as_fd)
    }

    /// The next time the relay must wake for us: a summary to send, and
    /// (`running`: only while the program runs) the watchdog.
    pub fn wake_at(&self, running: bool, now: Instant) -> Option<Instant> {
        let flush = self.coalescer.due(now);
        let watchdog = self.watchdog.deadline().filter(|_| running);
        match (flush, watchdog) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn watchdog_expired(&self, now: Instant) -> bool {
        self.watchdog.expired(now)
    }

    /// The watchdog fired: nothing restarts it.
    pub fn disarm(&mut self) {
        self.watchdog.disarm();
    }

    /// Sends the pending summary if it is due (`force`: now, as before a
    /// WATCHDOG or EXIT frame).
    pub fn flush(&mut self, out: &mut Output, now: Instant, force: bool) {
        if let Some(body) = self.coalescer.take(now, force) {
            out.notify(&body);
        }
    }
}
