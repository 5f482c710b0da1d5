//! Why the command line was refused; the texts are the `muontrap: ...` lines users see.

use std::fmt;

use super::MIN_WINDOW;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    UnknownOption(String),
    MissingValue(&'static str),
    UnexpectedValue(&'static str),
    Duplicate(&'static str),
    NotUtf8(&'static str),
    /// `--setenv` without `NAME=`, or `--unsetenv` with an `=` or no name.
    BadEnv(&'static str, String),
    BadNumber {
        option: &'static str,
        value: String,
    },
    WindowTooSmall(u32),
    MissingProgram,
    CgroupWithoutController,
    ControllerWithoutCgroup,
    BeneathOwnWithoutCgroup,
    NoControllersMisuse,
    SetBeforeController,
    BadController(String),
    BadCgroupPath {
        path: String,
        reason: String,
    },
    BadSet {
        arg: String,
        reason: String,
    },
    BadSupplementaryGroups(String),
    StopSignalForbidden(&'static str),
    UnknownSignal(String),
    SignalOutOfRange(String),
    BadUmask(String),
    BadNice(String),
    BadRlimit {
        arg: String,
        reason: String,
    },
    DuplicateRlimit(&'static str),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::UnknownOption(o) => write!(f, "unknown option '{o}' (see --help)"),
            ArgError::MissingValue(o) => write!(f, "option {o} needs a value"),
            ArgError::UnexpectedValue(o) => write!(f, "option {o} does not take a value"),
            ArgError::Duplicate(o) => write!(f, "option {o} given more than once"),
            ArgError::NotUtf8(o) => write!(f, "the value of {o} is not valid UTF-8"),
            ArgError::BadEnv(o, v) if *o == "--setenv" => {
                write!(
                    f,
                    "invalid {o} '{v}': expected NAME=VALUE with a non-empty NAME"
                )
            }
            ArgError::BadEnv(o, v) => {
                write!(f, "invalid {o} '{v}': expected a NAME without '='")
            }
            ArgError::BadNumber { option, value } => {
                write!(f, "{option} needs a non-negative integer, got '{value}'")
            }
            ArgError::WindowTooSmall(n) => {
                write!(f, "--stdio-window must be at least {MIN_WINDOW}, got {n}")
            }
            ArgError::MissingProgram => write!(f, "no program to run given (see --help)"),
            ArgError::CgroupWithoutController => {
                write!(f, "--group needs at least one --controller")
            }
            ArgError::ControllerWithoutCgroup => write!(f, "--controller needs --group"),
            ArgError::BeneathOwnWithoutCgroup => write!(f, "--beneath-own-cgroup needs --group"),
            ArgError::NoControllersMisuse => {
                write!(
                    f,
                    "--no-controllers needs --group and excludes --controller"
                )
            }
            ArgError::SetBeforeController => {
                write!(f, "--set must come after a --controller")
            }
            ArgError::BadController(c) => write!(f, "invalid cgroup controller name '{c}'"),
            ArgError::BadCgroupPath { path, reason } => {
                write!(f, "invalid cgroup path '{path}': {reason}")
            }
            ArgError::BadSet { arg, reason } => write!(f, "invalid --set '{arg}': {reason}"),
            ArgError::BadSupplementaryGroups(l) => write!(
                f,
                "invalid --groups '{l}': expected comma-separated gids or group names"
            ),
            ArgError::StopSignalForbidden(s) => write!(f, "--stop-signal cannot be {s}"),
            ArgError::UnknownSignal(s) => write!(f, "unknown signal '{s}'"),
            ArgError::SignalOutOfRange(s) => write!(
                f,
                "--stop-signal needs a signal name or a number from 1 to {}, got '{s}'",
                muontrap_wire::signals::sigrtmax()
            ),
            ArgError::BadUmask(v) => write!(
                f,
                "--umask needs an octal mode (1 to 4 digits 0-7, at most 777), got '{v}'"
            ),
            ArgError::BadNice(v) => {
                write!(f, "--nice needs an integer from -20 to 19, got '{v}'")
            }
            ArgError::BadRlimit { arg, reason } => write!(f, "invalid --rlimit '{arg}': {reason}"),
            ArgError::DuplicateRlimit(r) => write!(f, "--rlimit {r} given more than once"),
        }
    }
}
