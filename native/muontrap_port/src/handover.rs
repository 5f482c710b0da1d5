//! `--handover NAME`: the BEAM hands us descriptors (the program's output,
//! stdin and stderr pipes) over a Unix socket with SCM_RIGHTS. A path such as
//! `/proc/<pid>/fd/<n>` is a name that can come to mean someone else's
//! pipe once the caller is gone; a received descriptor cannot.
//!
//! This file is the pure part (name and role parsing, consistency with the
//! capture flags); `handover/socket.rs` is the rendezvous itself. See
//! `docs/protocol.md`, "Descriptor hand-over".

mod socket;
#[cfg(test)]
mod tests;

use std::fmt;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::args::Capture;

/// Most descriptors one hand-over may carry.
pub const MAX_FDS: usize = 16;
/// Longest message body (one role byte per descriptor) we read.
pub const MAX_BODY: usize = 64;

/// The program's captured output (the merged stream with --capture-stderr).
pub const ROLE_OUTPUT: u8 = 1;
/// Read end of a pipe the BEAM writes: the program's stdin.
pub const ROLE_STDIN: u8 = 2;
/// Write end of a pipe of its own for the program's stderr.
pub const ROLE_STDERR: u8 = 3;
// Reserved: each becomes one more `Role` variant and `Handover` field.
// 4 = NOTIFY (sd_notify datagram socket), 5 = LISTEN (a listening socket,
// repeatable, for LISTEN_FDS).

const NAME_PREFIX: &str = "muontrap-";
/// `sun_path` is 108 bytes and an abstract name starts with a NUL.
const MAX_NAME: usize = 107;

/// The descriptors received, by role. `F` is `OwnedFd` in the port; the
/// parameter lets the sorting be tested with plain values.
#[derive(Debug, PartialEq, Eq)]
pub struct Handover<F = OwnedFd> {
    pub output: Option<F>,
    pub stdin: Option<F>,
    pub stderr: Option<F>,
}

impl<F> Default for Handover<F> {
    fn default() -> Self {
        Handover {
            output: None,
            stdin: None,
            stderr: None,
        }
    }
}

impl<F> Handover<F> {
    fn slot(&mut self, role: Role) -> &mut Option<F> {
        match role {
            Role::Output => &mut self.output,
            Role::Stdin => &mut self.stdin,
            Role::Stderr => &mut self.stderr,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Output,
    Stdin,
    Stderr,
}

impl Role {
    fn from_byte(b: u8) -> Result<Role, HandoverError> {
        match b {
            ROLE_OUTPUT => Ok(Role::Output),
            ROLE_STDIN => Ok(Role::Stdin),
            ROLE_STDERR => Ok(Role::Stderr),
            _ => Err(HandoverError::UnsupportedRole(b)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Output => "OUTPUT",
            Role::Stdin => "STDIN",
            Role::Stderr => "STDERR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverError {
    BadName(String),
    Os { op: &'static str, errno: Errno },
    WrongPeer { beam: i32, peer: i32 },
    StdinClosed,
    TooMuchInput,
    Interrupted(Signal),
    NoMessage,
    ControlTruncated,
    BodyTooLong,
    TooMany(usize),
    CountMismatch { fds: usize, roles: usize },
    UnsupportedRole(u8),
    Duplicate(&'static str),
    MissingOutput,
    UnexpectedOutput,
    StderrNeedsStdoutCapture,
}

impl HandoverError {
    /// Whether the Elixir side may still be there to close stdin after
    /// EXIT: not when it already did, nor when a signal told us to go.
    pub fn wait_for_close(&self) -> bool {
        !matches!(
            self,
            HandoverError::StdinClosed | HandoverError::Interrupted(_)
        )
    }
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandoverError::*;
        f.write_str("cannot receive descriptors from the BEAM: ")?;
        match self {
            BadName(n) => write!(
                f,
                "invalid hand-over name '{n}' (expected {NAME_PREFIX}<pid>-<suffix>)"
            ),
            Os { op, errno } => write!(f, "{op}: {}", errno.desc()),
            WrongPeer { beam, peer } => write!(
                f,
                "the hand-over socket is held by pid {peer}, not by the BEAM (pid {beam})"
            ),
            StdinClosed => f.write_str("the BEAM closed the port before handing over descriptors"),
            TooMuchInput => f.write_str("too much input on stdin before the hand-over"),
            Interrupted(sig) => write!(f, "interrupted by {}", sig.as_str()),
            NoMessage => f.write_str("the connection closed without a message"),
            ControlTruncated => f.write_str("the descriptors did not fit (MSG_CTRUNC)"),
            BodyTooLong => write!(f, "the message is longer than {MAX_BODY} bytes"),
            TooMany(n) => write!(f, "{n} descriptors, at most {MAX_FDS} allowed"),
            CountMismatch { fds, roles } => {
                write!(f, "{fds} descriptors but {roles} role bytes")
            }
            UnsupportedRole(r) => write!(f, "unsupported descriptor role {r}"),
            Duplicate(role) => write!(f, "more than one {role} descriptor"),
            MissingOutput => f.write_str("output capture requested but no OUTPUT descriptor"),
            UnexpectedOutput => f.write_str("an OUTPUT descriptor but no --capture-* option"),
            StderrNeedsStdoutCapture => f.write_str(
                "a STDERR descriptor needs --capture-output alone \
                 (not with --capture-stderr or --capture-stderr-only)",
            ),
        }
    }
}

/// The BEAM's OS pid from a name `muontrap-<pid>-<suffix>`, parsed
/// strictly: the pid is checked against the listener's SO_PEERCRED.
pub fn parse_name(name: &str) -> Result<i32, HandoverError> {
    let bad = || HandoverError::BadName(name.to_string());
    let rest = name.strip_prefix(NAME_PREFIX).ok_or_else(bad)?;
    let (pid, suffix) = rest.split_once('-').ok_or_else(bad)?;
    let canonical = !pid.is_empty() && !pid.starts_with('0');
    if !canonical || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if suffix.is_empty() || name.len() > MAX_NAME {
        return Err(bad());
    }
    pid.parse().map_err(|_| bad())
}

fn set_once<F>(h: &mut Handover<F>, role: Role, fd: F) -> Result<(), HandoverError> {
    let slot = h.slot(role);
    if slot.is_some() {
        return Err(HandoverError::Duplicate(role.name()));
    }
    *slot = Some(fd);
    Ok(())
}

/// Pairs each descriptor with its role byte (same order). On error every
/// descriptor is dropped, i.e. closed.
pub fn sort<F>(roles: &[u8], fds: Vec<F>) -> Result<Handover<F>, HandoverError> {
    if fds.len() > MAX_FDS {
        return Err(HandoverError::TooMany(fds.len()));
    }
    if fds.len() != roles.len() {
        return Err(HandoverError::CountMismatch {
            fds: fds.len(),
            roles: roles.len(),
        });
    }
    if fds.is_empty() {
        return Err(HandoverError::NoMessage);
    }
    let mut h = Handover::default();
    for (&b, fd) in roles.iter().zip(fds) {
        set_once(&mut h, Role::from_byte(b)?, fd)?;
    }
    Ok(h)
}

/// A capture flag and an OUTPUT descriptor come together or not at all:
/// anything else means the two sides disagree about where output goes.
/// A STDERR pipe is a stream apart from the captured stdout, so stderr must
/// not be captured as well (nor, without capture, is there a stdout to be
/// apart from). STDIN goes with anything.
pub fn check_capture<F>(h: &Handover<F>, capture: Capture) -> Result<(), HandoverError> {
    match (capture != Capture::None, h.output.is_some()) {
        (true, false) => return Err(HandoverError::MissingOutput),
        (false, true) => return Err(HandoverError::UnexpectedOutput),
        _ => {}
    }
    if h.stderr.is_some() && capture != Capture::Stdout {
        return Err(HandoverError::StderrNeedsStdoutCapture);
    }
    Ok(())
}

/// Connects to the BEAM's socket `name`, checks it is the BEAM's, waits for
/// the one message (keeping stdin bytes that arrive meanwhile in `early`)
/// and returns the descriptors, blocking and close-on-exec.
pub fn receive(
    name: &str,
    sigfd: &SignalFd,
    capture: Capture,
    early: &mut Vec<u8>,
) -> Result<Handover, HandoverError> {
    let beam = parse_name(name)?;
    let sock = socket::connect(name)?;
    socket::check_peer(&sock, beam)?;
    socket::wait(&sock, sigfd, early)?;
    let (roles, fds) = socket::recv(&sock)?;
    drop(sock);
    let h = sort(&roles, fds)?;
    check_capture(&h, capture)?;
    let received = [
        (&h.output, "cannot make the OUTPUT descriptor blocking"),
        (&h.stdin, "cannot make the STDIN descriptor blocking"),
        (&h.stderr, "cannot make the STDERR descriptor blocking"),
    ];
    for (fd, op) in received {
        if let Some(fd) = fd {
            socket::set_blocking(fd, op)?;
        }
    }
    tracing::debug!(descriptors = roles.len(), "descriptors received");
    Ok(h)
}
