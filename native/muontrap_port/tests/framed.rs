//! Framed protocol: STARTED, ERROR, EXEC_ERROR, EXIT; TERMINATE. The
//! output goes straight into a pipe handed over by the test (as the BEAM
//! does), never through the port.

mod common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn started_exit_then_wait_for_close() {
    let (mut port, output) = Port::spawn_handover(&[
        "--framed",
        "--capture-output",
        "sh",
        "-c",
        "printf hello; exit 5",
    ]);
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let pid = be_u32(&body) as i32;
    assert!(pid > 0);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 5);
    assert!(errors.is_empty());
    assert_eq!(drained(output), b"hello");
    // The port waits for the Erlang side to close it; TERMINATE is moot.
    port.send_frame(TERMINATE, &[]);
    assert_eq!(port.try_status(), None);
    assert_gone(pid);
    port.close_stdin();
    assert_eq!(port.wait(), 5);
    assert!(port.read_frame().is_none(), "nothing after EXIT");
}

#[test]
fn one_megabyte_byte_exact_through_the_handed_over_pipe() {
    let script = "seq 1 200000 | head -c 1000000";
    let want: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    let want = &want.as_bytes()[..1_000_000];
    // --stdio-window is accepted and ignored: there is nothing to ack.
    for window in [None, Some("16")] {
        let mut args = vec!["--framed", "--capture-output"];
        if let Some(w) = window {
            args.extend(["--stdio-window", w]);
        }
        args.extend(["sh", "-c", script]);
        let (mut port, output) = Port::spawn_handover(&args);
        assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
        let (status, errors) = port.read_framed_until_exit();
        assert_eq!((status, errors.len()), (0, 0), "{errors:?}");
        let out = drained(output);
        assert_eq!(out.len(), 1_000_000, "window {window:?}");
        assert!(out == want, "output differs, window {window:?}");
        port.close_stdin();
        assert_eq!(port.wait(), 0);
    }
}

#[test]
fn capture_modes_write_into_the_handed_over_pipe() {
    let cases: [(&str, &[u8]); 3] = [
        ("--capture-output", b"out\n"),
        ("--capture-stderr", b"out\nerr\n"),
        ("--capture-stderr-only", b"err\n"),
    ];
    for (flag, want) in cases {
        let (mut port, output) =
            Port::spawn_handover(&["--framed", flag, "sh", "-c", "echo out; echo err >&2"]);
        assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
        assert_eq!(port.read_framed_until_exit(), (0, vec![]), "{flag}");
        assert_eq!(drained(output), want, "{flag}");
        port.close_stdin();
        assert_eq!(port.wait(), 0);
        // Framed mode reports in-band only; uncaptured stderr is inherited.
        assert_eq!(port.stderr().contains("err"), flag == "--capture-output");
    }
}

#[test]
fn ack_is_now_a_protocol_error() {
    let mut port = Port::spawn(&["--framed", "sleep", "1000"]);
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let pid = be_u32(&body) as i32;
    // The retired ACK: tag 1 with a u32.
    port.send_frame(1, &5u32.to_be_bytes());
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert_eq!(
        errors,
        vec!["muontrap: protocol error: unknown message tag 1"]
    );
    assert_gone(pid);
    port.close_stdin();
    assert_eq!(port.wait(), 1);
    // Framed mode reports errors in-band only.
    assert!(port.stderr().is_empty());
}

#[test]
fn unknown_tag_and_bad_length_are_errors() {
    let cases: [(&[u8], &str); 3] = [
        (&[0, 0, 0, 1, 9], "unknown message tag 9"),
        (&[0, 0, 0, 2, 4, 0], "message with tag 4 has bad length 2"),
        (&[0, 0, 0, 0], "empty message"),
    ];
    for (bytes, want) in cases {
        let mut port = Port::spawn(&["--framed", "sleep", "1000"]);
        assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
        port.write(bytes);
        let (status, errors) = port.read_framed_until_exit();
        assert_eq!(status, 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].ends_with(want), "{errors:?}");
        port.close_stdin();
        assert_eq!(port.wait(), 1);
    }
}

#[test]
fn terminate_escalates_to_sigkill_after_delay() {
    let (mut port, read) = Port::spawn_handover_raw(&[
        "--framed",
        "-k",
        "300",
        "--capture-output",
        "sh",
        "-c",
        "trap '' TERM; sleep 1000 & echo $!; wait",
    ]);
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let sh = be_u32(&body) as i32;
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    lines.read_line(&mut line).expect("sleeper pid");
    let sleeper = pids_in(line.as_bytes())[0];
    let start = Instant::now();
    port.send_frame(TERMINATE, &[]);
    let (status, errors) = port.read_framed_until_exit();
    let elapsed = start.elapsed();
    assert!(errors.is_empty());
    // Both ignore SIGTERM, so only the SIGKILL after the delay ends them.
    assert_eq!(status, 137);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_gone(sh);
    assert_gone(sleeper);
    line.clear();
    assert_eq!(lines.read_line(&mut line).expect("EOF"), 0, "{line:?}");
    port.close_stdin();
    assert_eq!(port.wait(), 137);
}

#[test]
fn terminate_with_cooperative_program_is_quick() {
    let mut port = Port::spawn(&["--framed", "-k", "30000", "sleep", "1000"]);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    let start = Instant::now();
    port.send_frame(TERMINATE, &[]);
    let (status, _) = port.read_framed_until_exit();
    assert_eq!(status, 143);
    assert!(start.elapsed() < Duration::from_secs(10));
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn exec_failure() {
    let mut port = Port::spawn(&["--framed", "/nonexistent/program"]);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 127);
    assert_eq!(
        errors,
        vec![
            "exec errno 2",
            "muontrap: failed to run /nonexistent/program: No such file or directory"
        ]
    );
    port.close_stdin();
    assert_eq!(port.wait(), 127);
}

#[test]
fn exec_failure_reports_errno_for_path_lookup_and_permissions() {
    // A bare name is looked up in PATH by the port (execvp): the Elixir side
    // raises :enoent from EXEC_ERROR instead of searching PATH itself.
    let mut port = Port::spawn(&["--framed", "no_such_program_muontrap"]);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors[0].as_str()), (127, "exec errno 2"));
    port.close_stdin();
    assert_eq!(port.wait(), 127);

    let mut port = Port::spawn(&["--framed", "/etc/passwd"]);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors[0].as_str()), (127, "exec errno 13"));
    port.close_stdin();
    assert_eq!(port.wait(), 127);
}

#[test]
fn setup_failure_sends_no_exec_error() {
    let mut port = Port::spawn(&["--framed", "--uid", "0", "true"]);
    let (_, errors) = port.read_framed_until_exit();
    assert!(
        errors.iter().all(|e| !e.starts_with("exec errno")),
        "{errors:?}"
    );
    port.close_stdin();
    port.wait();
}

#[test]
fn setup_error_is_reported_in_band() {
    let mut port = Port::spawn(&["--framed", "--uid", "0", "true"]);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("muontrap: refusing to run"),
        "{errors:?}"
    );
    port.close_stdin();
    assert_eq!(port.wait(), 1);
}

#[test]
fn sigterm_while_waiting_for_close_exits() {
    let mut port = Port::spawn(&["--framed", "true"]);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    let (status, _) = port.read_framed_until_exit();
    assert_eq!(status, 0);
    // SAFETY: kill(2) of the port we spawned.
    unsafe { libc::kill(port.pid(), libc::SIGTERM) };
    assert_eq!(port.wait(), 0);
}
