//! The stop signal and the process attributes the child applies before
//! exec: `--stop-signal`, `--umask`, `--nice` and `--rlimit`. Pure, like
//! the rest of the parser (signal numbers come from libc's constants, so
//! they are right on every architecture).

use std::fmt;

use super::seen::set_once;
use super::{ArgError, Opt};

/// `RLIM_INFINITY` as `prlimit64(2)` takes it.
pub const INFINITY: u64 = u64::MAX;

/// A `setrlimit(2)` resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

/// Every resource by its `--rlimit` name: `RLIMIT_*` in lower case.
pub(super) const RESOURCES: [(&str, Resource); 16] = [
    ("as", Resource::As),
    ("core", Resource::Core),
    ("cpu", Resource::Cpu),
    ("data", Resource::Data),
    ("fsize", Resource::Fsize),
    ("locks", Resource::Locks),
    ("memlock", Resource::Memlock),
    ("msgqueue", Resource::Msgqueue),
    ("nice", Resource::Nice),
    ("nofile", Resource::Nofile),
    ("nproc", Resource::Nproc),
    ("rss", Resource::Rss),
    ("rtprio", Resource::Rtprio),
    ("rttime", Resource::Rttime),
    ("sigpending", Resource::Sigpending),
    ("stack", Resource::Stack),
];

impl Resource {
    pub fn name(self) -> &'static str {
        RESOURCES
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("?", |(n, _)| n)
    }

    /// The `RLIMIT_*` number.
    pub fn raw(self) -> libc::c_int {
        let r = match self {
            Resource::As => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Locks => libc::RLIMIT_LOCKS,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Resource::Nice => libc::RLIMIT_NICE,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Rss => libc::RLIMIT_RSS,
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            Resource::Rttime => libc::RLIMIT_RTTIME,
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            Resource::Stack => libc::RLIMIT_STACK,
        };
        // glibc types these as `__rlimit_resource_t` (unsigned), musl as
        // `c_int`; all are small.
        r as libc::c_int
    }
}

/// One `--rlimit`: soft and hard limit in the resource's unit, `INFINITY`
/// for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

fn limit_text(f: &mut fmt::Formatter<'_>, v: u64) -> fmt::Result {
    if v == INFINITY {
        f.write_str("infinity")
    } else {
        write!(f, "{v}")
    }
}

/// `nofile to 1024:4096`, as in "failed to set rlimit ...".
impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.resource.name(), LimitPair(self))
    }
}

/// What the child sets up before it drops privileges and execs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// `--umask`, at most 0o777.
    pub umask: Option<u32>,
    /// `--nice`: the absolute nice value, -20..19.
    pub nice: Option<i32>,
    /// `--rlimit`s, each resource at most once, in the order given.
    pub rlimits: Vec<Rlimit>,
}

/// The options of this file as given.
#[derive(Debug, Default)]
pub(super) struct SeenAttrs {
    pub(super) stop_signal: Option<i32>,
    pub(super) attrs: Attrs,
}

impl SeenAttrs {
    /// Takes in `--stop-signal`, `--umask`, `--nice` or `--rlimit`.
    pub(super) fn record(&mut self, opt: Opt, name: &'static str, v: &str) -> Result<(), ArgError> {
        match opt {
            Opt::StopSignal => set_once(&mut self.stop_signal, name, parse_stop_signal(v)?),
            Opt::Umask => set_once(&mut self.attrs.umask, name, parse_umask(v)?),
            Opt::Nice => set_once(&mut self.attrs.nice, name, parse_nice(v)?),
            Opt::Rlimit => {
                let r = parse_rlimit(v)?;
                if self.attrs.rlimits.iter().any(|o| o.resource == r.resource) {
                    return Err(ArgError::DuplicateRlimit(r.resource.name()));
                }
                self.attrs.rlimits.push(r);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Signal names without `SIG`: those `kill -l` prints (but STKFLT, which
/// MIPS lacks) and the aliases IOT, CLD and POLL.
pub(super) const SIGNALS: [(&str, libc::c_int); 33] = [
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
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The highest signal number (64 on Linux).
pub fn sigrtmax() -> libc::c_int {
    libc::SIGRTMAX()
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (upper case, no `SIG`).
fn realtime(name: &str) -> Option<libc::c_int> {
    let (min, max) = (libc::SIGRTMIN(), sigrtmax());
    let offset = |rest: &str| -> Option<libc::c_int> {
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

/// A signal number (1 to SIGRTMAX) or a name, with or without `SIG`, in
/// any case.
pub fn parse_signal(v: &str) -> Result<libc::c_int, ArgError> {
    if digits(v) {
        return match v.parse::<libc::c_int>() {
            Ok(n) if (1..=sigrtmax()).contains(&n) => Ok(n),
            _ => Err(ArgError::SignalOutOfRange(v.to_string())),
        };
    }
    let upper = v.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, s)| s)
        .or_else(|| realtime(name))
        .ok_or_else(|| ArgError::UnknownSignal(v.to_string()))
}

fn parse_stop_signal(v: &str) -> Result<libc::c_int, ArgError> {
    match parse_signal(v)? {
        libc::SIGKILL => Err(ArgError::StopSignalForbidden("SIGKILL")),
        libc::SIGSTOP => Err(ArgError::StopSignalForbidden("SIGSTOP")),
        n => Ok(n),
    }
}

/// 1 to 4 octal digits, at most 0o777.
fn parse_umask(v: &str) -> Result<u32, ArgError> {
    let octal = !v.is_empty() && v.len() <= 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(v, 8) {
        Ok(n) if octal && n <= 0o777 => Ok(n),
        _ => Err(ArgError::BadUmask(v.to_string())),
    }
}

/// An integer from -20 to 19 (`-` allowed, leading zeros too).
fn parse_nice(v: &str) -> Result<i32, ArgError> {
    let bad = || ArgError::BadNice(v.to_string());
    let (negative, abs) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    if !digits(abs) {
        return Err(bad());
    }
    let abs = abs.trim_start_matches('0');
    let n: i32 = if abs.is_empty() {
        0
    } else if abs.len() > 2 {
        return Err(bad());
    } else {
        abs.parse().map_err(|_| bad())?
    };
    let n = if negative { -n } else { n };
    if (-20..=19).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

fn parse_limit(v: &str) -> Option<u64> {
    if v == "infinity" {
        Some(INFINITY)
    } else if digits(v) {
        v.parse().ok()
    } else {
        None
    }
}

/// `NAME=N`, `NAME=infinity` or `NAME=SOFT:HARD`.
fn parse_rlimit(arg: &str) -> Result<Rlimit, ArgError> {
    let bad = |reason: String| ArgError::BadRlimit {
        arg: arg.to_string(),
        reason,
    };
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=VALUE, e.g. nofile=1024".into()))?;
    let resource = RESOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, r)| r)
        .ok_or_else(|| {
            let names: Vec<&str> = RESOURCES.iter().map(|(n, _)| *n).collect();
            bad(format!(
                "unknown resource '{name}', expected one of {}",
                names.join(" ")
            ))
        })?;
    let limits = match value.split_once(':') {
        Some((s, h)) => parse_limit(s).zip(parse_limit(h)),
        None => parse_limit(value).map(|n| (n, n)),
    };
    let (soft, hard) = limits.ok_or_else(|| {
        bad("expected N, infinity or SOFT:HARD (each N or infinity), \
             N a non-negative integer"
            .into())
    })?;
    let r = Rlimit {
        resource,
        soft,
        hard,
    };
    if soft > hard {
        return Err(bad(format!(
            "the soft limit is above the hard limit ({})",
            LimitPair(&r)
        )));
    }
    Ok(r)
}

/// `SOFT:HARD` alone.
struct LimitPair<'a>(&'a Rlimit);

impl fmt::Display for LimitPair<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        limit_text(f, self.0.soft)?;
        f.write_str(":")?;
        limit_text(f, self.0.hard)
    }
}

#[cfg(test)]
mod tests;
