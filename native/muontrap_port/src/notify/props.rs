//! Property tests of the sd_notify path (docs/reliability.md, "Fuzzing"):
//! the datagram parser on any bytes, parse(render(x)) == x, and the
//! coalesced NOTIFY bodies as `MuonTrap.Protocol` decodes them.

use std::time::{Duration, Instant};

use muontrap_peak_alloc::measure;
use proptest::collection::vec;
use proptest::prelude::*;

use super::coalesce::{Coalescer, Key};
use super::parse::{parse, Msg, MAX_STATUS};
use super::MAX_DATAGRAM;

/// `parse`'s bound on one datagram of at most `MAX_DATAGRAM` bytes (32 KiB).
/// The worst cases are in `parse_bound_vectors` (at most 24,534 bytes):
/// STATUS text grows up to 3x when invalid bytes become U+FFFD, and its
/// buffer doubles as it grows, the old block live while it moves; every
/// 8-byte `STATUS=\n` line is a 32-byte `Msg` in a vector that doubles too.
const PARSE_PEAK: usize = 8 * MAX_DATAGRAM;

/// The keys `MuonTrap.Protocol` may get, each at most once per frame.
const KEYS: [&str; 7] = [
    "READY",
    "RELOADING",
    "STOPPING",
    "STATUS",
    "MAINPID",
    "EXTEND_TIMEOUT_USEC",
    "WATCHDOG_USEC",
];

/// Lines worth parsing: every understood key with good and bad values,
/// and anything at all.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(
        &[
            "READY",
            "RELOADING",
            "STOPPING",
            "STATUS",
            "WATCHDOG",
            "WATCHDOG_USEC",
            "EXTEND_TIMEOUT_USEC",
            "MAINPID",
            "BARRIER",
            "FDSTORE",
            "",
            "ready",
        ][..],
    );
    let value = prop_oneof![
        prop::sample::select(&["1", "0", "trigger", "", "-1", "+5", "2147483648"][..])
            .prop_map(|v| v.as_bytes().to_vec()),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        vec(any::<u8>(), 0..64),
    ];
    let line = prop_oneof![
        (key, value).prop_map(|(k, v)| [k.as_bytes(), b"=", &v].concat()),
        vec(any::<u8>(), 0..64),
    ];
    vec(line, 0..64).prop_map(|lines| {
        let mut d = lines.join(&b'\n');
        d.truncate(MAX_DATAGRAM);
        d
    })
}

/// Messages as a well-behaved program sends them.
fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        Just(Msg::Ready),
        Just(Msg::Reloading),
        Just(Msg::Stopping),
        Just(Msg::Ping),
        Just(Msg::Trigger),
        Just(Msg::Barrier),
        "[^\n]{0,100}".prop_map(Msg::Status),
        (1..=u64::MAX).prop_map(Msg::WatchdogUsec),
        any::<u64>().prop_map(Msg::ExtendTimeoutUsec),
        (1..=i32::MAX).prop_map(Msg::MainPid),
    ]
}

/// The line sd_notify(3) callers write for `m`.
fn render(m: &Msg) -> String {
    match m {
        Msg::Ready => "READY=1".into(),
        Msg::Reloading => "RELOADING=1".into(),
        Msg::Stopping => "STOPPING=1".into(),
        Msg::Ping => "WATCHDOG=1".into(),
        Msg::Trigger => "WATCHDOG=trigger".into(),
        Msg::Barrier => "BARRIER=1".into(),
        Msg::Status(s) => format!("STATUS={s}"),
        Msg::WatchdogUsec(n) => format!("WATCHDOG_USEC={n}"),
        Msg::ExtendTimeoutUsec(n) => format!("EXTEND_TIMEOUT_USEC={n}"),
        Msg::MainPid(p) => format!("MAINPID={p}"),
    }
}

/// What `Notifier::apply` hands the coalescer for `m` (a MAINPID taken as
/// accepted; the watchdog's messages change no state the BEAM sees).
fn change(m: &Msg) -> Option<(Key, String)> {
    Some(match m {
        Msg::Ready => (Key::Ready, "1".into()),
        Msg::Reloading => (Key::Reloading, "1".into()),
        Msg::Stopping => (Key::Stopping, "1".into()),
        Msg::Status(s) => (Key::Status, s.clone()),
        Msg::WatchdogUsec(n) => (Key::WatchdogUsec, n.to_string()),
        Msg::ExtendTimeoutUsec(n) => (Key::ExtendTimeoutUsec, n.to_string()),
        Msg::MainPid(p) => (Key::MainPid, p.to_string()),
        Msg::Ping | Msg::Trigger | Msg::Barrier => return None,
    })
}

/// What the BEAM ends up knowing: the last phase (READY, RELOADING or
/// STOPPING), the last value of each other key.
#[derive(Debug, Default, PartialEq, Eq)]
struct State {
    phase: Option<String>,
    values: std::collections::BTreeMap<String, String>,
}

impl State {
    fn apply(&mut self, key: &str, value: &str) {
        if matches!(key, "READY" | "RELOADING" | "STOPPING") {
            self.phase = Some(key.to_string());
        } else {
            self.values.insert(key.to_string(), value.to_string());
        }
    }
}

/// `assignments/1` in lib/muontrap/protocol.ex.
fn elixir_assignments(body: &str) -> Vec<(&str, &str)> {
    body.split('\n').filter_map(|l| l.split_once('=')).collect()
}

proptest! {
    /// Any datagram: no panic, within `PARSE_PEAK`, and only values the
    /// rest of the port relies on.
    #[test]
    fn any_datagram_parses_within_bounds(d in datagram()) {
        let (msgs, peak) = measure(|| parse(&d));
        prop_assert!(peak <= PARSE_PEAK, "{} bytes for {} input bytes", peak, d.len());
        prop_assert!(msgs.len() <= d.split(|&b| b == b'\n').count());
        for m in &msgs {
            match m {
                Msg::Status(s) => prop_assert!(s.len() <= MAX_STATUS && !s.contains('\n')),
                Msg::WatchdogUsec(n) => prop_assert!(*n > 0),
                Msg::MainPid(p) => prop_assert!(*p > 0),
                _ => {}
            }
        }
    }

    /// parse(render(x)) == x, with unknown and malformed lines in between.
    #[test]
    fn rendered_messages_parse_back(
        msgs in vec(msg(), 0..32),
        junk in vec(prop::sample::select(&["FOO=1", "READY=0", "", "x", "MAINPID=0"][..]), 32),
    ) {
        let lines: Vec<String> = msgs
            .iter()
            .zip(&junk)
            .flat_map(|(m, j)| [render(m), j.to_string()])
            .collect();
        prop_assert_eq!(parse(lines.join("\n").as_bytes()), msgs);
    }

    /// Datagrams through the coalescer, frames taken at any points, decoded
    /// as the BEAM does: each frame has each key at most once and a STATUS
    /// within bounds, and applying the frames gives the state applying
    /// every message would.
    #[test]
    fn coalesced_frames_give_the_final_state(
        batches in vec((datagram(), vec(msg(), 0..8), any::<bool>(), 0u64..30), 0..16),
    ) {
        let t0 = Instant::now();
        let (mut c, mut now) = (Coalescer::default(), t0);
        let (mut want, mut got) = (State::default(), State::default());
        let mut frames = Vec::new();
        for (datagram, msgs, force, ms) in batches {
            let parsed = parse(&datagram).into_iter().chain(msgs);
            for (key, value) in parsed.filter_map(|m| change(&m)) {
                want.apply(key.name(), &value);
                c.push(key, value);
            }
            now += Duration::from_millis(ms);
            frames.extend(c.take(now, force));
        }
        frames.extend(c.take(now, true));
        for body in &frames {
            let pairs = elixir_assignments(body);
            prop_assert!(!pairs.is_empty());
            let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            keys.dedup();
            prop_assert_eq!(keys.len(), pairs.len(), "a key twice in {:?}", body);
            for (k, v) in pairs {
                prop_assert!(KEYS.contains(&k), "{}", k);
                prop_assert!(k != "STATUS" || v.len() <= MAX_STATUS);
                got.apply(k, v);
            }
        }
        prop_assert_eq!(got, want);
    }
}

/// The worst datagrams for `parse`'s memory, as explicit vectors.
#[test]
fn parse_bound_vectors() {
    let long_invalid = [b"STATUS=".as_slice(), &[0xff; MAX_DATAGRAM - 7]].concat();
    let cases = [
        long_invalid,
        b"STATUS=\n".repeat(MAX_DATAGRAM / 8),
        b"STATUS=\xff\n".repeat(MAX_DATAGRAM / 9),
        b"READY=1\n".repeat(MAX_DATAGRAM / 8),
        b"MAINPID=1\n".repeat(MAX_DATAGRAM / 10),
    ];
    for d in cases {
        assert!(d.len() <= MAX_DATAGRAM);
        let (msgs, peak) = measure(|| parse(&d));
        assert!(!msgs.is_empty());
        assert!(peak <= PARSE_PEAK, "{peak} bytes for {:?}...", &d[..10]);
    }
}
