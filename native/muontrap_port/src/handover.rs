//! The supervisor's first frame: the BEAM hands us the command (its
//! options, in the frame or a memfd) and descriptors (the program's output, stdin and
//! stderr pipes, listening sockets for socket activation) in a HANDOVER
//! frame on the channel, with SCM_RIGHTS. A path such as
//! `/proc/<pid>/fd/<n>` is a name that can come to mean someone else's
//! pipe once the caller is gone; a received descriptor cannot.
//!
//! This file is the pure part (role parsing, consistency with the
//! command's capture and LISTEN names); `handover/socket.rs` reads the
//! frame. See `docs/protocol.md`, "Descriptor hand-over".

#[cfg(test)]
mod props;
mod socket;
#[cfg(test)]
mod tests;

use std::fmt;
use std::os::fd::OwnedFd;

use crate::signals::Signals;
use nix::errno::Errno;
use nix::sys::signal::Signal;

use muontrap_command::wire::WireError;
use muontrap_command::{Capture, Command};

pub use muontrap_wire::handover::{
    MAX_FDS, MAX_MESSAGE_FDS, ROLE_COMMAND, ROLE_LISTEN, ROLE_OUTPUT, ROLE_STDERR, ROLE_STDIN,
};

/// The descriptors received, by role. `F` is `OwnedFd` in the port; the
/// parameter lets the sorting be tested with plain values.
#[derive(Debug, PartialEq, Eq)]
pub struct Handover<F = OwnedFd> {
    pub output: Option<F>,
    pub stdin: Option<F>,
    pub stderr: Option<F>,
    /// LISTEN, in the order received.
    pub listen: Vec<F>,
    /// COMMAND: the memfd with the command's options, when the frame
    /// does not carry them.
    pub command: Option<F>,
}

impl<F> Default for Handover<F> {
    fn default() -> Self {
        Handover {
            output: None,
            stdin: None,
            stderr: None,
            listen: Vec::new(),
            command: None,
        }
    }
}

impl<F> Handover<F> {
    /// The slot of a role that may appear once; `None` for LISTEN.
    fn slot(&mut self, role: Role) -> Option<&mut Option<F>> {
        match role {
            Role::Output => Some(&mut self.output),
            Role::Stdin => Some(&mut self.stdin),
            Role::Stderr => Some(&mut self.stderr),
            Role::Command => Some(&mut self.command),
            Role::Listen => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Output,
    Stdin,
    Stderr,
    Listen,
    Command,
}

impl Role {
    fn from_byte(b: u8) -> Result<Role, HandoverError> {
        match b {
            ROLE_OUTPUT => Ok(Role::Output),
            ROLE_STDIN => Ok(Role::Stdin),
            ROLE_STDERR => Ok(Role::Stderr),
            ROLE_LISTEN => Ok(Role::Listen),
            ROLE_COMMAND => Ok(Role::Command),
            _ => Err(HandoverError::UnsupportedRole(b)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Output => "OUTPUT",
            Role::Stdin => "STDIN",
            Role::Stderr => "STDERR",
            Role::Listen => "LISTEN",
            Role::Command => "COMMAND",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverError {
    Os {
        op: &'static str,
        errno: Errno,
    },
    /// EOF before a HANDOVER: the caller is gone.
    Closed,
    Interrupted(Signal),
    /// Not a HANDOVER frame.
    Malformed,
    /// A HANDOVER of another transport version (the one received).
    Version(u32),
    ControlTruncated,
    BodyTooLong,
    TooMany(usize),
    CountMismatch {
        fds: usize,
        roles: usize,
    },
    UnsupportedRole(u8),
    Duplicate(&'static str),
    MissingOutput,
    UnexpectedOutput,
    StderrNeedsStdoutCapture,
    ListenNamesMismatch {
        fds: usize,
        names: usize,
    },
    MissingCommand,
    CommandTwice,
    CommandTooLong(u64),
    Command(WireError),
}

impl HandoverError {
    /// Whether the Elixir side may still be there to close the channel
    /// after EXIT: not when it already did, nor when a signal told us to go.
    pub fn wait_for_close(&self) -> bool {
        !matches!(self, HandoverError::Closed | HandoverError::Interrupted(_))
    }
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandoverError::*;
        f.write_str("cannot receive descriptors from the BEAM: ")?;
        match self {
            Os { op, errno } => write!(f, "{op}: {}", errno.desc()),
            Closed => f.write_str("the BEAM closed the channel before handing over descriptors"),
            Interrupted(sig) => write!(f, "interrupted by {}", sig.as_str()),
            Malformed => f.write_str("the first frame is not a HANDOVER"),
            Version(v) => write!(
                f,
                "the BEAM speaks transport version {v}, this supervisor version {}",
                muontrap_wire::channel::VERSION
            ),
            ControlTruncated => f.write_str("the descriptors did not fit (MSG_CTRUNC)"),
            BodyTooLong => write!(
                f,
                "the message is longer than {} bytes",
                muontrap_wire::channel::MAX_HANDOVER
            ),
            TooMany(n) => write!(f, "{n} descriptors, at most {MAX_MESSAGE_FDS} allowed"),
            CountMismatch { fds, roles } => {
                write!(f, "{fds} descriptors but {roles} role bytes")
            }
            UnsupportedRole(r) => write!(f, "unsupported descriptor role {r}"),
            Duplicate(role) => write!(f, "more than one {role} descriptor"),
            MissingOutput => f.write_str("output capture requested but no OUTPUT descriptor"),
            UnexpectedOutput => f.write_str("an OUTPUT descriptor but no output capture"),
            StderrNeedsStdoutCapture => f.write_str(
                "a STDERR descriptor needs stdout captured alone \
                 (not with stderr merged, nor stderr only)",
            ),
            ListenNamesMismatch { fds, names } => {
                write!(f, "{fds} LISTEN descriptors but {names} LISTEN names")
            }
            MissingCommand => f.write_str("no command, in the frame or a COMMAND descriptor"),
            CommandTwice => f.write_str("a command in the frame and a COMMAND descriptor"),
            CommandTooLong(n) => write!(
                f,
                "the command is {n} bytes, more than {}",
                muontrap_command::wire::MAX_ENCODED
            ),
            Command(e) => write!(f, "{e}"),
        }
    }
}

fn place<F>(h: &mut Handover<F>, role: Role, fd: F) -> Result<(), HandoverError> {
    let Some(slot) = h.slot(role) else {
        h.listen.push(fd);
        return Ok(());
    };
    if slot.is_some() {
        return Err(HandoverError::Duplicate(role.name()));
    }
    *slot = Some(fd);
    Ok(())
}

/// Pairs each descriptor with its role byte (same order; LISTEN keeps it).
/// On error every descriptor is dropped, i.e. closed.
pub fn sort<F>(roles: &[u8], fds: Vec<F>) -> Result<Handover<F>, HandoverError> {
    if fds.len() > MAX_MESSAGE_FDS {
        return Err(HandoverError::TooMany(fds.len()));
    }
    if fds.len() != roles.len() {
        return Err(HandoverError::CountMismatch {
            fds: fds.len(),
            roles: roles.len(),
        });
    }
    let mut h = Handover::default();
    for (&b, fd) in roles.iter().zip(fds) {
        place(&mut h, Role::from_byte(b)?, fd)?;
    }
    Ok(h)
}

/// Capture and an OUTPUT descriptor come together or not at all:
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

/// The LISTEN names name each LISTEN descriptor: a count that differs
/// means the two sides disagree about which socket is which.
pub fn check_listen_names<F>(h: &Handover<F>, names: Option<usize>) -> Result<(), HandoverError> {
    match names {
        Some(names) if names != h.listen.len() => Err(HandoverError::ListenNamesMismatch {
            fds: h.listen.len(),
            names,
        }),
        _ => Ok(()),
    }
}

/// Reads the HANDOVER frame from the channel (stdin), waiting for it or
/// a terminating signal, and returns the descriptors, close-on-exec, the
/// pipes blocking, and the command from the frame or the COMMAND memfd. Not a
/// byte past the frame is read: what follows is the framed protocol's.
/// LISTEN sockets keep their flags: O_NONBLOCK on them is the BEAM's too
/// (one open file description), and a listener's blocking mode is the
/// program's call.
pub fn receive(sigfd: &Signals) -> Result<(Handover, Command), HandoverError> {
    socket::wait(sigfd)?;
    let socket::Received {
        roles,
        fds,
        command,
        notice,
    } = socket::recv()?;
    let mut h = sort(&roles, fds)?;
    let bytes = match (h.command.take(), command.is_empty()) {
        (Some(memfd), true) => socket::read_all(&memfd)?,
        (None, false) => command,
        (Some(_), false) => return Err(HandoverError::CommandTwice),
        (None, true) => return Err(HandoverError::MissingCommand),
    };
    let cmd = muontrap_command::wire::decode(&bytes).map_err(HandoverError::Command)?;
    check_capture(&h, cmd.capture)?;
    check_listen_names(&h, cmd.listen_fdnames.as_ref().map(|n| n.0.len()))?;
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
    crate::log::debug!(
        descriptors = roles.len(),
        listen = h.listen.len(),
        "descriptors received"
    );
    // Only a hand-over taken whole ends with the notice.
    crate::notice::arm(notice);
    Ok((h, cmd))
}
