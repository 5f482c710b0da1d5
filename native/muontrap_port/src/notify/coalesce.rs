//! Coalescing state changes into NOTIFY frames (pure), so a flood of
//! datagrams grows no buffer, here or in the BEAM's mailbox: at most one
//! frame per `INTERVAL`, and in between one pending summary with each key
//! at most once (so at most 7 lines, STATUS at most 4,096 bytes).
//!
//! Applying a frame's lines in order gives the latest state: a later value
//! replaces the earlier one and moves to the end. A change that leaves the
//! state the BEAM already has (the same STATUS again, READY while ready) is
//! not sent. EXTEND_TIMEOUT_USEC is an event (an extension from the time it
//! arrives), not a state: it is sent again even with the same value.

use std::time::{Duration, Instant};

/// Least time between two NOTIFY frames (`force` aside).
pub const INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Ready,
    Reloading,
    Stopping,
    Status,
    MainPid,
    ExtendTimeoutUsec,
    WatchdogUsec,
}

const KEYS: usize = 7;

impl Key {
    pub(super) fn name(self) -> &'static str {
        match self {
            Key::Ready => "READY",
            Key::Reloading => "RELOADING",
            Key::Stopping => "STOPPING",
            Key::Status => "STATUS",
            Key::MainPid => "MAINPID",
            Key::ExtendTimeoutUsec => "EXTEND_TIMEOUT_USEC",
            Key::WatchdogUsec => "WATCHDOG_USEC",
        }
    }

    /// READY, RELOADING and STOPPING: one service state, the last of them.
    fn is_phase(self) -> bool {
        matches!(self, Key::Ready | Key::Reloading | Key::Stopping)
    }
}

#[derive(Debug, Default)]
pub struct Coalescer {
    /// In the order of each key's latest change; each key at most once.
    pending: Vec<(Key, String)>,
    /// Per key (`Key as usize`), the value last sent.
    sent: [Option<String>; KEYS],
    /// The last of READY, RELOADING and STOPPING sent.
    sent_phase: Option<Key>,
    last_frame: Option<Instant>,
}

impl Coalescer {
    /// Records one change.
    pub fn push(&mut self, key: Key, value: String) {
        if key.is_phase() {
            let pending_phase = self.pending.iter().any(|(k, _)| k.is_phase());
            if !pending_phase && self.sent_phase == Some(key) {
                return;
            }
        }
        self.pending.retain(|(k, _)| *k != key);
        let unchanged = !key.is_phase()
            && key != Key::ExtendTimeoutUsec
            && self.sent[key as usize].as_deref() == Some(value.as_str());
        if !unchanged {
            self.pending.push((key, value));
        }
    }

    /// When the pending summary may go out, if there is one.
    pub fn due(&self, now: Instant) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.last_frame.map_or(now, |t| (t + INTERVAL).max(now)))
    }

    /// The body of the next NOTIFY frame, if one is pending and due (or
    /// `force`: before WATCHDOG and EXIT, so nothing is lost or reordered).
    pub fn take(&mut self, now: Instant, force: bool) -> Option<String> {
        let due = self.due(now)?;
        if !force && now < due {
            return None;
        }
        let mut body = String::new();
        for (key, value) in self.pending.drain(..) {
            if !body.is_empty() {
                body.push('\n');
            }
            body.push_str(key.name());
            body.push('=');
            body.push_str(&value);
            if key.is_phase() {
                self.sent_phase = Some(key);
            }
            self.sent[key as usize] = Some(value);
        }
        self.last_frame = Some(now);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn one(key: Key) -> (Key, String) {
        (key, "1".into())
    }

    fn pushed(c: &mut Coalescer, changes: &[(Key, &str)]) {
        for (k, v) in changes {
            c.push(*k, v.to_string());
        }
    }

    #[test]
    fn first_change_goes_out_at_once_then_at_most_every_interval() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        assert_eq!(c.due(t0), None);
        assert_eq!(c.take(t0, false), None);
        c.push(Key::Ready, "1".into());
        assert_eq!(c.due(t0), Some(t0));
        assert_eq!(c.take(t0, false).as_deref(), Some("READY=1"));
        c.push(Key::Status, "a".into());
        assert_eq!(c.due(t0 + MS), Some(t0 + INTERVAL));
        assert_eq!(c.take(t0 + 9 * MS, false), None);
        assert_eq!(c.take(t0 + 10 * MS, false).as_deref(), Some("STATUS=a"));
        // A long quiet time: the next change is due at once again.
        c.push(Key::Status, "b".into());
        assert_eq!(c.due(t0 + 100 * MS), Some(t0 + 100 * MS));
    }

    #[test]
    fn later_values_replace_and_move_to_the_end() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        pushed(
            &mut c,
            &[
                (Key::Reloading, "1"),
                (Key::Ready, "1"),
                (Key::Reloading, "1"),
                (Key::Status, "a"),
                (Key::MainPid, "7"),
                (Key::Status, "b"),
            ],
        );
        assert_eq!(
            c.pending,
            vec![
                one(Key::Ready),
                one(Key::Reloading),
                (Key::MainPid, "7".into()),
                (Key::Status, "b".into())
            ]
        );
        assert_eq!(
            c.take(t0, false).as_deref(),
            Some("READY=1\nRELOADING=1\nMAINPID=7\nSTATUS=b")
        );
    }

    #[test]
    fn what_the_beam_already_has_is_not_sent_again() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        pushed(&mut c, &[(Key::Ready, "1"), (Key::Status, "up")]);
        assert!(c.take(t0, false).is_some());
        pushed(
            &mut c,
            &[(Key::Ready, "1"), (Key::Status, "up"), (Key::MainPid, "5")],
        );
        assert_eq!(c.pending, vec![(Key::MainPid, "5".into())]);
        // A change and its undoing within one interval: nothing for STATUS.
        pushed(&mut c, &[(Key::Status, "busy"), (Key::Status, "up")]);
        assert_eq!(c.pending, vec![(Key::MainPid, "5".into())]);
        assert_eq!(c.take(t0 + INTERVAL, false).as_deref(), Some("MAINPID=5"));
        pushed(&mut c, &[(Key::MainPid, "5"), (Key::WatchdogUsec, "9")]);
        assert_eq!(
            c.take(t0 + 2 * INTERVAL, false).as_deref(),
            Some("WATCHDOG_USEC=9")
        );
        c.push(Key::WatchdogUsec, "9".into());
        assert_eq!(c.take(t0 + 3 * INTERVAL, false), None);
    }

    #[test]
    fn ready_after_a_reload_is_sent() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.push(Key::Ready, "1".into());
        c.take(t0, false);
        c.push(Key::Reloading, "1".into());
        assert_eq!(c.take(t0 + INTERVAL, false).as_deref(), Some("RELOADING=1"));
        c.push(Key::Ready, "1".into());
        assert_eq!(c.take(t0 + 2 * INTERVAL, false).as_deref(), Some("READY=1"));
        // A whole reload within one interval, READY having been sent:
        // both lines, so the final state is READY again.
        pushed(&mut c, &[(Key::Reloading, "1"), (Key::Ready, "1")]);
        assert_eq!(
            c.take(t0 + 3 * INTERVAL, false).as_deref(),
            Some("RELOADING=1\nREADY=1")
        );
        pushed(&mut c, &[(Key::Stopping, "1"), (Key::Stopping, "1")]);
        assert_eq!(
            c.take(t0 + 4 * INTERVAL, false).as_deref(),
            Some("STOPPING=1")
        );
        c.push(Key::Stopping, "1".into());
        assert_eq!(c.take(t0 + 5 * INTERVAL, false), None);
    }

    #[test]
    fn extend_timeout_is_an_event() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.push(Key::ExtendTimeoutUsec, "5".into());
        c.take(t0, false);
        pushed(
            &mut c,
            &[(Key::ExtendTimeoutUsec, "5"), (Key::ExtendTimeoutUsec, "5")],
        );
        assert_eq!(
            c.take(t0 + INTERVAL, false).as_deref(),
            Some("EXTEND_TIMEOUT_USEC=5")
        );
    }

    #[test]
    fn force_ignores_the_interval_but_not_emptiness() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        c.push(Key::Ready, "1".into());
        c.take(t0, false);
        c.push(Key::Status, "x".into());
        assert_eq!(c.take(t0 + MS, false), None);
        assert_eq!(c.take(t0 + MS, true).as_deref(), Some("STATUS=x"));
        assert_eq!(c.take(t0 + MS, true), None);
    }

    #[test]
    fn a_flood_stays_bounded() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        let mut frames = 0;
        let long = "y".repeat(4096);
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            c.push(Key::Status, format!("{i}"));
            c.push(Key::Status, long.clone());
            c.push(Key::Status, format!("{i}"));
            c.push(
                if i % 2 == 0 {
                    Key::Ready
                } else {
                    Key::Reloading
                },
                "1".into(),
            );
            c.push(Key::MainPid, format!("{}", i % 3 + 1));
            c.push(Key::ExtendTimeoutUsec, format!("{i}"));
            assert!(c.pending.len() <= KEYS);
            if c.take(now, false).is_some() {
                frames += 1;
            }
        }
        // 100 ms of changes, one frame per 10 ms (the first one at once).
        assert!(frames <= 11, "{frames}");
        let last = c
            .take(t0 + Duration::from_secs(1), false)
            .unwrap_or_default();
        assert!(last.contains("STATUS=99999"), "{last}");
        assert!(last.contains("RELOADING=1"), "{last}");
    }
}
