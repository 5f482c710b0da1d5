//! `--stop-signal`: the first signal of the stop sequence instead of
//! SIGTERM; SIGKILL still follows after `--delay-to-sigkill`.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::*;

/// Exits 7 at SIGINT, after saying so.
const TRAP_INT: &str =
    r#"trap "echo got INT; exit 7" INT; echo ready; while :; do sleep 0.05; done"#;

/// Framed, OUTPUT handed over: waits for `ready`, sends TERMINATE and
/// returns (EXIT status, the output after `ready`, how long it took).
fn terminate_after_ready(args: &[&str]) -> (u32, String, Duration) {
    let mut full = vec!["--framed", "--capture-output"];
    full.extend_from_slice(args);
    let (mut port, mut ends) = Port::spawn_handover_pipes(&full, &[OUTPUT]);
    let frames = Frames::new(&port);
    let pid = frames.started();
    let mut out = BufReader::new(ends.output.take().expect("OUTPUT"));
    let mut l = String::new();
    out.read_line(&mut l).expect("read");
    assert_eq!(l, "ready\n");
    let start = Instant::now();
    port.send_frame(TERMINATE, &[]);
    let (seen, status) = frames.until_exit();
    let took = start.elapsed();
    assert!(seen.is_empty(), "{seen:?}");
    let rest = drained(drain(out.into_inner()));
    assert_gone(pid);
    port.close_stdin();
    assert_eq!(port.wait() as u32, status);
    (status, String::from_utf8_lossy(&rest).into_owned(), took)
}

#[test]
fn a_program_trapping_the_stop_signal_exits_by_itself() {
    for sig in ["INT", "sigint", "SIGINT", "2"] {
        let args = ["--stop-signal", sig, "-k", "20000", "sh", "-c", TRAP_INT];
        let (status, rest, took) = terminate_after_ready(&args);
        assert_eq!((status, rest.as_str()), (7, "got INT\n"), "{sig}");
        assert!(took < Duration::from_secs(10), "{sig}: {took:?}");
    }
}

#[test]
fn without_the_flag_it_is_sigterm() {
    // The INT trap is never run: SIGTERM kills the shell.
    let (status, rest, _) = terminate_after_ready(&["-k", "20000", "sh", "-c", TRAP_INT]);
    assert_eq!((status, rest.as_str()), (143, ""));
}

#[test]
fn an_ignored_stop_signal_is_followed_by_sigkill() {
    let script = r#"trap "" INT; echo ready; while :; do sleep 0.05; done"#;
    let args = ["--stop-signal", "INT", "-k", "300", "sh", "-c", script];
    let (status, rest, took) = terminate_after_ready(&args);
    assert_eq!((status, rest.as_str()), (137, ""));
    assert!(took >= Duration::from_millis(300), "{took:?}");
}

#[test]
fn a_realtime_stop_signal() {
    // Its default action ends the program: 128 + the number.
    let n = libc::SIGRTMIN() + 1;
    let script = "echo ready; exec sleep 100";
    for sig in [n.to_string(), "RTMIN+1".to_string()] {
        let args = ["--stop-signal", &sig, "-k", "20000", "sh", "-c", script];
        let (status, _, took) = terminate_after_ready(&args);
        assert_eq!(status, 128 + n as u32, "{sig}");
        assert!(took < Duration::from_secs(10), "{sig}: {took:?}");
    }
}

#[test]
fn plain_mode_stdin_eof_sends_it_too() {
    let mut port = Port::spawn(&[
        "--stop-signal",
        "quit",
        "-k",
        "20000",
        "--capture-output",
        "sh",
        "-c",
        r#"trap "exit 9" QUIT; echo ready; while :; do sleep 0.05; done"#,
    ]);
    port.read_plain_until(b"ready\n");
    let start = Instant::now();
    port.close_stdin();
    assert_eq!(port.wait(), 9);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn descendants_left_behind_get_it() {
    // The program exits at once; what it left traps USR1 and says so in
    // a file. (Not INT: a non-interactive shell's background jobs ignore
    // SIGINT and SIGQUIT, and cannot trap them.)
    let file = std::env::temp_dir().join(format!(
        "muontrap_stop_{}_{:x}",
        std::process::id(),
        random()
    ));
    let path = file.to_string_lossy().into_owned();
    let script = format!(
        r#"(trap "echo got USR1 > {path}; exit 0" USR1; while :; do sleep 0.05; done) &
           sleep 0.2; exit 4"#
    );
    let args = [
        "--framed",
        "--stop-signal",
        "usr1",
        "-k",
        "20000",
        "sh",
        "-c",
        &script,
    ];
    let mut port = Port::spawn(&args);
    let (tag, _) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let start = Instant::now();
    assert_eq!(port.read_framed_until_exit(), (4, vec![]));
    assert!(start.elapsed() < Duration::from_secs(10));
    let said = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    assert_eq!(said, "got USR1\n");
    port.close_stdin();
    assert_eq!(port.wait(), 4);
}

#[test]
fn usage_errors() {
    for (sig, want) in [
        ("KILL", "--stop-signal cannot be SIGKILL"),
        ("sigkill", "--stop-signal cannot be SIGKILL"),
        ("9", "--stop-signal cannot be SIGKILL"),
        ("STOP", "--stop-signal cannot be SIGSTOP"),
        ("SIGSTOP", "--stop-signal cannot be SIGSTOP"),
        ("X", "unknown signal 'X'"),
        ("SIGFOO", "unknown signal 'SIGFOO'"),
        (
            "0",
            "--stop-signal needs a signal name or a number from 1 to 64, got '0'",
        ),
    ] {
        let (code, out, err) = run_no_child(&["--stop-signal", sig, "true"]);
        assert_eq!(
            (code, out.as_str(), err),
            (1, "", format!("muontrap: {want}\n")),
            "{sig}"
        );
    }
}
