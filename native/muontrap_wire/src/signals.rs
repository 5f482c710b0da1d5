//! Signal names and numbers: what `--stop-signal` parses in the port and
//! what `MuonTrap.Signal` takes (lower case with `sig`, through the NIF).
//! The numbers are libc's constants for the target, so they are right on
//! every architecture (MIPS numbers several differently).

use libc::c_int;

/// Signal names without `SIG`: those `kill -l` prints and the aliases
/// IOT, CLD and POLL. The real-time ones are [`realtime`]'s.
#[cfg(all(
    target_os = "linux",
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
))]
pub const SIGNALS: [(&str, c_int); 34] = table!(
    ("STKFLT", libc::SIGSTKFLT),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR)
);

/// Signal names without `SIG`: those `kill -l` prints (this architecture
/// has no STKFLT) and the aliases IOT, CLD and POLL.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )
))]
pub const SIGNALS: [(&str, c_int); 33] = table!(("POLL", libc::SIGPOLL), ("PWR", libc::SIGPWR));

/// Signal names without `SIG`: those `kill -l` prints on macOS and
/// FreeBSD (no STKFLT, POLL or PWR; EMT and INFO instead), and the aliases
/// IOT and CLD.
#[cfg(not(target_os = "linux"))]
pub const SIGNALS: [(&str, c_int); 33] = table!(("EMT", libc::SIGEMT), ("INFO", libc::SIGINFO));

macro_rules! table {
    ($($extra:expr),*) => {
        [
            ("HUP", libc::SIGHUP),
            ("INT", libc::SIGINT),
            ("QUIT", libc::SIGQUIT),
            ("ILL", libc::SIGILL),
            ("TRAP", libc::SIGTRAP),
            ("ABRT", libc::SIGABRT),
            ("IOT", libc::SIGIOT),
            ("BUS", libc::SIGBUS),
            ("FPE", libc::SIGFPE),
            ("KILL", libc::SIGKILL),
            ("USR1", libc::SIGUSR1),
            ("SEGV", libc::SIGSEGV),
            ("USR2", libc::SIGUSR2),
            ("PIPE", libc::SIGPIPE),
            ("ALRM", libc::SIGALRM),
            ("TERM", libc::SIGTERM),
            ("CHLD", libc::SIGCHLD),
            ("CLD", libc::SIGCHLD),
            ("CONT", libc::SIGCONT),
            ("STOP", libc::SIGSTOP),
            ("TSTP", libc::SIGTSTP),
            ("TTIN", libc::SIGTTIN),
            ("TTOU", libc::SIGTTOU),
            ("URG", libc::SIGURG),
            ("XCPU", libc::SIGXCPU),
            ("XFSZ", libc::SIGXFSZ),
            ("VTALRM", libc::SIGVTALRM),
            ("PROF", libc::SIGPROF),
            ("WINCH", libc::SIGWINCH),
            ("IO", libc::SIGIO),
            ("SYS", libc::SIGSYS),
            $($extra,)*
        ]
    };
}
use table;

/// The real-time signals, lowest and highest, where the platform has
/// them: the C library's reservation on Linux (34 to 64 with glibc, 128
/// on MIPS), FreeBSD's `SIGRTMIN`/`SIGRTMAX` (65 and 126, from its
/// `signal.h`: the libc crate names neither). macOS has none.
pub fn realtime_range() -> Option<(c_int, c_int)> {
    #[cfg(target_os = "linux")]
    return Some((libc::SIGRTMIN(), libc::SIGRTMAX()));
    #[cfg(target_os = "freebsd")]
    return Some((65, 126));
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    return None;
}

/// The lowest real-time signal number (34 with glibc); one past the
/// highest signal where there are none.
pub fn sigrtmin() -> c_int {
    realtime_range().map_or(MAX_CLASSIC + 1, |(min, _)| min)
}

/// The highest signal number (64 on Linux, 128 on MIPS, 31 on macOS).
pub fn sigrtmax() -> c_int {
    realtime_range().map_or(MAX_CLASSIC, |(_, max)| max)
}

/// The highest signal number below the real-time ones.
const MAX_CLASSIC: c_int = 31;

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (upper case, no `SIG`), within
/// [`sigrtmin`]..=[`sigrtmax`]; `None` where there are none.
pub fn realtime(name: &str) -> Option<c_int> {
    let (min, max) = realtime_range()?;
    let offset = |rest: &str| -> Option<c_int> {
        if rest.is_empty() {
            return Some(0);
        }
        digits(rest).then(|| rest.parse().ok()).flatten()
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        min.checked_add(offset(rest.strip_prefix('+').unwrap_or(rest))?)?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        max.checked_sub(offset(rest.strip_prefix('-').unwrap_or(rest))?)?
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
}

/// The number of a signal name, with or without `SIG`, in any case;
/// `None` for a name that is none (numbers are the caller's).
pub fn by_name(name: &str) -> Option<c_int> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|&(_, s)| s)
        .or_else(|| realtime(bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_libc_numbers() {
        assert_eq!(by_name("HUP"), Some(libc::SIGHUP));
        assert_eq!(by_name("sigusr1"), Some(libc::SIGUSR1));
        assert_eq!(by_name("SigTerm"), Some(libc::SIGTERM));
        assert_eq!(by_name("cld"), Some(libc::SIGCHLD));
        assert_eq!(by_name("RTMIN"), Some(sigrtmin()));
        assert_eq!(by_name("SIGRTMIN+2"), Some(sigrtmin() + 2));
        assert_eq!(by_name("rtmax-1"), Some(sigrtmax() - 1));
        for bad in ["", "SIG", "NOPE", "RTMIN+99", "RTMAX-99", "RTMIN-1", "1"] {
            assert_eq!(by_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_number_is_a_signal_and_names_are_unique() {
        for (i, (name, n)) in SIGNALS.iter().enumerate() {
            assert!((1..sigrtmin()).contains(n), "{name}");
            assert!(SIGNALS[i + 1..].iter().all(|(o, _)| o != name), "{name}");
        }
        // Everything kill -l lists below the real-time ones has a name.
        for n in 1..=31 {
            let named = SIGNALS.iter().any(|(_, s)| *s == n);
            assert!(named || n == 16, "signal {n} has no name");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers() {
        assert_eq!(by_name("STKFLT"), Some(16));
        assert_eq!(by_name("SYS"), Some(31));
        assert_eq!(sigrtmax(), 64);
    }
}
