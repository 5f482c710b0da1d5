//! `--notify`: the program's sd_notify socket, with real clients
//! (systemd-notify, Python's socket module, redis-server), the sender
//! check, descriptors that arrive with datagrams, coalescing and the
//! environment.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;

/// Reads frames until the NOTIFY lines so far contain all of `want`;
/// returns every line seen (in order). Panics on any other frame.
fn notify_until(frames: &Frames, want: &[&str]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    while !want.iter().all(|w| seen.iter().any(|l| l == w)) {
        let (tag, body) = frames.expect(&format!("NOTIFY with {want:?}, got {seen:?}"));
        assert_eq!(tag, NOTIFY, "{body:?}");
        seen.extend(lines(&body));
    }
    seen
}

/// TERMINATE, then frames to EXIT; returns the NOTIFY lines among them.
fn terminate(port: &mut Port, frames: &Frames) -> (Vec<String>, u32) {
    port.send_frame(TERMINATE, &[]);
    let (seen, status) = frames.until_exit();
    let mut notified = Vec::new();
    for (tag, body) in seen {
        assert_eq!(tag, NOTIFY, "{body:?}");
        notified.extend(lines(&body));
    }
    port.close_stdin();
    assert_eq!(port.wait() as u32, status);
    (notified, status)
}

#[test]
fn systemd_notify_is_heard_and_its_barrier_answered() {
    let script = "read x; systemd-notify --ready --status=up; exec sleep 100";
    let (mut port, mut ends) =
        Port::spawn_handover_pipes(&["--framed", "--notify", "sh", "-c", script], &[STDIN]);
    let frames = Frames::new(&port);
    let pid = frames.started();
    let before = settled_fd_count(port.pid());
    let start = Instant::now();
    writeln!(ends.stdin.as_mut().expect("STDIN"), "go").expect("write");
    let seen = notify_until(&frames, &["READY=1", "STATUS=up"]);
    assert_eq!(seen, ["READY=1", "STATUS=up"]);
    // systemd-notify (v252) waits for its BARRIER=1 descriptor to be
    // closed, for 5 s at most: well before that, it is gone and sh has
    // exec'd sleep.
    assert!(wait_until(Duration::from_secs(2), || comm(pid) == "sleep"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(5), || fd_count(port.pid()) == before),
        "{} descriptors, {before} before",
        fd_count(port.pid())
    );
    assert_eq!(terminate(&mut port, &frames).1, 143);
    assert_gone(pid);
}

#[test]
fn a_python_sender() {
    let program = py(r#"notify("READY=1\nSTATUS=from python"); time.sleep(100)"#);
    let mut port = Port::spawn(&argv(&["--framed", "--notify"], &program));
    let frames = Frames::new(&port);
    let pid = frames.started();
    let seen = notify_until(&frames, &["READY=1", "STATUS=from python"]);
    assert_eq!(seen, ["READY=1", "STATUS=from python"]);
    assert_eq!(terminate(&mut port, &frames).1, 143);
    assert_gone(pid);
}

#[test]
#[ignore = "needs /usr/bin/redis-server: run with --include-ignored (as CI does)"]
fn redis_server_reports_ready() {
    let redis = "/usr/bin/redis-server";
    assert!(std::path::Path::new(redis).exists(), "needs {redis}");
    let sock = format!(
        "/tmp/muontrap_redis_{}_{:x}.sock",
        std::process::id(),
        random()
    );
    let args = [
        "--framed",
        "--notify",
        redis,
        "--supervised",
        "systemd",
        "--port",
        "0",
        "--unixsocket",
        &sock,
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    let mut port = Port::spawn(&args);
    let frames = Frames::new(&port);
    let pid = frames.started();
    notify_until(&frames, &["READY=1"]);
    let (_, status) = terminate(&mut port, &frames);
    // Redis exits 0 on SIGTERM.
    assert_eq!(status, 0);
    assert_gone(pid);
    let _ = std::fs::remove_file(&sock);
}

/// The program waits for a line on STDIN, then sends `STATUS=insider`;
/// before that, the test process sends from outside.
fn outsider_is_ignored(extra: &[&str]) {
    let program = py(r#"sys.stdin.readline(); notify("STATUS=insider"); time.sleep(100)"#);
    let mut args = vec!["--framed", "--notify"];
    args.extend_from_slice(extra);
    let (mut port, mut ends) = Port::spawn_handover_pipes(&argv(&args, &program), &[STDIN]);
    let frames = Frames::new(&port);
    let pid = frames.started();
    let name = notify_socket_of(pid);
    let outside = format!("READY=1\nSTATUS=outsider\nMAINPID={pid}");
    send_from_here(&name, outside.as_bytes(), &[]);
    // Its descriptors are closed all the same (a barrier is answered).
    let (r, w) = pipe();
    send_from_here(&name, b"BARRIER=1", &[w.as_raw_fd()]);
    drop(w);
    assert!(wait_until(TIMEOUT, || hung_up(&r)), "barrier not answered");
    writeln!(ends.stdin.as_mut().expect("STDIN"), "go").expect("write");
    // The outsider's lines, queued first, would be in the first frame.
    let seen = notify_until(&frames, &["STATUS=insider"]);
    assert_eq!(seen, ["STATUS=insider"], "{extra:?}");
    let (rest, _) = terminate(&mut port, &frames);
    assert!(rest.iter().all(|l| !l.contains("outsider")), "{rest:?}");
}

fn hung_up(r: &std::fs::File) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(r.as_fd(), PollFlags::empty())];
    poll(&mut fds, PollTimeout::ZERO).expect("poll") == 1
}

#[test]
fn senders_outside_the_process_tree_are_ignored() {
    outsider_is_ignored(&[]);
}

#[test]
#[ignore = "cannot create groups beneath our own cgroup2 group: run with --include-ignored (as CI does)"]
fn senders_outside_the_cgroup_are_ignored() {
    let own = own_cgroup2_writable().expect("cannot create groups beneath our own cgroup2 group");
    let leaf = format!("muontrap_notify_{}_{:x}", std::process::id(), random());
    outsider_is_ignored(&["-g", &leaf, "--beneath-own-cgroup", "--no-controllers"]);
    assert!(!own.join(&leaf).exists(), "group left behind");
}

/// Our own group in the cgroup2 hierarchy, if we may create groups in it.
fn own_cgroup2_writable() -> Option<std::path::PathBuf> {
    let layout = muontrap_cgroup::layout::Layout::detect().ok()?;
    let own = layout.v2.as_ref()?.dir("", true)?;
    let probe = own.join(format!(
        "muontrap_notify_probe_{}_{:x}",
        std::process::id(),
        random()
    ));
    std::fs::create_dir(&probe).ok()?;
    std::fs::remove_dir(&probe).ok()?;
    Some(own)
}

#[test]
fn mainpid_must_be_inside_the_containment() {
    // pid 1, the test process and the port are all outside.
    let me = std::process::id();
    let program = py(&format!(
        r#"notify("MAINPID=1\nMAINPID={me}\nMAINPID=%d\nSTATUS=stage1" % os.getppid())
sys.stdin.readline()
notify("MAINPID=%d" % os.getpid())
time.sleep(100)"#
    ));
    let (mut port, mut ends) =
        Port::spawn_handover_pipes(&argv(&["--framed", "--notify"], &program), &[STDIN]);
    let frames = Frames::new(&port);
    let pid = frames.started();
    let seen = notify_until(&frames, &["STATUS=stage1"]);
    assert_eq!(seen, ["STATUS=stage1"]);
    writeln!(ends.stdin.as_mut().expect("STDIN"), "go").expect("write");
    let seen = notify_until(&frames, &[&format!("MAINPID={pid}")]);
    assert_eq!(seen, [format!("MAINPID={pid}")]);
    terminate(&mut port, &frames);
}

#[test]
fn a_thousand_barriers_leave_no_descriptor_behind() {
    // One pipe's write end in every datagram (each arrives as a new
    // descriptor), the last one carrying it 20 times: the read end sees
    // EOF once the port has closed every copy.
    let program = py(r#"sys.stdin.readline()
r, w = os.pipe()
for i in range(1000):
    notify("BARRIER=1", [w])
notify("BARRIER=1", [w] * 20)
os.close(w)
print("ok" if hup(r, 20) else "timeout", flush=True)
time.sleep(100)"#);
    let (mut port, mut ends) = Port::spawn_handover_pipes(
        &argv(&["--framed", "--notify", "--capture-output"], &program),
        &[OUTPUT, STDIN],
    );
    let frames = Frames::new(&port);
    frames.started();
    let before = settled_fd_count(port.pid());
    writeln!(ends.stdin.as_mut().expect("STDIN"), "go").expect("write");
    let mut line = String::new();
    BufReader::new(ends.output.take().expect("OUTPUT"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line, "ok\n");
    assert!(
        wait_until(Duration::from_secs(5), || fd_count(port.pid()) == before),
        "{} descriptors, {before} before",
        fd_count(port.pid())
    );
    let (seen, status) = terminate(&mut port, &frames);
    assert_eq!((seen.len(), status), (0, 143), "{seen:?}");
}

#[test]
fn a_flood_is_coalesced() {
    let n = 100_000;
    let program = py(&format!(
        r#"sys.stdin.readline()
for i in range({n}):
    notify("STATUS=%d" % i)
barrier()
time.sleep(100)"#
    ));
    let (mut port, mut ends) =
        Port::spawn_handover_pipes(&argv(&["--framed", "--notify"], &program), &[STDIN]);
    let frames = Frames::new(&port);
    frames.started();
    writeln!(ends.stdin.as_mut().expect("STDIN"), "go").expect("write");
    let start = Instant::now();
    let (mut count, mut last, mut rss) = (0u64, String::new(), 0);
    let want = format!("STATUS={}", n - 1);
    while last != want {
        let (tag, body) = frames.expect("the last STATUS");
        assert_eq!(tag, NOTIFY);
        count += 1;
        last = lines(&body).pop().unwrap_or_default();
        rss = rss.max(vm_rss_kib(port.pid()));
    }
    let elapsed = start.elapsed().as_millis() as u64;
    assert!(count <= elapsed / 10 + 5, "{count} frames in {elapsed} ms");
    assert!(count >= 2, "{count} frames in {elapsed} ms");
    assert!(rss < 8 * 1024, "VmRSS {rss} KiB");
    // Nothing after the last one.
    assert_eq!(frames.next(Duration::from_millis(100)), None);
    eprintln!("{n} datagrams: {count} frames in {elapsed} ms, VmRSS {rss} KiB");
    terminate(&mut port, &frames);
}

#[test]
fn the_environment_names_the_socket_and_the_watchdog() {
    let script = "echo $$ $WATCHDOG_PID $WATCHDOG_USEC $NOTIFY_SOCKET; \
                  env | grep -c -e ^WATCHDOG_PID= -e ^WATCHDOG_USEC= -e ^NOTIFY_SOCKET=";
    let inherited = [
        ("WATCHDOG_PID", "12345"),
        ("WATCHDOG_USEC", "1"),
        ("NOTIFY_SOCKET", "/run/systemd/notify"),
    ];
    let (mut port, mut ends) = Port::spawn_handover_pipes_env(
        &[
            "--framed",
            "--watchdog",
            "60000",
            "--capture-output",
            "sh",
            "-c",
            script,
        ],
        &[OUTPUT],
        &inherited,
    );
    let frames = Frames::new(&port);
    let pid = frames.started();
    let out = drained(drain(ends.output.take().expect("OUTPUT")));
    let out = String::from_utf8(out).expect("utf-8");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.len(), 5, "{out}");
    assert_eq!(words[0], pid.to_string());
    assert_eq!(
        words[1],
        pid.to_string(),
        "WATCHDOG_PID is the program's pid"
    );
    assert_eq!(words[2], "60000000");
    let prefix = format!("@muontrap-notify-{}-", port.pid());
    let suffix = words[3].strip_prefix(&prefix).expect(words[3]);
    assert!(
        suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()),
        "{suffix}"
    );
    assert_eq!(words[4], "3", "each variable once: {out}");
    assert_eq!(frames.until_exit().1, 0);
    port.close_stdin();
    assert_eq!(port.wait(), 0);
}

#[test]
fn notify_alone_drops_an_inherited_watchdog() {
    let script = "echo ${WATCHDOG_PID-unset} ${WATCHDOG_USEC-unset} ${NOTIFY_SOCKET%%-*}";
    let inherited = [("WATCHDOG_PID", "12345"), ("WATCHDOG_USEC", "1")];
    let (mut port, mut ends) = Port::spawn_handover_pipes_env(
        &[
            "--framed",
            "--notify",
            "--capture-output",
            "sh",
            "-c",
            script,
        ],
        &[OUTPUT],
        &inherited,
    );
    let frames = Frames::new(&port);
    frames.started();
    let out = drained(drain(ends.output.take().expect("OUTPUT")));
    assert_eq!(String::from_utf8_lossy(&out), "unset unset @muontrap\n");
    assert_eq!(frames.until_exit().1, 0);
    port.close_stdin();
    port.wait();
    // Without --notify and --watchdog the environment is the port's.
    let (mut port, mut ends) = Port::spawn_handover_pipes_env(
        &["--framed", "--capture-output", "sh", "-c", script],
        &[OUTPUT],
        &inherited,
    );
    let out = drained(drain(ends.output.take().expect("OUTPUT")));
    assert_eq!(String::from_utf8_lossy(&out), "12345 1\n");
    port.close_stdin();
    port.wait();
}
