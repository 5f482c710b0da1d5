//! The NIF's side of the transport: start `muontrap --spawner` with its
//! request socket on fd 3, read its SPAWNER_HELLO, and ask it for a
//! supervisor per channel (docs/protocol.md, "Transport").

use std::fs::File;
use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};

use muontrap_wire::channel::{self, SPAWNER_ARG, SPAWNER_FD, SPAWN_REQUEST, TAG_SPAWNER_HELLO};
use nix::sys::socket::{
    sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

use super::BIN;

pub struct Spawner {
    /// The spawner proper (the grandchild that said hello).
    pub pid: i32,
    /// The request socket, NIF end; `None` once closed.
    pub sock: Option<OwnedFd>,
    stderr: Option<JoinHandle<String>>,
    /// The end notices' pipe, read end (the spawner has the write end on
    /// NOTICE_FD).
    pub notices: File,
}

/// A SOCK_STREAM socket pair, close-on-exec.
pub fn stream_pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair")
}

/// Reads one frame: (tag, body); `None` on EOF.
pub fn read_frame_from(mut f: &File) -> Option<(u8, Vec<u8>)> {
    let mut len = [0u8; 4];
    if f.read_exact(&mut len).is_err() {
        return None;
    }
    let len = u32::from_be_bytes(len) as usize;
    assert!(len >= 1, "empty frame");
    let mut msg = vec![0u8; len];
    f.read_exact(&mut msg).expect("frame body");
    let tag = msg.remove(0);
    Some((tag, msg))
}

/// `bytes` with `fds` on their first byte.
pub fn send_with_fds(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> nix::Result<usize> {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(sock, &iov, cmsgs, MsgFlags::empty(), None)
}

impl Spawner {
    pub fn start() -> Spawner {
        Spawner::start_with(&[], &[])
    }

    /// Through `wrapper` (which must exec the rest of its arguments), with
    /// `env` added to the spawner's environment (and so its supervisors').
    pub fn start_with(wrapper: &[&str], env: &[(&str, &str)]) -> Spawner {
        let (ours, theirs) = stream_pair();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg(SPAWNER_ARG)
            .env_remove("MUONTRAP_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let fd = theirs.as_raw_fd();
        // The end notices' pipe on NOTICE_FD, as the NIF places it; its
        // write end non-blocking, as the NIF makes it.
        let (notices, notice_w) = nix::unistd::pipe().expect("notice pipe");
        nix::fcntl::fcntl(
            &notice_w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .expect("non-blocking notice pipe");
        // Off the targets of the dup2s below.
        let notice_fd = nix::fcntl::fcntl(&notice_w, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))
            .expect("notice pipe off the targets");
        drop(notice_w);
        // SAFETY: only dup2/fcntl, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if fd == SPAWNER_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else if libc::dup2(fd, SPAWNER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::dup2(notice_fd, channel::NOTICE_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn muontrap --spawner");
        drop(theirs);
        // SAFETY: the duplicate made above, ours alone.
        drop(unsafe { OwnedFd::from_raw_fd(notice_fd) });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        // The first process forks the spawner and exits at once.
        let status = child.wait().expect("wait for the spawner's parent");
        assert!(status.success(), "spawner parent: {status:?}");
        let f = File::from(ours);
        let (tag, body) = read_frame_from(&f).expect("SPAWNER_HELLO");
        let mut payload = vec![tag];
        payload.extend_from_slice(&body);
        let (version, pid) =
            channel::parse_hello(TAG_SPAWNER_HELLO, &payload).expect("a SPAWNER_HELLO");
        assert_eq!(version, channel::VERSION);
        Spawner {
            pid: pid as i32,
            sock: Some(OwnedFd::from(f)),
            stderr: Some(stderr),
            notices: File::from(notices),
        }
    }

    fn raw(&self) -> RawFd {
        self.sock.as_ref().expect("request socket open").as_raw_fd()
    }

    /// Asks for a supervisor on `channel` (the supervisor's end).
    pub fn request(&self, channel: &OwnedFd) {
        let raw = channel.as_raw_fd();
        send_with_fds(self.raw(), &SPAWN_REQUEST, &[raw]).expect("send SPAWN");
    }

    /// Any bytes and descriptors on the request socket (bad requests).
    pub fn send_raw(&self, bytes: &[u8], fds: &[RawFd]) {
        send_with_fds(self.raw(), bytes, fds).expect("send to the spawner");
    }

    /// A fresh channel handed to the spawner: the BEAM's end.
    pub fn channel(&self) -> File {
        let (beam, theirs) = stream_pair();
        self.request(&theirs);
        File::from(beam)
    }

    /// Closes the request socket: the spawner then exits.
    pub fn close(&mut self) {
        self.sock = None;
    }

    /// The stderr reader, for a port that reports this spawner's stderr.
    pub fn take_stderr(&mut self) -> Option<JoinHandle<String>> {
        self.stderr.take()
    }

    /// Everything the spawner and its supervisors wrote on stderr, once
    /// the spawner and every supervisor (and program) are gone.
    pub fn stderr(&mut self) -> String {
        self.close();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.close();
    }
}

/// A supervisor's HELLO on `channel`: its pid.
pub fn read_hello(channel: &File) -> i32 {
    let (tag, body) = read_frame_from(channel).expect("HELLO");
    let mut payload = vec![tag];
    payload.extend_from_slice(&body);
    let (version, pid) = channel::parse_hello(channel::TAG_HELLO, &payload).expect("a HELLO");
    assert_eq!(version, channel::VERSION);
    pid as i32
}

/// A HANDOVER frame with `roles` and `fds` on the channel.
pub fn send_handover(channel: &File, roles: &[u8], fds: &[RawFd]) {
    send_with_fds(channel.as_raw_fd(), &channel::handover(roles, &[]), fds).expect("send HANDOVER");
}

/// Writes `bytes` to the channel.
pub fn write_channel(mut channel: &File, bytes: &[u8]) {
    channel.write_all(bytes).expect("write to the channel");
}
