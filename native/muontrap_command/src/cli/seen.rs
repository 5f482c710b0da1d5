//! Collecting the options one by one, then the checks that involve
//! several of them, into a [`Command`].

use std::ffi::{OsStr, OsString};

use muontrap_cgroup::path::{validate_cgroup_path, validate_file_name};

use super::attrs::SeenAttrs;
use super::{ArgError, Opt, DEFAULT_WINDOW, DELAY_TO_SIGKILL_MS, MIN_WINDOW};
use crate::{Bytes, Capture, CgroupWrites, Command, IdSpec, Rlimits, Signal};

/// The options as given, before the checks that involve several of them.
#[derive(Default)]
pub(super) struct Seen {
    arg0: Option<OsString>,
    cgroup_path: Option<String>,
    controllers: Vec<String>,
    settings: Vec<(String, String)>,
    delay: Option<u32>,
    uid: Option<IdSpec>,
    gid: Option<IdSpec>,
    supplementary_groups: Option<Vec<IdSpec>>,
    window: Option<u32>,
    cap_out: bool,
    cap_err: bool,
    cap_err_only: bool,
    no_controllers: bool,
    beneath_own_cgroup: bool,
    attrs: SeenAttrs,
    env: Vec<(OsString, Option<OsString>)>,
}

impl Seen {
    /// Takes in one option; `value` is `Some` exactly when it takes one.
    pub(super) fn record(
        &mut self,
        opt: Opt,
        name: &'static str,
        value: Option<OsString>,
    ) -> Result<(), ArgError> {
        match value {
            None => self.record_flag(opt, name),
            // Values that need not be UTF-8: they go to execve as they are.
            Some(v) if opt == Opt::Arg0 => set_once(&mut self.arg0, name, v),
            Some(v) if opt == Opt::SetEnv => self.add_env(name, &v, true),
            Some(v) if opt == Opt::UnsetEnv => self.add_env(name, &v, false),
            Some(v) => self.record_value(opt, name, &v),
        }
    }

    fn record_value(&mut self, opt: Opt, name: &'static str, v: &OsStr) -> Result<(), ArgError> {
        let text = || to_str(name, v);
        match opt {
            Opt::CgroupPath => set_once(&mut self.cgroup_path, name, parse_cgroup_path(text()?)?),
            Opt::Controller => self.add_controller(text()?),
            Opt::Set => self.add_setting(text),
            Opt::Delay => set_once(&mut self.delay, name, parse_u32(name, &text()?)?),
            Opt::Uid => set_once(&mut self.uid, name, IdSpec::parse(&text()?)),
            Opt::Gid => set_once(&mut self.gid, name, IdSpec::parse(&text()?)),
            Opt::SupplementaryGroups => {
                let groups = parse_supplementary_groups(&text()?)?;
                set_once(&mut self.supplementary_groups, name, groups)
            }
            Opt::Window => set_once(&mut self.window, name, parse_window(name, &text()?)?),
            Opt::StopSignal | Opt::Umask | Opt::Nice | Opt::Rlimit => {
                self.attrs.record(opt, name, &text()?)
            }
            // `parse` gives flags no value.
            _ => Err(ArgError::UnexpectedValue(name)),
        }
    }

    /// `--setenv NAME=VALUE` or `--unsetenv NAME`: NAME is not empty and
    /// has no `=` (execve would read the rest as the value).
    fn add_env(&mut self, option: &'static str, v: &OsStr, set: bool) -> Result<(), ArgError> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = v.as_bytes();
        let (name, value) = match (set, bytes.iter().position(|&b| b == b'=')) {
            (true, Some(eq)) => (&bytes[..eq], Some(&bytes[eq + 1..])),
            (false, None) => (bytes, None),
            _ => (&[][..], None),
        };
        if name.is_empty() {
            return Err(ArgError::BadEnv(option, v.to_string_lossy().into_owned()));
        }
        let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
        self.env.push((os(name), value.map(os)));
        Ok(())
    }

    fn record_flag(&mut self, opt: Opt, name: &'static str) -> Result<(), ArgError> {
        let flag = match opt {
            Opt::CaptureOutput => &mut self.cap_out,
            Opt::CaptureStderr => &mut self.cap_err,
            Opt::CaptureStderrOnly => &mut self.cap_err_only,
            Opt::NoControllers => &mut self.no_controllers,
            Opt::BeneathOwn => &mut self.beneath_own_cgroup,
            // `parse` returns at --help before recording anything.
            Opt::Help => return Ok(()),
            // `parse` gives every other option its value.
            _ => return Err(ArgError::MissingValue(name)),
        };
        *flag = true;
        Ok(())
    }

    /// `-s`: only once the cgroup has its controllers (or has none);
    /// that is checked before the value is.
    fn add_setting(
        &mut self,
        text: impl FnOnce() -> Result<String, ArgError>,
    ) -> Result<(), ArgError> {
        if self.controllers.is_empty() && !self.no_controllers {
            return Err(ArgError::SetBeforeController);
        }
        self.settings.push(parse_set(&text()?)?);
        Ok(())
    }

    /// `-c`: each controller once, in the order given.
    fn add_controller(&mut self, c: String) -> Result<(), ArgError> {
        if !valid_controller(&c) {
            return Err(ArgError::BadController(c));
        }
        if !self.controllers.contains(&c) {
            self.controllers.push(c);
        }
        Ok(())
    }

    /// The cgroup's path, controllers and writes, once `-g`, `-c`,
    /// `--no-controllers` and `--beneath-own-cgroup` agree.
    fn cgroup(&mut self) -> Result<(Option<String>, CgroupWrites), ArgError> {
        let has_controllers = !self.controllers.is_empty();
        if self.beneath_own_cgroup && self.cgroup_path.is_none() {
            return Err(ArgError::BeneathOwnWithoutCgroup);
        }
        if self.no_controllers && (self.cgroup_path.is_none() || has_controllers) {
            return Err(ArgError::NoControllersMisuse);
        }
        let Some(path) = self.cgroup_path.take() else {
            if has_controllers {
                return Err(ArgError::ControllerWithoutCgroup);
            }
            return Ok((None, CgroupWrites::default()));
        };
        if !has_controllers && !self.no_controllers {
            return Err(ArgError::CgroupWithoutController);
        }
        let writes = CgroupWrites {
            controllers: std::mem::take(&mut self.controllers),
            settings: std::mem::take(&mut self.settings),
        };
        Ok((Some(path), writes))
    }

    fn capture(&self) -> Capture {
        // "--capture-stderr: relay stderr too" - it implies stdout is relayed.
        // --capture-stderr-only wins over the others, as `capture_stderr_only:`
        // wins over `stderr_to_stdout:` in the Elixir library (MuonTrap 2.0
        // accepts both).
        match (self.cap_out, self.cap_err, self.cap_err_only) {
            (_, _, true) => Capture::StderrOnly,
            (_, true, _) => Capture::StdoutAndStderr,
            (true, false, _) => Capture::Stdout,
            (false, false, _) => Capture::None,
        }
    }

    pub(super) fn into_command(
        mut self,
        program: OsString,
        args: Vec<OsString>,
    ) -> Result<Command, ArgError> {
        let (cgroup_path, cgroup) = self.cgroup()?;
        let capture = self.capture();
        let os = |v: OsString| Bytes(v);
        Ok(Command {
            program: os(program),
            args: args.into_iter().map(os).collect(),
            arg0: self.arg0.map(os),
            capture,
            delay_to_sigkill_ms: self.delay.unwrap_or(DELAY_TO_SIGKILL_MS),
            stop_signal: Signal(self.attrs.stop_signal.unwrap_or(libc::SIGTERM)),
            uid: self.uid,
            gid: self.gid,
            supplementary_groups: self.supplementary_groups,
            umask: self.attrs.umask,
            nice: self.attrs.nice,
            rlimits: Rlimits(self.attrs.rlimits),
            env: self
                .env
                .into_iter()
                .map(|(k, v)| (os(k), v.map(os)))
                .collect(),
            cgroup_path,
            beneath_own_cgroup: self.beneath_own_cgroup,
            cgroup,
            window: self.window.unwrap_or(DEFAULT_WINDOW),
            // What only the library asks for (docs/protocol.md).
            ..Command::default()
        })
    }
}

fn to_str(option: &'static str, v: &OsStr) -> Result<String, ArgError> {
    v.to_str()
        .map(str::to_string)
        .ok_or(ArgError::NotUtf8(option))
}

/// `--stdio-window`: the port side's one check of the minimum (the Elixir
/// side checks `:stdio_window` in `MuonTrap.Options`).
fn parse_window(option: &'static str, v: &str) -> Result<u32, ArgError> {
    let n = parse_u32(option, v)?;
    if n < MIN_WINDOW {
        return Err(ArgError::WindowTooSmall(n));
    }
    Ok(n)
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

pub(super) fn set_once<T>(
    slot: &mut Option<T>,
    option: &'static str,
    value: T,
) -> Result<(), ArgError> {
    if slot.is_some() {
        return Err(ArgError::Duplicate(option));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_cgroup_path(p: String) -> Result<String, ArgError> {
    match validate_cgroup_path(&p) {
        Ok(()) => Ok(p),
        Err(e) => Err(ArgError::BadCgroupPath {
            reason: e.to_string(),
            path: p,
        }),
    }
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

fn parse_supplementary_groups(list: &str) -> Result<Vec<IdSpec>, ArgError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|item| {
            if item.is_empty() || item.chars().any(char::is_whitespace) {
                Err(ArgError::BadSupplementaryGroups(list.to_string()))
            } else {
                Ok(IdSpec::parse(item))
            }
        })
        .collect()
}
