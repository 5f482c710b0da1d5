//! The library's start, as these tests spell it: the framed command line
//! of old (`--framed [--handover NAME] [--notify] [--watchdog MS]
//! [--listen-fdnames NAMES] OPTIONS... PROGRAM ARGS...`), made into what
//! the library does now. The plain options parse into a `Command` with
//! the port's own parser, the library-only ones are set on it, and the
//! port starts as `muontrap --beam NAME`: on the test's listener with
//! `--handover NAME` (whose `send_fds` then adds the COMMAND memfd), or
//! on one of the harness's, which sends the command alone.

use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use muontrap_command::cli::{self, Parsed};
use muontrap_command::{wire, Names, Notify};

use super::{send_fds, Listener, Port};

thread_local! {
    /// The COMMAND memfd of the port this test thread started last, for
    /// the test's own hand-over (`send_fds`).
    static COMMAND: RefCell<Option<OwnedFd>> = const { RefCell::new(None) };
}

pub use muontrap_wire::handover::ROLE_COMMAND as COMMAND_ROLE;

/// How the harness starts the port for `args`.
pub struct Start {
    pub argv: Vec<String>,
    /// The harness's own listener, when the test has none.
    own: Option<Listener>,
}

impl Start {
    /// `args` as the port's argv: unchanged for the plain command line.
    pub fn new(args: &[&str]) -> Start {
        let end = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        if !args[..end].contains(&"--framed") {
            return Start {
                argv: args.iter().map(|s| s.to_string()).collect(),
                own: None,
            };
        }
        let (name, cmd) = library_command(args, end);
        let bytes = wire::encode(&cmd);
        COMMAND.with(|c| *c.borrow_mut() = Some(memfd_with(&bytes)));
        let (name, own) = match name {
            Some(n) => (n, None),
            None => {
                let l = Listener::new();
                (l.name.clone(), Some(l))
            }
        };
        Start {
            argv: vec!["--beam".into(), name],
            own,
        }
    }

    /// The library's start of `cmd` as it is, for fields no flag spells
    /// (the cgroup layout), on the harness's listener.
    pub fn library(cmd: &muontrap_command::Command) -> Start {
        let bytes = wire::encode(cmd);
        COMMAND.with(|c| *c.borrow_mut() = Some(memfd_with(&bytes)));
        let l = Listener::new();
        Start {
            argv: vec!["--beam".into(), l.name.clone()],
            own: Some(l),
        }
    }

    /// With the harness's listener: the port's connection, and the
    /// command alone.
    pub fn finish(self, port: &Port) {
        if let Some(l) = self.own {
            let conn = l.accept(port.pid());
            send_fds(&conn, &[], &[]);
        }
    }
}

/// The hand-over name, if the test gave one, and the command.
fn library_command(args: &[&str], end: usize) -> (Option<String>, muontrap_command::Command) {
    let (mut name, mut notify, mut watchdog, mut names) = (None, false, None, None);
    let mut plain: Vec<std::ffi::OsString> = Vec::new();
    let mut words = args.iter().enumerate();
    while let Some((i, &w)) = words.next() {
        let mut value = || words.next().map(|(_, v)| v.to_string());
        match w {
            _ if i >= end => plain.push(w.into()),
            "--framed" => {}
            "--notify" => notify = true,
            "--handover" => name = value(),
            "--watchdog" => watchdog = value().and_then(|v| v.parse().ok()),
            "--listen-fdnames" => names = value(),
            _ => plain.push(w.into()),
        }
    }
    let mut cmd = match cli::parse(&plain) {
        Ok(Parsed::Run(c)) => *c,
        other => panic!("test command line {args:?}: {other:?}"),
    };
    cmd.notify = Notify(notify);
    cmd.watchdog_ms = watchdog;
    cmd.listen_fdnames = names.map(|n| Names(n.split(':').map(String::from).collect()));
    (name, cmd)
}

/// A memfd holding `bytes`, as the NIF makes the COMMAND one.
pub fn memfd_with(bytes: &[u8]) -> OwnedFd {
    // SAFETY: a NUL-terminated name; the fd is ours on success.
    let fd = unsafe { libc::memfd_create(c"test-command".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::File::from(fd.try_clone().expect("dup"))
        .write_all(bytes)
        .expect("write the command");
    fd
}

/// The roles and descriptors with the COMMAND memfd of the last port
/// started (if any) after them, as the NIF sends them.
pub fn with_command(roles: &[u8], fds: &[RawFd]) -> (Vec<u8>, Vec<RawFd>, Option<OwnedFd>) {
    let command = COMMAND.with(|c| c.borrow_mut().take());
    let mut roles = roles.to_vec();
    let mut fds = fds.to_vec();
    if let Some(fd) = &command {
        roles.push(COMMAND_ROLE);
        fds.push(fd.as_raw_fd());
    }
    (roles, fds, command)
}
