//! Decoding one sd_notify datagram (pure): newline-separated `KEY=VALUE`
//! lines, of which the ones below are understood; anything else, or a
//! malformed value, is ignored, as systemd ignores what it does not know.

/// Longest STATUS text forwarded, in bytes (cut at a character boundary).
pub const MAX_STATUS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Ready,
    Reloading,
    Stopping,
    /// UTF-8 (invalid bytes replaced), at most `MAX_STATUS` bytes.
    Status(String),
    /// `WATCHDOG=1`.
    Ping,
    /// `WATCHDOG=trigger`.
    Trigger,
    /// `WATCHDOG_USEC=n`, n > 0.
    WatchdogUsec(u64),
    ExtendTimeoutUsec(u64),
    /// Not yet checked against the containment.
    MainPid(i32),
    /// `BARRIER=1`: answered by closing the descriptors it carried.
    Barrier,
}

/// Decimal digits only (no sign, no spaces), fitting in a u64.
fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `s` cut to at most `max` bytes without splitting a character.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn line(key: &[u8], v: &[u8]) -> Option<Msg> {
    let one = v == b"1";
    Some(match key {
        b"READY" if one => Msg::Ready,
        b"RELOADING" if one => Msg::Reloading,
        b"STOPPING" if one => Msg::Stopping,
        b"BARRIER" if one => Msg::Barrier,
        b"WATCHDOG" if one => Msg::Ping,
        b"WATCHDOG" if v == b"trigger" => Msg::Trigger,
        b"STATUS" => Msg::Status(truncate(
            String::from_utf8_lossy(v).into_owned(),
            MAX_STATUS,
        )),
        b"WATCHDOG_USEC" => Msg::WatchdogUsec(number(v).filter(|&n| n > 0)?),
        b"EXTEND_TIMEOUT_USEC" => Msg::ExtendTimeoutUsec(number(v)?),
        b"MAINPID" => Msg::MainPid(i32::try_from(number(v)?).ok().filter(|&p| p > 0)?),
        _ => return None,
    })
}

/// The understood lines of one datagram, in order.
pub fn parse(datagram: &[u8]) -> Vec<Msg> {
    datagram
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let eq = l.iter().position(|&b| b == b'=')?;
            line(&l[..eq], &l[eq + 1..])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn understood_lines_in_order() {
        let d = b"READY=1\nSTATUS=up and running\nRELOADING=1\nSTOPPING=1\nWATCHDOG=1\n\
                  WATCHDOG=trigger\nWATCHDOG_USEC=2000000\nEXTEND_TIMEOUT_USEC=0\n\
                  MAINPID=42\nBARRIER=1\n";
        assert_eq!(
            parse(d),
            vec![
                Msg::Ready,
                Msg::Status("up and running".into()),
                Msg::Reloading,
                Msg::Stopping,
                Msg::Ping,
                Msg::Trigger,
                Msg::WatchdogUsec(2_000_000),
                Msg::ExtendTimeoutUsec(0),
                Msg::MainPid(42),
                Msg::Barrier,
            ]
        );
    }

    #[test]
    fn unknown_and_malformed_lines_are_ignored() {
        let d = b"READY=0\nREADY=yes\nREADY\nFOO=1\n=1\nready=1\nWATCHDOG=2\n\
                  WATCHDOG_USEC=0\nWATCHDOG_USEC=-5\nWATCHDOG_USEC=+5\nWATCHDOG_USEC= 5\n\
                  WATCHDOG_USEC=18446744073709551616\nEXTEND_TIMEOUT_USEC=x\n\
                  MAINPID=0\nMAINPID=-1\nMAINPID=2147483648\nMAINPID=\nBARRIER=2\n\
                  ERRNO=5\nFDSTORE=1\n \nREADY=1 ";
        assert_eq!(parse(d), vec![]);
        assert_eq!(parse(b""), vec![]);
        assert_eq!(parse(b"\n\n\n"), vec![]);
    }

    #[test]
    fn values_and_edges() {
        assert_eq!(parse(b"READY=1"), vec![Msg::Ready]);
        assert_eq!(parse(b"STATUS="), vec![Msg::Status(String::new())]);
        // Only the first '=' separates.
        assert_eq!(parse(b"STATUS=a=b"), vec![Msg::Status("a=b".into())]);
        assert_eq!(
            parse(b"WATCHDOG_USEC=18446744073709551615"),
            vec![Msg::WatchdogUsec(u64::MAX)]
        );
        assert_eq!(
            parse(b"MAINPID=2147483647\nMAINPID=007"),
            vec![Msg::MainPid(i32::MAX), Msg::MainPid(7)]
        );
        // A NUL byte is just a byte of the line.
        assert_eq!(parse(b"READY=1\0"), vec![]);
    }

    #[test]
    fn status_is_made_utf8_and_bounded() {
        assert_eq!(
            parse(b"STATUS=a\xffb\xc3"),
            vec![Msg::Status("a\u{fffd}b\u{fffd}".into())]
        );
        assert_eq!(
            parse("STATUS=grüße".as_bytes()),
            vec![Msg::Status("grüße".into())]
        );
        // 4,089 invalid bytes become 12,267 bytes of U+FFFD: cut to 4,096
        // at a character boundary (1,365 whole characters).
        let mut d = b"STATUS=".to_vec();
        d.extend(std::iter::repeat_n(0xffu8, 4089));
        let [Msg::Status(s)] = &parse(&d)[..] else {
            panic!("one status")
        };
        assert_eq!(s.len(), 4095);
        assert!(s.chars().all(|c| c == '\u{fffd}'));
        let mut d = b"STATUS=".to_vec();
        d.extend(std::iter::repeat_n(b'x', 5000));
        let [Msg::Status(s)] = &parse(&d)[..] else {
            panic!("one status")
        };
        assert_eq!(s.len(), MAX_STATUS);
    }
}
