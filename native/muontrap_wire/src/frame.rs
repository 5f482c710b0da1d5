//! The framed protocol's messages (docs/protocol.md, "Framed protocol"):
//! a tag byte and a body, behind a 4-byte length prefix that the port
//! writes and Erlang's `{:packet, 4}` strips, so everything here starts at
//! the tag. The port binary encodes [`ToBeam`] and decodes [`ToPort`];
//! the NIF does the opposite for `MuonTrap.Protocol`.
//!
//! Retired tags, never reused: port -> Erlang 1 and 2 (DATA, DATA_STDERR)
//! and 6 (READY); Erlang -> port 1 (ACK), 2 and 3 (reserved for stdin
//! bytes), which the port treats as unknown.

// Port -> Erlang tags.
/// `u32` pid of the program, once it runs.
pub const TAG_STARTED: u8 = 3;
/// `u32` exit status; the last message.
pub const TAG_EXIT: u8 = 4;
/// A one-line `muontrap: ...` diagnostic; EXIT follows.
pub const TAG_ERROR: u8 = 5;
/// `u32` errno of a failed exec of the program; ERROR and EXIT follow.
pub const TAG_EXEC_ERROR: u8 = 7;
/// sd_notify state changes: UTF-8 `KEY=VALUE` lines.
pub const TAG_NOTIFY: u8 = 8;
/// One byte, why the watchdog fired ([`Watchdog`]); termination and EXIT
/// follow.
pub const TAG_WATCHDOG: u8 = 9;
/// One byte, the answer to a SIGNAL ([`Signaled`]).
pub const TAG_SIGNALED: u8 = 10;

// Erlang -> port tags.
/// No body: terminate the program (stop signal, then SIGKILL).
pub const TAG_TERMINATE: u8 = 4;
/// `u32` signal number for the program's main process.
pub const TAG_SIGNAL: u8 = 5;

/// Why the watchdog fired: the body byte of WATCHDOG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watchdog {
    /// The interval passed without `WATCHDOG=1`.
    Timeout = 1,
    /// The program sent `WATCHDOG=trigger`.
    Trigger = 2,
}

/// The answer to a SIGNAL: the body byte of SIGNALED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signaled {
    Sent = 0,
    /// The main process is gone, or the program exited or is being
    /// terminated.
    NotRunning = 1,
    /// A bad signal number, or the kernel refused (EPERM, EINVAL).
    Refused = 2,
}

impl Watchdog {
    fn from_byte(b: u8) -> Option<Watchdog> {
        [Watchdog::Timeout, Watchdog::Trigger]
            .into_iter()
            .find(|w| *w as u8 == b)
    }
}

impl Signaled {
    fn from_byte(b: u8) -> Option<Signaled> {
        [Signaled::Sent, Signaled::NotRunning, Signaled::Refused]
            .into_iter()
            .find(|s| *s as u8 == b)
    }
}

/// A message from the port binary to Erlang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToBeam<'a> {
    Started(u32),
    Exit(u32),
    Error(&'a [u8]),
    ExecError(u32),
    /// `KEY=VALUE` lines; see [`assignments`].
    Notify(&'a [u8]),
    Watchdog(Watchdog),
    Signaled(Signaled),
}

fn be_u32(body: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(body).ok().map(u32::from_be_bytes)
}

fn one_byte(body: &[u8]) -> Option<u8> {
    match body {
        [b] => Some(*b),
        _ => None,
    }
}

impl<'a> ToBeam<'a> {
    /// A frame (tag and body), or `None` for an unknown tag or a body of
    /// the wrong size.
    pub fn decode(frame: &'a [u8]) -> Option<ToBeam<'a>> {
        let (&tag, body) = frame.split_first()?;
        Some(match tag {
            TAG_STARTED => ToBeam::Started(be_u32(body)?),
            TAG_EXIT => ToBeam::Exit(be_u32(body)?),
            TAG_ERROR => ToBeam::Error(body),
            TAG_EXEC_ERROR => ToBeam::ExecError(be_u32(body)?),
            TAG_NOTIFY => ToBeam::Notify(body),
            TAG_WATCHDOG => ToBeam::Watchdog(Watchdog::from_byte(one_byte(body)?)?),
            TAG_SIGNALED => ToBeam::Signaled(Signaled::from_byte(one_byte(body)?)?),
            _ => return None,
        })
    }

    pub fn tag(&self) -> u8 {
        match self {
            ToBeam::Started(_) => TAG_STARTED,
            ToBeam::Exit(_) => TAG_EXIT,
            ToBeam::Error(_) => TAG_ERROR,
            ToBeam::ExecError(_) => TAG_EXEC_ERROR,
            ToBeam::Notify(_) => TAG_NOTIFY,
            ToBeam::Watchdog(_) => TAG_WATCHDOG,
            ToBeam::Signaled(_) => TAG_SIGNALED,
        }
    }

    /// Appends the body (after the tag) to `out`.
    pub fn put_body(&self, out: &mut Vec<u8>) {
        match *self {
            ToBeam::Started(n) | ToBeam::Exit(n) | ToBeam::ExecError(n) => {
                out.extend_from_slice(&n.to_be_bytes())
            }
            ToBeam::Error(b) | ToBeam::Notify(b) => out.extend_from_slice(b),
            ToBeam::Watchdog(w) => out.push(w as u8),
            ToBeam::Signaled(s) => out.push(s as u8),
        }
    }
}

/// The `KEY=VALUE` lines of a NOTIFY body as pairs, split at the first
/// `=`; a line without one is skipped (the port sends none).
pub fn assignments(body: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    body.split(|&b| b == b'\n').filter_map(|line| {
        let eq = line.iter().position(|&b| b == b'=')?;
        Some((&line[..eq], &line[eq + 1..]))
    })
}

/// A message from Erlang to the port binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToPort {
    Terminate,
    /// Send this signal number to the program's main process.
    Signal(u32),
}

impl ToPort {
    /// The frame length (tag and body) a message with `tag` has, or `None`
    /// for a tag that is not one: the port refuses a bad length as soon as
    /// the header is in.
    pub fn frame_len(tag: u8) -> Option<u32> {
        match tag {
            TAG_TERMINATE => Some(1),
            TAG_SIGNAL => Some(5),
            _ => None,
        }
    }

    /// A frame (tag and body), or `None` for an unknown tag or a body of
    /// the wrong size.
    pub fn decode(frame: &[u8]) -> Option<ToPort> {
        match frame.split_first()? {
            (&TAG_TERMINATE, []) => Some(ToPort::Terminate),
            (&TAG_SIGNAL, body) => be_u32(body).map(ToPort::Signal),
            _ => None,
        }
    }

    /// The frame: tag and body, without the length prefix.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            ToPort::Terminate => vec![TAG_TERMINATE],
            ToPort::Signal(n) => {
                let mut v = vec![TAG_SIGNAL];
                v.extend_from_slice(&n.to_be_bytes());
                v
            }
        }
    }
}

#[cfg(test)]
mod tests;
