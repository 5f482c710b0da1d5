//! `--handover`: the rendezvous with the BEAM, the descriptor message and
//! every way it can go wrong. On any error nothing is started.

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
    refused_with(
        &["--capture-output"],
        |c| send_fds(&c, &[OUTPUT; 65], &[w]),
        "the message is longer than 64 bytes",
    );
    // Accepted, then closed without a message.
    refused_with(
        &["--capture-output"],
        |_| {},
        "the connection closed without a message",
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
        "no COMMAND descriptor",
    );
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
fn listener_closed_before_sending_is_a_reset() {
    let listener = Listener::new();
    let mut port = Port::spawn(&[
        "--framed",
        "--capture-output",
        "--handover",
        &listener.name,
        "true",
    ]);
    // The port has connected; the BEAM side goes away without accepting.
    assert!(listener.pending(TIMEOUT));
    drop(listener);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert_eq!(
        errors,
        vec![
            "muontrap: cannot receive descriptors from the BEAM: \
             cannot receive the hand-over message: Connection reset by peer"
        ]
    );
    port.close_stdin();
    assert_eq!(port.wait(), 1);
}

#[test]
fn a_name_whose_pid_is_not_the_listeners_is_refused() {
    // A squatter: it listens under a name that claims another pid.
    let me = std::process::id();
    let name = format!("muontrap-{}-{:x}", me + 1, random());
    let listener = Listener::bind(&name);
    let mut port = Port::spawn(&["--framed", "--capture-output", "--handover", &name, "true"]);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert_eq!(
        errors,
        vec![format!(
            "muontrap: cannot receive descriptors from the BEAM: the hand-over socket \
             is held by pid {me}, not by the BEAM (pid {})",
            me + 1
        )]
    );
    port.close_stdin();
    assert_eq!(port.wait(), 1);
    drop(listener);
}

#[test]
fn bad_name_and_no_listener_are_errors() {
    let nobody = format!("muontrap-{}-{:x}", std::process::id(), random());
    let cases = [
        ("muontrap-x-1", "invalid hand-over name 'muontrap-x-1'"),
        (
            nobody.as_str(),
            "cannot connect to the hand-over socket: Connection refused",
        ),
    ];
    for (name, want) in cases {
        let mut port = Port::spawn(&["--framed", "--capture-output", "--handover", name, "true"]);
        let (status, errors) = port.read_framed_until_exit();
        assert_eq!(status, 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains(want), "{errors:?}");
        port.close_stdin();
        assert_eq!(port.wait(), 1);
    }
}

#[test]
fn stdin_eof_while_waiting_exits_promptly() {
    let listener = Listener::new();
    let mut port = Port::spawn(&[
        "--framed",
        "--capture-output",
        "--handover",
        &listener.name,
        "sleep",
        "1000",
    ]);
    let _conn = listener.accept(port.pid());
    let start = Instant::now();
    port.close_stdin();
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(status, 1);
    assert_eq!(
        errors,
        vec![
            "muontrap: cannot receive descriptors from the BEAM: \
             the BEAM closed the port before handing over descriptors"
        ]
    );
    assert_eq!(port.wait(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
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
fn terminate_before_the_hand_over_is_honoured_after_it() {
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
    port.send_frame(TERMINATE, &[]);
    // Let the port read it while it still waits for the descriptors.
    std::thread::sleep(Duration::from_millis(200));
    let (read, write) = pipe();
    send_fds(&conn, &[OUTPUT], &[write.as_raw_fd()]);
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
    // The hand-over socket, the port's stdin/stdout and the received pipe
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
    let memfd = memfd_with(&muontrap_command::wire::encode(&cmd));
    let listener = Listener::new();
    let mut port = Port::spawn(&["--beam", listener.name.as_str()]);
    let conn = listener.accept(port.pid());
    send_fds_raw(&conn, &[COMMAND_ROLE], &[memfd.as_raw_fd()]);
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
