//! The sd_notify watchdog timer (pure: every call takes the time). See
//! `docs/protocol.md`, "Watchdog".
//!
//! Started at exec (`--watchdog` alone) or at the first `READY=1` (with
//! `--notify`, as systemd does for `Type=notify`); `WATCHDOG=1` and
//! `WATCHDOG_USEC=` (re)start it whenever they come. Once it has fired it
//! stays quiet: the program is being terminated.

use std::time::{Duration, Instant};

/// Why the watchdog fired: the byte in the WATCHDOG frame.
pub use muontrap_wire::frame::Watchdog as Reason;

#[derive(Debug, Clone)]
pub struct Watchdog {
    /// `None`: no watchdog (yet: `WATCHDOG_USEC=` can enable one).
    interval: Option<Duration>,
    /// When it fires; `None` while stopped (before READY, once fired, or
    /// for an interval too long to represent).
    deadline: Option<Instant>,
    /// Waiting for `READY=1` before the first start.
    await_ready: bool,
    fired: bool,
}

impl Watchdog {
    /// `interval` from `--watchdog`; `await_ready` for `--notify`. `now`
    /// is the program's exec.
    pub fn new(interval: Option<Duration>, await_ready: bool, now: Instant) -> Watchdog {
        let mut w = Watchdog {
            interval,
            deadline: None,
            await_ready,
            fired: false,
        };
        if !await_ready {
            w.restart(now);
        }
        w
    }

    fn restart(&mut self, now: Instant) {
        if self.fired {
            return;
        }
        self.deadline = self.interval.and_then(|i| now.checked_add(i));
    }

    /// `READY=1`: the first one starts the timer when it waited for it.
    pub fn ready(&mut self, now: Instant) {
        if self.await_ready {
            self.await_ready = false;
            self.restart(now);
        }
    }

    /// `WATCHDOG=1`.
    pub fn ping(&mut self, now: Instant) {
        self.await_ready = false;
        self.restart(now);
    }

    /// `WATCHDOG_USEC=n` (n > 0): a new interval, counted from now.
    pub fn set_interval(&mut self, interval: Duration, now: Instant) {
        self.interval = Some(interval);
        self.ping(now);
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// It fired (either way): no deadline any more, and nothing restarts it.
    pub fn disarm(&mut self) {
        self.fired = true;
        self.deadline = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn starts_at_exec_without_notify() {
        let t0 = Instant::now();
        let w = Watchdog::new(Some(300 * MS), false, t0);
        assert_eq!(w.deadline(), Some(t0 + 300 * MS));
        assert!(!w.expired(t0 + 299 * MS));
        assert!(w.expired(t0 + 300 * MS));
    }

    #[test]
    fn pings_restart_it() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(300 * MS), false, t0);
        w.ping(t0 + 200 * MS);
        assert!(!w.expired(t0 + 400 * MS));
        assert!(w.expired(t0 + 500 * MS));
        // READY changes nothing once running.
        w.ready(t0 + 450 * MS);
        assert_eq!(w.deadline(), Some(t0 + 500 * MS));
    }

    #[test]
    fn with_notify_it_waits_for_ready() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(300 * MS), true, t0);
        assert_eq!(w.deadline(), None);
        assert!(!w.expired(t0 + 10_000 * MS));
        w.ready(t0 + 800 * MS);
        assert_eq!(w.deadline(), Some(t0 + 1100 * MS));
        // Only the first READY starts it.
        w.ready(t0 + 1000 * MS);
        assert_eq!(w.deadline(), Some(t0 + 1100 * MS));
    }

    #[test]
    fn a_ping_before_ready_starts_it() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(300 * MS), true, t0);
        w.ping(t0 + 100 * MS);
        assert_eq!(w.deadline(), Some(t0 + 400 * MS));
        w.ready(t0 + 200 * MS);
        assert_eq!(w.deadline(), Some(t0 + 400 * MS));
    }

    #[test]
    fn watchdog_usec_sets_the_interval_and_restarts() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(300 * MS), false, t0);
        w.set_interval(2000 * MS, t0 + 100 * MS);
        assert!(!w.expired(t0 + 2000 * MS));
        assert!(w.expired(t0 + 2100 * MS));
        w.ping(t0 + 2050 * MS);
        assert_eq!(w.deadline(), Some(t0 + 4050 * MS));
    }

    #[test]
    fn watchdog_usec_enables_one_for_notify_alone() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(None, true, t0);
        w.ready(t0);
        assert_eq!(w.deadline(), None);
        w.ping(t0 + MS);
        assert_eq!(w.deadline(), None, "no interval, no timer");
        w.set_interval(50 * MS, t0 + 10 * MS);
        assert_eq!(w.deadline(), Some(t0 + 60 * MS));
        // No --watchdog at all, not even --notify: never expires.
        let never = Watchdog::new(None, false, t0);
        assert!(!never.expired(t0 + 1_000_000 * MS));
    }

    #[test]
    fn disarmed_stays_quiet() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(300 * MS), false, t0);
        w.disarm();
        assert_eq!(w.deadline(), None);
        w.ping(t0 + MS);
        w.set_interval(MS, t0 + MS);
        assert!(!w.expired(t0 + 1000 * MS));
    }

    #[test]
    fn huge_intervals_never_overflow() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Some(Duration::from_millis(u64::from(u32::MAX))), false, t0);
        assert!(w.deadline().is_some());
        w.set_interval(Duration::from_micros(u64::MAX), t0);
        assert!(!w.expired(t0 + Duration::from_secs(1 << 40)));
        assert_eq!(Reason::Timeout as u8, 1);
        assert_eq!(Reason::Trigger as u8, 2);
    }
}
