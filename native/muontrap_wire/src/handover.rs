//! The descriptor hand-over between the NIF (which listens and sends) and
//! the port binary (which connects and receives); docs/protocol.md,
//! "Descriptor hand-over".

/// Most descriptors one hand-over gives the program.
pub const MAX_FDS: usize = 32;
/// Most descriptors one hand-over message carries: the program's, and the
/// COMMAND memfd.
pub const MAX_MESSAGE_FDS: usize = MAX_FDS + 1;
/// Most role bytes (one per descriptor) a HANDOVER carries.
pub const MAX_BODY: usize = 64;
/// Most bytes of the command value a HANDOVER frame carries itself; a
/// longer command goes in a COMMAND memfd. A frame this size leaves a
/// fresh channel in one piece (docs/protocol.md, "Descriptor hand-over").
pub const MAX_INLINE: usize = 32 * 1024;

/// The program's captured output (the merged stream with --capture-stderr).
pub const ROLE_OUTPUT: u8 = 1;
/// Read end of a pipe the BEAM writes: the program's stdin.
pub const ROLE_STDIN: u8 = 2;
/// Write end of a pipe of its own for the program's stderr.
pub const ROLE_STDERR: u8 = 3;
// Reserved: 4 = NOTIFY (sd_notify datagram socket).
/// A listening socket for the program (repeatable): its fds 3, 4, ... in
/// the order of the message.
pub const ROLE_LISTEN: u8 = 5;
/// A memfd holding the command's options in binary form
/// (`muontrap_command::wire`), when they are too long for the HANDOVER
/// frame itself ([`MAX_INLINE`]): the port's argv holds none.
pub const ROLE_COMMAND: u8 = 6;

/// Every abstract socket name starts with this.
pub const NAME_PREFIX: &str = "muontrap-";
/// `sun_path` is 108 bytes and an abstract name starts with a NUL.
pub const MAX_NAME: usize = 107;

/// The abstract socket name the port binary connects to:
/// `muontrap-<beam pid>-<random hex>`. The pid lets the port check that
/// the listener is the BEAM (its `SO_PEERCRED`), not a squatter.
pub fn socket_name(beam_pid: u32, random: u64) -> String {
    format!("{NAME_PREFIX}{beam_pid}-{random:016x}")
}

/// The BEAM's pid in a name `muontrap-<pid>-<suffix>`, parsed strictly
/// (no leading zero, a non-empty suffix, at most [`MAX_NAME`] bytes).
pub fn parse_name(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, suffix) = rest.split_once('-')?;
    let canonical = !pid.is_empty() && !pid.starts_with('0');
    if !canonical || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if suffix.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(socket_name(42, 0xab), "muontrap-42-00000000000000ab");
        for pid in [1, 42, i32::MAX as u32] {
            assert_eq!(parse_name(&socket_name(pid, u64::MAX)), Some(pid as i32));
        }
        assert!(socket_name(u32::MAX, u64::MAX).len() <= MAX_NAME);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "muontrap-",
            "muontrap-42",
            "muontrap-42-",
            "muontrap-042-a",
            "muontrap--a",
            "muontrap-4a-b",
            "other-42-a",
            "muontrap-99999999999-a",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        let long = format!("muontrap-1-{}", "a".repeat(MAX_NAME));
        assert_eq!(parse_name(&long), None);
    }

    #[test]
    fn roles_are_distinct_and_fit_the_body() {
        let roles = [
            ROLE_OUTPUT,
            ROLE_STDIN,
            ROLE_STDERR,
            ROLE_LISTEN,
            ROLE_COMMAND,
        ];
        for (i, a) in roles.iter().enumerate() {
            assert!(roles[i + 1..].iter().all(|b| b != a));
        }
        const { assert!(MAX_MESSAGE_FDS <= MAX_BODY) };
    }
}
