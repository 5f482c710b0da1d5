//! The stop signal and the process attributes the child applies before
//! exec: `--stop-signal`, `--umask`, `--nice` and `--rlimit`. Pure, like
//! the rest of the parser. The signal and resource tables are
//! `muontrap_wire`'s, which the NIF gives the Elixir library too.

use super::seen::set_once;
use super::{ArgError, Opt};
use crate::{LimitPair, Resource, Rlimit, INFINITY, RESOURCES};

/// The options of this file as given.
#[derive(Debug, Default)]
pub(super) struct SeenAttrs {
    pub(super) stop_signal: Option<i32>,
    /// At most 0o777.
    pub(super) umask: Option<u32>,
    /// -20..19.
    pub(super) nice: Option<i32>,
    /// Each resource at most once, in the order given.
    pub(super) rlimits: Vec<Rlimit>,
}

impl SeenAttrs {
    /// Takes in `--stop-signal`, `--umask`, `--nice` or `--rlimit`.
    pub(super) fn record(&mut self, opt: Opt, name: &'static str, v: &str) -> Result<(), ArgError> {
        match opt {
            Opt::StopSignal => set_once(&mut self.stop_signal, name, parse_stop_signal(v)?),
            Opt::Umask => set_once(&mut self.umask, name, parse_umask(v)?),
            Opt::Nice => set_once(&mut self.nice, name, parse_nice(v)?),
            Opt::Rlimit => {
                let r = parse_rlimit(v)?;
                if self.rlimits.iter().any(|o| o.resource == r.resource) {
                    return Err(ArgError::DuplicateRlimit(r.resource.name()));
                }
                self.rlimits.push(r);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

use muontrap_wire::signals::sigrtmax;

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
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
    muontrap_wire::signals::by_name(v).ok_or_else(|| ArgError::UnknownSignal(v.to_string()))
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
    let resource = Resource::by_name(name).ok_or_else(|| {
        let names: Vec<&str> = RESOURCES
            .iter()
            .filter(|(_, r)| r.available())
            .map(|(n, _)| *n)
            .collect();
        bad(format!(
            "unknown resource '{name}', expected one of {}",
            names.join(" ")
        ))
    })?;
    if !resource.available() {
        let os = std::env::consts::OS;
        return Err(bad(format!("{os} has no resource '{name}'")));
    }
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

#[cfg(test)]
mod tests;
