//! Command-line parsing into a [`Config`]. Pure: no OS access, so every
//! error path is unit tested. See `docs/protocol.md` for the option list.

use std::ffi::{OsStr, OsString};
use std::fmt;

use muontrap_cgroup::path::{validate_cgroup_path, validate_file_name};

pub const DEFAULT_DELAY_TO_SIGKILL_MS: u32 = 500;
pub const DEFAULT_WINDOW: u32 = 10240;
pub const MIN_WINDOW: u32 = 16;

pub const USAGE: &str = "\
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
      --no-controllers         with -g: a group for containment only, no controller
  -s, --set FILE=VALUE         write VALUE to the group's FILE (repeatable, after a -c)
  -k, --delay-to-sigkill MS    wait after SIGTERM before SIGKILL (default 500)
      --uid UID|USER           run the program as this user (not 0)
      --gid GID|GROUP          run the program with this group (not 0)
      --groups LIST            comma-separated supplementary gids or names (\"\" = none)
      --stdio-window BYTES     unacknowledged output limit (default 10240, min 16)
      --capture-output         relay the program's stdout
      --capture-stderr         relay stderr too, merged with stdout
      --capture-stderr-only    relay only stderr; stdout goes to /dev/null
      --framed                 use the length-prefixed framed protocol
      --handover NAME          receive the output pipe (and other descriptors)
                               from the abstract Unix socket NAME instead of
                               relaying output (needed by --framed with --capture-*)
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
    /// Relative to each hierarchy's root (or, with `beneath_own`, to
    /// muontrap's own cgroup in it); already validated.
    pub path: String,
    pub controllers: Vec<String>,
    /// `(file, value)`; file names already validated.
    pub settings: Vec<(String, String)>,
    /// `--beneath-own-cgroup`.
    pub beneath_own: bool,
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
    pub groups: Option<Vec<IdSpec>>,
    pub window: u32,
    pub capture: Capture,
    pub framed: bool,
    /// `--handover`: the abstract socket name the BEAM hands descriptors
    /// over on (the captured output then goes into its pipe, unrelayed).
    pub handover: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Config>),
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    UnknownOption(String),
    MissingValue(&'static str),
    UnexpectedValue(&'static str),
    Duplicate(&'static str),
    NotUtf8(&'static str),
    BadNumber { option: &'static str, value: String },
    WindowTooSmall(u32),
    MissingProgram,
    GroupWithoutController,
    ControllerWithoutGroup,
    BeneathOwnWithoutGroup,
    NoControllersMisuse,
    SetBeforeController,
    BadController(String),
    BadCgroupPath { path: String, reason: String },
    BadSet { arg: String, reason: String },
    BadGroupList(String),
    ConflictingCapture,
    FramedCaptureWithoutHandover,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::UnknownOption(o) => write!(f, "unknown option '{o}' (see --help)"),
            ArgError::MissingValue(o) => write!(f, "option {o} needs a value"),
            ArgError::UnexpectedValue(o) => write!(f, "option {o} does not take a value"),
            ArgError::Duplicate(o) => write!(f, "option {o} given more than once"),
            ArgError::NotUtf8(o) => write!(f, "the value of {o} is not valid UTF-8"),
            ArgError::BadNumber { option, value } => {
                write!(f, "{option} needs a non-negative integer, got '{value}'")
            }
            ArgError::WindowTooSmall(n) => {
                write!(f, "--stdio-window must be at least {MIN_WINDOW}, got {n}")
            }
            ArgError::MissingProgram => write!(f, "no program to run given (see --help)"),
            ArgError::GroupWithoutController => {
                write!(f, "--group needs at least one --controller")
            }
            ArgError::ControllerWithoutGroup => write!(f, "--controller needs --group"),
            ArgError::BeneathOwnWithoutGroup => write!(f, "--beneath-own-cgroup needs --group"),
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
            ArgError::BadGroupList(l) => write!(
                f,
                "invalid --groups '{l}': expected comma-separated gids or group names"
            ),
            ArgError::ConflictingCapture => write!(
                f,
                "--capture-stderr-only cannot be combined with --capture-output or --capture-stderr"
            ),
            ArgError::FramedCaptureWithoutHandover => {
                write!(f, "--framed with --capture-* needs --handover")
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Arg0,
    Group,
    Controller,
    Set,
    Delay,
    Uid,
    Gid,
    Groups,
    Window,
    CaptureOutput,
    CaptureStderr,
    CaptureStderrOnly,
    Framed,
    Handover,
    NoControllers,
    BeneathOwn,
    Help,
}

/// (long name, short name, option). Errors name options by the long form.
const OPTIONS: [(&str, &str, Opt); 17] = [
    ("--arg0", "-0", Opt::Arg0),
    ("--group", "-g", Opt::Group),
    ("--controller", "-c", Opt::Controller),
    ("--set", "-s", Opt::Set),
    ("--delay-to-sigkill", "-k", Opt::Delay),
    ("--uid", "", Opt::Uid),
    ("--gid", "", Opt::Gid),
    ("--groups", "", Opt::Groups),
    ("--stdio-window", "", Opt::Window),
    ("--capture-output", "", Opt::CaptureOutput),
    ("--capture-stderr", "", Opt::CaptureStderr),
    ("--capture-stderr-only", "", Opt::CaptureStderrOnly),
    ("--framed", "", Opt::Framed),
    ("--handover", "", Opt::Handover),
    ("--no-controllers", "", Opt::NoControllers),
    ("--beneath-own-cgroup", "", Opt::BeneathOwn),
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
                | Opt::Help
        )
    }
}

fn to_str(option: &'static str, v: &OsStr) -> Result<String, ArgError> {
    v.to_str()
        .map(str::to_string)
        .ok_or(ArgError::NotUtf8(option))
}

fn parse_u32(option: &'static str, v: &str) -> Result<u32, ArgError> {
    let bad = || ArgError::BadNumber {
        option,
        value: v.to_string(),
    };
    // Digits only: `parse` would also accept a leading '+'.
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    v.parse().map_err(|_| bad())
}

fn set_once<T>(slot: &mut Option<T>, option: &'static str, value: T) -> Result<(), ArgError> {
    if slot.is_some() {
        return Err(ArgError::Duplicate(option));
    }
    *slot = Some(value);
    Ok(())
}

fn valid_controller(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn parse_set(arg: &str) -> Result<(String, String), ArgError> {
    let bad = |reason: &str| ArgError::BadSet {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (file, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected FILE=VALUE"))?;
    validate_file_name(file).map_err(|e| bad(&e.to_string()))?;
    Ok((file.to_string(), value.to_string()))
}

fn parse_group_list(list: &str) -> Result<Vec<IdSpec>, ArgError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|item| {
            if item.is_empty() || item.chars().any(char::is_whitespace) {
                Err(ArgError::BadGroupList(list.to_string()))
            } else {
                Ok(IdSpec::parse(item))
            }
        })
        .collect()
}

/// Parses the arguments after the program name (`argv[1..]`).
pub fn parse(argv: &[OsString]) -> Result<Parsed, ArgError> {
    let mut arg0 = None;
    let mut group: Option<String> = None;
    let mut controllers: Vec<String> = Vec::new();
    let mut settings = Vec::new();
    let mut delay = None;
    let mut uid = None;
    let mut gid = None;
    let mut groups = None;
    let mut window = None;
    let mut handover = None;
    let (mut cap_out, mut cap_err, mut cap_err_only, mut framed) = (false, false, false, false);
    let mut no_controllers = false;
    let mut beneath_own = false;

    let mut i = 0;
    while i < argv.len() {
        let raw = &argv[i];
        // Option names are ASCII; a non-UTF-8 argument can only be the program.
        let Some(s) = raw.to_str() else { break };
        if s == "--" {
            i += 1;
            break;
        }
        let (key, inline) = match s.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(OsString::from(v))),
            _ => (s, None),
        };
        let Some(&(name, _, opt)) = OPTIONS
            .iter()
            .find(|(long, short, _)| key == *long || (!short.is_empty() && key == *short))
        else {
            if s.starts_with('-') && s.len() > 1 {
                return Err(ArgError::UnknownOption(s.to_string()));
            }
            break;
        };
        i += 1;

        let value = if opt.takes_value() {
            match inline {
                Some(v) => Some(v),
                None => {
                    let v = argv.get(i).cloned().ok_or(ArgError::MissingValue(name))?;
                    i += 1;
                    Some(v)
                }
            }
        } else if inline.is_some() {
            return Err(ArgError::UnexpectedValue(name));
        } else {
            None
        };
        let text = || match &value {
            Some(v) => to_str(name, v),
            None => Err(ArgError::MissingValue(name)),
        };

        match opt {
            Opt::Help => return Ok(Parsed::Help),
            Opt::Arg0 => set_once(&mut arg0, name, value.unwrap_or_default())?,
            Opt::Group => {
                let p = text()?;
                validate_cgroup_path(&p).map_err(|e| ArgError::BadCgroupPath {
                    path: p.clone(),
                    reason: e.to_string(),
                })?;
                set_once(&mut group, name, p)?;
            }
            Opt::Controller => {
                let c = text()?;
                if !valid_controller(&c) {
                    return Err(ArgError::BadController(c));
                }
                if !controllers.contains(&c) {
                    controllers.push(c);
                }
            }
            Opt::Set => {
                if controllers.is_empty() && !no_controllers {
                    return Err(ArgError::SetBeforeController);
                }
                settings.push(parse_set(&text()?)?);
            }
            Opt::Delay => set_once(&mut delay, name, parse_u32(name, &text()?)?)?,
            Opt::Uid => set_once(&mut uid, name, IdSpec::parse(&text()?))?,
            Opt::Gid => set_once(&mut gid, name, IdSpec::parse(&text()?))?,
            Opt::Groups => set_once(&mut groups, name, parse_group_list(&text()?)?)?,
            Opt::Window => {
                let n = parse_u32(name, &text()?)?;
                if n < MIN_WINDOW {
                    return Err(ArgError::WindowTooSmall(n));
                }
                set_once(&mut window, name, n)?;
            }
            Opt::CaptureOutput => cap_out = true,
            Opt::CaptureStderr => cap_err = true,
            Opt::CaptureStderrOnly => cap_err_only = true,
            Opt::Framed => framed = true,
            Opt::Handover => set_once(&mut handover, name, text()?)?,
            Opt::NoControllers => no_controllers = true,
            Opt::BeneathOwn => beneath_own = true,
        }
    }

    let program = argv.get(i).cloned().ok_or(ArgError::MissingProgram)?;
    let args = argv[i + 1..].to_vec();

    if beneath_own && group.is_none() {
        return Err(ArgError::BeneathOwnWithoutGroup);
    }
    if no_controllers && (group.is_none() || !controllers.is_empty()) {
        return Err(ArgError::NoControllersMisuse);
    }
    let cgroup = match (group, controllers.is_empty()) {
        (Some(_), true) if !no_controllers => return Err(ArgError::GroupWithoutController),
        (Some(path), true) => Some(CgroupConfig {
            path,
            controllers,
            settings,
            beneath_own,
        }),
        (None, false) => return Err(ArgError::ControllerWithoutGroup),
        (None, true) => None,
        (Some(path), false) => Some(CgroupConfig {
            path,
            controllers,
            settings,
            beneath_own,
        }),
    };

    // "--capture-stderr: relay stderr too" - it implies stdout is relayed.
    let capture = match (cap_out, cap_err, cap_err_only) {
        (_, _, true) if cap_out || cap_err => return Err(ArgError::ConflictingCapture),
        (_, _, true) => Capture::StderrOnly,
        (_, true, _) => Capture::StdoutAndStderr,
        (true, false, _) => Capture::Stdout,
        (false, false, _) => Capture::None,
    };
    // Framed mode has no output relay: the output needs the BEAM's pipe.
    if framed && capture != Capture::None && handover.is_none() {
        return Err(ArgError::FramedCaptureWithoutHandover);
    }

    Ok(Parsed::Run(Box::new(Config {
        program,
        args,
        arg0,
        cgroup,
        delay_to_sigkill_ms: delay.unwrap_or(DEFAULT_DELAY_TO_SIGKILL_MS),
        uid,
        gid,
        groups,
        window: window.unwrap_or(DEFAULT_WINDOW),
        capture,
        framed,
        handover,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn run(a: &[&str]) -> Config {
        match parse(&argv(a)) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{a:?} -> {other:?}"),
        }
    }

    fn err(a: &[&str]) -> ArgError {
        match parse(&argv(a)) {
            Err(e) => e,
            other => panic!("{a:?} should fail, got {other:?}"),
        }
    }

    #[test]
    fn no_controllers_gives_a_containment_only_group() {
        let Ok(Parsed::Run(c)) = parse(&argv(&["-g", "a/b", "--no-controllers", "p"])) else {
            panic!("expected a run")
        };
        let cg = c.cgroup.expect("a cgroup");
        assert_eq!(cg.path, "a/b");
        assert!(cg.controllers.is_empty());
    }

    #[test]
    fn defaults() {
        let c = run(&["echo", "hi", "there"]);
        assert_eq!(c.program, "echo");
        assert_eq!(c.args, argv(&["hi", "there"]));
        assert_eq!(c.arg0, None);
        assert_eq!(c.cgroup, None);
        assert_eq!(c.delay_to_sigkill_ms, 500);
        assert_eq!(c.window, 10240);
        assert_eq!(c.capture, Capture::None);
        assert!(!c.framed);
        assert_eq!((c.uid, c.gid, c.groups), (None, None, None));
    }

    #[test]
    fn help_anywhere_before_program() {
        assert_eq!(parse(&argv(&["--help"])), Ok(Parsed::Help));
        assert_eq!(parse(&argv(&["--framed", "--help", "x"])), Ok(Parsed::Help));
        // After the program it belongs to the program.
        assert_eq!(run(&["ls", "--help"]).args, argv(&["--help"]));
    }

    #[test]
    fn long_options_with_space_or_equals() {
        let a = run(&[
            "--arg0",
            "name",
            "--delay-to-sigkill=42",
            "--stdio-window",
            "16",
            "--uid=alice",
            "--gid",
            "100",
            "--groups=1,wheel",
            "--framed",
            "--capture-output",
            "--handover=muontrap-1-a",
            "prog",
        ]);
        assert_eq!(a.arg0, Some(OsString::from("name")));
        assert_eq!(a.delay_to_sigkill_ms, 42);
        assert_eq!(a.window, 16);
        assert_eq!(a.uid, Some(IdSpec::Name("alice".into())));
        assert_eq!(a.gid, Some(IdSpec::Id(100)));
        assert_eq!(
            a.groups,
            Some(vec![IdSpec::Id(1), IdSpec::Name("wheel".into())])
        );
        assert!(a.framed);
        assert_eq!(a.capture, Capture::Stdout);
        assert_eq!(a.handover.as_deref(), Some("muontrap-1-a"));
        assert_eq!(a.program, "prog");
    }

    #[test]
    fn short_options() {
        let c = run(&[
            "-0",
            "zero",
            "-g",
            "a/b",
            "-c",
            "memory",
            "-c",
            "pids",
            "-s",
            "memory.max=1M",
            "-s",
            "pids.max=",
            "-k",
            "7",
            "prog",
        ]);
        assert_eq!(c.arg0, Some(OsString::from("zero")));
        assert_eq!(c.delay_to_sigkill_ms, 7);
        assert_eq!(
            c.cgroup,
            Some(CgroupConfig {
                path: "a/b".into(),
                controllers: vec!["memory".into(), "pids".into()],
                settings: vec![
                    ("memory.max".into(), "1M".into()),
                    ("pids.max".into(), String::new())
                ],
                beneath_own: false,
            })
        );
    }

    #[test]
    fn end_of_options() {
        let c = run(&["--framed", "--", "--capture-output", "-x"]);
        assert_eq!(c.program, "--capture-output");
        assert_eq!(c.args, argv(&["-x"]));
        assert_eq!(c.capture, Capture::None);
        // The first non-option ends option parsing.
        let c = run(&["sh", "-c", "--framed"]);
        assert_eq!(c.program, "sh");
        assert!(!c.framed);
        assert_eq!(run(&["-"]).program, "-");
        // A value may look like an option.
        assert_eq!(
            run(&["--arg0", "--framed", "p"]).arg0,
            Some("--framed".into())
        );
        assert_eq!(run(&["--arg0=", "p"]).arg0, Some("".into()));
    }

    #[test]
    fn handover() {
        assert_eq!(run(&["p"]).handover, None);
        let c = run(&["--capture-output", "--handover", "muontrap-1-f", "p"]);
        assert_eq!(c.handover.as_deref(), Some("muontrap-1-f"));
        // The name itself is checked when it is used (an in-band error).
        assert_eq!(run(&["--handover=x", "p"]).handover.as_deref(), Some("x"));
        assert_eq!(
            err(&["--handover", "a", "--handover", "b", "p"]),
            ArgError::Duplicate("--handover")
        );
        assert_eq!(err(&["--handover"]), ArgError::MissingValue("--handover"));
    }

    #[test]
    fn framed_capture_needs_handover() {
        for flag in [
            "--capture-output",
            "--capture-stderr",
            "--capture-stderr-only",
        ] {
            assert_eq!(
                err(&["--framed", flag, "p"]),
                ArgError::FramedCaptureWithoutHandover,
                "{flag}"
            );
            let c = run(&["--framed", flag, "--handover", "muontrap-1-a", "p"]);
            assert!(c.framed);
            // Plain mode relays without one.
            assert_ne!(run(&[flag, "p"]).capture, Capture::None);
        }
        // Nothing to capture, nothing to hand over; the window is ignored.
        assert!(run(&["--framed", "--stdio-window", "16", "p"]).framed);
        assert_eq!(
            ArgError::FramedCaptureWithoutHandover.to_string(),
            "--framed with --capture-* needs --handover"
        );
    }

    #[test]
    fn capture_modes() {
        assert_eq!(
            run(&["--capture-stderr", "p"]).capture,
            Capture::StdoutAndStderr
        );
        assert_eq!(
            run(&["--capture-output", "--capture-stderr", "p"]).capture,
            Capture::StdoutAndStderr
        );
        assert_eq!(
            run(&["--capture-stderr-only", "p"]).capture,
            Capture::StderrOnly
        );
        assert_eq!(
            err(&["--capture-stderr-only", "--capture-output", "p"]),
            ArgError::ConflictingCapture
        );
    }

    #[test]
    fn empty_groups_means_none() {
        assert_eq!(run(&["--groups", "", "p"]).groups, Some(vec![]));
        assert_eq!(run(&["--groups=", "p"]).groups, Some(vec![]));
    }

    #[test]
    fn errors() {
        use ArgError::*;
        let cases: Vec<(Vec<&str>, ArgError)> = vec![
            (vec![], MissingProgram),
            (vec!["--framed"], MissingProgram),
            (vec!["--"], MissingProgram),
            (vec!["--bogus", "p"], UnknownOption("--bogus".into())),
            (vec!["-x", "p"], UnknownOption("-x".into())),
            (vec!["-gfoo", "p"], UnknownOption("-gfoo".into())),
            (vec!["--framed=yes", "p"], UnexpectedValue("--framed")),
            (vec!["--arg0"], MissingValue("--arg0")),
            (vec!["-k"], MissingValue("--delay-to-sigkill")),
            (vec!["-k=5", "p"], UnknownOption("-k=5".into())),
            (
                vec!["-k", "soon", "p"],
                BadNumber {
                    option: "--delay-to-sigkill",
                    value: "soon".into(),
                },
            ),
            (
                vec!["-k", "-1", "p"],
                BadNumber {
                    option: "--delay-to-sigkill",
                    value: "-1".into(),
                },
            ),
            (
                vec!["-k", "+1", "p"],
                BadNumber {
                    option: "--delay-to-sigkill",
                    value: "+1".into(),
                },
            ),
            (
                vec!["--stdio-window=99999999999", "p"],
                BadNumber {
                    option: "--stdio-window",
                    value: "99999999999".into(),
                },
            ),
            (vec!["--stdio-window", "15", "p"], WindowTooSmall(15)),
            (vec!["--uid", "1", "--uid", "2", "p"], Duplicate("--uid")),
            (vec!["-0", "a", "--arg0", "b", "p"], Duplicate("--arg0")),
            (vec!["-g", "x", "p"], GroupWithoutController),
            (vec!["-c", "memory", "p"], ControllerWithoutGroup),
            (vec!["--no-controllers", "p"], NoControllersMisuse),
            (
                vec!["-g", "x", "-c", "pids", "--no-controllers", "p"],
                NoControllersMisuse,
            ),
            (
                vec!["-g", "x", "-s", "a=b", "-c", "memory", "p"],
                SetBeforeController,
            ),
            (
                vec!["-g", "x", "-c", "Mem ory", "p"],
                BadController("Mem ory".into()),
            ),
            (vec!["-g", "x", "-c", "", "p"], BadController("".into())),
            (vec!["--groups", "1,,2", "p"], BadGroupList("1,,2".into())),
            (vec!["--groups", "1,", "p"], BadGroupList("1,".into())),
        ];
        for (a, want) in cases {
            assert_eq!(err(&a), want, "{a:?}");
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn cgroup_path_and_set_validation() {
        for p in ["/abs", "a/../b", "..", "", "a//b"] {
            match err(&["-g", p, "-c", "memory", "p"]) {
                ArgError::BadCgroupPath { path, .. } => assert_eq!(path, p),
                e => panic!("{p}: {e:?}"),
            }
        }
        for s in ["noequals", "a/b=1", "..=1", "=1", "./x=1"] {
            match err(&["-g", "x", "-c", "memory", "-s", s, "p"]) {
                ArgError::BadSet { arg, .. } => assert_eq!(arg, s),
                e => panic!("{s}: {e:?}"),
            }
        }
        // Only the first '=' separates.
        let c = run(&["-g", "x", "-c", "memory", "-s", "f=a=b", "p"]);
        assert_eq!(
            c.cgroup.map(|g| g.settings),
            Some(vec![("f".into(), "a=b".into())])
        );
    }

    #[test]
    fn non_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff, 0xfe]);
        let a = vec![OsString::from("--uid"), bad.clone(), "p".into()];
        assert_eq!(parse(&a), Err(ArgError::NotUtf8("--uid")));
        // Fine as arg0, program or argument.
        let a = vec!["-0".into(), bad.clone(), bad.clone(), bad.clone()];
        match parse(&a) {
            Ok(Parsed::Run(c)) => {
                assert_eq!(c.arg0, Some(bad.clone()));
                assert_eq!(c.program, bad);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn id_spec() {
        assert_eq!(IdSpec::parse("0"), IdSpec::Id(0));
        assert_eq!(IdSpec::parse("65534"), IdSpec::Id(65534));
        assert_eq!(
            IdSpec::parse("4294967296"),
            IdSpec::Name("4294967296".into())
        );
        assert_eq!(IdSpec::parse("1a"), IdSpec::Name("1a".into()));
    }
}
