//! The resident spawner and the per-command channels (docs/protocol.md,
//! "Transport").
//!
//! The NIF starts `muontrap --spawner` once per BEAM with one end of a
//! `SOCK_STREAM` socket pair on [`SPAWNER_FD`]: the request socket. For
//! each command the NIF makes a channel (another `SOCK_STREAM` pair) and
//! sends one end to the spawner in a [`TAG_SPAWN`] frame; the spawner
//! forks a supervisor that owns that end and nothing else.
//!
//! Every frame, on both sockets and both ways, is a 4-byte big-endian
//! length, then that many bytes: a tag and its body (the framing of the
//! port protocol, `frame.rs`). Descriptors ride with SCM_RIGHTS on the
//! first byte of their frame; a receiver that sees MSG_CTRUNC treats it
//! as a protocol error.
//!
//! The first frame each side writes carries [`VERSION`]: the spawner's
//! [`TAG_SPAWNER_HELLO`], the supervisor's [`TAG_HELLO`], the NIF's
//! [`TAG_HANDOVER`]. A spawner of another version is replaced; a
//! supervisor refuses a hand-over of another version.

use crate::handover::{MAX_BODY, MAX_INLINE};

/// The transport's version. Bump it on any change to these frames, to
/// `frame.rs`, to the hand-over roles, or to the command value's layout.
pub const VERSION: u32 = 3;

/// The spawner's request socket, as the NIF places it.
pub const SPAWNER_FD: i32 = 3;

/// Where the spawner, and each supervisor it forks, keeps the write end
/// of the BEAM's end-notice pipe (Linux only; docs/protocol.md, "End
/// notices"): a supervisor asked for it writes the command's notice id
/// there, 8 bytes, once EXIT is in the channel. Close-on-exec: no
/// command inherits it.
pub const NOTICE_FD: i32 = 4;

/// The lowest descriptor where a former standby supervisor keeps its
/// socket to the spawner until its command has started: above where a
/// daemon's LISTEN descriptors go (3 and up, at most 32 of them).
pub const STANDBY_KEPT_MIN_FD: i32 = 64;

/// `priv/muontrap`'s argument for the spawner mode (its only argument).
pub const SPAWNER_ARG: &str = "--spawner";

/// Spawner → NIF, first on the request socket: version, spawner pid.
pub const TAG_SPAWNER_HELLO: u8 = 20;
/// NIF → spawner: fork a supervisor for the channel end this frame
/// carries (exactly one descriptor). No body.
pub const TAG_SPAWN: u8 = 21;
/// Supervisor → NIF, first on the channel: version, supervisor pid.
pub const TAG_HELLO: u8 = 22;
/// NIF → supervisor, first on the channel: version, the end notice's id
/// (`u64`, 0 for none), the number of descriptors carried, one role byte for each (`handover.rs`), in order,
/// then the command value when it travels in the frame (else in a COMMAND
/// memfd).
pub const TAG_HANDOVER: u8 = 23;

/// Longest HANDOVER payload (tag and body): version, notice id, count,
/// roles and an inline command.
pub const MAX_HANDOVER: usize = 1 + 4 + 8 + 1 + MAX_BODY + MAX_INLINE;

/// The 4-byte length prefix of every frame.
pub const HEADER: usize = 4;

/// A whole frame: length prefix, `tag`, `body`.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER + 1 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// A HELLO or SPAWNER_HELLO frame: version and pid.
pub fn hello(tag: u8, pid: u32) -> [u8; HEADER + 9] {
    let mut out = [0u8; HEADER + 9];
    out[..HEADER].copy_from_slice(&9u32.to_be_bytes());
    out[HEADER] = tag;
    out[HEADER + 1..HEADER + 5].copy_from_slice(&VERSION.to_be_bytes());
    out[HEADER + 5..].copy_from_slice(&pid.to_be_bytes());
    out
}

/// The SPAWN request (its descriptor travels beside it).
pub const SPAWN_REQUEST: [u8; HEADER + 1] = [0, 0, 0, 1, TAG_SPAWN];

/// A HANDOVER frame for descriptors with `roles` (at most [`MAX_BODY`]),
/// and `command`, the command value's bytes when they travel in the frame
/// (empty when a COMMAND memfd carries them); no end notice.
pub fn handover(roles: &[u8], command: &[u8]) -> Vec<u8> {
    handover_noticed(0, roles, command)
}

/// [`handover`] asking for the end notice `notice` (0: none).
pub fn handover_noticed(notice: u64, roles: &[u8], command: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(13 + roles.len() + command.len());
    body.extend_from_slice(&VERSION.to_be_bytes());
    body.extend_from_slice(&notice.to_be_bytes());
    body.push(u8::try_from(roles.len()).unwrap_or(u8::MAX));
    body.extend_from_slice(roles);
    body.extend_from_slice(command);
    frame(TAG_HANDOVER, &body)
}

/// Whether a HANDOVER frame of `len` bytes (header included) leaves a
/// channel whose send buffer is `sndbuf` bytes in one piece: on Linux a
/// stream socket's first write goes out whole when it fits half the buffer
/// (one buffer of its own), and a BSD's fits the whole buffer.
pub fn fits_in_one_send(len: usize, sndbuf: usize) -> bool {
    len <= (sndbuf / 2).saturating_sub(64)
}

/// The length a frame header announces.
pub fn frame_len(header: [u8; HEADER]) -> usize {
    u32::from_be_bytes(header) as usize
}

/// A hello's `(version, pid)`, from a frame's payload (tag and body);
/// `None` for another tag or size.
pub fn parse_hello(tag: u8, payload: &[u8]) -> Option<(u32, u32)> {
    match payload {
        [t, v @ ..] if *t == tag && v.len() == 8 => {
            let version = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            let pid = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
            Some((version, pid))
        }
        _ => None,
    }
}

/// Why a HANDOVER payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverFrameError {
    /// Not a HANDOVER frame, or too short to hold a version.
    Malformed,
    /// Another transport version (the one received).
    Version(u32),
}

/// A HANDOVER payload's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverFrame<'a> {
    /// One role byte per descriptor, in order.
    pub roles: &'a [u8],
    /// The command value's bytes; empty when a COMMAND memfd carries them.
    pub command: &'a [u8],
    /// The end notice's id; 0 for none.
    pub notice: u64,
}

/// The parts of a HANDOVER payload (tag and body) of this version.
pub fn parse_handover(payload: &[u8]) -> Result<HandoverFrame<'_>, HandoverFrameError> {
    let [TAG_HANDOVER, a, b, c, d, rest @ ..] = payload else {
        return Err(HandoverFrameError::Malformed);
    };
    let version = u32::from_be_bytes([*a, *b, *c, *d]);
    if version != VERSION {
        return Err(HandoverFrameError::Version(version));
    }
    let [n0, n1, n2, n3, n4, n5, n6, n7, rest @ ..] = rest else {
        return Err(HandoverFrameError::Malformed);
    };
    let notice = u64::from_be_bytes([*n0, *n1, *n2, *n3, *n4, *n5, *n6, *n7]);
    match rest {
        [n, rest @ ..] if usize::from(*n) <= rest.len().min(MAX_BODY) => {
            let (roles, command) = rest.split_at(usize::from(*n));
            Ok(HandoverFrame {
                roles,
                command,
                notice,
            })
        }
        _ => Err(HandoverFrameError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_round_trip() {
        for tag in [TAG_HELLO, TAG_SPAWNER_HELLO] {
            let f = hello(tag, 4242);
            let len = frame_len([f[0], f[1], f[2], f[3]]);
            assert_eq!(len, f.len() - HEADER);
            assert_eq!(parse_hello(tag, &f[HEADER..]), Some((VERSION, 4242)));
        }
        let f = hello(TAG_HELLO, 1);
        assert_eq!(parse_hello(TAG_SPAWNER_HELLO, &f[HEADER..]), None);
        assert_eq!(parse_hello(TAG_HELLO, &f[HEADER..f.len() - 1]), None);
    }

    #[test]
    fn handovers_round_trip_and_check_the_version() {
        let f = handover(&[1, 2, 6], &[]);
        assert_eq!(frame_len([f[0], f[1], f[2], f[3]]), f.len() - HEADER);
        let parsed = HandoverFrame {
            roles: &[1, 2, 6],
            command: &[],
            notice: 0,
        };
        assert_eq!(parse_handover(&f[HEADER..]), Ok(parsed));
        let f = handover(&[1], b"command");
        let parsed = HandoverFrame {
            roles: &[1],
            command: b"command",
            notice: 0,
        };
        assert_eq!(parse_handover(&f[HEADER..]), Ok(parsed));
        let f = handover_noticed(0x0102_0304_0506_0708, &[1], b"command");
        let parsed = HandoverFrame {
            notice: 0x0102_0304_0506_0708,
            ..parsed
        };
        assert_eq!(parse_handover(&f[HEADER..]), Ok(parsed));
        let f = handover(&[], b"alone");
        assert_eq!(
            parse_handover(&f[HEADER..]).map(|h| h.command),
            Ok(&b"alone"[..])
        );
        let mut old = f.clone();
        old[HEADER + 4] ^= 0xff;
        assert!(matches!(
            parse_handover(&old[HEADER..]),
            Err(HandoverFrameError::Version(_))
        ));
        assert_eq!(
            parse_handover(&[TAG_HELLO]),
            Err(HandoverFrameError::Malformed)
        );
        assert_eq!(
            parse_handover(&[TAG_HANDOVER, 0, 0]),
            Err(HandoverFrameError::Malformed)
        );
        // No count, or a count past the roles there are.
        let v = VERSION.to_be_bytes();
        let no_notice = [TAG_HANDOVER, v[0], v[1], v[2], v[3], 0, 0];
        assert_eq!(
            parse_handover(&no_notice),
            Err(HandoverFrameError::Malformed)
        );
        let no_count = [TAG_HANDOVER, v[0], v[1], v[2], v[3], 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse_handover(&no_count),
            Err(HandoverFrameError::Malformed)
        );
        let short = [
            TAG_HANDOVER,
            v[0],
            v[1],
            v[2],
            v[3],
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            3,
            1,
            2,
        ];
        assert_eq!(parse_handover(&short), Err(HandoverFrameError::Malformed));
    }

    #[test]
    fn the_largest_handover_fits_a_default_channel_in_one_send() {
        let largest = handover(&[0; MAX_BODY], &[0; MAX_INLINE]);
        assert_eq!(largest.len(), HEADER + MAX_HANDOVER);
        // Linux's default net.core.wmem_default.
        assert!(fits_in_one_send(largest.len(), 212_992));
        // macOS's net.local.stream.sendspace: only short commands go inline.
        assert!(!fits_in_one_send(largest.len(), 8_192));
        assert!(fits_in_one_send(4_000, 8_192));
        assert!(!fits_in_one_send(1, 0));
    }

    #[test]
    fn the_spawn_request_is_a_frame() {
        assert_eq!(SPAWN_REQUEST.to_vec(), frame(TAG_SPAWN, &[]));
    }

    #[test]
    fn tags_do_not_collide_with_the_port_protocol() {
        use crate::frame::*;
        let port = [
            TAG_STARTED,
            TAG_EXIT,
            TAG_ERROR,
            TAG_EXEC_ERROR,
            TAG_NOTIFY,
            TAG_WATCHDOG,
            TAG_SIGNALED,
            TAG_TERMINATE,
            TAG_SIGNAL,
        ];
        for t in [TAG_SPAWNER_HELLO, TAG_SPAWN, TAG_HELLO, TAG_HANDOVER] {
            assert!(!port.contains(&t), "{t}");
        }
    }
}
