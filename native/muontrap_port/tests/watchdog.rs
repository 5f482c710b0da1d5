//! `--watchdog`: pings keep the program alive; a missed interval or
//! `WATCHDOG=trigger` sends WATCHDOG and terminates it like TERMINATE;
//! `WATCHDOG_USEC=` changes the interval; with `--notify` the timer waits
//! for READY.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::*;

const PINGS: &str = r#"
while True:
    notify("WATCHDOG=1")
    time.sleep(0.05)
"#;

/// TERMINATE, then EXIT with the status of a program killed by SIGTERM.
fn terminate(port: &mut Port, frames: &Frames) {
    port.send_frame(TERMINATE, &[]);
    let (seen, status) = frames.until_exit();
    assert!(seen.iter().all(|(tag, _)| *tag == NOTIFY), "{seen:?}");
    assert_eq!(status, 143);
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn pings_keep_the_program_alive() {
    let program = py(PINGS);
    let mut port = Port::spawn(&argv(&["--framed", "--watchdog", "300"], &program));
    let frames = Frames::new(&port);
    let pid = frames.started();
    // Five intervals: any frame (WATCHDOG, or EXIT) would be a failure.
    assert_eq!(frames.next(Duration::from_millis(1500)), None);
    assert!(!gone(pid));
    terminate(&mut port, &frames);
}

#[test]
fn a_missed_interval_terminates_the_tree() {
    let (mut port, output) = Port::spawn_handover_raw(&[
        "--framed",
        "--watchdog",
        "300",
        "--capture-output",
        "sh",
        "-c",
        "sleep 100 & echo $!; wait",
    ]);
    let frames = Frames::new(&port);
    let sh = frames.started();
    let start = Instant::now();
    let mut line = String::new();
    BufReader::new(output).read_line(&mut line).expect("pid");
    let sleeper = pids_in(line.as_bytes())[0];
    let (tag, body) = frames.expect("WATCHDOG");
    let elapsed = start.elapsed();
    assert_eq!((tag, body), (WATCHDOG, vec![1]));
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let (seen, status) = frames.until_exit();
    assert_eq!((seen.len(), status), (0, 143), "{seen:?}");
    assert_gone(sh);
    assert_gone(sleeper);
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn watchdog_trigger() {
    let program = py(r#"notify("STATUS=broken\nWATCHDOG=trigger"); time.sleep(100)"#);
    // A trigger needs no interval: --notify alone, and a long one.
    for flags in [&["--notify"][..], &["--watchdog", "100000"]] {
        let mut args = vec!["--framed"];
        args.extend_from_slice(flags);
        let mut port = Port::spawn(&argv(&args, &program));
        let frames = Frames::new(&port);
        let pid = frames.started();
        // What came before the trigger is sent before WATCHDOG.
        let (tag, body) = frames.expect("NOTIFY");
        assert_eq!((tag, lines(&body)), (NOTIFY, vec!["STATUS=broken".into()]));
        assert_eq!(frames.expect("WATCHDOG"), (WATCHDOG, vec![2]), "{flags:?}");
        assert_eq!(frames.until_exit(), (vec![], 143), "{flags:?}");
        assert_gone(pid);
        port.close_stdin();
        assert_eq!(port.wait(), 143);
    }
}

#[test]
fn watchdog_usec_changes_the_interval() {
    let program = py(r#"notify("WATCHDOG_USEC=2000000"); time.sleep(100)"#);
    let mut port = Port::spawn(&argv(&["--framed", "--watchdog", "300"], &program));
    let frames = Frames::new(&port);
    frames.started();
    let (tag, body) = frames.expect("NOTIFY");
    let sent = Instant::now();
    assert_eq!(
        (tag, lines(&body)),
        (NOTIFY, vec!["WATCHDOG_USEC=2000000".into()])
    );
    // Not at 300 ms: the new interval counts from the message.
    let (tag, body) = frames.expect("WATCHDOG");
    let elapsed = sent.elapsed();
    assert_eq!((tag, body), (WATCHDOG, vec![1]));
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(frames.until_exit(), (vec![], 143));
    port.close_stdin();
    port.wait();
}

#[test]
fn with_notify_the_timer_starts_at_ready() {
    let program = py(&format!(
        r#"time.sleep(0.8)
notify("READY=1")
{PINGS}"#
    ));
    let mut port = Port::spawn(&argv(
        &["--framed", "--notify", "--watchdog", "300"],
        &program,
    ));
    let frames = Frames::new(&port);
    let start = Instant::now();
    frames.started();
    let (tag, body) = frames.expect("READY");
    assert_eq!((tag, lines(&body)), (NOTIFY, vec!["READY=1".into()]));
    assert!(
        start.elapsed() >= Duration::from_millis(750),
        "{:?}",
        start.elapsed()
    );
    // Pinging from then on: alive.
    assert_eq!(frames.next(Duration::from_millis(1000)), None);
    terminate(&mut port, &frames);
}

#[test]
fn with_notify_a_silent_program_is_caught_after_ready() {
    let program = py(r#"time.sleep(0.5); notify("READY=1"); time.sleep(100)"#);
    let mut port = Port::spawn(&argv(
        &["--framed", "--notify", "--watchdog", "300"],
        &program,
    ));
    let frames = Frames::new(&port);
    frames.started();
    let (tag, _) = frames.expect("READY");
    let ready = Instant::now();
    assert_eq!(tag, NOTIFY);
    assert_eq!(frames.expect("WATCHDOG"), (WATCHDOG, vec![1]));
    let elapsed = ready.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(frames.until_exit(), (vec![], 143));
    port.close_stdin();
    port.wait();
}
