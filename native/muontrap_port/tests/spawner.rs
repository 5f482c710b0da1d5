//! `muontrap --spawner`: its hello, its requests, its end, and the
//! supervisors it forks.

mod common;

use std::os::fd::AsRawFd;

use common::*;
use muontrap_command::{Command, EnvBlock};

fn cmd(program: &str, args: &[&str]) -> Command {
    Command {
        program: program.into(),
        args: args.iter().map(|a| (*a).into()).collect(),
        ..Command::default()
    }
}

/// `cmd` on `spawner`: the port, its frames from STARTED on.
fn start_on(spawner: Spawner, cmd: &Command) -> Port {
    Port::on_spawner(spawner, Start::library(cmd))
}

fn started(port: &mut Port) -> i32 {
    let (tag, body) = port.read_frame().expect("STARTED");
    assert_eq!(tag, STARTED, "{body:?}");
    be_u32(&body) as i32
}

#[test]
fn hello_then_eof_ends_the_spawner() {
    let mut spawner = Spawner::start();
    let pid = spawner.pid;
    assert!(!finished(pid));
    spawner.close();
    assert!(wait_until(TIMEOUT, || finished(pid)), "spawner {pid} left");
    assert_eq!(spawner.stderr(), "");
}

#[test]
fn bad_requests_are_dropped_and_the_next_one_works() {
    let spawner = Spawner::start();
    let (a, a_peer) = stream_pair();
    let (b, b_peer) = stream_pair();
    let (c, c_peer) = stream_pair();
    // No descriptor; two descriptors; a wrong tag.
    spawner.send_raw(&muontrap_wire::channel::SPAWN_REQUEST, &[]);
    spawner.send_raw(
        &muontrap_wire::channel::SPAWN_REQUEST,
        &[a_peer.as_raw_fd(), b_peer.as_raw_fd()],
    );
    spawner.send_raw(&[0, 0, 0, 1, 99], &[c_peer.as_raw_fd()]);
    drop((a_peer, b_peer, c_peer));
    // Their channels are closed, never served.
    for end in [a, b, c] {
        let f = std::fs::File::from(end);
        assert_eq!(read_frame_from(&f), None);
    }
    assert!(!finished(spawner.pid));
    let mut port = start_on(spawner, &cmd("true", &[]));
    started(&mut port);
    assert_eq!(port.read_framed_until_exit(), (0, vec![]));
}

#[test]
fn fifty_requests_back_to_back_get_a_supervisor_each() {
    let spawner = Spawner::start();
    let channels: Vec<std::fs::File> = (0..50).map(|_| spawner.channel()).collect();
    let mut pids: Vec<i32> = channels.iter().map(read_hello).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 50);
    assert!(!pids.contains(&spawner.pid));
}

#[test]
fn supervisors_hold_only_their_own_channel() {
    let spawner = Spawner::start();
    let channels: Vec<std::fs::File> = (0..20).map(|_| spawner.channel()).collect();
    let mut seen = std::collections::HashSet::new();
    for ch in &channels {
        let pid = read_hello(ch);
        let (mut fds, kept): (Vec<_>, Vec<_>) = open_fds(pid)
            .into_iter()
            .partition(|(fd, _)| *fd < muontrap_wire::channel::STANDBY_KEPT_MIN_FD);
        fds.sort();
        // A former standby: its socket to the spawner, until its command
        // has started (none comes here).
        assert!(kept.len() <= 1, "supervisor {pid}: {kept:?}");
        assert!(kept.iter().all(|(_, t)| t.starts_with("socket:")));
        // Its channel on 0 and 1, the BEAM's stderr, its own signalfd, on
        // Linux the end notices' pipe: no other command's channel, not
        // the request socket.
        let notices = cfg!(linux_native) as usize;
        assert_eq!(fds.len(), 4 + notices, "supervisor {pid}: {fds:?}");
        assert!(fds[0].1.starts_with("socket:") && fds[0].1 == fds[1].1);
        assert!(seen.insert(fds[0].1.clone()), "a channel twice: {fds:?}");
        assert!(!fds[2].1.starts_with("socket:"), "{fds:?}");
        assert_eq!(fds[3].1, "anon_inode:[signalfd]", "{fds:?}");
        if notices == 1 {
            let pipe = pipe_name(&spawner.notices);
            assert_eq!((fds[4].0, &fds[4].1), (4, &pipe), "{fds:?}");
        }
    }
}

/// The owner of /proc/<pid>: a non-dumpable process's is root's.
fn proc_owner(pid: i32) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid()
}

#[test]
#[ignore = "needs root and setpriv (runs the spawner as nobody)"]
fn supervisors_are_not_dumpable() {
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let spawner = Spawner::start_with(&wrapper, &[]);
    // The spawner is dumpable: its /proc files are its user's.
    assert_eq!(proc_owner(spawner.pid), 65534);
    let ch = spawner.channel();
    let pid = read_hello(&ch);
    assert_eq!(proc_owner(pid), 0, "supervisor {pid} is dumpable");
}

#[test]
fn killing_the_spawner_leaves_running_commands_alone() {
    let spawner = Spawner::start();
    let spawner_pid = spawner.pid;
    let mut port = start_on(spawner, &cmd("sleep", &["1000"]));
    let program = started(&mut port);
    // SAFETY: kill(2) of the spawner this test started.
    unsafe { libc::kill(spawner_pid, libc::SIGKILL) };
    assert!(wait_until(TIMEOUT, || finished(spawner_pid)));
    assert!(!finished(port.pid()) && !gone(program));
    port.send_frame(TERMINATE, &[]);
    assert_eq!(port.read_framed_until_exit(), (143, vec![]));
    port.close_stdin();
    port.wait_gone();
}

#[test]
fn the_command_dies_with_its_supervisor() {
    let mut port = Port::spawn_library(&cmd("sleep", &["1000"]));
    let program = started(&mut port);
    // SAFETY: kill(2) of the supervisor this test started.
    unsafe { libc::kill(port.pid(), libc::SIGKILL) };
    port.wait_gone();
    assert!(wait_until(TIMEOUT, || finished(program)), "{program} left");
}

#[test]
fn base_env_and_cd_are_honoured() {
    let dir = std::env::temp_dir();
    let mut c = cmd("sh", &["-c", "echo \"$A|$B|$HOME|$(pwd)\""]);
    c.capture = muontrap_command::Capture::Stdout;
    c.base_env = EnvBlock::from_pairs([("A", "1"), ("B", "2")]);
    c.env = vec![("B".into(), Some("3".into()))];
    c.cd = Some(muontrap_command::Bytes(dir.as_os_str().to_owned()));
    let (read, write) = pipe();
    let spawner = Spawner::start_with(&[], &[("A", "outer"), ("HOME", "/outer")]);
    let (beam, theirs) = stream_pair();
    spawner.request(&theirs);
    drop(theirs);
    let beam = std::fs::File::from(beam);
    let _pid = read_hello(&beam);
    let memfd = memfd_with(&muontrap_command::wire::encode(&c));
    send_handover(
        &beam,
        &[OUTPUT, COMMAND_ROLE],
        &[write.as_raw_fd(), memfd.as_raw_fd()],
    );
    drop(write);
    let out = drained(drain(read));
    let want = format!("1|3||{}\n", dir.canonicalize().unwrap().display());
    assert_eq!(String::from_utf8_lossy(&out), want);
}

/// A command run to its EXIT through `spawner` with end notice `notice`
/// (0: none): `(output read end, non-blocking; the BEAM's channel end)`.
fn run_to_exit(spawner: &Spawner, notice: u64) -> (std::fs::File, std::fs::File) {
    let (read, write) = pipe();
    set_nonblocking(&read);
    let (beam, theirs) = stream_pair();
    spawner.request(&theirs);
    drop(theirs);
    let beam = std::fs::File::from(beam);
    read_hello(&beam);
    let mut c = cmd("sh", &["-c", "echo out"]);
    c.capture = muontrap_command::Capture::Stdout;
    let memfd = memfd_with(&muontrap_command::wire::encode(&c));
    let frame = muontrap_wire::channel::handover_noticed(notice, &[OUTPUT, COMMAND_ROLE], &[]);
    send_with_fds(
        beam.as_raw_fd(),
        &frame,
        &[write.as_raw_fd(), memfd.as_raw_fd()],
    )
    .expect("send HANDOVER");
    drop(write);
    loop {
        let (tag, body) = read_frame_from(&beam).expect("frames until EXIT");
        if tag == EXIT {
            assert_eq!(be_u32(&body), 0);
            break;
        }
    }
    (read, beam)
}

/// Reads what `f` holds now: `Some(bytes)`, `None` at EAGAIN.
fn read_now(mut f: &std::fs::File) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    match f.read(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
#[cfg_attr(not(linux_native), ignore = "end notices are Linux's only")]
fn an_end_notice_follows_exit_and_the_output_ends_with_the_channel() {
    let mut spawner = Spawner::start();
    set_nonblocking(&spawner.notices);
    let id = 0x0102_0304_0506_0708;
    let (output, channel) = run_to_exit(&spawner, id);
    // The notice, once EXIT is in the channel.
    let mut notice = [0u8; 8];
    assert!(wait_until(TIMEOUT, || {
        use std::io::Read;
        (&spawner.notices).read_exact(&mut notice).is_ok()
    }));
    assert_eq!(u64::from_be_bytes(notice), id);
    // Every byte is there, and the pipe does not end while the channel
    // is open: the supervisor holds it.
    assert_eq!(read_now(&output), Some(b"out\n".to_vec()));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(read_now(&output), None);
    drop(channel);
    assert!(wait_until(TIMEOUT, || read_now(&output) == Some(vec![])));
    // One notice, no more.
    assert!(read_now(&spawner.notices).is_none());
    assert_eq!(spawner.stderr(), "");
}

#[test]
fn without_an_end_notice_the_output_ends_with_exit() {
    let mut spawner = Spawner::start();
    set_nonblocking(&spawner.notices);
    let (output, channel) = run_to_exit(&spawner, 0);
    // The output ends with EXIT, the channel still open.
    let mut got = Vec::new();
    assert!(wait_until(TIMEOUT, || match read_now(&output) {
        Some(bytes) if bytes.is_empty() => true,
        Some(bytes) => {
            got.extend(bytes);
            false
        }
        None => false,
    }));
    assert_eq!(got, b"out\n");
    assert!(read_now(&spawner.notices).is_none());
    drop(channel);
    assert_eq!(spawner.stderr(), "");
}
