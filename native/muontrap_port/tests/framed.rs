//! Framed protocol: STARTED, DATA, ERROR, EXIT; ACK and TERMINATE.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn started_data_exit_then_wait_for_close() {
    let mut port = Port::spawn(&[
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
    let (data, status, errors) = port.read_framed_until_exit();
    assert_eq!(data, b"hello");
    assert_eq!(status, 5);
    assert!(errors.is_empty());
    // The port waits for the Erlang side to close it; acks are ignored.
    port.send_ack(1234);
    port.send_frame(TERMINATE, &[]);
    assert_eq!(port.try_status(), None);
    assert_gone(pid);
    port.close_stdin();
    assert_eq!(port.wait(), 5);
    assert!(port.read_frame().is_none(), "nothing after EXIT");
}

#[test]
fn large_output_with_small_window() {
    for window in ["16", "10240"] {
        let mut port = Port::spawn(&[
            "--framed",
            "--stdio-window",
            window,
            "--capture-output",
            "head",
            "-c",
            "1000000",
            "/dev/zero",
        ]);
        assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
        let (data, status, _) = port.read_framed_until_exit();
        assert_eq!(data.len(), 1_000_000);
        assert!(data.iter().all(|&b| b == 0));
        assert_eq!(status, 0);
        port.close_stdin();
        assert_eq!(port.wait(), 0);
    }
}

#[test]
fn data_frames_respect_the_window() {
    let mut port = Port::spawn(&[
        "--framed",
        "--stdio-window",
        "16",
        "--capture-output",
        "head",
        "-c",
        "100",
        "/dev/zero",
    ]);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    let mut outstanding = 0;
    while outstanding < 16 {
        let (tag, body) = port.read_frame().expect("DATA");
        assert_eq!(tag, DATA);
        outstanding += body.len();
        assert!(outstanding <= 16);
    }
    // Ack in two steps, including a zero ack.
    port.send_ack(0);
    port.send_ack(16);
    let (data, status, _) = port.read_framed_until_exit();
    assert_eq!(data.len() + 16, 100);
    assert_eq!(status, 0);
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}

#[test]
fn over_ack_sends_error_then_exit() {
    let mut port = Port::spawn(&["--framed", "sleep", "1000"]);
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let pid = be_u32(&body) as i32;
    port.send_ack(5);
    let (data, status, errors) = port.read_framed_until_exit();
    assert!(data.is_empty());
    assert_eq!(status, 1);
    assert_eq!(
        errors,
        vec!["muontrap: protocol error: acknowledged 5 bytes but only 0 are outstanding"]
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
        let (_, status, errors) = port.read_framed_until_exit();
        assert_eq!(status, 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].ends_with(want), "{errors:?}");
        port.close_stdin();
        assert_eq!(port.wait(), 1);
    }
}

#[test]
fn terminate_escalates_to_sigkill_after_delay() {
    let mut port = Port::spawn(&[
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
    let (tag, body) = port.read_frame().expect("DATA");
    assert_eq!(tag, DATA);
    port.send_ack(body.len() as u32);
    let sleeper = pids_in(&body)[0];
    let start = Instant::now();
    port.send_frame(TERMINATE, &[]);
    let (_, status, errors) = port.read_framed_until_exit();
    let elapsed = start.elapsed();
    assert!(errors.is_empty());
    // Both ignore SIGTERM, so only the SIGKILL after the delay ends them.
    assert_eq!(status, 137);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert_gone(sh);
    assert_gone(sleeper);
    port.close_stdin();
    assert_eq!(port.wait(), 137);
}

#[test]
fn terminate_with_cooperative_program_is_quick() {
    let mut port = Port::spawn(&["--framed", "-k", "30000", "sleep", "1000"]);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    let start = Instant::now();
    port.send_frame(TERMINATE, &[]);
    let (_, status, _) = port.read_framed_until_exit();
    assert_eq!(status, 143);
    assert!(start.elapsed() < Duration::from_secs(10));
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn exec_failure() {
    let mut port = Port::spawn(&["--framed", "/nonexistent/program"]);
    let (data, status, errors) = port.read_framed_until_exit();
    assert!(data.is_empty());
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
    let (_, status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors[0].as_str()), (127, "exec errno 2"));
    port.close_stdin();
    assert_eq!(port.wait(), 127);

    let mut port = Port::spawn(&["--framed", "/etc/passwd"]);
    let (_, status, errors) = port.read_framed_until_exit();
    assert_eq!((status, errors[0].as_str()), (127, "exec errno 13"));
    port.close_stdin();
    assert_eq!(port.wait(), 127);
}

#[test]
fn setup_failure_sends_no_exec_error() {
    let mut port = Port::spawn(&["--framed", "--uid", "0", "true"]);
    let (_, _, errors) = port.read_framed_until_exit();
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
    let (_, status, errors) = port.read_framed_until_exit();
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
    let (_, status, _) = port.read_framed_until_exit();
    assert_eq!(status, 0);
    // SAFETY: kill(2) of the port we spawned.
    unsafe { libc::kill(port.pid(), libc::SIGTERM) };
    assert_eq!(port.wait(), 0);
}

/// A pipe made by the test: (read end, write end).
fn test_pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: both fds are new and owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn output_path_sends_output_straight_into_the_readers_pipe() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let (mut read, write) = test_pipe();
    let path = format!("/proc/{}/fd/{}", std::process::id(), write.as_raw_fd());
    let mut port = Port::spawn(&[
        "--framed",
        "--capture-output",
        "--capture-stderr",
        "--output-path",
        &path,
        "sh",
        "-c",
        "head -c 300000 /dev/zero; echo err >&2; exit 4",
    ]);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    // The port has its own write end now: ours must go for EOF to come.
    drop(write);
    // Drained as the output comes: the command blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        read.read_to_end(&mut out).map(|_| out)
    });
    let (data, status, errors) = port.read_framed_until_exit();
    assert!(
        data.is_empty(),
        "no DATA frames: the output bypasses the port"
    );
    assert_eq!(status, 4);
    assert!(errors.is_empty());
    let out = reader
        .join()
        .expect("reader")
        .expect("read the pipe to EOF");
    assert_eq!(out.len(), 300_004);
    assert!(out[..300_000].iter().all(|&b| b == 0));
    assert_eq!(&out[300_000..], b"err\n");
    port.close_stdin();
    assert_eq!(port.wait(), 4);
}

#[test]
fn output_path_that_cannot_be_opened_falls_back_to_the_relay() {
    // Missing, and not a pipe (the output must not land in some file).
    let file = std::env::temp_dir().join(format!("muontrap_not_a_pipe_{}", std::process::id()));
    std::fs::write(&file, b"").expect("create file");
    let file_path = file.to_string_lossy().into_owned();
    for path in ["/nonexistent/muontrap-output", file_path.as_str()] {
        let mut port = Port::spawn(&[
            "--framed",
            "--capture-output",
            "--output-path",
            path,
            "sh",
            "-c",
            "printf relayed",
        ]);
        assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
        let (data, status, _) = port.read_framed_until_exit();
        assert_eq!(data, b"relayed", "{path}");
        assert_eq!(status, 0);
        port.close_stdin();
        assert_eq!(port.wait(), 0);
    }
    assert_eq!(std::fs::read(&file).expect("read file"), b"");
    let _ = std::fs::remove_file(&file);
}
