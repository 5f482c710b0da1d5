//! Containment: nothing the program started survives the port.

mod common;

use common::*;

/// `sh` (the program) prints its background sleeper's pid and its own.
const TREE: &str = "sleep 1000 & echo $! $$; wait";

fn two_pids(port: &mut Port) -> (i32, i32) {
    let out = port.read_plain_until(b"\n");
    let pids = pids_in(&out);
    assert_eq!(pids.len(), 2, "{out:?}");
    (pids[0], pids[1])
}

#[test]
fn stdin_eof_kills_child_and_grandchild() {
    let mut port = Port::spawn(&["--capture-output", "sh", "-c", TREE]);
    let (grandchild, child) = two_pids(&mut port);
    port.close_stdin();
    assert_eq!(port.wait(), 143);
    assert_gone(child);
    assert_gone(grandchild);
}

#[test]
fn terminating_signals_kill_the_tree() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
        let mut port = Port::spawn(&["--capture-output", "sh", "-c", TREE]);
        let (grandchild, child) = two_pids(&mut port);
        // SAFETY: kill(2) of the port we spawned.
        unsafe { libc::kill(port.pid(), sig) };
        assert_eq!(port.wait(), 143, "signal {sig}");
        assert_gone(child);
        assert_gone(grandchild);
    }
}

#[test]
fn leftover_descendants_are_killed_when_program_exits() {
    // The program exits at once; its background child keeps the output
    // pipe open, yet the port still finishes with the program's status.
    let mut port = Port::spawn(&[
        "--capture-output",
        "sh",
        "-c",
        "sleep 1000 & echo $!; exit 7",
    ]);
    let out = port.read_plain_acking();
    let pids = pids_in(&out);
    assert_eq!(pids.len(), 1);
    assert_eq!(port.wait(), 7);
    assert_gone(pids[0]);
}

#[test]
fn escaped_and_orphaned_descendants_are_killed() {
    // `setsid` leaves the process group; the subshell exits so the sleeper
    // is orphaned and reparents to the port (a subreaper).
    // In a subshell `$$` is still the main shell's pid.
    let script = "(setsid sleep 1000 & echo $! $$); exec sleep 1000";
    let mut port = Port::spawn(&["--capture-output", "sh", "-c", script]);
    let (orphan, child) = two_pids(&mut port);
    port.close_stdin();
    assert_eq!(port.wait(), 143);
    assert_gone(child);
    assert_gone(orphan);
}

/// A descendant may name itself anything (here bytes that are no UTF-8,
/// as a file name cut at 15 bytes inside a character also gives): its
/// /proc stat must still be understood, or it is never signalled and the
/// port waits for it for ever.
#[test]
fn a_descendant_named_in_bytes_is_killed_too() {
    // The renamed shell forks its sleeps (an exec would rename it back).
    let script = r#"(setsid sh -c 'printf "\377\376" > /proc/self/comm; while :; do sleep 1; done' & echo $! $$); exec sleep 1000"#;
    let mut port = Port::spawn(&["--capture-output", "-k", "100", "sh", "-c", script]);
    let (renamed, child) = two_pids(&mut port);
    assert!(wait_until(TIMEOUT, || std::fs::read(format!(
        "/proc/{renamed}/comm"
    ))
    .is_ok_and(|c| c.starts_with(b"\xff"))));
    port.close_stdin();
    assert_eq!(port.wait(), 143);
    assert_gone(child);
    assert_gone(renamed);
}

#[test]
fn killing_the_port_kills_the_program() {
    // PR_SET_PDEATHSIG covers the case where the port gets no chance to
    // clean up.
    let mut port = Port::spawn(&["--framed", "sleep", "1000"]);
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED);
    let pid = be_u32(&body) as i32;
    // SAFETY: kill(2) of the supervisor we started.
    unsafe { libc::kill(port.pid(), libc::SIGKILL) };
    port.wait_gone();
    assert_gone(pid);
}

#[test]
fn log_lines_only_when_enabled() {
    let mut port = Port::spawn_env(&["true"], &[("MUONTRAP_LOG", "debug")]);
    assert_eq!(port.wait(), 0);
    let err = port.stderr();
    let pid = port.pid();
    assert!(
        err.contains(&format!("muontrap[{pid}]: DEBUG program started pid=")),
        "{err}"
    );
    assert!(err.lines().all(|l| l.starts_with("muontrap[")), "{err}");

    let mut port = Port::spawn(&["true"]);
    assert_eq!(port.wait(), 0);
    assert_eq!(port.stderr(), "");
}

#[test]
fn a_closed_stdout_does_not_stop_containment() {
    // The BEAM side may be gone entirely: EXIT then meets EPIPE, yet the
    // program and its descendants are still killed and reaped.
    let (mut port, read) = Port::spawn_handover_raw(&[
        "--framed",
        "--capture-output",
        "sh",
        "-c",
        "sleep 1000 & echo $! $$; wait",
    ]);
    let mut lines = std::io::BufReader::new(read);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut lines, &mut line).expect("pids");
    let pids = pids_in(line.as_bytes());
    assert_eq!(pids.len(), 2, "{line:?}");
    port.close_stdout();
    port.close_stdin();
    // No EXIT can be read; the supervisor ends all the same.
    port.wait_gone();
    assert_gone(pids[0]);
    assert_gone(pids[1]);
}
