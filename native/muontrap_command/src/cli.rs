//! The plain command line (`muontrap [OPTIONS] PROGRAM [ARGS...]`, as
//! MuonTrap 2.0's binary took it) parsed into a [`Command`]: the same value
//! the library hands over, run by the same code. Pure: no OS access, so
//! every error path is unit tested. The library passes none of these
//! flags; docs/protocol.md, "The plain command line".

use std::ffi::{OsStr, OsString};

mod attrs;
mod error;
#[cfg(test)]
pub(crate) mod props;
mod seen;
#[cfg(test)]
mod tests;

pub use attrs::parse_signal;
pub use error::ArgError;
use seen::Seen;

use crate::{Command, IdSpec, DEFAULT_WINDOW, DELAY_TO_SIGKILL_MS, MIN_WINDOW};

/// The `--help` text, with the defaults and bounds above.
pub fn usage() -> String {
    USAGE
        .replace("{DELAY}", &DELAY_TO_SIGKILL_MS.to_string())
        .replace("{WINDOW}", &DEFAULT_WINDOW.to_string())
        .replace("{MIN_WINDOW}", &MIN_WINDOW.to_string())
}

const USAGE: &str = "\
Usage: muontrap [OPTIONS] [--] PROGRAM [ARGS...]

Runs PROGRAM contained (own process group, optional cgroup, killed with
everything it started when muontrap exits) and relays its output with
flow control.

Options:
  -0, --arg0 NAME              argv[0] for the program (default: PROGRAM)
  -g, --group PATH             cgroup to create, relative to the root of each cgroup
                               hierarchy used (needs -c or --no-controllers)
      --beneath-own-cgroup     with -g: PATH is relative to muontrap's own cgroup in
                               each hierarchy instead of its root
  -c, --controller NAME        cgroup controller to enable (repeatable, needs -g)
      --no-controllers         with -g: a cgroup for containment only, no controller
  -s, --set FILE=VALUE         write VALUE to the cgroup's FILE (repeatable, after a -c)
  -k, --delay-to-sigkill MS    wait after the stop signal before SIGKILL (default {DELAY})
      --stop-signal SIG        first signal of the stop sequence: a number or a name
                               such as TERM, INT, SIGQUIT (default TERM; not KILL/STOP)
      --umask OCTAL            the program's umask (e.g. 077)
      --nice N                 the program's nice value, -20 to 19 (absolute)
      --rlimit NAME=VALUE      a setrlimit(2) resource (as, core, cpu, data, fsize,
                               locks, memlock, msgqueue, nice, nofile, nproc, rss,
                               rtprio, rttime, sigpending, stack) set to N, infinity
                               or SOFT:HARD (repeatable, each NAME once)
      --setenv NAME=VALUE      set NAME in the program's environment; VALUE is any
                               bytes, as given (repeatable; the last one of a NAME wins)
      --unsetenv NAME          remove NAME from the program's environment (repeatable)
      --uid UID|USER           run the program as this user (not 0)
      --gid GID|GROUP          run the program with this group (not 0)
      --groups LIST            comma-separated supplementary gids or names (\"\" = none)
      --stdio-window BYTES     unacknowledged output limit (default {WINDOW}, min {MIN_WINDOW})
      --capture-output         relay the program's stdout
      --capture-stderr         relay stderr too, merged with stdout
      --capture-stderr-only    relay only stderr; stdout goes to /dev/null (wins)
      --help                   print this help and exit
";

impl IdSpec {
    fn parse(s: &str) -> IdSpec {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = s.parse() {
                return IdSpec::Id(n);
            }
        }
        IdSpec::Name(s.to_string())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Command>),
    Help,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Arg0,
    CgroupPath,
    Controller,
    Set,
    Delay,
    Uid,
    Gid,
    SupplementaryGroups,
    Window,
    CaptureOutput,
    CaptureStderr,
    CaptureStderrOnly,
    NoControllers,
    BeneathOwn,
    StopSignal,
    Umask,
    Nice,
    Rlimit,
    SetEnv,
    UnsetEnv,
    Help,
}

/// (long name, short name, option). Errors name options by the long form.
const OPTIONS: [(&str, &str, Opt); 21] = [
    ("--arg0", "-0", Opt::Arg0),
    ("--group", "-g", Opt::CgroupPath),
    ("--controller", "-c", Opt::Controller),
    ("--set", "-s", Opt::Set),
    ("--delay-to-sigkill", "-k", Opt::Delay),
    ("--uid", "", Opt::Uid),
    ("--gid", "", Opt::Gid),
    ("--groups", "", Opt::SupplementaryGroups),
    ("--stdio-window", "", Opt::Window),
    ("--capture-output", "", Opt::CaptureOutput),
    ("--capture-stderr", "", Opt::CaptureStderr),
    ("--capture-stderr-only", "", Opt::CaptureStderrOnly),
    ("--no-controllers", "", Opt::NoControllers),
    ("--beneath-own-cgroup", "", Opt::BeneathOwn),
    ("--stop-signal", "", Opt::StopSignal),
    ("--umask", "", Opt::Umask),
    ("--nice", "", Opt::Nice),
    ("--rlimit", "", Opt::Rlimit),
    ("--setenv", "", Opt::SetEnv),
    ("--unsetenv", "", Opt::UnsetEnv),
    ("--help", "", Opt::Help),
];

impl Opt {
    fn takes_value(self) -> bool {
        !matches!(
            self,
            Opt::CaptureOutput
                | Opt::CaptureStderr
                | Opt::CaptureStderrOnly
                | Opt::NoControllers
                | Opt::BeneathOwn
                | Opt::Help
        )
    }
}

/// One command-line word before the program, as the parser sees it.
enum Word<'a> {
    /// `--`: the program follows.
    End,
    /// One of ours, with the value given as `--name=value`, if any.
    Known {
        name: &'static str,
        opt: Opt,
        inline: Option<&'a str>,
    },
    /// Looks like an option but is none of ours.
    Unknown(&'a str),
    /// The program: the first word that is no option.
    Program,
}

fn classify(raw: &OsStr) -> Word<'_> {
    // Option names are ASCII; a non-UTF-8 argument can only be the program.
    let Some(s) = raw.to_str() else {
        return Word::Program;
    };
    if s == "--" {
        return Word::End;
    }
    let (key, inline) = match s.split_once('=') {
        Some((k, v)) if k.starts_with("--") => (k, Some(v)),
        _ => (s, None),
    };
    let found = OPTIONS
        .iter()
        .find(|(long, short, _)| key == *long || (!short.is_empty() && key == *short));
    match found {
        Some(&(name, _, opt)) => Word::Known { name, opt, inline },
        None if s.starts_with('-') && s.len() > 1 => Word::Unknown(s),
        None => Word::Program,
    }
}

/// Parses the arguments after the program name (`argv[1..]`).
pub fn parse(argv: &[OsString]) -> Result<Parsed, ArgError> {
    let mut seen = Seen::default();
    let mut i = 0;
    while let Some(raw) = argv.get(i) {
        let (name, opt, inline) = match classify(raw) {
            Word::End => {
                i += 1;
                break;
            }
            Word::Program => break,
            Word::Unknown(s) => return Err(ArgError::UnknownOption(s.to_string())),
            Word::Known { name, opt, inline } => (name, opt, inline),
        };
        i += 1;
        let value = match (opt.takes_value(), inline) {
            (true, Some(v)) => Some(OsString::from(v)),
            (true, None) => {
                let v = argv.get(i).cloned().ok_or(ArgError::MissingValue(name))?;
                i += 1;
                Some(v)
            }
            (false, Some(_)) => return Err(ArgError::UnexpectedValue(name)),
            (false, None) => None,
        };
        if opt == Opt::Help {
            return Ok(Parsed::Help);
        }
        seen.record(opt, name, value)?;
    }
    let program = argv.get(i).cloned().ok_or(ArgError::MissingProgram)?;
    let args = argv.get(i + 1..).unwrap_or_default().to_vec();
    seen.into_command(program, args)
        .map(|cfg| Parsed::Run(Box::new(cfg)))
}
