//! Socket activation: LISTEN descriptors handed over become the program's
//! fds 3, 4, ... with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES, as
//! systemd passes them; nothing else reaches the program, and the port
//! keeps no copy.

mod common;

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use common::*;

/// A listener as the BEAM has it (non-blocking), on a free loopback port.
fn tcp_listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.set_nonblocking(true).expect("O_NONBLOCK");
    l
}

/// How `/proc/PID/fd/N` links name the socket.
fn socket_name(l: &TcpListener) -> String {
    let st = nix::sys::stat::fstat(l).expect("fstat");
    format!("socket:[{}]", st.st_ino)
}

fn raw(ls: &[TcpListener]) -> Vec<RawFd> {
    ls.iter().map(AsRawFd::as_raw_fd).collect()
}

fn started(port: &mut Port) -> i32 {
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED, "{}", String::from_utf8_lossy(&body));
    be_u32(&body) as i32
}

/// Runs a framed `program` with `flags`, `roles` (OUTPUT among them)
/// and `listen`; returns (STARTED pid, exit status, output).
fn framed_output(
    flags: &[&str],
    program: &[&str],
    roles: &[u8],
    listen: &[RawFd],
    env: &[(&str, &str)],
) -> (i32, u32, String) {
    let mut args = vec!["--framed", "--capture-output"];
    args.extend_from_slice(flags);
    args.extend_from_slice(program);
    let (mut port, ends) = Port::spawn_handover_listen(&args, roles, listen, env);
    let output = drain(ends.output.expect("OUTPUT"));
    let pid = started(&mut port);
    let (status, errors) = port.read_framed_until_exit();
    assert_eq!(errors, Vec::<String>::new());
    port.close_stdin();
    assert_eq!(port.wait() as u32, status);
    let out = String::from_utf8(drained(output)).expect("UTF-8 output");
    (pid, status, out)
}

/// `ls -l` lines `... N -> TARGET` as (N, TARGET).
fn fd_links(listing: &str) -> Vec<(i32, String)> {
    listing
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.to_string()))
        })
        .collect()
}

#[test]
fn two_listeners_become_fds_3_and_4() {
    let ls = [tcp_listener(), tcp_listener()];
    // exec: `ls` is the program itself ($$), listing its own table.
    let script = r#"echo "$$ $LISTEN_FDS $LISTEN_PID $LISTEN_FDNAMES"; exec ls -l /proc/self/fd"#;
    let (pid, status, out) = framed_output(
        &["--listen-fdnames", "http:admin"],
        &["sh", "-c", script],
        &[LISTEN, OUTPUT, LISTEN],
        &raw(&ls),
        &[],
    );
    assert_eq!(status, 0, "{out}");
    let (first, listing) = out.split_once('\n').expect("two parts");
    assert_eq!(first, format!("{pid} 2 {pid} http:admin"));
    let links = fd_links(listing);
    let fds: Vec<i32> = links.iter().map(|(fd, _)| *fd).collect();
    // 5 is the directory `ls` has open while it reads it, nothing else.
    assert_eq!(fds, [0, 1, 2, 3, 4, 5], "{listing}");
    assert_eq!(links[3].1, socket_name(&ls[0]));
    assert_eq!(links[4].1, socket_name(&ls[1]));
    assert_eq!(links[5].1, format!("/proc/{pid}/fd"));
}

/// The Python interpreter any user can run (the test's own may sit under
/// a home directory).
fn system_python() -> Option<&'static str> {
    let p = "/usr/bin/python3";
    std::path::Path::new(p).exists().then_some(p)
}

const ACCEPT_ONE: &str = r#"
import os, socket, sys
s = socket.fromfd(3, socket.AF_INET, socket.SOCK_STREAM)
s.setblocking(True)
c, _ = s.accept()
c.sendall(b"%d" % os.getpid())
c.close()
sys.exit(1)
"#;

/// The program accepts one connection on fd 3 and replies with its pid;
/// the port holds no copy meanwhile, and the BEAM's listener still
/// accepts once the program is gone.
fn accepts_on_fd_3(python: &str, flags: &[&str]) {
    use std::io::Read;
    let l = tcp_listener();
    let mut args = vec!["--framed"];
    args.extend_from_slice(flags);
    args.extend([python, "-c", ACCEPT_ONE]);
    let (mut port, _ends) = Port::spawn_handover_listen(&args, &[LISTEN], &[l.as_raw_fd()], &[]);
    let pid = started(&mut port);
    let name = socket_name(&l);
    for (fd, target) in open_fds(port.pid()) {
        assert_ne!(target, name, "the port holds the listener as fd {fd}");
    }
    let addr = l.local_addr().expect("local_addr");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    // A program that never accepts leaves the connection in the backlog.
    conn.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read the reply");
    assert_eq!(reply, pid.to_string(), "{flags:?}");
    assert_eq!(port.read_framed_until_exit(), (1, vec![]), "{flags:?}");
    // One open file description: the program's setblocking(True) made the
    // BEAM's socket blocking too (docs/protocol.md says so).
    assert_eq!(
        fd_flags(std::process::id() as i32, l.as_raw_fd()) & libc::O_NONBLOCK as u32,
        0
    );
    let _client = std::net::TcpStream::connect(addr).expect("connect again");
    l.accept().expect("the BEAM's listener accepts");
    port.close_stdin();
    assert_eq!(port.wait(), 1);
}

#[test]
fn the_program_accepts_and_the_beam_keeps_its_listener() {
    accepts_on_fd_3(python(), &[]);
}

#[test]
#[ignore = "needs root and /usr/bin/python3: run with --include-ignored (as CI does)"]
fn listeners_survive_the_privilege_drop() {
    let python = system_python().expect("needs /usr/bin/python3");
    assert_eq!(nix::unistd::geteuid().as_raw(), 0, "needs root");
    accepts_on_fd_3(python, &["--uid", "nobody", "--gid", "65534"]);
}

#[test]
#[ignore = "needs /usr/bin/python3 and a writable cgroup2 group beneath our own: run with --include-ignored (as CI does)"]
fn listeners_survive_the_cgroup() {
    let python = system_python().expect("needs /usr/bin/python3");
    assert!(
        own_cgroup2_writable(),
        "cannot create groups beneath our own cgroup2 group"
    );
    let leaf = format!("muontrap_listen_{}_{:x}", std::process::id(), random());
    accepts_on_fd_3(
        python,
        &["-g", &leaf, "--beneath-own-cgroup", "--no-controllers"],
    );
}

/// Whether we may create groups beneath our own cgroup2 group.
fn own_cgroup2_writable() -> bool {
    let Ok(layout) = muontrap_cgroup::layout::Layout::detect() else {
        return false;
    };
    let Some(own) = layout.v2.as_ref().and_then(|v2| v2.dir("", true)) else {
        return false;
    };
    let probe = own.join(format!(
        "muontrap_listen_probe_{}_{:x}",
        std::process::id(),
        random()
    ));
    std::fs::create_dir(&probe).is_ok() && std::fs::remove_dir(&probe).is_ok()
}

const SHOW_ENV: &str = r#"echo "${LISTEN_FDS-unset} ${LISTEN_PID-unset} ${LISTEN_FDNAMES-unset}""#;

const INHERITED: [(&str, &str); 3] = [
    ("LISTEN_FDS", "7"),
    ("LISTEN_PID", "1"),
    ("LISTEN_FDNAMES", "theirs"),
];

#[test]
fn inherited_listen_variables_never_reach_the_program() {
    let sh = ["sh", "-c", SHOW_ENV];
    // A hand-over without LISTEN.
    let (_, status, out) = framed_output(&[], &sh, &[OUTPUT], &[], &INHERITED);
    assert_eq!((status, out.as_str()), (0, "unset unset unset\n"));
    // No hand-over at all (plain mode, relayed).
    let mut args = vec!["--capture-output"];
    args.extend(sh);
    let mut port = Port::spawn_env(&args, &INHERITED);
    assert_eq!(port.read_plain_acking(), b"unset unset unset\n");
    assert_eq!(port.wait(), 0);
    // With LISTEN: ours, and no names since none were given.
    let l = tcp_listener();
    let (pid, status, out) =
        framed_output(&[], &sh, &[OUTPUT, LISTEN], &[l.as_raw_fd()], &INHERITED);
    assert_eq!((status, out), (0, format!("1 {pid} unset\n")));
}

#[test]
fn with_the_notification_socket_both_pids_are_filled_in() {
    let l = tcp_listener();
    let script = r#"echo "$$ $WATCHDOG_PID $LISTEN_PID $LISTEN_FDS ${NOTIFY_SOCKET%%-*}""#;
    let (pid, status, out) = framed_output(
        &["--notify", "--watchdog", "60000"],
        &["sh", "-c", script],
        &[OUTPUT, LISTEN],
        &[l.as_raw_fd()],
        &[("WATCHDOG_PID", "1"), ("LISTEN_PID", "1")],
    );
    assert_eq!(
        (status, out),
        (0, format!("{pid} {pid} {pid} 1 @muontrap\n"))
    );
}

/// Every fd the program has, and LISTEN_FDS, from Python: sockets on
/// 3..3+n in the order sent (their ports), the directory listing itself
/// on 3+n, nothing else.
const FD_REPORT: &str = r#"
import os, socket
n = int(os.environ["LISTEN_FDS"])
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
ports = [socket.socket(fileno=os.dup(fd)).getsockname()[1] for fd in range(3, 3 + n)]
print(n, fds, ports)
"#;

#[test]
fn the_whole_limit_interleaved_with_the_pipes() {
    // 29 listeners and OUTPUT, STDIN and STDERR: the 32 descriptors a
    // hand-over may carry, LISTEN on both sides of the pipes.
    let ls: Vec<TcpListener> = (0..29).map(|_| tcp_listener()).collect();
    let mut roles = vec![LISTEN; 10];
    roles.push(OUTPUT);
    roles.extend([LISTEN; 10]);
    roles.extend([STDIN, STDERR]);
    roles.extend([LISTEN; 9]);
    let (_, status, out) = framed_output(&[], &[python(), "-c", FD_REPORT], &roles, &raw(&ls), &[]);
    let ports: Vec<u16> = ls
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let fds: Vec<i32> = (0..=32).collect();
    assert_eq!((status, out), (0, format!("29 {fds:?} {ports:?}\n")));
}

#[test]
fn listeners_without_any_pipe() {
    // A daemon without capture: only LISTEN.
    let ls = [tcp_listener(), tcp_listener()];
    let script = "[ -S /proc/self/fd/3 ] && [ -S /proc/self/fd/4 ] && \
                  [ ! -e /proc/self/fd/5 ] && exit $LISTEN_FDS";
    let args = ["--listen-fdnames", "a:b", "--framed", "sh", "-c", script];
    let (mut port, _) = Port::spawn_handover_listen(&args, &[LISTEN, LISTEN], &raw(&ls), &[]);
    started(&mut port);
    assert_eq!(port.read_framed_until_exit(), (2, vec![]));
    port.close_stdin();
    assert_eq!(port.wait(), 2);
}

#[test]
fn the_stop_signal_and_signals_reach_a_listening_program() {
    let l = tcp_listener();
    let args = ["--framed", "--stop-signal", "HUP", "sleep", "1000"];
    let (mut port, _) = Port::spawn_handover_listen(&args, &[LISTEN], &[l.as_raw_fd()], &[]);
    started(&mut port);
    port.send_frame(SIGNAL, &(libc::SIGCONT as u32).to_be_bytes());
    assert_eq!(port.read_frame(), Some((SIGNALED, vec![0])));
    port.send_frame(TERMINATE, &[]);
    assert_eq!(port.read_framed_until_exit(), (129, vec![]));
    port.close_stdin();
    assert_eq!(port.wait(), 129);
}
