//! SIGNAL requests: sent to the program, or to the MAINPID it reported;
//! SIGNALED answers (0 sent, 1 not running, 2 refused), one per request,
//! in order.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use common::*;

/// A shell that prints `got HUP` on every SIGHUP.
const TRAP_HUP: &str = r#"trap "echo got HUP" HUP; echo ready; while :; do sleep 0.05; done"#;

/// SIGNAL `sig`; returns SIGNALED's byte. NOTIFY frames on the way are
/// skipped; any other frame fails the test.
fn signal(port: &mut Port, frames: &Frames, sig: u32) -> u8 {
    port.send_frame(SIGNAL, &sig.to_be_bytes());
    loop {
        let (tag, body) = frames.expect("SIGNALED");
        if tag == NOTIFY {
            continue;
        }
        assert_eq!(tag, SIGNALED, "{body:?}");
        assert_eq!(body.len(), 1, "{body:?}");
        return body[0];
    }
}

/// The next line of the program's output.
fn line(out: &mut BufReader<File>) -> String {
    let mut l = String::new();
    let n = out.read_line(&mut l).expect("read OUTPUT");
    assert!(n > 0, "EOF on OUTPUT");
    l.trim_end_matches('\n').to_string()
}

fn rest(mut out: BufReader<File>) -> String {
    let mut s = String::new();
    out.read_to_string(&mut s).expect("read OUTPUT");
    s
}

/// Framed with OUTPUT handed over; returns the port, its frames, the
/// program's pid and its output.
fn start(args: &[&str]) -> (Port, Frames, i32, BufReader<File>) {
    let mut full = vec!["--framed", "--capture-output"];
    full.extend_from_slice(args);
    let (port, mut ends) = Port::spawn_handover_pipes(&full, &[OUTPUT]);
    let frames = Frames::new(&port);
    let pid = frames.started();
    let out = BufReader::new(ends.output.take().expect("OUTPUT"));
    (port, frames, pid, out)
}

fn terminate(mut port: Port, frames: &Frames) -> u32 {
    port.send_frame(TERMINATE, &[]);
    let (seen, status) = frames.until_exit();
    assert!(seen.iter().all(|(t, _)| *t == NOTIFY), "{seen:?}");
    port.close_stdin();
    assert_eq!(port.wait() as u32, status);
    status
}

#[test]
fn a_signal_reaches_the_program() {
    let (mut port, frames, pid, mut out) = start(&["sh", "-c", TRAP_HUP]);
    assert_eq!(line(&mut out), "ready");
    for _ in 0..3 {
        assert_eq!(signal(&mut port, &frames, libc::SIGHUP as u32), 0);
        assert_eq!(line(&mut out), "got HUP");
    }
    // Numbers outside 1..SIGRTMAX: refused, nothing sent.
    for bad in [0, 65, 99999, u32::MAX] {
        assert_eq!(signal(&mut port, &frames, bad), 2, "{bad}");
    }
    // In order, one answer each. (Two HUPs this close could merge into
    // one pending signal, so only one here.)
    let mut batch = Vec::new();
    for sig in [0, libc::SIGHUP as u32, 65] {
        batch.extend_from_slice(&[0, 0, 0, 5, SIGNAL]);
        batch.extend_from_slice(&sig.to_be_bytes());
    }
    port.write(&batch);
    for want in [2, 0, 2] {
        let (tag, body) = frames.expect("SIGNALED");
        assert_eq!((tag, body), (SIGNALED, vec![want]));
    }
    assert_eq!(line(&mut out), "got HUP");
    assert!(!gone(pid));
    assert_eq!(terminate(port, &frames), 143);
    assert_eq!(rest(out), "");
    assert_gone(pid);
}

#[test]
fn a_signal_to_a_program_that_exited_is_not_sent() {
    // The program exits at once; the descendant it leaves ignores SIGTERM
    // (inherited: set before the fork, a stop signal cannot race it), so
    // the stop sequence lasts until the SIGKILL, 3 s later.
    let script = r#"trap "" TERM; sleep 30 & echo $!; exit 3"#;
    let (mut port, frames, pid, mut out) = start(&["-k", "3000", "sh", "-c", script]);
    let sleeper: i32 = line(&mut out).parse().expect("pid");
    assert_gone(pid);
    assert!(!gone(sleeper));
    assert_eq!(signal(&mut port, &frames, libc::SIGHUP as u32), 1);
    assert_eq!(signal(&mut port, &frames, 0), 2);
    let (seen, status) = frames.until_exit();
    assert_eq!((seen.len(), status), (0, 3));
    assert_gone(sleeper);
    port.close_stdin();
    assert_eq!(port.wait(), 3);
}

#[test]
fn a_signal_once_termination_began_is_not_sent() {
    let script = format!(r#"trap "" TERM; {TRAP_HUP}"#);
    let (mut port, frames, pid, mut out) = start(&["-k", "500", "sh", "-c", &script]);
    assert_eq!(line(&mut out), "ready");
    // TERMINATE and SIGNAL in one write: the program is being terminated.
    let mut both = vec![0, 0, 0, 1, TERMINATE, 0, 0, 0, 5, SIGNAL];
    both.extend_from_slice(&(libc::SIGHUP as u32).to_be_bytes());
    port.write(&both);
    let (tag, body) = frames.expect("SIGNALED");
    assert_eq!((tag, body), (SIGNALED, vec![1]));
    let (seen, status) = frames.until_exit();
    assert_eq!((seen.len(), status), (0, 137));
    assert_eq!(rest(out), "", "the HUP must not have been sent");
    assert_gone(pid);
    port.close_stdin();
    port.wait();
}

#[test]
fn a_signal_with_a_bad_body_is_a_protocol_error() {
    for body in [&[][..], &[0, 0, 1], &[0, 0, 0, 1, 0]] {
        let mut port = Port::spawn(&["--framed", "sleep", "100"]);
        let (tag, _) = port.read_frame().expect("STARTED");
        assert_eq!(tag, STARTED);
        port.send_frame(SIGNAL, body);
        let want = format!(
            "muontrap: protocol error: message with tag 5 has bad length {}",
            body.len() + 1
        );
        assert_eq!(port.read_framed_until_exit(), (1, vec![want]), "{body:?}");
        port.close_stdin();
        assert_eq!(port.wait(), 1);
    }
}

/// The program starts a shell in the background and reports it as its
/// MAINPID; both trap SIGUSR1. The shell exits at its first one.
const MAINPID_PROGRAM: &str = r#"import signal, subprocess
signal.signal(signal.SIGUSR1, lambda *a: print("parent got USR1", flush=True))
child = subprocess.Popen(["sh", "-c",
    'trap "echo child got USR1; exit 0" USR1; echo child ready; while :; do sleep 0.05; done'])
notify("MAINPID=%d" % child.pid)
barrier()
print("reported", flush=True)
while True:
    time.sleep(0.05)
"#;

fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[test]
fn a_signal_goes_to_the_mainpid() {
    let program = py(MAINPID_PROGRAM);
    let (mut port, frames, pid, mut out) = start(&argv(&["--notify"], &program));
    let (tag, body) = frames.expect("NOTIFY");
    assert_eq!(tag, NOTIFY, "{body:?}");
    let main: i32 = lines(&body)
        .iter()
        .find_map(|l| l.strip_prefix("MAINPID=").and_then(|p| p.parse().ok()))
        .expect("MAINPID");
    assert_ne!(main, pid);
    let mut first = [line(&mut out), line(&mut out)];
    first.sort();
    assert_eq!(first, ["child ready", "reported"]);
    assert_eq!(signal(&mut port, &frames, libc::SIGUSR1 as u32), 0);
    assert_eq!(line(&mut out), "child got USR1");
    // The main process is gone (a zombie its parent never reaps): not
    // running, and the program itself gets nothing either.
    assert!(wait_until(TIMEOUT, || matches!(
        state(main),
        Some('Z') | None
    )));
    assert_eq!(signal(&mut port, &frames, libc::SIGUSR1 as u32), 1);
    assert!(!gone(pid));
    assert_eq!(terminate(port, &frames), 143);
    assert_eq!(rest(out), "");
    assert_gone(pid);
}

#[test]
fn without_a_mainpid_the_program_is_the_main_process() {
    // --notify, but nothing reported: the program gets it.
    let (mut port, frames, pid, mut out) = start(&["--notify", "sh", "-c", TRAP_HUP]);
    assert_eq!(line(&mut out), "ready");
    assert_eq!(signal(&mut port, &frames, libc::SIGHUP as u32), 0);
    assert_eq!(line(&mut out), "got HUP");
    // SIGKILL may be requested too; it ends the program like any exit.
    assert_eq!(signal(&mut port, &frames, libc::SIGKILL as u32), 0);
    let (seen, status) = frames.until_exit();
    assert_eq!((seen.len(), status), (0, 137));
    assert_gone(pid);
    port.close_stdin();
    port.wait();
}
