//! Handed-over STDIN and STDERR pipes: the program reads and writes them
//! directly, and the port keeps no copy, so the BEAM's ends see EPIPE and
//! EOF exactly when the program's side is gone.

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::thread::{self, JoinHandle};

use common::*;

/// A write on a pipe without readers must fail with EPIPE here, not kill
/// the test binary (std ignores SIGPIPE already; this does not rely on it).
fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Writes `bytes` into `w` on a thread, then closes it.
fn feed(mut w: File, bytes: Vec<u8>) -> JoinHandle<()> {
    thread::spawn(move || w.write_all(&bytes).expect("write the STDIN pipe"))
}

fn started(port: &mut Port) -> i32 {
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    be_u32(&body) as i32
}

/// Whether a `drain` thread got EOF while the port still runs (it waits
/// for its stdin to close after EXIT), i.e. the port held no copy.
fn eof_before_port_exits(port: &mut Port, reader: &JoinHandle<Vec<u8>>) -> bool {
    wait_until(TIMEOUT, || reader.is_finished()) && port.try_status().is_none()
}

#[test]
fn stdin_pipe_feeds_the_program() {
    // More than a pipeful, so the program reads while the BEAM writes.
    let input: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut port, ends) =
        Port::spawn_handover_pipes(&["--framed", "--capture-output", "cat"], &[STDIN, OUTPUT]);
    let output = drain(ends.output.expect("OUTPUT"));
    started(&mut port);
    let writer = feed(ends.stdin.expect("STDIN"), input.clone());
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
    writer.join().expect("writer");
    assert!(eof_before_port_exits(&mut port, &output));
    let out = drained(output);
    assert_eq!(out.len(), input.len());
    assert!(out == input, "output differs");
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}

#[test]
fn stderr_pipe_is_apart_from_output() {
    let (mut port, ends) = Port::spawn_handover_pipes(
        &[
            "--framed",
            "--capture-output",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        &[OUTPUT, STDERR],
    );
    let output = drain(ends.output.expect("OUTPUT"));
    let stderr = drain(ends.stderr.expect("STDERR"));
    let pid = started(&mut port);
    assert_eq!(port.read_framed_until_exit(), (3, vec![]));
    assert_gone(pid);
    assert!(eof_before_port_exits(&mut port, &output));
    assert!(eof_before_port_exits(&mut port, &stderr));
    assert_eq!(drained(output), b"out\n");
    assert_eq!(drained(stderr), b"err\n");
    port.close_stdin();
    assert_eq!(port.wait(), 3);
    assert_eq!(port.stderr(), "", "nothing on the port's own stderr");
}

#[test]
fn stderr_reaches_eof_when_the_last_descendant_is_gone() {
    // The background sleep keeps the STDERR pipe open after sh is told to
    // go: EOF comes with the tree's end, not the program's.
    let (mut port, ends) = Port::spawn_handover_pipes(
        &[
            "--framed",
            "--capture-output",
            "sh",
            "-c",
            "sleep 1000 >/dev/null & echo $!; wait",
        ],
        &[OUTPUT, STDERR],
    );
    let mut output = ends.output.expect("OUTPUT");
    let stderr = drain(ends.stderr.expect("STDERR"));
    started(&mut port);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        assert_eq!(output.read(&mut byte).expect("read OUTPUT"), 1, "EOF");
        line.push(byte[0]);
    }
    let sleeper = pids_in(&line)[0];
    assert!(!stderr.is_finished(), "EOF while the sleep holds stderr");
    port.send_frame(TERMINATE, &[]);
    assert_eq!(port.read_framed_until_exit(), (143, vec![]));
    assert_gone(sleeper);
    assert!(eof_before_port_exits(&mut port, &stderr));
    assert!(drained(stderr).is_empty());
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn the_port_keeps_no_copy_of_stdin() {
    ignore_sigpipe();
    let (mut port, ends) = Port::spawn_handover_pipes(
        &["--framed", "--capture-output", "head", "-c", "10"],
        &[OUTPUT, STDIN],
    );
    let output = drain(ends.output.expect("OUTPUT"));
    let mut stdin = ends.stdin.expect("STDIN");
    started(&mut port);
    stdin.write_all(b"0123456789").expect("write STDIN");
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
    // The program is gone and the port still runs: nobody may hold the
    // read end any more.
    let err = stdin.write_all(b"more").expect_err("a reader is left");
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    assert_eq!(drained(output), b"0123456789");
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}

#[test]
fn the_port_holds_only_the_output_pipes_and_those_until_exit() {
    let (mut port, ends) = Port::spawn_handover_pipes(
        &["--framed", "--capture-output", "sleep", "1000"],
        &[OUTPUT, STDIN, STDERR],
    );
    let output = ends.output.expect("OUTPUT");
    let stdin = ends.stdin.expect("STDIN");
    let stderr = ends.stderr.expect("STDERR");
    let pipes = [pipe_name(&stdin), pipe_name(&output), pipe_name(&stderr)];
    let pid = started(&mut port);
    // Not stdin (the BEAM's writes must see EPIPE once the program is
    // gone); the output pipes until EXIT, which the BEAM then finds
    // waiting when they end.
    let held: Vec<String> = open_fds(port.pid()).into_iter().map(|(_, t)| t).collect();
    assert!(!held.contains(&pipes[0]), "the port holds stdin: {held:?}");
    assert!(held.contains(&pipes[1]), "OUTPUT: {held:?}");
    assert!(held.contains(&pipes[2]), "STDERR: {held:?}");
    let program = open_fds(pid);
    for (fd, pipe) in pipes.iter().enumerate() {
        let fd = fd as i32;
        assert!(
            program.contains(&(fd, pipe.clone())),
            "fd {fd}: {program:?}"
        );
        assert_eq!(
            fd_flags(pid, fd) & libc::O_NONBLOCK as u32,
            0,
            "the program's fd {fd} is non-blocking"
        );
    }
    port.send_frame(TERMINATE, &[]);
    assert_eq!(port.read_framed_until_exit(), (143, vec![]));
    // EXIT came: the output pipes end, while the port waits for its stdin.
    assert!(drained(drain(output)).is_empty());
    assert!(drained(drain(stderr)).is_empty());
    port.close_stdin();
    assert_eq!(port.wait(), 143);
}

#[test]
fn all_three_pipes_at_once() {
    let (mut port, ends) = Port::spawn_handover_pipes(
        &[
            "--framed",
            "--capture-output",
            "sh",
            "-c",
            "cat; echo err >&2; exit 3",
        ],
        &[OUTPUT, STDIN, STDERR],
    );
    let output = drain(ends.output.expect("OUTPUT"));
    let stderr = drain(ends.stderr.expect("STDERR"));
    feed(ends.stdin.expect("STDIN"), b"hello\n".to_vec())
        .join()
        .expect("writer");
    started(&mut port);
    assert_eq!(port.read_framed_until_exit(), (3, vec![]));
    assert_eq!(drained(output), b"hello\n");
    assert_eq!(drained(stderr), b"err\n");
    port.close_stdin();
    assert_eq!(port.wait(), 3);
    assert_eq!(port.stderr(), "");
}

#[test]
fn stdin_without_capture() {
    // Nothing captured: STDIN alone is fine.
    let (mut port, ends) =
        Port::spawn_handover_pipes(&["--framed", "sh", "-c", "read x; exit $x"], &[STDIN]);
    feed(ends.stdin.expect("STDIN"), b"7\n".to_vec())
        .join()
        .expect("writer");
    started(&mut port);
    assert_eq!(port.read_framed_until_exit(), (7, vec![]));
    port.close_stdin();
    assert_eq!(port.wait(), 7);
    assert_eq!(port.stderr(), "");
}

#[test]
fn without_stdin_the_program_reads_dev_null() {
    let (mut port, output) =
        Port::spawn_handover(&["--framed", "--capture-output", "sh", "-c", "cat; echo done"]);
    started(&mut port);
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
    assert_eq!(drained(output), b"done\n");
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}
