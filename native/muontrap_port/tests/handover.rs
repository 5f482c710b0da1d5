//! The HANDOVER frame, the supervisor's first on its channel: the
//! descriptors, the command, the version, and every way it can go wrong.
//! On any error nothing is started.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

/// A path the program would create if it ever ran.
fn marker() -> PathBuf {
    std::env::temp_dir().join(format!(
        "muontrap_handover_{}_{:x}",
        std::process::id(),
        random()
    ))
}

/// Runs a framed port whose program would create `marker()`; `beam` plays
/// the BEAM on the accepted connection (closed when it returns, as the
/// BEAM closes it after its one message). Returns (status, errors) after
/// checking that the program never ran (no STARTED: reading until EXIT
/// panics on one) and the port exits 1 once stdin closes.
fn refused(flags: &[&str], beam: impl FnOnce(OwnedFd)) -> (u32, Vec<String>) {
    let listener = Listener::new();
    let marker = marker();
    let touch = format!("touch {}", marker.display());
    let mut args = vec!["--framed", "--handover", listener.name.as_str()];
    args.extend_from_slice(flags);
    args.extend(["sh", "-c", touch.as_str()]);
    let mut port = Port::spawn(&args);
    let conn = listener.accept(port.pid());
    beam(conn);
    let result = port.read_framed_until_exit();
    port.close_stdin();
    assert_eq!(port.wait(), 1);
    assert!(port.stderr().is_empty(), "framed errors are in-band only");
    assert!(!marker.exists(), "the program ran");
    result
}

fn refused_with(flags: &[&str], beam: impl FnOnce(OwnedFd), want: &str) {
    let (status, errors) = refused(flags, beam);
    assert_eq!(status, 1);
    assert_eq!(
        errors,
        vec![format!(
            "muontrap: cannot receive descriptors from the BEAM: {want}"
        )]
    );
}

#[test]
fn unsupported_roles_are_refused() {
    // 4 (NOTIFY) is reserved.
    for role in [0u8, 4, 7, 9, 255] {
        let (_read, write) = pipe();
        refused_with(
            &["--capture-output"],
            |c| send_fds(&c, &[role], &[write.as_raw_fd()]),
            &format!("unsupported descriptor role {role}"),
        );
    }
    // Also after roles that are fine.
    let (read, write) = pipe();
    let (r, w) = (read.as_raw_fd(), write.as_raw_fd());
    refused_with(
        &["--capture-output"],
        |c| send_fds(&c, &[OUTPUT, STDIN, 4], &[w, r, w]),
        "unsupported descriptor role 4",
    );
}

#[test]
fn duplicate_stdin_or_stderr_is_refused() {
    let (read, write) = pipe();
    let (r, w) = (read.as_raw_fd(), write.as_raw_fd());
    refused_with(
        &["--capture-output"],
        |c| send_fds(&c, &[STDIN, OUTPUT, STDIN], &[r, w, r]),
        "more than one STDIN descriptor",
    );
    refused_with(
        &["--capture-output"],
        |c| send_fds(&c, &[OUTPUT, STDERR, STDERR], &[w, w, w]),
        "more than one STDERR descriptor",
    );
}

#[test]
fn stderr_needs_capture_output_alone() {
    let want = "a STDERR descriptor needs stdout captured alone \
                (not with stderr merged, nor stderr only)";
    let (_output_r, output) = pipe();
    let (_stderr_r, stderr) = pipe();
    let (o, e) = (output.as_raw_fd(), stderr.as_raw_fd());
    let merged_or_stderr_only: [&[&str]; 4] = [
        &["--capture-stderr"],
        &["--capture-output", "--capture-stderr"],
        &["--capture-stderr-only"],
        &["--capture-output", "--capture-stderr-only"],
    ];
    for flags in merged_or_stderr_only {
        refused_with(flags, |c| send_fds(&c, &[OUTPUT, STDERR], &[o, e]), want);
    }
    // No capture: no OUTPUT either, and still no STDERR.
    refused_with(&[], |c| send_fds(&c, &[STDERR], &[e]), want);
}

#[test]
fn descriptor_and_role_counts_must_match() {
    let (_read, write) = pipe();
    let w = write.as_raw_fd();
    let cases: [(&[u8], &[i32], &str); 3] = [
        (&[OUTPUT], &[w, w], "2 descriptors but 1 role bytes"),
        (&[OUTPUT, OUTPUT], &[w], "1 descriptors but 2 role bytes"),
        (&[OUTPUT], &[], "0 descriptors but 1 role bytes"),
    ];
    for (roles, fds, want) in cases {
        // Without the COMMAND memfd, which would count too.
        refused_with(
            &["--capture-output"],
            |c| send_fds_raw(&c, roles, fds),
            want,
        );
    }
}

#[test]
fn malformed_messages_are_refused() {
    let (_read, write) = pipe();
    let w = write.as_raw_fd();
    refused_with(
        &["--capture-output"],
        |c| send_fds(&c, &[OUTPUT, OUTPUT], &[w, w]),
        "more than one OUTPUT descriptor",
    );
    refused_with(
        &["--capture-output"],
        |c| send_fds(&c, &[OUTPUT; 17], &[w; 17]),
        "more than one OUTPUT descriptor",
    );
    refused_with(
        &["--capture-output"],
        |c| send_fds_raw(&c, &[LISTEN; 34], &[w; 34]),
        "34 descriptors, at most 33 allowed",
    );
    // A count of roles past the roles there are.
    refused_with(
        &["--capture-output"],
        |c| {
            let mut frame = muontrap_wire::channel::handover(&[OUTPUT], &[]);
            frame[HANDOVER_COUNT] = 2;
            send_bytes_raw(&c, &frame, &[w]);
        },
        "the first frame is not a HANDOVER",
    );
    // Neither descriptors nor a command.
    refused_with(
        &["--capture-output"],
        |c| send_fds_raw(&c, &[], &[]),
        "no command, in the frame or a COMMAND descriptor",
    );
    // OUTPUT, but nothing to capture into it.
    refused_with(
        &[],
        |c| send_fds(&c, &[OUTPUT], &[w]),
        "an OUTPUT descriptor but no output capture",
    );
    // Every descriptor but the command: nothing to run.
    refused_with(
        &["--capture-output"],
        |c| send_fds_raw(&c, &[OUTPUT], &[w]),
        "no command, in the frame or a COMMAND descriptor",
    );
    // The command twice: in the frame and in a memfd.
    refused_with(
        &["--capture-output"],
        |c| {
            let command = take_command().expect("the port's command");
            let memfd = memfd_with(&command);
            let fds = [w, memfd.as_raw_fd()];
            send_handover_with(&c, &[OUTPUT, COMMAND_ROLE], &fds, &command);
        },
        "a command in the frame and a COMMAND descriptor",
    );
}

/// Where a HANDOVER frame holds its count of roles: after the length,
/// the tag and the version.
const HANDOVER_COUNT: usize = 4 + 1 + 4 + 8;

#[test]
fn the_command_runs_from_the_frame_and_from_a_memfd_alike() {
    for memfd in [false, true] {
        let listener = Listener::new();
        let mut port = Port::spawn(&[
            "--framed",
            "--capture-output",
            "--handover",
            &listener.name,
            "echo",
            "from the command",
        ]);
        let conn = listener.accept(port.pid());
        let (read, write) = pipe();
        let send = if memfd { send_fds_memfd } else { send_fds };
        send(&conn, &[OUTPUT], &[write.as_raw_fd()]);
        drop(write);
        let output = drain(read);
        assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
        assert_eq!(port.read_framed_until_exit(), (0, vec![]));
        assert_eq!(drained(output), b"from the command\n", "memfd: {memfd}");
        port.close_stdin();
        assert_eq!(port.wait(), 0);
    }
}

#[test]
fn a_longest_command_in_the_frame_is_read_whole() {
    // An argument that fills the frame's command up to MAX_INLINE: the
    // supervisor reads the whole frame and no further (a TERMINATE
    // follows at once, as in the test above).
    use muontrap_command::{wire, Bytes};
    use muontrap_wire::handover::MAX_INLINE;
    let listener = Listener::new();
    let args = [
        "--framed",
        "--capture-output",
        "--handover",
        &listener.name,
        "echo",
        "",
    ];
    let mut port = Port::spawn(&args);
    let mut cmd = wire::decode(&take_command().expect("the port's command")).expect("decodes");
    let mut word = String::new();
    let command = loop {
        cmd.args = vec![Bytes(word.clone().into())];
        let bytes = wire::encode(&cmd);
        match MAX_INLINE.checked_sub(bytes.len()) {
            Some(0) => break bytes,
            Some(room) => word.push_str(&"x".repeat(room)),
            None => {
                word.pop();
            }
        }
    };
    let conn = listener.accept(port.pid());
    let (read, write) = pipe();
    let mut frame = muontrap_wire::channel::handover(&[OUTPUT], &command);
    frame.extend_from_slice(&[0, 0, 0, 1, TERMINATE]);
    send_bytes_raw(&conn, &frame, &[write.as_raw_fd()]);
    drop(write);
    let output = drain(read);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    let (status, errors) = port.read_framed_until_exit();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(status == 0 || status == 143, "{status}");
    // SIGTERM may come before, during or after the echo's writes.
    let out = drained(output);
    let whole = format!("{word}\n").into_bytes();
    assert!(whole.starts_with(&out), "{} bytes", out.len());
    port.close_stdin();
    port.wait();
}

#[test]
fn a_command_that_does_not_decode_is_refused() {
    let (_read, write) = pipe();
    let w = write.as_raw_fd();
    let version = muontrap_command::wire::VERSION;
    for (bytes, want) in [
        (vec![], "invalid command value: truncated".to_string()),
        (
            vec![0, 0, 0, 0],
            format!(
                "invalid command value: version 00000000, expected {version:08x} \
                 (a port binary from another build?)"
            ),
        ),
    ] {
        let memfd = memfd_with(&bytes);
        refused_with(
            &["--capture-output"],
            |c| send_fds_raw(&c, &[OUTPUT, COMMAND_ROLE], &[w, memfd.as_raw_fd()]),
            &want,
        );
    }
}

#[test]
fn eof_before_the_hand_over_exits_quietly() {
    let listener = Listener::new();
    let marker = marker();
    let touch = format!("touch {}", marker.display());
    let mut port = Port::spawn(&["--framed", "--handover", &listener.name, "sh", "-c", &touch]);
    let start = Instant::now();
    drop(listener);
    port.close_stdin();
    // No frame at all: nobody is there to read one.
    assert_eq!(port.read_frame(), None);
    port.wait_gone();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(port.stderr(), "");
    assert!(!marker.exists(), "the program ran");
}

#[test]
fn another_transport_version_is_refused_naming_both() {
    let version = muontrap_wire::channel::VERSION;
    refused_with(
        &[],
        |c| {
            let mut frame = muontrap_wire::channel::handover(&[], &[]);
            frame[5..9].copy_from_slice(&(version + 1).to_be_bytes());
            send_bytes_raw(&c, &frame, &[]);
        },
        &format!(
            "the BEAM speaks transport version {}, this supervisor version {version}",
            version + 1
        ),
    );
}

#[test]
fn a_first_frame_that_is_no_hand_over_is_refused() {
    let (_read, write) = pipe();
    let w = write.as_raw_fd();
    // A TERMINATE where the HANDOVER belongs; its descriptor is closed.
    refused_with(
        &[],
        |c| send_bytes_raw(&c, &[0, 0, 0, 1, TERMINATE], &[w]),
        "the first frame is not a HANDOVER",
    );
    // Longer than any HANDOVER can be: refused before it is read.
    let too_long = (muontrap_wire::channel::MAX_HANDOVER as u32 + 1).to_be_bytes();
    refused_with(
        &[],
        |c| {
            send_bytes_raw(
                &c,
                &[too_long[0], too_long[1], too_long[2], too_long[3], 23],
                &[],
            )
        },
        &format!(
            "the message is longer than {} bytes",
            muontrap_wire::channel::MAX_HANDOVER
        ),
    );
}

#[test]
fn sigterm_while_waiting_exits_without_waiting_for_close() {
    let listener = Listener::new();
    let mut port = Port::spawn(&[
        "--framed",
        "--capture-output",
        "--handover",
        &listener.name,
        "true",
    ]);
    let _conn = listener.accept(port.pid());
    // SAFETY: kill(2) of the port we spawned.
    unsafe { libc::kill(port.pid(), libc::SIGTERM) };
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert!(errors[0].ends_with("interrupted by SIGTERM"), "{errors:?}");
    // Stdin is still open: the port did not wait for it.
    assert_eq!(port.wait(), 1);
}

#[test]
fn terminate_right_after_the_hand_over_is_honoured() {
    let listener = Listener::new();
    let mut port = Port::spawn(&[
        "--framed",
        "--capture-output",
        "--handover",
        &listener.name,
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]);
    let conn = listener.accept(port.pid());
    // TERMINATE right behind the HANDOVER, in the same read if the
    // supervisor reads late: it must read no further than the HANDOVER.
    let (read, write) = pipe();
    let command = take_command().expect("the port's command");
    let mut bytes = muontrap_wire::channel::handover(&[OUTPUT], &command);
    bytes.extend_from_slice(&[0, 0, 0, 1, TERMINATE]);
    send_bytes_raw(&conn, &bytes, &[write.as_raw_fd()]);
    drop(write);
    let output = drain(read);
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let pid = be_u32(&body) as i32;
    assert_eq!(port.read_framed_until_exit(), (143, vec![]));
    assert_gone(pid);
    // SIGTERM may come before or after the echo; the pipe reaches EOF.
    let out = drained(output);
    assert!(out.is_empty() || out == b"started\n", "{out:?}");
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn no_descriptor_leaks_into_the_program() {
    // The channel, the spawner's request socket and the received pipe
    // (other than as fd 1) must not reach the program.
    let (mut port, output) =
        Port::spawn_handover(&["--framed", "--capture-output", "sh", "-c", "ls /proc/$$/fd"]);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
    assert_eq!(String::from_utf8_lossy(&drained(output)), "0\n1\n2\n");
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}

#[test]
fn a_non_blocking_output_descriptor_is_made_blocking() {
    // With O_NONBLOCK left on, the program would fail with EAGAIN as soon
    // as the pipe filled while the reader is slow.
    let listener = Listener::new();
    let mut port = Port::spawn(&[
        "--framed",
        "--capture-output",
        "--handover",
        &listener.name,
        "head",
        "-c",
        "1000000",
        "/dev/zero",
    ]);
    let conn = listener.accept(port.pid());
    let (read, write) = pipe();
    nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("O_NONBLOCK");
    send_fds(&conn, &[OUTPUT], &[write.as_raw_fd()]);
    drop(write);
    assert_eq!(port.read_frame().map(|f| f.0), Some(STARTED));
    std::thread::sleep(Duration::from_millis(300));
    let output = drain(read);
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
    assert_eq!(drained(output).len(), 1_000_000);
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}

#[test]
fn listen_names_must_match_the_listen_descriptors() {
    let (_read, write) = pipe();
    let w = write.as_raw_fd();
    let sock = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let l = sock.as_raw_fd();
    refused_with(
        &["--listen-fdnames", "a:b"],
        |c| send_fds(&c, &[LISTEN], &[l]),
        "1 LISTEN descriptors but 2 LISTEN names",
    );
    refused_with(
        &["--listen-fdnames", "a"],
        |c| send_fds(&c, &[LISTEN, LISTEN], &[l, l]),
        "2 LISTEN descriptors but 1 LISTEN names",
    );
    // Names but no listener at all.
    refused_with(
        &["--capture-output", "--listen-fdnames", "a"],
        |c| send_fds(&c, &[OUTPUT], &[w]),
        "0 LISTEN descriptors but 1 LISTEN names",
    );
}

#[test]
fn a_handed_over_cgroup_path_is_checked_again() {
    let cmd = muontrap_command::Command {
        program: "true".into(),
        cgroup_path: Some("../escape".into()),
        ..muontrap_command::Command::default()
    };
    let mut port = Port::spawn_library(&cmd);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("muontrap: invalid cgroup path '../escape': "),
        "{errors:?}"
    );
    port.close_stdin();
    assert_eq!(port.wait(), 1);
}
