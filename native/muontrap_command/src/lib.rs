//! One command's options, as one value ([`Command`]), shared by the NIF
//! and the port binary:
//!
//! - the NIF decodes it from the options `MuonTrap.Options` validated
//!   (feature `nif`: rustler decoders, `nif.rs`), encodes it (`wire.rs`)
//!   and hands it to the port binary with the descriptors;
//! - the port binary decodes it from those bytes, or parses it from its
//!   plain command line (`cli.rs`), and runs it the same way.
//!
//! A field is declared once, in `command!` below: its Rust type, its
//! default, the key of the validated Elixir options it comes from, and
//! with that its binary form and its NIF decoding (no key: a field the
//! NIF fills itself, not decoded). docs/protocol.md,
//! "The command value", and CONTRIBUTING.md, "Adding an option".

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::ops::Deref;

pub use muontrap_cgroup::layout::{Hierarchy, Layout};

pub mod cli;
#[macro_use]
mod decl;
pub mod env_block;
#[cfg(feature = "nif")]
pub mod nif;
pub mod wire;
#[cfg(test)]
mod wire_tests;

/// The property tests' allocation bounds are measured with this
/// (docs/reliability.md, "Fuzzing").
#[cfg(test)]
#[global_allocator]
static PEAK_ALLOC: muontrap_peak_alloc::PeakAlloc = muontrap_peak_alloc::PeakAlloc;

pub use env_block::EnvBlock;
pub use muontrap_wire::defaults::{DELAY_TO_SIGKILL_MS, MIN_WINDOW};
pub use muontrap_wire::rlimit::{Resource, INFINITY, RESOURCES};

/// `--stdio-window`'s default, the C original's, for the plain command
/// line: the only mode whose output is relayed under this window. The
/// library's `:stdio_window` (262144, `MuonTrap.PortBinary.default_window/0`)
/// is the capacity of the BEAM-owned pipes instead; the port relays
/// nothing then. This is the one place that says why the two differ.
pub const DEFAULT_WINDOW: u32 = 10240;

command! {
    /// A command and everything about how it runs. Keys on the left are
    /// the validated Elixir options'; a key that is missing or `nil` there
    /// leaves the default.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Command {
        /// The program: a path, or a name execvp looks up.
        cmd => program: Bytes = Bytes::default(),
        args => args: Vec<Bytes> = Vec::new(),
        /// argv[0] (default: the program).
        arg0 => arg0: Option<Bytes> = None,
        /// Which output goes into the OUTPUT pipe (or, plain, is relayed).
        capture => capture: Capture = Capture::None,
        delay_to_sigkill => delay_to_sigkill_ms: u32 = DELAY_TO_SIGKILL_MS,
        /// The first signal of the stop sequence.
        stop_signal => stop_signal: Signal = Signal(libc::SIGTERM),
        uid => uid: Option<IdSpec> = None,
        gid => gid: Option<IdSpec> = None,
        /// The supplementary groups, `Some(vec![])` for none.
        groups => supplementary_groups: Option<Vec<IdSpec>> = None,
        /// At most 0o777.
        umask => umask: Option<u32> = None,
        /// The absolute nice value, -20..19.
        nice => nice: Option<i32> = None,
        /// Each resource at most once.
        rlimits => rlimits: Rlimits = Rlimits::default(),
        /// Set (`Some`) or removed (`None`), in order; the last of a name wins.
        env => env: Vec<(Bytes, Option<Bytes>)> = Vec::new(),
        /// The environment the program starts from (the BEAM's of the
        /// moment, `System.get_env/0`), before `env`; `None`: the
        /// supervisor's own (the plain command line).
        base_env => base_env: Option<EnvBlock> = None,
        /// The supervisor's and the program's working directory; `None`:
        /// the supervisor's own.
        cd => cd: Option<Bytes> = None,
        /// Relative to each hierarchy's root (or, with `beneath_own_cgroup`,
        /// to the port's own cgroup there).
        cgroup_path => cgroup_path: Option<String> = None,
        beneath_own_cgroup => beneath_own_cgroup: bool = false,
        /// The controllers to enable and files to write: none is a
        /// cgroup for containment only.
        cgroup_writes => cgroup: CgroupWrites = CgroupWrites::default(),
        /// The host's cgroup layout as the BEAM detected it (no Elixir
        /// option: the NIF fills it, for a command with a cgroup, from
        /// its cached layout). `None`: the port detects it itself.
        => cgroup_layout: Option<Layout> = None,
        /// One name per LISTEN descriptor (LISTEN_FDNAMES).
        listen_sockets => listen_fdnames: Option<Names> = None,
        /// `ready: :notify`: an sd_notify socket, readiness expected.
        ready => notify: Notify = Notify(false),
        /// The sd_notify watchdog interval in ms (at least 1).
        watchdog => watchdog_ms: Option<u32> = None,
        /// Plain mode's unacknowledged output limit.
        stdio_window => window: u32 = DEFAULT_WINDOW,
    }
}

impl Command {
    /// Whether the program gets a notification socket.
    pub fn notify_socket(&self) -> bool {
        self.notify.0 || self.watchdog_ms.is_some()
    }

    /// The cgroup to create, if any.
    pub fn cgroup(&self) -> Option<CgroupConfig<'_>> {
        Some(CgroupConfig {
            path: self.cgroup_path.as_deref()?,
            controllers: &self.cgroup.controllers,
            settings: &self.cgroup.settings,
            beneath_own_cgroup: self.beneath_own_cgroup,
        })
    }
}

/// The cgroup part of a [`Command`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupConfig<'a> {
    pub path: &'a str,
    pub controllers: &'a [String],
    /// `(file, value)`.
    pub settings: &'a [(String, String)],
    pub beneath_own_cgroup: bool,
}

/// Bytes that go to execve as they are (not necessarily UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub OsString);

impl Deref for Bytes {
    type Target = OsStr;
    fn deref(&self) -> &OsStr {
        &self.0
    }
}

impl AsRef<OsStr> for Bytes {
    fn as_ref(&self) -> &OsStr {
        &self.0
    }
}

impl PartialEq<&str> for Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Bytes {
        Bytes(OsString::from(s))
    }
}

/// Which of the program's output streams go into the output pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifUnitEnum))]
pub enum Capture {
    None,
    Stdout,
    StdoutAndStderr,
    StderrOnly,
}

/// A user or group given either numerically or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifUntaggedEnum))]
pub enum IdSpec {
    Id(u32),
    Name(String),
}

impl fmt::Display for IdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdSpec::Id(n) => write!(f, "{n}"),
            IdSpec::Name(s) => write!(f, "'{s}'"),
        }
    }
}

/// A signal number (from an Elixir name or number in the NIF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub libc::c_int);

/// One rlimit: soft and hard limit in the resource's unit, `INFINITY`
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

/// `SOFT:HARD`.
pub struct LimitPair<'a>(pub &'a Rlimit);

impl fmt::Display for LimitPair<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        limit_text(f, self.0.soft)?;
        f.write_str(":")?;
        limit_text(f, self.0.hard)
    }
}

/// `nofile to 1024:4096`, as in "failed to set rlimit ...".
impl fmt::Display for Rlimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.resource.name(), LimitPair(self))
    }
}

/// The rlimits, in the order given (Elixir: a map of name to limits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rlimits(pub Vec<Rlimit>);

/// The cgroup's controllers and `(file, value)` writes (Elixir: what
/// `MuonTrap.Cgroup.translate/2` kept, `{made_for, {controllers, writes}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupWrites {
    pub controllers: Vec<String>,
    pub settings: Vec<(String, String)>,
}

/// Names, one per LISTEN descriptor (Elixir: `[{name, socket}]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

/// Whether readiness comes by sd_notify (Elixir: `ready: :notify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify(pub bool);
