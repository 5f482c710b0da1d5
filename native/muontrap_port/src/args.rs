//! Command-line parsing into a [`Config`]. Pure: no OS access, so every
//! error path is unit tested. See `docs/protocol.md` for the option list.

use std::ffi::{OsStr, OsString};
use std::fmt;

mod attrs;
mod error;
mod listen;
#[cfg(test)]
mod props;
mod seen;
#[cfg(test)]
mod tests;

pub use attrs::{sigrtmax, Attrs, Rlimit};
pub use error::ArgError;
use seen::Seen;

/// `--delay-to-sigkill`'s default, the C original's. The Elixir library
/// passes the flag only when `:delay_to_sigkill` is given and relies on
/// this being its own default too: `MuonTrap.PortBinary.default_delay_to_sigkill/0`
/// reads the same constant through the NIF.
pub use muontrap_wire::defaults::DELAY_TO_SIGKILL_MS as DEFAULT_DELAY_TO_SIGKILL_MS;

/// `--stdio-window`'s default, the C original's, kept for hand-written
/// invocations in plain mode: the only mode whose output is relayed under
/// this window. The Elixir library's `:stdio_window` default differs
/// (262144, `MuonTrap.PortBinary.default_window/0`): it is the capacity of the
/// BEAM-owned pipes the program writes into, and the library never passes
/// `--stdio-window` (framed mode relays nothing). This is the one place
/// that says why the two differ.
pub const DEFAULT_WINDOW: u32 = 10240;

/// The smallest `--stdio-window`, checked once (`seen::parse_window`);
/// `MuonTrap.Options` checks `:stdio_window` against the same constant,
/// through the NIF, so a valid option is a valid flag.
pub use muontrap_wire::defaults::MIN_WINDOW;

/// The `--help` text, with the defaults and bounds above.
pub fn usage() -> String {
    USAGE
        .replace("{DELAY}", &DEFAULT_DELAY_TO_SIGKILL_MS.to_string())
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
      --framed                 use the length-prefixed framed protocol
      --handover NAME          receive the output pipe (and stdin/stderr pipes,
                               listening sockets for fds 3, 4, ...) from the abstract
                               Unix socket NAME instead of relaying output (needed
                               by --framed with --capture-*)
      --listen-fdnames NAMES   with --handover: colon-separated names of the
                               listening sockets (LISTEN_FDNAMES), one per socket
      --notify                 framed: give the program an sd_notify socket
                               (NOTIFY_SOCKET) and forward its state changes
      --watchdog MS            framed: sd_notify watchdog; terminate the program
                               if it sends no WATCHDOG=1 for MS ms
      --help                   print this help and exit
";

/// A user or group given either numerically or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    Id(u32),
    Name(String),
}

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

impl fmt::Display for IdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdSpec::Id(n) => write!(f, "{n}"),
            IdSpec::Name(s) => write!(f, "'{s}'"),
        }
    }
}

/// Which of the program's output streams go into the relayed pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    None,
    Stdout,
    StdoutAndStderr,
    StderrOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupConfig {
    /// Relative to each hierarchy's root (or, with `beneath_own_cgroup`, to
    /// muontrap's own cgroup in it); already validated.
    pub path: String,
    pub controllers: Vec<String>,
    /// `(file, value)`; file names already validated.
    pub settings: Vec<(String, String)>,
    /// `--beneath-own-cgroup`.
    pub beneath_own_cgroup: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub arg0: Option<OsString>,
    pub cgroup: Option<CgroupConfig>,
    pub delay_to_sigkill_ms: u32,
    pub uid: Option<IdSpec>,
    pub gid: Option<IdSpec>,
    /// `--groups`: the supplementary groups, `Some(vec![])` for none.
    pub supplementary_groups: Option<Vec<IdSpec>>,
    pub window: u32,
    pub capture: Capture,
    pub framed: bool,
    /// `--handover`: the abstract socket name the BEAM hands descriptors
    /// over on (the captured output then goes into its pipe, unrelayed).
    pub handover: Option<String>,
    /// `--listen-fdnames`: one name per LISTEN descriptor, already valid.
    pub listen_fdnames: Option<Vec<String>>,
    /// `--notify`: readiness expected (the watchdog starts at `READY=1`).
    pub notify: bool,
    /// `--watchdog`: the interval in ms (at least 1).
    pub watchdog_ms: Option<u32>,
    /// `--stop-signal`: the first signal of the stop sequence (SIGTERM).
    pub stop_signal: libc::c_int,
    /// `--umask`, `--nice`, `--rlimit`: set in the child before exec.
    pub attrs: Attrs,
    /// `--setenv` (`Some`) and `--unsetenv` (`None`), in order.
    pub env: Vec<(OsString, Option<OsString>)>,
}

impl Config {
    /// Whether the program gets a notification socket.
    pub fn notify_socket(&self) -> bool {
        self.notify || self.watchdog_ms.is_some()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Config>),
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
    Framed,
    Handover,
    ListenFdnames,
    NoControllers,
    BeneathOwn,
    Notify,
    Watchdog,
    StopSignal,
    Umask,
    Nice,
    Rlimit,
    SetEnv,
    UnsetEnv,
    Help,
}

/// (long name, short name, option). Errors name options by the long form.
const OPTIONS: [(&str, &str, Opt); 26] = [
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
    ("--framed", "", Opt::Framed),
    ("--handover", "", Opt::Handover),
    ("--listen-fdnames", "", Opt::ListenFdnames),
    ("--no-controllers", "", Opt::NoControllers),
    ("--beneath-own-cgroup", "", Opt::BeneathOwn),
    ("--notify", "", Opt::Notify),
    ("--watchdog", "", Opt::Watchdog),
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
                | Opt::Framed
                | Opt::NoControllers
                | Opt::BeneathOwn
                | Opt::Notify
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

/// Whether `--framed` is among the options. Looked for apart from `parse`,
/// so that a framed caller gets even a usage error as an ERROR message.
/// Scans the way `parse` does (up to `--` or the program, skipping option
/// values, so in `--arg0 --framed` it is arg0's value) but reads on past
/// an unknown option or a bad value, where `parse` stops with its error.
pub fn framed_requested(argv: &[OsString]) -> bool {
    let mut words = argv.iter();
    while let Some(raw) = words.next() {
        match classify(raw) {
            Word::End | Word::Program => return false,
            Word::Known {
                opt: Opt::Framed,
                inline: None,
                ..
            } => return true,
            Word::Known {
                opt, inline: None, ..
            } if opt.takes_value() => {
                words.next();
            }
            Word::Known { .. } | Word::Unknown(_) => {}
        }
    }
    false
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
    seen.into_config(program, args)
        .map(|cfg| Parsed::Run(Box::new(cfg)))
}
