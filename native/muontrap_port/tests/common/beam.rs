//! The BEAM's side of the hand-over: the HANDOVER frame on a command's
//! channel, with one role byte per descriptor.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::thread::{self, JoinHandle};

use super::{
    memfd_with, register_channel, send_with_fds, stream_pair, take_command, Port, COMMAND_ROLE,
    LISTEN, OUTPUT, STDERR, STDIN,
};

impl Port {
    /// Acts as `MuonTrap.cmd/3`: starts the port with `--handover` (before
    /// `args`) and hands over a pipe's write end as OUTPUT; returns the
    /// port and the read end, at EOF once the program and its descendants
    /// are gone.
    pub fn spawn_handover_raw(args: &[&str]) -> (Port, File) {
        let listener = Listener::new();
        let mut full = vec!["--handover", listener.name.as_str()];
        full.extend_from_slice(args);
        let port = Port::spawn(&full);
        let conn = listener.accept(port.pid());
        let (read, write) = pipe();
        send_fds(&conn, &[OUTPUT], &[write.as_raw_fd()]);
        (port, read)
    }

    /// Spawns the port with `--handover` (before `args`) and hands over a
    /// new pipe for each of `roles` (OUTPUT, STDIN or STDERR, in the order
    /// given), the ends sent made non-blocking as the BEAM's are. Returns
    /// the port and the ends the BEAM keeps (blocking).
    pub fn spawn_handover_pipes(args: &[&str], roles: &[u8]) -> (Port, BeamEnds) {
        Port::spawn_handover_pipes_env(args, roles, &[])
    }

    /// `spawn_handover_pipes` with `env` set in the port's environment.
    pub fn spawn_handover_pipes_env(
        args: &[&str],
        roles: &[u8],
        env: &[(&str, &str)],
    ) -> (Port, BeamEnds) {
        Port::spawn_handover_listen(args, roles, &[], env)
    }

    /// `spawn_handover_pipes_env`, and for each LISTEN in `roles` the next
    /// of `listen` (the BEAM's listening sockets, which it keeps as well).
    pub fn spawn_handover_listen(
        args: &[&str],
        roles: &[u8],
        listen: &[RawFd],
        env: &[(&str, &str)],
    ) -> (Port, BeamEnds) {
        let listener = Listener::new();
        let mut full = vec!["--handover", listener.name.as_str()];
        full.extend_from_slice(args);
        let port = Port::spawn_env(&full, env);
        let conn = listener.accept(port.pid());
        let mut ends = BeamEnds::default();
        let mut sent = Vec::new();
        let mut raw = Vec::new();
        let mut sockets = listen.iter();
        for &role in roles {
            if role == LISTEN {
                raw.push(*sockets.next().expect("a socket for each LISTEN"));
                continue;
            }
            let (read, write) = pipe();
            let (send, keep, slot) = match role {
                OUTPUT => (write, read, &mut ends.output),
                STDIN => (read, write, &mut ends.stdin),
                STDERR => (write, read, &mut ends.stderr),
                r => panic!("no pipe for role {r}"),
            };
            set_nonblocking(&send);
            *slot = Some(keep);
            raw.push(send.as_raw_fd());
            sent.push(send);
        }
        send_fds(&conn, roles, &raw);
        (port, ends)
    }

    /// `spawn_handover_raw`, with the output read to EOF on a thread (as
    /// the BEAM does), so a program writing more than a pipeful goes on.
    pub fn spawn_handover(args: &[&str]) -> (Port, JoinHandle<Vec<u8>>) {
        let (port, read) = Port::spawn_handover_raw(args);
        (port, drain(read))
    }
}

/// The ends of the handed-over pipes that the BEAM keeps.
#[derive(Default)]
pub struct BeamEnds {
    /// Read end of OUTPUT.
    pub output: Option<File>,
    /// Write end of STDIN.
    pub stdin: Option<File>,
    /// Read end of STDERR.
    pub stderr: Option<File>,
}

/// A channel of the test's own, made before the port starts: with
/// `--handover NAME` among the port's args, the port's supervisor gets
/// its other end, and the test sends the HANDOVER itself.
pub struct Listener {
    pub name: String,
    beam: OwnedFd,
}

impl Listener {
    pub fn new() -> Listener {
        let name = format!("channel-{:016x}", random());
        let (beam, theirs) = stream_pair();
        register_channel(&name, beam.try_clone().expect("dup"), theirs);
        Listener { name, beam }
    }

    /// The BEAM's end of the channel, for the HANDOVER; the port with
    /// this channel is `pid` (its HELLO was read when it started).
    pub fn accept(&self, pid: i32) -> OwnedFd {
        assert!(pid > 0);
        self.beam.try_clone().expect("dup")
    }
}

/// One HANDOVER frame: `roles` with `fds` in one SCM_RIGHTS, and after
/// them the COMMAND memfd of the port this thread started last
/// (`library.rs`), as the NIF sends it.
pub fn send_fds(conn: &OwnedFd, roles: &[u8], fds: &[RawFd]) {
    let command = take_command().unwrap_or_default();
    send_handover_with(conn, roles, fds, &command);
}

/// `send_fds` with the command in a COMMAND memfd after the descriptors,
/// as the NIF sends one too long for the frame.
pub fn send_fds_memfd(conn: &OwnedFd, roles: &[u8], fds: &[RawFd]) {
    let memfd = take_command().map(|c| memfd_with(&c));
    let mut roles = roles.to_vec();
    let mut fds = fds.to_vec();
    if let Some(fd) = &memfd {
        roles.push(COMMAND_ROLE);
        fds.push(fd.as_raw_fd());
    }
    send_handover_with(conn, &roles, &fds, &[]);
}

/// `send_fds` without the command.
pub fn send_fds_raw(conn: &OwnedFd, roles: &[u8], fds: &[RawFd]) {
    send_handover_with(conn, roles, fds, &[]);
}

/// A HANDOVER of `roles` and `fds` carrying `command` (may be empty).
pub fn send_handover_with(conn: &OwnedFd, roles: &[u8], fds: &[RawFd], command: &[u8]) {
    let frame = muontrap_wire::channel::handover(roles, command);
    send_with_fds(conn.as_raw_fd(), &frame, fds).expect("send the HANDOVER");
}

/// Any bytes (a malformed first frame) with `fds` on the channel.
pub fn send_bytes_raw(conn: &OwnedFd, bytes: &[u8], fds: &[RawFd]) {
    send_with_fds(conn.as_raw_fd(), bytes, fds).expect("send on the channel");
}

/// A random u64 without a rand crate: std's hasher keys are random.
pub fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> (File, File) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    (File::from(r), File::from(w))
}

pub fn set_nonblocking(f: &File) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    fcntl(f, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
}

/// The pipe a descriptor is, as `/proc/PID/fd/N` links name it.
pub fn pipe_name(f: &File) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("pipe:[{}]", f.metadata().expect("fstat").ino())
}

/// What `/proc/PID/fd/*` link to, by fd number.
pub fn open_fds(pid: i32) -> Vec<(i32, String)> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd");
    dir.filter_map(|e| {
        let e = e.ok()?;
        let fd = e.file_name().to_str()?.parse().ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        Some((fd, target.to_string_lossy().into_owned()))
    })
    .collect()
}

/// The `flags:` (octal, as in open(2)) of `pid`'s fd `fd`.
pub fn fd_flags(pid: i32, fd: i32) -> u32 {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).expect("fdinfo");
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .expect("flags in fdinfo")
}

/// Reads `read` to EOF on a thread.
pub fn drain(mut read: File) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        read.read_to_end(&mut out).expect("read the output pipe");
        out
    })
}

/// The output a `drain` thread collected.
pub fn drained(h: JoinHandle<Vec<u8>>) -> Vec<u8> {
    h.join().expect("output reader")
}
