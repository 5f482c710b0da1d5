//! The BEAM's side of `--handover`: listen on an abstract SOCK_SEQPACKET
//! socket, accept the port, check its SO_PEERCRED, send descriptors with
//! one role byte each.

use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    accept4, bind, getsockopt, listen, sendmsg, socket, sockopt, AddressFamily, Backlog,
    ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

use super::{with_command, Port, LISTEN, OUTPUT, STDERR, STDIN, TIMEOUT};

impl Port {
    /// Acts as `MuonTrap.cmd/3`: spawns the port with `--handover` (before
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

/// The BEAM's side of `--handover`: an abstract SOCK_SEQPACKET listener.
pub struct Listener {
    pub name: String,
    sock: OwnedFd,
}

impl Listener {
    /// Named as the BEAM names it: `muontrap-<own pid>-<random hex>`.
    pub fn new() -> Listener {
        Listener::bind(&format!(
            "muontrap-{}-{:016x}",
            std::process::id(),
            random()
        ))
    }

    pub fn bind(name: &str) -> Listener {
        let sock = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        let addr = UnixAddr::new_abstract(name.as_bytes()).expect("abstract name");
        bind(sock.as_raw_fd(), &addr).expect("bind");
        listen(&sock, Backlog::new(1).expect("backlog")).expect("listen");
        Listener {
            name: name.to_string(),
            sock,
        }
    }

    /// Whether a connection is waiting, within `timeout`.
    pub fn pending(&self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout.as_millis() as u64).expect("timeout");
        poll(&mut fds, ms).expect("poll") == 1
    }

    /// Accepts one connection and checks it comes from `pid` (the port),
    /// as the BEAM does.
    pub fn accept(&self, pid: i32) -> OwnedFd {
        assert!(self.pending(TIMEOUT), "the port did not connect");
        let fd = accept4(self.sock.as_raw_fd(), SockFlag::SOCK_CLOEXEC).expect("accept");
        // SAFETY: accept4 just returned this new fd; nobody else owns it.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        assert_eq!(peer_pid(&conn), pid, "SO_PEERCRED of the connection");
        conn
    }
}

pub fn peer_pid(sock: &OwnedFd) -> i32 {
    getsockopt(sock, sockopt::PeerCredentials)
        .expect("SO_PEERCRED")
        .pid()
}

/// One hand-over message: `body` (role bytes) with `fds` in one
/// SCM_RIGHTS, and after them the COMMAND memfd of the port this thread
/// started last (`library.rs`), as the NIF sends it.
pub fn send_fds(conn: &OwnedFd, body: &[u8], fds: &[RawFd]) {
    let (body, fds, _command) = with_command(body, fds);
    send_fds_raw(conn, &body, &fds);
}

/// `send_fds` without the COMMAND memfd.
pub fn send_fds_raw(conn: &OwnedFd, body: &[u8], fds: &[RawFd]) {
    let iov = [IoSlice::new(body)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(conn.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None).expect("sendmsg");
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
