//! The library's start, as these tests spell it: the framed command line
//! of old (`--framed [--handover NAME] [--notify] [--watchdog MS]
//! [--listen-fdnames NAMES] OPTIONS... PROGRAM ARGS...`), made into what
//! the library does now. The plain options parse into a `Command` with
//! the port's own parser, the library-only ones are set on it, and a
//! spawner forks a supervisor on a channel: the test's (a `Listener`,
//! `--handover NAME`, whose `send_fds` then adds the command to the frame,
//! or `send_fds_memfd` in a COMMAND memfd), or one of the harness's,
//! which sends the command alone.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};

use muontrap_command::cli::{self, Parsed};
use muontrap_command::{wire, Names, Notify};

use super::{read_hello, send_fds, stream_pair, Spawner};

thread_local! {
    /// The encoded command of the port this test thread started last, for
    /// the test's own hand-over (`send_fds`).
    static COMMAND: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// Channels made by `Listener::new`, by name, until a port takes
    /// them: (the BEAM's end, the supervisor's end).
    static PENDING: RefCell<Vec<(String, OwnedFd, OwnedFd)>> = const { RefCell::new(Vec::new()) };
}

pub use muontrap_wire::handover::ROLE_COMMAND as COMMAND_ROLE;

/// Registers a channel under `name` for the next `--handover name`.
pub fn register_channel(name: &str, beam: OwnedFd, theirs: OwnedFd) {
    PENDING.with(|p| p.borrow_mut().push((name.to_string(), beam, theirs)));
}

fn take_channel(name: &str) -> (OwnedFd, OwnedFd) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let i = p
            .iter()
            .position(|(n, _, _)| n == name)
            .expect("--handover NAME of a Listener");
        let (_, beam, theirs) = p.remove(i);
        (beam, theirs)
    })
}

/// How the harness starts the port for `args`.
pub struct Start {
    /// The plain command line's argv; `None`: the library's start.
    pub argv: Option<Vec<String>>,
    /// The test's own channel (`--handover NAME`): it sends the HANDOVER.
    test_channel: Option<(OwnedFd, OwnedFd)>,
}

impl Start {
    /// `args` as the port's argv: unchanged for the plain command line.
    pub fn new(args: &[&str]) -> Start {
        let end = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        if !args[..end].contains(&"--framed") {
            return Start {
                argv: Some(args.iter().map(|s| s.to_string()).collect()),
                test_channel: None,
            };
        }
        let (name, cmd) = library_command(args, end);
        Start::library_named(&cmd, name)
    }

    /// The library's start of `cmd` as it is, for fields no flag spells
    /// (the cgroup layout, base_env, cd); the harness sends the HANDOVER.
    pub fn library(cmd: &muontrap_command::Command) -> Start {
        Start::library_named(cmd, None)
    }

    fn library_named(cmd: &muontrap_command::Command, name: Option<String>) -> Start {
        let bytes = wire::encode(cmd);
        COMMAND.with(|c| *c.borrow_mut() = Some(bytes));
        Start {
            argv: None,
            test_channel: name.map(|n| take_channel(&n)),
        }
    }

    /// The library's start on `spawner`: the channel (BEAM's end) after
    /// the supervisor's HELLO, and its pid. Without a test channel, the
    /// HANDOVER with the command alone is sent.
    pub fn open(self, spawner: &Spawner) -> (File, i32) {
        let own = self.test_channel.is_none();
        let (beam, theirs) = self.test_channel.unwrap_or_else(stream_pair);
        spawner.request(&theirs);
        drop(theirs);
        let beam = File::from(beam);
        let pid = read_hello(&beam);
        if own {
            send_fds(&OwnedFd::from(beam.try_clone().expect("dup")), &[], &[]);
        }
        (beam, pid)
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

/// The encoded command of the last port started (if any), once.
pub fn take_command() -> Option<Vec<u8>> {
    COMMAND.with(|c| c.borrow_mut().take())
}
